/*
 * A small deterministic driver for the fuzz targets, so `make test` exercises them with the
 * gcc sanitizer build: each seed file (argv) is fed as is, then mutated (bit flips, byte
 * changes, truncation, duplication of a slice, insertion of interesting bytes) for a fixed
 * number of rounds from a fixed seed.  With clang, build the same targets against libFuzzer
 * (-fsanitize=fuzzer) for coverage-guided runs instead (see tests/fuzz/README.md).
 *   fuzz_<target> ROUNDS SEED_FILE...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    static const char *const tokens[] = {"<",         ">",  "</dict>", "<dict>", "<key>", "<data>",
                                         "<integer>", "\0", "\xff",    "&amp;",  "=",     "%"};
    int ops = 1 + (int)(next() % 4);

    for (int o = 0; o < ops && len > 0; o++) {
        size_t pos = next() % len;
        switch (next() % 6) {
        case 0:
            buf[pos] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1:
            buf[pos] = (uint8_t)next();
            break;
        case 2:
            len = pos; /* truncate */
            break;
        case 3: { /* duplicate a slice */
            size_t n = 1 + next() % 32;
            if (pos + n > len)
                n = len - pos;
            if (len + n <= cap) {
                memmove(buf + pos + n, buf + pos, len - pos);
                len += n;
            }
            break;
        }
        default: { /* insert a token */
            const char *t = tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))];
            size_t n = strlen(t) ? strlen(t) : 1;
            if (len + n <= cap) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, t, n);
                len += n;
            }
            break;
        }
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    struct scepter_error err;

    for (int f = 2; f < argc; f++) {
        unsigned char *seed = NULL;
        size_t len = 0;
        if (file_read(argv[f], 1 << 20, &seed, &len, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        LLVMFuzzerTestOneInput(seed, len);
        size_t cap = len * 2 + 64;
        uint8_t *buf = xmalloc(cap);
        for (long r = 0; r < rounds; r++) {
            memcpy(buf, seed, len);
            size_t n = mutate(buf, len, cap);
            LLVMFuzzerTestOneInput(buf, n);
        }
        free(buf);
        free(seed);
    }
    printf("fuzz: %d seed files x %ld rounds: no crash\n", argc - 2, rounds);
    return 0;
}
