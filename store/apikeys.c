/*
 * store/apikeys.c — operator API keys.  Only the SHA-256 of a key is stored (lower-case
 * hex); a key is checked by looking its hash up, and listed by the first eight hex digits of
 * its hash so operators can tell keys apart without the store ever holding one.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

void store_apikeys_free(struct store_apikey *k, size_t n)
{
    size_t i;

    if (k == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(k[i].name);
        free(k[i].hash_prefix);
    }
    free(k);
}

static const struct store_sql SQL_APIKEY_CREATE = {
    "apikey_create",
    "INSERT INTO apikeys (name, hash, created, role) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (hash) DO NOTHING RETURNING id",
    NULL, NULL};

int store_apikey_create(struct store *s, const char *name, const char *hash_hex,
                        enum store_role role, int64_t now, int64_t *id, struct scepter_error *err)
{
    char hash[65];
    struct dbres r;
    int rc;

    *id = 0;
    if ((rc = store_check_str(name, 255, "name", err)) != 0)
        return rc;
    if ((rc = store_norm_sha256(hash_hex, hash, "hash", err)) != 0)
        return rc;
    if (role < STORE_ROLE_VIEWER || role > STORE_ROLE_ADMIN)
        return scepter_err(err, SCEPTER_EINVAL, "role", "role: one of admin, operator, viewer");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(name), P_TEXT(hash), P_INT(now), P_TEXT(store_role_name(role))};
        rc = db_query(s, &SQL_APIKEY_CREATE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "hash", "hash: this key exists already");
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_APIKEY_CHECK = {
    "apikey_check", "SELECT id FROM apikeys WHERE hash = $1", NULL, NULL};

int store_apikey_check(struct store *s, const char *hash_hex, int64_t *id,
                       struct scepter_error *err)
{
    char hash[65];
    struct dbres r;
    int rc;

    *id = 0;
    if (store_norm_sha256(hash_hex, hash, "hash", err) != 0)
        return scepter_err(err, SCEPTER_EAUTH, NULL, "unknown API key");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash)};
        rc = db_query(s, &SQL_APIKEY_CHECK, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_EAUTH, NULL, "unknown API key");
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_APIKEY_AUTH = {
    "apikey_auth", "SELECT id, role, name FROM apikeys WHERE hash = $1", NULL, NULL};

int store_apikey_auth(struct store *s, const char *hash_hex, int64_t *id, enum store_role *role,
                      char **name, struct scepter_error *err)
{
    char hash[65];
    struct dbres r;
    int rc;

    *id = 0;
    *role = STORE_ROLE_NONE;
    *name = NULL;
    if (store_norm_sha256(hash_hex, hash, "hash", err) != 0)
        return scepter_err(err, SCEPTER_EAUTH, NULL, "unknown API key");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash)};
        rc = db_query(s, &SQL_APIKEY_AUTH, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            if (store_role_parse(db_text(&r, 1), role) != 0)
                *role = STORE_ROLE_NONE;
            free(*name);
            *name = db_strdup(&r, 2);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_EAUTH, NULL, "unknown API key");
        }
        db_res_clear(&r);
    }
    return rc;
}

/* Written at most once a minute per key: checking a key stays a read. */
static const struct store_sql SQL_APIKEY_TOUCH = {
    "apikey_touch", "UPDATE apikeys SET last_used = $2 WHERE id = $1 AND last_used < $2 - 60", NULL,
    NULL};

int store_apikey_touch(struct store *s, int64_t id, int64_t now, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id), P_INT(now)};
        rc = db_exec(s, &SQL_APIKEY_TOUCH, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

static const struct store_sql SQL_APIKEY_LIST = {
    "apikey_list",
    "SELECT id, name, substr(hash, 1, 8), created, last_used, role FROM apikeys ORDER BY id", NULL,
    NULL};

static int apikey_list(struct store *s, struct store_apikey **out, size_t *n,
                       struct scepter_error *err)
{
    struct store_apikey *k = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_APIKEY_LIST, NULL, 0, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            k = xreallocarray(k, cap, sizeof(*k));
        }
        k[count].id = db_int(&r, 0);
        k[count].name = db_strdup(&r, 1);
        k[count].hash_prefix = db_strdup(&r, 2);
        k[count].created = db_int(&r, 3);
        k[count].last_used = db_int(&r, 4);
        if (store_role_parse(db_text(&r, 5), &k[count].role) != 0)
            k[count].role = STORE_ROLE_NONE;
        count++;
    }
    db_res_clear(&r);
    if (rc < 0) {
        store_apikeys_free(k, count);
        return rc;
    }
    *out = k;
    *n = count;
    return 0;
}

int store_apikey_list(struct store *s, struct store_apikey **out, size_t *n,
                      struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    rc = apikey_list(s, out, n, err);
    return rc;
}

static const struct store_sql SQL_APIKEY_DELETE = {"apikey_delete",
                                                   "DELETE FROM apikeys WHERE id = $1", NULL, NULL};

int store_apikey_delete(struct store *s, int64_t id, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id)};
        rc = db_exec(s, &SQL_APIKEY_DELETE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "API key %lld does not exist",
                             (long long)id);
    }
    return rc;
}
