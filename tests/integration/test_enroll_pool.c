/*
 * The enrollment key pool (mdm/enroll.c): PKCS#12 identities come from RSA keys generated
 * ahead on a background thread.  A start (or restart) does not wait for the pool to fill —
 * with the largest pool, 256 keys at 100-300 ms each, a synchronous fill would hold scepter
 * 25-75 s before it listened — downloads are served at once (the first ones generate their
 * own key, bounded), and the pool fills while the server runs (scepter_enroll_keys_ready in
 * /metrics).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* scepter_enroll_keys_ready from /metrics (asserts it is there). */
static long keys_ready(struct h_server *s)
{
    struct tu_http_resp r;
    const char *p;
    long n;

    cr_assert_eq(tu_http(s->port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    p = strstr((const char *)r.body, "\nscepter_enroll_keys_ready ");
    cr_assert_not_null(p, "no scepter_enroll_keys_ready in /metrics");
    n = strtol(p + strlen("\nscepter_enroll_keys_ready "), NULL, 10);
    tu_http_resp_free(&r);
    return n;
}

/* GET /mdm/enroll once (no retry): its status, and it carries a PKCS#12 identity when 200. */
static int enroll_once(struct h_server *s)
{
    struct tu_http_resp r;
    int st;

    cr_assert_eq(tu_http(s->port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &r), 0);
    st = r.status;
    if (st == 200)
        cr_assert(memmem(r.body, r.body_len, "com.apple.security.pkcs12", 25) != NULL,
                  "the profile carries no PKCS#12 identity");
    tu_http_resp_free(&r);
    return st;
}

Test(enroll_pool, a_large_pool_does_not_hold_the_start)
{
    struct h_server S;
    struct h_opts o = {.extra = "enroll_key_pool = 256\nenroll_rate_limit = 0\n"};
    double t0 = mono_s(), started;
    long ready;

    h_start(&S, &o);
    started = mono_s() - t0;
    /* 256 RSA-2048 keys take 25-75 s of one core; the start itself well under a second. */
    cr_assert_lt(started, 10.0, "scepter took %.1f s to start with enroll_key_pool = 256", started);
    ready = keys_ready(&S);
    cr_assert_lt(ready, 256, "the pool was filled before the server listened");
    /* Served at once: from the pool or, while it is empty, with a key made in the request. */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(enroll_once(&S), 200, "download %d", i + 1);
    /* The pool fills in the background (bounded wait). */
    for (int i = 0; i < 300 && (ready = keys_ready(&S)) < 3; i++)
        usleep(100000);
    cr_assert_geq(ready, 3, "the pool did not fill in the background (%ld keys after 30 s)", ready);
    /* A restart does not wait for the pool either. */
    t0 = mono_s();
    h_restart(&S);
    started = mono_s() - t0;
    cr_assert_lt(started, 10.0, "the restart took %.1f s", started);
    cr_assert_eq(enroll_once(&S), 200);
    h_stop(&S);
}

/* Keys nobody can use are not made: without device_ca_key_file /mdm/enroll never hands out a
 * PKCS#12 identity, so the pool stays empty (each key is 100-300 ms of a core) — until a
 * reload sets the key, when it fills. */
Test(enroll_pool, no_keys_without_a_device_ca_key)
{
    struct h_server S;
    struct h_opts o = {.extra = "device_ca_key_file =\nenroll_key_pool = 4\n"
                                "enroll_rate_limit = 0\n"};
    long ready = 0;

    h_start(&S, &o);
    /* 3 s: with the bug (a pool filled for nothing) the first key is there well before. */
    for (int i = 0; i < 30 && ready == 0; i++) {
        usleep(100000);
        ready = keys_ready(&S);
    }
    cr_assert_eq(ready, 0, "the pool made %ld keys with no device CA key to use them", ready);
    cr_assert_eq(enroll_once(&S), 503, "no identity source, yet /mdm/enroll did not say 503");
    /* The key set by a reload: the pool starts then, and downloads get identities. */
    char *lines = xasprintf("device_ca_key_file = %s/device-ca.key\n", S.dir);
    h_conf_append(&S, lines);
    free(lines);
    cr_assert_eq(kill(S.proc.pid, SIGHUP), 0);
    for (int i = 0; i < 300 && (ready = keys_ready(&S)) < 1; i++)
        usleep(100000);
    cr_assert_geq(ready, 1, "the pool did not start after the reload set device_ca_key_file");
    cr_assert_eq(enroll_once(&S), 200);
    h_stop(&S);
}
