/*
 * An RFC 8894 SCEP client, as a device runs it for a com.apple.security.scep payload:
 * GetCACaps, GetCACert (one certificate or a degenerate PKCS#7 of CA and RA certificates),
 * the CAFingerprint check, then PKIOperation with a PKCSReq: a CSR carrying the requested
 * subject, SubjectAltName, key usage and challengePassword, enveloped to the CA/RA encryption
 * certificate and signed with a temporary self-signed certificate.  The CertRep is verified
 * against the CA/RA certificates and answered: SUCCESS yields the issued certificate, FAILURE
 * its failInfo, PENDING is polled with CertPoll up to Retries times (the first retry at once,
 * then every RetryDelay seconds).  Message building and parsing are pure; only
 * sim_scep_enroll talks to the network (blocking, bounded by timeouts).
 */
#include "sim.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"
#define OID_UPN             "1.3.6.1.4.1.311.20.2.3"

#define MSG_CERTREP  3
#define MSG_PKCSREQ  19
#define MSG_CERTPOLL 20

/* ---------------------------------------------------------------------------------------- */
/* The payload                                                                               */

void sim_scep_request_clear(struct sim_scep_request *r)
{
    if (r == NULL)
        return;
    free(r->url);
    free(r->name);
    free(r->challenge);
    X509_NAME_free(r->subject);
    GENERAL_NAMES_free(r->san);
    memset(r, 0, sizeof(*r));
}

static int parse_subject(plist_t arr, X509_NAME *name, struct scepter_error *err)
{
    uint32_t n = plist_array_get_size(arr);

    for (uint32_t i = 0; i < n; i++) {
        plist_t rdn = plist_array_get_item(arr, i);
        uint32_t m;

        if (plist_get_node_type(rdn) != PLIST_ARRAY || plist_array_get_size(rdn) == 0)
            return scepter_err(err, SCEPTER_EINVAL, "Subject",
                               "Subject[%u]: expected a non-empty array of [OID, value] pairs", i);
        m = plist_array_get_size(rdn);
        for (uint32_t j = 0; j < m; j++) {
            plist_t pair = plist_array_get_item(rdn, j);
            plist_t k, v;
            const char *ks, *vs;

            if (plist_get_node_type(pair) != PLIST_ARRAY || plist_array_get_size(pair) != 2 ||
                plist_get_node_type(k = plist_array_get_item(pair, 0)) != PLIST_STRING ||
                plist_get_node_type(v = plist_array_get_item(pair, 1)) != PLIST_STRING)
                return scepter_err(err, SCEPTER_EINVAL, "Subject",
                                   "Subject[%u][%u]: expected [OID string, value string]", i, j);
            ks = plist_get_string_ptr(k, NULL);
            vs = plist_get_string_ptr(v, NULL);
            if (X509_NAME_add_entry_by_txt(name, ks, MBSTRING_UTF8, (const unsigned char *)vs, -1,
                                           -1, j == 0 ? 0 : -1) != 1) {
                ERR_clear_error();
                return scepter_err(err, SCEPTER_EINVAL, "Subject",
                                   "Subject[%u][%u]: \"%s\" is not an OID or a known attribute "
                                   "(C, L, ST, O, OU, CN), or \"%s\" is not valid for it",
                                   i, j, ks, vs);
            }
        }
    }
    return 0;
}

static int add_san(GENERAL_NAMES *san, const char *key, const char *val, struct scepter_error *err)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5;

    if (strcmp(key, "ntPrincipalName") == 0) {
        ASN1_TYPE *t = ASN1_TYPE_new();
        ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();

        ASN1_STRING_set(u, val, -1);
        ASN1_TYPE_set(t, V_ASN1_UTF8STRING, u);
        GENERAL_NAME_set0_othername(gn, OBJ_txt2obj(OID_UPN, 1), t);
    } else {
        int type = strcmp(key, "rfc822Name") == 0                  ? GEN_EMAIL
                   : strcmp(key, "dNSName") == 0                   ? GEN_DNS
                   : strcmp(key, "uniformResourceIdentifier") == 0 ? GEN_URI
                                                                   : -1;
        if (type < 0) {
            GENERAL_NAME_free(gn);
            return scepter_err(err, SCEPTER_EINVAL, "SubjectAltName",
                               "SubjectAltName.%s: unknown key (rfc822Name, dNSName, "
                               "uniformResourceIdentifier, ntPrincipalName)",
                               key);
        }
        ia5 = ASN1_IA5STRING_new();
        ASN1_STRING_set(ia5, val, -1);
        GENERAL_NAME_set0_value(gn, type, ia5);
    }
    sk_GENERAL_NAME_push(san, gn);
    return 0;
}

static int parse_san(plist_t dict, GENERAL_NAMES **out, struct scepter_error *err)
{
    plist_dict_iter it = NULL;
    char *key = NULL;
    plist_t val = NULL;
    GENERAL_NAMES *san = GENERAL_NAMES_new();
    int rc = 0;

    plist_dict_new_iter(dict, &it);
    for (;;) {
        plist_dict_next_item(dict, it, &key, &val);
        if (key == NULL)
            break;
        if (plist_get_node_type(val) == PLIST_STRING) {
            rc = add_san(san, key, plist_get_string_ptr(val, NULL), err);
        } else if (plist_get_node_type(val) == PLIST_ARRAY) {
            for (uint32_t i = 0; rc == 0 && i < plist_array_get_size(val); i++) {
                plist_t s = plist_array_get_item(val, i);
                if (plist_get_node_type(s) != PLIST_STRING)
                    rc = scepter_err(err, SCEPTER_EINVAL, "SubjectAltName",
                                     "SubjectAltName.%s[%u]: expected string", key, i);
                else
                    rc = add_san(san, key, plist_get_string_ptr(s, NULL), err);
            }
        } else {
            rc = scepter_err(err, SCEPTER_EINVAL, "SubjectAltName",
                             "SubjectAltName.%s: expected a string or an array of strings", key);
        }
        free(key);
        key = NULL;
        if (rc != 0)
            break;
    }
    free(it);
    if (rc == 0 && sk_GENERAL_NAME_num(san) > 0) {
        *out = san;
        san = NULL;
    }
    GENERAL_NAMES_free(san);
    return rc;
}

int sim_scep_request_from_plist(plist_t c, struct sim_scep_request *out, struct scepter_error *err)
{
    const char *url = NULL, *name = NULL, *challenge = NULL, *ktype = NULL;
    const unsigned char *fp = NULL;
    size_t fplen = 0;
    uint64_t keysize = 1024, usage = 0, retries = 3, delay = 10;
    plist_t subject = NULL, san = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (c == NULL || plist_get_node_type(c) != PLIST_DICT)
        return scepter_err(err, SCEPTER_EINVAL, "PayloadContent",
                           "PayloadContent: a SCEP payload's PayloadContent must be a dict");
    if ((rc = plistx_get_string(c, "URL", true, &url, err)) != 0 ||
        (rc = plistx_get_string(c, "Name", false, &name, err)) < 0 ||
        (rc = plistx_get_string(c, "Challenge", false, &challenge, err)) < 0 ||
        (rc = plistx_get_array(c, "Subject", false, &subject, err)) < 0 ||
        (rc = plistx_get_uint(c, "Keysize", false, &keysize, err)) < 0 ||
        (rc = plistx_get_string(c, "Key Type", false, &ktype, err)) < 0 ||
        (rc = plistx_get_uint(c, "Key Usage", false, &usage, err)) < 0 ||
        (rc = plistx_get_data(c, "CAFingerprint", false, &fp, &fplen, err)) < 0 ||
        (rc = plistx_get_uint(c, "Retries", false, &retries, err)) < 0 ||
        (rc = plistx_get_uint(c, "RetryDelay", false, &delay, err)) < 0 ||
        (rc = plistx_get_dict(c, "SubjectAltName", false, &san, err)) < 0)
        goto out;
    rc = 0;
    if (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://")) {
        rc = scepter_err(err, SCEPTER_EINVAL, "URL", "URL: \"%s\" is not an http(s) URL", url);
        goto out;
    }
    if (keysize != 1024 && keysize != 2048 && keysize != 4096) {
        rc = scepter_err(err, SCEPTER_EINVAL, "Keysize",
                         "Keysize: %llu is not one of 1024, 2048, 4096",
                         (unsigned long long)keysize);
        goto out;
    }
    if (ktype && strcmp(ktype, "RSA") != 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "Key Type", "Key Type: \"%s\" is not RSA", ktype);
        goto out;
    }
    if (usage != 0 && usage != 1 && usage != 4 && usage != 5) {
        rc = scepter_err(err, SCEPTER_EINVAL, "Key Usage",
                         "Key Usage: %llu is not one of 0, 1, 4, 5", (unsigned long long)usage);
        goto out;
    }
    if (fp && fplen != 16 && fplen != 20 && fplen != 32) {
        rc = scepter_err(err, SCEPTER_EINVAL, "CAFingerprint",
                         "CAFingerprint: %zu bytes is not an MD5, SHA-1 or SHA-256 hash", fplen);
        goto out;
    }
    if (retries > 100 || delay > 3600) {
        rc = scepter_err(err, SCEPTER_EINVAL, retries > 100 ? "Retries" : "RetryDelay",
                         "%s: %llu is out of range", retries > 100 ? "Retries" : "RetryDelay",
                         (unsigned long long)(retries > 100 ? retries : delay));
        goto out;
    }
    out->subject = X509_NAME_new();
    if (subject && (rc = parse_subject(subject, out->subject, err)) != 0)
        goto out;
    if (san && (rc = parse_san(san, &out->san, err)) != 0)
        goto out;
    out->url = xstrdup(url);
    out->name = name ? xstrdup(name) : NULL;
    out->challenge = challenge ? xstrdup(challenge) : NULL;
    out->keysize = (int)keysize;
    out->key_usage = (int)usage;
    if (fp) {
        memcpy(out->fingerprint, fp, fplen);
        out->fingerprint_len = fplen;
    }
    out->retries = (int)retries;
    out->retry_delay = (int)delay;
out:
    if (rc != 0)
        sim_scep_request_clear(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates                                                                              */

void sim_scep_result_clear(struct sim_scep_result *r)
{
    if (r == NULL)
        return;
    X509_free(r->cert);
    EVP_PKEY_free(r->key);
    sk_X509_pop_free(r->ca, X509_free);
    memset(r, 0, sizeof(*r));
    r->fail_info = -1;
}

STACK_OF(X509) *sim_scep_parse_cacert(const void *data, size_t len, struct scepter_error *err)
{
    const unsigned char *p = data;
    STACK_OF(X509) *out = NULL;
    X509 *one;
    CMS_ContentInfo *cms = NULL;
    BIO *bio;

    if (len == 0 || len > (1u << 20)) {
        scepter_err(err, SCEPTER_EINVAL, "GetCACert", "GetCACert: empty or oversized reply");
        return NULL;
    }
    one = d2i_X509(NULL, &p, (long)len);
    if (one && p == (const unsigned char *)data + len) {
        out = sk_X509_new_null();
        sk_X509_push(out, one);
        return out;
    }
    X509_free(one);
    ERR_clear_error();
    bio = BIO_new_mem_buf(data, (int)len);
    cms = d2i_CMS_bio(bio, NULL);
    BIO_free(bio);
    if (cms)
        out = CMS_get1_certs(cms);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    if (out == NULL || sk_X509_num(out) == 0) {
        sk_X509_pop_free(out, X509_free);
        scepter_err(err, SCEPTER_EINVAL, "GetCACert",
                    "GetCACert: the reply is neither a DER certificate nor a PKCS#7 chain");
        return NULL;
    }
    return out;
}

static bool has_ku(X509 *c, uint32_t bit)
{
    uint32_t ku = X509_get_key_usage(c);

    return ku == UINT32_MAX || (ku & bit) != 0; /* no extension: any usage */
}

int sim_scep_pick_certs(STACK_OF(X509) *certs, X509 **encrypt, X509 **sign, X509 **ca,
                        struct scepter_error *err)
{
    X509 *c_ca = NULL, *c_enc = NULL, *c_sig = NULL;
    int n = certs ? sk_X509_num(certs) : 0;

    for (int i = 0; i < n; i++) {
        X509 *c = sk_X509_value(certs, i);
        if (X509_check_ca(c) > 0) {
            /* Prefer an intermediate (the issuer) over a self-signed root listed with it. */
            if (c_ca == NULL || (X509_check_issued(c, c) != X509_V_OK))
                c_ca = c;
            continue;
        }
        if (c_enc == NULL && has_ku(c, KU_KEY_ENCIPHERMENT))
            c_enc = c;
        if (c_sig == NULL && has_ku(c, KU_DIGITAL_SIGNATURE))
            c_sig = c;
    }
    if (c_ca == NULL && n == 1)
        c_ca = sk_X509_value(certs, 0);
    if (c_ca == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "GetCACert",
                           "GetCACert: no CA certificate among the %d returned", n);
    *ca = c_ca;
    *encrypt = c_enc ? c_enc : c_ca;
    *sign = c_sig ? c_sig : c_ca;
    return 0;
}

bool sim_scep_fingerprint_matches(STACK_OF(X509) *certs, const unsigned char *fp, size_t len)
{
    const EVP_MD *md = len == 16   ? EVP_md5()
                       : len == 20 ? EVP_sha1()
                       : len == 32 ? EVP_sha256()
                                   : NULL;

    if (md == NULL)
        return false;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned dl = 0;

        if (X509_digest(sk_X509_value(certs, i), md, d, &dl) == 1 && dl == len &&
            CRYPTO_memcmp(d, fp, len) == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* The CSR and the temporary signer                                                          */

static EVP_PKEY *rsa_keygen(int bits)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);

    if (ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1)
        EVP_PKEY_keygen(ctx, &key);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

X509_REQ *sim_scep_make_csr(const struct sim_scep_request *req, EVP_PKEY *key,
                            struct scepter_error *err)
{
    X509_REQ *csr = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext;
    bool ok = false;

    if (X509_REQ_set_version(csr, 0) != 1 || X509_REQ_set_subject_name(csr, req->subject) != 1 ||
        X509_REQ_set_pubkey(csr, key) != 1)
        goto out;
    if (req->challenge && X509_REQ_add1_attr_by_NID(csr, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                                    (const unsigned char *)req->challenge, -1) != 1)
        goto out;
    if (req->san) {
        ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, req->san);
        if (ext == NULL)
            goto out;
        sk_X509_EXTENSION_push(exts, ext);
    }
    if (req->key_usage) {
        ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
        if (req->key_usage & 1)
            ASN1_BIT_STRING_set_bit(bs, 0, 1); /* digitalSignature */
        if (req->key_usage & 4)
            ASN1_BIT_STRING_set_bit(bs, 2, 1); /* keyEncipherment */
        ext = X509V3_EXT_i2d(NID_key_usage, 1, bs);
        ASN1_BIT_STRING_free(bs);
        if (ext == NULL)
            goto out;
        sk_X509_EXTENSION_push(exts, ext);
    }
    if (sk_X509_EXTENSION_num(exts) > 0 && X509_REQ_add_extensions(csr, exts) != 1)
        goto out;
    if (X509_REQ_sign(csr, key, EVP_sha256()) <= 0)
        goto out;
    ok = true;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!ok) {
        scepter_err(err, SCEPTER_ECRYPTO, "csr", "cannot build the certificate request");
        scepter_err_openssl(err);
        X509_REQ_free(csr);
        return NULL;
    }
    return csr;
}

static X509 *self_signed(X509_NAME *subject, EVP_PKEY *key, long long now)
{
    X509 *c = X509_new();
    X509_NAME *name = NULL;
    unsigned char serial[8];
    BIGNUM *bn;

    if (X509_NAME_entry_count(subject) == 0) {
        name = X509_NAME_new();
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"SCEP SIGNER",
                                   -1, -1, 0);
        subject = name;
    }
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
    BN_free(bn);
    X509_set_version(c, 2);
    X509_set_subject_name(c, subject);
    X509_set_issuer_name(c, subject);
    X509_time_adj_ex(X509_getm_notBefore(c), 0, -3600, (time_t *)&now);
    X509_time_adj_ex(X509_getm_notAfter(c), 1, 0, (time_t *)&now);
    X509_set_pubkey(c, key);
    X509_NAME_free(name);
    if (X509_sign(c, key, EVP_sha256()) <= 0) {
        X509_free(c);
        return NULL;
    }
    return c;
}

/* ---------------------------------------------------------------------------------------- */
/* pkiMessage                                                                                */

static int add_printable(CMS_SignerInfo *si, const char *oid, const char *val)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int ok = CMS_signed_add1_attr_by_OBJ(si, obj, V_ASN1_PRINTABLESTRING, val, (int)strlen(val));

    ASN1_OBJECT_free(obj);
    return ok;
}

/*
 * Envelope inner (DER) to recip, then sign it with signer/key, adding the SCEP attributes.
 * Returns the DER pkiMessage (caller frees) or NULL.
 */
static unsigned char *make_pki_message(int type, const unsigned char *inner, size_t inner_len,
                                       X509 *recip, const EVP_CIPHER *cipher, const EVP_MD *md,
                                       X509 *signer, EVP_PKEY *key, const char *tid,
                                       const unsigned char nonce[16], size_t *outlen)
{
    BIO *in = NULL, *env_bio = NULL;
    CMS_ContentInfo *env = NULL, *sd = NULL;
    STACK_OF(X509) *recips = sk_X509_new_null();
    CMS_SignerInfo *si;
    unsigned char *env_der = NULL, *out = NULL;
    int env_len, len;
    char mt[8];
    ASN1_OBJECT *obj;

    sk_X509_push(recips, recip);
    in = BIO_new_mem_buf(inner, (int)inner_len);
    env = CMS_encrypt(recips, in, cipher, CMS_BINARY);
    if (env == NULL)
        goto out;
    env_len = i2d_CMS_ContentInfo(env, &env_der);
    if (env_len <= 0)
        goto out;
    sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (sd == NULL)
        goto out;
    si = CMS_add1_signer(sd, signer, key, md, CMS_PARTIAL | CMS_NOSMIMECAP);
    if (si == NULL)
        goto out;
    snprintf(mt, sizeof(mt), "%d", type);
    obj = OBJ_txt2obj(OID_SENDER_NONCE, 1);
    if (add_printable(si, OID_MESSAGE_TYPE, mt) != 1 ||
        add_printable(si, OID_TRANSACTION_ID, tid) != 1 ||
        CMS_signed_add1_attr_by_OBJ(si, obj, V_ASN1_OCTET_STRING, nonce, 16) != 1) {
        ASN1_OBJECT_free(obj);
        goto out;
    }
    ASN1_OBJECT_free(obj);
    env_bio = BIO_new_mem_buf(env_der, env_len);
    if (CMS_final(sd, env_bio, NULL, CMS_BINARY) != 1)
        goto out;
    len = i2d_CMS_ContentInfo(sd, &out);
    if (len <= 0) {
        out = NULL;
        goto out;
    }
    *outlen = (size_t)len;
out:
    sk_X509_free(recips);
    BIO_free(in);
    BIO_free(env_bio);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(sd);
    OPENSSL_free(env_der);
    if (out) {
        unsigned char *copy = xmemdup(out, *outlen);
        OPENSSL_free(out);
        return copy;
    }
    return NULL;
}

void sim_scep_msg_clear(struct sim_scep_msg *m)
{
    if (m == NULL)
        return;
    free(m->content);
    X509_free(m->signer);
    memset(m, 0, sizeof(*m));
    m->pki_status = -1;
    m->fail_info = -1;
}

static ASN1_TYPE *signed_attr(CMS_SignerInfo *si, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    X509_ATTRIBUTE *a;

    ASN1_OBJECT_free(obj);
    if (idx < 0)
        return NULL;
    a = CMS_signed_get_attr(si, idx);
    return a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
}

static int attr_int(CMS_SignerInfo *si, const char *oid, int *out)
{
    ASN1_TYPE *t = signed_attr(si, oid);
    char buf[16];
    int64_t v;
    const ASN1_STRING *s;

    if (t == NULL)
        return 1;
    if (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING &&
        t->type != V_ASN1_IA5STRING)
        return -1;
    s = t->value.asn1_string;
    if (ASN1_STRING_length(s) <= 0 || (size_t)ASN1_STRING_length(s) >= sizeof(buf))
        return -1;
    memcpy(buf, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    buf[ASN1_STRING_length(s)] = '\0';
    if (str_to_i64(buf, 0, 1000, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static bool attr_nonce(CMS_SignerInfo *si, const char *oid, unsigned char out[16])
{
    ASN1_TYPE *t = signed_attr(si, oid);

    int n;

    /* RFC 8894 nonces are 16 bytes; some clients send 8 (kept zero-padded). */
    if (t == NULL || t->type != V_ASN1_OCTET_STRING)
        return false;
    n = ASN1_STRING_length(t->value.octet_string);
    if (n <= 0 || n > 16)
        return false;
    memset(out, 0, 16);
    memcpy(out, ASN1_STRING_get0_data(t->value.octet_string), (size_t)n);
    return true;
}

int sim_scep_msg_parse(const void *der, size_t len, STACK_OF(X509) *verify_with,
                       struct sim_scep_msg *out, struct scepter_error *err)
{
    BIO *in = BIO_new_mem_buf(der, (int)len), *content = BIO_new(BIO_s_mem()), *dcont = NULL;
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    STACK_OF(X509) *signers = NULL;
    CMS_SignerInfo *si;
    ASN1_OCTET_STRING **pos;
    ASN1_TYPE *tid;
    char *p;
    long n;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->pki_status = out->fail_info = out->message_type = -1;
    cms = d2i_CMS_bio(in, NULL);
    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        rc = scepter_err(err, SCEPTER_EINVAL, "pkiMessage", "pkiMessage: not a CMS SignedData");
        goto out;
    }
    pos = CMS_get0_content(cms);
    if (pos == NULL || *pos == NULL)
        dcont = BIO_new_mem_buf("", 0); /* FAILURE/PENDING replies may carry no content */
    if (CMS_verify(cms, verify_with, NULL, dcont, content,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "pkiMessage",
                         "pkiMessage: the signature does not verify");
        scepter_err_openssl(err);
        goto out;
    }
    signers = CMS_get0_signers(cms);
    if (signers == NULL || sk_X509_num(signers) != 1) {
        rc = scepter_err(err, SCEPTER_EINVAL, "pkiMessage", "pkiMessage: expected one signer");
        goto out;
    }
    if (verify_with) {
        bool known = false;
        for (int i = 0; i < sk_X509_num(verify_with); i++)
            if (X509_cmp(sk_X509_value(verify_with, i), sk_X509_value(signers, 0)) == 0)
                known = true;
        if (!known) {
            rc = scepter_err(err, SCEPTER_ECRYPTO, "pkiMessage",
                             "pkiMessage: signed by a certificate that is not the CA's or RA's");
            goto out;
        }
    }
    out->signer = sk_X509_value(signers, 0);
    X509_up_ref(out->signer);
    sis = CMS_get0_SignerInfos(cms);
    si = sk_CMS_SignerInfo_value(sis, 0);
    if (attr_int(si, OID_MESSAGE_TYPE, &out->message_type) != 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "messageType",
                         "pkiMessage: messageType attribute missing or malformed");
        goto out;
    }
    if (attr_int(si, OID_PKI_STATUS, &out->pki_status) < 0 ||
        attr_int(si, OID_FAIL_INFO, &out->fail_info) < 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "pkiStatus",
                         "pkiMessage: pkiStatus or failInfo attribute malformed");
        goto out;
    }
    tid = signed_attr(si, OID_TRANSACTION_ID);
    if (tid && tid->type == V_ASN1_PRINTABLESTRING &&
        (size_t)ASN1_STRING_length(tid->value.printablestring) < sizeof(out->transaction_id)) {
        memcpy(out->transaction_id, ASN1_STRING_get0_data(tid->value.printablestring),
               (size_t)ASN1_STRING_length(tid->value.printablestring));
    }
    out->has_sender_nonce = attr_nonce(si, OID_SENDER_NONCE, out->sender_nonce);
    out->has_recipient_nonce = attr_nonce(si, OID_RECIPIENT_NONCE, out->recipient_nonce);
    n = BIO_get_mem_data(content, &p);
    out->content = (unsigned char *)xmemdup0(p, (size_t)n);
    out->content_len = (size_t)n;
out:
    sk_X509_free(signers);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(content);
    BIO_free(dcont);
    if (rc != 0) {
        ERR_clear_error();
        sim_scep_msg_clear(out);
    }
    return rc;
}

const char *sim_scep_fail_info_name(int fail_info)
{
    switch (fail_info) {
    case 0:
        return "badAlg";
    case 1:
        return "badMessageCheck";
    case 2:
        return "badRequest";
    case 3:
        return "badTime";
    case 4:
        return "badCertId";
    default:
        return "unknown";
    }
}

/*
 * Many SCEP servers (micromdm's scep among them) still encrypt the CertRep with single DES,
 * which OpenSSL 3 keeps in its legacy provider: load it, with the default one, once per
 * process (library state, like common/crypto.c does for PKCS#12).
 */
static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;
static OSSL_PROVIDER *legacy_prov, *default_prov;

static void unload_legacy(void)
{
    if (legacy_prov)
        OSSL_PROVIDER_unload(legacy_prov);
    if (default_prov)
        OSSL_PROVIDER_unload(default_prov);
}

static void load_legacy(void)
{
    legacy_prov = OSSL_PROVIDER_load(NULL, "legacy");
    default_prov = OSSL_PROVIDER_load(NULL, "default");
    atexit(unload_legacy);
}

/* Decrypt a SUCCESS CertRep's envelope and find the certificate for key. */
static X509 *issued_cert(const struct sim_scep_msg *m, X509 *signer, EVP_PKEY *key,
                         struct scepter_error *err)
{
    BIO *in = BIO_new_mem_buf(m->content, (int)m->content_len), *out = BIO_new(BIO_s_mem());
    CMS_ContentInfo *env = NULL, *deg = NULL;
    STACK_OF(X509) *certs = NULL;
    X509 *found = NULL;
    BIO *degbio = NULL;

    pthread_once(&legacy_once, load_legacy);
    env = d2i_CMS_bio(in, NULL);
    if (env == NULL || CMS_decrypt(env, key, signer, NULL, out, CMS_BINARY) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "CertRep",
                    "CertRep: cannot decrypt the envelope with the device key");
        scepter_err_openssl(err);
        goto out;
    }
    degbio = out;
    deg = d2i_CMS_bio(degbio, NULL);
    certs = deg ? CMS_get1_certs(deg) : NULL;
    for (int i = 0; certs && i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        if (X509_check_private_key(c, key) == 1) {
            found = c;
            X509_up_ref(found);
            break;
        }
    }
    ERR_clear_error();
    if (found == NULL)
        scepter_err(err, SCEPTER_EINVAL, "CertRep",
                    "CertRep: no certificate in the reply matches the device key");
out:
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(deg);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    BIO_free(out);
    return found;
}

/* ---------------------------------------------------------------------------------------- */
/* The exchange                                                                              */

static char *op_url(const char *base, const char *op, const char *message)
{
    char *enc = message ? evhttp_encode_uri(message) : NULL;
    char *u = xasprintf("%s%soperation=%s%s%s", base, strchr(base, '?') ? "&" : "?", op,
                        enc ? "&message=" : "", enc ? enc : "");

    free(enc);
    return u;
}

/* Record the failure kind and describe it (a macro so the format stays checkable). */
#define FAIL(res, f, err, code, ...)                                                               \
    ((res)->failure = (f), scepter_err((err), (code), "URL", __VA_ARGS__))

/* Send a pkiMessage (POST if allowed, else GET with base64) and parse the CertRep. */
static int pki_operation(const struct sim_scep_request *req, const struct sim_scep_opts *opts,
                         bool post, const unsigned char *msg, size_t msglen,
                         STACK_OF(X509) *ca_certs, struct sim_scep_msg *rep,
                         struct sim_scep_result *res, struct scepter_error *err)
{
    struct sim_http_reply r;
    char *u = NULL, *b64 = NULL;
    int rc;

    if (opts->pki_lock)
        pthread_mutex_lock(opts->pki_lock);
    if (post) {
        u = op_url(req->url, "PKIOperation", NULL);
        rc = sim_http_fetch("POST", u, "application/x-pki-message", msg, msglen, opts->https_trust,
                            NULL, NULL, opts->timeout_ms, &r, err);
    } else {
        b64 = base64_encode(msg, msglen);
        u = op_url(req->url, "PKIOperation", b64);
        rc = sim_http_fetch("GET", u, NULL, NULL, 0, opts->https_trust, NULL, NULL,
                            opts->timeout_ms, &r, err);
    }
    if (opts->pki_lock)
        pthread_mutex_unlock(opts->pki_lock);
    if (rc != 0) {
        res->failure = SIM_SCEP_UNREACHABLE;
        goto out;
    }
    if (r.status != 200) {
        char st[16];
        snprintf(st, sizeof(st), "%d", r.status);
        rc = FAIL(res, SIM_SCEP_BAD_RESPONSE, err, SCEPTER_EIO,
                  "SCEP server answered PKIOperation with HTTP %s: %.120s", st,
                  (const char *)r.body);
        sim_http_reply_clear(&r);
        goto out;
    }
    rc = sim_scep_msg_parse(r.body, r.len, ca_certs, rep, err);
    sim_http_reply_clear(&r);
    if (rc != 0)
        res->failure = SIM_SCEP_BAD_RESPONSE;
out:
    free(u);
    free(b64);
    return rc;
}

static unsigned char *issuer_and_subject(X509_NAME *issuer, X509_NAME *subject, size_t *len)
{
    unsigned char *a = NULL, *b = NULL, *out;
    int la = i2d_X509_NAME(issuer, &a), lb = i2d_X509_NAME(subject, &b);
    size_t body = (size_t)la + (size_t)lb, hdr;

    out = xmalloc(body + 6);
    out[0] = 0x30;
    if (body < 128) {
        out[1] = (unsigned char)body;
        hdr = 2;
    } else if (body < 256) {
        out[1] = 0x81;
        out[2] = (unsigned char)body;
        hdr = 3;
    } else {
        out[1] = 0x82;
        out[2] = (unsigned char)(body >> 8);
        out[3] = (unsigned char)body;
        hdr = 4;
    }
    memcpy(out + hdr, a, (size_t)la);
    memcpy(out + hdr + la, b, (size_t)lb);
    *len = hdr + body;
    OPENSSL_free(a);
    OPENSSL_free(b);
    return out;
}

int sim_scep_enroll(const struct sim_scep_request *req, const struct sim_scep_opts *opts,
                    struct sim_scep_result *res, struct scepter_error *err)
{
    struct sim_http_reply r = {0};
    char *u = NULL, *tid = NULL;
    bool post = false, aes = false, sha256 = false;
    X509 *enc = NULL, *sig = NULL, *ca = NULL, *signer = NULL;
    EVP_PKEY *key = NULL;
    X509_REQ *csr = NULL;
    unsigned char *csr_der = NULL, *msg = NULL, *inner = NULL;
    size_t msglen = 0, inner_len = 0;
    int csr_len, rc;
    unsigned char nonce[16], spki_hash[32];
    struct sim_scep_msg rep;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;

    memset(res, 0, sizeof(*res));
    res->fail_info = -1;
    memset(&rep, 0, sizeof(rep));

    /* GetCACaps: an error here is not fatal (old servers), but unreachable is. */
    u = op_url(req->url, "GetCACaps", NULL);
    rc = sim_http_fetch("GET", u, NULL, NULL, 0, opts->https_trust, NULL, NULL, opts->timeout_ms,
                        &r, err);
    free(u);
    u = NULL;
    if (rc != 0) {
        res->failure = SIM_SCEP_UNREACHABLE;
        goto out;
    }
    if (r.status == 200) {
        post = memmem(r.body, r.len, "POSTPKIOperation", 16) != NULL;
        aes = memmem(r.body, r.len, "AES", 3) != NULL;
        sha256 = memmem(r.body, r.len, "SHA-256", 7) != NULL ||
                 memmem(r.body, r.len, "SCEPStandard", 12) != NULL;
    }
    sim_http_reply_clear(&r);

    u = op_url(req->url, "GetCACert", req->name);
    rc = sim_http_fetch("GET", u, NULL, NULL, 0, opts->https_trust, NULL, NULL, opts->timeout_ms,
                        &r, err);
    free(u);
    u = NULL;
    if (rc != 0) {
        res->failure = SIM_SCEP_UNREACHABLE;
        goto out;
    }
    if (r.status != 200) {
        char st[16];
        snprintf(st, sizeof(st), "%d", r.status);
        rc = FAIL(res, SIM_SCEP_BAD_CA, err, SCEPTER_EIO,
                  "SCEP server answered GetCACert with HTTP %s", st);
        goto out;
    }
    res->ca = sim_scep_parse_cacert(r.body, r.len, err);
    if (res->ca == NULL) {
        res->failure = SIM_SCEP_BAD_CA;
        rc = SCEPTER_EINVAL;
        goto out;
    }
    if ((rc = sim_scep_pick_certs(res->ca, &enc, &sig, &ca, err)) != 0) {
        res->failure = SIM_SCEP_BAD_CA;
        goto out;
    }
    if (req->fingerprint_len &&
        !sim_scep_fingerprint_matches(res->ca, req->fingerprint, req->fingerprint_len)) {
        char *hex = hex_encode(req->fingerprint, req->fingerprint_len, false);
        rc = FAIL(res, SIM_SCEP_FINGERPRINT, err, SCEPTER_ECRYPTO,
                  "CAFingerprint: %s matches no CA certificate returned by the SCEP server", hex);
        if (err)
            str_copy(err->field, sizeof(err->field), "CAFingerprint");
        free(hex);
        goto out;
    }

    /* The key stays on the device (or, in scale mode, one key is shared by every device). */
    if (opts->reuse_key) {
        key = opts->reuse_key;
        EVP_PKEY_up_ref(key);
    } else {
        key = rsa_keygen(req->keysize);
    }
    if (key == NULL) {
        rc = FAIL(res, SIM_SCEP_INTERNAL, err, SCEPTER_ECRYPTO, "cannot generate an RSA key");
        goto out;
    }
    csr = sim_scep_make_csr(req, key, err);
    if (csr == NULL) {
        res->failure = SIM_SCEP_INTERNAL;
        rc = SCEPTER_ECRYPTO;
        goto out;
    }
    signer = self_signed(req->subject, key, opts->now ? opts->now : (long long)time(NULL));
    csr_len = i2d_X509_REQ(csr, &csr_der);
    if (signer == NULL || csr_len <= 0) {
        rc = FAIL(res, SIM_SCEP_INTERNAL, err, SCEPTER_ECRYPTO,
                  "cannot build the SCEP signer certificate");
        goto out;
    }
    {
        /* transactionID: hash of the public key (plus a nonce when the key is shared). */
        unsigned char *spki = NULL;
        int sl = i2d_PUBKEY(key, &spki);
        unsigned char salt[8] = {0};
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();

        if (opts->reuse_key)
            RAND_bytes(salt, sizeof(salt));
        EVP_DigestInit_ex(mctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(mctx, spki, (size_t)(sl > 0 ? sl : 0));
        if (opts->reuse_key)
            EVP_DigestUpdate(mctx, salt, sizeof(salt));
        EVP_DigestFinal_ex(mctx, spki_hash, NULL);
        EVP_MD_CTX_free(mctx);
        OPENSSL_free(spki);
        tid = hex_encode(spki_hash, sizeof(spki_hash), true);
    }
    cipher = aes ? EVP_aes_128_cbc() : EVP_des_ede3_cbc();
    md = sha256 ? EVP_sha256() : EVP_sha1();
    RAND_bytes(nonce, sizeof(nonce));
    msg = make_pki_message(MSG_PKCSREQ, csr_der, (size_t)csr_len, enc, cipher, md, signer, key, tid,
                           nonce, &msglen);
    if (msg == NULL) {
        rc = FAIL(res, SIM_SCEP_INTERNAL, err, SCEPTER_ECRYPTO, "cannot build the PKCSReq message");
        scepter_err_openssl(err);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        sim_scep_msg_clear(&rep);
        rc = pki_operation(req, opts, post, msg, msglen, res->ca, &rep, res, err);
        if (rc != 0)
            goto out;
        if (rep.message_type != MSG_CERTREP || strcmp(rep.transaction_id, tid) != 0 ||
            (rep.has_recipient_nonce && memcmp(rep.recipient_nonce, nonce, 16) != 0)) {
            rc = FAIL(res, SIM_SCEP_BAD_RESPONSE, err, SCEPTER_EINVAL,
                      "SCEP reply is not a CertRep for this transaction");
            goto out;
        }
        if (rep.pki_status == 0) {
            res->cert = issued_cert(&rep, signer, key, err);
            if (res->cert == NULL) {
                res->failure = SIM_SCEP_BAD_RESPONSE;
                rc = SCEPTER_ECRYPTO;
                goto out;
            }
            res->key = key;
            key = NULL;
            rc = 0;
            goto out;
        }
        if (rep.pki_status == 2) {
            res->failure = SIM_SCEP_REJECTED;
            res->fail_info = rep.fail_info;
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Challenge",
                             "the SCEP server rejected the request (failInfo %s): wrong "
                             "challenge, duplicate subject or a policy refusal",
                             sim_scep_fail_info_name(rep.fail_info));
            goto out;
        }
        if (rep.pki_status != 3) {
            rc = FAIL(res, SIM_SCEP_BAD_RESPONSE, err, SCEPTER_EINVAL,
                      "CertRep: pkiStatus missing or unknown");
            goto out;
        }
        /* PENDING: poll with CertPoll; the first retry is immediate. */
        if (attempt >= req->retries) {
            res->failure = SIM_SCEP_PENDING;
            rc = scepter_err(err, SCEPTER_EUNAVAIL, "Retries",
                             "the SCEP request is still pending after %d retries", req->retries);
            goto out;
        }
        if (attempt > 0) {
            double scale = opts->delay_scale < 0 ? 1.0 : opts->delay_scale;
            useconds_t us = (useconds_t)((double)req->retry_delay * scale * 1e6);
            if (us > 0)
                usleep(us);
        }
        free(msg);
        free(inner);
        inner = issuer_and_subject(X509_get_subject_name(ca), req->subject, &inner_len);
        RAND_bytes(nonce, sizeof(nonce));
        msg = make_pki_message(MSG_CERTPOLL, inner, inner_len, enc, cipher, md, signer, key, tid,
                               nonce, &msglen);
        res->polls++;
        if (msg == NULL) {
            rc = FAIL(res, SIM_SCEP_INTERNAL, err, SCEPTER_ECRYPTO,
                      "cannot build the CertPoll message");
            goto out;
        }
    }
out:
    sim_http_reply_clear(&r);
    sim_scep_msg_clear(&rep);
    EVP_PKEY_free(key);
    X509_REQ_free(csr);
    X509_free(signer);
    OPENSSL_free(csr_der);
    free(msg);
    free(inner);
    free(tid);
    if (rc == 0)
        res->failure = SIM_SCEP_OK;
    return rc;
}
