/*
 * scepterctl profile ...: the real binary, run the way an operator runs it.  A valid policy
 * renders a .mobileconfig (plain and signed); an invalid one exits 2 listing every problem on
 * stderr, one per line, each naming its field; warnings go to stderr with exit 0.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "support/support.h"
#include "tp.h"

static char *g_dir, *g_ctl, *g_examples;

static void setup(void)
{
    g_dir = tu_tmpdir();
    g_ctl = tu_binary_path("mdm/scepterctl");
    g_examples = tu_source_path("profiles/examples");
}

static void teardown(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
    free(g_ctl);
    free(g_examples);
}

TestSuite(cli, .init = setup, .fini = teardown);

static int ctl(char **out, const char *args)
{
    return tu_sh(out, "cd '%s' && '%s' %s", g_dir, g_ctl, args);
}

Test(cli, valid_policy_renders)
{
    char *out = NULL;
    char *args = xasprintf("profile render --policy '%s/policy-macos.json' --out p.mobileconfig "
                           "2>err.txt; echo \"rc=$?\"; cat err.txt",
                           g_examples);
    cr_assert_eq(ctl(&out, args), 0);
    cr_assert(strstr(out, "rc=0") != NULL, "%s", out);
    free(args);
    free(out);
    char *p = xasprintf("%s/p.mobileconfig", g_dir);
    size_t len;
    unsigned char *xml = tu_read(p, &len);
    plist_t prof = tp_plist((const char *)xml, len);
    cr_assert_str_eq(tp_str(prof, "PayloadIdentifier"),
                     "com.scepter.policy.macos.corp-wi-fi-certificate");
    cr_assert_eq(tp_uint(tp_scep_content(prof), "Keysize"), 2048);
    plist_free(prof);
    free(xml);
    free(p);

    /* to stdout, with an identifier; the same bytes libplist reads */
    args = xasprintf("profile render --policy '%s/policy-macos.json' --identifier "
                     "com.scepter.policy.7 2>/dev/null",
                     g_examples);
    cr_assert_eq(ctl(&out, args), 0);
    prof = tp_plist(out, strlen(out));
    cr_assert_str_eq(tp_str(prof, "PayloadIdentifier"), "com.scepter.policy.7");
    plist_free(prof);
    free(out);
    free(args);
}

Test(cli, ios_policy_needs_device_facts)
{
    char *out = NULL;
    char *args =
        xasprintf("profile render --policy '%s/policy-ios.json' 2>&1; echo rc=$?", g_examples);
    ctl(&out, args);
    cr_assert(strstr(out, "--device") != NULL, "%s", out);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    free(out);
    free(args);
    args = xasprintf("profile render --policy '%s/policy-ios.json' --device '%s/device-ipad.json' "
                     "2>/dev/null",
                     g_examples, g_examples);
    cr_assert_eq(ctl(&out, args), 0);
    plist_t prof = tp_plist(out, strlen(out));
    plist_t subj = plist_dict_get_item(tp_scep_content(prof), "Subject");
    plist_t cn = plist_array_get_item(plist_array_get_item(subj, 2), 0);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(cn, 1), NULL), "DMPXK2ABCDEF");
    plist_free(prof);
    free(out);
    free(args);
}

Test(cli, invalid_policy_exits_2_listing_every_problem)
{
    char *out = NULL;
    char *args = xasprintf("profile render --policy '%s/policy-invalid.json' 2>&1 >/dev/null; "
                           "echo rc=$?",
                           g_examples);
    ctl(&out, args);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    const char *lines[] = {"error: platform: ",
                           "error: scep.key_size: 3072 is not one",
                           "error: scep.fingerprint: ",
                           "error: scep.subject: ",
                           "error: scep.retries: ",
                           "error: scep.url: ",
                           "error: targets.devices[1]: ",
                           "error: scep.key_usage[0]: ",
                           "error: favourite_colour: unknown field"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        cr_assert(strstr(out, lines[i]) != NULL, "missing \"%s\" in:\n%s", lines[i], out);
    free(out);
    free(args);

    /* check says the same, and nothing is written with --out */
    args = xasprintf("profile check --policy '%s/policy-invalid.json' 2>/dev/null; echo rc=$?; "
                     "'%s' profile render --policy '%s/policy-invalid.json' --out x.mobileconfig "
                     "2>/dev/null; ls",
                     g_examples, g_ctl, g_examples);
    ctl(&out, args);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    cr_assert(strstr(out, "x.mobileconfig") == NULL, "a file was written for an invalid policy");
    free(out);
    free(args);
}

Test(cli, warnings_go_to_stderr_with_exit_0)
{
    char *out = NULL;
    char *args =
        xasprintf("profile check --policy '%s/policy-minimal.json' 2>&1; echo rc=$?", g_examples);
    ctl(&out, args);
    cr_assert(strstr(out, "rc=0") != NULL, "%s", out);
    cr_assert(strstr(out, "warning: scep.key_size: 1024-bit") != NULL, "%s", out);
    cr_assert(strstr(out, "warning: targets: ") != NULL, "%s", out);
    free(out);
    free(args);
}

Test(cli, signed_render_verifies)
{
    char *out = NULL;
    int rc = tu_sh(&out,
                   "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout s.key -out s.pem "
                   "-days 2 -subj '/CN=CLI Signer' 2>&1",
                   g_dir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char *args = xasprintf("profile render --policy '%s/policy-macos.json' --sign-cert s.pem "
                           "--sign-key s.key --out signed.mobileconfig 2>/dev/null && "
                           "openssl cms -verify -inform DER -binary -in signed.mobileconfig "
                           "-CAfile s.pem -out content.xml 2>&1 && '%s' profile verify "
                           "signed.mobileconfig --trust s.pem --out content2.xml 2>&1 && "
                           "cmp content.xml content2.xml && echo same",
                           g_examples, g_ctl);
    rc = ctl(&out, args);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "Verification successful") != NULL, "%s", out);
    cr_assert(strstr(out, "signed by: CN=CLI Signer (trusted)") != NULL, "%s", out);
    cr_assert(strstr(out, "same") != NULL, "%s", out);
    free(out);
    free(args);
    /* --sign-cert without --sign-key is a usage error */
    args = xasprintf("profile render --policy '%s/policy-macos.json' --sign-cert s.pem "
                     ">/dev/null 2>&1; echo rc=$?",
                     g_examples);
    ctl(&out, args);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    free(out);
    free(args);
}

Test(cli, dispatcher_usage)
{
    char *out = NULL;
    ctl(&out, "2>&1; echo rc=$?");
    cr_assert(strstr(out, "usage:") != NULL, "%s", out);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    free(out);
    ctl(&out, "bogus 2>&1; echo rc=$?");
    cr_assert(strstr(out, "unknown command \"bogus\"") != NULL, "%s", out);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
    free(out);
    ctl(&out, "profile --help 2>&1; echo rc=$?");
    cr_assert(strstr(out, "render --policy") != NULL, "%s", out);
    cr_assert(strstr(out, "rc=0") != NULL, "%s", out);
    free(out);
    ctl(&out, "profile render --policy x.json --bogus 2>&1; echo rc=$?");
    cr_assert(strstr(out, "unknown option --bogus") != NULL, "%s", out);
    free(out);
    ctl(&out, "profile variables");
    cr_assert(strstr(out, "%SerialNumber%") != NULL, "%s", out);
    cr_assert(strstr(out, "%UDID%") != NULL, "%s", out);
    free(out);
}

Test(cli, check_prints_the_canonical_json)
{
    char *out = NULL;
    char *args = xasprintf("profile check --policy '%s/policy-ios.json' --json --mask-challenge "
                           "2>/dev/null",
                           g_examples);
    cr_assert_eq(ctl(&out, args), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "%s\n%s", jerr.text, out);
    json_t *scep = json_object_get(j, "scep");
    cr_assert_str_eq(json_string_value(json_object_get(scep, "fingerprint")),
                     "11223344aabbccddeeff00112233445566778899");
    cr_assert_str_eq(json_string_value(json_object_get(scep, "challenge")), "********");
    cr_assert_eq(json_integer_value(json_object_get(scep, "retries")), 3);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(scep, "key_usage"), 1)),
                     "encryption");
    json_decref(j);
    free(out);
    free(args);
}
