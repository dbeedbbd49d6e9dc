/*
 * The store conformance suite's fixture: one fresh database per test, on the backend the
 * environment names.
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "support/support.h"

/* Per-test state: each Criterion test runs in its own process. */
static char *test_dir;
static char *test_url;
static char *test_schema;
static char *pg_base;

bool tf_pg(void)
{
    const char *b = getenv("SCEPTER_STORE_BACKEND");
    return b != NULL && strcmp(b, "postgres") == 0;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

void *tf_pg_admin(void)
{
    PGconn *c;

    cr_assert_not_null(pg_base, "the pg fixture is not running");
    c = PQconnectdb(pg_base);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

char *tf_pg_query(void *conn, const char *sql)
{
    PGresult *r = PQexec((PGconn *)conn, sql);
    char *v = NULL;

    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage((PGconn *)conn));
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void tf_setup(void)
{
    static unsigned counter;

    log_init(LOG_LVL_WARN, LOG_FMT_TEXT);
    if (tf_pg()) {
        PGconn *c;
        char *sql;

        pg_base = tu_pg_url();
        cr_assert_not_null(pg_base, "SCEPTER_STORE_BACKEND=postgres needs the pg fixture");
        test_schema = xasprintf("t_%ld_%u", (long)getpid(), ++counter);
        c = tf_pg_admin();
        sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", test_schema,
                        test_schema);
        free(tf_pg_query(c, sql));
        free(sql);
        PQfinish(c);
        test_url = xasprintf("%s%soptions=-csearch_path%%3D%s", pg_base,
                             strchr(pg_base, '?') ? "&" : "?", test_schema);
    } else {
        test_dir = tu_tmpdir();
        test_url = xasprintf("sqlite:%s/db/scepter.db", test_dir);
    }
}

void tf_teardown(void)
{
    if (test_schema) {
        PGconn *c = PQconnectdb(pg_base);
        PQsetNoticeProcessor(c, quiet, NULL);
        if (PQstatus(c) == CONNECTION_OK) {
            char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", test_schema);
            PQclear(PQexec(c, sql));
            free(sql);
        }
        PQfinish(c);
    }
    if (test_dir)
        tu_rmtree(test_dir);
    free(test_dir);
    free(test_url);
    free(test_schema);
    free(pg_base);
    test_dir = test_url = test_schema = pg_base = NULL;
}

const char *tf_url(void)
{
    return test_url;
}

struct store *tf_open(void)
{
    struct scepter_error err;
    struct store *s = NULL;

    cr_assert_eq(store_open(test_url, &s, &err), 0, "store_open: %s", err.msg);
    cr_assert_str_eq(store_backend(s), tf_pg() ? "postgres" : "sqlite");
    return s;
}

void tf_hash(const char *seed, char out[65])
{
    unsigned char d[CRYPTO_SHA256_LEN];

    crypto_sha256(seed, strlen(seed), d);
    hex_encode_to(d, sizeof(d), out, false);
}

void tf_authenticate(struct store *s, const char *udid, const char *product, int64_t now)
{
    struct scepter_error err;
    char hash[65], seed[300];

    snprintf(seed, sizeof(seed), "cert-%s", udid);
    tf_hash(seed, hash);
    struct store_authenticate a = {
        .device_id = udid,
        .type = STORE_ENROLL_DEVICE,
        .topic = "com.apple.mgmt.External.test",
        .cert_hash = hash,
        .facts = {.serial_number = "C02TEST", .product_name = product, .os_version = "17.1"},
    };
    cr_assert_eq(store_authenticate(s, &a, now, NULL, &err), 0, "authenticate %s: %s", udid,
                 err.msg);
}

void tf_enroll_numbered(struct store *s, int n, char (*names)[16], const char **ids)
{
    for (int i = 0; i < n; i++) {
        snprintf(names[i], 16, "D%02d", i);
        ids[i] = names[i];
        tf_enroll(s, names[i], "iPhone14,2", T0);
    }
}

void tf_finished_history(struct store *s, int n, char (*names)[16], const char **ids,
                         unsigned commands, char last[37])
{
    struct scepter_error err;
    size_t cancelled;

    tf_enroll_numbered(s, n, names, ids);
    for (unsigned k = 0; k < commands; k++) {
        struct store_command c;
        tf_uuid(1000 + k, last);
        c = tf_cmd(last, "ProfileList", 0);
        cr_assert_eq(store_enqueue(s, &c, ids, (size_t)n, T0 + 1, &err), 0, "%s", err.msg);
    }
    for (int i = 0; i < n; i++)
        cr_assert_eq(store_queue_clear(s, names[i], &cancelled, &err), 0, "%s", err.msg);
}

void tf_enroll(struct store *s, const char *udid, const char *product, int64_t now)
{
    struct scepter_error err;
    unsigned char token[32];
    bool first = false;

    tf_authenticate(s, udid, product, now);
    memset(token, 0xab, sizeof(token));
    memcpy(token, udid, strlen(udid) < sizeof(token) ? strlen(udid) : sizeof(token));
    struct store_token_update t = {
        .enrollment_id = udid,
        .device_id = udid,
        .type = STORE_ENROLL_DEVICE,
        .topic = "com.apple.mgmt.External.test",
        .token = token,
        .token_len = sizeof(token),
        .push_magic = "magic-1",
    };
    cr_assert_eq(store_token_update(s, &t, now, &first, &err), 0, "token update %s: %s", udid,
                 err.msg);
    cr_assert(first);
}

void tf_uuid(unsigned n, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012X", n);
}

/* The store never parses a command's plist; one shape serves every test command. */
static const char cmd_plist[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
    "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict>"
    "</dict></plist>\n";

struct store_command tf_cmd(const char *uuid, const char *request_type, int priority)
{
    struct store_command c = {.request_type = request_type,
                              .plist = (const unsigned char *)cmd_plist,
                              .plist_len = sizeof(cmd_plist) - 1,
                              .priority = priority};
    snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
    return c;
}

int tf_connect(struct store *s, const char *enrollment, enum store_status st, const char *uuid,
               int64_t now, struct store_next *next, enum store_report_outcome *outcome)
{
    struct scepter_error err;
    char hash[65], seed[300];
    const char *colon = strchr(enrollment, ':');
    char *device = colon ? xstrndup(enrollment, (size_t)(colon - enrollment)) : xstrdup(enrollment);
    static const char raw[] = "<plist><dict><key>Status</key></dict></plist>";

    snprintf(seed, sizeof(seed), "cert-%s", device);
    tf_hash(seed, hash);
    struct store_report rep = {
        .enrollment_id = enrollment,
        .device_id = device,
        .cert_hash = hash,
        .status = st,
        .command_uuid = st == STORE_STATUS_IDLE ? NULL : uuid,
        .raw = st == STORE_STATUS_IDLE ? NULL : (const unsigned char *)raw,
        .raw_len = st == STORE_STATUS_IDLE ? 0 : sizeof(raw) - 1,
        .error_chain_json = st == STORE_STATUS_ERROR ? "[{\"ErrorCode\":12021}]" : NULL,
    };
    int rc = store_connect(s, &rep, now, next, outcome, &err);
    free(device);
    cr_assert_geq(rc, 0, "connect %s %s: %s", enrollment, store_status_name(st), err.msg);
    return rc;
}

int tf_pg_sh(const char *fmt, ...)
{
    va_list ap;
    char *cmd = NULL;
    int rc;

    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&cmd, fmt, ap), 0);
    va_end(ap);
    if (getuid() == 0)
        rc = tu_sh(NULL, "runuser -u postgres -- %s", cmd);
    else
        rc = tu_sh(NULL, "%s", cmd);
    free(cmd);
    return rc;
}
