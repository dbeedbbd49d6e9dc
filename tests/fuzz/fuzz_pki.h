/*
 * A throwaway PKI for the fuzz targets (no Criterion: libFuzzer owns main): a CA, a device
 * certificate it issues, and a detached CMS signature like a device's Mdm-Signature.  Any
 * failure aborts — a target that cannot build its fixtures must not fuzz.
 */
#ifndef SCEPTER_TESTS_FUZZ_PKI_H
#define SCEPTER_TESTS_FUZZ_PKI_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct fuzz_pki {
    EVP_PKEY *ca_key, *dev_key;
    X509 *ca, *dev;    /* the CA and the device certificate it issued (CN "fuzz-device") */
    X509_STORE *store; /* trusts ca */
};

/* Make the CA, the device certificate and the store (1024-bit RSA: fixtures, not security). */
void fuzz_pki_init(struct fuzz_pki *p);
/* DER of a detached CMS SignedData over body by the device, its certificate embedded (the
 * caller frees with OPENSSL_free). */
unsigned char *fuzz_pki_sign(const struct fuzz_pki *p, const void *body, size_t len,
                             size_t *der_len);
/* DER of a certificate (the caller frees with OPENSSL_free). */
unsigned char *fuzz_pki_der(X509 *cert, size_t *len);
/* Is cert the device certificate? */
int fuzz_pki_is_device(const struct fuzz_pki *p, X509 *cert);

#endif
