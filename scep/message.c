/*
 * scep/message.c — PKIOperation messages (RFC 8894 3): the signed and enveloped request, and
 * the CertRep reply.  OpenSSL's CMS API does the parsing and the cryptography; the SCEP
 * attributes are read and written through CMS_signed_get0_data_by_OBJ and
 * CMS_signed_add1_attr_by_OBJ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "scep/scep_int.h"

/* The SCEP attributes (RFC 8894 3.2.1; id-VeriSign pki-attributes). */
#define OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"

const char *scep_caps(void)
{
    return "POSTPKIOperation\nSHA-256\nAES\nRenewal\nSCEPStandard\n";
}

const char *scep_fail_name(enum scep_fail_info f)
{
    switch (f) {
    case SCEP_FAIL_BADALG:
        return "badAlg";
    case SCEP_FAIL_BADMESSAGECHECK:
        return "badMessageCheck";
    case SCEP_FAIL_BADREQUEST:
        return "badRequest";
    case SCEP_FAIL_BADTIME:
        return "badTime";
    case SCEP_FAIL_BADCERTID:
        return "badCertId";
    case SCEP_FAIL_NONE:
        break;
    }
    return "none";
}

bool scep_challenge_equal(const char *presented, const char *expected)
{
    unsigned char a[CRYPTO_SHA256_LEN], b[CRYPTO_SHA256_LEN];

    if (presented == NULL || expected == NULL || *expected == '\0')
        return false;
    /* Digests first, so neither the length nor the content leaks through timing. */
    crypto_sha256(presented, strlen(presented), a);
    crypto_sha256(expected, strlen(expected), b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

void scep_request_clear(struct scep_request *r)
{
    X509_free(r->signer);
    X509_REQ_free(r->csr);
    OPENSSL_cleanse(r->challenge, sizeof(r->challenge));
    memset(r, 0, sizeof(*r));
}

/* The single value of a signed attribute of the given ASN.1 type, or NULL. */
static ASN1_STRING *signed_attr(CMS_SignerInfo *si, const char *oid, int type)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_STRING *s = obj ? CMS_signed_get0_data_by_OBJ(si, obj, -3, type) : NULL;

    ASN1_OBJECT_free(obj);
    return s;
}

static bool printable(const unsigned char *p, int len)
{
    for (int i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return false;
    return true;
}

/* signingTime, when the request carries one, must be near the server's clock. */
static int check_signing_time(CMS_SignerInfo *si, int64_t now, struct scepter_error *err)
{
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    X509_ATTRIBUTE *a;
    ASN1_TYPE *t;
    struct tm tm;

    if (idx < 0)
        return 0;
    a = CMS_signed_get_attr(si, idx);
    t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    if (t == NULL || (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
        ASN1_TIME_to_tm((const ASN1_TIME *)t->value.asn1_string, &tm) != 1)
        return scepter_err(err, SCEPTER_EINVAL, "signingTime", "signingTime: malformed");
    int64_t when = (int64_t)timegm(&tm);
    if (when > now + SCEP_MAX_CLOCK_SKEW || when < now - SCEP_MAX_CLOCK_SKEW)
        return scepter_err(err, SCEPTER_EINVAL, "signingTime",
                           "signingTime is %lld s away from the server's clock (at most %d)",
                           (long long)(when > now ? when - now : now - when), SCEP_MAX_CLOCK_SKEW);
    return 0;
}

/* The challengePassword attribute of the CSR ("" when absent). */
static int csr_challenge(X509_REQ *csr, char *out, size_t outlen, struct scepter_error *err)
{
    int idx = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *a;
    ASN1_TYPE *t;

    out[0] = '\0';
    if (idx < 0)
        return 0;
    if (X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, idx) >= 0)
        return scepter_err(err, SCEPTER_EINVAL, "challengePassword",
                           "challengePassword: given twice");
    a = X509_REQ_get_attr(csr, idx);
    if (a == NULL || X509_ATTRIBUTE_count(a) != 1 || (t = X509_ATTRIBUTE_get0_type(a, 0)) == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "challengePassword",
                           "challengePassword: want exactly one value");
    switch (t->type) {
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
        break;
    default:
        return scepter_err(err, SCEPTER_EINVAL, "challengePassword",
                           "challengePassword: not a string");
    }
    const ASN1_STRING *s = t->value.asn1_string;
    int len = ASN1_STRING_length(s);
    const unsigned char *p = ASN1_STRING_get0_data(s);
    if (len < 0 || (size_t)len >= outlen || memchr(p, '\0', (size_t)len) != NULL)
        return scepter_err(err, SCEPTER_EINVAL, "challengePassword",
                           "challengePassword: at most %zu bytes, no NUL", outlen - 1);
    memcpy(out, p, (size_t)len);
    out[len] = '\0';
    return 0;
}

/* Keys a CSR may carry: RSA of at least min_bits, or ECDSA on P-256, P-384, P-521. */
static int check_key(const struct scep_ca *ca, EVP_PKEY *pub, struct scepter_error *err)
{
    char group[64] = "";
    size_t glen = 0;

    switch (EVP_PKEY_get_base_id(pub)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(pub) < ca->min_rsa_bits)
            return scepter_err(err, SCEPTER_EINVAL, "csr.publicKey",
                               "the CSR's RSA key has %d bits: at least %d are required",
                               EVP_PKEY_get_bits(pub), ca->min_rsa_bits);
        if (EVP_PKEY_get_bits(pub) > 8192)
            return scepter_err(err, SCEPTER_EINVAL, "csr.publicKey",
                               "the CSR's RSA key has %d bits: at most 8192",
                               EVP_PKEY_get_bits(pub));
        return 0;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen) == 1 &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0 ||
             strcmp(group, "secp521r1") == 0))
            return 0;
        return scepter_err(err, SCEPTER_EINVAL, "csr.publicKey",
                           "the CSR's EC key is on curve '%s': want P-256, P-384 or P-521", group);
    default:
        return scepter_err(err, SCEPTER_EINVAL, "csr.publicKey",
                           "the CSR's key type is not accepted: want RSA or ECDSA");
    }
}

/*
 * Requests are decrypted in a library context of their own that also has OpenSSL's legacy
 * provider: clients that ignore GetCACaps (the micromdm/scep client among them) encrypt with
 * DES-CBC, which OpenSSL 3 keeps there.  Nothing else in the process sees those algorithms,
 * and replies are always AES-128-CBC.
 */
static OSSL_LIB_CTX *legacy_ctx;
static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;

static void legacy_init(void)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

    if (ctx == NULL || OSSL_PROVIDER_load(ctx, "default") == NULL) {
        OSSL_LIB_CTX_free(ctx);
        return;
    }
    (void)OSSL_PROVIDER_load(ctx, "legacy"); /* without it, only the default's ciphers */
    ERR_clear_error();
    legacy_ctx = ctx;
}

/* Decrypt the pkcsPKIEnvelope with the RA key (when there is one), else the CA key. */
static BIO *decrypt_envelope(const struct scep_ca *ca, BIO *content, struct scepter_error *err)
{
    CMS_ContentInfo *env = NULL;
    BIO *out = NULL;
    char *data;
    long n = BIO_get_mem_data(content, &data);
    BIO *in = NULL;

    pthread_once(&legacy_once, legacy_init);
    if (n > 0 && (in = BIO_new_mem_buf(data, (int)n)) != NULL &&
        (env = CMS_ContentInfo_new_ex(legacy_ctx, NULL)) != NULL && d2i_CMS_bio(in, &env) == NULL) {
        CMS_ContentInfo_free(env);
        env = NULL;
    }
    if (env != NULL && BIO_pending(in) != 0) {
        CMS_ContentInfo_free(env);
        env = NULL;
    }
    BIO_free(in);
    if (env == NULL) {
        scepter_err(err, SCEPTER_EINVAL, "pkcsPKIEnvelope", "pkcsPKIEnvelope: not a CMS message");
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        scepter_err(err, SCEPTER_EINVAL, "pkcsPKIEnvelope", "pkcsPKIEnvelope: not EnvelopedData");
        goto out;
    }
    out = BIO_new(BIO_s_mem());
    if (CMS_decrypt(env, ca->ra_key ? ca->ra_key : ca->key, ca->ra_cert ? ca->ra_cert : ca->cert,
                    NULL, out, CMS_BINARY) != 1) {
        BIO_free(out);
        out = NULL;
        scepter_err(err, SCEPTER_ECRYPTO, "pkcsPKIEnvelope",
                    "pkcsPKIEnvelope: cannot be decrypted with this CA's key");
        scepter_err_openssl(err);
    }
out:
    CMS_ContentInfo_free(env);
    return out;
}

int scep_request_parse(const struct scep_ca *ca, const unsigned char *der, size_t len, int64_t now,
                       struct scep_request *req, enum scep_fail_info *fail,
                       struct scepter_error *err)
{
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    ASN1_STRING *s;
    BIO *content = NULL, *plain = NULL;
    X509 *signer = NULL;
    const unsigned char *p = der;
    char num[8];
    int rc = SCEPTER_EINVAL;

    memset(req, 0, sizeof(*req));
    *fail = SCEP_FAIL_NONE;
    if (len == 0 || len > SCEP_MAX_MESSAGE) {
        rc = scepter_err(err, len ? SCEPTER_ETOOBIG : SCEPTER_EINVAL, "message",
                         "message: %zu bytes, want 1 to %d", len, SCEP_MAX_MESSAGE);
        goto out;
    }
    if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) == NULL || p != der + len) {
        rc = scepter_err(err, SCEPTER_EINVAL, "message", "message: not a DER CMS message");
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
        (sis = CMS_get0_SignerInfos(cms)) == NULL || sk_CMS_SignerInfo_num(sis) != 1) {
        rc = scepter_err(err, SCEPTER_EINVAL, "message",
                         "message: want SignedData with exactly one signer");
        goto out;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    /* What a reply needs: without these the message cannot be answered in SCEP. */
    s = signed_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING);
    if (s == NULL || ASN1_STRING_length(s) < 1 || ASN1_STRING_length(s) > SCEP_MAX_TRANSACTION_ID ||
        !printable(ASN1_STRING_get0_data(s), ASN1_STRING_length(s))) {
        rc = scepter_err(err, SCEPTER_EINVAL, "transactionID",
                         "transactionID: want one PrintableString of 1 to %d characters",
                         SCEP_MAX_TRANSACTION_ID);
        goto out;
    }
    memcpy(req->transaction_id, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    s = signed_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING);
    if (s == NULL || ASN1_STRING_length(s) != SCEP_NONCE_LEN) {
        rc = scepter_err(err, SCEPTER_EINVAL, "senderNonce",
                         "senderNonce: want one OCTET STRING of %d bytes", SCEP_NONCE_LEN);
        goto out;
    }
    memcpy(req->sender_nonce, ASN1_STRING_get0_data(s), SCEP_NONCE_LEN);
    /* From here on a failure is a FAILURE CertRep. */
    *fail = SCEP_FAIL_BADREQUEST;
    s = signed_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING);
    if (s == NULL || ASN1_STRING_length(s) < 1 || ASN1_STRING_length(s) >= (int)sizeof(num)) {
        rc = scepter_err(err, SCEPTER_EINVAL, "messageType",
                         "messageType: want one PrintableString");
        goto out;
    }
    memcpy(num, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    num[ASN1_STRING_length(s)] = '\0';
    if (strcmp(num, "19") == 0) {
        req->type = SCEP_MSG_PKCSREQ;
    } else if (strcmp(num, "17") == 0) {
        req->type = SCEP_MSG_RENEWALREQ;
    } else {
        rc = scepter_err(err, SCEPTER_EINVAL, "messageType",
                         "messageType %.7s: only PKCSReq (19) and RenewalReq (17) are served", num);
        goto out;
    }
    /* The signature, with the signer's certificate from the message. */
    *fail = SCEP_FAIL_BADMESSAGECHECK;
    if (CMS_set1_signers_certs(cms, NULL, 0) < 1) {
        rc = scepter_err(err, SCEPTER_EINVAL, "message",
                         "message: the signer's certificate is not in the message");
        goto out;
    }
    CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
    if (signer == NULL) {
        rc = scepter_err(err, SCEPTER_EINVAL, "message",
                         "message: the signer's certificate is not in the message");
        goto out;
    }
    X509_up_ref(signer);
    req->signer = signer;
    if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data) {
        rc = scepter_err(err, SCEPTER_EINVAL, "message", "message: the signed content is not data");
        goto out;
    }
    content = BIO_new(BIO_s_mem());
    if (CMS_verify(cms, NULL, NULL, NULL, content, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "message", "message: the signature does not verify");
        goto out;
    }
    *fail = SCEP_FAIL_BADTIME;
    if ((rc = check_signing_time(si, now, err)) != 0)
        goto out;
    /* The enveloped CSR. */
    *fail = SCEP_FAIL_BADMESSAGECHECK;
    if ((plain = decrypt_envelope(ca, content, err)) == NULL) {
        rc = err ? err->code : SCEPTER_ECRYPTO;
        goto out;
    }
    {
        char *data;
        long n = BIO_get_mem_data(plain, &data);
        const unsigned char *q = (const unsigned char *)data;
        if (n <= 0 || (req->csr = d2i_X509_REQ(NULL, &q, n)) == NULL ||
            q != (const unsigned char *)data + n) {
            rc = scepter_err(err, SCEPTER_EINVAL, "csr", "csr: not a DER PKCS#10 request");
            *fail = SCEP_FAIL_BADREQUEST;
            goto out;
        }
    }
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req->csr);
    if (pub == NULL || X509_REQ_verify(req->csr, pub) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "csr",
                         "csr: its signature does not verify with its own key");
        goto out;
    }
    *fail = SCEP_FAIL_BADREQUEST;
    if ((rc = check_key(ca, pub, err)) != 0 ||
        (rc = csr_challenge(req->csr, req->challenge, sizeof(req->challenge), err)) != 0)
        goto out;
    if (X509_NAME_entry_count(X509_REQ_get_subject_name(req->csr)) == 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "csr.subject", "csr: the subject is empty");
        goto out;
    }
    if (req->type == SCEP_MSG_PKCSREQ) {
        /* The requester proves possession of the key it asks a certificate for. */
        if (EVP_PKEY_eq(X509_get0_pubkey(signer), pub) != 1) {
            *fail = SCEP_FAIL_BADMESSAGECHECK;
            rc = scepter_err(err, SCEPTER_EINVAL, "message",
                             "PKCSReq: not signed with the key of the request");
            goto out;
        }
    } else {
        /* RenewalReq: signed with a current certificate of this CA, for the same subject. */
        *fail = SCEP_FAIL_BADCERTID;
        if (X509_check_issued(ca->cert, signer) != X509_V_OK ||
            X509_verify(signer, X509_get0_pubkey(ca->cert)) != 1) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "message",
                             "RenewalReq: the signer certificate was not issued by this CA");
            goto out;
        }
        if (crypto_cert_not_after(signer) < now || crypto_cert_not_before(signer) > now) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "message",
                             "RenewalReq: the signer certificate is not valid now");
            goto out;
        }
        *fail = SCEP_FAIL_BADREQUEST;
        if (X509_NAME_cmp(X509_get_subject_name(signer), X509_REQ_get_subject_name(req->csr)) !=
            0) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "csr.subject",
                             "RenewalReq: the subject differs from the certificate's");
            goto out;
        }
        scep_serial_hex(X509_get0_serialNumber(signer), req->signer_serial);
    }
    *fail = SCEP_FAIL_NONE;
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(content);
    BIO_free(plain);
    CMS_ContentInfo_free(cms);
    if (rc != 0) {
        X509_REQ_free(req->csr);
        req->csr = NULL;
        if (*fail == SCEP_FAIL_NONE) {
            X509_free(req->signer);
            req->signer = NULL;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* CertRep                                                                                   */

static int add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *data, int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int ok = obj && CMS_signed_add1_attr_by_OBJ(si, obj, type, data, len) == 1;

    ASN1_OBJECT_free(obj);
    return ok ? 0 : -1;
}

static int cert_rep(const struct scep_ca *ca, const struct scep_request *req, bool success,
                    enum scep_fail_info fail, const unsigned char *content, size_t clen,
                    unsigned char **der, size_t *len, struct scepter_error *err)
{
    X509 *scert = ca->ra_cert ? ca->ra_cert : ca->cert;
    EVP_PKEY *skey = ca->ra_key ? ca->ra_key : ca->key;
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    CMS_SignerInfo *si = NULL;
    unsigned char nonce[SCEP_NONCE_LEN], *out = NULL;
    char finfo[4];
    BIO *in = NULL;
    int l = 0, rc = 0;

    *der = NULL;
    *len = 0;
    snprintf(finfo, sizeof(finfo), "%d", (int)fail);
    if (cms == NULL ||
        (si = CMS_add1_signer(cms, scert, skey, EVP_sha256(), CMS_BINARY | CMS_NOSMIMECAP)) ==
            NULL ||
        RAND_bytes(nonce, sizeof(nonce)) != 1 ||
        add_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, "3", 1) != 0 ||
        add_attr(si, OID_PKI_STATUS, V_ASN1_PRINTABLESTRING, success ? "0" : "2", 1) != 0 ||
        (!success &&
         add_attr(si, OID_FAIL_INFO, V_ASN1_PRINTABLESTRING, finfo, (int)strlen(finfo)) != 0) ||
        add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, req->transaction_id,
                 (int)strlen(req->transaction_id)) != 0 ||
        add_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, nonce, SCEP_NONCE_LEN) != 0 ||
        add_attr(si, OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING, req->sender_nonce, SCEP_NONCE_LEN) !=
            0 ||
        (in = BIO_new_mem_buf(clen ? (const void *)content : "", (int)clen)) == NULL ||
        CMS_final(cms, in, NULL, CMS_BINARY) != 1 || (l = i2d_CMS_ContentInfo(cms, &out)) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "signing the CertRep failed");
        scepter_err_openssl(err);
    } else {
        *der = xmemdup(out, (size_t)l);
        *len = (size_t)l;
    }
    OPENSSL_free(out);
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    return rc;
}

int scep_reply_failure(const struct scep_ca *ca, const struct scep_request *req,
                       enum scep_fail_info fail, unsigned char **der, size_t *len,
                       struct scepter_error *err)
{
    if (fail == SCEP_FAIL_NONE)
        fail = SCEP_FAIL_BADREQUEST;
    return cert_rep(ca, req, false, fail, NULL, 0, der, len, err);
}

int scep_reply_success(const struct scep_ca *ca, const struct scep_request *req, X509 *cert,
                       unsigned char **der, size_t *len, struct scepter_error *err)
{
    unsigned char *p7 = NULL, *env_der = NULL;
    size_t p7_len = 0;
    CMS_ContentInfo *env = NULL;
    STACK_OF(X509) *recips = sk_X509_new_null();
    BIO *in = NULL;
    int l = 0, rc;

    *der = NULL;
    *len = 0;
    if ((rc = scep_degenerate_p7(&cert, 1, &p7, &p7_len, err)) != 0)
        goto out;
    sk_X509_push(recips, req->signer);
    in = BIO_new_mem_buf(p7, (int)p7_len);
    if (in == NULL || (env = CMS_encrypt(recips, in, EVP_aes_128_cbc(), CMS_BINARY)) == NULL ||
        (l = i2d_CMS_ContentInfo(env, &env_der)) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL,
                         "encrypting the certificate to the requester failed");
        scepter_err_openssl(err);
        goto out;
    }
    rc = cert_rep(ca, req, true, SCEP_FAIL_NONE, env_der, (size_t)l, der, len, err);
out:
    OPENSSL_free(env_der);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    sk_X509_free(recips);
    free(p7);
    return rc;
}
