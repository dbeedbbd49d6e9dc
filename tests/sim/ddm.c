/*
 * Declarative Device Management as a device does it (Apple's declarative/ schemas): on the
 * DeclarativeManagement command the device syncs — declaration-items, each declaration whose
 * server token it does not hold, the data of credential assets (fetched with its identity, MDM
 * authentication, checked against Hash-SHA-256) — enrolls with the SCEP server the
 * com.apple.asset.credential.scep asset describes for each com.apple.configuration.
 * security.identity an activation turns on, and sends a status report: every declaration with
 * active/valid/server-token and the reasons of a failure (a SCEP enrollment refused, e.g. for a
 * wrong challenge), plus the status items an active
 * com.apple.configuration.management.status-subscriptions subscribes to — all of them in the
 * first report after subscribing, then only those whose value changed (sim_ddm_report_changes
 * sends a report of the changes alone, as a device does when its OS is updated).  The sync is
 * blocking (sim_http_fetch), like the SCEP exchange of InstallProfile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <openssl/evp.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tests/sim/sim.h"

#define DDM_MAX_DECLS 256
#define DDM_MAX_SUBS  32 /* status items a device keeps subscriptions for */

struct held {
    char kind[16]; /* activation, asset, configuration, management */
    char *identifier;
    char *token;
    json_t *decl;      /* the declaration as fetched */
    bool active;       /* evaluated */
    const char *valid; /* "valid", "invalid", "unknown" */
    json_t *reasons;   /* or NULL */
    X509 *cert;        /* a configuration's identity from SCEP */
    char *asset_token; /* the asset token that identity came from */
};

/* A status item subscribed to (an active status-subscriptions configuration) and the value
 * last reported for it (NULL: not reported yet). */
struct sub {
    char *name;
    char *reported;
};

struct sim_ddm {
    struct held v[DDM_MAX_DECLS];
    size_t n;
    char token[64]; /* the DeclarationsToken of the last sync */
    unsigned syncs, enrolled, failed;
    struct sub subs[DDM_MAX_SUBS];
    size_t nsubs;
    unsigned reports; /* status reports sent */
};

struct sim_ddm *sim_ddm_new(void)
{
    return xcalloc(1, sizeof(struct sim_ddm));
}

static void held_clear(struct held *h)
{
    free(h->identifier);
    free(h->token);
    json_decref(h->decl);
    json_decref(h->reasons);
    X509_free(h->cert);
    free(h->asset_token);
    memset(h, 0, sizeof(*h));
}

void sim_ddm_free(struct sim_ddm *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        held_clear(&s->v[i]);
    for (size_t i = 0; i < s->nsubs; i++) {
        free(s->subs[i].name);
        free(s->subs[i].reported);
    }
    free(s);
}

unsigned sim_ddm_reports(const struct sim_ddm *s)
{
    return s ? s->reports : 0;
}

size_t sim_ddm_identities(const struct sim_ddm *s)
{
    size_t n = 0;
    for (size_t i = 0; s && i < s->n; i++)
        n += s->v[i].cert != NULL && s->v[i].active;
    return n;
}

/* ---------------------------------------------------------------------------------------- */

/* One DeclarativeManagement check-in; *out gets the reply. */
static int checkin(const struct sim_ddm_env *env, const char *endpoint, const char *data,
                   struct sim_http_reply *out, struct scepter_error *err)
{
    plist_t d = plist_new_dict();
    size_t len;
    char *xml;
    int rc;

    plistx_set_string(d, "MessageType", "DeclarativeManagement");
    plistx_set_string(d, "UDID", env->udid);
    plistx_set_string(d, "Endpoint", endpoint);
    if (data)
        plistx_set_data(d, "Data", data, strlen(data));
    xml = plistx_to_xml(d, &len);
    plist_free(d);
    rc = sim_http_fetch("PUT", env->checkin_url, "application/x-apple-aspen-mdm-checkin", xml, len,
                        env->trust, env->cert, env->key, env->timeout_ms, out, err);
    free(xml);
    if (rc == 0 && out->status != 200 && strcmp(endpoint, "status") != 0)
        rc = scepter_err(err, SCEPTER_EIO, "Endpoint", "%s: HTTP %d %s", endpoint, out->status,
                         out->body ? (const char *)out->body : "");
    return rc;
}

static json_t *checkin_json(const struct sim_ddm_env *env, const char *endpoint,
                            struct scepter_error *err)
{
    struct sim_http_reply r;
    json_t *j = NULL;

    memset(&r, 0, sizeof(r));
    if (checkin(env, endpoint, NULL, &r, err) == 0) {
        j = json_loadb((const char *)r.body, r.len, 0, NULL);
        if (j == NULL)
            scepter_err(err, SCEPTER_EIO, "Endpoint", "%s: not JSON", endpoint);
    }
    sim_http_reply_clear(&r);
    return j;
}

/* JSON of a credential (Apple's com.apple.credential.scep) as the SCEP payload's plist. */
static plist_t to_plist(json_t *j, const char *key)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        plist_t d = plist_new_dict();
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) plist_dict_set_item(d, k, to_plist(v, k));
        return d;
    }
    case JSON_ARRAY: {
        plist_t a = plist_new_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) plist_array_append_item(a, to_plist(v, key));
        return a;
    }
    case JSON_STRING:
        if (key && strcmp(key, "CAFingerprint") == 0) {
            unsigned char *bytes = NULL;
            size_t n = 0;
            const char *s = json_string_value(j);
            if (base64_decode(s, strlen(s), true, &bytes, &n) == 0) {
                plist_t p = plist_new_data((const char *)bytes, n);
                free(bytes);
                return p;
            }
        }
        return plist_new_string(json_string_value(j));
    case JSON_INTEGER:
        return plist_new_uint((uint64_t)json_integer_value(j));
    case JSON_TRUE:
    case JSON_FALSE:
        return plist_new_bool(json_is_true(j));
    default:
        return plist_new_string("");
    }
}

static struct held *find(struct sim_ddm *s, const char *kind, const char *identifier)
{
    if (identifier == NULL)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].kind, kind) == 0 && strcmp(s->v[i].identifier, identifier) == 0)
            return &s->v[i];
    return NULL;
}

static void fail(struct held *h, const char *code, const char *text)
{
    h->valid = "invalid";
    h->active = false;
    json_decref(h->reasons);
    h->reasons = json_pack("[{s:s,s:s,s:{s:s}}]", "code", code, "description", text, "details",
                           "Identifier", h->identifier);
}

/* Fetch a credential asset's data and enroll with it; the identity goes to conf. */
static void enroll_asset(struct sim_ddm *s, const struct sim_ddm_env *env, struct held *asset,
                         struct held *conf)
{
    json_t *p = json_object_get(asset->decl, "Payload");
    json_t *ref = json_object_get(p, "Reference");
    const char *url = json_string_value(json_object_get(ref, "DataURL"));
    const char *hash = json_string_value(json_object_get(ref, "Hash-SHA-256"));
    const char *auth =
        json_string_value(json_object_get(json_object_get(p, "Authentication"), "Type"));
    struct sim_http_reply r;
    struct scepter_error err;
    struct sim_scep_request req;
    struct sim_scep_result res;
    plist_t content = NULL;
    json_t *cred = NULL;
    bool mdm = auth != NULL && strcmp(auth, "MDM") == 0;

    memset(&r, 0, sizeof(r));
    memset(&req, 0, sizeof(req));
    memset(&res, 0, sizeof(res));
    if (url == NULL || strncmp(url, "https://", 8) != 0) {
        fail(asset, "Error.InvalidAsset", "Reference.DataURL: not an https:// URL");
        goto out;
    }
    if (sim_http_fetch("GET", url, NULL, NULL, 0, env->trust, mdm ? env->cert : NULL,
                       mdm ? env->key : NULL, env->timeout_ms, &r, &err) != 0 ||
        r.status != 200) {
        char text[300];
        snprintf(text, sizeof(text), "asset data: %s", r.status ? "refused" : err.msg);
        fail(asset, "Error.AssetCouldNotBeDownloaded", text);
        goto out;
    }
    if (hash) {
        unsigned char md[32];
        char hex[65];
        EVP_Digest(r.body, r.len, md, NULL, EVP_sha256(), NULL);
        hex_encode_to(md, sizeof(md), hex, false);
        if (strcasecmp(hex, hash) != 0) {
            fail(asset, "Error.AssetHashMismatch", "asset data: Hash-SHA-256 does not match");
            goto out;
        }
    }
    if ((cred = json_loadb((const char *)r.body, r.len, 0, NULL)) == NULL ||
        !json_is_object(cred)) {
        fail(asset, "Error.InvalidAsset", "asset data: not a JSON object");
        goto out;
    }
    asset->valid = "valid";
    asset->active = true;
    content = to_plist(cred, NULL);
    if (sim_scep_request_from_plist(content, &req, &err) != 0) {
        fail(conf, "Error.ConfigurationCannotBeApplied", err.msg);
        goto out;
    }
    if (env->scep == NULL || env->scep(env->scep_arg, &req, &res, &err) != 0) {
        char text[320];
        snprintf(text, sizeof(text), "SCEP enrollment failed: %s",
                 env->scep ? err.msg : "no SCEP client");
        fail(conf, "Error.ConfigurationCannotBeApplied", text);
        s->failed++;
        goto out;
    }
    X509_free(conf->cert);
    conf->cert = res.cert;
    res.cert = NULL;
    free(conf->asset_token);
    conf->asset_token = xstrdup(asset->token);
    s->enrolled++;
out:
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    plist_free(content);
    json_decref(cred);
    sim_http_reply_clear(&r);
}

/* A certificate configuration: fetch its asset (PEM or DER) and check it is a certificate. */
static void install_certificate(const struct sim_ddm_env *env, struct held *conf,
                                struct held *asset)
{
    json_t *p, *ref;
    const char *url, *auth;
    struct sim_http_reply r;
    struct scepter_error err;
    X509 *x = NULL;

    if (asset == NULL) {
        fail(conf, "Error.MissingAsset", "CredentialAssetReference");
        return;
    }
    p = json_object_get(asset->decl, "Payload");
    ref = json_object_get(p, "Reference");
    url = json_string_value(json_object_get(ref, "DataURL"));
    auth = json_string_value(json_object_get(json_object_get(p, "Authentication"), "Type"));
    memset(&r, 0, sizeof(r));
    bool mdm = auth != NULL && strcmp(auth, "MDM") == 0;
    if (url == NULL ||
        sim_http_fetch("GET", url, NULL, NULL, 0, env->trust, mdm ? env->cert : NULL,
                       mdm ? env->key : NULL, env->timeout_ms, &r, &err) != 0 ||
        r.status != 200) {
        fail(asset, "Error.AssetCouldNotBeDownloaded", "certificate asset: not fetched");
        fail(conf, "Error.AssetCouldNotBeResolved", "the certificate asset failed");
        sim_http_reply_clear(&r);
        return;
    }
    x = crypto_cert_parse(r.body, r.len, "certificate", &err);
    if (x == NULL) {
        fail(asset, "Error.InvalidAsset", "certificate asset: not a certificate");
        fail(conf, "Error.AssetCouldNotBeResolved", "the certificate asset failed");
    } else {
        asset->active = true;
        conf->active = true;
    }
    X509_free(x);
    sim_http_reply_clear(&r);
}

/* Decide every declaration's state: activations turn configurations on. */
static void evaluate(struct sim_ddm *s, const struct sim_ddm_env *env)
{
    for (size_t i = 0; i < s->n; i++) {
        struct held *h = &s->v[i];
        json_decref(h->reasons);
        h->reasons = NULL;
        h->valid = "valid";
        h->active = strcmp(h->kind, "management") == 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct held *act = &s->v[i];
        json_t *std, *v;
        size_t k;

        if (strcmp(act->kind, "activation") != 0)
            continue;
        const char *type = json_string_value(json_object_get(act->decl, "Type"));
        if (type == NULL || strcmp(type, "com.apple.activation.simple") != 0) {
            fail(act, "Error.UnsupportedType", "not a simple activation");
            continue;
        }
        act->active = true;
        std = json_object_get(json_object_get(act->decl, "Payload"), "StandardConfigurations");
        json_array_foreach(std, k, v)
        {
            struct held *conf = find(s, "configuration", json_string_value(v));
            if (conf == NULL) {
                fail(act, "Error.MissingConfiguration", json_string_value(v));
                continue;
            }
            const char *ct = json_string_value(json_object_get(conf->decl, "Type"));
            if (ct != NULL && strcmp(ct, "com.apple.configuration.security.certificate") == 0) {
                install_certificate(
                    env, conf,
                    find(s, "asset",
                         json_string_value(json_object_get(json_object_get(conf->decl, "Payload"),
                                                           "CredentialAssetReference"))));
                continue;
            }
            if (ct != NULL &&
                strcmp(ct, "com.apple.configuration.management.status-subscriptions") == 0) {
                json_t *names =
                    json_object_get(json_object_get(conf->decl, "Payload"), "StatusItems");
                if (!json_is_array(names))
                    fail(conf, "Error.ConfigurationCannotBeApplied", "StatusItems: not an array");
                else
                    conf->active = true;
                continue;
            }
            if (ct == NULL || strcmp(ct, "com.apple.configuration.security.identity") != 0) {
                fail(conf, "Error.UnsupportedType", "configuration type not simulated");
                continue;
            }
            const char *aref = json_string_value(json_object_get(
                json_object_get(conf->decl, "Payload"), "CredentialAssetReference"));
            struct held *asset = aref ? find(s, "asset", aref) : NULL;
            if (asset == NULL) {
                fail(conf, "Error.MissingAsset", aref ? aref : "CredentialAssetReference");
                continue;
            }
            /* A held identity stays while its asset is unchanged. */
            if (conf->cert == NULL || conf->asset_token == NULL ||
                strcmp(conf->asset_token, asset->token) != 0)
                enroll_asset(s, env, asset, conf);
            else
                asset->active = true;
            if (conf->cert != NULL && strcmp(conf->valid, "valid") == 0 &&
                strcmp(asset->valid, "valid") == 0)
                conf->active = true;
            else if (conf->reasons == NULL)
                fail(conf, "Error.AssetCouldNotBeResolved", "the credential asset failed");
        }
    }
}

/* The value of a status item this device knows, or NULL. */
static const char *item_value(const struct sim_ddm_env *env, const char *name)
{
    if (strcmp(name, "device.operating-system.version") == 0)
        return env->os_version;
    if (strcmp(name, "device.operating-system.build-version") == 0)
        return env->build_version;
    if (strcmp(name, "device.model.family") == 0)
        return env->model_family;
    if (strcmp(name, "device.identifier.udid") == 0)
        return env->udid;
    return NULL;
}

/*
 * The subscriptions the active status-subscriptions configurations make now (Apple: the union
 * of their StatusItems).  A name already subscribed keeps what was last reported for it; a
 * name no longer subscribed is dropped.
 */
static void update_subscriptions(struct sim_ddm *s)
{
    struct sub next[DDM_MAX_SUBS];
    size_t nn = 0;

    for (size_t i = 0; i < s->n; i++) {
        const struct held *h = &s->v[i];
        const char *t = json_string_value(json_object_get(h->decl, "Type"));
        json_t *names, *v;
        size_t k;
        if (!h->active || t == NULL ||
            strcmp(t, "com.apple.configuration.management.status-subscriptions") != 0)
            continue;
        names = json_object_get(json_object_get(h->decl, "Payload"), "StatusItems");
        json_array_foreach(names, k, v)
        {
            const char *name = json_string_value(json_object_get(v, "Name"));
            bool dup = false;
            if (name == NULL || nn == DDM_MAX_SUBS)
                continue;
            for (size_t j = 0; j < nn && !dup; j++)
                dup = strcmp(next[j].name, name) == 0;
            if (dup)
                continue;
            next[nn].name = xstrdup(name);
            next[nn].reported = NULL;
            for (size_t j = 0; j < s->nsubs; j++)
                if (strcmp(s->subs[j].name, name) == 0) {
                    next[nn].reported = s->subs[j].reported;
                    s->subs[j].reported = NULL;
                }
            nn++;
        }
    }
    for (size_t j = 0; j < s->nsubs; j++) {
        free(s->subs[j].name);
        free(s->subs[j].reported);
    }
    memcpy(s->subs, next, nn * sizeof(next[0]));
    s->nsubs = nn;
}

/* Put "a.b.c": value into the status items as {"a": {"b": {"c": value}}}. */
static void put_item(json_t *items, const char *name, const char *value)
{
    char buf[128];
    char *save = NULL, *part, *next;
    json_t *o = items;

    str_copy(buf, sizeof(buf), name);
    part = strtok_r(buf, ".", &save);
    while (part != NULL) {
        next = strtok_r(NULL, ".", &save);
        if (next == NULL) {
            json_object_set_new(o, part, json_string(value));
            break;
        }
        json_t *child = json_object_get(o, part);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(o, part, child);
        }
        o = child;
        part = next;
    }
}

/*
 * The subscribed items whose value differs from what was last reported (all of them the first
 * time) go into items, and are remembered as reported.  How many were put.
 */
static size_t changed_items(struct sim_ddm *s, const struct sim_ddm_env *env, json_t *items)
{
    size_t n = 0;

    for (size_t i = 0; i < s->nsubs; i++) {
        const char *v = item_value(env, s->subs[i].name);
        if (v == NULL || (s->subs[i].reported && strcmp(s->subs[i].reported, v) == 0))
            continue;
        put_item(items, s->subs[i].name, v);
        free(s->subs[i].reported);
        s->subs[i].reported = xstrdup(v);
        n++;
    }
    return n;
}

static char *status_report(struct sim_ddm *s, const struct sim_ddm_env *env)
{
    static const char *const kinds[] = {"activation", "asset", "configuration", "management"};
    static const char *const keys[] = {"activations", "assets", "configurations", "management"};
    json_t *decls = json_object(), *items, *root;
    char *text;

    for (size_t k = 0; k < 4; k++) {
        json_t *a = json_array();
        for (size_t i = 0; i < s->n; i++) {
            const struct held *h = &s->v[i];
            if (strcmp(h->kind, kinds[k]) != 0)
                continue;
            json_t *e = json_pack("{s:s,s:s,s:b,s:s}", "identifier", h->identifier, "server-token",
                                  h->token, "active", h->active, "valid", h->valid);
            if (h->reasons)
                json_object_set(e, "reasons", h->reasons);
            json_array_append_new(a, e);
        }
        json_object_set_new(decls, keys[k], a);
    }
    /* the declarations, and the subscribed device facts that are new or changed */
    items = json_pack("{s:{s:o}}", "management", "declarations", decls);
    update_subscriptions(s);
    (void)changed_items(s, env, items);
    root = json_pack("{s:o,s:[]}", "StatusItems", items, "Errors");
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

int sim_ddm_report_changes(struct sim_ddm *s, const struct sim_ddm_env *env,
                           struct scepter_error *err)
{
    struct sim_http_reply r;
    json_t *items = json_object(), *root;
    char *text;
    int rc;

    if (changed_items(s, env, items) == 0) {
        json_decref(items);
        return 0;
    }
    root = json_pack("{s:o,s:[]}", "StatusItems", items, "Errors");
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    memset(&r, 0, sizeof(r));
    if ((rc = checkin(env, "status", text, &r, err)) == 0 && r.status != 200)
        rc = scepter_err(err, SCEPTER_EIO, "status", "status report: HTTP %d %s", r.status,
                         r.body ? (const char *)r.body : "");
    if (rc == 0) {
        s->reports++;
        rc = 1;
    }
    sim_http_reply_clear(&r);
    free(text);
    return rc;
}

int sim_ddm_sync(struct sim_ddm *s, const struct sim_ddm_env *env, const char *sync_tokens,
                 struct scepter_error *err)
{
    static const char *const item_keys[] = {"Activations", "Assets", "Configurations",
                                            "Management"};
    static const char *const kinds[] = {"activation", "asset", "configuration", "management"};
    struct held next[DDM_MAX_DECLS];
    size_t nn = 0;
    json_t *items = NULL;
    char *report = NULL;
    struct sim_http_reply r;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    memset(next, 0, sizeof(next));
    s->syncs++;
    (void)sync_tokens; /* the device always asks for the manifest: tokens only say "changed" */
    if ((items = checkin_json(env, "declaration-items", err)) == NULL) {
        rc = SCEPTER_EIO;
        goto out;
    }
    for (size_t k = 0; k < 4; k++) {
        json_t *a = json_object_get(json_object_get(items, "Declarations"), item_keys[k]), *v;
        size_t i;
        json_array_foreach(a, i, v)
        {
            const char *id = json_string_value(json_object_get(v, "Identifier"));
            const char *tok = json_string_value(json_object_get(v, "ServerToken"));
            if (id == NULL || tok == NULL || nn == DDM_MAX_DECLS)
                continue;
            struct held *h = &next[nn++], *old = find(s, kinds[k], id);
            str_copy(h->kind, sizeof(h->kind), kinds[k]);
            h->identifier = xstrdup(id);
            h->token = xstrdup(tok);
            h->valid = "unknown";
            if (old && strcmp(old->token, tok) == 0) {
                h->decl = json_incref(old->decl);
            } else {
                char *ep = xasprintf("declaration/%s/%s", kinds[k], id);
                h->decl = checkin_json(env, ep, err);
                free(ep);
                if (h->decl == NULL) {
                    rc = SCEPTER_EIO;
                    goto out;
                }
            }
            if (old && old->cert) { /* a configuration keeps its identity */
                h->cert = old->cert;
                old->cert = NULL;
                h->asset_token = old->asset_token;
                old->asset_token = NULL;
            }
        }
    }
    for (size_t i = 0; i < s->n; i++)
        held_clear(&s->v[i]);
    memcpy(s->v, next, sizeof(next[0]) * nn);
    s->n = nn;
    nn = 0;
    {
        const char *t = json_string_value(json_object_get(items, "DeclarationsToken"));
        str_copy(s->token, sizeof(s->token), t ? t : "");
    }
    evaluate(s, env);
    report = status_report(s, env);
    if ((rc = checkin(env, "status", report, &r, err)) == 0 && r.status != 200)
        rc = scepter_err(err, SCEPTER_EIO, "status", "status report: HTTP %d %s", r.status,
                         r.body ? (const char *)r.body : "");
    if (rc == 0)
        s->reports++;
out:
    for (size_t i = 0; i < nn; i++)
        held_clear(&next[i]);
    free(report);
    json_decref(items);
    sim_http_reply_clear(&r);
    return rc;
}
