/*
 * Webhooks: events (Authenticate, TokenUpdate, CheckOut, command results) posted as JSON to
 * webhook_url, in the shape MicroMDM and NanoMDM use
 * (github.com/micromdm/nanomdm, service/webhook/testdata/):
 *
 *   {"topic": "mdm.Authenticate", "event_id": "...", "created_at": "...",
 *    "checkin_event": {"udid": "...", "ids": {"id": "...", "type": "Device"},
 *                      "raw_payload": "<base64 of the device's plist>"}}
 *   {"topic": "mdm.Connect", ..., "acknowledge_event": {"udid", "ids", "status",
 *                      "command_uuid", "raw_payload"}}
 *
 * Events go into the store's outbox in the request that caused them, and a background job
 * (one instance at a time, store_lease) delivers them with an X-Scepter-Signature header
 * (sha256=<hex HMAC-SHA256 of the body with webhook_secret>).  A receiver that fails or is
 * down gets the event again later, with exponential back-off and jitter: nothing is lost.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/metrics_int.h"
#include "mdm/server_int.h"
#include "mdm/webhook_int.h"

static const char *ids_type(enum store_enroll_type t)
{
    switch (t) {
    case STORE_ENROLL_USER_ENROLLMENT:
        return "User Enrollment (Device)";
    case STORE_ENROLL_USER:
        return "User";
    case STORE_ENROLL_USER_ENROLLMENT_USER:
        return "User Enrollment";
    case STORE_ENROLL_SHARED_IPAD_USER:
        return "Shared iPad";
    default:
        return "Device";
    }
}

static void emit(struct mdm_ctx *ctx, const char *topic, const char *key, json_t *event,
                 int64_t now)
{
    char url[1024], id[UUID_STR_LEN];
    struct scepter_error err;
    json_t *env;
    char *body;

    mdm_live_get(ctx->srv, MDM_LIVE_WEBHOOK_URL, url, sizeof(url));
    if (*url == '\0') {
        json_decref(event);
        return;
    }
    uuid_new_lower(id);
    env = json_pack("{s:s,s:s,s:o,s:o}", "topic", topic, "event_id", id, "created_at",
                    api_time(now), key, event);
    body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (body == NULL)
        return;
    if (store_outbox_add(ctx->store, "webhook", body, now, &err) != 0)
        log_warnx("webhook: event %s not queued: %s", topic, err.msg);
    free(body); /* jansson's allocation */
}

void mdm_webhook_checkin(struct mdm_ctx *ctx, const char *message_type, const struct mdm_ids *ids,
                         const void *raw, size_t raw_len, int64_t now)
{
    char topic[64];
    char *b64;
    json_t *ev;

    snprintf(topic, sizeof(topic), "mdm.%s", message_type);
    b64 = base64_encode(raw, raw_len);
    ev = json_pack("{s:s,s:{s:s,s:s},s:s}", "udid", ids->device_id, "ids", "id", ids->enrollment_id,
                   "type", ids_type(ids->type), "raw_payload", b64);
    if (ids->type == STORE_ENROLL_USER_ENROLLMENT)
        json_object_set_new(ev, "enrollment_id", json_string(ids->device_id));
    free(b64);
    emit(ctx, topic, "checkin_event", ev, now);
}

void mdm_webhook_result(struct mdm_ctx *ctx, const struct mdm_ids *ids, const char *status,
                        const char *command_uuid, const void *raw, size_t raw_len, int64_t now)
{
    char *b64 = base64_encode(raw, raw_len);
    json_t *ev = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:s}", "udid", ids->device_id, "ids", "id",
                           ids->enrollment_id, "type", ids_type(ids->type), "status", status,
                           "command_uuid", command_uuid, "raw_payload", b64);
    free(b64);
    emit(ctx, "mdm.Connect", "acknowledge_event", ev, now);
}

void mdm_webhook_event(struct mdm_ctx *ctx, const char *topic, json_t *event, int64_t now)
{
    emit(ctx, topic, "event", event, now);
}

/* sha256=<hex> of the body keyed with the secret. */
#define SIG_LEN (7 + 2 * EVP_MAX_MD_SIZE + 1)

static void signature(const char *secret, const char *body, char out[SIG_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), md,
         &len);
    hex_encode_to(md, len, hex, false);
    snprintf(out, SIG_LEN, "sha256=%s", hex);
}

/* Back-off after `attempts` failures: 2^attempts seconds, at most an hour, with jitter. */
static int64_t backoff(int attempts)
{
    int64_t base = attempts >= 12 ? 3600 : (int64_t)1 << attempts;
    unsigned char r;

    if (base > 3600)
        base = 3600;
    RAND_bytes(&r, 1);
    return base / 2 + (base * r) / 512 + 1;
}

static void deliver_run(struct mdm_runtime *rt, int64_t now)
{
    struct store_outbox_item *items = NULL;
    struct scepter_error err;
    struct httpc_opts opts = {.timeout_ms = 5000};
    char url[1024], secret[512];
    size_t n = 0;

    mdm_live_get(rt->srv, MDM_LIVE_WEBHOOK_URL, url, sizeof(url));
    if (*url == '\0')
        return;
    mdm_live_get(rt->srv, MDM_LIVE_WEBHOOK_SECRET, secret, sizeof(secret));
    /* Bounded per run so shutdown is never far away. */
    if (store_outbox_claim(rt->store, now, 120, 50, &items, &n, &err) != 0) {
        log_warnx("webhook: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n && !rt->stopping; i++) {
        struct httpc_response resp;
        char sig[SIG_LEN], *headers;
        json_t *env = json_loads(items[i].body, 0, NULL);
        const char *topic = env ? json_string_value(json_object_get(env, "topic")) : NULL;
        int rc;

        signature(secret, items[i].body, sig);
        headers = xasprintf("Content-Type: application/json\r\nX-Scepter-Signature: %s\r\n"
                            "X-Scepter-Event: %s\r\n",
                            sig, topic ? topic : "");
        json_decref(env);
        rc = httpc_request(url, "POST", headers, items[i].body, strlen(items[i].body), &opts, &resp,
                           &err);
        free(headers);
        if (rc == 0 && resp.status >= 200 && resp.status < 300) {
            if (store_outbox_done(rt->store, items[i].id, &err) != 0)
                log_warnx("webhook: delivered but not marked done: %s", err.msg);
            mdm_metrics_webhook(rt->srv, true);
        } else {
            char why[300];
            if (rc == 0)
                snprintf(why, sizeof(why), "HTTP %d", resp.status);
            else
                str_copy(why, sizeof(why), err.msg);
            /* attempts counts this one (the claim counted it) */
            int64_t next = now + backoff(items[i].attempts);
            if (store_outbox_retry(rt->store, items[i].id, next, why, &err) != 0)
                log_warnx("webhook: %s", err.msg);
            log_kv(LOG_LVL_WARN, "webhook_failed", "error", why, NULL);
            mdm_metrics_webhook(rt->srv, false);
            httpc_response_clear(&resp);
            /* The receiver is unhappy: the rest of this batch waits as long (in order), instead
             * of sitting out the claim's lease. */
            for (size_t k = i + 1; k < n; k++)
                if (store_outbox_retry(rt->store, items[k].id, next,
                                       "not attempted: the "
                                       "receiver was failing",
                                       &err) != 0)
                    log_warnx("webhook: %s", err.msg);
            break;
        }
        httpc_response_clear(&resp);
    }
    store_outbox_items_free(items, n);
}

void mdm_webhook_start(struct mdm_runtime *rt)
{
    mdm_jobs_add(rt, "webhook", 1, deliver_run);
}
