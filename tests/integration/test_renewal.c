/*
 * Device identity renewal over HTTPS, on both store backends: a Mac whose identity is 10 days
 * from its notAfter is sent the enrollment profile again (same PayloadIdentifier, a fresh
 * PKCS#12 identity from the device CA), installs it, presents the new certificate — which is
 * bound to its enrollment — and keeps its queue and its policies; its old certificate is then
 * refused, and an unrelated fresh certificate from the same CA, presented with its UDID, is
 * refused before, during and after the renewal (the takeover closed in test_security.c stays
 * closed).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pkcs12.h>

#include "common/plistx.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "profiles/profiles.h"
#include "support/support.h"

static struct h_server S;

static void setup(void)
{
    /* Harness identities last 30 days: renew those within 20, checked every second. */
    struct h_opts o = {.extra = "identity_renew_days = 20\nidentity_renew_interval = 1\n"};
    h_start(&S, &o);
}

static void teardown(void)
{
    h_stop(&S);
}

TestSuite(renewal, .init = setup, .fini = teardown);

static plist_t poll_as(const struct tu_cert *id, const char *udid, const char *status,
                       const char *reported, char uuid[64], int *http)
{
    struct tu_http_resp r;
    char *body = reported ? h_plist("Status", status, "UDID", udid, "CommandUUID", reported, NULL)
                          : h_plist("Status", "Idle", "UDID", udid, NULL);
    plist_t d = NULL;
    struct scepter_error err;
    const char *u = NULL;

    cr_assert_eq(h_connect(&S, id, body, &r), 0);
    free(body);
    *http = r.status;
    if (r.status != 200 || r.body_len == 0) {
        tu_http_resp_free(&r);
        return NULL;
    }
    cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_get_string(d, "CommandUUID", true, &u, &err), 0);
    snprintf(uuid, 64, "%s", u);
    tu_http_resp_free(&r);
    return d;
}

static const char *request_type(plist_t cmd)
{
    plist_t c = plist_dict_get_item(cmd, "Command");
    return plist_get_string_ptr(plist_dict_get_item(c, "RequestType"), NULL);
}

static json_t *device(const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s", udid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    free(path);
    return j;
}

static const char *renewal_state(const char *udid)
{
    static char out[32];
    json_t *j = device(udid);
    snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(j, "identity_renewal")));
    json_decref(j);
    return out;
}

/* The profile an InstallProfile carries, parsed (caller plist_free()s). */
static plist_t profile_of(plist_t cmd)
{
    plist_t c = plist_dict_get_item(cmd, "Command"), prof = NULL;
    const unsigned char *payload;
    size_t len, ilen;
    unsigned char *inner = NULL;
    struct scepter_error err;

    cr_assert_eq(plistx_get_data(c, "Payload", true, &payload, &len, &err), 0);
    cr_assert_eq(profile_unwrap(payload, len, NULL, &inner, &ilen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
    free(inner);
    return prof;
}

/* What the device does with the enrollment profile: the identity of its PKCS#12 payload. */
static struct tu_cert identity_of(plist_t prof, bool *has_mdm)
{
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    struct tu_cert id = {NULL, NULL};

    *has_mdm = false;
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t p = plist_array_get_item(arr, i);
        const char *type = plist_get_string_ptr(plist_dict_get_item(p, "PayloadType"), NULL);
        if (strcmp(type, "com.apple.mdm") == 0)
            *has_mdm = true;
        if (strcmp(type, "com.apple.security.pkcs12") != 0)
            continue;
        uint64_t len = 0;
        const char *der = plist_get_data_ptr(plist_dict_get_item(p, "PayloadContent"), &len);
        const char *pw = plist_get_string_ptr(plist_dict_get_item(p, "Password"), NULL);
        const unsigned char *q = (const unsigned char *)der;
        PKCS12 *p12 = d2i_PKCS12(NULL, &q, (long)len);
        cr_assert_not_null(p12);
        cr_assert_eq(PKCS12_parse(p12, pw, &id.key, &id.cert, NULL), 1, "the PKCS#12 opens");
        PKCS12_free(p12);
    }
    cr_assert_not_null(id.cert, "the profile carries a PKCS#12 identity");
    return id;
}

static const char *top_identifier(plist_t prof)
{
    return plist_get_string_ptr(plist_dict_get_item(prof, "PayloadIdentifier"), NULL);
}

static bool metrics_have(const char *line)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    bool ok = strstr((char *)r.body, line) != NULL;
    tu_http_resp_free(&r);
    return ok;
}

Test(renewal, an_identity_10_days_from_expiry_is_renewed_end_to_end)
{
    json_t *j = NULL;
    char got[64];
    int http = 0;
    struct tu_cert_opts o = {.cn = "RN-MAC", .not_after = 10 * 86400};
    struct tu_cert old = tu_cert_issue(&S.dev_ca, &o);
    struct tu_cert settled = h_device_cert(&S, "RN-OTHER"); /* 30 days: not renewed */
    struct tu_cert intruder = h_device_cert(&S, "RN-MAC");

    h_enroll(&S, &old, "RN-MAC", "MacBookPro18,3");
    h_enroll(&S, &settled, "RN-OTHER", "MacBookPro18,3");

    /* A policy installed, and a command queued behind the renewal: both must survive it. */
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\":\"RN Wi-Fi\",\"platform\":\"macos\",\"scep\":{\"url\":"
                       "\"http://127.0.0.1:9/scep\",\"challenge\":\"s3cret\",\"subject\":"
                       "\"/CN=%SerialNumber%/\"},\"targets\":{\"devices\":[\"RN-MAC\"]}}",
                       &j),
                 201, "%s", h_json(j));
    json_decref(j);
    plist_t cmd = poll_as(&old, "RN-MAC", NULL, NULL, got, &http);
    cr_assert_not_null(cmd);
    cr_assert_str_eq(request_type(cmd), "InstallProfile");
    /* The first InstallProfile may be the policy or the renewal: take them as they come. */
    plist_t renewal = NULL;
    char renewal_uuid[64] = "";
    for (int i = 0; i < 10 && cmd; i++) {
        plist_t prof = profile_of(cmd);
        bool is_enroll = false;
        plist_t arr = plist_dict_get_item(prof, "PayloadContent");
        for (uint32_t k = 0; k < plist_array_get_size(arr); k++)
            is_enroll =
                is_enroll ||
                strcmp(plist_get_string_ptr(
                           plist_dict_get_item(plist_array_get_item(arr, k), "PayloadType"), NULL),
                       "com.apple.mdm") == 0;
        plist_free(prof);
        if (is_enroll) {
            renewal = cmd;
            snprintf(renewal_uuid, sizeof(renewal_uuid), "%s", got);
            break;
        }
        plist_free(cmd);
        cmd = poll_as(&old, "RN-MAC", "Acknowledged", got, got, &http); /* the policy */
        if (cmd == NULL) {
            /* Nothing more yet: the renewal job runs every second. */
            for (int w = 0; w < 50 && cmd == NULL; w++) {
                usleep(100 * 1000);
                cmd = poll_as(&old, "RN-MAC", NULL, NULL, got, &http);
            }
        }
    }
    cr_assert_not_null(renewal, "the renewal InstallProfile arrives within 5 s");
    cr_assert_str_eq(renewal_state("RN-MAC"), "outstanding");
    cr_assert_str_eq(renewal_state("RN-OTHER"), "none", "a 30-day identity is left alone");
    cr_assert(metrics_have("scepter_identities_expiring 1"), "one identity expires within 20 d");
    char *path = xasprintf("/v1/devices/RN-MAC/commands/%s", renewal_uuid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    free(path);
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_type")), "InstallProfile");
    json_decref(j);

    /* Queued behind it (lower priority): must survive the renewal. */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/RN-MAC/commands",
                       "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false,"
                       "\"priority\":-5}",
                       &j),
                 201);
    char kept[64];
    snprintf(kept, sizeof(kept), "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);

    /* The profile: the enrollment profile's identifier, a com.apple.mdm payload, a new
     * identity. */
    plist_t prof = profile_of(renewal);
    bool has_mdm = false;
    struct tu_cert fresh = identity_of(prof, &has_mdm);
    cr_assert(has_mdm);
    struct tu_http_resp er;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &er), 0);
    cr_assert_eq(er.status, 200);
    plist_t eprof = NULL;
    unsigned char *inner = NULL;
    size_t ilen = 0;
    struct scepter_error err;
    cr_assert_eq(profile_unwrap(er.body, er.body_len, NULL, &inner, &ilen, NULL, &err), 0);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &eprof, &err), 0);
    cr_assert_str_eq(top_identifier(prof), top_identifier(eprof), "same PayloadIdentifier");
    free(inner);
    plist_free(eprof);
    tu_http_resp_free(&er);
    plist_free(prof);
    plist_free(renewal);

    /* While the renewal is outstanding, an unrelated certificate is still refused. */
    cmd = poll_as(&intruder, "RN-MAC", NULL, NULL, got, &http);
    cr_assert_null(cmd);
    cr_assert_eq(http, 403, "an unrelated fresh certificate is refused during the renewal");
    cr_assert_str_eq(renewal_state("RN-MAC"), "outstanding");

    /* The device installed it and reports with its new identity. */
    cmd = poll_as(&fresh, "RN-MAC", "Acknowledged", renewal_uuid, got, &http);
    cr_assert_eq(http, 200, "the renewed identity is bound");
    /* Its queue is kept: what was queued behind the renewal (the command above, and the
     * policy's InstallProfile when the renewal overtook it) comes next, to the new identity. */
    bool kept_delivered = false;
    for (int k = 0; k < 5 && cmd != NULL; k++) {
        kept_delivered = kept_delivered || strcmp(got, kept) == 0;
        plist_free(cmd);
        cmd = poll_as(&fresh, "RN-MAC", "Acknowledged", got, got, &http);
        cr_assert_eq(http, 200);
    }
    cr_assert_null(cmd, "the queue drains");
    cr_assert(kept_delivered, "the command queued before the renewal is delivered after it");

    j = device("RN-MAC");
    cr_assert_str_eq(json_string_value(json_object_get(j, "identity_renewal")), "renewed");
    cr_assert(json_is_true(json_object_get(j, "enrolled")));
    json_t *pols = json_object_get(j, "policies");
    cr_assert_eq(json_array_size(pols), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(pols, 0), "state")),
                     "installed", "its policies are kept: %s", h_json(j));
    json_t *certs = json_object_get(j, "certificates");
    cr_assert_eq(json_array_size(certs), 1, "only the new certificate is bound");
    const char *na = json_string_value(json_object_get(j, "identity_not_after"));
    cr_assert_not_null(na);
    cr_assert(strncmp(na, "202", 3) == 0, "%s", na);
    json_decref(j);
    cr_assert(metrics_have("scepter_identities_renewed_total 1"));
    cr_assert(metrics_have("scepter_identities_expiring 0"));

    /* The old identity no longer works; check-in with the new one does. */
    cmd = poll_as(&old, "RN-MAC", NULL, NULL, got, &http);
    cr_assert_eq(http, 403, "the superseded certificate is refused");
    cmd = poll_as(&intruder, "RN-MAC", NULL, NULL, got, &http);
    cr_assert_eq(http, 403, "an unrelated certificate is still refused after the renewal");
    struct tu_http_resp r;
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "RN-MAC", "Token",
                        "data:tok-RN", "PushMagic", "00000000-1111-2222-3333-444444444444", NULL);
    cr_assert_eq(h_checkin(&S, &fresh, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(&S, &intruder, tok, &r), 0);
    cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(tok);
    cr_assert_eq(h_api(&S, "GET", "/v1/events?udid=RN-MAC&kind=mdm.IdentityRenewed", NULL, &j),
                 200);
    cr_assert_eq(json_array_size(json_object_get(j, "events")), 1, "%s", h_json(j));
    json_decref(j);

    tu_cert_free(&fresh);
    tu_cert_free(&old);
    tu_cert_free(&settled);
    tu_cert_free(&intruder);
}

/* Without a renewal outstanding a certificate bound to nothing is never bound (check-in and
 * command channel), whatever it is. */
Test(renewal, no_renewal_outstanding_binds_nothing)
{
    struct tu_http_resp r;
    char got[64];
    int http = 0;
    struct tu_cert mine = h_device_cert(&S, "RN-2"), other = h_device_cert(&S, "RN-2");

    h_enroll(&S, &mine, "RN-2", "MacBookPro18,3");
    plist_t cmd = poll_as(&other, "RN-2", NULL, NULL, got, &http);
    cr_assert_null(cmd);
    cr_assert_eq(http, 403);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "RN-2", "Token",
                        "data:tok-RN2", "PushMagic", "00000000-1111-2222-3333-444444444444", NULL);
    cr_assert_eq(h_checkin(&S, &other, tok, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    free(tok);
    cr_assert_str_eq(renewal_state("RN-2"), "none");
    tu_cert_free(&mine);
    tu_cert_free(&other);
}
