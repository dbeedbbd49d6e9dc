/*
 * The engine's machinery over real loopback sockets, without an MDM server: push callbacks
 * (right PushMagic starts a session, wrong PushMagic and unknown tokens are ignored, bad JSON
 * gets 400) and the connection bound (50 pushed devices, at most 4 talking at once).  The
 * devices' ServerURL points at a closed loopback port, so each session ends in a refused
 * connection, which the engine counts; the real exchange is the end-to-end suite's job.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

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

    id = ts_payload("com.apple.security.pkcs12", "org.example.id", "1D000000-0000-4000-8000-000000000001");
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
                  "\"payload\":{\"mdm\":\"%s\"}}", hex, magic);
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
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(r, "devices"), 0), "udid")),
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
