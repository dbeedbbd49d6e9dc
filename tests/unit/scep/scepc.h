/*
 * A SCEP client for tests, written with OpenSSL's CMS API: builds PKCSReq / RenewalReq
 * messages (and broken ones: a CSR whose signature does not match, a signing time far off, a
 * weak key) and reads CertRep replies.  Not used by the server.
 */
#ifndef SCEPTER_TESTS_SCEPC_H
#define SCEPTER_TESTS_SCEPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct scepc_opts {
    int msg_type;          /* 19 PKCSReq (default), 17 RenewalReq, or anything for tests */
    EVP_PKEY *key;         /* the key the CSR is for */
    const char *cn;        /* subject CN (default "scepc") */
    const char *challenge; /* challengePassword, or NULL */
    const char *san_dns;   /* a DNS subjectAltName ("a,DNS:b" for two), or NULL */
    X509 *signer_cert;     /* RenewalReq: the current certificate; NULL: self-signed */
    EVP_PKEY *signer_key;  /* its key */
    X509 *recipient;       /* the CA (or RA) the CSR is encrypted to */
    bool bad_csr_signature;
    int64_t signing_time;       /* 0: OpenSSL's (now) */
    const char *transaction_id; /* default "scepc-transaction" */
    const EVP_CIPHER *cipher;   /* default AES-128-CBC */
};

/* A new RSA or P-256 key. */
EVP_PKEY *scepc_rsa(int bits);
EVP_PKEY *scepc_p256(void);
/* The DER message (free()). */
unsigned char *scepc_build(const struct scepc_opts *o, size_t *len);

struct scepc_reply {
    int status;    /* pkiStatus: 0 SUCCESS, 2 FAILURE, -1 unreadable */
    int fail_info; /* -1 when absent */
    char transaction_id[129];
    unsigned char recipient_nonce[16];
    bool has_recipient_nonce;
    X509 *cert; /* SUCCESS: the issued certificate (X509_free) */
};
/* Verify the reply's signature against ca and decrypt its envelope with key/cert (the
 * requester's).  0 when readable. */
int scepc_parse_reply(const unsigned char *der, size_t len, X509 *ca, EVP_PKEY *key, X509 *cert,
                      struct scepc_reply *out);
/* The self-signed certificate scepc_build uses for a PKCSReq of key (X509_free). */
X509 *scepc_self_signed(EVP_PKEY *key, const char *cn);

#endif
