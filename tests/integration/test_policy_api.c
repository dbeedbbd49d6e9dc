/*
 * The console's policy API over HTTPS, on both store backends: default names and 409 on a
 * used name, the list with search, sort, paging, counts and targets, the per-device status
 * with its error chain and paging, the preview of one device's profile, the variables per
 * platform (and a policy refused for one iOS cannot resolve), POST /v1/certificates/inspect
 * and the same root-certificate checks on save.  Every error names its field.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/sha.h>

#include "common/codec.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

static struct h_server S;
static struct tu_cert mac1, iphone;

static void setup(void)
{
    h_start(&S, NULL);
    mac1 = h_device_cert(&S, "MAC-1");
    iphone = h_device_cert(&S, "IPHONE-1");
    h_enroll(&S, &mac1, "MAC-1", "MacBookPro18,3");
    h_enroll(&S, &iphone, "IPHONE-1", "iPhone14,2");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups",
                       "{\"name\":\"Lab\",\"devices\":[\"MAC-1\",\"IPHONE-1\"]}", NULL),
                 201);
}

static void teardown(void)
{
    tu_cert_free(&mac1);
    tu_cert_free(&iphone);
    h_stop(&S);
}

TestSuite(policy_api, .init = setup, .fini = teardown);

/* A policy body; name NULL leaves "name" out. */
static char *body_of(const char *name, const char *platform, const char *subject,
                     const char *targets)
{
    char *n = name ? xasprintf("\"name\":\"%s\",", name) : xstrdup("");
    char *b = xasprintf("{%s\"platform\":\"%s\",\"scep\":{\"url\":\"http://127.0.0.1:9/scep\","
                        "\"challenge\":\"s3cret\",\"key_size\":2048,\"subject\":\"%s\"},"
                        "\"targets\":%s}",
                        n, platform, subject, targets);
    free(n);
    return b;
}

static const char *field_of(json_t *j)
{
    const char *f = json_string_value(json_object_get(j, "field"));
    return f ? f : "(none)";
}

static int64_t create(const char *name, const char *platform, const char *targets)
{
    json_t *j = NULL;
    char *b = body_of(name, platform, "/O=Scepter/CN=%SerialNumber%/", targets);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    free(b);
    return id;
}

/* GET path expecting status; returns the body (caller decrefs). */
static json_t *get(const char *path, int status)
{
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), status, "GET %s: %s", path, h_json(j));
    return j;
}

static void expect_error(const char *method, const char *path, const char *body, int status,
                         const char *field)
{
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, method, path, body, &j), status, "%s %s: %s", method, path, h_json(j));
    cr_assert_str_eq(field_of(j), field, "%s %s: %s", method, path, h_json(j));
    cr_assert_not_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
}

Test(policy_api, default_names_and_409_on_a_used_name)
{
    json_t *j = NULL;
    char *b = body_of(NULL, "macos", "/CN=x/", "{}");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "Mac SCEP Profiles");
    json_decref(j);
    /* the same again: the default name is taken */
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 409, "%s", h_json(j));
    cr_assert_str_eq(field_of(j), "name");
    json_decref(j);
    free(b);
    b = body_of(NULL, "ios", "/CN=x/", "{}");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "iOS SCEP Profiles");
    json_decref(j);
    free(b);

    /* PUT: renaming onto a used name is 409; without a name it takes the default */
    int64_t id = create("Second Mac", "macos", "{}");
    char *path = xasprintf("/v1/policies/%lld", (long long)id);
    b = body_of("Mac SCEP Profiles", "macos", "/CN=y/", "{}");
    expect_error("PUT", path, b, 409, "name");
    free(b);
    b = body_of(NULL, "macos", "/CN=y/", "{}");
    expect_error("PUT", path, b, 409, "name");
    free(b);
    j = get(path, 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "Second Mac", "unchanged");
    json_decref(j);
    free(path);
}

Test(policy_api, list_searches_sorts_pages_and_counts)
{
    int64_t a = create("Alpha Wi-Fi", "macos", "{\"devices\":[\"MAC-1\"]}");
    int64_t b = create("beta VPN", "ios", "{\"device_groups\":[\"Lab\"]}");
    int64_t c = create("Gamma Wi-Fi", "ios", "{}");
    json_t *j, *p;

    j = get("/v1/policies", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3);
    p = json_array_get(json_object_get(j, "policies"), 0);
    cr_assert_eq(json_integer_value(json_object_get(p, "id")), a, "by id without sort");
    cr_assert_str_eq(json_string_value(json_array_get(
                         json_object_get(json_object_get(p, "targets"), "devices"), 0)),
                     "MAC-1");
    /* MAC-1 has it queued: pending */
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "counts"), "pending")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "counts"), "installed")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "counts"), "failed")), 0);
    p = json_array_get(json_object_get(j, "policies"), 1);
    cr_assert_str_eq(json_string_value(json_array_get(
                         json_object_get(json_object_get(p, "targets"), "groups"), 0)),
                     "Lab");
    cr_assert_not_null(json_string_value(json_object_get(p, "updated")));
    cr_assert_str_eq(json_string_value(json_object_get(p, "platform")), "ios");
    /* the iOS group member only: the Mac is not reached by an iOS policy */
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "counts"), "pending")), 1);
    json_decref(j);

    /* search: case-insensitive substring of the name */
    j = get("/v1/policies?q=wi-fi", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 2);
    json_decref(j);
    j = get("/v1/policies?q=nothing", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 0);
    cr_assert_eq(json_array_size(json_object_get(j, "policies")), 0);
    json_decref(j);

    /* sort by name (case-insensitive), descending, paged */
    j = get("/v1/policies?sort=name&order=desc&limit=2", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3);
    cr_assert_eq(json_array_size(json_object_get(j, "policies")), 2);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 0), "id")),
                 c);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 1), "id")),
                 b);
    json_decref(j);
    j = get("/v1/policies?sort=name&order=desc&limit=2&offset=2", 200);
    cr_assert_eq(json_array_size(json_object_get(j, "policies")), 1);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 0), "id")),
                 a);
    json_decref(j);
    /* by platform: ios first, then by name */
    j = get("/v1/policies?sort=platform", 200);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 0), "id")),
                 b);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 2), "id")),
                 a);
    json_decref(j);
    /* by update time: an update moves a policy last */
    char *path = xasprintf("/v1/policies/%lld", (long long)a);
    sleep(1);
    char *body = body_of("Alpha Wi-Fi", "macos", "/CN=z/", "{\"devices\":[\"MAC-1\"]}");
    cr_assert_eq(h_api(&S, "PUT", path, body, NULL), 200);
    free(body);
    free(path);
    j = get("/v1/policies?sort=updated&platform=macos", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 1, "platform filter");
    json_decref(j);
    j = get("/v1/policies?sort=updated&order=asc", 200);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "policies"), 2), "id")),
                 a);
    json_decref(j);

    /* bad parameters, each named */
    expect_error("GET", "/v1/policies?sort=size", NULL, 400, "sort");
    expect_error("GET", "/v1/policies?order=up", NULL, 400, "order");
    expect_error("GET", "/v1/policies?limit=0", NULL, 400, "limit");
    expect_error("GET", "/v1/policies?limit=1001", NULL, 400, "limit");
    expect_error("GET", "/v1/policies?limit=ten", NULL, 400, "limit");
    expect_error("GET", "/v1/policies?offset=-1", NULL, 400, "offset");
    expect_error("GET", "/v1/policies?platform=windows", NULL, 400, "platform");
}

/* The device fetches its next command and answers it with status (and an error chain). */
static void answer(const struct tu_cert *id, const char *udid, bool fail)
{
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(&S, id, idle, &r), 0);
    cr_assert_eq(r.status, 200);
    const char *u = strstr((char *)r.body, "<key>CommandUUID</key>");
    cr_assert_not_null(u, "no command for %s", udid);
    char uuid[64];
    cr_assert_eq(sscanf(u, "<key>CommandUUID</key>%*[ \t\n]<string>%63[^<]", uuid), 1);
    tu_http_resp_free(&r);
    free(idle);
    char *reply =
        fail ? xasprintf("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key>"
                         "<string>Error</string><key>UDID</key><string>%s</string>"
                         "<key>CommandUUID</key><string>%s</string><key>ErrorChain</key><array>"
                         "<dict><key>ErrorCode</key><integer>22013</integer><key>ErrorDomain"
                         "</key><string>MCSCEPErrorDomain</string><key>LocalizedDescription"
                         "</key><string>The SCEP server rejected the challenge.</string></dict>"
                         "</array></dict></plist>",
                         udid, uuid)
             : h_plist("Status", "Acknowledged", "UDID", udid, "CommandUUID", uuid, NULL);
    cr_assert_eq(h_connect(&S, id, reply, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(reply);
}

Test(policy_api, status_per_device_with_error_chain_and_paging)
{
    struct tu_cert mac2 = h_device_cert(&S, "MAC-2"), mac3 = h_device_cert(&S, "MAC-3");
    h_enroll(&S, &mac2, "MAC-2", "Mac14,2");
    h_enroll(&S, &mac3, "MAC-3", "Mac14,2");
    int64_t id = create("Status", "macos", "{\"devices\":[\"MAC-1\",\"MAC-2\",\"MAC-3\"]}");
    answer(&mac1, "MAC-1", false);
    answer(&mac2, "MAC-2", true);
    char *path = xasprintf("/v1/policies/%lld/status", (long long)id);
    json_t *j = get(path, 200), *d;
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3);
    json_t *devs = json_object_get(j, "devices");
    cr_assert_eq(json_array_size(devs), 3);
    d = json_array_get(devs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(d, "udid")), "MAC-1");
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "installed");
    cr_assert_str_eq(json_string_value(json_object_get(d, "serial")), "SN-TEST");
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Test device");
    cr_assert_str_eq(json_string_value(json_object_get(d, "platform")), "macos");
    cr_assert(json_is_null(json_object_get(d, "error")));
    cr_assert_not_null(json_string_value(json_object_get(d, "updated")));
    d = json_array_get(devs, 1);
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "failed");
    json_t *e = json_object_get(d, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")),
                     "The SCEP server rejected the challenge.");
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(e, "chain"), 0), "ErrorCode")),
                 22013);
    d = json_array_get(devs, 2);
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "pending");
    /* the existing shape is still there */
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "failed")), 1);
    cr_assert_eq(json_array_size(json_object_get(j, "installed")), 1);
    json_decref(j);

    char *q = xasprintf("%s?state=failed", path);
    j = get(q, 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 1);
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(j, "devices"), 0), "udid")),
                     "MAC-2");
    json_decref(j);
    free(q);
    q = xasprintf("%s?limit=1&offset=2", path);
    j = get(q, 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3);
    cr_assert_eq(json_array_size(json_object_get(j, "devices")), 1);
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(j, "devices"), 0), "udid")),
                     "MAC-3");
    json_decref(j);
    free(q);
    q = xasprintf("%s?state=broken", path);
    expect_error("GET", q, NULL, 400, "state");
    free(q);
    q = xasprintf("%s?limit=-5", path);
    expect_error("GET", q, NULL, 400, "limit");
    free(q);
    q = xasprintf("%s?offset=x", path);
    expect_error("GET", q, NULL, 400, "offset");
    free(q);
    expect_error("GET", "/v1/policies/424242/status", NULL, 404, "id");
    free(path);
    tu_cert_free(&mac2);
    tu_cert_free(&mac3);
}

/* GET a preview: status, content type and body. */
static int preview(const char *path, char **ctype, char **body)
{
    struct tu_http_resp r;
    char buf[128];
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", path,
                         "Authorization: Bearer " H_API_KEY "\r\n", NULL, 0, &r),
                 0);
    const char *ct = tu_http_header(&r, "content-type", buf, sizeof(buf));
    *ctype = xstrdup(ct ? ct : "");
    *body = xmemdup0(r.body, r.body_len);
    int st = r.status;
    tu_http_resp_free(&r);
    return st;
}

Test(policy_api, preview_renders_one_devices_profile)
{
    int64_t ios = create("Phones", "ios", "{\"device_groups\":[\"Lab\"]}");
    int64_t mac = create("Macs", "macos", "{}");
    char *path = xasprintf("/v1/policies/%lld/preview?device=IPHONE-1", (long long)ios);
    char *ct, *body;

    cr_assert_eq(preview(path, &ct, &body), 200, "%s", body);
    cr_assert_str_eq(ct, "application/x-apple-aspen-config");
    cr_assert(strstr(body, "<?xml") == body, "%.80s", body);
    cr_assert(strstr(body, "CN=SN-TEST") || strstr(body, "<string>SN-TEST</string>"),
              "iOS: %%SerialNumber%% filled in: %s", body);
    cr_assert_null(strstr(body, "%SerialNumber%"));
    cr_assert(strstr(body, "s3cret"), "the challenge as in the profile");
    cr_assert(strstr(body, "com.apple.security.scep"));
    free(ct);
    free(body);
    free(path);
    /* macOS leaves Apple's variables to the Mac; the preview is not a queued command */
    path = xasprintf("/v1/policies/%lld/preview?device=MAC-1", (long long)mac);
    cr_assert_eq(preview(path, &ct, &body), 200, "%s", body);
    cr_assert(strstr(body, "%SerialNumber%"), "%s", body);
    free(ct);
    free(body);
    free(path);
    json_t *j = get("/v1/devices/MAC-1/commands", 200);
    cr_assert_eq(json_array_size(json_object_get(j, "commands")), 0, "%s", h_json(j));
    json_decref(j);

    path = xasprintf("/v1/policies/%lld/preview?device=NOPE", (long long)ios);
    expect_error("GET", path, NULL, 404, "device");
    free(path);
    path = xasprintf("/v1/policies/%lld/preview", (long long)ios);
    expect_error("GET", path, NULL, 400, "device");
    free(path);
    path = xasprintf("/v1/policies/%lld/preview?device=MAC-1", (long long)ios);
    expect_error("GET", path, NULL, 400, "device"); /* an iOS policy does not reach a Mac */
    free(path);
    expect_error("GET", "/v1/policies/424242/preview?device=MAC-1", NULL, 404, "id");
}

Test(policy_api, variables_per_platform_and_refused_on_ios)
{
    json_t *j = get("/v1/policy-variables?platform=macos", 200), *v;
    size_t i, nmac = json_array_size(json_object_get(j, "variables"));
    bool local = false, serial = false;
    json_array_foreach(json_object_get(j, "variables"), i, v)
    {
        const char *n = json_string_value(json_object_get(v, "name"));
        cr_assert_not_null(json_string_value(json_object_get(v, "description")));
        if (strcmp(n, "%LocalHostName%") == 0) {
            local = true;
            cr_assert_eq(json_array_size(json_object_get(v, "platforms")), 1);
        }
        if (strcmp(n, "%SerialNumber%") == 0) {
            serial = true;
            cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "platforms"), 1)),
                             "ios");
        }
    }
    cr_assert(local && serial);
    json_decref(j);
    j = get("/v1/policy-variables?platform=ios", 200);
    cr_assert_lt(json_array_size(json_object_get(j, "variables")), nmac);
    json_array_foreach(json_object_get(j, "variables"), i, v)
        cr_assert_str_neq(json_string_value(json_object_get(v, "name")), "%LocalHostName%");
    json_decref(j);
    j = get("/v1/policy-variables", 200);
    cr_assert_eq(json_array_size(json_object_get(j, "variables")), nmac);
    json_decref(j);
    expect_error("GET", "/v1/policy-variables?platform=tvos", NULL, 400, "platform");

    /* a variable iOS cannot resolve: refused on save, naming the field */
    char *b = body_of("Bad iOS", "ios", "/CN=%LocalHostName%/", "{}");
    expect_error("POST", "/v1/policies", b, 400, "scep.subject");
    free(b);
    b = xasprintf("{\"name\":\"Bad SAN\",\"platform\":\"ios\",\"scep\":{\"url\":"
                  "\"http://127.0.0.1:9/scep\",\"subject_alt_name\":{\"dns_name\":"
                  "\"%%MACAddress%%.example.com\"}}}");
    expect_error("POST", "/v1/policies", b, 400, "scep.subject_alt_name.dns_name");
    free(b);
    /* the same on macOS is fine */
    create("Good Mac", "macos", "{}");
}

static char *inspect_body(const void *data, size_t len)
{
    char *b64 = base64_encode(data, len);
    char *b = xasprintf("{\"data\":\"%s\"}", b64);
    free(b64);
    return b;
}

Test(policy_api, certificate_inspect_and_the_same_checks_on_save)
{
    struct tu_cert ca = tu_ca_new(NULL);
    unsigned char *der = NULL;
    int derlen = i2d_X509(ca.cert, &der);
    unsigned char sha[SHA256_DIGEST_LENGTH];
    char *hex, *b;
    json_t *j = NULL;

    cr_assert_gt(derlen, 0);
    SHA256(der, (size_t)derlen, sha);
    hex = hex_encode(sha, sizeof(sha), false);
    b = inspect_body(der, (size_t)derlen);
    cr_assert_eq(h_api(&S, "POST", "/v1/certificates/inspect", b, &j), 200, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "sha256")), hex);
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "sha1"))), 40);
    cr_assert(strstr(json_string_value(json_object_get(j, "subject")), "CN=Test CA"), "%s",
              h_json(j));
    cr_assert(strstr(json_string_value(json_object_get(j, "issuer")), "CN=Test CA"));
    cr_assert_not_null(json_string_value(json_object_get(j, "not_after")));
    json_decref(j);
    free(b);
    free(hex);
    /* PEM works too */
    char *pem = tu_cert_pem(&ca);
    b = inspect_body(pem, strlen(pem));
    cr_assert_eq(h_api(&S, "POST", "/v1/certificates/inspect", b, &j), 200, "%s", h_json(j));
    json_decref(j);
    free(b);

    /* PEM with the private key: refused, on inspect and on save */
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PrivateKey(bio, ca.key, NULL, NULL, 0, NULL, NULL));
    char *kp = NULL;
    long kl = BIO_get_mem_data(bio, &kp);
    char *both = xasprintf("%s%.*s", pem, (int)kl, kp);
    b = inspect_body(both, strlen(both));
    cr_assert_eq(h_api(&S, "POST", "/v1/certificates/inspect", b, &j), 400, "%s", h_json(j));
    cr_assert_str_eq(field_of(j), "root_certificate");
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), "private key"), "%s",
              h_json(j));
    json_decref(j);
    free(b);
    char *b64 = base64_encode(both, strlen(both));
    b = xasprintf("{\"name\":\"Key inside\",\"platform\":\"macos\",\"scep\":{\"url\":"
                  "\"http://127.0.0.1:9/scep\",\"root_certificate\":\"%s\"}}",
                  b64);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 400, "%s", h_json(j));
    cr_assert_str_eq(field_of(j), "scep.root_certificate");
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), "private key"), "%s",
              h_json(j));
    json_decref(j);
    free(b);
    free(b64);
    /* a DER private key: refused as a key, on inspect and on save */
    unsigned char *kder = NULL;
    int kdl = i2d_PrivateKey(ca.key, &kder);
    cr_assert_gt(kdl, 0);
    b = inspect_body(kder, (size_t)kdl);
    cr_assert_eq(h_api(&S, "POST", "/v1/certificates/inspect", b, &j), 400, "%s", h_json(j));
    cr_assert_str_eq(field_of(j), "root_certificate");
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), "private key"), "%s",
              h_json(j));
    json_decref(j);
    free(b);
    b64 = base64_encode(kder, (size_t)kdl);
    b = xasprintf("{\"name\":\"DER key\",\"platform\":\"macos\",\"scep\":{\"url\":"
                  "\"http://127.0.0.1:9/scep\",\"root_certificate\":\"%s\"}}",
                  b64);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 400, "%s", h_json(j));
    cr_assert_str_eq(field_of(j), "scep.root_certificate");
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), "private key"), "%s",
              h_json(j));
    json_decref(j);
    free(b);
    free(b64);

    /* not a certificate, not base64, no data, too big */
    expect_error("POST", "/v1/certificates/inspect", "{\"data\":\"aGVsbG8gd29ybGQ=\"}", 400,
                 "root_certificate");
    expect_error("POST", "/v1/certificates/inspect", "{\"data\":\"***\"}", 400, "root_certificate");
    expect_error("POST", "/v1/certificates/inspect", "{}", 400, "data");
    expect_error("POST", "/v1/certificates/inspect", "{\"data\":42}", 400, "data");
    {
        size_t big = 1024 * 1024 + 16;
        unsigned char *junk = xcalloc(1, big);
        b = inspect_body(junk, big);
        expect_error("POST", "/v1/certificates/inspect", b, 413, "root_certificate");
        free(b);
        free(junk);
    }
    /* nothing was saved by the refused policies */
    j = get("/v1/policies", 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 0, "%s", h_json(j));
    json_decref(j);
    BIO_free(bio);
    OPENSSL_free(der);
    OPENSSL_free(kder);
    free(both);
    free(pem);
    tu_cert_free(&ca);
}

/* Run scepterctl with args; returns its exit status, output in *out (caller frees). */
static int ctl(char **out, const char *args)
{
    char *bin = tu_binary_path("mdm/scepterctl");
    char *ca = xasprintf("%s/tls-ca.pem", S.dir);
    int rc = tu_sh(out,
                   "env -u SCEPTER_API_KEY SCEPTER_SERVER=https://127.0.0.1:%d SCEPTER_CA=%s "
                   "SCEPTER_API_KEY=" H_API_KEY " %s %s 2>&1",
                   S.port, ca, bin, args);
    free(bin);
    free(ca);
    return rc;
}

Test(policy_api, scepterctl_policy_preview)
{
    int64_t id = create("CLI phones", "ios", "{}");
    char *out = NULL, *args = xasprintf("policy preview %lld --device IPHONE-1", (long long)id);

    cr_assert_eq(ctl(&out, args), 0, "%s", out);
    cr_assert(strstr(out, "<?xml") == out, "the profile on stdout: %.200s", out);
    cr_assert(strstr(out, "SN-TEST"), "%s", out);
    free(out);
    free(args);
    args = xasprintf("policy preview %lld --device NOPE", (long long)id);
    cr_assert_eq(ctl(&out, args), 3, "unknown device: not found: %s", out);
    cr_assert(strstr(out, "device"), "%s", out);
    free(out);
    free(args);
    cr_assert_eq(ctl(&out, "policy preview 1"), 2, "--device is required: %s", out);
    free(out);
}
