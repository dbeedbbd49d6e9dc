/*
 * A small blocking HTTP/1.1 client for the places that need one and are not on the request
 * path: webhook delivery (background job) and scepterctl.  http:// and https:// (TLS 1.2+,
 * server certificate and host name verified against the system store or a CA file, unless
 * told otherwise), one request per connection, Content-Length or chunked bodies, every step
 * bounded by a timeout.
 */
#ifndef SCEPTER_COMMON_HTTPC_H
#define SCEPTER_COMMON_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"
#include "error.h"

struct httpc_opts {
    const char *ca_file; /* PEM bundle that verifies the server; NULL = system store */
    bool insecure;       /* skip server verification (development only) */
    int timeout_ms;      /* connect, and each read/write; 0 = 10000 */
    size_t max_body;     /* largest response body accepted; 0 = 64 MiB */
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
/* The value of a response header (case-insensitive) copied into out, or NULL. */
const char *httpc_header(const struct httpc_response *resp, const char *name, char *out,
                         size_t outlen);
void httpc_response_clear(struct httpc_response *resp);

#endif
