/*
 * The pure rules of apns/: classifying answers, validating pushes, parsing apns_url,
 * back-off bounds, the metric slots, and the configuration and push checks of the client
 * API (which refuse bad input before anything is queued).
 */
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "apns/apns.h"
#include "apns/apns_int.h"
#include "harness.h"

Test(apns_rules, classifies_answers_like_apple_says)
{
    static const struct {
        int status;
        const char *reason;
        enum apns_kind kind;
    } cases[] = {
        {200, NULL, APNS_KIND_OK},
        {410, "Unregistered", APNS_KIND_PERMANENT},
        {410, "ExpiredToken", APNS_KIND_PERMANENT},
        {400, "BadDeviceToken", APNS_KIND_PERMANENT},
        {400, "DeviceTokenNotForTopic", APNS_KIND_PERMANENT},
        {400, "BadTopic", APNS_KIND_REJECTED},
        {400, "PayloadEmpty", APNS_KIND_REJECTED},
        {400, NULL, APNS_KIND_REJECTED},
        {400, "IdleTimeout", APNS_KIND_RETRY},
        {403, "BadCertificate", APNS_KIND_FATAL},
        {403, "BadCertificateEnvironment", APNS_KIND_FATAL},
        {403, "Forbidden", APNS_KIND_FATAL},
        {404, "BadPath", APNS_KIND_REJECTED},
        {405, "MethodNotAllowed", APNS_KIND_REJECTED},
        {413, "PayloadTooLarge", APNS_KIND_REJECTED},
        {429, "TooManyRequests", APNS_KIND_RETRY},
        {500, "InternalServerError", APNS_KIND_RETRY},
        {503, "ServiceUnavailable", APNS_KIND_RETRY},
        {503, "Shutdown", APNS_KIND_RETRY},
        {502, NULL, APNS_KIND_RETRY},
        {302, NULL, APNS_KIND_REJECTED},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        cr_assert_eq(apns_classify(cases[i].status, cases[i].reason), cases[i].kind, "%d %s -> %s",
                     cases[i].status, cases[i].reason ? cases[i].reason : "",
                     apns_kind_name(cases[i].kind));
}

Test(apns_rules, validates_pushes_naming_the_field)
{
    struct scepter_error err;
    char long_token[APNS_MAX_TOKEN_HEX + 3];
    struct apns_push ok = {"UDID-1", "00aaBBcc", "8B1F6C3E-1D2A", NULL};
    struct apns_push p;

    memset(long_token, 'a', sizeof(long_token) - 1);
    long_token[sizeof(long_token) - 1] = '\0';
    cr_assert_eq(apns_push_validate(&ok, &err), 0);
    p = ok;
    p.enrollment_id = "";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "enrollment_id");
    p = ok;
    p.token_hex = NULL;
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "token");
    p.token_hex = "abc";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL, "odd number of digits");
    p.token_hex = "zz";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "not a hex digit") != NULL, "%s", err.msg);
    p.token_hex = long_token;
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    p = ok;
    p.push_magic = "has\"quote";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL, "would break the JSON body");
    cr_assert_str_eq(err.field, "push_magic");
    p.push_magic = "";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    p = ok;
    p.topic = "com.apple.mgmt.External.x y";
    cr_assert_eq(apns_push_validate(&p, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "topic");
    p.topic = "";
    cr_assert_eq(apns_push_validate(&p, &err), 0, "empty topic: the certificate's");
}

Test(apns_rules, checkin_field_checks_match_the_push_rules)
{
    struct scepter_error err;
    char longmagic[LIMIT_PUSH_MAGIC + 2];

    cr_assert_eq(apns_push_magic_check("7A3F1C2E-9B8D-4E6F-A1B2-C3D4E5F60718", "PushMagic", &err),
                 0);
    cr_assert_eq(apns_push_magic_check("a\"b", "PushMagic", &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "PushMagic");
    cr_assert(strstr(err.msg, "PushMagic: character 2") != NULL, "%s", err.msg);
    cr_assert_eq(apns_push_magic_check("a\\b", "PushMagic", &err), SCEPTER_EINVAL);
    cr_assert_eq(apns_push_magic_check("", "PushMagic", &err), SCEPTER_EINVAL);
    memset(longmagic, 'a', sizeof(longmagic) - 1);
    longmagic[sizeof(longmagic) - 1] = '\0';
    cr_assert_eq(apns_push_magic_check(longmagic, "PushMagic", &err), SCEPTER_EINVAL);
    longmagic[LIMIT_PUSH_MAGIC] = '\0';
    cr_assert_eq(apns_push_magic_check(longmagic, "PushMagic", &err), 0, "exactly the limit");
    cr_assert_eq(apns_token_check(32, "Token", &err), 0);
    cr_assert_eq(apns_token_check(0, "Token", &err), SCEPTER_EINVAL);
    cr_assert_eq(apns_token_check(LIMIT_PUSH_TOKEN_BYTES + 1, "Token", &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "Token");
    cr_assert_eq(apns_token_check(LIMIT_PUSH_TOKEN_BYTES, "Token", &err), 0);
}

Test(apns_rules, parses_apns_url)
{
    struct apns_endpoint ep;
    struct scepter_error err;

    cr_assert_eq(apns_endpoint_parse("https://api.push.apple.com", &ep, &err), 0);
    cr_assert_str_eq(ep.host, "api.push.apple.com");
    cr_assert_str_eq(ep.port, "443");
    cr_assert_str_eq(ep.authority, "api.push.apple.com");
    cr_assert(!ep.host_is_ip);
    cr_assert_eq(apns_endpoint_parse("https://api.sandbox.push.apple.com:2197/", &ep, &err), 0);
    cr_assert_str_eq(ep.port, "2197");
    cr_assert_str_eq(ep.authority, "api.sandbox.push.apple.com:2197");
    cr_assert_eq(apns_endpoint_parse("127.0.0.1:8443", &ep, &err), 0);
    cr_assert(ep.host_is_ip);
    cr_assert_str_eq(ep.host, "127.0.0.1");
    cr_assert_eq(apns_endpoint_parse("https://[::1]:9443", &ep, &err), 0);
    cr_assert(ep.host_is_ip);
    cr_assert_str_eq(ep.host, "::1");
    cr_assert_str_eq(ep.authority, "[::1]:9443");

    static const char *const bad[] = {
        "",           "http://api.push.apple.com", "https://",      "https://host:0",
        "host:99999", "https://h/3/device",        "https://ho st", "[::1",
        "https://h:x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(apns_endpoint_parse(bad[i], &ep, &err), SCEPTER_EINVAL, "%s", bad[i]);
        cr_assert_str_eq(err.field, "apns_url");
    }
}

Test(apns_rules, backoff_doubles_with_jitter_and_stays_bounded)
{
    uint64_t rng = 42;

    for (int attempt = 1; attempt <= 40; attempt++) {
        int64_t full = 100;
        for (int i = 1; i < attempt && full < 5000; i++)
            full *= 2;
        if (full > 5000)
            full = 5000;
        for (int k = 0; k < 50; k++) {
            int64_t d = apns_backoff_ms(100, 5000, attempt, apns_rand_next(&rng));
            cr_assert_geq(d, full / 2, "attempt %d: %lld", attempt, (long long)d);
            cr_assert_leq(d, full, "attempt %d: %lld", attempt, (long long)d);
        }
    }
    cr_assert_eq(apns_backoff_ms(1, 1, 1, 7), 1);
    /* The jitter source moves. */
    uint64_t a = apns_rand_next(&rng), b = apns_rand_next(&rng);
    cr_assert_neq(a, b);
}

Test(apns_rules, metric_slots)
{
    cr_assert_eq(apns_status_slot_code(apns_status_slot(410)), 410);
    cr_assert_eq(apns_status_slot(418), APNS_STATUS_SLOTS - 1);
    cr_assert_str_eq(apns_reason_slot_name(apns_reason_slot("Unregistered")), "Unregistered");
    cr_assert_eq(apns_reason_slot("NoSuchReason"), APNS_REASON_SLOTS - 1);
    cr_assert_eq(apns_reason_slot(NULL), APNS_REASON_SLOTS - 1);
    cr_assert_str_eq(apns_reason_slot_name(APNS_REASON_SLOTS - 1), "other");
    for (size_t i = 1; i < APNS_LATENCY_BUCKETS; i++)
        cr_assert_gt(apns_latency_bound_ms(i), apns_latency_bound_ms(i - 1));
    cr_assert_str_eq(apns_state_name(APNS_STATE_HALTED), "halted");
}

/* --- client API input checks (no network) -------------------------------------------------- */

struct tally {
    int n;
    int merged;
    enum apns_kind kind;
};

static void count_cb(const struct apns_result *r, void *arg)
{
    struct tally *t = arg;
    t->n++;
    t->merged += r->merged;
    t->kind = r->kind;
}

static struct apns_identity *pki_identity(void)
{
    struct scepter_error err;
    char *c = ts_pki("push.pem"), *k = ts_pki("push.key");
    struct apns_identity *id = apns_identity_load(c, k, NULL, (int64_t)time(NULL), &err);
    cr_assert_not_null(id, "%s", err.msg);
    free(c);
    free(k);
    return id;
}

Test(apns_rules, client_refuses_bad_configuration)
{
    struct apns_identity *id = pki_identity();
    struct apns_config cfg;
    struct scepter_error err;
    struct tally t = {0};

    apns_config_init(&cfg);
    cfg.connections = 0;
    cr_assert_null(apns_client_new(&cfg, id, count_cb, &t, &err));
    cr_assert_str_eq(err.field, "apns_connections");
    apns_config_init(&cfg);
    cfg.priority = 7;
    cr_assert_null(apns_client_new(&cfg, id, count_cb, &t, &err));
    cr_assert_str_eq(err.field, "apns_priority");
    apns_config_init(&cfg);
    cfg.url = "ftp://example.com";
    cr_assert_null(apns_client_new(&cfg, id, count_cb, &t, &err));
    cr_assert_str_eq(err.field, "apns_url");
    apns_config_init(&cfg);
    cfg.ca_file = "/nonexistent/ca.pem";
    cr_assert_null(apns_client_new(&cfg, id, count_cb, &t, &err));
    cr_assert_str_eq(err.field, "apns_ca_file");
    apns_config_init(&cfg);
    cr_assert_null(apns_client_new(&cfg, id, NULL, NULL, &err), "a callback is required");
    apns_identity_free(id);
}

Test(apns_rules, push_batches_skip_and_count_invalid_items)
{
    struct apns_identity *id = pki_identity();
    struct apns_config cfg;
    struct scepter_error err;
    struct tally t = {0};
    struct apns_client *c;
    struct apns_stats st;
    struct apns_push p[3] = {
        {"e1", "aa", "m", NULL},
        {"e2", "bb", "m", NULL},
        {"e3", "not-hex", "m", NULL},
    };

    apns_config_init(&cfg);
    cfg.max_queue = 4;
    c = apns_client_new(&cfg, id, count_cb, &t, &err);
    apns_identity_free(id); /* the client holds its own reference */
    cr_assert_not_null(c, "%s", err.msg);
    size_t invalid = 0;
    /* One bad push in a batch is skipped and counted; the others go. */
    cr_assert_eq(apns_client_push(c, p, 3, &invalid, &err), 0);
    cr_assert_eq(invalid, 1);
    cr_assert_str_eq(err.field, "token");
    cr_assert(strstr(err.msg, "pushes[2] (e3): token") != NULL, "%s", err.msg);
    apns_client_stats(c, &st);
    cr_assert_eq(st.submitted, 2, "the two good pushes of the batch are queued");
    cr_assert_eq(st.invalid, 1);
    cr_assert_eq(apns_client_push(c, p + 2, 1, &invalid, &err), 0, "a batch of only bad ones");
    cr_assert_eq(invalid, 1);
    cr_assert_eq(apns_client_push(c, p, 2, NULL, &err), 0);
    cr_assert_eq(err.code, 0, "no error left from an earlier call");
    cr_assert_eq(apns_client_push(c, p, 1, NULL, &err), SCEPTER_EUNAVAIL, "max_queue = 4");
    cr_assert(strstr(err.msg, "queue full") != NULL, "%s", err.msg);
    apns_client_stats(c, &st);
    cr_assert_eq(st.submitted, 4);
    cr_assert_eq(st.invalid, 2);
    cr_assert_eq(st.state, APNS_STATE_IDLE);
    /* Never started: stopping reports every queued push once, as given up. */
    apns_client_stop(c, 100);
    cr_assert_eq(t.n, 4);
    cr_assert_eq(t.kind, APNS_KIND_GAVE_UP);
    cr_assert_eq(apns_client_push(c, p, 1, NULL, &err), SCEPTER_EUNAVAIL, "stopped");
    apns_client_stats(c, &st);
    cr_assert_eq(st.state, APNS_STATE_STOPPED);
    apns_client_free(c);
    apns_client_free(NULL);
}
