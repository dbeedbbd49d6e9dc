/*
 * The operator API against the running server, on both store backends: the whole life of a
 * SCEP Profiles policy — create with targets, the right devices (and only they) get
 * InstallProfile, they install it, update, untarget, delete, late enrollment and late group
 * membership — device groups, commands, API keys, and every bad input (4xx JSON error naming
 * the field, nothing changed).
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

static struct h_server S;
static struct tu_cert mac1, mac2, iphone, ipad;

static void setup(void)
{
    h_start(&S, NULL);
    mac1 = h_device_cert(&S, "MAC-1");
    mac2 = h_device_cert(&S, "MAC-2");
    iphone = h_device_cert(&S, "IPHONE-1");
    ipad = h_device_cert(&S, "IPAD-1");
    h_enroll(&S, &mac1, "MAC-1", "MacBookPro18,3");
    h_enroll(&S, &mac2, "MAC-2", "Mac14,2");
    h_enroll(&S, &iphone, "IPHONE-1", "iPhone14,2");
    h_enroll(&S, &ipad, "IPAD-1", "iPad13,4");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups",
                       "{\"name\":\"Mixed Lab\",\"devices\":[\"MAC-2\",\"IPHONE-1\",\"IPAD-1\"]}",
                       NULL),
                 201);
}

static void teardown(void)
{
    tu_cert_free(&mac1);
    tu_cert_free(&mac2);
    tu_cert_free(&iphone);
    tu_cert_free(&ipad);
    h_stop(&S);
}

TestSuite(api, .init = setup, .fini = teardown);

/* Queued (not finished) commands of a device: a JSON array the caller decrefs. */
static json_t *queue_of(const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands", udid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    json_t *cmds = json_incref(json_object_get(j, "commands"));
    json_decref(j);
    free(path);
    return cmds;
}

static size_t queued_of_type(const char *udid, const char *type)
{
    json_t *q = queue_of(udid);
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(
        q, i, v) if (strcmp(json_string_value(json_object_get(v, "request_type")), type) == 0 &&
                     strcmp(json_string_value(json_object_get(v, "status")), "queued") == 0) n++;
    json_decref(q);
    return n;
}

static const char *ca_b64(void)
{
    static char *b64;
    if (b64 == NULL) {
        size_t len;
        unsigned char *der = tu_read_data("scep-ca/ca.crt", &len);
        b64 = base64_encode(der, len);
        free(der);
    }
    return b64;
}

static char *policy_body(const char *name, const char *platform, const char *targets, int key_size)
{
    return xasprintf("{\"name\":\"%s\",\"platform\":\"%s\",\"notes\":\"integration test\","
                     "\"scep\":{\"url\":\"http://127.0.0.1:9/scep\",\"name\":\"CA\","
                     "\"challenge\":\"s3cret\",\"fingerprint\":"
                     "\"11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff:00:11:22:33\","
                     "\"key_size\":%d,\"subject\":\"/O=Scepter/CN=%%SerialNumber%%/\","
                     "\"key_usage\":[\"signing\",\"encryption\"],\"root_certificate\":\"%s\"},"
                     "\"targets\":%s}",
                     name, platform, key_size, ca_b64(), targets);
}

/*
 * The device fetches its next command; returns the parsed {CommandUUID, Command} (caller
 * plist_free()s) or NULL for an empty answer.  *uuid receives the UUID.
 */
static plist_t fetch(const struct tu_cert *id, const char *udid, const char *status,
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

/* The profile inside an InstallProfile command, parsed. */
static plist_t profile_of(plist_t cmd)
{
    plist_t c = NULL, prof = NULL;
    const unsigned char *payload;
    size_t len;
    unsigned char *inner = NULL;
    size_t ilen;
    struct scepter_error err;

    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_data(c, "Payload", true, &payload, &len, &err), 0);
    cr_assert_eq(profile_unwrap(payload, len, NULL, &inner, &ilen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
    free(inner);
    return prof;
}

static const char *request_type(plist_t cmd)
{
    plist_t c = plist_dict_get_item(cmd, "Command");
    const char *t = NULL;
    cr_assert_eq(plistx_get_string(c, "RequestType", true, &t, NULL), 0);
    return t;
}

Test(api, policy_life_cycle_reaches_exactly_the_right_devices)
{
    json_t *j = NULL;
    char uuid[64];

    /* macOS policy: a Mac directly and the mixed group */
    char *body = policy_body("Corp Wi-Fi", "macos",
                             "{\"devices\":[\"MAC-1\"],\"device_groups\":[\"Mixed Lab\"]}", 2048);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    free(body);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 2);
    cr_assert(json_is_true(json_object_get(j, "takes_effect")));
    json_int_t mac_id = json_integer_value(json_object_get(j, "id"));
    char *ident = xstrdup(json_string_value(json_object_get(j, "payload_identifier")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "scep"), "challenge")),
                     "********", "the challenge is masked in answers");
    json_decref(j);
    cr_assert_eq(queued_of_type("MAC-1", "InstallProfile"), 1);
    cr_assert_eq(queued_of_type("MAC-2", "InstallProfile"), 1);
    cr_assert_eq(queued_of_type("IPHONE-1", "InstallProfile"), 0, "macOS policy on an iPhone");
    cr_assert_eq(queued_of_type("IPAD-1", "InstallProfile"), 0, "macOS policy on an iPad");

    /* iOS policy on the same mixed group: iPhone and iPad only, variables resolved */
    body = policy_body("Corp Wi-Fi", "ios", "{\"device_groups\":[\"Mixed Lab\"]}", 2048);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "same name, other platform");
    free(body);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 2);
    json_decref(j);
    cr_assert_eq(queued_of_type("IPHONE-1", "InstallProfile"), 1);
    cr_assert_eq(queued_of_type("IPAD-1", "InstallProfile"), 1);
    cr_assert_eq(queued_of_type("MAC-2", "InstallProfile"), 1, "no iOS profile on a Mac");

    /* The iPhone gets its profile with %SerialNumber% filled in by the server. */
    plist_t cmd = fetch(&iphone, "IPHONE-1", NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_t prof = profile_of(cmd);
    size_t xlen;
    char *xml = plistx_to_xml(prof, &xlen);
    cr_assert(strstr(xml, "SN-TEST") != NULL, "iOS: serial substituted");
    cr_assert(strstr(xml, "%SerialNumber%") == NULL);
    cr_assert(strstr(xml, "com.apple.security.scep") && strstr(xml, "com.apple.security.root"));
    free(xml);
    plist_free(prof);
    plist_free(cmd);
    cmd = fetch(&iphone, "IPHONE-1", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd, "queue drained");

    /* The Mac gets the variable left for macOS to resolve, and the stable identifier. */
    cmd = fetch(&mac1, "MAC-1", NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    prof = profile_of(cmd);
    const char *pid = NULL;
    cr_assert_eq(plistx_get_string(prof, "PayloadIdentifier", true, &pid, NULL), 0);
    cr_assert_str_eq(pid, ident);
    xml = plistx_to_xml(prof, &xlen);
    cr_assert(strstr(xml, "%SerialNumber%") != NULL, "macOS resolves Apple's variables itself");
    free(xml);
    plist_free(prof);
    plist_free(cmd);
    cr_assert_null(fetch(&mac1, "MAC-1", "Acknowledged", uuid, uuid));

    /* MAC-2 reports an error: the policy status shows it with the error chain. */
    cmd = fetch(&mac2, "MAC-2", NULL, NULL, uuid);
    plist_free(cmd);
    {
        struct tu_http_resp r;
        char *err = xasprintf(
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key>"
            "<string>Error</string><key>UDID</key><string>MAC-2</string><key>CommandUUID</key>"
            "<string>%s</string><key>ErrorChain</key><array><dict><key>ErrorCode</key>"
            "<integer>22013</integer><key>ErrorDomain</key><string>MCSCEPErrorDomain</string>"
            "<key>LocalizedDescription</key><string>The SCEP server rejected the challenge."
            "</string></dict></array></dict></plist>",
            uuid);
        cr_assert_eq(h_connect(&S, &mac2, err, &r), 0);
        cr_assert_eq(r.status, 200);
        tu_http_resp_free(&r);
        free(err);
    }
    char *status_path = xasprintf("/v1/policies/%lld/status", (long long)mac_id);
    cr_assert_eq(h_api(&S, "GET", status_path, NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "installed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "failed")), 1);
    json_t *failed = json_array_get(json_object_get(j, "failed"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(failed, "device")), "MAC-2");
    cr_assert(strstr(h_json(json_object_get(failed, "error_chain")), "rejected the challenge"));
    json_decref(j);

    /* Update: new key size, re-queued for both Macs with the same PayloadIdentifier. */
    char *policy_path = xasprintf("/v1/policies/%lld", (long long)mac_id);
    body = policy_body("Corp Wi-Fi", "macos",
                       "{\"devices\":[\"MAC-1\"],\"device_groups\":[\"Mixed Lab\"]}", 4096);
    cr_assert_eq(h_api(&S, "PUT", policy_path, body, &j), 200, "%s", h_json(j));
    free(body);
    cr_assert_eq(json_integer_value(json_object_get(j, "version")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 2);
    json_decref(j);
    cmd = fetch(&mac1, "MAC-1", NULL, NULL, uuid);
    prof = profile_of(cmd);
    cr_assert_eq(plistx_get_string(prof, "PayloadIdentifier", true, &pid, NULL), 0);
    cr_assert_str_eq(pid, ident, "the update replaces the installed profile");
    xml = plistx_to_xml(prof, &xlen);
    cr_assert(strstr(xml, "<integer>4096</integer>") != NULL);
    free(xml);
    plist_free(prof);
    plist_free(cmd);
    cr_assert_null(fetch(&mac1, "MAC-1", "Acknowledged", uuid, uuid));

    /* Untarget MAC-1: RemoveProfile with the identifier for it, nothing for MAC-2. */
    body = policy_body("Corp Wi-Fi", "macos", "{\"device_groups\":[\"Mixed Lab\"]}", 4096);
    cr_assert_eq(h_api(&S, "PUT", policy_path, body, &j), 200);
    free(body);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_removals")), 1);
    json_decref(j);
    cmd = fetch(&mac1, "MAC-1", NULL, NULL, uuid);
    cr_assert_str_eq(request_type(cmd), "RemoveProfile");
    const char *rid = NULL;
    cr_assert_eq(
        plistx_get_string(plist_dict_get_item(cmd, "Command"), "Identifier", true, &rid, NULL), 0);
    cr_assert_str_eq(rid, ident);
    plist_free(cmd);
    cr_assert_null(fetch(&mac1, "MAC-1", "Acknowledged", uuid, uuid));

    /* A Mac that enrolls later and joins the group gets the profile then. */
    struct tu_cert late = h_device_cert(&S, "MAC-LATE");
    h_enroll(&S, &late, "MAC-LATE", "MacBookAir10,1");
    cr_assert_eq(queued_of_type("MAC-LATE", "InstallProfile"), 0);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups/Mixed%20Lab/members",
                       "{\"devices\":[\"MAC-LATE\"]}", NULL),
                 200);
    cr_assert_eq(queued_of_type("MAC-LATE", "InstallProfile"), 1, "joined a targeted group");
    /* ... and leaving it queues the removal */
    cr_assert_eq(h_api(&S, "DELETE", "/v1/device-groups/Mixed%20Lab/members",
                       "{\"devices\":[\"MAC-LATE\"]}", NULL),
                 200);
    cr_assert_eq(queued_of_type("MAC-LATE", "RemoveProfile"), 1, "left the targeted group");
    tu_cert_free(&late);

    /* A device targeted directly that enrolls after the policy exists gets it at enrollment. */
    struct tu_cert later = h_device_cert(&S, "IPHONE-LATE");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups/Mixed%20Lab/members",
                       "{\"devices\":[\"IPHONE-1\"]}", NULL),
                 200);
    h_enroll(&S, &later, "IPHONE-LATE", "iPhone15,3");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups/Mixed%20Lab/members",
                       "{\"devices\":[\"IPHONE-LATE\"]}", NULL),
                 200);
    cr_assert_eq(queued_of_type("IPHONE-LATE", "InstallProfile"), 1);
    tu_cert_free(&later);

    /* Delete: RemoveProfile where it was installed or pending (MAC-2 failed: nothing there). */
    cr_assert_eq(h_api(&S, "DELETE", policy_path, NULL, &j), 200);
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", policy_path, NULL, &j), 404);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "id");
    json_decref(j);
    free(policy_path);
    free(status_path);
    free(ident);
}

Test(api, policy_without_targets_is_saved_and_says_so)
{
    json_t *j = NULL;
    char *body = policy_body("No targets", "macos", "{}", 1024);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201);
    cr_assert(json_is_false(json_object_get(j, "takes_effect")));
    cr_assert(strstr(json_string_value(json_object_get(j, "message")), "no effect") != NULL);
    /* 1024-bit keys are the guide's default, but weak: a warning */
    cr_assert(strstr(h_json(json_object_get(j, "warnings")), "1024") != NULL);
    json_decref(j);
    free(body);
}

Test(api, bad_input_is_refused_naming_the_field_and_changes_nothing)
{
    json_t *j = NULL;
    struct tu_http_resp r;

    /* no key, wrong key: 401 (operators, not devices) */
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/policies", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    tu_http_resp_free(&r);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices",
                         "Authorization: Bearer nope\r\n", NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 401);
    cr_assert(strstr((char *)r.body, "\"field\":\"Authorization\"") != NULL);
    tu_http_resp_free(&r);

    /* malformed JSON, unknown fields, wrong types */
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", "{\"name\":", &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "body");
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\":\"x\",\"platform\":\"macos\",\"colour\":\"red\","
                       "\"scep\":{\"url\":\"http://ca/scep\"}}",
                       &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "colour");
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\":\"x\",\"platform\":\"windows\",\"scep\":{\"url\":\"ftp://ca\","
                       "\"key_size\":\"big\",\"fingerprint\":\"abc\"}}",
                       &j),
                 400);
    cr_assert_geq(json_array_size(json_object_get(j, "problems")), 4, "every problem listed");
    json_decref(j);
    /* a root certificate over 1 MB */
    {
        size_t big = 1100 * 1024;
        char *junk = xmalloc(big + 1);
        memset(junk, 'A', big);
        junk[big] = '\0';
        char *b = xasprintf("{\"name\":\"big\",\"platform\":\"macos\",\"scep\":{\"url\":"
                            "\"http://ca/scep\",\"root_certificate\":\"%s\"}}",
                            junk);
        cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 400);
        cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "scep.root_certificate");
        json_decref(j);
        free(b);
        free(junk);
    }
    /* unknown targets */
    char *body =
        policy_body("Ghost targets", "ios", "{\"device_groups\":[\"No Such Group\"]}", 2048);
    int st = h_api(&S, "POST", "/v1/policies", body, &j);
    cr_assert(st == 400 || st == 404, "%d", st);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "targets.device_groups");
    json_decref(j);
    free(body);
    /* duplicate name on the same platform: 409 */
    body = policy_body("Dup", "ios", "{}", 2048);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, NULL), 201);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 409);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "name");
    json_decref(j);
    free(body);
    /* unknown ids */
    cr_assert_eq(h_api(&S, "GET", "/v1/policies/999999", NULL, NULL), 404);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/NOPE", NULL, NULL), 404);
    cr_assert_eq(h_api(&S, "DELETE", "/v1/device-groups/Nope", NULL, NULL), 404);
    cr_assert_eq(h_api(&S, "GET", "/v1/nothing", NULL, NULL), 404);
    cr_assert_eq(h_api(&S, "PATCH", "/v1/policies", "{}", NULL), 405);

    /* nothing changed: only the one valid policy exists */
    cr_assert_eq(h_api(&S, "GET", "/v1/policies", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "policies")), 1);
    json_decref(j);
    cr_assert_eq(queued_of_type("IPHONE-1", "InstallProfile"), 0);
}

Test(api, groups_commands_push_and_api_keys)
{
    json_t *j = NULL;
    struct tu_http_resp r;

    /* groups */
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"Mixed Lab\"}", &j), 409);
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"bad/name\"}", NULL), 400);
    cr_assert_eq(h_api(&S, "PATCH", "/v1/device-groups/Mixed%20Lab", "{\"name\":\"Lab\"}", NULL),
                 200);
    cr_assert_eq(h_api(&S, "GET", "/v1/device-groups/Lab", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "devices")), 3);
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?group=Lab&platform=ipados", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?platform=android", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "platform");
    json_decref(j);
    /* search by UDID, serial or name (case-insensitive); total counts past the page */
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?q=ipad-&limit=1", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 1);
    cr_assert_geq(json_integer_value(json_object_get(j, "total")), 1);
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(j, "devices"), 0), "udid")),
                     "IPAD-1");
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?q=no-such-device", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 0);
    json_decref(j);
    /* the group list says which platforms the members run */
    cr_assert_eq(h_api(&S, "GET", "/v1/device-groups", NULL, &j), 200);
    {
        json_t *g = json_array_get(json_object_get(j, "device_groups"), 0), *mix;
        cr_assert_str_eq(json_string_value(json_object_get(g, "name")), "Lab");
        mix = json_object_get(g, "platforms");
        cr_assert_eq(json_integer_value(json_object_get(mix, "ipados")), 1);
        size_t sum = 0;
        const char *k;
        json_t *v;
        json_object_foreach(mix, k, v) sum += (size_t)json_integer_value(v);
        cr_assert_eq(sum, (size_t)json_integer_value(json_object_get(g, "members")));
    }
    json_decref(j);

    /* one command to a group and a device */
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"device_groups\":[\"Lab\"],\"devices\":[\"MAC-1\"],\"push\":false,"
                       "\"command\":{\"request_type\":\"ProfileList\",\"managed_only\":true}}",
                       &j),
                 201);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued")), 4);
    json_decref(j);
    cr_assert_eq(queued_of_type("IPAD-1", "ProfileList"), 1);
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"devices\":[\"MAC-1\"],\"command\":{\"request_type\":\"Reboot\"}}", &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "command.request_type");
    json_decref(j);
    /* a raw plist command */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/MAC-1/commands",
                       "{\"command\":{\"plist\":\"<?xml version=\\\"1.0\\\"?><plist version="
                       "\\\"1.0\\\"><dict><key>RequestType</key><string>SecurityInfo</string>"
                       "</dict></plist>\"},\"push\":false}",
                       &j),
                 201);
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_type")), "SecurityInfo");
    json_decref(j);
    /* clear and cancel */
    cr_assert_eq(h_api(&S, "DELETE", "/v1/devices/MAC-1/commands", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "cancelled")), 2);
    json_decref(j);

    /* push needs a push certificate */
    cr_assert_eq(h_api(&S, "POST", "/v1/push", "{\"devices\":[\"MAC-1\"]}", &j), 409);
    json_decref(j);

    /* API keys: created keys work, deleted ones do not; only hashes are kept */
    cr_assert_eq(h_api(&S, "POST", "/v1/apikeys", "{\"name\":\"ci\"}", &j), 201);
    char *key = xstrdup(json_string_value(json_object_get(j, "key")));
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    char *hdr = xasprintf("Authorization: Bearer %s\r\n", key);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices", hdr, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    cr_assert_eq(h_api(&S, "GET", "/v1/apikeys", NULL, &j), 200);
    cr_assert(strstr(h_json(j), key) == NULL, "the key is never shown again");
    json_decref(j);
    /* its last_used is written in the worker's next flush (last_seen_flush_ms = 100) */
    bool used = false;
    for (int i = 0; i < 100 && !used; i++) {
        cr_assert_eq(h_api(&S, "GET", "/v1/apikeys", NULL, &j), 200);
        json_t *k, *keys = json_object_get(j, "api_keys");
        size_t ki;
        json_array_foreach(keys, ki, k)
        {
            if (json_integer_value(json_object_get(k, "id")) == id)
                used = json_is_string(json_object_get(k, "last_used"));
        }
        json_decref(j);
        if (!used)
            usleep(50000);
    }
    cr_assert(used, "last_used of a key that authenticated a request is shown");
    char *path = xasprintf("/v1/apikeys/%lld", (long long)id);
    cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices", hdr, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    tu_http_resp_free(&r);
    free(path);
    free(hdr);
    free(key);
}

Test(api, health_and_metrics_need_no_key_and_move_with_traffic)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr((char *)r.body, "\"status\":\"ok\"") != NULL);
    tu_http_resp_free(&r);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    /* setup enrolled four devices: four Authenticate and four TokenUpdate */
    cr_assert(strstr((char *)r.body,
                     "scepter_checkins_total{message_type=\"Authenticate\",result=\"ok\"} 4") !=
                  NULL,
              "%s", r.body);
    cr_assert(strstr((char *)r.body,
                     "scepter_checkins_total{message_type=\"TokenUpdate\",result=\"ok\"} 4") !=
              NULL);
    tu_http_resp_free(&r);
    char uuid[64];
    plist_t c = fetch(&ipad, "IPAD-1", NULL, NULL, uuid);
    cr_assert_null(c);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "scepter_connects_total{status=\"Idle\",result=\"ok\"} 1") !=
              NULL);
    cr_assert(strstr((char *)r.body, "scepter_queue_depth 0") != NULL);
    tu_http_resp_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* Policy profiles are CMS-signed when a signing identity is configured                      */

static char *sign_dir;
static struct tu_cert sign_ca, sign_cert, other_ca;

static void signing_setup(void)
{
    struct tu_cert_opts ca = {.cn = "Scepter Test Signing CA", .not_after = 86400};
    struct tu_cert_opts leaf = {.cn = "Scepter Test Profile Signing", .not_after = 86400};
    struct tu_cert_opts other = {.cn = "Some Other CA", .not_after = 86400};

    sign_dir = tu_tmpdir();
    sign_ca = tu_ca_new(&ca);
    sign_cert = tu_cert_issue(&sign_ca, &leaf);
    other_ca = tu_ca_new(&other);
    char *p = xasprintf("%s/signing.pem", sign_dir), *k = xasprintf("%s/signing.key", sign_dir);
    tu_cert_write(&sign_cert, p, k);
    char *extra = xasprintf("signing_cert_file = %s\nsigning_key_file = %s\n", p, k);
    struct h_opts o = {.extra = extra};
    h_start(&S, &o);
    free(extra);
    free(p);
    free(k);
    p = xasprintf("%s/ca.pem", sign_dir);
    tu_cert_write(&sign_ca, p, NULL);
    free(p);
    p = xasprintf("%s/other-ca.pem", sign_dir);
    tu_cert_write(&other_ca, p, NULL);
    free(p);
    mac1 = h_device_cert(&S, "SIGNED-MAC");
    h_enroll(&S, &mac1, "SIGNED-MAC", "Mac14,2");
}

static void signing_teardown(void)
{
    tu_cert_free(&mac1);
    tu_cert_free(&sign_ca);
    tu_cert_free(&sign_cert);
    tu_cert_free(&other_ca);
    h_stop(&S);
    tu_rmtree(sign_dir);
    free(sign_dir);
}

/* openssl cms -verify of the DER in dir/name against a CA file; its exit status. */
static int cms_verify(const char *name, const char *ca_file, const char *out_name)
{
    char *cmd = xasprintf("openssl cms -verify -inform DER -in '%s/%s' -CAfile '%s/%s' "
                          "-purpose any -out '%s/%s' 2>/dev/null",
                          sign_dir, name, sign_dir, ca_file, sign_dir, out_name);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

Test(api_signing, policy_profiles_are_signed_like_the_enrollment_profile, .init = signing_setup,
     .fini = signing_teardown)
{
    json_t *j = NULL;
    char uuid[64];
    const unsigned char *payload;
    size_t len;
    plist_t c = NULL;
    struct scepter_error err;

    cr_assert_eq(
        h_api(&S, "POST", "/v1/policies",
              "{\"name\":\"Signed Wi-Fi\",\"platform\":\"macos\",\"scep\":{\"url\":"
              "\"http://127.0.0.1:9/scep\",\"name\":\"CA\",\"challenge\":\"s3cret\",\"subject\":"
              "\"/O=Scepter/CN=%SerialNumber%/\"},\"targets\":{\"devices\":[\"SIGNED-MAC\"]}}",
              &j),
        201, "%s", h_json(j));
    json_decref(j);
    plist_t cmd = fetch(&mac1, "SIGNED-MAC", NULL, NULL, uuid);
    cr_assert_not_null(cmd, "the device gets its InstallProfile");
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_data(c, "Payload", true, &payload, &len, &err), 0);
    cr_assert(len > 2 && payload[0] == 0x30, "the payload is DER (CMS), not an XML plist");
    char *path = xasprintf("%s/payload.der", sign_dir);
    tu_write(path, payload, len);
    free(path);

    cr_assert_eq(cms_verify("payload.der", "ca.pem", "content.plist"), 0,
                 "openssl cms -verify accepts the signature against the signing CA");
    cr_assert_neq(cms_verify("payload.der", "other-ca.pem", "other.plist"), 0,
                  "and refuses it against another CA");
    path = xasprintf("%s/content.plist", sign_dir);
    size_t clen;
    unsigned char *content = tu_read(path, &clen);
    free(path);
    plist_t prof = NULL;
    cr_assert_eq(plistx_parse_dict(content, clen, &prof, &err), 0, "%s", err.msg);
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    cr_assert_not_null(arr);
    plist_t first = plist_array_get_item(arr, 0);
    const char *ptype = NULL;
    cr_assert_eq(plistx_get_string(first, "PayloadType", true, &ptype, &err), 0);
    cr_assert_str_eq(ptype, "com.apple.security.scep");
    plist_free(prof);
    free(content);
    plist_free(cmd);
}

/* A device that unenrolls and enrolls again gets its SCEP policy again (unenrolling removed
 * every profile MDM installed). */
Test(api, a_reenrolled_device_gets_its_policy_again)
{
    json_t *j = NULL;
    char uuid[64];
    struct tu_http_resp r;

    char *body = policy_body("Re-enroll Wi-Fi", "macos", "{\"devices\":[\"MAC-1\"]}", 2048);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    json_decref(j);
    free(body);
    plist_t cmd = fetch(&mac1, "MAC-1", NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_free(cmd);
    cmd = fetch(&mac1, "MAC-1", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd, "installed; nothing else queued");

    sleep(1); /* the new enrollment starts in a later second than the install */
    char *co = h_plist("MessageType", "CheckOut", "UDID", "MAC-1", NULL);
    cr_assert_eq(h_checkin(&S, &mac1, co, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(co);
    h_enroll(&S, &mac1, "MAC-1", "MacBookPro18,3");

    cmd = fetch(&mac1, "MAC-1", NULL, NULL, uuid);
    cr_assert_not_null(cmd, "the re-enrolled Mac is sent its policy again");
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_free(cmd);
    cmd = fetch(&mac1, "MAC-1", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd);
    cr_assert_eq(h_api(&S, "GET", "/v1/policies", NULL, &j), 200);
    json_decref(j);
}

/* POST /v1/commands naming one device takes a shorter way (one statement on PostgreSQL): what
 * it queues and how it refuses are those of the general way. */
Test(api, single_device_enqueue_queues_once_and_refuses_like_the_general_way)
{
    json_t *j = NULL;
    struct tu_http_resp r;

    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"devices\":[\"IPHONE-1\"],\"command\":{\"request_type\":"
                       "\"CertificateList\"},\"priority\":7,\"expires_in\":\"1h\"}",
                       &j),
                 201, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued")), 1);
    cr_assert(json_is_true(json_object_get(j, "pushed")));
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    cr_assert_eq(queued_of_type("IPHONE-1", "CertificateList"), 1);
    /* Its audit entry (committed with the command) is there once, naming the command. */
    char *apath = xasprintf("/v1/audit?action=command.enqueue&object=%s", uuid);
    cr_assert_eq(h_api(&S, "GET", apath, NULL, &j), 200, "%s", h_json(j));
    json_t *entries = json_object_get(j, "entries");
    cr_assert_eq(json_array_size(entries), 1, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(entries, 0), "route")),
                     "POST /v1/commands");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(entries, 0), "actor"), "type")),
                     "api_key", "%s", h_json(j));
    json_decref(j);
    free(apath);
    char *path = xasprintf("/v1/devices/IPHONE-1/commands/%s", uuid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "queued");
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_type")), "CertificateList");
    json_decref(j);
    /* The device gets it, and its result is kept. */
    char *idle = h_plist("Status", "Idle", "UDID", "IPHONE-1", NULL);
    cr_assert_eq(h_connect(&S, &iphone, idle, &r), 0);
    cr_assert(r.body_len && strstr((char *)r.body, uuid) != NULL, "delivered");
    tu_http_resp_free(&r);
    char *ack = h_plist("Status", "Acknowledged", "UDID", "IPHONE-1", "CommandUUID", uuid, NULL);
    cr_assert_eq(h_connect(&S, &iphone, ack, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "Acknowledged");
    json_decref(j);

    /* Not a device here: the general way's 404 naming the field. */
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"devices\":[\"NO-SUCH-DEVICE\"],\"command\":{\"request_type\":"
                       "\"ProfileList\"}}",
                       &j),
                 404, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "targets.devices");
    json_decref(j);
    /* Known but not enrolled (Authenticate without TokenUpdate): 409, nothing queued. */
    struct tu_cert half = h_device_cert(&S, "HALF-1");
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "HALF-1",
                         "ProductName", "iPhone14,2", "SerialNumber", "SN-HALF", NULL);
    cr_assert_eq(h_checkin(&S, &half, auth, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    cr_assert_eq(h_api(&S, "POST", "/v1/commands",
                       "{\"devices\":[\"HALF-1\"],\"command\":{\"request_type\":\"ProfileList\"}}",
                       &j),
                 409, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/HALF-1/commands", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "commands")), 0, "%s", h_json(j));
    json_decref(j);
    free(auth);
    tu_cert_free(&half);
    free(idle);
    free(ack);
    free(path);
    free(uuid);
}

/* A device's history through the API, a page at a time: queued ones first (once), then the
 * finished ones newest first, the cursor to the end; bad paging parameters name themselves. */
Test(api, device_history_is_paged_newest_first)
{
    json_t *j = NULL;
    char uuids[5][64];

    for (int i = 0; i < 5; i++) {
        cr_assert_eq(h_api(&S, "POST", "/v1/devices/MAC-2/commands",
                           "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false}", &j),
                     201);
        snprintf(uuids[i], sizeof(uuids[i]), "%s", json_string_value(json_object_get(j, "uuid")));
        json_decref(j);
    }
    /* Four cancelled (the history), the last one still queued. */
    for (int i = 0; i < 4; i++) {
        char *path = xasprintf("/v1/devices/MAC-2/commands/%s", uuids[i]);
        cr_assert_eq(h_api(&S, "DELETE", path, NULL, NULL), 200, "%s", path);
        free(path);
    }

    char *path = xstrdup("/v1/devices/MAC-2/commands?all=true&limit=3");
    int seen = 0, pages = 0;
    bool queued_seen = false;
    for (; path && pages < 5; pages++) {
        cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200, "%s", path);
        json_t *list = json_object_get(j, "commands"), *v;
        size_t i;
        json_array_foreach(list, i, v)
        {
            const char *u = json_string_value(json_object_get(v, "uuid"));
            if (json_is_true(json_object_get(v, "active"))) {
                cr_assert_eq(pages, 0, "the queued command comes with the first page only");
                cr_assert_str_eq(u, uuids[4]);
                queued_seen = true;
                continue;
            }
            cr_assert_str_eq(u, uuids[3 - seen], "history entry %d", seen);
            cr_assert_str_eq(json_string_value(json_object_get(v, "status")), "cancelled");
            seen++;
        }
        json_t *next = json_object_get(j, "next_before");
        free(path);
        path = next ? xasprintf("/v1/devices/MAC-2/commands?all=true&limit=3&before=%lld",
                                (long long)json_integer_value(next))
                    : NULL;
        json_decref(j);
    }
    cr_assert_null(path);
    cr_assert_eq(pages, 2);
    cr_assert_eq(seen, 4);
    cr_assert(queued_seen);

    /* The default page holds them all; without all=true only what is queued. */
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/MAC-2/commands?all=true", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "commands")), 5);
    cr_assert_null(json_object_get(j, "next_before"));
    json_decref(j);
    cr_assert_eq(queued_of_type("MAC-2", "ProfileList"), 1);

    static const struct {
        const char *query, *field;
    } bad[] = {{"all=true&limit=0", "limit"},
               {"all=true&limit=1001", "limit"},
               {"all=true&limit=ten", "limit"},
               {"all=true&before=0", "before"},
               {"before=5", "before"}};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char *p = xasprintf("/v1/devices/MAC-2/commands?%s", bad[k].query);
        cr_assert_eq(h_api(&S, "GET", p, NULL, &j), 400, "%s", p);
        cr_assert_str_eq(json_string_value(json_object_get(j, "field")), bad[k].field, "%s", p);
        json_decref(j);
        free(p);
    }
}

/* The device list a page at a time by cursor: next_after to the end, every device once, no
 * total (it would cost the fleet); offset paging keeps its total; the two do not mix. */
Test(api, device_list_pages_by_cursor)
{
    json_t *j = NULL;
    char *path = xstrdup("/v1/devices?limit=1"), *last = NULL;
    int seen = 0, pages = 0;

    for (; path && pages < 10; pages++) {
        cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200, "%s", path);
        json_t *list = json_object_get(j, "devices");
        cr_assert_eq(json_array_size(list), 1, "%s", h_json(j));
        const char *udid = json_string_value(json_object_get(json_array_get(list, 0), "udid"));
        cr_assert(last == NULL || strcmp(last, udid) < 0, "%s after %s", udid, last);
        free(last);
        last = xstrdup(udid);
        seen++;
        cr_assert_eq(json_object_get(j, "total") != NULL, pages == 0,
                     "total only without a cursor: %s", h_json(j));
        json_t *next = json_object_get(j, "next_after");
        free(path);
        path = next ? xasprintf("/v1/devices?limit=1&after=%s", json_string_value(next)) : NULL;
        json_decref(j);
    }
    cr_assert_null(path);
    cr_assert_eq(seen, 4, "the four enrolled devices");
    free(last);

    cr_assert_eq(h_api(&S, "GET", "/v1/devices", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 4);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 4);
    cr_assert_null(json_object_get(j, "next_after"));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?after=IPAD-1&offset=1", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "after");
    json_decref(j);
}
