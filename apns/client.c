/*
 * The APNs client: one thread, one libevent loop, a few HTTP/2 connections.
 *
 * Life of a push.  apns_client_push() copies a batch into one allocation, appends it to the
 * inbox under a mutex and wakes the loop with event_active().  On the loop, each push
 * becomes a request (struct req) or merges into the request already waiting for the same
 * enrollment (coalescing; the newest token and PushMagic win).  A new request is held for
 * coalesce_ms, then joins the ready queue; dispatch() hands ready requests to connections
 * with free streams (the peer's SETTINGS_MAX_CONCURRENT_STREAMS minus open streams).  An
 * answer ends the request (final result through the callback) or, for 429/5xx, parks it in
 * the retry heap with jittered exponential back-off until max_attempts.  A request the peer
 * never answered (refused after GOAWAY, reset, lost with its connection) goes back to the
 * front of the ready queue; a request lost after it was sent counts against max_attempts.
 *
 * Connections are made with a fresh DNS lookup each (evdns), verify the server certificate
 * and host name, insist on ALPN h2, and carry the push identity as the client certificate.
 * They are opened when there is work and kept: an idle one is PINGed and dropped if the PING
 * goes unanswered.  After GOAWAY a connection drains (answers up to the last stream id still
 * arrive) and a new one takes its place; after failures reconnects back off with jitter.
 * A 403 or a TLS alert refusing the client certificate halts pushing until
 * apns_client_set_identity() loads another certificate.
 *
 * The transport (conn_*) only moves bytes between the bufferevent and the HTTP/2 core in
 * session.c, which never sees a socket.
 */
#include "apns_int.h"
#include "session_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

/* Output buffered per connection before we stop asking nghttp2 for more frames. */
#define CONN_OUT_HIGH (512 * 1024)
#define CONN_OUT_LOW  (128 * 1024)
/* How often queued pushes are checked against queue_timeout_ms. */
#define HOUSEKEEPING_MS 1000

/* --- requests ---------------------------------------------------------------------------- */

enum req_state { RQ_HELD, RQ_READY, RQ_RETRY, RQ_INFLIGHT };

struct conn;

struct req {
    struct req *prev, *next; /* held or ready list */
    struct req *hnext;       /* coalescing map chain */
    uint32_t hash;
    enum req_state state;
    size_t heap_idx;                         /* in the retry heap */
    char *strs;                              /* the strings below: inl, or a block of their own */
    const char *eid, *token, *magic, *topic; /* topic NULL: the identity's */
    int64_t t_submit;                        /* first submission (monotonic ms) */
    int64_t t_due;                           /* held: release; retry: next try */
    int64_t t_sent;                          /* latest send */
    int attempts;                            /* answers received */
    int lost;                                /* sends lost with their connection or reset */
    int merged;                              /* submissions folded into this one */
    int status;                              /* latest answer */
    struct conn *conn;                       /* while in flight */
    char inl[];                              /* the strings as first submitted */
};

struct rlist {
    struct req *head, *tail;
    size_t n;
};

struct rheap {
    struct req **v;
    size_t n, cap;
};

struct rmap {
    struct req **b;
    size_t nb, n;
};

/* A batch handed over by apns_client_push: pushes and their strings in one block. */
struct batch {
    struct batch *next;
    size_t n;
    int64_t t_submit;
    struct apns_push *p;
    /* pushes, then strings */
};

/* --- connections ------------------------------------------------------------------------- */

enum conn_state { CS_CONNECTING, CS_HANDSHAKE, CS_READY };

struct conn {
    struct conn *prev, *next;
    struct apns_client *c;
    unsigned id;
    enum conn_state state;
    bool draining; /* GOAWAY or identity change: no new streams */
    bool dead;     /* to be freed by reap() */
    struct bufferevent *bev;
    struct apns_session *sess;
    struct event *timer; /* connect timeout, then PING */
    char *topic;         /* of the identity it authenticated with */
    struct buf out;      /* frames of one flush, handed to TLS as one block */
    int64_t opened_ms, last_rx_ms, ping_sent_ms;
    bool ping_out;
    char fail[256];
};

struct apns_client {
    /* Set by apns_client_new, then read-only. */
    struct apns_config cfg;
    char *url, *ca_file;
    struct apns_endpoint ep;
    apns_result_fn cb;
    void *cb_arg;

    /* Shared with other threads, under mu. */
    pthread_mutex_t mu;
    struct batch *in_head, *in_tail;
    size_t in_count; /* pushes in the inbox */
    struct apns_identity *new_id;
    SSL_CTX *new_ctx;
    bool stop_requested;
    int64_t stop_deadline;
    bool refuse;              /* stopping: apns_client_push refuses */
    struct apns_identity *id; /* in use (topic queries) */
    struct apns_stats stats;

    /* The loop's. */
    pthread_t thread;
    bool started, joined;
    struct event_base *base;
    struct evdns_base *dns;
    struct event *wake_ev, *held_ev, *retry_ev, *house_ev, *reconnect_ev, *stop_ev;
    SSL_CTX *ctx;
    char *topic;
    struct conn *conns;
    unsigned next_conn_id;
    struct rlist held, ready;
    struct rheap retry;
    struct rmap map;
    size_t in_flight;
    int fail_streak;
    int64_t reconnect_at;
    bool halted;
    bool halt_pending;
    char halt_reason[200];
    char last_error[256];
    bool stopping, stop_done;
    int64_t deadline;
    uint64_t rng;
    bool in_schedule;
};

static void schedule(struct apns_client *c);
static void conn_free(struct conn *k);

/* --- lists, heap, map --------------------------------------------------------------------- */

static void rl_push_back(struct rlist *l, struct req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

static void rl_push_front(struct rlist *l, struct req *r)
{
    r->prev = NULL;
    r->next = l->head;
    if (l->head)
        l->head->prev = r;
    else
        l->tail = r;
    l->head = r;
    l->n++;
}

static void rl_remove(struct rlist *l, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

static void heap_swap(struct rheap *h, size_t a, size_t b)
{
    struct req *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->heap_idx = a;
    h->v[b]->heap_idx = b;
}

static void heap_push(struct rheap *h, struct req *r)
{
    size_t i;

    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xreallocarray(h->v, h->cap, sizeof(struct req *));
    }
    i = h->n++;
    h->v[i] = r;
    r->heap_idx = i;
    while (i > 0 && h->v[(i - 1) / 2]->t_due > h->v[i]->t_due) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct req *heap_pop(struct rheap *h)
{
    struct req *top;
    size_t i = 0;

    if (h->n == 0)
        return NULL;
    top = h->v[0];
    h->v[0] = h->v[--h->n];
    h->v[0]->heap_idx = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->t_due < h->v[m]->t_due)
            m = l;
        if (r < h->n && h->v[r]->t_due < h->v[m]->t_due)
            m = r;
        if (m == i)
            break;
        heap_swap(h, i, m);
        i = m;
    }
    return top;
}

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void map_grow(struct rmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 1024;
    struct req **b = xcalloc(nb, sizeof(struct req *));

    for (size_t i = 0; i < m->nb; i++) {
        struct req *r = m->b[i], *next;
        for (; r; r = next) {
            next = r->hnext;
            r->hnext = b[r->hash & (nb - 1)];
            b[r->hash & (nb - 1)] = r;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

static struct req *map_find(struct rmap *m, const char *eid, uint32_t hash)
{
    if (m->nb == 0)
        return NULL;
    for (struct req *r = m->b[hash & (m->nb - 1)]; r; r = r->hnext) {
        if (r->hash == hash && strcmp(r->eid, eid) == 0)
            return r;
    }
    return NULL;
}

static void map_insert(struct rmap *m, struct req *r)
{
    size_t i;

    if (m->n >= m->nb)
        map_grow(m);
    i = r->hash & (m->nb - 1);
    r->hnext = m->b[i];
    m->b[i] = r;
    m->n++;
}

static void map_remove(struct rmap *m, struct req *r)
{
    struct req **pp;

    if (m->nb == 0)
        return;
    for (pp = &m->b[r->hash & (m->nb - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == r) {
            *pp = r->hnext;
            r->hnext = NULL;
            m->n--;
            return;
        }
    }
}

static size_t push_strlen(const struct apns_push *p)
{
    return strlen(p->enrollment_id) + strlen(p->token_hex) + strlen(p->push_magic) +
           (str_empty(p->topic) ? 0 : strlen(p->topic) + 1) + 3;
}

/* Copy the strings of p into s (push_strlen(p) bytes) and point r at them. */
static void req_fill_strings(struct req *r, const struct apns_push *p, char *s)
{
    size_t le = strlen(p->enrollment_id) + 1, lt = strlen(p->token_hex) + 1,
           lm = strlen(p->push_magic) + 1, lp = str_empty(p->topic) ? 0 : strlen(p->topic) + 1;

    memcpy(s, p->enrollment_id, le);
    memcpy(s + le, p->token_hex, lt);
    for (char *t = s + le; *t; t++) /* lower-case hex, as Apple shows it */
        if (*t >= 'A' && *t <= 'F')
            *t = (char)(*t + 32);
    memcpy(s + le + lt, p->push_magic, lm);
    if (lp)
        memcpy(s + le + lt + lm, p->topic, lp);
    if (r->strs != r->inl)
        free(r->strs);
    r->strs = s;
    r->eid = s;
    r->token = s + le;
    r->magic = s + le + lt;
    r->topic = lp ? s + le + lt + lm : NULL;
}

/* A request for p: one allocation holding the record and its strings. */
static struct req *req_new(const struct apns_push *p, int64_t t_submit)
{
    size_t n = push_strlen(p);
    struct req *r = xmalloc(sizeof(*r) + n);

    memset(r, 0, sizeof(*r));
    r->strs = r->inl;
    req_fill_strings(r, p, r->inl);
    r->merged = 1;
    r->t_submit = t_submit;
    return r;
}

/* Newer strings for a waiting request (a coalesced push with another token or magic). */
static void req_set_strings(struct req *r, const struct apns_push *p)
{
    req_fill_strings(r, p, xmalloc(push_strlen(p)));
}

static void req_free(struct req *r)
{
    if (r) {
        if (r->strs != r->inl)
            free(r->strs);
        free(r);
    }
}

/* --- results and counters ----------------------------------------------------------------- */

static const char *req_topic(const struct apns_client *c, const struct req *r)
{
    if (r->topic)
        return r->topic;
    if (r->conn && r->conn->topic)
        return r->conn->topic;
    return c->topic ? c->topic : "";
}

static void set_last_error(struct apns_client *c, const char *msg)
{
    str_copy(c->last_error, sizeof(c->last_error), msg);
    pthread_mutex_lock(&c->mu);
    str_copy(c->stats.last_error, sizeof(c->stats.last_error), msg);
    pthread_mutex_unlock(&c->mu);
}

/* Report the final result of r (already out of every list) and free it. */
static void req_final(struct apns_client *c, struct req *r, enum apns_kind kind, int status,
                      const char *reason, const char *apns_id, int64_t timestamp_ms)
{
    char masked[LOG_MASK_LEN], st[8], att[12], lat[24];
    struct apns_result res = {
        .enrollment_id = r->eid,
        .token_hex = r->token,
        .topic = req_topic(c, r),
        .kind = kind,
        .status = status,
        .reason = reason ? reason : "",
        .apns_id = apns_id ? apns_id : "",
        .attempts = r->attempts,
        .merged = r->merged,
        .latency_ms = apns_now_ms() - r->t_submit,
        .timestamp_ms = timestamp_ms,
    };
    enum log_level lvl = kind == APNS_KIND_OK          ? LOG_LVL_DEBUG
                         : kind == APNS_KIND_PERMANENT ? LOG_LVL_INFO
                         : kind == APNS_KIND_FATAL     ? LOG_LVL_ERROR
                                                       : LOG_LVL_WARN;

    pthread_mutex_lock(&c->mu);
    c->stats.results[kind]++;
    pthread_mutex_unlock(&c->mu);
    if (log_enabled(lvl)) {
        snprintf(st, sizeof(st), "%d", status);
        snprintf(att, sizeof(att), "%d", r->attempts);
        snprintf(lat, sizeof(lat), "%" PRId64, res.latency_ms);
        log_kv(lvl, "apns_push", "enrollment", r->eid, "token",
               log_mask(r->token, masked, sizeof(masked)), "result", apns_kind_name(kind), "status",
               st, "reason", *res.reason ? res.reason : NULL, "apns_id",
               *res.apns_id ? res.apns_id : NULL, "attempts", att, "latency_ms", lat, NULL);
    }
    c->cb(&res, c->cb_arg);
    req_free(r);
}

/* Count one answer: status, reason, latency. */
static void count_answer(struct apns_client *c, int status, const char *reason, int64_t rtt)
{
    size_t b = 0;

    while (b < APNS_LATENCY_BUCKETS && rtt > apns_latency_bound_ms(b))
        b++;
    pthread_mutex_lock(&c->mu);
    c->stats.by_status[apns_status_slot(status)]++;
    if (status != 200)
        c->stats.by_reason[apns_reason_slot(reason)]++;
    c->stats.latency[b]++;
    c->stats.latency_sum_ms += (uint64_t)(rtt > 0 ? rtt : 0);
    pthread_mutex_unlock(&c->mu);
}

#define STAT_ADD(c, field, v)                                                                      \
    do {                                                                                           \
        pthread_mutex_lock(&(c)->mu);                                                              \
        (c)->stats.field += (v);                                                                   \
        pthread_mutex_unlock(&(c)->mu);                                                            \
    } while (0)

/* --- queueing ------------------------------------------------------------------------------ */

/* Put r (not in any list) into the ready queue, or fold it into the request already waiting
 * for its enrollment.  front: it was waiting longer than what is queued. */
static void req_requeue(struct apns_client *c, struct req *r, bool front)
{
    struct req *other = map_find(&c->map, r->eid, r->hash);

    if (other != NULL) {
        other->merged += r->merged;
        if (r->t_submit < other->t_submit)
            other->t_submit = r->t_submit;
        req_free(r);
        return;
    }
    r->state = RQ_READY;
    map_insert(&c->map, r);
    if (front)
        rl_push_front(&c->ready, r);
    else
        rl_push_back(&c->ready, r);
}

static void intake(struct apns_client *c, const struct apns_push *p, int64_t t_submit, int64_t now)
{
    uint32_t h = hash_str(p->enrollment_id);
    struct req *r = map_find(&c->map, p->enrollment_id, h);

    if (r != NULL) {
        /* Coalesce: one push wakes the device; the newest token and PushMagic win. */
        if (strcmp(r->token, p->token_hex) != 0 || strcmp(r->magic, p->push_magic) != 0 ||
            (r->topic == NULL) != str_empty(p->topic) ||
            (r->topic && strcmp(r->topic, p->topic) != 0))
            req_set_strings(r, p);
        r->merged++;
        STAT_ADD(c, coalesced, 1);
        return;
    }
    r = req_new(p, t_submit);
    r->hash = h;
    if (c->halted) {
        req_final(c, r, APNS_KIND_FATAL, 0, c->halt_reason, NULL, 0);
        return;
    }
    map_insert(&c->map, r);
    if (c->cfg.coalesce_ms > 0 && !c->stopping) {
        r->state = RQ_HELD;
        r->t_due = now + c->cfg.coalesce_ms;
        rl_push_back(&c->held, r);
    } else {
        r->state = RQ_READY;
        rl_push_back(&c->ready, r);
    }
}

/* Take r out of whatever waiting structure holds it (not the heap: only heap_pop does). */
static void req_unqueue(struct apns_client *c, struct req *r)
{
    map_remove(&c->map, r);
    if (r->state == RQ_HELD)
        rl_remove(&c->held, r);
    else if (r->state == RQ_READY)
        rl_remove(&c->ready, r);
}

/* Give every waiting request the same final result. */
static void fail_queued(struct apns_client *c, enum apns_kind kind, const char *reason)
{
    struct req *r;

    while ((r = c->held.head) != NULL || (r = c->ready.head) != NULL) {
        req_unqueue(c, r);
        req_final(c, r, kind, r->status, reason, NULL, 0);
    }
    while ((r = heap_pop(&c->retry)) != NULL) {
        map_remove(&c->map, r);
        req_final(c, r, kind, r->status, reason, NULL, 0);
    }
}

/* --- session callbacks (run inside apns_session_*; they only move requests) -------------- */

static void on_response(void *arg, void *user, const struct apns_h2_response *resp)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;
    struct req *r = user;
    int64_t now = apns_now_ms();
    enum apns_kind kind = apns_classify(resp->status, resp->reason);

    c->in_flight--;
    count_answer(c, resp->status, resp->reason, now - r->t_sent);
    r->attempts++;
    r->status = resp->status;
    if (kind == APNS_KIND_RETRY) {
        if (r->attempts >= c->cfg.max_attempts) {
            char why[160];
            snprintf(why, sizeof(why), "%s (gave up after %d attempts)",
                     *resp->reason ? resp->reason : "transient error", r->attempts);
            req_final(c, r, APNS_KIND_GAVE_UP, resp->status, why, resp->apns_id, 0);
            return;
        }
        STAT_ADD(c, retries, 1);
        r->conn = NULL;
        if (map_find(&c->map, r->eid, r->hash) != NULL) {
            req_requeue(c, r, false); /* a newer push for it is waiting: fold into it */
            return;
        }
        r->state = RQ_RETRY;
        r->t_due = now + apns_backoff_ms(c->cfg.retry_base_ms, c->cfg.retry_max_ms, r->attempts,
                                         apns_rand_next(&c->rng));
        map_insert(&c->map, r);
        heap_push(&c->retry, r);
        return;
    }
    if (kind == APNS_KIND_FATAL && !c->halt_pending) {
        c->halt_pending = true;
        snprintf(c->halt_reason, sizeof(c->halt_reason), "APNs refused the push certificate: %d %s",
                 resp->status, *resp->reason ? resp->reason : "(no reason)");
    }
    req_final(c, r, kind, resp->status, resp->reason, resp->apns_id, resp->timestamp_ms);
}

static void on_unanswered(void *arg, void *user, enum apns_unanswered why, uint32_t h2_error)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;
    struct req *r = user;

    (void)h2_error;
    c->in_flight--;
    r->conn = NULL;
    if (why == APNS_LOST) {
        r->lost++;
        if (r->attempts + r->lost >= c->cfg.max_attempts) {
            char reason[160];
            snprintf(reason, sizeof(reason),
                     "no answer: the connection was lost or the stream reset %d times", r->lost);
            req_final(c, r, APNS_KIND_GAVE_UP, r->status, reason, NULL, 0);
            return;
        }
    }
    STAT_ADD(c, resent, 1);
    req_requeue(c, r, true);
}

static void on_settings(void *arg, uint32_t max_streams)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;

    if (k->state != CS_READY) {
        k->state = CS_READY;
        c->fail_streak = 0;
        c->reconnect_at = 0;
        STAT_ADD(c, connects, 1);
        log_info("apns: connection %u to %s ready (peer allows %" PRIu32 " streams)", k->id,
                 c->ep.authority, max_streams);
        if (c->cfg.ping_interval_ms > 0)
            event_add(k->timer, &(struct timeval){c->cfg.ping_interval_ms / 1000,
                                                  (c->cfg.ping_interval_ms % 1000) * 1000});
        else
            event_del(k->timer);
    } else {
        log_debug("apns: connection %u: peer now allows %" PRIu32 " streams", k->id, max_streams);
    }
}

static void on_goaway(void *arg, uint32_t error_code, int32_t last_stream_id, const char *reason)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;

    STAT_ADD(c, goaways, 1);
    k->draining = true;
    if (error_code != 0) /* NO_ERROR is a graceful close; reconnect at once */
        c->fail_streak++;
    log_info("apns: connection %u: GOAWAY (error %" PRIu32 ", last stream %" PRId32 "%s%s)", k->id,
             error_code, last_stream_id, *reason ? ", reason " : "", reason);
    if (*reason)
        snprintf(k->fail, sizeof(k->fail), "GOAWAY: %s", reason);
    if (strcmp(reason, "BadCertificate") == 0 || strcmp(reason, "BadCertificateEnvironment") == 0 ||
        strcmp(reason, "Forbidden") == 0) {
        c->halt_pending = true;
        snprintf(c->halt_reason, sizeof(c->halt_reason),
                 "APNs refused the push certificate: GOAWAY %s", reason);
    }
}

static void on_ping_ack(void *arg)
{
    struct conn *k = arg;
    int64_t t = k->c->cfg.ping_interval_ms;

    k->ping_out = false;
    if (t > 0) /* the next PING after another idle interval */
        event_add(k->timer, &(struct timeval){t / 1000, (t % 1000) * 1000});
}

static const struct apns_session_cbs session_cbs = {
    .response = on_response,
    .unanswered = on_unanswered,
    .settings = on_settings,
    .goaway = on_goaway,
    .ping_ack = on_ping_ack,
};

/* --- transport ---------------------------------------------------------------------------- */

static void conn_sink(void *arg, const uint8_t *data, size_t len)
{
    buf_append(arg, data, len);
}

/*
 * Move pending frames to the socket; mark the connection dead on a protocol error.  The
 * frames of one pass go to the bufferevent as one block: one TLS record per 16 KB rather
 * than one per frame.
 */
static void conn_flush(struct conn *k)
{
    struct evbuffer *out;
    struct scepter_error err;

    if (k->dead || k->sess == NULL)
        return;
    out = bufferevent_get_output(k->bev);
    if (evbuffer_get_length(out) >= CONN_OUT_HIGH)
        return; /* the write callback calls again once it drained */
    if (apns_session_send(k->sess, conn_sink, &k->out, CONN_OUT_HIGH, &err) < 0) {
        snprintf(k->fail, sizeof(k->fail), "%s", err.msg);
        k->dead = true;
    }
    if (k->out.len > 0) {
        evbuffer_add(out, k->out.data, k->out.len);
        buf_reset(&k->out);
    }
}

/* Why the connection failed, from what libevent and OpenSSL kept. */
static bool describe_failure(struct conn *k, short what, char *out, size_t len)
{
    unsigned long e;
    bool cert_refused = false;
    int dns = bufferevent_socket_get_dns_error(k->bev);
    SSL *ssl = bufferevent_openssl_get_ssl(k->bev);
    char tls[200] = "";

    while ((e = bufferevent_get_openssl_error(k->bev)) != 0) {
        int r = ERR_GET_REASON(e);
        if (r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || r == SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED ||
            r == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
            r == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
            r == SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE || r == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
            r == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED || r == SSL_R_TLSV1_ALERT_ACCESS_DENIED)
            cert_refused = true;
        if (tls[0] != '\0')
            continue;
        if (e < 256) /* libevent keeps SSL_get_error() codes for socket-level failures */
            snprintf(tls, sizeof(tls), "the connection was closed or reset during TLS (%s)",
                     e == SSL_ERROR_SYSCALL ? "SSL_ERROR_SYSCALL" : "SSL_ERROR");
        else
            ERR_error_string_n(e, tls, sizeof(tls));
    }
    if (dns != 0) {
        snprintf(out, len, "DNS lookup of %s failed: %s", k->c->ep.host, evutil_gai_strerror(dns));
    } else if (ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(out, len, "the server certificate of %s is not trusted: %s", k->c->ep.host,
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    } else if (cert_refused) {
        snprintf(out, len, "the server refused the push certificate (TLS alert: %s)", tls);
    } else if (tls[0]) {
        snprintf(out, len, "TLS with %.60s failed: %.180s", k->c->ep.authority, tls);
    } else if (what & BEV_EVENT_EOF) {
        snprintf(out, len, "%s closed the connection", k->c->ep.authority);
    } else {
        int se = EVUTIL_SOCKET_ERROR();
        snprintf(out, len, "connection to %.100s failed: %.100s", k->c->ep.authority,
                 se ? evutil_socket_error_to_string(se) : "unknown error");
    }
    return cert_refused;
}

static void conn_fail(struct conn *k, const char *why)
{
    struct apns_client *c = k->c;
    bool was_ready = k->state == CS_READY;

    if (was_ready && (k->sess == NULL || apns_session_open_streams(k->sess) == 0)) {
        /* Nothing was lost: a drained connection, or one the peer closed while idle. */
        if (k->draining)
            log_debug("apns: connection %u closed after GOAWAY: %s", k->id, why);
        else
            log_info("apns: idle connection %u to %s closed: %s", k->id, c->ep.authority, why);
        conn_free(k);
        return;
    }
    if (was_ready) {
        STAT_ADD(c, drops, 1);
        if (!k->draining)
            c->fail_streak++;
    } else {
        STAT_ADD(c, connect_failures, 1);
        c->fail_streak++;
    }
    log_warnx("apns: connection %u to %s %s: %s", k->id, c->ep.authority,
              was_ready ? "lost" : "failed", why);
    set_last_error(c, why);
    conn_free(k);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct scepter_error err;
    struct evbuffer_iovec v[16];
    size_t total;

    k->last_rx_ms = apns_now_ms();
    while (!k->dead && (total = evbuffer_get_length(in)) > 0) {
        int n = evbuffer_peek(in, -1, NULL, v, ARRAY_LEN(v));
        size_t used = 0;
        if (n > (int)ARRAY_LEN(v))
            n = ARRAY_LEN(v);
        for (int i = 0; i < n && !k->dead; i++) {
            if (apns_session_recv(k->sess, v[i].iov_base, v[i].iov_len, &err) != 0) {
                snprintf(k->fail, sizeof(k->fail), "%s", err.msg);
                k->dead = true;
            }
            used += v[i].iov_len;
        }
        evbuffer_drain(in, used);
    }
    schedule(k->c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *k = arg;

    (void)bev;
    conn_flush(k);
    schedule(k->c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;
    char why[300];

    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *alpn = NULL;
        unsigned int alen = 0;

        SSL_get0_alpn_selected(ssl, &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            snprintf(why, sizeof(why), "%.200s did not negotiate HTTP/2 (ALPN h2)",
                     c->ep.authority);
            conn_fail(k, why);
            return;
        }
        /* Many small frames in both directions: do not let Nagle hold them back. */
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        k->state = CS_HANDSHAKE;
        k->sess = apns_session_new(c->ep.authority, &session_cbs, k);
        conn_flush(k);
        schedule(c);
        return;
    }
    if (describe_failure(k, what, why, sizeof(why)) && !c->halt_pending) {
        c->halt_pending = true;
        str_copy(c->halt_reason, sizeof(c->halt_reason), why);
    }
    conn_fail(k, why);
    schedule(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *k = arg;
    struct apns_client *c = k->c;
    int64_t now = apns_now_ms();
    struct scepter_error err;

    (void)fd;
    (void)what;
    if (k->state != CS_READY) {
        char why[160];
        snprintf(why, sizeof(why), "no HTTP/2 connection within %d ms", c->cfg.connect_timeout_ms);
        conn_fail(k, why);
        schedule(c);
        return;
    }
    if (k->ping_out) {
        if (now - k->ping_sent_ms >= c->cfg.ping_timeout_ms) {
            conn_fail(k, "PING not answered");
            schedule(c);
            return;
        }
    } else if (now - k->last_rx_ms >= c->cfg.ping_interval_ms) {
        if (apns_session_ping(k->sess, &err) == 0) {
            k->ping_out = true;
            k->ping_sent_ms = now;
            STAT_ADD(c, pings, 1);
            conn_flush(k);
        }
    }
    {
        int64_t next =
            k->ping_out ? c->cfg.ping_timeout_ms : c->cfg.ping_interval_ms - (now - k->last_rx_ms);
        if (next < 1)
            next = 1;
        event_add(k->timer, &(struct timeval){next / 1000, (next % 1000) * 1000});
    }
    schedule(c);
}

static struct conn *conn_open(struct apns_client *c)
{
    struct conn *k = xcalloc(1, sizeof(*k));
    SSL *ssl = SSL_new(c->ctx);
    int64_t t = c->cfg.connect_timeout_ms;

    k->c = c;
    k->id = ++c->next_conn_id;
    k->state = CS_CONNECTING;
    k->topic = xstrdup(c->topic);
    k->opened_ms = k->last_rx_ms = apns_now_ms();
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    c->conns = k;
    k->timer = evtimer_new(c->base, conn_timer_cb, k);
    event_add(k->timer, &(struct timeval){t / 1000, (t % 1000) * 1000});
    if (ssl == NULL)
        fatalx("apns: SSL_new failed");
    if (c->ep.host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->ep.host);
    } else {
        SSL_set_tlsext_host_name(ssl, c->ep.host);
        SSL_set1_host(ssl, c->ep.host);
    }
    k->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (k->bev == NULL)
        fatalx("apns: cannot create a TLS bufferevent");
    bufferevent_openssl_set_allow_dirty_shutdown(k->bev, 1);
    bufferevent_setcb(k->bev, conn_read_cb, conn_write_cb, conn_event_cb, k);
    bufferevent_setwatermark(k->bev, EV_WRITE, CONN_OUT_LOW, 0);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    log_debug("apns: connection %u: resolving %s and connecting", k->id, c->ep.authority);
    /* A fresh DNS lookup for every new connection, as Apple asks. */
    if (bufferevent_socket_connect_hostname(k->bev, c->dns, AF_UNSPEC, c->ep.host,
                                            (int)strtol(c->ep.port, NULL, 10)) != 0) {
        snprintf(k->fail, sizeof(k->fail), "cannot start connecting to %.200s", c->ep.authority);
        k->dead = true;
    }
    return k;
}

static void conn_free(struct conn *k)
{
    struct apns_client *c = k->c;

    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    /* Requests still open come back through on_unanswered. */
    apns_session_free(k->sess);
    k->sess = NULL;
    if (k->bev)
        bufferevent_free(k->bev);
    event_free(k->timer);
    buf_free(&k->out);
    free(k->topic);
    free(k);
}

/* --- the pump ----------------------------------------------------------------------------- */

static void arm(struct event *ev, int64_t due, int64_t now)
{
    int64_t d = due > now ? due - now : 0;

    event_add(ev, &(struct timeval){d / 1000, (d % 1000) * 1000});
}

static void halt(struct apns_client *c)
{
    c->halt_pending = false;
    if (c->halted)
        return;
    c->halted = true;
    log_error("apns: PUSHING STOPPED: %s. Load a valid MDM push certificate for %s "
              "(apns_client_set_identity / the push certificate API) to resume.",
              c->halt_reason, c->topic ? c->topic : "the topic");
    set_last_error(c, c->halt_reason);
    while (c->conns)
        conn_free(c->conns);
    fail_queued(c, APNS_KIND_FATAL, c->halt_reason);
}

/* Closed, failed and finished connections go; their requests are back in the queue. */
static void reap(struct apns_client *c)
{
    struct conn *k = c->conns, *next;

    for (; k; k = next) {
        next = k->next;
        if (k->dead) {
            char why[256];
            str_copy(why, sizeof(why), k->fail[0] ? k->fail : "closed");
            conn_fail(k, why);
        } else if (k->sess && k->draining && apns_session_finished(k->sess) &&
                   evbuffer_get_length(bufferevent_get_output(k->bev)) == 0) {
            log_debug("apns: connection %u drained and closed", k->id);
            conn_free(k);
        }
    }
}

static void ensure_connections(struct apns_client *c, int64_t now)
{
    int active = 0, want;
    bool work = c->ready.n + c->held.n + c->retry.n + c->in_flight > 0;

    if (c->halted || c->stop_done || !work)
        return;
    for (struct conn *k = c->conns; k; k = k->next)
        active += !k->draining;
    want = c->cfg.connections - active;
    if (want <= 0)
        return;
    if (c->reconnect_at > now) {
        arm(c->reconnect_ev, c->reconnect_at, now);
        return;
    }
    if (c->fail_streak > 0) {
        /* While failing, probe with one connection per back-off period. */
        want = 1;
        c->reconnect_at = now + apns_backoff_ms(c->cfg.reconnect_base_ms, c->cfg.reconnect_max_ms,
                                                c->fail_streak, apns_rand_next(&c->rng));
    }
    while (want-- > 0)
        conn_open(c);
}

static void dispatch(struct apns_client *c, int64_t now)
{
    int64_t exp = c->cfg.expiration_s > 0 ? (int64_t)time(NULL) + c->cfg.expiration_s : 0;
    struct scepter_error err;
    char expiration[24], priority[8];

    if (c->ready.n == 0)
        return;
    snprintf(expiration, sizeof(expiration), "%" PRId64, exp);
    snprintf(priority, sizeof(priority), "%d", c->cfg.priority);

    for (struct conn *k = c->conns; k && c->ready.n > 0; k = k->next) {
        size_t slots, sent = 0;
        if (k->state != CS_READY || k->draining || k->dead)
            continue;
        slots = apns_session_free_slots(k->sess);
        while (slots-- > 0 && c->ready.head) {
            struct req *r = c->ready.head;
            struct apns_h2_request h = {
                .token_hex = r->token,
                .push_magic = r->magic,
                .topic = r->topic ? r->topic : k->topic,
                .priority = priority,
                .expiration = expiration,
                .user = r,
            };
            if (apns_session_submit(k->sess, &h, &err) != 0)
                break;
            req_unqueue(c, r);
            r->state = RQ_INFLIGHT;
            r->conn = k;
            r->t_sent = now;
            c->in_flight++;
            sent++;
        }
        if (sent)
            STAT_ADD(c, requests, sent);
    }
}

static void expire_queued(struct apns_client *c, int64_t now)
{
    char reason[300];
    struct req *r, *next;
    bool any_up = false;

    for (struct conn *k = c->conns; k; k = k->next)
        any_up |= k->state == CS_READY && !k->draining;
    if (any_up || c->cfg.queue_timeout_ms <= 0)
        return;
    snprintf(reason, sizeof(reason), "no connection to APNs for %.1f s (%.200s)",
             c->cfg.queue_timeout_ms / 1000.0, c->last_error[0] ? c->last_error : "connecting");
    for (r = c->ready.head; r; r = next) {
        next = r->next;
        if (now - r->t_submit >= c->cfg.queue_timeout_ms) {
            req_unqueue(c, r);
            req_final(c, r, APNS_KIND_GAVE_UP, r->status, reason, NULL, 0);
        }
    }
}

static void publish_gauges(struct apns_client *c)
{
    int up = 0, connecting = 0, draining = 0;
    uint32_t peer = 0;
    enum apns_state state;

    for (struct conn *k = c->conns; k; k = k->next) {
        if (k->draining)
            draining++;
        else if (k->state == CS_READY)
            up++;
        else
            connecting++;
        if (k->sess && k->state == CS_READY && !k->draining)
            peer += apns_session_peer_max_streams(k->sess);
    }
    if (c->stop_done)
        state = APNS_STATE_STOPPED;
    else if (c->halted)
        state = APNS_STATE_HALTED;
    else if (up > 0)
        state = APNS_STATE_UP;
    else if (c->fail_streak > 0)
        state = APNS_STATE_FAILING;
    else if (connecting > 0)
        state = APNS_STATE_CONNECTING;
    else
        state = APNS_STATE_IDLE;
    pthread_mutex_lock(&c->mu);
    c->stats.conns_up = up;
    c->stats.conns_connecting = connecting;
    c->stats.conns_draining = draining;
    c->stats.peer_max_streams = peer;
    c->stats.in_flight = c->in_flight;
    c->stats.queued = c->held.n + c->ready.n + c->retry.n;
    c->stats.state = state;
    pthread_mutex_unlock(&c->mu);
}

static void finish_stop(struct apns_client *c)
{
    c->stop_done = true;
    for (struct conn *k = c->conns; k; k = k->next) {
        if (k->sess) {
            apns_session_shutdown(k->sess);
            conn_flush(k);
        }
    }
    while (c->conns)
        conn_free(c->conns);
    fail_queued(c, APNS_KIND_GAVE_UP, "the APNs client stopped before the push was sent");
    publish_gauges(c);
    event_base_loopbreak(c->base);
}

/*
 * A push certificate that expires while the client runs: APNs refuses it, so pushing stops
 * as for a refused certificate (logged once, the state HALTED, queued pushes failed) until
 * apns_client_set_identity() loads another, instead of connecting again and again with it.
 */
static void check_cert_expiry(struct apns_client *c)
{
    time_t now = time(NULL), not_after;
    struct tm tm;
    char when[40];

    if (c->halted || c->halt_pending)
        return;
    pthread_mutex_lock(&c->mu);
    not_after = (time_t)c->stats.cert_not_after;
    pthread_mutex_unlock(&c->mu);
    if (not_after <= 0 || now <= not_after)
        return;
    gmtime_r(&not_after, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    c->halt_pending = true;
    /* halt_reason is short: the topic is in halt()'s log line and in /healthz's topic */
    snprintf(c->halt_reason, sizeof(c->halt_reason),
             "the push certificate expired on %.24s; renew it at identity.apple.com", when);
}

static void schedule(struct apns_client *c)
{
    int64_t now;
    struct req *r;

    if (c->in_schedule || c->stop_done)
        return;
    c->in_schedule = true;
    now = apns_now_ms();
    check_cert_expiry(c);
    if (c->halt_pending)
        halt(c);
    reap(c);
    while ((r = c->held.head) != NULL && (r->t_due <= now || c->stopping)) {
        rl_remove(&c->held, r);
        r->state = RQ_READY;
        rl_push_back(&c->ready, r);
    }
    while (c->retry.n > 0 && c->retry.v[0]->t_due <= now) {
        r = heap_pop(&c->retry);
        r->state = RQ_READY;
        rl_push_back(&c->ready, r);
    }
    if (c->halted && c->ready.n + c->held.n + c->retry.n > 0)
        fail_queued(c, APNS_KIND_FATAL, c->halt_reason);
    ensure_connections(c, now);
    dispatch(c, now);
    for (struct conn *k = c->conns; k; k = k->next)
        conn_flush(k);
    if (c->halt_pending)
        halt(c);
    reap(c);
    if (c->held.head)
        arm(c->held_ev, c->held.head->t_due, now);
    if (c->retry.n > 0)
        arm(c->retry_ev, c->retry.v[0]->t_due, now);
    if (c->ready.n + c->held.n + c->retry.n + c->in_flight > 0 &&
        !event_pending(c->house_ev, EV_TIMEOUT, NULL))
        arm(c->house_ev,
            now + (c->cfg.ping_timeout_ms / 2 < HOUSEKEEPING_MS
                       ? (c->cfg.ping_timeout_ms / 2 > 10 ? c->cfg.ping_timeout_ms / 2 : 10)
                       : HOUSEKEEPING_MS),
            now);
    publish_gauges(c);
    c->in_schedule = false;
    if (c->stopping && c->ready.n + c->held.n + c->retry.n + c->in_flight == 0)
        finish_stop(c);
}

/* --- loop events --------------------------------------------------------------------------- */

static void apply_identity(struct apns_client *c, struct apns_identity *id, SSL_CTX *ctx)
{
    SSL_CTX_free(c->ctx);
    c->ctx = ctx;
    free(c->topic);
    c->topic = xstrdup(apns_identity_topic(id));
    pthread_mutex_lock(&c->mu);
    apns_identity_free(c->id);
    c->id = id;
    str_copy(c->stats.topic, sizeof(c->stats.topic), c->topic);
    c->stats.cert_not_after = apns_identity_not_after(id);
    pthread_mutex_unlock(&c->mu);
    for (struct conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        if (k->draining)
            continue;
        if (k->sess == NULL) { /* still connecting with the old certificate: start over */
            conn_free(k);
            continue;
        }
        k->draining = true; /* finish what it carries, then close */
        apns_session_shutdown(k->sess);
    }
    if (c->halted)
        log_info("apns: new push certificate for %s loaded; pushing resumes", c->topic);
    else
        log_info("apns: new push certificate for %s loaded; new connections use it", c->topic);
    c->halted = false;
    c->halt_pending = false;
    c->fail_streak = 0;
    c->reconnect_at = 0;
}

static void begin_stop(struct apns_client *c, int64_t deadline)
{
    struct req *r;
    struct rheap keep = {0};
    int64_t now = apns_now_ms();

    c->stopping = true;
    c->deadline = deadline;
    /* Retries due after the deadline will not happen. */
    while ((r = heap_pop(&c->retry)) != NULL) {
        if (r->t_due <= deadline) {
            heap_push(&keep, r);
        } else {
            map_remove(&c->map, r);
            req_final(c, r, APNS_KIND_GAVE_UP, r->status,
                      "the APNs client stopped before the retry was due", NULL, 0);
        }
    }
    free(c->retry.v);
    c->retry = keep;
    arm(c->stop_ev, deadline, now);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct apns_client *c = arg;
    struct batch *b, *next;
    struct apns_identity *id;
    SSL_CTX *ctx;
    bool stop;
    int64_t deadline, now = apns_now_ms();

    (void)fd;
    (void)what;
    pthread_mutex_lock(&c->mu);
    b = c->in_head;
    c->in_head = c->in_tail = NULL;
    c->in_count = 0;
    id = c->new_id;
    ctx = c->new_ctx;
    c->new_id = NULL;
    c->new_ctx = NULL;
    stop = c->stop_requested;
    deadline = c->stop_deadline;
    pthread_mutex_unlock(&c->mu);
    if (id)
        apply_identity(c, id, ctx);
    for (; b; b = next) {
        next = b->next;
        for (size_t i = 0; i < b->n; i++)
            intake(c, &b->p[i], b->t_submit, now);
        free(b);
    }
    if (stop && !c->stopping)
        begin_stop(c, deadline);
    schedule(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct apns_client *c = arg;

    (void)fd;
    (void)what;
    schedule(c);
}

/*
 * A connection with requests in flight that has been silent for ping_timeout_ms gets a
 * PING; no answer within another ping_timeout_ms and it is dropped (its requests go out
 * again elsewhere).  This finds black holes long before the idle PING would.
 */
static void check_silent(struct apns_client *c, int64_t now)
{
    struct scepter_error err;

    for (struct conn *k = c->conns; k; k = k->next) {
        if (k->state != CS_READY || k->dead || k->sess == NULL ||
            apns_session_open_streams(k->sess) == 0)
            continue;
        if (k->ping_out) {
            if (now - k->ping_sent_ms >= c->cfg.ping_timeout_ms) {
                snprintf(k->fail, sizeof(k->fail),
                         "PING not answered within %d ms with %zu requests in flight",
                         c->cfg.ping_timeout_ms, apns_session_open_streams(k->sess));
                k->dead = true;
            }
        } else if (now - k->last_rx_ms >= c->cfg.ping_timeout_ms &&
                   apns_session_ping(k->sess, &err) == 0) {
            k->ping_out = true;
            k->ping_sent_ms = now;
            STAT_ADD(c, pings, 1);
        }
    }
}

static void house_cb(evutil_socket_t fd, short what, void *arg)
{
    struct apns_client *c = arg;
    int64_t now = apns_now_ms();

    (void)fd;
    (void)what;
    expire_queued(c, now);
    check_silent(c, now);
    schedule(c);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct apns_client *c = arg;

    (void)fd;
    (void)what;
    if (c->stop_done)
        return;
    log_warnx("apns: stop deadline reached with %zu pushes unanswered and %zu queued; giving up "
              "on them",
              c->in_flight, c->ready.n + c->held.n + c->retry.n);
    finish_stop(c);
}

static void *loop_main(void *arg)
{
    struct apns_client *c = arg;

    /* The loop idles between pushes: only event_active() wakes it. */
    event_base_loop(c->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* --- public ------------------------------------------------------------------------------- */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void evthread_setup(void)
{
    if (evthread_use_pthreads() != 0)
        fatalx("apns: libevent has no pthreads support");
}

static int config_check(const struct apns_config *cfg, struct scepter_error *err)
{
    if (cfg->connections < 1 || cfg->connections > 64)
        return scepter_err(err, SCEPTER_EINVAL, "apns_connections",
                           "apns_connections: %d is not in 1..64", cfg->connections);
    if (cfg->coalesce_ms < 0 || cfg->coalesce_ms > 60000)
        return scepter_err(err, SCEPTER_EINVAL, "apns_coalesce_ms",
                           "apns_coalesce_ms: %d is not in 0..60000", cfg->coalesce_ms);
    if (cfg->priority != 10 && cfg->priority != 5 && cfg->priority != 1)
        return scepter_err(err, SCEPTER_EINVAL, "apns_priority",
                           "apns_priority: %d is not one of 10, 5, 1", cfg->priority);
    if (cfg->expiration_s < 0 || cfg->expiration_s > 30 * 86400)
        return scepter_err(err, SCEPTER_EINVAL, "apns_expiration",
                           "apns_expiration: %d is not in 0..2592000 seconds", cfg->expiration_s);
    if (cfg->max_attempts < 1 || cfg->max_attempts > 100)
        return scepter_err(err, SCEPTER_EINVAL, "max_attempts", "max_attempts: %d is not in 1..100",
                           cfg->max_attempts);
    if (cfg->retry_base_ms < 1 || cfg->retry_max_ms < cfg->retry_base_ms ||
        cfg->reconnect_base_ms < 1 || cfg->reconnect_max_ms < cfg->reconnect_base_ms)
        return scepter_err(err, SCEPTER_EINVAL, "retry_base_ms",
                           "back-off: base delays must be >= 1 ms and not above their maximum");
    if (cfg->connect_timeout_ms < 1 || cfg->ping_timeout_ms < 1 || cfg->ping_interval_ms < 0 ||
        cfg->queue_timeout_ms < 0)
        return scepter_err(err, SCEPTER_EINVAL, "connect_timeout_ms", "timeouts must be positive");
    if (cfg->max_queue < 1)
        return scepter_err(err, SCEPTER_EINVAL, "max_queue", "max_queue must be at least 1");
    return 0;
}

struct apns_client *apns_client_new(const struct apns_config *cfg, struct apns_identity *id,
                                    apns_result_fn cb, void *arg, struct scepter_error *err)
{
    struct apns_client *c = NULL;
    struct apns_endpoint ep;
    SSL_CTX *ctx = NULL;

    if (cb == NULL || id == NULL) {
        scepter_err(err, SCEPTER_EINVAL, NULL,
                    "apns: a push identity and a result callback "
                    "are required");
        return NULL;
    }
    if (config_check(cfg, err) != 0 || apns_endpoint_parse(cfg->url, &ep, err) != 0)
        return NULL;
    ctx = apns_tls_ctx_new(id, cfg->ca_file, err);
    if (ctx == NULL)
        return NULL;
    pthread_once(&evthread_once, evthread_setup);
    c = xcalloc(1, sizeof(*c));
    c->cfg = *cfg;
    c->url = xstrdup(cfg->url);
    c->ca_file = cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
    c->cfg.url = c->url;
    c->cfg.ca_file = c->ca_file;
    c->ep = ep;
    c->cb = cb;
    c->cb_arg = arg;
    pthread_mutex_init(&c->mu, NULL);
    if (RAND_bytes((unsigned char *)&c->rng, sizeof(c->rng)) != 1)
        c->rng = (uint64_t)apns_now_ms() ^ (uint64_t)(uintptr_t)c;
    c->base = event_base_new();
    if (c->base == NULL)
        fatalx("apns: cannot create an event base");
    c->dns = evdns_base_new(c->base,
                            EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (c->dns == NULL) /* no resolv.conf: names from /etc/hosts and IP literals still work */
        c->dns = evdns_base_new(c->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (c->dns == NULL)
        fatalx("apns: cannot create a DNS resolver");
    c->wake_ev = event_new(c->base, -1, 0, wake_cb, c);
    c->held_ev = evtimer_new(c->base, timer_cb, c);
    c->retry_ev = evtimer_new(c->base, timer_cb, c);
    c->reconnect_ev = evtimer_new(c->base, timer_cb, c);
    c->house_ev = evtimer_new(c->base, house_cb, c);
    c->stop_ev = evtimer_new(c->base, stop_cb, c);
    c->ctx = ctx;
    c->topic = xstrdup(apns_identity_topic(id));
    c->id = apns_identity_ref(id);
    str_copy(c->stats.topic, sizeof(c->stats.topic), c->topic);
    c->stats.cert_not_after = apns_identity_not_after(id);
    c->stats.state = APNS_STATE_IDLE;
    return c;
}

int apns_client_start(struct apns_client *c, struct scepter_error *err)
{
    int rc;

    if (c->started)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "apns: the client runs already");
    rc = pthread_create(&c->thread, NULL, loop_main, c);
    if (rc != 0)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "apns: cannot start the thread: %s",
                           strerror(rc));
    c->started = true;
    return 0;
}

int apns_client_push(struct apns_client *c, const struct apns_push *pushes, size_t n,
                     size_t *invalid, struct scepter_error *err)
{
    size_t strbytes = 0, queued, nbad = 0, nok, k = 0;
    unsigned char *ok = n ? xcalloc(n, 1) : NULL;
    struct batch *b = NULL;
    char *s;
    int rc = 0;

    if (invalid)
        *invalid = 0;
    if (err)
        scepter_err_clear(err);
    for (size_t i = 0; i < n; i++) {
        struct scepter_error perr;
        const struct apns_push *p = &pushes[i];
        if (apns_push_validate(p, &perr) != 0) {
            /* Skipped and counted: the others in the batch still go. */
            if (nbad++ == 0 && err)
                scepter_err(err, SCEPTER_EINVAL, perr.field, "pushes[%zu] (%.64s): %s", i,
                            p->enrollment_id ? p->enrollment_id : "?", perr.msg);
            continue;
        }
        ok[i] = 1;
        strbytes += strlen(p->enrollment_id) + strlen(p->token_hex) + strlen(p->push_magic) +
                    (p->topic ? strlen(p->topic) : 0) + 4;
    }
    nok = n - nbad;
    if (invalid)
        *invalid = nbad;
    if (nbad > 0) {
        pthread_mutex_lock(&c->mu);
        c->stats.invalid += nbad;
        pthread_mutex_unlock(&c->mu);
    }
    if (nok == 0) {
        free(ok);
        return 0;
    }
    b = xmalloc(sizeof(*b) + nok * sizeof(struct apns_push) + strbytes);
    b->next = NULL;
    b->n = nok;
    b->t_submit = apns_now_ms();
    b->p = (struct apns_push *)(b + 1);
    s = (char *)(b->p + nok);
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        const struct apns_push *p = &pushes[i];
        const char *src[4] = {p->enrollment_id, p->token_hex, p->push_magic,
                              p->topic ? p->topic : ""};
        const char **dst[4] = {&b->p[k].enrollment_id, &b->p[k].token_hex, &b->p[k].push_magic,
                               &b->p[k].topic};
        for (int j = 0; j < 4; j++) {
            size_t len = strlen(src[j]) + 1;
            memcpy(s, src[j], len);
            *dst[j] = s;
            s += len;
        }
        k++;
    }
    free(ok);
    pthread_mutex_lock(&c->mu);
    queued = c->in_count + c->stats.queued + c->stats.in_flight;
    if (c->refuse) {
        rc = scepter_err(err, SCEPTER_EUNAVAIL, NULL, "apns: the client is stopping");
    } else if (queued + nok > c->cfg.max_queue) {
        rc = scepter_err(err, SCEPTER_EUNAVAIL, NULL,
                         "apns: push queue full (%zu waiting, limit %zu); try again later", queued,
                         c->cfg.max_queue);
    } else {
        if (c->in_tail)
            c->in_tail->next = b;
        else
            c->in_head = b;
        c->in_tail = b;
        c->in_count += nok;
        c->stats.submitted += nok;
        b = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(b);
    if (rc == 0)
        event_active(c->wake_ev, EV_READ, 0);
    return rc;
}

int apns_client_set_identity(struct apns_client *c, struct apns_identity *id,
                             struct scepter_error *err)
{
    SSL_CTX *ctx = apns_tls_ctx_new(id, c->ca_file, err);
    SSL_CTX *old_ctx;
    struct apns_identity *old_id;

    if (ctx == NULL)
        return err ? err->code : SCEPTER_ECRYPTO;
    pthread_mutex_lock(&c->mu);
    old_ctx = c->new_ctx;
    old_id = c->new_id;
    c->new_ctx = ctx;
    c->new_id = apns_identity_ref(id);
    /* The topic answers at once, though connections switch on the loop. */
    str_copy(c->stats.topic, sizeof(c->stats.topic), apns_identity_topic(id));
    c->stats.cert_not_after = apns_identity_not_after(id);
    pthread_mutex_unlock(&c->mu);
    SSL_CTX_free(old_ctx);
    apns_identity_free(old_id);
    if (c->started) {
        event_active(c->wake_ev, EV_READ, 0);
    } else {
        pthread_mutex_lock(&c->mu);
        id = c->new_id;
        ctx = c->new_ctx;
        c->new_id = NULL;
        c->new_ctx = NULL;
        pthread_mutex_unlock(&c->mu);
        apply_identity(c, id, ctx);
    }
    return 0;
}

void apns_client_topic(struct apns_client *c, char *out, size_t size)
{
    pthread_mutex_lock(&c->mu);
    str_copy(out, size, c->stats.topic);
    pthread_mutex_unlock(&c->mu);
}

void apns_client_stats(struct apns_client *c, struct apns_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->queued += c->in_count;
    pthread_mutex_unlock(&c->mu);
}

void apns_client_stop(struct apns_client *c, int timeout_ms)
{
    pthread_mutex_lock(&c->mu);
    c->refuse = true;
    if (!c->stop_requested) {
        c->stop_requested = true;
        c->stop_deadline = apns_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    }
    pthread_mutex_unlock(&c->mu);
    if (c->started && !c->joined) {
        event_active(c->wake_ev, EV_READ, 0);
        pthread_join(c->thread, NULL);
        c->joined = true;
    } else if (!c->started && !c->stop_done) {
        /* Never ran: report what was queued, on the caller's thread. */
        struct batch *b, *next;
        pthread_mutex_lock(&c->mu);
        b = c->in_head;
        c->in_head = c->in_tail = NULL;
        c->in_count = 0;
        pthread_mutex_unlock(&c->mu);
        for (; b; b = next) {
            next = b->next;
            for (size_t i = 0; i < b->n; i++) {
                struct req *r = req_new(&b->p[i], b->t_submit);
                req_final(c, r, APNS_KIND_GAVE_UP, 0,
                          "the APNs client stopped before it was started", NULL, 0);
            }
            free(b);
        }
        c->stop_done = true;
        publish_gauges(c);
    }
}

void apns_client_free(struct apns_client *c)
{
    struct batch *b, *next;

    if (c == NULL)
        return;
    apns_client_stop(c, 2000);
    while (c->conns)
        conn_free(c->conns);
    for (b = c->in_head; b; b = next) {
        next = b->next;
        free(b);
    }
    free(c->retry.v);
    free(c->map.b);
    event_free(c->wake_ev);
    event_free(c->held_ev);
    event_free(c->retry_ev);
    event_free(c->reconnect_ev);
    event_free(c->house_ev);
    event_free(c->stop_ev);
    evdns_base_free(c->dns, 1);
    event_base_free(c->base);
    SSL_CTX_free(c->ctx);
    SSL_CTX_free(c->new_ctx);
    apns_identity_free(c->new_id);
    apns_identity_free(c->id);
    free(c->topic);
    free(c->url);
    free(c->ca_file);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
