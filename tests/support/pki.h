/*
 * Throwaway PKI for tests: a CA, certificates it issues (TLS servers, device identities, push
 * certificates with a UID), all in memory with the OpenSSL API, and helpers to write them as
 * PEM files.  Everything asserts success.
 */
#ifndef SCEPTER_TESTS_PKI_H
#define SCEPTER_TESTS_PKI_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct tu_cert {
    X509 *cert;
    EVP_PKEY *key;
};

struct tu_cert_opts {
    const char *cn;
    const char *uid;     /* subject UID (push certificates), or NULL */
    const char *san_dns; /* subjectAltName DNS, or NULL */
    const char *san_ip;  /* subjectAltName IP, or NULL */
    long not_before;     /* seconds from now (negative = past) */
    long not_after;      /* seconds from now */
    bool ca;
    int bits; /* RSA key size; 0 = 2048 */
    bool ec;  /* an ECDSA P-256 key instead (fast to make: many devices) */
};

/* A self-signed CA (opts may be NULL: CN "Test CA", 10 years). */
struct tu_cert tu_ca_new(const struct tu_cert_opts *opts);
/* A certificate issued by ca (ca NULL = self-signed). */
struct tu_cert tu_cert_issue(const struct tu_cert *ca, const struct tu_cert_opts *opts);
void tu_cert_free(struct tu_cert *c);
/* Write the certificate (and, with key_path, the key) as PEM. */
void tu_cert_write(const struct tu_cert *c, const char *cert_path, const char *key_path);
/* An Mdm-Signature header value: base64 of a detached CMS SignedData over body, signed by c
 * with its certificate embedded (what a device sends with SignMessage).  Caller frees. */
char *tu_mdm_signature(const struct tu_cert *c, const void *body, size_t len);
/* PEM of the certificate; caller frees. */
char *tu_cert_pem(const struct tu_cert *c);

#endif
