/*
 * Push-certificate loading with MicroMDM's and NanoMDM's fixtures (tests/data/push) and the test
 * PKI (tests/apns-server/make-test-pki.sh): topic extraction, the certificate shapes
 * administrators have (PEM + PKCS#1/PKCS#8/encrypted key, combined PEM, PKCS#12 with a
 * password, legacy RC2 PKCS#12), and the refusals: no UID, wrong prefix, expired, not yet
 * valid, key mismatch, wrong password — each naming the field.
 */
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "apns/apns.h"
#include "apns/apns_int.h"
#include "common/crypto.h"
#include "harness.h"
#include "support/support.h"

#define MOCK  "push/" /* MicroMDM pkg/crypto/testdata */
#define MICRO "push/" /* MicroMDM server/testdata */

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* Load with files from the shared fixtures (NULL = none). */
static struct apns_identity *load_data(const char *cert, const char *key, const char *pw,
                                       struct scepter_error *err)
{
    char *c = tu_data_path(cert), *k = key ? tu_data_path(key) : NULL;
    struct apns_identity *id = apns_identity_load(c, k, pw, now(), err);
    free(c);
    free(k);
    return id;
}

static struct apns_identity *load_pki(const char *cert, const char *key, const char *pw,
                                      int64_t when, struct scepter_error *err)
{
    char *c = ts_pki(cert), *k = key ? ts_pki(key) : NULL;
    struct apns_identity *id = apns_identity_load(c, k, pw, when, err);
    free(c);
    free(k);
    return id;
}

Test(apns_identity, topic_is_the_subject_uid)
{
    char *p = tu_data_path(MOCK "mock_push_cert.pem");
    struct scepter_error err;
    X509 *cert = crypto_cert_load(p, &err);
    char *uid;

    cr_assert_not_null(cert, "%s", err.msg);
    uid = apns_cert_uid(cert);
    cr_assert_str_eq(uid, "com.apple.mgmt.External.18a16429-886b-41f1-9c30-2bd04ae4fc37");
    free(uid);
    X509_free(cert);
    free(p);

    p = tu_data_path(MOCK "mock_push_cert_no_uid.pem");
    cert = crypto_cert_load(p, &err);
    cr_assert_null(apns_cert_uid(cert), "no UID, no topic");
    X509_free(cert);
    free(p);
}

Test(apns_identity, refuses_a_certificate_without_uid)
{
    struct scepter_error err;
    struct apns_identity *id =
        load_data(MOCK "mock_push_cert_no_uid.pem", MICRO "ProviderPrivateKey.key", "secret", &err);

    cr_assert_null(id);
    cr_assert_eq(err.code, SCEPTER_ECRYPTO);
    cr_assert_str_eq(err.field, "apns_cert_file");
    cr_assert(strstr(err.msg, "has no UID") != NULL, "%s", err.msg);
}

Test(apns_identity, refuses_a_uid_that_is_not_an_mdm_topic)
{
    struct scepter_error err;
    struct apns_identity *id = load_data(MOCK "mock_push_cert_wrong_uid_prefix.pem",
                                         MICRO "ProviderPrivateKey.key", "secret", &err);

    cr_assert_null(id);
    cr_assert_str_eq(err.field, "apns_cert_file");
    cr_assert(strstr(err.msg, "wrong.prefix.18a16429") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "not an MDM push topic") != NULL, "%s", err.msg);
}

Test(apns_identity, refuses_an_expired_certificate)
{
    struct scepter_error err;
    /* nanomdm's push.pem expired in 2022; the key does not matter, expiry is checked first. */
    struct apns_identity *id =
        load_data("push/nanomdm-push.pem", MICRO "ProviderPrivateKey.key", "secret", &err);

    cr_assert_null(id);
    cr_assert_str_eq(err.field, "apns_cert_file");
    cr_assert(strstr(err.msg, "expired on 2022-02-10") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "com.apple.mgmt.External.e0bd1eac") != NULL, "names the topic: %s",
              err.msg);
}

Test(apns_identity, refuses_a_key_that_does_not_match)
{
    struct scepter_error err;
    struct apns_identity *id =
        load_data(MOCK "mock_push_cert.pem", MICRO "ProviderPrivateKey.key", "secret", &err);

    cr_assert_null(id);
    cr_assert_str_eq(err.field, "apns_key_file");
    cr_assert(strstr(err.msg, "does not belong") != NULL, "%s", err.msg);

    id = load_pki("push.pem", "push2.key", NULL, now(), &err);
    cr_assert_null(id, "push2.key belongs to push2.pem");
    cr_assert_str_eq(err.field, "apns_key_file");
}

Test(apns_identity, legacy_pkcs12_with_password)
{
    struct scepter_error err;
    /* micromdm's pushcert.p12: RC2, password "secret", subject CN=mdmpush (no UID). */
    struct apns_identity *id = load_data(MICRO "pushcert.p12", NULL, "secret", &err);

    cr_assert_null(id);
    cr_assert(strstr(err.msg, "CN=mdmpush") != NULL,
              "decrypted, then refused for having no UID: %s", err.msg);
    cr_assert_str_eq(err.field, "apns_cert_file");

    id = load_data(MICRO "pushcert.p12", NULL, "wrong", &err);
    cr_assert_null(id);
    cr_assert_str_eq(err.field, "apns_key_password", "a wrong password names the password");

    id = load_data(MICRO "pushcert.p12", MICRO "ProviderPrivateKey.key", "secret", &err);
    cr_assert_null(id);
    cr_assert_str_eq(err.field, "apns_key_file", "a key file next to a .p12 is refused");
}

Test(apns_identity, loads_every_shape_of_a_valid_push_certificate)
{
    static const struct {
        const char *cert, *key, *pw;
    } shapes[] = {
        {"push.pem", "push.key", NULL},       {"push.pem", "push-pkcs1.key", NULL},
        {"push.pem", "push-pkcs8.key", NULL}, {"push.pem", "push-enc.key", "secret"},
        {"push-combined.pem", NULL, NULL},    {"push.p12", NULL, "secret"},
    };
    char *topic = ts_pki_text("topic");
    char first_sha[65] = "";

    cr_assert_not_null(topic);
    for (size_t i = 0; i < ARRAY_LEN(shapes); i++) {
        struct scepter_error err;
        struct apns_identity *id =
            load_pki(shapes[i].cert, shapes[i].key, shapes[i].pw, now(), &err);
        cr_assert_not_null(id, "%s + %s: %s", shapes[i].cert, shapes[i].key ? shapes[i].key : "-",
                           err.msg);
        cr_assert_str_eq(apns_identity_topic(id), topic);
        cr_assert_gt(apns_identity_not_after(id), now());
        cr_assert_lt(apns_identity_not_before(id), now());
        cr_assert(strstr(apns_identity_subject(id), topic) != NULL);
        if (i == 0)
            memcpy(first_sha, apns_identity_sha256(id), 65);
        cr_assert_str_eq(apns_identity_sha256(id), first_sha, "same certificate every time");
        apns_identity_free(id);
    }
    free(topic);
}

Test(apns_identity, wrong_or_missing_password)
{
    struct scepter_error err;

    cr_assert_null(load_pki("push.pem", "push-enc.key", "nope", now(), &err));
    cr_assert_str_eq(err.field, "apns_key_password", "%s", err.msg);
    cr_assert_null(load_pki("push.pem", "push-enc.key", NULL, now(), &err));
    cr_assert_str_eq(err.field, "apns_key_file", "%s", err.msg);
    cr_assert(strstr(err.msg, "password") != NULL, "%s", err.msg);
    cr_assert_null(load_pki("push.p12", NULL, "nope", now(), &err));
    cr_assert_str_eq(err.field, "apns_key_password");
}

Test(apns_identity, validity_is_checked_at_the_given_time)
{
    struct scepter_error err;
    struct apns_identity *id = load_pki("push.pem", "push.key", NULL, now(), &err);
    int64_t nb, na;

    cr_assert_not_null(id, "%s", err.msg);
    nb = apns_identity_not_before(id);
    na = apns_identity_not_after(id);
    apns_identity_free(id);
    cr_assert_null(load_pki("push.pem", "push.key", NULL, na + 1, &err));
    cr_assert(strstr(err.msg, "expired on") != NULL, "%s", err.msg);
    cr_assert_null(load_pki("push.pem", "push.key", NULL, nb - 1, &err));
    cr_assert(strstr(err.msg, "not valid before") != NULL, "%s", err.msg);
}

Test(apns_identity, bytes_and_pem_round_trip)
{
    struct scepter_error err;
    size_t clen, klen;
    char *cp = ts_pki("push.pem"), *kp = ts_pki("push.key");
    unsigned char *cert = tu_read(cp, &clen), *key = tu_read(kp, &klen);
    struct apns_identity *id = apns_identity_parse(cert, clen, key, klen, NULL, now(), &err);
    struct apns_identity *again;
    char *cpem, *kpem;

    cr_assert_not_null(id, "%s", err.msg);
    apns_identity_pem(id, &cpem, &kpem);
    cr_assert(strstr(cpem, "BEGIN CERTIFICATE") != NULL);
    cr_assert(strstr(kpem, "BEGIN PRIVATE KEY") != NULL);
    again = apns_identity_parse(cpem, strlen(cpem), kpem, strlen(kpem), NULL, now(), &err);
    cr_assert_not_null(again, "%s", err.msg);
    cr_assert_str_eq(apns_identity_sha256(again), apns_identity_sha256(id));

    /* Upload errors name the upload fields. */
    cr_assert_null(apns_identity_parse("junk", 4, kpem, strlen(kpem), NULL, now(), &err));
    cr_assert_str_eq(err.field, "cert");
    cr_assert_null(apns_identity_parse(cpem, strlen(cpem), "junk", 4, NULL, now(), &err));
    cr_assert_str_eq(err.field, "key");
    cr_assert_null(apns_identity_parse(cpem, strlen(cpem), NULL, 0, NULL, now(), &err));
    cr_assert_str_eq(err.field, "key", "a certificate alone is not enough: %s", err.msg);
    cr_assert_null(apns_identity_parse(NULL, 0, NULL, 0, NULL, now(), &err));
    cr_assert_str_eq(err.field, "cert");

    free(cpem);
    free(kpem);
    apns_identity_free(again);
    apns_identity_free(id);
    apns_identity_free(NULL);
    free(cert);
    free(key);
    free(cp);
    free(kp);
}

Test(apns_identity, unreadable_files_and_tls_context)
{
    struct scepter_error err;
    struct apns_identity *id;
    SSL_CTX *ctx;
    char *ca;

    cr_assert_null(apns_identity_load(NULL, NULL, NULL, now(), &err));
    cr_assert_str_eq(err.field, "apns_cert_file");
    cr_assert_null(apns_identity_load("/nonexistent/push.pem", NULL, NULL, now(), &err));
    cr_assert_str_eq(err.field, "apns_cert_file");
    cr_assert_eq(err.code, SCEPTER_EIO);
    id = load_pki("push.pem", "push.key", NULL, now(), &err);
    cr_assert_not_null(id);
    ctx = apns_tls_ctx_new(id, "/nonexistent/ca.pem", &err);
    cr_assert_null(ctx);
    cr_assert_str_eq(err.field, "apns_ca_file");
    ca = ts_pki("ca.pem");
    ctx = apns_tls_ctx_new(id, ca, &err);
    cr_assert_not_null(ctx, "%s", err.msg);
    cr_assert_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION, "TLS 1.2 or later");
    cr_assert_eq(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
    SSL_CTX_free(ctx);
    free(ca);
    apns_identity_free(id);
}
