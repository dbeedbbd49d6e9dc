/*
 * The subject statement: one statement, optional slashes at the ends, short names and dotted
 * OIDs, the \/ and \= escapes, and refusals of empty names, empty values and unknown names.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "common/str.h"

#include "tp.h"

/* Parse and compare against expected pairs (name, value, name, value, ..., NULL). */
static void expect(const char *stmt, ...)
{
    plist_t arr = NULL;
    struct scepter_error err;
    va_list ap;
    uint32_t i = 0;

    cr_assert_eq(profile_subject_parse(stmt, "scep.subject", &arr, &err), 0, "%s: %s", stmt,
                 err.msg);
    va_start(ap, stmt);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL; i++) {
        const char *value = va_arg(ap, const char *);
        cr_assert_lt(i, plist_array_get_size(arr), "%s: too few RDNs", stmt);
        plist_t rdn = plist_array_get_item(arr, i);
        cr_assert_eq(plist_get_node_type(rdn), PLIST_ARRAY);
        cr_assert_eq(plist_array_get_size(rdn), 1, "one pair per RDN");
        plist_t pair = plist_array_get_item(rdn, 0);
        cr_assert_eq(plist_array_get_size(pair), 2);
        cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(pair, 0), NULL), name);
        cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(pair, 1), NULL), value);
    }
    va_end(ap);
    cr_assert_eq(plist_array_get_size(arr), i, "%s: %u RDNs, expected %u", stmt,
                 plist_array_get_size(arr), i);
    plist_free(arr);
}

static void refused(const char *stmt, const char *reason)
{
    plist_t arr = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_subject_parse(stmt, "scep.subject", &arr, &err), SCEPTER_EINVAL,
                 "\"%s\" accepted", stmt);
    cr_assert_null(arr);
    cr_assert_str_eq(err.field, "scep.subject");
    cr_assert(strstr(err.msg, reason) != NULL, "\"%s\": %s (wanted \"%s\")", stmt, err.msg, reason);
}

Test(subject, the_guide_example)
{
    expect("/C=US/O=ABCEnterprise/CN=foo/", "C", "US", "O", "ABCEnterprise", "CN", "foo", NULL);
    expect("C=US/O=ABCEnterprise/CN=foo", "C", "US", "O", "ABCEnterprise", "CN", "foo", NULL);
    expect("/C=US/O=ABCEnterprise/CN=foo", "C", "US", "O", "ABCEnterprise", "CN", "foo", NULL);
    expect("C=US/O=ABCEnterprise/CN=foo/", "C", "US", "O", "ABCEnterprise", "CN", "foo", NULL);
}

Test(subject, every_short_name_and_oids)
{
    expect("/C=DE/ST=Bayern/L=München/O=Example AG/OU=IT/CN=Max Mustermann", "C", "DE", "ST",
           "Bayern", "L", "München", "O", "Example AG", "OU", "IT", "CN", "Max Mustermann", NULL);
    expect("/0.9.2342.19200300.100.1.25=example/2.5.4.3=host", "0.9.2342.19200300.100.1.25",
           "example", "2.5.4.3", "host", NULL);
    /* short names in any case are written upper-case */
    expect("/cn=foo/ou=bar", "CN", "foo", "OU", "bar", NULL);
    /* Apple's own example */
    expect("/C=US/O=Apple Inc./CN=foo/1.2.5.3=bar", "C", "US", "O", "Apple Inc.", "CN", "foo",
           "1.2.5.3", "bar", NULL);
}

Test(subject, escapes)
{
    expect("/CN=a\\/b/O=x\\=y", "CN", "a/b", "O", "x=y", NULL);
    expect("/CN=back\\\\slash", "CN", "back\\slash", NULL);
    /* an escaped slash at the end belongs to the value */
    expect("/CN=foo\\/", "CN", "foo/", NULL);
    /* the first unescaped '=' splits; later ones are part of the value */
    expect("/CN=a=b", "CN", "a=b", NULL);
    /* variables are kept as text for the renderer */
    expect("/CN=%HardwareUUID%/OU=%SerialNumber%", "CN", "%HardwareUUID%", "OU", "%SerialNumber%",
           NULL);
}

Test(subject, refusals)
{
    refused("", "empty");
    refused("/", "no NAME=value");
    refused("/=foo/", "empty name");
    refused("/CN=/", "CN has an empty value");
    refused("/CN=foo//O=bar/", "empty component 2");
    refused("/CNfoo/", "has no '='");
    refused("/XX=foo/", "unknown name \"XX\"");
    refused("/DC=example/", "0.9.2342.19200300.100.1.25");
    refused("/emailAddress=a@b.c/", "1.2.840.113549.1.9.1");
    refused("/1..2=x/", "not a dotted OID");
    refused("/3.1=x/", "not a dotted OID");
    refused("/1=x/", "not a dotted OID");
    refused("/C=USA/", "two-letter country code");
    refused("/CN=foo\\", "backslash");
    refused("/CN=foo\\n", "backslash");
    char many[400] = "";
    for (int i = 0; i < 33; i++)
        str_append(many, sizeof(many), "/O=x");
    refused(many, "more than 32");
}

Test(subject, policy_names_the_field_and_renders_the_array)
{
    json_t *j = tp_base();
    tp_set(j, "scep.subject", json_string("/C=US/XX=1/"));
    tp_expect_error(j, "scep.subject", "unknown name");
    j = tp_base();
    tp_set(j, "scep.subject", json_string("/CN=/"));
    tp_expect_error(j, "scep.subject", "empty value");

    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    j = tp_base();
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    size_t len;
    char *xml = tp_render(&p, NULL, &len);
    plist_t prof = tp_plist(xml, len);
    plist_t subj = plist_dict_get_item(tp_scep_content(prof), "Subject");
    plist_t want = NULL;
    struct scepter_error err;
    cr_assert_eq(profile_subject_parse("/C=US/O=ABCEnterprise/CN=foo/", NULL, &want, &err), 0);
    cr_assert(tp_plist_equal(subj, want), "rendered Subject differs");
    plist_free(want);
    plist_free(prof);
    free(xml);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}
