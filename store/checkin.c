/*
 * store/checkin.c — devices and enrollments as the check-in protocol changes them:
 * Authenticate (device facts, certificate binding, a clean restart of the enrollment and its
 * queue), TokenUpdate (push token, PushMagic, enabling the channel; user channels are created
 * here), CheckOut, facts from DeviceInformation, bootstrap tokens, batched last-seen times,
 * and reading devices and enrollments back for the operator API.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/str.h"
#include "common/xmalloc.h"

/* Queue entries of every channel of a device that are still pending become cancelled. */
static const struct store_sql SQL_QUEUE_DEACTIVATE_DEVICE = {
    "queue_deactivate_device",
    "UPDATE queue SET state = 2, notnow = false, updated = $2"
    " WHERE state = 0 AND enrollment_id IN (SELECT id FROM enrollments WHERE device_id = $1)",
    NULL, NULL};

/* A new enrollment starts its policy state from nothing: unenrolling removed every profile MDM
 * installed, so what the device's earlier enrollments installed or were sent no longer
 * counts (the rows stay as history; retention may delete them once finished). */
static const struct store_sql SQL_QUEUE_POLICY_DETACH = {
    "queue_policy_detach",
    "UPDATE queue SET policy_id = NULL"
    " WHERE policy_id IS NOT NULL"
    " AND enrollment_id IN (SELECT id FROM enrollments WHERE device_id = $1)",
    NULL, NULL};

/* A new enrollment ends an identity renewal (its InstallProfile was just deactivated). */
static const struct store_sql SQL_RENEWAL_RESET = {
    "renewal_reset",
    "UPDATE devices SET renewal_uuid = NULL, renewal_at = 0, renewal_cert = NULL,"
    " renewal_not_after = 0 WHERE id = $1 AND renewal_at <> 0",
    NULL, NULL};

static const struct store_sql SQL_CERT_OWNER = {
    "cert_owner", "SELECT device_id FROM cert_bindings WHERE cert_hash = $1", NULL, NULL};

static const struct store_sql SQL_CERT_BIND = {
    "cert_bind",
    "INSERT INTO cert_bindings (cert_hash, device_id, created, not_after) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};

/* The device row of an Authenticate: $1-$14 (id … authenticated_at), kept facts when the
 * message leaves them out.  Shared by the SQLite statement and PostgreSQL's single one. */
#define SQL_DEVICE_COLUMNS                                                                         \
    "INSERT INTO devices (id, type, serial_number, device_name, model, model_name,"                \
    " product_name, os_version, build_version, imei, meid, platform, topic, authenticated_at,"     \
    " created, updated)"

/* The device row of an Authenticate: $1-$14 (id … authenticated_at), kept facts when the
 * message leaves them out.  $15: the certificate is newly bound to the device — a new
 * identity inherits no secret of the previous one (bootstrap token; the unlock token is
 * cleared by every Authenticate) and ends an operator's removal or re-enrollment window. */
#define SQL_DEVICE_AUTH_TEXT                                                                       \
    SQL_DEVICE_COLUMNS                                                                             \
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14)"              \
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type,"                                        \
    " serial_number = coalesce(excluded.serial_number, devices.serial_number),"                    \
    " device_name = coalesce(excluded.device_name, devices.device_name),"                          \
    " model = coalesce(excluded.model, devices.model),"                                            \
    " model_name = coalesce(excluded.model_name, devices.model_name),"                             \
    " product_name = coalesce(excluded.product_name, devices.product_name),"                       \
    " os_version = coalesce(excluded.os_version, devices.os_version),"                             \
    " build_version = coalesce(excluded.build_version, devices.build_version),"                    \
    " imei = coalesce(excluded.imei, devices.imei),"                                               \
    " meid = coalesce(excluded.meid, devices.meid),"                                               \
    " platform = CASE WHEN excluded.platform = 'unknown' THEN devices.platform"                    \
    "  ELSE excluded.platform END,"                                                                \
    " topic = excluded.topic, unlock_token = NULL, authenticated_at = excluded.authenticated_at,"  \
    " bootstrap_token = CASE WHEN $15 THEN NULL ELSE devices.bootstrap_token END,"                 \
    " removed_at = CASE WHEN $15 THEN 0 ELSE devices.removed_at END,"                              \
    " reenroll_until = CASE WHEN $15 THEN 0 ELSE devices.reenroll_until END,"                      \
    " updated = excluded.updated"
static const struct store_sql SQL_DEVICE_AUTH = {"device_authenticate", SQL_DEVICE_AUTH_TEXT, NULL,
                                                 NULL};

#define SQL_ENROLLMENT_AUTH_UPSERT                                                                 \
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type, topic = excluded.topic,"                \
    " enabled = false, token_valid = false, push_token = NULL, push_magic = NULL,"                 \
    " token_invalid_at = 0, awaiting_configuration = false"
static const struct store_sql SQL_ENROLLMENT_AUTH = {
    "enrollment_authenticate",
    "INSERT INTO enrollments (id, device_id, type, topic, enabled, token_valid, created)"
    " VALUES ($1, $1, $2, $3, false, false, $4)" SQL_ENROLLMENT_AUTH_UPSERT,
    NULL, NULL};

#define SQL_USER_CHANNELS_RESET_TEXT                                                               \
    "UPDATE enrollments SET enabled = false, token_valid = false, push_token = NULL,"              \
    " push_magic = NULL WHERE device_id = $1 AND id <> $1"
static const struct store_sql SQL_USER_CHANNELS_RESET = {"user_channels_reset",
                                                         SQL_USER_CHANNELS_RESET_TEXT, NULL, NULL};

static int check_facts(const struct store_device_facts *f, struct scepter_error *err)
{
    const struct {
        const char *v, *name;
    } fields[] = {
        {f->serial_number, "SerialNumber"},
        {f->device_name, "DeviceName"},
        {f->model, "Model"},
        {f->model_name, "ModelName"},
        {f->product_name, "ProductName"},
        {f->os_version, "OSVersion"},
        {f->build_version, "BuildVersion"},
        {f->imei, "IMEI"},
        {f->meid, "MEID"},
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(fields); i++) {
        if (fields[i].v && strlen(fields[i].v) > LIMIT_FACT)
            return scepter_err(err, SCEPTER_EINVAL, fields[i].name, "%s: longer than %d bytes",
                               fields[i].name, LIMIT_FACT);
    }
    if ((unsigned)f->platform > STORE_PLATFORM_VISIONOS)
        return scepter_err(err, SCEPTER_EINVAL, "platform", "platform: unknown value %d",
                           (int)f->platform);
    return 0;
}

/* The platform to store: the one given, else a guess from the facts ("unknown" keeps). */
static const char *facts_platform(const struct store_device_facts *f)
{
    enum store_platform p = f->platform;

    if (p == STORE_PLATFORM_UNKNOWN)
        p = store_platform_guess(f->product_name, f->model, f->model_name);
    return store_platform_name(p);
}

/* Who holds cert_hash: 0 with *owner (caller frees) or NULL. */
static int cert_owner(struct store *s, const char *hash, char **owner, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(hash)};
    struct dbres r;
    int rc;

    *owner = NULL;
    rc = db_query(s, &SQL_CERT_OWNER, p, ARRAY_LEN(p), &r, err);
    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        *owner = db_strdup(&r, 0);
        rc = 0;
    }
    db_res_clear(&r);
    return rc;
}

static int forbid_cert(const char *owner, const char *device_id, struct scepter_error *err)
{
    (void)owner; /* never reveal which device holds a certificate */
    return scepter_err(err, SCEPTER_EFORBIDDEN, "cert_hash",
                       "the device certificate is bound to another device, not %s", device_id);
}

/* Serialises the Authenticates of one device id across connections and processes for the
 * rest of the transaction (SQLite: BEGIN IMMEDIATE already does, for the whole database). */
static const struct store_sql SQL_AUTH_LOCK = {
    "auth_lock", NULL, "SELECT pg_advisory_xact_lock(hashtextextended($1, 7243))", "SELECT $1"};

/*
 * What Authenticate must know before it changes anything: 0 who holds the certificate,
 * 1 whether it was revoked, 2 whether the device has an active enrollment (its device channel
 * enabled: TokenUpdate received, not checked out, not removed), 3 the operator's
 * re-enrollment window, 4 a certificate bound to the device now, other than this one.
 * $1 certificate hash, $2 device.
 */
static const struct store_sql SQL_AUTH_STATE = {
    "auth_state",
    "SELECT (SELECT device_id FROM cert_bindings WHERE cert_hash = $1),"
    " EXISTS (SELECT 1 FROM revoked_certs WHERE cert_hash = $1),"
    " coalesce((SELECT enabled FROM enrollments WHERE id = $2), false),"
    " coalesce((SELECT reenroll_until FROM devices WHERE id = $2), 0),"
    " (SELECT min(cert_hash) FROM cert_bindings WHERE device_id = $2 AND cert_hash <> $1)",
    NULL, NULL};

/* The device's other certificates stop being accepted when a new one is bound: $1 device,
 * $2 the new certificate, $3 now. */
static const struct store_sql SQL_BINDINGS_SUPERSEDE = {
    "bindings_supersede",
    "INSERT INTO revoked_certs (cert_hash, device_id, reason, revoked_at)"
    " SELECT cert_hash, device_id, 'superseded', $3 FROM cert_bindings"
    " WHERE device_id = $1 AND cert_hash <> $2 ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_BINDINGS_DROP_OTHERS = {
    "bindings_drop_others", "DELETE FROM cert_bindings WHERE device_id = $1 AND cert_hash <> $2",
    NULL, NULL};

/* $1-$14 of the device row. */
#define DEVICE_AUTH_PARAMS(a, now)                                                                 \
    P_TEXT((a)->device_id), P_INT((a)->type), P_TEXT((a)->facts.serial_number),                    \
        P_TEXT((a)->facts.device_name), P_TEXT((a)->facts.model), P_TEXT((a)->facts.model_name),   \
        P_TEXT((a)->facts.product_name), P_TEXT((a)->facts.os_version),                            \
        P_TEXT((a)->facts.build_version), P_TEXT((a)->facts.imei), P_TEXT((a)->facts.meid),        \
        P_TEXT(facts_platform(&(a)->facts)), P_TEXT((a)->topic), P_INT(now)

/*
 * May this certificate (re)start the device's enrollment?  Fills res and returns 0 when it
 * may; SCEPTER_EFORBIDDEN when the certificate is revoked or bound to another device;
 * SCEPTER_ECONFLICT when the device is actively enrolled with another certificate and
 * nothing allows a re-enrollment (res->previous_hash names that certificate).
 */
static int auth_decide(struct store *s, const struct store_authenticate *a, const char *hash,
                       int64_t now, struct store_auth_result *res, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(hash), P_TEXT(a->device_id)};
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_AUTH_STATE, p, ARRAY_LEN(p), &r, err)) != 0)
        goto out;
    if ((rc = db_next(&r, err)) != 1) {
        if (rc == 0)
            rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: Authenticate state: no row");
        goto out;
    }
    rc = 0;
    if (!db_isnull(&r, 4))
        str_copy(res->previous_hash, sizeof(res->previous_hash), db_text(&r, 4));
    if (!db_isnull(&r, 0)) {
        if (strcmp(db_text(&r, 0), a->device_id) != 0)
            rc = forbid_cert(db_text(&r, 0), a->device_id, err);
        goto out; /* the same identity again: nothing to decide */
    }
    if (db_bool(&r, 1)) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "cert_hash",
                         "the device certificate was revoked and cannot enroll %s", a->device_id);
        goto out;
    }
    res->new_binding = true;
    res->rebound = res->previous_hash[0] != '\0';
    if (!db_bool(&r, 2))
        goto out; /* not actively enrolled: a first enrollment, or after CheckOut / removal */
    if (a->reenroll_allow) {
        res->allowed_by = "configuration";
    } else if (db_int(&r, 3) > now) {
        res->allowed_by = "operator";
    } else {
        rc = scepter_err(err, SCEPTER_ECONFLICT, "cert_hash",
                         "device %s is enrolled with another certificate; it must check out, be "
                         "removed, or be allowed to re-enroll by an operator",
                         a->device_id);
    }
out:
    db_res_clear(&r);
    return rc;
}

/*
 * PostgreSQL: every write of an Authenticate in one statement (one round trip instead of
 * five, under the same transaction and advisory lock): the device row ($1-$14, $15 the
 * certificate is newly bound), the binding of certificate $16 when $15, the device channel's
 * enrollment row, the user channels reset and the pending queue cancelled.  Its one column
 * is the number of bindings written.  The CTEs touch different rows; the foreign keys to the
 * new device row are checked at the end of the statement, when it exists.
 */
static const struct store_sql SQL_AUTH_WRITE = {
    "authenticate_write", NULL,
    "WITH dev AS (" SQL_DEVICE_AUTH_TEXT " RETURNING 1),"
    " bind AS (INSERT INTO cert_bindings (cert_hash, device_id, created, not_after)"
    "  SELECT $16, $1, $14, $17 WHERE $15 ON CONFLICT (cert_hash) DO NOTHING RETURNING 1),"
    " en AS (INSERT INTO enrollments (id, device_id, type, topic, enabled, token_valid, created)"
    "  VALUES ($1, $1, $2, $13, false, false, $14)" SQL_ENROLLMENT_AUTH_UPSERT " RETURNING 1),"
    " uc AS (" SQL_USER_CHANNELS_RESET_TEXT " RETURNING 1),"
    " q AS (UPDATE queue SET state = 2, notnow = false, updated = $14"
    "  WHERE state = 0 AND enrollment_id IN (SELECT id FROM enrollments WHERE device_id = $1)"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM bind), (SELECT count(*) FROM dev), (SELECT count(*) FROM en),"
    "  (SELECT count(*) FROM uc), (SELECT count(*) FROM q)",
    NULL};

/* A new enrollment starts its policy state from nothing and ends an identity renewal: separate
 * statements on both backends (on PostgreSQL they touch rows SQL_AUTH_WRITE's CTEs modify, and
 * one statement may not modify a row twice). */
static int auth_reset(struct store *s, const struct store_authenticate *a, int64_t now,
                      struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(a->device_id), P_INT(now)};
    int rc;

    if ((rc = db_exec(s, &SQL_QUEUE_POLICY_DETACH, p, 1, NULL, err)) != 0 ||
        (rc = db_exec(s, &SQL_RENEWAL_RESET, p, 1, NULL, err)) != 0)
        return rc;
    return 0;
}

/* The writes of an Authenticate, one statement on PostgreSQL (SQL_AUTH_WRITE) and the resets
 * (auth_reset), one each on SQLite. */
static int auth_write(struct store *s, const struct store_authenticate *a, const char *hash,
                      int64_t now, const struct store_auth_result *res, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if (s->ops->writing_reads) {
        struct dbv p[] = {DEVICE_AUTH_PARAMS(a, now), P_BOOL(res->new_binding), P_TEXT(hash),
                          P_INT(a->cert_not_after)};
        struct dbres r;
        if ((rc = db_query(s, &SQL_AUTH_WRITE, p, ARRAY_LEN(p), &r, err)) == 0) {
            if ((rc = db_next(&r, err)) == 1) {
                changes = db_int(&r, 0);
                rc = 0;
            } else if (rc == 0) {
                rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: Authenticate: no row");
            }
        }
        db_res_clear(&r);
        if (rc != 0)
            return rc;
        if (res->new_binding && changes == 0)
            return forbid_cert(NULL, a->device_id, err); /* bound to another device meanwhile */
        return auth_reset(s, a, now, err);
    }
    {
        struct dbv p[] = {DEVICE_AUTH_PARAMS(a, now), P_BOOL(res->new_binding)};
        if ((rc = db_exec(s, &SQL_DEVICE_AUTH, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    if (res->new_binding) {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(a->device_id), P_INT(now), P_INT(a->cert_not_after)};
        if ((rc = db_exec(s, &SQL_CERT_BIND, p, ARRAY_LEN(p), &changes, err)) != 0)
            return rc;
        if (changes == 0) /* bound to another device meanwhile (no lock covers the hash) */
            return forbid_cert(NULL, a->device_id, err);
    }
    {
        struct dbv p[] = {P_TEXT(a->device_id), P_INT(a->type), P_TEXT(a->topic), P_INT(now)};
        if ((rc = db_exec(s, &SQL_ENROLLMENT_AUTH, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    {
        struct dbv p[] = {P_TEXT(a->device_id)};
        if ((rc = db_exec(s, &SQL_USER_CHANNELS_RESET, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    {
        struct dbv p[] = {P_TEXT(a->device_id), P_INT(now)};
        if ((rc = db_exec(s, &SQL_QUEUE_DEACTIVATE_DEVICE, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    return auth_reset(s, a, now, err);
}

static int authenticate(struct store *s, const struct store_authenticate *a, const char *hash,
                        int64_t now, struct store_auth_result *res, struct scepter_error *err)
{
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(a->device_id)};
        if ((rc = db_exec(s, &SQL_AUTH_LOCK, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    if ((rc = auth_decide(s, a, hash, now, res, err)) != 0 ||
        (rc = auth_write(s, a, hash, now, res, err)) != 0)
        goto out;
    if (res->rebound) {
        struct dbv p[] = {P_TEXT(a->device_id), P_TEXT(hash), P_INT(now)};
        if ((rc = db_exec(s, &SQL_BINDINGS_SUPERSEDE, p, ARRAY_LEN(p), NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_BINDINGS_DROP_OTHERS, p, 2, NULL, err)) != 0)
            goto out;
    }
    return db_commit(s, err);
out:
    db_rollback(s);
    return rc;
}

int store_authenticate(struct store *s, const struct store_authenticate *a, int64_t now,
                       struct store_auth_result *res, struct scepter_error *err)
{
    struct store_auth_result ignored;
    char hash[65];
    int rc;

    if (res == NULL)
        res = &ignored;
    memset(res, 0, sizeof(*res));
    if ((rc = store_check_str(a->device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0 ||
        (rc = store_check_str(a->topic, LIMIT_TOPIC, "topic", err)) != 0 ||
        (rc = store_norm_sha256(a->cert_hash, hash, "cert_hash", err)) != 0 ||
        (rc = check_facts(&a->facts, err)) != 0)
        return rc;
    if (a->type != STORE_ENROLL_DEVICE && a->type != STORE_ENROLL_USER_ENROLLMENT)
        return scepter_err(err, SCEPTER_EINVAL, "type",
                           "type: Authenticate is for the device channel (device or user "
                           "enrollment), not type %d",
                           (int)a->type);
    if (strchr(a->device_id, ':') != NULL)
        return scepter_err(err, SCEPTER_EINVAL, "device_id", "device_id: must not contain ':'");
    STORE_CALL(s, rc, err)
    {
        memset(res, 0, sizeof(*res));
        rc = authenticate(s, a, hash, now, res, err);
    }
    return rc;
}

int store_cert_check(struct store *s, const char *cert_hash, const char *device_id,
                     struct scepter_error *err)
{
    char hash[65], *owner = NULL;
    int rc;

    if ((rc = store_norm_sha256(cert_hash, hash, "cert_hash", err)) != 0 ||
        (rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = cert_owner(s, hash, &owner, err);
    if (rc == 0)
        rc = owner == NULL                   ? 0
             : strcmp(owner, device_id) == 0 ? 1
                                             : forbid_cert(owner, device_id, err);
    free(owner);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* TokenUpdate, CheckOut, facts                                                              */

/* The enrollment row of a TokenUpdate: $1-$11 (see TOKEN_UPDATE_PARAMS); the user names are
 * kept when the message leaves them out.  Shared by SQLite and PostgreSQL's single statement. */
#define SQL_TOKEN_COLUMNS                                                                          \
    "INSERT INTO enrollments (id, device_id, type, topic, user_id, user_short_name,"               \
    " user_long_name, push_token, push_magic, token_valid, enabled, awaiting_configuration,"       \
    " token_updated_at, last_seen, created)"
#define SQL_TOKEN_VALUES "$1, $2, $3, $4, $5, $6, $7, $8, $9, true, true, $10, $11, $11, $11"
#define SQL_TOKEN_UPSERT                                                                           \
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type, topic = excluded.topic,"                \
    " user_id = coalesce(excluded.user_id, enrollments.user_id),"                                  \
    " user_short_name = coalesce(excluded.user_short_name, enrollments.user_short_name),"          \
    " user_long_name = coalesce(excluded.user_long_name, enrollments.user_long_name),"             \
    " push_token = excluded.push_token, push_magic = excluded.push_magic,"                         \
    " token_valid = true, token_invalid_at = 0, enabled = true,"                                   \
    " awaiting_configuration = excluded.awaiting_configuration,"                                   \
    " token_updated_at = excluded.token_updated_at, last_seen = excluded.last_seen"

static const struct store_sql SQL_TOKEN_UPDATE = {
    "token_update", SQL_TOKEN_COLUMNS " VALUES (" SQL_TOKEN_VALUES ")" SQL_TOKEN_UPSERT, NULL,
    NULL};

static const struct store_sql SQL_UNLOCK_TOKEN = {
    "unlock_token", "UPDATE devices SET unlock_token = $2, updated = $3 WHERE id = $1", NULL, NULL};

/*
 * TokenUpdate's first step, one statement per backend with the same columns: 0 whether the
 * device exists, 1 the enrollment's device and 2 its enabled flag before this update (NULL:
 * a new channel), 3 rows written (NULL when the backend writes with SQL_TOKEN_UPDATE and
 * SQL_UNLOCK_TOKEN afterwards, under the transaction's write lock).  $1 enrollment,
 * $2 device, $3 type, $4 topic, $5-$7 user, $8 token, $9 PushMagic, $10
 * AwaitingConfiguration, $11 now, $12 unlock token (NULL keeps it).
 */
static const struct store_sql SQL_TOKEN_STEP = {
    "token_update_step", NULL,
    "WITH d AS (SELECT id FROM devices WHERE id = $2),"
    " old AS (SELECT device_id, enabled FROM enrollments WHERE id = $1),"
    " up AS (" SQL_TOKEN_COLUMNS " SELECT " SQL_TOKEN_VALUES " FROM d"
    "  WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.device_id <> $2)" SQL_TOKEN_UPSERT
    "  WHERE enrollments.device_id = $2 RETURNING 1),"
    " ul AS (UPDATE devices SET unlock_token = $12, updated = $11"
    "  WHERE id = $2 AND $12::bytea IS NOT NULL AND EXISTS (SELECT 1 FROM up) RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT device_id FROM old), (SELECT enabled FROM old),"
    "  (SELECT count(*) FROM up)",
    "SELECT (SELECT count(*) FROM devices WHERE id = $2),"
    " (SELECT device_id FROM enrollments WHERE id = $1),"
    " (SELECT enabled FROM enrollments WHERE id = $1), NULL"};

/* $1-$11 of both TokenUpdate statements. */
#define TOKEN_UPDATE_PARAMS(t, now)                                                                \
    P_TEXT((t)->enrollment_id), P_TEXT((t)->device_id), P_INT((t)->type), P_TEXT((t)->topic),      \
        P_TEXT((t)->user_id), P_TEXT((t)->user_short_name), P_TEXT((t)->user_long_name),           \
        P_BLOB((t)->token, (t)->token_len), P_TEXT((t)->push_magic),                               \
        P_BOOL((t)->awaiting_configuration), P_INT(now)

static int token_update(struct store *s, const struct store_token_update *t, int64_t now,
                        bool *first, struct scepter_error *err)
{
    bool unlock = t->unlock_token != NULL && t->unlock_token_len > 0, written;
    struct dbres r = {0};
    int rc;

    if (!s->ops->writing_reads && (rc = db_begin(s, err)) != 0)
        goto out;
    {
        struct dbv p[] = {TOKEN_UPDATE_PARAMS(t, now),
                          P_BLOB(unlock ? t->unlock_token : NULL, t->unlock_token_len)};
        if ((rc = db_query(s, &SQL_TOKEN_STEP, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    if ((rc = db_next(&r, err)) != 1) {
        if (rc == 0)
            rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: TokenUpdate returned no row");
        goto out;
    }
    rc = 0;
    written = !db_isnull(&r, 3);
    if (db_int(&r, 0) == 0) {
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s never authenticated",
                         t->device_id);
        goto out;
    }
    if ((!db_isnull(&r, 1) && strcmp(db_text(&r, 1), t->device_id) != 0) ||
        (written && db_int(&r, 3) == 0)) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "enrollment_id",
                         "enrollment %s belongs to another device", t->enrollment_id);
        goto out;
    }
    *first = db_isnull(&r, 2) || !db_bool(&r, 2);
    db_res_clear(&r);
    if (!written) {
        struct dbv p[] = {TOKEN_UPDATE_PARAMS(t, now)};
        if ((rc = db_exec(s, &SQL_TOKEN_UPDATE, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
        if (unlock) {
            struct dbv u[] = {P_TEXT(t->device_id), P_BLOB(t->unlock_token, t->unlock_token_len),
                              P_INT(now)};
            if ((rc = db_exec(s, &SQL_UNLOCK_TOKEN, u, ARRAY_LEN(u), NULL, err)) != 0)
                goto out;
        }
    }
    if (s->in_tx)
        rc = db_commit(s, err);
out:
    db_res_clear(&r);
    if (rc != 0)
        *first = false;
    return rc;
}

int store_token_update(struct store *s, const struct store_token_update *t, int64_t now,
                       bool *first, struct scepter_error *err)
{
    int rc;

    *first = false;
    if ((rc = store_check_str(t->enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(t->device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0 ||
        (rc = store_check_str(t->topic, LIMIT_TOPIC, "topic", err)) != 0 ||
        (rc = store_check_str(t->push_magic, LIMIT_PUSH_MAGIC, "PushMagic", err)) != 0)
        return rc;
    if (t->token == NULL || t->token_len == 0 || t->token_len > LIMIT_PUSH_TOKEN_BYTES)
        return scepter_err(err, SCEPTER_EINVAL, "Token",
                           "Token: want the APNs device token (1 to %d bytes)",
                           LIMIT_PUSH_TOKEN_BYTES);
    if (t->type < STORE_ENROLL_DEVICE || t->type > STORE_ENROLL_SHARED_IPAD_USER)
        return scepter_err(err, SCEPTER_EINVAL, "type", "type: unknown enrollment type %d",
                           (int)t->type);
    STORE_CALL(s, rc, err)
    rc = token_update(s, t, now, first, err);
    return rc;
}

static const struct store_sql SQL_CHECKOUT_DEVICE = {
    "checkout_device", "UPDATE devices SET checked_out_at = $2, updated = $2 WHERE id = $1", NULL,
    NULL};
static const struct store_sql SQL_CHECKOUT_ENROLLMENTS = {
    "checkout_enrollments", "UPDATE enrollments SET enabled = false WHERE device_id = $1", NULL,
    NULL};

static int checkout(struct store *s, const char *device_id, int64_t now, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(device_id), P_INT(now)};
    int64_t changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    if ((rc = db_exec(s, &SQL_CHECKOUT_DEVICE, p, 2, &changes, err)) != 0)
        return rc;
    if (changes == 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
    if ((rc = db_exec(s, &SQL_CHECKOUT_ENROLLMENTS, p, 1, NULL, err)) != 0 ||
        (rc = db_exec(s, &SQL_QUEUE_DEACTIVATE_DEVICE, p, 2, NULL, err)) != 0)
        return rc;
    return db_commit(s, err);
}

int store_checkout(struct store *s, const char *device_id, int64_t now, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = checkout(s, device_id, now, err);
    return rc;
}

static const struct store_sql SQL_UPDATE_FACTS = {
    "device_update_facts",
    "UPDATE devices SET serial_number = coalesce($2, serial_number),"
    " device_name = coalesce($3, device_name), model = coalesce($4, model),"
    " model_name = coalesce($5, model_name), product_name = coalesce($6, product_name),"
    " os_version = coalesce($7, os_version), build_version = coalesce($8, build_version),"
    " imei = coalesce($9, imei), meid = coalesce($10, meid),"
    " platform = CASE WHEN $11 = 'unknown' THEN platform ELSE $11 END, updated = $12"
    " WHERE id = $1",
    NULL, NULL};

int store_device_update_facts(struct store *s, const char *device_id,
                              const struct store_device_facts *f, int64_t now,
                              struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0 ||
        (rc = check_facts(f, err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id),     P_TEXT(f->serial_number),  P_TEXT(f->device_name),
                          P_TEXT(f->model),      P_TEXT(f->model_name),     P_TEXT(f->product_name),
                          P_TEXT(f->os_version), P_TEXT(f->build_version),  P_TEXT(f->imei),
                          P_TEXT(f->meid),       P_TEXT(facts_platform(f)), P_INT(now)};
        rc = db_exec(s, &SQL_UPDATE_FACTS, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc =
                scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Bootstrap token, last seen                                                                */

static const struct store_sql SQL_BOOTSTRAP_SET = {
    "bootstrap_set", "UPDATE devices SET bootstrap_token = $2 WHERE id = $1", NULL, NULL};
static const struct store_sql SQL_BOOTSTRAP_GET = {
    "bootstrap_get", "SELECT bootstrap_token FROM devices WHERE id = $1", NULL, NULL};

int store_bootstrap_set(struct store *s, const char *device_id, const unsigned char *data,
                        size_t len, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    if (len > 64 * 1024)
        return scepter_err(err, SCEPTER_ETOOBIG, "BootstrapToken",
                           "BootstrapToken: larger than 64 KiB");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id), P_BLOB(len ? data : NULL, len)};
        rc = db_exec(s, &SQL_BOOTSTRAP_SET, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc =
                scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
    }
    return rc;
}

int store_bootstrap_get(struct store *s, const char *device_id, unsigned char **data, size_t *len,
                        struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *data = NULL;
    *len = 0;
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id)};
        rc = db_query(s, &SQL_BOOTSTRAP_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *data = db_blobdup(&r, 0, len);
            rc = 0;
        } else if (rc == 0) {
            rc =
                scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
        }
        db_res_clear(&r);
    }
    return rc;
}

/* $1 enrollment, $2 command: DeviceConfigured acknowledged ends AwaitingConfiguration. */
static const struct store_sql SQL_DEVICE_CONFIGURED = {
    "device_configured",
    "UPDATE enrollments SET awaiting_configuration = false"
    " WHERE id = $1 AND awaiting_configuration"
    " AND EXISTS (SELECT 1 FROM commands c WHERE c.uuid = $2"
    "  AND c.request_type = 'DeviceConfigured')",
    NULL, NULL};

int store_device_configured(struct store *s, const char *enrollment_id, const char *command_uuid,
                            bool *cleared, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    *cleared = false;
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(command_uuid, LIMIT_COMMAND_UUID, "CommandUUID", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id), P_TEXT(command_uuid)};
        changes = 0;
        rc = db_exec(s, &SQL_DEVICE_CONFIGURED, p, ARRAY_LEN(p), &changes, err);
    }
    if (rc == 0)
        *cleared = changes > 0;
    return rc;
}

static const struct store_sql SQL_UNLOCK_TOKEN_GET = {
    "unlock_token_get", "SELECT unlock_token FROM devices WHERE id = $1", NULL, NULL};

int store_unlock_token_get(struct store *s, const char *device_id, unsigned char **data,
                           size_t *len, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *data = NULL;
    *len = 0;
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id)};
        rc = db_query(s, &SQL_UNLOCK_TOKEN_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *data = db_blobdup(&r, 0, len);
            rc = 0;
        } else if (rc == 0) {
            rc =
                scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
        }
        db_res_clear(&r);
    }
    return rc;
}

/* STORE_SEEN_GRANULARITY: a row seen less than a minute ago is left as it is. */
static const struct store_sql SQL_TOUCH = {
    "touch", "UPDATE enrollments SET last_seen = $2 WHERE id IN {ARR1} AND last_seen <= $2 - 60",
    NULL, NULL};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int store_touch(struct store *s, const char *const *enrollment_ids, size_t n, int64_t now,
                struct scepter_error *err)
{
    const char **sorted;
    size_t i;
    int rc;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if ((rc = store_check_str(enrollment_ids[i], LIMIT_ENROLLMENT_ID, "enrollment_ids", err)) !=
            0)
            return rc;
    }
    /* Same order in every process: concurrent touches of overlapping sets lock rows in the
     * same order and cannot deadlock. */
    sorted = xmemdup(enrollment_ids, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXTS(sorted, n), P_INT(now)};
        rc = db_exec(s, &SQL_TOUCH, p, ARRAY_LEN(p), NULL, err);
    }
    free(sorted);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading enrollments and devices                                                           */

void store_enrollment_clear(struct store_enrollment *e)
{
    if (e == NULL)
        return;
    free(e->id);
    free(e->device_id);
    free(e->topic);
    free(e->user_id);
    free(e->user_short_name);
    free(e->user_long_name);
    memset(e, 0, sizeof(*e));
}

static const struct store_sql SQL_ENROLLMENT_GET = {
    "enrollment_get",
    "SELECT id, device_id, type, topic, user_id, user_short_name, user_long_name, enabled,"
    " token_valid AND push_token IS NOT NULL, last_seen, token_updated_at, created"
    " FROM enrollments WHERE id = $1",
    NULL, NULL};

int store_enrollment_get(struct store *s, const char *enrollment_id, struct store_enrollment *out,
                         struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id)};
        rc = db_query(s, &SQL_ENROLLMENT_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            out->id = db_strdup(&r, 0);
            out->device_id = db_strdup(&r, 1);
            out->type = (enum store_enroll_type)db_int(&r, 2);
            out->topic = db_strdup(&r, 3);
            out->user_id = db_strdup(&r, 4);
            out->user_short_name = db_strdup(&r, 5);
            out->user_long_name = db_strdup(&r, 6);
            out->enabled = db_bool(&r, 7);
            out->token_valid = db_bool(&r, 8);
            out->last_seen = db_int(&r, 9);
            out->token_updated_at = db_int(&r, 10);
            out->created = db_int(&r, 11);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_id", "enrollment %s is unknown",
                             enrollment_id);
        }
        db_res_clear(&r);
    }
    return rc;
}

void store_device_clear(struct store_device *d)
{
    if (d == NULL)
        return;
    free(d->id);
    free(d->serial_number);
    free(d->device_name);
    free(d->model);
    free(d->model_name);
    free(d->product_name);
    free(d->os_version);
    free(d->build_version);
    free(d->model_family);
    free(d->topic);
    store_strv_free(d->groups, d->n_groups);
    memset(d, 0, sizeof(*d));
}

void store_devices_free(struct store_device *d, size_t n)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < n; i++)
        store_device_clear(&d[i]);
    free(d);
}

#define DEVICE_COLUMNS                                                                             \
    "d.id, d.type, d.serial_number, d.device_name, d.model, d.model_name, d.product_name,"         \
    " d.os_version, d.build_version, d.platform, d.topic, coalesce(e.enabled, false),"             \
    " coalesce(e.token_valid AND e.push_token IS NOT NULL, false),"                                \
    " d.bootstrap_token IS NOT NULL, coalesce(e.last_seen, 0), d.authenticated_at,"                \
    " coalesce(e.token_updated_at, 0), d.checked_out_at, d.created, d.removed_at,"                 \
    " d.reenroll_until, coalesce(e.awaiting_configuration, false),"                                \
    " coalesce((SELECT max(b.not_after) FROM cert_bindings b WHERE b.device_id = d.id), 0),"       \
    " d.renewal_at, d.renewed_at,"                                                                 \
    " (SELECT x.model_family FROM ddm_devices x WHERE x.device_id = d.id)"                         \
    " FROM devices d LEFT JOIN enrollments e ON e.id = d.id"

static void read_device(const struct dbres *r, struct store_device *d)
{
    d->id = db_strdup(r, 0);
    d->type = (enum store_enroll_type)db_int(r, 1);
    d->serial_number = db_strdup(r, 2);
    d->device_name = db_strdup(r, 3);
    d->model = db_strdup(r, 4);
    d->model_name = db_strdup(r, 5);
    d->product_name = db_strdup(r, 6);
    d->os_version = db_strdup(r, 7);
    d->build_version = db_strdup(r, 8);
    d->platform = store_platform_parse(db_text(r, 9));
    d->topic = db_strdup(r, 10);
    d->enrolled = db_bool(r, 11);
    d->token_valid = db_bool(r, 12);
    d->has_bootstrap_token = db_bool(r, 13);
    d->last_seen = db_int(r, 14);
    d->authenticated_at = db_int(r, 15);
    d->token_updated_at = db_int(r, 16);
    d->checked_out_at = db_int(r, 17);
    d->created = db_int(r, 18);
    d->removed_at = db_int(r, 19);
    d->reenroll_until = db_int(r, 20);
    d->awaiting_configuration = db_bool(r, 21);
    d->identity_not_after = db_int(r, 22);
    d->renewal_at = db_int(r, 23);
    d->renewed_at = db_int(r, 24);
    d->model_family = db_strdup(r, 25);
}

static const struct store_sql SQL_DEVICE_GET = {
    "device_get", "SELECT " DEVICE_COLUMNS " WHERE d.id = $1", NULL, NULL};

/* Group names of the devices ids[0..n), in the order the devices come back (by id). */
static const struct store_sql SQL_DEVICE_GROUPS = {
    "device_groups",
    "SELECT m.device_id, g.name FROM group_members m JOIN device_groups g ON g.id = m.group_id"
    " WHERE m.device_id IN {ARR1} ORDER BY m.device_id, g.name",
    NULL, NULL};

/* Fill devs[i].groups for devices sorted by id (as the database sorts them). */
static int fill_groups(struct store *s, struct store_device *devs, size_t n,
                       struct scepter_error *err)
{
    const char **ids = NULL;
    size_t *caps = NULL;
    struct dbres r = {0};
    size_t i = 0, k;
    int rc = 0;

    if (n == 0)
        return 0;
    ids = xcalloc(n, sizeof(*ids));
    caps = xcalloc(n, sizeof(*caps));
    for (k = 0; k < n; k++)
        ids[k] = devs[k].id;
    {
        struct dbv p[] = {P_TEXTS(ids, n)};
        if ((rc = db_query(s, &SQL_DEVICE_GROUPS, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        const char *dev = db_text(&r, 0);
        while (i < n && strcmp(devs[i].id, dev) != 0)
            i++;
        if (i == n) { /* not in the same order: fall back to a search */
            for (i = 0; i < n && strcmp(devs[i].id, dev) != 0; i++)
                ;
            if (i == n)
                continue;
        }
        store_strv_push(&devs[i].groups, &devs[i].n_groups, &caps[i], db_strdup(&r, 1));
    }
out:
    db_res_clear(&r);
    free(ids);
    free(caps);
    return rc < 0 ? rc : 0;
}

static int device_get(struct store *s, const char *device_id, struct store_device *out,
                      struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(device_id)};
    struct dbres r;
    int rc;

    rc = db_query(s, &SQL_DEVICE_GET, p, ARRAY_LEN(p), &r, err);
    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        read_device(&r, out);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
    }
    db_res_clear(&r);
    if (rc == 0)
        rc = fill_groups(s, out, 1, err);
    if (rc != 0)
        store_device_clear(out);
    return rc;
}

int store_device_get(struct store *s, const char *device_id, struct store_device *out,
                     struct scepter_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = device_get(s, device_id, out, err);
    return rc;
}

static const struct store_sql SQL_GROUP_EXISTS = {
    "group_exists", "SELECT id FROM device_groups WHERE name = $1", NULL, NULL};

static const struct store_sql SQL_DEVICE_LIST = {
    "device_list",
    "SELECT " DEVICE_COLUMNS " WHERE ($1 IS NULL OR d.platform = $1)"
    " AND ($2 < 0 OR coalesce(e.enabled, false) = ($2 = 1))"
    " AND ($3 = 0 OR coalesce(e.last_seen, 0) >= $3)"
    " AND ($4 = 0 OR coalesce(e.last_seen, 0) < $4)"
    " AND ($5 IS NULL OR d.id IN (SELECT m.device_id FROM group_members m"
    "  JOIN device_groups g ON g.id = m.group_id WHERE g.name = $5))"
    " AND ($8 IS NULL OR lower(d.id) LIKE $8 ESCAPE '!'"
    "  OR lower(coalesce(d.serial_number, '')) LIKE $8 ESCAPE '!'"
    "  OR lower(coalesce(d.device_name, '')) LIKE $8 ESCAPE '!')"
    " AND ($9 = 0 OR coalesce(e.awaiting_configuration, false) = ($9 = 1))"
    " AND d.id > $10" /* the keyset cursor: '' (every id is longer) from the first */
    " ORDER BY d.id LIMIT $6 OFFSET $7",
    NULL, NULL};

static const struct store_sql SQL_DEVICE_COUNT = {
    "device_count",
    "SELECT count(*) FROM devices d LEFT JOIN enrollments e ON e.id = d.id"
    " WHERE ($1 IS NULL OR d.platform = $1)"
    " AND ($2 < 0 OR coalesce(e.enabled, false) = ($2 = 1))"
    " AND ($3 = 0 OR coalesce(e.last_seen, 0) >= $3)"
    " AND ($4 = 0 OR coalesce(e.last_seen, 0) < $4)"
    " AND ($5 IS NULL OR d.id IN (SELECT m.device_id FROM group_members m"
    "  JOIN device_groups g ON g.id = m.group_id WHERE g.name = $5))"
    " AND ($6 IS NULL OR lower(d.id) LIKE $6 ESCAPE '!'"
    "  OR lower(coalesce(d.serial_number, '')) LIKE $6 ESCAPE '!'"
    "  OR lower(coalesce(d.device_name, '')) LIKE $6 ESCAPE '!')"
    " AND ($7 = 0 OR coalesce(e.awaiting_configuration, false) = ($7 = 1))",
    NULL, NULL};

/* "%q%" in lower case with LIKE's wildcards escaped by '!', or NULL for no q. */
static char *like_pattern(const char *q)
{
    char *out, *o;

    if (q == NULL)
        return NULL;
    o = out = xmalloc(2 * strlen(q) + 3);
    *o++ = '%';
    for (const char *p = q; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '!')
            *o++ = '!';
        *o++ = (char)tolower((unsigned char)*p);
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

static int device_list(struct store *s, const struct store_device_filter *f,
                       struct store_device **out, size_t *n, struct scepter_error *err)
{
    struct store_device *devs = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    char *like = like_pattern(f->q);
    const char *platform =
        f->platform == STORE_PLATFORM_UNKNOWN ? NULL : store_platform_name(f->platform);
    int rc;

    if (f->group) {
        struct dbv p[] = {P_TEXT(f->group)};
        rc = db_query(s, &SQL_GROUP_EXISTS, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "group", "device group '%s' is unknown",
                             f->group);
        db_res_clear(&r);
        if (rc < 0)
            goto out;
    }
    if (f->total) {
        struct dbv p[] = {P_TEXT(platform),
                          P_INT(f->enrolled < 0 ? -1
                                : f->enrolled   ? 1
                                                : 0),
                          P_INT(f->seen_after),
                          P_INT(f->seen_before),
                          P_TEXT(f->group),
                          P_TEXT(like),
                          P_INT(f->awaiting_configuration)};
        if ((rc = db_query(s, &SQL_DEVICE_COUNT, p, ARRAY_LEN(p), &r, err)) != 0 ||
            (rc = db_next(&r, err)) < 0)
            goto out;
        *f->total = rc == 1 ? (size_t)db_int(&r, 0) : 0;
        db_res_clear(&r);
    }
    {
        struct dbv p[] = {P_TEXT(platform),
                          P_INT(f->enrolled < 0 ? -1
                                : f->enrolled   ? 1
                                                : 0),
                          P_INT(f->seen_after),
                          P_INT(f->seen_before),
                          P_TEXT(f->group),
                          P_INT(f->limit ? (int64_t)f->limit : INT64_MAX),
                          P_INT(f->offset),
                          P_TEXT(like),
                          P_INT(f->awaiting_configuration),
                          P_TEXT(f->after ? f->after : "")};
        if ((rc = db_query(s, &SQL_DEVICE_LIST, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            devs = xreallocarray(devs, cap, sizeof(*devs));
        }
        memset(&devs[count], 0, sizeof(*devs));
        read_device(&r, &devs[count++]);
    }
    db_res_clear(&r);
    if (rc < 0)
        goto out;
    rc = fill_groups(s, devs, count, err);
out:
    db_res_clear(&r);
    free(like);
    if (rc != 0) {
        store_devices_free(devs, count);
        return rc;
    }
    *out = devs;
    *n = count;
    return 0;
}

int store_device_list(struct store *s, const struct store_device_filter *f,
                      struct store_device **out, size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if (f->limit > INT64_MAX || f->offset > INT64_MAX)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: out of range");
    if (f->q && (rc = store_check_str(f->q, LIMIT_DEVICE_ID, "q", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = device_list(s, f, out, n, err);
    return rc;
}
