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
 * - Results arrive on the APNs thread, which has its own store connection: a permanent
 *   failure (410 Unregistered, BadDeviceToken, DeviceTokenNotForTopic) marks the enrollment's
 *   token invalid until its next TokenUpdate; a refused certificate is reported loudly.
 * - Without a push certificate pushes are skipped (debug log); devices still get their
 *   commands at their next check-in.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "apns/apns.h"
#include "common/codec.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/push_int.h"
#include "mdm/server_int.h"

struct mdm_push {
    struct mdm_server *srv;
    pthread_mutex_t lock;       /* guards client and version */
    struct apns_client *client; /* NULL until an identity is loaded */
    struct store *result_store; /* used on the APNs thread only */
    int64_t version;            /* store push-certificate version in use */
    atomic_ullong pushed, skipped;
};

static void on_result(const struct apns_result *r, void *arg)
{
    struct mdm_push *p = arg;
    struct scepter_error err;
    char masked[LOG_MASK_LEN], status[8], latency[24];
    enum log_level lvl = LOG_LVL_DEBUG;

    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(latency, sizeof(latency), "%lld", (long long)r->latency_ms);
    switch (r->kind) {
    case APNS_KIND_OK:
        break;
    case APNS_KIND_PERMANENT:
        lvl = LOG_LVL_INFO;
        if (store_push_token_invalidate(p->result_store, r->enrollment_id, r->token_hex,
                                        (int64_t)time(NULL), &err) < 0)
            log_warnx("push: cannot mark the token of %s invalid: %s", r->enrollment_id, err.msg);
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
    pthread_mutex_init(&p->lock, NULL);
    srv->push = p;
    if ((rc = store_open(cfg->store, &p->result_store, err)) != 0)
        return rc;
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
    store_close(p->result_store);
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
