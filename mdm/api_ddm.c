/*
 * GET /v1/devices/{udid}/declarations: what Declarative Device Management gives a device and
 * what it reported back — each declaration computed for it now (kind, type, identifier,
 * server token) with the device's last status for it (active, valid, the token it holds,
 * reasons), and the reported declarations it should no longer hold.
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
