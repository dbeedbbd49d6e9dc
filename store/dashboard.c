/*
 * store/dashboard.c — read-only figures for the web console: the dashboard (enrolled devices
 * by platform, devices seen lately, pending and failed commands) and the cross-device command
 * view (commands newest first with their queue entries counted by state, and one command's
 * entries device by device).  Nothing here writes.
 *
 * A queue row's state and status (store/queue.c) map to what an operator reads: state 0 is
 * "queued", or "NotNow" when the device's last report was NotNow; state 1 is Acknowledged or
 * an error (Error, CommandFormatError); state 2 is cancelled.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_TARGETS 1000

/* ---------------------------------------------------------------------------------------- */
/* Dashboard                                                                                 */

static const struct store_sql SQL_ENROLLED_BY_PLATFORM = {
    "dashboard_enrolled",
    "SELECT d.platform, count(*) FROM devices d JOIN enrollments e ON e.id = d.id"
    " WHERE e.enabled GROUP BY d.platform",
    NULL, NULL};

static const struct store_sql SQL_SEEN_SINCE = {
    "dashboard_seen",
    "SELECT count(*) FROM enrollments e WHERE e.id = e.device_id AND e.last_seen >= $1", NULL,
    NULL};

static const struct store_sql SQL_PENDING = {
    "dashboard_pending", "SELECT count(*) FROM queue WHERE state = 0", NULL, NULL};

/* Finished rows are in queue_done (updated, state <> 0); a result moves `updated` on. */
static const struct store_sql SQL_FAILED_SINCE = {
    "dashboard_failed",
    "SELECT count(*) FROM queue WHERE state <> 0 AND updated >= $1 AND state = 1"
    " AND status IN (2, 3) AND result_at >= $1",
    NULL, NULL};

static int count_one(struct store *s, const struct store_sql *sql, const struct dbv *p, size_t np,
                     int64_t *out, struct scepter_error *err)
{
    struct dbres r;
    int rc = db_query(s, sql, p, np, &r, err);

    *out = 0;
    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        *out = db_int(&r, 0);
        rc = 0;
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

static int dashboard_get(struct store *s, int64_t seen_since, int64_t failed_since,
                         struct store_dashboard *out, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = db_query(s, &SQL_ENROLLED_BY_PLATFORM, NULL, 0, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1)
        out->enrolled[store_platform_parse(db_text(&r, 0))] += db_int(&r, 1);
    db_res_clear(&r);
    if (rc < 0)
        return rc;
    {
        struct dbv p[] = {P_INT(seen_since)};
        if ((rc = count_one(s, &SQL_SEEN_SINCE, p, ARRAY_LEN(p), &out->seen, err)) != 0)
            return rc;
    }
    if ((rc = count_one(s, &SQL_PENDING, NULL, 0, &out->pending, err)) != 0)
        return rc;
    struct dbv p[] = {P_INT(failed_since)};
    return count_one(s, &SQL_FAILED_SINCE, p, ARRAY_LEN(p), &out->failed, err);
}

int store_dashboard_get(struct store *s, int64_t seen_since, int64_t failed_since,
                        struct store_dashboard *out, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    rc = dashboard_get(s, seen_since, failed_since, out, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Commands across devices                                                                   */

#define COUNT_COLUMNS                                                                              \
    " sum(CASE WHEN q.state = 0 AND q.status <> 4 THEN 1 ELSE 0 END),"                             \
    " sum(CASE WHEN q.state = 0 AND q.status = 4 THEN 1 ELSE 0 END),"                              \
    " sum(CASE WHEN q.state = 1 AND q.status = 1 THEN 1 ELSE 0 END),"                              \
    " sum(CASE WHEN q.state = 1 AND q.status <> 1 THEN 1 ELSE 0 END),"                             \
    " sum(CASE WHEN q.state = 2 THEN 1 ELSE 0 END)"

/* $1 request type or NULL, $2 origin (0 any, 1 operator, 2 policy). */
#define COMMAND_FILTER                                                                             \
    " ($1 IS NULL OR c.request_type = $1)"                                                         \
    " AND ($2 = 0 OR ($2 = 1 AND c.policy_id IS NULL) OR ($2 = 2 AND c.policy_id IS NOT NULL))"

static const struct store_sql SQL_COMMAND_SUMMARIES = {
    "command_summaries",
    "SELECT c.uuid, c.request_type, c.created, coalesce(c.policy_id, 0),"
    " max(q.result_at)," COUNT_COLUMNS " FROM commands c JOIN queue q ON q.command_uuid = c.uuid"
    " WHERE" COMMAND_FILTER " GROUP BY c.uuid, c.request_type, c.created, c.policy_id"
    " ORDER BY c.created DESC, max(q.seq) DESC LIMIT $3 OFFSET $4",
    NULL, NULL};

static const struct store_sql SQL_COMMAND_TOTAL = {
    "command_total",
    "SELECT count(*) FROM commands c WHERE" COMMAND_FILTER
    " AND EXISTS (SELECT 1 FROM queue q WHERE q.command_uuid = c.uuid)",
    NULL, NULL};

static const struct store_sql SQL_QUEUE_COUNTS = {
    "queue_counts", "SELECT" COUNT_COLUMNS " FROM queue q", NULL, NULL};

static void read_counts(const struct dbres *r, int col, struct store_command_counts *c)
{
    c->queued = db_int(r, col);
    c->notnow = db_int(r, col + 1);
    c->acknowledged = db_int(r, col + 2);
    c->error = db_int(r, col + 3);
    c->cancelled = db_int(r, col + 4);
}

static void read_summary(const struct dbres *r, struct store_command_summary *c)
{
    memset(c, 0, sizeof(*c));
    str_copy(c->uuid, sizeof(c->uuid), db_text(r, 0));
    c->request_type = db_strdup(r, 1);
    c->created = db_int(r, 2);
    c->policy_id = db_int(r, 3);
    c->last_result_at = db_int(r, 4);
    read_counts(r, 5, &c->counts);
}

void store_command_summaries_free(struct store_command_summary *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].request_type);
    free(v);
}

static int command_summaries(struct store *s, const struct store_command_filter *f,
                             struct store_command_summary **out, size_t *n, size_t *total,
                             struct store_command_counts *all, struct scepter_error *err)
{
    struct store_command_summary *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int64_t t = 0;
    int rc;

    {
        struct dbv p[] = {P_TEXT(f->request_type), P_INT(f->origin)};
        if ((rc = count_one(s, &SQL_COMMAND_TOTAL, p, ARRAY_LEN(p), &t, err)) != 0)
            return rc;
    }
    if (all) {
        memset(all, 0, sizeof(*all));
        if ((rc = db_query(s, &SQL_QUEUE_COUNTS, NULL, 0, &r, err)) != 0)
            goto out;
        if ((rc = db_next(&r, err)) == 1)
            read_counts(&r, 0, all);
        db_res_clear(&r);
        if (rc < 0)
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(f->request_type), P_INT(f->origin),
                          P_INT(f->limit ? (int64_t)f->limit : 50), P_INT(f->offset)};
        if ((rc = db_query(s, &SQL_COMMAND_SUMMARIES, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        read_summary(&r, &v[count++]);
    }
out:
    db_res_clear(&r);
    if (rc < 0) {
        store_command_summaries_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    *total = (size_t)t;
    return 0;
}

int store_command_summaries(struct store *s, const struct store_command_filter *f,
                            struct store_command_summary **out, size_t *n, size_t *total,
                            struct store_command_counts *all, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    *total = 0;
    if (f->limit > MAX_TARGETS)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: at most %d", MAX_TARGETS);
    if (f->request_type && (rc = store_check_str(f->request_type, 128, "request_type", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = command_summaries(s, f, out, n, total, all, err);
    return rc;
}

static const struct store_sql SQL_COMMAND_ONE = {
    "command_one",
    "SELECT c.uuid, c.request_type, c.created, coalesce(c.policy_id, 0),"
    " coalesce(max(q.result_at), 0)," COUNT_COLUMNS
    " FROM commands c LEFT JOIN queue q ON q.command_uuid = c.uuid"
    " WHERE c.uuid = $1 GROUP BY c.uuid, c.request_type, c.created, c.policy_id",
    NULL, NULL};

static const struct store_sql SQL_COMMAND_TARGETS = {
    "command_targets",
    "SELECT q.enrollment_id, e.device_id, d.device_name, d.serial_number, d.platform, q.state,"
    " q.status, q.notnow_count, q.result_at, q.updated, q.error_chain FROM queue q"
    " JOIN enrollments e ON e.id = q.enrollment_id JOIN devices d ON d.id = e.device_id"
    " WHERE q.command_uuid = $1 ORDER BY e.device_id, q.enrollment_id LIMIT $2 OFFSET $3",
    NULL, NULL};

static const char *entry_status(int state, int status)
{
    if (state == 2)
        return "cancelled";
    if (state == QSTATE_EXPIRED)
        return "Expired";
    if (state == 0)
        return status == STORE_STATUS_NOTNOW ? "NotNow" : "queued";
    return store_status_name((enum store_status)status);
}

void store_command_targets_free(struct store_command_target *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].enrollment_id);
        free(v[i].device_id);
        free(v[i].device_name);
        free(v[i].serial_number);
        free(v[i].status);
        free(v[i].error_chain_json);
    }
    free(v);
}

static int command_targets(struct store *s, const char *uuid, size_t limit, size_t offset,
                           struct store_command_summary *cmd, struct store_command_target **out,
                           size_t *n, struct scepter_error *err)
{
    struct store_command_target *v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    {
        struct dbv p[] = {P_TEXT(uuid)};
        if ((rc = db_query(s, &SQL_COMMAND_ONE, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    if ((rc = db_next(&r, err)) == 0)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "uuid", "uuid: no command %s", uuid);
    if (rc < 0)
        goto out;
    read_summary(&r, cmd);
    db_res_clear(&r);
    {
        struct dbv p[] = {P_TEXT(uuid), P_INT(limit ? (int64_t)limit : MAX_TARGETS), P_INT(offset)};
        if ((rc = db_query(s, &SQL_COMMAND_TARGETS, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        struct store_command_target *t;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        t = &v[count++];
        memset(t, 0, sizeof(*t));
        t->enrollment_id = db_strdup(&r, 0);
        t->device_id = db_strdup(&r, 1);
        t->device_name = db_strdup(&r, 2);
        t->serial_number = db_strdup(&r, 3);
        t->platform = store_platform_parse(db_text(&r, 4));
        t->status = xstrdup(entry_status((int)db_int(&r, 5), (int)db_int(&r, 6)));
        t->notnow_count = (int)db_int(&r, 7);
        t->result_at = db_int(&r, 8);
        t->updated = db_int(&r, 9);
        t->error_chain_json = db_strdup(&r, 10);
    }
out:
    db_res_clear(&r);
    if (rc < 0) {
        store_command_targets_free(v, count);
        free(cmd->request_type);
        cmd->request_type = NULL;
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int store_command_targets(struct store *s, const char *uuid, size_t limit, size_t offset,
                          struct store_command_summary *cmd, struct store_command_target **out,
                          size_t *n, struct scepter_error *err)
{
    int rc;

    memset(cmd, 0, sizeof(*cmd));
    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(uuid, UUID_STR_LEN - 1, "uuid", err)) != 0)
        return rc;
    if (limit > MAX_TARGETS)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: at most %d", MAX_TARGETS);
    STORE_CALL(s, rc, err)
    rc = command_targets(s, uuid, limit, offset, cmd, out, n, err);
    return rc;
}
