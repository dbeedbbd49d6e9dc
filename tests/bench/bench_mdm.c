/*
 * bench_mdm — the end-to-end server benchmark.  It starts, as child processes, a throwaway
 * PostgreSQL (scripts/pg-test.sh) or an SQLite file, apns-test-server as the push sink, and
 * the release `scepter` (its default workers, or --workers N; log_level = warn), then plays
 * thousands of devices over loopback TLS from one epoll loop (non-blocking OpenSSL) and
 * measures what a user would
 * notice: enrollment rate (Mdm-Signature over keep-alive connections, and mTLS with one
 * connection per device), Idle polls with an empty queue (keep-alive mTLS at two connection
 * counts, keep-alive Mdm-Signature, and one request per new TLS connection) with latency
 * percentiles and scepter's CPU per 1,000 check-ins, peak RSS with N open device
 * connections, one command delivered to and acknowledged by N devices, and a policy saved for
 * N and for a larger set of devices (time to the API's answer, to the last push handed to the
 * sink, and — for N — to the last acknowledgement).  It prints each figure beside its target
 * and writes them as JSON (--json FILE).  Nothing here asserts speed: it exits non-zero only
 * when something did not work (a request failed, a device got no command, a push is missing).
 *
 *   bench_mdm [--backend sqlite|postgres] [--devices N] [--big-devices M] [--mtls-enroll K]
 *             [--seconds S] [--conns 32,64] [--workers N] [--json FILE] [--keep] [--enroll-only]
 *             [--seed-sql FILE] [--device-key ec|rsa]
 *
 * Device identities are ECDSA P-256 certificates issued here from a throwaway device CA (one
 * shared key; every certificate differs), as the server binds each certificate's SHA-256 at
 * Authenticate.  --device-key rsa makes them RSA-2048, from an RSA-2048 device CA: what a
 * device enrolled through a SCEP payload holds (Apple's SCEP payload makes RSA keys only; an
 * ACME payload can make ECDSA ones).  Mdm-Signature bodies are signed before the timed window (a
 * device signs on its own CPU, not the server's); the signing time is reported separately.
 *
 * Environment: SCEPTER_BINARY_DIR (build tree; default: three levels above this program),
 * SCEPTER_SOURCE_DIR (for scripts/pg-test.sh; default ".").
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "harness.h"

#define API_KEY        "bench-api-key-0123456789abcdef"
#define MAX_CONNS_LIST 4

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench;
static void teardown(struct bench *b);
/* The run die() stops (scepter, the APNs sink, PostgreSQL, the temporary directory) before
 * it exits: set once they exist; cleared while the teardown runs, so a failure inside it does
 * not recurse. */
static struct bench *dying_bench;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    struct bench *b = dying_bench;
    fprintf(stderr, "bench_mdm: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    ERR_print_errors_fp(stderr);
    dying_bench = NULL;
    if (b != NULL)
        teardown(b);
    exit(1);
}

/* utime + stime of a process in seconds, from /proc/<pid>/stat; -1 when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *fp;
    size_t n;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fp = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Name:   123 kB" field of /proc/<pid>/status in MB; -1 when unreadable. */
static double proc_status_mb(pid_t pid, const char *field)
{
    char path[64], line[256];
    double mb = -1;
    size_t fl = strlen(field);
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((fp = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            mb = strtod(line + fl + 1, NULL) / 1024.0;
            break;
        }
    fclose(fp);
    return mb;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Latency samples in microseconds. */
struct lat {
    uint32_t *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, double seconds)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    l->v[l->n++] = (uint32_t)(seconds * 1e6);
}

/* Percentile in milliseconds (sorts the samples). */
static double lat_pct(struct lat *l, double pct)
{
    size_t i;
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
    i = (size_t)(pct / 100.0 * (double)(l->n - 1) + 0.5);
    return l->v[i] / 1000.0;
}

/* ---------------------------------------------------------------------------------------- */
/* Figures: what the table and the JSON show                                                 */

struct fig {
    char name[96];
    double value;
    char unit[16];
    char target[32]; /* "" = reported only */
    int pass;        /* 1 pass, 0 fail, -1 no target */
    char note[160];
};

struct figs {
    struct fig f[96];
    int n;
};

/* target: ">=X" or "<=X" (in the figure's unit) or NULL. */
static void fig_add(struct figs *fs, const char *name, double value, const char *unit,
                    const char *target, const char *note)
{
    struct fig *f;

    if (fs->n == (int)(sizeof(fs->f) / sizeof(fs->f[0])))
        return;
    f = &fs->f[fs->n++];
    memset(f, 0, sizeof(*f));
    str_copy(f->name, sizeof(f->name), name);
    f->value = value;
    str_copy(f->unit, sizeof(f->unit), unit);
    str_copy(f->note, sizeof(f->note), note ? note : "");
    f->pass = -1;
    if (target && *target) {
        double t = strtod(target + 2, NULL);
        str_copy(f->target, sizeof(f->target), target);
        f->pass = target[0] == '>' ? value >= t : value <= t;
    }
    printf("  %-58s %12.*f %-7s %-10s %s%s%s\n", f->name,
           value >= 100 ? 0
           : value < 1  ? 3
                        : 2,
           value, f->unit, f->target,
           f->pass < 0 ? ""
           : f->pass   ? "PASS"
                       : "FAIL",
           *f->note ? "  " : "", f->note);
    fflush(stdout);
}

/* ---------------------------------------------------------------------------------------- */
/* Throwaway PKI                                                                             */

static X509 *make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *issuer_key,
                       long serial, bool ca, bool tls_server)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    X509V3_CTX v3;
    struct {
        int nid;
        const char *value;
        bool on;
    } ext[] = {
        {NID_basic_constraints, "critical,CA:TRUE", ca},
        {NID_key_usage, "critical,keyCertSign,cRLSign", ca},
        {NID_subject_key_identifier, "hash", ca},
        {NID_key_usage, "critical,digitalSignature", !ca},
        {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1", tls_server},
        {NID_ext_key_usage, "serverAuth", tls_server},
    };

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
    X509_set_pubkey(x, pub);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        X509_EXTENSION *e;
        if (!ext[i].on)
            continue;
        if ((e = X509V3_EXT_conf_nid(NULL, &v3, ext[i].nid, ext[i].value)) == NULL)
            die("extension %s", ext[i].value);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (!X509_sign(x, issuer_key, EVP_sha256()))
        die("X509_sign");
    return x;
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        die("%s: %s", path, strerror(errno));
    if ((cert && !PEM_write_X509(fp, cert)) ||
        (key && !PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL)))
        die("PEM write %s", path);
    fclose(fp);
}

/* ---------------------------------------------------------------------------------------- */
/* The benchmark's state                                                                     */

struct bench {
    /* options */
    const char *backend;
    long devices, big_devices, mtls_enroll;
    long workers; /* scepter's workers; 0 = its default */
    double seconds;
    int conns[MAX_CONNS_LIST], nconns;
    const char *json_path;
    bool keep;
    bool enroll_only;     /* --enroll-only: stop after the Mdm-Signature enrollment (profiling) */
    bool rsa_devices;     /* --device-key rsa: RSA-2048 device identities and device CA */
    const char *seed_sql; /* --seed-sql FILE: run with psql before the first phase (PostgreSQL) */
    /* places */
    char *dir, *bin_dir, *src_dir, *store_url, *pg_dir;
    /* PKI */
    EVP_PKEY *dev_key, *dca_key;
    X509 *dev_ca, *tls_ca;
    X509 **dev_cert; /* one per device index */
    long ndev;       /* certificates issued */
    char topic[160];
    /* processes */
    pid_t pid;
    int port;
    struct ts_server *sink;
    SSL_CTX *cli;
    /* results */
    struct figs figs;
    int failures;
};

static void dev_udid(char out[40], long i)
{
    snprintf(out, 40, "BE4C0000-0000-4000-8000-%012lX", (unsigned long)i & 0xffffffffffffUL);
}

/* ---------------------------------------------------------------------------------------- */
/* Device messages                                                                           */

#define PLIST_HEAD                                                                                 \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD "          \
    "PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist "                 \
    "version=\"1.0\">\n<dict>\n"
#define PLIST_TAIL "</dict>\n</plist>\n"

/* Authenticate as a Mac sends it (NanoMDM's mdm/testdata, copied in tests/data/device-plists). */
static char *body_authenticate(const struct bench *b, long i)
{
    char udid[40];
    dev_udid(udid, i);
    return xasprintf(PLIST_HEAD "\t<key>BuildVersion</key>\n\t<string>23A344</string>\n"
                                "\t<key>Challenge</key>\n\t<data>\n\tYXBwbGU=\n\t</data>\n"
                                "\t<key>DeviceName</key>\n\t<string>Bench Mac %ld</string>\n"
                                "\t<key>MessageType</key>\n\t<string>Authenticate</string>\n"
                                "\t<key>Model</key>\n\t<string>Mac14,2</string>\n"
                                "\t<key>ModelName</key>\n\t<string>MacBook Air</string>\n"
                                "\t<key>OSVersion</key>\n\t<string>14.0</string>\n"
                                "\t<key>ProductName</key>\n\t<string>Mac14,2</string>\n"
                                "\t<key>SerialNumber</key>\n\t<string>CB%010ld</string>\n"
                                "\t<key>Topic</key>\n\t<string>%s</string>\n"
                                "\t<key>UDID</key>\n\t<string>%s</string>\n" PLIST_TAIL,
                     i, i, b->topic, udid);
}

static char *body_token_update(const struct bench *b, long i)
{
    unsigned char tok[32];
    char udid[40], *b64, *out;

    memset(tok, 0xA5, sizeof(tok));
    memcpy(tok, &i, sizeof(i));
    b64 = base64_encode(tok, sizeof(tok));
    dev_udid(udid, i);
    out = xasprintf(PLIST_HEAD "\t<key>AwaitingConfiguration</key>\n\t<false/>\n"
                               "\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n"
                               "\t<key>PushMagic</key>\n"
                               "\t<string>888CEB39-BFFA-40F6-89FA-%012lX</string>\n"
                               "\t<key>Token</key>\n\t<data>\n\t%s\n\t</data>\n"
                               "\t<key>Topic</key>\n\t<string>%s</string>\n"
                               "\t<key>UDID</key>\n\t<string>%s</string>\n" PLIST_TAIL,
                    (unsigned long)i, b64, b->topic, udid);
    free(b64);
    return out;
}

static char *body_idle(long i)
{
    char udid[40];
    dev_udid(udid, i);
    return xasprintf(PLIST_HEAD "\t<key>Status</key>\n\t<string>Idle</string>\n"
                                "\t<key>UDID</key>\n\t<string>%s</string>\n" PLIST_TAIL,
                     udid);
}

static char *body_ack(long i, const char *uuid)
{
    char udid[40];
    dev_udid(udid, i);
    return xasprintf(PLIST_HEAD "\t<key>CommandUUID</key>\n\t<string>%s</string>\n"
                                "\t<key>Status</key>\n\t<string>Acknowledged</string>\n"
                                "\t<key>UDID</key>\n\t<string>%s</string>\n" PLIST_TAIL,
                     uuid, udid);
}

/* Mdm-Signature: base64 of a detached CMS SignedData over the body, signer embedded. */
static char *mdm_signature(X509 *cert, EVP_PKEY *key, const char *body, size_t len)
{
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms =
        CMS_sign(cert, key, NULL, in, CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP);
    unsigned char *der = NULL;
    int n;
    char *b64;

    if (cms == NULL || (n = i2d_CMS_ContentInfo(cms, &der)) <= 0)
        die("CMS_sign");
    b64 = base64_encode(der, (size_t)n);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return b64;
}

/* A whole HTTP/1.1 request; the body is copied; sig may be NULL. */
static char *http_request(const char *method, const char *path, const char *ctype,
                          const char *extra_headers, const char *body, size_t *len)
{
    struct buf r = BUF_INIT;
    size_t blen = body ? strlen(body) : 0;

    buf_printf(&r,
               "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
               "Content-Length: %zu\r\n%s\r\n",
               method, path, ctype, blen, extra_headers ? extra_headers : "");
    if (blen)
        buf_append(&r, body, blen);
    return buf_steal(&r, len);
}

static char *device_request(const char *path, const char *body, const char *sig, size_t *len)
{
    char *hdr = sig ? xasprintf("Mdm-Signature: %s\r\n", sig) : NULL;
    char *out =
        http_request("PUT", path,
                     strcmp(path, "/mdm/checkin") == 0 ? "application/x-apple-aspen-mdm-checkin"
                                                       : "application/x-apple-aspen-mdm",
                     hdr, body, len);
    free(hdr);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Pre-computation on two threads: device certificates and signed enrollment requests        */

struct prep {
    struct bench *b;
    long lo, hi; /* device indexes */
    char **reqs; /* signed: 2 requests per device (Authenticate, TokenUpdate), or NULL */
    size_t *lens;
    long base; /* index of device lo in reqs/2 */
};

static void *prep_certs(void *arg)
{
    struct prep *p = arg;
    for (long i = p->lo; i < p->hi; i++) {
        char cn[40];
        dev_udid(cn, i);
        p->b->dev_cert[i] =
            make_cert(cn, p->b->dev_key, p->b->dev_ca, p->b->dca_key, 1000 + i, false, false);
    }
    return NULL;
}

static void *prep_signed(void *arg)
{
    struct prep *p = arg;
    for (long i = p->lo; i < p->hi; i++) {
        char *bodies[2] = {body_authenticate(p->b, i), body_token_update(p->b, i)};
        for (int k = 0; k < 2; k++) {
            char *sig =
                mdm_signature(p->b->dev_cert[i], p->b->dev_key, bodies[k], strlen(bodies[k]));
            size_t at = (size_t)(i - p->base) * 2 + (size_t)k;
            p->reqs[at] = device_request("/mdm/checkin", bodies[k], sig, &p->lens[at]);
            free(sig);
            free(bodies[k]);
        }
    }
    return NULL;
}

/* Run fn over [lo, hi) on two threads. */
static void run_split(struct bench *b, void *(*fn)(void *), long lo, long hi, char **reqs,
                      size_t *lens)
{
    pthread_t t[2];
    struct prep p[2];
    long mid = lo + (hi - lo) / 2;

    for (int k = 0; k < 2; k++) {
        p[k] = (struct prep){b, k ? mid : lo, k ? hi : mid, reqs, lens, lo};
        if (pthread_create(&t[k], NULL, fn, &p[k]) != 0)
            die("pthread_create");
    }
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
}

static void issue_certs(struct bench *b, long upto)
{
    if (upto <= b->ndev)
        return;
    b->dev_cert = xreallocarray(b->dev_cert, (size_t)upto, sizeof(X509 *));
    run_split(b, prep_certs, b->ndev, upto, NULL, NULL);
    b->ndev = upto;
}

/* ---------------------------------------------------------------------------------------- */
/* The client engine: one epoll loop, non-blocking TLS connections, HTTP/1.1 keep-alive      */

enum cstate { CS_HANDSHAKE, CS_IDLE, CS_WRITING, CS_READING, CS_CLOSED };

struct conn {
    int fd;
    SSL *ssl;
    enum cstate st;
    unsigned ev;     /* epoll events registered */
    long dev;        /* the device this connection speaks for */
    int step;        /* driver state */
    const char *out; /* request being written (borrowed or owned) */
    size_t out_len;
    char *out_own;
    char *in; /* response bytes */
    size_t in_len, in_cap;
    double t_sent;
    bool parked;   /* kept open, waiting for the driver */
    char uuid[64]; /* M_DRIVE split in two: the command delivered, acknowledged later */
};

enum mode {
    M_ENROLL_SIG,  /* keep-alive connections without certificate, signed requests */
    M_ENROLL_MTLS, /* one connection per device with its certificate */
    M_IDLE,        /* keep-alive Idle polls until the deadline */
    M_NEWCONN,     /* one Idle per new mTLS connection until the deadline */
    M_HOLD,        /* open one mTLS connection per device, one Idle, keep it open */
    M_DRIVE,       /* over held connections: Idle -> command -> Acknowledged -> empty */
    M_API,         /* one operator API request */
    M_API_EACH,    /* keep-alive API connections, one prepared request per device (reqs[]) */
};

struct eng {
    struct bench *b;
    int ep;
    enum mode mode;
    /* device range and cursor */
    long lo, hi, cursor;
    long done, failed, nfail_logged;
    int concurrency, open, inflight;
    struct conn **all; /* every connection opened (freed by eng_free_conns) */
    size_t nall, capall;
    double deadline;
    bool stop;
    /* M_ENROLL_SIG (two requests per device), M_API_EACH (one) */
    char **reqs;
    size_t *lens;
    /* M_IDLE: one prepared request per connection's device */
    char **idle_req;
    size_t *idle_len;
    /* M_HOLD / M_DRIVE: held[i - lo] is device i's connection */
    struct conn **held;
    const char *expect; /* M_DRIVE: the RequestType every device should get */
    int split;          /* M_DRIVE: 0 Idle + ack, 1 Idle only (uuid kept), 2 ack of uuid only */
    long wrong;
    struct lat lat;
    /* M_API */
    const char *api_req;
    size_t api_len;
    int api_status;
    char *api_body;
};

static void conn_events(struct eng *e, struct conn *c, unsigned ev)
{
    struct epoll_event ee;
    if (c->ev == ev)
        return;
    memset(&ee, 0, sizeof(ee));
    ee.events = ev;
    ee.data.ptr = c;
    epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ee);
    c->ev = ev;
}

static void conn_close(struct eng *e, struct conn *c)
{
    if (c->st == CS_CLOSED)
        return;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    c->st = CS_CLOSED;
    free(c->out_own);
    c->out_own = NULL;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    e->open--;
}

static void conn_free(struct eng *e, struct conn *c)
{
    if (c == NULL)
        return;
    conn_close(e, c);
    free(c);
}

/* A connection to scepter; with_cert: present device dev's certificate (mTLS). */
static struct conn *conn_open(struct eng *e, long dev, bool with_cert)
{
    struct sockaddr_in sa;
    struct epoll_event ee;
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    c->dev = dev;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)e->b->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    c->ssl = SSL_new(e->b->cli);
    if (with_cert && (SSL_use_certificate(c->ssl, e->b->dev_cert[dev]) != 1 ||
                      SSL_use_PrivateKey(c->ssl, e->b->dev_key) != 1))
        die("client certificate");
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    c->st = CS_HANDSHAKE;
    memset(&ee, 0, sizeof(ee));
    ee.events = EPOLLIN | EPOLLOUT;
    ee.data.ptr = c;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ee) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->ev = ee.events;
    e->open++;
    if (e->nall == e->capall) {
        e->capall = e->capall ? e->capall * 2 : 256;
        e->all = xreallocarray(e->all, e->capall, sizeof(struct conn *));
    }
    e->all[e->nall++] = c;
    return c;
}

static void eng_free_conns(struct eng *e)
{
    for (size_t i = 0; i < e->nall; i++)
        conn_free(e, e->all[i]);
    e->nall = 0;
}

static void fail(struct eng *e, struct conn *c, const char *what, int status, const char *body)
{
    e->failed++;
    if (e->nfail_logged++ < 5)
        fprintf(stderr, "bench_mdm: device %ld: %s (status %d) %.200s\n", c ? c->dev : -1L, what,
                status, body ? body : "");
}

static void conn_write(struct eng *e, struct conn *c);

/* Send a request; owned: the connection frees it when written. */
static void conn_send(struct eng *e, struct conn *c, const char *req, size_t len, bool owned)
{
    free(c->out_own);
    c->out_own = owned ? (char *)(uintptr_t)req : NULL;
    c->out = req;
    c->out_len = len;
    c->st = CS_WRITING;
    c->parked = false;
    c->t_sent = mono();
    conn_write(e, c);
}

static void conn_write(struct eng *e, struct conn *c)
{
    int n = SSL_write(c->ssl, c->out, (int)c->out_len);
    if (n > 0) {
        c->st = CS_READING;
        c->in_len = 0;
        conn_events(e, c, EPOLLIN);
        return;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        conn_events(e, c, EPOLLOUT);
        return;
    case SSL_ERROR_WANT_READ:
        conn_events(e, c, EPOLLIN);
        return;
    default:
        fail(e, c, "write failed", 0, NULL);
        ERR_clear_error();
        conn_close(e, c);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* What each mode does with a ready connection and a response                               */

static void drive_start(struct eng *e, struct conn *c)
{
    size_t len;
    char *body = body_idle(c->dev);
    char *req = device_request("/mdm/connect", body, NULL, &len);
    free(body);
    c->step = 0;
    conn_send(e, c, req, len, true);
}

/* Take the next device for a keep-alive signature connection, or park it. */
static void enroll_sig_next(struct eng *e, struct conn *c)
{
    if (e->cursor >= e->hi) {
        c->parked = true;
        c->st = CS_IDLE;
        conn_events(e, c, EPOLLIN);
        return;
    }
    c->dev = e->cursor++;
    c->step = 0;
    size_t at = (size_t)(c->dev - e->lo) * (e->mode == M_API_EACH ? 1 : 2);
    conn_send(e, c, e->reqs[at], e->lens[at], false);
}

/* The connection is ready for its first request (TLS handshake done). */
static void on_ready(struct eng *e, struct conn *c)
{
    switch (e->mode) {
    case M_ENROLL_SIG:
    case M_API_EACH:
        enroll_sig_next(e, c);
        break;
    case M_ENROLL_MTLS: {
        size_t len;
        char *body = body_authenticate(e->b, c->dev);
        char *req = device_request("/mdm/checkin", body, NULL, &len);
        free(body);
        c->step = 0;
        conn_send(e, c, req, len, true);
        break;
    }
    case M_IDLE:
        conn_send(e, c, e->idle_req[c->step], e->idle_len[c->step], false);
        break;
    case M_API:
        conn_send(e, c, e->api_req, e->api_len, false);
        break;
    case M_NEWCONN:
    case M_HOLD:
    case M_DRIVE: {
        size_t len;
        char *body = e->split == 2 ? body_ack(c->dev, c->uuid) : body_idle(c->dev);
        char *req = device_request("/mdm/connect", body, NULL, &len);
        free(body);
        c->step = e->split == 2 ? 1 : 0;
        conn_send(e, c, req, len, true);
        break;
    }
    }
}

/* "<key>K</key>\n\t<string>V</string>" -> V (in out); false when absent. */
static bool plist_string_after(const char *body, size_t len, const char *key, char *out,
                               size_t outlen)
{
    char needle[64];
    const char *p, *q, *end = body + len;

    snprintf(needle, sizeof(needle), "<key>%s</key>", key);
    if ((p = memmem(body, len, needle, strlen(needle))) == NULL)
        return false;
    if ((p = memmem(p, (size_t)(end - p), "<string>", 8)) == NULL)
        return false;
    p += 8;
    if ((q = memmem(p, (size_t)(end - p), "</string>", 9)) == NULL || (size_t)(q - p) >= outlen)
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

static void on_response(struct eng *e, struct conn *c, int status, const char *body, size_t blen,
                        bool server_closes)
{
    double now = mono();

    lat_add(&e->lat, now - c->t_sent);
    switch (e->mode) {
    case M_ENROLL_SIG:
        if (status != 200) {
            fail(e, c, c->step ? "TokenUpdate" : "Authenticate", status, body);
            c->step = 1;
        }
        if (c->step == 0) {
            size_t at = (size_t)(c->dev - e->lo) * 2 + 1;
            c->step = 1;
            conn_send(e, c, e->reqs[at], e->lens[at], false);
            return;
        }
        e->done++;
        if (server_closes)
            conn_close(e, c);
        else
            enroll_sig_next(e, c);
        return;
    case M_ENROLL_MTLS:
        if (status != 200) {
            fail(e, c, c->step ? "TokenUpdate" : "Authenticate", status, body);
            c->step = 1;
        }
        if (c->step == 0 && !server_closes) {
            size_t len;
            char *tu = body_token_update(e->b, c->dev);
            char *req = device_request("/mdm/checkin", tu, NULL, &len);
            free(tu);
            c->step = 1;
            conn_send(e, c, req, len, true);
            return;
        }
        e->done++;
        conn_close(e, c);
        return;
    case M_IDLE:
        if (status != 200 || blen != 0)
            fail(e, c, "Idle poll: expected an empty 200", status, body);
        else
            e->done++;
        if (now >= e->deadline || server_closes) {
            conn_close(e, c);
            return;
        }
        conn_send(e, c, e->idle_req[c->step], e->idle_len[c->step], false);
        return;
    case M_NEWCONN:
        if (status != 200 || blen != 0)
            fail(e, c, "Idle poll: expected an empty 200", status, body);
        else
            e->done++;
        conn_close(e, c);
        return;
    case M_HOLD:
        if (status != 200)
            fail(e, c, "Idle poll", status, body);
        else
            e->done++;
        c->parked = true;
        c->st = CS_IDLE;
        conn_events(e, c, EPOLLIN);
        return;
    case M_DRIVE: {
        char uuid[64], type[64];
        if (status != 200) {
            fail(e, c, c->step ? "Acknowledged" : "Idle", status, body);
        } else if (blen > 0) {
            if (!plist_string_after(body, blen, "CommandUUID", uuid, sizeof(uuid))) {
                fail(e, c, "a command without CommandUUID", status, body);
            } else {
                if (c->step == 0 && e->expect &&
                    (!plist_string_after(body, blen, "RequestType", type, sizeof(type)) ||
                     strcmp(type, e->expect) != 0))
                    e->wrong++;
                if (c->step == 0 && e->split == 1) {
                    str_copy(c->uuid, sizeof(c->uuid), uuid);
                    goto drive_parked; /* acknowledged in the second half */
                }
                size_t len;
                char *ack = body_ack(c->dev, uuid);
                char *req = device_request("/mdm/connect", ack, NULL, &len);
                free(ack);
                c->step++;
                conn_send(e, c, req, len, true);
                return;
            }
        } else if (c->step == 0) {
            fail(e, c, "Idle: no command queued", status, NULL);
        }
        /* This device is done: park it and start the next one. */
    drive_parked:
        e->done++;
        c->parked = true;
        c->st = CS_IDLE;
        conn_events(e, c, EPOLLIN);
        e->inflight--;
        return;
    }
    case M_API:
        e->api_status = status;
        e->api_body = xmemdup0(body, blen);
        e->done++;
        return;
    case M_API_EACH:
        if (status != 201)
            fail(e, c, "POST /v1/commands", status, body);
        e->done++;
        if (server_closes)
            conn_close(e, c);
        else
            enroll_sig_next(e, c);
        return;
    }
}

/* Parse a complete response in c->in, if there is one. */
static void conn_try_parse(struct eng *e, struct conn *c)
{
    char *hend = c->in_len ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
    size_t hlen, clen = 0;
    bool closes = false;
    int status;

    if (hend == NULL)
        return;
    hlen = (size_t)(hend - c->in) + 4;
    if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0) {
        fail(e, c, "not an HTTP response", 0, NULL);
        conn_close(e, c);
        return;
    }
    status = (int)strtol(c->in + 9, NULL, 10);
    for (char *p = c->in; p < hend; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            clen = (size_t)strtoull(p + 15, NULL, 10);
        else if (strncasecmp(p, "Connection: close", 17) == 0)
            closes = true;
    }
    if (c->in_len < hlen + clen)
        return;
    c->st = CS_IDLE;
    on_response(e, c, status, c->in + hlen, clen, closes);
}

static void conn_read(struct eng *e, struct conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
            c->in = xrealloc(c->in, c->in_cap + 1);
        }
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n > 0) {
            c->in_len += (size_t)n;
            c->in[c->in_len] = '\0';
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_WANT_WRITE) {
            conn_events(e, c, EPOLLOUT | EPOLLIN);
            break;
        }
        ERR_clear_error();
        if (c->st == CS_READING || c->st == CS_WRITING) {
            fail(e, c, "connection closed before the response", 0, NULL);
            if (e->mode != M_IDLE && e->mode != M_NEWCONN)
                e->done++; /* this device will not finish */
            if (e->mode == M_DRIVE)
                e->inflight--;
        }
        conn_close(e, c);
        return;
    }
    if (c->st == CS_READING)
        conn_try_parse(e, c);
    else if (c->in_len) /* bytes nobody asked for */
        c->in_len = 0;
}

static void conn_event(struct eng *e, struct conn *c, unsigned ev)
{
    (void)ev;
    if (c->st == CS_HANDSHAKE) {
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            c->st = CS_IDLE;
            conn_events(e, c, EPOLLIN);
            on_ready(e, c);
            return;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            conn_events(e, c, EPOLLIN);
            return;
        case SSL_ERROR_WANT_WRITE:
            conn_events(e, c, EPOLLOUT);
            return;
        default:
            fail(e, c, "TLS handshake failed", 0, NULL);
            ERR_print_errors_fp(stderr);
            conn_close(e, c);
            if (e->mode == M_HOLD || e->mode == M_ENROLL_MTLS || e->mode == M_API)
                e->done++;
            return;
        }
    }
    if (c->st == CS_WRITING) {
        conn_write(e, c);
        return;
    }
    conn_read(e, c);
}

/* Open new connections the mode wants (bounded by concurrency). */
static void eng_top_up(struct eng *e)
{
    switch (e->mode) {
    case M_ENROLL_MTLS:
        while (e->open < e->concurrency && e->cursor < e->hi)
            conn_open(e, e->cursor++, true);
        break;
    case M_NEWCONN:
        while (e->open < e->concurrency && mono() < e->deadline) {
            conn_open(e, e->lo + e->cursor % (e->hi - e->lo), true);
            e->cursor++;
        }
        break;
    case M_HOLD:
        while (e->open - e->done < e->concurrency && e->cursor < e->hi) {
            e->held[e->cursor - e->lo] = conn_open(e, e->cursor, true);
            e->cursor++;
        }
        break;
    case M_DRIVE:
        while (e->inflight < e->concurrency && e->cursor < e->hi) {
            struct conn *c = e->held[e->cursor - e->lo];
            e->cursor++;
            if (c == NULL || c->st == CS_CLOSED) {
                fail(e, c, "held connection lost", 0, NULL);
                e->done++;
                continue;
            }
            e->inflight++;
            drive_start(e, c);
        }
        break;
    default:
        break;
    }
}

/* Has the mode finished? */
static bool eng_finished(struct eng *e)
{
    switch (e->mode) {
    case M_ENROLL_SIG:
    case M_ENROLL_MTLS:
    case M_HOLD:
    case M_DRIVE:
    case M_API:
    case M_API_EACH:
        return e->done >= e->hi - e->lo ||
               ((e->mode == M_ENROLL_SIG || e->mode == M_API_EACH) && e->open == 0);
    case M_IDLE:
    case M_NEWCONN:
        return e->open == 0 && mono() >= e->deadline;
    }
    return true;
}

/* Run until the mode finishes or hard_deadline passes; returns 0 when finished. */
static int eng_run(struct eng *e, double hard_deadline)
{
    struct epoll_event evs[256];

    eng_top_up(e);
    while (!eng_finished(e)) {
        if (mono() > hard_deadline) {
            fprintf(stderr, "bench_mdm: phase timed out (%ld of %ld done, %d open)\n", e->done,
                    e->hi - e->lo, e->open);
            return -1;
        }
        int n = epoll_wait(e->ep, evs, 256, 50);
        for (int i = 0; i < n; i++)
            conn_event(e, evs[i].data.ptr, evs[i].events);
        eng_top_up(e);
    }
    return 0;
}

static void eng_init(struct eng *e, struct bench *b, enum mode mode, long lo, long hi,
                     int concurrency)
{
    memset(e, 0, sizeof(*e));
    e->b = b;
    e->mode = mode;
    e->lo = lo;
    e->hi = hi;
    e->cursor = lo;
    e->concurrency = concurrency;
    if ((e->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
}

static void eng_done(struct eng *e)
{
    eng_free_conns(e);
    free(e->all);
    close(e->ep);
    free(e->lat.v);
}

/* ---------------------------------------------------------------------------------------- */
/* Blocking helpers: the operator API, processes                                             */

/* One API request on its own TLS connection; returns the status, body in *out (caller frees). */
/*
 * CPU seconds PostgreSQL has spent so far: the postmaster's own and reaped children's time
 * (utime, stime, cutime, cstime) plus every live child's (the backends serving scepter);
 * 0 on SQLite, which runs inside scepter and is already in its figure.
 */
static char *read_trimmed(const char *path);

static double db_cpu_s(struct bench *b)
{
    char path[512], buf[1024];
    unsigned long ut, st, cut, cst;
    double total = 0, tck = (double)sysconf(_SC_CLK_TCK);
    char *cluster, *pidtext;
    long pm;
    DIR *d;
    struct dirent *de;

    if (b->pg_dir == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/cluster", b->pg_dir);
    if ((cluster = read_trimmed(path)) == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/data/postmaster.pid", cluster);
    free(cluster);
    pidtext = read_trimmed(path); /* its first line is the postmaster's pid */
    pm = pidtext ? strtol(pidtext, NULL, 10) : 0;
    free(pidtext);
    if (pm <= 0 || (d = opendir("/proc")) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        long pid = strtol(de->d_name, NULL, 10), ppid = 0;
        FILE *fp;
        size_t n;
        char *p;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        if ((p = strrchr(buf, ')')) == NULL ||
            sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %lu %lu", &ppid, &ut,
                   &st, &cut, &cst) != 5)
            continue;
        if (pid == pm)
            total += (double)(ut + st + cut + cst) / tck;
        else if (ppid == pm)
            total += (double)(ut + st) / tck;
    }
    closedir(d);
    return total;
}

static int api(struct bench *b, const char *method, const char *path, const char *json, char **out)
{
    struct eng e;
    size_t len;
    char *req = http_request(method, path, "application/json",
                             "Authorization: Bearer " API_KEY "\r\n", json, &len);
    int status;

    eng_init(&e, b, M_API, 0, 1, 1);
    e.api_req = req;
    e.api_len = len;
    conn_open(&e, -1, false);
    if (eng_run(&e, mono() + 600) != 0 || e.api_status == 0)
        die("%s %s: no answer", method, path);
    status = e.api_status;
    if (out)
        *out = e.api_body;
    else
        free(e.api_body);
    free(req);
    eng_done(&e);
    return status;
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("free port: %s", strerror(errno));
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;

    if (fp == NULL)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        buf_append(&b, chunk, n);
    fclose(fp);
    buf_putc(&b, '\0');
    return buf_steal(&b, NULL);
}

static char *read_trimmed(const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[1024];
    char *out = NULL;

    if (fp == NULL)
        return NULL;
    if (fgets(line, sizeof(line), fp))
        out = xstrdup(str_trim(line));
    fclose(fp);
    return out;
}

static void start_scepter(struct bench *b)
{
    char *conf = xasprintf("%s/scepter.conf", b->dir), *ports = xasprintf("%s/ports", b->dir);
    char *log = xasprintf("%s/scepter.log", b->dir), *bin = xasprintf("%s/mdm/scepter", b->bin_dir);
    char *push_cert = ts_pki("push.pem"), *push_key = ts_pki("push.key"), *ca = ts_pki("ca.pem");
    FILE *fp = fopen(conf, "w");
    int port = free_port();

    if (fp == NULL || push_cert == NULL || push_key == NULL || ca == NULL)
        die("configuration");
    fprintf(fp,
            "listen = 127.0.0.1:%d\npublic_url = https://127.0.0.1:%d\nport_file = %s\n"
            "workers = %ld\ntls_cert_file = %s/tls.pem\ntls_key_file = %s/tls.key\n"
            "tls_ca_file = %s/tls-ca.pem\ndevice_ca_file = %s/device-ca.pem\n"
            "identity = mtls,signature,header\ntrusted_proxy_header = Client-Cert\n"
            "trusted_proxy_addrs = 127.0.0.1\nstore = %s\napi_key = " API_KEY "\n"
            "log_level = warn\nmax_device_body_bytes = 67108864\n"
            "max_api_body_bytes = 67108864\nrequest_timeout = 900\n"
            "max_connections = 200000\n"
            "apns_url = https://localhost:%d\napns_ca_file = %s\napns_cert_file = %s\n"
            "apns_key_file = %s\nrepush_interval = 0\n",
            port, port, ports, b->workers, b->dir, b->dir, b->dir, b->dir, b->store_url,
            b->sink->port, ca, push_cert, push_key);
    /* BENCH_CONF: more configuration lines ("sqlite_page_buffer_bytes = 0"), to compare a
     * setting's cost on the same build. */
    const char *more = getenv("BENCH_CONF");
    if (more && *more)
        fprintf(fp, "%s\n", more);
    fclose(fp);
    unlink(ports);
    b->pid = fork();
    if (b->pid < 0)
        die("fork: %s", strerror(errno));
    if (b->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "--config", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        char *text = read_trimmed(ports);
        int status;
        if (text && sscanf(text, "https=%d", &b->port) == 1) {
            free(text);
            break;
        }
        free(text);
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            char *l = read_text(log);
            die("scepter exited at start:\n%s", l ? l : "");
        }
        usleep(50000);
    }
    if (b->port <= 0)
        die("scepter did not start in 30 s (log: %s)", log);
    fprintf(stderr, "bench_mdm: scepter pid %d, port %d, store %s\n", (int)b->pid, b->port,
            b->backend);
    free(conf);
    free(ports);
    free(log);
    free(bin);
    free(push_cert);
    free(push_key);
    free(ca);
}

static int stop_scepter(struct bench *b)
{
    int status = 0;
    if (b->pid <= 0)
        return -1;
    kill(b->pid, SIGTERM);
    for (int i = 0; i < 600; i++) {
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(50000);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &status, 0);
    b->pid = 0;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* The sink watcher: when did the sink see `want` more pushes?                              */

struct watch {
    struct ts_server *ts;
    long long base, want;
    double t0, reached; /* seconds after t0, or -1 */
    long long seen;
    double limit_s;
    pthread_t th;
};

static void *watch_run(void *arg)
{
    struct watch *w = arg;
    w->reached = -1;
    while (mono() - w->t0 < w->limit_s) {
        long long n = ts_stat(w->ts, "received");
        if (n >= 0)
            w->seen = n - w->base;
        if (n >= 0 && n - w->base >= w->want) {
            w->reached = mono() - w->t0;
            break;
        }
        usleep(5000);
    }
    return NULL;
}

static void watch_start(struct watch *w, struct ts_server *ts, long long want, double limit_s)
{
    memset(w, 0, sizeof(*w));
    w->ts = ts;
    w->base = ts_stat(ts, "received");
    w->want = want;
    w->limit_s = limit_s;
    w->t0 = mono();
    if (pthread_create(&w->th, NULL, watch_run, w) != 0)
        die("pthread_create");
}

/* ---------------------------------------------------------------------------------------- */
/* Phases                                                                                    */

static void check_failures(struct bench *b, struct eng *e, const char *phase)
{
    if (e->failed || e->wrong) {
        fprintf(stderr, "bench_mdm: %s: %ld failed, %ld wrong command\n", phase, e->failed,
                e->wrong);
        b->failures++;
    }
}

/* --seed-sql: fill the store (after scepter created the schema) with psql, then VACUUM
 * (FREEZE, ANALYZE), so that every phase runs against a settled store of that size
 * (scripts/bench-growth.sh): without the vacuum, the phases' first reads of the seeded rows
 * wrote their hint bits and autovacuum worked through the new rows meanwhile, both counted
 * as the database's CPU per operation. */
static void seed_store(struct bench *b)
{
    double t0 = mono();
    char *cmd;

    if (b->pg_dir == NULL)
        die("--seed-sql needs --backend postgres");
    cmd = xasprintf("psql -X -q -v ON_ERROR_STOP=1 -d '%s' -f '%s' -c 'VACUUM (FREEZE, ANALYZE)' "
                    ">'%s/seed.log' 2>&1",
                    b->store_url, b->seed_sql, b->dir);
    if (system(cmd) != 0)
        die("%s failed (see %s/seed.log; --keep keeps it)", cmd, b->dir);
    free(cmd);
    printf("bench_mdm: store seeded from %s in %.1f s\n", b->seed_sql, mono() - t0);
    fflush(stdout);
}

/*
 * Wait (at most 30 s) until scepter's start-up work is over — it fills its pool of RSA keys
 * for /mdm/enroll on a background thread (~1 CPU-s) — so that it is not counted in the first
 * phase's CPU per operation: quiet means under 5 CPU-ms in 300 ms.
 */
static void wait_quiet(struct bench *b)
{
    double end = mono() + 30, c0 = proc_cpu_s(b->pid), c1;

    while (mono() < end) {
        usleep(300000);
        c1 = proc_cpu_s(b->pid);
        if (c1 - c0 < 0.005)
            return;
        c0 = c1;
    }
}

/* Enroll devices [lo, hi) with signed requests over `conns` keep-alive connections; *cpu gets
 * the CPU seconds scepter and the database spent on it (NULL: not wanted). */
static double enroll_signature(struct bench *b, long lo, long hi, int conns, double *sign_s,
                               double cpu[2])
{
    size_t n = (size_t)(hi - lo) * 2;
    char **reqs = xcalloc(n, sizeof(char *));
    size_t *lens = xcalloc(n, sizeof(size_t));
    struct eng e;
    double t0, dt, c0, d0;

    t0 = mono();
    issue_certs(b, hi);
    run_split(b, prep_signed, lo, hi, reqs, lens);
    *sign_s = mono() - t0;
    eng_init(&e, b, M_ENROLL_SIG, lo, hi, conns);
    e.reqs = reqs;
    e.lens = lens;
    c0 = proc_cpu_s(b->pid);
    d0 = db_cpu_s(b);
    for (int i = 0; i < conns; i++)
        conn_open(&e, -1, false);
    t0 = mono();
    if (eng_run(&e, t0 + 600) != 0)
        b->failures++;
    dt = mono() - t0;
    if (cpu) {
        cpu[0] = proc_cpu_s(b->pid) - c0;
        cpu[1] = db_cpu_s(b) - d0;
    }
    check_failures(b, &e, "enrollment (Mdm-Signature)");
    eng_done(&e);
    for (size_t i = 0; i < n; i++)
        free(reqs[i]);
    free(reqs);
    free(lens);
    return dt;
}

/* POST /v1/commands for one device each, devices [lo, hi), over `conns` keep-alive API
 * connections; returns seconds, and the CPU seconds scepter and the database spent. */
static double api_each_enqueue(struct bench *b, long lo, long hi, int conns, double *srv,
                               double *db)
{
    size_t n = (size_t)(hi - lo);
    char **reqs = xcalloc(n, sizeof(char *));
    size_t *lens = xcalloc(n, sizeof(size_t));
    struct eng e;
    double t0, dt, c0, d0;

    for (size_t i = 0; i < n; i++) {
        char udid[40], json[256];
        dev_udid(udid, lo + (long)i);
        snprintf(json, sizeof(json),
                 "{\"devices\":[\"%s\"],\"command\":{\"request_type\":\"ProfileList\"}}", udid);
        reqs[i] = http_request("POST", "/v1/commands", "application/json",
                               "Authorization: Bearer " API_KEY "\r\n", json, &lens[i]);
    }
    eng_init(&e, b, M_API_EACH, lo, hi, conns);
    e.reqs = reqs;
    e.lens = lens;
    c0 = proc_cpu_s(b->pid);
    d0 = db_cpu_s(b);
    t0 = mono();
    for (int i = 0; i < conns; i++)
        conn_open(&e, -1, false);
    if (eng_run(&e, t0 + 600) != 0)
        b->failures++;
    dt = mono() - t0;
    *srv = proc_cpu_s(b->pid) - c0;
    *db = db_cpu_s(b) - d0;
    check_failures(b, &e, "single-device enqueue");
    eng_done(&e);
    for (size_t i = 0; i < n; i++)
        free(reqs[i]);
    free(reqs);
    free(lens);
    return dt;
}

/* k keep-alive connections for devices lo..lo+k-1 (with certificates when mtls). */
static void open_idle_conns(struct eng *e, long lo, int k, bool mtls)
{
    for (int i = 0; i < k; i++)
        conn_open(e, lo + i, mtls)->step = i; /* index into idle_req */
}

struct idle_result {
    double rps, p50, p99, max, cpu_per_1000;
    double db_per_1000; /* the database's CPU seconds per 1,000 (0 on SQLite) */
    long n;
};

/* Keep-alive Idle polls over k connections (devices lo..lo+k-1) for b->seconds. */
/* How a device proves its identity on an Idle poll. */
enum idk {
    IDK_MTLS,      /* TLS client certificate */
    IDK_SIGNATURE, /* Mdm-Signature over the body */
    IDK_HEADER,    /* the certificate in a trusted proxy's Client-Cert header (RFC 9440) */
};

/* "Client-Cert: :BASE64-DER:" for device i, as a TLS-terminating proxy sends it. */
static char *client_cert_header(struct bench *b, long i)
{
    unsigned char *der = NULL;
    int n = i2d_X509(b->dev_cert[i], &der);
    char *b64, *out;

    if (n <= 0)
        die("i2d_X509");
    b64 = base64_encode(der, (size_t)n);
    out = xasprintf("Client-Cert: :%s:\r\n", b64);
    free(b64);
    OPENSSL_free(der);
    return out;
}

static struct idle_result idle_polls(struct bench *b, long lo, int k, enum idk idk)
{
    bool mtls = idk == IDK_MTLS;
    struct eng e;
    struct idle_result r;
    double t0, c0;

    memset(&r, 0, sizeof(r));
    eng_init(&e, b, M_IDLE, lo, lo + k, k);
    e.idle_req = xcalloc((size_t)k, sizeof(char *));
    e.idle_len = xcalloc((size_t)k, sizeof(size_t));
    for (int i = 0; i < k; i++) {
        char *body = body_idle(lo + i);
        if (idk == IDK_HEADER) {
            char *hdr = client_cert_header(b, lo + i);
            e.idle_req[i] = http_request("PUT", "/mdm/connect", "application/x-apple-aspen-mdm",
                                         hdr, body, &e.idle_len[i]);
            free(hdr);
        } else {
            char *sig = idk == IDK_SIGNATURE
                            ? mdm_signature(b->dev_cert[lo + i], b->dev_key, body, strlen(body))
                            : NULL;
            e.idle_req[i] = device_request("/mdm/connect", body, sig, &e.idle_len[i]);
            free(sig);
        }
        free(body);
    }
    /* warm-up: 0.5 s (TLS handshakes, identity cache) */
    e.deadline = mono() + 0.5;
    open_idle_conns(&e, lo, k, mtls);
    if (eng_run(&e, mono() + 60) != 0)
        b->failures++;
    eng_free_conns(&e);
    e.lat.n = 0;
    e.done = 0;
    /* measured window: connections already open */
    e.open = 0;
    open_idle_conns(&e, lo, k, mtls);
    {
        /* finish handshakes before the clock starts */
        struct epoll_event ev[256];
        double dl = mono() + 30;
        int ready = 0;
        while (ready < k && mono() < dl) {
            int n = epoll_wait(e.ep, ev, 256, 50);
            for (int i = 0; i < n; i++) {
                struct conn *c = ev[i].data.ptr;
                if (c->st != CS_HANDSHAKE) {
                    conn_read(&e, c); /* TLS 1.3 session tickets */
                    continue;
                }
                int rr = SSL_do_handshake(c->ssl);
                if (rr == 1) {
                    c->st = CS_IDLE;
                    ready++;
                    conn_events(&e, c, EPOLLIN);
                } else if (SSL_get_error(c->ssl, rr) == SSL_ERROR_WANT_WRITE) {
                    conn_events(&e, c, EPOLLOUT);
                } else if (SSL_get_error(c->ssl, rr) != SSL_ERROR_WANT_READ) {
                    die("handshake failed");
                }
            }
        }
    }
    c0 = proc_cpu_s(b->pid);
    double d0 = db_cpu_s(b);
    t0 = mono();
    e.deadline = t0 + b->seconds;
    for (size_t i = 0; i < e.nall; i++)
        on_ready(&e, e.all[i]);
    if (eng_run(&e, t0 + b->seconds + 60) != 0)
        b->failures++;
    double dt = mono() - t0;
    r.cpu_per_1000 = e.done ? (proc_cpu_s(b->pid) - c0) / (double)e.done * 1000.0 : 0;
    r.db_per_1000 = e.done ? (db_cpu_s(b) - d0) / (double)e.done * 1000.0 : 0;
    r.n = e.done;
    r.rps = (double)e.done / dt;
    r.p50 = lat_pct(&e.lat, 50);
    r.p99 = lat_pct(&e.lat, 99);
    r.max = lat_pct(&e.lat, 100);
    check_failures(b, &e, "idle polls");
    for (int i = 0; i < k; i++)
        free(e.idle_req[i]);
    free(e.idle_req);
    free(e.idle_len);
    eng_done(&e);
    return r;
}

/* One Idle per new mTLS connection, `k` at a time, for b->seconds. */
static struct idle_result newconn_polls(struct bench *b, long lo, long hi, int k)
{
    struct eng e;
    struct idle_result r;
    double t0, c0;

    memset(&r, 0, sizeof(r));
    eng_init(&e, b, M_NEWCONN, lo, hi, k);
    c0 = proc_cpu_s(b->pid);
    t0 = mono();
    e.deadline = t0 + b->seconds;
    if (eng_run(&e, t0 + b->seconds + 60) != 0)
        b->failures++;
    double dt = mono() - t0;
    r.cpu_per_1000 = e.done ? (proc_cpu_s(b->pid) - c0) / (double)e.done * 1000.0 : 0;
    r.n = e.done;
    r.rps = (double)e.done / dt;
    r.p50 = lat_pct(&e.lat, 50);
    r.p99 = lat_pct(&e.lat, 99);
    r.max = lat_pct(&e.lat, 100);
    check_failures(b, &e, "new-connection polls");
    eng_done(&e);
    return r;
}

/* Drive devices [lo, hi) over their held connections; returns seconds, -1 on timeout. */
static double drive_split(struct bench *b, struct eng *hold, const char *expect, int k, int split)
{
    struct eng e;
    double t0 = mono(), dt;

    /* The held connections stay registered with hold's epoll: drive on it. */
    memset(&e, 0, sizeof(e));
    e.b = b;
    e.ep = hold->ep;
    e.mode = M_DRIVE;
    e.lo = hold->lo;
    e.hi = hold->hi;
    e.cursor = e.lo;
    e.concurrency = k;
    e.held = hold->held;
    e.expect = expect;
    e.split = split;
    if (eng_run(&e, t0 + 600) != 0)
        b->failures++;
    dt = mono() - t0;
    check_failures(b, &e, expect);
    free(e.lat.v);
    return dt;
}

static double drive(struct bench *b, struct eng *hold, const char *expect, int k)
{
    return drive_split(b, hold, expect, k, 0);
}

static char *group_json(const char *name, long lo, long hi, long lo2, long hi2)
{
    struct buf j = BUF_INIT;
    char udid[40];
    bool first = true;

    buf_printf(&j, "{\"name\":\"%s\",\"devices\":[", name);
    for (int part = 0; part < 2; part++)
        for (long i = part ? lo2 : lo; i < (part ? hi2 : hi); i++) {
            dev_udid(udid, i);
            buf_printf(&j, "%s\"%s\"", first ? "" : ",", udid);
            first = false;
        }
    buf_puts(&j, "]}");
    return buf_steal(&j, NULL);
}

static const char *policy_macos(const char *name, const char *group, char *out, size_t len)
{
    snprintf(out, len,
             "{\"name\":\"%s\",\"platform\":\"macos\",\"notes\":\"bench_mdm\","
             "\"scep\":{\"url\":\"https://scep.example.com/scep\",\"name\":\"WiFi\","
             "\"challenge\":\"s3cret\",\"key_size\":2048,"
             "\"subject\":\"/C=US/O=ABCEnterprise/CN=%%HardwareUUID%%/\","
             "\"key_usage\":[\"signing\"]},"
             "\"targets\":{\"device_groups\":[\"%s\"]}}",
             name, group);
    return out;
}

static void write_json(struct bench *b, double total_s)
{
    FILE *fp = fopen(b->json_path, "w");
    if (fp == NULL) {
        fprintf(stderr, "bench_mdm: %s: %s\n", b->json_path, strerror(errno));
        b->failures++;
        return;
    }
    fprintf(fp,
            "{\"bench\":\"mdm\",\"backend\":\"%s\",\"devices\":%ld,\"big_devices\":%ld,"
            "\"cpus\":%ld,\"seconds\":%.1f,\"failures\":%d,\"figures\":[",
            b->backend, b->devices, b->big_devices, sysconf(_SC_NPROCESSORS_ONLN), total_s,
            b->failures);
    for (int i = 0; i < b->figs.n; i++) {
        const struct fig *f = &b->figs.f[i];
        fprintf(fp,
                "%s\n {\"name\":\"%s\",\"value\":%.4f,\"unit\":\"%s\",\"target\":%s%s%s,"
                "\"pass\":%s,\"note\":\"%s\"}",
                i ? "," : "", f->name, f->value, f->unit, *f->target ? "\"" : "",
                *f->target ? f->target : "null", *f->target ? "\"" : "",
                f->pass < 0 ? "null"
                : f->pass   ? "true"
                            : "false",
                f->note);
    }
    fprintf(fp, "\n]}\n");
    fclose(fp);
}

/* ---------------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_mdm [--backend sqlite|postgres] [--devices N] "
                    "[--big-devices M] [--mtls-enroll K] [--seconds S] [--conns 32,64] "
                    "[--workers N] [--json FILE] [--keep] [--enroll-only] [--seed-sql FILE] "
                    "[--device-key ec|rsa]\n");
    exit(2);
}

static void parse_args(struct bench *b, int argc, char **argv)
{
    b->backend = "sqlite";
    b->devices = 10000;
    b->big_devices = 100000;
    b->mtls_enroll = 2000;
    b->seconds = 5;
    b->conns[0] = 32;
    b->conns[1] = 64;
    b->nconns = 2;
    for (int i = 1; i < argc; i++) {
        int64_t v;
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--keep") == 0) {
            b->keep = true;
            continue;
        }
        if (strcmp(a, "--enroll-only") == 0) {
            b->enroll_only = true;
            continue;
        }
        if (val == NULL)
            usage();
        i++;
        if (strcmp(a, "--backend") == 0 &&
            (strcmp(val, "sqlite") == 0 || strcmp(val, "postgres") == 0))
            b->backend = val;
        else if (strcmp(a, "--devices") == 0 && str_to_i64(val, 10, 1000000, &v) == 0)
            b->devices = v;
        else if (strcmp(a, "--big-devices") == 0 && str_to_i64(val, 0, 1000000, &v) == 0)
            b->big_devices = v;
        else if (strcmp(a, "--mtls-enroll") == 0 && str_to_i64(val, 0, 100000, &v) == 0)
            b->mtls_enroll = v;
        else if (strcmp(a, "--workers") == 0 && str_to_i64(val, 0, 256, &v) == 0)
            b->workers = v;
        else if (strcmp(a, "--seconds") == 0 && strtod(val, NULL) > 0)
            b->seconds = strtod(val, NULL);
        else if (strcmp(a, "--json") == 0)
            b->json_path = val;
        else if (strcmp(a, "--seed-sql") == 0)
            b->seed_sql = val;
        else if (strcmp(a, "--device-key") == 0 &&
                 (strcmp(val, "ec") == 0 || strcmp(val, "rsa") == 0))
            b->rsa_devices = strcmp(val, "rsa") == 0;
        else if (strcmp(a, "--conns") == 0) {
            b->nconns = 0;
            for (const char *p = val; *p && b->nconns < MAX_CONNS_LIST;) {
                char *end;
                long k = strtol(p, &end, 10);
                if (end == p || k < 1 || k > 4096)
                    usage();
                b->conns[b->nconns++] = (int)k;
                p = *end == ',' ? end + 1 : end;
            }
        } else
            usage();
    }
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i] > b->devices)
            b->conns[i] = (int)b->devices;
    if (b->big_devices && b->big_devices < b->devices)
        b->big_devices = b->devices;
}

static void setup_places(struct bench *b)
{
    char exe[4096], tmpl[] = "/tmp/bench-mdm.XXXXXX";
    ssize_t n;
    const char *env;

    if ((env = getenv("SCEPTER_BINARY_DIR")) != NULL && *env) {
        b->bin_dir = xstrdup(env);
    } else {
        if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
            die("readlink /proc/self/exe");
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) { /* <build>/tests/bench/bench_mdm */
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = '\0';
        }
        b->bin_dir = xstrdup(exe);
        setenv("SCEPTER_BINARY_DIR", b->bin_dir, 1);
    }
    env = getenv("SCEPTER_SOURCE_DIR");
    b->src_dir = xstrdup(env && *env ? env : ".");
    setenv("SCEPTER_SOURCE_DIR", b->src_dir, 0);
    if (mkdtemp(tmpl) == NULL)
        die("mkdtemp: %s", strerror(errno));
    /* PostgreSQL runs as the postgres user when we are root: it must reach DIR/pg. */
    chmod(tmpl, 0755);
    b->dir = xstrdup(tmpl);
    dying_bench = b; /* from here on, die() cleans up what exists */
}

static void setup_pki(struct bench *b)
{
    EVP_PKEY *tls_ca_key = EVP_EC_gen("P-256"), *tls_key = EVP_EC_gen("P-256");
    X509 *tls;
    char *p;

    b->dev_key = b->rsa_devices ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    b->dca_key = b->rsa_devices ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (!tls_ca_key || !tls_key || !b->dev_key || !b->dca_key)
        die("key generation");
    b->tls_ca = make_cert("Bench TLS CA", tls_ca_key, NULL, tls_ca_key, 1, true, false);
    tls = make_cert("localhost", tls_key, b->tls_ca, tls_ca_key, 2, false, true);
    b->dev_ca = make_cert("Bench Device CA", b->dca_key, NULL, b->dca_key, 3, true, false);
    p = xasprintf("%s/tls-ca.pem", b->dir);
    write_pem(p, b->tls_ca, NULL);
    free(p);
    p = xasprintf("%s/tls.pem", b->dir);
    write_pem(p, tls, NULL);
    free(p);
    p = xasprintf("%s/tls.key", b->dir);
    write_pem(p, NULL, tls_key);
    free(p);
    p = xasprintf("%s/device-ca.pem", b->dir);
    write_pem(p, b->dev_ca, NULL);
    free(p);
    X509_free(tls);
    EVP_PKEY_free(tls_key);
    EVP_PKEY_free(tls_ca_key);

    /* The client side: verify scepter's certificate against the TLS CA. */
    b->cli = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(b->cli), b->tls_ca);
    SSL_CTX_set_verify(b->cli, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(b->cli, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(b->cli, SSL_SESS_CACHE_OFF);
}

static void setup_store(struct bench *b)
{
    if (strcmp(b->backend, "sqlite") == 0) {
        b->store_url = xasprintf("sqlite:%s/scepter.db", b->dir);
        return;
    }
    b->pg_dir = xasprintf("%s/pg", b->dir);
    char *cmd = xasprintf("'%s/scripts/pg-test.sh' start '%s' >'%s/pg-test.log' 2>&1", b->src_dir,
                          b->pg_dir, b->dir);
    char *url_file = xasprintf("%s/pg.url", b->pg_dir);
    if (system(cmd) != 0)
        die("%s failed (see %s/pg-test.log; --keep keeps it)", cmd, b->dir);
    if ((b->store_url = read_trimmed(url_file)) == NULL)
        die("%s: no URL", url_file);
    free(cmd);
    free(url_file);
}

static void teardown(struct bench *b)
{
    if (b->pid > 0) {
        int rc = stop_scepter(b);
        if (rc != 0) {
            fprintf(stderr, "bench_mdm: scepter exited with %d on SIGTERM\n", rc);
            b->failures++;
        }
    }
    if (b->sink)
        ts_stop(b->sink);
    if (b->pg_dir) {
        char *cmd =
            xasprintf("'%s/scripts/pg-test.sh' stop '%s' >/dev/null", b->src_dir, b->pg_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_mdm: %s failed\n", cmd);
        free(cmd);
    }
    if (b->keep) {
        fprintf(stderr, "bench_mdm: kept %s\n", b->dir);
    } else {
        char *cmd = xasprintf("rm -rf '%s'", b->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_mdm: %s failed\n", cmd);
        free(cmd);
    }
}

int main(int argc, char **argv)
{
    struct bench b;
    struct rlimit rl;
    char name[128], note[160], policy[1024], *resp = NULL, *gj;
    double t_all = mono(), sign_s, dt, mtls_ms = 0, cpu2[2] = {0, 0};
    long n;
    const char *sink_args[] = {"--max-streams",  "1000", "--log-size", "0",
                               "--max-lifetime", "3600", NULL};
    struct figs *F = &b.figs;

    memset(&b, 0, sizeof(b));
    parse_args(&b, argc, argv);
    n = b.devices;
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setup_places(&b);
    printf("bench_mdm: backend %s, %ld devices (policy also for %ld), %ld CPUs, scepter "
           "workers %ld%s, device identities %s\n",
           b.backend, n, b.big_devices, sysconf(_SC_NPROCESSORS_ONLN),
           b.workers ? b.workers : 2 * sysconf(_SC_NPROCESSORS_ONLN),
           b.workers ? "" : " (its default: 2 per CPU)",
           b.rsa_devices ? "RSA-2048 (as a SCEP payload makes them)" : "ECDSA P-256");
    printf("  %-58s %12s %-7s %-10s\n", "figure", "value", "unit", "target");
    fflush(stdout);

    setup_pki(&b);
    dt = mono();
    issue_certs(&b, n + b.mtls_enroll);
    snprintf(note, sizeof(note), "%s, 2 threads", b.rsa_devices ? "RSA-2048" : "ECDSA P-256");
    fig_add(F, "device certificates issued /s (bench side)", (double)b.ndev / (mono() - dt), "/s",
            NULL, note);
    {
        char *t = ts_pki_text("topic");
        if (t == NULL)
            die("push PKI: no topic");
        str_copy(b.topic, sizeof(b.topic), t);
        free(t);
    }
    if ((b.sink = ts_start(sink_args)) == NULL)
        die("apns-test-server did not start");
    setup_store(&b);
    start_scepter(&b);
    if (b.seed_sql)
        seed_store(&b);
    wait_quiet(&b);

    /* 1. Enrollment with Mdm-Signature over 32 keep-alive connections. */
    dt = enroll_signature(&b, 0, n, 32, &sign_s, cpu2);
    snprintf(note, sizeof(note), "Mdm-Signature, 32 keep-alive conns, %ld in %.2f s", n, dt);
    snprintf(name, sizeof(name), "enroll %ld devices (Authenticate+TokenUpdate)", n);
    fig_add(F, name, dt, "s", n == 10000 ? "<=2" : NULL, note);
    fig_add(F, "enrollment rate, Mdm-Signature", (double)n / dt, "dev/s", NULL, NULL);
    snprintf(note, sizeof(note), "scepter %.3f + database %.3f", cpu2[0] * 1000.0 / (double)n,
             cpu2[1] * 1000.0 / (double)n);
    fig_add(F, "CPU per enrollment, Mdm-Signature (server + database)",
            (cpu2[0] + cpu2[1]) * 1000.0 / (double)n, "cpu-ms", "<=0.3", note);
    snprintf(note, sizeof(note), "%.2f s for %ld devices, before the timed window", sign_s, n);
    fig_add(F, "signing enrollment messages (bench side)", (double)n * 2 / sign_s, "sig/s", NULL,
            note);

    if (b.enroll_only)
        goto finish;

    /* 1b. Enrollment with mTLS, one new connection per device. */
    if (b.mtls_enroll > 0) {
        struct eng e;
        double t0;
        eng_init(&e, &b, M_ENROLL_MTLS, n, n + b.mtls_enroll, 32);
        t0 = mono();
        if (eng_run(&e, t0 + 600) != 0)
            b.failures++;
        dt = mono() - t0;
        check_failures(&b, &e, "enrollment (mTLS)");
        eng_done(&e);
        snprintf(note, sizeof(note), "mTLS, new TLS connection per device, 32 at a time, %ld",
                 b.mtls_enroll);
        fig_add(F, "enrollment rate, mTLS per connection", (double)b.mtls_enroll / dt, "dev/s",
                NULL, note);
    }

    /* 2. Idle polls with an empty queue. */
    for (int i = 0; i < b.nconns; i++) {
        struct idle_result r = idle_polls(&b, 0, b.conns[i], IDK_MTLS);
        snprintf(name, sizeof(name), "Idle polls/s, keep-alive mTLS, %d conns", b.conns[i]);
        snprintf(note, sizeof(note), "p50 %.2f ms, max %.1f ms, %ld polls", r.p50, r.max, r.n);
        fig_add(F, name, r.rps, "req/s", ">=20000", note);
        snprintf(name, sizeof(name), "Idle poll p99, keep-alive mTLS, %d conns", b.conns[i]);
        fig_add(F, name, r.p99, "ms", "<=10", NULL);
        snprintf(name, sizeof(name), "scepter CPU per 1,000 check-ins (mTLS, %d conns)",
                 b.conns[i]);
        fig_add(F, name, r.cpu_per_1000, "cpu-s", NULL, NULL);
        if (i == 0) {
            mtls_ms = r.cpu_per_1000 + r.db_per_1000;
            snprintf(note, sizeof(note), "scepter %.4f + database %.4f", r.cpu_per_1000,
                     r.db_per_1000);
            fig_add(F, "CPU per Idle poll, mTLS (server + database)", mtls_ms, "cpu-ms", "<=0.06",
                    note);
        }
    }
    {
        struct idle_result r = idle_polls(&b, 0, b.conns[0], IDK_SIGNATURE);
        snprintf(name, sizeof(name), "Idle polls/s, keep-alive Mdm-Signature, %d conns",
                 b.conns[0]);
        snprintf(note, sizeof(note), "p50 %.2f ms, p99 %.2f ms, max %.1f ms", r.p50, r.p99, r.max);
        fig_add(F, name, r.rps, "req/s", NULL, note);
        fig_add(F, "scepter CPU per 1,000 check-ins (Mdm-Signature)", r.cpu_per_1000, "cpu-s", NULL,
                NULL);
        char target[32];
        snprintf(note, sizeof(note), "scepter %.4f + database %.4f; %.2fx mTLS (target 1.5x)",
                 r.cpu_per_1000, r.db_per_1000,
                 mtls_ms > 0 ? (r.cpu_per_1000 + r.db_per_1000) / mtls_ms : 0.0);
        snprintf(target, sizeof(target), "<=%.3f", 1.5 * mtls_ms);
        fig_add(F, "CPU per Idle poll, Mdm-Signature (server + database)",
                r.cpu_per_1000 + r.db_per_1000, "cpu-ms", target, note);
        r = idle_polls(&b, 0, b.conns[0], IDK_HEADER);
        snprintf(name, sizeof(name), "Idle polls/s, keep-alive proxy header, %d conns", b.conns[0]);
        snprintf(note, sizeof(note), "Client-Cert (RFC 9440); p50 %.2f ms, p99 %.2f ms", r.p50,
                 r.p99);
        fig_add(F, name, r.rps, "req/s", NULL, note);
        snprintf(note, sizeof(note), "scepter %.4f + database %.4f; %.2fx mTLS (target 1.5x)",
                 r.cpu_per_1000, r.db_per_1000,
                 mtls_ms > 0 ? (r.cpu_per_1000 + r.db_per_1000) / mtls_ms : 0.0);
        fig_add(F, "CPU per Idle poll, proxy header (server + database)",
                r.cpu_per_1000 + r.db_per_1000, "cpu-ms", target, note);
        r = newconn_polls(&b, 0, n, b.conns[0]);
        snprintf(name, sizeof(name), "Idle polls/s, new TLS connection each (mTLS), %d at once",
                 b.conns[0]);
        snprintf(note, sizeof(note), "p50 %.2f ms, p99 %.2f ms, max %.1f ms", r.p50, r.p99, r.max);
        fig_add(F, name, r.rps, "req/s", NULL, note);
        fig_add(F, "scepter CPU per 1,000 check-ins (new TLS conn each)", r.cpu_per_1000, "cpu-s",
                NULL, NULL);
    }

    /* 3. N open device connections: peak RSS. */
    struct eng hold;
    eng_init(&hold, &b, M_HOLD, 0, n, 64);
    hold.held = xcalloc((size_t)n, sizeof(struct conn *));
    dt = mono();
    if (eng_run(&hold, dt + 600) != 0)
        b.failures++;
    check_failures(&b, &hold, "open connections");
    usleep(200000);
    snprintf(note, sizeof(note), "VmRSS %.1f MB; opened in %.1f s", proc_status_mb(b.pid, "VmRSS"),
             mono() - dt);
    snprintf(name, sizeof(name), "scepter peak RSS with %ld open TLS connections", n);
    fig_add(F, name, proc_status_mb(b.pid, "VmHWM"), "MB", n == 10000 ? "<=64" : NULL, note);

    /* 4. One command to all N devices, delivered and acknowledged. */
    gj = group_json("bench-n", 0, n, 0, 0);
    if (api(&b, "POST", "/v1/device-groups", gj, &resp) != 201)
        die("POST /v1/device-groups: %s", resp);
    free(gj);
    free(resp);
    {
        double t0 = mono(), t_api;
        if (api(&b, "POST", "/v1/commands",
                "{\"device_groups\":[\"bench-n\"],\"command\":{\"request_type\":\"ProfileList\"}}",
                &resp) != 201)
            die("POST /v1/commands: %s", resp);
        free(resp);
        t_api = mono() - t0;
        drive(&b, &hold, "ProfileList", 64);
        dt = mono() - t0;
        snprintf(name, sizeof(name), "enqueue+deliver+ack 1 command, %ld devices", n);
        snprintf(note, sizeof(note),
                 "API answered in %.3f s; devices over open mTLS conns, "
                 "64 in flight",
                 t_api);
        fig_add(F, name, dt, "s",
                n == 10000 ? (strcmp(b.backend, "sqlite") == 0 ? "<=1.5" : "<=2") : NULL, note);
    }

    /* 4b. The same again in two halves, for the CPU of each: every device's Idle poll that
     * delivers the command, then every device's result report (Acknowledged, answered with an
     * empty queue), server + database. */
    {
        double c0, d0, deliver, report;
        if (api(&b, "POST", "/v1/commands",
                "{\"device_groups\":[\"bench-n\"],\"command\":{\"request_type\":\"ProfileList\"}}",
                &resp) != 201)
            die("POST /v1/commands: %s", resp);
        free(resp);
        c0 = proc_cpu_s(b.pid);
        d0 = db_cpu_s(&b);
        drive_split(&b, &hold, "ProfileList", 64, 1);
        deliver = (proc_cpu_s(b.pid) - c0 + db_cpu_s(&b) - d0) * 1000.0 / (double)n;
        c0 = proc_cpu_s(b.pid);
        d0 = db_cpu_s(&b);
        drive_split(&b, &hold, NULL, 64, 2);
        double rsrv = (proc_cpu_s(b.pid) - c0) * 1000.0 / (double)n;
        report = rsrv + (db_cpu_s(&b) - d0) * 1000.0 / (double)n;
        snprintf(note, sizeof(note), "%ld devices, 64 in flight, over open mTLS conns", n);
        fig_add(F, "CPU per Idle poll delivering a command (server + database)", deliver, "cpu-ms",
                NULL, note);
        char target[32];
        snprintf(target, sizeof(target), "<=%.3f", 1.5 * mtls_ms);
        snprintf(note, sizeof(note),
                 "scepter %.3f + database %.3f; %.2fx an Idle poll (target 1.5x)", rsrv,
                 report - rsrv, mtls_ms > 0 ? report / mtls_ms : 0.0);
        fig_add(F, "CPU per result report (server + database)", report, "cpu-ms", target, note);
    }

    /* 5a. Policy to N devices: queued, pushed, acknowledged. */
    {
        struct watch w;
        double t0 = mono(), t_api;
        watch_start(&w, b.sink, n, 120);
        if (api(&b, "POST", "/v1/policies",
                policy_macos("Bench N", "bench-n", policy, sizeof(policy)), &resp) != 201)
            die("POST /v1/policies: %s", resp);
        free(resp);
        t_api = mono() - t0;
        dt = drive(&b, &hold, "InstallProfile", 64);
        dt = mono() - t0;
        pthread_join(w.th, NULL);
        snprintf(name, sizeof(name), "policy saved -> %ld commands queued (API answer)", n);
        fig_add(F, name, t_api, "s", NULL, "macOS SCEP policy, uniform profile");
        snprintf(name, sizeof(name), "policy saved -> %ld pushes at the sink", n);
        snprintf(note, sizeof(note), "%lld of %ld pushes seen", w.seen, n);
        fig_add(F, name, w.reached, "s", NULL, note);
        if (w.reached < 0)
            b.failures++;
        snprintf(name, sizeof(name), "policy saved -> %ld devices acknowledged", n);
        fig_add(F, name, dt, "s", NULL, "InstallProfile, 64 devices in flight");
    }
    free(hold.held);
    eng_done(&hold);

    /* 5b. Policy to the big set. */
    if (b.big_devices > n) {
        long extra = b.big_devices - n, lo = n + b.mtls_enroll;
        struct watch w;
        double t0, t_api;
        dt = enroll_signature(&b, lo, lo + extra, 32, &sign_s, NULL);
        snprintf(note, sizeof(note), "%ld more devices in %.1f s (signing %.1f s before)", extra,
                 dt, sign_s);
        fig_add(F, "enrollment rate, Mdm-Signature (large set)", (double)extra / dt, "dev/s", NULL,
                note);
        gj = group_json("bench-big", 0, n, lo, lo + extra);
        if (api(&b, "POST", "/v1/device-groups", gj, &resp) != 201)
            die("POST /v1/device-groups (big): %s", resp);
        free(gj);
        free(resp);
        t0 = mono();
        watch_start(&w, b.sink, b.big_devices, 300);
        if (api(&b, "POST", "/v1/policies",
                policy_macos("Bench big", "bench-big", policy, sizeof(policy)), &resp) != 201)
            die("POST /v1/policies (big): %s", resp);
        free(resp);
        t_api = mono() - t0;
        pthread_join(w.th, NULL);
        snprintf(name, sizeof(name), "policy saved -> %ld commands queued (API answer)",
                 b.big_devices);
        fig_add(F, name, t_api, "s", NULL, "macOS SCEP policy, one transaction");
        snprintf(name, sizeof(name), "policy saved -> %ld pushes at the sink", b.big_devices);
        snprintf(note, sizeof(note), "%lld of %ld pushes seen", w.seen, b.big_devices);
        fig_add(F, name, w.reached, "s", b.big_devices == 100000 ? "<=5" : NULL, note);
        if (w.reached < 0)
            b.failures++;
    }

    /* 6. One command per device through the API, one call each (how operators script a queue):
     * keep-alive connections, the push requested; calls/s and CPU per call, server + database. */
    {
        long k = n < 5000 ? n : 5000;
        double srv, db;
        dt = api_each_enqueue(&b, 0, k, 8, &srv, &db);
        snprintf(note, sizeof(note), "%ld calls, 8 keep-alive conns, %ld enrolled, push requested",
                 k, n);
        fig_add(F, "single-device enqueue, POST /v1/commands", (double)k / dt, "calls/s", ">=3000",
                note);
        snprintf(note, sizeof(note), "scepter %.3f + database %.3f", srv * 1000.0 / (double)k,
                 db * 1000.0 / (double)k);
        fig_add(F, "CPU per single-device enqueue (server + database)",
                (srv + db) * 1000.0 / (double)k, "cpu-ms", NULL, note);
    }

finish:
    /* Memory by cache, from /metrics (scepter_cache_bytes{cache="..."}). */
    if (api(&b, "GET", "/metrics", NULL, &resp) == 200) {
        for (const char *p = resp; (p = strstr(p, "\nscepter_cache_bytes{cache=\"")) != NULL;) {
            char cache[32];
            long long bytes;
            p += strlen("\nscepter_cache_bytes{cache=\"");
            if (sscanf(p, "%31[^\"]\"} %lld", cache, &bytes) == 2) {
                snprintf(name, sizeof(name), "scepter cache memory: %s", cache);
                fig_add(F, name, (double)bytes / 1e6, "MB", NULL,
                        "scepter_cache_bytes in /metrics");
            }
        }
    }
    free(resp);
    resp = NULL;
    snprintf(note, sizeof(note), "VmRSS now %.1f MB", proc_status_mb(b.pid, "VmRSS"));
    fig_add(F, "scepter peak RSS over the whole run", proc_status_mb(b.pid, "VmHWM"), "MB", NULL,
            note);
    dying_bench = NULL;
    teardown(&b);
    printf("bench_mdm: %s done in %.0f s, %d failure%s\n", b.backend, mono() - t_all, b.failures,
           b.failures == 1 ? "" : "s");
    if (b.json_path)
        write_json(&b, mono() - t_all);
    for (long i = 0; i < b.ndev; i++)
        X509_free(b.dev_cert[i]);
    free(b.dev_cert);
    X509_free(b.dev_ca);
    X509_free(b.tls_ca);
    EVP_PKEY_free(b.dev_key);
    EVP_PKEY_free(b.dca_key);
    SSL_CTX_free(b.cli);
    free(b.dir);
    free(b.bin_dir);
    free(b.src_dir);
    free(b.store_url);
    free(b.pg_dir);
    return b.failures ? 1 : 0;
}
