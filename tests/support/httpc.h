/*
 * A small blocking HTTP/1.1 client for tests: plain or TLS (optionally with a client
 * certificate), one request per connection or several over one kept-alive connection.
 * Loopback only; every read has a timeout.
 */
#ifndef SCEPTER_TESTS_HTTPC_H
#define SCEPTER_TESTS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct tu_http_conn;

struct tu_http_resp {
    int status;
    char *headers; /* raw header block (lower-cased names) */
    unsigned char *body;
    size_t body_len;
};

/* Connect to 127.0.0.1:port; tls with an optional client identity.  NULL on failure. */
struct tu_http_conn *tu_http_connect(int port, bool tls, X509 *client_cert, EVP_PKEY *client_key);
void tu_http_close(struct tu_http_conn *c);
/*
 * Send one request.  headers: "Name: value\r\n" lines (or NULL).  Returns 0 and fills resp, or
 * -1 when the connection failed / was closed.
 */
int tu_http_do(struct tu_http_conn *c, const char *method, const char *path, const char *headers,
               const void *body, size_t body_len, struct tu_http_resp *resp);
/* The connection's socket (to poll it; the connection keeps it). */
int tu_http_fd(const struct tu_http_conn *c);
/* Send raw bytes (for malformed-request tests). */
int tu_http_send_raw(struct tu_http_conn *c, const void *data, size_t len);
/* Read one response. */
int tu_http_read(struct tu_http_conn *c, struct tu_http_resp *resp);
/* One request on a fresh connection. */
int tu_http(int port, bool tls, X509 *cert, EVP_PKEY *key, const char *method, const char *path,
            const char *headers, const void *body, size_t body_len, struct tu_http_resp *resp);
/* The value of a response header (case-insensitive), or NULL; static buffer per call. */
const char *tu_http_header(const struct tu_http_resp *resp, const char *name, char *out,
                           size_t outlen);
void tu_http_resp_free(struct tu_http_resp *resp);

#endif
