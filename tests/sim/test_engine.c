/*
 * The engine's machinery over real loopback sockets, without an MDM server: push callbacks
 * (right PushMagic starts a session, wrong PushMagic and unknown tokens are ignored, bad JSON
 * gets 400) and the connection bound (50 pushed devices, at most 4 talking at once).  The
 * devices' ServerURL points at a closed loopback port, so each session ends in a refused
 * connection, which the engine counts; the real exchange is the end-to-end suite's job.
 * Enrollment on preparation threads: every device's profile is fetched exactly once, and
 * failures on the threads and on the loop are all counted.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/pkcs12.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tests/sim/sim_test_util.h"

/* A device enrolled with a profile whose URLs point at a closed port. */
static struct sim_device *closed_port_device(uint32_t i, int port)
{
    plist_t pls = plist_new_array(), mdm, id, prof;
    struct sim_profile *p;
    struct scepter_error err;
    struct sim_facts f;
    struct sim_device *d;
    X509 *c;
    EVP_PKEY *k;
    char *url = xasprintf("https://127.0.0.1:%d/mdm", port), *xml;
    size_t len;

    id = ts_payload("com.apple.security.pkcs12", "org.example.id",
                    "1D000000-0000-4000-8000-000000000001");
    plist_array_append_item(pls, id);
    mdm = ts_payload("com.apple.mdm", "org.example.mdm", "1D000000-0000-4000-8000-000000000002");
    plistx_set_string(mdm, "ServerURL", url);
    plistx_set_string(mdm, "Topic", "com.apple.mgmt.External.test");
    plistx_set_string(mdm, "IdentityCertificateUUID", "1D000000-0000-4000-8000-000000000001");
    plist_array_append_item(pls, mdm);
    prof = ts_profile("org.example.enroll", "1D000000-0000-4000-8000-000000000000", pls);
    xml = ts_xml(prof, &len);
    plist_free(prof);
    cr_assert_eq(sim_profile_parse(xml, len, NULL, &p, &err), 0, "%s", err.msg);
    sim_facts_generate(&f, SIM_IPHONE, 1, i);
    d = sim_device_new(&f);
    ts_identity(f.udid, &c, &k);
    cr_assert_eq(sim_device_enroll(d, p, c, k, &err), 0, "%s", err.msg);
    X509_free(c);
    EVP_PKEY_free(k);
    sim_profile_free(p);
    free(xml);
    free(url);
    return d;
}

struct pusher {
    int port;
    unsigned n;
    char **bodies;
    int *status;
};

static void *push_thread(void *arg)
{
    struct pusher *p = arg;
    char *url = xasprintf("http://127.0.0.1:%d/push", p->port);

    for (unsigned i = 0; i < p->n; i++) {
        struct sim_http_reply r;
        struct scepter_error err;
        if (sim_http_fetch("POST", url, "application/json", p->bodies[i], strlen(p->bodies[i]),
                           NULL, NULL, NULL, 5000, &r, &err) == 0)
            p->status[i] = r.status;
        sim_http_reply_clear(&r);
    }
    free(url);
    return NULL;
}

static char *push_body(struct sim_engine *e, uint32_t i, const char *magic)
{
    unsigned char tok[32];
    char *hex, *b;

    sim_engine_token(e, i, tok);
    hex = hex_encode(tok, 32, false);
    b = xasprintf("{\"token\":\"%s\",\"topic\":\"com.apple.mgmt.External.test\","
                  "\"payload\":{\"mdm\":\"%s\"}}",
                  hex, magic);
    free(hex);
    return b;
}

static json_t *counters(struct sim_engine *e)
{
    json_t *r = sim_engine_report(e, true);
    return r;
}

static long long cnt(json_t *r, const char *k)
{
    return (long long)json_integer_value(json_object_get(json_object_get(r, "counters"), k));
}

Test(engine, push_with_right_magic_starts_a_session_wrong_magic_is_ignored)
{
    struct sim_engine_opts o;
    struct sim_engine *e;
    struct scepter_error err;
    int closed = ts_free_port();
    struct pusher p;
    pthread_t th;
    char *bodies[4];
    int status[4] = {0};
    json_t *r;

    memset(&o, 0, sizeof(o));
    o.enroll_url = "https://127.0.0.1:1/unused";
    o.devices = 3;
    o.concurrency = 2;
    o.timeout_ms = 3000;
    o.seed = 9;
    cr_assert_eq(sim_engine_new(&o, &e, &err), 0, "%s", err.msg);
    for (uint32_t i = 0; i < 3; i++)
        sim_engine_adopt(e, i, closed_port_device(i, closed));
    bodies[0] = push_body(e, 0, sim_device_push_magic(sim_engine_device(e, 0)));
    bodies[1] = push_body(e, 1, "WRONG-MAGIC");
    bodies[2] = xstrdup("{\"token\":\"00112233\",\"payload\":{\"mdm\":\"x\"}}");
    bodies[3] = xstrdup("not json");
    p.port = sim_engine_push_port(e);
    p.n = 4;
    p.bodies = bodies;
    p.status = status;
    cr_assert_eq(pthread_create(&th, NULL, push_thread, &p), 0);
    sim_engine_run(e, 20, true, 1500);
    pthread_join(th, NULL);
    cr_assert_eq(status[0], 200);
    cr_assert_eq(status[1], 200);
    cr_assert_eq(status[2], 200);
    cr_assert_eq(status[3], 400);
    r = counters(e);
    cr_assert_eq(cnt(r, "pushes_accepted"), 1);
    cr_assert_eq(cnt(r, "pushes_ignored"), 1);
    cr_assert_eq(cnt(r, "pushes_unknown_token"), 1);
    cr_assert_eq(cnt(r, "sessions"), 1);
    cr_assert(cnt(r, "http_errors") >= 1); /* the server port is closed */
    cr_assert_eq(json_array_size(json_object_get(r, "devices")), 3);
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(r, "devices"), 0), "udid")),
                     sim_device_facts(sim_engine_device(e, 0))->udid);
    json_decref(r);
    for (int i = 0; i < 4; i++)
        free(bodies[i]);
    sim_engine_free(e);
}

Test(engine, concurrency_is_bounded)
{
    enum { N = 50 };
    struct sim_engine_opts o;
    struct sim_engine *e;
    struct scepter_error err;
    int closed = ts_free_port();
    struct pusher p;
    pthread_t th;
    char *bodies[N];
    int status[N] = {0};
    json_t *r;

    memset(&o, 0, sizeof(o));
    o.enroll_url = "https://127.0.0.1:1/unused";
    o.devices = N;
    o.concurrency = 4;
    o.timeout_ms = 3000;
    o.retry_ms = 100000; /* no re-polls inside the test */
    cr_assert_eq(sim_engine_new(&o, &e, &err), 0, "%s", err.msg);
    for (uint32_t i = 0; i < N; i++) {
        sim_engine_adopt(e, i, closed_port_device(i, closed));
        bodies[i] = NULL;
    }
    for (uint32_t i = 0; i < N; i++)
        bodies[i] = push_body(e, i, sim_device_push_magic(sim_engine_device(e, i)));
    p.port = sim_engine_push_port(e);
    p.n = N;
    p.bodies = bodies;
    p.status = status;
    cr_assert_eq(pthread_create(&th, NULL, push_thread, &p), 0);
    sim_engine_run(e, 60, true, 1500);
    pthread_join(th, NULL);
    r = counters(e);
    cr_assert_eq(cnt(r, "pushes_accepted"), N);
    cr_assert_eq(cnt(r, "sessions"), N);
    cr_assert(cnt(r, "concurrency_peak") <= 4, "peak %lld", cnt(r, "concurrency_peak"));
    cr_assert(cnt(r, "concurrency_peak") >= 1);
    cr_assert_eq(sim_pool_in_use(sim_engine_pool(e)), 0);
    json_decref(r);
    for (int i = 0; i < N; i++)
        free(bodies[i]);
    sim_engine_free(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Enrollment prepared on threads                                                             */

/* A profile server on its own loop: a PKCS#12 identity and a ServerURL at a closed port; the
 * last `refuse` requests get 404. */
struct profile_srv {
    struct event_base *base;
    struct evhttp *http;
    int port;
    char *profile;
    size_t len;
    unsigned requests, refuse_from;
    pthread_mutex_t mu;
    pthread_t th;
};

static void profile_cb(struct evhttp_request *req, void *arg)
{
    struct profile_srv *s = arg;
    struct evbuffer *b = evbuffer_new();
    unsigned n;

    pthread_mutex_lock(&s->mu);
    n = ++s->requests;
    pthread_mutex_unlock(&s->mu);
    if (n > s->refuse_from) {
        evhttp_send_reply(req, 404, "Not Found", b);
    } else {
        evbuffer_add(b, s->profile, s->len);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-apple-aspen-config");
        evhttp_send_reply(req, 200, "OK", b);
    }
    evbuffer_free(b);
}

static void *profile_main(void *arg)
{
    struct profile_srv *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void profile_srv_start(struct profile_srv *s, int closed_port, unsigned refuse_from)
{
    plist_t pls = plist_new_array(), mdm, id, prof;
    X509 *c;
    EVP_PKEY *k;
    PKCS12 *p12;
    unsigned char *der = NULL;
    int dlen;
    char *url = xasprintf("https://127.0.0.1:%d/mdm", closed_port);

    memset(s, 0, sizeof(*s));
    /* profile_srv_stop breaks the loop from another thread. */
    cr_assert_eq(evthread_use_pthreads(), 0);
    pthread_mutex_init(&s->mu, NULL);
    s->refuse_from = refuse_from;
    ts_identity("threaded-device", &c, &k);
    p12 = PKCS12_create("pw", "device", k, c, NULL, 0, 0, 0, 0, 0);
    cr_assert_not_null(p12);
    dlen = i2d_PKCS12(p12, &der);
    cr_assert_gt(dlen, 0);
    id = ts_payload("com.apple.security.pkcs12", "org.example.id",
                    "1D000000-0000-4000-8000-000000000011");
    plist_dict_set_item(id, "PayloadContent", plist_new_data((const char *)der, (uint64_t)dlen));
    plistx_set_string(id, "Password", "pw");
    plist_array_append_item(pls, id);
    mdm = ts_payload("com.apple.mdm", "org.example.mdm", "1D000000-0000-4000-8000-000000000012");
    plistx_set_string(mdm, "ServerURL", url);
    plistx_set_string(mdm, "Topic", "com.apple.mgmt.External.test");
    plistx_set_string(mdm, "IdentityCertificateUUID", "1D000000-0000-4000-8000-000000000011");
    plist_dict_set_item(mdm, "SignMessage", plist_new_bool(0));
    plist_array_append_item(pls, mdm);
    prof = ts_profile("org.example.enroll", "1D000000-0000-4000-8000-000000000010", pls);
    s->profile = ts_xml(prof, &s->len);
    plist_free(prof);
    OPENSSL_free(der);
    PKCS12_free(p12);
    X509_free(c);
    EVP_PKEY_free(k);
    free(url);

    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    s->port = ts_free_port();
    cr_assert_eq(evhttp_bind_socket(s->http, "127.0.0.1", (ev_uint16_t)s->port), 0);
    evhttp_set_gencb(s->http, profile_cb, s);
    cr_assert_eq(pthread_create(&s->th, NULL, profile_main, s), 0);
}

static void profile_srv_stop(struct profile_srv *s)
{
    event_base_loopbreak(s->base);
    pthread_join(s->th, NULL);
    evhttp_free(s->http);
    event_base_free(s->base);
    pthread_mutex_destroy(&s->mu);
    free(s->profile);
}

Test(engine, enrollment_on_threads_prepares_every_device_once)
{
    enum { N = 12, REFUSED = 2 };
    struct profile_srv ps;
    struct sim_engine_opts o;
    struct sim_engine *e;
    struct scepter_error err;
    json_t *r;
    char *url;

    profile_srv_start(&ps, ts_free_port(), N - REFUSED);
    url = xasprintf("http://127.0.0.1:%d/enroll", ps.port);
    memset(&o, 0, sizeof(o));
    o.enroll_url = url;
    o.devices = N;
    o.concurrency = 4;
    o.enroll_threads = 3;
    o.timeout_ms = 5000;
    cr_assert_eq(sim_engine_new(&o, &e, &err), 0, "%s", err.msg);
    /* Every profile is fetched and installed on a thread; the check-ins then fail on the
     * closed port, and the last two devices get no profile at all. */
    cr_assert_neq(sim_engine_enroll_all(e, 60, &err), 0);
    cr_assert(strstr(err.msg, "0 of 12 devices enrolled") != NULL, "%s", err.msg);
    r = counters(e);
    cr_assert_eq(cnt(r, "enrolled"), 0);
    cr_assert_eq(cnt(r, "failed"), N);
    cr_assert_eq(cnt(r, "http_errors"), N - REFUSED, "%lld", cnt(r, "http_errors"));
    cr_assert(cnt(r, "concurrency_peak") <= 4, "peak %lld", cnt(r, "concurrency_peak"));
    size_t failed_state = 0, i;
    json_t *d;
    json_array_foreach(json_object_get(r, "devices"), i, d) failed_state +=
        strcmp(json_string_value(json_object_get(d, "state")), "failed") == 0;
    cr_assert_eq(failed_state, N);
    json_decref(r);
    sim_engine_free(e);
    cr_assert_eq(ps.requests, N, "the profile was fetched %u times", ps.requests);
    profile_srv_stop(&ps);
    free(url);
}
