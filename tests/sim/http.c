/*
 * A blocking HTTP/1.1 client for the few requests a device makes outside the MDM session: the
 * enrollment profile download and the SCEP exchange.  Each request runs on a private libevent
 * loop with a hard deadline, over plain TCP or TLS (verified against the trust the profile
 * established, optionally with a client identity).  The TLS helpers are shared with the
 * event-driven engine.
 */
#include "sim_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define SIM_HTTP_MAX_BODY (16 * 1024 * 1024)

/*
 * Call after evhttp_make_request (the socket exists from then on).  A device's TLS record with
 * the request often follows the handshake's last record in a second small write; with Nagle
 * the second waits for the ACK of the first, which the server delays by up to 40 ms.
 */
void sim_http_nodelay(struct evhttp_connection *evcon)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));

    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

SSL_CTX *sim_tls_client_ctx(X509_STORE *trust, struct scepter_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        scepter_err(err, SCEPTER_EINTERNAL, NULL, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (trust) {
        SSL_CTX_set1_cert_store(ctx, trust);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        scepter_err(err, SCEPTER_ECRYPTO, NULL, "cannot load the system trust store");
        return NULL;
    }
    return ctx;
}

struct bufferevent *sim_tls_bev_new(struct event_base *base, SSL_CTX *ctx, const char *host,
                                    X509 *cert, EVP_PKEY *key, struct scepter_error *err)
{
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev;

    if (ssl == NULL) {
        scepter_err(err, SCEPTER_EINTERNAL, NULL, "SSL_new failed");
        return NULL;
    }
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (cert && key) {
        if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
            SSL_free(ssl);
            scepter_err(err, SCEPTER_ECRYPTO, "identity",
                        "identity: the client certificate "
                        "and key cannot be used together");
            scepter_err_openssl(err);
            return NULL;
        }
    }
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        scepter_err(err, SCEPTER_EINTERNAL, NULL, "bufferevent_openssl_socket_new failed");
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

void sim_http_reply_clear(struct sim_http_reply *r)
{
    if (r == NULL)
        return;
    free(r->content_type);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

struct fetch {
    struct event_base *base;
    struct evhttp_connection *evcon;
    struct sim_http_reply *out;
    bool done;
    int error;               /* enum evhttp_request_error + 1, 0 = none */
    unsigned long ssl_error; /* first OpenSSL error seen on the connection */
    int sock_errno;
};

static void fetch_error_cb(enum evhttp_request_error e, void *arg)
{
    struct fetch *f = arg;
    struct bufferevent *bev = f->evcon ? evhttp_connection_get_bufferevent(f->evcon) : NULL;

    f->error = (int)e + 1;
    f->sock_errno = errno;
    if (bev) {
        unsigned long se = bufferevent_get_openssl_error(bev);
        if (se && !f->ssl_error)
            f->ssl_error = se;
    }
}

static void fetch_done_cb(struct evhttp_request *req, void *arg)
{
    struct fetch *f = arg;

    f->done = true;
    event_base_loopbreak(f->base);
    if (req == NULL || evhttp_request_get_response_code(req) == 0)
        return;
    {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");

        f->out->status = evhttp_request_get_response_code(req);
        f->out->body = xmalloc(n + 1);
        evbuffer_remove(in, f->out->body, n);
        f->out->body[n] = '\0';
        f->out->len = n;
        f->out->content_type = ct ? xstrdup(ct) : NULL;
    }
}

static const char *fetch_error_name(int e)
{
    switch (e - 1) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "connection refused or closed before a reply";
    case EVREQ_HTTP_INVALID_HEADER:
        return "invalid HTTP reply";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "reply too large";
    default:
        return "connection refused or failed";
    }
}

int sim_http_fetch(const char *method, const char *url, const char *content_type, const void *body,
                   size_t len, X509_STORE *trust, X509 *cert, EVP_PKEY *key, int timeout_ms,
                   struct sim_http_reply *out, struct scepter_error *err)
{
    struct evhttp_uri *uri = NULL;
    SSL_CTX *ctx = NULL;
    struct bufferevent *bev = NULL;
    struct evhttp_request *req;
    struct fetch f;
    const char *scheme, *host, *path, *query;
    char *target = NULL, hostport[300];
    int port, rc = 0;
    bool tls;
    enum evhttp_cmd_type cmd;
    struct timeval tv;

    memset(out, 0, sizeof(*out));
    memset(&f, 0, sizeof(f));
    f.out = out;
    if (strcmp(method, "GET") == 0)
        cmd = EVHTTP_REQ_GET;
    else if (strcmp(method, "POST") == 0)
        cmd = EVHTTP_REQ_POST;
    else if (strcmp(method, "PUT") == 0)
        cmd = EVHTTP_REQ_PUT;
    else
        return scepter_err(err, SCEPTER_EINVAL, "method", "unsupported method %s", method);
    uri = evhttp_uri_parse(url);
    scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (uri == NULL || scheme == NULL || host == NULL || host[0] == '\0') {
        rc = scepter_err(err, SCEPTER_EINVAL, "url", "URL: \"%s\" is not an absolute URL", url);
        goto out;
    }
    if (str_eq_nocase(scheme, "https"))
        tls = true;
    else if (str_eq_nocase(scheme, "http"))
        tls = false;
    else {
        rc = scepter_err(err, SCEPTER_EINVAL, "url", "URL: scheme \"%s\" is not http or https",
                         scheme);
        goto out;
    }
    port = evhttp_uri_get_port(uri);
    if (port < 0)
        port = tls ? 443 : 80;
    path = evhttp_uri_get_path(uri);
    query = evhttp_uri_get_query(uri);
    target =
        xasprintf("%s%s%s", (path && path[0]) ? path : "/", query ? "?" : "", query ? query : "");
    f.base = event_base_new();
    if (f.base == NULL) {
        rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "event_base_new failed");
        goto out;
    }
    if (tls) {
        ctx = sim_tls_client_ctx(trust, err);
        if (ctx == NULL) {
            rc = err ? err->code : SCEPTER_ECRYPTO;
            goto out;
        }
        bev = sim_tls_bev_new(f.base, ctx, host, cert, key, err);
        if (bev == NULL) {
            rc = err ? err->code : SCEPTER_ECRYPTO;
            goto out;
        }
    }
    f.evcon = evhttp_connection_base_bufferevent_new(f.base, NULL, bev, host, (ev_uint16_t)port);
    if (f.evcon == NULL) {
        if (bev)
            bufferevent_free(bev);
        rc = scepter_err(err, SCEPTER_EINTERNAL, NULL, "cannot create an HTTP connection");
        goto out;
    }
    tv.tv_sec = (timeout_ms > 0 ? timeout_ms : 10000) / 1000;
    tv.tv_usec = ((timeout_ms > 0 ? timeout_ms : 10000) % 1000) * 1000;
    evhttp_connection_set_timeout_tv(f.evcon, &tv);
    evhttp_connection_set_retries(f.evcon, 0);
    evhttp_connection_set_max_body_size(f.evcon, SIM_HTTP_MAX_BODY);
    req = evhttp_request_new(fetch_done_cb, &f);
    evhttp_request_set_error_cb(req, fetch_error_cb);
    if (port == (tls ? 443 : 80))
        str_copy(hostport, sizeof(hostport), host);
    else
        snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostport);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_add_header(evhttp_request_get_output_headers(req), "User-Agent", "MDM/1.0 scepter-sim");
    if (content_type)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    if (body && len)
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    if (evhttp_make_request(f.evcon, req, cmd, target) != 0) {
        rc = scepter_err(err, SCEPTER_EIO, "url", "cannot send the request to %s", url);
        goto out;
    }
    sim_http_nodelay(f.evcon);
    /* A hard deadline on top of libevent's per-phase timeout. */
    tv.tv_sec += 2;
    event_base_loopexit(f.base, &tv);
    event_base_dispatch(f.base);
    if (!f.done || out->status == 0) {
        char ssl_reason[160] = "";

        if (f.ssl_error)
            ERR_error_string_n(f.ssl_error, ssl_reason, sizeof(ssl_reason));
        rc = scepter_err(err, SCEPTER_EIO, "url", "%s is unreachable: %s%s%s", url,
                         f.done || f.error ? fetch_error_name(f.error) : "timed out",
                         ssl_reason[0] ? ": " : "", ssl_reason);
        sim_http_reply_clear(out);
        goto out;
    }
out:
    if (f.evcon)
        evhttp_connection_free(f.evcon);
    if (f.base)
        event_base_free(f.base);
    SSL_CTX_free(ctx);
    free(target);
    if (uri)
        evhttp_uri_free(uri);
    return rc;
}
