/*
 * store/db_postgres.c — the PostgreSQL driver (libpq).  Every statement is prepared once per
 * connection (PQprepare) with parameter types taken from the first call, and run with
 * PQexecPrepared: scalars go as text, byte strings and arrays in binary (arrays in the binary
 * array wire format, so 100,000 ids travel as one parameter without escaping), and results
 * come back in binary.  Errors are classified by SQLSTATE: serialization failures and
 * deadlocks are marked retryable, a lost connection marks the handle broken so the next call
 * reconnects.  Migrations run in one transaction under an advisory lock, so several
 * processes opening a fresh database at once apply them exactly once.
 */
#include "store/store_int.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define PG_MAX_PARAMS 120

/* Type OIDs (pg_type.dat); stable across PostgreSQL versions. */
#define OID_BOOL        16
#define OID_BYTEA       17
#define OID_INT8        20
#define OID_TEXT        25
#define OID_BYTEA_ARRAY 1001
#define OID_TEXT_ARRAY  1009
#define OID_INT8_ARRAY  1016

static PGconn *conn_of(struct store *s)
{
    return (PGconn *)s->conn;
}

static atomic_int timeout_ms = 5000;

void store_set_timeout_ms(int ms)
{
    atomic_store(&timeout_ms, ms > 0 ? ms : 5000);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The result of the statement just sent (sent: what PQsend* returned), waiting at most
 * store_timeout: a server that is stopped or unreachable breaks the connection (the next call
 * reconnects) instead of holding the worker.  Like PQexec, the last result is returned.
 */
static PGresult *pg_wait(struct store *s, int sent)
{
    PGconn *c = conn_of(s);
    PGresult *res, *last = NULL;
    long long deadline = mono_ms() + atomic_load(&timeout_ms);

    if (!sent)
        return NULL;
    for (;;) {
        while (PQisBusy(c)) {
            struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
            long long left = deadline - mono_ms();
            int n = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0) {
                s->broken = true;
                s->timed_out = true;
                PQclear(last);
                return NULL;
            }
            if (n < 0 || !PQconsumeInput(c)) {
                s->broken = true;
                PQclear(last);
                return NULL;
            }
        }
        res = PQgetResult(c);
        if (res == NULL)
            break;
        PQclear(last);
        last = res;
    }
    return last;
}

/* The first line of libpq's connection error, without the trailing newline. */
static void conn_message(PGconn *c, char *out, size_t size)
{
    char *nl;

    str_copy(out, size, c ? PQerrorMessage(c) : "out of memory");
    nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
}

static int pg_err(struct store *s, PGresult *res, const char *what, struct scepter_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char cmsg[200];

    if (s->timed_out) {
        s->timed_out = false;
        return scepter_err(err, SCEPTER_ESTORE, NULL,
                           "store: PostgreSQL did not answer within %d ms (%s)",
                           atomic_load(&timeout_ms), what);
    }
    if (s->broken || s->conn == NULL || PQstatus(conn_of(s)) != CONNECTION_OK ||
        (state && strncmp(state, "08", 2) == 0)) {
        s->broken = true;
        conn_message(conn_of(s), cmsg, sizeof(cmsg));
        return scepter_err(err, SCEPTER_ESTORE, NULL,
                           "store: lost the connection to PostgreSQL (%s): %s", what,
                           msg ? msg : cmsg);
    }
    if (msg == NULL) {
        conn_message(conn_of(s), cmsg, sizeof(cmsg));
        msg = cmsg;
    }
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
        s->retry = true;
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: %s: %s", what, msg);
    }
    if (state && strcmp(state, "23505") == 0) {
        /* DETAIL names the key: "Key (uuid)=(...) already exists." */
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        return scepter_err(err, SCEPTER_ECONFLICT, NULL, "already exists (%s: %s)", what,
                           detail ? detail : msg);
    }
    if (state && strcmp(state, "23503") == 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, NULL,
                           "refers to something that does not exist (%s: %s)", what, msg);
    return scepter_err(err, SCEPTER_ESTORE, NULL, "store: postgres: %s (%s)", msg, what);
}

static void notice_quiet(void *arg, const char *message)
{
    (void)arg;
    log_debug("store: postgres: %s", message);
}

static int pg_connect(struct store *s, const char *url, struct scepter_error *err)
{
    /* connect_timeout bounds connecting and PQreset (libpq waits at least 2 s); a URL that
     * names its own wins (expand_dbname applies it after these). */
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", (atomic_load(&timeout_ms) + 999) / 1000);
    const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
    const char *const vals[] = {secs, url, "scepter", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    char msg[200];

    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        conn_message(c, msg, sizeof(msg));
        PQfinish(c);
        return scepter_err(err, SCEPTER_ESTORE, "store", "store: cannot connect to PostgreSQL: %s",
                           msg);
    }
    PQsetNoticeProcessor(c, notice_quiet, NULL);
    s->conn = c;
    return 0;
}

static void pg_disconnect(struct store *s)
{
    if (s->conn != NULL)
        PQfinish(conn_of(s));
    s->conn = NULL;
}

static int pg_reconnect(struct store *s, struct scepter_error *err)
{
    char msg[200];

    if (s->conn == NULL)
        return pg_connect(s, s->url, err);
    PQreset(conn_of(s));
    if (PQstatus(conn_of(s)) != CONNECTION_OK) {
        conn_message(conn_of(s), msg, sizeof(msg));
        return scepter_err(err, SCEPTER_ESTORE, "store",
                           "store: cannot reconnect to PostgreSQL: %s", msg);
    }
    return 0;
}

static unsigned type_oid(const struct dbv *p)
{
    switch (p->type) {
    case DBV_TEXT:
        return OID_TEXT;
    case DBV_INT:
        return OID_INT8;
    case DBV_BOOL:
        return OID_BOOL;
    case DBV_BLOB:
        return OID_BYTEA;
    case DBV_TEXTS:
        return OID_TEXT_ARRAY;
    case DBV_INTS:
        return OID_INT8_ARRAY;
    case DBV_BLOBS:
        return OID_BYTEA_ARRAY;
    }
    return 0;
}

static int pg_prepare(struct store *s, struct stmt_slot *slot, const char *sql,
                      const struct dbv *params, size_t np, struct scepter_error *err)
{
    Oid types[PG_MAX_PARAMS];
    char name[32];
    PGresult *res;
    size_t i;
    int rc = 0;

    if (np > PG_MAX_PARAMS)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: %s: too many parameters",
                           slot->key->name);
    for (i = 0; i < np; i++)
        types[i] = type_oid(&params[i]);
    if (s->broken) /* lost (or timed out) earlier in this call: send nothing more */
        return pg_err(s, NULL, slot->key->name, err);
    slot->id = ++s->next_id;
    snprintf(name, sizeof(name), "s%u", slot->id);
    res = pg_wait(s, PQsendPrepare(conn_of(s), name, sql, (int)np, types));
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_err(s, res, slot->key->name, err);
    PQclear(res);
    return rc;
}

static void pg_finalize(struct store *s, struct stmt_slot *slot)
{
    /* Prepared statements die with the session; a live one is dropped by DEALLOCATE only
     * when the cache is cleared on an open connection (never on the hot path). */
    (void)s;
    (void)slot;
}

static void put32(struct buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_append(b, x, 4);
}

static void put64(struct buf *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b, (uint32_t)v);
}

/* The binary wire form of a one-dimensional array (array_send): ndim, has-nulls flag,
 * element type, then (length, lower bound) per dimension, then length-prefixed elements. */
static void array_send(struct buf *b, const struct dbv *p)
{
    uint32_t elem = p->type == DBV_TEXTS ? OID_TEXT : p->type == DBV_INTS ? OID_INT8 : OID_BYTEA;
    size_t i;

    put32(b, p->len ? 1 : 0);
    put32(b, 0);
    put32(b, elem);
    if (p->len) {
        put32(b, (uint32_t)p->len);
        put32(b, 1);
    }
    for (i = 0; i < p->len; i++) {
        if (p->type == DBV_TEXTS) {
            size_t n = strlen(p->ss[i]);
            put32(b, (uint32_t)n);
            buf_append(b, p->ss[i], n);
        } else if (p->type == DBV_INTS) {
            put32(b, 8);
            put64(b, (uint64_t)p->is[i]);
        } else {
            put32(b, (uint32_t)p->blens[i]);
            buf_append(b, p->bs[i], p->blens[i]);
        }
    }
}

static int pg_run(struct store *s, struct stmt_slot *slot, const struct dbv *params, size_t np,
                  struct dbres *r, struct scepter_error *err)
{
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS], formats[PG_MAX_PARAMS];
    char nums[PG_MAX_PARAMS][24];
    struct buf arrays[PG_MAX_PARAMS];
    char name[32];
    PGresult *res;
    size_t i;
    int rc = 0;

    if (np > PG_MAX_PARAMS)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: %s: too many parameters",
                           slot->key->name);
    if (s->broken) /* lost (or timed out) earlier in this call: send nothing more */
        return pg_err(s, NULL, slot->key->name, err);
    for (i = 0; i < np; i++) {
        const struct dbv *p = &params[i];

        arrays[i] = (struct buf)BUF_INIT;
        values[i] = NULL;
        lengths[i] = 0;
        formats[i] = 0;
        if (p->null)
            continue;
        switch (p->type) {
        case DBV_TEXT:
            values[i] = p->s;
            break;
        case DBV_INT:
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)p->i);
            values[i] = nums[i];
            break;
        case DBV_BOOL:
            values[i] = p->i ? "t" : "f";
            break;
        case DBV_BLOB:
            values[i] = p->p ? (const char *)p->p : "";
            lengths[i] = (int)p->len;
            formats[i] = 1;
            break;
        case DBV_TEXTS:
        case DBV_INTS:
        case DBV_BLOBS:
            array_send(&arrays[i], p);
            values[i] = arrays[i].data;
            lengths[i] = (int)arrays[i].len;
            formats[i] = 1;
            break;
        }
    }
    snprintf(name, sizeof(name), "s%u", slot->id);
    res = pg_wait(s, PQsendQueryPrepared(conn_of(s), name, (int)np, values, lengths, formats, 1));
    for (i = 0; i < np; i++)
        buf_free(&arrays[i]);
    if (res == NULL ||
        (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)) {
        rc = pg_err(s, res, slot->key->name, err);
        PQclear(res);
        return rc;
    }
    r->h = res;
    r->nrows = PQntuples(res);
    r->row = -1;
    if (*PQcmdTuples(res) && str_to_i64(PQcmdTuples(res), 0, INT64_MAX, &r->changes) != 0)
        r->changes = 0;
    return 0;
}

static int pg_next(struct dbres *r, struct scepter_error *err)
{
    (void)err;
    if (r->row + 1 >= r->nrows)
        return 0;
    r->row++;
    return 1;
}

static void pg_res_clear(struct dbres *r)
{
    PQclear((PGresult *)r->h);
}

static bool pg_isnull(const struct dbres *r, int col)
{
    return PQgetisnull((const PGresult *)r->h, r->row, col) != 0;
}

static int64_t pg_int(const struct dbres *r, int col)
{
    const PGresult *res = (const PGresult *)r->h;
    const unsigned char *v;
    uint64_t x = 0;
    int i, len;

    if (PQgetisnull(res, r->row, col))
        return 0;
    v = (const unsigned char *)PQgetvalue(res, r->row, col);
    len = PQgetlength(res, r->row, col);
    if (len == 1) /* boolean */
        return v[0] != 0;
    for (i = 0; i < len && i < 8; i++)
        x = (x << 8) | v[i];
    switch (len) {
    case 2:
        return (int16_t)x;
    case 4:
        return (int32_t)x;
    case 8:
        return (int64_t)x;
    default:
        return 0;
    }
}

static const char *pg_text(const struct dbres *r, int col)
{
    const PGresult *res = (const PGresult *)r->h;

    if (PQgetisnull(res, r->row, col))
        return NULL;
    return PQgetvalue(res, r->row, col);
}

static const unsigned char *pg_blob(const struct dbres *r, int col, size_t *len)
{
    const PGresult *res = (const PGresult *)r->h;

    *len = 0;
    if (PQgetisnull(res, r->row, col))
        return NULL;
    *len = (size_t)PQgetlength(res, r->row, col);
    return (const unsigned char *)PQgetvalue(res, r->row, col);
}

static int pg_script(struct store *s, const char *sql, struct scepter_error *err)
{
    if (s->broken) /* lost (or timed out) earlier in this call: send nothing more */
        return pg_err(s, NULL, "script", err);
    PGresult *res = pg_wait(s, PQsendQuery(conn_of(s), sql));
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
        rc = pg_err(s, res, "script", err);
    PQclear(res);
    return rc;
}

static int pg_begin(struct store *s, struct scepter_error *err)
{
    return pg_script(s, "BEGIN", err);
}

static int pg_commit(struct store *s, struct scepter_error *err)
{
    return pg_script(s, "COMMIT", err);
}

static void pg_rollback(struct store *s)
{
    PQclear(PQexec(conn_of(s), "ROLLBACK"));
}

const struct store_ops store_ops_postgres = {
    .name = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .reconnect = pg_reconnect,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .run = pg_run,
    .script = pg_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .writing_reads = true,
    .schema_lock = "BEGIN; SELECT pg_advisory_xact_lock(hashtext('scepter-migrate:' ||"
                   " coalesce(current_schema(), '')))",
    .next = pg_next,
    .isnull = pg_isnull,
    .get_int = pg_int,
    .get_text = pg_text,
    .get_blob = pg_blob,
    .res_clear = pg_res_clear,
};
