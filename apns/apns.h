/*
 * apns — the APNs client that wakes devices.  For every enrollment with a push token the
 * server hands a push (enrollment id, hex device token, PushMagic) to an apns_client, which
 * sends Apple's MDM notification (POST /3/device/<token>, body {"mdm":"<PushMagic>"}) over
 * HTTP/2 and TLS with the MDM push certificate as the client certificate.
 *
 * The client runs on its own thread and libevent loop.  Worker threads submit pushes with
 * apns_client_push(), which only copies them into a queue and wakes the loop; the loop
 * coalesces duplicates, multiplexes requests over one or more connections up to the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, keeps connections alive with PING, reconnects with
 * back-off after GOAWAY or a drop (re-sending what was not answered), retries 429/5xx with
 * bounded, jittered back-off, and reports exactly one final result per push through the
 * apns_result_fn the server registered.  The server records the outcome in its store
 * (APNS_KIND_PERMANENT: mark the push token invalid); this module never touches the store.
 *
 * Push certificates are struct apns_identity values: loaded from files or bytes (PEM
 * certificate + PKCS#1/PKCS#8 key, or PKCS#12 with a password), checked (subject UID is a
 * com.apple.mgmt.External.* topic, valid now, matches its key) and swappable at run time
 * with apns_client_set_identity().
 *
 * Thread safety: apns_client_push, apns_client_set_identity, apns_client_stats,
 * apns_client_topic and apns_client_stop may be called from any thread, including from the
 * result callback.  Everything else belongs to the thread that created the client.
 */
#ifndef SCEPTER_APNS_APNS_H
#define SCEPTER_APNS_APNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/attr.h"
#include "common/error.h"
#include "common/limits.h"

/* The subject UID of every MDM push certificate starts with this. */
#define APNS_TOPIC_PREFIX "com.apple.mgmt.External."

/* Bounds on what a push may carry (checked by apns_push_validate; reasons in common/limits.h). */
#define APNS_MAX_ENROLLMENT_ID LIMIT_ENROLLMENT_ID  /* characters */
#define APNS_MAX_TOKEN_HEX     LIMIT_PUSH_TOKEN_HEX /* hex digits; Apple promises no length */
#define APNS_MAX_MAGIC         LIMIT_PUSH_MAGIC     /* PushMagic; a UUID in practice */
#define APNS_MAX_TOPIC         LIMIT_TOPIC

/* ---------------------------------------------------------------------------------------- */
/* Push certificates                                                                         */

struct apns_identity;

/*
 * Load the push identity from files.  cert_file holds a PEM certificate (optionally followed
 * by its chain and, when key_file is NULL or "", its private key), a DER certificate, or a
 * PKCS#12 bundle (then key_file must be empty).  key_file holds a PEM or DER key, PKCS#1 or
 * PKCS#8, encrypted when password is given.  now (UNIX seconds) is when the certificate must
 * be valid.  Errors name the config key at fault (apns_cert_file, apns_key_file,
 * apns_key_password): SCEPTER_EIO for unreadable files, SCEPTER_ECRYPTO for a certificate
 * without a UID, a UID that is not a com.apple.mgmt.External.* topic, not yet valid or
 * expired, a key that does not match, or a wrong password.  Returns a new identity the caller
 * frees with apns_identity_free, or NULL.
 */
struct apns_identity *apns_identity_load(const char *cert_file, const char *key_file,
                                         const char *password, int64_t now,
                                         struct scepter_error *err);
/*
 * The same from bytes (an uploaded certificate): cert is PEM, DER or PKCS#12; key may be
 * NULL/0 when cert holds it.  Errors name the fields "cert", "key" and "password".
 */
struct apns_identity *apns_identity_parse(const void *cert, size_t cert_len, const void *key,
                                          size_t key_len, const char *password, int64_t now,
                                          struct scepter_error *err);
/* Drop the caller's reference (clients hold their own).  NULL does nothing. */
void apns_identity_free(struct apns_identity *id);
/* The topic (the subject UID), e.g. "com.apple.mgmt.External.18a1…".  Borrowed. */
const char *apns_identity_topic(const struct apns_identity *id);
/* Validity as UNIX seconds. */
int64_t apns_identity_not_before(const struct apns_identity *id);
int64_t apns_identity_not_after(const struct apns_identity *id);
/* One-line subject ("UID=…,CN=…,C=US") and SHA-256 of the certificate (hex).  Borrowed. */
const char *apns_identity_subject(const struct apns_identity *id);
const char *apns_identity_sha256(const struct apns_identity *id);
/*
 * PEM of the certificate (with its chain) and of the unencrypted PKCS#8 key, for storing an
 * uploaded identity.  Both are the caller's to free.
 */
void apns_identity_pem(const struct apns_identity *id, char **cert_pem, char **key_pem);

/* ---------------------------------------------------------------------------------------- */
/* Pushes and results                                                                        */

/* One push request.  All strings are borrowed for the duration of apns_client_push. */
struct apns_push {
    const char *enrollment_id; /* UDID, EnrollmentID or user channel id: the coalescing key */
    const char *token_hex;     /* device token from TokenUpdate, hex (any case) */
    const char *push_magic;    /* PushMagic from TokenUpdate */
    const char *topic;         /* NULL or "": the topic of the loaded certificate */
};

/*
 * Check one push: every string present, within the bounds above, the token an even number of
 * hex digits, PushMagic and topic printable ASCII without '"' or '\\'.  SCEPTER_EINVAL with
 * the field ("enrollment_id", "token", "push_magic", "topic") otherwise.
 */
int apns_push_validate(const struct apns_push *p, struct scepter_error *err) WUR;
/*
 * The same rules for one field, for the check-in that stores it (so a value APNs would refuse
 * is refused when the device sends it, not when a batch is pushed): a PushMagic (1 to
 * APNS_MAX_MAGIC printable ASCII characters, no quote or backslash) and a device token in bytes
 * (1 to LIMIT_PUSH_TOKEN_BYTES).  SCEPTER_EINVAL naming the field as given.
 */
int apns_push_magic_check(const char *magic, const char *field, struct scepter_error *err) WUR;
int apns_token_check(size_t token_len, const char *field, struct scepter_error *err) WUR;

/* What became of a push. */
enum apns_kind {
    APNS_KIND_OK = 0,    /* 200: APNs accepted it */
    APNS_KIND_PERMANENT, /* the token is dead (410, 400 BadDeviceToken, DeviceTokenNotForTopic):
                            mark it invalid; a later TokenUpdate revives it; never retried */
    APNS_KIND_REJECTED,  /* another 4xx: the request itself is wrong; not retried */
    APNS_KIND_RETRY,     /* 429 / 5xx: transient (never a final result) */
    APNS_KIND_GAVE_UP,   /* transient failures until the bound, no connection within
                            queue_timeout_ms, or the client stopped first */
    APNS_KIND_FATAL,     /* the certificate was refused (403, or a TLS alert): pushing has
                            stopped until apns_client_set_identity loads another one */
};
#define APNS_KIND_COUNT 6
const char *apns_kind_name(enum apns_kind kind);

/* Classify an APNs answer (status and the "reason" of its JSON body, NULL if none). */
enum apns_kind apns_classify(int status, const char *reason);

/* The final result of one push, passed to the callback; every pointer is borrowed for the
 * duration of the call. */
struct apns_result {
    const char *enrollment_id;
    const char *token_hex; /* lower-case */
    const char *topic;     /* the apns-topic sent, or that would have been sent */
    enum apns_kind kind;   /* never APNS_KIND_RETRY */
    int status;            /* HTTP status of the last answer; 0 if none came */
    const char *reason;    /* APNs reason, or a local explanation; "" on success */
    const char *apns_id;   /* apns-id of the answer; "" if none */
    int attempts;          /* answers received (1 + retries); 0 if never answered */
    int merged;            /* submissions coalesced into this push (>= 1) */
    int64_t latency_ms;    /* from the first submission to this result */
    int64_t timestamp_ms;  /* the "timestamp" of a 410 (token invalid since), or 0 */
};

/*
 * Called on the APNs thread, once per push.  It may call apns_client_push (and the other
 * thread-safe functions) but not apns_client_stop or apns_client_free.  Keep it short: the
 * thread multiplexes every connection.
 */
typedef void (*apns_result_fn)(const struct apns_result *r, void *arg);

/* ---------------------------------------------------------------------------------------- */
/* The client                                                                                */

/*
 * Settings.  apns_config_init() fills the defaults; the first fields map to the config keys
 * of the same name (apns_url, apns_ca_file, apns_connections, apns_coalesce_ms,
 * apns_priority, apns_expiration).  Strings are copied by apns_client_new.
 */
struct apns_config {
    const char *url;        /* https://api.push.apple.com, https://api.sandbox.push.apple.com,
                               or https://host:port / host:port; default port 443 */
    const char *ca_file;    /* PEM bundle that verifies the server; NULL/"" = system store */
    int connections;        /* 1..64 HTTP/2 connections */
    int coalesce_ms;        /* 0..60000: pushes for one enrollment within this window merge */
    int priority;           /* apns-priority: 10, 5 or 1 */
    int expiration_s;       /* apns-expiration = now + this; 0 sends "0" (try once) */
    int max_attempts;       /* answers (and dropped sends) per push before GAVE_UP; >= 1 */
    int retry_base_ms;      /* first 429/5xx retry delay (doubles, full jitter) */
    int retry_max_ms;       /* cap of the retry delay */
    int reconnect_base_ms;  /* first reconnect delay after a failure (doubles, jitter) */
    int reconnect_max_ms;   /* cap of the reconnect delay */
    int connect_timeout_ms; /* DNS + TCP + TLS + first SETTINGS */
    int ping_interval_ms;   /* PING a connection idle this long */
    int ping_timeout_ms;    /* drop it when the PING is not answered within this; a
                               connection silent this long with requests in flight is
                               PINGed too (a black hole is found in 2 x this) */
    int queue_timeout_ms;   /* a push waiting this long without a connection gives up */
    size_t max_queue;       /* pushes waiting at most; apns_client_push refuses more */
};
void apns_config_init(struct apns_config *cfg);

/* Connection state for /healthz. */
enum apns_state {
    APNS_STATE_IDLE = 0,   /* no connection needed yet, none failing */
    APNS_STATE_CONNECTING, /* connecting, none up yet */
    APNS_STATE_UP,         /* at least one connection ready */
    APNS_STATE_FAILING,    /* connections fail; reconnecting with back-off */
    APNS_STATE_HALTED,     /* the certificate was refused; waiting for a new one */
    APNS_STATE_STOPPED,
};
const char *apns_state_name(enum apns_state state);

/* Latency histogram: round trip of each answered request (send to answer). */
#define APNS_LATENCY_BUCKETS 12
/* Upper bound (ms) of bucket i < APNS_LATENCY_BUCKETS; the last slot counts the rest. */
int apns_latency_bound_ms(size_t i);

/* Status codes counted one by one; everything else lands in the last slot. */
#define APNS_STATUS_SLOTS 11
int apns_status_slot_code(size_t i); /* 200, 400, 403, 404, 405, 410, 413, 429, 500, 503, 0 */
/* Reasons counted one by one (Apple's list); the last slot is "other". */
#define APNS_REASON_SLOTS 31
const char *apns_reason_slot_name(size_t i);

/* A snapshot for /metrics and /healthz. */
struct apns_stats {
    uint64_t submitted;                         /* pushes passed to apns_client_push */
    uint64_t invalid;                           /* skipped by apns_push_validate (not submitted) */
    uint64_t coalesced;                         /* of those, merged into another push */
    uint64_t requests;                          /* HTTP/2 requests sent */
    uint64_t results[APNS_KIND_COUNT];          /* final results by kind */
    uint64_t retries;                           /* 429/5xx answers scheduled again */
    uint64_t resent;                            /* unanswered requests sent again */
    uint64_t by_status[APNS_STATUS_SLOTS];      /* answers by :status */
    uint64_t by_reason[APNS_REASON_SLOTS];      /* error answers by reason */
    uint64_t latency[APNS_LATENCY_BUCKETS + 1]; /* answers per bucket (not cumulative) */
    uint64_t latency_sum_ms;
    uint64_t connects;         /* connections that became ready */
    uint64_t connect_failures; /* DNS, TCP, TLS or HTTP/2 set-up failures */
    uint64_t goaways;          /* GOAWAY frames received */
    uint64_t drops;            /* ready connections lost */
    uint64_t pings;            /* PINGs sent */
    int conns_up;              /* ready connections */
    int conns_connecting;
    int conns_draining;        /* after GOAWAY or a certificate change */
    uint32_t peer_max_streams; /* sum of the peers' concurrency limits */
    size_t in_flight;          /* requests awaiting an answer */
    size_t queued;             /* pushes waiting (window, stream, retry) */
    enum apns_state state;
    char last_error[256];           /* the latest connection or cert problem */
    char topic[APNS_MAX_TOPIC + 1]; /* of the loaded certificate */
    int64_t cert_not_after;
};

struct apns_client;

/*
 * Create a client (not yet running).  cfg is validated (errors name the config key, e.g.
 * "apns_url"), the CA file loaded and the TLS context built; id is the push identity, of
 * which the client takes its own reference.  cb (required) receives every final result.
 * Returns NULL with err filled on failure.
 */
struct apns_client *apns_client_new(const struct apns_config *cfg, struct apns_identity *id,
                                    apns_result_fn cb, void *arg, struct scepter_error *err);
/* Spawn the APNs thread.  SCEPTER_EINTERNAL when the thread cannot start or runs already. */
int apns_client_start(struct apns_client *c, struct scepter_error *err) WUR;
/*
 * Queue n pushes (copied; one allocation for the batch, so 100,000 at once are cheap) and
 * wake the APNs thread.  A push that fails apns_push_validate is skipped and counted
 * (stats.invalid, and *invalid when not NULL), so one odd device never holds up the others;
 * the first such failure is in *err (code 0 returned all the same).  SCEPTER_EUNAVAIL when the
 * queue is full (max_queue) or the client is stopping: then nothing is queued.
 */
int apns_client_push(struct apns_client *c, const struct apns_push *pushes, size_t n,
                     size_t *invalid, struct scepter_error *err) WUR;
/*
 * Use another push identity from now on (the client takes its own reference): new
 * connections use it, existing ones finish their streams and close.  Clears a halt caused by
 * a refused certificate.  The topic may differ; refusing a topic change is the caller's job
 * (it knows the enrolled topics).  SCEPTER_ECRYPTO when the TLS context cannot be built.
 */
int apns_client_set_identity(struct apns_client *c, struct apns_identity *id,
                             struct scepter_error *err) WUR;
/* Copy the topic of the identity in use into out (size bytes). */
void apns_client_topic(struct apns_client *c, char *out, size_t size);
/* Fill *out with a consistent snapshot of the counters and state. */
void apns_client_stats(struct apns_client *c, struct apns_stats *out);
/*
 * Stop accepting pushes, send what is queued (pushes in a coalescing window go at once),
 * wait up to timeout_ms for the answers, give up on the rest (APNS_KIND_GAVE_UP, each
 * reported), close the connections and join the thread.  Idempotent.
 */
void apns_client_stop(struct apns_client *c, int timeout_ms);
/* Stop (with a short timeout) if running, then free.  NULL does nothing. */
void apns_client_free(struct apns_client *c);

#endif
