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
/* webhook_idle_events: an Idle poll answered, as NanoMDM's mdm.Connect with status Idle. */
void mdm_webhook_idle(struct mdm_ctx *ctx, const char *enrollment_id, const char *device_id,
                      int64_t now);
/* A TokenUpdate's event: checkin_event with token_update_tally 1 on the channel's first
 * TokenUpdate (NanoMDM's field; later ones carry "first_token_update": false and no tally) and
 * awaiting_configuration. */
void mdm_webhook_token_update(struct mdm_ctx *ctx, const struct mdm_ids *ids, bool first,
                              bool awaiting_configuration, const void *raw, size_t raw_len,
                              int64_t now);
/* Start the delivery job. */
void mdm_webhook_start(struct mdm_runtime *rt);

#endif
