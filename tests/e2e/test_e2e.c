/*
 * The end-to-end test: Scepter on PostgreSQL with its own SCEP CA, the HTTP/2 APNs test server,
 * and 50 simulated devices — Macs, iPhones and iPads — in a group that mixes platforms.
 *   - every device enrolls through Scepter's /scep: its enrollment profile carries a one-time
 *     challenge of its own (enroll_scep_ca), its MDM identity is issued by Scepter's CA;
 *   - an operator creates a macOS and an iOS SCEP Profiles policy that use Scepter's CA
 *     ("scep": {"scepter_ca": "default"}); exactly the right devices are pushed, fetch
 *     InstallProfile (each with its own one-time challenge and the CA's fingerprint), enroll
 *     at /scep and acknowledge; the API shows every device's status per policy;
 *   - the certificates the devices hold, and GET /v1/ca/default/certificates, carry the
 *     subject and subjectAltNames the policies asked for with the variables resolved for each
 *     device (by Scepter, and on Macs by the Mac);
 *   - a policy with a wrong challenge shows Error, with the reason, on every targeted device;
 *   - devices answering NotNow get the command later;
 *   - restarting scepter in the middle loses no command.
 * (Debian's scepserver as a customer's CA is covered by the simulator's own tests and
 * scripts/sim-scale.sh; the built-in CA against other clients by tests/integration.)
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "apns-server/harness.h"
#include "common/buf.h"
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

/* A policy on Scepter's CA: subject and SANs as given, variables left for Scepter and the
 * Mac to resolve. */
static json_int_t create_policy(struct h_server *s, const char *name, const char *platform,
                                const char *subject, const char *dns, json_t *devices,
                                json_t *groups, json_t **reply)
{
    json_t *body = json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:s,s:i,s:s,s:i,s:i,s:[s],s:{s:s,s:s,s:s}},s:{s:O,s:O}}", "name", name,
        "platform", platform, "notes", "end-to-end test", "scep", "scepter_ca", "default", "name",
        "scepter-e2e", "key_size", 2048, "subject", subject, "retries", 1, "retry_delay", 0,
        "key_usage", "signing", "subject_alt_name", "dns_name", dns, "rfc822_name",
        "%UDID%@devices.example.com", "uri", "urn:scepter:device:%UDID%", "targets", "devices",
        devices, "device_groups", groups);
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

/* A policy that names Scepter's URL itself, with a challenge of its own (a wrong one). */
static json_int_t create_static_policy(struct h_server *s, const char *name, const char *url,
                                       const char *challenge, const char *fp, json_t *devices)
{
    json_t *body =
        json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i,s:s,s:i,s:i},s:{s:O,s:[]}}", "name", name,
                  "platform", "ios", "scep", "url", url, "challenge", challenge, "fingerprint", fp,
                  "key_size", 2048, "subject", "/O=Scepter E2E/CN=%SerialNumber%", "retries", 1,
                  "retry_delay", 0, "targets", "devices", devices, "device_groups");
    char *text = json_dumps(body, 0);
    json_t *j = NULL;
    int st = h_api(s, "POST", "/v1/policies", text, &j);
    cr_assert_eq(st, 201, "%s: %d %s", name, st, j ? h_json(j) : "");
    json_int_t id = json_integer_value(json_object_get(j, "id"));
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

static X509 *load_pem(const char *path)
{
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "%s", path);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    cr_assert_not_null(x, "%s", path);
    return x;
}

/* The UTF-8 value of attribute nid in the certificate's subject ("" when absent; free()). */
static char *subject_attr(X509 *cert, int nid)
{
    const X509_NAME *n = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(n, nid, -1);
    unsigned char *utf8 = NULL;
    char *out;

    if (i < 0)
        return xstrdup("");
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
    out = len >= 0 ? xmemdup0(utf8, (size_t)len) : xstrdup("");
    OPENSSL_free(utf8);
    return out;
}

/* The subjectAltNames of one type (GEN_DNS, GEN_EMAIL, GEN_URI), comma-separated (free()). */
static char *sans_of(X509 *cert, int type)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    struct buf b = BUF_INIT;

    for (int i = 0; g && i < sk_GENERAL_NAME_num(g); i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
        if (n->type != type)
            continue;
        const ASN1_IA5STRING *v = type == GEN_DNS     ? n->d.dNSName
                                  : type == GEN_EMAIL ? n->d.rfc822Name
                                                      : n->d.uniformResourceIdentifier;
        if (b.len)
            buf_putc(&b, ',');
        buf_append(&b, ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
    }
    GENERAL_NAMES_free(g);
    return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

/* The record of certificate sha256 in the CA's list, or NULL. */
static json_t *issued_record(json_t *issued, const char *sha256)
{
    size_t i;
    json_t *c;
    json_array_foreach(issued, i, c) if (strcmp(json_string_value(json_object_get(c, "sha256")),
                                                sha256) == 0) return c;
    return NULL;
}

/*
 * The certificate device d (from the simulator's state file) holds from the profile ident:
 * issued by Scepter's CA with the subject and names the policy asked for, resolved for this
 * device, and recorded by the CA with the device's UDID.  Returns whether it has one.
 */
static bool check_device_cert(json_t *d, const char *ident, X509 *ca, bool mac, json_t *issued)
{
    const char *udid = json_string_value(json_object_get(d, "udid"));
    const char *serial = json_string_value(json_object_get(d, "serial"));
    size_t i;
    json_t *c;
    X509 *cert = NULL;

    json_array_foreach(json_object_get(d, "certificates"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "profile")), ident) != 0 ||
            !json_is_true(json_object_get(c, "identity")))
            continue;
        unsigned char *der = NULL;
        size_t len = 0;
        const char *b64 = json_string_value(json_object_get(c, "der"));
        cr_assert_eq(base64_decode(b64, strlen(b64), false, &der, &len), 0);
        const unsigned char *p = der;
        cr_assert_null(cert, "%s holds two certificates from %s", udid, ident);
        cert = d2i_X509(NULL, &p, (long)len);
        free(der);
        cr_assert_not_null(cert);
    }
    if (cert == NULL)
        return false;
    EVP_PKEY *capub = X509_get0_pubkey(ca);
    cr_assert_eq(X509_verify(cert, capub), 1, "%s: signed by Scepter's CA", udid);
    cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca)), 0);

    char *o = subject_attr(cert, NID_organizationName), *cn = subject_attr(cert, NID_commonName);
    char *dns = sans_of(cert, GEN_DNS), *email = sans_of(cert, GEN_EMAIL),
         *uri = sans_of(cert, GEN_URI);
    /* Macs: CN=%HardwareUUID% and the DNS name with %SerialNumber%, both resolved by the Mac;
     * iOS: CN=%SerialNumber%, resolved by Scepter.  %UDID% is Scepter's on both. */
    char *want_dns = xasprintf("%s.%s.example.com", serial, mac ? "macs" : "ios");
    char *want_email = xasprintf("%s@devices.example.com", udid);
    char *want_uri = xasprintf("urn:scepter:device:%s", udid);
    cr_assert_str_eq(o, "Scepter E2E");
    cr_assert_str_eq(cn, mac ? udid : serial, "%s: CN", udid);
    cr_assert_str_eq(dns, want_dns, "%s: DNS", udid);
    cr_assert_str_eq(email, want_email, "%s: RFC 822 name", udid);
    cr_assert_str_eq(uri, want_uri, "%s: URI", udid);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    X509_digest(cert, EVP_sha256(), md, &mdlen);
    hex_encode_to(md, mdlen, hex, false);
    json_t *rec = issued_record(issued, hex);
    cr_assert_not_null(rec, "%s: GET /v1/ca/default/certificates lists its certificate", udid);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "udid")), udid,
                     "the one-time challenge recorded the device");
    cr_assert_not_null(strstr(json_string_value(json_object_get(rec, "subject")), cn));
    cr_assert_not_null(strstr(json_string_value(json_object_get(rec, "sans")), want_uri));
    free(want_dns);
    free(want_email);
    free(want_uri);
    free(o);
    free(cn);
    free(dns);
    free(email);
    free(uri);
    X509_free(cert);
    return true;
}

Test(e2e, fifty_devices_enroll_and_get_certificates_from_scepters_ca, .disabled = false)
{
    struct h_server S;
    struct ts_server *ts;
    char fp[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *out = NULL;

    t0 = time(NULL);
    /* Scepter's own CA, made the way an operator makes one. */
    char *work = tu_tmpdir(), *scepter_bin = tu_binary_path("mdm/scepter");
    cr_assert_eq(tu_sh(&out, "%s ca init --out %s/ca --bits 2048 --cn 'Scepter E2E CA' 2>&1",
                       scepter_bin, work),
                 0, "%s", out);
    free(out);
    char *ca_pem = xasprintf("%s/ca/ca.pem", work);
    X509 *ca = load_pem(ca_pem);
    X509_digest(ca, EVP_sha256(), md, &mdlen);
    hex_encode_to(md, mdlen, fp, false);

    /* APNs. */
    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *targs[] = {"--client-ca", pushca, "--max-lifetime", "900", NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts);
    char *topic = ts_pki_text("topic");
    step("apns-test-server up");

    /* Scepter: device identities from its own CA through /scep (a one-time challenge per
     * enrollment profile), re-push every 2 s. */
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 50\n"
                            "repush_interval = 2\nlog_level = info\n"
                            "scep_ca_cert_file = %s/ca/ca.pem\nscep_ca_key_file = %s/ca/ca.key\n"
                            "device_ca_file = %s/ca/ca.pem\ndevice_ca_key_file =\n"
                            "enroll_scep_ca = default\n"
                            /* 50 devices from one address: a load, not an abuse. */
                            "enroll_rate_limit = 0\nscep_rate_limit = 0\n",
                            ts->port, apns_ca, cert, key, work, work, work);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    step("scepter up");

    /* The CA the API describes is the one on disk. */
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "GET", "/v1/ca", NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "cas"), 0),
                                                       "ca_fingerprint_sha256")),
                     fp);
    json_decref(j);

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
    step("50 devices enrolled through Scepter's /scep");
    /* Their identities: 50 PKCSReqs, each with its enrollment profile's one-time challenge. */
    cr_assert_eq(h_api(&S, "GET", "/v1/ca/default/certificates?limit=1000", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "certificates")), NDEV, "%s", h_json(j));
    json_decref(j);

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
    /* The devices go offline while the policies are saved and scepter restarts: /scep, where
     * they enroll, restarts with it, and a device cannot install a profile whose SCEP server
     * is down (the commands, queued before the restart, must reach them after it). */
    cr_assert_eq(kill(sim.pid, SIGSTOP), 0);

    /* macOS policy: the group (5 Macs reached, its iPhones and iPads not) + 3 Macs directly.
     * %HardwareUUID% and %SerialNumber% are the Mac's to resolve, %UDID% Scepter's. */
    json_t *direct_macs = slice(macs, 5, 3), *groups = json_pack("[s]", "Mixed Lab");
    json_t *reply = NULL;
    json_int_t mac_policy =
        create_policy(&S, "Mac Wi-Fi", "macos", "/O=Scepter E2E/CN=%HardwareUUID%",
                      "%SerialNumber%.macs.example.com", direct_macs, groups, &reply);
    cr_assert_eq(json_integer_value(json_object_get(reply, "queued_installs")), 8, "%s",
                 h_json(reply));
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(reply, "scep"), "fingerprint")), fp,
        "the profile's CAFingerprint is the CA's SHA-256");
    char *mac_ident = xstrdup(json_string_value(json_object_get(reply, "payload_identifier")));
    json_decref(reply);

    /* iOS policy on the group: its 5 iPhones and 5 iPads; iOS resolves no variable, Scepter
     * does. */
    json_t *none = json_array();
    json_int_t ios_policy =
        create_policy(&S, "iOS Wi-Fi", "ios", "/O=Scepter E2E/CN=%SerialNumber%",
                      "%SerialNumber%.ios.example.com", none, groups, &reply);
    cr_assert_eq(json_integer_value(json_object_get(reply, "queued_installs")), 10);
    char *ios_ident = xstrdup(json_string_value(json_object_get(reply, "payload_identifier")));
    json_decref(reply);
    step("two policies on Scepter's CA saved");

    /* Restart scepter in the middle: queued commands (and their challenges) survive. */
    h_restart(&S);
    step("scepter restarted");

    /* A policy with a wrong challenge of its own on three other iPhones. */
    json_t *bad_targets = slice(iphones, 10, 3);
    char *scep_url = xasprintf("https://127.0.0.1:%d/scep", S.port);
    json_int_t bad_policy =
        create_static_policy(&S, "Wrong challenge", scep_url, "not-the-secret", fp, bad_targets);
    cr_assert_eq(kill(sim.pid, SIGCONT), 0);
    step("devices back online");

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

    /* Stop the devices and look at what they installed and hold. */
    cr_assert_eq(tu_proc_stop(&sim, SIGINT, 30000), 0, "simulator exit");
    json_error_t jerr;
    json_t *report = json_load_file(state, 0, &jerr);
    cr_assert_not_null(report, "state file: %s", jerr.text);
    json_t *issued = NULL;
    cr_assert_eq(h_api(&S, "GET", "/v1/ca/default/certificates?limit=1000", NULL, &issued), 200);
    cr_assert_eq(json_array_size(json_object_get(issued, "certificates")), NDEV + 8 + 10,
                 "identities, 8 Mac and 10 iOS policy certificates; nothing for the wrong "
                 "challenge");
    size_t with_mac = 0, with_ios = 0;
    json_array_foreach(json_object_get(report, "devices"), i, d)
    {
        const char *u = json_string_value(json_object_get(d, "udid"));
        json_t *profiles = json_object_get(d, "profiles");
        bool has_mac = in_array(profiles, mac_ident), has_ios = in_array(profiles, ios_ident);
        with_mac += has_mac;
        with_ios += has_ios;
        if (has_mac) {
            cr_assert(in_array(macs, u), "%s got the macOS profile", u);
            cr_assert(
                check_device_cert(d, mac_ident, ca, true, json_object_get(issued, "certificates")),
                "%s holds no certificate from the macOS policy", u);
        }
        if (has_ios) {
            cr_assert(!in_array(macs, u), "%s (a Mac) got the iOS profile", u);
            cr_assert(
                check_device_cert(d, ios_ident, ca, false, json_object_get(issued, "certificates")),
                "%s holds no certificate from the iOS policy", u);
        }
    }
    cr_assert_eq(with_mac, 8);
    cr_assert_eq(with_ios, 10);
    step("every device holds the subject and names its policy asked for, resolved for it");
    json_int_t notnow = json_integer_value(
        json_object_get(json_object_get(json_object_get(report, "counters"), "results"), "NotNow"));
    cr_assert_gt(notnow, 0,
                 "with --notnow-rate 0.3 some devices said NotNow, and still got "
                 "their profile later");
    step("device state agrees; NotNow answered and recovered");
    json_decref(report);
    json_decref(issued);

    free(mac_ident);
    free(ios_ident);
    free(scep_url);
    json_decref(macs);
    json_decref(iphones);
    json_decref(ipads);
    json_decref(members);
    json_decref(direct_macs);
    json_decref(groups);
    json_decref(none);
    json_decref(bad_targets);
    h_stop(&S);
    ts_stop(ts);
    X509_free(ca);
    free(ca_pem);
    tu_rmtree(work);
    free(work);
    free(scepter_bin);
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
