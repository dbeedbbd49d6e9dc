/*
 * Allocation wrappers.  Scepter treats allocation failure as fatal: every allocation goes
 * through these functions, which abort with a message instead of returning NULL, so callers
 * never need to check.  Everything returned is owned by the caller and freed with free().
 */
#ifndef SCEPTER_COMMON_XMALLOC_H
#define SCEPTER_COMMON_XMALLOC_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* A NUL-terminated copy of the n bytes at p (p need not be NUL-terminated). */
char *xmemdup0(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF(1, 2);

/*
 * Checked size arithmetic.  Every size computed from something a peer sent (a length, a
 * chunk size, a count) goes through these: size_add/size_mul return false on overflow and
 * leave *out alone, so the caller can refuse the input; xsize_add/xsize_mul abort like an
 * allocation failure (for sizes the caller already bounded, where overflow is a bug).
 */
static inline bool size_add(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

static inline bool size_mul(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

size_t xsize_add(size_t a, size_t b);
size_t xsize_mul(size_t a, size_t b);

#endif
