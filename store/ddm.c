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
    "ddm_os", "UPDATE devices SET os_version = $2, updated = $3 WHERE id = $1", NULL, NULL};

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
    if (r->os_version != NULL) {
        struct dbv p[] = {P_TEXT(r->device_id), P_TEXT(r->os_version), P_INT(now)};
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

static int list_once(struct store *s, const char *enrollment_id, struct store_ddm_statuses *out,
                     struct scepter_error *err)
{
    struct dbres r;
    size_t cap = 0;
    int rc;

    store_ddm_statuses_clear(out);
    {
        struct dbv p[] = {P_TEXT(enrollment_id)};
        if ((rc = db_query(s, &SQL_DDM_LIST, p, ARRAY_LEN(p), &r, err)) != 0)
            return rc;
    }
    while ((rc = db_next(&r, err)) == 1) {
        struct store_ddm_status *it;

        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->v = xreallocarray(out->v, cap, sizeof(*out->v));
        }
        it = &out->v[out->n++];
        memset(it, 0, sizeof(*it));
        it->kind = db_strdup(&r, 0);
        it->identifier = db_strdup(&r, 1);
        it->server_token = db_strdup(&r, 2);
        it->active = db_bool(&r, 3);
        it->valid = db_strdup(&r, 4);
        it->reasons_json = db_strdup(&r, 5);
        it->updated = db_int(&r, 6);
    }
    db_res_clear(&r);
    if (rc < 0)
        store_ddm_statuses_clear(out);
    return rc < 0 ? rc : 0;
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
