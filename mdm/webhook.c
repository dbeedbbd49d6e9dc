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
 * mdm.TokenUpdate's checkin_event adds NanoMDM's "token_update_tally": 1 on the channel's
 * first TokenUpdate (the enrollment is complete: what consumers act on), "first_token_update"
 * and "awaiting_configuration" (Setup Assistant waits for DeviceConfigured).  With
 * webhook_idle_events = true every answered Idle poll is an mdm.Connect with status "Idle"
 * (NanoMDM sends those; off by default: one event per poll).
 *
 * Events go into the store's outbox in the request that caused them, and a background job
 * (one instance at a time, store_lease) delivers them with an X-Scepter-Signature header
 * (sha256=<hex HMAC-SHA256 of the body with webhook_secret>).  A receiver that fails or is
 * down gets the event again later, with exponential back-off and jitter.  An event whose
 * delivery failed webhook_max_attempts times — counted when claimed, one event at a time just
 * before it is sent, so an event that took the process down counts too and cannot crash it
 * after every restart — becomes a dead letter:
 * kept, not retried, visible in /metrics and GET /v1/webhooks/dead-letters until an operator
 * retries or drops it.  One delivery is bounded by webhook_timeout in all, and the response
 * goes through httpc's strict parser.
 *
 * Device secrets in raw payloads (BootstrapToken, UnlockToken, ActivationLockBypassCode, the
 * push Token and PushMagic...) are replaced by "REDACTED" and named in the event's
 * redacted_keys, unless webhook_include_secrets = true.
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
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
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

/* Keys whose values are device secrets, wherever they appear in a payload (any depth). */
static const char *const secret_keys[] = {
    "BootstrapToken", "UnlockToken", "ActivationLockBypassCode",
    "Token",          "PushMagic",   "EscrowKey",
    "DigestResponse", "Password",    "NewPassword",
    "OldPassword",    "PIN",         "RecoveryKey",
};

static bool is_secret_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(secret_keys); i++)
        if (strcmp(key, secret_keys[i]) == 0)
            return true;
    return false;
}

static void note_redacted(json_t *redacted, const char *key)
{
    size_t i;
    json_t *v;

    json_array_foreach(redacted, i, v) if (strcmp(json_string_value(v), key) == 0) return;
    json_array_append_new(redacted, json_string(key));
}

/* Replace secret values under node by "REDACTED" (bounded depth: plists from devices are
 * shallow, and the parser already refused anything absurd). */
static void redact_node(plist_t node, json_t *redacted, int depth)
{
    if (depth > 32)
        return;
    if (plist_get_node_type(node) == PLIST_ARRAY) {
        for (uint32_t i = 0; i < plist_array_get_size(node); i++)
            redact_node(plist_array_get_item(node, i), redacted, depth + 1);
        return;
    }
    if (plist_get_node_type(node) != PLIST_DICT)
        return;
    plist_dict_iter it = NULL;
    char *key = NULL;
    plist_t val = NULL;
    json_t *hits = json_array();
    size_t i;
    json_t *k;

    plist_dict_new_iter(node, &it);
    for (;;) {
        plist_dict_next_item(node, it, &key, &val);
        if (val == NULL)
            break;
        if (is_secret_key(key))
            json_array_append_new(hits, json_string(key));
        else
            redact_node(val, redacted, depth + 1);
        free(key);
        key = NULL;
    }
    free(it);
    /* replaced after the walk: the iterator must not see the dict change */
    json_array_foreach(hits, i, k)
    {
        plist_dict_set_item(node, json_string_value(k), plist_new_string("REDACTED"));
        note_redacted(redacted, json_string_value(k));
    }
    json_decref(hits);
}

/*
 * The raw_payload of an event: base64 of the device's plist, with secrets redacted unless
 * webhook_include_secrets.  Redacted key names go to ev's redacted_keys.
 */
static void set_payload(struct mdm_ctx *ctx, json_t *ev, const void *raw, size_t raw_len)
{
    struct scepter_error err;
    plist_t dict = NULL;
    json_t *redacted;
    char *b64, *xml;
    size_t xml_len = 0;

    if (ctx->cfg && ctx->cfg->webhook_include_secrets) {
        b64 = base64_encode(raw, raw_len);
        json_object_set_new(ev, "raw_payload", json_string(b64));
        free(b64);
        return;
    }
    redacted = json_array();
    if (plistx_parse_dict(raw, raw_len, &dict, &err) != 0) {
        /* Not a plist we can rewrite: send none of it rather than an unredacted copy. */
        json_object_set_new(ev, "raw_payload", json_string(""));
        json_array_append_new(redacted, json_string("raw_payload"));
        json_object_set_new(ev, "redacted_keys", redacted);
        return;
    }
    redact_node(dict, redacted, 0);
    if (json_array_size(redacted) == 0) {
        b64 = base64_encode(raw, raw_len); /* nothing secret: the device's bytes as sent */
    } else {
        xml = plistx_to_xml(dict, &xml_len);
        b64 = base64_encode(xml, xml_len);
        free(xml);
    }
    plist_free(dict);
    json_object_set_new(ev, "raw_payload", json_string(b64));
    free(b64);
    if (json_array_size(redacted))
        json_object_set_new(ev, "redacted_keys", redacted);
    else
        json_decref(redacted);
}

void mdm_webhook_checkin(struct mdm_ctx *ctx, const char *message_type, const struct mdm_ids *ids,
                         const void *raw, size_t raw_len, int64_t now)
{
    char topic[64];
    json_t *ev;

    snprintf(topic, sizeof(topic), "mdm.%s", message_type);
    ev = json_pack("{s:s,s:{s:s,s:s}}", "udid", ids->device_id, "ids", "id", ids->enrollment_id,
                   "type", ids_type(ids->type));
    set_payload(ctx, ev, raw, raw_len);
    if (ids->type == STORE_ENROLL_USER_ENROLLMENT)
        json_object_set_new(ev, "enrollment_id", json_string(ids->device_id));
    emit(ctx, topic, "checkin_event", ev, now);
}

void mdm_webhook_token_update(struct mdm_ctx *ctx, const struct mdm_ids *ids, bool first,
                              bool awaiting_configuration, const void *raw, size_t raw_len,
                              int64_t now)
{
    json_t *ev = json_pack("{s:s,s:{s:s,s:s},s:b,s:b}", "udid", ids->device_id, "ids", "id",
                           ids->enrollment_id, "type", ids_type(ids->type), "first_token_update",
                           first, "awaiting_configuration", awaiting_configuration);
    if (first)
        json_object_set_new(ev, "token_update_tally", json_integer(1));
    set_payload(ctx, ev, raw, raw_len);
    if (ids->type == STORE_ENROLL_USER_ENROLLMENT)
        json_object_set_new(ev, "enrollment_id", json_string(ids->device_id));
    emit(ctx, "mdm.TokenUpdate", "checkin_event", ev, now);
}

void mdm_webhook_idle(struct mdm_ctx *ctx, const char *enrollment_id, const char *device_id,
                      int64_t now)
{
    plist_t d = plist_new_dict();
    size_t len = 0;
    char *xml, *b64;
    json_t *ev;

    /* The Idle report itself is {Status: Idle, UDID (and UserID)}: rebuilt, not kept. */
    plistx_set_string(d, "Status", "Idle");
    plistx_set_string(d, "UDID", device_id);
    xml = plistx_to_xml(d, &len);
    b64 = base64_encode(xml, len);
    ev = json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "udid", device_id, "ids", "id", enrollment_id,
                   "type", strchr(enrollment_id, ':') ? "User" : "Device", "status", "Idle",
                   "raw_payload", b64);
    free(b64);
    free(xml);
    plist_free(d);
    emit(ctx, "mdm.Connect", "acknowledge_event", ev, now);
}

void mdm_webhook_result(struct mdm_ctx *ctx, const struct mdm_ids *ids, const char *status,
                        const char *command_uuid, const void *raw, size_t raw_len, int64_t now)
{
    json_t *ev = json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "udid", ids->device_id, "ids", "id",
                           ids->enrollment_id, "type", ids_type(ids->type), "status", status,
                           "command_uuid", command_uuid);
    set_payload(ctx, ev, raw, raw_len);
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

/* Give up on an event: it becomes a dead letter (kept, not retried). */
static void make_dead(struct mdm_runtime *rt, const struct store_outbox_item *it, int64_t now,
                      const char *why)
{
    struct scepter_error err;
    char id[24], attempts[16];

    if (store_outbox_kill(rt->store, it->id, now, why, &err) != 0) {
        log_warnx("webhook: event %lld not moved to the dead letters: %s", (long long)it->id,
                  err.msg);
        return;
    }
    mdm_metrics_webhook_dead(rt->srv);
    snprintf(id, sizeof(id), "%lld", (long long)it->id);
    snprintf(attempts, sizeof(attempts), "%d", it->attempts);
    log_kv(LOG_LVL_WARN, "webhook_dead_letter", "id", id, "attempts", attempts, "error", why, NULL);
}

/* A run delivers due events one after the other for at most this long (the job runs every
 * second on the main thread's loop, which must stay free for its other jobs and for shutdown).
 * A fixed count per run (50) capped deliveries at 50 events/s: the soak (scripts/soak.sh)
 * produced over 100/s and the outbox grew without end. */
#define DELIVER_RUN_MS 750

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failed delivery the receiver is left alone until then (this process runs the job:
 * the job's lease keeps other instances from running it meanwhile). */
static int64_t receiver_rests_until;

/*
 * One event: claimed alone, so the claim's attempt count is exactly the attempt about to be
 * made, and its lease only has to outlast one delivery (webhook_timeout).  Returns false when
 * the run should stop (nothing due, the receiver failed, the store did).
 */
static bool deliver_one(struct mdm_runtime *rt, int64_t now, const char *url, const char *secret,
                        const struct httpc_opts *opts, int max_attempts)
{
    struct store_outbox_item *items = NULL;
    struct httpc_response resp;
    struct scepter_error err;
    char sig[SIG_LEN], *headers, why[300];
    const char *topic;
    size_t n = 0;
    json_t *env;
    int rc;
    bool go_on = false;

    if (store_outbox_claim(rt->store, now, opts->total_timeout_ms / 1000 + 10, 1, &items, &n,
                           &err) != 0) {
        log_warnx("webhook: %s", err.msg);
        return false;
    }
    if (n == 0)
        return false;
    /* The claim counted this attempt.  More than the maximum: earlier deliveries never
     * finished (the process stopped or crashed during them), so this one is not tried. */
    if (items[0].attempts > max_attempts) {
        snprintf(why, sizeof(why),
                 "given up after %d attempts (the last did not finish: the process stopped "
                 "during delivery)",
                 items[0].attempts - 1);
        make_dead(rt, &items[0], now, why);
        store_outbox_items_free(items, n);
        return true;
    }
    env = json_loads(items[0].body, 0, NULL);
    topic = env ? json_string_value(json_object_get(env, "topic")) : NULL;
    signature(secret, items[0].body, sig);
    headers = xasprintf("Content-Type: application/json\r\nX-Scepter-Signature: %s\r\n"
                        "X-Scepter-Event: %s\r\n",
                        sig, topic ? topic : "");
    json_decref(env);
    rc = httpc_request(url, "POST", headers, items[0].body, strlen(items[0].body), opts, &resp,
                       &err);
    free(headers);
    if (rc == 0 && resp.status >= 200 && resp.status < 300) {
        if (store_outbox_done(rt->store, items[0].id, &err) != 0)
            log_warnx("webhook: delivered but not marked done: %s", err.msg);
        mdm_metrics_webhook(rt->srv, true);
        go_on = true;
    } else {
        int64_t next = now + backoff(items[0].attempts);
        if (rc == 0)
            snprintf(why, sizeof(why), "HTTP %d", resp.status);
        else
            str_copy(why, sizeof(why), err.msg);
        log_kv(LOG_LVL_WARN, "webhook_failed", "error", why, NULL);
        mdm_metrics_webhook(rt->srv, false);
        if (items[0].attempts >= max_attempts)
            make_dead(rt, &items[0], now, why);
        else if (store_outbox_retry(rt->store, items[0].id, next, why, &err) != 0)
            log_warnx("webhook: %s", err.msg);
        /* The receiver is unhappy: the other events wait as long, instead of each being
         * thrown at it in turn. */
        receiver_rests_until = next;
    }
    httpc_response_clear(&resp);
    store_outbox_items_free(items, n);
    return go_on;
}

static void deliver_run(struct mdm_runtime *rt, int64_t now)
{
    struct httpc_opts opts = {.timeout_ms = 5000, .max_body = 64 * 1024};
    char url[1024], secret[512];
    struct mdm_conf *conf = mdm_conf_get(rt->srv);
    int max_attempts = (int)conf->cfg->webhook_max_attempts;

    opts.total_timeout_ms = (int)conf->cfg->webhook_timeout * 1000;
    if (opts.timeout_ms > opts.total_timeout_ms)
        opts.timeout_ms = opts.total_timeout_ms;
    mdm_conf_put(rt->srv, conf);
    if (now < receiver_rests_until)
        return;
    mdm_live_get(rt->srv, MDM_LIVE_WEBHOOK_URL, url, sizeof(url));
    if (*url == '\0')
        return;
    mdm_live_get(rt->srv, MDM_LIVE_WEBHOOK_SECRET, secret, sizeof(secret));
    for (int64_t until = mono_ms() + DELIVER_RUN_MS; mono_ms() < until && !rt->stopping;)
        if (!deliver_one(rt, (int64_t)time(NULL), url, secret, &opts, max_attempts))
            break;
}

void mdm_webhook_start(struct mdm_runtime *rt)
{
    mdm_jobs_add(rt, "webhook", 1, deliver_run);
}
