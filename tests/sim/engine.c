/*
 * The engine: N simulated devices on one libevent loop.  Each device is a small record until
 * it enrolls (then it owns a struct sim_device).  Devices reach the server over HTTPS with
 * their own identity (mTLS, plus Mdm-Signature when the profile says SignMessage), keep the
 * connection alive for a whole command session, and at most `concurrency` of them talk to the
 * server at once (struct sim_pool, FIFO).  One evhttp listener on 127.0.0.1 receives the APNs
 * test server's push callbacks; a push whose PushMagic is not the device's is ignored, as a
 * device does.  A session is Idle, then command/result rounds until the server answers with
 * an empty body; NotNow as the last status makes the device poll again by itself later.
 *
 * The enrollment profile download and the SCEP exchange are blocking (they run on a private
 * loop inside sim_http_fetch), so they run on preparation threads (--enroll-threads), several
 * devices at once; the loop takes each prepared device and runs its check-ins.  Without
 * --shared-key an enrollment's cost is dominated by RSA key generation.
 */
#include "sim_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"

enum dev_state { DEV_NEW = 0, DEV_ENROLLING, DEV_ENROLLED, DEV_FAILED, DEV_UNENROLLED };

static const char *const state_names[] = {"new", "enrolling", "enrolled", "failed", "unenrolled"};

enum dev_step { STEP_NONE = 0, STEP_AUTH, STEP_TOKEN, STEP_IDLE, STEP_RESULT, STEP_CHECKOUT };

/* One device: kept small, since a scale run holds 100,000 of them. */
struct dev {
    struct sim_device *sd; /* NULL until enrolled */
    struct sim_engine *e;
    struct evhttp_connection *evcon;
    uint32_t index;
    uint8_t state; /* enum dev_state */
    uint8_t step;  /* enum dev_step in flight */
    uint8_t in_pool : 1, waiting : 1, push_pending : 1, slow : 1, retry_armed : 1;
    uint64_t t0_us;        /* when the request in flight was sent */
    char label[20];        /* message type of the request in flight, for the stats */
    struct unsent *unsent; /* a result not yet acknowledged with a 2xx, or NULL */
};

/*
 * A command result the server has not answered with a 2xx yet.  Like a real device, the
 * simulator keeps it and sends it again at the start of the next session instead of Idle
 * (Apple: a device retries a result until it gets a 2xx), rather than running the command
 * a second time.
 */
struct unsent {
    char *body;
    size_t len;
    char label[20];
};

static void unsent_clear(struct dev *d)
{
    if (d->unsent) {
        free(d->unsent->body);
        free(d->unsent);
        d->unsent = NULL;
    }
}

struct sim_engine {
    struct sim_engine_opts o;
    struct event_base *base;
    struct evhttp *listener;
    int push_port;
    struct event *tick, *sigint;
    SSL_CTX *ssl;
    X509_STORE *trust; /* opts' trust plus the profile's root payloads */
    EVP_PKEY *shared_key;
    pthread_mutex_t pki_lock; /* one PKIOperation at a time (see struct sim_scep_opts) */
    struct dev *devs;
    struct sim_pool *pool;
    struct sim_stats *stats;
    uint64_t rng;
    unsigned char prefix[4];
    uint64_t start_us, last_activity_us;
    /* counters */
    uint64_t enrolled, failed, pushes, pushes_ignored, pushes_unknown, sessions, drops, http_errors,
        commands, renewals, status_count[6];
    unsigned active; /* requests in flight + timers armed */
    bool until_idle;
    int idle_ms;
    char last_error[256];
};

static const char *const status_names[] = {"Acknowledged",       "Error", "NotNow",
                                           "CommandFormatError", "Idle",  "other"};

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sim_engine_token(const struct sim_engine *e, uint32_t index, unsigned char out[32])
{
    uint64_t rng = e->o.seed ^ 0x70CE70CEULL ^ ((uint64_t)index << 20);

    memcpy(out, e->prefix, 4);
    out[4] = (unsigned char)(index >> 24);
    out[5] = (unsigned char)(index >> 16);
    out[6] = (unsigned char)(index >> 8);
    out[7] = (unsigned char)index;
    for (int i = 8; i < 32; i += 8) {
        uint64_t v = sim_rand_next(&rng);
        memcpy(out + i, &v, 8);
    }
}

static void new_push_magic(struct sim_engine *e, char out[UUID_STR_LEN])
{
    uint64_t a = sim_rand_next(&e->rng), b = sim_rand_next(&e->rng);

    snprintf(out, UUID_STR_LEN, "%08X-%04X-4%03X-%04X-%012llX", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static void set_error(struct sim_engine *e, const char *msg)
{
    str_copy(e->last_error, sizeof(e->last_error), msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Requests to the server                                                                    */

static void session_next(struct dev *d, struct evhttp_request *req);
/* SCEP through the engine's trust and key policy (also the brain's env->scep). */
int sim_engine_scep_cb(void *arg, const struct sim_scep_request *req, struct sim_scep_result *res,
                       struct scepter_error *err);
static void slot_release(struct dev *d);

static void close_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_connection_free(arg);
}

/* Close the device's connection outside libevent's callback for it. */
static void drop_conn(struct dev *d)
{
    if (d->evcon) {
        event_base_once(d->e->base, -1, EV_TIMEOUT, close_conn_cb, d->evcon, NULL);
        d->evcon = NULL;
    }
}

static int ensure_conn(struct dev *d, const char *url, struct scepter_error *err)
{
    struct sim_engine *e = d->e;
    struct evhttp_uri *uri;
    struct bufferevent *bev;
    const char *host;
    int port;
    struct timeval tv;

    if (d->evcon)
        return 0;
    uri = evhttp_uri_parse(url);
    host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (host == NULL) {
        if (uri)
            evhttp_uri_free(uri);
        return scepter_err(err, SCEPTER_EINVAL, "ServerURL", "bad URL %s", url);
    }
    port = evhttp_uri_get_port(uri);
    if (port < 0)
        port = 443;
    bev = sim_tls_bev_new(e->base, e->ssl, host, sim_device_identity(d->sd), sim_device_key(d->sd),
                          err);
    if (bev == NULL) {
        evhttp_uri_free(uri);
        return err ? err->code : SCEPTER_ECRYPTO;
    }
    d->evcon = evhttp_connection_base_bufferevent_new(e->base, NULL, bev, host, (ev_uint16_t)port);
    evhttp_uri_free(uri);
    if (d->evcon == NULL) {
        bufferevent_free(bev);
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "cannot create a connection");
    }
    tv.tv_sec = e->o.timeout_ms / 1000;
    tv.tv_usec = (e->o.timeout_ms % 1000) * 1000;
    evhttp_connection_set_timeout_tv(d->evcon, &tv);
    evhttp_connection_set_retries(d->evcon, 0);
    evhttp_connection_set_max_body_size(d->evcon, 16 * 1024 * 1024);
    return 0;
}

static void reply_cb(struct evhttp_request *req, void *arg);

/* PUT body to url (the device's check-in or server URL); the reply goes to reply_cb. */
static int send_put(struct dev *d, const char *url, const char *ctype, const char *body, size_t len,
                    const char *label, enum dev_step step)
{
    struct sim_engine *e = d->e;
    struct scepter_error err;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    char *target, hostport[300];

    if (ensure_conn(d, url, &err) != 0) {
        if (uri)
            evhttp_uri_free(uri);
        set_error(e, err.msg);
        return -1;
    }
    req = evhttp_request_new(reply_cb, d);
    h = evhttp_request_get_output_headers(req);
    if (evhttp_uri_get_port(uri) > 0)
        snprintf(hostport, sizeof(hostport), "%s:%d", evhttp_uri_get_host(uri),
                 evhttp_uri_get_port(uri));
    else
        str_copy(hostport, sizeof(hostport), evhttp_uri_get_host(uri));
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "User-Agent", "MDM/1.0 scepter-sim");
    if (sim_device_mdm(d->sd) == NULL || sim_device_mdm(d->sd)->sign_message) {
        char *sig =
            sim_mdm_signature(body, len, sim_device_identity(d->sd), sim_device_key(d->sd), &err);
        if (sig) {
            evhttp_add_header(h, "Mdm-Signature", sig);
            free(sig);
        }
    }
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    target =
        xasprintf("%s%s%s", (path && path[0]) ? path : "/", query ? "?" : "", query ? query : "");
    str_copy(d->label, sizeof(d->label), label);
    d->step = (uint8_t)step;
    d->t0_us = now_us();
    e->active++;
    if (evhttp_make_request(d->evcon, req, EVHTTP_REQ_PUT, target) != 0) {
        e->active--;
        free(target);
        evhttp_uri_free(uri);
        drop_conn(d);
        set_error(e, "evhttp_make_request failed");
        return -1;
    }
    sim_http_nodelay(d->evcon);
    free(target);
    evhttp_uri_free(uri);
    return 0;
}

static int send_checkin(struct dev *d, char *body, size_t len, const char *label,
                        enum dev_step step)
{
    int rc = send_put(d, sim_device_mdm(d->sd)->checkin_url,
                      "application/x-apple-aspen-mdm-checkin", body, len, label, step);

    free(body);
    return rc;
}

static int send_connect(struct dev *d, char *body, size_t len, const char *label)
{
    if (d->step != STEP_NONE && (d->unsent == NULL || d->unsent->body != body)) {
        /* A result: keep it until the server answers 2xx. */
        unsent_clear(d);
        d->unsent = xcalloc(1, sizeof(*d->unsent));
        d->unsent->body = xmemdup(body, len);
        d->unsent->len = len;
        str_copy(d->unsent->label, sizeof(d->unsent->label), label);
    }
    int rc = send_put(d, sim_device_mdm(d->sd)->server_url, "application/x-apple-aspen-mdm", body,
                      len, label, d->step == STEP_NONE ? STEP_IDLE : STEP_RESULT);

    free(body);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The connection bound                                                                      */

static void slot_granted(struct dev *d);

static void slot_acquire(struct dev *d)
{
    if (d->in_pool || d->waiting)
        return;
    if (sim_pool_acquire(d->e->pool, d)) {
        d->in_pool = 1;
        slot_granted(d);
    } else {
        d->waiting = 1;
    }
}

static void slot_release(struct dev *d)
{
    struct dev *next;

    if (!d->in_pool)
        return;
    d->in_pool = 0;
    drop_conn(d);
    next = sim_pool_release(d->e->pool);
    if (next) {
        next->waiting = 0;
        next->in_pool = 1;
        slot_granted(next);
    }
}

static void start_session(struct dev *d)
{
    size_t len;
    char *body;

    d->step = STEP_NONE;
    d->e->sessions++;
    if (d->unsent) {
        /* The last result never got its 2xx: send it again first. */
        d->step = STEP_RESULT;
        char *again = xmemdup(d->unsent->body, d->unsent->len);
        char label[20];
        str_copy(label, sizeof(label), d->unsent->label);
        if (send_connect(d, again, d->unsent->len, label) != 0) {
            d->e->http_errors++;
            slot_release(d);
        }
        return;
    }
    body = sim_device_idle(d->sd, &len);
    if (send_connect(d, body, len, "Idle") != 0) {
        d->e->http_errors++;
        slot_release(d);
    }
}

static void slot_granted(struct dev *d)
{
    if (d->state == DEV_ENROLLING) {
        size_t len;
        char *body = sim_device_authenticate(d->sd, &len);

        if (send_checkin(d, body, len, "Authenticate", STEP_AUTH) != 0) {
            d->state = DEV_FAILED;
            d->e->failed++;
            slot_release(d);
        }
        return;
    }
    if (d->state == DEV_ENROLLED) {
        d->push_pending = 0;
        start_session(d);
        return;
    }
    slot_release(d);
}

/* ---------------------------------------------------------------------------------------- */
/* Replies                                                                                   */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dev *d = arg;

    (void)fd;
    (void)what;
    d->retry_armed = 0;
    if (d->state == DEV_ENROLLED)
        slot_acquire(d);
}

static void arm_retry(struct dev *d)
{
    struct timeval tv = {d->e->o.retry_ms / 1000, (d->e->o.retry_ms % 1000) * 1000};

    if (d->retry_armed)
        return;
    /* Not counted as activity: --until-idle may end with re-polls still pending. */
    d->retry_armed = 1;
    event_base_once(d->e->base, -1, EV_TIMEOUT, retry_cb, d, &tv);
}

static void count_status(struct sim_engine *e, const char *status)
{
    size_t i;

    for (i = 0; i < 5; i++)
        if (strcmp(status, status_names[i]) == 0)
            break;
    e->status_count[i]++;
}

struct delayed {
    struct dev *d;
    char *body;
    size_t len;
    char label[24];
};

static void delayed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *x = arg;

    (void)fd;
    (void)what;
    x->d->e->active--;
    if (send_connect(x->d, x->body, x->len, x->label) != 0) {
        x->d->e->http_errors++;
        slot_release(x->d);
    }
    free(x);
}

/* A DeclarativeManagement command's sync (ddm.c), blocking like the SCEP of InstallProfile. */
static int engine_ddm_cb(void *arg, struct sim_device *sd, const char *tokens,
                         struct scepter_error *err)
{
    struct sim_engine *e = arg;
    const struct sim_facts *f = sim_device_facts(sd);
    const struct sim_mdm_settings *m = sim_device_mdm(sd);
    struct sim_ddm_env env;

    memset(&env, 0, sizeof(env));
    env.checkin_url = m->checkin_url ? m->checkin_url : m->server_url;
    env.udid = f->udid;
    env.trust = e->trust;
    env.cert = sim_device_identity(sd);
    env.key = sim_device_key(sd);
    env.os_version = f->os_version;
    env.build_version = f->build_version;
    env.model_family = f->platform == SIM_MAC      ? "Mac"
                       : f->platform == SIM_IPHONE ? "iPhone"
                                                   : "iPad";
    env.scep = sim_engine_scep_cb;
    env.scep_arg = e;
    env.timeout_ms = e->o.timeout_ms;
    return sim_ddm_sync(sim_device_ddm(sd), &env, tokens, err);
}

static void run_command(struct dev *d, const unsigned char *body, size_t len)
{
    struct sim_engine *e = d->e;
    struct sim_brain_env env;
    struct sim_brain_outcome out;
    plist_t result = NULL;
    char *xml;
    size_t xlen;

    e->commands++;
    if (e->o.drop_rate > 0 && sim_rand_unit(&e->rng) < e->o.drop_rate) {
        /* Drop the connection mid-command; the device comes back later with Idle and the
         * server offers the command again. */
        e->drops++;
        slot_release(d);
        arm_retry(d);
        return;
    }
    memset(&env, 0, sizeof(env));
    env.notnow_rate = e->o.notnow_rate;
    env.rng = &e->rng;
    env.trust = e->o.verify_profile_chain ? e->trust : NULL;
    env.now = (long long)time(NULL);
    env.scep = sim_engine_scep_cb;
    env.scep_arg = e;
    env.ddm = engine_ddm_cb;
    env.ddm_arg = e;
    sim_brain_handle(d->sd, &env, body, len, &result, &out);
    count_status(e, out.status);
    xml = plistx_to_xml(result, &xlen);
    plist_free(result);
    if (out.unenrolled) {
        d->state = DEV_UNENROLLED;
    }
    if (out.identity_renewed) {
        /* A renewed identity: the result goes on a new connection that presents it. */
        e->renewals++;
        drop_conn(d);
    }
    if (d->slow && e->o.slow_ms > 0) {
        struct delayed *x = xcalloc(1, sizeof(*x));
        struct timeval tv = {e->o.slow_ms / 1000, (e->o.slow_ms % 1000) * 1000};

        x->d = d;
        x->body = xml;
        x->len = xlen;
        str_copy(x->label, sizeof(x->label), out.status);
        e->active++;
        event_base_once(e->base, -1, EV_TIMEOUT, delayed_cb, x, &tv);
        return;
    }
    if (send_connect(d, xml, xlen, out.status) != 0) {
        e->http_errors++;
        slot_release(d);
    }
}

static void session_next(struct dev *d, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    unsigned char *body;

    if (n == 0) {
        /* End of the session.  After NotNow the device polls again by itself. */
        bool notnow = strcmp(d->label, "NotNow") == 0;

        slot_release(d);
        if (d->state == DEV_UNENROLLED) {
            if (sim_device_mdm(d->sd) && sim_device_mdm(d->sd)->checkout_when_removed) {
                /* best effort CheckOut is left out: the identity is gone with the profile */
            }
            return;
        }
        if (notnow || d->push_pending)
            arm_retry(d);
        return;
    }
    body = xmalloc(n + 1);
    evbuffer_remove(in, body, n);
    body[n] = '\0';
    run_command(d, body, n);
    free(body);
}

static void reply_cb(struct evhttp_request *req, void *arg)
{
    struct dev *d = arg;
    struct sim_engine *e = d->e;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    uint64_t t = now_us();
    enum dev_step step = (enum dev_step)d->step;

    e->active--;
    e->last_activity_us = t;
    sim_stats_record(e->stats, d->label, t - d->t0_us);
    if (status != 200) {
        char msg[200];

        snprintf(msg, sizeof(msg), "%s to the server failed: HTTP %d", d->label, status);
        set_error(e, msg);
        e->http_errors++;
        drop_conn(d);
        if (step == STEP_AUTH || step == STEP_TOKEN) {
            d->state = DEV_FAILED;
            e->failed++;
            slot_release(d);
            return;
        }
        /* A failed command exchange: the device retries later (results are re-sent by
         * the server's at-least-once delivery). */
        slot_release(d);
        if (status == 0 || status >= 500)
            arm_retry(d);
        return;
    }
    switch (step) {
    case STEP_AUTH: {
        size_t len;
        char *body = sim_device_token_update(d->sd, &len);
        if (send_checkin(d, body, len, "TokenUpdate", STEP_TOKEN) != 0) {
            d->state = DEV_FAILED;
            e->failed++;
            slot_release(d);
        }
        return;
    }
    case STEP_TOKEN:
        d->state = DEV_ENROLLED;
        e->enrolled++;
        slot_release(d);
        return;
    case STEP_RESULT:
        unsent_clear(d); /* the server took the result */
        session_next(d, req);
        return;
    case STEP_IDLE:
        session_next(d, req);
        return;
    default:
        slot_release(d);
        return;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* SCEP for InstallProfile, through the engine's trust and key policy                       */

int sim_engine_scep_cb(void *arg, const struct sim_scep_request *req, struct sim_scep_result *res,
                       struct scepter_error *err)
{
    struct sim_engine *e = arg;
    struct sim_scep_opts so;

    memset(&so, 0, sizeof(so));
    so.timeout_ms = e->o.timeout_ms;
    so.reuse_key = e->shared_key;
    so.https_trust = e->trust;
    so.delay_scale = e->o.scep_delay_scale;
    so.now = (long long)time(NULL);
    so.pki_lock = &e->pki_lock;
    return sim_scep_enroll(req, &so, res, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Push callbacks                                                                            */

static void push_cb(struct evhttp_request *req, void *arg)
{
    struct sim_engine *e = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body;
    json_t *j;
    struct scepter_error err;
    const char *token = NULL, *magic = NULL;
    json_t *payload = NULL;
    unsigned char *tok = NULL;
    size_t toklen = 0;
    uint32_t index;
    struct dev *d;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || n > 65536) {
        evhttp_send_error(req, 405, "POST a push callback");
        return;
    }
    body = xmalloc(n + 1);
    evbuffer_remove(in, body, n);
    body[n] = '\0';
    j = jsonx_parse_object(body, n, &err);
    free(body);
    if (j == NULL || jsonx_get_string(j, "token", "", true, &token, &err) != 0 ||
        jsonx_get_object(j, "payload", "", true, &payload, &err) != 0 ||
        jsonx_get_string(payload, "mdm", "payload.", false, &magic, &err) < 0 ||
        hex_decode(token, strlen(token), &tok, &toklen) != 0) {
        struct evbuffer *o = evbuffer_new();
        evbuffer_add_printf(o, "bad push callback: %s\n", j ? err.msg : "not JSON");
        evhttp_send_reply(req, 400, "Bad Request", o);
        evbuffer_free(o);
        json_decref(j);
        return;
    }
    e->last_activity_us = now_us();
    if (toklen != 32 || memcmp(tok, e->prefix, 4) != 0 ||
        (index = ((uint32_t)tok[4] << 24) | ((uint32_t)tok[5] << 16) | ((uint32_t)tok[6] << 8) |
                 tok[7]) >= e->o.devices ||
        e->devs[index].sd == NULL) {
        e->pushes_unknown++;
        goto reply;
    }
    d = &e->devs[index];
    if (memcmp(sim_device_token(d->sd), tok, 32) != 0 || d->state != DEV_ENROLLED ||
        magic == NULL || strcmp(magic, sim_device_push_magic(d->sd)) != 0) {
        /* Wrong PushMagic: a device drops the push (mdmd logs it). */
        e->pushes_ignored++;
        goto reply;
    }
    e->pushes++;
    if (d->in_pool || d->waiting || d->retry_armed)
        d->push_pending = 1; /* coalesced, as APNs keeps only the last notification */
    else
        slot_acquire(d);
reply:
    evhttp_send_reply(req, 200, "OK", NULL);
    free(tok);
    json_decref(j);
}

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sim_engine *e = arg;

    (void)fd;
    (void)what;
    if (e->until_idle && e->active == 0 && sim_pool_in_use(e->pool) == 0 &&
        sim_pool_waiting(e->pool) == 0 &&
        now_us() - e->last_activity_us >= (uint64_t)e->idle_ms * 1000u)
        event_base_loopbreak(e->base);
}

static void sigint_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

int sim_engine_new(const struct sim_engine_opts *opts, struct sim_engine **out,
                   struct scepter_error *err)
{
    struct sim_engine *e = xcalloc(1, sizeof(*e));
    struct evhttp_bound_socket *bs;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    struct timeval tv = {0, 100000};
    int rc = 0;
    uint64_t pr;

    *out = NULL;
    e->o = *opts;
    pthread_mutex_init(&e->pki_lock, NULL);
    if (e->o.devices == 0)
        e->o.devices = 1000;
    if (e->o.concurrency == 0)
        e->o.concurrency = 64;
    if (e->o.timeout_ms <= 0)
        e->o.timeout_ms = 30000;
    if (e->o.retry_ms <= 0)
        e->o.retry_ms = 2000;
    if (e->o.scep_delay_scale <= 0)
        e->o.scep_delay_scale = 1.0;
    if (e->o.mix.weight[0] + e->o.mix.weight[1] + e->o.mix.weight[2] == 0) {
        e->o.mix.weight[SIM_MAC] = 40;
        e->o.mix.weight[SIM_IPHONE] = 40;
        e->o.mix.weight[SIM_IPAD] = 20;
    }
    e->rng = e->o.seed ? e->o.seed : 0x5CE97E125ULL;
    pr = sim_rand_next(&e->rng);
    memcpy(e->prefix, &pr, 4);
    e->trust = X509_STORE_new();
    if (opts->trust) {
        STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(opts->trust);
        for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
            X509 *c = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
            if (c)
                X509_STORE_add_cert(e->trust, c);
        }
    }
    e->base = event_base_new();
    e->ssl = sim_tls_client_ctx(e->trust, err);
    if (e->base == NULL || e->ssl == NULL) {
        rc = err && err->code ? err->code : SCEPTER_EINTERNAL;
        goto out;
    }
    e->devs = xcalloc(e->o.devices, sizeof(*e->devs));
    for (uint32_t i = 0; i < e->o.devices; i++) {
        e->devs[i].e = e;
        e->devs[i].index = i;
        e->devs[i].slow = e->o.slow_rate > 0 && sim_rand_unit(&e->rng) < e->o.slow_rate;
    }
    e->pool = sim_pool_new(e->o.concurrency);
    e->stats = sim_stats_new();
    e->listener = evhttp_new(e->base);
    bs = evhttp_bind_socket_with_handle(e->listener, "127.0.0.1",
                                        (ev_uint16_t)(opts->push_port > 0 ? opts->push_port : 0));
    if (bs == NULL) {
        rc = scepter_err(err, SCEPTER_EIO, "push-port", "push-port: cannot listen on 127.0.0.1:%d",
                         opts->push_port);
        goto out;
    }
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl) != 0) {
        rc = scepter_err(err, SCEPTER_EIO, "push-port", "getsockname failed");
        goto out;
    }
    e->push_port = ntohs(sin.sin_port);
    evhttp_set_gencb(e->listener, push_cb, e);
    evhttp_set_allowed_methods(e->listener, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
    e->tick = event_new(e->base, -1, EV_PERSIST, tick_cb, e);
    event_add(e->tick, &tv);
    e->sigint = evsignal_new(e->base, SIGINT, sigint_cb, e->base);
    event_add(e->sigint, NULL);
    if (e->o.shared_key) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
        if (kc && EVP_PKEY_keygen_init(kc) == 1 && EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048) == 1)
            EVP_PKEY_keygen(kc, &e->shared_key);
        EVP_PKEY_CTX_free(kc);
    }
    e->start_us = e->last_activity_us = now_us();
    *out = e;
    e = NULL;
out:
    sim_engine_free(e);
    return rc;
}

void sim_engine_free(struct sim_engine *e)
{
    if (e == NULL)
        return;
    for (uint32_t i = 0; e->devs && i < e->o.devices; i++) {
        if (e->devs[i].evcon)
            evhttp_connection_free(e->devs[i].evcon);
        sim_device_free(e->devs[i].sd);
        unsent_clear(&e->devs[i]);
    }
    free(e->devs);
    if (e->listener)
        evhttp_free(e->listener);
    if (e->tick)
        event_free(e->tick);
    if (e->sigint)
        event_free(e->sigint);
    /* Run pending one-shot callbacks (deferred connection frees) before the base goes. */
    if (e->base) {
        event_base_loop(e->base, EVLOOP_NONBLOCK);
        event_base_free(e->base);
    }
    SSL_CTX_free(e->ssl);
    X509_STORE_free(e->trust);
    EVP_PKEY_free(e->shared_key);
    sim_pool_free(e->pool);
    sim_stats_free(e->stats);
    pthread_mutex_destroy(&e->pki_lock);
    free(e);
}

int sim_engine_push_port(const struct sim_engine *e)
{
    return e->push_port;
}

struct sim_device *sim_engine_device(const struct sim_engine *e, uint32_t index)
{
    return index < e->o.devices ? e->devs[index].sd : NULL;
}

const struct sim_pool *sim_engine_pool(const struct sim_engine *e)
{
    return e->pool;
}

struct event_base *sim_engine_base(const struct sim_engine *e)
{
    return e->base;
}

void sim_engine_adopt(struct sim_engine *e, uint32_t index, struct sim_device *d)
{
    unsigned char tok[32];
    char magic[UUID_STR_LEN];

    if (index >= e->o.devices) {
        sim_device_free(d);
        return;
    }
    sim_device_free(e->devs[index].sd);
    e->devs[index].sd = d;
    sim_engine_token(e, index, tok);
    new_push_magic(e, magic);
    sim_device_set_push(d, tok, magic);
    e->devs[index].state = DEV_ENROLLED;
}

int sim_engine_register_apns(struct sim_engine *e, struct scepter_error *err)
{
    char *url, *body, *hex;
    struct sim_http_reply r;
    int rc;

    if (e->o.apns_control == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "apns-control", "apns-control: not set");
    hex = hex_encode(e->prefix, 4, false);
    url = xasprintf("%s/register", e->o.apns_control);
    body = xasprintf("{\"callback\":\"http://127.0.0.1:%d/push\",\"prefix\":\"%s\"}", e->push_port,
                     hex);
    rc = sim_http_fetch("POST", url, "application/json", body, strlen(body), NULL, NULL, NULL,
                        e->o.timeout_ms, &r, err);
    if (rc == 0 && (r.status < 200 || r.status > 299))
        rc = scepter_err(err, SCEPTER_EIO, "apns-control",
                         "apns-control: register answered HTTP %d: %.120s", r.status,
                         (const char *)r.body);
    sim_http_reply_clear(&r);
    free(url);
    free(body);
    free(hex);
    return rc;
}

/*
 * Download, verify and install the enrollment profile for device i (the blocking half of an
 * enrollment).  Runs on a preparation thread: it reads the engine's options, shared key and
 * trust store (OpenSSL locks the store) and touches nothing else of the engine.
 */
/* How often a download answered 503 or 429 is tried again (about 40 s in all). */
#define SIM_ENROLL_RETRIES 90

static int prepare_device(struct sim_engine *e, uint32_t i, struct sim_device **out,
                          struct scepter_error *err)
{
    struct sim_http_reply r;
    struct sim_profile *p = NULL;
    struct sim_facts f;
    struct sim_device *sd = NULL;
    const struct sim_payload *idp;
    struct sim_mdm_settings mdm;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    memset(&mdm, 0, sizeof(mdm));
    /* 503 (no pre-generated key ready) and 429 (the per-address limit) say "later": retry a
     * bounded number of times with a growing pause, as a person re-opening the link would. */
    for (int attempt = 0;; attempt++) {
        rc = sim_http_fetch("GET", e->o.enroll_url, NULL, NULL, 0, e->trust, NULL, NULL,
                            e->o.timeout_ms, &r, err);
        if (rc != 0)
            return rc;
        if ((r.status != 503 && r.status != 429) || attempt >= SIM_ENROLL_RETRIES)
            break;
        sim_http_reply_clear(&r);
        usleep((useconds_t)(attempt < 10 ? 50000 * (attempt + 1) : 500000));
    }
    if (r.status != 200) {
        rc = scepter_err(err, SCEPTER_EIO, "enroll-url", "enroll-url: HTTP %d", r.status);
        goto out;
    }
    if ((rc = sim_profile_parse(r.body, r.len, e->o.verify_profile_chain ? e->trust : NULL, &p,
                                err)) != 0 ||
        (rc = sim_mdm_settings_read(p, &mdm, err)) != 0)
        goto out;
    /* Trust the profile's root payloads for the server's TLS, as a device does. */
    for (size_t k = 0; k < sim_profile_payload_count(p); k++) {
        const struct sim_payload *pl = sim_profile_payload(p, k);
        const unsigned char *data;
        size_t len;
        struct scepter_error e2;

        if (strcmp(pl->type, "com.apple.security.root") == 0 &&
            plistx_get_data(pl->dict, "PayloadContent", true, &data, &len, &e2) == 0) {
            X509 *c = crypto_cert_parse(data, len, "PayloadContent", &e2);
            if (c) {
                X509_STORE_add_cert(e->trust, c);
                X509_free(c);
            }
        }
    }
    ERR_clear_error();
    idp = sim_profile_find(p, NULL, mdm.identity_uuid);
    if (strcmp(idp->type, "com.apple.security.scep") == 0) {
        struct sim_scep_request req;
        struct sim_scep_result res;

        if ((rc = sim_scep_request_from_plist(plist_dict_get_item(idp->dict, "PayloadContent"),
                                              &req, err)) != 0)
            goto out;
        rc = sim_engine_scep_cb(e, &req, &res, err);
        sim_scep_request_clear(&req);
        if (rc != 0) {
            sim_scep_result_clear(&res);
            goto out;
        }
        cert = res.cert;
        key = res.key;
        res.cert = NULL;
        res.key = NULL;
        sim_scep_result_clear(&res);
    } else {
        const unsigned char *data;
        const char *pw = NULL;
        size_t len;

        if ((rc = plistx_get_data(idp->dict, "PayloadContent", true, &data, &len, err)) != 0 ||
            (rc = plistx_get_string(idp->dict, "Password", false, &pw, err)) < 0 ||
            (rc = crypto_pkcs12_parse(data, len, pw ? pw : "", &cert, &key, NULL, err)) != 0)
            goto out;
        rc = 0;
    }
    sim_facts_generate(&f, sim_mix_pick(&e->o.mix, i), e->o.seed, i);
    sd = sim_device_new(&f);
    if ((rc = sim_device_enroll(sd, p, cert, key, err)) != 0)
        goto out;
    *out = sd;
    sd = NULL;
out:
    sim_device_free(sd);
    X509_free(cert);
    EVP_PKEY_free(key);
    sim_mdm_settings_clear(&mdm);
    sim_profile_free(p);
    sim_http_reply_clear(&r);
    return rc;
}

/*
 * Enrollment preparation threads.  Each takes the next device index, runs prepare_device and
 * hands the result to the event loop through a list and a pipe; the loop adopts the device
 * and queues its check-ins for a connection slot.
 */
struct prepared {
    struct prepared *next;
    uint32_t index;
    struct sim_device *sd; /* NULL when the preparation failed */
    char error[200];
};

struct prep {
    struct sim_engine *e;
    pthread_mutex_t mu;
    uint32_t next;    /* next device index to prepare (= indexes handed out) */
    uint32_t taken;   /* results the loop has taken */
    unsigned running; /* threads not finished */
    bool stop;
    struct prepared *head, *tail;
    int pipe[2];
};

static void *prep_main(void *arg)
{
    struct prep *p = arg;
    struct sim_engine *e = p->e;

    for (;;) {
        struct prepared *r;
        struct scepter_error err;
        uint32_t i;

        pthread_mutex_lock(&p->mu);
        if (p->stop || p->next >= e->o.devices) {
            p->running--;
            pthread_mutex_unlock(&p->mu);
            break;
        }
        i = p->next++;
        pthread_mutex_unlock(&p->mu);

        r = xcalloc(1, sizeof(*r));
        r->index = i;
        memset(&err, 0, sizeof(err));
        if (prepare_device(e, i, &r->sd, &err) != 0)
            str_copy(r->error, sizeof(r->error), err.msg[0] ? err.msg : "enrollment failed");
        ERR_clear_error();
        pthread_mutex_lock(&p->mu);
        if (p->tail)
            p->tail->next = r;
        else
            p->head = r;
        p->tail = r;
        pthread_mutex_unlock(&p->mu);
        (void)!write(p->pipe[1], "p", 1);
    }
    (void)!write(p->pipe[1], "x", 1);
    return NULL;
}

/* On the loop: adopt what the threads prepared and queue the devices' check-ins. */
static void prep_drain(evutil_socket_t fd, short what, void *arg)
{
    struct prep *p = arg;
    struct sim_engine *e = p->e;
    struct prepared *r;
    char buf[256];

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    r = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (r) {
        struct prepared *next = r->next;
        struct dev *d = &e->devs[r->index];

        p->taken++;
        if (r->sd == NULL) {
            d->state = DEV_FAILED;
            e->failed++;
            set_error(e, r->error);
            log_warnx("device %u: enrollment failed: %s", r->index, r->error);
        } else {
            sim_engine_adopt(e, r->index, r->sd);
            d->state = DEV_ENROLLING;
            slot_acquire(d);
        }
        free(r);
        r = next;
    }
}

int sim_engine_enroll_all(struct sim_engine *e, double max_s, struct scepter_error *err)
{
    uint64_t deadline = now_us() + (uint64_t)((max_s > 0 ? max_s : 3600) * 1e6);
    unsigned nthreads = e->o.enroll_threads ? e->o.enroll_threads : 4;
    struct prep p;
    pthread_t *th;
    struct event *ev;
    unsigned started = 0;

    if (nthreads > e->o.devices)
        nthreads = e->o.devices;
    memset(&p, 0, sizeof(p));
    p.e = e;
    if (pipe(p.pipe) != 0)
        return scepter_err(err, SCEPTER_EIO, NULL, "pipe: %s", strerror(errno));
    for (int k = 0; k < 2; k++) {
        fcntl(p.pipe[k], F_SETFL, fcntl(p.pipe[k], F_GETFL) | O_NONBLOCK);
        fcntl(p.pipe[k], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&p.mu, NULL);
    ev = event_new(e->base, p.pipe[0], EV_READ | EV_PERSIST, prep_drain, &p);
    event_add(ev, NULL);
    th = xcalloc(nthreads, sizeof(*th));
    e->until_idle = false;
    p.running = nthreads; /* before any thread runs: each counts itself out when it ends */
    for (unsigned t = 0; t < nthreads; t++) {
        if (pthread_create(&th[t], NULL, prep_main, &p) != 0)
            break;
        started++;
    }
    pthread_mutex_lock(&p.mu);
    p.running -= nthreads - started;
    pthread_mutex_unlock(&p.mu);
    for (;;) {
        bool busy;

        pthread_mutex_lock(&p.mu);
        busy = p.running > 0 || p.taken < p.next;
        pthread_mutex_unlock(&p.mu);
        if (!busy && e->active == 0 && sim_pool_in_use(e->pool) == 0)
            break;
        if (now_us() > deadline)
            break;
        event_base_loop(e->base, EVLOOP_ONCE);
    }
    /* Stop the threads (they finish the device in hand), then drop what they prepared late. */
    pthread_mutex_lock(&p.mu);
    p.stop = true;
    pthread_mutex_unlock(&p.mu);
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    while (p.head) {
        struct prepared *next = p.head->next;
        sim_device_free(p.head->sd);
        free(p.head);
        p.head = next;
    }
    event_free(ev);
    close(p.pipe[0]);
    close(p.pipe[1]);
    pthread_mutex_destroy(&p.mu);
    free(th);
    if (started == 0)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "cannot start a preparation thread");
    if (e->failed > 0 || e->enrolled < e->o.devices)
        return scepter_err(err, SCEPTER_EIO, "enroll",
                           "%llu of %u devices enrolled; last error: %s",
                           (unsigned long long)e->enrolled, e->o.devices, e->last_error);
    return 0;
}

void sim_engine_run(struct sim_engine *e, double duration_s, bool until_idle, int idle_ms)
{
    e->until_idle = until_idle;
    e->idle_ms = idle_ms > 0 ? idle_ms : 2000;
    e->last_activity_us = now_us();
    if (duration_s > 0) {
        struct timeval tv = {(time_t)duration_s,
                             (suseconds_t)((duration_s - (double)(time_t)duration_s) * 1e6)};
        event_base_loopexit(e->base, &tv);
    }
    event_base_dispatch(e->base);
    e->until_idle = false;
}

json_t *sim_engine_report(const struct sim_engine *e, bool devices)
{
    double elapsed = (double)(now_us() - e->start_us) / 1e6;
    json_t *r = json_object(), *c = json_object(), *st = json_object();

    json_object_set_new(r, "latency", sim_stats_json(e->stats, elapsed));
    json_object_set_new(c, "devices", json_integer(e->o.devices));
    json_object_set_new(c, "enrolled", json_integer((json_int_t)e->enrolled));
    json_object_set_new(c, "failed", json_integer((json_int_t)e->failed));
    json_object_set_new(c, "pushes_accepted", json_integer((json_int_t)e->pushes));
    json_object_set_new(c, "pushes_ignored", json_integer((json_int_t)e->pushes_ignored));
    json_object_set_new(c, "pushes_unknown_token", json_integer((json_int_t)e->pushes_unknown));
    json_object_set_new(c, "sessions", json_integer((json_int_t)e->sessions));
    json_object_set_new(c, "commands", json_integer((json_int_t)e->commands));
    json_object_set_new(c, "identity_renewals", json_integer((json_int_t)e->renewals));
    json_object_set_new(c, "drops", json_integer((json_int_t)e->drops));
    json_object_set_new(c, "http_errors", json_integer((json_int_t)e->http_errors));
    json_object_set_new(c, "concurrency_limit", json_integer(e->o.concurrency));
    json_object_set_new(c, "concurrency_peak", json_integer(sim_pool_peak(e->pool)));
    for (int i = 0; i < 4; i++)
        json_object_set_new(st, status_names[i], json_integer((json_int_t)e->status_count[i]));
    json_object_set_new(c, "results", st);
    json_object_set_new(r, "counters", c);
    json_object_set_new(r, "push_port", json_integer(e->push_port));
    if (e->last_error[0])
        json_object_set_new(r, "last_error", json_string(e->last_error));
    if (devices) {
        json_t *arr = json_array();
        for (uint32_t i = 0; i < e->o.devices; i++) {
            const struct dev *d = &e->devs[i];
            json_t *o = json_object();
            json_object_set_new(o, "index", json_integer(i));
            json_object_set_new(o, "state", json_string(state_names[d->state]));
            if (d->sd) {
                const struct sim_facts *f = sim_device_facts(d->sd);
                char *hex = hex_encode(sim_device_token(d->sd), 32, false);
                json_t *profiles = json_array();
                json_object_set_new(o, "udid", json_string(f->udid));
                json_object_set_new(o, "platform", json_string(sim_platform_name(f->platform)));
                json_object_set_new(o, "serial", json_string(f->serial));
                json_object_set_new(o, "product", json_string(f->product_name));
                json_object_set_new(o, "token", json_string(hex));
                json_t *certs = json_array();
                for (size_t k = 0; k < sim_device_profile_count(d->sd); k++) {
                    json_array_append_new(profiles,
                                          json_string(sim_device_profile_identifier(d->sd, k)));
                    for (size_t ci = 0; ci < sim_device_profile_cert_count(d->sd, k); ci++) {
                        size_t len = 0;
                        bool ident = false;
                        const unsigned char *der =
                            sim_device_profile_cert(d->sd, k, ci, &len, &ident);
                        char *b64 = base64_encode(der, len);
                        json_array_append_new(certs,
                                              json_pack("{s:s,s:b,s:s}", "profile",
                                                        sim_device_profile_identifier(d->sd, k),
                                                        "identity", ident, "der", b64));
                        free(b64);
                    }
                }
                json_object_set_new(o, "profiles", profiles);
                /* What end-to-end tests check the issued subjects and names on. */
                json_object_set_new(o, "certificates", certs);
                free(hex);
            } else {
                json_object_set_new(o, "platform",
                                    json_string(sim_platform_name(sim_mix_pick(&e->o.mix, i))));
            }
            json_array_append_new(arr, o);
        }
        json_object_set_new(r, "devices", arr);
    }
    return r;
}
