/*
 * Who may talk as a device: Authenticate refuses a fresh certificate for an actively enrolled
 * device (the takeover), and lets one through after CheckOut, an operator's removal or
 * re-enrollment window, or with reenroll = allow — clearing the old identity's secrets and
 * revoking it.  Revocation by fingerprint, enrollment tokens (counted, expiring) and the
 * security event log.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(security, .init = tf_setup, .fini = tf_teardown);

static struct store_authenticate auth_of(const char *udid, const char *hash)
{
    struct store_authenticate a = {.device_id = udid,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .cert_hash = hash,
                                   .facts = {.product_name = "MacBookPro18,3"}};
    return a;
}

/* Queue one command for udid and report whether it is still pending. */
static void queue_one(struct store *s, const char *udid, unsigned n)
{
    struct scepter_error err;
    char uuid[37];
    const char *ids[1] = {udid};

    tf_uuid(n, uuid);
    struct store_command c = tf_cmd(uuid, "DeviceInformation", 0);
    cr_assert_eq(store_enqueue(s, &c, ids, 1, T0 + 5, &err), 0, "%s", err.msg);
}

static size_t pending(struct store *s, const char *udid)
{
    struct store_queue_item *items = NULL;
    struct scepter_error err;
    size_t n = 0, p = 0;

    cr_assert_eq(store_queue_list(s, udid, false, &items, &n, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
        p += items[i].active;
    store_queue_items_free(items, n);
    return p;
}

Test(security, a_fresh_certificate_cannot_take_over_an_enrolled_device)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_auth_result res;
    struct store_device d;
    char victim[65], attacker[65];
    unsigned char *tok = NULL;
    size_t len = 0;

    tf_enroll(s, "VICTIM", "MacBookPro18,3", T0);
    tf_hash("cert-VICTIM", victim);
    tf_hash("cert-ATTACKER", attacker);
    cr_assert_eq(store_bootstrap_set(s, "VICTIM", (const unsigned char *)"bt", 2, &err), 0);
    queue_one(s, "VICTIM", 1);

    struct store_authenticate a = auth_of("VICTIM", attacker);
    cr_assert_eq(store_authenticate(s, &a, T0 + 10, &res, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(res.previous_hash, victim, "the refusal names the bound certificate");
    cr_assert_str_eq(err.field, "cert_hash");
    /* Nothing changed: binding, enrollment, queue, bootstrap token. */
    cr_assert_eq(store_cert_check(s, victim, "VICTIM", &err), 1);
    cr_assert_eq(store_cert_check(s, attacker, "VICTIM", &err), 0);
    cr_assert_eq(store_device_get(s, "VICTIM", &d, &err), 0, "%s", err.msg);
    cr_assert(d.enrolled);
    cr_assert(d.token_valid);
    store_device_clear(&d);
    cr_assert_eq(pending(s, "VICTIM"), 1);
    cr_assert_eq(store_bootstrap_get(s, "VICTIM", &tok, &len, &err), 0);
    cr_assert_eq(len, 2);
    free(tok);
    /* The bound certificate itself may Authenticate again (the device repeats it). */
    a.cert_hash = victim;
    cr_assert_eq(store_authenticate(s, &a, T0 + 11, &res, &err), 0, "%s", err.msg);
    cr_assert_not(res.new_binding);
    store_close(s);
}

Test(security, checkout_removal_window_and_configuration_allow_a_new_identity)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_auth_result res;
    struct store_device d;
    char h1[65], h2[65], h3[65], h4[65], h5[65];
    unsigned char *tok = NULL;
    size_t len = 0;

    tf_enroll(s, "MAC", "MacBookPro18,3", T0);
    tf_hash("cert-MAC", h1);
    tf_hash("mac-2", h2);
    tf_hash("mac-3", h3);
    tf_hash("mac-4", h4);
    tf_hash("mac-5", h5);
    cr_assert_eq(store_bootstrap_set(s, "MAC", (const unsigned char *)"bt", 2, &err), 0);

    /* 1. CheckOut: the device left; its next enrollment may bring a new identity. */
    cr_assert_eq(store_checkout(s, "MAC", T0 + 1, &err), 0);
    struct store_authenticate a = auth_of("MAC", h2);
    cr_assert_eq(store_authenticate(s, &a, T0 + 2, &res, &err), 0, "%s", err.msg);
    cr_assert(res.new_binding);
    cr_assert(res.rebound);
    cr_assert_str_eq(res.previous_hash, h1);
    /* The old identity's secrets are gone and the old certificate is refused. */
    cr_assert_eq(store_bootstrap_get(s, "MAC", &tok, &len, &err), 0);
    cr_assert_null(tok, "the bootstrap token of the previous identity was inherited");
    cr_assert_eq(store_cert_check(s, h1, "MAC", &err), 0, "the old binding is gone");
    a.cert_hash = h1;
    cr_assert_eq(store_authenticate(s, &a, T0 + 3, &res, &err), SCEPTER_EFORBIDDEN,
                 "a superseded certificate is revoked");

    /* 2. Enrolled again with h2; an operator opens a window: h3 may replace it, once. */
    struct store_token_update t = {.enrollment_id = "MAC",
                                   .device_id = "MAC",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = (const unsigned char *)"0123456789abcdef",
                                   .token_len = 16,
                                   .push_magic = "pm"};
    bool first;
    cr_assert_eq(store_token_update(s, &t, T0 + 4, &first, &err), 0, "%s", err.msg);
    a.cert_hash = h3;
    cr_assert_eq(store_authenticate(s, &a, T0 + 5, &res, &err), SCEPTER_ECONFLICT);
    cr_assert_eq(store_device_allow_reenroll(s, "MAC", T0 + 600, &err), 0);
    cr_assert_eq(store_device_get(s, "MAC", &d, &err), 0);
    cr_assert_eq(d.reenroll_until, T0 + 600);
    store_device_clear(&d);
    cr_assert_eq(store_authenticate(s, &a, T0 + 6, &res, &err), 0, "%s", err.msg);
    cr_assert_str_eq(res.allowed_by, "operator");
    cr_assert_eq(store_device_get(s, "MAC", &d, &err), 0);
    cr_assert_eq(d.reenroll_until, 0, "the window closes with the re-enrollment");
    store_device_clear(&d);
    /* A window that expired does not count. */
    cr_assert_eq(store_token_update(s, &t, T0 + 7, &first, &err), 0, "%s", err.msg);
    cr_assert_eq(store_device_allow_reenroll(s, "MAC", T0 + 8, &err), 0);
    a.cert_hash = h4;
    cr_assert_eq(store_authenticate(s, &a, T0 + 9, &res, &err), SCEPTER_ECONFLICT);

    /* 3. The configuration says reenroll = allow. */
    a.reenroll_allow = true;
    cr_assert_eq(store_authenticate(s, &a, T0 + 10, &res, &err), 0, "%s", err.msg);
    cr_assert_str_eq(res.allowed_by, "configuration");
    a.reenroll_allow = false;

    /* 4. An operator removes the device: everything is wiped and a new identity may come. */
    cr_assert_eq(store_token_update(s, &t, T0 + 11, &first, &err), 0, "%s", err.msg);
    queue_one(s, "MAC", 2);
    struct store_removal rm;
    cr_assert_eq(store_device_remove(s, "MAC", T0 + 12, &rm, &err), 0, "%s", err.msg);
    cr_assert_eq(rm.certificates, 1);
    cr_assert_eq(rm.cancelled, 1);
    cr_assert_eq(pending(s, "MAC"), 0);
    cr_assert_eq(store_device_get(s, "MAC", &d, &err), 0);
    cr_assert_not(d.enrolled);
    cr_assert_eq(d.removed_at, T0 + 12);
    store_device_clear(&d);
    cr_assert_eq(store_cert_check(s, h4, "MAC", &err), 0);
    a.cert_hash = h5;
    cr_assert_eq(store_authenticate(s, &a, T0 + 13, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(store_device_get(s, "MAC", &d, &err), 0);
    cr_assert_eq(d.removed_at, 0, "enrolled again");
    store_device_clear(&d);
    cr_assert_eq(store_device_remove(s, "NOPE", T0, NULL, &err), SCEPTER_ENOTFOUND);

    struct store_revocation *v = NULL;
    size_t n = 0;
    cr_assert_eq(store_revocations_list(s, "MAC", 0, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4, "h1, h2 and h3 superseded, h4 removed");
    bool removed = false;
    for (size_t i = 0; i < n; i++)
        removed |= strcmp(v[i].cert_hash, h4) == 0 && strcmp(v[i].reason, "removed") == 0;
    cr_assert(removed);
    store_revocations_free(v, n);
    store_close(s);
}

Test(security, revoking_a_certificate_unbinds_it_everywhere)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store *other = tf_open(); /* another worker or instance */
    char h[65], *dev = NULL;

    tf_enroll(s, "IPHONE", "iPhone14,2", T0);
    tf_hash("cert-IPHONE", h);
    cr_assert_eq(store_cert_check(other, h, "IPHONE", &err), 1);
    cr_assert_eq(store_cert_revoke(s, h, "revoked", T0 + 1, &dev, &err), 0, "%s", err.msg);
    cr_assert_str_eq(dev, "IPHONE");
    free(dev);
    cr_assert_eq(store_cert_check(other, h, "IPHONE", &err), 0);
    struct store_report rep = {.enrollment_id = "IPHONE",
                               .device_id = "IPHONE",
                               .cert_hash = h,
                               .status = STORE_STATUS_IDLE};
    struct store_next next;
    enum store_report_outcome out;
    cr_assert_eq(store_connect(other, &rep, T0 + 2, &next, &out, &err), SCEPTER_EFORBIDDEN);
    struct store_authenticate a = auth_of("IPHONE", h);
    cr_assert_eq(store_authenticate(other, &a, T0 + 3, NULL, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "revoked") != NULL, "%s", err.msg);
    /* Again: nothing new, said so. */
    cr_assert_eq(store_cert_revoke(s, h, "revoked", T0 + 4, &dev, &err), 1);
    cr_assert_null(dev);
    /* Bad input. */
    cr_assert_eq(store_cert_revoke(s, "xyz", "revoked", T0, &dev, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "sha256");
    store_close(other);
    store_close(s);
}

Test(security, enrollment_tokens_are_counted_and_expire)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_enroll_token *t = NULL;
    char h1[65], h2[65], h3[65];
    int64_t id1, id2, id3;
    size_t n = 0;

    tf_hash("token-1", h1);
    tf_hash("token-2", h2);
    tf_hash("token-3", h3);
    cr_assert_eq(store_enroll_token_create(s, h1, "lab", 2, T0 + 100, T0, &id1, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_enroll_token_create(s, h2, NULL, 0, T0 + 100, T0, &id2, &err), 0);
    cr_assert_eq(store_enroll_token_create(s, h3, NULL, 1, 0, T0, &id3, &err), 0);
    cr_assert_eq(store_enroll_token_create(s, h1, NULL, 1, 0, T0, &id3, &err), SCEPTER_ECONFLICT);
    cr_assert_eq(store_enroll_token_create(s, "nope", NULL, 1, 0, T0, &id3, &err), SCEPTER_EINVAL);
    cr_assert_eq(store_enroll_token_create(s, h3, NULL, -1, 0, T0, &id3, &err), SCEPTER_EINVAL);

    cr_assert_eq(store_enroll_token_use(s, h1, T0 + 1, &err), 0);
    cr_assert_eq(store_enroll_token_use(s, h1, T0 + 2, &err), 0);
    cr_assert_eq(store_enroll_token_use(s, h1, T0 + 3, &err), SCEPTER_EFORBIDDEN, "used up");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(store_enroll_token_use(s, h2, T0 + 10 + i, &err), 0, "unlimited uses");
    cr_assert_eq(store_enroll_token_use(s, h2, T0 + 100, &err), SCEPTER_EFORBIDDEN, "expired");
    cr_assert_eq(store_enroll_token_use(s, h3, T0 + 100000000, &err), 0, "never expires");

    cr_assert_eq(store_enroll_token_list(s, &t, &n, &err), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(t[0].uses, 2);
    cr_assert_eq(t[0].uses_total, 2);
    cr_assert_str_eq(t[0].note, "lab");
    cr_assert_eq(t[0].last_used, T0 + 2);
    store_enroll_tokens_free(t, n);
    cr_assert_eq(store_enroll_token_delete(s, id2, &err), 0);
    cr_assert_eq(store_enroll_token_use(s, h2, T0 + 20, &err), SCEPTER_EFORBIDDEN, "deleted");
    cr_assert_eq(store_enroll_token_delete(s, id2, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(security, events_are_listed_newest_first_with_filters)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_event *v = NULL;
    size_t n = 0;

    cr_assert_eq(store_event_add(s, "mdm.ReenrollRefused", "A", "{\"x\":1}", T0, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_event_add(s, "device.removed", "B", "{}", T0 + 1, &err), 0);
    cr_assert_eq(store_event_add(s, "mdm.ReenrollRefused", "B", "{}", T0 + 2, &err), 0);
    cr_assert_eq(store_event_add(s, "", "B", "{}", T0, &err), SCEPTER_EINVAL);

    struct store_event_filter f = {.device_id = "B"};
    cr_assert_eq(store_event_list(s, &f, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].kind, "mdm.ReenrollRefused", "newest first");
    int64_t newest = v[0].id;
    store_events_free(v, n);
    f = (struct store_event_filter){.kind = "mdm.ReenrollRefused", .before_id = newest};
    cr_assert_eq(store_event_list(s, &f, &v, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].device_id, "A");
    cr_assert_str_eq(v[0].detail, "{\"x\":1}");
    store_events_free(v, n);
    store_close(s);
}
