/*
 * GET /v1/devices/{udid}/declarations: what Declarative Device Management gives a device and
 * what it reported back — each declaration computed for it now (kind, type, identifier,
 * server token) with the device's last status for it (active, valid, the token it holds,
 * reasons), and the reported declarations it should no longer hold.
 *
 * GET /v1/policies/{id}/status (mdm/policy.c) asks api_ddm_policy_status for what the console
 * and scepterctl show beside the InstallProfile results: whether each DDM device holds the
 * policy's current declarations ("syncing" when not) and the counts by channel and DDM state.
 */
#include <string.h>

#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/ddm_int.h"

static json_t *status_json(const struct store_ddm_status *st)
{
    json_t *j =
        json_pack("{s:s,s:s,s:b,s:s,s:o}", "kind", st->kind, "identifier", st->identifier, "active",
                  st->active, "valid", st->valid, "updated", api_time(st->updated));
    json_object_set_new(j, "server_token", api_opt_str(st->server_token));
    if (st->reasons_json != NULL) {
        json_t *r = json_loads(st->reasons_json, 0, NULL);
        json_object_set_new(j, "reasons", r ? r : json_null());
    }
    return j;
}

void api_device_declarations(struct api_call *c)
{
    const char *udid = c->seg[1];
    struct store_ddm_statuses st;
    struct store_device d;
    struct scepter_error err;
    struct ddm_set set;
    json_t *decls, *stale, *j;
    bool *used;

    memset(&d, 0, sizeof(d));
    memset(&st, 0, sizeof(st));
    if (store_device_get(c->ctx->store, udid, &d, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (mdm_ddm_device_set(c->ctx, udid, &set, &err) != 0) {
        store_device_clear(&d);
        api_reply_scepter_error(c, &err);
        return;
    }
    if (store_ddm_status_list(c->ctx->store, udid, &st, &err) != 0) {
        ddm_set_clear(&set);
        store_device_clear(&d);
        api_reply_scepter_error(c, &err);
        return;
    }
    used = xcalloc(st.n ? st.n : 1, sizeof(*used));
    decls = json_array();
    for (size_t i = 0; i < set.n; i++) {
        const struct ddm_decl *dc = &set.v[i];
        json_t *e = json_pack("{s:s,s:O,s:s,s:s}", "kind", ddm_kind_name(dc->kind), "type",
                              json_object_get(dc->json, "Type"), "identifier", dc->identifier,
                              "server_token", dc->token);
        json_t *rep = json_null();
        for (size_t k = 0; k < st.n; k++)
            if (strcmp(st.v[k].kind, ddm_kind_status_key(dc->kind)) == 0 &&
                strcmp(st.v[k].identifier, dc->identifier) == 0) {
                json_decref(rep);
                rep = status_json(&st.v[k]);
                json_object_set_new(rep, "current",
                                    json_boolean(st.v[k].server_token != NULL &&
                                                 strcmp(st.v[k].server_token, dc->token) == 0));
                used[k] = true;
            }
        json_object_set_new(e, "status", rep);
        json_array_append_new(decls, e);
    }
    stale = json_array();
    for (size_t k = 0; k < st.n; k++)
        if (!used[k])
            json_array_append_new(stale, status_json(&st.v[k]));
    j = json_pack("{s:s,s:b,s:s,s:o,s:o}", "device", udid, "ddm_capable",
                  ddm_capable(d.platform, d.os_version), "declarations_token", set.token,
                  "declarations", decls, "stale", stale);
    free(used);
    store_ddm_statuses_clear(&st);
    ddm_set_clear(&set);
    store_device_clear(&d);
    api_reply_json(c, 200, j);
}

/* ---------------------------------------------------------------------------------------- */
/* GET /v1/policies/{id}/status: syncing and the counts by channel                           */

/* The policy's declarations for one device, computed as the device would get them now (its
 * record's facts); false with *why (caller frees) when they cannot be rendered for it. */
static bool policy_decls(struct api_call *c, const struct store_policy *sp,
                         const struct profile_policy *pp, const char *udid, struct ddm_set *set,
                         char **why)
{
    struct store_device d;
    struct profile_device pd;
    struct scepter_error err;
    struct ddm_policy_in in = {sp->uid, sp->updated, pp};
    json_t *skipped = json_array();
    bool ok = false;

    *why = NULL;
    memset(&d, 0, sizeof(d));
    memset(set, 0, sizeof(*set));
    if (store_device_get(c->ctx->store, udid, &d, &err) != 0) {
        *why = xstrdup(err.msg);
        goto out;
    }
    pd = (struct profile_device){d.id,
                                 d.serial_number,
                                 d.device_name,
                                 d.model,
                                 d.product_name,
                                 d.os_version,
                                 store_platform_name(d.platform)};
    if (ddm_compute(&in, 1, &pd, c->ctx->cfg->payload_identifier_prefix, c->ctx->cfg->public_url,
                    set, skipped, &err) != 0) {
        *why = xstrdup(err.msg);
        goto out;
    }
    if (json_array_size(skipped) > 0) {
        *why = xstrdup(json_string_value(json_object_get(json_array_get(skipped, 0), "error")));
        ddm_set_clear(set);
        goto out;
    }
    ok = true;
out:
    json_decref(skipped);
    store_device_clear(&d);
    return ok;
}

/*
 * One DDM entry's "ddm" object: each reported declaration gets "current" (the device holds
 * the server token the policy gives it now), and the object "syncing": true while any of the
 * policy's declarations is unreported or reported with an older token — the device has not
 * caught up with the last save yet, so its state describes an older version.  shared, when
 * not NULL, holds the declarations of a policy whose rendering does not depend on the device
 * (computed for the first device, then reused).
 */
static void mark_syncing(struct api_call *c, const struct store_policy *sp,
                         const struct profile_policy *pp, const char *udid, json_t *ddm,
                         struct ddm_set *shared, bool *have_shared)
{
    struct ddm_set own, *set = &own;
    json_t *decls = json_object_get(ddm, "declarations"), *v;
    bool syncing = false;
    char *why = NULL, *prefix;
    size_t i;

    memset(&own, 0, sizeof(own));
    if (shared && *have_shared) {
        set = shared;
    } else if (!policy_decls(c, sp, pp, udid, &own, &why)) {
        json_object_set_new(ddm, "not_rendered", json_string(why ? why : "unknown"));
        json_object_set_new(ddm, "syncing", json_false());
        free(why);
        return;
    } else if (shared) {
        *shared = own; /* kept for the next devices */
        memset(&own, 0, sizeof(own));
        *have_shared = true;
        set = shared;
    }
    json_array_foreach(decls, i, v)
    {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        const char *ident = json_string_value(json_object_get(v, "identifier"));
        const char *held = json_string_value(json_object_get(v, "server_token"));
        bool current = false;
        for (size_t k = 0; k < set->n && kind && ident; k++)
            if (strcmp(ddm_kind_status_key(set->v[k].kind), kind) == 0 &&
                strcmp(set->v[k].identifier, ident) == 0)
                current = held != NULL && strcmp(held, set->v[k].token) == 0;
        json_object_set_new(v, "current", json_boolean(current));
        syncing |= !current;
    }
    /* every declaration of the policy must be reported (not those every device gets, such as
     * the server capabilities, which the policy's entry does not list) */
    prefix = xasprintf("%s.policy.%s.", c->ctx->cfg->payload_identifier_prefix, sp->uid);
    for (size_t k = 0; k < set->n; k++) {
        bool seen = false;
        if (strncmp(set->v[k].identifier, prefix, strlen(prefix)) != 0)
            continue;
        json_array_foreach(decls, i, v)
        {
            const char *ident = json_string_value(json_object_get(v, "identifier"));
            seen |= ident != NULL && strcmp(ident, set->v[k].identifier) == 0;
        }
        syncing |= !seen;
    }
    free(prefix);
    json_object_set_new(ddm, "syncing", json_boolean(syncing));
    ddm_set_clear(&own);
}

static void count(json_t *counts, const char *key)
{
    json_object_set_new(counts, key,
                        json_integer(json_integer_value(json_object_get(counts, key)) + 1));
}

void api_ddm_policy_status(struct api_call *c, const struct store_policy *sp, json_t *reply)
{
    static const char *const lists[] = {"installed", "pending", "failed"};
    struct profile_policy pp;
    struct scepter_error err;
    json_t *ddm = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "devices", 0, "installed", 0,
                            "pending", 0, "failed", 0, "active", 0, "inactive", 0, "invalid", 0,
                            "unknown", 0, "syncing", 0);
    json_t *profile =
        json_pack("{s:i,s:i,s:i,s:i}", "devices", 0, "installed", 0, "pending", 0, "failed", 0);
    json_t *by_udid = json_object(), *v;
    bool parsed = profile_policy_from_document(sp->document, &pp, &err) == 0;
    /* Without a variable anywhere in the policy, its declarations are the same bytes for every
     * device: rendered once.  Otherwise once per DDM device (the credential's variables). */
    bool per_device = strchr(sp->document, '%') != NULL, have_shared = false;
    struct ddm_set shared;
    size_t i;

    memset(&shared, 0, sizeof(shared));

    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        json_array_foreach(json_object_get(reply, lists[l]), i, v)
        {
            const char *delivery = json_string_value(json_object_get(v, "delivery"));
            json_t *d = json_object_get(v, "ddm");
            if (delivery == NULL || strcmp(delivery, "ddm") != 0 || !json_is_object(d)) {
                count(profile, "devices");
                count(profile, lists[l]);
                continue;
            }
            count(ddm, "devices");
            count(ddm, lists[l]);
            if (parsed && json_object_get(d, "error") == NULL)
                mark_syncing(c, sp, &pp, json_string_value(json_object_get(v, "device")), d,
                             per_device ? NULL : &shared, &have_shared);
            const char *state = json_string_value(json_object_get(d, "state"));
            if (json_is_true(json_object_get(d, "syncing")))
                count(ddm, "syncing");
            else if (state && json_object_get(ddm, state))
                count(ddm, state);
            json_object_set(by_udid, json_string_value(json_object_get(v, "device")), d);
        }
    }
    /* the console's rows get the same DDM object as the full entries */
    json_array_foreach(json_object_get(reply, "devices"), i, v)
    {
        json_t *d = json_object_get(by_udid, json_string_value(json_object_get(v, "udid")));
        if (d && strcmp(json_string_value(json_object_get(v, "delivery")), "ddm") == 0)
            json_object_set(v, "ddm", d);
    }
    json_object_set_new(reply, "by_delivery",
                        json_pack("{s:o,s:o}", "ddm", ddm, "profile", profile));
    json_decref(by_udid);
    if (have_shared)
        ddm_set_clear(&shared);
    profile_policy_clear(&pp);
}
