/*
 * store/db.c — the backend-independent half of the SQL layer: rendering store SQL into each
 * dialect, the per-connection prepared-statement cache, running statements and reading rows
 * through the driver vtable, transactions, and the call wrapper that reconnects a lost
 * connection, injects test failures and retries serialization failures and deadlocks.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define STORE_MAX_TRIES 12
/* After a failed reconnection, how long calls fail at once before the next attempt. */
#define STORE_RECONNECT_MS 500

/* ---------------------------------------------------------------------------------------- */
/* Rendering                                                                                 */

/* Parse the digits at p (after '$' or "{ARR"); returns the count of digits consumed. */
static size_t read_num(const char *p, unsigned *n)
{
    size_t k = 0;

    *n = 0;
    while (isdigit((unsigned char)p[k]) && k < 4) {
        *n = *n * 10 + (unsigned)(p[k] - '0');
        k++;
    }
    return k;
}

char *db_render(const struct store_sql *q, bool pg)
{
    const char *sql = pg ? (q->pg ? q->pg : q->sql) : (q->sqlite ? q->sqlite : q->sql);
    struct buf b = BUF_INIT;
    bool quoted = false;
    const char *p;
    unsigned n;
    size_t k;

    if (sql == NULL)
        return NULL;
    for (p = sql; *p; p++) {
        if (*p == '\'') {
            quoted = !quoted;
            buf_putc(&b, *p);
            continue;
        }
        if (!quoted && strncmp(p, "{ARR", 4) == 0 && (k = read_num(p + 4, &n)) > 0 &&
            p[4 + k] == '}') {
            if (pg)
                buf_printf(&b, "(SELECT unnest($%u) AS value)", n);
            else
                buf_printf(&b, "(SELECT value FROM json_each(?%u))", n);
            p += 4 + k;
            continue;
        }
        if (!quoted && !pg && *p == '$' && isdigit((unsigned char)p[1])) {
            buf_putc(&b, '?');
            continue;
        }
        buf_putc(&b, *p);
    }
    return buf_steal(&b, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Statement cache                                                                           */

static size_t slot_hash(const void *key, size_t nslots)
{
    uint64_t h = (uint64_t)(uintptr_t)key;

    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 20) & (nslots - 1);
}

static struct stmt_slot *slot_find(struct store *s, const struct store_sql *key)
{
    size_t i;

    if (s->used * 2 >= s->nslots) {
        size_t old_n = s->nslots;
        struct stmt_slot *old = s->slots;

        s->nslots = old_n ? old_n * 2 : 128;
        s->slots = xcalloc(s->nslots, sizeof(*s->slots));
        for (i = 0; i < old_n; i++) {
            if (old[i].key == NULL)
                continue;
            size_t j = slot_hash(old[i].key, s->nslots);
            while (s->slots[j].key != NULL)
                j = (j + 1) & (s->nslots - 1);
            s->slots[j] = old[i];
        }
        free(old);
    }
    i = slot_hash(key, s->nslots);
    while (s->slots[i].key != NULL && s->slots[i].key != key)
        i = (i + 1) & (s->nslots - 1);
    if (s->slots[i].key == NULL) {
        s->slots[i].key = key;
        s->slots[i].ready = false;
        s->used++;
    }
    return &s->slots[i];
}

void db_cache_clear(struct store *s)
{
    size_t i;

    for (i = 0; i < s->nslots; i++) {
        if (s->slots[i].key != NULL && s->slots[i].ready && s->conn != NULL)
            s->ops->finalize(s, &s->slots[i]);
    }
    free(s->slots);
    s->slots = NULL;
    s->nslots = 0;
    s->used = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Running statements                                                                        */

int db_query(struct store *s, const struct store_sql *q, const struct dbv *params, size_t np,
             struct dbres *r, struct scepter_error *err)
{
    struct stmt_slot *slot;
    char *sql = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    r->s = s;
    if (s->fail_stmts > 0 && --s->fail_stmts == 0)
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: injected failure in %s", q->name);
    if (s->conn == NULL || s->broken)
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: the database connection was lost");
    slot = slot_find(s, q);
    if (!slot->ready) {
        sql = db_render(q, s->pg);
        if (sql == NULL)
            return scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: statement %s has no %s form",
                               q->name, s->ops->name);
        rc = s->ops->prepare(s, slot, sql, params, np, err);
        free(sql);
        if (rc != 0)
            return rc;
        slot->ready = true;
    }
    return s->ops->run(s, slot, params, np, r, err);
}

int db_exec(struct store *s, const struct store_sql *q, const struct dbv *params, size_t np,
            int64_t *changes, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    rc = db_query(s, q, params, np, &r, err);
    while (rc == 0 && (rc = db_next(&r, err)) > 0)
        rc = 0;
    if (rc == 0 && changes)
        *changes = r.changes;
    db_res_clear(&r);
    return rc;
}

/* Column c's value in row i, as a scalar parameter. */
static struct dbv row_value(const struct dbv *c, size_t i)
{
    switch (c->type) {
    case DBV_TEXTS:
        return P_TEXT(c->ss[i]);
    case DBV_INTS:
        return P_INT(c->is[i]);
    default:
        return P_BLOB(c->bs[i], c->blens[i]);
    }
}

/* Column c's rows [start, start + m), as an array parameter. */
static struct dbv column_slice(const struct dbv *c, size_t start, size_t m)
{
    struct dbv v = *c;

    v.len = m;
    if (c->type == DBV_TEXTS)
        v.ss = c->ss + start;
    else if (c->type == DBV_INTS)
        v.is = c->is + start;
    else {
        v.bs = c->bs + start;
        v.blens = c->blens + start;
    }
    return v;
}

/* Blob bytes of row i (all blob columns). */
static size_t row_bytes(const struct dbv *cols, size_t ncols, size_t i)
{
    size_t bytes = 0;

    for (size_t c = 0; c < ncols; c++)
        if (cols[c].type == DBV_BLOBS)
            bytes += cols[c].blens[i];
    return bytes;
}

int db_exec_rows(struct store *s, const struct store_sql *q, const struct dbv *cols, size_t ncols,
                 size_t nrows, const struct dbv *scalars, size_t nscalars, int64_t *changes,
                 struct scepter_error *err)
{
    struct dbv *p = xcalloc(ncols + nscalars, sizeof(*p));
    size_t start, end, bytes;
    int64_t ch;
    int rc = 0;

    *changes = 0;
    memcpy(p + ncols, scalars, nscalars * sizeof(*p));
    for (start = 0; start < nrows && rc == 0; start = end) {
        if (s->pg) {
            for (end = start, bytes = 0; end < nrows && end - start < DB_ROWS_CHUNK &&
                                         (end == start || bytes < DB_ROWS_CHUNK_BYTES);
                 end++)
                bytes += row_bytes(cols, ncols, end);
            for (size_t c = 0; c < ncols; c++)
                p[c] = column_slice(&cols[c], start, end - start);
        } else {
            end = start + 1;
            for (size_t c = 0; c < ncols; c++)
                p[c] = row_value(&cols[c], start);
        }
        ch = 0;
        if ((rc = db_exec(s, q, p, ncols + nscalars, &ch, err)) == 0)
            *changes += ch;
    }
    free(p);
    return rc;
}

int db_next(struct dbres *r, struct scepter_error *err)
{
    if (r->h == NULL)
        return 0;
    return r->s->ops->next(r, err);
}

void db_res_clear(struct dbres *r)
{
    if (r->s != NULL && r->h != NULL)
        r->s->ops->res_clear(r);
    r->h = NULL;
}

bool db_isnull(const struct dbres *r, int col)
{
    return r->s->ops->isnull(r, col);
}

int64_t db_int(const struct dbres *r, int col)
{
    return r->s->ops->get_int(r, col);
}

bool db_bool(const struct dbres *r, int col)
{
    return r->s->ops->get_int(r, col) != 0;
}

const char *db_text(const struct dbres *r, int col)
{
    return r->s->ops->get_text(r, col);
}

char *db_strdup(const struct dbres *r, int col)
{
    const char *t = r->s->ops->get_text(r, col);

    return t ? xstrdup(t) : NULL;
}

const unsigned char *db_blob(const struct dbres *r, int col, size_t *len)
{
    return r->s->ops->get_blob(r, col, len);
}

unsigned char *db_blobdup(const struct dbres *r, int col, size_t *len)
{
    size_t n = 0;
    const unsigned char *p = r->s->ops->get_blob(r, col, &n);

    *len = p ? n : 0;
    return p ? xmemdup(p, n) : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Transactions and the call wrapper                                                         */

/* ---------------------------------------------------------------------------------------- */
/* Migrations                                                                                */

static const struct store_sql SQL_SCHEMA_CURRENT = {
    "schema_version", "SELECT coalesce(max(version), 0) FROM schema_version", NULL, NULL};
static const struct store_sql SQL_SCHEMA_RECORD = {
    "schema_version_record",
    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)", NULL, NULL};

int db_migrate(struct store *s, const struct store_migration *m, size_t n,
               struct scepter_error *err)
{
    struct dbres r;
    int64_t current = 0;
    int rc;

    if ((rc = s->ops->script(s, s->ops->schema_lock, err)) != 0)
        return rc;
    rc = s->ops->script(s,
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at bigint NOT NULL)",
                        err);
    if (rc == 0 && (rc = db_query(s, &SQL_SCHEMA_CURRENT, NULL, 0, &r, err)) == 0) {
        if ((rc = db_next(&r, err)) == 1) {
            current = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ESTORE, "store", "store: schema_version returned no row");
        }
        db_res_clear(&r);
    }
    if (rc == 0 && current > (int64_t)n)
        rc = scepter_err(err, SCEPTER_EVERSION, "store",
                         "store: the database schema is version %lld, newer than this "
                         "scepter (%zu): upgrade scepter",
                         (long long)current, n);
    for (size_t i = current > 0 ? (size_t)current : 0; rc == 0 && i < n; i++) {
        struct dbv p[] = {P_INT(m[i].version), P_TEXT(m[i].name), P_INT((int64_t)time(NULL))};
        log_info("store: applying %s migration %03d_%s", s->ops->name, m[i].version, m[i].name);
        if ((rc = s->ops->script(s, m[i].sql, err)) != 0) {
            char msg[sizeof(err->msg)];
            str_copy(msg, sizeof(msg), err->msg);
            rc = scepter_err(err, SCEPTER_ESTORE, "store", "store: %s migration %03d_%s failed: %s",
                             s->ops->name, m[i].version, m[i].name, msg);
            break;
        }
        rc = db_exec(s, &SQL_SCHEMA_RECORD, p, ARRAY_LEN(p), NULL, err);
    }
    if (rc == 0)
        rc = s->ops->script(s, "COMMIT", err);
    if (rc != 0 && !s->broken)
        s->ops->rollback(s);
    return rc;
}

int db_begin(struct store *s, struct scepter_error *err)
{
    int rc;

    if (s->in_tx)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: nested transaction");
    if (s->fail_stmts > 0 && --s->fail_stmts == 0)
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: injected failure in BEGIN");
    rc = s->ops->begin(s, err);
    if (rc == 0)
        s->in_tx = true;
    return rc;
}

int db_commit(struct store *s, struct scepter_error *err)
{
    int rc;

    if (s->fail_stmts > 0 && --s->fail_stmts == 0) {
        db_rollback(s);
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: injected failure in COMMIT");
    }
    rc = s->ops->commit(s, err);
    s->in_tx = false;
    return rc;
}

void db_rollback(struct store *s)
{
    if (s->in_tx && !s->broken)
        s->ops->rollback(s);
    s->in_tx = false;
}

int store_call_begin(struct store *s, struct scepter_error *err)
{
    int rc;

    scepter_err_clear(err);
    s->retry = false;
    if (s->fail_calls > 0 && --s->fail_calls == 0)
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: injected failure");
    if (s->broken || s->conn == NULL) {
        struct timespec ts;
        int64_t now;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        /* After a failed attempt, one more per STORE_RECONNECT_MS: the calls in between fail
         * at once (503) instead of each waiting out a connection timeout of its own. */
        if (now < s->reconnect_after_ms)
            return scepter_err(err, SCEPTER_ESTORE, NULL, "store: unavailable (%s)",
                               s->reconnect_error);
        db_cache_clear(s);
        s->in_tx = false;
        rc = s->ops->reconnect(s, err);
        if (rc != 0) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            s->reconnect_after_ms =
                (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + STORE_RECONNECT_MS;
            str_copy(s->reconnect_error, sizeof(s->reconnect_error), err ? err->msg : "");
            return rc;
        }
        s->reconnect_after_ms = 0;
        s->broken = false;
        log_info("store: reconnected to the %s database", s->ops->name);
    }
    return 0;
}

int store_call_again(struct store *s, int *rc, int attempt, struct scepter_error *err)
{
    bool retry = s->retry && !s->broken;

    if (s->in_tx) {
        db_rollback(s);
        if (*rc == 0) /* a body that forgot to commit is a bug: nothing was kept */
            *rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: transaction left open");
    }
    s->retry = false;
    if (*rc == 0 || !retry)
        return 0;
    if (attempt >= STORE_MAX_TRIES) {
        log_warnx("store: giving up after %d serialization failures/deadlocks: %s", attempt,
                  err ? err->msg : "");
        return 0;
    }
    log_debug("store: retrying after a serialization failure or deadlock (attempt %d)", attempt);
    /* Back off a little, more each time, staggered per connection. */
    usleep((useconds_t)(200 * attempt * attempt + ((uintptr_t)s >> 4) % 500));
    *rc = 0;
    scepter_err_clear(err);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */

int store_norm_sha256(const char *in, char out[65], const char *field, struct scepter_error *err)
{
    size_t i;

    if (in == NULL || strlen(in) != 64)
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: want the 64 hex digits of a SHA-256 digest", field);
    for (i = 0; i < 64; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'F')
            c = (unsigned char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: '%c' is not a hex digit", field,
                               in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?');
        out[i] = (char)c;
    }
    out[64] = '\0';
    return 0;
}

int store_check_str(const char *s, size_t max, const char *field, struct scepter_error *err)
{
    size_t i, len;

    if (s == NULL || *s == '\0')
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: missing", field);
    len = strlen(s);
    if (len > max)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: longer than %zu bytes", field, max);
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return scepter_err(err, SCEPTER_EINVAL, field,
                               "%s: contains a control character at byte %zu", field, i);
    }
    return 0;
}

void store_strv_push(char ***v, size_t *n, size_t *cap, char *str)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = xreallocarray(*v, *cap, sizeof(**v));
    }
    (*v)[(*n)++] = str;
}

void store_strv_free(char **v, size_t n)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
