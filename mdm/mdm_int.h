/*
 * Private to mdm/: the request and reply values the HTTP layer hands to the pure handlers, the
 * per-worker context, and the device-identity helpers.  Handlers never touch a socket: they
 * take a struct mdm_request, the time, and fill a struct mdm_reply.
 */
#ifndef SCEPTER_MDM_INT_H
#define SCEPTER_MDM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <pthread.h>
#include <plist/plist.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/error.h"
#include "config/config.h"
#include "profiles/profiles.h"
#include "store/store.h"

struct mdm_server;
struct mdm_worker;
struct mdm_report;

/* ---------------------------------------------------------------------------------------- */
/* Request and reply                                                                         */

enum mdm_method {
    MDM_GET = 1,
    MDM_POST,
    MDM_PUT,
    MDM_DELETE,
    MDM_PATCH,
    MDM_HEAD,
    MDM_OTHER,
};

/* A header lookup: the HTTP layer passes evhttp's header list; tests pass a fixed table. */
typedef const char *(*mdm_header_fn)(const void *arg, const char *name);

struct mdm_request {
    enum mdm_method method;
    const char *path;  /* decoded path, without the query */
    const char *query; /* raw query string or NULL */
    const unsigned char *body;
    size_t body_len;
    mdm_header_fn header; /* never NULL */
    const void *header_arg;
    /* How many times a header occurs (NULL: once at most, as with a fixed test table). */
    int (*header_count)(const void *arg, const char *name);
    const char *peer_addr; /* "127.0.0.1" */
    bool tls;
    X509 *peer_cert;             /* TLS client certificate (borrowed) or NULL */
    STACK_OF(X509) *peer_chain;  /* certificates the client sent (borrowed) or NULL */
    struct mdm_idcache *idcache; /* the worker's verified-certificate cache, or NULL */
    char id[24];                 /* request id for the logs */
    /* Set by the HTTP layer when it can answer an Idle poll later, batched with the other
     * polls of the same loop turn (PostgreSQL: one statement for all); returns 0 when it
     * took the poll, and then the handler's reply is MDM_REPLY_DEFERRED. */
    int (*defer_idle)(const struct mdm_request *req, const char *enrollment_id,
                      const char *device_id, const char *cert_hash);
    /* Likewise for a result report, stored with the other reports of the loop turn in one
     * transaction (one synchronous commit) and answered after that commit; returns 0 when it
     * took the report (and everything the report owns). */
    int (*defer_report)(const struct mdm_request *req, struct mdm_report *report);
    void *defer_arg;
};

/* reply->status of a request the HTTP layer will answer later. */
#define MDM_REPLY_DEFERRED 0

#define MDM_MAX_HEADERS 8

struct mdm_reply {
    int status;
    const char *content_type; /* static string or NULL */
    struct buf body;
    struct {
        const char *name; /* static */
        char *value;      /* owned */
    } headers[MDM_MAX_HEADERS];
    int nheaders;
    /* For the request log line. */
    const char *event;        /* e.g. "checkin" */
    const char *message_type; /* MessageType / Status / route */
    char enrollment[160];
    char command_uuid[UUID_STR_LEN];
    char reason[256]; /* why a 4xx/5xx was sent (logged, never the body for devices) */
};

void mdm_reply_init(struct mdm_reply *r);
void mdm_reply_free(struct mdm_reply *r);
void mdm_reply_header(struct mdm_reply *r, const char *name, const char *value);
/* An empty 200 (Content-Length: 0). */
void mdm_reply_empty(struct mdm_reply *r);
/* A status with a reason that goes to the log; the body is a short text for people. */
void mdm_reply_error(struct mdm_reply *r, int status, const char *fmt, ...) PRINTF(3, 4);
/* Apple's 403 com.apple.unrecognized.device error body (the device unenrolls). */
void mdm_reply_unrecognized(struct mdm_reply *r, const char *why);
/* A plist reply from an XML buffer (copied). */
void mdm_reply_plist(struct mdm_reply *r, const char *xml, size_t len);

const char *mdm_header(const struct mdm_request *req, const char *name);
/* The decoded value of one query parameter (caller frees), NULL when absent or malformed. */
char *mdm_query_param(const char *query, const char *name);
/* Does a Content-Type header name this media type (parameters ignored, any case)? */
bool mdm_content_type_is(const char *have, const char *want);

/* ---------------------------------------------------------------------------------------- */
/* Device identity (mdm/identity.c)                                                          */

#define MDM_ID_MTLS      0x1
#define MDM_ID_SIGNATURE 0x2
#define MDM_ID_HEADER    0x4

struct mdm_identity_cfg {
    unsigned accepted;        /* MDM_ID_* */
    X509_STORE *device_ca;    /* trust anchors of device identities (owned by server) */
    const char *proxy_header; /* trusted_proxy_header or NULL */
    const char *proxy_addrs;  /* comma-separated peer addresses allowed to send it */
};

/*
 * Certificates that already chained to the device CA, keyed by the SHA-256 of their DER, so a
 * device's later requests skip the chain verification (a direct-mapped table, one per worker,
 * no lock).  An entry is good until the certificate's notAfter.
 */
#define MDM_IDCACHE_SLOTS   8192
#define MDM_CERTCACHE_SLOTS 512
struct mdm_idcache {
    struct {
        unsigned char sha256[CRYPTO_SHA256_LEN];
        int64_t not_after;
    } slot[MDM_IDCACHE_SLOTS];
    /* Decoded certificates of recent Mdm-Signatures, keyed by the SHA-256 of their DER:
     * OpenSSL 3.0 decoding one costs ~0.5 ms, and a device signs every message. */
    struct {
        unsigned char sha256[CRYPTO_SHA256_LEN];
        X509 *x;
        size_t bytes; /* what this entry is counted as (MDM_CERT_BYTES) */
    } cert[MDM_CERTCACHE_SLOTS];
    size_t cert_bytes;      /* held by cert[] now */
    size_t cert_budget;     /* identity_cache_bytes: no new entry beyond it */
    struct mdm_server *srv; /* for scepter_cache_bytes{cache="certificates"}, or NULL */
};
/* Memory a decoded certificate holds: its DER length plus OpenSSL 3.0's structures around it
 * (X509, the decoded public key and its EC_GROUP or RSA numbers: ~4.6 KB measured with
 * mallinfo2 over 1,000 d2i_X509 of P-256 and RSA-2048 certificates). */
#define MDM_CERT_BYTES(der_len) ((size_t)(der_len) + 4608)
/* Release the decoded certificates a cache holds. */
void mdm_idcache_clear(struct mdm_idcache *c);

struct mdm_identity {
    X509 *cert;                       /* the device certificate (owned reference) */
    char hash[CRYPTO_SHA256_HEX_LEN]; /* SHA-256 hex of its DER */
    const char *source;               /* "mtls", "signature", "header" */
};

/*
 * Find the device certificate of a request — the TLS client certificate, else the
 * Mdm-Signature header (detached CMS over the exact body; its signer), else the trusted proxy
 * header, as configured — and verify its chain against the device CA.  A client certificate
 * authenticates the connection the body came on, so when there is one the Mdm-Signature
 * (which exists to carry the identity through TLS-terminating proxies) is not needed.
 * SCEPTER_EFORBIDDEN with a reason when there is none or it does not verify.  On success release
 * *out with mdm_identity_clear().
 */
int mdm_identity_get(const struct mdm_identity_cfg *cfg, const struct mdm_request *req, int64_t now,
                     struct mdm_identity *out, struct scepter_error *err) WUR;
void mdm_identity_clear(struct mdm_identity *id);
/* Parse the identity list of the configuration ("mtls,signature") into MDM_ID_* bits. */
unsigned mdm_identity_parse(const char *list);
/* Load a PEM bundle into a new X509_STORE (purpose: any; the caller frees it). */
X509_STORE *mdm_ca_store_load(const char *path, struct scepter_error *err);
/* Add the PEM CRLs of path to store and check leaf certificates against them. */
int mdm_ca_store_add_crls(X509_STORE *store, const char *path, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The server (mdm/server.c)                                                                 */

/*
 * The settings and loaded credentials a request is served with: a refcounted, immutable
 * snapshot.  SIGHUP builds a new one from the re-read configuration and publishes it; each
 * worker moves to the newest at the start of its next request, and the old one is freed when
 * the last holder lets go.  Keys flagged CFG_RESTART keep their start-up value in every
 * snapshot (cfg_keep_restart).
 */
struct mdm_conf {
    int refs;                      /* guarded by mdm_server.lock */
    unsigned long gen;             /* 1, 2, ... in publication order */
    struct cfg *cfg;               /* owned */
    struct mdm_identity_cfg idcfg; /* device_ca owned (with its CRLs) */
    X509 *signing_cert;            /* profile signing identity, or NULL */
    EVP_PKEY *signing_key;
    STACK_OF(X509) *signing_chain;
    struct profile_signer *signer; /* signs enrollment and policy profiles, or NULL */
    EVP_PKEY *maid_key;            /* signs GetToken's com.apple.maid JWT (maid_key_file) */
    X509 *device_ca_cert;          /* issues PKCS#12 identities when device_ca_key is set */
    EVP_PKEY *device_ca_key;
    unsigned char *tls_ca_der; /* root of the TLS certificate for the enrollment profile */
    size_t tls_ca_der_len;
    struct mdm_scep_cas *scep; /* the built-in SCEP CAs (mdm/scep_http.c), or NULL */
};

/* Load the files cfg names into a new snapshot (refs = 1; takes ownership of cfg, also on
 * failure).  NULL with err naming the key on a bad file. */
struct mdm_conf *mdm_conf_new(struct cfg *cfg, struct scepter_error *err);
/* Release one reference; the snapshot is freed with the last. */
void mdm_conf_put(struct mdm_server *srv, struct mdm_conf *c);
/* The current snapshot, with a reference the caller puts back. */
struct mdm_conf *mdm_conf_get(struct mdm_server *srv);
/* Publish c (its reference passes to the server) and invalidate every worker's caches. */
void mdm_conf_publish(struct mdm_server *srv, struct mdm_conf *c);
/* A revocation happened: every worker drops its verified-certificate cache before its next
 * request. */
void mdm_caches_invalidate(struct mdm_server *srv);

/* Settings SIGHUP may change, read with mdm_live_get(). */
enum mdm_live {
    MDM_LIVE_WEBHOOK_URL = 0,
    MDM_LIVE_WEBHOOK_SECRET,
    MDM_LIVE_API_KEY,
    MDM_LIVE_COUNT
};

struct mdm_server {
    struct cfg *cfg;             /* the start-up configuration (boot->cfg): restart-only keys */
    struct mdm_conf *boot;       /* the first snapshot, kept for srv->cfg */
    struct mdm_conf *conf;       /* the current snapshot (guarded by lock) */
    unsigned long conf_gen;      /* conf->gen, readable without the lock (atomic) */
    unsigned long cache_gen;     /* moves when workers must drop cached identities (atomic) */
    pthread_mutex_t lock;        /* guards the fields below and conf */
    char topic[256];             /* APNs topic in use ("" when unknown) */
    struct mdm_push *push;       /* the APNs glue (mdm/push.c), or NULL */
    struct mdm_runtime *rt;      /* listeners and workers (mdm/server.c), NULL in tests */
    struct mdm_metrics *metrics; /* counters for /metrics (mdm/metrics.c) */
    struct mdm_enroll_guard *enroll_guard; /* key pool and per-address limits (mdm/enroll.c) */
    struct mdm_scep_limit *scep_limit;     /* /scep per-address limit (mdm/scep_http.c) */
    /* Settings SIGHUP may change (guarded by lock); read them with mdm_live_get(). */
    char *live[MDM_LIVE_COUNT];
};

/*
 * A server value without listeners, for handlers and tests: loads the device CA, signing
 * identity and TLS CA named by cfg (which it takes ownership of).  NULL with err on a bad file.
 */
struct mdm_server *mdm_server_core_new(struct cfg *cfg, struct scepter_error *err);
void mdm_server_core_free(struct mdm_server *srv);
/* The topic devices enroll with: the loaded push certificate's, else push_topic. */
void mdm_server_topic(struct mdm_server *srv, char *out, size_t outlen);
void mdm_server_set_topic(struct mdm_server *srv, const char *topic);

/* Copy a live setting into out ("" when unset). */
void mdm_live_get(struct mdm_server *srv, enum mdm_live which, char *out, size_t outlen);
/* Replace the live settings from a (re)loaded configuration. */
void mdm_live_set(struct mdm_server *srv, const struct cfg *cfg);

/* ---------------------------------------------------------------------------------------- */
/* Handlers                                                                                  */

/* What a handler needs besides the request: the worker's store and the server's settings. */
struct mdm_ctx {
    struct mdm_server *srv;
    const struct cfg *cfg; /* conf->cfg */
    struct store *store;
    struct mdm_worker *worker;   /* NULL in unit tests */
    const struct mdm_conf *conf; /* the snapshot this request is served with */
};

/* PUT /mdm/checkin */
void mdm_checkin_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply);
/* PUT /mdm/connect */
void mdm_command_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply);
/*
 * The reply to an Idle poll once the store answered it (store_connect's rc, err and next):
 * the next command, an empty 200, or the refusal.  Used by mdm_command_handle and by the
 * HTTP layer for batched polls.
 */
void mdm_idle_answer(struct mdm_ctx *ctx, const char *req_id, const char *enrollment_id,
                     const char *device_id, const char *cert_hash, int rc,
                     const struct scepter_error *err, const struct store_next *next, int64_t now,
                     struct mdm_reply *reply);
/* GET /mdm/enroll */
void mdm_enroll_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                       struct mdm_reply *reply);
/* Everything: routes to the handlers above, /v1, /healthz, /metrics. */
void mdm_route(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
               struct mdm_reply *reply);

/* A PKCS#12 device identity for key (taken) from the device CA (mdm/enroll.c); outputs are the
 * caller's. */
int mdm_issue_pkcs12(const struct mdm_conf *conf, EVP_PKEY *key, int64_t now, unsigned char **p12,
                     size_t *p12_len, char **password, char *cert_hash, int64_t *not_after,
                     struct scepter_error *err) WUR;
/*
 * The enrollment profile (signed when a signing identity is configured) appended to *out, with
 * a fresh identity: a PKCS#12 from the device CA (its certificate's SHA-256 hex into
 * issued_hash[65] and notAfter into *issued_not_after, when non-NULL), or a SCEP payload — for
 * the built-in CA with a one-time challenge bound to device_id (NULL: a download, bound to the
 * profile's own CN).  SCEPTER_EUNAVAIL when it cannot be made now (no topic, no key ready, no
 * identity source).
 */
int mdm_enroll_profile(struct mdm_ctx *ctx, int64_t now, const char *device_id, struct buf *out,
                       char *issued_hash, int64_t *issued_not_after, struct scepter_error *err) WUR;
/*
 * Identity renewal (mdm/identity.c): the notAfter of a certificate (0 when unreadable);
 * mdm_renewal_run queues, for enrolled devices whose identity expires within
 * identity_renew_days, the enrollment profile with a fresh identity (store_renewal_begin) and
 * pushes them; mdm_renewal_bind binds a certificate a device presents while its renewal is
 * outstanding (store_renewal_bind: SCEPTER_EFORBIDDEN when it may not be), counted and
 * recorded as the event mdm.IdentityRenewed.
 */
int64_t mdm_identity_not_after(X509 *cert);
void mdm_renewal_run(struct mdm_ctx *ctx, int64_t now);
int mdm_renewal_bind(struct mdm_ctx *ctx, const char *device_id, const char *cert_hash,
                     int64_t not_after, int64_t now, struct scepter_error *err) WUR;

/* GetToken (com.apple.mdm.token) is advertised and answered only when this is true. */
bool mdm_get_token_verifiable(const struct mdm_conf *conf);

/* Security outcomes: counted for /metrics, recorded as events (mdm/events.c). */
enum mdm_security_kind {
    MDM_SEC_REENROLL_REFUSED = 0, /* a new identity for an actively enrolled device */
    MDM_SEC_REENROLLED,           /* a new identity replaced the old one */
    MDM_SEC_ENROLL_REFUSED,       /* /mdm/enroll without a valid secret or token */
    MDM_SEC_ENROLL_LIMITED,       /* /mdm/enroll over the per-address limit */
    MDM_SEC_CERT_REVOKED,         /* an operator revoked a device certificate */
    MDM_SEC_DEVICE_REMOVED,       /* an operator removed a device */
    MDM_SEC_RENEWED,              /* a renewed identity was bound to its device */
    MDM_SEC_KINDS
};

/*
 * A security event an operator must see: recorded in the store's event log (GET /v1/events),
 * sent as a webhook under `kind` ("mdm.ReenrollRefused"...), counted in /metrics, and logged by
 * the caller.  detail (a JSON object) is stolen.  Failures are logged, never fatal.
 */
#include <jansson.h>
void mdm_security_event(struct mdm_ctx *ctx, enum mdm_security_kind sk, const char *kind,
                        const char *device_id, json_t *detail, int64_t now);

/* ---------------------------------------------------------------------------------------- */
/* Enrollment guard (mdm/enroll.c): the pre-generated keys and the per-address limit         */

struct mdm_enroll_guard *mdm_enroll_guard_new(const struct cfg *cfg);
/* Start the key generator thread (the daemon; unit tests generate keys in the request); it
 * fills the pool in the background, so the start does not wait for it. */
/* Starts the pool's thread when conf hands out PKCS#12 identities (again after a reload that
 * makes it do so); otherwise nothing. */
void mdm_enroll_guard_start(struct mdm_enroll_guard *g, const struct mdm_conf *conf);
bool mdm_enroll_uses_keys(const struct mdm_conf *conf);
/* Keys ready in the pool now (/metrics). */
size_t mdm_enroll_guard_ready(struct mdm_enroll_guard *g);
void mdm_enroll_guard_free(struct mdm_enroll_guard *g);
/* The /scep PKIOperation limit per client address (scep_rate_limit; mdm/scep_http.c). */
struct mdm_scep_limit *mdm_scep_limit_new(const struct cfg *cfg);
void mdm_scep_limit_free(struct mdm_scep_limit *l);

/* ---------------------------------------------------------------------------------------- */
/* Enrollment ids (mdm/checkin.c)                                                            */

struct mdm_ids {
    char device_id[128];     /* UDID or EnrollmentID */
    char enrollment_id[256]; /* device id, or "<device id>:<user>" for a user channel */
    enum store_enroll_type type;
    const char *user_id, *user_short_name, *user_long_name; /* borrowed from the plist */
};

/*
 * Read UDID / EnrollmentID and the user-channel keys (UserID, EnrollmentUserID, UserShortName,
 * UserLongName) of a check-in or connect body.  SCEPTER_EINVAL naming the key when the device
 * id is missing or a key has the wrong type.
 */
int mdm_ids_from_plist(plist_t dict, struct mdm_ids *ids, struct scepter_error *err) WUR;

/* A result report (Acknowledged, Error, CommandFormatError, NotNow) parsed and checked, on
 * its way to the store (mdm/connect.c). */
struct mdm_report {
    char req_id[24];
    struct mdm_ids ids;
    plist_t body;             /* the parsed report (owned); ids, status and uuid point into it */
    const unsigned char *raw; /* the report as received: the request's body, or raw_copy */
    size_t raw_len;
    unsigned char *raw_copy; /* owned copy once the HTTP layer took the report for later */
    enum store_status status;
    const char *status_name;
    const char *uuid;
    char *chain;                      /* ErrorChain as JSON (owned) or NULL */
    char hash[CRYPTO_SHA256_HEX_LEN]; /* the device certificate's SHA-256 hex, "" for none */
};
/* Free what a report owns (not the struct itself); a zeroed report is fine. */
void mdm_report_clear(struct mdm_report *r);
/* The store's view of a report (borrows r). */
void mdm_report_store(const struct mdm_report *r, struct store_report *out);
/*
 * The reply to a result report once the store answered it (store_connect_many's answer, a):
 * metrics, facts, DeviceConfigured, the webhook, then the next command or an empty 200, or
 * the refusal.  Used by the HTTP layer for reports it batched.
 */
void mdm_report_answer(struct mdm_ctx *ctx, const struct mdm_report *r,
                       const struct store_answer *a, int64_t now, struct mdm_reply *reply);

/* ---------------------------------------------------------------------------------------- */
/* Hooks between the protocol and the rest (mdm/push.c, mdm/policy.c)                        */

/* What a push needs, as a TokenUpdate carries it. */
struct mdm_push_data {
    const char *enrollment_id;
    const unsigned char *token;
    size_t token_len;
    const char *push_magic;
    const char *topic;
};
/* Wake one enrollment whose token is at hand (asynchronous; a no-op without APNs). */
void mdm_push_one(struct mdm_ctx *ctx, const struct mdm_push_data *d);
/* Wake one enrollment whose push data the store returned (asynchronous; no-op without APNs). */
void mdm_push_target(struct mdm_ctx *ctx, const struct store_push_target *t);
/* Ask APNs to wake these enrollments (coalesced, asynchronous); a no-op without APNs. */
void mdm_push_enrollments(struct mdm_ctx *ctx, const char *const *enrollment_ids, size_t n);
/*
 * A device channel just got its first TokenUpdate: queue what targets the device (policies)
 * and push it.  Errors are logged; the check-in still succeeds.
 */
void mdm_device_enrolled(struct mdm_ctx *ctx, const char *device_id, int64_t now,
                         const struct mdm_push_data *push);
/*
 * A device reported an OS version (DeviceInformation, a DDM status report) on which it is
 * DDM-capable: a policy it holds as a profile that goes over DDM now moves to declarations
 * (DeclarativeManagement queued, the profile kept until they report active: mdm/ddm.c), and the
 * device is pushed.  The caller calls this only for a DDM-capable OS version.
 */
void mdm_policy_os_reported(struct mdm_ctx *ctx, const char *device_id, int64_t now);
/*
 * A macOS user channel (enrollment_id) of device_id just got its first TokenUpdate: queue the
 * user-keychain policies that target the Mac (mdm/policy.c) and push the channel.
 */
void mdm_user_channel_enrolled(struct mdm_ctx *ctx, const char *device_id,
                               const char *enrollment_id, int64_t now,
                               const struct mdm_push_data *push);
/* ErrorChain of a result as JSON text (caller frees), NULL when absent or malformed (err set
 * then). */
char *mdm_error_chain_json(plist_t result, struct scepter_error *err);
/* Remember that an enrollment checked in (batched last_seen). */
void mdm_touch(struct mdm_ctx *ctx, const char *enrollment_id);
/* An API key (by store id) authenticated a request: its last_used is written in the worker's
 * next flush, at most once a minute a key (at once when there is no worker). */
void mdm_apikey_used(struct mdm_ctx *ctx, int64_t id, int64_t now);

#endif
