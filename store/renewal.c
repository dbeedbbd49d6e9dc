/*
 * Device identity renewal (issue 21): which bound identities are close to their notAfter, the
 * renewal outstanding per device (the InstallProfile of the enrollment profile that carries a
 * fresh identity), and binding the renewed certificate to the device — only while a renewal is
 * outstanding for it, only for that device, and only a certificate that is bound to nothing
 * and was never revoked: Scepter's own issuance names the certificate (its SHA-256 for a
 * PKCS#12 identity, its device for the built-in SCEP CA); an external SCEP CA's certificate is
 * taken when the device presents it during the renewal.  The takeover that
 * store_authenticate refuses stays refused: without an outstanding renewal nothing is bound.
 */
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "store/store_int.h"

/* Enrolled devices (device channel enabled) whose newest bound certificate expires before $1
 * (and has a known notAfter), without a renewal outstanding; $2 at most. */
static const struct store_sql SQL_RENEWAL_CANDIDATES = {
    "renewal_candidates",
    "SELECT d.id, b.na FROM devices d"
    " JOIN (SELECT device_id, max(not_after) AS na FROM cert_bindings WHERE not_after <> 0"
    "  GROUP BY device_id) AS b ON b.device_id = d.id"
    " JOIN enrollments e ON e.id = d.id"
    " WHERE e.enabled AND d.renewal_at = 0 AND b.na < $1"
    " ORDER BY b.na, d.id LIMIT $2",
    NULL, NULL};

void store_renewal_candidates_free(struct store_renewal_candidate *c, size_t n)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(c[i].device_id);
    free(c);
}

int store_renewal_candidates(struct store *s, int64_t before, size_t limit,
                             struct store_renewal_candidate **out, size_t *n,
                             struct scepter_error *err)
{
    struct store_renewal_candidate *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > 100000)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: want 1 to 100000 devices");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(before), P_INT(limit)};
        store_renewal_candidates_free(v, count);
        v = NULL;
        count = cap = 0;
        if ((rc = db_query(s, &SQL_RENEWAL_CANDIDATES, p, ARRAY_LEN(p), &r, err)) == 0) {
            while ((rc = db_next(&r, err)) == 1) {
                if (count == cap) {
                    cap = cap ? cap * 2 : 16;
                    v = xreallocarray(v, cap, sizeof(*v));
                }
                v[count].device_id = db_strdup(&r, 0);
                v[count].not_after = db_int(&r, 1);
                count++;
            }
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_renewal_candidates_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

/* Mark the renewal outstanding, unless one is: $1 device, $2 command, $3 now, $4 expected
 * certificate (or NULL), $5 its notAfter. */
static const struct store_sql SQL_RENEWAL_MARK = {
    "renewal_mark",
    "UPDATE devices SET renewal_uuid = $2, renewal_at = $3, renewal_cert = $4,"
    " renewal_not_after = $5 WHERE id = $1 AND renewal_at = 0",
    NULL, NULL};

static int renewal_begin(struct store *s, const char *device_id, const struct store_command *cmd,
                         const char *cert_hash, int64_t cert_not_after, int64_t now,
                         struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(device_id), P_TEXT(cmd->uuid), P_INT(now), P_TEXT(cert_hash),
                          P_INT(cert_not_after)};
        if ((rc = db_exec(s, &SQL_RENEWAL_MARK, p, ARRAY_LEN(p), &changes, err)) != 0)
            goto out;
    }
    if (changes == 0) {
        rc = scepter_err(err, SCEPTER_ECONFLICT, "device_id",
                         "device %s is unknown or has a renewal outstanding", device_id);
        goto out;
    }
    if ((rc = store_enqueue_each_tx(s, cmd, &device_id, 1, now, 0, 0, STORE_POLICY_NONE, err)) != 0)
        goto out;
    return db_commit(s, err);
out:
    db_rollback(s);
    return rc;
}

int store_renewal_begin(struct store *s, const char *device_id, const struct store_command *cmd,
                        const char *cert_hash, int64_t cert_not_after, int64_t now,
                        struct scepter_error *err)
{
    char hash[65];
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0 ||
        (rc = store_check_command(cmd, err)) != 0)
        return rc;
    if (cert_hash && (rc = store_norm_sha256(cert_hash, hash, "cert_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = renewal_begin(s, device_id, cmd, cert_hash ? hash : NULL, cert_not_after, now, err);
    return rc;
}

/*
 * What binding needs to know, $1 certificate, $2 device: 0 whom the certificate is bound to,
 * 1 whether it was revoked, 2 the device's renewal time (NULL: unknown device), 3 the expected
 * certificate, 4 its notAfter, 5 the notAfter of a certificate the built-in SCEP CA issued to
 * this device with that hash (NULL: none), 6 whether the device's channel is enabled,
 * 7 whether the built-in SCEP CA issued that certificate at all (to any device).
 */
static const struct store_sql SQL_RENEWAL_STATE = {
    "renewal_state",
    "SELECT (SELECT device_id FROM cert_bindings WHERE cert_hash = $1),"
    " EXISTS (SELECT 1 FROM revoked_certs WHERE cert_hash = $1),"
    " d.renewal_at, d.renewal_cert, d.renewal_not_after,"
    " (SELECT max(c.not_after) FROM scep_certs c WHERE c.cert_sha256 = $1 AND c.device_id = $2"
    "  AND c.revoked_at = 0),"
    " coalesce((SELECT enabled FROM enrollments WHERE id = $2), false),"
    " EXISTS (SELECT 1 FROM scep_certs c WHERE c.cert_sha256 = $1)"
    " FROM (SELECT 1) AS one LEFT JOIN devices d ON d.id = $2",
    NULL, NULL};

static const struct store_sql SQL_RENEWAL_BIND = {
    "renewal_bind",
    "INSERT INTO cert_bindings (cert_hash, device_id, created, not_after) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_RENEWAL_SUPERSEDE = {
    "renewal_supersede",
    "INSERT INTO revoked_certs (cert_hash, device_id, reason, revoked_at)"
    " SELECT cert_hash, device_id, 'superseded', $3 FROM cert_bindings"
    " WHERE device_id = $1 AND cert_hash <> $2 ON CONFLICT (cert_hash) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_RENEWAL_DROP_OLD = {
    "renewal_drop_old", "DELETE FROM cert_bindings WHERE device_id = $1 AND cert_hash <> $2", NULL,
    NULL};
static const struct store_sql SQL_RENEWAL_DONE = {
    "renewal_done",
    "UPDATE devices SET renewal_uuid = NULL, renewal_at = 0, renewal_cert = NULL,"
    " renewal_not_after = 0, renewed_at = $2 WHERE id = $1",
    NULL, NULL};

static int renewal_bind(struct store *s, const char *device_id, const char *hash, int64_t not_after,
                        int64_t now, int64_t *bound_not_after, struct scepter_error *err)
{
    struct dbres r = {0};
    int64_t changes = 0;
    bool ok = false;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(device_id)};
        if ((rc = db_query(s, &SQL_RENEWAL_STATE, p, ARRAY_LEN(p), &r, err)) != 0 ||
            (rc = db_next(&r, err)) != 1) {
            if (rc == 0)
                rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: renewal state: no row");
            goto out;
        }
    }
    rc = SCEPTER_EFORBIDDEN;
    if (!db_isnull(&r, 0) || db_bool(&r, 1)) {
        scepter_err(err, rc, "cert_hash", "the certificate is bound elsewhere or was revoked");
        goto out;
    }
    if (db_isnull(&r, 2) || db_int(&r, 2) == 0 || !db_bool(&r, 6)) {
        scepter_err(err, rc, "cert_hash",
                    "no identity renewal is outstanding for device %s: the certificate is not "
                    "bound to it",
                    device_id);
        goto out;
    }
    if (!db_isnull(&r, 3)) { /* Scepter issued the PKCS#12 identity: that one only */
        ok = strcmp(db_text(&r, 3), hash) == 0;
        if (ok && not_after == 0)
            not_after = db_int(&r, 4);
    } else if (!db_isnull(&r, 5)) { /* the built-in SCEP CA issued it to this device */
        ok = true;
        if (not_after == 0)
            not_after = db_int(&r, 5);
    } else {
        /* An external SCEP CA: the device presents it during its renewal.  A certificate the
         * built-in CA issued to anything else is refused: its renewals are bound to the
         * device by their one-time challenge.  Its notAfter must come with it (the caller
         * read the certificate): nothing else knows it, and the next renewal needs it. */
        ok = !db_bool(&r, 7) && not_after != 0;
    }
    db_res_clear(&r);
    if (!ok) {
        scepter_err(err, rc, "cert_hash",
                    "the certificate is not the one the renewal of device %s issued", device_id);
        goto out;
    }
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(device_id), P_INT(now), P_INT(not_after)};
        if ((rc = db_exec(s, &SQL_RENEWAL_BIND, p, ARRAY_LEN(p), &changes, err)) != 0)
            goto out;
        if (changes == 0) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "cert_hash",
                             "the certificate was bound elsewhere meanwhile");
            goto out;
        }
    }
    {
        struct dbv p[] = {P_TEXT(device_id), P_TEXT(hash), P_INT(now)};
        if ((rc = db_exec(s, &SQL_RENEWAL_SUPERSEDE, p, ARRAY_LEN(p), NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_RENEWAL_DROP_OLD, p, 2, NULL, err)) != 0)
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(device_id), P_INT(now)};
        if ((rc = db_exec(s, &SQL_RENEWAL_DONE, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    if ((rc = db_commit(s, err)) == 0 && bound_not_after)
        *bound_not_after = not_after;
    return rc;
out:
    db_res_clear(&r);
    db_rollback(s);
    return rc;
}

int store_renewal_bind(struct store *s, const char *device_id, const char *cert_hash,
                       int64_t not_after, int64_t now, int64_t *bound_not_after,
                       struct scepter_error *err)
{
    char hash[65];
    int rc;

    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0 ||
        (rc = store_norm_sha256(cert_hash, hash, "cert_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = renewal_bind(s, device_id, hash, not_after, now, bound_not_after, err);
    return rc;
}

static const struct store_sql SQL_IDENTITIES_EXPIRING = {
    "identities_expiring",
    "SELECT count(*) FROM (SELECT b.device_id FROM cert_bindings b"
    " JOIN enrollments e ON e.id = b.device_id AND e.enabled"
    " WHERE b.not_after <> 0 GROUP BY b.device_id HAVING max(b.not_after) < $1) AS x",
    NULL, NULL};

int store_identities_expiring(struct store *s, int64_t before, int64_t *count,
                              struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *count = 0;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(before)};
        rc = db_query(s, &SQL_IDENTITIES_EXPIRING, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *count = db_int(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
    }
    return rc;
}
