/*
 * Certificate and key loading.
 */
#include "crypto.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <pthread.h>

#include "file.h"
#include "xmalloc.h"

static bool looks_pem(const void *data, size_t len)
{
    return memmem(data, len, "-----BEGIN", 10) != NULL;
}

static int count_pem(const void *data, size_t len, const char *label)
{
    const char *p = data, *end = p + len;
    size_t llen = strlen(label);
    int n = 0;

    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), "-----BEGIN ", 11);
        if (hit == NULL)
            break;
        hit += 11;
        if ((size_t)(end - hit) >= llen && memcmp(hit, label, llen) == 0)
            n++;
        p = hit;
    }
    return n;
}

X509 *crypto_cert_parse(const void *data, size_t len, const char *field, struct scepter_error *err)
{
    X509 *cert = NULL;
    const char *f = field ? field : "certificate";

    if (len == 0) {
        scepter_err(err, SCEPTER_EINVAL, f, "%s: empty", f);
        return NULL;
    }
    if (looks_pem(data, len)) {
        if (memmem(data, len, "PRIVATE KEY-----", 16) != NULL) {
            scepter_err(err, SCEPTER_EINVAL, f,
                        "%s: contains a private key; upload the certificate only", f);
            return NULL;
        }
        int ncert = count_pem(data, len, "CERTIFICATE-----") +
                    count_pem(data, len, "X509 CERTIFICATE-----") +
                    count_pem(data, len, "TRUSTED CERTIFICATE-----");
        if (ncert != 1) {
            scepter_err(err, SCEPTER_EINVAL, f,
                        ncert == 0 ? "%s: no PEM certificate found"
                                   : "%s: holds %d certificates; exactly one is allowed",
                        f, ncert);
            return NULL;
        }
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        cert = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        cert = d2i_X509(NULL, &p, (long)len);
        if (cert != NULL && p != (const unsigned char *)data + len) {
            X509_free(cert);
            ERR_clear_error();
            scepter_err(err, SCEPTER_EINVAL, f,
                        "%s: trailing bytes after the DER certificate; exactly one is allowed", f);
            return NULL;
        }
    }
    if (cert == NULL) {
        scepter_err(err, SCEPTER_EINVAL, f, "%s: not a valid X.509 certificate (DER or PEM)", f);
        ERR_clear_error();
    }
    return cert;
}

X509 *crypto_cert_load(const char *path, struct scepter_error *err)
{
    STACK_OF(X509) *sk = crypto_certs_load(path, err);
    X509 *cert;

    if (sk == NULL)
        return NULL;
    cert = sk_X509_shift(sk);
    sk_X509_pop_free(sk, X509_free);
    return cert;
}

STACK_OF(X509) *crypto_certs_load(const char *path, struct scepter_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    STACK_OF(X509) *sk = NULL;

    if (file_read(path, CRYPTO_MAX_FILE, &data, &len, err) != 0)
        return NULL;
    sk = sk_X509_new_null();
    if (looks_pem(data, len)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        X509 *c;
        while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
            sk_X509_push(sk, c);
        BIO_free(bio);
        ERR_clear_error(); /* the end-of-file "no start line" */
    } else {
        const unsigned char *p = data;
        X509 *c = d2i_X509(NULL, &p, (long)len);
        if (c != NULL)
            sk_X509_push(sk, c);
        ERR_clear_error();
    }
    free(data);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        scepter_err(err, SCEPTER_ECRYPTO, NULL, "%s: no X.509 certificate found", path);
        return NULL;
    }
    return sk;
}

static int scepter_pem_pw_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    (void)rwflag;
    if (pw == NULL)
        return -1;
    size_t n = strlen(pw);
    if ((int)n > size)
        n = (size_t)size;
    memcpy(buf, pw, n);
    return (int)n;
}

EVP_PKEY *crypto_key_parse(const void *data, size_t len, const char *password,
                           struct scepter_error *err)
{
    EVP_PKEY *key = NULL;

    if (looks_pem(data, len)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        key = PEM_read_bio_PrivateKey(bio, NULL, scepter_pem_pw_cb, (void *)password);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        key = d2i_AutoPrivateKey(NULL, &p, (long)len);
    }
    if (key == NULL) {
        unsigned long e = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ ||
            ERR_GET_REASON(e) == PEM_R_BAD_DECRYPT || ERR_GET_REASON(e) == EVP_R_BAD_DECRYPT)
            scepter_err(err, SCEPTER_ECRYPTO, "key",
                        "private key is encrypted and the password is missing or wrong");
        else
            scepter_err(err, SCEPTER_ECRYPTO, "key",
                        "not a private key (PEM PKCS#1/PKCS#8 or DER expected)");
    }
    return key;
}

EVP_PKEY *crypto_key_load(const char *path, const char *password, struct scepter_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    EVP_PKEY *key;

    if (file_read(path, CRYPTO_MAX_FILE, &data, &len, err) != 0)
        return NULL;
    key = crypto_key_parse(data, len, password, err);
    OPENSSL_cleanse(data, len);
    free(data);
    if (key == NULL && err) {
        char msg[sizeof(err->msg)];
        memcpy(msg, err->msg, sizeof(msg));
        scepter_err(err, err->code, err->field, "%s: %.200s", path, msg);
    }
    return key;
}

/*
 * PKCS#12 files exported by macOS Keychain Access and older OpenSSL use RC2/3DES, which
 * OpenSSL 3 keeps in its "legacy" provider: load it (once, with the default provider) the
 * first time such a file shows up.
 */
static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;
static OSSL_PROVIDER *legacy_prov, *default_prov;

static void unload_legacy_provider(void)
{
    if (legacy_prov)
        OSSL_PROVIDER_unload(legacy_prov);
    if (default_prov)
        OSSL_PROVIDER_unload(default_prov);
    legacy_prov = default_prov = NULL;
}

static void load_legacy_provider(void)
{
    legacy_prov = OSSL_PROVIDER_load(NULL, "legacy");
    default_prov = OSSL_PROVIDER_load(NULL, "default");
    atexit(unload_legacy_provider);
}

int crypto_pkcs12_parse(const void *data, size_t len, const char *password, X509 **cert,
                        EVP_PKEY **key, STACK_OF(X509) **ca, struct scepter_error *err)
{
    const unsigned char *p = data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    STACK_OF(X509) *chain = NULL;
    int rc;

    *cert = NULL;
    *key = NULL;
    if (p12 == NULL) {
        ERR_clear_error();
        return scepter_err(err, SCEPTER_ECRYPTO, "pkcs12", "not a PKCS#12 file");
    }
    if (!PKCS12_parse(p12, password ? password : "", key, cert, &chain)) {
        ERR_clear_error();
        pthread_once(&legacy_once, load_legacy_provider);
        if (PKCS12_parse(p12, password ? password : "", key, cert, &chain))
            goto parsed;
        ERR_clear_error();
        rc = scepter_err(err, SCEPTER_ECRYPTO, "password",
                         "PKCS#12: cannot decrypt (wrong or missing password?)");
        goto out;
    }
parsed:
    if (*cert == NULL || *key == NULL) {
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
        rc = scepter_err(err, SCEPTER_ECRYPTO, "pkcs12",
                         "PKCS#12 must hold one certificate with its private key");
        goto out;
    }
    if (ca) {
        *ca = chain;
        chain = NULL;
    }
    rc = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    PKCS12_free(p12);
    return rc;
}

bool crypto_cert_matches_key(X509 *cert, EVP_PKEY *key)
{
    bool ok = X509_check_private_key(cert, key) == 1;
    ERR_clear_error();
    return ok;
}

void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int olen = CRYPTO_SHA256_LEN;
    EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL);
}

void crypto_cert_sha256_hex(X509 *cert, char out[CRYPTO_SHA256_HEX_LEN])
{
    unsigned char md[CRYPTO_SHA256_LEN];
    unsigned int n = sizeof(md);
    static const char digits[] = "0123456789abcdef";

    X509_digest(cert, EVP_sha256(), md, &n);
    for (unsigned int i = 0; i < CRYPTO_SHA256_LEN; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

unsigned char *crypto_cert_der(X509 *cert, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    unsigned char *copy;

    if (n <= 0)
        return NULL;
    copy = xmemdup(der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return copy;
}

char *crypto_cert_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL, *copy;
    long n;

    PEM_write_bio_X509(bio, cert);
    n = BIO_get_mem_data(bio, &p);
    copy = xmemdup0(p, (size_t)n);
    BIO_free(bio);
    return copy;
}

static long long asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (long long)timegm(&tm);
}

long long crypto_cert_not_after(X509 *cert)
{
    return asn1_time_unix(X509_get0_notAfter(cert));
}

long long crypto_cert_not_before(X509 *cert)
{
    return asn1_time_unix(X509_get0_notBefore(cert));
}

char *crypto_cert_subject(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL, *copy;
    long n;

    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    n = BIO_get_mem_data(bio, &p);
    copy = xmemdup0(p, (size_t)n);
    BIO_free(bio);
    return copy;
}
