/*
 * The operator API's command queue and pushes:
 *
 *   GET    /v1/devices/{udid}/commands           the queue (?all=true: and history, paged; ?user=)
 *   POST   /v1/devices/{udid}/commands           queue one command for the device
 *   DELETE /v1/devices/{udid}/commands           cancel everything queued
 *   GET    /v1/devices/{udid}/commands/{uuid}    one command and its result
 *   DELETE /v1/devices/{udid}/commands/{uuid}    cancel one queued command
 *   POST   /v1/commands                          one command to devices and groups
 *   POST   /v1/push                              wake devices and groups now
 *
 * A queued command may carry "expires_in" (seconds or "10m", "7d"): from then on it is not
 * delivered, and the expiry job (mdm/jobs.c) gives it the final status "Expired".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/commands_int.h"
#include "mdm/metrics_int.h"
#include "mdm/push_int.h"

static json_t *queue_item_json(const struct store_queue_item *q)
{
    json_t *j = json_object();

    json_object_set_new(j, "uuid", json_string(q->uuid));
    json_object_set_new(j, "request_type", api_opt_str(q->request_type));
    json_object_set_new(j, "priority", json_integer(q->priority));
    json_object_set_new(j, "status", api_opt_str(q->status));
    json_object_set_new(j, "active", json_boolean(q->active));
    json_object_set_new(j, "notnow_count", json_integer(q->notnow_count));
    json_object_set_new(j, "last_notnow_at", api_time(q->last_notnow_at));
    json_object_set_new(j, "created", api_time(q->created));
    json_object_set_new(j, "result_at", api_time(q->result_at));
    json_object_set_new(j, "expires", api_time(q->expires));
    return j;
}

/* The enrollment a device-scoped command goes to: the device channel, or ?user=<UserID>. */
static char *enrollment_of(struct api_call *c, const char *udid)
{
    char *user = api_query(c, "user");
    char *id = user ? xasprintf("%s:%s", udid, user) : xstrdup(udid);
    free(user);
    return id;
}

static int enrollment_exists(struct api_call *c, const char *id)
{
    struct store_enrollment e;
    struct scepter_error err;
    int rc;

    memset(&e, 0, sizeof(e));
    rc = store_enrollment_get(c->ctx->store, id, &e, &err);
    store_enrollment_clear(&e);
    if (rc != 0)
        api_reply_scepter_error(c, &err);
    return rc;
}

/* The longest expires_in: a year. */
#define EXPIRES_IN_MAX (365 * 86400)

/* obj's optional "expires_in" (seconds, or a duration such as "10m", "7d"; 1 s to 365 d) into
 * *secs (0 when absent); SCEPTER_EINVAL naming field otherwise. */
static int api_expires_in(json_t *obj, const char *field, int64_t *secs, struct scepter_error *err)
{
    json_t *v = obj ? json_object_get(obj, "expires_in") : NULL;

    *secs = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        *secs = json_integer_value(v);
    else if (!json_is_string(v) || str_to_duration(json_string_value(v), secs) != 0)
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: want a duration such as \"10m\", \"7d\" or a number of seconds",
                           field);
    if (*secs < 1 || *secs > EXPIRES_IN_MAX)
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: %lld is not between 1 second and 365 days", field,
                           (long long)*secs);
    return 0;
}

static int enqueue_opts(struct api_call *c, bool *push, int *priority, int64_t *expires)
{
    struct scepter_error err;
    int64_t prio = 0, secs = 0;
    int rc;

    *push = true;
    if ((rc = jsonx_get_bool(c->body, "push", "", false, push, &err)) < 0 ||
        (rc = jsonx_get_int(c->body, "priority", "", false, &prio, &err)) < 0) {
        api_reply_scepter_error(c, &err);
        return -1;
    }
    if (prio < -100 || prio > 100) {
        api_reply_error(c, 400, "priority", "priority: %lld is not between -100 and 100",
                        (long long)prio);
        return -1;
    }
    *priority = (int)prio;
    if (api_expires_in(c->body, "expires_in", &secs, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return -1;
    }
    *expires = secs ? c->now + secs : 0;
    return 0;
}

/* The store's view of a parsed command (borrows cmd). */
static void store_command_of(struct store_command *sc, const struct mdm_command *cmd, int priority,
                             int64_t expires)
{
    memset(sc, 0, sizeof(*sc));
    str_copy(sc->uuid, sizeof(sc->uuid), cmd->uuid);
    sc->request_type = cmd->request_type;
    sc->plist = (const unsigned char *)cmd->plist.data;
    sc->plist_len = cmd->plist.len;
    sc->priority = priority;
    sc->expires = expires;
}

/*
 * GET /v1/devices/{udid}/commands[?all=true[&limit=N][&before=C]][&user=]: what is queued,
 * oldest first; with all=true also the history, newest first, a page at a time: limit
 * finished entries (100; 1 to 1000) and "next_before" when there are more, the cursor of the
 * next page (?all=true&before=C: that page, without the queued ones again).
 */
#define HISTORY_PAGE 100
void api_device_commands_list(struct api_call *c)
{
    struct scepter_error err;
    struct store_queue_item *items = NULL, *done = NULL;
    size_t n = 0, ndone = 0;
    bool all = false;
    int64_t limit = HISTORY_PAGE, before = 0, next = 0;
    char *eid = enrollment_of(c, c->seg[1]);

    if (!api_query_bool(c, "all", &all) ||
        !api_query_int(c, "limit", 1, STORE_HISTORY_MAX, &limit) ||
        !api_query_int(c, "before", 1, INT64_MAX, &before) || enrollment_exists(c, eid) != 0)
        goto out;
    if (!all && before) {
        api_reply_error(c, 400, "before", "before: pages the history, which needs all=true");
        goto out;
    }
    if ((before == 0 && store_queue_list(c->ctx->store, eid, false, &items, &n, &err) != 0) ||
        (all && store_queue_history(c->ctx->store, eid, before, (size_t)limit, &done, &ndone, &next,
                                    &err) != 0)) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, queue_item_json(&items[i]));
    for (size_t i = 0; i < ndone; i++)
        json_array_append_new(arr, queue_item_json(&done[i]));
    json_t *j = json_pack("{s:s,s:o}", "enrollment", eid, "commands", arr);
    if (next)
        json_object_set_new(j, "next_before", json_integer(next));
    api_reply_json(c, 200, j);
out:
    store_queue_items_free(items, n);
    store_queue_items_free(done, ndone);
    free(eid);
}

/* POST /v1/devices/{udid}/commands {"command": {...}, "push", "priority"}. */
void api_device_command_enqueue(struct api_call *c)
{
    static const char *const keys[] = {"command", "push", "priority", "expires_in", NULL};
    struct scepter_error err;
    struct mdm_command cmd;
    struct store_command sc;
    json_t *spec = NULL;
    bool push;
    int priority;
    int64_t expires = 0;
    char *eid = enrollment_of(c, c->seg[1]);
    const char *ids[1] = {eid};

    memset(&cmd, 0, sizeof(cmd));
    if (!api_need_body(c))
        goto out;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_object(c->body, "command", "", true, &spec, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (enqueue_opts(c, &push, &priority, &expires) != 0)
        goto out;
    {
        /* ClearPasscode carries the UnlockToken the device escrowed. */
        struct mdm_device_secrets sec = {NULL, 0};
        unsigned char *unlock = NULL;
        const char *type = json_string_value(json_object_get(spec, "request_type"));
        int rc = 0;
        if (type && strcmp(type, "ClearPasscode") == 0 &&
            (rc = store_unlock_token_get(c->ctx->store, c->seg[1], &unlock, &sec.unlock_token_len,
                                         &err)) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        sec.unlock_token = unlock;
        rc = mdm_command_from_json_for(spec, &sec, &cmd, &err);
        free(unlock);
        if (rc != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
    }
    store_command_of(&sc, &cmd, priority, expires);
    if (store_enqueue(c->ctx->store, &sc, ids, 1, c->now, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    mdm_metrics_command(c->ctx->srv, MDM_CMD_QUEUED, cmd.request_type, 1);
    if (push)
        mdm_push_enrollments(c->ctx, ids, 1);
    log_kv(LOG_LVL_INFO, "command_queued", "enrollment", eid, "command", cmd.uuid, "type",
           cmd.request_type, NULL);
    api_reply_json(c, 201,
                   json_pack("{s:s,s:s,s:s,s:b}", "uuid", cmd.uuid, "request_type",
                             cmd.request_type ? cmd.request_type : "", "enrollment", eid, "pushed",
                             push));
out:
    mdm_command_clear(&cmd);
    free(eid);
}

/* DELETE /v1/devices/{udid}/commands: cancel everything queued for the enrollment. */
void api_device_commands_clear(struct api_call *c)
{
    struct scepter_error err;
    size_t n = 0;
    char *eid = enrollment_of(c, c->seg[1]);

    if (enrollment_exists(c, eid) != 0)
        goto out;
    if (store_queue_clear(c->ctx->store, eid, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    api_reply_json(c, 200, json_pack("{s:s,s:I}", "enrollment", eid, "cancelled", (json_int_t)n));
out:
    free(eid);
}

/* GET /v1/devices/{udid}/commands/{uuid}: a command and the device's result. */
void api_device_command_show(struct api_call *c)
{
    struct scepter_error err;
    struct store_result r;
    json_t *j;
    char *eid = enrollment_of(c, c->seg[1]);

    memset(&r, 0, sizeof(r));
    if (store_result_get(c->ctx->store, eid, c->seg[3], &r, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    j = json_object();
    json_object_set_new(j, "uuid", json_string(r.uuid));
    json_object_set_new(j, "enrollment", json_string(eid));
    json_object_set_new(j, "request_type", api_opt_str(r.request_type));
    json_object_set_new(j, "status", api_opt_str(r.status));
    json_object_set_new(j, "notnow_count", json_integer(r.notnow_count));
    json_object_set_new(j, "created", api_time(r.created));
    json_object_set_new(j, "result_at", api_time(r.result_at));
    json_object_set_new(j, "error_chain",
                        r.error_chain_json ? json_loads(r.error_chain_json, 0, NULL) : json_null());
    if (r.raw) {
        plist_t p = NULL;
        char *b64 = base64_encode(r.raw, r.raw_len);
        json_object_set_new(j, "raw", json_string(b64));
        free(b64);
        /* A stored body passes the same pre-scan as the network (in plistx_parse_dict): one
         * that fails it is reported, never handed to libplist. */
        if (plistx_parse_dict(r.raw, r.raw_len, &p, &err) == 0) {
            json_object_set_new(j, "result", mdm_plist_to_json(p));
            plist_free(p);
        } else {
            json_object_set_new(j, "result", json_null());
            json_object_set_new(j, "result_error", json_string(err.msg));
        }
    } else {
        json_object_set_new(j, "raw", json_null());
        json_object_set_new(j, "result", json_null());
    }
    store_result_clear(&r);
    api_reply_json(c, 200, j);
out:
    free(eid);
}

/* DELETE /v1/devices/{udid}/commands/{uuid}: cancel one queued command. */
void api_device_command_cancel(struct api_call *c)
{
    struct scepter_error err;
    const char *uuid = c->seg[3];
    char *eid = enrollment_of(c, c->seg[1]);

    if (store_queue_cancel(c->ctx->store, eid, uuid, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    log_kv(LOG_LVL_INFO, "command_cancelled", "enrollment", eid, "command", uuid, NULL);
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:b}", "uuid", uuid, "enrollment", eid, "cancelled", 1));
out:
    free(eid);
}

/* Device ids named directly or through groups, deduplicated (all platforms, enrolled). */
static int resolve_devices(struct api_call *c, const char *const *devs, size_t nd,
                           const char *const *groups, size_t ng, char ***ids, size_t *n,
                           struct scepter_error *err)
{
    static const enum store_platform all[] = {STORE_PLATFORM_UNKNOWN, STORE_PLATFORM_MACOS,
                                              STORE_PLATFORM_IOS,     STORE_PLATFORM_IPADOS,
                                              STORE_PLATFORM_TVOS,    STORE_PLATFORM_WATCHOS,
                                              STORE_PLATFORM_VISIONOS};
    struct store_target_device *t = NULL;
    size_t nt = 0;
    int rc = store_targets_resolve(c->ctx->store, devs, nd, groups, ng, all, ARRAY_LEN(all), &t,
                                   &nt, err);

    if (rc != 0)
        return rc;
    *ids = xcalloc(nt + 1, sizeof(char *));
    for (size_t i = 0; i < nt; i++)
        (*ids)[i] = xstrdup(t[i].enrollment_id);
    *n = nt;
    store_target_devices_free(t, nt);
    return 0;
}

/* POST /v1/commands: one command to devices and groups. */
void api_commands_enqueue(struct api_call *c)
{
    static const char *const keys[] = {"devices",  "device_groups", "command", "push",
                                       "priority", "expires_in",    NULL};
    struct scepter_error err;
    const char **devs = NULL, **groups = NULL;
    size_t nd = 0, ng = 0, n = 0;
    char **ids = NULL;
    json_t *spec = NULL;
    struct mdm_command cmd;
    struct store_command sc;
    bool push;
    int priority;
    int64_t expires = 0;

    memset(&cmd, 0, sizeof(cmd));
    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        api_string_array(c->body, "devices", false, &devs, &nd, &err) < 0 ||
        api_string_array(c->body, "device_groups", false, &groups, &ng, &err) < 0 ||
        jsonx_get_object(c->body, "command", "", true, &spec, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (nd + ng == 0) {
        api_reply_error(c, 400, "devices", "devices or device_groups: name at least one target");
        goto out;
    }
    if (enqueue_opts(c, &push, &priority, &expires) != 0)
        goto out;
    if (mdm_command_from_json(spec, &cmd, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    store_command_of(&sc, &cmd, priority, expires);
    /* One device, the way operators script a queue: one statement and its commit on
     * PostgreSQL (one transaction on SQLite), which also brings the push data.  Anything else
     * takes the general way. */
    if (nd == 1 && ng == 0) {
        struct store_push_target t;
        struct api_audit_pending audit;
        bool audited = api_audit_prepare(c, cmd.uuid, &audit);
        int64_t audit_id = 0;
        int rc = store_enqueue_device(c->ctx->store, &sc, devs[0], c->now,
                                      audited ? &audit.e : NULL, &audit_id, &t, &err);
        if (rc < 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        if (rc == 1) {
            if (audited)
                api_audit_written(c, &audit, audit_id); /* committed with the command */
            mdm_metrics_command(c->ctx->srv, MDM_CMD_QUEUED, cmd.request_type, 1);
            if (push && t.enrollment_id)
                mdm_push_target(c->ctx, &t);
            store_push_target_clear(&t);
            api_reply_json(c, 201,
                           json_pack("{s:s,s:s,s:I,s:b}", "uuid", cmd.uuid, "request_type",
                                     cmd.request_type ? cmd.request_type : "", "queued",
                                     (json_int_t)1, "pushed", push));
            goto out;
        }
    }
    if (resolve_devices(c, devs, nd, groups, ng, &ids, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (n == 0) {
        api_reply_error(c, 409, "devices", "none of the targets is an enrolled device");
        goto out;
    }
    if (store_enqueue(c->ctx->store, &sc, (const char *const *)ids, n, c->now, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    mdm_metrics_command(c->ctx->srv, MDM_CMD_QUEUED, cmd.request_type, n);
    if (push)
        mdm_push_enrollments(c->ctx, (const char *const *)ids, n);
    api_reply_json(c, 201,
                   json_pack("{s:s,s:s,s:I,s:b}", "uuid", cmd.uuid, "request_type",
                             cmd.request_type ? cmd.request_type : "", "queued", (json_int_t)n,
                             "pushed", push));
out:
    mdm_command_clear(&cmd);
    api_ids_free(ids, n);
    free(devs);
    free(groups);
}

/* POST /v1/push: wake devices and groups now. */
void api_push(struct api_call *c)
{
    static const char *const keys[] = {"devices", "device_groups", NULL};
    struct scepter_error err;
    const char **devs = NULL, **groups = NULL;
    size_t nd = 0, ng = 0, n = 0;
    char **ids = NULL;
    struct apns_stats st;
    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        api_string_array(c->body, "devices", false, &devs, &nd, &err) < 0 ||
        api_string_array(c->body, "device_groups", false, &groups, &ng, &err) < 0 ||
        resolve_devices(c, devs, nd, groups, ng, &ids, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (nd + ng == 0) {
        api_reply_error(c, 400, "devices", "devices or device_groups: name at least one target");
        goto out;
    }
    if (mdm_push_state(c->ctx->srv, &st) != 0) {
        api_reply_error(c, 409, NULL,
                        "no push certificate is loaded: upload one (PUT /v1/pushcert) first");
        goto out;
    }
    mdm_push_enrollments(c->ctx, (const char *const *)ids, n);
    api_reply_json(c, 202, json_pack("{s:I}", "requested", (json_int_t)n));
out:
    api_ids_free(ids, n);
    free(devs);
    free(groups);
}
