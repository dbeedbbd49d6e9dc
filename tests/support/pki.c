/*
 * Throwaway PKI for tests.
 */
#include "pki.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

/* An RSA key of the given size (2048 by default). */
static EVP_PKEY *new_key(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)(bits ? bits : 2048));
    cr_assert_not_null(k, "RSA key generation failed");
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    cr_assert_not_null(ext, "extension %d=%s", nid, value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

struct tu_cert tu_cert_issue(const struct tu_cert *ca, const struct tu_cert_opts *o)
{
    struct tu_cert_opts def = {.cn = "Test", .not_after = 365L * 86400};
    struct tu_cert c = {0};
    X509_NAME *name;
    unsigned char serial[16];
    BIGNUM *bn;

    if (o == NULL)
        o = &def;
    c.key = o->ec ? EVP_EC_gen("P-256") : new_key(o->bits);
    cr_assert_not_null(c.key, "key generation failed");
    c.cert = X509_new();
    X509_set_version(c.cert, 2);
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.cert));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(c.cert), o->not_before ? o->not_before : -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.cert), o->not_after ? o->not_after : 365L * 86400);
    X509_set_pubkey(c.cert, c.key);
    name = X509_get_subject_name(c.cert);
    if (o->uid)
        X509_NAME_add_entry_by_NID(name, NID_userId, MBSTRING_UTF8, (const unsigned char *)o->uid,
                                   -1, -1, 0);
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)(o->cn ? o->cn : "Test"), -1, -1, 0);
    X509_set_issuer_name(c.cert, ca ? X509_get_subject_name(ca->cert) : name);
    if (o->ca) {
        add_ext(c.cert, ca ? ca->cert : c.cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c.cert, ca ? ca->cert : c.cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c.cert, ca ? ca->cert : c.cert, NID_basic_constraints, "CA:FALSE");
        add_ext(c.cert, ca ? ca->cert : c.cert, NID_key_usage,
                "critical,digitalSignature,keyEncipherment");
    }
    add_ext(c.cert, ca ? ca->cert : c.cert, NID_subject_key_identifier, "hash");
    if (o->san_dns || o->san_ip) {
        char san[256];
        snprintf(san, sizeof(san), "%s%s%s%s%s", o->san_dns ? "DNS:" : "",
                 o->san_dns ? o->san_dns : "", o->san_dns && o->san_ip ? "," : "",
                 o->san_ip ? "IP:" : "", o->san_ip ? o->san_ip : "");
        add_ext(c.cert, ca ? ca->cert : c.cert, NID_subject_alt_name, san);
    }
    cr_assert(X509_sign(c.cert, ca ? ca->key : c.key, EVP_sha256()) > 0);
    return c;
}

struct tu_cert tu_ca_new(const struct tu_cert_opts *opts)
{
    struct tu_cert_opts def = {.cn = "Test CA", .not_after = 3650L * 86400, .ca = true};
    struct tu_cert_opts o = opts ? *opts : def;
    o.ca = true;
    return tu_cert_issue(NULL, &o);
}

void tu_cert_free(struct tu_cert *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

char *tu_mdm_signature(const struct tu_cert *c, const void *body, size_t len)
{
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms =
        CMS_sign(c->cert, c->key, NULL, in, CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP);
    unsigned char *der = NULL;
    int n;
    char *b64;

    cr_assert_not_null(cms, "CMS_sign failed");
    n = i2d_CMS_ContentInfo(cms, &der);
    b64 = base64_encode(der, (size_t)n);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return b64;
}

char *tu_cert_pem(const struct tu_cert *c)
{
    return crypto_cert_pem(c->cert);
}

void tu_cert_write(const struct tu_cert *c, const char *cert_path, const char *key_path)
{
    FILE *fp = fopen(cert_path, "w");
    cr_assert_not_null(fp, "%s", cert_path);
    PEM_write_X509(fp, c->cert);
    fclose(fp);
    if (key_path) {
        fp = fopen(key_path, "w");
        cr_assert_not_null(fp, "%s", key_path);
        PEM_write_PrivateKey(fp, c->key, NULL, NULL, 0, NULL, NULL);
        fclose(fp);
    }
}
