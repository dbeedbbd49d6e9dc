#include <criterion/criterion.h>
#include <string.h>

#include "common/codec.h"

static const struct {
    const char *plain, *b64;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

Test(codec, base64_rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        char *enc = base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain));
        cr_assert_str_eq(enc, rfc4648[i].b64);
        free(enc);
        unsigned char *dec = NULL;
        size_t len = 0;
        cr_assert_eq(base64_decode(rfc4648[i].b64, strlen(rfc4648[i].b64), false, &dec, &len), 0);
        cr_assert_eq(len, strlen(rfc4648[i].plain));
        cr_assert_eq(memcmp(dec, rfc4648[i].plain, len), 0);
        free(dec);
    }
}

Test(codec, base64_ignores_whitespace_like_plist_data)
{
    unsigned char *dec = NULL;
    size_t len = 0;
    const char *s = "\n\tYXBw\n\tbGU=\n";
    cr_assert_eq(base64_decode(s, strlen(s), false, &dec, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(dec, "apple", 5), 0);
    free(dec);
}

Test(codec, base64_refuses_garbage)
{
    static const char *const bad[] = {"Zg=", "Zm9v!", "Z", "Zg==Zg==", "Zh==", "Zm9=a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *dec = NULL;
        size_t len = 0;
        cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), false, &dec, &len), -1, "%s", bad[i]);
        cr_assert_null(dec);
    }
}

Test(codec, base64_unpadded_when_allowed)
{
    unsigned char *dec = NULL;
    size_t len = 0;
    cr_assert_eq(base64_decode("Zm8", 3, false, &dec, &len), -1);
    cr_assert_eq(base64_decode("Zm8", 3, true, &dec, &len), 0);
    cr_assert_eq(len, 2);
    free(dec);
}

Test(codec, hex_roundtrip_any_case)
{
    const unsigned char raw[] = {0x11, 0x22, 0xaa, 0xBB, 0x00, 0xff};
    char *h = hex_encode(raw, sizeof(raw), false);
    cr_assert_str_eq(h, "1122aabb00ff");
    free(h);
    h = hex_encode(raw, sizeof(raw), true);
    cr_assert_str_eq(h, "1122AABB00FF");
    unsigned char *dec = NULL;
    size_t len = 0;
    cr_assert_eq(hex_decode("1122aAbB00Ff", 12, &dec, &len), 0);
    cr_assert_eq(len, sizeof(raw));
    cr_assert_eq(memcmp(dec, raw, len), 0);
    free(dec);
    free(h);
    cr_assert_eq(hex_decode("123", 3, &dec, &len), -1);
    cr_assert_eq(hex_decode("zz", 2, &dec, &len), -1);
}
