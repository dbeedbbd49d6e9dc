/*
 * Private to mdm/: the counters behind GET /metrics (mdm/metrics.c).
 */
#ifndef SCEPTER_MDM_METRICS_INT_H
#define SCEPTER_MDM_METRICS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "mdm/mdm_int.h"

#define MDM_M_CHECKIN_TYPES    9 /* eight message types and "other" */
#define MDM_M_CONNECT_STATUSES 6 /* five statuses and "other" */
#define MDM_M_RESULTS          4 /* ok, refused, unrecognized, failed */
#define MDM_M_REQUEST_TYPES    7
#define MDM_M_COMMAND_EVENTS   5
#define MDM_M_ROUTES           7
#define MDM_M_BUCKETS          12

enum mdm_command_event {
    MDM_CMD_QUEUED = 0,
    MDM_CMD_DELIVERED,
    MDM_CMD_ACKNOWLEDGED,
    MDM_CMD_ERRORED,
    MDM_CMD_NOTNOW,
};

enum mdm_cache_kind {
    MDM_CACHE_CERTIFICATES, /* decoded device certificates (identity_cache_bytes per worker) */
    MDM_CACHE_IDENTITIES,   /* verified-identity tables, fixed size per worker */
    MDM_CACHE_KINDS
};

struct mdm_metrics {
    atomic_ullong checkins[MDM_M_CHECKIN_TYPES][MDM_M_RESULTS];
    atomic_ullong connects[MDM_M_CONNECT_STATUSES][MDM_M_RESULTS];
    atomic_ullong commands[MDM_M_COMMAND_EVENTS][MDM_M_REQUEST_TYPES];
    atomic_ullong requests[MDM_M_ROUTES];
    atomic_ullong latency[MDM_M_ROUTES][MDM_M_BUCKETS + 1];
    atomic_ullong latency_sum_us[MDM_M_ROUTES];
    atomic_ullong store_errors;
    atomic_ullong connections_opened;
    atomic_llong connections_open;
    atomic_ullong connections_refused;   /* over max_connections */
    atomic_ullong connections_timed_out; /* no whole request within request_timeout */
    atomic_ullong security[MDM_SEC_KINDS];
    atomic_ullong webhooks_delivered, webhooks_failed;
    atomic_ullong webhooks_dead;    /* events moved to the dead letters */
    atomic_ullong commands_expired; /* queue entries the expiry job closed */
    atomic_ullong identities_renewed;
    /* Bytes held by the caches (scepter_cache_bytes): MDM_CACHE_CERTIFICATES is updated by the
     * workers' certificate caches as they change, MDM_CACHE_IDENTITIES at worker start/stop. */
    atomic_llong cache_bytes[MDM_CACHE_KINDS];
    /* scepter_identities_expiring counts over every enrolled device's certificates: computed
     * at most once a minute (by whichever worker serves the scrape), not at every scrape. */
    atomic_llong expiring_count;
    atomic_llong expiring_at;       /* when it was computed (0: never) */
    atomic_ullong expiring_renewed; /* identities_renewed then: a renewal redoes the count */
};

/* Add delta bytes to a cache's gauge. */
void mdm_metrics_cache_bytes(struct mdm_server *srv, enum mdm_cache_kind which, long long delta);
struct mdm_metrics *mdm_metrics_new(void);
void mdm_metrics_free(struct mdm_metrics *m);
/* n commands of request_type went through event. */
void mdm_metrics_command(struct mdm_server *srv, enum mdm_command_event ev,
                         const char *request_type, size_t n);
void mdm_metrics_connection(struct mdm_server *srv, int delta);
void mdm_metrics_connection_refused(struct mdm_server *srv, bool timed_out);
void mdm_metrics_security(struct mdm_server *srv, enum mdm_security_kind kind);
void mdm_metrics_webhook(struct mdm_server *srv, bool delivered);
void mdm_metrics_webhook_dead(struct mdm_server *srv);
void mdm_metrics_expired(struct mdm_server *srv, size_t n);
void mdm_metrics_renewed(struct mdm_server *srv);
/* The Prometheus text exposition. */
void mdm_metrics_render(struct mdm_ctx *ctx, struct buf *b);

#endif
