/*
 * The device brain: InstallProfile (unsigned and signed; root payloads), RemoveProfile by the
 * top-level PayloadIdentifier, ProfileList/CertificateList/DeviceInformation keys and types,
 * NotNow, access rights, malformed and unknown commands, and the check-in bodies.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/pkcs12.h>

#include "common/crypto.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tests/sim/sim_test_util.h"

static struct sim_brain_env no_env(void)
{
    struct sim_brain_env e;

    memset(&e, 0, sizeof(e));
    return e;
}

static plist_t run(struct sim_device *d, const struct sim_brain_env *env, const char *body,
                   size_t len, struct sim_brain_outcome *o)
{
    plist_t r;

    sim_brain_handle(d, env, body, len, &r, o);
    return r;
}

static plist_t run_cmd(struct sim_device *d, const struct sim_brain_env *env, const char *uuid,
                       const char *type, plist_t params, struct sim_brain_outcome *o)
{
    size_t len;
    char *body = ts_command(uuid, type, params, &len);
    plist_t r = run(d, env, body, len, o);

    free(body);
    return r;
}

static const char *str(plist_t d, const char *k)
{
    plist_t n = plist_dict_get_item(d, k);

    return n && plist_get_node_type(n) == PLIST_STRING ? plist_get_string_ptr(n, NULL) : NULL;
}

/* An InstallProfile params dict for a profile with one root certificate payload. */
static plist_t root_profile_params(const char *identifier, bool sign)
{
    plist_t pls = plist_new_array(), pl, prof, params = plist_new_dict();
    X509 *c;
    EVP_PKEY *k;
    unsigned char *der;
    size_t dlen, plen;
    char *xml;

    ts_identity("Example Root CA", &c, &k);
    pl = ts_payload("com.apple.security.root", "org.example.root.cert",
                    "0F0E0D0C-0000-4000-8000-000000000001");
    der = crypto_cert_der(c, &dlen);
    plistx_set_data(pl, "PayloadContent", der, dlen);
    OPENSSL_free(der);
    plist_array_append_item(pls, pl);
    plist_array_append_item(pls, ts_payload("com.apple.wifi.managed", "org.example.wifi",
                                            "0F0E0D0C-0000-4000-8000-000000000002"));
    prof = ts_profile(identifier, "0F0E0D0C-0000-4000-8000-000000000000", pls);
    xml = ts_xml(prof, &plen);
    plist_free(prof);
    if (sign) {
        unsigned char *s = ts_cms_sign(xml, plen, c, k, &plen);
        plistx_set_data(params, "Payload", s, plen);
        free(s);
    } else {
        plistx_set_data(params, "Payload", xml, plen);
    }
    free(xml);
    X509_free(c);
    EVP_PKEY_free(k);
    return params;
}

Test(brain, install_unsigned_profile_then_list_and_remove_it)
{
    struct sim_device *d = ts_enrolled_device(SIM_MAC, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    plist_t r, list, item, content;
    bool found = false;

    r = run_cmd(d, &env, "C1", "InstallProfile", root_profile_params("org.example.p1", false), &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    cr_assert_str_eq(str(r, "CommandUUID"), "C1");
    cr_assert_str_eq(str(r, "UDID"), sim_device_facts(d)->udid);
    plist_free(r);
    cr_assert(sim_device_has_profile(d, "org.example.p1"));

    r = run_cmd(d, &env, "C2", "ProfileList", NULL, &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    list = plist_dict_get_item(r, "ProfileList");
    cr_assert_eq(plist_get_node_type(list), PLIST_ARRAY);
    cr_assert_eq(plist_array_get_size(list), 2); /* enrollment + the new one */
    for (uint32_t i = 0; i < plist_array_get_size(list); i++) {
        item = plist_array_get_item(list, i);
        cr_assert_not_null(str(item, "PayloadUUID"));
        cr_assert_eq(plist_get_node_type(plist_dict_get_item(item, "PayloadVersion")), PLIST_UINT);
        cr_assert_eq(plist_get_node_type(plist_dict_get_item(item, "IsEncrypted")), PLIST_BOOLEAN);
        /* IsManaged is not reported by macOS */
        cr_assert_null(plist_dict_get_item(item, "IsManaged"));
        if (strcmp(str(item, "PayloadIdentifier"), "org.example.p1") == 0) {
            found = true;
            content = plist_dict_get_item(item, "PayloadContent");
            cr_assert_eq(plist_array_get_size(content), 2);
            cr_assert_str_eq(str(plist_array_get_item(content, 0), "PayloadType"),
                             "com.apple.security.root");
            cr_assert_null(plist_dict_get_item(item, "SignerCertificates"));
        }
    }
    cr_assert(found);
    plist_free(r);

    /* RemoveProfile needs the top-level identifier, not a payload's. */
    {
        plist_t params = plist_new_dict();
        plistx_set_string(params, "Identifier", "org.example.root.cert");
        r = run_cmd(d, &env, "C3", "RemoveProfile", params, &o);
        cr_assert_str_eq(str(r, "Status"), "Error");
        cr_assert_not_null(plist_dict_get_item(r, "ErrorChain"));
        plist_free(r);
        params = plist_new_dict();
        plistx_set_string(params, "Identifier", "org.example.p1");
        r = run_cmd(d, &env, "C4", "RemoveProfile", params, &o);
        cr_assert_str_eq(str(r, "Status"), "Acknowledged");
        plist_free(r);
    }
    cr_assert_not(sim_device_has_profile(d, "org.example.p1"));
    cr_assert_eq(sim_device_profile_count(d), 1);
    sim_device_free(d);
}

Test(brain, signed_profile_lists_signer_and_tampered_one_is_refused)
{
    struct sim_device *d = ts_enrolled_device(SIM_IPHONE, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    plist_t r, params, item;
    const char *data;
    uint64_t len;
    char *copy;

    r = run_cmd(d, &env, "S1", "InstallProfile", root_profile_params("org.example.s", true), &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    plist_free(r);
    r = run_cmd(d, &env, "S2", "ProfileList", NULL, &o);
    item = plist_array_get_item(plist_dict_get_item(r, "ProfileList"), 1);
    cr_assert_str_eq(str(item, "PayloadIdentifier"), "org.example.s");
    cr_assert_eq(plist_array_get_size(plist_dict_get_item(item, "SignerCertificates")), 1);
    cr_assert_not_null(plist_dict_get_item(item, "IsManaged")); /* iOS reports it */
    plist_free(r);

    params = root_profile_params("org.example.t", true);
    data = plist_get_data_ptr(plist_dict_get_item(params, "Payload"), &len);
    copy = xmemdup(data, len);
    memcpy(memmem(copy, len, "org.example.t", 13), "org.example.X", 13);
    plistx_set_data(params, "Payload", copy, len);
    free(copy);
    r = run_cmd(d, &env, "S3", "InstallProfile", params, &o);
    cr_assert_str_eq(str(r, "Status"), "Error");
    cr_assert_str_eq(
        str(plist_array_get_item(plist_dict_get_item(r, "ErrorChain"), 0), "ErrorDomain"),
        "MCProfileErrorDomain");
    cr_assert_not(sim_device_has_profile(d, "org.example.t"));
    cr_assert_not(sim_device_has_profile(d, "org.example.X"));
    plist_free(r);
    sim_device_free(d);
}

Test(brain, certificate_list_and_device_information_keys_and_types)
{
    struct sim_device *d = ts_enrolled_device(SIM_IPHONE, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    plist_t r, q, params, qr, e;
    const char *queries[] = {"UDID",      "SerialNumber", "DeviceCapacity", "IsSupervised",
                             "IMEI",      "PushToken",    "EthernetMAC",    "NoSuchQuery",
                             "OSVersion", "ProductName",  "ModelName",      "WiFiMAC"};

    r = run_cmd(d, &env, "D0", "InstallProfile", root_profile_params("org.example.c", false), &o);
    plist_free(r);
    r = run_cmd(d, &env, "D1", "CertificateList", NULL, &o);
    cr_assert_eq(plist_array_get_size(plist_dict_get_item(r, "CertificateList")), 2);
    e = plist_array_get_item(plist_dict_get_item(r, "CertificateList"), 1);
    cr_assert_str_eq(str(e, "CommonName"), "Example Root CA");
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(e, "IsIdentity")), PLIST_BOOLEAN);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(e, "Data")), PLIST_DATA);
    plist_free(r);

    params = plist_new_dict();
    q = plist_new_array();
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
        plist_array_append_item(q, plist_new_string(queries[i]));
    plist_dict_set_item(params, "Queries", q);
    r = run_cmd(d, &env, "D2", "DeviceInformation", params, &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    qr = plist_dict_get_item(r, "QueryResponses");
    cr_assert_str_eq(str(qr, "UDID"), sim_device_facts(d)->udid);
    cr_assert_str_eq(str(qr, "SerialNumber"), sim_device_facts(d)->serial);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(qr, "DeviceCapacity")), PLIST_REAL);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(qr, "IsSupervised")), PLIST_BOOLEAN);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(qr, "PushToken")), PLIST_DATA);
    cr_assert_not_null(str(qr, "IMEI"));
    cr_assert_null(plist_dict_get_item(qr, "EthernetMAC")); /* Mac only: dropped */
    cr_assert_null(plist_dict_get_item(qr, "NoSuchQuery"));
    cr_assert(strncmp(str(qr, "ProductName"), "iPhone", 6) == 0);
    plist_free(r);

    /* Without the device-information rights the queries are dropped (UDID stays). */
    sim_device_free(d);
    d = ts_enrolled_device(SIM_MAC, 1 | 2);
    params = plist_new_dict();
    q = plist_new_array();
    plist_array_append_item(q, plist_new_string("UDID"));
    plist_array_append_item(q, plist_new_string("SerialNumber"));
    plist_dict_set_item(params, "Queries", q);
    r = run_cmd(d, &env, "D3", "DeviceInformation", params, &o);
    qr = plist_dict_get_item(r, "QueryResponses");
    cr_assert_not_null(str(qr, "UDID"));
    cr_assert_null(plist_dict_get_item(qr, "SerialNumber"));
    plist_free(r);
    sim_device_free(d);
}

Test(brain, notnow_locked_and_access_rights)
{
    struct sim_device *d = ts_enrolled_device(SIM_IPAD, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    uint64_t rng = 1;
    plist_t r;

    env.notnow_rate = 1.0;
    env.rng = &rng;
    r = run_cmd(d, &env, "N1", "InstallProfile", root_profile_params("org.example.n", false), &o);
    cr_assert_str_eq(str(r, "Status"), "NotNow");
    cr_assert_str_eq(str(r, "CommandUUID"), "N1");
    cr_assert_not(sim_device_has_profile(d, "org.example.n"));
    plist_free(r);
    /* Queries are never NotNow. */
    r = run_cmd(d, &env, "N2", "ProfileList", NULL, &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    plist_free(r);
    /* Locked (before first unlock): NotNow without any randomness. */
    env = no_env();
    sim_device_set_locked(d, true);
    r = run_cmd(d, &env, "N3", "InstallProfile", root_profile_params("org.example.n", false), &o);
    cr_assert_str_eq(str(r, "Status"), "NotNow");
    plist_free(r);
    sim_device_set_locked(d, false);
    r = run_cmd(d, &env, "N4", "InstallProfile", root_profile_params("org.example.n", false), &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    plist_free(r);
    sim_device_free(d);

    d = ts_enrolled_device(SIM_IPAD, 1); /* inspect only */
    r = run_cmd(d, &env, "A1", "InstallProfile", root_profile_params("org.example.a", false), &o);
    cr_assert_str_eq(str(r, "Status"), "Error");
    cr_assert(strstr(str(plist_array_get_item(plist_dict_get_item(r, "ErrorChain"), 0),
                         "USEnglishDescription"),
                     "AccessRights") != NULL);
    plist_free(r);
    sim_device_free(d);
}

Test(brain, malformed_and_unknown_commands)
{
    struct sim_device *d = ts_enrolled_device(SIM_MAC, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    plist_t r, params, chain, e;
    const char *junk = "this is not a plist";
    const char *no_type = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>CommandUUID"
                          "</key><string>M2</string><key>Command</key><dict/></dict></plist>";

    r = run(d, &env, junk, strlen(junk), &o);
    cr_assert_str_eq(str(r, "Status"), "CommandFormatError");
    cr_assert_null(plist_dict_get_item(r, "CommandUUID"));
    plist_free(r);
    r = run(d, &env, no_type, strlen(no_type), &o);
    cr_assert_str_eq(str(r, "Status"), "CommandFormatError");
    cr_assert_str_eq(str(r, "CommandUUID"), "M2");
    plist_free(r);
    r = run_cmd(d, &env, "M3", "InstallProfile", NULL, &o); /* no Payload */
    cr_assert_str_eq(str(r, "Status"), "CommandFormatError");
    plist_free(r);
    params = plist_new_dict();
    plist_dict_set_item(params, "Queries", plist_new_string("UDID"));
    r = run_cmd(d, &env, "M4", "DeviceInformation", params, &o);
    cr_assert_str_eq(str(r, "Status"), "CommandFormatError");
    plist_free(r);
    params = plist_new_dict();
    plistx_set_data(params, "Payload", "garbage", 7);
    r = run_cmd(d, &env, "M5", "InstallProfile", params, &o);
    cr_assert_str_eq(str(r, "Status"), "Error");
    plist_free(r);

    r = run_cmd(d, &env, "M6", "EraseTheUniverse", NULL, &o);
    cr_assert_str_eq(str(r, "Status"), "Error");
    chain = plist_dict_get_item(r, "ErrorChain");
    cr_assert_eq(plist_array_get_size(chain), 1);
    e = plist_array_get_item(chain, 0);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(e, "ErrorCode")), PLIST_UINT);
    cr_assert_not_null(str(e, "ErrorDomain"));
    cr_assert_not_null(str(e, "LocalizedDescription"));
    cr_assert(strstr(str(e, "USEnglishDescription"), "EraseTheUniverse") != NULL);
    plist_free(r);
    sim_device_free(d);
}

Test(brain, removing_the_mdm_profile_unenrolls)
{
    struct sim_device *d = ts_enrolled_device(SIM_IPHONE, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    plist_t r, params = plist_new_dict();

    plistx_set_string(params, "Identifier", "com.github.micromdm.nanomdm");
    r = run_cmd(d, &env, "U1", "RemoveProfile", params, &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    cr_assert(o.unenrolled);
    cr_assert_not(sim_device_enrolled(d));
    plist_free(r);
    sim_device_free(d);
}

Test(brain, checkin_bodies_have_the_documented_keys)
{
    struct sim_device *d = ts_enrolled_device(SIM_MAC, 8191);
    struct scepter_error err;
    plist_t p;
    size_t len;
    char *b;
    const char *data;
    uint64_t dl;

    b = sim_device_authenticate(d, &len);
    cr_assert_eq(plistx_parse_dict(b, len, &p, &err), 0);
    cr_assert_str_eq(str(p, "MessageType"), "Authenticate");
    cr_assert_str_eq(str(p, "Topic"), "com.apple.mgmt.External.YOUR-PUSH-TOPIC-HERE");
    cr_assert_str_eq(str(p, "UDID"), sim_device_facts(d)->udid);
    cr_assert_not_null(str(p, "DeviceName")); /* required on macOS */
    cr_assert_not_null(str(p, "Model"));
    cr_assert_not_null(str(p, "ModelName"));
    cr_assert_not_null(str(p, "SerialNumber"));
    plist_free(p);
    free(b);
    b = sim_device_token_update(d, &len);
    cr_assert_eq(plistx_parse_dict(b, len, &p, &err), 0);
    cr_assert_str_eq(str(p, "MessageType"), "TokenUpdate");
    cr_assert_str_eq(str(p, "PushMagic"), "PUSH-MAGIC-1");
    data = plist_get_data_ptr(plist_dict_get_item(p, "Token"), &dl);
    cr_assert_eq(dl, 32);
    cr_assert_eq((unsigned char)data[0], 0xab);
    cr_assert_null(plist_dict_get_item(p, "UnlockToken")); /* macOS sends none */
    plist_free(p);
    free(b);
    b = sim_device_idle(d, &len);
    cr_assert_eq(plistx_parse_dict(b, len, &p, &err), 0);
    cr_assert_str_eq(str(p, "Status"), "Idle");
    plist_free(p);
    free(b);
    sim_device_free(d);
}

/* The enrollment profile (the fixture's, same PayloadIdentifier) with its identity payload
 * turned into a PKCS#12 of (cert, key): what a server sends to renew the device identity. */
static plist_t renewal_params(X509 *cert, EVP_PKEY *key, const char *identifier)
{
    size_t len;
    unsigned char *data = tu_read_data("profiles/enroll.mobileconfig", &len);
    struct scepter_error err;
    plist_t root = NULL, params = plist_new_dict();
    unsigned char *der = NULL;
    char *xml;

    cr_assert_eq(plistx_parse_dict(data, len, &root, &err), 0);
    free(data);
    if (identifier)
        plistx_set_string(root, "PayloadIdentifier", identifier);
    plist_t arr = plist_dict_get_item(root, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t pl = plist_array_get_item(arr, i);
        if (strcmp(plist_get_string_ptr(plist_dict_get_item(pl, "PayloadType"), NULL),
                   "com.apple.security.scep") != 0)
            continue;
        PKCS12 *p12 = PKCS12_create("pw", "id", key, cert, NULL, 0, 0, 0, 0, 0);
        cr_assert_not_null(p12);
        int dlen = i2d_PKCS12(p12, &der);
        PKCS12_free(p12);
        plistx_set_string(pl, "PayloadType", "com.apple.security.pkcs12");
        plistx_set_data(pl, "PayloadContent", der, (size_t)dlen);
        plistx_set_string(pl, "Password", "pw");
        OPENSSL_free(der);
    }
    xml = ts_xml(root, &len);
    plist_free(root);
    plistx_set_data(params, "Payload", xml, len);
    free(xml);
    return params;
}

Test(brain, the_enrollment_profile_again_renews_the_identity)
{
    struct sim_device *d = ts_enrolled_device(SIM_MAC, 8191);
    struct sim_brain_env env = no_env();
    struct sim_brain_outcome o;
    X509 *cert, *old = X509_dup(sim_device_identity(d));
    EVP_PKEY *key;
    plist_t r;

    ts_identity("renewed", &cert, &key);
    r = run_cmd(d, &env, "R1", "InstallProfile", renewal_params(cert, key, NULL), &o);
    cr_assert_str_eq(str(r, "Status"), "Acknowledged");
    cr_assert(o.identity_renewed);
    cr_assert(sim_device_enrolled(d), "still enrolled");
    cr_assert_eq(X509_cmp(sim_device_identity(d), cert), 0, "the device now presents it");
    cr_assert_neq(X509_cmp(sim_device_identity(d), old), 0);
    cr_assert(crypto_cert_matches_key(sim_device_identity(d), sim_device_key(d)));
    plist_free(r);

    /* Another profile carrying an identity is not the enrollment: nothing changes. */
    X509 *other;
    EVP_PKEY *okey;
    ts_identity("other", &other, &okey);
    r = run_cmd(d, &env, "R2", "InstallProfile",
                renewal_params(other, okey, "org.example.not-the-enrollment"), &o);
    cr_assert_str_neq(str(r, "Status"), "Acknowledged", "an MDM payload in another profile");
    cr_assert_not(o.identity_renewed);
    cr_assert_eq(X509_cmp(sim_device_identity(d), cert), 0);
    plist_free(r);
    X509_free(old);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(other);
    EVP_PKEY_free(okey);
    sim_device_free(d);
}
