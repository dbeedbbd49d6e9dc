/*
 * The operator API's security routes: who may talk as a device and who may enroll.
 *
 *   DELETE /v1/devices/{udid}                 remove a device (identities revoked, queue
 *                                             cancelled, tokens wiped; history kept)
 *   POST   /v1/devices/{udid}/reenroll        let a new identity replace the enrolled one for
 *                                             a while (a wiped Mac), {"for": "1h"}
 *   POST   /v1/certificates/{sha256}/revoke   revoke a device certificate by fingerprint
 *   GET    /v1/revocations                    revoked certificates (?udid=, ?limit=)
 *   GET    /v1/enrollment-tokens, POST        tokens for /mdm/enroll?token= (shown once)
 *   DELETE /v1/enrollment-tokens/{id}
 *   GET    /v1/events                         security events (?udid=, ?kind=, ?before=,
 *                                             ?limit=), newest first
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"

/* Re-enrollment windows longer than this are refused: an open window is an open door. */
#define REENROLL_MAX_SECONDS (7 * 86400)
#define EVENTS_MAX_LIMIT     1000

/* A duration from a JSON member: "1h" / "7d" or a number of seconds.  def when absent. */
static int json_duration(json_t *body, const char *key, int64_t def, int64_t *out,
                         struct scepter_error *err)
{
    json_t *v = body ? json_object_get(body, key) : NULL;

    *out = def;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && str_to_duration(json_string_value(v), out) == 0)
        return 0;
    return scepter_err(err, SCEPTER_EINVAL, key,
                       "%s: want a duration such as \"1h\", \"7d\" or a number of seconds", key);
}

void api_device_remove(struct api_call *c)
{
    const char *udid = c->seg[1];
    struct store_removal rm;
    struct scepter_error err;
    char n1[24], n2[24];

    if (store_device_remove(c->ctx->store, udid, c->now, &rm, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    mdm_caches_invalidate(c->ctx->srv);
    snprintf(n1, sizeof(n1), "%lld", (long long)rm.certificates);
    snprintf(n2, sizeof(n2), "%lld", (long long)rm.cancelled);
    log_kv(LOG_LVL_INFO, "device_removed", "device", udid, "certificates", n1, "cancelled", n2,
           NULL);
    mdm_security_event(c->ctx, MDM_SEC_DEVICE_REMOVED, "device.removed", udid,
                       json_pack("{s:s,s:I,s:I}", "udid", udid, "certificates_revoked",
                                 (json_int_t)rm.certificates, "commands_cancelled",
                                 (json_int_t)rm.cancelled),
                       c->now);
    api_reply_json(c, 200,
                   json_pack("{s:s,s:b,s:I,s:I}", "udid", udid, "removed", 1,
                             "certificates_revoked", (json_int_t)rm.certificates,
                             "commands_cancelled", (json_int_t)rm.cancelled));
}

void api_device_reenroll(struct api_call *c)
{
    const char *udid = c->seg[1];
    static const char *const keys[] = {"for", NULL};
    struct scepter_error err;
    int64_t secs;

    if ((c->body && jsonx_only_keys(c->body, keys, "", &err) != 0) ||
        json_duration(c->body, "for", 3600, &secs, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (secs < 60 || secs > REENROLL_MAX_SECONDS) {
        api_reply_error(c, 400, "for", "for: between 1 minute and 7 days");
        return;
    }
    if (store_device_allow_reenroll(c->ctx->store, udid, c->now + secs, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "reenroll_allowed", "device", udid, NULL);
    api_reply_json(c, 200,
                   json_pack("{s:s,s:o}", "udid", udid, "reenroll_until", api_time(c->now + secs)));
}

void api_cert_revoke(struct api_call *c)
{
    const char *sha256 = c->seg[1];
    static const char *const keys[] = {"reason", NULL};
    const char *note = NULL;
    struct scepter_error err;
    char *device = NULL;
    int rc;

    if (c->body && (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
                    jsonx_get_string(c->body, "reason", "", false, &note, &err) < 0)) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (note && strlen(note) > 200) {
        api_reply_error(c, 400, "reason", "reason: at most 200 characters");
        return;
    }
    rc = store_cert_revoke(c->ctx->store, sha256, "revoked", c->now, &device, &err);
    if (rc < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    /* Every worker drops the identities it verified before its next request. */
    mdm_caches_invalidate(c->ctx->srv);
    if (rc == 0) {
        log_kv(LOG_LVL_INFO, "certificate_revoked", "cert", sha256, "device", device, NULL);
        mdm_security_event(
            c->ctx, MDM_SEC_CERT_REVOKED, "certificate.revoked", device,
            json_pack("{s:s,s:s?,s:s?}", "cert_sha256", sha256, "udid", device, "reason", note),
            c->now);
    }
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s?,s:b}", "cert_sha256", sha256, "udid", device,
                             "already_revoked", rc == 1));
    free(device);
}

/* ?limit=N within [1, max]; def when absent.  false (reply set) when malformed. */
static bool limit_query(struct api_call *c, size_t def, size_t max, size_t *out)
{
    char *v = api_query(c, "limit");
    int64_t n = (int64_t)def;
    bool ok = v == NULL || str_to_i64(v, 1, (int64_t)max, &n) == 0;

    if (!ok)
        api_reply_error(c, 400, "limit", "limit: a number from 1 to %zu", max);
    free(v);
    *out = (size_t)n;
    return ok;
}

void api_revocations(struct api_call *c)
{
    struct store_revocation *v = NULL;
    struct scepter_error err;
    char *udid = api_query(c, "udid");
    size_t n = 0, limit;
    json_t *arr;

    if (!limit_query(c, 100, EVENTS_MAX_LIMIT, &limit))
        goto out;
    if (store_revocations_list(c->ctx->store, udid, limit, &v, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s?,s:s,s:o}", "cert_sha256", v[i].cert_hash,
                                             "udid", v[i].device_id, "reason", v[i].reason,
                                             "revoked_at", api_time(v[i].revoked_at)));
    store_revocations_free(v, n);
    api_reply_json(c, 200, json_pack("{s:o}", "revocations", arr));
out:
    free(udid);
}

static json_t *token_json(const struct store_enroll_token *t)
{
    return json_pack("{s:I,s:s?,s:I,s:I,s:o,s:o,s:o}", "id", (json_int_t)t->id, "note", t->note,
                     "uses", (json_int_t)t->uses_total, "used", (json_int_t)t->uses, "expires_at",
                     api_time(t->expires), "created", api_time(t->created), "last_used",
                     api_time(t->last_used));
}

void api_enroll_token_create(struct api_call *c)
{
    static const char *const keys[] = {"uses", "expires_in", "note", NULL};
    const char *note = NULL;
    struct scepter_error err;
    unsigned char raw[24], md[CRYPTO_SHA256_LEN];
    char hex[CRYPTO_SHA256_HEX_LEN], *token, *rawhex;
    int64_t uses = 1, expires_in = 0, id = 0;
    struct store_enroll_token t;

    if ((c->body && (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
                     jsonx_get_int(c->body, "uses", "", false, &uses, &err) < 0 ||
                     jsonx_get_string(c->body, "note", "", false, &note, &err) < 0)) ||
        json_duration(c->body, "expires_in", 7 * 86400, &expires_in, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (uses < 0 || uses > 1000000) {
        api_reply_error(c, 400, "uses", "uses: 1 to 1,000,000 (0 = unlimited until it expires)");
        return;
    }
    if (expires_in < 60) {
        api_reply_error(c, 400, "expires_in", "expires_in: at least one minute");
        return;
    }
    RAND_bytes(raw, sizeof(raw));
    rawhex = hex_encode(raw, sizeof(raw), false);
    token = xasprintf("set_%s", rawhex);
    free(rawhex);
    crypto_sha256(token, strlen(token), md);
    hex_encode_to(md, sizeof(md), hex, false);
    if (store_enroll_token_create(c->ctx->store, hex, note, uses, c->now + expires_in, c->now, &id,
                                  &err) != 0) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        api_reply_scepter_error(c, &err);
        return;
    }
    memset(&t, 0, sizeof(t));
    t.id = id;
    t.note = (char *)note;
    t.uses_total = uses;
    t.expires = c->now + expires_in;
    t.created = c->now;
    json_t *j = token_json(&t);
    json_object_set_new(j, "token", json_string(token));
    json_object_set_new(j, "shown_once", json_true()); /* only its hash is stored */
    {
        char idtext[24];
        snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
        log_kv(LOG_LVL_INFO, "enroll_token_created", "id", idtext, NULL);
    }
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    api_reply_json(c, 201, j);
}

void api_enroll_tokens_list(struct api_call *c)
{
    struct store_enroll_token *t = NULL;
    struct scepter_error err;
    size_t n = 0;
    json_t *arr;

    if (store_enroll_token_list(c->ctx->store, &t, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, token_json(&t[i]));
    store_enroll_tokens_free(t, n);
    api_reply_json(
        c, 200,
        json_pack("{s:o,s:b}", "enrollment_tokens", arr, "accepted", c->ctx->cfg->enroll_tokens));
}

void api_enroll_token_delete(struct api_call *c)
{
    const char *id_text = c->seg[1];
    struct scepter_error err;
    int64_t id;

    if (str_to_i64(id_text, 1, INT64_MAX, &id) != 0) {
        api_reply_error(c, 404, "id", "no enrollment token %s", id_text);
        return;
    }
    if (store_enroll_token_delete(c->ctx->store, id, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    api_reply_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1));
}

void api_events(struct api_call *c)
{
    struct store_event_filter f;
    struct store_event *v = NULL;
    struct scepter_error err;
    char *udid = api_query(c, "udid"), *kind = api_query(c, "kind"),
         *before = api_query(c, "before");
    size_t n = 0;
    json_t *arr;

    memset(&f, 0, sizeof(f));
    f.device_id = udid;
    f.kind = kind;
    if (before && str_to_i64(before, 1, INT64_MAX, &f.before_id) != 0) {
        api_reply_error(c, 400, "before", "before: an event id");
        goto out;
    }
    if (!limit_query(c, 100, EVENTS_MAX_LIMIT, &f.limit))
        goto out;
    if (store_event_list(c->ctx->store, &f, &v, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *detail = json_loads(v[i].detail, 0, &jerr);
        json_array_append_new(arr, json_pack("{s:I,s:s,s:s?,s:o,s:o}", "id", (json_int_t)v[i].id,
                                             "kind", v[i].kind, "udid", v[i].device_id, "detail",
                                             detail ? detail : json_object(), "created",
                                             api_time(v[i].created)));
    }
    store_events_free(v, n);
    api_reply_json(c, 200, json_pack("{s:o}", "events", arr));
out:
    free(udid);
    free(kind);
    free(before);
}
