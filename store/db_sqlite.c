/*
 * store/db_sqlite.c — the SQLite driver: one database file in WAL mode with a busy timeout,
 * so several connections (one per worker thread, or several processes) can share it; write
 * transactions start with BEGIN IMMEDIATE so two writers queue on the busy handler (about
 * 10 s) instead of deadlocking on a lock upgrade.  Array parameters are passed as JSON arrays and
 * expanded with json_each().  Prepared statements persist for the life of the connection.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <stdatomic.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define SQLITE_BUSY_TIMEOUT_US 10000000L

static sqlite3 *db_of(struct store *s)
{
    return (sqlite3 *)s->conn;
}

/* Map an SQLite result code to a scepter error; busy/locked are marked retryable. */
static int sq_err(struct store *s, int rc, const char *what, struct scepter_error *err)
{
    const char *msg = s->conn ? sqlite3_errmsg(db_of(s)) : sqlite3_errstr(rc);

    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        s->retry = true;
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: database is busy (%s)", what);
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return scepter_err(err, SCEPTER_ECONFLICT, NULL, "already exists (%s: %s)", what, msg);
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return scepter_err(err, SCEPTER_ENOTFOUND, NULL,
                               "refers to something that does not exist (%s)", what);
        return scepter_err(err, SCEPTER_EINVAL, NULL, "refused by the database (%s: %s)", what,
                           msg);
    default:
        return scepter_err(err, SCEPTER_ESTORE, NULL, "store: sqlite: %s (%s)", msg, what);
    }
}

/* mkdir -p of the directory holding path. */
static int make_parent_dirs(const char *path, struct scepter_error *err)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    char *p;
    int rc = 0;

    if (slash == NULL || slash == dir)
        goto out;
    *slash = '\0';
    for (p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            rc = scepter_err(err, SCEPTER_ESTORE, "store", "store: cannot create %s: %s", dir,
                             strerror(errno));
            goto out;
        }
        *p = c;
        if (c == '\0')
            break;
    }
out:
    free(dir);
    return rc;
}

/*
 * Busy handler: wait for another connection's write transaction with short sleeps.  SQLite's
 * own busy timeout sleeps at least a millisecond per wait, far longer than a typical write
 * transaction here (tens of microseconds), which caps contended writers at a few hundred per
 * second.  Sleeps grow from 20 us to 2 ms; the wait gives up after about 10 s (SQLITE_BUSY).
 */
static int sq_busy(void *arg, int count)
{
    static const long steps[] = {20, 50, 100, 200, 500, 1000};
    const int nsteps = (int)ARRAY_LEN(steps);
    long waited = 0, delay;
    int i;

    (void)arg;
    for (i = 0; i < count && i < nsteps; i++)
        waited += steps[i];
    if (count > nsteps)
        waited += (long)(count - nsteps) * 2000;
    if (waited >= SQLITE_BUSY_TIMEOUT_US)
        return 0;
    delay = count < nsteps ? steps[count] : 2000;
    usleep((useconds_t)delay);
    return 1;
}

/*
 * The database holds the APNs private key and devices' bootstrap and unlock tokens: it is
 * created 0600 whatever the umask (SQLite gives its -wal and -shm files the database file's
 * permissions), and an existing file (or -wal/-shm) readable by others is narrowed to 0600.
 */
static int make_private(const char *path, struct scepter_error *err)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    struct stat st;
    int fd;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno != EEXIST)
        return scepter_err(err, SCEPTER_ESTORE, "store", "store: cannot create %s: %s", path,
                           strerror(errno));
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char *f = xasprintf("%s%s", path, suffix[i]);
        if (stat(f, &st) == 0 && (st.st_mode & 077) != 0) {
            if (chmod(f, st.st_mode & 0700) == 0)
                log_warnx("store: %s was readable by others (mode %03o): now %03o", f,
                          (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0700));
            else
                log_warn("store: %s is readable by others and cannot be narrowed", f);
        }
        free(f);
    }
    return 0;
}

static _Atomic int64_t cache_bytes = 16 << 20;

/*
 * The page buffer: SQLite's page caches take their pages from one region of
 * sqlite_page_buffer_bytes (SQLITE_CONFIG_PAGECACHE) before malloc.  In WAL mode a connection
 * drops its whole cache whenever another connection has written, so every transaction of a
 * busy server allocated and freed its pages again: megabytes of 4 KB blocks a second through
 * malloc, between the other allocations, and glibc kept the holes they left (the soak's
 * free-but-held memory).  Pages from the region never reach malloc.  Set once, before the
 * first connection; the region's pages become resident as they are first used and stay.
 */
static _Atomic int64_t buffer_bytes = 8 << 20;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;
static int64_t buffer_slot, buffer_slots;

void store_set_sqlite_page_buffer_bytes(int64_t bytes)
{
    atomic_store(&buffer_bytes, bytes > 0 ? bytes : 0);
}

static void buffer_setup(void)
{
    int64_t bytes = atomic_load(&buffer_bytes), slot, n;
    int hdr = 0;
    void *mem;

    if (bytes <= 0 || sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &hdr) != SQLITE_OK)
        return;
    slot = (4096 + hdr + 7) & ~(int64_t)7; /* a 4 KB page (the default size) and its header */
    if ((n = bytes / slot) < 1 || n > INT_MAX)
        return;
    mem =
        mmap(NULL, (size_t)(slot * n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return;
    /* Refused when SQLite is already initialized in this process: then malloc, as before. */
    if (sqlite3_config(SQLITE_CONFIG_PAGECACHE, mem, (int)slot, (int)n) != SQLITE_OK) {
        munmap(mem, (size_t)(slot * n));
        log_debug("store: SQLite page buffer not set (SQLite already initialized)");
        return;
    }
    buffer_slot = slot;
    buffer_slots = n;
}

void store_set_sqlite_cache_bytes(int64_t bytes)
{
    atomic_store(&cache_bytes, bytes >= 65536 ? bytes : 16 << 20);
}

static int sq_connect(struct store *s, const char *path, struct scepter_error *err)
{
    sqlite3 *db = NULL;
    char *msg = NULL, setup[256];
    int rc;

    if (strcmp(path, ":memory:") != 0 &&
        ((rc = make_parent_dirs(path, err)) != 0 || (rc = make_private(path, err)) != 0))
        return rc;
    pthread_once(&buffer_once, buffer_setup);
    rc = sqlite3_open_v2(path, &db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = scepter_err(err, SCEPTER_ESTORE, "store", "store: cannot open %s: %s", path,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_handler(db, sq_busy, NULL);
    /* WAL: readers never block the writer; NORMAL: a commit does not fsync, the WAL is
     * synced at checkpoints (a power loss can lose the last commits, never corrupt); a page
     * cache per connection of sqlite_cache_bytes (16 MB: the hot index pages of 100,000
     * devices).  In WAL mode a connection's cache is dropped whenever another connection has
     * written, so with several workers it mostly serves one transaction and the next ones of
     * a worker that wrote last. */
    snprintf(setup, sizeof(setup),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
             "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-%lld;",
             (long long)(atomic_load(&cache_bytes) / 1024));
    if (sqlite3_exec(db, setup, NULL, NULL, &msg) != SQLITE_OK) {
        rc = scepter_err(err, SCEPTER_ESTORE, "store", "store: cannot set up %s: %s", path,
                         msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return rc;
    }
    s->conn = db;
    return 0;
}

static void sq_disconnect(struct store *s)
{
    if (s->conn != NULL)
        sqlite3_close(db_of(s));
    s->conn = NULL;
}

static int sq_reconnect(struct store *s, struct scepter_error *err)
{
    sq_disconnect(s);
    return sq_connect(s, s->url + strlen("sqlite:"), err);
}

static int sq_prepare(struct store *s, struct stmt_slot *slot, const char *sql,
                      const struct dbv *params, size_t np, struct scepter_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    (void)params;
    (void)np;
    rc = sqlite3_prepare_v3(db_of(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_err(s, rc, slot->key->name, err);
    slot->handle = st;
    return 0;
}

static void sq_finalize(struct store *s, struct stmt_slot *slot)
{
    (void)s;
    sqlite3_finalize((sqlite3_stmt *)slot->handle);
    slot->handle = NULL;
}

static void json_string(struct buf *b, const char *str)
{
    const unsigned char *p;

    buf_putc(b, '"');
    for (p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)*p);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

static int bind_params(struct store *s, sqlite3_stmt *st, const struct dbv *p, size_t np,
                       const char *name, struct scepter_error *err)
{
    struct buf b = BUF_INIT;
    size_t i, j;
    int rc = SQLITE_OK;
    /* A statement's text for this backend may leave out parameters its other form uses:
     * those past the last one it names are not bound. */
    size_t used = (size_t)sqlite3_bind_parameter_count(st);

    for (i = 0; i < np && i < used && rc == SQLITE_OK; i++) {
        int k = (int)i + 1;

        if (p[i].null) {
            rc = sqlite3_bind_null(st, k);
            continue;
        }
        switch (p[i].type) {
        case DBV_TEXT:
            rc = sqlite3_bind_text(st, k, p[i].s, -1, SQLITE_STATIC);
            break;
        case DBV_INT:
        case DBV_BOOL:
            rc = sqlite3_bind_int64(st, k, p[i].i);
            break;
        case DBV_BLOB:
            rc = sqlite3_bind_blob64(st, k, p[i].p ? p[i].p : "", p[i].len, SQLITE_STATIC);
            break;
        case DBV_TEXTS:
        case DBV_INTS:
            buf_reset(&b);
            buf_putc(&b, '[');
            for (j = 0; j < p[i].len; j++) {
                if (j)
                    buf_putc(&b, ',');
                if (p[i].type == DBV_TEXTS)
                    json_string(&b, p[i].ss[j]);
                else
                    buf_printf(&b, "%lld", (long long)p[i].is[j]);
            }
            buf_putc(&b, ']');
            {
                size_t len;
                char *json = buf_steal(&b, &len);
                rc = sqlite3_bind_text64(st, k, json, len, free, SQLITE_UTF8);
            }
            break;
        case DBV_BLOBS:
        default:
            buf_free(&b);
            return scepter_err(err, SCEPTER_EINTERNAL, NULL,
                               "store: %s: parameter %d has a type SQLite cannot take", name, k);
        }
    }
    buf_free(&b);
    if (rc != SQLITE_OK)
        return sq_err(s, rc, name, err);
    return 0;
}

static int sq_run(struct store *s, struct stmt_slot *slot, const struct dbv *params, size_t np,
                  struct dbres *r, struct scepter_error *err)
{
    sqlite3_stmt *st = (sqlite3_stmt *)slot->handle;
    int rc;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    rc = bind_params(s, st, params, np, slot->key->name, err);
    if (rc != 0) {
        sqlite3_clear_bindings(st);
        return rc;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->pending = 1;
    } else if (rc == SQLITE_DONE) {
        r->pending = -1;
        r->changes = sqlite3_changes64(db_of(s));
    } else {
        rc = sq_err(s, rc, slot->key->name, err);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    r->h = st;
    return 0;
}

static int sq_next(struct dbres *r, struct scepter_error *err)
{
    sqlite3_stmt *st = (sqlite3_stmt *)r->h;
    int rc;

    if (r->pending == 1) {
        r->pending = 0;
        return 1;
    }
    if (r->pending == -1)
        return 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE) {
        r->pending = -1;
        r->changes = sqlite3_changes64(db_of(r->s));
        return 0;
    }
    return sq_err(r->s, rc, sqlite3_sql(st), err);
}

static void sq_res_clear(struct dbres *r)
{
    sqlite3_reset((sqlite3_stmt *)r->h);
    sqlite3_clear_bindings((sqlite3_stmt *)r->h);
}

static bool sq_isnull(const struct dbres *r, int col)
{
    return sqlite3_column_type((sqlite3_stmt *)r->h, col) == SQLITE_NULL;
}

static int64_t sq_int(const struct dbres *r, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)r->h, col);
}

static const char *sq_text(const struct dbres *r, int col)
{
    return (const char *)sqlite3_column_text((sqlite3_stmt *)r->h, col);
}

static const unsigned char *sq_blob(const struct dbres *r, int col, size_t *len)
{
    sqlite3_stmt *st = (sqlite3_stmt *)r->h;
    const unsigned char *p;

    *len = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    p = sqlite3_column_blob(st, col);
    *len = (size_t)sqlite3_column_bytes(st, col);
    return p ? p : (const unsigned char *)"";
}

static int sq_script(struct store *s, const char *sql, struct scepter_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db_of(s), sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        sqlite3_free(msg);
        return sq_err(s, rc, "script", err);
    }
    return 0;
}

static int sq_begin(struct store *s, struct scepter_error *err)
{
    return sq_script(s, "BEGIN IMMEDIATE", err);
}

static int sq_commit(struct store *s, struct scepter_error *err)
{
    int rc = sq_script(s, "COMMIT", err);

    if (rc != 0 && !sqlite3_get_autocommit(db_of(s)))
        sqlite3_exec(db_of(s), "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(db_of(s)))
        sqlite3_exec(db_of(s), "ROLLBACK", NULL, NULL, NULL);
}

const struct store_ops store_ops_sqlite = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .reconnect = sq_reconnect,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .run = sq_run,
    .script = sq_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .schema_lock = "BEGIN IMMEDIATE",
    .next = sq_next,
    .isnull = sq_isnull,
    .get_int = sq_int,
    .get_text = sq_text,
    .get_blob = sq_blob,
    .res_clear = sq_res_clear,
};

int64_t store_sqlite_memory_used(void)
{
    int cur = 0, hi = 0;

    if (buffer_slots > 0)
        sqlite3_status(SQLITE_STATUS_PAGECACHE_USED, &cur, &hi, 0);
    return (int64_t)sqlite3_memory_used() + (int64_t)cur * buffer_slot;
}

void store_sqlite_page_buffer(int64_t *size, int64_t *used)
{
    int cur = 0, hi = 0;

    if (buffer_slots > 0)
        sqlite3_status(SQLITE_STATUS_PAGECACHE_USED, &cur, &hi, 0);
    *size = buffer_slots * buffer_slot;
    *used = (int64_t)cur * buffer_slot;
}
