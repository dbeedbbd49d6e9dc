/*
 * Base64 and hex codecs.  Small and strict: every byte of input is checked.
 */
#include "codec.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    /* 4 * ceil(len / 3) + 1, without wrapping for any len */
    size_t olen = xsize_mul(4, len / 3 + (len % 3 != 0));
    char *out = xmalloc(xsize_add(olen, 1)), *o = out;
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(const char *s, size_t slen, bool allow_unpadded, unsigned char **out,
                  size_t *outlen)
{
    unsigned char *buf = xmalloc(slen / 4 * 3 + 3); /* cannot wrap: slen / 4 * 3 < slen */
    size_t n = 0, pad = 0, digits = 0;
    uint32_t acc = 0;

    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;

        if (isspace(c))
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || (v = b64_value(c)) < 0)
            goto bad; /* data after padding, or a foreign character */
        acc = acc << 6 | (uint32_t)v;
        if (++digits % 4 == 0) {
            buf[n++] = (unsigned char)(acc >> 16);
            buf[n++] = (unsigned char)(acc >> 8);
            buf[n++] = (unsigned char)acc;
            acc = 0;
        }
    }
    switch (digits % 4) {
    case 0:
        if (pad != 0)
            goto bad;
        break;
    case 1:
        goto bad;
    case 2:
        if (pad != 2 && !(allow_unpadded && pad == 0))
            goto bad;
        if (acc & 0xf)
            goto bad; /* non-canonical trailing bits */
        buf[n++] = (unsigned char)(acc >> 4);
        break;
    case 3:
        if (pad != 1 && !(allow_unpadded && pad == 0))
            goto bad;
        if (acc & 0x3)
            goto bad;
        buf[n++] = (unsigned char)(acc >> 10);
        buf[n++] = (unsigned char)(acc >> 2);
        break;
    }
    *out = buf;
    *outlen = n;
    return 0;
bad:
    free(buf);
    return -1;
}

void hex_encode_to(const void *data, size_t len, char *out, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    const unsigned char *in = data;

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

char *hex_encode(const void *data, size_t len, bool upper)
{
    char *out = xmalloc(xsize_add(xsize_mul(2, len), 1));
    hex_encode_to(data, len, out, upper);
    return out;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int hex_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    unsigned char *buf;

    if (slen % 2)
        return -1;
    buf = xmalloc(slen / 2 + 1);
    for (size_t i = 0; i < slen; i += 2) {
        int hi = hex_value((unsigned char)s[i]), lo = hex_value((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return -1;
        }
        buf[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out = buf;
    *outlen = slen / 2;
    return 0;
}
