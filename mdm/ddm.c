/*
 * Declarative Device Management: the DeclarativeManagement check-in message (tokens,
 * declaration-items, declaration/<kind>/<identifier>, status), the credential asset data a
 * device fetches with its MDM identity, and the computation of a device's declarations from
 * the SCEP Profiles policies with "ddm": true that reach it (see mdm/ddm_int.h for the layout
 * and the tokens).  Nothing here is stored per device but what the device reports.
 */
#include "mdm/ddm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "mdm/commands_int.h"

#define DDM_MAX_STATUS_ITEMS 10000

static const char *const g_kind_names[DDM_KINDS] = {"activation", "asset", "configuration",
                                                    "management"};
static const char *const g_kind_items[DDM_KINDS] = {"Activations", "Assets", "Configurations",
                                                    "Management"};
/* Status item keys (management.declarations). */
static const char *const g_kind_status[DDM_KINDS] = {"activations", "assets", "configurations",
                                                     "management"};

const char *ddm_kind_name(enum ddm_kind k)
{
    return k < DDM_KINDS ? g_kind_names[k] : "";
}

const char *ddm_kind_status_key(enum ddm_kind k)
{
    return k < DDM_KINDS ? g_kind_status[k] : "";
}

const char *ddm_kind_items_key(enum ddm_kind k)
{
    return k < DDM_KINDS ? g_kind_items[k] : "";
}

const char *const ddm_subscribed_items[DDM_SUBSCRIBED_N] = {"device.operating-system.version",
                                                            "device.operating-system.build-version",
                                                            "device.model.family"};

bool ddm_policy(const struct profile_policy *p)
{
    return p->ddm && p->keychain == PROFILE_KEYCHAIN_DEVICE && p->linked.wifi == NULL &&
           p->linked.ethernet == NULL && p->linked.vpn == NULL;
}

bool ddm_capable(enum store_platform platform, const char *os_version)
{
    int64_t major = 0;
    char buf[16];
    size_t i;

    if (os_version == NULL)
        return false;
    for (i = 0; i + 1 < sizeof(buf) && os_version[i] >= '0' && os_version[i] <= '9'; i++)
        buf[i] = os_version[i];
    buf[i] = '\0';
    if (i == 0 || str_to_i64(buf, 0, 1000, &major) != 0)
        return false;
    switch (platform) {
    case STORE_PLATFORM_IOS:
    case STORE_PLATFORM_IPADOS:
        return major >= 17;
    case STORE_PLATFORM_MACOS:
        return major >= 14;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Computing declarations                                                                    */

static void digest_hex(const void *data, size_t len, char out[DDM_TOKEN_LEN + 1])
{
    unsigned char md[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];

    crypto_sha256(data, len, md);
    hex_encode_to(md, sizeof(md), hex, false);
    memcpy(out, hex, DDM_TOKEN_LEN);
    out[DDM_TOKEN_LEN] = '\0';
}

static char *canonical(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

    if (s == NULL)
        abort(); /* only on allocation failure */
    return s;
}

/* A plist value as JSON: data as base64, dates are not expected in a SCEP payload. */
static json_t *plist_json(plist_t p)
{
    switch (plist_get_node_type(p)) {
    case PLIST_DICT: {
        json_t *o = json_object();
        plist_dict_iter it = NULL;
        plist_dict_new_iter(p, &it);
        for (int guard = 0; guard < 4096; guard++) {
            char *key = NULL;
            plist_t v = NULL;
            plist_dict_next_item(p, it, &key, &v);
            if (key == NULL)
                break;
            json_object_set_new(o, key, plist_json(v));
            free(key);
        }
        free(it);
        return o;
    }
    case PLIST_ARRAY: {
        json_t *a = json_array();
        uint32_t n = plist_array_get_size(p);
        for (uint32_t i = 0; i < n; i++)
            json_array_append_new(a, plist_json(plist_array_get_item(p, i)));
        return a;
    }
    case PLIST_STRING:
        return json_string(plist_get_string_ptr(p, NULL));
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(p, &b);
        return json_boolean(b);
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        plist_get_uint_val(p, &u);
        return json_integer((json_int_t)u);
    }
    case PLIST_REAL: {
        double d = 0;
        plist_get_real_val(p, &d);
        return json_real(d);
    }
    case PLIST_DATA: {
        uint64_t len = 0;
        const char *d = plist_get_data_ptr(p, &len);
        char *b64 = base64_encode(d, (size_t)len);
        json_t *s = json_string(b64);
        free(b64);
        return s;
    }
    default:
        return json_null();
    }
}

/* The keys of com.apple.credential.scep (Apple's declarative/declarations/assets/credentials/
 * scep.yaml); the profile payload's others (KeyIsExtractable, AllowAllAppsAccess) belong to
 * the identity configuration. */
static const char *const g_scep_keys[] = {"URL",     "Name",       "Subject",       "Challenge",
                                          "Keysize", "Key Type",   "Key Usage",     "CAFingerprint",
                                          "Retries", "RetryDelay", "SubjectAltName"};

/* The credential from a policy's template (see ddm_scep_credential). */
static char *credential_of(const struct profile_template *t, const struct profile_device *dev,
                           struct scepter_error *err)
{
    struct buf xml = BUF_INIT;
    plist_t root = NULL, content = NULL, scep = NULL;
    json_t *all = NULL, *cred = NULL;
    char *out = NULL;

    if (profile_template_render(t, profile_template_is_uniform(t) ? NULL : dev, &xml, err) != 0)
        goto out;
    if (plistx_parse_dict(xml.data, xml.len, &root, err) != 0 ||
        plistx_get_array(root, "PayloadContent", true, &content, err) != 0)
        goto out;
    for (uint32_t i = 0; i < plist_array_get_size(content); i++) {
        plist_t item = plist_array_get_item(content, i);
        const char *type = NULL;
        if (plist_get_node_type(item) == PLIST_DICT &&
            plistx_get_string(item, "PayloadType", false, &type, err) == 0 && type != NULL &&
            strcmp(type, "com.apple.security.scep") == 0 &&
            plistx_get_dict(item, "PayloadContent", true, &scep, err) == 0)
            break;
        scep = NULL;
    }
    if (scep == NULL) {
        scepter_err(err, SCEPTER_EINTERNAL, "scep", "scep: the policy rendered no SCEP payload");
        goto out;
    }
    all = plist_json(scep);
    cred = json_object();
    for (size_t i = 0; i < ARRAY_LEN(g_scep_keys); i++) {
        json_t *v = json_object_get(all, g_scep_keys[i]);
        if (v != NULL)
            json_object_set(cred, g_scep_keys[i], v);
    }
    out = canonical(cred);
out:
    json_decref(all);
    json_decref(cred);
    plist_free(root);
    buf_free(&xml);
    return out;
}

char *ddm_scep_credential(const struct profile_policy *p, const char *identifier,
                          const struct profile_device *dev, struct scepter_error *err)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts o = {.identifier = identifier, .organization = NULL};
    struct profile_template *t = NULL;
    char *out = NULL;

    if (profile_template_new(p, &o, &t, &pr) != 0)
        (void)profile_problems_to_error(&pr, err);
    else
        out = credential_of(t, dev, err);
    profile_template_free(t);
    profile_problems_clear(&pr);
    return out;
}

char *ddm_root_pem(const struct profile_policy *p)
{
    const unsigned char *der = p->root_cert;
    X509 *x;
    char *pem;

    if (der == NULL || (x = d2i_X509(NULL, &der, (long)p->root_cert_len)) == NULL)
        return NULL;
    pem = crypto_cert_pem(x);
    X509_free(x);
    return pem;
}

void ddm_set_clear(struct ddm_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].identifier);
        json_decref(s->v[i].json);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* Add a declaration (payload stolen) and compute its ServerToken. */
static void set_add(struct ddm_set *s, size_t *cap, enum ddm_kind kind, const char *type,
                    const char *identifier, json_t *payload)
{
    struct ddm_decl *d;
    char *text;

    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        s->v = xreallocarray(s->v, *cap, sizeof(*s->v));
    }
    d = &s->v[s->n++];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->identifier = xstrdup(identifier);
    d->json =
        json_pack("{s:s,s:s,s:o}", "Type", type, "Identifier", identifier, "Payload", payload);
    text = canonical(d->json);
    digest_hex(text, strlen(text), d->token);
    free(text);
    json_object_set_new(d->json, "ServerToken", json_string(d->token));
}

static int cmp_decl(const void *a, const void *b)
{
    const struct ddm_decl *x = a, *y = b;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->identifier, y->identifier);
}

/* A copy of a computed declaration (the JSON shared, never changed once made). */
static void set_add_copy(struct ddm_set *s, size_t *cap, const struct ddm_decl *d)
{
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        s->v = xreallocarray(s->v, *cap, sizeof(*s->v));
    }
    s->v[s->n] = *d;
    s->v[s->n].identifier = xstrdup(d->identifier);
    s->v[s->n].json = json_incref(d->json);
    s->n++;
}

/* What a save or a request computes once for every device (struct ddm_cache). */
struct cached_policy {
    char *uid;
    struct profile_template *t; /* NULL: the policy could not be made a template (err) */
    char err[256];
    bool uniform;          /* the credential is the same for every device */
    struct ddm_set shared; /* its declarations but the credential asset */
    struct ddm_decl asset; /* the credential asset, when uniform (json NULL until made) */
};

struct ddm_cache {
    struct cached_policy *v;
    size_t n, cap;
    struct ddm_set global; /* the status subscription, its activation, the capabilities */
    bool has_global;
    /* policies read from the store, by id (mdm_ddm_sync_command) */
    struct cached_stored *stored;
    size_t nstored, storedcap;
};

struct cached_stored {
    int64_t id;
    struct store_policy sp;
    struct profile_policy pp;
    bool usable; /* a DDM policy (the document parsed) */
};

struct ddm_cache *ddm_cache_new(void)
{
    return xcalloc(1, sizeof(struct ddm_cache));
}

void ddm_cache_free(struct ddm_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].uid);
        profile_template_free(c->v[i].t);
        ddm_set_clear(&c->v[i].shared);
        free(c->v[i].asset.identifier);
        json_decref(c->v[i].asset.json);
    }
    free(c->v);
    ddm_set_clear(&c->global);
    for (size_t i = 0; i < c->nstored; i++) {
        store_policy_clear(&c->stored[i].sp);
        profile_policy_clear(&c->stored[i].pp);
    }
    free(c->stored);
    free(c);
}

/* The credential asset declaration for data (the credential's canonical JSON). */
static void add_asset(struct ddm_set *out, size_t *cap, const char *id, const char *url,
                      const char *data)
{
    char hash[2 * CRYPTO_SHA256_LEN + 1];
    unsigned char md[CRYPTO_SHA256_LEN];

    crypto_sha256(data, strlen(data), md);
    hex_encode_to(md, sizeof(md), hash, false);
    set_add(out, cap, DDM_ASSET, "com.apple.asset.credential.scep", id,
            json_pack("{s:{s:s,s:s,s:I,s:s},s:{s:s}}", "Reference", "DataURL", url, "ContentType",
                      "application/json", "Size", (json_int_t)strlen(data), "Hash-SHA-256", hash,
                      "Authentication", "Type", "MDM"));
}

/* A policy's declarations but the credential asset: the identity configuration, the root
 * certificate's asset and configuration, the activation. */
static void policy_shared(const struct ddm_policy_in *pol, const char *base, const char *base_url,
                          struct ddm_set *out, size_t *cap)
{
    char *asset = xasprintf("%s.scep", base), *conf = xasprintf("%s.identity", base),
         *act = xasprintf("%s.activation", base);
    unsigned char md[CRYPTO_SHA256_LEN];
    char hash[2 * CRYPTO_SHA256_LEN + 1];

    json_t *idp = json_pack("{s:s,s:b}", "CredentialAssetReference", asset, "KeyIsExtractable",
                            pol->policy->key_extractable);
    if (pol->policy->allow_all_apps_access) /* macOS only, as in the profile */
        json_object_set_new(idp, "AllowAllAppsAccess", json_true());
    set_add(out, cap, DDM_CONFIGURATION, "com.apple.configuration.security.identity", conf, idp);
    json_t *std = json_array();
    char *pem = ddm_root_pem(pol->policy);
    if (pem != NULL) {
        /* The policy's root certificate: a certificate asset (PEM) and the
         * configuration that installs it, activated with (before) the identity. */
        char *rasset = xasprintf("%s.root", base);
        char *rconf = xasprintf("%s.root-certificate", base);
        char *rurl = xasprintf("%s/mdm/ddm/asset/%s/root", base_url, pol->uid);
        crypto_sha256(pem, strlen(pem), md);
        hex_encode_to(md, sizeof(md), hash, false);
        set_add(out, cap, DDM_ASSET, "com.apple.asset.credential.certificate", rasset,
                json_pack("{s:{s:s,s:s,s:I,s:s},s:{s:s}}", "Reference", "DataURL", rurl,
                          "ContentType", "application/pem", "Size", (json_int_t)strlen(pem),
                          "Hash-SHA-256", hash, "Authentication", "Type", "MDM"));
        set_add(out, cap, DDM_CONFIGURATION, "com.apple.configuration.security.certificate", rconf,
                json_pack("{s:s}", "CredentialAssetReference", rasset));
        json_array_append_new(std, json_string(rconf));
        free(rasset);
        free(rconf);
        free(rurl);
        free(pem);
    }
    json_array_append_new(std, json_string(conf));
    set_add(out, cap, DDM_ACTIVATION, "com.apple.activation.simple", act,
            json_pack("{s:o}", "StandardConfigurations", std));
    free(asset);
    free(conf);
    free(act);
}

/* The declarations of every DDM-capable device (the status subscription and its activation)
 * and of every device (the server capabilities). */
static void global_decls(const char *prefix, bool capable, struct ddm_set *out, size_t *cap)
{
    if (capable) {
        /* The device facts the server keeps (do_status writes them to the device record): the
         * device reports them once in full, then whenever one changes. */
        char *sub = xasprintf("%s.ddm.status-subscriptions", prefix);
        char *sact = xasprintf("%s.ddm.status-activation", prefix);
        json_t *names = json_array();
        for (size_t i = 0; i < DDM_SUBSCRIBED_N; i++)
            json_array_append_new(names, json_pack("{s:s}", "Name", ddm_subscribed_items[i]));
        set_add(out, cap, DDM_CONFIGURATION,
                "com.apple.configuration.management.status-subscriptions", sub,
                json_pack("{s:o}", "StatusItems", names));
        set_add(out, cap, DDM_ACTIVATION, "com.apple.activation.simple", sact,
                json_pack("{s:[s]}", "StandardConfigurations", sub));
        free(sub);
        free(sact);
    }
    char *id = xasprintf("%s.ddm.server-capabilities", prefix);
    set_add(out, cap, DDM_MANAGEMENT, "com.apple.management.server-capabilities", id,
            json_pack("{s:s,s:{}}", "Version", "1.0", "SupportedFeatures"));
    free(id);
}

static struct cached_policy *cache_policy(struct ddm_cache *c, const struct ddm_policy_in *pol,
                                          const char *base, const char *base_url)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts o = {.identifier = base, .organization = NULL};
    struct cached_policy *cp;
    size_t cap = 0;

    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].uid, pol->uid) == 0)
            return &c->v[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->v = xreallocarray(c->v, c->cap, sizeof(*c->v));
    }
    cp = &c->v[c->n++];
    memset(cp, 0, sizeof(*cp));
    cp->uid = xstrdup(pol->uid);
    if (profile_template_new(pol->policy, &o, &cp->t, &pr) != 0) {
        struct scepter_error err;
        (void)profile_problems_to_error(&pr, &err);
        str_copy(cp->err, sizeof(cp->err), err.msg);
        profile_template_free(cp->t);
        cp->t = NULL;
    } else {
        cp->uniform = profile_template_is_uniform(cp->t);
        policy_shared(pol, base, base_url, &cp->shared, &cap);
    }
    profile_problems_clear(&pr);
    return cp;
}

int ddm_compute_cached(const struct ddm_policy_in *pol, size_t npol,
                       const struct profile_device *dev, const char *prefix, const char *base_url,
                       struct ddm_cache *cache, struct ddm_set *out, json_t *skipped,
                       struct scepter_error *err)
{
    struct ddm_cache *own = NULL;
    struct buf all = BUF_INIT;
    size_t cap = 0;
    bool capable;

    memset(out, 0, sizeof(*out));
    if (base_url == NULL || strncmp(base_url, "https://", 8) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "public_url",
                           "public_url: an https:// URL is required for DDM asset data");
    if (cache == NULL)
        cache = own = ddm_cache_new();
    for (size_t i = 0; i < npol; i++) {
        char *base = xasprintf("%s.policy.%s", prefix, pol[i].uid);
        struct cached_policy *cp = cache_policy(cache, &pol[i], base, base_url);
        struct scepter_error perr;
        char *data = NULL;

        if (cp->t == NULL) {
            if (skipped)
                json_array_append_new(
                    skipped, json_pack("{s:s,s:s}", "policy", pol[i].uid, "error", cp->err));
        } else if (cp->uniform && cp->asset.json != NULL) {
            set_add_copy(out, &cap, &cp->asset);
        } else if ((data = credential_of(cp->t, dev, &perr)) == NULL) {
            if (skipped)
                json_array_append_new(
                    skipped, json_pack("{s:s,s:s}", "policy", pol[i].uid, "error", perr.msg));
        } else {
            char *asset = xasprintf("%s.scep", base);
            char *url = xasprintf("%s/mdm/ddm/asset/%s", base_url, pol[i].uid);
            add_asset(out, &cap, asset, url, data);
            if (cp->uniform) { /* made once, copied for the next devices */
                cp->asset = out->v[out->n - 1];
                cp->asset.identifier = xstrdup(cp->asset.identifier);
                json_incref(cp->asset.json);
            }
            free(asset);
            free(url);
        }
        if (cp->t != NULL && (data != NULL || (cp->uniform && cp->asset.json != NULL))) {
            for (size_t k = 0; k < cp->shared.n; k++)
                set_add_copy(out, &cap, &cp->shared.v[k]);
            if (pol[i].updated > out->changed)
                out->changed = pol[i].updated;
        }
        free(data);
        free(base);
    }
    capable = dev != NULL && dev->platform != NULL &&
              ddm_capable(store_platform_parse(dev->platform), dev->os_version);
    if (capable) {
        if (!cache->has_global) {
            size_t gcap = 0;
            global_decls(prefix, true, &cache->global, &gcap);
            cache->has_global = true;
        }
        for (size_t k = 0; k < cache->global.n; k++)
            set_add_copy(out, &cap, &cache->global.v[k]);
    } else {
        global_decls(prefix, false, out, &cap);
    }
    qsort(out->v, out->n, sizeof(*out->v), cmp_decl);
    for (size_t i = 0; i < out->n; i++) {
        buf_puts(&all, ddm_kind_name(out->v[i].kind));
        buf_putc(&all, '\n');
        buf_puts(&all, out->v[i].identifier);
        buf_putc(&all, '\n');
        buf_puts(&all, out->v[i].token);
        buf_putc(&all, '\n');
    }
    digest_hex(all.data, all.len, out->token);
    buf_free(&all);
    ddm_cache_free(own);
    return 0;
}

int ddm_compute(const struct ddm_policy_in *pol, size_t npol, const struct profile_device *dev,
                const char *prefix, const char *base_url, struct ddm_set *out, json_t *skipped,
                struct scepter_error *err)
{
    return ddm_compute_cached(pol, npol, dev, prefix, base_url, NULL, out, skipped, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Status reports                                                                            */

void ddm_report_clear(struct ddm_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free((char *)r->items[i].reasons_json);
    free(r->items);
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

/* An optional member of the wanted JSON type at obj[key]; *out NULL when absent or null. */
static int member(json_t *obj, const char *key, json_type want, const char *path, json_t **out,
                  struct scepter_error *err)
{
    static const char *const names[] = {"an object", "an array",  "a string",  "an integer",
                                        "a number",  "a boolean", "a boolean", "null"};
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_typeof(v) != want && !(want == JSON_TRUE && json_is_boolean(v)))
        return scepter_err(err, SCEPTER_EINVAL, path, "%s: must be %s", path,
                           names[want < ARRAY_LEN(names) ? want : 0]);
    *out = v;
    return 0;
}

static int parse_decl_item(json_t *o, const char *kind, const char *path,
                           struct store_ddm_status *it, struct scepter_error *err)
{
    char f[256];
    json_t *v;
    int rc;

    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->valid = "unknown";
    if (!json_is_object(o))
        return scepter_err(err, SCEPTER_EINVAL, path, "%s: must be an object", path);
    snprintf(f, sizeof(f), "%s.identifier", path);
    if ((rc = member(o, "identifier", JSON_STRING, f, &v, err)) != 0)
        return rc;
    if (v == NULL || json_string_length(v) == 0)
        return scepter_err(err, SCEPTER_EINVAL, f, "%s: required", f);
    it->identifier = json_string_value(v);
    snprintf(f, sizeof(f), "%s.server-token", path);
    if ((rc = member(o, "server-token", JSON_STRING, f, &v, err)) != 0)
        return rc;
    it->server_token = v ? json_string_value(v) : NULL;
    snprintf(f, sizeof(f), "%s.active", path);
    if ((rc = member(o, "active", JSON_TRUE, f, &v, err)) != 0)
        return rc;
    it->active = v != NULL && json_is_true(v);
    snprintf(f, sizeof(f), "%s.valid", path);
    if ((rc = member(o, "valid", JSON_STRING, f, &v, err)) != 0)
        return rc;
    if (v != NULL) {
        const char *s = json_string_value(v);
        if (strcmp(s, "valid") != 0 && strcmp(s, "invalid") != 0 && strcmp(s, "unknown") != 0)
            return scepter_err(err, SCEPTER_EINVAL, f,
                               "%s: '%.40s' is not one of valid, invalid, unknown", f, s);
        it->valid = s;
    }
    snprintf(f, sizeof(f), "%s.reasons", path);
    if ((rc = member(o, "reasons", JSON_ARRAY, f, &v, err)) != 0)
        return rc;
    if (v != NULL && json_array_size(v) > 0)
        it->reasons_json = canonical(v);
    return 0;
}

int ddm_report_parse(const void *data, size_t len, struct ddm_report *out,
                     struct scepter_error *err)
{
    struct scepter_error perr;
    json_t *items, *mgmt = NULL, *decls = NULL, *dev = NULL, *os = NULL, *model = NULL, *v;
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((out->root = jsonx_parse_object(data, len, &perr)) == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "Data", "Data: not a JSON status report: %s",
                           perr.msg);
    if ((rc = member(out->root, "StatusItems", JSON_OBJECT, "StatusItems", &items, err)) != 0 ||
        (rc = member(out->root, "Errors", JSON_ARRAY, "Errors", &v, err)) != 0)
        goto fail;
    if (items == NULL) {
        rc = scepter_err(err, SCEPTER_EINVAL, "StatusItems", "StatusItems: required");
        goto fail;
    }
    if ((rc = member(items, "management", JSON_OBJECT, "StatusItems.management", &mgmt, err)) !=
            0 ||
        (mgmt && (rc = member(mgmt, "declarations", JSON_OBJECT,
                              "StatusItems.management.declarations", &decls, err)) != 0) ||
        (rc = member(items, "device", JSON_OBJECT, "StatusItems.device", &dev, err)) != 0 ||
        (dev && (rc = member(dev, "operating-system", JSON_OBJECT,
                             "StatusItems.device.operating-system", &os, err)) != 0) ||
        (dev &&
         (rc = member(dev, "model", JSON_OBJECT, "StatusItems.device.model", &model, err)) != 0))
        goto fail;
    if (os && (rc = member(os, "version", JSON_STRING,
                           "StatusItems.device.operating-system.version", &v, err)) != 0)
        goto fail;
    out->os_version = os && v ? json_string_value(v) : NULL;
    if (os && (rc = member(os, "build-version", JSON_STRING,
                           "StatusItems.device.operating-system.build-version", &v, err)) != 0)
        goto fail;
    out->build_version = os && v ? json_string_value(v) : NULL;
    if (model && (rc = member(model, "family", JSON_STRING, "StatusItems.device.model.family", &v,
                              err)) != 0)
        goto fail;
    out->model_family = model && v ? json_string_value(v) : NULL;
    if (decls == NULL)
        return 0;
    out->has_declarations = true;
    for (int k = 0; k < DDM_KINDS; k++) {
        char path[128];
        json_t *arr;
        size_t i;

        snprintf(path, sizeof(path), "StatusItems.management.declarations.%s", g_kind_status[k]);
        if ((rc = member(decls, g_kind_status[k], JSON_ARRAY, path, &arr, err)) != 0)
            goto fail;
        if (arr == NULL)
            continue;
        if (out->n + json_array_size(arr) > DDM_MAX_STATUS_ITEMS) {
            rc = scepter_err(err, SCEPTER_EINVAL, path, "%s: more than %d declarations", path,
                             DDM_MAX_STATUS_ITEMS);
            goto fail;
        }
        for (i = 0; i < json_array_size(arr); i++) {
            char ipath[160];
            if (out->n == cap) {
                cap = cap ? cap * 2 : 8;
                out->items = xreallocarray(out->items, cap, sizeof(*out->items));
            }
            snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
            rc = parse_decl_item(json_array_get(arr, i), g_kind_status[k], ipath,
                                 &out->items[out->n], err);
            out->n++;
            if (rc != 0)
                goto fail;
        }
    }
    return 0;
fail:
    ddm_report_clear(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* From the store                                                                            */

static bool policy_reaches(enum profile_platform pol, enum store_platform dev)
{
    if (pol == PROFILE_PLATFORM_MACOS)
        return dev == STORE_PLATFORM_MACOS;
    if (pol == PROFILE_PLATFORM_IOS)
        return dev == STORE_PLATFORM_IOS || dev == STORE_PLATFORM_IPADOS;
    return false;
}

/* The DDM policies reaching a device, with the device record. */
struct loaded {
    struct store_device dev;
    struct profile_device pdev;
    struct store_policy *sp; /* n entries */
    struct profile_policy *pp;
    bool *own; /* sp[i] and pp[i] are this value's (else a cache's or the caller's) */
    size_t n;
};

static void loaded_clear(struct loaded *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!l->own[i])
            continue;
        store_policy_clear(&l->sp[i]);
        profile_policy_clear(&l->pp[i]);
    }
    free(l->sp);
    free(l->pp);
    free(l->own);
    store_device_clear(&l->dev);
    memset(l, 0, sizeof(*l));
}

/* A policy read from the store and parsed, once per cache (NULL cache: never kept). */
static int stored_policy(struct mdm_ctx *ctx, struct ddm_cache *c, int64_t id,
                         struct cached_stored *out, bool *kept, struct scepter_error *err)
{
    struct scepter_error perr;
    int rc;

    *kept = false;
    if (c != NULL)
        for (size_t i = 0; i < c->nstored; i++)
            if (c->stored[i].id == id) {
                *out = c->stored[i];
                *kept = true;
                return 0;
            }
    memset(out, 0, sizeof(*out));
    out->id = id;
    if ((rc = store_policy_get(ctx->store, id, &out->sp, err)) != 0) {
        store_policy_clear(&out->sp);
        return rc;
    }
    out->usable = profile_policy_from_document(out->sp.document, &out->pp, &perr) == 0 &&
                  ddm_policy(&out->pp);
    if (c != NULL) {
        if (c->nstored == c->storedcap) {
            c->storedcap = c->storedcap ? c->storedcap * 2 : 8;
            c->stored = xreallocarray(c->stored, c->storedcap, sizeof(*c->stored));
        }
        c->stored[c->nstored++] = *out;
        *kept = true;
    }
    return 0;
}

static int load_policies(struct mdm_ctx *ctx, const int64_t *ids, size_t nids, struct loaded *l,
                         struct ddm_cache *cache, struct scepter_error *err);

static int load(struct mdm_ctx *ctx, const char *device_id, struct loaded *l,
                struct ddm_cache *cache, struct scepter_error *err)
{
    int64_t *ids = NULL;
    size_t nids = 0;
    int rc;

    memset(l, 0, sizeof(*l));
    if ((rc = store_device_get(ctx->store, device_id, &l->dev, err)) != 0)
        return rc;
    l->pdev.udid = l->dev.id;
    l->pdev.serial_number = l->dev.serial_number;
    l->pdev.device_name = l->dev.device_name;
    l->pdev.model = l->dev.model;
    l->pdev.product_name = l->dev.product_name;
    l->pdev.os_version = l->dev.os_version;
    l->pdev.platform = store_platform_name(l->dev.platform);
    if (!ddm_capable(l->dev.platform, l->dev.os_version))
        return 0;
    if (cache == NULL) { /* one request (a sync, an asset): the policies in one statement */
        struct store_policy *pols = NULL;
        size_t np = 0;
        if ((rc = store_policies_of_device(ctx->store, device_id, &pols, &np, err)) != 0)
            return rc;
        l->sp = xcalloc(np ? np : 1, sizeof(*l->sp));
        l->pp = xcalloc(np ? np : 1, sizeof(*l->pp));
        l->own = xcalloc(np ? np : 1, sizeof(*l->own));
        for (size_t i = 0; i < np; i++) {
            struct profile_policy pp;
            struct scepter_error perr;
            if (profile_policy_from_document(pols[i].document, &pp, &perr) != 0 ||
                !ddm_policy(&pp) || !policy_reaches(pp.platform, l->dev.platform)) {
                profile_policy_clear(&pp);
                store_policy_clear(&pols[i]);
                continue;
            }
            l->sp[l->n] = pols[i];
            l->pp[l->n] = pp;
            l->own[l->n] = true;
            l->n++;
        }
        free(pols); /* its entries moved to l or cleared */
        return 0;
    }
    if ((rc = store_policies_for_device(ctx->store, device_id, &ids, &nids, err)) != 0)
        return rc;
    rc = load_policies(ctx, ids, nids, l, cache, err);
    free(ids);
    return rc;
}

/* The DDM policies among ids[0..nids) that reach l->dev's platform, into l. */
static int load_policies(struct mdm_ctx *ctx, const int64_t *ids, size_t nids, struct loaded *l,
                         struct ddm_cache *cache, struct scepter_error *err)
{
    int rc;

    l->sp = xcalloc(nids ? nids : 1, sizeof(*l->sp));
    l->pp = xcalloc(nids ? nids : 1, sizeof(*l->pp));
    l->own = xcalloc(nids ? nids : 1, sizeof(*l->own));
    for (size_t i = 0; i < nids; i++) {
        struct cached_stored cs;
        bool kept = false;

        if ((rc = stored_policy(ctx, cache, ids[i], &cs, &kept, err)) != 0) {
            if (rc == SCEPTER_ENOTFOUND) /* deleted meanwhile */
                continue;
            return rc;
        }
        if (!cs.usable || !policy_reaches(cs.pp.platform, l->dev.platform)) {
            if (!kept) {
                store_policy_clear(&cs.sp);
                profile_policy_clear(&cs.pp);
            }
            continue;
        }
        l->sp[l->n] = cs.sp;
        l->pp[l->n] = cs.pp;
        l->own[l->n] = !kept;
        l->n++;
    }
    return 0;
}

static int compute_loaded(struct mdm_ctx *ctx, const struct loaded *l, struct ddm_cache *cache,
                          struct ddm_set *out, struct scepter_error *err)
{
    struct ddm_policy_in *in = xcalloc(l->n ? l->n : 1, sizeof(*in));
    json_t *skipped = json_array();
    int rc;

    for (size_t i = 0; i < l->n; i++) {
        in[i].uid = l->sp[i].uid;
        in[i].updated = l->sp[i].updated;
        in[i].policy = &l->pp[i];
    }
    rc = ddm_compute_cached(in, l->n, &l->pdev, ctx->cfg->payload_identifier_prefix,
                            ctx->cfg->public_url, cache, out, skipped, err);
    for (size_t i = 0; i < json_array_size(skipped); i++) {
        json_t *s = json_array_get(skipped, i);
        log_kv(LOG_LVL_WARN, "ddm_policy_skipped", "device", l->dev.id, "policy",
               json_string_value(json_object_get(s, "policy")), "msg",
               json_string_value(json_object_get(s, "error")), NULL);
    }
    json_decref(skipped);
    free(in);
    return rc;
}

int mdm_ddm_device_set(struct mdm_ctx *ctx, const char *device_id, struct ddm_set *out,
                       struct scepter_error *err)
{
    struct loaded l;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = load(ctx, device_id, &l, NULL, err)) == 0)
        rc = compute_loaded(ctx, &l, NULL, out, err);
    loaded_clear(&l);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The check-in message                                                                      */

static void reply_json(struct mdm_reply *reply, json_t *j)
{
    char *text = canonical(j);

    reply->status = 200;
    reply->content_type = "application/json";
    buf_reset(&reply->body);
    buf_puts(&reply->body, text);
    free(text);
    json_decref(j);
}

static void store_failed(struct mdm_reply *reply, const char *what, const struct scepter_error *err)
{
    mdm_reply_error(reply, err->code == SCEPTER_EUNAVAIL || err->code == SCEPTER_ESTORE ? 503 : 500,
                    "DeclarativeManagement: %s: %s", what, err->msg);
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void do_tokens(const struct ddm_set *s, struct mdm_reply *reply)
{
    char ts[32];

    iso_time(s->changed, ts);
    reply_json(reply, json_pack("{s:{s:s,s:s}}", "SyncTokens", "DeclarationsToken", s->token,
                                "Timestamp", ts));
}

static void do_items(const struct ddm_set *s, struct mdm_reply *reply)
{
    json_t *decls = json_object();

    for (int k = 0; k < DDM_KINDS; k++)
        json_object_set_new(decls, g_kind_items[k], json_array());
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(
            json_object_get(decls, g_kind_items[s->v[i].kind]),
            json_pack("{s:s,s:s}", "Identifier", s->v[i].identifier, "ServerToken", s->v[i].token));
    reply_json(reply, json_pack("{s:o,s:s}", "Declarations", decls, "DeclarationsToken", s->token));
}

static void do_declaration(const struct ddm_set *s, const char *rest, struct mdm_reply *reply)
{
    const char *slash = strchr(rest, '/');
    int kind = -1;

    if (slash != NULL)
        for (int k = 0; k < DDM_KINDS; k++)
            if (strlen(g_kind_names[k]) == (size_t)(slash - rest) &&
                strncmp(rest, g_kind_names[k], (size_t)(slash - rest)) == 0)
                kind = k;
    if (slash == NULL || kind < 0 || slash[1] == '\0') {
        mdm_reply_error(reply, 400,
                        "DeclarativeManagement: Endpoint: 'declaration/%.60s' is not "
                        "declaration/<activation|asset|configuration|management>/<identifier>",
                        rest);
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        if ((int)s->v[i].kind == kind && strcmp(s->v[i].identifier, slash + 1) == 0) {
            reply_json(reply, json_incref(s->v[i].json));
            return;
        }
    mdm_reply_error(reply, 404, "DeclarativeManagement: no %s declaration '%.200s' for this device",
                    g_kind_names[kind], slash + 1);
}

/* Is the declaration (status key kind) reported active? */
static bool reported_active(const struct ddm_report *rep, const char *kind, const char *identifier)
{
    for (size_t i = 0; i < rep->n; i++)
        if (strcmp(rep->items[i].kind, kind) == 0 &&
            strcmp(rep->items[i].identifier, identifier) == 0)
            return rep->items[i].active;
    return false;
}

enum handover { HANDOVER_WAIT, HANDOVER_REMOVE, HANDOVER_DROP };

/*
 * A handover whose declarations are not active: is the policy still on its way to the device
 * over DDM (wait), gone from it (deleted or untargeted: the profile goes too), or back on the
 * profile ("ddm" turned off: its InstallProfile replaced the profile, forget the handover)?
 */
static enum handover handover_left(struct mdm_ctx *ctx, const char *device_id, int64_t policy_id)
{
    struct scepter_error err;
    struct store_policy sp;
    struct profile_policy pp;
    int64_t *ids = NULL;
    size_t nids = 0;
    bool targeted = false;
    enum handover h = HANDOVER_WAIT;
    int rc;

    memset(&sp, 0, sizeof(sp));
    memset(&pp, 0, sizeof(pp));
    if ((rc = store_policy_get(ctx->store, policy_id, &sp, &err)) == SCEPTER_ENOTFOUND) {
        h = HANDOVER_REMOVE;
    } else if (rc == 0 &&
               store_policies_for_device(ctx->store, device_id, &ids, &nids, &err) == 0) {
        for (size_t k = 0; k < nids; k++)
            targeted |= ids[k] == policy_id;
        if (!targeted)
            h = HANDOVER_REMOVE;
        else if (profile_policy_from_document(sp.document, &pp, &err) == 0 && !ddm_policy(&pp))
            h = HANDOVER_DROP;
    }
    profile_policy_clear(&pp);
    store_policy_clear(&sp);
    free(ids);
    return h;
}

/*
 * A device moved from a policy's profile to its declarations (store_ddm_handover_add) keeps the
 * profile until its report shows the policy's activation and identity configuration active:
 * then the profile's RemoveProfile is queued (not linked to the policy, whose status follows
 * the declarations now) and the device pushed.  A policy deleted or untargeted meanwhile takes
 * its profile along the same way; one turned back to a profile ends the handover.
 */
static void finish_handovers(struct mdm_ctx *ctx, const struct mdm_ids *ids,
                             const struct ddm_report *rep, int64_t now)
{
    struct scepter_error err;
    int64_t *pids = NULL;
    char **uids = NULL;
    size_t n = 0;
    bool queued = false;

    if (store_ddm_handover_list(ctx->store, ids->enrollment_id, &pids, &uids, &n, &err) != 0) {
        log_kv(LOG_LVL_WARN, "ddm_handover", "enrollment", ids->enrollment_id, "msg", err.msg,
               NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char *base = xasprintf("%s.policy.%s", ctx->cfg->payload_identifier_prefix, uids[i]);
        char *act = xasprintf("%s.activation", base), *conf = xasprintf("%s.identity", base);
        enum handover h =
            reported_active(rep, "activations", act) && reported_active(rep, "configurations", conf)
                ? HANDOVER_REMOVE
                : handover_left(ctx, ids->device_id, pids[i]);
        if (h == HANDOVER_DROP &&
            store_ddm_handover_done(ctx->store, ids->enrollment_id, pids[i], &err) != 0)
            log_kv(LOG_LVL_WARN, "ddm_handover", "enrollment", ids->enrollment_id, "msg", err.msg,
                   NULL);
        if (h == HANDOVER_REMOVE) {
            struct mdm_command cmd;
            struct store_command sc;
            const char *one[1] = {ids->enrollment_id};
            mdm_command_remove_profile(base, NULL, &cmd);
            memset(&sc, 0, sizeof(sc));
            str_copy(sc.uuid, sizeof(sc.uuid), cmd.uuid);
            sc.request_type = cmd.request_type;
            sc.plist = (const unsigned char *)cmd.plist.data;
            sc.plist_len = cmd.plist.len;
            if (store_enqueue(ctx->store, &sc, one, 1, now, &err) != 0 ||
                store_ddm_handover_done(ctx->store, ids->enrollment_id, pids[i], &err) != 0) {
                log_kv(LOG_LVL_WARN, "ddm_handover", "enrollment", ids->enrollment_id, "msg",
                       err.msg, NULL);
            } else {
                queued = true;
                log_kv(LOG_LVL_INFO, "ddm_profile_removal_queued", "enrollment", ids->enrollment_id,
                       "profile", base, NULL);
            }
            mdm_command_clear(&cmd);
        }
        free(act);
        free(conf);
        free(base);
    }
    if (queued) {
        const char *one[1] = {ids->enrollment_id};
        mdm_push_enrollments(ctx, one, 1);
    }
    free(pids);
    store_strv_free(uids, n);
}

static void do_status(struct mdm_ctx *ctx, plist_t body, const struct mdm_ids *ids, int64_t now,
                      struct mdm_reply *reply)
{
    struct scepter_error err;
    struct ddm_report rep;
    struct store_ddm_report sr;
    const unsigned char *data = NULL;
    size_t len = 0;

    if (plistx_get_data(body, "Data", true, &data, &len, &err) != 0) {
        mdm_reply_error(reply, 400, "DeclarativeManagement: %s", err.msg);
        return;
    }
    if (ddm_report_parse(data, len, &rep, &err) != 0) {
        mdm_reply_error(reply, 400, "DeclarativeManagement: status: %s", err.msg);
        return;
    }
    memset(&sr, 0, sizeof(sr));
    sr.enrollment_id = ids->enrollment_id;
    sr.device_id = ids->device_id;
    sr.has_declarations = rep.has_declarations;
    sr.items = rep.items;
    sr.n = rep.n;
    sr.os_version = rep.os_version;
    sr.build_version = rep.build_version;
    sr.model_family = rep.model_family;
    if (store_ddm_report_save(ctx->store, &sr, now, &err) != 0) {
        /* a bad value, or an enrollment that is not this device's */
        if (err.code == SCEPTER_EINVAL || err.code == SCEPTER_ENOTFOUND)
            mdm_reply_error(reply, 400, "DeclarativeManagement: status: %s", err.msg);
        else
            store_failed(reply, "status", &err);
    } else {
        mdm_reply_empty(reply);
        if (rep.has_declarations)
            finish_handovers(ctx, ids, &rep, now);
        /* A reported OS version arrives first in full, then only when it changes (the status
         * subscription): one on which the device takes declarations moves its profiles. */
        if (rep.os_version != NULL) {
            struct store_device d;
            if (store_device_get(ctx->store, ids->device_id, &d, &err) == 0 &&
                ddm_capable(d.platform, d.os_version))
                mdm_policy_os_reported(ctx, ids->device_id, now);
            store_device_clear(&d);
        }
    }
    ddm_report_clear(&rep);
}

void mdm_ddm_checkin(struct mdm_ctx *ctx, plist_t body, const struct mdm_ids *ids, int64_t now,
                     struct mdm_reply *reply)
{
    struct scepter_error err;
    struct ddm_set set;
    const char *ep = NULL;

    memset(&set, 0, sizeof(set));
    if (plistx_get_string(body, "Endpoint", true, &ep, &err) != 0) {
        mdm_reply_error(reply, 400, "DeclarativeManagement: %s", err.msg);
        return;
    }
    if (strcmp(ep, "status") == 0) {
        do_status(ctx, body, ids, now, reply);
        return;
    }
    if (strcmp(ep, "tokens") != 0 && strcmp(ep, "declaration-items") != 0 &&
        strncmp(ep, "declaration/", 12) != 0) {
        mdm_reply_error(reply, 400,
                        "DeclarativeManagement: Endpoint: unknown '%.60s' (tokens, "
                        "declaration-items, declaration/<kind>/<identifier>, status)",
                        ep);
        return;
    }
    /* The declarations are the device channel's; a user channel holds none here. */
    if (ids->type == STORE_ENROLL_DEVICE || ids->type == STORE_ENROLL_USER_ENROLLMENT) {
        if (mdm_ddm_device_set(ctx, ids->device_id, &set, &err) != 0) {
            if (err.code == SCEPTER_EINVAL)
                mdm_reply_error(reply, 500, "DeclarativeManagement: %s", err.msg);
            else
                store_failed(reply, "declarations", &err);
            return;
        }
    } else {
        struct ddm_policy_in none;
        struct profile_device nodev;
        memset(&none, 0, sizeof(none));
        memset(&nodev, 0, sizeof(nodev));
        if (ddm_compute(&none, 0, &nodev, ctx->cfg->payload_identifier_prefix, ctx->cfg->public_url,
                        &set, NULL, &err) != 0) {
            mdm_reply_error(reply, 500, "DeclarativeManagement: %s", err.msg);
            return;
        }
    }
    if (strcmp(ep, "tokens") == 0)
        do_tokens(&set, reply);
    else if (strcmp(ep, "declaration-items") == 0)
        do_items(&set, reply);
    else
        do_declaration(&set, ep + 12, reply);
    ddm_set_clear(&set);
}

/* ---------------------------------------------------------------------------------------- */
/* Asset data                                                                                */

void mdm_ddm_asset_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                          struct mdm_reply *reply)
{
    static const char prefix[] = "/mdm/ddm/asset/";
    struct mdm_identity id;
    struct scepter_error err;
    struct loaded l;
    const char *uid = req->path + strlen(prefix);
    char *device_id = NULL, *data = NULL;
    int rc;

    memset(&id, 0, sizeof(id));
    memset(&l, 0, sizeof(l));
    reply->event = "ddm";
    reply->message_type = "asset";
    if (req->method != MDM_GET) {
        mdm_reply_error(reply, 405, "asset: method must be GET");
        mdm_reply_header(reply, "Allow", "GET");
        return;
    }
    if (mdm_identity_get(&ctx->conf->idcfg, req, now, &id, &err) != 0) {
        log_kv(LOG_LVL_WARN, "identity_refused", "req", req->id, "peer", req->peer_addr, "msg",
               err.msg, NULL);
        mdm_reply_error(reply, 403, "asset: %s", err.msg);
        goto out;
    }
    if ((rc = store_ddm_cert_device(ctx->store, id.hash, &device_id, &err)) != 0) {
        if (rc == SCEPTER_ENOTFOUND || rc == SCEPTER_EINVAL)
            mdm_reply_error(reply, 403, "asset: %s", err.msg);
        else
            store_failed(reply, "asset", &err);
        goto out;
    }
    str_copy(reply->enrollment, sizeof(reply->enrollment), device_id);
    if ((rc = load(ctx, device_id, &l, NULL, &err)) != 0) {
        store_failed(reply, "asset", &err);
        goto out;
    }
    size_t uid_len = strlen(uid);
    bool root = uid_len > 5 && strcmp(uid + uid_len - 5, "/root") == 0;
    if (root)
        uid_len -= 5;
    for (size_t i = 0; i < l.n; i++) {
        if (strlen(l.sp[i].uid) != uid_len || strncmp(l.sp[i].uid, uid, uid_len) != 0)
            continue;
        if (root) {
            data = ddm_root_pem(&l.pp[i]); /* NULL: the policy has none (403 below) */
            break;
        }
        char *base = xasprintf("%s.policy.%s", ctx->cfg->payload_identifier_prefix, l.sp[i].uid);
        data = ddm_scep_credential(&l.pp[i], base, &l.pdev, &err);
        free(base);
        if (data == NULL) {
            mdm_reply_error(reply, 409, "asset: %s", err.msg);
            goto out;
        }
        break;
    }
    if (data == NULL) {
        /* Never tell a device whether the asset exists for someone else. */
        log_kv(LOG_LVL_WARN, "ddm_asset_refused", "req", req->id, "device", device_id, "asset", uid,
               NULL);
        mdm_reply_error(reply, 403, "asset: no such asset for this device");
        goto out;
    }
    reply->status = 200;
    reply->content_type = root ? "application/pem" : "application/json";
    buf_reset(&reply->body);
    buf_puts(&reply->body, data);
out:
    free(data);
    free(device_id);
    loaded_clear(&l);
    mdm_identity_clear(&id);
}

/* ---------------------------------------------------------------------------------------- */
/* The DeclarativeManagement command and the policy hooks                                    */

void mdm_ddm_command(const struct ddm_set *s, struct mdm_command *out)
{
    plist_t root = plist_new_dict(), cmd = plist_new_dict();
    char ts[32], *tokens, *xml;
    size_t len;
    json_t *j;

    iso_time(s->changed, ts);
    j = json_pack("{s:s,s:s}", "DeclarationsToken", s->token, "Timestamp", ts);
    tokens = canonical(j);
    json_decref(j);
    memset(out, 0, sizeof(*out));
    uuid_new(out->uuid);
    out->request_type = xstrdup("DeclarativeManagement");
    plistx_set_string(cmd, "RequestType", "DeclarativeManagement");
    plistx_set_data(cmd, "Data", tokens, strlen(tokens));
    plist_dict_set_item(root, "Command", cmd);
    plistx_set_string(root, "CommandUUID", out->uuid);
    xml = plistx_to_xml(root, &len);
    buf_append(&out->plist, xml, len);
    free(xml);
    free(tokens);
    plist_free(root);
}

static int sync_loaded(struct mdm_ctx *ctx, struct loaded *lp, const struct mdm_ddm_change *ch,
                       bool reaches, struct ddm_cache *cache, struct mdm_command *out,
                       struct scepter_error *err);

int mdm_ddm_sync_command(struct mdm_ctx *ctx, const char *device_id,
                         const struct mdm_ddm_change *ch, bool reaches, struct ddm_cache *cache,
                         struct mdm_command *out, struct scepter_error *err)
{
    struct loaded l;
    int rc;

    if (ch == NULL || ch->pp == NULL || !ddm_policy(ch->pp))
        return 0;
    if ((rc = load(ctx, device_id, &l, cache, err)) == 0)
        rc = sync_loaded(ctx, &l, ch, reaches, cache, out, err);
    loaded_clear(&l);
    return rc;
}

int mdm_ddm_sync_command_for(struct mdm_ctx *ctx, const struct store_target_device *t,
                             const int64_t *policy_ids, size_t npolicies,
                             const struct mdm_ddm_change *ch, bool reaches, struct ddm_cache *cache,
                             struct mdm_command *out, struct scepter_error *err)
{
    struct loaded l;
    int rc = 0;

    if (ch == NULL || ch->pp == NULL || !ddm_policy(ch->pp))
        return 0;
    memset(&l, 0, sizeof(l));
    l.dev.platform = t->platform;
    l.pdev.udid = t->device_id;
    l.pdev.serial_number = t->serial_number;
    l.pdev.device_name = t->device_name;
    l.pdev.model = t->model;
    l.pdev.product_name = t->product_name;
    l.pdev.os_version = t->os_version;
    l.pdev.platform = store_platform_name(t->platform);
    if (ddm_capable(t->platform, t->os_version) &&
        (rc = load_policies(ctx, policy_ids, npolicies, &l, cache, err)) == 0) {
        /* l.dev borrows what sync_loaded reads: the id (logs), platform and OS version */
        l.dev.id = t->device_id;
        l.dev.os_version = t->os_version;
        rc = sync_loaded(ctx, &l, ch, reaches, cache, out, err);
        l.dev.id = NULL;
        l.dev.os_version = NULL;
    }
    loaded_clear(&l);
    return rc;
}

/* The tail of a sync command once the device and its policies are loaded. */
static int sync_loaded(struct mdm_ctx *ctx, struct loaded *lp, const struct mdm_ddm_change *ch,
                       bool reaches, struct ddm_cache *cache, struct mdm_command *out,
                       struct scepter_error *err)
{
    struct loaded l = *lp; /* moved back to *lp at the end */
    struct ddm_set set;
    size_t k = 0;
    int rc = 0;

    if (!ddm_capable(l.dev.platform, l.dev.os_version))
        goto out; /* rc 0: the profile channel */
    /* The policy as it will be, whatever the store holds of it now. */
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.sp[i].uid, ch->uid) == 0) {
            if (l.own[i]) {
                store_policy_clear(&l.sp[i]);
                profile_policy_clear(&l.pp[i]);
            }
            continue;
        }
        if (k != i) {
            l.sp[k] = l.sp[i];
            l.pp[k] = l.pp[i];
            l.own[k] = l.own[i];
        }
        k++;
    }
    l.n = k;
    if (reaches && policy_reaches(ch->pp->platform, l.dev.platform)) {
        l.sp = xreallocarray(l.sp, l.n + 1, sizeof(*l.sp));
        l.pp = xreallocarray(l.pp, l.n + 1, sizeof(*l.pp));
        l.own = xreallocarray(l.own, l.n + 1, sizeof(*l.own));
        memset(&l.sp[l.n], 0, sizeof(l.sp[l.n]));
        l.sp[l.n].uid = (char *)ch->uid; /* borrowed, as is the policy */
        l.sp[l.n].updated = ch->updated;
        l.pp[l.n] = *ch->pp;
        l.own[l.n] = false;
        l.n++;
    }
    if ((rc = compute_loaded(ctx, &l, cache, &set, err)) == 0) {
        if (set.changed < ch->updated)
            set.changed = ch->updated;
        mdm_ddm_command(&set, out);
        ddm_set_clear(&set);
        rc = 1;
    }
out:
    *lp = l;
    return rc;
}

/* "ddm" of one device's entry from its rows v[0..n) (the policy's declarations only). */
static json_t *policy_ddm_json(const struct store_ddm_status *v, size_t n)
{
    json_t *decls = json_array();
    bool any = false, all_active = true, invalid = false, unknown = false;

    for (size_t i = 0; i < n; i++) {
        const struct store_ddm_status *s = &v[i];
        any = true;
        /* assets are never "active" (only configurations and activations are) */
        if (!s->active && strcmp(s->kind, "assets") != 0)
            all_active = false;
        invalid |= strcmp(s->valid, "invalid") == 0;
        unknown |= strcmp(s->valid, "unknown") == 0;
        json_t *e =
            json_pack("{s:s,s:s,s:b,s:s,s:s?}", "kind", s->kind, "identifier", s->identifier,
                      "active", s->active, "valid", s->valid, "server_token", s->server_token);
        if (s->reasons_json)
            json_object_set_new(e, "reasons", json_loads(s->reasons_json, 0, NULL));
        json_array_append_new(decls, e);
    }
    return json_pack("{s:s,s:o}", "state",
                     !any         ? "unknown"
                     : invalid    ? "invalid"
                     : unknown    ? "unknown"
                     : all_active ? "active"
                                  : "inactive",
                     "declarations", decls);
}

void mdm_ddm_policy_status_json(struct mdm_ctx *ctx, const char *uid, bool policy_ddm,
                                const struct store_policy_device_status *st, size_t n,
                                json_t *const *entries)
{
    struct store_ddm_statuses rows;
    struct scepter_error err;
    const char **ids = xcalloc(n ? n : 1, sizeof(*ids));
    bool *ddm = xcalloc(n ? n : 1, sizeof(*ddm));
    char *prefix = xasprintf("%s.policy.%s.", ctx->cfg->payload_identifier_prefix, uid);
    size_t nids = 0;
    int rc;

    memset(&rows, 0, sizeof(rows));
    /* A user channel's entry (a user-keychain policy) is always a profile. */
    for (size_t i = 0; i < n; i++) {
        ddm[i] = policy_ddm && st[i].enrollment_id != NULL &&
                 strcmp(st[i].device_id, st[i].enrollment_id) == 0 &&
                 ddm_capable(st[i].platform, st[i].os_version);
        json_object_set_new(entries[i], "delivery", json_string(ddm[i] ? "ddm" : "profile"));
        if (ddm[i])
            ids[nids++] = st[i].enrollment_id;
    }
    rc = store_ddm_status_page(ctx->store, ids, nids, prefix, &rows, &err);
    for (size_t i = 0; i < n; i++) {
        if (!ddm[i])
            continue;
        if (rc != 0) {
            json_object_set_new(entries[i], "ddm", json_pack("{s:s}", "error", err.msg));
            continue;
        }
        /* the rows are ordered by enrollment id (bytewise): the first of this one's */
        size_t lo = 0, hi = rows.n, end;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(rows.v[mid].enrollment_id, st[i].enrollment_id) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (end = lo; end < rows.n && strcmp(rows.v[end].enrollment_id, st[i].enrollment_id) == 0;
             end++)
            ;
        json_object_set_new(entries[i], "ddm", policy_ddm_json(&rows.v[lo], end - lo));
    }
    store_ddm_statuses_clear(&rows);
    free(prefix);
    free(ddm);
    free(ids);
}
