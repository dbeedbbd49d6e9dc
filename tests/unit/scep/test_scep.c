/*
 * scep/: the PKIOperation parser and its checks, issuance, CertRep replies, CRLs — against
 * messages built by the test client (scepc.c) with OpenSSL's CMS API.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "common/xmalloc.h"
#include "scep/scep.h"
#include "scepc.h"
#include "support/support.h"

static char *dir;
static struct scep_ca *ca;
static int64_t now;

static void setup(void)
{
    struct scepter_error err;
    struct scep_ca_policy pol = {.validity_days = 30,
                                 .min_rsa_bits = 2048,
                                 .crl_url = "https://mdm.example.com/scep/default/crl"};
    char *cert, *key;

    now = (int64_t)time(NULL);
    dir = tu_tmpdir();
    cr_assert_eq(scep_ca_generate(dir, "Test SCEP CA", 2048, now, &err), 0, "%s", err.msg);
    cert = xasprintf("%s/ca.pem", dir);
    key = xasprintf("%s/ca.key", dir);
    struct scep_ca_files f = {.cert_file = cert, .key_file = key};
    cr_assert_eq(scep_ca_load("default", &f, &pol, "scep_ca_", &ca, &err), 0, "%s", err.msg);
    free(cert);
    free(key);
}

static void teardown(void)
{
    scep_ca_free(ca);
    tu_rmtree(dir);
    free(dir);
}

TestSuite(scep, .init = setup, .fini = teardown);

/* A PKCSReq of key, self-signed, encrypted to the CA. */
static unsigned char *pkcsreq(EVP_PKEY *key, X509 **self, const char *challenge, size_t *len)
{
    *self = scepc_self_signed(key, "dev");
    struct scepc_opts o = {.key = key,
                           .cn = "dev",
                           .challenge = challenge,
                           .san_dns = "dev.example.com",
                           .signer_cert = *self,
                           .signer_key = key,
                           .recipient = scep_ca_cert(ca)};
    return scepc_build(&o, len);
}

static void expect_failure(const unsigned char *msg, size_t len, enum scep_fail_info want,
                           const char *why_substr)
{
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail;
    struct scepc_reply rep;
    unsigned char *der = NULL;
    size_t dlen = 0;

    cr_assert_neq(scep_request_parse(ca, msg, len, now, &sr, &fail, &err), 0);
    cr_assert_eq(fail, want, "failInfo %s, want %s (%s)", scep_fail_name(fail),
                 scep_fail_name(want), err.msg);
    cr_assert_not_null(strstr(err.msg, why_substr), "reason: %s", err.msg);
    cr_assert_null(sr.csr);
    /* The FAILURE CertRep a client reads. */
    cr_assert_eq(scep_reply_failure(ca, &sr, fail, &der, &dlen, &err), 0, "%s", err.msg);
    cr_assert_eq(scepc_parse_reply(der, dlen, scep_ca_cert(ca), NULL, NULL, &rep), 0);
    cr_assert_eq(rep.status, 2);
    cr_assert_eq(rep.fail_info, (int)want);
    cr_assert_str_eq(rep.transaction_id, "scepc-transaction");
    cr_assert(rep.has_recipient_nonce);
    cr_assert_eq(memcmp(rep.recipient_nonce, sr.sender_nonce, 16), 0);
    free(der);
    scep_request_clear(&sr);
}

static X509 *enroll(EVP_PKEY *key, X509 **self)
{
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail;
    struct scepc_reply rep;
    unsigned char *msg, *der = NULL;
    size_t len, dlen = 0;
    X509 *cert = NULL;

    msg = pkcsreq(key, self, "s3cret", &len);
    cr_assert_eq(scep_request_parse(ca, msg, len, now, &sr, &fail, &err), 0, "%s", err.msg);
    cr_assert_eq(sr.type, SCEP_MSG_PKCSREQ);
    cr_assert_str_eq(sr.challenge, "s3cret");
    cr_assert(scep_challenge_equal(sr.challenge, "s3cret"));
    cr_assert_not(scep_challenge_equal(sr.challenge, "s3cre"));
    cr_assert_eq(scep_ca_issue(ca, &sr, now, &cert, &err), 0, "%s", err.msg);
    cr_assert_eq(scep_reply_success(ca, &sr, cert, &der, &dlen, &err), 0, "%s", err.msg);
    cr_assert_eq(scepc_parse_reply(der, dlen, scep_ca_cert(ca), key, *self, &rep), 0);
    cr_assert_eq(rep.status, 0);
    cr_assert_eq(rep.fail_info, -1);
    cr_assert_eq(memcmp(rep.recipient_nonce, sr.sender_nonce, 16), 0);
    cr_assert_not_null(rep.cert);
    cr_assert_eq(X509_cmp(rep.cert, cert), 0);
    X509_free(rep.cert);
    free(der);
    free(msg);
    scep_request_clear(&sr);
    return cert;
}

static void check_issued(X509 *cert, EVP_PKEY *key)
{
    struct scep_cert_info info;

    cr_assert_eq(X509_verify(cert, X509_get0_pubkey(scep_ca_cert(ca))), 1);
    cr_assert_eq(X509_check_issued(scep_ca_cert(ca), cert), X509_V_OK);
    cr_assert_eq(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
    cr_assert_eq(X509_check_ca(cert), 0);
    cr_assert(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    scep_cert_info(cert, &info);
    cr_assert_str_eq(info.subject, "CN=dev");
    cr_assert_str_eq(info.sans, "DNS:dev.example.com");
    cr_assert_gt(strlen(info.serial), 20);
    cr_assert_gt(info.not_after, now + 29 * 86400);
    cr_assert_lt(info.not_after, now + 31 * 86400);
    scep_cert_info_clear(&info);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
    cr_assert_not_null(dps, "no CRL distribution point");
    cr_assert_eq(sk_DIST_POINT_num(dps), 1);
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
}

Test(scep, pkcsreq_rsa_enrolls_and_the_certificate_verifies)
{
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = NULL, *cert = enroll(key, &self);

    check_issued(cert, key);
    X509_free(cert);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, a_bound_challenge_issues_only_the_subject_and_names_its_profile_asked_for)
{
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = NULL, *cert = enroll(key, &self); /* CN=dev, DNS:dev.example.com */
    char why[300];
    const char any[] = {SCEP_EXPECT_ANY, '\0'};
    char *pat;

    cr_assert_eq(scep_expect_check(cert, NULL, why, sizeof(why)), 0, "unbound: anything");
    cr_assert_eq(
        scep_expect_check(cert, "subject.CN=dev\nsan.dns=dev.example.com", why, sizeof(why)), 0,
        "%s", why);
    pat = xasprintf("subject.CN=d%s\nsan.dns=%s.example.com", any, any);
    cr_assert_eq(scep_expect_check(cert, pat, why, sizeof(why)), 0, "wildcards: %s", why);
    free(pat);
    pat = xasprintf("subject.CN=dev%s\nsan.dns=dev.example.com", any);
    cr_assert_neq(scep_expect_check(cert, pat, why, sizeof(why)), 0, "a wildcard is not empty");
    free(pat);
    cr_assert_neq(
        scep_expect_check(cert, "subject.CN=other\nsan.dns=dev.example.com", why, sizeof(why)), 0);
    cr_assert_not_null(strstr(why, "CN=dev where the profile asked for CN=other"), "%s", why);
    cr_assert_neq(
        scep_expect_check(cert, "subject.CN=dev\nsan.dns=other.example.com", why, sizeof(why)), 0);
    cr_assert_not_null(strstr(why, "dns:dev.example.com"), "%s", why);
    cr_assert_neq(scep_expect_check(cert, "subject.CN=dev", why, sizeof(why)), 0,
                  "a name the profile did not ask for");
    cr_assert_neq(scep_expect_check(cert,
                                    "subject.O=Example\nsubject.CN=dev\nsan.dns=dev."
                                    "example.com",
                                    why, sizeof(why)),
                  0, "an attribute missing");
    cr_assert_neq(scep_expect_check(cert, "subject.CN=dev\nsan.dns=dev.example.com\nsan.uri=urn:x",
                                    why, sizeof(why)),
                  0, "a name missing");
    X509_free(cert);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, pkcsreq_p256_enrolls)
{
    EVP_PKEY *key = scepc_p256();
    X509 *self = NULL, *cert = enroll(key, &self);

    check_issued(cert, key);
    X509_free(cert);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, weak_rsa_key_is_bad_request)
{
    EVP_PKEY *key = scepc_rsa(1024);
    X509 *self;
    size_t len;
    unsigned char *msg = pkcsreq(key, &self, "s3cret", &len);

    expect_failure(msg, len, SCEP_FAIL_BADREQUEST, "1024 bits");
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, mismatched_csr_signature_is_bad_message_check)
{
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, "dev");
    struct scepc_opts o = {.key = key,
                           .challenge = "s3cret",
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = scep_ca_cert(ca),
                           .bad_csr_signature = true};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    expect_failure(msg, len, SCEP_FAIL_BADMESSAGECHECK, "csr: its signature does not verify");
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, pkcsreq_signed_with_another_key_is_bad_message_check)
{
    EVP_PKEY *key = scepc_rsa(2048), *other = scepc_rsa(2048);
    X509 *self = scepc_self_signed(other, "dev");
    struct scepc_opts o = {.key = key,
                           .challenge = "s3cret",
                           .signer_cert = self,
                           .signer_key = other,
                           .recipient = scep_ca_cert(ca)};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    expect_failure(msg, len, SCEP_FAIL_BADMESSAGECHECK, "not signed with the key");
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

Test(scep, signing_time_far_off_is_bad_time)
{
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, "dev");
    struct scepc_opts o = {.key = key,
                           .challenge = "s3cret",
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = scep_ca_cert(ca),
                           .signing_time = now - 3 * 86400};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    expect_failure(msg, len, SCEP_FAIL_BADTIME, "signingTime");
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, encrypted_to_someone_else_is_bad_message_check)
{
    EVP_PKEY *key = scepc_rsa(2048), *other = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, "dev"), *stranger = scepc_self_signed(other, "x");
    struct scepc_opts o = {.key = key,
                           .challenge = "s3cret",
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = stranger};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    expect_failure(msg, len, SCEP_FAIL_BADMESSAGECHECK, "cannot be decrypted");
    free(msg);
    X509_free(self);
    X509_free(stranger);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

Test(scep, unsupported_message_type_is_bad_request)
{
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, "dev");
    struct scepc_opts o = {.msg_type = 21,
                           .key = key,
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = scep_ca_cert(ca)};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    expect_failure(msg, len, SCEP_FAIL_BADREQUEST, "messageType 21");
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, garbage_truncated_and_oversized_get_no_scep_reply)
{
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail;
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self;
    size_t len;
    unsigned char *msg = pkcsreq(key, &self, "s3cret", &len);
    static const unsigned char junk[] = "this is not DER at all";
    unsigned char *big = xcalloc(1, SCEP_MAX_MESSAGE + 1);

    cr_assert_eq(scep_request_parse(ca, junk, sizeof(junk), now, &sr, &fail, &err), SCEPTER_EINVAL);
    cr_assert_eq(fail, SCEP_FAIL_NONE);
    cr_assert_str_eq(err.field, "message");
    for (size_t cut = 1; cut < len; cut += len / 7) {
        cr_assert_neq(scep_request_parse(ca, msg, cut, now, &sr, &fail, &err), 0);
        cr_assert_eq(fail, SCEP_FAIL_NONE, "truncated to %zu", cut);
    }
    cr_assert_eq(scep_request_parse(ca, big, SCEP_MAX_MESSAGE + 1, now, &sr, &fail, &err),
                 SCEPTER_ETOOBIG);
    cr_assert_eq(scep_request_parse(ca, msg, 0, now, &sr, &fail, &err), SCEPTER_EINVAL);
    free(big);
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep, renewal_signed_by_a_current_certificate)
{
    EVP_PKEY *key = scepc_rsa(2048), *key2 = scepc_rsa(2048);
    X509 *self = NULL, *cert = enroll(key, &self);
    struct scepc_opts o = {.msg_type = 17,
                           .key = key2,
                           .cn = "dev",
                           .signer_cert = cert,
                           .signer_key = key,
                           .recipient = scep_ca_cert(ca)};
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail;
    struct scep_cert_info info;
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    cr_assert_eq(scep_request_parse(ca, msg, len, now, &sr, &fail, &err), 0, "%s", err.msg);
    cr_assert_eq(sr.type, SCEP_MSG_RENEWALREQ);
    scep_cert_info(cert, &info);
    cr_assert_str_eq(sr.signer_serial, info.serial);
    scep_cert_info_clear(&info);
    scep_request_clear(&sr);
    free(msg);

    /* Another subject: refused. */
    o.cn = "someone-else";
    msg = scepc_build(&o, &len);
    expect_failure(msg, len, SCEP_FAIL_BADREQUEST, "subject differs");
    free(msg);

    /* Signed by a certificate this CA did not issue. */
    o.cn = "dev";
    o.signer_cert = self;
    msg = scepc_build(&o, &len);
    expect_failure(msg, len, SCEP_FAIL_BADCERTID, "not issued by this CA");
    free(msg);

    X509_free(cert);
    X509_free(self);
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
}

Test(scep, crl_lists_the_revoked_serials)
{
    struct scepter_error err;
    struct scep_revoked rv[] = {{"1F2E3D", now - 10}, {"ABCDEF0123456789", now}};
    unsigned char *der = NULL;
    size_t len = 0;

    cr_assert_eq(scep_ca_crl(ca, rv, 2, now, 86400, &der, &len, &err), 0, "%s", err.msg);
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    cr_assert_not_null(crl);
    cr_assert_eq(X509_CRL_verify(crl, X509_get0_pubkey(scep_ca_cert(ca))), 1);
    cr_assert_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    ASN1_INTEGER_set(sn, 0x1F2E3D);
    X509_REVOKED *r = NULL;
    cr_assert_eq(X509_CRL_get0_by_serial(crl, &r, sn), 1);
    ASN1_INTEGER_set(sn, 0x1F2E3E);
    cr_assert_eq(X509_CRL_get0_by_serial(crl, &r, sn), 0);
    ASN1_INTEGER_free(sn);
    X509_CRL_free(crl);
    free(der);
}

Test(scep, getcacert_and_caps)
{
    struct scepter_error err;
    unsigned char *der = NULL;
    size_t len = 0;
    const char *ctype = NULL;

    cr_assert_eq(scep_ca_getcacert(ca, &der, &len, &ctype, &err), 0);
    cr_assert_str_eq(ctype, "application/x-x509-ca-cert");
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    cr_assert_eq(X509_cmp(x, scep_ca_cert(ca)), 0);
    X509_free(x);
    free(der);
    cr_assert_not_null(strstr(scep_caps(), "POSTPKIOperation\n"));
    cr_assert_not_null(strstr(scep_caps(), "SCEPStandard\n"));
    cr_assert_not_null(strstr(scep_caps(), "Renewal\n"));
}

Test(scep, serials_names_and_generation_refusals)
{
    struct scepter_error err;
    char out[SCEP_SERIAL_HEX_LEN + 1];

    cr_assert_eq(scep_serial_norm("0a:bc:DE", out, &err), 0);
    cr_assert_str_eq(out, "0ABCDE");
    cr_assert_eq(scep_serial_norm("abcdef", out, &err), 0);
    cr_assert_str_eq(out, "ABCDEF");
    cr_assert_eq(scep_serial_norm("xyz", out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "serial");
    cr_assert_eq(scep_serial_norm("", out, &err), SCEPTER_EINVAL);
    cr_assert(scep_ca_name_valid("lab-2"));
    cr_assert_not(scep_ca_name_valid("crl"));
    cr_assert_not(scep_ca_name_valid("a/b"));
    cr_assert_not(scep_ca_name_valid(""));
    /* An existing CA is never overwritten. */
    cr_assert_eq(scep_ca_generate(dir, "again", 2048, now, &err), SCEPTER_ECONFLICT);
    cr_assert_eq(scep_ca_generate(dir, "weak", 1024, now, &err), SCEPTER_EINVAL);
}

Test(scep, load_refuses_mismatched_key_and_non_ca)
{
    struct scepter_error err;
    struct scep_ca *other = NULL;
    char *d2 = tu_tmpdir();
    char *cert = xasprintf("%s/ca.pem", dir), *key2 = xasprintf("%s/ca.key", d2);

    cr_assert_eq(scep_ca_generate(d2, "Other", 2048, now, &err), 0, "%s", err.msg);
    struct scep_ca_files f = {.cert_file = cert, .key_file = key2};
    cr_assert_eq(scep_ca_load("default", &f, NULL, "scep_ca_", &other, &err), SCEPTER_ECRYPTO);
    cr_assert_str_eq(err.field, "scep_ca_key_file");
    cr_assert_not_null(strstr(err.msg, "does not match"));
    cr_assert_null(other);
    struct scep_ca_files bad = {.cert_file = cert, .key_file = NULL};
    cr_assert_eq(scep_ca_load("default", &bad, NULL, "scep_ca_", &other, &err), SCEPTER_EINVAL);
    tu_rmtree(d2);
    free(d2);
    free(cert);
    free(key2);
}

/* An RA certificate issued by the test CA, written to dir/ra.pem and dir/ra.key. */
static void make_ra(EVP_PKEY **ra_key, X509 **ra_cert)
{
    char *kp = xasprintf("%s/ca.key", dir), *rp = xasprintf("%s/ra.pem", dir),
         *rk = xasprintf("%s/ra.key", dir);
    FILE *fp = fopen(kp, "r");
    cr_assert_not_null(fp);
    EVP_PKEY *cakey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    *ra_key = scepc_rsa(2048);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, *ra_key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"Test RA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(scep_ca_cert(ca)));
    cr_assert_gt(X509_sign(x, cakey, EVP_sha256()), 0);
    fp = fopen(rp, "w");
    PEM_write_X509(fp, x);
    fclose(fp);
    fp = fopen(rk, "w");
    PEM_write_PrivateKey(fp, *ra_key, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
    *ra_cert = x;
    EVP_PKEY_free(cakey);
    free(kp);
    free(rp);
    free(rk);
}

Test(scep, an_ra_receives_requests_signs_replies_and_is_in_getcacert)
{
    struct scepter_error err;
    struct scep_ca *rca = NULL;
    EVP_PKEY *ra_key, *key = scepc_rsa(2048);
    X509 *ra_cert, *self = scepc_self_signed(key, "dev"), *cert = NULL;
    char *cp = xasprintf("%s/ca.pem", dir), *kp = xasprintf("%s/ca.key", dir),
         *rp = xasprintf("%s/ra.pem", dir), *rk = xasprintf("%s/ra.key", dir);

    make_ra(&ra_key, &ra_cert);
    struct scep_ca_files f = {
        .cert_file = cp, .key_file = kp, .ra_cert_file = rp, .ra_key_file = rk};
    cr_assert_eq(scep_ca_load("default", &f, NULL, "scep_", &rca, &err), 0, "%s", err.msg);

    /* GetCACert: a degenerate PKCS#7 with the RA and the CA. */
    unsigned char *der = NULL;
    size_t len = 0;
    const char *ctype;
    cr_assert_eq(scep_ca_getcacert(rca, &der, &len, &ctype, &err), 0);
    cr_assert_str_eq(ctype, "application/x-x509-ca-ra-cert");
    const unsigned char *p = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
    cr_assert_not_null(p7);
    cr_assert_eq(sk_X509_num(p7->d.sign->cert), 2);
    PKCS7_free(p7);
    free(der);

    /* A request encrypted to the RA is read; the reply is signed by the RA. */
    struct scepc_opts o = {.key = key,
                           .cn = "dev",
                           .challenge = "c",
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = ra_cert};
    unsigned char *msg = scepc_build(&o, &len);
    struct scep_request sr;
    enum scep_fail_info fail;
    struct scepc_reply rep;
    cr_assert_eq(scep_request_parse(rca, msg, len, now, &sr, &fail, &err), 0, "%s", err.msg);
    cr_assert_eq(scep_ca_issue(rca, &sr, now, &cert, &err), 0);
    cr_assert_eq(scep_reply_success(rca, &sr, cert, &der, &len, &err), 0);
    cr_assert_eq(scepc_parse_reply(der, len, ra_cert, key, self, &rep), 0);
    cr_assert_eq(rep.status, 0);
    cr_assert_eq(X509_verify(rep.cert, X509_get0_pubkey(scep_ca_cert(rca))), 1,
                 "issued by the CA, not the RA");
    X509_free(rep.cert);
    free(der);
    free(msg);
    scep_request_clear(&sr);

    /* An RA the CA did not issue is refused at load. */
    scep_ca_free(rca);
    rca = NULL;
    char *d2 = tu_tmpdir(), *op = xasprintf("%s/ca.pem", d2), *ok = xasprintf("%s/ca.key", d2);
    cr_assert_eq(scep_ca_generate(d2, "Stranger", 2048, now, &err), 0);
    struct scep_ca_files g = {
        .cert_file = cp, .key_file = kp, .ra_cert_file = op, .ra_key_file = ok};
    cr_assert_eq(scep_ca_load("default", &g, NULL, "scep_", &rca, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "scep_ra_cert_file");
    cr_assert_null(rca);
    tu_rmtree(d2);
    free(d2);
    free(op);
    free(ok);

    X509_free(cert);
    X509_free(self);
    X509_free(ra_cert);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(key);
    free(cp);
    free(kp);
    free(rp);
    free(rk);
}
