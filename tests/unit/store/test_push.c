/*
 * Push: targets of many enrollments, token invalidation by APNs and revival by TokenUpdate,
 * re-push candidates, and the push certificate (topic-change refusal, version moves).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(push, .init = tf_setup, .fini = tf_teardown);

static const char *hex_of(struct store_push_target *t, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].enrollment_id, id) == 0)
            return t[i].token_hex;
    }
    return NULL;
}

Test(push, targets_invalidation_and_revival)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_push_target *t;
    struct store_enrollment e;
    const char *ids[] = {"A", "B", "C", "ghost"};
    char tok_a[65];
    size_t n;

    tf_enroll(s, "A", "iPhone14,2", T0);
    tf_enroll(s, "B", "iPhone14,2", T0);
    tf_authenticate(s, "C", "iPhone14,2", T0); /* no TokenUpdate: not a target */
    cr_assert_eq(store_push_targets(s, ids, 4, &t, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0].enrollment_id, "A");
    cr_assert_str_eq(t[0].topic, "com.apple.mgmt.External.test");
    cr_assert_str_eq(t[0].push_magic, "magic-1");
    cr_assert_eq(strlen(t[0].token_hex), 64);
    memcpy(tok_a, hex_of(t, n, "A"), 65);
    store_push_targets_free(t, n);

    /* A stale token (not the stored one) changes nothing. */
    cr_assert_eq(store_push_token_invalidate(s, "A", "00ff", T0 + 1, &err), 0, "%s", err.msg);
    cr_assert_eq(store_push_targets(s, ids, 1, &t, &n, &err), 0);
    cr_assert_eq(n, 1);
    store_push_targets_free(t, n);
    /* The stored one: no longer a target, still enabled. */
    cr_assert_eq(store_push_token_invalidate(s, "A", tok_a, T0 + 2, &err), 0, "%s", err.msg);
    cr_assert_eq(store_push_targets(s, ids, 4, &t, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t[0].enrollment_id, "B");
    store_push_targets_free(t, n);
    cr_assert_eq(store_enrollment_get(s, "A", &e, &err), 0);
    cr_assert(e.enabled);
    cr_assert_not(e.token_valid);
    store_enrollment_clear(&e);
    /* A fresh TokenUpdate revives it. */
    tf_enroll(s, "A", "iPhone14,2", T0 + 3);
    cr_assert_eq(store_push_targets(s, ids, 4, &t, &n, &err), 0);
    cr_assert_eq(n, 2);
    store_push_targets_free(t, n);
    cr_assert_eq(store_push_token_invalidate(s, "A", "zz", T0, &err), SCEPTER_EINVAL);
    cr_assert_eq(store_push_targets(s, ids, 0, &t, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_close(s);
}

Test(push, repush_candidates_have_pending_commands_and_are_quiet)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char **ids;
    size_t n;
    const char *qa[] = {"A", "B"};
    const char *seen[] = {"B"};
    char u[37];

    tf_enroll(s, "A", "iPhone14,2", T0);
    tf_enroll(s, "B", "iPhone14,2", T0);
    tf_enroll(s, "C", "iPhone14,2", T0);
    tf_uuid(1, u);
    struct store_command c = tf_cmd(u, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, qa, 2, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_touch(s, seen, 1, T0 + 1000, &err), 0);
    cr_assert_eq(store_repush_candidates(s, T0 + 500, 10, &ids, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], "A");
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    cr_assert_eq(store_repush_candidates(s, T0 + 5000, 1, &ids, &n, &err), 0);
    cr_assert_eq(n, 1);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    store_close(s);
}

Test(push, pushcert_topic_change_refused_unless_forced)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_pushcert p, got;
    int64_t v;

    cr_assert_eq(store_pushcert_version(s, &v, &err), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(store_pushcert_get(s, &got, &err), SCEPTER_ENOTFOUND);
    p = (struct store_pushcert){.topic = (char *)"com.apple.mgmt.External.test",
                                .cert_pem = (char *)"-----BEGIN CERTIFICATE-----\nA\n",
                                .key_pem = (char *)"-----BEGIN PRIVATE KEY-----\nK\n",
                                .not_after = T0 + 86400};
    cr_assert_eq(store_pushcert_put(s, &p, false, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_pushcert_version(s, &v, &err), 0);
    cr_assert_eq(v, 1);
    /* The same again: no change, no new version. */
    cr_assert_eq(store_pushcert_put(s, &p, false, T0 + 1, &err), 0);
    cr_assert_eq(store_pushcert_version(s, &v, &err), 0);
    cr_assert_eq(v, 1);
    /* Renewed certificate, same topic. */
    p.cert_pem = (char *)"-----BEGIN CERTIFICATE-----\nB\n";
    cr_assert_eq(store_pushcert_put(s, &p, false, T0 + 2, &err), 0);
    cr_assert_eq(store_pushcert_version(s, &v, &err), 0);
    cr_assert_eq(v, 2);

    tf_enroll(s, "A", "iPhone14,2", T0);
    p.topic = (char *)"com.apple.mgmt.External.other";
    cr_assert_eq(store_pushcert_put(s, &p, false, T0 + 3, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "topic");
    cr_assert(strstr(err.msg, "com.apple.mgmt.External.test"), "%s", err.msg);
    cr_assert_eq(store_pushcert_get(s, &got, &err), 0);
    cr_assert_str_eq(got.topic, "com.apple.mgmt.External.test");
    cr_assert_eq(got.version, 2);
    store_pushcert_clear(&got);
    cr_assert_eq(store_pushcert_put(s, &p, true, T0 + 4, &err), 0, "%s", err.msg);
    cr_assert_eq(store_pushcert_get(s, &got, &err), 0);
    cr_assert_str_eq(got.topic, "com.apple.mgmt.External.other");
    cr_assert_str_eq(got.cert_pem, p.cert_pem);
    cr_assert_str_eq(got.key_pem, p.key_pem);
    cr_assert_eq(got.version, 3);
    cr_assert_eq(got.not_after, T0 + 86400);
    cr_assert_eq(got.updated, T0 + 4);
    store_pushcert_clear(&got);
    p.key_pem = NULL;
    cr_assert_eq(store_pushcert_put(s, &p, true, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "key");
    store_close(s);
}
