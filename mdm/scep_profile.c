/*
 * Profiles that point at a built-in SCEP CA carry a one-time challenge of their own.
 *
 * A SCEP policy saved with "scep": {"scepter_ca": NAME} is stored with that CA's URL and
 * fingerprint and no challenge.  Every time such a policy is rendered for a device (saved,
 * updated, a device enrolling or joining a group later, a failed install queued again), the
 * rendering step calls in here: a fresh one-time challenge is made in the store for that
 * device — single use, expiring after scep_profile_challenge_hours — bound to the subject and
 * subjectAltNames that device's profile asks for, and put in the profile.  /scep then issues
 * against it only a certificate with that subject and those names (scep_expect_check), so
 * another device's request, or anyone else's, is refused even with the challenge in hand.
 *
 * The template is built once with a random placeholder as the challenge; each device's
 * rendering gets the placeholder replaced (same length, so no XML changes shape).
 */
#include <string.h>

#include <openssl/rand.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/scep_int.h"

#define CHALLENGE_HEX 32

char *mdm_scep_ca_url(const struct cfg *cfg, const char *name)
{
    const char *base = cfg->public_url;
    size_t n = strlen(base);

    while (n > 0 && base[n - 1] == '/')
        n--;
    return strcmp(name, "default") == 0 ? xasprintf("%.*s/scep", (int)n, base)
                                        : xasprintf("%.*s/scep/%s", (int)n, base, name);
}

const struct scep_ca *mdm_scep_policy_ca(const struct mdm_ctx *ctx, const char *url,
                                         const char *challenge)
{
    const struct mdm_scep_cas *s = ctx->conf ? ctx->conf->scep : NULL;

    if (url == NULL || !str_empty(challenge))
        return NULL;
    const char *base = ctx->cfg->public_url;
    size_t blen = strlen(base);

    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    for (size_t i = 0; s && i < s->n; i++) {
        const char *name = scep_ca_name(s->ca[i]);
        /* /scep and /scep/default are the same CA. */
        char *mine = mdm_scep_ca_url(ctx->cfg, name);
        char *named = xasprintf("%.*s/scep/%s", (int)blen, base, name);
        bool same = strcmp(url, mine) == 0 || strcmp(url, named) == 0;
        free(mine);
        free(named);
        if (same)
            return s->ca[i];
    }
    return NULL;
}

bool mdm_scep_otc_begin(const struct mdm_ctx *ctx, struct profile_policy *pp,
                        struct mdm_scep_otc *o)
{
    unsigned char raw[CHALLENGE_HEX / 2];

    memset(o, 0, sizeof(*o));
    o->ca = mdm_scep_policy_ca(ctx, pp->scep_url, pp->scep_challenge);
    if (o->ca == NULL)
        return false;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        o->ca = NULL;
        return false;
    }
    hex_encode_to(raw, sizeof(raw), o->placeholder, false);
    o->ttl = ctx->cfg->scep_profile_challenge_hours * 3600;
    free(pp->scep_challenge);
    pp->scep_challenge = xstrdup(o->placeholder);
    return true;
}

void mdm_scep_otc_end(struct profile_policy *pp, const struct mdm_scep_otc *o)
{
    if (o->ca == NULL)
        return;
    free(pp->scep_challenge);
    pp->scep_challenge = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* What the rendered profile asks for                                                        */

/* Is %name% (name of len n) one of the variables of the table? */
static bool known_variable(const char *name, size_t n)
{
    size_t nv;
    const struct profile_variable *v = profile_variables(&nv);

    for (size_t i = 0; i < nv; i++)
        if (strlen(v[i].name) == n && memcmp(v[i].name, name, n) == 0)
            return true;
    return false;
}

/*
 * Append one "key=value" line.  Variables left in the value are the ones the device resolves
 * itself (a Mac): %SerialNumber% and %HardwareUUID% (a Mac's UDID) become what Scepter knows
 * of the device, any other one stands for whatever the device fills in.
 */
static int expect_line(struct buf *b, const char *key, const char *val,
                       const struct profile_device *d, struct scepter_error *err)
{
    bool ctl = false;
    for (const unsigned char *p = (const unsigned char *)val; *p && !ctl; p++)
        ctl = *p < 0x20 || *p == 0x7f;
    if (ctl)
        return scepter_err(err, SCEPTER_EINVAL, key, "%s: a control character in the value", key);
    buf_printf(b, "%s=", key);
    for (const char *p = val; *p;) {
        const char *end = *p == '%' ? strchr(p + 1, '%') : NULL;
        if (end && end > p + 1 && known_variable(p + 1, (size_t)(end - p - 1))) {
            size_t n = (size_t)(end - p - 1);
            const char *known = NULL;
            if (n == 12 && memcmp(p + 1, "SerialNumber", n) == 0)
                known = d->serial_number;
            else if (n == 12 && memcmp(p + 1, "HardwareUUID", n) == 0)
                known = d->udid;
            if (!str_empty(known))
                buf_puts(b, known);
            else
                buf_putc(b, SCEP_EXPECT_ANY);
            p = end + 1;
            continue;
        }
        buf_putc(b, *p++);
    }
    buf_putc(b, '\n');
    return 0;
}

static int expect_san(struct buf *b, plist_t san, const char *pkey, const char *key,
                      const struct profile_device *d, struct scepter_error *err)
{
    plist_t v = plist_dict_get_item(san, pkey);
    int rc = 0;

    if (v && plist_get_node_type(v) == PLIST_STRING)
        return expect_line(b, key, plist_get_string_ptr(v, NULL), d, err);
    for (uint32_t i = 0;
         v && plist_get_node_type(v) == PLIST_ARRAY && rc == 0 && i < plist_array_get_size(v);
         i++) {
        plist_t s = plist_array_get_item(v, i);
        if (plist_get_node_type(s) == PLIST_STRING)
            rc = expect_line(b, key, plist_get_string_ptr(s, NULL), d, err);
    }
    return rc;
}

/* The expectation of the SCEP payload in a rendered profile. */
static int expect_of(const struct buf *xml, const struct profile_device *d, char **out,
                     struct scepter_error *err)
{
    plist_t top = NULL, content = NULL, scep = NULL;
    struct buf b = BUF_INIT;
    int rc;

    *out = NULL;
    if ((rc = plistx_parse_dict(xml->data, xml->len, &top, err)) != 0)
        return rc;
    content = plist_dict_get_item(top, "PayloadContent");
    for (uint32_t i = 0; content && plist_get_node_type(content) == PLIST_ARRAY &&
                         i < plist_array_get_size(content) && scep == NULL;
         i++) {
        plist_t pl = plist_array_get_item(content, i);
        plist_t type = plist_dict_get_item(pl, "PayloadType");
        if (type && plist_get_node_type(type) == PLIST_STRING &&
            strcmp(plist_get_string_ptr(type, NULL), "com.apple.security.scep") == 0)
            scep = plist_dict_get_item(pl, "PayloadContent");
    }
    if (scep == NULL || plist_get_node_type(scep) != PLIST_DICT) {
        rc = scepter_err(err, SCEPTER_EINTERNAL, "profile", "the profile has no SCEP payload");
        goto out;
    }
    plist_t subject = plist_dict_get_item(scep, "Subject");
    for (uint32_t i = 0; rc == 0 && subject && plist_get_node_type(subject) == PLIST_ARRAY &&
                         i < plist_array_get_size(subject);
         i++) {
        plist_t rdn = plist_array_get_item(subject, i);
        for (uint32_t k = 0;
             rc == 0 && plist_get_node_type(rdn) == PLIST_ARRAY && k < plist_array_get_size(rdn);
             k++) {
            plist_t pair = plist_array_get_item(rdn, k);
            if (plist_get_node_type(pair) != PLIST_ARRAY || plist_array_get_size(pair) != 2)
                continue;
            plist_t kn = plist_array_get_item(pair, 0), vn = plist_array_get_item(pair, 1);
            if (plist_get_node_type(kn) != PLIST_STRING || plist_get_node_type(vn) != PLIST_STRING)
                continue;
            const char *k_txt = plist_get_string_ptr(kn, NULL);
            int nid = OBJ_txt2nid(k_txt);
            char key[80];
            snprintf(key, sizeof(key), "subject.%s", nid != NID_undef ? OBJ_nid2sn(nid) : k_txt);
            rc = expect_line(&b, key, plist_get_string_ptr(vn, NULL), d, err);
        }
    }
    plist_t san = plist_dict_get_item(scep, "SubjectAltName");
    if (rc == 0 && san && plist_get_node_type(san) == PLIST_DICT) {
        rc = expect_san(&b, san, "dNSName", "san.dns", d, err);
        if (rc == 0)
            rc = expect_san(&b, san, "rfc822Name", "san.email", d, err);
        if (rc == 0)
            rc = expect_san(&b, san, "uniformResourceIdentifier", "san.uri", d, err);
        if (rc == 0)
            rc = expect_san(&b, san, "ntPrincipalName", "san.upn", d, err);
    }
    if (rc == 0) {
        if (b.len > 0 && b.data[b.len - 1] == '\n')
            b.data[--b.len] = '\0';
        *out = b.data ? buf_steal(&b, NULL) : xstrdup("");
    }
out:
    buf_free(&b);
    plist_free(top);
    return rc;
}

int mdm_scep_otc_apply(struct mdm_ctx *ctx, const struct mdm_scep_otc *o,
                       const struct profile_device *d, struct buf *xml, int64_t now,
                       struct scepter_error *err)
{
    char challenge[STORE_SCEP_CHALLENGE_LEN], *expect = NULL, *at;
    int rc;

    if (o == NULL || o->ca == NULL)
        return 0;
    if (d == NULL || str_empty(d->udid))
        return scepter_err(err, SCEPTER_EINVAL, "udid",
                           "a one-time challenge needs the device's UDID");
    at = xml->data ? memmem(xml->data, xml->len, o->placeholder, CHALLENGE_HEX) : NULL;
    if (at == NULL || memmem(at + 1, xml->len - (size_t)(at + 1 - xml->data), o->placeholder,
                             CHALLENGE_HEX) != NULL)
        return scepter_err(err, SCEPTER_EINTERNAL, "scep.challenge",
                           "scep.challenge: the rendered profile does not hold the challenge once");
    /* The placeholder is not what the device will send: compare without it. */
    if ((rc = expect_of(xml, d, &expect, err)) != 0)
        return rc;
    rc = store_scep_challenge_create_bound(ctx->store, scep_ca_name(o->ca), d->udid, expect,
                                           now + o->ttl, now, challenge, err);
    free(expect);
    if (rc != 0)
        return rc;
    memcpy(at, challenge, CHALLENGE_HEX);
    OPENSSL_cleanse(challenge, sizeof(challenge));
    return 0;
}
