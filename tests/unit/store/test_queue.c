/*
 * The command queue and the connect exchange: order, acknowledgement, duplicates, results
 * for commands that are not queued, the NotNow exchange rules, at-least-once delivery,
 * re-Authenticate, bulk enqueue, operator views, retention, and two connections racing on
 * one queue.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "fixture.h"

TestSuite(queue, .init = tf_setup, .fini = tf_teardown);

static void enqueue_one(struct store *s, const char *enrollment, unsigned n, int priority,
                        int64_t now, char uuid[37])
{
    struct scepter_error err;
    const char *ids[] = {enrollment};
    struct store_command c;

    tf_uuid(n, uuid);
    c = tf_cmd(uuid, "ProfileList", priority);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, now, &err), 0, "enqueue: %s", err.msg);
}

Test(queue, fifo_within_priority_and_ack_finishes)
{
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    char u1[37], u2[37], u3[37], u4[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0, &next, &out), 0);
    cr_assert_eq(out, STORE_REPORT_IDLE);
    enqueue_one(s, "D", 1, 0, T0 + 1, u1);
    enqueue_one(s, "D", 2, 0, T0 + 1, u2); /* same second: insertion order decides */
    enqueue_one(s, "D", 3, 5, T0 + 2, u3); /* higher priority first */
    enqueue_one(s, "D", 4, 0, T0 + 0, u4); /* older */

    const char *expect[] = {u3, u4, u1, u2};
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 3, &next, &out), 1);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(next.uuid, expect[i], "step %d", i);
        cr_assert_str_eq(next.request_type, "ProfileList");
        cr_assert_gt(next.plist_len, 10);
        cr_assert(memmem(next.plist, next.plist_len, "<plist", 6) != NULL);
        char done[37];
        memcpy(done, next.uuid, sizeof(done));
        store_next_clear(&next);
        int rc = tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, done, T0 + 4, &next, &out);
        cr_assert_eq(out, STORE_REPORT_RECORDED);
        cr_assert_eq(rc, i < 3 ? 1 : 0);
    }
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 5, &next, &out), 0);
    store_close(s);
}

Test(queue, duplicate_and_unknown_reports_change_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_result res;
    char u1[37], u2[37], ghost[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    enqueue_one(s, "D", 2, 0, T0, u2);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ERROR, u1, T0 + 1, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    cr_assert_str_eq(next.uuid, u2);
    store_next_clear(&next);
    /* The device did not get our 2xx and sends the same result again. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u1, T0 + 2, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_DUPLICATE);
    store_next_clear(&next);
    cr_assert_eq(store_result_get(s, "D", u1, &res, &err), 0, "%s", err.msg);
    cr_assert_str_eq(res.status, "Error", "a duplicate must not overwrite the result");
    cr_assert_str_eq(res.error_chain_json, "[{\"ErrorCode\":12021}]");
    cr_assert_eq(res.result_at, T0 + 1);
    cr_assert_not_null(res.raw);
    store_result_clear(&res);

    /* A result for a command that was never queued here. */
    tf_uuid(99, ghost);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, ghost, T0 + 3, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_UNKNOWN_COMMAND);
    store_next_clear(&next);
    cr_assert_eq(store_result_get(s, "D", ghost, &res, &err), SCEPTER_ENOTFOUND);
    /* Another device's command. */
    cr_assert_eq(tf_connect(s, "E", STORE_STATUS_ACKNOWLEDGED, u2, T0 + 3, &next, &out), 0);
    cr_assert_eq(out, STORE_REPORT_UNKNOWN_COMMAND);
    /* Cancelled meanwhile: ignored, not stored. */
    cr_assert_eq(store_queue_cancel(s, "D", u2, &err), 0, "%s", err.msg);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u2, T0 + 4, &next, &out), 0);
    cr_assert_eq(out, STORE_REPORT_UNKNOWN_COMMAND);
    cr_assert_eq(store_result_get(s, "D", u2, &res, &err), 0);
    cr_assert_str_eq(res.status, "cancelled");
    cr_assert_null(res.raw);
    cr_assert_eq(res.result_at, 0);
    store_result_clear(&res);
    store_close(s);
}

Test(queue, notnow_skips_for_the_exchange_and_returns_on_idle)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_queue_item *items;
    size_t n;
    char u1[37], u2[37], u3[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    enqueue_one(s, "D", 2, 0, T0, u2);
    enqueue_one(s, "D", 3, 0, T0, u3);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 1, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u1);
    store_next_clear(&next);
    /* NotNow: recorded, the next command is the following one. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_NOTNOW, u1, T0 + 2, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    cr_assert_str_eq(next.uuid, u2);
    store_next_clear(&next);
    /* A repeated NotNow in the same exchange is a duplicate (counted once). */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_NOTNOW, u1, T0 + 2, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_DUPLICATE);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_NOTNOW, u2, T0 + 3, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u3);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u3, T0 + 4, &next, &out), 0,
                 "NotNow commands are skipped for the rest of the exchange");
    cr_assert_eq(out, STORE_REPORT_RECORDED);

    cr_assert_eq(store_queue_list(s, "D", false, &items, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(items[0].uuid, u1);
    cr_assert_str_eq(items[0].status, "NotNow");
    cr_assert_eq(items[0].notnow_count, 1);
    cr_assert_eq(items[0].last_notnow_at, T0 + 2);
    cr_assert(items[0].active);
    store_queue_items_free(items, n);

    /* The next Idle starts a new exchange: both are offered again, in order. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 10, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u1);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_NOTNOW, u1, T0 + 11, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    cr_assert_str_eq(next.uuid, u2);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u2, T0 + 12, &next, &out), 0);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 20, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u1);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u1, T0 + 21, &next, &out), 0);

    struct store_result res;
    cr_assert_eq(store_result_get(s, "D", u1, &res, &err), 0);
    cr_assert_str_eq(res.status, "Acknowledged");
    cr_assert_eq(res.notnow_count, 2);
    store_result_clear(&res);
    store_close(s);
}

Test(queue, unanswered_command_is_offered_again)
{
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    char u1[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + i, &next, &out), 1);
        cr_assert_str_eq(next.uuid, u1);
        store_next_clear(&next);
    }
    store_close(s);
}

Test(queue, reauthenticate_clears_queue_and_tokens)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_enrollment e;
    struct store_queue_item *items;
    struct store_push_target *pt;
    const char *ids[] = {"D"};
    size_t n;
    char u1[37], u2[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    tf_authenticate(s, "D", "iPhone14,2", T0 + 10);
    cr_assert_eq(store_enrollment_get(s, "D", &e, &err), 0);
    cr_assert_not(e.enabled);
    cr_assert_not(e.token_valid);
    store_enrollment_clear(&e);
    cr_assert_eq(store_push_targets(s, ids, 1, &pt, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_push_targets_free(pt, n);
    /* Not enabled until the next TokenUpdate: connect is refused. */
    struct store_report rep = {.enrollment_id = "D", .device_id = "D", .status = STORE_STATUS_IDLE};
    cr_assert_eq(store_connect(s, &rep, T0 + 11, &next, &out, &err), SCEPTER_ENOTFOUND);
    cr_assert(strstr(err.msg, "not enabled"), "%s", err.msg);
    tf_enroll(s, "D", "iPhone14,2", T0 + 12);
    cr_assert_eq(store_queue_list(s, "D", true, &items, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(items[0].status, "cancelled");
    store_queue_items_free(items, n);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 13, &next, &out), 0,
                 "the stale command must not be delivered");
    /* The old command's late result is ignored. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u1, T0 + 14, &next, &out), 0);
    cr_assert_eq(out, STORE_REPORT_UNKNOWN_COMMAND);
    enqueue_one(s, "D", 2, 0, T0 + 15, u2);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 16, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u2);
    store_next_clear(&next);
    store_close(s);
}

Test(queue, connect_refusals)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    char hash[65];

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    tf_hash("cert-E", hash);
    struct store_report rep = {
        .enrollment_id = "D", .device_id = "D", .cert_hash = hash, .status = STORE_STATUS_IDLE};
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EFORBIDDEN);
    cr_assert_str_eq(err.field, "cert_hash");
    rep.device_id = "E"; /* E's certificate and id, D's channel */
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EFORBIDDEN);
    rep.enrollment_id = "nobody";
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_ENOTFOUND);
    rep.enrollment_id = "E";
    rep.status = STORE_STATUS_ACKNOWLEDGED;
    rep.command_uuid = NULL;
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "CommandUUID");
    rep.status = (enum store_status)17;
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EINVAL);
    rep.status = STORE_STATUS_IDLE;
    rep.cert_hash = "xyz";
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EINVAL);
    store_close(s);
}

Test(queue, refused_report_records_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_result res;
    char hash[65], u1[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    tf_hash("cert-E", hash);
    struct store_report rep = {.enrollment_id = "D",
                               .device_id = "D",
                               .cert_hash = hash,
                               .status = STORE_STATUS_ACKNOWLEDGED,
                               .command_uuid = u1,
                               .raw = (const unsigned char *)"x",
                               .raw_len = 1};
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EFORBIDDEN);
    cr_assert_eq(store_result_get(s, "D", u1, &res, &err), 0);
    cr_assert_str_eq(res.status, "queued");
    store_result_clear(&res);
    store_close(s);
}

Test(queue, enqueue_errors_write_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_command c;
    int64_t depth;
    const char *ids[] = {"D", "ghost"};
    char u1[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_uuid(1, u1);
    c = tf_cmd(u1, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 2, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert(strstr(err.msg, "ghost"), "%s", err.msg);
    cr_assert_str_eq(err.field, "enrollment_ids");
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 0);
    /* The UUID was not kept either: the same command can be queued now. */
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "CommandUUID");
    /* Duplicated ids are queued once. */
    const char *dup[] = {"D", "D"};
    tf_uuid(2, u1);
    c = tf_cmd(u1, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, dup, 2, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 2);
    /* Bad input. */
    c = tf_cmd("not-a-uuid", "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "CommandUUID");
    tf_uuid(3, u1);
    c = tf_cmd(u1, "", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "RequestType");
    c = tf_cmd(u1, "ProfileList", 0);
    c.plist_len = 0;
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0, &err), SCEPTER_EINVAL);
    c = tf_cmd(u1, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 0, T0, &err), SCEPTER_EINVAL);
    store_close(s);
}

Test(queue, bulk_enqueue_and_enqueue_each)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    enum { N = 300 };
    char *ids[N];
    struct store_command cmds[N];
    struct store_command one;
    char uuid[37];
    int64_t depth;
    int i;

    for (i = 0; i < N; i++) {
        ids[i] = xasprintf("DEV-%04d", i);
        tf_enroll(s, ids[i], i % 2 ? "iPhone14,2" : "MacBookPro18,3", T0);
    }
    tf_uuid(100000, uuid);
    one = tf_cmd(uuid, "DeviceInformation", 0);
    cr_assert_eq(store_enqueue(s, &one, (const char *const *)ids, N, T0 + 1, &err), 0, "%s",
                 err.msg);
    for (i = 0; i < N; i++) {
        char u[37];
        tf_uuid((unsigned)i + 1, u);
        cmds[i] = tf_cmd(u, "InstallProfile", 0);
    }
    cr_assert_eq(store_enqueue_each(s, cmds, (const char *const *)ids, N, T0 + 2, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 2 * N);
    /* Each device gets the shared command, then its own. */
    cr_assert_eq(tf_connect(s, "DEV-0123", STORE_STATUS_IDLE, NULL, T0 + 3, &next, &out), 1);
    cr_assert_str_eq(next.uuid, uuid);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "DEV-0123", STORE_STATUS_ACKNOWLEDGED, uuid, T0 + 3, &next, &out),
                 1);
    cr_assert_str_eq(next.uuid, cmds[123].uuid);
    cr_assert_str_eq(next.request_type, "InstallProfile");
    store_next_clear(&next);

    /* An unknown enrollment or a repeated UUID in enqueue_each writes nothing. */
    struct store_command more[2];
    const char *more_ids[] = {"DEV-0001", "ghost"};
    char u[37];
    tf_uuid(5000, u);
    more[0] = tf_cmd(u, "InstallProfile", 0);
    tf_uuid(5001, u);
    more[1] = tf_cmd(u, "InstallProfile", 0);
    cr_assert_eq(store_enqueue_each(s, more, more_ids, 2, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert(strstr(err.msg, "ghost"), "%s", err.msg);
    more_ids[1] = "DEV-0002";
    more[1] = cmds[7]; /* already exists */
    cr_assert_eq(store_enqueue_each(s, more, more_ids, 2, T0, &err), SCEPTER_ECONFLICT);
    cr_assert(strstr(err.msg, cmds[7].uuid), "%s", err.msg);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 2 * N - 1, "nothing written by the refused calls");
    /* The same UUID carrying two different commands is refused. */
    more[1] = more[0];
    more[1].request_type = "RemoveProfile";
    cr_assert_eq(store_enqueue_each(s, more, more_ids, 2, T0, &err), SCEPTER_ECONFLICT);
    cr_assert(strstr(err.msg, "different"), "%s", err.msg);
    cr_assert_str_eq(err.field, "CommandUUID");
    /* The same command (same UUID) for two enrollments: stored once, queued for both. */
    more[1] = more[0];
    cr_assert_eq(store_enqueue_each(s, more, more_ids, 2, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 2 * N + 1);
    struct store_result shared;
    cr_assert_eq(store_result_get(s, "DEV-0002", more[0].uuid, &shared, &err), 0, "%s", err.msg);
    cr_assert_str_eq(shared.status, "queued");
    store_result_clear(&shared);
    for (i = 0; i < N; i++)
        free(ids[i]);
    store_close(s);
}

Test(queue, operator_list_cancel_clear)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_queue_item *items;
    size_t n, cancelled;
    char u1[37], u2[37], u3[37];

    tf_enroll(s, "D", "iPhone14,2", T0);
    enqueue_one(s, "D", 1, 0, T0, u1);
    enqueue_one(s, "D", 2, 0, T0 + 1, u2);
    enqueue_one(s, "D", 3, 0, T0 + 2, u3);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u1, T0 + 3, &next, &out), 1);
    store_next_clear(&next);
    cr_assert_eq(store_queue_list(s, "D", false, &items, &n, &err), 0);
    cr_assert_eq(n, 2);
    store_queue_items_free(items, n);
    cr_assert_eq(store_queue_list(s, "D", true, &items, &n, &err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(items[0].status, "Acknowledged");
    cr_assert_eq(items[0].result_at, T0 + 3);
    cr_assert_not(items[0].active);
    cr_assert_str_eq(items[1].status, "queued");
    cr_assert_eq(items[1].created, T0 + 1);
    store_queue_items_free(items, n);

    cr_assert_eq(store_queue_cancel(s, "D", u1, &err), SCEPTER_ECONFLICT);
    cr_assert_eq(store_queue_cancel(s, "D", "00000000-0000-4000-8000-00000000FFFF", &err),
                 SCEPTER_ENOTFOUND);
    cr_assert_eq(store_queue_cancel(s, "D", u2, &err), 0, "%s", err.msg);
    cr_assert_eq(store_queue_cancel(s, "D", u2, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 4, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u3);
    store_next_clear(&next);
    cr_assert_eq(store_queue_clear(s, "D", &cancelled, &err), 0);
    cr_assert_eq(cancelled, 1);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 5, &next, &out), 0);
    cr_assert_eq(store_queue_clear(s, "ghost", &cancelled, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_queue_list(s, "ghost", true, &items, &n, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(queue, retention_deletes_old_finished_entries_in_batches)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_queue_item *items;
    struct store_result res;
    size_t n, deleted;
    char u[37], keep[37], fresh[37];
    int i;

    tf_enroll(s, "D", "iPhone14,2", T0);
    for (i = 0; i < 25; i++) {
        enqueue_one(s, "D", (unsigned)i + 1, 0, T0, u);
        cr_assert_geq(tf_connect(s, "D", i % 2 ? STORE_STATUS_ERROR : STORE_STATUS_ACKNOWLEDGED, u,
                                 T0 + 10, &next, &out),
                      0);
        store_next_clear(&next);
    }
    enqueue_one(s, "D", 100, 0, T0, keep); /* pending: kept whatever its age */
    enqueue_one(s, "D", 101, 0, T0 + 50, fresh);
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, fresh, T0 + 100, &next, &out), 1);
    store_next_clear(&next);

    cr_assert_eq(store_retention(s, T0 + 50, 4, &deleted, &err), 0, "%s", err.msg);
    cr_assert_eq(deleted, 25);
    cr_assert_eq(store_queue_list(s, "D", true, &items, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(items[0].uuid, keep);
    cr_assert_str_eq(items[1].uuid, fresh);
    store_queue_items_free(items, n);
    cr_assert_eq(store_result_get(s, "D", fresh, &res, &err), 0);
    store_result_clear(&res);
    /* The commands went too: the UUIDs can be reused. */
    tf_uuid(1, u);
    struct store_command c = tf_cmd(u, "ProfileList", 0);
    const char *ids[] = {"D"};
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0 + 200, &err), 0, "%s", err.msg);
    cr_assert_eq(store_retention(s, T0 + 50, 0, &deleted, &err), SCEPTER_EINVAL);
    cr_assert_eq(store_retention(s, T0 + 50, 100, &deleted, &err), 0);
    cr_assert_eq(deleted, 0);
    store_close(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Two connections racing on the same queue while a third enqueues.                          */

enum { RACE_DEVICES = 8, RACE_COMMANDS = 30 };

struct racer {
    int id;
    _Atomic int *enqueued; /* set by the enqueuer when it is done */
    int errors, recorded, duplicates, unknown;
    char msg[256];
};

static void *race_enqueue(void *arg)
{
    struct racer *r = arg;
    struct scepter_error err;
    struct store *s = NULL;
    const char *ids[RACE_DEVICES];
    char names[RACE_DEVICES][16];
    int i;

    if (store_open(tf_url(), &s, &err) != 0) {
        r->errors++;
        memcpy(r->msg, err.msg, sizeof(r->msg));
        *r->enqueued = 1;
        return NULL;
    }
    for (i = 0; i < RACE_DEVICES; i++) {
        snprintf(names[i], sizeof(names[i]), "R%d", i);
        ids[i] = names[i];
    }
    for (i = 0; i < RACE_COMMANDS; i++) {
        char u[37];
        tf_uuid(10000 + (unsigned)i, u);
        struct store_command c = tf_cmd(u, "ProfileList", i % 3);
        if (store_enqueue(s, &c, ids, RACE_DEVICES, T0 + i, &err) != 0) {
            r->errors++;
            memcpy(r->msg, err.msg, sizeof(r->msg));
        }
    }
    store_close(s);
    *r->enqueued = 1;
    return NULL;
}

/* Poll every device and acknowledge what comes back, until nothing is left or the bound. */
static void *race_deliver(void *arg)
{
    struct racer *r = arg;
    struct scepter_error err;
    struct store *s = NULL;
    int round, i, idle_rounds = 0;

    if (store_open(tf_url(), &s, &err) != 0) {
        r->errors++;
        memcpy(r->msg, err.msg, sizeof(r->msg));
        return NULL;
    }
    /* Bounded: at most 20000 rounds; done after 3 empty rounds once the enqueuer is. */
    for (round = 0; round < 20000 && !(*r->enqueued && idle_rounds >= 3); round++) {
        int got = 0;
        for (i = 0; i < RACE_DEVICES; i++) {
            char dev[16], hash[65], seed[32];
            struct store_next next = {0};
            enum store_report_outcome out;
            int rc, steps;

            snprintf(dev, sizeof(dev), "R%d", (i + r->id * 3) % RACE_DEVICES);
            snprintf(seed, sizeof(seed), "cert-%s", dev);
            tf_hash(seed, hash);
            struct store_report rep = {.enrollment_id = dev,
                                       .device_id = dev,
                                       .cert_hash = hash,
                                       .status = STORE_STATUS_IDLE};
            rc = store_connect(s, &rep, T0 + 1000, &next, &out, &err);
            for (steps = 0; rc == 1 && steps < 10; steps++) {
                char uuid[37];
                got++;
                memcpy(uuid, next.uuid, sizeof(uuid));
                store_next_clear(&next);
                rep.status = STORE_STATUS_ACKNOWLEDGED;
                rep.command_uuid = uuid;
                rep.raw = (const unsigned char *)"ok";
                rep.raw_len = 2;
                rc = store_connect(s, &rep, T0 + 1000, &next, &out, &err);
                if (rc >= 0) {
                    r->recorded += out == STORE_REPORT_RECORDED;
                    r->duplicates += out == STORE_REPORT_DUPLICATE;
                    r->unknown += out == STORE_REPORT_UNKNOWN_COMMAND;
                }
            }
            store_next_clear(&next);
            if (rc < 0) {
                r->errors++;
                memcpy(r->msg, err.msg, sizeof(r->msg));
            }
        }
        idle_rounds = got ? 0 : idle_rounds + 1;
    }
    store_close(s);
    return NULL;
}

Test(queue, two_connections_race_on_one_queue)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct racer r[3];
    pthread_t t[3];
    int64_t depth;
    int i;

    for (i = 0; i < RACE_DEVICES; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "R%d", i);
        tf_enroll(s, dev, "iPhone14,2", T0);
    }
    _Atomic int enqueued = 0;
    memset(r, 0, sizeof(r));
    for (i = 0; i < 3; i++) {
        r[i].id = i;
        r[i].enqueued = &enqueued;
    }
    cr_assert_eq(pthread_create(&t[0], NULL, race_enqueue, &r[0]), 0);
    cr_assert_eq(pthread_create(&t[1], NULL, race_deliver, &r[1]), 0);
    cr_assert_eq(pthread_create(&t[2], NULL, race_deliver, &r[2]), 0);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < 3; i++)
        cr_assert_eq(r[i].errors, 0, "thread %d: %d errors, last: %s", i, r[i].errors, r[i].msg);
    /* Whatever the interleaving: each command recorded exactly once per device, none lost. */
    cr_assert_eq(r[1].recorded + r[2].recorded, RACE_DEVICES * RACE_COMMANDS, "recorded %d + %d",
                 r[1].recorded, r[2].recorded);
    cr_assert_eq(r[1].unknown + r[2].unknown, 0);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 0);
    for (i = 0; i < RACE_DEVICES; i++) {
        char dev[16];
        struct store_queue_item *items;
        size_t n;
        snprintf(dev, sizeof(dev), "R%d", i);
        cr_assert_eq(store_queue_list(s, dev, true, &items, &n, &err), 0);
        cr_assert_eq(n, RACE_COMMANDS);
        for (size_t k = 0; k < n; k++)
            cr_assert_str_eq(items[k].status, "Acknowledged");
        store_queue_items_free(items, n);
    }
    store_close(s);
}

/* Many Idle polls answered at once (one statement on PostgreSQL) answer each poll exactly as
 * store_connect would: next command, refusals, unknown or disabled enrollments, bad input,
 * and a NotNow flag cleared for a new exchange. */
Test(queue, idle_many_answers_each_poll_like_store_connect)
{
    struct store *s = tf_open();
    struct store_next next, nexts[9];
    struct scepter_error errs[9];
    enum store_report_outcome out;
    char u1[37], u2[37], u3[37], u4[37];
    char hd[65], he[65], hf[65], ha[65];
    int rcs[9];

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    tf_enroll(s, "F", "Mac14,2", T0);
    tf_authenticate(s, "A", "iPhone14,2", T0); /* no TokenUpdate: not enabled */
    enqueue_one(s, "D", 1, 0, T0, u1);
    enqueue_one(s, "D", 2, 5, T0, u2);
    enqueue_one(s, "F", 3, 0, T0, u3);
    enqueue_one(s, "F", 4, 0, T0, u4);
    /* F defers u3: flagged for the rest of that exchange. */
    cr_assert_eq(tf_connect(s, "F", STORE_STATUS_IDLE, NULL, T0 + 1, &next, &out), 1);
    store_next_clear(&next);
    cr_assert_eq(tf_connect(s, "F", STORE_STATUS_NOTNOW, u3, T0 + 2, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u4);
    store_next_clear(&next);

    tf_hash("cert-D", hd);
    tf_hash("cert-E", he);
    tf_hash("cert-F", hf);
    tf_hash("cert-A", ha);
    struct store_report reps[9] = {
        {.enrollment_id = "D", .device_id = "D", .cert_hash = hd, .status = STORE_STATUS_IDLE},
        {.enrollment_id = "E", .device_id = "E", .cert_hash = he, .status = STORE_STATUS_IDLE},
        {.enrollment_id = "F", .device_id = "F", .cert_hash = hf, .status = STORE_STATUS_IDLE},
        {.enrollment_id = "D", .device_id = "D", .cert_hash = he, .status = STORE_STATUS_IDLE},
        {.enrollment_id = "nobody", .device_id = "nobody", .status = STORE_STATUS_IDLE},
        {.enrollment_id = "A", .device_id = "A", .cert_hash = ha, .status = STORE_STATUS_IDLE},
        {.enrollment_id = "E", .device_id = "E", .cert_hash = "xyz", .status = STORE_STATUS_IDLE},
        {.enrollment_id = "E", .status = STORE_STATUS_IDLE}, /* no certificate, no device id */
        {.enrollment_id = "D", .device_id = "D", .cert_hash = hd, .status = STORE_STATUS_IDLE},
    };
    cr_assert_eq(store_connect_idle_many(s, reps, 9, T0 + 10, nexts, rcs, errs), 0);
    cr_assert_eq(rcs[0], 1, "D: %d %s", rcs[0], errs[0].msg);
    cr_assert_str_eq(nexts[0].uuid, u2, "the highest priority first");
    cr_assert_str_eq(nexts[0].request_type, "ProfileList");
    cr_assert(nexts[0].plist_len > 0);
    cr_assert_eq(rcs[1], 0, "E: empty queue (%d %s)", rcs[1], errs[1].msg);
    cr_assert_eq(rcs[2], 1, "F: %d %s", rcs[2], errs[2].msg);
    cr_assert_str_eq(nexts[2].uuid, u3, "a new exchange offers the deferred command again");
    cr_assert_eq(rcs[3], SCEPTER_EFORBIDDEN, "E's certificate on D's channel");
    cr_assert_str_eq(errs[3].field, "cert_hash");
    cr_assert_eq(rcs[4], SCEPTER_ENOTFOUND);
    cr_assert_eq(rcs[5], SCEPTER_ENOTFOUND, "not enabled before its TokenUpdate");
    cr_assert_eq(rcs[6], SCEPTER_EINVAL);
    cr_assert_str_eq(errs[6].field, "cert_hash");
    cr_assert_eq(rcs[7], 0, "E without a certificate: %d %s", rcs[7], errs[7].msg);
    cr_assert_eq(rcs[8], 1, "the same enrollment twice in one batch");
    cr_assert_str_eq(nexts[8].uuid, u2);
    for (int i = 0; i < 9; i++)
        store_next_clear(&nexts[i]);

    /* More polls than one statement takes (16): answered in chunks, each in its place. */
    struct store_report many[40];
    struct store_next mnext[40];
    struct scepter_error merr[40];
    int mrc[40];
    for (int i = 0; i < 40; i++)
        many[i] = i % 3 == 0 ? reps[0] : reps[1];
    many[17] = reps[6]; /* a bad hash in the second chunk */
    cr_assert_eq(store_connect_idle_many(s, many, 40, T0 + 10, mnext, mrc, merr), 0);
    for (int i = 0; i < 40; i++) {
        if (i == 17)
            cr_assert_eq(mrc[i], SCEPTER_EINVAL);
        else if (i % 3 == 0)
            cr_assert(mrc[i] == 1 && strcmp(mnext[i].uuid, u2) == 0, "poll %d: %d", i, mrc[i]);
        else
            cr_assert_eq(mrc[i], 0, "poll %d: %d %s", i, mrc[i], merr[i].msg);
        store_next_clear(&mnext[i]);
    }

    /* F's flag was cleared: deferring u3 again is a new NotNow, not a duplicate. */
    cr_assert_eq(tf_connect(s, "F", STORE_STATUS_NOTNOW, u3, T0 + 11, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    cr_assert_str_eq(next.uuid, u4);
    store_next_clear(&next);
    store_close(s);
}

/* Expiry: from its time on, an entry is skipped by every next-command lookup (Idle, a report,
 * the batched Idle) even before store_queue_expire makes it final ("Expired"); entries
 * without expiry, or not yet due, are untouched. */
Test(queue, expired_entries_are_never_handed_out_and_end_expired)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_queue_item *items = NULL;
    size_t n = 0, expired = 0;
    char u1[37], u2[37], u3[37];
    const char *ids[] = {"D"};

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_uuid(1, u1);
    tf_uuid(2, u2);
    tf_uuid(3, u3);
    struct store_command c1 = tf_cmd(u1, "ProfileList", 5), c2 = tf_cmd(u2, "ProfileList", 0),
                         c3 = tf_cmd(u3, "ProfileList", 0);
    c1.expires = T0 + 10;
    c3.expires = T0 + 1000;
    cr_assert_eq(store_enqueue(s, &c1, ids, 1, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_enqueue_each(s, &c2, ids, 1, T0, &err), 0, "%s", err.msg);
    cr_assert_eq(store_enqueue(s, &c3, ids, 1, T0 + 1, &err), 0, "%s", err.msg);

    /* Before its time it is first (priority 5). */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 9, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u1);
    store_next_clear(&next);
    /* At its time it is skipped by Idle, by the batched Idle and after a report. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 10, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u2);
    store_next_clear(&next);
    {
        struct store_report rep = {.enrollment_id = "D", .status = STORE_STATUS_IDLE};
        int rc = 0;
        struct scepter_error e1;
        memset(&next, 0, sizeof(next));
        cr_assert_eq(store_connect_idle_many(s, &rep, 1, T0 + 10, &next, &rc, &e1), 0);
        cr_assert_eq(rc, 1);
        cr_assert_str_eq(next.uuid, u2);
        store_next_clear(&next);
    }
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u2, T0 + 11, &next, &out), 1);
    cr_assert_str_eq(next.uuid, u3, "the expired one is not handed out after a report");
    store_next_clear(&next);

    cr_assert_eq(store_queue_expire(s, T0 + 11, 1000, &expired, &err), 0, "%s", err.msg);
    cr_assert_eq(expired, 1);
    cr_assert_eq(store_queue_expire(s, T0 + 11, 1000, &expired, &err), 0, "%s", err.msg);
    cr_assert_eq(expired, 0, "already final");
    cr_assert_eq(store_queue_list(s, "D", false, &items, &n, &err), 0);
    cr_assert_eq(n, 1, "only the one due later is still queued");
    cr_assert_str_eq(items[0].uuid, u3);
    cr_assert_eq(items[0].expires, T0 + 1000);
    store_queue_items_free(items, n);
    cr_assert_eq(store_queue_list(s, "D", true, &items, &n, &err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(items[0].uuid, u1);
    cr_assert_str_eq(items[0].status, "Expired");
    cr_assert_not(items[0].active);
    store_queue_items_free(items, n);
    /* A late result for it changes nothing. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_ACKNOWLEDGED, u1, T0 + 12, &next, &out), 1);
    cr_assert_eq(out, STORE_REPORT_UNKNOWN_COMMAND);
    store_next_clear(&next);
    cr_assert_eq(store_queue_expire(s, T0, 0, &expired, &err), SCEPTER_EINVAL);
    store_close(s);
}

/* A batch of result reports from several devices (store_connect_many): each report gets what
 * store_connect would have given it alone — recorded, duplicate, unknown command, or its own
 * refusal — and the store holds exactly the valid results.  One report the database itself
 * refuses (a CommandUUID that is not UTF-8: PostgreSQL rejects the text) fails alone; the
 * rest of its batch is kept. */
static void check_result(struct store *s, const char *eid, const char *uuid, const char *want)
{
    struct scepter_error err;
    struct store_result res;

    cr_assert_eq(store_result_get(s, eid, uuid, &res, &err), 0, "%s %s: %s", eid, uuid, err.msg);
    cr_assert_str_eq(res.status, want, "%s %s", eid, uuid);
    store_result_clear(&res);
}

static void report_batch(bool inject)
{
    struct store *s = tf_open();
    struct store_answer a[12];
    char u1[37], u2[37], u3[37], u4[37], u5[37], u6[37], u7[37], ghost[37];
    char hd[65], he[65], hf[65], hg[65], ha[65];
    static const unsigned char raw[] = "<plist><dict><key>Status</key></dict></plist>";

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    tf_enroll(s, "F", "Mac14,2", T0);
    tf_enroll(s, "G", "Mac14,2", T0);
    tf_authenticate(s, "A", "iPhone14,2", T0); /* no TokenUpdate: not enabled */
    enqueue_one(s, "D", 1, 0, T0, u1);
    enqueue_one(s, "D", 2, 0, T0 + 1, u2);
    enqueue_one(s, "E", 3, 0, T0, u3);
    enqueue_one(s, "F", 4, 0, T0, u4);
    enqueue_one(s, "G", 5, 0, T0, u5);
    enqueue_one(s, "G", 6, 0, T0 + 1, u6);
    enqueue_one(s, "A", 7, 0, T0, u7);
    tf_uuid(99, ghost); /* queued nowhere */
    tf_hash("cert-D", hd);
    tf_hash("cert-E", he);
    tf_hash("cert-F", hf);
    tf_hash("cert-G", hg);
    tf_hash("cert-A", ha);
#define REP(e, h, st, u)                                                                           \
    {                                                                                              \
        .enrollment_id = (e), .device_id = (e), .cert_hash = (h), .status = (st),                  \
        .command_uuid = (u), .raw = raw, .raw_len = sizeof(raw) - 1                                \
    }
    struct store_report reps[12] = {
        REP("D", hd, STORE_STATUS_ACKNOWLEDGED, u1),
        REP("E", he, STORE_STATUS_ERROR, u3),
        REP("F", he, STORE_STATUS_ACKNOWLEDGED, u4), /* E's certificate on F's channel */
        REP("nobody", NULL, STORE_STATUS_ACKNOWLEDGED, u4),
        REP("A", ha, STORE_STATUS_ACKNOWLEDGED, u7), /* not enabled */
        REP("E", "xyz", STORE_STATUS_ACKNOWLEDGED, u3),
        REP("G", hg, STORE_STATUS_ACKNOWLEDGED, ghost),
        REP("D", hd, STORE_STATUS_ACKNOWLEDGED, u1), /* the same report twice in one batch */
        REP("D", hd, STORE_STATUS_IDLE, NULL),
        REP("G", hg, STORE_STATUS_NOTNOW, u5),
        REP("G", hg, STORE_STATUS_ACKNOWLEDGED, "bad-\xff\xfe-uuid"),
        REP("F", hf, STORE_STATUS_ACKNOWLEDGED, u4),
    };
#undef REP
    reps[1].error_chain_json = "[{\"ErrorCode\":12021}]";
    if (inject) /* the batch's first statement fails: its reports are taken one by one */
        store_fail_statement_after(s, 1);
    /* The first ten in one batch; then the one the database may refuse with a valid one. */
    cr_assert_eq(store_connect_many(s, reps, 10, T0 + 10, a), 0);
    cr_assert_eq(store_connect_many(s, reps + 10, 2, T0 + 10, a + 10), 0);

    cr_assert_eq(a[0].rc, 1, "D: %d %s", a[0].rc, a[0].err.msg);
    cr_assert_eq(a[0].outcome, STORE_REPORT_RECORDED);
    cr_assert_str_eq(a[0].next.uuid, u2);
    cr_assert_str_eq(a[0].next.request_type, "ProfileList");
    if (!inject)
        cr_assert_str_eq(a[0].reported_type, "ProfileList");
    cr_assert_eq(a[1].rc, 0, "E: %d %s", a[1].rc, a[1].err.msg);
    cr_assert_eq(a[1].outcome, STORE_REPORT_RECORDED);
    cr_assert_eq(a[2].rc, SCEPTER_EFORBIDDEN);
    cr_assert_str_eq(a[2].err.field, "cert_hash");
    cr_assert_eq(a[3].rc, SCEPTER_ENOTFOUND);
    cr_assert_eq(a[4].rc, SCEPTER_ENOTFOUND, "not enabled before its TokenUpdate");
    cr_assert_eq(a[5].rc, SCEPTER_EINVAL);
    cr_assert_str_eq(a[5].err.field, "cert_hash");
    cr_assert_eq(a[6].rc, 1, "G, unknown command: %d %s", a[6].rc, a[6].err.msg);
    cr_assert_eq(a[6].outcome, STORE_REPORT_UNKNOWN_COMMAND);
    cr_assert_str_eq(a[6].next.uuid, u5);
    cr_assert_eq(a[7].rc, 1);
    cr_assert_eq(a[7].outcome, STORE_REPORT_DUPLICATE, "recorded once");
    cr_assert_str_eq(a[7].next.uuid, u2);
    cr_assert_eq(a[8].rc, SCEPTER_EINVAL, "Idle is not a result report");
    cr_assert_eq(a[9].rc, 1, "G NotNow: %d %s", a[9].rc, a[9].err.msg);
    cr_assert_eq(a[9].outcome, STORE_REPORT_RECORDED);
    cr_assert_str_eq(a[9].next.uuid, u6, "the deferred command is skipped");
    if (tf_pg())
        cr_assert_lt(a[10].rc, 0, "PostgreSQL refuses text that is not UTF-8");
    else
        cr_assert_eq(a[10].outcome, STORE_REPORT_UNKNOWN_COMMAND);
    cr_assert_geq(a[11].rc, 0, "F with its own certificate: %d %s", a[11].rc, a[11].err.msg);
    cr_assert_eq(a[11].outcome, STORE_REPORT_RECORDED);
    for (int i = 0; i < 12; i++)
        store_answer_clear(&a[i]);

    /* Exactly the valid results are stored. */
    check_result(s, "D", u1, "Acknowledged");
    check_result(s, "D", u2, "queued");
    check_result(s, "E", u3, "Error");
    check_result(s, "F", u4, "Acknowledged");
    check_result(s, "G", u5, "NotNow");
    check_result(s, "G", u6, "queued");
    check_result(s, "A", u7, "queued");
    store_close(s);
}

Test(queue, report_batch_answers_each_and_keeps_only_valid)
{
    report_batch(false);
}

Test(queue, report_batch_with_a_failed_statement_is_taken_one_by_one)
{
    report_batch(true);
}

Test(queue, depth_reads_only_pending_entries)
{
    /* /metrics reads the queue depth at every scrape.  It counted the pending entries by
     * scanning an index of the whole history, so each worker's SQLite page cache filled with
     * that history as it grew (issue 18: the soak's RSS climb).  On SQLite, a fresh
     * connection's memory must not grow with the finished entries when it reads the depth. */
    if (tf_pg())
        return;
    struct scepter_error err;
    struct store *s = tf_open();
    enum { DEVICES = 50, COMMANDS = 300 };
    const char *ids[DEVICES];
    char names[DEVICES][16], uuid[37];
    int64_t depth = -1, pending = -1;

    tf_finished_history(s, DEVICES, names, ids, COMMANDS, uuid);
    enqueue_one(s, "D00", 1, 0, T0 + 2, uuid); /* one pending among 15,000 finished */

    struct store *fresh = tf_open();
    cr_assert_eq(store_outbox_pending(fresh, &pending, &err), 0, "%s", err.msg); /* schema */
    int64_t before = store_sqlite_memory_used();
    cr_assert_eq(store_queue_depth(fresh, &depth, &err), 0, "%s", err.msg);
    int64_t grown = store_sqlite_memory_used() - before;
    cr_assert_eq(depth, 1);
    cr_assert_lt(grown, 64 * 1024, "reading the depth took %lld bytes of page cache",
                 (long long)grown);
    store_close(fresh);
    store_close(s);
}

Test(queue, single_device_enqueue_commits_its_audit_entry_with_it)
{
    /* POST /v1/commands for one device: the command, its queue row and the operator's audit
     * entry are one statement (PostgreSQL) or one transaction (SQLite) — one commit; the entry
     * exists only when the command was queued. */
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_push_target t;
    struct store_audit_entry *list = NULL;
    struct store_audit_filter f = {.action = "command.enqueue"};
    char uuid[37];
    int64_t id = -1, depth = 0;
    size_t n = 0;

    tf_enroll(s, "AUD1", "iPhone14,2", T0);
    tf_uuid(77, uuid);
    struct store_command c = tf_cmd(uuid, "ProfileList", 0);
    struct store_audit_entry a = {.at = T0 + 5,
                                  .actor_type = (char *)"api_key",
                                  .actor_name = (char *)"ops",
                                  .address = (char *)"127.0.0.1",
                                  .action = (char *)"command.enqueue",
                                  .route = (char *)"POST /v1/commands",
                                  .object = uuid,
                                  .summary = (char *)"command, devices"};
    cr_assert_eq(store_enqueue_device(s, &c, "AUD1", T0 + 5, &a, &id, &t, &err), 1, "%s", err.msg);
    store_push_target_clear(&t);
    cr_assert_gt(id, 0, "the entry's id comes back");
    cr_assert_eq(store_audit_list(s, &f, &list, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(list[0].id, id);
    cr_assert_str_eq(list[0].object, uuid);
    cr_assert_str_eq(list[0].actor_name, "ops");
    cr_assert_eq(list[0].at, T0 + 5);
    store_audit_entries_free(list, n);

    /* Not queued (unknown device; the UUID taken): no entry, nothing else written. */
    cr_assert_eq(store_enqueue_device(s, &c, "NOBODY", T0 + 6, &a, &id, &t, &err), 0);
    store_push_target_clear(&t);
    cr_assert_eq(id, 0);
    cr_assert_eq(store_enqueue_device(s, &c, "AUD1", T0 + 6, &a, &id, &t, &err), 0);
    store_push_target_clear(&t);
    cr_assert_eq(store_audit_list(s, &f, &list, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1, "an entry was written for a command that was not queued");
    store_audit_entries_free(list, n);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 1);

    /* An entry the audit log would refuse sends the call the general way, untouched. */
    tf_uuid(78, uuid);
    c = tf_cmd(uuid, "ProfileList", 0);
    a.action = (char *)"";
    cr_assert_eq(store_enqueue_device(s, &c, "AUD1", T0 + 7, &a, &id, &t, &err), 0);
    store_push_target_clear(&t);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 1);
    store_close(s);
}

Test(queue, history_comes_a_page_at_a_time_newest_first)
{
    /* A device's finished commands (the console's device page, GET .../commands?all=true), a
     * page at a time, newest first, following the cursor to the end: every finished entry
     * once, none pending, none of another device. */
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_next next;
    enum store_report_outcome out;
    struct store_queue_item *items = NULL;
    char u[8][37], other[37];
    size_t n = 0, seen = 0;
    int64_t cursor = 0, prev = 0;

    tf_enroll(s, "D", "iPhone14,2", T0);
    tf_enroll(s, "E", "iPhone14,2", T0);
    for (unsigned i = 0; i < 8; i++) {
        enqueue_one(s, "D", i + 1, 0, T0 + (int64_t)i, u[i]);
        enqueue_one(s, "E", 100 + i, 0, T0 + (int64_t)i, other);
    }
    /* D: six answered (Acknowledged and Error in turn), one cancelled, one left queued. */
    cr_assert_eq(tf_connect(s, "D", STORE_STATUS_IDLE, NULL, T0 + 20, &next, &out), 1);
    for (unsigned i = 0; i < 6; i++) {
        cr_assert_str_eq(next.uuid, u[i]);
        store_next_clear(&next);
        cr_assert_eq(tf_connect(s, "D", i % 2 ? STORE_STATUS_ERROR : STORE_STATUS_ACKNOWLEDGED,
                                u[i], T0 + 21, &next, &out),
                     1);
    }
    store_next_clear(&next);
    cr_assert_eq(store_queue_cancel(s, "D", u[6], &err), 0, "%s", err.msg);

    for (int page = 0; page < 10; page++) {
        cr_assert_eq(store_queue_history(s, "D", cursor, 3, &items, &n, &cursor, &err), 0, "%s",
                     err.msg);
        cr_assert_leq(n, 3);
        for (size_t i = 0; i < n; i++) {
            /* Newest first: u[6] (cancelled), then u[5] ... u[0]. */
            cr_assert_str_eq(items[i].uuid, u[6 - seen], "page %d, entry %zu", page, i);
            cr_assert_not(items[i].active);
            seen++;
        }
        cr_assert(n == 3 || cursor == 0, "a short page must be the last");
        store_queue_items_free(items, n);
        if (cursor == 0)
            break;
        cr_assert(prev == 0 || cursor < prev, "the cursor moves back");
        prev = cursor;
    }
    cr_assert_eq(seen, 7, "7 finished entries, got %zu", seen);
    cr_assert_eq(cursor, 0);

    /* A page as large as the history: all of it, no next page. */
    cr_assert_eq(store_queue_history(s, "D", 0, 7, &items, &n, &cursor, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 7);
    cr_assert_eq(cursor, 0);
    cr_assert_str_eq(items[0].status, "cancelled");
    cr_assert_str_eq(items[1].status, "Error");        /* u[5] */
    cr_assert_str_eq(items[6].status, "Acknowledged"); /* u[0] */
    store_queue_items_free(items, n);

    cr_assert_eq(store_queue_history(s, "D", 0, 0, &items, &n, &cursor, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "limit");
    cr_assert_eq(store_queue_history(s, "D", 0, STORE_HISTORY_MAX + 1, &items, &n, &cursor, &err),
                 SCEPTER_EINVAL);
    cr_assert_eq(store_queue_history(s, "ghost", 0, 3, &items, &n, &cursor, &err),
                 SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(queue, history_page_read_does_not_grow_with_history)
{
    /* The device page asks for the latest finished commands.  Read row by row, a device's
     * whole history went through the worker's page cache (one table page per entry: its
     * rows lie all over the table).  On SQLite, a fresh connection's memory must not grow
     * with the history to read one page of it. */
    if (tf_pg())
        return;
    struct scepter_error err;
    struct store *s = tf_open();
    enum { DEVICES = 50, COMMANDS = 300 };
    const char *ids[DEVICES];
    char names[DEVICES][16], uuid[37], newest[37];
    struct store_queue_item *items = NULL;
    int64_t pending, cursor = 0;
    size_t n = 0;

    tf_finished_history(s, DEVICES, names, ids, COMMANDS, uuid);
    memcpy(newest, uuid, sizeof(newest));

    struct store *fresh = tf_open();
    cr_assert_eq(store_outbox_pending(fresh, &pending, &err), 0, "%s", err.msg); /* schema */
    int64_t before = store_sqlite_memory_used();
    cr_assert_eq(store_queue_history(fresh, "D00", 0, 10, &items, &n, &cursor, &err), 0, "%s",
                 err.msg);
    int64_t grown = store_sqlite_memory_used() - before;
    cr_assert_eq(n, 10);
    cr_assert_str_eq(items[0].uuid, newest);
    cr_assert_neq(cursor, 0);
    store_queue_items_free(items, n);
    cr_assert_lt(grown, 128 * 1024,
                 "reading 10 of a device's 300 finished commands took %lld bytes of page cache",
                 (long long)grown);
    store_close(fresh);
    store_close(s);
}

Test(queue, sqlite_page_cache_is_bounded_by_its_setting)
{
    /* sqlite_cache_bytes bounds each connection's page cache: reading a device's whole
     * history (1.4 MB of pages with the default 16 MiB cache) stays within a 128 KiB one. */
    if (tf_pg())
        return;
    struct scepter_error err;
    struct store *s = tf_open();
    enum { DEVICES = 50, COMMANDS = 300 };
    const char *ids[DEVICES];
    char names[DEVICES][16], uuid[37];
    struct store_queue_item *items = NULL;
    int64_t pending;
    size_t n = 0;

    tf_finished_history(s, DEVICES, names, ids, COMMANDS, uuid);

    store_set_sqlite_cache_bytes(128 * 1024);
    struct store *small = tf_open();
    cr_assert_eq(store_outbox_pending(small, &pending, &err), 0, "%s", err.msg); /* schema */
    int64_t before = store_sqlite_memory_used();
    cr_assert_eq(store_queue_list(small, "D00", true, &items, &n, &err), 0, "%s", err.msg);
    int64_t grown = store_sqlite_memory_used() - before;
    cr_assert_eq(n, COMMANDS);
    store_queue_items_free(items, n);
    cr_assert_lt(grown, 256 * 1024, "a 128 KiB page cache grew by %lld bytes", (long long)grown);
    store_close(small);
    store_close(s);
}

Test(queue, sqlite_pages_come_from_the_page_buffer)
{
    /* sqlite_page_buffer_bytes: SQLite's page caches take their pages from one region before
     * malloc, so the pages a WAL connection drops and reads again at every transaction do
     * not go through the heap.  Reading a device's whole history (1.4 MB of pages) fills a
     * 1 MiB buffer; the rest comes from malloc. */
    if (tf_pg())
        return;
    struct scepter_error err;
    enum { DEVICES = 50, COMMANDS = 300 };
    const char *ids[DEVICES];
    char names[DEVICES][16], uuid[37];
    struct store_queue_item *items = NULL;
    int64_t size = -1, used = -1;
    size_t n = 0;

    store_set_sqlite_page_buffer_bytes(1 << 20);
    struct store *s = tf_open();
    store_sqlite_page_buffer(&size, &used);
    cr_assert_gt(size, (1 << 20) - 8192, "the buffer is set: %lld bytes", (long long)size);
    cr_assert_leq(size, 1 << 20);
    tf_finished_history(s, DEVICES, names, ids, COMMANDS, uuid);
    cr_assert_eq(store_queue_list(s, "D00", true, &items, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, COMMANDS);
    store_queue_items_free(items, n);
    store_sqlite_page_buffer(&size, &used);
    cr_assert_gt(used, size / 2, "pages in the buffer: %lld of %lld bytes", (long long)used,
                 (long long)size);
    cr_assert_geq(store_sqlite_memory_used(), used, "SQLite's memory counts the buffer's pages");
    store_close(s);
    store_sqlite_page_buffer(&size, &used);
    cr_assert_eq(used, 0, "closed: every page back in the buffer, %lld in use", (long long)used);
}
