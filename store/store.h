/*
 * store/store.h — everything Scepter knows, behind one interface.
 *
 * Two backends, chosen by URL at store_open():
 *   sqlite:PATH            embedded default (WAL, busy timeout), one file
 *   postgres://...         production; several scepter processes may share one database
 * Both pass the same conformance suite (tests/unit/store/).  Each backend applies its numbered
 * migrations (store/sql/<backend>/NNN_*.sql) at open, in a transaction, recorded in a
 * schema-version table; a database newer than the binary is refused with SCEPTER_EVERSION.
 *
 * A struct store is one connection: it is not thread-safe, and each worker thread opens its
 * own.  Every function is atomic: it commits all of its writes or none.  PostgreSQL
 * serialization failures and deadlocks are retried inside the store and never surface; a
 * connection that went away (server restart) makes the failing call return SCEPTER_ESTORE and
 * is re-established on the next call.
 *
 * Conventions: functions return 0 (or a documented positive value) on success and a negative
 * SCEPTER_E* code with *err filled on failure.  Strings passed in are borrowed.  Structs
 * returned through out-parameters own their heap fields; release them with the matching
 * store_*_clear() / store_*_free() function.  Times are UNIX seconds, passed in by the caller
 * (`now`) so tests control them.
 *
 * Identifiers:
 *   device id       the UDID, or the EnrollmentID of a user enrollment
 *   enrollment id   a channel that receives commands: the device channel's id is the device id;
 *                   a user channel's id is "<device id>:<UserID>" (or :<EnrollmentUserID>)
 */
#ifndef SCEPTER_STORE_STORE_H
#define SCEPTER_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/attr.h"
#include "common/error.h"
#include "common/uuid.h"

struct store;

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

/*
 * Open the store at url and apply pending migrations.  Errors: SCEPTER_EINVAL (bad URL),
 * SCEPTER_ESTORE (cannot connect / migration failed), SCEPTER_EVERSION (database newer than
 * this binary).
 */
int store_open(const char *url, struct store **out, struct scepter_error *err) WUR;
/* store_open() applying the migrations up to schema version `version` only (0: all): for the
 * tests of upgrades from a previous schema. */
int store_open_at(const char *url, int version, struct store **out, struct scepter_error *err) WUR;
void store_close(struct store *s);
/*
 * How long a PostgreSQL statement or connection attempt may wait for the server (store_timeout,
 * milliseconds; process-wide, set before store_open).  Past it the call fails with
 * SCEPTER_ESTORE (503 to clients) and the connection is re-established on the next call: a
 * stopped or unreachable server never holds a worker longer.  Default 5000.
 */
void store_set_timeout_ms(int ms);
/* Each SQLite connection's page cache, in bytes (sqlite_cache_bytes; process-wide, set before
 * store_open; under 64 KiB: the default, 16 MiB). */
void store_set_sqlite_cache_bytes(int64_t bytes);
/* "sqlite" or "postgres". */
const char *store_backend(const struct store *s);
/* Bytes SQLite holds in this process (every connection's page cache included; up to
 * sqlite_cache_bytes per connection; the pages in the page buffer too), for /metrics: 0 when
 * no SQLite store was opened. */
int64_t store_sqlite_memory_used(void);
/* The region SQLite's page caches take their pages from before the heap (sqlite_page_buffer_bytes;
 * process-wide, set before the first store_open; 0 = none, pages from malloc): its size and the
 * bytes of it in use now (both 0 when it could not be set). */
void store_set_sqlite_page_buffer_bytes(int64_t bytes);
void store_sqlite_page_buffer(int64_t *size, int64_t *used);
/* The schema version in the database and the newest this binary knows. */
int store_schema_version(struct store *s, int *db_version, int *binary_version,
                         struct scepter_error *err) WUR;
/* A cheap round trip (for /healthz). */
int store_ping(struct store *s, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Devices and enrollments (check-in)                                                        */

enum store_platform {
    STORE_PLATFORM_UNKNOWN = 0,
    STORE_PLATFORM_MACOS,
    STORE_PLATFORM_IOS, /* iPhone, iPod touch */
    STORE_PLATFORM_IPADOS,
    STORE_PLATFORM_TVOS,
    STORE_PLATFORM_WATCHOS,
    STORE_PLATFORM_VISIONOS,
    STORE_PLATFORM_COUNT
};
/* "unknown", "macos", "ios", "ipados", "tvos", "watchos", "visionos". */
const char *store_platform_name(enum store_platform p);
/* The inverse of store_platform_name; STORE_PLATFORM_UNKNOWN for anything else. */
enum store_platform store_platform_parse(const char *name);
/*
 * The platform from Authenticate's ProductName ("iPhone14,2", "iPad13,4", "MacBookPro18,3"),
 * Model ("iMac14,2") and ModelName ("iMac", "iPhone", "iPad"); any may be NULL.
 */
enum store_platform store_platform_guess(const char *product_name, const char *model,
                                         const char *model_name);

enum store_enroll_type {
    STORE_ENROLL_DEVICE = 1,          /* device channel, UDID */
    STORE_ENROLL_USER_ENROLLMENT = 2, /* device channel of a user enrollment, EnrollmentID */
    STORE_ENROLL_USER = 3,            /* macOS user channel */
    STORE_ENROLL_USER_ENROLLMENT_USER = 4,
    STORE_ENROLL_SHARED_IPAD_USER = 5,
};

/* Device facts, as Authenticate (or a DeviceInformation result) reports them. */
struct store_device_facts {
    const char *serial_number;
    const char *device_name;
    const char *model;
    const char *model_name;
    const char *product_name;
    const char *os_version;
    const char *build_version;
    const char *imei;
    const char *meid;
    enum store_platform platform;
};

struct store_authenticate {
    const char *device_id;       /* UDID or EnrollmentID */
    enum store_enroll_type type; /* STORE_ENROLL_DEVICE or STORE_ENROLL_USER_ENROLLMENT */
    const char *topic;
    const char *cert_hash;  /* SHA-256 hex of the identity certificate */
    int64_t cert_not_after; /* its notAfter (0: not known), for identity renewal */
    struct store_device_facts facts;
    bool reenroll_allow; /* `reenroll = allow`: a new certificate may replace an active one */
};

/* What an Authenticate did, or why it was refused. */
struct store_auth_result {
    bool new_binding;       /* the certificate was bound to the device by this call */
    bool rebound;           /* ... replacing the device's previous certificate(s) */
    const char *allowed_by; /* a replacement of an active enrollment: "operator" (window) or
                             * "configuration" (reenroll = allow); NULL otherwise (static) */
    char previous_hash[65]; /* the device's certificate before this call ("" = none) */
};

/*
 * Authenticate: create or update the device, bind cert_hash to it, and (re)start its device
 * enrollment: the enrollment is disabled until its first TokenUpdate, its push token,
 * PushMagic and unlock token are cleared, and commands still queued for it and its user
 * channels are deactivated (a re-enrolling device starts with a clean queue), and its
 * policy state starts from nothing: the links of its earlier commands to policies are cleared
 * (store_enrollment_policy_status and store_policy_status no longer report them).
 *
 * A certificate new to the device replaces its previous ones — they are revoked ("superseded")
 * and its bootstrap token is cleared: a new identity inherits no secret — but only when the
 * device has no active enrollment (never enrolled, checked out, removed by an operator), an
 * operator allowed it (store_device_allow_reenroll) or a->reenroll_allow.  Otherwise
 * SCEPTER_ECONFLICT with res->previous_hash naming the bound certificate, and nothing changes:
 * this is what stops a fresh identity from taking over an enrolled device by its UDID.
 * SCEPTER_EFORBIDDEN if cert_hash is bound to another device or was revoked (nothing
 * changes).  res may be NULL.
 */
int store_authenticate(struct store *s, const struct store_authenticate *a, int64_t now,
                       struct store_auth_result *res, struct scepter_error *err) WUR;

/*
 * Is cert_hash bound to device_id?  Returns 1 (bound), 0 (bound to nothing), or
 * SCEPTER_EFORBIDDEN (bound to another device; err names it).
 */
int store_cert_check(struct store *s, const char *cert_hash, const char *device_id,
                     struct scepter_error *err) WUR;

struct store_token_update {
    const char *enrollment_id;
    const char *device_id;
    enum store_enroll_type type;
    const char *topic;
    const unsigned char *token; /* APNs device token bytes */
    size_t token_len;
    const char *push_magic;
    const unsigned char *unlock_token; /* NULL keeps the stored one */
    size_t unlock_token_len;
    const char *user_id; /* user channels */
    const char *user_short_name;
    const char *user_long_name;
    bool awaiting_configuration;
};

/*
 * TokenUpdate: store the channel's token and PushMagic, enable it and clear a push-token
 * invalid mark.  A user channel's enrollment is created on its first TokenUpdate.
 * *first is true when the channel was not enabled before (the first TokenUpdate after
 * Authenticate): the caller then pushes and queues what targets the device.
 * SCEPTER_ENOTFOUND if the device never authenticated.
 */
int store_token_update(struct store *s, const struct store_token_update *t, int64_t now,
                       bool *first, struct scepter_error *err) WUR;

/* CheckOut: disable the device and all its channels; queued commands are deactivated. */
int store_checkout(struct store *s, const char *device_id, int64_t now,
                   struct scepter_error *err) WUR;

/* The device acknowledged command_uuid on enrollment_id: when that is a DeviceConfigured, the
 * enrollment no longer awaits configuration (*cleared true when this call ended it). */
int store_device_configured(struct store *s, const char *enrollment_id, const char *command_uuid,
                            bool *cleared, struct scepter_error *err) WUR;

/* Update the stored facts of a device (after a DeviceInformation result); NULL keeps one. */
int store_device_update_facts(struct store *s, const char *device_id,
                              const struct store_device_facts *f, int64_t now,
                              struct scepter_error *err) WUR;

/* SetBootstrapToken (len 0 deletes) and GetBootstrapToken (*data NULL when none). */
int store_bootstrap_set(struct store *s, const char *device_id, const unsigned char *data,
                        size_t len, struct scepter_error *err) WUR;
int store_bootstrap_get(struct store *s, const char *device_id, unsigned char **data, size_t *len,
                        struct scepter_error *err) WUR;
/* The UnlockToken the device escrowed at TokenUpdate (*data NULL when none; caller frees), for
 * ClearPasscode.  SCEPTER_ENOTFOUND if the device is unknown. */
int store_unlock_token_get(struct store *s, const char *device_id, unsigned char **data,
                           size_t *len, struct scepter_error *err) WUR;

/*
 * Batched last-seen: set last_seen = now for the n enrollments, in one statement, except
 * those already seen in the last STORE_SEEN_GRANULARITY seconds.  last_seen is kept to the
 * minute: devices poll many times a minute, and every rewrite is a new row version with new
 * index entries (last_seen is indexed for the re-push job) that each lookup of the enrollment
 * walks past until vacuum (bench_mdm, PostgreSQL, 10,000 devices: the Idle batch went from
 * 0.3 to 4 ms with per-second rewrites).
 */
#define STORE_SEEN_GRANULARITY 60
int store_touch(struct store *s, const char *const *enrollment_ids, size_t n, int64_t now,
                struct scepter_error *err) WUR;

struct store_enrollment {
    char *id;
    char *device_id;
    enum store_enroll_type type;
    char *topic;
    char *user_id, *user_short_name, *user_long_name;
    bool enabled;     /* authenticated and TokenUpdate received, not checked out */
    bool token_valid; /* has a push token not reported invalid by APNs */
    int64_t last_seen, token_updated_at, created;
};
void store_enrollment_clear(struct store_enrollment *e);
/* SCEPTER_ENOTFOUND if unknown. */
int store_enrollment_get(struct store *s, const char *enrollment_id, struct store_enrollment *out,
                         struct scepter_error *err) WUR;

struct store_device {
    char *id; /* UDID or EnrollmentID */
    enum store_enroll_type type;
    char *serial_number, *device_name, *model, *model_name, *product_name, *os_version,
        *build_version;
    char *model_family; /* device.model.family of its last DDM status report, or NULL */
    enum store_platform platform;
    char *topic;
    bool enrolled; /* device channel enabled */
    bool token_valid;
    bool has_bootstrap_token;
    int64_t last_seen, authenticated_at, token_updated_at, checked_out_at, created;
    int64_t removed_at;          /* an operator removed it (0: not removed) */
    int64_t reenroll_until;      /* an operator allows a new identity until then (0: no) */
    bool awaiting_configuration; /* its last TokenUpdate said AwaitingConfiguration (Setup
                                  * Assistant waits for DeviceConfigured) */
    int64_t identity_not_after;  /* notAfter of its bound certificate (0: not known) */
    int64_t renewal_at;          /* an identity renewal is outstanding since then (0: none) */
    int64_t renewed_at;          /* its identity was last renewed then (0: never) */
    char **groups;               /* names of its device groups */
    size_t n_groups;
};
void store_device_clear(struct store_device *d);
void store_devices_free(struct store_device *d, size_t n);
int store_device_get(struct store *s, const char *device_id, struct store_device *out,
                     struct scepter_error *err) WUR;

struct store_device_filter {
    enum store_platform platform; /* STORE_PLATFORM_UNKNOWN = any */
    int enrolled;                 /* -1 any, 0 not enrolled, 1 enrolled */
    int64_t seen_after;           /* last_seen >= this; 0 = no bound */
    int64_t seen_before;          /* last_seen < this; 0 = no bound */
    const char *group;            /* NULL = any */
    const char *q;                /* UDID, serial number or name containing this; NULL = any */
    int awaiting_configuration;   /* 0 any, 1 awaiting configuration, -1 not awaiting */
    size_t limit;                 /* 0 = no limit */
    size_t offset;
    const char
        *after;    /* only ids after this one (the keyset cursor of the next page); NULL = any */
    size_t *total; /* out, when not NULL: devices matching, before limit/offset (not after) */
};
/* Devices ordered by id. */
int store_device_list(struct store *s, const struct store_device_filter *f,
                      struct store_device **out, size_t *n, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Identity renewal (store/renewal.c)                                                        */

struct store_command;

struct store_renewal_candidate {
    char *device_id;
    int64_t not_after; /* of its bound certificate */
};
void store_renewal_candidates_free(struct store_renewal_candidate *c, size_t n);
/* Enrolled devices whose bound certificate (its notAfter known) expires before `before` and
 * that have no renewal outstanding, soonest first, at most limit (1..100000). */
int store_renewal_candidates(struct store *s, int64_t before, size_t limit,
                             struct store_renewal_candidate **out, size_t *n,
                             struct scepter_error *err) WUR;
/*
 * Queue cmd (the enrollment profile with a fresh identity) for the device channel and mark the
 * renewal outstanding, in one transaction.  cert_hash: the certificate the renewal will
 * present when Scepter made it (a PKCS#12 identity; its notAfter in cert_not_after), or NULL
 * (SCEP).  SCEPTER_ECONFLICT when the device is unknown or already has a renewal outstanding.
 */
int store_renewal_begin(struct store *s, const char *device_id, const struct store_command *cmd,
                        const char *cert_hash, int64_t cert_not_after, int64_t now,
                        struct scepter_error *err) WUR;
/*
 * The device presents a certificate bound to nothing: bind it to the device when, and only
 * when, an identity renewal is outstanding for the device, its channel is enabled, the
 * certificate was never revoked, and it is the renewal's — the PKCS#12 identity the renewal
 * carried, or one the built-in SCEP CA issued to this device, or (an external SCEP CA) one
 * the built-in CA did not issue (then not_after is required).  The device's previous
 * certificates are then revoked
 * ("superseded"), the renewal ends (renewed_at = now); its queue, enrollment and policies are
 * untouched.  not_after: the certificate's (0: taken from what the store knows);
 * *bound_not_after (may be NULL) receives what was recorded.  SCEPTER_EFORBIDDEN otherwise
 * (nothing changes).
 */
int store_renewal_bind(struct store *s, const char *device_id, const char *cert_hash,
                       int64_t not_after, int64_t now, int64_t *bound_not_after,
                       struct scepter_error *err) WUR;
/* Enrolled devices whose bound identity expires before `before` (for /metrics). */
int store_identities_expiring(struct store *s, int64_t before, int64_t *count,
                              struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Removal, re-enrollment, revocation, enrollment tokens, security events (store/security.c) */

struct store_removal {
    int64_t certificates; /* bound certificates revoked */
    int64_t cancelled;    /* queued commands cancelled */
};
/*
 * An operator removes a device: its certificates are revoked (reason "removed"), every queued
 * command of its channels is cancelled, its push tokens, PushMagic, unlock and bootstrap
 * tokens are wiped and its channels disabled; the device row, its results and its history
 * stay for audit.  The device may enroll again, with a new identity.  SCEPTER_ENOTFOUND if
 * unknown.  out may be NULL.
 */
int store_device_remove(struct store *s, const char *device_id, int64_t now,
                        struct store_removal *out, struct scepter_error *err) WUR;
/* Let a new certificate replace the device's active one at Authenticate until `until` (0
 * closes the window).  The window ends with the first re-enrollment.  SCEPTER_ENOTFOUND. */
int store_device_allow_reenroll(struct store *s, const char *device_id, int64_t until,
                                struct scepter_error *err) WUR;
/* SHA-256 hex of the certificates bound to a device now (caller frees with store_strv...). */
int store_device_bindings(struct store *s, const char *device_id, char ***hashes, size_t *n,
                          struct scepter_error *err) WUR;
void store_strv_free(char **v, size_t n);

/*
 * Revoke a device certificate by the SHA-256 of its DER: it is unbound (the device it was
 * bound to can no longer check in or poll with it, on any worker or process, from the next
 * request) and refused at Authenticate from now on.  *device_id: the device it was bound to
 * (caller frees), or NULL.  Returns 0, or 1 when it was already revoked (nothing changes).
 */
int store_cert_revoke(struct store *s, const char *cert_hash, const char *reason, int64_t now,
                      char **device_id, struct scepter_error *err) WUR;

struct store_revocation {
    char cert_hash[65];
    char *device_id; /* or NULL */
    char *reason;    /* "revoked", "superseded", "removed" */
    int64_t revoked_at;
};
void store_revocations_free(struct store_revocation *v, size_t n);
/* Newest first; device_id NULL = every device; limit 0 = all. */
int store_revocations_list(struct store *s, const char *device_id, size_t limit,
                           struct store_revocation **out, size_t *n, struct scepter_error *err) WUR;

/*
 * Enrollment tokens gate /mdm/enroll: only their SHA-256 is stored.  uses_total 0 means
 * unlimited, expires 0 never.  store_enroll_token_use counts one use of a valid token
 * atomically, or SCEPTER_EFORBIDDEN (unknown, expired, used up).
 */
struct store_enroll_token {
    int64_t id;
    char *note;
    int64_t uses_total, uses, expires, created, last_used;
};
void store_enroll_tokens_free(struct store_enroll_token *t, size_t n);
int store_enroll_token_create(struct store *s, const char *hash_hex, const char *note,
                              int64_t uses_total, int64_t expires, int64_t now, int64_t *id,
                              struct scepter_error *err) WUR;
int store_enroll_token_list(struct store *s, struct store_enroll_token **out, size_t *n,
                            struct scepter_error *err) WUR;
int store_enroll_token_delete(struct store *s, int64_t id, struct scepter_error *err) WUR;
int store_enroll_token_use(struct store *s, const char *hash_hex, int64_t now,
                           struct scepter_error *err) WUR;

/* Security events for operators ("mdm.ReenrollRefused", "device.removed", ...). */
struct store_event {
    int64_t id;
    char *kind;
    char *device_id; /* or NULL */
    char *detail;    /* a JSON object */
    int64_t created;
};
struct store_event_filter {
    const char *device_id; /* NULL = any */
    const char *kind;      /* NULL = any */
    int64_t before_id;     /* 0 = the newest; else only ids below (paging) */
    size_t limit;          /* 0 = all */
};
void store_events_free(struct store_event *v, size_t n);
int store_event_add(struct store *s, const char *kind, const char *device_id, const char *detail,
                    int64_t now, struct scepter_error *err) WUR;
/* Newest first. */
int store_event_list(struct store *s, const struct store_event_filter *f, struct store_event **out,
                     size_t *n, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The command queue                                                                         */

enum store_status {
    STORE_STATUS_IDLE = 0,
    STORE_STATUS_ACKNOWLEDGED,
    STORE_STATUS_ERROR,
    STORE_STATUS_COMMAND_FORMAT_ERROR,
    STORE_STATUS_NOTNOW,
};
/* Apple's spelling: "Idle", "Acknowledged", "Error", "CommandFormatError", "NotNow". */
const char *store_status_name(enum store_status st);
/* -1 for an unknown name. */
int store_status_parse(const char *name);

enum store_policy_action { STORE_POLICY_NONE = 0, STORE_POLICY_INSTALL, STORE_POLICY_REMOVE };

struct store_command {
    char uuid[UUID_STR_LEN];
    const char *request_type;
    const unsigned char *plist; /* the whole {CommandUUID, Command} plist sent to the device */
    size_t plist_len;
    int priority; /* higher first; 0 is normal */
    /* Policy bookkeeping: which policy this command installs or removes (0 = none). */
    int64_t policy_id;
    int64_t policy_version;
    enum store_policy_action policy_action;
    int64_t expires; /* UNIX time from which it is no longer delivered (0 = never) */
};

/*
 * Queue one command for n enrollments in one transaction (one command row, n queue rows).
 * Fast for 100,000 enrollments.  SCEPTER_ENOTFOUND (naming it) if an enrollment is unknown;
 * SCEPTER_ECONFLICT if the UUID exists.  Nothing is written on error.
 */
int store_enqueue(struct store *s, const struct store_command *cmd,
                  const char *const *enrollment_ids, size_t n, int64_t now,
                  struct scepter_error *err) WUR;
/*
 * Queue cmds[i] for enrollment_ids[i], i < n, in one transaction.  Entries may repeat a
 * command (same UUID, same content) for several enrollments: it is stored once.
 */
int store_enqueue_each(struct store *s, const struct store_command *cmds,
                       const char *const *enrollment_ids, size_t n, int64_t now,
                       struct scepter_error *err) WUR;

/* A command handed to a device. */
struct store_next {
    char uuid[UUID_STR_LEN];
    char *request_type;
    unsigned char *plist;
    size_t plist_len;
};
void store_next_clear(struct store_next *n);

/* A report from the device on the connect endpoint. */
struct store_report {
    const char *enrollment_id;
    const char *device_id;
    const char *cert_hash; /* non-NULL: refuse unless bound to device_id */
    enum store_status status;
    const char *command_uuid; /* NULL for Idle */
    const unsigned char *raw; /* the result plist as received (not for Idle) */
    size_t raw_len;
    const char *error_chain_json; /* ErrorChain as JSON text, or NULL */
};

enum store_report_outcome {
    STORE_REPORT_IDLE = 0,       /* Idle: nothing recorded */
    STORE_REPORT_RECORDED,       /* the result was stored */
    STORE_REPORT_DUPLICATE,      /* a final result for it already existed: nothing changed */
    STORE_REPORT_UNKNOWN_COMMAND /* not queued for this enrollment (e.g. cancelled): ignored */
};

/*
 * The connect exchange, in one transaction (one round trip on the Idle path):
 *   1. with report->cert_hash, check the binding (SCEPTER_EFORBIDDEN) and that the enrollment
 *      exists and is enabled (SCEPTER_ENOTFOUND);
 *   2. record the report: Acknowledged / Error / CommandFormatError finish the command for
 *      this enrollment; NotNow records the result, bumps its NotNow count and time, and skips
 *      the command for the rest of the exchange; Idle starts a new exchange, making NotNow
 *      commands eligible again;
 *   3. fetch the next command: the oldest active one of the highest priority without a final
 *      result, not skipped in this exchange.  A command handed out but never answered is
 *      offered again (at-least-once).
 * Returns 1 with *next filled, 0 when nothing is queued; *outcome says what happened to the
 * report.  An Idle poll with an empty queue writes nothing (PostgreSQL: no transaction id is
 * taken; the whole exchange is one prepared statement, one round trip).  Delivery is
 * at-least-once: two sessions of one enrollment polling at the same moment may both be
 * handed the same command; its result is recorded once (the second is a DUPLICATE).
 */
int store_connect(struct store *s, const struct store_report *report, int64_t now,
                  struct store_next *next, enum store_report_outcome *outcome,
                  struct scepter_error *err) WUR;

/*
 * Idle polls of several enrollments at once (PostgreSQL answers them all in one statement;
 * SQLite one by one): for each reports[i] (Idle only), rcs[i] is what store_connect would
 * return, with nexts[i] filled when it is 1 and errs[i] when it is negative.  Returns 0, or
 * the negative code of a store failure that hit every item (each rcs[i] says so too).
 */
int store_connect_idle_many(struct store *s, const struct store_report *reports, size_t n,
                            int64_t now, struct store_next *nexts, int *rcs,
                            struct scepter_error *errs);

/* One result report's answer from store_connect_many. */
struct store_answer {
    int rc;                            /* what store_connect would return */
    struct store_next next;            /* when rc == 1 */
    enum store_report_outcome outcome; /* when rc >= 0 */
    char *reported_type;      /* the reported command's RequestType as queued; NULL: not known */
    struct scepter_error err; /* when rc < 0 */
};
/* Free what an answer holds (its next command, reported_type); the struct stays usable. */
void store_answer_clear(struct store_answer *a);

/*
 * Result reports (Acknowledged, Error, CommandFormatError, NotNow; not Idle) of several
 * devices at once, each with the exchange of store_connect, with one commit per batch of up to
 * 16: PostgreSQL records them and fetches each device's next command in one statement (one
 * synchronous commit), SQLite in one transaction.  answers[i] is reports[i]'s: the same rc,
 * next, outcome and refusal that store_connect would give it alone; nothing of a batch is
 * acknowledged before its commit returned.  A report refused by the checks (certificate,
 * enrollment) or by check_report is answered alone and does not hold back the others; should a
 * statement of a batch fail (nothing of it is then kept), its reports are taken again one by
 * one.  Returns 0, or the negative code of a store failure that hit a whole batch (the
 * answers of its reports say so too).  The caller clears every answer (store_answer_clear).
 */
int store_connect_many(struct store *s, const struct store_report *reports, size_t n, int64_t now,
                       struct store_answer *answers);

struct store_push_target; /* below, with the push data */

/*
 * The fast path of queueing one command (no policy) for one device's own channel, which also
 * returns the channel's push data (*push; push->enrollment_id NULL when the channel cannot be
 * pushed; store_push_target_clear it): on PostgreSQL one statement and its commit, on SQLite
 * one transaction of three statements.  With audit (not NULL), that audit entry is written in
 * the same statement or transaction, its id in *audit_id: the change and its record commit
 * together, once.  Returns 1 when the command was queued; 0 when this
 * path does not apply — a device that is unknown or not enabled, a UUID already taken, a
 * command with a policy — and then nothing was written: the
 * caller takes store_targets_resolve + store_enqueue, which say why (as for a command or
 * device id these would refuse).  Negative: a store error (nothing written).
 */
struct store_audit_entry;
int store_enqueue_device(struct store *s, const struct store_command *cmd, const char *device_id,
                         int64_t now, const struct store_audit_entry *audit, int64_t *audit_id,
                         struct store_push_target *push, struct scepter_error *err) WUR;

struct store_queue_item {
    char uuid[UUID_STR_LEN];
    char *request_type;
    int priority;
    int64_t created;
    /* "queued", "NotNow", "Acknowledged", "Error", "CommandFormatError", "cancelled",
     * "Expired" */
    char *status;
    int notnow_count;
    int64_t last_notnow_at; /* 0 = never */
    int64_t result_at;      /* 0 = no result */
    int64_t expires;        /* 0 = never */
    bool active;
};
void store_queue_items_free(struct store_queue_item *items, size_t n);
/* The enrollment's commands, oldest first; finished ones too when include_finished. */
int store_queue_list(struct store *s, const char *enrollment_id, bool include_finished,
                     struct store_queue_item **out, size_t *n, struct scepter_error *err) WUR;
/* A page of the enrollment's finished entries (Acknowledged, Error, CommandFormatError,
 * cancelled, Expired), newest first: those queued before the entry whose cursor is before (0:
 * from the newest), at most limit (1..STORE_HISTORY_MAX).  *next is the cursor of the next
 * page, 0 when this one is the last.  Reads the history's index entries, but only the page's
 * rows. */
#define STORE_HISTORY_MAX 1000
int store_queue_history(struct store *s, const char *enrollment_id, int64_t before, size_t limit,
                        struct store_queue_item **out, size_t *n, int64_t *next,
                        struct scepter_error *err) WUR;
/* Cancel one queued command: SCEPTER_ENOTFOUND if it is not queued for the enrollment,
 * SCEPTER_ECONFLICT if it already has a final result.  A cancelled entry keeps the time of
 * its last activity (enqueue or NotNow): retention counts its age from there. */
int store_queue_cancel(struct store *s, const char *enrollment_id, const char *uuid,
                       struct scepter_error *err) WUR;
/* Cancel every queued command of the enrollment; *cancelled says how many. */
int store_queue_clear(struct store *s, const char *enrollment_id, size_t *cancelled,
                      struct scepter_error *err) WUR;

struct store_result {
    char uuid[UUID_STR_LEN];
    char *request_type;
    char *status;       /* as in store_queue_item */
    unsigned char *raw; /* the last result plist, or NULL */
    size_t raw_len;
    char *error_chain_json; /* or NULL */
    int notnow_count;
    int64_t created, result_at;
};
void store_result_clear(struct store_result *r);
int store_result_get(struct store *s, const char *enrollment_id, const char *uuid,
                     struct store_result *out, struct scepter_error *err) WUR;

/*
 * Retention: delete finished queue entries and results older than `before`, and commands no
 * longer referenced, in batches of `batch` rows (each its own short transaction, so check-ins
 * are not blocked).  *deleted counts queue entries removed.  Pending entries are never
 * deleted, nor the newest entry linking an enrollment to an existing policy (it is what
 * store_policy_status() reports).  SCEPTER_EINVAL unless 1 <= batch <= 1,000,000.
 */
int store_retention(struct store *s, int64_t before, size_t batch, size_t *deleted,
                    struct scepter_error *err) WUR;

/*
 * Expiry: queue entries still without a final result whose command's `expires` time is at or
 * before now become final with status "Expired" (at most limit of them per call, 1 to
 * 1,000,000; *expired says how many).  The next-command lookups of store_connect already skip
 * them from that moment: an expired command is never delivered.
 */
int store_queue_expire(struct store *s, int64_t now, size_t limit, size_t *expired,
                       struct scepter_error *err) WUR;

/* Number of active queue entries without a final result (for /metrics). */
int store_queue_depth(struct store *s, int64_t *depth, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Push                                                                                      */

struct store_push_target {
    char *enrollment_id;
    char *topic;
    char *token_hex; /* lower-case hex of the device token */
    char *push_magic;
};
void store_push_targets_free(struct store_push_target *t, size_t n);
/* Free what one target holds; the struct is zeroed. */
void store_push_target_clear(struct store_push_target *t);
/* Push data of the given enrollments that are enabled and hold a valid token. */
int store_push_targets(struct store *s, const char *const *enrollment_ids, size_t n,
                       struct store_push_target **out, size_t *nout, struct scepter_error *err) WUR;
/* APNs said the token is dead (410, BadDeviceToken...): mark it invalid, if it is still the
 * stored token.  A later TokenUpdate revives the enrollment. */
int store_push_token_invalidate(struct store *s, const char *enrollment_id, const char *token_hex,
                                int64_t now, struct scepter_error *err) WUR;
/* Enabled enrollments with a valid token and pending commands that have not been seen since
 * `seen_before`, at most `limit`, for the periodic re-push.  Caller frees each and the array. */
int store_repush_candidates(struct store *s, int64_t seen_before, size_t limit, char ***ids,
                            size_t *n, struct scepter_error *err) WUR;

struct store_pushcert {
    char *topic;
    char *cert_pem;
    char *key_pem;
    int64_t version; /* bumped on every change: pollers reload when it moves */
    int64_t not_after;
    int64_t updated;
};
void store_pushcert_clear(struct store_pushcert *p);
/*
 * Save the push certificate.  If enabled enrollments use another topic and !force,
 * SCEPTER_ECONFLICT naming the topic in use (a silent topic change strands every device).
 */
int store_pushcert_put(struct store *s, const struct store_pushcert *p, bool force, int64_t now,
                       struct scepter_error *err) WUR;
/* SCEPTER_ENOTFOUND when none is stored. */
int store_pushcert_get(struct store *s, struct store_pushcert *out, struct scepter_error *err) WUR;
/* The version only (cheap, for hot-reload polling); 0 when none. */
int store_pushcert_version(struct store *s, int64_t *version, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Device groups                                                                             */

struct store_group {
    int64_t id;
    char *name;
    size_t members;
    size_t by_platform[STORE_PLATFORM_COUNT]; /* members per platform (store_group_list) */
    int64_t created;
};
void store_groups_free(struct store_group *g, size_t n);
/* SCEPTER_ECONFLICT if the name exists. */
int store_group_create(struct store *s, const char *name, int64_t now, int64_t *id,
                       struct scepter_error *err) WUR;
int store_group_rename(struct store *s, const char *name, const char *new_name,
                       struct scepter_error *err) WUR;
int store_group_delete(struct store *s, const char *name, struct scepter_error *err) WUR;
int store_group_list(struct store *s, struct store_group **out, size_t *n,
                     struct scepter_error *err) WUR;
int store_group_get(struct store *s, const char *name, struct store_group *out,
                    struct scepter_error *err) WUR;
/* Device ids of a group, sorted. */
int store_group_members(struct store *s, const char *name, char ***device_ids, size_t *n,
                        struct scepter_error *err) WUR;
/* Add/remove devices; SCEPTER_ENOTFOUND naming an unknown device or group.  *changed counts
 * memberships actually added/removed. */
int store_group_add(struct store *s, const char *name, const char *const *device_ids, size_t n,
                    size_t *changed, struct scepter_error *err) WUR;
int store_group_remove(struct store *s, const char *name, const char *const *device_ids, size_t n,
                       size_t *changed, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Policies (Mac / iOS SCEP Profiles)                                                        */

struct store_policy {
    int64_t id;     /* 0 before creation */
    char *uid;      /* caller-chosen UUID fixed at creation (the profile's
                       PayloadIdentifier derives from it); never changes */
    char *type;     /* "scep" */
    char *platform; /* "macos" or "ios" */
    char *name;     /* unique per platform */
    /* The canonical policy document (JSON text, at most 4 MiB): profiles/ owns its format
     * (profile_policy_document); the store keeps it whole and never parses it. */
    char *document;
    char **target_devices; /* device ids */
    size_t n_target_devices;
    char **target_groups; /* group names */
    size_t n_target_groups;
    int64_t version; /* 1 at creation, +1 per update */
    int64_t created, updated;
};
void store_policy_clear(struct store_policy *p);
void store_policies_free(struct store_policy *p, size_t n);

/* A device a policy reaches, with the facts needed to render its profile. */
struct store_target_device {
    char *device_id;
    char *enrollment_id; /* its device channel */
    enum store_platform platform;
    char *serial_number, *device_name, *model, *product_name, *os_version;
};
void store_target_devices_free(struct store_target_device *t, size_t n);

/*
 * The enrolled devices (device channel enabled) named directly or through the groups, whose
 * platform is one of platforms[0..nplat) (nplat 0: any platform), deduplicated, sorted by id.
 * Unknown device ids or group names: SCEPTER_ENOTFOUND, err->field "targets.devices" /
 * "targets.device_groups".
 */
int store_targets_resolve(struct store *s, const char *const *device_ids, size_t ndev,
                          const char *const *groups, size_t ngroups,
                          const enum store_platform *platforms, size_t nplat,
                          struct store_target_device **out, size_t *n,
                          struct scepter_error *err) WUR;

/*
 * The enabled macOS user channels (STORE_ENROLL_USER) of the given devices, for policies that
 * install into a user's keychain: parallel lists of device id and user-channel enrollment id
 * (caller frees both with store_strv_free), sorted by device id, then enrollment id.
 */
int store_user_channels(struct store *s, const char *const *device_ids, size_t ndev,
                        char ***dev_out, char ***enrollment_ids, size_t *n,
                        struct scepter_error *err) WUR;

/*
 * Save a policy and queue what the save implies, in one transaction.
 *   p->id == 0: create (p->id, version, created and updated are filled in);
 *   otherwise: update that policy (SCEPTER_ENOTFOUND if gone), version + 1.
 * cmds[i] is queued for enrollment_ids[i] (i < n) and linked to the policy (policy_id and
 * policy_version are filled in by the store).  A duplicate (platform, name) is
 * SCEPTER_ECONFLICT with field "name".
 */
int store_policy_save(struct store *s, struct store_policy *p, const struct store_command *cmds,
                      const char *const *enrollment_ids, size_t n, int64_t now,
                      struct scepter_error *err) WUR;
/* Delete a policy and queue the given (RemoveProfile) commands, in one transaction. */
int store_policy_delete(struct store *s, int64_t id, const struct store_command *cmds,
                        const char *const *enrollment_ids, size_t n, int64_t now,
                        struct scepter_error *err) WUR;
int store_policy_get(struct store *s, int64_t id, struct store_policy *out,
                     struct scepter_error *err) WUR;
/* platform NULL = all; ordered by id. */
int store_policy_list(struct store *s, const char *platform, struct store_policy **out, size_t *n,
                      struct scepter_error *err) WUR;
/* One statement for a device that just enrolled: *policies — a policy targets it or it has
 * policy commands in its device channel's queue; *user_channels — it has an enabled user
 * channel.  When both are false there is nothing for policies to do. */
int store_device_policy_probe(struct store *s, const char *device_id, bool *policies,
                              bool *user_channels, struct scepter_error *err) WUR;
/* Ids of the policies that target the device directly or through one of its groups. */
int store_policies_for_device(struct store *s, const char *device_id, int64_t **ids, size_t *n,
                              struct scepter_error *err) WUR;
/* The policies that target the device, read in one statement, their targets left empty (what a
 * DDM sync computes from), ordered by id (store_policies_free). */
int store_policies_of_device(struct store *s, const char *device_id, struct store_policy **out,
                             size_t *n, struct scepter_error *err) WUR;
/*
 * The same for many devices in one statement (a policy save): (device_ids_out[i], policy_ids[i])
 * pairs, i < *n, ordered by device id then policy id (bytewise); a device no policy targets has
 * none.  The caller frees both (store_strv_free, free).
 */
int store_policies_for_devices(struct store *s, const char *const *device_ids, size_t ndev,
                               char ***device_ids_out, int64_t **policy_ids, size_t *n,
                               struct scepter_error *err) WUR;

/* Where a policy stands on one device, from its latest install/remove command there. */
enum store_policy_state {
    STORE_PSTATE_PENDING,       /* InstallProfile queued */
    STORE_PSTATE_INSTALLED,     /* acknowledged */
    STORE_PSTATE_FAILED,        /* the device answered Error or CommandFormatError */
    STORE_PSTATE_REMOVING,      /* RemoveProfile queued */
    STORE_PSTATE_REMOVED,       /* RemoveProfile acknowledged */
    STORE_PSTATE_REMOVE_FAILED, /* RemoveProfile refused */
    STORE_PSTATE_CANCELLED,     /* the command was cancelled before delivery */
    STORE_PSTATE_EXPIRED,       /* the command expired before a result */
};
/* "pending", "installed", "failed", "removing", "removed", "remove_failed", "cancelled",
 * "expired". */
const char *store_policy_state_name(enum store_policy_state st);
struct store_policy_device_status {
    int64_t policy_id; /* set by store_enrollment_policy_status */
    char *device_id;
    char *enrollment_id;
    char uuid[UUID_STR_LEN]; /* the latest linked command */
    char request_type[32];   /* its RequestType (InstallProfile, DeclarativeManagement, ...) */
    enum store_policy_action action;
    int64_t policy_version;
    enum store_policy_state state;
    char *error_chain_json; /* when failed */
    int notnow_count;
    int64_t updated;
    /* The device's facts (store_policy_status only; NULL / UNKNOWN when not known). */
    char *device_name, *serial_number, *os_version;
    enum store_platform platform;
};
void store_policy_statuses_free(struct store_policy_device_status *s, size_t n);
/* One entry per enrollment that ever got a command of the policy (a Mac's user channels each
 * have their own), ordered by device id, then enrollment id. */
int store_policy_status(struct store *s, int64_t policy_id, struct store_policy_device_status **out,
                        size_t *n, struct scepter_error *err) WUR;
/*
 * The other way round: where every policy stands on one enrollment (the policies that ever
 * queued a command for it), ordered by policy id.  One indexed query, whatever the size of the
 * policies — what a device's enrollment, group change or page needs.
 */
int store_enrollment_policy_status(struct store *s, const char *enrollment_id,
                                   struct store_policy_device_status **out, size_t *n,
                                   struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Declarative Device Management (store/ddm.c): what devices report; declarations themselves  */
/* are computed from the policies (mdm/ddm.c), never stored                                   */

/* One declaration as the device reported it (status item management.declarations). */
struct store_ddm_status {
    const char *kind;         /* "activations", "configurations", "assets", "management" */
    const char *identifier;   /* the declaration's Identifier */
    const char *server_token; /* the ServerToken the device holds */
    bool active;
    const char *valid;         /* "valid", "invalid" or "unknown" */
    const char *reasons_json;  /* JSON array of the reasons, or NULL */
    int64_t updated;           /* out: when it was reported */
    const char *enrollment_id; /* out (store_ddm_status_page only) */
};
/* A status list read back (store_ddm_status_list): every string is owned by the list. */
struct store_ddm_statuses {
    struct store_ddm_status *v;
    size_t n;
};
void store_ddm_statuses_clear(struct store_ddm_statuses *l);

/* What a status report says, as the store keeps it. */
struct store_ddm_report {
    const char *enrollment_id;
    const char *device_id;
    /* The declarations: with has_declarations, items[0..n) replace every row the enrollment
     * had (the status item lists all of them); without, the rows are left alone. */
    bool has_declarations;
    const struct store_ddm_status *items;
    size_t n;
    const char *os_version;    /* device.operating-system.version, or NULL */
    const char *model_family;  /* device.model.family, or NULL */
    const char *build_version; /* device.operating-system.build-version, or NULL */
};
/*
 * Keep a status report, in one transaction: the declaration rows, the device facts
 * (os_version and build_version are also written to the device record).  SCEPTER_EINVAL naming the
 * field for an empty or over-long value (identifier, server_token <= 1024 bytes, reasons <= 64
 * KiB), SCEPTER_ENOTFOUND when the enrollment is unknown; nothing is stored then.
 */
int store_ddm_report_save(struct store *s, const struct store_ddm_report *r, int64_t now,
                          struct scepter_error *err) WUR;
/* The rows of one enrollment, ordered by kind and identifier (*out is the caller's). */
int store_ddm_status_list(struct store *s, const char *enrollment_id,
                          struct store_ddm_statuses *out, struct scepter_error *err) WUR;
/*
 * The rows of many enrollments at once (GET /v1/policies/{id}/status: one query for the page),
 * only the identifiers starting with prefix, ordered by enrollment, kind and identifier; each
 * row's enrollment_id says whose it is.
 */
int store_ddm_status_page(struct store *s, const char *const *enrollment_ids, size_t n,
                          const char *prefix, struct store_ddm_statuses *out,
                          struct scepter_error *err) WUR;
/*
 * A device moved from a policy's profile to its declarations (OS upgrade past the threshold):
 * remember that the profile is still on it (add), list the policies an enrollment is handing
 * over (ids and uids, caller frees both with free / store_strv_free), and forget one (done).
 */
int store_ddm_handover_add(struct store *s, const char *enrollment_id, int64_t policy_id,
                           const char *policy_uid, int64_t now, struct scepter_error *err) WUR;
int store_ddm_handover_list(struct store *s, const char *enrollment_id, int64_t **policy_ids,
                            char ***policy_uids, size_t *n, struct scepter_error *err) WUR;
int store_ddm_handover_done(struct store *s, const char *enrollment_id, int64_t policy_id,
                            struct scepter_error *err) WUR;
/* The device a certificate (SHA-256 hex) is bound to (*device_id: caller frees), for requests
 * that carry no UDID (asset data); SCEPTER_ENOTFOUND when it is bound to none. */
int store_ddm_cert_device(struct store *s, const char *cert_hash, char **device_id,
                          struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* API keys (only SHA-256 hashes are stored)                                                 */

/* Roles of operator accounts and API keys, ordered: each can do what the ones below can. */
enum store_role {
    STORE_ROLE_NONE = 0, /* unset: refused everywhere */
    STORE_ROLE_VIEWER,   /* reads */
    STORE_ROLE_OPERATOR, /* policies, groups, commands, pushes, devices */
    STORE_ROLE_ADMIN,    /* everything: accounts, API keys, push certificate, revocations */
};
/* "viewer", "operator", "admin" ("none" for anything else). */
const char *store_role_name(enum store_role r);
/* The role named s into *out: 0, or -1 (and STORE_ROLE_NONE) for anything else. */
int store_role_parse(const char *s, enum store_role *out);

struct store_apikey {
    int64_t id;
    char *name;
    char *hash_prefix; /* first 8 hex digits, to tell keys apart */
    int64_t created, last_used;
    enum store_role role;
};
void store_apikeys_free(struct store_apikey *k, size_t n);
int store_apikey_create(struct store *s, const char *name, const char *hash_hex,
                        enum store_role role, int64_t now, int64_t *id,
                        struct scepter_error *err) WUR;
/* The key whose hash is hash_hex: its id, role and name (*name: caller frees) into the
 * outputs; SCEPTER_EAUTH when there is none. */
int store_apikey_auth(struct store *s, const char *hash_hex, int64_t *id, enum store_role *role,
                      char **name, struct scepter_error *err) WUR;
/* 0 when the hash belongs to a key (its id in *id), SCEPTER_EAUTH otherwise. */
int store_apikey_check(struct store *s, const char *hash_hex, int64_t *id,
                       struct scepter_error *err) WUR;
/* Record that key id was used at now (written at most once a minute per key). */
int store_apikey_touch(struct store *s, int64_t id, int64_t now, struct scepter_error *err) WUR;
int store_apikey_list(struct store *s, struct store_apikey **out, size_t *n,
                      struct scepter_error *err) WUR;
int store_apikey_delete(struct store *s, int64_t id, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Web console sessions (store/session.c; only the SHA-256 of a session id is stored)        */

struct store_session {
    char csrf_token[129];
    char key_hash[65];      /* SHA-256 (hex) of the API key that signed in ("" for an account) */
    int64_t apikey_id;      /* that key's id when it is a stored key that still exists, else 0 */
    int64_t operator_id;    /* the operator account that signed in, 0 for an API key */
    char actor[256];        /* that account's name, or the stored key's name ("" otherwise) */
    enum store_role role;   /* the account's or stored key's role now (NONE otherwise) */
    bool operator_disabled; /* the account is disabled */
    int64_t created;
    int64_t expires;   /* the session ends then, whatever its use */
    int64_t last_seen; /* the idle timeout counts from here */
    int64_t revoked;   /* when it was signed out, 0 = not */
};
/* A new session (last_seen = now).  SCEPTER_EINVAL naming the field for a bad argument,
 * SCEPTER_ECONFLICT when the hash exists. */
int store_session_create(struct store *s, const char *hash_hex, const char *csrf_token,
                         const char *key_hash_hex, const char *peer, int64_t now, int64_t expires,
                         struct scepter_error *err) WUR;
/* A new session signed in by operator account operator_id (key_hash ""). */
int store_session_create_operator(struct store *s, const char *hash_hex, const char *csrf_token,
                                  int64_t operator_id, const char *peer, int64_t now,
                                  int64_t expires, struct scepter_error *err) WUR;
/* The session whose id hashes to hash_hex, expired or revoked ones included (the caller
 * decides); SCEPTER_ENOTFOUND (field "session") when there is none. */
int store_session_get(struct store *s, const char *hash_hex, struct store_session *out,
                      struct scepter_error *err) WUR;
/* last_seen = now, written only when it is at least `granularity` seconds old (so a busy
 * session is written at most once per granularity); a revoked session is left alone. */
int store_session_touch(struct store *s, const char *hash_hex, int64_t now, int64_t granularity,
                        struct scepter_error *err) WUR;
/* Sign-out: revoked = now.  SCEPTER_ENOTFOUND when there is no such live session. */
int store_session_revoke(struct store *s, const char *hash_hex, int64_t now,
                         struct scepter_error *err) WUR;
/* Delete the sessions that can no longer be used: expired at now, unused since before
 * idle_before, or revoked.  *deleted receives how many. */
int store_session_purge(struct store *s, int64_t now, int64_t idle_before, int64_t *deleted,
                        struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Operator accounts (store/operators.c; the password hash is made by the caller)            */

struct store_operator {
    int64_t id;
    char *name;
    enum store_role role;
    char *password_hash; /* crypto_pwhash_str string; NULL in lists */
    bool disabled;
    int64_t created, updated, password_changed, last_sign_in; /* last_sign_in 0 = never */
};
void store_operator_clear(struct store_operator *o);
void store_operators_free(struct store_operator *v, size_t n);
/* SCEPTER_EINVAL naming field unless name is 1-64 of [A-Za-z0-9._@-]. */
int store_operator_name_check(const char *name, const char *field, struct scepter_error *err) WUR;
/* A new account; SCEPTER_ECONFLICT (field "name") when the name is taken. */
int store_operator_create(struct store *s, const char *name, enum store_role role,
                          const char *password_hash, int64_t now, int64_t *id,
                          struct scepter_error *err) WUR;
/* One account with its hash (store_operator_clear); SCEPTER_ENOTFOUND. */
int store_operator_get(struct store *s, const char *name, struct store_operator *out,
                       struct scepter_error *err) WUR;
/* Every account by name, without hashes. */
int store_operator_list(struct store *s, struct store_operator **out, size_t *n,
                        struct scepter_error *err) WUR;
/* How many enabled admin accounts there are. */
int store_operator_admins(struct store *s, int64_t *count, struct scepter_error *err) WUR;
/* What an update changes; password_hash NULL = unchanged. */
struct store_operator_change {
    bool set_role;
    enum store_role role;
    bool set_disabled;
    bool disabled;
    const char *password_hash;
};
/*
 * Change an account in one transaction: SCEPTER_ENOTFOUND, SCEPTER_ECONFLICT (field "role"
 * or "disabled") when it would leave no enabled admin.  A new password revokes the account's
 * sessions but keep_session_hash (NULL: all); disabling it revokes all; *revoked says how
 * many.  *before (when non-NULL) receives the account as it was (store_operator_clear).
 */
int store_operator_update(struct store *s, const char *name, const struct store_operator_change *ch,
                          const char *keep_session_hash, int64_t now, struct store_operator *before,
                          int64_t *revoked, struct scepter_error *err) WUR;
/* Delete an account and its sessions; SCEPTER_ENOTFOUND, SCEPTER_ECONFLICT for the last
 * enabled admin. */
int store_operator_delete(struct store *s, const char *name, struct scepter_error *err) WUR;
/* last_sign_in = now. */
int store_operator_signed_in(struct store *s, int64_t id, int64_t now,
                             struct scepter_error *err) WUR;
/* Revoke the live sessions of account id but keep_session_hash (NULL: all). */
int store_operator_sessions_revoke(struct store *s, int64_t id, const char *keep_session_hash,
                                   int64_t now, int64_t *revoked, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The audit log (store/audit.c)                                                             */

struct store_audit_entry {
    int64_t id, at;
    char *actor_type; /* "operator", "api_key", "anonymous" (a refused sign-in) */
    char *actor_name;
    char *address; /* the client's address */
    char *action;  /* "policy.update", "operator.create", "session.fail", ... */
    char *route;   /* "PUT /v1/policies/{id}" */
    char *object;  /* what was changed ("" when nothing names it) */
    char *summary; /* short before/after, never a secret */
};
void store_audit_entries_free(struct store_audit_entry *v, size_t n);
/* Append an entry (the strings of e are borrowed); its id into *id. */
int store_audit_add(struct store *s, const struct store_audit_entry *e, int64_t *id,
                    struct scepter_error *err) WUR;
/* NULL / 0 fields do not filter.  action ending in '*' is a prefix. */
struct store_audit_filter {
    const char *actor, *action, *object;
    int64_t since, until; /* at within [since, until]; until 0 = no end */
    int64_t before;       /* id < before (paging), 0 = from the newest */
    size_t limit;         /* 0 or over 1000: 1000 */
};
/* Entries newest first (by id). */
int store_audit_list(struct store *s, const struct store_audit_filter *f,
                     struct store_audit_entry **out, size_t *n, struct scepter_error *err) WUR;
/* Delete entries older than before (retention). */
int store_audit_purge(struct store *s, int64_t before, int64_t *deleted,
                      struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Outbox (events that must be delivered later, e.g. webhooks)                               */

struct store_outbox_item {
    int64_t id;
    char *kind;
    char *body;
    int attempts;
    int64_t created, next_at;
};
void store_outbox_items_free(struct store_outbox_item *items, size_t n);
int store_outbox_add(struct store *s, const char *kind, const char *body, int64_t now,
                     struct scepter_error *err) WUR;
/*
 * Claim up to max items due at `now`: their next_at moves to now + lease so no other process
 * claims them meanwhile (PostgreSQL: FOR UPDATE SKIP LOCKED).
 */
int store_outbox_claim(struct store *s, int64_t now, int64_t lease, size_t max,
                       struct store_outbox_item **out, size_t *n, struct scepter_error *err) WUR;
int store_outbox_done(struct store *s, int64_t id, struct scepter_error *err) WUR;
int store_outbox_retry(struct store *s, int64_t id, int64_t next_at, const char *last_error,
                       struct scepter_error *err) WUR;
/* Items waiting for delivery (dead letters not counted). */
int store_outbox_pending(struct store *s, int64_t *count, struct scepter_error *err) WUR;

/*
 * Dead letters (store/webhook_dead.c): an outbox item that failed delivery too many times is
 * marked dead — kept, never claimed — until an operator retries it (back in the outbox, due
 * now, attempts from 0) or drops it.  kind selects the outbox ("webhook").
 */
struct store_dead_item {
    int64_t id;
    char *kind, *body, *last_error;
    int attempts;
    int64_t created, dead_at;
};
void store_dead_items_free(struct store_dead_item *items, size_t n);
/* Mark item id dead at now with the last error.  SCEPTER_ENOTFOUND if no live item has id. */
int store_outbox_kill(struct store *s, int64_t id, int64_t now, const char *last_error,
                      struct scepter_error *err) WUR;
/* Dead letters of kind, newest first, at most limit. */
int store_outbox_dead_list(struct store *s, const char *kind, size_t limit,
                           struct store_dead_item **out, size_t *n, struct scepter_error *err) WUR;
int store_outbox_dead_count(struct store *s, const char *kind, int64_t *count,
                            struct scepter_error *err) WUR;
/* Back to the outbox, due at now with attempts reset: dead letter id, or every dead letter of
 * kind when id is 0; *moved says how many.  SCEPTER_ENOTFOUND when id is not a dead letter. */
int store_outbox_dead_retry(struct store *s, const char *kind, int64_t id, int64_t now,
                            int64_t *moved, struct scepter_error *err) WUR;
/* Delete dead letter id.  SCEPTER_ENOTFOUND when id is not a dead letter of kind. */
int store_outbox_dead_delete(struct store *s, const char *kind, int64_t id,
                             struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Background-job leases: one process runs a job at a time, whatever the number of processes */

/*
 * Take or renew the lease on `job` for `holder` until now + ttl.  Returns 1 if this holder
 * has it, 0 if another holder's lease is still valid.
 */
int store_lease(struct store *s, const char *job, const char *holder, int64_t now, int64_t ttl,
                struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The built-in SCEP CA (store/scep.c): issued certificates and one-time challenges          */

/* An issued certificate.  Strings are owned (store_scep_cert_clear). */
struct store_scep_cert {
    char *ca, *serial, *subject, *sans, *device_id, *cert_sha256, *kind, *renewed_from;
    int64_t not_before, not_after, issued_at, revoked_at; /* revoked_at 0 = not revoked */
};
void store_scep_cert_clear(struct store_scep_cert *c);
void store_scep_certs_free(struct store_scep_cert *v, size_t n);
/*
 * Record an issued certificate (c->device_id may be NULL).  With a one-time challenge, the
 * challenge is consumed in the same transaction and its device recorded with the certificate
 * (*device_id, when non-NULL, receives a copy): SCEPTER_EFORBIDDEN and nothing recorded when
 * it is unknown, for another CA, expired or already used.  SCEPTER_ECONFLICT on a serial the
 * CA already issued.
 */
int store_scep_cert_add(struct store *s, const struct store_scep_cert *c, const char *challenge,
                        int64_t now, char **device_id, struct scepter_error *err) WUR;
/* One certificate by CA and serial (canonical hex); SCEPTER_ENOTFOUND. */
int store_scep_cert_get(struct store *s, const char *ca, const char *serial,
                        struct store_scep_cert *out, struct scepter_error *err) WUR;
/* Certificates of a CA, newest first: all, or only the revoked ones (for the CRL).  limit 0:
 * every revoked one with revoked_only, else at most 10,000. */
int store_scep_certs_list(struct store *s, const char *ca, bool revoked_only, size_t limit,
                          struct store_scep_cert **out, size_t *n, struct scepter_error *err) WUR;
/* Revoke: 0, 1 when it already was, SCEPTER_ENOTFOUND when the CA never issued it. */
int store_scep_cert_revoke(struct store *s, const char *ca, const char *serial, int64_t now,
                           struct scepter_error *err) WUR;

/* A new one-time challenge of a CA for a device, valid until expires (> now): 32 hex digits
 * into out.  Only its SHA-256 is stored. */
#define STORE_SCEP_CHALLENGE_LEN 33
int store_scep_challenge_create(struct store *s, const char *ca, const char *device_id,
                                int64_t expires, int64_t now, char out[STORE_SCEP_CHALLENGE_LEN],
                                struct scepter_error *err) WUR;
/* The same, bound to what the profile carrying it asks for: expect (one "KEY=value" per line,
 * scep_expect_check in scep/scep.h) is kept with it, NULL = any request. */
int store_scep_challenge_create_bound(struct store *s, const char *ca, const char *device_id,
                                      const char *expect, int64_t expires, int64_t now,
                                      char out[STORE_SCEP_CHALLENGE_LEN],
                                      struct scepter_error *err) WUR;
/* Look a one-time challenge up without using it: 0 with its device and expectation (NULL
 * when unbound; both owned) when this CA issued it and it is unused and unexpired, else
 * SCEPTER_EFORBIDDEN.  store_scep_cert_add consumes it. */
int store_scep_challenge_peek(struct store *s, const char *ca, const char *challenge, int64_t now,
                              char **device_id, char **expect, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The console's overview: dashboard figures, the cross-device command view (dashboard.c)   */

struct store_dashboard {
    int64_t enrolled[STORE_PLATFORM_COUNT]; /* enrolled devices (device channel enabled) */
    int64_t seen;                           /* device channels seen since seen_since */
    int64_t pending;                        /* queue entries without a final result */
    int64_t failed;                         /* Error / CommandFormatError since failed_since */
};
int store_dashboard_get(struct store *s, int64_t seen_since, int64_t failed_since,
                        struct store_dashboard *out, struct scepter_error *err) WUR;

/* Queue entries by state: queued, NotNow (still pending), Acknowledged, Error (with
 * CommandFormatError), cancelled (or deactivated). */
struct store_command_counts {
    int64_t queued, notnow, acknowledged, error, cancelled;
};
struct store_command_summary {
    char uuid[UUID_STR_LEN];
    char *request_type;
    int64_t created;
    int64_t policy_id; /* 0: an operator's command */
    int64_t last_result_at;
    struct store_command_counts counts;
};
enum store_command_origin { STORE_ORIGIN_ANY = 0, STORE_ORIGIN_OPERATOR, STORE_ORIGIN_POLICY };
struct store_command_filter {
    const char *request_type; /* NULL: any */
    enum store_command_origin origin;
    size_t limit, offset; /* limit 0: 50 */
};
void store_command_summaries_free(struct store_command_summary *v, size_t n);
/* Commands newest first, each with its queue entries counted by state; *total counts the
 * commands the filter matches and *all (optional) every queue entry by state. */
int store_command_summaries(struct store *s, const struct store_command_filter *f,
                            struct store_command_summary **out, size_t *n, size_t *total,
                            struct store_command_counts *all, struct scepter_error *err) WUR;

/* One command's entries, device by device (SCEPTER_ENOTFOUND for an unknown command). */
struct store_command_target {
    char *enrollment_id, *device_id, *device_name, *serial_number;
    enum store_platform platform;
    char *status; /* as in store_queue_item */
    int notnow_count;
    int64_t result_at, updated;
    char *error_chain_json; /* the device's ErrorChain, or NULL */
};
void store_command_targets_free(struct store_command_target *v, size_t n);
int store_command_targets(struct store *s, const char *uuid, size_t limit, size_t offset,
                          struct store_command_summary *cmd, struct store_command_target **out,
                          size_t *n, struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Test hooks                                                                                */

/* Make the nth store call from now on fail with SCEPTER_ESTORE (0 = off).  Tests only. */
void store_fail_after(struct store *s, int n);
/*
 * Make the nth database statement from now on fail with SCEPTER_ESTORE (0 = off), counting
 * BEGIN, COMMIT and every statement inside calls: a failure in the middle of a call shows
 * that the call keeps nothing.  Tests only.
 */
void store_fail_statement_after(struct store *s, int n);
/* Run raw SQL (several statements, no result) on the connection.  Tests and benchmarks
 * only: to set up large fixtures fast, or to simulate a newer schema. */
int store_exec_sql(struct store *s, const char *sql, struct scepter_error *err) WUR;

#endif
