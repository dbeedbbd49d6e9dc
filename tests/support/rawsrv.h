/*
 * A scripted HTTP/1.1 receiver on 127.0.0.1, in a thread of the test process: it records each
 * request (headers and body) and answers it with raw bytes the test chooses, hostile ones
 * included (broken framing, absurd chunk sizes, a slow drip), then closes the connection.
 * Connections are served one at a time; every wait is bounded.
 */
#ifndef SCEPTER_TESTS_SUPPORT_RAWSRV_H
#define SCEPTER_TESTS_SUPPORT_RAWSRV_H

#include <stddef.h>

struct tu_raw_reply {
    const char *data; /* the raw bytes sent back (status line, headers, body) */
    size_t len;       /* 0 = strlen(data) */
    int drip_ms;      /* > 0: one byte every drip_ms milliseconds */
};

struct tu_rawsrv;

/* Listen on an ephemeral port of 127.0.0.1 (asserts success). */
struct tu_rawsrv *tu_rawsrv_start(void);
int tu_rawsrv_port(const struct tu_rawsrv *s);
/* The replies, copied: connection k (counted from this call) gets replies[k % n]. */
void tu_rawsrv_script(struct tu_rawsrv *s, const struct tu_raw_reply *replies, size_t n);
/* Requests received so far. */
size_t tu_rawsrv_count(struct tu_rawsrv *s);
/* The body (or the head, "Name: value" lines) of request i, copied (caller frees), or NULL. */
char *tu_rawsrv_body(struct tu_rawsrv *s, size_t i);
char *tu_rawsrv_head(struct tu_rawsrv *s, size_t i);
/* Wait (at most timeout_ms) until at least n requests arrived; returns the count. */
size_t tu_rawsrv_wait(struct tu_rawsrv *s, size_t n, int timeout_ms);
/* Stop the thread, close everything, free. */
void tu_rawsrv_stop(struct tu_rawsrv *s);

#endif
