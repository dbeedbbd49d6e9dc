/*
 * The CA fingerprint in every form the admin guide and users produce: base64 (what
 * `xxd -r -p | base64` prints) and hex with colons, spaces, dashes or nothing, any case; SHA-1
 * and SHA-256 lengths; refusals for everything else.  And the rendered CAFingerprint is data.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "support/support.h"
#include "tp.h"

static const unsigned char FP_SHA1[20] = {0x11, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc,
                                          0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33,
                                          0x44, 0x55, 0x66, 0x77, 0x88, 0x99};

static void expect_bytes(const char *text, const unsigned char *want, size_t wlen)
{
    unsigned char out[32];
    size_t len = 0;
    struct scepter_error err;

    cr_assert_eq(profile_fingerprint_parse(text, "scep.fingerprint", out, &len, &err), 0,
                 "\"%s\": %s", text, err.msg);
    cr_assert_eq(len, wlen, "\"%s\": %zu bytes", text, len);
    cr_assert_eq(memcmp(out, want, wlen), 0, "\"%s\": wrong bytes", text);
}

static void expect_refused(const char *text, const char *reason)
{
    unsigned char out[32];
    size_t len = 99;
    struct scepter_error err;

    cr_assert_eq(profile_fingerprint_parse(text, "scep.fingerprint", out, &len, &err),
                 SCEPTER_EINVAL, "\"%s\" accepted", text);
    cr_assert_str_eq(err.field, "scep.fingerprint");
    cr_assert(strstr(err.msg, reason) != NULL, "\"%s\": %s (wanted \"%s\")", text, err.msg, reason);
    cr_assert_eq(len, 0);
}

Test(fingerprint, hex_with_any_delimiter_and_case)
{
    expect_bytes("11:22:33:44:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99", FP_SHA1, 20);
    expect_bytes("11:22:33:44:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99", FP_SHA1, 20);
    expect_bytes("11 22 33 44 aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99", FP_SHA1, 20);
    expect_bytes("11-22-33-44-Aa-bB-cc-dd-ee-ff-00-11-22-33-44-55-66-77-88-99", FP_SHA1, 20);
    /* 40 hex digits are also valid base64 text: the form decides, and this is hex */
    expect_bytes("11223344aabbccddeeff00112233445566778899", FP_SHA1, 20);
    expect_bytes("11223344AABBCCDDEEFF00112233445566778899", FP_SHA1, 20);
    expect_bytes("  11223344aabbccddeeff00112233445566778899\n", FP_SHA1, 20);
}

Test(fingerprint, base64_as_the_guide_makes_it)
{
    /* echo 11223344aabbccddeeff00112233445566778899 | xxd -r -p | base64 */
    expect_bytes("ESIzRKq7zN3u/wARIjNEVWZ3iJk=", FP_SHA1, 20);
    expect_bytes("ESIzRKq7zN3u/wARIjNEVWZ3iJk", FP_SHA1, 20); /* unpadded */
    expect_bytes("ESIzRKq7zN3u/wARIjNEVWZ3iJk=\n", FP_SHA1, 20);
}

Test(fingerprint, sha256_of_the_test_ca_in_both_forms)
{
    size_t len;
    unsigned char *der = tp_ca_der(&len);
    unsigned char sum[CRYPTO_SHA256_LEN];
    crypto_sha256(der, len, sum);
    /* what `openssl x509 -fingerprint -sha256` prints */
    expect_bytes("46:C7:12:EA:43:DA:E9:FC:BE:30:9C:D5:24:42:10:4D:23:E1:96:CE:56:51:6C:DE:EC:A0:"
                 "93:E4:43:F1:C5:28",
                 sum, 32);
    char *b64 = base64_encode(sum, sizeof(sum));
    expect_bytes(b64, sum, 32);
    free(b64);
    free(der);
}

Test(fingerprint, wrong_lengths_and_garbage)
{
    expect_refused("", "empty");
    expect_refused("11:22:33:44:aa:bb:cc:dd", "16 hex digits");
    expect_refused("11:22:33:44:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88", "38 hex digits");
    expect_refused("11223344aabbccddeeff0011223344556677889900", "42 hex digits");
    /* the guide's own short example decodes, but to 8 bytes */
    expect_refused("ESIzRKq7zN0=", "decodes to 8 bytes");
    expect_refused("zz:11:22", "neither hex");
    expect_refused("not a fingerprint!", "neither hex");
    char longs[400];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    expect_refused(longs, "far shorter");
}

Test(fingerprint, policy_stores_hex_and_renders_data)
{
    json_t *j = tp_base();
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    tp_set(j, "scep.fingerprint", json_string("ESIzRKq7zN3u/wARIjNEVWZ3iJk="));
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    cr_assert_str_eq(p.scep_fingerprint, "11223344aabbccddeeff00112233445566778899");
    size_t len;
    char *xml = tp_render(&p, NULL, &len);
    plist_t prof = tp_plist(xml, len);
    plist_t fp = plist_dict_get_item(tp_scep_content(prof), "CAFingerprint");
    cr_assert_not_null(fp);
    cr_assert_eq(plist_get_node_type(fp), PLIST_DATA, "CAFingerprint must be data, not text");
    uint64_t n = 0;
    const char *bytes = plist_get_data_ptr(fp, &n);
    cr_assert_eq(n, 20);
    cr_assert_eq(memcmp(bytes, FP_SHA1, 20), 0);
    plist_free(prof);
    free(xml);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);

    j = tp_base();
    tp_set(j, "scep.fingerprint", json_string("11:22:33"));
    tp_expect_error(j, "scep.fingerprint", "6 hex digits");
}
