/*
 * Metrics: counters the workers bump with relaxed atomic increments (no lock on the request
 * path) and GET /metrics, which renders them in the Prometheus text format together with
 * values read at scrape time (queue depth from the store, APNs counters from the client).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/metrics_int.h"
#include "mdm/push_int.h"
#include "mdm/server_int.h"

static const char *const checkin_types[MDM_M_CHECKIN_TYPES] = {
    "Authenticate",      "TokenUpdate",           "CheckOut",
    "SetBootstrapToken", "GetBootstrapToken",     "GetToken",
    "UserAuthenticate",  "DeclarativeManagement", "other"};
static const char *const connect_statuses[MDM_M_CONNECT_STATUSES] = {
    "Idle", "Acknowledged", "Error", "CommandFormatError", "NotNow", "other"};
static const char *const results[MDM_M_RESULTS] = {"ok", "refused", "unrecognized", "failed"};
static const char *const request_types[MDM_M_REQUEST_TYPES] = {
    "InstallProfile",  "RemoveProfile",    "ProfileList", "DeviceInformation",
    "CertificateList", "DeviceConfigured", "other"};
static const char *const command_events[MDM_M_COMMAND_EVENTS] = {
    "queued", "delivered", "acknowledged", "errored", "notnow"};
static const char *const routes[MDM_M_ROUTES] = {"checkin", "connect", "enroll", "api",
                                                 "healthz", "metrics", "other"};
/* Request latency buckets, seconds. */
static const double buckets[MDM_M_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05,   0.1,   0.25,   0.5,   1,    2.5};

struct mdm_metrics *mdm_metrics_new(void)
{
    return xcalloc(1, sizeof(struct mdm_metrics));
}

void mdm_metrics_free(struct mdm_metrics *m)
{
    free(m);
}

/* Seconds a count of scepter_identities_expiring is reported again before it is redone: the
 * count reads every enrolled device's certificate bindings (100,000 rows at 100,000 devices),
 * and a Prometheus scrape every 10-15 s by a few servers made that a steady full scan. */
#define EXPIRING_EVERY 60

static size_t index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i + 1 < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return n - 1; /* "other" */
}

static void inc(atomic_ullong *c, unsigned long long by)
{
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

static unsigned long long get(atomic_ullong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void mdm_metrics_request(struct mdm_server *srv, const struct mdm_reply *reply, int64_t elapsed_us)
{
    struct mdm_metrics *m = srv->metrics;
    size_t route, res, b;

    if (m == NULL)
        return;
    route = index_of(routes, MDM_M_ROUTES, reply->event);
    inc(&m->requests[route], 1);
    inc(&m->latency_sum_us[route], (unsigned long long)elapsed_us);
    for (b = 0; b < MDM_M_BUCKETS && (double)elapsed_us / 1e6 > buckets[b]; b++)
        ;
    inc(&m->latency[route][b], 1);
    if (reply->status < 400)
        res = 0;
    else if (reply->status == 403 && reply->content_type &&
             strcmp(reply->content_type, "application/xml") == 0)
        res = 2; /* com.apple.unrecognized.device */
    else if (reply->status < 500)
        res = 1;
    else
        res = 3;
    if (route == 0)
        inc(&m->checkins[index_of(checkin_types, MDM_M_CHECKIN_TYPES, reply->message_type)][res],
            1);
    else if (route == 1)
        inc(&m->connects[index_of(connect_statuses, MDM_M_CONNECT_STATUSES, reply->message_type)]
                        [res],
            1);
    if (reply->status == 503)
        inc(&m->store_errors, 1);
}

void mdm_metrics_command(struct mdm_server *srv, enum mdm_command_event ev,
                         const char *request_type, size_t n)
{
    struct mdm_metrics *m = srv->metrics;

    if (m == NULL || n == 0)
        return;
    inc(&m->commands[ev][index_of(request_types, MDM_M_REQUEST_TYPES, request_type)], n);
}

void mdm_metrics_push(struct mdm_server *srv, enum apns_kind kind, const char *reason,
                      int64_t latency_ms)
{
    /* The APNs client keeps its own counters (apns_client_stats); nothing to add here. */
    (void)srv;
    (void)kind;
    (void)reason;
    (void)latency_ms;
}

void mdm_metrics_connection(struct mdm_server *srv, int delta)
{
    if (srv->metrics == NULL)
        return;
    if (delta > 0) {
        inc(&srv->metrics->connections_opened, 1);
        atomic_fetch_add_explicit(&srv->metrics->connections_open, 1, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&srv->metrics->connections_open, 1, memory_order_relaxed);
    }
}

void mdm_metrics_connection_refused(struct mdm_server *srv, bool timed_out)
{
    if (srv->metrics)
        inc(timed_out ? &srv->metrics->connections_timed_out : &srv->metrics->connections_refused,
            1);
}

void mdm_metrics_security(struct mdm_server *srv, enum mdm_security_kind kind)
{
    if (srv->metrics && (unsigned)kind < MDM_SEC_KINDS)
        inc(&srv->metrics->security[kind], 1);
}

void mdm_metrics_webhook(struct mdm_server *srv, bool delivered)
{
    if (srv->metrics)
        inc(delivered ? &srv->metrics->webhooks_delivered : &srv->metrics->webhooks_failed, 1);
}

void mdm_metrics_webhook_dead(struct mdm_server *srv)
{
    if (srv->metrics)
        inc(&srv->metrics->webhooks_dead, 1);
}

void mdm_metrics_renewed(struct mdm_server *srv)
{
    if (srv->metrics)
        inc(&srv->metrics->identities_renewed, 1);
}

void mdm_metrics_expired(struct mdm_server *srv, size_t n)
{
    if (srv->metrics)
        inc(&srv->metrics->commands_expired, n);
}

void mdm_metrics_cache_bytes(struct mdm_server *srv, enum mdm_cache_kind which, long long delta)
{
    if (srv->metrics)
        atomic_fetch_add_explicit(&srv->metrics->cache_bytes[which], delta, memory_order_relaxed);
}

static void help(struct buf *b, const char *name, const char *type, const char *text)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

void mdm_metrics_render(struct mdm_ctx *ctx, struct buf *b)
{
    struct mdm_metrics *m = ctx->srv->metrics;
    struct scepter_error err;
    struct apns_stats st;
    int64_t depth = 0, outbox = 0;

    help(b, "scepter_checkins_total", "counter", "Check-in messages by type and result.");
    for (size_t t = 0; t < MDM_M_CHECKIN_TYPES; t++)
        for (size_t r = 0; r < MDM_M_RESULTS; r++)
            buf_printf(b, "scepter_checkins_total{message_type=\"%s\",result=\"%s\"} %llu\n",
                       checkin_types[t], results[r], get(&m->checkins[t][r]));
    help(b, "scepter_connects_total", "counter", "Command-channel requests by status and result.");
    for (size_t t = 0; t < MDM_M_CONNECT_STATUSES; t++)
        for (size_t r = 0; r < MDM_M_RESULTS; r++)
            buf_printf(b, "scepter_connects_total{status=\"%s\",result=\"%s\"} %llu\n",
                       connect_statuses[t], results[r], get(&m->connects[t][r]));
    help(b, "scepter_commands_total", "counter",
         "Commands queued, delivered, acknowledged, errored and NotNow, by request type.");
    for (size_t e = 0; e < MDM_M_COMMAND_EVENTS; e++)
        for (size_t t = 0; t < MDM_M_REQUEST_TYPES; t++)
            buf_printf(b, "scepter_commands_total{event=\"%s\",request_type=\"%s\"} %llu\n",
                       command_events[e], request_types[t], get(&m->commands[e][t]));
    help(b, "scepter_queue_depth", "gauge", "Queued commands without a final result.");
    if (store_queue_depth(ctx->store, &depth, &err) == 0)
        buf_printf(b, "scepter_queue_depth %lld\n", (long long)depth);
    help(b, "scepter_http_request_duration_seconds", "histogram",
         "Time to answer a request, by route.");
    for (size_t r = 0; r < MDM_M_ROUTES; r++) {
        unsigned long long cum = 0;
        for (size_t i = 0; i < MDM_M_BUCKETS; i++) {
            cum += get(&m->latency[r][i]);
            buf_printf(b,
                       "scepter_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                       "%llu\n",
                       routes[r], buckets[i], cum);
        }
        cum += get(&m->latency[r][MDM_M_BUCKETS]);
        buf_printf(b,
                   "scepter_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                   "%llu\n",
                   routes[r], cum);
        buf_printf(b, "scepter_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", routes[r],
                   (double)get(&m->latency_sum_us[r]) / 1e6);
        buf_printf(b, "scepter_http_request_duration_seconds_count{route=\"%s\"} %llu\n", routes[r],
                   get(&m->requests[r]));
    }
    help(b, "scepter_store_errors_total", "counter",
         "Requests that failed because the store did (answered 503).");
    buf_printf(b, "scepter_store_errors_total %llu\n", get(&m->store_errors));
    help(b, "scepter_open_connections", "gauge", "Open TLS connections.");
    buf_printf(b, "scepter_open_connections %lld\n",
               (long long)atomic_load_explicit(&m->connections_open, memory_order_relaxed));
    help(b, "scepter_connections_total", "counter", "TLS connections accepted.");
    buf_printf(b, "scepter_connections_total %llu\n", get(&m->connections_opened));
    help(b, "scepter_connections_refused_total", "counter",
         "TLS connections refused at the handshake: the worker had max_connections open.");
    buf_printf(b, "scepter_connections_refused_total %llu\n", get(&m->connections_refused));
    help(b, "scepter_connections_timed_out_total", "counter",
         "Connections closed because a whole request did not arrive within request_timeout.");
    buf_printf(b, "scepter_connections_timed_out_total %llu\n", get(&m->connections_timed_out));
    {
        static const char *const names[MDM_SEC_KINDS] = {
            "reenroll_refused", "reenrolled",     "enroll_refused",  "enroll_limited",
            "cert_revoked",     "device_removed", "identity_renewed"};
        help(b, "scepter_security_events_total", "counter",
             "Security outcomes: refused re-enrollments, re-enrollments, refused or rate-limited "
             "enrollment downloads, revoked certificates, removed devices, renewed "
             "identities.");
        for (int i = 0; i < MDM_SEC_KINDS; i++)
            buf_printf(b, "scepter_security_events_total{event=\"%s\"} %llu\n", names[i],
                       get(&m->security[i]));
    }
    help(b, "scepter_sqlite_memory_bytes", "gauge",
         "Memory SQLite holds, its page caches included (bounded by sqlite_cache_bytes per "
         "connection).");
    buf_printf(b, "scepter_sqlite_memory_bytes %lld\n", (long long)store_sqlite_memory_used());
    {
        int64_t size, used;
        store_sqlite_page_buffer(&size, &used);
        help(b, "scepter_sqlite_page_buffer_bytes", "gauge",
             "The region SQLite's page caches take their pages from before malloc "
             "(sqlite_page_buffer_bytes): its size and the bytes in use.");
        buf_printf(b, "scepter_sqlite_page_buffer_bytes{kind=\"size\"} %lld\n", (long long)size);
        buf_printf(b, "scepter_sqlite_page_buffer_bytes{kind=\"used\"} %lld\n", (long long)used);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    {
        /* glibc's heap, all arenas: what RSS is made of besides code, stacks and SQLite's
         * mapped files, so that heap growth (in_use) can be told from fragmentation (free). */
        struct mallinfo2 mi = mallinfo2();
        /* all 0 when another allocator is in place (sanitizer builds): nothing to report */
        if (mi.arena > 0 || mi.hblkhd > 0) {
            help(b, "scepter_malloc_bytes", "gauge",
                 "glibc malloc, all arenas (mallinfo2): in_use (live allocations), free (held "
                 "by malloc, not in use), mmapped (large blocks mapped on their own), arena "
                 "(heap obtained with brk/mmap for the arenas).");
            buf_printf(b, "scepter_malloc_bytes{kind=\"in_use\"} %zu\n", mi.uordblks + mi.hblkhd);
            buf_printf(b, "scepter_malloc_bytes{kind=\"free\"} %zu\n", mi.fordblks);
            buf_printf(b, "scepter_malloc_bytes{kind=\"mmapped\"} %zu\n", mi.hblkhd);
            buf_printf(b, "scepter_malloc_bytes{kind=\"arena\"} %zu\n", mi.arena);
        }
    }
#endif
    help(b, "scepter_enroll_keys_ready", "gauge",
         "Device keys ready in the enrollment key pool (filled in the background).");
    buf_printf(b, "scepter_enroll_keys_ready %zu\n",
               mdm_enroll_guard_ready(ctx->srv->enroll_guard));
    help(b, "scepter_webhooks_total", "counter", "Webhook deliveries by result.");
    buf_printf(b, "scepter_webhooks_total{result=\"delivered\"} %llu\n",
               get(&m->webhooks_delivered));
    buf_printf(b, "scepter_webhooks_total{result=\"failed\"} %llu\n", get(&m->webhooks_failed));
    help(b, "scepter_outbox_pending", "gauge", "Events waiting in the outbox.");
    if (store_outbox_pending(ctx->store, &outbox, &err) == 0)
        buf_printf(b, "scepter_outbox_pending %lld\n", (long long)outbox);
    help(b, "scepter_webhook_dead_letters_total", "counter",
         "Webhook events given up on after webhook_max_attempts failed deliveries.");
    buf_printf(b, "scepter_webhook_dead_letters_total %llu\n", get(&m->webhooks_dead));
    help(b, "scepter_identities_renewed_total", "counter",
         "Device identities renewed: a new certificate bound while its renewal was outstanding.");
    buf_printf(b, "scepter_identities_renewed_total %llu\n", get(&m->identities_renewed));
    if (ctx->cfg->identity_renew_days > 0) {
        int64_t expiring = 0, now = (int64_t)time(NULL);
        int64_t at = atomic_load_explicit(&m->expiring_at, memory_order_acquire);
        help(b, "scepter_identities_expiring", "gauge",
             "Enrolled devices whose identity expires within identity_renew_days "
             "(counted again after a renewal, otherwise at most once a minute).");
        unsigned long long renewed = get(&m->identities_renewed);
        if (at != 0 && now - at < EXPIRING_EVERY && now >= at &&
            atomic_load_explicit(&m->expiring_renewed, memory_order_relaxed) == renewed) {
            buf_printf(b, "scepter_identities_expiring %lld\n",
                       (long long)atomic_load_explicit(&m->expiring_count, memory_order_relaxed));
        } else if (store_identities_expiring(ctx->store,
                                             now + ctx->cfg->identity_renew_days * 86400, &expiring,
                                             &err) == 0) {
            atomic_store_explicit(&m->expiring_count, expiring, memory_order_relaxed);
            atomic_store_explicit(&m->expiring_renewed, renewed, memory_order_relaxed);
            atomic_store_explicit(&m->expiring_at, now, memory_order_release);
            buf_printf(b, "scepter_identities_expiring %lld\n", (long long)expiring);
        }
    }
    help(b, "scepter_commands_expired_total", "counter",
         "Queued commands that reached their expires_in before a result (status Expired).");
    buf_printf(b, "scepter_commands_expired_total %llu\n", get(&m->commands_expired));
    help(b, "scepter_outbox_dead", "gauge",
         "Webhook events in the dead letters (GET /v1/webhooks/dead-letters).");
    if (store_outbox_dead_count(ctx->store, "webhook", &outbox, &err) == 0)
        buf_printf(b, "scepter_outbox_dead %lld\n", (long long)outbox);

    help(b, "scepter_cache_bytes", "gauge",
         "Memory held by each cache, all workers together: decoded device certificates "
         "(bounded by identity_cache_bytes per worker) and the verified-identity tables.");
    buf_printf(b, "scepter_cache_bytes{cache=\"certificates\"} %lld\n",
               (long long)atomic_load_explicit(&m->cache_bytes[MDM_CACHE_CERTIFICATES],
                                               memory_order_relaxed));
    buf_printf(b, "scepter_cache_bytes{cache=\"identities\"} %lld\n",
               (long long)atomic_load_explicit(&m->cache_bytes[MDM_CACHE_IDENTITIES],
                                               memory_order_relaxed));

    if (mdm_push_state(ctx->srv, &st) == 0) {
        help(b, "scepter_push_results_total", "counter", "Final push results by kind.");
        for (size_t k = 0; k < APNS_KIND_COUNT; k++)
            buf_printf(b, "scepter_push_results_total{result=\"%s\"} %llu\n",
                       apns_kind_name((enum apns_kind)k), (unsigned long long)st.results[k]);
        help(b, "scepter_push_responses_total", "counter", "APNs answers by reason.");
        for (size_t i = 0; i < APNS_REASON_SLOTS; i++)
            if (st.by_reason[i])
                buf_printf(b, "scepter_push_responses_total{reason=\"%s\"} %llu\n",
                           apns_reason_slot_name(i), (unsigned long long)st.by_reason[i]);
        for (size_t i = 0; i < APNS_STATUS_SLOTS; i++)
            if (st.by_status[i])
                buf_printf(b, "scepter_push_status_total{status=\"%d\"} %llu\n",
                           apns_status_slot_code(i), (unsigned long long)st.by_status[i]);
        help(b, "scepter_push_latency_seconds", "histogram", "APNs round trip per request.");
        unsigned long long cum = 0;
        for (size_t i = 0; i < APNS_LATENCY_BUCKETS; i++) {
            cum += st.latency[i];
            buf_printf(b, "scepter_push_latency_seconds_bucket{le=\"%g\"} %llu\n",
                       apns_latency_bound_ms(i) / 1000.0, cum);
        }
        cum += st.latency[APNS_LATENCY_BUCKETS];
        buf_printf(b, "scepter_push_latency_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
        buf_printf(b, "scepter_push_latency_seconds_sum %.3f\n", st.latency_sum_ms / 1000.0);
        buf_printf(b, "scepter_push_latency_seconds_count %llu\n", cum);
        help(b, "scepter_push_invalid_total", "counter",
             "Pushes skipped (the others of their batch sent) because the stored token or "
             "PushMagic is not what APNs accepts.");
        buf_printf(b, "scepter_push_invalid_total %llu\n", (unsigned long long)st.invalid);
        help(b, "scepter_push_resent_total", "counter",
             "Push requests sent again because their connection was lost before the answer.");
        buf_printf(b, "scepter_push_resent_total %llu\n", (unsigned long long)st.resent);
        help(b, "scepter_push_connects_total", "counter", "HTTP/2 connections to APNs made.");
        buf_printf(b, "scepter_push_connects_total %llu\n", (unsigned long long)st.connects);
        help(b, "scepter_push_connect_failures_total", "counter",
             "Connection attempts to APNs that failed (DNS, TCP, TLS, HTTP/2 set-up).");
        buf_printf(b, "scepter_push_connect_failures_total %llu\n",
                   (unsigned long long)st.connect_failures);
        help(b, "scepter_push_halted", "gauge",
             "1 when pushing has stopped until a new push certificate is loaded (refused or "
             "expired; the log says which).");
        buf_printf(b, "scepter_push_halted %d\n", st.state == APNS_STATE_HALTED);
        help(b, "scepter_push_cert_not_after_seconds", "gauge",
             "When the push certificate expires (Unix time).");
        buf_printf(b, "scepter_push_cert_not_after_seconds %lld\n", (long long)st.cert_not_after);
        help(b, "scepter_push_cert_expired", "gauge", "1 when the push certificate has expired.");
        buf_printf(b, "scepter_push_cert_expired %d\n",
                   st.cert_not_after > 0 && (int64_t)time(NULL) > st.cert_not_after);
        help(b, "scepter_push_queued", "gauge", "Pushes waiting to be sent.");
        buf_printf(b, "scepter_push_queued %zu\n", st.queued);
        help(b, "scepter_push_connections", "gauge", "HTTP/2 connections to APNs that are up.");
        buf_printf(b, "scepter_push_connections %d\n", st.conns_up);
    }
}
