/*
 * Walks a rendered profile against the facts of Apple's payload schemas
 * (tests/data/apple-schemas/profile-facts.json, made by scripts/schema-facts.py from
 * github.com/apple/device-management), so a misspelled key ("KeyType" for "Key Type"), a wrong
 * type (a <real> PayloadVersion), a value outside a rangelist or a missing required key fails
 * the test that rendered it.
 */
#include "schema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/xmalloc.h"
#include "support/support.h"

#define FACTS "apple-schemas/profile-facts.json"

/* A list of key specs (a JSON array of objects). */
struct slist {
    json_t *seq;
};

struct ctx {
    const char *os;
    struct buf *out;
    size_t n;
};

static void problem(struct ctx *c, const char *path, const char *fmt, ...) PRINTF(3, 4);
static void problem(struct ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_printf(c->out, "%s: %s\n", path[0] ? path : "(root)", msg);
    c->n++;
}

/* The facts of one payload type ({"keys": [...], "os": {...}}), or NULL.  Loaded once. */
static json_t *payload_facts(const char *type)
{
    static json_t *facts;

    if (facts == NULL) {
        char *path = tu_data_path(FACTS);
        json_error_t jerr;
        facts = json_load_file(path, 0, &jerr);
        if (facts == NULL)
            fprintf(stderr, "schema: %s:%d: %s\n", path, jerr.line, jerr.text);
        free(path);
        if (facts == NULL)
            return NULL;
    }
    return json_object_get(json_object_get(facts, "payloads"), type);
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_t *find_spec(struct slist *lists, size_t nl, const char *key)
{
    for (size_t l = 0; l < nl; l++) {
        size_t i;
        json_t *spec;
        json_array_foreach(lists[l].seq, i, spec)
        {
            const char *k = str(spec, "key");
            if (k && strcmp(k, key) == 0)
                return spec;
        }
    }
    return NULL;
}

static plist_type want_type(const char *t, bool *any)
{
    *any = false;
    if (strcmp(t, "<string>") == 0)
        return PLIST_STRING;
    if (strcmp(t, "<integer>") == 0)
        return PLIST_UINT;
    if (strcmp(t, "<boolean>") == 0)
        return PLIST_BOOLEAN;
    if (strcmp(t, "<data>") == 0)
        return PLIST_DATA;
    if (strcmp(t, "<array>") == 0)
        return PLIST_ARRAY;
    if (strcmp(t, "<dictionary>") == 0)
        return PLIST_DICT;
    if (strcmp(t, "<real>") == 0)
        return PLIST_REAL;
    if (strcmp(t, "<date>") == 0)
        return PLIST_DATE;
    *any = true;
    return PLIST_NONE;
}

/* The value as text for rangelist comparison (strings and integers). */
static char *value_text(plist_t v)
{
    switch (plist_get_node_type(v)) {
    case PLIST_STRING: {
        char *s = NULL;
        plist_get_string_val(v, &s);
        char *copy = xstrdup(s ? s : "");
        free(s);
        return copy;
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        plist_get_uint_val(v, &u);
        return xasprintf("%llu", (unsigned long long)u);
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(v, &b);
        return xstrdup(b ? "true" : "false");
    }
    default:
        return NULL;
    }
}

static void check_os(struct ctx *c, json_t *spec, const char *path)
{
    const char *intro;

    if (c->os == NULL)
        return;
    intro = str(json_object_get(spec, "os"), c->os);
    if (intro && strcmp(intro, "n/a") == 0)
        problem(c, path, "not supported on %s", c->os);
}

static void check_dict(struct ctx *c, plist_t dict, struct slist *lists, size_t nl,
                       const char *path);
static void check_payload(struct ctx *c, plist_t payload, const char *path);

static void check_value(struct ctx *c, plist_t v, json_t *spec, const char *path)
{
    const char *type = str(spec, "type"), *fmt;
    bool any;
    plist_type want;
    json_t *rl, *sub;

    check_os(c, spec, path);
    if (type == NULL)
        return;
    want = want_type(type, &any);
    /* Apple's text lets some string keys hold an array of strings (SubjectAltName's). */
    if (want == PLIST_STRING && plist_get_node_type(v) == PLIST_ARRAY &&
        json_is_true(json_object_get(spec, "string_or_array"))) {
        json_t *one = json_deep_copy(spec);
        json_object_del(one, "string_or_array");
        if (plist_array_get_size(v) == 0)
            problem(c, path, "an empty array; the schema wants a string or strings");
        for (uint32_t i = 0; i < plist_array_get_size(v); i++) {
            char *p = xasprintf("%s[%u]", path, i);
            check_value(c, plist_array_get_item(v, i), one, p);
            free(p);
        }
        json_decref(one);
        return;
    }
    if (!any && plist_get_node_type(v) != want) {
        problem(c, path, "wrong type, the schema says %s", type);
        return;
    }
    if ((rl = json_object_get(spec, "allowed")) != NULL) {
        char *t = value_text(v);
        bool ok = false;
        for (size_t i = 0; t && i < json_array_size(rl) && !ok; i++) {
            const char *r = json_string_value(json_array_get(rl, i));
            ok = r && strcmp(r, t) == 0;
        }
        if (!ok)
            problem(c, path, "value %s is not in the schema's rangelist", t ? t : "?");
        free(t);
    }
    if ((fmt = str(spec, "format")) != NULL && plist_get_node_type(v) == PLIST_STRING) {
        regex_t re;
        const char *s = plist_get_string_ptr(v, NULL);
        if (regcomp(&re, fmt, REG_EXTENDED | REG_NOSUB) == 0) {
            if (regexec(&re, s, 0, NULL, 0) != 0)
                problem(c, path, "does not match the schema format %s", fmt);
            regfree(&re);
        }
    }
    sub = json_object_get(spec, "subkeys");
    if (plist_get_node_type(v) == PLIST_DICT && sub) {
        struct slist l = {sub};
        check_dict(c, v, &l, 1, path);
    } else if (plist_get_node_type(v) == PLIST_ARRAY && json_array_size(sub) > 0) {
        json_t *item = json_array_get(sub, 0), *rep = json_object_get(item, "repetition");
        uint32_t n = plist_array_get_size(v);
        if (rep) {
            json_t *mn = json_object_get(rep, "min"), *mx = json_object_get(rep, "max");
            if ((mn && (json_int_t)n < json_integer_value(mn)) ||
                (mx && (json_int_t)n > json_integer_value(mx)))
                problem(c, path, "has %u items, outside the schema's repetition", n);
        }
        for (uint32_t i = 0; i < n; i++) {
            char *p = xasprintf("%s[%u]", path, i);
            plist_t it = plist_array_get_item(v, i);
            /* The profile's payload list: each payload has its own schema. */
            if (strcmp(path, "PayloadContent") == 0 && plist_get_node_type(it) == PLIST_DICT &&
                plist_dict_get_item(it, "PayloadType") != NULL)
                check_payload(c, it, p);
            else
                check_value(c, it, item, p);
            free(p);
        }
    }
}

static void check_dict(struct ctx *c, plist_t dict, struct slist *lists, size_t nl,
                       const char *path)
{
    plist_dict_iter it = NULL;
    char *key = NULL;
    plist_t val = NULL;

    plist_dict_new_iter(dict, &it);
    for (;;) {
        key = NULL;
        plist_dict_next_item(dict, it, &key, &val);
        if (key == NULL)
            break;
        char *p = path[0] ? xasprintf("%s.%s", path, key) : xstrdup(key);
        json_t *spec = find_spec(lists, nl, key);
        if (spec == NULL)
            spec = find_spec(lists, nl, "ANY");
        if (spec == NULL)
            problem(c, p, "key not in the schema (misspelled?)");
        else
            check_value(c, val, spec, p);
        free(p);
        free(key);
    }
    free(it);
    for (size_t l = 0; l < nl; l++) {
        size_t i;
        json_t *spec;
        json_array_foreach(lists[l].seq, i, spec)
        {
            const char *k = str(spec, "key");
            if (k && json_is_true(json_object_get(spec, "required")) && strcmp(k, "ANY") != 0 &&
                plist_dict_get_item(dict, k) == NULL) {
                char *p = path[0] ? xasprintf("%s.%s", path, k) : xstrdup(k);
                problem(c, p, "required key is missing");
                free(p);
            }
        }
    }
}

static void check_payload(struct ctx *c, plist_t payload, const char *path)
{
    json_t *own, *common;
    plist_t t = plist_dict_get_item(payload, "PayloadType");
    const char *type =
        t && plist_get_node_type(t) == PLIST_STRING ? plist_get_string_ptr(t, NULL) : NULL;

    if (type == NULL) {
        problem(c, path, "payload without a string PayloadType");
        return;
    }
    if ((own = payload_facts(type)) == NULL) {
        problem(c, path, "no schema facts for payload type %s (scripts/schema-facts.py TYPES)",
                type);
        return;
    }
    if ((common = payload_facts("CommonPayloadKeys")) == NULL) {
        problem(c, path, "no schema facts for CommonPayloadKeys in " FACTS);
        return;
    }
    if (c->os) {
        const char *intro = str(json_object_get(own, "os"), c->os);
        if (intro == NULL || strcmp(intro, "n/a") == 0)
            problem(c, path, "payload type not supported on %s", c->os);
    }
    struct slist lists[2] = {{json_object_get(own, "keys")}, {json_object_get(common, "keys")}};
    check_dict(c, payload, lists, 2, path);
}

size_t schema_check_profile(plist_t profile, const char *os, struct buf *problems)
{
    struct ctx c = {os, problems, 0};
    json_t *top;

    if (plist_get_node_type(profile) != PLIST_DICT) {
        problem(&c, "", "profile is not a dict");
        return c.n;
    }
    if ((top = payload_facts("TopLevel")) == NULL) {
        problem(&c, "", "no schema facts for TopLevel in " FACTS);
        return c.n;
    }
    struct slist l = {json_object_get(top, "keys")};
    check_dict(&c, profile, &l, 1, "");
    return c.n;
}

char *schema_default(const char *payload_type, const char *path)
{
    json_t *facts = payload_facts(payload_type), *seq;
    char *copy = xstrdup(path), *save = NULL, *res = NULL;

    if (facts == NULL) {
        free(copy);
        return NULL;
    }
    seq = json_object_get(facts, "keys");
    for (char *part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        struct slist l = {seq};
        json_t *spec = find_spec(&l, 1, part);
        if (spec == NULL)
            break;
        const char *rest = save && *save ? save : NULL;
        if (rest == NULL) {
            const char *def = str(spec, "default");
            res = def ? xstrdup(def) : NULL;
            break;
        }
        seq = json_object_get(spec, "subkeys");
    }
    free(copy);
    return res;
}
