/*
 * Glue between the protocol and APNs (apns/): which enrollments to wake, with which push
 * certificate, and what to do with APNs' answers.
 *
 * - The push identity comes from apns_cert_file/apns_key_file at start-up (then saved in the
 *   store so every instance shares it), or from the store (uploaded through the API).  A job
 *   polls the store's push-certificate version and swaps the identity without a restart.
 * - A certificate whose topic differs from the topic enrolled devices use is refused unless
 *   forced (apns_force_topic, or ?force=true on upload): a silent topic change strands every
 *   enrolled device.
 * - Results arrive on the APNs thread, which only notes them (apns.h asks its callback to be
 *   short): a permanent failure (410 Unregistered, BadDeviceToken, DeviceTokenNotForTopic) is
 *   queued, and the main thread marks those tokens invalid a moment later (until the
 *   enrollment's next TokenUpdate); a refused certificate is reported loudly.
 * - Without a push certificate pushes are skipped (debug log); devices still get their
 *   commands at their next check-in.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "apns/apns.h"
#include "common/codec.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/push_int.h"
#include "mdm/server_int.h"

/* A token APNs called dead, waiting to be marked invalid by the main thread. */
struct dead_token {
    struct dead_token *next;
    int64_t at;
    char *token_hex;
    char enrollment_id[];
};

/* How often the main thread writes the dead tokens the APNs thread noted. */
#define PUSH_DEAD_DRAIN_MS 200

struct mdm_push {
    struct mdm_server *srv;
    struct mdm_runtime *rt;
    pthread_mutex_t lock;       /* guards client, version and dead */
    struct apns_client *client; /* NULL until an identity is loaded */
    struct dead_token *dead;    /* noted on the APNs thread, newest first */
    struct event *drain_ev;     /* the main thread's timer that writes them */
    int64_t version;            /* store push-certificate version in use */
    atomic_ullong pushed, skipped;
};

/* APNs thread: note a dead token for the main thread. */
static void dead_note(struct mdm_push *p, const struct apns_result *r)
{
    size_t n = strlen(r->enrollment_id) + 1;
    struct dead_token *d = xmalloc(sizeof(*d) + n);

    memcpy(d->enrollment_id, r->enrollment_id, n);
    d->token_hex = xstrdup(r->token_hex);
    d->at = (int64_t)time(NULL);
    pthread_mutex_lock(&p->lock);
    d->next = p->dead;
    p->dead = d;
    pthread_mutex_unlock(&p->lock);
}

/* Main thread: mark the noted tokens invalid (oldest first). */
static void dead_drain(struct mdm_push *p)
{
    struct dead_token *d, *rev = NULL;
    struct scepter_error err;

    pthread_mutex_lock(&p->lock);
    d = p->dead;
    p->dead = NULL;
    pthread_mutex_unlock(&p->lock);
    while (d) {
        struct dead_token *next = d->next;
        d->next = rev;
        rev = d;
        d = next;
    }
    while (rev) {
        d = rev;
        rev = d->next;
        if (p->rt && p->rt->store &&
            store_push_token_invalidate(p->rt->store, d->enrollment_id, d->token_hex, d->at, &err) <
                0)
            log_warnx("push: cannot mark the token of %s invalid: %s", d->enrollment_id, err.msg);
        free(d->token_hex);
        free(d);
    }
}

static void dead_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dead_drain(arg);
}

static void on_result(const struct apns_result *r, void *arg)
{
    struct mdm_push *p = arg;
    char masked[LOG_MASK_LEN], status[8], latency[24];
    enum log_level lvl = LOG_LVL_DEBUG;

    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(latency, sizeof(latency), "%lld", (long long)r->latency_ms);
    switch (r->kind) {
    case APNS_KIND_OK:
        break;
    case APNS_KIND_PERMANENT:
        lvl = LOG_LVL_INFO;
        dead_note(p, r);
        break;
    case APNS_KIND_FATAL:
        lvl = LOG_LVL_ERROR;
        break;
    default:
        lvl = LOG_LVL_WARN;
        break;
    }
    log_kv(lvl, "push_result", "enrollment", r->enrollment_id, "token",
           log_mask(r->token_hex, masked, sizeof(masked)), "result", apns_kind_name(r->kind),
           "status", status, "reason", r->reason && *r->reason ? r->reason : NULL, "apns_id",
           r->apns_id && *r->apns_id ? r->apns_id : NULL, "ms", latency, NULL);
    if (r->kind == APNS_KIND_FATAL)
        log_error("APNs refused the push certificate (%s): pushing has stopped until a new "
                  "certificate is loaded (scepterctl pushcert upload)",
                  r->reason);
    mdm_metrics_push(p->srv, r->kind, r->reason, r->latency_ms);
}

static void config_of(const struct cfg *cfg, struct apns_config *ac)
{
    apns_config_init(ac);
    ac->url = cfg->apns_url;
    ac->ca_file = str_empty(cfg->apns_ca_file) ? NULL : cfg->apns_ca_file;
    ac->connections = (int)cfg->apns_connections;
    ac->coalesce_ms = (int)cfg->apns_coalesce_ms;
    ac->priority = (int)cfg->apns_priority;
    ac->expiration_s = (int)cfg->apns_expiration;
    ac->ping_timeout_ms = (int)cfg->apns_ping_timeout * 1000;
}

/* Use id from now on (takes a reference); starts the client on first use. */
static int use_identity(struct mdm_push *p, struct apns_identity *id, int64_t version,
                        struct scepter_error *err)
{
    struct apns_config ac;
    int rc = 0;

    pthread_mutex_lock(&p->lock);
    if (p->client == NULL) {
        config_of(p->srv->cfg, &ac);
        p->client = apns_client_new(&ac, id, on_result, p, err);
        if (p->client == NULL) {
            rc = err ? err->code : SCEPTER_EINTERNAL;
        } else if ((rc = apns_client_start(p->client, err)) != 0) {
            apns_client_free(p->client);
            p->client = NULL;
        }
    } else {
        rc = apns_client_set_identity(p->client, id, err);
    }
    if (rc == 0) {
        p->version = version;
        mdm_server_set_topic(p->srv, apns_identity_topic(id));
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Save an identity in the store (topic-change check there) and use it. */
int mdm_push_install(struct mdm_server *srv, struct store *store, struct apns_identity *id,
                     bool force, int64_t now, struct scepter_error *err)
{
    struct mdm_push *p = srv->push;
    struct store_pushcert pc;
    int64_t version = 0;
    int rc;

    memset(&pc, 0, sizeof(pc));
    apns_identity_pem(id, &pc.cert_pem, &pc.key_pem);
    pc.topic = (char *)apns_identity_topic(id);
    pc.not_after = apns_identity_not_after(id);
    rc = store_pushcert_put(store, &pc, force, now, err);
    free(pc.cert_pem);
    free(pc.key_pem);
    if (rc != 0)
        return rc;
    if (store_pushcert_version(store, &version, err) != 0)
        return err ? err->code : SCEPTER_ESTORE;
    log_kv(LOG_LVL_INFO, "pushcert", "topic", apns_identity_topic(id), "subject",
           apns_identity_subject(id), NULL);
    return p ? use_identity(p, id, version, err) : 0;
}

/* The job: pick up a certificate another instance (or the API) stored. */
static void pushcert_poll(struct mdm_runtime *rt, int64_t now)
{
    struct mdm_push *p = rt->srv->push;
    struct scepter_error err;
    struct store_pushcert pc;
    struct apns_identity *id;
    int64_t version = 0;

    if (store_pushcert_version(rt->store, &version, &err) != 0 || version == 0)
        return;
    pthread_mutex_lock(&p->lock);
    bool same = version == p->version;
    pthread_mutex_unlock(&p->lock);
    if (same)
        return;
    memset(&pc, 0, sizeof(pc));
    if (store_pushcert_get(rt->store, &pc, &err) != 0) {
        log_warnx("push certificate reload: %s", err.msg);
        return;
    }
    id = apns_identity_parse(pc.cert_pem, strlen(pc.cert_pem), pc.key_pem, strlen(pc.key_pem), NULL,
                             now, &err);
    if (id == NULL) {
        log_warnx("push certificate reload: the stored certificate is unusable: %s", err.msg);
    } else if (use_identity(p, id, pc.version, &err) != 0) {
        log_warnx("push certificate reload: %s", err.msg);
    } else {
        log_kv(LOG_LVL_INFO, "pushcert_reloaded", "topic", apns_identity_topic(id), NULL);
    }
    apns_identity_free(id);
    store_pushcert_clear(&pc);
}

/* The job: re-push enrollments with pending commands that have gone quiet. */
static void repush_run(struct mdm_runtime *rt, int64_t now)
{
    struct scepter_error err;
    char **ids = NULL;
    size_t n = 0;
    struct mdm_conf *conf = mdm_conf_get(rt->srv);
    struct mdm_ctx ctx = {rt->srv, conf->cfg, rt->store, NULL, conf};

    if (store_repush_candidates(rt->store, now - rt->srv->cfg->repush_interval, 100000, &ids, &n,
                                &err) != 0) {
        log_warnx("re-push: %s", err.msg);
        mdm_conf_put(rt->srv, conf);
        return;
    }
    if (n) {
        char count[24];
        snprintf(count, sizeof(count), "%zu", n);
        log_kv(LOG_LVL_INFO, "repush", "enrollments", count, NULL);
        mdm_push_enrollments(&ctx, (const char *const *)ids, n);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    mdm_conf_put(rt->srv, conf);
}

int mdm_push_start(struct mdm_runtime *rt, struct scepter_error *err)
{
    struct mdm_server *srv = rt->srv;
    const struct cfg *cfg = srv->cfg;
    struct mdm_push *p = xcalloc(1, sizeof(*p));
    int64_t now = (int64_t)time(NULL);
    int rc;

    p->srv = srv;
    p->rt = rt;
    pthread_mutex_init(&p->lock, NULL);
    srv->push = p;
    if (rt->base) {
        struct timeval tv = {0, PUSH_DEAD_DRAIN_MS * 1000};
        p->drain_ev = event_new(rt->base, -1, EV_PERSIST, dead_drain_cb, p);
        event_add(p->drain_ev, &tv);
    }
    if (!str_empty(cfg->apns_cert_file)) {
        struct apns_identity *id = apns_identity_load(cfg->apns_cert_file, cfg->apns_key_file,
                                                      cfg->apns_key_password, now, err);
        if (id == NULL)
            return err ? err->code : SCEPTER_ECRYPTO;
        rc = mdm_push_install(srv, rt->store, id, cfg->apns_force_topic, now, err);
        apns_identity_free(id);
        if (rc == SCEPTER_ECONFLICT && err)
            return scepter_err(err, rc, "apns_cert_file",
                               "apns_cert_file: %.150s (set apns_force_topic = true to migrate "
                               "deliberately)",
                               err->msg);
        if (rc != 0)
            return rc;
    } else {
        pushcert_poll(rt, now); /* one uploaded earlier, if any */
    }
    mdm_jobs_add(rt, "pushcert", 10, pushcert_poll);
    if (cfg->repush_interval > 0)
        mdm_jobs_add(rt, "repush", cfg->repush_interval < 300 ? cfg->repush_interval : 300,
                     repush_run);
    return 0;
}

void mdm_push_stop(struct mdm_server *srv)
{
    struct mdm_push *p = srv->push;

    if (p == NULL)
        return;
    if (p->client)
        apns_client_stop(p->client, 5000);
    apns_client_free(p->client);
    dead_drain(p); /* what APNs said until it stopped */
    if (p->drain_ev)
        event_free(p->drain_ev);
    pthread_mutex_destroy(&p->lock);
    free(p);
    srv->push = NULL;
}

/* The APNs client in use, or NULL (then n pushes are counted as skipped). */
static struct apns_client *push_client(struct mdm_push *p, size_t n)
{
    struct apns_client *client = NULL;

    if (p) {
        pthread_mutex_lock(&p->lock);
        client = p->client;
        pthread_mutex_unlock(&p->lock);
    }
    if (client == NULL && p && n > 0)
        atomic_fetch_add_explicit(&p->skipped, n, memory_order_relaxed);
    return client;
}

/* Hand n pushes to the client and count them. */
static void push_send(struct mdm_push *p, struct apns_client *client,
                      const struct apns_push *pushes, size_t n)
{
    struct scepter_error err;
    size_t invalid = 0;

    if (n == 0)
        return;
    if (apns_client_push(client, pushes, n, &invalid, &err) != 0) {
        log_warnx("push: %zu pushes not queued: %s", n, err.msg);
        return;
    }
    if (invalid > 0)
        log_warnx("push: %zu of %zu pushes skipped, the rest queued; first: %s", invalid, n,
                  err.msg);
    atomic_fetch_add_explicit(&p->pushed, n - invalid, memory_order_relaxed);
}

void mdm_push_one(struct mdm_ctx *ctx, const struct mdm_push_data *d)
{
    struct mdm_push *p = ctx->srv->push;
    struct apns_client *client = push_client(p, 1);
    char *hex;

    if (client == NULL) {
        log_debug("push: no push certificate loaded; %s not pushed", d->enrollment_id);
        return;
    }
    hex = hex_encode(d->token, d->token_len, false);
    struct apns_push ap = {d->enrollment_id, hex, d->push_magic, d->topic};
    push_send(p, client, &ap, 1);
    free(hex);
}

void mdm_push_target(struct mdm_ctx *ctx, const struct store_push_target *t)
{
    struct mdm_push *p = ctx->srv->push;
    struct apns_client *client = push_client(p, 1);

    if (client == NULL) {
        log_debug("push: no push certificate loaded; %s not pushed", t->enrollment_id);
        return;
    }
    struct apns_push ap = {t->enrollment_id, t->token_hex, t->push_magic, t->topic};
    push_send(p, client, &ap, 1);
}

void mdm_push_enrollments(struct mdm_ctx *ctx, const char *const *enrollment_ids, size_t n)
{
    struct mdm_push *p = ctx->srv->push;
    struct store_push_target *t = NULL;
    struct apns_push *pushes = NULL;
    struct apns_client *client;
    struct scepter_error err;
    size_t nt = 0;

    if (n == 0)
        return;
    if ((client = push_client(p, n)) == NULL) {
        log_debug("push: no push certificate loaded; %zu enrollments not pushed", n);
        return;
    }
    if (store_push_targets(ctx->store, enrollment_ids, n, &t, &nt, &err) != 0) {
        log_warnx("push: looking up %zu push tokens: %s", n, err.msg);
        return;
    }
    pushes = xcalloc(nt ? nt : 1, sizeof(*pushes));
    for (size_t i = 0; i < nt; i++) {
        pushes[i].enrollment_id = t[i].enrollment_id;
        pushes[i].token_hex = t[i].token_hex;
        pushes[i].push_magic = t[i].push_magic;
        pushes[i].topic = t[i].topic;
    }
    push_send(p, client, pushes, nt);
    free(pushes);
    store_push_targets_free(t, nt);
}

int mdm_push_state(struct mdm_server *srv, struct apns_stats *st)
{
    struct mdm_push *p = srv->push;

    struct apns_client *client = push_client(p, 0);

    memset(st, 0, sizeof(*st));
    if (client == NULL)
        return -1;
    apns_client_stats(client, st);
    return 0;
}
