/*
 * GET /mdm/enroll: the enrollment profile.
 */
#include "mdm/mdm_int.h"

void mdm_enroll_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                       struct mdm_reply *reply)
{
    (void)ctx;
    (void)req;
    (void)now;
    reply->event = "enroll";
    mdm_reply_error(reply, 503, "enroll: not available yet");
}
