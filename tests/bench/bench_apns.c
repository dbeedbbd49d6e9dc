/*
 * bench_apns — pushes per second through the APNs client into a local HTTP/2 sink
 * (apns-test-server with SETTINGS_MAX_CONCURRENT_STREAMS = 1000 and no request log), over
 * one connection and then over several.  Both ends run on this machine, so it also reports
 * the CPU time each side used: the side near 100 % of the wall time is the one that limits.
 * It asserts nothing about speed; it exits non-zero only when a push is not delivered.
 *
 *   bench_apns [--count N] [--connections 1,4] [--streams 1000] [--json]
 *
 * Needs SCEPTER_BINARY_DIR / SCEPTER_SOURCE_DIR (set by ctest; defaults ".") to find the
 * test server and the test PKI script.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "apns/apns.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "harness.h"

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n, ok, want;
};

static void on_result(const struct apns_result *r, void *arg)
{
    struct done *d = arg;

    pthread_mutex_lock(&d->mu);
    d->n++;
    d->ok += r->kind == APNS_KIND_OK;
    if (d->n == d->want) /* one wake-up, not one per push */
        pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process, from /proc/<pid>/stat. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    FILE *fp;
    size_t n;
    char *p;
    unsigned long ut = 0, st = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fp = fopen(path, "r");
    if (fp == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* fields after the command name */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct run {
    int connections;
    size_t count;
    double submit_s, wall_s, rate, client_cpu_s, server_cpu_s;
    size_t ok;
    long long server_max_streams;
};

static int bench(struct ts_server *ts, struct apns_identity *id, const char *ca, struct run *r)
{
    struct apns_config cfg;
    struct scepter_error err;
    struct done d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 1};
    struct apns_client *c;
    struct apns_push *p = xcalloc(r->count, sizeof(*p));
    char *strs = xmalloc(r->count * 64), url[64];
    double t0, t1, c0, s0;
    int rc = -1;

    snprintf(url, sizeof(url), "https://localhost:%d", ts->port);
    apns_config_init(&cfg);
    cfg.url = url;
    cfg.ca_file = ca;
    cfg.connections = r->connections;
    cfg.coalesce_ms = 0;
    cfg.max_queue = r->count + 1;
    for (size_t i = 0; i < r->count; i++) {
        char *s = strs + i * 64;
        snprintf(s, 24, "dev-%zu", i % 100000000000000u);
        snprintf(s + 24, 40, "%016zx", (i * 2654435761u) & 0xffffffffffffffu);
        p[i] = (struct apns_push){s, s + 24, "8B1F6C3E-1D2A-4E4B-9C6D-7E8F9A0B1C2D", NULL};
    }
    c = apns_client_new(&cfg, id, on_result, &d, &err);
    if (c == NULL || apns_client_start(c, &err) != 0) {
        fprintf(stderr, "bench_apns: %s\n", err.msg);
        goto out;
    }
    /* Warm up: connections up, TLS done. */
    {
        struct apns_push w = {"warm-up", "00", "m", NULL};
        if (apns_client_push(c, &w, 1, NULL, &err) != 0)
            goto out;
        pthread_mutex_lock(&d.mu);
        while (d.n < 1)
            pthread_cond_wait(&d.cv, &d.mu);
        d.n = d.ok = 0;
        d.want = r->count;
        pthread_mutex_unlock(&d.mu);
    }
    c0 = self_cpu_s();
    s0 = proc_cpu_s(ts->pid);
    t0 = now_s();
    if (apns_client_push(c, p, r->count, NULL, &err) != 0) {
        fprintf(stderr, "bench_apns: %s\n", err.msg);
        goto out;
    }
    r->submit_s = now_s() - t0;
    pthread_mutex_lock(&d.mu);
    while (d.n < r->count) {
        struct timespec ts_abs;
        clock_gettime(CLOCK_REALTIME, &ts_abs);
        ts_abs.tv_sec += 120;
        if (pthread_cond_timedwait(&d.cv, &d.mu, &ts_abs) != 0)
            break;
    }
    r->ok = d.ok;
    pthread_mutex_unlock(&d.mu);
    t1 = now_s();
    r->wall_s = t1 - t0;
    r->rate = (double)r->count / r->wall_s;
    r->client_cpu_s = self_cpu_s() - c0;
    r->server_cpu_s = proc_cpu_s(ts->pid) - s0;
    r->server_max_streams = ts_stat(ts, "max_concurrent_streams");
    rc = r->ok == r->count ? 0 : -1;
out:
    apns_client_free(c);
    free(p);
    free(strs);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 100000;
    const char *conns = "1,4", *streams = "1000";
    bool json = false;
    struct apns_identity *id;
    struct scepter_error err;
    char *cert, *key, *ca;
    int status = 0;

    for (int i = 1; i < argc; i++) {
        int64_t v;
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc &&
            str_to_i64(argv[i + 1], 1, 100000000, &v) == 0) {
            count = (size_t)v;
            i++;
        } else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
            conns = argv[++i];
        } else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc) {
            streams = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (str_to_i64(argv[i], 1, 100000000, &v) == 0) {
            count = (size_t)v; /* bench_apns N */
        } else {
            fprintf(stderr, "usage: bench_apns [--count N] [--connections 1,4] "
                            "[--streams 1000] [--json]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    log_init(LOG_LVL_WARN, LOG_FMT_TEXT);
    cert = ts_pki("push.pem");
    key = ts_pki("push.key");
    ca = ts_pki("ca.pem");
    if (cert == NULL || key == NULL || ca == NULL)
        return 1;
    id = apns_identity_load(cert, key, NULL, (int64_t)time(NULL), &err);
    if (id == NULL) {
        fprintf(stderr, "bench_apns: %s\n", err.msg);
        return 1;
    }
    printf("bench_apns: %zu pushes, sink SETTINGS_MAX_CONCURRENT_STREAMS=%s, %ld CPUs\n", count,
           streams, sysconf(_SC_NPROCESSORS_ONLN));
    for (const char *p = conns; *p;) {
        const char *args[] = {"--max-streams", streams, "--log-size", "0", NULL};
        struct run r = {.count = count};
        struct ts_server *ts;
        char *end;

        r.connections = (int)strtol(p, &end, 10);
        if (end == p || r.connections < 1)
            break;
        p = *end == ',' ? end + 1 : end;
        ts = ts_start(args);
        if (ts == NULL)
            return 1;
        if (bench(ts, id, ca, &r) != 0) {
            fprintf(stderr, "bench_apns: only %zu of %zu pushes delivered\n", r.ok, r.count);
            status = 1;
        }
        ts_stop(ts);
        printf("  %d connection%s: %8.0f pushes/s  (%.3f s wall; submit %.1f ms; client CPU "
               "%.2f s = %3.0f%%, sink CPU %.2f s = %3.0f%% of wall; max streams seen %lld)\n",
               r.connections, r.connections > 1 ? "s" : " ", r.rate, r.wall_s, r.submit_s * 1000,
               r.client_cpu_s, 100 * r.client_cpu_s / r.wall_s, r.server_cpu_s,
               100 * r.server_cpu_s / r.wall_s, r.server_max_streams);
        if (json)
            printf("{\"bench\":\"apns\",\"connections\":%d,\"pushes\":%zu,\"pushes_per_s\":%.0f,"
                   "\"wall_s\":%.3f,\"submit_ms\":%.1f,\"client_cpu_s\":%.2f,"
                   "\"sink_cpu_s\":%.2f}\n",
                   r.connections, r.count, r.rate, r.wall_s, r.submit_s * 1000, r.client_cpu_s,
                   r.server_cpu_s);
        fflush(stdout);
    }
    apns_identity_free(id);
    free(cert);
    free(key);
    free(ca);
    return status;
}
