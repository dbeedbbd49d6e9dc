/*
 * Whole-file reads and writes with a size bound, for certificates, keys and fixtures.
 */
#ifndef SCEPTER_COMMON_FILE_H
#define SCEPTER_COMMON_FILE_H

#include <stddef.h>

#include "attr.h"
#include "error.h"

/*
 * Read all of path into a NUL-terminated buffer the caller frees.  A file larger than max
 * bytes is refused with SCEPTER_ETOOBIG; a missing or unreadable one with SCEPTER_EIO.
 */
int file_read(const char *path, size_t max, unsigned char **out, size_t *len,
              struct scepter_error *err) WUR;
/* Write data to path atomically (temporary file + rename), with the given mode. */
int file_write(const char *path, const void *data, size_t len, int mode,
               struct scepter_error *err) WUR;

#endif
