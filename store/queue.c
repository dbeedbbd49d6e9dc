/*
 * store/queue.c — the command queue: enqueueing one command for many enrollments or one
 * command per enrollment, the connect exchange (record the device's report, hand out the
 * next command), the operator's view of a queue (list, cancel, clear, read a result),
 * retention and queue depth.
 *
 * A queue row is one (enrollment, command) pair and also holds its result.  state 0 is
 * pending (no final result), 1 finished (Acknowledged / Error / CommandFormatError), 2
 * cancelled or deactivated.  NotNow keeps the row pending, records the result and sets its
 * `notnow` flag: flagged rows are skipped by non-Idle lookups, and the next Idle clears the
 * enrollment's flags with an UPDATE that matches no row in the common case, so an Idle poll
 * with an empty queue writes nothing.  On PostgreSQL the whole exchange is one prepared
 * statement (one round trip, one implicit transaction): data-modifying CTEs record the report
 * (or clear the NotNow flags) and the outer SELECT checks the certificate binding and the
 * enrollment and returns the next command.  On SQLite, which is in-process, the same steps run
 * as separate statements in one transaction (none on the empty Idle path).  Result reports
 * that arrive together are stored together (store_connect_many): on PostgreSQL up to 16 in one
 * statement, on SQLite in one transaction — one synchronous commit for the batch.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/log.h"
#include "common/limits.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_PLIST_LEN (64 * 1024 * 1024)

/* ---------------------------------------------------------------------------------------- */
/* Enqueue                                                                                   */

int store_check_command(const struct store_command *c, struct scepter_error *err)
{
    int rc;

    if (!uuid_valid(c->uuid))
        return scepter_err(err, SCEPTER_EINVAL, "CommandUUID", "CommandUUID: '%.40s' is not a UUID",
                           c->uuid);
    if ((rc = store_check_str(c->request_type, 128, "RequestType", err)) != 0)
        return rc;
    if (c->plist == NULL || c->plist_len == 0)
        return scepter_err(err, SCEPTER_EINVAL, "plist", "plist: the command is empty");
    if (c->plist_len > MAX_PLIST_LEN)
        return scepter_err(err, SCEPTER_ETOOBIG, "plist", "plist: larger than %d MiB",
                           MAX_PLIST_LEN / (1024 * 1024));
    if (c->priority < -1000 || c->priority > 1000)
        return scepter_err(err, SCEPTER_EINVAL, "priority", "priority: %d is outside -1000..1000",
                           c->priority);
    return 0;
}

static int check_ids(const char *const *ids, size_t n, const char *field, struct scepter_error *err)
{
    size_t i;
    int rc;

    if (n == 0)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: no enrollment given", field);
    for (i = 0; i < n; i++) {
        if ((rc = store_check_str(ids[i], LIMIT_ENROLLMENT_ID, field, err)) != 0)
            return rc;
    }
    return 0;
}

static const struct store_sql SQL_COMMAND_INSERT = {
    "command_insert",
    "INSERT INTO commands (uuid, request_type, plist, priority, created, policy_id,"
    " policy_version, policy_action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (uuid) DO NOTHING",
    NULL, NULL};

/* ids sorted and distinct: rows go into queue_next in key order. */
static const struct store_sql SQL_QUEUE_INSERT_MANY = {
    "queue_insert_many",
    "INSERT INTO queue (enrollment_id, command_uuid, priority, created, updated, policy_id,"
    " expires) SELECT e.id, $2, $3, $4, $4, $5, $6 FROM {ARR1} AS a"
    " JOIN enrollments e ON e.id = a.value",
    NULL, NULL};

static const struct store_sql SQL_FIRST_UNKNOWN_ENROLLMENT = {
    "first_unknown_enrollment",
    "SELECT a.value FROM {ARR1} AS a"
    " WHERE NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.id = a.value) LIMIT 1",
    NULL, NULL};

static const struct store_sql SQL_FIRST_EXISTING_COMMAND = {
    "first_existing_command", "SELECT c.uuid FROM commands c WHERE c.uuid IN {ARR1} LIMIT 1", NULL,
    NULL};

/* ENOTFOUND naming the first of ids that is not an enrollment; 0 if all exist. */
static int unknown_enrollment(struct store *s, const char *const *ids, size_t n,
                              struct scepter_error *err)
{
    struct dbv p[] = {P_TEXTS(ids, n)};
    struct dbres r;
    int rc = db_query(s, &SQL_FIRST_UNKNOWN_ENROLLMENT, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_ids",
                         "enrollment_ids: %s is not enrolled here", db_text(&r, 0));
    db_res_clear(&r);
    return rc;
}

/* ECONFLICT naming the first command UUID that exists already or is repeated in uuids. */
static int conflicting_uuid(struct store *s, const char *const *uuids, size_t n,
                            struct scepter_error *err)
{
    struct dbv p[] = {P_TEXTS(uuids, n)};
    struct dbres r;
    int rc = db_query(s, &SQL_FIRST_EXISTING_COMMAND, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1)
        rc = scepter_err(err, SCEPTER_ECONFLICT, "CommandUUID", "CommandUUID: %s exists already",
                         db_text(&r, 0));
    db_res_clear(&r);
    if (rc == 0) /* nothing stored has it: the list repeats a UUID */
        rc = scepter_err(err, SCEPTER_ECONFLICT, "CommandUUID",
                         "CommandUUID: the same UUID is given twice");
    return rc;
}

static int insert_command(struct store *s, const struct store_command *c, int64_t now,
                          int64_t policy_id, int64_t policy_version,
                          enum store_policy_action action, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(c->uuid),
                      P_TEXT(c->request_type),
                      P_BLOB(c->plist, c->plist_len),
                      P_INT(c->priority),
                      P_INT(now),
                      P_INT(policy_id),
                      P_INT(policy_version),
                      P_INT(action)};
    int64_t changes = 0;
    int rc;

    p[5].null = p[6].null = policy_id == 0; /* no policy: NULL columns */
    rc = db_exec(s, &SQL_COMMAND_INSERT, p, ARRAY_LEN(p), &changes, err);
    if (rc == 0 && changes == 0)
        rc = scepter_err(err, SCEPTER_ECONFLICT, "CommandUUID", "CommandUUID: %s exists already",
                         c->uuid);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ids sorted (byte order, as the "C" collation and SQLite compare) without repeats; *m is
 * the count.  The caller frees the array (not the strings). */
static const char **sorted_unique(const char *const *ids, size_t n, size_t *m)
{
    const char **v = xmemdup(ids, n * sizeof(*v));
    size_t i, k = 0;

    qsort(v, n, sizeof(*v), cmp_str);
    for (i = 0; i < n; i++) {
        if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
            v[k++] = v[i];
    }
    *m = k;
    return v;
}

static int enqueue(struct store *s, const struct store_command *cmd, const char *const *ids,
                   size_t n, int64_t now, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    if ((rc = insert_command(s, cmd, now, cmd->policy_id, cmd->policy_version, cmd->policy_action,
                             err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXTS(ids, n), P_TEXT(cmd->uuid),     P_INT(cmd->priority),
                          P_INT(now),      P_INT(cmd->policy_id), P_INT(cmd->expires)};
        p[4].null = cmd->policy_id == 0;
        if ((rc = db_exec(s, &SQL_QUEUE_INSERT_MANY, p, ARRAY_LEN(p), &changes, err)) != 0)
            return rc;
    }
    if ((size_t)changes < n && (rc = unknown_enrollment(s, ids, n, err)) == 0)
        rc = scepter_err(err, SCEPTER_EINTERNAL, "enrollment_ids",
                         "enrollment_ids: rows went missing");
    if (rc != 0)
        return rc;
    return db_commit(s, err);
}

int store_enqueue(struct store *s, const struct store_command *cmd,
                  const char *const *enrollment_ids, size_t n, int64_t now,
                  struct scepter_error *err)
{
    const char **ids;
    size_t m;
    int rc;

    if ((rc = store_check_command(cmd, err)) != 0 ||
        (rc = check_ids(enrollment_ids, n, "enrollment_ids", err)) != 0)
        return rc;
    ids = sorted_unique(enrollment_ids, n, &m);
    STORE_CALL(s, rc, err)
    rc = enqueue(s, cmd, ids, m, now, err);
    free(ids);
    return rc;
}

/*
 * One command for one device's own channel, on PostgreSQL in one statement (one round trip,
 * one synchronous commit): the device's enabled channel, the command row, the queue row, and
 * the channel's push data.  $1 device, $2 UUID, $3 RequestType, $4 plist, $5 priority, $6 now,
 * $7 expiry.  Columns: 0 queue rows written (0 or 1), 1 the enrollment, 2 topic, 3 token,
 * 4 PushMagic (1-4 NULL when it cannot be pushed), 5 the audit entry's id (NULL without one).
 * $8 true: also the audit entry $9-$16 (at, actor type and name, address, action, route,
 * object, summary), written only when the queue row is.  The queue row's foreign key to the
 * command is checked at the end of the statement, when the command row is there.
 */
static const struct store_sql SQL_ENQUEUE_DEVICE = {
    "enqueue_device", NULL,
    "WITH t AS (SELECT e.id, e.topic, e.push_token, e.push_magic, e.token_valid"
    "  FROM devices d JOIN enrollments e ON e.id = d.id AND e.enabled WHERE d.id = $1),"
    " c AS (INSERT INTO commands (uuid, request_type, plist, priority, created, policy_id,"
    "   policy_version, policy_action)"
    "  SELECT $2, $3, $4, $5, $6, NULL, NULL, 0 FROM t ON CONFLICT (uuid) DO NOTHING"
    "  RETURNING uuid),"
    " q AS (INSERT INTO queue (enrollment_id, command_uuid, priority, created, updated, policy_id,"
    "   expires)"
    "  SELECT t.id, c.uuid, $5, $6, $6, NULL, $7 FROM t JOIN c ON true RETURNING enrollment_id),"
    " a AS (INSERT INTO audit (at, actor_type, actor_name, address, action, route, object,"
    "   summary)"
    "  SELECT $9, $10, $11, $12, $13, $14, $15, $16 WHERE $8 AND EXISTS (SELECT 1 FROM q)"
    "  RETURNING id)"
    " SELECT (SELECT count(*) FROM q), t.id, t.topic, t.push_token, t.push_magic,"
    " (SELECT id FROM a)"
    " FROM (SELECT 1) AS one LEFT JOIN t ON t.token_valid AND t.push_token IS NOT NULL",
    NULL};

/* SQLite: the device's enabled channel and its push data (4: can be pushed), read under the
 * write lock; then the command row and the queue row. */
static const struct store_sql SQL_DEVICE_CHANNEL = {
    "device_channel",
    "SELECT e.id, e.topic, e.push_token, e.push_magic,"
    " e.token_valid AND e.push_token IS NOT NULL"
    " FROM devices d JOIN enrollments e ON e.id = d.id AND e.enabled WHERE d.id = $1",
    NULL, NULL};

/* $1 enrollment, $2 UUID, $3 priority, $4 now, $5 expiry. */
static const struct store_sql SQL_QUEUE_INSERT_ONE = {
    "queue_insert_one",
    "INSERT INTO queue (enrollment_id, command_uuid, priority, created, updated, policy_id,"
    " expires) VALUES ($1, $2, $3, $4, $4, NULL, $5)",
    NULL, NULL};

static void push_from_row(const struct dbres *r, struct store_push_target *push)
{
    size_t len = 0;
    const unsigned char *tok = db_blob(r, 3, &len);

    push->enrollment_id = db_strdup(r, 1);
    push->topic = db_strdup(r, 2);
    push->token_hex = hex_encode(tok, len, false);
    push->push_magic = db_strdup(r, 4);
}

static int enqueue_device_pg(struct store *s, const struct store_command *cmd,
                             const char *device_id, int64_t now,
                             const struct store_audit_entry *audit, int64_t *audit_id,
                             struct store_push_target *push, struct scepter_error *err)
{
    const struct store_audit_entry none = {0};
    const struct store_audit_entry *a = audit ? audit : &none;
    struct dbv p[] = {P_TEXT(device_id),
                      P_TEXT(cmd->uuid),
                      P_TEXT(cmd->request_type),
                      P_BLOB(cmd->plist, cmd->plist_len),
                      P_INT(cmd->priority),
                      P_INT(now),
                      P_INT(cmd->expires),
                      P_BOOL(audit != NULL),
                      P_INT(a->at),
                      P_TEXT(a->actor_type ? a->actor_type : ""),
                      P_TEXT(a->actor_name ? a->actor_name : ""),
                      P_TEXT(a->address ? a->address : ""),
                      P_TEXT(a->action ? a->action : ""),
                      P_TEXT(a->route ? a->route : ""),
                      P_TEXT(a->object ? a->object : ""),
                      P_TEXT(a->summary ? a->summary : "")};
    struct dbres r = {0};
    int rc = db_query(s, &SQL_ENQUEUE_DEVICE, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        rc = db_int(&r, 0) > 0 ? 1 : 0;
        if (rc == 1 && !db_isnull(&r, 1))
            push_from_row(&r, push);
        if (rc == 1 && audit != NULL)
            *audit_id = db_int(&r, 5);
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: enqueue returned no row");
    }
    db_res_clear(&r);
    return rc;
}

static int enqueue_device_sqlite(struct store *s, const struct store_command *cmd,
                                 const char *device_id, int64_t now,
                                 const struct store_audit_entry *audit, int64_t *audit_id,
                                 struct store_push_target *push, struct scepter_error *err)
{
    struct dbres r = {0};
    char *eid = NULL;
    int64_t changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXT(device_id)};
        if ((rc = db_query(s, &SQL_DEVICE_CHANNEL, p, ARRAY_LEN(p), &r, err)) != 0 ||
            (rc = db_next(&r, err)) != 1)
            goto out; /* 0: no enabled channel */
        eid = db_strdup(&r, 0);
        if (db_bool(&r, 4))
            push_from_row(&r, push);
        db_res_clear(&r);
    }
    {
        struct dbv p[] = {P_TEXT(cmd->uuid),
                          P_TEXT(cmd->request_type),
                          P_BLOB(cmd->plist, cmd->plist_len),
                          P_INT(cmd->priority),
                          P_INT(now),
                          P_INT(0),
                          P_INT(0),
                          P_INT(STORE_POLICY_NONE)};
        p[5].null = p[6].null = true;
        if ((rc = db_exec(s, &SQL_COMMAND_INSERT, p, ARRAY_LEN(p), &changes, err)) != 0 ||
            changes == 0) /* 0: the UUID is taken */
            goto out;
    }
    {
        struct dbv p[] = {P_TEXT(eid), P_TEXT(cmd->uuid), P_INT(cmd->priority), P_INT(now),
                          P_INT(cmd->expires)};
        if ((rc = db_exec(s, &SQL_QUEUE_INSERT_ONE, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    if (audit != NULL && (rc = store_audit_insert(s, audit, audit_id, err)) != 0)
        goto out;
    if ((rc = db_commit(s, err)) == 0)
        rc = 1;
out:
    db_res_clear(&r);
    if (rc <= 0 && s->in_tx)
        db_rollback(s); /* nothing written */
    free(eid);
    return rc;
}

int store_enqueue_device(struct store *s, const struct store_command *cmd, const char *device_id,
                         int64_t now, const struct store_audit_entry *audit, int64_t *audit_id,
                         struct store_push_target *push, struct scepter_error *err)
{
    int rc;

    memset(push, 0, sizeof(*push));
    if (audit_id != NULL)
        *audit_id = 0;
    /* Anything out of the ordinary goes the general way, which names the problem. */
    if (store_check_command(cmd, err) != 0 ||
        store_check_str(device_id, LIMIT_ENROLLMENT_ID, "devices", err) != 0 ||
        (audit != NULL && (audit_id == NULL || store_audit_check(audit, err) != 0)))
        return 0;
    if (cmd->policy_id != 0 || cmd->policy_action != STORE_POLICY_NONE)
        return 0;
    STORE_CALL(s, rc, err)
    {
        store_push_target_clear(push);
        rc = s->pg ? enqueue_device_pg(s, cmd, device_id, now, audit, audit_id, push, err)
                   : enqueue_device_sqlite(s, cmd, device_id, now, audit, audit_id, push, err);
    }
    if (rc <= 0)
        store_push_target_clear(push);
    return rc;
}

/*
 * Rows of commands and queue entries, batched by the backend (db_exec_rows): PostgreSQL
 * unnests chunks of parallel arrays, SQLite runs the one-row form per row.
 * Commands: $1 UUID, $2 RequestType, $3 plist, $4 priority, $5 policy, $6 policy version,
 * $7 policy action (columns); $8 now.
 */
static const struct store_sql SQL_COMMANDS_INSERT_ROWS = {
    "commands_insert_rows", NULL,
    "INSERT INTO commands (uuid, request_type, plist, priority, created, policy_id,"
    " policy_version, policy_action)"
    " SELECT x.u, x.t, x.p, x.pr, $8, nullif(x.pid, 0), CASE WHEN x.pid = 0 THEN NULL ELSE x.pv"
    " END, x.pa FROM unnest($1, $2, $3, $4, $5, $6, $7) AS x(u, t, p, pr, pid, pv, pa)"
    " ON CONFLICT (uuid) DO NOTHING",
    "INSERT INTO commands (uuid, request_type, plist, priority, created, policy_id,"
    " policy_version, policy_action)"
    " VALUES ($1, $2, $3, $4, $8, nullif($5, 0), CASE WHEN $5 = 0 THEN NULL ELSE $6 END, $7)"
    " ON CONFLICT (uuid) DO NOTHING"};

/* Queue rows: $1 enrollment, $2 command UUID, $3 priority, $4 policy, $5 expiry (columns);
 * $6 now. */
static const struct store_sql SQL_QUEUE_INSERT_ROWS = {
    "queue_insert_rows", NULL,
    "INSERT INTO queue (enrollment_id, command_uuid, priority, created, updated, policy_id,"
    " expires)"
    " SELECT x.e, x.u, x.pr, $6, $6, nullif(x.pid, 0), x.ex FROM unnest($1, $2, $3, $4, $5)"
    " AS x(e, u, pr, pid, ex) JOIN enrollments en ON en.id = x.e",
    "INSERT INTO queue (enrollment_id, command_uuid, priority, created, updated, policy_id,"
    " expires)"
    " SELECT e.id, $2, $3, $6, $6, nullif($4, 0), $5 FROM enrollments e WHERE e.id = $1"};

/* Enqueue cmds[i] for ids[i] (sorted by id; first[i]: the first entry of its UUID). */
static int enqueue_rows(struct store *s, const struct store_command *cmds, const bool *first,
                        const char *const *ids, size_t n, int64_t now, int64_t policy_id,
                        int64_t policy_version, enum store_policy_action action,
                        struct scepter_error *err)
{
    const char **uuids = xcalloc(n, sizeof(*uuids));
    const char **types = xcalloc(n, sizeof(*types));
    const unsigned char **plists = xcalloc(n, sizeof(*plists));
    size_t *lens = xcalloc(n, sizeof(*lens));
    int64_t *prios = xcalloc(n, sizeof(*prios));
    int64_t *pids = xcalloc(n, sizeof(*pids));
    int64_t *pvers = xcalloc(n, sizeof(*pvers));
    int64_t *acts = xcalloc(n, sizeof(*acts));
    size_t i, nc = 0;
    int64_t changes = 0;
    int rc;

    /* Command rows (each UUID once: repeated entries share one command), then queue rows. */
    for (i = 0; i < n; i++) {
        if (!first[i])
            continue;
        uuids[nc] = cmds[i].uuid;
        types[nc] = cmds[i].request_type;
        plists[nc] = cmds[i].plist;
        lens[nc] = cmds[i].plist_len;
        prios[nc] = cmds[i].priority;
        pids[nc] = policy_id ? policy_id : cmds[i].policy_id;
        pvers[nc] = policy_id ? policy_version : cmds[i].policy_version;
        acts[nc] = policy_id && cmds[i].policy_action == STORE_POLICY_NONE
                       ? (int64_t)action
                       : (int64_t)cmds[i].policy_action;
        nc++;
    }
    {
        struct dbv cols[] = {P_TEXTS(uuids, nc), P_TEXTS(types, nc), P_BLOBS(plists, lens, nc),
                             P_INTS(prios, nc),  P_INTS(pids, nc),   P_INTS(pvers, nc),
                             P_INTS(acts, nc)};
        struct dbv sc[] = {P_INT(now)};
        rc = db_exec_rows(s, &SQL_COMMANDS_INSERT_ROWS, cols, ARRAY_LEN(cols), nc, sc,
                          ARRAY_LEN(sc), &changes, err);
        if (rc == 0 && (size_t)changes < nc)
            rc = conflicting_uuid(s, uuids, nc, err);
        if (rc != 0)
            goto out;
    }
    for (i = 0; i < n; i++) {
        uuids[i] = cmds[i].uuid;
        prios[i] = cmds[i].priority;
        pids[i] = policy_id ? policy_id : cmds[i].policy_id;
        acts[i] = cmds[i].expires; /* acts reused: the command rows are written */
    }
    {
        struct dbv cols[] = {P_TEXTS(ids, n), P_TEXTS(uuids, n), P_INTS(prios, n), P_INTS(pids, n),
                             P_INTS(acts, n)};
        struct dbv sc[] = {P_INT(now)};
        rc = db_exec_rows(s, &SQL_QUEUE_INSERT_ROWS, cols, ARRAY_LEN(cols), n, sc, ARRAY_LEN(sc),
                          &changes, err);
        if (rc == 0 && (size_t)changes < n && (rc = unknown_enrollment(s, ids, n, err)) == 0)
            rc = scepter_err(err, SCEPTER_EINTERNAL, "enrollment_ids",
                             "enrollment_ids: rows went missing");
    }
out:
    free(uuids);
    free(types);
    free(plists);
    free(lens);
    free(prios);
    free(pids);
    free(pvers);
    free(acts);
    return rc;
}

struct pair {
    const struct store_command *cmd;
    const char *id;
};

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->id, ((const struct pair *)b)->id);
}

/* Two entries of one UUID must carry the same command. */
static bool same_command(const struct store_command *a, const struct store_command *b)
{
    return strcmp(a->request_type, b->request_type) == 0 && a->plist_len == b->plist_len &&
           (a->plist == b->plist || memcmp(a->plist, b->plist, a->plist_len) == 0) &&
           a->priority == b->priority && a->policy_action == b->policy_action;
}

static int cmp_uuid_index(const void *a, const void *b, void *arg)
{
    const struct store_command *sc = arg;
    return strcmp(sc[*(const size_t *)a].uuid, sc[*(const size_t *)b].uuid);
}

int store_enqueue_each_tx(struct store *s, const struct store_command *cmds, const char *const *ids,
                          size_t n, int64_t now, int64_t policy_id, int64_t policy_version,
                          enum store_policy_action action, struct scepter_error *err)
{
    struct store_command *sc;
    const char **sid;
    struct pair *pairs;
    size_t i, *order;
    bool *first;
    int rc;

    if (n == 0)
        return 0;
    /* In enrollment order, so the rows go into queue_next in key order. */
    pairs = xcalloc(n, sizeof(*pairs));
    sc = xcalloc(n, sizeof(*sc));
    sid = xcalloc(n, sizeof(*sid));
    for (i = 0; i < n; i++)
        pairs[i] = (struct pair){&cmds[i], ids[i]};
    qsort(pairs, n, sizeof(*pairs), cmp_pair);
    for (i = 0; i < n; i++) {
        sc[i] = *pairs[i].cmd;
        sid[i] = pairs[i].id;
    }
    /* The same command (same UUID) may go to many enrollments: one command row for it. */
    order = xcalloc(n, sizeof(*order));
    first = xcalloc(n, sizeof(*first));
    for (i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof(*order), cmp_uuid_index, sc);
    rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        const struct store_command *a = i ? &sc[order[i - 1]] : NULL, *b = &sc[order[i]];
        first[order[i]] = a == NULL || strcmp(a->uuid, b->uuid) != 0;
        if (!first[order[i]] && !same_command(a, b))
            rc = scepter_err(err, SCEPTER_ECONFLICT, "CommandUUID",
                             "CommandUUID: %s is given twice with different commands", b->uuid);
    }
    if (rc == 0)
        rc = enqueue_rows(s, sc, first, sid, n, now, policy_id, policy_version, action, err);
    free(order);
    free(first);
    free(pairs);
    free(sc);
    free(sid);
    return rc;
}

static int enqueue_each(struct store *s, const struct store_command *cmds, const char *const *ids,
                        size_t n, int64_t now, struct scepter_error *err)
{
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    if ((rc = store_enqueue_each_tx(s, cmds, ids, n, now, 0, 0, STORE_POLICY_NONE, err)) != 0)
        return rc;
    return db_commit(s, err);
}

int store_enqueue_each(struct store *s, const struct store_command *cmds,
                       const char *const *enrollment_ids, size_t n, int64_t now,
                       struct scepter_error *err)
{
    size_t i;
    int rc;

    if ((rc = check_ids(enrollment_ids, n, "enrollment_ids", err)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        if ((rc = store_check_command(&cmds[i], err)) != 0)
            return rc;
    }
    STORE_CALL(s, rc, err)
    rc = enqueue_each(s, cmds, enrollment_ids, n, now, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The connect exchange                                                                      */

void store_next_clear(struct store_next *n)
{
    if (n == NULL)
        return;
    free(n->request_type);
    free(n->plist);
    memset(n, 0, sizeof(*n));
}

/* What the database said about the enrollment, the certificate and the reported command. */
struct exchange {
    bool have_enrollment;
    char *edev; /* the enrollment's device */
    bool enabled;
    char *bound;   /* the device the certificate is bound to */
    bool have_row; /* the reported command is queued for the enrollment */
    int row_state;
    bool row_notnow;
    bool recorded; /* this call stored the report */
    bool flagged;  /* Idle: NotNow flags to clear */
    char *rtype;   /* the reported command's RequestType as queued (NULL: unknown) */
    bool refused;  /* exchange_check refused the report (no statement failed) */
};

static void exchange_clear(struct exchange *x)
{
    free(x->edev);
    free(x->bound);
    free(x->rtype);
    memset(x, 0, sizeof(*x));
}

/* Refusals, in the order a device should learn about them. */
static int exchange_check(const struct store_report *rep, const struct exchange *x,
                          struct scepter_error *err)
{
    if (!x->have_enrollment)
        return scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_id", "enrollment %s is unknown",
                           rep->enrollment_id);
    if (rep->cert_hash &&
        (x->bound == NULL || strcmp(x->bound, rep->device_id ? rep->device_id : x->edev) != 0))
        return scepter_err(err, SCEPTER_EFORBIDDEN, "cert_hash",
                           "the device certificate is not bound to %s",
                           rep->device_id ? rep->device_id : x->edev);
    if (rep->device_id && strcmp(x->edev, rep->device_id) != 0)
        return scepter_err(err, SCEPTER_EFORBIDDEN, "enrollment_id",
                           "enrollment %s does not belong to device %s", rep->enrollment_id,
                           rep->device_id);
    if (!x->enabled)
        return scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_id",
                           "enrollment %s is not enabled (no TokenUpdate since Authenticate, "
                           "or checked out)",
                           rep->enrollment_id);
    return 0;
}

static enum store_report_outcome exchange_outcome(const struct store_report *rep,
                                                  const struct exchange *x)
{
    if (rep->status == STORE_STATUS_IDLE)
        return STORE_REPORT_IDLE;
    if (x->recorded)
        return STORE_REPORT_RECORDED;
    if (!x->have_row || x->row_state == QSTATE_CANCELLED || x->row_state == QSTATE_EXPIRED)
        return STORE_REPORT_UNKNOWN_COMMAND;
    return STORE_REPORT_DUPLICATE; /* final already, or a NotNow repeated in one exchange */
}

/* Fill *next from columns col, col+1, col+2 (uuid, request type, plist); 1 if present. */
static int read_next(const struct dbres *r, int col, struct store_next *next)
{
    const char *uuid;

    if (db_isnull(r, col))
        return 0;
    uuid = db_text(r, col);
    str_copy(next->uuid, sizeof(next->uuid), uuid);
    next->request_type = db_strdup(r, col + 1);
    next->plist = db_blobdup(r, col + 2, &next->plist_len);
    return 1;
}

/*
 * One exchange (a device's report, or Idle, and the next command) is one statement per
 * backend with the same columns: 0 the enrollment's device, 1 enabled, 2 the certificate's
 * device, 3-4 the reported row's state and NotNow flag (before this report; NULL for Idle),
 * 5 NotNow flags to clear (Idle), 6 rows the statement updated to record the report (NULL
 * when the backend records it with SQL_RECORD afterwards), 7-9 the next command, 10 the
 * reported command's RequestType as queued (NULL for Idle).  The next
 * command leaves out the reported one and, unless this is an Idle (which clears the flags),
 * the ones flagged NotNow; recording the report changes only the reported row, so the answer
 * stays right after the update.
 *
 * Idle: $1 enrollment, $2 cert hash.  On PostgreSQL a plain read (no data-modifying CTE: the
 * executor set-up of one was most of the poll's cost), the NotNow flags checked through the
 * tiny partial index queue_notnow.  When flags are set and the request passes the checks,
 * SQL_CLEAR_NOTNOW clears them afterwards; an Idle is the device saying it can now take what
 * it deferred, so clearing after reading changes no answer.
 */
static const struct store_sql SQL_CONNECT_IDLE = {
    "connect_idle", NULL,
    "SELECT e.device_id, e.enabled,"
    " (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = $2), NULL::int, NULL::bool,"
    " EXISTS (SELECT 1 FROM queue f WHERE f.enrollment_id = $1 AND f.notnow), NULL::bigint,"
    " n.command_uuid, n.request_type, n.plist, NULL::text"
    " FROM (SELECT 1) AS one LEFT JOIN enrollments e ON e.id = $1"
    " LEFT JOIN LATERAL (SELECT q.command_uuid, c.request_type, c.plist FROM queue q"
    "  JOIN commands c ON c.uuid = q.command_uuid"
    "  WHERE q.enrollment_id = $1 AND q.state = 0 AND e.enabled"
    "   AND (q.expires = 0 OR q.expires > $3)"
    "  ORDER BY q.priority DESC, q.created, q.seq LIMIT 1) AS n ON true",
    "SELECT e.device_id, e.enabled,"
    " (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = $2), NULL, NULL,"
    " EXISTS (SELECT 1 FROM queue f WHERE f.enrollment_id = $1 AND f.notnow), NULL,"
    " n.command_uuid, c.request_type, c.plist, NULL"
    " FROM (SELECT 1) AS one LEFT JOIN enrollments e ON e.id = $1"
    " LEFT JOIN queue n ON n.seq = (SELECT n2.seq FROM queue n2"
    "  WHERE n2.enrollment_id = $1 AND n2.state = 0 AND (n2.expires = 0 OR n2.expires > $3)"
    "  ORDER BY n2.priority DESC, n2.created, n2.seq LIMIT 1)"
    " LEFT JOIN commands c ON c.uuid = n.command_uuid"};

static const struct store_sql SQL_CLEAR_NOTNOW = {
    "clear_notnow", "UPDATE queue SET notnow = false WHERE enrollment_id = $1 AND notnow", NULL,
    NULL};

/*
 * Report: $1 enrollment, $2 cert hash, $3 device, $4 command UUID, $5 status, $6 raw result,
 * $7 error chain, $8 now.  PostgreSQL records the report in the same statement (a
 * data-modifying CTE, with the checks of exchange_check repeated in its WHERE); SQLite reads
 * under the write lock and records with SQL_RECORD.
 */
static const struct store_sql SQL_CONNECT_REPORT = {
    "connect_report", NULL,
    "WITH ok AS (SELECT e.device_id AS edev, e.enabled,"
    "   (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = $2) AS bound"
    "  FROM enrollments e WHERE e.id = $1),"
    " cur AS (SELECT q.state, q.notnow FROM queue q"
    "  WHERE q.enrollment_id = $1 AND q.command_uuid = $4),"
    " upd AS (UPDATE queue q SET status = $5,"
    "   state = CASE WHEN $5 = 4 THEN 0 ELSE 1 END, notnow = ($5 = 4),"
    "   notnow_count = q.notnow_count + CASE WHEN $5 = 4 THEN 1 ELSE 0 END,"
    "   last_notnow_at = CASE WHEN $5 = 4 THEN $8 ELSE q.last_notnow_at END,"
    "   raw = $6, error_chain = $7, result_at = $8, updated = $8"
    "  FROM ok WHERE q.enrollment_id = $1 AND q.command_uuid = $4 AND q.state = 0"
    "   AND NOT ($5 = 4 AND q.notnow) AND ok.enabled"
    "   AND ($3 IS NULL OR ok.edev = $3) AND ($2 IS NULL OR ok.bound = ok.edev)"
    "  RETURNING 1)"
    " SELECT ok.edev, ok.enabled, ok.bound, cur.state, cur.notnow, false,"
    "  (SELECT count(*) FROM upd), n.command_uuid, n.request_type, n.plist,"
    "  (SELECT rc.request_type FROM commands rc WHERE rc.uuid = $4)"
    " FROM (SELECT 1) AS one LEFT JOIN ok ON true LEFT JOIN cur ON true"
    " LEFT JOIN LATERAL (SELECT q.command_uuid, c.request_type, c.plist FROM queue q"
    "  JOIN commands c ON c.uuid = q.command_uuid"
    "  WHERE q.enrollment_id = $1 AND q.state = 0 AND NOT q.notnow AND q.command_uuid <> $4"
    "   AND ok.enabled AND (q.expires = 0 OR q.expires > $8)"
    "  ORDER BY q.priority DESC, q.created, q.seq LIMIT 1) AS n ON true",
    "SELECT e.device_id, e.enabled,"
    " (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = $2),"
    " q.state, q.notnow, 0, NULL, n.command_uuid, c.request_type, c.plist,"
    " (SELECT rc.request_type FROM commands rc WHERE rc.uuid = $4)"
    " FROM (SELECT 1) AS one LEFT JOIN enrollments e ON e.id = $1"
    " LEFT JOIN queue q ON q.command_uuid = $4 AND q.enrollment_id = $1"
    " LEFT JOIN queue n ON n.seq = (SELECT n2.seq FROM queue n2"
    "  WHERE n2.enrollment_id = $1 AND n2.state = 0 AND NOT n2.notnow"
    "  AND n2.command_uuid <> $4 AND (n2.expires = 0 OR n2.expires > $8)"
    "  ORDER BY n2.priority DESC, n2.created, n2.seq LIMIT 1)"
    " LEFT JOIN commands c ON c.uuid = n.command_uuid"};

/* Record a report the exchange statement did not: $1 enrollment, $2 command UUID, $3 status,
 * $4 raw result, $5 error chain, $6 now. */
static const struct store_sql SQL_RECORD = {
    "record_result",
    "UPDATE queue SET status = $3, state = CASE WHEN $3 = 4 THEN 0 ELSE 1 END,"
    " notnow = ($3 = 4), notnow_count = notnow_count + CASE WHEN $3 = 4 THEN 1 ELSE 0 END,"
    " last_notnow_at = CASE WHEN $3 = 4 THEN $6 ELSE last_notnow_at END,"
    " raw = $4, error_chain = $5, result_at = $6, updated = $6"
    " WHERE command_uuid = $2 AND enrollment_id = $1 AND state = 0",
    NULL, NULL};

/*
 * The exchange's statements, inside the caller's transaction when it opened one.  A refusal
 * (exchange_check) sets x->refused: then no statement failed and nothing was written.
 */
static int exchange_tx(struct store *s, const struct store_report *rep, const char *hash,
                       int64_t now, struct store_next *next, struct exchange *x,
                       struct scepter_error *err)
{
    bool idle = rep->status == STORE_STATUS_IDLE;
    struct dbres r = {0};
    int rc, have_next = 0;

    if (idle) {
        struct dbv p[] = {P_TEXT(rep->enrollment_id), P_TEXT(hash), P_INT(now)};
        rc = db_query(s, &SQL_CONNECT_IDLE, p, ARRAY_LEN(p), &r, err);
    } else {
        struct dbv p[] = {
            P_TEXT(rep->enrollment_id),    P_TEXT(hash),       P_TEXT(rep->device_id),
            P_TEXT(rep->command_uuid),     P_INT(rep->status), P_BLOB(rep->raw, rep->raw_len),
            P_TEXT(rep->error_chain_json), P_INT(now)};
        rc = db_query(s, &SQL_CONNECT_REPORT, p, ARRAY_LEN(p), &r, err);
    }
    if (rc != 0)
        goto out;
    if ((rc = db_next(&r, err)) != 1) {
        if (rc == 0)
            rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: connect returned no row");
        goto out;
    }
    x->have_enrollment = !db_isnull(&r, 0);
    x->edev = db_strdup(&r, 0);
    x->enabled = db_bool(&r, 1);
    x->bound = db_strdup(&r, 2);
    x->have_row = !db_isnull(&r, 3);
    x->row_state = (int)db_int(&r, 3);
    x->row_notnow = db_bool(&r, 4);
    x->flagged = db_bool(&r, 5);
    bool to_record = !idle && db_isnull(&r, 6);
    x->recorded = !db_isnull(&r, 6) && db_int(&r, 6) > 0;
    x->rtype = db_strdup(&r, 10);
    if ((rc = exchange_check(rep, x, err)) != 0) {
        x->refused = true;
        goto out;
    }
    have_next = read_next(&r, 7, next);
    db_res_clear(&r);
    if (idle && x->flagged) {
        struct dbv p[] = {P_TEXT(rep->enrollment_id)};
        if ((rc = db_exec(s, &SQL_CLEAR_NOTNOW, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    if (to_record && x->have_row && x->row_state == QSTATE_PENDING &&
        !(rep->status == STORE_STATUS_NOTNOW && x->row_notnow)) {
        struct dbv p[] = {
            P_TEXT(rep->enrollment_id),     P_TEXT(rep->command_uuid),     P_INT(rep->status),
            P_BLOB(rep->raw, rep->raw_len), P_TEXT(rep->error_chain_json), P_INT(now)};
        int64_t changes = 0;
        if ((rc = db_exec(s, &SQL_RECORD, p, ARRAY_LEN(p), &changes, err)) != 0)
            goto out;
        x->recorded = changes > 0;
    }
    rc = have_next;
out:
    db_res_clear(&r);
    if (rc < 0)
        store_next_clear(next);
    return rc;
}

static int exchange(struct store *s, const struct store_report *rep, const char *hash, int64_t now,
                    struct store_next *next, struct exchange *x, struct scepter_error *err)
{
    int rc;

    /* A report the statement cannot record: take the write lock first, so that the checks and
     * the update agree. */
    if (rep->status != STORE_STATUS_IDLE && !s->ops->writing_reads && (rc = db_begin(s, err)) != 0)
        return rc;
    rc = exchange_tx(s, rep, hash, now, next, x, err);
    if (rc >= 0 && s->in_tx) {
        int crc = db_commit(s, err);
        if (crc != 0) {
            store_next_clear(next);
            rc = crc;
        }
    }
    return rc;
}

/* Check a report's fields; a certificate hash is lower-cased into hash[65] and *h set. */
static int check_report(const struct store_report *report, char hash[65], const char **h,
                        struct scepter_error *err)
{
    int rc;

    *h = NULL;
    if ((rc = store_check_str(report->enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) !=
        0)
        return rc;
    if (report->device_id &&
        (rc = store_check_str(report->device_id, LIMIT_ENROLLMENT_ID, "device_id", err)) != 0)
        return rc;
    if (report->cert_hash) {
        if ((rc = store_norm_sha256(report->cert_hash, hash, "cert_hash", err)) != 0)
            return rc;
        *h = hash;
    }
    if ((unsigned)report->status > STORE_STATUS_NOTNOW)
        return scepter_err(err, SCEPTER_EINVAL, "Status", "Status: unknown value %d",
                           (int)report->status);
    if (report->status != STORE_STATUS_IDLE &&
        (rc = store_check_str(report->command_uuid, LIMIT_COMMAND_UUID, "CommandUUID", err)) != 0)
        return rc;
    return 0;
}

int store_connect(struct store *s, const struct store_report *report, int64_t now,
                  struct store_next *next, enum store_report_outcome *outcome,
                  struct scepter_error *err)
{
    struct exchange x = {0};
    char hash[65];
    const char *h;
    int rc;

    memset(next, 0, sizeof(*next));
    *outcome = STORE_REPORT_IDLE;
    if ((rc = check_report(report, hash, &h, err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        exchange_clear(&x);
        store_next_clear(next);
        rc = exchange(s, report, h, now, next, &x, err);
    }
    if (rc >= 0)
        *outcome = exchange_outcome(report, &x);
    else
        store_next_clear(next);
    exchange_clear(&x);
    return rc;
}

/*
 * Up to IDLE_BATCH Idle polls in one statement.  $1, $3, ... enrollment ids and
 * $2, $4, ... certificate hashes (NULL for none; unused slots NULL); each row is 0 the slot
 * (from 1), then the columns of SQL_CONNECT_IDLE's PostgreSQL form.  A fixed number of scalar
 * parameters rather than arrays: the planner knows the row count, so after a few executions the
 * plan cache settles on the generic plan (with arrays it re-planned every batch, estimating 10
 * elements: planning was most of the cost).  Every lookup is a LATERAL subquery with a LIMIT,
 * which cannot be flattened into a join: each stays an index probe per poll, whatever the
 * table sizes were when the plan was made.  SQLite's form (no LATERAL there) uses correlated
 * subqueries, index probes as well.
 */
#define IDLE_BATCH 16
static const struct store_sql SQL_CONNECT_IDLE_MANY = {
    "connect_idle_many", NULL,
    "SELECT i.ord, e.device_id, e.enabled, b.device_id, f.flagged IS NOT NULL,"
    " n.command_uuid, n.request_type, n.plist"
    " FROM (VALUES"
    "  (1,$1::text,$2::text),(2,$3::text,$4::text),(3,$5::text,$6::text),(4,$7::text,$8::text),"
    "  "
    "(5,$9::text,$10::text),(6,$11::text,$12::text),(7,$13::text,$14::text),(8,$15::text,$16::text)"
    ","
    "  "
    "(9,$17::text,$18::text),(10,$19::text,$20::text),(11,$21::text,$22::text),(12,$23::text,$24::"
    "text),"
    "  "
    "(13,$25::text,$26::text),(14,$27::text,$28::text),(15,$29::text,$30::text),(16,$31::text,$32::"
    "text)"
    "  ) AS i(ord, eid, h)"
    " LEFT JOIN LATERAL (SELECT e.device_id, e.enabled FROM enrollments e WHERE e.id = i.eid"
    "  LIMIT 1) AS e ON true"
    " LEFT JOIN LATERAL (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = i.h"
    "  LIMIT 1) AS b ON true"
    " LEFT JOIN LATERAL (SELECT true AS flagged FROM queue f"
    "  WHERE f.enrollment_id = i.eid AND f.notnow LIMIT 1) AS f ON true"
    " LEFT JOIN LATERAL (SELECT q.command_uuid, c.request_type, c.plist FROM queue q"
    "  JOIN commands c ON c.uuid = q.command_uuid"
    "  WHERE q.enrollment_id = i.eid AND q.state = 0 AND e.enabled"
    "   AND (q.expires = 0 OR q.expires > $33::bigint)"
    "  ORDER BY q.priority DESC, q.created, q.seq LIMIT 1) AS n ON true"
    " WHERE i.eid IS NOT NULL",
    "SELECT i.ord, e.device_id, e.enabled,"
    " (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = i.h),"
    " EXISTS (SELECT 1 FROM queue f WHERE f.enrollment_id = i.eid AND f.notnow),"
    " n.command_uuid, c.request_type, c.plist"
    " FROM ("
    " SELECT 1 AS ord, $1 AS eid, $2 AS h UNION ALL SELECT 2, $3, $4 UNION ALL SELECT 3, $5, $6 "
    "UNION ALL SELECT 4, $7, $8 UNION ALL"
    " SELECT 5, $9, $10 UNION ALL SELECT 6, $11, $12 UNION ALL SELECT 7, $13, $14 UNION ALL SELECT "
    "8, $15, $16 UNION ALL"
    " SELECT 9, $17, $18 UNION ALL SELECT 10, $19, $20 UNION ALL SELECT 11, $21, $22 UNION ALL "
    "SELECT 12, $23, $24 UNION ALL"
    " SELECT 13, $25, $26 UNION ALL SELECT 14, $27, $28 UNION ALL SELECT 15, $29, $30 UNION ALL "
    "SELECT 16, $31, $32"
    ") AS i"
    " LEFT JOIN enrollments e ON e.id = i.eid"
    " LEFT JOIN queue n ON n.seq = (SELECT n2.seq FROM queue n2"
    "  WHERE n2.enrollment_id = i.eid AND n2.state = 0 AND e.enabled"
    "   AND (n2.expires = 0 OR n2.expires > $33)"
    "  ORDER BY n2.priority DESC, n2.created, n2.seq LIMIT 1)"
    " LEFT JOIN commands c ON c.uuid = n.command_uuid"
    " WHERE i.eid IS NOT NULL"};

/* Answer items idx[0..m) (m <= IDLE_BATCH) of reps in one statement. */
static int idle_many(struct store *s, const struct store_report *reps, const size_t *idx, size_t m,
                     int64_t now, const char *const *hashes, struct store_next *nexts, int *rcs,
                     struct scepter_error *errs, struct scepter_error *err)
{
    struct dbv p[2 * IDLE_BATCH + 1];
    struct dbres r;
    size_t k;
    int rc;

    for (k = 0; k < IDLE_BATCH; k++) {
        p[2 * k] = P_TEXT(k < m ? reps[idx[k]].enrollment_id : NULL);
        p[2 * k + 1] = P_TEXT(k < m ? hashes[k] : NULL);
    }
    p[2 * IDLE_BATCH] = P_INT(now);
    for (k = 0; k < m; k++) {
        store_next_clear(&nexts[idx[k]]);
        rcs[idx[k]] =
            scepter_err(&errs[idx[k]], SCEPTER_EINTERNAL, NULL, "store: connect returned no row");
    }
    if ((rc = db_query(s, &SQL_CONNECT_IDLE_MANY, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        struct exchange x = {0};
        int64_t ord = db_int(&r, 0);
        size_t i;

        if (ord < 1 || (size_t)ord > m)
            continue;
        i = idx[ord - 1];
        x.have_enrollment = !db_isnull(&r, 1);
        x.edev = db_strdup(&r, 1);
        x.enabled = db_bool(&r, 2);
        x.bound = db_strdup(&r, 3);
        x.flagged = db_bool(&r, 4);
        if ((rcs[i] = exchange_check(&reps[i], &x, &errs[i])) == 0)
            rcs[i] = read_next(&r, 5, &nexts[i]);
        if (rcs[i] >= 0 && x.flagged) {
            /* Rare (the last exchange had a NotNow): clear this enrollment's flags now. */
            struct dbv cp[] = {P_TEXT(reps[i].enrollment_id)};
            int crc = db_exec(s, &SQL_CLEAR_NOTNOW, cp, ARRAY_LEN(cp), NULL, &errs[i]);
            if (crc < 0) {
                store_next_clear(&nexts[i]);
                rcs[i] = crc;
            }
        }
        exchange_clear(&x);
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

int store_connect_idle_many(struct store *s, const struct store_report *reports, size_t n,
                            int64_t now, struct store_next *nexts, int *rcs,
                            struct scepter_error *errs)
{
    struct scepter_error err;
    char hbuf[IDLE_BATCH][65];
    const char *hashes[IDLE_BATCH];
    size_t idx[IDLE_BATCH];
    size_t m, i, j;
    int rc = 0, any = 0;

    for (i = 0; i < n; i++)
        memset(&nexts[i], 0, sizeof(nexts[i]));
    if (n == 1) {
        for (i = 0; i < n; i++) {
            enum store_report_outcome outcome;
            rcs[i] = store_connect(s, &reports[i], now, &nexts[i], &outcome, &errs[i]);
        }
        return 0;
    }
    for (i = 0; i < n;) {
        /* Take the next IDLE_BATCH valid reports. */
        for (m = 0; i < n && m < IDLE_BATCH; i++) {
            const char *h;
            if (reports[i].status != STORE_STATUS_IDLE) {
                rcs[i] = scepter_err(&errs[i], SCEPTER_EINVAL, "Status",
                                     "store_connect_idle_many: Idle reports only");
                continue;
            }
            if ((rcs[i] = check_report(&reports[i], hbuf[m], &h, &errs[i])) != 0)
                continue;
            hashes[m] = h;
            idx[m++] = i;
        }
        if (m == 0)
            continue;
        STORE_CALL(s, rc, &err)
        rc = idle_many(s, reports, idx, m, now, hashes, nexts, rcs, errs, &err);
        if (rc < 0) {
            any = rc;
            for (j = 0; j < m; j++) {
                store_next_clear(&nexts[idx[j]]);
                rcs[idx[j]] = rc;
                errs[idx[j]] = err;
            }
        }
    }
    return any;
}

/* ---------------------------------------------------------------------------------------- */
/* Result reports in batches                                                                 */

/*
 * Up to REPORT_BATCH result reports in one statement, one implicit transaction and so one
 * synchronous commit (PostgreSQL).  Report k (from 0) binds $7k+1 enrollment, $7k+2 cert
 * hash, $7k+3 device, $7k+4 command UUID, $7k+5 status, $7k+6 raw result, $7k+7 error chain
 * (unused slots NULL); $113 is now.  Each row is 0 the slot (from 1), then the columns of
 * SQL_CONNECT_REPORT.  The checks of exchange_check are repeated per report in the UPDATE's
 * WHERE, so a refused report writes nothing while the others of its batch are recorded.  A
 * fixed number of scalar parameters, as in SQL_CONNECT_IDLE_MANY, for a generic plan; every
 * lookup a LATERAL index probe.  One (enrollment, command) reported twice in a batch is
 * recorded once: the UPDATE takes one of the two source rows, which RETURNING names.
 */
#define REPORT_BATCH  16
#define REPORT_PARAMS 7
static const struct store_sql SQL_CONNECT_REPORT_MANY = {
    "connect_report_many", NULL,
    "WITH i(ord, eid, h, dev, cu, st, raw, ch) AS (VALUES"
    " (1,$1::text,$2::text,$3::text,$4::text,$5::int,$6::bytea,$7::text)"
    ",(2,$8::text,$9::text,$10::text,$11::text,$12::int,$13::bytea,$14::text)"
    ",(3,$15::text,$16::text,$17::text,$18::text,$19::int,$20::bytea,$21::text)"
    ",(4,$22::text,$23::text,$24::text,$25::text,$26::int,$27::bytea,$28::text)"
    ",(5,$29::text,$30::text,$31::text,$32::text,$33::int,$34::bytea,$35::text)"
    ",(6,$36::text,$37::text,$38::text,$39::text,$40::int,$41::bytea,$42::text)"
    ",(7,$43::text,$44::text,$45::text,$46::text,$47::int,$48::bytea,$49::text)"
    ",(8,$50::text,$51::text,$52::text,$53::text,$54::int,$55::bytea,$56::text)"
    ",(9,$57::text,$58::text,$59::text,$60::text,$61::int,$62::bytea,$63::text)"
    ",(10,$64::text,$65::text,$66::text,$67::text,$68::int,$69::bytea,$70::text)"
    ",(11,$71::text,$72::text,$73::text,$74::text,$75::int,$76::bytea,$77::text)"
    ",(12,$78::text,$79::text,$80::text,$81::text,$82::int,$83::bytea,$84::text)"
    ",(13,$85::text,$86::text,$87::text,$88::text,$89::int,$90::bytea,$91::text)"
    ",(14,$92::text,$93::text,$94::text,$95::text,$96::int,$97::bytea,$98::text)"
    ",(15,$99::text,$100::text,$101::text,$102::text,$103::int,$104::bytea,$105::text)"
    ",(16,$106::text,$107::text,$108::text,$109::text,$110::int,$111::bytea,$112::text)"
    "  ),"
    " ok AS (SELECT i.ord, e.device_id AS edev, e.enabled, b.device_id AS bound,"
    "   cur.state, cur.notnow, rt.request_type AS rtype"
    "  FROM i LEFT JOIN LATERAL (SELECT e.device_id, e.enabled FROM enrollments e"
    "   WHERE e.id = i.eid LIMIT 1) AS e ON true"
    "  LEFT JOIN LATERAL (SELECT b.device_id FROM cert_bindings b WHERE b.cert_hash = i.h"
    "   LIMIT 1) AS b ON true"
    "  LEFT JOIN LATERAL (SELECT q.state, q.notnow FROM queue q"
    "   WHERE q.enrollment_id = i.eid AND q.command_uuid = i.cu LIMIT 1) AS cur ON true"
    "  LEFT JOIN LATERAL (SELECT c.request_type FROM commands c WHERE c.uuid = i.cu"
    "   LIMIT 1) AS rt ON true"
    "  WHERE i.eid IS NOT NULL),"
    " upd AS (UPDATE queue q SET status = i.st,"
    "   state = CASE WHEN i.st = 4 THEN 0 ELSE 1 END, notnow = (i.st = 4),"
    "   notnow_count = q.notnow_count + CASE WHEN i.st = 4 THEN 1 ELSE 0 END,"
    "   last_notnow_at = CASE WHEN i.st = 4 THEN $113::bigint ELSE q.last_notnow_at END,"
    "   raw = i.raw, error_chain = i.ch, result_at = $113::bigint, updated = $113::bigint"
    "  FROM i JOIN ok ON ok.ord = i.ord"
    "  WHERE q.enrollment_id = i.eid AND q.command_uuid = i.cu AND q.state = 0"
    "   AND NOT (i.st = 4 AND q.notnow) AND ok.enabled"
    "   AND (i.dev IS NULL OR ok.edev = i.dev) AND (i.h IS NULL OR ok.bound = ok.edev)"
    "  RETURNING i.ord)"
    " SELECT ok.ord, ok.edev, ok.enabled, ok.bound, ok.state, ok.notnow, false,"
    "  (SELECT count(*) FROM upd WHERE upd.ord = ok.ord), n.command_uuid, n.request_type,"
    "  n.plist, ok.rtype"
    " FROM ok JOIN i ON i.ord = ok.ord"
    " LEFT JOIN LATERAL (SELECT q.command_uuid, c.request_type, c.plist FROM queue q"
    "  JOIN commands c ON c.uuid = q.command_uuid"
    "  WHERE q.enrollment_id = i.eid AND q.state = 0 AND NOT q.notnow AND q.command_uuid <> i.cu"
    "   AND ok.enabled AND (q.expires = 0 OR q.expires > $113::bigint)"
    "  ORDER BY q.priority DESC, q.created, q.seq LIMIT 1) AS n ON true",
    NULL};

void store_answer_clear(struct store_answer *a)
{
    if (a == NULL)
        return;
    store_next_clear(&a->next);
    free(a->reported_type);
    a->reported_type = NULL;
}

/* One report's answer from what the exchange found (rc: exchange_tx's). */
static void answer_set(struct store_answer *a, const struct store_report *rep, struct exchange *x,
                       int rc)
{
    a->rc = rc;
    if (rc >= 0) {
        a->outcome = exchange_outcome(rep, x);
        a->reported_type = x->rtype;
        x->rtype = NULL;
    } else {
        store_next_clear(&a->next);
    }
}

/* PostgreSQL: reports idx[0..m) (m <= REPORT_BATCH) in one statement.  A refusal is the
 * report's own answer; a negative return is a statement that failed (nothing was written). */
static int reports_pg(struct store *s, const struct store_report *reps, const size_t *idx, size_t m,
                      const char *const *hashes, int64_t now, struct store_answer *answers,
                      struct scepter_error *err)
{
    struct dbv p[REPORT_PARAMS * REPORT_BATCH + 1];
    struct dbres r;
    size_t k;
    int rc;

    for (k = 0; k < REPORT_BATCH; k++) {
        const struct store_report *rep = k < m ? &reps[idx[k]] : NULL;
        struct dbv *v = &p[REPORT_PARAMS * k];
        v[0] = P_TEXT(rep ? rep->enrollment_id : NULL);
        v[1] = P_TEXT(rep ? hashes[k] : NULL);
        v[2] = P_TEXT(rep ? rep->device_id : NULL);
        v[3] = P_TEXT(rep ? rep->command_uuid : NULL);
        v[4] = P_INT(rep ? (int64_t)rep->status : 0);
        v[4].null = rep == NULL;
        v[5] = P_BLOB(rep ? rep->raw : NULL, rep ? rep->raw_len : 0);
        v[6] = P_TEXT(rep ? rep->error_chain_json : NULL);
    }
    p[REPORT_PARAMS * REPORT_BATCH] = P_INT(now);
    for (k = 0; k < m; k++) {
        struct store_answer *a = &answers[idx[k]];
        store_answer_clear(a);
        a->rc = scepter_err(&a->err, SCEPTER_EINTERNAL, NULL, "store: connect returned no row");
    }
    if ((rc = db_query(s, &SQL_CONNECT_REPORT_MANY, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        struct exchange x = {0};
        int64_t ord = db_int(&r, 0);
        struct store_answer *a;
        size_t i;
        int xrc;

        if (ord < 1 || (size_t)ord > m)
            continue;
        i = idx[ord - 1];
        a = &answers[i];
        x.have_enrollment = !db_isnull(&r, 1);
        x.edev = db_strdup(&r, 1);
        x.enabled = db_bool(&r, 2);
        x.bound = db_strdup(&r, 3);
        x.have_row = !db_isnull(&r, 4);
        x.row_state = (int)db_int(&r, 4);
        x.row_notnow = db_bool(&r, 5);
        x.recorded = db_int(&r, 7) > 0;
        x.rtype = db_strdup(&r, 11);
        if ((xrc = exchange_check(&reps[i], &x, &a->err)) == 0)
            xrc = read_next(&r, 8, &a->next);
        answer_set(a, &reps[i], &x, xrc);
        exchange_clear(&x);
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

/* SQLite: reports idx[0..m) one after the other in one transaction, one commit. */
static int reports_sqlite(struct store *s, const struct store_report *reps, const size_t *idx,
                          size_t m, const char *const *hashes, int64_t now,
                          struct store_answer *answers, struct scepter_error *err)
{
    size_t k;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    for (k = 0; k < m; k++) {
        struct store_answer *a = &answers[idx[k]];
        struct exchange x = {0};
        int xrc;

        store_answer_clear(a);
        xrc = exchange_tx(s, &reps[idx[k]], hashes[k], now, &a->next, &x, &a->err);
        if (xrc < 0 && !x.refused) { /* a statement failed: the batch is rolled back */
            *err = a->err;
            exchange_clear(&x);
            return xrc;
        }
        answer_set(a, &reps[idx[k]], &x, xrc);
        exchange_clear(&x);
    }
    return db_commit(s, err);
}

int store_connect_many(struct store *s, const struct store_report *reports, size_t n, int64_t now,
                       struct store_answer *answers)
{
    struct scepter_error err;
    char hbuf[REPORT_BATCH][65];
    const char *hashes[REPORT_BATCH];
    size_t idx[REPORT_BATCH];
    size_t m, i, j;
    int rc = 0, any = 0;

    for (i = 0; i < n; i++)
        memset(&answers[i], 0, sizeof(answers[i]));
    for (i = 0; i < n;) {
        /* The next REPORT_BATCH reports that pass the checks (the others are answered here). */
        for (m = 0; i < n && m < REPORT_BATCH; i++) {
            const char *h;
            struct store_answer *a = &answers[i];
            if (reports[i].status == STORE_STATUS_IDLE) {
                a->rc = scepter_err(&a->err, SCEPTER_EINVAL, "Status",
                                    "store_connect_many: result reports only, not Idle");
                continue;
            }
            if ((a->rc = check_report(&reports[i], hbuf[m], &h, &a->err)) != 0)
                continue;
            hashes[m] = h;
            idx[m++] = i;
        }
        if (m == 0)
            continue;
        if (m > 1) {
            STORE_CALL(s, rc, &err)
            rc = s->pg ? reports_pg(s, reports, idx, m, hashes, now, answers, &err)
                       : reports_sqlite(s, reports, idx, m, hashes, now, answers, &err);
            if (rc == 0)
                continue;
            if (s->broken) { /* the database is gone: every report of the batch says so */
                any = rc;
                for (j = 0; j < m; j++) {
                    struct store_answer *a = &answers[idx[j]];
                    store_answer_clear(a);
                    a->rc = rc;
                    a->err = err;
                }
                continue;
            }
            /* A statement of the batch failed and nothing of it was kept: each report again on
             * its own, so that only one the database refuses fails. */
            log_warnx("store: a batch of %zu result reports failed (%s); taking them one by one", m,
                      err.msg);
        }
        for (j = 0; j < m; j++) {
            struct store_answer *a = &answers[idx[j]];
            store_answer_clear(a);
            a->rc = store_connect(s, &reports[idx[j]], now, &a->next, &a->outcome, &a->err);
        }
    }
    return any;
}

/* ---------------------------------------------------------------------------------------- */
/* Operators: list, cancel, clear, results                                                   */

static const char *item_status(int state, int status)
{
    if (state == QSTATE_CANCELLED)
        return "cancelled";
    if (state == QSTATE_EXPIRED)
        return "Expired";
    if (state == QSTATE_PENDING)
        return status == STORE_STATUS_NOTNOW ? "NotNow" : "queued";
    return store_status_name((enum store_status)status);
}

void store_queue_items_free(struct store_queue_item *items, size_t n)
{
    size_t i;

    if (items == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(items[i].request_type);
        free(items[i].status);
    }
    free(items);
}

static const struct store_sql SQL_ENROLLMENT_EXISTS = {
    "enrollment_exists", "SELECT 1 FROM enrollments WHERE id = $1", NULL, NULL};

static int enrollment_exists(struct store *s, const char *id, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(id)};
    struct dbres r;
    int rc = db_query(s, &SQL_ENROLLMENT_EXISTS, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 0)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "enrollment_id", "enrollment %s is unknown", id);
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

#define QUEUE_LIST_COLUMNS                                                                         \
    "SELECT q.command_uuid, c.request_type, q.priority, q.created, q.state, q.status,"             \
    " q.notnow_count, q.last_notnow_at, q.result_at, q.expires"
#define QUEUE_LIST_FROM   " FROM queue q JOIN commands c ON c.uuid = q.command_uuid"
#define QUEUE_LIST_SELECT QUEUE_LIST_COLUMNS QUEUE_LIST_FROM

/* An enrollment's whole queue, history included. */
static const struct store_sql SQL_QUEUE_LIST_ALL = {
    "queue_list_all", QUEUE_LIST_SELECT " WHERE q.enrollment_id = $1 ORDER BY q.created, q.seq",
    NULL, NULL};

/* Only what is pending: a range of queue_next, however long the enrollment's history (one
 * statement with "($2 OR state = 0)" could not use the state column and walked it all). */
static const struct store_sql SQL_QUEUE_LIST_PENDING = {
    "queue_list_pending",
    QUEUE_LIST_SELECT " WHERE q.enrollment_id = $1 AND q.state = 0 ORDER BY q.created, q.seq", NULL,
    NULL};

/* One row of QUEUE_LIST_SELECT. */
static void queue_item_read(struct dbres *r, struct store_queue_item *it)
{
    memset(it, 0, sizeof(*it));
    str_copy(it->uuid, sizeof(it->uuid), db_text(r, 0));
    it->request_type = db_strdup(r, 1);
    it->priority = (int)db_int(r, 2);
    it->created = db_int(r, 3);
    it->status = xstrdup(item_status((int)db_int(r, 4), (int)db_int(r, 5)));
    it->active = db_int(r, 4) == QSTATE_PENDING;
    it->notnow_count = (int)db_int(r, 6);
    it->last_notnow_at = db_int(r, 7);
    it->result_at = db_int(r, 8);
    it->expires = db_int(r, 9);
}

static int queue_list(struct store *s, const char *id, bool all, struct store_queue_item **out,
                      size_t *n, struct scepter_error *err)
{
    struct store_queue_item *items = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    if ((rc = enrollment_exists(s, id, err)) != 0)
        goto out;
    {
        struct dbv p[] = {P_TEXT(id)};
        if ((rc = db_query(s, all ? &SQL_QUEUE_LIST_ALL : &SQL_QUEUE_LIST_PENDING, p, ARRAY_LEN(p),
                           &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        struct store_queue_item *it;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            items = xreallocarray(items, cap, sizeof(*items));
        }
        it = &items[count++];
        queue_item_read(&r, it);
    }
out:
    db_res_clear(&r);
    if (rc < 0) {
        store_queue_items_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return 0;
}

/*
 * A page of an enrollment's history, newest first.  The page's entries are chosen from the
 * index queue_next alone (enrollment, state, and the sequence number it carries: SQLite's
 * rowid, a key column on PostgreSQL), then only those rows are read from the table.  Reading
 * a device's whole history row by row cost one table page per entry (its rows lie all over
 * the table) and the reply was the whole history; the index entries of one device's history
 * are adjacent, a few dozen to a page.  SQLite reads the rows by rowid; PostgreSQL by the
 * page's range of seq within the device's entries of queue_next (a device with 500 finished
 * entries, a page of 101: 127 buffers and 1.8 ms, where the whole history took 516 and 5.4 ms;
 * one index descent per entry and state, seq = ANY(...), took 1,827).
 */
#define QUEUE_HISTORY_PAGE                                                                         \
    "SELECT seq FROM queue WHERE enrollment_id = $1 AND state IN (1, 2, 3) AND seq < $2"           \
    " ORDER BY seq DESC LIMIT $3"
static const struct store_sql SQL_QUEUE_HISTORY = {
    "queue_history", NULL,
    "WITH page AS (" QUEUE_HISTORY_PAGE ") " QUEUE_LIST_COLUMNS ", q.seq" QUEUE_LIST_FROM
    " WHERE q.enrollment_id = $1 AND q.state IN (1, 2, 3)"
    " AND q.seq >= (SELECT min(seq) FROM page) AND q.seq < $2 ORDER BY q.seq DESC LIMIT $3",
    QUEUE_LIST_COLUMNS ", q.seq" QUEUE_LIST_FROM " WHERE q.seq IN (" QUEUE_HISTORY_PAGE ")"
                       " ORDER BY q.seq DESC"};

static int queue_history(struct store *s, const char *id, int64_t before, size_t limit,
                         struct store_queue_item **out, size_t *n, int64_t *next,
                         struct scepter_error *err)
{
    struct store_queue_item *items = NULL;
    size_t count = 0;
    struct dbres r = {0};
    int64_t last = 0;
    int rc;

    if ((rc = enrollment_exists(s, id, err)) != 0)
        goto out;
    items = xcalloc(limit, sizeof(*items));
    {
        /* One more than asked: whether a next page exists. */
        struct dbv p[] = {P_TEXT(id), P_INT(before > 0 ? before : INT64_MAX),
                          P_INT((int64_t)limit + 1)};
        if ((rc = db_query(s, &SQL_QUEUE_HISTORY, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        if (count == limit) {
            *next = last;
            continue;
        }
        queue_item_read(&r, &items[count++]);
        last = db_int(&r, 10);
    }
out:
    db_res_clear(&r);
    if (rc < 0) {
        store_queue_items_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return 0;
}

int store_queue_history(struct store *s, const char *enrollment_id, int64_t before, size_t limit,
                        struct store_queue_item **out, size_t *n, int64_t *next,
                        struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    *next = 0;
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0)
        return rc;
    if (limit < 1 || limit > STORE_HISTORY_MAX)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: %zu is not between 1 and %d",
                           limit, STORE_HISTORY_MAX);
    STORE_CALL(s, rc, err)
    rc = queue_history(s, enrollment_id, before, limit, out, n, next, err);
    return rc;
}

int store_queue_list(struct store *s, const char *enrollment_id, bool include_finished,
                     struct store_queue_item **out, size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = queue_list(s, enrollment_id, include_finished, out, n, err);
    return rc;
}

/* A cancelled row keeps its last-activity time: retention counts from it. */
static const struct store_sql SQL_QUEUE_CANCEL = {
    "queue_cancel",
    "UPDATE queue SET state = 2, notnow = false"
    " WHERE enrollment_id = $1 AND command_uuid = $2 AND state = 0",
    NULL, NULL};
static const struct store_sql SQL_QUEUE_ROW_STATE = {
    "queue_row_state", "SELECT state FROM queue WHERE enrollment_id = $1 AND command_uuid = $2",
    NULL, NULL};

static int queue_cancel(struct store *s, const char *id, const char *uuid,
                        struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(id), P_TEXT(uuid)};
    struct dbres r;
    int64_t changes = 0;
    int rc;

    if ((rc = db_exec(s, &SQL_QUEUE_CANCEL, p, ARRAY_LEN(p), &changes, err)) != 0 || changes > 0)
        return rc;
    if ((rc = db_query(s, &SQL_QUEUE_ROW_STATE, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    if ((rc = db_next(&r, err)) == 1 && db_int(&r, 0) == QSTATE_FINISHED)
        rc = scepter_err(err, SCEPTER_ECONFLICT, "uuid",
                         "command %s already has a final result on %s", uuid, id);
    else if (rc >= 0)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "uuid", "command %s is not queued for %s", uuid,
                         id);
    db_res_clear(&r);
    return rc;
}

int store_queue_cancel(struct store *s, const char *enrollment_id, const char *uuid,
                       struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(uuid, 128, "uuid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = queue_cancel(s, enrollment_id, uuid, err);
    return rc;
}

static const struct store_sql SQL_QUEUE_CLEAR = {
    "queue_clear",
    "UPDATE queue SET state = 2, notnow = false WHERE enrollment_id = $1 AND state = 0", NULL,
    NULL};

int store_queue_clear(struct store *s, const char *enrollment_id, size_t *cancelled,
                      struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    *cancelled = 0;
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id)};
        rc = enrollment_exists(s, enrollment_id, err);
        if (rc == 0)
            rc = db_exec(s, &SQL_QUEUE_CLEAR, p, ARRAY_LEN(p), &changes, err);
    }
    if (rc == 0)
        *cancelled = (size_t)changes;
    return rc;
}

void store_result_clear(struct store_result *r)
{
    if (r == NULL)
        return;
    free(r->request_type);
    free(r->status);
    free(r->raw);
    free(r->error_chain_json);
    memset(r, 0, sizeof(*r));
}

static const struct store_sql SQL_RESULT_GET = {
    "result_get",
    "SELECT q.command_uuid, c.request_type, q.state, q.status, q.raw, q.error_chain,"
    " q.notnow_count, q.created, q.result_at FROM queue q"
    " JOIN commands c ON c.uuid = q.command_uuid"
    " WHERE q.enrollment_id = $1 AND q.command_uuid = $2",
    NULL, NULL};

int store_result_get(struct store *s, const char *enrollment_id, const char *uuid,
                     struct store_result *out, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(enrollment_id, LIMIT_ENROLLMENT_ID, "enrollment_id", err)) != 0 ||
        (rc = store_check_str(uuid, 128, "uuid", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id), P_TEXT(uuid)};
        store_result_clear(out);
        rc = db_query(s, &SQL_RESULT_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            str_copy(out->uuid, sizeof(out->uuid), db_text(&r, 0));
            out->request_type = db_strdup(&r, 1);
            out->status = xstrdup(item_status((int)db_int(&r, 2), (int)db_int(&r, 3)));
            out->raw = db_blobdup(&r, 4, &out->raw_len);
            out->error_chain_json = db_strdup(&r, 5);
            out->notnow_count = (int)db_int(&r, 6);
            out->created = db_int(&r, 7);
            out->result_at = db_int(&r, 8);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "uuid", "command %s is not queued for %s",
                             uuid, enrollment_id);
        }
        db_res_clear(&r);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Retention and depth                                                                       */

/*
 * Finished or cancelled rows whose last activity is older than $1, at most $2 of them.
 * The newest row linking an enrollment to an existing policy is kept whatever its age: it is
 * what store_policy_status() reports for that device.  Queue rows carry their command's policy
 * so the common case (no policy) is decided without a join.
 */
#define RETENTION_VICTIMS(col)                                                                     \
    "SELECT q." col " FROM queue q WHERE q.state <> 0 AND q.updated < $1"                          \
    " AND (q.policy_id IS NULL"                                                                    \
    "  OR NOT EXISTS (SELECT 1 FROM policies p WHERE p.id = q.policy_id)"                          \
    "  OR EXISTS (SELECT 1 FROM queue q2 WHERE q2.enrollment_id = q.enrollment_id"                 \
    "   AND q2.policy_id = q.policy_id AND q2.seq > q.seq))"                                       \
    " LIMIT $2"

static const struct store_sql SQL_RETENTION_QUEUE = {
    "retention_queue", NULL,
    "DELETE FROM queue WHERE ctid = ANY (ARRAY(" RETENTION_VICTIMS(
        "ctid") "))"
                " AND state <> 0 AND updated < $1 RETURNING command_uuid",
    "DELETE FROM queue WHERE seq IN (" RETENTION_VICTIMS("seq") ") RETURNING command_uuid"};

/* Commands of the deleted rows that no queue row refers to any more. */
static const struct store_sql SQL_RETENTION_COMMANDS = {
    "retention_commands",
    "DELETE FROM commands WHERE uuid IN {ARR1}"
    " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.command_uuid = commands.uuid)",
    NULL, NULL};

/* Bound on batches per call, so one call cannot run forever on a table growing as fast. */
#define RETENTION_MAX_BATCHES 100000

/* One batch, one short transaction: up to `batch` queue rows and their orphaned commands. */
static int retention_batch(struct store *s, int64_t before, size_t batch, size_t *deleted,
                           struct scepter_error *err)
{
    struct dbv p[] = {P_INT(before), P_INT(batch)};
    char **uuids = NULL;
    size_t n = 0, cap = 0, m;
    struct dbres r = {0};
    const char **u = NULL;
    int rc;

    *deleted = 0;
    if ((rc = db_begin(s, err)) != 0 ||
        (rc = db_query(s, &SQL_RETENTION_QUEUE, p, ARRAY_LEN(p), &r, err)) != 0)
        goto out;
    while ((rc = db_next(&r, err)) == 1)
        store_strv_push(&uuids, &n, &cap, db_strdup(&r, 0));
    db_res_clear(&r);
    if (rc < 0)
        goto out;
    if (n > 0) {
        u = sorted_unique((const char *const *)uuids, n, &m);
        struct dbv q[] = {P_TEXTS(u, m)};
        if ((rc = db_exec(s, &SQL_RETENTION_COMMANDS, q, ARRAY_LEN(q), NULL, err)) != 0)
            goto out;
    }
    if ((rc = db_commit(s, err)) == 0)
        *deleted = n;
out:
    db_res_clear(&r);
    free(u);
    store_strv_free(uuids, n);
    return rc;
}

int store_retention(struct store *s, int64_t before, size_t batch, size_t *deleted,
                    struct scepter_error *err)
{
    size_t i, n = 0, total = 0;
    int rc = 0;

    *deleted = 0;
    if (batch == 0 || batch > 1000000)
        return scepter_err(err, SCEPTER_EINVAL, "batch", "batch: want 1 to 1000000 rows");
    /* Each batch is its own short transaction: check-ins go on meanwhile. */
    for (i = 0; i < RETENTION_MAX_BATCHES; i++) {
        STORE_CALL(s, rc, err)
        rc = retention_batch(s, before, batch, &n, err);
        if (rc != 0)
            break;
        total += n;
        if (n < batch)
            break;
    }
    if (total > 0)
        log_info("store: retention removed %zu finished queue entries", total);
    *deleted = total;
    return rc;
}

static const struct store_sql SQL_QUEUE_DEPTH = {
    "queue_depth", "SELECT count(*) FROM queue WHERE state = 0", NULL, NULL};

int store_queue_depth(struct store *s, int64_t *depth, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *depth = 0;
    STORE_CALL(s, rc, err)
    {
        rc = db_query(s, &SQL_QUEUE_DEPTH, NULL, 0, &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *depth = db_int(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
    }
    return rc;
}

/* Up to $2 pending entries whose expiry ($1 now) has come become final: state expired.  The
 * partial index queue_expiring holds only pending entries with an expiry. */
static const struct store_sql SQL_QUEUE_EXPIRE = {
    "queue_expire",
    "UPDATE queue SET state = 3, notnow = false, updated = $1"
    " WHERE seq IN (SELECT seq FROM queue WHERE state = 0 AND expires <> 0 AND expires <= $1"
    " LIMIT $2) AND state = 0",
    NULL, NULL};

int store_queue_expire(struct store *s, int64_t now, size_t limit, size_t *expired,
                       struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    *expired = 0;
    if (limit == 0 || limit > 1000000)
        return scepter_err(err, SCEPTER_EINVAL, "limit", "limit: want 1 to 1000000 entries");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(now), P_INT(limit)};
        changes = 0;
        rc = db_exec(s, &SQL_QUEUE_EXPIRE, p, ARRAY_LEN(p), &changes, err);
    }
    if (rc == 0)
        *expired = (size_t)changes;
    return rc;
}
