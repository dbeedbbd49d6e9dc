/*
 * scep/ca.c — the certificate authority behind SCEP: loading and generating the CA, issuing
 * certificates from checked requests, GetCACert, CRLs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "scep/scep_int.h"

bool scep_ca_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > 64 || strcmp(name, "crl") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static char *read_passphrase(const char *path, const char *field, struct scepter_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;

    if (file_read(path, 4096, &data, &len, err) != 0) {
        scepter_err(err, SCEPTER_EIO, field, "%s: %s", field, err->msg);
        return NULL;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    char *pw = xmemdup0(data, len);
    OPENSSL_cleanse(data, len);
    free(data);
    if (memchr(pw, '\n', len) != NULL || len == 0) {
        OPENSSL_cleanse(pw, len);
        free(pw);
        scepter_err(err, SCEPTER_EINVAL, field, "%s: want one non-empty line", field);
        return NULL;
    }
    return pw;
}

static bool is_ca_cert(X509 *x)
{
    return X509_check_ca(x) >= 1;
}

int scep_ca_load(const char *name, const struct scep_ca_files *files,
                 const struct scep_ca_policy *policy, const char *prefix, struct scep_ca **out,
                 struct scepter_error *err)
{
    struct scep_ca *ca = xcalloc(1, sizeof(*ca));
    char field[64], *pw = NULL;
    int rc;

    *out = NULL;
    if (!scep_ca_name_valid(name)) {
        rc = scepter_err(err, SCEPTER_EINVAL, "name",
                         "SCEP CA name '%.70s': want 1-64 letters, digits, '-' or '_' (not "
                         "\"crl\")",
                         name ? name : "");
        goto fail;
    }
    str_copy(ca->name, sizeof(ca->name), name);
    snprintf(field, sizeof(field), "%scert_file", prefix);
    if (str_empty(files->cert_file) || str_empty(files->key_file)) {
        rc = scepter_err(err, SCEPTER_EINVAL, field,
                         "SCEP CA %s: both a certificate and a key file are needed", name);
        goto fail;
    }
    if ((ca->cert = crypto_cert_load(files->cert_file, err)) == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, field, "%s: %s", field, err->msg);
        goto fail;
    }
    if (!is_ca_cert(ca->cert) || EVP_PKEY_get_base_id(X509_get0_pubkey(ca->cert)) != EVP_PKEY_RSA) {
        rc = scepter_err(err, SCEPTER_EINVAL, field,
                         "%s: not an RSA CA certificate (basicConstraints CA:TRUE; SCEP clients "
                         "encrypt their requests to its key)",
                         field);
        goto fail;
    }
    if (!str_empty(files->passphrase_file)) {
        snprintf(field, sizeof(field), "%skey_passphrase_file", prefix);
        if ((pw = read_passphrase(files->passphrase_file, field, err)) == NULL) {
            rc = err->code;
            goto fail;
        }
    }
    snprintf(field, sizeof(field), "%skey_file", prefix);
    if ((ca->key = crypto_key_load(files->key_file, pw, err)) == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, field, "%s: %s", field, err->msg);
        goto fail;
    }
    if (!crypto_cert_matches_key(ca->cert, ca->key)) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, field, "%s: the key does not match the certificate",
                         field);
        goto fail;
    }
    if (!str_empty(files->ra_cert_file) || !str_empty(files->ra_key_file)) {
        snprintf(field, sizeof(field), "%sra_cert_file", prefix);
        if (str_empty(files->ra_cert_file) || str_empty(files->ra_key_file)) {
            rc = scepter_err(err, SCEPTER_EINVAL, field, "%s: an RA needs a certificate and a key",
                             field);
            goto fail;
        }
        if ((ca->ra_cert = crypto_cert_load(files->ra_cert_file, err)) == NULL) {
            rc = scepter_err(err, SCEPTER_ECRYPTO, field, "%s: %s", field, err->msg);
            goto fail;
        }
        if (X509_check_issued(ca->cert, ca->ra_cert) != X509_V_OK ||
            X509_verify(ca->ra_cert, X509_get0_pubkey(ca->cert)) != 1 ||
            EVP_PKEY_get_base_id(X509_get0_pubkey(ca->ra_cert)) != EVP_PKEY_RSA) {
            rc = scepter_err(err, SCEPTER_EINVAL, field,
                             "%s: the RA certificate must be an RSA certificate issued by the CA",
                             field);
            goto fail;
        }
        snprintf(field, sizeof(field), "%sra_key_file", prefix);
        if ((ca->ra_key = crypto_key_load(files->ra_key_file, NULL, err)) == NULL) {
            rc = scepter_err(err, SCEPTER_ECRYPTO, field, "%s: %s", field, err->msg);
            goto fail;
        }
        if (!crypto_cert_matches_key(ca->ra_cert, ca->ra_key)) {
            rc = scepter_err(err, SCEPTER_ECRYPTO, field,
                             "%s: the key does not match the RA certificate", field);
            goto fail;
        }
    }
    ca->validity_days = policy && policy->validity_days > 0 ? policy->validity_days : 365;
    ca->min_rsa_bits = policy && policy->min_rsa_bits > 0 ? policy->min_rsa_bits : 2048;
    if (policy && !str_empty(policy->crl_url))
        ca->crl_url = xstrdup(policy->crl_url);
    crypto_cert_sha256_hex(ca->cert, ca->fingerprint);
    if (pw) {
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
    }
    *out = ca;
    return 0;
fail:
    if (pw) {
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
    }
    scep_ca_free(ca);
    return rc;
}

void scep_ca_free(struct scep_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    X509_free(ca->ra_cert);
    EVP_PKEY_free(ca->ra_key);
    free(ca->crl_url);
    free(ca);
}

const char *scep_ca_name(const struct scep_ca *ca)
{
    return ca->name;
}

X509 *scep_ca_cert(const struct scep_ca *ca)
{
    return ca->cert;
}

void scep_ca_fingerprint(const struct scep_ca *ca, char out[65])
{
    memcpy(out, ca->fingerprint, 65);
}

/* ---------------------------------------------------------------------------------------- */
/* Extensions and serials                                                                    */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* A random positive 127-bit serial. */
static int random_serial(X509 *cert)
{
    unsigned char raw[16];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    raw[0] &= 0x7f;
    raw[0] |= 0x01; /* never a short serial */
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

void scep_serial_hex(const ASN1_INTEGER *serial, char out[SCEP_SERIAL_HEX_LEN + 1])
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;

    str_copy(out, SCEP_SERIAL_HEX_LEN + 1, hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

int scep_serial_norm(const char *in, char out[SCEP_SERIAL_HEX_LEN + 1], struct scepter_error *err)
{
    char digits[SCEP_SERIAL_HEX_LEN + 1];
    size_t n = 0;
    BIGNUM *bn = NULL;
    char *hex;

    if (in == NULL || *in == '\0')
        return scepter_err(err, SCEPTER_EINVAL, "serial", "serial: empty");
    for (const char *p = in; *p; p++) {
        if (*p == ':')
            continue;
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')) ||
            n >= SCEP_SERIAL_HEX_LEN)
            return scepter_err(err, SCEPTER_EINVAL, "serial", "serial: want at most %d hex digits",
                               SCEP_SERIAL_HEX_LEN);
        digits[n++] = *p;
    }
    digits[n] = '\0';
    if (n == 0 || BN_hex2bn(&bn, digits) == 0 || bn == NULL) {
        BN_free(bn);
        return scepter_err(err, SCEPTER_EINVAL, "serial", "serial: want hex digits");
    }
    hex = BN_bn2hex(bn);
    str_copy(out, SCEP_SERIAL_HEX_LEN + 1, hex);
    OPENSSL_free(hex);
    BN_free(bn);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Generating a CA                                                                           */

static char *pem_of_key(EVP_PKEY *key, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;

    if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(b, &data)) > 0) {
        out = xmemdup0(data, (size_t)n);
        *len = (size_t)n;
    }
    BIO_free(b);
    return out;
}

/* mkdir -p, the directories made 0700. */
static int mkdir_p(const char *dir)
{
    char *path = xstrdup(dir);
    int rc = 0;

    for (char *p = path + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(path, 0700) != 0 && errno != EEXIST)
        rc = -1;
    free(path);
    return rc;
}

int scep_ca_generate(const char *dir, const char *cn, int bits, int64_t now,
                     struct scepter_error *err)
{
    char *cert_path = xasprintf("%s/ca.pem", dir), *key_path = xasprintf("%s/ca.key", dir);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char *pem = NULL, *kpem = NULL;
    size_t klen = 0;
    time_t t = (time_t)now;
    struct stat st;
    int rc;

    if (bits < 2048 || bits > 8192) {
        rc = scepter_err(err, SCEPTER_EINVAL, "bits", "bits: between 2048 and 8192");
        goto out;
    }
    if (str_empty(cn) || strlen(cn) > 64) {
        rc = scepter_err(err, SCEPTER_EINVAL, "cn", "common name: 1 to 64 characters");
        goto out;
    }
    if (mkdir_p(dir) != 0) {
        rc = scepter_err(err, SCEPTER_EIO, "out", "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (stat(cert_path, &st) == 0 || stat(key_path, &st) == 0) {
        rc = scepter_err(err, SCEPTER_ECONFLICT, "out",
                         "%s already holds a CA (ca.pem or ca.key): not overwritten", dir);
        goto out;
    }
    if ((key = EVP_RSA_gen((unsigned)bits)) == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "RSA key generation failed");
        goto out;
    }
    cert = X509_new();
    X509_set_version(cert, 2);
    if (random_serial(cert) != 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "no random serial");
        goto out;
    }
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, -300, &t);
    X509_time_adj_ex(X509_getm_notAfter(cert), 3650, 0, &t);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    if (add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(cert, cert, NID_key_usage,
                "critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment") != 0 ||
        add_ext(cert, cert, NID_subject_key_identifier, "hash") != 0 ||
        X509_sign(cert, key, EVP_sha256()) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "signing the CA certificate failed");
        goto out;
    }
    pem = crypto_cert_pem(cert);
    kpem = pem_of_key(key, &klen);
    if (pem == NULL || kpem == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "encoding the CA failed");
        goto out;
    }
    if ((rc = file_write(key_path, kpem, klen, 0600, err)) != 0 ||
        (rc = file_write(cert_path, pem, strlen(pem), 0644, err)) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        scepter_err_openssl(err);
    if (kpem) {
        OPENSSL_cleanse(kpem, klen);
        free(kpem);
    }
    free(pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(cert_path);
    free(key_path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* GetCACert                                                                                 */

int scep_ca_getcacert(const struct scep_ca *ca, unsigned char **der, size_t *len,
                      const char **content_type, struct scepter_error *err)
{
    *der = NULL;
    *len = 0;
    if (ca->ra_cert == NULL) {
        *der = crypto_cert_der(ca->cert, len);
        *content_type = "application/x-x509-ca-cert";
        return *der ? 0 : scepter_err(err, SCEPTER_ECRYPTO, NULL, "encoding the CA failed");
    }
    X509 *certs[] = {ca->ra_cert, ca->cert};
    int rc = scep_degenerate_p7(certs, 2, der, len, err);
    *content_type = "application/x-x509-ca-ra-cert";
    return rc;
}

int scep_degenerate_p7(X509 *const *certs, size_t n, unsigned char **der, size_t *len,
                       struct scepter_error *err)
{
    PKCS7 *p7 = PKCS7_new();
    unsigned char *out = NULL;
    int l = 0, ok;

    ok = p7 && PKCS7_set_type(p7, NID_pkcs7_signed) == 1 &&
         PKCS7_content_new(p7, NID_pkcs7_data) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = PKCS7_add_certificate(p7, certs[i]) == 1;
    if (ok)
        ok = (l = i2d_PKCS7(p7, &out)) > 0;
    PKCS7_free(p7);
    if (!ok) {
        OPENSSL_free(out);
        scepter_err(err, SCEPTER_ECRYPTO, NULL, "building a certificates-only PKCS#7 failed");
        scepter_err_openssl(err);
        return err ? err->code : SCEPTER_ECRYPTO;
    }
    *der = xmemdup(out, (size_t)l);
    *len = (size_t)l;
    OPENSSL_free(out);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Issuing                                                                                   */

int scep_ca_issue(const struct scep_ca *ca, const struct scep_request *req, int64_t now, X509 **out,
                  struct scepter_error *err)
{
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req->csr);
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509 *cert = X509_new();
    time_t t = (time_t)now;
    int rc;

    *out = NULL;
    X509_set_version(cert, 2);
    if (pub == NULL || random_serial(cert) != 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "no public key or serial");
        goto out;
    }
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, -300, &t);
    X509_time_adj_ex(X509_getm_notAfter(cert), ca->validity_days, 0, &t);
    if (X509_set_pubkey(cert, pub) != 1 ||
        X509_set_subject_name(cert, X509_REQ_get_subject_name(req->csr)) != 1 ||
        X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "copying the request failed");
        goto out;
    }
    /* Of the requested extensions only subjectAltName is taken; the CA decides the rest. */
    exts = X509_REQ_get_extensions(req->csr);
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name &&
            X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) < 0)
            X509_add_ext(cert, e, -1);
    }
    bool rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
    if (add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(cert, ca->cert, NID_key_usage,
                rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature") !=
            0 ||
        add_ext(cert, ca->cert, NID_ext_key_usage, "clientAuth") != 0 ||
        add_ext(cert, ca->cert, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid:always") != 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "adding extensions failed");
        goto out;
    }
    if (ca->crl_url) {
        char *v = xasprintf("URI:%s", ca->crl_url);
        int r = add_ext(cert, ca->cert, NID_crl_distribution_points, v);
        free(v);
        if (r != 0) {
            rc =
                scepter_err(err, SCEPTER_ECRYPTO, NULL, "adding the CRL distribution point failed");
            goto out;
        }
    }
    if (X509_sign(cert, ca->key, EVP_sha256()) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "signing the certificate failed");
        goto out;
    }
    *out = cert;
    cert = NULL;
    rc = 0;
out:
    if (rc != 0)
        scepter_err_openssl(err);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_free(cert);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Recording and revoking                                                                    */

void scep_cert_info(X509 *cert, struct scep_cert_info *out)
{
    int idx;

    memset(out, 0, sizeof(*out));
    scep_serial_hex(X509_get0_serialNumber(cert), out->serial);
    out->subject = crypto_cert_subject(cert);
    out->sans = xstrdup("");
    idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
    if (idx >= 0) {
        BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long n;
        if (b && X509V3_EXT_print(b, X509_get_ext(cert, idx), 0, 0) == 1 &&
            (n = BIO_get_mem_data(b, &data)) > 0) {
            free(out->sans);
            out->sans = xmemdup0(data, (size_t)n);
        }
        BIO_free(b);
    }
    crypto_cert_sha256_hex(cert, out->sha256);
    out->not_before = crypto_cert_not_before(cert);
    out->not_after = crypto_cert_not_after(cert);
}

void scep_cert_info_clear(struct scep_cert_info *i)
{
    free(i->subject);
    free(i->sans);
    i->subject = i->sans = NULL;
}

int scep_ca_crl(const struct scep_ca *ca, const struct scep_revoked *revoked, size_t n, int64_t now,
                int64_t next_update_secs, unsigned char **der, size_t *len,
                struct scepter_error *err)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *tm = NULL;
    ASN1_INTEGER *number = NULL;
    unsigned char *out = NULL;
    X509V3_CTX ctx;
    X509_EXTENSION *aki = NULL;
    int l, rc;

    *der = NULL;
    *len = 0;
    if (crl == NULL || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "building the CRL failed");
        goto out;
    }
    tm = ASN1_TIME_set(NULL, (time_t)now);
    X509_CRL_set1_lastUpdate(crl, tm);
    ASN1_TIME_set(tm, (time_t)(now + next_update_secs));
    X509_CRL_set1_nextUpdate(crl, tm);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        BIGNUM *bn = NULL;
        ASN1_INTEGER *sn = NULL;
        if (BN_hex2bn(&bn, revoked[i].serial) == 0 || (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
            BN_free(bn);
            X509_REVOKED_free(r);
            rc = scepter_err(err, SCEPTER_EINVAL, "serial", "serial %.48s: not hex",
                             revoked[i].serial);
            goto out;
        }
        X509_REVOKED_set_serialNumber(r, sn);
        ASN1_TIME_set(tm, (time_t)revoked[i].revoked_at);
        X509_REVOKED_set_revocationDate(r, tm);
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(sn);
        BN_free(bn);
    }
    X509_CRL_sort(crl);
    number = ASN1_INTEGER_new();
    ASN1_INTEGER_set_int64(number, now);
    X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0);
    X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
    if ((aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always")) !=
        NULL)
        X509_CRL_add_ext(crl, aki, -1);
    if (X509_CRL_sign(crl, ca->key, EVP_sha256()) <= 0 || (l = i2d_X509_CRL(crl, &out)) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "signing the CRL failed");
        goto out;
    }
    *der = xmemdup(out, (size_t)l);
    *len = (size_t)l;
    rc = 0;
out:
    if (rc != 0)
        scepter_err_openssl(err);
    OPENSSL_free(out);
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(number);
    ASN1_TIME_free(tm);
    X509_CRL_free(crl);
    return rc;
}
