/*
 * Private to mdm/: webhook events (mdm/webhook.c) and the settings SIGHUP may change while
 * running (mdm/reload.c).
 */
#ifndef SCEPTER_MDM_WEBHOOK_INT_H
#define SCEPTER_MDM_WEBHOOK_INT_H

#include <jansson.h>

#include "mdm/mdm_int.h"

struct mdm_runtime;

/* Queue a check-in event (mdm.<MessageType>) in the outbox when webhooks are on. */
void mdm_webhook_checkin(struct mdm_ctx *ctx, const char *message_type, const struct mdm_ids *ids,
                         const void *raw, size_t raw_len, int64_t now);
/* Queue a command-result event (mdm.Connect). */
void mdm_webhook_result(struct mdm_ctx *ctx, const struct mdm_ids *ids, const char *status,
                        const char *command_uuid, const void *raw, size_t raw_len, int64_t now);
/* Queue any event under topic (the object is stolen and sent as {"event": ...}). */
void mdm_webhook_event(struct mdm_ctx *ctx, const char *topic, json_t *event, int64_t now);
/* Start the delivery job. */
void mdm_webhook_start(struct mdm_runtime *rt);

#endif
