/*
 * The HTTP client's response parser and the client against a hostile receiver: a real TCP
 * server in this process answers with absurd chunk sizes, sizes over the limit, overlong
 * lines, missing CRLFs, Content-Length together with chunked, garbage sizes and a slow drip.
 * Every one must be refused with an error naming the problem, and never crash (the tests run
 * under ASan: the old parser wrote past a 64-byte buffer on a chunk size of ffffffffffffffff).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/httpc.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "support/rawsrv.h"

#define MAX 65536

static int parse(const char *text, struct httpc_response *r, struct scepter_error *err)
{
    return httpc_parse_response(text, strlen(text), MAX, r, err);
}

static void refused(const char *text, const char *why)
{
    struct httpc_response r;
    struct scepter_error err;

    memset(&err, 0, sizeof(err));
    int rc = parse(text, &r, &err);
    cr_assert_eq(rc, SCEPTER_EIO, "accepted: %.80s", text);
    cr_assert(strstr(err.msg, why) != NULL, "error '%s' does not say '%s'", err.msg, why);
    cr_assert_null(r.body);
}

Test(httpc_parse, good_responses)
{
    struct httpc_response r;
    struct scepter_error err;
    char v[64];

    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello", &r, &err),
                 0, "%s", err.msg);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 5);
    cr_assert_str_eq(r.body, "hello");
    cr_assert_str_eq(httpc_header(&r, "x-a", v, sizeof(v)), "b");
    httpc_response_clear(&r);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                       "5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                       &r, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(r.body, "hello world");
    httpc_response_clear(&r);
    cr_assert_eq(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n", &r, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.body_len, 0);
    httpc_response_clear(&r);
    cr_assert_eq(parse("HTTP/1.0 500 Oops\r\nServer: x\r\n\r\nuntil the end", &r, &err), 0);
    cr_assert_str_eq(r.body, "until the end");
    httpc_response_clear(&r);
}

Test(httpc_parse, hostile_chunk_sizes)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    char text[4096];

    /* the size that wrapped body.len + n and buf_reserve */
    snprintf(text, sizeof(text), "%sffffffffffffffff\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "exceeds the 65536-byte body limit");
    snprintf(text, sizeof(text), "%s10000000000000000000000000000005\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "exceeds the 65536-byte body limit");
    snprintf(text, sizeof(text), "%s10001\r\nAAAA\r\n0\r\n\r\n", head); /* 65537 */
    refused(text, "exceeds the 65536-byte body limit");
    /* two chunks that together pass the limit */
    {
        struct buf big = BUF_INIT;
        buf_printf(&big, "%s8000\r\n", head);
        for (int i = 0; i < 0x8000; i++)
            buf_putc(&big, 'A');
        buf_puts(&big, "\r\n8001\r\nA\r\n0\r\n\r\n");
        refused(big.data, "exceeds the 65536-byte body limit");
        buf_free(&big);
    }
    snprintf(text, sizeof(text), "%s-5\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "does not start with a hex number");
    snprintf(text, sizeof(text), "%szz\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "does not start with a hex number");
    snprintf(text, sizeof(text), "%s\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "does not start with a hex number");
    snprintf(text, sizeof(text), "%s4x\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "junk after the size");
    snprintf(text, sizeof(text), "%s0x4\r\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "junk after the size");
    /* an overlong chunk line (extensions without end) */
    {
        struct buf t = BUF_INIT;
        buf_printf(&t, "%s4", head);
        for (int i = 0; i < 2000; i++)
            buf_putc(&t, ';');
        buf_puts(&t, "\r\nAAAA\r\n0\r\n\r\n");
        refused(t.data, "chunk size line longer than 1024 bytes");
        buf_free(&t);
    }
    /* missing CRLF after the data, or a bare LF */
    snprintf(text, sizeof(text), "%s4\r\nAAAAB\r\n0\r\n\r\n", head);
    refused(text, "chunk data not followed by CRLF");
    snprintf(text, sizeof(text), "%s4\nAAAA\r\n0\r\n\r\n", head);
    refused(text, "not terminated by CRLF");
    /* cut short */
    snprintf(text, sizeof(text), "%s4\r\nAA", head);
    refused(text, "truncated chunked body");
    snprintf(text, sizeof(text), "%s4\r\nAAAA\r\n0\r\nX: y\r\n", head);
    refused(text, "truncated in the trailers");
}

Test(httpc_parse, hostile_framing_and_headers)
{
    refused("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            "4\r\nAAAA\r\n0\r\n\r\n",
            "both Content-Length and Transfer-Encoding");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\nAAAA",
            "both Content-Length and Transfer-Encoding");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "is not supported");
    refused("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "is not a decimal number");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\nAAAA", "is not a decimal number");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "overflows");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nAAAAA",
            "two different Content-Length");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n", "exceeds the 65536-byte");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nAAAA", "truncated body (4 of 10");
    refused("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "folded header");
    refused("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "is not name: value");
    refused("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "is not name: value");
    refused("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "not terminated by CRLF");
    refused("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "stray CR");
    refused("HTTP/2 200\r\n\r\n", "is not HTTP/1.x NNN");
    refused("HTTP/1.1 2000 OK\r\n\r\n", "is not HTTP/1.x NNN");
    refused("HTTP/1.1 099 x\r\n\r\n", "out of range");
    refused("HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101");
    refused("", "no HTTP response");
    refused("HTTP/1.1 200 OK\r\nA: b\r\n", "truncated in the headers");
    {
        struct buf t = BUF_INIT;
        buf_puts(&t, "HTTP/1.1 200 OK\r\nA: ");
        for (int i = 0; i < 8300; i++)
            buf_putc(&t, 'x');
        buf_puts(&t, "\r\n\r\n");
        refused(t.data, "header line longer than 8192 bytes");
        buf_reset(&t);
        buf_puts(&t, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 101; i++)
            buf_puts(&t, "A: bcd\r\n");
        buf_puts(&t, "\r\n");
        refused(t.data, "more than 100 header lines");
        buf_reset(&t);
        for (int i = 0; i < 9; i++)
            buf_puts(&t, "HTTP/1.1 100 Continue\r\n\r\n");
        buf_puts(&t, "HTTP/1.1 200 OK\r\n\r\n");
        refused(t.data, "interim");
        buf_free(&t);
    }
}

/* Fed one byte at a time, the parser gives the same answer as on the whole buffer. */
Test(httpc_parse, incremental_feeding_matches_whole)
{
    static const char *texts[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nxyz",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
    };
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        struct httpc_response whole, part;
        struct scepter_error e1, e2;
        struct httpc_parser p;
        const char *s = texts[t];
        size_t len = strlen(s), have = 0, start = 0, used;
        int rc1 = httpc_parse_response(s, len, MAX, &whole, &e1), rc2 = 0;
        httpc_parser_init(&p, MAX, false);
        while (rc2 == 0) {
            if (have < len)
                have++;
            rc2 = httpc_parser_feed(&p, s + start, have - start, have == len, &used, &part, &e2);
            start += used;
        }
        httpc_parser_free(&p);
        cr_assert_eq(rc1 == 0, rc2 == 1, "text %zu: %d vs %d", t, rc1, rc2);
        if (rc1 == 0) {
            cr_assert_eq(whole.status, part.status);
            cr_assert_eq(whole.body_len, part.body_len);
            cr_assert_eq(memcmp(whole.body, part.body, whole.body_len), 0);
            httpc_response_clear(&whole);
            httpc_response_clear(&part);
        } else {
            cr_assert_str_eq(e1.msg, e2.msg);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Over TCP                                                                                  */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int post(struct tu_rawsrv *srv, const struct httpc_opts *o, struct httpc_response *r,
                struct scepter_error *err)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", tu_rawsrv_port(srv));
    return httpc_request(url, "POST", "Content-Type: application/json\r\n", "{}", 2, o, r, err);
}

Test(httpc_net, a_hostile_receiver_gets_errors_not_a_crash)
{
    static const struct {
        const char *reply, *why;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
         "exceeds the 4096-byte body limit"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\nAAAA\r\n",
         "exceeds the 4096-byte body limit"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "4;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         ";;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;"
         "\r\nAAAA\r\n0\r\n\r\n",
         "chunk size line longer than 1024 bytes"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nAAAAxx0\r\n\r\n",
         "not followed by CRLF"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
         "4\r\nAAAA\r\n0\r\n\r\n",
         "both Content-Length and Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nAAAA\r\n0\r\n\r\n",
         "does not start with a hex number"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nGARBAGE\r\n", "hex number"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort", "truncated body"},
        {"garbage\r\n\r\n", "is not HTTP/1.x NNN"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nAAAA\r\n", "truncated"},
    };
    struct tu_rawsrv *srv = tu_rawsrv_start();
    struct httpc_opts o = {.timeout_ms = 2000, .max_body = 4096, .total_timeout_ms = 5000};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tu_raw_reply rp = {cases[i].reply, 0, 0};
        struct httpc_response r;
        struct scepter_error err;
        tu_rawsrv_script(srv, &rp, 1);
        int rc = post(srv, &o, &r, &err);
        cr_assert_eq(rc, SCEPTER_EIO, "case %zu accepted", i);
        cr_assert(strstr(err.msg, cases[i].why) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg,
                  cases[i].why);
    }
    /* and it still talks to a sane receiver */
    struct tu_raw_reply ok = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "2\r\nok\r\n0\r\n\r\n",
                              0, 0};
    struct httpc_response r;
    struct scepter_error err;
    tu_rawsrv_script(srv, &ok, 1);
    cr_assert_eq(post(srv, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok");
    httpc_response_clear(&r);
    cr_assert_eq(tu_rawsrv_count(srv), sizeof(cases) / sizeof(cases[0]) + 1);
    char *body = tu_rawsrv_body(srv, 0);
    cr_assert_str_eq(body, "{}");
    free(body);
    tu_rawsrv_stop(srv);
}

/* A receiver that drips a never-ending body one byte at a time (each read well within the
 * per-read timeout) is cut off by the whole-exchange deadline. */
Test(httpc_net, a_slow_drip_is_cut_by_the_total_deadline)
{
    struct tu_rawsrv *srv = tu_rawsrv_start();
    struct httpc_opts o = {.timeout_ms = 2000, .max_body = 4096, .total_timeout_ms = 700};
    static char drip[4096];
    struct httpc_response r;
    struct scepter_error err;

    str_copy(drip, sizeof(drip), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    while (strlen(drip) + 8 < sizeof(drip))
        str_append(drip, sizeof(drip), "1\r\nx\r\n");
    struct tu_raw_reply rp = {drip, 0, 20};
    tu_rawsrv_script(srv, &rp, 1);
    int64_t t0 = mono_ms();
    cr_assert_eq(post(srv, &o, &r, &err), SCEPTER_EIO);
    int64_t took = mono_ms() - t0;
    cr_assert(strstr(err.msg, "deadline") != NULL, "%s", err.msg);
    cr_assert(took >= 600 && took < 2500, "took %lld ms", (long long)took);
    tu_rawsrv_stop(srv);
}
