/*
 * The outbox's dead letters: an item marked dead is kept but never claimed, is counted and
 * listed apart from the pending ones, and an operator can put it back (due at once, attempts
 * from 0) or drop it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(webhook_dead, .init = tf_setup, .fini = tf_teardown);

static int64_t claim_one(struct store *s, int64_t now, int *attempts)
{
    struct store_outbox_item *it;
    struct scepter_error err;
    size_t n;

    cr_assert_eq(store_outbox_claim(s, now, 60, 1, &it, &n, &err), 0, "%s", err.msg);
    if (n == 0) {
        store_outbox_items_free(it, n);
        return 0;
    }
    int64_t id = it[0].id;
    if (attempts)
        *attempts = it[0].attempts;
    store_outbox_items_free(it, n);
    return id;
}

Test(webhook_dead, kill_list_retry_drop)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_dead_item *d;
    int64_t pending, dead, moved, a, b;
    int attempts = 0;
    size_t n;

    cr_assert_eq(store_outbox_add(s, "webhook", "{\"n\":1}", T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_outbox_add(s, "webhook", "{\"n\":2}", T0, &err), 0);
    cr_assert_eq(store_outbox_add(s, "other", "{\"n\":3}", T0 + 500, &err), 0);
    a = claim_one(s, T0, &attempts);
    cr_assert_eq(attempts, 1);
    cr_assert_eq(store_outbox_kill(s, a, T0 + 5, "HTTP 500", &err), 0, "%s", err.msg);
    cr_assert_eq(store_outbox_kill(s, a, T0 + 6, "again", &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_outbox_kill(s, 999999, T0, "x", &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "id");
    /* Not claimed any more, not pending, counted as dead. */
    b = claim_one(s, T0 + 1000, NULL);
    cr_assert_neq(b, a);
    cr_assert_neq(b, 0);
    cr_assert_eq(store_outbox_retry(s, a, T0, "late", &err), SCEPTER_ENOTFOUND,
                 "a dead letter is not rescheduled by a late retry");
    cr_assert_eq(store_outbox_pending(s, &pending, &err), 0);
    cr_assert_eq(pending, 2);
    cr_assert_eq(store_outbox_dead_count(s, "webhook", &dead, &err), 0);
    cr_assert_eq(dead, 1);
    cr_assert_eq(store_outbox_dead_count(s, "other", &dead, &err), 0);
    cr_assert_eq(dead, 0);
    cr_assert_eq(store_outbox_dead_list(s, "webhook", 10, &d, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(d[0].id, a);
    cr_assert_str_eq(d[0].body, "{\"n\":1}");
    cr_assert_str_eq(d[0].kind, "webhook");
    cr_assert_str_eq(d[0].last_error, "HTTP 500");
    cr_assert_eq(d[0].attempts, 1);
    cr_assert_eq(d[0].created, T0);
    cr_assert_eq(d[0].dead_at, T0 + 5);
    store_dead_items_free(d, n);
    cr_assert_eq(store_outbox_dead_list(s, "other", 10, &d, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_dead_items_free(d, n);

    /* Retry one: due now, attempts from 0, claimed again. */
    cr_assert_eq(store_outbox_dead_retry(s, "webhook", b, T0 + 10, &moved, &err), SCEPTER_ENOTFOUND,
                 "a live item is not a dead letter");
    cr_assert_eq(store_outbox_dead_retry(s, "other", a, T0 + 10, &moved, &err), SCEPTER_ENOTFOUND,
                 "another kind's");
    cr_assert_eq(store_outbox_dead_retry(s, "webhook", a, T0 + 10, &moved, &err), 0, "%s", err.msg);
    cr_assert_eq(moved, 1);
    cr_assert_eq(claim_one(s, T0 + 10, &attempts), a);
    cr_assert_eq(attempts, 1, "attempts start again");

    /* Kill both webhook items, retry all, then drop one. */
    cr_assert_eq(store_outbox_kill(s, a, T0 + 20, "HTTP 502", &err), 0);
    cr_assert_eq(store_outbox_kill(s, b, T0 + 21, NULL, &err), 0);
    cr_assert_eq(store_outbox_dead_list(s, "webhook", 10, &d, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(d[0].id, b, "newest first");
    store_dead_items_free(d, n);
    cr_assert_eq(store_outbox_dead_list(s, "webhook", 1, &d, &n, &err), 0);
    cr_assert_eq(n, 1, "limit");
    store_dead_items_free(d, n);
    cr_assert_eq(store_outbox_dead_retry(s, "webhook", 0, T0 + 30, &moved, &err), 0);
    cr_assert_eq(moved, 2);
    cr_assert_eq(store_outbox_dead_count(s, "webhook", &dead, &err), 0);
    cr_assert_eq(dead, 0);
    cr_assert_eq(store_outbox_kill(s, a, T0 + 40, "x", &err), 0);
    cr_assert_eq(store_outbox_dead_delete(s, "webhook", b, &err), SCEPTER_ENOTFOUND,
                 "only dead letters are dropped");
    cr_assert_eq(store_outbox_dead_delete(s, "webhook", a, &err), 0, "%s", err.msg);
    cr_assert_eq(store_outbox_dead_delete(s, "webhook", a, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_outbox_pending(s, &pending, &err), 0);
    cr_assert_eq(pending, 2, "b and the other kind's item");
    cr_assert_eq(store_outbox_dead_count(s, "", &dead, &err), SCEPTER_EINVAL);
    store_close(s);
}
