/*
 * Tests of apns-test-server itself, through a small blocking HTTP/2 client (nghttp2 over a
 * blocking TLS socket) that can send what Scepter's client never would: wrong methods,
 * paths, headers and bodies.  Checks that the server validates like APNs, answers scripted
 * statuses, enforces and reports stream limits, sends GOAWAY, refuses client certificates
 * when told to, forwards accepted pushes to registered callbacks, and that its control API
 * refuses bad input.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

/* --- a minimal blocking HTTP/2 client ------------------------------------------------------ */

#define MAXR 64

struct resp {
    int32_t id;
    int status;
    char apns_id[64];
    struct buf body;
    bool closed;
    uint32_t error;
    const char *req_body;
    size_t req_len, req_off;
};

struct h2c {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    nghttp2_session *h2;
    uint32_t peer_max_streams;
    bool got_settings, goaway;
    int32_t goaway_last;
    struct resp r[MAXR];
    int n;
};

static struct resp *find(struct h2c *c, int32_t id)
{
    for (int i = 0; i < c->n; i++)
        if (c->r[i].id == id)
            return &c->r[i];
    return NULL;
}

static int cb_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *u)
{
    struct resp *r = find(u, f->hd.stream_id);
    (void)h2;
    (void)flags;
    if (r && nlen == 7 && memcmp(name, ":status", 7) == 0)
        r->status = (int)strtol((const char *)value, NULL, 10);
    if (r && nlen == 7 && memcmp(name, "apns-id", 7) == 0 && vlen < sizeof(r->apns_id))
        memcpy(r->apns_id, value, vlen);
    return 0;
}

static int cb_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *u)
{
    struct resp *r = find(u, id);
    (void)h2;
    (void)flags;
    if (r)
        buf_append(&r->body, data, len);
    return 0;
}

static int cb_close(nghttp2_session *h2, int32_t id, uint32_t err, void *u)
{
    struct resp *r = find(u, id);
    (void)h2;
    if (r) {
        r->closed = true;
        r->error = err;
    }
    return 0;
}

static int cb_frame(nghttp2_session *h2, const nghttp2_frame *f, void *u)
{
    struct h2c *c = u;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->got_settings = true;
        c->peer_max_streams =
            nghttp2_session_get_remote_settings(h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    }
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        c->goaway_last = f->goaway.last_stream_id;
    }
    return 0;
}

static ssize_t body_read(nghttp2_session *h2, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *u)
{
    struct resp *r = src->ptr;
    size_t n = r->req_len - r->req_off;
    (void)h2;
    (void)id;
    (void)u;
    if (n > len)
        n = len;
    memcpy(out, r->req_body + r->req_off, n);
    r->req_off += n;
    if (r->req_off == r->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Connect with TLS + ALPN h2; cert/key may be NULL.  NULL when the handshake fails. */
static struct h2c *h2c_connect(int port, const char *cert, const char *key)
{
    struct h2c *c = xcalloc(1, sizeof(*c));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    static const unsigned char alpn[] = {2, 'h', '2'};
    char *ca = ts_pki("ca.pem");
    nghttp2_session_callbacks *cb;
    struct timeval tv = {5, 0};

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(c->ctx, ca, NULL);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(c->ctx, alpn, sizeof(alpn));
    if (cert) {
        cr_assert_eq(SSL_CTX_use_certificate_file(c->ctx, cert, SSL_FILETYPE_PEM), 1);
        cr_assert_eq(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    free(ca);
    c->ssl = SSL_new(c->ctx);
    SSL_set1_host(c->ssl, "localhost");
    SSL_set_fd(c->ssl, c->fd);
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cb_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cb_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cb_frame);
    nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    if (SSL_connect(c->ssl) != 1) {
        ERR_clear_error();
        goto fail;
    }
    return c;
fail:
    nghttp2_session_del(c->h2);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    free(c);
    return NULL;
}

static void h2c_free(struct h2c *c)
{
    for (int i = 0; i < c->n; i++)
        buf_free(&c->r[i].body);
    nghttp2_session_del(c->h2);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    free(c);
}

/* Submit one request; hdrs are name/value pairs, NULL-terminated. */
static struct resp *h2c_req(struct h2c *c, const char *method, const char *path,
                            const char *const *hdrs, const char *body)
{
    nghttp2_nv nva[16];
    size_t n = 0;
    struct resp *r = &c->r[c->n];
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = body_read};

#define NV(a, b) nva[n++] = (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), 0}
    NV(":method", method);
    NV(":scheme", "https");
    NV(":authority", "localhost");
    NV(":path", path);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        NV(hdrs[i], hdrs[i + 1]);
#undef NV
    cr_assert_lt(c->n, MAXR);
    memset(r, 0, sizeof(*r));
    r->req_body = body;
    r->req_len = body ? strlen(body) : 0;
    r->id = nghttp2_submit_request(c->h2, NULL, nva, n, body ? &prd : NULL, NULL);
    cr_assert_gt(r->id, 0);
    c->n++;
    return r;
}

/* Exchange frames until every request closed, the peer closed, or 10 s passed. */
static void h2c_run(struct h2c *c)
{
    for (int iter = 0; iter < 2000; iter++) {
        const uint8_t *data;
        ssize_t n;
        bool open = false;
        uint8_t in[16384];
        int got;

        while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0)
            if (SSL_write(c->ssl, data, (int)n) != n) {
                ERR_clear_error();
                return; /* the peer is gone */
            }
        for (int i = 0; i < c->n; i++)
            open |= !c->r[i].closed;
        if (!open && c->got_settings)
            return;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (SSL_pending(c->ssl) == 0 && poll(&pfd, 1, 5) == 0)
            continue;
        got = SSL_read(c->ssl, in, sizeof(in));
        if (got <= 0) {
            ERR_clear_error();
            return; /* closed */
        }
        cr_assert_geq(nghttp2_session_mem_recv(c->h2, in, (size_t)got), 0);
    }
}

/* --- fixtures ---------------------------------------------------------------------------- */

static struct ts_server *ts;
static char *topic, *push_cert, *push_key;

static void start(const char *const *extra)
{
    signal(SIGPIPE, SIG_IGN);
    topic = ts_pki_text("topic");
    push_cert = ts_pki("push.pem");
    push_key = ts_pki("push.key");
    cr_assert_not_null(topic);
    ts = ts_start(extra);
    cr_assert_not_null(ts, "apns-test-server did not start");
}

static void stop(void)
{
    if (ts)
        cr_assert_eq(ts_stop(ts), 0, "apns-test-server did not exit cleanly");
    ts = NULL;
    free(topic);
    free(push_cert);
    free(push_key);
}

static struct h2c *connect_push(void)
{
    struct h2c *c = h2c_connect(ts->port, push_cert, push_key);
    cr_assert_not_null(c, "TLS handshake with the push certificate failed");
    return c;
}

/* Headers with the right topic. */
static const char *const *hdrs_with(const char *t, const char *push_type, const char *prio)
{
    static const char *h[10];
    h[0] = "apns-topic";
    h[1] = t;
    h[2] = "apns-push-type";
    h[3] = push_type;
    h[4] = "apns-priority";
    h[5] = prio;
    h[6] = NULL;
    if (t == NULL) {
        h[0] = "apns-push-type";
        h[1] = push_type;
        h[2] = NULL;
    }
    return h;
}

static bool reason_is(const struct resp *r, const char *reason)
{
    char want[128];
    snprintf(want, sizeof(want), "\"reason\":\"%s\"", reason);
    return r->body.data && strstr(r->body.data, want) != NULL;
}

/* --- tests --------------------------------------------------------------------------------- */

Test(apns_server, accepts_a_valid_mdm_push_and_logs_it)
{
    const char *extra[] = {"--client-ca", NULL, NULL};
    char *pushca = ts_pki("pushca.pem");
    extra[1] = pushca;
    start(extra);
    struct h2c *c = connect_push();
    struct resp *r = h2c_req(c, "POST", "/3/device/00aaBBcc", hdrs_with(topic, "mdm", "10"),
                             "{\"mdm\":\"magic-1\"}");
    h2c_run(c);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(strlen(r->apns_id), 36, "apns-id is a UUID: %s", r->apns_id);
    cr_assert_eq(c->peer_max_streams, 100, "default SETTINGS_MAX_CONCURRENT_STREAMS");
    h2c_free(c);

    json_t *log = ts_log(ts, 10);
    cr_assert_eq(json_array_size(log), 1);
    json_t *e = json_array_get(log, 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "path")), "/3/device/00aaBBcc");
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_topic")), topic);
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_push_type")), "mdm");
    cr_assert_str_eq(json_string_value(json_object_get(e, "body")), "{\"mdm\":\"magic-1\"}");
    cr_assert_str_eq(json_string_value(json_object_get(e, "client_uid")), topic);
    json_decref(log);
    cr_assert_eq(ts_stat(ts, "received"), 1);
    cr_assert_eq(ts_stat(ts, "by_status.200"), 1);
    cr_assert_eq(ts_stat(ts, "bad_requests"), 0);
    free(pushca);
    stop();
}

Test(apns_server, refuses_what_apns_refuses)
{
    const char *extra[] = {"--client-ca", NULL, NULL};
    char *pushca = ts_pki("pushca.pem");
    extra[1] = pushca;
    start(extra);
    free(pushca);
    struct h2c *c = connect_push();
    static const char body[] = "{\"mdm\":\"m\"}";
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct resp *get = h2c_req(c, "GET", "/3/device/00aa", hdrs_with(topic, "mdm", "10"), body);
    struct resp *path = h2c_req(c, "POST", "/3/other/00aa", hdrs_with(topic, "mdm", "10"), body);
    struct resp *hex = h2c_req(c, "POST", "/3/device/zz", hdrs_with(topic, "mdm", "10"), body);
    struct resp *odd = h2c_req(c, "POST", "/3/device/abc", hdrs_with(topic, "mdm", "10"), body);
    struct resp *notok = h2c_req(c, "POST", "/3/device/", hdrs_with(topic, "mdm", "10"), body);
    struct resp *notopic = h2c_req(c, "POST", "/3/device/00aa", hdrs_with(NULL, "mdm", "10"), body);
    struct resp *wrongtopic = h2c_req(
        c, "POST", "/3/device/00aa", hdrs_with("com.apple.mgmt.External.other", "mdm", "10"), body);
    struct resp *alert =
        h2c_req(c, "POST", "/3/device/00aa", hdrs_with(topic, "alert", "10"), body);
    struct resp *prio = h2c_req(c, "POST", "/3/device/00aa", hdrs_with(topic, "mdm", "7"), body);
    struct resp *aps = h2c_req(c, "POST", "/3/device/00aa", hdrs_with(topic, "mdm", "10"),
                               "{\"aps\":{},\"mdm\":\"m\"}");
    struct resp *empty = h2c_req(c, "POST", "/3/device/00aa", hdrs_with(topic, "mdm", "10"), NULL);
    struct resp *huge = h2c_req(c, "POST", "/3/device/00aa", hdrs_with(topic, "mdm", "10"), big);
    static const char *const dup[] = {"apns-topic",     "t",   "apns-topic", "t",
                                      "apns-push-type", "mdm", NULL};
    struct resp *dups = h2c_req(c, "POST", "/3/device/00aa", dup, body);
    h2c_run(c);
    cr_assert(get->status == 405 && reason_is(get, "MethodNotAllowed"));
    cr_assert(path->status == 404 && reason_is(path, "BadPath"));
    cr_assert(hex->status == 400 && reason_is(hex, "BadDeviceToken"));
    cr_assert(odd->status == 400 && reason_is(odd, "BadDeviceToken"));
    cr_assert(notok->status == 400 && reason_is(notok, "MissingDeviceToken"));
    cr_assert(notopic->status == 400 && reason_is(notopic, "MissingTopic"));
    cr_assert(wrongtopic->status == 400 && reason_is(wrongtopic, "TopicDisallowed"),
              "the topic must match the client certificate's UID");
    cr_assert(alert->status == 400 && reason_is(alert, "InvalidPushType"));
    cr_assert(prio->status == 400 && reason_is(prio, "BadPriority"));
    cr_assert(aps->status == 400 && reason_is(aps, "BadPayload"), "no aps key in MDM pushes");
    cr_assert(empty->status == 400 && reason_is(empty, "PayloadEmpty"));
    cr_assert(huge->status == 413 && reason_is(huge, "PayloadTooLarge"));
    cr_assert(dups->status == 400 && reason_is(dups, "DuplicateHeaders"));
    h2c_free(c);
    cr_assert_eq(ts_stat(ts, "bad_requests"), 13);
    cr_assert_eq(ts_stat(ts, "bad_by_reason.BadDeviceToken"), 2);
    cr_assert_eq(ts_stat(ts, "by_status.200"), 0);
    stop();
}

Test(apns_server, scripted_statuses_by_token_prefix)
{
    start(NULL);
    cr_assert_eq(ts_script(ts, "{\"rules\":[{\"prefix\":\"dead\",\"status\":410,\"reason\":"
                               "\"Unregistered\"},{\"prefix\":\"aa\",\"status\":503,\"reason\":"
                               "\"ServiceUnavailable\",\"times\":1}]}"),
                 0);
    struct h2c *c = connect_push();
    const char *const *h = hdrs_with(topic, "mdm", "10");
    struct resp *dead = h2c_req(c, "POST", "/3/device/DEADbeef", h, "{\"mdm\":\"m\"}");
    struct resp *a1 = h2c_req(c, "POST", "/3/device/aa01", h, "{\"mdm\":\"m\"}");
    h2c_run(c);
    struct resp *a2 = h2c_req(c, "POST", "/3/device/aa01", h, "{\"mdm\":\"m\"}");
    h2c_run(c);
    cr_assert_eq(dead->status, 410);
    cr_assert(reason_is(dead, "Unregistered"));
    cr_assert(strstr(dead->body.data, "\"timestamp\":") != NULL, "410 carries a timestamp");
    cr_assert_eq(a1->status, 503, "first time: the scripted 503");
    cr_assert_eq(a2->status, 200, "times=1: then success");
    h2c_free(c);
    cr_assert_eq(ts_stat(ts, "by_reason.Unregistered"), 1);
    stop();
}

Test(apns_server, advertises_max_streams_and_sends_goaway)
{
    const char *extra[] = {"--max-streams", "7", "--goaway-after", "2", NULL};
    start(extra);
    struct h2c *c = connect_push();
    const char *const *h = hdrs_with(topic, "mdm", "10");
    struct resp *r[5];
    for (int i = 0; i < 5; i++)
        r[i] = h2c_req(c, "POST", "/3/device/0a0b", h, "{\"mdm\":\"m\"}");
    h2c_run(c);
    cr_assert_eq(c->peer_max_streams, 7);
    cr_assert(c->goaway, "GOAWAY after two requests");
    cr_assert_eq(c->goaway_last, r[1]->id, "last stream id is the second request");
    cr_assert_eq(r[0]->status, 200);
    cr_assert_eq(r[1]->status, 200);
    for (int i = 2; i < 5; i++)
        cr_assert_eq(r[i]->status, 0, "stream %d above last-stream-id must not be answered", i);
    h2c_free(c);
    cr_assert_eq(ts_stat(ts, "goaways"), 1);
    cr_assert_eq(ts_stat(ts, "by_status.200"), 2);
    cr_assert_leq(ts_stat(ts, "max_concurrent_streams"), 7);
    stop();
}

Test(apns_server, refuses_client_certificates_when_told)
{
    const char *extra[] = {"--client-ca", NULL, NULL};
    char *other = ts_pki("otherca.pem");
    extra[1] = other;
    start(extra);
    struct h2c *c = h2c_connect(ts->port, push_cert, push_key);
    if (c) { /* TLS 1.3: the alert arrives after the client's handshake */
        h2c_req(c, "POST", "/3/device/00", hdrs_with(topic, "mdm", "10"), "{\"mdm\":\"m\"}");
        h2c_run(c);
        cr_assert_eq(c->r[0].status, 0, "no answer over a refused certificate");
        h2c_free(c);
    }
    cr_assert_eq(ts_stat(ts, "tls_failures"), 1);
    cr_assert_eq(ts_stat(ts, "received"), 0);
    free(other);
    stop();

    const char *refuse[] = {"--refuse-client-cert", NULL};
    start(refuse);
    c = h2c_connect(ts->port, push_cert, push_key);
    if (c) {
        h2c_req(c, "POST", "/3/device/00", hdrs_with(topic, "mdm", "10"), "{\"mdm\":\"m\"}");
        h2c_run(c);
        cr_assert_eq(c->r[0].status, 0);
        h2c_free(c);
    }
    cr_assert_eq(ts_stat(ts, "tls_failures"), 1);
    stop();
}

/* A one-shot HTTP/1.1 listener that captures the body of the first request. */
static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static char *accept_body(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    struct buf in = BUF_INIT;
    char chunk[4096];
    int fd;
    ssize_t n;
    char *hdr_end = NULL;
    static const char reply[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";

    cr_assert_eq(poll(&p, 1, 10000), 1, "no forwarded push within 10 s");
    fd = accept(lfd, NULL, NULL);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int i = 0; i < 100 && (n = read(fd, chunk, sizeof(chunk))) > 0; i++) {
        buf_append(&in, chunk, (size_t)n);
        hdr_end = strstr(in.data, "\r\n\r\n");
        if (hdr_end && strchr(hdr_end + 4, '}'))
            break;
    }
    cr_assert_not_null(hdr_end);
    cr_assert_eq(write(fd, reply, sizeof(reply) - 1), (ssize_t)sizeof(reply) - 1);
    close(fd);
    char *body = xstrdup(hdr_end + 4);
    buf_free(&in);
    return body;
}

Test(apns_server, forwards_accepted_pushes_to_registered_callbacks)
{
    int port, lfd;
    char reg[256], *resp = NULL;
    start(NULL);
    lfd = listen_local(&port);
    snprintf(reg, sizeof(reg), "{\"callback\":\"http://127.0.0.1:%d/push\",\"prefix\":\"CAFE\"}",
             port);
    cr_assert_eq(ts_http(ts->control_port, "POST", "/register", reg, &resp), 200);
    free(resp);
    cr_assert_eq(ts_script(ts, "[{\"prefix\":\"cafe00\",\"status\":410,\"reason\":"
                               "\"Unregistered\"}]"),
                 0);
    struct h2c *c = connect_push();
    const char *const *h = hdrs_with(topic, "mdm", "10");
    h2c_req(c, "POST", "/3/device/cafe00", h, "{\"mdm\":\"gone\"}"); /* 410: not forwarded */
    h2c_req(c, "POST", "/3/device/beef", h, "{\"mdm\":\"other\"}");  /* not registered */
    h2c_req(c, "POST", "/3/device/cafe01", h, "{\"mdm\":\"wake-up\"}");
    h2c_run(c);
    h2c_free(c);
    char *body = accept_body(lfd);
    json_t *j = json_loads(body, 0, NULL);
    cr_assert_not_null(j, "forwarded body is JSON: %s", body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "token")), "cafe01");
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), topic);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "payload"), "mdm")),
                     "wake-up");
    json_decref(j);
    free(body);
    close(lfd);
    for (int i = 0; i < 500 && ts_stat(ts, "forwards_ok") < 1; i++)
        usleep(10000);
    cr_assert_eq(ts_stat(ts, "forwards_ok"), 1, "exactly one forward: the 200 with the prefix");
    stop();
}

Test(apns_server, control_api_refuses_bad_input)
{
    char *resp = NULL;
    start(NULL);
    cr_assert_eq(ts_http(ts->control_port, "GET", "/log?n=lots", NULL, &resp), 400);
    free(resp);
    cr_assert_eq(ts_http(ts->control_port, "POST", "/register", "{\"tokens\":[\"aa\"]}", &resp),
                 400);
    cr_assert(strstr(resp, "callback") != NULL, "names the field: %s", resp);
    free(resp);
    cr_assert_eq(ts_http(ts->control_port, "POST", "/register",
                         "{\"callback\":\"http://127.0.0.1:9/x\"}", &resp),
                 400);
    free(resp);
    cr_assert_eq(
        ts_http(ts->control_port, "POST", "/script", "{\"rules\":[{\"status\":200}]}", &resp), 400);
    cr_assert(strstr(resp, "rules[0]") != NULL, "names the rule: %s", resp);
    free(resp);
    cr_assert_eq(ts_http(ts->control_port, "GET", "/nope", NULL, &resp), 404);
    free(resp);
    stop();
}
