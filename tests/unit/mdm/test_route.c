/*
 * Routing (mdm_route), called directly: which handler answers which path, method and
 * content type, the body limits of each side, and the unauthenticated endpoints.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "hfix.h"

TestSuite(route, .init = hf_setup, .fini = hf_teardown);

#define CT_CHECKIN "application/x-apple-aspen-mdm-checkin"
#define CT_CONNECT "application/x-apple-aspen-mdm"
#define UDID_A     "<key>UDID</key><string>" HF_UDID_A "</string>"
#define CHECKOUT   "<key>MessageType</key><string>CheckOut</string>" UDID_A
#define IDLE       "<key>Status</key><string>Idle</string>" UDID_A

struct rrow {
    const char *path;
    enum mdm_method method;
    const char *content_type;
    enum hf_id id;
    const char *frag; /* plist dict, or NULL for an empty body */
    int status;
    const char *event;      /* reply->event: which handler answered */
    const char *text_has;   /* in the reply body or reason, or NULL */
    bool checked_out_after; /* device A checked out by the request */
};

static const struct rrow rows[] = {
    {"/mdm/checkin", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 200, "checkin", NULL, true},
    {"/checkin", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 200, "checkin", NULL, true},
    {"/mdm", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 200, "checkin", NULL, true},
    {"/mdm", MDM_PUT, "application/x-apple-aspen-mdm-checkin; charset=utf-8", HF_ID_A, CHECKOUT,
     200, "checkin", NULL, true},
    {"/mdm", MDM_PUT, CT_CONNECT, HF_ID_A, IDLE, 200, "connect", NULL, false},
    /* /mdm without a content type goes to the command channel, which refuses it */
    {"/mdm", MDM_PUT, NULL, HF_ID_A, CHECKOUT, 415, "connect", "application/x-apple-aspen-mdm",
     false},
    {"/mdm/connect", MDM_PUT, CT_CONNECT, HF_ID_A, IDLE, 200, "connect", NULL, false},
    {"/connect", MDM_PUT, CT_CONNECT, HF_ID_A, IDLE, 200, "connect", NULL, false},
    /* a check-in body on the connect path is not a check-in */
    {"/mdm/connect", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 415, "connect", NULL, false},
    {"/mdm/checkin", MDM_PUT, CT_CONNECT, HF_ID_A, IDLE, 415, "checkin", NULL, false},
    {"/mdm/checkin", MDM_GET, CT_CHECKIN, HF_ID_A, CHECKOUT, 405, "checkin", NULL, false},
    {"/mdm/checkin", MDM_PUT, CT_CHECKIN, HF_ID_NONE, CHECKOUT, 403, "checkin",
     "no device identity", false},
    {"/mdm/checkin", MDM_PUT, CT_CHECKIN, HF_ID_B, CHECKOUT, 403, "checkin",
     "bound to another device", false},
    {"/mdm/checkin/", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 404, "http", "no such endpoint",
     false},
    {"/mdm/checkinX", MDM_PUT, CT_CHECKIN, HF_ID_A, CHECKOUT, 404, "http", "no such endpoint",
     false},
    {"/healthz", MDM_GET, NULL, HF_ID_NONE, NULL, 200, "healthz", "\"store\":\"sqlite\"", false},
    {"/healthz", MDM_HEAD, NULL, HF_ID_NONE, NULL, 200, "healthz", "\"status\":\"ok\"", false},
    {"/healthz", MDM_POST, NULL, HF_ID_NONE, NULL, 405, "healthz", NULL, false},
    {"/metrics", MDM_GET, NULL, HF_ID_NONE, NULL, 200, "metrics", "scepter_", false},
    {"/metrics", MDM_PUT, NULL, HF_ID_NONE, NULL, 405, "metrics", NULL, false},
    {"/v1/devices", MDM_GET, NULL, HF_ID_NONE, NULL, 401, "api", NULL, false},
    {"/v1", MDM_GET, NULL, HF_ID_NONE, NULL, 401, "api", NULL, false},
    {"/v1x", MDM_GET, NULL, HF_ID_NONE, NULL, 404, "http", "no such endpoint", false},
    {"/nope", MDM_GET, NULL, HF_ID_NONE, NULL, 404, "http", "no such endpoint", false},
};

static void route_one(const struct rrow *rw, struct mdm_reply *reply)
{
    char *body = rw->frag ? hf_body(rw->frag) : xstrdup("");
    struct hf_req r = {.path = rw->path,
                       .method = rw->method,
                       .content_type = rw->content_type,
                       .id = rw->id,
                       .body = body};

    hf_route(&r, reply);
    free(body);
}

Test(route, each_path_reaches_its_handler)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct rrow *rw = &rows[i];
        struct mdm_reply reply;
        char uuid[37];

        hf_reset(HF_ENROLLED);
        hf_enqueue(HF_UDID_A, 1, "ProfileList", uuid);
        route_one(rw, &reply);
        cr_assert_eq(reply.status, rw->status, "%s %s: %d (%s), want %d", rw->path,
                     rw->content_type ? rw->content_type : "-", reply.status, reply.reason,
                     rw->status);
        cr_assert_not_null(reply.event, "%s", rw->path);
        cr_assert_str_eq(reply.event, rw->event, "%s", rw->path);
        if (rw->text_has)
            cr_assert(strstr(hf_text(&reply), rw->text_has) || strstr(reply.reason, rw->text_has),
                      "%s: %s / %s", rw->path, hf_text(&reply), reply.reason);
        if (strcmp(rw->event, "connect") == 0 && rw->status == 200)
            cr_assert_not_null(strstr(hf_text(&reply), uuid), "%s: the queued command", rw->path);
        cr_assert_eq(hf_enrolled(HF_UDID_A), !rw->checked_out_after, "%s", rw->path);
        mdm_reply_free(&reply);
    }
}

Test(route, body_limits_of_each_side)
{
    struct scepter_error err;
    struct mdm_reply reply;
    char *big;
    struct hf_req r = {
        .path = "/mdm/checkin", .method = MDM_PUT, .content_type = CT_CHECKIN, .id = HF_ID_A};

    hf_reset(HF_ENROLLED);
    cr_assert_eq(cfg_set(hf.cfg, "max_device_body_bytes", "1024", "test", &err), 0, "%s", err.msg);
    cr_assert_eq(cfg_set(hf.cfg, "max_api_body_bytes", "2048", "test", &err), 0, "%s", err.msg);
    big = xmalloc(4096);
    memset(big, ' ', 4095);
    big[4095] = '\0';
    memcpy(big, "<plist", 6);

    static const char *const device_paths[] = {"/mdm/checkin", "/checkin", "/mdm/connect",
                                               "/connect",     "/mdm",     "/mdm/enroll"};
    for (size_t i = 0; i < sizeof(device_paths) / sizeof(device_paths[0]); i++) {
        r.path = device_paths[i];
        r.body = big;
        r.body_len = 1025;
        hf_route(&r, &reply);
        cr_assert_eq(reply.status, 413, "%s: %d", r.path, reply.status);
        cr_assert_not_null(strstr(reply.reason, "max_device_body_bytes (1024)"), "%s",
                           reply.reason);
        mdm_reply_free(&reply);
    }
    /* at the limit, the handler reads it (and refuses it as a plist) */
    r.path = "/mdm/checkin";
    r.body_len = 1024;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 400, "%d %s", reply.status, reply.reason);
    mdm_reply_free(&reply);
    /* the API side has its own limit */
    r.path = "/v1/devices";
    r.method = MDM_POST;
    r.body_len = 2049;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 413);
    cr_assert_not_null(strstr(reply.reason, "max_api_body_bytes (2048)"), "%s", reply.reason);
    mdm_reply_free(&reply);
    r.body_len = 2048;
    hf_route(&r, &reply);
    cr_assert_neq(reply.status, 413, "%s", reply.reason);
    mdm_reply_free(&reply);
    /* other paths are bounded by neither */
    r.path = "/healthz";
    r.method = MDM_GET;
    r.body_len = 4095;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200);
    mdm_reply_free(&reply);
    cr_assert(hf_enrolled(HF_UDID_A));
    free(big);
}

Test(route, healthz_reports_an_unreachable_store)
{
    struct mdm_reply reply;
    struct hf_req r = {.path = "/healthz", .method = MDM_GET, .id = HF_ID_NONE, .body = ""};

    hf_reset(HF_EMPTY);
    store_fail_after(hf.store, 1);
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 503);
    cr_assert_not_null(strstr(reply.reason, "store unreachable"), "%s", reply.reason);
    mdm_reply_free(&reply);
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200, "%s", reply.reason);
    mdm_reply_free(&reply);
}
