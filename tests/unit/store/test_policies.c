/*
 * SCEP policies: save/update with versions, name conflicts per platform, targets through
 * devices and groups with platform filtering, the commands a save queues and the status they
 * produce, deletion with RemoveProfile commands, and retention keeping what status needs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/xmalloc.h"
#include "fixture.h"

TestSuite(policies, .init = tf_setup, .fini = tf_teardown);

/* The store keeps the document whole without reading it: any text comes back as it went. */
#define DOC "{\"name\":\"opaque to the store\",\"scep\":{\"challenge\":\"s3cret\"}}"

static struct store_policy policy(const char *platform, const char *name)
{
    static char uids[16][96];
    static unsigned k;
    char *uid = uids[k++ % 16];
    snprintf(uid, sizeof(uids[0]), "uid-%s-%s", platform, name);
    struct store_policy p = {
        .uid = uid,
        .type = (char *)"scep",
        .platform = (char *)platform,
        .name = (char *)name,
        .document = (char *)DOC,
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
    cr_assert_str_eq(got.document, DOC);
    cr_assert_eq(got.n_target_devices, 1);
    cr_assert_str_eq(got.target_devices[0], "I1");
    cr_assert_eq(got.n_target_groups, 1);
    cr_assert_str_eq(got.target_groups[0], "Mixed");
    store_policy_clear(&got);

    /* Update: version + 1, created kept; renaming onto the macOS one's name is fine for iOS
     * only if no iOS policy has it. */
    p.document = (char *)"{\"notes\":\"v2\"}";
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
    cr_assert_str_eq(list[0].document, "{\"notes\":\"v2\"}");
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
    bad = policy("ios", "No document");
    bad.document = NULL;
    cr_assert_eq(store_policy_save(s, &bad, NULL, NULL, 0, T0, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "document");
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
        cr_assert_str_eq(store_policy_state_name(st[i].state), "pending");
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
    cr_assert_str_eq(store_policy_state_name(st[0].state), "installed");
    cr_assert_eq(st[0].updated, T0 + 2);
    cr_assert_str_eq(store_policy_state_name(st[1].state), "failed");
    cr_assert_str_eq(st[1].error_chain_json, "[{\"ErrorCode\":12021}]");
    cr_assert_str_eq(store_policy_state_name(st[2].state), "pending");
    cr_assert_eq(st[2].notnow_count, 1);
    store_policy_statuses_free(st, n);

    /* the same, seen from one enrollment */
    cr_assert_eq(store_enrollment_policy_status(s, "I2", &st, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].policy_id, p.id);
    cr_assert_str_eq(store_policy_state_name(st[0].state), "failed");
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
    /* the policies themselves in one statement, without their targets */
    {
        struct store_policy *pols = NULL;
        size_t np = 0;
        cr_assert_eq(store_policies_of_device(s, "P1", &pols, &np, &err), 0, "%s", err.msg);
        cr_assert_eq(np, 1);
        cr_assert_eq(pols[0].id, p.id);
        cr_assert_not_null(pols[0].document);
        cr_assert_not_null(pols[0].uid);
        cr_assert_eq(pols[0].n_target_devices, 0);
        store_policies_free(pols, np);
        cr_assert_eq(store_policies_of_device(s, "M2", &pols, &np, &err), 0);
        cr_assert_eq(np, 0);
        store_policies_free(pols, np);
    }
    /* many devices at once: the same answers, as pairs ordered by device */
    {
        const char *many[] = {"P1", "M2", "ghost"};
        char **devs = NULL;
        size_t np = 0;
        cr_assert_eq(store_policies_for_devices(s, many, 3, &devs, &pids, &np, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(np, 1);
        cr_assert_str_eq(devs[0], "P1");
        cr_assert_eq(pids[0], p.id);
        store_strv_free(devs, np);
        free(pids);
    }

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
    cr_assert_str_eq(store_policy_state_name(st[0].state), "removing");
    cr_assert_eq(st[0].action, STORE_POLICY_REMOVE);
    store_policy_statuses_free(st, n);
    cr_assert_eq(tf_connect(s, "I1", STORE_STATUS_ACKNOWLEDGED, u, T0 + 11, &next, &out), 0);
    cr_assert_eq(store_policy_status(s, p.id, &st, &n, &err), 0);
    cr_assert_str_eq(store_policy_state_name(st[0].state), "removed");
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

Test(policies, device_state_read_does_not_grow_with_command_history)
{
    /* A device's policy states (its API page, the console's device page) are its latest
     * policy-linked queue entry per policy.  The read walked every entry the device ever had
     * and fetched each row to test policy_id, one table page per command of its history, so
     * every read filled the worker's SQLite page cache with that history (issue 18: the
     * soak's RSS climb).  On SQLite, a fresh connection's memory must not grow with the
     * operator's finished commands when it reads the states. */
    if (tf_pg())
        return;
    struct scepter_error err;
    struct store *s = tf_open();
    enum { DEVICES = 50, COMMANDS = 300 };
    const char *ids[DEVICES];
    char names[DEVICES][16], uuid[37];
    struct store_policy_device_status *st = NULL;
    struct store_command pc;
    struct store_policy p;
    int64_t pending;
    size_t n = 0, cancelled;

    tf_enroll_numbered(s, DEVICES, names, ids);
    tf_uuid(999, uuid);
    pc = tf_cmd(uuid, "InstallProfile", 0);
    p = policy("ios", "WiFi");
    cr_assert_eq(store_policy_save(s, &p, &pc, ids, 1, T0 + 1, &err), 0, "%s", err.msg);
    for (unsigned k = 0; k < COMMANDS; k++) { /* the operator's commands, all finished */
        struct store_command c;
        tf_uuid(1000 + k, uuid);
        c = tf_cmd(uuid, "ProfileList", 0);
        cr_assert_eq(store_enqueue(s, &c, ids, DEVICES, T0 + 2, &err), 0, "%s", err.msg);
    }
    for (int i = 1; i < DEVICES; i++)
        cr_assert_eq(store_queue_clear(s, names[i], &cancelled, &err), 0, "%s", err.msg);

    struct store *fresh = tf_open();
    cr_assert_eq(store_outbox_pending(fresh, &pending, &err), 0, "%s", err.msg); /* schema */
    int64_t before = store_sqlite_memory_used();
    cr_assert_eq(store_enrollment_policy_status(fresh, "D00", &st, &n, &err), 0, "%s", err.msg);
    int64_t grown = store_sqlite_memory_used() - before;
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].policy_id, p.id);
    cr_assert_str_eq(store_policy_state_name(st[0].state), "pending");
    store_policy_statuses_free(st, n);
    cr_assert_lt(grown, 96 * 1024,
                 "reading one device's policy states took %lld bytes of page cache",
                 (long long)grown);
    store_close(fresh);
    store_close(s);
}

/* A JSON string member of obj at a dotted path ("scep.url"), or NULL. */
static json_t *at(json_t *obj, const char *path)
{
    char buf[128], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *k = strtok_r(buf, ".", &save); k && obj; k = strtok_r(NULL, ".", &save))
        obj = json_object_get(obj, k);
    return obj;
}

static const char *str_at(json_t *obj, const char *path)
{
    return json_string_value(at(obj, path));
}

/*
 * A store made by the schema before 007_policy_document, holding policies in per-field
 * columns, is upgraded without losing a field: every column is in the document, the
 * targets stay rows, and unset fields stay unset.
 */
Test(policies, upgrade_to_documents_keeps_every_field)
{
    struct scepter_error err;
    struct store *s = NULL;
    struct store_policy got;
    int db, bin;
    const char *t = tf_pg() ? "true" : "1";
    const char *blob = tf_pg() ? "decode('3082010aff', 'hex')" : "x'3082010aff'";

    cr_assert_eq(store_open_at(tf_url(), 6, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(store_schema_version(s, &db, &bin, &err), 0, "%s", err.msg);
    cr_assert_eq(db, 6);
    /* The device and group the policy targets, as rows of that schema (today's store calls
     * write today's columns). */
    char *rows = xasprintf("INSERT INTO devices (id, type, platform, created, updated)"
                           " VALUES ('I1', 1, 'ios', %d, %d);"
                           " INSERT INTO device_groups (name, created) VALUES ('Mixed', %d)",
                           T0, T0, T0);
    cr_assert_eq(store_exec_sql(s, rows, &err), 0, "%s", err.msg);
    free(rows);
    char *sql = xasprintf(
        "INSERT INTO policies (uid, type, platform, name, notes, scep_url, scep_name,"
        " scep_challenge, scep_fingerprint, scep_subject, key_size, retries, retry_delay,"
        " key_extractable, key_usage, root_cert, san_dns, san_ntpn, san_rfc822, san_uri,"
        " version, created, updated) VALUES ('uid-1', 'scep', 'ios', 'Wi-Fi \"lab\"',"
        " 'line 1\nline 2', 'https://scep.example/pkiclient.exe', 'CA-1', 's3cr\u00e9t',"
        " '00112233445566778899aabbccddeeff00112233', '/C=US/O=Example/CN=%%SerialNumber%%/',"
        " 2048, 5, 60, %s, 5, %s, '%%ComputerName%%.example.com', 'host/x', 'a@example.com',"
        " 'https://example.com/x', 3, %d, %d)",
        t, blob, T0, T0 + 7);
    cr_assert_eq(store_exec_sql(s, sql, &err), 0, "%s", err.msg);
    free(sql);
    cr_assert_eq(store_exec_sql(s,
                                "INSERT INTO policies (uid, type, platform, name, scep_url,"
                                " key_size, retries, retry_delay, key_extractable, key_usage,"
                                " version, created, updated) VALUES ('uid-2', 'scep', 'macos',"
                                " 'Bare', 'http://scep.example/', 1024, 3, 10, false, 0, 1, 1, 1)",
                                &err),
                 0, "%s", err.msg);
    cr_assert_eq(store_exec_sql(s,
                                "INSERT INTO policy_devices (policy_id, device_id)"
                                " SELECT id, 'I1' FROM policies WHERE uid = 'uid-1'",
                                &err),
                 0, "%s", err.msg);
    cr_assert_eq(store_exec_sql(s,
                                "INSERT INTO policy_groups (policy_id, group_id)"
                                " SELECT p.id, g.id FROM policies p, device_groups g"
                                " WHERE p.uid = 'uid-1' AND g.name = 'Mixed'",
                                &err),
                 0, "%s", err.msg);
    store_close(s);

    s = tf_open(); /* applies 006 */
    cr_assert_eq(store_schema_version(s, &db, &bin, &err), 0, "%s", err.msg);
    cr_assert_eq(db, bin);
    struct store_policy *list;
    size_t n;
    cr_assert_eq(store_policy_list(s, NULL, &list, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(store_policy_get(s, list[0].id, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got.uid, "uid-1");
    cr_assert_str_eq(got.name, "Wi-Fi \"lab\"");
    cr_assert_str_eq(got.platform, "ios");
    cr_assert_eq(got.version, 3);
    cr_assert_eq(got.created, T0);
    cr_assert_eq(got.updated, T0 + 7);
    cr_assert_eq(got.n_target_devices, 1);
    cr_assert_str_eq(got.target_devices[0], "I1");
    cr_assert_eq(got.n_target_groups, 1);
    cr_assert_str_eq(got.target_groups[0], "Mixed");

    json_error_t je;
    json_t *d = json_loads(got.document, 0, &je);
    cr_assert_not_null(d, "%s: %s", got.document, je.text);
    cr_assert_str_eq(str_at(d, "type"), "scep");
    cr_assert_str_eq(str_at(d, "name"), "Wi-Fi \"lab\"");
    cr_assert_str_eq(str_at(d, "platform"), "ios");
    cr_assert_str_eq(str_at(d, "notes"), "line 1\nline 2");
    cr_assert_str_eq(str_at(d, "scep.url"), "https://scep.example/pkiclient.exe");
    cr_assert_str_eq(str_at(d, "scep.name"), "CA-1");
    cr_assert_str_eq(str_at(d, "scep.challenge"), "s3cr\u00e9t");
    cr_assert_str_eq(str_at(d, "scep.fingerprint"), "00112233445566778899aabbccddeeff00112233");
    cr_assert_str_eq(str_at(d, "scep.subject"), "/C=US/O=Example/CN=%SerialNumber%/");
    cr_assert_eq(json_integer_value(at(d, "scep.key_size")), 2048);
    cr_assert_eq(json_integer_value(at(d, "scep.retries")), 5);
    cr_assert_eq(json_integer_value(at(d, "scep.retry_delay")), 60);
    cr_assert(json_is_true(at(d, "scep.key_extractable")));
    json_t *ku = at(d, "scep.key_usage");
    cr_assert_eq(json_array_size(ku), 2);
    cr_assert_str_eq(json_string_value(json_array_get(ku, 0)), "signing");
    cr_assert_str_eq(json_string_value(json_array_get(ku, 1)), "encryption");
    cr_assert_str_eq(str_at(d, "scep.root_certificate"), "MIIBCv8=", "%s", got.document);
    cr_assert_str_eq(str_at(d, "scep.subject_alt_name.dns_name"), "%ComputerName%.example.com");
    cr_assert_str_eq(str_at(d, "scep.subject_alt_name.nt_principal_name"), "host/x");
    cr_assert_str_eq(str_at(d, "scep.subject_alt_name.rfc822_name"), "a@example.com");
    cr_assert_str_eq(str_at(d, "scep.subject_alt_name.uri"), "https://example.com/x");
    cr_assert_null(at(d, "targets"), "targets stay rows");
    json_decref(d);
    store_policy_clear(&got);

    /* Unset fields stay unset (absent or null), booleans and key usage keep their value. */
    d = json_loads(list[1].document, 0, &je);
    cr_assert_not_null(d, "%s: %s", list[1].document, je.text);
    cr_assert_str_eq(str_at(d, "name"), "Bare");
    cr_assert_null(str_at(d, "notes"));
    cr_assert_null(str_at(d, "scep.challenge"));
    cr_assert_null(str_at(d, "scep.root_certificate"));
    cr_assert_null(str_at(d, "scep.subject_alt_name.dns_name"));
    cr_assert(json_is_false(at(d, "scep.key_extractable")));
    cr_assert_eq(json_array_size(at(d, "scep.key_usage")), 0);
    cr_assert_eq(json_integer_value(at(d, "scep.key_size")), 1024);
    json_decref(d);
    store_policies_free(list, n);
    store_close(s);
}

/* A user channel of mac (enabled by its first TokenUpdate). */
static void user_channel(struct store *s, const char *mac, const char *user, int64_t now)
{
    struct scepter_error err;
    unsigned char tok[32];
    bool first = false;
    char id[96];

    memset(tok, 0xcd, sizeof(tok));
    snprintf(id, sizeof(id), "%s:%s", mac, user);
    struct store_token_update t = {.enrollment_id = id,
                                   .device_id = mac,
                                   .type = STORE_ENROLL_USER,
                                   .topic = "com.apple.mgmt.External.test",
                                   .token = tok,
                                   .token_len = sizeof(tok),
                                   .push_magic = "pm-user",
                                   .user_id = user};
    cr_assert_eq(store_token_update(s, &t, now, &first, &err), 0, "%s", err.msg);
}

/* The enabled user channels of the targeted Macs, for user-keychain policies. */
Test(policies, user_channels_of_devices)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char **dv = NULL, **ev = NULL;
    size_t n = 0;

    fleet(s);
    tf_enroll(s, "M3", "Mac14,2", T0);
    user_channel(s, "M1", "U-B", T0 + 1);
    user_channel(s, "M1", "U-A", T0 + 1);
    user_channel(s, "M3", "U-C", T0 + 1);
    const char *devs[] = {"M1", "M3", "I1"};
    cr_assert_eq(store_user_channels(s, devs, 3, &dv, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(dv[0], "M1");
    cr_assert_str_eq(ev[0], "M1:U-A");
    cr_assert_str_eq(ev[1], "M1:U-B");
    cr_assert_str_eq(dv[2], "M3");
    cr_assert_str_eq(ev[2], "M3:U-C");
    store_strv_free(dv, n);
    store_strv_free(ev, n);
    /* a checked-out Mac's channels are disabled: none */
    cr_assert_eq(store_checkout(s, "M3", T0 + 2, &err), 0, "%s", err.msg);
    cr_assert_eq(store_user_channels(s, devs + 1, 1, &dv, &ev, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    store_strv_free(dv, n);
    store_strv_free(ev, n);
    /* no devices: nothing asked */
    cr_assert_eq(store_user_channels(s, NULL, 0, &dv, &ev, &n, &err), 0);
    cr_assert_eq(n, 0);
    store_close(s);
}
