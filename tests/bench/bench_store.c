/*
 * bench_store — how fast the store does what the server leans on, on each backend:
 *   - Idle polls with an empty queue (store_connect), over T threads;
 *   - enqueueing one command to N enrollments (store_enqueue), R times, which fills the
 *     queue with N x R rows (1,000,000 by default);
 *   - next-command lookups with that queue (Idle polls that get a command back);
 *   - result reports (Acknowledged, each returning the next command), over T threads;
 *   - enqueue + deliver + acknowledge one command for 10,000 devices, end to end;
 *   - a policy save queueing one InstallProfile (~3 KB) per device for N devices;
 *   - retention of the finished rows.
 * It prints figures and asserts nothing about speed.  Devices are created with raw SQL
 * (store_exec_sql) because enrolling 100,000 devices one check-in at a time would measure
 * something else; check-ins are timed separately on a small sample.
 *
 *   bench_store [--backend sqlite|postgres|both] [--pg-url URL | --pg-url-file FILE]
 *               [--devices N] [--rounds R] [--idle-devices M] [--threads T] [--seconds S]
 * Without a PostgreSQL URL (or SCEPTER_BENCH_PG_URL), it starts a throwaway server with
 * scripts/pg-test.sh under the current directory and stops it at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "store/store.h"

#define NOW 1700000000

struct opts {
    const char *backend;
    char *pg_url;
    long devices, rounds, idle_devices, threads;
    double seconds;
};

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: with SQLite it is the store's work, less disturbed than wall
 * time by other load on a shared machine; with PostgreSQL it is the client's share only. */
static double cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct scepter_error *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static void dev_id(char *out, size_t size, const char *prefix, long i)
{
    snprintf(out, size, "%s-%07ld", prefix, i);
}

/* The certificate hash the setup SQL binds to device i of a set (see setup()). */
static void dev_hash(char out[65], long i)
{
    snprintf(out, 65, "%064lx", (unsigned long)i);
}

static void cmd_uuid(char out[37], long round, long i)
{
    char tmp[64];

    snprintf(tmp, sizeof(tmp), "%08lX-0000-4000-8000-%012lX", (unsigned long)round & 0xffffffffUL,
             (unsigned long)i & 0xffffffffffffUL);
    str_copy(out, 37, tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* Fixture data                                                                              */

/* Devices prefix-0000001.. enrolled, with tokens and certificate bindings (hash offset). */
static void setup_devices(struct store *s, bool pg, const char *prefix, long n, long offset)
{
    struct scepter_error err;
    char *sql;

    if (pg)
        sql = xasprintf(
            "INSERT INTO devices (id, type, serial_number, product_name, platform, topic,"
            " authenticated_at, created, updated)"
            " SELECT '%s-' || lpad(i::text, 7, '0'), 1, 'SN' || i,"
            "  CASE WHEN i %% 2 = 0 THEN 'iPhone14,2' ELSE 'iPad13,4' END,"
            "  CASE WHEN i %% 2 = 0 THEN 'ios' ELSE 'ipados' END,"
            "  'com.apple.mgmt.External.bench', %d, %d, %d FROM generate_series(1, %ld) i;"
            "INSERT INTO enrollments (id, device_id, type, topic, push_token, push_magic,"
            " token_valid, enabled, last_seen, token_updated_at, created)"
            " SELECT '%s-' || lpad(i::text, 7, '0'), '%s-' || lpad(i::text, 7, '0'), 1,"
            "  'com.apple.mgmt.External.bench', decode(lpad(to_hex(i), 64, '0'), 'hex'),"
            "  'magic', true, true, %d, %d, %d FROM generate_series(1, %ld) i;"
            "INSERT INTO cert_bindings (cert_hash, device_id, created)"
            " SELECT lpad(to_hex(i + %ld), 64, '0'), '%s-' || lpad(i::text, 7, '0'), %d"
            " FROM generate_series(1, %ld) i;"
            "ANALYZE",
            prefix, NOW, NOW, NOW, n, prefix, prefix, NOW, NOW, NOW, n, offset, prefix, NOW, n);
    else
        sql = xasprintf(
            "BEGIN;"
            "INSERT INTO devices (id, type, serial_number, product_name, platform, topic,"
            " authenticated_at, created, updated)"
            " WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %ld)"
            " SELECT printf('%s-%%07d', i), 1, 'SN' || i,"
            "  CASE WHEN i %% 2 = 0 THEN 'iPhone14,2' ELSE 'iPad13,4' END,"
            "  CASE WHEN i %% 2 = 0 THEN 'ios' ELSE 'ipados' END,"
            "  'com.apple.mgmt.External.bench', %d, %d, %d FROM g;"
            "INSERT INTO enrollments (id, device_id, type, topic, push_token, push_magic,"
            " token_valid, enabled, last_seen, token_updated_at, created)"
            " SELECT id, id, 1, topic, randomblob(32), 'magic', 1, 1, %d, %d, %d FROM devices"
            " WHERE id LIKE '%s-%%';"
            "INSERT INTO cert_bindings (cert_hash, device_id, created)"
            " WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %ld)"
            " SELECT printf('%%064x', i + %ld), printf('%s-%%07d', i), %d FROM g;"
            "COMMIT; ANALYZE",
            n, prefix, NOW, NOW, NOW, NOW, NOW, NOW, prefix, n, offset, prefix, NOW);
    if (store_exec_sql(s, sql, &err) != 0)
        die("setup", &err);
    free(sql);
}

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                   */

enum job { JOB_IDLE, JOB_LOOKUP, JOB_ACK, JOB_DELIVER_ACK, JOB_CHECKIN };

struct worker {
    const struct opts *o;
    const char *url;
    enum job job;
    const char *prefix;
    long first, count; /* devices first .. first+count-1 */
    long hash_offset;
    double deadline; /* 0 = run the whole range once */
    bool random;     /* pick devices at random (else in order) */
    long ops;
    long errors;
    char msg[256];
};

static int report(struct store *s, const char *prefix, long i, long offset, enum store_status st,
                  const char *uuid, struct store_next *next, struct scepter_error *err)
{
    char id[32], hash[65];
    enum store_report_outcome out;

    dev_id(id, sizeof(id), prefix, i);
    dev_hash(hash, i + offset);
    struct store_report rep = {.enrollment_id = id,
                               .device_id = id,
                               .cert_hash = hash,
                               .status = st,
                               .command_uuid = uuid,
                               .raw = uuid ? (const unsigned char *)"<plist/>" : NULL,
                               .raw_len = uuid ? 8 : 0};
    return store_connect(s, &rep, NOW + 10, next, &out, err);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct scepter_error err;
    struct store *s = NULL;
    struct store_next next;
    uint64_t x = 88172645463325252ULL ^ (uint64_t)(uintptr_t)w;
    long i = 0;
    int rc;

    if (store_open(w->url, &s, &err) != 0) {
        w->errors++;
        str_copy(w->msg, sizeof(w->msg), err.msg);
        return NULL;
    }
    for (;;) {
        long dev;
        if (w->deadline > 0 && (i & 15) == 0 && mono() >= w->deadline)
            break;
        if (w->random) {
            i++;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            dev = w->first + (long)(x % (uint64_t)w->count);
        } else {
            if (i >= w->count)
                break;
            dev = w->first + i++;
        }
        switch (w->job) {
        case JOB_IDLE:
        case JOB_LOOKUP:
            rc = report(s, w->prefix, dev, w->hash_offset, STORE_STATUS_IDLE, NULL, &next, &err);
            store_next_clear(&next);
            if (rc >= 0 && w->job == JOB_LOOKUP && rc != 1 && w->errors == 0)
                rc = -1, str_copy(err.msg, sizeof(err.msg), "no command in a full queue");
            w->ops++;
            break;
        case JOB_ACK: {
            /* Idle once, then acknowledge each command; every report returns the next. */
            int k;
            rc = report(s, w->prefix, dev, w->hash_offset, STORE_STATUS_IDLE, NULL, &next, &err);
            for (k = 0; rc == 1 && k < 1000; k++) {
                char uuid[37];
                memcpy(uuid, next.uuid, sizeof(uuid));
                store_next_clear(&next);
                rc = report(s, w->prefix, dev, w->hash_offset, STORE_STATUS_ACKNOWLEDGED, uuid,
                            &next, &err);
                w->ops++;
            }
            store_next_clear(&next);
            break;
        }
        case JOB_DELIVER_ACK: {
            rc = report(s, w->prefix, dev, w->hash_offset, STORE_STATUS_IDLE, NULL, &next, &err);
            if (rc == 1) {
                char uuid[37];
                memcpy(uuid, next.uuid, sizeof(uuid));
                store_next_clear(&next);
                rc = report(s, w->prefix, dev, w->hash_offset, STORE_STATUS_ACKNOWLEDGED, uuid,
                            &next, &err);
                if (rc == 0)
                    w->ops++;
            } else if (rc == 0) {
                rc = -1;
                str_copy(err.msg, sizeof(err.msg), "nothing delivered");
            }
            store_next_clear(&next);
            break;
        }
        case JOB_CHECKIN: {
            char id[32], hash[65];
            unsigned char tok[32];
            bool first;
            dev_id(id, sizeof(id), w->prefix, dev);
            dev_hash(hash, dev + w->hash_offset);
            struct store_authenticate a = {
                .device_id = id,
                .type = STORE_ENROLL_DEVICE,
                .topic = "com.apple.mgmt.External.bench",
                .cert_hash = hash,
                .facts = {.product_name = "iPhone14,2", .serial_number = "SN"}};
            memset(tok, (int)(dev & 0xff), sizeof(tok));
            struct store_token_update t = {.enrollment_id = id,
                                           .device_id = id,
                                           .type = STORE_ENROLL_DEVICE,
                                           .topic = "com.apple.mgmt.External.bench",
                                           .token = tok,
                                           .token_len = sizeof(tok),
                                           .push_magic = "magic"};
            rc = store_authenticate(s, &a, NOW, NULL, &err);
            if (rc == 0)
                rc = store_token_update(s, &t, NOW, &first, &err);
            w->ops++;
            break;
        }
        default:
            rc = -1;
        }
        if (rc < 0) {
            w->errors++;
            str_copy(w->msg, sizeof(w->msg), err.msg);
            if (w->errors > 10)
                break;
        }
    }
    store_close(s);
    return NULL;
}

/*
 * Run job on T threads over devices [first, first+count); returns ops and elapsed time.
 * random: every thread draws devices at random from the whole range until the time is up;
 * otherwise each thread walks its own slice once (or until the time is up, if timed).
 */
static long run(const struct opts *o, const char *url, enum job job, const char *prefix, long first,
                long count, long hash_offset, bool random, bool timed, double *elapsed,
                double *cpu_s)
{
    double cpu0 = cpu();
    long t, nthreads = o->threads, ops = 0;
    struct worker *w = xcalloc((size_t)nthreads, sizeof(*w));
    pthread_t *tid = xcalloc((size_t)nthreads, sizeof(*tid));
    double start = mono();

    for (t = 0; t < nthreads; t++) {
        long share = count / nthreads;
        w[t] = (struct worker){
            .o = o, .url = url, .job = job, .prefix = prefix, .hash_offset = hash_offset};
        if (random) {
            w[t].first = first;
            w[t].count = count;
            w[t].random = true;
        } else {
            w[t].first = first + t * share;
            w[t].count = t == nthreads - 1 ? count - t * share : share;
        }
        if (timed || random)
            w[t].deadline = start + o->seconds;
        if (pthread_create(&tid[t], NULL, work, &w[t]) != 0)
            die("pthread_create", NULL);
    }
    for (t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        ops += w[t].ops;
        if (w[t].errors) {
            fprintf(stderr, "bench_store: thread %ld: %ld errors, last: %s\n", t, w[t].errors,
                    w[t].msg);
            exit(1);
        }
    }
    *elapsed = mono() - start;
    *cpu_s = cpu() - cpu0;
    free(w);
    free(tid);
    return ops;
}

/* ---------------------------------------------------------------------------------------- */
/* One backend                                                                               */

static char **make_ids(const char *prefix, long n)
{
    char **ids = xcalloc((size_t)n, sizeof(*ids));
    char buf[32];

    for (long i = 0; i < n; i++) {
        dev_id(buf, sizeof(buf), prefix, i + 1);
        ids[i] = xstrdup(buf);
    }
    return ids;
}

static void free_ids(char **ids, long n)
{
    for (long i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* A ~3 KB InstallProfile plist, different per device (as a rendered SCEP profile is). */
static char *profile_plist(const char *uuid, const char *device, size_t *len)
{
    char *pad = xmalloc(2401);
    char *p;

    for (int i = 0; i < 2400; i++)
        pad[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7 +
                                                                                     device[10]) %
                                                                                    64];
    pad[2400] = '\0';
    p = xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
                  "<key>CommandUUID</key><string>%s</string><key>Command</key><dict>"
                  "<key>RequestType</key><string>InstallProfile</string><key>Payload</key>"
                  "<data>%s</data><key>Device</key><string>%s</string></dict></dict></plist>\n",
                  uuid, pad, device);
    free(pad);
    *len = strlen(p);
    return p;
}

static void bench_backend(const struct opts *o, const char *url, bool pg)
{
    struct scepter_error err;
    struct store *s = NULL;
    double t0, el, cs, c0;
    long ops, r, n = o->devices, m = o->idle_devices;
    char **ids;
    int64_t depth;

    printf("\n== %s (%ld devices, %ld rounds, %ld idle devices, %ld threads)\n",
           pg ? "postgres" : "sqlite", n, o->rounds, m, o->threads);
    if (store_open(url, &s, &err) != 0)
        die("store_open", &err);
    t0 = mono();
    setup_devices(s, pg, "BENCH", n, 0);
    setup_devices(s, pg, "IDLE", m, 10000000);
    printf("  setup (raw SQL)                          %10.2f s\n", mono() - t0);

    ops = run(o, url, JOB_CHECKIN, "CHECKIN", 1, m < 2000 ? m : 2000, 20000000, false, false, &el,
              &cs);
    printf("  Authenticate + TokenUpdate               %10.0f devices/s (%ld in %.2f s, "
           "cpu %.1f us each)\n",
           (double)ops / el, ops, el, cs * 1e6 / (double)ops);

    ops = run(o, url, JOB_IDLE, "IDLE", 1, m, 10000000, true, true, &el, &cs);
    printf("  Idle poll, empty queue (connect)         %10.0f /s (%ld in %.2f s, cpu %.1f us "
           "each)\n",
           (double)ops / el, ops, el, cs * 1e6 / (double)ops);

    ids = make_ids("BENCH", n);
    double first = 0, total = 0, first_cpu = 0;
    for (r = 0; r < o->rounds; r++) {
        struct store_command c = {.request_type = "DeviceInformation",
                                  .plist = (const unsigned char *)"<plist><dict/></plist>",
                                  .plist_len = 22};
        cmd_uuid(c.uuid, r + 1, 0);
        t0 = mono();
        c0 = cpu();
        if (store_enqueue(s, &c, (const char *const *)ids, (size_t)n, NOW + r, &err) != 0)
            die("store_enqueue", &err);
        el = mono() - t0;
        total += el;
        if (r == 0) {
            first = el;
            first_cpu = cpu() - c0;
        }
    }
    if (store_queue_depth(s, &depth, &err) != 0)
        die("store_queue_depth", &err);
    printf("  enqueue 1 command to %ld enrollments     %10.3f s first (cpu %.3f s), %.3f s mean "
           "of %ld\n",
           n, first, first_cpu, total / (double)o->rounds, o->rounds);
    printf("  queue depth                              %10lld rows\n", (long long)depth);

    ops = run(o, url, JOB_LOOKUP, "BENCH", 1, n, 0, true, true, &el, &cs);
    printf("  next-command lookup (Idle, full queue)   %10.0f /s (%ld in %.2f s, cpu %.1f us "
           "each)\n",
           (double)ops / el, ops, el, cs * 1e6 / (double)ops);

    ops = run(o, url, JOB_ACK, "BENCH", 1, n, 0, false, true, &el, &cs);
    printf("  result report (Acknowledged + next)      %10.0f /s (%ld in %.2f s, cpu %.1f us "
           "each)\n",
           (double)ops / el, ops, el, cs * 1e6 / (double)ops);

    /* End to end for 10,000 devices (the IDLE set, whose queues are empty). */
    {
        long k = m < 10000 ? m : 10000;
        char **kids = make_ids("IDLE", k);
        struct store_command c = {.request_type = "ProfileList",
                                  .plist = (const unsigned char *)"<plist><dict/></plist>",
                                  .plist_len = 22};
        cmd_uuid(c.uuid, 999, 1);
        t0 = mono();
        if (store_enqueue(s, &c, (const char *const *)kids, (size_t)k, NOW + 100, &err) != 0)
            die("store_enqueue", &err);
        double enq = mono() - t0;
        ops = run(o, url, JOB_DELIVER_ACK, "IDLE", 1, k, 10000000, false, false, &el, &cs);
        printf("  enqueue+deliver+ack for %ld devices    %10.3f s (enqueue %.3f s, "
               "%ld acks)\n",
               k, enq + el, enq, ops);
        free_ids(kids, k);
    }

    /* A policy save queueing one ~3 KB InstallProfile per device. */
    {
        struct store_command *cmds = xcalloc((size_t)n, sizeof(*cmds));
        char **plists = xcalloc((size_t)n, sizeof(*plists));
        struct store_policy p = {.uid = (char *)"bench-policy",
                                 .type = (char *)"scep",
                                 .platform = (char *)"ios",
                                 .name = (char *)"bench",
                                 .document = (char *)"{\"scep\":{\"url\":\"http://scep/\","
                                                     "\"key_size\":2048}}"};
        for (long i = 0; i < n; i++) {
            cmd_uuid(cmds[i].uuid, 5000, i + 1);
            cmds[i].request_type = "InstallProfile";
            plists[i] = profile_plist(cmds[i].uuid, ids[i], &cmds[i].plist_len);
            cmds[i].plist = (const unsigned char *)plists[i];
        }
        t0 = mono();
        c0 = cpu();
        if (store_policy_save(s, &p, cmds, (const char *const *)ids, (size_t)n, NOW + 200, &err) !=
            0)
            die("store_policy_save", &err);
        el = mono() - t0;
        printf("  policy save, %ld InstallProfile (%zu B)  %10.3f s (cpu %.3f s)\n", n,
               cmds[0].plist_len, el, cpu() - c0);
        struct store_policy_device_status *st;
        size_t nst;
        t0 = mono();
        if (store_policy_status(s, p.id, &st, &nst, &err) != 0)
            die("store_policy_status", &err);
        printf("  policy status for %zu devices           %10.3f s\n", nst, mono() - t0);
        store_policy_statuses_free(st, nst);
        struct store_push_target *pt;
        size_t npt;
        t0 = mono();
        if (store_push_targets(s, (const char *const *)ids, (size_t)n, &pt, &npt, &err) != 0)
            die("store_push_targets", &err);
        printf("  push targets for %zu enrollments        %10.3f s\n", npt, mono() - t0);
        store_push_targets_free(pt, npt);
        for (long i = 0; i < n; i++)
            free(plists[i]);
        free(plists);
        free(cmds);
    }

    {
        size_t deleted;
        t0 = mono();
        if (store_retention(s, NOW + 1000, 10000, &deleted, &err) != 0)
            die("store_retention", &err);
        printf("  retention of %zu finished rows          %10.3f s\n", deleted, mono() - t0);
    }
    free_ids(ids, n);
    store_close(s);
}

/* ---------------------------------------------------------------------------------------- */

static char *read_first_line(const char *path)
{
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t len = 0;

    if (file_read(path, 4096, &data, &len, &err) != 0)
        die(path, &err);
    while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
        data[--len] = '\0';
    return (char *)data;
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

int main(int argc, char **argv)
{
    struct opts o = {.backend = "both",
                     .devices = 100000,
                     .rounds = 10,
                     .idle_devices = 10000,
                     .threads = 2,
                     .seconds = 5};
    char *own_pg = NULL, *tmpdir = NULL;
    int i;

    log_init(LOG_LVL_WARN, LOG_FMT_TEXT);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t num;
        if (v == NULL) {
            fprintf(stderr, "bench_store: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--backend") == 0) {
            o.backend = v;
        } else if (strcmp(a, "--pg-url") == 0) {
            o.pg_url = xstrdup(v);
        } else if (strcmp(a, "--pg-url-file") == 0) {
            o.pg_url = read_first_line(v);
        } else if (strcmp(a, "--seconds") == 0) {
            o.seconds = strtod(v, NULL);
        } else if (str_to_i64(v, 1, 100000000, &num) == 0 && strcmp(a, "--devices") == 0) {
            o.devices = (long)num;
        } else if (str_to_i64(v, 1, 1000, &num) == 0 && strcmp(a, "--rounds") == 0) {
            o.rounds = (long)num;
        } else if (str_to_i64(v, 1, 100000000, &num) == 0 && strcmp(a, "--idle-devices") == 0) {
            o.idle_devices = (long)num;
        } else if (str_to_i64(v, 1, 64, &num) == 0 && strcmp(a, "--threads") == 0) {
            o.threads = (long)num;
        } else {
            fprintf(stderr, "bench_store: bad option %s %s\n", a, v);
            return 2;
        }
    }
    if (o.seconds <= 0 || o.seconds > 600) {
        fprintf(stderr, "bench_store: --seconds: want 0 < S <= 600\n");
        return 2;
    }

    if (strcmp(o.backend, "sqlite") == 0 || strcmp(o.backend, "both") == 0) {
        char tmpl[] = "/tmp/bench-store.XXXXXX";
        if (mkdtemp(tmpl) == NULL)
            die("mkdtemp", NULL);
        tmpdir = xstrdup(tmpl);
        char *url = xasprintf("sqlite:%s/bench.db", tmpdir);
        bench_backend(&o, url, false);
        free(url);
        char *rm = xasprintf("rm -rf '%s'", tmpdir);
        (void)sh(rm);
        free(rm);
    }
    if (strcmp(o.backend, "postgres") == 0 || strcmp(o.backend, "both") == 0) {
        PGconn *c;
        char *schema = xasprintf("bench_%ld", (long)getpid());
        char *sql, *url;
        if (o.pg_url == NULL && getenv("SCEPTER_BENCH_PG_URL"))
            o.pg_url = xstrdup(getenv("SCEPTER_BENCH_PG_URL"));
        if (o.pg_url == NULL) { /* our own throwaway server */
            const char *src = getenv("SCEPTER_SOURCE_DIR") ? getenv("SCEPTER_SOURCE_DIR") : ".";
            char cwd[4096];
            if (getcwd(cwd, sizeof(cwd)) == NULL)
                die("getcwd", NULL);
            own_pg = xasprintf("%s/pgbench-store", cwd);
            char *cmd = xasprintf("%s/scripts/pg-test.sh start '%s' >/dev/null", src, own_pg);
            if (sh(cmd) != 0) {
                fprintf(stderr, "bench_store: cannot start PostgreSQL (%s)\n", cmd);
                return 1;
            }
            free(cmd);
            char *f = xasprintf("%s/pg.url", own_pg);
            o.pg_url = read_first_line(f);
            free(f);
        }
        c = PQconnectdb(o.pg_url);
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
            return 1;
        }
        sql = xasprintf("SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE;"
                        " CREATE SCHEMA %s",
                        schema, schema);
        PQclear(PQexec(c, sql));
        free(sql);
        url = xasprintf("%s%soptions=-csearch_path%%3D%s", o.pg_url,
                        strchr(o.pg_url, '?') ? "&" : "?", schema);
        bench_backend(&o, url, true);
        sql = xasprintf("SET client_min_messages = warning; DROP SCHEMA %s CASCADE", schema);
        PQclear(PQexec(c, sql));
        free(sql);
        PQfinish(c);
        free(url);
        free(schema);
        if (own_pg) {
            const char *src = getenv("SCEPTER_SOURCE_DIR") ? getenv("SCEPTER_SOURCE_DIR") : ".";
            char *cmd = xasprintf("%s/scripts/pg-test.sh stop '%s' >/dev/null", src, own_pg);
            (void)sh(cmd);
            free(cmd);
            free(own_pg);
        }
    }
    free(o.pg_url);
    free(tmpdir);
    return 0;
}
