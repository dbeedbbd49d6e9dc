/*
 * bench_scep — SCEP issuances per second of one server (Scepter's /scep, or Debian's
 * scepserver for comparison): one request at a time, each an HTTP/1.0 POST on a new loopback
 * connection.
 *
 *   bench_scep --port P [--path /scep] --ca CA.pem --challenge C [--count N]
 *              [--key rsa2048|p256] [--label NAME] [--json FILE]
 *
 * The requests (PKCSReq, a distinct CN each, keys from a pool of 8, AES-128 envelopes to the
 * CA) are built before the timed window: a device does that work on its own CPU.  The timed
 * window is the POSTs and their replies; every reply is then checked (SUCCESS, a certificate
 * that verifies against the CA).  Prints one line; with --json writes
 * {"label", "key", "count", "ok", "seconds", "per_second"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/provider.h>

#include "common/buf.h"

#include "common/str.h"
#include "common/xmalloc.h"
#include "scepc.h"
#include "support/httpc.h"

#define POOL 8

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fputs("usage: bench_scep --port P [--path /scep] --ca CA.pem --challenge C [--count N] "
          "[--key rsa2048|p256] [--label NAME] [--json FILE]\n",
          stderr);
    exit(2);
}

/*
 * One HTTP/1.0 POST on a new loopback connection, the answer read to the close (no chunked
 * encoding, whatever the server; the same for every server measured).  0 with *r filled.
 */
static int post10(int port, const char *url, const unsigned char *body, size_t len,
                  struct tu_http_resp *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct buf in = BUF_INIT;
    char head[512], chunk[16384];
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    memset(r, 0, sizeof(*r));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: "
                      "application/x-pki-message\r\nContent-Length: %zu\r\n\r\n",
                      url, len);
    struct buf out = BUF_INIT;
    buf_append(&out, head, (size_t)hl);
    buf_append(&out, body, len);
    for (size_t off = 0; off < out.len; off += (size_t)n)
        if ((n = write(fd, out.data + off, out.len - off)) <= 0)
            break;
    buf_free(&out);
    for (int guard = 0; guard < 4096 && (n = read(fd, chunk, sizeof(chunk))) > 0; guard++)
        buf_append(&in, chunk, (size_t)n);
    close(fd);
    char *sep = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
    if (sep == NULL || sscanf(in.data, "HTTP/%*d.%*d %d", &r->status) != 1) {
        buf_free(&in);
        return -1;
    }
    size_t hlen = (size_t)(sep + 4 - in.data);
    r->body_len = in.len - hlen;
    r->body = xmemdup(in.data + hlen, r->body_len ? r->body_len : 1);
    buf_free(&in);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "/scep", *ca_path = NULL, *challenge = NULL, *keytype = "rsa2048";
    const char *label = "scep", *json = NULL;
    int64_t port = 0, count = 200;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        int64_t *num = strcmp(a, "--port") == 0 ? &port : strcmp(a, "--count") == 0 ? &count : NULL;
        if (num != NULL) {
            if (str_to_i64(v, 1, num == &port ? 65535 : 1000000, num) != 0)
                usage();
        } else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--ca") == 0)
            ca_path = v;
        else if (strcmp(a, "--challenge") == 0)
            challenge = v;
        else if (strcmp(a, "--key") == 0)
            keytype = v;
        else if (strcmp(a, "--label") == 0)
            label = v;
        else if (strcmp(a, "--json") == 0)
            json = v;
        else
            usage();
        i++;
    }
    if (port == 0 || ca_path == NULL || challenge == NULL)
        usage();
    /* scepserver encrypts its replies with DES-CBC: the client reads them with the legacy
     * provider (loaded here, in the benchmark client only). */
    OSSL_PROVIDER *prov_default = OSSL_PROVIDER_load(NULL, "default");
    OSSL_PROVIDER *prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
    if (prov_default == NULL || prov_legacy == NULL)
        fputs("bench_scep: OpenSSL's legacy provider is missing: DES replies unreadable\n", stderr);
    bool ec = strcmp(keytype, "p256") == 0;
    if (!ec && strcmp(keytype, "rsa2048") != 0)
        usage();

    FILE *fp = fopen(ca_path, "r");
    X509 *ca = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
    if (fp)
        fclose(fp);
    if (ca == NULL) {
        fprintf(stderr, "bench_scep: cannot read %s\n", ca_path);
        return 1;
    }

    /* The requests, before the clock starts. */
    EVP_PKEY *keys[POOL];
    X509 *selfs[POOL];
    for (int i = 0; i < POOL; i++) {
        keys[i] = ec ? scepc_p256() : scepc_rsa(2048);
        selfs[i] = scepc_self_signed(keys[i], "bench");
    }
    unsigned char **msg = xcalloc((size_t)count, sizeof(*msg));
    size_t *len = xcalloc((size_t)count, sizeof(*len));
    struct tu_http_resp *resp = xcalloc((size_t)count, sizeof(*resp));
    for (int64_t i = 0; i < count; i++) {
        char cn[64], tx[64];
        snprintf(cn, sizeof(cn), "bench-%s-%s-%lld-%lld", label, keytype, (long long)i,
                 (long long)time(NULL));
        snprintf(tx, sizeof(tx), "bench-%lld", (long long)i);
        struct scepc_opts o = {.key = keys[i % POOL],
                               .cn = cn,
                               .challenge = challenge,
                               .signer_cert = selfs[i % POOL],
                               .signer_key = keys[i % POOL],
                               .recipient = ca,
                               .transaction_id = tx};
        msg[i] = scepc_build(&o, &len[i]);
    }

    char *url = xasprintf("%s?operation=PKIOperation", path);
    int64_t sent = 0;
    double t0 = now_s();
    for (int64_t i = 0; i < count; i++, sent++)
        if (post10((int)port, url, msg[i], len[i], &resp[i]) != 0) {
            fprintf(stderr, "bench_scep: %s request %lld: no answer\n", label, (long long)i);
            break;
        }
    double secs = now_s() - t0;

    int64_t ok = 0, failed = 0;
    for (int64_t i = 0; i < sent; i++) {
        struct scepc_reply rep = {.status = -1, .fail_info = -1};
        if (resp[i].status == 200 &&
            scepc_parse_reply(resp[i].body, resp[i].body_len, ca, keys[i % POOL], selfs[i % POOL],
                              &rep) == 0 &&
            rep.status == 0 && rep.cert && X509_verify(rep.cert, X509_get0_pubkey(ca)) == 1)
            ok++;
        else if (failed++ == 0)
            fprintf(stderr, "bench_scep: %s request %lld: HTTP %d, pkiStatus %d, failInfo %d\n",
                    label, (long long)i, resp[i].status, rep.status, rep.fail_info);
        X509_free(rep.cert);
        tu_http_resp_free(&resp[i]);
    }
    if (failed > 1)
        fprintf(stderr, "bench_scep: %s: %lld requests failed\n", label, (long long)failed);
    double rate = secs > 0 ? (double)ok / secs : 0;
    printf("bench_scep %s %s: %lld/%lld issued in %.2f s: %.1f issuances/s\n", label, keytype,
           (long long)ok, (long long)count, secs, rate);
    if (json) {
        FILE *out = fopen(json, "w");
        if (out) {
            fprintf(out,
                    "{\"label\":\"%s\",\"key\":\"%s\",\"count\":%lld,\"ok\":%lld,\"seconds\":%.3f,"
                    "\"per_second\":%.1f}\n",
                    label, keytype, (long long)count, (long long)ok, secs, rate);
            fclose(out);
        }
    }
    for (int64_t i = 0; i < count; i++)
        free(msg[i]);
    for (int i = 0; i < POOL; i++) {
        EVP_PKEY_free(keys[i]);
        X509_free(selfs[i]);
    }
    free(msg);
    free(len);
    free(resp);
    free(url);
    X509_free(ca);
    OSSL_PROVIDER_unload(prov_legacy);
    OSSL_PROVIDER_unload(prov_default);
    return ok == count ? 0 : 1;
}
