/*
 * Every profile Scepter renders, walked key by key against Apple's YAML schemas: names
 * (Keysize, "Key Usage", "Key Type"), types, allowed values, formats, required keys and
 * per-platform support.  The checker itself is tested on a peer profile with real mistakes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "schema.h"
#include "support/support.h"
#include "tp.h"

static void expect_clean(const char *xml, size_t len, const char *os)
{
    plist_t prof = tp_round_trip(xml, len);
    struct buf problems = BUF_INIT;
    size_t n = schema_check_profile(prof, os, &problems);
    cr_assert_eq(n, 0, "%zu schema problems on %s:\n%s\n%s", n, os, problems.data, xml);
    buf_free(&problems);
    plist_free(prof);
}

static char *render_json(json_t *j, const struct profile_device *dev, size_t *len)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    cr_assert_eq(tp_parse(j, &p, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    char *xml = tp_render(&p, dev, len);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
    return xml;
}

static json_t *full_policy(const char *platform)
{
    json_t *j = tp_base();
    size_t dlen;
    unsigned char *der = tp_ca_der(&dlen);
    char *b64 = base64_encode(der, dlen);
    tp_set(j, "platform", json_string(platform));
    tp_set(j, "scep.root_certificate", json_string(b64));
    tp_set(j, "scep.fingerprint", json_string("ESIzRKq7zN3u/wARIjNEVWZ3iJk="));
    tp_set(j, "scep.key_usage", json_pack("[ss]", "signing", "encryption"));
    tp_set(j, "scep.key_size", json_integer(4096));
    tp_set(j, "scep.subject", json_string("/C=US/O=Example/OU=%Model%/CN=%SerialNumber%"));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%ComputerName%.example.com"));
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("%UDID%@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://example.com/"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("host/%SerialNumber%"));
    free(der);
    free(b64);
    return j;
}

static const struct profile_device g_mac = {"564D8F2A-0E5B-4C0A-9A7D-1B2C3D4E5F60",
                                            "C02XL0GHJGH5",
                                            "Lab Mac 7",
                                            "MacBookPro18,3",
                                            "MacBook Pro",
                                            "15.1",
                                            "macos"};
static const struct profile_device g_ipad = {"00008030-001A2B3C4D5E6F70",
                                             "DMPXK2ABCD",
                                             "Ana's iPad",
                                             "iPad13,4",
                                             "iPad Pro",
                                             "18.1",
                                             "ipados"};

Test(schema, macos_policy_profile)
{
    size_t len;
    char *xml = render_json(full_policy("macos"), &g_mac, &len);
    expect_clean(xml, len, "macOS");
    free(xml);
}

Test(schema, ios_policy_profile)
{
    size_t len;
    char *xml = render_json(full_policy("ios"), &g_ipad, &len);
    expect_clean(xml, len, "iOS");
    free(xml);
}

Test(schema, minimal_policy_profile)
{
    size_t len;
    json_t *j = tp_base();
    tp_set(j, "scep.subject", NULL);
    tp_set(j, "scep.name", NULL);
    tp_set(j, "scep.challenge", NULL);
    char *xml = render_json(j, NULL, &len);
    expect_clean(xml, len, "macOS");
    free(xml);
}

Test(schema, rendered_defaults_match_the_schema)
{
    /* Leaving key_size, retries and retry_delay out renders Apple's defaults explicitly. */
    size_t len;
    json_t *j = tp_base();
    tp_set(j, "scep.key_size", NULL);
    char *xml = render_json(j, NULL, &len);
    plist_t prof = tp_plist(xml, len);
    plist_t c = tp_scep_content(prof);
    const struct {
        const char *key;
        const char *path;
    } keys[] = {{"Keysize", "PayloadContent.Keysize"},
                {"Retries", "PayloadContent.Retries"},
                {"RetryDelay", "PayloadContent.RetryDelay"}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *def = schema_default("com.apple.security.scep", keys[i].path);
        cr_assert_not_null(def, "schema has no default for %s", keys[i].path);
        char got[32];
        snprintf(got, sizeof(got), "%llu", (unsigned long long)tp_uint(c, keys[i].key));
        cr_assert_str_eq(got, def, "%s", keys[i].key);
        free(def);
    }
    char *kt = schema_default("com.apple.security.scep", "PayloadContent.Key Type");
    cr_assert_str_eq(tp_str(c, "Key Type"), kt);
    free(kt);
    /* Apple's KeyIsExtractable default is true; the policy's is false, so it is explicit. */
    char *ke = schema_default("com.apple.security.scep", "PayloadContent.KeyIsExtractable");
    cr_assert_str_eq(ke, "true");
    free(ke);
    cr_assert_not(plist_bool_val_is_true(plist_dict_get_item(c, "KeyIsExtractable")));
    plist_free(prof);
    free(xml);
}

Test(schema, enrollment_profiles)
{
    size_t dlen, plen;
    unsigned char *der = tp_ca_der(&dlen);
    unsigned char *p12 = tu_read_data("push/pushcert.p12", &plen);
    struct profile_enroll_opts o = {
        .organization = "Example",
        .server_url = "https://mdm.example.com/mdm/connect",
        .checkin_url = "https://mdm.example.com/mdm/checkin",
        .topic = "com.apple.mgmt.External.e0bd1eac-0000-4c6f-9c1a-000000000000",
        .cap_bootstrap_token = true,
        .cap_token = true,
        .scep_url = "https://mdm.example.com/scep",
        .scep_challenge = "secret",
        .scep_name = "Scepter CA",
        .scep_subject = "/O=Example/CN=%HardwareUUID%",
        .root_cert = der,
        .root_cert_len = dlen,
    };
    struct scepter_error err;
    char *xml = NULL;
    size_t len;
    cr_assert_eq(profile_enroll_render(&o, &xml, &len, &err), 0, "%s", err.msg);
    expect_clean(xml, len, "macOS");
    expect_clean(xml, len, "iOS");
    free(xml);
    o.scep_url = NULL;
    o.pkcs12 = p12;
    o.pkcs12_len = plen;
    o.pkcs12_password = "secret";
    o.root_cert = NULL;
    cr_assert_eq(profile_enroll_render(&o, &xml, &len, &err), 0, "%s", err.msg);
    expect_clean(xml, len, "iOS");
    free(xml);
    free(der);
    free(p12);
}

Test(schema, the_checker_catches_real_mistakes)
{
    /* micromdm/scep's sample profile spells "Key Type" as KeyType and has a real PayloadVersion */
    size_t len;
    unsigned char *xml = tu_read_data("scep-ca/sceptest.mobileconfig", &len);
    plist_t prof = tp_plist((const char *)xml, len);
    struct buf problems = BUF_INIT;
    size_t n = schema_check_profile(prof, "macOS", &problems);
    cr_assert_geq(n, 2);
    cr_assert(strstr(problems.data, "PayloadContent[0].PayloadContent.KeyType: key not in the "
                                    "schema") != NULL,
              "%s", problems.data);
    cr_assert(strstr(problems.data, "PayloadContent[0].PayloadVersion: wrong type") != NULL, "%s",
              problems.data);
    buf_free(&problems);
    plist_free(prof);
    free(xml);

    /* NanoMDM's enrollment profile is clean */
    xml = tu_read_data("profiles/enroll.mobileconfig", &len);
    prof = tp_plist((const char *)xml, len);
    n = schema_check_profile(prof, "macOS", &problems);
    cr_assert_eq(n, 0, "%s", problems.data);
    plist_free(prof);
    free(xml);

    /* hand-made mistakes: wrong Keysize, missing URL, bad Topic format-free, int as string */
    const char *bad = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
                      "<key>PayloadType</key><string>Configuration</string>"
                      "<key>PayloadVersion</key><integer>1</integer>"
                      "<key>PayloadIdentifier</key><string>x</string>"
                      "<key>PayloadUUID</key><string>u</string>"
                      "<key>PayloadContent</key><array><dict>"
                      "<key>PayloadType</key><string>com.apple.security.scep</string>"
                      "<key>PayloadVersion</key><integer>1</integer>"
                      "<key>PayloadIdentifier</key><string>x.s</string>"
                      "<key>PayloadUUID</key><string>u2</string>"
                      "<key>PayloadContent</key><dict>"
                      "<key>Keysize</key><integer>3072</integer>"
                      "<key>Key Usage</key><string>5</string>"
                      "<key>Subject</key><array><array><array><string>CN</string></array>"
                      "</array></array>"
                      "</dict></dict><dict>"
                      "<key>PayloadType</key><string>com.apple.mdm</string>"
                      "<key>PayloadVersion</key><integer>1</integer>"
                      "<key>PayloadIdentifier</key><string>x.m</string>"
                      "<key>PayloadUUID</key><string>u3</string>"
                      "<key>IdentityCertificateUUID</key><string>not-a-uuid</string>"
                      "<key>Topic</key><string>t</string>"
                      "<key>ServerURL</key><string>http://insecure</string>"
                      "</dict></array></dict></plist>";
    prof = tp_plist(bad, strlen(bad));
    buf_reset(&problems);
    n = schema_check_profile(prof, "macOS", &problems);
    const char *want[] = {"Keysize: value 3072 is not in the schema's rangelist",
                          "Key Usage: wrong type",
                          "PayloadContent.URL: required key is missing",
                          "Subject[0][0]: has 1 items",
                          "IdentityCertificateUUID: does not match",
                          "ServerURL: does not match"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(problems.data, want[i]) != NULL, "missing \"%s\" in:\n%s", want[i],
                  problems.data);
    buf_free(&problems);
    plist_free(prof);
}
