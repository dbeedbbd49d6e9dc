/*
 * bench_ddm — what Declarative Device Management costs the server.
 *
 *   bench_ddm [DEVICES]   (default 100000): computed as on a request (mdm/ddm.c), without
 *   sockets or the store.  Prints, for an iOS SCEP policy with "ddm": true whose subject uses
 *   %SerialNumber% (so every device's credential asset differs):
 *   - a policy save: new tokens for every device (the declarations and the
 *     DeclarativeManagement command each DDM device is queued), total and per device;
 *   - one declaration-items sync: the device's declarations and the reply's JSON;
 *   - the same for a policy without server-side variables (shared declarations).
 *
 *   bench_ddm --save sqlite|postgres DEVICES [--pg-url URL]: the whole thing with the store.
 *   DEVICES iOS 17 devices (raw SQL, as bench_store makes them) in one device group; the
 *   policy is created, then updated (a new challenge), through the API handler (mdm_route, as
 *   the HTTP layer calls it): each save computes and queues every device's
 *   DeclarativeManagement in one transaction.  Then declaration-items syncs through the
 *   check-in handler (mdm_ddm_checkin) for devices picked across the fleet.  Reported: wall
 *   time, this process's CPU (the server's side; SQLite runs in it) and, on PostgreSQL, the
 *   database's CPU (the server processes under the postmaster, read from /proc; only with a
 *   server this program starts).  Without --pg-url (or SCEPTER_BENCH_PG_URL) it starts a
 *   throwaway PostgreSQL with scripts/pg-test.sh and stops it at the end.
 *
 * Timing is reported, never asserted.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "config/config.h"
#include "mdm/commands_int.h"
#include "mdm/ddm_int.h"

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void policy(struct profile_policy *p, const char *subject)
{
    profile_policy_init(p);
    p->name = xstrdup("Bench DDM");
    p->platform = PROFILE_PLATFORM_IOS;
    p->ddm = true;
    p->scep_url = xstrdup("https://scep.example.com/scep");
    p->scep_challenge = xstrdup("s3cret");
    p->scep_subject = xstrdup(subject);
    p->key_size = 2048;
}

/* Every device's tokens after a save: declarations + the DeclarativeManagement command. */
static double save(const struct profile_policy *p, size_t n, char (*serial)[24])
{
    struct ddm_policy_in in = {"6f1c7f4e-1111-4222-8333-944444444444", 1700000000, p};
    struct scepter_error err;
    double t = cpu_us();
    /* as a save does: what the devices share is computed once */
    struct ddm_cache *cache = ddm_cache_new();
    for (size_t i = 0; i < n; i++) {
        struct profile_device d;
        struct ddm_set s;
        struct mdm_command cmd;
        memset(&d, 0, sizeof(d));
        d.udid = serial[i];
        d.serial_number = serial[i];
        d.platform = "ios";
        d.os_version = "17.5";
        if (ddm_compute_cached(&in, 1, &d, "com.scepter", "https://mdm.example.com", cache, &s,
                               NULL, &err) != 0) {
            fprintf(stderr, "bench_ddm: %s\n", err.msg);
            exit(1);
        }
        mdm_ddm_command(&s, &cmd);
        mdm_command_clear(&cmd);
        ddm_set_clear(&s);
    }
    ddm_cache_free(cache);
    return cpu_us() - t;
}

/* One declaration-items sync: compute and render the reply (as mdm_ddm_checkin does). */
static double items(const struct profile_policy *p, size_t n)
{
    struct ddm_policy_in in = {"6f1c7f4e-1111-4222-8333-944444444444", 1700000000, p};
    struct scepter_error err;
    double t = cpu_us();
    for (size_t i = 0; i < n; i++) {
        struct profile_device d;
        struct ddm_set s;
        memset(&d, 0, sizeof(d));
        d.udid = "00008110-000A1234ABCD0001";
        d.serial_number = "F2LXK0001";
        d.platform = "ios";
        d.os_version = "17.5";
        if (ddm_compute(&in, 1, &d, "com.scepter", "https://mdm.example.com", &s, NULL, &err) != 0)
            exit(1);
        json_t *decls = json_object();
        for (size_t k = 0; k < s.n; k++) {
            const char *key = ddm_kind_items_key(s.v[k].kind);
            if (json_object_get(decls, key) == NULL)
                json_object_set_new(decls, key, json_array());
            json_array_append_new(json_object_get(decls, key),
                                  json_pack("{s:s,s:s}", "Identifier", s.v[k].identifier,
                                            "ServerToken", s.v[k].token));
        }
        json_t *reply = json_pack("{s:o,s:s}", "Declarations", decls, "DeclarationsToken", s.token);
        char *text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
        free(text);
        json_decref(reply);
        ddm_set_clear(&s);
    }
    return cpu_us() - t;
}

/* ---------------------------------------------------------------------------------------- */
/* With the store                                                                            */

#define NOW     1700000000
#define API_KEY "bench-ddm-api-key-0123456789abcdef"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What to remove at exit, even after die(): the throwaway PostgreSQL and SQLite directory. */
static struct {
    const char *src, *own_pg, *tmpdir;
} g_cleanup;

static void cleanup(void)
{
    if (g_cleanup.tmpdir) {
        char *rm = xasprintf("rm -rf '%s'", g_cleanup.tmpdir);
        if (system(rm) != 0)
            fprintf(stderr, "bench_ddm: %s failed\n", rm);
        free(rm);
    }
    if (g_cleanup.own_pg) {
        char *cmd = xasprintf("%s/scripts/pg-test.sh stop '%s' >/dev/null", g_cleanup.src,
                              g_cleanup.own_pg);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_ddm: %s failed\n", cmd);
        free(cmd);
    }
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_ddm: %s: %s\n", what, msg ? msg : "failed");
    exit(1);
}

/* CPU seconds of the postmaster and its children (the database), 0 when pid is 0. */
static double db_cpu(long postmaster)
{
    long tck = sysconf(_SC_CLK_TCK);
    double total = 0;
    DIR *d;
    struct dirent *e;

    if (postmaster <= 0 || (d = opendir("/proc")) == NULL)
        return 0;
    for (int guard = 0; guard < 1000000 && (e = readdir(d)) != NULL; guard++) {
        char path[64], buf[1024];
        long pid = strtol(e->d_name, NULL, 10), ppid = 0;
        unsigned long ut = 0, st = 0;
        FILE *f;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (p == NULL || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid,
                                &ut, &st) != 3)
            continue;
        if (pid == postmaster || ppid == postmaster)
            total += (double)(ut + st) / (double)tck;
    }
    closedir(d);
    return total;
}

static const char *hdr(const void *arg, const char *name)
{
    (void)arg;
    return strcasecmp(name, "Authorization") == 0 ? "Bearer " API_KEY : NULL;
}

/* One API call through mdm_route; the status. */
static int api(struct mdm_ctx *ctx, enum mdm_method m, const char *path, const char *body,
               char **out)
{
    struct mdm_request req;
    struct mdm_reply reply;
    int st;

    memset(&req, 0, sizeof(req));
    req.method = m;
    req.path = path;
    req.body = (const unsigned char *)body;
    req.body_len = body ? strlen(body) : 0;
    req.header = hdr;
    req.peer_addr = "127.0.0.1";
    req.tls = true;
    str_copy(req.id, sizeof(req.id), "bench");
    mdm_reply_init(&reply);
    mdm_route(ctx, &req, NOW, &reply);
    st = reply.status;
    if (out)
        *out = xstrndup(reply.body.data ? reply.body.data : "", reply.body.len);
    mdm_reply_free(&reply);
    return st;
}

/* Devices first..last (in one statement: the store gives a script 5 s, so the fleet is made in
 * slices of 10,000). */
static void setup_slice(struct store *s, bool pg, long first, long last)
{
    struct scepter_error err;
    char *sql;

    if (pg)
        sql = xasprintf(
            "INSERT INTO devices (id, type, serial_number, product_name, os_version, platform,"
            " topic, authenticated_at, created, updated)"
            " SELECT 'DDM-' || lpad(i::text, 7, '0'), 1, 'SN' || i, 'iPhone15,2', '17.5', 'ios',"
            "  'com.apple.mgmt.External.bench', %d, %d, %d FROM generate_series(%ld, %ld) i;"
            "INSERT INTO enrollments (id, device_id, type, topic, push_token, push_magic,"
            " token_valid, enabled, last_seen, token_updated_at, created)"
            " SELECT 'DDM-' || lpad(i::text, 7, '0'), 'DDM-' || lpad(i::text, 7, '0'), 1,"
            "  'com.apple.mgmt.External.bench', decode(lpad(to_hex(i), 64, '0'), 'hex'),"
            "  'magic', true, true, %d, %d, %d FROM generate_series(%ld, %ld) i;"
            "INSERT INTO group_members (group_id, device_id)"
            " SELECT (SELECT id FROM device_groups WHERE name = 'bench-ddm'),"
            "  'DDM-' || lpad(i::text, 7, '0') FROM generate_series(%ld, %ld) i",
            NOW, NOW, NOW, first, last, NOW, NOW, NOW, first, last, first, last);
    else
        sql = xasprintf(
            "BEGIN;"
            "INSERT INTO devices (id, type, serial_number, product_name, os_version, platform,"
            " topic, authenticated_at, created, updated)"
            " WITH RECURSIVE g(i) AS (SELECT %ld UNION ALL SELECT i + 1 FROM g WHERE i < %ld)"
            " SELECT printf('DDM-%%07d', i), 1, 'SN' || i, 'iPhone15,2', '17.5', 'ios',"
            "  'com.apple.mgmt.External.bench', %d, %d, %d FROM g;"
            "INSERT INTO enrollments (id, device_id, type, topic, push_token, push_magic,"
            " token_valid, enabled, last_seen, token_updated_at, created)"
            " WITH RECURSIVE g(i) AS (SELECT %ld UNION ALL SELECT i + 1 FROM g WHERE i < %ld)"
            " SELECT printf('DDM-%%07d', i), printf('DDM-%%07d', i), 1,"
            "  'com.apple.mgmt.External.bench', randomblob(32), 'magic', 1, 1, %d, %d, %d FROM g;"
            "INSERT INTO group_members (group_id, device_id)"
            " WITH RECURSIVE g(i) AS (SELECT %ld UNION ALL SELECT i + 1 FROM g WHERE i < %ld)"
            " SELECT (SELECT id FROM device_groups WHERE name = 'bench-ddm'),"
            "  printf('DDM-%%07d', i) FROM g;"
            "COMMIT",
            first, last, NOW, NOW, NOW, first, last, NOW, NOW, NOW, first, last);
    if (store_exec_sql(s, sql, &err) != 0)
        die("setup", err.msg);
    free(sql);
}

static void setup_fleet(struct store *s, bool pg, long n)
{
    struct scepter_error err;
    char *sql =
        xasprintf("INSERT INTO device_groups (name, created) VALUES ('bench-ddm', %d)", NOW);

    if (store_exec_sql(s, sql, &err) != 0)
        die("setup", err.msg);
    free(sql);
    for (long first = 1; first <= n; first += 10000)
        setup_slice(s, pg, first, first + 9999 < n ? first + 9999 : n);
    if (store_exec_sql(s, "ANALYZE", &err) != 0)
        die("setup", err.msg);
}

static const char *policy_body(const char *challenge, char *buf, size_t len)
{
    snprintf(buf, len,
             "{\"name\":\"Bench DDM\",\"platform\":\"ios\",\"ddm\":true,"
             "\"scep\":{\"url\":\"https://scep.example.com/scep\",\"challenge\":\"%s\","
             "\"key_size\":2048,\"subject\":\"/O=Example/CN=%%SerialNumber%%/\"},"
             "\"targets\":{\"device_groups\":[\"bench-ddm\"]}}",
             challenge);
    return buf;
}

/* One save timed: wall, this process's CPU, the database's. */
static void timed_save(struct mdm_ctx *ctx, long pm, long n, enum mdm_method m, const char *path,
                       const char *body, const char *label, char **out)
{
    double t0 = mono(), c0 = cpu_us(), d0 = db_cpu(pm);
    int st = api(ctx, m, path, body, out);
    double wall = mono() - t0, cpu = (cpu_us() - c0) / 1e6, db = db_cpu(pm) - d0;

    if (st != 200 && st != 201)
        die(label, *out);
    /* "name   value unit [target]" lines, as scripts/bench.sh reads them; the target of a save
     * is the one a profile policy's save for 100,000 devices has */
    printf("  %s -> new tokens for all %ld DDM devices, wall   %.2f s <=5\n", label, n, wall);
    printf("  %s, server CPU   %.2f s\n", label, cpu);
    printf("  %s, server CPU per device   %.1f us\n", label, cpu * 1e6 / (double)n);
    if (pm > 0) {
        printf("  %s, database CPU   %.2f s\n", label, db);
        printf("  %s, database CPU per device   %.1f us\n", label, db * 1e6 / (double)n);
    }
}

static int save_mode(const char *backend, long n, const char *pg_url)
{
    struct scepter_error err;
    struct cfg *cfg = cfg_new();
    struct mdm_server *srv;
    struct store *s = NULL;
    struct mdm_ctx ctx;
    bool pg = strcmp(backend, "postgres") == 0;
    char *url = NULL, *own = NULL, *tmp = NULL, *out = NULL, body[1024];
    long pm = 0;
    const char *src = getenv("SCEPTER_SOURCE_DIR") ? getenv("SCEPTER_SOURCE_DIR") : ".";

    log_init(LOG_LVL_WARN, LOG_FMT_TEXT);
    atexit(cleanup);
    if (cfg_set(cfg, "public_url", "https://mdm.example.com", "bench", &err) != 0 ||
        cfg_set(cfg, "api_key", API_KEY, "bench", &err) != 0)
        die("cfg", err.msg);
    if ((srv = mdm_server_core_new(cfg, &err)) == NULL)
        die("mdm_server_core_new", err.msg);
    if (pg) {
        if (pg_url == NULL)
            pg_url = getenv("SCEPTER_BENCH_PG_URL");
        if (pg_url == NULL) { /* our own throwaway server: its CPU can be read */
            char cwd[4096];
            unsigned char *data = NULL;
            size_t len = 0;
            if (getcwd(cwd, sizeof(cwd)) == NULL)
                die("getcwd", NULL);
            own = xasprintf("%s/pgbench-ddm", cwd);
            char *cmd = xasprintf("%s/scripts/pg-test.sh start '%s' >/dev/null", src, own);
            g_cleanup.src = src;
            g_cleanup.own_pg = own;
            if (system(cmd) != 0)
                die("cannot start PostgreSQL", cmd);
            free(cmd);
            char *f = xasprintf("%s/pg.url", own);
            if (file_read(f, 4096, &data, &len, &err) != 0)
                die(f, err.msg);
            free(f);
            url = xstrndup((const char *)data, strcspn((const char *)data, "\n"));
            free(data);
            f = xasprintf("%s/cluster", own);
            if (file_read(f, 4096, &data, &len, &err) == 0) {
                char *cl = xstrndup((const char *)data, strcspn((const char *)data, "\n"));
                char *pidf = xasprintf("%s/data/postmaster.pid", cl);
                unsigned char *pd = NULL;
                size_t pl = 0;
                if (file_read(pidf, 4096, &pd, &pl, &err) == 0)
                    pm = strtol((const char *)pd, NULL, 10);
                free(pd);
                free(pidf);
                free(cl);
                free(data);
            }
            free(f);
        } else {
            url = xstrdup(pg_url);
        }
    } else {
        char tmpl[] = "/tmp/bench-ddm.XXXXXX";
        if (mkdtemp(tmpl) == NULL)
            die("mkdtemp", NULL);
        tmp = xstrdup(tmpl);
        g_cleanup.tmpdir = tmp;
        url = xasprintf("sqlite:%s/bench.db", tmp);
    }
    if (store_open(url, &s, &err) != 0)
        die("store_open", err.msg);
    memset(&ctx, 0, sizeof(ctx));
    ctx.srv = srv;
    ctx.conf = srv->conf;
    ctx.cfg = srv->conf->cfg;
    ctx.store = s;

    double load[1] = {0};
    if (getloadavg(load, 1) != 1)
        load[0] = -1;
    printf("== ddm-save-%s (%ld DDM devices in one group; %ld CPUs, load average %.1f)\n", backend,
           n, sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    double t0 = mono();
    setup_fleet(s, pg, n);
    printf("  setup (raw SQL)   %.2f s\n", mono() - t0);

    timed_save(&ctx, pm, n, MDM_POST, "/v1/policies", policy_body("s3cret", body, sizeof(body)),
               "policy created", &out);
    json_t *j = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(j, "id"));
    long long queued = json_integer_value(json_object_get(j, "queued_installs"));
    json_decref(j);
    free(out);
    out = NULL;
    if (queued != n)
        die("policy created", "not every device got its DeclarativeManagement");
    char path[64];
    snprintf(path, sizeof(path), "/v1/policies/%lld", id);
    timed_save(&ctx, pm, n, MDM_PUT, path, policy_body("rotated", body, sizeof(body)),
               "policy updated", &out);
    free(out);

    /* declaration-items syncs through the check-in handler, devices across the fleet */
    long m = n < 2000 ? n : 2000;
    double w0 = mono(), c0 = cpu_us(), d0 = db_cpu(pm);
    for (long i = 0; i < m; i++) {
        struct mdm_ids ids;
        struct mdm_reply reply;
        plist_t b = plist_new_dict();
        memset(&ids, 0, sizeof(ids));
        snprintf(ids.device_id, sizeof(ids.device_id), "DDM-%07ld", 1 + (i * 7919) % n);
        str_copy(ids.enrollment_id, sizeof(ids.enrollment_id), ids.device_id);
        ids.type = STORE_ENROLL_DEVICE;
        plistx_set_string(b, "Endpoint", "declaration-items");
        mdm_reply_init(&reply);
        mdm_ddm_checkin(&ctx, b, &ids, NOW, &reply);
        if (reply.status != 200)
            die("declaration-items", reply.body.data);
        mdm_reply_free(&reply);
        plist_free(b);
    }
    double wall = mono() - w0, cpu = (cpu_us() - c0) / 1e6, db = db_cpu(pm) - d0;
    printf("  declaration-items sync, server CPU   %.1f us <=500\n", cpu * 1e6 / (double)m);
    if (pm > 0)
        printf("  declaration-items sync, database CPU   %.1f us\n", db * 1e6 / (double)m);
    printf("  declaration-items sync, wall   %.1f us\n", wall * 1e6 / (double)m);

    store_close(s);
    mdm_server_core_free(srv);
    cleanup();
    memset(&g_cleanup, 0, sizeof(g_cleanup));
    free(own);
    free(tmp);
    free(url);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = 100000, m;
    char(*serial)[24];
    struct profile_policy per_device, shared;
    double us;

    if (argc > 3 && strcmp(argv[1], "--save") == 0) {
        long devices = strtol(argv[3], NULL, 10);
        const char *pg_url = argc > 5 && strcmp(argv[4], "--pg-url") == 0 ? argv[5] : NULL;
        if ((strcmp(argv[2], "sqlite") != 0 && strcmp(argv[2], "postgres") != 0) || devices <= 0) {
            fprintf(stderr, "usage: bench_ddm --save sqlite|postgres DEVICES [--pg-url URL]\n");
            return 2;
        }
        return save_mode(argv[2], devices, pg_url);
    }
    if (argc > 1) {
        char *end = NULL;
        n = (size_t)strtoull(argv[1], &end, 10);
        if (end == argv[1] || *end || n == 0) {
            fprintf(stderr, "usage: bench_ddm [DEVICES]\n");
            return 2;
        }
    }
    m = n < 10000 ? n : 10000;
    serial = xcalloc(n, sizeof(*serial));
    for (size_t i = 0; i < n; i++)
        snprintf(serial[i], sizeof(serial[i]), "F2L%09zu", i % 1000000000u);
    policy(&per_device, "/O=Example/CN=%SerialNumber%/");
    policy(&shared, "/O=Example/CN=Wi-Fi/");

    printf("== ddm (%zu devices, CPU time)\n", n);
    us = save(&per_device, n, serial);
    printf("  policy save, new tokens for every device   %8.1f ms total  (%.2f us/device)\n",
           us / 1e3, us / (double)n);
    us = save(&shared, n, serial);
    printf("  policy save, shared declarations           %8.1f ms total  (%.2f us/device)\n",
           us / 1e3, us / (double)n);
    us = items(&per_device, m);
    printf("  declaration-items sync, per-device asset   %8.2f us/sync\n", us / (double)m);
    us = items(&shared, m);
    printf("  declaration-items sync, shared             %8.2f us/sync\n", us / (double)m);
    profile_policy_clear(&per_device);
    profile_policy_clear(&shared);
    free(serial);
    return 0;
}
