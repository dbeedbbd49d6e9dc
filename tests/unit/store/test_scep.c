/*
 * The built-in SCEP CA's records: issued certificates (listed newest first, per CA, revocable,
 * the revoked ones for the CRL) and one-time challenges (single use, per CA, expiring,
 * consumed in the transaction that records the certificate, nothing recorded on refusal).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(scep, .init = tf_setup, .fini = tf_teardown);

static struct store_scep_cert rec(const char *ca, const char *serial, char hash[65])
{
    tf_hash(serial, hash);
    struct store_scep_cert c = {.ca = (char *)ca,
                                .serial = (char *)serial,
                                .subject = (char *)"CN=dev,O=Example",
                                .sans = (char *)"DNS:dev.example.com",
                                .cert_sha256 = hash,
                                .kind = (char *)"PKCSReq",
                                .not_before = T0 - 300,
                                .not_after = T0 + 86400};
    return c;
}

static size_t count(struct store *s, const char *ca, bool revoked_only)
{
    struct store_scep_cert *v = NULL;
    struct scepter_error err;
    size_t n = 0;

    cr_assert_eq(store_scep_certs_list(s, ca, revoked_only, 0, &v, &n, &err), 0, "%s", err.msg);
    store_scep_certs_free(v, n);
    return n;
}

Test(scep, certificates_are_recorded_listed_and_revoked)
{
    struct store *s = tf_open();
    struct scepter_error err;
    struct store_scep_cert got, *v = NULL;
    char h1[65], h2[65], h3[65];
    size_t n = 0;

    struct store_scep_cert a = rec("default", "0A1B", h1), b = rec("default", "0C2D", h2),
                           c = rec("lab", "0A1B", h3);
    b.device_id = (char *)"UDID-B";
    b.kind = (char *)"RenewalReq";
    b.renewed_from = (char *)"0A1B";
    cr_assert_eq(store_scep_cert_add(s, &a, NULL, T0, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(store_scep_cert_add(s, &b, NULL, T0 + 1, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(store_scep_cert_add(s, &c, NULL, T0 + 2, NULL, &err), 0, "%s", err.msg);
    /* A serial is issued once per CA. */
    cr_assert_eq(store_scep_cert_add(s, &a, NULL, T0 + 3, NULL, &err), SCEPTER_ECONFLICT);

    cr_assert_eq(store_scep_certs_list(s, "default", false, 0, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].serial, "0C2D"); /* newest first */
    cr_assert_str_eq(v[0].device_id, "UDID-B");
    cr_assert_str_eq(v[0].kind, "RenewalReq");
    cr_assert_str_eq(v[0].renewed_from, "0A1B");
    cr_assert_str_eq(v[1].serial, "0A1B");
    cr_assert_null(v[1].device_id);
    cr_assert_str_eq(v[1].sans, "DNS:dev.example.com");
    cr_assert_str_eq(v[1].cert_sha256, h1);
    cr_assert_eq(v[1].not_after, T0 + 86400);
    cr_assert_eq(v[1].issued_at, T0);
    cr_assert_eq(v[1].revoked_at, 0);
    store_scep_certs_free(v, n);
    cr_assert_eq(count(s, "lab", false), 1);
    cr_assert_eq(count(s, "nope", false), 0);

    cr_assert_eq(store_scep_cert_revoke(s, "default", "0A1B", T0 + 50, &err), 0, "%s", err.msg);
    cr_assert_eq(store_scep_cert_revoke(s, "default", "0A1B", T0 + 60, &err), 1);
    cr_assert_eq(store_scep_cert_revoke(s, "default", "FFFF", T0 + 60, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "serial");
    cr_assert_eq(count(s, "default", true), 1);
    cr_assert_eq(count(s, "lab", true), 0); /* the same serial of another CA stays good */

    cr_assert_eq(store_scep_cert_get(s, "default", "0A1B", &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.revoked_at, T0 + 50);
    store_scep_cert_clear(&got);
    cr_assert_eq(store_scep_cert_get(s, "default", "0E0E", &got, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(scep, a_one_time_challenge_is_used_once_by_its_ca_before_it_expires)
{
    struct store *s = tf_open();
    struct scepter_error err;
    char ch[STORE_SCEP_CHALLENGE_LEN], ch2[STORE_SCEP_CHALLENGE_LEN], h[65], *dev = NULL;

    cr_assert_eq(store_scep_challenge_create(s, "default", "UDID-1", T0 + 3600, T0, ch, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(strlen(ch), 32);
    cr_assert_eq(store_scep_challenge_create(s, "default", "UDID-2", T0 + 3600, T0, ch2, &err), 0);
    cr_assert_str_neq(ch, ch2);

    /* Another CA's challenge, a wrong one, an empty one: refused, nothing recorded. */
    struct store_scep_cert c = rec("lab", "01", h);
    cr_assert_eq(store_scep_cert_add(s, &c, ch, T0 + 10, &dev, &err), SCEPTER_EFORBIDDEN);
    cr_assert_str_eq(err.field, "challenge");
    c = rec("default", "01", h);
    cr_assert_eq(
        store_scep_cert_add(s, &c, "0123456789abcdef0123456789abcdef", T0 + 10, &dev, &err),
        SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_scep_cert_add(s, &c, "", T0 + 10, &dev, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(count(s, "default", false), 0);
    cr_assert_eq(count(s, "lab", false), 0);

    /* Its CA, in time: the certificate is recorded with the challenge's device. */
    cr_assert_eq(store_scep_cert_add(s, &c, ch, T0 + 10, &dev, &err), 0, "%s", err.msg);
    cr_assert_str_eq(dev, "UDID-1");
    free(dev);
    dev = NULL;
    struct store_scep_cert got;
    cr_assert_eq(store_scep_cert_get(s, "default", "01", &got, &err), 0);
    cr_assert_str_eq(got.device_id, "UDID-1");
    store_scep_cert_clear(&got);

    /* Reused: refused, nothing recorded. */
    c = rec("default", "02", h);
    cr_assert_eq(store_scep_cert_add(s, &c, ch, T0 + 20, &dev, &err), SCEPTER_EFORBIDDEN);
    cr_assert_null(dev);
    cr_assert_eq(count(s, "default", false), 1);

    /* Expired. */
    cr_assert_eq(store_scep_cert_add(s, &c, ch2, T0 + 3600, &dev, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(count(s, "default", false), 1);

    /* Bad arguments name their field. */
    cr_assert_eq(store_scep_challenge_create(s, "default", "UDID-3", T0, T0, ch, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "expires");
    cr_assert_eq(store_scep_challenge_create(s, "default", "", T0 + 60, T0, ch, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "udid");
    store_close(s);
}

Test(scep, a_bound_challenge_keeps_what_its_profile_asks_for_and_peeking_uses_nothing)
{
    struct store *s = tf_open();
    struct scepter_error err;
    char ch[STORE_SCEP_CHALLENGE_LEN], ch2[STORE_SCEP_CHALLENGE_LEN], h[65];
    char *dev = NULL, *expect = NULL;

    cr_assert_eq(store_scep_challenge_create_bound(s, "default", "UDID-1",
                                                   "subject.CN=SN1\nsan.dns=SN1.example.com",
                                                   T0 + 3600, T0, ch, &err),
                 0, "%s", err.msg);
    cr_assert_eq(store_scep_challenge_create(s, "default", "UDID-2", T0 + 3600, T0, ch2, &err), 0);
    cr_assert_eq(store_scep_challenge_peek(s, "default", ch, T0 + 1, &dev, &expect, &err), 0, "%s",
                 err.msg);
    cr_assert_str_eq(dev, "UDID-1");
    cr_assert_str_eq(expect, "subject.CN=SN1\nsan.dns=SN1.example.com");
    free(dev);
    free(expect);
    /* Unbound: no expectation. */
    cr_assert_eq(store_scep_challenge_peek(s, "default", ch2, T0 + 1, &dev, &expect, &err), 0);
    cr_assert_str_eq(dev, "UDID-2");
    cr_assert_null(expect);
    free(dev);
    /* Another CA, unknown, empty, expired: refused. */
    cr_assert_eq(store_scep_challenge_peek(s, "lab", ch, T0 + 1, &dev, &expect, &err),
                 SCEPTER_EFORBIDDEN);
    cr_assert_null(dev);
    cr_assert_eq(store_scep_challenge_peek(s, "default", "0123456789abcdef0123456789abcdef", T0 + 1,
                                           &dev, &expect, &err),
                 SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_scep_challenge_peek(s, "default", "", T0 + 1, &dev, &expect, &err),
                 SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_scep_challenge_peek(s, "default", ch, T0 + 3600, &dev, &expect, &err),
                 SCEPTER_EFORBIDDEN);
    /* Peeking used nothing: the challenge still issues once, then is gone. */
    struct store_scep_cert c = rec("default", "0A", h);
    cr_assert_eq(store_scep_cert_add(s, &c, ch, T0 + 10, &dev, &err), 0, "%s", err.msg);
    cr_assert_str_eq(dev, "UDID-1");
    free(dev);
    dev = NULL;
    cr_assert_eq(store_scep_challenge_peek(s, "default", ch, T0 + 11, &dev, &expect, &err),
                 SCEPTER_EFORBIDDEN);
    cr_assert_null(dev);
    cr_assert_null(expect);
    store_close(s);
}

Test(scep, a_failed_recording_consumes_no_challenge)
{
    struct store *s = tf_open();
    struct scepter_error err;
    char ch[STORE_SCEP_CHALLENGE_LEN], h[65], h2[65], *dev = NULL;

    cr_assert_eq(store_scep_challenge_create(s, "default", "UDID-1", T0 + 3600, T0, ch, &err), 0);
    struct store_scep_cert c = rec("default", "01", h);
    cr_assert_eq(store_scep_cert_add(s, &c, NULL, T0 + 1, NULL, &err), 0);
    /* Same serial again, with the challenge: the conflict rolls the challenge back. */
    struct store_scep_cert d = rec("default", "01", h2);
    cr_assert_eq(store_scep_cert_add(s, &d, ch, T0 + 2, &dev, &err), SCEPTER_ECONFLICT);
    cr_assert_null(dev);
    d = rec("default", "03", h2);
    cr_assert_eq(store_scep_cert_add(s, &d, ch, T0 + 3, &dev, &err), 0, "%s", err.msg);
    cr_assert_str_eq(dev, "UDID-1");
    free(dev);
    store_close(s);
}
