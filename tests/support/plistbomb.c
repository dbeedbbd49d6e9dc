/*
 * Plist bombs (see plistbomb.h), written byte by byte: a small binary plist writer (4-byte
 * offsets and references) and string building for XML.
 */
#include "support/plistbomb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

struct bw {
    unsigned char *d;
    size_t len, cap;
    uint64_t *off;
    size_t n, ncap;
};

static void put(struct bw *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 64;
        w->d = xrealloc(w->d, w->cap);
    }
    memcpy(w->d + w->len, p, n);
    w->len += n;
}

static void put_be(struct bw *w, uint64_t v, unsigned n)
{
    unsigned char b[8];

    for (unsigned i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

/* Start the next object: record its offset; returns its index. */
static size_t begin(struct bw *w)
{
    if (w->n == w->ncap) {
        w->ncap = w->ncap ? w->ncap * 2 : 64;
        w->off = xreallocarray(w->off, w->ncap, sizeof(*w->off));
    }
    w->off[w->n] = w->len;
    return w->n++;
}

/* A marker with its count (extended to an 8-byte integer from 15 on). */
static void marker(struct bw *w, unsigned type, uint64_t count)
{
    if (count < 15) {
        put_be(w, type << 4 | (unsigned)count, 1);
    } else {
        put_be(w, type << 4 | 0xf, 1);
        put_be(w, 0x13, 1);
        put_be(w, count, 8);
    }
}

static size_t ascii(struct bw *w, const char *s)
{
    size_t i = begin(w);

    marker(w, 0x5, strlen(s));
    put(w, s, strlen(s));
    return i;
}

/* An array of refs (each 4 bytes). */
static size_t array(struct bw *w, const uint64_t *refs, size_t n)
{
    size_t i = begin(w);

    marker(w, 0xA, n);
    for (size_t k = 0; k < n; k++)
        put_be(w, refs[k], 4);
    return i;
}

/* The offset table and the trailer; returns the whole plist. */
static unsigned char *finish(struct bw *w, uint64_t top, size_t *len)
{
    uint64_t table = w->len;

    for (size_t i = 0; i < w->n; i++)
        put_be(w, w->off[i], 4);
    put(w, "\0\0\0\0\0\0", 6);
    put_be(w, 4, 1); /* offset size */
    put_be(w, 4, 1); /* reference size */
    put_be(w, w->n, 8);
    put_be(w, top, 8);
    put_be(w, table, 8);
    free(w->off);
    *len = w->len;
    return w->d;
}

static size_t npairs(const char *const *kv)
{
    size_t n = 0;

    while (kv && kv[2 * n])
        n++;
    return n;
}

/* "bplist00", the envelope's strings (keys 0..m-1 interleaved with values) and "Bomb". */
static size_t bin_start(struct bw *w, const char *const *kv)
{
    size_t m = npairs(kv);

    memset(w, 0, sizeof(*w));
    put(w, "bplist00", 8);
    for (size_t i = 0; i < m; i++) {
        ascii(w, kv[2 * i]);
        ascii(w, kv[2 * i + 1]);
    }
    ascii(w, "Bomb");
    return m;
}

/* The root dict {envelope..., Bomb: entry}; returns the plist. */
static unsigned char *bin_end(struct bw *w, size_t m, uint64_t entry, size_t *len)
{
    size_t root = begin(w);

    marker(w, 0xD, m + 1);
    for (size_t i = 0; i < m; i++)
        put_be(w, 2 * i, 4);
    put_be(w, 2 * m, 4);
    for (size_t i = 0; i < m; i++)
        put_be(w, 2 * i + 1, 4);
    put_be(w, entry, 4);
    return finish(w, root, len);
}

unsigned char *plistbomb_bin_nested(size_t n, int fanout, const char *const *kv, size_t *len)
{
    struct bw w;
    size_t m = bin_start(&w, kv), base = w.n;

    /* fanout: n arrays and the string they end in; else n arrays, the innermost empty */
    size_t linked = fanout ? n : n ? n - 1 : 0;
    for (size_t k = 0; k < linked; k++) {
        uint64_t next[2] = {base + k + 1, base + k + 1};
        array(&w, next, fanout ? 2 : 1);
    }
    if (fanout || n == 0)
        ascii(&w, "lol");
    else
        array(&w, NULL, 0);
    return bin_end(&w, m, base, len);
}

static unsigned char *xml_bomb(enum plistbomb_kind k, size_t n, const char *const *kv, size_t *len)
{
    static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                               "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                               "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                               "<plist version=\"1.0\">\n<dict>\n";
    const char *open = k == PLISTBOMB_XML_DEEP ? "<array>" : "<dict><key>k</key>";
    const char *close = k == PLISTBOMB_XML_DEEP ? "</array>" : "</dict>";
    struct bw w;

    memset(&w, 0, sizeof(w));
    put(&w, head, strlen(head));
    for (size_t i = 0; i < npairs(kv); i++) {
        put(&w, "<key>", 5);
        put(&w, kv[2 * i], strlen(kv[2 * i]));
        put(&w, "</key><string>", 14);
        put(&w, kv[2 * i + 1], strlen(kv[2 * i + 1]));
        put(&w, "</string>\n", 10);
    }
    put(&w, "<key>Bomb</key>\n", 16);
    for (size_t i = 0; i < n; i++)
        put(&w, open, strlen(open));
    if (k != PLISTBOMB_XML_DEEP)
        put(&w, "<true/>", 7);
    for (size_t i = 0; i < n; i++)
        put(&w, close, strlen(close));
    put(&w, "\n</dict>\n</plist>\n", 18);
    free(w.off);
    *len = w.len;
    return w.d;
}

unsigned char *plistbomb_make(enum plistbomb_kind k, size_t n, const char *const *kv, size_t *len)
{
    struct bw w;
    size_t m, base, entry;
    unsigned char *out;

    switch (k) {
    case PLISTBOMB_XML_DEEP:
        return xml_bomb(k, n ? n : 200000, kv, len);
    case PLISTBOMB_XML_DEEP_DICT:
        return xml_bomb(k, n ? n : 100000, kv, len);
    case PLISTBOMB_BIN_DEEP:
        return plistbomb_bin_nested(n ? n : 100000, 0, kv, len);
    case PLISTBOMB_BIN_FANOUT:
        return plistbomb_bin_nested(n ? n : 40, 1, kv, len);
    default:
        break;
    }
    m = bin_start(&w, kv);
    base = w.n;
    entry = base;
    switch (k) {
    case PLISTBOMB_BIN_CYCLE: {
        uint64_t a = base + 1, b = base;
        array(&w, &a, 1);
        array(&w, &b, 1);
        break;
    }
    case PLISTBOMB_BIN_SELF: {
        uint64_t a = base;
        array(&w, &a, 1);
        break;
    }
    case PLISTBOMB_BIN_BAD_OFFSET:
        ascii(&w, "x");
        w.off[base] = 0x7ffffff0;
        break;
    case PLISTBOMB_BIN_BAD_REF: {
        uint64_t r = 0x7ffffff;
        array(&w, &r, 1);
        break;
    }
    case PLISTBOMB_BIN_HUGE_COUNT:
        begin(&w);
        marker(&w, 0xA, (uint64_t)1 << 62);
        break;
    case PLISTBOMB_BIN_HUGE_STRING:
        begin(&w);
        marker(&w, 0x5, (uint64_t)1 << 40);
        put(&w, "abc", 3);
        break;
    case PLISTBOMB_BIN_OVERLAP: {
        /* an array of 1,000 references to one string, 1,000 more objects all at its offset,
         * and an array of those: distinct objects sharing bytes expand to 1,001,001 nodes */
        uint64_t refs[1000];
        size_t at;
        for (size_t i = 0; i < 1000; i++)
            refs[i] = base + 1;
        array(&w, refs, 1000);
        ascii(&w, "s");
        at = (size_t)w.off[base];
        for (size_t i = 0; i < 1000; i++) {
            begin(&w);
            w.off[w.n - 1] = at;
            refs[i] = w.n - 1;
        }
        entry = array(&w, refs, 1000);
        break;
    }
    case PLISTBOMB_BIN_BAD_TRAILER:
        ascii(&w, "x");
        break;
    default:
        ascii(&w, "?");
        break;
    }
    out = bin_end(&w, m, entry, len);
    if (k == PLISTBOMB_BIN_BAD_TRAILER) {
        /* the offset table offset (the trailer's last 8 bytes) past the end */
        uint64_t bad = (uint64_t)*len * 4;
        for (int i = 0; i < 8; i++)
            out[*len - 1 - i] = (unsigned char)(bad >> (8 * i));
    }
    return out;
}

const char *plistbomb_name(enum plistbomb_kind k)
{
    static const char *const names[] = {
        "xml-deep-arrays", "xml-deep-dicts",  "bin-deep",        "bin-fanout",
        "bin-cycle",       "bin-self-ref",    "bin-bad-offset",  "bin-bad-ref",
        "bin-huge-count",  "bin-huge-string", "bin-bad-trailer", "bin-overlap",
    };

    return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

int plistbomb_is_xml(enum plistbomb_kind k)
{
    return k == PLISTBOMB_XML_DEEP || k == PLISTBOMB_XML_DEEP_DICT;
}
