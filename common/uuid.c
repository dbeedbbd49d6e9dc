/*
 * UUID generation from OpenSSL's CSPRNG.
 */
#include "uuid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"

static uuid_generator_fn g_gen;
static void *g_gen_arg;

void uuid_set_generator(uuid_generator_fn fn, void *arg)
{
    g_gen = fn;
    g_gen_arg = arg;
}

void uuid_new(char out[UUID_STR_LEN])
{
    unsigned char b[16];

    if (g_gen != NULL) {
        g_gen(out, g_gen_arg);
        return;
    }
    if (RAND_bytes(b, sizeof(b)) != 1)
        fatalx("RAND_bytes failed: no entropy for a UUID");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, UUID_STR_LEN,
             "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void uuid_new_lower(char out[UUID_STR_LEN])
{
    uuid_new(out);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

bool uuid_valid(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};
    size_t d = 0;

    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (d < 4 && i == dash[d]) {
            if (s[i] != '-')
                return false;
            d++;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}
