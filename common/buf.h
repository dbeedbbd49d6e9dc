/*
 * A growable byte buffer.  struct buf is a plain value: zero-initialise it (BUF_INIT), append,
 * then buf_free() or take ownership of .data with buf_steal().
 */
#ifndef SCEPTER_COMMON_BUF_H
#define SCEPTER_COMMON_BUF_H

#include <stddef.h>

#include "attr.h"

struct buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) PRINTF(2, 3);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Return the data (NUL-terminated, caller frees) and leave b empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
