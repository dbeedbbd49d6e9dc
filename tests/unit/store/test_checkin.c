/*
 * Check-in: Authenticate and the certificate binding, TokenUpdate (first, user channels),
 * CheckOut, device facts and platforms, bootstrap tokens, last-seen batching, and reading
 * devices back with filters.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(checkin, .init = tf_setup, .fini = tf_teardown);

Test(checkin, platform_vocabulary)
{
    cr_assert_eq(store_platform_guess("iPhone14,2", NULL, NULL), STORE_PLATFORM_IOS);
    cr_assert_eq(store_platform_guess("iPod9,1", NULL, NULL), STORE_PLATFORM_IOS);
    cr_assert_eq(store_platform_guess("iPad13,4", NULL, NULL), STORE_PLATFORM_IPADOS);
    cr_assert_eq(store_platform_guess("MacBookPro18,3", NULL, NULL), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_guess(NULL, "iMac14,2", "iMac"), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_guess(NULL, "Mac14,2", NULL), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_guess(NULL, "VirtualMac2,1", NULL), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_guess(NULL, "MQ8T3LL/A", "iPhone"), STORE_PLATFORM_IOS);
    cr_assert_eq(store_platform_guess(NULL, NULL, "Mac mini"), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_guess("AppleTV11,1", NULL, NULL), STORE_PLATFORM_TVOS);
    cr_assert_eq(store_platform_guess("Watch6,1", NULL, NULL), STORE_PLATFORM_WATCHOS);
    cr_assert_eq(store_platform_guess("RealityDevice14,1", NULL, NULL), STORE_PLATFORM_VISIONOS);
    cr_assert_eq(store_platform_guess("Toaster1,1", NULL, NULL), STORE_PLATFORM_UNKNOWN);
    cr_assert_eq(store_platform_guess(NULL, NULL, NULL), STORE_PLATFORM_UNKNOWN);
    cr_assert_str_eq(store_platform_name(STORE_PLATFORM_IPADOS), "ipados");
    cr_assert_str_eq(store_platform_name((enum store_platform)42), "unknown");
    cr_assert_eq(store_platform_parse("macOS"), STORE_PLATFORM_MACOS);
    cr_assert_eq(store_platform_parse("windows"), STORE_PLATFORM_UNKNOWN);
    cr_assert_eq(store_platform_parse(NULL), STORE_PLATFORM_UNKNOWN);
    cr_assert_str_eq(store_status_name(STORE_STATUS_COMMAND_FORMAT_ERROR), "CommandFormatError");
    cr_assert_eq(store_status_parse("NotNow"), STORE_STATUS_NOTNOW);
    cr_assert_eq(store_status_parse("notnow"), -1);
}

Test(checkin, authenticate_creates_device_disabled_until_token_update)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device d;
    struct store_enrollment e;
    char hash[65];

    tf_authenticate(s, "UDID-1", "iPhone14,2", T0);
    cr_assert_eq(store_device_get(s, "UDID-1", &d, &err), 0, "%s", err.msg);
    cr_assert_str_eq(d.id, "UDID-1");
    cr_assert_eq(d.platform, STORE_PLATFORM_IOS);
    cr_assert_str_eq(d.serial_number, "C02TEST");
    cr_assert_str_eq(d.os_version, "17.1");
    cr_assert_str_eq(d.topic, "com.apple.mgmt.External.test");
    cr_assert_not(d.enrolled);
    cr_assert_eq(d.authenticated_at, T0);
    cr_assert_eq(d.created, T0);
    store_device_clear(&d);
    cr_assert_eq(store_enrollment_get(s, "UDID-1", &e, &err), 0, "%s", err.msg);
    cr_assert_not(e.enabled);
    cr_assert_not(e.token_valid);
    store_enrollment_clear(&e);
    tf_hash("cert-UDID-1", hash);
    cr_assert_eq(store_cert_check(s, hash, "UDID-1", &err), 1);
    tf_hash("cert-other", hash);
    cr_assert_eq(store_cert_check(s, hash, "UDID-1", &err), 0);
    store_close(s);
}

Test(checkin, certificate_bound_to_another_device_is_refused)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device d;
    char hash[65], upper[65];
    size_t i;

    tf_enroll(s, "UDID-A", "iPhone14,2", T0);
    tf_hash("cert-UDID-A", hash);
    struct store_authenticate a = {.device_id = "UDID-B",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .cert_hash = hash,
                                   .facts = {.product_name = "iPad13,4"}};
    cr_assert_eq(store_authenticate(s, &a, T0 + 1, NULL, &err), SCEPTER_EFORBIDDEN);
    cr_assert_str_eq(err.field, "cert_hash");
    cr_assert_eq(err.http_status, 403);
    /* Nothing changed: no device B. */
    cr_assert_eq(store_device_get(s, "UDID-B", &d, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_cert_check(s, hash, "UDID-B", &err), SCEPTER_EFORBIDDEN);
    cr_assert_null(strstr(err.msg, "UDID-A"), "do not reveal the owner: %s", err.msg);
    /* The hash is case-insensitive. */
    for (i = 0; i < 64; i++)
        upper[i] = (char)(hash[i] >= 'a' && hash[i] <= 'f' ? hash[i] - 32 : hash[i]);
    upper[64] = '\0';
    cr_assert_eq(store_cert_check(s, upper, "UDID-A", &err), 1);
    /* A connect from B's channel with A's certificate is refused too. */
    struct store_report rep = {
        .enrollment_id = "UDID-A",
        .device_id = "UDID-A",
        .cert_hash = "0000000000000000000000000000000000000000000000000000000000000000",
        .status = STORE_STATUS_IDLE};
    struct store_next next;
    enum store_report_outcome out;
    cr_assert_eq(store_connect(s, &rep, T0, &next, &out, &err), SCEPTER_EFORBIDDEN);
    /* Bad input. */
    a.cert_hash = "not-hex";
    cr_assert_eq(store_authenticate(s, &a, T0, NULL, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "cert_hash");
    a.cert_hash = hash;
    a.device_id = "";
    cr_assert_eq(store_authenticate(s, &a, T0, NULL, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "device_id");
    a.device_id = "UDID-B";
    a.topic = NULL;
    cr_assert_eq(store_authenticate(s, &a, T0, NULL, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "topic");
    store_close(s);
}

Test(checkin, token_update_enables_and_reports_first)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_enrollment e;
    unsigned char tok[] = {1, 2, 3, 4, 5, 6, 7, 8}, unlock[] = {9, 9};
    bool first = true;

    struct store_token_update t = {.enrollment_id = "UDID-1",
                                   .device_id = "UDID-1",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = tok,
                                   .token_len = sizeof(tok),
                                   .push_magic = "pm-1"};
    /* Never authenticated. */
    cr_assert_eq(store_token_update(s, &t, T0, &first, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "device_id");
    cr_assert_not(first);

    tf_authenticate(s, "UDID-1", "iPhone14,2", T0);
    cr_assert_eq(store_token_update(s, &t, T0 + 1, &first, &err), 0, "%s", err.msg);
    cr_assert(first);
    t.push_magic = "pm-2";
    t.unlock_token = unlock;
    t.unlock_token_len = sizeof(unlock);
    cr_assert_eq(store_token_update(s, &t, T0 + 2, &first, &err), 0, "%s", err.msg);
    cr_assert_not(first);
    cr_assert_eq(store_enrollment_get(s, "UDID-1", &e, &err), 0);
    cr_assert(e.enabled);
    cr_assert(e.token_valid);
    cr_assert_eq(e.token_updated_at, T0 + 2);
    cr_assert_eq(e.type, STORE_ENROLL_DEVICE);
    store_enrollment_clear(&e);

    /* Push data reflects the latest PushMagic. */
    const char *ids[] = {"UDID-1"};
    struct store_push_target *pt;
    size_t n;
    cr_assert_eq(store_push_targets(s, ids, 1, &pt, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(pt[0].push_magic, "pm-2");
    cr_assert_str_eq(pt[0].token_hex, "0102030405060708");
    store_push_targets_free(pt, n);

    /* Bad input. */
    t.token = NULL;
    cr_assert_eq(store_token_update(s, &t, T0, &first, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "Token");
    t.token = tok;
    t.push_magic = NULL;
    cr_assert_eq(store_token_update(s, &t, T0, &first, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "PushMagic");
    store_close(s);
}

Test(checkin, user_channel_is_created_on_first_token_update)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_enrollment e;
    unsigned char tok[] = {0xaa, 0xbb};
    bool first = false;

    tf_enroll(s, "MAC-1", "MacBookPro18,3", T0);
    struct store_token_update t = {.enrollment_id = "MAC-1:USER-GUID",
                                   .device_id = "MAC-1",
                                   .type = STORE_ENROLL_USER,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = tok,
                                   .token_len = sizeof(tok),
                                   .push_magic = "pm-user",
                                   .user_id = "USER-GUID",
                                   .user_short_name = "alice",
                                   .user_long_name = "Alice Liddell"};
    cr_assert_eq(store_enrollment_get(s, "MAC-1:USER-GUID", &e, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_token_update(s, &t, T0 + 1, &first, &err), 0, "%s", err.msg);
    cr_assert(first);
    cr_assert_eq(store_enrollment_get(s, "MAC-1:USER-GUID", &e, &err), 0, "%s", err.msg);
    cr_assert_str_eq(e.device_id, "MAC-1");
    cr_assert_eq(e.type, STORE_ENROLL_USER);
    cr_assert_str_eq(e.user_short_name, "alice");
    cr_assert_str_eq(e.user_long_name, "Alice Liddell");
    cr_assert(e.enabled);
    store_enrollment_clear(&e);
    /* A user channel cannot be moved to another device. */
    tf_enroll(s, "MAC-2", "MacBookPro18,3", T0);
    t.device_id = "MAC-2";
    cr_assert_eq(store_token_update(s, &t, T0 + 2, &first, &err), SCEPTER_EFORBIDDEN);
    store_close(s);
}

Test(checkin, checkout_disables_every_channel_and_the_queue)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device d;
    struct store_enrollment e;
    struct store_command c;
    struct store_queue_item *items;
    const char *ids[] = {"MAC-1", "MAC-1:U"};
    unsigned char tok[] = {1};
    bool first;
    char uuid[37];
    size_t n;

    tf_enroll(s, "MAC-1", "MacBookPro18,3", T0);
    struct store_token_update t = {.enrollment_id = "MAC-1:U",
                                   .device_id = "MAC-1",
                                   .type = STORE_ENROLL_USER,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = tok,
                                   .token_len = 1,
                                   .push_magic = "pm"};
    cr_assert_eq(store_token_update(s, &t, T0, &first, &err), 0, "%s", err.msg);
    tf_uuid(1, uuid);
    c = tf_cmd(uuid, "ProfileList", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 2, T0 + 1, &err), 0, "%s", err.msg);

    cr_assert_eq(store_checkout(s, "MAC-1", T0 + 2, &err), 0, "%s", err.msg);
    cr_assert_eq(store_device_get(s, "MAC-1", &d, &err), 0);
    cr_assert_not(d.enrolled);
    cr_assert_eq(d.checked_out_at, T0 + 2);
    store_device_clear(&d);
    cr_assert_eq(store_enrollment_get(s, "MAC-1:U", &e, &err), 0);
    cr_assert_not(e.enabled);
    store_enrollment_clear(&e);
    cr_assert_eq(store_queue_list(s, "MAC-1:U", true, &items, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(items[0].status, "cancelled");
    cr_assert_not(items[0].active);
    store_queue_items_free(items, n);
    cr_assert_eq(store_checkout(s, "NOPE", T0, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(checkin, facts_update_keeps_what_is_not_given)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device d;

    tf_authenticate(s, "UDID-1", NULL, T0);
    cr_assert_eq(store_device_get(s, "UDID-1", &d, &err), 0);
    cr_assert_eq(d.platform, STORE_PLATFORM_UNKNOWN);
    store_device_clear(&d);
    struct store_device_facts f = {
        .device_name = "Kiosk", .product_name = "iPad13,4", .model_name = "iPad"};
    cr_assert_eq(store_device_update_facts(s, "UDID-1", &f, T0 + 5, &err), 0, "%s", err.msg);
    struct store_device_facts g = {.os_version = "17.2"};
    cr_assert_eq(store_device_update_facts(s, "UDID-1", &g, T0 + 6, &err), 0, "%s", err.msg);
    cr_assert_eq(store_device_get(s, "UDID-1", &d, &err), 0);
    cr_assert_str_eq(d.device_name, "Kiosk");
    cr_assert_str_eq(d.os_version, "17.2");
    cr_assert_str_eq(d.serial_number, "C02TEST");
    cr_assert_eq(d.platform, STORE_PLATFORM_IPADOS);
    store_device_clear(&d);
    cr_assert_eq(store_device_update_facts(s, "NOPE", &g, T0, &err), SCEPTER_ENOTFOUND);
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct store_device_facts h = {.device_name = big};
    cr_assert_eq(store_device_update_facts(s, "UDID-1", &h, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "DeviceName");
    store_close(s);
}

Test(checkin, bootstrap_token_set_get_delete)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device d;
    unsigned char tok[] = {0, 1, 2, 0xff, 0};
    unsigned char *data = (unsigned char *)1;
    size_t len = 99;

    tf_enroll(s, "MAC-1", "MacBookPro18,3", T0);
    cr_assert_eq(store_bootstrap_get(s, "MAC-1", &data, &len, &err), 0);
    cr_assert_null(data);
    cr_assert_eq(len, 0);
    cr_assert_eq(store_bootstrap_set(s, "MAC-1", tok, sizeof(tok), &err), 0, "%s", err.msg);
    cr_assert_eq(store_bootstrap_get(s, "MAC-1", &data, &len, &err), 0);
    cr_assert_eq(len, sizeof(tok));
    cr_assert_arr_eq(data, tok, sizeof(tok));
    free(data);
    cr_assert_eq(store_device_get(s, "MAC-1", &d, &err), 0);
    cr_assert(d.has_bootstrap_token);
    store_device_clear(&d);
    cr_assert_eq(store_bootstrap_set(s, "MAC-1", NULL, 0, &err), 0);
    cr_assert_eq(store_bootstrap_get(s, "MAC-1", &data, &len, &err), 0);
    cr_assert_null(data);
    cr_assert_eq(store_bootstrap_set(s, "NOPE", tok, 1, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_bootstrap_get(s, "NOPE", &data, &len, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(checkin, touch_batches_last_seen)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_enrollment e;
    const char *ids[] = {"D2", "D1", "unknown", "D1"};

    tf_enroll(s, "D1", "iPhone14,2", T0);
    tf_enroll(s, "D2", "iPhone14,2", T0);
    tf_enroll(s, "D3", "iPhone14,2", T0);
    cr_assert_eq(store_touch(s, ids, 4, T0 + 100, &err), 0, "%s", err.msg);
    cr_assert_eq(store_touch(s, ids, 0, T0 + 100, &err), 0);
    /* Never moves backwards. */
    cr_assert_eq(store_touch(s, ids, 1, T0 + 50, &err), 0);
    cr_assert_eq(store_enrollment_get(s, "D2", &e, &err), 0);
    cr_assert_eq(e.last_seen, T0 + 100);
    store_enrollment_clear(&e);
    cr_assert_eq(store_enrollment_get(s, "D3", &e, &err), 0);
    cr_assert_eq(e.last_seen, T0);
    store_enrollment_clear(&e);
    store_close(s);
}

Test(checkin, device_list_filters_and_pages)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device *d;
    int64_t gid;
    size_t n, changed;
    const char *mac_ids[] = {"M1"};
    const char *touch_ids[] = {"I1"};

    tf_enroll(s, "I1", "iPhone14,2", T0);
    tf_enroll(s, "I2", "iPhone14,2", T0);
    tf_enroll(s, "P1", "iPad13,4", T0);
    tf_enroll(s, "M1", "MacBookPro18,3", T0);
    tf_authenticate(s, "M2", "Mac14,2", T0);
    cr_assert_eq(store_group_create(s, "Labs", T0, &gid, &err), 0, "%s", err.msg);
    cr_assert_eq(store_group_add(s, "Labs", mac_ids, 1, &changed, &err), 0, "%s", err.msg);
    cr_assert_eq(store_touch(s, touch_ids, 1, T0 + 500, &err), 0);

    struct store_device_filter f = {.enrolled = -1};
    cr_assert_eq(store_device_list(s, &f, &d, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(d[0].id, "I1");
    cr_assert_str_eq(d[4].id, "P1");
    cr_assert_eq(d[2].n_groups, 1);
    cr_assert_str_eq(d[2].groups[0], "Labs");
    store_devices_free(d, n);

    f.platform = STORE_PLATFORM_MACOS;
    cr_assert_eq(store_device_list(s, &f, &d, &n, &err), 0);
    cr_assert_eq(n, 2);
    store_devices_free(d, n);
    f.enrolled = 1;
    cr_assert_eq(store_device_list(s, &f, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(d[0].id, "M1");
    store_devices_free(d, n);
    f.enrolled = 0;
    cr_assert_eq(store_device_list(s, &f, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(d[0].id, "M2");
    store_devices_free(d, n);

    struct store_device_filter g = {.enrolled = -1, .group = "Labs"};
    cr_assert_eq(store_device_list(s, &g, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    store_devices_free(d, n);
    g.group = "Nope";
    cr_assert_eq(store_device_list(s, &g, &d, &n, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "group");

    struct store_device_filter h = {.enrolled = -1, .seen_after = T0 + 1};
    cr_assert_eq(store_device_list(s, &h, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(d[0].id, "I1");
    store_devices_free(d, n);
    struct store_device_filter p = {.enrolled = -1, .limit = 2, .offset = 2};
    cr_assert_eq(store_device_list(s, &p, &d, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(d[0].id, "M1");
    cr_assert_str_eq(d[1].id, "M2");
    store_devices_free(d, n);
    /* The keyset cursor: the devices after a UDID, with the filters; the same pages as by
     * offset, in order, to the end. */
    struct store_device_filter k = {.enrolled = -1, .limit = 2, .after = "I2"};
    cr_assert_eq(store_device_list(s, &k, &d, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(d[0].id, "M1");
    cr_assert_str_eq(d[1].id, "M2");
    store_devices_free(d, n);
    k.after = "M2";
    cr_assert_eq(store_device_list(s, &k, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(d[0].id, "P1");
    store_devices_free(d, n);
    k.after = "P1";
    cr_assert_eq(store_device_list(s, &k, &d, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_devices_free(d, n);
    k.after = "I1";
    k.platform = STORE_PLATFORM_MACOS;
    cr_assert_eq(store_device_list(s, &k, &d, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(d[0].id, "M1");
    store_devices_free(d, n);

    /* q: a case-insensitive substring of the UDID, serial number or name; total before paging;
     * LIKE's wildcards in q are literal. */
    size_t total = 0;
    struct store_device_filter q = {.enrolled = -1, .q = "m", .total = &total};
    cr_assert_eq(store_device_list(s, &q, &d, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(total, 2);
    store_devices_free(d, n);
    q.q = "1";
    q.limit = 1;
    cr_assert_eq(store_device_list(s, &q, &d, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(total, 3, "I1, M1, P1 match; one is on the page");
    store_devices_free(d, n);
    q.q = "%";
    q.limit = 0;
    cr_assert_eq(store_device_list(s, &q, &d, &n, &err), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(total, 0);
    store_devices_free(d, n);

    /* the group list counts members per platform */
    struct store_group *gl;
    size_t ng;
    cr_assert_eq(store_group_list(s, &gl, &ng, &err), 0, "%s", err.msg);
    cr_assert_eq(ng, 1);
    cr_assert_eq(gl[0].members, 1);
    cr_assert_eq(gl[0].by_platform[STORE_PLATFORM_MACOS], 1);
    cr_assert_eq(gl[0].by_platform[STORE_PLATFORM_IOS], 0);
    store_groups_free(gl, ng);
    store_close(s);
}

Test(checkin, device_list_cursor_page_does_not_read_the_fleet)
{
    /* A script walking a large fleet pages with the cursor (after=): each page reads its own
     * devices, not the fleet (the count beside offset paging reads every device).  On SQLite,
     * a fresh connection's memory must not grow with the fleet to read a page by cursor. */
    if (tf_pg())
        return;
    enum { DEVICES = 2000 };
    static char names[DEVICES][16];
    static const char *ids[DEVICES];
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_device *d = NULL;
    int64_t pending;
    size_t n = 0, total = 0;

    tf_enroll_numbered(s, DEVICES, names, ids);
    struct store *fresh = tf_open();
    cr_assert_eq(store_outbox_pending(fresh, &pending, &err), 0, "%s", err.msg); /* schema */
    int64_t before = store_sqlite_memory_used();
    struct store_device_filter page = {.enrolled = -1, .limit = 10, .after = "D1000"};
    cr_assert_eq(store_device_list(fresh, &page, &d, &n, &err), 0, "%s", err.msg);
    int64_t by_cursor = store_sqlite_memory_used() - before;
    cr_assert_eq(n, 10);
    cr_assert_str_eq(d[0].id, "D1001");
    store_devices_free(d, n);

    struct store *other = tf_open();
    cr_assert_eq(store_outbox_pending(other, &pending, &err), 0, "%s", err.msg);
    before = store_sqlite_memory_used();
    struct store_device_filter counted = {.enrolled = -1, .limit = 10, .total = &total};
    cr_assert_eq(store_device_list(other, &counted, &d, &n, &err), 0, "%s", err.msg);
    int64_t with_total = store_sqlite_memory_used() - before;
    cr_assert_eq(total, DEVICES);
    store_devices_free(d, n);
    cr_assert_lt(by_cursor, 128 * 1024, "a page by cursor took %lld bytes of page cache",
                 (long long)by_cursor);
    cr_assert_gt(with_total, 2 * by_cursor, "the count reads the fleet: %lld vs %lld bytes",
                 (long long)with_total, (long long)by_cursor);
    store_close(other);
    store_close(fresh);
    store_close(s);
}
