/*
 * The operator API: JSON under /v1, every route behind an API key
 * (Authorization: Bearer <key>; the bootstrap api_key setting, or keys made with
 * `scepterctl apikey create`, stored as SHA-256 hashes).  Errors are
 * {"error": "...", "field": "..."} with a 4xx, and change nothing.
 *
 * This file holds what every route shares: the route table (one row per pattern and method;
 * docs/openapi.yaml describes exactly these rows and a test keeps the two in step),
 * authentication, the body and query readers and the replies.  The handlers live by
 * resource:
 *
 *   mdm/policy.c         /v1/policies[/{id}[/status|/preview]], /v1/policy-variables,
 *                        /v1/certificates/inspect
 *   mdm/api_devices.c    /v1/devices[/{udid}]
 *   mdm/api_ddm.c        /v1/devices/{udid}/declarations
 *   mdm/api_commands.c   /v1/devices/{udid}/commands[/{uuid}], /v1/commands, /v1/push
 *   mdm/api_groups.c     /v1/device-groups[/{name}[/members]]
 *   mdm/api_settings.c   /v1/pushcert, /v1/apikeys[/{id}]
 *   mdm/api_security.c   device removal and re-enrollment, revocations, enrollment tokens,
 *                        security events
 *   mdm/api_webhook.c    /v1/webhooks/dead-letters...
 *   mdm/scep_http.c      /v1/ca...
 *   mdm/api_dashboard.c  /v1/dashboard, GET /v1/commands[/{uuid}], /v1/enrollment (read-only)
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
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
    /* The message may quote request bytes (a path segment, a name) or be cut inside a
     * character; JSON strings must be UTF-8, or there would be no message at all. */
    str_utf8_sanitize(msg);
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

json_t *api_opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

void api_ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

bool api_query_bool(struct api_call *c, const char *name, bool *out)
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

bool api_query_int(struct api_call *c, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    char *v = api_query(c, name);
    int64_t n;
    bool ok = true;

    if (v && str_to_i64(v, lo, hi, &n) != 0) {
        api_reply_error(c, 400, name, "%s: '%s' is not a whole number between %lld and %lld", name,
                        v, (long long)lo, (long long)hi);
        ok = false;
    } else if (v) {
        *out = n;
    }
    free(v);
    return ok;
}

static const char *const method_names[] = {
    [MDM_GET] = "GET",     [MDM_POST] = "POST", [MDM_PUT] = "PUT",    [MDM_DELETE] = "DELETE",
    [MDM_PATCH] = "PATCH", [MDM_HEAD] = "HEAD", [MDM_OTHER] = "OTHER"};

const char *api_method_name(enum mdm_method m)
{
    return m >= MDM_GET && m <= MDM_OTHER ? method_names[m] : "OTHER";
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
    enum store_role role = STORE_ROLE_NONE;
    char *name = NULL;
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
        CRYPTO_memcmp(boot, key, strlen(key)) == 0) {
        api_actor_key(c, STORE_ROLE_ADMIN, NULL);
        return true;
    }
    crypto_sha256(key, strlen(key), md);
    hex_encode_to(md, sizeof(md), hex, false);
    rc = store_apikey_auth(c->ctx->store, hex, &id, &role, &name, &err);
    if (rc == 0) {
        mdm_apikey_used(c->ctx, id, c->now);
        api_actor_key(c, role, name);
        free(name);
        return true;
    }
    free(name);
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

void api_actor_key(struct api_call *c, enum store_role role, const char *name)
{
    c->actor.type = "api_key";
    c->actor.role = role;
    c->actor.operator_id = 0;
    /* The configuration's api_key has no name of its own. */
    str_copy(c->actor.name, sizeof(c->actor.name), name ? name : "bootstrap");
}

/* ---------------------------------------------------------------------------------------- */
/* Roles                                                                                     */

static const char *const api_role_names[] = {[API_ROLE_UNSET] = "unset",
                                             [API_ROLE_ANYONE] = "anyone",
                                             [API_ROLE_VIEWER] = "viewer",
                                             [API_ROLE_OPERATOR] = "operator",
                                             [API_ROLE_ADMIN] = "admin"};

const char *api_role_name(enum api_role r)
{
    return r <= API_ROLE_ADMIN ? api_role_names[r] : "unset";
}

bool api_role_allows(enum api_role need, enum store_role role)
{
    switch (need) {
    case API_ROLE_ANYONE:
        return true;
    case API_ROLE_VIEWER:
        return role >= STORE_ROLE_VIEWER && role <= STORE_ROLE_ADMIN;
    case API_ROLE_OPERATOR:
        return role >= STORE_ROLE_OPERATOR && role <= STORE_ROLE_ADMIN;
    case API_ROLE_ADMIN:
        return role == STORE_ROLE_ADMIN;
    case API_ROLE_UNSET:
    default:
        return false;
    }
}

/* The route's role against the actor's: false with a 403 (or a 500 for a row without a role)
 * naming the role needed. */
static bool role_allowed(struct api_call *c, const struct api_route *route)
{
    char msg[320];
    json_t *j;

    if (route->role == API_ROLE_UNSET) {
        api_reply_error(c, 500, "role", "%s %s has no role in the route table",
                        method_names[route->method], route->pattern);
        return false;
    }
    if (api_role_allows(route->role, c->actor.role))
        return true;
    snprintf(msg, sizeof(msg), "role: %s %s needs the %s role; this %s has %s",
             method_names[route->method], route->pattern, api_role_name(route->role),
             c->actor.type && strcmp(c->actor.type, "operator") == 0 ? "account" : "API key",
             store_role_name(c->actor.role));
    str_utf8_sanitize(msg);
    j = json_pack("{s:s,s:s,s:s,s:s}", "error", msg, "field", "role", "required_role",
                  api_role_name(route->role), "role", store_role_name(c->actor.role));
    str_copy(c->reply->reason, sizeof(c->reply->reason), msg);
    api_reply_json(c, 403, j);
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Routing                                                                                   */

/*
 * Every /v1 route, one row per pattern and method: the handler, the least role it needs
 * (viewer < operator < admin; docs/openapi.yaml says the same as x-scepter-role) and the
 * action its audit entry records (NULL: the route changes nothing).
 *   viewer    reads, except accounts, API keys and the audit log
 *   operator  policies, groups, commands, pushes, devices, enrollment tokens, SCEP challenges
 *   admin     accounts, API keys, the push certificate, revocations, webhook dead letters
 */
static const struct api_route routes[] = {
    {"/v1/policies", MDM_GET, api_policies_list, API_ROLE_VIEWER, NULL},
    {"/v1/policies", MDM_POST, api_policy_create, API_ROLE_OPERATOR, "policy.create"},
    {"/v1/policies/{id}", MDM_GET, api_policy_show, API_ROLE_VIEWER, NULL},
    {"/v1/policies/{id}", MDM_PUT, api_policy_update, API_ROLE_OPERATOR, "policy.update"},
    {"/v1/policies/{id}", MDM_DELETE, api_policy_delete, API_ROLE_OPERATOR, "policy.delete"},
    {"/v1/policies/{id}/status", MDM_GET, api_policy_status, API_ROLE_VIEWER, NULL},
    {"/v1/policies/{id}/preview", MDM_GET, api_policy_preview, API_ROLE_VIEWER, NULL},
    {"/v1/policy-variables", MDM_GET, api_policy_variables, API_ROLE_VIEWER, NULL},
    {"/v1/certificates/inspect", MDM_POST, api_certificate_inspect, API_ROLE_VIEWER, NULL},
    {"/v1/devices", MDM_GET, api_devices_list, API_ROLE_VIEWER, NULL},
    {"/v1/devices/{udid}", MDM_GET, api_device_show, API_ROLE_VIEWER, NULL},
    {"/v1/devices/{udid}", MDM_DELETE, api_device_remove, API_ROLE_OPERATOR, "device.remove"},
    {"/v1/devices/{udid}/reenroll", MDM_POST, api_device_reenroll, API_ROLE_OPERATOR,
     "device.reenroll"},
    {"/v1/devices/{udid}/declarations", MDM_GET, api_device_declarations, API_ROLE_VIEWER, NULL},
    {"/v1/devices/{udid}/commands", MDM_GET, api_device_commands_list, API_ROLE_VIEWER, NULL},
    {"/v1/devices/{udid}/commands", MDM_POST, api_device_command_enqueue, API_ROLE_OPERATOR,
     "device.command.enqueue"},
    {"/v1/devices/{udid}/commands", MDM_DELETE, api_device_commands_clear, API_ROLE_OPERATOR,
     "device.command.clear"},
    {"/v1/devices/{udid}/commands/{uuid}", MDM_GET, api_device_command_show, API_ROLE_VIEWER, NULL},
    {"/v1/devices/{udid}/commands/{uuid}", MDM_DELETE, api_device_command_cancel, API_ROLE_OPERATOR,
     "device.command.cancel"},
    {"/v1/commands", MDM_POST, api_commands_enqueue, API_ROLE_OPERATOR, "command.enqueue"},
    {"/v1/device-groups", MDM_GET, api_groups_list, API_ROLE_VIEWER, NULL},
    {"/v1/device-groups", MDM_POST, api_group_create, API_ROLE_OPERATOR, "group.create"},
    {"/v1/device-groups/{name}", MDM_GET, api_group_show, API_ROLE_VIEWER, NULL},
    {"/v1/device-groups/{name}", MDM_PATCH, api_group_rename, API_ROLE_OPERATOR, "group.rename"},
    {"/v1/device-groups/{name}", MDM_DELETE, api_group_delete, API_ROLE_OPERATOR, "group.delete"},
    {"/v1/device-groups/{name}/members", MDM_POST, api_group_members_add, API_ROLE_OPERATOR,
     "group.members.add"},
    {"/v1/device-groups/{name}/members", MDM_DELETE, api_group_members_remove, API_ROLE_OPERATOR,
     "group.members.remove"},
    {"/v1/push", MDM_POST, api_push, API_ROLE_OPERATOR, "push.send"},
    {"/v1/pushcert", MDM_GET, api_pushcert_show, API_ROLE_VIEWER, NULL},
    {"/v1/pushcert", MDM_PUT, api_pushcert_put, API_ROLE_ADMIN, "pushcert.update"},
    {"/v1/apikeys", MDM_GET, api_apikeys_list, API_ROLE_ADMIN, NULL},
    {"/v1/apikeys", MDM_POST, api_apikey_create, API_ROLE_ADMIN, "apikey.create"},
    {"/v1/apikeys/{id}", MDM_DELETE, api_apikey_delete, API_ROLE_ADMIN, "apikey.delete"},
    {"/v1/certificates/{sha256}/revoke", MDM_POST, api_cert_revoke, API_ROLE_ADMIN,
     "certificate.revoke"},
    {"/v1/revocations", MDM_GET, api_revocations, API_ROLE_VIEWER, NULL},
    {"/v1/enrollment-tokens", MDM_GET, api_enroll_tokens_list, API_ROLE_VIEWER, NULL},
    {"/v1/enrollment-tokens", MDM_POST, api_enroll_token_create, API_ROLE_OPERATOR,
     "enrollment_token.create"},
    {"/v1/enrollment-tokens/{id}", MDM_DELETE, api_enroll_token_delete, API_ROLE_OPERATOR,
     "enrollment_token.delete"},
    {"/v1/events", MDM_GET, api_events, API_ROLE_VIEWER, NULL},
    {"/v1/webhooks/dead-letters", MDM_GET, api_webhook_dead_list, API_ROLE_VIEWER, NULL},
    {"/v1/webhooks/dead-letters/retry", MDM_POST, api_webhook_dead_retry_all, API_ROLE_ADMIN,
     "webhook.dead_letter.retry"},
    {"/v1/webhooks/dead-letters/{id}", MDM_DELETE, api_webhook_dead_delete, API_ROLE_ADMIN,
     "webhook.dead_letter.delete"},
    {"/v1/webhooks/dead-letters/{id}/retry", MDM_POST, api_webhook_dead_retry, API_ROLE_ADMIN,
     "webhook.dead_letter.retry"},
    {"/v1/ca", MDM_GET, api_ca_list, API_ROLE_VIEWER, NULL},
    {"/v1/ca/{name}/certificates", MDM_GET, api_ca_certificates, API_ROLE_VIEWER, NULL},
    {"/v1/ca/{name}/certificates/{serial}/revoke", MDM_POST, api_ca_revoke, API_ROLE_ADMIN,
     "ca.certificate.revoke"},
    {"/v1/ca/{name}/challenges", MDM_POST, api_ca_challenges, API_ROLE_OPERATOR,
     "ca.challenge.create"},
    {"/v1/sessions", MDM_POST, api_session_create, API_ROLE_ANYONE, "session.create"},
    {"/v1/sessions/current", MDM_GET, api_session_show, API_ROLE_VIEWER, NULL},
    {"/v1/sessions/current", MDM_DELETE, api_session_delete, API_ROLE_VIEWER, "session.delete"},
    {"/v1/sessions/current/password", MDM_POST, api_session_password, API_ROLE_VIEWER,
     "session.password"},
    {"/v1/operators", MDM_GET, api_operators_list, API_ROLE_ADMIN, NULL},
    {"/v1/operators", MDM_POST, api_operator_create, API_ROLE_ADMIN, "operator.create"},
    {"/v1/operators/{name}", MDM_PATCH, api_operator_update, API_ROLE_ADMIN, "operator.update"},
    {"/v1/operators/{name}", MDM_DELETE, api_operator_delete, API_ROLE_ADMIN, "operator.delete"},
    {"/v1/audit", MDM_GET, api_audit_list, API_ROLE_OPERATOR, NULL},
    {"/v1/dashboard", MDM_GET, api_dashboard, API_ROLE_VIEWER, NULL},
    {"/v1/commands", MDM_GET, api_commands_list, API_ROLE_VIEWER, NULL},
    {"/v1/commands/{uuid}", MDM_GET, api_command_show, API_ROLE_VIEWER, NULL},
    {"/v1/enrollment", MDM_GET, api_enrollment_show, API_ROLE_VIEWER, NULL},
};

const struct api_route *mdm_api_routes(size_t *n)
{
    *n = ARRAY_LEN(routes);
    return routes;
}

/* Does the pattern match the segments ("{x}" matches any one segment)? */
static bool pattern_matches(const char *pattern, const struct api_call *c)
{
    const char *p = pattern + 3; /* after "/v1" */
    int i = 0;

    while (*p == '/') {
        const char *end = strchr(p + 1, '/');
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        if (i >= c->nseg ||
            (p[1] != '{' && (strlen(c->seg[i]) != len || memcmp(p + 1, c->seg[i], len) != 0)))
            return false;
        i++;
        p += len + 1;
    }
    return i == c->nseg;
}

/*
 * The row for the request's path and method; NULL with *allowed the methods the path
 * answers (0 when no pattern matches).
 */
static const struct api_route *match_route(const struct api_call *c, unsigned *allowed,
                                           const char **pattern)
{
    *allowed = 0;
    for (size_t r = 0; r < ARRAY_LEN(routes); r++) {
        if (!pattern_matches(routes[r].pattern, c))
            continue;
        if (routes[r].method == c->req->method)
            return &routes[r];
        *allowed |= 1u << routes[r].method;
        *pattern = routes[r].pattern;
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
    const char *pattern = NULL;
    unsigned allowed;

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
    /* UDIDs, group names and ids are text: a segment that is not UTF-8 names nothing (and
     * could not be quoted in a JSON reply). */
    for (int i = 0; i < c.nseg; i++)
        if (!str_utf8_valid(c.seg[i])) {
            api_reply_error(&c, 400, "path", "path segment %d is not valid UTF-8", i + 2);
            goto out;
        }
    /* The role before anything else of the request is looked at: a call beyond the caller's
     * role is refused whatever its body. */
    route = match_route(&c, &allowed, &pattern);
    c.route = route;
    if (route != NULL && !role_allowed(&c, route))
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
    if (route != NULL) {
        route->fn(&c);
        api_audit_after(&c);
    } else if (allowed == 0) {
        api_reply_error(&c, 404, NULL, "no such endpoint: see docs/openapi.yaml");
    } else {
        char allow[64] = "";
        for (enum mdm_method m = MDM_GET; m <= MDM_HEAD; m++)
            if (allowed & (1u << m)) {
                if (*allow)
                    str_append(allow, sizeof(allow), ", ");
                str_append(allow, sizeof(allow), method_names[m]);
            }
        mdm_reply_header(reply, "Allow", allow);
        api_reply_error(&c, 405, NULL, "%s: use %s", pattern, allow);
    }
out:
    json_decref(c.body);
    free(path);
}
