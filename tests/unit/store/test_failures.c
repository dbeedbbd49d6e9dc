/*
 * Every mutating store call (store/store.h), failed at each of its statements in turn
 * (store_fail_statement_after, counting BEGIN and COMMIT): the call answers SCEPTER_ESTORE
 * naming the injected failure, and the database is exactly what it was before — compared
 * row by row over every table — until the failure point lies past the call's end and it
 * succeeds and changes something.  As nghttp2's failmalloc tests do for allocations.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "fixture.h"
#include "support/support.h"

TestSuite(failures, .init = tf_setup, .fini = tf_teardown);

/* ---- the whole database as text ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Rows of one table as sorted lines "table|v1|v2|..." appended to out. */
static void sqlite_table(sqlite3 *db, const char *table, struct buf *out)
{
    sqlite3_stmt *st = NULL;
    char *sql = xasprintf("SELECT * FROM \"%s\"", table);
    char **lines = NULL;
    size_t n = 0, cap = 0;
    int rc;

    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct buf line = {0};
        buf_puts(&line, table);
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *v = sqlite3_column_blob(st, c);
            int len = sqlite3_column_bytes(st, c);
            buf_putc(&line, '|');
            if (sqlite3_column_type(st, c) == SQLITE_NULL)
                buf_puts(&line, "NULL");
            else
                for (int i = 0; i < len; i++)
                    buf_printf(&line, "%02x", v[i]);
        }
        buf_putc(&line, '\0');
        if (n == cap)
            lines = xreallocarray(lines, cap = cap ? 2 * cap : 16, sizeof(*lines));
        lines[n++] = buf_steal(&line, NULL);
    }
    cr_assert_eq(rc, SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (n > 1)
        qsort(lines, n, sizeof(*lines), cmp_str);
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, lines[i]);
        buf_putc(out, '\n');
        free(lines[i]);
    }
    free(lines);
    free(sql);
}

static char *snapshot_sqlite(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct buf out = {0};
    const char *path = tf_url() + strlen("sqlite:");

    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                                    -1, &st, NULL),
                 SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *table = xstrdup((const char *)sqlite3_column_text(st, 0));
        sqlite_table(db, table, &out);
        free(table);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    buf_putc(&out, '\0');
    return buf_steal(&out, NULL);
}

static char *snapshot_pg(void)
{
    PGconn *c = PQconnectdb(tf_url());
    PGresult *r;
    struct buf out = {0};

    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    r = PQexec(c, "SELECT table_name FROM information_schema.tables "
                  "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                  "ORDER BY table_name");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r); i++) {
        char *sql = xasprintf("SELECT '%s' || coalesce(string_agg(t::text, E'\\n' "
                              "ORDER BY t::text), '') FROM \"%s\" t",
                              PQgetvalue(r, i, 0), PQgetvalue(r, i, 0));
        PGresult *q = PQexec(c, sql);
        cr_assert_eq(PQresultStatus(q), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
        buf_puts(&out, PQgetvalue(q, 0, 0));
        buf_putc(&out, '\n');
        PQclear(q);
        free(sql);
    }
    PQclear(r);
    PQfinish(c);
    buf_putc(&out, '\0');
    return buf_steal(&out, NULL);
}

static char *snapshot(void)
{
    return tf_pg() ? snapshot_pg() : snapshot_sqlite();
}

/* ---- the calls --------------------------------------------------------------------------- */

/* What the preparations leave for the calls. */
static struct {
    int64_t token_id, apikey_id, outbox_id, dead_id, policy_id;
    char challenge[STORE_SCEP_CHALLENGE_LEN];
    char hash[65];
    struct store_policy policy;
} C;

static struct store_command cmd(unsigned n)
{
    static char uuids[64][37];
    tf_uuid(n, uuids[n % 64]);
    return tf_cmd(uuids[n % 64], "ProfileList", 0);
}

static void enqueue(struct store *s, unsigned n, const char *enrollment)
{
    struct scepter_error err;
    struct store_command c = cmd(n);

    cr_assert_eq(store_enqueue(s, &c, &enrollment, 1, T0 + 1, &err), 0, "%s", err.msg);
}

static void hash_of(const char *seed)
{
    tf_hash(seed, C.hash);
}

/* authenticate */
static int c_authenticate(struct store *s, struct scepter_error *err)
{
    hash_of("cert-DEV-F1");
    struct store_authenticate a = {.device_id = "DEV-F1",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .cert_hash = C.hash,
                                   .facts = {.serial_number = "S1", .product_name = "iPhone15,3"}};
    return store_authenticate(s, &a, T0 + 10, NULL, err);
}

/* re-authentication with a new certificate after CheckOut: revokes, clears, deactivates */
static void p_reauthenticate(struct store *s)
{
    struct scepter_error err;

    tf_enroll(s, "DEV-F1R", "iPhone14,2", T0);
    enqueue(s, 1, "DEV-F1R");
    cr_assert_eq(store_bootstrap_set(s, "DEV-F1R", (const unsigned char *)"bt", 2, &err), 0);
    cr_assert_eq(store_checkout(s, "DEV-F1R", T0 + 1, &err), 0, "%s", err.msg);
}
static int c_reauthenticate(struct store *s, struct scepter_error *err)
{
    hash_of("new-cert-DEV-F1R");
    struct store_authenticate a = {.device_id = "DEV-F1R",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .cert_hash = C.hash,
                                   .facts = {.product_name = "iPhone14,2"}};
    return store_authenticate(s, &a, T0 + 10, NULL, err);
}

static const unsigned char token[32] = {0xde, 0xad, 0xbe, 0xef};

static void p_token_update(struct store *s)
{
    tf_authenticate(s, "DEV-F2", "iPhone14,2", T0);
}
static int c_token_update(struct store *s, struct scepter_error *err)
{
    bool first;
    struct store_token_update t = {.enrollment_id = "DEV-F2",
                                   .device_id = "DEV-F2",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "magic-2",
                                   .unlock_token = (const unsigned char *)"unlock",
                                   .unlock_token_len = 6};
    return store_token_update(s, &t, T0 + 10, &first, err);
}

/* the first TokenUpdate of a user channel creates its enrollment */
static int c_token_update_user(struct store *s, struct scepter_error *err)
{
    bool first;
    struct store_token_update t = {.enrollment_id = "DEV-F2:U-501",
                                   .device_id = "DEV-F2",
                                   .type = STORE_ENROLL_USER,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "magic-3",
                                   .user_id = "U-501",
                                   .user_short_name = "jappleseed"};
    return store_token_update(s, &t, T0 + 11, &first, err);
}

static void p_checkout(struct store *s)
{
    tf_enroll(s, "DEV-F3", "iPhone14,2", T0);
    enqueue(s, 2, "DEV-F3");
}
static int c_checkout(struct store *s, struct scepter_error *err)
{
    return store_checkout(s, "DEV-F3", T0 + 10, err);
}

static void p_dev4(struct store *s)
{
    tf_enroll(s, "DEV-F4", "iPhone14,2", T0);
}
static int c_update_facts(struct store *s, struct scepter_error *err)
{
    struct store_device_facts f = {.device_name = "Renamed", .os_version = "17.1"};
    return store_device_update_facts(s, "DEV-F4", &f, T0 + 10, err);
}

static int c_bootstrap_set(struct store *s, struct scepter_error *err)
{
    return store_bootstrap_set(s, "DEV-F4", (const unsigned char *)"bootstrap", 9, err);
}

static int c_touch(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F3"};
    return store_touch(s, ids, 2, T0 + 100000, err);
}

static void p_remove(struct store *s)
{
    tf_enroll(s, "DEV-F5", "iPhone14,2", T0);
    enqueue(s, 3, "DEV-F5");
}
static int c_device_remove(struct store *s, struct scepter_error *err)
{
    return store_device_remove(s, "DEV-F5", T0 + 10, NULL, err);
}

static int c_allow_reenroll(struct store *s, struct scepter_error *err)
{
    return store_device_allow_reenroll(s, "DEV-F4", T0 + 3600, err);
}

static void p_revoke(struct store *s)
{
    tf_enroll(s, "DEV-F6", "iPhone14,2", T0);
    hash_of("cert-DEV-F6");
}
static int c_cert_revoke(struct store *s, struct scepter_error *err)
{
    char *dev = NULL;
    int rc = store_cert_revoke(s, C.hash, "revoked", T0 + 10, &dev, err);
    free(dev);
    return rc;
}

static int c_enroll_token_create(struct store *s, struct scepter_error *err)
{
    hash_of("enroll-token-1");
    return store_enroll_token_create(s, C.hash, "lab", 5, T0 + 86400, T0, &C.token_id, err);
}

static int c_enroll_token_use(struct store *s, struct scepter_error *err)
{
    hash_of("enroll-token-1");
    return store_enroll_token_use(s, C.hash, T0 + 10, err);
}

static int c_enroll_token_delete(struct store *s, struct scepter_error *err)
{
    return store_enroll_token_delete(s, C.token_id, err);
}

static int c_event_add(struct store *s, struct scepter_error *err)
{
    return store_event_add(s, "mdm.ReenrollRefused", "DEV-F4", "{\"k\":1}", T0 + 10, err);
}

static int c_enqueue(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F6"};
    struct store_command c = cmd(10);
    return store_enqueue(s, &c, ids, 2, T0 + 10, err);
}

static int c_enqueue_each(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F6", "DEV-F4"};
    struct store_command c[3] = {cmd(11), cmd(11), cmd(12)};
    return store_enqueue_each(s, c, ids, 3, T0 + 10, err);
}

static void p_connect(struct store *s)
{
    tf_enroll(s, "DEV-F7", "iPhone14,2", T0);
    enqueue(s, 20, "DEV-F7");
    enqueue(s, 21, "DEV-F7");
}
static int connect_report(struct store *s, enum store_status st, unsigned n,
                          struct scepter_error *err)
{
    static const char raw[] = "<plist><dict><key>Status</key></dict></plist>";
    struct store_command c = cmd(n);
    struct store_next next;
    enum store_report_outcome out;
    hash_of("cert-DEV-F7");
    struct store_report rep = {.enrollment_id = "DEV-F7",
                               .device_id = "DEV-F7",
                               .cert_hash = C.hash,
                               .status = st,
                               .command_uuid = c.uuid,
                               .raw = (const unsigned char *)raw,
                               .raw_len = sizeof(raw) - 1,
                               .error_chain_json =
                                   st == STORE_STATUS_ERROR ? "[{\"ErrorCode\":1}]" : NULL};
    memset(&next, 0, sizeof(next));
    int rc = store_connect(s, &rep, T0 + 10, &next, &out, err);
    store_next_clear(&next);
    return rc < 0 ? rc : 0;
}
static int c_connect_notnow(struct store *s, struct scepter_error *err)
{
    return connect_report(s, STORE_STATUS_NOTNOW, 20, err);
}
static int c_connect_ack(struct store *s, struct scepter_error *err)
{
    return connect_report(s, STORE_STATUS_ACKNOWLEDGED, 20, err);
}
static int c_connect_error(struct store *s, struct scepter_error *err)
{
    return connect_report(s, STORE_STATUS_ERROR, 21, err);
}

/* One report batch: DEV-F7's second command acknowledged, with DEV-F8's report of a command
 * it does not have (answered alone).  A failed statement of the batch is absorbed (the batch
 * is taken again one by one, so the call may succeed at once); what is checked is that every answer
 * is right whatever failed, and test_queue's
 * report_batch_with_a_failed_statement_is_taken_one_by_one that nothing of the failed batch was
 * kept. */
static void p_connect_many(struct store *s)
{
    enqueue(s, 22, "DEV-F7");
}
static int c_connect_many(struct store *s, struct scepter_error *err)
{
    static const char raw[] = "<plist><dict><key>Status</key></dict></plist>";
    struct store_command c = cmd(22);
    char h7[65];
    struct store_answer a[2];

    hash_of("cert-DEV-F7");
    memcpy(h7, C.hash, sizeof(h7));
    hash_of("cert-DEV-F8");
    struct store_report rep[2] = {
        {.enrollment_id = "DEV-F7",
         .device_id = "DEV-F7",
         .cert_hash = h7,
         .status = STORE_STATUS_ACKNOWLEDGED,
         .command_uuid = c.uuid,
         .raw = (const unsigned char *)raw,
         .raw_len = sizeof(raw) - 1},
        {.enrollment_id = "DEV-F8",
         .device_id = "DEV-F8",
         .cert_hash = C.hash,
         .status = STORE_STATUS_ERROR,
         .command_uuid = c.uuid,
         .raw = (const unsigned char *)raw,
         .raw_len = sizeof(raw) - 1},
    };
    int rc = store_connect_many(s, rep, 2, T0 + 30, a);
    int out = rc;
    if (out == 0 && a[0].rc < 0) {
        *err = a[0].err;
        out = a[0].rc;
    } else if (out == 0 && a[1].rc < 0) {
        *err = a[1].err;
        out = a[1].rc;
    } else if (out == 0) {
        cr_assert_eq(a[0].outcome, STORE_REPORT_RECORDED);
        cr_assert_eq(a[1].outcome, STORE_REPORT_UNKNOWN_COMMAND);
    } else {
        *err = a[0].err;
    }
    store_answer_clear(&a[0]);
    store_answer_clear(&a[1]);
    return out;
}

static int c_enqueue_device(struct store *s, struct scepter_error *err)
{
    struct store_command c = cmd(13);
    struct store_push_target t;
    /* with its audit entry: neither may be written without the other */
    struct store_audit_entry a = {.at = T0 + 10,
                                  .actor_type = (char *)"api_key",
                                  .actor_name = (char *)"ops",
                                  .address = (char *)"127.0.0.1",
                                  .action = (char *)"command.enqueue",
                                  .route = (char *)"POST /v1/commands",
                                  .object = c.uuid,
                                  .summary = (char *)"command, devices"};
    int64_t id;
    int rc = store_enqueue_device(s, &c, "DEV-F4", T0 + 10, &a, &id, &t, err);
    store_push_target_clear(&t);
    if (rc == 0)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "not queued by the fast path");
    return rc < 0 ? rc : 0;
}

static void p_idle_many(struct store *s)
{
    tf_enroll(s, "DEV-F8", "iPhone14,2", T0);
    enqueue(s, 30, "DEV-F8");
    enqueue(s, 31, "DEV-F8");
    struct store_next next;
    enum store_report_outcome out;
    struct store_command c = cmd(30);
    /* NotNow, so the next Idle starts a new exchange (which writes) */
    tf_connect(s, "DEV-F8", STORE_STATUS_NOTNOW, c.uuid, T0 + 2, &next, &out);
    store_next_clear(&next);
}
static int c_connect_idle_many(struct store *s, struct scepter_error *err)
{
    hash_of("cert-DEV-F8");
    struct store_report rep[2] = {
        {.enrollment_id = "DEV-F8", .device_id = "DEV-F8", .cert_hash = C.hash},
        {.enrollment_id = "DEV-F7", .device_id = "DEV-F7", .cert_hash = NULL},
    };
    struct store_next next[2];
    struct scepter_error errs[2];
    int rcs[2] = {0, 0};
    memset(next, 0, sizeof(next));
    int rc = store_connect_idle_many(s, rep, 2, T0 + 20, next, rcs, errs);
    store_next_clear(&next[0]);
    store_next_clear(&next[1]);
    /* Each poll is its own exchange (SQLite runs them one by one, PostgreSQL in one
     * statement): what is checked is that a poll that failed kept nothing.  DEV-F7's queue
     * is finished, so its poll writes nothing whatever happens to it. */
    cr_assert(rcs[1] == 0 || rcs[1] == SCEPTER_ESTORE, "DEV-F7: %d %s", rcs[1], errs[1].msg);
    if (rc < 0 || rcs[0] < 0) {
        *err = errs[0];
        return rcs[0] < 0 ? rcs[0] : rc;
    }
    return 0;
}

static int c_queue_cancel(struct store *s, struct scepter_error *err)
{
    struct store_command c = cmd(31);
    return store_queue_cancel(s, "DEV-F8", c.uuid, err);
}

static int c_queue_clear(struct store *s, struct scepter_error *err)
{
    size_t n;
    return store_queue_clear(s, "DEV-F4", &n, err);
}

static int c_retention(struct store *s, struct scepter_error *err)
{
    size_t deleted;
    return store_retention(s, T0 + 1000000, 1000, &deleted, err);
}

static void p_awaiting(struct store *s)
{
    struct scepter_error err;
    struct store_command c = cmd(48);
    const char *e = "DEV-BASE";

    c.request_type = "DeviceConfigured";
    cr_assert_eq(store_enqueue(s, &c, &e, 1, T0 + 1, &err), 0, "%s", err.msg);
    cr_assert_eq(store_exec_sql(s,
                                "UPDATE enrollments SET awaiting_configuration = true"
                                " WHERE id = 'DEV-BASE'",
                                &err),
                 0, "%s", err.msg);
}
static int c_device_configured(struct store *s, struct scepter_error *err)
{
    bool cleared = false;
    struct store_command c = cmd(48);
    return store_device_configured(s, "DEV-BASE", c.uuid, &cleared, err);
}

static void p_renewal(struct store *s)
{
    tf_enroll(s, "DEV-RN", "MacBookPro18,3", T0);
}
static int c_renewal_begin(struct store *s, struct scepter_error *err)
{
    struct store_command c = cmd(49);
    hash_of("renewed-DEV-RN");
    return store_renewal_begin(s, "DEV-RN", &c, C.hash, T0 + 86400, T0 + 20, err);
}
static int c_renewal_bind(struct store *s, struct scepter_error *err)
{
    int64_t na;
    hash_of("renewed-DEV-RN");
    return store_renewal_bind(s, "DEV-RN", C.hash, 0, T0 + 30, &na, err);
}

static void p_expiring(struct store *s)
{
    struct scepter_error err;
    struct store_command c = cmd(47);
    const char *e = "DEV-BASE";

    c.expires = T0 + 5;
    cr_assert_eq(store_enqueue(s, &c, &e, 1, T0 + 1, &err), 0, "%s", err.msg);
}
static int c_queue_expire(struct store *s, struct scepter_error *err)
{
    size_t n;
    return store_queue_expire(s, T0 + 1000000, 1000, &n, err);
}

static int c_push_token_invalidate(struct store *s, struct scepter_error *err)
{
    return store_push_token_invalidate(s, "DEV-F2",
                                       "deadbeef00000000000000000000000000000000000000"
                                       "000000000000000000",
                                       T0 + 20, err);
}

static int c_pushcert_put(struct store *s, struct scepter_error *err)
{
    struct store_pushcert p = {.topic = (char *)"com.apple.mgmt.External.other",
                               .cert_pem = (char *)"-----BEGIN CERTIFICATE-----\n",
                               .key_pem = (char *)"-----BEGIN PRIVATE KEY-----\n",
                               .not_after = T0 + 86400};
    return store_pushcert_put(s, &p, true, T0 + 10, err);
}

static int c_group_create(struct store *s, struct scepter_error *err)
{
    int64_t id;
    return store_group_create(s, "Lab", T0 + 10, &id, err);
}
static int c_group_rename(struct store *s, struct scepter_error *err)
{
    return store_group_rename(s, "Lab", "Lab Macs", err);
}
static int c_group_add(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F6", "DEV-F7"};
    size_t changed;
    return store_group_add(s, "Lab Macs", ids, 3, &changed, err);
}
static int c_group_remove(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F6"};
    size_t changed;
    return store_group_remove(s, "Lab Macs", ids, 2, &changed, err);
}

static struct store_policy policy(void)
{
    static const char *const devices[] = {"DEV-F4"};
    static const char *const groups[] = {"Lab Macs"};
    struct store_policy p = {
        .uid = (char *)"uid-failures-1",
        .type = (char *)"scep",
        .platform = (char *)"ios",
        .name = (char *)"Wi-Fi",
        .document = (char *)"{\"scep\":{\"url\":\"http://scep.example/cgi-bin/pkiclient.exe\","
                            "\"name\":\"WiFi Certificate\",\"challenge\":\"s3cret\"}}",
        .target_devices = (char **)devices,
        .n_target_devices = 1,
        .target_groups = (char **)groups,
        .n_target_groups = 1,
    };
    return p;
}
static int c_policy_create(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4", "DEV-F7"};
    struct store_command c[2] = {cmd(40), cmd(41)};
    c[0].policy_action = c[1].policy_action = STORE_POLICY_INSTALL;
    C.policy = policy();
    int rc = store_policy_save(s, &C.policy, c, ids, 2, T0 + 10, err);
    C.policy_id = C.policy.id;
    return rc;
}
static int c_policy_update(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4"};
    struct store_command c[1] = {cmd(42)};
    c[0].policy_action = STORE_POLICY_INSTALL;
    C.policy = policy();
    C.policy.id = C.policy_id;
    C.policy.name = (char *)"Wi-Fi 2";
    C.policy.n_target_groups = 0;
    return store_policy_save(s, &C.policy, c, ids, 1, T0 + 11, err);
}
static int c_policy_delete(struct store *s, struct scepter_error *err)
{
    const char *ids[] = {"DEV-F4"};
    struct store_command c[1] = {cmd(43)};
    c[0].policy_action = STORE_POLICY_REMOVE;
    return store_policy_delete(s, C.policy_id, c, ids, 1, T0 + 12, err);
}
static int c_group_delete(struct store *s, struct scepter_error *err)
{
    return store_group_delete(s, "Lab Macs", err);
}

static int c_apikey_create(struct store *s, struct scepter_error *err)
{
    hash_of("api-key-1");
    return store_apikey_create(s, "ci", C.hash, STORE_ROLE_ADMIN, T0, &C.apikey_id, err);
}
static int c_apikey_touch(struct store *s, struct scepter_error *err)
{
    return store_apikey_touch(s, C.apikey_id, T0 + 600, err);
}
static int c_apikey_delete(struct store *s, struct scepter_error *err)
{
    return store_apikey_delete(s, C.apikey_id, err);
}

static int c_outbox_add(struct store *s, struct scepter_error *err)
{
    return store_outbox_add(s, "webhook", "{\"n\":1}", T0, err);
}
static int c_outbox_claim(struct store *s, struct scepter_error *err)
{
    struct store_outbox_item *items = NULL;
    size_t n = 0;
    int rc = store_outbox_claim(s, T0 + 10, 60, 10, &items, &n, err);
    if (rc == 0) {
        cr_assert_geq(n, 1);
        C.outbox_id = items[0].id;
    }
    store_outbox_items_free(items, n);
    return rc;
}
static int c_outbox_retry(struct store *s, struct scepter_error *err)
{
    return store_outbox_retry(s, C.outbox_id, T0 + 100, "HTTP 500", err);
}
static int c_outbox_kill(struct store *s, struct scepter_error *err)
{
    C.dead_id = C.outbox_id;
    return store_outbox_kill(s, C.outbox_id, T0 + 200, "HTTP 500", err);
}
static int c_outbox_dead_retry(struct store *s, struct scepter_error *err)
{
    int64_t moved;
    return store_outbox_dead_retry(s, "webhook", C.dead_id, T0 + 300, &moved, err);
}
static int c_outbox_done(struct store *s, struct scepter_error *err)
{
    return store_outbox_done(s, C.dead_id, err);
}
static void p_dead(struct store *s)
{
    struct scepter_error err;
    struct store_outbox_item *items = NULL;
    size_t n = 0;

    cr_assert_eq(store_outbox_add(s, "webhook", "{\"n\":2}", T0 + 400, &err), 0, "%s", err.msg);
    cr_assert_eq(store_outbox_claim(s, T0 + 400, 60, 10, &items, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    C.dead_id = items[0].id;
    store_outbox_items_free(items, n);
    cr_assert_eq(store_outbox_kill(s, C.dead_id, T0 + 401, "gone", &err), 0, "%s", err.msg);
}
static int c_outbox_dead_delete(struct store *s, struct scepter_error *err)
{
    return store_outbox_dead_delete(s, "webhook", C.dead_id, err);
}

static int c_lease(struct store *s, struct scepter_error *err)
{
    int rc = store_lease(s, "retention", "host-1", T0, 60, err);
    return rc < 0 ? rc : 0;
}

static int c_scep_challenge_create(struct store *s, struct scepter_error *err)
{
    return store_scep_challenge_create(s, "default", "DEV-F4", T0 + 3600, T0, C.challenge, err);
}
static int c_scep_challenge_create_bound(struct store *s, struct scepter_error *err)
{
    return store_scep_challenge_create_bound(s, "default", "DEV-F4", "CN=DEV-F4\n", T0 + 3600, T0,
                                             C.challenge, err);
}

/* console sessions */
#define SESSION_HASH_TAIL "5e55104e5e55104e5e55104e5e55104e5e55104e5e55104e5e55104e"
#define SESSION_HASH      "5e55104f" SESSION_HASH_TAIL
#define KEY_HASH          "0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11"
static int c_ddm_report_save(struct store *s, struct scepter_error *err)
{
    struct store_ddm_status items[2];
    memset(items, 0, sizeof(items));
    items[0].kind = "configurations";
    items[0].identifier = "com.example.identity";
    items[0].server_token = "t1";
    items[0].active = true;
    items[0].valid = "valid";
    items[1] = items[0];
    items[1].kind = "activations";
    items[1].identifier = "com.example.activation";
    struct store_ddm_report r = {"DEV-BASE", "DEV-BASE", true, items, 2, "17.5", "iPhone", NULL};
    return store_ddm_report_save(s, &r, T0 + 5, err);
}
static int c_ddm_handover_add(struct store *s, struct scepter_error *err)
{
    return store_ddm_handover_add(s, "DEV-BASE", 1, "0b4d2c1e-0000-4000-8000-000000000001", T0,
                                  err);
}
static int c_ddm_handover_done(struct store *s, struct scepter_error *err)
{
    return store_ddm_handover_done(s, "DEV-BASE", 1, err);
}
static int c_session_create(struct store *s, struct scepter_error *err)
{
    return store_session_create(s, "5e55104e" SESSION_HASH_TAIL, "csrf-token-1", KEY_HASH,
                                "127.0.0.1", T0, T0 + 3600, err);
}
/* The session the other calls work on (made once; touch, revoke and purge follow in turn). */
static void p_session(struct store *s)
{
    struct scepter_error err;
    int rc = store_session_create(s, "5e55104f" SESSION_HASH_TAIL, "csrf-token-2", KEY_HASH,
                                  "127.0.0.1", T0, T0 + 3600, &err);
    cr_assert(rc == 0 || rc == SCEPTER_ECONFLICT, "%s", err.msg);
}
static int c_session_touch(struct store *s, struct scepter_error *err)
{
    return store_session_touch(s, SESSION_HASH, T0 + 600, 60, err);
}
static int c_session_revoke(struct store *s, struct scepter_error *err)
{
    return store_session_revoke(s, SESSION_HASH, T0 + 600, err);
}
static int c_session_purge(struct store *s, struct scepter_error *err)
{
    int64_t deleted = 0;
    return store_session_purge(s, T0 + 7200, T0, &deleted, err);
}

/* operator accounts and the audit log */
#define OP_HASH         "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
#define OP_SESSION_HASH "0be5104e" SESSION_HASH_TAIL
static int64_t op_id;
static int c_operator_create(struct store *s, struct scepter_error *err)
{
    return store_operator_create(s, "fail-admin", STORE_ROLE_ADMIN, OP_HASH, T0, &op_id, err);
}
/* A second account with a session, which the calls below change in turn. */
static void p_operator(struct store *s)
{
    struct scepter_error err;
    struct store_operator o = {0};
    int64_t id = 0;
    int rc = store_operator_create(s, "fail-viewer", STORE_ROLE_VIEWER, OP_HASH, T0, &id, &err);
    cr_assert(rc == 0 || rc == SCEPTER_ECONFLICT, "%s", err.msg);
    cr_assert_eq(store_operator_get(s, "fail-viewer", &o, &err), 0, "%s", err.msg);
    rc = store_session_create_operator(s, OP_SESSION_HASH, "csrf", o.id, NULL, T0, T0 + 3600, &err);
    cr_assert(rc == 0 || rc == SCEPTER_ECONFLICT, "%s", err.msg);
    store_operator_clear(&o);
}
static int c_operator_update(struct store *s, struct scepter_error *err)
{
    struct store_operator_change ch = {
        .set_role = true, .role = STORE_ROLE_OPERATOR, .password_hash = OP_HASH "x"};
    int64_t revoked = 0;
    return store_operator_update(s, "fail-viewer", &ch, NULL, T0 + 5, NULL, &revoked, err);
}
static int c_operator_signed_in(struct store *s, struct scepter_error *err)
{
    return store_operator_signed_in(s, op_id, T0 + 6, err);
}
static int c_session_create_operator(struct store *s, struct scepter_error *err)
{
    return store_session_create_operator(s, "0be5104f" SESSION_HASH_TAIL, "csrf", op_id, NULL, T0,
                                         T0 + 3600, err);
}
static int c_operator_sessions_revoke(struct store *s, struct scepter_error *err)
{
    int64_t revoked = 0;
    return store_operator_sessions_revoke(s, op_id, NULL, T0 + 7, &revoked, err);
}
static int c_operator_delete(struct store *s, struct scepter_error *err)
{
    return store_operator_delete(s, "fail-viewer", err);
}
static int c_audit_add(struct store *s, struct scepter_error *err)
{
    struct store_audit_entry e = {.at = T0,
                                  .actor_type = (char *)"operator",
                                  .actor_name = (char *)"fail-admin",
                                  .action = (char *)"policy.create",
                                  .route = (char *)"POST /v1/policies"};
    int64_t id = 0;
    return store_audit_add(s, &e, &id, err);
}
static int c_audit_purge(struct store *s, struct scepter_error *err)
{
    int64_t deleted = 0;
    return store_audit_purge(s, T0 + 1, &deleted, err);
}

static int c_scep_cert_add(struct store *s, struct scepter_error *err)
{
    char *dev = NULL;
    hash_of("scep-cert-0A1B");
    struct store_scep_cert c = {.ca = (char *)"default",
                                .serial = (char *)"0A1B",
                                .subject = (char *)"CN=dev,O=Example",
                                .cert_sha256 = C.hash,
                                .kind = (char *)"PKCSReq",
                                .not_before = T0 - 300,
                                .not_after = T0 + 86400};
    int rc = store_scep_cert_add(s, &c, C.challenge, T0 + 10, &dev, err);
    free(dev);
    return rc;
}
static int c_scep_cert_revoke(struct store *s, struct scepter_error *err)
{
    return store_scep_cert_revoke(s, "default", "0A1B", T0 + 20, err);
}

/* In the order they run: later calls use what earlier ones made. */
static const struct fcase {
    const char *name;
    void (*prep)(struct store *s);
    int (*call)(struct store *s, struct scepter_error *err);
} cases[] = {
    {"store_authenticate", NULL, c_authenticate},
    {"store_authenticate (new identity)", p_reauthenticate, c_reauthenticate},
    {"store_token_update", p_token_update, c_token_update},
    {"store_token_update (user channel)", NULL, c_token_update_user},
    {"store_checkout", p_checkout, c_checkout},
    {"store_device_update_facts", p_dev4, c_update_facts},
    {"store_bootstrap_set", NULL, c_bootstrap_set},
    {"store_touch", NULL, c_touch},
    {"store_device_remove", p_remove, c_device_remove},
    {"store_device_allow_reenroll", NULL, c_allow_reenroll},
    {"store_cert_revoke", p_revoke, c_cert_revoke},
    {"store_enroll_token_create", NULL, c_enroll_token_create},
    {"store_enroll_token_use", NULL, c_enroll_token_use},
    {"store_enroll_token_delete", NULL, c_enroll_token_delete},
    {"store_event_add", NULL, c_event_add},
    {"store_enqueue", NULL, c_enqueue},
    {"store_enqueue_each", NULL, c_enqueue_each},
    {"store_enqueue_device", NULL, c_enqueue_device},
    {"store_connect (NotNow)", p_connect, c_connect_notnow},
    {"store_connect (Acknowledged)", NULL, c_connect_ack},
    {"store_connect (Error)", NULL, c_connect_error},
    {"store_connect_idle_many", p_idle_many, c_connect_idle_many},
    {"store_connect_many", p_connect_many, c_connect_many},
    {"store_queue_cancel", NULL, c_queue_cancel},
    {"store_queue_clear", NULL, c_queue_clear},
    {"store_push_token_invalidate", NULL, c_push_token_invalidate},
    {"store_pushcert_put", NULL, c_pushcert_put},
    {"store_group_create", NULL, c_group_create},
    {"store_group_rename", NULL, c_group_rename},
    {"store_group_add", NULL, c_group_add},
    {"store_group_remove", NULL, c_group_remove},
    {"store_policy_save (create)", NULL, c_policy_create},
    {"store_policy_save (update)", NULL, c_policy_update},
    {"store_policy_delete", NULL, c_policy_delete},
    {"store_group_delete", NULL, c_group_delete},
    {"store_apikey_create", NULL, c_apikey_create},
    {"store_apikey_touch", NULL, c_apikey_touch},
    {"store_apikey_delete", NULL, c_apikey_delete},
    {"store_outbox_add", NULL, c_outbox_add},
    {"store_outbox_claim", NULL, c_outbox_claim},
    {"store_outbox_retry", NULL, c_outbox_retry},
    {"store_outbox_kill", NULL, c_outbox_kill},
    {"store_outbox_dead_retry", NULL, c_outbox_dead_retry},
    {"store_outbox_done", NULL, c_outbox_done},
    {"store_outbox_dead_delete", p_dead, c_outbox_dead_delete},
    {"store_lease", NULL, c_lease},
    {"store_scep_challenge_create", NULL, c_scep_challenge_create},
    {"store_scep_challenge_create_bound", NULL, c_scep_challenge_create_bound},
    {"store_session_create", NULL, c_session_create},
    {"store_session_touch", p_session, c_session_touch},
    {"store_session_revoke", p_session, c_session_revoke},
    {"store_session_purge", p_session, c_session_purge},
    {"store_operator_create", NULL, c_operator_create},
    {"store_operator_update", p_operator, c_operator_update},
    {"store_operator_signed_in", NULL, c_operator_signed_in},
    {"store_session_create_operator", NULL, c_session_create_operator},
    {"store_operator_sessions_revoke", NULL, c_operator_sessions_revoke},
    {"store_operator_delete", p_operator, c_operator_delete},
    {"store_audit_add", NULL, c_audit_add},
    {"store_audit_purge", NULL, c_audit_purge},
    {"store_scep_cert_add", NULL, c_scep_cert_add},
    {"store_scep_cert_revoke", NULL, c_scep_cert_revoke},
    {"store_retention", NULL, c_retention},
    {"store_queue_expire", p_expiring, c_queue_expire},
    {"store_device_configured", p_awaiting, c_device_configured},
    {"store_renewal_begin", p_renewal, c_renewal_begin},
    {"store_renewal_bind", NULL, c_renewal_bind},
    {"store_ddm_report_save", NULL, c_ddm_report_save},
    {"store_ddm_handover_add", NULL, c_ddm_handover_add},
    {"store_ddm_handover_done", NULL, c_ddm_handover_done},
};

Test(failures, every_mutating_call_keeps_nothing_when_a_statement_fails)
{
    struct scepter_error err;
    struct store *s = tf_open();

    memset(&C, 0, sizeof(C));
    tf_enroll(s, "DEV-BASE", "iPhone14,2", T0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct fcase *fc = &cases[i];
        char *before, *after;
        int k, rc = -1;

        if (fc->prep)
            fc->prep(s);
        before = snapshot();
        for (k = 1; k <= 60 && rc != 0; k++) {
            store_fail_statement_after(s, k);
            rc = fc->call(s, &err);
            store_fail_statement_after(s, 0);
            if (rc == 0)
                break;
            cr_assert_eq(rc, SCEPTER_ESTORE, "%s, statement %d: %d %s", fc->name, k, rc, err.msg);
            cr_assert_not_null(strstr(err.msg, "injected failure"), "%s, statement %d: %s",
                               fc->name, k, err.msg);
            after = snapshot();
            cr_assert_str_eq(after, before, "%s failed at statement %d and kept a change", fc->name,
                             k);
            free(after);
        }
        cr_assert_eq(rc, 0, "%s never succeeded: %s", fc->name, err.msg);
        /* store_connect_many takes a failed batch again one by one: it may succeed at once. */
        cr_assert(k > 1 || strcmp(fc->name, "store_connect_many") == 0,
                  "%s succeeded although its first statement failed", fc->name);
        after = snapshot();
        cr_assert_str_neq(after, before, "%s changed nothing: the comparison proves nothing",
                          fc->name);
        free(after);
        free(before);
    }
    store_close(s);
}

/* Every call store/store.h declares is either failure-tested above or known not to write:
 * a new call must be added to one of the two lists. */
Test(failures, every_mutating_call_of_store_h_is_listed)
{
    static const char *const readonly[] = {
        "store_open",
        "store_open_at", /* a test hook: store_open stopping at a schema version */
        "store_schema_version",
        "store_ping",
        "store_status_parse",
        "store_cert_check",
        "store_bootstrap_get",
        "store_enrollment_get",
        "store_device_get",
        "store_device_list",
        "store_device_bindings",
        "store_revocations_list",
        "store_enroll_token_list",
        "store_event_list",
        "store_queue_list",
        "store_queue_history",
        "store_result_get",
        "store_queue_depth",
        "store_push_targets",
        "store_repush_candidates",
        "store_pushcert_get",
        "store_pushcert_version",
        "store_group_list",
        "store_group_get",
        "store_group_members",
        "store_targets_resolve",
        "store_policy_get",
        "store_policy_list",
        "store_policies_for_device",
        "store_device_policy_probe",
        "store_user_channels",
        "store_policy_status",
        "store_enrollment_policy_status",
        "store_apikey_check",
        "store_apikey_list",
        "store_outbox_pending",
        "store_outbox_dead_list",
        "store_outbox_dead_count",
        "store_scep_cert_get",
        "store_scep_certs_list",
        "store_scep_challenge_peek",
        "store_session_get",
        "store_unlock_token_get",
        "store_user_channels",
        "store_dashboard_get",
        "store_command_summaries",
        "store_command_targets",
        "store_renewal_candidates",
        "store_identities_expiring",
        "store_role_parse",
        "store_operator_name_check",
        "store_operator_get",
        "store_operator_list",
        "store_operator_admins",
        "store_apikey_auth",
        "store_audit_list",
        "store_user_channels",
        "store_dashboard_get",
        "store_command_summaries",
        "store_command_targets",
        "store_ddm_status_list",
        "store_ddm_status_page",
        "store_policies_for_devices",
        "store_policies_of_device",
        "store_ddm_handover_list",
        "store_ddm_cert_device",
        "store_exec_sql", /* a test hook */
    };
    char *path = tu_source_path("store/store.h");
    char *h = (char *)tu_read(path, NULL);
    size_t declared = 0;

    for (char *line = h; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char name[80];
        bool found = false;
        if (sscanf(line, "int %79[a-z_](", name) != 1 || strncmp(name, "store_", 6) != 0)
            continue;
        declared++;
        for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++)
            found = found || strcmp(readonly[i], name) == 0;
        size_t len = strlen(name);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            found = found || (strncmp(cases[i].name, name, len) == 0 &&
                              (cases[i].name[len] == '\0' || cases[i].name[len] == ' '));
        cr_assert(found, "%s (store/store.h) is neither failure-tested nor listed as read-only",
                  name);
    }
    cr_assert_gt(declared, 60, "store/store.h was not read: %zu calls", declared);
    free(h);
    free(path);
}
