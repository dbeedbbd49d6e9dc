/*
 * The fault suite (issue 18): the real scepter under load from simulated devices and an
 * operator fanning commands out, with faults injected, then invariants checked from the store
 * and from the devices' own records (fault_devices.c): every queued command delivered and its
 * result recorded once (the one the device sent first, or an earlier attempt whose answer was
 * lost), none lost, none delivered to a device it was not queued for, no enrollment changed.
 *
 * Scenarios:
 *   kill9            SIGKILL scepter at random times during fan-out, delivery and
 *                    acknowledgement, restart it; on SQLite PRAGMA integrity_check after each
 *                    kill.  Both stores.
 *   postgres_outage  PostgreSQL restarted (fast, immediate) and paused (SIGSTOP) under load:
 *                    devices get 200 or 503 (never 401/403/500), /healthz reports the outage
 *                    and the recovery, /metrics counts it, no restart of scepter.  A cluster
 *                    of its own (scripts/pg-test.sh), not the shared fixture.  PostgreSQL
 *                    run.
 *   hostile          slow clients (headers or a TLS handshake a byte at a time, bodies that
 *                    never finish), as many as the descriptor limit allows: all cut at
 *                    request_timeout, devices served meanwhile.  SQLite run.
 *   disk_full        SQLite on an 8 MiB tmpfs (root only, else skipped) filled up under
 *                    load: writes refused with an error naming the full disk (503), reads and
 *                    /healthz served, integrity_check ok, everything delivered once space
 *                    returns.  SQLite run.
 *   two_instances    two scepter on one PostgreSQL, one killed mid-batch: the survivor takes
 *                    over its background jobs (leases) and delivers what was in flight.
 *                    PostgreSQL run.
 *   apns             the APNs test server sends GOAWAY every 5 requests, a 429 storm, 503 and
 *                    500 once, 410 for one token: every push delivered once, the dead token
 *                    pushed once and marked invalid.  SQLite run.
 *   apns_stops_reading  the APNs test server stops reading its sockets for 6 s with pushes in
 *                    flight: the client gives the silent connection up (apns_ping_timeout),
 *                    reconnects without spinning, devices are served meanwhile, every push is
 *                    answered once it reads again (twice at most for those resent).
 *   apns_cert_expires   the push certificate expires during the run: reported by /healthz and
 *                    /metrics, logged, pushing halts (nothing sent with it, no reconnect loop),
 *                    and a new certificate (PUT /v1/pushcert) resumes it.  SQLite run.
 *   max_connections  max_connections + 40 idle TLS connections: the excess refused at the
 *                    handshake at once, a device's keep-alive connection served throughout,
 *                    the idle ones cut at request_timeout, new connections served after.
 *
 * Sizes (the short version in ctest by default; `make faults` runs the long one):
 *   FAULTS_SEED      the random seed (printed; set it to replay a run)
 *   FAULTS_KILLS     kills in kill9 (4)
 *   FAULTS_DEVICES   devices (24)          FAULTS_COMMANDS  fan-outs (12)
 *   FAULTS_PG_PAUSE  seconds PostgreSQL is stopped (6)
 *   FAULTS_SLOW      slow connections (200)   FAULTS_APNS_DEVICES  devices pushed (12)
 *   FAULTS_REPORT    a file each scenario appends its one-line report to
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apns-server/harness.h"
#include "common/codec.h"
#include "common/xmalloc.h"
#include "fault_devices.h"
#include "support/support.h"

static unsigned env_uint(const char *name, unsigned def)
{
    const char *v = getenv(name);
    char *end = NULL;
    unsigned long n;

    if (v == NULL || *v == '\0')
        return def;
    n = strtoul(v, &end, 10);
    cr_assert(end && *end == '\0' && n <= 1000000, "%s: '%s' is not a small number", name, v);
    return (unsigned)n;
}

static unsigned the_seed(void)
{
    /* Any seed the suite prints (32 bits) replays: not env_uint's small-number bound. */
    const char *v = getenv("FAULTS_SEED");
    unsigned seed = 0;
    if (v && *v) {
        char *end = NULL;
        unsigned long n = strtoul(v, &end, 10);
        cr_assert(end && *end == '\0' && n > 0 && n <= 0xffffffffUL,
                  "FAULTS_SEED: '%s' is not a seed (1 to 4294967295)", v);
        seed = (unsigned)n;
    }
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned)(ts.tv_nsec ^ ts.tv_sec ^ getpid()) | 1u;
    }
    return seed;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Progress on stdout with the time since the scenario began (where the minutes go). */
static struct timespec t_start;
static void phase(const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (what == NULL) {
        t_start = ts;
        return;
    }
    printf("faults: %7.2f s  %s\n",
           (double)(ts.tv_sec - t_start.tv_sec) + (double)(ts.tv_nsec - t_start.tv_nsec) / 1e9,
           what);
    fflush(stdout);
}

static const char *store_name(void)
{
    const char *b = getenv("SCEPTER_TEST_STORE");
    return b && *b ? b : "sqlite";
}

/* A report line: stdout, the test log, and FAULTS_REPORT when set. */
static void emit(const char *line)
{
    const char *file = getenv("FAULTS_REPORT");

    printf("%s\n", line);
    fflush(stdout);
    cr_log_info("%s", line);
    if (file && *file) {
        FILE *fp = fopen(file, "a");
        if (fp) {
            fprintf(fp, "%s\n", line);
            fclose(fp);
        }
    }
}

static void report(const char *scenario, unsigned seed, const char *faults, int nfaults,
                   const struct fd_world *w, const struct fd_report *r, bool held)
{
    char line[1024];

    snprintf(line, sizeof(line),
             "faults: scenario=%s store=%s seed=%u %s=%d devices=%d fanouts=%d pairs=%lld "
             "deliveries=%lld redelivered=%lld results_sent=%lld lost=%lld wrong_device=%lld "
             "bad_record=%lld phantom=%lld corrupt=%lld refused=%lld answers_5xx=%lld "
             "answers_500=%lld no_answer=%lld max_wait_ms=%lld invariants=%s",
             scenario, store_name(), seed, faults, nfaults, w->ndevices, w->ncommands, r->pairs,
             r->deliveries, r->duplicates, r->results_sent, r->lost, r->wrong_device, r->bad_record,
             r->phantom, r->corrupt, r->refused, r->s5xx, r->s500, r->netfail, r->max_wait_ms,
             held ? "held" : "BROKEN");
    emit(line);
}

static bool invariants(const struct fd_report *r)
{
    return r->lost == 0 && r->wrong_device == 0 && r->bad_record == 0 && r->phantom == 0 &&
           r->corrupt == 0 && r->refused == 0 && r->pairs > 0;
}

static void expect_invariants(const struct fd_report *r)
{
    cr_expect_eq(r->lost, 0, "commands lost (see the log)");
    cr_expect_eq(r->wrong_device, 0, "commands delivered to devices they were not queued for");
    cr_expect_eq(r->bad_record, 0, "results recorded other than once");
    cr_expect_eq(r->phantom, 0, "queue rows nobody queued");
    cr_expect_eq(r->corrupt, 0, "enrollments changed by the faults");
    cr_expect_eq(r->refused, 0, "devices answered 401/403 (they would unenroll)");
}

/* PRAGMA integrity_check of the (stopped) server's SQLite file: "ok" or the first problem. */
static char *sqlite_integrity(const char *store_url)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out;

    cr_assert(strncmp(store_url, "sqlite:", 7) == 0);
    if (sqlite3_open_v2(store_url + 7, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        out = xasprintf("open: %s", sqlite3_errmsg(db));
    } else if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
               sqlite3_step(st) != SQLITE_ROW) {
        out = xasprintf("integrity_check: %s", sqlite3_errmsg(db));
    } else {
        out = xstrdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

Test(faults, kill9_during_fanout_delivery_and_acknowledgement, .timeout = 3000)
{
    struct h_server S;
    struct fd_report r;
    struct fd_world *w = xcalloc(1, sizeof(*w));
    unsigned seed = the_seed(), rnd = seed;
    int kills = (int)env_uint("FAULTS_KILLS", 4);
    int devices = (int)env_uint("FAULTS_DEVICES", 24);
    int commands = (int)env_uint("FAULTS_COMMANDS", 12);
    bool sqlite = strcmp(store_name(), "sqlite") == 0;
    int integrity_ok = 0, during_fanout = 0, during_delivery = 0;

    printf("faults: kill9 on %s, seed %u (FAULTS_SEED=%u replays it)\n", store_name(), seed, seed);
    fflush(stdout);
    phase(NULL);
    long long t0 = mono_ms();
    h_start(&S, NULL);
    long long start_ms = mono_ms() - t0;
    phase("scepter started");
    fd_setup(w, &S, devices, commands, 3, seed);
    phase("devices enrolled");
    /* The fan-outs spread over the whole time of the kills (a restart takes about as long
     * as the first start). */
    w->fanout_gap_ms = (int)(kills * (700 + start_ms) / commands) + 20;
    if (w->fanout_gap_ms > 2000)
        w->fanout_gap_ms = 2000;
    fd_run(w);
    for (int i = 0; i < kills; i++) {
        usleep((useconds_t)(150 + rand_r(&rnd) % 1100) * 1000);
        during_fanout += atomic_load(&w->in_fanout) != 0;
        during_delivery += atomic_load(&w->in_flight) != 0;
        h_kill(&S);
        if (sqlite) {
            char *ic = sqlite_integrity(S.store_url);
            cr_expect_str_eq(ic, "ok", "PRAGMA integrity_check after kill %d: %s", i + 1, ic);
            integrity_ok += strcmp(ic, "ok") == 0;
            free(ic);
        }
        h_relaunch(&S);
        phase("killed and restarted");
    }
    bool drained = fd_finish(w, 180);
    phase("devices drained");
    cr_expect(drained, "devices did not get through their commands after the last restart");
    fd_check(w, &S, &r);
    phase("invariants checked");
    report("kill9", seed, "kills", kills, w, &r,
           drained && invariants(&r) && (!sqlite || integrity_ok == kills));
    char line[256];
    snprintf(line, sizeof(line),
             "faults: kill9 %s: %d of %d kills with a fan-out in flight, %d with device requests "
             "in flight; integrity_check ok after %d of %d",
             store_name(), during_fanout, kills, during_delivery, integrity_ok, sqlite ? kills : 0);
    emit(line);
    cr_expect_eq(integrity_ok, sqlite ? kills : 0, "PRAGMA integrity_check after each kill");
    expect_invariants(&r);
    fd_free(w);
    free(w);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* PostgreSQL restarted and paused                                                          */
/* ---------------------------------------------------------------------------------------- */

struct pg_cluster {
    char *dir;     /* pg-test.sh's state directory */
    char *cluster; /* the cluster directory */
    char *url;
};

static bool pg_cluster_start(struct pg_cluster *pg, const char *under)
{
    char *script = tu_source_path("scripts/pg-test.sh"), *out = NULL, *p;
    int rc;

    memset(pg, 0, sizeof(*pg));
    pg->dir = xasprintf("%s/pg", under);
    rc = tu_sh(&out, "'%s' start '%s' 2>&1", script, pg->dir);
    free(script);
    if (rc != 0) {
        cr_log_error("pg-test.sh start: %s", out ? out : "");
        free(out);
        return false;
    }
    free(out);
    p = xasprintf("%s/pg.url", pg->dir);
    pg->url = (char *)tu_read(p, NULL);
    free(p);
    p = xasprintf("%s/cluster", pg->dir);
    pg->cluster = (char *)tu_read(p, NULL);
    free(p);
    pg->url[strcspn(pg->url, "\n")] = '\0';
    pg->cluster[strcspn(pg->cluster, "\n")] = '\0';
    return true;
}

static void pg_cluster_stop(struct pg_cluster *pg)
{
    char *script = tu_source_path("scripts/pg-test.sh");
    if (pg->dir)
        tu_sh(NULL, "'%s' stop '%s' >/dev/null 2>&1", script, pg->dir);
    free(script);
    free(pg->dir);
    free(pg->cluster);
    free(pg->url);
}

/* pg_ctl as the cluster's owner (postgres when we are root). */
static int pg_ctl(const struct pg_cluster *pg, const char *args)
{
    char *out = NULL;
    int rc = tu_sh(&out,
                   "PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}; "
                   "if [ \"$(id -u)\" -eq 0 ]; then AS='runuser -u postgres --'; else AS=; fi; "
                   "$AS \"$PGBIN/pg_ctl\" -D '%s/data' -l '%s/server.log' -w -t 120 %s 2>&1",
                   pg->cluster, pg->cluster, args);
    if (rc != 0)
        cr_log_error("pg_ctl %s: %s", args, out ? out : "");
    free(out);
    return rc;
}

/* The postmaster and its children. */
static int pg_pids(const struct pg_cluster *pg, pid_t *pids, int max)
{
    char *p = xasprintf("%s/data/postmaster.pid", pg->cluster), *out = NULL;
    unsigned char *text = tu_read(p, NULL);
    int n = 0;
    long pm = strtol((const char *)text, NULL, 10);

    free(p);
    free(text);
    if (pm <= 1)
        return 0;
    pids[n++] = (pid_t)pm;
    if (tu_sh(&out, "ps -o pid= --ppid %ld", pm) == 0 && out) {
        char *s = out, *end;
        for (long v = strtol(s, &end, 10); end != s && n < max; v = strtol(s, &end, 10)) {
            pids[n++] = (pid_t)v;
            s = end;
        }
    }
    free(out);
    return n;
}

struct health_watch {
    struct h_server *srv;
    atomic_bool stop;
    atomic_int ok, unavailable, other, recovered; /* recovered: 200s after a 503 */
    pthread_t t;
};

static void *health_thread(void *arg)
{
    struct health_watch *h = arg;
    bool down = false;

    while (!atomic_load(&h->stop)) {
        struct tu_http_resp r;
        if (tu_http(h->srv->port, true, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r) == 0) {
            if (r.status == 200) {
                atomic_fetch_add(&h->ok, 1);
                if (down)
                    atomic_fetch_add(&h->recovered, 1);
                down = false;
            } else if (r.status == 503) {
                atomic_fetch_add(&h->unavailable, 1);
                down = true;
            } else {
                atomic_fetch_add(&h->other, 1);
            }
            tu_http_resp_free(&r);
        } else {
            atomic_fetch_add(&h->other, 1);
        }
        usleep(100000);
    }
    return NULL;
}

static long long metric(struct h_server *s, const char *name)
{
    struct tu_http_resp r;
    long long v = -1;

    if (tu_http(s->port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return -1;
    if (r.status == 200 && r.body) {
        const char *p = (const char *)r.body;
        size_t n = strlen(name);
        while ((p = strstr(p, name)) != NULL) {
            if ((p == (const char *)r.body || p[-1] == '\n') && p[n] == ' ') {
                v = strtoll(p + n + 1, NULL, 10);
                break;
            }
            p += n;
        }
    }
    tu_http_resp_free(&r);
    return v;
}

Test(faults, postgres_restarted_and_paused_under_load, .timeout = 3000)
{
    struct h_server S;
    struct fd_report r;
    struct pg_cluster pg;
    struct health_watch hw;
    struct fd_world *w;
    unsigned seed = the_seed();
    int pause_s = (int)env_uint("FAULTS_PG_PAUSE", 6);
    int devices = (int)env_uint("FAULTS_DEVICES", 24);
    int commands = (int)env_uint("FAULTS_COMMANDS", 12);
    int faults = 0;
    char *dir;

    if (strcmp(store_name(), "postgres") != 0) {
        cr_skip_test("PostgreSQL outages: the postgres run covers them");
        return;
    }
    printf("faults: postgres outage, seed %u (FAULTS_SEED=%u replays it)\n", seed, seed);
    fflush(stdout);
    phase(NULL);
    dir = tu_tmpdir();
    cr_assert(pg_cluster_start(&pg, dir), "a PostgreSQL cluster of the test's own");
    phase("PostgreSQL started");
    /* store_timeout 1 s: a paused database answers 503 within ~2 s (libpq's shortest
     * connect_timeout is 2 s), never holds a request for the whole pause. */
    struct h_opts o = {.store_url = pg.url, .extra = "store_timeout = 1\n"};
    h_start(&S, &o);
    phase("scepter started");
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, devices, commands, 3, seed);
    phase("devices enrolled");
    w->fanout_gap_ms = (4500 + pause_s * 1000) / commands + 20;
    memset(&hw, 0, sizeof(hw));
    hw.srv = &S;
    pthread_create(&hw.t, NULL, health_thread, &hw);
    fd_run(w);

    usleep(800000);
    cr_expect_eq(pg_ctl(&pg, "-m fast restart"), 0);
    faults++;
    usleep(1500000);
    cr_expect_eq(pg_ctl(&pg, "-m immediate restart"), 0);
    faults++;
    usleep(1500000);
    pid_t pids[64];
    int np = pg_pids(&pg, pids, 64);
    cr_expect_gt(np, 1, "the postmaster and its backends");
    for (int i = 0; i < np; i++)
        kill(pids[i], SIGSTOP);
    sleep((unsigned)pause_s);
    for (int i = 0; i < np; i++)
        kill(pids[i], SIGCONT);
    faults++;
    phase("restarted fast, immediate; paused");

    bool drained = fd_finish(w, 180);
    phase("devices drained");
    cr_expect(drained, "devices did not get through their commands after the outages");
    usleep(500000);
    atomic_store(&hw.stop, true);
    pthread_join(hw.t, NULL);
    fd_check(w, &S, &r);
    phase("invariants checked");
    long long store_errors = metric(&S, "scepter_store_errors_total");
    bool held = drained && invariants(&r) && r.s500 == 0 && r.max_wait_ms < 4500 &&
                atomic_load(&hw.unavailable) > 0 && atomic_load(&hw.recovered) > 0 &&
                store_errors > 0;
    report("postgres_outage", seed, "outages", faults, w, &r, held);
    printf("faults: healthz 200=%d 503=%d recovered=%d other=%d, scepter_store_errors_total=%lld\n",
           atomic_load(&hw.ok), atomic_load(&hw.unavailable), atomic_load(&hw.recovered),
           atomic_load(&hw.other), store_errors);
    expect_invariants(&r);
    cr_expect_eq(r.s500, 0, "a store outage answered 500 (devices must get a retryable 503)");
    cr_expect_lt(r.max_wait_ms, 4500,
                 "a device waited %lld ms for an answer while PostgreSQL was stopped %d s "
                 "(store_timeout 1 s)",
                 r.max_wait_ms, pause_s);
    cr_expect_gt(atomic_load(&hw.unavailable), 0, "/healthz never reported the outage");
    cr_expect_gt(atomic_load(&hw.recovered), 0, "/healthz never reported the recovery");
    cr_expect_gt(store_errors, 0, "/metrics did not count the outage");
    fd_free(w);
    free(w);
    h_stop(&S);
    pg_cluster_stop(&pg);
    tu_rmtree(dir);
    free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile clients                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* A connection that sends its request a byte at a time (slowloris), or whole headers and then
 * a body that never finishes. */
struct slow_conn {
    struct tu_http_conn *c;
    const char *text;
    size_t len, sent;
    int mode;                    /* 0 headers, 1 body (both over TLS), 2 the TLS handshake itself */
    long long opened_ms, cut_ms; /* cut_ms: when a write first failed (0: never) */
    long long open_took_ms;      /* how long opening it took (the TLS handshake) */
    atomic_llong closed_ms;      /* when the server's FIN or RST arrived (0: not yet) */
};

/*
 * Watches the slow connections for the server's cut: poll() every 20 ms for the FIN
 * (POLLRDHUP) or a reset, so the time of the cut is known within that, not within the write
 * rounds (a write after the FIN still succeeds; only the one after the RST fails, and a round
 * over 2,000 connections on a loaded machine takes a while).
 */
struct cut_watch {
    struct slow_conn *sc;
    atomic_int n; /* connections opened so far (sc[0..n) may be watched) */
    atomic_bool stop;
    pthread_t t;
};

static void *cut_watch_thread(void *arg)
{
    struct cut_watch *cw = arg;
    struct pollfd *pf = NULL;
    int *idx = NULL, cap = 0;

    while (!atomic_load(&cw->stop)) {
        int n = atomic_load(&cw->n), m = 0;
        if (n > cap) {
            cap = n;
            pf = xrealloc(pf, (size_t)cap * sizeof(*pf));
            idx = xrealloc(idx, (size_t)cap * sizeof(*idx));
        }
        for (int i = 0; i < n; i++) {
            if (!cw->sc[i].c || atomic_load(&cw->sc[i].closed_ms))
                continue;
            pf[m] = (struct pollfd){.fd = tu_http_fd(cw->sc[i].c), .events = POLLRDHUP};
            idx[m++] = i;
        }
        if (m > 0 && poll(pf, (nfds_t)m, 0) > 0) {
            long long now = mono_ms();
            for (int j = 0; j < m; j++)
                if (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR))
                    atomic_store(&cw->sc[idx[j]].closed_ms, now);
        }
        usleep(20000);
    }
    free(pf);
    free(idx);
    return NULL;
}

/* One device's Idle, timed; the status (or -1). */
static int probe_idle(struct h_server *s, const struct fd_device *dv, long long *ms)
{
    struct tu_http_resp r;
    char *idle = h_plist("UDID", dv->udid, "Status", "Idle", NULL);
    long long t0 = mono_ms();
    int st = -1;

    memset(&r, 0, sizeof(r));
    if (h_connect(s, &dv->id, idle, &r) == 0)
        st = r.status;
    *ms = mono_ms() - t0;
    tu_http_resp_free(&r);
    free(idle);
    return st;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* p99 (and max) of n Idle probes by device 0. */
static void probe_latency(struct h_server *s, const struct fd_device *dv, int n, long long *p99,
                          long long *max, int *failed)
{
    long long *v = xcalloc((size_t)n, sizeof(*v));
    *failed = 0;
    for (int i = 0; i < n; i++)
        if (probe_idle(s, dv, &v[i]) != 200)
            (*failed)++;
    qsort(v, (size_t)n, sizeof(*v), cmp_ll);
    *p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    *max = v[n - 1];
    free(v);
}

/* The bytes of a TLS ClientHello (a client that trickles its handshake). */
static char *client_hello(size_t *len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    char *data = NULL, *out;

    SSL_set_bio(ssl, rb, wb);
    cr_assert_leq(SSL_connect(ssl), 0, "a ClientHello waits for the server");
    long n = BIO_get_mem_data(wb, &data);
    cr_assert_gt(n, 0);
    out = xmemdup0(data, (size_t)n);
    *len = (size_t)n;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return out;
}

/* Idle probes by one device, timed, until stopped (at most 4096; sorted when stopped). */
struct prober {
    struct h_server *s;
    const struct fd_device *dv;
    atomic_bool stop;
    long long ms[4096];
    int n, failed;
    int fail_status[8];      /* the first failures: status (-1: no answer) */
    long long fail_ms[8];    /* ... how long the probe took */
    long long fail_at_ms[8]; /* ... and when it began (monotonic) */
    pthread_t t;
};

static void *prober_thread(void *arg)
{
    struct prober *p = arg;
    while (!atomic_load(&p->stop) && p->n < 4096) {
        long long t0 = mono_ms();
        int st = probe_idle(p->s, p->dv, &p->ms[p->n]);
        if (st != 200) {
            if (p->failed < 8) {
                p->fail_status[p->failed] = st;
                p->fail_ms[p->failed] = p->ms[p->n];
                p->fail_at_ms[p->failed] = t0;
            }
            p->failed++;
        }
        p->n++;
        usleep(50000);
    }
    qsort(p->ms, (size_t)p->n, sizeof(p->ms[0]), cmp_ll);
    return NULL;
}

static int fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 256;
    return rl.rlim_cur > 100000 ? 100000 : (int)rl.rlim_cur;
}

Test(faults, hostile_clients_are_cut_and_others_keep_being_served, .timeout = 1200)
{
    static const char slow_headers[] =
        "PUT /mdm/connect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-apple-aspen-mdm\r\n"
        "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    static const char slow_body[] = "PUT /mdm/connect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Content-Type: application/x-apple-aspen-mdm\r\n"
                                    "Content-Length: 100000\r\n\r\n<?xml version=\"1.0\"?><plist>"
                                    "<dict><key>UDID</key><string>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const int timeout_s = 2;
    struct h_server S;
    struct fd_world *w;
    unsigned seed = the_seed();
    int want = (int)env_uint("FAULTS_SLOW", 200);
    int nslow, opened = 0, cut = 0, cut_late = 0, failed_base, failed_attack;
    long long p99_base, max_base, p99_attack, max_attack;

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("hostile clients do not depend on the store: the sqlite run covers them");
        return;
    }
    /* Each slow connection is one descriptor here and one in scepter (same limits). */
    nslow = want < (fd_limit() - 200) / 2 ? want : (fd_limit() - 200) / 2;
    printf("faults: hostile clients, seed %u, %d slow connections (of %d asked; descriptors "
           "%d)\n",
           seed, nslow, want, fd_limit());
    phase(NULL);
    char extra[128];
    snprintf(extra, sizeof(extra), "request_timeout = %d\n", timeout_s);
    struct h_opts o = {.extra = extra};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, 8, 4, 2, seed);
    phase("scepter started, devices enrolled");
    probe_latency(&S, &w->dev[0], 40, &p99_base, &max_base, &failed_base);
    phase("baseline latency measured");

    /* Devices work, and device 1 is timed, while the slow connections are opened (TLS
     * handshake, then the request trickles a byte per connection every 250 ms) and held. */
    struct prober pr = {.s = &S, .dv = &w->dev[1]};
    pthread_create(&pr.t, NULL, prober_thread, &pr);
    fd_run(w);
    struct slow_conn *sc = xcalloc((size_t)nslow, sizeof(*sc));
    struct cut_watch cw = {.sc = sc};
    pthread_create(&cw.t, NULL, cut_watch_thread, &cw);
    long long attack_at = mono_ms();
    size_t hello_len;
    char *hello = client_hello(&hello_len);
    int next = 0, peak = 0;
    long long last_round = 0, end = 0;
    for (int guard = 0; guard < 1000000; guard++) {
        if (next < nslow) {
            struct slow_conn *x = &sc[next];
            /* the first half trickle the handshake over plain TCP (opened fast: they are
             * all open at once), then TLS connections trickle headers or a body */
            x->mode = next < nslow / 2 ? 2 : next % 2;
            long long t0 = mono_ms();
            x->c = tu_http_connect(S.port, x->mode != 2, NULL, NULL);
            x->text = x->mode == 2 ? hello : x->mode == 1 ? slow_body : slow_headers;
            x->len = x->mode == 2 ? hello_len : strlen(x->text);
            x->opened_ms = mono_ms();
            x->open_took_ms = x->opened_ms - t0;
            if (x->c == NULL)
                printf("faults: slow connection %d (%s) not opened: the TLS handshake failed "
                       "after %lld ms, %.1f s into the attack\n",
                       next,
                       x->mode == 2   ? "handshake"
                       : x->mode == 1 ? "body"
                                      : "headers",
                       x->open_took_ms, (double)(t0 - attack_at) / 1000);
            opened += x->c != NULL;
            if (x->c && x->mode == 1) { /* the body case: whole headers at once */
                const char *body = strstr(x->text, "\r\n\r\n") + 4;
                size_t hl = (size_t)(body - x->text);
                if (tu_http_send_raw(x->c, x->text, hl) == 0)
                    x->sent = hl;
            }
            next++;
            atomic_store(&cw.n, next);
            if (next == nslow)
                phase("slow connections opened");
        }
        if (next < nslow && mono_ms() - last_round < 250)
            continue;
        int alive = 0;
        for (int i = 0; i < next; i++) {
            if (!sc[i].c || sc[i].cut_ms)
                continue;
            if (sc[i].sent < sc[i].len &&
                tu_http_send_raw(sc[i].c, sc[i].text + sc[i].sent, 1) == 0) {
                sc[i].sent++;
                alive++;
            } else if (sc[i].sent >= sc[i].len) {
                alive++; /* nothing left to trickle: kept open */
            } else {
                sc[i].cut_ms = mono_ms();
            }
        }
        last_round = mono_ms();
        if (alive > peak)
            peak = alive;
        if (next < nslow)
            continue;
        if (end == 0)
            end = mono_ms() + (long long)timeout_s * 3000 + 2000;
        if (alive == 0 || mono_ms() > end)
            break;
        usleep(250000);
    }
    phase("slow connections trickled");
    atomic_store(&cw.stop, true);
    pthread_join(cw.t, NULL);
    long long worst_cut = 0;
    for (int i = 0; i < nslow; i++) {
        if (!sc[i].c)
            continue;
        /* still writable? one more byte tells */
        if (!sc[i].cut_ms && !atomic_load(&sc[i].closed_ms)) {
            char b = 'a';
            if (tu_http_send_raw(sc[i].c, &b, 1) != 0)
                sc[i].cut_ms = mono_ms();
        }
        /* The server's cut: when its FIN arrived (watched every 20 ms), else the first
         * failed write. */
        long long at = atomic_load(&sc[i].closed_ms) ? atomic_load(&sc[i].closed_ms) : sc[i].cut_ms;
        if (at) {
            long long after = at - sc[i].opened_ms;
            cut++;
            if (after > worst_cut)
                worst_cut = after;
            /* the deadline (request_timeout + 1) is counted from the server's accept */
            if (after > (long long)(timeout_s + 1) * 1000 + 3000) {
                if (cut_late < 5)
                    printf("faults: slow connection %d (%s) cut %lld ms after it was opened "
                           "(%s), opened %.1f s into the attack, opening took %lld ms\n",
                           i,
                           sc[i].mode == 2   ? "handshake"
                           : sc[i].mode == 1 ? "body"
                                             : "headers",
                           after, atomic_load(&sc[i].closed_ms) ? "FIN seen" : "write failed",
                           (double)(sc[i].opened_ms - attack_at) / 1000, sc[i].open_took_ms);
                cut_late++;
            }
        }
    }
    atomic_store(&pr.stop, true);
    pthread_join(pr.t, NULL);
    p99_attack = pr.n ? pr.ms[(pr.n * 99) / 100] : -1;
    max_attack = pr.n ? pr.ms[pr.n - 1] : -1;
    failed_attack = pr.failed;
    for (int i = 0; i < pr.failed && i < 8; i++)
        printf("faults: device probe failed: status %d after %lld ms, %.1f s into the attack\n",
               pr.fail_status[i], pr.fail_ms[i], (double)(pr.fail_at_ms[i] - attack_at) / 1000);
    bool drained = fd_finish(w, 60);
    struct fd_report r;
    fd_check(w, &S, &r);
    long long timed_out = metric(&S, "scepter_connections_timed_out_total");
    phase("checked");

    char line[1024];
    snprintf(
        line, sizeof(line),
        "faults: scenario=hostile store=sqlite seed=%u slow_connections=%d peak_open=%d "
        "opened=%d cut=%d "
        "cut_late=%d worst_cut_ms=%lld timed_out_metric=%lld idle_p99_ms=%lld/%lld (before/during) "
        "idle_max_ms=%lld/%lld probes_failed=%d/%d probes=%d pairs=%lld lost=%lld invariants=%s",
        seed, nslow, peak, opened, cut, cut_late, worst_cut, timed_out, p99_base, p99_attack,
        max_base, max_attack, failed_base, failed_attack, pr.n, r.pairs, r.lost,
        drained && invariants(&r) && cut == opened && failed_attack == 0 ? "held" : "BROKEN");
    emit(line);
    expect_invariants(&r);
    cr_expect(drained, "devices did not get through their commands under the attack");
    cr_expect_eq(opened, nslow, "slow connections refused at the handshake (%d of %d)", opened,
                 nslow);
    cr_expect_eq(cut, opened, "slow connections still open after 3 request_timeouts: %d",
                 opened - cut);
    cr_expect_eq(cut_late, 0, "slow connections cut late");
    cr_expect_eq(failed_attack, 0, "devices not served during the attack");
    cr_expect_geq(timed_out, opened, "scepter_connections_timed_out_total");
    /* Normal latency: within 4x the quiet p99, with a floor for a loaded machine. */
    cr_expect_leq(p99_attack, p99_base * 4 > 1500 ? p99_base * 4 : 1500,
                  "Idle p99 %lld ms under attack (quiet %lld ms)", p99_attack, p99_base);
    for (int i = 0; i < nslow; i++)
        tu_http_close(sc[i].c);
    free(sc);
    free(hello);
    fd_free(w);
    free(w);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* APNs misbehaving                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* Pushes answered per token (lower-case hex) in the APNs test server's log, by status. */
static void push_counts(struct ts_server *ts, const char *hex, int *ok, int *all)
{
    json_t *log = ts_log(ts, 5000), *e;
    size_t i;
    char want[256];

    snprintf(want, sizeof(want), "/3/device/%s", hex);
    *ok = *all = 0;
    json_array_foreach(log, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        if (path && strcmp(path, want) == 0) {
            (*all)++;
            *ok += json_integer_value(json_object_get(e, "status")) == 200;
        }
    }
    json_decref(log);
}

Test(faults, apns_goaway_storms_and_dead_tokens, .timeout = 1200)
{
    struct h_server S;
    struct fd_world *w;
    unsigned seed = the_seed();
    int n = (int)env_uint("FAULTS_APNS_DEVICES", 12), rounds = 2;
    char *hex[FD_MAX_DEVICES];

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("APNs faults do not depend on the store: the sqlite run covers them");
        return;
    }
    printf("faults: APNs faults, seed %u, %d devices\n", seed, n);
    phase(NULL);
    char *pushca = ts_pki("pushca.pem"), *ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    cr_assert_not_null(pushca, "the APNs test PKI (fixture apns_pki)");
    /* GOAWAY after every 5 requests on a connection: the client reconnects and resends. */
    const char *args[] = {"--client-ca", pushca, "--goaway-after", "5",
                          "--log-size",  "5000", "--max-lifetime", "900",
                          NULL};
    struct ts_server *ts = ts_start(args);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 0\n"
                            "repush_interval = 0\n",
                            ts->port, ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, n, 1, 1, seed);
    for (int d = 0; d < n; d++) {
        char tok[64];
        snprintf(tok, sizeof(tok), "tok-%.40s", w->dev[d].udid);
        hex[d] = hex_encode(tok, strlen(tok), false);
    }
    /* The enrollment pushes land, then the faults start from zeroed counters. */
    for (int i = 0; i < 200 && ts_stat(ts, "received") < n; i++)
        usleep(50000);
    cr_assert_eq(ts_http(ts->control_port, "POST", "/reset", "{}", NULL), 200);
    /* Device 0's token is dead (410); a 429 storm on the first half of the pushes; device 1
     * gets a 503 and device 2 a 500 once. */
    char *script = xasprintf("{\"rules\":[{\"prefix\":\"%s\",\"status\":410,\"reason\":"
                             "\"Unregistered\"},{\"prefix\":\"%s\",\"status\":503,\"reason\":"
                             "\"ServiceUnavailable\",\"times\":1},{\"prefix\":\"%s\",\"status\":"
                             "500,\"reason\":\"InternalServerError\",\"times\":1},{\"prefix\":"
                             "\"\",\"status\":429,\"reason\":\"TooManyRequests\",\"times\":%d}]}",
                             hex[0], hex[1], hex[2], n / 2);
    cr_assert_eq(ts_script(ts, script), 0);
    phase("scepter and the APNs test server started, devices enrolled, faults scripted");

    json_t *devs = json_array();
    for (int d = 0; d < n; d++)
        json_array_append_new(devs, json_string(w->dev[d].udid));
    json_t *body = json_pack("{s:o}", "devices", devs);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    int lost = 0, twice = 0, dead_pushes = 0;
    for (int round = 1; round <= rounds; round++) {
        int st = fd_api(&S, "POST", "/v1/push", text, NULL);
        cr_expect(st >= 200 && st < 300, "POST /v1/push: %d", st);
        /* every live token answered 200 once more (retries back off from 5 s) */
        bool all = false;
        for (int i = 0; i < 1200 && !all; i++) {
            all = true;
            for (int d = 1; d < n && all; d++) {
                int ok, any;
                push_counts(ts, hex[d], &ok, &any);
                all = ok >= round;
            }
            if (!all)
                usleep(100000);
        }
        usleep(1000000); /* late duplicates would show */
        char what[64];
        snprintf(what, sizeof(what), "push round %d delivered", round);
        phase(what);
    }
    for (int d = 0; d < n; d++) {
        int ok, any;
        push_counts(ts, hex[d], &ok, &any);
        if (d == 0) {
            dead_pushes = any;
            continue;
        }
        lost += ok < rounds;
        twice += ok > rounds;
        if (ok != rounds)
            cr_log_error("%s: %d pushes answered 200 for %d requested (%d requests)",
                         w->dev[d].udid, ok, rounds, any);
    }
    char path[128];
    json_t *dj = NULL;
    snprintf(path, sizeof(path), "/v1/devices/%s", w->dev[0].udid);
    cr_expect_eq(fd_api(&S, "GET", path, NULL, &dj), 200);
    bool dead_marked = json_is_false(json_object_get(dj, "push_token_valid"));
    json_decref(dj);
    long long goaways = ts_stat(ts, "goaways"), conns = ts_stat(ts, "connections");
    long long r429 = ts_stat(ts, "by_status.429"), r503 = ts_stat(ts, "by_status.503"),
              r500 = ts_stat(ts, "by_status.500");
    char line[1024];
    snprintf(line, sizeof(line),
             "faults: scenario=apns store=sqlite seed=%u devices=%d rounds=%d goaways=%lld "
             "connections=%lld answers_429=%lld answers_503=%lld answers_500=%lld lost=%d "
             "sent_twice=%d dead_token_requests=%d dead_token_marked=%s invariants=%s",
             seed, n, rounds, goaways, conns, r429, r503, r500, lost, twice, dead_pushes,
             dead_marked ? "yes" : "no",
             lost == 0 && twice == 0 && dead_pushes == 1 && dead_marked ? "held" : "BROKEN");
    emit(line);
    cr_expect_eq(lost, 0, "pushes lost");
    cr_expect_eq(twice, 0, "pushes delivered more than once");
    cr_expect_eq(dead_pushes, 1, "a dead token was pushed after its 410");
    cr_expect(dead_marked, "the dead token is not marked invalid");
    cr_expect_gt(goaways, 0, "no GOAWAY happened");
    cr_expect_gt(conns, 1, "the client did not reconnect after GOAWAY");
    for (int d = 0; d < n; d++)
        free(hex[d]);
    free(text);
    free(script);
    fd_free(w);
    free(w);
    h_stop(&S);
    ts_stop(ts);
    free(topic);
    free(extra);
    free(pushca);
    free(ca);
    free(cert);
    free(key);
}

/* ---------------------------------------------------------------------------------------- */
/* SQLite: the disk fills up                                                                */
/* ---------------------------------------------------------------------------------------- */

static char *small_fs; /* the tmpfs mount point, unmounted by the test's fini */

static void unmount_small_fs(void)
{
    if (small_fs) {
        tu_sh(NULL, "umount '%s' 2>/dev/null", small_fs);
        tu_rmtree(small_fs);
        free(small_fs);
        small_fs = NULL;
    }
}

/* Status of one request, and (when asked) its body. */
static int get_status(struct h_server *s, const char *path, char **body)
{
    struct tu_http_resp r;
    int st = -1;

    if (body)
        *body = NULL;
    if (tu_http(s->port, true, NULL, NULL, "GET", path, "Authorization: Bearer " H_API_KEY "\r\n",
                NULL, 0, &r) == 0) {
        st = r.status;
        if (body && r.body)
            *body = xmemdup0(r.body, r.body_len);
        tu_http_resp_free(&r);
    }
    return st;
}

Test(faults, sqlite_disk_full_refuses_writes_keeps_reads_and_recovers, .timeout = 1200,
     .fini = unmount_small_fs)
{
    struct h_server S;
    struct fd_world *w;
    struct fd_report r;
    unsigned seed = the_seed();
    int devices = (int)env_uint("FAULTS_DEVICES", 24),
        commands = (int)env_uint("FAULTS_COMMANDS", 12);
    char *out = NULL;

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("a full disk is the SQLite run's");
        return;
    }
    if (geteuid() != 0) {
        cr_skip_test("mounting a small tmpfs needs root");
        return;
    }
    printf("faults: SQLite disk full, seed %u\n", seed);
    phase(NULL);
    small_fs = tu_tmpdir();
    cr_assert_eq(tu_sh(&out, "mount -t tmpfs -o size=8m tmpfs '%s' 2>&1", small_fs), 0,
                 "mount tmpfs: %s", out ? out : "");
    free(out);
    char *url = xasprintf("sqlite:%s/scepter.db", small_fs);
    struct h_opts o = {.store_url = url};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, devices, commands, 3, seed);
    w->fanout_gap_ms = 400;
    phase("scepter started on an 8 MiB tmpfs, devices enrolled");
    fd_run(w);
    usleep(1500000);

    /* Fill it up (bounded: the file system is 8 MiB). */
    char *filler = xasprintf("%s/filler", small_fs);
    tu_sh(NULL, "dd if=/dev/zero of='%s' bs=64k count=200 2>/dev/null", filler);
    phase("disk full");
    /* Writes fail with a clear error; reads keep serving. */
    json_t *body = json_pack("{s:[s],s:{s:s}}", "devices", w->dev[0].udid, "command",
                             "request_type", "ProfileList");
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *ans = NULL;
    int wst = -1, writes_refused = 0, reads_ok = 0, reads = 0;
    char *werr = NULL;
    for (int i = 0; i < 5; i++) {
        wst = fd_api(&S, "POST", "/v1/commands", text, &ans);
        if (wst != 201) {
            writes_refused++;
            free(werr);
            werr = xstrdup(json_string_value(json_object_get(ans, "error"))
                               ? json_string_value(json_object_get(ans, "error"))
                               : "");
        }
        json_decref(ans);
        char path[128];
        snprintf(path, sizeof(path), "/v1/devices/%s", w->dev[i % devices].udid);
        reads_ok += get_status(&S, path, NULL) == 200;
        reads_ok += get_status(&S, "/healthz", NULL) == 200;
        reads += 2;
        usleep(200000);
    }
    char *ic = sqlite_integrity(url);
    unlink(filler);
    phase("space returned");
    bool drained = fd_finish(w, 180);
    fd_check(w, &S, &r);
    char *ic2 = sqlite_integrity(url);
    /* and writes work again */
    int after = fd_api(&S, "POST", "/v1/commands", text, NULL);
    phase("checked");

    char line[1024];
    snprintf(line, sizeof(line),
             "faults: scenario=disk_full store=sqlite seed=%u devices=%d fanouts=%d pairs=%lld "
             "writes_refused=%d/5 (%s) reads_ok=%d/%d integrity=%s/%s write_after=%d "
             "answers_5xx=%lld answers_500=%lld refused=%lld lost=%lld invariants=%s",
             seed, w->ndevices, w->ncommands, r.pairs, writes_refused, werr ? werr : "", reads_ok,
             reads, ic, ic2, after, r.s5xx, r.s500, r.refused, r.lost,
             drained && invariants(&r) && writes_refused == 5 && reads_ok == reads &&
                     strcmp(ic, "ok") == 0 && strcmp(ic2, "ok") == 0 && after == 201 && r.s500 == 0
                 ? "held"
                 : "BROKEN");
    emit(line);
    expect_invariants(&r);
    cr_expect(drained, "devices did not get through their commands once space returned");
    cr_expect_eq(writes_refused, 5, "writes on a full disk");
    cr_expect(werr && strstr(werr, "full"), "the error names the full disk: '%s'",
              werr ? werr : "");
    cr_expect_eq(reads_ok, reads, "reads while the disk was full");
    cr_expect_str_eq(ic, "ok", "integrity_check on the full disk: %s", ic);
    cr_expect_str_eq(ic2, "ok", "integrity_check after: %s", ic2);
    cr_expect_eq(after, 201, "a write once space returned");
    cr_expect_eq(r.s500, 0, "devices answered 500 on a full disk (want a retryable 503)");
    free(ic);
    free(ic2);
    free(werr);
    free(text);
    free(filler);
    fd_free(w);
    free(w);
    h_stop(&S);
    free(url);
}

/* ---------------------------------------------------------------------------------------- */
/* Two instances on one PostgreSQL, one killed mid-batch                                    */
/* ---------------------------------------------------------------------------------------- */

/* Background jobs whose lease names pid as holder (psql), as "job job ...". */
static char *jobs_held_by(const char *url, pid_t pid)
{
    char *out = NULL;
    if (tu_sh(&out,
              "psql '%s' -qAtc \"SELECT string_agg(job, ' ' ORDER BY job) FROM leases WHERE "
              "holder LIKE '%%/%ld/%%' AND expires > extract(epoch FROM now())\" 2>&1",
              url, (long)pid) != 0) {
        cr_log_error("psql: %s", out ? out : "");
        free(out);
        return xstrdup("");
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

Test(faults, two_instances_one_killed_mid_batch, .timeout = 1200)
{
    struct h_server A, B;
    struct fd_world *w;
    struct fd_report r;
    unsigned seed = the_seed(), rnd = seed;
    int devices = (int)env_uint("FAULTS_DEVICES", 24),
        commands = (int)env_uint("FAULTS_COMMANDS", 12);

    if (strcmp(store_name(), "postgres") != 0) {
        cr_skip_test("two instances share a PostgreSQL: the postgres run covers them");
        return;
    }
    printf("faults: two instances, seed %u\n", seed);
    phase(NULL);
    /* short job intervals: leases of 2 x interval + 10 s */
    struct h_opts o = {.extra = "repush_interval = 2\n"};
    h_start(&A, &o);
    h_start_peer(&B, &A, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &A, devices, commands, 3, seed);
    w->srv[1] = &B;
    w->ninst = 2;
    w->fanout_gap_ms = 300;
    phase("two instances started, devices enrolled");
    fd_run(w);
    usleep((useconds_t)(1000 + rand_r(&rnd) % 2000) * 1000);
    char *held = jobs_held_by(A.store_url, A.proc.pid);
    bool fanning = atomic_load(&w->in_fanout) != 0;
    int inflight = atomic_load(&w->in_flight);
    h_kill(&A);
    phase("instance A killed");
    /* B takes over A's jobs when their leases run out (at most 2 x 10 + 10 s: pushcert). */
    char *taken = NULL;
    long long t0 = mono_ms(), takeover_ms = -1;
    if (*held) {
        for (int i = 0; i < 600; i++) {
            free(taken);
            taken = jobs_held_by(B.store_url, B.proc.pid);
            bool all = true;
            char *copy = xstrdup(held), *save = NULL;
            for (char *j = strtok_r(copy, " ", &save); j; j = strtok_r(NULL, " ", &save))
                all = all && strstr(taken, j) != NULL;
            free(copy);
            if (all) {
                takeover_ms = mono_ms() - t0;
                break;
            }
            usleep(100000);
        }
    }
    bool drained = fd_finish(w, 180);
    /* A is gone: the checks go to B */
    fd_check(w, &B, &r);
    phase("checked");
    char line[1024];
    snprintf(line, sizeof(line),
             "faults: scenario=two_instances store=postgres seed=%u devices=%d fanouts=%d "
             "pairs=%lld deliveries=%lld redelivered=%lld kill_during_fanout=%d "
             "requests_in_flight=%d jobs_of_killed=[%s] taken_over_in_ms=%lld lost=%lld "
             "wrong_device=%lld bad_record=%lld corrupt=%lld refused=%lld invariants=%s",
             seed, devices, commands, r.pairs, r.deliveries, r.duplicates, fanning, inflight, held,
             takeover_ms, r.lost, r.wrong_device, r.bad_record, r.corrupt, r.refused,
             drained && invariants(&r) && (!*held || takeover_ms >= 0) ? "held" : "BROKEN");
    emit(line);
    expect_invariants(&r);
    cr_expect(drained, "devices did not get through their commands on the survivor");
    cr_expect(!*held || takeover_ms >= 0, "the survivor did not take over [%s] (holds [%s])", held,
              taken ? taken : "");
    free(held);
    free(taken);
    fd_free(w);
    free(w);
    A.proc.pid = 0; /* killed already */
    h_stop_peer(&B);
    h_stop(&A);
}

/* ---------------------------------------------------------------------------------------- */
/* APNs stops reading; the push certificate expires; connections past max_connections       */
/* ---------------------------------------------------------------------------------------- */

/* CPU seconds (user + system) a process has used so far. */
static double cpu_seconds(pid_t pid)
{
    char path[64], *text, *p;
    unsigned long long ut = 0, st = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    text = (char *)tu_read(path, NULL);
    cr_assert_not_null(text);
    p = strrchr(text, ')'); /* after the command name: state, then fields 4.. */
    cr_assert(
        p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2);
    free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static bool log_has(struct h_server *s, const char *needle)
{
    char *text = (char *)tu_read(s->log_file, NULL);
    bool yes = text && strstr(text, needle) != NULL;
    free(text);
    return yes;
}

/* The body of POST /v1/push naming the first n devices. */
static char *push_body(const struct fd_world *w, int n)
{
    json_t *devs = json_array(), *body;
    char *text;

    for (int d = 0; d < n; d++)
        json_array_append_new(devs, json_string(w->dev[d].udid));
    body = json_pack("{s:o}", "devices", devs);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* Wait (bounded) until every token has at least want pushes answered 200. */
static bool pushes_answered(struct ts_server *ts, char **hex, int n, int want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        bool all = true;
        for (int d = 0; d < n && all; d++) {
            int ok, any;
            push_counts(ts, hex[d], &ok, &any);
            all = ok >= want;
        }
        if (all)
            return true;
        usleep(100000);
    }
    return false;
}

/* Each device's token as the fault devices register it (lower-case hex). */
static void device_tokens(const struct fd_world *w, int n, char **hex)
{
    for (int d = 0; d < n; d++) {
        char tok[64];
        snprintf(tok, sizeof(tok), "tok-%.40s", w->dev[d].udid);
        hex[d] = hex_encode(tok, strlen(tok), false);
    }
}

Test(faults, apns_server_stops_reading, .timeout = 600)
{
    struct h_server S;
    struct fd_world *w;
    unsigned seed = the_seed();
    int n = (int)env_uint("FAULTS_APNS_DEVICES", 12), stall_s = 6, lost = 0, twice = 0;
    char *hex[FD_MAX_DEVICES];

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("APNs faults do not depend on the store: the sqlite run covers them");
        return;
    }
    if (n > FD_MAX_DEVICES)
        n = FD_MAX_DEVICES;
    printf("faults: APNs stops reading, seed %u, %d devices, %d s stall\n", seed, n, stall_s);
    phase(NULL);
    char *pushca = ts_pki("pushca.pem"), *ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    cr_assert_not_null(pushca, "the APNs test PKI (fixture apns_pki)");
    const char *args[] = {"--client-ca",    pushca, "--log-size", "5000",
                          "--max-lifetime", "600",  NULL};
    struct ts_server *ts = ts_start(args);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *topic = ts_pki_text("topic");
    /* apns_ping_timeout = 2: a silent connection with pushes in flight is PINGed after 2 s
     * and dropped 2 s later. */
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 0\n"
                            "repush_interval = 0\napns_ping_timeout = 2\n",
                            ts->port, ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, n, 1, 1, seed);
    device_tokens(w, n, hex);
    /* Pushes the enrollment may have caused land first (a short wait), then counts from 0. */
    for (int i = 0; i < 20 && ts_stat(ts, "received") < n; i++)
        usleep(50000);
    cr_assert_eq(ts_http(ts->control_port, "POST", "/reset", "{}", NULL), 200);
    char *text = push_body(w, n);
    cr_assert_eq(fd_api(&S, "POST", "/v1/push", text, NULL), 202);
    cr_assert(pushes_answered(ts, hex, n, 1, 30), "round 1 was not delivered");
    phase("round 1 delivered; APNs stops reading");

    cr_assert_eq(ts_http(ts->control_port, "POST", "/pause-reading", "{}", NULL), 200);
    long long conns0 = ts_stat(ts, "connections");
    long long connects0 = metric(&S, "scepter_push_connects_total");
    double cpu0 = cpu_seconds(S.proc.pid);
    cr_assert_eq(fd_api(&S, "POST", "/v1/push", text, NULL), 202);
    /* Devices keep being served while APNs is stuck. */
    long long worst = 0;
    int probes_failed = 0, probes = 0;
    for (long long end = mono_ms() + stall_s * 1000LL; mono_ms() < end; probes++) {
        long long ms;
        if (probe_idle(&S, &w->dev[n - 1], &ms) != 200)
            probes_failed++;
        if (ms > worst)
            worst = ms;
        usleep(200000);
    }
    double cpu_stall = cpu_seconds(S.proc.pid) - cpu0;
    long long conns_stall = ts_stat(ts, "connections") - conns0;
    long long resent = metric(&S, "scepter_push_resent_total");
    long long connects_stall = metric(&S, "scepter_push_connects_total") - connects0;
    phase("stall observed; APNs reads again");
    cr_assert_eq(ts_http(ts->control_port, "POST", "/resume-reading", "{}", NULL), 200);
    bool delivered = pushes_answered(ts, hex, n, 2, 60);
    usleep(1000000); /* late duplicates would show */
    phase("round 2 delivered");
    for (int d = 0; d < n; d++) {
        int ok, any;
        push_counts(ts, hex[d], &ok, &any);
        lost += ok < 2;
        twice += ok > 2;
    }
    resent = metric(&S, "scepter_push_resent_total");
    char line[1024];
    bool held = delivered && lost == 0 && twice <= resent && resent >= 1 && probes_failed == 0 &&
                conns_stall <= stall_s && cpu_stall < 0.5 * stall_s;
    snprintf(line, sizeof(line),
             "faults: scenario=apns_stops_reading store=sqlite seed=%u devices=%d stall_s=%d "
             "connections_during_stall=%lld scepter_connects_during_stall=%lld "
             "cpu_during_stall_s=%.2f resent=%lld lost=%d answered_twice=%d probes=%d "
             "probes_failed=%d probe_max_ms=%lld invariants=%s",
             seed, n, stall_s, conns_stall, connects_stall, cpu_stall, resent, lost, twice, probes,
             probes_failed, worst, held ? "held" : "BROKEN");
    emit(line);
    cr_expect(delivered, "pushes not delivered after APNs read again");
    cr_expect_eq(lost, 0, "pushes lost");
    /* An unanswered request is sent again on a new connection (apns/client.c); the stuck
     * server answers the first copy too once it reads again: at most the resent ones twice. */
    cr_expect_leq(twice, resent, "pushes answered twice beyond those resent");
    cr_expect_geq(resent, 1, "the stuck connection was never given up on");
    cr_expect_eq(probes_failed, 0, "devices not served while APNs was stuck");
    cr_expect_leq(conns_stall, stall_s, "reconnecting without back-off");
    cr_expect_lt(cpu_stall, 0.5 * stall_s, "scepter spins while APNs is stuck");
    for (int d = 0; d < n; d++)
        free(hex[d]);
    free(text);
    fd_free(w);
    free(w);
    h_stop(&S);
    ts_stop(ts);
    free(topic);
    free(extra);
    free(pushca);
    free(ca);
    free(cert);
    free(key);
}

/* Upload a push certificate issued by ca for topic, valid for valid_s more seconds, with
 * PUT /v1/pushcert; its status. */
static int upload_pushcert(struct h_server *s, const struct tu_cert *ca, const char *topic,
                           long valid_s, const char *dir, const char *name)
{
    struct tu_cert_opts po = {
        .cn = name, .uid = topic, .not_before = -60, .not_after = valid_s, .ec = true};
    struct tu_cert c = tu_cert_issue(ca, &po);
    char *kp = xasprintf("%s/%s.key", dir, name), *cp = xasprintf("%s/%s.pem", dir, name);
    char *cert, *key, *body;
    json_t *j;
    int st;

    tu_cert_write(&c, cp, kp);
    cert = (char *)tu_read(cp, NULL);
    key = (char *)tu_read(kp, NULL);
    j = json_pack("{s:s,s:s}", "cert_pem", cert, "key_pem", key);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    st = fd_api(s, "PUT", "/v1/pushcert", body, NULL);
    free(body);
    free(cert);
    free(key);
    free(kp);
    free(cp);
    tu_cert_free(&c);
    return st;
}

Test(faults, apns_push_certificate_expires, .timeout = 600)
{
    const char *topic = "com.apple.mgmt.External.5f4e2a10-0c6e-4f64-9b0f-1d5e4c3b2a19";
    const long valid_s = 6;
    struct h_server S;
    struct fd_world *w;
    unsigned seed = the_seed();
    int n = 6, lost_after = 0;
    char *hex[FD_MAX_DEVICES];

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("APNs faults do not depend on the store: the sqlite run covers them");
        return;
    }
    printf("faults: the push certificate expires, seed %u, %d devices\n", seed, n);
    phase(NULL);
    /* A push CA of the test's own; scepter starts with a certificate valid for an hour. */
    char *dir = tu_tmpdir();
    struct tu_cert_opts cao = {.cn = "fault push CA", .not_after = 3600, .ec = true};
    struct tu_cert pca = tu_ca_new(&cao);
    struct tu_cert_opts po = {
        .cn = "fault push", .uid = topic, .not_before = -60, .not_after = 3600, .ec = true};
    struct tu_cert push = tu_cert_issue(&pca, &po);
    char *pca_pem = xasprintf("%s/pushca.pem", dir), *push_pem = xasprintf("%s/push.pem", dir),
         *push_key = xasprintf("%s/push.key", dir);
    tu_cert_write(&pca, pca_pem, NULL);
    tu_cert_write(&push, push_pem, push_key);
    char *ca = ts_pki("ca.pem");
    cr_assert_not_null(ca, "the APNs test PKI (fixture apns_pki)");
    const char *args[] = {"--client-ca",    pca_pem, "--log-size", "5000",
                          "--max-lifetime", "600",   NULL};
    struct ts_server *ts = ts_start(args);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 0\n"
                            "repush_interval = 0\n",
                            ts->port, ca, push_pem, push_key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, n, 1, 1, seed);
    device_tokens(w, n, hex);
    char *text = push_body(w, n);
    /* The certificate that will expire: valid for valid_s more seconds from now. */
    time_t not_after = time(NULL) + valid_s;
    cr_assert_eq(upload_pushcert(&S, &pca, topic, valid_s, dir, "short"), 200);
    cr_assert_eq(fd_api(&S, "POST", "/v1/push", text, NULL), 202);
    cr_assert(pushes_answered(ts, hex, n, 1, (int)valid_s), "pushes before the expiry");
    phase("pushed; waiting for the certificate to expire");
    while (time(NULL) <= not_after + 1)
        usleep(100000);

    /* Expired: reported before any push tries it... */
    long long expired_metric = metric(&S, "scepter_push_cert_expired");
    long long na = metric(&S, "scepter_push_cert_not_after_seconds");
    char *health = NULL;
    cr_expect_eq(get_status(&S, "/healthz", &health), 200,
                 "an expired push certificate is no "
                 "reason to restart the server");
    bool health_expired = health && strstr(health, "\"push_cert\":\"expired\"");
    free(health);
    /* ...and a push stops the client instead of connecting again and again. */
    long long received0 = ts_stat(ts, "received"), conns0 = ts_stat(ts, "connections");
    double cpu0 = cpu_seconds(S.proc.pid);
    cr_assert_eq(fd_api(&S, "POST", "/v1/push", text, NULL), 202);
    usleep(5000000);
    long long sent_expired = ts_stat(ts, "received") - received0;
    long long conns_expired = ts_stat(ts, "connections") - conns0;
    double cpu_expired = cpu_seconds(S.proc.pid) - cpu0;
    long long halted = metric(&S, "scepter_push_halted");
    cr_expect_eq(get_status(&S, "/healthz", &health), 200);
    bool health_halted =
        health && strstr(health, "\"apns\":\"halted\"") && strstr(health, "expired on");
    cr_log_info("/healthz while expired: %s", health);
    free(health);
    bool logged = log_has(&S, "PUSHING STOPPED: the push certificate expired on");
    phase("expired: pushing stopped");

    /* A new certificate resumes pushing. */
    cr_expect_eq(upload_pushcert(&S, &pca, topic, 3600, dir, "renewed"), 200);
    cr_assert_eq(fd_api(&S, "POST", "/v1/push", text, NULL), 202);
    bool resumed = pushes_answered(ts, hex, n, 2, 60);
    for (int d = 0; d < n; d++) {
        int ok, any;
        push_counts(ts, hex[d], &ok, &any);
        lost_after += ok < 2;
    }
    long long halted_after = metric(&S, "scepter_push_halted");
    phase("new certificate: pushing resumed");

    char line[1024];
    bool na_ok = na >= (long long)not_after - 2 && na <= (long long)not_after + 2;
    bool held = expired_metric == 1 && na_ok && health_expired && sent_expired == 0 &&
                conns_expired <= 1 && cpu_expired < 2.5 && halted == 1 && health_halted && logged &&
                resumed && lost_after == 0 && halted_after == 0;
    snprintf(line, sizeof(line),
             "faults: scenario=apns_cert_expires store=sqlite seed=%u devices=%d valid_s=%ld "
             "expired_metric=%lld healthz_push_cert_expired=%s pushes_sent_expired=%lld "
             "connections_expired=%lld cpu_expired_s=%.2f halted=%lld healthz_halted=%s "
             "logged=%s resumed_with_new_cert=%s invariants=%s",
             seed, n, valid_s, expired_metric, health_expired ? "yes" : "no", sent_expired,
             conns_expired, cpu_expired, halted, health_halted ? "yes" : "no",
             logged ? "yes" : "no", resumed ? "yes" : "no", held ? "held" : "BROKEN");
    emit(line);
    cr_expect_eq(expired_metric, 1, "scepter_push_cert_expired");
    cr_expect(na_ok, "scepter_push_cert_not_after_seconds %lld, not %lld", na,
              (long long)not_after);
    cr_expect(health_expired, "/healthz does not say the push certificate expired");
    cr_expect_eq(sent_expired, 0, "pushes sent with an expired certificate");
    cr_expect_leq(conns_expired, 1, "connections attempted with an expired certificate");
    cr_expect_lt(cpu_expired, 2.5, "scepter spins with an expired certificate");
    cr_expect_eq(halted, 1, "scepter_push_halted");
    cr_expect(health_halted, "/healthz does not report the halt and its reason");
    cr_expect(logged, "the expiry was not logged");
    cr_expect(resumed, "pushing did not resume with a new certificate");
    cr_expect_eq(lost_after, 0, "pushes lost after the renewal");
    cr_expect_eq(halted_after, 0, "still halted after a new certificate");
    for (int d = 0; d < n; d++)
        free(hex[d]);
    free(text);
    fd_free(w);
    free(w);
    h_stop(&S);
    ts_stop(ts);
    tu_cert_free(&push);
    tu_cert_free(&pca);
    free(extra);
    free(ca);
    free(pca_pem);
    free(push_pem);
    free(push_key);
    tu_sh(NULL, "rm -rf '%s'", dir);
    free(dir);
}

/* A device that keeps one connection and polls on it (keep-alive), timed. */
struct keeper {
    struct h_server *s;
    const struct fd_device *dv;
    atomic_bool stop;
    long long ms[4096];
    int n, failed;
    pthread_t t;
};

static void *keeper_thread(void *arg)
{
    struct keeper *k = arg;
    struct tu_http_conn *c = tu_http_connect(k->s->port, true, k->dv->id.cert, k->dv->id.key);
    char *idle = h_plist("UDID", k->dv->udid, "Status", "Idle", NULL);

    while (c && !atomic_load(&k->stop) && k->n < 4096) {
        struct tu_http_resp r;
        long long t0 = mono_ms();
        memset(&r, 0, sizeof(r));
        int rc =
            tu_http_do(c, "PUT", "/mdm/connect", "Content-Type: application/x-apple-aspen-mdm\r\n",
                       idle, strlen(idle), &r);
        k->ms[k->n++] = mono_ms() - t0;
        if (rc != 0 || r.status != 200)
            k->failed++;
        tu_http_resp_free(&r);
        if (rc != 0)
            break;
        usleep(200000);
    }
    if (c == NULL)
        k->failed++;
    tu_http_close(c);
    free(idle);
    qsort(k->ms, (size_t)k->n, sizeof(k->ms[0]), cmp_ll);
    return NULL;
}

Test(faults, connections_past_max_connections, .timeout = 600)
{
    const int max_conns = 32, timeout_s = 3, extra_conns = 40;
    struct h_server S;
    struct fd_world *w;
    unsigned seed = the_seed();
    int held_open = 0, refused = 0, slow_refusals = 0, cut = 0;
    long long recovered_ms = -1;

    if (strcmp(store_name(), "sqlite") != 0) {
        cr_skip_test("the connection limit does not depend on the store: the sqlite run covers it");
        return;
    }
    printf("faults: connections past max_connections (%d), seed %u\n", max_conns, seed);
    phase(NULL);
    char extra[160];
    snprintf(extra, sizeof(extra), "max_connections = %d\nworkers = 1\nrequest_timeout = %d\n",
             max_conns, timeout_s);
    struct h_opts o = {.extra = extra};
    h_start(&S, &o);
    w = xcalloc(1, sizeof(*w));
    fd_setup(w, &S, 8, 4, 2, seed);
    long long refused0 = metric(&S, "scepter_connections_refused_total");
    /* Device 0 holds a keep-alive connection from before the flood and polls on it. */
    struct keeper kp = {.s = &S, .dv = &w->dev[0]};
    pthread_create(&kp.t, NULL, keeper_thread, &kp);
    fd_run(w);
    usleep(500000);
    phase("devices working; opening max_connections + 40 idle connections");

    /* The flood: TLS connections that send nothing. */
    int total = max_conns + extra_conns;
    struct flood {
        struct tu_http_conn *c;
        long long opened_ms, cut_ms;
    } *fl = xcalloc((size_t)total, sizeof(*fl));
    for (int i = 0; i < total; i++) {
        long long t0 = mono_ms();
        fl[i].c = tu_http_connect(S.port, true, NULL, NULL);
        fl[i].opened_ms = mono_ms();
        if (fl[i].c) {
            held_open++;
        } else {
            refused++;
            /* refused at the handshake, at once: not left hanging */
            if (fl[i].opened_ms - t0 > 2000)
                slow_refusals++;
        }
    }
    phase("flood opened");
    /* Each accepted one is cut at request_timeout (+ 1 s, the whole-request deadline):
     * checked by writing a byte every 250 ms (bounded). */
    int late = 0;
    long long last_open = fl[total - 1].opened_ms;
    for (long long end = last_open + (timeout_s + 1) * 1000LL + 5000; mono_ms() < end;) {
        int alive = 0;
        for (int i = 0; i < total; i++) {
            char b = 'a';
            if (!fl[i].c || fl[i].cut_ms)
                continue;
            if (tu_http_send_raw(fl[i].c, &b, 1) != 0)
                fl[i].cut_ms = mono_ms();
            else
                alive++;
        }
        if (alive == 0)
            break;
        usleep(250000);
    }
    for (int i = 0; i < total; i++) {
        if (!fl[i].c)
            continue;
        if (fl[i].cut_ms) {
            cut++;
            if (fl[i].cut_ms - fl[i].opened_ms > (timeout_s + 1) * 1000LL + 3000)
                late++;
        }
        tu_http_close(fl[i].c);
    }
    free(fl);
    phase("flood cut");
    /* With the flood gone a new device connection is served again at once. */
    long long t_new = mono_ms();
    for (int i = 0; i < 20; i++) {
        long long ms;
        if (probe_idle(&S, &w->dev[1], &ms) == 200) {
            recovered_ms = mono_ms() - t_new;
            break;
        }
        usleep(100000);
    }
    bool drained = fd_finish(w, 90);
    atomic_store(&kp.stop, true);
    pthread_join(kp.t, NULL);
    struct fd_report r;
    fd_check(w, &S, &r);
    long long refused_metric = metric(&S, "scepter_connections_refused_total") - refused0;
    long long keeper_p99 = kp.n ? kp.ms[(kp.n * 99) / 100] : -1;
    phase("checked");

    char line[1024];
    bool held = invariants(&r) && drained && refused >= 1 && refused_metric >= refused &&
                slow_refusals == 0 && kp.failed == 0 && keeper_p99 <= 1500 && recovered_ms >= 0 &&
                recovered_ms <= 2000 && cut == held_open && late == 0;
    snprintf(
        line, sizeof(line),
        "faults: scenario=max_connections store=sqlite seed=%u max_connections=%d "
        "opened=%d accepted=%d refused=%d refused_metric=%lld slow_refusals=%d cut=%d "
        "cut_late=%d new_connection_served_after_ms=%lld keepalive_polls=%d keepalive_failed=%d "
        "keepalive_p99_ms=%lld pairs=%lld lost=%lld no_answer=%lld invariants=%s",
        seed, max_conns, total, held_open, refused, refused_metric, slow_refusals, cut, late,
        recovered_ms, kp.n, kp.failed, keeper_p99, r.pairs, r.lost, r.netfail,
        held ? "held" : "BROKEN");
    emit(line);
    expect_invariants(&r);
    cr_expect(drained, "devices did not get through their commands");
    /* Slots free as the first idle ones are cut while the flood is still opening (each TLS
     * handshake takes a while): at least some are past the limit, never none. */
    cr_expect_geq(refused, 1, "no connection past max_connections was refused");
    cr_expect_geq(refused_metric, refused, "scepter_connections_refused_total");
    cr_expect_eq(slow_refusals, 0, "a refusal took over 2 s");
    cr_expect_eq(kp.failed, 0, "a device's open connection was not served during the flood");
    cr_expect_leq(keeper_p99, 1500, "keep-alive polls p99 %lld ms during the flood", keeper_p99);
    cr_expect(recovered_ms >= 0 && recovered_ms <= 2000,
              "new connections served again %lld ms after the flood was cut", recovered_ms);
    cr_expect_eq(cut, held_open, "idle connections not cut at request_timeout");
    cr_expect_eq(late, 0, "idle connections cut late");
    fd_free(w);
    free(w);
    h_stop(&S);
}
