/*
 * store/store.c — opening and closing a store: choosing the backend from the URL, connecting
 * and applying the embedded migrations; schema version and ping; the platform and status
 * vocabularies; and the test hooks (failure injection, raw SQL).
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

int store_open(const char *url, struct store **out, struct scepter_error *err)
{
    return store_open_at(url, 0, out, err);
}

int store_open_at(const char *url, int version, struct store **out, struct scepter_error *err)
{
    struct store *s = NULL;
    const struct store_migration *mig;
    const char *target;
    size_t nmig;
    int rc;

    *out = NULL;
    scepter_err_clear(err);
    if (url == NULL || *url == '\0')
        return scepter_err(err, SCEPTER_EINVAL, "store",
                           "store: empty URL (want sqlite:PATH or postgres://...)");
    s = xcalloc(1, sizeof(*s));
    s->url = xstrdup(url);
    if (str_has_prefix(url, "sqlite:")) {
        target = url + strlen("sqlite:");
        if (*target == '\0') {
            rc = scepter_err(err, SCEPTER_EINVAL, "store", "store: sqlite: needs a file path");
            goto out;
        }
        s->ops = &store_ops_sqlite;
        mig = store_migrations_sqlite;
        nmig = store_migrations_sqlite_len;
    } else if (str_has_prefix(url, "postgres://") || str_has_prefix(url, "postgresql://")) {
        target = url;
        s->ops = &store_ops_postgres;
        s->pg = true;
        mig = store_migrations_postgres;
        nmig = store_migrations_postgres_len;
    } else {
        /* Never echo the URL: it may hold a password.  The scheme is enough. */
        const char *colon = strchr(url, ':');
        int len = colon ? (int)(colon - url) : (int)strlen(url);
        rc = scepter_err(err, SCEPTER_EINVAL, "store",
                         "store: unknown backend '%.*s' (want sqlite:PATH or postgres://...)",
                         len > 16 ? 16 : len, url);
        goto out;
    }
    if (version > 0 && (size_t)version < nmig)
        nmig = (size_t)version;
    s->migrations_len = (int)nmig;
    if ((rc = s->ops->connect(s, target, err)) != 0)
        goto out;
    rc = s->ops->migrate(s, mig, nmig, err);
out:
    if (rc != 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->in_tx)
        db_rollback(s);
    db_cache_clear(s);
    if (s->conn)
        s->ops->disconnect(s);
    free(s->url);
    free(s);
}

const char *store_backend(const struct store *s)
{
    return s->ops->name;
}

static const struct store_sql SQL_VERSION = {
    "schema_version", "SELECT coalesce(max(version), 0) FROM schema_version", NULL, NULL};
static const struct store_sql SQL_PING = {"ping", "SELECT 1", NULL, NULL};

static int schema_version(struct store *s, int *db_version, struct scepter_error *err)
{
    struct dbres r;
    int rc = db_query(s, &SQL_VERSION, NULL, 0, &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        *db_version = (int)db_int(&r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ESTORE, NULL, "store: no schema version");
    }
    db_res_clear(&r);
    return rc;
}

int store_schema_version(struct store *s, int *db_version, int *binary_version,
                         struct scepter_error *err)
{
    int rc;

    *binary_version = s->migrations_len;
    STORE_CALL(s, rc, err)
    rc = schema_version(s, db_version, err);
    return rc;
}

int store_ping(struct store *s, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    rc = db_exec(s, &SQL_PING, NULL, 0, NULL, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Vocabularies                                                                              */

static const char *const platform_names[] = {"unknown", "macos",   "ios",     "ipados",
                                             "tvos",    "watchos", "visionos"};

const char *store_platform_name(enum store_platform p)
{
    if ((unsigned)p >= ARRAY_LEN(platform_names))
        return "unknown";
    return platform_names[p];
}

enum store_platform store_platform_parse(const char *name)
{
    size_t i;

    for (i = 1; name && i < ARRAY_LEN(platform_names); i++) {
        if (str_eq_nocase(name, platform_names[i]))
            return (enum store_platform)i;
    }
    return STORE_PLATFORM_UNKNOWN;
}

/* Apple's model identifiers ("iPhone14,2", "MacBookPro18,3") and marketing names ("iPhone",
 * "MacBook Pro", "Apple TV"), by prefix.  Longer prefixes first where they overlap. */
static const struct {
    const char *prefix;
    enum store_platform platform;
} platform_prefixes[] = {
    {"iPhone", STORE_PLATFORM_IOS},
    {"iPod", STORE_PLATFORM_IOS},
    {"iPad", STORE_PLATFORM_IPADOS},
    {"AppleTV", STORE_PLATFORM_TVOS},
    {"Apple TV", STORE_PLATFORM_TVOS},
    {"Watch", STORE_PLATFORM_WATCHOS},
    {"Apple Watch", STORE_PLATFORM_WATCHOS},
    {"RealityDevice", STORE_PLATFORM_VISIONOS},
    {"Apple Vision", STORE_PLATFORM_VISIONOS},
    {"iMac", STORE_PLATFORM_MACOS},
    {"Mac", STORE_PLATFORM_MACOS}, /* Mac14,2, MacBookPro18,3, Macmini9,1, Mac mini, ... */
    {"VirtualMac", STORE_PLATFORM_MACOS},
    {"Xserve", STORE_PLATFORM_MACOS},
};

static enum store_platform guess_one(const char *s)
{
    size_t i;

    if (s == NULL)
        return STORE_PLATFORM_UNKNOWN;
    for (i = 0; i < ARRAY_LEN(platform_prefixes); i++) {
        if (str_has_prefix(s, platform_prefixes[i].prefix))
            return platform_prefixes[i].platform;
    }
    return STORE_PLATFORM_UNKNOWN;
}

enum store_platform store_platform_guess(const char *product_name, const char *model,
                                         const char *model_name)
{
    enum store_platform p = guess_one(product_name);

    if (p == STORE_PLATFORM_UNKNOWN)
        p = guess_one(model);
    if (p == STORE_PLATFORM_UNKNOWN)
        p = guess_one(model_name);
    return p;
}

static const char *const status_names[] = {"Idle", "Acknowledged", "Error", "CommandFormatError",
                                           "NotNow"};

const char *store_status_name(enum store_status st)
{
    if ((unsigned)st >= ARRAY_LEN(status_names))
        return "unknown";
    return status_names[st];
}

int store_status_parse(const char *name)
{
    size_t i;

    for (i = 0; name && i < ARRAY_LEN(status_names); i++) {
        if (strcmp(name, status_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Test hooks                                                                                */

void store_fail_after(struct store *s, int n)
{
    s->fail_calls = n > 0 ? n : 0;
}

void store_fail_statement_after(struct store *s, int n)
{
    s->fail_stmts = n > 0 ? n : 0;
}

int store_exec_sql(struct store *s, const char *sql, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    rc = s->ops->script(s, sql, err);
    return rc;
}
