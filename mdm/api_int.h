/*
 * Private to mdm/: the operator JSON API under /v1 (mdm/api.c, mdm/policy.c).
 */
#ifndef SCEPTER_MDM_API_INT_H
#define SCEPTER_MDM_API_INT_H

#include <jansson.h>

#include "mdm/mdm_int.h"

/* Who makes a request: an operator account or an API key, and its role. */
struct api_actor {
    enum store_role role;  /* STORE_ROLE_NONE until authenticated */
    const char *type;      /* "operator", "api_key" (NULL until authenticated) */
    char name[256];        /* the account's name, the key's name, "bootstrap" (config api_key) */
    int64_t operator_id;   /* the account, 0 for a key */
    char session_hash[65]; /* the console session's id hash, "" without a session */
};

/* A routed /v1 request: the path split into segments, the parsed body. */
struct api_call {
    struct mdm_ctx *ctx;
    const struct mdm_request *req;
    struct mdm_reply *reply;
    int64_t now;
    const char *seg[6]; /* path segments after /v1 (decoded) */
    int nseg;
    json_t *body; /* parsed JSON body, or NULL */
    struct api_actor actor;
    const struct api_route *route; /* the matched row */
    /* What the audit entry of a successful change says (mdm/audit.c); handlers may set them
     * (api_audit_object, api_audit_summary), else they are derived from the path and body. */
    char audit_object[256];
    char audit_summary[512];
    bool audit_done; /* the handler stored the entry with its change (api_audit_written) */
};

/*
 * The least role a route needs.  Every row of the route table names one: a row left at
 * API_ROLE_UNSET is refused (500) and fails the route test.  API_ROLE_ANYONE is for signing
 * in only.
 */
enum api_role {
    API_ROLE_UNSET = 0,
    API_ROLE_ANYONE,
    API_ROLE_VIEWER,
    API_ROLE_OPERATOR,
    API_ROLE_ADMIN,
};
/* The actor is an API key with role and name (NULL: the configuration's api_key). */
void api_actor_key(struct api_call *c, enum store_role role, const char *name);
/* "GET", "POST", ... */
const char *api_method_name(enum mdm_method m);
/* "anyone", "viewer", "operator", "admin" ("unset"). */
const char *api_role_name(enum api_role r);
/* Does an actor with role have what need asks for? */
bool api_role_allows(enum api_role need, enum store_role role);

/*
 * A /v1 route: a pattern such as "/v1/devices/{udid}" ("{x}" is one path segment, read from
 * seg[]), one method, its handler, the least role it needs, and the audit action a
 * successful call records ("policy.update"; NULL for a route that changes nothing).
 */
struct api_route {
    const char *pattern;
    enum mdm_method method;
    void (*fn)(struct api_call *c);
    enum api_role role;
    const char *action;
};
/* Every route, one row per pattern and method (docs/openapi.yaml describes exactly these). */
const struct api_route *mdm_api_routes(size_t *n);

/* /v1 entry point (mdm/api.c). */
void mdm_api_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                    struct mdm_reply *reply);

/* Replies: JSON (steals j), and {"error", "field"} errors. */
void api_reply_json(struct api_call *c, int status, json_t *j);
void api_reply_error(struct api_call *c, int status, const char *field, const char *fmt, ...)
    PRINTF(4, 5);
void api_reply_scepter_error(struct api_call *c, const struct scepter_error *err);
/* UNIX seconds as "2026-11-25T18:00:00Z", or JSON null for 0. */
json_t *api_time(int64_t t);
/* A query parameter (caller frees) or NULL. */
char *api_query(const struct api_call *c, const char *name);
/* A true/false query parameter into *out (unchanged when absent); false with a 400 reply. */
bool api_query_bool(struct api_call *c, const char *name, bool *out);
/* A whole-number query parameter between lo and hi into *out (unchanged when absent); false
 * with a 400 reply naming it. */
bool api_query_int(struct api_call *c, const char *name, int64_t lo, int64_t hi, int64_t *out);
/* A JSON string, or null for NULL. */
json_t *api_opt_str(const char *s);
/* Free an array of n strings. */
void api_ids_free(char **ids, size_t n);
/* The body must be a JSON object: sets an error reply and returns false otherwise. */
bool api_need_body(struct api_call *c);
/* Read a JSON array of strings ("devices") into a new array of borrowed pointers. */
int api_string_array(json_t *obj, const char *key, bool required, const char ***out, size_t *n,
                     struct scepter_error *err) WUR;

/* Route handlers, by resource (each file's header comment lists its routes). */
/* mdm/api_devices.c */
void api_devices_list(struct api_call *c);
void api_device_show(struct api_call *c);
/* mdm/api_ddm.c */
void api_device_declarations(struct api_call *c);
/*
 * Complete a GET /v1/policies/{id}/status reply (its installed/pending/failed entries already
 * carry "delivery" and, on DDM, "ddm"): each DDM entry's "ddm" gets "syncing" (the device does
 * not hold the policy's current declarations yet; each reported declaration says "current") or
 * "not_rendered"; the console's "devices" rows get the same "ddm"; the reply gets
 * "by_delivery": {"ddm": {devices, installed, pending, failed, active, inactive, invalid,
 * unknown, syncing}, "profile": {devices, installed, pending, failed}} — a syncing device is
 * counted as syncing, not by the state it reported for an older version.
 */
void api_ddm_policy_status(struct api_call *c, const struct store_policy *sp, json_t *reply);
/* mdm/api_commands.c */
void api_device_commands_list(struct api_call *c);
void api_device_command_enqueue(struct api_call *c);
void api_device_commands_clear(struct api_call *c);
void api_device_command_show(struct api_call *c);
void api_device_command_cancel(struct api_call *c);
void api_commands_enqueue(struct api_call *c);
void api_push(struct api_call *c);
/* mdm/api_groups.c */
void api_groups_list(struct api_call *c);
void api_group_create(struct api_call *c);
void api_group_show(struct api_call *c);
void api_group_rename(struct api_call *c);
void api_group_delete(struct api_call *c);
void api_group_members_add(struct api_call *c);
void api_group_members_remove(struct api_call *c);
/* mdm/api_settings.c */
void api_pushcert_show(struct api_call *c);
void api_pushcert_put(struct api_call *c);
void api_apikeys_list(struct api_call *c);
void api_apikey_create(struct api_call *c);
void api_apikey_delete(struct api_call *c);
/* mdm/api_security.c */
void api_device_remove(struct api_call *c);
void api_device_reenroll(struct api_call *c);
void api_cert_revoke(struct api_call *c);
void api_revocations(struct api_call *c);
void api_enroll_tokens_list(struct api_call *c);
void api_enroll_token_create(struct api_call *c);
void api_enroll_token_delete(struct api_call *c);
void api_events(struct api_call *c);
/* mdm/api_webhook.c */
void api_webhook_dead_list(struct api_call *c);
void api_webhook_dead_retry_all(struct api_call *c);
void api_webhook_dead_delete(struct api_call *c);
void api_webhook_dead_retry(struct api_call *c);

/* Policies (mdm/policy.c): /v1/policies[/{id}[/status|/preview]]. */
void api_policies_list(struct api_call *c);
void api_policy_create(struct api_call *c);
void api_policy_show(struct api_call *c);
void api_policy_update(struct api_call *c);
void api_policy_delete(struct api_call *c);
void api_policy_status(struct api_call *c);
void api_policy_preview(struct api_call *c);
/* GET /v1/policy-variables, POST /v1/certificates/inspect (mdm/policy.c). */
void api_policy_variables(struct api_call *c);
void api_certificate_inspect(struct api_call *c);
/* A device's policies and their state on it (for GET /v1/devices/{udid}). */
json_t *api_device_policies(struct api_call *c, const char *device_id);
/*
 * Devices joined (added = true) or left a group: queue the policies that now reach them, or
 * RemoveProfile for those that no longer do; push them.
 */
void mdm_policy_group_changed(struct mdm_ctx *ctx, const char *const *device_ids, size_t n,
                              int64_t now);

/* The console's overview (mdm/api_dashboard.c): /v1/dashboard, GET /v1/commands[/{uuid}],
 * /v1/enrollment. */
void api_dashboard(struct api_call *c);
void api_commands_list(struct api_call *c);
void api_command_show(struct api_call *c);
void api_enrollment_show(struct api_call *c);

/* Web console sessions (mdm/api_session.c): /v1/sessions, /v1/sessions/current. */
void api_session_create(struct api_call *c);
void api_session_show(struct api_call *c);
void api_session_delete(struct api_call *c);
void api_session_password(struct api_call *c);
/* Operator accounts (mdm/api_operators.c): /v1/operators[/{name}]. */
void api_operators_list(struct api_call *c);
void api_operator_create(struct api_call *c);
void api_operator_update(struct api_call *c);
void api_operator_delete(struct api_call *c);
/* The audit log (mdm/audit.c): GET /v1/audit. */
void api_audit_list(struct api_call *c);
/* Set the object or the summary of the call's audit entry (printf-style, cut to fit). */
void api_audit_object(struct api_call *c, const char *fmt, ...) PRINTF(2, 3);
void api_audit_summary(struct api_call *c, const char *fmt, ...) PRINTF(2, 3);
/* The summary as "path: before -> after; ..." between two JSON documents (secrets named, never
 * shown; long values cut), for an update of a stored document. */
void api_audit_diff(struct api_call *c, const json_t *before, const json_t *after);
/*
 * Record an audit entry for the call now, with the call's actor (or, when it has none, the
 * actor type and name given): written right after the change, an error only logged; with
 * webhook_audit also sent as the webhook event audit.<action>.
 */
void api_audit_write(struct api_call *c, const char *action, const char *actor_type,
                     const char *actor_name, const char *object, const char *summary);
/* After a route ran: the audit entry of a successful change (mdm/audit.c). */
void api_audit_after(struct api_call *c);
/*
 * For a handler that stores its audit entry in the same transaction as its change (one
 * commit, and no entry without the change): the entry api_audit_after would write for the
 * call's route, filled now with the object given (what the reply will name) and the summary
 * derived from the body, in *p (its strings point into *p and the call); false when the call
 * records no entry (no actor, or a route without an action).  Once stored with the
 * change as id, api_audit_written sends its webhook event (webhook_audit) and stops
 * api_audit_after from writing it again.
 */
struct api_audit_pending {
    struct store_audit_entry e;
    char route[256], object[256], summary[512];
};
bool api_audit_prepare(struct api_call *c, const char *object, struct api_audit_pending *p);
void api_audit_written(struct api_call *c, struct api_audit_pending *p, int64_t id);

/* Passwords of operator accounts (mdm/api_operators.c). */
#define API_PASSWORD_MIN 12
#define API_PASSWORD_MAX 256
/* SCEPTER_EINVAL naming field unless pw fits the password policy (12 to 256 bytes). */
int api_password_check(const char *pw, const char *field, struct scepter_error *err) WUR;
/* libsodium's Argon2id string for pw into out; -1 when out of memory. */
int api_password_hash(const char *pw, char out[128]) WUR;
/* Does pw match the stored hash? */
bool api_password_verify(const char *hash, const char *pw);
/*
 * The session cookie in the /v1 authorisation step: 1 authorised (a live session, with the
 * CSRF token on a state-changing method; or POST /v1/sessions, which checks its own key), 0
 * refused (the reply is set), -1 not a session request (Authorization: Bearer decides).
 */
int api_session_authorize(struct api_call *c);

#endif
