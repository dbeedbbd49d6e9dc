/*
 * OpenSSL helpers shared by the modules: loading certificates and keys in the forms
 * administrators have them (PEM or DER, PKCS#1 or PKCS#8, PKCS#12 with a password),
 * fingerprints, and encoding.  Returned OpenSSL objects are the caller's to free with the
 * matching OpenSSL *_free function.
 */
#ifndef SCEPTER_COMMON_CRYPTO_H
#define SCEPTER_COMMON_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "attr.h"
#include "error.h"

#define CRYPTO_SHA256_LEN     32
#define CRYPTO_SHA256_HEX_LEN 65

/* The largest certificate/key file Scepter will read. */
#define CRYPTO_MAX_FILE (1024 * 1024)

/*
 * Parse exactly one X.509 certificate, DER or PEM.  Bytes holding a private key, several
 * certificates or anything else are refused with a reason; field names the input in errors.
 */
X509 *crypto_cert_parse(const void *data, size_t len, const char *field, struct scepter_error *err);
/* The first certificate of a PEM or DER file. */
X509 *crypto_cert_load(const char *path, struct scepter_error *err);
/* Every certificate of a PEM bundle (or the one of a DER file); at least one. */
STACK_OF(X509) *crypto_certs_load(const char *path, struct scepter_error *err);
/* A private key: PEM (PKCS#1, PKCS#8, encrypted PKCS#8 with password) or DER. */
EVP_PKEY *crypto_key_parse(const void *data, size_t len, const char *password,
                           struct scepter_error *err);
EVP_PKEY *crypto_key_load(const char *path, const char *password, struct scepter_error *err);
/* A PKCS#12 bundle with exactly one identity; *ca may be NULL if not wanted. */
int crypto_pkcs12_parse(const void *data, size_t len, const char *password, X509 **cert,
                        EVP_PKEY **key, STACK_OF(X509) **ca, struct scepter_error *err) WUR;
bool crypto_cert_matches_key(X509 *cert, EVP_PKEY *key);

void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN]);
/* SHA-256 of the certificate's DER, lower-case hex. */
void crypto_cert_sha256_hex(X509 *cert, char out[CRYPTO_SHA256_HEX_LEN]);
/* DER bytes (caller frees) or NULL. */
unsigned char *crypto_cert_der(X509 *cert, size_t *len);
/* PEM text (caller frees). */
char *crypto_cert_pem(X509 *cert);
/* notAfter as UNIX seconds. */
long long crypto_cert_not_after(X509 *cert);
long long crypto_cert_not_before(X509 *cert);
/* One-line subject, e.g. "CN=foo,O=Bar" (caller frees). */
char *crypto_cert_subject(X509 *cert);

#endif
