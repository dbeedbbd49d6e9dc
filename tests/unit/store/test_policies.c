/*
 * SCEP policies: save/update with versions, name conflicts per platform, targets through
 * devices and groups with platform filtering, the commands a save queues and the status they
 * produce, deletion with RemoveProfile commands, and retention keeping what status needs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(policies, .init = tf_setup, .fini = tf_teardown);

static struct store_policy policy(const char *platform, const char *name)
{
    static unsigned char root[] = {0x30, 0x82, 0x01, 0x0a, 0x00};
    static char uids[16][96];
    static unsigned k;
    char *uid = uids[k++ % 16];
    snprintf(uid, sizeof(uids[0]), "uid-%s-%s", platform, name);
    struct store_policy p = {
        .uid = uid,
        .type = (char *)"scep",
        .platform = (char *)platform,
        .name = (char *)name,
        .notes = (char *)"created in the lab",
        .scep_url = (char *)"http://scep.example/cgi-bin/pkiclient.exe",
        .scep_name = (char *)"WiFi Certificate",
        .scep_challenge = (char *)"s3cret",
        .scep_fingerprint = (char *)"00112233445566778899aabbccddeeff00112233",
        .scep_subject = (char *)"/C=US/O=ABCEnterprise/CN=foo/",
        .key_size = 2048,
        .retries = 3,
        .retry_delay = 10,
        .key_extractable = false,
        .key_usage = 5,
        .root_cert = root,
        .root_cert_len = sizeof(root),
        .san_dns = (char *)"ca.example",
    };
    return p;
}

/* Enrolls I1 I2 (iOS), P1 (iPadOS), M1 M2 (macOS, M2 not enrolled); group Mixed = I2 P1 M1. */
static void fleet(struct store *s)
{
    struct scepter_error err;
    const char *mixed[] = {"I2", "P1", "M1"};
    int64_t gid;
    size_t changed;

    tf_enroll(s, "I1", "iPhone14,2", T0);
    tf_enroll(s, "I2", "iPhone15,3", T0);
    tf_enroll(s, "P1", "iPad13,4", T0);
    tf_enroll(s, "M1", "MacBookPro18,3", T0);
    tf_authenticate(s, "M2", "Mac14,2", T0);
    cr_assert_eq(store_group_create(s, "Mixed", T0, &gid, &err), 0, "%s", err.msg);
    cr_assert_eq(store_group_add(s, "Mixed", mixed, 3, &changed, &err), 0, "%s", err.msg);
}

Test(policies, targets_resolve_with_groups_and_platforms)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_target_device *t;
    size_t n;
    const char *devs[] = {"I1", "M2", "M1"};
    const char *groups[] = {"Mixed"};
    enum store_platform ios[] = {STORE_PLATFORM_IOS, STORE_PLATFORM_IPADOS};
    enum store_platform mac[] = {STORE_PLATFORM_MACOS};

    fleet(s);
    cr_assert_eq(store_targets_resolve(s, devs, 3, groups, 1, ios, 2, &t, &n, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(t[0].device_id, "I1");
    cr_assert_str_eq(t[1].device_id, "I2");
    cr_assert_str_eq(t[2].device_id, "P1");
    cr_assert_eq(t[2].platform, STORE_PLATFORM_IPADOS);
    cr_assert_str_eq(t[2].enrollment_id, "P1");
    cr_assert_str_eq(t[0].serial_number, "C02TEST");
    store_target_devices_free(t, n);
    /* macOS: M1 (direct and through the group, once); M2 is not enrolled. */
    cr_assert_eq(store_targets_resolve(s, devs, 3, groups, 1, mac, 1, &t, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t[0].device_id, "M1");
    store_target_devices_free(t, n);
    cr_assert_eq(store_targets_resolve(s, NULL, 0, groups, 1, NULL, 0, &t, &n, &err), 0);
    cr_assert_eq(n, 3);
    store_target_devices_free(t, n);
    const char *ghost_dev[] = {"I1", "ghost"};
    cr_assert_eq(store_targets_resolve(s, ghost_dev, 2, NULL, 0, ios, 2, &t, &n, &err),
                 SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "targets.devices");
    cr_assert(strstr(err.msg, "ghost"), "%s", err.msg);
    const char *ghost_grp[] = {"Nope"};
    cr_assert_eq(store_targets_resolve(s, NULL, 0, ghost_grp, 1, ios, 2, &t, &n, &err),
                 SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "targets.device_groups");
    store_close(s);
}

Test(policies, save_update_get_list_and_name_conflicts)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_policy p, q, got, *list;
    char *targets_dev[] = {(char *)"I1"};
    char *targets_grp[] = {(char *)"Mixed"};
    size_t n;

    fleet(s);
    p = policy("ios", "WiFi");
    p.target_devices = targets_dev;
    p.n_target_devices = 1;
    p.target_groups = targets_grp;
    p.n_target_groups = 1;
    cr_assert_eq(store_policy_save(s, &p, NULL, NULL, 0, T0 + 1, &err), 0, "%s", err.msg);
    cr_assert_gt(p.id, 0);
    cr_assert_eq(p.version, 1);
    cr_assert_eq(p.created, T0 + 1);

    q = policy("ios", "WiFi");
    cr_assert_eq(store_policy_save(s, &q, NULL, NULL, 0, T0 + 2, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(q.id, 0);
    q = policy("macos", "WiFi"); /* unique per platform */
    cr_assert_eq(store_policy_save(s, &q, NULL, NULL, 0, T0 + 2, &err), 0, "%s", err.msg);

    cr_assert_eq(store_policy_get(s, p.id, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got.name, "WiFi");
    cr_assert_str_eq(got.uid, "uid-ios-WiFi", "the uid fixed at creation comes back");
    cr_assert_str_eq(got.platform, "ios");
    cr_assert_str_eq(got.scep_challenge, "s3cret");
    cr_assert_str_eq(got.scep_subject, "/C=US/O=ABCEnterprise/CN=foo/");
    cr_assert_eq(got.key_size, 2048);
    cr_assert_eq(got.key_usage, 5);
    cr_assert_not(got.key_extractable);
    cr_assert_eq(got.root_cert_len, 5);
    cr_assert_eq(got.root_cert[1], 0x82);
    cr_assert_str_eq(got.san_dns, "ca.example");
    cr_assert_null(got.san_uri);
    cr_assert_eq(got.n_target_devices, 1);
    cr_assert_str_eq(got.target_devices[0], "I1");
    cr_assert_eq(got.n_target_groups, 1);
    cr_assert_str_eq(got.target_groups[0], "Mixed");
    store_policy_clear(&got);

    /* Update: version + 1, created kept; renaming onto the macOS one's name is fine for iOS
     * only if no iOS policy has it. */
    p.notes = (char *)"v2";
    p.key_extractable = true;
    p.n_target_groups = 0;
    cr_assert_eq(store_policy_save(s, &p, NULL, NULL, 0, T0 + 3, &err), 0, "%s", err.msg);
    cr_assert_eq(p.version, 2);
    cr_assert_eq(p.created, T0 + 1);
    cr_assert_eq(p.updated, T0 + 3);
    struct store_policy r = policy("ios", "Other");
    cr_assert_eq(store_policy_save(s, &r, NULL, NULL, 0, T0 + 4, &err), 0);
    r.name = (char *)"WiFi";
    cr_assert_eq(store_policy_save(s, &r, NULL, NULL, 0, T0 + 5, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "name");

    cr_assert_eq(store_policy_list(s, "ios", &list, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].id, p.id);
    cr_assert_str_eq(list[0].notes, "v2");
    cr_assert(list[0].key_extractable);
    cr_assert_eq(list[0].n_target_groups, 0);
    cr_assert_eq(list[0].n_target_devices, 1);
    store_policies_free(list, n);
    cr_assert_eq(store_policy_list(s, NULL, &list, &n, &err), 0);
    cr_assert_eq(n, 3);
    store_policies_free(list, n);

    /* Bad input. */
    struct store_policy bad = policy("windows", "X");
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "platform");
    bad = policy("ios", "");
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "name");
    bad = policy("ios", "Ghosts");
    char *ghost[] = {(char *)"ghost"};
    bad.target_devices = ghost;
    bad.n_target_devices = 1;
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "targets.devices");
    bad.n_target_devices = 0;
    bad.target_groups = ghost;
    bad.n_target_groups = 1;
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "targets.device_groups");
    cr_assert_eq(store_policy_list(s, "ios", &list, &n, &err), 0);
    cr_assert_eq(n, 2, "a refused save stored something");
    store_policies_free(list, n);
    bad = policy("ios", "Gone");
    bad.id = 9999;
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_policy_get(s, 9999, &got, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(policies, save_queues_commands_and_status_follows_results)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_policy p;
    struct store_policy_device_status *st;
    struct store_next next;
    enum store_report_outcome out;
    struct store_command cmds[3];
    const char *ids[] = {"I1", "I2", "P1"};
    char *grp[] = {(char *)"Mixed"};
    char *dev[] = {(char *)"I1"};
    int64_t *pids;
    size_t n, i;

    fleet(s);
    for (i = 0; i < 3; i++) {
        char u[37];
        tf_uuid(100 + (unsigned)i, u);
        cmds[i] = tf_cmd(u, "InstallProfile", 0);
    }
    p = policy("ios", "WiFi");
    p.target_groups = grp;
    p.n_target_groups = 1;
    p.target_devices = dev;
    p.n_target_devices = 1;
    cr_assert_eq(store_policy_save(s, &p, cmds, ids, 3, T0 + 1, &err), 0, "%s", err.msg);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    for (i = 0; i < 3; i++) {
        cr_assert_str_eq(st[i].state, "pending");
        cr_assert_eq(st[i].action, STORE_POLICY_INSTALL);
        cr_assert_eq(st[i].policy_version, 1);
    }
    cr_assert_str_eq(st[0].device_id, "I1");
    cr_assert_str_eq(st[0].uuid, cmds[0].uuid);
    store_policy_statuses_free(st, n);

    /* I1 installs, I2 fails, P1 says NotNow. */
    cr_assert_eq(tf_connect(s, "I1", STORE_STATUS_ACKNOWLEDGED, cmds[0].uuid, T0 + 2, &next, &out),
                 0);
    cr_assert_eq(tf_connect(s, "I2", STORE_STATUS_ERROR, cmds[1].uuid, T0 + 2, &next, &out), 0);
    cr_assert_eq(tf_connect(s, "P1", STORE_STATUS_NOTNOW, cmds[2].uuid, T0 + 2, &next, &out), 0);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0);
    cr_assert_str_eq(st[0].state, "installed");
    cr_assert_eq(st[0].updated, T0 + 2);
    cr_assert_str_eq(st[1].state, "failed");
    cr_assert_str_eq(st[1].error_chain_json, "[{\"ErrorCode\":12021}]");
    cr_assert_str_eq(st[2].state, "pending");
    cr_assert_eq(st[2].notnow_count, 1);
    store_policy_statuses_free(st, n);

    /* the same, seen from one enrollment */
    cr_assert_eq(store_enrollment_policy_status(s, "I2", &st, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].policy_id, p.id);
    cr_assert_str_eq(st[0].state, "failed");
    cr_assert_str_eq(st[0].uuid, cmds[1].uuid);
    cr_assert_str_eq(st[0].error_chain_json, "[{\"ErrorCode\":12021}]");
    store_policy_statuses_free(st, n);
    cr_assert_eq(store_enrollment_policy_status(s, "M1", &st, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0, "nothing was queued for M1");
    store_policy_statuses_free(st, n);

    cr_assert_eq(store_policies_for_device(s, "P1", &pids, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(pids[0], p.id);
    free(pids);
    cr_assert_eq(store_policies_for_device(s, "M2", &pids, &n, &err), 0);
    cr_assert_eq(n, 0);
    free(pids);
    cr_assert_eq(store_policies_for_device(s, "ghost", &pids, &n, &err), SCEPTER_ENOTFOUND);

    /* Retention long after: the latest policy rows stay, status still answers. */
    size_t deleted;
    cr_assert_eq(store_retention(s, T0 + 100000, 10, &deleted, &err), 0, "%s", err.msg);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0);
    cr_assert_eq(n, 3);
    store_policy_statuses_free(st, n);

    /* Delete: RemoveProfile for the installed device, linked to the policy. */
    struct store_command rm;
    char u[37];
    const char *rm_ids[] = {"I1"};
    tf_uuid(200, u);
    rm = tf_cmd(u, "RemoveProfile", 0);
    cr_assert_eq(store_policy_delete(s, p.id, &rm, rm_ids, 1, T0 + 10, &err), 0, "%s", err.msg);
    cr_assert_eq(store_policy_delete(s, p.id, &rm, rm_ids, 0, T0 + 10, &err), SCEPTER_ENOTFOUND);
    struct store_policy gone;
    cr_assert_eq(store_policy_get(s, p.id, &gone, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0, "%s", err.msg);
    cr_assert_str_eq(st[0].device_id, "I1");
    cr_assert_str_eq(st[0].state, "removing");
    cr_assert_eq(st[0].action, STORE_POLICY_REMOVE);
    store_policy_statuses_free(st, n);
    cr_assert_eq(tf_connect(s, "I1", STORE_STATUS_ACKNOWLEDGED, u, T0 + 11, &next, &out), 0);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0);
    cr_assert_str_eq(st[0].state, "removed");
    store_policy_statuses_free(st, n);
    cr_assert_eq(store_policy_status(s, 424242, &st, &n, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(policies, failed_save_keeps_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_policy p, *list;
    struct store_command cmds[2];
    const char *ids[] = {"I1", "ghost"};
    int64_t depth;
    size_t n;

    fleet(s);
    for (unsigned i = 0; i < 2; i++) {
        char u[37];
        tf_uuid(300 + i, u);
        cmds[i] = tf_cmd(u, "InstallProfile", 0);
    }
    p = policy("ios", "WiFi");
    cr_assert_eq(store_policy_save(s, &p, cmds, ids, 2, T0, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(p.id, 0);
    cr_assert_eq(store_policy_list(s, NULL, &list, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_policies_free(list, n);
    cr_assert_eq(store_queue_depth(s, &depth, &err), 0);
    cr_assert_eq(depth, 0);
    store_close(s);
}
