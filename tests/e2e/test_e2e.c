/*
 * The end-to-end test: Scepter on PostgreSQL, the HTTP/2 APNs test server, a real SCEP server
 * (Debian's scepserver) as the customer's CA, and 50 simulated devices — Macs, iPhones and
 * iPads — in a group that mixes platforms.  An operator creates a macOS and an iOS SCEP
 * Profiles policy through the API:
 *   - exactly the right devices are pushed, fetch InstallProfile, enroll with the SCEP server
 *     and acknowledge; the API shows every device's status per policy;
 *   - a policy with a wrong challenge shows Error, with the reason, on every targeted device;
 *   - devices answering NotNow get the command later;
 *   - restarting scepter in the middle loses no command.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "apns-server/harness.h"
#include "common/codec.h"
#include "common/xmalloc.h"
#include "integration/harness.h"
#include "sim/sim_test_util.h"
#include "support/proc.h"
#include "support/support.h"

#define NDEV 50

static time_t t0;

static void step(const char *what)
{
    fprintf(stderr, "e2e [%3lds] %s\n", (long)(time(NULL) - t0), what);
}

/* UDIDs of enrolled devices of a platform, from the API (caller decrefs). */
static json_t *udids(struct h_server *s, const char *platform)
{
    json_t *j = NULL, *out = json_array();
    char *path = xasprintf("/v1/devices?enrolled=true&platform=%s", platform);
    cr_assert_eq(h_api(s, "GET", path, NULL, &j), 200);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "devices"), i, d)
        json_array_append(out, json_object_get(d, "udid"));
    json_decref(j);
    free(path);
    return out;
}

static json_int_t create_policy(struct h_server *s, const char *name, const char *platform,
                                const char *url, const char *challenge, const char *fp,
                                const char *subject, json_t *devices, json_t *groups,
                                json_t **reply)
{
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:i,s:[s]},"
                  "s:{s:O,s:O}}",
                  "name", name, "platform", platform, "notes", "end-to-end test", "scep", "url",
                  url, "name", "scepter-e2e", "challenge", challenge, "fingerprint", fp, "key_size",
                  2048, "subject", subject, "retries", 1, "retry_delay", 0, "key_usage", "signing",
                  "targets", "devices", devices, "device_groups", groups);
    char *text = json_dumps(body, 0);
    json_t *j = NULL;
    int st = h_api(s, "POST", "/v1/policies", text, &j);
    cr_assert_eq(st, 201, "%s: %d %s", name, st, j ? h_json(j) : "");
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    if (reply)
        *reply = j;
    else
        json_decref(j);
    free(text);
    json_decref(body);
    return id;
}

static json_t *policy_status(struct h_server *s, json_int_t id)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/policies/%lld/status", (long long)id);
    cr_assert_eq(h_api(s, "GET", path, NULL, &j), 200);
    free(path);
    return j;
}

static json_int_t count(json_t *status, const char *what)
{
    return json_integer_value(json_object_get(json_object_get(status, "counts"), what));
}

/* Wait (bounded) until the policy has `installed` installed and `failed` failed devices. */
static json_t *wait_policy(struct h_server *s, json_int_t id, json_int_t installed,
                           json_int_t failed, int seconds)
{
    json_t *st = NULL;
    for (int i = 0; i < seconds * 4; i++) {
        json_decref(st);
        st = policy_status(s, id);
        if (count(st, "installed") == installed && count(st, "failed") == failed &&
            count(st, "pending") == 0)
            return st;
        usleep(250000);
    }
    cr_assert_fail("policy %lld: installed %lld/%lld, failed %lld/%lld, pending %lld after %d s:"
                   " %s",
                   (long long)id, (long long)count(st, "installed"), (long long)installed,
                   (long long)count(st, "failed"), (long long)failed,
                   (long long)count(st, "pending"), seconds, h_json(json_object_get(st, "failed")));
    return NULL;
}

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static json_t *slice(json_t *arr, size_t from, size_t n)
{
    json_t *out = json_array();
    for (size_t i = from; i < from + n && i < json_array_size(arr); i++)
        json_array_append(out, json_array_get(arr, i));
    return out;
}

Test(e2e, fifty_devices_two_policies_a_wrong_challenge_notnow_and_a_restart, .disabled = false)
{
    struct scep_srv scep;
    struct h_server S;
    struct ts_server *ts;
    char fp[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    t0 = time(NULL);
    /* The customer's CA. */
    ts_scep_start(&scep, "corp-secret");
    X509_digest(scep.ca, EVP_sha256(), md, &mdlen);
    hex_encode_to(md, mdlen, fp, false);
    step("scepserver up");

    /* APNs. */
    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *targs[] = {"--client-ca", pushca, "--max-lifetime", "900", NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts);
    char *topic = ts_pki_text("topic");
    step("apns-test-server up");

    /* Scepter: PKCS#12 identities from its device CA, signed profiles, re-push every 2 s. */
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 50\n"
                            "repush_interval = 2\nlog_level = info\n"
                            /* 50 devices from one address: a load, not an abuse. */
                            "enroll_rate_limit = 0\nenroll_key_pool = 8\n",
                            ts->port, apns_ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    step("scepter up");

    /* 50 simulated devices: enroll, then serve pushes. */
    char *server = xasprintf("https://127.0.0.1:%d", S.port);
    char *tlsca = xasprintf("%s/tls-ca.pem", S.dir);
    char *control = xasprintf("http://127.0.0.1:%d", ts->control_port);
    char *state = xasprintf("%s/sim-state.json", S.dir);
    char *simlog = xasprintf("%s/sim.log", S.dir);
    const char *sim_bin = getenv("SCEPTER_SIM_BIN");
    cr_assert_not_null(sim_bin);
    const char *sargv[] = {sim_bin,
                           "--server",
                           server,
                           "--ca",
                           tlsca,
                           "--devices",
                           "50",
                           "--platform-mix",
                           "mac=40,iphone=40,ipad=20",
                           "--seed",
                           "7",
                           "--apns-control",
                           control,
                           "--notnow-rate",
                           "0.3",
                           "--retry-ms",
                           "500",
                           "--concurrency",
                           "16",
                           "--duration",
                           "600",
                           "--state-file",
                           state,
                           "--log-level",
                           "warn",
                           NULL};
    struct tu_proc sim = tu_proc_start(sargv, NULL, simlog);
    json_t *j = NULL;
    /* Up to 180 s: make test on 2 busy cores (other builds, load ~20) enrolled 48 in 60 s. */
    for (int i = 0; i < 720; i++) {
        cr_assert(tu_proc_alive(&sim), "the simulator died: %s", tu_proc_log(&sim));
        cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true", NULL, &j), 200);
        json_int_t n = json_integer_value(json_object_get(j, "count"));
        json_decref(j);
        if (n == NDEV)
            break;
        cr_assert_lt(i, 719, "only %lld of %d devices enrolled", (long long)n, NDEV);
        usleep(250000);
    }
    step("50 devices enrolled");

    json_t *macs = udids(&S, "macos"), *iphones = udids(&S, "ios"), *ipads = udids(&S, "ipados");
    cr_assert_eq(json_array_size(macs), 20);
    cr_assert_eq(json_array_size(iphones), 20);
    cr_assert_eq(json_array_size(ipads), 10);

    /* A group that mixes platforms: 5 Macs, 5 iPhones, 5 iPads. */
    json_t *members = json_array();
    json_t *parts[3] = {slice(macs, 0, 5), slice(iphones, 0, 5), slice(ipads, 0, 5)};
    for (size_t k = 0; k < 3; k++) {
        json_array_extend(members, parts[k]);
        json_decref(parts[k]);
    }
    json_t *gb = json_pack("{s:s,s:O}", "name", "Mixed Lab", "devices", members);
    char *gtext = json_dumps(gb, 0);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", gtext, NULL), 201);
    free(gtext);
    json_decref(gb);

    long long pushes_before = ts_stat(ts, "received");

    /* macOS policy: the group (5 Macs reached, its iPhones and iPads not) + 3 Macs directly. */
    json_t *direct_macs = slice(macs, 5, 3), *groups = json_pack("[s]", "Mixed Lab");
    json_t *reply = NULL;
    json_int_t mac_policy =
        create_policy(&S, "Mac Wi-Fi", "macos", scep.url, "corp-secret", fp,
                      "/O=Scepter E2E/CN=%HardwareUUID%", direct_macs, groups, &reply);
    cr_assert_eq(json_integer_value(json_object_get(reply, "queued_installs")), 8);
    char *mac_ident = xstrdup(json_string_value(json_object_get(reply, "payload_identifier")));
    json_decref(reply);

    /* iOS policy on the group: its 5 iPhones and 5 iPads. */
    json_t *none = json_array();
    json_int_t ios_policy = create_policy(&S, "iOS Wi-Fi", "ios", scep.url, "corp-secret", fp,
                                          "/O=Scepter E2E/CN=%SerialNumber%", none, groups, &reply);
    cr_assert_eq(json_integer_value(json_object_get(reply, "queued_installs")), 10);
    char *ios_ident = xstrdup(json_string_value(json_object_get(reply, "payload_identifier")));
    json_decref(reply);
    step("two policies saved");

    /* Restart scepter in the middle: queued commands must survive. */
    h_restart(&S);
    step("scepter restarted");

    /* A policy with the wrong challenge on three other iPhones. */
    json_t *bad_targets = slice(iphones, 10, 3), *nogroups = json_array();
    json_int_t bad_policy =
        create_policy(&S, "Wrong challenge", "ios", scep.url, "not-the-secret", fp,
                      "/O=Scepter E2E/CN=%SerialNumber%", bad_targets, nogroups, NULL);

    json_t *st = wait_policy(&S, mac_policy, 8, 0, 180);
    step("macOS policy installed on its 8 Macs");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(st, "installed"), i, d)
        cr_assert(in_array(macs, json_string_value(json_object_get(d, "device"))),
                  "macOS policy on a non-Mac");
    json_decref(st);
    st = wait_policy(&S, ios_policy, 10, 0, 180);
    json_array_foreach(json_object_get(st, "installed"), i, d)
    {
        const char *u = json_string_value(json_object_get(d, "device"));
        cr_assert(in_array(iphones, u) || in_array(ipads, u), "iOS policy on a Mac");
    }
    json_decref(st);
    step("iOS policy installed on its 5 iPhones and 5 iPads");
    st = wait_policy(&S, bad_policy, 0, 3, 180);
    json_array_foreach(json_object_get(st, "failed"), i, d)
    {
        char *chain = json_dumps(json_object_get(d, "error_chain"), 0);
        cr_assert(chain && strcasestr(chain, "challenge") != NULL, "the error chain says why: %s",
                  chain ? chain : "(none)");
        free(chain);
    }
    json_decref(st);
    step("wrong challenge: Error with the reason on all 3 devices");

    /* Pushes went to APNs for the targeted devices. */
    cr_assert_geq(ts_stat(ts, "received") - pushes_before, 8 + 10 + 3);

    /* Stop the devices and look at what they installed. */
    cr_assert_eq(tu_proc_stop(&sim, SIGINT, 30000), 0, "simulator exit");
    json_error_t jerr;
    json_t *report = json_load_file(state, 0, &jerr);
    cr_assert_not_null(report, "state file: %s", jerr.text);
    size_t with_mac = 0, with_ios = 0;
    json_array_foreach(json_object_get(report, "devices"), i, d)
    {
        const char *u = json_string_value(json_object_get(d, "udid"));
        json_t *profiles = json_object_get(d, "profiles");
        bool has_mac = in_array(profiles, mac_ident), has_ios = in_array(profiles, ios_ident);
        with_mac += has_mac;
        with_ios += has_ios;
        if (has_mac)
            cr_assert(in_array(macs, u), "%s got the macOS profile", u);
        if (has_ios)
            cr_assert(!in_array(macs, u), "%s (a Mac) got the iOS profile", u);
    }
    cr_assert_eq(with_mac, 8);
    cr_assert_eq(with_ios, 10);
    json_int_t notnow = json_integer_value(
        json_object_get(json_object_get(json_object_get(report, "counters"), "results"), "NotNow"));
    cr_assert_gt(notnow, 0,
                 "with --notnow-rate 0.3 some devices said NotNow, and still got "
                 "their profile later");
    step("device state agrees; NotNow answered and recovered");
    json_decref(report);

    free(mac_ident);
    free(ios_ident);
    json_decref(macs);
    json_decref(iphones);
    json_decref(ipads);
    json_decref(members);
    json_decref(direct_macs);
    json_decref(groups);
    json_decref(none);
    json_decref(bad_targets);
    json_decref(nogroups);
    h_stop(&S);
    ts_stop(ts);
    ts_scep_stop(&scep);
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
