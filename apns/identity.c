/*
 * Push certificates.  An MDM push certificate from identity.apple.com carries its APNs topic
 * as the subject UID (com.apple.mgmt.External.<uuid>).  This file loads one in the shapes
 * administrators have it — PEM certificate (with chain and, optionally, the key in the same
 * file) plus a PKCS#1/PKCS#8 key, or a PKCS#12 bundle with a password — and refuses at load
 * time what APNs would refuse later: no UID, a UID that is not an MDM topic, a certificate
 * outside its validity, a key that does not match.  It also builds the client TLS context
 * (TLS 1.2+, ALPN h2, server verification) connections are made from.
 */
#include "apns_int.h"

#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "common/crypto.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"

/* Field names used in errors: config keys for files, upload fields for bytes. */
struct id_fields {
    const char *cert, *key, *password;
};

static const struct id_fields file_fields = {"apns_cert_file", "apns_key_file",
                                             "apns_key_password"};
static const struct id_fields byte_fields = {"cert", "key", "password"};

char *apns_cert_uid(X509 *cert)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_userId, -1);
    unsigned char *utf8 = NULL;
    char *uid;
    int n;

    if (idx < 0)
        return NULL;
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (n < 0) {
        ERR_clear_error();
        return NULL;
    }
    uid = xmemdup0(utf8, (size_t)n);
    OPENSSL_free(utf8);
    return uid;
}

static bool looks_pem(const void *data, size_t len)
{
    return memmem(data, len, "-----BEGIN", 10) != NULL;
}

static void fmt_time(int64_t t, char *out, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Every certificate of a PEM text (the leaf first); NULL when there is none. */
static STACK_OF(X509) *pem_certs(const void *data, size_t len)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *c;

    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, c);
    ERR_clear_error(); /* the end-of-input "no start line" */
    BIO_free(bio);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

/* An encrypted PEM key (PKCS#8 "ENCRYPTED PRIVATE KEY" or legacy "Proc-Type: 4,ENCRYPTED"). */
static bool pem_key_encrypted(const void *data, size_t len)
{
    return memmem(data, len, "ENCRYPTED PRIVATE KEY-----", 26) != NULL ||
           memmem(data, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL;
}

/* Parse a key, telling a wrong or missing password apart from a broken key. */
static EVP_PKEY *key_parse(const void *data, size_t len, const char *password, const char *fkey,
                           const char *fpw, struct scepter_error *err)
{
    struct scepter_error kerr;
    EVP_PKEY *key = crypto_key_parse(data, len, password, &kerr);

    if (key != NULL)
        return key;
    if (pem_key_encrypted(data, len) && password == NULL)
        scepter_err(err, SCEPTER_ECRYPTO, fkey,
                    "%s: the private key is encrypted; give its password (%s)", fkey, fpw);
    else if (pem_key_encrypted(data, len))
        scepter_err(err, SCEPTER_ECRYPTO, fpw, "%s: wrong password for the encrypted private key",
                    fpw);
    else
        scepter_err(err, kerr.code, fkey, "%s: %s", fkey, kerr.msg);
    return NULL;
}

static bool is_pkcs12(const void *data, size_t len)
{
    const unsigned char *p = data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    bool ok = p12 != NULL;

    PKCS12_free(p12);
    ERR_clear_error();
    return ok;
}

/* Check the certificate the way APNs would, then fill in the derived fields. */
static int identity_check(struct apns_identity *id, int64_t now, const struct id_fields *f,
                          struct scepter_error *err)
{
    char when[32];

    id->topic = apns_cert_uid(id->cert);
    id->subject = crypto_cert_subject(id->cert);
    if (id->topic == NULL)
        return scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                           "%s: the certificate (subject %.120s) has no UID; an MDM push "
                           "certificate's subject UID is its topic (" APNS_TOPIC_PREFIX "…)",
                           f->cert, id->subject);
    if (!str_has_prefix(id->topic, APNS_TOPIC_PREFIX) ||
        strlen(id->topic) == strlen(APNS_TOPIC_PREFIX) || strlen(id->topic) > APNS_MAX_TOPIC)
        return scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                           "%s: subject UID \"%.100s\" is not an MDM push topic "
                           "(" APNS_TOPIC_PREFIX "<uuid>); is this an MDM push certificate?",
                           f->cert, id->topic);
    id->not_before = crypto_cert_not_before(id->cert);
    id->not_after = crypto_cert_not_after(id->cert);
    if (now > id->not_after) {
        fmt_time(id->not_after, when, sizeof(when));
        return scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                           "%s: the push certificate for %s expired on %s; renew it at "
                           "identity.apple.com",
                           f->cert, id->topic, when);
    }
    if (now < id->not_before) {
        fmt_time(id->not_before, when, sizeof(when));
        return scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                           "%s: the push certificate for %s is not valid before %s", f->cert,
                           id->topic, when);
    }
    if (!crypto_cert_matches_key(id->cert, id->key))
        return scepter_err(err, SCEPTER_ECRYPTO, f->key,
                           "%s: the private key does not belong to the push certificate %s", f->key,
                           id->topic);
    crypto_cert_sha256_hex(id->cert, id->sha256);
    return 0;
}

static struct apns_identity *identity_parse(const void *cert, size_t cert_len, const void *key,
                                            size_t key_len, const char *password, int64_t now,
                                            const struct id_fields *f, struct scepter_error *err)
{
    struct apns_identity *id = xcalloc(1, sizeof(*id));
    struct scepter_error kerr;
    bool have_key = key != NULL && key_len > 0;
    int rc;

    atomic_init(&id->refs, 1);
    if (cert == NULL || cert_len == 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, f->cert, "%s: empty; give the push certificate",
                         f->cert);
        goto out;
    }
    if (looks_pem(cert, cert_len)) {
        id->chain = pem_certs(cert, cert_len);
        if (id->chain == NULL) {
            rc =
                scepter_err(err, SCEPTER_ECRYPTO, f->cert, "%s: no PEM certificate found", f->cert);
            goto out;
        }
        id->cert = sk_X509_shift(id->chain);
        if (!have_key && memmem(cert, cert_len, "PRIVATE KEY-----", 16) != NULL) {
            id->key = key_parse(cert, cert_len, password, f->cert, f->password, err);
            if (id->key == NULL) {
                rc = err ? err->code : SCEPTER_ECRYPTO;
                goto out;
            }
        }
    } else {
        const unsigned char *p = cert;
        id->cert = d2i_X509(NULL, &p, (long)cert_len);
        ERR_clear_error();
        if (id->cert != NULL && p != (const unsigned char *)cert + cert_len) {
            rc = scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                             "%s: trailing bytes after the DER certificate", f->cert);
            goto out;
        }
        if (id->cert == NULL) {
            if (!is_pkcs12(cert, cert_len)) {
                rc =
                    scepter_err(err, SCEPTER_ECRYPTO, f->cert,
                                "%s: not a certificate (PEM or DER) nor a PKCS#12 bundle", f->cert);
                goto out;
            }
            if (have_key) {
                rc = scepter_err(err, SCEPTER_EINVAL, f->key,
                                 "%s: must be empty: the PKCS#12 bundle holds the key", f->key);
                goto out;
            }
            rc = crypto_pkcs12_parse(cert, cert_len, password, &id->cert, &id->key, &id->chain,
                                     &kerr);
            if (rc != 0) {
                rc = scepter_err(err, kerr.code,
                                 strcmp(kerr.field, "password") == 0 ? f->password : f->cert,
                                 "%s: %s", f->cert, kerr.msg);
                goto out;
            }
        }
    }
    if (id->chain == NULL)
        id->chain = sk_X509_new_null();
    if (have_key) {
        id->key = key_parse(key, key_len, password, f->key, f->password, err);
        if (id->key == NULL) {
            rc = err ? err->code : SCEPTER_ECRYPTO;
            goto out;
        }
    }
    if (id->key == NULL) {
        rc = scepter_err(err, SCEPTER_EINVAL, f->key,
                         "%s: no private key; give the key of the push certificate, or a "
                         "PKCS#12 bundle holding both",
                         f->key);
        goto out;
    }
    rc = identity_check(id, now, f, err);
out:
    if (rc != 0) {
        apns_identity_free(id);
        id = NULL;
    }
    return id;
}

struct apns_identity *apns_identity_parse(const void *cert, size_t cert_len, const void *key,
                                          size_t key_len, const char *password, int64_t now,
                                          struct scepter_error *err)
{
    if (password != NULL && *password == '\0')
        password = NULL;
    return identity_parse(cert, cert_len, key, key_len, password, now, &byte_fields, err);
}

static int read_field_file(const char *path, const char *field, unsigned char **data, size_t *len,
                           struct scepter_error *err)
{
    struct scepter_error ferr;

    if (file_read(path, CRYPTO_MAX_FILE, data, len, &ferr) != 0)
        return scepter_err(err, ferr.code, field, "%s: %s", field, ferr.msg);
    return 0;
}

struct apns_identity *apns_identity_load(const char *cert_file, const char *key_file,
                                         const char *password, int64_t now,
                                         struct scepter_error *err)
{
    unsigned char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    struct apns_identity *id = NULL;

    if (str_empty(cert_file)) {
        scepter_err(err, SCEPTER_EINVAL, file_fields.cert,
                    "%s: not set; give the MDM push certificate (PEM or .p12)", file_fields.cert);
        goto out;
    }
    if (read_field_file(cert_file, file_fields.cert, &cert, &cert_len, err) != 0)
        goto out;
    if (!str_empty(key_file) &&
        read_field_file(key_file, file_fields.key, &key, &key_len, err) != 0)
        goto out;
    if (password != NULL && *password == '\0')
        password = NULL;
    id = identity_parse(cert, cert_len, key, key_len, password, now, &file_fields, err);
out:
    if (key) {
        OPENSSL_cleanse(key, key_len);
        free(key);
    }
    free(cert);
    return id;
}

struct apns_identity *apns_identity_ref(struct apns_identity *id)
{
    atomic_fetch_add(&id->refs, 1);
    return id;
}

void apns_identity_free(struct apns_identity *id)
{
    if (id == NULL || atomic_fetch_sub(&id->refs, 1) != 1)
        return;
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    sk_X509_pop_free(id->chain, X509_free);
    free(id->topic);
    free(id->subject);
    free(id);
}

const char *apns_identity_topic(const struct apns_identity *id)
{
    return id->topic;
}

int64_t apns_identity_not_before(const struct apns_identity *id)
{
    return id->not_before;
}

int64_t apns_identity_not_after(const struct apns_identity *id)
{
    return id->not_after;
}

const char *apns_identity_subject(const struct apns_identity *id)
{
    return id->subject;
}

const char *apns_identity_sha256(const struct apns_identity *id)
{
    return id->sha256;
}

static char *bio_steal(BIO *bio)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *copy = xmemdup0(p, n > 0 ? (size_t)n : 0);

    BIO_free(bio);
    return copy;
}

void apns_identity_pem(const struct apns_identity *id, char **cert_pem, char **key_pem)
{
    BIO *bio = BIO_new(BIO_s_mem());

    PEM_write_bio_X509(bio, id->cert);
    for (int i = 0; i < sk_X509_num(id->chain); i++)
        PEM_write_bio_X509(bio, sk_X509_value(id->chain, i));
    *cert_pem = bio_steal(bio);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, id->key, NULL, NULL, 0, NULL, NULL);
    *key_pem = bio_steal(bio);
}

SSL_CTX *apns_tls_ctx_new(const struct apns_identity *id, const char *ca_file,
                          struct scepter_error *err)
{
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = SCEPTER_ECRYPTO;

    if (ctx == NULL) {
        scepter_err(err, SCEPTER_EINTERNAL, NULL, "TLS: cannot create a context");
        scepter_err_openssl(err);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) {
        scepter_err(err, SCEPTER_EINTERNAL, NULL, "TLS: cannot set ALPN h2");
        goto out;
    }
    if (!str_empty(ca_file)) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            scepter_err(err, SCEPTER_ECRYPTO, "apns_ca_file",
                        "apns_ca_file: cannot load CA certificates from %s: ", ca_file);
            scepter_err_openssl(err);
            goto out;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "apns_ca_file",
                    "apns_ca_file: the system trust store cannot be loaded: ");
        scepter_err_openssl(err);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, id->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, id->key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, "apns_cert_file",
                    "apns_cert_file: TLS refuses the push certificate or key: ");
        scepter_err_openssl(err);
        goto out;
    }
    for (int i = 0; i < sk_X509_num(id->chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(id->chain, i)) != 1) {
            scepter_err(err, SCEPTER_ECRYPTO, "apns_cert_file",
                        "apns_cert_file: cannot add chain certificate %d: ", i + 1);
            scepter_err_openssl(err);
            goto out;
        }
    }
    rc = 0;
out:
    if (rc != 0) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}
