/*
 * store/ddm.c — what devices report over Declarative Device Management.  The declarations a
 * device should hold are computed from the policies on every request (mdm/ddm.c) and are never
 * stored; what is stored is the device's side: the status of each declaration it holds (active,
 * valid, the server token it has, the reasons) and the device facts its status reports carry.
 * A report replaces an enrollment's rows in one transaction, so a reader sees the last report
 * whole or the one before it.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_DDM_ID      1024
#define MAX_DDM_REASONS (64 * 1024)
#define MAX_DDM_FACT    256

static const char *const g_kinds[] = {"activations", "configurations", "assets", "management"};
static const char *const g_valid[] = {"valid", "invalid", "unknown"};

static bool one_of(const char *s, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, v[i]) == 0)
            return true;
    return false;
}

static int check_report(const struct store_ddm_report *r, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(r->enrollment_id, 256, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(r->device_id, 256, "device_id", err)) != 0)
        return rc;
    if (r->os_version != NULL &&
        (rc = store_check_str(r->os_version, MAX_DDM_FACT, "device.operating-system.version",
                              err)) != 0)
        return rc;
    if (r->build_version != NULL &&
        (rc = store_check_str(r->build_version, MAX_DDM_FACT,
                              "device.operating-system.build-version", err)) != 0)
        return rc;
    if (r->model_family != NULL &&
        (rc = store_check_str(r->model_family, MAX_DDM_FACT, "device.model.family", err)) != 0)
        return rc;
    for (size_t i = 0; i < r->n; i++) {
        const struct store_ddm_status *it = &r->items[i];

        if (it->kind == NULL || !one_of(it->kind, g_kinds, ARRAY_LEN(g_kinds)))
            return scepter_err(err, SCEPTER_EINVAL, "kind",
                               "kind: not one of activations, configurations, assets, management");
        if ((rc = store_check_str(it->identifier, MAX_DDM_ID, "identifier", err)) != 0)
            return rc;
        if (it->server_token != NULL && strlen(it->server_token) > MAX_DDM_ID)
            return scepter_err(err, SCEPTER_EINVAL, "server-token",
                               "server-token: at most %d bytes", MAX_DDM_ID);
        if (it->valid == NULL || !one_of(it->valid, g_valid, ARRAY_LEN(g_valid)))
            return scepter_err(err, SCEPTER_EINVAL, "valid",
                               "valid: not one of valid, invalid, unknown");
        if (it->reasons_json != NULL && strlen(it->reasons_json) > MAX_DDM_REASONS)
            return scepter_err(err, SCEPTER_EINVAL, "reasons", "reasons: at most %d bytes",
                               MAX_DDM_REASONS);
    }
    return 0;
}

static const struct store_sql SQL_DDM_ENROLLMENT = {
    "ddm_enrollment", "SELECT 1 FROM enrollments WHERE id = $1 AND device_id = $2", NULL, NULL};
static const struct store_sql SQL_DDM_CLEAR = {
    "ddm_clear", "DELETE FROM ddm_status WHERE enrollment_id = $1", NULL, NULL};
static const struct store_sql SQL_DDM_INSERT = {
    "ddm_insert",
    "INSERT INTO ddm_status (enrollment_id, kind, identifier, server_token, active, valid,"
    " reasons, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (enrollment_id, kind, identifier) DO UPDATE SET"
    " server_token = excluded.server_token, active = excluded.active, valid = excluded.valid,"
    " reasons = excluded.reasons, updated = excluded.updated",
    NULL, NULL};
static const struct store_sql SQL_DDM_DEVICE = {
    "ddm_device",
    "INSERT INTO ddm_devices (device_id, model_family, os_version, last_report)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET"
    " model_family = coalesce(excluded.model_family, ddm_devices.model_family),"
    " os_version = coalesce(excluded.os_version, ddm_devices.os_version),"
    " last_report = excluded.last_report",
    NULL, NULL};
static const struct store_sql SQL_DDM_OS = {
    "ddm_os",
    "UPDATE devices SET os_version = coalesce($2, os_version),"
    " build_version = coalesce($3, build_version), updated = $4 WHERE id = $1",
    NULL, NULL};

static int report_tx(struct store *s, const struct store_ddm_report *r, int64_t now,
                     struct scepter_error *err)
{
    struct dbres res;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(r->enrollment_id), P_TEXT(r->device_id)};
        if ((rc = db_query(s, &SQL_DDM_ENROLLMENT, p, ARRAY_LEN(p), &res, err)) != 0)
            return rc;
        rc = db_next(&res, err);
        db_res_clear(&res);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_id",
                               "enrollment_id: no enrollment %s of device %s", r->enrollment_id,
                               r->device_id);
    }
    if (r->has_declarations) {
        struct dbv p[] = {P_TEXT(r->enrollment_id)};
        if ((rc = db_exec(s, &SQL_DDM_CLEAR, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
        for (size_t i = 0; i < r->n; i++) {
            const struct store_ddm_status *it = &r->items[i];
            struct dbv q[] = {
                P_TEXT(r->enrollment_id), P_TEXT(it->kind),
                P_TEXT(it->identifier),   P_TEXT(it->server_token ? it->server_token : ""),
                P_BOOL(it->active),       P_TEXT(it->valid),
                P_TEXT(it->reasons_json), P_INT(now)};
            if ((rc = db_exec(s, &SQL_DDM_INSERT, q, ARRAY_LEN(q), NULL, err)) != 0)
                return rc;
        }
    }
    {
        struct dbv p[] = {P_TEXT(r->device_id), P_TEXT(r->model_family), P_TEXT(r->os_version),
                          P_INT(now)};
        if ((rc = db_exec(s, &SQL_DDM_DEVICE, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    if (r->os_version != NULL || r->build_version != NULL) {
        struct dbv p[] = {P_TEXT(r->device_id), P_TEXT(r->os_version), P_TEXT(r->build_version),
                          P_INT(now)};
        if ((rc = db_exec(s, &SQL_DDM_OS, p, ARRAY_LEN(p), NULL, err)) != 0)
            return rc;
    }
    return db_commit(s, err);
}

int store_ddm_report_save(struct store *s, const struct store_ddm_report *r, int64_t now,
                          struct scepter_error *err)
{
    int rc;

    if ((rc = check_report(r, err)) != 0)
        return rc;
    STORE_CALL(s, rc, err) rc = report_tx(s, r, now, err);
    return rc;
}

void store_ddm_statuses_clear(struct store_ddm_statuses *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->v[i].kind);
        free((char *)l->v[i].identifier);
        free((char *)l->v[i].server_token);
        free((char *)l->v[i].valid);
        free((char *)l->v[i].reasons_json);
        free((char *)l->v[i].enrollment_id);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static const struct store_sql SQL_DDM_LIST = {
    "ddm_list",
    "SELECT kind, identifier, server_token, active, valid, reasons, updated FROM ddm_status"
    " WHERE enrollment_id = $1 ORDER BY kind, identifier",
    NULL, NULL};

/* The rows of a status query (columns: kind, identifier, server_token, active, valid,
 * reasons, updated, then the enrollment id when with_enrollment) into out; r is cleared. */
static int read_statuses(struct dbres *r, bool with_enrollment, struct store_ddm_statuses *out,
                         struct scepter_error *err)
{
    size_t cap = 0;
    int rc;

    while ((rc = db_next(r, err)) == 1) {
        struct store_ddm_status *it;

        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->v = xreallocarray(out->v, cap, sizeof(*out->v));
        }
        it = &out->v[out->n++];
        memset(it, 0, sizeof(*it));
        it->kind = db_strdup(r, 0);
        it->identifier = db_strdup(r, 1);
        it->server_token = db_strdup(r, 2);
        it->active = db_bool(r, 3);
        it->valid = db_strdup(r, 4);
        it->reasons_json = db_strdup(r, 5);
        it->updated = db_int(r, 6);
        if (with_enrollment)
            it->enrollment_id = db_strdup(r, 7);
    }
    db_res_clear(r);
    if (rc < 0)
        store_ddm_statuses_clear(out);
    return rc < 0 ? rc : 0;
}

static int list_once(struct store *s, const char *enrollment_id, struct store_ddm_statuses *out,
                     struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(enrollment_id)};
    struct dbres r;
    int rc;

    store_ddm_statuses_clear(out);
    if ((rc = db_query(s, &SQL_DDM_LIST, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    return read_statuses(&r, false, out, err);
}

int store_ddm_status_list(struct store *s, const char *enrollment_id,
                          struct store_ddm_statuses *out, struct scepter_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(enrollment_id, 256, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err) rc = list_once(s, enrollment_id, out, err);
    return rc;
}

/* The identifier's prefix is compared with substr so that no LIKE pattern character in it
 * (an underscore in payload_identifier_prefix) matches anything else. */
static const struct store_sql SQL_DDM_PAGE = {
    "ddm_page",
    "SELECT kind, identifier, server_token, active, valid, reasons, updated, enrollment_id"
    " FROM ddm_status WHERE enrollment_id IN {ARR1} AND substr(identifier, 1, length($2)) = $2"
    " ORDER BY enrollment_id, kind, identifier",
    NULL, NULL};

static int page_once(struct store *s, const char *const *ids, size_t n, const char *prefix,
                     struct store_ddm_statuses *out, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXTS(ids, n), P_TEXT(prefix)};
    struct dbres r;
    int rc;

    store_ddm_statuses_clear(out);
    if ((rc = db_query(s, &SQL_DDM_PAGE, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    return read_statuses(&r, true, out, err);
}

int store_ddm_status_page(struct store *s, const char *const *enrollment_ids, size_t n,
                          const char *prefix, struct store_ddm_statuses *out,
                          struct scepter_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((rc = store_check_str(enrollment_ids[i], 256, "enrollment_id", err)) != 0)
            return rc;
    if ((rc = store_check_str(prefix, MAX_DDM_ID, "prefix", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err) rc = page_once(s, enrollment_ids, n, prefix, out, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Profile to declarations                                                                   */

static const struct store_sql SQL_HANDOVER_ADD = {
    "ddm_handover_add",
    "INSERT INTO ddm_handover (enrollment_id, policy_id, policy_uid, created)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (enrollment_id, policy_id) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_HANDOVER_LIST = {
    "ddm_handover_list",
    "SELECT policy_id, policy_uid FROM ddm_handover WHERE enrollment_id = $1 ORDER BY policy_id",
    NULL, NULL};
static const struct store_sql SQL_HANDOVER_DONE = {
    "ddm_handover_done", "DELETE FROM ddm_handover WHERE enrollment_id = $1 AND policy_id = $2",
    NULL, NULL};

int store_ddm_handover_add(struct store *s, const char *enrollment_id, int64_t policy_id,
                           const char *policy_uid, int64_t now, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(enrollment_id, 256, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(policy_uid, 64, "policy_uid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id), P_INT(policy_id), P_TEXT(policy_uid), P_INT(now)};
        rc = db_exec(s, &SQL_HANDOVER_ADD, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

static int handover_list_once(struct store *s, const char *enrollment_id, int64_t **ids,
                              char ***uids, size_t *n, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(enrollment_id)};
    struct dbres r;
    size_t cap = 0;
    int rc;

    free(*ids);
    store_strv_free(*uids, *n);
    *ids = NULL;
    *uids = NULL;
    *n = 0;
    if ((rc = db_query(s, &SQL_HANDOVER_LIST, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *ids = xreallocarray(*ids, cap, sizeof(**ids));
            *uids = xreallocarray(*uids, cap, sizeof(**uids));
        }
        (*ids)[*n] = db_int(&r, 0);
        (*uids)[*n] = db_strdup(&r, 1);
        (*n)++;
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

int store_ddm_handover_list(struct store *s, const char *enrollment_id, int64_t **policy_ids,
                            char ***policy_uids, size_t *n, struct scepter_error *err)
{
    int rc;

    *policy_ids = NULL;
    *policy_uids = NULL;
    *n = 0;
    if ((rc = store_check_str(enrollment_id, 256, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = handover_list_once(s, enrollment_id, policy_ids, policy_uids, n, err);
    if (rc != 0) {
        free(*policy_ids);
        store_strv_free(*policy_uids, *n);
        *policy_ids = NULL;
        *policy_uids = NULL;
        *n = 0;
    }
    return rc;
}

int store_ddm_handover_done(struct store *s, const char *enrollment_id, int64_t policy_id,
                            struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(enrollment_id, 256, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id), P_INT(policy_id)};
        rc = db_exec(s, &SQL_HANDOVER_DONE, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

static const struct store_sql SQL_DDM_CERT_DEVICE = {
    "ddm_cert_device", "SELECT device_id FROM cert_bindings WHERE cert_hash = $1", NULL, NULL};

static int cert_device_once(struct store *s, const char *hash, char **device_id,
                            struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(hash)};
    struct dbres r;
    int rc;

    free(*device_id);
    *device_id = NULL;
    if ((rc = db_query(s, &SQL_DDM_CERT_DEVICE, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    if ((rc = db_next(&r, err)) == 1) {
        *device_id = db_strdup(&r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "certificate",
                         "the certificate is not bound to any device");
    }
    db_res_clear(&r);
    return rc;
}

int store_ddm_cert_device(struct store *s, const char *cert_hash, char **device_id,
                          struct scepter_error *err)
{
    char hash[65];
    int rc;

    *device_id = NULL;
    if ((rc = store_norm_sha256(cert_hash, hash, "cert_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err) rc = cert_device_once(s, hash, device_id, err);
    return rc;
}
