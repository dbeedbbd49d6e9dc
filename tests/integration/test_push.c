/*
 * Pushes through the server, against the real HTTP/2 APNs test server (tests/apns-server/):
 * a device is pushed after its first TokenUpdate with Apple's MDM push; a dead token (410)
 * marks the enrollment's token invalid until the next TokenUpdate; saving a policy and
 * POST /v1/push hand pushes to APNs; the push certificate is replaced without a restart,
 * and a topic change is refused unless forced.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apns-server/harness.h"
#include "common/codec.h"
#include "common/file.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "store/store.h"
#include "support/support.h"

static struct h_server S;
static struct ts_server *ts;
static char *topic;

static void setup(void)
{
    char *pushca = ts_pki("pushca.pem"), *ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *args[] = {"--client-ca", pushca, "--max-lifetime", "600", NULL};

    cr_assert_not_null(pushca);
    ts = ts_start(args);
    cr_assert_not_null(ts, "apns-test-server did not start");
    topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\napns_coalesce_ms = 0\n"
                            "repush_interval = 3\n",
                            ts->port, ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);
    free(extra);
    free(pushca);
    free(ca);
    free(cert);
    free(key);
}

static void teardown(void)
{
    h_stop(&S);
    ts_stop(ts);
    free(topic);
}

TestSuite(push, .init = setup, .fini = teardown);

/* Wait (bounded) until the APNs test server has answered at least n requests. */
static long long wait_received(long long n)
{
    long long got = 0;
    for (int i = 0; i < 200; i++) {
        got = ts_stat(ts, "received");
        if (got >= n)
            break;
        usleep(50000);
    }
    return got;
}

static char *token_hex(const char *token)
{
    return hex_encode(token, strlen(token), false);
}

static void token_update(const struct tu_cert *id, const char *udid, const char *token)
{
    struct tu_http_resp r;
    char *data = xasprintf("data:%s", token);
    char *tok = h_plist("MessageType", "TokenUpdate", "Topic", topic, "UDID", udid, "Token", data,
                        "PushMagic", "PUSH-MAGIC-1", NULL);
    cr_assert_eq(h_checkin(&S, id, tok, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_resp_free(&r);
    free(tok);
    free(data);
}

static bool token_valid(const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/devices/%s", udid);
    cr_assert_eq(h_api(&S, "GET", path, NULL, &j), 200);
    bool v = json_is_true(json_object_get(j, "push_token_valid"));
    json_decref(j);
    free(path);
    return v;
}

Test(push, enrollment_pushes_with_apples_mdm_push)
{
    struct tu_cert id = h_device_cert(&S, "PUSH-A");
    h_enroll(&S, &id, "PUSH-A", "MacBookPro18,3");
    cr_assert_geq(wait_received(1), 1, "the first TokenUpdate is followed by a push");

    json_t *log = ts_log(ts, 10);
    json_t *e = json_array_get(log, json_array_size(log) - 1);
    char *hex = token_hex("tok-PUSH-A");
    char *want = xasprintf("/3/device/%s", hex);
    cr_assert_str_eq(json_string_value(json_object_get(e, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(e, "path")), want);
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_topic")), topic);
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_push_type")), "mdm");
    cr_assert_str_eq(json_string_value(json_object_get(e, "body")),
                     "{\"mdm\":\"00000000-1111-2222-3333-444444444444\"}");
    cr_assert_str_eq(json_string_value(json_object_get(e, "client_uid")), topic,
                     "the push certificate is the client certificate");
    cr_assert_eq(json_integer_value(json_object_get(e, "status")), 200);
    json_decref(log);
    free(hex);
    free(want);

    /* push now through the API */
    long long before = ts_stat(ts, "received");
    cr_assert_eq(h_api(&S, "POST", "/v1/push", "{\"devices\":[\"PUSH-A\"]}", NULL), 202);
    cr_assert_geq(wait_received(before + 1), before + 1);

    /* saving a policy that targets the device pushes it */
    before = ts_stat(ts, "received");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies",
                       "{\"name\":\"P\",\"platform\":\"macos\",\"scep\":{\"url\":"
                       "\"https://ca.example/scep\",\"key_size\":2048},"
                       "\"targets\":{\"devices\":[\"PUSH-A\"]}}",
                       NULL),
                 201);
    cr_assert_geq(wait_received(before + 1), before + 1, "policy save pushes");

    struct tu_http_resp r;
    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert(strstr((char *)r.body, "\"apns\":\"up\"") != NULL, "%s", r.body);
    tu_http_resp_free(&r);
    tu_cert_free(&id);
}

Test(push, dead_token_is_marked_invalid_until_the_next_token_update)
{
    struct tu_cert id = h_device_cert(&S, "PUSH-D");
    char *dead = token_hex("dead");
    char *script = xasprintf("{\"rules\":[{\"prefix\":\"%s\",\"status\":410,"
                             "\"reason\":\"Unregistered\"}]}",
                             dead);
    cr_assert_eq(ts_script(ts, script), 0);
    free(script);

    struct tu_http_resp r;
    char *auth = h_plist("MessageType", "Authenticate", "Topic", topic, "UDID", "PUSH-D",
                         "ProductName", "iPhone14,2", NULL);
    cr_assert_eq(h_checkin(&S, &id, auth, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(auth);
    token_update(&id, "PUSH-D", "dead-token-1");
    /* APNs answers 410 to the enrollment push: the token is marked invalid */
    bool valid = true;
    for (int i = 0; i < 200 && valid; i++) {
        usleep(50000);
        valid = token_valid("PUSH-D");
    }
    cr_assert_not(valid, "410 Unregistered marks the push token invalid");
    long long before = ts_stat(ts, "received");
    cr_assert_eq(h_api(&S, "POST", "/v1/push", "{\"devices\":[\"PUSH-D\"]}", NULL), 202);
    usleep(500000);
    cr_assert_eq(ts_stat(ts, "received"), before, "a dead token is not pushed again");
    /* a fresh TokenUpdate revives it */
    token_update(&id, "PUSH-D", "live-token-2");
    cr_assert(token_valid("PUSH-D"));
    free(dead);
    tu_cert_free(&id);
}

static char *read_text(const char *pki_name)
{
    char *p = ts_pki(pki_name);
    char *t = (char *)tu_read(p, NULL);
    free(p);
    return t;
}

Test(push, certificate_swap_without_restart_and_topic_change_guard)
{
    struct tu_cert id = h_device_cert(&S, "PUSH-C");
    h_enroll(&S, &id, "PUSH-C", "Mac14,2");
    json_t *j = NULL;

    /* same topic: taken at once */
    char *c2 = read_text("push2.pem"), *k2 = read_text("push2.key");
    json_t *body = json_pack("{s:s,s:s}", "cert_pem", c2, "key_pem", k2);
    char *text = json_dumps(body, 0);
    cr_assert_eq(h_api(&S, "PUT", "/v1/pushcert", text, &j), 200, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), topic);
    json_decref(j);
    free(text);
    json_decref(body);
    long long before = ts_stat(ts, "received");
    cr_assert_eq(h_api(&S, "POST", "/v1/push", "{\"devices\":[\"PUSH-C\"]}", NULL), 202);
    cr_assert_geq(wait_received(before + 1), before + 1, "pushing goes on with the new cert");

    /* another topic while devices are enrolled with this one: refused unless forced */
    char *co = read_text("push-other.pem"), *ko = read_text("push-other.key");
    body = json_pack("{s:s,s:s}", "cert_pem", co, "key_pem", ko);
    text = json_dumps(body, 0);
    cr_assert_eq(h_api(&S, "PUT", "/v1/pushcert", text, &j), 409);
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), topic) != NULL,
              "names the topic in use: %s", h_json(j));
    cr_assert(strstr(json_string_value(json_object_get(j, "error")), "stop answering") != NULL,
              "says what the change does: %s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "confirm_topic_change");
    json_decref(j);
    /* "confirm_topic_change": false is no confirmation */
    json_object_set_new(body, "confirm_topic_change", json_false());
    free(text);
    text = json_dumps(body, 0);
    cr_assert_eq(h_api(&S, "PUT", "/v1/pushcert", text, &j), 409, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/pushcert", NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), topic, "unchanged");
    json_decref(j);
    json_object_set_new(body, "confirm_topic_change", json_true());
    free(text);
    text = json_dumps(body, 0);
    cr_assert_eq(h_api(&S, "PUT", "/v1/pushcert", text, &j), 200, "%s", h_json(j));
    cr_assert_str_neq(json_string_value(json_object_get(j, "topic")), topic);
    json_decref(j);
    /* a bad upload names the field */
    cr_assert_eq(
        h_api(&S, "PUT", "/v1/pushcert", "{\"cert_pem\":\"junk\",\"key_pem\":\"junk\"}", &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "cert_pem");
    json_decref(j);
    free(text);
    json_decref(body);
    free(c2);
    free(k2);
    free(co);
    free(ko);
    tu_cert_free(&id);
}

Test(push, quiet_enrollments_with_pending_commands_are_pushed_again)
{
    struct tu_cert id = h_device_cert(&S, "PUSH-R");
    h_enroll(&S, &id, "PUSH-R", "iPad13,4");
    cr_assert_geq(wait_received(1), 1);
    /* a command queued without a push; the device stays quiet */
    cr_assert_eq(h_api(&S, "POST", "/v1/devices/PUSH-R/commands",
                       "{\"command\":{\"request_type\":\"ProfileList\"},\"push\":false}", NULL),
                 201);
    long long before = ts_stat(ts, "received");
    cr_assert_geq(wait_received(before + 1), before + 1,
                  "the re-push job wakes an enrollment with pending commands");
    json_t *log = ts_log(ts, 5);
    json_t *e = json_array_get(log, json_array_size(log) - 1);
    char *hex = token_hex("tok-PUSH-R");
    cr_assert(strstr(json_string_value(json_object_get(e, "path")), hex) != NULL);
    free(hex);
    json_decref(log);
    tu_cert_free(&id);
}

/*
 * One device whose stored PushMagic APNs cannot carry (stored before check-in refused such
 * values) sits in a group with 1,000 others: saving a policy for the group still pushes the
 * 1,000, and the odd one is counted in /metrics.  (A batch used to be refused whole.)
 */
Test(push, one_bad_push_magic_does_not_stop_a_groups_pushes)
{
    enum { N = 1000 };
    struct store *st = NULL;
    struct scepter_error err;
    struct tu_http_resp r;
    json_t *members = json_array(), *j = NULL;
    unsigned char token[32];

    cr_assert_eq(store_open(S.store_url, &st, &err), 0, "%s", err.msg);
    for (int i = 0; i <= N; i++) {
        char udid[64], hash[65];
        snprintf(udid, sizeof(udid), "BULK-%04d", i);
        snprintf(hash, sizeof(hash), "%064x", i + 1);
        struct store_authenticate a = {
            .device_id = udid,
            .type = STORE_ENROLL_DEVICE,
            .topic = topic,
            .cert_hash = hash,
            .facts = {.model = "Mac14,2", .serial_number = udid, .platform = STORE_PLATFORM_MACOS}};
        struct store_auth_result res;
        cr_assert_eq(store_authenticate(st, &a, time(NULL), &res, &err), 0, "%s", err.msg);
        memset(token, 0, sizeof(token));
        memcpy(token, &i, sizeof(i));
        struct store_token_update t = {.enrollment_id = udid,
                                       .device_id = udid,
                                       .type = STORE_ENROLL_DEVICE,
                                       .topic = topic,
                                       .token = token,
                                       .token_len = sizeof(token),
                                       .push_magic = i == N / 2 ? "bad\"magic" : "PUSH-MAGIC-1"};
        bool first = false;
        cr_assert_eq(store_token_update(st, &t, time(NULL), &first, &err), 0, "%s", err.msg);
        json_array_append_new(members, json_string(udid));
    }
    store_close(st);

    json_t *g = json_pack("{s:s,s:o}", "name", "Bulk", "devices", members);
    char *group = json_dumps(g, JSON_COMPACT);
    json_decref(g);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", group, &j), 201, "%s", h_json(j));
    json_decref(j);
    free(group);

    long long before = ts_stat(ts, "received");
    char *body = xasprintf(
        "{\"name\":\"Bulk Wi-Fi\",\"platform\":\"macos\",\"scep\":{\"url\":"
        "\"http://127.0.0.1:9/scep\",\"name\":\"CA\",\"challenge\":\"s3cret\",\"subject\":"
        "\"/O=Scepter/CN=%%SerialNumber%%/\"},\"targets\":{\"device_groups\":[\"Bulk\"]}}");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", body, &j), 201, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), N + 1, "%s", h_json(j));
    json_decref(j);
    free(body);

    long long got = 0;
    for (int i = 0; i < 1200 && got < before + N; i++) {
        got = ts_stat(ts, "received");
        usleep(50000);
    }
    cr_assert_geq(got, before + N, "the 1,000 good devices were pushed (%lld)", got - before);

    cr_assert_eq(tu_http(S.port, true, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    long long invalid = -1;
    const char *m = strstr((const char *)r.body, "\nscepter_push_invalid_total ");
    cr_assert_not_null(m, "scepter_push_invalid_total in /metrics");
    cr_assert_eq(sscanf(m, "\nscepter_push_invalid_total %lld", &invalid), 1);
    cr_assert_geq(invalid, 1, "the odd device is counted");
    tu_http_resp_free(&r);
}
