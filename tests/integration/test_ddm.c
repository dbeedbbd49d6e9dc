/*
 * Declarative Device Management over HTTPS, on both store backends: one SCEP Profiles policy
 * with "ddm": true targets a mixed fleet.  iOS 17 and macOS 14 devices get declarations (a SCEP
 * credential asset, a security.identity configuration, a simple activation, the server
 * capabilities), fetch them and the asset data with their own identity, and report status;
 * an iOS 16 device gets no declarations.  A policy update changes only the server tokens of the
 * declarations whose content changed; untargeting removes them.  Bad input (malformed status
 * report, unknown endpoint, oversized body) gets a 4xx naming the field and stores nothing;
 * asset data is refused to any other identity.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/sha.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"
#include "tests/sim/sim.h"

static struct h_server S;
static struct tu_cert ios17, ios16, mac14;

static void enroll_os(const struct tu_cert *id, const char *udid, const char *product,
                      const char *os, const char *serial)
{
    struct tu_http_resp r;
    char *auth =
        h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", udid, "ProductName",
                product, "OSVersion", os, "SerialNumber", serial, "DeviceName", udid, NULL);
    cr_assert_eq(h_checkin(&S, id, auth, &r), 0);
    cr_assert_eq(r.status, 200, "Authenticate %s: %d %s", udid, r.status, r.body);
    tu_http_resp_free(&r);
    free(auth);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", udid, "Token",
                        "data:tok", "PushMagic", "00000000-1111-2222-3333-444444444444", NULL);
    cr_assert_eq(h_checkin(&S, id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "TokenUpdate %s: %d %s", udid, r.status, r.body);
    tu_http_resp_free(&r);
    free(tok);
}

static void setup(void)
{
    /* a small device body limit, so the oversized-report test sends little */
    struct h_opts o = {.extra = "max_device_body_bytes = 65536\n"};
    h_start(&S, &o);
    ios17 = h_device_cert(&S, "IOS-17");
    ios16 = h_device_cert(&S, "IOS-16");
    mac14 = h_device_cert(&S, "MAC-14");
    enroll_os(&ios17, "IOS-17", "iPhone15,2", "17.2", "SN17");
    enroll_os(&ios16, "IOS-16", "iPhone14,2", "16.7.2", "SN16");
    enroll_os(&mac14, "MAC-14", "MacBookPro18,3", "14.1", "SNMAC");
}

static void teardown(void)
{
    tu_cert_free(&ios17);
    tu_cert_free(&ios16);
    tu_cert_free(&mac14);
    h_stop(&S);
}

TestSuite(ddm, .init = setup, .fini = teardown);

/* A DeclarativeManagement check-in; data (JSON text) may be NULL.  Returns the status; *out
 * gets the parsed JSON body when the reply is JSON (caller decrefs), *text the raw body. */
static int dm(const struct tu_cert *id, const char *udid, const char *endpoint, const char *data,
              json_t **out, char **text)
{
    struct tu_http_resp r;
    char *d = data ? xasprintf("data:%s", data) : NULL;
    char *body = d ? h_plist("MessageType", "DeclarativeManagement", "UDID", udid, "Endpoint",
                             endpoint, "Data", d, NULL)
                   : h_plist("MessageType", "DeclarativeManagement", "UDID", udid, "Endpoint",
                             endpoint, NULL);
    cr_assert_eq(h_checkin(&S, id, body, &r), 0);
    int status = r.status;
    if (out) {
        *out = json_loadb((const char *)r.body, r.body_len, 0, NULL);
    }
    if (text)
        *text = xstrndup(r.body ? (const char *)r.body : "", r.body_len);
    tu_http_resp_free(&r);
    free(body);
    free(d);
    return status;
}

static json_t *items(const struct tu_cert *id, const char *udid)
{
    json_t *j = NULL;
    cr_assert_eq(dm(id, udid, "declaration-items", NULL, &j, NULL), 200);
    cr_assert(json_is_object(json_object_get(j, "Declarations")), "%s", h_json(j));
    return j;
}

static json_t *kind_list(json_t *items_resp, const char *key)
{
    json_t *a = json_object_get(json_object_get(items_resp, "Declarations"), key);
    cr_assert(json_is_array(a), "%s: %s", key, h_json(items_resp));
    return a;
}

/* How many items of kind key come from policies: the status subscription every DDM-capable
 * device gets besides (a configuration and its activation) is left out here and checked by
 * status_subscription_feeds_the_device_record. */
static size_t n_policy(json_t *items_resp, const char *key)
{
    json_t *a = kind_list(items_resp, key), *v;
    size_t i, n = 0;
    json_array_foreach(a, i, v)
    {
        n += strstr(json_string_value(json_object_get(v, "Identifier")), ".ddm.status-") == NULL;
    }
    return n;
}

/* The (only) item of kind key whose identifier ends with suffix, or NULL. */
static json_t *find_item(json_t *items_resp, const char *key, const char *suffix)
{
    json_t *a = kind_list(items_resp, key), *v;
    size_t i;
    json_array_foreach(a, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "Identifier"));
        size_t n = strlen(id), m = strlen(suffix);
        if (n >= m && strcmp(id + n - m, suffix) == 0)
            return v;
    }
    return NULL;
}

static const char *token_of(json_t *item)
{
    cr_assert_not_null(item);
    return json_string_value(json_object_get(item, "ServerToken"));
}

static json_t *declaration(const struct tu_cert *id, const char *udid, const char *kind,
                           json_t *item)
{
    json_t *j = NULL;
    char *ep = xasprintf("declaration/%s/%s", kind,
                         json_string_value(json_object_get(item, "Identifier")));
    int st = dm(id, udid, ep, NULL, &j, NULL);
    cr_assert_eq(st, 200, "%s: %d", ep, st);
    free(ep);
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Apple's schema facts (tests/data/apple-schemas/ddm-facts.json, scripts/schema-facts.py)    */

static json_t *g_facts;

static json_t *facts_keys(const char *name)
{
    if (g_facts == NULL) {
        size_t len = 0;
        unsigned char *text = tu_read_data("apple-schemas/ddm-facts.json", &len);
        g_facts = json_loadb((const char *)text, len, 0, NULL);
        free(text);
        cr_assert_not_null(g_facts, "ddm-facts.json");
    }
    json_t *k =
        json_object_get(json_object_get(json_object_get(g_facts, "declarations"), name), "keys");
    cr_assert(json_is_array(k), "no facts for %s", name);
    return k;
}

static void check_object(json_t *v, json_t *keys, const char *where);

/* One value against one key's facts: its type, allowed values, subkeys. */
static void check_value(json_t *v, json_t *spec, const char *where)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    json_t *sub = json_object_get(spec, "subkeys"), *allowed = json_object_get(spec, "allowed");
    if (strcmp(type, "<string>") == 0 || strcmp(type, "<data>") == 0) {
        cr_assert(json_is_string(v), "%s: not a string", where);
        if (allowed) {
            bool ok = false;
            size_t i;
            json_t *a;
            json_array_foreach(allowed, i, a) ok |=
                strcmp(json_string_value(a), json_string_value(v)) == 0;
            cr_assert(ok, "%s: '%s' is not an allowed value", where, json_string_value(v));
        }
    } else if (strcmp(type, "<integer>") == 0) {
        cr_assert(json_is_integer(v), "%s: not an integer", where);
    } else if (strcmp(type, "<boolean>") == 0) {
        cr_assert(json_is_boolean(v), "%s: not a boolean", where);
    } else if (strcmp(type, "<dictionary>") == 0) {
        cr_assert(json_is_object(v), "%s: not an object", where);
        if (sub)
            check_object(v, sub, where);
    } else if (strcmp(type, "<array>") == 0) {
        cr_assert(json_is_array(v), "%s: not an array", where);
        size_t i;
        json_t *e;
        if (sub && json_array_size(sub) == 1)
            json_array_foreach(v, i, e)
            {
                char w[256];
                snprintf(w, sizeof(w), "%s[%zu]", where, i);
                check_value(e, json_array_get(sub, 0), w);
            }
    }
}

/* An object against a key list: no key Apple does not define, every required one there. */
static void check_object(json_t *v, json_t *keys, const char *where)
{
    const char *k;
    json_t *x, *spec;
    size_t i;
    cr_assert(json_is_object(v), "%s: not an object", where);
    json_object_foreach(v, k, x)
    {
        json_t *found = NULL;
        json_array_foreach(keys, i, spec)
        {
            const char *name = json_string_value(json_object_get(spec, "key"));
            if (strcmp(name, k) == 0 || (strcmp(name, "ANY") == 0 && found == NULL))
                found = spec;
        }
        cr_assert_not_null(found, "%s.%s: not in Apple's schema", where, k);
        char w[256];
        snprintf(w, sizeof(w), "%s.%s", where, k);
        check_value(x, found, w);
    }
    json_array_foreach(keys, i, spec)
    {
        if (json_is_true(json_object_get(spec, "required")))
            cr_assert_not_null(json_object_get(v, json_string_value(json_object_get(spec, "key"))),
                               "%s: required %s missing", where,
                               json_string_value(json_object_get(spec, "key")));
    }
}

/* A declaration: Type, Identifier, ServerToken, Payload, the Payload per its type's facts. */
static void check_declaration(json_t *d, const char *type)
{
    static const char *const top[] = {"Type", "Identifier", "ServerToken", "Payload"};
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < 4; i++)
            ok |= strcmp(top[i], k) == 0;
        cr_assert(ok, "declaration key %s", k);
    }
    cr_assert_str_eq(json_string_value(json_object_get(d, "Type")), type);
    cr_assert(json_is_string(json_object_get(d, "Identifier")));
    cr_assert(json_is_string(json_object_get(d, "ServerToken")));
    check_object(json_object_get(d, "Payload"), facts_keys(type), type);
}

/* A status report we send is itself checked, so the tests speak Apple's format. */
static void check_report(const char *text)
{
    json_t *r = json_loads(text, 0, NULL);
    cr_assert_not_null(r, "%s", text);
    check_object(r, facts_keys("StatusReport"), "StatusReport");
    json_t *d = json_object_get(json_object_get(json_object_get(r, "StatusItems"), "management"),
                                "declarations");
    if (d)
        check_value(d, json_array_get(facts_keys("management.declarations"), 0),
                    "management.declarations");
    json_decref(r);
}

static int64_t create_policy(const char *targets)
{
    json_t *j = NULL;
    char *b = xasprintf("{\"name\":\"DDM Wi-Fi\",\"platform\":\"ios\",\"ddm\":true,"
                        "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"s3cret\","
                        "\"key_size\":2048,\"subject\":\"/O=Scepter/CN=%%SerialNumber%%/\"},"
                        "\"targets\":%s}",
                        targets);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    cr_assert(json_is_true(json_object_get(j, "ddm")), "ddm flag kept: %s", h_json(j));
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    free(b);
    return id;
}

static void update_policy(int64_t id, const char *challenge, bool extractable, const char *targets)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/policies/%lld", (long long)id);
    char *b = xasprintf("{\"name\":\"DDM Wi-Fi\",\"platform\":\"ios\",\"ddm\":true,"
                        "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"%s\","
                        "\"key_size\":2048,\"key_extractable\":%s,"
                        "\"subject\":\"/O=Scepter/CN=%%SerialNumber%%/\"},\"targets\":%s}",
                        challenge, extractable ? "true" : "false", targets);
    cr_assert_eq(h_api(&S, "PUT", path, b, &j), 200, "%s", h_json(j));
    json_decref(j);
    free(b);
    free(path);
}

/* GET an asset's data with a device's identity (NULL: no client certificate). */
static int get_asset(const struct tu_cert *id, const char *path, char **body)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, id ? id->cert : NULL, id ? id->key : NULL, "GET", path, NULL,
                         NULL, 0, &r),
                 0);
    int st = r.status;
    if (body)
        *body = xstrndup(r.body ? (const char *)r.body : "", r.body_len);
    tu_http_resp_free(&r);
    return st;
}

Test(ddm, capable_devices_get_declarations_older_ones_none)
{
    create_policy("{\"devices\":[\"IOS-17\",\"IOS-16\"]}");

    /* tokens: a DeclarationsToken and a Timestamp */
    json_t *tok = NULL;
    cr_assert_eq(dm(&ios17, "IOS-17", "tokens", NULL, &tok, NULL), 200);
    const char *dt =
        json_string_value(json_object_get(json_object_get(tok, "SyncTokens"), "DeclarationsToken"));
    cr_assert(dt && strlen(dt) == 40, "%s", h_json(tok));
    cr_assert_not_null(
        json_string_value(json_object_get(json_object_get(tok, "SyncTokens"), "Timestamp")));
    check_object(tok, facts_keys("TokensResponse"), "TokensResponse");

    json_t *it = items(&ios17, "IOS-17");
    cr_assert_str_eq(json_string_value(json_object_get(it, "DeclarationsToken")), dt);
    check_object(it, facts_keys("DeclarationItemsResponse"), "DeclarationItemsResponse");
    cr_assert_eq(json_array_size(kind_list(it, "Assets")), 1, "%s", h_json(it));
    cr_assert_eq(n_policy(it, "Configurations"), 1);
    cr_assert_eq(n_policy(it, "Activations"), 1);
    cr_assert_eq(json_array_size(kind_list(it, "Management")), 1);

    /* each declaration: the token the items list gave, the type, Apple's keys */
    json_t *asset_item = find_item(it, "Assets", ".scep");
    json_t *asset = declaration(&ios17, "IOS-17", "asset", asset_item);
    check_declaration(asset, "com.apple.asset.credential.scep");
    cr_assert_str_eq(json_string_value(json_object_get(asset, "ServerToken")),
                     token_of(asset_item));
    json_t *ap = json_object_get(asset, "Payload");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(ap, "Authentication"), "Type")), "MDM");
    const char *url =
        json_string_value(json_object_get(json_object_get(ap, "Reference"), "DataURL"));
    cr_assert(strncmp(url, "https://", 8) == 0, "%s", url);
    const char *path = strstr(url, "/mdm/ddm/asset/");
    cr_assert_not_null(path, "%s", url);

    json_t *conf_item = find_item(it, "Configurations", ".identity");
    json_t *conf = declaration(&ios17, "IOS-17", "configuration", conf_item);
    check_declaration(conf, "com.apple.configuration.security.identity");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "Payload"),
                                                       "CredentialAssetReference")),
                     json_string_value(json_object_get(asset_item, "Identifier")));

    json_t *act_item = find_item(it, "Activations", ".activation");
    json_t *act = declaration(&ios17, "IOS-17", "activation", act_item);
    check_declaration(act, "com.apple.activation.simple");
    json_t *std = json_object_get(json_object_get(act, "Payload"), "StandardConfigurations");
    cr_assert_eq(json_array_size(std), 1);
    cr_assert_str_eq(json_string_value(json_array_get(std, 0)),
                     json_string_value(json_object_get(conf_item, "Identifier")));

    json_t *mg =
        declaration(&ios17, "IOS-17", "management", json_array_get(kind_list(it, "Management"), 0));
    check_declaration(mg, "com.apple.management.server-capabilities");

    /* the asset data: the SCEP credential with the device's serial resolved, its hash in the
     * declaration; refused to any other identity */
    char *data = NULL;
    cr_assert_eq(get_asset(&ios17, path, &data), 200, "%s", data);
    json_t *cred = json_loads(data, 0, NULL);
    cr_assert_not_null(cred, "%s", data);
    cr_assert_str_eq(json_string_value(json_object_get(cred, "Challenge")), "s3cret");
    cr_assert_str_eq(json_string_value(json_object_get(cred, "URL")), "https://127.0.0.1:9/scep");
    cr_assert_eq(json_integer_value(json_object_get(cred, "Keysize")), 2048);
    cr_assert(strstr(data, "SN17") != NULL, "serial resolved: %s", data);
    cr_assert(strstr(data, "%SerialNumber%") == NULL, "%s", data);
    check_object(cred, facts_keys("com.apple.credential.scep"), "com.apple.credential.scep");
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[65];
    SHA256((const unsigned char *)data, strlen(data), md);
    hex_encode_to(md, sizeof(md), hex, false);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(ap, "Reference"), "Hash-SHA-256")), hex);
    char *other = NULL;
    cr_assert_eq(get_asset(&mac14, path, &other), 403, "another device's identity: %s", other);
    free(other);
    cr_assert_eq(get_asset(&ios16, path, &other), 403, "a device on the profile channel: %s",
                 other);
    free(other);
    cr_assert_eq(get_asset(NULL, path, &other), 403, "no identity: %s", other);
    free(other);

    /* iOS 16 keeps the profile channel: only the server's management declaration */
    json_t *old = items(&ios16, "IOS-16");
    cr_assert_eq(json_array_size(kind_list(old, "Assets")), 0, "%s", h_json(old));
    cr_assert_eq(n_policy(old, "Configurations"), 0);
    cr_assert_eq(json_array_size(kind_list(old, "Management")), 1);

    /* unknown declaration: 404 */
    cr_assert_eq(
        dm(&ios17, "IOS-17", "declaration/configuration/com.example.none", NULL, NULL, NULL), 404);

    json_decref(old);
    json_decref(cred);
    free(data);
    json_decref(mg);
    json_decref(act);
    json_decref(conf);
    json_decref(asset);
    json_decref(it);
    json_decref(tok);
}

static json_t *device_decls(const char *udid)
{
    json_t *j = NULL;
    char *p = xasprintf("/v1/devices/%s/declarations", udid);
    cr_assert_eq(h_api(&S, "GET", p, NULL, &j), 200, "%s", h_json(j));
    free(p);
    return j;
}

Test(ddm, status_reports_are_stored_bad_ones_refused)
{
    create_policy("{\"devices\":[\"IOS-17\"]}");
    json_t *it = items(&ios17, "IOS-17");
    json_t *conf = find_item(it, "Configurations", ".identity");
    char *report = xasprintf(
        "{\"StatusItems\":{\"device\":{\"operating-system\":{\"version\":\"17.3\"},"
        "\"model\":{\"family\":\"iPhone\"}},\"management\":{\"declarations\":{"
        "\"configurations\":[{\"identifier\":\"%s\",\"server-token\":\"%s\",\"active\":true,"
        "\"valid\":\"valid\"}],\"assets\":[{\"identifier\":\"%s\",\"server-token\":\"%s\","
        "\"active\":true,\"valid\":\"valid\"}],\"activations\":[],\"management\":[]}}},"
        "\"Errors\":[]}",
        json_string_value(json_object_get(conf, "Identifier")), token_of(conf),
        json_string_value(json_object_get(find_item(it, "Assets", ".scep"), "Identifier")),
        token_of(find_item(it, "Assets", ".scep")));
    check_report(report);
    char *text = NULL;
    cr_assert_eq(dm(&ios17, "IOS-17", "status", report, NULL, &text), 200, "%s", text);
    free(text);

    json_t *d = device_decls("IOS-17");
    cr_assert(json_is_true(json_object_get(d, "ddm_capable")));
    size_t i, reported = 0;
    json_t *v;
    json_array_foreach(json_object_get(d, "declarations"), i, v)
    {
        json_t *st = json_object_get(v, "status");
        const char *kind = json_string_value(json_object_get(v, "kind"));
        if (strstr(json_string_value(json_object_get(v, "identifier")), ".ddm.status-"))
            continue; /* the status subscription: not in this report */
        if (strcmp(kind, "configuration") == 0 || strcmp(kind, "asset") == 0) {
            cr_assert(json_is_object(st), "%s", h_json(d));
            cr_assert(json_is_true(json_object_get(st, "active")));
            cr_assert_str_eq(json_string_value(json_object_get(st, "valid")), "valid");
            cr_assert(json_is_true(json_object_get(st, "current")), "%s", h_json(d));
            reported++;
        }
    }
    cr_assert_eq(reported, 2, "%s", h_json(d));
    json_decref(d);
    /* the OS version of the report reached the device record */
    json_t *dev = NULL;
    cr_assert_eq(h_api(&S, "GET", "/v1/devices/IOS-17", NULL, &dev), 200);
    cr_assert_str_eq(json_string_value(json_object_get(dev, "os_version")), "17.3", "%s",
                     h_json(dev));
    json_decref(dev);

    /* bad reports: 400 naming the field, nothing changes */
    static const struct {
        const char *data, *field;
    } bad[] = {
        {"not json", "Data"},
        {"{\"Errors\":[]}", "StatusItems"},
        {"{\"StatusItems\":[]}", "StatusItems"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"configurations\":"
         "[{\"identifier\":\"x\",\"valid\":\"maybe\"}]}}}}",
         "StatusItems.management.declarations.configurations[0].valid"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"assets\":[{\"active\":true}]}}}}",
         "StatusItems.management.declarations.assets[0].identifier"},
        {"{\"StatusItems\":{\"device\":{\"operating-system\":{\"version\":17}}}}",
         "StatusItems.device.operating-system.version"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char *t = NULL;
        cr_assert_eq(dm(&ios17, "IOS-17", "status", bad[k].data, NULL, &t), 400, "%s: %s",
                     bad[k].data, t);
        cr_assert(strstr(t, bad[k].field) != NULL, "reply names %s: %s", bad[k].field, t);
        free(t);
    }
    char *t = NULL;
    cr_assert_eq(dm(&ios17, "IOS-17", "status", NULL, NULL, &t), 400);
    cr_assert(strstr(t, "Data") != NULL, "%s", t);
    free(t);
    cr_assert_eq(dm(&ios17, "IOS-17", "no-such-endpoint", NULL, NULL, &t), 400);
    cr_assert(strstr(t, "Endpoint") != NULL, "%s", t);
    free(t);
    cr_assert_eq(dm(&ios17, "IOS-17", "declaration/widget/x", NULL, NULL, &t), 400);
    cr_assert(strstr(t, "Endpoint") != NULL, "%s", t);
    free(t);

    d = device_decls("IOS-17");
    reported = 0;
    json_array_foreach(json_object_get(d, "declarations"), i, v)
    {
        json_t *st = json_object_get(v, "status");
        if (json_is_object(st)) {
            cr_assert_str_eq(json_string_value(json_object_get(st, "valid")), "valid");
            reported++;
        }
    }
    cr_assert_eq(reported, 2, "bad reports changed nothing: %s", h_json(d));
    json_decref(d);

    /* an oversized body: 413 before anything is parsed */
    size_t big = 100 * 1024;
    char *huge = xmalloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    char *why = NULL;
    cr_assert_eq(dm(&ios17, "IOS-17", "status", huge, NULL, &why), 413, "%s", why);
    cr_assert(strstr(why, "max_device_body_bytes") != NULL, "%s", why);
    free(why);
    free(huge);

    free(report);
    json_decref(it);
}

Test(ddm, update_changes_only_changed_tokens_untarget_removes)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-17\"]}");
    json_t *a = items(&ios17, "IOS-17");

    /* the challenge lives in the asset data: only the asset's token moves */
    update_policy(id, "n3w-secret", false, "{\"devices\":[\"IOS-17\"]}");
    json_t *b = items(&ios17, "IOS-17");
    cr_assert_str_neq(json_string_value(json_object_get(a, "DeclarationsToken")),
                      json_string_value(json_object_get(b, "DeclarationsToken")));
    cr_assert_str_neq(token_of(find_item(a, "Assets", ".scep")),
                      token_of(find_item(b, "Assets", ".scep")));
    cr_assert_str_eq(token_of(find_item(a, "Configurations", ".identity")),
                     token_of(find_item(b, "Configurations", ".identity")));
    cr_assert_str_eq(token_of(find_item(a, "Activations", ".activation")),
                     token_of(find_item(b, "Activations", ".activation")));

    /* KeyIsExtractable lives in the configuration */
    update_policy(id, "n3w-secret", true, "{\"devices\":[\"IOS-17\"]}");
    json_t *c = items(&ios17, "IOS-17");
    cr_assert_str_eq(token_of(find_item(b, "Assets", ".scep")),
                     token_of(find_item(c, "Assets", ".scep")));
    cr_assert_str_neq(token_of(find_item(b, "Configurations", ".identity")),
                      token_of(find_item(c, "Configurations", ".identity")));

    /* untargeted: the policy's declarations are gone */
    update_policy(id, "n3w-secret", true, "{\"devices\":[]}");
    json_t *e = items(&ios17, "IOS-17");
    cr_assert_eq(json_array_size(kind_list(e, "Assets")), 0, "%s", h_json(e));
    cr_assert_eq(n_policy(e, "Configurations"), 0);
    cr_assert_eq(n_policy(e, "Activations"), 0);
    cr_assert_eq(json_array_size(kind_list(e, "Management")), 1);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(e);
}

Test(ddm, shared_declarations_where_variables_do_not_differ)
{
    /* a macOS policy whose subject uses only a Mac-resolved variable: every Mac gets the same
     * bytes; the iOS policy with %SerialNumber% gives each iPhone its own asset data */
    struct tu_cert mac2 = h_device_cert(&S, "MAC-15");
    enroll_os(&mac2, "MAC-15", "Mac14,2", "15.0", "SNMAC2");
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\":\"Mac DDM\",\"platform\":\"macos\",\"ddm\":true,"
                       "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"c\","
                       "\"subject\":\"/CN=%ComputerName%/\"},"
                       "\"targets\":{\"devices\":[\"MAC-14\",\"MAC-15\"]}}",
                       &j),
                 201, "%s", h_json(j));
    json_decref(j);
    json_t *m1 = items(&mac14, "MAC-14");
    json_t *m2 = items(&mac2, "MAC-15");
    cr_assert_eq(json_array_size(kind_list(m1, "Assets")), 1, "%s", h_json(m1));
    cr_assert_str_eq(json_string_value(json_object_get(m1, "DeclarationsToken")),
                     json_string_value(json_object_get(m2, "DeclarationsToken")),
                     "the same declarations for every Mac");

    int64_t id = create_policy("{\"devices\":[\"IOS-17\"]}");
    struct tu_cert ios17b = h_device_cert(&S, "IOS-17B");
    enroll_os(&ios17b, "IOS-17B", "iPhone15,3", "17.0", "SN17B");
    update_policy(id, "s3cret", false, "{\"devices\":[\"IOS-17\",\"IOS-17B\"]}");
    json_t *i1 = items(&ios17, "IOS-17");
    json_t *i2 = items(&ios17b, "IOS-17B");
    json_t *i1a = find_item(i1, "Assets", ".scep"), *i2a = find_item(i2, "Assets", ".scep");
    cr_assert_str_eq(json_string_value(json_object_get(i1a, "Identifier")),
                     json_string_value(json_object_get(i2a, "Identifier")));
    cr_assert_str_neq(token_of(i1a), token_of(i2a), "per-device data where variables differ");
    cr_assert_str_eq(token_of(find_item(i1, "Configurations", ".identity")),
                     token_of(find_item(i2, "Configurations", ".identity")));
    cr_assert_str_eq(token_of(find_item(i1, "Activations", ".activation")),
                     token_of(find_item(i2, "Activations", ".activation")));
    json_decref(i1);
    json_decref(i2);
    json_decref(m1);
    json_decref(m2);
    tu_cert_free(&ios17b);
    tu_cert_free(&mac2);
}

/* The device's next command: its RequestType into type, the base64-decoded Data (when there
 * is one) into *data (caller frees); the command is acknowledged.  False when none. */
static bool next_command(const struct tu_cert *id, const char *udid, char type[64], char **data)
{
    struct tu_http_resp r;
    struct scepter_error err;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(&S, id, idle, &r), 0);
    cr_assert_eq(r.status, 200);
    free(idle);
    if (r.body_len == 0) {
        tu_http_resp_free(&r);
        return false;
    }
    plist_t d = NULL, cmd = NULL;
    const char *uuid = NULL, *rt = NULL;
    const unsigned char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0);
    cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &uuid, &err), 0);
    cr_assert_eq(plistx_get_dict(d, "Command", true, &cmd, &err), 0);
    cr_assert_eq(plistx_get_string(cmd, "RequestType", true, &rt, &err), 0);
    snprintf(type, 64, "%s", rt);
    if (data) {
        *data = NULL;
        if (plistx_get_data(cmd, "Data", false, &bytes, &len, &err) == 0 && bytes)
            *data = xstrndup((const char *)bytes, len);
    }
    char *ack = h_plist("Status", "Acknowledged", "UDID", udid, "CommandUUID", uuid, NULL);
    plist_free(d);
    tu_http_resp_free(&r);
    cr_assert_eq(h_connect(&S, id, ack, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(ack);
    return true;
}

static const char *sync_token(const char *data)
{
    static char tok[64];
    json_t *j = json_loads(data, 0, NULL);
    cr_assert_not_null(j, "SyncTokens JSON: %s", data);
    const char *t = json_string_value(json_object_get(j, "DeclarationsToken"));
    cr_assert_not_null(t, "%s", data);
    cr_assert_not_null(json_object_get(j, "Timestamp"), "%s", data);
    snprintf(tok, sizeof(tok), "%s", t);
    json_decref(j);
    return tok;
}

static const char *current_token(const struct tu_cert *id, const char *udid)
{
    static char tok[64];
    json_t *j = NULL;
    cr_assert_eq(dm(id, udid, "tokens", NULL, &j, NULL), 200);
    snprintf(
        tok, sizeof(tok), "%s",
        json_string_value(json_object_get(json_object_get(j, "SyncTokens"), "DeclarationsToken")));
    json_decref(j);
    return tok;
}

static json_t *status_entry(int64_t id, const char *udid)
{
    json_t *j = NULL;
    char *p = xasprintf("/v1/policies/%lld/status", (long long)id);
    cr_assert_eq(h_api(&S, "GET", p, NULL, &j), 200, "%s", h_json(j));
    free(p);
    size_t i;
    json_t *v, *found = NULL;
    json_array_foreach(json_object_get(j, "devices"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "udid")), udid) == 0)
            found = v;
    }
    const char *lists[] = {"installed", "pending", "failed", "removed"};
    json_t *full = NULL;
    for (size_t k = 0; k < 4; k++)
        json_array_foreach(json_object_get(j, lists[k]), i, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "device")), udid) == 0)
                full = v;
        }
    cr_assert_not_null(full, "%s in %s", udid, h_json(j));
    json_t *out = json_deep_copy(full);
    if (found)
        json_object_set(out, "console_channel", json_object_get(found, "delivery"));
    json_decref(j);
    return out;
}

Test(ddm, one_policy_right_channel_per_device)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-17\",\"IOS-16\"]}");
    char type[64], *data = NULL;

    /* iOS 17: a DeclarativeManagement command with the tokens the device will find */
    cr_assert(next_command(&ios17, "IOS-17", type, &data), "a command for IOS-17");
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_not_null(data);
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    cr_assert_not(next_command(&ios17, "IOS-17", type, NULL), "no InstallProfile besides: %s",
                  type);
    /* iOS 16: the profile */
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");

    json_t *e17 = status_entry(id, "IOS-17"), *e16 = status_entry(id, "IOS-16");
    cr_assert_str_eq(json_string_value(json_object_get(e17, "delivery")), "ddm", "%s", h_json(e17));
    cr_assert_str_eq(json_string_value(json_object_get(e17, "console_channel")), "ddm");
    cr_assert_str_eq(json_string_value(json_object_get(e16, "delivery")), "profile");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e17, "ddm"), "state")),
                     "unknown", "no report yet: %s", h_json(e17));
    json_decref(e17);
    json_decref(e16);

    /* the device reports its configuration active and valid */
    json_t *it = items(&ios17, "IOS-17");
    json_t *conf = find_item(it, "Configurations", ".identity");
    json_t *act = find_item(it, "Activations", ".activation");
    char *report = xasprintf(
        "{\"StatusItems\":{\"management\":{\"declarations\":{\"activations\":[{\"identifier\":"
        "\"%s\",\"server-token\":\"%s\",\"active\":true,\"valid\":\"valid\"}],"
        "\"configurations\":[{\"identifier\":\"%s\",\"server-token\":\"%s\",\"active\":true,"
        "\"valid\":\"valid\"}],\"assets\":[],\"management\":[]}}},\"Errors\":[]}",
        json_string_value(json_object_get(act, "Identifier")), token_of(act),
        json_string_value(json_object_get(conf, "Identifier")), token_of(conf));
    check_report(report);
    cr_assert_eq(dm(&ios17, "IOS-17", "status", report, NULL, NULL), 200);
    free(report);
    json_decref(it);
    e17 = status_entry(id, "IOS-17");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e17, "ddm"), "state")),
                     "active", "%s", h_json(e17));
    json_decref(e17);

    /* an update syncs again (new tokens); the iOS 16 phone gets the new profile */
    const char *before = xstrdup(current_token(&ios17, "IOS-17"));
    update_policy(id, "rotated", false, "{\"devices\":[\"IOS-17\",\"IOS-16\"]}");
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_neq(sync_token(data), before);
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");

    /* untargeted: a sync that removes the declarations (no RemoveProfile); the old phone gets
     * RemoveProfile */
    update_policy(id, "rotated", false, "{\"devices\":[]}");
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "RemoveProfile");
    free((char *)before);
}

Test(ddm, group_membership_and_enrollment_sync)
{
    cr_assert_eq(
        h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"Phones\",\"devices\":[]}", NULL), 201);
    create_policy("{\"device_groups\":[\"Phones\"]}");
    char type[64], *data = NULL;
    cr_assert_not(next_command(&ios17, "IOS-17", type, NULL), "not a member yet: %s", type);

    /* joining the group: the sync is queued */
    cr_assert_eq(
        h_api(&S, "POST", "/v1/device-groups/Phones/members", "{\"devices\":[\"IOS-17\"]}", NULL),
        200);
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    json_t *it = items(&ios17, "IOS-17");
    cr_assert_eq(n_policy(it, "Configurations"), 1, "%s", h_json(it));
    json_decref(it);

    /* leaving it: another sync, and the declarations are gone */
    cr_assert_eq(
        h_api(&S, "DELETE", "/v1/device-groups/Phones/members", "{\"devices\":[\"IOS-17\"]}", NULL),
        200);
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    free(data);
    it = items(&ios17, "IOS-17");
    cr_assert_eq(n_policy(it, "Configurations"), 0, "%s", h_json(it));
    json_decref(it);
}

Test(ddm, root_certificate_goes_as_a_certificate_asset)
{
    size_t len = 0;
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &len);
    char *b64 = base64_encode(pem, len);
    char *b = xasprintf("{\"name\":\"DDM with root\",\"platform\":\"ios\",\"ddm\":true,"
                        "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"c\","
                        "\"subject\":\"/CN=%%SerialNumber%%/\",\"root_certificate\":\"%s\"},"
                        "\"targets\":{\"devices\":[\"IOS-17\"]}}",
                        b64);
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    json_decref(j);

    json_t *it = items(&ios17, "IOS-17");
    cr_assert_eq(json_array_size(kind_list(it, "Assets")), 2, "%s", h_json(it));
    cr_assert_eq(n_policy(it, "Configurations"), 2);
    json_t *ra = find_item(it, "Assets", ".root"),
           *rc = find_item(it, "Configurations", ".root-certificate");
    json_t *asset = declaration(&ios17, "IOS-17", "asset", ra);
    check_declaration(asset, "com.apple.asset.credential.certificate");
    json_t *conf = declaration(&ios17, "IOS-17", "configuration", rc);
    check_declaration(conf, "com.apple.configuration.security.certificate");
    json_t *act =
        declaration(&ios17, "IOS-17", "activation", find_item(it, "Activations", ".activation"));
    check_declaration(act, "com.apple.activation.simple");
    cr_assert_eq(
        json_array_size(json_object_get(json_object_get(act, "Payload"), "StandardConfigurations")),
        2);

    const char *url = json_string_value(json_object_get(
        json_object_get(json_object_get(asset, "Payload"), "Reference"), "DataURL"));
    const char *path = strstr(url, "/mdm/ddm/asset/");
    char *data = NULL;
    cr_assert_eq(get_asset(&ios17, path, &data), 200, "%s", data);
    cr_assert(strncmp(data, "-----BEGIN CERTIFICATE-----", 27) == 0, "%s", data);
    free(data);
    cr_assert_eq(get_asset(&mac14, path, &data), 403, "another device: %s", data);
    free(data);

    json_decref(act);
    json_decref(conf);
    json_decref(asset);
    json_decref(it);
    free(b);
    free(b64);
    free(pem);
}

Test(ddm, enrollment_and_deletion_sync)
{
    /* a phone that authenticated but has not sent TokenUpdate yet: the policy reaches it when
     * it does */
    struct tu_cert late = h_device_cert(&S, "IOS-LATE");
    struct tu_http_resp r;
    char *auth =
        h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "IOS-LATE", "ProductName",
                "iPhone16,1", "OSVersion", "18.1", "SerialNumber", "SNL", NULL);
    cr_assert_eq(h_checkin(&S, &late, auth, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(auth);
    int64_t id = create_policy("{\"devices\":[\"IOS-LATE\",\"IOS-17\"]}");
    char type[64], *data = NULL;
    cr_assert(next_command(&ios17, "IOS-17", type, NULL));
    cr_assert_str_eq(type, "DeclarativeManagement");

    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "IOS-LATE", "Token",
                        "data:tok", "PushMagic", "00000000-1111-2222-3333-444444444444", NULL);
    cr_assert_eq(h_checkin(&S, &late, tok, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(tok);
    cr_assert(next_command(&late, "IOS-LATE", type, &data), "a command after enrolling");
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&late, "IOS-LATE"));
    free(data);
    json_t *it = items(&late, "IOS-LATE");
    cr_assert_eq(n_policy(it, "Configurations"), 1, "%s", h_json(it));
    json_decref(it);

    /* deleting the policy: a sync for each DDM phone, and the declarations are gone */
    char *path = xasprintf("/v1/policies/%lld", (long long)id);
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "DELETE", path, NULL, &j), 200, "%s", h_json(j));
    json_decref(j);
    free(path);
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    cr_assert(next_command(&late, "IOS-LATE", type, NULL));
    cr_assert_str_eq(type, "DeclarativeManagement");
    it = items(&ios17, "IOS-17");
    cr_assert_eq(n_policy(it, "Configurations"), 0, "%s", h_json(it));
    cr_assert_eq(json_array_size(kind_list(it, "Assets")), 0);
    json_decref(it);
    tu_cert_free(&late);
}

/* ---------------------------------------------------------------------------------------- */
/* Status subscriptions, OS upgrades, "ddm" turned off (h/ddmproto)                          */

/* A status report with only device facts (NULL: left out). */
static char *facts_report(const char *os, const char *build, const char *family)
{
    json_t *dev = json_object(), *osj = json_object();
    if (os)
        json_object_set_new(osj, "version", json_string(os));
    if (build)
        json_object_set_new(osj, "build-version", json_string(build));
    if (os || build)
        json_object_set_new(dev, "operating-system", osj);
    else
        json_decref(osj);
    if (family)
        json_object_set_new(dev, "model", json_pack("{s:s}", "family", family));
    json_t *r = json_pack("{s:{s:o},s:[]}", "StatusItems", "device", dev, "Errors");
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    check_report(text);
    return text;
}

/* A device's record field through GET /v1/devices/{udid} (caller frees). */
static char *device_field(const char *udid, const char *field)
{
    json_t *dev = NULL;
    char *p = xasprintf("/v1/devices/%s", udid);
    cr_assert_eq(h_api(&S, "GET", p, NULL, &dev), 200, "%s", h_json(dev));
    const char *v = json_string_value(json_object_get(dev, field));
    char *out = v ? xstrdup(v) : NULL;
    json_decref(dev);
    free(p);
    return out;
}

Test(ddm, status_subscription_feeds_the_device_record)
{
    /* every DDM-capable device is subscribed, policy or not */
    json_t *it = items(&ios17, "IOS-17");
    json_t *sub_item = find_item(it, "Configurations", ".ddm.status-subscriptions");
    json_t *act_item = find_item(it, "Activations", ".ddm.status-activation");
    cr_assert_not_null(sub_item, "%s", h_json(it));
    cr_assert_not_null(act_item, "%s", h_json(it));
    json_t *sub = declaration(&ios17, "IOS-17", "configuration", sub_item);
    check_declaration(sub, "com.apple.configuration.management.status-subscriptions");
    json_t *names = json_object_get(json_object_get(sub, "Payload"), "StatusItems"), *v;
    size_t i;
    bool os = false, family = false;
    json_array_foreach(names, i, v)
    {
        const char *n = json_string_value(json_object_get(v, "Name"));
        os |= strcmp(n, "device.operating-system.version") == 0;
        family |= strcmp(n, "device.model.family") == 0;
        /* each subscribed item is one Apple defines (its facts are in ddm-facts.json) */
        cr_assert(json_is_array(facts_keys(n)), "%s", n);
    }
    cr_assert(os && family, "%s", h_json(sub));
    json_t *act = declaration(&ios17, "IOS-17", "activation", act_item);
    check_declaration(act, "com.apple.activation.simple");
    cr_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_object_get(act, "Payload"), "StandardConfigurations"), 0)),
        json_string_value(json_object_get(sub_item, "Identifier")));

    /* the iOS 16 phone (profile channel) is not subscribed */
    json_t *old = items(&ios16, "IOS-16");
    cr_assert_null(find_item(old, "Configurations", ".ddm.status-subscriptions"), "%s",
                   h_json(old));

    /* a report of new facts reaches the device record */
    char *before = device_field("IOS-17", "os_version");
    cr_assert_str_eq(before, "17.2");
    char *rep = facts_report("17.5.1", "21F90", "iPhone");
    cr_assert_eq(dm(&ios17, "IOS-17", "status", rep, NULL, NULL), 200);
    free(rep);
    char *osv = device_field("IOS-17", "os_version"), *bv = device_field("IOS-17", "build_version"),
         *fam = device_field("IOS-17", "model_family");
    cr_assert_str_eq(osv, "17.5.1");
    cr_assert_str_eq(bv, "21F90");
    cr_assert_str_eq(fam, "iPhone");
    free(osv);
    free(bv);
    free(fam);
    /* a later report with only the changed item leaves the others */
    rep = facts_report("18.0", NULL, NULL);
    cr_assert_eq(dm(&ios17, "IOS-17", "status", rep, NULL, NULL), 200);
    free(rep);
    osv = device_field("IOS-17", "os_version");
    fam = device_field("IOS-17", "model_family");
    cr_assert_str_eq(osv, "18.0");
    cr_assert_str_eq(fam, "iPhone");
    free(osv);
    free(fam);
    /* a bad value names the field and changes nothing */
    char *text = NULL;
    cr_assert_eq(dm(&ios17, "IOS-17", "status",
                    "{\"StatusItems\":{\"device\":{\"operating-system\":{\"build-version\":7}}},"
                    "\"Errors\":[]}",
                    NULL, &text),
                 400);
    cr_assert(strstr(text, "StatusItems.device.operating-system.build-version") != NULL, "%s",
              text);
    free(text);
    bv = device_field("IOS-17", "build_version");
    cr_assert_str_eq(bv, "21F90");
    free(bv);
    free(before);
    json_decref(old);
    json_decref(act);
    json_decref(sub);
    json_decref(it);
}

/* The activation and identity of the policy as the device reports them active. */
static void report_policy_active(const struct tu_cert *id, const char *udid)
{
    json_t *it = items(id, udid);
    json_t *conf = find_item(it, "Configurations", ".identity");
    json_t *act = find_item(it, "Activations", ".activation");
    cr_assert_not_null(conf, "%s", h_json(it));
    char *report = xasprintf(
        "{\"StatusItems\":{\"management\":{\"declarations\":{\"activations\":[{\"identifier\":"
        "\"%s\",\"server-token\":\"%s\",\"active\":true,\"valid\":\"valid\"}],"
        "\"configurations\":[{\"identifier\":\"%s\",\"server-token\":\"%s\",\"active\":true,"
        "\"valid\":\"valid\"}],\"assets\":[],\"management\":[]}}},\"Errors\":[]}",
        json_string_value(json_object_get(act, "Identifier")), token_of(act),
        json_string_value(json_object_get(conf, "Identifier")), token_of(conf));
    check_report(report);
    cr_assert_eq(dm(id, udid, "status", report, NULL, NULL), 200);
    free(report);
    json_decref(it);
}

/* A DeviceInformation result with OSVersion (and ProductName) for the device's command. */
static void device_information(const struct tu_cert *id, const char *udid, const char *product,
                               const char *os)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s/commands", udid);
    cr_assert_eq(h_api(&S, "POST", path,
                       "{\"command\":{\"request_type\":\"DeviceInformation\",\"queries\":"
                       "[\"OSVersion\",\"ProductName\"]},\"push\":false}",
                       &j),
                 201, "%s", h_json(j));
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    free(path);
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(&S, id, idle, &r), 0);
    cr_assert(r.body_len > 0 && strstr((const char *)r.body, uuid) != NULL, "the command: %.*s",
              (int)r.body_len, r.body);
    tu_http_resp_free(&r);
    free(idle);
    char *res = xasprintf(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
        "<key>CommandUUID</key><string>%s</string><key>Status</key><string>Acknowledged</string>"
        "<key>UDID</key><string>%s</string><key>QueryResponses</key><dict>"
        "<key>OSVersion</key><string>%s</string><key>ProductName</key><string>%s</string>"
        "</dict></dict></plist>",
        uuid, udid, os, product);
    cr_assert_eq(h_connect(&S, id, res, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(res);
    free(uuid);
}

/* The profile identifier of a policy (its payload_identifier in the API). */
static char *payload_identifier(int64_t id)
{
    json_t *j = NULL;
    char *p = xasprintf("/v1/policies/%lld", (long long)id);
    cr_assert_eq(h_api(&S, "GET", p, NULL, &j), 200);
    char *out = xstrdup(json_string_value(json_object_get(j, "payload_identifier")));
    json_decref(j);
    free(p);
    return out;
}

/* The device's next command without acknowledging it (its RequestType and, for RemoveProfile,
 * the identifier); false when none. */
static bool peek_command(const struct tu_cert *id, const char *udid, char type[64], char ident[256])
{
    struct tu_http_resp r;
    struct scepter_error err;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(&S, id, idle, &r), 0);
    free(idle);
    if (r.body_len == 0) {
        tu_http_resp_free(&r);
        return false;
    }
    plist_t d = NULL, cmd = NULL;
    const char *rt = NULL, *pi = NULL;
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0);
    cr_assert_eq(plistx_get_dict(d, "Command", true, &cmd, &err), 0);
    cr_assert_eq(plistx_get_string(cmd, "RequestType", true, &rt, &err), 0);
    snprintf(type, 64, "%s", rt);
    ident[0] = '\0';
    if (plistx_get_string(cmd, "Identifier", false, &pi, &err) == 0 && pi)
        snprintf(ident, 256, "%s", pi);
    plist_free(d);
    tu_http_resp_free(&r);
    return true;
}

static void os_upgrade_moves(bool by_status_report)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-16\"]}");
    char type[64], ident[256];
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");
    json_t *e = status_entry(id, "IOS-16");
    cr_assert_str_eq(json_string_value(json_object_get(e, "state")), "installed", "%s", h_json(e));
    cr_assert_str_eq(json_string_value(json_object_get(e, "delivery")), "profile");
    json_decref(e);

    /* the phone is upgraded to iOS 17 and says so: moved to DDM at once, no policy save */
    if (by_status_report) {
        char *rep = facts_report("17.0", "21A329", "iPhone");
        cr_assert_eq(dm(&ios16, "IOS-16", "status", rep, NULL, NULL), 200);
        free(rep);
    } else {
        device_information(&ios16, "IOS-16", "iPhone14,2", "17.0");
    }
    char *data = NULL;
    cr_assert(next_command(&ios16, "IOS-16", type, &data), "a command after the upgrade");
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&ios16, "IOS-16"));
    free(data);
    json_t *it = items(&ios16, "IOS-16");
    cr_assert_eq(n_policy(it, "Configurations"), 1, "%s", h_json(it));
    json_decref(it);
    e = status_entry(id, "IOS-16");
    cr_assert_str_eq(json_string_value(json_object_get(e, "delivery")), "ddm", "%s", h_json(e));
    json_decref(e);
    /* the profile stays while the declarations are not active: no RemoveProfile yet */
    cr_assert_not(peek_command(&ios16, "IOS-16", type, ident), "nothing else yet: %s", type);
    /* another OS report does not queue the move twice */
    device_information(&ios16, "IOS-16", "iPhone14,2", "17.0.1");
    cr_assert_not(peek_command(&ios16, "IOS-16", type, ident), "no second move: %s", type);

    /* the declarations report active: now the profile goes */
    report_policy_active(&ios16, "IOS-16");
    char *pid = payload_identifier(id);
    cr_assert(peek_command(&ios16, "IOS-16", type, ident), "RemoveProfile after active");
    cr_assert_str_eq(type, "RemoveProfile");
    cr_assert_str_eq(ident, pid);
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    /* once: a later report queues nothing */
    report_policy_active(&ios16, "IOS-16");
    cr_assert_not(peek_command(&ios16, "IOS-16", type, ident), "once: %s", type);
    e = status_entry(id, "IOS-16");
    cr_assert_str_eq(json_string_value(json_object_get(e, "delivery")), "ddm", "%s", h_json(e));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "ddm"), "state")),
                     "active", "the RemoveProfile is not the policy's state: %s", h_json(e));
    json_decref(e);
    free(pid);
}

Test(ddm, os_upgrade_by_device_information_moves_the_profile_to_ddm)
{
    os_upgrade_moves(false);
}

Test(ddm, os_upgrade_by_status_report_moves_the_profile_to_ddm)
{
    os_upgrade_moves(true);
}

Test(ddm, turning_ddm_off_queues_a_sync_and_the_profile)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-17\",\"IOS-16\"]}");
    char type[64], *data = NULL;
    cr_assert(next_command(&ios17, "IOS-17", type, NULL));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");
    report_policy_active(&ios17, "IOS-17");

    json_t *j = NULL;
    char *path = xasprintf("/v1/policies/%lld", (long long)id);
    cr_assert_eq(h_api(&S, "PUT", path,
                       "{\"name\":\"DDM Wi-Fi\",\"platform\":\"ios\",\"ddm\":false,"
                       "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"s3cret\","
                       "\"key_size\":2048,\"subject\":\"/O=Scepter/CN=%SerialNumber%/\"},"
                       "\"targets\":{\"devices\":[\"IOS-17\",\"IOS-16\"]}}",
                       &j),
                 200, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 2, "%s", h_json(j));
    json_decref(j);
    free(path);

    /* the DDM phone: the profile first (an identity throughout), then the sync that takes the
     * declarations away */
    cr_assert(next_command(&ios17, "IOS-17", type, NULL), "InstallProfile for IOS-17");
    cr_assert_str_eq(type, "InstallProfile");
    cr_assert(next_command(&ios17, "IOS-17", type, &data), "DeclarativeManagement for IOS-17");
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_str_eq(sync_token(data), current_token(&ios17, "IOS-17"));
    free(data);
    json_t *it = items(&ios17, "IOS-17");
    cr_assert_eq(n_policy(it, "Configurations"), 0, "%s", h_json(it));
    cr_assert_eq(json_array_size(kind_list(it, "Assets")), 0, "%s", h_json(it));
    json_decref(it);
    cr_assert_not(next_command(&ios17, "IOS-17", type, NULL), "nothing more: %s", type);
    /* its status follows the profile */
    json_t *e = status_entry(id, "IOS-17");
    cr_assert_str_eq(json_string_value(json_object_get(e, "delivery")), "profile", "%s", h_json(e));
    cr_assert_str_eq(json_string_value(json_object_get(e, "state")), "installed", "%s", h_json(e));
    json_decref(e);
    /* the profile phone: the new profile only */
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");
    cr_assert_not(next_command(&ios16, "IOS-16", type, NULL), "nothing more: %s", type);
}

Test(ddm, policy_untargeted_during_the_handover_takes_the_profile_along)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-16\"]}");
    char type[64], ident[256];
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");
    device_information(&ios16, "IOS-16", "iPhone14,2", "17.0");
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "DeclarativeManagement");

    /* untargeted before the declarations were ever active: the sync takes them away ... */
    update_policy(id, "s3cret", false, "{\"devices\":[]}");
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_not(peek_command(&ios16, "IOS-16", type, ident), "nothing else yet: %s", type);
    /* ... and the device's next report (without them) takes the profile along */
    const char *empty = "{\"StatusItems\":{\"management\":{\"declarations\":{\"activations\":[],"
                        "\"configurations\":[],\"assets\":[],\"management\":[]}}},\"Errors\":[]}";
    check_report(empty);
    cr_assert_eq(dm(&ios16, "IOS-16", "status", empty, NULL, NULL), 200);
    char *pid = payload_identifier(id);
    cr_assert(peek_command(&ios16, "IOS-16", type, ident), "RemoveProfile");
    cr_assert_str_eq(type, "RemoveProfile");
    cr_assert_str_eq(ident, pid);
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_eq(dm(&ios16, "IOS-16", "status", empty, NULL, NULL), 200);
    cr_assert_not(peek_command(&ios16, "IOS-16", type, ident), "once: %s", type);
    free(pid);
}

/* The simulator's device (tests/sim/ddm.c) against the server: it reports exactly what the
 * status subscription names, in full after the first sync, then only a changed item. */
Test(ddm, simulator_honours_the_status_subscription)
{
    X509_STORE *trust = X509_STORE_new();
    X509_STORE_add_cert(trust, S.tls_ca.cert);
    char *url = xasprintf("https://127.0.0.1:%d/mdm/checkin", S.port);
    struct sim_ddm_env env = {.checkin_url = url,
                              .udid = "IOS-17",
                              .trust = trust,
                              .cert = ios17.cert,
                              .key = ios17.key,
                              .os_version = "17.4",
                              .build_version = "21E219",
                              .model_family = "iPhone",
                              .timeout_ms = 10000};
    struct sim_ddm *dev = sim_ddm_new();
    struct scepter_error err;

    cr_assert_eq(sim_ddm_sync(dev, &env, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(sim_ddm_reports(dev), 1);
    char *osv = device_field("IOS-17", "os_version"), *bv = device_field("IOS-17", "build_version"),
         *fam = device_field("IOS-17", "model_family");
    cr_assert_str_eq(osv, "17.4");
    cr_assert_str_eq(bv, "21E219");
    cr_assert_str_eq(fam, "iPhone");
    free(osv);
    free(bv);
    free(fam);
    /* nothing changed: no report */
    cr_assert_eq(sim_ddm_report_changes(dev, &env, &err), 0, "%s", err.msg);
    cr_assert_eq(sim_ddm_reports(dev), 1);
    /* an update: one report with the changed items */
    env.os_version = "17.5";
    env.build_version = "21F79";
    cr_assert_eq(sim_ddm_report_changes(dev, &env, &err), 1, "%s", err.msg);
    cr_assert_eq(sim_ddm_reports(dev), 2);
    osv = device_field("IOS-17", "os_version");
    bv = device_field("IOS-17", "build_version");
    cr_assert_str_eq(osv, "17.5");
    cr_assert_str_eq(bv, "21F79");
    free(osv);
    free(bv);
    /* a sync with nothing changed reports the declarations, not the facts again */
    cr_assert_eq(sim_ddm_sync(dev, &env, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(sim_ddm_report_changes(dev, &env, &err), 0, "%s", err.msg);
    sim_ddm_free(dev);
    X509_STORE_free(trust);
    free(url);
}

/* h/ddmconsole: what the console and scepterctl read from GET /v1/policies/{id}/status —     */
/* "syncing" per DDM device and the counts by channel and DDM state ("by_delivery").          */

/* A status report of every declaration the device's declaration-items list (but the server
 * capabilities), each with its current token, valid (and the reason when "invalid"). */
static char *report_all(json_t *it, const char *valid)
{
    static const char *const keys[][2] = {
        {"Activations", "activations"}, {"Assets", "assets"}, {"Configurations", "configurations"}};
    json_t *decls = json_object(), *v;
    size_t i;

    for (size_t k = 0; k < 3; k++) {
        json_t *a = json_array();
        json_array_foreach(kind_list(it, keys[k][0]), i, v)
        {
            json_t *e =
                json_pack("{s:O,s:O,s:b,s:s}", "identifier", json_object_get(v, "Identifier"),
                          "server-token", json_object_get(v, "ServerToken"), "active",
                          strcmp(valid, "valid") == 0, "valid", valid);
            if (strcmp(valid, "invalid") == 0)
                json_object_set_new(e, "reasons",
                                    json_pack("[{s:s,s:s}]", "code",
                                              "Error.ConfigurationCannotBeApplied", "description",
                                              "SCEP enrollment failed: challenge refused"));
            json_array_append_new(a, e);
        }
        json_object_set_new(decls, keys[k][1], a);
    }
    json_object_set_new(decls, "management", json_array());
    json_t *r = json_pack("{s:{s:{s:o}},s:[]}", "StatusItems", "management", "declarations", decls,
                          "Errors");
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return text;
}

/* The reply of GET /v1/policies/{id}/status (caller decrefs). */
static json_t *policy_status(int64_t id)
{
    json_t *j = NULL;
    char *p = xasprintf("/v1/policies/%lld/status", (long long)id);
    cr_assert_eq(h_api(&S, "GET", p, NULL, &j), 200, "%s", h_json(j));
    free(p);
    return j;
}

static json_int_t by_delivery(json_t *st, const char *channel, const char *key)
{
    json_t *c = json_object_get(json_object_get(st, "by_delivery"), channel);
    cr_assert(json_is_object(c), "by_delivery.%s: %s", channel, h_json(st));
    return json_integer_value(json_object_get(c, key));
}

/* The console's row of a device (the "devices" list). */
static json_t *console_row(json_t *st, const char *udid)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "devices"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "udid")), udid) == 0)
            return v;
    }
    cr_assert_fail("no row for %s: %s", udid, h_json(st));
    return NULL;
}

/* Run scepterctl against S; its exit status, the output in *out (caller frees). */
static int ddm_ctl(char **out, const char *args)
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

/* Does one line of text hold a, b and c in this order? */
static bool line_has(const char *text, const char *a, const char *b, const char *c)
{
    for (const char *l = text; l && *l;) {
        const char *end = strchr(l, '\n');
        char *line = end ? xstrndup(l, (size_t)(end - l)) : xstrdup(l);
        const char *pa = strstr(line, a), *pb = pa ? strstr(pa + strlen(a), b) : NULL;
        bool ok = pb != NULL && strstr(pb + strlen(b), c) != NULL;
        free(line);
        if (ok)
            return true;
        l = end ? end + 1 : NULL;
    }
    return false;
}

Test(ddm, policy_status_shows_syncing_and_counts_by_channel)
{
    int64_t id = create_policy("{\"devices\":[\"IOS-17\",\"IOS-16\",\"MAC-14\"]}");
    char type[64], *data = NULL;

    /* A macOS device is not targeted by an iOS policy: the two phones only. */
    json_t *st = policy_status(id);
    cr_assert_eq(by_delivery(st, "ddm", "devices"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "pending"), 1);
    cr_assert_eq(by_delivery(st, "profile", "devices"), 1);
    cr_assert_eq(by_delivery(st, "profile", "pending"), 1);
    /* no report yet: the device has not caught up, counted as syncing, not as unknown */
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 1);
    cr_assert_eq(by_delivery(st, "ddm", "unknown"), 0);
    json_t *row = console_row(st, "IOS-17");
    cr_assert_str_eq(json_string_value(json_object_get(row, "delivery")), "ddm");
    cr_assert(json_is_true(json_object_get(json_object_get(row, "ddm"), "syncing")), "%s",
              h_json(row));
    row = console_row(st, "IOS-16");
    cr_assert_str_eq(json_string_value(json_object_get(row, "delivery")), "profile");
    cr_assert_null(json_object_get(row, "ddm"), "a profile device has no DDM state");
    json_decref(st);

    /* The phones take their commands; the iOS 17 one reports every declaration valid. */
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    cr_assert_str_eq(type, "DeclarativeManagement");
    free(data);
    cr_assert(next_command(&ios16, "IOS-16", type, NULL));
    cr_assert_str_eq(type, "InstallProfile");
    json_t *it = items(&ios17, "IOS-17");
    char *report = report_all(it, "valid");
    check_report(report);
    cr_assert_eq(dm(&ios17, "IOS-17", "status", report, NULL, NULL), 200);
    free(report);
    json_decref(it);
    st = policy_status(id);
    cr_assert_eq(by_delivery(st, "ddm", "installed"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "active"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 0, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "profile", "installed"), 1, "%s", h_json(st));
    json_t *d = json_object_get(console_row(st, "IOS-17"), "ddm");
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "active", "%s", h_json(d));
    cr_assert(json_is_false(json_object_get(d, "syncing")), "%s", h_json(d));
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(json_object_get(d, "declarations"), i, v)
    {
        cr_assert(json_is_true(json_object_get(v, "current")), "%s", h_json(d));
        n++;
    }
    cr_assert_eq(n, 3, "asset, configuration, activation: %s", h_json(d));
    json_decref(st);

    /* A new challenge changes the asset's token: until the device reports it, it syncs, and
     * the old asset is flagged as not current. */
    update_policy(id, "rotated", false, "{\"devices\":[\"IOS-17\",\"IOS-16\"]}");
    st = policy_status(id);
    d = json_object_get(console_row(st, "IOS-17"), "ddm");
    cr_assert(json_is_true(json_object_get(d, "syncing")), "%s", h_json(d));
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "active"), 0, "%s", h_json(st));
    size_t stale = 0;
    json_array_foreach(json_object_get(d, "declarations"), i, v)
    {
        const char *ident = json_string_value(json_object_get(v, "identifier"));
        bool asset = strlen(ident) > 5 && strcmp(ident + strlen(ident) - 5, ".scep") == 0;
        cr_assert_eq(json_is_true(json_object_get(v, "current")), !asset, "%s", h_json(d));
        stale += asset;
    }
    cr_assert_eq(stale, 1, "%s", h_json(d));
    json_decref(st);

    /* The device fetches the new asset and reports it invalid, with its reason. */
    cr_assert(next_command(&ios17, "IOS-17", type, &data));
    free(data);
    it = items(&ios17, "IOS-17");
    report = report_all(it, "invalid");
    check_report(report);
    cr_assert_eq(dm(&ios17, "IOS-17", "status", report, NULL, NULL), 200);
    free(report);
    json_decref(it);
    st = policy_status(id);
    cr_assert_eq(by_delivery(st, "ddm", "invalid"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 0, "%s", h_json(st));
    d = json_object_get(console_row(st, "IOS-17"), "ddm");
    cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "invalid");
    char *text = json_dumps(d, JSON_COMPACT);
    cr_assert(strstr(text, "SCEP enrollment failed: challenge refused") != NULL, "%s", text);
    free(text);
    json_decref(st);

    /* scepterctl shows the same: the channel and DDM state per device, the counts (the iOS 16
     * phone has not fetched its new profile yet), the reasons; and a device's declarations. */
    char *out = NULL, *args = xasprintf("policy status %lld", (long long)id);
    cr_assert_eq(ddm_ctl(&out, args), 0, "%s", out);
    cr_assert(strstr(out, "delivery: 1 via DDM (1 invalid), 1 via profile (1 pending)") != NULL,
              "%s", out);
    cr_assert(strstr(out, "DELIVERY") != NULL && strstr(out, "DDM") != NULL, "%s", out);
    cr_assert(line_has(out, "IOS-17", "ddm", "invalid"), "%s", out);
    cr_assert(line_has(out, "IOS-16", "profile", "-"), "%s", out);
    cr_assert(line_has(out, "IOS-17: identity:", "SCEP enrollment failed: challenge refused",
                       "Error.ConfigurationCannotBeApplied"),
              "%s", out);
    free(out);
    free(args);
    cr_assert_eq(ddm_ctl(&out, "device declarations IOS-17"), 0, "%s", out);
    cr_assert(strstr(out, "IOS-17: DDM-capable") != NULL, "%s", out);
    cr_assert(line_has(out, "com.apple.configuration.security.identity", "invalid", ".identity"),
              "%s", out);
    cr_assert(line_has(out, "management", "not reported", ".server-capabilities"), "%s", out);
    free(out);
    cr_assert_eq(ddm_ctl(&out, "device declarations IOS-16"), 0, "%s", out);
    cr_assert(strstr(out, "not DDM-capable") != NULL, "%s", out);
    free(out);
    cr_assert_neq(ddm_ctl(&out, "device declarations NO-SUCH-DEVICE"), 0, "%s", out);
    free(out);
}

/* A policy without variables: its declarations are the same for every device, rendered once
 * for the status and compared with each device's report. */
Test(ddm, policy_status_syncing_for_a_policy_without_variables)
{
    struct tu_cert ios17b = h_device_cert(&S, "IOS-17B");
    enroll_os(&ios17b, "IOS-17B", "iPhone15,3", "17.0", "SN17B");
    json_t *j = NULL;
    const char *b = "{\"name\":\"DDM static\",\"platform\":\"ios\",\"ddm\":true,"
                    "\"scep\":{\"url\":\"https://127.0.0.1:9/scep\",\"challenge\":\"s3cret\","
                    "\"key_size\":2048,\"subject\":\"/O=Scepter/CN=Fleet/\"},"
                    "\"targets\":{\"devices\":[\"IOS-17\",\"IOS-17B\"]}}";
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);

    /* both report what they were given: active */
    const struct tu_cert *certs[] = {&ios17, &ios17b};
    const char *udids[] = {"IOS-17", "IOS-17B"};
    for (size_t k = 0; k < 2; k++) {
        json_t *it = items(certs[k], udids[k]);
        char *report = report_all(it, "valid");
        cr_assert_eq(dm(certs[k], udids[k], "status", report, NULL, NULL), 200);
        free(report);
        json_decref(it);
    }
    json_t *st = policy_status(id);
    cr_assert_eq(by_delivery(st, "ddm", "devices"), 2, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "active"), 2, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 0, "%s", h_json(st));
    json_decref(st);

    /* the second device reports an older version of the configuration: it is syncing, the
     * first one is not */
    json_t *it = items(&ios17b, "IOS-17B");
    json_t *conf = find_item(it, "Configurations", ".identity");
    json_object_set_new(conf, "ServerToken",
                        json_string("0000000000000000000000000000000000000000"));
    char *report = report_all(it, "valid");
    cr_assert_eq(dm(&ios17b, "IOS-17B", "status", report, NULL, NULL), 200);
    free(report);
    json_decref(it);
    st = policy_status(id);
    cr_assert_eq(by_delivery(st, "ddm", "active"), 1, "%s", h_json(st));
    cr_assert_eq(by_delivery(st, "ddm", "syncing"), 1, "%s", h_json(st));
    cr_assert(json_is_false(
                  json_object_get(json_object_get(console_row(st, "IOS-17"), "ddm"), "syncing")),
              "%s", h_json(st));
    cr_assert(json_is_true(
                  json_object_get(json_object_get(console_row(st, "IOS-17B"), "ddm"), "syncing")),
              "%s", h_json(st));
    json_decref(st);
    tu_cert_free(&ios17b);
}
