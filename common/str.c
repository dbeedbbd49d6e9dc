/*
 * Bounded string helpers.
 */
#include "str.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t str_copy(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);

    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

size_t str_append(char *dst, size_t size, const char *src)
{
    size_t dlen = strnlen(dst, size);

    if (dlen == size)
        return size + strlen(src);
    return dlen + str_copy(dst + dlen, size - dlen, src);
}

int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int str_to_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};

    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_empty(const char *s)
{
    return s == NULL || *s == '\0';
}

char *str_trim(char *s)
{
    size_t len;
    char *p = s;

    while (*p && isspace((unsigned char)*p))
        p++;
    len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    memmove(s, p, len);
    s[len] = '\0';
    return s;
}

bool str_eq_nocase(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

int str_to_duration(const char *s, int64_t *out)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    const int64_t max = 10 * 366 * 86400LL;
    char num[24];
    size_t len;
    int64_t n, mult = 1;

    if (s == NULL || (len = strlen(s)) == 0 || len >= sizeof(num))
        return -1;
    memcpy(num, s, len + 1);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (num[len - 1] == units[i].unit) {
            mult = units[i].secs;
            num[--len] = '\0';
            break;
        }
    if (len == 0 || num[0] < '0' || num[0] > '9' || str_to_i64(num, 0, max / mult, &n) != 0)
        return -1;
    *out = n * mult;
    return 0;
}

size_t str_utf8_char(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n;
    uint32_t cp;

    if (u[0] == 0)
        return 0;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        n = 2;
        cp = u[0] & 0x1fu;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        n = 3;
        cp = u[0] & 0x0fu;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        n = 4;
        cp = u[0] & 0x07u;
    } else {
        return 0; /* a continuation byte, 0xc0/0xc1 (overlong) or past 0xf4 */
    }
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0; /* also stops at the NUL */
        cp = cp << 6 | (u[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool str_utf8_valid(const char *s)
{
    while (*s) {
        size_t n = str_utf8_char(s);
        if (n == 0)
            return false;
        s += n;
    }
    return true;
}

void str_utf8_sanitize(char *s)
{
    while (*s) {
        size_t n = str_utf8_char(s);
        if (n == 0) {
            *s++ = '?';
        } else {
            s += n;
        }
    }
}
