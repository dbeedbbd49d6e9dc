/*
 * The operator API's webhook routes: the dead letters, events whose delivery failed
 * webhook_max_attempts times (mdm/webhook.c).
 *
 *   GET    /v1/webhooks/dead-letters             the dead letters, newest first (?limit=)
 *   POST   /v1/webhooks/dead-letters/retry       put every dead letter back in the outbox
 *   POST   /v1/webhooks/dead-letters/{id}/retry  put one back (due at once, attempts from 0)
 *   DELETE /v1/webhooks/dead-letters/{id}        drop one
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/str.h"
#include "mdm/api_int.h"

#define DEAD_MAX_LIMIT 1000

void api_webhook_dead_list(struct api_call *c)
{
    struct store_dead_item *v = NULL;
    struct scepter_error err;
    char *lim = api_query(c, "limit");
    int64_t limit = 100;
    size_t n = 0;
    json_t *arr;

    if (lim && str_to_i64(lim, 1, DEAD_MAX_LIMIT, &limit) != 0) {
        api_reply_error(c, 400, "limit", "limit: a number from 1 to %d", DEAD_MAX_LIMIT);
        free(lim);
        return;
    }
    free(lim);
    if (store_outbox_dead_list(c->ctx->store, "webhook", (size_t)limit, &v, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_loads(v[i].body, 0, NULL);
        json_t *topic = ev ? json_object_get(ev, "topic") : NULL;
        json_t *event_id = ev ? json_object_get(ev, "event_id") : NULL;
        json_array_append_new(
            arr, json_pack("{s:I,s:O?,s:O?,s:I,s:s?,s:o,s:o,s:o}", "id", (json_int_t)v[i].id,
                           "topic", json_is_string(topic) ? topic : NULL, "event_id",
                           json_is_string(event_id) ? event_id : NULL, "attempts",
                           (json_int_t)v[i].attempts, "last_error", v[i].last_error, "created",
                           api_time(v[i].created), "dead_at", api_time(v[i].dead_at), "event",
                           ev ? ev : json_null()));
    }
    store_dead_items_free(v, n);
    api_reply_json(c, 200, json_pack("{s:o}", "dead_letters", arr));
}

static void retry(struct api_call *c, int64_t id)
{
    struct scepter_error err;
    int64_t moved = 0;
    char what[24], count[24];

    if (store_outbox_dead_retry(c->ctx->store, "webhook", id, c->now, &moved, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    snprintf(what, sizeof(what), "%lld", (long long)id);
    snprintf(count, sizeof(count), "%lld", (long long)moved);
    log_kv(LOG_LVL_INFO, "webhook_dead_retry", "id", id ? what : "all", "moved", count, NULL);
    api_reply_json(c, 200, json_pack("{s:I}", "retried", (json_int_t)moved));
}

void api_webhook_dead_retry_all(struct api_call *c)
{
    retry(c, 0);
}

static bool dead_id(struct api_call *c, const char *text, int64_t *id)
{
    if (str_to_i64(text, 1, INT64_MAX, id) != 0) {
        api_reply_error(c, 404, "id", "no dead letter %s", text);
        return false;
    }
    return true;
}

void api_webhook_dead_retry(struct api_call *c)
{
    int64_t id;

    if (dead_id(c, c->seg[2], &id))
        retry(c, id);
}

void api_webhook_dead_delete(struct api_call *c)
{
    const char *id_text = c->seg[2];
    struct scepter_error err;
    int64_t id;

    if (!dead_id(c, id_text, &id))
        return;
    if (store_outbox_dead_delete(c->ctx->store, "webhook", id, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "webhook_dead_drop", "id", id_text, NULL);
    api_reply_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1));
}
