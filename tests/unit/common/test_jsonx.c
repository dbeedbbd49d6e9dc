#include <criterion/criterion.h>
#include <string.h>

#include "common/jsonx.h"

Test(jsonx, typed_lookups_name_the_field)
{
    struct scepter_error err;
    const char *txt = "{\"scep\":{\"key_size\":\"big\",\"retries\":3}}";
    json_t *root = jsonx_parse_object(txt, strlen(txt), &err);
    cr_assert_not_null(root);
    json_t *scep;
    cr_assert_eq(jsonx_get_object(root, "scep", "", true, &scep, &err), 0);
    int64_t v;
    cr_assert_eq(jsonx_get_int(scep, "key_size", "scep.", false, &v, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "scep.key_size");
    cr_assert(strstr(err.msg, "expected integer, got string") != NULL, "%s", err.msg);
    cr_assert_eq(jsonx_get_int(scep, "retries", "scep.", false, &v, &err), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(jsonx_get_int(scep, "missing", "scep.", false, &v, &err), 1);
    static const char *const allowed[] = {"retries", NULL};
    cr_assert_eq(jsonx_only_keys(scep, allowed, "scep.", &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "scep.key_size");
    json_decref(root);
}

Test(jsonx, malformed_and_duplicates_refused)
{
    struct scepter_error err;
    cr_assert_null(jsonx_parse_object("{\"a\":", 5, &err));
    cr_assert(strstr(err.msg, "malformed JSON") != NULL);
    cr_assert_null(jsonx_parse_object("{\"a\":1,\"a\":2}", 13, &err));
    cr_assert_null(jsonx_parse_object("[1]", 3, &err));
}
