/*
 * The HTTP/2 core of an APNs connection (see session_int.h): an nghttp2 client session fed
 * with nghttp2_session_mem_recv and drained with nghttp2_session_mem_send, so that tests can
 * drive it with scripted frames and the transport only moves bytes.  Each request is one
 * stream record holding the strings nghttp2 sends without copying (path, body, topic,
 * expiration); the record lives until the stream closes, and every record ends in exactly
 * one callback: response or unanswered.
 */
#include "session_int.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

struct h2_stream {
    struct h2_stream *prev, *next; /* the session's open records, in submission order */
    int32_t id;
    void *user;
    bool sent;       /* the HEADERS frame left */
    bool remote_end; /* the peer ended its side */
    int status;
    char apns_id[64];
    struct buf body; /* response body, at most APNS_MAX_RESPONSE_BODY */
    const char *req_body;
    size_t req_body_len, req_body_off;
    char data[]; /* path, body, topic, expiration, priority: NUL-separated */
};

struct apns_session {
    nghttp2_session *h2;
    struct apns_session_cbs cbs;
    void *arg;
    char *authority;
    struct h2_stream *head, *tail;
    size_t nstreams;
    bool got_settings;
    bool got_goaway;
    bool shut_down; /* we sent GOAWAY */
    bool ids_exhausted;
    bool broken; /* nghttp2 ended the session over a protocol error */
    uint32_t broken_code;
};

static void stream_unlink(struct apns_session *s, struct h2_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->head = st->next;
    if (st->next)
        st->next->prev = st->prev;
    else
        s->tail = st->prev;
    s->nstreams--;
}

static void stream_free(struct h2_stream *st)
{
    buf_free(&st->body);
    free(st);
}

/* Pull "reason" and "timestamp" out of an APNs error body. */
static void parse_error_body(const struct buf *body, char *reason, size_t rlen, int64_t *ts)
{
    json_t *root, *v;

    reason[0] = '\0';
    *ts = 0;
    if (body->len == 0)
        return;
    root = json_loadb(body->data, body->len, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        str_copy(reason, rlen, "unparseable error body");
        json_decref(root);
        return;
    }
    v = json_object_get(root, "reason");
    if (json_is_string(v))
        str_copy(reason, rlen, json_string_value(v));
    v = json_object_get(root, "timestamp");
    if (json_is_integer(v))
        *ts = json_integer_value(v);
    json_decref(root);
}

static void stream_finish(struct apns_session *s, struct h2_stream *st, uint32_t error_code)
{
    stream_unlink(s, st);
    if (st->status >= 200 && st->remote_end && error_code == NGHTTP2_NO_ERROR) {
        char reason[128];
        struct apns_h2_response r = {
            .status = st->status, .reason = reason, .apns_id = st->apns_id};
        if (st->status != 200)
            parse_error_body(&st->body, reason, sizeof(reason), &r.timestamp_ms);
        else
            reason[0] = '\0';
        s->cbs.response(s->arg, st->user, &r);
    } else {
        enum apns_unanswered why = !st->sent                              ? APNS_UNSENT
                                   : error_code == NGHTTP2_REFUSED_STREAM ? APNS_REFUSED
                                                                          : APNS_LOST;
        s->cbs.unanswered(s->arg, st->user, why, error_code);
    }
    stream_free(st);
}

/* --- nghttp2 callbacks ------------------------------------------------------------------ */

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct h2_stream *st;

    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            status = status * 10 + (value[i] - '0'); /* nghttp2 checked it is 3 digits */
        if (status >= 200)
            st->status = status;
    } else if (namelen == 7 && memcmp(name, "apns-id", 7) == 0) {
        size_t n = valuelen < sizeof(st->apns_id) - 1 ? valuelen : sizeof(st->apns_id) - 1;
        memcpy(st->apns_id, value, n);
        st->apns_id[n] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    (void)flags;
    (void)user_data;
    if (st == NULL)
        return 0;
    if (st->body.len < APNS_MAX_RESPONSE_BODY) {
        size_t room = APNS_MAX_RESPONSE_BODY - st->body.len;
        buf_append(&st->body, data, len < room ? len : room);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct apns_session *s = user_data;

    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
            s->got_settings = true;
            if (s->cbs.settings)
                s->cbs.settings(s->arg, apns_session_peer_max_streams(s));
        }
        break;
    case NGHTTP2_GOAWAY: {
        char reason[128] = "";
        const nghttp2_goaway *g = &frame->goaway;
        if (g->opaque_data_len > 0) {
            struct buf b = BUF_INIT;
            int64_t ts;
            buf_append(&b, g->opaque_data,
                       g->opaque_data_len < APNS_MAX_RESPONSE_BODY ? g->opaque_data_len
                                                                   : APNS_MAX_RESPONSE_BODY);
            parse_error_body(&b, reason, sizeof(reason), &ts);
            buf_free(&b);
        }
        s->got_goaway = true;
        if (s->cbs.goaway)
            s->cbs.goaway(s->arg, g->error_code, g->last_stream_id, reason);
        break;
    }
    case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && s->cbs.ping_ack)
            s->cbs.ping_ack(s->arg);
        break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            struct h2_stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
            if (st)
                st->remote_end = true;
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct apns_session *s = user_data;

    if (frame->hd.type == NGHTTP2_GOAWAY && !s->shut_down) {
        /* Not ours: nghttp2 answers a protocol violation of the peer with GOAWAY. */
        s->broken = true;
        s->broken_code = frame->goaway.error_code;
    }
    if (frame->hd.type == NGHTTP2_HEADERS) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
        if (st)
            st->sent = true;
    }
    return 0;
}

/*
 * A request HEADERS that could not be sent (GOAWAY arrived first, ids ran out).  If nghttp2
 * opened the stream it will also close it (on_stream_close reports it); otherwise the record
 * is ours to report.
 */
static int on_frame_not_send(nghttp2_session *h2, const nghttp2_frame *frame, int lib_error,
                             void *user_data)
{
    struct apns_session *s = user_data;

    (void)lib_error;
    if (frame->hd.type != NGHTTP2_HEADERS || nghttp2_session_find_stream(h2, frame->hd.stream_id))
        return 0;
    for (struct h2_stream *st = s->tail; st; st = st->prev) {
        if (st->id == frame->hd.stream_id) {
            st->sent = false;
            stream_finish(s, st, NGHTTP2_REFUSED_STREAM);
            break;
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct apns_session *s = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);

    if (st != NULL) {
        nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
        stream_finish(s, st, error_code);
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *h2, int32_t stream_id, uint8_t *out, size_t len,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct h2_stream *st = source->ptr;
    size_t n = st->req_body_len - st->req_body_off;

    (void)h2;
    (void)stream_id;
    (void)user_data;
    if (n > len)
        n = len;
    memcpy(out, st->req_body + st->req_body_off, n);
    st->req_body_off += n;
    if (st->req_body_off == st->req_body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* --- public ------------------------------------------------------------------------------ */

struct apns_session *apns_session_new(const char *authority, const struct apns_session_cbs *cbs,
                                      void *arg)
{
    struct apns_session *s = xcalloc(1, sizeof(*s));
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};

    s->cbs = *cbs;
    s->arg = arg;
    s->authority = xstrdup(authority);
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        fatalx("nghttp2: out of memory");
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    /* Nothing opens until the peer says how many streams it takes. */
    nghttp2_option_set_peer_max_concurrent_streams(opt, 0);
    if (nghttp2_session_client_new2(&s->h2, cb, s, opt) != 0)
        fatalx("nghttp2: out of memory");
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0)
        fatalx("nghttp2: cannot queue SETTINGS");
    /* A large connection window: answers are small, but many. */
    nghttp2_session_set_local_window_size(s->h2, NGHTTP2_FLAG_NONE, 0, 1 << 24);
    return s;
}

void apns_session_free(struct apns_session *s)
{
    if (s == NULL)
        return;
    while (s->head) {
        struct h2_stream *st = s->head;
        if (nghttp2_session_find_stream(s->h2, st->id))
            nghttp2_session_set_stream_user_data(s->h2, st->id, NULL);
        stream_finish(s, st, NGHTTP2_CANCEL);
    }
    nghttp2_session_del(s->h2);
    free(s->authority);
    free(s);
}

int apns_session_recv(struct apns_session *s, const uint8_t *data, size_t len,
                      struct scepter_error *err)
{
    ssize_t n = nghttp2_session_mem_recv(s->h2, data, len);

    if (n < 0)
        return scepter_err(err, SCEPTER_EIO, NULL, "HTTP/2: %s", nghttp2_strerror((int)n));
    return 0;
}

int64_t apns_session_send(struct apns_session *s, apns_sink_fn sink, void *arg, size_t limit,
                          struct scepter_error *err)
{
    int64_t total = 0;

    while ((size_t)total < limit) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s->h2, &data);
        if (n < 0)
            return scepter_err(err, SCEPTER_EIO, NULL, "HTTP/2: %s", nghttp2_strerror((int)n));
        if (n == 0)
            break;
        sink(arg, data, (size_t)n);
        total += n;
    }
    if (s->broken)
        return scepter_err(err, SCEPTER_EIO, NULL, "HTTP/2: the peer broke the protocol (%s)",
                           nghttp2_http2_strerror(s->broken_code));
    return total;
}

uint32_t apns_session_peer_max_streams(const struct apns_session *s)
{
    if (!s->got_settings)
        return 0;
    return nghttp2_session_get_remote_settings(s->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

size_t apns_session_free_slots(const struct apns_session *s)
{
    uint32_t max;

    if (!s->got_settings || s->got_goaway || s->shut_down || s->ids_exhausted)
        return 0;
    max = apns_session_peer_max_streams(s);
    return max > s->nstreams ? max - s->nstreams : 0;
}

int apns_session_submit(struct apns_session *s, const struct apns_h2_request *r,
                        struct scepter_error *err)
{
    static const char prefix[] = "/3/device/";
    size_t tlen = strlen(r->token_hex), mlen = strlen(r->push_magic), toplen = strlen(r->topic);
    size_t elen = r->expiration ? strlen(r->expiration) + 1 : 0;
    size_t plen = r->priority ? strlen(r->priority) + 1 : 0;
    size_t cap = sizeof(prefix) + tlen + 8 + mlen + 3 + toplen + 1 + elen + plen;
    struct h2_stream *st;
    char *p, *path, *body, *topic, *exp = NULL, *prio = NULL;
    nghttp2_nv nva[9];
    size_t nv = 0;
    nghttp2_data_provider prd;
    int32_t id;

    if (apns_session_free_slots(s) == 0)
        return scepter_err(err, SCEPTER_EUNAVAIL, NULL, "HTTP/2: no free stream");
    st = xmalloc(sizeof(*st) + cap);
    memset(st, 0, sizeof(*st));
    p = st->data;
    path = p;
    memcpy(p, prefix, sizeof(prefix) - 1);
    p += sizeof(prefix) - 1;
    for (size_t i = 0; i < tlen; i++) /* Apple's examples use lower case */
        *p++ = (char)((r->token_hex[i] >= 'A' && r->token_hex[i] <= 'F') ? r->token_hex[i] + 32
                                                                         : r->token_hex[i]);
    *p++ = '\0';
    body = p;
    memcpy(p, "{\"mdm\":\"", 8);
    p += 8;
    memcpy(p, r->push_magic, mlen);
    p += mlen;
    memcpy(p, "\"}", 3);
    p += 3;
    st->req_body = body;
    st->req_body_len = 8 + mlen + 2;
    topic = p;
    memcpy(p, r->topic, toplen + 1);
    p += toplen + 1;
    if (elen) {
        exp = p;
        memcpy(p, r->expiration, elen);
        p += elen;
    }
    if (plen) {
        prio = p;
        memcpy(p, r->priority, plen);
    }

#define NV(n, v, f)                                                                                \
    nva[nv++] = (nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),             \
                             NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE | (f)}
    NV(":method", "POST", 0);
    NV(":scheme", "https", 0);
    NV(":authority", s->authority, 0);
    NV(":path", path, NGHTTP2_NV_FLAG_NO_INDEX); /* Apple: paths are literal, not indexed */
    NV("apns-topic", topic, 0);
    NV("apns-push-type", "mdm", 0);
    if (prio)
        NV("apns-priority", prio, 0);
    if (exp)
        NV("apns-expiration", exp, NGHTTP2_NV_FLAG_NO_INDEX);
#undef NV

    prd.source.ptr = st;
    prd.read_callback = read_body;
    st->user = r->user;
    id = nghttp2_submit_request(s->h2, NULL, nva, nv, &prd, st);
    if (id < 0) {
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
            s->ids_exhausted = true;
        free(st);
        return scepter_err(err, SCEPTER_EUNAVAIL, NULL, "HTTP/2: %s", nghttp2_strerror(id));
    }
    st->id = id;
    st->prev = s->tail;
    if (s->tail)
        s->tail->next = st;
    else
        s->head = st;
    s->tail = st;
    s->nstreams++;
    return 0;
}

size_t apns_session_open_streams(const struct apns_session *s)
{
    return s->nstreams;
}

bool apns_session_got_settings(const struct apns_session *s)
{
    return s->got_settings;
}

bool apns_session_want_write(const struct apns_session *s)
{
    return nghttp2_session_want_write(s->h2) != 0;
}

bool apns_session_finished(const struct apns_session *s)
{
    if (nghttp2_session_want_read(s->h2) == 0 && nghttp2_session_want_write(s->h2) == 0)
        return true;
    return (s->got_goaway || s->shut_down) && s->nstreams == 0 &&
           nghttp2_session_want_write(s->h2) == 0;
}

int apns_session_ping(struct apns_session *s, struct scepter_error *err)
{
    int rv = nghttp2_submit_ping(s->h2, NGHTTP2_FLAG_NONE, NULL);

    if (rv != 0)
        return scepter_err(err, SCEPTER_EIO, NULL, "HTTP/2: PING: %s", nghttp2_strerror(rv));
    return 0;
}

void apns_session_shutdown(struct apns_session *s)
{
    if (s->shut_down)
        return;
    s->shut_down = true;
    nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
}
