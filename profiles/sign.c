/*
 * CMS (PKCS#7) signing of profiles and the way back.  A signed .mobileconfig is DER
 * SignedData with the profile attached as content and the signer's certificate (and chain)
 * embedded; devices show the signer and check the signature.  profile_unwrap() does what a
 * device does with the bytes: plain plists pass through, signed ones are verified and opened.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "common/crypto.h"
#include "common/file.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

struct profile_signer {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain; /* may be empty */
};

void profile_signer_free(struct profile_signer *s)
{
    if (s == NULL)
        return;
    X509_free(s->cert);
    EVP_PKEY_free(s->key);
    sk_X509_pop_free(s->chain, X509_free);
    free(s);
}

int profile_signer_new(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
                       struct profile_signer **out, struct scepter_error *err)
{
    struct profile_signer *s;

    *out = NULL;
    if (cert == NULL || key == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "signing_cert_file",
                           "a signer needs a certificate and its key");
    if (!crypto_cert_matches_key(cert, key))
        return scepter_err(err, SCEPTER_ECRYPTO, "signing_key_file",
                           "signing_key_file: the key does not match the signing certificate");
    s = xcalloc(1, sizeof(*s));
    X509_up_ref(cert);
    s->cert = cert;
    EVP_PKEY_up_ref(key);
    s->key = key;
    s->chain = sk_X509_new_null();
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        X509_up_ref(c);
        sk_X509_push(s->chain, c);
    }
    *out = s;
    return 0;
}

int profile_signer_load(const char *cert_file, const char *key_file, const char *password,
                        struct profile_signer **out, struct scepter_error *err)
{
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    int rc;

    *out = NULL;
    if ((certs = crypto_certs_load(cert_file, err)) == NULL) {
        rc = err ? err->code : SCEPTER_ECRYPTO;
        goto out;
    }
    if ((key = crypto_key_load(key_file, password, err)) == NULL) {
        rc = err ? err->code : SCEPTER_ECRYPTO;
        goto out;
    }
    leaf = sk_X509_shift(certs);
    rc = profile_signer_new(leaf, key, certs, out, err);
out:
    X509_free(leaf);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

int profile_sign(const struct profile_signer *s, const void *data, size_t len, unsigned char **out,
                 size_t *outlen, struct scepter_error *err)
{
    BIO *in = NULL;
    CMS_ContentInfo *cms = NULL;
    unsigned char *der = NULL;
    int n, rc = 0;

    *out = NULL;
    *outlen = 0;
    if (len > INT32_MAX)
        return scepter_err(err, SCEPTER_ETOOBIG, NULL, "profile too large to sign");
    in = BIO_new_mem_buf(data, (int)len);
    /* CMS_BINARY: sign the bytes as they are (no MIME canonicalisation of line ends). */
    cms = CMS_sign(s->cert, s->key, s->chain, in, CMS_BINARY | CMS_NOSMIMECAP);
    if (cms == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "CMS signing failed: ");
        scepter_err_openssl(err);
        goto out;
    }
    if ((n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "CMS encoding failed: ");
        scepter_err_openssl(err);
        goto out;
    }
    *out = xmemdup(der, (size_t)n);
    *outlen = (size_t)n;
out:
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

/* Is this a plain plist (XML, possibly after a BOM or whitespace, or binary)? */
static bool plain_plist(const unsigned char *d, size_t len)
{
    size_t i = 0;

    if (len >= 8 && memcmp(d, "bplist00", 8) == 0)
        return true;
    if (len >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf)
        i = 3;
    while (i < len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n'))
        i++;
    return i < len && d[i] == '<';
}

int profile_unwrap(const void *data, size_t len, X509_STORE *trust, unsigned char **plist,
                   size_t *plist_len, X509 **signer, struct scepter_error *err)
{
    const unsigned char *p = data;
    CMS_ContentInfo *cms = NULL;
    BIO *outbio = NULL;
    STACK_OF(X509) *signers = NULL;
    char *content = NULL;
    long clen;
    int rc = 0;

    *plist = NULL;
    *plist_len = 0;
    if (signer)
        *signer = NULL;
    if (len == 0)
        return scepter_err(err, SCEPTER_EINVAL, "profile", "profile: empty");
    if (len > INT32_MAX)
        return scepter_err(err, SCEPTER_ETOOBIG, "profile", "profile: too large");
    if (plain_plist(data, len)) {
        *plist = (unsigned char *)xmemdup0(data, len);
        *plist_len = len;
        return 0;
    }
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms == NULL || p != (const unsigned char *)data + len) {
        ERR_clear_error();
        rc = scepter_err(err, SCEPTER_EINVAL, "profile",
                         "profile: neither a plist nor DER CMS signed data");
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        rc = scepter_err(err, SCEPTER_EINVAL, "profile",
                         "profile: CMS content is not SignedData (encrypted profiles are not "
                         "supported here)");
        goto out;
    }
    outbio = BIO_new(BIO_s_mem());
    if (CMS_verify(cms, NULL, trust, NULL, outbio,
                   CMS_BINARY | (trust ? 0 : CMS_NO_SIGNER_CERT_VERIFY)) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "profile",
                         trust ? "profile: signature or signer not trusted: "
                               : "profile: bad signature: ");
        scepter_err_openssl(err);
        goto out;
    }
    clen = BIO_get_mem_data(outbio, &content);
    if (clen <= 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "profile", "profile: signed content is empty");
        goto out;
    }
    if (signer) {
        signers = CMS_get0_signers(cms);
        if (signers && sk_X509_num(signers) > 0) {
            *signer = sk_X509_value(signers, 0);
            X509_up_ref(*signer);
        }
    }
    *plist = (unsigned char *)xmemdup0(content, (size_t)clen);
    *plist_len = (size_t)clen;
out:
    sk_X509_free(signers);
    BIO_free(outbio);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return rc;
}
