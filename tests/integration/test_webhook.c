/*
 * Webhooks against receivers that misbehave, on both stores.  A receiver in this process
 * (tests/support/rawsrv.c, a real TCP server) answers every delivery with hostile bytes —
 * a chunk size of ffffffffffffffff, Content-Length with chunked, an overlong chunk line,
 * garbage sizes, a missing CRLF, a slow drip — while Scepter keeps serving devices; each
 * event becomes a dead letter after webhook_max_attempts, visible in /metrics, the API and
 * scepterctl, and is delivered once retried to a receiver that behaves; one whose delivery took
 * the process down is not sent again after the restart.  Device secrets in
 * check-in payloads are redacted unless webhook_include_secrets = true (live on SIGHUP).  A
 * refused takeover reaches the webhook as mdm.ReenrollRefused with both fingerprints.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "support/rawsrv.h"
#include "support/support.h"

static const char OK_REPLY[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static char *metrics(struct h_server *s)
{
    struct tu_http_resp r;
    cr_assert_eq(tu_http(s->port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    char *text = xstrndup((const char *)r.body, r.body_len);
    tu_http_resp_free(&r);
    return text;
}

static bool log_contains(const struct h_server *s, const char *needle)
{
    char *log = tu_proc_log(&s->proc);
    bool found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

static int idle_status(struct h_server *s, const struct tu_cert *id, const char *udid)
{
    struct tu_http_resp r;
    char *idle = h_plist("Status", "Idle", "UDID", udid, NULL);
    cr_assert_eq(h_connect(s, id, idle, &r), 0);
    int st = r.status;
    tu_http_resp_free(&r);
    free(idle);
    return st;
}

/* The dead letters (caller json_decref()s the array's owner through *owner). */
static size_t dead_letters(struct h_server *s, json_t **owner)
{
    json_t *j = NULL;
    cr_assert_eq(h_api(s, "GET", "/v1/webhooks/dead-letters", NULL, &j), 200, "%s", h_json(j));
    *owner = j;
    return json_array_size(json_object_get(j, "dead_letters"));
}

/* Received webhook bodies whose topic is `topic`, parsed (first match from index `from`). */
static json_t *find_event(struct tu_rawsrv *rs, const char *topic, size_t from, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        size_t n = tu_rawsrv_count(rs);
        for (size_t i = from; i < n; i++) {
            char *body = tu_rawsrv_body(rs, i);
            json_t *ev = json_loads(body, 0, NULL);
            free(body);
            if (ev && strcmp(json_string_value(json_object_get(ev, "topic")), topic) == 0)
                return ev;
            json_decref(ev);
        }
        usleep(100000);
    }
    return NULL;
}

static int ctl(struct h_server *s, char **out, const char *args)
{
    char *bin = tu_binary_path("mdm/scepterctl");
    char *ca = xasprintf("%s/tls-ca.pem", s->dir);
    int rc = tu_sh(out,
                   "env -u SCEPTER_API_KEY SCEPTER_SERVER=https://127.0.0.1:%d SCEPTER_CA=%s "
                   "SCEPTER_API_KEY=" H_API_KEY " %s %s 2>&1",
                   s->port, ca, bin, args);
    free(bin);
    free(ca);
    return rc;
}

Test(webhook, a_hostile_receiver_cannot_crash_scepter_and_events_end_dead_lettered)
{
    static char drip[3000];
    str_copy(drip, sizeof(drip), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    while (strlen(drip) + 8 < sizeof(drip))
        str_append(drip, sizeof(drip), "1\r\nx\r\n");
    const struct tu_raw_reply hostile[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
         0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: "
         "chunked\r\n\r\n2\r\nok\r\n0\r\n"
         "\r\n",
         0, 0},
        {drip, 0, 50}, /* never ends within webhook_timeout */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\nAAAA\r\n", 0, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n", 0, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", 0, 0},
    };
    struct tu_rawsrv *rs = tu_rawsrv_start();
    tu_rawsrv_script(rs, hostile, sizeof(hostile) / sizeof(hostile[0]));
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\nwebhook_secret = s\n"
                            "webhook_max_attempts = 3\nwebhook_timeout = 2\n",
                            tu_rawsrv_port(rs));
    struct h_opts o = {.extra = extra};
    struct h_server S;
    h_start(&S, &o);
    struct tu_cert dev = h_device_cert(&S, "HOSTILE-1");
    h_enroll(&S, &dev, "HOSTILE-1", "MacBookPro18,3"); /* Authenticate + TokenUpdate events */

    /* Both events fail three times each; Scepter serves the device all along. */
    json_t *j = NULL;
    size_t dead = 0;
    for (int i = 0; i < 120 && dead < 2; i++) {
        cr_assert_eq(idle_status(&S, &dev, "HOSTILE-1"), 200, "the server stopped serving");
        json_decref(j);
        dead = dead_letters(&S, &j);
        if (dead < 2)
            usleep(500000);
    }
    cr_assert_eq(dead, 2, "not dead-lettered: %s", h_json(j));
    cr_assert(tu_proc_alive(&S.proc));
    json_t *list = json_object_get(j, "dead_letters");
    int64_t ids[2];
    bool seen_auth = false, seen_token = false;
    for (size_t i = 0; i < 2; i++) {
        json_t *d = json_array_get(list, i);
        const char *topic = json_string_value(json_object_get(d, "topic"));
        seen_auth |= strcmp(topic, "mdm.Authenticate") == 0;
        seen_token |= strcmp(topic, "mdm.TokenUpdate") == 0;
        cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 3, "%s", h_json(d));
        cr_assert(json_string_value(json_object_get(d, "last_error")) != NULL);
        cr_assert(json_is_object(json_object_get(d, "event")));
        ids[i] = json_integer_value(json_object_get(d, "id"));
    }
    cr_assert(seen_auth && seen_token, "%s", h_json(j));
    json_decref(j);
    cr_assert_geq(tu_rawsrv_count(rs), 6, "three attempts per event");
    /* not retried any more */
    size_t before = tu_rawsrv_count(rs);
    sleep(3);
    cr_assert_eq(tu_rawsrv_count(rs), before, "a dead letter was retried");

    char *m = metrics(&S);
    cr_assert(strstr(m, "scepter_webhook_dead_letters_total 2\n") != NULL, "%s", m);
    cr_assert(strstr(m, "scepter_outbox_dead 2\n") != NULL, "%s", m);
    cr_assert(strstr(m, "scepter_outbox_pending 0\n") != NULL, "%s", m);
    cr_assert(strstr(m, "scepter_webhooks_total{result=\"failed\"} 6\n") != NULL, "%s", m);
    free(m);
    cr_assert(log_contains(&S, "webhook_dead_letter"));

    /* The operator sees them with scepterctl; a receiver that behaves gets them on retry. */
    char *out = NULL;
    cr_assert_eq(ctl(&S, &out, "webhook dead-letters"), 0, "%s", out);
    cr_assert(strstr(out, "mdm.Authenticate") && strstr(out, "mdm.TokenUpdate"), "%s", out);
    free(out);
    cr_assert_eq(ctl(&S, &out, "webhook drop 987654"), 3, "%s", out);
    free(out);
    cr_assert_eq(ctl(&S, &out, "webhook retry x"), 2, "%s", out);
    free(out);
    cr_assert_eq(h_api(&S, "DELETE", "/v1/webhooks/dead-letters/abc", NULL, &j), 404);
    json_decref(j);
    cr_assert_eq(h_api(&S, "POST", "/v1/webhooks/dead-letters/987654/retry", NULL, &j), 404);
    json_decref(j);

    const struct tu_raw_reply good = {OK_REPLY, 0, 0};
    tu_rawsrv_script(rs, &good, 1);
    before = tu_rawsrv_count(rs);
    char *args = xasprintf("webhook retry %lld", (long long)ids[0]);
    cr_assert_eq(ctl(&S, &out, args), 0, "%s", out);
    cr_assert(strstr(out, "1 event(s) back in the outbox") != NULL, "%s", out);
    free(out);
    free(args);
    cr_assert_eq(h_api(&S, "POST", "/v1/webhooks/dead-letters/retry", NULL, &j), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "retried")), 1, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(tu_rawsrv_wait(rs, before + 2, 20000), before + 2, "not re-delivered");
    json_t *a = find_event(rs, "mdm.Authenticate", before, 0),
           *t = find_event(rs, "mdm.TokenUpdate", before, 0);
    cr_assert(a && t, "both events re-delivered");
    json_decref(a);
    json_decref(t);
    for (int i = 0; i < 50; i++) {
        m = metrics(&S);
        bool done = strstr(m, "scepter_webhooks_total{result=\"delivered\"} 2\n") != NULL;
        free(m);
        if (done)
            break;
        usleep(100000);
    }
    m = metrics(&S);
    cr_assert(strstr(m, "scepter_outbox_dead 0\n") != NULL, "%s", m);
    cr_assert(strstr(m, "scepter_webhooks_total{result=\"delivered\"} 2\n") != NULL, "%s", m);
    free(m);
    cr_assert_eq(dead_letters(&S, &j), 0, "%s", h_json(j));
    json_decref(j);

    h_stop(&S);
    tu_rawsrv_stop(rs);
    tu_cert_free(&dev);
    free(extra);
}

/* A delivery that takes the process down (here: SIGKILL while the receiver drips its answer)
 * still counts: after the restart the event is dead-lettered without being sent again, and
 * the events behind it are delivered. */
Test(webhook, an_event_whose_delivery_crashed_scepter_is_not_sent_again_after_restart)
{
    static char drip[3000];
    str_copy(drip, sizeof(drip), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    while (strlen(drip) + 8 < sizeof(drip))
        str_append(drip, sizeof(drip), "1\r\nx\r\n");
    const struct tu_raw_reply slow = {drip, 0, 50}, good = {OK_REPLY, 0, 0};
    struct tu_rawsrv *rs = tu_rawsrv_start();
    tu_rawsrv_script(rs, &slow, 1);
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\n"
                            "webhook_max_attempts = 1\nwebhook_timeout = 3\n",
                            tu_rawsrv_port(rs));
    struct h_opts o = {.extra = extra};
    struct h_server S;
    h_start(&S, &o);
    struct tu_cert dev = h_device_cert(&S, "CRASH-1");
    h_enroll(&S, &dev, "CRASH-1", "MacBookPro18,3");

    cr_assert_eq(tu_rawsrv_wait(rs, 1, 20000), 1, "no delivery started");
    h_crash_restart(&S); /* mid-delivery */
    char *first_body = tu_rawsrv_body(rs, 0);
    json_t *first = json_loads(first_body, 0, NULL);
    char *topic = xstrdup(json_string_value(json_object_get(first, "topic")));
    json_decref(first);
    free(first_body);
    tu_rawsrv_script(rs, &good, 1);

    json_t *j = NULL;
    size_t dead = 0;
    for (int i = 0; i < 120 && dead < 1; i++) {
        cr_assert_eq(idle_status(&S, &dev, "CRASH-1"), 200);
        json_decref(j);
        dead = dead_letters(&S, &j);
        if (dead < 1)
            usleep(500000);
    }
    cr_assert_eq(dead, 1, "%s", h_json(j));
    json_t *d = json_array_get(json_object_get(j, "dead_letters"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(d, "topic")), topic);
    cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 2, "%s", h_json(d));
    cr_assert(strstr(json_string_value(json_object_get(d, "last_error")), "did not finish"), "%s",
              h_json(d));
    json_decref(j);
    /* The other event went through; the crashing one was never sent again. */
    const char *other =
        strcmp(topic, "mdm.Authenticate") == 0 ? "mdm.TokenUpdate" : "mdm.Authenticate";
    json_t *ev = find_event(rs, other, 1, 20000);
    cr_assert_not_null(ev, "%s not delivered after the restart", other);
    json_decref(ev);
    ev = find_event(rs, topic, 1, 0);
    cr_assert_null(ev, "%s was sent again", topic);
    char *m = metrics(&S);
    cr_assert(strstr(m, "scepter_webhook_dead_letters_total 1\n") != NULL, "%s", m);
    cr_assert(strstr(m, "scepter_outbox_dead 1\n") != NULL, "%s", m);
    free(m);

    h_stop(&S);
    tu_rawsrv_stop(rs);
    tu_cert_free(&dev);
    free(topic);
    free(extra);
}

/* The raw_payload of a check-in event, decoded (caller frees). */
static char *payload_of(json_t *ev)
{
    const char *b64 =
        json_string_value(json_object_get(json_object_get(ev, "checkin_event"), "raw_payload"));
    unsigned char *raw = NULL;
    size_t len = 0;
    cr_assert(b64 != NULL, "%s", h_json(ev));
    cr_assert_eq(base64_decode(b64, strlen(b64), false, &raw, &len), 0);
    char *text = xstrndup((const char *)raw, len);
    free(raw);
    return text;
}

static bool redacted_has(json_t *ev, const char *key)
{
    json_t *keys = json_object_get(json_object_get(ev, "checkin_event"), "redacted_keys");
    size_t i;
    json_t *v;
    json_array_foreach(keys, i, v) if (strcmp(json_string_value(v), key) == 0) return true;
    return false;
}

Test(webhook, device_secrets_are_redacted_unless_webhook_include_secrets)
{
    struct tu_rawsrv *rs = tu_rawsrv_start();
    const struct tu_raw_reply good = {OK_REPLY, 0, 0};
    tu_rawsrv_script(rs, &good, 1);
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\n", tu_rawsrv_port(rs));
    struct h_opts o = {.extra = extra};
    struct h_server S;
    h_start(&S, &o);
    cr_assert_not(log_contains(&S, "webhook_include_secrets = true"));
    cr_assert(log_contains(&S, "webhook_url is http://"), "the plain-HTTP warning");
    struct tu_cert dev = h_device_cert(&S, "SECRETS-1");
    struct tu_http_resp r;
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "SECRETS-1",
                         "ProductName", "MacBookPro18,3", "SerialNumber", "C02SECRET", NULL);
    cr_assert_eq(h_checkin(&S, &dev, auth, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "SECRETS-1",
                        "Token", "data:push-token-secret", "PushMagic", "push-magic-secret",
                        "UnlockToken", "data:unlock-token-secret", NULL);
    cr_assert_eq(h_checkin(&S, &dev, tok, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    char *bt = h_plist("MessageType", "SetBootstrapToken", "UDID", "SECRETS-1", "BootstrapToken",
                       "data:bootstrap-token-secret", NULL);
    cr_assert_eq(h_checkin(&S, &dev, bt, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);

    json_t *ev = find_event(rs, "mdm.TokenUpdate", 0, 20000);
    cr_assert_not_null(ev, "no TokenUpdate event");
    char *xml = payload_of(ev);
    cr_assert(strstr(xml, "<key>PushMagic</key>") && strstr(xml, "REDACTED"), "%s", xml);
    cr_assert(strstr(xml, "<key>UDID</key>") && strstr(xml, "SECRETS-1"), "the rest is kept");
    cr_assert(redacted_has(ev, "Token") && redacted_has(ev, "PushMagic") &&
                  redacted_has(ev, "UnlockToken"),
              "%s", h_json(ev));
    free(xml);
    json_decref(ev);
    ev = find_event(rs, "mdm.SetBootstrapToken", 0, 20000);
    cr_assert_not_null(ev, "no SetBootstrapToken event");
    cr_assert(redacted_has(ev, "BootstrapToken"), "%s", h_json(ev));
    json_decref(ev);
    /* No secret leaves in any form: not as text, not as the base64 in <data>, not as the
     * base64 of a plist holding it. */
    static const char *const secrets[] = {"push-token-secret", "push-magic-secret",
                                          "unlock-token-secret", "bootstrap-token-secret"};
    size_t n = tu_rawsrv_count(rs);
    for (size_t i = 0; i < n; i++) {
        char *body = tu_rawsrv_body(rs, i);
        json_t *e = json_loads(body, 0, NULL);
        json_t *ce = json_object_get(e, "checkin_event");
        char *plain = ce ? payload_of(e) : xstrdup("");
        for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++) {
            char *b64 = base64_encode(secrets[k], strlen(secrets[k]));
            cr_assert(strstr(plain, secrets[k]) == NULL && strstr(plain, b64) == NULL &&
                          strstr(body, secrets[k]) == NULL,
                      "secret %s sent: %s", secrets[k], plain);
            free(b64);
        }
        free(plain);
        json_decref(e);
        free(body);
    }

    /* A command result carrying a secret (ActivationLockBypassCode) is redacted too. */
    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/SECRETS-1/commands",
                       "{\"command\":{\"request_type\":\"DeviceInformation\"},"
                       "\"push\":false}",
                       &j),
                 201, "%s", h_json(j));
    char *uuid = xstrdup(json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
    char *ack = h_plist("Status", "Acknowledged", "UDID", "SECRETS-1", "CommandUUID", uuid,
                        "ActivationLockBypassCode", "bypass-code-secret", NULL);
    cr_assert_eq(h_connect(&S, &dev, ack, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    ev = find_event(rs, "mdm.Connect", 0, 20000);
    cr_assert_not_null(ev, "no mdm.Connect event");
    json_t *ae = json_object_get(ev, "acknowledge_event");
    const char *b64 = json_string_value(json_object_get(ae, "raw_payload"));
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    cr_assert_eq(base64_decode(b64, strlen(b64), false, &raw, &rawlen), 0);
    char *text = xstrndup((const char *)raw, rawlen);
    cr_assert(strstr(text, "bypass-code-secret") == NULL && strstr(text, uuid) != NULL, "%s", text);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(ae, "redacted_keys"), 0)),
                     "ActivationLockBypassCode", "%s", h_json(ev));
    free(text);
    free(raw);
    free(ack);
    free(uuid);
    json_decref(ev);

    /* webhook_include_secrets = true, live on SIGHUP, with a warning. */
    h_conf_append(&S, "webhook_include_secrets = true\n");
    kill(S.proc.pid, SIGHUP);
    for (int i = 0; i < 100 && !log_contains(&S, "webhook_include_secrets = true"); i++)
        usleep(100000);
    cr_assert(log_contains(&S, "webhook_include_secrets = true"), "no warning");
    usleep(300000); /* workers take the new snapshot at their next request */
    size_t from = tu_rawsrv_count(rs);
    cr_assert_eq(h_checkin(&S, &dev, tok, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    ev = find_event(rs, "mdm.TokenUpdate", from, 20000);
    cr_assert_not_null(ev);
    xml = payload_of(ev);
    cr_assert(strstr(xml, "push-magic-secret") != NULL, "sent whole: %s", xml);
    cr_assert_null(json_object_get(json_object_get(ev, "checkin_event"), "redacted_keys"));
    free(xml);
    json_decref(ev);

    h_stop(&S);
    tu_rawsrv_stop(rs);
    tu_cert_free(&dev);
    free(auth);
    free(tok);
    free(bt);
    free(extra);
}

Test(webhook, a_refused_takeover_reaches_the_webhook_with_both_fingerprints)
{
    struct tu_rawsrv *rs = tu_rawsrv_start();
    const struct tu_raw_reply good = {OK_REPLY, 0, 0};
    tu_rawsrv_script(rs, &good, 1);
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\n", tu_rawsrv_port(rs));
    struct h_opts o = {.extra = extra};
    struct h_server S;
    h_start(&S, &o);
    struct tu_cert victim = h_device_cert(&S, "victim"), attacker = h_device_cert(&S, "attacker");
    char vh[CRYPTO_SHA256_HEX_LEN], ah[CRYPTO_SHA256_HEX_LEN];
    crypto_cert_sha256_hex(victim.cert, vh);
    crypto_cert_sha256_hex(attacker.cert, ah);
    h_enroll(&S, &victim, "WH-VICTIM", "MacBookPro18,3");
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "WH-VICTIM",
                         "ProductName", "MacBookPro18,3", "SerialNumber", "C02TAKEOVER", NULL);
    struct tu_http_resp r;
    cr_assert_eq(h_checkin(&S, &attacker, auth, &r), 0);
    cr_assert_eq(r.status, 403);
    tu_http_resp_free(&r);

    json_t *ev = find_event(rs, "mdm.ReenrollRefused", 0, 20000);
    cr_assert_not_null(ev, "no mdm.ReenrollRefused webhook");
    json_t *d = json_object_get(ev, "event");
    cr_assert_str_eq(json_string_value(json_object_get(d, "udid")), "WH-VICTIM");
    cr_assert_str_eq(json_string_value(json_object_get(d, "presented_cert_sha256")), ah, "%s",
                     h_json(ev));
    cr_assert_str_eq(json_string_value(json_object_get(d, "bound_cert_sha256")), vh, "%s",
                     h_json(ev));
    json_decref(ev);

    h_stop(&S);
    tu_rawsrv_stop(rs);
    tu_cert_free(&victim);
    tu_cert_free(&attacker);
    free(auth);
    free(extra);
}

/* NanoMDM/MicroMDM consumers: token_update_tally 1 on the first TokenUpdate only, the
 * AwaitingConfiguration flag, and (webhook_idle_events) Idle polls as mdm.Connect "Idle". */
Test(webhook, first_token_update_awaiting_configuration_and_idle_events)
{
    struct tu_rawsrv *rs = tu_rawsrv_start();
    const struct tu_raw_reply good = {OK_REPLY, 0, 0};
    tu_rawsrv_script(rs, &good, 1);
    char *extra = xasprintf("webhook_url = http://127.0.0.1:%d/hook\nwebhook_idle_events = true\n",
                            tu_rawsrv_port(rs));
    struct h_opts o = {.extra = extra};
    struct h_server S;
    struct tu_http_resp r;
    h_start(&S, &o);
    struct tu_cert dev = h_device_cert(&S, "NANO-1");
    char *auth = h_plist("MessageType", "Authenticate", "Topic", S.topic, "UDID", "NANO-1",
                         "ProductName", "iPhone14,2", NULL);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", S.topic, "UDID", "NANO-1", "Token",
                        "data:tok-nano", "PushMagic", "00000000-1111-2222-3333-444444444444",
                        "AwaitingConfiguration", "true", NULL);
    cr_assert_eq(h_checkin(&S, &dev, auth, &r), 0);
    tu_http_resp_free(&r);
    cr_assert_eq(h_checkin(&S, &dev, tok, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    json_t *ev = find_event(rs, "mdm.TokenUpdate", 0, 20000);
    cr_assert_not_null(ev);
    json_t *ce = json_object_get(ev, "checkin_event");
    cr_assert_eq(json_integer_value(json_object_get(ce, "token_update_tally")), 1, "%s",
                 json_dumps(ev, 0));
    cr_assert(json_is_true(json_object_get(ce, "first_token_update")));
    cr_assert(json_is_true(json_object_get(ce, "awaiting_configuration")));
    cr_assert_str_eq(json_string_value(json_object_get(ce, "udid")), "NANO-1");
    size_t after_first = tu_rawsrv_count(rs);
    json_decref(ev);

    /* A later TokenUpdate: no tally of 1, not first. */
    cr_assert_eq(h_checkin(&S, &dev, tok, &r), 0);
    tu_http_resp_free(&r);
    ev = find_event(rs, "mdm.TokenUpdate", after_first, 20000);
    cr_assert_not_null(ev);
    ce = json_object_get(ev, "checkin_event");
    cr_assert_null(json_object_get(ce, "token_update_tally"));
    cr_assert(json_is_false(json_object_get(ce, "first_token_update")));
    json_decref(ev);

    /* An Idle poll. */
    cr_assert_eq(idle_status(&S, &dev, "NANO-1"), 200);
    ev = find_event(rs, "mdm.Connect", 0, 20000);
    cr_assert_not_null(ev, "the Idle poll is an event");
    json_t *ae = json_object_get(ev, "acknowledge_event");
    cr_assert_str_eq(json_string_value(json_object_get(ae, "status")), "Idle");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ae, "ids"), "type")),
                     "Device");
    cr_assert_not_null(json_object_get(ae, "raw_payload"));
    json_decref(ev);

    free(auth);
    free(tok);
    free(extra);
    tu_cert_free(&dev);
    h_stop(&S);
    tu_rawsrv_stop(rs);
}
