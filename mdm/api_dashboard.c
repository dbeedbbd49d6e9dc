/*
 * The operator API's read-only overview for the web console:
 *
 *   GET /v1/dashboard         enrolled devices by platform, devices seen in the last hour,
 *                             pending commands, failed commands since a time (?failed_since,
 *                             default the start of the UTC day), the push certificate's topic
 *                             and expiry (expiring within 30 days: "expiring") and APNs state
 *   GET /v1/commands          commands across devices, newest first, each with its queue
 *                             entries counted by state, and the counts over the whole queue
 *                             (?request_type, ?origin=operator|policy, ?limit, ?offset)
 *   GET /v1/commands/{uuid}   one command, device by device: status, result time, ErrorChain
 *   GET /v1/enrollment        where devices enroll: the URL, what gates the profile
 *
 * Nothing here changes anything.  Store queries: store/dashboard.c.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/push_int.h"

#define EXPIRY_WARN_DAYS 30

/* A time parameter: "2026-11-25T18:00:00Z" or UNIX seconds; false (reply set) when bad. */
static bool time_param(struct api_call *c, const char *name, int64_t *out)
{
    char *v = api_query(c, name);
    struct tm tm;
    const char *end;
    bool ok = true;

    if (v == NULL)
        return true;
    memset(&tm, 0, sizeof(tm));
    if (str_to_i64(v, 0, INT64_MAX, out) == 0) {
        ok = true;
    } else if ((end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL &&
               (*end == '\0' || strcmp(end, "Z") == 0)) {
        *out = (int64_t)timegm(&tm);
    } else {
        api_reply_error(c, 400, name,
                        "%s: '%s' is not a time (2026-11-25T18:00:00Z or UNIX seconds)", name, v);
        ok = false;
    }
    free(v);
    return ok;
}

/* A count parameter between lo and hi; false (reply set) when bad. */
static bool count_param(struct api_call *c, const char *name, int64_t lo, int64_t hi, size_t *out)
{
    int64_t n = (int64_t)*out;

    if (!api_query_int(c, name, lo, hi, &n))
        return false;
    *out = (size_t)n;
    return true;
}

static json_t *counts_json(const struct store_command_counts *k)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)k->queued, "notnow",
                     (json_int_t)k->notnow, "acknowledged", (json_int_t)k->acknowledged, "error",
                     (json_int_t)k->error, "cancelled", (json_int_t)k->cancelled);
}

static json_t *summary_json(const struct store_command_summary *s)
{
    const struct store_command_counts *k = &s->counts;
    json_int_t targets =
        (json_int_t)k->queued + k->notnow + k->acknowledged + k->error + k->cancelled;
    json_t *j =
        json_pack("{s:s,s:s?,s:o,s:o,s:o,s:I}", "uuid", s->uuid, "request_type", s->request_type,
                  "created", api_time(s->created), "last_result_at", api_time(s->last_result_at),
                  "counts", counts_json(k), "targets", targets);
    json_object_set_new(j, "policy_id", s->policy_id ? json_integer(s->policy_id) : json_null());
    return j;
}

void api_dashboard(struct api_call *c)
{
    struct scepter_error err;
    struct store_dashboard d;
    struct store_pushcert pc;
    struct apns_stats st;
    int64_t failed_since = c->now - c->now % 86400, seen_since = c->now - 3600;
    json_t *by = json_object(), *j;
    int64_t total = 0;

    if (!time_param(c, "failed_since", &failed_since) || !time_param(c, "seen_since", &seen_since))
        goto out;
    if (store_dashboard_get(c->ctx->store, seen_since, failed_since, &d, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    for (int p = 0; p < STORE_PLATFORM_COUNT; p++) {
        if (d.enrolled[p] > 0)
            json_object_set_new(by, store_platform_name((enum store_platform)p),
                                json_integer(d.enrolled[p]));
        total += d.enrolled[p];
    }
    j = json_pack("{s:{s:I,s:O},s:{s:I,s:o},s:{s:I,s:I,s:o}}", "devices", "enrolled",
                  (json_int_t)total, "by_platform", by, "checkins", "devices", (json_int_t)d.seen,
                  "since", api_time(seen_since), "commands", "pending", (json_int_t)d.pending,
                  "failed", (json_int_t)d.failed, "failed_since", api_time(failed_since));
    memset(&pc, 0, sizeof(pc));
    if (store_pushcert_get(c->ctx->store, &pc, &err) == 0) {
        int64_t left = pc.not_after - c->now;
        const char *state = left <= 0                            ? "expired"
                            : left <= EXPIRY_WARN_DAYS * 86400LL ? "expiring"
                                                                 : "ok";
        json_object_set_new(j, "pushcert",
                            json_pack("{s:s,s:o,s:I,s:s}", "topic", pc.topic, "not_after",
                                      api_time(pc.not_after), "days_left",
                                      (json_int_t)(left > 0 ? left / 86400 : 0), "state", state));
        store_pushcert_clear(&pc);
    } else if (err.code == SCEPTER_ENOTFOUND) {
        json_object_set_new(j, "pushcert", json_null());
    } else {
        json_decref(j);
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (mdm_push_state(c->ctx->srv, &st) == 0)
        json_object_set_new(
            j, "apns",
            json_pack("{s:s,s:i}", "state", apns_state_name(st.state), "connections", st.conns_up));
    else
        json_object_set_new(j, "apns", json_pack("{s:s,s:i}", "state", "none", "connections", 0));
    api_reply_json(c, 200, j);
out:
    json_decref(by);
}

void api_commands_list(struct api_call *c)
{
    struct store_command_filter f = {.limit = 50};
    struct store_command_summary *v = NULL;
    struct store_command_counts all;
    struct scepter_error err;
    size_t n = 0, total = 0;
    char *type = api_query(c, "request_type"), *origin = api_query(c, "origin");

    if (!count_param(c, "limit", 1, 1000, &f.limit) ||
        !count_param(c, "offset", 0, INT64_MAX, &f.offset))
        goto out;
    if (origin == NULL || strcmp(origin, "any") == 0) {
        f.origin = STORE_ORIGIN_ANY;
    } else if (strcmp(origin, "operator") == 0) {
        f.origin = STORE_ORIGIN_OPERATOR;
    } else if (strcmp(origin, "policy") == 0) {
        f.origin = STORE_ORIGIN_POLICY;
    } else {
        api_reply_error(c, 400, "origin", "origin: '%s' is not one of any, operator, policy",
                        origin);
        goto out;
    }
    f.request_type = type && *type ? type : NULL;
    if (store_command_summaries(c->ctx->store, &f, &v, &n, &total, &all, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, summary_json(&v[i]));
    store_command_summaries_free(v, n);
    api_reply_json(c, 200,
                   json_pack("{s:o,s:I,s:I,s:o}", "commands", arr, "count", (json_int_t)n, "total",
                             (json_int_t)total, "counts", counts_json(&all)));
out:
    free(type);
    free(origin);
}

void api_command_show(struct api_call *c)
{
    struct store_command_summary cmd;
    struct store_command_target *t = NULL;
    struct scepter_error err;
    size_t n = 0, limit = 200, offset = 0;

    if (!count_param(c, "limit", 1, 1000, &limit) ||
        !count_param(c, "offset", 0, INT64_MAX, &offset))
        return;
    if (store_command_targets(c->ctx->store, c->seg[1], limit, offset, &cmd, &t, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    json_t *j = summary_json(&cmd), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e =
            json_pack("{s:s,s:s,s:s?,s:s?,s:s,s:s,s:i,s:o,s:o}", "enrollment", t[i].enrollment_id,
                      "udid", t[i].device_id, "device_name", t[i].device_name, "serial_number",
                      t[i].serial_number, "platform", store_platform_name(t[i].platform), "status",
                      t[i].status, "notnow_count", t[i].notnow_count, "result_at",
                      api_time(t[i].result_at), "updated", api_time(t[i].updated));
        json_t *chain = t[i].error_chain_json ? json_loads(t[i].error_chain_json, 0, NULL) : NULL;
        json_object_set_new(e, "error_chain", chain ? chain : json_null());
        json_array_append_new(arr, e);
    }
    json_object_set_new(j, "devices", arr);
    store_command_targets_free(t, n);
    free(cmd.request_type);
    api_reply_json(c, 200, j);
}

void api_enrollment_show(struct api_call *c)
{
    const struct cfg *cfg = c->ctx->cfg;
    const char *base = cfg->public_url ? cfg->public_url : "";
    size_t len = strlen(base);
    bool gated = cfg_enroll_hands_out_credentials(cfg) && !cfg->enroll_open;
    char *url;

    while (len > 0 && base[len - 1] == '/')
        len--;
    url = xasprintf("%.*s/mdm/enroll", (int)len, base);
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:b,s:b,s:b}", "url", url, "path", "/mdm/enroll", "gated",
                             gated, "secret", !str_empty(cfg->enroll_secret), "tokens",
                             cfg->enroll_tokens));
    free(url);
}
