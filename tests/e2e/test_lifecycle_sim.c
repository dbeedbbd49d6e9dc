/*
 * A device's life with simulated devices (scepter-sim) over HTTPS, pushes through the HTTP/2
 * APNs test server, on the store SCEPTER_TEST_STORE names:
 *   - 3 Macs enroll (PKCS#12 identities from the device CA) and install a SCEP policy; an
 *     operator removes them; the same devices (same seed: same UDIDs) enroll again with new
 *     identities, start from no policy state and install the policy again;
 *   - renewal is switched on (SIGHUP): each device is sent the enrollment profile again,
 *     installs it, presents its new identity — which is bound — and goes on answering
 *     commands with it, its policy still installed.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apns-server/harness.h"
#include "common/xmalloc.h"
#include "integration/harness.h"
#include "support/proc.h"
#include "support/support.h"

#define NDEV 3

static struct h_server S;
static struct ts_server *ts;
static char *server, *tlsca, *control, *simlog, *state;

static struct tu_proc sim_start(void)
{
    const char *sim_bin = getenv("SCEPTER_SIM_BIN");
    cr_assert_not_null(sim_bin);
    const char *argv[] = {
        sim_bin, "--server",       server,    "--ca",          tlsca,  "--devices",
        "3",     "--platform-mix", "mac=100", "--seed",        "11",   "--apns-control",
        control, "--retry-ms",     "500",     "--concurrency", "4",    "--duration",
        "600",   "--state-file",   state,     "--log-level",   "warn", NULL};
    return tu_proc_start(argv, NULL, simlog);
}

static json_int_t enrolled(void)
{
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true", NULL, &j), 200);
    json_int_t n = json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

static void wait_enrolled(struct tu_proc *sim, json_int_t want)
{
    for (int i = 0; i < 480; i++) {
        cr_assert(tu_proc_alive(sim), "the simulator died: %s", tu_proc_log(sim));
        if (enrolled() == want)
            return;
        usleep(250000);
    }
    cr_assert_fail("only %lld of %lld devices enrolled", (long long)enrolled(), (long long)want);
}

/* The policy's status (GET /v1/policies/{id}/status; caller decrefs). */
static json_t *policy_status(json_int_t id)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/policies/%lld/status", (long long)id);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200, "%s", h_json(j));
    free(path);
    return j;
}

/* Devices where the policy is "installed", "pending" or "failed". */
static size_t policy_count(json_int_t id, const char *what)
{
    json_t *j = policy_status(id);
    size_t n = json_array_size(json_object_get(j, what));
    json_decref(j);
    return n;
}

/* Wait until every device answered the policy's latest InstallProfile (installed, or failed:
 * its SCEP URL is a closed port); the command UUIDs answered into *cmds (caller decrefs). */
static void wait_answered(json_int_t id, json_t **cmds)
{
    for (int i = 0; i < 480; i++) {
        if (policy_count(id, "installed") + policy_count(id, "failed") == NDEV)
            break;
        cr_assert_lt(i, 479, "not every device answered the policy");
        usleep(250000);
    }
    json_t *j = policy_status(id);
    *cmds = json_array();
    static const char *const lists[] = {"installed", "failed"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(j, lists[l]), i, d)
            json_array_append(*cmds, json_object_get(d, "command"));
    }
    json_decref(j);
}

static bool shares_any(json_t *a, json_t *b)
{
    size_t i, k;
    json_t *x, *y;
    json_array_foreach(a, i, x) json_array_foreach(b, k, y) if (json_equal(x, y)) return true;
    return false;
}

static const char *renewal_state(const char *udid)
{
    static char out[32];
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s", udid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    free(path);
    snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(j, "identity_renewal")));
    json_decref(j);
    return out;
}

Test(lifecycle_sim, reenrolled_and_renewed_devices_keep_their_policy)
{
    json_t *j = NULL;

    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *targs[] = {"--client-ca", pushca, "--max-lifetime", "900", NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts);
    char *topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 50\n"
                            "repush_interval = 2\nenroll_rate_limit = 0\n"
                            "identity_renew_days = 0\nidentity_renew_interval = 1\n"
                            "enroll_identity_days = 10\n",
                            ts->port, apns_ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    server = xasprintf("https://127.0.0.1:%d", S.port);
    tlsca = xasprintf("%s/tls-ca.pem", S.dir);
    control = xasprintf("http://127.0.0.1:%d", ts->control_port);
    state = xasprintf("%s/sim-state.json", S.dir);
    simlog = xasprintf("%s/sim.log", S.dir);

    /* 1. Enroll, install the policy. */
    struct tu_proc sim = sim_start();
    wait_enrolled(&sim, NDEV);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true", NULL, &j), 200);
    json_t *udids = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "devices"), i, d)
        json_array_append(udids, json_object_get(d, "udid"));
    json_decref(j);
    json_t *pb = json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:{s:O}}", "name", "Sim Wi-Fi", "platform",
                           "macos", "scep", "url", "http://127.0.0.1:9/scep", "challenge", "s3cret",
                           "subject", "/CN=%SerialNumber%/", "targets", "devices", udids);
    char *ptext = json_dumps(pb, 0);
    json_decref(pb);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", ptext, &j), 201, "%s", h_json(j));
    free(ptext);
    json_int_t pid = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    /* The policy's SCEP URL is a closed port: the simulated Macs report Error, which is a
     * final state too; what matters is that it reaches them, then again after re-enrolling. */
    json_t *first = NULL, *second = NULL;
    wait_answered(pid, &first);

    /* 2. An operator removes them; the same Macs enroll again with new identities. */
    cr_assert_eq(tu_proc_stop(&sim, SIGINT, 30000), 0, "simulator exit");
    json_array_foreach(udids, i, d)
    {
        char *path = xasprintf("/v1/devices/%s", json_string_value(d));
        cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200);
        free(path);
    }
    cr_assert_eq(enrolled(), 0);
    cr_assert_eq(h_api(&S, "GET", "/v1/policies", NULL, &j), 200);
    json_decref(j);
    sim = sim_start();
    wait_enrolled(&sim, NDEV);
    /* Started from nothing: a new InstallProfile for each, answered. */
    for (int k = 0; k < 480; k++) {
        json_decref(second);
        wait_answered(pid, &second);
        bool fresh = json_array_size(second) == NDEV && !shares_any(first, second);
        if (fresh)
            break;
        cr_assert_lt(k, 479, "the re-enrolled Macs were not sent the policy again: %s",
                     h_json(second));
        usleep(250000);
    }
    /* 3. Renewal on: every identity (10 days) is within 20 days of its end; the renewed ones
     * last a year, so they are not renewed again. */
    h_conf_append(&S, "identity_renew_days = 20\nenroll_identity_days = 365\n");
    cr_assert_eq(kill(S.proc.pid, SIGHUP), 0);
    bool all = false;
    for (int k = 0; k < 480 && !all; k++) {
        all = true;
        json_array_foreach(udids, i, d) all =
            all && strcmp(renewal_state(json_string_value(d)), "renewed") == 0;
        if (!all)
            usleep(250000);
    }
    cr_assert(all, "every Mac installed its renewal and presented the new identity: %s",
              tu_proc_log(&sim));
    /* They go on answering with it. */
    json_t *cb =
        json_pack("{s:O,s:{s:s}}", "devices", udids, "command", "request_type", "SecurityInfo");
    char *ctext = json_dumps(cb, 0);
    json_decref(cb);
    cr_assert_eq(h_api(&S, "POST", "/v1/commands", ctext, &j), 201, "%s", h_json(j));
    free(ctext);
    char cuuid[64];
    snprintf(cuuid, sizeof(cuuid), "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    json_array_foreach(udids, i, d)
    {
        char *path = xasprintf("/v1/devices/%s/commands/%s", json_string_value(d), cuuid);
        const char *st = "";
        for (int k = 0; k < 240; k++) {
            cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
            st = json_string_value(json_object_get(j, "status"));
            bool done = st && strcmp(st, "queued") != 0 && strcmp(st, "NotNow") != 0;
            json_decref(j);
            if (done)
                break;
            usleep(250000);
        }
        free(path);
    }
    cr_assert_eq(policy_count(pid, "installed") + policy_count(pid, "failed"), NDEV,
                 "the renewal kept their policy state");
    cr_assert_eq(tu_proc_stop(&sim, SIGINT, 30000), 0, "simulator exit");
    json_t *report = json_load_file(state, 0, NULL);
    cr_assert_not_null(report);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_object_get(report, "counters"), "identity_renewals")),
                 NDEV, "%s", h_json(report));
    json_decref(report);
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "scepter_identities_renewed_total 3"), "%s", r.body);
    tu_http_resp_free(&r);

    json_decref(udids);
    json_decref(first);
    json_decref(second);
    h_stop(&S);
    ts_stop(ts);
    free(server);
    free(tlsca);
    free(control);
    free(state);
    free(simlog);
    free(extra);
    free(topic);
    free(pushca);
    free(apns_ca);
    free(cert);
    free(key);
}
