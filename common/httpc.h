/*
 * A small blocking HTTP/1.1 client for the places that need one and are not on the request
 * path: webhook delivery (background job) and scepterctl.  http:// and https:// (TLS 1.2+,
 * server certificate and host name verified against the system store or a CA file, unless
 * told otherwise), one request per connection, Content-Length or chunked bodies, every step
 * bounded by a timeout and the whole exchange by a deadline.
 *
 * The peer is not trusted: the response goes through a strict parser (httpc_parser_*, also
 * usable on a buffer with httpc_parse_response, which the fuzz target drives) with bounded
 * line lengths, header counts and body size, and every size it computes checked.
 */
#ifndef SCEPTER_COMMON_HTTPC_H
#define SCEPTER_COMMON_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"
#include "error.h"

struct httpc_opts {
    const char *ca_file;  /* PEM bundle that verifies the server; NULL = system store */
    bool insecure;        /* skip server verification (development only) */
    int timeout_ms;       /* connect, and each read/write; 0 = 10000 */
    size_t max_body;      /* largest response body accepted; 0 = 64 MiB */
    int total_timeout_ms; /* the whole exchange, connect to last byte; 0 = 60000 */
};

struct httpc_response {
    int status;
    char *headers; /* the raw header block */
    char *body;    /* NUL-terminated */
    size_t body_len;
};

/*
 * One request.  headers are extra "Name: value\r\n" lines (or NULL).  Returns 0 with *resp
 * filled (any status), or SCEPTER_EINVAL (bad URL), SCEPTER_EIO (DNS, connect, timeout, a
 * broken response) or SCEPTER_ECRYPTO (TLS, certificate) with err saying what happened.
 */
int httpc_request(const char *url, const char *method, const char *headers, const void *body,
                  size_t body_len, const struct httpc_opts *opts, struct httpc_response *resp,
                  struct scepter_error *err) WUR;
/* Limits of the response parser. */
#define HTTPC_MAX_LINE         8192  /* the status line, one header or trailer line */
#define HTTPC_MAX_HEADERS      100   /* header lines (and, separately, trailer lines) */
#define HTTPC_MAX_HEADER_BYTES 65536 /* all header lines together (trailers likewise) */
#define HTTPC_MAX_CHUNK_LINE   1024  /* a chunk-size line with its extensions */
#define HTTPC_MAX_INTERIM      8     /* 1xx responses skipped before the final one */

/*
 * An incremental HTTP/1.x response parser.  Feed it the bytes not yet consumed; it reports how
 * many it consumed (the caller drops them) and keeps what it needs across calls.  Refused, with
 * SCEPTER_EIO and a message naming what was wrong: a malformed status line, header or chunk
 * line, lines or header blocks over the limits, a Content-Length that is not a plain decimal
 * number or disagrees with another, Transfer-Encoding other than chunked, both Content-Length
 * and chunked, a chunk size that is not hex or exceeds max_body (sizes are checked, never
 * wrapped), chunk data not followed by CRLF, a body over max_body, and a response cut short.
 */
struct httpc_parser {
    int state;
    size_t max_body;
    bool no_body; /* the answer to a HEAD request */
    int status, interim;
    size_t nlines, line_bytes; /* header or trailer lines so far, and their bytes */
    bool has_length, chunked;
    size_t content_length, left; /* bytes of the body or of the current chunk still to come */
    void *hdr, *body;            /* struct buf * */
};

void httpc_parser_init(struct httpc_parser *p, size_t max_body, bool no_body);
/*
 * Parse data[0..len), the bytes received and not yet consumed; eof: nothing more will come.
 * *used is set to the bytes consumed (also on 0).  Returns 1 when the response is complete
 * (*resp filled; the caller clears it), 0 when more bytes are needed, or a negative
 * scepter error.
 */
int httpc_parser_feed(struct httpc_parser *p, const char *data, size_t len, bool eof, size_t *used,
                      struct httpc_response *resp, struct scepter_error *err) WUR;
void httpc_parser_free(struct httpc_parser *p);
/* One whole response held in a buffer (the connection closed after it): 0 with *resp filled,
 * or a negative scepter error. */
int httpc_parse_response(const void *data, size_t len, size_t max_body, struct httpc_response *resp,
                         struct scepter_error *err) WUR;

/* The value of a response header (case-insensitive) copied into out, or NULL. */
const char *httpc_header(const struct httpc_response *resp, const char *name, char *out,
                         size_t outlen);
void httpc_response_clear(struct httpc_response *resp);

#endif
