/*
 * store/jobs.c — what background work needs to coordinate through the database: the
 * outbox of events to deliver later (claimed with a lease, so two processes never deliver
 * the same item at once; PostgreSQL uses FOR UPDATE SKIP LOCKED so claimers do not queue
 * behind each other) and named leases that let one process at a time run a periodic job.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#define MAX_BODY (1024 * 1024)

void store_outbox_items_free(struct store_outbox_item *items, size_t n)
{
    size_t i;

    if (items == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(items[i].kind);
        free(items[i].body);
    }
    free(items);
}

static const struct store_sql SQL_OUTBOX_ADD = {
    "outbox_add", "INSERT INTO outbox (kind, body, created, next_at) VALUES ($1, $2, $3, $3)", NULL,
    NULL};

int store_outbox_add(struct store *s, const char *kind, const char *body, int64_t now,
                     struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(kind, 64, "kind", err)) != 0)
        return rc;
    if (body == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "body", "body: missing");
    if (strlen(body) > MAX_BODY)
        return scepter_err(err, SCEPTER_ETOOBIG, "body", "body: larger than %d bytes", MAX_BODY);
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(kind), P_TEXT(body), P_INT(now)};
        rc = db_exec(s, &SQL_OUTBOX_ADD, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

/* $1 now, $2 lease end, $3 max. */
static const struct store_sql SQL_OUTBOX_CLAIM = {
    "outbox_claim", NULL,
    "UPDATE outbox o SET next_at = $2, attempts = o.attempts + 1"
    " FROM (SELECT id FROM outbox WHERE next_at <= $1 AND dead_at = 0"
    "  ORDER BY next_at, id LIMIT $3"
    "  FOR UPDATE SKIP LOCKED) AS due"
    " WHERE o.id = due.id RETURNING o.id, o.kind, o.body, o.attempts, o.created, o.next_at",
    "UPDATE outbox SET next_at = $2, attempts = attempts + 1"
    " WHERE id IN (SELECT id FROM outbox WHERE next_at <= $1 AND dead_at = 0"
    "  ORDER BY next_at, id LIMIT $3)"
    " RETURNING id, kind, body, attempts, created, next_at"};

static int cmp_item(const void *a, const void *b)
{
    const struct store_outbox_item *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

static int outbox_claim(struct store *s, int64_t now, int64_t lease, size_t max,
                        struct store_outbox_item **out, size_t *n, struct scepter_error *err)
{
    struct store_outbox_item *items = NULL;
    size_t count = 0, cap = 0;
    struct dbv p[] = {P_INT(now), P_INT(now + lease), P_INT(max)};
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_OUTBOX_CLAIM, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            items = xreallocarray(items, cap, sizeof(*items));
        }
        items[count].id = db_int(&r, 0);
        items[count].kind = db_strdup(&r, 1);
        items[count].body = db_strdup(&r, 2);
        items[count].attempts = (int)db_int(&r, 3);
        items[count].created = db_int(&r, 4);
        items[count].next_at = db_int(&r, 5);
        count++;
    }
    db_res_clear(&r);
    if (rc < 0) {
        store_outbox_items_free(items, count);
        return rc;
    }
    if (count > 1)
        qsort(items, count, sizeof(*items), cmp_item);
    *out = items;
    *n = count;
    return 0;
}

int store_outbox_claim(struct store *s, int64_t now, int64_t lease, size_t max,
                       struct store_outbox_item **out, size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if (lease <= 0)
        return scepter_err(err, SCEPTER_EINVAL, "lease",
                           "lease: want a positive number of seconds");
    if (max == 0)
        return 0;
    if (max > 100000)
        max = 100000;
    STORE_CALL(s, rc, err)
    rc = outbox_claim(s, now, lease, max, out, n, err);
    return rc;
}

static const struct store_sql SQL_OUTBOX_DONE = {"outbox_done", "DELETE FROM outbox WHERE id = $1",
                                                 NULL, NULL};
static const struct store_sql SQL_OUTBOX_RETRY = {
    "outbox_retry", "UPDATE outbox SET next_at = $2, last_error = $3 WHERE id = $1 AND dead_at = 0",
    NULL, NULL};

int store_outbox_done(struct store *s, int64_t id, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id)};
        rc = db_exec(s, &SQL_OUTBOX_DONE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "outbox item %lld does not exist",
                             (long long)id);
    }
    return rc;
}

int store_outbox_retry(struct store *s, int64_t id, int64_t next_at, const char *last_error,
                       struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id), P_INT(next_at), P_TEXT(last_error)};
        rc = db_exec(s, &SQL_OUTBOX_RETRY, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "outbox item %lld does not exist",
                             (long long)id);
    }
    return rc;
}

static const struct store_sql SQL_OUTBOX_PENDING = {
    "outbox_pending", "SELECT count(*) FROM outbox WHERE dead_at = 0", NULL, NULL};

int store_outbox_pending(struct store *s, int64_t *count, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *count = 0;
    STORE_CALL(s, rc, err)
    {
        rc = db_query(s, &SQL_OUTBOX_PENDING, NULL, 0, &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *count = db_int(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
    }
    return rc;
}

/* Take a free or expired lease, or renew our own; nothing when another holder's is valid. */
static const struct store_sql SQL_LEASE = {
    "lease",
    "INSERT INTO leases (job, holder, expires) VALUES ($1, $2, $3)"
    " ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires = excluded.expires"
    " WHERE leases.holder = excluded.holder OR leases.expires <= $4 RETURNING holder",
    NULL, NULL};

int store_lease(struct store *s, const char *job, const char *holder, int64_t now, int64_t ttl,
                struct scepter_error *err)
{
    struct dbres r;
    int rc;

    if ((rc = store_check_str(job, 128, "job", err)) != 0 ||
        (rc = store_check_str(holder, 255, "holder", err)) != 0)
        return rc;
    if (ttl <= 0)
        return scepter_err(err, SCEPTER_EINVAL, "ttl", "ttl: want a positive number of seconds");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(job), P_TEXT(holder), P_INT(now + ttl), P_INT(now)};
        rc = db_query(s, &SQL_LEASE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0)
            rc = db_next(&r, err);
        db_res_clear(&r);
    }
    return rc;
}
