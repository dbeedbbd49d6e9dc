/*
 * Checked size arithmetic (common/xmalloc.h) and the places that add sizes taken from a peer:
 * buf_reserve/buf_append and the codecs' output sizes.  A size near SIZE_MAX must be refused
 * (false, or an abort like an allocation failure), never wrap into a small allocation.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/xmalloc.h"

Test(size, add_and_mul_report_overflow)
{
    size_t r = 7;

    cr_assert(size_add(1, 2, &r));
    cr_assert_eq(r, 3);
    cr_assert(size_add(SIZE_MAX - 1, 1, &r));
    cr_assert_eq(r, SIZE_MAX);
    r = 7;
    cr_assert_not(size_add(SIZE_MAX, 1, &r));
    cr_assert_not(size_add(1, SIZE_MAX, &r));
    cr_assert_not(size_add(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, &r));
    cr_assert_eq(r, 7, "untouched on overflow");
    cr_assert(size_mul(SIZE_MAX / 2, 2, &r));
    cr_assert_eq(r, SIZE_MAX - 1);
    cr_assert(size_mul(0, SIZE_MAX, &r));
    cr_assert_eq(r, 0);
    cr_assert_not(size_mul(SIZE_MAX / 2 + 1, 2, &r));
    cr_assert_not(size_mul(SIZE_MAX, SIZE_MAX, &r));
    cr_assert_eq(xsize_add(40, 2), 42);
    cr_assert_eq(xsize_mul(6, 7), 42);
}

Test(size, xsize_add_aborts_on_overflow, .signal = SIGABRT)
{
    (void)xsize_add(SIZE_MAX, 2);
}

Test(size, xsize_mul_aborts_on_overflow, .signal = SIGABRT)
{
    (void)xsize_mul(SIZE_MAX / 3, 4);
}

/* The webhook client's old bug: len + ffffffffffffffff + 1 wrapped to len, nothing was
 * allocated, and the memcpy that followed wrote past a 64-byte buffer. */
Test(size, buf_reserve_refuses_a_wrapping_size, .signal = SIGABRT)
{
    struct buf b = BUF_INIT;

    buf_puts(&b, "a few bytes already here");
    buf_reserve(&b, SIZE_MAX);
}

Test(size, buf_reserve_refuses_a_size_that_wraps_with_the_nul, .signal = SIGABRT)
{
    struct buf b = BUF_INIT;

    buf_putc(&b, 'x');
    buf_reserve(&b, SIZE_MAX - 1); /* 1 + (SIZE_MAX - 1) + 1 wraps to 0 */
}

Test(size, buf_capacity_growth_stays_exact_near_the_top)
{
    struct buf b = BUF_INIT;

    /* Growth by doubling must reach (not overshoot into a wrap) large requests. */
    buf_reserve(&b, 100000);
    cr_assert_geq(b.cap, 100001);
    buf_append(&b, "x", 1);
    cr_assert_eq(b.len, 1);
    cr_assert_str_eq(b.data, "x");
    buf_free(&b);
}

Test(size, base64_encode_refuses_a_wrapping_length, .signal = SIGABRT)
{
    /* 4 * ceil(len / 3) + 1 overflows: abort before reading a byte. */
    free(base64_encode("", SIZE_MAX));
}

Test(size, hex_encode_refuses_a_wrapping_length, .signal = SIGABRT)
{
    free(hex_encode("", SIZE_MAX / 2 + 1, false)); /* 2 * len wraps to 0 */
}

Test(size, codec_sizes_are_exact_for_small_lengths)
{
    for (size_t len = 0; len < 10; len++) {
        char in[10] = "abcdefghi", *b64 = base64_encode(in, len), *hex = hex_encode(in, len, false);
        cr_assert_eq(strlen(b64), 4 * ((len + 2) / 3));
        cr_assert_eq(strlen(hex), 2 * len);
        free(b64);
        free(hex);
    }
}
