/*
 * store/store_int.h — private to store/.  The connection handle, the driver vtable that the
 * SQLite and PostgreSQL backends fill in (struct store_ops, chosen by URL in store_open), typed
 * statement parameters, result cursors, the per-connection prepared-statement cache and the
 * call wrapper that retries serialization failures and deadlocks.
 *
 * The store's logic (store/checkin.c, queue.c, push.c, groups.c, policies.c, apikeys.c,
 * jobs.c) is written once against this layer.  SQL is written with PostgreSQL-style numbered
 * parameters ($1, $2...), which the SQLite driver renders as ?1, ?2...; "{ARRn}" stands for a
 * derived table with one column `value` built from the array parameter $n (PostgreSQL:
 * unnest of a binary text[]/bigint[] parameter; SQLite: json_each of a JSON array), so set
 * operations over many ids stay one statement on both backends.  Where the backends need
 * different SQL, a statement carries a text per backend.
 */
#ifndef SCEPTER_STORE_STORE_INT_H
#define SCEPTER_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/attr.h"
#include "common/error.h"
#include "store/store.h"

/* ---------------------------------------------------------------------------------------- */
/* Statements and parameters                                                                 */

/* One SQL statement.  Instances are static const; their address keys the statement cache. */
struct store_sql {
    const char *name;   /* for error messages: "group_create" */
    const char *sql;    /* both backends, or NULL when each has its own text */
    const char *pg;     /* PostgreSQL text (overrides sql) */
    const char *sqlite; /* SQLite text (overrides sql) */
};

enum dbv_type {
    DBV_TEXT,
    DBV_INT,
    DBV_BOOL,
    DBV_BLOB,
    DBV_TEXTS, /* array of strings (no NULL elements) */
    DBV_INTS,  /* array of int64 */
    DBV_BLOBS, /* array of byte strings (PostgreSQL arrays; db_exec_rows only) */
};

/* A parameter value.  Everything it points to is borrowed for the duration of the call. */
struct dbv {
    enum dbv_type type;
    bool null;
    int64_t i;                      /* DBV_INT, DBV_BOOL */
    const char *s;                  /* DBV_TEXT */
    const void *p;                  /* DBV_BLOB */
    size_t len;                     /* DBV_BLOB bytes; element count of arrays */
    const char *const *ss;          /* DBV_TEXTS */
    const int64_t *is;              /* DBV_INTS */
    const unsigned char *const *bs; /* DBV_BLOBS */
    const size_t *blens;            /* DBV_BLOBS */
};

#define P_TEXT(x)        ((struct dbv){.type = DBV_TEXT, .null = (x) == NULL, .s = (x)})
#define P_INT(x)         ((struct dbv){.type = DBV_INT, .i = (int64_t)(x)})
#define P_BOOL(x)        ((struct dbv){.type = DBV_BOOL, .i = (x) ? 1 : 0})
#define P_BLOB(x, n)     ((struct dbv){.type = DBV_BLOB, .null = (x) == NULL, .p = (x), .len = (n)})
#define P_TEXTS(a, n)    ((struct dbv){.type = DBV_TEXTS, .ss = (a), .len = (n)})
#define P_INTS(a, n)     ((struct dbv){.type = DBV_INTS, .is = (a), .len = (n)})
#define P_BLOBS(a, l, n) ((struct dbv){.type = DBV_BLOBS, .bs = (a), .blens = (l), .len = (n)})

/* A result cursor.  Always released with db_res_clear(), even after an error. */
struct dbres {
    struct store *s;
    void *h;         /* PGresult * or sqlite3_stmt * */
    int row;         /* current row (PostgreSQL) */
    int nrows;       /* rows in the result (PostgreSQL) */
    int pending;     /* SQLite: 1 = a stepped row not yet returned, 0 = none, -1 = done */
    int64_t changes; /* rows inserted/updated/deleted */
};

/* A cached prepared statement (one per struct store_sql, per connection). */
struct stmt_slot {
    const struct store_sql *key;
    bool ready;   /* prepared on this connection */
    void *handle; /* sqlite3_stmt *; unused by PostgreSQL */
    unsigned id;  /* PostgreSQL prepared statement name "s<id>" */
};

/* ---------------------------------------------------------------------------------------- */
/* The driver vtable                                                                         */

struct store_migration {
    int version;
    const char *name;
    const char *sql;
};

struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    /* Connect to target (the URL without "sqlite:"; the whole URL for PostgreSQL). */
    int (*connect)(struct store *s, const char *target, struct scepter_error *err);
    void (*disconnect)(struct store *s);
    /* Re-establish a lost connection (the statement cache is already empty). */
    int (*reconnect)(struct store *s, struct scepter_error *err);
    int (*prepare)(struct store *s, struct stmt_slot *slot, const char *sql,
                   const struct dbv *params, size_t np, struct scepter_error *err);
    void (*finalize)(struct store *s, struct stmt_slot *slot);
    int (*run)(struct store *s, struct stmt_slot *slot, const struct dbv *params, size_t np,
               struct dbres *r, struct scepter_error *err);
    /* Several statements, no parameters, no rows (migrations, BEGIN, test hooks). */
    int (*script)(struct store *s, const char *sql, struct scepter_error *err);
    int (*begin)(struct store *s, struct scepter_error *err);
    int (*commit)(struct store *s, struct scepter_error *err);
    void (*rollback)(struct store *s);
    /* Script that opens the migration transaction holding the schema lock, so that a second
     * scepter opening the same database waits, then finds the work done. */
    const char *schema_lock;
    /* A statement can read and write at once (data-modifying CTEs): an exchange records the
     * report in its one statement rather than under a transaction's write lock. */
    bool writing_reads;
    /* Cursor access. */
    int (*next)(struct dbres *r, struct scepter_error *err);
    bool (*isnull)(const struct dbres *r, int col);
    int64_t (*get_int)(const struct dbres *r, int col);
    const char *(*get_text)(const struct dbres *r, int col);
    const unsigned char *(*get_blob)(const struct dbres *r, int col, size_t *len);
    void (*res_clear)(struct dbres *r);
};

extern const struct store_ops store_ops_sqlite;
extern const struct store_ops store_ops_postgres;

extern const struct store_migration store_migrations_sqlite[];
extern const size_t store_migrations_sqlite_len;
extern const struct store_migration store_migrations_postgres[];
extern const size_t store_migrations_postgres_len;

/* ---------------------------------------------------------------------------------------- */
/* The connection                                                                            */

struct store {
    const struct store_ops *ops;
    bool pg; /* the PostgreSQL backend (a few paths differ) */
    char *url;
    void *conn;              /* sqlite3 * or PGconn * */
    struct stmt_slot *slots; /* open-addressing table keyed by struct store_sql address */
    size_t nslots, used;
    unsigned next_id;
    bool in_tx;         /* between db_begin and db_commit/rollback */
    bool broken;        /* the connection was lost: reconnect on the next call */
    bool retry;         /* the last error is a serialization failure or deadlock */
    int fail_calls;     /* store_fail_after countdown */
    int fail_stmts;     /* store_fail_statement_after countdown */
    int migrations_len; /* newest migration this binary knows */

    /* Waiting on an unresponsive server (PostgreSQL, store_timeout). */
    bool timed_out;             /* the connection broke: no answer within store_timeout */
    int64_t reconnect_after_ms; /* a reconnection failed: calls fail fast until then */
    char reconnect_error[200];  /* ... with its error */
};

/* ---------------------------------------------------------------------------------------- */
/* Helpers (store/db.c)                                                                      */

/*
 * Run one statement.  With r, the caller iterates rows with db_next() and releases r with
 * db_res_clear(); without r, rows are discarded and *changes (if non-NULL) receives the
 * number of rows the statement changed.
 */
int db_query(struct store *s, const struct store_sql *q, const struct dbv *params, size_t np,
             struct dbres *r, struct scepter_error *err) WUR;
int db_exec(struct store *s, const struct store_sql *q, const struct dbv *params, size_t np,
            int64_t *changes, struct scepter_error *err) WUR;
/* 1 with a row, 0 at the end, negative on error. */
int db_next(struct dbres *r, struct scepter_error *err) WUR;
void db_res_clear(struct dbres *r);
bool db_isnull(const struct dbres *r, int col);
int64_t db_int(const struct dbres *r, int col);
bool db_bool(const struct dbres *r, int col);
/* NULL for SQL NULL; valid until the next db_next/db_res_clear. */
const char *db_text(const struct dbres *r, int col);
/* A copy (caller frees), NULL for SQL NULL. */
char *db_strdup(const struct dbres *r, int col);
const unsigned char *db_blob(const struct dbres *r, int col, size_t *len);
/* A copy of a BLOB column (caller frees); NULL and *len 0 for SQL NULL. */
unsigned char *db_blobdup(const struct dbres *r, int col, size_t *len);

/*
 * Run a one-row statement for nrows rows given as columns (ncols parameters of type DBV_TEXTS,
 * DBV_INTS or DBV_BLOBS, nrows elements each), followed by scalar parameters the same for
 * every row; *changes is the total of rows changed.  The batching is the backend's: PostgreSQL
 * binds whole chunks of the columns as arrays to q's pg text (which unnests them; chunks of at
 * most DB_ROWS_CHUNK rows and about DB_ROWS_CHUNK_BYTES of blobs), SQLite runs q's sqlite text
 * once per row with that row's values (a prepared statement in one transaction costs about
 * what an array statement does there).
 */
#define DB_ROWS_CHUNK       20000
#define DB_ROWS_CHUNK_BYTES (32 * 1024 * 1024)
int db_exec_rows(struct store *s, const struct store_sql *q, const struct dbv *cols, size_t ncols,
                 size_t nrows, const struct dbv *scalars, size_t nscalars, int64_t *changes,
                 struct scepter_error *err) WUR;
/* Apply the migrations after the schema's recorded version, in one transaction (db.c). */
int db_migrate(struct store *s, const struct store_migration *m, size_t n,
               struct scepter_error *err) WUR;
int db_begin(struct store *s, struct scepter_error *err) WUR;
int db_commit(struct store *s, struct scepter_error *err) WUR;
void db_rollback(struct store *s);

/* Drop every cached prepared statement. */
void db_cache_clear(struct store *s);
/* The SQL of q in the backend's dialect ($n -> ?n, {ARRn} expanded); caller frees.  NULL
 * when q has no text for this backend. */
char *db_render(const struct store_sql *q, bool pg);

/*
 * The call wrapper every public function uses:
 *     STORE_CALL(s, rc, err) rc = do_thing(s, ..., err);
 * runs the body once (after a pending reconnect and the failure-injection hook) and again,
 * after rolling back, when it failed with a serialization failure or a deadlock.
 */
int store_call_begin(struct store *s, struct scepter_error *err);
int store_call_again(struct store *s, int *rc, int attempt, struct scepter_error *err);
#define STORE_CALL(s, rc, err)                                                                     \
    for (int try_ = 0, go_ = ((rc) = store_call_begin((s), (err))) == 0; go_;                      \
         go_ = store_call_again((s), &(rc), ++try_, (err)))

/* The 64 hex digits of a SHA-256 digest, lower-cased into out; SCEPTER_EINVAL naming field
 * for anything else. */
int store_norm_sha256(const char *in, char out[65], const char *field,
                      struct scepter_error *err) WUR;
/* SCEPTER_EINVAL naming field unless s is a non-empty string of at most max bytes. */
int store_check_str(const char *s, size_t max, const char *field, struct scepter_error *err) WUR;

/* Append a string to a growing array of strings. */
void store_strv_push(char ***v, size_t *n, size_t *cap, char *str);

/* Shared between queue.c and policies.c: queue cmds[i] for ids[i] inside the caller's
 * transaction.  With policy_id != 0 every command is linked to that policy and version, with
 * cmds[i].policy_action, or `action` where that is STORE_POLICY_NONE. */
int store_enqueue_each_tx(struct store *s, const struct store_command *cmds, const char *const *ids,
                          size_t n, int64_t now, int64_t policy_id, int64_t policy_version,
                          enum store_policy_action action, struct scepter_error *err) WUR;
/* ENOTFOUND (naming field and the id) unless every id is a device; inside a call. */
int store_check_devices(struct store *s, const char *const *ids, size_t n, const char *field,
                        struct scepter_error *err) WUR;
/* Validate one command (uuid, request type, plist). */
int store_check_command(const struct store_command *c, struct scepter_error *err) WUR;

/* Shared between audit.c and queue.c: SCEPTER_EINVAL naming the field unless the audit entry
 * can be stored; its insertion inside the caller's call (or transaction), its id in *id. */
int store_audit_check(const struct store_audit_entry *e, struct scepter_error *err) WUR;
int store_audit_insert(struct store *s, const struct store_audit_entry *e, int64_t *id,
                       struct scepter_error *err) WUR;

/* Queue states (queue.state). */
#define QSTATE_PENDING   0
#define QSTATE_FINISHED  1
#define QSTATE_CANCELLED 2
#define QSTATE_EXPIRED   3 /* its expiry passed before a final result */

#endif
