#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/uuid.h"

Test(str, copy_truncates_and_terminates)
{
    char buf[4];
    cr_assert_eq(str_copy(buf, sizeof(buf), "abcdef"), 6);
    cr_assert_str_eq(buf, "abc");
    str_copy(buf, sizeof(buf), "x");
    cr_assert_eq(str_append(buf, sizeof(buf), "yz12"), 5);
    cr_assert_str_eq(buf, "xyz");
}

Test(str, to_i64_bounds_and_junk)
{
    int64_t v;
    cr_assert_eq(str_to_i64("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(str_to_i64("-1", 0, 100, &v), -1);
    cr_assert_eq(str_to_i64("101", 0, 100, &v), -1);
    cr_assert_eq(str_to_i64("4x", 0, 100, &v), -1);
    cr_assert_eq(str_to_i64("", 0, 100, &v), -1);
    cr_assert_eq(str_to_i64(" 4", 0, 100, &v), -1);
    cr_assert_eq(str_to_i64("99999999999999999999", 0, INT64_MAX, &v), -1);
}

Test(str, bool_and_trim)
{
    bool b;
    cr_assert_eq(str_to_bool("Yes", &b), 0);
    cr_assert(b);
    cr_assert_eq(str_to_bool("off", &b), 0);
    cr_assert_not(b);
    cr_assert_eq(str_to_bool("maybe", &b), -1);
    char s[] = "  \t hi there \n";
    cr_assert_str_eq(str_trim(s), "hi there");
}

Test(uuid, fresh_uuids_are_valid_v4_and_distinct)
{
    char a[UUID_STR_LEN], b[UUID_STR_LEN];
    uuid_new(a);
    uuid_new(b);
    cr_assert(uuid_valid(a));
    cr_assert(uuid_valid(b));
    cr_assert_str_neq(a, b);
    cr_assert_eq(a[14], '4');
    cr_assert(strchr("89AB", a[19]) != NULL);
    cr_assert_not(uuid_valid("not-a-uuid"));
    cr_assert_not(uuid_valid("0000000-00000-0000-0000-000000000000"));
    uuid_new_lower(a);
    for (char *p = a; *p; p++)
        cr_assert(!(*p >= 'A' && *p <= 'F'));
}

static void fixed_gen(char out[UUID_STR_LEN], void *arg)
{
    int *n = arg;
    snprintf(out, UUID_STR_LEN, "00000000-0000-4000-8000-%012d", (*n)++);
}

Test(uuid, injectable_generator)
{
    int n = 7;
    char a[UUID_STR_LEN];
    uuid_set_generator(fixed_gen, &n);
    uuid_new(a);
    uuid_set_generator(NULL, NULL);
    cr_assert_str_eq(a, "00000000-0000-4000-8000-000000000007");
}

Test(buf, grows_and_steals)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
    size_t len;
    char *s = buf_steal(&b, &len);
    cr_assert_eq(strlen(s), len);
    cr_assert_null(b.data);
    free(s);
}

Test(str, utf8_valid_and_sanitize)
{
    char cut[] = "no device caf\xc3"; /* a message cut inside a character */
    char mixed[] = "a\xff\xc3\xa9\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80z";

    cr_assert(str_utf8_valid(""));
    cr_assert(str_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    cr_assert_eq(str_utf8_char("\xe2\x82\xac"), 3);
    cr_assert_eq(str_utf8_char("\xf0\x9f\x98\x80"), 4);
    cr_assert_not(str_utf8_valid(cut));
    cr_assert_not(str_utf8_valid("\xc0\xaf"));         /* overlong '/' */
    cr_assert_not(str_utf8_valid("\xed\xa0\x80"));     /* a surrogate */
    cr_assert_not(str_utf8_valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
    cr_assert_not(str_utf8_valid("\x80"));
    str_utf8_sanitize(cut);
    cr_assert_str_eq(cut, "no device caf?");
    str_utf8_sanitize(mixed);
    cr_assert_str_eq(mixed, "a?\xc3\xa9?????????z");
    cr_assert(str_utf8_valid(mixed));
}
