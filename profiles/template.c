/*
 * Rendering a policy into a .mobileconfig, fast enough for fleets.  profile_template_new()
 * validates the policy and builds the whole profile once with libplist — the root payload
 * first, then the SCEP payload, with fresh PayloadUUIDs — writing a marker wherever a device
 * value goes.  The XML is then cut at the markers into literal segments and variable slots, so
 * rendering for one device is a few memcpy()s plus XML escaping of the device's values.  A
 * profile with no server-side variable is uniform: every device gets the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

#define MAX_DEVICE_VALUE 1024

struct seg {
    size_t off, len; /* literal bytes in t->lit; */
    int var;         /* or, when >= 0, the variable's index */
};

struct profile_template {
    char *lit; /* the XML with the markers taken out */
    size_t lit_len;
    struct seg *segs;
    size_t nsegs;
    char *identifier;
    enum profile_platform platform;
    const char *vars[64]; /* names of the variables used */
    size_t nvars;
};

void pl_payload_common(plist_t d, const char *type, const char *identifier, const char *uuid,
                       const char *display_name, const char *organization)
{
    if (display_name)
        plistx_set_string(d, "PayloadDisplayName", display_name);
    plistx_set_string(d, "PayloadIdentifier", identifier);
    if (organization)
        plistx_set_string(d, "PayloadOrganization", organization);
    plistx_set_string(d, "PayloadType", type);
    plistx_set_string(d, "PayloadUUID", uuid);
    plistx_set_uint(d, "PayloadVersion", 1);
}

bool pl_identifier_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || len > 200 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

char *pl_cert_display_name(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    char *name = NULL;

    if (cert == NULL)
        return xstrdup("certificate");
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx >= 0) {
        unsigned char *utf8 = NULL;
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
        int n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n > 0 && txt_valid_utf8((const char *)utf8, (size_t)n) &&
            memchr(utf8, '\0', (size_t)n) == NULL) {
            name = xmemdup0(utf8, (size_t)n);
            if (txt_has_ctl(name, false)) {
                free(name);
                name = NULL;
            }
        }
        OPENSSL_free(utf8);
    }
    if (name == NULL)
        name = crypto_cert_subject(cert);
    X509_free(cert);
    return name;
}

plist_t pl_tmpl_string(const char *s, enum profile_platform plat, uint64_t *used)
{
    struct buf b = BUF_INIT;
    plist_t node;

    pv_templatize(s, plat, &b, used);
    node = plist_new_string(b.data ? b.data : "");
    buf_free(&b);
    return node;
}

static plist_t tmpl_string(const char *s, enum profile_platform plat, uint64_t *used)
{
    return pl_tmpl_string(s, plat, used);
}

/* One subjectAltName kind: a string for one value, an array of strings for several. */
static void san_item(plist_t san, const char *key, const struct profile_strlist *l,
                     enum profile_platform plat, uint64_t *used)
{
    if (l->n == 0)
        return;
    if (l->n == 1) {
        plist_dict_set_item(san, key, tmpl_string(l->v[0], plat, used));
        return;
    }
    plist_t arr = plist_new_array();
    for (size_t i = 0; i < l->n; i++)
        plist_array_append_item(arr, tmpl_string(l->v[i], plat, used));
    plist_dict_set_item(san, key, arr);
}

static plist_t build_scep_content(const struct profile_policy *p, uint64_t *used)
{
    plist_t c = plist_new_dict();

    plistx_set_string(c, "URL", p->scep_url);
    if (p->scep_name)
        plistx_set_string(c, "Name", p->scep_name);
    if (p->scep_subject) {
        struct subj_attr *a = NULL;
        size_t n = 0;
        struct scepter_error err;
        if (subj_parse(p->scep_subject, "scep.subject", &a, &n, &err) == 0) {
            plist_t arr = plist_new_array();
            for (size_t i = 0; i < n; i++) {
                plist_t rdn = plist_new_array(), pair = plist_new_array();
                plist_array_append_item(pair, plist_new_string(a[i].name));
                plist_array_append_item(pair, tmpl_string(a[i].value, p->platform, used));
                plist_array_append_item(rdn, pair);
                plist_array_append_item(arr, rdn);
            }
            plist_dict_set_item(c, "Subject", arr);
        }
        subj_free(a, n);
    }
    if (p->scep_challenge)
        plistx_set_string(c, "Challenge", p->scep_challenge);
    plistx_set_uint(c, "Keysize", (uint64_t)p->key_size);
    plistx_set_string(c, "Key Type", "RSA");
    plistx_set_uint(c, "Key Usage", (uint64_t)p->key_usage);
    if (p->scep_fingerprint) {
        unsigned char *fp = NULL;
        size_t fplen = 0;
        if (hex_decode(p->scep_fingerprint, strlen(p->scep_fingerprint), &fp, &fplen) == 0)
            plistx_set_data(c, "CAFingerprint", fp, fplen);
        free(fp);
    }
    plistx_set_uint(c, "Retries", (uint64_t)p->retries);
    plistx_set_uint(c, "RetryDelay", (uint64_t)p->retry_delay);
    plistx_set_bool(c, "KeyIsExtractable", p->key_extractable);
    if (p->allow_all_apps_access)
        plistx_set_bool(c, "AllowAllAppsAccess", true);
    if (p->san_dns.n || p->san_ntpn.n || p->san_rfc822.n || p->san_uri.n) {
        plist_t san = plist_new_dict();
        san_item(san, "rfc822Name", &p->san_rfc822, p->platform, used);
        san_item(san, "dNSName", &p->san_dns, p->platform, used);
        san_item(san, "uniformResourceIdentifier", &p->san_uri, p->platform, used);
        san_item(san, "ntPrincipalName", &p->san_ntpn, p->platform, used);
        plist_dict_set_item(c, "SubjectAltName", san);
    }
    return c;
}

/* Cut the XML at the markers.  Returns -1 on a malformed marker (a bug). */
static int split(struct profile_template *t, const char *xml, size_t len)
{
    struct buf lit = BUF_INIT;
    size_t start = 0, cap = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && xml[i] != PV_MARK)
            continue;
        if (t->nsegs + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            t->segs = xreallocarray(t->segs, cap, sizeof(*t->segs));
        }
        if (i > start) {
            t->segs[t->nsegs++] = (struct seg){lit.len, i - start, -1};
            buf_append(&lit, xml + start, i - start);
        }
        if (i == len)
            break;
        /* PV_MARK digits PV_MARK */
        size_t j = i + 1;
        int var = 0;
        while (j < len && xml[j] >= '0' && xml[j] <= '9' && var < 1000)
            var = var * 10 + (xml[j++] - '0');
        if (j == i + 1 || j >= len || xml[j] != PV_MARK || pv_entry((size_t)var) == NULL) {
            buf_free(&lit);
            return -1;
        }
        t->segs[t->nsegs++] = (struct seg){0, 0, var};
        i = j;
        start = j + 1;
    }
    if (lit.data == NULL)
        buf_puts(&lit, "");
    t->lit = buf_steal(&lit, &t->lit_len);
    return 0;
}

int profile_template_new(const struct profile_policy *p, const struct profile_render_opts *o,
                         struct profile_template **out, struct profile_problems *pr)
{
    struct profile_template *t = NULL;
    plist_t top = NULL, content, scep, root;
    char *ident = NULL, *xml = NULL, *disp = NULL;
    char uuid_top[UUID_STR_LEN], uuid_scep[UUID_STR_LEN], uuid_root[UUID_STR_LEN];
    const char *org = o ? o->organization : NULL;
    uint64_t used = 0;
    size_t xml_len = 0;
    int rc = 0;

    *out = NULL;
    {
        /* The caller may have validated already: report each problem once. */
        struct profile_problems mine = PROFILE_PROBLEMS_INIT;
        rc = profile_policy_check(p, &mine);
        pp_merge(pr, &mine);
        profile_problems_clear(&mine);
        if (rc != 0)
            return SCEPTER_EINVAL;
    }
    ident = (o && o->identifier) ? xstrdup(o->identifier) : profile_default_identifier(p, NULL);
    if (!pl_identifier_ok(ident)) {
        profile_problems_add(pr, false, "identifier",
                             "\"%.80s\" is not a reverse-DNS identifier (letters, digits, '.', "
                             "'-', '_'; at most 200)",
                             ident);
        rc = SCEPTER_EINVAL;
        goto out;
    }
    if (org && (txt_has_ctl(org, false) || !txt_valid_utf8(org, strlen(org)))) {
        profile_problems_add(pr, false, "organization", "contains a control character");
        rc = SCEPTER_EINVAL;
        goto out;
    }

    top = plist_new_dict();
    content = plist_new_array();
    if (p->root_cert) {
        char *cn = pl_cert_display_name(p->root_cert, p->root_cert_len);
        char *id = xasprintf("%s.root", ident);
        root = plist_new_dict();
        plistx_set_data(root, "PayloadContent", p->root_cert, p->root_cert_len);
        disp = xasprintf("Root certificate: %s", cn);
        uuid_new(uuid_root);
        pl_payload_common(root, "com.apple.security.root", id, uuid_root, disp, org);
        plist_array_append_item(content, root);
        free(disp);
        disp = NULL;
        free(cn);
        free(id);
    }
    {
        char *id = xasprintf("%s.scep", ident);
        scep = plist_new_dict();
        plist_dict_set_item(scep, "PayloadContent", build_scep_content(p, &used));
        disp = xasprintf("SCEP: %s", p->scep_name ? p->scep_name : p->name);
        uuid_new(uuid_scep);
        pl_payload_common(scep, "com.apple.security.scep", id, uuid_scep, disp, org);
        plist_array_append_item(content, scep);
        free(id);
    }
    /* After the SCEP payload: they name its certificate. */
    pl_linked_render(p, content, ident, uuid_scep, org, &used);
    plist_dict_set_item(top, "PayloadContent", content);
    uuid_new(uuid_top);
    pl_payload_common(top, "Configuration", ident, uuid_top, p->name, org);
    if (p->notes)
        plistx_set_string(top, "PayloadDescription", p->notes);
    plistx_set_string(top, "PayloadScope",
                      p->keychain == PROFILE_KEYCHAIN_USER ? "User" : "System");
    plistx_set_uint(top, "TargetDeviceType", p->platform == PROFILE_PLATFORM_MACOS ? 5 : 1);

    xml = plistx_to_xml(top, &xml_len);
    t = xcalloc(1, sizeof(*t));
    t->platform = p->platform;
    if (xml == NULL || split(t, xml, xml_len) != 0) {
        profile_problems_add(pr, false, "profile", "libplist could not serialize the profile");
        rc = SCEPTER_EINTERNAL;
        goto out;
    }
    for (size_t i = 0; i < 64; i++)
        if (used & ((uint64_t)1 << i)) {
            size_t n;
            t->vars[t->nvars++] = profile_variables(&n)[i].name;
        }
    t->identifier = ident;
    ident = NULL;
    *out = t;
    t = NULL;
out:
    profile_template_free(t);
    plist_free(top);
    free(xml);
    free(disp);
    free(ident);
    return rc;
}

void profile_template_free(struct profile_template *t)
{
    if (t == NULL)
        return;
    free(t->lit);
    free(t->segs);
    free(t->identifier);
    free(t);
}

bool profile_template_is_uniform(const struct profile_template *t)
{
    return t->nvars == 0;
}

const char *profile_template_identifier(const struct profile_template *t)
{
    return t->identifier;
}

const char *const *profile_template_variables(const struct profile_template *t, size_t *n)
{
    *n = t->nvars;
    return t->vars;
}

/* Append v XML-escaped (text content: &, <, >). */
static void xml_escape(struct buf *b, const char *v, size_t len)
{
    const char *lit = v;

    buf_reserve(b, len + 16);
    for (const char *p = v; p < v + len; p++) {
        const char *rep;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        default:
            continue;
        }
        buf_append(b, lit, (size_t)(p - lit));
        buf_puts(b, rep);
        lit = p + 1;
    }
    buf_append(b, lit, (size_t)(v + len - lit));
}

static bool platform_matches(enum profile_platform policy, const char *dev)
{
    if (dev == NULL || dev[0] == '\0' || strcmp(dev, "unknown") == 0)
        return true; /* nothing known to contradict the policy */
    if (policy == PROFILE_PLATFORM_MACOS)
        return strcmp(dev, "macos") == 0;
    return strcmp(dev, "ios") == 0 || strcmp(dev, "ipados") == 0;
}

int profile_template_render(const struct profile_template *t, const struct profile_device *dev,
                            struct buf *out, struct scepter_error *err)
{
    size_t start = out->len;

    if (dev && !platform_matches(t->platform, dev->platform))
        return scepter_err(err, SCEPTER_EINVAL, "platform",
                           "platform: device %s is \"%s\" but the policy is for %s",
                           dev->udid ? dev->udid : "(no id)", dev->platform,
                           profile_platform_name(t->platform));
    buf_reserve(out, t->lit_len + 256);
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct seg *s = &t->segs[i];
        if (s->var < 0) {
            buf_append(out, t->lit + s->off, s->len);
            continue;
        }
        const struct pv_entry *e = pv_entry((size_t)s->var);
        size_t n;
        const char *name = profile_variables(&n)[s->var].name;
        const char *v = pv_fact_value(dev, e->fact);
        size_t vlen = v ? strlen(v) : 0;
        const char *why = NULL;
        if (vlen == 0)
            why = "has no";
        else if (vlen > MAX_DEVICE_VALUE)
            why = "has too long a";
        else if (!txt_valid_utf8(v, vlen) || txt_has_ctl(v, false))
            why = "has control characters or invalid UTF-8 in its";
        if (why != NULL) {
            /* Only the failure path pays for formatting. */
            char field[64];
            snprintf(field, sizeof(field), "%%%s%%", name);
            out->len = start;
            if (out->data)
                out->data[start] = '\0';
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: device %s %s %s to substitute",
                               field, dev && dev->udid ? dev->udid : "(unknown)", why,
                               e->fact_name);
        }
        xml_escape(out, v, vlen);
    }
    return 0;
}

int profile_render(const struct profile_policy *p, const struct profile_device *dev,
                   const struct profile_render_opts *o, char **xml, size_t *len,
                   struct profile_problems *pr)
{
    struct profile_template *t = NULL;
    struct buf b = BUF_INIT;
    struct scepter_error err;
    int rc;

    *xml = NULL;
    *len = 0;
    if ((rc = profile_template_new(p, o, &t, pr)) != 0)
        return rc;
    if ((rc = profile_template_render(t, dev, &b, &err)) != 0) {
        pp_add_raw(pr, false, err.field, err.msg);
        goto out;
    }
    *xml = buf_steal(&b, len);
out:
    buf_free(&b);
    profile_template_free(t);
    return rc;
}
