/*
 * Base64 (RFC 4648, standard alphabet) and hexadecimal encoding.  Encoders return a
 * NUL-terminated string the caller frees; decoders return 0 and a buffer the caller frees,
 * or -1 on malformed input (nothing allocated).
 */
#ifndef SCEPTER_COMMON_CODEC_H
#define SCEPTER_COMMON_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"

char *base64_encode(const void *data, size_t len);
/*
 * Decode base64.  ASCII whitespace (line breaks in PEM or plist <data>) is ignored; padding
 * is required unless allow_unpadded.  Returns -1 on any other character or bad length.
 */
int base64_decode(const char *s, size_t slen, bool allow_unpadded, unsigned char **out,
                  size_t *outlen) WUR;
/* Lower-case (or upper-case) hex of the bytes. */
char *hex_encode(const void *data, size_t len, bool upper);
/* Decode an even number of hex digits, any case, no separators. */
int hex_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen) WUR;
/* Write the hex of len bytes into out (2*len+1 bytes). */
void hex_encode_to(const void *data, size_t len, char *out, bool upper);

#endif
