/*
 * The check-in handler (mdm_checkin_handle), called directly: every MessageType the server
 * knows, with its success and failure paths — missing, oversized and wrong-type fields, an
 * unknown device, a certificate bound to another device, a device that is not enrolled, a
 * store failure — asserting the reply's status and body and what the store holds afterwards.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "hfix.h"
#include "support/support.h"

TestSuite(checkin, .init = hf_setup, .fini = hf_teardown);

#define MT(t)  "<key>MessageType</key><string>" t "</string>"
#define UDID_A "<key>UDID</key><string>" HF_UDID_A "</string>"
#define TOPIC  "<key>Topic</key><string>" HF_TOPIC "</string>"
#define TOKEN  "<key>Token</key><data>AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=</data>"
#define MAGIC  "<key>PushMagic</key><string>5F1D2A9C-0000-4000-8000-000000000001</string>"
#define FACTS                                                                                      \
    "<key>SerialNumber</key><string>C02HF0001</string><key>ProductName</key>"                      \
    "<string>MacBookPro18,3</string>"
#define AUTH_A       MT("Authenticate") UDID_A TOPIC FACTS
#define UPDATE_A     MT("TokenUpdate") UDID_A TOPIC TOKEN MAGIC
#define UNRECOGNIZED "com.apple.unrecognized.device"
#define CT           "application/x-apple-aspen-mdm-checkin"

#define F_USER_AUTH 0x1 /* user_authenticate = true */
#define F_NO_SIGNER 0x2 /* no profile-signing identity */
#define F_REENROLL  0x4 /* reenroll = allow */

struct row {
    const char *name;
    enum hf_state state;
    enum hf_id id;
    const char *frag; /* the body's dict */
    int status;
    const char *body_has;   /* in the reply body, or NULL */
    const char *reason_has; /* in the logged reason, or NULL */
    void (*check)(struct mdm_reply *r);
    int fail_call; /* store_fail_after(n) before the call, 0: none */
    unsigned flags;
};

/* ---- what the store holds afterwards ---------------------------------------------------- */

static void a_absent(struct mdm_reply *r)
{
    (void)r;
    cr_assert_not(hf_device_exists(HF_UDID_A), "device A was created");
    cr_assert_eq(hf_outbox(), 0);
}

static void a_authenticated(struct mdm_reply *r)
{
    struct scepter_error err;
    struct store_device d;

    (void)r;
    cr_assert_eq(store_device_get(hf.store, HF_UDID_A, &d, &err), 0, "%s", err.msg);
    cr_assert_str_eq(d.serial_number, "C02HF0001");
    cr_assert_eq(d.platform, STORE_PLATFORM_MACOS);
    cr_assert_eq(d.authenticated_at, HF_NOW);
    cr_assert_not(d.enrolled, "Authenticate does not enable the channel");
    store_device_clear(&d);
    cr_assert_eq(hf_cert_check(HF_ID_A, HF_UDID_A), 1);
    cr_assert_eq(hf_outbox(), 1, "one mdm.Authenticate webhook event");
}

static void a_unchanged_bound(struct mdm_reply *r)
{
    (void)r;
    cr_assert(hf_enrolled(HF_UDID_A), "the enrolled device lost its enrollment");
    cr_assert_eq(hf_cert_check(HF_ID_A, HF_UDID_A), 1, "the binding changed");
    cr_assert_eq(hf_cert_check(HF_ID_A2, HF_UDID_A), 0, "the new certificate was bound");
    cr_assert_eq(hf_events("mdm.ReenrollRefused"), 1);
    cr_assert_eq(hf_outbox(), 1, "only the mdm.ReenrollRefused event");
}

static void a_rebound(struct mdm_reply *r)
{
    (void)r;
    cr_assert_eq(hf_cert_check(HF_ID_A2, HF_UDID_A), 1);
    cr_assert_neq(hf_cert_check(HF_ID_A, HF_UDID_A), 1, "the old certificate is still bound");
    cr_assert_eq(hf_events("mdm.Reenrolled"), 1);
    cr_assert_not(hf_enrolled(HF_UDID_A), "re-enrollment waits for its TokenUpdate");
}

static void ue_authenticated(struct mdm_reply *r)
{
    struct scepter_error err;
    struct store_device d;

    (void)r;
    cr_assert_eq(store_device_get(hf.store, "HF-EID-1", &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.type, STORE_ENROLL_USER_ENROLLMENT);
    store_device_clear(&d);
}

static void a_not_enrolled(struct mdm_reply *r)
{
    (void)r;
    cr_assert(hf_device_exists(HF_UDID_A));
    cr_assert_not(hf_enrolled(HF_UDID_A), "the channel was enabled by a refused message");
    cr_assert_eq(hf_outbox(), 0, "a refused message sent a webhook event");
}

static void a_enrolled_now(struct mdm_reply *r)
{
    struct scepter_error err;
    struct store_enrollment e;

    (void)r;
    memset(&e, 0, sizeof(e));
    cr_assert_eq(store_enrollment_get(hf.store, HF_UDID_A, &e, &err), 0, "%s", err.msg);
    cr_assert(e.enabled);
    cr_assert(e.token_valid);
    cr_assert_eq(e.token_updated_at, HF_NOW);
    cr_assert_str_eq(e.topic, HF_TOPIC);
    store_enrollment_clear(&e);
    cr_assert_eq(hf_outbox(), 1, "one mdm.TokenUpdate webhook event");
}

static void a_user_channel(struct mdm_reply *r)
{
    struct scepter_error err;
    struct store_enrollment e;

    (void)r;
    memset(&e, 0, sizeof(e));
    cr_assert_eq(store_enrollment_get(hf.store, HF_UDID_A ":U-501", &e, &err), 0, "%s", err.msg);
    cr_assert(e.enabled);
    cr_assert_eq(e.type, STORE_ENROLL_USER);
    cr_assert_str_eq(e.user_short_name, "jappleseed");
    store_enrollment_clear(&e);
}

static void a_still_enrolled(struct mdm_reply *r)
{
    (void)r;
    cr_assert(hf_enrolled(HF_UDID_A), "device A lost its enrollment");
    cr_assert_eq(hf_cert_check(HF_ID_A, HF_UDID_A), 1);
    cr_assert_eq(hf_outbox(), 0, "a refused message sent a webhook event");
}

static void b_untouched(struct mdm_reply *r)
{
    (void)r;
    cr_assert(hf_enrolled(HF_UDID_B), "device B lost its enrollment");
    cr_assert_eq(hf_cert_check(HF_ID_B, HF_UDID_B), 1);
    cr_assert_not(hf_device_exists(HF_UDID_A) && hf_enrolled(HF_UDID_A));
    cr_assert_eq(hf_outbox(), 0);
}

static void a_checked_out(struct mdm_reply *r)
{
    struct scepter_error err;
    struct store_device d;

    (void)r;
    cr_assert_not(hf_enrolled(HF_UDID_A));
    cr_assert_eq(store_device_get(hf.store, HF_UDID_A, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.checked_out_at, HF_NOW);
    store_device_clear(&d);
    cr_assert_eq(hf_outbox(), 1, "one mdm.CheckOut webhook event");
}

static void bootstrap_is(const char *want)
{
    struct scepter_error err;
    unsigned char *tok = NULL;
    size_t len = 0;

    cr_assert_eq(store_bootstrap_get(hf.store, HF_UDID_A, &tok, &len, &err), 0, "%s", err.msg);
    if (want == NULL) {
        cr_assert_null(tok, "a bootstrap token is stored");
    } else {
        cr_assert_not_null(tok, "no bootstrap token stored");
        cr_assert_eq(len, strlen(want));
        cr_assert_eq(memcmp(tok, want, len), 0);
    }
    free(tok);
}

static void bootstrap_stored(struct mdm_reply *r)
{
    (void)r;
    bootstrap_is("bootstrap-secret");
}

static void bootstrap_none(struct mdm_reply *r)
{
    (void)r;
    bootstrap_is(NULL);
}

static void bootstrap_kept(struct mdm_reply *r)
{
    (void)r;
    bootstrap_is("the-old-one");
    cr_assert_eq(hf_outbox(), 0);
}

/* A GetToken reply: TokenData is an RS256 JWT of com.apple.maid issued at HF_NOW. */
static void maid_jwt(struct mdm_reply *r)
{
    struct scepter_error err;
    plist_t d = NULL;
    const unsigned char *tok = NULL;
    size_t len = 0;
    char *jwt, *dot, *claims;
    unsigned char *json;
    size_t jlen;

    cr_assert_eq(plistx_parse_dict(r->body.data, r->body.len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_get_data(d, "TokenData", true, &tok, &len, &err), 0, "%s", err.msg);
    jwt = xstrndup((const char *)tok, len);
    dot = strchr(jwt, '.');
    cr_assert_not_null(dot);
    cr_assert_not_null(strchr(dot + 1, '.'), "no signature part: %s", jwt);
    claims = xstrndup(dot + 1, (size_t)(strchr(dot + 1, '.') - dot - 1));
    /* base64url without padding to base64 */
    for (char *p = claims; *p; p++) /* base64url to base64 */
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    cr_assert_eq(base64_decode(claims, strlen(claims), true, &json, &jlen), 0, "claims: %s",
                 claims);
    json = xrealloc(json, jlen + 1);
    json[jlen] = '\0';
    cr_assert_not_null(strstr((char *)json, "\"iat\":1700000000"), "%s", json);
    cr_assert_not_null(strstr((char *)json, "\"service_type\":\"com.apple.maid\""), "%s", json);
    cr_assert_not_null(strstr((char *)json, "\"iss\":\"" HF_MAID_SERVER_UUID "\""),
                       "iss is Apple Business Manager's server_uuid: %s", json);
    free(json);
    free(claims);
    free(jwt);
    plist_free(d);
}

static void plist_dict_empty(struct mdm_reply *r)
{
    struct scepter_error err;
    plist_t d = NULL;

    cr_assert_eq(plistx_parse_dict(r->body.data, r->body.len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(plist_dict_get_size(d), 0, "%s", hf_text(r));
    plist_free(d);
}

/* ---- the table ---------------------------------------------------------------------------- */

static const struct row rows[] = {
    /* Requests refused before the body is read. */
    {"no MessageType", HF_AUTHED, HF_ID_A, UDID_A, 400, NULL, "MessageType", NULL, 0, 0},
    {"MessageType not a string", HF_AUTHED, HF_ID_A,
     "<key>MessageType</key><integer>1</integer>" UDID_A, 400, NULL, "MessageType", NULL, 0, 0},
    {"unknown MessageType", HF_AUTHED, HF_ID_A, MT("Enroll") UDID_A, 400, NULL,
     "unknown MessageType 'Enroll'", NULL, 0, 0},
    {"no certificate", HF_ENROLLED, HF_ID_NONE, UPDATE_A, 403, NULL, "no device identity",
     a_still_enrolled, 0, 0},
    {"certificate of another CA", HF_ENROLLED, HF_ID_FOREIGN, UPDATE_A, 403, NULL,
     "does not verify against the device CA", a_still_enrolled, 0, 0},
    {"no UDID", HF_AUTHED, HF_ID_A, MT("TokenUpdate") TOPIC TOKEN MAGIC, 400, NULL,
     "UDID or EnrollmentID: required", a_not_enrolled, 0, 0},
    {"UDID with a colon", HF_AUTHED, HF_ID_A,
     MT("CheckOut") "<key>UDID</key><string>HF:UDID</string>", 400, NULL, "UDID: empty, too long",
     NULL, 0, 0},
    {"UDID not a string", HF_AUTHED, HF_ID_A, MT("CheckOut") "<key>UDID</key><true/>", 400, NULL,
     "UDID", NULL, 0, 0},

    /* Authenticate */
    {"Authenticate: a new device", HF_UNKNOWN, HF_ID_A, AUTH_A, 200, NULL, NULL, a_authenticated, 0,
     0},
    {"Authenticate: no Topic", HF_UNKNOWN, HF_ID_A, MT("Authenticate") UDID_A FACTS, 400, NULL,
     "Topic", a_absent, 0, 0},
    {"Authenticate: Topic not a string", HF_UNKNOWN, HF_ID_A,
     MT("Authenticate") UDID_A "<key>Topic</key><data>AAEC</data>", 400, NULL, "Topic", a_absent, 0,
     0},
    {"Authenticate: another server's Topic", HF_UNKNOWN, HF_ID_A,
     MT("Authenticate") UDID_A "<key>Topic</key><string>com.apple.mgmt.Other</string>", 403, NULL,
     "is not this server's push topic", a_absent, 0, 0},
    {"Authenticate: SerialNumber not a string", HF_UNKNOWN, HF_ID_A,
     MT("Authenticate") UDID_A TOPIC "<key>SerialNumber</key><integer>7</integer>", 400, NULL,
     "SerialNumber", a_absent, 0, 0},
    {"Authenticate: on a user channel", HF_ENROLLED, HF_ID_A,
     AUTH_A "<key>UserID</key><string>U-501</string>", 400, NULL, "only on the device channel",
     a_still_enrolled, 0, 0},
    {"Authenticate: a certificate bound to another device", HF_UNKNOWN, HF_ID_B, AUTH_A, 403, NULL,
     "Authenticate", b_untouched, 0, 0},
    {"Authenticate: a new certificate for an enrolled device", HF_ENROLLED, HF_ID_A2, AUTH_A, 403,
     NULL, "Authenticate", a_unchanged_bound, 0, 0},
    {"Authenticate: a new certificate after CheckOut", HF_CHECKED_OUT, HF_ID_A2, AUTH_A, 200, NULL,
     NULL, a_rebound, 0, 0},
    {"Authenticate: a new certificate with reenroll = allow", HF_ENROLLED, HF_ID_A2, AUTH_A, 200,
     NULL, NULL, a_rebound, 0, F_REENROLL},
    {"Authenticate: a user enrollment (EnrollmentID)", HF_UNKNOWN, HF_ID_A,
     MT("Authenticate") "<key>EnrollmentID</key><string>HF-EID-1</string>" TOPIC, 200, NULL, NULL,
     ue_authenticated, 0, 0},
    {"Authenticate: store failure", HF_UNKNOWN, HF_ID_A, AUTH_A, 503, NULL,
     "Authenticate: store: injected failure", a_absent, 1, 0},

    /* TokenUpdate */
    {"TokenUpdate: first, enables the channel", HF_AUTHED, HF_ID_A, UPDATE_A, 200, NULL, NULL,
     a_enrolled_now, 0, 0},
    {"TokenUpdate: a user channel", HF_ENROLLED, HF_ID_A,
     UPDATE_A "<key>UserID</key><string>U-501</string><key>UserShortName</key>"
              "<string>jappleseed</string>",
     200, NULL, NULL, a_user_channel, 0, 0},
    {"TokenUpdate: unknown device", HF_UNKNOWN, HF_ID_A, UPDATE_A, 403, UNRECOGNIZED,
     "never authenticated", a_absent, 0, 0},
    {"TokenUpdate: certificate of another device", HF_AUTHED, HF_ID_B, UPDATE_A, 403, NULL,
     "bound to another device", a_not_enrolled, 0, 0},
    {"TokenUpdate: certificate not bound yet", HF_AUTHED, HF_ID_A2, UPDATE_A, 403, NULL,
     "is not bound to device " HF_UDID_A, a_not_enrolled, 0, 0},
    {"TokenUpdate: no Token", HF_AUTHED, HF_ID_A, MT("TokenUpdate") UDID_A TOPIC MAGIC, 400, NULL,
     "Token", a_not_enrolled, 0, 0},
    {"TokenUpdate: Token not data", HF_AUTHED, HF_ID_A,
     MT("TokenUpdate") UDID_A TOPIC MAGIC "<key>Token</key><string>abc</string>", 400, NULL,
     "Token", a_not_enrolled, 0, 0},
    {"TokenUpdate: empty Token", HF_AUTHED, HF_ID_A,
     MT("TokenUpdate") UDID_A TOPIC MAGIC "<key>Token</key><data></data>", 400, NULL,
     "Token: 0 bytes is not a device token", a_not_enrolled, 0, 0},
    {"TokenUpdate: no PushMagic", HF_AUTHED, HF_ID_A, MT("TokenUpdate") UDID_A TOPIC TOKEN, 400,
     NULL, "PushMagic", a_not_enrolled, 0, 0},
    {"TokenUpdate: PushMagic with a quote", HF_AUTHED, HF_ID_A,
     MT("TokenUpdate") UDID_A TOPIC TOKEN "<key>PushMagic</key><string>a\"b</string>", 400, NULL,
     "PushMagic: character 2", a_not_enrolled, 0, 0},
    {"TokenUpdate: no Topic", HF_AUTHED, HF_ID_A, MT("TokenUpdate") UDID_A TOKEN MAGIC, 400, NULL,
     "Topic", a_not_enrolled, 0, 0},
    {"TokenUpdate: AwaitingConfiguration not a boolean", HF_AUTHED, HF_ID_A,
     UPDATE_A "<key>AwaitingConfiguration</key><string>yes</string>", 400, NULL,
     "AwaitingConfiguration", a_not_enrolled, 0, 0},
    {"TokenUpdate: UnlockToken not data", HF_AUTHED, HF_ID_A,
     UPDATE_A "<key>UnlockToken</key><integer>3</integer>", 400, NULL, "UnlockToken",
     a_not_enrolled, 0, 0},
    {"TokenUpdate: store failure in the certificate check", HF_AUTHED, HF_ID_A, UPDATE_A, 503, NULL,
     "certificate check", a_not_enrolled, 1, 0},
    {"TokenUpdate: store failure", HF_AUTHED, HF_ID_A, UPDATE_A, 503, NULL,
     "TokenUpdate: store: injected failure", a_not_enrolled, 2, 0},

    /* CheckOut */
    {"CheckOut", HF_ENROLLED, HF_ID_A, MT("CheckOut") UDID_A, 200, NULL, NULL, a_checked_out, 0, 0},
    {"CheckOut: unknown device", HF_UNKNOWN, HF_ID_A, MT("CheckOut") UDID_A, 403, UNRECOGNIZED,
     NULL, a_absent, 0, 0},
    {"CheckOut: certificate of another device", HF_ENROLLED, HF_ID_B, MT("CheckOut") UDID_A, 403,
     NULL, "bound to another device", a_still_enrolled, 0, 0},
    {"CheckOut: store failure", HF_ENROLLED, HF_ID_A, MT("CheckOut") UDID_A, 503, NULL,
     "CheckOut: store: injected failure", a_still_enrolled, 2, 0},

    /* SetBootstrapToken (the store holds "the-old-one" before each row) */
    {"SetBootstrapToken", HF_ENROLLED, HF_ID_A,
     MT("SetBootstrapToken") UDID_A
     "<key>BootstrapToken</key><data>Ym9vdHN0cmFwLXNlY3JldA==</data>",
     200, NULL, NULL, bootstrap_stored, 0, 0},
    {"SetBootstrapToken: none deletes it", HF_ENROLLED, HF_ID_A, MT("SetBootstrapToken") UDID_A,
     200, NULL, NULL, bootstrap_none, 0, 0},
    {"SetBootstrapToken: not data", HF_ENROLLED, HF_ID_A,
     MT("SetBootstrapToken") UDID_A "<key>BootstrapToken</key><string>x</string>", 400, NULL,
     "BootstrapToken", bootstrap_kept, 0, 0},
    {"SetBootstrapToken: certificate of another device", HF_ENROLLED, HF_ID_B,
     MT("SetBootstrapToken") UDID_A "<key>BootstrapToken</key><data>eA==</data>", 403, NULL,
     "bound to another device", bootstrap_kept, 0, 0},
    {"SetBootstrapToken: store failure", HF_ENROLLED, HF_ID_A,
     MT("SetBootstrapToken") UDID_A "<key>BootstrapToken</key><data>eA==</data>", 503, NULL,
     "SetBootstrapToken: store: injected failure", bootstrap_kept, 2, 0},

    /* GetBootstrapToken */
    {"GetBootstrapToken", HF_ENROLLED, HF_ID_A, MT("GetBootstrapToken") UDID_A, 200,
     "dGhlLW9sZC1vbmU=", NULL, NULL, 0, 0},
    {"GetBootstrapToken: unknown device", HF_UNKNOWN, HF_ID_A, MT("GetBootstrapToken") UDID_A, 403,
     UNRECOGNIZED, NULL, NULL, 0, 0},
    {"GetBootstrapToken: certificate of another device", HF_ENROLLED, HF_ID_B,
     MT("GetBootstrapToken") UDID_A, 403, NULL, "bound to another device", NULL, 0, 0},
    {"GetBootstrapToken: store failure", HF_ENROLLED, HF_ID_A, MT("GetBootstrapToken") UDID_A, 503,
     NULL, "GetBootstrapToken: store: injected failure", NULL, 2, 0},

    /* GetToken */
    {"GetToken: com.apple.maid", HF_ENROLLED, HF_ID_A,
     MT("GetToken") UDID_A "<key>TokenServiceType</key><string>com.apple.maid</string>", 200,
     "<key>TokenData</key>", NULL, maid_jwt, 0, 0},
    {"GetToken: no TokenServiceType", HF_ENROLLED, HF_ID_A, MT("GetToken") UDID_A, 400, NULL,
     "TokenServiceType", NULL, 0, 0},
    {"GetToken: TokenParameters not a dict", HF_ENROLLED, HF_ID_A,
     MT("GetToken") UDID_A "<key>TokenServiceType</key><string>com.apple.maid</string>"
                           "<key>TokenParameters</key><string>x</string>",
     400, NULL, "TokenParameters", NULL, 0, 0},
    {"GetToken: a service not served", HF_ENROLLED, HF_ID_A,
     MT("GetToken") UDID_A "<key>TokenServiceType</key><string>com.apple.watch.pairing</string>",
     400, NULL, "com.apple.watch.pairing is not served here", NULL, 0, 0},
    {"GetToken: without Apple Business Manager's server identity", HF_ENROLLED, HF_ID_A,
     MT("GetToken") UDID_A "<key>TokenServiceType</key><string>com.apple.maid</string>", 400, NULL,
     "maid_server_uuid and maid_key_file", NULL, 0, F_NO_SIGNER},
    {"GetToken: unknown device", HF_UNKNOWN, HF_ID_A,
     MT("GetToken") UDID_A "<key>TokenServiceType</key><string>com.apple.maid</string>", 403,
     UNRECOGNIZED, NULL, NULL, 0, 0},

    /* UserAuthenticate */
    {"UserAuthenticate: declined by default", HF_ENROLLED, HF_ID_A,
     MT("UserAuthenticate") UDID_A "<key>UserID</key><string>U-501</string>", 410, NULL,
     "user_authenticate = false", NULL, 0, 0},
    {"UserAuthenticate: round 1", HF_ENROLLED, HF_ID_A,
     MT("UserAuthenticate") UDID_A "<key>UserID</key><string>U-501</string>", 200,
     "<key>DigestChallenge</key>", NULL, NULL, 0, F_USER_AUTH},
    {"UserAuthenticate: round 2", HF_ENROLLED, HF_ID_A,
     MT("UserAuthenticate") UDID_A "<key>UserID</key><string>U-501</string>"
                                   "<key>DigestResponse</key><string>r</string>",
     200, "<key>AuthToken</key>", NULL, NULL, 0, F_USER_AUTH},
    {"UserAuthenticate: DigestResponse not a string", HF_ENROLLED, HF_ID_A,
     MT("UserAuthenticate") UDID_A "<key>UserID</key><string>U-501</string>"
                                   "<key>DigestResponse</key><data>AA==</data>",
     400, NULL, "DigestResponse", NULL, 0, F_USER_AUTH},
    {"UserAuthenticate: unknown device", HF_UNKNOWN, HF_ID_A,
     MT("UserAuthenticate") UDID_A "<key>UserID</key><string>U-501</string>", 403, UNRECOGNIZED,
     NULL, NULL, 0, F_USER_AUTH},

    /* DeclarativeManagement */
    {"DeclarativeManagement: tokens", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A "<key>Endpoint</key><string>tokens</string>", 200,
     "\"SyncTokens\"", NULL, a_still_enrolled, 0, 0},
    {"DeclarativeManagement: declaration-items", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A "<key>Endpoint</key><string>declaration-items</string>",
     200, "\"DeclarationsToken\"", NULL, a_still_enrolled, 0, 0},
    {"DeclarativeManagement: Endpoint missing", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A, 400, NULL, "Endpoint", a_still_enrolled, 0, 0},
    {"DeclarativeManagement: unknown Endpoint", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A "<key>Endpoint</key><string>widgets</string>", 400, NULL,
     "Endpoint: unknown 'widgets'", a_still_enrolled, 0, 0},
    {"DeclarativeManagement: unknown declaration", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A
     "<key>Endpoint</key><string>declaration/configuration/com.example.x</string>",
     404, NULL, "com.example.x", a_still_enrolled, 0, 0},
    {"DeclarativeManagement: status without Data", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A "<key>Endpoint</key><string>status</string>", 400, NULL,
     "Data", a_still_enrolled, 0, 0},
    {"DeclarativeManagement: status not JSON", HF_ENROLLED, HF_ID_A,
     MT("DeclarativeManagement") UDID_A "<key>Endpoint</key><string>status</string>"
                                        "<key>Data</key><data>bm90IGpzb24=</data>",
     400, NULL, "Data: not a JSON status report", a_still_enrolled, 0, 0},
    {"DeclarativeManagement: unknown device", HF_UNKNOWN, HF_ID_A,
     MT("DeclarativeManagement") UDID_A, 403, UNRECOGNIZED, NULL, a_absent, 0, 0},
    {"DeclarativeManagement: certificate of another device", HF_ENROLLED, HF_ID_B,
     MT("DeclarativeManagement") UDID_A, 403, NULL, "bound to another device", NULL, 0, 0},
};

static void run(const struct row *r, const char *frag)
{
    struct scepter_error err;
    struct mdm_reply reply;
    char *body;

    hf_reset(r->state);
    if (r->state >= HF_AUTHED)
        cr_assert_eq(store_bootstrap_set(hf.store, HF_UDID_A, (const unsigned char *)"the-old-one",
                                         11, &err),
                     0, "%s", err.msg);
    cr_assert_eq(cfg_set(hf.cfg, "user_authenticate", (r->flags & F_USER_AUTH) ? "true" : "false",
                         "test", &err),
                 0, "%s", err.msg);
    cr_assert_eq(
        cfg_set(hf.cfg, "reenroll", (r->flags & F_REENROLL) ? "allow" : "refuse", "test", &err), 0,
        "%s", err.msg);
    EVP_PKEY *maid = hf.srv->conf->maid_key;
    if (r->flags & F_NO_SIGNER)
        hf.srv->conf->maid_key = NULL;
    if (r->fail_call)
        store_fail_after(hf.store, r->fail_call);
    body = hf_body(frag ? frag : r->frag);
    hf_checkin(r->id, body, &reply);
    hf.srv->conf->maid_key = maid;
    store_fail_after(hf.store, 0);
    cr_assert_eq(reply.status, r->status, "%s (%s): status %d (%s), want %d", r->name,
                 r->reason_has ? r->reason_has : "-", reply.status, reply.reason, r->status);
    cr_assert_str_eq(reply.event, "checkin", "%s", r->name);
    if (r->status == 200 && r->body_has == NULL && r->check != maid_jwt &&
        r->check != plist_dict_empty)
        cr_assert_eq(reply.body.len, 0, "%s: a non-empty body: %s", r->name, hf_text(&reply));
    if (r->body_has)
        cr_assert_not_null(strstr(hf_text(&reply), r->body_has), "%s: body %s", r->name,
                           hf_text(&reply));
    if (r->reason_has)
        cr_assert_not_null(strstr(reply.reason, r->reason_has), "%s: reason %s", r->name,
                           reply.reason);
    if (r->status != 200 && r->status != 403 && r->status != 410)
        cr_assert_str_eq(reply.content_type, "text/plain; charset=utf-8", "%s", r->name);
    if (r->check)
        r->check(&reply);
    mdm_reply_free(&reply);
    free(body);
}

Test(checkin, every_message_type_through_the_handler)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run(&rows[i], NULL);
}

/* The table has a success and a failure row for every MessageType the handler dispatches on
 * (read from handlers[] in mdm/checkin.c, so a new message type fails here until it has
 * rows). */
Test(checkin, the_table_covers_every_message_type)
{
    char *path = tu_source_path("mdm/checkin.c");
    char *src = (char *)tu_read(path, NULL);
    char *p = strstr(src, "} handlers[] = {"), *end;
    size_t types = 0;

    cr_assert_not_null(p, "no handlers[] in %s", path);
    end = strstr(p, "};");
    cr_assert_not_null(end);
    while ((p = strstr(p, "{\"")) != NULL && p < end) {
        char type[64], want[96];
        size_t ok = 0, bad = 0;
        cr_assert_eq(sscanf(p, "{\"%63[A-Za-z]\"", type), 1);
        snprintf(want, sizeof(want), "<string>%s</string>", type);
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
            if (strstr(rows[i].frag, want)) {
                ok += rows[i].status == 200;
                bad += rows[i].status != 200;
            }
        /* DeclarativeManagement is answered 404 while DDM is not enabled */
        cr_assert(ok > 0 || strcmp(type, "DeclarativeManagement") == 0, "%s: no success row", type);
        cr_assert_gt(bad, 0, "%s: no failure row", type);
        types++;
        p++;
    }
    cr_assert_geq(types, 8, "only %zu message types found in handlers[]", types);
    free(src);
    free(path);
}

Test(checkin, oversized_fields_are_refused_naming_them)
{
    char big[400], *frag;
    struct row r = {"oversized", HF_AUTHED, HF_ID_A, NULL, 400, NULL, NULL, a_not_enrolled, 0, 0};

    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* a UDID longer than a device id may be */
    frag = xasprintf(MT("TokenUpdate") "<key>UDID</key><string>%.200s</string>" TOPIC TOKEN MAGIC,
                     big);
    r.reason_has = "UDID: empty, too long";
    run(&r, frag);
    free(frag);
    /* a PushMagic longer than APNs takes */
    frag = xasprintf(MT("TokenUpdate") UDID_A TOPIC TOKEN "<key>PushMagic</key><string>%.256s"
                                                          "</string>",
                     big);
    r.reason_has = "PushMagic: 256 characters, at most 255";
    run(&r, frag);
    free(frag);
    /* a Token of 257 bytes (344 base64 characters) */
    frag =
        xasprintf(MT("TokenUpdate") UDID_A TOPIC MAGIC "<key>Token</key><data>%.343s=</data>", big);
    r.reason_has = "Token: 257 bytes is not a device token";
    run(&r, frag);
    free(frag);
    /* a user id over 120 characters */
    frag = xasprintf(UPDATE_A "<key>UserID</key><string>%.121s</string>", big);
    r.state = HF_ENROLLED;
    r.reason_has = "user identifier: empty or too long";
    r.check = NULL;
    run(&r, frag);
    free(frag);
}

Test(checkin, method_content_type_and_body_are_checked_first)
{
    struct mdm_reply reply;
    char *body = hf_body(UPDATE_A);
    struct hf_req r = {.path = "checkin",
                       .method = MDM_POST,
                       .content_type = "application/x-apple-aspen-mdm-checkin",
                       .id = HF_ID_A,
                       .body = body};

    hf_reset(HF_AUTHED);
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 405);
    cr_assert_eq(reply.nheaders, 1);
    cr_assert_str_eq(reply.headers[0].name, "Allow");
    cr_assert_str_eq(reply.headers[0].value, "PUT");
    mdm_reply_free(&reply);

    r.method = MDM_PUT;
    r.content_type = "application/x-apple-aspen-mdm";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 415);
    mdm_reply_free(&reply);
    r.content_type = NULL;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 415);
    mdm_reply_free(&reply);
    /* parameters and case do not matter */
    r.content_type = "Application/X-Apple-Aspen-MDM-Checkin; charset=UTF-8";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200, "%s", reply.reason);
    mdm_reply_free(&reply);

    /* not a plist, a plist that is not a dict, a nesting bomb */
    hf_reset(HF_AUTHED);
    r.content_type = "application/x-apple-aspen-mdm-checkin";
    r.body = "MessageType=TokenUpdate";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 400);
    cr_assert_not_null(strstr(reply.reason, "check-in: "), "%s", reply.reason);
    mdm_reply_free(&reply);
    r.body = "<?xml version=\"1.0\"?><plist version=\"1.0\"><array><string>TokenUpdate</string>"
             "</array></plist>";
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 400);
    mdm_reply_free(&reply);
    struct buf deep = {0};
    buf_puts(&deep, "<plist version=\"1.0\"><dict><key>a</key>");
    for (int i = 0; i < 100; i++)
        buf_puts(&deep, "<array>");
    buf_puts(&deep, "</plist>");
    buf_putc(&deep, '\0');
    r.body = (const char *)deep.data;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 400);
    cr_assert_not_null(strstr(reply.reason, "nest"), "%s", reply.reason);
    mdm_reply_free(&reply);
    buf_free(&deep);
    cr_assert_not(hf_enrolled(HF_UDID_A));
    free(body);
}

/* A whole enrollment through the handler: Authenticate, TokenUpdate, SetBootstrapToken,
 * GetBootstrapToken, CheckOut — each message's effect visible in the store. */
Test(checkin, a_device_life)
{
    static const char *const frags[] = {
        AUTH_A,
        UPDATE_A,
        MT("SetBootstrapToken") UDID_A
        "<key>BootstrapToken</key><data>Ym9vdHN0cmFwLXNlY3JldA==</data>",
        MT("GetBootstrapToken") UDID_A,
        MT("CheckOut") UDID_A,
    };
    struct mdm_reply reply;

    hf_reset(HF_UNKNOWN);
    for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
        char *body = hf_body(frags[i]);
        hf_checkin(HF_ID_A, body, &reply);
        cr_assert_eq(reply.status, 200, "step %zu: %s", i, reply.reason);
        if (i == 1)
            cr_assert(hf_enrolled(HF_UDID_A));
        if (i == 2)
            bootstrap_is("bootstrap-secret");
        if (i == 3)
            cr_assert_not_null(strstr(hf_text(&reply), "Ym9vdHN0cmFwLXNlY3JldA=="), "%s",
                               hf_text(&reply));
        mdm_reply_free(&reply);
        free(body);
    }
    cr_assert_not(hf_enrolled(HF_UDID_A));
    /* Authenticate, TokenUpdate, SetBootstrapToken and CheckOut each queued a webhook event */
    cr_assert_eq(hf_outbox(), 4);
    /* after CheckOut, GetBootstrapToken of the checked-out device still needs its binding */
    char *body = hf_body(MT("GetBootstrapToken") UDID_A);
    hf_checkin(HF_ID_B, body, &reply);
    cr_assert_eq(reply.status, 403);
    mdm_reply_free(&reply);
    free(body);
}

Test(checkin, empty_get_bootstrap_token_is_an_empty_dict)
{
    struct mdm_reply reply;
    char *body = hf_body(MT("GetBootstrapToken") UDID_A);

    hf_reset(HF_ENROLLED);
    hf_checkin(HF_ID_A, body, &reply);
    cr_assert_eq(reply.status, 200, "%s", reply.reason);
    plist_dict_empty(&reply);
    mdm_reply_free(&reply);
    free(body);
}

/* identity = signature: the certificate comes from the Mdm-Signature over the exact body. */
Test(checkin, identity_from_an_mdm_signature)
{
    struct mdm_reply reply;
    char *body = hf_body(UPDATE_A), *other = hf_body(MT("CheckOut") UDID_A);
    char *sig = hf_signature(HF_ID_A, body), *sig_other = hf_signature(HF_ID_A, other);
    char *sig_b = hf_signature(HF_ID_B, body), *sig_foreign = hf_signature(HF_ID_FOREIGN, body);
    struct hf_req r = {.path = "checkin",
                       .method = MDM_PUT,
                       .content_type = CT,
                       .id = HF_ID_NONE,
                       .body = body,
                       .mdm_signature = sig_other};
    unsigned accepted = hf.srv->conf->idcfg.accepted;

    hf.srv->conf->idcfg.accepted = MDM_ID_SIGNATURE;
    hf_reset(HF_AUTHED);
    /* a signature over other bytes, by another device, by another CA, or none */
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 403, "%d %s", reply.status, reply.reason);
    mdm_reply_free(&reply);
    r.mdm_signature = sig_b;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 403, "%d %s", reply.status, reply.reason);
    cr_assert_not_null(strstr(reply.reason, "bound to another device"), "%s", reply.reason);
    mdm_reply_free(&reply);
    r.mdm_signature = sig_foreign;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 403, "%d %s", reply.status, reply.reason);
    mdm_reply_free(&reply);
    /* a client certificate alone is not accepted in this mode */
    r.mdm_signature = NULL;
    r.id = HF_ID_A;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 403, "%d %s", reply.status, reply.reason);
    mdm_reply_free(&reply);
    cr_assert_not(hf_enrolled(HF_UDID_A));
    cr_assert_eq(hf_outbox(), 0);
    /* the device's own signature over these bytes */
    r.id = HF_ID_NONE;
    r.mdm_signature = sig;
    hf_route(&r, &reply);
    cr_assert_eq(reply.status, 200, "%d %s", reply.status, reply.reason);
    mdm_reply_free(&reply);
    cr_assert(hf_enrolled(HF_UDID_A));
    hf.srv->conf->idcfg.accepted = accepted;
    free(sig);
    free(sig_other);
    free(sig_b);
    free(sig_foreign);
    free(body);
    free(other);
}
