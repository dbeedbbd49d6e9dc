/*
 * store/policies.c — Mac / iOS SCEP Profiles policies: saving a policy with its targets and
 * the commands the save implies in one transaction, deleting one with its RemoveProfile
 * commands, reading policies back, resolving targets (devices named directly or through
 * groups, filtered by platform) and reporting where a policy stands on each device.  Every
 * query is set-based: the cost does not grow with round trips per device.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_NAME     255
#define MAX_DOCUMENT (4 * 1024 * 1024)

/* ---------------------------------------------------------------------------------------- */
/* Target resolution                                                                         */

void store_target_devices_free(struct store_target_device *t, size_t n)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(t[i].device_id);
        free(t[i].enrollment_id);
        free(t[i].serial_number);
        free(t[i].device_name);
        free(t[i].model);
        free(t[i].product_name);
        free(t[i].os_version);
    }
    free(t);
}

static const struct store_sql SQL_FIRST_UNKNOWN_GROUP = {
    "first_unknown_group",
    "SELECT a.value FROM {ARR1} AS a"
    " WHERE NOT EXISTS (SELECT 1 FROM device_groups g WHERE g.name = a.value) LIMIT 1",
    NULL, NULL};

static int check_groups(struct store *s, const char *const *names, size_t n, const char *field,
                        struct scepter_error *err)
{
    struct dbv p[] = {P_TEXTS(names, n)};
    struct dbres r;
    int rc;

    if (n == 0)
        return 0;
    rc = db_query(s, &SQL_FIRST_UNKNOWN_GROUP, p, ARRAY_LEN(p), &r, err);
    if (rc == 0 && (rc = db_next(&r, err)) == 1)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, field, "%s: no device group is named '%s'", field,
                         db_text(&r, 0));
    db_res_clear(&r);
    return rc;
}

static const struct store_sql SQL_TARGETS = {
    "targets_resolve",
    /* The named devices and the groups' members drive the join: "d.id IN (...) OR d.id IN
     * (...)" made PostgreSQL filter every device (33 ms for one device among 100,000). */
    "SELECT d.id, e.id, d.platform, d.serial_number, d.device_name, d.model, d.product_name,"
    " d.os_version FROM (SELECT a.value AS id FROM {ARR1} AS a UNION SELECT m.device_id"
    "  FROM group_members m JOIN device_groups g ON g.id = m.group_id WHERE g.name IN {ARR2}) t"
    " JOIN devices d ON d.id = t.id JOIN enrollments e ON e.id = d.id AND e.enabled"
    " WHERE ($4 OR d.platform IN {ARR3})"
    " ORDER BY d.id",
    NULL, NULL};

static int targets_resolve(struct store *s, const char *const *devs, size_t ndev,
                           const char *const *groups, size_t ngroups,
                           const enum store_platform *plats, size_t nplat,
                           struct store_target_device **out, size_t *n, struct scepter_error *err)
{
    struct store_target_device *t = NULL;
    const char **pnames = NULL;
    size_t i, count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    if ((rc = store_check_devices(s, devs, ndev, "targets.devices", err)) != 0 ||
        (rc = check_groups(s, groups, ngroups, "targets.device_groups", err)) != 0)
        goto out;
    pnames = xcalloc(nplat ? nplat : 1, sizeof(*pnames));
    for (i = 0; i < nplat; i++)
        pnames[i] = store_platform_name(plats[i]);
    {
        struct dbv p[] = {P_TEXTS(devs, ndev), P_TEXTS(groups, ngroups), P_TEXTS(pnames, nplat),
                          P_BOOL(nplat == 0)};
        if ((rc = db_query(s, &SQL_TARGETS, p, ARRAY_LEN(p), &r, err)) != 0)
            goto out;
    }
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            t = xreallocarray(t, cap, sizeof(*t));
        }
        t[count].device_id = db_strdup(&r, 0);
        t[count].enrollment_id = db_strdup(&r, 1);
        t[count].platform = store_platform_parse(db_text(&r, 2));
        t[count].serial_number = db_strdup(&r, 3);
        t[count].device_name = db_strdup(&r, 4);
        t[count].model = db_strdup(&r, 5);
        t[count].product_name = db_strdup(&r, 6);
        t[count].os_version = db_strdup(&r, 7);
        count++;
    }
out:
    db_res_clear(&r);
    free(pnames);
    if (rc < 0) {
        store_target_devices_free(t, count);
        return rc;
    }
    *out = t;
    *n = count;
    return 0;
}

static const struct store_sql SQL_USER_CHANNELS = {
    "user_channels",
    "SELECT e.device_id, e.id FROM enrollments e WHERE e.device_id IN {ARR1} AND e.type = $2"
    " AND e.enabled ORDER BY e.device_id, e.id",
    NULL, NULL};

static int user_channels(struct store *s, const char *const *devs, size_t ndev, char ***dev_out,
                         char ***enr_out, size_t *n, struct scepter_error *err)
{
    char **dv = NULL, **ev = NULL;
    size_t count = 0, dcap = 0, ecap = 0;
    struct dbv p[] = {P_TEXTS(devs, ndev), P_INT(STORE_ENROLL_USER)};
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_USER_CHANNELS, p, ARRAY_LEN(p), &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        size_t k = count;
        store_strv_push(&dv, &k, &dcap, db_strdup(&r, 0));
        store_strv_push(&ev, &count, &ecap, db_strdup(&r, 1));
    }
    db_res_clear(&r);
    if (rc < 0) {
        store_strv_free(dv, count);
        store_strv_free(ev, count);
        return rc;
    }
    *dev_out = dv;
    *enr_out = ev;
    *n = count;
    return 0;
}

int store_user_channels(struct store *s, const char *const *device_ids, size_t ndev,
                        char ***dev_out, char ***enrollment_ids, size_t *n,
                        struct scepter_error *err)
{
    int rc;

    *dev_out = *enrollment_ids = NULL;
    *n = 0;
    if (ndev == 0)
        return 0;
    STORE_CALL(s, rc, err)
    rc = user_channels(s, device_ids, ndev, dev_out, enrollment_ids, n, err);
    return rc;
}

static int check_list(const char *const *v, size_t n, const char *field, struct scepter_error *err)
{
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        if ((rc = store_check_str(v[i], MAX_NAME, field, err)) != 0)
            return rc;
    }
    return 0;
}

int store_targets_resolve(struct store *s, const char *const *device_ids, size_t ndev,
                          const char *const *groups, size_t ngroups,
                          const enum store_platform *platforms, size_t nplat,
                          struct store_target_device **out, size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = check_list(device_ids, ndev, "targets.devices", err)) != 0 ||
        (rc = check_list(groups, ngroups, "targets.device_groups", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = targets_resolve(s, device_ids, ndev, groups, ngroups, platforms, nplat, out, n, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Saving and deleting                                                                       */

void store_policy_clear(struct store_policy *p)
{
    if (p == NULL)
        return;
    free(p->uid);
    free(p->type);
    free(p->platform);
    free(p->name);
    free(p->document);
    store_strv_free(p->target_devices, p->n_target_devices);
    store_strv_free(p->target_groups, p->n_target_groups);
    memset(p, 0, sizeof(*p));
}

void store_policies_free(struct store_policy *p, size_t n)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < n; i++)
        store_policy_clear(&p[i]);
    free(p);
}

static const struct store_sql SQL_POLICY_INSERT = {
    "policy_insert",
    "INSERT INTO policies (type, platform, name, document, version, created, updated, uid)"
    " VALUES ($1, $2, $3, $4, 1, $5, $5, $6) ON CONFLICT (platform, name) DO NOTHING"
    " RETURNING id, version",
    NULL, NULL};

static const struct store_sql SQL_POLICY_UPDATE = {
    "policy_update",
    "UPDATE policies SET type = $1, platform = $2, name = $3, document = $4,"
    " version = version + 1, updated = $5 WHERE id = $6 RETURNING id, version, created",
    NULL, NULL};

static const struct store_sql SQL_POLICY_NAME_TAKEN = {
    "policy_name_taken", "SELECT id FROM policies WHERE platform = $1 AND name = $2 AND id <> $3",
    NULL, NULL};

static const struct store_sql SQL_POLICY_TARGETS_CLEAR_DEV = {
    "policy_targets_clear_devices", "DELETE FROM policy_devices WHERE policy_id = $1", NULL, NULL};
static const struct store_sql SQL_POLICY_TARGETS_CLEAR_GRP = {
    "policy_targets_clear_groups", "DELETE FROM policy_groups WHERE policy_id = $1", NULL, NULL};
static const struct store_sql SQL_POLICY_TARGETS_DEV = {
    "policy_targets_devices",
    "INSERT INTO policy_devices (policy_id, device_id) SELECT DISTINCT $2, a.value"
    " FROM {ARR1} AS a WHERE true ON CONFLICT (policy_id, device_id) DO NOTHING",
    NULL, NULL};
static const struct store_sql SQL_POLICY_TARGETS_GRP = {
    "policy_targets_groups",
    "INSERT INTO policy_groups (policy_id, group_id) SELECT DISTINCT $2, g.id"
    " FROM device_groups g WHERE g.name IN {ARR1}"
    " ON CONFLICT (policy_id, group_id) DO NOTHING",
    NULL, NULL};

static int name_conflict(const struct store_policy *p, struct scepter_error *err)
{
    return scepter_err(err, SCEPTER_ECONFLICT, "name",
                       "name: a %s policy named '%s' exists already", p->platform, p->name);
}

static int policy_save(struct store *s, struct store_policy *p, const struct store_command *cmds,
                       const char *const *ids, size_t n, int64_t now, struct scepter_error *err)
{
    const char *const *devs = (const char *const *)p->target_devices;
    const char *const *grps = (const char *const *)p->target_groups;
    struct dbres r = {0};
    int64_t id = 0, version = 0, created = now;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        goto out;
    if ((rc = store_check_devices(s, devs, p->n_target_devices, "targets.devices", err)) != 0 ||
        (rc = check_groups(s, grps, p->n_target_groups, "targets.device_groups", err)) != 0)
        goto out;
    {
        struct dbv q[] = {P_TEXT(p->platform), P_TEXT(p->name), P_INT(p->id)};
        if ((rc = db_query(s, &SQL_POLICY_NAME_TAKEN, q, ARRAY_LEN(q), &r, err)) != 0)
            goto out;
        if ((rc = db_next(&r, err)) != 0) {
            if (rc == 1)
                rc = name_conflict(p, err);
            goto out;
        }
        db_res_clear(&r);
    }
    {
        struct dbv q[] = {P_TEXT(p->type),     P_TEXT(p->platform), P_TEXT(p->name),
                          P_TEXT(p->document), P_INT(now),          P_INT(p->id)};
        /* $6 is the id of the policy to update, or the uid of a new one. */
        if (p->id == 0)
            q[5] = P_TEXT(p->uid);
        rc = db_query(s, p->id ? &SQL_POLICY_UPDATE : &SQL_POLICY_INSERT, q, ARRAY_LEN(q), &r, err);
        if (rc == SCEPTER_ECONFLICT) /* a concurrent save took the name */
            rc = name_conflict(p, err);
        if (rc != 0)
            goto out;
    }
    if ((rc = db_next(&r, err)) < 0)
        goto out;
    if (rc == 0) {
        rc = p->id ? scepter_err(err, SCEPTER_ENOTFOUND, "id", "policy %lld does not exist",
                                 (long long)p->id)
                   : name_conflict(p, err);
        goto out;
    }
    id = db_int(&r, 0);
    version = db_int(&r, 1);
    if (p->id)
        created = db_int(&r, 2);
    db_res_clear(&r);
    {
        struct dbv q[] = {P_INT(id)};
        if ((rc = db_exec(s, &SQL_POLICY_TARGETS_CLEAR_DEV, q, 1, NULL, err)) != 0 ||
            (rc = db_exec(s, &SQL_POLICY_TARGETS_CLEAR_GRP, q, 1, NULL, err)) != 0)
            goto out;
    }
    if (p->n_target_devices) {
        struct dbv q[] = {P_TEXTS(devs, p->n_target_devices), P_INT(id)};
        if ((rc = db_exec(s, &SQL_POLICY_TARGETS_DEV, q, ARRAY_LEN(q), NULL, err)) != 0)
            goto out;
    }
    if (p->n_target_groups) {
        struct dbv q[] = {P_TEXTS(grps, p->n_target_groups), P_INT(id)};
        if ((rc = db_exec(s, &SQL_POLICY_TARGETS_GRP, q, ARRAY_LEN(q), NULL, err)) != 0)
            goto out;
    }
    if ((rc = store_enqueue_each_tx(s, cmds, ids, n, now, id, version, STORE_POLICY_INSTALL,
                                    err)) != 0)
        goto out;
    if ((rc = db_commit(s, err)) != 0)
        goto out;
    p->id = id;
    p->version = version;
    p->created = created;
    p->updated = now;
out:
    db_res_clear(&r);
    return rc;
}

static int check_policy(const struct store_policy *p, struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(p->type, 64, "type", err)) != 0 ||
        (rc = store_check_str(p->platform, 32, "platform", err)) != 0 ||
        (rc = store_check_str(p->name, MAX_NAME, "name", err)) != 0)
        return rc;
    if (store_platform_parse(p->platform) == STORE_PLATFORM_UNKNOWN ||
        strcmp(store_platform_name(store_platform_parse(p->platform)), p->platform) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "platform",
                           "platform: '%s' is not one of macos, ios, ipados, tvos, watchos, "
                           "visionos",
                           p->platform);
    if (p->id < 0)
        return scepter_err(err, SCEPTER_EINVAL, "id", "id: %lld is not a policy id",
                           (long long)p->id);
    if (p->id == 0 && (rc = store_check_str(p->uid, 64, "uid", err)) != 0)
        return rc;
    if ((rc = store_check_str(p->document, MAX_DOCUMENT, "document", err)) != 0)
        return rc;
    if ((rc = check_list((const char *const *)p->target_devices, p->n_target_devices,
                         "targets.devices", err)) != 0 ||
        (rc = check_list((const char *const *)p->target_groups, p->n_target_groups,
                         "targets.device_groups", err)) != 0)
        return rc;
    return 0;
}

int store_policy_save(struct store *s, struct store_policy *p, const struct store_command *cmds,
                      const char *const *enrollment_ids, size_t n, int64_t now,
                      struct scepter_error *err)
{
    size_t i;
    int rc;

    if ((rc = check_policy(p, err)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        if ((rc = store_check_command(&cmds[i], err)) != 0 ||
            (rc = store_check_str(enrollment_ids[i], 512, "enrollment_ids", err)) != 0)
            return rc;
    }
    STORE_CALL(s, rc, err)
    rc = policy_save(s, p, cmds, enrollment_ids, n, now, err);
    return rc;
}

static const struct store_sql SQL_POLICY_DELETE = {
    "policy_delete", "DELETE FROM policies WHERE id = $1 RETURNING version", NULL, NULL};

static int policy_delete(struct store *s, int64_t id, const struct store_command *cmds,
                         const char *const *ids, size_t n, int64_t now, struct scepter_error *err)
{
    struct dbv q[] = {P_INT(id)};
    struct dbres r = {0};
    int64_t version;
    int rc;

    if ((rc = db_begin(s, err)) != 0 ||
        (rc = db_query(s, &SQL_POLICY_DELETE, q, ARRAY_LEN(q), &r, err)) != 0)
        goto out;
    if ((rc = db_next(&r, err)) != 1) {
        if (rc == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "policy %lld does not exist",
                             (long long)id);
        goto out;
    }
    version = db_int(&r, 0);
    db_res_clear(&r);
    if ((rc = store_enqueue_each_tx(s, cmds, ids, n, now, id, version, STORE_POLICY_REMOVE, err)) !=
        0)
        goto out;
    rc = db_commit(s, err);
out:
    db_res_clear(&r);
    return rc;
}

int store_policy_delete(struct store *s, int64_t id, const struct store_command *cmds,
                        const char *const *enrollment_ids, size_t n, int64_t now,
                        struct scepter_error *err)
{
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        if ((rc = store_check_command(&cmds[i], err)) != 0 ||
            (rc = store_check_str(enrollment_ids[i], 512, "enrollment_ids", err)) != 0)
            return rc;
    }
    STORE_CALL(s, rc, err)
    rc = policy_delete(s, id, cmds, enrollment_ids, n, now, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

#define POLICY_COLUMNS                                                                             \
    "SELECT id, type, platform, name, document, version, created, updated, uid FROM policies"

/* $1 platform or NULL, $2 id or 0. */
#define POLICY_FILTER "($1 IS NULL OR p.platform = $1) AND ($2 = 0 OR p.id = $2)"

static const struct store_sql SQL_POLICIES = {
    "policies", POLICY_COLUMNS " p WHERE " POLICY_FILTER " ORDER BY p.id", NULL, NULL};
static const struct store_sql SQL_POLICIES_DEVICES = {
    "policies_devices",
    "SELECT t.policy_id, t.device_id FROM policy_devices t JOIN policies p ON p.id = t.policy_id"
    " WHERE " POLICY_FILTER " ORDER BY t.policy_id, t.device_id",
    NULL, NULL};
static const struct store_sql SQL_POLICIES_GROUPS = {
    "policies_groups",
    "SELECT t.policy_id, g.name FROM policy_groups t JOIN policies p ON p.id = t.policy_id"
    " JOIN device_groups g ON g.id = t.group_id WHERE " POLICY_FILTER
    " ORDER BY t.policy_id, g.name",
    NULL, NULL};

static void read_policy(const struct dbres *r, struct store_policy *p)
{
    p->id = db_int(r, 0);
    p->type = db_strdup(r, 1);
    p->platform = db_strdup(r, 2);
    p->name = db_strdup(r, 3);
    p->document = db_strdup(r, 4);
    p->version = db_int(r, 5);
    p->created = db_int(r, 6);
    p->updated = db_int(r, 7);
    p->uid = db_strdup(r, 8);
}

/* Attach (policy id, value) rows, sorted by policy id, to pols (sorted by id). */
static int attach_targets(struct store *s, const struct store_sql *q, const struct dbv *params,
                          struct store_policy *pols, size_t n, bool devices,
                          struct scepter_error *err)
{
    struct dbres r;
    size_t i = 0, cap = 0;
    int rc = db_query(s, q, params, 2, &r, err);

    while (rc == 0 && (rc = db_next(&r, err)) == 1) {
        int64_t pid = db_int(&r, 0);
        size_t before = i;
        rc = 0;
        while (i < n && pols[i].id != pid)
            i++;
        if (i == n) /* a policy created between the two queries */
            continue;
        if (i != before) /* a new policy: its vector is empty */
            cap = 0;
        if (devices)
            store_strv_push(&pols[i].target_devices, &pols[i].n_target_devices, &cap,
                            db_strdup(&r, 1));
        else
            store_strv_push(&pols[i].target_groups, &pols[i].n_target_groups, &cap,
                            db_strdup(&r, 1));
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

static int policies_read(struct store *s, const char *platform, int64_t id,
                         struct store_policy **out, size_t *n, struct scepter_error *err)
{
    struct dbv q[] = {P_TEXT(platform), P_INT(id)};
    struct store_policy *pols = NULL;
    size_t count = 0, cap = 0;
    struct dbres r = {0};
    int rc;

    if ((rc = db_query(s, &SQL_POLICIES, q, ARRAY_LEN(q), &r, err)) != 0)
        goto out;
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            pols = xreallocarray(pols, cap, sizeof(*pols));
        }
        memset(&pols[count], 0, sizeof(*pols));
        read_policy(&r, &pols[count++]);
    }
    db_res_clear(&r);
    if (rc < 0)
        goto out;
    if ((rc = attach_targets(s, &SQL_POLICIES_DEVICES, q, pols, count, true, err)) != 0 ||
        (rc = attach_targets(s, &SQL_POLICIES_GROUPS, q, pols, count, false, err)) != 0)
        goto out;
out:
    db_res_clear(&r);
    if (rc < 0) {
        store_policies_free(pols, count);
        return rc;
    }
    *out = pols;
    *n = count;
    return 0;
}

int store_policy_get(struct store *s, int64_t id, struct store_policy *out,
                     struct scepter_error *err)
{
    struct store_policy *pols = NULL;
    size_t n = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (id <= 0)
        return scepter_err(err, SCEPTER_ENOTFOUND, "id", "policy %lld does not exist",
                           (long long)id);
    STORE_CALL(s, rc, err)
    rc = policies_read(s, NULL, id, &pols, &n, err);
    if (rc == 0 && n == 0)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "policy %lld does not exist", (long long)id);
    if (rc == 0) {
        *out = pols[0];
        free(pols);
        return 0;
    }
    store_policies_free(pols, n);
    return rc;
}

int store_policy_list(struct store *s, const char *platform, struct store_policy **out, size_t *n,
                      struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    rc = policies_read(s, platform, 0, out, n, err);
    return rc;
}

/* The policies targeting a device, without their targets: what a DDM sync computes from. */
static const struct store_sql SQL_POLICIES_OF_DEVICE = {
    "policies_of_device",
    POLICY_COLUMNS " p WHERE p.id IN (SELECT policy_id FROM policy_devices WHERE device_id = $1"
                   "  UNION SELECT t.policy_id FROM policy_groups t"
                   "  JOIN group_members m ON m.group_id = t.group_id WHERE m.device_id = $1)"
                   " ORDER BY p.id",
    NULL, NULL};

static int policies_of_device(struct store *s, const char *device_id, struct store_policy **out,
                              size_t *n, struct scepter_error *err)
{
    struct dbv q[] = {P_TEXT(device_id)};
    size_t cap = 0;
    struct dbres r;
    int rc;

    store_policies_free(*out, *n);
    *out = NULL;
    *n = 0;
    if ((rc = db_query(s, &SQL_POLICIES_OF_DEVICE, q, 1, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = xreallocarray(*out, cap, sizeof(**out));
        }
        memset(&(*out)[*n], 0, sizeof(**out));
        read_policy(&r, &(*out)[(*n)++]);
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

int store_policies_of_device(struct store *s, const char *device_id, struct store_policy **out,
                             size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(device_id, LIMIT_DEVICE_ID, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err) rc = policies_of_device(s, device_id, out, n, err);
    if (rc != 0) {
        store_policies_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static const struct store_sql SQL_POLICIES_FOR_DEVICES = {
    "policies_for_devices",
    "SELECT x.device_id, x.policy_id FROM (SELECT t.device_id, t.policy_id FROM policy_devices t"
    "  WHERE t.device_id IN {ARR1}"
    "  UNION SELECT m.device_id, g.policy_id FROM policy_groups g"
    "  JOIN group_members m ON m.group_id = g.group_id WHERE m.device_id IN {ARR1}) AS x"
    " ORDER BY 1, 2",
    NULL, NULL};

static int policies_for_devices(struct store *s, const char *const *ids, size_t ndev, char ***devs,
                                int64_t **pids, size_t *n, struct scepter_error *err)
{
    struct dbv q[] = {P_TEXTS(ids, ndev)};
    size_t cap = 0;
    struct dbres r;
    int rc;

    store_strv_free(*devs, *n);
    free(*pids);
    *devs = NULL;
    *pids = NULL;
    *n = 0;
    if ((rc = db_query(s, &SQL_POLICIES_FOR_DEVICES, q, 1, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *devs = xreallocarray(*devs, cap, sizeof(**devs));
            *pids = xreallocarray(*pids, cap, sizeof(**pids));
        }
        (*devs)[*n] = db_strdup(&r, 0);
        (*pids)[*n] = db_int(&r, 1);
        (*n)++;
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

int store_policies_for_devices(struct store *s, const char *const *device_ids, size_t ndev,
                               char ***device_ids_out, int64_t **policy_ids, size_t *n,
                               struct scepter_error *err)
{
    int rc;

    *device_ids_out = NULL;
    *policy_ids = NULL;
    *n = 0;
    if (ndev == 0)
        return 0;
    for (size_t i = 0; i < ndev; i++)
        if ((rc = store_check_str(device_ids[i], LIMIT_DEVICE_ID, "device_id", err)) != 0)
            return rc;
    STORE_CALL(s, rc, err)
    rc = policies_for_devices(s, device_ids, ndev, device_ids_out, policy_ids, n, err);
    if (rc != 0) {
        store_strv_free(*device_ids_out, *n);
        free(*policy_ids);
        *device_ids_out = NULL;
        *policy_ids = NULL;
        *n = 0;
    }
    return rc;
}

/* One round trip: 0 whether the device exists (every row), 1 a policy id or NULL. */
static const struct store_sql SQL_POLICIES_FOR_DEVICE = {
    "policies_for_device",
    "SELECT d.id, p.policy_id FROM (SELECT id FROM devices WHERE id = $1) AS d"
    " LEFT JOIN (SELECT policy_id FROM policy_devices WHERE device_id = $1"
    "  UNION SELECT t.policy_id FROM policy_groups t"
    "  JOIN group_members m ON m.group_id = t.group_id WHERE m.device_id = $1) AS p ON true"
    " ORDER BY 2",
    NULL, NULL};

static int policies_for_device(struct store *s, const char *device_id, int64_t **ids, size_t *n,
                               struct scepter_error *err)
{
    struct dbv q[] = {P_TEXT(device_id)};
    int64_t *v = NULL;
    size_t count = 0, cap = 0;
    bool exists = false;
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_POLICIES_FOR_DEVICE, q, 1, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        exists = true;
        if (db_isnull(&r, 1))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        v[count++] = db_int(&r, 1);
    }
    db_res_clear(&r);
    if (rc == 0 && !exists)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "device_id", "device %s is unknown", device_id);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *ids = v;
    *n = count;
    return 0;
}

/* $1 device (its device channel's enrollment id is the same), $2 STORE_ENROLL_USER. */
static const struct store_sql SQL_DEVICE_POLICY_PROBE = {
    "device_policy_probe",
    "SELECT EXISTS (SELECT 1 FROM policy_devices WHERE device_id = $1)"
    " OR EXISTS (SELECT 1 FROM policy_groups t JOIN group_members m ON m.group_id = t.group_id"
    "  WHERE m.device_id = $1)"
    " OR EXISTS (SELECT 1 FROM queue q WHERE q.enrollment_id = $1 AND q.policy_id IS NOT NULL),"
    " EXISTS (SELECT 1 FROM enrollments e WHERE e.device_id = $1 AND e.type = $2 AND e.enabled)",
    NULL, NULL};

int store_device_policy_probe(struct store *s, const char *device_id, bool *policies,
                              bool *user_channels, struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(device_id), P_INT(STORE_ENROLL_USER)};
    struct dbres r;
    int rc;

    *policies = *user_channels = true; /* on any failure: do the full reconciliation */
    if ((rc = store_check_str(device_id, 256, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        if ((rc = db_query(s, &SQL_DEVICE_POLICY_PROBE, p, ARRAY_LEN(p), &r, err)) == 0) {
            if ((rc = db_next(&r, err)) == 1) {
                *policies = db_bool(&r, 0);
                *user_channels = db_bool(&r, 1);
                rc = 0;
            } else if (rc == 0) {
                rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "store: policy probe: no row");
            }
        }
        db_res_clear(&r);
    }
    return rc;
}

int store_policies_for_device(struct store *s, const char *device_id, int64_t **ids, size_t *n,
                              struct scepter_error *err)
{
    int rc;

    *ids = NULL;
    *n = 0;
    if ((rc = store_check_str(device_id, 256, "device_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = policies_for_device(s, device_id, ids, n, err);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Status                                                                                    */

void store_policy_statuses_free(struct store_policy_device_status *st, size_t n)
{
    size_t i;

    if (st == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(st[i].device_id);
        free(st[i].enrollment_id);
        free(st[i].error_chain_json);
        free(st[i].device_name);
        free(st[i].serial_number);
        free(st[i].os_version);
    }
    free(st);
}

/* The latest command linked to the policy on each device (any of its channels).  A queue row
 * whose link a new enrollment cleared (q.policy_id NULL) belonged to an earlier enrollment and
 * no longer counts. */
static const struct store_sql SQL_POLICY_STATUS = {
    "policy_status",
    "SELECT x.device_id, x.enrollment_id, x.uuid, x.action, x.pversion, x.state, x.status,"
    " x.error_chain, x.notnow_count, x.updated, d.device_name, d.serial_number, d.platform,"
    " x.request_type, d.os_version"
    " FROM (SELECT e.device_id, q.enrollment_id, c.request_type,"
    "  q.command_uuid AS uuid, c.policy_action AS action, c.policy_version AS pversion,"
    "  q.state, q.status, q.error_chain, q.notnow_count, q.updated,"
    "  row_number() OVER (PARTITION BY q.enrollment_id ORDER BY q.seq DESC) AS rn"
    "  FROM commands c JOIN queue q ON q.command_uuid = c.uuid"
    "  JOIN enrollments e ON e.id = q.enrollment_id WHERE c.policy_id = $1 AND q.policy_id = $1)"
    " AS x"
    " LEFT JOIN devices d ON d.id = x.device_id"
    " WHERE rn = 1 ORDER BY x.device_id, x.enrollment_id",
    NULL, NULL};

static const struct store_sql SQL_POLICY_EXISTS = {
    "policy_exists", "SELECT 1 FROM policies WHERE id = $1", NULL, NULL};

static enum store_policy_state policy_state(enum store_policy_action action, int state, int status)
{
    bool remove = action == STORE_POLICY_REMOVE;

    if (state == QSTATE_CANCELLED)
        return STORE_PSTATE_CANCELLED;
    if (state == QSTATE_EXPIRED)
        return STORE_PSTATE_EXPIRED;
    if (state == QSTATE_PENDING)
        return remove ? STORE_PSTATE_REMOVING : STORE_PSTATE_PENDING;
    if (status == STORE_STATUS_ACKNOWLEDGED)
        return remove ? STORE_PSTATE_REMOVED : STORE_PSTATE_INSTALLED;
    return remove ? STORE_PSTATE_REMOVE_FAILED : STORE_PSTATE_FAILED;
}

const char *store_policy_state_name(enum store_policy_state st)
{
    static const char *const names[] = {
        [STORE_PSTATE_PENDING] = "pending",     [STORE_PSTATE_INSTALLED] = "installed",
        [STORE_PSTATE_FAILED] = "failed",       [STORE_PSTATE_REMOVING] = "removing",
        [STORE_PSTATE_REMOVED] = "removed",     [STORE_PSTATE_REMOVE_FAILED] = "remove_failed",
        [STORE_PSTATE_CANCELLED] = "cancelled", [STORE_PSTATE_EXPIRED] = "expired"};

    return (unsigned)st < ARRAY_LEN(names) ? names[st] : "unknown";
}

static bool state_failed(enum store_policy_state st)
{
    return st == STORE_PSTATE_FAILED || st == STORE_PSTATE_REMOVE_FAILED;
}

static int policy_status(struct store *s, int64_t id, struct store_policy_device_status **out,
                         size_t *n, struct scepter_error *err)
{
    struct dbv q[] = {P_INT(id)};
    struct store_policy_device_status *st = NULL;
    size_t count = 0, cap = 0;
    bool exists = false;
    struct dbres r;
    int rc;

    rc = db_query(s, &SQL_POLICY_EXISTS, q, 1, &r, err);
    if (rc == 0 && (rc = db_next(&r, err)) >= 0) {
        exists = rc == 1;
        rc = 0;
    }
    db_res_clear(&r);
    if (rc < 0)
        return rc;
    if ((rc = db_query(s, &SQL_POLICY_STATUS, q, 1, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        struct store_policy_device_status *d;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            st = xreallocarray(st, cap, sizeof(*st));
        }
        d = &st[count++];
        memset(d, 0, sizeof(*d));
        d->device_id = db_strdup(&r, 0);
        d->enrollment_id = db_strdup(&r, 1);
        str_copy(d->uuid, sizeof(d->uuid), db_text(&r, 2));
        d->action = (enum store_policy_action)db_int(&r, 3);
        d->policy_version = db_int(&r, 4);
        d->state = policy_state(d->action, (int)db_int(&r, 5), (int)db_int(&r, 6));
        if (state_failed(d->state))
            d->error_chain_json = db_strdup(&r, 7);
        d->notnow_count = (int)db_int(&r, 8);
        d->updated = db_int(&r, 9);
        d->device_name = db_strdup(&r, 10);
        d->serial_number = db_strdup(&r, 11);
        d->platform =
            db_isnull(&r, 12) ? STORE_PLATFORM_UNKNOWN : store_platform_parse(db_text(&r, 12));
        str_copy(d->request_type, sizeof(d->request_type), db_text(&r, 13));
        d->os_version = db_strdup(&r, 14);
    }
    db_res_clear(&r);
    if (rc == 0 && count == 0 && !exists)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, "id", "policy %lld does not exist", (long long)id);
    if (rc < 0) {
        store_policy_statuses_free(st, count);
        return rc;
    }
    *out = st;
    *n = count;
    return 0;
}

int store_policy_status(struct store *s, int64_t policy_id, struct store_policy_device_status **out,
                        size_t *n, struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    rc = policy_status(s, policy_id, out, n, err);
    return rc;
}

/* The latest policy-linked queue entry of one enrollment, per policy. */
static const struct store_sql SQL_ENROLLMENT_POLICY_STATUS = {
    "enrollment_policy_status",
    "SELECT policy_id, uuid, action, pversion, state, status, error_chain, notnow_count, updated,"
    " enrollment_id, request_type FROM (SELECT q.policy_id, q.command_uuid AS uuid, c.request_type,"
    "  c.policy_action AS action, c.policy_version AS pversion, q.state, q.status,"
    "  q.error_chain, q.notnow_count, q.updated, q.enrollment_id,"
    "  row_number() OVER (PARTITION BY q.policy_id ORDER BY q.seq DESC) AS rn"
    "  FROM queue q JOIN commands c ON c.uuid = q.command_uuid"
    "  WHERE q.enrollment_id = $1 AND q.policy_id IS NOT NULL) AS x"
    " WHERE rn = 1 ORDER BY policy_id",
    NULL, NULL};

static int enrollment_policy_status(struct store *s, const char *enrollment_id,
                                    struct store_policy_device_status **out, size_t *n,
                                    struct scepter_error *err)
{
    struct dbv q[] = {P_TEXT(enrollment_id)};
    struct store_policy_device_status *st = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_ENROLLMENT_POLICY_STATUS, q, 1, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        struct store_policy_device_status *d;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            st = xreallocarray(st, cap, sizeof(*st));
        }
        d = &st[count++];
        memset(d, 0, sizeof(*d));
        d->policy_id = db_int(&r, 0);
        str_copy(d->uuid, sizeof(d->uuid), db_text(&r, 1));
        d->action = (enum store_policy_action)db_int(&r, 2);
        d->policy_version = db_int(&r, 3);
        d->state = policy_state(d->action, (int)db_int(&r, 4), (int)db_int(&r, 5));
        if (state_failed(d->state))
            d->error_chain_json = db_strdup(&r, 6);
        d->notnow_count = (int)db_int(&r, 7);
        d->updated = db_int(&r, 8);
        d->enrollment_id = db_strdup(&r, 9);
        d->device_id = xstrdup(d->enrollment_id);
        str_copy(d->request_type, sizeof(d->request_type), db_text(&r, 10));
    }
    db_res_clear(&r);
    if (rc < 0) {
        store_policy_statuses_free(st, count);
        return rc;
    }
    *out = st;
    *n = count;
    return 0;
}

int store_enrollment_policy_status(struct store *s, const char *enrollment_id,
                                   struct store_policy_device_status **out, size_t *n,
                                   struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(enrollment_id, 256, "enrollment_id", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = enrollment_policy_status(s, enrollment_id, out, n, err);
    return rc;
}
