/*
 * Small string helpers that replace the banned strcpy/strcat/atoi family.
 */
#ifndef SCEPTER_COMMON_STR_H
#define SCEPTER_COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"

/* Copy src into dst (size bytes), always NUL-terminating; returns strlen(src) like strlcpy. */
size_t str_copy(char *dst, size_t size, const char *src);
/* Append src to the NUL-terminated dst, truncating; returns the length it tried to create. */
size_t str_append(char *dst, size_t size, const char *src);
/* Parse a whole decimal integer in [min, max]; 0 on success, -1 otherwise. */
int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *out) WUR;
/* Parse "yes/no/true/false/on/off/1/0" (any case); 0 on success, -1 otherwise. */
int str_to_bool(const char *s, bool *out) WUR;
/* A duration: seconds ("3600"), or a number with one unit s, m, h, d or w ("90m", "7d").
 * 0 with *out in seconds (at most ten years), -1 for anything else. */
int str_to_duration(const char *s, int64_t *out) WUR;
bool str_has_prefix(const char *s, const char *prefix);
bool str_empty(const char *s);
/* Remove leading and trailing ASCII whitespace in place; returns s. */
char *str_trim(char *s);
/* Compare without regard to ASCII case. */
bool str_eq_nocase(const char *a, const char *b);
/* The length of the valid UTF-8 sequence at s (1 to 4 bytes, NUL excluded), 0 if there is none
 * there: no overlong forms, surrogates or code points past U+10FFFF. */
size_t str_utf8_char(const char *s);
/* Is s valid UTF-8 throughout? */
bool str_utf8_valid(const char *s);
/* Replace, in place, every byte not part of a valid UTF-8 sequence with '?' (so that JSON,
 * which must be UTF-8, can carry text built from request bytes). */
void str_utf8_sanitize(char *s);

#endif
