/*
 * Declarative Device Management, the pure parts (mdm/ddm.c): which devices are DDM-capable,
 * the declarations computed from a policy (identifiers, types, Apple's keys, the SCEP
 * credential with variables resolved), server tokens that move only when a declaration's
 * content does, shared declarations where no variable differs, the DeclarativeManagement
 * command, and status-report parsing with every error naming its field.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "mdm/commands_int.h"
#include "mdm/ddm_int.h"
#include "support/support.h"

#define PREFIX "com.scepter"
#define BASE   "https://mdm.example.com"

static void policy(struct profile_policy *p, const char *subject)
{
    profile_policy_init(p);
    p->name = xstrdup("Wi-Fi");
    p->platform = PROFILE_PLATFORM_IOS;
    p->ddm = true;
    p->scep_url = xstrdup("https://ca.example.com/scep");
    p->scep_challenge = xstrdup("s3cret");
    p->scep_subject = xstrdup(subject);
    p->key_size = 2048;
}

static struct profile_device phone(const char *udid, const char *serial)
{
    struct profile_device d;
    memset(&d, 0, sizeof(d));
    d.udid = udid;
    d.serial_number = serial;
    d.platform = "ios";
    d.os_version = "17.1";
    return d;
}

/* The first declaration of a kind that comes from the policy (not the status subscription
 * every DDM-capable device gets, found by identifier below). */
static const struct ddm_decl *find(const struct ddm_set *s, enum ddm_kind k)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].kind == k && strstr(s->v[i].identifier, ".ddm.status-") == NULL)
            return &s->v[i];
    return NULL;
}

static const struct ddm_decl *find_id(const struct ddm_set *s, const char *identifier)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].identifier, identifier) == 0)
            return &s->v[i];
    return NULL;
}

static void compute(const struct profile_policy *p, const struct profile_device *d,
                    struct ddm_set *out)
{
    struct ddm_policy_in in = {"0b4d2c1e-0000-4000-8000-000000000001", 1700000000, p};
    struct scepter_error err;
    json_t *skipped = json_array();
    cr_assert_eq(ddm_compute(&in, 1, d, PREFIX, BASE, out, skipped, &err), 0, "%s", err.msg);
    cr_assert_eq(json_array_size(skipped), 0);
    json_decref(skipped);
}

Test(ddm, capability_by_platform_and_os)
{
    cr_assert(ddm_capable(STORE_PLATFORM_IOS, "17.0"));
    cr_assert(ddm_capable(STORE_PLATFORM_IPADOS, "18.2.1"));
    cr_assert(ddm_capable(STORE_PLATFORM_MACOS, "14.0"));
    cr_assert_not(ddm_capable(STORE_PLATFORM_IOS, "16.7.2"));
    cr_assert_not(ddm_capable(STORE_PLATFORM_MACOS, "13.6"));
    cr_assert_not(ddm_capable(STORE_PLATFORM_TVOS, "18.0"));
    cr_assert_not(ddm_capable(STORE_PLATFORM_IOS, NULL));
    cr_assert_not(ddm_capable(STORE_PLATFORM_IOS, ""));
    cr_assert_not(ddm_capable(STORE_PLATFORM_IOS, "x17"));
}

Test(ddm, declarations_of_a_policy)
{
    struct profile_policy p;
    struct ddm_set s;
    struct profile_device d = phone("UDID-1", "SN-1");
    policy(&p, "/O=Example/CN=%SerialNumber%/");
    compute(&p, &d, &s);
    cr_assert_eq(s.n, 6, "the policy's 3, the status subscription and its activation, management");
    cr_assert_eq(strlen(s.token), 40);
    cr_assert_eq(s.changed, 1700000000);

    const struct ddm_decl *a = find(&s, DDM_ASSET), *c = find(&s, DDM_CONFIGURATION),
                          *act = find(&s, DDM_ACTIVATION), *m = find(&s, DDM_MANAGEMENT);
    cr_assert_str_eq(a->identifier, PREFIX ".policy.0b4d2c1e-0000-4000-8000-000000000001.scep");
    cr_assert_str_eq(json_string_value(json_object_get(a->json, "Type")),
                     "com.apple.asset.credential.scep");
    cr_assert_str_eq(json_string_value(json_object_get(a->json, "ServerToken")), a->token);
    json_t *ref = json_object_get(json_object_get(a->json, "Payload"), "Reference");
    cr_assert_str_eq(json_string_value(json_object_get(ref, "DataURL")),
                     BASE "/mdm/ddm/asset/0b4d2c1e-0000-4000-8000-000000000001");
    cr_assert_str_eq(json_string_value(json_object_get(c->json, "Type")),
                     "com.apple.configuration.security.identity");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c->json, "Payload"),
                                                       "CredentialAssetReference")),
                     a->identifier);
    cr_assert_str_eq(json_string_value(json_object_get(act->json, "Type")),
                     "com.apple.activation.simple");
    cr_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_object_get(act->json, "Payload"), "StandardConfigurations"), 0)),
        c->identifier);
    cr_assert_str_eq(m->identifier, PREFIX ".ddm.server-capabilities");

    /* the credential: resolved for the device, Apple's credential keys only */
    struct scepter_error err;
    char *cred = ddm_scep_credential(&p, PREFIX ".policy.x", &d, &err);
    cr_assert_not_null(cred, "%s", err.msg);
    json_t *j = json_loads(cred, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "Challenge")), "s3cret");
    cr_assert_eq(json_integer_value(json_object_get(j, "Keysize")), 2048);
    cr_assert_null(json_object_get(j, "KeyIsExtractable"), "%s", cred);
    cr_assert_null(json_object_get(j, "PayloadType"), "%s", cred);
    cr_assert(strstr(cred, "\"SN-1\"") != NULL, "%s", cred);
    json_decref(j);
    free(cred);
    ddm_set_clear(&s);
    profile_policy_clear(&p);
}

Test(ddm, tokens_move_only_with_content)
{
    struct profile_policy p;
    struct ddm_set s1, s2, s3, other;
    struct profile_device d = phone("UDID-1", "SN-1"), d2 = phone("UDID-2", "SN-2");
    policy(&p, "/CN=%SerialNumber%/");
    compute(&p, &d, &s1);
    compute(&p, &d, &s2);
    cr_assert_str_eq(s1.token, s2.token, "computed twice, the same");
    ddm_set_clear(&s2);

    free(p.scep_challenge);
    p.scep_challenge = xstrdup("rotated");
    compute(&p, &d, &s2);
    cr_assert_str_neq(find(&s1, DDM_ASSET)->token, find(&s2, DDM_ASSET)->token);
    cr_assert_str_eq(find(&s1, DDM_CONFIGURATION)->token, find(&s2, DDM_CONFIGURATION)->token);
    cr_assert_str_eq(find(&s1, DDM_ACTIVATION)->token, find(&s2, DDM_ACTIVATION)->token);
    cr_assert_str_eq(find(&s1, DDM_MANAGEMENT)->token, find(&s2, DDM_MANAGEMENT)->token);
    cr_assert_str_neq(s1.token, s2.token);

    p.key_extractable = true;
    compute(&p, &d, &s3);
    cr_assert_str_eq(find(&s2, DDM_ASSET)->token, find(&s3, DDM_ASSET)->token);
    cr_assert_str_neq(find(&s2, DDM_CONFIGURATION)->token, find(&s3, DDM_CONFIGURATION)->token);

    /* another serial: its own asset, the rest shared */
    compute(&p, &d2, &other);
    cr_assert_str_neq(find(&s3, DDM_ASSET)->token, find(&other, DDM_ASSET)->token);
    cr_assert_str_eq(find(&s3, DDM_CONFIGURATION)->token, find(&other, DDM_CONFIGURATION)->token);
    ddm_set_clear(&other);

    /* no server-side variable: the same bytes for every device */
    free(p.scep_subject);
    p.scep_subject = xstrdup("/O=Example/CN=Wi-Fi/");
    struct ddm_set u1, u2;
    compute(&p, &d, &u1);
    compute(&p, &d2, &u2);
    cr_assert_str_eq(u1.token, u2.token);
    ddm_set_clear(&u1);
    ddm_set_clear(&u2);
    ddm_set_clear(&s1);
    ddm_set_clear(&s2);
    ddm_set_clear(&s3);
    profile_policy_clear(&p);
}

Test(ddm, device_missing_a_fact_is_skipped_and_no_https_refused)
{
    struct profile_policy p;
    struct ddm_set s;
    struct profile_device d = phone("UDID-1", NULL);
    struct ddm_policy_in in = {"u", 1, &p};
    struct scepter_error err;
    json_t *skipped = json_array();
    policy(&p, "/CN=%SerialNumber%/");
    cr_assert_eq(ddm_compute(&in, 1, &d, PREFIX, BASE, &s, skipped, &err), 0);
    cr_assert_eq(s.n, 3, "only the server capabilities and the status subscription");
    cr_assert_eq(json_array_size(skipped), 1);
    cr_assert(strstr(json_string_value(json_object_get(json_array_get(skipped, 0), "error")),
                     "SerialNumber") != NULL,
              "%s", json_dumps(skipped, 0));
    ddm_set_clear(&s);
    cr_assert_eq(ddm_compute(&in, 1, &d, PREFIX, "http://mdm.example.com", &s, NULL, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "public_url");
    json_decref(skipped);
    profile_policy_clear(&p);
}

Test(ddm, declarative_management_command_carries_sync_tokens)
{
    struct profile_policy p;
    struct ddm_set s;
    struct mdm_command cmd;
    struct scepter_error err;
    struct profile_device d = phone("UDID-1", "SN-1");
    plist_t root = NULL, c = NULL;
    const char *type = NULL;
    const unsigned char *data = NULL;
    size_t len = 0;
    policy(&p, "/CN=%SerialNumber%/");
    compute(&p, &d, &s);
    mdm_ddm_command(&s, &cmd);
    cr_assert_str_eq(cmd.request_type, "DeclarativeManagement");
    cr_assert_eq(plistx_parse_dict(cmd.plist.data, cmd.plist.len, &root, &err), 0);
    cr_assert_eq(plistx_get_dict(root, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_string(c, "RequestType", true, &type, &err), 0);
    cr_assert_str_eq(type, "DeclarativeManagement");
    cr_assert_eq(plistx_get_data(c, "Data", true, &data, &len, &err), 0);
    json_t *j = json_loadb((const char *)data, len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "DeclarationsToken")), s.token);
    cr_assert_str_eq(json_string_value(json_object_get(j, "Timestamp")), "2023-11-14T22:13:20Z");
    json_decref(j);
    plist_free(root);
    mdm_command_clear(&cmd);
    ddm_set_clear(&s);
    profile_policy_clear(&p);
}

Test(ddm, status_report_parsed)
{
    static const char rep[] =
        "{\"StatusItems\":{\"device\":{\"operating-system\":{\"version\":\"17.4\"},"
        "\"model\":{\"family\":\"iPad\"}},\"management\":{\"declarations\":{"
        "\"activations\":[{\"identifier\":\"a\",\"server-token\":\"t1\",\"active\":true,"
        "\"valid\":\"valid\"}],\"configurations\":[{\"identifier\":\"c\",\"server-token\":\"t2\","
        "\"active\":false,\"valid\":\"invalid\",\"reasons\":[{\"code\":\"Error.X\","
        "\"description\":\"SCEP failed\"}]}],\"assets\":[],\"management\":[]}}},\"Errors\":[]}";
    struct ddm_report r;
    struct scepter_error err;
    cr_assert_eq(ddm_report_parse(rep, strlen(rep), &r, &err), 0, "%s", err.msg);
    cr_assert(r.has_declarations);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.os_version, "17.4");
    cr_assert_str_eq(r.model_family, "iPad");
    cr_assert_str_eq(r.items[0].kind, "activations");
    cr_assert(r.items[0].active);
    cr_assert_str_eq(r.items[1].valid, "invalid");
    cr_assert(strstr(r.items[1].reasons_json, "Error.X") != NULL);
    ddm_report_clear(&r);

    /* without the declarations item, the stored rows are left alone */
    static const char facts[] = "{\"StatusItems\":{\"device\":{\"model\":{\"family\":\"Mac\"}}}}";
    cr_assert_eq(ddm_report_parse(facts, strlen(facts), &r, &err), 0);
    cr_assert_not(r.has_declarations);
    cr_assert_null(r.os_version);
    ddm_report_clear(&r);
}

Test(ddm, bad_status_reports_name_the_field)
{
    static const struct {
        const char *text, *field;
    } bad[] = {
        {"", "Data"},
        {"[1]", "Data"},
        {"{}", "StatusItems"},
        {"{\"StatusItems\":1}", "StatusItems"},
        {"{\"StatusItems\":{},\"Errors\":{}}", "Errors"},
        {"{\"StatusItems\":{\"management\":[]}}", "StatusItems.management"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"assets\":{}}}}}",
         "StatusItems.management.declarations.assets"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"assets\":[1]}}}}",
         "StatusItems.management.declarations.assets[0]"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"activations\":[{\"identifier\":"
         "\"\"}]}}}}",
         "StatusItems.management.declarations.activations[0].identifier"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"activations\":[{\"identifier\":"
         "\"a\",\"active\":\"yes\"}]}}}}",
         "StatusItems.management.declarations.activations[0].active"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"configurations\":[{"
         "\"identifier\":\"a\",\"server-token\":5}]}}}}",
         "StatusItems.management.declarations.configurations[0].server-token"},
        {"{\"StatusItems\":{\"management\":{\"declarations\":{\"configurations\":[{"
         "\"identifier\":\"a\",\"reasons\":\"x\"}]}}}}",
         "StatusItems.management.declarations.configurations[0].reasons"},
        {"{\"StatusItems\":{\"device\":{\"model\":{\"family\":[]}}}}",
         "StatusItems.device.model.family"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ddm_report r;
        struct scepter_error err;
        memset(&err, 0, sizeof(err));
        cr_assert_eq(ddm_report_parse(bad[i].text, strlen(bad[i].text), &r, &err), SCEPTER_EINVAL,
                     "%s", bad[i].text);
        /* err.field holds 63 bytes; the message carries the whole path */
        cr_assert_eq(strncmp(err.field, bad[i].field, sizeof(err.field) - 1), 0, "%s: %s",
                     bad[i].text, err.msg);
        cr_assert(strstr(err.msg, bad[i].field) != NULL, "%s", err.msg);
        cr_assert_null(r.items);
        cr_assert_null(r.root);
    }
}

Test(ddm, root_certificate_asset_and_configuration)
{
    struct profile_policy p;
    struct ddm_set s;
    struct profile_device d = phone("UDID-1", "SN-1");
    size_t len = 0;
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &len);
    struct scepter_error err;
    X509 *x = profile_root_cert_read(pem, len, "root", &err);
    cr_assert_not_null(x, "%s", err.msg);
    policy(&p, "/CN=%SerialNumber%/");
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    cr_assert_gt(n, 0);
    p.root_cert = xmemdup(der, (size_t)n);
    p.root_cert_len = (size_t)n;
    OPENSSL_free(der);
    X509_free(x);
    free(pem);

    compute(&p, &d, &s);
    cr_assert_eq(s.n, 8,
                 "two assets, two configurations, the activation, management, and the "
                 "status subscription with its activation");
    const struct ddm_decl *act = find(&s, DDM_ACTIVATION);
    json_t *std = json_object_get(json_object_get(act->json, "Payload"), "StandardConfigurations");
    cr_assert_eq(json_array_size(std), 2);
    const char *first = json_string_value(json_array_get(std, 0));
    cr_assert(strstr(first, ".root-certificate") != NULL, "root first: %s", first);
    size_t certs = 0;
    for (size_t i = 0; i < s.n; i++) {
        const char *type = json_string_value(json_object_get(s.v[i].json, "Type"));
        if (strcmp(type, "com.apple.asset.credential.certificate") == 0) {
            json_t *ref = json_object_get(json_object_get(s.v[i].json, "Payload"), "Reference");
            cr_assert(strstr(json_string_value(json_object_get(ref, "DataURL")), "/root") != NULL);
            cr_assert_str_eq(json_string_value(json_object_get(ref, "ContentType")),
                             "application/pem");
            certs++;
        }
        if (strcmp(type, "com.apple.configuration.security.certificate") == 0)
            certs++;
    }
    cr_assert_eq(certs, 2);
    char *out = ddm_root_pem(&p);
    cr_assert(out && strncmp(out, "-----BEGIN CERTIFICATE-----", 27) == 0);
    free(out);
    ddm_set_clear(&s);
    profile_policy_clear(&p);
}

Test(ddm, status_subscription_for_capable_devices_only)
{
    struct profile_policy p;
    struct ddm_set s, none;
    struct profile_device d = phone("UDID-1", "SN-1"), old = phone("UDID-2", "SN-2");
    struct ddm_policy_in in = {"0b4d2c1e-0000-4000-8000-000000000001", 1700000000, &p};
    struct scepter_error err;
    policy(&p, "/CN=Wi-Fi/");
    compute(&p, &d, &s);

    const struct ddm_decl *sub = find_id(&s, PREFIX ".ddm.status-subscriptions");
    const struct ddm_decl *act = find_id(&s, PREFIX ".ddm.status-activation");
    cr_assert_not_null(sub);
    cr_assert_not_null(act);
    cr_assert_eq(sub->kind, DDM_CONFIGURATION);
    cr_assert_eq(act->kind, DDM_ACTIVATION);
    cr_assert_str_eq(json_string_value(json_object_get(sub->json, "Type")),
                     "com.apple.configuration.management.status-subscriptions");
    json_t *items = json_object_get(json_object_get(sub->json, "Payload"), "StatusItems");
    cr_assert_eq(json_array_size(items), DDM_SUBSCRIBED_N);
    bool os = false, family = false;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(items, i), "Name"));
        os |= strcmp(n, "device.operating-system.version") == 0;
        family |= strcmp(n, "device.model.family") == 0;
    }
    cr_assert(os && family);
    json_t *std = json_object_get(json_object_get(act->json, "Payload"), "StandardConfigurations");
    cr_assert_str_eq(json_string_value(json_array_get(std, 0)), sub->identifier);

    /* a device on iOS 16 (the profile channel) has no subscription */
    old.os_version = "16.7";
    cr_assert_eq(ddm_compute(&in, 1, &old, PREFIX, BASE, &none, NULL, &err), 0);
    cr_assert_null(find_id(&none, PREFIX ".ddm.status-subscriptions"));
    ddm_set_clear(&none);
    ddm_set_clear(&s);
    profile_policy_clear(&p);
}

Test(ddm, status_report_build_version)
{
    static const char rep[] =
        "{\"StatusItems\":{\"device\":{\"operating-system\":{\"version\":\"17.4\","
        "\"build-version\":\"21E219\"},\"model\":{\"family\":\"iPhone\"}}},\"Errors\":[]}";
    static const char bad[] =
        "{\"StatusItems\":{\"device\":{\"operating-system\":{\"build-version\":17}}},"
        "\"Errors\":[]}";
    struct ddm_report r;
    struct scepter_error err;
    cr_assert_eq(ddm_report_parse(rep, strlen(rep), &r, &err), 0, "%s", err.msg);
    cr_assert_str_eq(r.os_version, "17.4");
    cr_assert_str_eq(r.build_version, "21E219");
    cr_assert_str_eq(r.model_family, "iPhone");
    cr_assert_not(r.has_declarations);
    ddm_report_clear(&r);
    cr_assert_eq(ddm_report_parse(bad, strlen(bad), &r, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "StatusItems.device.operating-system.build-version");
}
