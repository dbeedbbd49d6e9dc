/*
 * store/push.c — what the APNs side needs from the store: push targets (token, topic,
 * PushMagic) of many enrollments in one query, marking a token dead when APNs says so (a later
 * TokenUpdate revives it), the enrollments the periodic re-push should wake, and the push
 * certificate itself with a version that moves on every change so pollers can hot-reload.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/xmalloc.h"

void store_push_target_clear(struct store_push_target *t)
{
    if (t == NULL)
        return;
    free(t->enrollment_id);
    free(t->topic);
    free(t->token_hex);
    free(t->push_magic);
    memset(t, 0, sizeof(*t));
}

void store_push_targets_free(struct store_push_target *t, size_t n)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(t[i].enrollment_id);
        free(t[i].topic);
        free(t[i].token_hex);
        free(t[i].push_magic);
    }
    free(t);
}

static const struct store_sql SQL_PUSH_TARGETS = {
    "push_targets",
    "SELECT id, topic, push_token, push_magic FROM enrollments"
    " WHERE id IN {ARR1} AND enabled AND token_valid AND push_token IS NOT NULL ORDER BY id",
    NULL, NULL};

static int push_targets(struct store *s, const char *const *ids, size_t n,
                        struct store_push_target **out, size_t *nout, struct scepter_error *err)
{
    struct store_push_target *t = NULL;
    size_t count = 0, cap = 0;
    struct dbv p[] = {P_TEXTS(ids, n)};
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_PUSH_TARGETS, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        const unsigned char *tok;
        size_t len;

        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            t = xreallocarray(t, cap, sizeof(*t));
        }
        tok = db_blob(&r, 2, &len);
        t[count].enrollment_id = db_strdup(&r, 0);
        t[count].topic = db_strdup(&r, 1);
        t[count].token_hex = hex_encode(tok, len, false);
        t[count].push_magic = db_strdup(&r, 3);
        count++;
    }
    db_res_clear(&r);
    if (rc < 0) {
        store_push_targets_free(t, count);
        return rc;
    }
    *out = t;
    *nout = count;
    return 0;
}

int store_push_targets(struct store *s, const char *const *enrollment_ids, size_t n,
                       struct store_push_target **out, size_t *nout, struct scepter_error *err)
{
    size_t i;
    int rc;

    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if ((rc = store_check_str(enrollment_ids[i], 512, "enrollment_ids", err)) != 0)
            return rc;
    }
    STORE_CALL(s, rc, err)
    rc = push_targets(s, enrollment_ids, n, out, nout, err);
    return rc;
}

static const struct store_sql SQL_TOKEN_INVALIDATE = {
    "push_token_invalidate",
    "UPDATE enrollments SET token_valid = false, token_invalid_at = $3"
    " WHERE id = $1 AND push_token = $2 AND token_valid",
    NULL, NULL};

int store_push_token_invalidate(struct store *s, const char *enrollment_id, const char *token_hex,
                                int64_t now, struct scepter_error *err)
{
    unsigned char *tok = NULL;
    size_t len = 0;
    int rc;

    if ((rc = store_check_str(enrollment_id, 512, "enrollment_id", err)) != 0)
        return rc;
    if (token_hex == NULL || *token_hex == '\0' ||
        hex_decode(token_hex, strlen(token_hex), &tok, &len) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "token", "token: want the hex of a device token");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(enrollment_id), P_BLOB(tok, len), P_INT(now)};
        rc = db_exec(s, &SQL_TOKEN_INVALIDATE, p, ARRAY_LEN(p), NULL, err);
    }
    free(tok);
    return rc;
}

static const struct store_sql SQL_REPUSH = {
    "repush_candidates",
    "SELECT e.id FROM enrollments e WHERE e.enabled AND e.token_valid AND e.last_seen < $1"
    " AND EXISTS (SELECT 1 FROM queue q WHERE q.enrollment_id = e.id AND q.state = 0)"
    " ORDER BY e.last_seen, e.id LIMIT $2",
    NULL, NULL};

int store_repush_candidates(struct store *s, int64_t seen_before, size_t limit, char ***ids,
                            size_t *n, struct scepter_error *err)
{
    char **v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int rc;

    *ids = NULL;
    *n = 0;
    if (limit == 0)
        return 0;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(seen_before), P_INT(limit > INT64_MAX ? INT64_MAX : limit)};
        store_strv_free(v, count);
        v = NULL;
        count = cap = 0;
        rc = db_query(s, &SQL_REPUSH, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            store_strv_push(&v, &count, &cap, db_strdup(&r, 0));
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc < 0) {
        store_strv_free(v, count);
        return rc;
    }
    *ids = v;
    *n = count;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The push certificate                                                                      */

void store_pushcert_clear(struct store_pushcert *p)
{
    if (p == NULL)
        return;
    free(p->topic);
    free(p->cert_pem);
    free(p->key_pem);
    memset(p, 0, sizeof(*p));
}

static const struct store_sql SQL_OTHER_TOPIC = {
    "pushcert_other_topic",
    "SELECT topic, count(*) FROM enrollments WHERE enabled AND topic <> $1"
    " GROUP BY topic ORDER BY count(*) DESC, topic LIMIT 1",
    NULL, NULL};

static const struct store_sql SQL_PUSHCERT_PUT = {
    "pushcert_put",
    "INSERT INTO pushcerts (id, topic, cert_pem, key_pem, version, not_after, updated)"
    " VALUES (1, $1, $2, $3, 1, $4, $5)"
    " ON CONFLICT (id) DO UPDATE SET topic = excluded.topic, cert_pem = excluded.cert_pem,"
    " key_pem = excluded.key_pem, not_after = excluded.not_after, updated = excluded.updated,"
    " version = pushcerts.version + CASE WHEN pushcerts.topic <> excluded.topic"
    "  OR pushcerts.cert_pem <> excluded.cert_pem OR pushcerts.key_pem <> excluded.key_pem"
    "  OR pushcerts.not_after <> excluded.not_after THEN 1 ELSE 0 END",
    NULL, NULL};

static int pushcert_put(struct store *s, const struct store_pushcert *pc, bool force, int64_t now,
                        struct scepter_error *err)
{
    struct dbres r = {0};
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        goto out;
    {
        struct dbv p[] = {P_TEXT(pc->topic)};
        if ((rc = db_query(s, &SQL_OTHER_TOPIC, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    if ((rc = db_next(&r, err)) < 0)
        goto out;
    if (rc == 1 && !force) {
        rc = scepter_err(err, SCEPTER_ECONFLICT, "topic",
                         "topic: %lld enrolled device(s) use topic %s, not %s; a new topic "
                         "strands them until they re-enroll (force to replace anyway)",
                         (long long)db_int(&r, 1), db_text(&r, 0), pc->topic);
        goto out;
    }
    db_res_clear(&r);
    {
        struct dbv p[] = {P_TEXT(pc->topic), P_TEXT(pc->cert_pem), P_TEXT(pc->key_pem),
                          P_INT(pc->not_after), P_INT(now)};
        if ((rc = db_exec(s, &SQL_PUSHCERT_PUT, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    rc = db_commit(s, err);
out:
    db_res_clear(&r);
    return rc;
}

int store_pushcert_put(struct store *s, const struct store_pushcert *p, bool force, int64_t now,
                       struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(p->topic, 255, "topic", err)) != 0)
        return rc;
    if (p->cert_pem == NULL || *p->cert_pem == '\0')
        return scepter_err(err, SCEPTER_EINVAL, "cert", "cert: missing");
    if (p->key_pem == NULL || *p->key_pem == '\0')
        return scepter_err(err, SCEPTER_EINVAL, "key", "key: missing");
    STORE_CALL(s, rc, err)
    rc = pushcert_put(s, p, force, now, err);
    return rc;
}

static const struct store_sql SQL_PUSHCERT_GET = {
    "pushcert_get",
    "SELECT topic, cert_pem, key_pem, version, not_after, updated FROM pushcerts WHERE id = 1",
    NULL, NULL};

int store_pushcert_get(struct store *s, struct store_pushcert *out, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    STORE_CALL(s, rc, err)
    {
        store_pushcert_clear(out);
        rc = db_query(s, &SQL_PUSHCERT_GET, NULL, 0, &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            out->topic = db_strdup(&r, 0);
            out->cert_pem = db_strdup(&r, 1);
            out->key_pem = db_strdup(&r, 2);
            out->version = db_int(&r, 3);
            out->not_after = db_int(&r, 4);
            out->updated = db_int(&r, 5);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "pushcert", "no push certificate is stored");
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_PUSHCERT_VERSION = {
    "pushcert_version", "SELECT coalesce(max(version), 0) FROM pushcerts", NULL, NULL};

int store_pushcert_version(struct store *s, int64_t *version, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *version = 0;
    STORE_CALL(s, rc, err)
    {
        rc = db_query(s, &SQL_PUSHCERT_VERSION, NULL, 0, &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *version = db_int(&r, 0);
            rc = 0;
        }
        db_res_clear(&r);
    }
    return rc;
}
