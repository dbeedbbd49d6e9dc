/*
 * Security events: what an operator must be able to review after the fact — a refused
 * re-enrollment (the takeover attempt the binding rule stops), a re-enrollment that replaced
 * a device's identity, a revoked certificate, a removed device.  Each goes to the store's
 * event log (GET /v1/events), to the webhook, and to /metrics.
 */
#include <stdlib.h>

#include "common/log.h"
#include "mdm/metrics_int.h"
#include "mdm/webhook_int.h"

void mdm_security_event(struct mdm_ctx *ctx, enum mdm_security_kind sk, const char *kind,
                        const char *device_id, json_t *detail, int64_t now)
{
    struct scepter_error err;
    char *text;

    mdm_metrics_security(ctx->srv, sk);
    if (detail == NULL)
        return;
    text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL || store_event_add(ctx->store, kind, device_id, text, now, &err) != 0)
        log_warnx("event %s for %s not recorded: %s", kind, device_id ? device_id : "-",
                  text ? err.msg : "cannot encode it");
    free(text); /* jansson's allocation */
    mdm_webhook_event(ctx, kind, detail, now);
}
