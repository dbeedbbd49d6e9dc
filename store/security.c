/*
 * store/security.c — what decides who may talk as a device and who may enroll: operator
 * removal of a device, the re-enrollment window, revoked device certificates, enrollment
 * tokens, and the security events an operator reviews (refused re-enrollments, revocations).
 * Authenticate's own decision lives with the rest of the check-in in store/checkin.c.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/str.h"
#include "common/xmalloc.h"

/* ---------------------------------------------------------------------------------------- */
/* Removal and the re-enrollment window                                                      */

static const struct store_sql SQL_DEVICE_EXISTS = {
    "device_exists", "SELECT removed_at FROM devices WHERE id = $1", NULL, NULL};

/* $1 device, $2 reason, $3 now: the device's certificates stop being accepted. */
static const struct store_sql SQL_BINDINGS_REVOKE_DEVICE = {
    "bindings_revoke_device",
    "INSERT INTO revoked_certs (cert_hash, device_id, reason, revoked_at)"
    " SELECT cert_hash, device_id, $2, $3 FROM cert_bindings WHERE device_id = $1"
    " ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_BINDINGS_DROP_DEVICE = {
    "bindings_drop_device", "DELETE FROM cert_bindings WHERE device_id = $1", NULL, NULL};
static const struct store_sql SQL_QUEUE_CANCEL_DEVICE = {
    "queue_cancel_device",
    "UPDATE queue SET state = 2, notnow = false, updated = $2"
    " WHERE state = 0 AND enrollment_id IN (SELECT id FROM enrollments WHERE device_id = $1)",
    NULL, NULL};
static const struct store_sql SQL_ENROLLMENTS_WIPE = {
    "enrollments_wipe",
    "UPDATE enrollments SET enabled = false, token_valid = false, push_token = NULL,"
    " push_magic = NULL WHERE device_id = $1",
    NULL, NULL};
static const struct store_sql SQL_DEVICE_MARK_REMOVED = {
    "device_mark_removed",
    "UPDATE devices SET unlock_token = NULL, bootstrap_token = NULL, removed_at = $2,"
    " reenroll_until = 0, updated = $2 WHERE id = $1",
    NULL, NULL};

static int device_remove(struct store *s, const char *device_id, int64_t now,
                         struct store_removal *out, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(device_id)};
        rc = db_query(s, &SQL_DEVICE_EXISTS, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "udid", "device %s is unknown", device_id);
        else if (rc == 1)
            rc = 0;
        db_res_clear(&r);
        if (rc != 0)
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(device_id), P_TEXT("removed"), P_INT(now)};
        if ((rc = db_exec(s, &SQL_BINDINGS_REVOKE_DEVICE, p, ARRAY_LEN(p), NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_BINDINGS_DROP_DEVICE, p, 1, &out->certificates, err)) != 0)
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(device_id), P_INT(now)};
        if ((rc = db_exec(s, &SQL_QUEUE_CANCEL_DEVICE, p, ARRAY_LEN(p), &out->cancelled, err)) !=
                0 ||
            (rc = db_exec(s, &SQL_ENROLLMENTS_WIPE, p, 1, NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_DEVICE_MARK_REMOVED, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    return db_commit(s, err);
out:
    db_rollback(s);
    return rc;
}

int store_device_remove(struct store *s, const char *device_id, int64_t now,
                        struct store_removal *out, struct scepter_error *err)
{
    struct store_removal ignored;
    int rc;

    if (out == NULL)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "udid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        memset(out, 0, sizeof(*out));
        rc = device_remove(s, device_id, now, out, err);
    }
    return rc;
}

static const struct store_sql SQL_REENROLL_ALLOW = {
    "reenroll_allow", "UPDATE devices SET reenroll_until = $2 WHERE id = $1", NULL, NULL};

int store_device_allow_reenroll(struct store *s, const char *device_id, int64_t until,
                                struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "udid", err)) != 0)
        return rc;
    if (until < 0)
        return scepter_err(err, SCEPTER_EINVAL, "until", "until: negative time");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id), P_INT(until)};
        rc = db_exec(s, &SQL_REENROLL_ALLOW, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "udid", "device %s is unknown", device_id);
    }
    return rc;
}

static const struct store_sql SQL_DEVICE_BINDINGS = {
    "device_bindings",
    "SELECT cert_hash, created FROM cert_bindings WHERE device_id = $1 ORDER BY created, cert_hash",
    NULL, NULL};

int store_device_bindings(struct store *s, const char *device_id, char ***hashes, size_t *n,
                          struct scepter_error *err)
{
    struct dbres r = {0};
    size_t cap = 0;
    int rc;

    *hashes = NULL;
    *n = 0;
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "udid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id)};
        store_strv_free(*hashes, *n);
        *hashes = NULL;
        *n = cap = 0;
        rc = db_query(s, &SQL_DEVICE_BINDINGS, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            store_strv_push(hashes, n, &cap, db_strdup(&r, 0));
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_strv_free(*hashes, *n);
        *hashes = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Revoked certificates                                                                      */

static const struct store_sql SQL_CERT_OWNER_OF = {
    "cert_owner_of", "SELECT device_id FROM cert_bindings WHERE cert_hash = $1", NULL, NULL};
static const struct store_sql SQL_CERT_REVOKE = {
    "cert_revoke",
    "INSERT INTO revoked_certs (cert_hash, device_id, reason, revoked_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_CERT_UNBIND = {
    "cert_unbind", "DELETE FROM cert_bindings WHERE cert_hash = $1", NULL, NULL};

static int cert_revoke(struct store *s, const char *hash, const char *reason, int64_t now,
                       char **device_id, struct scepter_error *err)
{
    struct dbres r;
    int64_t changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(hash)};
        rc = db_query(s, &SQL_CERT_OWNER_OF, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *device_id = db_strdup(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
        if (rc != 0)
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(*device_id), P_TEXT(reason), P_INT(now)};
        if ((rc = db_exec(s, &SQL_CERT_REVOKE, p, ARRAY_LEN(p), &changes, err)) != 0 ||
            (rc = db_exec(s, &SQL_CERT_UNBIND, p, 1, NULL, err)) != 0)
            goto out;
    }
    if ((rc = db_commit(s, err)) == 0 && changes == 0)
        rc = 1;
    return rc;
out:
    db_rollback(s);
    return rc;
}

int store_cert_revoke(struct store *s, const char *cert_hash, const char *reason, int64_t now,
                      char **device_id, struct scepter_error *err)
{
    char hash[65];
    int rc;

    *device_id = NULL;
    if ((rc = store_norm_sha256(cert_hash, hash, "sha256", err)) != 0 ||
        (rc = store_check_str(reason, 64, "reason", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        free(*device_id);
        *device_id = NULL;
        rc = cert_revoke(s, hash, reason, now, device_id, err);
    }
    if (rc < 0) {
        free(*device_id);
        *device_id = NULL;
    }
    return rc;
}

void store_revocations_free(struct store_revocation *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].device_id);
        free(v[i].reason);
    }
    free(v);
}

static const struct store_sql SQL_REVOCATIONS = {
    "revocations",
    "SELECT cert_hash, device_id, reason, revoked_at FROM revoked_certs"
    " WHERE ($1 IS NULL OR device_id = $1) ORDER BY revoked_at DESC, cert_hash LIMIT $2",
    NULL, NULL};

int store_revocations_list(struct store *s, const char *device_id, size_t limit,
                           struct store_revocation **out, size_t *n, struct scepter_error *err)
{
    struct store_revocation *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    *out = NULL;
    *n = 0;
    if (device_id && (rc = store_check_str(device_id, LIMIT_DEVICE_ID, "udid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(device_id), P_INT(limit ? (int64_t)limit : INT64_MAX)};
        store_revocations_free(v, count);
        v = NULL;
        count = cap = 0;
        rc = db_query(s, &SQL_REVOCATIONS, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                v = xreallocarray(v, cap, sizeof(*v));
            }
            memset(&v[count], 0, sizeof(*v));
            str_copy(v[count].cert_hash, sizeof(v[count].cert_hash), db_text(&r, 0));
            v[count].device_id = db_strdup(&r, 1);
            v[count].reason = db_strdup(&r, 2);
            v[count].revoked_at = db_int(&r, 3);
            count++;
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_revocations_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Enrollment tokens                                                                         */

static const struct store_sql SQL_ETOKEN_CREATE = {
    "etoken_create",
    "INSERT INTO enroll_tokens (hash, note, uses_total, expires, created)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING RETURNING id",
    NULL, NULL};

int store_enroll_token_create(struct store *s, const char *hash_hex, const char *note,
                              int64_t uses_total, int64_t expires, int64_t now, int64_t *id,
                              struct scepter_error *err)
{
    char hash[65];
    struct dbres r;
    int rc;

    *id = 0;
    if ((rc = store_norm_sha256(hash_hex, hash, "hash", err)) != 0)
        return rc;
    if (note && strlen(note) > 255)
        return scepter_err(err, SCEPTER_EINVAL, "note", "note: longer than 255 bytes");
    if (uses_total < 0 || uses_total > 1000000000)
        return scepter_err(err, SCEPTER_EINVAL, "uses", "uses: between 0 (unlimited) and 10^9");
    if (expires < 0)
        return scepter_err(err, SCEPTER_EINVAL, "expires", "expires: negative time");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(note), P_INT(uses_total), P_INT(expires),
                          P_INT(now)};
        rc = db_query(s, &SQL_ETOKEN_CREATE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "hash", "hash: this token exists already");
        }
        db_res_clear(&r);
    }
    return rc;
}

void store_enroll_tokens_free(struct store_enroll_token *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].note);
    free(t);
}

static const struct store_sql SQL_ETOKEN_LIST = {
    "etoken_list",
    "SELECT id, note, uses_total, uses, expires, created, last_used FROM enroll_tokens"
    " ORDER BY id",
    NULL, NULL};

int store_enroll_token_list(struct store *s, struct store_enroll_token **out, size_t *n,
                            struct scepter_error *err)
{
    struct store_enroll_token *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    {
        store_enroll_tokens_free(v, count);
        v = NULL;
        count = cap = 0;
        rc = db_query(s, &SQL_ETOKEN_LIST, NULL, 0, &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                v = xreallocarray(v, cap, sizeof(*v));
            }
            v[count].id = db_int(&r, 0);
            v[count].note = db_strdup(&r, 1);
            v[count].uses_total = db_int(&r, 2);
            v[count].uses = db_int(&r, 3);
            v[count].expires = db_int(&r, 4);
            v[count].created = db_int(&r, 5);
            v[count].last_used = db_int(&r, 6);
            count++;
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_enroll_tokens_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

static const struct store_sql SQL_ETOKEN_DELETE = {
    "etoken_delete", "DELETE FROM enroll_tokens WHERE id = $1", NULL, NULL};

int store_enroll_token_delete(struct store *s, int64_t id, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id)};
        rc = db_exec(s, &SQL_ETOKEN_DELETE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "enrollment token %lld is unknown",
                             (long long)id);
    }
    return rc;
}

/* One use of a token, if it is valid: the check and the count are one statement, so two
 * downloads racing for the last use cannot both get it. */
static const struct store_sql SQL_ETOKEN_USE = {
    "etoken_use",
    "UPDATE enroll_tokens SET uses = uses + 1, last_used = $2"
    " WHERE hash = $1 AND (expires = 0 OR expires > $2)"
    " AND (uses_total = 0 OR uses < uses_total)",
    NULL, NULL};

int store_enroll_token_use(struct store *s, const char *hash_hex, int64_t now,
                           struct scepter_error *err)
{
    char hash[65];
    int64_t changes = 0;
    int rc;

    if ((rc = store_norm_sha256(hash_hex, hash, "token", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_INT(now)};
        rc = db_exec(s, &SQL_ETOKEN_USE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc =
                scepter_err(err, SCEPTER_EFORBIDDEN, "token", "token: unknown, expired or used up");
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Security events                                                                           */

static const struct store_sql SQL_EVENT_ADD = {
    "event_add", "INSERT INTO events (kind, device_id, detail, created) VALUES ($1, $2, $3, $4)",
    NULL, NULL};

int store_event_add(struct store *s, const char *kind, const char *device_id, const char *detail,
                    int64_t now, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(kind, 64, "kind", err)) != 0 ||
        (device_id && (rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0))
        return rc;
    if (detail == NULL || strlen(detail) > 16384)
        return scepter_err(err, SCEPTER_EINVAL, "detail", "detail: missing or over 16 KiB");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(kind), P_TEXT(device_id), P_TEXT(detail), P_INT(now)};
        rc = db_exec(s, &SQL_EVENT_ADD, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

void store_events_free(struct store_event *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].kind);
        free(v[i].device_id);
        free(v[i].detail);
    }
    free(v);
}

/* Newest first; before_id pages backwards. */
static const struct store_sql SQL_EVENT_LIST = {
    "event_list",
    "SELECT id, kind, device_id, detail, created FROM events"
    " WHERE ($1 IS NULL OR device_id = $1) AND ($2 IS NULL OR kind = $2)"
    " AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4",
    NULL, NULL};

int store_event_list(struct store *s, const struct store_event_filter *f, struct store_event **out,
                     size_t *n, struct scepter_error *err)
{
    struct store_event *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    *out = NULL;
    *n = 0;
    if ((f->device_id && (rc = store_check_str(f->device_id, LIMIT_DEVICE_ID, "udid", err)) != 0) ||
        (f->kind && (rc = store_check_str(f->kind, 64, "kind", err)) != 0))
        return rc;
    if (f->before_id < 0)
        return scepter_err(err, SCEPTER_EINVAL, "before", "before: negative id");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(f->device_id), P_TEXT(f->kind), P_INT(f->before_id),
                          P_INT(f->limit ? (int64_t)f->limit : INT64_MAX)};
        store_events_free(v, count);
        v = NULL;
        count = cap = 0;
        rc = db_query(s, &SQL_EVENT_LIST, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                v = xreallocarray(v, cap, sizeof(*v));
            }
            v[count].id = db_int(&r, 0);
            v[count].kind = db_strdup(&r, 1);
            v[count].device_id = db_strdup(&r, 2);
            v[count].detail = db_strdup(&r, 3);
            v[count].created = db_int(&r, 4);
            count++;
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_events_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}
