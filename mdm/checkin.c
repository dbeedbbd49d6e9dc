/*
 * The check-in protocol (PUT /mdm/checkin, application/x-apple-aspen-mdm-checkin):
 * Authenticate, TokenUpdate, CheckOut, SetBootstrapToken, GetBootstrapToken, GetToken,
 * UserAuthenticate and DeclarativeManagement.  Replies follow Apple's documentation: empty 200
 * bodies, plist bodies where one is due, 403 com.apple.unrecognized.device for a device this
 * server does not know, and never 401 (a device unenrolls on it).
 *
 * Every message must come with a device certificate that chains to the device CA
 * (mdm/identity.c).  Authenticate binds the certificate to the device; every later message
 * must present a certificate bound to the device it names.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "apns/apns.h"
#include "common/codec.h"
#include "common/log.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ddm_int.h"
#include "mdm/metrics_int.h"
#include "mdm/webhook_int.h"

#define SHARED_IPAD_USER_ID "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"

static bool id_ok(const char *s, size_t max)
{
    size_t len = strlen(s);

    if (len == 0 || len >= max)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == ':')
            return false;
    return true;
}

int mdm_ids_from_plist(plist_t dict, struct mdm_ids *ids, struct scepter_error *err)
{
    const char *udid = NULL, *eid = NULL, *user_id = NULL, *euid = NULL, *sname = NULL,
               *lname = NULL, *dev;
    const char *user_key;
    int rc;

    memset(ids, 0, sizeof(*ids));
    if ((rc = plistx_get_string(dict, "UDID", false, &udid, err)) < 0 ||
        (rc = plistx_get_string(dict, "EnrollmentID", false, &eid, err)) < 0 ||
        (rc = plistx_get_string(dict, "UserID", false, &user_id, err)) < 0 ||
        (rc = plistx_get_string(dict, "EnrollmentUserID", false, &euid, err)) < 0 ||
        (rc = plistx_get_string(dict, "UserShortName", false, &sname, err)) < 0 ||
        (rc = plistx_get_string(dict, "UserLongName", false, &lname, err)) < 0)
        return rc;
    if (udid == NULL && eid == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "UDID", "UDID or EnrollmentID: required");
    dev = udid ? udid : eid;
    if (!id_ok(dev, sizeof(ids->device_id)))
        return scepter_err(err, SCEPTER_EINVAL, udid ? "UDID" : "EnrollmentID",
                           "%s: empty, too long, or contains spaces, ':' or control characters",
                           udid ? "UDID" : "EnrollmentID");
    str_copy(ids->device_id, sizeof(ids->device_id), dev);
    ids->type = udid ? STORE_ENROLL_DEVICE : STORE_ENROLL_USER_ENROLLMENT;
    ids->user_id = user_id;
    ids->user_short_name = sname;
    ids->user_long_name = lname;

    user_key = NULL;
    if (euid != NULL) {
        ids->type = STORE_ENROLL_USER_ENROLLMENT_USER;
        user_key = euid;
    } else if (user_id != NULL) {
        if (strcmp(user_id, SHARED_IPAD_USER_ID) == 0) {
            /* Every Shared iPad user has this UserID; the Managed Apple Account tells them
             * apart. */
            if (sname == NULL)
                return scepter_err(err, SCEPTER_EINVAL, "UserShortName",
                                   "UserShortName: required for a Shared iPad user");
            ids->type = STORE_ENROLL_SHARED_IPAD_USER;
            user_key = sname;
        } else {
            ids->type = STORE_ENROLL_USER;
            user_key = user_id;
        }
    }
    if (user_key == NULL) {
        str_copy(ids->enrollment_id, sizeof(ids->enrollment_id), ids->device_id);
        return 0;
    }
    if (strlen(user_key) == 0 || strlen(user_key) > 120 || strchr(user_key, '\n'))
        return scepter_err(err, SCEPTER_EINVAL, "UserID", "user identifier: empty or too long");
    snprintf(ids->enrollment_id, sizeof(ids->enrollment_id), "%s:%s", ids->device_id, user_key);
    return 0;
}

bool mdm_content_type_is(const char *have, const char *want)
{
    size_t n = strlen(want);

    if (have == NULL)
        return false;
    while (*have == ' ')
        have++;
    return strncasecmp(have, want, n) == 0 && (have[n] == '\0' || have[n] == ';' || have[n] == ' ');
}

/* State shared by the message handlers of one request. */
struct checkin {
    struct mdm_ctx *ctx;
    const struct mdm_request *req;
    int64_t now;
    struct mdm_reply *reply;
    plist_t body;
    const char *type;
    struct mdm_ids ids;
    struct mdm_identity identity;
};

static void store_failed(struct checkin *c, const char *what, const struct scepter_error *err)
{
    mdm_reply_error(c->reply,
                    err->code == SCEPTER_EUNAVAIL || err->code == SCEPTER_ESTORE ? 503 : 500,
                    "%s: %s", what, err->msg);
}

/*
 * A message other than Authenticate: the certificate must be bound to the device named in the
 * body.  Returns true when the request may go on; otherwise the reply is set.
 */
static bool require_bound(struct checkin *c)
{
    struct scepter_error err;
    struct store_enrollment e;
    int rc = store_cert_check(c->ctx->store, c->identity.hash, c->ids.device_id, &err);

    if (rc == 1)
        return true;
    if (rc == SCEPTER_EFORBIDDEN) {
        log_kv(LOG_LVL_WARN, "identity_mismatch", "req", c->req->id, "device", c->ids.device_id,
               "cert", c->identity.hash, "msg", err.msg, NULL);
        mdm_reply_error(c->reply, 403, "certificate is bound to another device: %s", err.msg);
        return false;
    }
    if (rc < 0) {
        store_failed(c, "certificate check", &err);
        return false;
    }
    /* Not bound to anything: an unknown device, or a known one with a foreign certificate. */
    memset(&e, 0, sizeof(e));
    rc = store_enrollment_get(c->ctx->store, c->ids.device_id, &e, &err);
    store_enrollment_clear(&e);
    if (rc == SCEPTER_ENOTFOUND) {
        mdm_reply_unrecognized(c->reply, "device never authenticated");
        return false;
    }
    if (rc < 0) {
        store_failed(c, "enrollment lookup", &err);
        return false;
    }
    /* A known device with a certificate bound to nothing: its renewed identity, when a renewal
     * is outstanding for it (and only then). */
    if (mdm_renewal_bind(c->ctx, c->ids.device_id, c->identity.hash,
                         mdm_identity_not_after(c->identity.cert), c->now, &err) == 0)
        return true;
    log_kv(LOG_LVL_WARN, "identity_unbound", "req", c->req->id, "device", c->ids.device_id, "cert",
           c->identity.hash, NULL);
    mdm_reply_error(c->reply, 403,
                    "certificate is not bound to device %s (it must Authenticate with it first)",
                    c->ids.device_id);
    return false;
}

static int get_facts(plist_t d, struct store_device_facts *f, struct scepter_error *err)
{
    int rc;

    memset(f, 0, sizeof(*f));
    if ((rc = plistx_get_string(d, "SerialNumber", false, &f->serial_number, err)) < 0 ||
        (rc = plistx_get_string(d, "DeviceName", false, &f->device_name, err)) < 0 ||
        (rc = plistx_get_string(d, "Model", false, &f->model, err)) < 0 ||
        (rc = plistx_get_string(d, "ModelName", false, &f->model_name, err)) < 0 ||
        (rc = plistx_get_string(d, "ProductName", false, &f->product_name, err)) < 0 ||
        (rc = plistx_get_string(d, "OSVersion", false, &f->os_version, err)) < 0 ||
        (rc = plistx_get_string(d, "BuildVersion", false, &f->build_version, err)) < 0 ||
        (rc = plistx_get_string(d, "IMEI", false, &f->imei, err)) < 0 ||
        (rc = plistx_get_string(d, "MEID", false, &f->meid, err)) < 0)
        return rc;
    f->platform = store_platform_guess(f->product_name, f->model, f->model_name);
    return 0;
}

static void do_authenticate(struct checkin *c)
{
    struct store_auth_result res;
    struct store_authenticate a;
    struct scepter_error err;
    const char *topic = NULL;
    char ours[256];
    int rc;

    if (c->ids.type != STORE_ENROLL_DEVICE && c->ids.type != STORE_ENROLL_USER_ENROLLMENT) {
        mdm_reply_error(c->reply, 400, "Authenticate: only on the device channel");
        return;
    }
    memset(&a, 0, sizeof(a));
    if (plistx_get_string(c->body, "Topic", true, &topic, &err) < 0 ||
        get_facts(c->body, &a.facts, &err) < 0) {
        mdm_reply_error(c->reply, 400, "Authenticate: %s", err.msg);
        return;
    }
    mdm_server_topic(c->ctx->srv, ours, sizeof(ours));
    if (*ours && strcmp(ours, topic) != 0) {
        mdm_reply_error(c->reply, 403, "Authenticate: Topic %s is not this server's push topic %s",
                        topic, ours);
        return;
    }
    a.device_id = c->ids.device_id;
    a.type = c->ids.type;
    a.topic = topic;
    a.cert_hash = c->identity.hash;
    a.cert_not_after = mdm_identity_not_after(c->identity.cert);
    a.reenroll_allow = strcmp(c->ctx->cfg->reenroll, "allow") == 0;
    rc = store_authenticate(c->ctx->store, &a, c->now, &res, &err);
    if (rc == SCEPTER_ECONFLICT) {
        /* A fresh identity for a device enrolled with another one: the takeover this refusal
         * exists for, or a wiped device an operator has not allowed yet.  403 (never 401 and
         * never com.apple.unrecognized.device: the real device keeps its enrollment). */
        json_t *d =
            json_pack("{s:s,s:s,s:s,s:s?,s:s}", "udid", c->ids.device_id, "presented_cert_sha256",
                      c->identity.hash, "bound_cert_sha256", res.previous_hash, "peer",
                      c->req->peer_addr, "identity_source", c->identity.source);
        log_kv(LOG_LVL_WARN, "reenroll_refused", "req", c->req->id, "device", c->ids.device_id,
               "cert", c->identity.hash, "bound", res.previous_hash, NULL);
        mdm_security_event(c->ctx, MDM_SEC_REENROLL_REFUSED, "mdm.ReenrollRefused",
                           c->ids.device_id, d, c->now);
        mdm_reply_error(c->reply, 403, "Authenticate: %s", err.msg);
        return;
    }
    if (rc == SCEPTER_EFORBIDDEN) {
        log_kv(LOG_LVL_WARN, "identity_mismatch", "req", c->req->id, "device", c->ids.device_id,
               "cert", c->identity.hash, "msg", err.msg, NULL);
        mdm_reply_error(c->reply, 403, "Authenticate: %s", err.msg);
        return;
    }
    if (rc < 0) {
        store_failed(c, "Authenticate", &err);
        return;
    }
    if (res.rebound) {
        json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "udid", c->ids.device_id, "cert_sha256",
                              c->identity.hash, "previous_cert_sha256", res.previous_hash,
                              "allowed_by", res.allowed_by ? res.allowed_by : "not enrolled");
        log_kv(LOG_LVL_INFO, "reenrolled", "req", c->req->id, "device", c->ids.device_id, "cert",
               c->identity.hash, "previous", res.previous_hash, "allowed_by", res.allowed_by, NULL);
        mdm_security_event(c->ctx, MDM_SEC_REENROLLED, "mdm.Reenrolled", c->ids.device_id, d,
                           c->now);
    }
    mdm_reply_empty(c->reply);
}

/* shared_ipad_users = decline: a Shared iPad user's channel is refused with 410 (Apple's
 * documented answer: the device then manages that user without MDM).  true when declined. */
static bool shared_ipad_declined(struct checkin *c)
{
    if (c->ids.type != STORE_ENROLL_SHARED_IPAD_USER ||
        strcmp(c->ctx->cfg->shared_ipad_users, "decline") != 0)
        return false;
    c->reply->status = 410;
    snprintf(c->reply->reason, sizeof(c->reply->reason),
             "%s: Shared iPad user channels are declined (shared_ipad_users = decline)", c->type);
    log_kv(LOG_LVL_INFO, "shared_ipad_user_declined", "req", c->req->id, "enrollment",
           c->ids.enrollment_id, NULL);
    return true;
}

static void do_token_update(struct checkin *c)
{
    struct store_token_update t;
    struct scepter_error err;
    const unsigned char *unlock = NULL;
    size_t unlock_len = 0;
    bool first = false;
    int rc;

    if (!require_bound(c) || shared_ipad_declined(c))
        return;
    memset(&t, 0, sizeof(t));
    if (plistx_get_string(c->body, "Topic", true, &t.topic, &err) < 0 ||
        plistx_get_data(c->body, "Token", true, &t.token, &t.token_len, &err) < 0 ||
        plistx_get_string(c->body, "PushMagic", true, &t.push_magic, &err) < 0 ||
        plistx_get_data(c->body, "UnlockToken", false, &unlock, &unlock_len, &err) < 0 ||
        plistx_get_bool(c->body, "AwaitingConfiguration", false, &t.awaiting_configuration, &err) <
            0) {
        mdm_reply_error(c->reply, 400, "TokenUpdate: %s", err.msg);
        return;
    }
    /* The rules APNs applies when it pushes, checked once here: what is stored can be pushed. */
    if (apns_token_check(t.token_len, "Token", &err) != 0 ||
        apns_push_magic_check(t.push_magic, "PushMagic", &err) != 0) {
        mdm_reply_error(c->reply, 400, "TokenUpdate: %s", err.msg);
        return;
    }
    t.enrollment_id = c->ids.enrollment_id;
    t.device_id = c->ids.device_id;
    t.type = c->ids.type;
    t.unlock_token = unlock;
    t.unlock_token_len = unlock_len;
    t.user_id = c->ids.user_id;
    t.user_short_name = c->ids.user_short_name;
    t.user_long_name = c->ids.user_long_name;
    rc = store_token_update(c->ctx->store, &t, c->now, &first, &err);
    if (rc == SCEPTER_ENOTFOUND) {
        mdm_reply_unrecognized(c->reply, err.msg);
        return;
    }
    if (rc < 0) {
        store_failed(c, "TokenUpdate", &err);
        return;
    }
    mdm_reply_empty(c->reply);
    mdm_webhook_token_update(c->ctx, &c->ids, first, t.awaiting_configuration, c->req->body,
                             c->req->body_len, c->now);
    if (first &&
        (c->ids.type == STORE_ENROLL_DEVICE || c->ids.type == STORE_ENROLL_USER_ENROLLMENT)) {
        struct mdm_push_data pd = {t.enrollment_id, t.token, t.token_len, t.push_magic, t.topic};
        mdm_device_enrolled(c->ctx, c->ids.device_id, c->now, &pd);
    } else if (first && c->ids.type == STORE_ENROLL_USER) {
        /* Policies that install into a user's keychain go to this channel. */
        struct mdm_push_data pd = {t.enrollment_id, t.token, t.token_len, t.push_magic, t.topic};
        mdm_user_channel_enrolled(c->ctx, c->ids.device_id, t.enrollment_id, c->now, &pd);
    }
}

static void do_checkout(struct checkin *c)
{
    struct scepter_error err;

    if (!require_bound(c))
        return;
    if (store_checkout(c->ctx->store, c->ids.device_id, c->now, &err) < 0) {
        store_failed(c, "CheckOut", &err);
        return;
    }
    mdm_reply_empty(c->reply);
}

static void do_set_bootstrap(struct checkin *c)
{
    struct scepter_error err;
    const unsigned char *tok = NULL;
    size_t len = 0;

    if (!require_bound(c))
        return;
    if (plistx_get_data(c->body, "BootstrapToken", false, &tok, &len, &err) < 0) {
        mdm_reply_error(c->reply, 400, "SetBootstrapToken: %s", err.msg);
        return;
    }
    if (store_bootstrap_set(c->ctx->store, c->ids.device_id, tok, len, &err) < 0) {
        store_failed(c, "SetBootstrapToken", &err);
        return;
    }
    mdm_reply_empty(c->reply);
}

static void reply_dict(struct checkin *c, plist_t dict)
{
    size_t len;
    char *xml = plistx_to_xml(dict, &len);

    mdm_reply_plist(c->reply, xml, len);
    free(xml);
}

static void do_get_bootstrap(struct checkin *c)
{
    struct scepter_error err;
    unsigned char *tok = NULL;
    size_t len = 0;
    plist_t d;

    if (!require_bound(c))
        return;
    if (store_bootstrap_get(c->ctx->store, c->ids.device_id, &tok, &len, &err) < 0) {
        store_failed(c, "GetBootstrapToken", &err);
        return;
    }
    d = plist_new_dict();
    if (tok != NULL)
        plistx_set_data(d, "BootstrapToken", tok, len);
    reply_dict(c, d);
    plist_free(d);
    free(tok);
}

/*
 * GetToken, com.apple.maid (Apple's Get Token documentation): when a Managed Apple Account
 * signs in, Apple's identity service fetches this token through the device and checks that
 * the account belongs to the organization of the MDM server that enrolled the device.  It is
 * an RFC 7519 JWT with iss = the server_uuid Apple Business/School Manager reports for this
 * MDM server (AccountDetail), iat, a unique jti and service_type = com.apple.maid, signed
 * (RS256) with the private key whose public key was uploaded to Apple for that server.  Only
 * with both configured (maid_server_uuid, maid_key_file) is it verifiable — only then is
 * com.apple.mdm.token advertised and the request answered.
 */
bool mdm_get_token_verifiable(const struct mdm_conf *conf)
{
    return conf->maid_key != NULL && !str_empty(conf->cfg->maid_server_uuid);
}

/* base64url without padding, for the JWT of com.apple.maid. */
static char *b64url(const void *data, size_t len)
{
    char *s = base64_encode(data, len);
    size_t o = 0;

    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '=')
            break;
        s[o++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }
    s[o] = '\0';
    return s;
}

static char *maid_jwt(struct checkin *c, struct scepter_error *err)
{
    const struct mdm_conf *conf = c->ctx->conf;
    char jti[UUID_STR_LEN];
    char *header = NULL, *claims = NULL, *h64 = NULL, *c64 = NULL, *input = NULL, *s64 = NULL,
         *jwt = NULL;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = NULL;

    if (!mdm_get_token_verifiable(conf)) {
        scepter_err(err, SCEPTER_EINVAL, "TokenServiceType",
                    "TokenServiceType com.apple.maid is not served: it needs maid_server_uuid "
                    "and maid_key_file (Apple Business Manager's server identity)");
        return NULL;
    }
    uuid_new_lower(jti);
    header = xstrdup("{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    claims = xasprintf("{\"iss\":\"%s\",\"iat\":%lld,\"jti\":\"%s\","
                       "\"service_type\":\"com.apple.maid\"}",
                       conf->cfg->maid_server_uuid, (long long)c->now, jti);
    h64 = b64url(header, strlen(header));
    c64 = b64url(claims, strlen(claims));
    input = xasprintf("%s.%s", h64, c64);
    md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, conf->maid_key) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1) {
        scepter_err(err, SCEPTER_ECRYPTO, NULL, "signing the com.apple.maid token failed");
        scepter_err_openssl(err);
        goto out;
    }
    s64 = b64url(sig, siglen);
    jwt = xasprintf("%s.%s", input, s64);
out:
    EVP_MD_CTX_free(md);
    free(header);
    free(claims);
    free(h64);
    free(c64);
    free(input);
    free(s64);
    return jwt;
}

static void do_get_token(struct checkin *c)
{
    struct scepter_error err;
    const char *service = NULL;
    plist_t params = NULL, d;
    char *token;

    if (!require_bound(c))
        return;
    if (plistx_get_string(c->body, "TokenServiceType", true, &service, &err) < 0 ||
        plistx_get_dict(c->body, "TokenParameters", false, &params, &err) < 0) {
        mdm_reply_error(c->reply, 400, "GetToken: %s", err.msg);
        return;
    }
    if (strcmp(service, "com.apple.maid") != 0) {
        /* com.apple.watch.pairing needs a watch-enrollment service Scepter does not run. */
        mdm_reply_error(c->reply, 400, "GetToken: TokenServiceType %s is not served here", service);
        return;
    }
    if ((token = maid_jwt(c, &err)) == NULL) {
        mdm_reply_error(c->reply, 400, "GetToken: %s", err.msg);
        return;
    }
    d = plist_new_dict();
    plistx_set_data(d, "TokenData", token, strlen(token));
    reply_dict(c, d);
    plist_free(d);
    free(token);
}

static void do_user_authenticate(struct checkin *c)
{
    struct scepter_error err;
    const char *digest = NULL;
    plist_t d;

    if (shared_ipad_declined(c))
        return;
    if (!c->ctx->cfg->user_authenticate) {
        /* 410: this server does not manage the user (Apple's documented refusal). */
        c->reply->status = 410;
        str_copy(c->reply->reason, sizeof(c->reply->reason),
                 "UserAuthenticate: user channels are declined (user_authenticate = false)");
        return;
    }
    if (!require_bound(c))
        return;
    if (plistx_get_string(c->body, "DigestResponse", false, &digest, &err) < 0) {
        mdm_reply_error(c->reply, 400, "UserAuthenticate: %s", err.msg);
        return;
    }
    /* Round 1: an empty DigestChallenge means no authentication is required. */
    d = plist_new_dict();
    if (digest == NULL)
        plistx_set_string(d, "DigestChallenge", "");
    else
        plistx_set_string(d, "AuthToken", "");
    reply_dict(c, d);
    plist_free(d);
}

static void do_declarative(struct checkin *c)
{
    if (!require_bound(c))
        return;
    mdm_ddm_checkin(c->ctx, c->body, &c->ids, c->now, c->reply);
}

static const struct {
    const char *type;
    void (*fn)(struct checkin *c);
} handlers[] = {
    {"Authenticate", do_authenticate},
    {"TokenUpdate", do_token_update},
    {"CheckOut", do_checkout},
    {"SetBootstrapToken", do_set_bootstrap},
    {"GetBootstrapToken", do_get_bootstrap},
    {"GetToken", do_get_token},
    {"UserAuthenticate", do_user_authenticate},
    {"DeclarativeManagement", do_declarative},
};

void mdm_checkin_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply)
{
    struct checkin c;
    struct scepter_error err;
    size_t i;

    memset(&c, 0, sizeof(c));
    c.ctx = ctx;
    c.req = req;
    c.now = now;
    c.reply = reply;
    reply->event = "checkin";
    if (req->method != MDM_PUT) {
        mdm_reply_error(reply, 405, "check-in: method must be PUT");
        mdm_reply_header(reply, "Allow", "PUT");
        return;
    }
    if (!mdm_content_type_is(mdm_header(req, "Content-Type"),
                             "application/x-apple-aspen-mdm-checkin")) {
        mdm_reply_error(reply, 415,
                        "check-in: Content-Type must be application/x-apple-aspen-mdm-checkin");
        return;
    }
    /* Who is asking, before the body is parsed: the certificate comes from the connection, a
     * proxy header or an Mdm-Signature verified over the raw bytes, never from the body (which
     * is parsed only for a verified device).  The body's UDID is checked against the
     * certificate's binding by each message's handler. */
    if (mdm_identity_get(&ctx->conf->idcfg, req, now, &c.identity, &err) != 0) {
        log_kv(LOG_LVL_WARN, "identity_refused", "req", req->id, "peer", req->peer_addr, "msg",
               err.msg, NULL);
        mdm_reply_error(reply, 403, "check-in: %s", err.msg);
        goto out;
    }
    if (plistx_parse_dict(req->body, req->body_len, &c.body, &err) != 0) {
        mdm_reply_error(reply, 400, "check-in: %s", err.msg);
        goto out;
    }
    if (plistx_get_string(c.body, "MessageType", true, &c.type, &err) < 0) {
        mdm_reply_error(reply, 400, "check-in: %s", err.msg);
        goto out;
    }
    reply->message_type = NULL;
    for (i = 0; i < ARRAY_LEN(handlers); i++)
        if (strcmp(handlers[i].type, c.type) == 0)
            break;
    if (i == ARRAY_LEN(handlers)) {
        mdm_reply_error(reply, 400, "check-in: unknown MessageType '%.64s'", c.type);
        goto out;
    }
    reply->message_type = handlers[i].type;
    if (mdm_ids_from_plist(c.body, &c.ids, &err) != 0) {
        mdm_reply_error(reply, 400, "%s: %s", c.type, err.msg);
        goto out;
    }
    str_copy(reply->enrollment, sizeof(reply->enrollment), c.ids.enrollment_id);
    handlers[i].fn(&c);
    if (reply->status == 200) {
        mdm_touch(ctx, c.ids.enrollment_id);
        if (handlers[i].fn == do_authenticate || handlers[i].fn == do_checkout ||
            handlers[i].fn == do_set_bootstrap)
            mdm_webhook_checkin(ctx, c.type, &c.ids, req->body, req->body_len, now);
    }
out:
    mdm_identity_clear(&c.identity);
    plist_free(c.body);
}
