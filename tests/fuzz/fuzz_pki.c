/*
 * The fuzz targets' throwaway PKI (see fuzz_pki.h).
 */
#include "fuzz_pki.h"

#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/x509v3.h>

static void need(int ok)
{
    if (!ok)
        abort();
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    need(ext != NULL);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

static X509 *issue(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long serial,
                   int ca)
{
    X509 *c = X509_new();
    X509_NAME *name;

    need(c != NULL);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 3650L * 86400);
    X509_set_pubkey(c, key);
    name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1,
                               -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    add_ext(c, issuer ? issuer : c, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    add_ext(c, issuer ? issuer : c, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
    need(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

void fuzz_pki_init(struct fuzz_pki *p)
{
    need((p->ca_key = EVP_RSA_gen(1024)) != NULL);
    need((p->dev_key = EVP_RSA_gen(1024)) != NULL);
    p->ca = issue(p->ca_key, "Fuzz CA", NULL, NULL, 1, 1);
    p->dev = issue(p->dev_key, "fuzz-device", p->ca, p->ca_key, 2, 0);
    need((p->store = X509_STORE_new()) != NULL);
    need(X509_STORE_add_cert(p->store, p->ca) == 1);
}

unsigned char *fuzz_pki_sign(const struct fuzz_pki *p, const void *body, size_t len,
                             size_t *der_len)
{
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms =
        CMS_sign(p->dev, p->dev_key, NULL, in, CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP);
    unsigned char *der = NULL;
    int n;

    need(cms != NULL);
    n = i2d_CMS_ContentInfo(cms, &der);
    need(n > 0);
    *der_len = (size_t)n;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return der;
}

unsigned char *fuzz_pki_der(X509 *cert, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);

    need(n > 0);
    *len = (size_t)n;
    return der;
}

int fuzz_pki_is_device(const struct fuzz_pki *p, X509 *cert)
{
    return X509_cmp(p->dev, cert) == 0;
}
