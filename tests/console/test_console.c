/*
 * The web console in a real browser: a real `scepter` (SQLite) with simulated Macs and
 * iPhones enrolled and serving pushes from the APNs test server, Debian's scepserver as the
 * customer's SCEP CA, and tests/console/run.mjs driving Debian's chromium headless with
 * playwright-core (installed by tests/console/run.sh with `npm ci` from the lock file)
 * through the admin guide's SCEP Profiles flow, click by click.
 *
 * A second scepter with a 5-second session lifetime shows an expired session.  Screenshots
 * go to <build>/console-screenshots.  Everything (servers, simulator, browser, its profile
 * directory under this test's temporary directory) is gone when the test ends.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "apns-server/harness.h"
#include "common/xmalloc.h"
#include "integration/harness.h"
#include "sim/sim_test_util.h"
#include "support/proc.h"
#include "support/support.h"

#define NDEV           6 /* 3 Macs, 3 iPhones: mac=1,iphone=1 alternates them */
#define SCEP_CHALLENGE "console-corp-secret"

/* "AA:BB:..." of the certificate's SHA-256 (what an administrator copies from a CA's page). */
static char *colon_fingerprint(X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char *out = xmalloc(3 * EVP_MAX_MD_SIZE + 1);

    cr_assert(X509_digest(cert, EVP_sha256(), md, &n) == 1);
    out[0] = '\0';
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
    return out;
}

/* Enrolled devices of a platform as JSON text [{udid, name, serial, os}] (caller frees). */
static char *devices_of(struct h_server *s, const char *platform)
{
    json_t *j = NULL, *out = json_array(), *d;
    char *path = xasprintf("/v1/devices?enrolled=true&platform=%s", platform);
    size_t i;

    cr_assert_eq(h_api(s, "GET", path, NULL, &j), 200);
    json_array_foreach(json_object_get(j, "devices"), i, d)
    {
        json_t *name = json_object_get(d, "name"), *serial = json_object_get(d, "serial");
        if (!name)
            name = json_object_get(d, "device_name");
        if (!serial)
            serial = json_object_get(d, "serial_number");
        json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:O}", "udid",
                                             json_object_get(d, "udid"), "name", name, "serial",
                                             serial, "os", json_object_get(d, "os_version")));
    }
    json_decref(j);
    free(path);
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return text;
}

Test(console, the_admin_guide_in_a_browser, .timeout = 1200)
{
    struct scep_srv scep;
    struct h_server S, E;
    struct ts_server *ts;

    /* The customer's SCEP CA, its certificate as the root to upload (DER). */
    ts_scep_start(&scep, SCEP_CHALLENGE);
    char *fp = colon_fingerprint(scep.ca);

    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *targs[] = {"--client-ca", pushca, "--max-lifetime", "1200", NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 50\n"
                            "repush_interval = 2\nenroll_rate_limit = 0\nenroll_key_pool = 2\n",
                            ts->port, apns_ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    /* The server whose sessions expire while the test watches. */
    struct h_opts eo = {.extra = "console_session_ttl = 5\nconsole_session_idle = 5\n"};
    h_start(&E, &eo);

    /* Simulated devices: enroll, then serve pushes until the test stops them. */
    char *server = xasprintf("https://127.0.0.1:%d", S.port);
    char *tlsca = xasprintf("%s/tls-ca.pem", S.dir);
    char *control = xasprintf("http://127.0.0.1:%d", ts->control_port);
    char *simlog = xasprintf("%s/sim.log", S.dir);
    const char *sim_bin = getenv("SCEPTER_SIM_BIN");
    cr_assert_not_null(sim_bin, "SCEPTER_SIM_BIN is not set (ctest sets it)");
    const char *sargv[] = {sim_bin,
                           "--server",
                           server,
                           "--ca",
                           tlsca,
                           "--devices",
                           "6",
                           "--platform-mix",
                           "mac=1,iphone=1",
                           "--seed",
                           "15",
                           "--apns-control",
                           control,
                           "--retry-ms",
                           "500",
                           "--duration",
                           "1100",
                           "--log-level",
                           "warn",
                           NULL};
    struct tu_proc sim = tu_proc_start(sargv, NULL, simlog);
    json_t *j = NULL;
    for (int i = 0;; i++) {
        cr_assert(tu_proc_alive(&sim), "the simulator died: %s", tu_proc_log(&sim));
        cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true", NULL, &j), 200);
        json_int_t n = json_integer_value(json_object_get(j, "total"));
        if (n == 0)
            n = json_integer_value(json_object_get(j, "count"));
        json_decref(j);
        if (n == NDEV)
            break;
        cr_assert_lt(i, 720, "only %lld of %d devices enrolled in 180 s", (long long)n, NDEV);
        usleep(250000);
    }
    char *macs = devices_of(&S, "macos"), *iphones = devices_of(&S, "ios");
    json_t *mc = json_loads(macs, 0, NULL), *ic = json_loads(iphones, 0, NULL);
    cr_assert(json_array_size(mc) >= 3 && json_array_size(ic) >= 3,
              "the simulator made fewer than 3 Macs or iPhones: %s %s", macs, iphones);
    json_decref(mc);
    json_decref(ic);

    /* A group mixing platforms (2 Macs, 2 iPhones) and a Macs-only one. */
    json_t *m = json_loads(macs, 0, NULL), *p = json_loads(iphones, 0, NULL);
    json_t *g = json_pack("{s:s,s:[O,O,O,O]}", "name", "Mixed Lab", "devices",
                          json_object_get(json_array_get(m, 0), "udid"),
                          json_object_get(json_array_get(m, 1), "udid"),
                          json_object_get(json_array_get(p, 0), "udid"),
                          json_object_get(json_array_get(p, 1), "udid"));
    char *gt = json_dumps(g, 0);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", gt, NULL), 201);
    free(gt);
    json_decref(g);
    g = json_pack("{s:s,s:[O]}", "name", "Design Macs", "devices",
                  json_object_get(json_array_get(m, 2), "udid"));
    gt = json_dumps(g, 0);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", gt, NULL), 201);
    free(gt);
    json_decref(g);
    json_decref(m);
    json_decref(p);

    /* The root certificate the guide uploads: the SCEP CA's, DER (.cer). */
    char *root = xasprintf("%s/corp-root.cer", S.dir);
    unsigned char *der = NULL;
    int dlen = i2d_X509(scep.ca, &der);
    cr_assert_gt(dlen, 0);
    tu_write(root, der, (size_t)dlen);
    OPENSSL_free(der);

    /* The browser test, bounded; node, npm and chromium keep their files in our directory. */
    const char *bin = getenv("SCEPTER_BINARY_DIR");
    cr_assert_not_null(bin, "SCEPTER_BINARY_DIR is not set (ctest sets it)");
    char *tmp = xasprintf("%s/tmp", S.dir);
    cr_assert_eq(tu_sh(NULL, "mkdir -p '%s'", tmp), 0);
    char *script = tu_source_path("tests/console/run.sh");
    char *env[] = {xasprintf("CONSOLE_URL=https://127.0.0.1:%d", S.port),
                   xasprintf("CONSOLE_URL_SHORT_SESSION=https://127.0.0.1:%d", E.port),
                   xasprintf("CONSOLE_API_KEY=%s", H_API_KEY),
                   xasprintf("CONSOLE_SCEP_URL=%s", scep.url),
                   xasprintf("CONSOLE_SCEP_FINGERPRINT=%s", fp),
                   xasprintf("CONSOLE_SCEP_CHALLENGE=%s", SCEP_CHALLENGE),
                   xasprintf("CONSOLE_ROOT_CERT=%s", root),
                   xasprintf("CONSOLE_MACS=%s", macs),
                   xasprintf("CONSOLE_IPHONES=%s", iphones),
                   xasprintf("CONSOLE_SCREENSHOTS=%s/console-screenshots", bin),
                   xasprintf("CONSOLE_NODE_DIR=%s/console-node", bin),
                   xasprintf("TMPDIR=%s", tmp),
                   xasprintf("HOME=%s", tmp),
                   xasprintf("npm_config_cache=%s/npm-cache", bin),
                   NULL};
    char *log = xasprintf("%s/browser.log", S.dir);
    const char *argv[] = {"/bin/sh", script, NULL};
    struct tu_proc b = tu_proc_start(argv, (const char *const *)env, log);
    int status = -1;
    for (int i = 0; i < 9000 && waitpid(b.pid, &status, WNOHANG) == 0; i++) /* 900 s */
        usleep(100000);
    char *out = tu_proc_log(&b);
    if (kill(b.pid, 0) == 0) {
        tu_proc_stop(&b, SIGTERM, 10000);
        status = -1;
    }
    tu_untrack_pid(b.pid);
    free(b.log_path);
    fprintf(stderr, "%s", out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the browser test failed (log above; screenshots in %s/console-screenshots)", bin);

    /* What the page showed is what the server holds: the policy on its 3 iPhones. */
    cr_assert_eq(h_api(&S, "GET", "/v1/policies", NULL, &j), 200);
    size_t i;
    json_t *pol;
    size_t checked = 0, ddm_policies = 0;
    json_array_foreach(json_object_get(j, "policies"), i, pol)
    {
        json_t *st = NULL;
        char *path = xasprintf("/v1/policies/%lld/status",
                               (long long)json_integer_value(json_object_get(pol, "id")));
        cr_assert_eq(h_api(&S, "GET", path, NULL, &st), 200);
        json_t *counts = json_object_get(st, "counts");
        cr_assert_geq(json_integer_value(json_object_get(counts, "installed")), 3, "%s",
                      h_json(st));
        cr_assert_eq(json_integer_value(json_object_get(counts, "failed")), 0, "%s", h_json(st));
        /* the DDM policy: its iOS 17+ iPhones report it active, the others have the profile */
        json_t *by = json_object_get(st, "by_delivery");
        if (json_is_true(json_object_get(pol, "ddm"))) {
            json_t *dd = json_object_get(by, "ddm");
            cr_assert_geq(json_integer_value(json_object_get(dd, "devices")), 1, "%s", h_json(st));
            cr_assert_eq(json_integer_value(json_object_get(dd, "active")),
                         json_integer_value(json_object_get(dd, "devices")), "%s", h_json(st));
            ddm_policies++;
        } else {
            cr_assert_eq(json_integer_value(json_object_get(json_object_get(by, "ddm"), "devices")),
                         0, "%s", h_json(st));
        }
        json_decref(st);
        free(path);
        checked++;
    }
    /* The Mac policy was deleted through the page; the iOS one and the DDM one stay. */
    cr_assert_eq(checked, 2, "the iOS policy and the DDM one are left: %s", h_json(j));
    cr_assert_eq(ddm_policies, 1, "%s", h_json(j));
    json_decref(j);

    free(out);
    free(log);
    for (char **e = env; *e; e++)
        free(*e);
    free(script);
    tu_proc_stop(&sim, SIGTERM, 10000);
    free(sim.log_path);
    h_stop(&E);
    h_stop(&S);
    ts_stop(ts);
    ts_scep_stop(&scep);
    free(tmp);
    free(root);
    free(macs);
    free(iphones);
    free(server);
    free(tlsca);
    free(control);
    free(simlog);
    free(extra);
    free(topic);
    free(pushca);
    free(apns_ca);
    free(cert);
    free(key);
    free(fp);
}

/*
 * The fleet pages (tests/console/pages.mjs): Dashboard, Devices, Device Groups, Commands,
 * Settings and Audit against a scepter with 4 simulated devices (2 Macs, 2 iPhones) that
 * answer pushes from the APNs test server.  No re-push job runs during the test (the default
 * hour), so a command queued without a push waits until the page cancels it.
 */
Test(console, fleet_pages_in_a_browser, .timeout = 900)
{
    struct h_server S;
    struct ts_server *ts;
    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key"), *cert2 = ts_pki("push2.pem"), *key2 = ts_pki("push2.key"),
         *certo = ts_pki("push-other.pem"), *keyo = ts_pki("push-other.key");
    const char *targs[] = {"--client-ca", pushca, "--max-lifetime", "900", NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 50\n"
                            "enroll_rate_limit = 0\nenroll_key_pool = 2\nenroll_tokens = true\n",
                            ts->port, apns_ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);

    /* The same-topic certificate as a .p12 with a password (what Apple's portal exports). */
    char *p12 = xasprintf("%s/push2.p12", S.dir);
    cr_assert_eq(tu_sh(NULL,
                       "openssl pkcs12 -export -in '%s' -inkey '%s' -out '%s' -passout "
                       "pass:console-p12 2>&1",
                       cert2, key2, p12),
                 0, "openssl pkcs12 -export failed");

    char *server = xasprintf("https://127.0.0.1:%d", S.port);
    char *tlsca = xasprintf("%s/tls-ca.pem", S.dir);
    char *control = xasprintf("http://127.0.0.1:%d", ts->control_port);
    char *simlog = xasprintf("%s/sim.log", S.dir);
    const char *sim_bin = getenv("SCEPTER_SIM_BIN");
    cr_assert_not_null(sim_bin, "SCEPTER_SIM_BIN is not set (ctest sets it)");
    const char *sargv[] = {sim_bin,
                           "--server",
                           server,
                           "--ca",
                           tlsca,
                           "--devices",
                           "4",
                           "--platform-mix",
                           "mac=1,iphone=1",
                           "--seed",
                           "16",
                           "--apns-control",
                           control,
                           "--retry-ms",
                           "500",
                           "--duration",
                           "800",
                           "--log-level",
                           "warn",
                           NULL};
    struct tu_proc sim = tu_proc_start(sargv, NULL, simlog);
    json_t *j = NULL;
    for (int i = 0;; i++) {
        cr_assert(tu_proc_alive(&sim), "the simulator died: %s", tu_proc_log(&sim));
        cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true", NULL, &j), 200);
        json_int_t n = json_integer_value(json_object_get(j, "total"));
        json_decref(j);
        if (n == 4)
            break;
        cr_assert_lt(i, 720, "only %lld of 4 devices enrolled in 180 s", (long long)n);
        usleep(250000);
    }
    char *macs = devices_of(&S, "macos"), *iphones = devices_of(&S, "ios");

    const char *bin = getenv("SCEPTER_BINARY_DIR");
    cr_assert_not_null(bin, "SCEPTER_BINARY_DIR is not set (ctest sets it)");
    char *tmp = xasprintf("%s/tmp", S.dir);
    cr_assert_eq(tu_sh(NULL, "mkdir -p '%s'", tmp), 0);
    char *script = tu_source_path("tests/console/run.sh");
    char *env[] = {xasprintf("CONSOLE_SCRIPT=pages.mjs"),
                   xasprintf("CONSOLE_URL=https://127.0.0.1:%d", S.port),
                   xasprintf("CONSOLE_API_KEY=%s", H_API_KEY),
                   xasprintf("CONSOLE_MACS=%s", macs),
                   xasprintf("CONSOLE_IPHONES=%s", iphones),
                   xasprintf("CONSOLE_TOPIC=%s", topic),
                   xasprintf("CONSOLE_PUSH_CERT=%s", cert2),
                   xasprintf("CONSOLE_PUSH_KEY=%s", key2),
                   xasprintf("CONSOLE_PUSH_P12=%s", p12),
                   xasprintf("CONSOLE_PUSH_P12_PASSWORD=console-p12"),
                   xasprintf("CONSOLE_OTHER_CERT=%s", certo),
                   xasprintf("CONSOLE_OTHER_KEY=%s", keyo),
                   xasprintf("CONSOLE_SCREENSHOTS=%s/console-screenshots", bin),
                   xasprintf("CONSOLE_NODE_DIR=%s/console-node", bin),
                   xasprintf("TMPDIR=%s", tmp),
                   xasprintf("HOME=%s", tmp),
                   xasprintf("npm_config_cache=%s/npm-cache", bin),
                   NULL};
    char *log = xasprintf("%s/browser.log", S.dir);
    const char *argv[] = {"/bin/sh", script, NULL};
    struct tu_proc b = tu_proc_start(argv, (const char *const *)env, log);
    int status = -1;
    for (int i = 0; i < 6000 && waitpid(b.pid, &status, WNOHANG) == 0; i++) /* 600 s */
        usleep(100000);
    char *out = tu_proc_log(&b);
    if (kill(b.pid, 0) == 0) {
        tu_proc_stop(&b, SIGTERM, 10000);
        status = -1;
    }
    tu_untrack_pid(b.pid);
    free(b.log_path);
    fprintf(stderr, "%s", out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the browser test failed (log above; screenshots in %s/console-screenshots)", bin);

    /* What the pages did is what the server holds: the DeviceInformation the page sent to
     * the group was acknowledged by both members; the topic change was confirmed last. */
    cr_assert_eq(
        h_api(&S, "GET", "/v1/commands?request_type=DeviceInformation&origin=operator", NULL, &j),
        200);
    size_t k, acked = 0;
    json_t *c0;
    json_array_foreach(json_object_get(j, "commands"), k, c0)
    {
        if (json_integer_value(json_object_get(c0, "targets")) == 2 &&
            json_integer_value(json_object_get(json_object_get(c0, "counts"), "acknowledged")) == 2)
            acked++;
    }
    cr_assert_eq(acked, 1, "one DeviceInformation to the group, acknowledged by both: %s",
                 h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/pushcert", NULL, &j), 200);
    cr_assert_str_neq(json_string_value(json_object_get(j, "topic")), topic, "%s", h_json(j));
    json_decref(j);

    free(out);
    free(log);
    for (char **e = env; *e; e++)
        free(*e);
    free(script);
    tu_proc_stop(&sim, SIGTERM, 10000);
    free(sim.log_path);
    h_stop(&S);
    ts_stop(ts);
    free(tmp);
    free(p12);
    free(macs);
    free(iphones);
    free(server);
    free(tlsca);
    free(control);
    free(simlog);
    free(extra);
    free(topic);
    free(pushca);
    free(apns_ca);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
    free(certo);
    free(keyo);
}
