/*
 * Blocking HTTP/1.1 test client.
 */
#include "httpc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/xmalloc.h"

struct tu_http_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    struct buf in; /* bytes read but not consumed */
};

struct tu_http_conn *tu_http_connect(int port, bool tls, X509 *client_cert, EVP_PKEY *client_key)
{
    struct tu_http_conn *c = xcalloc(1, sizeof(*c));
    struct sockaddr_in sa;
    struct timeval tv = {20, 0};
    int one = 1;

    signal(SIGPIPE, SIG_IGN); /* a server may answer and close before the body is sent */
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail;
    if (tls) {
        c->ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL); /* tests pin nothing here */
        if (client_cert && client_key) {
            SSL_CTX_use_certificate(c->ctx, client_cert);
            SSL_CTX_use_PrivateKey(c->ctx, client_key);
        }
        c->ssl = SSL_new(c->ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_connect(c->ssl) != 1)
            goto fail;
    }
    return c;
fail:
    ERR_clear_error();
    tu_http_close(c);
    return NULL;
}

void tu_http_close(struct tu_http_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->in);
    free(c);
}

int tu_http_fd(const struct tu_http_conn *c)
{
    return c ? c->fd : -1;
}

int tu_http_send_raw(struct tu_http_conn *c, const void *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        int n = c->ssl ? SSL_write(c->ssl, (const char *)data + off, (int)(len - off))
                       : (int)write(c->fd, (const char *)data + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int fill(struct tu_http_conn *c)
{
    char chunk[16384];
    int n =
        c->ssl ? SSL_read(c->ssl, chunk, sizeof(chunk)) : (int)read(c->fd, chunk, sizeof(chunk));
    if (n <= 0) {
        ERR_clear_error();
        return -1;
    }
    buf_append(&c->in, chunk, (size_t)n);
    return 0;
}

static void consume(struct tu_http_conn *c, size_t n)
{
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

const char *tu_http_header(const struct tu_http_resp *resp, const char *name, char *out,
                           size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = resp->headers;

    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

int tu_http_read(struct tu_http_conn *c, struct tu_http_resp *resp)
{
    char *end;
    size_t hlen, clen = 0;
    char tmp[64];
    bool has_len = false;

    memset(resp, 0, sizeof(*resp));
    while ((end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL) == NULL)
        if (fill(c) < 0)
            return -1;
    hlen = (size_t)(end - c->in.data) + 4;
    if (sscanf(c->in.data, "HTTP/1.%*d %d", &resp->status) != 1)
        return -1;
    resp->headers = xmemdup0(c->in.data, hlen);
    if (tu_http_header(resp, "Content-Length", tmp, sizeof(tmp))) {
        clen = (size_t)strtoul(tmp, NULL, 10);
        has_len = true;
    }
    consume(c, hlen);
    if (has_len) {
        while (c->in.len < clen)
            if (fill(c) < 0)
                return -1;
    } else {
        while (fill(c) == 0) /* body until close */
            ;
        clen = c->in.len;
    }
    resp->body = (unsigned char *)xmemdup0(c->in.data ? c->in.data : "", clen);
    resp->body_len = clen;
    if (clen)
        consume(c, clen);
    return 0;
}

int tu_http_do(struct tu_http_conn *c, const char *method, const char *path, const char *headers,
               const void *body, size_t body_len, struct tu_http_resp *resp)
{
    struct buf req = BUF_INIT;

    buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n%s\r\n", method,
               path, body_len, headers ? headers : "");
    if (body_len)
        buf_append(&req, body, body_len);
    (void)tu_http_send_raw(c, req.data, req.len);
    buf_free(&req);
    /* Even when sending failed, the server may have answered (413) before closing. */
    return tu_http_read(c, resp) == 0 ? 0 : -1;
}

int tu_http(int port, bool tls, X509 *cert, EVP_PKEY *key, const char *method, const char *path,
            const char *headers, const void *body, size_t body_len, struct tu_http_resp *resp)
{
    struct tu_http_conn *c = tu_http_connect(port, tls, cert, key);
    int rc;

    memset(resp, 0, sizeof(*resp));
    if (c == NULL)
        return -1;
    rc = tu_http_do(c, method, path, headers, body, body_len, resp);
    tu_http_close(c);
    return rc;
}

void tu_http_resp_free(struct tu_http_resp *resp)
{
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}
