/*
 * A device's life over the months (issue 21), against the running server over HTTPS on both
 * store backends, with devices simulated by the harness: a re-enrolled device starts its
 * policy state from nothing and gets every targeting policy again (after CheckOut and after
 * an operator's removal, in the same second as the install), commands that expire leave the
 * queue and are never delivered, AwaitingConfiguration is shown and answered, Shared iPad
 * users can be declined.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "profiles/profiles.h"
#include "support/support.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

static struct h_server S;
static struct tu_cert mac;

static void setup(void)
{
    struct h_opts o = {.extra = "expiry_interval = 1\n"};
    h_start(&S, &o);
    mac = h_device_cert(&S, "LC-MAC");
    h_enroll(&S, &mac, "LC-MAC", "MacBookPro18,3");
}

static void teardown(void)
{
    tu_cert_free(&mac);
    h_stop(&S);
}

TestSuite(lifecycle, .init = setup, .fini = teardown);

/*
 * The device polls (reporting status for reported, or Idle); returns the next command
 * (caller plist_free()s) or NULL for an empty answer.  *uuid receives its CommandUUID.
 */
static plist_t poll_dev(const struct tu_cert *id, const char *udid, const char *status,
                        const char *reported, char uuid[64])
{
    struct tu_http_resp r;
    char *body = reported ? h_plist("Status", status, "UDID", udid, "CommandUUID", reported, NULL)
                          : h_plist("Status", "Idle", "UDID", udid, NULL);
    plist_t d = NULL;
    struct scepter_error err;
    const char *u = NULL;

    cr_assert_eq(h_connect(&S, id, body, &r), 0);
    cr_assert_eq(r.status, 200, "%s: %d %s", udid, r.status, r.body);
    free(body);
    if (r.body_len == 0) {
        tu_http_resp_free(&r);
        return NULL;
    }
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &u, &err), 0);
    snprintf(uuid, 64, "%s", u);
    tu_http_resp_free(&r);
    return d;
}

static const char *request_type(plist_t cmd)
{
    plist_t c = NULL;
    const char *t = NULL;
    struct scepter_error err;

    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_string(c, "RequestType", true, &t, &err), 0);
    return t;
}

static char *policy_body(const char *name, const char *udid, const char *extra)
{
    return xasprintf("{\"name\":\"%s\",\"platform\":\"macos\",%s"
                     "\"scep\":{\"url\":\"http://127.0.0.1:9/scep\",\"name\":\"CA\","
                     "\"challenge\":\"s3cret\",\"subject\":\"/O=Scepter/CN=%%SerialNumber%%/\"},"
                     "\"targets\":{\"devices\":[\"%s\"]}}",
                     name, extra ? extra : "", udid);
}

/* The state of the device's only policy in GET /v1/devices/{udid} (a static buffer). */
static const char *policy_state(const char *udid)
{
    static char out[32];
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s", udid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    free(path);
    json_t *pols = json_object_get(j, "policies");
    cr_assert_eq(json_array_size(pols), 1, "%s", h_json(j));
    const char *st = json_string_value(json_object_get(json_array_get(pols, 0), "state"));
    snprintf(out, sizeof(out), "%s", st ? st : "");
    json_decref(j);
    return out;
}

/* Install the policy on the device: it fetches the InstallProfile and acknowledges it. */
static void install(const struct tu_cert *id, const char *udid)
{
    char uuid[64];
    plist_t cmd = poll_dev(id, udid, NULL, NULL, uuid);

    cr_assert_not_null(cmd, "%s is sent its policy", udid);
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_free(cmd);
    cmd = poll_dev(id, udid, "Acknowledged", uuid, uuid);
    cr_assert_null(cmd, "installed; nothing else queued");
}

static void checkout(const struct tu_cert *id, const char *udid)
{
    struct tu_http_resp r;
    char *co = h_plist("MessageType", "CheckOut", "UDID", udid, NULL);
    cr_assert_eq(h_checkin(&S, id, co, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(co);
}

/* -------------------------------------------------------------------------------------- */
/* Re-enrollment                                                                           */

/* Unenroll (CheckOut) and enroll again within the second of the install: the policy state
 * starts from nothing and the policy is installed again. */
Test(lifecycle, reenrolled_after_checkout_gets_its_policy_again_at_once)
{
    json_t *j = NULL;
    char *body = policy_body("LC Wi-Fi", "LC-MAC", NULL);

    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    json_decref(j);
    free(body);
    install(&mac, "LC-MAC");
    const char *st = policy_state("LC-MAC");
    cr_assert_str_eq(st, "installed");

    checkout(&mac, "LC-MAC");
    h_enroll(&S, &mac, "LC-MAC", "MacBookPro18,3");
    st = policy_state("LC-MAC");
    cr_assert_str_eq(st, "pending",
                     "the new enrollment starts from nothing: the policy is "
                     "queued again, not counted as installed");
    install(&mac, "LC-MAC");
    st = policy_state("LC-MAC");
    cr_assert_str_eq(st, "installed");
}

/* An operator removes the device; it enrolls again with a new identity and gets its policy. */
Test(lifecycle, reenrolled_after_removal_gets_its_policy_again)
{
    json_t *j = NULL;
    char *body = policy_body("LC Removal", "LC-MAC", NULL);

    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    json_decref(j);
    free(body);
    install(&mac, "LC-MAC");
    cr_assert_eq(h_api(&S, "DELETE", "/v1/devices/LC-MAC", NULL, &j), 200, "%s", h_json(j));
    json_decref(j);

    struct tu_cert fresh = h_device_cert(&S, "LC-MAC");
    h_enroll(&S, &fresh, "LC-MAC", "MacBookPro18,3");
    const char *st = policy_state("LC-MAC");
    cr_assert_str_eq(st, "pending");
    install(&fresh, "LC-MAC");
    st = policy_state("LC-MAC");
    cr_assert_str_eq(st, "installed");
    tu_cert_free(&fresh);
}

/* -------------------------------------------------------------------------------------- */
/* Command expiry                                                                          */

/* The status of a command in the device's history ("" when it is not listed). */
static const char *history_status(const char *udid, const char *uuid, bool all)
{
    static char out[32];
    json_t *j = NULL, *v;
    size_t i;
    char *path = xasprintf("/v1/devices/%s/commands%s", udid, all ? "?all=true" : "");

    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    free(path);
    out[0] = '\0';
    json_array_foreach(json_object_get(j, "commands"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "uuid")), uuid) == 0)
            snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(v, "status")));
    }
    json_decref(j);
    return out;
}

static void queue_cmd(const char *path, const char *body, char uuid[64])
{
    json_t *j = NULL;

    cr_assert_eq(h_api(&S, "POST", path, body, &j), 201, "%s", h_json(j));
    snprintf(uuid, 64, "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
}

/* A command that expires leaves the queue with the final status Expired and is never
 * delivered; one without expiry (or a later one) still is. */
Test(lifecycle, an_expired_command_leaves_the_queue_and_is_never_delivered)
{
    char gone[64], gone2[64], kept[64], later[64], uuid[64];
    json_t *j = NULL;

    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false,\"expires_in\":1}",
              gone);
    queue_cmd("/v1/commands",
              "{\"devices\":[\"LC-MAC\"],\"command\":{\"request_type\":\"CertificateList\"},"
              "\"push\":false,\"expires_in\":\"1s\"}",
              gone2);
    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"DeviceInformation\"},\"push\":false}", kept);
    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false,"
              "\"expires_in\":\"1h\"}",
              later);
    cr_assert_str_eq(history_status("LC-MAC", gone, false), "queued");

    /* Past the expiry and a run of the job (every second here); bounded wait. */
    bool expired = false;
    for (int i = 0; i < 100 && !expired; i++) {
        usleep(100 * 1000);
        expired = strcmp(history_status("LC-MAC", gone, true), "Expired") == 0 &&
                  strcmp(history_status("LC-MAC", gone2, true), "Expired") == 0;
    }
    cr_assert(expired, "the expiry job marks both commands Expired within 10 s");
    cr_assert_str_eq(history_status("LC-MAC", gone, false), "", "it left the queue");
    cr_assert_str_eq(history_status("LC-MAC", kept, false), "queued");
    char *path = xasprintf("/v1/devices/LC-MAC/commands/%s", gone);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "Expired", "%s", h_json(j));
    json_decref(j);
    free(path);

    /* The device is handed the other two, never the expired ones. */
    plist_t cmd = poll_dev(&mac, "LC-MAC", NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(uuid, kept);
    plist_free(cmd);
    cmd = poll_dev(&mac, "LC-MAC", "Acknowledged", uuid, uuid);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(uuid, later);
    plist_free(cmd);
    cmd = poll_dev(&mac, "LC-MAC", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd, "nothing else: the expired commands are never delivered");

    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "scepter_commands_expired_total 2"), "%s", r.body);
    tu_http_resp_free(&r);
}

static void setup_slow_job(void)
{
    struct h_opts o = {.extra = "expiry_interval = 3600\n"};
    h_start(&S, &o);
    mac = h_device_cert(&S, "LC-MAC");
    h_enroll(&S, &mac, "LC-MAC", "MacBookPro18,3");
}

/* Before the job has run, an expired command is not delivered either. */
Test(lifecycle_slow_job, an_expired_command_is_not_delivered_before_the_job_runs,
     .init = setup_slow_job, .fini = teardown)
{
    char gone[64], uuid[64];

    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false,\"expires_in\":1}",
              gone);
    sleep(2);
    cr_assert_str_eq(history_status("LC-MAC", gone, false), "queued", "the job has not run");
    plist_t cmd = poll_dev(&mac, "LC-MAC", NULL, NULL, uuid);
    cr_assert_null(cmd, "expired: not handed out (%s)", uuid);
}

Test(lifecycle, a_bad_expires_in_is_refused_naming_the_field)
{
    json_t *j = NULL;
    static const char *const bad[] = {"0", "-5", "\"soon\"", "31536001", "true"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body =
            xasprintf("{\"command\":{\"request_type\":\"ProfileList\"},\"expires_in\":%s}", bad[i]);
        cr_assert_eq(h_api(&S, "POST", "/v1/devices/LC-MAC/commands", body, &j), 400, "%s", bad[i]);
        cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "expires_in", "%s",
                         h_json(j));
        json_decref(j);
        free(body);
    }
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/LC-MAC/commands", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "commands")), 0, "nothing was queued");
    json_decref(j);
}

/* A policy's expires_in applies to the InstallProfiles it queues: not delivered after it, and
 * the device's policy state says "expired". */
Test(lifecycle, a_policy_install_expires)
{
    json_t *j = NULL;
    char uuid[64];
    char *body = policy_body("LC Expiring", "LC-MAC", "\"expires_in\":1,");

    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "expires_in")), 1, "%s", h_json(j));
    json_decref(j);
    free(body);
    bool expired = false;
    for (int i = 0; i < 100 && !expired; i++) {
        usleep(100 * 1000);
        expired = strcmp(policy_state("LC-MAC"), "expired") == 0;
    }
    cr_assert(expired, "the install expired (state %s)", policy_state("LC-MAC"));
    plist_t cmd = poll_dev(&mac, "LC-MAC", NULL, NULL, uuid);
    cr_assert_null(cmd, "the expired InstallProfile is not delivered");

    body = policy_body("LC Bad Expiry", "LC-MAC", "\"expires_in\":-1,");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 400);
    cr_assert_not_null(strstr(h_json(j), "expires_in"), "%s", h_json(j));
    json_decref(j);
    free(body);
}

/* -------------------------------------------------------------------------------------- */
/* Typed commands (Apple's key names) through the API                                      */

/* A second TokenUpdate escrowing an UnlockToken, as an iPhone sends it. */
static void escrow_unlock_token(const struct tu_cert *id, const char *udid, const char *token)
{
    struct tu_http_resp r;
    char *data = xasprintf("data:%s", token);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", udid, "Token",
                        "data:tok-LC", "PushMagic", "00000000-1111-2222-3333-444444444444",
                        "UnlockToken", data, NULL);
    cr_assert_eq(h_checkin(&S, id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(tok);
    free(data);
}

Test(lifecycle, typed_commands_are_checked_and_clear_passcode_uses_the_escrowed_token)
{
    json_t *j = NULL;
    char uuid[64], got[64];
    struct scepter_error err;

    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"DeviceLock\",\"Message\":\"Call IT\","
              "\"PIN\":\"123456\"},\"push\":false}",
              uuid);
    plist_t cmd = poll_dev(&mac, "LC-MAC", NULL, NULL, got);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(got, uuid);
    cr_assert_str_eq(request_type(cmd), "DeviceLock");
    plist_t c = NULL;
    const char *msg = NULL;
    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_string(c, "Message", true, &msg, &err), 0);
    cr_assert_str_eq(msg, "Call IT");
    plist_free(cmd);
    cmd = poll_dev(&mac, "LC-MAC", "Acknowledged", got, got);
    cr_assert_null(cmd);

    cr_assert_eq(h_api(&S, "POST", "/v1/devices/LC-MAC/commands",
                       "{\"command\":{\"request_type\":\"ScheduleOSUpdate\",\"Updates\":"
                       "[{\"ProductVersion\":\"15.1\"}]}}",
                       &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")),
                     "command.Updates[0].InstallAction", "%s", h_json(j));
    json_decref(j);

    /* ClearPasscode: refused while the device escrowed nothing, and for several devices. */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/LC-MAC/commands",
                       "{\"command\":{\"request_type\":\"ClearPasscode\"}}", &j),
                 409, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"devices\":[\"LC-MAC\"],\"command\":{\"request_type\":"
                       "\"ClearPasscode\"}}",
                       &j),
                 409, "%s", h_json(j));
    json_decref(j);
    escrow_unlock_token(&mac, "LC-MAC", "secret-unlock");
    queue_cmd("/v1/devices/LC-MAC/commands",
              "{\"command\":{\"request_type\":\"ClearPasscode\"},\"push\":false}", uuid);
    cmd = poll_dev(&mac, "LC-MAC", NULL, NULL, got);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "ClearPasscode");
    const unsigned char *tok = NULL;
    size_t len = 0;
    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_data(c, "UnlockToken", true, &tok, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(len, strlen("secret-unlock"));
    cr_assert_eq(memcmp(tok, "secret-unlock", len), 0, "the escrowed UnlockToken");
    plist_free(cmd);
}

/* -------------------------------------------------------------------------------------- */
/* AwaitingConfiguration                                                                   */

static size_t count_devices(const char *query)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices%s", query);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200, "%s", h_json(j));
    size_t n = json_array_size(json_object_get(j, "devices"));
    json_decref(j);
    free(path);
    return n;
}

Test(lifecycle, awaiting_configuration_is_shown_filtered_and_ended_by_device_configured)
{
    struct tu_http_resp r;
    json_t *j = NULL;
    char uuid[64], got[64];
    struct tu_cert dep = h_device_cert(&S, "LC-DEP");

    /* A DEP iPhone in Setup Assistant: its TokenUpdate says AwaitingConfiguration. */
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "LC-DEP",
                         "ProductName", "iPhone14,2", NULL);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "LC-DEP", "Token",
                        "data:tok-dep", "PushMagic", "00000000-1111-2222-3333-444444444444",
                        "AwaitingConfiguration", "true", NULL);
    cr_assert_eq(h_checkin(&S, &dep, auth, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(&S, &dep, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(auth);
    free(tok);

    cr_assert_eq(h_api(&S, "GET", "/v1/devices/LC-DEP", NULL, &j), 200);
    cr_assert(json_is_true(json_object_get(j, "awaiting_configuration")), "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(count_devices("?awaiting_configuration=true"), 1);
    cr_assert_eq(count_devices("?awaiting_configuration=false"), 1, "LC-MAC");
    cr_assert_eq(count_devices(""), 2);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?awaiting_configuration=maybe", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "awaiting_configuration");
    json_decref(j);

    /* The operator releases it. */
    queue_cmd("/v1/devices/LC-DEP/commands",
              "{\"command\":{\"request_type\":\"DeviceConfigured\"},\"push\":false}", uuid);
    plist_t cmd = poll_dev(&dep, "LC-DEP", NULL, NULL, got);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "DeviceConfigured");
    plist_free(cmd);
    cr_assert_eq(count_devices("?awaiting_configuration=true"), 1, "not before it is acknowledged");
    cmd = poll_dev(&dep, "LC-DEP", "Acknowledged", got, got);
    cr_assert_null(cmd);
    cr_assert_eq(count_devices("?awaiting_configuration=true"), 0);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/LC-DEP", NULL, &j), 200);
    cr_assert(json_is_false(json_object_get(j, "awaiting_configuration")), "%s", h_json(j));
    json_decref(j);
    tu_cert_free(&dep);
}

/* -------------------------------------------------------------------------------------- */
/* Shared iPad users                                                                       */

/* A Shared iPad user's TokenUpdate (and UserAuthenticate); its HTTP status. */
static int shared_ipad_user(const struct tu_cert *id, const char *type)
{
    struct tu_http_resp r;
    char *body = strcmp(type, "TokenUpdate") == 0
                     ? h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "LC-IPAD",
                               "UserID", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "UserShortName",
                               "student@example.edu", "Token", "data:tok-user", "PushMagic",
                               "00000000-1111-2222-3333-555555555555", NULL)
                     : h_plist("MessageType", "UserAuthenticate", "UDID", "LC-IPAD", "UserID",
                               "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "UserShortName",
                               "student@example.edu", NULL);
    cr_assert_eq(h_checkin(&S, id, body, &r), 0);
    int status = r.status;
    tu_http_resp_free(&r);
    free(body);
    return status;
}

Test(lifecycle, shared_ipad_users_are_accepted_by_default)
{
    struct tu_cert ipad = h_device_cert(&S, "LC-IPAD");
    h_enroll(&S, &ipad, "LC-IPAD", "iPad13,4");
    cr_assert_eq(shared_ipad_user(&ipad, "TokenUpdate"), 200);
    json_t *j = NULL;
    cr_assert_eq(
        h_api(&S, "GET", "/v1/devices/LC-IPAD/commands?user=student@example.edu", NULL, &j), 200,
        "the user channel exists: %s", h_json(j));
    json_decref(j);
    tu_cert_free(&ipad);
}

static void setup_decline(void)
{
    struct h_opts o = {.extra = "shared_ipad_users = decline\n"};
    h_start(&S, &o);
    mac = h_device_cert(&S, "LC-MAC");
}

Test(lifecycle_shared_ipad, declined_shared_ipad_users_get_410, .init = setup_decline,
     .fini = teardown)
{
    struct tu_cert ipad = h_device_cert(&S, "LC-IPAD");
    h_enroll(&S, &ipad, "LC-IPAD", "iPad13,4");
    cr_assert_eq(shared_ipad_user(&ipad, "TokenUpdate"), 410);
    cr_assert_eq(shared_ipad_user(&ipad, "UserAuthenticate"), 410);
    json_t *j = NULL;
    cr_assert_eq(
        h_api(&S, "GET", "/v1/devices/LC-IPAD/commands?user=student@example.edu", NULL, &j), 404,
        "no user channel was made: %s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/LC-IPAD", NULL, &j), 200);
    cr_assert(json_is_true(json_object_get(j, "enrolled")), "the device channel stays managed");
    json_decref(j);
    tu_cert_free(&ipad);
}

/* -------------------------------------------------------------------------------------- */
/* GetToken                                                                                */

/* ServerCapabilities of the enrollment profile: whether it lists cap. */
static bool enroll_advertises(const char *cap)
{
    struct tu_http_resp r;
    struct scepter_error err;
    unsigned char *inner = NULL;
    size_t ilen = 0;
    plist_t prof = NULL;
    bool found = false;

    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    cr_assert_eq(profile_unwrap(r.body, r.body_len, NULL, &inner, &ilen, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t caps = plist_dict_get_item(plist_array_get_item(arr, i), "ServerCapabilities");
        for (uint32_t k = 0; caps && k < plist_array_get_size(caps); k++)
            found = found ||
                    strcmp(plist_get_string_ptr(plist_array_get_item(caps, k), NULL), cap) == 0;
    }
    plist_free(prof);
    free(inner);
    tu_http_resp_free(&r);
    return found;
}

static int get_token(const struct tu_cert *id, const char *udid, char **jwt)
{
    struct tu_http_resp r;
    struct scepter_error err;
    char *body = h_plist("MessageType", "GetToken", "UDID", udid, "TokenServiceType",
                         "com.apple.maid", NULL);
    cr_assert_eq(h_checkin(&S, id, body, &r), 0);
    free(body);
    int status = r.status;
    *jwt = NULL;
    if (status == 200) {
        plist_t d = NULL;
        const unsigned char *tok = NULL;
        size_t len = 0;
        cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0);
        cr_assert_eq(plistx_get_data(d, "TokenData", true, &tok, &len, &err), 0);
        *jwt = xstrndup((const char *)tok, len);
        plist_free(d);
    }
    tu_http_resp_free(&r);
    return status;
}

Test(lifecycle, get_token_is_neither_advertised_nor_served_without_apple_s_server_identity)
{
    char *jwt = NULL;
    cr_assert_not(enroll_advertises("com.apple.mdm.token"));
    cr_assert(enroll_advertises("com.apple.mdm.bootstraptoken"), "the check works");
    cr_assert_eq(get_token(&mac, "LC-MAC", &jwt), 400);
}

#define MAID_UUID "0f9e8d7c-6b5a-4c3d-9e2f-1a2b3c4d5e6f"

static char *maid_dir;
static struct tu_cert maid_ca, maid_id;

static void setup_maid(void)
{
    maid_dir = tu_tmpdir();
    maid_ca = tu_ca_new(NULL);
    struct tu_cert_opts o = {.cn = "ABM MDM server", .not_after = 86400};
    maid_id = tu_cert_issue(&maid_ca, &o);
    char *crt = xasprintf("%s/abm.pem", maid_dir), *key = xasprintf("%s/abm.key", maid_dir);
    tu_cert_write(&maid_id, crt, key);
    char *extra = xasprintf("maid_server_uuid = " MAID_UUID "\nmaid_key_file = %s\n", key);
    struct h_opts op = {.extra = extra};
    h_start(&S, &op);
    free(extra);
    free(crt);
    free(key);
    mac = h_device_cert(&S, "LC-MAC");
    h_enroll(&S, &mac, "LC-MAC", "MacBookPro18,3");
}

static void teardown_maid(void)
{
    teardown();
    tu_cert_free(&maid_ca);
    tu_cert_free(&maid_id);
    tu_rmtree(maid_dir);
    free(maid_dir);
}

/* Base64url (no padding) to bytes. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *len)
{
    char *t = xmalloc(n + 4);
    size_t k = 0;
    unsigned char *out = NULL;
    for (size_t i = 0; i < n; i++)
        t[k++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (k % 4)
        t[k++] = '=';
    t[k] = '\0';
    cr_assert_eq(base64_decode(t, k, false, &out, len), 0, "%s", t);
    free(t);
    return out;
}

Test(lifecycle_maid, get_token_is_advertised_and_verifiable_with_the_configured_identity,
     .init = setup_maid, .fini = teardown_maid)
{
    char *jwt = NULL;
    cr_assert(enroll_advertises("com.apple.mdm.token"));
    cr_assert_eq(get_token(&mac, "LC-MAC", &jwt), 200);
    /* What Apple's identity service checks: the RS256 signature against the public key
     * uploaded to Apple Business Manager, iss = its server_uuid, service_type, jti, iat. */
    char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    cr_assert_not_null(d2, "%s", jwt);
    size_t clen = 0, slen = 0;
    unsigned char *claims = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &clen);
    unsigned char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &slen);
    json_t *c = json_loadb((const char *)claims, clen, 0, NULL);
    cr_assert_not_null(c);
    cr_assert_str_eq(json_string_value(json_object_get(c, "iss")), MAID_UUID);
    cr_assert_str_eq(json_string_value(json_object_get(c, "service_type")), "com.apple.maid");
    cr_assert(json_is_string(json_object_get(c, "jti")));
    cr_assert(json_integer_value(json_object_get(c, "iat")) > 1700000000);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY *pub = X509_get0_pubkey(maid_id.cert);
    cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    cr_assert_eq(EVP_DigestVerify(md, sig, slen, (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1,
                 "the signature verifies with the uploaded public key");
    EVP_MD_CTX_free(md);
    json_decref(c);
    free(claims);
    free(sig);
    free(jwt);
}
