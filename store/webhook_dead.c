/*
 * store/webhook_dead.c — the outbox's dead letters: events that failed delivery
 * webhook_max_attempts times (or took the process down that often: the claim counts the
 * attempt before it is made) stop being retried but are kept, listed for the operator, and
 * can be put back in the outbox or dropped.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#define MAX_ERROR 1000

void store_dead_items_free(struct store_dead_item *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].kind);
        free(items[i].body);
        free(items[i].last_error);
    }
    free(items);
}

/* Error text as stored: bounded. */
static char *clip(const char *s)
{
    return s ? xstrndup(s, MAX_ERROR) : NULL;
}

static int changed_one(int rc, int64_t changes, int64_t id, const char *what,
                       struct scepter_error *err)
{
    if (rc == 0 && changes == 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "id", "%s %lld does not exist", what,
                           (long long)id);
    return rc;
}

static const struct store_sql SQL_KILL = {
    "outbox_kill", "UPDATE outbox SET dead_at = $2, last_error = $3 WHERE id = $1 AND dead_at = 0",
    NULL, NULL};

int store_outbox_kill(struct store *s, int64_t id, int64_t now, const char *last_error,
                      struct scepter_error *err)
{
    char *why = clip(last_error);
    int64_t changes = 0;
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id), P_INT(now > 0 ? now : 1), P_TEXT(why)};
        rc = db_exec(s, &SQL_KILL, p, ARRAY_LEN(p), &changes, err);
        rc = changed_one(rc, changes, id, "outbox item", err);
    }
    free(why);
    return rc;
}

static const struct store_sql SQL_DEAD_LIST = {
    "outbox_dead_list",
    "SELECT id, kind, body, attempts, created, dead_at, last_error FROM outbox"
    " WHERE kind = $1 AND dead_at > 0 ORDER BY dead_at DESC, id DESC LIMIT $2",
    NULL, NULL};

int store_outbox_dead_list(struct store *s, const char *kind, size_t limit,
                           struct store_dead_item **out, size_t *n, struct scepter_error *err)
{
    struct store_dead_item *items = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(kind, 64, "kind", err)) != 0)
        return rc;
    if (limit == 0 || limit > 100000)
        limit = 100000;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(kind), P_INT(limit)};
        store_dead_items_free(items, count);
        items = NULL;
        count = cap = 0;
        if ((rc = db_query(s, &SQL_DEAD_LIST, p, ARRAY_LEN(p), &r, err)) != 0)
            continue;
        while ((rc = db_next(&r, err)) == 1) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                items = xreallocarray(items, cap, sizeof(*items));
            }
            struct store_dead_item *d = &items[count++];
            d->id = db_int(&r, 0);
            d->kind = db_strdup(&r, 1);
            d->body = db_strdup(&r, 2);
            d->attempts = (int)db_int(&r, 3);
            d->created = db_int(&r, 4);
            d->dead_at = db_int(&r, 5);
            d->last_error = db_strdup(&r, 6);
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_dead_items_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return 0;
}

static const struct store_sql SQL_DEAD_COUNT = {
    "outbox_dead_count", "SELECT count(*) FROM outbox WHERE kind = $1 AND dead_at > 0", NULL, NULL};

int store_outbox_dead_count(struct store *s, const char *kind, int64_t *count,
                            struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *count = 0;
    if ((rc = store_check_str(kind, 64, "kind", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(kind)};
        rc = db_query(s, &SQL_DEAD_COUNT, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *count = db_int(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_DEAD_RETRY_ONE = {
    "outbox_dead_retry_one",
    "UPDATE outbox SET dead_at = 0, attempts = 0, next_at = $3"
    " WHERE id = $2 AND kind = $1 AND dead_at > 0",
    NULL, NULL};
static const struct store_sql SQL_DEAD_RETRY_ALL = {
    "outbox_dead_retry_all",
    "UPDATE outbox SET dead_at = 0, attempts = 0, next_at = $2 WHERE kind = $1 AND dead_at > 0",
    NULL, NULL};

int store_outbox_dead_retry(struct store *s, const char *kind, int64_t id, int64_t now,
                            int64_t *moved, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    *moved = 0;
    if ((rc = store_check_str(kind, 64, "kind", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        if (id > 0) {
            struct dbv p[] = {P_TEXT(kind), P_INT(id), P_INT(now)};
            rc = db_exec(s, &SQL_DEAD_RETRY_ONE, p, ARRAY_LEN(p), &changes, err);
            rc = changed_one(rc, changes, id, "dead letter", err);
        } else {
            struct dbv p[] = {P_TEXT(kind), P_INT(now)};
            rc = db_exec(s, &SQL_DEAD_RETRY_ALL, p, ARRAY_LEN(p), &changes, err);
        }
    }
    if (rc == 0)
        *moved = changes;
    return rc;
}

static const struct store_sql SQL_DEAD_DELETE = {
    "outbox_dead_delete", "DELETE FROM outbox WHERE id = $2 AND kind = $1 AND dead_at > 0", NULL,
    NULL};

int store_outbox_dead_delete(struct store *s, const char *kind, int64_t id,
                             struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = store_check_str(kind, 64, "kind", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(kind), P_INT(id)};
        rc = db_exec(s, &SQL_DEAD_DELETE, p, ARRAY_LEN(p), &changes, err);
        rc = changed_one(rc, changes, id, "dead letter", err);
    }
    return rc;
}
