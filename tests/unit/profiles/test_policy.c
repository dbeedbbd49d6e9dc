/*
 * The policy rules of the admin guide and the issue: parsing the operator JSON, every refusal
 * naming its field with a reason, defaults, warnings, the canonical stored form and the way
 * back to JSON.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/rsa.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tp.h"

Test(policy, full_example_is_accepted_in_canonical_form)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    size_t len;
    unsigned char *der = tp_ca_der(&len);
    char *b64 = base64_encode(der, len);

    tp_set(j, "scep.fingerprint",
           json_string("11:22:33:44:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"));
    tp_set(j, "scep.key_usage", json_pack("[ss]", "signing", "encryption"));
    tp_set(j, "scep.retries", json_integer(5));
    tp_set(j, "scep.retry_delay", json_integer(30));
    tp_set(j, "scep.key_extractable", json_true());
    tp_set(j, "scep.root_certificate", json_string(b64));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%ComputerName%.example.com"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("host/%SerialNumber%"));
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("it@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://ca.example.com/"));
    cr_assert_eq(tp_parse(j, &p, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    cr_assert_eq(pr.n_errors, 0);
    cr_assert_str_eq(p.name, "Corp Wi-Fi certificate");
    cr_assert_eq(p.platform, PROFILE_PLATFORM_MACOS);
    cr_assert_str_eq(p.notes, "created 2026-11-25, tested on lab Macs");
    cr_assert_str_eq(p.scep_url, "http://scep-server/cgi-bin/pkiclient.exe");
    cr_assert_str_eq(p.scep_name, "WiFi Certificate");
    cr_assert_str_eq(p.scep_challenge, "s3cret");
    cr_assert_str_eq(p.scep_fingerprint, "11223344aabbccddeeff00112233445566778899");
    cr_assert_str_eq(p.scep_subject, "/C=US/O=ABCEnterprise/CN=foo/");
    cr_assert_eq(p.key_size, 2048);
    cr_assert_eq(p.retries, 5);
    cr_assert_eq(p.retry_delay, 30);
    cr_assert(p.key_extractable);
    cr_assert_eq(p.key_usage, 5);
    cr_assert_eq(p.root_cert_len, len);
    cr_assert_eq(memcmp(p.root_cert, der, len), 0);
    cr_assert_str_eq(p.san_dns.v[0], "%ComputerName%.example.com");
    cr_assert_str_eq(p.san_ntpn.v[0], "host/%SerialNumber%");
    cr_assert_str_eq(p.san_rfc822.v[0], "it@example.com");
    cr_assert_str_eq(p.san_uri.v[0], "https://ca.example.com/");
    cr_assert_eq(p.n_target_devices, 1);
    cr_assert_str_eq(p.target_devices[0], TP_UDID);
    cr_assert_eq(p.n_target_groups, 1);
    cr_assert_str_eq(p.target_groups[0], "lab");
    /* a full, well-formed policy has nothing to warn about */
    cr_assert_eq(pr.n, 0, "%s", pr.n ? pr.v[0].msg : "");
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
    free(der);
    free(b64);
}

Test(policy, defaults_follow_the_admin_guide)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    tp_set(j, "scep.key_size", NULL);
    tp_set(j, "scep.name", NULL);
    tp_set(j, "scep.challenge", NULL);
    tp_set(j, "scep.subject", NULL);
    tp_set(j, "notes", NULL);
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    cr_assert_eq(p.key_size, 1024);
    cr_assert_eq(p.retries, 3);
    cr_assert_eq(p.retry_delay, 10);
    cr_assert_not(p.key_extractable);
    cr_assert_eq(p.key_usage, 0);
    cr_assert_null(p.scep_fingerprint);
    cr_assert_null(p.root_cert);
    cr_assert_null(p.scep_name);
    cr_assert_null(p.notes);
    /* the 1024-bit default is accepted with a warning */
    const struct profile_problem *w = tp_find(&pr, "scep.key_size");
    cr_assert_not_null(w);
    cr_assert(w->warning);
    cr_assert(strstr(w->msg, "weak") != NULL, "%s", w->msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(policy, no_target_is_valid_with_a_warning)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    tp_set(j, "targets", NULL);
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    const struct profile_problem *w = tp_find(&pr, "targets");
    cr_assert_not_null(w);
    cr_assert(w->warning);
    cr_assert(strstr(w->msg, "takes no effect") != NULL, "%s", w->msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);

    /* empty lists are the same as none */
    j = tp_base();
    tp_set(j, "targets.devices", json_array());
    tp_set(j, "targets.device_groups", json_array());
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    cr_assert_not_null(tp_find(&pr, "targets"));
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(policy, platform_and_name)
{
    json_t *j = tp_base();
    tp_set(j, "platform", json_string("windows"));
    tp_expect_error(j, "platform", "\"macos\" or \"ios\"");
    j = tp_base();
    tp_set(j, "platform", json_string("iOS"));
    tp_expect_error(j, "platform", "is not");
    j = tp_base();
    tp_set(j, "platform", NULL);
    tp_expect_error(j, "platform", "required");
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_expect_ok(j);

    j = tp_base();
    tp_set(j, "name", NULL);
    tp_expect_error(j, "name", "required");
    j = tp_base();
    tp_set(j, "name", json_string(""));
    tp_expect_error(j, "name", "required");
    j = tp_base();
    tp_set(j, "name", json_string("   "));
    tp_expect_error(j, "name", "blank");
    j = tp_base();
    tp_set(j, "name", json_string("bad\nname"));
    tp_expect_error(j, "name", "control character");
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    j = tp_base();
    tp_set(j, "name", json_string(longname));
    tp_expect_error(j, "name", "at most 255");
    /* notes are free text, line breaks included */
    j = tp_base();
    tp_set(j, "notes", json_string("line one\nline two\ttabbed"));
    tp_expect_ok(j);
    j = tp_base();
    tp_set(j, "type", json_string("wifi"));
    tp_expect_error(j, "type", "scep");
    j = tp_base();
    tp_set(j, "type", json_string("scep"));
    tp_expect_ok(j);
}

Test(policy, unknown_fields_are_refused_at_every_level)
{
    json_t *j = tp_base();
    tp_set(j, "colour", json_string("blue"));
    tp_expect_error(j, "colour", "unknown field");
    j = tp_base();
    tp_set(j, "scep.keysize", json_integer(2048));
    tp_expect_error(j, "scep.keysize", "unknown field");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.ip_address", json_string("10.0.0.1"));
    tp_expect_error(j, "scep.subject_alt_name.ip_address", "unknown field");
    j = tp_base();
    tp_set(j, "targets.users", json_array());
    tp_expect_error(j, "targets.users", "unknown field");
}

Test(policy, wrong_json_types_name_the_field)
{
    json_t *j = tp_base();
    tp_set(j, "scep.key_size", json_string("2048"));
    tp_expect_error(j, "scep.key_size", "expected integer");
    j = tp_base();
    tp_set(j, "scep.key_size", json_real(2048.0));
    tp_expect_error(j, "scep.key_size", "expected integer");
    j = tp_base();
    tp_set(j, "scep.retries", json_true());
    tp_expect_error(j, "scep.retries", "expected integer");
    j = tp_base();
    tp_set(j, "scep.key_extractable", json_string("no"));
    tp_expect_error(j, "scep.key_extractable", "expected boolean");
    j = tp_base();
    tp_set(j, "scep.key_usage", json_string("signing"));
    tp_expect_error(j, "scep.key_usage", "expected array");
    j = tp_base();
    tp_set(j, "scep.challenge", json_integer(1234));
    tp_expect_error(j, "scep.challenge", "expected string");
    j = tp_base();
    tp_set(j, "name", json_integer(7));
    tp_expect_error(j, "name", "expected string");
    j = tp_base();
    tp_set(j, "scep", json_string("x"));
    tp_expect_error(j, "scep", "expected object");
    j = tp_base();
    tp_set(j, "targets.devices", json_string(TP_UDID));
    tp_expect_error(j, "targets.devices", "expected array");
    j = tp_base();
    tp_set(j, "targets.devices", json_pack("[si]", TP_UDID, 5));
    tp_expect_error(j, "targets.devices[1]", "expected a string");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name", json_string("dns"));
    tp_expect_error(j, "scep.subject_alt_name", "expected object");

    /* malformed JSON text */
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    cr_assert_eq(profile_policy_from_json("{\"name\": ", 9, &p, &pr), SCEPTER_EINVAL);
    cr_assert_eq(pr.n_errors, 1);
    cr_assert(strstr(pr.v[0].msg, "malformed JSON") != NULL, "%s", pr.v[0].msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    cr_assert_eq(profile_policy_from_json("[1]", 3, &p, &pr), SCEPTER_EINVAL);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
}

Test(policy, key_size_retries_and_delay)
{
    json_t *j = tp_base();
    tp_set(j, "scep.key_size", json_integer(3072));
    tp_expect_error(j, "scep.key_size", "3072 is not one of 1024, 2048, 4096");
    j = tp_base();
    tp_set(j, "scep.key_size", json_integer(4096));
    tp_expect_ok(j);

    j = tp_base();
    tp_set(j, "scep.retries", json_integer(-1));
    tp_expect_error(j, "scep.retries", "out of range 0..100");
    j = tp_base();
    tp_set(j, "scep.retries", json_integer(101));
    tp_expect_error(j, "scep.retries", "out of range 0..100");
    j = tp_base();
    tp_set(j, "scep.retries", json_integer(0));
    tp_expect_ok(j);
    j = tp_base();
    tp_set(j, "scep.retries", json_integer(100));
    tp_expect_ok(j);

    j = tp_base();
    tp_set(j, "scep.retry_delay", json_integer(-5));
    tp_expect_error(j, "scep.retry_delay", "out of range 0..3600");
    j = tp_base();
    tp_set(j, "scep.retry_delay", json_integer(3601));
    tp_expect_error(j, "scep.retry_delay", "out of range 0..3600");
    j = tp_base();
    tp_set(j, "scep.retry_delay", json_integer(3600));
    tp_expect_ok(j);
}

Test(policy, url_rules)
{
    json_t *j = tp_base();
    tp_set(j, "scep.url", NULL);
    tp_expect_error(j, "scep.url", "required");
    j = tp_base();
    tp_set(j, "scep.url", json_string("ftp://scep-server/pkiclient.exe"));
    tp_expect_error(j, "scep.url", "http:// or https://");
    j = tp_base();
    tp_set(j, "scep.url", json_string("scep-server/pkiclient.exe"));
    tp_expect_error(j, "scep.url", "http:// or https://");
    j = tp_base();
    tp_set(j, "scep.url", json_string("http:///pkiclient.exe"));
    tp_expect_error(j, "scep.url", "no host");
    j = tp_base();
    tp_set(j, "scep.url", json_string("http://scep server/x"));
    tp_expect_error(j, "scep.url", "space");
    j = tp_base();
    tp_set(j, "scep.url", json_string("https://ca.example.com:8443/scep?op=x"));
    tp_expect_ok(j);
}

Test(policy, key_usage_names_become_a_bitmask)
{
    const struct {
        const char *json;
        int64_t mask;
    } cases[] = {
        {"[]", 0},
        {"[\"signing\"]", 1},
        {"[\"encryption\"]", 4},
        {"[\"encryption\", \"signing\"]", 5},
        {"[\"signing\", \"signing\"]", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = tp_base();
        struct profile_policy p;
        struct profile_problems pr = PROFILE_PROBLEMS_INIT;
        tp_set(j, "scep.key_usage", json_loads(cases[i].json, 0, NULL));
        cr_assert_eq(tp_parse(j, &p, &pr), 0);
        cr_assert_eq(p.key_usage, cases[i].mask, "%s", cases[i].json);
        profile_policy_clear(&p);
        profile_problems_clear(&pr);
        json_decref(j);
    }
    json_t *j = tp_base();
    tp_set(j, "scep.key_usage", json_pack("[ss]", "signing", "decrypt"));
    tp_expect_error(j, "scep.key_usage[1]", "\"decrypt\" is not \"signing\" or \"encryption\"");
    j = tp_base();
    tp_set(j, "scep.key_usage", json_pack("[i]", 1));
    tp_expect_error(j, "scep.key_usage[0]", "expected \"signing\"");
}

Test(policy, root_certificate_forms_and_refusals)
{
    size_t len, klen, l2;
    unsigned char *der = tp_ca_der(&len);
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &l2);
    unsigned char *key = tu_read_data("scep-ca/ca.key", &klen);
    size_t l3;
    unsigned char *pem2 = tu_read_data("scep/testca2/ca2.pem", &l3);
    char *b64;
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    /* base64 of the PEM file is converted to DER */
    json_t *j = tp_base();
    b64 = base64_encode(pem, l2);
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    cr_assert_eq(p.root_cert_len, len);
    cr_assert_eq(memcmp(p.root_cert, der, len), 0);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
    /* PEM text pasted as is */
    j = tp_base();
    tp_set(j, "scep.root_certificate", json_string((const char *)pem));
    tp_expect_ok(j);

    j = tp_base();
    tp_set(j, "scep.root_certificate", json_string("not base64 at all!"));
    tp_expect_error(j, "scep.root_certificate", "not base64");
    j = tp_base();
    b64 = base64_encode(key, klen);
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    tp_expect_error(j, "scep.root_certificate", "private key");
    j = tp_base();
    b64 = base64_encode("hello", 5);
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    tp_expect_error(j, "scep.root_certificate", "not a valid X.509");
    /* two certificates */
    unsigned char *both = xmalloc(l2 + l3);
    memcpy(both, pem, l2);
    memcpy(both + l2, pem2, l3);
    b64 = base64_encode(both, l2 + l3);
    j = tp_base();
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    free(both);
    tp_expect_error(j, "scep.root_certificate", "exactly one");
    /* a file of 1 MB or more */
    size_t big = 1024 * 1024;
    unsigned char *huge = xcalloc(1, big);
    memcpy(huge, der, len);
    b64 = base64_encode(huge, big);
    j = tp_base();
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    free(huge);
    tp_expect_error(j, "scep.root_certificate", "smaller than 1 MB");

    /* a DER certificate followed by junk is refused, not silently truncated */
    unsigned char *junk = xmalloc(len + 3);
    memcpy(junk, der, len);
    memcpy(junk + len, "xyz", 3);
    b64 = base64_encode(junk, len + 3);
    j = tp_base();
    tp_set(j, "scep.root_certificate", json_string(b64));
    free(b64);
    free(junk);
    tp_expect_error(j, "scep.root_certificate", "trailing bytes");
    free(der);
    free(pem);
    free(pem2);
    free(key);
}

Test(policy, subject_alt_names)
{
    json_t *j = tp_base();
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("not-an-email"));
    tp_expect_error(j, "scep.subject_alt_name.rfc822_name", "email address");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.uri", json_string("ca.example.com/path"));
    tp_expect_error(j, "scep.subject_alt_name.uri", "scheme");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("bad name.example.com"));
    tp_expect_error(j, "scep.subject_alt_name.dns_name", "no spaces");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("a\tb"));
    tp_expect_error(j, "scep.subject_alt_name.nt_principal_name", "control character");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("%SerialNumber%@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("urn:uuid:%HardwareUUID%"));
    tp_expect_ok(j);
}

Test(policy, targets)
{
    json_t *j = tp_base();
    tp_set(j, "targets.devices", json_pack("[ss]", TP_UDID, "bad id!"));
    tp_expect_error(j, "targets.devices[1]", "not a device id");
    j = tp_base();
    tp_set(j, "targets.device_groups", json_pack("[ss]", "lab", ""));
    tp_expect_error(j, "targets.device_groups[1]", "empty group name");

    /* duplicates are harmless: a warning */
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    j = tp_base();
    tp_set(j, "targets.devices", json_pack("[sss]", TP_UDID, "A-1", TP_UDID));
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    const struct profile_problem *w = tp_find(&pr, "targets.devices[2]");
    cr_assert_not_null(w);
    cr_assert(w->warning);
    cr_assert(strstr(w->msg, "duplicate") != NULL);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(policy, every_problem_is_listed)
{
    json_t *j = tp_base();
    tp_set(j, "platform", json_string("android"));
    tp_set(j, "name", json_string(""));
    tp_set(j, "scep.key_size", json_integer(512));
    tp_set(j, "scep.retries", json_integer(-2));
    tp_set(j, "scep.url", json_string("gopher://x"));
    tp_set(j, "scep.subject", json_string("/XX=1/"));
    tp_set(j, "scep.fingerprint", json_string("12:34"));
    tp_set(j, "extra", json_true());
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    cr_assert_eq(tp_parse(j, &p, &pr), SCEPTER_EINVAL);
    const char *fields[] = {"platform", "name",         "scep.key_size",    "scep.retries",
                            "scep.url", "scep.subject", "scep.fingerprint", "extra"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct profile_problem *e = tp_find(&pr, fields[i]);
        cr_assert_not_null(e, "no problem for %s", fields[i]);
        cr_assert_not(e->warning);
    }
    cr_assert_eq(pr.n_errors, 8);

    /* the API's shape: the first error plus the list */
    json_t *out = profile_problems_to_json(&pr);
    cr_assert_str_eq(json_string_value(json_object_get(out, "field")), pr.v[0].field);
    cr_assert_str_eq(json_string_value(json_object_get(out, "error")), pr.v[0].msg);
    cr_assert_eq(json_array_size(json_object_get(out, "problems")), pr.n);
    json_decref(out);
    struct scepter_error err;
    cr_assert_eq(profile_problems_to_error(&pr, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, pr.v[0].field);
    cr_assert_eq(err.http_status, 400);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(policy, json_round_trip_and_masking)
{
    json_t *j = tp_base();
    size_t len;
    unsigned char *der = tp_ca_der(&len);
    char *b64 = base64_encode(der, len);
    struct profile_policy p, q;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    tp_set(j, "scep.fingerprint", json_string("ESIzRKq7zN3u/wARIjNEVWZ3iJk="));
    tp_set(j, "scep.key_usage", json_pack("[s]", "encryption"));
    tp_set(j, "scep.root_certificate", json_string(b64));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://x.example/"));
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    json_t *out = profile_policy_to_json(&p, 0);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(out, "scep"), "fingerprint")),
        "11223344aabbccddeeff00112233445566778899");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(out, "scep"), "root_certificate")), b64);
    profile_problems_clear(&pr);
    cr_assert_eq(tp_parse(out, &q, &pr), 0);
    cr_assert_str_eq(q.scep_fingerprint, p.scep_fingerprint);
    cr_assert_eq(q.key_usage, 4);
    cr_assert_eq(q.root_cert_len, p.root_cert_len);
    cr_assert_str_eq(q.scep_challenge, "s3cret");
    cr_assert_str_eq(q.san_uri.v[0], "https://x.example/");
    cr_assert_eq(q.n_target_devices, 1);
    json_decref(out);

    out = profile_policy_to_json(&p, PROFILE_JSON_MASK_CHALLENGE);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "scep"), "challenge")),
                     "********");
    char *text = jsonx_dump(out);
    cr_assert(strstr(text, "s3cret") == NULL);
    free(text);
    json_decref(out);

    /* the canonical form validates on its own (as the server re-checks stored policies) */
    profile_problems_clear(&pr);
    struct profile_policy c;
    profile_policy_copy(&c, &p);
    cr_assert_eq(profile_policy_check(&c, &pr), 0);
    free(c.scep_fingerprint);
    c.scep_fingerprint = xstrdup("11223344AABBCCDDEEFF00112233445566778899");
    c.key_usage = 2;
    cr_assert_eq(profile_policy_check(&c, &pr), SCEPTER_EINVAL);
    cr_assert_not_null(tp_find(&pr, "scep.fingerprint"));
    cr_assert_not_null(tp_find(&pr, "scep.key_usage"));
    profile_policy_clear(&c);
    profile_policy_clear(&p);
    profile_policy_clear(&q);
    profile_problems_clear(&pr);
    json_decref(j);
    free(der);
    free(b64);
}

Test(policy, default_identifier_is_stable)
{
    struct profile_policy p;
    profile_policy_init(&p);
    p.name = xstrdup("Corp Wi-Fi certificate");
    p.platform = PROFILE_PLATFORM_MACOS;
    char *a = profile_default_identifier(&p, NULL), *b = profile_default_identifier(&p, NULL);
    cr_assert_str_eq(a, "com.scepter.policy.macos.corp-wi-fi-certificate");
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    p.platform = PROFILE_PLATFORM_IOS;
    a = profile_default_identifier(&p, "org.example");
    cr_assert_str_eq(a, "org.example.policy.ios.corp-wi-fi-certificate");
    free(a);
    /* names the slug cannot tell apart get a hash of the whole name */
    free(p.name);
    p.name = xstrdup("WLAN Büro");
    a = profile_default_identifier(&p, NULL);
    free(p.name);
    p.name = xstrdup("WLAN Böro");
    b = profile_default_identifier(&p, NULL);
    cr_assert(strncmp(a, "com.scepter.policy.ios.wlan-b-ro-", 33) == 0, "%s", a);
    cr_assert_str_neq(a, b);
    struct profile_render_opts o = {a, NULL};
    struct profile_template *t = NULL;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    free(p.scep_url);
    p.scep_url = xstrdup("https://scep.example.com/");
    p.key_size = 2048;
    cr_assert_eq(profile_template_new(&p, &o, &t, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    profile_template_free(t);
    profile_problems_clear(&pr);
    free(a);
    free(b);
    profile_policy_clear(&p);
}

Test(policy, long_problem_lists_are_capped_but_counted)
{
    json_t *j = tp_base(), *devs = json_array();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    for (int i = 0; i < 300; i++)
        json_array_append_new(devs, json_sprintf("bad id %d", i));
    tp_set(j, "targets.devices", devs);
    cr_assert_eq(tp_parse(j, &p, &pr), SCEPTER_EINVAL);
    cr_assert_eq(pr.n_errors, 300);
    cr_assert_lt(pr.n, 300);
    cr_assert_str_eq(pr.v[0].field, "targets.devices[0]");
    cr_assert(strstr(pr.v[pr.n - 1].msg, "more problems not listed") != NULL, "%s",
              pr.v[pr.n - 1].msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

/* The stored document: every field comes back, challenge in clear, targets left to the store. */
Test(policy, document_round_trip_keeps_every_field)
{
    json_t *j = tp_base();
    struct profile_policy p, q;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct scepter_error err;
    size_t len;
    unsigned char *der = tp_ca_der(&len);
    char *b64 = base64_encode(der, len);

    tp_set(j, "scep.fingerprint", json_string("ESIzRKq7zN3u/wARIjNEVWZ3iJk="));
    tp_set(j, "scep.key_usage", json_pack("[ss]", "signing", "encryption"));
    tp_set(j, "scep.retries", json_integer(7));
    tp_set(j, "scep.retry_delay", json_integer(45));
    tp_set(j, "scep.key_extractable", json_true());
    tp_set(j, "scep.root_certificate", json_string(b64));
    tp_set(j, "scep.subject_alt_name.dns_name", json_string("%ComputerName%.example.com"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_string("host/%SerialNumber%"));
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_string("it@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://x.example/"));
    cr_assert_eq(tp_parse(j, &p, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    char *doc = profile_policy_document(&p);
    cr_assert_null(strstr(doc, "targets"), "%s", doc);
    cr_assert(strstr(doc, "s3cret"), "the stored challenge is in clear");
    cr_assert_eq(profile_policy_from_document(doc, &q, &err), 0, "%s", err.msg);
    cr_assert_str_eq(q.name, p.name);
    cr_assert_eq(q.platform, p.platform);
    cr_assert_str_eq(q.notes, p.notes);
    cr_assert_str_eq(q.scep_url, p.scep_url);
    cr_assert_str_eq(q.scep_name, p.scep_name);
    cr_assert_str_eq(q.scep_challenge, p.scep_challenge);
    cr_assert_str_eq(q.scep_fingerprint, p.scep_fingerprint);
    cr_assert_str_eq(q.scep_subject, p.scep_subject);
    cr_assert_eq(q.key_size, p.key_size);
    cr_assert_eq(q.retries, 7);
    cr_assert_eq(q.retry_delay, 45);
    cr_assert(q.key_extractable);
    cr_assert_eq(q.key_usage, 5);
    cr_assert_eq(q.root_cert_len, p.root_cert_len);
    cr_assert_eq(memcmp(q.root_cert, p.root_cert, p.root_cert_len), 0);
    cr_assert_str_eq(q.san_dns.v[0], p.san_dns.v[0]);
    cr_assert_str_eq(q.san_ntpn.v[0], p.san_ntpn.v[0]);
    cr_assert_str_eq(q.san_rfc822.v[0], p.san_rfc822.v[0]);
    cr_assert_str_eq(q.san_uri.v[0], p.san_uri.v[0]);
    cr_assert_eq(q.n_target_devices + q.n_target_groups, 0);
    /* and the document of what came back is the same text */
    char *again = profile_policy_document(&q);
    cr_assert_str_eq(again, doc);
    free(again);
    profile_policy_clear(&q);

    /* a stored policy that breaks today's rules still reads back (the rules are not applied) */
    cr_assert_eq(profile_policy_from_document("{\"name\":\"old\",\"platform\":\"ios\",\"scep\":"
                                              "{\"url\":\"http://ca/\",\"key_size\":512}}",
                                              &q, &err),
                 0, "%s", err.msg);
    cr_assert_eq(q.key_size, 512);
    profile_policy_clear(&q);
    /* what is not a document is refused naming "document" */
    const char *bad[] = {NULL,
                         "",
                         "[1]",
                         "{\"name\":",
                         "{\"colour\":1}",
                         "{\"scep\":{\"retries\":\"x\"}}",
                         "{\"name\":\"x\",\"targets\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(profile_policy_from_document(bad[i], &q, &err), SCEPTER_EINVAL, "%s",
                     bad[i] ? bad[i] : "NULL");
        cr_assert_str_eq(err.field, "document");
        profile_policy_clear(&q);
    }
    free(doc);
    free(b64);
    free(der);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(policy, root_certificate_checks)
{
    struct scepter_error err;
    size_t len;
    unsigned char *der = tp_ca_der(&len);
    X509 *c = profile_root_cert_read(der, len, "root_certificate", &err);

    cr_assert_not_null(c, "%s", err.msg);
    X509_free(c);
    unsigned char *big = xcalloc(1, PROFILE_MAX_ROOT_CERT);
    cr_assert_null(profile_root_cert_read(big, PROFILE_MAX_ROOT_CERT, "root_certificate", &err));
    cr_assert_eq(err.code, SCEPTER_ETOOBIG);
    cr_assert_str_eq(err.field, "root_certificate");
    free(big);
    cr_assert_null(profile_root_cert_read("hello", 5, "f", &err));
    cr_assert_eq(err.code, SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "f");
    cr_assert_null(strstr(err.msg, "private key"), "%s", err.msg);
    /* a DER private key is named as one */
    EVP_PKEY *k = EVP_RSA_gen(2048);
    unsigned char *kder = NULL;
    int kl = i2d_PrivateKey(k, &kder);
    cr_assert_null(profile_root_cert_read(kder, (size_t)kl, "f", &err));
    cr_assert(strstr(err.msg, "private key"), "%s", err.msg);
    OPENSSL_free(kder);
    EVP_PKEY_free(k);
    free(der);
}
