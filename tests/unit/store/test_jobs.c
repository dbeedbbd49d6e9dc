/*
 * API keys (hashes only), the outbox with claim leases, and background-job leases.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(jobs, .init = tf_setup, .fini = tf_teardown);

Test(jobs, apikeys)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_apikey *k;
    char h1[65], h2[65];
    int64_t id1, id2, id3, got;
    size_t n;

    tf_hash("key-1", h1);
    tf_hash("key-2", h2);
    cr_assert_eq(store_apikey_create(s, "ci", h1, STORE_ROLE_OPERATOR, T0, &id1, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_apikey_create(s, "again", h1, STORE_ROLE_OPERATOR, T0, &id3, &err),
                 SCEPTER_ECONFLICT);
    cr_assert_eq(store_apikey_create(s, "ops", h2, STORE_ROLE_OPERATOR, T0 + 1, &id2, &err), 0);
    cr_assert_eq(store_apikey_create(s, "bad", "abc", STORE_ROLE_OPERATOR, T0, &id3, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "hash");
    cr_assert_eq(store_apikey_check(s, h2, &got, &err), 0);
    cr_assert_eq(got, id2);
    cr_assert_eq(
        store_apikey_check(s, "0000000000000000000000000000000000000000000000000000000000000000",
                           &got, &err),
        SCEPTER_EAUTH);
    cr_assert_eq(err.http_status, 401);
    cr_assert_eq(store_apikey_check(s, "short", &got, &err), SCEPTER_EAUTH);
    cr_assert_eq(store_apikey_touch(s, id2, T0 + 500, &err), 0);
    cr_assert_eq(store_apikey_list(s, &k, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(k[0].name, "ci");
    cr_assert_eq(strlen(k[0].hash_prefix), 8);
    cr_assert_eq(strncmp(k[0].hash_prefix, h1, 8), 0);
    cr_assert_eq(k[1].last_used, T0 + 500);
    store_apikeys_free(k, n);
    cr_assert_eq(store_apikey_delete(s, id1, &err), 0);
    cr_assert_eq(store_apikey_delete(s, id1, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_apikey_check(s, h1, &got, &err), SCEPTER_EAUTH);
    store_close(s);
}

Test(jobs, outbox_claim_lease_retry_done)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store *s2 = tf_open();
    struct store_outbox_item *a, *b;
    size_t na, nb;
    int64_t pending;

    cr_assert_eq(store_outbox_add(s, "webhook", "{\"event\":\"one\"}", T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_outbox_add(s, "webhook", "{\"event\":\"two\"}", T0 + 1, &err), 0);
    cr_assert_eq(store_outbox_add(s, "webhook", "{\"event\":\"later\"}", T0 + 100, &err), 0);
    cr_assert_eq(store_outbox_add(s, "", "{}", T0, &err), SCEPTER_EINVAL);
    /* Two processes claim: each item goes to one of them. */
    cr_assert_eq(store_outbox_claim(s, T0 + 10, 60, 1, &a, &na, &err), 0, "%s", err.msg);
    cr_assert_eq(na, 1);
    cr_assert_str_eq(a[0].body, "{\"event\":\"one\"}");
    cr_assert_eq(a[0].attempts, 1);
    cr_assert_eq(a[0].next_at, T0 + 70);
    cr_assert_eq(store_outbox_claim(s2, T0 + 10, 60, 10, &b, &nb, &err), 0, "%s", err.msg);
    cr_assert_eq(nb, 1);
    cr_assert_str_eq(b[0].body, "{\"event\":\"two\"}");
    store_outbox_items_free(b, nb);
    cr_assert_eq(store_outbox_claim(s2, T0 + 20, 60, 10, &b, &nb, &err), 0);
    cr_assert_eq(nb, 0);
    store_outbox_items_free(b, nb);
    /* The first delivery fails: retry later; the lease of the second runs out. */
    cr_assert_eq(store_outbox_retry(s, a[0].id, T0 + 200, "HTTP 500", &err), 0);
    cr_assert_eq(store_outbox_claim(s2, T0 + 150, 60, 10, &b, &nb, &err), 0);
    cr_assert_eq(nb, 2);
    cr_assert_str_eq(b[0].body, "{\"event\":\"two\"}");
    cr_assert_eq(b[0].attempts, 2);
    cr_assert_str_eq(b[1].body, "{\"event\":\"later\"}");
    for (size_t i = 0; i < nb; i++)
        cr_assert_eq(store_outbox_done(s2, b[i].id, &err), 0);
    cr_assert_eq(store_outbox_pending(s, &pending, &err), 0);
    cr_assert_eq(pending, 1);
    cr_assert_eq(store_outbox_done(s, b[0].id, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_outbox_retry(s, b[0].id, T0, NULL, &err), SCEPTER_ENOTFOUND);
    store_outbox_items_free(a, na);
    store_outbox_items_free(b, nb);
    store_close(s2);
    store_close(s);
}

Test(jobs, leases)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store *s2 = tf_open();

    cr_assert_eq(store_lease(s, "retention", "host-a", T0, 60, &err), 1, "%s", err.msg);
    cr_assert_eq(store_lease(s2, "retention", "host-b", T0 + 10, 60, &err), 0);
    cr_assert_eq(store_lease(s, "retention", "host-a", T0 + 50, 60, &err), 1); /* renew */
    cr_assert_eq(store_lease(s2, "retention", "host-b", T0 + 100, 60, &err), 0);
    cr_assert_eq(store_lease(s2, "retention", "host-b", T0 + 110, 60, &err), 1); /* expired */
    cr_assert_eq(store_lease(s, "retention", "host-a", T0 + 111, 60, &err), 0);
    cr_assert_eq(store_lease(s, "repush", "host-a", T0 + 111, 60, &err), 1);
    cr_assert_eq(store_lease(s, "repush", "host-a", T0, 0, &err), SCEPTER_EINVAL);
    store_close(s2);
    store_close(s);
}
