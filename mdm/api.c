/*
 * The operator API: JSON under /v1, every route behind an API key
 * (Authorization: Bearer <key>; the bootstrap api_key setting, or keys made with
 * `scepterctl apikey create`, stored as SHA-256 hashes).  Errors are
 * {"error": "...", "field": "..."} with a 4xx, and change nothing.  The routes are described
 * in docs/openapi.yaml; a test keeps the two in step.
 *
 *   /v1/policies[/{id}[/status|/preview]]   mdm/policy.c
 *   /v1/devices[/{udid}]
 *   /v1/devices/{udid}/commands[/{uuid}]
 *   /v1/commands                            one command to many devices
 *   /v1/device-groups[/{name}[/members]]
 *   /v1/push
 *   /v1/pushcert
 *   /v1/apikeys[/{id}]
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/commands_int.h"
#include "mdm/metrics_int.h"
#include "mdm/push_int.h"
#include "mdm/scep_int.h"

/* ---------------------------------------------------------------------------------------- */
/* Replies                                                                                   */

void api_reply_json(struct api_call *c, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);

    c->reply->status = status;
    c->reply->content_type = "application/json";
    buf_reset(&c->reply->body);
    if (s) {
        buf_puts(&c->reply->body, s);
        buf_putc(&c->reply->body, '\n');
        free(s); /* jansson's allocation */
    }
    json_decref(j);
}

void api_reply_error(struct api_call *c, int status, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *j;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    j = json_pack("{s:s}", "error", msg);
    if (field && *field)
        json_object_set_new(j, "field", json_string(field));
    str_copy(c->reply->reason, sizeof(c->reply->reason), msg);
    api_reply_json(c, status, j);
}

void api_reply_scepter_error(struct api_call *c, const struct scepter_error *err)
{
    int status = err->http_status ? err->http_status : scepter_errcode_status(err->code);
    api_reply_error(c, status, err->field, "%s", err->msg);
}

json_t *api_time(int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0)
        return json_null();
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

char *api_query(const struct api_call *c, const char *name)
{
    return mdm_query_param(c->req->query, name);
}

bool api_need_body(struct api_call *c)
{
    if (c->body == NULL) {
        api_reply_error(c, 400, "body", "a JSON object body is required");
        return false;
    }
    return true;
}

int api_string_array(json_t *obj, const char *key, bool required, const char ***out, size_t *n,
                     struct scepter_error *err)
{
    json_t *arr = NULL;
    int rc = jsonx_get_array(obj, key, "", required, &arr, err);

    *out = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    *out = xcalloc(json_array_size(arr) + 1, sizeof(char *));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            free(*out);
            *out = NULL;
            char field[64];
            snprintf(field, sizeof(field), "%s[%zu]", key, i);
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: expected a non-empty string",
                               field);
        }
        (*out)[(*n)++] = json_string_value(v);
    }
    return 0;
}

static bool parse_bool_query(struct api_call *c, const char *name, bool *out)
{
    char *v = api_query(c, name);
    bool ok = true;

    if (v && str_to_bool(v, out) != 0) {
        api_reply_error(c, 400, name, "%s: '%s' is not true or false", name, v);
        ok = false;
    }
    free(v);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Authentication                                                                            */

static bool authorized(struct api_call *c)
{
    const char *auth = mdm_header(c->req, "Authorization");
    const char *key;
    unsigned char md[CRYPTO_SHA256_LEN];
    char hex[CRYPTO_SHA256_HEX_LEN];
    struct scepter_error err;
    int64_t id;
    int rc = api_session_authorize(c); /* the console's session cookie (mdm/api_session.c) */

    if (rc >= 0)
        return rc == 1;
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0')
        goto refuse;
    key = auth + 7;
    /* The whole key, whatever its length (the configuration bounds it): a prefix of the
     * bootstrap key is not the key. */
    const char *boot = c->ctx->cfg->api_key;
    if (!str_empty(boot) && strlen(boot) == strlen(key) &&
        CRYPTO_memcmp(boot, key, strlen(key)) == 0)
        return true;
    crypto_sha256(key, strlen(key), md);
    hex_encode_to(md, sizeof(md), hex, false);
    rc = store_apikey_check(c->ctx->store, hex, &id, &err);
    if (rc == 0) {
        mdm_apikey_used(c->ctx, id, c->now);
        return true;
    }
    if (rc != SCEPTER_EAUTH) {
        api_reply_error(c, 503, NULL, "cannot check the API key: %s", err.msg);
        return false;
    }
refuse:
    mdm_reply_header(c->reply, "WWW-Authenticate", "Bearer realm=\"scepter\"");
    api_reply_error(c, 401, "Authorization",
                    "missing or invalid API key (send Authorization: Bearer <key>)");
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Devices                                                                                   */

static const char *enroll_type_name(enum store_enroll_type t)
{
    switch (t) {
    case STORE_ENROLL_USER_ENROLLMENT:
        return "user_enrollment";
    case STORE_ENROLL_USER:
        return "user";
    case STORE_ENROLL_USER_ENROLLMENT_USER:
        return "user_enrollment_user";
    case STORE_ENROLL_SHARED_IPAD_USER:
        return "shared_ipad_user";
    default:
        return "device";
    }
}

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *device_json(const struct store_device *d)
{
    json_t *j = json_object(), *groups = json_array();

    json_object_set_new(j, "udid", json_string(d->id));
    json_object_set_new(j, "type", json_string(enroll_type_name(d->type)));
    json_object_set_new(j, "platform", json_string(store_platform_name(d->platform)));
    json_object_set_new(j, "serial_number", opt_str(d->serial_number));
    json_object_set_new(j, "device_name", opt_str(d->device_name));
    json_object_set_new(j, "model", opt_str(d->model));
    json_object_set_new(j, "model_name", opt_str(d->model_name));
    json_object_set_new(j, "product_name", opt_str(d->product_name));
    json_object_set_new(j, "os_version", opt_str(d->os_version));
    json_object_set_new(j, "build_version", opt_str(d->build_version));
    json_object_set_new(j, "topic", opt_str(d->topic));
    json_object_set_new(j, "enrolled", json_boolean(d->enrolled));
    json_object_set_new(j, "push_token_valid", json_boolean(d->token_valid));
    json_object_set_new(j, "bootstrap_token", json_boolean(d->has_bootstrap_token));
    json_object_set_new(j, "last_seen", api_time(d->last_seen));
    json_object_set_new(j, "authenticated_at", api_time(d->authenticated_at));
    json_object_set_new(j, "token_updated_at", api_time(d->token_updated_at));
    json_object_set_new(j, "checked_out_at", api_time(d->checked_out_at));
    json_object_set_new(j, "removed_at", api_time(d->removed_at));
    json_object_set_new(j, "reenroll_until", api_time(d->reenroll_until));
    json_object_set_new(j, "created", api_time(d->created));
    for (size_t i = 0; i < d->n_groups; i++)
        json_array_append_new(groups, json_string(d->groups[i]));
    json_object_set_new(j, "groups", groups);
    return j;
}

/* "2026-11-25T18:00:00Z" or UNIX seconds -> seconds; -1 when neither. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    int64_t v;
    const char *end;

    if (str_to_i64(s, 0, INT64_MAX, &v) == 0)
        return v;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
        return -1;
    return (int64_t)timegm(&tm);
}

static void devices_list(struct api_call *c)
{
    static const char *const names[] = {"platform", "enrolled", "seen_after", "seen_before",
                                        "group",    "limit",    "offset"};
    struct store_device_filter f = {.enrolled = -1};
    char *v[7] = {NULL};
    struct store_device *devs = NULL;
    struct scepter_error err;
    size_t n = 0;
    int64_t num;
    bool b;

    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        v[i] = api_query(c, names[i]);
    if (v[0]) {
        f.platform = store_platform_parse(v[0]);
        if (f.platform == STORE_PLATFORM_UNKNOWN) {
            api_reply_error(c, 400, "platform",
                            "platform: '%s' is not one of macos, ios, ipados, tvos, watchos, "
                            "visionos",
                            v[0]);
            goto out;
        }
    }
    if (v[1]) {
        if (str_to_bool(v[1], &b) != 0) {
            api_reply_error(c, 400, "enrolled", "enrolled: '%s' is not true or false", v[1]);
            goto out;
        }
        f.enrolled = b;
    }
    if (v[2] && (f.seen_after = parse_time(v[2])) < 0) {
        api_reply_error(c, 400, "seen_after",
                        "seen_after: '%s' is not a time (2026-11-25T18:00:00Z or UNIX seconds)",
                        v[2]);
        goto out;
    }
    if (v[3] && (f.seen_before = parse_time(v[3])) < 0) {
        api_reply_error(c, 400, "seen_before",
                        "seen_before: '%s' is not a time (2026-11-25T18:00:00Z or UNIX "
                        "seconds)",
                        v[3]);
        goto out;
    }
    f.group = v[4];
    if (v[5]) {
        if (str_to_i64(v[5], 1, 100000, &num) != 0) {
            api_reply_error(c, 400, "limit", "limit: '%s' is not between 1 and 100000", v[5]);
            goto out;
        }
        f.limit = (size_t)num;
    }
    if (v[6]) {
        if (str_to_i64(v[6], 0, INT64_MAX, &num) != 0) {
            api_reply_error(c, 400, "offset", "offset: '%s' is not a count", v[6]);
            goto out;
        }
        f.offset = (size_t)num;
    }
    if (store_device_list(c->ctx->store, &f, &devs, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, device_json(&devs[i]));
    api_reply_json(c, 200, json_pack("{s:o,s:I}", "devices", arr, "count", (json_int_t)n));
    store_devices_free(devs, n);
out:
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        free(v[i]);
}

static void device_show(struct api_call *c, const char *udid)
{
    struct store_device d;
    struct scepter_error err;
    json_t *j;

    memset(&d, 0, sizeof(d));
    if (store_device_get(c->ctx->store, udid, &d, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    j = device_json(&d);
    json_object_set_new(j, "policies", api_device_policies(c, udid));
    {
        char **hashes = NULL;
        size_t n = 0;
        json_t *certs = json_array();
        if (store_device_bindings(c->ctx->store, udid, &hashes, &n, &err) == 0)
            for (size_t i = 0; i < n; i++)
                json_array_append_new(certs, json_string(hashes[i]));
        store_strv_free(hashes, n);
        json_object_set_new(j, "certificates", certs);
    }
    store_device_clear(&d);
    api_reply_json(c, 200, j);
}

/* ---------------------------------------------------------------------------------------- */
/* Commands                                                                                  */

static json_t *queue_item_json(const struct store_queue_item *q)
{
    json_t *j = json_object();

    json_object_set_new(j, "uuid", json_string(q->uuid));
    json_object_set_new(j, "request_type", opt_str(q->request_type));
    json_object_set_new(j, "priority", json_integer(q->priority));
    json_object_set_new(j, "status", opt_str(q->status));
    json_object_set_new(j, "active", json_boolean(q->active));
    json_object_set_new(j, "notnow_count", json_integer(q->notnow_count));
    json_object_set_new(j, "last_notnow_at", api_time(q->last_notnow_at));
    json_object_set_new(j, "created", api_time(q->created));
    json_object_set_new(j, "result_at", api_time(q->result_at));
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

static int parse_enqueue_opts(struct api_call *c, bool *push, int *priority)
{
    struct scepter_error err;
    int64_t prio = 0;
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
    return 0;
}

static void device_commands(struct api_call *c, const char *udid)
{
    struct scepter_error err;
    char *eid = enrollment_of(c, udid);

    if (c->req->method == MDM_GET) {
        struct store_queue_item *items = NULL;
        size_t n = 0;
        bool all = false;
        if (!parse_bool_query(c, "all", &all))
            goto out;
        if (enrollment_exists(c, eid) != 0)
            goto out;
        if (store_queue_list(c->ctx->store, eid, all, &items, &n, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, queue_item_json(&items[i]));
        store_queue_items_free(items, n);
        api_reply_json(c, 200, json_pack("{s:s,s:o}", "enrollment", eid, "commands", arr));
    } else if (c->req->method == MDM_POST) {
        static const char *const keys[] = {"command", "push", "priority", NULL};
        struct mdm_command cmd;
        struct store_command sc;
        json_t *spec = NULL;
        bool push;
        int priority;
        const char *ids[1] = {eid};

        if (!api_need_body(c))
            goto out;
        if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
            jsonx_get_object(c->body, "command", "", true, &spec, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        if (parse_enqueue_opts(c, &push, &priority) != 0)
            goto out;
        if (mdm_command_from_json(spec, &cmd, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        memset(&sc, 0, sizeof(sc));
        str_copy(sc.uuid, sizeof(sc.uuid), cmd.uuid);
        sc.request_type = cmd.request_type;
        sc.plist = (const unsigned char *)cmd.plist.data;
        sc.plist_len = cmd.plist.len;
        sc.priority = priority;
        if (store_enqueue(c->ctx->store, &sc, ids, 1, c->now, &err) != 0) {
            api_reply_scepter_error(c, &err);
            mdm_command_clear(&cmd);
            goto out;
        }
        mdm_metrics_command(c->ctx->srv, MDM_CMD_QUEUED, cmd.request_type, 1);
        if (push)
            mdm_push_enrollments(c->ctx, ids, 1);
        log_kv(LOG_LVL_INFO, "command_queued", "enrollment", eid, "command", cmd.uuid, "type",
               cmd.request_type, NULL);
        api_reply_json(c, 201,
                       json_pack("{s:s,s:s,s:s,s:b}", "uuid", cmd.uuid, "request_type",
                                 cmd.request_type ? cmd.request_type : "", "enrollment", eid,
                                 "pushed", push));
        mdm_command_clear(&cmd);
    } else if (c->req->method == MDM_DELETE) {
        size_t n = 0;
        if (enrollment_exists(c, eid) != 0)
            goto out;
        if (store_queue_clear(c->ctx->store, eid, &n, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        api_reply_json(c, 200,
                       json_pack("{s:s,s:I}", "enrollment", eid, "cancelled", (json_int_t)n));
    }
out:
    free(eid);
}

static void device_command(struct api_call *c, const char *udid, const char *uuid)
{
    struct scepter_error err;
    char *eid = enrollment_of(c, udid);

    if (c->req->method == MDM_GET) {
        struct store_result r;
        json_t *j;

        memset(&r, 0, sizeof(r));
        if (store_result_get(c->ctx->store, eid, uuid, &r, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        j = json_object();
        json_object_set_new(j, "uuid", json_string(r.uuid));
        json_object_set_new(j, "enrollment", json_string(eid));
        json_object_set_new(j, "request_type", opt_str(r.request_type));
        json_object_set_new(j, "status", opt_str(r.status));
        json_object_set_new(j, "notnow_count", json_integer(r.notnow_count));
        json_object_set_new(j, "created", api_time(r.created));
        json_object_set_new(j, "result_at", api_time(r.result_at));
        json_object_set_new(j, "error_chain",
                            r.error_chain_json ? json_loads(r.error_chain_json, 0, NULL)
                                               : json_null());
        if (r.raw) {
            plist_t p = NULL;
            char *b64 = base64_encode(r.raw, r.raw_len);
            json_object_set_new(j, "raw", json_string(b64));
            free(b64);
            /* A stored body passes the same pre-scan as the network (in plistx_parse_dict):
             * one that fails it is reported, never handed to libplist. */
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
    } else if (c->req->method == MDM_DELETE) {
        if (store_queue_cancel(c->ctx->store, eid, uuid, &err) != 0) {
            api_reply_scepter_error(c, &err);
            goto out;
        }
        log_kv(LOG_LVL_INFO, "command_cancelled", "enrollment", eid, "command", uuid, NULL);
        api_reply_json(c, 200,
                       json_pack("{s:s,s:s,s:b}", "uuid", uuid, "enrollment", eid, "cancelled", 1));
    }
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

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void commands_many(struct api_call *c)
{
    static const char *const keys[] = {"devices", "device_groups", "command",
                                       "push",    "priority",      NULL};
    struct scepter_error err;
    const char **devs = NULL, **groups = NULL;
    size_t nd = 0, ng = 0, n = 0;
    char **ids = NULL;
    json_t *spec = NULL;
    struct mdm_command cmd;
    struct store_command sc;
    bool push;
    int priority;

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
    if (parse_enqueue_opts(c, &push, &priority) != 0)
        goto out;
    if (mdm_command_from_json(spec, &cmd, &err) != 0 ||
        resolve_devices(c, devs, nd, groups, ng, &ids, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (n == 0) {
        api_reply_error(c, 409, "devices", "none of the targets is an enrolled device");
        goto out;
    }
    memset(&sc, 0, sizeof(sc));
    str_copy(sc.uuid, sizeof(sc.uuid), cmd.uuid);
    sc.request_type = cmd.request_type;
    sc.plist = (const unsigned char *)cmd.plist.data;
    sc.plist_len = cmd.plist.len;
    sc.priority = priority;
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
    free_ids(ids, n);
    free(devs);
    free(groups);
}

static void push_now(struct api_call *c)
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
    free_ids(ids, n);
    free(devs);
    free(groups);
}

/* ---------------------------------------------------------------------------------------- */
/* Device groups                                                                             */

static bool group_name_ok(struct api_call *c, const char *name, const char *field)
{
    size_t len = strlen(name);

    if (len == 0 || len > 128) {
        api_reply_error(c, 400, field, "%s: must be 1 to 128 characters", field);
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

static void groups_root(struct api_call *c)
{
    struct scepter_error err;

    if (c->req->method == MDM_GET) {
        struct store_group *g = NULL;
        size_t n = 0;
        if (store_group_list(c->ctx->store, &g, &n, &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, group_json(&g[i]));
        store_groups_free(g, n);
        api_reply_json(c, 200, json_pack("{s:o}", "device_groups", arr));
    } else if (c->req->method == MDM_POST) {
        static const char *const keys[] = {"name", "devices", NULL};
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
}

static void group_one(struct api_call *c, const char *name)
{
    struct scepter_error err;

    if (c->req->method == MDM_GET) {
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
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(arr, json_string(members[i]));
            free(members[i]);
        }
        free(members);
        free(g.name);
        json_object_set_new(j, "devices", arr);
        api_reply_json(c, 200, j);
    } else if (c->req->method == MDM_PATCH || c->req->method == MDM_PUT) {
        static const char *const keys[] = {"name", NULL};
        const char *new_name = NULL;
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
        api_reply_json(c, 200, json_pack("{s:s,s:s}", "name", new_name, "previous_name", name));
    } else if (c->req->method == MDM_DELETE) {
        char **members = NULL;
        size_t n = 0;
        if (store_group_members(c->ctx->store, name, &members, &n, &err) != 0 ||
            store_group_delete(c->ctx->store, name, &err) != 0) {
            free_ids(members, n);
            api_reply_scepter_error(c, &err);
            return;
        }
        /* Policies that reached the members through this group no longer do. */
        mdm_policy_group_changed(c->ctx, (const char *const *)members, n, c->now);
        free_ids(members, n);
        api_reply_json(c, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
    }
}

static void group_members(struct api_call *c, const char *name)
{
    static const char *const keys[] = {"devices", NULL};
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
    rc = c->req->method == MDM_POST
             ? store_group_add(c->ctx->store, name, devs, nd, &changed, &err)
             : store_group_remove(c->ctx->store, name, devs, nd, &changed, &err);
    if (rc != 0) {
        api_reply_scepter_error(c, &err);
        free(devs);
        return;
    }
    mdm_policy_group_changed(c->ctx, devs, nd, c->now);
    api_reply_json(c, 200,
                   json_pack("{s:s,s:I}", "name", name,
                             c->req->method == MDM_POST ? "added" : "removed",
                             (json_int_t)changed));
    free(devs);
}

/* ---------------------------------------------------------------------------------------- */
/* Push certificate                                                                          */

static void pushcert(struct api_call *c)
{
    struct scepter_error err;

    if (c->req->method == MDM_GET) {
        struct store_pushcert pc;
        struct apns_stats st;
        json_t *j;
        memset(&pc, 0, sizeof(pc));
        if (store_pushcert_get(c->ctx->store, &pc, &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        j = json_pack("{s:s,s:o,s:o,s:I}", "topic", pc.topic, "not_after", api_time(pc.not_after),
                      "updated", api_time(pc.updated), "version", (json_int_t)pc.version);
        if (mdm_push_state(c->ctx->srv, &st) == 0)
            json_object_set_new(j, "apns",
                                json_pack("{s:s,s:i}", "state", apns_state_name(st.state),
                                          "connections", st.conns_up));
        store_pushcert_clear(&pc);
        api_reply_json(c, 200, j);
    } else if (c->req->method == MDM_PUT || c->req->method == MDM_POST) {
        static const char *const keys[] = {"cert_pem", "key_pem", "pkcs12", "password", NULL};
        const char *cert = NULL, *key = NULL, *p12 = NULL, *password = NULL;
        unsigned char *p12_bytes = NULL;
        size_t p12_len = 0;
        struct apns_identity *id = NULL;
        bool force = false;
        if (!api_need_body(c) || !parse_bool_query(c, "force", &force))
            return;
        if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
            jsonx_get_string(c->body, "cert_pem", "", false, &cert, &err) < 0 ||
            jsonx_get_string(c->body, "key_pem", "", false, &key, &err) < 0 ||
            jsonx_get_string(c->body, "pkcs12", "", false, &p12, &err) < 0 ||
            jsonx_get_string(c->body, "password", "", false, &password, &err) < 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        if ((cert == NULL) == (p12 == NULL)) {
            api_reply_error(c, 400, "cert_pem",
                            "send either cert_pem (+ key_pem) or pkcs12 (base64) + password");
            return;
        }
        if (p12) {
            if (base64_decode(p12, strlen(p12), false, &p12_bytes, &p12_len) != 0) {
                api_reply_error(c, 400, "pkcs12", "pkcs12: not base64");
                return;
            }
            id = apns_identity_parse(p12_bytes, p12_len, NULL, 0, password, c->now, &err);
            OPENSSL_cleanse(p12_bytes, p12_len);
            free(p12_bytes);
        } else {
            id = apns_identity_parse(cert, strlen(cert), key, key ? strlen(key) : 0, password,
                                     c->now, &err);
        }
        if (id == NULL) {
            if (strcmp(err.field, "cert") == 0)
                str_copy(err.field, sizeof(err.field), p12 ? "pkcs12" : "cert_pem");
            else if (strcmp(err.field, "key") == 0)
                str_copy(err.field, sizeof(err.field), "key_pem");
            api_reply_error(c, 400, err.field, "%s", err.msg);
            return;
        }
        if (mdm_push_install(c->ctx->srv, c->ctx->store, id, force, c->now, &err) != 0) {
            apns_identity_free(id);
            api_reply_scepter_error(c, &err);
            return;
        }
        api_reply_json(c, 200,
                       json_pack("{s:s,s:o,s:s}", "topic", apns_identity_topic(id), "not_after",
                                 api_time(apns_identity_not_after(id)), "subject",
                                 apns_identity_subject(id)));
        apns_identity_free(id);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* API keys                                                                                  */

static void apikeys(struct api_call *c, const char *id_text)
{
    struct scepter_error err;

    if (id_text != NULL) {
        int64_t id;
        if (str_to_i64(id_text, 1, INT64_MAX, &id) != 0) {
            api_reply_error(c, 404, "id", "no API key %s", id_text);
            return;
        }
        if (store_apikey_delete(c->ctx->store, id, &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        api_reply_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1));
        return;
    }
    if (c->req->method == MDM_GET) {
        struct store_apikey *k = NULL;
        size_t n = 0;
        if (store_apikey_list(c->ctx->store, &k, &n, &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:o,s:o}", "id", (json_int_t)k[i].id,
                                                 "name", k[i].name, "hash_prefix", k[i].hash_prefix,
                                                 "created", api_time(k[i].created), "last_used",
                                                 api_time(k[i].last_used)));
        store_apikeys_free(k, n);
        api_reply_json(c, 200, json_pack("{s:o}", "api_keys", arr));
    } else if (c->req->method == MDM_POST) {
        static const char *const keys[] = {"name", NULL};
        const char *name = NULL;
        unsigned char raw[32], md[CRYPTO_SHA256_LEN];
        char hex[CRYPTO_SHA256_HEX_LEN], *key;
        int64_t id = 0;
        if (!api_need_body(c))
            return;
        if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
            jsonx_get_string(c->body, "name", "", true, &name, &err) != 0) {
            api_reply_scepter_error(c, &err);
            return;
        }
        if (*name == '\0' || strlen(name) > 128) {
            api_reply_error(c, 400, "name", "name: must be 1 to 128 characters");
            return;
        }
        RAND_bytes(raw, sizeof(raw));
        char *hexkey = hex_encode(raw, sizeof(raw), false);
        key = xasprintf("scp_%s", hexkey);
        free(hexkey);
        crypto_sha256(key, strlen(key), md);
        hex_encode_to(md, sizeof(md), hex, false);
        if (store_apikey_create(c->ctx->store, name, hex, c->now, &id, &err) != 0) {
            free(key);
            api_reply_scepter_error(c, &err);
            return;
        }
        log_kv(LOG_LVL_INFO, "apikey_created", "name", name, NULL);
        api_reply_json(c, 201,
                       json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "name", name, "key",
                                 key, "note", "the key is shown once; only its hash is stored"));
        OPENSSL_cleanse(key, strlen(key));
        free(key);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Routing                                                                                   */

static void r_devices(struct api_call *c)
{
    devices_list(c);
}

static void r_device(struct api_call *c)
{
    if (c->req->method == MDM_DELETE)
        api_device_remove(c, c->seg[1]);
    else
        device_show(c, c->seg[1]);
}

static void r_device_reenroll(struct api_call *c)
{
    api_device_reenroll(c, c->seg[1]);
}

static void r_cert_revoke(struct api_call *c)
{
    api_cert_revoke(c, c->seg[1]);
}

static void r_enroll_token(struct api_call *c)
{
    api_enroll_token(c, c->seg[1]);
}

static void r_webhook_dead(struct api_call *c)
{
    api_webhook_dead_one(c, c->seg[2]);
}

static void r_device_commands(struct api_call *c)
{
    device_commands(c, c->seg[1]);
}

static void r_device_command(struct api_call *c)
{
    device_command(c, c->seg[1], c->seg[3]);
}

static void r_group(struct api_call *c)
{
    group_one(c, c->seg[1]);
}

static void group_members_route(struct api_call *c)
{
    group_members(c, c->seg[1]);
}

static void r_apikeys(struct api_call *c)
{
    apikeys(c, NULL);
}

static void r_apikey(struct api_call *c)
{
    apikeys(c, c->seg[1]);
}

#define M(x) (1u << MDM_##x)

/* Every /v1 route; docs/openapi.yaml describes exactly these (a test compares them). */
static const struct api_route routes[] = {
    {"/v1/policies", M(GET) | M(POST), api_policies},
    {"/v1/policies/{id}", M(GET) | M(PUT) | M(DELETE), api_policies},
    {"/v1/policies/{id}/status", M(GET), api_policies},
    {"/v1/policies/{id}/preview", M(GET), api_policies},
    {"/v1/policy-variables", M(GET), api_policy_variables},
    {"/v1/certificates/inspect", M(POST), api_certificate_inspect},
    {"/v1/devices", M(GET), r_devices},
    {"/v1/devices/{udid}", M(GET) | M(DELETE), r_device},
    {"/v1/devices/{udid}/reenroll", M(POST), r_device_reenroll},
    {"/v1/devices/{udid}/commands", M(GET) | M(POST) | M(DELETE), r_device_commands},
    {"/v1/devices/{udid}/commands/{uuid}", M(GET) | M(DELETE), r_device_command},
    {"/v1/commands", M(POST), commands_many},
    {"/v1/device-groups", M(GET) | M(POST), groups_root},
    {"/v1/device-groups/{name}", M(GET) | M(PATCH) | M(DELETE), r_group},
    {"/v1/device-groups/{name}/members", M(POST) | M(DELETE), group_members_route},
    {"/v1/push", M(POST), push_now},
    {"/v1/pushcert", M(GET) | M(PUT), pushcert},
    {"/v1/apikeys", M(GET) | M(POST), r_apikeys},
    {"/v1/apikeys/{id}", M(DELETE), r_apikey},
    {"/v1/certificates/{sha256}/revoke", M(POST), r_cert_revoke},
    {"/v1/revocations", M(GET), api_revocations},
    {"/v1/enrollment-tokens", M(GET) | M(POST), api_enroll_tokens},
    {"/v1/enrollment-tokens/{id}", M(DELETE), r_enroll_token},
    {"/v1/events", M(GET), api_events},
    {"/v1/webhooks/dead-letters", M(GET), api_webhook_dead_list},
    {"/v1/webhooks/dead-letters/retry", M(POST), api_webhook_dead_retry_all},
    {"/v1/webhooks/dead-letters/{id}", M(DELETE), r_webhook_dead},
    {"/v1/webhooks/dead-letters/{id}/retry", M(POST), r_webhook_dead},
    {"/v1/ca", M(GET), api_ca_list},
    {"/v1/ca/{name}/certificates", M(GET), api_ca_certificates},
    {"/v1/ca/{name}/certificates/{serial}/revoke", M(POST), api_ca_revoke},
    {"/v1/ca/{name}/challenges", M(POST), api_ca_challenges},
    {"/v1/sessions", M(POST), api_sessions},
    {"/v1/sessions/current", M(GET) | M(DELETE), api_session_current},
};

static const char *const method_names[] = {
    [MDM_GET] = "GET",     [MDM_POST] = "POST", [MDM_PUT] = "PUT",    [MDM_DELETE] = "DELETE",
    [MDM_PATCH] = "PATCH", [MDM_HEAD] = "HEAD", [MDM_OTHER] = "OTHER"};

const struct api_route *mdm_api_routes(size_t *n)
{
    *n = ARRAY_LEN(routes);
    return routes;
}

/* The route whose pattern matches the segments ("{x}" matches any one segment). */
static const struct api_route *match_route(const struct api_call *c)
{
    for (size_t r = 0; r < ARRAY_LEN(routes); r++) {
        const char *p = routes[r].pattern + 3; /* after "/v1" */
        int i = 0;
        bool ok = true;
        while (*p == '/' && ok) {
            const char *end = strchr(p + 1, '/');
            size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
            if (i >= c->nseg ||
                (p[1] != '{' && (strlen(c->seg[i]) != len || memcmp(p + 1, c->seg[i], len) != 0)))
                ok = false;
            i++;
            p += len + 1;
        }
        if (ok && i == c->nseg)
            return &routes[r];
    }
    return NULL;
}

void mdm_api_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                    struct mdm_reply *reply)
{
    const struct api_route *route;
    struct api_call c;
    struct scepter_error err;
    char *path = xstrdup(req->path + 3); /* after "/v1" */
    char *save = NULL, *tok;

    memset(&c, 0, sizeof(c));
    c.ctx = ctx;
    c.req = req;
    c.reply = reply;
    c.now = now;
    reply->event = "api";
    reply->message_type = req->path;
    for (tok = strtok_r(path, "/", &save); tok && c.nseg < (int)ARRAY_LEN(c.seg);
         tok = strtok_r(NULL, "/", &save))
        c.seg[c.nseg++] = tok;
    if (tok != NULL) {
        api_reply_error(&c, 404, NULL, "no such endpoint");
        goto out;
    }
    if (!authorized(&c))
        goto out;
    if (req->body_len > 0) {
        if (!mdm_content_type_is(mdm_header(req, "Content-Type"), "application/json") &&
            mdm_header(req, "Content-Type") != NULL) {
            api_reply_error(&c, 415, "Content-Type", "send the body as application/json");
            goto out;
        }
        if ((c.body = jsonx_parse_object((const char *)req->body, req->body_len, &err)) == NULL) {
            api_reply_scepter_error(&c, &err);
            goto out;
        }
    }
    route = match_route(&c);
    if (route == NULL) {
        api_reply_error(&c, 404, NULL, "no such endpoint: see docs/openapi.yaml");
    } else if (!(route->methods & (1u << req->method))) {
        char allow[64] = "";
        for (enum mdm_method m = MDM_GET; m <= MDM_HEAD; m++)
            if (route->methods & (1u << m)) {
                if (*allow)
                    str_append(allow, sizeof(allow), ", ");
                str_append(allow, sizeof(allow), method_names[m]);
            }
        mdm_reply_header(reply, "Allow", allow);
        api_reply_error(&c, 405, NULL, "%s: use %s", route->pattern, allow);
    } else {
        route->fn(&c);
    }
out:
    json_decref(c.body);
    free(path);
}
