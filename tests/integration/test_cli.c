/*
 * scepterctl against the running server (exit codes scripts can trust, --json, tables, clear
 * errors, TLS verification of the server), the plain-HTTP listener behind a TLS-terminating
 * proxy (Mdm-Signature and the RFC 9440 Client-Cert header), and the enrollment secret.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <openssl/bio.h>
#include <openssl/cms.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

#define MAC_UDID "564D8F2A-0E5B-4C0A-9A7D-1B2C3D4E5F60"

static struct h_server S;

static void setup(void)
{
    struct h_opts o = {.identity = "mtls,signature,header",
                       .plain_http = true,
                       .extra = "trusted_proxy_header = Client-Cert\n"
                                "trusted_proxy_addrs = 127.0.0.1,::1\n"
                                "enroll_secret = open-sesame\n"};
    h_start(&S, &o);
}

static void teardown(void)
{
    h_stop(&S);
}

TestSuite(cli, .init = setup, .fini = teardown);

/* Run scepterctl with args; returns its exit status, output in *out (caller frees). */
static int ctl(char **out, const char *env, const char *args)
{
    char *bin = tu_binary_path("mdm/scepterctl");
    char *ca = xasprintf("%s/tls-ca.pem", S.dir);
    int rc = tu_sh(out,
                   "env -u SCEPTER_API_KEY SCEPTER_SERVER=https://127.0.0.1:%d SCEPTER_CA=%s "
                   "SCEPTER_API_KEY=" H_API_KEY " %s %s %s 2>&1",
                   S.port, ca, env ? env : "", bin, args);
    free(bin);
    free(ca);
    return rc;
}

Test(cli, scepterctl_exit_codes_tables_and_json)
{
    char *out = NULL;
    struct tu_cert mac = h_device_cert(&S, MAC_UDID);
    h_enroll(&S, &mac, MAC_UDID, "MacBookPro18,3");

    /* The README's order: a group of Macs, then the example policy that targets it. */
    cr_assert_eq(ctl(&out, NULL, "group create 'Lab Macs' " MAC_UDID), 0, "%s", out);
    free(out);
    char *policy = tu_source_path("profiles/examples/policy-macos.json");
    char *args = xasprintf("policy create --file %s", policy);
    cr_assert_eq(ctl(&out, NULL, args), 0, "%s", out);
    cr_assert(strstr(out, "1 InstallProfile") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, args), 4, "a duplicate name is a conflict: %s", out);
    cr_assert(strstr(out, "exists already") != NULL, "%s", out);
    free(out);
    free(args);
    free(policy);

    /* an invalid policy: exit 2, every problem listed */
    policy = tu_source_path("profiles/examples/policy-invalid.json");
    args = xasprintf("policy create --file %s", policy);
    cr_assert_eq(ctl(&out, NULL, args), 2, "%s", out);
    cr_assert(strstr(out, "platform") && strstr(out, "scep.key_size") &&
                  strstr(out, "favourite_colour"),
              "%s", out);
    free(out);
    free(args);
    free(policy);

    cr_assert_eq(ctl(&out, NULL, "policy list"), 0, "%s", out);
    cr_assert(strstr(out, "NAME") && strstr(out, "Corp Wi-Fi certificate"), "a table: %s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "--json device list --platform macos"), 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "--json prints JSON: %s", out);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device commands " MAC_UDID), 0, "%s", out);
    cr_assert(strstr(out, "InstallProfile") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device enqueue " MAC_UDID " --type DeviceInformation --no-push"),
                 0, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "policy show 424242"), 3, "not found: %s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "--api-key wrong device list"), 5, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device list --platform android"), 2, "%s", out);
    cr_assert(strstr(out, "platform") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "policy frobnicate"), 2, "%s", out);
    free(out);
    /* the server's certificate is verified: without its CA, a clear TLS failure */
    cr_assert_eq(ctl(&out, "SCEPTER_CA=/dev/null", "device list"), 1, "%s", out);
    cr_assert(strstr(out, "TLS") != NULL || strstr(out, "CA") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "apikey create robot"), 0, "%s", out);
    cr_assert(strncmp(out, "scp_", 4) == 0 || strstr(out, "scp_") != NULL, "%s", out);
    free(out);

    /* The device list a page at a time: the hint names the next page's cursor. */
    struct tu_cert mac2 = h_device_cert(&S, "CLI-PAGE-2");
    h_enroll(&S, &mac2, "CLI-PAGE-2", "Mac14,2");
    cr_assert_eq(ctl(&out, NULL, "device list --limit 1"), 0, "%s", out);
    const char *hint = strstr(out, "(more devices: --after ");
    cr_assert(hint != NULL && strstr(out, MAC_UDID) != NULL, "by UDID, the Mac first: %s", out);
    cr_assert(strncmp(hint + strlen("(more devices: --after "), MAC_UDID, strlen(MAC_UDID)) == 0,
              "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device list --limit 1 --after " MAC_UDID), 0, "%s", out);
    cr_assert(strstr(out, "CLI-PAGE-2") != NULL && strstr(out, "more devices") == NULL, "%s", out);
    free(out);
    tu_cert_free(&mac2);
    tu_cert_free(&mac);
}

Test(cli, plain_http_behind_a_proxy_with_signature_or_client_cert_header)
{
    struct tu_cert id = h_device_cert(&S, "PROXY-1");
    struct tu_http_resp r;
    char *auth = h_plist("MessageType", "Authenticate", "Topic", H_TOPIC, "UDID", "PROXY-1",
                         "ProductName", "iPhone14,2", NULL);
    char *sig = tu_mdm_signature(&id, auth, strlen(auth));
    char *hdr = xasprintf("Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
                          "Mdm-Signature: %s\r\n",
                          sig);
    cr_assert_gt(S.http_port, 0);
    cr_assert_eq(
        tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/checkin", hdr, auth, strlen(auth), &r),
        0);
    cr_assert_eq(r.status, 200, "Mdm-Signature over plain HTTP: %d %s", r.status, r.body);
    tu_http_resp_free(&r);

    /* the proxy forwards the client certificate (RFC 9440) */
    unsigned char *der = NULL;
    int len = i2d_X509(id.cert, &der);
    char *b64 = base64_encode(der, (size_t)len);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", H_TOPIC, "UDID", "PROXY-1", "Token",
                        "data:proxy-token", "PushMagic", "PM", NULL);
    char *h2 = xasprintf("Content-Type: application/x-apple-aspen-mdm-checkin\r\n"
                         "Client-Cert: :%s:\r\n",
                         b64);
    cr_assert_eq(
        tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/checkin", h2, tok, strlen(tok), &r),
        0);
    cr_assert_eq(r.status, 200, "Client-Cert header: %d %s", r.status, r.body);
    tu_http_resp_free(&r);
    /* no identity at all over plain HTTP: refused */
    char *idle = h_plist("Status", "Idle", "UDID", "PROXY-1", NULL);
    cr_assert_eq(tu_http(S.http_port, false, NULL, NULL, "PUT", "/mdm/connect",
                         "Content-Type: application/x-apple-aspen-mdm\r\n", idle, strlen(idle), &r),
                 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    free(idle);
    free(h2);
    free(tok);
    free(b64);
    OPENSSL_free(der);
    free(hdr);
    free(sig);
    free(auth);
    tu_cert_free(&id);
}

Test(cli, enrollment_profile_is_gated_by_the_secret)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    cr_assert_eq(
        tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll?secret=nope", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/mdm/enroll?secret=open-sesame", NULL,
                         NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_assert_str_eq(tu_http_header(&r, "Content-Type", ct, sizeof(ct)),
                     "application/x-apple-aspen-config");
    tu_http_resp_free(&r);
}

Test(cli, security_commands_remove_allow_revoke_tokens_events)
{
    char *out = NULL, *args;
    struct tu_cert a = h_device_cert(&S, "cli-sec-a"), b = h_device_cert(&S, "cli-sec-b");
    char hash[65];

    h_enroll(&S, &a, "CLI-SEC", "iPhone14,2");
    crypto_cert_sha256_hex(a.cert, hash);

    cr_assert_eq(ctl(&out, NULL, "device allow-reenroll CLI-SEC --for 15m"), 0, "%s", out);
    cr_assert(strstr(out, "may enroll with a new identity until") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device allow-reenroll CLI-SEC --for forever"), 2, "%s", out);
    cr_assert(strstr(out, "for") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device allow-reenroll NOBODY"), 3, "%s", out);
    free(out);

    cr_assert_eq(ctl(&out, NULL, "enrollment-token create --uses 50 --expires 7d --note lab"), 0,
                 "%s", out);
    cr_assert(strstr(out, "set_") != NULL && strstr(out, "shown only now") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "enrollment-token list"), 0, "%s", out);
    cr_assert(strstr(out, "lab") != NULL && strstr(out, "set_") == NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "enrollment-token create --uses many"), 2, "%s", out);
    free(out);

    args = xasprintf("cert revoke %s --reason stolen", hash);
    cr_assert_eq(ctl(&out, NULL, args), 0, "%s", out);
    cr_assert(strstr(out, "revoked; it was bound to CLI-SEC") != NULL, "%s", out);
    free(out);
    free(args);
    cr_assert_eq(ctl(&out, NULL, "cert revocations --device CLI-SEC"), 0, "%s", out);
    hash[40] = '\0'; /* the table shortens long cells */
    cr_assert(strstr(out, hash) != NULL && strstr(out, "revoked") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "cert revoke nothex"), 2, "%s", out);
    free(out);

    h_enroll(&S, &b, "CLI-SEC", "iPhone14,2"); /* the window is still open */
    cr_assert_eq(ctl(&out, NULL, "device remove CLI-SEC"), 0, "%s", out);
    cr_assert(strstr(out, "1 certificate(s) revoked") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "events --device CLI-SEC"), 0, "%s", out);
    cr_assert(strstr(out, "device.removed") && strstr(out, "certificate.revoked"), "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "--json events --kind device.removed --limit 1"), 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "events")), 1, "%s", out);
    json_decref(j);
    free(out);
    tu_cert_free(&a);
    tu_cert_free(&b);
}

/* Typed commands with Apple's key names (--fields), checked by the server, and --expires-in. */
Test(cli, typed_commands_with_fields_and_expiry)
{
    char *out = NULL;
    struct tu_cert mac = h_device_cert(&S, MAC_UDID);
    h_enroll(&S, &mac, MAC_UDID, "MacBookPro18,3");

    cr_assert_eq(ctl(&out, NULL,
                     "device enqueue " MAC_UDID " --type DeviceLock --fields "
                     "'{\"Message\":\"Call IT\",\"PIN\":\"123456\"}' --expires-in 1h --no-push"),
                 0, "%s", out);
    cr_assert(strstr(out, "DeviceLock") != NULL, "%s", out);
    free(out);
    cr_assert_neq(ctl(&out, NULL,
                      "command send --device " MAC_UDID " --type ScheduleOSUpdate --fields "
                      "'{\"Updates\":[{\"ProductVersion\":\"15.1\"}]}'"),
                  0, "%s", out);
    cr_assert(strstr(out, "command.Updates[0].InstallAction: required") != NULL, "%s", out);
    free(out);
    cr_assert_neq(
        ctl(&out, NULL, "device enqueue " MAC_UDID " --type RestartDevice --expires-in never"), 0,
        "%s", out);
    cr_assert(strstr(out, "expires_in") != NULL, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device commands " MAC_UDID), 0, "%s", out);
    cr_assert(strstr(out, "DeviceLock") != NULL && strstr(out, "RestartDevice") == NULL, "%s", out);
    free(out);
    /* The history a page at a time: the hint names the next page's cursor. */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ctl(&out, NULL, "device enqueue " MAC_UDID " --type ProfileList --no-push"), 0,
                     "%s", out);
        free(out);
    }
    cr_assert_eq(ctl(&out, NULL, "device clear " MAC_UDID), 0, "%s", out);
    free(out);
    cr_assert_eq(ctl(&out, NULL, "device commands " MAC_UDID " --all --limit 1"), 0, "%s", out);
    const char *hint = strstr(out, "(older commands: --all --before ");
    cr_assert(hint != NULL && strstr(out, "ProfileList") != NULL, "%s", out);
    const char *num = hint + strlen("(older commands: --all --before ");
    char digits[32];
    int64_t cursor = 0;
    snprintf(digits, sizeof(digits), "%.*s", (int)strcspn(num, ")"), num);
    cr_assert_eq(str_to_i64(digits, 1, INT64_MAX, &cursor), 0, "%s", out);
    free(out);
    char *older =
        xasprintf("device commands " MAC_UDID " --all --limit 1 --before %lld", (long long)cursor);
    cr_assert_eq(ctl(&out, NULL, older), 0, "%s", out);
    cr_assert(strstr(out, "ProfileList") != NULL, "the older of the two: %s", out);
    free(out);
    free(older);
    cr_assert_eq(ctl(&out, NULL, "device commands " MAC_UDID " --all --before 0"), 2, "%s", out);
    cr_assert(strstr(out, "before") != NULL, "%s", out);
    free(out);
    tu_cert_free(&mac);
}
