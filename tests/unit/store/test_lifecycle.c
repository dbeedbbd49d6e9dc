/*
 * Opening stores: URLs, migrations and the schema-version table, refusing a newer schema,
 * concurrent first opens, failure injection (a call that fails keeps nothing), reconnecting
 * after the database went away, and that an Idle poll with an empty queue writes nothing.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "common/xmalloc.h"
#include "fixture.h"
#include "support/support.h"

TestSuite(lifecycle, .init = tf_setup, .fini = tf_teardown);
/* Backend-specific tests: ctest runs the suite of the other backend's filter out. */
TestSuite(sqlite_only, .init = tf_setup, .fini = tf_teardown);
static void pg_only_fini(void);
TestSuite(pg_only, .init = tf_setup, .fini = pg_only_fini);

Test(lifecycle, open_version_ping_close)
{
    struct scepter_error err;
    struct store *s = tf_open();
    int db = -1, bin = -1;

    cr_assert_eq(store_schema_version(s, &db, &bin, &err), 0, "%s", err.msg);
    cr_assert_geq(bin, 1);
    cr_assert_eq(db, bin);
    cr_assert_eq(store_ping(s, &err), 0, "%s", err.msg);
    store_close(s);
    store_close(NULL);
    /* Reopening applies nothing new and keeps the version. */
    s = tf_open();
    cr_assert_eq(store_schema_version(s, &db, &bin, &err), 0, "%s", err.msg);
    cr_assert_eq(db, bin);
    store_close(s);
}

Test(lifecycle, bad_urls_are_refused_clearly)
{
    struct scepter_error err;
    struct store *s = (struct store *)1;

    cr_assert_eq(store_open("", &s, &err), SCEPTER_EINVAL);
    cr_assert_null(s);
    cr_assert_str_eq(err.field, "store");
    cr_assert_eq(store_open("sqlite:", &s, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "path"), "%s", err.msg);
    cr_assert_eq(store_open("mysql://root:hunter2@db/x", &s, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "mysql"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "hunter2"), "the password leaked: %s", err.msg);
    cr_assert_eq(store_open("postgres://u:hunter2@/none?host=/nonexistent-dir", &s, &err),
                 SCEPTER_ESTORE);
    cr_assert_null(strstr(err.msg, "hunter2"), "the password leaked: %s", err.msg);
    cr_assert_null(s);
}

Test(sqlite_only, creates_missing_directories)
{
    struct scepter_error err;
    struct store *s = NULL;
    char *dir, *url;

    dir = tu_tmpdir();
    url = xasprintf("sqlite:%s/a/b/c/scepter.db", dir);
    cr_assert_eq(store_open(url, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(access(url + 7, F_OK), 0);
    store_close(s);
    /* A path that cannot be created is an error naming it. */
    free(url);
    url = xasprintf("sqlite:%s/a/b/c/scepter.db/x/y.db", dir);
    cr_assert_neq(store_open(url, &s, &err), 0);
    cr_assert_null(s);
    free(url);
    tu_rmtree(dir);
    free(dir);
}

Test(lifecycle, newer_schema_is_refused)
{
    struct scepter_error err;
    struct store *s = tf_open();

    cr_assert_eq(store_exec_sql(s,
                                "INSERT INTO schema_version (version, name, applied_at) "
                                "VALUES (999, 'from_the_future', 0)",
                                &err),
                 0, "%s", err.msg);
    store_close(s);
    s = (struct store *)1;
    cr_assert_eq(store_open(tf_url(), &s, &err), SCEPTER_EVERSION);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "999"), "%s", err.msg);
    cr_assert(strstr(err.msg, "upgrade"), "%s", err.msg);
}

struct opener {
    int rc;
    char msg[256];
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    struct scepter_error err = {0};
    struct store *s = NULL;

    o->rc = store_open(tf_url(), &s, &err);
    memcpy(o->msg, err.msg, sizeof(o->msg));
    store_close(s);
    return NULL;
}

Test(lifecycle, concurrent_first_opens_migrate_once)
{
    pthread_t t[6];
    struct opener o[6];
    struct scepter_error err;
    struct store *s;
    int i, db, bin;

    memset(o, 0, sizeof(o));
    for (i = 0; i < 6; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    for (i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(o[i].rc, 0, "opener %d: %s", i, o[i].msg);
    }
    s = tf_open();
    cr_assert_eq(store_schema_version(s, &db, &bin, &err), 0, "%s", err.msg);
    cr_assert_eq(db, bin);
    /* Exactly one row per migration: a second application would have failed above. */
    cr_assert_eq(store_exec_sql(s,
                                "INSERT INTO schema_version (version, name, applied_at) "
                                "VALUES (1, 'again', 0)",
                                &err),
                 SCEPTER_ECONFLICT);
    store_close(s);
}

Test(lifecycle, fail_after_fails_one_call)
{
    struct scepter_error err;
    struct store *s = tf_open();

    store_fail_after(s, 2);
    cr_assert_eq(store_ping(s, &err), 0);
    cr_assert_eq(store_ping(s, &err), SCEPTER_ESTORE);
    cr_assert(strstr(err.msg, "injected"));
    cr_assert_eq(store_ping(s, &err), 0, "%s", err.msg);
    store_close(s);
}

/* Fail each statement of a multi-statement call in turn: the call fails and keeps nothing,
 * until the failure point lies past its end and it succeeds. */
Test(lifecycle, failed_statement_keeps_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_command c;
    struct store_queue_item *items = NULL;
    struct store_device dev;
    const char *ids[] = {"DEV-A", "DEV-B"};
    char uuid[37];
    int k, rc = -1;
    size_t n;
    int64_t depth;

    tf_enroll(s, "DEV-A", "iPhone14,2", T0);
    tf_enroll(s, "DEV-B", "iPad13,4", T0);
    tf_uuid(1, uuid);
    c = tf_cmd(uuid, "ProfileList", 0);
    for (k = 1; k <= 20 && rc != 0; k++) {
        store_fail_statement_after(s, k);
        rc = store_enqueue(s, &c, ids, 2, T0 + 1, &err);
        store_fail_statement_after(s, 0);
        if (rc != 0) {
            cr_assert_eq(rc, SCEPTER_ESTORE, "k=%d: %s", k, err.msg);
            cr_assert_eq(store_queue_depth(s, &depth, &err), 0, "%s", err.msg);
            cr_assert_eq(depth, 0, "k=%d left %lld queue rows", k, (long long)depth);
        }
    }
    cr_assert_eq(rc, 0, "enqueue never succeeded: %s", err.msg);
    cr_assert_gt(k, 3, "the enqueue should take several statements");
    cr_assert_eq(store_queue_list(s, "DEV-B", true, &items, &n, &err), 0);
    cr_assert_eq(n, 1);
    store_queue_items_free(items, n);

    /* Same for Authenticate of a new device. */
    rc = -1;
    for (k = 1; k <= 20 && rc != 0; k++) {
        char hash[65];
        tf_hash("cert-DEV-C", hash);
        struct store_authenticate a = {.device_id = "DEV-C",
                                       .type = STORE_ENROLL_DEVICE,
                                       .topic = "com.apple.mgmt.External.test",
                                       .cert_hash = hash,
                                       .facts = {.product_name = "iPhone15,3"}};
        store_fail_statement_after(s, k);
        rc = store_authenticate(s, &a, T0 + 2, NULL, &err);
        store_fail_statement_after(s, 0);
        if (rc != 0) {
            cr_assert_eq(store_device_get(s, "DEV-C", &dev, &err), SCEPTER_ENOTFOUND,
                         "k=%d: half an Authenticate was kept", k);
            cr_assert_eq(store_cert_check(s, hash, "DEV-C", &err), 0);
        }
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(store_device_get(s, "DEV-C", &dev, &err), 0, "%s", err.msg);
    store_device_clear(&dev);
    store_close(s);
}

Test(pg_only, reconnects_after_the_backend_is_killed)
{
    struct scepter_error err;
    struct store *s = NULL;
    char *url, *name, *sql;
    void *admin;
    int rc;

    name = xasprintf("scepter-kill-%ld", (long)getpid());
    url = xasprintf("%s&application_name=%s", tf_url(), name);
    cr_assert_eq(store_open(url, &s, &err), 0, "%s", err.msg);
    tf_enroll(s, "DEV-K", "iPhone14,2", T0);
    admin = tf_pg_admin();
    sql = xasprintf("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = '%s'",
                    name);
    char *killed = tf_pg_query(admin, sql);
    cr_assert_str_eq(killed, "1");
    free(killed);
    /* The call that meets the dead connection fails; the next one reconnects. */
    rc = store_ping(s, &err);
    if (rc != 0) {
        cr_assert_eq(rc, SCEPTER_ESTORE);
        cr_assert_eq(store_ping(s, &err), 0, "%s", err.msg);
    }
    /* Prepared statements were re-prepared on the new session. */
    tf_enroll(s, "DEV-K2", "iPhone14,2", T0 + 1);
    struct store_enrollment e;
    cr_assert_eq(store_enrollment_get(s, "DEV-K", &e, &err), 0, "%s", err.msg);
    cr_assert(e.enabled);
    store_enrollment_clear(&e);
    PQfinish(admin);
    free(sql);
    free(url);
    free(name);
    store_close(s);
}

/* ---------------------------------------------------------------------------------------- */
/* A private PostgreSQL: restart it under a connected store, and count transaction ids.     */

static char *private_dir;

static void pg_only_fini(void)
{
    if (private_dir) {
        char *script = tu_source_path("scripts/pg-test.sh");
        tu_sh(NULL, "%s stop '%s' >/dev/null 2>&1", script, private_dir);
        free(script);
        free(private_dir);
        private_dir = NULL;
    }
    tf_teardown();
}

static char *read_url(const char *dir)
{
    char *p = xasprintf("%s/pg.url", dir);
    size_t len;
    char *url = (char *)tu_read(p, &len);

    while (len && (url[len - 1] == '\n' || url[len - 1] == ' '))
        url[--len] = '\0';
    free(p);
    return url;
}

static int64_t xid_now(PGconn *c)
{
    char *v = tf_pg_query(c, "SELECT txid_current()");
    int64_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

Test(pg_only, private_server_restart_and_idle_writes_nothing)
{
    struct scepter_error err;
    struct store *s = NULL;
    struct store_next next;
    enum store_report_outcome out;
    struct store_command c;
    char *script, *url, *pgctl;
    const char *ids[] = {"DEV-R"};
    char uuid[37];
    PGconn *admin;
    int64_t x0, x1;
    int i, rc;

    private_dir = tu_binary_path("pgtest-store-private");
    script = tu_source_path("scripts/pg-test.sh");
    tu_sh(NULL, "%s stop '%s' >/dev/null 2>&1", script, private_dir);
    cr_assert_eq(tu_sh(NULL, "%s start '%s' >/dev/null", script, private_dir), 0);
    url = read_url(private_dir);
    admin = PQconnectdb(url);
    cr_assert_eq(PQstatus(admin), CONNECTION_OK);
    /* Nothing else may take transaction ids while we count them. */
    free(tf_pg_query(admin, "ALTER SYSTEM SET autovacuum = off"));
    free(tf_pg_query(admin, "SELECT pg_reload_conf()"));

    cr_assert_eq(store_open(url, &s, &err), 0, "%s", err.msg);
    tf_enroll(s, "DEV-R", "iPhone14,2", T0);

    /* An Idle poll on an empty queue assigns no transaction id: it writes nothing. */
    cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_IDLE, NULL, T0 + 1, &next, &out), 0);
    x0 = xid_now(admin);
    for (i = 0; i < 200; i++)
        cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_IDLE, NULL, T0 + 1, &next, &out), 0);
    x1 = xid_now(admin);
    cr_assert_eq(x1, x0 + 1, "200 empty Idle polls took %lld transaction ids",
                 (long long)(x1 - x0 - 1));

    /* With a queued command the Idle poll still writes nothing; after a NotNow it must. */
    tf_uuid(7, uuid);
    c = tf_cmd(uuid, "InstallProfile", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0 + 2, &err), 0, "%s", err.msg);
    x0 = xid_now(admin);
    for (i = 0; i < 50; i++) {
        cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_IDLE, NULL, T0 + 3, &next, &out), 1);
        store_next_clear(&next);
    }
    x1 = xid_now(admin);
    cr_assert_eq(x1, x0 + 1, "Idle polls handing out a command wrote");
    cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_NOTNOW, uuid, T0 + 4, &next, &out), 0);
    x0 = xid_now(admin);
    cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_IDLE, NULL, T0 + 5, &next, &out), 1);
    store_next_clear(&next);
    x1 = xid_now(admin);
    cr_assert_eq(x1, x0 + 2, "the Idle after a NotNow must clear the flag (one write)");

    /* Restart the server under the connected store. */
    /* pg-test.sh names the cluster's directory (under /tmp) in DIR/cluster. */
    char *cluster_file = xasprintf("%s/cluster", private_dir);
    char *cluster = (char *)tu_read(cluster_file, NULL);
    cluster[strcspn(cluster, "\n")] = '\0';
    pgctl = xasprintf("/usr/lib/postgresql/15/bin/pg_ctl -D '%s/data' -m fast -w restart "
                      ">/dev/null",
                      cluster);
    free(cluster_file);
    free(cluster);
    PQfinish(admin);
    cr_assert_eq(tf_pg_sh("%s", pgctl), 0);
    rc = store_ping(s, &err);
    if (rc != 0) {
        cr_assert_eq(rc, SCEPTER_ESTORE, "%s", err.msg);
        cr_assert(strstr(err.msg, "connection"), "%s", err.msg);
    }
    for (i = 0; i < 50 && store_ping(s, &err) != 0; i++)
        usleep(100000);
    cr_assert_eq(store_ping(s, &err), 0, "no reconnect: %s", err.msg);
    /* Nothing was lost: the queued command is still there and is delivered. */
    cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_IDLE, NULL, T0 + 6, &next, &out), 1);
    cr_assert_str_eq(next.uuid, uuid);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "DEV-R", STORE_STATUS_ACKNOWLEDGED, uuid, T0 + 7, &next, &out), 0);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    store_close(s);
    free(pgctl);
    free(url);
    free(script);
}

Test(sqlite_only, idle_writes_nothing)
{
    struct scepter_error err;
    struct store *s;
    struct store_next next;
    enum store_report_outcome out;
    struct store_command c;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *ids[] = {"DEV-S"};
    char uuid[37];
    int i, v0, v1;

    s = tf_open();
    tf_enroll(s, "DEV-S", "iPhone14,2", T0);
    /* PRAGMA data_version moves when another connection commits a change. */
    cr_assert_eq(sqlite3_open(tf_url() + 7, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
#define DATA_VERSION(v)                                                                            \
    do {                                                                                           \
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);                                                \
        (v) = sqlite3_column_int(st, 0);                                                           \
        sqlite3_reset(st);                                                                         \
    } while (0)
    DATA_VERSION(v0);
    for (i = 0; i < 100; i++)
        cr_assert_eq(tf_connect(s, "DEV-S", STORE_STATUS_IDLE, NULL, T0 + 1, &next, &out), 0);
    DATA_VERSION(v1);
    cr_assert_eq(v0, v1, "empty Idle polls wrote");
    tf_uuid(9, uuid);
    c = tf_cmd(uuid, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0 + 2, &err), 0, "%s", err.msg);
    cr_assert_eq(tf_connect(s, "DEV-S", STORE_STATUS_NOTNOW, uuid, T0 + 3, &next, &out), 0);
    DATA_VERSION(v0);
    cr_assert_eq(tf_connect(s, "DEV-S", STORE_STATUS_IDLE, NULL, T0 + 4, &next, &out), 1);
    store_next_clear(&next);
    DATA_VERSION(v1);
    cr_assert_neq(v0, v1, "the Idle after NotNow should have cleared the flag");
    sqlite3_finalize(st);
    sqlite3_close(db);
    store_close(s);
}
