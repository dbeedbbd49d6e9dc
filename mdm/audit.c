/*
 * The audit log: who changed what through the operator API, from where, and when.
 *
 * Every route row that changes something names an action (mdm/api.c's route table); after
 * the handler answered 2xx, api_audit_after records one entry with the call's actor (an
 * account or an API key), the client's address, the route pattern, the object (the path's
 * {x} values, or what the handler named — the id of a created thing) and a short summary
 * (what the handler said, else the names of the body's fields: never their values, so never
 * a password or a key).  Sign-ins write their own entries (session.create, session.fail).
 *
 * The entry is written right after the change, not in its transaction: the store calls of
 * the handlers each run their own transaction, and threading the audit row through every one
 * of them would couple every store function to the API.  When the write fails the change
 * stands and the failure is logged (audit_not_recorded) with the entry's content, so the log
 * still holds it.  With webhook_audit, each entry also goes to the webhook as the event
 * audit.<action>.
 *
 *   GET /v1/audit?actor=&action=&object=&since=&until=&limit=&before=
 *       {"entries": [...], "next_before": id|null}, newest first, paged by id
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/console_int.h"
#include "mdm/webhook_int.h"

#define AUDIT_MAX_LIMIT 1000

void api_audit_object(struct api_call *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->audit_object, sizeof(c->audit_object), fmt, ap);
    va_end(ap);
    str_utf8_sanitize(c->audit_object);
}

void api_audit_summary(struct api_call *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->audit_summary, sizeof(c->audit_summary), fmt, ap);
    va_end(ap);
    str_utf8_sanitize(c->audit_summary);
}

/* The entry of the call (its strings borrowed from the arguments, the call and route[]). */
static void entry_fill(struct api_call *c, const char *action, const char *actor_type,
                       const char *actor_name, const char *object, const char *summary,
                       struct store_audit_entry *e, char *route, size_t routelen)
{
    if (c->actor.type != NULL) {
        actor_type = c->actor.type;
        actor_name = c->actor.name;
    }
    if (c->route != NULL)
        snprintf(route, routelen, "%s %s", api_method_name(c->route->method), c->route->pattern);
    else
        snprintf(route, routelen, "%s %s", api_method_name(c->req->method), c->req->path);
    str_utf8_sanitize(route);
    memset(e, 0, sizeof(*e));
    e->at = c->now;
    e->actor_type = (char *)(actor_type ? actor_type : "anonymous");
    e->actor_name = (char *)(actor_name && *actor_name ? actor_name : "-");
    e->address = (char *)(c->req->peer_addr ? c->req->peer_addr : "");
    e->action = (char *)action;
    e->route = route;
    e->object = (char *)(object ? object : "");
    e->summary = (char *)(summary ? summary : "");
}

/* With webhook_audit, the stored entry (id) as the webhook event audit.<action>. */
static void entry_webhook(struct api_call *c, const struct store_audit_entry *e, int64_t id)
{
    if (c->ctx->cfg == NULL || !c->ctx->cfg->webhook_audit)
        return;
    json_t *ev = json_pack("{s:I,s:o,s:{s:s,s:s},s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)id, "at",
                           api_time(c->now), "actor", "type", e->actor_type, "name", e->actor_name,
                           "address", e->address, "action", e->action, "route", e->route, "object",
                           e->object, "summary", e->summary);
    char topic[160];
    snprintf(topic, sizeof(topic), "audit.%s", e->action);
    if (ev != NULL)
        mdm_webhook_event(c->ctx, topic, ev, c->now);
}

void api_audit_write(struct api_call *c, const char *action, const char *actor_type,
                     const char *actor_name, const char *object, const char *summary)
{
    struct scepter_error err;
    char route[256];
    int64_t id = 0;
    struct store_audit_entry e;

    entry_fill(c, action, actor_type, actor_name, object, summary, &e, route, sizeof(route));
    if (store_audit_add(c->ctx->store, &e, &id, &err) != 0)
        log_kv(LOG_LVL_ERROR, "audit_not_recorded", "req", c->req->id, "action", action, "actor",
               e.actor_name, "object", e.object, "summary", e.summary, "error", err.msg, NULL);
    entry_webhook(c, &e, id);
}

/* The path's {x} values joined by '/'. */
static void path_object(const struct api_call *c, char *out, size_t outlen)
{
    const char *p = c->route->pattern + 3; /* after "/v1" */
    int i = 0;

    *out = '\0';
    while (*p == '/' && i < c->nseg) {
        if (p[1] == '{') {
            if (*out)
                str_append(out, outlen, "/");
            str_append(out, outlen, c->seg[i]);
        }
        const char *end = strchr(p + 1, '/');
        p = end ? end : p + strlen(p);
        i++;
    }
}

/*
 * A created thing from the reply: the key that names it in the route table ("{name}" of
 * /v1/device-groups/{name} after POST /v1/device-groups), else its id, uuid or name.
 */
static void reply_object(const struct api_call *c, char *out, size_t outlen)
{
    static const char *fallback[] = {"id", "uuid", "command_uuid", "name", "udid", NULL};
    const char *keys[ARRAY_LEN(fallback) + 1];
    char own[64] = "";
    size_t nkeys = 0, nroutes, plen = strlen(c->route->pattern);
    const struct api_route *routes = mdm_api_routes(&nroutes);
    json_t *j;

    for (size_t r = 0; r < nroutes && own[0] == '\0'; r++) {
        const char *p = routes[r].pattern;
        if (strncmp(p, c->route->pattern, plen) == 0 && p[plen] == '/' && p[plen + 1] == '{' &&
            strchr(p + plen + 1, '/') == NULL)
            snprintf(own, sizeof(own), "%.*s", (int)(strlen(p) - plen - 3), p + plen + 2);
    }
    if (own[0])
        keys[nkeys++] = own;
    for (const char **k = fallback; *k; k++)
        keys[nkeys++] = *k;
    keys[nkeys] = NULL;

    if (c->reply->body.data == NULL || c->reply->body.len == 0)
        return;
    j = json_loadb(c->reply->body.data, c->reply->body.len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    for (const char **k = keys; *k; k++) {
        json_t *v = json_object_get(j, *k);
        if (json_is_string(v)) {
            str_copy(out, outlen, json_string_value(v));
            break;
        }
        if (json_is_integer(v)) {
            snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
            break;
        }
    }
    json_decref(j);
}

/* ---------------------------------------------------------------------------------------- */
/* Before -> after summaries of a changed document                                           */

/* Keys whose values never go into the log, whatever object holds them. */
static bool secret_key(const char *key)
{
    static const char *const secret[] = {"challenge",   "password",   "secret", "api_key",
                                         "private_key", "passphrase", "p12",    "key_pem",
                                         "token",       NULL};
    for (size_t i = 0; secret[i]; i++) {
        if (strcmp(key, secret[i]) == 0 ||
            (strstr(key, secret[i]) && strstr(key, "_size") == NULL &&
             strstr(key, "_usage") == NULL))
            return true;
    }
    return false;
}

/* A value as compact JSON, at most 48 bytes (longer ones end in "..."). */
static void value_text(const json_t *v, char *out, size_t outlen)
{
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;

    if (t == NULL) {
        str_copy(out, outlen, "(none)");
        return;
    }
    if (strlen(t) > 48)
        memcpy(t + 45, "...", 4);
    str_copy(out, outlen, t);
    free(t);
}

struct diff {
    char *out;
    size_t outlen;
    size_t shown, more;
};

static void diff_add(struct diff *d, const char *path, const json_t *a, const json_t *b,
                     bool secret)
{
    char va[64], vb[64], item[256];

    if (secret) {
        snprintf(item, sizeof(item), "%s changed", path);
    } else {
        value_text(a, va, sizeof(va));
        value_text(b, vb, sizeof(vb));
        snprintf(item, sizeof(item), "%s: %s -> %s", path, va, vb);
    }
    /* Room for the item and a final "; and N more". */
    if (strlen(d->out) + strlen(item) + 24 >= d->outlen) {
        d->more++;
        return;
    }
    if (d->shown++)
        str_append(d->out, d->outlen, "; ");
    str_append(d->out, d->outlen, item);
}

/* Walk two JSON values; objects key by key, anything else compared whole. */
static void diff_walk(struct diff *d, const char *path, const json_t *a, const json_t *b,
                      bool secret)
{
    const char *key;
    json_t *v;
    char sub[192];

    if (json_is_object(a) && json_is_object(b)) {
        json_object_foreach((json_t *)a, key, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
            diff_walk(d, sub, v, json_object_get(b, key), secret || secret_key(key));
        }
        json_object_foreach((json_t *)b, key, v)
        {
            if (json_object_get(a, key) != NULL)
                continue;
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
            diff_walk(d, sub, NULL, v, secret || secret_key(key));
        }
        return;
    }
    if ((a == NULL && b == NULL) || (a && b && json_equal((json_t *)a, (json_t *)b)))
        return;
    diff_add(d, *path ? path : "(document)", a, b, secret);
}

void api_audit_diff(struct api_call *c, const json_t *before, const json_t *after)
{
    char out[sizeof(c->audit_summary)] = "";
    struct diff d = {out, sizeof(out), 0, 0};

    diff_walk(&d, "", before, after, false);
    if (d.more) {
        char tail[32];
        snprintf(tail, sizeof(tail), "; and %zu more", d.more);
        str_append(out, sizeof(out), tail);
    }
    if (d.shown == 0 && d.more == 0)
        str_copy(out, sizeof(out), "no change");
    api_audit_summary(c, "%s", out);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "fields: a, b" from the request body's keys (sorted), never their values. */
static void body_summary(const struct api_call *c, char *out, size_t outlen)
{
    const char *key;
    json_t *v;
    const char **names;
    size_t n = 0;

    *out = '\0';
    if (!json_is_object(c->body) || json_object_size(c->body) == 0)
        return;
    names = xcalloc(json_object_size(c->body), sizeof(*names));
    json_object_foreach(c->body, key, v)
    {
        names[n++] = key;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    str_copy(out, outlen, "fields: ");
    for (size_t i = 0; i < n; i++) {
        if (i)
            str_append(out, outlen, ", ");
        str_append(out, outlen, names[i]);
    }
    free(names);
    str_utf8_sanitize(out);
}

bool api_audit_prepare(struct api_call *c, const char *object, struct api_audit_pending *p)
{
    if (c->route == NULL || c->route->action == NULL || c->actor.type == NULL)
        return false;
    str_copy(p->object, sizeof(p->object), *c->audit_object ? c->audit_object : object);
    str_utf8_sanitize(p->object);
    if (*c->audit_summary)
        str_copy(p->summary, sizeof(p->summary), c->audit_summary);
    else
        body_summary(c, p->summary, sizeof(p->summary));
    entry_fill(c, c->route->action, NULL, NULL, p->object, p->summary, &p->e, p->route,
               sizeof(p->route));
    return true;
}

void api_audit_written(struct api_call *c, struct api_audit_pending *p, int64_t id)
{
    c->audit_done = true;
    entry_webhook(c, &p->e, id);
}

void api_audit_after(struct api_call *c)
{
    char object[256], summary[512];

    if (c->audit_done || c->route == NULL || c->route->action == NULL || c->reply->status < 200 ||
        c->reply->status > 299 || c->actor.type == NULL)
        return;
    if (*c->audit_object) {
        str_copy(object, sizeof(object), c->audit_object);
    } else {
        path_object(c, object, sizeof(object));
        if (*object == '\0')
            reply_object(c, object, sizeof(object));
    }
    if (*c->audit_summary)
        str_copy(summary, sizeof(summary), c->audit_summary);
    else
        body_summary(c, summary, sizeof(summary));
    str_utf8_sanitize(object);
    api_audit_write(c, c->route->action, NULL, NULL, object, summary);
}

/* ---------------------------------------------------------------------------------------- */
/* GET /v1/audit                                                                             */

/* "2026-11-25T18:00:00Z" or UNIX seconds -> seconds; -1 when neither. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    int64_t v;
    const char *end;

    if (str_to_i64(s, 0, INT64_MAX, &v) == 0)
        return v;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
        return -1;
    return (int64_t)timegm(&tm);
}

static json_t *entry_json(const struct store_audit_entry *e)
{
    return json_pack("{s:I,s:o,s:{s:s,s:s},s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)e->id, "at",
                     api_time(e->at), "actor", "type", e->actor_type, "name", e->actor_name,
                     "address", e->address, "action", e->action, "route", e->route, "object",
                     e->object, "summary", e->summary);
}

void api_audit_list(struct api_call *c)
{
    static const char *const names[] = {"actor", "action", "object", "since",
                                        "until", "limit",  "before"};
    char *v[7] = {NULL};
    struct store_audit_filter f = {0};
    struct store_audit_entry *e = NULL;
    struct scepter_error err;
    size_t n = 0;
    int64_t num;

    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        v[i] = api_query(c, names[i]);
        if (v[i] != NULL && (*v[i] == '\0' || strlen(v[i]) > 256)) {
            api_reply_error(c, 400, names[i], "%s: 1 to 256 characters", names[i]);
            goto out;
        }
    }
    f.actor = v[0];
    f.action = v[1];
    f.object = v[2];
    if (v[3] && (f.since = parse_time(v[3])) < 0) {
        api_reply_error(c, 400, "since", "since: not a time (2026-11-25T18:00:00Z or seconds)");
        goto out;
    }
    if (v[4] && (f.until = parse_time(v[4])) < 0) {
        api_reply_error(c, 400, "until", "until: not a time (2026-11-25T18:00:00Z or seconds)");
        goto out;
    }
    f.limit = 100;
    if (v[5]) {
        if (str_to_i64(v[5], 1, AUDIT_MAX_LIMIT, &num) != 0) {
            api_reply_error(c, 400, "limit", "limit: a number from 1 to %d", AUDIT_MAX_LIMIT);
            goto out;
        }
        f.limit = (size_t)num;
    }
    if (v[6] && str_to_i64(v[6], 1, INT64_MAX, &f.before) != 0) {
        api_reply_error(c, 400, "before", "before: an entry id (next_before of the last page)");
        goto out;
    }
    if (store_audit_list(c->ctx->store, &f, &e, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, entry_json(&e[i]));
    /* A full page may have more behind it. */
    json_t *next = n == f.limit && n > 0 ? json_integer(e[n - 1].id) : json_null();
    store_audit_entries_free(e, n);
    api_reply_json(c, 200, json_pack("{s:o,s:o}", "entries", arr, "next_before", next));
out:
    for (size_t i = 0; i < ARRAY_LEN(v); i++)
        free(v[i]);
}

/* ---------------------------------------------------------------------------------------- */
/* Retention                                                                                 */

void mdm_audit_purge(struct store *st, const struct cfg *cfg, int64_t now)
{
    struct scepter_error err;
    int64_t deleted = 0;

    if (cfg->audit_retention_days <= 0)
        return;
    if (store_audit_purge(st, now - cfg->audit_retention_days * 86400, &deleted, &err) != 0) {
        log_warnx("audit: purge failed: %s", err.msg);
        return;
    }
    if (deleted > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)deleted);
        log_kv(LOG_LVL_INFO, "audit_purged", "deleted", n, NULL);
    }
}
