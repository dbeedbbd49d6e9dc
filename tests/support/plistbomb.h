/*
 * Plist bombs for tests: inputs that crash or exhaust a plist parser without limits, each
 * inside an envelope a device would send (a root dict of the given string keys and values, the
 * bomb under the key "Bomb"), so that everything about the request but the bomb is valid.
 */
#ifndef SCEPTER_TESTS_PLISTBOMB_H
#define SCEPTER_TESTS_PLISTBOMB_H

#include <stddef.h>

enum plistbomb_kind {
    PLISTBOMB_XML_DEEP,        /* n nested <array>s (default 200,000: ~3 MB) */
    PLISTBOMB_XML_DEEP_DICT,   /* n nested <dict><key>k</key>s (default 100,000) */
    PLISTBOMB_BIN_DEEP,        /* n nested arrays, one object each (default 100,000) */
    PLISTBOMB_BIN_FANOUT,      /* n arrays, each referencing the next twice: 2^n (default 40) */
    PLISTBOMB_BIN_CYCLE,       /* two arrays containing each other */
    PLISTBOMB_BIN_SELF,        /* an array containing itself */
    PLISTBOMB_BIN_BAD_OFFSET,  /* an offset table entry past the objects */
    PLISTBOMB_BIN_BAD_REF,     /* a reference to an object that does not exist */
    PLISTBOMB_BIN_HUGE_COUNT,  /* an array declaring 2^62 elements */
    PLISTBOMB_BIN_HUGE_STRING, /* a string declaring 2^40 bytes */
    PLISTBOMB_BIN_BAD_TRAILER, /* the offset table placed past the end of the data */
    PLISTBOMB_BIN_OVERLAP,     /* 1,000 objects aliasing one array of 1,000 references */
    PLISTBOMB_KIND_COUNT
};

const char *plistbomb_name(enum plistbomb_kind k);
/* Is it XML (else binary)? */
int plistbomb_is_xml(enum plistbomb_kind k);

/*
 * The bomb of kind k (size n, 0 = the default) in an envelope: kv is a NULL-terminated list
 * of key, value strings for the root dict (may be NULL).  Returns xmalloc'd bytes.
 */
unsigned char *plistbomb_make(enum plistbomb_kind k, size_t n, const char *const *kv, size_t *len);

/*
 * A binary plist without a bomb: the envelope plus "Bomb" = n nested arrays (depth n + 1 with
 * the root dict), or with fanout, n arrays each referencing the next twice and ending with a
 * string (2^n leaves).  For the limits' edges.
 */
unsigned char *plistbomb_bin_nested(size_t n, int fanout, const char *const *kv, size_t *len);

#endif
