/*
 * store/operators.c — operator accounts and their roles.  An account has a unique name, a
 * role (viewer < operator < admin), a password hash in libsodium's crypto_pwhash_str format
 * (made and checked by the caller: the store never sees a password), a disabled flag and its
 * times.  The rule that there is always an enabled admin once there is one is kept here, in
 * the transaction that changes an account: an update or a delete that would leave no enabled
 * admin is refused with SCEPTER_ECONFLICT.  A password change or a disabled account revokes
 * the account's console sessions in the same transaction.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_NAME 64
#define MAX_HASH 512

static const char *const role_names[] = {[STORE_ROLE_VIEWER] = "viewer",
                                         [STORE_ROLE_OPERATOR] = "operator",
                                         [STORE_ROLE_ADMIN] = "admin"};

const char *store_role_name(enum store_role r)
{
    return r >= STORE_ROLE_VIEWER && r <= STORE_ROLE_ADMIN ? role_names[r] : "none";
}

int store_role_parse(const char *s, enum store_role *out)
{
    for (enum store_role r = STORE_ROLE_VIEWER; r <= STORE_ROLE_ADMIN; r++)
        if (s != NULL && strcmp(s, role_names[r]) == 0) {
            *out = r;
            return 0;
        }
    *out = STORE_ROLE_NONE;
    return -1;
}

int store_operator_name_check(const char *name, const char *field, struct scepter_error *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > MAX_NAME)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: 1 to %d characters", field, MAX_NAME);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '@' || ch == '-'))
            return scepter_err(err, SCEPTER_EINVAL, field,
                               "%s: only letters, digits and . _ @ - are allowed", field);
    }
    return 0;
}

static int check_role(enum store_role r, struct scepter_error *err)
{
    if (r < STORE_ROLE_VIEWER || r > STORE_ROLE_ADMIN)
        return scepter_err(err, SCEPTER_EINVAL, "role", "role: one of admin, operator, viewer");
    return 0;
}

void store_operator_clear(struct store_operator *o)
{
    if (o == NULL)
        return;
    free(o->name);
    free(o->password_hash);
    memset(o, 0, sizeof(*o));
}

void store_operators_free(struct store_operator *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_operator_clear(&v[i]);
    free(v);
}

#define OPERATOR_COLS                                                                              \
    "id, name, role, password_hash, disabled, created, updated, password_changed, last_sign_in"

static void read_operator(struct dbres *r, struct store_operator *o)
{
    o->id = db_int(r, 0);
    o->name = db_strdup(r, 1);
    if (store_role_parse(db_text(r, 2), &o->role) != 0)
        o->role = STORE_ROLE_NONE;
    o->password_hash = db_strdup(r, 3);
    o->disabled = db_int(r, 4) != 0;
    o->created = db_int(r, 5);
    o->updated = db_int(r, 6);
    o->password_changed = db_int(r, 7);
    o->last_sign_in = db_int(r, 8);
}

/* ---------------------------------------------------------------------------------------- */

static const struct store_sql SQL_OPERATOR_CREATE = {
    "operator_create",
    "INSERT INTO operators (name, role, password_hash, created, updated, password_changed)"
    " VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
    NULL, NULL};

int store_operator_create(struct store *s, const char *name, enum store_role role,
                          const char *password_hash, int64_t now, int64_t *id,
                          struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *id = 0;
    if ((rc = store_operator_name_check(name, "name", err)) != 0 ||
        (rc = check_role(role, err)) != 0 ||
        (rc = store_check_str(password_hash, MAX_HASH, "password_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(name), P_TEXT(store_role_name(role)), P_TEXT(password_hash),
                          P_INT(now)};
        rc = db_query(s, &SQL_OPERATOR_CREATE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "name",
                             "name: an operator named '%s' exists already", name);
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_OPERATOR_GET = {
    "operator_get", "SELECT " OPERATOR_COLS " FROM operators WHERE name = $1", NULL, NULL};

static int operator_get(struct store *s, const char *name, struct store_operator *out,
                        struct scepter_error *err)
{
    struct dbres r;
    struct dbv p[] = {P_TEXT(name)};
    int rc = db_query(s, &SQL_OPERATOR_GET, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        read_operator(&r, out);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "name", "no operator named '%s'", name);
    }
    db_res_clear(&r);
    return rc;
}

int store_operator_get(struct store *s, const char *name, struct store_operator *out,
                       struct scepter_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (store_operator_name_check(name, "name", err) != 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "name", "no such operator");
    STORE_CALL(s, rc, err)
    {
        store_operator_clear(out);
        rc = operator_get(s, name, out, err);
    }
    return rc;
}

static const struct store_sql SQL_OPERATOR_LIST = {
    "operator_list", "SELECT " OPERATOR_COLS " FROM operators ORDER BY name", NULL, NULL};

int store_operator_list(struct store *s, struct store_operator **out, size_t *n,
                        struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    {
        struct store_operator *v = NULL;
        size_t count = 0, cap = 0;
        struct dbres r;

        rc = db_query(s, &SQL_OPERATOR_LIST, NULL, 0, &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (count == cap)
                v = xreallocarray(v, cap = cap ? cap * 2 : 8, sizeof(*v));
            memset(&v[count], 0, sizeof(v[count]));
            read_operator(&r, &v[count]);
            free(v[count].password_hash); /* a list never carries the hashes */
            v[count].password_hash = NULL;
            count++;
            rc = 0;
        }
        db_res_clear(&r);
        if (rc < 0) {
            store_operators_free(v, count);
        } else {
            *out = v;
            *n = count;
            rc = 0;
        }
    }
    return rc;
}

/* The enabled admins other than id, locking their rows (PostgreSQL) so that two concurrent
 * demotions cannot each leave the other as the last admin and both go through. */
static const struct store_sql SQL_OTHER_ADMINS = {
    "operator_other_admins", NULL,
    "SELECT id FROM operators WHERE role = 'admin' AND disabled = 0 AND id <> $1 FOR UPDATE",
    "SELECT id FROM operators WHERE role = 'admin' AND disabled = 0 AND id <> $1"};

static int other_admins(struct store *s, int64_t id, int64_t *count, struct scepter_error *err)
{
    struct dbres r;
    struct dbv p[] = {P_INT(id)};
    int rc = db_query(s, &SQL_OTHER_ADMINS, p, ARRAY_LEN(p), &r, err);

    *count = 0;
    while (rc == 0 && (rc = db_next(&r, err)) == 1) {
        (*count)++;
        rc = 0;
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

int store_operator_admins(struct store *s, int64_t *count, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    rc = other_admins(s, 0, count, err);
    return rc;
}

static const struct store_sql SQL_OPERATOR_UPDATE = {
    "operator_update",
    "UPDATE operators SET role = $2, disabled = $3, password_hash = coalesce($4, password_hash),"
    " password_changed = CASE WHEN $4 IS NULL THEN password_changed ELSE $5 END, updated = $5"
    " WHERE id = $1",
    NULL, NULL};

/* Revoke the live sessions of an account, but the one whose hash is keep (NULL: all). */
static const struct store_sql SQL_OPERATOR_SESSIONS_REVOKE = {
    "operator_sessions_revoke",
    "UPDATE sessions SET revoked = $2 WHERE operator_id = $1 AND revoked = 0"
    " AND ($3 IS NULL OR hash <> $3)",
    NULL, NULL};

static int sessions_revoke(struct store *s, int64_t id, const char *keep, int64_t now,
                           int64_t *revoked, struct scepter_error *err)
{
    struct dbv p[] = {P_INT(id), P_INT(now > 0 ? now : 1), P_TEXT(keep)};
    return db_exec(s, &SQL_OPERATOR_SESSIONS_REVOKE, p, ARRAY_LEN(p), revoked, err);
}

static int last_admin(const struct store_operator *o, enum store_role role, bool disabled,
                      struct store *s, struct scepter_error *err)
{
    int64_t others = 0;
    int rc;

    if (o->role != STORE_ROLE_ADMIN || o->disabled || (role == STORE_ROLE_ADMIN && !disabled))
        return 0; /* not an enabled admin now, or still one after */
    if ((rc = other_admins(s, o->id, &others, err)) != 0)
        return rc;
    if (others == 0)
        return scepter_err(err, SCEPTER_ECONFLICT, role != STORE_ROLE_ADMIN ? "role" : "disabled",
                           "%s: '%s' is the last enabled admin; make another admin first",
                           role != STORE_ROLE_ADMIN ? "role" : "disabled", o->name);
    return 0;
}

static int operator_update(struct store *s, const char *name,
                           const struct store_operator_change *ch, const char *keep_session,
                           int64_t now, struct store_operator *before, int64_t *revoked,
                           struct scepter_error *err)
{
    struct store_operator o = {0};
    enum store_role role;
    bool disabled;
    int rc;

    if ((rc = db_begin(s, err)) != 0 || (rc = operator_get(s, name, &o, err)) != 0)
        goto out;
    role = ch->set_role ? ch->role : o.role;
    disabled = ch->set_disabled ? ch->disabled : o.disabled;
    if ((rc = last_admin(&o, role, disabled, s, err)) != 0)
        goto out;
    {
        struct dbv p[] = {P_INT(o.id), P_TEXT(store_role_name(role)), P_INT(disabled ? 1 : 0),
                          P_TEXT(ch->password_hash), P_INT(now)};
        if ((rc = db_exec(s, &SQL_OPERATOR_UPDATE, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    /* A new password ends the account's other sessions; a disabled account all of them. */
    if (ch->password_hash != NULL || (disabled && !o.disabled)) {
        if ((rc = sessions_revoke(s, o.id, disabled ? NULL : keep_session, now, revoked, err)) != 0)
            goto out;
    }
    if ((rc = db_commit(s, err)) == 0 && before != NULL) {
        *before = o;
        memset(&o, 0, sizeof(o));
    }
out:
    store_operator_clear(&o);
    return rc;
}

int store_operator_update(struct store *s, const char *name, const struct store_operator_change *ch,
                          const char *keep_session_hash, int64_t now, struct store_operator *before,
                          int64_t *revoked, struct scepter_error *err)
{
    char keep[65];
    int rc;

    if (before)
        memset(before, 0, sizeof(*before));
    *revoked = 0;
    if (store_operator_name_check(name, "name", err) != 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "name", "no such operator");
    if ((ch->set_role && (rc = check_role(ch->role, err)) != 0) ||
        (ch->password_hash &&
         (rc = store_check_str(ch->password_hash, MAX_HASH, "password_hash", err)) != 0))
        return rc;
    if (keep_session_hash &&
        (rc = store_norm_sha256(keep_session_hash, keep, "keep_session_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        *revoked = 0;
        rc = operator_update(s, name, ch, keep_session_hash ? keep : NULL, now, before, revoked,
                             err);
    }
    return rc;
}

static const struct store_sql SQL_OPERATOR_DELETE = {
    "operator_delete", "DELETE FROM operators WHERE id = $1", NULL, NULL};
/* Sessions go with their account (ON DELETE CASCADE); said explicitly for SQLite databases
 * opened without foreign keys. */
static const struct store_sql SQL_OPERATOR_SESSIONS_DELETE = {
    "operator_sessions_delete", "DELETE FROM sessions WHERE operator_id = $1", NULL, NULL};

static int operator_delete(struct store *s, const char *name, struct scepter_error *err)
{
    struct store_operator o = {0};
    int rc;

    if ((rc = db_begin(s, err)) != 0 || (rc = operator_get(s, name, &o, err)) != 0)
        goto out;
    if (o.role == STORE_ROLE_ADMIN && !o.disabled) {
        int64_t others = 0;
        if ((rc = other_admins(s, o.id, &others, err)) != 0)
            goto out;
        if (others == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "name",
                             "name: '%s' is the last enabled admin; make another admin first",
                             o.name);
            goto out;
        }
    }
    {
        struct dbv p[] = {P_INT(o.id)};
        if ((rc = db_exec(s, &SQL_OPERATOR_SESSIONS_DELETE, p, ARRAY_LEN(p), NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_OPERATOR_DELETE, p, ARRAY_LEN(p), NULL, err)) != 0)
            goto out;
    }
    rc = db_commit(s, err);
out:
    store_operator_clear(&o);
    return rc;
}

int store_operator_delete(struct store *s, const char *name, struct scepter_error *err)
{
    int rc;

    if (store_operator_name_check(name, "name", err) != 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "name", "no such operator");
    STORE_CALL(s, rc, err)
    rc = operator_delete(s, name, err);
    return rc;
}

static const struct store_sql SQL_OPERATOR_SIGNED_IN = {
    "operator_signed_in", "UPDATE operators SET last_sign_in = $2 WHERE id = $1", NULL, NULL};

int store_operator_signed_in(struct store *s, int64_t id, int64_t now, struct scepter_error *err)
{
    int rc;

    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_INT(id), P_INT(now)};
        rc = db_exec(s, &SQL_OPERATOR_SIGNED_IN, p, ARRAY_LEN(p), NULL, err);
    }
    return rc;
}

int store_operator_sessions_revoke(struct store *s, int64_t id, const char *keep_session_hash,
                                   int64_t now, int64_t *revoked, struct scepter_error *err)
{
    char keep[65];
    int rc;

    *revoked = 0;
    if (keep_session_hash &&
        (rc = store_norm_sha256(keep_session_hash, keep, "keep_session_hash", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = sessions_revoke(s, id, keep_session_hash ? keep : NULL, now, revoked, err);
    return rc;
}
