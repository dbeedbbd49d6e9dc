#include <criterion/criterion.h>
#include <string.h>

#include "common/plistx.h"
#include "support/support.h"

Test(plistx, parses_real_authenticate_from_nanomdm)
{
    size_t len;
    unsigned char *data = tu_read_data("device-plists/Authenticate.2.plist", &len);
    plist_t d = NULL;
    struct scepter_error err;
    cr_assert_eq(plistx_parse_dict(data, len, &d, &err), 0, "%s", err.msg);
    const char *s = NULL;
    cr_assert_eq(plistx_get_string(d, "MessageType", true, &s, &err), 0);
    cr_assert_str_eq(s, "Authenticate");
    cr_assert_eq(plistx_get_string(d, "UDID", true, &s, &err), 0);
    cr_assert_str_eq(s, "66ADE930-5FDF-5EC4-8429-15640684C489");
    const unsigned char *chal;
    size_t clen;
    cr_assert_eq(plistx_get_data(d, "Challenge", true, &chal, &clen, &err), 0);
    cr_assert_eq(clen, 5);
    cr_assert_eq(memcmp(chal, "apple", 5), 0);
    /* wrong type names the key */
    cr_assert_eq(plistx_get_data(d, "UDID", true, &chal, &clen, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "UDID");
    cr_assert(strstr(err.msg, "expected data, got string") != NULL, "%s", err.msg);
    /* absent optional */
    cr_assert_eq(plistx_get_string(d, "EnrollmentID", false, &s, &err), 1);
    cr_assert_eq(plistx_get_string(d, "EnrollmentID", true, &s, &err), SCEPTER_EINVAL);
    plist_free(d);
    free(data);
}

Test(plistx, refuses_truncated_and_non_dict)
{
    size_t len;
    unsigned char *data = tu_read_data("device-plists/TokenUpdate.1.plist", &len);
    plist_t d = NULL;
    struct scepter_error err;
    cr_assert_neq(plistx_parse_dict(data, len / 2, &d, &err), 0);
    cr_assert_null(d);
    cr_assert_neq(plistx_parse_dict("hello", 5, &d, &err), 0);
    cr_assert_neq(plistx_parse_dict("", 0, &d, &err), 0);
    const char *arr = "<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>";
    cr_assert_eq(plistx_parse_dict(arr, strlen(arr), &d, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "array") != NULL, "%s", err.msg);
    free(data);
}

Test(plistx, xml_roundtrip_keeps_types)
{
    plist_t d = plist_new_dict();
    plistx_set_string(d, "A", "x<&>y");
    plistx_set_bool(d, "B", true);
    plistx_set_uint(d, "C", 4096);
    plistx_set_data(d, "D", "\0\1\2", 3);
    size_t len;
    char *xml = plistx_to_xml(d, &len);
    plist_t back = NULL;
    struct scepter_error err;
    cr_assert_eq(plistx_parse_dict(xml, len, &back, &err), 0, "%s", err.msg);
    size_t len2;
    char *xml2 = plistx_to_xml(back, &len2);
    cr_assert_str_eq(xml, xml2);
    free(xml2);
    const char *s;
    cr_assert_eq(plistx_get_string(back, "A", true, &s, &err), 0);
    cr_assert_str_eq(s, "x<&>y");
    plist_free(d);
    plist_free(back);
    free(xml);
}
