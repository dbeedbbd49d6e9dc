/*
 * The HTTP/2 core without sockets: a second nghttp2 session, in server mode and in memory,
 * plays APNs; bytes are pumped between the two by hand.  Some tests feed hand-built frames
 * instead.  Checks the request the core builds, that it never opens more streams than the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS, how it reads answers, and that every request ends
 * in exactly one callback — including after GOAWAY, RST_STREAM, garbage and teardown.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nghttp2/nghttp2.h>

#include "apns/apns_int.h"
#include "apns/session_int.h"
#include "common/buf.h"
#include "common/xmalloc.h"

/* --- the in-memory server ------------------------------------------------------------------ */

#define MAXREQ 64

struct sreq {
    int32_t id;
    char method[16], path[256], topic[128], push_type[16], priority[8], expiration[24];
    char authority[64];
    struct buf body;
    bool complete;
};

struct msrv {
    nghttp2_session *h2;
    struct sreq req[MAXREQ];
    int n;
    int open, max_open;
};

static struct sreq *sfind(struct msrv *s, int32_t id)
{
    for (int i = 0; i < s->n; i++)
        if (s->req[i].id == id)
            return &s->req[i];
    return NULL;
}

static int s_begin(nghttp2_session *h2, const nghttp2_frame *f, void *u)
{
    struct msrv *s = u;
    (void)h2;
    if (f->hd.type == NGHTTP2_HEADERS && s->n < MAXREQ) {
        memset(&s->req[s->n], 0, sizeof(s->req[0]));
        s->req[s->n++].id = f->hd.stream_id;
        if (++s->open > s->max_open)
            s->max_open = s->open;
    }
    return 0;
}

static void copy(char *dst, size_t size, const uint8_t *v, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int s_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen, uint8_t flags, void *u)
{
    struct sreq *r = sfind(u, f->hd.stream_id);
    (void)h2;
    (void)flags;
    if (r == NULL)
        return 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS(":method"))
        copy(r->method, sizeof(r->method), value, vlen);
    else if (IS(":path"))
        copy(r->path, sizeof(r->path), value, vlen);
    else if (IS(":authority"))
        copy(r->authority, sizeof(r->authority), value, vlen);
    else if (IS("apns-topic"))
        copy(r->topic, sizeof(r->topic), value, vlen);
    else if (IS("apns-push-type"))
        copy(r->push_type, sizeof(r->push_type), value, vlen);
    else if (IS("apns-priority"))
        copy(r->priority, sizeof(r->priority), value, vlen);
    else if (IS("apns-expiration"))
        copy(r->expiration, sizeof(r->expiration), value, vlen);
#undef IS
    return 0;
}

static int s_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                  void *u)
{
    struct sreq *r = sfind(u, id);
    (void)h2;
    (void)flags;
    if (r)
        buf_append(&r->body, d, len);
    return 0;
}

static int s_frame(nghttp2_session *h2, const nghttp2_frame *f, void *u)
{
    struct sreq *r = sfind(u, f->hd.stream_id);
    (void)h2;
    if (r && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        r->complete = true;
    return 0;
}

static int s_close(nghttp2_session *h2, int32_t id, uint32_t err, void *u)
{
    struct msrv *s = u;
    (void)h2;
    (void)id;
    (void)err;
    s->open--;
    return 0;
}

static struct msrv *msrv_new(uint32_t max_streams)
{
    struct msrv *s = xcalloc(1, sizeof(*s));
    nghttp2_session_callbacks *cb;
    nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams};

    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, s_begin);
    nghttp2_session_callbacks_set_on_header_callback(cb, s_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, s_close);
    nghttp2_session_server_new(&s->h2, cb, s);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, &iv, 1);
    return s;
}

static void msrv_free(struct msrv *s)
{
    for (int i = 0; i < s->n; i++)
        buf_free(&s->req[i].body);
    nghttp2_session_del(s->h2);
    free(s);
}

struct body_src {
    const char *p;
    size_t len, off;
};

static ssize_t s_body(nghttp2_session *h2, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u)
{
    struct body_src *b = src->ptr;
    size_t n = b->len - b->off;
    (void)h2;
    (void)id;
    (void)u;
    if (n > len)
        n = len;
    memcpy(out, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Answer stream id; body may be NULL.  The body source must outlive the pump. */
static void msrv_answer(struct msrv *s, int32_t id, const char *status, const char *apns_id,
                        struct body_src *body)
{
    nghttp2_nv nva[2] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0},
        {(uint8_t *)"apns-id", (uint8_t *)apns_id, 7, strlen(apns_id), 0},
    };
    nghttp2_data_provider prd = {.source.ptr = body, .read_callback = s_body};
    cr_assert_eq(nghttp2_submit_response(s->h2, id, nva, 2, body ? &prd : NULL), 0);
}

/* --- the client side ------------------------------------------------------------------------ */

struct outcome {
    int status;
    char reason[64], apns_id[64];
    int64_t ts;
    int unanswered; /* -1: none; else enum apns_unanswered */
    int calls;
};

struct cli {
    struct apns_session *s;
    struct outcome out[MAXREQ];
    uint32_t settings_max;
    int settings_calls, goaways, ping_acks;
    int32_t goaway_last;
    char goaway_reason[64];
};

static void c_response(void *arg, void *user, const struct apns_h2_response *r)
{
    struct outcome *o = user;
    (void)arg;
    o->calls++;
    o->status = r->status;
    snprintf(o->reason, sizeof(o->reason), "%s", r->reason);
    snprintf(o->apns_id, sizeof(o->apns_id), "%s", r->apns_id);
    o->ts = r->timestamp_ms;
}

static void c_unanswered(void *arg, void *user, enum apns_unanswered why, uint32_t err)
{
    struct outcome *o = user;
    (void)arg;
    (void)err;
    o->calls++;
    o->unanswered = (int)why;
}

static void c_settings(void *arg, uint32_t max)
{
    struct cli *c = arg;
    c->settings_max = max;
    c->settings_calls++;
}

static void c_goaway(void *arg, uint32_t code, int32_t last, const char *reason)
{
    struct cli *c = arg;
    (void)code;
    c->goaways++;
    c->goaway_last = last;
    snprintf(c->goaway_reason, sizeof(c->goaway_reason), "%s", reason);
}

static void c_ping(void *arg)
{
    ((struct cli *)arg)->ping_acks++;
}

static const struct apns_session_cbs cbs = {c_response, c_unanswered, c_settings, c_goaway, c_ping};

static struct cli *cli_new(void)
{
    struct cli *c = xcalloc(1, sizeof(*c));
    for (int i = 0; i < MAXREQ; i++)
        c->out[i].unanswered = -1;
    c->s = apns_session_new("api.push.apple.com", &cbs, c);
    return c;
}

static void sink(void *arg, const uint8_t *data, size_t len)
{
    buf_append(arg, data, len);
}

/* Move bytes both ways until neither side has anything to say. */
static void pump(struct cli *c, struct msrv *s)
{
    struct scepter_error err;

    for (int i = 0; i < 100; i++) {
        struct buf b = BUF_INIT;
        const uint8_t *data;
        ssize_t n;
        size_t moved = 0;

        cr_assert_geq(apns_session_send(c->s, sink, &b, SIZE_MAX, &err), 0);
        if (b.len) {
            cr_assert_eq(nghttp2_session_mem_recv(s->h2, (uint8_t *)b.data, b.len), (ssize_t)b.len);
            moved += b.len;
        }
        buf_reset(&b);
        while ((n = nghttp2_session_mem_send(s->h2, &data)) > 0)
            buf_append(&b, data, (size_t)n);
        if (b.len) {
            cr_assert_eq(apns_session_recv(c->s, (uint8_t *)b.data, b.len, &err), 0, "%s", err.msg);
            moved += b.len;
        }
        buf_free(&b);
        if (moved == 0)
            return;
    }
    cr_assert_fail("the sessions kept talking");
}

static int submit(struct cli *c, int i, const char *token, const char *magic)
{
    struct scepter_error err;
    struct apns_h2_request r = {
        .token_hex = token,
        .push_magic = magic,
        .topic = "com.apple.mgmt.External.test",
        .priority = "10",
        .expiration = "1700000000",
        .user = &c->out[i],
    };
    return apns_session_submit(c->s, &r, &err);
}

/* --- tests ------------------------------------------------------------------------------------ */

Test(apns_session, opens_nothing_before_the_peer_settings)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(10);

    cr_assert_eq(apns_session_free_slots(c->s), 0);
    cr_assert_eq(submit(c, 0, "aa", "m"), SCEPTER_EUNAVAIL, "no stream before SETTINGS");
    pump(c, s);
    cr_assert(apns_session_got_settings(c->s));
    cr_assert_eq(c->settings_max, 10);
    cr_assert_eq(apns_session_free_slots(c->s), 10);
    apns_session_free(c->s);
    msrv_free(s);
    free(c);
}

Test(apns_session, builds_the_mdm_request_and_reads_a_200)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(100);

    pump(c, s);
    cr_assert_eq(submit(c, 0, "00AAbbCC", "8B1F6C3E-1D2A-4E4B-9C6D-7E8F9A0B1C2D"), 0);
    pump(c, s);
    cr_assert_eq(s->n, 1);
    struct sreq *r = &s->req[0];
    cr_assert(r->complete);
    cr_assert_str_eq(r->method, "POST");
    cr_assert_str_eq(r->path, "/3/device/00aabbcc", "token in lower-case hex");
    cr_assert_str_eq(r->authority, "api.push.apple.com");
    cr_assert_str_eq(r->topic, "com.apple.mgmt.External.test");
    cr_assert_str_eq(r->push_type, "mdm");
    cr_assert_str_eq(r->priority, "10");
    cr_assert_str_eq(r->expiration, "1700000000");
    cr_assert_eq(r->body.len, strlen("{\"mdm\":\"8B1F6C3E-1D2A-4E4B-9C6D-7E8F9A0B1C2D\"}"));
    cr_assert_str_eq(r->body.data, "{\"mdm\":\"8B1F6C3E-1D2A-4E4B-9C6D-7E8F9A0B1C2D\"}",
                     "body exactly {\"mdm\":\"<PushMagic>\"}");
    msrv_answer(s, r->id, "200", "d8ab2d2d-0000-4000-8000-000000000001", NULL);
    pump(c, s);
    cr_assert_eq(c->out[0].calls, 1, "exactly one callback");
    cr_assert_eq(c->out[0].status, 200);
    cr_assert_str_eq(c->out[0].apns_id, "d8ab2d2d-0000-4000-8000-000000000001");
    cr_assert_str_eq(c->out[0].reason, "");
    cr_assert_eq(apns_session_open_streams(c->s), 0);
    apns_session_free(c->s);
    msrv_free(s);
    free(c);
}

Test(apns_session, never_exceeds_max_concurrent_streams)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(3);
    int submitted = 0;

    pump(c, s);
    for (int i = 0; i < 10; i++)
        if (submit(c, i, "abcd", "m") == 0)
            submitted++;
    cr_assert_eq(submitted, 3, "three streams allowed, three opened");
    pump(c, s);
    cr_assert_eq(s->max_open, 3);
    msrv_answer(s, s->req[0].id, "200", "x", NULL);
    pump(c, s);
    cr_assert_eq(apns_session_free_slots(c->s), 1, "an answer frees a stream");
    cr_assert_eq(submit(c, 3, "abcd", "m"), 0);
    cr_assert_eq(submit(c, 4, "abcd", "m"), SCEPTER_EUNAVAIL);

    /* The peer lowers its limit: the core follows. */
    nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1};
    nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, &iv, 1);
    pump(c, s);
    cr_assert_eq(c->settings_max, 1);
    cr_assert_eq(apns_session_free_slots(c->s), 0);
    cr_assert_leq(s->max_open, 3);
    apns_session_free(c->s); /* three still open: each reported once */
    for (int i = 1; i < 4; i++)
        cr_assert_eq(c->out[i].calls, 1);
    msrv_free(s);
    free(c);
}

Test(apns_session, reads_reason_and_timestamp_of_errors)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(10);
    struct body_src gone = {"{\"reason\":\"Unregistered\",\"timestamp\":1700000000123}", 0, 0};
    struct body_src bad = {"{\"reason\":\"BadDeviceToken\"}", 0, 0};
    struct body_src junk = {"<html>oops</html>", 0, 0};

    gone.len = strlen(gone.p);
    bad.len = strlen(bad.p);
    junk.len = strlen(junk.p);
    pump(c, s);
    cr_assert_eq(submit(c, 0, "01", "m"), 0);
    cr_assert_eq(submit(c, 1, "02", "m"), 0);
    cr_assert_eq(submit(c, 2, "03", "m"), 0);
    pump(c, s);
    msrv_answer(s, s->req[0].id, "410", "a", &gone);
    msrv_answer(s, s->req[1].id, "400", "b", &bad);
    msrv_answer(s, s->req[2].id, "500", "c", &junk);
    pump(c, s);
    cr_assert_eq(c->out[0].status, 410);
    cr_assert_str_eq(c->out[0].reason, "Unregistered");
    cr_assert_eq(c->out[0].ts, 1700000000123LL);
    cr_assert_eq(c->out[1].status, 400);
    cr_assert_str_eq(c->out[1].reason, "BadDeviceToken");
    cr_assert_eq(c->out[2].status, 500);
    cr_assert_str_eq(c->out[2].reason, "unparseable error body");
    apns_session_free(c->s);
    msrv_free(s);
    free(c);
}

Test(apns_session, goaway_refuses_streams_above_the_last_id)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(10);
    static const char why[] = "{\"reason\":\"Shutdown\"}";

    pump(c, s);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(submit(c, i, "abcd", "m"), 0);
    pump(c, s);
    cr_assert_eq(s->n, 5);
    /* Streams 1 and 3 will be answered; 5, 7 and 9 are refused. */
    nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, s->req[1].id, NGHTTP2_NO_ERROR,
                          (const uint8_t *)why, sizeof(why) - 1);
    msrv_answer(s, s->req[0].id, "200", "a", NULL);
    msrv_answer(s, s->req[1].id, "200", "b", NULL);
    pump(c, s);
    cr_assert_eq(c->goaways, 1);
    cr_assert_eq(c->goaway_last, 3);
    cr_assert_str_eq(c->goaway_reason, "Shutdown");
    cr_assert_eq(c->out[0].status, 200);
    cr_assert_eq(c->out[1].status, 200);
    for (int i = 2; i < 5; i++) {
        cr_assert_eq(c->out[i].calls, 1, "request %d reported once", i);
        cr_assert_eq(c->out[i].unanswered, APNS_REFUSED, "request %d refused, safe to resend", i);
    }
    cr_assert_eq(apns_session_free_slots(c->s), 0, "no new streams after GOAWAY");
    cr_assert_eq(submit(c, 5, "abcd", "m"), SCEPTER_EUNAVAIL);
    cr_assert(apns_session_finished(c->s));
    apns_session_free(c->s);
    msrv_free(s);
    free(c);
}

Test(apns_session, reset_streams_and_teardown_report_each_request_once)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(10);

    pump(c, s);
    cr_assert_eq(submit(c, 0, "aa", "m"), 0);
    cr_assert_eq(submit(c, 1, "bb", "m"), 0);
    pump(c, s);
    nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, s->req[0].id, NGHTTP2_INTERNAL_ERROR);
    pump(c, s);
    cr_assert_eq(c->out[0].calls, 1);
    cr_assert_eq(c->out[0].unanswered, APNS_LOST, "sent then reset: may have been delivered");
    /* One sent and never answered, one queued and never sent. */
    cr_assert_eq(submit(c, 2, "cc", "m"), 0);
    apns_session_free(c->s);
    cr_assert_eq(c->out[1].calls, 1);
    cr_assert_eq(c->out[1].unanswered, APNS_LOST);
    cr_assert_eq(c->out[2].calls, 1);
    cr_assert_eq(c->out[2].unanswered, APNS_UNSENT, "never left: safe to resend");
    msrv_free(s);
    free(c);
}

Test(apns_session, garbage_from_the_peer_is_a_connection_error)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(10);
    struct scepter_error err;
    static const uint8_t junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";

    pump(c, s);
    cr_assert_eq(submit(c, 0, "aa", "m"), 0);
    pump(c, s);
    /* "HTT" read as a frame length: 4.7 MB, far above the frame size limit. */
    int rc = apns_session_recv(c->s, junk, sizeof(junk) - 1, &err);
    if (rc == 0) { /* nghttp2 answers with GOAWAY on the next send */
        struct buf b = BUF_INIT;
        rc = (int)apns_session_send(c->s, sink, &b, SIZE_MAX, &err);
        buf_free(&b);
    }
    cr_assert_lt(rc, 0, "junk must kill the session");
    cr_assert(strstr(err.msg, "HTTP/2") != NULL, "%s", err.msg);
    apns_session_free(c->s);
    cr_assert_eq(c->out[0].calls, 1);
    cr_assert_eq(c->out[0].unanswered, APNS_LOST);
    msrv_free(s);
    free(c);
}

Test(apns_session, hand_built_settings_and_ping_frames)
{
    struct cli *c = cli_new();
    struct scepter_error err;
    struct buf out = BUF_INIT;
    /* SETTINGS: length 6, type 4, flags 0, stream 0; MAX_CONCURRENT_STREAMS (3) = 2. */
    static const uint8_t settings[] = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2};
    /* PING ACK with 8 zero bytes (answers the core's PING). */
    static const uint8_t ping_ack[] = {0, 0, 8, 6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

    cr_assert_gt(apns_session_send(c->s, sink, &out, SIZE_MAX, &err), 0, "preface + SETTINGS");
    cr_assert_eq(memcmp(out.data, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN), 0);
    cr_assert_eq(apns_session_recv(c->s, settings, sizeof(settings), &err), 0, "%s", err.msg);
    cr_assert_eq(c->settings_max, 2);
    cr_assert_eq(apns_session_free_slots(c->s), 2);
    cr_assert_eq(submit(c, 0, "aa", "m"), 0);
    cr_assert_eq(submit(c, 1, "bb", "m"), 0);
    cr_assert_eq(submit(c, 2, "cc", "m"), SCEPTER_EUNAVAIL);
    cr_assert_eq(apns_session_ping(c->s, &err), 0);
    buf_reset(&out);
    cr_assert_gt(apns_session_send(c->s, sink, &out, SIZE_MAX, &err), 0);
    cr_assert_eq(apns_session_recv(c->s, ping_ack, sizeof(ping_ack), &err), 0, "%s", err.msg);
    cr_assert_eq(c->ping_acks, 1);
    buf_free(&out);
    apns_session_free(c->s);
    cr_assert_eq(c->out[0].calls + c->out[1].calls, 2);
    free(c);
}

Test(apns_session, send_stops_near_the_limit)
{
    struct cli *c = cli_new();
    struct msrv *s = msrv_new(100);
    struct scepter_error err;
    struct buf out = BUF_INIT;
    int64_t n;

    pump(c, s);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(submit(c, i, "0123456789abcdef0123456789abcdef", "m"), 0);
    n = apns_session_send(c->s, sink, &out, 100, &err);
    cr_assert_gt(n, 0);
    cr_assert(apns_session_want_write(c->s), "frames left for the next call");
    buf_free(&out);
    apns_session_free(c->s);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(c->out[i].calls, 1);
    msrv_free(s);
    free(c);
}

/*
 * Damaged answers: the server's real frames (HEADERS, HPACK, a JSON error body) with a few
 * bytes flipped, and pure noise.  Whatever arrives, the core must not crash (ASan watches)
 * and every request must still end in exactly one callback.
 */
Test(apns_session, damaged_frames_never_lose_a_request)
{
    uint64_t rng = 0x5eed;
    struct body_src gone = {"{\"reason\":\"Unregistered\",\"timestamp\":1700000000123}", 0, 0};

    gone.len = strlen(gone.p);
    for (int round = 0; round < 400; round++) {
        struct cli *c = cli_new();
        struct msrv *s = msrv_new(10);
        struct scepter_error err;
        struct buf b = BUF_INIT;
        const uint8_t *data;
        ssize_t n;

        pump(c, s);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(submit(c, i, "abcdef", "magic"), 0);
        pump(c, s);
        for (int i = 0; i < 3; i++) {
            gone.off = 0;
            msrv_answer(s, s->req[i].id, i == 1 ? "200" : "410", "id", i == 1 ? NULL : &gone);
        }
        while ((n = nghttp2_session_mem_send(s->h2, &data)) > 0)
            buf_append(&b, data, (size_t)n);
        if (round % 4 == 3) { /* pure noise */
            for (size_t i = 0; i < b.len; i++)
                b.data[i] = (char)apns_rand_next(&rng);
        } else {
            int flips = 1 + (int)(apns_rand_next(&rng) % 3);
            for (int f = 0; f < flips && b.len > 0; f++)
                b.data[apns_rand_next(&rng) % b.len] ^= (char)(1 + apns_rand_next(&rng) % 255);
        }
        if (apns_session_recv(c->s, (uint8_t *)b.data, b.len, &err) == 0) {
            struct buf out = BUF_INIT;
            (void)apns_session_send(c->s, sink, &out, SIZE_MAX, &err);
            buf_free(&out);
        }
        apns_session_free(c->s);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(c->out[i].calls, 1, "round %d request %d: %d callbacks", round, i,
                         c->out[i].calls);
        buf_free(&b);
        msrv_free(s);
        free(c);
    }
}
