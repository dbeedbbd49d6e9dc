/*
 * Operations: webhook delivery through a receiver that fails first and then recovers (nothing
 * lost, every signature verifies), configuration reload on SIGHUP, and two scepter processes
 * on one PostgreSQL behaving as one server (requests spread over both, no command lost or
 * executed twice, background jobs run once).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

/* ---------------------------------------------------------------------------------------- */
/* A webhook receiver: answers 500 to the first `fail_first` requests, then 200.             */

#define RECV_MAX 512

struct receiver {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    int fail_first;
    pthread_mutex_t lock;
    int requests;
    char *bodies[RECV_MAX]; /* accepted deliveries */
    char *signatures[RECV_MAX];
    int naccepted;
};

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;

    while (!atomic_load(&r->stop)) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {5, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        struct buf in = BUF_INIT;
        char chunk[8192];
        ssize_t n;
        size_t need = 0;
        char *hdr_end = NULL;
        while ((n = read(c, chunk, sizeof(chunk))) > 0) {
            buf_append(&in, chunk, (size_t)n);
            if (!hdr_end && (hdr_end = strstr(in.data, "\r\n\r\n")) != NULL) {
                const char *cl = strcasestr(in.data, "Content-Length:");
                need = (size_t)(hdr_end - in.data) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            }
            if (hdr_end && in.len >= need)
                break;
        }
        pthread_mutex_lock(&r->lock);
        bool fail = r->requests++ < r->fail_first;
        if (!fail && hdr_end && r->naccepted < RECV_MAX) {
            hdr_end = strstr(in.data, "\r\n\r\n");
            const char *sig = strcasestr(in.data, "X-Scepter-Signature:");
            r->bodies[r->naccepted] = xstrdup(hdr_end + 4);
            r->signatures[r->naccepted] =
                sig ? xstrndup(sig + 21, strcspn(sig + 21, "\r\n")) : xstrdup("");
            r->naccepted++;
        }
        pthread_mutex_unlock(&r->lock);
        const char *reply = fail ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n"
                                 : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close"
                                   "\r\n\r\nok";
        ssize_t w = write(c, reply, strlen(reply));
        (void)w;
        buf_free(&in);
        close(c);
    }
    return NULL;
}

static void receiver_start(struct receiver *r, int fail_first)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->fail_first = fail_first;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(r->fd, 64), 0);
    getsockname(r->fd, (struct sockaddr *)&sa, &len);
    r->port = ntohs(sa.sin_port);
    struct timeval tv = {0, 200000}; /* so accept() notices stop */
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_create(&r->thread, NULL, receiver_main, r);
}

static void receiver_stop(struct receiver *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->fd);
    for (int i = 0; i < r->naccepted; i++) {
        free(r->bodies[i]);
        free(r->signatures[i]);
    }
    pthread_mutex_destroy(&r->lock);
}

static int accepted(struct receiver *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->naccepted;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Wait (bounded) for at least n accepted deliveries. */
static int wait_accepted(struct receiver *r, int n, int seconds)
{
    for (int i = 0; i < seconds * 10 && accepted(r) < n; i++)
        usleep(100000);
    return accepted(r);
}

static bool signature_ok(const char *secret, const char *body, const char *sig)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1], want[2 * EVP_MAX_MD_SIZE + 16];

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), md,
         &len);
    hex_encode_to(md, len, hex, false);
    snprintf(want, sizeof(want), "sha256=%s", hex);
    return strcmp(want, sig) == 0;
}

/* Count accepted deliveries per event_id; fail on a duplicate. */
static void assert_unique_events(struct receiver *r, int expect)
{
    json_t *seen = json_object();
    for (int i = 0; i < r->naccepted; i++) {
        json_t *ev = json_loads(r->bodies[i], 0, NULL);
        cr_assert_not_null(ev, "not JSON: %s", r->bodies[i]);
        const char *id = json_string_value(json_object_get(ev, "event_id"));
        cr_assert_not_null(id);
        cr_assert_null(json_object_get(seen, id), "event %s delivered twice", id);
        json_object_set_new(seen, id, json_true());
        json_decref(ev);
    }
    cr_assert_eq((int)json_object_size(seen), expect);
    json_decref(seen);
}

Test(ops, webhooks_survive_a_failing_receiver_and_are_signed)
{
    struct h_server S;
    struct receiver r;

    receiver_start(&r, 3); /* the first three deliveries fail */
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\n"
                            "webhook_secret = hook-secret\n",
                            r.port);
    struct h_opts o = {.extra = extra};
    h_start(&S, &o);
    struct tu_cert a = h_device_cert(&S, "WH-A"), b = h_device_cert(&S, "WH-B");
    h_enroll(&S, &a, "WH-A", "MacBookPro18,3");
    h_enroll(&S, &b, "WH-B", "iPhone14,2");
    /* a command result too */
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/WH-A/commands",
                       "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false}", &j),
                 201);
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    struct tu_http_resp resp;
    char *ack = h_plist("Status", "Acknowledged", "UDID", "WH-A", "CommandUUID", uuid, NULL);
    cr_assert_eq(h_connect(&S, &a, ack, &resp), 0);
    cr_assert_eq(resp.status, 200);
    tu_http_resp_free(&resp);

    /* 2 x (Authenticate, TokenUpdate) + 1 result = 5 events, despite 3 failures first */
    cr_assert_eq(wait_accepted(&r, 5, 90), 5, "events lost: %d delivered", accepted(&r));
    usleep(1500000); /* nothing more is coming */
    cr_assert_eq(accepted(&r), 5);
    cr_assert_geq(r.requests, 8, "the receiver failed 3 times and was retried");
    assert_unique_events(&r, 5);
    int topics[3] = {0, 0, 0};
    for (int i = 0; i < r.naccepted; i++) {
        cr_assert(signature_ok("hook-secret", r.bodies[i], r.signatures[i]), "signature of %s: %s",
                  r.bodies[i], r.signatures[i]);
        json_t *ev = json_loads(r.bodies[i], 0, NULL);
        const char *t = json_string_value(json_object_get(ev, "topic"));
        if (strcmp(t, "mdm.Authenticate") == 0) {
            topics[0]++;
            json_t *ce = json_object_get(ev, "checkin_event");
            cr_assert_not_null(json_object_get(ce, "raw_payload"));
            cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ce, "ids"), "type")),
                             "Device");
        } else if (strcmp(t, "mdm.TokenUpdate") == 0) {
            topics[1]++;
        } else if (strcmp(t, "mdm.Connect") == 0) {
            topics[2]++;
            json_t *ae = json_object_get(ev, "acknowledge_event");
            cr_assert_str_eq(json_string_value(json_object_get(ae, "command_uuid")), uuid);
            cr_assert_str_eq(json_string_value(json_object_get(ae, "status")), "Acknowledged");
        }
        json_decref(ev);
    }
    cr_assert_eq(topics[0], 2);
    cr_assert_eq(topics[1], 2);
    cr_assert_eq(topics[2], 1);
    /* the metrics saw the failures and the deliveries */
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &resp), 0);
    cr_assert(strstr((char *)resp.body, "scepter_webhooks_total{result=\"delivered\"} 5") != NULL,
              "%s", resp.body);
    cr_assert(strstr((char *)resp.body, "scepter_outbox_pending 0") != NULL);
    tu_http_resp_free(&resp);

    free(ack);
    free(uuid);
    tu_cert_free(&a);
    tu_cert_free(&b);
    h_stop(&S);
    receiver_stop(&r);
    free(extra);
}

static bool log_contains(const struct h_server *s, const char *needle)
{
    char *log = tu_proc_log(&s->proc);
    bool found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

Test(ops, sighup_applies_what_it_can_and_names_what_needs_a_restart)
{
    struct h_server S;
    struct h_opts o = {.extra = "log_level = info\n"};
    h_start(&S, &o);
    struct tu_cert a = h_device_cert(&S, "HUP-A");
    h_enroll(&S, &a, "HUP-A", "MacBookPro18,3");
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", "HUP-A", NULL);

    cr_assert_eq(h_connect(&S, &a, idle, &r), 0);
    tu_http_resp_free(&r);
    usleep(200000);
    cr_assert_not(log_contains(&S, "type=Idle"), "empty polls are debug lines");

    /* later lines win in the INI file */
    h_conf_append(&S,
                  "log_level = debug\napi_key = rotated-key-0123456789\nlisten = 127.0.0.1:1\n");
    kill(S.proc.pid, SIGHUP);
    for (int i = 0; i < 50 && !log_contains(&S, "event=reload") && !log_contains(&S, " reload ");
         i++)
        usleep(100000);
    cr_assert(log_contains(&S, "listen changed but needs a restart"),
              "listen changes need a restart, and the warning names it");
    cr_assert_eq(h_connect(&S, &a, idle, &r), 0);
    cr_assert_eq(r.status, 200, "still serving on the old listener");
    tu_http_resp_free(&r);
    usleep(200000);
    cr_assert(log_contains(&S, "type=Idle"), "log_level = debug applied without a restart");
    /* the bootstrap API key was rotated */
    cr_assert_eq(h_api(&S, "GET", "/v1/devices", NULL, NULL), 401, "the old key is gone");
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices",
                         "Authorization: Bearer rotated-key-0123456789\r\n", NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    /* a broken file is refused and the running configuration kept */
    h_conf_append(&S, "workers = many\n");
    kill(S.proc.pid, SIGHUP);
    for (int i = 0; i < 50 && !log_contains(&S, "not reloaded"); i++)
        usleep(100000);
    cr_assert(log_contains(&S, "not reloaded"));
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/v1/devices",
                         "Authorization: Bearer rotated-key-0123456789\r\n", NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(idle);
    tu_cert_free(&a);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* Two instances on one PostgreSQL                                                           */

#define SO_DEVICES  12
#define SO_COMMANDS 4

struct so_ctx {
    struct h_server *inst[2];
    struct tu_cert *ids;
    int worker;
    int executed;   /* commands this thread's devices received */
    int duplicates; /* a command received twice by the same device */
};

/* Drain a device's queue, sending each request to a random instance (a load balancer). */
static void drain(struct so_ctx *x, int dev, unsigned *seed, char (*seen)[64], int *nseen)
{
    char udid[32], status[16] = "Idle", uuid[64] = "";
    snprintf(udid, sizeof(udid), "SO-%02d", dev);
    for (int round = 0; round < 4 * SO_COMMANDS + 4; round++) {
        struct h_server *s = x->inst[rand_r(seed) % 2];
        struct tu_http_resp r;
        char *body = *uuid ? h_plist("Status", status, "UDID", udid, "CommandUUID", uuid, NULL)
                           : h_plist("Status", "Idle", "UDID", udid, NULL);
        int rc = h_connect(s, &x->ids[dev], body, &r);
        free(body);
        if (rc != 0)
            continue;
        if (r.status == 200 && r.body_len == 0) {
            tu_http_resp_free(&r);
            return;
        }
        plist_t d = NULL;
        const char *u = NULL;
        if (r.status != 200 || plistx_parse_dict(r.body, r.body_len, &d, NULL) != 0 ||
            plistx_get_string(d, "CommandUUID", true, &u, NULL) != 0) {
            tu_http_resp_free(&r);
            plist_free(d);
            continue;
        }
        bool dup = false;
        for (int k = 0; k < *nseen; k++)
            dup = dup || strcmp(seen[k], u) == 0;
        if (dup)
            x->duplicates++;
        else if (*nseen < 64)
            snprintf(seen[(*nseen)++], 64, "%s", u);
        x->executed++;
        snprintf(uuid, sizeof(uuid), "%s", u);
        snprintf(status, sizeof(status), "Acknowledged");
        plist_free(d);
        tu_http_resp_free(&r);
    }
}

static void *device_thread(void *arg)
{
    struct so_ctx *x = arg;
    unsigned seed = 1234u + (unsigned)x->worker;
    for (int dev = x->worker; dev < SO_DEVICES; dev += 2) {
        char seen[64][64];
        int nseen = 0;
        drain(x, dev, &seed, seen, &nseen);
    }
    return NULL;
}

Test(ops, two_instances_on_one_postgres_behave_as_one_server)
{
    struct h_server A, B;
    struct receiver r;
    const char *backend = getenv("SCEPTER_TEST_STORE");

    if (backend == NULL || strcmp(backend, "postgres") != 0) {
        cr_skip_test("scale-out needs PostgreSQL (the postgres run covers it)");
        return;
    }
    receiver_start(&r, 0);
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\nwebhook_secret = s\n", r.port);
    struct h_opts o = {.extra = extra};
    h_start(&A, &o);
    h_start_peer(&B, &A, &o);

    /* devices enroll through either instance */
    struct tu_cert ids[SO_DEVICES];
    for (int i = 0; i < SO_DEVICES; i++) {
        char udid[32];
        snprintf(udid, sizeof(udid), "SO-%02d", i);
        ids[i] = h_device_cert(&A, udid);
        h_enroll(i % 2 ? &B : &A, &ids[i], udid, i % 3 ? "iPhone14,2" : "MacBookPro18,3");
    }
    /* commands queued through both instances */
    for (int c = 0; c < SO_COMMANDS; c++) {
        json_t *body = json_pack("{s:o,s:{s:s},s:b}", "device_groups", json_array(), "command",
                                 "request_type", "DeviceInformation", "push", 0);
        json_t *devs = json_array();
        for (int i = 0; i < SO_DEVICES; i++) {
            char udid[32];
            snprintf(udid, sizeof(udid), "SO-%02d", i);
            json_array_append_new(devs, json_string(udid));
        }
        json_object_set_new(body, "devices", devs);
        char *text = json_dumps(body, 0);
        cr_assert_eq(h_api(c % 2 ? &B : &A, "POST", "/v1/commands", text, NULL), 201);
        free(text);
        json_decref(body);
    }
    /* two threads of devices, each request to a random instance */
    struct so_ctx x[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        memset(&x[k], 0, sizeof(x[k]));
        x[k].inst[0] = &A;
        x[k].inst[1] = &B;
        x[k].ids = ids;
        x[k].worker = k;
        pthread_create(&t[k], NULL, device_thread, &x[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    cr_assert_eq(x[0].duplicates + x[1].duplicates, 0, "a command was delivered twice");
    cr_assert_eq(x[0].executed + x[1].executed, SO_DEVICES * SO_COMMANDS, "commands lost");
    /* every queue is empty, every result recorded, through either instance */
    json_t *j = NULL;
    for (int i = 0; i < SO_DEVICES; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/devices/SO-%02d/commands?all=true", i);
        cr_assert_eq(h_api(i % 2 ? &A : &B, "GET", path, NULL, &j), 200);
        size_t k;
        json_t *item;
        int acked = 0;
        json_array_foreach(json_object_get(j, "commands"), k, item) acked +=
            strcmp(json_string_value(json_object_get(item, "status")), "Acknowledged") == 0;
        cr_assert_eq(acked, SO_COMMANDS, "SO-%02d: %s", i, h_json(j));
        json_decref(j);
    }
    /* background jobs run once: each webhook event delivered exactly once although both
     * instances poll the outbox */
    int expect = SO_DEVICES * 2 + SO_DEVICES * SO_COMMANDS;
    cr_assert_eq(wait_accepted(&r, expect, 60), expect);
    usleep(2500000);
    assert_unique_events(&r, expect);

    for (int i = 0; i < SO_DEVICES; i++)
        tu_cert_free(&ids[i]);
    h_stop_peer(&B);
    h_stop(&A);
    receiver_stop(&r);
    free(extra);
}

/* scepter_cache_bytes{cache="certificates"} from /metrics; -1 when absent. */
static long long cert_cache_bytes(struct h_server *s, const char *which)
{
    struct tu_http_resp resp;
    char needle[96];
    long long v = -1;
    const char *p;

    cr_assert_eq(tu_http(s->port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &resp), 0);
    snprintf(needle, sizeof(needle), "\nscepter_cache_bytes{cache=\"%s\"} ", which);
    if ((p = strstr((const char *)resp.body, needle)) != NULL)
        v = strtoll(p + strlen(needle), NULL, 10);
    tu_http_resp_free(&resp);
    return v;
}

Test(ops, certificate_cache_is_bounded_in_bytes_and_reported)
{
    struct h_server S;
    /* One worker, room for one decoded certificate (its DER plus ~4.6 KB), not two. */
    struct h_opts o = {.extra = "workers = 1\nidentity_cache_bytes = 6000\n"};
    h_start(&S, &o);
    cr_assert_eq(cert_cache_bytes(&S, "certificates"), 0);
    /* the verified-identity table of the one worker: 8192 slots of a SHA-256 and a time */
    cr_assert_eq(cert_cache_bytes(&S, "identities"), 8192 * (32 + 8));

    const char *udids[3] = {"CACHE-1", "CACHE-2", "CACHE-3"};
    for (int i = 0; i < 3; i++) {
        struct tu_cert id = h_device_cert(&S, udids[i]);
        struct tu_http_resp r;
        char *auth = h_plist("MessageType", "Authenticate", "Topic", H_TOPIC, "UDID", udids[i],
                             "ProductName", "iPhone14,2", NULL);
        cr_assert_eq(h_device_put(&S, &id, H_SIGNATURE, "/mdm/checkin",
                                  "application/x-apple-aspen-mdm-checkin", auth, strlen(auth), &r),
                     0);
        /* a certificate the cache has no room for is still used: the device enrolls */
        cr_assert_eq(r.status, 200, "%s: %d %s", udids[i], r.status, r.body);
        tu_http_resp_free(&r);
        free(auth);
        tu_cert_free(&id);
        long long now = cert_cache_bytes(&S, "certificates");
        cr_assert(now > 4608 && now <= 6000, "%s: %lld bytes of certificates cached", udids[i],
                  now);
    }
    h_stop(&S);
}
