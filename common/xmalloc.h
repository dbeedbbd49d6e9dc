/*
 * Allocation wrappers.  Scepter treats allocation failure as fatal: every allocation goes
 * through these functions, which abort with a message instead of returning NULL, so callers
 * never need to check.  Everything returned is owned by the caller and freed with free().
 */
#ifndef SCEPTER_COMMON_XMALLOC_H
#define SCEPTER_COMMON_XMALLOC_H

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

#endif
