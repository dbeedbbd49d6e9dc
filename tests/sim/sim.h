/*
 * tests/sim/sim.h — the device simulator: a stand-in for Macs, iPhones and iPads that behaves
 * the way Apple documents a device to behave (enrollment profile, SCEP identity, check-in,
 * pushes, the command loop).  It is a library (scepter_sim) plus the scepter-sim program.
 *
 * Layers, from pure to networked:
 *   facts    deterministic device facts (UDID, serial, model, OS) from (seed, index)
 *   profile  .mobileconfig parsing (XML, binary, CMS-signed) and payload validation
 *   scep     an RFC 8894 SCEP client: message building and parsing are pure functions, the
 *            exchange runs over a blocking HTTP client with a bounded timeout
 *   sign     the Mdm-Signature header (detached CMS over the exact body)
 *   brain    the device itself: given a command body and the device state, the result plist
 *            and the state change.  No sockets; SCEP is reached through a callback
 *   stats    latency histograms (p50/p90/p99/max per message type) and throughput
 *   pool     the connection bound: at most N devices talk to the server at once, FIFO
 *   engine   libevent: many devices, HTTPS with keep-alive, the APNs callback listener
 *
 * Conventions are the project's: fallible functions return 0 or a negative SCEPTER_E* code
 * and fill a caller-owned struct scepter_error; _new/_free pairs (free(NULL) is a no-op);
 * strings passed in are borrowed unless a comment says otherwise; `now` is a parameter.
 */
#ifndef SCEPTER_TESTS_SIM_SIM_H
#define SCEPTER_TESTS_SIM_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "common/attr.h"
#include "common/error.h"

/* ---------------------------------------------------------------------------------------- */
/* Random numbers: a splitmix64 stream, so a run is reproducible with --seed.               */

uint64_t sim_rand_next(uint64_t *state);
/* A double in [0, 1). */
double sim_rand_unit(uint64_t *state);

/* ---------------------------------------------------------------------------------------- */
/* Device facts                                                                              */

enum sim_platform { SIM_MAC = 0, SIM_IPHONE = 1, SIM_IPAD = 2 };
#define SIM_PLATFORM_COUNT 3

/* A plain value: what a device says about itself (Authenticate, DeviceInformation). */
struct sim_facts {
    enum sim_platform platform;
    char udid[41];          /* Mac: 8-4-4-4-12 upper-case UUID; iOS: 00008xxx-16 hex */
    char serial[13];        /* 12 characters, Apple's alphabet */
    char device_name[48];   /* "Ana's MacBook Pro" */
    char product_name[24];  /* "MacBookPro18,3", "iPhone15,2", "iPad13,18" */
    char model[24];         /* Mac: = product name; iOS: part number "MQ0T3LL/A" */
    char model_name[24];    /* "MacBook Pro", "iPhone", "iPad" */
    char os_version[12];    /* "14.6.1" */
    char build_version[12]; /* "23G93" */
    char imei[20];          /* iPhone only, "35 209900 176148 1"; "" otherwise */
    char wifi_mac[18];      /* "f0:18:98:..."; lower case */
    char bt_mac[18];
    uint32_t capacity_gb; /* DeviceCapacity */
};

const char *sim_platform_name(enum sim_platform p); /* "mac", "iphone", "ipad" */
int sim_platform_parse(const char *s, enum sim_platform *out) WUR;
/* Fill *f for device number index of a run seeded with seed; same inputs, same facts. */
void sim_facts_generate(struct sim_facts *f, enum sim_platform platform, uint64_t seed,
                        uint32_t index);

/*
 * A platform mix such as "mac=40,iphone=40,ipad=20" (weights, any positive integers).
 * sim_mix_pick maps a device index to a platform deterministically and in proportion.
 */
struct sim_mix {
    unsigned weight[SIM_PLATFORM_COUNT];
};
int sim_mix_parse(const char *s, struct sim_mix *out, struct scepter_error *err) WUR;
enum sim_platform sim_mix_pick(const struct sim_mix *mix, uint32_t index);

/* ---------------------------------------------------------------------------------------- */
/* Configuration profiles (.mobileconfig)                                                    */

struct sim_payload {
    const char *type;         /* PayloadType */
    const char *identifier;   /* PayloadIdentifier */
    const char *uuid;         /* PayloadUUID */
    const char *display_name; /* may be NULL */
    uint64_t version;         /* PayloadVersion */
    plist_t dict;             /* the whole payload dict, borrowed from the profile */
};

struct sim_profile; /* opaque: a parsed, validated profile */

/*
 * Parse a profile: an XML or binary plist, or a CMS SignedData (DER) wrapping one.  A signed
 * profile's signature is verified (CMS_verify); the chain is checked against trust when trust
 * is non-NULL, otherwise only the signature is.  Checks the top-level keys (PayloadType
 * "Configuration", PayloadVersion, PayloadIdentifier, PayloadUUID, PayloadContent) and every
 * payload's PayloadType/PayloadIdentifier/PayloadUUID/PayloadVersion, and that identifiers and
 * UUIDs are unique.  Errors: SCEPTER_EINVAL (malformed; err.field names the key),
 * SCEPTER_ECRYPTO (bad signature / untrusted signer).  *out is the caller's.
 */
int sim_profile_parse(const void *data, size_t len, X509_STORE *trust, struct sim_profile **out,
                      struct scepter_error *err) WUR;
void sim_profile_free(struct sim_profile *p);
const char *sim_profile_identifier(const struct sim_profile *p);
const char *sim_profile_uuid(const struct sim_profile *p);
plist_t sim_profile_root(const struct sim_profile *p); /* borrowed */
bool sim_profile_is_signed(const struct sim_profile *p);
/* The signer certificates of a signed profile (borrowed; NULL when unsigned). */
STACK_OF(X509) *sim_profile_signers(const struct sim_profile *p);
size_t sim_profile_payload_count(const struct sim_profile *p);
const struct sim_payload *sim_profile_payload(const struct sim_profile *p, size_t i);
/* The first payload of a type whose uuid matches (uuid NULL: any), or NULL. */
const struct sim_payload *sim_profile_find(const struct sim_profile *p, const char *type,
                                           const char *uuid);

/* The com.apple.mdm payload's settings.  Strings are owned; release with _clear. */
struct sim_mdm_settings {
    char *server_url;    /* ServerURL, https:// */
    char *checkin_url;   /* CheckInURL, or ServerURL when absent */
    char *topic;         /* Topic, com.apple.mgmt.* */
    char *identity_uuid; /* IdentityCertificateUUID */
    bool sign_message;   /* SignMessage */
    bool checkout_when_removed;
    uint64_t access_rights; /* AccessRights (8191 when absent) */
};
/*
 * Read and validate the MDM payload, and check that IdentityCertificateUUID names a SCEP or
 * PKCS#12 payload of the same profile.  SCEPTER_ENOTFOUND when there is no MDM payload.
 */
int sim_mdm_settings_read(const struct sim_profile *p, struct sim_mdm_settings *out,
                          struct scepter_error *err) WUR;
void sim_mdm_settings_clear(struct sim_mdm_settings *s);

/* ---------------------------------------------------------------------------------------- */
/* SCEP client (RFC 8894)                                                                    */

/* What a com.apple.security.scep payload asks for.  Owned fields; release with _clear. */
struct sim_scep_request {
    char *url;                     /* URL */
    char *name;                    /* Name (CA instance, sent as GetCACert's message), or NULL */
    char *challenge;               /* Challenge, or NULL */
    X509_NAME *subject;            /* Subject */
    GENERAL_NAMES *san;            /* SubjectAltName, or NULL */
    int keysize;                   /* Keysize: 1024, 2048 or 4096 */
    int key_usage;                 /* Key Usage bits: 1 signing, 4 encryption */
    unsigned char fingerprint[64]; /* CAFingerprint bytes */
    size_t fingerprint_len;        /* 0 = no check; 16 MD5, 20 SHA-1, 32 SHA-256 */
    int retries;                   /* Retries after PENDING */
    int retry_delay;               /* RetryDelay seconds; the first retry is immediate */
};
/*
 * Validate a SCEP payload's PayloadContent dict (the keys and types Apple documents, e.g.
 * "Keysize: 3072 is not one of 1024, 2048, 4096") into *out.
 */
int sim_scep_request_from_plist(plist_t content, struct sim_scep_request *out,
                                struct scepter_error *err) WUR;
void sim_scep_request_clear(struct sim_scep_request *r);

/* Why an enrollment failed, for the device's ErrorChain. */
enum sim_scep_failure {
    SIM_SCEP_OK = 0,
    SIM_SCEP_UNREACHABLE,  /* connection refused, timeout, DNS, bad HTTP status */
    SIM_SCEP_BAD_CA,       /* GetCACert unusable */
    SIM_SCEP_FINGERPRINT,  /* CAFingerprint does not match */
    SIM_SCEP_REJECTED,     /* CertRep FAILURE (failInfo tells why) */
    SIM_SCEP_PENDING,      /* still PENDING after Retries */
    SIM_SCEP_BAD_RESPONSE, /* malformed or unverifiable CertRep */
    SIM_SCEP_INTERNAL,
};

struct sim_scep_opts {
    int timeout_ms;          /* per HTTP request; 0 = 10000 */
    EVP_PKEY *reuse_key;     /* borrowed: use this key instead of generating one (scale mode) */
    X509_STORE *https_trust; /* for https:// SCEP URLs; NULL = system default */
    double delay_scale;      /* multiply RetryDelay by this (tests use 0); <0 treated as 1 */
    long long now;           /* for the temporary signer certificate's validity */
    /* Held around each PKIOperation request when set: Debian's scepserver (2.1.0) keeps its
     * serial number in a file it rewrites without a lock, so concurrent PKCSReqs fail. */
    pthread_mutex_t *pki_lock;
};

/* The outcome: an issued identity, or a failure with a reason. */
struct sim_scep_result {
    enum sim_scep_failure failure;
    int fail_info;      /* RFC 8894 failInfo when REJECTED, else -1 */
    X509 *cert;         /* the issued certificate (owned) */
    EVP_PKEY *key;      /* its key (owned) */
    STACK_OF(X509) *ca; /* the CA/RA certificates from GetCACert (owned) */
    int polls;          /* CertPoll requests sent */
};
void sim_scep_result_clear(struct sim_scep_result *r);

/*
 * Run a whole enrollment: GetCACaps, GetCACert (+ fingerprint check), PKCSReq (POST when the
 * CA supports POSTPKIOperation, else GET), CertRep, CertPoll while PENDING.  Returns 0 with
 * res->cert/key set, or a negative code with res->failure and err saying why.
 */
int sim_scep_enroll(const struct sim_scep_request *req, const struct sim_scep_opts *opts,
                    struct sim_scep_result *res, struct scepter_error *err) WUR;

/* Pure pieces, exposed for tests. */
/* The CSR: subject, public key, challengePassword, extensionRequest (SAN, keyUsage). */
X509_REQ *sim_scep_make_csr(const struct sim_scep_request *req, EVP_PKEY *key,
                            struct scepter_error *err);
/* Pick the encryption and signing certificates (borrowed from certs) per RFC 8894 §3.3.1. */
int sim_scep_pick_certs(STACK_OF(X509) *certs, X509 **encrypt, X509 **sign, X509 **ca,
                        struct scepter_error *err) WUR;
/* Parse a GetCACert reply: a DER certificate or a degenerate PKCS#7 of several. */
STACK_OF(X509) *sim_scep_parse_cacert(const void *data, size_t len, struct scepter_error *err);
/* Whether fp (16/20/32 bytes) is the MD5/SHA-1/SHA-256 of one of the CA certificates. */
bool sim_scep_fingerprint_matches(STACK_OF(X509) *certs, const unsigned char *fp, size_t len);

/* The attributes of a SCEP pkiMessage (PKCSReq, CertRep, ...). */
struct sim_scep_msg {
    int message_type; /* 3 CertRep, 19 PKCSReq, 20 CertPoll, ... */
    int pki_status;   /* CertRep: 0 SUCCESS, 2 FAILURE, 3 PENDING; else -1 */
    int fail_info;    /* -1 when absent */
    char transaction_id[130];
    unsigned char sender_nonce[16];
    bool has_sender_nonce;
    unsigned char recipient_nonce[16];
    bool has_recipient_nonce;
    unsigned char *content; /* the signed content (an EnvelopedData DER), owned */
    size_t content_len;
    X509 *signer; /* the signer certificate if embedded, owned */
};
/*
 * Parse and verify a pkiMessage.  verify_with: certificates one of which must have signed it
 * (NULL = the embedded signer, signature only).
 */
int sim_scep_msg_parse(const void *der, size_t len, STACK_OF(X509) *verify_with,
                       struct sim_scep_msg *out, struct scepter_error *err) WUR;
void sim_scep_msg_clear(struct sim_scep_msg *m);
const char *sim_scep_fail_info_name(int fail_info);

/* ---------------------------------------------------------------------------------------- */
/* Mdm-Signature                                                                             */

/*
 * The Mdm-Signature header value: base64 of a detached CMS SignedData over exactly len bytes
 * at body, signed with key, cert embedded.  Returns a string the caller frees, or NULL.
 */
char *sim_mdm_signature(const void *body, size_t len, X509 *cert, EVP_PKEY *key,
                        struct scepter_error *err);

/* ---------------------------------------------------------------------------------------- */
/* The device brain                                                                          */

struct sim_device; /* opaque: facts, identity, installed profiles and certificates */

/* A device fresh out of the box; facts are copied. */
struct sim_device *sim_device_new(const struct sim_facts *facts);
void sim_device_free(struct sim_device *d);
const struct sim_facts *sim_device_facts(const struct sim_device *d);

/*
 * Install the enrollment profile: its certificates, the identity (cert+key; references taken)
 * and the MDM payload's settings.  The profile is then listed like any other.  Errors as for
 * InstallProfile.
 */
int sim_device_enroll(struct sim_device *d, const struct sim_profile *profile, X509 *identity,
                      EVP_PKEY *key, struct scepter_error *err) WUR;
bool sim_device_enrolled(const struct sim_device *d);
/* The MDM settings of the enrollment (NULL before enrollment). */
const struct sim_mdm_settings *sim_device_mdm(const struct sim_device *d);
X509 *sim_device_identity(const struct sim_device *d); /* borrowed */
EVP_PKEY *sim_device_key(const struct sim_device *d);  /* borrowed */
/* The push token (32 bytes) and PushMagic the device reports in TokenUpdate. */
void sim_device_set_push(struct sim_device *d, const unsigned char token[32],
                         const char *push_magic);
const unsigned char *sim_device_token(const struct sim_device *d);
const char *sim_device_push_magic(const struct sim_device *d);
/* A locked device answers NotNow to InstallProfile/RemoveProfile (like a device before
 * first unlock). */
void sim_device_set_locked(struct sim_device *d, bool locked);
size_t sim_device_profile_count(const struct sim_device *d);
/* The top-level PayloadIdentifier of installed profile i. */
const char *sim_device_profile_identifier(const struct sim_device *d, size_t i);
bool sim_device_has_profile(const struct sim_device *d, const char *identifier);
size_t sim_device_cert_count(const struct sim_device *d);
/* The certificates installed profile i holds: how many, and certificate k's DER (borrowed)
 * and whether it is an identity (with its private key: SCEP, PKCS#12). */
size_t sim_device_profile_cert_count(const struct sim_device *d, size_t i);
const unsigned char *sim_device_profile_cert(const struct sim_device *d, size_t i, size_t k,
                                             size_t *len, bool *identity);

/* Check-in bodies: Authenticate, TokenUpdate, CheckOut (XML; caller frees). */
char *sim_device_authenticate(const struct sim_device *d, size_t *len);
char *sim_device_token_update(const struct sim_device *d, size_t *len);
char *sim_device_checkout(const struct sim_device *d, size_t *len);
/* The connect body {UDID, Status: Idle} (caller frees). */
char *sim_device_idle(const struct sim_device *d, size_t *len);

/*
 * SCEP as the brain sees it: run the enrollment the payload describes.  Return 0 with
 * res->cert/key, or negative with res->failure and err set.
 */
typedef int (*sim_scep_fn)(void *arg, const struct sim_scep_request *req,
                           struct sim_scep_result *res, struct scepter_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Declarative Device Management (ddm.c)                                                     */

struct sim_ddm; /* the declarations a device holds, their state, the identities they made */
struct sim_ddm *sim_ddm_new(void);
void sim_ddm_free(struct sim_ddm *s);
/* Identities installed by active security.identity configurations. */
size_t sim_ddm_identities(const struct sim_ddm *s);

/* How a device reaches the server for a sync.  A plain value; everything borrowed. */
struct sim_ddm_env {
    const char *checkin_url; /* CheckInURL */
    const char *udid;
    X509_STORE *trust; /* the server's TLS */
    X509 *cert;        /* the device identity (mTLS; MDM authentication of assets) */
    EVP_PKEY *key;
    const char *os_version;    /* reported as device.operating-system.version */
    const char *model_family;  /* device.model.family: "Mac", "iPhone", "iPad" */
    const char *build_version; /* device.operating-system.build-version (may be NULL) */
    sim_scep_fn scep;          /* enrolls credential assets */
    void *scep_arg;
    int timeout_ms;
};
/*
 * One sync (blocking): declaration-items, the declarations whose token changed, the credential
 * assets an activation needs (SCEP), then the status report.  sync_tokens is the command's
 * Data (may be NULL).  0, or SCEPTER_EIO with err when the server could not be talked to.
 */
int sim_ddm_sync(struct sim_ddm *s, const struct sim_ddm_env *env, const char *sync_tokens,
                 struct scepter_error *err) WUR;
/*
 * A status report of the subscribed items whose value changed since they were last reported
 * (env carries the values now), as a device sends one on a change: 1 when one was sent, 0 when
 * nothing changed, SCEPTER_EIO with err when the server refused it.
 */
int sim_ddm_report_changes(struct sim_ddm *s, const struct sim_ddm_env *env,
                           struct scepter_error *err) WUR;
/* Status reports sent so far. */
unsigned sim_ddm_reports(const struct sim_ddm *s);
/* The device's DDM state (created on first use; owned by the device). */
struct sim_ddm *sim_device_ddm(struct sim_device *d);

/* A DeclarativeManagement command's sync, run by the caller's network code. */
typedef int (*sim_ddm_fn)(void *arg, struct sim_device *d, const char *sync_tokens,
                          struct scepter_error *err);

/* What the brain needs from outside.  A plain value the caller fills in. */
struct sim_brain_env {
    double notnow_rate; /* chance that a command that may be deferred gets NotNow */
    uint64_t *rng;      /* random stream (required when notnow_rate > 0) */
    X509_STORE *trust;  /* verify signed profiles' chains; NULL = signature only */
    sim_scep_fn scep;   /* NULL: SCEP payloads fail as unreachable */
    void *scep_arg;
    long long now;
    sim_ddm_fn ddm; /* NULL: DeclarativeManagement is not supported (Error) */
    void *ddm_arg;
};

/* What happened, for the caller's bookkeeping. */
struct sim_brain_outcome {
    char status[24];       /* Acknowledged, Error, NotNow, CommandFormatError */
    char request_type[48]; /* "" when unknown */
    char command_uuid[64]; /* "" when absent */
    bool unenrolled;       /* the MDM profile was removed: stop talking to the server */
    bool identity_renewed; /* the enrollment profile was installed again with a new identity:
                            * later requests present it (mTLS, Mdm-Signature) */
};

/*
 * Run one command: body is the server's reply (a plist {CommandUUID, Command:{RequestType,
 * ...}}).  Always produces a result plist in *result (the caller's to plist_free): the result
 * a real device would send, including CommandFormatError for a body it cannot parse.  State
 * changes only when the command succeeds (all or nothing).
 */
void sim_brain_handle(struct sim_device *d, const struct sim_brain_env *env, const void *body,
                      size_t len, plist_t *result, struct sim_brain_outcome *outcome);

/* ---------------------------------------------------------------------------------------- */
/* Latency statistics                                                                        */

/*
 * Log-linear histogram of microseconds (1/64 relative resolution), one per message type.
 * Percentiles come from the buckets: the value reported is the bucket's upper bound (never
 * below the true value, at most ~1.6% above it), and max is exact.
 */
struct sim_stats;
struct sim_stats *sim_stats_new(void);
void sim_stats_free(struct sim_stats *s);
/* type: "Authenticate", "TokenUpdate", "Idle", ...; up to 32 distinct types. */
void sim_stats_record(struct sim_stats *s, const char *type, uint64_t usec);
/* Count recorded for type (0 when unknown). */
uint64_t sim_stats_count(const struct sim_stats *s, const char *type);
/* q in [0,1]; SCEPTER_ENOTFOUND when type has no samples. */
int sim_stats_percentile(const struct sim_stats *s, const char *type, double q, uint64_t *out) WUR;
uint64_t sim_stats_max(const struct sim_stats *s, const char *type);
/* {"types":{"Idle":{"count":..,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..},...},
 *  "total":N,"elapsed_s":E,"throughput_per_s":N/E}; the caller json_decrefs. */
json_t *sim_stats_json(const struct sim_stats *s, double elapsed_s);

/* ---------------------------------------------------------------------------------------- */
/* Connection bound                                                                          */

/*
 * At most `limit` holders at once; others wait in FIFO order.  Pure bookkeeping: the engine
 * starts a device's exchange when it is granted a slot.
 */
struct sim_pool;
struct sim_pool *sim_pool_new(unsigned limit);
void sim_pool_free(struct sim_pool *p);
/* True when who holds a slot now; false when it was queued. */
bool sim_pool_acquire(struct sim_pool *p, void *who);
/* Give a slot back; returns the waiter that now holds it, or NULL. */
void *sim_pool_release(struct sim_pool *p);
/* Remove a waiter that gave up; true when it was queued. */
bool sim_pool_cancel(struct sim_pool *p, void *who);
unsigned sim_pool_in_use(const struct sim_pool *p);
size_t sim_pool_waiting(const struct sim_pool *p);
unsigned sim_pool_peak(const struct sim_pool *p);

/* ---------------------------------------------------------------------------------------- */
/* HTTP (blocking, for the enrollment profile and SCEP)                                      */

struct sim_http_reply {
    int status;          /* HTTP status; 0 when no reply */
    char *content_type;  /* owned, may be NULL */
    unsigned char *body; /* owned, NUL-terminated */
    size_t len;
};
void sim_http_reply_clear(struct sim_http_reply *r);
/*
 * One request on a private event loop: method "GET"/"POST"/"PUT", url http:// or https://
 * (https verified against trust, or the system store when NULL; identity presented when
 * cert/key are given).  Returns 0 when a reply arrived (any status), SCEPTER_EIO when the
 * server could not be reached or the reply did not come within timeout_ms.
 */
int sim_http_fetch(const char *method, const char *url, const char *content_type, const void *body,
                   size_t len, X509_STORE *trust, X509 *cert, EVP_PKEY *key, int timeout_ms,
                   struct sim_http_reply *out, struct scepter_error *err) WUR;

struct event_base;

/* ---------------------------------------------------------------------------------------- */
/* The engine: many devices on one libevent loop                                             */

/* Options; a plain value the caller fills in (strings borrowed for the engine's lifetime). */
struct sim_engine_opts {
    const char *enroll_url;    /* where each device GETs its enrollment profile (required) */
    X509_STORE *trust;         /* trust for the server's TLS and signed profiles (may be NULL) */
    bool verify_profile_chain; /* check signed profiles' signer chains against trust */
    unsigned devices;          /* N devices (default 1000) */
    struct sim_mix mix;        /* platform weights (all zero: mac=40,iphone=40,ipad=20) */
    uint64_t seed;
    unsigned concurrency;     /* devices talking to the server at once (default 64) */
    double notnow_rate;       /* chance of NotNow for InstallProfile/RemoveProfile */
    double drop_rate;         /* chance a device drops the connection after receiving a command */
    double slow_rate;         /* chance a device is slow (fixed per device) */
    int slow_ms;              /* a slow device's delay before each reply */
    int retry_ms;             /* a device's re-poll delay after NotNow or a drop (default 2000) */
    int timeout_ms;           /* per HTTP request (default 30000) */
    const char *apns_control; /* http://127.0.0.1:PORT of the APNs test server, or NULL */
    int push_port;            /* the callback listener's port on 127.0.0.1 (0 = ephemeral) */
    bool shared_key;          /* one RSA key for every device's SCEP identity (scale runs) */
    double scep_delay_scale;  /* multiply SCEP RetryDelay (default 1) */
    unsigned enroll_threads;  /* devices preparing their enrollment at once (default 4) */
};

struct sim_engine;

/*
 * Create the engine: the event loop, N device records (a few dozen bytes each until a device
 * enrolls) and the push callback listener on 127.0.0.1.  The caller frees with _free.
 */
int sim_engine_new(const struct sim_engine_opts *opts, struct sim_engine **out,
                   struct scepter_error *err) WUR;
void sim_engine_free(struct sim_engine *e);
/* The port the push callback listener is bound to. */
int sim_engine_push_port(const struct sim_engine *e);
/*
 * Register the devices' token prefix and the callback URL with the APNs test server
 * (POST <apns_control>/register {"callback":..., "prefix":...}).
 */
int sim_engine_register_apns(struct sim_engine *e, struct scepter_error *err) WUR;
/*
 * Enroll every device: fetch the profile, verify it, obtain the identity (SCEP or PKCS#12) —
 * the blocking half, run for `enroll_threads` devices at once on threads of their own —, then
 * Authenticate and TokenUpdate on the event loop (at most `concurrency` at once).  Returns when
 * every device has enrolled or failed (or max_s seconds passed); 0 when all enrolled.
 */
int sim_engine_enroll_all(struct sim_engine *e, double max_s, struct scepter_error *err) WUR;
/*
 * Serve pushes: run the loop for duration_s seconds, or, with until_idle, until no device has
 * work and none has had any for idle_ms (bounded by duration_s when > 0).
 */
void sim_engine_run(struct sim_engine *e, double duration_s, bool until_idle, int idle_ms);
/* Counters, latency percentiles and (with devices) every device's UDID, platform, state. */
json_t *sim_engine_report(const struct sim_engine *e, bool devices);
/* The token every device would report for index i (exposed for tests). */
void sim_engine_token(const struct sim_engine *e, uint32_t index, unsigned char out[32]);
/* Test hooks: the device at index (NULL until enrolled) and pool state. */
struct sim_device *sim_engine_device(const struct sim_engine *e, uint32_t index);
/* Mark device index enrolled with d (ownership taken) without the network (tests). */
void sim_engine_adopt(struct sim_engine *e, uint32_t index, struct sim_device *d);
const struct sim_pool *sim_engine_pool(const struct sim_engine *e);
struct event_base *sim_engine_base(const struct sim_engine *e);

#endif
