/*
 * Security over HTTPS, on both stores: the device takeover (a fresh identity from the device
 * CA authenticating as an enrolled device's UDID) is refused and changes nothing; the ways a
 * real re-enrollment goes through (CheckOut, operator removal, an operator's window,
 * reenroll = allow); revocation by fingerprint on every worker and by CRL; the enrollment
 * profile's gate (secret rotated on SIGHUP, counted tokens, the per-address limit); the
 * SQLite file's mode; whole API keys; a repeated proxy identity header; the connection limit
 * and the whole-request deadline.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

static bool is_unrecognized(const struct tu_http_resp *r)
{
    return r->status == 403 && r->body_len &&
           strstr((const char *)r->body, "com.apple.unrecognized.device") != NULL;
}

static void sha256_of(const struct tu_cert *c, char out[CRYPTO_SHA256_HEX_LEN])
{
    crypto_cert_sha256_hex(c->cert, out);
}

static bool log_contains(const struct h_server *s, const char *needle)
{
    char *log = tu_proc_log(&s->proc);
    bool found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

/* Wait (bounded) until the log shows a reload after `count` earlier ones. */
static void wait_reload(const struct h_server *s, int count)
{
    for (int i = 0; i < 100; i++) {
        char *log = tu_proc_log(&s->proc);
        int n = 0;
        for (const char *p = log; (p = strstr(p, " reload log_level=")) != NULL; p++)
            n++;
        free(log);
        if (n > count)
            return;
        usleep(100000);
    }
    cr_assert_fail("no reload in the log");
}

static int get_status(struct h_server *s, const struct tu_cert *id, const char *body)
{
    struct tu_http_resp r;
    int st;

    cr_assert_eq(h_checkin(s, id, body, &r), 0);
    st = is_unrecognized(&r) ? -403 : r.status;
    tu_http_resp_free(&r);
    return st;
}

static int idle_status(struct h_server *s, const struct tu_cert *id, const char *udid,
                       char **command)
{
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    int st;

    cr_assert_eq(h_connect(s, id, idle, &r), 0);
    st = is_unrecognized(&r) ? -403 : r.status;
    if (command)
        *command = r.body_len ? xstrndup((const char *)r.body, r.body_len) : NULL;
    tu_http_resp_free(&r);
    free(idle);
    return st;
}

static char *queue_device_info(struct h_server *s, const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands", udid);
    cr_assert_eq(h_api(s, "POST", path,
                       "{\"command\":{\"request_type\":\"DeviceInformation\"},\"push\":false}", &j),
                 201, "%s", h_json(j));
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    free(path);
    return uuid;
}

static char *authenticate_body(struct h_server *s, const char *udid)
{
    return h_plist("MessageType", "Authenticate", "Topic", s->topic, "UDID", udid, "ProductName",
                   "MacBookPro18,3", "SerialNumber", "C02TAKEOVER", NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The takeover                                                                              */

Test(security, a_fresh_identity_cannot_take_over_an_enrolled_device)
{
    struct h_server S;
    struct h_opts o = {.extra = "enroll_open = false\nenroll_secret = s3cret-enrollment\n"};
    h_start(&S, &o);
    struct tu_cert victim = h_device_cert(&S, "victim"), attacker = h_device_cert(&S, "attacker");
    char vh[CRYPTO_SHA256_HEX_LEN], ah[CRYPTO_SHA256_HEX_LEN];
    struct tu_http_resp r;
    json_t *j = NULL;

    sha256_of(&victim, vh);
    sha256_of(&attacker, ah);
    h_enroll(&S, &victim, "VICTIM-MAC", "MacBookPro18,3");
    char *bt = h_plist("MessageType", "SetBootstrapToken", "UDID", "VICTIM-MAC", "BootstrapToken",
                       "data:the-victims-bootstrap-token", NULL);
    cr_assert_eq(get_status(&S, &victim, bt), 200);
    char *uuid = queue_device_info(&S, "VICTIM-MAC");

    /* Without the secret, /mdm/enroll hands out no identity. */
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);

    /* The attacker holds an identity from the device CA anyway (an insider, a leaked
     * profile) and authenticates as the victim, over mTLS and with Mdm-Signature. */
    char *auth = authenticate_body(&S, "VICTIM-MAC");
    cr_assert_eq(get_status(&S, &attacker, auth), 403, "takeover by Authenticate");
    cr_assert_eq(h_device_put(&S, &attacker, H_SIGNATURE, "/mdm/checkin",
                              "application/x-apple-aspen-mdm-checkin", auth, strlen(auth), &r),
                 0);
    cr_assert_eq(r.status, 403, "takeover with Mdm-Signature: %d", r.status);
    cr_assert_not(is_unrecognized(&r));
    tu_http_resp_free(&r);
    /* Everything else it tries is refused too. */
    char *get_bt = h_plist("MessageType", "GetBootstrapToken", "UDID", "VICTIM-MAC", NULL);
    cr_assert_eq(get_status(&S, &attacker, get_bt), 403);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "VICTIM-MAC",
                        "Token", "data:attacker-token", "PushMagic", "attacker-magic", NULL);
    cr_assert_eq(get_status(&S, &attacker, tok), 403);
    cr_assert_eq(idle_status(&S, &attacker, "VICTIM-MAC", NULL), 403);
    char *ack = h_plist("Status", "Acknowledged", "UDID", "VICTIM-MAC", "CommandUUID", uuid, NULL);
    cr_assert_eq(h_connect(&S, &attacker, ack, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);

    /* The victim noticed nothing: same enrollment, same queue, same bootstrap token. */
    char *cmd = NULL;
    cr_assert_eq(idle_status(&S, &victim, "VICTIM-MAC", &cmd), 200);
    cr_assert(cmd && strstr(cmd, uuid) != NULL, "the victim's command is still queued: %s",
              cmd ? cmd : "(empty)");
    free(cmd);
    cr_assert_eq(h_checkin(&S, &victim, get_bt, &r), 0);
    cr_assert_eq(r.status, 200);
    char *b64 = base64_encode("the-victims-bootstrap-token", 27);
    cr_assert(strstr((char *)r.body, b64) != NULL, "bootstrap token kept: %s", r.body);
    free(b64);
    tu_http_resp_free(&r);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/VICTIM-MAC", NULL, &j), 200);
    cr_assert(json_is_true(json_object_get(j, "enrolled")), "%s", h_json(j));
    cr_assert_eq(json_array_size(json_object_get(j, "certificates")), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "certificates"), 0)), vh);
    json_decref(j);

    /* The operator sees it: an event with both fingerprints, a counter, a log line. */
    cr_assert_eq(h_api(&S, "GET", "/v1/events?udid=VICTIM-MAC&kind=mdm.ReenrollRefused", NULL, &j),
                 200);
    json_t *ev = json_object_get(j, "events");
    cr_assert_eq(json_array_size(ev), 2, "%s", h_json(j));
    json_t *d = json_object_get(json_array_get(ev, 0), "detail");
    cr_assert_str_eq(json_string_value(json_object_get(d, "presented_cert_sha256")), ah);
    cr_assert_str_eq(json_string_value(json_object_get(d, "bound_cert_sha256")), vh);
    json_decref(j);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "scepter_security_events_total{event=\"reenroll_refused\"} 2"),
              "%s", r.body);
    tu_http_resp_free(&r);
    cr_assert(log_contains(&S, "reenroll_refused"));

    free(ack);
    free(tok);
    free(get_bt);
    free(auth);
    free(bt);
    free(uuid);
    tu_cert_free(&victim);
    tu_cert_free(&attacker);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* Legitimate re-enrollments                                                                 */

Test(security, checkout_removal_window_and_reload_let_a_new_identity_in)
{
    struct h_server S;
    h_start(&S, NULL);
    struct tu_cert c1 = h_device_cert(&S, "wiped-1"), c2 = h_device_cert(&S, "wiped-2"),
                   c3 = h_device_cert(&S, "wiped-3"), c4 = h_device_cert(&S, "wiped-4"),
                   c5 = h_device_cert(&S, "wiped-5");
    char *auth = authenticate_body(&S, "WIPED");
    json_t *j = NULL;

    h_enroll(&S, &c1, "WIPED", "MacBookPro18,3");
    char *bt = h_plist("MessageType", "SetBootstrapToken", "UDID", "WIPED", "BootstrapToken",
                       "data:old-bootstrap", NULL);
    cr_assert_eq(get_status(&S, &c1, bt), 200);
    char *stale = queue_device_info(&S, "WIPED");

    /* 1. The device checks out (its MDM profile was removed) and enrolls again. */
    char *co = h_plist("MessageType", "CheckOut", "UDID", "WIPED", NULL);
    cr_assert_eq(get_status(&S, &c1, co), 200);
    h_enroll(&S, &c2, "WIPED", "MacBookPro18,3");
    cr_assert_eq(idle_status(&S, &c2, "WIPED", NULL), 200, "a clean queue");
    cr_assert_eq(idle_status(&S, &c1, "WIPED", NULL), 403, "the old identity is revoked");
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/WIPED", NULL, &j), 200);
    cr_assert(json_is_false(json_object_get(j, "bootstrap_token")),
              "a new identity inherits no bootstrap token: %s", h_json(j));
    json_decref(j);

    /* 2. Enrolled with c2, a wipe without CheckOut is refused ... */
    cr_assert_eq(get_status(&S, &c3, auth), 403);
    /* ... until an operator allows it, once. */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/WIPED/reenroll", "{\"for\":\"10m\"}", &j), 200,
                 "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/WIPED/reenroll", "{\"for\":\"30d\"}", &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "for");
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/NOBODY/reenroll", NULL, NULL), 404);
    h_enroll(&S, &c3, "WIPED", "MacBookPro18,3");
    cr_assert_eq(get_status(&S, &c4, auth), 403, "the window closed with the re-enrollment");

    /* 3. An operator removes the device: revoked, wiped, and it may come back. */
    char *u = queue_device_info(&S, "WIPED");
    cr_assert_eq(h_api(&S, "DELETE", "/v1/devices/WIPED", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "certificates_revoked")), 1, "%s",
                 h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "commands_cancelled")), 1);
    json_decref(j);
    cr_assert_eq(idle_status(&S, &c3, "WIPED", NULL), 403);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/WIPED/commands/", NULL, NULL), 200);
    h_enroll(&S, &c4, "WIPED", "MacBookPro18,3");
    cr_assert_eq(h_api(&S, "DELETE", "/v1/devices/NOBODY", NULL, NULL), 404);

    /* 4. reenroll = allow, applied by SIGHUP. */
    cr_assert_eq(get_status(&S, &c5, auth), 403);
    h_conf_append(&S, "reenroll = allow\n");
    kill(S.proc.pid, SIGHUP);
    wait_reload(&S, 0);
    cr_assert(log_contains(&S, "reenroll = allow"), "the unsafe setting is warned about");
    h_enroll(&S, &c5, "WIPED", "MacBookPro18,3");

    cr_assert_eq(h_api(&S, "GET", "/v1/events?udid=WIPED&kind=mdm.Reenrolled", NULL, &j), 200);
    /* After CheckOut, by the window, by the configuration; after the removal the device had
     * no certificate left to replace. */
    cr_assert_eq(json_array_size(json_object_get(j, "events")), 3, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/revocations?udid=WIPED", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "revocations")), 4, "%s", h_json(j));
    json_decref(j);

    free(u);
    free(co);
    free(stale);
    free(bt);
    free(auth);
    tu_cert_free(&c1);
    tu_cert_free(&c2);
    tu_cert_free(&c3);
    tu_cert_free(&c4);
    tu_cert_free(&c5);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* Revocation                                                                                */

Test(security, a_revoked_certificate_is_refused_on_every_worker)
{
    struct h_server S;
    struct h_opts o = {.extra = "workers = 4\n"};
    h_start(&S, &o);
    struct tu_cert id = h_device_cert(&S, "revoke-me");
    char h[CRYPTO_SHA256_HEX_LEN];
    json_t *j = NULL;

    sha256_of(&id, h);
    h_enroll(&S, &id, "REVOKED", "iPhone14,2");
    /* Every worker verifies (and caches) the identity: a new connection per poll. */
    for (int i = 0; i < 24; i++)
        cr_assert_eq(idle_status(&S, &id, "REVOKED", NULL), 200);
    char *path = xasprintf("/v1/certificates/%s/revoke", h);
    cr_assert_eq(h_api(&S, "POST", path, "{\"reason\":\"lost phone\"}", &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "udid")), "REVOKED");
    json_decref(j);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(idle_status(&S, &id, "REVOKED", NULL), 403, "poll %d after revocation", i);
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "REVOKED",
                         "ProductName", "iPhone14,2", NULL);
    cr_assert_eq(get_status(&S, &id, auth), 403, "a revoked certificate cannot enroll again");
    cr_assert_eq(h_api(&S, "POST", path, NULL, &j), 200);
    cr_assert(json_is_true(json_object_get(j, "already_revoked")));
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/certificates/not-a-hash/revoke", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "sha256");
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/events?kind=certificate.revoked", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "events")), 1, "%s", h_json(j));
    json_decref(j);
    free(auth);
    free(path);
    tu_cert_free(&id);
    h_stop(&S);
}

/* A CRL of the device CA listing `revoked` (none when NULL), written to path. */
static void write_crl(struct h_server *s, const struct tu_cert *revoked, const char *path)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL) - 60);
    ASN1_TIME *next = ASN1_TIME_set(NULL, time(NULL) + 86400);

    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(s->dev_ca.cert));
    X509_CRL_set1_lastUpdate(crl, now);
    X509_CRL_set1_nextUpdate(crl, next);
    if (revoked) {
        X509_REVOKED *r = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked->cert));
        X509_REVOKED_set_revocationDate(r, now);
        X509_CRL_add0_revoked(crl, r);
    }
    cr_assert(X509_CRL_sign(crl, s->dev_ca.key, EVP_sha256()) > 0);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    PEM_write_X509_CRL(fp, crl);
    fclose(fp);
    X509_CRL_free(crl);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
}

Test(security, the_device_ca_crl_is_checked_and_reloaded_on_sighup)
{
    struct h_server S;
    char *crl = NULL, *line;

    h_start(&S, NULL);
    crl = xasprintf("%s/device-ca.crl", S.dir);
    struct tu_cert bad = h_device_cert(&S, "crl-bad"), good = h_device_cert(&S, "crl-good");
    h_enroll(&S, &bad, "CRL-BAD", "iPad13,4");
    h_enroll(&S, &good, "CRL-GOOD", "iPad13,4");
    cr_assert_eq(idle_status(&S, &bad, "CRL-BAD", NULL), 200);

    write_crl(&S, &bad, crl);
    line = xasprintf("device_ca_crl_file = %s\n", crl);
    h_conf_append(&S, line);
    kill(S.proc.pid, SIGHUP);
    wait_reload(&S, 0);
    cr_assert_eq(idle_status(&S, &bad, "CRL-BAD", NULL), 403, "listed in the CRL");
    cr_assert_eq(idle_status(&S, &good, "CRL-GOOD", NULL), 200);
    /* A new CRL without it, reloaded: accepted again. */
    write_crl(&S, NULL, crl);
    kill(S.proc.pid, SIGHUP);
    wait_reload(&S, 1);
    cr_assert_eq(idle_status(&S, &bad, "CRL-BAD", NULL), 200);
    free(line);
    free(crl);
    tu_cert_free(&bad);
    tu_cert_free(&good);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* The enrollment profile's gate                                                             */

/* The status of GET /mdm/enroll<query>.  A 503 (the key pool is refilling) is retried after
 * a pause, as a client honouring Retry-After would (bounded). */
static int enroll_status(struct h_server *s, const char *query)
{
    struct tu_http_resp r;
    char *path = xasprintf("/mdm/enroll%s", query);
    int st = 0;

    for (int i = 0; i < 50; i++) {
        cr_assert_eq(tu_http(s->port, true, NULL, NULL, "GET", path, NULL, NULL, 0, &r), 0);
        st = r.status;
        tu_http_resp_free(&r);
        if (st != 503)
            break;
        usleep(200000);
    }
    free(path);
    return st;
}

Test(security, sighup_rotates_the_enrollment_secret)
{
    struct h_server S;
    struct h_opts o = {.extra = "enroll_open = false\nenroll_secret = first-secret\n"};
    h_start(&S, &o);
    cr_assert_eq(enroll_status(&S, ""), 403);
    cr_assert_eq(enroll_status(&S, "?secret=first-secret"), 200);
    h_conf_append(&S, "enroll_secret = second-secret\n");
    kill(S.proc.pid, SIGHUP);
    wait_reload(&S, 0);
    cr_assert_eq(enroll_status(&S, "?secret=first-secret"), 403, "the rotated secret is dead");
    cr_assert_eq(enroll_status(&S, "?secret=second-secret"), 200);
    /* A reload that would leave the identity ungated is refused; the running one stays. */
    h_conf_append(&S, "enroll_secret =\n");
    kill(S.proc.pid, SIGHUP);
    for (int i = 0; i < 50 && !log_contains(&S, "not reloaded"); i++)
        usleep(100000);
    cr_assert(log_contains(&S, "not reloaded"));
    cr_assert_eq(enroll_status(&S, ""), 403);
    cr_assert_eq(enroll_status(&S, "?secret=second-secret"), 200);
    h_stop(&S);
}

Test(security, enrollment_tokens_are_counted_and_downloads_rate_limited)
{
    struct h_server S;
    struct h_opts o = {.extra = "enroll_open = false\nenroll_tokens = true\n"
                                "enroll_rate_limit = 6\nenroll_key_pool = 6\n"};
    json_t *j = NULL;

    h_start(&S, &o);
    cr_assert_eq(enroll_status(&S, ""), 403);
    cr_assert_eq(h_api(&S, "POST", "/v1/enrollment-tokens",
                       "{\"uses\":2,\"expires_in\":\"1d\",\"note\":\"lab\"}", &j),
                 201, "%s", h_json(j));
    char *q = xasprintf("?token=%s", json_string_value(json_object_get(j, "token")));
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    cr_assert_eq(enroll_status(&S, q), 200);
    cr_assert_eq(enroll_status(&S, q), 200);
    cr_assert_eq(enroll_status(&S, q), 403, "used up");
    cr_assert_eq(enroll_status(&S, "?token=set_guessed"), 403);
    cr_assert_eq(h_api(&S, "GET", "/v1/enrollment-tokens", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(j, "enrollment_tokens"), 0), "used")),
                 2, "%s", h_json(j));
    cr_assert_null(strstr(h_json(j), q + 7), "the token is never listed");
    json_decref(j);
    int st = h_api(&S, "POST", "/v1/enrollment-tokens", "{\"uses\":-1}", &j);
    cr_assert_eq(st, 400, "%d %s", st, h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "uses");
    json_decref(j);
    /* Per-address limit: 6 requests a minute, refused ones included (5 were made above). */
    cr_assert_eq(h_api(&S, "POST", "/v1/enrollment-tokens", "{\"uses\":0}", &j), 201);
    char *q2 = xasprintf("?token=%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    cr_assert_eq(enroll_status(&S, q2), 200);
    cr_assert_eq(enroll_status(&S, q2), 429);
    char *del = xasprintf("/v1/enrollment-tokens/%lld", (long long)id);
    cr_assert_eq(h_api(&S, "DELETE", del, NULL, NULL), 200);
    cr_assert_eq(h_api(&S, "DELETE", del, NULL, NULL), 404);
    free(del);
    free(q2);
    free(q);
    h_stop(&S);
}

Test(security, an_ungated_identity_profile_refuses_to_start)
{
    char *dir = tu_tmpdir(), *out = NULL;
    char *bin = tu_binary_path("mdm/scepter");
    struct tu_cert_opts ca = {.cn = "CA", .not_after = 86400};
    struct tu_cert c = tu_ca_new(&ca);
    char *pem = xasprintf("%s/ca.pem", dir), *key = xasprintf("%s/ca.key", dir);

    tu_cert_write(&c, pem, key);
    int rc = tu_sh(&out,
                   "%s config --device-ca-file=%s --device-ca-key-file=%s --store=sqlite:%s/db "
                   "2>&1",
                   bin, pem, key, dir);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "enroll_secret") && strstr(out, "enroll_open"), "%s", out);
    free(out);
    rc = tu_sh(&out,
               "%s config --device-ca-file=%s --device-ca-key-file=%s --enroll-tokens=true "
               "--store=sqlite:%s/db 2>&1",
               bin, pem, key, dir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    /* A bootstrap API key outside 16..1024 characters is refused too. */
    rc = tu_sh(&out, "%s config --api-key=short 2>&1", bin);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "api_key") != NULL, "%s", out);
    free(out);
    tu_cert_free(&c);
    tu_rmtree(dir);
    free(dir);
    free(pem);
    free(key);
    free(bin);
}

/* ---------------------------------------------------------------------------------------- */
/* The rest                                                                                  */

Test(security, the_sqlite_database_is_private)
{
    struct h_server S;
    struct stat st;

    h_start(&S, NULL);
    if (strcmp(S.backend, "sqlite") != 0) {
        h_stop(&S);
        cr_skip_test("SQLite only");
    }
    struct tu_cert id = h_device_cert(&S, "mode");
    h_enroll(&S, &id, "MODE", "iPhone14,2");
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char *f = xasprintf("%s/scepter.db%s", S.dir, suffix[i]);
        cr_assert_eq(stat(f, &st), 0, "%s", f);
        cr_assert_eq(st.st_mode & 077, 0, "%s is mode %o", f, (unsigned)(st.st_mode & 0777));
        free(f);
    }
    tu_cert_free(&id);
    h_stop(&S);
}

Test(security, long_api_keys_are_compared_whole)
{
    struct h_server S;
    char key[301], prefix[256], *extra, *hdr;
    struct tu_http_resp r;

    memset(key, 'k', 300);
    key[300] = '\0';
    memcpy(key + 250, "0123456789", 10);
    memcpy(prefix, key, 255);
    prefix[255] = '\0';
    /* Too long for a line of the INI file: through the environment, as Docker secrets do. */
    extra = xasprintf("SCEPTER_API_KEY=%s", key);
    struct h_opts o = {.env = extra};
    h_start(&S, &o);
    hdr = xasprintf("Authorization: Bearer %s\r\n", prefix);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices", hdr, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401, "the first 255 characters are not the key");
    tu_http_resp_free(&r);
    free(hdr);
    hdr = xasprintf("Authorization: Bearer %s\r\n", key);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices", hdr, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(hdr);
    free(extra);
    h_stop(&S);
}

Test(security, a_repeated_proxy_identity_header_is_refused)
{
    struct h_server S;
    struct h_opts o = {.identity = "header",
                       .plain_http = true,
                       .extra = "trusted_proxy_header = Client-Cert\n"
                                "trusted_proxy_addrs = 127.0.0.1\n"};
    h_start(&S, &o);
    struct tu_cert id = h_device_cert(&S, "proxied"), other = h_device_cert(&S, "other");
    unsigned char *der = NULL, *der2 = NULL;
    int len = i2d_X509(id.cert, &der), len2 = i2d_X509(other.cert, &der2);
    char *b64 = base64_encode(der, (size_t)len), *b64b = base64_encode(der2, (size_t)len2);
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "PROXIED",
                         "ProductName", "iPhone14,2", NULL);
    char *one = xasprintf("Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
                          "Client-Cert: :%s:\r\n",
                          b64);
    char *two = xasprintf("Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
                          "Client-Cert: :%s:\r\nClient-Cert: :%s:\r\n",
                          b64b, b64);
    struct tu_http_resp r;

    cr_assert_eq(
        tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/checkin", two, auth, strlen(auth), &r),
        0);
    cr_assert_eq(r.status, 403, "two copies of the identity header: %d", r.status);
    tu_http_resp_free(&r);
    cr_assert_eq(
        tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/checkin", one, auth, strlen(auth), &r),
        0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(one);
    free(two);
    free(auth);
    free(b64);
    free(b64b);
    OPENSSL_free(der);
    OPENSSL_free(der2);
    tu_cert_free(&id);
    tu_cert_free(&other);
    h_stop(&S);
}

Test(security, proxy_headers_from_loopback_are_not_trusted_by_default)
{
    struct h_server S;
    struct h_opts o = {
        .identity = "header", .plain_http = true, .extra = "trusted_proxy_header = Client-Cert\n"};
    h_start(&S, &o);
    struct tu_cert id = h_device_cert(&S, "loop");
    unsigned char *der = NULL;
    int len = i2d_X509(id.cert, &der);
    char *b64 = base64_encode(der, (size_t)len);
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "LOOP",
                         "ProductName", "iPhone14,2", NULL);
    char *hdr = xasprintf("Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
                          "Client-Cert: :%s:\r\n",
                          b64);
    struct tu_http_resp r;

    cr_assert_eq(
        tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/checkin", hdr, auth, strlen(auth), &r),
        0);
    cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(hdr);
    free(auth);
    free(b64);
    OPENSSL_free(der);
    tu_cert_free(&id);
    h_stop(&S);
}

Test(security, connections_over_the_limit_are_refused_and_slow_requests_cut)
{
    struct h_server S;
    struct h_opts o = {.extra = "workers = 1\nmax_connections = 16\nrequest_timeout = 2\n"};
    struct tu_http_conn *held[16];
    struct tu_http_resp r;

    h_start(&S, &o);
    struct tu_cert id = h_device_cert(&S, "busy");
    h_enroll(&S, &id, "BUSY", "iPhone14,2");
    for (int i = 0; i < 16; i++) {
        held[i] = tu_http_connect(S.port, true, NULL, NULL);
        cr_assert_not_null(held[i], "connection %d within the limit", i);
    }
    struct tu_http_conn *over = tu_http_connect(S.port, true, NULL, NULL);
    cr_assert_null(over, "the 17th connection is refused at the handshake");
    for (int i = 0; i < 16; i++)
        tu_http_close(held[i]);
    usleep(200000);
    cr_assert_eq(idle_status(&S, &id, "BUSY", NULL), 200, "served again once connections close");

    /* A client trickling its request one byte at a time is cut at the deadline, while another
     * device is served meanwhile. */
    struct tu_http_conn *slow = tu_http_connect(S.port, true, NULL, NULL);
    cr_assert_not_null(slow);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool cut = false;
    for (size_t i = 0; i < strlen(req) && !cut; i++) {
        if (tu_http_send_raw(slow, req + i, 1) != 0)
            cut = true;
        if (i == 3)
            cr_assert_eq(idle_status(&S, &id, "BUSY", NULL), 200);
        usleep(250000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 8)
            break;
    }
    if (!cut)
        cut = tu_http_read(slow, &r) != 0 || r.status == 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert(cut, "the slow client was not cut");
    cr_assert_leq(t1.tv_sec - t0.tv_sec, 6, "cut after %lds", (long)(t1.tv_sec - t0.tv_sec));
    tu_http_close(slow);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "scepter_connections_refused_total 1"), "%s", r.body);
    cr_assert_null(strstr((char *)r.body, "scepter_connections_timed_out_total 0"), "%s", r.body);
    tu_http_resp_free(&r);
    tu_cert_free(&id);
    h_stop(&S);
}
