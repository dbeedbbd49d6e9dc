/*
 * The problem list validation fills: every error and warning with the field it concerns, so
 * the CLI can print one per line and the API can answer with the first (or all) of them.
 * Also the small text checks (control characters, UTF-8) the validators share.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

/* Past this many entries further problems are only counted (one summary line is kept). */
#define PP_MAX_LISTED 200

void profile_problems_clear(struct profile_problems *pr)
{
    if (pr == NULL)
        return;
    free(pr->v);
    pr->v = NULL;
    pr->n = pr->cap = pr->n_errors = 0;
}

void pp_add_raw(struct profile_problems *pr, bool warning, const char *field, const char *msg)
{
    struct profile_problem *p;

    if (pr == NULL)
        return;
    if (!warning)
        pr->n_errors++;
    if (pr->n > PP_MAX_LISTED)
        return;
    if (pr->n == pr->cap) {
        pr->cap = pr->cap ? pr->cap * 2 : 8;
        pr->v = xreallocarray(pr->v, pr->cap, sizeof(*pr->v));
    }
    p = &pr->v[pr->n++];
    p->warning = warning;
    str_copy(p->field, sizeof(p->field), field ? field : "");
    if (pr->n > PP_MAX_LISTED) {
        /* The last slot becomes a summary that names the field of the first one left out. */
        p->warning = false;
        snprintf(p->msg, sizeof(p->msg), "%s: ... more problems not listed", p->field);
        return;
    }
    str_copy(p->msg, sizeof(p->msg), msg);
}

void profile_problems_add(struct profile_problems *pr, bool warning, const char *field,
                          const char *fmt, ...)
{
    char reason[224], msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "%s: %s", field, reason);
    pp_add_raw(pr, warning, field, msg);
}

void pp_merge(struct profile_problems *dst, const struct profile_problems *src)
{
    for (size_t i = 0; i < src->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < dst->n && !seen; j++)
            seen = dst->v[j].warning == src->v[i].warning &&
                   strcmp(dst->v[j].field, src->v[i].field) == 0 &&
                   strcmp(dst->v[j].msg, src->v[i].msg) == 0;
        if (!seen)
            pp_add_raw(dst, src->v[i].warning, src->v[i].field, src->v[i].msg);
    }
}

bool pp_has_field(const struct profile_problems *pr, const char *field)
{
    size_t flen = strlen(field);

    for (size_t i = 0; pr && i < pr->n; i++) {
        const char *f = pr->v[i].field;
        if (strncmp(f, field, flen) == 0 && (f[flen] == '\0' || f[flen] == '.' || f[flen] == '['))
            return true;
    }
    return false;
}

const struct profile_problem *profile_problems_first_error(const struct profile_problems *pr)
{
    for (size_t i = 0; pr && i < pr->n; i++)
        if (!pr->v[i].warning)
            return &pr->v[i];
    return NULL;
}

int profile_problems_to_error(const struct profile_problems *pr, struct scepter_error *err)
{
    const struct profile_problem *p = profile_problems_first_error(pr);

    if (p == NULL) {
        if (pr == NULL || pr->n_errors == 0)
            return 0;
        return scepter_err(err, SCEPTER_EINVAL, NULL, "invalid policy");
    }
    return scepter_err(err, SCEPTER_EINVAL, p->field, "%s", p->msg);
}

json_t *profile_problems_to_json(const struct profile_problems *pr)
{
    json_t *root = json_object(), *arr = json_array();
    const struct profile_problem *first = profile_problems_first_error(pr);

    if (first != NULL) {
        json_object_set_new(root, "error", json_string(first->msg));
        json_object_set_new(root, "field", json_string(first->field));
    }
    for (size_t i = 0; pr && i < pr->n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "field", json_string(pr->v[i].field));
        json_object_set_new(o, "message", json_string(pr->v[i].msg));
        json_object_set_new(o, "severity", json_string(pr->v[i].warning ? "warning" : "error"));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "problems", arr);
    return root;
}

bool txt_has_ctl(const char *s, bool allow_ws)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x7f)
            return true;
        if (*p < 0x20) {
            if (allow_ws && (*p == '\t' || *p == '\n' || *p == '\r'))
                continue;
            return true;
        }
    }
    return false;
}

bool txt_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
            return false;
        p += n + 1;
    }
    return true;
}
