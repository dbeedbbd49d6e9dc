/*
 * Private to mdm/: the APNs glue (mdm/push.c).
 */
#ifndef SCEPTER_MDM_PUSH_INT_H
#define SCEPTER_MDM_PUSH_INT_H

#include <stdbool.h>

#include "apns/apns.h"
#include "mdm/mdm_int.h"

struct mdm_runtime;

/* Load the push identity (apns_cert_file or the store), start the APNs client and the
 * push-certificate / re-push jobs. */
int mdm_push_start(struct mdm_runtime *rt, struct scepter_error *err) WUR;
void mdm_push_stop(struct mdm_server *srv);
/*
 * Save a push identity in the store and use it (the API's upload, start-up's file).
 * SCEPTER_ECONFLICT when enrolled devices use another topic and !force.
 */
int mdm_push_install(struct mdm_server *srv, struct store *store, struct apns_identity *id,
                     bool force, int64_t now, struct scepter_error *err) WUR;
/* Counters and state of the APNs client; -1 (and zeros) when none runs. */
int mdm_push_state(struct mdm_server *srv, struct apns_stats *st);
/* Count a push result for /metrics (mdm/metrics.c). */
void mdm_metrics_push(struct mdm_server *srv, enum apns_kind kind, const char *reason,
                      int64_t latency_ms);

#endif
