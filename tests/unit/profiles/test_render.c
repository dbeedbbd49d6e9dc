/*
 * Rendering a policy: the outer Configuration profile and its payloads key by key, the root
 * payload installed first, fresh UUIDs and a stable identifier, device variables per platform,
 * per-device templates with XML escaping, and libplist reading back every byte it rendered.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/codec.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tp.h"

static void parse_ok(json_t *j, struct profile_policy *p)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    int rc = tp_parse(j, p, &pr);
    cr_assert_eq(rc, 0, "%s", pr.n ? pr.v[0].msg : "");
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(render, outer_profile_and_payloads_key_by_key)
{
    json_t *j = tp_base();
    size_t len, dlen;
    unsigned char *der = tp_ca_der(&dlen);
    char *b64 = base64_encode(der, dlen);
    struct profile_policy p;

    tp_set(j, "scep.root_certificate", json_string(b64));
    tp_set(j, "scep.key_usage", json_pack("[s]", "signing"));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("host.example.com"));
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("it@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://example.com/"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("host@EXAMPLE"));
    parse_ok(j, &p);
    char *xml = tp_render(&p, NULL, &len);
    plist_t prof = tp_round_trip(xml, len);

    cr_assert_str_eq(tp_str(prof, "PayloadType"), "Configuration");
    cr_assert_eq(tp_uint(prof, "PayloadVersion"), 1);
    cr_assert_str_eq(tp_str(prof, "PayloadIdentifier"), "com.example.policy.1");
    cr_assert(uuid_valid(tp_str(prof, "PayloadUUID")));
    cr_assert_str_eq(tp_str(prof, "PayloadDisplayName"), "Corp Wi-Fi certificate");
    cr_assert_str_eq(tp_str(prof, "PayloadOrganization"), "Example Org");
    cr_assert_str_eq(tp_str(prof, "PayloadScope"), "System");
    cr_assert_eq(tp_uint(prof, "TargetDeviceType"), 5);

    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    cr_assert_eq(plist_array_get_size(arr), 2);
    plist_t root = plist_array_get_item(arr, 0), scep = plist_array_get_item(arr, 1);
    /* the root CA comes first so it is installed before the SCEP payload */
    cr_assert_str_eq(tp_str(root, "PayloadType"), "com.apple.security.root");
    cr_assert_str_eq(tp_str(root, "PayloadIdentifier"), "com.example.policy.1.root");
    cr_assert_eq(tp_uint(root, "PayloadVersion"), 1);
    plist_t data = plist_dict_get_item(root, "PayloadContent");
    cr_assert_eq(plist_get_node_type(data), PLIST_DATA);
    uint64_t n = 0;
    cr_assert_eq(memcmp(plist_get_data_ptr(data, &n), der, dlen), 0);
    cr_assert_eq(n, dlen);
    cr_assert(strstr(tp_str(root, "PayloadDisplayName"), "Root certificate") != NULL);

    cr_assert_str_eq(tp_str(scep, "PayloadType"), "com.apple.security.scep");
    cr_assert_str_eq(tp_str(scep, "PayloadIdentifier"), "com.example.policy.1.scep");
    cr_assert_str_eq(tp_str(scep, "PayloadDisplayName"), "SCEP: WiFi Certificate");
    cr_assert_eq(tp_uint(scep, "PayloadVersion"), 1);
    cr_assert_str_neq(tp_str(scep, "PayloadUUID"), tp_str(root, "PayloadUUID"));
    cr_assert_str_neq(tp_str(scep, "PayloadUUID"), tp_str(prof, "PayloadUUID"));

    plist_t c = plist_dict_get_item(scep, "PayloadContent");
    cr_assert_str_eq(tp_str(c, "URL"), "http://scep-server/cgi-bin/pkiclient.exe");
    cr_assert_str_eq(tp_str(c, "Name"), "WiFi Certificate");
    cr_assert_str_eq(tp_str(c, "Challenge"), "s3cret");
    cr_assert_eq(tp_uint(c, "Keysize"), 2048);
    cr_assert_str_eq(tp_str(c, "Key Type"), "RSA");
    cr_assert_eq(tp_uint(c, "Key Usage"), 1);
    cr_assert_eq(tp_uint(c, "Retries"), 3);
    cr_assert_eq(tp_uint(c, "RetryDelay"), 10);
    plist_t ke = plist_dict_get_item(c, "KeyIsExtractable");
    cr_assert_not_null(ke, "KeyIsExtractable must be explicit (Apple's default is true)");
    cr_assert_eq(plist_get_node_type(ke), PLIST_BOOLEAN);
    cr_assert_not(plist_bool_val_is_true(ke));
    plist_t san = plist_dict_get_item(c, "SubjectAltName");
    cr_assert_str_eq(tp_str(san, "dNSName"), "host.example.com");
    cr_assert_str_eq(tp_str(san, "rfc822Name"), "it@example.com");
    cr_assert_str_eq(tp_str(san, "uniformResourceIdentifier"), "https://example.com/");
    cr_assert_str_eq(tp_str(san, "ntPrincipalName"), "host@EXAMPLE");
    cr_assert_null(plist_dict_get_item(c, "CAFingerprint"));
    plist_free(prof);
    free(xml);
    free(der);
    free(b64);
    profile_policy_clear(&p);
}

Test(render, fresh_uuids_stable_identifier)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_template *a = NULL, *b = NULL;
    struct profile_render_opts o = {"com.scepter.policy.42", NULL};
    struct buf xa = BUF_INIT, xb = BUF_INIT;
    struct scepter_error err;

    parse_ok(tp_base(), &p);
    cr_assert_eq(profile_template_new(&p, &o, &a, &pr), 0);
    cr_assert_eq(profile_template_new(&p, &o, &b, &pr), 0);
    cr_assert_str_eq(profile_template_identifier(a), "com.scepter.policy.42");
    cr_assert_eq(profile_template_render(a, NULL, &xa, &err), 0);
    cr_assert_eq(profile_template_render(b, NULL, &xb, &err), 0);
    plist_t pa = tp_plist(xa.data, xa.len), pb = tp_plist(xb.data, xb.len);
    cr_assert_str_eq(tp_str(pa, "PayloadIdentifier"), tp_str(pb, "PayloadIdentifier"));
    cr_assert_str_neq(tp_str(pa, "PayloadUUID"), tp_str(pb, "PayloadUUID"));
    /* no organization: the key is left out rather than empty */
    cr_assert_null(plist_dict_get_item(pa, "PayloadOrganization"));
    plist_free(pa);
    plist_free(pb);
    buf_free(&xa);
    buf_free(&xb);
    profile_template_free(a);
    profile_template_free(b);
    profile_template_free(NULL);

    /* default identifier; a bad one is refused */
    o.identifier = NULL;
    cr_assert_eq(profile_template_new(&p, &o, &a, &pr), 0);
    cr_assert_str_eq(profile_template_identifier(a),
                     "com.scepter.policy.macos.corp-wi-fi-certificate");
    profile_template_free(a);
    o.identifier = "has spaces in it";
    cr_assert_eq(profile_template_new(&p, &o, &a, &pr), SCEPTER_EINVAL);
    cr_assert_null(a);
    cr_assert_not_null(tp_find(&pr, "identifier"));
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
}

Test(render, warnings_come_with_the_rendering)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    char *xml = NULL;
    size_t len;

    tp_set(j, "scep.key_size", NULL);
    tp_set(j, "targets", NULL);
    parse_ok(j, &p);
    cr_assert_eq(profile_render(&p, NULL, NULL, &xml, &len, &pr), 0);
    cr_assert_eq(pr.n_errors, 0);
    cr_assert_not_null(tp_find(&pr, "scep.key_size"));
    cr_assert_not_null(tp_find(&pr, "targets"));
    plist_t prof = tp_plist(xml, len);
    cr_assert_eq(tp_uint(tp_scep_content(prof), "Keysize"), 1024);
    plist_free(prof);
    free(xml);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
}

Test(render, macos_leaves_apple_variables_to_the_mac)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_template *t = NULL;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct buf out = BUF_INIT;
    struct scepter_error err;

    tp_set(j, "scep.subject", json_string("/O=Example/CN=%HardwareUUID%"));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%ComputerName%.example.com"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("%AD_ComputerName%"));
    parse_ok(j, &p);
    cr_assert_eq(profile_template_new(&p, NULL, &t, &pr), 0);
    cr_assert(profile_template_is_uniform(t), "Apple's names need no server substitution");
    cr_assert_eq(profile_template_render(t, NULL, &out, &err), 0);
    cr_assert(strstr(out.data, "<string>%HardwareUUID%</string>") != NULL);
    cr_assert(strstr(out.data, "%ComputerName%.example.com") != NULL);
    cr_assert(strstr(out.data, "%AD_ComputerName%") != NULL);
    buf_free(&out);
    profile_template_free(t);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
}

Test(render, server_variables_are_substituted_and_escaped)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_template *t = NULL;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct buf out = BUF_INIT;
    struct scepter_error err;

    tp_set(j, "scep.subject", json_string("/O=Example/CN=%DeviceName% (%UDID%)"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("urn:device:%Model%:%OSVersion%"));
    parse_ok(j, &p);
    cr_assert_eq(profile_template_new(&p, NULL, &t, &pr), 0);
    cr_assert_not(profile_template_is_uniform(t));
    size_t nv;
    const char *const *vars = profile_template_variables(t, &nv);
    cr_assert_eq(nv, 4);
    (void)vars;

    struct profile_device dev = {.udid = "UDID-1",
                                 .device_name = "Bob's <Mac> & \"co\"",
                                 .model = "MacBookPro18,3",
                                 .os_version = "15.1",
                                 .platform = "macos"};
    cr_assert_eq(profile_template_render(t, &dev, &out, &err), 0, "%s", err.msg);
    cr_assert(strstr(out.data, "Bob's &lt;Mac&gt; &amp; \"co\" (UDID-1)") != NULL, "%s", out.data);
    plist_t prof = tp_round_trip(out.data, out.len);
    plist_t c = tp_scep_content(prof);
    plist_t cn =
        plist_array_get_item(plist_array_get_item(plist_dict_get_item(c, "Subject"), 1), 0);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(cn, 1), NULL),
                     "Bob's <Mac> & \"co\" (UDID-1)");
    cr_assert_str_eq(tp_str(plist_dict_get_item(c, "SubjectAltName"), "uniformResourceIdentifier"),
                     "urn:device:MacBookPro18,3:15.1");
    plist_free(prof);

    /* a second device reuses the buffer */
    struct profile_device dev2 = dev;
    dev2.udid = "UDID-2";
    dev2.device_name = "lab-02";
    buf_reset(&out);
    cr_assert_eq(profile_template_render(t, &dev2, &out, &err), 0);
    cr_assert(strstr(out.data, "lab-02 (UDID-2)") != NULL);
    cr_assert(strstr(out.data, "UDID-1") == NULL);

    /* a missing fact names the variable, and leaves the buffer as it was */
    size_t before = out.len;
    dev2.os_version = NULL;
    cr_assert_eq(profile_template_render(t, &dev2, &out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "%OSVersion%");
    cr_assert(strstr(err.msg, "no os_version") != NULL, "%s", err.msg);
    cr_assert_eq(out.len, before);
    /* control characters in a device value cannot go into XML */
    dev2.os_version = "15\x01";
    cr_assert_eq(profile_template_render(t, &dev2, &out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "%OSVersion%");
    dev2.os_version = "15\xff";
    cr_assert_eq(profile_template_render(t, &dev2, &out, &err), SCEPTER_EINVAL);
    /* a device of another platform */
    dev2.os_version = "18.1";
    dev2.platform = "ios";
    cr_assert_eq(profile_template_render(t, &dev2, &out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "platform");
    cr_assert_eq(out.len, before);
    buf_free(&out);
    profile_template_free(t);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
}

Test(render, ios_substitutes_apple_names_and_refuses_the_rest)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_template *t = NULL;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct buf out = BUF_INIT;
    struct scepter_error err;

    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject", json_string("/CN=%SerialNumber%/OU=%HardwareUUID%"));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%ComputerName%.example.com"));
    parse_ok(j, &p);
    cr_assert_eq(profile_template_new(&p, NULL, &t, &pr), 0);
    cr_assert_not(profile_template_is_uniform(t));
    struct profile_device dev = {.udid = "00008030-001A2B3C4D5E6F70",
                                 .serial_number = "F2LX123",
                                 .device_name = "Ana's iPad",
                                 .platform = "ipados"};
    cr_assert_eq(profile_template_render(t, &dev, &out, &err), 0, "%s", err.msg);
    cr_assert(strstr(out.data, "%") == NULL, "iOS resolves nothing: %s", out.data);
    plist_t prof = tp_round_trip(out.data, out.len);
    plist_t c = tp_scep_content(prof);
    cr_assert_str_eq(tp_str(plist_dict_get_item(c, "SubjectAltName"), "dNSName"),
                     "Ana's iPad.example.com");
    cr_assert_eq(tp_uint(prof, "TargetDeviceType"), 1);
    plist_free(prof);
    dev.serial_number = NULL;
    cr_assert_eq(profile_template_render(t, &dev, &out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "%SerialNumber%");
    dev.serial_number = "X";
    dev.platform = "macos";
    cr_assert_eq(profile_template_render(t, &dev, &out, &err), SCEPTER_EINVAL);
    buf_free(&out);
    profile_template_free(t);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);

    /* names only a Mac can resolve are refused on iOS, naming the field */
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject", json_string("/CN=%MACAddress%"));
    tp_expect_error(j, "scep.subject", "%MACAddress% is resolved only by macOS");
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%LocalHostName%.local"));
    tp_expect_error(j, "scep.subject_alt_name.dns_name", "only by macOS");
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("%AD_KerberosID%"));
    tp_expect_error(j, "scep.subject_alt_name.nt_principal_name", "only by macOS");
    /* ... but fine on macOS */
    j = tp_base();
    tp_set(j, "scep.subject", json_string("/CN=%MACAddress%"));
    tp_expect_ok(j);
}

Test(render, unknown_variables_are_typos)
{
    json_t *j = tp_base();
    tp_set(j, "scep.subject", json_string("/CN=%SerailNumber%"));
    tp_expect_error(j, "scep.subject", "unknown variable %SerailNumber%");
    j = tp_base();
    tp_set(j, "scep.subject", json_string("/CN=%serialnumber%"));
    tp_expect_error(j, "scep.subject", "did you mean %SerialNumber%");
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("%User%@example.com"));
    tp_expect_error(j, "scep.subject_alt_name.rfc822_name", "unknown variable %User%");
    /* a percent sign that opens no variable is text */
    j = tp_base();
    tp_set(j, "scep.subject", json_string("/O=100% Example/CN=50%"));
    tp_expect_ok(j);
}

Test(render, uniform_profiles_need_no_device)
{
    struct profile_policy p;
    struct profile_template *t = NULL;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct buf a = BUF_INIT, b = BUF_INIT;
    struct scepter_error err;
    struct profile_device dev = {.udid = "X", .platform = "macos"};

    parse_ok(tp_base(), &p);
    cr_assert_eq(profile_template_new(&p, NULL, &t, &pr), 0);
    cr_assert(profile_template_is_uniform(t));
    size_t nv;
    profile_template_variables(t, &nv);
    cr_assert_eq(nv, 0);
    cr_assert_eq(profile_template_render(t, NULL, &a, &err), 0);
    cr_assert_eq(profile_template_render(t, &dev, &b, &err), 0);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.data, b.data, a.len), 0);
    plist_free(tp_round_trip(a.data, a.len));
    buf_free(&a);
    buf_free(&b);
    profile_template_free(t);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
}

Test(render, policy_text_with_xml_specials_round_trips)
{
    json_t *j = tp_base();
    struct profile_policy p;

    tp_set(j, "name", json_string("R&D <lab> \"certs\""));
    tp_set(j, "scep.challenge", json_string("a<b>&c]]>d"));
    tp_set(j, "scep.subject", json_string("/O=R&D/CN=<x>"));
    parse_ok(j, &p);
    size_t len;
    char *xml = tp_render(&p, NULL, &len);
    plist_t prof = tp_round_trip(xml, len);
    cr_assert_str_eq(tp_str(prof, "PayloadDisplayName"), "R&D <lab> \"certs\"");
    cr_assert_str_eq(tp_str(tp_scep_content(prof), "Challenge"), "a<b>&c]]>d");
    plist_free(prof);
    free(xml);
    profile_policy_clear(&p);
}
