/*
 * Fuzz target: what a webhook receiver (or anyone on the path of an http:// webhook) answers.
 * The bytes go through httpc's response parser whole, then fed in pieces whose size the first
 * byte picks (as they would arrive over the network); the two runs must agree.  Nothing here
 * may crash, leak, read out of bounds or wrap a size, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct httpc_response whole, part;
    struct scepter_error e1, e2;
    struct httpc_parser p;
    size_t step = size ? (size_t)(data[0] % 17) + 1 : 1, have = 0, start = 0, used = 0;
    int rc1 = httpc_parse_response(data, size, MAX_BODY, &whole, &e1), rc2 = 0;

    httpc_parser_init(&p, MAX_BODY, false);
    while (rc2 == 0) {
        have = size - have > step ? have + step : size;
        rc2 = httpc_parser_feed(&p, (const char *)data + start, have - start, have == size, &used,
                                &part, &e2);
        if (used > have - start)
            abort(); /* consumed more than it was given */
        start += used;
    }
    httpc_parser_free(&p);
    if ((rc1 == 0) != (rc2 == 1))
        abort(); /* whole and piecewise parsing disagree */
    if (rc1 == 0) {
        char v[64];
        if (whole.status != part.status || whole.body_len != part.body_len ||
            whole.body_len > MAX_BODY || memcmp(whole.body, part.body, whole.body_len) != 0 ||
            whole.body[whole.body_len] != '\0')
            abort();
        (void)httpc_header(&whole, "Content-Type", v, sizeof(v));
        httpc_response_clear(&whole);
        httpc_response_clear(&part);
    }
    return 0;
}
