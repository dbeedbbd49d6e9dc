/*
 * apns-test-server — a real HTTP/2 + TLS server that behaves like APNs for MDM pushes, for
 * Scepter's tests, benchmarks and device simulator.  It validates every request the way
 * APNs does (POST /3/device/<hex>, apns-topic, apns-push-type: mdm, body exactly
 * {"mdm":"..."}), checks the client certificate, answers with scripted statuses, can be slow,
 * can send GOAWAY after N requests, and forwards accepted pushes to registered HTTP/1.1
 * callbacks so simulated devices "receive" them.  A plain HTTP/1.1 control API reports
 * counters and the latest requests.  Protocol and options: README.md next to this file.
 *
 * One thread, one libevent loop: nghttp2 server sessions fed with mem_recv/mem_send over
 * OpenSSL bufferevents, evhttp for the control API and the callbacks.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_BODY 4096 /* APNs' payload limit */
#define MAX_PATH 600  /* "/3/device/" and the longest token Scepter sends */
#define MAX_FORWARDS                                                                               \
    250000             /* callbacks queued or in flight (a scale run pushes 100,000 at once)       \
                        */
#define MAX_REASONS 64 /* distinct reasons counted */
#define MAX_UIDS    16

struct opts {
    const char *listen, *cert, *key, *client_ca, *topic, *script, *control;
    const char *port_file, *control_port_file;
    long max_streams, delay_ms, goaway_after, log_size, max_lifetime_s;
    bool refuse_client_cert, quiet;
};

struct rule {
    char *prefix;
    int status;
    char *reason;
    long times; /* < 0: always */
    long used;
};

struct count {
    char name[64];
    uint64_t n;
};

struct logent {
    uint64_t seq;
    unsigned conn;
    int32_t stream;
    int64_t t_ms;
    char method[8], path[160], topic[160], push_type[24], priority[8], expiration[24];
    char body[200], uid[160], reason[48];
    int status;
};

struct registration {
    struct registration *next;
    unsigned id;
    char *url, *host, *path;
    int port;
    char **tokens;
    size_t ntokens;
    char *prefix;
    struct evhttp_connection *evcon;
};

struct delayed {
    struct sconn *conn;
    int32_t stream_id;
    int64_t due;
};

struct server {
    struct opts o;
    struct event_base *base;
    SSL_CTX *ctx;
    struct evconnlistener *lis;
    struct evhttp *ctl;
    struct event *sig_term, *sig_int, *lifetime_ev, *delay_ev;
    struct sconn *conns;
    unsigned next_conn;
    struct rule *rules;
    size_t nrules;
    uint64_t apns_id_seq;
    /* counters */
    uint64_t received, bad_requests, goaways, refused_after_goaway, connections, tls_failures;
    uint64_t streams_refused, forwards_ok, forwards_failed, forwards_dropped;
    long open_conns, cur_streams_total, max_streams_seen, max_streams_total;
    uint64_t by_status[600]; /* indexed by status code */
    struct count by_reason[MAX_REASONS], bad_by_reason[MAX_REASONS];
    size_t nreason, nbad;
    char uids[MAX_UIDS][160];
    size_t nuids;
    /* request log ring */
    struct logent *ring;
    size_t ring_next, ring_count;
    uint64_t seq;
    /* callbacks */
    struct registration *regs;
    unsigned next_reg;
    long forwards_pending;
    /* POST /pause-reading: no connection's socket is read (new ones included) until
     * POST /resume-reading; what clients send waits in the kernel's buffers */
    bool reading_paused;
    uint64_t pauses;
    /* constant-delay responses, FIFO */
    struct delayed *dq;
    size_t dq_head, dq_len, dq_cap;
};

struct sstream {
    /* Scalars first: stream_new() zeroes them and only the first byte of each string. */
    struct sstream *prev, *next;
    int32_t id;
    bool has_method, has_path, has_topic, has_push_type, dup, answered, body_too_big;
    struct buf body;
    size_t resp_len, resp_off;
    char method[8], path[MAX_PATH], topic[256], push_type[32], priority[8], expiration[24];
    char apns_id[48];
    char status_str[4];
    char resp[160];
};

static struct sstream *stream_new(int32_t id)
{
    struct sstream *st = xmalloc(sizeof(*st));

    memset(st, 0, offsetof(struct sstream, method));
    st->id = id;
    st->method[0] = st->path[0] = st->topic[0] = st->push_type[0] = '\0';
    st->priority[0] = st->expiration[0] = st->apns_id[0] = '\0';
    return st;
}

struct sconn {
    struct sconn *prev, *next;
    struct server *srv;
    unsigned id;
    struct bufferevent *bev;
    nghttp2_session *h2;
    struct sstream *streams;
    char uid[160];
    struct buf out; /* frames of one flush, written as one block */
    bool handshake_done, closing;
    struct event *linger; /* after our last byte: wait for the client to close */
    uint64_t requests;
    bool goaway_sent;
    int32_t goaway_last;
    long open_streams;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_add(struct count *arr, size_t *n, size_t cap, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(arr[i].name, name) == 0) {
            arr[i].n++;
            return;
        }
    }
    if (*n < cap) {
        str_copy(arr[*n].name, sizeof(arr[*n].name), name);
        arr[(*n)++].n = 1;
    }
}

static char *cert_uid(X509 *cert)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_userId, -1);
    unsigned char *utf8 = NULL;
    char *uid;
    int n;

    if (idx < 0)
        return NULL;
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (n < 0)
        return NULL;
    uid = xmemdup0(utf8, (size_t)n);
    OPENSSL_free(utf8);
    return uid;
}

/* --- script rules --------------------------------------------------------------------------- */

static void rules_free(struct rule *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].prefix);
        free(r[i].reason);
    }
    free(r);
}

/* Parse {"rules":[{"prefix":..,"status":..,"reason":..,"times":..}]} or a bare array. */
static int rules_parse(const char *text, size_t len, struct rule **out, size_t *nout, char *err,
                       size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je), *arr;
    struct rule *rules = NULL;
    size_t n = 0, i;
    json_t *item;
    int rc = -1;

    if (root == NULL) {
        snprintf(err, errlen, "script: invalid JSON at line %d: %s", je.line, je.text);
        return -1;
    }
    arr = json_is_array(root) ? root : json_object_get(root, "rules");
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "script: expected {\"rules\":[...]} or an array");
        goto out;
    }
    rules = xcalloc(json_array_size(arr) + 1, sizeof(*rules));
    json_array_foreach(arr, i, item)
    {
        json_t *p = json_object_get(item, "prefix"), *s = json_object_get(item, "status"),
               *r = json_object_get(item, "reason"), *t = json_object_get(item, "times");
        if (!json_is_object(item) || !json_is_string(p) || !json_is_integer(s) ||
            json_integer_value(s) < 200 || json_integer_value(s) > 599 ||
            (r && !json_is_string(r)) || (t && !json_is_integer(t))) {
            snprintf(err, errlen,
                     "script: rules[%zu]: need \"prefix\" (hex string), \"status\" (200..599), "
                     "optional \"reason\" (string) and \"times\" (integer)",
                     i);
            goto out;
        }
        rules[n].prefix = xstrdup(json_string_value(p));
        for (char *c = rules[n].prefix; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c + 32);
        rules[n].status = (int)json_integer_value(s);
        rules[n].reason = xstrdup(r ? json_string_value(r) : "");
        rules[n].times = t ? (long)json_integer_value(t) : -1;
        n++;
    }
    *out = rules;
    *nout = n;
    rules = NULL;
    rc = 0;
out:
    if (rules)
        rules_free(rules, n);
    json_decref(root);
    return rc;
}

/* --- request log ---------------------------------------------------------------------------- */

static void log_request(struct server *srv, struct sconn *k, struct sstream *st, int status,
                        const char *reason)
{
    struct logent *e;

    if (srv->o.log_size <= 0)
        return;
    e = &srv->ring[srv->ring_next];
    srv->ring_next = (srv->ring_next + 1) % (size_t)srv->o.log_size;
    if (srv->ring_count < (size_t)srv->o.log_size)
        srv->ring_count++;
    e->seq = ++srv->seq;
    e->conn = k->id;
    e->stream = st->id;
    e->t_ms = now_ms();
    str_copy(e->method, sizeof(e->method), st->method);
    str_copy(e->path, sizeof(e->path), st->path);
    str_copy(e->topic, sizeof(e->topic), st->topic);
    str_copy(e->push_type, sizeof(e->push_type), st->push_type);
    str_copy(e->priority, sizeof(e->priority), st->priority);
    str_copy(e->expiration, sizeof(e->expiration), st->expiration);
    if (st->body.len)
        str_copy(e->body, sizeof(e->body), st->body.data);
    else
        e->body[0] = '\0';
    str_copy(e->uid, sizeof(e->uid), k->uid);
    str_copy(e->reason, sizeof(e->reason), reason ? reason : "");
    e->status = status;
}

/* --- callbacks to simulated devices --------------------------------------------------------- */

static void registration_free(struct registration *r)
{
    if (r->evcon)
        evhttp_connection_free(r->evcon);
    for (size_t i = 0; i < r->ntokens; i++)
        free(r->tokens[i]);
    free(r->tokens);
    free(r->url);
    free(r->host);
    free(r->path);
    free(r->prefix);
    free(r);
}

static bool registration_matches(const struct registration *r, const char *token)
{
    if (r->prefix)
        return str_has_prefix(token, r->prefix);
    for (size_t i = 0; i < r->ntokens; i++) {
        if (strcmp(r->tokens[i], token) == 0)
            return true;
    }
    return false;
}

static void forward_done(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;

    srv->forwards_pending--;
    if (req != NULL && evhttp_request_get_response_code(req) >= 200 &&
        evhttp_request_get_response_code(req) < 300)
        srv->forwards_ok++;
    else
        srv->forwards_failed++;
}

static void forward_push(struct server *srv, const char *token, const char *topic, const char *body)
{
    for (struct registration *r = srv->regs; r; r = r->next) {
        struct evhttp_request *req;
        json_t *msg, *payload;
        char *text;

        if (!registration_matches(r, token))
            continue;
        if (srv->forwards_pending >= MAX_FORWARDS) {
            srv->forwards_dropped++;
            continue;
        }
        payload = json_loads(body, 0, NULL);
        msg = json_pack("{s:s, s:s, s:o}", "token", token, "topic", topic, "payload",
                        payload ? payload : json_object());
        text = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        if (r->evcon == NULL) {
            r->evcon = evhttp_connection_base_new(srv->base, NULL, r->host, (uint16_t)r->port);
            evhttp_connection_set_timeout(r->evcon, 5);
        }
        req = evhttp_request_new(forward_done, srv);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", r->host);
        evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
        free(text);
        if (evhttp_make_request(r->evcon, req, EVHTTP_REQ_POST, r->path) != 0) {
            srv->forwards_failed++;
            continue;
        }
        srv->forwards_pending++;
    }
}

/* --- HTTP/2 ---------------------------------------------------------------------------------- */

static void stream_free(struct sstream *st)
{
    buf_free(&st->body);
    free(st);
}

static void conn_free(struct sconn *k)
{
    struct server *srv = k->srv;

    if (k->prev)
        k->prev->next = k->next;
    else
        srv->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    for (size_t i = 0; i < srv->dq_len; i++) {
        struct delayed *d = &srv->dq[(srv->dq_head + i) % srv->dq_cap];
        if (d->conn == k)
            d->conn = NULL;
    }
    while (k->streams) {
        struct sstream *st = k->streams;
        k->streams = st->next;
        srv->cur_streams_total--;
        stream_free(st);
    }
    if (k->h2)
        nghttp2_session_del(k->h2);
    if (k->linger)
        event_free(k->linger);
    buf_free(&k->out);
    if (k->bev)
        bufferevent_free(k->bev);
    srv->open_conns--;
    free(k);
}

static void conn_flush(struct sconn *k)
{
    struct evbuffer *out = bufferevent_get_output(k->bev);

    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(k->h2, &data);
        if (n < 0) {
            k->closing = true;
            break;
        }
        if (n == 0)
            break;
        buf_append(&k->out, data, (size_t)n);
    }
    if (k->out.len > 0) {
        evbuffer_add(out, k->out.data, k->out.len);
        buf_reset(&k->out);
    }
    if (!nghttp2_session_want_read(k->h2) && !nghttp2_session_want_write(k->h2))
        k->closing = true;
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

/*
 * The session is over and everything is written: let the client close first (for at most
 * 2 s).  Closing with its last frames unread would make the kernel answer with a reset,
 * which can destroy our final answers and GOAWAY before the client reads them.
 */
static void conn_maybe_close(struct sconn *k)
{
    if (k->closing && k->linger == NULL &&
        evbuffer_get_length(bufferevent_get_output(k->bev)) == 0) {
        k->linger = evtimer_new(k->srv->base, linger_cb, k);
        event_add(k->linger, &(struct timeval){2, 0});
    }
}

static ssize_t resp_read(nghttp2_session *h2, int32_t stream_id, uint8_t *out, size_t len,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct sstream *st = source->ptr;
    size_t n = st->resp_len - st->resp_off;

    (void)h2;
    (void)stream_id;
    (void)user_data;
    if (n > len)
        n = len;
    memcpy(out, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void respond(struct server *srv, struct sconn *k, struct sstream *st, int status,
                    const char *reason)
{
    nghttp2_nv nva[3];
    size_t nv = 0;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = resp_read};

    snprintf(st->status_str, sizeof(st->status_str), "%d", status);
    if (st->apns_id[0] == '\0') {
        uint64_t n = ++srv->apns_id_seq;
        snprintf(st->apns_id, sizeof(st->apns_id), "%08" PRIx64 "-0000-4000-8000-%012" PRIx64,
                 (uint64_t)((n >> 48) & 0xffffffffu), (uint64_t)(n & 0xffffffffffffull));
    }
#define NV(n, v)                                                                                   \
    nva[nv++] = (nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),             \
                             NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}
    NV(":status", st->status_str);
    NV("apns-id", st->apns_id);
    if (status != 200) {
        NV("content-type", "application/json");
        if (status == 410)
            st->resp_len = (size_t)snprintf(st->resp, sizeof(st->resp),
                                            "{\"reason\":\"%.48s\",\"timestamp\":%lld}", reason,
                                            (long long)time(NULL) * 1000);
        else
            st->resp_len =
                (size_t)snprintf(st->resp, sizeof(st->resp), "{\"reason\":\"%.48s\"}", reason);
    }
#undef NV
    st->answered = true;
    nghttp2_submit_response(k->h2, st->id, nva, nv, status != 200 ? &prd : NULL);
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* APNs' checks, in its order; NULL reason = valid. */
static int validate(struct server *srv, struct sconn *k, struct sstream *st, const char **reason)
{
    static const char prefix[] = "/3/device/";
    const char *token;
    size_t tlen;
    const char *want_topic = srv->o.topic ? srv->o.topic : (k->uid[0] ? k->uid : NULL);

    *reason = NULL;
    if (strcmp(st->method, "POST") != 0)
        return *reason = "MethodNotAllowed", 405;
    if (!str_has_prefix(st->path, prefix))
        return *reason = "BadPath", 404;
    token = st->path + sizeof(prefix) - 1;
    tlen = strlen(token);
    if (tlen == 0)
        return *reason = "MissingDeviceToken", 400;
    if (tlen % 2 != 0 || !is_hex(token, tlen))
        return *reason = "BadDeviceToken", 400;
    if (st->dup)
        return *reason = "DuplicateHeaders", 400;
    if (!st->has_topic)
        return *reason = "MissingTopic", 400;
    if (want_topic && strcmp(st->topic, want_topic) != 0)
        return *reason = "TopicDisallowed", 400;
    if (!st->has_push_type || strcmp(st->push_type, "mdm") != 0)
        return *reason = "InvalidPushType", 400;
    if (st->priority[0] && strcmp(st->priority, "10") != 0 && strcmp(st->priority, "5") != 0 &&
        strcmp(st->priority, "1") != 0)
        return *reason = "BadPriority", 400;
    if (st->expiration[0]) {
        for (const char *c = st->expiration; *c; c++)
            if (*c < '0' || *c > '9')
                return *reason = "BadExpirationDate", 400;
    }
    if (st->body_too_big)
        return *reason = "PayloadTooLarge", 413;
    if (st->body.len == 0)
        return *reason = "PayloadEmpty", 400;
    /* Exactly {"mdm":"<magic>"}: no aps key, nothing else. */
    if (st->body.len < 11 || memcmp(st->body.data, "{\"mdm\":\"", 8) != 0 ||
        memcmp(st->body.data + st->body.len - 2, "\"}", 2) != 0)
        return *reason = "BadPayload", 400;
    for (size_t i = 8; i < st->body.len - 2; i++) {
        if (st->body.data[i] == '"' || st->body.data[i] == '\\')
            return *reason = "BadPayload", 400;
    }
    return 200;
}

static const struct rule *match_rule(struct server *srv, const char *token)
{
    for (size_t i = 0; i < srv->nrules; i++) {
        struct rule *r = &srv->rules[i];
        if (r->times >= 0 && r->used >= r->times)
            continue;
        if (str_has_prefix(token, r->prefix)) {
            r->used++;
            return r;
        }
    }
    return NULL;
}

static void answer(struct server *srv, struct sconn *k, struct sstream *st)
{
    const char *reason = NULL;
    int status = validate(srv, k, st, &reason);
    const char *token = st->path + 10;
    char lower[MAX_PATH];

    if (status != 200) {
        srv->bad_requests++;
        count_add(srv->bad_by_reason, &srv->nbad, MAX_REASONS, reason);
    } else {
        size_t i;
        for (i = 0; token[i] && i + 1 < sizeof(lower); i++)
            lower[i] = (char)((token[i] >= 'A' && token[i] <= 'F') ? token[i] + 32 : token[i]);
        lower[i] = '\0';
        const struct rule *r = match_rule(srv, lower);
        if (r) {
            status = r->status;
            reason = r->reason[0] ? r->reason : NULL;
        }
        if (status == 200)
            forward_push(srv, lower, st->topic, st->body.data);
    }
    srv->received++;
    if (status >= 0 && status < (int)ARRAY_LEN(srv->by_status))
        srv->by_status[status]++;
    if (reason)
        count_add(srv->by_reason, &srv->nreason, MAX_REASONS, reason);
    log_request(srv, k, st, status, reason);
    respond(srv, k, st, status, reason ? reason : "");
}

static void delay_arm(struct server *srv)
{
    if (srv->dq_len > 0) {
        int64_t d = srv->dq[srv->dq_head].due - now_ms();
        if (d < 0)
            d = 0;
        event_add(srv->delay_ev, &(struct timeval){d / 1000, (d % 1000) * 1000});
    }
}

static void request_complete(struct server *srv, struct sconn *k, struct sstream *st)
{
    k->requests++;
    if (k->goaway_sent && st->id > k->goaway_last) {
        srv->refused_after_goaway++;
        return;
    }
    if (srv->o.delay_ms > 0) {
        if (srv->dq_len == srv->dq_cap) {
            size_t ncap = srv->dq_cap ? srv->dq_cap * 2 : 1024;
            struct delayed *nq = xcalloc(ncap, sizeof(*nq));
            for (size_t i = 0; i < srv->dq_len; i++)
                nq[i] = srv->dq[(srv->dq_head + i) % srv->dq_cap];
            free(srv->dq);
            srv->dq = nq;
            srv->dq_cap = ncap;
            srv->dq_head = 0;
        }
        srv->dq[(srv->dq_head + srv->dq_len) % srv->dq_cap] =
            (struct delayed){k, st->id, now_ms() + srv->o.delay_ms};
        if (srv->dq_len++ == 0)
            delay_arm(srv);
    } else {
        answer(srv, k, st);
    }
    if (srv->o.goaway_after > 0 && !k->goaway_sent &&
        k->requests >= (uint64_t)srv->o.goaway_after) {
        k->goaway_sent = true;
        k->goaway_last = st->id;
        srv->goaways++;
        nghttp2_submit_goaway(k->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
    }
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    int64_t now = now_ms();

    (void)fd;
    (void)what;
    while (srv->dq_len > 0 && srv->dq[srv->dq_head].due <= now) {
        struct delayed d = srv->dq[srv->dq_head];
        srv->dq_head = (srv->dq_head + 1) % srv->dq_cap;
        srv->dq_len--;
        if (d.conn == NULL)
            continue;
        struct sstream *st = nghttp2_session_get_stream_user_data(d.conn->h2, d.stream_id);
        if (st != NULL && !st->answered)
            answer(srv, d.conn, st);
    }
    /* Flush every connection that got answers. */
    for (struct sconn *k = srv->conns, *next; k; k = next) {
        next = k->next;
        conn_flush(k);
        conn_maybe_close(k);
    }
    delay_arm(srv);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct sconn *k = user_data;
    struct sstream *st;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    st = stream_new(frame->hd.stream_id);
    st->next = k->streams;
    if (k->streams)
        k->streams->prev = st;
    k->streams = st;
    nghttp2_session_set_stream_user_data(h2, st->id, st);
    k->open_streams++;
    k->srv->cur_streams_total++;
    if (k->open_streams > k->srv->max_streams_seen)
        k->srv->max_streams_seen = k->open_streams;
    if (k->srv->cur_streams_total > k->srv->max_streams_total)
        k->srv->max_streams_total = k->srv->cur_streams_total;
    return 0;
}

static void set_once(char *dst, size_t size, bool *seen, bool *dup, const uint8_t *v, size_t n)
{
    if (*seen)
        *dup = true;
    *seen = true;
    if (n >= size)
        n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct sstream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    bool seen = false;

    (void)flags;
    (void)user_data;
    if (st == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
#define IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
    if (IS(":method")) {
        set_once(st->method, sizeof(st->method), &st->has_method, &st->dup, value, valuelen);
    } else if (IS(":path")) {
        set_once(st->path, sizeof(st->path), &st->has_path, &st->dup, value, valuelen);
    } else if (IS("apns-topic")) {
        set_once(st->topic, sizeof(st->topic), &st->has_topic, &st->dup, value, valuelen);
    } else if (IS("apns-push-type")) {
        set_once(st->push_type, sizeof(st->push_type), &st->has_push_type, &st->dup, value,
                 valuelen);
    } else if (IS("apns-priority")) {
        seen = st->priority[0] != '\0';
        set_once(st->priority, sizeof(st->priority), &seen, &st->dup, value, valuelen);
    } else if (IS("apns-expiration")) {
        seen = st->expiration[0] != '\0';
        set_once(st->expiration, sizeof(st->expiration), &seen, &st->dup, value, valuelen);
    } else if (IS("apns-id")) {
        seen = st->apns_id[0] != '\0';
        set_once(st->apns_id, sizeof(st->apns_id), &seen, &st->dup, value, valuelen);
    }
#undef IS
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    struct sstream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    (void)flags;
    (void)user_data;
    if (st == NULL)
        return 0;
    if (st->body.len + len > MAX_BODY)
        st->body_too_big = true;
    else
        buf_append(&st->body, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct sconn *k = user_data;
    struct sstream *st;

    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
        if (st != NULL)
            request_complete(k->srv, k, st);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct sconn *k = user_data;

    (void)h2;
    if (frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM)
        k->srv->streams_refused++;
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct sconn *k = user_data;
    struct sstream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    (void)error_code;
    if (st == NULL)
        return 0;
    if (st->prev)
        st->prev->next = st->next;
    else
        k->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    k->open_streams--;
    k->srv->cur_streams_total--;
    stream_free(st);
    return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16];

    if (k->closing) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    while (evbuffer_get_length(in) > 0 && !k->closing) {
        int n = evbuffer_peek(in, -1, NULL, v, ARRAY_LEN(v));
        size_t used = 0;
        if (n > (int)ARRAY_LEN(v))
            n = ARRAY_LEN(v);
        for (int i = 0; i < n; i++) {
            if (nghttp2_session_mem_recv(k->h2, v[i].iov_base, v[i].iov_len) < 0) {
                k->closing = true;
                break;
            }
            used += v[i].iov_len;
        }
        evbuffer_drain(in, used);
    }
    conn_flush(k);
    conn_maybe_close(k);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *k = arg;

    (void)bev;
    conn_maybe_close(k);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct sconn *k = arg;
    struct server *srv = k->srv;

    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        X509 *peer = SSL_get1_peer_certificate(ssl);
        const unsigned char *alpn = NULL;
        unsigned int alen = 0;
        nghttp2_settings_entry iv[1] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)srv->o.max_streams}};

        k->handshake_done = true;
        if (peer) {
            char *uid = cert_uid(peer);
            if (uid) {
                bool known = false;
                str_copy(k->uid, sizeof(k->uid), uid);
                for (size_t i = 0; i < srv->nuids; i++)
                    known |= strcmp(srv->uids[i], uid) == 0;
                if (!known && srv->nuids < MAX_UIDS)
                    str_copy(srv->uids[srv->nuids++], sizeof(srv->uids[0]), uid);
                free(uid);
            }
            X509_free(peer);
        }
        SSL_get0_alpn_selected(ssl, &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            srv->tls_failures++;
            conn_free(k);
            return;
        }
        nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, 1);
        /* A connection window far above the 64 KB default: 1000 streams of request bodies
         * must not wait for a WINDOW_UPDATE round trip. */
        nghttp2_session_set_local_window_size(k->h2, NGHTTP2_FLAG_NONE, 0, 1 << 24);
        conn_flush(k);
        return;
    }
    if (!k->handshake_done)
        srv->tls_failures++;
    conn_free(k);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct server *srv = arg;
    struct sconn *k = xcalloc(1, sizeof(*k));
    SSL *ssl = SSL_new(srv->ctx);
    nghttp2_session_callbacks *cb;

    (void)lis;
    (void)sa;
    (void)salen;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    k->srv = srv;
    k->id = ++srv->next_conn;
    srv->connections++;
    srv->open_conns++;
    k->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = k;
    srv->conns = k;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_server_new(&k->h2, cb, k);
    nghttp2_session_callbacks_del(cb);
    k->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(k->bev, conn_read_cb, conn_write_cb, conn_event_cb, k);
    bufferevent_enable(k->bev, srv->reading_paused ? EV_WRITE : EV_READ | EV_WRITE);
}

/* --- control API ------------------------------------------------------------------------------ */

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    struct evbuffer *out = evbuffer_new();

    evbuffer_add(out, text, strlen(text));
    evbuffer_add(out, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Bad Request", out);
    evbuffer_free(out);
    free(text);
    json_decref(j);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    reply_json(req, code, json_pack("{s:s}", "error", msg));
}

static json_t *counts_json(const struct count *arr, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, arr[i].name, json_integer((json_int_t)arr[i].n));
    return o;
}

static void ctl_stats(struct server *srv, struct evhttp_request *req)
{
    json_t *uids = json_array(), *by_status = json_object();

    for (size_t i = 0; i < ARRAY_LEN(srv->by_status); i++) {
        char code[8];
        if (srv->by_status[i] == 0)
            continue;
        snprintf(code, sizeof(code), "%zu", i);
        json_object_set_new(by_status, code, json_integer((json_int_t)srv->by_status[i]));
    }

    for (size_t i = 0; i < srv->nuids; i++)
        json_array_append_new(uids, json_string(srv->uids[i]));
    reply_json(
        req, 200,
        json_pack("{s:I, s:o, s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                  " s:I, s:I, s:I, s:o, s:b, s:I}",
                  "received", (json_int_t)srv->received, "by_status", by_status, "by_reason",
                  counts_json(srv->by_reason, srv->nreason), "bad_requests",
                  (json_int_t)srv->bad_requests, "bad_by_reason",
                  counts_json(srv->bad_by_reason, srv->nbad), "max_concurrent_streams",
                  (json_int_t)srv->max_streams_seen, "max_concurrent_streams_total",
                  (json_int_t)srv->max_streams_total, "streams_refused",
                  (json_int_t)srv->streams_refused, "connections", (json_int_t)srv->connections,
                  "open_connections", (json_int_t)srv->open_conns, "tls_failures",
                  (json_int_t)srv->tls_failures, "goaways", (json_int_t)srv->goaways,
                  "refused_after_goaway", (json_int_t)srv->refused_after_goaway, "forwards_ok",
                  (json_int_t)srv->forwards_ok, "forwards_failed", (json_int_t)srv->forwards_failed,
                  "forwards_dropped", (json_int_t)srv->forwards_dropped, "forwards_pending",
                  (json_int_t)srv->forwards_pending, "client_uids", uids, "reading_paused",
                  srv->reading_paused, "pauses", (json_int_t)srv->pauses));
}

static void ctl_log(struct server *srv, struct evhttp_request *req)
{
    struct evkeyvalq q;
    const char *nstr;
    int64_t n = 100;
    json_t *arr = json_array();
    const char *uri = evhttp_request_get_uri(req);
    const char *qs = strchr(uri, '?');

    TAILQ_INIT(&q);
    if (qs && evhttp_parse_query_str(qs + 1, &q) == 0 &&
        (nstr = evhttp_find_header(&q, "n")) != NULL && str_to_i64(nstr, 0, 1000000, &n) != 0) {
        evhttp_clear_headers(&q);
        json_decref(arr);
        reply_error(req, 400, "n: expected a count 0..1000000");
        return;
    }
    evhttp_clear_headers(&q);
    if ((size_t)n > srv->ring_count)
        n = (int64_t)srv->ring_count;
    for (int64_t i = n; i > 0; i--) {
        size_t cap = (size_t)srv->o.log_size;
        const struct logent *e = &srv->ring[(srv->ring_next + cap - (size_t)i) % cap];
        json_array_append_new(
            arr, json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}",
                           "seq", (json_int_t)e->seq, "conn", (json_int_t)e->conn, "stream",
                           (json_int_t)e->stream, "method", e->method, "path", e->path,
                           "apns_topic", e->topic, "apns_push_type", e->push_type, "apns_priority",
                           e->priority, "apns_expiration", e->expiration, "body", e->body,
                           "client_uid", e->uid, "status", e->status, "reason", e->reason));
    }
    reply_json(req, 200, json_pack("{s:o}", "entries", arr));
}

static json_t *request_json(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *text = xmalloc(len + 1);
    json_t *j;

    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    j = json_loadb(text, len, 0, NULL);
    free(text);
    return j;
}

static void ctl_register(struct server *srv, struct evhttp_request *req)
{
    json_t *j = request_json(req), *cb, *tokens, *prefix;
    struct evhttp_uri *uri = NULL;
    struct registration *r;
    size_t i;
    json_t *t;

    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        reply_error(req, 400, "body: expected a JSON object");
        return;
    }
    cb = json_object_get(j, "callback");
    tokens = json_object_get(j, "tokens");
    prefix = json_object_get(j, "prefix");
    if (!json_is_string(cb) || (uri = evhttp_uri_parse(json_string_value(cb))) == NULL ||
        evhttp_uri_get_host(uri) == NULL || evhttp_uri_get_scheme(uri) == NULL ||
        strcmp(evhttp_uri_get_scheme(uri), "http") != 0) {
        if (uri)
            evhttp_uri_free(uri);
        json_decref(j);
        reply_error(req, 400, "callback: expected an http://host:port/path URL");
        return;
    }
    if ((tokens == NULL) == (prefix == NULL) || (tokens && !json_is_array(tokens)) ||
        (prefix && !json_is_string(prefix))) {
        evhttp_uri_free(uri);
        json_decref(j);
        reply_error(req, 400, "give either \"tokens\" (array of hex strings) or \"prefix\"");
        return;
    }
    r = xcalloc(1, sizeof(*r));
    r->id = ++srv->next_reg;
    r->url = xstrdup(json_string_value(cb));
    r->host = xstrdup(evhttp_uri_get_host(uri));
    r->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
    r->path = xstrdup(
        evhttp_uri_get_path(uri) && *evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/");
    evhttp_uri_free(uri);
    if (prefix) {
        r->prefix = xstrdup(json_string_value(prefix));
        for (char *c = r->prefix; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c + 32);
    } else {
        r->tokens = xcalloc(json_array_size(tokens) + 1, sizeof(char *));
        json_array_foreach(tokens, i, t)
        {
            if (!json_is_string(t)) {
                registration_free(r);
                json_decref(j);
                reply_error(req, 400, "tokens: every entry must be a hex string");
                return;
            }
            r->tokens[r->ntokens] = xstrdup(json_string_value(t));
            for (char *c = r->tokens[r->ntokens]; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                    *c = (char)(*c + 32);
            r->ntokens++;
        }
    }
    r->next = srv->regs;
    srv->regs = r;
    json_decref(j);
    reply_json(req, 200, json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)r->id));
}

static void ctl_script(struct server *srv, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *text = xmalloc(len + 1), err[256];
    struct rule *rules;
    size_t n;

    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    if (rules_parse(text, len, &rules, &n, err, sizeof(err)) != 0) {
        free(text);
        reply_error(req, 400, err);
        return;
    }
    free(text);
    rules_free(srv->rules, srv->nrules);
    srv->rules = rules;
    srv->nrules = n;
    reply_json(req, 200, json_pack("{s:b, s:I}", "ok", 1, "rules", (json_int_t)n));
}

/* Stop reading every connection (a server that stops reading its sockets: the client's
 * writes fill the buffers, PINGs go unanswered, new TLS handshakes stall), or read again. */
static void ctl_reading(struct server *srv, struct evhttp_request *req, bool paused)
{
    if (paused && !srv->reading_paused)
        srv->pauses++;
    srv->reading_paused = paused;
    for (struct sconn *k = srv->conns; k; k = k->next) {
        if (paused)
            bufferevent_disable(k->bev, EV_READ);
        else
            bufferevent_enable(k->bev, EV_READ);
    }
    reply_json(req, 200, json_pack("{s:b, s:b}", "ok", 1, "reading_paused", paused));
}

static void ctl_reset(struct server *srv, struct evhttp_request *req)
{
    srv->received = srv->bad_requests = srv->goaways = srv->refused_after_goaway = 0;
    srv->connections = srv->tls_failures = srv->streams_refused = 0;
    srv->forwards_ok = srv->forwards_failed = srv->forwards_dropped = 0;
    srv->max_streams_seen = srv->max_streams_total = 0;
    memset(srv->by_status, 0, sizeof(srv->by_status));
    srv->nreason = srv->nbad = srv->nuids = 0;
    srv->ring_next = srv->ring_count = 0;
    reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void ctl_cb(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    enum evhttp_cmd_type m = evhttp_request_get_command(req);

#define PATH_IS(p) (plen == sizeof(p) - 1 && memcmp(uri, p, plen) == 0)
    if (PATH_IS("/stats") && m == EVHTTP_REQ_GET)
        ctl_stats(srv, req);
    else if (PATH_IS("/log") && m == EVHTTP_REQ_GET)
        ctl_log(srv, req);
    else if (PATH_IS("/register") && m == EVHTTP_REQ_POST)
        ctl_register(srv, req);
    else if (PATH_IS("/script") && m == EVHTTP_REQ_POST)
        ctl_script(srv, req);
    else if (PATH_IS("/reset") && m == EVHTTP_REQ_POST)
        ctl_reset(srv, req);
    else if (PATH_IS("/pause-reading") && m == EVHTTP_REQ_POST)
        ctl_reading(srv, req, true);
    else if (PATH_IS("/resume-reading") && m == EVHTTP_REQ_POST)
        ctl_reading(srv, req, false);
    else if (PATH_IS("/healthz"))
        reply_json(req, 200, json_pack("{s:b}", "ok", 1));
    else
        reply_json(req, 404,
                   json_pack("{s:s}", "error", "unknown route; see tests/apns-server/README.md"));
#undef PATH_IS
}

/* --- set-up ------------------------------------------------------------------------------------
 */

static int refuse_verify_cb(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REJECTED);
    return 0;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i + 1 < inlen; i += 1u + in[i]) {
        if (in[i] == 2 && i + 3 <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *make_ctx(const struct opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "apns-test-server: cannot load --cert %s / --key %s\n", o->cert, o->key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->client_ca) {
        if (SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL) != 1) {
            fprintf(stderr, "apns-test-server: cannot load --client-ca %s\n", o->client_ca);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(o->client_ca));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           o->refuse_client_cert ? refuse_verify_cb : NULL);
    } else if (o->refuse_client_cert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           refuse_verify_cb);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    return ctx;
}

static int port_of(evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int write_port_file(const char *path, int port)
{
    struct scepter_error err;
    char text[16];
    int n = snprintf(text, sizeof(text), "%d\n", port);

    if (file_write(path, text, (size_t)n, 0644, &err) != 0) {
        fprintf(stderr, "apns-test-server: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    event_base_loopexit(srv->base, NULL);
}

static void usage(FILE *fp)
{
    fputs(
        "usage: apns-test-server --cert PEM --key PEM [options]\n"
        "  --listen HOST:PORT       HTTP/2 TLS listener (default 127.0.0.1:0)\n"
        "  --port-file F            write the bound port to F\n"
        "  --control HOST:PORT      HTTP/1.1 control API (GET /stats, /log; POST /register,\n"
        "                           /script, /reset)\n"
        "  --control-port-file F    write the control port to F\n"
        "  --client-ca F            require a client certificate issued by F\n"
        "  --refuse-client-cert     reject every client certificate (TLS alert)\n"
        "  --topic T                expected apns-topic (default: the client cert's UID)\n"
        "  --max-streams N          SETTINGS_MAX_CONCURRENT_STREAMS (default 100)\n"
        "  --delay-ms N             answer every request N ms late\n"
        "  --goaway-after N         GOAWAY after N requests on a connection\n"
        "  --script F               JSON rules: {\"rules\":[{\"prefix\":\"dead\",\"status\":410,\n"
        "                           \"reason\":\"Unregistered\",\"times\":N}]}\n"
        "  --log-size N             requests kept for GET /log (default 1000)\n"
        "  --max-lifetime S         exit after S seconds (a safety net for tests)\n"
        "  --quiet                  do not print the ports\n",
        fp);
}

static int parse_long(const char *s, long min, long max, long *out, const char *name)
{
    int64_t v;

    if (str_to_i64(s, min, max, &v) != 0) {
        fprintf(stderr, "apns-test-server: %s: expected an integer in %ld..%ld\n", name, min, max);
        return -1;
    }
    *out = (long)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_LISTEN = 256,
        O_CERT,
        O_KEY,
        O_CA,
        O_TOPIC,
        O_STREAMS,
        O_DELAY,
        O_GOAWAY,
        O_SCRIPT,
        O_REFUSE,
        O_CONTROL,
        O_PORTF,
        O_CPORTF,
        O_LOGSIZE,
        O_LIFE,
        O_QUIET,
        O_HELP
    };
    static const struct option lo[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"client-ca", required_argument, NULL, O_CA},
        {"topic", required_argument, NULL, O_TOPIC},
        {"max-streams", required_argument, NULL, O_STREAMS},
        {"delay-ms", required_argument, NULL, O_DELAY},
        {"goaway-after", required_argument, NULL, O_GOAWAY},
        {"script", required_argument, NULL, O_SCRIPT},
        {"refuse-client-cert", no_argument, NULL, O_REFUSE},
        {"control", required_argument, NULL, O_CONTROL},
        {"port-file", required_argument, NULL, O_PORTF},
        {"control-port-file", required_argument, NULL, O_CPORTF},
        {"log-size", required_argument, NULL, O_LOGSIZE},
        {"max-lifetime", required_argument, NULL, O_LIFE},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->listen = "127.0.0.1:0";
    o->max_streams = 100;
    o->log_size = 1000;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            o->listen = optarg;
            break;
        case O_CERT:
            o->cert = optarg;
            break;
        case O_KEY:
            o->key = optarg;
            break;
        case O_CA:
            o->client_ca = optarg;
            break;
        case O_TOPIC:
            o->topic = optarg;
            break;
        case O_STREAMS:
            if (parse_long(optarg, 0, 1000000, &o->max_streams, "--max-streams") != 0)
                return -1;
            break;
        case O_DELAY:
            if (parse_long(optarg, 0, 600000, &o->delay_ms, "--delay-ms") != 0)
                return -1;
            break;
        case O_GOAWAY:
            if (parse_long(optarg, 0, 1000000000, &o->goaway_after, "--goaway-after") != 0)
                return -1;
            break;
        case O_SCRIPT:
            o->script = optarg;
            break;
        case O_REFUSE:
            o->refuse_client_cert = true;
            break;
        case O_CONTROL:
            o->control = optarg;
            break;
        case O_PORTF:
            o->port_file = optarg;
            break;
        case O_CPORTF:
            o->control_port_file = optarg;
            break;
        case O_LOGSIZE:
            if (parse_long(optarg, 0, 10000000, &o->log_size, "--log-size") != 0)
                return -1;
            break;
        case O_LIFE:
            if (parse_long(optarg, 0, 86400 * 7, &o->max_lifetime_s, "--max-lifetime") != 0)
                return -1;
            break;
        case O_QUIET:
            o->quiet = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || o->cert == NULL || o->key == NULL) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int bind_control(struct server *srv)
{
    char host[256];
    const char *colon = strrchr(srv->o.control, ':');
    int64_t port;
    struct evhttp_bound_socket *h;
    int bound;

    if (colon == NULL || (size_t)(colon - srv->o.control) >= sizeof(host) ||
        str_to_i64(colon + 1, 0, 65535, &port) != 0) {
        fprintf(stderr, "apns-test-server: --control: expected HOST:PORT\n");
        return -1;
    }
    memcpy(host, srv->o.control, (size_t)(colon - srv->o.control));
    host[colon - srv->o.control] = '\0';
    srv->ctl = evhttp_new(srv->base);
    evhttp_set_gencb(srv->ctl, ctl_cb, srv);
    evhttp_set_allowed_methods(srv->ctl, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    h = evhttp_bind_socket_with_handle(srv->ctl, host, (uint16_t)port);
    if (h == NULL) {
        fprintf(stderr, "apns-test-server: cannot bind --control %s\n", srv->o.control);
        return -1;
    }
    bound = port_of(evhttp_bound_socket_get_fd(h));
    if (!srv->o.quiet) {
        printf("control on %d\n", bound);
        fflush(stdout);
    }
    if (srv->o.control_port_file && write_port_file(srv->o.control_port_file, bound) != 0)
        return -1;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT", numeric, port 0 allowed. */
static int parse_addr(const char *text, struct sockaddr_storage *ss, int *len)
{
    char host[128];
    const char *colon = strrchr(text, ':');
    int64_t port;
    size_t hlen;

    memset(ss, 0, sizeof(*ss));
    if (colon == NULL || str_to_i64(colon + 1, 0, 65535, &port) != 0)
        return -1;
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        text++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return evutil_inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return evutil_inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct server srv;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss), port, rc = 1;

    memset(&srv, 0, sizeof(srv));
    signal(SIGPIPE, SIG_IGN);
    if (parse_opts(argc, argv, &srv.o) != 0)
        return 2;
    if (srv.o.script) {
        unsigned char *text = NULL;
        size_t len = 0;
        struct scepter_error ferr;
        char err[256];
        if (file_read(srv.o.script, 1 << 20, &text, &len, &ferr) != 0) {
            fprintf(stderr, "apns-test-server: --script: %s\n", ferr.msg);
            return 2;
        }
        if (rules_parse((const char *)text, len, &srv.rules, &srv.nrules, err, sizeof(err)) != 0) {
            fprintf(stderr, "apns-test-server: --script %s: %s\n", srv.o.script, err);
            free(text);
            return 2;
        }
        free(text);
    }
    srv.ctx = make_ctx(&srv.o);
    if (srv.ctx == NULL)
        goto out;
    if (srv.o.log_size > 0)
        srv.ring = xcalloc((size_t)srv.o.log_size, sizeof(*srv.ring));
    srv.base = event_base_new();
    if (parse_addr(srv.o.listen, &ss, &sslen) != 0) {
        fprintf(stderr, "apns-test-server: --listen: expected HOST:PORT, got %s\n", srv.o.listen);
        goto out;
    }
    srv.lis = evconnlistener_new_bind(srv.base, accept_cb, &srv,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
                                      (struct sockaddr *)&ss, sslen);
    if (srv.lis == NULL) {
        fprintf(stderr, "apns-test-server: cannot listen on %s: %s\n", srv.o.listen,
                strerror(errno));
        goto out;
    }
    if (srv.o.control && bind_control(&srv) != 0)
        goto out;
    port = port_of(evconnlistener_get_fd(srv.lis));
    if (!srv.o.quiet) {
        printf("listening on %d\n", port);
        fflush(stdout);
    }
    if (srv.o.port_file && write_port_file(srv.o.port_file, port) != 0)
        goto out;
    srv.delay_ev = evtimer_new(srv.base, delay_cb, &srv);
    srv.sig_term = evsignal_new(srv.base, SIGTERM, stop_cb, &srv);
    srv.sig_int = evsignal_new(srv.base, SIGINT, stop_cb, &srv);
    event_add(srv.sig_term, NULL);
    event_add(srv.sig_int, NULL);
    if (srv.o.max_lifetime_s > 0) {
        srv.lifetime_ev = evtimer_new(srv.base, stop_cb, &srv);
        event_add(srv.lifetime_ev, &(struct timeval){srv.o.max_lifetime_s, 0});
    }
    event_base_dispatch(srv.base);
    rc = 0;
out:
    while (srv.conns)
        conn_free(srv.conns);
    while (srv.regs) {
        struct registration *r = srv.regs;
        srv.regs = r->next;
        registration_free(r);
    }
    if (srv.ctl)
        evhttp_free(srv.ctl);
    if (srv.lis)
        evconnlistener_free(srv.lis);
    if (srv.delay_ev)
        event_free(srv.delay_ev);
    if (srv.sig_term)
        event_free(srv.sig_term);
    if (srv.sig_int)
        event_free(srv.sig_int);
    if (srv.lifetime_ev)
        event_free(srv.lifetime_ev);
    if (srv.base)
        event_base_free(srv.base);
    SSL_CTX_free(srv.ctx);
    rules_free(srv.rules, srv.nrules);
    free(srv.ring);
    free(srv.dq);
    return rc;
}
