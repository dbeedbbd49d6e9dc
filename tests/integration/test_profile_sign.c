/*
 * The SCEP policy profile as a device receives it, over HTTPS from the real server:
 *
 *   - CMS-signed with the configured signing identity, content attached and the signing chain
 *     (leaf and intermediate) embedded, so `openssl cms -verify` (the real program) accepts it
 *     against the root alone, and the simulator's device view (sim_profile_parse) too;
 *   - linked Wi-Fi and VPN payloads naming the SCEP payload's UUID, passing the facts of
 *     Apple's schemas;
 *   - a user-keychain policy (macOS) is a PayloadScope User profile sent on the Mac's user
 *     channels, not its device channel; a user channel that checks in later gets it then, and
 *     moving the policy back to the device keychain moves the profile back.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/pem.h>

#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "profiles/profiles.h"
#include "support/support.h"
#include "tests/sim/sim.h"
#include "tests/unit/profiles/schema.h"

static struct h_server S;
static char *g_dir;
static struct tu_cert g_root, g_inter, g_leaf, g_other, g_mac;

#define MAC "SIGN-MAC-1"

static char *path_of(const char *name)
{
    return xasprintf("%s/%s", g_dir, name);
}

static void setup(void)
{
    struct tu_cert_opts root = {.cn = "Scepter Test Profile Root", .not_after = 86400, .ca = true};
    struct tu_cert_opts inter = {
        .cn = "Scepter Test Profile Intermediate", .not_after = 86400, .ca = true};
    struct tu_cert_opts leaf = {.cn = "Scepter Test Profile Signer", .not_after = 86400};
    struct tu_cert_opts other = {.cn = "Unrelated Root", .not_after = 86400};

    g_dir = tu_tmpdir();
    g_root = tu_ca_new(&root);
    g_inter = tu_cert_issue(&g_root, &inter);
    g_leaf = tu_cert_issue(&g_inter, &leaf);
    g_other = tu_ca_new(&other);

    /* signing_cert_file: the signer, then its intermediate */
    char *leaf_pem = path_of("leaf.pem"), *key = path_of("signing.key");
    char *inter_pem = path_of("inter.pem"), *chain = path_of("signing-chain.pem");
    tu_cert_write(&g_leaf, leaf_pem, key);
    tu_cert_write(&g_inter, inter_pem, NULL);
    size_t l1, l2;
    unsigned char *a = tu_read(leaf_pem, &l1), *b = tu_read(inter_pem, &l2);
    unsigned char *both = xmalloc(l1 + l2);
    memcpy(both, a, l1);
    memcpy(both + l1, b, l2);
    tu_write(chain, both, l1 + l2);
    free(a);
    free(b);
    free(both);
    char *p = path_of("root.pem");
    tu_cert_write(&g_root, p, NULL);
    free(p);
    p = path_of("other.pem");
    tu_cert_write(&g_other, p, NULL);
    free(p);

    char *extra = xasprintf("signing_cert_file = %s\nsigning_key_file = %s\n", chain, key);
    struct h_opts o = {.extra = extra};
    h_start(&S, &o);
    free(extra);
    free(leaf_pem);
    free(key);
    free(inter_pem);
    free(chain);
    g_mac = h_device_cert(&S, MAC);
    h_enroll(&S, &g_mac, MAC, "Mac14,2");
}

static void teardown(void)
{
    tu_cert_free(&g_mac);
    tu_cert_free(&g_root);
    tu_cert_free(&g_inter);
    tu_cert_free(&g_leaf);
    tu_cert_free(&g_other);
    h_stop(&S);
    tu_rmtree(g_dir);
    free(g_dir);
}

TestSuite(profile_sign, .init = setup, .fini = teardown, .timeout = 120);

/*
 * Poll as device udid (identity id) or, with user set, as one of its user channels; report the
 * previous command's status when reported is set.  The command (caller plist_free()s) or NULL
 * when none is queued.
 */
static plist_t poll_dev(const struct tu_cert *id, const char *udid, const char *user,
                        const char *status, const char *reported, char uuid[64])
{
    struct tu_http_resp r;
    char *body;
    plist_t d = NULL;
    struct scepter_error err;
    const char *u = NULL;

    if (user && reported)
        body =
            h_plist("Status", status, "UDID", udid, "UserID", user, "CommandUUID", reported, NULL);
    else if (user)
        body = h_plist("Status", "Idle", "UDID", udid, "UserID", user, NULL);
    else if (reported)
        body = h_plist("Status", status, "UDID", udid, "CommandUUID", reported, NULL);
    else
        body = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(&S, id, body, &r), 0);
    free(body);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    if (r.body_len > 0) {
        cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &u, &err), 0);
        snprintf(uuid, 64, "%s", u);
    }
    tu_http_resp_free(&r);
    return d;
}

static plist_t poll_as(const char *user, const char *status, const char *reported, char uuid[64])
{
    return poll_dev(&g_mac, MAC, user, status, reported, uuid);
}

static const char *request_type(plist_t cmd)
{
    plist_t c = plist_dict_get_item(cmd, "Command");
    return plist_get_string_ptr(plist_dict_get_item(c, "RequestType"), NULL);
}

/* The InstallProfile's Payload bytes (borrowed from cmd). */
static const unsigned char *payload_of(plist_t cmd, size_t *len)
{
    const unsigned char *p = NULL;
    plist_t c = NULL;
    struct scepter_error err;

    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_data(c, "Payload", true, &p, len, &err), 0, "%s", err.msg);
    return p;
}

/* The plist inside a (signed) profile. */
static plist_t profile_plist(const unsigned char *payload, size_t len)
{
    unsigned char *inner = NULL;
    size_t ilen = 0;
    plist_t prof = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_unwrap(payload, len, NULL, &inner, &ilen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
    free(inner);
    return prof;
}

static int cms_verify(const char *ca, const char *out)
{
    char *cmd = xasprintf("openssl cms -verify -inform DER -in '%s/payload.der' -CAfile '%s/%s' "
                          "-purpose any -out '%s/%s' 2>/dev/null",
                          g_dir, g_dir, ca, g_dir, out);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

static plist_t payload_typed(plist_t prof, const char *type)
{
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t pl = plist_array_get_item(arr, i);
        if (strcmp(plist_get_string_ptr(plist_dict_get_item(pl, "PayloadType"), NULL), type) == 0)
            return pl;
    }
    return NULL;
}

static const char *str_at(plist_t d, const char *key)
{
    plist_t v = plist_dict_get_item(d, key);
    cr_assert(v && plist_get_node_type(v) == PLIST_STRING, "%s: missing or not a string", key);
    return plist_get_string_ptr(v, NULL);
}

Test(profile_sign, signed_with_its_chain_and_linked_payloads_verify_as_a_device_would)
{
    json_t *j = NULL;
    char uuid[64];
    size_t len;

    cr_assert_eq(
        h_api(&S, "POST", "/v1/policies",
              "{\"name\": \"Corp network\", \"platform\": \"macos\","
              " \"notes\": \"The device certificate for Wi-Fi and VPN\","
              " \"scep\": {\"url\": \"http://127.0.0.1:9/scep\", \"challenge\": \"s3cret\","
              "   \"key_size\": 2048, \"subject\": \"/O=Scepter/CN=%SerialNumber%\","
              "   \"subject_alt_name\": {\"dns_name\": [\"%ComputerName%.example.com\","
              "     \"mac.example.com\"]}},"
              " \"linked\": {"
              "   \"wifi\": {\"ssid\": \"CorpNet\", \"encryption\": \"WPA3\","
              "     \"trusted_server_names\": [\"radius.example.com\"]},"
              "   \"vpn\": {\"name\": \"Corp VPN\", \"server\": \"vpn.example.com\","
              "     \"remote_identifier\": \"vpn.example.com\","
              "     \"local_identifier\": \"%SerialNumber%\"}},"
              " \"targets\": {\"devices\": [\"" MAC "\"]}}",
              &j),
        201, "%s", h_json(j));
    json_decref(j);

    plist_t cmd = poll_as(NULL, NULL, NULL, uuid);
    cr_assert_not_null(cmd, "the Mac gets its InstallProfile");
    const unsigned char *payload = payload_of(cmd, &len);
    cr_assert(len > 2 && payload[0] == 0x30, "the payload is DER CMS, not an XML plist");
    char *p = path_of("payload.der");
    tu_write(p, payload, len);
    free(p);

    /* openssl: the signature and the chain to the root, with only the root given */
    cr_assert_eq(cms_verify("root.pem", "content.plist"), 0,
                 "openssl cms -verify accepts the profile against the signing root");
    cr_assert_neq(cms_verify("other.pem", "other.plist"), 0, "and refuses it against another");

    /* the chain is in the message: the signer and its intermediate */
    const unsigned char *q = payload;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
    cr_assert_not_null(cms);
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    cr_assert_eq(sk_X509_num(certs), 2, "signer and intermediate embedded");
    bool has_inter = false;
    for (int i = 0; i < sk_X509_num(certs); i++)
        has_inter |= X509_cmp(sk_X509_value(certs, i), g_inter.cert) == 0;
    cr_assert(has_inter, "the intermediate is embedded");
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);

    /* the content openssl extracted is the profile (detached=no) */
    p = path_of("content.plist");
    size_t clen;
    unsigned char *content = tu_read(p, &clen);
    free(p);
    plist_t prof = NULL;
    struct scepter_error err;
    cr_assert_eq(plistx_parse_dict(content, clen, &prof, &err), 0, "%s", err.msg);
    unsigned char *inner = NULL;
    size_t ilen = 0;
    cr_assert_eq(profile_unwrap(payload, len, NULL, &inner, &ilen, NULL, &err), 0, "%s", err.msg);
    cr_assert(ilen == clen && memcmp(inner, content, clen) == 0, "the same profile both ways");
    free(inner);
    free(content);

    /* a device trusting the root: verified, signer chain checked */
    X509_STORE *trust = X509_STORE_new();
    X509_STORE_add_cert(trust, g_root.cert);
    X509_STORE_set_purpose(trust, X509_PURPOSE_ANY);
    struct sim_profile *sp = NULL;
    cr_assert_eq(sim_profile_parse(payload, len, trust, &sp, &err), 0, "%s", err.msg);
    cr_assert(sim_profile_is_signed(sp));
    sim_profile_free(sp);
    X509_STORE_free(trust);

    /* what is in it: the linked payloads name the SCEP payload; Apple's schema facts hold */
    struct buf problems = BUF_INIT;
    size_t n = schema_check_profile(prof, "macOS", &problems);
    cr_assert_eq(n, 0, "%zu schema problems:\n%s", n, problems.data);
    buf_free(&problems);
    cr_assert_str_eq(str_at(prof, "PayloadDescription"),
                     "The device certificate for Wi-Fi and VPN");
    const char *scep_uuid = str_at(payload_typed(prof, "com.apple.security.scep"), "PayloadUUID");
    cr_assert_str_eq(
        str_at(payload_typed(prof, "com.apple.wifi.managed"), "PayloadCertificateUUID"), scep_uuid);
    cr_assert_str_eq(
        str_at(plist_dict_get_item(payload_typed(prof, "com.apple.vpn.managed"), "IKEv2"),
               "PayloadCertificateUUID"),
        scep_uuid);
    plist_t san = plist_dict_get_item(
        plist_dict_get_item(payload_typed(prof, "com.apple.security.scep"), "PayloadContent"),
        "SubjectAltName");
    cr_assert_eq(plist_array_get_size(plist_dict_get_item(san, "dNSName")), 2);
    plist_free(prof);
    plist_free(cmd);
}

/* A user channel TokenUpdate for a Mac (its first: the channel is enabled). */
static void user_token_update_of(const struct tu_cert *id, const char *udid, const char *user)
{
    struct tu_http_resp r;
    char *tok =
        h_plist("MessageType", "TokenUpdate", "Topic", H_TOPIC, "UDID", udid, "UserID", user,
                "UserShortName", "jane", "Token", "data:user-token", "PushMagic", "PM-USER", NULL);
    cr_assert_eq(h_checkin(&S, id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(tok);
}

static void user_token_update(const char *user)
{
    user_token_update_of(&g_mac, MAC, user);
}

#define USER_POLICY(keychain)                                                                      \
    "{\"name\": \"Login keychain cert\", \"platform\": \"macos\","                                 \
    " \"scep\": {\"url\": \"http://127.0.0.1:9/scep\", \"challenge\": \"s3cret\","                 \
    "   \"key_size\": 2048, \"keychain\": \"" keychain "\", \"allow_all_apps_access\": true},"     \
    " \"targets\": {\"devices\": [\"" MAC "\"]}}"

Test(profile_sign, user_keychain_policy_goes_to_the_user_channels)
{
    json_t *j = NULL;
    char uuid[64], *body;
    size_t len;

    user_token_update("USER-GUID-1");
    body = xstrdup(USER_POLICY("user"));
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    free(body);
    cr_assert_eq(json_integer_value(json_object_get(j, "targeted_devices")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "targeted_user_channels")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 1);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);

    /* not on the device channel */
    plist_t cmd = poll_as(NULL, NULL, NULL, uuid);
    cr_assert_null(cmd, "the device channel gets nothing: the profile is the user's");
    /* on the user's channel, user-scoped */
    cmd = poll_as("USER-GUID-1", NULL, NULL, uuid);
    cr_assert_not_null(cmd, "the user channel gets the InstallProfile");
    const unsigned char *payload = payload_of(cmd, &len);
    plist_t prof = profile_plist(payload, len);
    cr_assert_str_eq(str_at(prof, "PayloadScope"), "User");
    plist_t content =
        plist_dict_get_item(payload_typed(prof, "com.apple.security.scep"), "PayloadContent");
    cr_assert(plist_bool_val_is_true(plist_dict_get_item(content, "AllowAllAppsAccess")));
    plist_free(prof);
    plist_free(cmd);
    cmd = poll_as("USER-GUID-1", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd);

    /* status: installed, on that channel */
    char *path = xasprintf("/v1/policies/%lld/status", (long long)id);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    json_t *inst = json_object_get(j, "installed");
    cr_assert_eq(json_array_size(inst), 1, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(inst, 0), "channel")),
                     MAC ":USER-GUID-1");
    json_decref(j);

    /* a second user signs in later: that channel gets it on its first TokenUpdate */
    user_token_update("USER-GUID-2");
    cmd = poll_as("USER-GUID-2", NULL, NULL, uuid);
    cr_assert_not_null(cmd, "the new user channel gets the profile");
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_free(cmd);
    cmd = poll_as("USER-GUID-2", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd);

    /* back to the device keychain: removed from both users, installed on the device */
    body = xstrdup(USER_POLICY("device"));
    char *put = xasprintf("/v1/policies/%lld", (long long)id);
    cr_assert_eq(h_api(&S, "PUT", put, body, &j), 200, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 1, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_removals")), 2, "%s", h_json(j));
    json_decref(j);
    free(body);
    free(put);
    const char *users[] = {"USER-GUID-1", "USER-GUID-2"};
    for (size_t i = 0; i < 2; i++) {
        cmd = poll_as(users[i], NULL, NULL, uuid);
        cr_assert_not_null(cmd);
        cr_assert_str_eq(request_type(cmd), "RemoveProfile");
        plist_free(cmd);
    }
    cmd = poll_as(NULL, NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    payload = payload_of(cmd, &len);
    prof = profile_plist(payload, len);
    cr_assert_str_eq(str_at(prof, "PayloadScope"), "System");
    plist_free(prof);
    plist_free(cmd);
    free(path);
}

/* Group changes and late user channels: the user channels follow the Mac's membership. */
Test(profile_sign, user_keychain_policy_follows_group_membership)
{
    json_t *j = NULL;
    char uuid[64];
    struct tu_cert mac2 = h_device_cert(&S, "SIGN-MAC-2");

    h_enroll(&S, &mac2, "SIGN-MAC-2", "MacBookAir10,1");
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups",
                       "{\"name\":\"Lab\",\"devices\":[\"" MAC "\"]}", NULL),
                 201);
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\": \"Lab users\", \"platform\": \"macos\","
                       " \"scep\": {\"url\": \"http://127.0.0.1:9/scep\", \"key_size\": 2048,"
                       "   \"keychain\": \"user\"},"
                       " \"targets\": {\"device_groups\": [\"Lab\"]}}",
                       &j),
                 201, "%s", h_json(j));
    json_decref(j);

    /* the other Mac's user is not targeted */
    user_token_update_of(&mac2, "SIGN-MAC-2", "U-9");
    cr_assert_null(poll_dev(&mac2, "SIGN-MAC-2", "U-9", NULL, NULL, uuid));
    /* it joins the group: its user channel gets the profile, its device channel nothing */
    cr_assert_eq(
        h_api(&S, "POST", "/v1/device-groups/Lab/members", "{\"devices\":[\"SIGN-MAC-2\"]}", NULL),
        200);
    cr_assert_null(poll_dev(&mac2, "SIGN-MAC-2", NULL, NULL, NULL, uuid),
                   "not on the device channel");
    plist_t cmd = poll_dev(&mac2, "SIGN-MAC-2", "U-9", NULL, NULL, uuid);
    cr_assert_not_null(cmd, "joined a targeted group: the user channel gets it");
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    plist_free(cmd);
    cmd = poll_dev(&mac2, "SIGN-MAC-2", "U-9", "Acknowledged", uuid, uuid);
    cr_assert_null(cmd);
    /* and leaves it: RemoveProfile on the user channel */
    cr_assert_eq(h_api(&S, "DELETE", "/v1/device-groups/Lab/members",
                       "{\"devices\":[\"SIGN-MAC-2\"]}", NULL),
                 200);
    cmd = poll_dev(&mac2, "SIGN-MAC-2", "U-9", NULL, NULL, uuid);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "RemoveProfile");
    plist_free(cmd);
    tu_cert_free(&mac2);
}
