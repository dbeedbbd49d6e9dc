/*
 * The fault suite's devices and operator (see fault_devices.h).
 *
 * A device session is what a real device does when woken: a new mTLS connection, Idle, then
 * one result per command until the server answers 200 with an empty body.  A result that got
 * no 200 (the server died, the store was away) is remembered: on the next session the device
 * sends it again first or, half of the time, forgets it and starts with Idle (then the server
 * must deliver the command again).  Each result carries a FaultNonce of the device's own, so
 * the check can tell which of several attempts the store kept.
 */
#include "fault_devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "common/plistx.h"
#include "common/xmalloc.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fd_api(struct h_server *s, const char *method, const char *path, const char *body, json_t **out)
{
    struct tu_http_resp r;
    int status;

    if (out)
        *out = NULL;
    if (tu_http(s->port, true, NULL, NULL, method, path,
                "Authorization: Bearer " H_API_KEY "\r\nContent-Type: application/json\r\n", body,
                body ? strlen(body) : 0, &r) != 0)
        return -1;
    status = r.status;
    if (out && r.body_len)
        *out = json_loadb((const char *)r.body, r.body_len, 0, NULL);
    tu_http_resp_free(&r);
    return status;
}

void fd_setup(struct fd_world *w, struct h_server *srv, int ndevices, int ncommands, int nthreads,
              unsigned seed)
{
    cr_assert(ndevices > 0 && ndevices <= FD_MAX_DEVICES, "devices: 1..%d", FD_MAX_DEVICES);
    cr_assert(ncommands > 0 && ncommands <= FD_MAX_COMMANDS, "commands: 1..%d", FD_MAX_COMMANDS);
    cr_assert(nthreads > 0 && nthreads <= FD_MAX_THREADS, "threads: 1..%d", FD_MAX_THREADS);
    memset(w, 0, sizeof(*w));
    w->srv[0] = srv;
    w->ninst = 1;
    w->ndevices = ndevices;
    w->ncommands = ncommands;
    w->nthreads = nthreads;
    w->seed = seed;
    w->fanout_gap_ms = 150;
    for (int d = 0; d < ndevices; d++) {
        struct fd_device *dv = &w->dev[d];
        snprintf(dv->udid, sizeof(dv->udid), "FAULT-%08X-%04d", seed, d);
        /* ECDSA P-256 (as bench_mdm's devices): RSA key generation would dominate set-up */
        struct tu_cert_opts co = {.cn = dv->udid, .not_after = 86400 * 30, .ec = true};
        dv->id = tu_cert_issue(&srv->dev_ca, &co);
        dv->pending_k = -1;
    }
    long long t0 = now_ms();
    for (int d = 0; d < ndevices; d++)
        h_enroll(srv, &w->dev[d].id, w->dev[d].udid, d % 3 ? "iPhone14,2" : "MacBookPro18,3");
    printf("faults: %d devices enrolled in %.1f s\n", ndevices, (double)(now_ms() - t0) / 1000);
    for (int k = 0; k < ncommands; k++)
        snprintf(w->cmd[k].uuid, sizeof(w->cmd[k].uuid), "%08X-%04X-4000-8000-%012X", seed,
                 (unsigned)k & 0xffffu, (unsigned)k);
}

static int find_command(const struct fd_world *w, const char *uuid)
{
    for (int k = 0; k < w->ncommands; k++)
        if (strcmp(w->cmd[k].uuid, uuid) == 0)
            return k;
    return -1;
}

static char *idle_body(const struct fd_device *dv)
{
    return h_plist("UDID", dv->udid, "Status", "Idle", NULL);
}

/* A result for command k (or for a foreign UUID when k < 0), recorded as an attempt. */
static char *result_body(struct fd_world *w, struct fd_device *dv, int k, const char *uuid,
                         long long *nonce_out)
{
    char nonce[32];
    long long n = ++dv->nonce;

    snprintf(nonce, sizeof(nonce), "%lld", n);
    *nonce_out = n;
    if (k >= 0) {
        struct fd_pair *p = &dv->pairs[k];
        if (p->nacks < FD_MAX_ACKS) {
            p->ack_nonce[p->nacks] = n;
            p->ack_ok[p->nacks] = false;
            p->nacks++;
        }
    }
    (void)w;
    return h_plist("UDID", dv->udid, "CommandUUID", uuid, "Status", "Acknowledged", "FaultNonce",
                   nonce, NULL);
}

static atomic_llong done_pairs;

static void settle(struct fd_pair *p)
{
    if (!p->settled) {
        p->settled = true;
        atomic_fetch_add(&done_pairs, 1);
    }
}

static void mark_ok(struct fd_device *dv, int k, long long nonce)
{
    struct fd_pair *p = &dv->pairs[k];

    for (int i = 0; i < p->nacks; i++)
        if (p->ack_nonce[i] == nonce)
            p->ack_ok[i] = true;
    settle(p);
}

static void session(struct fd_world *w, int d, unsigned *rnd)
{
    struct fd_device *dv = &w->dev[d];
    struct h_server *s = w->srv[w->ninst > 1 ? rand_r(rnd) % w->ninst : 0];
    struct tu_http_conn *c = tu_http_connect(s->port, true, dv->id.cert, dv->id.key);
    char *body;
    int k = -1;
    long long nonce = 0;

    if (c == NULL) {
        dv->netfail++;
        return;
    }
    if (dv->pending_k >= 0 && rand_r(rnd) % 2 == 0) {
        k = dv->pending_k;
        body = result_body(w, dv, k, w->cmd[k].uuid, &nonce);
    } else {
        /* Forget the unanswered result: the server delivers the command again unless it
         * recorded the result before its answer was lost. */
        if (dv->pending_k >= 0)
            dv->pairs[dv->pending_k].forgotten = true;
        dv->pending_k = -1;
        body = idle_body(dv);
    }
    for (int step = 0; step < 4 * FD_MAX_COMMANDS && !atomic_load(&w->stop); step++) {
        struct tu_http_resp r;
        long long t0 = now_ms(), dt;
        memset(&r, 0, sizeof(r));
        atomic_fetch_add(&w->in_flight, 1);
        int rc =
            tu_http_do(c, "PUT", "/mdm/connect", "Content-Type: application/x-apple-aspen-mdm\r\n",
                       body, strlen(body), &r);
        atomic_fetch_sub(&w->in_flight, 1);
        free(body);
        body = NULL;
        dt = now_ms() - t0;
        if (dt > dv->max_wait_ms)
            dv->max_wait_ms = dt;
        if (rc != 0) {
            tu_http_resp_free(&r);
            dv->netfail++;
            break;
        }
        dv->polls++;
        if (r.status != 200) {
            if (r.status == 401 || r.status == 403)
                dv->refused++;
            else if (r.status >= 500)
                dv->s5xx++;
            else
                dv->other++;
            if (r.status == 500)
                dv->s500++;
            if (r.status == 401 || r.status == 403 || r.status == 500 || dv->other == 1)
                cr_log_error("%s: %d %.*s", dv->udid, r.status, (int)r.body_len,
                             r.body ? (const char *)r.body : "");
            tu_http_resp_free(&r);
            break;
        }
        if (k >= 0) {
            mark_ok(dv, k, nonce);
            dv->pending_k = -1;
        }
        k = -1;
        if (r.body_len == 0) {
            /* The queue ran empty without the forgotten command: its result was kept. */
            for (int f = 0; f < w->ncommands; f++)
                if (dv->pairs[f].forgotten) {
                    dv->pairs[f].forgotten = false;
                    settle(&dv->pairs[f]);
                }
            tu_http_resp_free(&r);
            break;
        }
        plist_t cmd = NULL;
        struct scepter_error err;
        const char *uuid = NULL;
        if (plistx_parse_dict(r.body, r.body_len, &cmd, &err) != 0 ||
            plistx_get_string(cmd, "CommandUUID", true, &uuid, &err) != 0) {
            cr_log_error("%s: a command that does not parse: %s", dv->udid, err.msg);
            dv->other++;
            plist_free(cmd);
            tu_http_resp_free(&r);
            break;
        }
        int kk = find_command(w, uuid);
        if (kk < 0) {
            dv->foreign++;
            body = result_body(w, dv, -1, uuid, &nonce);
        } else {
            dv->pairs[kk].delivered++;
            dv->pairs[kk].forgotten = false;
            body = result_body(w, dv, kk, uuid, &nonce);
            k = kk;
            dv->pending_k = kk;
        }
        plist_free(cmd);
        tu_http_resp_free(&r);
    }
    free(body);
    tu_http_close(c);
}

static void *device_thread(void *arg)
{
    struct fd_thread *th = arg;
    struct fd_world *w = th->w;
    unsigned rnd = w->seed * 7919u + (unsigned)th->no;

    while (!atomic_load(&w->stop)) {
        for (int d = th->no; d < w->ndevices && !atomic_load(&w->stop); d += w->nthreads)
            session(w, d, &rnd);
        usleep(20000);
    }
    return NULL;
}

static void *operator_thread(void *arg)
{
    struct fd_world *w = arg;
    unsigned rnd = w->seed ^ 0x5eedu;

    for (int k = 0; k < w->ncommands; k++) {
        struct fd_command *c = &w->cmd[k];
        json_t *devs = json_array();

        usleep((useconds_t)(rand_r(&rnd) % (unsigned)(2 * w->fanout_gap_ms + 1)) * 1000);
        for (int d = 0; d < w->ndevices; d++)
            if (rand_r(&rnd) % 2 == 0 || (d == k % w->ndevices)) {
                c->target[d] = true;
                c->ntargets++;
                json_array_append_new(devs, json_string(w->dev[d].udid));
            }
        json_t *spec = json_pack("{s:o,s:{s:s,s:s},s:b}", "devices", devs, "command",
                                 "request_type", "ProfileList", "uuid", c->uuid, "push", 0);
        char *text = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        /* Until the store has it: 201, or 409 when an earlier attempt committed before the
         * answer was lost (bounded: 60 s). */
        for (int a = 0; a < 1200; a++) {
            json_t *out = NULL;
            struct h_server *s = w->srv[w->ninst > 1 ? rand_r(&rnd) % w->ninst : 0];
            atomic_store(&w->in_fanout, 1);
            int st = fd_api(s, "POST", "/v1/commands", text, &out);
            atomic_store(&w->in_fanout, 0);
            const char *msg = json_string_value(json_object_get(out, "error"));
            c->attempts++;
            if (st == 201 || (st == 409 && msg && strstr(msg, "exists already"))) {
                json_decref(out);
                atomic_store(&c->queued, true);
                break;
            }
            if (st != -1 && st != 503)
                cr_log_error("fan-out %d: %d %s", k, st, msg ? msg : "");
            atomic_fetch_add(&w->api_fail, 1);
            json_decref(out);
            usleep(50000);
        }
        free(text);
        atomic_fetch_add(&w->fanned, 1);
    }
    return NULL;
}

void fd_run(struct fd_world *w)
{
    atomic_store(&done_pairs, 0);
    atomic_store(&w->stop, false);
    for (int t = 0; t < w->nthreads; t++) {
        w->thr[t].w = w;
        w->thr[t].no = t;
        cr_assert_eq(pthread_create(&w->threads[t], NULL, device_thread, &w->thr[t]), 0);
    }
    cr_assert_eq(pthread_create(&w->op, NULL, operator_thread, w), 0);
}

bool fd_finish(struct fd_world *w, int timeout_s)
{
    long long want = 0, deadline;
    bool ok;

    pthread_join(w->op, NULL);
    for (int k = 0; k < w->ncommands; k++)
        want += w->cmd[k].ntargets;
    deadline = now_ms() + (long long)timeout_s * 1000;
    while (atomic_load(&done_pairs) < want && now_ms() < deadline)
        usleep(50000);
    ok = atomic_load(&done_pairs) >= want;
    /* A little longer: results sent again after the last 200 land too. */
    usleep(300000);
    atomic_store(&w->stop, true);
    for (int t = 0; t < w->nthreads; t++)
        pthread_join(w->threads[t], NULL);
    if (!ok)
        cr_log_error("devices: %lld of %lld (device, command) pairs answered in %d s",
                     (long long)atomic_load(&done_pairs), want, timeout_s);
    return ok;
}

/* An operator GET that must answer (the server is up), on one kept-alive connection
 * (reopened when it fails); retried briefly. */
static struct tu_http_conn *api_conn;

static json_t *api_get(struct h_server *s, const char *path)
{
    for (int a = 0; a < 50; a++) {
        struct tu_http_resp r;
        json_t *j = NULL;
        if (api_conn == NULL)
            api_conn = tu_http_connect(s->port, true, NULL, NULL);
        memset(&r, 0, sizeof(r));
        if (api_conn && tu_http_do(api_conn, "GET", path, "Authorization: Bearer " H_API_KEY "\r\n",
                                   NULL, 0, &r) == 0) {
            if (r.status == 200 && r.body_len)
                j = json_loadb((const char *)r.body, r.body_len, 0, NULL);
            tu_http_resp_free(&r);
            if (j)
                return j;
        } else {
            tu_http_resp_free(&r);
            tu_http_close(api_conn);
            api_conn = NULL;
        }
        usleep(100000);
    }
    cr_log_error("GET %s: no 200", path);
    return NULL;
}

#define VIOLATION(counter, ...)                                                                    \
    do {                                                                                           \
        if ((counter)++ < 10)                                                                      \
            cr_log_error(__VA_ARGS__);                                                             \
    } while (0)

void fd_check(struct fd_world *w, struct h_server *srv, struct fd_report *r)
{
    memset(r, 0, sizeof(*r));
    for (int d = 0; d < w->ndevices; d++) {
        struct fd_device *dv = &w->dev[d];
        int seen[FD_MAX_COMMANDS] = {0};
        char path[256];

        r->refused += dv->refused;
        r->s5xx += dv->s5xx;
        r->s500 += dv->s500;
        r->netfail += dv->netfail;
        if (dv->max_wait_ms > r->max_wait_ms)
            r->max_wait_ms = dv->max_wait_ms;
        if (dv->foreign)
            VIOLATION(r->wrong_device, "%s: %d commands nobody queued", dv->udid, dv->foreign);

        /* The store's queue of this device (one page holds it: FD_MAX_COMMANDS < 1,000). */
        snprintf(path, sizeof(path), "/v1/devices/%s/commands?all=true&limit=1000", dv->udid);
        json_t *q = api_get(srv, path), *item;
        size_t i;
        json_array_foreach(json_object_get(q, "commands"), i, item)
        {
            const char *uuid = json_string_value(json_object_get(item, "uuid"));
            const char *status = json_string_value(json_object_get(item, "status"));
            int k = uuid ? find_command(w, uuid) : -1;
            if (k < 0 || !w->cmd[k].target[d]) {
                VIOLATION(r->phantom, "%s: the store holds %s, never queued for it", dv->udid,
                          uuid ? uuid : "?");
                continue;
            }
            if (seen[k]++)
                VIOLATION(r->phantom, "%s: %s twice in its queue", dv->udid, uuid);
            if (!status || strcmp(status, "Acknowledged") != 0)
                VIOLATION(r->lost, "%s: %s is %s in the store", dv->udid, uuid,
                          status ? status : "?");
        }
        json_decref(q);

        for (int k = 0; k < w->ncommands; k++) {
            struct fd_pair *p = &dv->pairs[k];
            if (!w->cmd[k].target[d]) {
                if (p->delivered)
                    VIOLATION(r->wrong_device, "%s: got %s, queued for other devices", dv->udid,
                              w->cmd[k].uuid);
                continue;
            }
            r->pairs++;
            r->deliveries += p->delivered;
            r->duplicates += p->delivered > 1 ? p->delivered - 1 : 0;
            r->results_sent += p->nacks;
            if (!seen[k])
                VIOLATION(r->lost, "%s: %s missing from the store", dv->udid, w->cmd[k].uuid);
            if (p->delivered == 0) {
                VIOLATION(r->lost, "%s: %s never delivered", dv->udid, w->cmd[k].uuid);
                continue;
            }
            /* The result kept is one the device sent no later than its first 200. */
            snprintf(path, sizeof(path), "/v1/devices/%s/commands/%s", dv->udid, w->cmd[k].uuid);
            json_t *res = api_get(srv, path);
            const char *ns =
                json_string_value(json_object_get(json_object_get(res, "result"), "FaultNonce"));
            long long kept = ns ? strtoll(ns, NULL, 10) : -1;
            int at = -1, first_ok = -1;
            for (int a = 0; a < p->nacks; a++) {
                if (p->ack_nonce[a] == kept)
                    at = a;
                if (p->ack_ok[a] && first_ok < 0)
                    first_ok = a;
            }
            if (at < 0 || (first_ok >= 0 && at > first_ok))
                VIOLATION(r->bad_record,
                          "%s: %s: the store kept result %lld (attempt %d, first 200 at %d of %d)",
                          dv->udid, w->cmd[k].uuid, kept, at, first_ok, p->nacks);
            json_decref(res);
        }

        /* The enrollment: still enrolled, its token intact, and it is served. */
        snprintf(path, sizeof(path), "/v1/devices/%s", dv->udid);
        json_t *dj = api_get(srv, path);
        if (!json_is_true(json_object_get(dj, "enrolled")) ||
            !json_is_true(json_object_get(dj, "push_token_valid")))
            VIOLATION(r->corrupt, "%s: enrollment changed: %s", dv->udid, h_json(dj));
        json_decref(dj);
        struct tu_http_resp ir;
        memset(&ir, 0, sizeof(ir));
        char *idle = idle_body(dv);
        if (h_connect(srv, &dv->id, idle, &ir) != 0 || ir.status != 200 || ir.body_len != 0)
            VIOLATION(r->corrupt, "%s: final Idle: %d (%zu bytes)", dv->udid, ir.status,
                      ir.body_len);
        tu_http_resp_free(&ir);
        free(idle);
    }
    tu_http_close(api_conn);
    api_conn = NULL;
}

void fd_free(struct fd_world *w)
{
    for (int d = 0; d < w->ndevices; d++)
        tu_cert_free(&w->dev[d].id);
}
