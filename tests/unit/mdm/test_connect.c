/*
 * The command channel (mdm_command_handle), called directly: every Status a device reports
 * (Idle, Acknowledged, Error, CommandFormatError, NotNow) with its success and failure paths
 * — missing and wrong-type fields, an unknown device, a device that is not enrolled, a
 * certificate of another device, an unknown command UUID, a duplicate acknowledgement, a
 * store failure — asserting the reply and the queue afterwards.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "hfix.h"

TestSuite(connect, .init = hf_setup, .fini = hf_teardown);

#define UDID_A       "<key>UDID</key><string>" HF_UDID_A "</string>"
#define ST(s)        "<key>Status</key><string>" s "</string>"
#define CMD1         "00000000-0000-4000-8000-000000000001"
#define CMD2         "00000000-0000-4000-8000-000000000002"
#define CU(u)        "<key>CommandUUID</key><string>" u "</string>"
#define UNRECOGNIZED "com.apple.unrecognized.device"
#define CHAIN                                                                                      \
    "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer>"               \
    "<key>ErrorDomain</key><string>MCInstallationErrorDomain</string>"                             \
    "<key>LocalizedDescription</key><string>Profile could not be installed</string></dict>"        \
    "</array>"

struct crow {
    const char *name;
    enum hf_state state;
    enum hf_id id;
    void (*pre)(void); /* after CMD1 (DeviceInformation) and CMD2 (ProfileList) are queued */
    const char *frag;
    int status;
    const char *body_has;   /* in the reply body, or NULL (then a 200 has an empty body) */
    const char *reason_has; /* in the logged reason, or NULL */
    void (*check)(void);
    int fail_call; /* store_fail_after(n) before the call, 0: none */
};

/* ---- before ------------------------------------------------------------------------------- */

static void empty_queue(void)
{
    struct scepter_error err;
    size_t n = 0;

    cr_assert_eq(store_queue_clear(hf.store, HF_UDID_A, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
}

static void cmd1_acknowledged(void)
{
    struct scepter_error err;
    struct store_next next;
    enum store_report_outcome out;
    static const char raw[] = "<plist/>";
    struct store_report rep = {.enrollment_id = HF_UDID_A,
                               .device_id = HF_UDID_A,
                               .status = STORE_STATUS_ACKNOWLEDGED,
                               .command_uuid = CMD1,
                               .raw = (const unsigned char *)raw,
                               .raw_len = sizeof(raw) - 1};

    memset(&next, 0, sizeof(next));
    cr_assert_geq(store_connect(hf.store, &rep, HF_NOW - 5, &next, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out, STORE_REPORT_RECORDED);
    store_next_clear(&next);
}

/* ---- after -------------------------------------------------------------------------------- */

static void status_is(const char *uuid, const char *want)
{
    const char *st = hf_cmd_status(HF_UDID_A, uuid, NULL);
    cr_assert_str_eq(st, want, "command %s: %s, want %s", uuid, st, want);
}

static void nothing_recorded(void)
{
    status_is(CMD1, "queued");
    status_is(CMD2, "queued");
    cr_assert_eq(hf_outbox(), 0, "a webhook event for a result that was not recorded");
}

static void cmd1_is_acknowledged(void)
{
    struct scepter_error err;
    struct store_result r;

    status_is(CMD1, "Acknowledged");
    status_is(CMD2, "queued");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(store_result_get(hf.store, HF_UDID_A, CMD1, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.result_at, HF_NOW);
    cr_assert_not_null(r.raw);
    cr_assert_not_null(memmem(r.raw, r.raw_len, "Acknowledged", 12), "the raw result");
    store_result_clear(&r);
    cr_assert_eq(hf_outbox(), 1, "one mdm.Connect webhook event");
}

static void facts_updated(void)
{
    struct scepter_error err;
    struct store_device d;

    cmd1_is_acknowledged();
    cr_assert_eq(store_device_get(hf.store, HF_UDID_A, &d, &err), 0, "%s", err.msg);
    cr_assert_str_eq(d.device_name, "HF Mac");
    cr_assert_str_eq(d.os_version, "14.1");
    store_device_clear(&d);
}

static void cmd1_is_error(void)
{
    struct scepter_error err;
    struct store_result r;

    status_is(CMD1, "Error");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(store_result_get(hf.store, HF_UDID_A, CMD1, &r, &err), 0, "%s", err.msg);
    cr_assert_not_null(r.error_chain_json);
    cr_assert_not_null(strstr(r.error_chain_json, "\"ErrorCode\":12021"), "%s", r.error_chain_json);
    cr_assert_not_null(strstr(r.error_chain_json, "MCInstallationErrorDomain"), "%s",
                       r.error_chain_json);
    store_result_clear(&r);
    cr_assert_eq(hf_outbox(), 1);
}

static void cmd1_is_format_error(void)
{
    status_is(CMD1, "CommandFormatError");
    cr_assert_eq(hf_outbox(), 1);
}

static void cmd1_is_notnow(void)
{
    int nn = 0;

    cr_assert_str_eq(hf_cmd_status(HF_UDID_A, CMD1, &nn), "NotNow");
    cr_assert_eq(nn, 1);
    status_is(CMD2, "queued");
    cr_assert_eq(hf_outbox(), 1);
}

static void duplicate_kept_once(void)
{
    struct scepter_error err;
    struct store_result r;

    status_is(CMD1, "Acknowledged");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(store_result_get(hf.store, HF_UDID_A, CMD1, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.result_at, HF_NOW - 5, "the duplicate replaced the first result");
    store_result_clear(&r);
    cr_assert_eq(hf_outbox(), 0, "a webhook event for a duplicate");
}

/* ---- the table ---------------------------------------------------------------------------- */

static const struct crow rows[] = {
    /* Idle */
    {"Idle: the first queued command", HF_ENROLLED, HF_ID_A, NULL, ST("Idle") UDID_A, 200,
     "<string>" CMD1 "</string>", NULL, nothing_recorded, 0},
    {"Idle: nothing queued", HF_ENROLLED, HF_ID_A, empty_queue, ST("Idle") UDID_A, 200, NULL, NULL,
     NULL, 0},
    {"Idle: unknown device", HF_UNKNOWN, HF_ID_A, NULL, ST("Idle") UDID_A, 403, UNRECOGNIZED,
     "enrollment " HF_UDID_A " is unknown", NULL, 0},
    {"Idle: authenticated, no TokenUpdate", HF_AUTHED, HF_ID_A, NULL, ST("Idle") UDID_A, 403,
     UNRECOGNIZED, "is not enabled", NULL, 0},
    {"Idle: checked out", HF_CHECKED_OUT, HF_ID_A, NULL, ST("Idle") UDID_A, 403, UNRECOGNIZED,
     "is not enabled", NULL, 0},
    {"Idle: certificate of another device", HF_ENROLLED, HF_ID_B, NULL, ST("Idle") UDID_A, 403,
     NULL, "not bound to " HF_UDID_A, nothing_recorded, 0},
    {"Idle: a certificate not bound yet", HF_ENROLLED, HF_ID_A2, NULL, ST("Idle") UDID_A, 403, NULL,
     "not bound to " HF_UDID_A, nothing_recorded, 0},
    {"Idle: no certificate", HF_ENROLLED, HF_ID_NONE, NULL, ST("Idle") UDID_A, 403, NULL,
     "no device identity", nothing_recorded, 0},
    {"Idle: certificate of another CA", HF_ENROLLED, HF_ID_FOREIGN, NULL, ST("Idle") UDID_A, 403,
     NULL, "does not verify against the device CA", nothing_recorded, 0},
    {"Idle: a user channel never updated", HF_ENROLLED, HF_ID_A, NULL,
     ST("Idle") UDID_A "<key>UserID</key><string>U-501</string>", 403, UNRECOGNIZED, "unknown",
     nothing_recorded, 0},
    {"Idle: store failure", HF_ENROLLED, HF_ID_A, NULL, ST("Idle") UDID_A, 503, NULL,
     "injected failure", nothing_recorded, 1},

    /* Acknowledged */
    {"Acknowledged: recorded, the next command", HF_ENROLLED, HF_ID_A, NULL,
     ST("Acknowledged") UDID_A CU(CMD1), 200, "<string>" CMD2 "</string>", NULL,
     cmd1_is_acknowledged, 0},
    {"Acknowledged: DeviceInformation refreshes the facts", HF_ENROLLED, HF_ID_A, NULL,
     ST("Acknowledged") UDID_A CU(CMD1) "<key>RequestType</key><string>DeviceInformation</string>"
                                        "<key>QueryResponses</key><dict><key>DeviceName</key>"
                                        "<string>HF Mac</string><key>OSVersion</key>"
                                        "<string>14.1</string></dict>",
     200, CMD2, NULL, facts_updated, 0},
    {"Acknowledged: a duplicate", HF_ENROLLED, HF_ID_A, cmd1_acknowledged,
     ST("Acknowledged") UDID_A CU(CMD1), 200, CMD2, NULL, duplicate_kept_once, 0},
    {"Acknowledged: an unknown command UUID", HF_ENROLLED, HF_ID_A, NULL,
     ST("Acknowledged") UDID_A CU("00000000-0000-4000-8000-0000000000FF"), 200, CMD1, NULL,
     nothing_recorded, 0},
    {"Acknowledged: no CommandUUID", HF_ENROLLED, HF_ID_A, NULL, ST("Acknowledged") UDID_A, 400,
     NULL, "Acknowledged: CommandUUID", nothing_recorded, 0},
    {"Acknowledged: CommandUUID not a string", HF_ENROLLED, HF_ID_A, NULL,
     ST("Acknowledged") UDID_A "<key>CommandUUID</key><integer>1</integer>", 400, NULL,
     "CommandUUID", nothing_recorded, 0},
    {"Acknowledged: empty CommandUUID", HF_ENROLLED, HF_ID_A, NULL,
     ST("Acknowledged") UDID_A CU(""), 400, NULL, "CommandUUID: empty or too long",
     nothing_recorded, 0},
    {"Acknowledged: unknown device", HF_UNKNOWN, HF_ID_A, NULL, ST("Acknowledged") UDID_A CU(CMD1),
     403, UNRECOGNIZED, NULL, NULL, 0},
    {"Acknowledged: certificate of another device", HF_ENROLLED, HF_ID_B, NULL,
     ST("Acknowledged") UDID_A CU(CMD1), 403, NULL, "not bound to", nothing_recorded, 0},
    {"Acknowledged: not enrolled", HF_AUTHED, HF_ID_A, NULL, ST("Acknowledged") UDID_A CU(CMD1),
     403, UNRECOGNIZED, "is not enabled", NULL, 0},
    {"Acknowledged: store failure", HF_ENROLLED, HF_ID_A, NULL, ST("Acknowledged") UDID_A CU(CMD1),
     503, NULL, "injected failure", nothing_recorded, 1},

    /* Error */
    {"Error: recorded with its ErrorChain", HF_ENROLLED, HF_ID_A, NULL,
     ST("Error") UDID_A CU(CMD1) CHAIN, 200, CMD2, NULL, cmd1_is_error, 0},
    {"Error: ErrorChain of strings", HF_ENROLLED, HF_ID_A, NULL,
     ST("Error") UDID_A CU(CMD1) "<key>ErrorChain</key><array><string>x</string></array>", 400,
     NULL, "ErrorChain[0]: expected dict", nothing_recorded, 0},
    {"Error: ErrorChain not an array", HF_ENROLLED, HF_ID_A, NULL,
     ST("Error") UDID_A CU(CMD1) "<key>ErrorChain</key><dict/>", 400, NULL, "ErrorChain",
     nothing_recorded, 0},
    {"Error: no CommandUUID", HF_ENROLLED, HF_ID_A, NULL, ST("Error") UDID_A CHAIN, 400, NULL,
     "Error: CommandUUID", nothing_recorded, 0},
    {"Error: unknown device", HF_UNKNOWN, HF_ID_A, NULL, ST("Error") UDID_A CU(CMD1) CHAIN, 403,
     UNRECOGNIZED, NULL, NULL, 0},
    {"Error: store failure", HF_ENROLLED, HF_ID_A, NULL, ST("Error") UDID_A CU(CMD1) CHAIN, 503,
     NULL, "injected failure", nothing_recorded, 1},

    /* CommandFormatError */
    {"CommandFormatError: recorded", HF_ENROLLED, HF_ID_A, NULL,
     ST("CommandFormatError") UDID_A CU(CMD1), 200, CMD2, NULL, cmd1_is_format_error, 0},
    {"CommandFormatError: no CommandUUID", HF_ENROLLED, HF_ID_A, NULL,
     ST("CommandFormatError") UDID_A, 400, NULL, "CommandUUID", nothing_recorded, 0},
    {"CommandFormatError: certificate of another device", HF_ENROLLED, HF_ID_B, NULL,
     ST("CommandFormatError") UDID_A CU(CMD1), 403, NULL, "not bound to", nothing_recorded, 0},
    {"CommandFormatError: store failure", HF_ENROLLED, HF_ID_A, NULL,
     ST("CommandFormatError") UDID_A CU(CMD1), 503, NULL, "injected failure", nothing_recorded, 1},

    /* NotNow */
    {"NotNow: recorded, skipped for this exchange", HF_ENROLLED, HF_ID_A, NULL,
     ST("NotNow") UDID_A CU(CMD1), 200, "<string>" CMD2 "</string>", NULL, cmd1_is_notnow, 0},
    {"NotNow: no CommandUUID", HF_ENROLLED, HF_ID_A, NULL, ST("NotNow") UDID_A, 400, NULL,
     "NotNow: CommandUUID", nothing_recorded, 0},
    {"NotNow: checked out", HF_CHECKED_OUT, HF_ID_A, NULL, ST("NotNow") UDID_A CU(CMD1), 403,
     UNRECOGNIZED, NULL, NULL, 0},
    {"NotNow: store failure", HF_ENROLLED, HF_ID_A, NULL, ST("NotNow") UDID_A CU(CMD1), 503, NULL,
     "injected failure", nothing_recorded, 1},

    /* The Status itself */
    {"no Status", HF_ENROLLED, HF_ID_A, NULL, UDID_A CU(CMD1), 400, NULL, "Status",
     nothing_recorded, 0},
    {"Status not a string", HF_ENROLLED, HF_ID_A, NULL,
     "<key>Status</key><integer>0</integer>" UDID_A, 400, NULL, "Status", nothing_recorded, 0},
    {"unknown Status", HF_ENROLLED, HF_ID_A, NULL, ST("Done") UDID_A CU(CMD1), 400, NULL,
     "unknown Status 'Done'", nothing_recorded, 0},
    {"no UDID", HF_ENROLLED, HF_ID_A, NULL, ST("Acknowledged") CU(CMD1), 400, NULL,
     "UDID or EnrollmentID: required", nothing_recorded, 0},
};

static void run(const struct crow *r, const char *frag)
{
    struct mdm_reply reply;
    char uuid[37], *body;

    hf_reset(r->state);
    if (r->state == HF_ENROLLED) {
        hf_enqueue(HF_UDID_A, 1, "DeviceInformation", uuid);
        hf_enqueue(HF_UDID_A, 2, "ProfileList", uuid);
    }
    if (r->pre)
        r->pre();
    if (r->fail_call)
        store_fail_after(hf.store, r->fail_call);
    body = hf_body(frag ? frag : r->frag);
    hf_connect(r->id, body, &reply);
    store_fail_after(hf.store, 0);
    cr_assert_eq(reply.status, r->status, "%s: status %d (%s), want %d", r->name, reply.status,
                 reply.reason, r->status);
    cr_assert_str_eq(reply.event, "connect", "%s", r->name);
    if (r->status == 200 && r->body_has == NULL)
        cr_assert_eq(reply.body.len, 0, "%s: a non-empty body: %s", r->name, hf_text(&reply));
    if (r->body_has)
        cr_assert_not_null(strstr(hf_text(&reply), r->body_has), "%s: body %s", r->name,
                           hf_text(&reply));
    if (r->status == 200 && r->body_has) {
        /* the command handed out is named for the request log */
        cr_assert_not_null(strstr(r->body_has, reply.command_uuid), "%s: %s", r->name,
                           reply.command_uuid);
        cr_assert_str_eq(reply.content_type, "application/xml; charset=UTF-8");
    }
    if (r->reason_has)
        cr_assert_not_null(strstr(reply.reason, r->reason_has), "%s: reason %s", r->name,
                           reply.reason);
    if (r->check)
        r->check();
    mdm_reply_free(&reply);
    free(body);
}

Test(connect, every_status_through_the_handler)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run(&rows[i], NULL);
}

Test(connect, the_table_covers_every_status)
{
    for (int st = STORE_STATUS_IDLE; st <= STORE_STATUS_NOTNOW; st++) {
        char want[80];
        size_t ok = 0, bad = 0;
        snprintf(want, sizeof(want), "<string>%s</string>", store_status_name(st));
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
            if (strstr(rows[i].frag, want)) {
                ok += rows[i].status == 200;
                bad += rows[i].status != 200;
            }
        cr_assert_gt(ok, 0, "%s: no success row", store_status_name(st));
        cr_assert_gt(bad, 0, "%s: no failure row", store_status_name(st));
    }
}

Test(connect, an_oversized_command_uuid_is_refused)
{
    char big[200], *frag;
    struct crow r = {
        "oversized CommandUUID",          HF_ENROLLED,      HF_ID_A, NULL, NULL, 400, NULL,
        "CommandUUID: empty or too long", nothing_recorded, 0};

    memset(big, 'F', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    frag = xasprintf(ST("Acknowledged") UDID_A "<key>CommandUUID</key><string>%s</string>", big);
    run(&r, frag);
    free(frag);
}

/* A failure at any statement of the exchange keeps nothing: the command stays queued, no
 * result, no webhook event; the same report then succeeds. */
Test(connect, a_store_failure_at_any_statement_keeps_nothing)
{
    struct mdm_reply reply;
    char uuid[37], *body = hf_body(ST("Error") UDID_A CU(CMD1) CHAIN);
    int k, status = 0;

    hf_reset(HF_ENROLLED);
    hf_enqueue(HF_UDID_A, 1, "DeviceInformation", uuid);
    hf_enqueue(HF_UDID_A, 2, "ProfileList", uuid);
    for (k = 1; k <= 30 && status != 200; k++) {
        store_fail_statement_after(hf.store, k);
        hf_connect(HF_ID_A, body, &reply);
        store_fail_statement_after(hf.store, 0);
        status = reply.status;
        if (status != 200) {
            cr_assert_eq(status, 503, "k=%d: %d %s", k, status, reply.reason);
            nothing_recorded();
        }
        mdm_reply_free(&reply);
    }
    cr_assert_eq(status, 200, "the report never went through");
    cr_assert_gt(k, 2, "the exchange should take several statements");
    status_is(CMD1, "Error");
    status_is(CMD2, "queued");
    /* The first success is the first failure point past the exchange's transaction: what
     * fails then is the webhook event's insert, which is lost (logged, "not queued"). */
    cr_assert_leq(hf_outbox(), 1);
    free(body);
}

/* The HTTP layer may take an Idle poll to answer it batched: the handler then answers
 * nothing and writes nothing. */
static int deferred_calls;
static char deferred_enrollment[64];

static int take_idle(const struct mdm_request *req, const char *enrollment_id,
                     const char *device_id, const char *cert_hash)
{
    (void)req;
    (void)device_id;
    cr_assert_str_eq(cert_hash, hf.hash[HF_ID_A]);
    snprintf(deferred_enrollment, sizeof(deferred_enrollment), "%s", enrollment_id);
    deferred_calls++;
    return 0;
}

Test(connect, an_idle_poll_taken_by_the_http_layer)
{
    struct mdm_reply reply;
    char uuid[37], *body = hf_body(ST("Idle") UDID_A);
    struct hf_req r = {.path = "connect",
                       .method = MDM_PUT,
                       .content_type = "application/x-apple-aspen-mdm",
                       .id = HF_ID_A,
                       .body = body,
                       .defer_idle = take_idle};

    hf_reset(HF_ENROLLED);
    hf_enqueue(HF_UDID_A, 1, "DeviceInformation", uuid);
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, MDM_REPLY_DEFERRED, "%d %s", reply.status, reply.reason);
    cr_assert_eq(deferred_calls, 1);
    cr_assert_str_eq(deferred_enrollment, HF_UDID_A);
    cr_assert_eq(reply.body.len, 0);
    status_is(CMD1, "queued");
    mdm_reply_free(&reply);
    /* a result is never deferred */
    free(body);
    body = hf_body(ST("Acknowledged") UDID_A CU(CMD1));
    r.body = body;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200, "%s", reply.reason);
    cr_assert_eq(deferred_calls, 1);
    status_is(CMD1, "Acknowledged");
    mdm_reply_free(&reply);
    free(body);
}

/* mdm_idle_answer: what the HTTP layer answers once the batched poll is back. */
Test(connect, idle_answer_for_each_store_outcome)
{
    static const char plist[] = "<plist><dict/></plist>";
    struct store_next next = {.uuid = CMD1,
                              .request_type = (char *)"ProfileList",
                              .plist = (unsigned char *)plist,
                              .plist_len = sizeof(plist) - 1};
    struct scepter_error err = {0};
    struct mdm_reply reply;

    hf_reset(HF_ENROLLED);
    mdm_reply_init(&reply);
    mdm_idle_answer(&hf.ctx, "r1", HF_UDID_A, HF_UDID_A, hf.hash[HF_ID_A], 1, &err, &next, HF_NOW,
                    &reply);
    cr_assert_eq(reply.status, 200);
    cr_assert_str_eq(hf_text(&reply), plist);
    cr_assert_str_eq(reply.command_uuid, CMD1);
    cr_assert_str_eq(reply.message_type, "Idle");
    mdm_reply_free(&reply);

    mdm_reply_init(&reply);
    mdm_idle_answer(&hf.ctx, "r2", HF_UDID_A, HF_UDID_A, hf.hash[HF_ID_A], 0, &err, &next, HF_NOW,
                    &reply);
    cr_assert_eq(reply.status, 200);
    cr_assert_eq(reply.body.len, 0);
    mdm_reply_free(&reply);

    scepter_err(&err, SCEPTER_EFORBIDDEN, "cert_hash", "the device certificate is not bound");
    mdm_reply_init(&reply);
    mdm_idle_answer(&hf.ctx, "r3", HF_UDID_A, HF_UDID_A, hf.hash[HF_ID_B], SCEPTER_EFORBIDDEN, &err,
                    NULL, HF_NOW, &reply);
    cr_assert_eq(reply.status, 403);
    cr_assert_null(strstr(hf_text(&reply), UNRECOGNIZED), "a binding refusal unenrolls nobody");
    mdm_reply_free(&reply);

    scepter_err(&err, SCEPTER_ENOTFOUND, "enrollment_id", "enrollment X is unknown");
    mdm_reply_init(&reply);
    mdm_idle_answer(&hf.ctx, "r4", "X", "X", hf.hash[HF_ID_A], SCEPTER_ENOTFOUND, &err, NULL,
                    HF_NOW, &reply);
    cr_assert_eq(reply.status, 403);
    cr_assert_not_null(strstr(hf_text(&reply), UNRECOGNIZED));
    mdm_reply_free(&reply);

    scepter_err(&err, SCEPTER_ESTORE, NULL, "store: the database connection was lost");
    mdm_reply_init(&reply);
    mdm_idle_answer(&hf.ctx, "r5", HF_UDID_A, HF_UDID_A, hf.hash[HF_ID_A], SCEPTER_ESTORE, &err,
                    NULL, HF_NOW, &reply);
    cr_assert_eq(reply.status, 503);
    cr_assert_not_null(strstr(reply.reason, "connection was lost"), "%s", reply.reason);
    mdm_reply_free(&reply);
}

Test(connect, method_and_content_type)
{
    struct mdm_reply reply;
    char *body = hf_body(ST("Idle") UDID_A);
    struct hf_req r = {.path = "connect",
                       .method = MDM_GET,
                       .content_type = "application/x-apple-aspen-mdm",
                       .id = HF_ID_A,
                       .body = body};

    hf_reset(HF_ENROLLED);
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 405);
    cr_assert_str_eq(reply.headers[0].value, "PUT");
    mdm_reply_free(&reply);
    r.method = MDM_PUT;
    r.content_type = "application/x-apple-aspen-mdm-checkin";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 415);
    mdm_reply_free(&reply);
    r.content_type = "application/x-apple-aspen-mdm";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200, "%s", reply.reason);
    mdm_reply_free(&reply);
    free(body);
}
