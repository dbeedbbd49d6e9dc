/*
 * Operator accounts on the /v1 API (admin only), their passwords, and the first admin:
 *
 *   GET    /v1/operators          {"operators": [{name, role, disabled, created_at,
 *                                 updated_at, last_sign_in_at}]}
 *   POST   /v1/operators          {"name", "role", "password"} -> 201
 *   PATCH  /v1/operators/{name}   {"role"?, "disabled"?, "password"?}: a new password (a reset
 *                                 by an admin) or disabling revokes all the account's sessions
 *   DELETE /v1/operators/{name}
 *
 * The last enabled admin account cannot be deleted, demoted or disabled (409; the store keeps
 * the rule in the changing transaction).  Passwords are 12 to 256 bytes and stored as
 * libsodium's crypto_pwhash_str (Argon2id; the string carries its parameters and salt).
 * The first admin comes from `scepter operator bootstrap NAME` or from the configuration
 * (bootstrap_admin_name + bootstrap_admin_password_file), both through mdm_operator_bootstrap.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/file.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/mdm.h"

/* ---------------------------------------------------------------------------------------- */
/* Passwords                                                                                 */

int api_password_check(const char *pw, const char *field, struct scepter_error *err)
{
    size_t n = pw ? strlen(pw) : 0;

    if (n < API_PASSWORD_MIN)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: at least %d characters", field,
                           API_PASSWORD_MIN);
    if (n > API_PASSWORD_MAX)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: at most %d characters", field,
                           API_PASSWORD_MAX);
    return 0;
}

int api_password_hash(const char *pw, char out[128])
{
    _Static_assert(crypto_pwhash_STRBYTES <= 128, "crypto_pwhash_STRBYTES grew");
    if (sodium_init() < 0)
        return -1;
    /* The interactive limits (Argon2id, 2 passes over 64 MiB): a sign-in costs tens of
     * milliseconds, a guess as much. */
    return crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -1;
}

bool api_password_verify(const char *hash, const char *pw)
{
    if (sodium_init() < 0 || hash == NULL || strlen(hash) >= crypto_pwhash_STRBYTES)
        return false;
    return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Routes                                                                                    */

static json_t *operator_json(const struct store_operator *o)
{
    return json_pack("{s:s,s:s,s:b,s:o,s:o,s:o}", "name", o->name, "role", store_role_name(o->role),
                     "disabled", o->disabled, "created_at", api_time(o->created), "updated_at",
                     api_time(o->updated), "last_sign_in_at", api_time(o->last_sign_in));
}

void api_operators_list(struct api_call *c)
{
    struct store_operator *v = NULL;
    struct scepter_error err;
    size_t n = 0;

    if (store_operator_list(c->ctx->store, &v, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, operator_json(&v[i]));
    store_operators_free(v, n);
    api_reply_json(c, 200, json_pack("{s:o}", "operators", arr));
}

static void appendf(char *out, size_t outlen, const char *fmt, ...) PRINTF(3, 4);
static void appendf(char *out, size_t outlen, const char *fmt, ...)
{
    size_t len = strlen(out);
    va_list ap;

    if (len + 1 >= outlen)
        return;
    va_start(ap, fmt);
    vsnprintf(out + len, outlen - len, fmt, ap);
    va_end(ap);
}

static bool read_role(struct api_call *c, const char *s, enum store_role *role)
{
    if (store_role_parse(s, role) != 0) {
        api_reply_error(c, 400, "role", "role: '%s' is not one of admin, operator, viewer", s);
        return false;
    }
    return true;
}

void api_operator_create(struct api_call *c)
{
    static const char *const keys[] = {"name", "role", "password", NULL};
    const char *name = NULL, *role_s = NULL, *pw = NULL;
    struct store_operator o = {0};
    struct scepter_error err;
    enum store_role role;
    char hash[128];
    int64_t id = 0;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "name", "", true, &name, &err) != 0 ||
        jsonx_get_string(c->body, "role", "", true, &role_s, &err) != 0 ||
        jsonx_get_string(c->body, "password", "", true, &pw, &err) != 0 ||
        store_operator_name_check(name, "name", &err) != 0 ||
        api_password_check(pw, "password", &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (!read_role(c, role_s, &role))
        return;
    if (api_password_hash(pw, hash) != 0) {
        api_reply_error(c, 500, NULL, "cannot hash the password (out of memory)");
        return;
    }
    int rc = store_operator_create(c->ctx->store, name, role, hash, c->now, &id, &err);
    sodium_memzero(hash, sizeof(hash));
    if (rc != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (store_operator_get(c->ctx->store, name, &o, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "operator_created", "name", name, "role", store_role_name(role), "by",
           c->actor.name, NULL);
    api_audit_object(c, "%s", name);
    api_audit_summary(c, "role %s", store_role_name(role));
    api_reply_json(c, 201, operator_json(&o));
    store_operator_clear(&o);
}

void api_operator_update(struct api_call *c)
{
    static const char *const keys[] = {"role", "disabled", "password", NULL};
    const char *name = c->seg[1], *role_s = NULL, *pw = NULL;
    struct store_operator_change ch = {0};
    struct store_operator before = {0}, after = {0};
    struct scepter_error err;
    char hash[128], summary[256] = "";
    int64_t revoked = 0;
    int rc;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        (rc = jsonx_get_string(c->body, "role", "", false, &role_s, &err)) < 0 ||
        jsonx_get_bool(c->body, "disabled", "", false, &ch.disabled, &err) < 0 ||
        jsonx_get_string(c->body, "password", "", false, &pw, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    ch.set_disabled = json_object_get(c->body, "disabled") != NULL &&
                      !json_is_null(json_object_get(c->body, "disabled"));
    if (role_s != NULL) {
        if (!read_role(c, role_s, &ch.role))
            return;
        ch.set_role = true;
    }
    if (pw != NULL) {
        if (api_password_check(pw, "password", &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        if (api_password_hash(pw, hash) != 0) {
            api_reply_error(c, 500, NULL, "cannot hash the password (out of memory)");
            return;
        }
        ch.password_hash = hash;
    }
    if (!ch.set_role && !ch.set_disabled && pw == NULL) {
        api_reply_error(c, 400, "body", "nothing to change: send role, disabled or password");
        return;
    }
    /* An admin's reset ends every session of the account, the admin's own included when it
     * is the account being reset. */
    rc = store_operator_update(c->ctx->store, name, &ch, NULL, c->now, &before, &revoked, &err);
    sodium_memzero(hash, sizeof(hash));
    if (rc != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (ch.set_role && ch.role != before.role)
        appendf(summary, sizeof(summary), "role %s -> %s; ", store_role_name(before.role),
                store_role_name(ch.role));
    if (ch.set_disabled && ch.disabled != before.disabled)
        appendf(summary, sizeof(summary), "disabled %s -> %s; ", before.disabled ? "true" : "false",
                ch.disabled ? "true" : "false");
    if (pw != NULL)
        appendf(summary, sizeof(summary), "password reset; ");
    if (revoked > 0)
        appendf(summary, sizeof(summary), "%lld sessions revoked; ", (long long)revoked);
    size_t len = strlen(summary);
    if (len >= 2)
        summary[len - 2] = '\0';
    else
        str_copy(summary, sizeof(summary), "no change");
    api_audit_object(c, "%s", name);
    api_audit_summary(c, "%s", summary);
    log_kv(LOG_LVL_INFO, "operator_updated", "name", name, "change", summary, "by", c->actor.name,
           NULL);
    store_operator_clear(&before);
    if (store_operator_get(c->ctx->store, name, &after, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    api_reply_json(c, 200, operator_json(&after));
    store_operator_clear(&after);
}

void api_operator_delete(struct api_call *c)
{
    const char *name = c->seg[1];
    struct scepter_error err;

    if (store_operator_delete(c->ctx->store, name, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "operator_deleted", "name", name, "by", c->actor.name, NULL);
    api_audit_object(c, "%s", name);
    c->reply->status = 204;
    c->reply->content_type = NULL;
    buf_reset(&c->reply->body);
}

/* ---------------------------------------------------------------------------------------- */
/* The first admin                                                                           */

int mdm_operator_bootstrap(struct store *st, const char *name, const char *password, bool force,
                           int64_t now, struct scepter_error *err)
{
    struct store_operator o = {0};
    char hash[128];
    int64_t admins = 0, id = 0, revoked = 0;
    int rc;

    if ((rc = store_operator_name_check(name, "name", err)) != 0 ||
        (rc = api_password_check(password, "password", err)) != 0)
        return rc;
    if ((rc = store_operator_admins(st, &admins, err)) != 0)
        return rc;
    if (admins > 0 && !force)
        return scepter_err(err, SCEPTER_ECONFLICT, "name",
                           "an enabled admin account exists already (%lld); use --force to "
                           "make or reset '%s' anyway",
                           (long long)admins, name);
    if (api_password_hash(password, hash) != 0)
        return scepter_err(err, SCEPTER_EINTERNAL, "password", "cannot hash the password");
    rc = store_operator_get(st, name, &o, err);
    if (rc == SCEPTER_ENOTFOUND) {
        rc = store_operator_create(st, name, STORE_ROLE_ADMIN, hash, now, &id, err);
    } else if (rc == 0) {
        /* The account exists: make it an enabled admin with the new password. */
        struct store_operator_change ch = {.set_role = true,
                                           .role = STORE_ROLE_ADMIN,
                                           .set_disabled = true,
                                           .disabled = false,
                                           .password_hash = hash};
        rc = store_operator_update(st, name, &ch, NULL, now, NULL, &revoked, err);
    }
    sodium_memzero(hash, sizeof(hash));
    store_operator_clear(&o);
    return rc;
}

int mdm_operator_bootstrap_config(const struct cfg *cfg, struct store *st, int64_t now,
                                  struct scepter_error *err)
{
    unsigned char *raw = NULL;
    char *pw;
    size_t len = 0;
    int64_t admins = 0;
    int rc;

    if (str_empty(cfg->bootstrap_admin_name))
        return 0;
    if ((rc = store_operator_admins(st, &admins, err)) != 0)
        return rc;
    if (admins > 0)
        return 0; /* the usual case after the first start */
    if (file_read(cfg->bootstrap_admin_password_file, 4096, &raw, &len, err) != 0) {
        char why[sizeof(err->msg)];
        str_copy(why, sizeof(why), err->msg);
        return scepter_err(err, SCEPTER_EINVAL, "bootstrap_admin_password_file",
                           "bootstrap_admin_password_file: %s", why);
    }
    pw = (char *)raw;
    if (len > 0 && pw[len - 1] == '\n')
        pw[--len] = '\0';
    if (len > 0 && pw[len - 1] == '\r')
        pw[--len] = '\0';
    if (strlen(pw) != len)
        rc = scepter_err(err, SCEPTER_EINVAL, "bootstrap_admin_password_file",
                         "bootstrap_admin_password_file: contains a NUL byte");
    else
        rc = mdm_operator_bootstrap(st, cfg->bootstrap_admin_name, pw, false, now, err);
    if (rc != 0 && strcmp(err->field, "password") == 0)
        rc = scepter_err(err, SCEPTER_EINVAL, "bootstrap_admin_password_file",
                         "bootstrap_admin_password_file: the password must be %d to %d "
                         "characters",
                         API_PASSWORD_MIN, API_PASSWORD_MAX);
    sodium_memzero(pw, len);
    free(pw);
    if (rc == 0)
        log_kv(LOG_LVL_INFO, "operator_bootstrapped", "name", cfg->bootstrap_admin_name, NULL);
    return rc;
}
