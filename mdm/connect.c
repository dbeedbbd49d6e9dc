/*
 * The command channel (PUT /mdm/connect, application/x-apple-aspen-mdm): the device reports
 * the result of the last command (or Idle) and gets the next one as a plist
 * {CommandUUID, Command}, or a zero-byte 200 when nothing is queued.
 *
 * The store does the exchange in one transaction (store_connect): certificate binding, result
 * recording and next-command lookup.  In the server, a result report is checked here (identity,
 * plist, CommandUUID and enrollment id as UTF-8), then handed to the worker (defer_report),
 * which stores the reports of one loop turn together (store_connect_many: one commit per batch)
 * and answers each through mdm_report_answer after that commit.  A result for a command that
 * is not queued for the
 * enrollment (an operator cancelled it meanwhile) is logged and answered like any other:
 * the device resends a result until it gets a 2xx, so a 4xx here would loop forever.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ddm_int.h"
#include "mdm/metrics_int.h"
#include "mdm/webhook_int.h"

/*
 * ErrorChain (array of dicts: ErrorCode, ErrorDomain, LocalizedDescription,
 * USEnglishDescription) as JSON text, or NULL when absent.  Unknown keys are kept as strings;
 * a malformed chain is an error (the device sent a broken result).
 */
char *mdm_error_chain_json(plist_t result, struct scepter_error *err)
{
    plist_t chain = NULL;
    json_t *arr;
    char *out;

    if (plistx_get_array(result, "ErrorChain", false, &chain, err) != 0)
        return NULL;
    arr = json_array();
    for (uint32_t i = 0; i < plist_array_get_size(chain); i++) {
        plist_t item = plist_array_get_item(chain, i);
        plist_dict_iter it = NULL;
        char *key = NULL;
        plist_t val = NULL;
        json_t *obj;

        if (plist_get_node_type(item) != PLIST_DICT) {
            json_decref(arr);
            scepter_err(err, SCEPTER_EINVAL, "ErrorChain", "ErrorChain[%u]: expected dict", i);
            return NULL;
        }
        obj = json_object();
        plist_dict_new_iter(item, &it);
        for (;;) {
            plist_dict_next_item(item, it, &key, &val);
            if (val == NULL)
                break;
            switch (plist_get_node_type(val)) {
            case PLIST_UINT: {
                uint64_t v = 0;
                plist_get_uint_val(val, &v);
                json_object_set_new(obj, key, json_integer((json_int_t)v));
                break;
            }
            case PLIST_STRING:
                json_object_set_new(obj, key, json_string(plist_get_string_ptr(val, NULL)));
                break;
            case PLIST_BOOLEAN:
                json_object_set_new(obj, key, json_boolean(plist_bool_val_is_true(val)));
                break;
            default:
                break; /* nested values are kept in the raw result only */
            }
            free(key);
            key = NULL;
        }
        free(it);
        json_array_append_new(arr, obj);
    }
    out = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (out) {
        char *copy = xstrdup(out);
        free(out); /* banned-ok: jansson's allocation */
        out = copy;
    }
    return out;
}

/* A DeviceInformation result refreshes the facts the store keeps about the device. */
static void update_facts(struct mdm_ctx *ctx, const char *device_id, plist_t result, int64_t now)
{
    plist_t q = NULL;
    struct store_device_facts f;
    struct scepter_error err;

    if (plistx_get_dict(result, "QueryResponses", false, &q, &err) != 0)
        return;
    memset(&f, 0, sizeof(f));
    if (plistx_get_string(q, "SerialNumber", false, &f.serial_number, &err) < 0 ||
        plistx_get_string(q, "DeviceName", false, &f.device_name, &err) < 0 ||
        plistx_get_string(q, "Model", false, &f.model, &err) < 0 ||
        plistx_get_string(q, "ModelName", false, &f.model_name, &err) < 0 ||
        plistx_get_string(q, "ProductName", false, &f.product_name, &err) < 0 ||
        plistx_get_string(q, "OSVersion", false, &f.os_version, &err) < 0 ||
        plistx_get_string(q, "BuildVersion", false, &f.build_version, &err) < 0) {
        log_kv(LOG_LVL_WARN, "device_info", "device", device_id, "msg", err.msg, NULL);
        return;
    }
    f.platform = store_platform_guess(f.product_name, f.model, f.model_name);
    if (store_device_update_facts(ctx->store, device_id, &f, now, &err) < 0)
        log_kv(LOG_LVL_WARN, "device_info", "device", device_id, "msg", err.msg, NULL);
    else if (f.os_version != NULL && ddm_capable(f.platform, f.os_version))
        mdm_policy_os_reported(ctx, device_id, now); /* an upgrade moves profiles to DDM */
}

/* A refusal from the store (rc < 0) answered; false when there is none. */
static bool refused(const char *req_id, const char *device_id, const char *cert_hash, int rc,
                    const struct scepter_error *err, struct mdm_reply *reply)
{
    if (rc == SCEPTER_EFORBIDDEN) {
        log_kv(LOG_LVL_WARN, "identity_mismatch", "req", req_id, "device", device_id, "cert",
               cert_hash, "msg", err->msg, NULL);
        mdm_reply_error(reply, 403, "connect: %s", err->msg);
        return true;
    }
    if (rc == SCEPTER_ENOTFOUND) {
        mdm_reply_unrecognized(reply, err->msg);
        return true;
    }
    if (rc < 0) {
        mdm_reply_error(reply, 503, "connect: %s", err->msg);
        return true;
    }
    return false;
}

/* The next command (rc == 1) or an empty 200; the enrollment was seen. */
static void answer_next(struct mdm_ctx *ctx, const char *enrollment_id, int rc,
                        const struct store_next *next, struct mdm_reply *reply)
{
    if (rc == 1) {
        mdm_metrics_command(ctx->srv, MDM_CMD_DELIVERED, next->request_type, 1);
        mdm_reply_plist(reply, (const char *)next->plist, next->plist_len);
        str_copy(reply->command_uuid, sizeof(reply->command_uuid), next->uuid);
    } else {
        mdm_reply_empty(reply);
    }
    mdm_touch(ctx, enrollment_id);
}

void mdm_idle_answer(struct mdm_ctx *ctx, const char *req_id, const char *enrollment_id,
                     const char *device_id, const char *cert_hash, int rc,
                     const struct scepter_error *err, const struct store_next *next, int64_t now,
                     struct mdm_reply *reply)
{
    struct store_next again;
    struct scepter_error e2;

    reply->event = "connect";
    reply->message_type = store_status_name(STORE_STATUS_IDLE);
    str_copy(reply->enrollment, sizeof(reply->enrollment), enrollment_id);
    memset(&again, 0, sizeof(again));
    /* A batched poll with a certificate bound to nothing: the device's renewed identity when
     * its renewal is outstanding (notAfter from what the store knows); then the poll again. */
    if (rc == SCEPTER_EFORBIDDEN && cert_hash &&
        mdm_renewal_bind(ctx, device_id, cert_hash, 0, now, &e2) == 0) {
        struct store_report rep = {.enrollment_id = enrollment_id,
                                   .device_id = device_id,
                                   .cert_hash = cert_hash,
                                   .status = STORE_STATUS_IDLE};
        enum store_report_outcome outcome;
        rc = store_connect(ctx->store, &rep, now, &again, &outcome, &e2);
        err = &e2;
        next = &again;
    }
    if (!refused(req_id, device_id, cert_hash, rc, err, reply)) {
        answer_next(ctx, enrollment_id, rc, next, reply);
        if (ctx->cfg->webhook_idle_events)
            mdm_webhook_idle(ctx, enrollment_id, device_id, now);
    }
    store_next_clear(&again);
}

/*
 * The store refused the certificate (rc): when it is bound to nothing and the device has an
 * identity renewal outstanding, it is the renewed identity — bind it (mdm_renewal_bind) and
 * say so, so the exchange is tried once more.
 */
static bool renewed(struct mdm_ctx *ctx, const struct mdm_ids *ids,
                    const struct mdm_identity *identity, int rc, int64_t now)
{
    struct scepter_error err;

    if (rc != SCEPTER_EFORBIDDEN || identity->cert == NULL)
        return false;
    return mdm_renewal_bind(ctx, ids->device_id, identity->hash,
                            mdm_identity_not_after(identity->cert), now, &err) == 0;
}

void mdm_report_clear(struct mdm_report *r)
{
    if (r == NULL)
        return;
    plist_free(r->body);
    free(r->raw_copy);
    free(r->chain);
    memset(r, 0, sizeof(*r));
}

void mdm_report_store(const struct mdm_report *r, struct store_report *out)
{
    memset(out, 0, sizeof(*out));
    out->enrollment_id = r->ids.enrollment_id;
    out->device_id = r->ids.device_id;
    out->cert_hash = r->hash[0] ? r->hash : NULL;
    out->status = r->status;
    out->command_uuid = r->uuid;
    out->raw = r->raw;
    out->raw_len = r->raw_len;
    out->error_chain_json = r->chain;
}

/* A channel of the device itself (not a user's): the device's facts and its Setup Assistant
 * state belong to it. */
static bool device_channel(const struct mdm_ids *ids)
{
    return ids->type != STORE_ENROLL_USER && ids->type != STORE_ENROLL_SHARED_IPAD_USER &&
           ids->type != STORE_ENROLL_USER_ENROLLMENT_USER;
}

/*
 * What follows a stored report (rc, err, outcome and next from the store; reported_type the
 * reported command's RequestType as queued, NULL when the store did not say): the refusal, or
 * metrics, facts, DeviceConfigured, the webhook and the next command.
 */
static void report_done(struct mdm_ctx *ctx, const struct mdm_report *r, int rc,
                        const struct scepter_error *err, enum store_report_outcome outcome,
                        const char *reported_type, const struct store_next *next, int64_t now,
                        struct mdm_reply *reply)
{
    const char *hash = r->hash[0] ? r->hash : NULL;

    if (refused(r->req_id, r->ids.device_id, hash, rc, err, reply))
        return;
    if (outcome == STORE_REPORT_UNKNOWN_COMMAND)
        log_kv(LOG_LVL_WARN, "result_ignored", "req", r->req_id, "enrollment", r->ids.enrollment_id,
               "command", r->uuid, "status", r->status_name, "msg",
               "no such command queued for this enrollment (cancelled?); not stored", NULL);
    else if (outcome == STORE_REPORT_RECORDED && r->status == STORE_STATUS_ACKNOWLEDGED &&
             device_channel(&r->ids))
        update_facts(ctx, r->ids.device_id, r->body, now);
    if (outcome == STORE_REPORT_RECORDED) {
        const char *rt = NULL;
        struct scepter_error ignore;
        enum mdm_command_event ev = r->status == STORE_STATUS_ACKNOWLEDGED ? MDM_CMD_ACKNOWLEDGED
                                    : r->status == STORE_STATUS_NOTNOW     ? MDM_CMD_NOTNOW
                                                                           : MDM_CMD_ERRORED;
        if (plistx_get_string(r->body, "RequestType", false, &rt, &ignore) != 0)
            rt = NULL; /* devices before iOS 17 do not echo it */
        mdm_metrics_command(ctx->srv, ev, rt, 1);
        /* DeviceConfigured acknowledged: Setup Assistant goes on, the device no longer awaits
         * configuration.  Devices before iOS 17 name no RequestType: then the queued command's
         * type decides when the store said it, else the store checks it. */
        if (rt == NULL)
            rt = reported_type;
        if (r->status == STORE_STATUS_ACKNOWLEDGED && device_channel(&r->ids) &&
            (rt == NULL || strcmp(rt, "DeviceConfigured") == 0)) {
            bool cleared = false;
            struct scepter_error e2;
            if (store_device_configured(ctx->store, r->ids.enrollment_id, r->uuid, &cleared, &e2) <
                0)
                log_kv(LOG_LVL_WARN, "device_configured", "enrollment", r->ids.enrollment_id, "msg",
                       e2.msg, NULL);
            else if (cleared)
                log_kv(LOG_LVL_INFO, "device_configured", "enrollment", r->ids.enrollment_id, NULL);
        }
        mdm_webhook_result(ctx, &r->ids, r->status_name, r->uuid, r->raw, r->raw_len, now);
    }
    answer_next(ctx, r->ids.enrollment_id, rc, next, reply);
}

static void report_reply_init(const struct mdm_report *r, struct mdm_reply *reply)
{
    reply->event = "connect";
    reply->message_type = store_status_name(r->status);
    str_copy(reply->enrollment, sizeof(reply->enrollment), r->ids.enrollment_id);
    str_copy(reply->command_uuid, sizeof(reply->command_uuid), r->uuid);
}

void mdm_report_answer(struct mdm_ctx *ctx, const struct mdm_report *r,
                       const struct store_answer *a, int64_t now, struct mdm_reply *reply)
{
    struct store_next again;
    struct store_report rep;
    struct scepter_error e2;
    enum store_report_outcome outcome;

    report_reply_init(r, reply);
    /* A certificate bound to nothing: the device's renewed identity when its renewal is
     * outstanding (notAfter from what the store knows); then the report again, alone. */
    if (a->rc == SCEPTER_EFORBIDDEN && r->hash[0] &&
        mdm_renewal_bind(ctx, r->ids.device_id, r->hash, 0, now, &e2) == 0) {
        int rc;
        memset(&again, 0, sizeof(again));
        mdm_report_store(r, &rep);
        rc = store_connect(ctx->store, &rep, now, &again, &outcome, &e2);
        report_done(ctx, r, rc, &e2, outcome, NULL, &again, now, reply);
        store_next_clear(&again);
        return;
    }
    report_done(ctx, r, a->rc, &a->err, a->outcome, a->reported_type, &a->next, now, reply);
}

void mdm_command_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply)
{
    struct scepter_error err;
    struct mdm_identity identity;
    struct mdm_ids ids;
    struct mdm_report r;
    struct store_report rep;
    struct store_next next;
    enum store_report_outcome outcome = STORE_REPORT_IDLE;
    plist_t body = NULL;
    const char *status = NULL, *uuid = NULL;
    int st, rc;

    memset(&identity, 0, sizeof(identity));
    memset(&next, 0, sizeof(next));
    memset(&r, 0, sizeof(r));
    reply->event = "connect";
    if (req->method != MDM_PUT) {
        mdm_reply_error(reply, 405, "connect: method must be PUT");
        mdm_reply_header(reply, "Allow", "PUT");
        return;
    }
    if (!mdm_content_type_is(mdm_header(req, "Content-Type"), "application/x-apple-aspen-mdm")) {
        mdm_reply_error(reply, 415, "connect: Content-Type must be application/x-apple-aspen-mdm");
        return;
    }
    /* The identity first (connection certificate, proxy header, or an Mdm-Signature verified
     * over the raw bytes): the body is parsed only for a verified device.  store_connect then
     * checks that the certificate is bound to the device the body names. */
    if (mdm_identity_get(&ctx->conf->idcfg, req, now, &identity, &err) != 0) {
        log_kv(LOG_LVL_WARN, "identity_refused", "req", req->id, "peer", req->peer_addr, "msg",
               err.msg, NULL);
        mdm_reply_error(reply, 403, "connect: %s", err.msg);
        return;
    }
    if (plistx_parse_dict(req->body, req->body_len, &body, &err) != 0) {
        mdm_reply_error(reply, 400, "connect: %s", err.msg);
        goto out;
    }
    if (plistx_get_string(body, "Status", true, &status, &err) < 0) {
        mdm_reply_error(reply, 400, "connect: %s", err.msg);
        goto out;
    }
    if ((st = store_status_parse(status)) < 0) {
        mdm_reply_error(reply, 400, "connect: unknown Status '%.64s'", status);
        goto out;
    }
    reply->message_type = store_status_name((enum store_status)st);
    if (mdm_ids_from_plist(body, &ids, &err) != 0) {
        mdm_reply_error(reply, 400, "connect: %s", err.msg);
        goto out;
    }
    str_copy(reply->enrollment, sizeof(reply->enrollment), ids.enrollment_id);
    if (st == STORE_STATUS_IDLE) {
        memset(&rep, 0, sizeof(rep));
        rep.enrollment_id = ids.enrollment_id;
        rep.device_id = ids.device_id;
        rep.cert_hash = identity.hash;
        rep.status = STORE_STATUS_IDLE;
        if (req->defer_idle &&
            req->defer_idle(req, ids.enrollment_id, ids.device_id, identity.hash) == 0) {
            reply->status = MDM_REPLY_DEFERRED;
            goto out;
        }
        rc = store_connect(ctx->store, &rep, now, &next, &outcome, &err);
        if (renewed(ctx, &ids, &identity, rc, now))
            rc = store_connect(ctx->store, &rep, now, &next, &outcome, &err);
        mdm_idle_answer(ctx, req->id, ids.enrollment_id, ids.device_id, identity.hash, rc, &err,
                        &next, now, reply);
        goto out;
    }

    if (plistx_get_string(body, "CommandUUID", true, &uuid, &err) < 0) {
        mdm_reply_error(reply, 400, "connect: %s: %s", status, err.msg);
        goto out;
    }
    if (*uuid == '\0' || strlen(uuid) > LIMIT_COMMAND_UUID) {
        mdm_reply_error(reply, 400, "connect: CommandUUID: empty or too long");
        goto out;
    }
    str_copy(reply->command_uuid, sizeof(reply->command_uuid), uuid);
    /* Checked before the store sees them: a report the database would refuse must not fail
     * the batch it is stored with. */
    if (!str_utf8_valid(uuid)) {
        mdm_reply_error(reply, 400, "connect: CommandUUID: not valid UTF-8");
        goto out;
    }
    if (!str_utf8_valid(ids.enrollment_id)) {
        mdm_reply_error(reply, 400, "connect: %s: not valid UTF-8",
                        ids.type == STORE_ENROLL_DEVICE ? "UDID" : "enrollment identifier");
        goto out;
    }
    err.msg[0] = '\0';
    r.chain = mdm_error_chain_json(body, &err);
    if (r.chain == NULL && err.msg[0] != '\0') {
        mdm_reply_error(reply, 400, "connect: %s", err.msg);
        goto out;
    }
    str_copy(r.req_id, sizeof(r.req_id), req->id);
    r.ids = ids;
    r.body = body;
    body = NULL; /* the report's now */
    r.raw = req->body;
    r.raw_len = req->body_len;
    r.status = (enum store_status)st;
    r.status_name = status;
    r.uuid = uuid;
    str_copy(r.hash, sizeof(r.hash), identity.hash);
    if (req->defer_report && req->defer_report(req, &r) == 0) {
        memset(&r, 0, sizeof(r)); /* the HTTP layer owns it */
        reply->status = MDM_REPLY_DEFERRED;
        goto out;
    }
    mdm_report_store(&r, &rep);
    rc = store_connect(ctx->store, &rep, now, &next, &outcome, &err);
    if (renewed(ctx, &ids, &identity, rc, now))
        rc = store_connect(ctx->store, &rep, now, &next, &outcome, &err);
    report_reply_init(&r, reply);
    report_done(ctx, &r, rc, &err, outcome, NULL, &next, now, reply);
out:
    store_next_clear(&next);
    mdm_identity_clear(&identity);
    mdm_report_clear(&r);
    plist_free(body);
}
