/*
 * Integration-test harness.
 */
#include "harness.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/xmalloc.h"
#include "support/support.h"

static const char *backend(void)
{
    const char *b = getenv("SCEPTER_TEST_STORE");
    return b && *b ? b : "sqlite";
}

static char *pg_fresh_db(void)
{
    char *url = tu_pg_url(), *out = NULL, *db, *newurl;
    char name[64];

    cr_assert_not_null(url, "SCEPTER_TEST_STORE=postgres needs the pg fixture");
    snprintf(name, sizeof(name), "it_%d_%ld", (int)getpid(), (long)random());
    cr_assert_eq(tu_sh(&out, "psql '%s' -qAtc 'CREATE DATABASE %s' 2>&1", url, name), 0, "%s", out);
    free(out);
    db = strstr(url, "/scepter_test?");
    cr_assert_not_null(db, "unexpected pg url %s", url);
    *db = '\0';
    newurl = xasprintf("%s/%s?%s", url, name, db + strlen("/scepter_test?"));
    free(url);
    return newurl;
}

/* A free loopback port: bound, then closed (devices must know the URL before start). */
static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void write_conf(struct h_server *s, const struct h_opts *o)
{
    FILE *fp = fopen(s->conf, "w");
    int port = free_port();
    cr_assert_not_null(fp);
    fprintf(fp,
            "listen = 127.0.0.1:%d\n"
            "public_url = https://127.0.0.1:%d\n"
            "port_file = %s\n"
            "workers = 2\n"
            "tls_cert_file = %s/tls.pem\n"
            "tls_key_file = %s/tls.key\n"
            "tls_ca_file = %s/tls-ca.pem\n"
            "device_ca_file = %s/device-ca.pem\n"
            "device_ca_key_file = %s/device-ca.key\n"
            "identity = %s\n"
            "store = %s\n"
            "api_key = " H_API_KEY "\n"
            "log_level = debug\n"
            "last_seen_flush_ms = 100\n"
            /* A lab: the profile's PKCS#12 identity is handed out without a secret unless a
             * test closes it (extra lines come later and win). */
            "enroll_open = true\n"
            "enroll_key_pool = 2\n"
            "%s%s%s\n",
            port, port, s->ports_file, s->dir, s->dir, s->dir, s->dir, s->dir,
            o && o->identity ? o->identity : "mtls,signature", s->store_url,
            o && o->no_push_topic ? "" : "push_topic = " H_TOPIC "\n",
            o && o->plain_http ? "listen_http = 127.0.0.1:0\n" : "", o && o->extra ? o->extra : "");
    fclose(fp);
}

static void launch(struct h_server *s)
{
    char *ports = xstrdup(s->ports_file), *log = xstrdup(s->log_file);
    char *bin = tu_binary_path("mdm/scepter");
    const char *argv[] = {bin, "--config", s->conf, NULL};
    const char *env[] = {s->env, NULL};
    char *text = NULL;

    unlink(ports);
    s->proc = tu_proc_start(argv, env, log);
    /* 90 s: a restart under fault-suite load on a busy 2-core machine can take 20 s */
    if (tu_wait_file(ports, &s->proc, 90000) != 0) {
        char *l = tu_proc_log(&s->proc);
        cr_assert_fail("scepter did not start:\n%s", l);
    }
    text = (char *)tu_read(ports, NULL);
    cr_assert_eq(sscanf(text, "https=%d http=%d", &s->port, &s->http_port), 2, "%s", text);
    free(text);
    free(ports);
    free(log);
    free(bin);
}

void h_start(struct h_server *s, const struct h_opts *o)
{
    struct tu_cert_opts ca = {.cn = "Scepter Test TLS CA", .not_after = 86400 * 30};
    struct tu_cert_opts leaf = {
        .cn = "localhost", .san_dns = "localhost", .san_ip = "127.0.0.1", .not_after = 86400 * 30};
    struct tu_cert_opts dca = {.cn = "Scepter Test Device CA", .not_after = 86400 * 30};
    char *p, *k;

    memset(s, 0, sizeof(*s));
    snprintf(s->topic, sizeof(s->topic), "%s", o && o->topic ? o->topic : H_TOPIC);
    s->dir = tu_tmpdir();
    s->conf = xasprintf("%s/scepter.conf", s->dir);
    s->ports_file = xasprintf("%s/ports", s->dir);
    s->log_file = xasprintf("%s/scepter.log", s->dir);
    s->backend = backend();
    s->env = o && o->env ? xstrdup(o->env) : NULL;
    if (o && o->store_url)
        s->store_url = xstrdup(o->store_url);
    else if (strcmp(s->backend, "postgres") == 0)
        s->store_url = pg_fresh_db();
    else
        s->store_url = xasprintf("sqlite:%s/scepter.db", s->dir);
    s->tls_ca = tu_ca_new(&ca);
    s->tls = tu_cert_issue(&s->tls_ca, &leaf);
    s->dev_ca = tu_ca_new(&dca);
    p = xasprintf("%s/tls-ca.pem", s->dir);
    tu_cert_write(&s->tls_ca, p, NULL);
    free(p);
    p = xasprintf("%s/tls.pem", s->dir);
    k = xasprintf("%s/tls.key", s->dir);
    tu_cert_write(&s->tls, p, k);
    free(p);
    free(k);
    p = xasprintf("%s/device-ca.pem", s->dir);
    k = xasprintf("%s/device-ca.key", s->dir);
    tu_cert_write(&s->dev_ca, p, k);
    free(p);
    free(k);
    write_conf(s, o);
    launch(s);
}

void h_restart(struct h_server *s)
{
    char *log = xstrdup(s->proc.log_path);
    int rc = tu_proc_stop(&s->proc, SIGTERM, 30000);
    cr_assert_eq(rc, 0, "scepter exited with %d on SIGTERM", rc);
    free(log);
    launch(s);
}

void h_crash_restart(struct h_server *s)
{
    int rc = tu_proc_stop(&s->proc, SIGKILL, 10000);
    cr_assert_eq(rc, 128 + SIGKILL, "scepter was not killed (%d)", rc);
    launch(s);
}

void h_kill(struct h_server *s)
{
    int rc = tu_proc_stop(&s->proc, SIGKILL, 10000);
    cr_assert_eq(rc, 128 + SIGKILL, "scepter was not killed (%d)", rc);
}

void h_relaunch(struct h_server *s)
{
    launch(s);
}

void h_stop(struct h_server *s)
{
    if (s->proc.pid > 0) {
        char *log = tu_proc_log(&s->proc);
        int rc = tu_proc_stop(&s->proc, SIGTERM, 30000);
        if (rc != 0)
            cr_log_error("scepter log:\n%s", log);
        cr_expect_eq(rc, 0, "scepter exited with %d on SIGTERM", rc);
        free(log);
    }
    tu_cert_free(&s->tls_ca);
    tu_cert_free(&s->tls);
    tu_cert_free(&s->dev_ca);
    if (!s->peer)
        tu_rmtree(s->dir);
    free(s->dir);
    free(s->conf);
    free(s->store_url);
    free(s->ports_file);
    free(s->log_file);
    free(s->env);
}

void h_start_peer(struct h_server *peer, const struct h_server *first, const struct h_opts *o)
{
    static int n;

    memset(peer, 0, sizeof(*peer));
    peer->peer = true;
    n++;
    snprintf(peer->topic, sizeof(peer->topic), "%s", first->topic);
    peer->dir = xstrdup(first->dir);
    peer->conf = xasprintf("%s/scepter-peer%d.conf", first->dir, n);
    peer->ports_file = xasprintf("%s/ports-peer%d", first->dir, n);
    peer->log_file = xasprintf("%s/scepter-peer%d.log", first->dir, n);
    peer->backend = first->backend;
    peer->store_url = xstrdup(first->store_url);
    peer->tls_ca.cert = X509_dup(first->tls_ca.cert);
    peer->dev_ca.cert = X509_dup(first->dev_ca.cert);
    write_conf(peer, o);
    launch(peer);
}

void h_stop_peer(struct h_server *peer)
{
    h_stop(peer);
}

void h_conf_append(struct h_server *s, const char *lines)
{
    FILE *fp = fopen(s->conf, "a");
    cr_assert_not_null(fp);
    fputs(lines, fp);
    fclose(fp);
}

struct tu_cert h_device_cert(struct h_server *s, const char *cn)
{
    struct tu_cert_opts o = {.cn = cn, .not_after = 86400 * 30};
    return tu_cert_issue(&s->dev_ca, &o);
}

int h_device_put(struct h_server *s, const struct tu_cert *id, enum h_auth auth, const char *path,
                 const char *content_type, const void *body, size_t len, struct tu_http_resp *resp)
{
    char *headers, *sig = NULL;
    int rc;

    if (auth == H_SIGNATURE && id) {
        sig = tu_mdm_signature(id, body, len);
        headers = xasprintf("Content-Type: %s\r\nMdm-Signature: %s\r\n", content_type, sig);
    } else {
        headers = xasprintf("Content-Type: %s\r\n", content_type);
    }
    rc = tu_http(s->port, true, auth == H_MTLS && id ? id->cert : NULL,
                 auth == H_MTLS && id ? id->key : NULL, "PUT", path, headers, body, len, resp);
    free(headers);
    free(sig);
    return rc;
}

int h_checkin(struct h_server *s, const struct tu_cert *id, const char *xml,
              struct tu_http_resp *resp)
{
    return h_device_put(s, id, H_MTLS, "/mdm/checkin", "application/x-apple-aspen-mdm-checkin", xml,
                        strlen(xml), resp);
}

int h_connect(struct h_server *s, const struct tu_cert *id, const char *xml,
              struct tu_http_resp *resp)
{
    return h_device_put(s, id, H_MTLS, "/mdm/connect", "application/x-apple-aspen-mdm", xml,
                        strlen(xml), resp);
}

char *h_plist(const char *first_key, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    const char *k = first_key;

    buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC "
                 "\"-//Apple//DTD PLIST 1.0//EN\" "
                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                 "<plist version=\"1.0\">\n<dict>\n");
    va_start(ap, first_key);
    while (k) {
        const char *v = va_arg(ap, const char *);
        buf_printf(&b, "\t<key>%s</key>\n", k);
        if (strncmp(v, "data:", 5) == 0) {
            char *b64 = base64_encode(v + 5, strlen(v + 5));
            buf_printf(&b, "\t<data>%s</data>\n", b64);
            free(b64);
        } else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
            buf_printf(&b, "\t<%s/>\n", v);
        } else {
            buf_printf(&b, "\t<string>%s</string>\n", v);
        }
        k = va_arg(ap, const char *);
    }
    va_end(ap);
    buf_puts(&b, "</dict>\n</plist>\n");
    return buf_steal(&b, NULL);
}

void h_enroll(struct h_server *s, const struct tu_cert *id, const char *udid, const char *product)
{
    struct tu_http_resp r;
    char *auth =
        h_plist("MessageType", "Authenticate", "Topic", s->topic, "UDID", udid, "ProductName",
                product, "SerialNumber", "SN-TEST", "DeviceName", "Test device", NULL);
    char token[64];
    snprintf(token, sizeof(token), "data:tok-%.40s", udid);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", s->topic, "UDID", udid, "Token",
                        token, "PushMagic", "00000000-1111-2222-3333-444444444444", NULL);

    cr_assert_eq(h_checkin(s, id, auth, &r), 0);
    cr_assert_eq(r.status, 200, "Authenticate %s: %d %s", udid, r.status, r.body);
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(s, id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "TokenUpdate %s: %d %s", udid, r.status, r.body);
    tu_http_resp_free(&r);
    free(auth);
    free(tok);
}

int h_api(struct h_server *s, const char *method, const char *path, const char *body, json_t **out)
{
    struct tu_http_resp r;
    int status;

    cr_assert_eq(tu_http(s->port, true, NULL, NULL, method, path,
                         "Authorization: Bearer " H_API_KEY
                         "\r\nContent-Type: application/json\r\n",
                         body, body ? strlen(body) : 0, &r),
                 0, "%s %s: no answer", method, path);
    status = r.status;
    if (out) {
        json_error_t jerr;
        *out = r.body_len ? json_loadb((const char *)r.body, r.body_len, 0, &jerr) : NULL;
        cr_assert(r.body_len == 0 || *out != NULL, "%s %s: not JSON: %s", method, path, r.body);
    }
    tu_http_resp_free(&r);
    return status;
}

const char *h_json(const json_t *j)
{
    static char buf[8192];
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    snprintf(buf, sizeof(buf), "%s", s ? s : "null");
    free(s); /* jansson's allocation */
    return buf;
}
