#include <criterion/criterion.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/crypto.h"
#include "common/xmalloc.h"
#include "support/support.h"

Test(crypto, loads_scep_ca_pem_and_der)
{
    size_t len;
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &len);
    struct scepter_error err;
    X509 *a = crypto_cert_parse(pem, len, "root_certificate", &err);
    cr_assert_not_null(a, "%s", err.msg);
    unsigned char *der = tu_read_data("scep-ca/ca.crt", &len);
    X509 *b = crypto_cert_parse(der, len, "root_certificate", &err);
    cr_assert_not_null(b, "%s", err.msg);
    char ha[CRYPTO_SHA256_HEX_LEN], hb[CRYPTO_SHA256_HEX_LEN];
    crypto_cert_sha256_hex(a, ha);
    crypto_cert_sha256_hex(b, hb);
    cr_assert_str_eq(ha, hb);
    X509_free(a);
    X509_free(b);
    free(pem);
    free(der);
}

Test(crypto, refuses_private_key_and_garbage)
{
    size_t len;
    unsigned char *key = tu_read_data("scep-ca/ca.key", &len);
    struct scepter_error err;
    cr_assert_null(crypto_cert_parse(key, len, "root_certificate", &err));
    cr_assert_str_eq(err.field, "root_certificate");
    cr_assert(strstr(err.msg, "private key") != NULL, "%s", err.msg);
    cr_assert_null(crypto_cert_parse("junk", 4, "root_certificate", &err));
    cr_assert(strstr(err.msg, "not a valid X.509") != NULL, "%s", err.msg);
    free(key);
}

Test(crypto, refuses_two_certificates)
{
    size_t l1, l2;
    unsigned char *a = tu_read_data("scep-ca/ca.pem", &l1);
    unsigned char *b = tu_read_data("scep/testca2/ca2.pem", &l2);
    unsigned char *both = xmalloc(l1 + l2);
    memcpy(both, a, l1);
    memcpy(both + l1, b, l2);
    struct scepter_error err;
    cr_assert_null(crypto_cert_parse(both, l1 + l2, NULL, &err));
    cr_assert(strstr(err.msg, "exactly one") != NULL, "%s", err.msg);
    free(a);
    free(b);
    free(both);
}

Test(crypto, key_and_pkcs12_from_micromdm)
{
    struct scepter_error err;
    char *kp = tu_data_path("push/ProviderPrivateKey.key");
    char *cp = tu_data_path("push/pushcert.pem");
    EVP_PKEY *key = crypto_key_load(kp, NULL, &err);
    cr_assert_null(key);
    cr_assert(strstr(err.msg, "password") != NULL, "%s", err.msg);
    key = crypto_key_load(kp, "secret", &err);
    cr_assert_not_null(key, "%s", err.msg);
    X509 *cert = crypto_cert_load(cp, &err);
    cr_assert_not_null(cert, "%s", err.msg);
    /* ProviderPrivateKey.key is micromdm's vendor key, not the push certificate's key */
    cr_assert_not(crypto_cert_matches_key(cert, key));
    cr_assert_gt(crypto_cert_not_after(cert), crypto_cert_not_before(cert));
    char *subj = crypto_cert_subject(cert);
    cr_assert_str_eq(subj, "CN=mdmpush");
    free(subj);

    /* the same identity as PKCS#12 (legacy RC2 encryption, password "secret") */
    size_t plen;
    unsigned char *p12 = tu_read_data("push/pushcert.p12", &plen);
    X509 *pc = NULL;
    EVP_PKEY *pk = NULL;
    cr_assert_neq(crypto_pkcs12_parse(p12, plen, "wrong", &pc, &pk, NULL, &err), 0);
    cr_assert_str_eq(err.field, "password");
    cr_assert_eq(crypto_pkcs12_parse(p12, plen, "secret", &pc, &pk, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(X509_cmp(pc, cert), 0);
    cr_assert(crypto_cert_matches_key(pc, pk));
    X509_free(pc);
    EVP_PKEY_free(pk);
    free(p12);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(kp);
    free(cp);
}
