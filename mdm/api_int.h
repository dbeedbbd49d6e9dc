/*
 * Private to mdm/: the operator JSON API under /v1 (mdm/api.c, mdm/policy.c).
 */
#ifndef SCEPTER_MDM_API_INT_H
#define SCEPTER_MDM_API_INT_H

#include <jansson.h>

#include "mdm/mdm_int.h"

/* A routed /v1 request: the path split into segments, the parsed body. */
struct api_call {
    struct mdm_ctx *ctx;
    const struct mdm_request *req;
    struct mdm_reply *reply;
    int64_t now;
    const char *seg[6]; /* path segments after /v1 (decoded) */
    int nseg;
    json_t *body; /* parsed JSON body, or NULL */
};

/*
 * A /v1 route: a pattern such as "/v1/devices/{udid}" ("{x}" is one path segment, read from
 * seg[]), one method, and its handler.
 */
struct api_route {
    const char *pattern;
    enum mdm_method method;
    void (*fn)(struct api_call *c);
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
/*
 * The session cookie in the /v1 authorisation step: 1 authorised (a live session, with the
 * CSRF token on a state-changing method; or POST /v1/sessions, which checks its own key), 0
 * refused (the reply is set), -1 not a session request (Authorization: Bearer decides).
 */
int api_session_authorize(struct api_call *c);

#endif
