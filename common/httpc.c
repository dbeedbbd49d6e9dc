/*
 * Blocking HTTP/1.1 client (webhooks, scepterctl).
 */
#include "httpc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "str.h"
#include "xmalloc.h"

struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    int timeout_ms;
    struct buf in;
    size_t off; /* consumed bytes of in */
};

static int parse_url(const char *url, bool *tls, char *host, size_t hlen, char *port, size_t plen,
                     const char **path)
{
    const char *p, *slash, *colon;

    if (str_has_prefix(url, "https://")) {
        *tls = true;
        p = url + 8;
    } else if (str_has_prefix(url, "http://")) {
        *tls = false;
        p = url + 7;
    } else {
        return -1;
    }
    slash = strchr(p, '/');
    *path = slash ? slash : "/";
    size_t authlen = slash ? (size_t)(slash - p) : strlen(p);
    if (authlen == 0)
        return -1;
    if (*p == '[') {
        const char *end = memchr(p, ']', authlen);
        if (end == NULL)
            return -1;
        snprintf(host, hlen, "%.*s", (int)(end - p - 1), p + 1);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = memchr(p, ':', authlen);
        snprintf(host, hlen, "%.*s", (int)(colon ? (size_t)(colon - p) : authlen), p);
    }
    if (colon)
        snprintf(port, plen, "%.*s", (int)(p + authlen - colon - 1), colon + 1);
    else
        str_copy(port, plen, *tls ? "443" : "80");
    return *host ? 0 : -1;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {fd, events, 0};
    int rc;

    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static int tcp_connect(const char *host, const char *port, int timeout_ms,
                       struct scepter_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
        return scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", host, gai_strerror(rc));
    rc = scepter_err(err, SCEPTER_EIO, NULL, "%s:%s: no address", host, port);
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) > 0)) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr == 0) {
                rc = fd;
                break;
            }
            rc = scepter_err(err, SCEPTER_EIO, NULL, "connect %s:%s: %s", host, port,
                             strerror(soerr));
        } else {
            rc = scepter_err(err, SCEPTER_EIO, NULL, "connect %s:%s: %s", host, port,
                             errno == EINPROGRESS ? "timed out" : strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return rc;
}

/* Run an SSL call on a non-blocking socket until it completes or times out. */
static int ssl_io(struct conn *c, int (*fn)(SSL *, void *, int), void *buf, int len)
{
    for (;;) {
        ERR_clear_error();
        int n = fn(c->ssl, buf, len);
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            if (wait_fd(c->fd, POLLIN, c->timeout_ms) <= 0)
                return -2;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            if (wait_fd(c->fd, POLLOUT, c->timeout_ms) <= 0)
                return -2;
        } else if (e == SSL_ERROR_ZERO_RETURN) {
            return 0;
        } else {
            return -1;
        }
    }
}

static int ssl_read_fn(SSL *s, void *b, int n)
{
    return SSL_read(s, b, n);
}

static int ssl_write_fn(SSL *s, void *b, int n)
{
    return SSL_write(s, b, n);
}

static int ssl_connect_fn(SSL *s, void *b, int n)
{
    (void)b;
    (void)n;
    return SSL_connect(s);
}

static int conn_write(struct conn *c, const void *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n;
        if (c->ssl) {
            n = ssl_io(c, ssl_write_fn, (char *)(uintptr_t)data + off, (int)(len - off));
        } else {
            n = write(c->fd, (const char *)data + off, len - off);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (wait_fd(c->fd, POLLOUT, c->timeout_ms) <= 0)
                    return -1;
                continue;
            }
        }
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Read more bytes into c->in: 1 read, 0 EOF, -1 error/timeout. */
static int conn_fill(struct conn *c)
{
    char chunk[16384];
    ssize_t n;

    if (c->ssl) {
        n = ssl_io(c, ssl_read_fn, chunk, sizeof(chunk));
    } else {
        for (;;) {
            n = read(c->fd, chunk, sizeof(chunk));
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (wait_fd(c->fd, POLLIN, c->timeout_ms) <= 0)
                    return -1;
                continue;
            }
            break;
        }
    }
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    buf_append(&c->in, chunk, (size_t)n);
    return 1;
}

/* Make sure at least `need` unconsumed bytes are buffered. */
static int conn_need(struct conn *c, size_t need)
{
    while (c->in.len - c->off < need) {
        int r = conn_fill(c);
        if (r <= 0)
            return -1;
    }
    return 0;
}

/* A CRLF-terminated line (without the CRLF) starting at c->off; the caller frees. */
static char *conn_line(struct conn *c)
{
    for (;;) {
        char *start = c->in.data ? c->in.data + c->off : NULL;
        char *eol = start ? memmem(start, c->in.len - c->off, "\r\n", 2) : NULL;
        if (eol) {
            char *line = xmemdup0(start, (size_t)(eol - start));
            c->off += (size_t)(eol - start) + 2;
            return line;
        }
        if (c->in.len - c->off > 65536 || conn_fill(c) <= 0)
            return NULL;
    }
}

const char *httpc_header(const struct httpc_response *resp, const char *name, char *out,
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
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(out, outlen, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static int read_response(struct conn *c, const struct httpc_opts *o, struct httpc_response *r,
                         struct scepter_error *err)
{
    struct buf hdr = BUF_INIT, body = BUF_INIT;
    char *line = conn_line(c), tmp[64];
    size_t max = o && o->max_body ? o->max_body : 64u << 20;
    int rc;

    if (line == NULL || sscanf(line, "HTTP/1.%*d %d", &r->status) != 1) {
        free(line);
        return scepter_err(err, SCEPTER_EIO, NULL, "no HTTP response (connection closed?)");
    }
    free(line);
    for (;;) {
        if ((line = conn_line(c)) == NULL) {
            rc = scepter_err(err, SCEPTER_EIO, NULL, "truncated response headers");
            goto out;
        }
        if (*line == '\0') {
            free(line);
            break;
        }
        buf_puts(&hdr, line);
        buf_puts(&hdr, "\r\n");
        free(line);
    }
    r->headers = buf_steal(&hdr, NULL);
    if (httpc_header(r, "Transfer-Encoding", tmp, sizeof(tmp)) && strcasestr(tmp, "chunked")) {
        for (;;) {
            char *sz = conn_line(c);
            unsigned long n;
            if (sz == NULL) {
                rc = scepter_err(err, SCEPTER_EIO, NULL, "truncated chunked body");
                goto out;
            }
            n = strtoul(sz, NULL, 16);
            free(sz);
            if (n == 0) {
                free(conn_line(c)); /* trailer end */
                break;
            }
            if (body.len + n > max || conn_need(c, n + 2) != 0) {
                rc = scepter_err(err, SCEPTER_EIO, NULL, "bad or oversized chunked body");
                goto out;
            }
            buf_append(&body, c->in.data + c->off, n);
            c->off += n + 2;
        }
    } else if (httpc_header(r, "Content-Length", tmp, sizeof(tmp))) {
        unsigned long n = strtoul(tmp, NULL, 10);
        if (n > max || conn_need(c, n) != 0) {
            rc = scepter_err(err, SCEPTER_EIO, NULL, "bad or oversized body (%lu bytes)", n);
            goto out;
        }
        buf_append(&body, c->in.data + c->off, n);
        c->off += n;
    } else if (r->status != 204 && r->status != 304) {
        while (conn_fill(c) > 0 && c->in.len - c->off <= max)
            ;
        buf_append(&body, c->in.data ? c->in.data + c->off : "", c->in.len - c->off);
    }
    r->body_len = body.len;
    r->body = buf_steal(&body, NULL);
    rc = 0;
out:
    buf_free(&hdr);
    buf_free(&body);
    return rc;
}

int httpc_request(const char *url, const char *method, const char *headers, const void *body,
                  size_t body_len, const struct httpc_opts *o, struct httpc_response *resp,
                  struct scepter_error *err)
{
    struct conn c;
    char host[256], port[16];
    const char *path;
    bool tls;
    struct buf req = BUF_INIT;
    int rc;

    memset(resp, 0, sizeof(*resp));
    memset(&c, 0, sizeof(c));
    c.fd = -1;
    signal(SIGPIPE, SIG_IGN); /* a peer closing early is an error return, not a signal */
    c.timeout_ms = o && o->timeout_ms ? o->timeout_ms : 10000;
    if (parse_url(url, &tls, host, sizeof(host), port, sizeof(port), &path) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "url", "'%s' is not an http(s):// URL", url);
    if ((c.fd = tcp_connect(host, port, c.timeout_ms, err)) < 0)
        return c.fd;
    if (tls) {
        c.ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(c.ctx, TLS1_2_VERSION);
        if (!(o && o->insecure)) {
            if (o && o->ca_file && *o->ca_file) {
                if (SSL_CTX_load_verify_locations(c.ctx, o->ca_file, NULL) != 1) {
                    rc = scepter_err(err, SCEPTER_ECRYPTO, "ca_file", "cannot load CA file %s",
                                     o->ca_file);
                    goto out;
                }
            } else {
                SSL_CTX_set_default_verify_paths(c.ctx);
            }
            SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, NULL);
        }
        c.ssl = SSL_new(c.ctx);
        SSL_set_fd(c.ssl, c.fd);
        SSL_set_tlsext_host_name(c.ssl, host);
        if (!(o && o->insecure)) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(c.ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
                SSL_set1_host(c.ssl, host);
        }
        if (ssl_io(&c, ssl_connect_fn, NULL, 0) <= 0) {
            long v = SSL_get_verify_result(c.ssl);
            rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "TLS with %s:%s failed%s%s", host, port,
                             v != X509_V_OK ? ": " : "",
                             v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
            goto out;
        }
    }
    buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: scepter\r\n",
               method, path, host);
    if (body_len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0)
        buf_printf(&req, "Content-Length: %zu\r\n", body_len);
    if (headers)
        buf_puts(&req, headers);
    buf_puts(&req, "\r\n");
    if (body_len)
        buf_append(&req, body, body_len);
    if (conn_write(&c, req.data, req.len) != 0) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "sending the request to %s:%s failed", host, port);
        goto out;
    }
    rc = read_response(&c, o, resp, err);
out:
    if (rc != 0)
        httpc_response_clear(resp);
    buf_free(&req);
    buf_free(&c.in);
    if (c.ssl) {
        SSL_shutdown(c.ssl);
        SSL_free(c.ssl);
    }
    SSL_CTX_free(c.ctx);
    if (c.fd >= 0)
        close(c.fd);
    ERR_clear_error();
    return rc;
}

void httpc_response_clear(struct httpc_response *resp)
{
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}
