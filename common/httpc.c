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
#include <stdarg.h>
#include <stdint.h>
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
    int64_t deadline; /* CLOCK_MONOTONIC ms: the whole exchange ends by then */
    struct buf in;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long the next wait may take: the per-step timeout, cut to what is left of the deadline
 * (0 once it passed, so the wait fails at once). */
static int io_timeout(const struct conn *c)
{
    int64_t left = c->deadline - now_ms();

    if (left <= 0)
        return 0;
    return left < c->timeout_ms ? (int)left : c->timeout_ms;
}

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

static int tcp_connect(const struct conn *c, const char *host, const char *port,
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
            (errno == EINPROGRESS && wait_fd(fd, POLLOUT, io_timeout(c)) > 0)) {
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
            if (wait_fd(c->fd, POLLIN, io_timeout(c)) <= 0)
                return -2;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            if (wait_fd(c->fd, POLLOUT, io_timeout(c)) <= 0)
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
                if (wait_fd(c->fd, POLLOUT, io_timeout(c)) <= 0)
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
                if (wait_fd(c->fd, POLLIN, io_timeout(c)) <= 0)
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

/* ---------------------------------------------------------------------------------------- */
/* The response parser                                                                       */

enum {
    P_STATUS,
    P_HEADERS,
    P_BODY_LEN,
    P_BODY_EOF,
    P_CHUNK_SIZE,
    P_CHUNK_DATA,
    P_TRAILERS,
    P_DONE
};

void httpc_parser_init(struct httpc_parser *p, size_t max_body, bool no_body)
{
    memset(p, 0, sizeof(*p));
    p->max_body = max_body;
    p->no_body = no_body;
    p->hdr = xcalloc(1, sizeof(struct buf));
    p->body = xcalloc(1, sizeof(struct buf));
}

void httpc_parser_free(struct httpc_parser *p)
{
    if (p->hdr)
        buf_free(p->hdr);
    if (p->body)
        buf_free(p->body);
    free(p->hdr);
    free(p->body);
    p->hdr = p->body = NULL;
}

static int bad(struct scepter_error *err, const char *fmt, ...) PRINTF(2, 3);

static int bad(struct scepter_error *err, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return scepter_err(err, SCEPTER_EIO, "response", "bad HTTP response: %s", msg);
}

/*
 * The next CRLF-terminated line at data[*pos..len): 1 with the line in *line and *llen
 * (no CRLF) and *pos past it, 0 when it is not all there yet, or an error: longer than max, a
 * bare LF or CR, a NUL.
 */
static int next_line(const char *data, size_t len, size_t *pos, size_t max, const char *what,
                     const char **line, size_t *llen, struct scepter_error *err)
{
    size_t avail = len - *pos, scan = avail < max + 2 ? avail : max + 2;
    const char *s = data + *pos, *lf = memchr(s, '\n', scan);

    if (lf == NULL) {
        if (avail >= max + 2)
            return bad(err, "%s longer than %zu bytes", what, max);
        return 0;
    }
    size_t n = (size_t)(lf - s);
    if (n == 0 || s[n - 1] != '\r')
        return bad(err, "%s not terminated by CRLF", what);
    n--;
    if (n > max)
        return bad(err, "%s longer than %zu bytes", what, max);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\0')
            return bad(err, "%s holds a stray %s", what, s[i] ? "CR" : "NUL");
    *line = s;
    *llen = n;
    *pos += n + 2;
    return 1;
}

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
    return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

/* One header or trailer line: name ":" OWS value OWS.  Headers are recorded and checked. */
static int header_line(struct httpc_parser *p, const char *line, size_t n, bool trailer,
                       struct scepter_error *err)
{
    const char *what = trailer ? "trailer" : "header";
    size_t nlen = 0, vs, ve;

    if (++p->nlines > HTTPC_MAX_HEADERS)
        return bad(err, "more than %d %s lines", HTTPC_MAX_HEADERS, what);
    if (!size_add(p->line_bytes, n + 2, &p->line_bytes) || p->line_bytes > HTTPC_MAX_HEADER_BYTES)
        return bad(err, "%ss larger than %d bytes", what, HTTPC_MAX_HEADER_BYTES);
    if (line[0] == ' ' || line[0] == '\t')
        return bad(err, "folded %s line (obsolete line folding is refused)", what);
    while (nlen < n && is_tchar((unsigned char)line[nlen]))
        nlen++;
    if (nlen == 0 || nlen == n || line[nlen] != ':')
        return bad(err, "%s line '%.*s' is not name: value", what, (int)(n < 60 ? n : 60), line);
    for (vs = nlen + 1; vs < n && (line[vs] == ' ' || line[vs] == '\t'); vs++)
        ;
    for (ve = n; ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'); ve--)
        ;
    if (trailer)
        return 0; /* trailers are checked for shape and size, not used */
    const char *v = line + vs;
    size_t vlen = ve - vs;
    if (name_is(line, nlen, "Content-Length")) {
        size_t cl = 0;
        if (vlen == 0)
            return bad(err, "Content-Length is empty");
        for (size_t i = 0; i < vlen; i++) {
            if (!isdigit((unsigned char)v[i]))
                return bad(err, "Content-Length '%.*s' is not a decimal number",
                           (int)(vlen < 40 ? vlen : 40), v);
            if (!size_mul(cl, 10, &cl) || !size_add(cl, (size_t)(v[i] - '0'), &cl))
                return bad(err, "Content-Length '%.*s' overflows", (int)(vlen < 40 ? vlen : 40), v);
        }
        if (p->has_length && p->content_length != cl)
            return bad(err, "two different Content-Length headers (%zu and %zu)", p->content_length,
                       cl);
        p->has_length = true;
        p->content_length = cl;
    } else if (name_is(line, nlen, "Transfer-Encoding")) {
        if (p->chunked)
            return bad(err, "Transfer-Encoding given twice");
        if (!(vlen == 7 && strncasecmp(v, "chunked", 7) == 0))
            return bad(err, "Transfer-Encoding '%.*s' is not supported (only chunked)",
                       (int)(vlen < 40 ? vlen : 40), v);
        p->chunked = true;
    }
    buf_append(p->hdr, line, nlen); /* stored as "Name: value" with the value trimmed */
    buf_puts(p->hdr, ": ");
    buf_append(p->hdr, v, vlen);
    buf_puts(p->hdr, "\r\n");
    return 0;
}

/* The end of the header block: how the body is framed. */
static int headers_done(struct httpc_parser *p, struct scepter_error *err)
{
    if (p->status < 200) {
        if (p->status == 101)
            return bad(err, "unexpected 101 Switching Protocols");
        if (++p->interim > HTTPC_MAX_INTERIM)
            return bad(err, "more than %d interim (1xx) responses", HTTPC_MAX_INTERIM);
        buf_reset(p->hdr);
        p->nlines = p->line_bytes = 0;
        p->has_length = p->chunked = false;
        p->content_length = 0;
        p->state = P_STATUS;
        return 0;
    }
    if (p->has_length && p->chunked)
        return bad(err, "both Content-Length and Transfer-Encoding: chunked (refused: the "
                        "framing is ambiguous)");
    p->nlines = p->line_bytes = 0;
    if (p->no_body || p->status == 204 || p->status == 304) {
        p->state = P_DONE;
    } else if (p->chunked) {
        p->state = P_CHUNK_SIZE;
    } else if (p->has_length) {
        if (p->content_length > p->max_body)
            return bad(err, "Content-Length %zu exceeds the %zu-byte body limit", p->content_length,
                       p->max_body);
        p->left = p->content_length;
        p->state = p->left ? P_BODY_LEN : P_DONE;
    } else {
        p->state = P_BODY_EOF;
    }
    return 0;
}

/* A chunk-size line: 1*HEXDIG [BWS ";" extensions]. */
static int chunk_size(struct httpc_parser *p, const char *line, size_t n, struct scepter_error *err)
{
    struct buf *body = p->body;
    size_t size = 0, i = 0, room = p->max_body - body->len;
    int show = (int)(n < 40 ? n : 40);

    for (; i < n && isxdigit((unsigned char)line[i]); i++) {
        unsigned d = isdigit((unsigned char)line[i])
                         ? (unsigned)(line[i] - '0')
                         : (unsigned)(tolower((unsigned char)line[i]) - 'a' + 10);
        /* size * 16 + d, refused as soon as it exceeds what the body may still take (so it
         * can never wrap, whatever the number of digits) */
        if (!size_mul(size, 16, &size) || !size_add(size, d, &size) || size > room)
            return bad(err, "chunk size '%.*s' exceeds the %zu-byte body limit", show, line,
                       p->max_body);
    }
    if (i == 0)
        return bad(err, "chunk size line '%.*s' does not start with a hex number", show, line);
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i < n && line[i] != ';')
        return bad(err, "chunk size line '%.*s' has junk after the size", show, line);
    for (; i < n; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            return bad(err, "chunk extension holds a control character");
    if (size == 0) {
        p->state = P_TRAILERS;
    } else {
        p->left = size;
        p->state = P_CHUNK_DATA;
    }
    return 0;
}

static int status_line(struct httpc_parser *p, const char *line, size_t n,
                       struct scepter_error *err)
{
    int show = (int)(n < 60 ? n : 60);

    if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (n > 12 && line[12] != ' '))
        return bad(err, "status line '%.*s' is not HTTP/1.x NNN", show, line);
    p->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (p->status < 100 || p->status > 599)
        return bad(err, "status %d is out of range", p->status);
    p->state = P_HEADERS;
    return 0;
}

int httpc_parser_feed(struct httpc_parser *p, const char *data, size_t len, bool eof, size_t *used,
                      struct httpc_response *resp, struct scepter_error *err)
{
    struct buf *body = p->body;
    size_t pos = 0;
    int rc = 0;

    while (rc == 0 && p->state != P_DONE) {
        const char *line = NULL;
        size_t n = 0, avail = len - pos, take;
        int got;

        switch (p->state) {
        case P_STATUS:
        case P_HEADERS:
        case P_TRAILERS:
        case P_CHUNK_SIZE:
            got = next_line(data, len, &pos,
                            p->state == P_CHUNK_SIZE ? HTTPC_MAX_CHUNK_LINE : HTTPC_MAX_LINE,
                            p->state == P_STATUS       ? "status line"
                            : p->state == P_CHUNK_SIZE ? "chunk size line"
                            : p->state == P_HEADERS    ? "header line"
                                                       : "trailer line",
                            &line, &n, err);
            if (got < 0) {
                rc = got;
                break;
            }
            if (got == 0)
                goto more;
            if (p->state == P_STATUS)
                rc = status_line(p, line, n, err);
            else if (p->state == P_CHUNK_SIZE)
                rc = chunk_size(p, line, n, err);
            else if (n == 0)
                rc = p->state == P_HEADERS ? headers_done(p, err) : (p->state = P_DONE, 0);
            else
                rc = header_line(p, line, n, p->state == P_TRAILERS, err);
            break;
        case P_BODY_LEN:
        case P_CHUNK_DATA:
            if (p->left == 0) { /* the CRLF after a chunk's data */
                if (avail < 2)
                    goto more;
                if (data[pos] != '\r' || data[pos + 1] != '\n') {
                    rc = bad(err, "chunk data not followed by CRLF");
                    break;
                }
                pos += 2;
                p->state = P_CHUNK_SIZE;
                break;
            }
            if (avail == 0)
                goto more;
            take = avail < p->left ? avail : p->left;
            buf_append(body, data + pos, take); /* bounded: left <= max_body - body->len */
            pos += take;
            p->left -= take;
            if (p->left == 0 && p->state == P_BODY_LEN)
                p->state = P_DONE;
            break;
        case P_BODY_EOF:
            if (avail > p->max_body - body->len) {
                rc = bad(err, "body exceeds the %zu-byte limit", p->max_body);
                break;
            }
            buf_append(body, data + pos, avail);
            pos += avail;
            if (!eof)
                goto more;
            p->state = P_DONE;
            break;
        default:
            rc = bad(err, "parser state %d", p->state);
        }
    }
    *used = pos;
    if (rc < 0)
        return rc;
    memset(resp, 0, sizeof(*resp));
    resp->status = p->status;
    resp->headers = buf_steal(p->hdr, NULL);
    resp->body = buf_steal(body, &resp->body_len);
    return 1;
more:
    *used = pos;
    if (!eof)
        return 0;
    switch (p->state) {
    case P_STATUS:
        return p->status ? bad(err, "truncated after an interim response")
                         : scepter_err(err, SCEPTER_EIO, "response",
                                       "no HTTP response (connection closed?)");
    case P_HEADERS:
        return bad(err, "truncated in the headers");
    case P_BODY_LEN:
        return bad(err, "truncated body (%zu of %zu bytes)", body->len, p->content_length);
    case P_TRAILERS:
        return bad(err, "truncated in the trailers");
    default:
        return bad(err, "truncated chunked body (after %zu bytes)", body->len);
    }
}

int httpc_parse_response(const void *data, size_t len, size_t max_body, struct httpc_response *resp,
                         struct scepter_error *err)
{
    struct httpc_parser p;
    size_t used = 0;
    int rc;

    memset(resp, 0, sizeof(*resp));
    httpc_parser_init(&p, max_body, false);
    rc = httpc_parser_feed(&p, len ? data : "", len, true, &used, resp, err);
    httpc_parser_free(&p);
    return rc == 1 ? 0 : rc;
}

static int read_response(struct conn *c, const char *method, const struct httpc_opts *o,
                         struct httpc_response *r, struct scepter_error *err)
{
    struct httpc_parser p;
    size_t max = o && o->max_body ? o->max_body : 64u << 20;
    bool eof = false;
    int rc;

    httpc_parser_init(&p, max, strcmp(method, "HEAD") == 0);
    for (;;) {
        size_t used = 0;
        rc = httpc_parser_feed(&p, c->in.data ? c->in.data : "", c->in.len, eof, &used, r, err);
        if (used) { /* drop what the parser consumed: the buffer holds one line or chunk */
            memmove(c->in.data, c->in.data + used, c->in.len - used);
            c->in.len -= used;
            c->in.data[c->in.len] = '\0';
        }
        if (rc != 0)
            break;
        if (now_ms() >= c->deadline) {
            rc = scepter_err(err, SCEPTER_EIO, "response",
                             "the response did not complete within the %lld ms deadline",
                             (long long)(o && o->total_timeout_ms ? o->total_timeout_ms : 60000));
            break;
        }
        int f = conn_fill(c);
        if (f < 0) {
            rc = scepter_err(err, SCEPTER_EIO, "response",
                             now_ms() >= c->deadline
                                 ? "the response did not complete within the deadline"
                                 : "reading the response failed or timed out");
            break;
        }
        eof = f == 0;
    }
    httpc_parser_free(&p);
    return rc == 1 ? 0 : rc;
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
    c.deadline = now_ms() + (o && o->total_timeout_ms > 0 ? o->total_timeout_ms : 60000);
    if (parse_url(url, &tls, host, sizeof(host), port, sizeof(port), &path) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "url", "'%s' is not an http(s):// URL", url);
    if ((c.fd = tcp_connect(&c, host, port, err)) < 0)
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
    rc = read_response(&c, method, o, resp, err);
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
