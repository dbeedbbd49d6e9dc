/*
 * A bounded pre-scan of a plist from the network, before libplist sees it.  libplist builds
 * the whole tree recursively: a deeply nested document overflows the stack (in parsing or in
 * plist_free), a binary plist whose containers reference the same object many times expands
 * exponentially ("billion laughs"), and a binary plist with cyclic references, offsets or
 * references out of range or counts larger than the data makes it loop or read out of
 * bounds.  plistscan_check() reads XML ("<?xml ... <plist>") and binary ("bplist00") plists
 * without libplist, iteratively (no recursion, memory proportional to the object count), and
 * refuses:
 *   - nesting of arrays/dicts deeper than max_depth;
 *   - more than max_nodes nodes once expanded (every use of a shared binary object counts,
 *     dict keys count), and for a binary plist more nodes than it has bytes;
 *   - binary: a bad header or trailer, an offset table or object outside the buffer,
 *     overlapping containers, a reference to a missing object, a cycle, a count that does not fit
 * in the data, an unknown object type, a dict key that is not a string (objects are checked as the
 * walk from the top object reaches them: what libplist will read);
 *   - XML: unbalanced or mismatched tags, an unterminated comment, CDATA section or tag,
 *     a DOCTYPE with an internal subset (entity declarations).
 * What it accepts is not necessarily a valid plist: libplist still decides that, but within
 * the limits.
 */
#ifndef SCEPTER_COMMON_PLISTSCAN_H
#define SCEPTER_COMMON_PLISTSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "error.h"

#define PLISTSCAN_MAX_DEPTH 64
#define PLISTSCAN_MAX_NODES 1000000

struct plistscan_limits {
    unsigned max_depth; /* nested arrays/dicts; 0 = PLISTSCAN_MAX_DEPTH */
    uint64_t max_nodes; /* expanded nodes (containers, keys, values); 0 = PLISTSCAN_MAX_NODES */
};

/* What the scan saw (filled on success; optional). */
struct plistscan_stats {
    unsigned depth;
    uint64_t nodes;
    int binary;
};

/*
 * 0 when buf[0..len) is within lim (NULL: the defaults); otherwise SCEPTER_EINVAL with err
 * naming field "body" and saying what was exceeded or malformed, and where.
 */
int plistscan_check(const void *buf, size_t len, const struct plistscan_limits *lim,
                    struct scepter_error *err) WUR;
int plistscan_check_stats(const void *buf, size_t len, const struct plistscan_limits *lim,
                          struct plistscan_stats *stats, struct scepter_error *err) WUR;

#endif
