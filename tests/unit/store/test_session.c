/*
 * Web console sessions: found by the hash of their id only, with their CSRF token, lifetime,
 * last use and revocation; last_seen written at most once per granularity; the API key that
 * signed in reported while it exists; the purge of sessions that can no longer be used.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

TestSuite(session, .init = tf_setup, .fini = tf_teardown);

static void get_ok(struct store *s, const char *hash, struct store_session *out)
{
    struct scepter_error err;
    cr_assert_eq(store_session_get(s, hash, out, &err), 0, "%s", err.msg);
}

Test(session, create_get_touch_revoke)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_session ss;
    char h[65], other[65], key[65];

    tf_hash("session-1", h);
    tf_hash("session-2", other);
    tf_hash("api-key", key);
    cr_assert_eq(store_session_create(s, h, "csrf-token-1", key, "127.0.0.1", T0, T0 + 3600, &err),
                 0, "%s", err.msg);
    cr_assert_eq(store_session_create(s, h, "csrf-again", key, "127.0.0.1", T0, T0 + 3600, &err),
                 SCEPTER_ECONFLICT, "the same id twice");

    get_ok(s, h, &ss);
    cr_assert_str_eq(ss.csrf_token, "csrf-token-1");
    cr_assert_str_eq(ss.key_hash, key);
    cr_assert_eq(ss.created, T0);
    cr_assert_eq(ss.expires, T0 + 3600);
    cr_assert_eq(ss.last_seen, T0);
    cr_assert_eq(ss.revoked, 0);
    cr_assert_eq(ss.apikey_id, 0, "no stored key has this hash");

    /* Upper-case hex finds the same session; an unknown or malformed id finds none. */
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)((h[i] >= 'a' && h[i] <= 'f') ? h[i] - 32 : h[i]);
    get_ok(s, upper, &ss);
    cr_assert_eq(store_session_get(s, other, &ss, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "session");
    cr_assert_eq(store_session_get(s, "not-a-hash", &ss, &err), SCEPTER_ENOTFOUND);

    /* Touch: written only once last_seen is granularity seconds old. */
    cr_assert_eq(store_session_touch(s, h, T0 + 10, 60, &err), 0, "%s", err.msg);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.last_seen, T0, "10 s is under the granularity");
    cr_assert_eq(store_session_touch(s, h, T0 + 60, 60, &err), 0, "%s", err.msg);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.last_seen, T0 + 60);
    cr_assert_eq(store_session_touch(s, h, T0 + 61, 0, &err), 0, "%s", err.msg);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.last_seen, T0 + 61);
    cr_assert_eq(store_session_touch(s, h, T0 + 30, 0, &err), 0);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.last_seen, T0 + 61, "last_seen never moves back");

    /* Revoke: once; a revoked session is still found (the caller refuses it) and not touched. */
    cr_assert_eq(store_session_revoke(s, other, T0 + 70, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_session_revoke(s, h, T0 + 70, &err), 0, "%s", err.msg);
    cr_assert_eq(store_session_revoke(s, h, T0 + 71, &err), SCEPTER_ENOTFOUND, "revoked already");
    get_ok(s, h, &ss);
    cr_assert_eq(ss.revoked, T0 + 70);
    cr_assert_eq(store_session_touch(s, h, T0 + 200, 0, &err), 0);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.last_seen, T0 + 61);
    store_close(s);
}

Test(session, bad_arguments_name_the_field)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char h[65], key[65];

    tf_hash("s", h);
    tf_hash("k", key);
    cr_assert_eq(store_session_create(s, "zz", "t", key, NULL, T0, T0 + 1, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "hash");
    cr_assert_eq(store_session_create(s, h, "t", "zz", NULL, T0, T0 + 1, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "key_hash");
    cr_assert_eq(store_session_create(s, h, "", key, NULL, T0, T0 + 1, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "csrf_token");
    cr_assert_eq(store_session_create(s, h, "t", key, NULL, T0, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "expires");
    store_close(s);
}

Test(session, reports_the_stored_key_while_it_exists)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_session ss;
    char h[65], key[65];
    int64_t id = 0;

    tf_hash("session", h);
    tf_hash("a stored key", key);
    cr_assert_eq(store_apikey_create(s, "ops", key, STORE_ROLE_ADMIN, T0, &id, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_session_create(s, h, "csrf", key, NULL, T0, T0 + 100, &err), 0, "%s",
                 err.msg);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.apikey_id, id);
    cr_assert_eq(store_apikey_delete(s, id, &err), 0, "%s", err.msg);
    get_ok(s, h, &ss);
    cr_assert_eq(ss.apikey_id, 0, "the key was deleted");
    store_close(s);
}

Test(session, purge_drops_expired_idle_and_revoked)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_session ss;
    char live[65], expired[65], idle[65], revoked[65], key[65];
    int64_t deleted = -1;

    tf_hash("live", live);
    tf_hash("expired", expired);
    tf_hash("idle", idle);
    tf_hash("revoked", revoked);
    tf_hash("key", key);
    cr_assert_eq(store_session_create(s, live, "a", key, NULL, T0, T0 + 1000, &err), 0);
    cr_assert_eq(store_session_create(s, expired, "b", key, NULL, T0, T0 + 100, &err), 0);
    cr_assert_eq(store_session_create(s, idle, "c", key, NULL, T0 - 500, T0 + 1000, &err), 0);
    cr_assert_eq(store_session_create(s, revoked, "d", key, NULL, T0, T0 + 1000, &err), 0);
    cr_assert_eq(store_session_revoke(s, revoked, T0 + 1, &err), 0);
    cr_assert_eq(store_session_touch(s, live, T0 + 150, 0, &err), 0);

    /* At T0 + 100 with a 300 s idle timeout: unused since before T0 - 200 is idle. */
    cr_assert_eq(store_session_purge(s, T0 + 100, T0 - 200, &deleted, &err), 0, "%s", err.msg);
    cr_assert_eq(deleted, 3);
    get_ok(s, live, &ss);
    cr_assert_eq(store_session_get(s, expired, &ss, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_session_get(s, idle, &ss, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_session_get(s, revoked, &ss, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_session_purge(s, T0 + 100, T0 - 200, &deleted, &err), 0);
    cr_assert_eq(deleted, 0);
    store_close(s);
}
