/*
 * The SCEP subject statement ("/C=US/O=ABCEnterprise/CN=foo/") and its conversion into
 * Apple's Subject array: one RDN per component, each RDN an array holding one [name, value]
 * pair.  Pure string handling; the admin guide allows one statement per policy.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

#define SUBJ_MAX_ATTRS 32

static const char *const g_short[] = {"C", "L", "ST", "O", "OU", "CN"};

/* Names people try that Apple's short list lacks, with the OID to use instead. */
static const struct {
    const char *name;
    const char *oid;
} g_hint[] = {
    {"DC", "0.9.2342.19200300.100.1.25"},
    {"UID", "0.9.2342.19200300.100.1.1"},
    {"E", "1.2.840.113549.1.9.1"},
    {"EMAILADDRESS", "1.2.840.113549.1.9.1"},
    {"SERIALNUMBER", "2.5.4.5"},
    {"STREET", "2.5.4.9"},
    {"T", "2.5.4.12"},
    {"TITLE", "2.5.4.12"},
    {"GN", "2.5.4.42"},
    {"SN", "2.5.4.4"},
};

void subj_free(struct subj_attr *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].name);
        free(a[i].value);
    }
    free(a);
}

/* A dotted OID: first arc 0..2, at least two arcs, no empty arcs or leading zeros. */
static bool oid_ok(const char *s)
{
    size_t arcs = 0;
    const char *p = s;

    if (!(s[0] >= '0' && s[0] <= '2'))
        return false;
    while (*p) {
        const char *start = p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == start || (p - start > 1 && *start == '0') || p - start > 20)
            return false;
        arcs++;
        if (*p == '.') {
            p++;
            if (*p == '\0')
                return false;
        } else if (*p != '\0') {
            return false;
        }
    }
    return arcs >= 2;
}

/*
 * Unescape one part ("\/" "\=" "\\"); returns -1 with err on a bad escape.
 */
static int unescape(const char *s, size_t len, const char *field, char **out,
                    struct scepter_error *err)
{
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            if (i + 1 >= len || (s[i + 1] != '/' && s[i + 1] != '=' && s[i + 1] != '\\')) {
                buf_free(&b);
                return scepter_err(err, SCEPTER_EINVAL, field,
                                   "%s: a backslash must be followed by '/', '=' or '\\' "
                                   "(escapes \\/ \\= \\\\)",
                                   field);
            }
            i++;
        }
        buf_putc(&b, s[i]);
    }
    if (b.data == NULL)
        buf_puts(&b, "");
    *out = buf_steal(&b, NULL);
    return 0;
}

static int parse_attr(const char *s, size_t len, size_t idx, const char *field,
                      struct subj_attr *out, struct scepter_error *err)
{
    size_t eq = len;
    char *name = NULL, *value = NULL;
    int rc = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '=') {
            eq = i;
            break;
        }
    }
    if (eq == len) {
        rc = scepter_err(err, SCEPTER_EINVAL, field,
                         "%s: component %zu (\"%.*s\") has no '='; write NAME=value", field,
                         idx + 1, (int)(len > 40 ? 40 : len), s);
        goto out;
    }
    if ((rc = unescape(s, eq, field, &name, err)) != 0 ||
        (rc = unescape(s + eq + 1, len - eq - 1, field, &value, err)) != 0)
        goto out;
    str_trim(name);
    if (name[0] == '\0') {
        rc = scepter_err(err, SCEPTER_EINVAL, field, "%s: component %zu has an empty name", field,
                         idx + 1);
        goto out;
    }
    if (value[0] == '\0') {
        rc = scepter_err(err, SCEPTER_EINVAL, field, "%s: %s has an empty value", field, name);
        goto out;
    }
    if (isdigit((unsigned char)name[0])) {
        if (!oid_ok(name)) {
            rc = scepter_err(err, SCEPTER_EINVAL, field,
                             "%s: \"%s\" is not a dotted OID (e.g. 2.5.4.3)", field, name);
            goto out;
        }
    } else {
        bool known = false;
        for (char *p = name; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        for (size_t i = 0; i < ARRAY_LEN(g_short) && !known; i++)
            known = strcmp(g_short[i], name) == 0;
        if (!known) {
            const char *oid = NULL;
            for (size_t i = 0; i < ARRAY_LEN(g_hint) && !oid; i++)
                if (strcmp(g_hint[i].name, name) == 0)
                    oid = g_hint[i].oid;
            if (oid)
                rc = scepter_err(err, SCEPTER_EINVAL, field,
                                 "%s: unknown name \"%s\"; Apple knows C, L, ST, O, OU, CN "
                                 "— write its OID instead (%s=...)",
                                 field, name, oid);
            else
                rc = scepter_err(err, SCEPTER_EINVAL, field,
                                 "%s: unknown name \"%s\"; use C, L, ST, O, OU, CN or a "
                                 "dotted OID",
                                 field, name);
            goto out;
        }
        if (strcmp(name, "C") == 0 && strchr(value, '%') == NULL &&
            !(strlen(value) == 2 && isalpha((unsigned char)value[0]) &&
              isalpha((unsigned char)value[1]))) {
            rc = scepter_err(err, SCEPTER_EINVAL, field,
                             "%s: C must be a two-letter country code, got \"%s\"", field, value);
            goto out;
        }
    }
    out->name = name;
    out->value = value;
    name = value = NULL;
out:
    free(name);
    free(value);
    return rc;
}

int subj_parse(const char *stmt, const char *field, struct subj_attr **out, size_t *n,
               struct scepter_error *err)
{
    struct subj_attr *attrs = NULL;
    size_t nattrs = 0, len, start;
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (stmt == NULL || stmt[0] == '\0')
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: empty", field);
    len = strlen(stmt);
    /* Optional slashes at both ends (an escaped trailing "\/" belongs to the value). */
    start = stmt[0] == '/' ? 1 : 0;
    if (len > start && stmt[len - 1] == '/') {
        size_t bs = 0;
        for (size_t i = len - 1; i > start && stmt[i - 1] == '\\'; i--)
            bs++;
        if (bs % 2 == 0)
            len--;
    }
    if (len <= start)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: no NAME=value component", field);

    for (size_t i = start, comp = start; i <= len; i++) {
        if (i < len && stmt[i] == '\\') {
            if (i + 1 < len) /* a lone trailing backslash is reported by unescape() */
                i++;
            continue;
        }
        if (i < len && stmt[i] != '/')
            continue;
        if (i == comp) {
            rc = scepter_err(err, SCEPTER_EINVAL, field,
                             "%s: empty component %zu (two slashes in a row?)", field, nattrs + 1);
            goto out;
        }
        if (nattrs == SUBJ_MAX_ATTRS) {
            rc = scepter_err(err, SCEPTER_EINVAL, field, "%s: more than %d components", field,
                             SUBJ_MAX_ATTRS);
            goto out;
        }
        attrs = xreallocarray(attrs, nattrs + 1, sizeof(*attrs));
        attrs[nattrs].name = attrs[nattrs].value = NULL;
        if ((rc = parse_attr(stmt + comp, i - comp, nattrs, field, &attrs[nattrs], err)) != 0)
            goto out;
        nattrs++;
        comp = i + 1;
    }
    *out = attrs;
    *n = nattrs;
    attrs = NULL;
out:
    if (attrs)
        subj_free(attrs, nattrs);
    return rc;
}

int profile_subject_parse(const char *stmt, const char *field, plist_t *out,
                          struct scepter_error *err)
{
    struct subj_attr *a = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if ((rc = subj_parse(stmt, field ? field : "subject", &a, &n, err)) != 0)
        return rc;
    plist_t arr = plist_new_array();
    for (size_t i = 0; i < n; i++) {
        plist_t rdn = plist_new_array(), pair = plist_new_array();
        plist_array_append_item(pair, plist_new_string(a[i].name));
        plist_array_append_item(pair, plist_new_string(a[i].value));
        plist_array_append_item(rdn, pair);
        plist_array_append_item(arr, rdn);
    }
    subj_free(a, n);
    *out = arr;
    return 0;
}
