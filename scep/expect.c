/*
 * scep/expect.c — what a certificate issued against a bound one-time challenge must name.
 * When Scepter renders a profile with a one-time challenge for one device, it keeps the
 * subject and subjectAltNames that profile asks for with the challenge; a request that uses
 * the challenge for another subject or other names (another device's CSR, say) is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "scep/scep_int.h"

#define MAX_ITEMS 64

struct item {
    char key[64]; /* subject.CN, san.dns, ... */
    char *val;    /* owned */
};

struct items {
    struct item v[MAX_ITEMS];
    size_t n;
};

static void items_clear(struct items *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].val);
    it->n = 0;
}

static bool items_add(struct items *it, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (it->n == MAX_ITEMS || klen >= sizeof(it->v[0].key))
        return false;
    memcpy(it->v[it->n].key, key, klen);
    it->v[it->n].key[klen] = '\0';
    it->v[it->n].val = xmemdup0(val, vlen);
    it->n++;
    return true;
}

/* pattern: literal bytes, SCEP_EXPECT_ANY = one or more of anything. */
static bool glob(const char *p, const char *s)
{
    const char *star = NULL, *ss = NULL;

    while (*s) {
        if (*p == SCEP_EXPECT_ANY) {
            p++;
            s++;
            star = p;
            ss = s;
        } else if (*p != '\0' && *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star;
            s = ++ss;
        } else {
            return false;
        }
    }
    return *p == '\0';
}

/* For messages: the pattern with '*' for each wildcard. */
static void shown(const char *p, char *out, size_t n)
{
    size_t w = 0;
    for (; *p && w + 1 < n; p++)
        out[w++] = *p == SCEP_EXPECT_ANY ? '*' : *p;
    out[w] = '\0';
}

static bool cert_items(X509 *cert, struct items *it)
{
    const X509_NAME *name = X509_get_subject_name(cert);
    GENERAL_NAMES *gens;
    bool ok = true;

    for (int i = 0; ok && i < X509_NAME_entry_count(name); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        char key[64] = "subject.", oid[48];
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        if (nid != NID_undef)
            str_copy(key + 8, sizeof(key) - 8, OBJ_nid2sn(nid));
        else if (OBJ_obj2txt(oid, sizeof(oid), X509_NAME_ENTRY_get_object(e), 1) > 0)
            str_copy(key + 8, sizeof(key) - 8, oid);
        ok = n >= 0 && items_add(it, key, strlen(key), (const char *)utf8, (size_t)n);
        OPENSSL_free(utf8);
    }
    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; ok && gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const char *key = "san.other";
        const ASN1_STRING *v = NULL;
        switch (g->type) {
        case GEN_DNS:
            key = "san.dns";
            v = g->d.dNSName;
            break;
        case GEN_EMAIL:
            key = "san.email";
            v = g->d.rfc822Name;
            break;
        case GEN_URI:
            key = "san.uri";
            v = g->d.uniformResourceIdentifier;
            break;
        case GEN_OTHERNAME:
            if (OBJ_obj2nid(g->d.otherName->type_id) == NID_ms_upn &&
                g->d.otherName->value->type == V_ASN1_UTF8STRING) {
                key = "san.upn";
                v = g->d.otherName->value->value.utf8string;
            }
            break;
        default:
            break;
        }
        ok = items_add(it, key, strlen(key), v ? (const char *)ASN1_STRING_get0_data(v) : "",
                       v ? (size_t)ASN1_STRING_length(v) : 0);
    }
    GENERAL_NAMES_free(gens);
    return ok;
}

static bool parse_expect(const char *expect, struct items *it)
{
    for (const char *p = expect; *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL || !items_add(it, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1)))
            return false;
        p = nl ? nl + 1 : end;
    }
    return true;
}

/* The i-th item (0-based) whose key is key, or NULL. */
static const struct item *nth(const struct items *it, const char *key, size_t i)
{
    for (size_t k = 0; k < it->n; k++)
        if (strcmp(it->v[k].key, key) == 0 && i-- == 0)
            return &it->v[k];
    return NULL;
}

static size_t count(const struct items *it, const char *prefix)
{
    size_t n = 0;
    for (size_t k = 0; k < it->n; k++)
        n += strncmp(it->v[k].key, prefix, strlen(prefix)) == 0;
    return n;
}

int scep_expect_check(X509 *cert, const char *expect, char *why, size_t whylen)
{
    struct items want = {.n = 0}, have = {.n = 0};
    char a[200], b[200];
    int rc = -1;

    if (expect == NULL)
        return 0;
    if (!parse_expect(expect, &want) || !cert_items(cert, &have)) {
        snprintf(why, whylen, "the subject or names are too many to compare");
        goto out;
    }
    /* The subject: the same attributes in the same order. */
    if (count(&want, "subject.") != count(&have, "subject.")) {
        snprintf(why, whylen, "the subject has %zu attributes, the profile asked for %zu",
                 count(&have, "subject."), count(&want, "subject."));
        goto out;
    }
    for (size_t i = 0, w = 0, h = 0; i < count(&want, "subject."); i++, w++, h++) {
        while (strncmp(want.v[w].key, "subject.", 8) != 0)
            w++;
        while (strncmp(have.v[h].key, "subject.", 8) != 0)
            h++;
        if (strcmp(want.v[w].key, have.v[h].key) != 0 || !glob(want.v[w].val, have.v[h].val)) {
            shown(want.v[w].val, a, sizeof(a));
            shown(have.v[h].val, b, sizeof(b));
            snprintf(why, whylen, "%s=%s where the profile asked for %s=%s", have.v[h].key + 8, b,
                     want.v[w].key + 8, a);
            goto out;
        }
    }
    /* subjectAltNames: per type, the same number in the same order. */
    static const char *const types[] = {"san.dns", "san.email", "san.uri", "san.upn", "san.other"};
    for (size_t t = 0; t < ARRAY_LEN(types); t++) {
        if (count(&want, types[t]) != count(&have, types[t])) {
            snprintf(why, whylen, "%zu %s subjectAltNames where the profile asked for %zu",
                     count(&have, types[t]), types[t] + 4, count(&want, types[t]));
            goto out;
        }
        for (size_t i = 0; i < count(&want, types[t]); i++) {
            const struct item *x = nth(&want, types[t], i), *y = nth(&have, types[t], i);
            if (!glob(x->val, y->val)) {
                shown(x->val, a, sizeof(a));
                shown(y->val, b, sizeof(b));
                snprintf(why, whylen, "subjectAltName %s:%s where the profile asked for %s",
                         types[t] + 4, b, a);
                goto out;
            }
        }
    }
    rc = 0;
out:
    items_clear(&want);
    items_clear(&have);
    return rc;
}
