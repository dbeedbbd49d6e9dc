/*
 * The scepter daemon's runtime: listeners, TLS, worker threads and shutdown.
 *
 * Each worker thread has its own event_base, its own evhttp bound to the shared port with
 * SO_REUSEPORT (the kernel spreads connections), and its own store connection; store calls are
 * synchronous inside a worker, so there are no locks on the request path.  An evhttp callback
 * gathers the request into a struct mdm_request, calls the pure router, and sends exactly one
 * reply.  The main thread owns signals and the background jobs.
 *
 * Shutdown (SIGTERM/SIGINT): every worker stops accepting, answers "Connection: close" from
 * then on, waits for in-flight requests to finish (bounded by request_timeout), flushes its
 * batched last-seen times, and exits; the process exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/mdm.h"
#include "mdm/mdm_int.h"
#include "mdm/metrics_int.h"
#include "mdm/server_int.h"

/* ---------------------------------------------------------------------------------------- */
/* The set of enrollments seen since the last flush (batched last_seen)                     */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void touchset_add(struct touchset *t, const char *id)
{
    size_t i;

    if (t->cap == 0 || (t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        char **nslots = xcalloc(ncap, sizeof(char *));
        for (size_t j = 0; j < t->cap; j++) {
            if (t->slots[j] == NULL)
                continue;
            for (i = hash_str(t->slots[j]) & (ncap - 1); nslots[i]; i = (i + 1) & (ncap - 1))
                ;
            nslots[i] = t->slots[j];
        }
        free(t->slots);
        t->slots = nslots;
        t->cap = ncap;
    }
    for (i = hash_str(id) & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1))
        if (strcmp(t->slots[i], id) == 0)
            return;
    t->slots[i] = xstrdup(id);
    t->n++;
}

static void touchset_flush(struct mdm_worker *w)
{
    struct touchset *t = &w->touched;
    struct scepter_error err;
    const char **ids;
    size_t n = 0;

    if (t->n == 0)
        return;
    ids = xcalloc(t->n, sizeof(char *));
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            ids[n++] = t->slots[i];
    if (store_touch(w->store, ids, n, (int64_t)time(NULL), &err) < 0)
        log_warnx("worker %d: last-seen flush of %zu enrollments failed: %s", w->index, n, err.msg);
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i]);
        t->slots[i] = NULL;
    }
    t->n = 0;
    free(ids);
}

void mdm_touch(struct mdm_ctx *ctx, const char *enrollment_id)
{
    if (ctx->worker == NULL) {
        const char *ids[1] = {enrollment_id};
        struct scepter_error err;
        if (store_touch(ctx->store, ids, 1, (int64_t)time(NULL), &err) < 0)
            log_warnx("last-seen update failed: %s", err.msg);
        return;
    }
    touchset_add(&ctx->worker->touched, enrollment_id);
    if (ctx->worker->touched.n >= MDM_TOUCH_FLUSH_AT)
        touchset_flush(ctx->worker);
}

/* Write last_used of the API keys used since the last flush (at most once a minute a key). */
static void keys_used_flush(struct mdm_worker *w, bool all)
{
    struct scepter_error err;

    for (size_t i = 0; i < w->nkeys_used; i++) {
        if (!all && w->keys_used[i].used < w->keys_used[i].written + MDM_KEY_USED_PRECISION)
            continue;
        if (w->keys_used[i].used == w->keys_used[i].written)
            continue;
        if (store_apikey_touch(w->store, w->keys_used[i].id, w->keys_used[i].used, &err) != 0)
            log_warnx("worker %d: last_used of API key %lld not written: %s", w->index,
                      (long long)w->keys_used[i].id, err.msg);
        w->keys_used[i].written = w->keys_used[i].used;
    }
}

void mdm_apikey_used(struct mdm_ctx *ctx, int64_t id, int64_t now)
{
    struct mdm_worker *w = ctx->worker;
    struct scepter_error err;
    size_t i;

    if (w == NULL) {
        if (store_apikey_touch(ctx->store, id, now, &err) != 0)
            log_warnx("last_used of API key %lld not written: %s", (long long)id, err.msg);
        return;
    }
    for (i = 0; i < w->nkeys_used && w->keys_used[i].id != id; i++)
        ;
    if (i == w->nkeys_used) {
        if (i == MDM_KEYS_USED_SLOTS) { /* full: write them all, start again */
            keys_used_flush(w, true);
            w->nkeys_used = i = 0;
        }
        w->keys_used[i].id = id;
        w->keys_used[i].written = 0;
        w->nkeys_used++;
    }
    w->keys_used[i].used = now;
}

/* ---------------------------------------------------------------------------------------- */
/* Request plumbing                                                                          */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Move the worker to the newest configuration snapshot (SIGHUP) and drop its verified
 * identities when a reload or a revocation asked for it; cheap when nothing changed (two
 * atomic loads).  Called at the start of every request, in the worker's thread.
 */
/* evhttp's limit: the larger of the two; mdm_route enforces each per route (413). */
static int64_t body_limit(const struct cfg *cfg)
{
    return cfg->max_device_body_bytes > cfg->max_api_body_bytes ? cfg->max_device_body_bytes
                                                                : cfg->max_api_body_bytes;
}

static void worker_refresh(struct mdm_worker *w)
{
    unsigned long gen = __atomic_load_n(&w->srv->conf_gen, __ATOMIC_ACQUIRE);
    unsigned long cgen = __atomic_load_n(&w->srv->cache_gen, __ATOMIC_ACQUIRE);

    if (w->conf == NULL || w->conf->gen != gen) {
        struct mdm_conf *c = mdm_conf_get(w->srv);
        const struct cfg *cfg = c->cfg;

        mdm_conf_put(w->srv, w->conf);
        w->conf = c;
        for (int i = 0; i < 2; i++) {
            struct evhttp *h = i ? w->http : w->https;
            if (h == NULL)
                continue;
            evhttp_set_timeout(h, (int)cfg->request_timeout);
            evhttp_set_max_body_size(h, body_limit(cfg));
        }
    }
    if (cgen != w->cache_gen) {
        memset(w->idcache->slot, 0, sizeof(w->idcache->slot));
        w->cache_gen = cgen;
    }
}

static void ctx_init(struct mdm_ctx *ctx, struct mdm_worker *w)
{
    ctx->srv = w->srv;
    ctx->conf = w->conf;
    ctx->cfg = w->conf->cfg;
    ctx->store = w->store;
    ctx->worker = w;
}

static const char *evhttp_header_fn(const void *arg, const char *name)
{
    return evhttp_find_header((struct evkeyvalq *)(uintptr_t)arg, name);
}

static int evhttp_header_count_fn(const void *arg, const char *name)
{
    const struct evkeyvalq *h = arg;
    const struct evkeyval *kv;
    int n = 0;

    for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next)
        if (strcasecmp(kv->key, name) == 0)
            n++;
    return n;
}

static enum mdm_method method_of(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return MDM_GET;
    case EVHTTP_REQ_POST:
        return MDM_POST;
    case EVHTTP_REQ_PUT:
        return MDM_PUT;
    case EVHTTP_REQ_DELETE:
        return MDM_DELETE;
    case EVHTTP_REQ_PATCH:
        return MDM_PATCH;
    case EVHTTP_REQ_HEAD:
        return MDM_HEAD;
    default:
        return MDM_OTHER;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* TLS connections: the per-worker limit and the deadline for a whole request                */

/*
 * One accepted TLS connection, hung on its SSL object (which lives exactly as long as the
 * connection).  evhttp's own timeout only bounds each read, so a client that sends a byte
 * every few seconds would hold a connection forever (slowloris): `deadline` bounds the whole
 * request instead — armed at accept and after each reply, disarmed when a request has
 * arrived whole — and shuts the socket down when it fires (evhttp then frees the connection
 * as after any peer close).
 */
struct conn {
    struct mdm_worker *w;
    struct bufferevent *bev;
    struct event *deadline;
    bool refused; /* over max_connections: the handshake fails */
};

static int conn_ex_index = -1;

/* One second past evhttp's own inactivity timeout, which closes a quiet connection first:
 * this one fires only for a client that keeps trickling bytes. */
static void conn_arm(struct conn *c)
{
    struct timeval tv = {c->w->conf->cfg->request_timeout + 1, 0};
    event_add(c->deadline, &tv);
}

static void conn_request_arrived(struct conn *c)
{
    if (c)
        event_del(c->deadline);
}

static void conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    evutil_socket_t sock = bufferevent_getfd(c->bev);

    (void)fd;
    (void)what;
    if (sock >= 0) {
        mdm_metrics_connection_refused(c->w->srv, true);
        shutdown(sock, SHUT_RDWR);
    }
}

/*
 * A reply handed to evhttp counts in w->writing until exactly one of these: it is fully
 * written (on_complete), or its connection is freed first (on_conn_close: the peer reset it,
 * a write failed or timed out) — evhttp then frees the request without calling on_complete.
 * Counting only on_complete leaked one per such reply, and a worker left above 0 waited out
 * request_timeout (30 s) at shutdown.  evhttp serves one request at a time per connection,
 * so the connection's close callback is set for the reply in progress and cleared when it
 * completes.
 */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mdm_worker *w = arg;

    (void)evcon;
    w->writing--;
    w->last_activity_ms = now_ms();
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    struct mdm_worker *w = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    struct conn *c = ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;

    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    w->writing--;
    w->last_activity_ms = now_ms();
    if (c)
        conn_arm(c); /* the next request on this keep-alive connection */
}

static void log_request(const struct mdm_request *r, const struct mdm_reply *reply,
                        int64_t elapsed_us)
{
    char status[8], us[24];
    enum log_level lvl = LOG_LVL_INFO;

    if (reply->status >= 500)
        lvl = LOG_LVL_WARN;
    else if (reply->status == 200 && reply->event && strcmp(reply->event, "connect") == 0 &&
             reply->message_type && strcmp(reply->message_type, "Idle") == 0 &&
             reply->body.len == 0)
        lvl = LOG_LVL_DEBUG; /* empty-queue polls: thousands per second */
    if (!log_enabled(lvl))
        return;
    snprintf(status, sizeof(status), "%d", reply->status);
    snprintf(us, sizeof(us), "%lld", (long long)elapsed_us);
    log_kv(lvl, reply->event ? reply->event : "http", "req", r->id, "peer", r->peer_addr, "path",
           r->path, "type", reply->message_type, "enrollment",
           reply->enrollment[0] ? reply->enrollment : NULL, "command",
           reply->command_uuid[0] ? reply->command_uuid : NULL, "status", status, "us", us,
           "reason", reply->reason[0] ? reply->reason : NULL, NULL);
}

/* Send a reply and log it; ts0 is when the request arrived. */
static void send_reply(struct mdm_worker *w, struct evhttp_request *req, const char *id,
                       const char *peer, const char *path, struct mdm_reply *reply,
                       const struct timespec *ts0)
{
    struct evkeyvalq *out_headers = evhttp_request_get_output_headers(req);
    struct mdm_request r;
    struct timespec ts1;
    int64_t us;

    if (reply->content_type)
        evhttp_add_header(out_headers, "Content-Type", reply->content_type);
    for (int i = 0; i < reply->nheaders; i++)
        evhttp_add_header(out_headers, reply->headers[i].name, reply->headers[i].value);
    if (w->draining)
        evhttp_add_header(out_headers, "Connection", "close");
    /* Answered: out of inflight.  A deferred request whose connection closed meanwhile
     * (evhttp detached it and frees it here) has nothing left to write. */
    w->inflight--;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) {
        w->writing++;
        evhttp_connection_set_closecb(evcon, on_conn_close, w);
    }
    struct evbuffer *body = evbuffer_new();
    if (reply->body.len)
        evbuffer_add(body, reply->body.data, reply->body.len);
    evhttp_send_reply(req, reply->status, NULL, body);
    evbuffer_free(body);
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    us = (int64_t)(ts1.tv_sec - ts0->tv_sec) * 1000000 + (ts1.tv_nsec - ts0->tv_nsec) / 1000;
    memset(&r, 0, sizeof(r));
    str_copy(r.id, sizeof(r.id), id);
    r.peer_addr = peer;
    r.path = path;
    log_request(&r, reply, us);
    mdm_metrics_request(w->srv, reply, us);
}

/* Answer the Idle polls taken in this loop turn with one store round trip. */
static void idle_flush(struct mdm_worker *w)
{
    struct idle_batch b = w->idle;
    struct store_report *reps;
    struct store_next *nexts;
    struct scepter_error *errs;
    struct mdm_ctx ctx;
    int *rcs;

    if (b.n == 0)
        return;
    /* Detach: replies sent below must not see a half-answered batch. */
    w->idle.items = NULL;
    w->idle.n = w->idle.cap = 0;
    reps = xcalloc(b.n, sizeof(*reps));
    nexts = xcalloc(b.n, sizeof(*nexts));
    errs = xcalloc(b.n, sizeof(*errs));
    rcs = xcalloc(b.n, sizeof(*rcs));
    for (size_t i = 0; i < b.n; i++) {
        reps[i].enrollment_id = b.items[i].enrollment_id;
        reps[i].device_id = b.items[i].device_id;
        reps[i].cert_hash = b.items[i].hash[0] ? b.items[i].hash : NULL;
        reps[i].status = STORE_STATUS_IDLE;
    }
    int64_t now = (int64_t)time(NULL);
    (void)store_connect_idle_many(w->store, reps, b.n, now, nexts, rcs, errs);
    ctx_init(&ctx, w);
    for (size_t i = 0; i < b.n; i++) {
        struct idle_item *it = &b.items[i];
        struct mdm_reply reply;

        mdm_reply_init(&reply);
        mdm_idle_answer(&ctx, it->id, it->enrollment_id, it->device_id, reps[i].cert_hash, rcs[i],
                        &errs[i], &nexts[i], now, &reply);
        send_reply(w, it->http, it->id, it->peer, it->path, &reply, &it->t0);
        mdm_reply_free(&reply);
        store_next_clear(&nexts[i]);
        free(it->peer);
        free(it->path);
    }
    free(reps);
    free(nexts);
    free(errs);
    free(rcs);
    free(b.items);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    idle_flush(arg);
}

#define IDLE_BATCH_MAX 256

/* What defer_idle needs besides the request (on on_request's stack). */
struct defer_ctx {
    struct mdm_worker *w;
    struct evhttp_request *req;
    const struct timespec *t0;
};

/* mdm_request.defer_idle: take an Idle poll into this turn's batch. */
static int defer_idle(const struct mdm_request *req, const char *enrollment_id,
                      const char *device_id, const char *cert_hash)
{
    struct defer_ctx *dc = req->defer_arg;
    struct mdm_worker *w = dc->w;
    struct idle_item *it;

    if (strlen(enrollment_id) >= sizeof(it->enrollment_id) ||
        strlen(device_id) >= sizeof(it->device_id))
        return -1;
    if (w->idle.n == w->idle.cap) {
        w->idle.cap = w->idle.cap ? w->idle.cap * 2 : 16;
        w->idle.items = xreallocarray(w->idle.items, w->idle.cap, sizeof(*w->idle.items));
    }
    it = &w->idle.items[w->idle.n++];
    memset(it, 0, sizeof(*it));
    it->http = dc->req;
    str_copy(it->id, sizeof(it->id), req->id);
    str_copy(it->enrollment_id, sizeof(it->enrollment_id), enrollment_id);
    str_copy(it->device_id, sizeof(it->device_id), device_id);
    str_copy(it->hash, sizeof(it->hash), cert_hash ? cert_hash : "");
    it->peer = req->peer_addr ? xstrdup(req->peer_addr) : NULL;
    it->path = xstrdup(req->path);
    it->t0 = *dc->t0;
    if (w->idle.n >= IDLE_BATCH_MAX)
        idle_flush(w);
    else if (w->idle.n == 1)
        event_active(w->idle.ev, EV_TIMEOUT, 1);
    return 0;
}

/*
 * Store the result reports taken in this loop turn together (store_connect_many: one commit
 * per batch of up to 16), then answer each: no device hears that its result was taken before
 * the commit that made it durable returned.
 */
static void reports_flush(struct mdm_worker *w)
{
    struct report_batch b = w->reports;
    struct store_report *reps;
    struct store_answer *answers;
    struct mdm_ctx ctx;
    int64_t now;

    if (b.n == 0)
        return;
    /* Detach: replies sent below must not see a half-answered batch. */
    w->reports.items = NULL;
    w->reports.n = w->reports.cap = 0;
    reps = xcalloc(b.n, sizeof(*reps));
    answers = xcalloc(b.n, sizeof(*answers));
    for (size_t i = 0; i < b.n; i++)
        mdm_report_store(&b.items[i].report, &reps[i]);
    now = (int64_t)time(NULL);
    log_debug("worker %d: %zu result reports stored together", w->index, b.n);
    (void)store_connect_many(w->store, reps, b.n, now, answers);
    ctx_init(&ctx, w);
    for (size_t i = 0; i < b.n; i++) {
        struct report_item *it = &b.items[i];
        struct mdm_reply reply;

        mdm_reply_init(&reply);
        mdm_report_answer(&ctx, &it->report, &answers[i], now, &reply);
        send_reply(w, it->http, it->report.req_id, it->peer, it->path, &reply, &it->t0);
        mdm_reply_free(&reply);
        store_answer_clear(&answers[i]);
        mdm_report_clear(&it->report);
        free(it->peer);
        free(it->path);
    }
    free(reps);
    free(answers);
    free(b.items);
}

static void reports_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reports_flush(arg);
}

#define REPORT_BATCH_MAX 256

/* mdm_request.defer_report: take a result report (and what it owns) into this turn's batch. */
static int defer_report(const struct mdm_request *req, struct mdm_report *report)
{
    struct defer_ctx *dc = req->defer_arg;
    struct mdm_worker *w = dc->w;
    struct report_item *it;

    if (w->reports.n == w->reports.cap) {
        w->reports.cap = w->reports.cap ? w->reports.cap * 2 : 16;
        w->reports.items =
            xreallocarray(w->reports.items, w->reports.cap, sizeof(*w->reports.items));
    }
    it = &w->reports.items[w->reports.n++];
    memset(it, 0, sizeof(*it));
    it->http = dc->req;
    it->report = *report;
    /* The request's body lives in evhttp's buffer until the reply: copied, for clarity of
     * ownership (the report owns everything it points to). */
    it->report.raw_copy = report->raw_len ? xmemdup(report->raw, report->raw_len) : NULL;
    it->report.raw = it->report.raw_copy;
    it->peer = req->peer_addr ? xstrdup(req->peer_addr) : NULL;
    it->path = xstrdup(req->path);
    it->t0 = *dc->t0;
    if (w->reports.n >= REPORT_BATCH_MAX)
        reports_flush(w);
    else if (w->reports.n == 1)
        event_active(w->reports.ev, EV_TIMEOUT, 1);
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct mdm_worker *w = arg;
    struct mdm_request r;
    struct mdm_reply reply;
    struct mdm_ctx ctx;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    char *peer = NULL, *path = NULL;
    ev_uint16_t port = 0;
    struct timespec ts0;

    clock_gettime(CLOCK_MONOTONIC, &ts0);
    w->inflight++;
    w->last_activity_ms = now_ms();
    worker_refresh(w);
    evhttp_request_set_on_complete_cb(req, on_complete, w);
    if (ssl)
        conn_request_arrived(SSL_get_ex_data(ssl, conn_ex_index));

    memset(&r, 0, sizeof(r));
    r.method = method_of(evhttp_request_get_command(req));
    path = evhttp_uridecode(evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/", 0, NULL);
    r.path = path ? path : "/";
    r.query = evhttp_uri_get_query(uri);
    r.body_len = evbuffer_get_length(in);
    r.body = r.body_len ? evbuffer_pullup(in, -1) : NULL;
    r.header = evhttp_header_fn;
    r.header_count = evhttp_header_count_fn;
    r.header_arg = evhttp_request_get_input_headers(req);
    if (evcon)
        evhttp_connection_get_peer(evcon, &peer, &port);
    r.peer_addr = peer;
    r.tls = ssl != NULL;
    if (ssl) {
        r.peer_cert = SSL_get0_peer_certificate(ssl);
        r.peer_chain = SSL_get_peer_cert_chain(ssl);
    }
    r.idcache = w->idcache;
    snprintf(r.id, sizeof(r.id), "%d-%llu", w->index, (unsigned long long)++w->seq);
    struct defer_ctx dc = {w, req, &ts0};
    if (w->batch_idle)
        r.defer_idle = defer_idle;
    r.defer_report = defer_report;
    r.defer_arg = &dc;

    ctx_init(&ctx, w);
    mdm_reply_init(&reply);
    mdm_route(&ctx, &r, (int64_t)time(NULL), &reply);
    if (reply.status != MDM_REPLY_DEFERRED)
        send_reply(w, req, r.id, r.peer_addr, r.path, &reply, &ts0);
    mdm_reply_free(&reply);
    free(path);
}

static void conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    struct conn *c = ptr;

    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (c == NULL)
        return;
    mdm_metrics_connection(c->w->srv, -1);
    c->w->conns--;
    event_free(c->deadline);
    free(c);
}

/* A connection over the worker's limit fails its handshake at once (a TLS alert), before any
 * certificate work. */
static int conn_client_hello(SSL *ssl, int *alert, void *arg)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_ex_index);

    (void)arg;
    if (c && c->refused) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static struct bufferevent *tls_bevcb(struct event_base *base, void *arg)
{
    struct mdm_worker *w = arg;
    SSL *ssl = SSL_new(w->rt->ssl);
    struct conn *c = xcalloc(1, sizeof(*c));

    c->w = w;
    c->deadline = event_new(base, -1, 0, conn_deadline_cb, c);
    if (w->conns >= w->max_conns) {
        c->refused = true;
        mdm_metrics_connection_refused(w->srv, false);
    }
    w->conns++;
    SSL_set_ex_data(ssl, conn_ex_index, c);
    mdm_metrics_connection(w->srv, +1);
    c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    conn_arm(c);
    return c->bev;
}

/* ---------------------------------------------------------------------------------------- */
/* Listeners                                                                                 */

/* Split "host:port" / "[v6]:port" / ":port". */
static int split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;

    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        snprintf(host, hlen, "%.*s", (int)(end - s - 1), s + 1);
        str_copy(port, plen, end + 2);
        return 0;
    }
    if ((colon = strrchr(s, ':')) == NULL)
        return -1;
    snprintf(host, hlen, "%.*s", (int)(colon - s), s);
    str_copy(port, plen, colon + 1);
    return 0;
}

/*
 * A listening socket with SO_REUSEPORT on addr; *port is the port to bind (0 = ephemeral) and
 * receives the bound port.
 */
static int listen_socket(const char *addr, int *port, struct scepter_error *err)
{
    char host[256], portstr[16];
    struct addrinfo hints, *res = NULL;
    int fd = -1, one = 1, rc;

    if (split_hostport(addr, host, sizeof(host), portstr, sizeof(portstr)) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "listen",
                           "listen: '%s' is not host:port or [v6]:port", addr);
    if (*port > 0)
        snprintf(portstr, sizeof(portstr), "%d", *port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(*host ? host : NULL, portstr, &hints, &res)) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "listen", "listen: %s: %s", addr, gai_strerror(rc));
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = scepter_err(err, SCEPTER_EIO, "listen", "socket: %s", strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* Accepted sockets inherit it: a reply goes out at once instead of waiting (Nagle) for the
     * ACK of the previous segment, which the peer delays by up to 40 ms. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, "listen", "bind %s: %s", addr, strerror(errno));
        goto out;
    }
    if (listen(fd, 4096) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, "listen", "listen %s: %s", addr, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    rc = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

static int verify_accept_all(int ok, X509_STORE_CTX *ctx)
{
    /* Client certificates are verified against the device CA per request
     * (mdm/identity.c), so a bad one gets a logged 403 rather than a TLS alert. */
    (void)ok;
    (void)ctx;
    return 1;
}

static SSL_CTX *tls_context(const struct cfg *cfg, struct scepter_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "tls_cert_file", "tls_cert_file: cannot load %s",
                    cfg->tls_cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "tls_key_file", "tls_key_file: cannot load %s",
                    cfg->tls_key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "tls_key_file",
                    "tls_key_file: does not match the certificate in tls_cert_file");
        goto fail;
    }
    if (!str_empty(cfg->device_ca_file)) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->device_ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept_all);
    }
    /* Idle keep-alive connections (thousands of devices) give back their 16 KB buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"scepter", 7);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 100000);
    /* No TLS 1.3 session tickets.  OpenSSL 3.0 copies the session for a ticket by encoding and
     * decoding it, which decodes the device's client certificate again: 0.5 ms of CPU per new
     * connection (a quarter of a device's whole handshake; bench_mdm, "new TLS connection
     * each").  Devices open a connection per push, and a resumed handshake would decode the
     * certificate from the ticket all the same.  TLS 1.2 session-ID resumption is unchanged. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_client_hello_cb(ctx, conn_client_hello, NULL);
    ERR_clear_error();
    return ctx;
fail:
    scepter_err_openssl(err);
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Workers                                                                                   */

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    keys_used_flush(arg, false);
    touchset_flush(arg);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_worker *w = arg;
    int64_t t = now_ms();

    (void)fd;
    (void)what;
    if ((w->inflight <= 0 && w->writing <= 0 && t - w->last_activity_ms > 250) ||
        t >= w->drain_deadline_ms) {
        if (w->inflight > 0 || w->writing > 0)
            log_warnx("worker %d: %d requests unanswered and %d replies unwritten at the "
                      "shutdown deadline",
                      w->index, w->inflight, w->writing);
        keys_used_flush(w, true);
        touchset_flush(w);
        event_base_loopbreak(w->base);
    }
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_worker *w = arg;
    struct timeval tv = {0, 50000};

    (void)fd;
    (void)what;
    if (w->draining)
        return;
    w->draining = true;
    if (w->https_sock)
        evhttp_del_accept_socket(w->https, w->https_sock);
    if (w->http_sock)
        evhttp_del_accept_socket(w->http, w->http_sock);
    w->https_sock = w->http_sock = NULL;
    w->drain_deadline_ms = now_ms() + w->srv->cfg->request_timeout * 1000;
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_cb, w);
    event_add(w->drain_ev, &tv);
}

static struct evhttp *make_http(struct mdm_worker *w, bool tls)
{
    struct evhttp *http = evhttp_new(w->base);
    const struct cfg *cfg = w->srv->cfg;

    evhttp_set_gencb(http, on_request, w);
    evhttp_set_max_body_size(http, body_limit(cfg));
    evhttp_set_max_headers_size(http, 64 * 1024);
    evhttp_set_timeout(http, (int)cfg->request_timeout);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    if (tls)
        evhttp_set_bevcb(http, tls_bevcb, w);
    return http;
}

static void *worker_main(void *arg)
{
    struct mdm_worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

static void worker_free(struct mdm_worker *w)
{
    idle_flush(w);
    free(w->idle.items);
    if (w->idle.ev)
        event_free(w->idle.ev);
    reports_flush(w);
    free(w->reports.items);
    if (w->reports.ev)
        event_free(w->reports.ev);
    if (w->flush_ev)
        event_free(w->flush_ev);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->drain_ev)
        event_free(w->drain_ev);
    if (w->https)
        evhttp_free(w->https);
    if (w->http)
        evhttp_free(w->http);
    if (w->base)
        event_base_free(w->base);
    store_close(w->store);
    for (size_t i = 0; i < w->touched.cap; i++)
        free(w->touched.slots[i]);
    free(w->touched.slots);
    mdm_idcache_clear(w->idcache);
    if (w->idcache && w->srv)
        mdm_metrics_cache_bytes(w->srv, MDM_CACHE_IDENTITIES, -(long long)sizeof(w->idcache->slot));
    free(w->idcache);
    mdm_conf_put(w->srv, w->conf);
}

static int worker_init(struct mdm_worker *w, struct mdm_runtime *rt, int index,
                       struct scepter_error *err)
{
    const struct cfg *cfg = rt->srv->cfg;
    struct timeval flush = {cfg->last_seen_flush_ms / 1000,
                            (cfg->last_seen_flush_ms % 1000) * 1000};
    int fd, rc;

    w->index = index;
    w->rt = rt;
    w->srv = rt->srv;
    w->idcache = xcalloc(1, sizeof(*w->idcache));
    w->idcache->cert_budget = (size_t)cfg->identity_cache_bytes;
    w->idcache->srv = rt->srv;
    mdm_metrics_cache_bytes(rt->srv, MDM_CACHE_IDENTITIES, (long long)sizeof(w->idcache->slot));
    w->max_conns = cfg->max_connections;
    w->conf = mdm_conf_get(rt->srv);
    w->cache_gen = __atomic_load_n(&rt->srv->cache_gen, __ATOMIC_ACQUIRE);
    if ((rc = store_open(cfg->store, &w->store, err)) != 0)
        return rc;
    w->base = event_base_new();
    if (rt->ssl) {
        w->https = make_http(w, true);
        if ((fd = listen_socket(cfg->listen, &rt->https_port, err)) < 0)
            return fd;
        w->https_sock = evhttp_accept_socket_with_handle(w->https, fd);
    }
    if (!str_empty(cfg->listen_http)) {
        w->http = make_http(w, false);
        if ((fd = listen_socket(cfg->listen_http, &rt->http_port, err)) < 0)
            return fd;
        w->http_sock = evhttp_accept_socket_with_handle(w->http, fd);
    }
    w->flush_ev = event_new(w->base, -1, EV_PERSIST, flush_cb, w);
    event_add(w->flush_ev, &flush);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->idle.ev = event_new(w->base, -1, 0, idle_cb, w);
    /* Both stores: the result reports of one loop turn share one commit. */
    w->reports.ev = event_new(w->base, -1, 0, reports_cb, w);
    /* PostgreSQL: the Idle polls of one loop turn share one statement (a round trip and
     * statement set-up each cost more than the lookup itself).  SQLite is in-process. */
    w->batch_idle = strcmp(store_backend(w->store), "postgres") == 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The server                                                                                */

/* Every MDM_TRIM_SECONDS the main thread hands the heap's free pages back to the system
 * (malloc_trim: all arenas).  A burst of connections or a large reply leaves freed memory
 * scattered between live blocks, which glibc otherwise keeps: RSS would stay at the burst's
 * high-water mark.  scepter_malloc_bytes{kind="free"} in /metrics shows what is held. */
#define MDM_TRIM_SECONDS 30

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct mdm_runtime *rt = arg;

    (void)what;
    if (sig == SIGHUP) {
        mdm_reload(rt);
        return;
    }
    log_info("signal %d: shutting down (finishing in-flight requests)", (int)sig);
    for (int i = 0; i < rt->nworkers; i++)
        event_active(rt->workers[i].stop_ev, 0, 0);
    rt->stopping = true;
    event_base_loopbreak(rt->base);
}

static int write_port_file(const struct mdm_runtime *rt, struct scepter_error *err)
{
    char line[64];

    if (str_empty(rt->srv->cfg->port_file))
        return 0;
    snprintf(line, sizeof(line), "https=%d http=%d\n", rt->https_port, rt->http_port);
    return file_write(rt->srv->cfg->port_file, line, strlen(line), 0644, err);
}

/* Allow as many open files as the system lets us: one per device connection. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1048576) {
        struct rlimit want = {1048576, 1048576};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) /* root may raise the hard limit */
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open-file limit");
}

int mdm_serve(struct cfg *cfg, struct scepter_error *err)
{
    struct mdm_runtime rt;
    struct store *main_store = NULL;
    struct event *sigs[4] = {NULL, NULL, NULL, NULL}, *trim_ev = NULL;
    static const int signums[4] = {SIGTERM, SIGINT, SIGHUP, 0};
    int rc, nworkers;

    memset(&rt, 0, sizeof(rt));
    evthread_use_pthreads();
    raise_nofile();
    if (conn_ex_index < 0)
        conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
    signal(SIGPIPE, SIG_IGN);
    store_set_timeout_ms((int)cfg->store_timeout * 1000);
    store_set_sqlite_cache_bytes(cfg->sqlite_cache_bytes);
    store_set_sqlite_page_buffer_bytes(cfg->sqlite_page_buffer_bytes);
    /* Migrations first, once, so the workers' connections open on the current schema. */
    if ((rc = store_open(cfg->store, &main_store, err)) != 0) {
        cfg_free(cfg);
        return rc;
    }
    if ((rt.srv = mdm_server_core_new(cfg, err)) == NULL) {
        store_close(main_store);
        return err ? err->code : SCEPTER_EINVAL;
    }
    rt.srv->rt = &rt;
    rt.store = main_store;
    /* The first admin account from the configuration (mdm/api_operators.c). */
    if ((rc = mdm_operator_bootstrap_config(cfg, main_store, (int64_t)time(NULL), err)) != 0)
        goto out;
    if (str_empty(cfg->listen) && str_empty(cfg->listen_http)) {
        rc = scepter_err(err, SCEPTER_EINVAL, "listen", "listen and listen_http are both empty");
        goto out;
    }
    if (!str_empty(cfg->listen)) {
        if (str_empty(cfg->tls_cert_file)) {
            rc = scepter_err(err, SCEPTER_EINVAL, "tls_cert_file",
                             "tls_cert_file: required for the HTTPS listener '%s' (or set "
                             "listen to empty and serve plain HTTP behind a TLS proxy with "
                             "listen_http)",
                             cfg->listen);
            goto out;
        }
        if ((rt.ssl = tls_context(cfg, err)) == NULL) {
            rc = err ? err->code : SCEPTER_ECRYPTO;
            goto out;
        }
    }
    if ((rc = mdm_runtime_start(&rt, err)) != 0)
        goto out;
    mdm_config_warnings(cfg);
    /* PKCS#12 identities need keys: the pool fills in the background (mdm/enroll.c). */
    mdm_enroll_guard_start(rt.srv->enroll_guard, rt.srv->conf);
    nworkers = cfg_workers(cfg);
    rt.workers = xcalloc((size_t)nworkers, sizeof(*rt.workers));
    for (int i = 0; i < nworkers; i++) {
        rt.nworkers = i + 1;
        if ((rc = worker_init(&rt.workers[i], &rt, i, err)) != 0)
            goto out;
    }
    if ((rc = write_port_file(&rt, err)) != 0)
        goto out;
    for (int i = 0; i < nworkers; i++)
        pthread_create(&rt.workers[i].thread, NULL, worker_main, &rt.workers[i]);
    rt.started = true;
    log_kv(LOG_LVL_INFO, "listening", "https", rt.ssl ? cfg->listen : NULL, "http",
           str_empty(cfg->listen_http) ? NULL : cfg->listen_http, "store",
           store_backend(main_store), "public_url", cfg->public_url, NULL);
    if (rt.ssl)
        log_info("HTTPS on port %d, %d workers", rt.https_port, nworkers);
    if (!str_empty(cfg->listen_http))
        log_info("plain HTTP on port %d", rt.http_port);

    for (int i = 0; signums[i]; i++) {
        sigs[i] = evsignal_new(rt.base, signums[i], on_signal, &rt);
        event_add(sigs[i], NULL);
    }
    {
        struct timeval every = {MDM_TRIM_SECONDS, 0};
        trim_ev = event_new(rt.base, -1, EV_PERSIST, trim_cb, NULL);
        event_add(trim_ev, &every);
    }
    event_base_dispatch(rt.base);
    rc = 0;
out:
    if (rt.started)
        for (int i = 0; i < rt.nworkers; i++) {
            event_active(rt.workers[i].stop_ev, 0, 0);
            pthread_join(rt.workers[i].thread, NULL);
        }
    mdm_runtime_stop(&rt);
    for (int i = 0; i < rt.nworkers; i++)
        worker_free(&rt.workers[i]);
    free(rt.workers);
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (trim_ev)
        event_free(trim_ev);
    if (rt.base)
        event_base_free(rt.base);
    SSL_CTX_free(rt.ssl);
    store_close(rt.store);
    mdm_server_core_free(rt.srv);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
