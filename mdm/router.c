/*
 * Routing: which handler answers which path.  Devices use /mdm/checkin, /mdm/connect (or
 * /mdm, dispatched on the content type) and /mdm/enroll; operators use /v1 and the web
 * console at /console/ (where / sends browsers); /healthz and /metrics need no key.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/str.h"
#include "mdm/api_int.h"
#include "mdm/console_int.h"
#include "mdm/ddm_int.h"
#include "mdm/metrics_int.h"
#include "mdm/push_int.h"
#include "mdm/scep_int.h"

static void healthz(struct mdm_ctx *ctx, const struct mdm_request *req, struct mdm_reply *reply)
{
    struct scepter_error err;

    reply->event = "healthz";
    if (req->method != MDM_GET && req->method != MDM_HEAD) {
        mdm_reply_error(reply, 405, "healthz: GET only");
        return;
    }
    if (store_ping(ctx->store, &err) != 0) {
        mdm_reply_error(reply, 503, "store unreachable: %s", err.msg);
        return;
    }
    struct apns_stats st;
    bool pushing = mdm_push_state(ctx->srv, &st) == 0;
    const char *apns = pushing ? apns_state_name(st.state) : "none";
    /* An expired push certificate does not make the server unhealthy (a restart would not
     * help): it is named here, with the client's reason once pushing has stopped. */
    bool expired = pushing && st.cert_not_after > 0 && (int64_t)time(NULL) > st.cert_not_after;
    reply->status = 200;
    reply->content_type = "application/json";
    buf_printf(&reply->body, "{\"status\":\"ok\",\"store\":\"%s\",\"apns\":\"%s\"",
               store_backend(ctx->store), apns);
    if (expired)
        buf_printf(&reply->body, ",\"push_cert\":\"expired\"");
    if (pushing && (st.state == APNS_STATE_HALTED || st.state == APNS_STATE_FAILING) &&
        st.last_error[0]) {
        json_t *e = json_string(st.last_error); /* NULL when not UTF-8 */
        char *text = e ? json_dumps(e, JSON_ENCODE_ANY) : NULL;
        buf_printf(&reply->body, ",\"apns_error\":%s", text ? text : "\"\"");
        free(text);
        json_decref(e);
    }
    buf_printf(&reply->body, "}\n");
}

static void metrics(struct mdm_ctx *ctx, const struct mdm_request *req, struct mdm_reply *reply)
{
    reply->event = "metrics";
    if (req->method != MDM_GET) {
        mdm_reply_error(reply, 405, "metrics: GET only");
        return;
    }
    reply->status = 200;
    reply->content_type = "text/plain; version=0.0.4";
    mdm_metrics_render(ctx, &reply->body);
}

void mdm_route(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
               struct mdm_reply *reply)
{
    const char *p = req->path;
    bool device =
        strncmp(p, "/mdm", 4) == 0 || strcmp(p, "/checkin") == 0 || strcmp(p, "/connect") == 0;
    bool api = strcmp(p, "/v1") == 0 || strncmp(p, "/v1/", 4) == 0;

    /* evhttp takes bodies up to the larger limit; each side has its own. */
    if (device && ctx->cfg && (int64_t)req->body_len > ctx->cfg->max_device_body_bytes) {
        reply->event = "http";
        mdm_reply_error(reply, 413,
                        "request body of %zu bytes is over max_device_body_bytes (%lld)",
                        req->body_len, (long long)ctx->cfg->max_device_body_bytes);
        return;
    }
    if (api && ctx->cfg && (int64_t)req->body_len > ctx->cfg->max_api_body_bytes) {
        reply->event = "http";
        mdm_reply_error(reply, 413, "request body of %zu bytes is over max_api_body_bytes (%lld)",
                        req->body_len, (long long)ctx->cfg->max_api_body_bytes);
        return;
    }
    if (strcmp(p, "/mdm/checkin") == 0 || strcmp(p, "/checkin") == 0) {
        mdm_checkin_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/mdm/connect") == 0 || strcmp(p, "/connect") == 0) {
        mdm_command_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/mdm") == 0) {
        const char *ct = mdm_header(req, "Content-Type");
        if (mdm_content_type_is(ct, "application/x-apple-aspen-mdm-checkin"))
            mdm_checkin_handle(ctx, req, now, reply);
        else
            mdm_command_handle(ctx, req, now, reply);
    } else if (strncmp(p, "/mdm/ddm/asset/", 15) == 0) {
        mdm_ddm_asset_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/mdm/enroll") == 0) {
        mdm_enroll_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/v1") == 0 || strncmp(p, "/v1/", 4) == 0) {
        mdm_api_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/scep") == 0 || strncmp(p, "/scep/", 6) == 0) {
        mdm_scep_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/console") == 0 || strncmp(p, "/console/", 9) == 0) {
        mdm_console_handle(ctx, req, now, reply);
    } else if (strcmp(p, "/") == 0) {
        mdm_console_root(ctx, req, now, reply);
    } else if (strcmp(p, "/healthz") == 0) {
        healthz(ctx, req, reply);
    } else if (strcmp(p, "/metrics") == 0) {
        metrics(ctx, req, reply);
    } else {
        reply->event = "http";
        mdm_reply_error(reply, 404, "no such endpoint: %.100s", p);
    }
}
