/*
 * scep/ — the server side of SCEP (RFC 8894) and the certificate authority behind it.
 *
 * A struct scep_ca is one CA: its certificate and key (and optionally an RA certificate and
 * key that receive the requests and sign the replies), its issuance policy (validity, the
 * smallest RSA key, the CRL URL placed in what it issues).  The module does the protocol and
 * the cryptography with OpenSSL's CMS and X.509 APIs and nothing else: it never reads the
 * store or the network.  The caller (mdm/scep_http.c) decides on challenges, records what is
 * issued and lists what is revoked.
 *
 * A PKIOperation goes:
 *     scep_request_parse()   the signed and enveloped request: signature, decryption, the CSR
 *                            and its signature, key size, signing time, renewal signer
 *     (caller)               challenge, store
 *     scep_ca_issue()        the certificate
 *     scep_reply_success() / scep_reply_failure()   the signed (and enveloped) CertRep
 */
#ifndef SCEPTER_SCEP_SCEP_H
#define SCEPTER_SCEP_SCEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/attr.h"
#include "common/error.h"

/* The largest PKIOperation message accepted (DER bytes, before base64 for GET). */
#define SCEP_MAX_MESSAGE (64 * 1024)
/* How far a request's signingTime may be from the server's clock. */
#define SCEP_MAX_CLOCK_SKEW (24 * 3600)
/* Longest transactionID accepted. */
#define SCEP_MAX_TRANSACTION_ID 128
#define SCEP_NONCE_LEN          16
#define SCEP_MAX_CHALLENGE      255
/* Serial numbers as upper-case hex without leading zeros (BN_bn2hex). */
#define SCEP_SERIAL_HEX_LEN 48

/* Message types (RFC 8894 3.2.1.2). */
enum scep_msg_type {
    SCEP_MSG_CERTREP = 3,
    SCEP_MSG_RENEWALREQ = 17,
    SCEP_MSG_PKCSREQ = 19,
    SCEP_MSG_CERTPOLL = 20,
    SCEP_MSG_GETCERT = 21,
    SCEP_MSG_GETCRL = 22,
};

/* failInfo values (RFC 8894 3.2.1.4); SCEP_FAIL_NONE: no SCEP reply is possible (HTTP 400). */
enum scep_fail_info {
    SCEP_FAIL_NONE = -1,
    SCEP_FAIL_BADALG = 0,
    SCEP_FAIL_BADMESSAGECHECK = 1,
    SCEP_FAIL_BADREQUEST = 2,
    SCEP_FAIL_BADTIME = 3,
    SCEP_FAIL_BADCERTID = 4,
};
const char *scep_fail_name(enum scep_fail_info f);

/* GetCACaps: what this server does (text/plain, one capability a line). */
const char *scep_caps(void);

/* ---------------------------------------------------------------------------------------- */
/* The CA                                                                                    */

struct scep_ca;

struct scep_ca_files {
    const char *cert_file;       /* PEM or DER CA certificate */
    const char *key_file;        /* PEM (possibly encrypted) or DER private key */
    const char *passphrase_file; /* the key's passphrase (first line), or NULL */
    const char *ra_cert_file;    /* optional RA certificate (issued by the CA) */
    const char *ra_key_file;
};

struct scep_ca_policy {
    int validity_days;   /* of issued certificates */
    int min_rsa_bits;    /* smallest RSA key accepted in a CSR */
    const char *crl_url; /* placed in CRL Distribution Points; NULL or "" = none */
};

/*
 * Load a CA named name ("default", or a name of [A-Za-z0-9_-]{1,64}) from files.  The key must
 * match the certificate, the certificate must be a CA (basicConstraints CA:TRUE) with an RSA
 * key (SCEP clients encrypt to it).  SCEPTER_EINVAL/ECRYPTO naming field_prefix + the file key.
 */
int scep_ca_load(const char *name, const struct scep_ca_files *files,
                 const struct scep_ca_policy *policy, const char *field_prefix,
                 struct scep_ca **out, struct scepter_error *err) WUR;
void scep_ca_free(struct scep_ca *ca);
/* Is name usable as a CA name (URL path segment)? */
bool scep_ca_name_valid(const char *name);

/*
 * Create a new self-signed CA (RSA of bits, 2048 to 8192; ten years) in dir: ca.pem and ca.key
 * (mode 0600).  dir is created (0700) when missing; existing files are never overwritten
 * (SCEPTER_ECONFLICT).
 */
int scep_ca_generate(const char *dir, const char *common_name, int bits, int64_t now,
                     struct scepter_error *err) WUR;

const char *scep_ca_name(const struct scep_ca *ca);
X509 *scep_ca_cert(const struct scep_ca *ca); /* borrowed */
/* SHA-256 of the CA certificate's DER, lower-case hex. */
void scep_ca_fingerprint(const struct scep_ca *ca, char out[65]);
/* GetCACert: the CA's DER (application/x-x509-ca-cert), or a degenerate PKCS#7 of RA and CA
 * (application/x-x509-ca-ra-cert).  *der is the caller's (free()). */
int scep_ca_getcacert(const struct scep_ca *ca, unsigned char **der, size_t *len,
                      const char **content_type, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* PKIOperation                                                                              */

struct scep_request {
    enum scep_msg_type type;
    char transaction_id[SCEP_MAX_TRANSACTION_ID + 1];
    unsigned char sender_nonce[SCEP_NONCE_LEN];
    X509 *signer;                           /* the signer certificate (owned) */
    X509_REQ *csr;                          /* the decrypted request (owned) */
    char challenge[SCEP_MAX_CHALLENGE + 1]; /* challengePassword, "" when absent */
    /* RenewalReq: the signer is a certificate of this CA; its serial (hex). */
    char signer_serial[SCEP_SERIAL_HEX_LEN + 1];
};
void scep_request_clear(struct scep_request *r);

/*
 * Parse and check a PKIOperation message (DER).  0: a PKCSReq or RenewalReq whose signature,
 * encryption, CSR signature, key and signing time are good (for a RenewalReq: signed by a
 * current certificate of this CA, for the same subject; for a PKCSReq: signed with the CSR's
 * key).  Otherwise a negative code with err, and *fail: SCEP_FAIL_NONE when the message is
 * not even a SCEP request one could answer (HTTP 400), else the failInfo of the FAILURE
 * CertRep to send (req then holds what that reply needs).
 */
int scep_request_parse(const struct scep_ca *ca, const unsigned char *der, size_t len, int64_t now,
                       struct scep_request *req, enum scep_fail_info *fail,
                       struct scepter_error *err) WUR;

/* Constant-time comparison of a presented challenge with the configured one. */
bool scep_challenge_equal(const char *presented, const char *expected);

/* Issue the certificate a parsed request asks for (subject and subjectAltName from the CSR,
 * clientAuth, the CRL URL).  *out is the caller's. */
int scep_ca_issue(const struct scep_ca *ca, const struct scep_request *req, int64_t now, X509 **out,
                  struct scepter_error *err) WUR;

/* The CertRep for req: SUCCESS with cert enveloped to the requester, or FAILURE with fail.
 * *der is the caller's (free()). */
int scep_reply_success(const struct scep_ca *ca, const struct scep_request *req, X509 *cert,
                       unsigned char **der, size_t *len, struct scepter_error *err) WUR;
int scep_reply_failure(const struct scep_ca *ca, const struct scep_request *req,
                       enum scep_fail_info fail, unsigned char **der, size_t *len,
                       struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Certificates and CRLs                                                                     */

/* What gets recorded of an issued certificate.  Strings are the caller's (free()). */
struct scep_cert_info {
    char serial[SCEP_SERIAL_HEX_LEN + 1];
    char *subject; /* "CN=foo,O=Bar" */
    char *sans;    /* "DNS:a, URI:b", "" when none */
    char sha256[65];
    int64_t not_before, not_after;
};
void scep_cert_info(X509 *cert, struct scep_cert_info *out);
void scep_cert_info_clear(struct scep_cert_info *i);
/* A serial as the operator typed it (hex, any case, ':' allowed) in canonical form.
 * SCEPTER_EINVAL naming "serial". */
int scep_serial_norm(const char *in, char out[SCEP_SERIAL_HEX_LEN + 1],
                     struct scepter_error *err) WUR;

/*
 * A one-time challenge rendered into one device's profile is kept with what that profile asks
 * for, one "KEY=value" per line: subject.CN=..., subject.O=... (the subject's attributes in
 * order, OpenSSL short names or dotted OIDs), san.dns=..., san.email=..., san.uri=...,
 * san.upn=... (subjectAltNames, in order per type).  In a value SCEP_EXPECT_ANY stands for
 * one or more characters the device fills in itself (a Mac's %ComputerName%).  0 when cert
 * names exactly that; else -1 with why (the first difference).  expect NULL: 0.
 */
#define SCEP_EXPECT_ANY '\x01'
int scep_expect_check(X509 *cert, const char *expect, char *why, size_t whylen) WUR;

struct scep_revoked {
    const char *serial; /* canonical hex */
    int64_t revoked_at;
};
/* A DER CRL of the CA listing revoked, valid for next_update_secs. *der is the caller's. */
int scep_ca_crl(const struct scep_ca *ca, const struct scep_revoked *revoked, size_t n, int64_t now,
                int64_t next_update_secs, unsigned char **der, size_t *len,
                struct scepter_error *err) WUR;

#endif
