/*
 * Private to apns/: the identity's insides, the TLS context it builds, endpoint parsing,
 * back-off arithmetic and the reason table.  Pure helpers here are unit-tested directly
 * (tests/unit/apns links the static library).
 */
#ifndef SCEPTER_APNS_APNS_INT_H
#define SCEPTER_APNS_APNS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "apns/apns.h"

struct apns_identity {
    atomic_int refs; /* the caller's and every client's */
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain; /* intermediates sent after the leaf; may be empty */
    char *topic;           /* subject UID */
    char *subject;
    char sha256[65];
    int64_t not_before, not_after;
};

/* Take another reference; returns id. */
struct apns_identity *apns_identity_ref(struct apns_identity *id);

/*
 * The subject UID of cert (caller frees) or NULL when it has none.  Pure; exposed for tests.
 */
char *apns_cert_uid(X509 *cert);

/*
 * A client TLS context for this identity: TLS 1.2+, ALPN h2, the identity as the client
 * certificate, server verification against ca_file (NULL/"" = system store).  Errors name
 * "apns_ca_file".  The caller owns the result (SSL_CTX_free).
 */
SSL_CTX *apns_tls_ctx_new(const struct apns_identity *id, const char *ca_file,
                          struct scepter_error *err);

/* Where to connect. */
struct apns_endpoint {
    char host[256]; /* name or IP literal, without brackets */
    char port[8];
    char authority[272]; /* :authority — "host" when the port is 443, else "host:port" */
    bool host_is_ip;     /* no SNI, verify the IP address instead of a name */
};
/*
 * Parse "https://host[:port][/]", "host:port" or "[v6]:port" (default port 443).  Errors
 * name "apns_url".
 */
int apns_endpoint_parse(const char *url, struct apns_endpoint *ep, struct scepter_error *err) WUR;

/* xorshift64* — the client's own jitter source (no global state). */
uint64_t apns_rand_next(uint64_t *state);
/*
 * Back-off before attempt number `attempt` (1 = first retry): min(max, base * 2^(attempt-1)),
 * jittered uniformly into [d/2, d] by rnd.  Never below 1 ms.
 */
int64_t apns_backoff_ms(int64_t base, int64_t max, int attempt, uint64_t rnd);

/* Slot of a status or reason in struct apns_stats (the last slot = other). */
size_t apns_status_slot(int status);
size_t apns_reason_slot(const char *reason);

/* Monotonic clock in milliseconds. */
int64_t apns_now_ms(void);

#endif
