/*
 * store/session.c — web console sessions.  The session id a browser holds in its cookie is
 * never stored: a session is found by the SHA-256 of its id.  Each row keeps the CSRF token
 * the console echoes in X-CSRF-Token, the SHA-256 of the API key that signed in (so deleting
 * or rotating the key ends the session), when it was made, when it ends (the absolute
 * lifetime), when it was last used (the idle timeout counts from there) and when it was
 * revoked (sign-out).  last_seen is written at most once per `granularity` seconds a
 * session, so using a session stays a read most of the time.
 */
#include "store/store_int.h"

#include <string.h>

#include "common/str.h"

#define MAX_TOKEN_LEN 128
#define MAX_PEER_LEN  64

static const struct store_sql SQL_SESSION_CREATE = {
    "session_create",
    "INSERT INTO sessions (hash, csrf_token, key_hash, peer, created, expires, last_seen)"
    " VALUES ($1, $2, $3, $4, $5, $6, $5) ON CONFLICT (hash) DO NOTHING",
    NULL, NULL};

int store_session_create(struct store *s, const char *hash_hex, const char *csrf_token,
                         const char *key_hash_hex, const char *peer, int64_t now, int64_t expires,
                         struct scepter_error *err)
{
    char hash[65], key_hash[65];
    int64_t changes = 0;
    int rc;

    if ((rc = store_norm_sha256(hash_hex, hash, "hash", err)) != 0 ||
        (rc = store_norm_sha256(key_hash_hex, key_hash, "key_hash", err)) != 0 ||
        (rc = store_check_str(csrf_token, MAX_TOKEN_LEN, "csrf_token", err)) != 0)
        return rc;
    if (peer != NULL && strlen(peer) > MAX_PEER_LEN)
        return scepter_err(err, SCEPTER_EINVAL, "peer", "peer: at most %d characters",
                           MAX_PEER_LEN);
    if (expires <= now)
        return scepter_err(err, SCEPTER_EINVAL, "expires", "expires: must be after now");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash),     P_TEXT(csrf_token),
                          P_TEXT(key_hash), P_TEXT(peer ? peer : ""),
                          P_INT(now),       P_INT(expires)};
        rc = db_exec(s, &SQL_SESSION_CREATE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ECONFLICT, "hash", "hash: this session exists already");
    }
    return rc;
}

static const struct store_sql SQL_SESSION_CREATE_OPERATOR = {
    "session_create_operator",
    "INSERT INTO sessions (hash, csrf_token, key_hash, peer, created, expires, last_seen,"
    " operator_id) VALUES ($1, $2, '', $3, $4, $5, $4, $6) ON CONFLICT (hash) DO NOTHING",
    NULL, NULL};

int store_session_create_operator(struct store *s, const char *hash_hex, const char *csrf_token,
                                  int64_t operator_id, const char *peer, int64_t now,
                                  int64_t expires, struct scepter_error *err)
{
    char hash[65];
    int64_t changes = 0;
    int rc;

    if ((rc = store_norm_sha256(hash_hex, hash, "hash", err)) != 0 ||
        (rc = store_check_str(csrf_token, MAX_TOKEN_LEN, "csrf_token", err)) != 0)
        return rc;
    if (peer != NULL && strlen(peer) > MAX_PEER_LEN)
        return scepter_err(err, SCEPTER_EINVAL, "peer", "peer: at most %d characters",
                           MAX_PEER_LEN);
    if (expires <= now)
        return scepter_err(err, SCEPTER_EINVAL, "expires", "expires: must be after now");
    if (operator_id <= 0)
        return scepter_err(err, SCEPTER_EINVAL, "operator_id", "operator_id: not an account");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(csrf_token), P_TEXT(peer ? peer : ""),
                          P_INT(now),   P_INT(expires),     P_INT(operator_id)};
        rc = db_exec(s, &SQL_SESSION_CREATE_OPERATOR, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ECONFLICT, "hash", "hash: this session exists already");
    }
    return rc;
}

/* The stored key that signed in, when it still exists (NULL: the bootstrap key, or deleted),
 * or the account that did, with their roles now. */
static const struct store_sql SQL_SESSION_GET = {
    "session_get",
    "SELECT s.csrf_token, s.key_hash, s.created, s.expires, s.last_seen, s.revoked, a.id,"
    " s.operator_id, o.name, o.role, o.disabled, a.name, a.role FROM sessions s"
    " LEFT JOIN apikeys a ON a.hash = s.key_hash AND s.operator_id IS NULL"
    " LEFT JOIN operators o ON o.id = s.operator_id WHERE s.hash = $1",
    NULL, NULL};

int store_session_get(struct store *s, const char *hash_hex, struct store_session *out,
                      struct scepter_error *err)
{
    char hash[65];
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if (store_norm_sha256(hash_hex, hash, "hash", err) != 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "session", "no such session");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash)};
        rc = db_query(s, &SQL_SESSION_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            str_copy(out->csrf_token, sizeof(out->csrf_token), db_text(&r, 0));
            str_copy(out->key_hash, sizeof(out->key_hash), db_text(&r, 1));
            out->created = db_int(&r, 2);
            out->expires = db_int(&r, 3);
            out->last_seen = db_int(&r, 4);
            out->revoked = db_int(&r, 5);
            out->apikey_id = db_isnull(&r, 6) ? 0 : db_int(&r, 6);
            out->operator_id = db_isnull(&r, 7) ? 0 : db_int(&r, 7);
            if (out->operator_id != 0 && !db_isnull(&r, 8)) {
                str_copy(out->actor, sizeof(out->actor), db_text(&r, 8));
                if (store_role_parse(db_text(&r, 9), &out->role) != 0)
                    out->role = STORE_ROLE_NONE;
                out->operator_disabled = db_int(&r, 10) != 0;
            } else if (out->operator_id != 0) {
                out->operator_disabled = true; /* the account is gone */
            } else if (out->apikey_id != 0) {
                str_copy(out->actor, sizeof(out->actor), db_text(&r, 11));
                if (store_role_parse(db_text(&r, 12), &out->role) != 0)
                    out->role = STORE_ROLE_NONE;
            }
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "session", "no such session");
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_SESSION_TOUCH = {
    "session_touch",
    "UPDATE sessions SET last_seen = $2 WHERE hash = $1 AND revoked = 0 AND last_seen <= $2 - $3"
    " AND last_seen < $2",
    NULL, NULL};

int store_session_touch(struct store *s, const char *hash_hex, int64_t now, int64_t granularity,
                        struct scepter_error *err)
{
    char hash[65];
    int rc;

    if ((rc = store_norm_sha256(hash_hex, hash, "hash", err)) != 0)
        return rc;
    if (granularity < 0)
        granularity = 0;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_INT(now), P_INT(granularity)};
        rc = db_exec(s, &SQL_SESSION_TOUCH, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

static const struct store_sql SQL_SESSION_REVOKE = {
    "session_revoke", "UPDATE sessions SET revoked = $2 WHERE hash = $1 AND revoked = 0", NULL,
    NULL};

int store_session_revoke(struct store *s, const char *hash_hex, int64_t now,
                         struct scepter_error *err)
{
    char hash[65];
    int64_t changes = 0;
    int rc;

    if (store_norm_sha256(hash_hex, hash, "hash", err) != 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "session", "no such session");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_INT(now > 0 ? now : 1)};
        rc = db_exec(s, &SQL_SESSION_REVOKE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "session",
                             "no such session (or it was revoked already)");
    }
    return rc;
}

static const struct store_sql SQL_SESSION_PURGE = {
    "session_purge", "DELETE FROM sessions WHERE expires <= $1 OR last_seen < $2 OR revoked > 0",
    NULL, NULL};

int store_session_purge(struct store *s, int64_t now, int64_t idle_before, int64_t *deleted,
                        struct scepter_error *err)
{
    int rc;

    *deleted = 0;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(now), P_INT(idle_before)};
        rc = db_exec(s, &SQL_SESSION_PURGE, p, ARRAY_LEN(p), deleted, err);
    }
    return rc;
}
