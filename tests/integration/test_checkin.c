/*
 * The MDM server end to end over real HTTPS: enrollment, check-in messages, the command
 * exchange, device identity (mTLS and Mdm-Signature) and every bad input, on the store
 * backend named by SCEPTER_TEST_STORE (ctest runs this file once per backend).
 * Device bodies are real plists from NanoMDM's test data (tests/data/device-plists/).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "profiles/profiles.h"
#include "support/support.h"

#define UDID2 "66ADE930-5FDF-5EC4-8429-15640684C489"

static struct h_server S;

static void setup(void)
{
    h_start(&S, NULL);
}

static void teardown(void)
{
    h_stop(&S);
}

TestSuite(checkin, .init = setup, .fini = teardown);

static char *fixture(const char *name)
{
    char *rel = xasprintf("device-plists/%s", name);
    char *data = (char *)tu_read_data(rel, NULL);
    free(rel);
    return data;
}

static bool is_unrecognized(const struct tu_http_resp *r)
{
    return r->status == 403 && r->body &&
           strstr((const char *)r->body, "com.apple.unrecognized.device") != NULL;
}

/* Queue a DeviceInformation command through the API; returns its UUID (caller frees). */
static char *queue_device_info(const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands", udid);
    int st = h_api(&S, "POST", path,
                   "{\"command\":{\"request_type\":\"DeviceInformation\",\"queries\":"
                   "[\"DeviceName\",\"OSVersion\"]},\"push\":false}",
                   &j);
    cr_assert_eq(st, 201, "enqueue: %d %s", st, j ? h_json(j) : "");
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    free(path);
    return uuid;
}

Test(checkin, real_device_plists_enroll_and_fetch_a_command)
{
    struct tu_cert id = h_device_cert(&S, UDID2);
    struct tu_http_resp r;
    char *auth = fixture("Authenticate.2.plist"), *tok = fixture("TokenUpdate.2.plist");

    cr_assert_eq(h_checkin(&S, &id, auth, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    cr_assert_eq(r.body_len, 0, "Authenticate answers an empty body");
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(&S, &id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    cr_assert_eq(r.body_len, 0);
    tu_http_resp_free(&r);

    /* Empty queue: 200 with a zero-byte body. */
    char *idle = h_plist("Status", "Idle", "UDID", UDID2, NULL);
    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0, "no command: zero bytes, not an empty plist");
    tu_http_resp_free(&r);

    /* A queued command comes back as {CommandUUID, Command}. */
    char *uuid = queue_device_info(UDID2);
    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert_eq(r.status, 200);
    plist_t d = NULL;
    struct scepter_error err;
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
    const char *got = NULL, *type = NULL;
    plist_t cmd = NULL;
    cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &got, &err), 0);
    cr_assert_str_eq(got, uuid);
    cr_assert_eq(plistx_get_dict(d, "Command", true, &cmd, &err), 0);
    cr_assert_eq(plistx_get_string(cmd, "RequestType", true, &type, &err), 0);
    cr_assert_str_eq(type, "DeviceInformation");
    plist_free(d);
    tu_http_resp_free(&r);

    /* The real DeviceInformation result, with our UUID: stored, and the queue drains. */
    char *result = fixture("DeviceInformation.1.plist");
    char *at = strstr(result, "76eda240-5488-4989-8339-f2ae160113c4");
    cr_assert_not_null(at);
    memcpy(at, uuid, 36);
    cr_assert_eq(h_connect(&S, &id, result, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    tu_http_resp_free(&r);

    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands/%s", UDID2, uuid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "Acknowledged");
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(j, "result"), "QueryResponses"), "HostName")),
        "fruit.example.com");
    json_decref(j);

    /* The device as the API shows it: facts from Authenticate, enrolled. */
    free(path);
    path = xasprintf("/v1/devices/%s", UDID2);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "serial_number")), "C02MT66KFLHH");
    cr_assert_str_eq(json_string_value(json_object_get(j, "platform")), "macos");
    cr_assert(json_is_true(json_object_get(j, "enrolled")));
    json_decref(j);

    free(path);
    free(result);
    free(uuid);
    free(idle);
    free(auth);
    free(tok);
    tu_cert_free(&id);
}

Test(checkin, mdm_signature_identity)
{
    struct tu_cert id = h_device_cert(&S, "sig-device");
    struct tu_http_resp r;
    char *auth = h_plist("MessageType", "Authenticate", "Topic", H_TOPIC, "UDID", "SIG-1",
                         "ProductName", "iPhone14,2", NULL);
    char *idle = h_plist("Status", "Idle", "UDID", "SIG-1", NULL);

    cr_assert_eq(h_device_put(&S, &id, H_SIGNATURE, "/mdm/checkin",
                              "application/x-apple-aspen-mdm-checkin", auth, strlen(auth), &r),
                 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    /* /mdm dispatches on the content type */
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", H_TOPIC, "UDID", "SIG-1", "Token",
                        "data:abcdefabcdef", "PushMagic", "PM-1", NULL);
    cr_assert_eq(h_device_put(&S, &id, H_SIGNATURE, "/mdm", "application/x-apple-aspen-mdm-checkin",
                              tok, strlen(tok), &r),
                 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    cr_assert_eq(h_device_put(&S, &id, H_SIGNATURE, "/mdm", "application/x-apple-aspen-mdm", idle,
                              strlen(idle), &r),
                 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    /* no identity at all: refused, and never with 401 */
    cr_assert_eq(h_device_put(&S, NULL, H_NONE, "/mdm/connect", "application/x-apple-aspen-mdm",
                              idle, strlen(idle), &r),
                 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    free(auth);
    free(tok);
    free(idle);
    tu_cert_free(&id);
}

Test(checkin, certificate_bound_to_a_cannot_speak_for_b)
{
    struct tu_cert a = h_device_cert(&S, "A"), b = h_device_cert(&S, "B");
    struct tu_http_resp r;

    h_enroll(&S, &a, "DEV-A", "MacBookPro18,3");
    h_enroll(&S, &b, "DEV-B", "MacBookPro18,3");
    /* A's certificate names B: refused (403, not the unenroll code) */
    char *idle_b = h_plist("Status", "Idle", "UDID", "DEV-B", NULL);
    cr_assert_eq(h_connect(&S, &a, idle_b, &r), 0);
    cr_assert_eq(r.status, 403);
    cr_assert_not(is_unrecognized(&r), "must not tell A to unenroll");
    tu_http_resp_free(&r);
    char *auth_b = h_plist("MessageType", "Authenticate", "Topic", H_TOPIC, "UDID", "DEV-B", NULL);
    cr_assert_eq(h_checkin(&S, &a, auth_b, &r), 0);
    cr_assert_eq(r.status, 403, "re-Authenticate of B with A's certificate");
    tu_http_resp_free(&r);
    /* A and B still work */
    char *idle_a = h_plist("Status", "Idle", "UDID", "DEV-A", NULL);
    cr_assert_eq(h_connect(&S, &a, idle_a, &r), 0);
    cr_assert_eq(r.status, 200, "A still enrolled");
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, &b, idle_b, &r), 0);
    cr_assert_eq(r.status, 200, "B still enrolled");
    tu_http_resp_free(&r);
    /* A certificate from another CA is refused */
    struct tu_cert_opts o = {.cn = "Rogue CA"};
    struct tu_cert rogue_ca = tu_ca_new(&o);
    struct tu_cert rogue = tu_cert_issue(&rogue_ca, NULL);
    cr_assert_eq(h_connect(&S, &rogue, idle_a, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    tu_cert_free(&rogue);
    tu_cert_free(&rogue_ca);
    free(idle_a);
    free(idle_b);
    free(auth_b);
    tu_cert_free(&a);
    tu_cert_free(&b);
}

Test(checkin, reenrollment_after_checkout_starts_with_a_clean_queue)
{
    struct tu_cert old = h_device_cert(&S, "R"), renewed = h_device_cert(&S, "R");
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", "DEV-R", NULL);
    char *co = h_plist("MessageType", "CheckOut", "UDID", "DEV-R", NULL);

    h_enroll(&S, &old, "DEV-R", "iPad13,4");
    char *uuid = queue_device_info("DEV-R");
    /* The device unenrolls (CheckOut) and enrolls again with a new identity from the CA;
     * without the CheckOut the new identity is refused (tests/integration/test_security.c). */
    cr_assert_eq(h_checkin(&S, &old, co, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    h_enroll(&S, &renewed, "DEV-R", "iPad13,4");
    cr_assert_eq(h_connect(&S, &renewed, idle, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0, "the stale queue was deactivated by re-Authenticate");
    tu_http_resp_free(&r);
    free(uuid);
    free(co);
    free(idle);
    tu_cert_free(&old);
    tu_cert_free(&renewed);
}

Test(checkin, unknown_device_gets_unrecognized_403)
{
    struct tu_cert id = h_device_cert(&S, "ghost");
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", "GHOST", NULL);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", H_TOPIC, "UDID", "GHOST", "Token",
                        "data:abc", "PushMagic", "x", NULL);

    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert(is_unrecognized(&r), "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(&S, &id, tok, &r), 0);
    cr_assert(is_unrecognized(&r), "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(idle);
    free(tok);
    tu_cert_free(&id);
}

Test(checkin, notnow_skips_for_the_exchange_and_returns_on_idle)
{
    struct tu_cert id = h_device_cert(&S, "N");
    struct tu_http_resp r;
    h_enroll(&S, &id, "DEV-N", "iPhone14,2");
    char *u1 = queue_device_info("DEV-N");
    char *u2 = queue_device_info("DEV-N");
    char *idle = h_plist("Status", "Idle", "UDID", "DEV-N", NULL);
    char *notnow = h_plist("Status", "NotNow", "UDID", "DEV-N", "CommandUUID", u1, NULL);
    char *ack2 = h_plist("Status", "Acknowledged", "UDID", "DEV-N", "CommandUUID", u2, NULL);
    char *ack1 = h_plist("Status", "Acknowledged", "UDID", "DEV-N", "CommandUUID", u1, NULL);

    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert(strstr((char *)r.body, u1) != NULL, "first command first");
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, &id, notnow, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr((char *)r.body, u2) != NULL, "NotNow: the next one, not u1 again");
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, &id, ack2, &r), 0);
    cr_assert_eq(r.body_len, 0, "u1 is skipped for the rest of this exchange");
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert(r.body_len && strstr((char *)r.body, u1) != NULL, "offered again on Idle");
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, &id, ack1, &r), 0);
    cr_assert_eq(r.body_len, 0);
    tu_http_resp_free(&r);
    /* A duplicate report changes nothing and still gets a 2xx. */
    cr_assert_eq(h_connect(&S, &id, ack1, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);

    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/DEV-N/commands/%s", u1);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "Acknowledged");
    cr_assert_eq(json_integer_value(json_object_get(j, "notnow_count")), 1);
    json_decref(j);
    free(path);
    free(u1);
    free(u2);
    free(idle);
    free(notnow);
    free(ack1);
    free(ack2);
    tu_cert_free(&id);
}

Test(checkin, result_for_a_cancelled_command_gets_2xx_and_is_not_stored)
{
    struct tu_cert id = h_device_cert(&S, "C");
    struct tu_http_resp r;
    h_enroll(&S, &id, "DEV-C", "iPhone14,2");
    char *u = queue_device_info("DEV-C");
    char *path = xasprintf("/v1/devices/DEV-C/commands/%s", u);
    cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200);
    char *ack = h_plist("Status", "Acknowledged", "UDID", "DEV-C", "CommandUUID", u, NULL);
    cr_assert_eq(h_connect(&S, &id, ack, &r), 0);
    cr_assert_eq(r.status, 200, "never a 4xx loop");
    cr_assert_eq(r.body_len, 0);
    tu_http_resp_free(&r);
    char *ghost = h_plist("Status", "Error", "UDID", "DEV-C", "CommandUUID",
                          "11111111-2222-3333-4444-555555555555", NULL);
    cr_assert_eq(h_connect(&S, &id, ghost, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(ghost);
    free(ack);
    free(path);
    free(u);
    tu_cert_free(&id);
}

Test(checkin, other_message_types)
{
    struct tu_cert id = h_device_cert(&S, "O");
    struct tu_http_resp r;
    h_enroll(&S, &id, "DEV-O", "MacBookPro18,3");

    char *set = h_plist("MessageType", "SetBootstrapToken", "UDID", "DEV-O", "BootstrapToken",
                        "data:bootstrap-secret", NULL);
    cr_assert_eq(h_checkin(&S, &id, set, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    char *get = h_plist("MessageType", "GetBootstrapToken", "UDID", "DEV-O", NULL);
    cr_assert_eq(h_checkin(&S, &id, get, &r), 0);
    cr_assert_eq(r.status, 200);
    plist_t d = NULL;
    struct scepter_error err;
    const unsigned char *tok;
    size_t len;
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0);
    cr_assert_eq(plistx_get_data(d, "BootstrapToken", true, &tok, &len, &err), 0);
    cr_assert_eq(len, strlen("bootstrap-secret"));
    plist_free(d);
    tu_http_resp_free(&r);

    char *gettoken = h_plist("MessageType", "GetToken", "UDID", "DEV-O", "TokenServiceType",
                             "com.example.unknown", NULL);
    cr_assert_eq(h_checkin(&S, &id, gettoken, &r), 0);
    cr_assert_eq(r.status, 400, "unknown token service");
    tu_http_resp_free(&r);
    char *ua = h_plist("MessageType", "UserAuthenticate", "UDID", "DEV-O", "UserID", "U1", NULL);
    cr_assert_eq(h_checkin(&S, &id, ua, &r), 0);
    cr_assert_eq(r.status, 410, "user channels are declined unless configured");
    tu_http_resp_free(&r);
    char *dm = h_plist("MessageType", "DeclarativeManagement", "UDID", "DEV-O", "Endpoint",
                       "tokens", NULL);
    cr_assert_eq(h_checkin(&S, &id, dm, &r), 0);
    cr_assert_eq(r.status, 200, "DeclarativeManagement tokens (test_ddm.c tests the rest)");
    tu_http_resp_free(&r);

    /* User channel TokenUpdate (macOS): its own enrollment id */
    char *utok = h_plist("MessageType", "TokenUpdate", "Topic", H_TOPIC, "UDID", "DEV-O", "UserID",
                         "USER-GUID-1", "UserShortName", "jane", "Token", "data:ut", "PushMagic",
                         "PM-U", NULL);
    cr_assert_eq(h_checkin(&S, &id, utok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);

    char *out = h_plist("MessageType", "CheckOut", "Topic", H_TOPIC, "UDID", "DEV-O", NULL);
    cr_assert_eq(h_checkin(&S, &id, out, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    char *idle = h_plist("Status", "Idle", "UDID", "DEV-O", NULL);
    cr_assert_eq(h_connect(&S, &id, idle, &r), 0);
    cr_assert(is_unrecognized(&r), "checked out: %d", r.status);
    tu_http_resp_free(&r);
    free(set);
    free(get);
    free(gettoken);
    free(ua);
    free(dm);
    free(utok);
    free(out);
    free(idle);
    tu_cert_free(&id);
}

Test(checkin, bad_input_gets_4xx_and_changes_nothing)
{
    struct tu_cert id = h_device_cert(&S, "X");
    struct tu_http_resp r;
    h_enroll(&S, &id, "DEV-X", "iPhone14,2");
    char *u = queue_device_info("DEV-X");
    char *good = h_plist("Status", "Idle", "UDID", "DEV-X", NULL);

    /* wrong method */
    cr_assert_eq(tu_http(S.port, true, id.cert, id.key, "GET", "/mdm/connect", NULL, NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 405);
    tu_http_resp_free(&r);
    /* wrong content type */
    cr_assert_eq(
        h_device_put(&S, &id, H_MTLS, "/mdm/connect", "text/plain", good, strlen(good), &r), 0);
    cr_assert_eq(r.status, 415);
    tu_http_resp_free(&r);
    cr_assert_eq(h_device_put(&S, &id, H_MTLS, "/mdm/checkin", "application/x-apple-aspen-mdm",
                              good, strlen(good), &r),
                 0);
    cr_assert_eq(r.status, 415);
    tu_http_resp_free(&r);
    /* malformed / truncated plists */
    cr_assert_eq(h_device_put(&S, &id, H_MTLS, "/mdm/connect", "application/x-apple-aspen-mdm",
                              "hello", 5, &r),
                 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    cr_assert_eq(h_device_put(&S, &id, H_MTLS, "/mdm/connect", "application/x-apple-aspen-mdm",
                              good, strlen(good) / 2, &r),
                 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    /* missing keys, wrong types, unknown values */
    const char *bad[] = {
        h_plist("UDID", "DEV-X", NULL),                           /* no Status */
        h_plist("Status", "Idle", NULL),                          /* no UDID */
        h_plist("Status", "Sleeping", "UDID", "DEV-X", NULL),     /* unknown Status */
        h_plist("Status", "Acknowledged", "UDID", "DEV-X", NULL), /* no CommandUUID */
        h_plist("Status", "data:Idle", "UDID", "DEV-X", NULL),    /* wrong type */
        h_plist("Status", "Idle", "UDID", "true", NULL),          /* UDID a bool */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(h_connect(&S, &id, bad[i], &r), 0);
        cr_assert_eq(r.status, 400, "case %zu: %d %s", i, r.status, r.body);
        tu_http_resp_free(&r);
        free((char *)bad[i]);
    }
    const char *badc[] = {
        h_plist("UDID", "DEV-X", NULL),                         /* no MessageType */
        h_plist("MessageType", "Dance", "UDID", "DEV-X", NULL), /* unknown type */
        h_plist("MessageType", "TokenUpdate", "UDID", "DEV-X", "Topic", H_TOPIC, NULL), /* keys */
        h_plist("MessageType", "TokenUpdate", "UDID", "DEV-X", "Topic", H_TOPIC, "Token",
                "not-data", "PushMagic", "x", NULL), /* Token type */
        /* a PushMagic APNs could not carry in {"mdm":"..."}: refused here, not at push time */
        h_plist("MessageType", "TokenUpdate", "UDID", "DEV-X", "Topic", H_TOPIC, "Token",
                "data:abc", "PushMagic", "a\"b", NULL),
    };
    for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
        cr_assert_eq(h_checkin(&S, &id, badc[i], &r), 0);
        cr_assert_eq(r.status, 400, "check-in case %zu: %d %s", i, r.status, r.body);
        tu_http_resp_free(&r);
        free((char *)badc[i]);
    }
    /* a body over max_device_body_bytes (8 MiB) */
    size_t big = 9 * 1024 * 1024;
    char *huge = xmalloc(big);
    memset(huge, 'a', big);
    cr_assert_eq(h_device_put(&S, &id, H_MTLS, "/mdm/connect", "application/x-apple-aspen-mdm",
                              huge, big, &r),
                 0);
    cr_assert_eq(r.status, 413);
    tu_http_resp_free(&r);
    /* 5 MiB: within the device limit (then not a plist), over the API's 4 MiB */
    cr_assert_eq(h_device_put(&S, &id, H_MTLS, "/mdm/connect", "application/x-apple-aspen-mdm",
                              huge, 5 * 1024 * 1024, &r),
                 0);
    cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "POST", "/v1/policies",
                         "Content-Type: application/json\r\nAuthorization: Bearer " H_API_KEY
                         "\r\n",
                         huge, 5 * 1024 * 1024, &r),
                 0);
    cr_assert_eq(r.status, 413, "%d %s", r.status, r.body);
    cr_assert(strstr((const char *)r.body, "max_api_body_bytes") != NULL, "%s", r.body);
    tu_http_resp_free(&r);
    free(huge);
    /* nothing changed: the command is still queued and the device enrolled */
    cr_assert_eq(h_connect(&S, &id, good, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(r.body_len && strstr((char *)r.body, u) != NULL);
    tu_http_resp_free(&r);
    free(good);
    free(u);
    tu_cert_free(&id);
}

Test(checkin, enrollment_profile_with_pkcs12_identity)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    unsigned char *inner = NULL;
    size_t ilen = 0;
    struct scepter_error err;
    cr_assert_eq(profile_unwrap(r.body, r.body_len, NULL, &inner, &ilen, NULL, &err), 0, "%s",
                 err.msg);
    plist_t p = NULL;
    cr_assert_eq(plistx_parse_dict(inner, ilen, &p, &err), 0, "%s", err.msg);
    plist_t content = NULL;
    cr_assert_eq(plistx_get_array(p, "PayloadContent", true, &content, &err), 0);
    bool mdm = false, p12 = false, root = false;
    for (uint32_t i = 0; i < plist_array_get_size(content); i++) {
        plist_t item = plist_array_get_item(content, i);
        const char *t = NULL;
        cr_assert_eq(plistx_get_string(item, "PayloadType", true, &t, &err), 0);
        if (strcmp(t, "com.apple.mdm") == 0) {
            const char *url = NULL, *topic = NULL;
            bool sign = false;
            cr_assert_eq(plistx_get_string(item, "ServerURL", true, &url, &err), 0);
            char want[64];
            snprintf(want, sizeof(want), "https://127.0.0.1:%d/mdm/connect", S.port);
            cr_assert_str_eq(url, want);
            cr_assert_eq(plistx_get_string(item, "Topic", true, &topic, &err), 0);
            cr_assert_str_eq(topic, H_TOPIC);
            cr_assert_eq(plistx_get_bool(item, "SignMessage", true, &sign, &err), 0);
            cr_assert(sign);
            mdm = true;
        } else if (strcmp(t, "com.apple.security.pkcs12") == 0) {
            p12 = true;
        } else if (strcmp(t, "com.apple.security.root") == 0) {
            root = true;
            cr_assert_not(mdm || p12, "the root CA is installed first");
        }
    }
    cr_assert(mdm && p12 && root);
    plist_free(p);
    free(inner);
    tu_http_resp_free(&r);
}

Test(checkin, sigterm_is_a_clean_shutdown)
{
    /* h_stop asserts exit status 0 after SIGTERM; make it do so with a connection open. */
    struct tu_http_conn *c = tu_http_connect(S.port, true, NULL, NULL);
    cr_assert_not_null(c);
    struct tu_http_resp r;
    cr_assert_eq(tu_http_do(c, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    int rc = tu_proc_stop(&S.proc, SIGTERM, 20000);
    cr_assert_eq(rc, 0, "exit status %d", rc);
    tu_http_close(c);
}

/*
 * Result reports arriving together are stored together (one commit per batch) and each device
 * still gets its own answer: the next command, an empty 200, a 400 for a CommandUUID that is
 * not UTF-8, a 403 for a certificate of another device, a 200 for a cancelled command; the
 * store then holds exactly the valid results.  One worker, so that the reports of a round
 * meet in its loop; three rounds.
 */
struct report_job {
    const struct tu_cert *id;
    char *body;
    pthread_barrier_t *go;
    int rc;
    struct tu_http_resp resp;
};

static void *report_thread(void *arg)
{
    struct report_job *j = arg;

    pthread_barrier_wait(j->go);
    j->rc = h_connect(&S, j->id, j->body, &j->resp);
    return NULL;
}

static char *command_status(const char *udid, const char *uuid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands/%s", udid, uuid);
    int st = h_api(&S, "GET", path, NULL, &j);
    cr_assert_eq(st, 200, "GET %s: %d", path, st);
    char *status = xstrdup(json_string_value(json_object_get(j, "status")));
    json_decref(j);
    free(path);
    return status;
}

Test(checkin, concurrent_reports_each_get_their_own_answer)
{
    enum { N = 6 };
    struct tu_cert ids[N];
    char udid[N][24];

    h_conf_append(&S, "workers = 1\n");
    h_restart(&S);
    for (int i = 0; i < N; i++) {
        char cn[16];
        snprintf(cn, sizeof(cn), "R%d", i);
        snprintf(udid[i], sizeof(udid[i]), "DEV-R%d", i);
        ids[i] = h_device_cert(&S, cn);
        h_enroll(&S, &ids[i], udid[i], "iPhone14,2");
    }
    for (int round = 0; round < 3; round++) {
        char *u[N], *next0, *path;
        struct report_job jobs[N];
        pthread_t th[N];
        pthread_barrier_t go;

        for (int i = 0; i < N; i++)
            u[i] = queue_device_info(udid[i]);
        next0 = queue_device_info(udid[0]);
        path = xasprintf("/v1/devices/%s/commands/%s", udid[4], u[4]);
        cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200);
        free(path);
        memset(jobs, 0, sizeof(jobs));
        jobs[0].body = h_plist("Status", "Acknowledged", "UDID", udid[0], "CommandUUID", u[0],
                               "RequestType", "DeviceInformation", NULL);
        jobs[1].body = h_plist("Status", "Error", "UDID", udid[1], "CommandUUID", u[1], NULL);
        {
            /* ErrorChain: h_plist makes flat dicts only, so spliced in by hand. */
            char *b = jobs[1].body, *end = strstr(b, "</dict>\n</plist>");
            cr_assert_not_null(end);
            jobs[1].body = xasprintf("%.*s<key>ErrorChain</key><array><dict><key>ErrorCode</key>"
                                     "<integer>12021</integer><key>ErrorDomain</key>"
                                     "<string>MCMDMErrorDomain</string></dict></array>%s",
                                     (int)(end - b), b, end);
            free(b);
        }
        jobs[2].body = h_plist("Status", "Acknowledged", "UDID", udid[2], "CommandUUID",
                               "bad-\xff\xfe-uuid", NULL);
        jobs[3].body =
            h_plist("Status", "Acknowledged", "UDID", udid[3], "CommandUUID", u[3], NULL);
        jobs[4].body =
            h_plist("Status", "Acknowledged", "UDID", udid[4], "CommandUUID", u[4], NULL);
        jobs[5].body =
            h_plist("Status", "Acknowledged", "UDID", udid[5], "CommandUUID", u[5], NULL);
        pthread_barrier_init(&go, NULL, N);
        for (int i = 0; i < N; i++) {
            jobs[i].id = i == 3 ? &ids[4] : &ids[i]; /* 3 speaks with 4's certificate */
            jobs[i].go = &go;
            pthread_create(&th[i], NULL, report_thread, &jobs[i]);
        }
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);

        for (int i = 0; i < N; i++)
            cr_assert_eq(jobs[i].rc, 0, "round %d, device %d: no answer", round, i);
        cr_assert_eq(jobs[0].resp.status, 200);
        cr_assert(jobs[0].resp.body_len && strstr((char *)jobs[0].resp.body, next0) != NULL,
                  "round %d: device 0 gets its next command", round);
        cr_assert_eq(jobs[1].resp.status, 200);
        cr_assert_eq(jobs[1].resp.body_len, 0, "device 1's queue is empty");
        cr_assert_eq(jobs[2].resp.status, 400, "round %d: CommandUUID not UTF-8: %d", round,
                     jobs[2].resp.status);
        cr_assert_eq(jobs[3].resp.status, 403, "round %d: another device's certificate: %d", round,
                     jobs[3].resp.status);
        cr_assert_eq(jobs[4].resp.status, 200, "a cancelled command: 2xx, never a 4xx loop");
        cr_assert_eq(jobs[4].resp.body_len, 0);
        cr_assert_eq(jobs[5].resp.status, 200);
        cr_assert_eq(jobs[5].resp.body_len, 0);

        char *st[N + 1];
        for (int i = 0; i < N; i++)
            st[i] = command_status(udid[i], u[i]);
        st[N] = command_status(udid[0], next0);
        cr_assert_str_eq(st[0], "Acknowledged");
        cr_assert_str_eq(st[1], "Error");
        cr_assert_str_eq(st[2], "queued", "device 2's command is untouched");
        cr_assert_str_eq(st[3], "queued", "a refused report stores nothing");
        cr_assert_str_eq(st[4], "cancelled");
        cr_assert_str_eq(st[5], "Acknowledged");
        cr_assert_str_eq(st[N], "queued");
        /* Clear what is left for the next round: device 0's next command and device 2's and
         * 3's, answered alone. */
        {
            struct tu_http_resp r;
            const char *left[][2] = {{udid[0], next0}, {udid[2], u[2]}, {udid[3], u[3]}};
            const int who[] = {0, 2, 3};
            for (int k = 0; k < 3; k++) {
                char *ack = h_plist("Status", "Acknowledged", "UDID", left[k][0], "CommandUUID",
                                    left[k][1], NULL);
                cr_assert_eq(h_connect(&S, &ids[who[k]], ack, &r), 0);
                cr_assert_eq(r.status, 200);
                cr_assert_eq(r.body_len, 0, "round %d: nothing else queued for %s", round,
                             left[k][0]);
                tu_http_resp_free(&r);
                free(ack);
            }
        }
        for (int i = 0; i <= N; i++)
            free(st[i]);
        for (int i = 0; i < N; i++) {
            free(jobs[i].body);
            tu_http_resp_free(&jobs[i].resp);
            free(u[i]);
        }
        free(next0);
    }
    for (int i = 0; i < N; i++)
        tu_cert_free(&ids[i]);
}
