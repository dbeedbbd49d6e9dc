/*
 * Private to scep/: the CA value and helpers shared by ca.c and message.c.
 */
#ifndef SCEPTER_SCEP_SCEP_INT_H
#define SCEPTER_SCEP_SCEP_INT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep/scep.h"

struct scep_ca {
    char name[65];
    X509 *cert;
    EVP_PKEY *key;
    X509 *ra_cert; /* NULL without an RA */
    EVP_PKEY *ra_key;
    int validity_days;
    int min_rsa_bits;
    char *crl_url; /* or NULL */
    char fingerprint[65];
};

/* Serial number as canonical hex. */
void scep_serial_hex(const ASN1_INTEGER *serial, char out[SCEP_SERIAL_HEX_LEN + 1]);
/* A degenerate certificates-only PKCS#7 SignedData of certs (DER; *der the caller's). */
int scep_degenerate_p7(X509 *const *certs, size_t n, unsigned char **der, size_t *len,
                       struct scepter_error *err) WUR;

#endif
