/*
 * store/audit.c — the audit log: one row per change made through the operator API (and per
 * sign-in, refused or not), newest first by id.  Rows are written by mdm/audit.c and removed
 * by the retention job after audit_retention_days.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_FIELD   256
#define MAX_SUMMARY 2048

void store_audit_entries_free(struct store_audit_entry *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].actor_type);
        free(v[i].actor_name);
        free(v[i].address);
        free(v[i].action);
        free(v[i].route);
        free(v[i].object);
        free(v[i].summary);
    }
    free(v);
}

static const struct store_sql SQL_AUDIT_ADD = {
    "audit_add",
    "INSERT INTO audit (at, actor_type, actor_name, address, action, route, object, summary)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    NULL, NULL};

static int opt_len(const char *v, size_t max, const char *field, struct scepter_error *err)
{
    if (v != NULL && strlen(v) > max)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: at most %zu bytes", field, max);
    return 0;
}

int store_audit_check(const struct store_audit_entry *e, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(e->actor_type, 32, "actor_type", err)) != 0 ||
        (rc = store_check_str(e->actor_name, MAX_FIELD, "actor_name", err)) != 0 ||
        (rc = store_check_str(e->action, 128, "action", err)) != 0 ||
        (rc = store_check_str(e->route, MAX_FIELD, "route", err)) != 0 ||
        (rc = opt_len(e->address, 64, "address", err)) != 0 ||
        (rc = opt_len(e->object, MAX_FIELD, "object", err)) != 0 ||
        (rc = opt_len(e->summary, MAX_SUMMARY, "summary", err)) != 0)
        return rc;
    return 0;
}

int store_audit_insert(struct store *s, const struct store_audit_entry *e, int64_t *id,
                       struct scepter_error *err)
{
    struct dbv p[] = {P_INT(e->at),
                      P_TEXT(e->actor_type),
                      P_TEXT(e->actor_name),
                      P_TEXT(e->address ? e->address : ""),
                      P_TEXT(e->action),
                      P_TEXT(e->route),
                      P_TEXT(e->object ? e->object : ""),
                      P_TEXT(e->summary ? e->summary : "")};
    struct dbres r;
    int rc = db_query(s, &SQL_AUDIT_ADD, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        *id = db_int(&r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ESTORE, NULL, "audit_add: no id returned");
    }
    db_res_clear(&r);
    return rc;
}

int store_audit_add(struct store *s, const struct store_audit_entry *e, int64_t *id,
                    struct scepter_error *err)
{
    int rc;

    *id = 0;
    if ((rc = store_audit_check(e, err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = store_audit_insert(s, e, id, err);
    return rc;
}

/* The action filter is exact, or a prefix when it ends in '*' ("policy.*"). */
static const struct store_sql SQL_AUDIT_LIST = {
    "audit_list",
    "SELECT id, at, actor_type, actor_name, address, action, route, object, summary FROM audit"
    " WHERE ($1 IS NULL OR actor_name = $1) AND ($2 IS NULL OR action = $2)"
    " AND ($3 IS NULL OR substr(action, 1, length($3)) = $3) AND ($4 IS NULL OR object = $4)"
    " AND at >= $5 AND at <= $6 AND ($7 = 0 OR id < $7) ORDER BY id DESC LIMIT $8",
    NULL, NULL};

int store_audit_list(struct store *s, const struct store_audit_filter *f,
                     struct store_audit_entry **out, size_t *n, struct scepter_error *err)
{
    char *prefix = NULL;
    const char *exact = f->action;
    size_t limit = f->limit == 0 || f->limit > 1000 ? 1000 : f->limit;
    int rc;

    *out = NULL;
    *n = 0;
    if (exact != NULL && *exact && exact[strlen(exact) - 1] == '*') {
        prefix = xstrndup(exact, strlen(exact) - 1);
        exact = NULL;
    }
    STORE_CALL(s, rc, err)
    {
        struct store_audit_entry *v = NULL;
        size_t count = 0, cap = 0;
        struct dbres r;
        struct dbv p[] = {P_TEXT(f->actor), P_TEXT(exact),
                          P_TEXT(prefix),   P_TEXT(f->object),
                          P_INT(f->since),  P_INT(f->until > 0 ? f->until : INT64_MAX),
                          P_INT(f->before), P_INT(limit)};

        rc = db_query(s, &SQL_AUDIT_LIST, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (count == cap)
                v = xreallocarray(v, cap = cap ? cap * 2 : 16, sizeof(*v));
            v[count].id = db_int(&r, 0);
            v[count].at = db_int(&r, 1);
            v[count].actor_type = db_strdup(&r, 2);
            v[count].actor_name = db_strdup(&r, 3);
            v[count].address = db_strdup(&r, 4);
            v[count].action = db_strdup(&r, 5);
            v[count].route = db_strdup(&r, 6);
            v[count].object = db_strdup(&r, 7);
            v[count].summary = db_strdup(&r, 8);
            count++;
            rc = 0;
        }
        db_res_clear(&r);
        if (rc < 0) {
            store_audit_entries_free(v, count);
        } else {
            *out = v;
            *n = count;
            rc = 0;
        }
    }
    free(prefix);
    return rc;
}

static const struct store_sql SQL_AUDIT_PURGE = {"audit_purge", "DELETE FROM audit WHERE at < $1",
                                                 NULL, NULL};

int store_audit_purge(struct store *s, int64_t before, int64_t *deleted, struct scepter_error *err)
{
    int rc;

    *deleted = 0;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(before)};
        rc = db_exec(s, &SQL_AUDIT_PURGE, p, ARRAY_LEN(p), deleted, err);
    }
    return rc;
}
