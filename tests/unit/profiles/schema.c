/*
 * Walks a rendered profile against Apple's YAML schemas with libyaml's document API, so a
 * misspelled key ("KeyType" for "Key Type"), a wrong type (a <real> PayloadVersion), a value
 * outside a rangelist or a missing required key fails the test that rendered it.
 */
#include "schema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/file.h"
#include "common/xmalloc.h"
#include "support/support.h"

struct sdoc {
    yaml_document_t doc;
    bool loaded;
};

/* A list of key specs (a YAML sequence) and the document it lives in. */
struct slist {
    yaml_document_t *d;
    yaml_node_t *seq;
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

static bool load(const char *type, struct sdoc *s)
{
    char *rel = xasprintf("apple-schemas/mdm/profiles/%s.yaml", type);
    char *path = tu_shared_path(rel);
    unsigned char *data = NULL;
    size_t len = 0;
    struct scepter_error err;
    yaml_parser_t parser;
    bool ok = false;

    free(rel);
    s->loaded = false;
    if (file_read(path, 4 * 1024 * 1024, &data, &len, &err) != 0)
        goto out;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, data, len);
    if (yaml_parser_load(&parser, &s->doc) == 1) {
        ok = yaml_document_get_root_node(&s->doc) != NULL;
        if (!ok)
            yaml_document_delete(&s->doc);
    }
    yaml_parser_delete(&parser);
    s->loaded = ok;
out:
    free(path);
    free(data);
    return ok;
}

static void unload(struct sdoc *s)
{
    if (s->loaded)
        yaml_document_delete(&s->doc);
    s->loaded = false;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (m == NULL || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(d, p->key));
        if (k && strcmp(k, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static size_t seq_len(yaml_node_t *s)
{
    return s && s->type == YAML_SEQUENCE_NODE
               ? (size_t)(s->data.sequence.items.top - s->data.sequence.items.start)
               : 0;
}

static yaml_node_t *seq_at(yaml_document_t *d, yaml_node_t *s, size_t i)
{
    return yaml_document_get_node(d, s->data.sequence.items.start[i]);
}

static yaml_node_t *find_spec(struct slist *lists, size_t nl, const char *key, yaml_document_t **d)
{
    for (size_t l = 0; l < nl; l++)
        for (size_t i = 0; i < seq_len(lists[l].seq); i++) {
            yaml_node_t *spec = seq_at(lists[l].d, lists[l].seq, i);
            const char *k = scalar(map_get(lists[l].d, spec, "key"));
            if (k && strcmp(k, key) == 0) {
                *d = lists[l].d;
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

static void check_os(struct ctx *c, yaml_document_t *d, yaml_node_t *spec, const char *path)
{
    yaml_node_t *os;
    const char *intro;

    if (c->os == NULL)
        return;
    os = map_get(d, map_get(d, spec, "supportedOS"), c->os);
    intro = scalar(map_get(d, os, "introduced"));
    if (intro && strcmp(intro, "n/a") == 0)
        problem(c, path, "not supported on %s", c->os);
}

static void check_dict(struct ctx *c, plist_t dict, struct slist *lists, size_t nl,
                       const char *path);
static void check_payload(struct ctx *c, plist_t payload, const char *path);

static void check_value(struct ctx *c, plist_t v, yaml_document_t *d, yaml_node_t *spec,
                        const char *path)
{
    const char *type = scalar(map_get(d, spec, "type"));
    bool any;
    plist_type want;
    yaml_node_t *rl, *fmt, *sub;

    check_os(c, d, spec, path);
    if (type == NULL)
        return;
    want = want_type(type, &any);
    if (!any && plist_get_node_type(v) != want) {
        problem(c, path, "wrong type, the schema says %s", type);
        return;
    }
    if ((rl = map_get(d, spec, "rangelist")) != NULL) {
        char *t = value_text(v);
        bool ok = false;
        for (size_t i = 0; t && i < seq_len(rl) && !ok; i++) {
            const char *r = scalar(seq_at(d, rl, i));
            ok = r && strcmp(r, t) == 0;
        }
        if (!ok)
            problem(c, path, "value %s is not in the schema's rangelist", t ? t : "?");
        free(t);
    }
    if ((fmt = map_get(d, spec, "format")) != NULL && plist_get_node_type(v) == PLIST_STRING) {
        regex_t re;
        const char *s = plist_get_string_ptr(v, NULL);
        if (regcomp(&re, scalar(fmt), REG_EXTENDED | REG_NOSUB) == 0) {
            if (regexec(&re, s, 0, NULL, 0) != 0)
                problem(c, path, "does not match the schema format %s", scalar(fmt));
            regfree(&re);
        }
    }
    sub = map_get(d, spec, "subkeys");
    if (plist_get_node_type(v) == PLIST_DICT && sub) {
        struct slist l = {d, sub};
        check_dict(c, v, &l, 1, path);
    } else if (plist_get_node_type(v) == PLIST_ARRAY && seq_len(sub) > 0) {
        yaml_node_t *item = seq_at(d, sub, 0), *rep = map_get(d, item, "repetition");
        uint32_t n = plist_array_get_size(v);
        if (rep) {
            const char *mn = scalar(map_get(d, rep, "min")), *mx = scalar(map_get(d, rep, "max"));
            char num[32];
            snprintf(num, sizeof(num), "%u", n);
            if ((mn && n < (uint32_t)strtoul(mn, NULL, 10)) ||
                (mx && n > (uint32_t)strtoul(mx, NULL, 10)))
                problem(c, path, "has %s items, outside the schema's repetition", num);
        }
        for (uint32_t i = 0; i < n; i++) {
            char *p = xasprintf("%s[%u]", path, i);
            plist_t it = plist_array_get_item(v, i);
            /* The profile's payload list: each payload has its own schema. */
            if (strcmp(path, "PayloadContent") == 0 && plist_get_node_type(it) == PLIST_DICT &&
                plist_dict_get_item(it, "PayloadType") != NULL)
                check_payload(c, it, p);
            else
                check_value(c, it, d, item, p);
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
    yaml_document_t *d;

    plist_dict_new_iter(dict, &it);
    for (;;) {
        key = NULL;
        plist_dict_next_item(dict, it, &key, &val);
        if (key == NULL)
            break;
        char *p = path[0] ? xasprintf("%s.%s", path, key) : xstrdup(key);
        yaml_node_t *spec = find_spec(lists, nl, key, &d);
        if (spec == NULL)
            spec = find_spec(lists, nl, "ANY", &d);
        if (spec == NULL)
            problem(c, p, "key not in the schema (misspelled?)");
        else
            check_value(c, val, d, spec, p);
        free(p);
        free(key);
    }
    free(it);
    for (size_t l = 0; l < nl; l++)
        for (size_t i = 0; i < seq_len(lists[l].seq); i++) {
            yaml_node_t *spec = seq_at(lists[l].d, lists[l].seq, i);
            const char *k = scalar(map_get(lists[l].d, spec, "key"));
            const char *pres = scalar(map_get(lists[l].d, spec, "presence"));
            if (k && pres && strcmp(pres, "required") == 0 && strcmp(k, "ANY") != 0 &&
                plist_dict_get_item(dict, k) == NULL) {
                char *p = path[0] ? xasprintf("%s.%s", path, k) : xstrdup(k);
                problem(c, p, "required key is missing");
                free(p);
            }
        }
}

static void check_payload(struct ctx *c, plist_t payload, const char *path)
{
    struct sdoc own, common;
    plist_t t = plist_dict_get_item(payload, "PayloadType");
    const char *type =
        t && plist_get_node_type(t) == PLIST_STRING ? plist_get_string_ptr(t, NULL) : NULL;

    if (type == NULL) {
        problem(c, path, "payload without a string PayloadType");
        return;
    }
    if (!load(type, &own)) {
        problem(c, path, "no schema for payload type %s", type);
        return;
    }
    if (!load("CommonPayloadKeys", &common)) {
        problem(c, path, "cannot load CommonPayloadKeys.yaml");
        unload(&own);
        return;
    }
    yaml_node_t *root = yaml_document_get_root_node(&own.doc);
    yaml_node_t *pl = map_get(&own.doc, root, "payload");
    if (c->os) {
        yaml_node_t *os = map_get(&own.doc, map_get(&own.doc, pl, "supportedOS"), c->os);
        if (os == NULL || (scalar(map_get(&own.doc, os, "introduced")) &&
                           strcmp(scalar(map_get(&own.doc, os, "introduced")), "n/a") == 0))
            problem(c, path, "payload type not supported on %s", c->os);
    }
    struct slist lists[2] = {
        {&own.doc, map_get(&own.doc, root, "payloadkeys")},
        {&common.doc,
         map_get(&common.doc, yaml_document_get_root_node(&common.doc), "payloadkeys")},
    };
    check_dict(c, payload, lists, 2, path);
    unload(&common);
    unload(&own);
}

size_t schema_check_profile(plist_t profile, const char *os, struct buf *problems)
{
    struct ctx c = {os, problems, 0};
    struct sdoc top;

    if (plist_get_node_type(profile) != PLIST_DICT) {
        problem(&c, "", "profile is not a dict");
        return c.n;
    }
    if (!load("TopLevel", &top)) {
        problem(&c, "", "cannot load TopLevel.yaml");
        return c.n;
    }
    struct slist l = {&top.doc,
                      map_get(&top.doc, yaml_document_get_root_node(&top.doc), "payloadkeys")};
    check_dict(&c, profile, &l, 1, "");
    unload(&top);
    return c.n;
}

char *schema_default(const char *payload_type, const char *path)
{
    struct sdoc s;
    char *copy = xstrdup(path), *save = NULL, *res = NULL;
    yaml_node_t *seq;

    if (!load(payload_type, &s)) {
        free(copy);
        return NULL;
    }
    seq = map_get(&s.doc, yaml_document_get_root_node(&s.doc), "payloadkeys");
    for (char *part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        yaml_node_t *spec = NULL;
        for (size_t i = 0; i < seq_len(seq) && !spec; i++) {
            yaml_node_t *cand = seq_at(&s.doc, seq, i);
            const char *k = scalar(map_get(&s.doc, cand, "key"));
            if (k && strcmp(k, part) == 0)
                spec = cand;
        }
        if (spec == NULL)
            break;
        const char *rest = save && *save ? save : NULL;
        if (rest == NULL) {
            const char *def = scalar(map_get(&s.doc, spec, "default"));
            res = def ? xstrdup(def) : NULL;
            break;
        }
        seq = map_get(&s.doc, spec, "subkeys");
    }
    free(copy);
    unload(&s);
    return res;
}
