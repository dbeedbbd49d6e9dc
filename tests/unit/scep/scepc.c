/*
 * The test SCEP client (see scepc.h).
 */
#include "scepc.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/xmalloc.h"

EVP_PKEY *scepc_rsa(int bits)
{
    return EVP_RSA_gen((unsigned)bits);
}

EVP_PKEY *scepc_p256(void)
{
    return EVP_EC_gen("P-256");
}

X509 *scepc_self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)(cn ? cn : "scepc"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    return x;
}

static unsigned char *csr_der(const struct scepc_opts *o, int *len)
{
    X509_REQ *req = X509_REQ_new();
    unsigned char *der = NULL;

    X509_REQ_set_version(req, 0);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)(o->cn ? o->cn : "scepc"), -1, -1, 0);
    X509_REQ_set_pubkey(req, o->key);
    if (o->challenge)
        X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                  (const unsigned char *)o->challenge, -1);
    if (o->san_dns) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        char *v = xasprintf("DNS:%s", o->san_dns);
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, v));
        X509_REQ_add_extensions(req, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        free(v);
    }
    X509_REQ_sign(req, o->key, EVP_sha256());
    *len = i2d_X509_REQ(req, &der);
    X509_REQ_free(req);
    if (o->bad_csr_signature && *len > 0)
        der[*len - 1] ^= 0x55; /* the last byte of the signature */
    return der;
}

static void add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *data, int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    CMS_signed_add1_attr_by_OBJ(si, obj, type, data, len);
    ASN1_OBJECT_free(obj);
}

unsigned char *scepc_build(const struct scepc_opts *o, size_t *len)
{
    int clen = 0, elen = 0, l = 0;
    unsigned char *csr = csr_der(o, &clen), *env_der = NULL, *out = NULL, nonce[16];
    STACK_OF(X509) *recips = sk_X509_new_null();
    BIO *in = BIO_new_mem_buf(csr, clen), *ein;
    CMS_ContentInfo *env, *cms;
    CMS_SignerInfo *si;
    char type[8];
    const char *txid = o->transaction_id ? o->transaction_id : "scepc-transaction";

    sk_X509_push(recips, o->recipient);
    env = CMS_encrypt(recips, in, o->cipher ? o->cipher : EVP_aes_128_cbc(), CMS_BINARY);
    elen = i2d_CMS_ContentInfo(env, &env_der);
    ein = BIO_new_mem_buf(env_der, elen);
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    si = CMS_add1_signer(cms, o->signer_cert, o->signer_key, EVP_sha256(),
                         CMS_BINARY | CMS_NOSMIMECAP);
    snprintf(type, sizeof(type), "%d", o->msg_type ? o->msg_type : 19);
    add_attr(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING, type, (int)strlen(type));
    add_attr(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, txid, (int)strlen(txid));
    RAND_bytes(nonce, sizeof(nonce));
    add_attr(si, "2.16.840.1.113733.1.9.5", V_ASN1_OCTET_STRING, nonce, sizeof(nonce));
    if (o->signing_time) {
        ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)o->signing_time);
        CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, t->type, t, -1);
        ASN1_TIME_free(t);
    }
    CMS_final(cms, ein, NULL, CMS_BINARY);
    l = i2d_CMS_ContentInfo(cms, &out);
    *len = l > 0 ? (size_t)l : 0;
    unsigned char *ret = l > 0 ? xmemdup(out, (size_t)l) : NULL;
    OPENSSL_free(out);
    OPENSSL_free(env_der);
    OPENSSL_free(csr);
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    BIO_free(ein);
    sk_X509_free(recips);
    return ret;
}

static ASN1_STRING *attr(CMS_SignerInfo *si, const char *oid, int type)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si, obj, -3, type);
    ASN1_OBJECT_free(obj);
    return s;
}

static int str_int(ASN1_STRING *s)
{
    char buf[8] = "";
    int n = s ? ASN1_STRING_length(s) : 0;
    if (s == NULL || n <= 0 || n >= (int)sizeof(buf))
        return -1;
    memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
    return (int)strtol(buf, NULL, 10);
}

int scepc_parse_reply(const unsigned char *der, size_t len, X509 *ca, EVP_PKEY *key, X509 *cert,
                      struct scepc_reply *out)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *content = BIO_new(BIO_s_mem());
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->status = out->fail_info = -1;
    sk_X509_push(certs, ca);
    if (cms == NULL || CMS_verify(cms, certs, NULL, NULL, content, CMS_NOVERIFY | CMS_BINARY) != 1)
        goto done;
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    ASN1_STRING *s;
    if (str_int(attr(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING)) != 3)
        goto done;
    out->status = str_int(attr(si, "2.16.840.1.113733.1.9.3", V_ASN1_PRINTABLESTRING));
    out->fail_info = str_int(attr(si, "2.16.840.1.113733.1.9.4", V_ASN1_PRINTABLESTRING));
    if ((s = attr(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING)) != NULL &&
        ASN1_STRING_length(s) < (int)sizeof(out->transaction_id))
        memcpy(out->transaction_id, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    if ((s = attr(si, "2.16.840.1.113733.1.9.6", V_ASN1_OCTET_STRING)) != NULL &&
        ASN1_STRING_length(s) == 16) {
        memcpy(out->recipient_nonce, ASN1_STRING_get0_data(s), 16);
        out->has_recipient_nonce = true;
    }
    if (out->status == 0) {
        char *data;
        long n = BIO_get_mem_data(content, &data);
        const unsigned char *q = (const unsigned char *)data;
        CMS_ContentInfo *env = d2i_CMS_ContentInfo(NULL, &q, n);
        BIO *plain = BIO_new(BIO_s_mem());
        if (env && CMS_decrypt(env, key, cert, NULL, plain, CMS_BINARY) == 1) {
            char *pd;
            long pn = BIO_get_mem_data(plain, &pd);
            const unsigned char *r = (const unsigned char *)pd;
            PKCS7 *p7 = d2i_PKCS7(NULL, &r, pn);
            if (p7 && PKCS7_type_is_signed(p7) && p7->d.sign->cert &&
                sk_X509_num(p7->d.sign->cert) == 1) {
                out->cert = sk_X509_value(p7->d.sign->cert, 0);
                X509_up_ref(out->cert);
            }
            PKCS7_free(p7);
        }
        BIO_free(plain);
        CMS_ContentInfo_free(env);
        if (out->cert == NULL)
            goto done;
    }
    rc = 0;
done:
    ERR_clear_error();
    BIO_free(content);
    sk_X509_free(certs);
    CMS_ContentInfo_free(cms);
    return rc;
}
