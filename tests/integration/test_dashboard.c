/*
 * The console's read-only overview routes against the running server, on both stores:
 * GET /v1/dashboard counts what the devices and the queue really hold; GET /v1/commands lists
 * a command sent to a group with its entries counted by state as devices answer; GET
 * /v1/commands/{uuid} shows each device's status and ErrorChain; GET /v1/enrollment says
 * where devices enroll; bad parameters are refused naming the parameter.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

static struct h_server S;
static struct tu_cert mac1, mac2, iphone;

static void setup(void)
{
    /* Pushes go nowhere: a local port nothing listens on (tests never reach Apple). */
    struct h_opts o = {.extra = "apns_url = https://127.0.0.1:9\n"};
    h_start(&S, &o);
    mac1 = h_device_cert(&S, "DASH-MAC-1");
    mac2 = h_device_cert(&S, "DASH-MAC-2");
    iphone = h_device_cert(&S, "DASH-IPHONE-1");
    h_enroll(&S, &mac1, "DASH-MAC-1", "MacBookPro18,3");
    h_enroll(&S, &mac2, "DASH-MAC-2", "Mac14,2");
    h_enroll(&S, &iphone, "DASH-IPHONE-1", "iPhone14,2");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups",
                       "{\"name\":\"Lab\",\"devices\":[\"DASH-MAC-2\",\"DASH-IPHONE-1\"]}", NULL),
                 201);
}

static void teardown(void)
{
    tu_cert_free(&mac1);
    tu_cert_free(&mac2);
    tu_cert_free(&iphone);
    h_stop(&S);
}

TestSuite(dashboard, .init = setup, .fini = teardown);

/* The device polls (Idle); returns the CommandUUID handed out ("" for none). */
static void poll(const struct tu_cert *id, const char *udid, char uuid[64])
{
    struct tu_http_resp r;
    char *body = h_plist("Status", "Idle", "UDID", udid, NULL);
    plist_t d = NULL;
    struct scepter_error err;
    const char *u = NULL;

    cr_assert_eq(h_connect(&S, id, body, &r), 0);
    cr_assert_eq(r.status, 200, "%s: %d", udid, r.status);
    free(body);
    uuid[0] = '\0';
    if (r.body_len > 0) {
        cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &u, &err), 0);
        snprintf(uuid, 64, "%s", u);
        plist_free(d);
    }
    tu_http_resp_free(&r);
}

static void report(const struct tu_cert *id, const char *xml)
{
    struct tu_http_resp r;

    cr_assert_eq(h_connect(&S, id, xml, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
}

static json_int_t num(json_t *j, const char *a, const char *b)
{
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    cr_assert(json_is_integer(v), "%s.%s in %s", a, b ? b : "", h_json(j));
    return json_integer_value(v);
}

static void assert_field(const char *method, const char *path, int status, const char *field)
{
    json_t *j = NULL;

    cr_assert_eq(h_api(&S, method, path, NULL, &j), status, "%s %s: %s", method, path, h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), field, "%s", h_json(j));
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), field) != NULL, "%s",
              h_json(j));
    json_decref(j);
}

Test(dashboard, figures_and_the_cross_device_queue_follow_what_devices_answer)
{
    json_t *j = NULL;
    char uuid[64], got[64];

    /* Three enrolled devices by platform, all seen within the hour, nothing queued. */
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    cr_assert_eq(num(j, "devices", "enrolled"), 3, "%s", h_json(j));
    json_t *by = json_object_get(json_object_get(j, "devices"), "by_platform");
    cr_assert_eq(json_integer_value(json_object_get(by, "macos")), 2, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(by, "ios")), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "checkins", "devices"), 3, "%s", h_json(j));
    cr_assert_eq(num(j, "commands", "pending"), 0, "%s", h_json(j));
    cr_assert_eq(num(j, "commands", "failed"), 0, "%s", h_json(j));
    cr_assert_not_null(json_object_get(j, "apns"), "%s", h_json(j));
    json_decref(j);

    /* A DeviceInformation to the group: two entries queued. */
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"device_groups\":[\"Lab\"],\"command\":{\"request_type\":"
                       "\"DeviceInformation\"},\"push\":false}",
                       &j),
                 201, "%s", h_json(j));
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/commands?origin=operator", NULL, &j), 200);
    cr_assert_eq(num(j, "total", NULL), 1, "%s", h_json(j));
    json_t *c0 = json_array_get(json_object_get(j, "commands"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "uuid")), uuid);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "request_type")), "DeviceInformation");
    cr_assert_eq(num(c0, "targets", NULL), 2, "%s", h_json(j));
    cr_assert_eq(num(c0, "counts", "queued"), 2, "%s", h_json(j));
    cr_assert(json_is_null(json_object_get(c0, "policy_id")));
    cr_assert_eq(num(j, "counts", "queued"), 2, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    cr_assert_eq(num(j, "commands", "pending"), 2, "%s", h_json(j));
    json_decref(j);

    /* The Mac answers; the iPhone reports an error with its chain. */
    poll(&mac2, "DASH-MAC-2", got);
    cr_assert_str_eq(got, uuid);
    char *ack = xasprintf("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key>"
                          "<string>Acknowledged</string><key>UDID</key><string>DASH-MAC-2</string>"
                          "<key>CommandUUID</key><string>%s</string><key>QueryResponses</key>"
                          "<dict><key>DeviceName</key><string>Lab Mac</string></dict>"
                          "</dict></plist>",
                          uuid);
    report(&mac2, ack);
    free(ack);
    poll(&iphone, "DASH-IPHONE-1", got);
    cr_assert_str_eq(got, uuid);
    char *fail =
        xasprintf("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key>"
                  "<string>Error</string><key>UDID</key><string>DASH-IPHONE-1</string>"
                  "<key>CommandUUID</key><string>%s</string><key>ErrorChain</key><array><dict>"
                  "<key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key>"
                  "<string>MCMDMErrorDomain</string><key>LocalizedDescription</key>"
                  "<string>Query not allowed.</string></dict></array></dict></plist>",
                  uuid);
    report(&iphone, fail);
    free(fail);

    char *path = xasprintf("/v1/commands/%s", uuid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "acknowledged"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "error"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "queued"), 0, "%s", h_json(j));
    json_t *devs = json_object_get(j, "devices");
    cr_assert_eq(json_array_size(devs), 2, "%s", h_json(j));
    /* ordered by device id */
    json_t *d0 = json_array_get(devs, 0), *d1 = json_array_get(devs, 1);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "udid")), "DASH-IPHONE-1");
    cr_assert_str_eq(json_string_value(json_object_get(d0, "status")), "Error");
    cr_assert_str_eq(json_string_value(json_object_get(d0, "platform")), "ios");
    cr_assert(strstr(h_json(json_object_get(d0, "error_chain")), "Query not allowed.") != NULL,
              "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(d1, "udid")), "DASH-MAC-2");
    cr_assert_str_eq(json_string_value(json_object_get(d1, "status")), "Acknowledged");
    cr_assert(json_is_null(json_object_get(d1, "error_chain")));
    cr_assert(json_is_string(json_object_get(d1, "result_at")), "%s", h_json(j));
    json_decref(j);
    free(path);

    /* The dashboard sees the failure today and nothing pending; a later window sees none. */
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    cr_assert_eq(num(j, "commands", "pending"), 0, "%s", h_json(j));
    cr_assert_eq(num(j, "commands", "failed"), 1, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard?failed_since=2100-01-01T00:00:00Z", NULL, &j),
                 200);
    cr_assert_eq(num(j, "commands", "failed"), 0, "%s", h_json(j));
    json_decref(j);

    /* A second command, cancelled before the device polls: newest first, counted cancelled. */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/DASH-MAC-1/commands",
                       "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false}", &j),
                 201);
    char *second = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    path = xasprintf("/v1/devices/DASH-MAC-1/commands/%s", second);
    cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200);
    free(path);
    poll(&mac1, "DASH-MAC-1", got);
    cr_assert_str_eq(got, "", "a cancelled command is not handed out");
    cr_assert_eq(h_api(&S, "GET", "/v1/commands?limit=1", NULL, &j), 200);
    cr_assert_eq(num(j, "total", NULL), 2, "%s", h_json(j));
    cr_assert_eq(json_array_size(json_object_get(j, "commands")), 1);
    c0 = json_array_get(json_object_get(j, "commands"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "uuid")), second, "%s", h_json(j));
    cr_assert_eq(num(c0, "counts", "cancelled"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "acknowledged"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "error"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "cancelled"), 1, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/commands?request_type=DeviceInformation&offset=0", NULL, &j),
                 200);
    cr_assert_eq(num(j, "total", NULL), 1, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/commands?origin=policy", NULL, &j), 200);
    cr_assert_eq(num(j, "total", NULL), 0, "%s", h_json(j));
    json_decref(j);
    free(second);
}

Test(dashboard, bad_parameters_name_themselves_and_enrollment_says_where)
{
    json_t *j = NULL;

    assert_field("GET", "/v1/commands?origin=everyone", 400, "origin");
    assert_field("GET", "/v1/commands?limit=0", 400, "limit");
    assert_field("GET", "/v1/commands?limit=1001", 400, "limit");
    assert_field("GET", "/v1/commands?offset=-1", 400, "offset");
    assert_field("GET", "/v1/dashboard?failed_since=yesterday", 400, "failed_since");
    assert_field("GET", "/v1/dashboard?seen_since=2026-13-45", 400, "seen_since");
    assert_field("GET", "/v1/commands/0f0e0d0c-0000-4000-8000-000000000000", 404, "uuid");
    cr_assert_eq(h_api(&S, "POST", "/v1/dashboard", "{}", NULL), 405);

    cr_assert_eq(h_api(&S, "GET", "/v1/enrollment", NULL, &j), 200);
    const char *url = json_string_value(json_object_get(j, "url"));
    cr_assert_not_null(url, "%s", h_json(j));
    cr_assert(strncmp(url, "https://", 8) == 0 && strstr(url, "/mdm/enroll") != NULL, "%s", url);
    cr_assert(json_is_boolean(json_object_get(j, "gated")), "%s", h_json(j));
    cr_assert(json_is_boolean(json_object_get(j, "tokens")), "%s", h_json(j));
    json_decref(j);

    /* Without the key, nothing. */
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/dashboard", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    tu_http_resp_free(&r);
}

Test(dashboard, a_push_certificate_expiring_within_30_days_is_flagged_and_notnow_counted)
{
    json_t *j = NULL;
    char uuid[64], got[64];

    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    cr_assert(json_is_null(json_object_get(j, "pushcert")), "none stored yet: %s", h_json(j));
    json_decref(j);

    /* A push certificate for the devices' topic that expires in 20 days. */
    cr_assert_eq(tu_sh(NULL,
                       "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout soon.key "
                       "-subj '/UID=%s/CN=APSP:dashboard/C=US' -days 20 -out soon.pem "
                       "-addext extendedKeyUsage=clientAuth >/dev/null 2>&1",
                       S.dir, S.topic),
                 0);
    char *cp = xasprintf("%s/soon.pem", S.dir), *kp = xasprintf("%s/soon.key", S.dir);
    size_t clen = 0, klen = 0;
    char *cert = (char *)tu_read(cp, &clen), *key = (char *)tu_read(kp, &klen);
    json_t *body = json_pack("{s:s,s:s}", "cert_pem", cert, "key_pem", key);
    char *text = json_dumps(body, 0);
    cr_assert_eq(h_api(&S, "PUT", "/v1/pushcert", text, &j), 200, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    json_t *pc = json_object_get(j, "pushcert");
    cr_assert_str_eq(json_string_value(json_object_get(pc, "state")), "expiring", "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(pc, "topic")), S.topic);
    json_int_t left = json_integer_value(json_object_get(pc, "days_left"));
    cr_assert(left >= 19 && left <= 20, "%s", h_json(j));
    json_decref(j);

    /* A device that says NotNow keeps the command pending, counted as notnow. */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/DASH-MAC-1/commands",
                       "{\"command\":{\"request_type\":\"CertificateList\"},\"push\":false}", &j),
                 201);
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    poll(&mac1, "DASH-MAC-1", got);
    cr_assert_str_eq(got, uuid);
    char *nn = xasprintf("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key>"
                         "<string>NotNow</string><key>UDID</key><string>DASH-MAC-1</string>"
                         "<key>CommandUUID</key><string>%s</string></dict></plist>",
                         uuid);
    report(&mac1, nn);
    free(nn);
    char *path = xasprintf("/v1/commands/%s", uuid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_eq(num(j, "counts", "notnow"), 1, "%s", h_json(j));
    cr_assert_eq(num(j, "counts", "queued"), 0, "%s", h_json(j));
    json_t *d0 = json_array_get(json_object_get(j, "devices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "status")), "NotNow");
    cr_assert_eq(json_integer_value(json_object_get(d0, "notnow_count")), 1);
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/dashboard", NULL, &j), 200);
    cr_assert_eq(num(j, "commands", "pending"), 1, "NotNow is still pending: %s", h_json(j));
    json_decref(j);
    free(path);
    free(text);
    json_decref(body);
    free(cert);
    free(key);
    free(cp);
    free(kp);
}
