/*
 * The operator API's device groups (policies and commands target them):
 *
 *   GET    /v1/device-groups                  every group with its member count
 *   POST   /v1/device-groups                  {"name", "devices"?}
 *   GET    /v1/device-groups/{name}           the group and its members
 *   PATCH  /v1/device-groups/{name}           rename: {"name"}
 *   DELETE /v1/device-groups/{name}           policies that reached members through it stop
 *   POST   /v1/device-groups/{name}/members   {"devices"}: add
 *   DELETE /v1/device-groups/{name}/members   {"devices"}: remove
 *
 * Every membership change re-plans the policies of the devices concerned
 * (mdm_policy_group_changed).
 */
#include <stdio.h>
#include <string.h>

#include "common/jsonx.h"
#include "common/xmalloc.h"
#include "common/str.h"
#include "mdm/api_int.h"

#define GROUP_NAME_MAX 128

static bool group_name_ok(struct api_call *c, const char *name, const char *field)
{
    size_t len = strlen(name);

    if (len == 0 || len > GROUP_NAME_MAX) {
        api_reply_error(c, 400, field, "%s: must be 1 to %d characters", field, GROUP_NAME_MAX);
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/') {
            api_reply_error(c, 400, field, "%s: control characters and '/' are not allowed", field);
            return false;
        }
    return true;
}

static json_t *group_json(const struct store_group *g)
{
    return json_pack("{s:I,s:s,s:I,s:o}", "id", (json_int_t)g->id, "name", g->name, "members",
                     (json_int_t)g->members, "created", api_time(g->created));
}

void api_groups_list(struct api_call *c)
{
    struct scepter_error err;
    struct store_group *g = NULL;
    size_t n = 0;

    if (store_group_list(c->ctx->store, &g, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = group_json(&g[i]), *mix = json_object();
        for (int p = 0; p < STORE_PLATFORM_COUNT; p++)
            if (g[i].by_platform[p] > 0)
                json_object_set_new(mix, store_platform_name((enum store_platform)p),
                                    json_integer((json_int_t)g[i].by_platform[p]));
        json_object_set_new(j, "platforms", mix);
        json_array_append_new(arr, j);
    }
    store_groups_free(g, n);
    api_reply_json(c, 200, json_pack("{s:o}", "device_groups", arr));
}

void api_group_create(struct api_call *c)
{
    static const char *const keys[] = {"name", "devices", NULL};
    struct scepter_error err;
    const char *name = NULL, **devs = NULL;
    size_t nd = 0, changed = 0;
    int64_t id = 0;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "name", "", true, &name, &err) != 0 ||
        api_string_array(c->body, "devices", false, &devs, &nd, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (!group_name_ok(c, name, "name"))
        goto out;
    if (store_group_create(c->ctx->store, name, c->now, &id, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (nd && store_group_add(c->ctx->store, name, devs, nd, &changed, &err) != 0) {
        /* the group exists now; report the membership problem */
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (nd)
        mdm_policy_group_changed(c->ctx, devs, nd, c->now);
    api_reply_json(c, 201,
                   json_pack("{s:I,s:s,s:I}", "id", (json_int_t)id, "name", name, "members",
                             (json_int_t)changed));
out:
    free(devs);
}

void api_group_show(struct api_call *c)
{
    const char *name = c->seg[1];
    struct scepter_error err;
    struct store_group g;
    char **members = NULL;
    size_t n = 0;

    memset(&g, 0, sizeof(g));
    if (store_group_get(c->ctx->store, name, &g, &err) != 0 ||
        store_group_members(c->ctx->store, name, &members, &n, &err) != 0) {
        free(g.name);
        api_reply_scepter_error(c, &err);
        return;
    }
    json_t *j = group_json(&g), *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(members[i]));
    api_ids_free(members, n);
    free(g.name);
    json_object_set_new(j, "devices", arr);
    api_reply_json(c, 200, j);
}

void api_group_rename(struct api_call *c)
{
    static const char *const keys[] = {"name", NULL};
    const char *name = c->seg[1], *new_name = NULL;
    struct scepter_error err;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "name", "", true, &new_name, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (!group_name_ok(c, new_name, "name"))
        return;
    if (store_group_rename(c->ctx->store, name, new_name, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    api_audit_summary(c, "name: \"%s\" -> \"%s\"", name, new_name);
    api_reply_json(c, 200, json_pack("{s:s,s:s}", "name", new_name, "previous_name", name));
}

void api_group_delete(struct api_call *c)
{
    const char *name = c->seg[1];
    struct scepter_error err;
    char **members = NULL;
    size_t n = 0;

    if (store_group_members(c->ctx->store, name, &members, &n, &err) != 0 ||
        store_group_delete(c->ctx->store, name, &err) != 0) {
        api_ids_free(members, n);
        api_reply_scepter_error(c, &err);
        return;
    }
    /* Policies that reached the members through this group no longer do. */
    mdm_policy_group_changed(c->ctx, (const char *const *)members, n, c->now);
    api_ids_free(members, n);
    api_reply_json(c, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
}

static void members_change(struct api_call *c, bool add)
{
    static const char *const keys[] = {"devices", NULL};
    const char *name = c->seg[1];
    struct scepter_error err;
    const char **devs = NULL;
    size_t nd = 0, changed = 0;
    int rc;

    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        api_string_array(c->body, "devices", true, &devs, &nd, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    rc = add ? store_group_add(c->ctx->store, name, devs, nd, &changed, &err)
             : store_group_remove(c->ctx->store, name, devs, nd, &changed, &err);
    if (rc != 0) {
        api_reply_scepter_error(c, &err);
        free(devs);
        return;
    }
    mdm_policy_group_changed(c->ctx, devs, nd, c->now);
    {
        char list[400] = "";
        for (size_t i = 0; i < nd && strlen(list) + strlen(devs[i]) + 16 < sizeof(list); i++) {
            str_append(list, sizeof(list), i ? ", " : "");
            str_append(list, sizeof(list), devs[i]);
        }
        api_audit_summary(c, "%s %zu of %zu: %s", add ? "added" : "removed", changed, nd, list);
    }
    api_reply_json(
        c, 200,
        json_pack("{s:s,s:I}", "name", name, add ? "added" : "removed", (json_int_t)changed));
    free(devs);
}

void api_group_members_add(struct api_call *c)
{
    members_change(c, true);
}

void api_group_members_remove(struct api_call *c)
{
    members_change(c, false);
}
