/*
 * Identity renewal in the store: candidates by the bound certificate's notAfter, one renewal
 * outstanding per device, and binding a renewed certificate only while one is outstanding,
 * only to that device and only the renewal's certificate (Scepter's PKCS#12 by hash, the
 * built-in SCEP CA's by device, an external CA's when the built-in CA did not issue it); the
 * old certificate is superseded, the queue untouched; a new enrollment ends the renewal.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fixture.h"

TestSuite(renewal, .init = tf_setup, .fini = tf_teardown);

#define DAY 86400

static void enroll_na(struct store *s, const char *udid, const char *hash, int64_t not_after)
{
    struct scepter_error err;
    unsigned char token[32];
    bool first = false;
    struct store_authenticate a = {.device_id = udid,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .cert_hash = hash,
                                   .cert_not_after = not_after,
                                   .facts = {.product_name = "MacBookPro18,3"}};
    cr_assert_eq(store_authenticate(s, &a, T0, NULL, &err), 0, "%s", err.msg);
    memset(token, 0xcd, sizeof(token));
    struct store_token_update t = {.enrollment_id = udid,
                                   .device_id = udid,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "magic-1"};
    cr_assert_eq(store_token_update(s, &t, T0, &first, &err), 0, "%s", err.msg);
}

static bool is_candidate(struct store *s, const char *udid, int64_t before)
{
    struct store_renewal_candidate *c = NULL;
    struct scepter_error err;
    size_t n = 0;
    bool found = false;

    cr_assert_eq(store_renewal_candidates(s, before, 100, &c, &n, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(c[i].device_id, udid) == 0;
    store_renewal_candidates_free(c, n);
    return found;
}

static void begin(struct store *s, const char *udid, unsigned n, const char *expect,
                  int64_t expect_na)
{
    struct scepter_error err;
    char uuid[37];
    tf_uuid(n, uuid);
    struct store_command c = tf_cmd(uuid, "InstallProfile", 0);
    cr_assert_eq(store_renewal_begin(s, udid, &c, expect, expect_na, T0 + 100, &err), 0, "%s",
                 err.msg);
}

Test(renewal, the_renewal_s_pkcs12_certificate_is_bound_and_nothing_else)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char old[65], fresh[65], other[65], far[65];
    int64_t na = 0;
    struct store_device d;

    tf_hash("old", old);
    tf_hash("fresh", fresh);
    tf_hash("other", other);
    tf_hash("far", far);
    enroll_na(s, "D", old, T0 + 10 * DAY);
    enroll_na(s, "E", far, T0 + 100 * DAY);
    tf_enroll(s, "U", "iPhone14,2", T0); /* notAfter unknown: never a candidate */
    cr_assert(is_candidate(s, "D", T0 + 20 * DAY));
    cr_assert_not(is_candidate(s, "E", T0 + 20 * DAY));
    cr_assert_not(is_candidate(s, "U", T0 + 20 * DAY));
    int64_t expiring = 0;
    cr_assert_eq(store_identities_expiring(s, T0 + 20 * DAY, &expiring, &err), 0);
    cr_assert_eq(expiring, 1);

    /* Nothing outstanding: nothing is bound. */
    cr_assert_eq(store_renewal_bind(s, "D", fresh, 0, T0 + 50, &na, &err), SCEPTER_EFORBIDDEN);

    begin(s, "D", 1, fresh, T0 + 365 * DAY);
    {
        char uuid[37];
        tf_uuid(2, uuid);
        struct store_command c = tf_cmd(uuid, "InstallProfile", 0);
        cr_assert_eq(store_renewal_begin(s, "D", &c, fresh, 0, T0 + 101, &err), SCEPTER_ECONFLICT,
                     "one renewal at a time");
    }
    cr_assert_not(is_candidate(s, "D", T0 + 20 * DAY), "outstanding: not a candidate again");
    memset(&d, 0, sizeof(d));
    cr_assert_eq(store_device_get(s, "D", &d, &err), 0);
    cr_assert_eq(d.renewal_at, T0 + 100);
    cr_assert_eq(d.identity_not_after, T0 + 10 * DAY);
    store_device_clear(&d);

    /* Another certificate, or the right one for another device: refused, nothing changes. */
    cr_assert_eq(store_renewal_bind(s, "D", other, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_renewal_bind(s, "E", fresh, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_renewal_bind(s, "D", far, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN,
                 "bound to another device");
    cr_assert_eq(store_cert_check(s, old, "D", &err), 1);

    cr_assert_eq(store_renewal_bind(s, "D", fresh, 0, T0 + 300, &na, &err), 0, "%s", err.msg);
    cr_assert_eq(na, T0 + 365 * DAY, "the notAfter the renewal recorded");
    cr_assert_eq(store_cert_check(s, fresh, "D", &err), 1);
    cr_assert_eq(store_cert_check(s, old, "D", &err), 0, "the old one is unbound");
    memset(&d, 0, sizeof(d));
    cr_assert_eq(store_device_get(s, "D", &d, &err), 0);
    cr_assert_eq(d.renewal_at, 0);
    cr_assert_eq(d.renewed_at, T0 + 300);
    cr_assert_eq(d.identity_not_after, T0 + 365 * DAY);
    cr_assert(d.enrolled);
    store_device_clear(&d);
    struct store_queue_item *items = NULL;
    size_t n = 0;
    cr_assert_eq(store_queue_list(s, "D", false, &items, &n, &err), 0);
    cr_assert_eq(n, 1, "the queue is untouched");
    store_queue_items_free(items, n);
    struct store_revocation *rv = NULL;
    cr_assert_eq(store_revocations_list(s, "D", 0, &rv, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(rv[0].reason, "superseded");
    store_revocations_free(rv, n);
    /* The old certificate can never come back, and the renewal is over. */
    cr_assert_eq(store_renewal_bind(s, "D", old, 0, T0 + 400, &na, &err), SCEPTER_EFORBIDDEN);
    store_close(s);
}

Test(renewal, scep_certificates_bind_by_device_and_issuer)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char old_f[65], old_g[65], mine[65], theirs[65], external[65];
    int64_t na = 0;

    tf_hash("old-F", old_f);
    tf_hash("old-G", old_g);
    tf_hash("scep-F", mine);
    tf_hash("scep-X", theirs);
    tf_hash("external", external);
    enroll_na(s, "F", old_f, T0 + 5 * DAY);
    enroll_na(s, "G", old_g, T0 + 5 * DAY);
    struct store_scep_cert c = {.ca = (char *)"default",
                                .serial = (char *)"0F01",
                                .subject = (char *)"CN=F",
                                .sans = (char *)"",
                                .device_id = (char *)"F",
                                .cert_sha256 = mine,
                                .kind = (char *)"PKCSReq",
                                .not_before = T0,
                                .not_after = T0 + 400 * DAY};
    cr_assert_eq(store_scep_cert_add(s, &c, NULL, T0 + 10, NULL, &err), 0, "%s", err.msg);
    c.serial = (char *)"0F02";
    c.device_id = (char *)"SOMEONE-ELSE";
    c.cert_sha256 = theirs;
    cr_assert_eq(store_scep_cert_add(s, &c, NULL, T0 + 10, NULL, &err), 0, "%s", err.msg);

    begin(s, "F", 3, NULL, 0);
    begin(s, "G", 4, NULL, 0);
    cr_assert_eq(store_renewal_bind(s, "F", theirs, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN,
                 "issued by the built-in CA to another device");
    cr_assert_eq(store_renewal_bind(s, "G", mine, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN,
                 "issued to F, presented for G");
    cr_assert_eq(store_renewal_bind(s, "F", mine, 0, T0 + 200, &na, &err), 0, "%s", err.msg);
    cr_assert_eq(na, T0 + 400 * DAY, "the notAfter the CA recorded");
    /* An external CA's certificate, during G's renewal: with its notAfter only. */
    cr_assert_eq(store_renewal_bind(s, "G", external, 0, T0 + 200, &na, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_renewal_bind(s, "G", external, T0 + 90 * DAY, T0 + 200, &na, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(na, T0 + 90 * DAY);
    store_close(s);
}

Test(renewal, a_new_enrollment_ends_the_renewal)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char old[65], fresh[65];
    struct store_device d;
    int64_t na;

    tf_hash("old-H", old);
    tf_hash("fresh-H", fresh);
    enroll_na(s, "H", old, T0 + 5 * DAY);
    begin(s, "H", 5, fresh, 0);
    cr_assert_eq(store_checkout(s, "H", T0 + 150, &err), 0);
    enroll_na(s, "H", old, T0 + 5 * DAY);
    memset(&d, 0, sizeof(d));
    cr_assert_eq(store_device_get(s, "H", &d, &err), 0);
    cr_assert_eq(d.renewal_at, 0);
    store_device_clear(&d);
    cr_assert_eq(store_renewal_bind(s, "H", fresh, 0, T0 + 300, &na, &err), SCEPTER_EFORBIDDEN);
    cr_assert(is_candidate(s, "H", T0 + 20 * DAY), "a candidate again");
    store_close(s);
}
