/*
 * Web console sessions on the /v1 API:
 *
 *   POST   /v1/sessions          {"name": N, "password": P} (an operator account) or
 *                                {"api_key": KEY} -> 201 {csrf_token, expires_at,
 *                                idle_timeout_s, actor: {type, name, role}}
 *                                and Set-Cookie: scepter_session=<256 random bits, base64url>
 *   GET    /v1/sessions/current  the session of the cookie
 *   DELETE /v1/sessions/current  sign-out: the session is revoked, the cookie cleared
 *   POST   /v1/sessions/current/password  {"current_password", "new_password"} -> 204: an
 *                                account changes its own password; its other sessions end
 *
 * A session stands in for the account or the API key that signed in, with its role as it
 * is now (a demoted, disabled or deleted account's sessions follow at once): every /v1 route
 * accepts the cookie instead of Authorization: Bearer, and with the cookie a state-changing method
 * (POST, PUT, PATCH, DELETE) must echo the session's CSRF token in X-CSRF-Token.  The store keeps
 * only the SHA-256 of the session id.  A session ends console_session_ttl after sign-in, after
 * console_session_idle without use, at sign-out, or when the key that signed in is deleted
 * (a stored key) or changed (the bootstrap api_key), or when the account's password changes
 * or it is disabled.  Failed sign-ins are limited per client address and per account name
 * (429 naming the field) and recorded in the audit log (session.fail).  Sign-ins, refused sign-ins,
 * sign-outs and refused CSRF tokens are logged and recorded as events (GET /v1/events).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/console_int.h"

#define COOKIE_NAME  "scepter_session"
#define TOKEN_BYTES  32 /* session ids and CSRF tokens: 256 bits */
#define TOKEN_CHARS  43 /* their unpadded base64url length */
#define COOKIE_ATTRS "; HttpOnly; Secure; SameSite=Strict; Path=/"

/* ---------------------------------------------------------------------------------------- */
/* Failed sign-ins per client address and per account name                                  */

/* A token bucket per address: SIGNIN_FAILURES failed sign-ins at once, refilled at
 * SIGNIN_FAILURES a minute (credit in 1/60 of a failure, so whole seconds suffice).  While an
 * address has no credit left, its sign-ins are refused without looking at the key.  Account
 * names have a bucket of their own, smaller (NAME_FAILURES): guessing one account's password
 * from many addresses is limited too, and one address with several people behind it (NAT)
 * still signs the others in while one account is locked. */
#define SIGNIN_FAILURES 10
#define NAME_FAILURES   5
#define SIGNIN_SLOTS    1024

static struct {
    pthread_mutex_t lock;
    struct {
        char addr[72];  /* "a:" address or "n:" account name */
        int64_t at;     /* last refill (seconds) */
        int64_t credit; /* 60 per failure allowed now */
    } slot[SIGNIN_SLOTS];
} g_signin = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t signin_slot(const char *addr, int64_t rate, int64_t now)
{
    uint64_t h = 1469598103934665603ULL;
    const int64_t cap = rate * 60;
    size_t i;

    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    i = (size_t)(h % SIGNIN_SLOTS);
    /* A slot holds one address; a colliding address starts afresh. */
    if (strcmp(g_signin.slot[i].addr, addr) != 0) {
        str_copy(g_signin.slot[i].addr, sizeof(g_signin.slot[i].addr), addr);
        g_signin.slot[i].credit = cap;
    } else if (now > g_signin.slot[i].at) {
        int64_t refill = (now - g_signin.slot[i].at) * rate;
        g_signin.slot[i].credit =
            refill > cap - g_signin.slot[i].credit ? cap : g_signin.slot[i].credit + refill;
    }
    g_signin.slot[i].at = now;
    return i;
}

/* Seconds until addr may try again (0: now).  kind 'a' (an address) or 'n' (a name). */
static int64_t signin_wait(char kind, const char *what, int64_t now)
{
    char addr[72];
    int64_t wait = 0;

    if (what == NULL)
        return 0;
    snprintf(addr, sizeof(addr), "%c:%s", kind, what);
    int64_t rate = kind == 'n' ? NAME_FAILURES : SIGNIN_FAILURES;
    pthread_mutex_lock(&g_signin.lock);
    size_t i = signin_slot(addr, rate, now);
    if (g_signin.slot[i].credit < 60)
        wait = (60 - g_signin.slot[i].credit + rate - 1) / rate;
    pthread_mutex_unlock(&g_signin.lock);
    return wait;
}

static void signin_failed(char kind, const char *what, int64_t now)
{
    char addr[72];

    if (what == NULL)
        return;
    snprintf(addr, sizeof(addr), "%c:%s", kind, what);
    pthread_mutex_lock(&g_signin.lock);
    size_t i = signin_slot(addr, kind == 'n' ? NAME_FAILURES : SIGNIN_FAILURES, now);
    g_signin.slot[i].credit = g_signin.slot[i].credit >= 60 ? g_signin.slot[i].credit - 60 : 0;
    pthread_mutex_unlock(&g_signin.lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */

/* 256 random bits as unpadded base64url (TOKEN_CHARS characters). */
static int random_token(char out[TOKEN_CHARS + 1])
{
    unsigned char raw[TOKEN_BYTES];
    char *b64;
    size_t n = 0;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    b64 = base64_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    for (const char *p = b64; *p && *p != '=' && n < TOKEN_CHARS; p++)
        out[n++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    out[n] = '\0';
    OPENSSL_cleanse(b64, strlen(b64));
    free(b64);
    return n == TOKEN_CHARS ? 0 : -1;
}

static void sha256_hex(const char *s, char hex[CRYPTO_SHA256_HEX_LEN])
{
    unsigned char md[CRYPTO_SHA256_LEN];

    crypto_sha256(s, strlen(s), md);
    hex_encode_to(md, sizeof(md), hex, false);
}

static bool is_b64url(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/*
 * The session id of the request's cookie into out; false when there is no well-formed
 * scepter_session cookie.  Cookie: name=value pairs separated by ';' (RFC 6265 §5.4).
 */
static bool cookie_session(const struct mdm_request *req, char out[TOKEN_CHARS + 1])
{
    const char *h = mdm_header(req, "Cookie");
    const size_t nl = strlen(COOKIE_NAME);

    while (h && *h) {
        while (*h == ' ' || *h == '\t' || *h == ';')
            h++;
        const char *end = strchr(h, ';');
        size_t len = end ? (size_t)(end - h) : strlen(h);
        while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
            len--;
        if (len == nl + 1 + TOKEN_CHARS && strncmp(h, COOKIE_NAME "=", nl + 1) == 0 &&
            is_b64url(h + nl + 1, TOKEN_CHARS)) {
            memcpy(out, h + nl + 1, TOKEN_CHARS);
            out[TOKEN_CHARS] = '\0';
            return true;
        }
        h = end;
    }
    return false;
}

/* Is key an API key?  The actor becomes that key when it is. */
static bool is_api_key(struct api_call *c, const char *key, int64_t *id, bool *store_down,
                       struct scepter_error *err)
{
    const char *boot = c->ctx->cfg->api_key;
    char hex[CRYPTO_SHA256_HEX_LEN], *name = NULL;
    enum store_role role = STORE_ROLE_NONE;
    int rc;

    *id = 0;
    *store_down = false;
    /* The whole key: a prefix of the bootstrap key is not the key. */
    if (!str_empty(boot) && strlen(boot) == strlen(key) &&
        CRYPTO_memcmp(boot, key, strlen(key)) == 0) {
        api_actor_key(c, STORE_ROLE_ADMIN, NULL);
        return true;
    }
    sha256_hex(key, hex);
    rc = store_apikey_auth(c->ctx->store, hex, id, &role, &name, err);
    *store_down = rc != 0 && rc != SCEPTER_EAUTH;
    if (rc == 0)
        api_actor_key(c, role, name);
    free(name);
    return rc == 0;
}

/* Record a console event (GET /v1/events) and log it; key_hash (or NULL) names the API key
 * of the session by the first 8 hex digits of its hash, as GET /v1/apikeys lists keys. */
static void session_event(struct api_call *c, const char *kind, const char *log_event,
                          const char *why, const char *key_hash)
{
    struct scepter_error err;
    json_t *d = json_pack("{s:s}", "peer", c->req->peer_addr ? c->req->peer_addr : "");
    char prefix[9] = "";
    char *text;

    if (why)
        json_object_set_new(d, "reason", json_string(why));
    if (key_hash && strlen(key_hash) >= 8) {
        memcpy(prefix, key_hash, 8);
        json_object_set_new(d, "key_hash_prefix", json_string(prefix));
    }
    text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL || store_event_add(c->ctx->store, kind, NULL, text, c->now, &err) != 0)
        log_warnx("event %s not recorded: %s", kind, text ? err.msg : "cannot encode it");
    free(text); /* jansson's allocation */
    json_decref(d);
    log_kv(why ? LOG_LVL_WARN : LOG_LVL_INFO, log_event, "req", c->req->id, "peer",
           c->req->peer_addr, "key", prefix[0] ? prefix : NULL, "reason", why, NULL);
}

static void clear_cookie(struct api_call *c)
{
    mdm_reply_header(c->reply, "Set-Cookie", COOKIE_NAME "=" COOKIE_ATTRS "; Max-Age=0");
}

static void session_expired(struct api_call *c, const char *why)
{
    clear_cookie(c);
    api_reply_error(c, 401, "session", "session expired");
    /* The log line says why; the client is told no more than that the session is gone. */
    str_copy(c->reply->reason, sizeof(c->reply->reason), why);
}

/*
 * The live session of the request's cookie into *ss (and its id hash); false with a 401 reply
 * when there is none.  Whether a session is live: not revoked, not past its lifetime, used
 * within the idle timeout, and the key that signed in still a key.
 */
static bool live_session(struct api_call *c, struct store_session *ss,
                         char hash[CRYPTO_SHA256_HEX_LEN])
{
    char id[TOKEN_CHARS + 1];
    struct scepter_error err;
    int rc;

    if (!cookie_session(c->req, id)) {
        api_reply_error(c, 401, "session",
                        "no console session: sign in with POST /v1/sessions {\"api_key\": ...}");
        return false;
    }
    sha256_hex(id, hash);
    OPENSSL_cleanse(id, sizeof(id));
    rc = store_session_get(c->ctx->store, hash, ss, &err);
    if (rc == SCEPTER_ENOTFOUND) {
        session_expired(c, "unknown session");
        return false;
    }
    if (rc != 0) {
        api_reply_error(c, 503, NULL, "cannot check the session: %s", err.msg);
        return false;
    }
    if (ss->revoked != 0) {
        session_expired(c, "session signed out");
        return false;
    }
    if (c->now >= ss->expires) {
        session_expired(c, "session past console_session_ttl");
        return false;
    }
    if (c->now - ss->last_seen > c->ctx->cfg->console_session_idle) {
        session_expired(c, "session idle longer than console_session_idle");
        return false;
    }
    str_copy(c->actor.session_hash, sizeof(c->actor.session_hash), hash);
    if (ss->operator_id != 0) {
        /* An account: still there, enabled, and with its role as it is now. */
        if (ss->operator_disabled) {
            session_expired(c, "the account of the session was disabled or deleted");
            return false;
        }
        c->actor.type = "operator";
        c->actor.role = ss->role;
        c->actor.operator_id = ss->operator_id;
        str_copy(c->actor.name, sizeof(c->actor.name), ss->actor);
        return true;
    }
    if (ss->apikey_id != 0) {
        api_actor_key(c, ss->role, ss->actor);
    } else {
        /* Not a stored key (any more): the bootstrap key, if it is still the same one. */
        const char *boot = c->ctx->cfg->api_key;
        char bh[CRYPTO_SHA256_HEX_LEN];
        if (str_empty(boot)) {
            session_expired(c, "the API key of the session was deleted");
            return false;
        }
        sha256_hex(boot, bh);
        if (CRYPTO_memcmp(bh, ss->key_hash, sizeof(bh) - 1) != 0) {
            session_expired(c, "the API key of the session was deleted or changed");
            return false;
        }
        api_actor_key(c, STORE_ROLE_ADMIN, NULL);
    }
    return true;
}

static json_t *actor_json(const struct api_actor *a)
{
    return json_pack("{s:s,s:s,s:s}", "type", a->type ? a->type : "", "name", a->name, "role",
                     store_role_name(a->role));
}

static json_t *session_json(const struct api_call *c, const struct store_session *ss)
{
    return json_pack("{s:s,s:o,s:I,s:o}", "csrf_token", ss->csrf_token, "expires_at",
                     api_time(ss->expires), "idle_timeout_s",
                     (json_int_t)c->ctx->cfg->console_session_idle, "actor", actor_json(&c->actor));
}

/* ---------------------------------------------------------------------------------------- */
/* Authorisation                                                                             */

int api_session_authorize(struct api_call *c)
{
    struct store_session ss;
    char hash[CRYPTO_SHA256_HEX_LEN], probe[TOKEN_CHARS + 1];
    enum mdm_method m = c->req->method;
    struct scepter_error err;

    /* Signing in is how a key becomes a session: the route checks the key in the body. */
    if (c->nseg == 1 && strcmp(c->seg[0], "sessions") == 0 && m == MDM_POST)
        return 1;
    /* Scripts: Authorization: Bearer decides alone, without CSRF (browsers never send it on
     * their own). */
    if (mdm_header(c->req, "Authorization") != NULL)
        return -1;
    if (!cookie_session(c->req, probe))
        return -1;
    OPENSSL_cleanse(probe, sizeof(probe));
    if (!live_session(c, &ss, hash))
        return 0;
    if (m == MDM_POST || m == MDM_PUT || m == MDM_PATCH || m == MDM_DELETE || m == MDM_OTHER) {
        const char *tok = mdm_header(c->req, "X-CSRF-Token");
        size_t want = strlen(ss.csrf_token);
        if (tok == NULL || strlen(tok) != want || CRYPTO_memcmp(tok, ss.csrf_token, want) != 0) {
            session_event(c, "console.CSRFRefused", "console_csrf_refused",
                          tok == NULL ? "no X-CSRF-Token" : "wrong X-CSRF-Token", ss.key_hash);
            api_reply_error(c, 403, "X-CSRF-Token",
                            "%s: send the session's csrf_token (GET /v1/sessions/current) in "
                            "X-CSRF-Token with every %s",
                            tok == NULL ? "X-CSRF-Token missing" : "X-CSRF-Token does not match",
                            m == MDM_POST    ? "POST"
                            : m == MDM_PUT   ? "PUT"
                            : m == MDM_PATCH ? "PATCH"
                                             : "state-changing request");
            return 0;
        }
    }
    /* Idle time is counted to a tenth of the timeout (at most a minute): a session in use
     * is written that often, not on every request. */
    int64_t grain = c->ctx->cfg->console_session_idle / 10;
    if (store_session_touch(c->ctx->store, hash, c->now, grain > 60 ? 60 : grain, &err) != 0)
        log_warnx("session last_seen not written: %s", err.msg);
    if (ss.apikey_id != 0)
        mdm_apikey_used(c->ctx, ss.apikey_id, c->now);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Routes                                                                                    */

static void too_many(struct api_call *c, const char *field, const char *what, int64_t wait)
{
    char ra[24];

    snprintf(ra, sizeof(ra), "%lld", (long long)wait);
    mdm_reply_header(c->reply, "Retry-After", ra);
    api_reply_error(c, 429, field, "%s: too many failed sign-ins %s: try again in %lld s", field,
                    what, (long long)wait);
}

/* A refused sign-in: counted against the address (and the name), logged, audited. */
static void sign_in_refused(struct api_call *c, const char *name, const char *why)
{
    char actor[80];

    signin_failed('a', c->req->peer_addr, c->now);
    if (name != NULL)
        signin_failed('n', name, c->now);
    session_event(c, "console.SignInRefused", "console_signin_refused", why, NULL);
    /* A name that is not a valid account name is not quoted into the log. */
    if (name != NULL && store_operator_name_check(name, "name", NULL) == 0)
        str_copy(actor, sizeof(actor), name);
    else
        str_copy(actor, sizeof(actor), name ? "(not an account name)" : "(unknown API key)");
    api_audit_write(c, "session.fail", name ? "operator" : "api_key", actor, actor, why);
}

/*
 * {"name", "password"}: the account if it exists, is enabled and the password matches; false
 * with the reply set otherwise.  Unknown names cost a hash too, so the time taken does not
 * tell which names exist.
 */
static bool operator_sign_in(struct api_call *c, const char *name, const char *pw,
                             int64_t *operator_id)
{
    struct store_operator o = {0};
    struct scepter_error err;
    const char *why = NULL;
    int64_t wait;
    int rc;

    if ((wait = signin_wait('n', name, c->now)) > 0) {
        too_many(c, "name", "for this account", wait);
        return false;
    }
    if (store_operator_name_check(name, "name", &err) != 0 || strlen(pw) > API_PASSWORD_MAX) {
        rc = SCEPTER_ENOTFOUND;
    } else if ((rc = store_operator_get(c->ctx->store, name, &o, &err)) != 0 &&
               rc != SCEPTER_ENOTFOUND) {
        api_reply_error(c, 503, NULL, "cannot check the account: %s", err.msg);
        return false;
    }
    if (rc != 0) {
        char dummy[128];
        if (api_password_hash(pw, dummy) == 0)
            OPENSSL_cleanse(dummy, sizeof(dummy));
        why = "unknown account";
    } else if (!api_password_verify(o.password_hash, pw)) {
        why = "wrong password";
    } else if (o.disabled) {
        why = "account disabled";
    }
    if (why != NULL) {
        store_operator_clear(&o);
        sign_in_refused(c, name, why);
        /* The same answer for an unknown name, a wrong password and a disabled account. */
        api_reply_error(c, 401, "password", "name or password: not a valid account and password");
        return false;
    }
    *operator_id = o.id;
    c->actor.type = "operator";
    c->actor.role = o.role;
    c->actor.operator_id = o.id;
    str_copy(c->actor.name, sizeof(c->actor.name), o.name);
    store_operator_clear(&o);
    return true;
}

static void sign_in(struct api_call *c)
{
    static const char *const keys[] = {"api_key", "name", "password", NULL};
    const char *key = NULL, *name = NULL, *pw = NULL, *peer = c->req->peer_addr;
    char id[TOKEN_CHARS + 1], csrf[TOKEN_CHARS + 1];
    char hash[CRYPTO_SHA256_HEX_LEN], key_hash[CRYPTO_SHA256_HEX_LEN] = "";
    const struct cfg *cfg = c->ctx->cfg;
    struct scepter_error err;
    bool store_down = false;
    int64_t key_id = 0, operator_id = 0, wait;
    int rc;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "api_key", "", false, &key, &err) < 0 ||
        jsonx_get_string(c->body, "name", "", false, &name, &err) < 0 ||
        jsonx_get_string(c->body, "password", "", false, &pw, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (key != NULL && (name != NULL || pw != NULL)) {
        api_reply_error(c, 400, "api_key", "api_key: send either api_key or name and password");
        return;
    }
    if (key == NULL && (name == NULL || pw == NULL)) {
        const char *f = name == NULL ? "name" : "password";
        api_reply_error(c, 400, f, "%s: required (or sign in with api_key)", f);
        return;
    }
    if ((wait = signin_wait('a', peer, c->now)) > 0) {
        char what[80];
        snprintf(what, sizeof(what), "from %s", peer);
        too_many(c, key ? "api_key" : "name", what, wait);
        return;
    }
    if (key == NULL) {
        if (!operator_sign_in(c, name, pw, &operator_id))
            return;
    } else if (*key == '\0' || strlen(key) > CFG_API_KEY_MAX ||
               !is_api_key(c, key, &key_id, &store_down, &err)) {
        if (store_down) {
            api_reply_error(c, 503, NULL, "cannot check the API key: %s", err.msg);
            return;
        }
        sign_in_refused(c, NULL, "unknown API key");
        api_reply_error(c, 401, "api_key", "api_key: not a valid API key");
        return;
    } else {
        sha256_hex(key, key_hash);
    }
    if (random_token(id) != 0 || random_token(csrf) != 0) {
        api_reply_error(c, 500, NULL, "no random bytes for a session");
        return;
    }
    sha256_hex(id, hash);
    int64_t expires = c->now + cfg->console_session_ttl;
    if (operator_id != 0)
        rc = store_session_create_operator(c->ctx->store, hash, csrf, operator_id, peer, c->now,
                                           expires, &err);
    else
        rc = store_session_create(c->ctx->store, hash, csrf, key_hash, peer, c->now, expires, &err);
    if (rc != 0) {
        OPENSSL_cleanse(id, sizeof(id));
        api_reply_scepter_error(c, &err);
        return;
    }
    char cookie[sizeof(COOKIE_NAME) + TOKEN_CHARS + sizeof(COOKIE_ATTRS) + 8];
    snprintf(cookie, sizeof(cookie), COOKIE_NAME "=%s" COOKIE_ATTRS, id);
    mdm_reply_header(c->reply, "Set-Cookie", cookie);
    mdm_reply_header(c->reply, "Cache-Control", "no-store");
    OPENSSL_cleanse(id, sizeof(id));
    OPENSSL_cleanse(cookie, sizeof(cookie));
    if (key_id != 0)
        mdm_apikey_used(c->ctx, key_id, c->now);
    if (operator_id != 0 && store_operator_signed_in(c->ctx->store, operator_id, c->now, &err) != 0)
        log_warnx("operator %s: last sign-in not written: %s", c->actor.name, err.msg);
    session_event(c, "console.SignIn", "console_signin", NULL, operator_id ? NULL : key_hash);
    str_copy(c->actor.session_hash, sizeof(c->actor.session_hash), hash);
    api_audit_object(c, "%s", c->actor.name);
    api_audit_summary(c, "signed in with %s", operator_id ? "a password" : "an API key");
    api_reply_json(c, 201,
                   json_pack("{s:s,s:o,s:I,s:o}", "csrf_token", csrf, "expires_at",
                             api_time(expires), "idle_timeout_s",
                             (json_int_t)cfg->console_session_idle, "actor",
                             actor_json(&c->actor)));
}

/* An account changes its own password: the current one proves it is the account's owner at
 * the keyboard; its other sessions end, this one stays. */
void api_session_password(struct api_call *c)
{
    static const char *const keys[] = {"current_password", "new_password", NULL};
    const char *cur = NULL, *next = NULL;
    struct store_session ss;
    struct store_operator o = {0};
    struct store_operator_change ch = {0};
    char hash[CRYPTO_SHA256_HEX_LEN], pwhash[128];
    struct scepter_error err;
    int64_t revoked = 0, wait;
    int rc;

    if (!live_session(c, &ss, hash))
        return;
    if (c->actor.operator_id == 0) {
        api_reply_error(c, 400, "session",
                        "session: signed in with an API key, which has no password; sign in "
                        "with an account's name and password");
        return;
    }
    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "current_password", "", true, &cur, &err) != 0 ||
        jsonx_get_string(c->body, "new_password", "", true, &next, &err) != 0 ||
        api_password_check(next, "new_password", &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    /* Guessing the current password through a stolen session is limited like sign-ins. */
    if ((wait = signin_wait('n', c->actor.name, c->now)) > 0) {
        too_many(c, "current_password", "for this account", wait);
        return;
    }
    if ((rc = store_operator_get(c->ctx->store, c->actor.name, &o, &err)) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    bool ok = strlen(cur) <= API_PASSWORD_MAX && api_password_verify(o.password_hash, cur);
    store_operator_clear(&o);
    if (!ok) {
        signin_failed('n', c->actor.name, c->now);
        log_kv(LOG_LVL_WARN, "operator_password_refused", "req", c->req->id, "peer",
               c->req->peer_addr, "name", c->actor.name, NULL);
        api_reply_error(c, 400, "current_password", "current_password: not the password");
        return;
    }
    if (strcmp(cur, next) == 0) {
        api_reply_error(c, 400, "new_password", "new_password: the same as the current one");
        return;
    }
    if (api_password_hash(next, pwhash) != 0) {
        api_reply_error(c, 500, NULL, "cannot hash the password (out of memory)");
        return;
    }
    ch.password_hash = pwhash;
    rc = store_operator_update(c->ctx->store, c->actor.name, &ch, hash, c->now, NULL, &revoked,
                               &err);
    OPENSSL_cleanse(pwhash, sizeof(pwhash));
    if (rc != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "operator_password_changed", "req", c->req->id, "name", c->actor.name,
           NULL);
    api_audit_object(c, "%s", c->actor.name);
    api_audit_summary(c, "password changed; %lld other sessions revoked", (long long)revoked);
    c->reply->status = 204;
    c->reply->content_type = NULL;
    buf_reset(&c->reply->body);
}

void api_session_create(struct api_call *c)
{
    sign_in(c);
}

void api_session_show(struct api_call *c)
{
    struct store_session ss;
    char hash[CRYPTO_SHA256_HEX_LEN];

    if (!live_session(c, &ss, hash))
        return;
    mdm_reply_header(c->reply, "Cache-Control", "no-store");
    api_reply_json(c, 200, session_json(c, &ss));
}

/* Sign-out. */
void api_session_delete(struct api_call *c)
{
    struct store_session ss;
    char hash[CRYPTO_SHA256_HEX_LEN];
    struct scepter_error err;

    if (!live_session(c, &ss, hash))
        return;
    if (store_session_revoke(c->ctx->store, hash, c->now, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    clear_cookie(c);
    session_event(c, "console.SignOut", "console_signout", NULL, ss.key_hash);
    c->reply->status = 204;
    c->reply->content_type = NULL;
    buf_reset(&c->reply->body);
}

/* ---------------------------------------------------------------------------------------- */
/* Retention                                                                                 */

void mdm_sessions_purge(struct store *st, const struct cfg *cfg, int64_t now)
{
    struct scepter_error err;
    int64_t deleted = 0;

    if (store_session_purge(st, now, now - cfg->console_session_idle, &deleted, &err) != 0) {
        log_warnx("console sessions: purge failed: %s", err.msg);
        return;
    }
    if (deleted > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)deleted);
        log_kv(LOG_LVL_INFO, "console_sessions_purged", "deleted", n, NULL);
    }
}
