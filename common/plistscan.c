/*
 * The plist pre-scan (see plistscan.h).  Binary: trailer and offset table, then one
 * depth-first walk of the object graph from the top object with an explicit stack, checking
 * each object it reaches (header, extent, references), each container visited once: its
 * expanded node count and height are remembered, so shared objects cost nothing more to scan
 * but still count once per use.  XML: one pass over the tags with a stack of open elements.
 */
#include "plistscan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define FIELD "body"

static void limits_of(const struct plistscan_limits *lim, unsigned *depth, uint64_t *nodes)
{
    *depth = lim && lim->max_depth ? lim->max_depth : PLISTSCAN_MAX_DEPTH;
    if (*depth > 255)
        *depth = 255; /* heights are kept in a byte */
    *nodes = lim && lim->max_nodes ? lim->max_nodes : PLISTSCAN_MAX_NODES;
    if (*nodes > UINT32_MAX - 1)
        *nodes = UINT32_MAX - 1; /* counts are kept in 32 bits */
}

/* ---------------------------------------------------------------------------------------- */
/* Binary                                                                                    */

enum {
    BP_SIMPLE = 0x0,
    BP_INT = 0x1,
    BP_REAL = 0x2,
    BP_DATE = 0x3,
    BP_DATA = 0x4,
    BP_ASCII = 0x5,
    BP_UTF16 = 0x6,
    BP_UID = 0x8,
    BP_ARRAY = 0xA,
    BP_SET = 0xC,
    BP_DICT = 0xD,
};

struct bin {
    const unsigned char *b;
    size_t len;
    unsigned off_size, ref_size;
    uint64_t nobj, top;
    size_t table;       /* the offset table; objects lie in [8, table) */
    uint64_t max_nodes; /* the limit asked for (the walk's is at most len) */
};

struct obj {
    unsigned type;
    size_t off;     /* of the marker byte */
    uint64_t count; /* elements (containers: pairs for a dict), bytes or UTF-16 units */
    size_t refs;    /* containers: offset of the first reference */
    size_t size;    /* the whole object */
};

static uint64_t be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static bool is_container(unsigned type)
{
    return type == BP_ARRAY || type == BP_SET || type == BP_DICT;
}

static uint64_t ref_at(const struct bin *x, size_t pos, uint64_t i)
{
    const unsigned char *p = x->b + pos + i * x->ref_size;

    switch (x->ref_size) { /* the common sizes without the loop: this is the hot path */
    case 1:
        return p[0];
    case 2:
        return (uint64_t)p[0] << 8 | p[1];
    case 4:
        return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
    default:
        return be(p, x->ref_size);
    }
}

/* Object idx's marker, count and extent, all checked against the object area. */
static int obj_read(const struct bin *x, uint64_t idx, struct obj *o, struct scepter_error *err)
{
    uint64_t off = be(x->b + x->table + idx * x->off_size, x->off_size);
    unsigned m, info, unit = 0;
    size_t avail, hdr = 1;

    memset(o, 0, sizeof(*o));
    if (off < 8 || off >= x->table)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: object %llu: offset %llu is outside the object area "
                           "(8..%zu)",
                           (unsigned long long)idx, (unsigned long long)off, x->table);
    o->off = (size_t)off;
    avail = x->table - o->off;
    m = x->b[o->off];
    o->type = m >> 4;
    info = m & 0xf;
    switch (o->type) {
    case BP_SIMPLE:
        if (info != 0x0 && info != 0x8 && info != 0x9)
            goto bad_marker;
        o->size = 1;
        break;
    case BP_INT:
        if (info > 4)
            goto bad_marker;
        o->size = 1 + ((size_t)1 << info);
        break;
    case BP_REAL:
        if (info != 2 && info != 3)
            goto bad_marker;
        o->size = 1 + ((size_t)1 << info);
        break;
    case BP_DATE:
        if (info != 3)
            goto bad_marker;
        o->size = 9;
        break;
    case BP_UID:
        if (info != 0 && info != 1 && info != 3 && info != 7)
            goto bad_marker; /* 1, 2, 4 or 8 bytes */
        o->size = 2 + info;
        break;
    case BP_DATA:
    case BP_ASCII:
        unit = 1;
        break;
    case BP_UTF16:
        unit = 2;
        break;
    case BP_ARRAY:
    case BP_SET:
        unit = x->ref_size;
        break;
    case BP_DICT:
        unit = 2 * x->ref_size;
        break;
    default:
        goto bad_marker;
    }
    if (unit) {
        o->count = info;
        if (info == 0xf) {
            unsigned im, n;
            if (avail < 2)
                goto past_area;
            im = x->b[o->off + 1];
            if ((im >> 4) != BP_INT || (im & 0xf) > 3)
                return scepter_err(err, SCEPTER_EINVAL, FIELD,
                                   "binary plist: object %llu at offset %zu: its count is not "
                                   "an integer of 1 to 8 bytes",
                                   (unsigned long long)idx, o->off);
            n = 1u << (im & 0xf);
            if (avail < 2 + (size_t)n)
                goto past_area;
            o->count = be(x->b + o->off + 2, n);
            hdr = 2 + n;
        }
        if (avail < hdr || o->count > (avail - hdr) / unit)
            return scepter_err(err, SCEPTER_EINVAL, FIELD,
                               "binary plist: object %llu at offset %zu declares %llu "
                               "%s, more than the %zu bytes left before the offset table",
                               (unsigned long long)idx, o->off, (unsigned long long)o->count,
                               is_container(o->type) ? "elements" : "bytes/characters",
                               avail - (avail < hdr ? avail : hdr));
        o->refs = o->off + hdr;
        o->size = hdr + (size_t)o->count * unit;
    }
    if (o->size > avail)
        goto past_area;
    return 0;
bad_marker:
    return scepter_err(err, SCEPTER_EINVAL, FIELD,
                       "binary plist: object %llu at offset %zu: unsupported object marker 0x%02x",
                       (unsigned long long)idx, o->off, m);
past_area:
    return scepter_err(err, SCEPTER_EINVAL, FIELD,
                       "binary plist: object %llu at offset %zu runs past the object area",
                       (unsigned long long)idx, o->off);
}

/* Every entry of the offset table points into the object area.  Objects themselves are
 * checked when the walk reaches them: libplist reads only what the top object reaches. */
static int bin_offsets(const struct bin *x, struct scepter_error *err)
{
    for (uint64_t i = 0; i < x->nobj; i++) {
        uint64_t off = be(x->b + x->table + i * x->off_size, x->off_size);
        if (off < 8 || off >= x->table)
            return scepter_err(err, SCEPTER_EINVAL, FIELD,
                               "binary plist: object %llu: offset %llu is outside the object "
                               "area (8..%zu)",
                               (unsigned long long)i, (unsigned long long)off, x->table);
    }
    return 0;
}

/*
 * Before a container is walked: every reference names an object, and a dict's keys are
 * strings (checked whole).  *work counts the references of every container checked: each is
 * a node of the expanded tree at least once (a container's first occurrence), so more of
 * them than max_nodes is more nodes than max_nodes; and more of them than the object area
 * holds means containers overlap.  So the walk's work is bounded by the size of the data.
 */
static int container_refs(const struct bin *x, uint64_t idx, const struct obj *o, uint64_t *work,
                          uint64_t max_nodes, struct scepter_error *err)
{
    uint64_t nrefs = o->type == BP_DICT ? 2 * o->count : o->count;
    struct obj k;
    int rc;

    *work += nrefs;
    /* Containers that do not overlap hold at most this many references between them: more
     * means objects alias each other's bytes, which no plist writer does, and would make the
     * walk's work out of proportion to the data. */
    if (*work > (x->table - 8) / x->ref_size)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: objects overlap (object %llu at offset %zu shares "
                           "its references with another object)",
                           (unsigned long long)idx, o->off);
    if (*work > max_nodes)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: more than %llu nodes once shared objects are expanded "
                           "(at object %llu)",
                           (unsigned long long)max_nodes, (unsigned long long)idx);
    for (uint64_t i = 0; i < nrefs; i++) {
        uint64_t r = ref_at(x, o->refs, i);
        if (r >= x->nobj)
            return scepter_err(err, SCEPTER_EINVAL, FIELD,
                               "binary plist: object %llu references object %llu; there are "
                               "only %llu",
                               (unsigned long long)idx, (unsigned long long)r,
                               (unsigned long long)x->nobj);
        if (o->type == BP_DICT && i < o->count) {
            if ((rc = obj_read(x, r, &k, err)) != 0)
                return rc;
            if (k.type != BP_ASCII && k.type != BP_UTF16)
                return scepter_err(err, SCEPTER_EINVAL, FIELD,
                                   "binary plist: dict object %llu has a key (object %llu) that "
                                   "is not a string",
                                   (unsigned long long)idx, (unsigned long long)r);
        }
    }
    return 0;
}

struct frame {
    uint64_t idx;
    uint64_t next, nvals; /* values walked, values in all */
    size_t vals;          /* offset of the first value reference */
    uint64_t nodes;       /* itself, its keys and the values walked so far */
    unsigned height;
};

enum { NEW = 0, OPEN = 1, DONE = 2 };

/* The walk from the top object: depth, cycles and expanded nodes. */
static int bin_walk(const struct bin *x, unsigned max_depth, uint64_t max_nodes,
                    struct plistscan_stats *st, struct scepter_error *err)
{
    unsigned char *state = NULL, *height = NULL;
    uint32_t *nodes = NULL;
    struct frame *stack = NULL;
    unsigned sp = 0;
    uint64_t work = 0;
    struct obj o;
    int rc;

    if ((rc = obj_read(x, x->top, &o, err)) != 0)
        return rc;
    if (!is_container(o.type)) {
        st->depth = 0;
        st->nodes = 1;
        return 0;
    }
    if ((rc = container_refs(x, x->top, &o, &work, max_nodes, err)) != 0)
        return rc;
    state = xcalloc((size_t)x->nobj, 1);
    height = xcalloc((size_t)x->nobj, 1);
    nodes = xreallocarray(NULL, (size_t)x->nobj, sizeof(*nodes));
    stack = xreallocarray(NULL, max_depth, sizeof(*stack));

#define PUSH(i, ob)                                                                                \
    do {                                                                                           \
        struct frame *f_ = &stack[sp++];                                                           \
        f_->idx = (i);                                                                             \
        f_->next = 0;                                                                              \
        f_->nvals = (ob).count;                                                                    \
        f_->vals = (ob).refs + ((ob).type == BP_DICT ? (size_t)(ob).count * x->ref_size : 0);      \
        f_->nodes = 1 + ((ob).type == BP_DICT ? (ob).count : 0);                                   \
        f_->height = 1;                                                                            \
        state[i] = OPEN;                                                                           \
    } while (0)

    PUSH(x->top, o);
    while (sp > 0) {
        struct frame *f = &stack[sp - 1];
        uint64_t add, c;
        unsigned h;

        if (f->nodes > max_nodes) {
            rc = scepter_err(err, SCEPTER_EINVAL, FIELD,
                             "binary plist: more than %llu nodes once shared objects are "
                             "expanded (object %llu is referenced too often; the limit is the "
                             "smaller of the plist's size in bytes and %llu)",
                             (unsigned long long)max_nodes, (unsigned long long)f->idx,
                             (unsigned long long)x->max_nodes);
            goto out;
        }
        if (f->next == f->nvals) {
            /* f is complete: remember it, and add it to its parent */
            add = f->nodes;
            h = f->height;
            state[f->idx] = DONE;
            nodes[f->idx] = (uint32_t)add;
            height[f->idx] = (unsigned char)h;
            if (--sp == 0) {
                st->depth = h;
                st->nodes = add;
                break;
            }
            f = &stack[sp - 1];
        } else if (state[c = ref_at(x, f->vals, f->next++)] == DONE) {
            /* checked before: a leaf (1 node, height 0) or a whole container */
            add = nodes[c];
            h = height[c];
        } else if (state[c] == OPEN) {
            rc = scepter_err(err, SCEPTER_EINVAL, FIELD,
                             "binary plist: object %llu contains itself (a reference cycle "
                             "through object %llu)",
                             (unsigned long long)c, (unsigned long long)f->idx);
            goto out;
        } else {
            if ((rc = obj_read(x, c, &o, err)) != 0)
                goto out;
            if (is_container(o.type)) {
                if (sp >= max_depth) {
                    rc = scepter_err(err, SCEPTER_EINVAL, FIELD,
                                     "binary plist: arrays/dicts nested deeper than %u (at object "
                                     "%llu)",
                                     max_depth, (unsigned long long)c);
                    goto out;
                }
                if ((rc = container_refs(x, c, &o, &work, max_nodes, err)) != 0)
                    goto out;
                PUSH(c, o);
                continue;
            }
            state[c] = DONE;
            nodes[c] = 1;
            height[c] = 0;
            add = 1;
            h = 0;
        }
        if (sp + h > max_depth) {
            rc = scepter_err(err, SCEPTER_EINVAL, FIELD,
                             "binary plist: arrays/dicts nested deeper than %u (under object "
                             "%llu)",
                             max_depth, (unsigned long long)f->idx);
            goto out;
        }
        f->nodes += add;
        if (f->nodes > max_nodes + 1)
            f->nodes = max_nodes + 1;
        if (h + 1 > f->height)
            f->height = h + 1;
    }
#undef PUSH
out:
    free(state);
    free(height);
    free(nodes);
    free(stack);
    return rc;
}

static int scan_binary(const unsigned char *b, size_t len, unsigned max_depth, uint64_t max_nodes,
                       struct plistscan_stats *st, struct scepter_error *err)
{
    const unsigned char *t;
    struct bin x;
    uint64_t table;
    int rc;

    if (len < 8 + 1 + 32)
        return scepter_err(err, SCEPTER_EINVAL, FIELD, "binary plist: %zu bytes is too short", len);
    t = b + len - 32;
    memset(&x, 0, sizeof(x));
    x.b = b;
    x.len = len;
    x.off_size = t[6];
    x.ref_size = t[7];
    x.nobj = be(t + 8, 8);
    x.top = be(t + 16, 8);
    table = be(t + 24, 8);
    if (x.off_size < 1 || x.off_size > 8 || x.ref_size < 1 || x.ref_size > 8)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: trailer: offset size %u / reference size %u is not 1 "
                           "to 8 bytes",
                           x.off_size, x.ref_size);
    if (x.nobj == 0)
        return scepter_err(err, SCEPTER_EINVAL, FIELD, "binary plist: trailer: no objects");
    if (x.nobj > max_nodes)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: trailer declares %llu objects, more than the limit "
                           "of %llu nodes",
                           (unsigned long long)x.nobj, (unsigned long long)max_nodes);
    if (x.top >= x.nobj)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: trailer: top object %llu of %llu objects",
                           (unsigned long long)x.top, (unsigned long long)x.nobj);
    if (table < 9 || table > len - 32 || x.nobj > (len - 32 - table) / x.off_size)
        return scepter_err(err, SCEPTER_EINVAL, FIELD,
                           "binary plist: trailer: an offset table of %llu entries at offset "
                           "%llu does not fit in %zu bytes",
                           (unsigned long long)x.nobj, (unsigned long long)table, len);
    x.table = (size_t)table;
    if ((rc = bin_offsets(&x, err)) != 0)
        return rc;
    /* Writers share scalars (strings, numbers), not containers: without shared containers a
     * binary plist has fewer nodes than bytes (each reference takes a byte at least).  More
     * is the fan-out of a bomb, and libplist would build every node of it. */
    x.max_nodes = max_nodes;
    if (max_nodes > len)
        max_nodes = len;
    return bin_walk(&x, max_depth, max_nodes, st, err);
}

/* ---------------------------------------------------------------------------------------- */
/* XML                                                                                       */

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);

    return (size_t)(end - p) < n ? NULL : memmem(p, (size_t)(end - p), needle, n);
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(name, want, n) == 0;
}

static bool is_value(const char *name, size_t n)
{
    static const char *const values[] = {"dict", "array", "key",   "string", "integer",
                                         "real", "true",  "false", "date",   "data"};

    for (size_t i = 0; i < ARRAY_LEN(values); i++)
        if (name_is(name, n, values[i]))
            return true;
    return false;
}

struct open_el {
    const char *name;
    size_t len;
    bool container;
};

static int scan_xml(const char *s, size_t len, unsigned max_depth, uint64_t max_nodes,
                    struct plistscan_stats *st, struct scepter_error *err)
{
    const char *p = s, *end = s + len;
    unsigned max_open = max_depth + 8, open = 0, depth = 0;
    struct open_el *stack = xreallocarray(NULL, max_open, sizeof(*stack));
    uint64_t nodes = 0;
    int rc = 0;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        rc = scepter_err(err, SCEPTER_EINVAL, FIELD, __VA_ARGS__);                                 \
        goto out;                                                                                  \
    } while (0)

    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p)), *name, *q;
        size_t at, nlen;
        bool closing, empty;
        char quote = 0;

        if (lt == NULL)
            break;
        at = (size_t)(lt - s);
        p = lt + 1;
        if (p < end && *p == '?') {
            if ((q = find(p, end, "?>")) == NULL)
                FAIL("XML plist: unterminated processing instruction at byte %zu", at);
            p = q + 2;
            continue;
        }
        if (end - p >= 3 && memcmp(p, "!--", 3) == 0) {
            if ((q = find(p + 3, end, "-->")) == NULL)
                FAIL("XML plist: unterminated comment at byte %zu", at);
            p = q + 3;
            continue;
        }
        if (end - p >= 8 && memcmp(p, "![CDATA[", 8) == 0) {
            if ((q = find(p + 8, end, "]]>")) == NULL)
                FAIL("XML plist: unterminated CDATA section at byte %zu", at);
            p = q + 3;
            continue;
        }
        if (p < end && *p == '!') {
            for (q = p; q < end && *q != '>'; q++)
                if (*q == '[')
                    FAIL("XML plist: a DOCTYPE with an internal subset (entity declarations, "
                         "byte %zu) is not accepted",
                         at);
            if (q == end)
                FAIL("XML plist: unterminated declaration at byte %zu", at);
            p = q + 1;
            continue;
        }
        closing = p < end && *p == '/';
        if (closing)
            p++;
        name = p;
        while (p < end && *p != '>' && *p != '/' && *p != ' ' && *p != '\t' && *p != '\r' &&
               *p != '\n' && *p != '<')
            p++;
        nlen = (size_t)(p - name);
        if (nlen == 0)
            FAIL("XML plist: malformed tag at byte %zu", at);
        for (q = p; q < end; q++) {
            if (quote) {
                if (*q == quote)
                    quote = 0;
            } else if (*q == '"' || *q == '\'') {
                quote = *q;
            } else if (*q == '>' || *q == '<') {
                break;
            }
        }
        if (q == end || *q != '>')
            FAIL("XML plist: unterminated tag <%.*s at byte %zu", (int)(nlen > 32 ? 32 : nlen),
                 name, at);
        empty = q[-1] == '/';
        p = q + 1;
        if (closing) {
            if (open == 0 || stack[open - 1].len != nlen ||
                memcmp(stack[open - 1].name, name, nlen) != 0)
                FAIL("XML plist: closing tag </%.*s> at byte %zu does not match the open "
                     "element",
                     (int)(nlen > 32 ? 32 : nlen), name, at);
            if (stack[--open].container)
                depth--;
            continue;
        }
        if (is_value(name, nlen) && ++nodes > max_nodes)
            FAIL("XML plist: more than %llu nodes", (unsigned long long)max_nodes);
        if (empty)
            continue;
        if (open == max_open)
            FAIL("XML plist: elements nested deeper than %u (byte %zu)", max_open, at);
        stack[open].name = name;
        stack[open].len = nlen;
        stack[open].container = name_is(name, nlen, "dict") || name_is(name, nlen, "array");
        if (stack[open++].container && ++depth > max_depth)
            FAIL("XML plist: arrays/dicts nested deeper than %u (byte %zu)", max_depth, at);
        if (depth > st->depth)
            st->depth = depth;
    }
    if (open > 0)
        FAIL("XML plist: element <%.*s> is not closed",
             (int)(stack[open - 1].len > 32 ? 32 : stack[open - 1].len), stack[open - 1].name);
    st->nodes = nodes;
#undef FAIL
out:
    free(stack);
    return rc;
}

int plistscan_check_stats(const void *buf, size_t len, const struct plistscan_limits *lim,
                          struct plistscan_stats *stats, struct scepter_error *err)
{
    struct plistscan_stats st;
    unsigned max_depth;
    uint64_t max_nodes;
    int rc;

    memset(&st, 0, sizeof(st));
    limits_of(lim, &max_depth, &max_nodes);
    if (buf == NULL || len == 0)
        return scepter_err(err, SCEPTER_EINVAL, FIELD, "empty body: expected a plist");
    if (len >= 6 && memcmp(buf, "bplist", 6) == 0) {
        if (len < 8 || memcmp(buf, "bplist00", 8) != 0)
            return scepter_err(err, SCEPTER_EINVAL, FIELD,
                               "binary plist: only version 00 (bplist00) is accepted");
        st.binary = 1;
        rc = scan_binary(buf, len, max_depth, max_nodes, &st, err);
    } else {
        rc = scan_xml(buf, len, max_depth, max_nodes, &st, err);
    }
    if (rc == 0 && stats)
        *stats = st;
    return rc;
}

int plistscan_check(const void *buf, size_t len, const struct plistscan_limits *lim,
                    struct scepter_error *err)
{
    return plistscan_check_stats(buf, len, lim, NULL, err);
}
