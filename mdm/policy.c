/*
 * Policies reaching devices: what happens when a device enrolls (or joins a group) later.
 */
#include "common/log.h"
#include "mdm/mdm_int.h"

void mdm_device_enrolled(struct mdm_ctx *ctx, const char *device_id, int64_t now)
{
    const char *ids[1] = {device_id};

    (void)now;
    log_kv(LOG_LVL_INFO, "enrolled", "device", device_id, NULL);
    mdm_push_enrollments(ctx, ids, 1);
}
