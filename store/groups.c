/*
 * store/groups.c — device groups and their memberships.  Names are unique; adding or
 * removing devices is one set statement whatever the number of devices, after a check that
 * names the first unknown device, so nothing changes when one id is wrong.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#define MAX_GROUP_NAME 255

void store_groups_free(struct store_group *g, size_t n)
{
    size_t i;

    if (g == NULL)
        return;
    for (i = 0; i < n; i++)
        free(g[i].name);
    free(g);
}

static const struct store_sql SQL_GROUP_CREATE = {
    "group_create",
    "INSERT INTO device_groups (name, created) VALUES ($1, $2)"
    " ON CONFLICT (name) DO NOTHING RETURNING id",
    NULL, NULL};

int store_group_create(struct store *s, const char *name, int64_t now, int64_t *id,
                       struct scepter_error *err)
{
    struct dbres r;
    int rc;

    *id = 0;
    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(name), P_INT(now)};
        rc = db_query(s, &SQL_GROUP_CREATE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *id = db_int(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "name",
                             "name: a device group named '%s' exists already", name);
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_GROUP_ID = {
    "group_id", "SELECT id FROM device_groups WHERE name = $1", NULL, NULL};

/* The id of the group called name, or ENOTFOUND naming field. */
static int group_id(struct store *s, const char *name, const char *field, int64_t *id,
                    struct scepter_error *err)
{
    struct dbv p[] = {P_TEXT(name)};
    struct dbres r;
    int rc = db_query(s, &SQL_GROUP_ID, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1) {
        *id = db_int(&r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = scepter_err(err, SCEPTER_ENOTFOUND, field, "%s: no device group is named '%s'", field,
                         name);
    }
    db_res_clear(&r);
    return rc;
}

static const struct store_sql SQL_GROUP_RENAME = {
    "group_rename", "UPDATE device_groups SET name = $2 WHERE id = $1", NULL, NULL};

static int group_rename(struct store *s, const char *name, const char *new_name,
                        struct scepter_error *err)
{
    int64_t id = 0, other = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0 || (rc = group_id(s, name, "name", &id, err)) != 0)
        return rc;
    if (strcmp(name, new_name) == 0)
        return db_commit(s, err);
    rc = group_id(s, new_name, "new_name", &other, err);
    if (rc == 0)
        return scepter_err(err, SCEPTER_ECONFLICT, "new_name",
                           "new_name: a device group named '%s' exists already", new_name);
    if (rc != SCEPTER_ENOTFOUND)
        return rc;
    {
        struct dbv p[] = {P_INT(id), P_TEXT(new_name)};
        if ((rc = db_exec(s, &SQL_GROUP_RENAME, p, ARRAY_LEN(p), NULL, err)) != 0) {
            if (rc == SCEPTER_ECONFLICT) /* created meanwhile */
                rc = scepter_err(err, SCEPTER_ECONFLICT, "new_name",
                                 "new_name: a device group named '%s' exists already", new_name);
            return rc;
        }
    }
    return db_commit(s, err);
}

int store_group_rename(struct store *s, const char *name, const char *new_name,
                       struct scepter_error *err)
{
    int rc;

    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0 ||
        (rc = store_check_str(new_name, MAX_GROUP_NAME, "new_name", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = group_rename(s, name, new_name, err);
    return rc;
}

static const struct store_sql SQL_GROUP_DELETE = {
    "group_delete", "DELETE FROM device_groups WHERE name = $1", NULL, NULL};

int store_group_delete(struct store *s, const char *name, struct scepter_error *err)
{
    int64_t changes = 0;
    int rc;

    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(name)};
        rc = db_exec(s, &SQL_GROUP_DELETE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0)
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "name", "name: no device group is named '%s'",
                             name);
    }
    return rc;
}

#define GROUP_COLUMNS                                                                              \
    "SELECT g.id, g.name, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id),"         \
    " g.created FROM device_groups g"

static const struct store_sql SQL_GROUP_LIST = {"group_list", GROUP_COLUMNS " ORDER BY g.name",
                                                NULL, NULL};
static const struct store_sql SQL_GROUP_GET = {"group_get", GROUP_COLUMNS " WHERE g.name = $1",
                                               NULL, NULL};

static void read_group(const struct dbres *r, struct store_group *g)
{
    g->id = db_int(r, 0);
    g->name = db_strdup(r, 1);
    g->members = (size_t)db_int(r, 2);
    g->created = db_int(r, 3);
}

static const struct store_sql SQL_GROUP_PLATFORMS = {
    "group_platforms",
    "SELECT m.group_id, d.platform, count(*) FROM group_members m"
    " JOIN devices d ON d.id = m.device_id GROUP BY m.group_id, d.platform",
    NULL, NULL};

/* Members per platform of each group in g (ordered by name, so looked up by id). */
static int group_platforms(struct store *s, struct store_group *g, size_t n,
                           struct scepter_error *err)
{
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_GROUP_PLATFORMS, NULL, 0, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        int64_t id = db_int(&r, 0);
        enum store_platform p = store_platform_parse(db_text(&r, 1));
        for (size_t i = 0; i < n; i++)
            if (g[i].id == id)
                g[i].by_platform[p] += (size_t)db_int(&r, 2);
    }
    db_res_clear(&r);
    return rc < 0 ? rc : 0;
}

static int group_list(struct store *s, struct store_group **out, size_t *n,
                      struct scepter_error *err)
{
    struct store_group *g = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int rc;

    if ((rc = db_query(s, &SQL_GROUP_LIST, NULL, 0, &r, err)) != 0)
        return rc;
    while ((rc = db_next(&r, err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            g = xreallocarray(g, cap, sizeof(*g));
        }
        memset(&g[count], 0, sizeof(*g));
        read_group(&r, &g[count++]);
    }
    db_res_clear(&r);
    if (rc == 0)
        rc = group_platforms(s, g, count, err);
    if (rc < 0) {
        store_groups_free(g, count);
        return rc;
    }
    *out = g;
    *n = count;
    return 0;
}

int store_group_list(struct store *s, struct store_group **out, size_t *n,
                     struct scepter_error *err)
{
    int rc;

    *out = NULL;
    *n = 0;
    STORE_CALL(s, rc, err)
    rc = group_list(s, out, n, err);
    return rc;
}

int store_group_get(struct store *s, const char *name, struct store_group *out,
                    struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(name)};
        rc = db_query(s, &SQL_GROUP_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            read_group(&r, out);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "name", "name: no device group is named '%s'",
                             name);
        }
        db_res_clear(&r);
    }
    return rc;
}

static const struct store_sql SQL_GROUP_MEMBERS = {
    "group_members",
    "SELECT m.device_id FROM group_members m WHERE m.group_id = $1 ORDER BY m.device_id", NULL,
    NULL};

static int group_members(struct store *s, const char *name, char ***ids, size_t *n,
                         struct scepter_error *err)
{
    char **v = NULL;
    size_t count = 0, cap = 0;
    struct dbres r;
    int64_t id = 0;
    int rc;

    if ((rc = group_id(s, name, "name", &id, err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_INT(id)};
        if ((rc = db_query(s, &SQL_GROUP_MEMBERS, p, ARRAY_LEN(p), &r, err)) != 0)
            return rc;
    }
    while ((rc = db_next(&r, err)) == 1)
        store_strv_push(&v, &count, &cap, db_strdup(&r, 0));
    db_res_clear(&r);
    if (rc < 0) {
        store_strv_free(v, count);
        return rc;
    }
    *ids = v;
    *n = count;
    return 0;
}

int store_group_members(struct store *s, const char *name, char ***device_ids, size_t *n,
                        struct scepter_error *err)
{
    int rc;

    *device_ids = NULL;
    *n = 0;
    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    rc = group_members(s, name, device_ids, n, err);
    return rc;
}

static const struct store_sql SQL_FIRST_UNKNOWN_DEVICE = {
    "first_unknown_device",
    "SELECT a.value FROM {ARR1} AS a"
    " WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = a.value) LIMIT 1",
    NULL, NULL};

static const struct store_sql SQL_GROUP_ADD = {
    "group_add",
    "INSERT INTO group_members (group_id, device_id) SELECT DISTINCT $2, a.value"
    " FROM {ARR1} AS a WHERE true ON CONFLICT (group_id, device_id) DO NOTHING",
    NULL, NULL};

static const struct store_sql SQL_GROUP_REMOVE = {
    "group_remove", "DELETE FROM group_members WHERE group_id = $2 AND device_id IN {ARR1}", NULL,
    NULL};

/* ENOTFOUND naming the first of ids that is not a device; 0 if all are. */
static int unknown_device(struct store *s, const char *const *ids, size_t n, const char *field,
                          struct scepter_error *err)
{
    struct dbv p[] = {P_TEXTS(ids, n)};
    struct dbres r;
    int rc = db_query(s, &SQL_FIRST_UNKNOWN_DEVICE, p, ARRAY_LEN(p), &r, err);

    if (rc == 0 && (rc = db_next(&r, err)) == 1)
        rc = scepter_err(err, SCEPTER_ENOTFOUND, field, "%s: no device has the id %s", field,
                         db_text(&r, 0));
    db_res_clear(&r);
    return rc;
}

int store_check_devices(struct store *s, const char *const *ids, size_t n, const char *field,
                        struct scepter_error *err)
{
    return n ? unknown_device(s, ids, n, field, err) : 0;
}

static int group_change(struct store *s, const char *name, const char *const *ids, size_t n,
                        bool add, size_t *changed, struct scepter_error *err)
{
    int64_t id = 0, changes = 0;
    int rc;

    if ((rc = db_begin(s, err)) != 0 || (rc = group_id(s, name, "name", &id, err)) != 0)
        return rc;
    if (add && (rc = unknown_device(s, ids, n, "devices", err)) != 0)
        return rc;
    {
        struct dbv p[] = {P_TEXTS(ids, n), P_INT(id)};
        rc = db_exec(s, add ? &SQL_GROUP_ADD : &SQL_GROUP_REMOVE, p, ARRAY_LEN(p), &changes, err);
        if (rc != 0)
            return rc;
    }
    if ((rc = db_commit(s, err)) == 0)
        *changed = (size_t)changes;
    return rc;
}

static int group_change_call(struct store *s, const char *name, const char *const *ids, size_t n,
                             bool add, size_t *changed, struct scepter_error *err)
{
    size_t i;
    int rc;

    *changed = 0;
    if ((rc = store_check_str(name, MAX_GROUP_NAME, "name", err)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        if ((rc = store_check_str(ids[i], 256, "devices", err)) != 0)
            return rc;
    }
    STORE_CALL(s, rc, err)
    rc = group_change(s, name, ids, n, add, changed, err);
    return rc;
}

int store_group_add(struct store *s, const char *name, const char *const *device_ids, size_t n,
                    size_t *changed, struct scepter_error *err)
{
    return group_change_call(s, name, device_ids, n, true, changed, err);
}

int store_group_remove(struct store *s, const char *name, const char *const *device_ids, size_t n,
                       size_t *changed, struct scepter_error *err)
{
    return group_change_call(s, name, device_ids, n, false, changed, err);
}
