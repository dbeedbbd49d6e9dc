/*
 * The APNs client against the real HTTP/2 TLS test server (tests/apns-server), started per
 * test on loopback.  The server checks method, path, headers, body and the client
 * certificate and answers with scripted statuses; the tests assert what a user notices:
 * every push gets exactly one final result, the right ones are permanent, retries happen and
 * stop, nothing is lost across GOAWAY or a dropped connection, concurrency never exceeds
 * the server's SETTINGS_MAX_CONCURRENT_STREAMS, duplicates coalesce, a refused certificate
 * halts pushing until a new one is loaded.  No timing assertions: every wait is a bounded
 * poll for an outcome.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "apns/apns.h"
#include "apns/apns_int.h"
#include "common/xmalloc.h"
#include "harness.h"

/* --- result collection ---------------------------------------------------------------------- */

struct got {
    char *eid, *token, *reason, *topic;
    enum apns_kind kind;
    int status, attempts, merged;
    int64_t timestamp_ms;
};

struct sink {
    pthread_mutex_t mu;
    struct got *v;
    size_t n, cap;
};

static struct sink results = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void on_result(const struct apns_result *r, void *arg)
{
    struct sink *s = arg;

    cr_assert_neq(r->kind, APNS_KIND_RETRY, "RETRY is never final");
    pthread_mutex_lock(&s->mu);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
    }
    s->v[s->n++] = (struct got){xstrdup(r->enrollment_id),
                                xstrdup(r->token_hex),
                                xstrdup(r->reason),
                                xstrdup(r->topic),
                                r->kind,
                                r->status,
                                r->attempts,
                                r->merged,
                                r->timestamp_ms};
    pthread_mutex_unlock(&s->mu);
}

static size_t nresults(void)
{
    size_t n;
    pthread_mutex_lock(&results.mu);
    n = results.n;
    pthread_mutex_unlock(&results.mu);
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (at most 60 s) until n results arrived. */
static void wait_results(size_t n)
{
    for (int i = 0; i < 6000 && nresults() < n; i++)
        sleep_ms(10);
    cr_assert_geq(nresults(), n, "only %zu of %zu results arrived", nresults(), n);
}

static const struct got *result_for(const char *eid)
{
    const struct got *found = NULL;
    int count = 0;
    for (size_t i = 0; i < results.n; i++) {
        if (strcmp(results.v[i].eid, eid) == 0) {
            found = &results.v[i];
            count++;
        }
    }
    cr_assert_eq(count, 1, "%s: %d final results, want exactly one", eid, count);
    return found;
}

static void results_clear(void)
{
    for (size_t i = 0; i < results.n; i++) {
        free(results.v[i].eid);
        free(results.v[i].token);
        free(results.v[i].reason);
        free(results.v[i].topic);
    }
    free(results.v);
    results.v = NULL;
    results.n = results.cap = 0;
}

/* --- fixtures ------------------------------------------------------------------------------- */

static struct ts_server *ts;
static struct apns_client *client;
static char *topic;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    topic = ts_pki_text("topic");
    cr_assert_not_null(topic);
}

static void teardown(void)
{
    apns_client_free(client);
    client = NULL;
    if (ts)
        ts_stop(ts);
    ts = NULL;
    results_clear();
    free(topic);
}

TestSuite(apns_client, .init = setup, .fini = teardown);

static struct apns_identity *identity(const char *cert, const char *key)
{
    struct scepter_error err;
    char *c = ts_pki(cert), *k = ts_pki(key);
    struct apns_identity *id = apns_identity_load(c, k, NULL, (int64_t)time(NULL), &err);
    cr_assert_not_null(id, "%s", err.msg);
    free(c);
    free(k);
    return id;
}

/* Start the server with the push CA as client CA plus extra arguments. */
static void server(const char *const *extra)
{
    char *pushca = ts_pki("pushca.pem");
    const char *args[32] = {"--client-ca", pushca};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    ts = ts_start(args);
    free(pushca);
    cr_assert_not_null(ts, "apns-test-server did not start");
}

static struct apns_config config(const char *host)
{
    static char url[128];
    static char *ca;
    struct apns_config cfg;

    apns_config_init(&cfg);
    snprintf(url, sizeof(url), "https://%s:%d", host, ts ? ts->port : 1);
    free(ca);
    ca = ts_pki("ca.pem");
    cfg.url = url;
    cfg.ca_file = ca;
    cfg.coalesce_ms = 0;
    cfg.retry_base_ms = 20;
    cfg.retry_max_ms = 100;
    cfg.reconnect_base_ms = 20;
    cfg.reconnect_max_ms = 200;
    cfg.max_attempts = 3;
    return cfg;
}

static void start_client(const struct apns_config *cfg)
{
    struct scepter_error err;
    struct apns_identity *id = identity("push.pem", "push.key");

    client = apns_client_new(cfg, id, on_result, &results, &err);
    apns_identity_free(id);
    cr_assert_not_null(client, "%s", err.msg);
    cr_assert_eq(apns_client_start(client, &err), 0, "%s", err.msg);
}

/* Push n pushes "<prefix><i>" with tokens "<tokpfx><i as hex>". */
static void push_n(const char *eid_prefix, const char *tok_prefix, size_t from, size_t n)
{
    struct apns_push *p = xcalloc(n, sizeof(*p));
    char **strs = xcalloc(n * 3, sizeof(char *));
    struct scepter_error err;

    for (size_t i = 0; i < n; i++) {
        strs[3 * i] = xasprintf("%s%zu", eid_prefix, from + i);
        strs[3 * i + 1] = xasprintf("%s%08zx", tok_prefix, from + i);
        strs[3 * i + 2] = xasprintf("magic-%zu", from + i);
        p[i] = (struct apns_push){strs[3 * i], strs[3 * i + 1], strs[3 * i + 2], NULL};
    }
    cr_assert_eq(apns_client_push(client, p, n, NULL, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < 3 * n; i++)
        free(strs[i]);
    free(strs);
    free(p);
}

static size_t count_kind(enum apns_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < results.n; i++)
        n += results.v[i].kind == k;
    return n;
}

/* --- tests ---------------------------------------------------------------------------------- */

Test(apns_client, delivers_multiplexed_pushes_within_the_stream_limit)
{
    const char *extra[] = {"--max-streams", "20", "--delay-ms", "5", "--log-size", "1000", NULL};
    struct apns_config cfg;
    struct apns_stats st;

    server(extra);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("dev-", "a0", 0, 300);
    wait_results(300);
    cr_assert_eq(count_kind(APNS_KIND_OK), 300);
    for (size_t i = 0; i < 300; i += 37) {
        char eid[32];
        snprintf(eid, sizeof(eid), "dev-%zu", i);
        const struct got *g = result_for(eid);
        cr_assert_eq(g->status, 200);
        cr_assert_eq(g->attempts, 1);
        cr_assert_str_eq(g->topic, topic);
    }
    cr_assert_eq(ts_stat(ts, "received"), 300, "each push sent once");
    cr_assert_eq(ts_stat(ts, "by_status.200"), 300);
    cr_assert_eq(ts_stat(ts, "bad_requests"), 0, "the server found nothing wrong");
    cr_assert_eq(ts_stat(ts, "connections"), 1, "one connection, reused");
    cr_assert_leq(ts_stat(ts, "max_concurrent_streams"), 20, "never above SETTINGS");
    cr_assert_gt(ts_stat(ts, "max_concurrent_streams"), 1, "requests were multiplexed");
    cr_assert_eq(ts_stat(ts, "streams_refused"), 0);

    /* What went over the wire, as the server saw it. */
    json_t *log = ts_log(ts, 1000);
    cr_assert_eq(json_array_size(log), 300);
    json_t *e = json_array_get(log, 0);
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *body = json_string_value(json_object_get(e, "body"));
    cr_assert(strncmp(path, "/3/device/a0", 12) == 0, "%s", path);
    cr_assert(strncmp(body, "{\"mdm\":\"magic-", 14) == 0, "%s", body);
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_topic")), topic);
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_push_type")), "mdm");
    cr_assert_str_eq(json_string_value(json_object_get(e, "apns_priority")), "10");
    cr_assert_str_eq(json_string_value(json_object_get(e, "client_uid")), topic,
                     "the push certificate was the TLS client certificate");
    long long exp = strtoll(json_string_value(json_object_get(e, "apns_expiration")), NULL, 10);
    cr_assert_gt(exp, (long long)time(NULL) + 86000, "apns-expiration = now + 1 day");
    json_decref(log);

    apns_client_stats(client, &st);
    cr_assert_eq(st.submitted, 300);
    cr_assert_eq(st.requests, 300);
    cr_assert_eq(st.results[APNS_KIND_OK], 300);
    cr_assert_eq(st.by_status[0], 300, "slot 0 counts 200");
    cr_assert_eq(st.conns_up, 1);
    cr_assert_eq(st.state, APNS_STATE_UP);
    cr_assert_eq(st.peer_max_streams, 20);
    cr_assert_str_eq(st.topic, topic);
    uint64_t lat = 0;
    for (size_t i = 0; i <= APNS_LATENCY_BUCKETS; i++)
        lat += st.latency[i];
    cr_assert_eq(lat, 300, "every answer in the latency histogram");
}

Test(apns_client, dead_tokens_are_permanent_and_not_retried)
{
    struct apns_config cfg;
    struct apns_stats st;

    server(NULL);
    cr_assert_eq(ts_script(ts, "[{\"prefix\":\"dead\",\"status\":410,\"reason\":\"Unregistered\"},"
                               "{\"prefix\":\"bad0\",\"status\":400,\"reason\":\"BadDeviceToken\"},"
                               "{\"prefix\":\"b0b0\",\"status\":400,"
                               "\"reason\":\"DeviceTokenNotForTopic\"},"
                               "{\"prefix\":\"cafe\",\"status\":400,\"reason\":\"BadTopic\"}]"),
                 0);
    cfg = config("127.0.0.1");
    start_client(&cfg);
    push_n("gone-", "dead", 0, 5);
    push_n("bad-", "bad0", 0, 5);
    push_n("nottopic-", "b0b0", 0, 5);
    push_n("wrong-", "cafe", 0, 5);
    push_n("fine-", "f1", 0, 5);
    wait_results(25);
    sleep_ms(100); /* a wrong retry would show up as a second result or request */
    cr_assert_eq(nresults(), 25);
    const struct got *g = result_for("gone-3");
    cr_assert_eq(g->kind, APNS_KIND_PERMANENT);
    cr_assert_eq(g->status, 410);
    cr_assert_str_eq(g->reason, "Unregistered");
    cr_assert_gt(g->timestamp_ms, 0, "410 carries when the token died");
    cr_assert_eq(result_for("bad-1")->kind, APNS_KIND_PERMANENT);
    cr_assert_str_eq(result_for("bad-1")->reason, "BadDeviceToken");
    cr_assert_eq(result_for("nottopic-4")->kind, APNS_KIND_PERMANENT);
    cr_assert_eq(result_for("wrong-2")->kind, APNS_KIND_REJECTED, "our request was wrong");
    cr_assert_eq(result_for("fine-0")->kind, APNS_KIND_OK);
    cr_assert_eq(count_kind(APNS_KIND_PERMANENT), 15);
    cr_assert_eq(ts_stat(ts, "received"), 25, "nothing retried");
    apns_client_stats(client, &st);
    cr_assert_eq(st.results[APNS_KIND_PERMANENT], 15);
    cr_assert_eq(st.results[APNS_KIND_REJECTED], 5);
    cr_assert_eq(st.by_status[apns_status_slot(410)], 5);
    cr_assert_eq(st.by_reason[apns_reason_slot("Unregistered")], 5);
    cr_assert_eq(st.by_reason[apns_reason_slot("BadDeviceToken")], 5);
    cr_assert_eq(st.retries, 0);
}

Test(apns_client, transient_errors_are_retried_and_bounded)
{
    struct apns_config cfg;
    struct apns_stats st;

    server(NULL);
    /* 503 twice then 200 for the "aa" token; 429 for "bb" forever; 500 once for "cc". */
    cr_assert_eq(ts_script(ts, "[{\"prefix\":\"aa\",\"status\":503,\"reason\":"
                               "\"ServiceUnavailable\",\"times\":2},"
                               "{\"prefix\":\"bb\",\"status\":429,\"reason\":\"TooManyRequests\"},"
                               "{\"prefix\":\"cc\",\"status\":500,\"reason\":"
                               "\"InternalServerError\",\"times\":1}]"),
                 0);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("flaky-", "aa", 0, 1);
    push_n("throttled-", "bb", 0, 1);
    push_n("oops-", "cc", 0, 1);
    wait_results(3);
    const struct got *flaky = result_for("flaky-0");
    cr_assert_eq(flaky->kind, APNS_KIND_OK);
    cr_assert_eq(flaky->attempts, 3, "two 503s then 200");
    const struct got *thr = result_for("throttled-0");
    cr_assert_eq(thr->kind, APNS_KIND_GAVE_UP);
    cr_assert_eq(thr->status, 429);
    cr_assert_eq(thr->attempts, 3, "max_attempts = 3");
    cr_assert(strstr(thr->reason, "TooManyRequests") != NULL, "%s", thr->reason);
    cr_assert_eq(result_for("oops-0")->attempts, 2);
    cr_assert_eq(ts_stat(ts, "received"), 3 + 3 + 2, "exactly the attempts, no more");
    apns_client_stats(client, &st);
    cr_assert_eq(st.retries, 2 + 2 + 1);
    cr_assert_eq(st.results[APNS_KIND_GAVE_UP], 1);
}

Test(apns_client, nothing_is_lost_across_goaway)
{
    const char *extra[] = {
        "--goaway-after", "25", "--max-streams", "20", "--delay-ms", "10", "--log-size",
        "1000",           NULL};
    struct apns_config cfg;
    struct apns_stats st;

    server(extra);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("ga-", "0a", 0, 200);
    wait_results(200);
    cr_assert_eq(count_kind(APNS_KIND_OK), 200, "every push delivered");
    cr_assert_eq(ts_stat(ts, "by_status.200"), 200,
                 "each exactly once: refused streams were "
                 "resent, answered ones were not");
    cr_assert_eq(ts_stat(ts, "received"), 200);
    cr_assert_geq(ts_stat(ts, "goaways"), 7, "a GOAWAY every 25 requests");
    cr_assert_geq(ts_stat(ts, "connections"), 8, "re-established after each GOAWAY");
    apns_client_stats(client, &st);
    cr_assert_geq(st.goaways, 7);
    cr_assert_gt(st.resent, 0, "streams above last-stream-id came back and went out again");
    cr_assert_eq(st.results[APNS_KIND_OK], 200);
    cr_assert_eq(st.drops, 0, "a GOAWAY drain is not a drop");

    /* Each token answered 200 exactly once on the server. */
    json_t *log = ts_log(ts, 1000);
    char seen[200] = {0};
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        unsigned long idx = strtoul(path + strlen("/3/device/0a"), NULL, 16);
        cr_assert_lt(idx, 200);
        cr_assert_eq(seen[idx], 0, "token %lu answered twice", idx);
        seen[idx] = 1;
    }
    json_decref(log);
}

Test(apns_client, slow_server_and_several_connections)
{
    const char *extra[] = {"--delay-ms", "200", "--max-streams", "10", NULL};
    struct apns_config cfg;

    server(extra);
    cfg = config("localhost");
    cfg.connections = 3;
    start_client(&cfg);
    push_n("slow-", "5100", 0, 120);
    wait_results(120);
    cr_assert_eq(count_kind(APNS_KIND_OK), 120);
    cr_assert_eq(ts_stat(ts, "connections"), 3, "three connections when asked for three");
    cr_assert_leq(ts_stat(ts, "max_concurrent_streams"), 10);
    cr_assert_gt(ts_stat(ts, "max_concurrent_streams_total"), 10,
                 "the connections carried streams side by side");
    cr_assert_eq(ts_stat(ts, "received"), 120);
}

Test(apns_client, coalesces_pushes_for_one_enrollment)
{
    struct apns_config cfg;
    struct scepter_error err;
    struct apns_stats st;

    server(NULL);
    cfg = config("localhost");
    cfg.coalesce_ms = 1000;
    start_client(&cfg);
    /* Ten requests for one device in one batch, five more in a second call, and another
     * device: two pushes leave. */
    struct apns_push p[10];
    for (int i = 0; i < 10; i++)
        p[i] = (struct apns_push){"udid-1", "00aa", "old-magic", NULL};
    cr_assert_eq(apns_client_push(client, p, 10, NULL, &err), 0);
    for (int i = 0; i < 5; i++)
        p[i] = (struct apns_push){"udid-1", "00BB", "new-magic", NULL};
    p[5] = (struct apns_push){"udid-2", "00cc", "m2", NULL};
    cr_assert_eq(apns_client_push(client, p, 6, NULL, &err), 0);
    wait_results(2);
    sleep_ms(100);
    cr_assert_eq(nresults(), 2);
    const struct got *g = result_for("udid-1");
    cr_assert_eq(g->merged, 15, "fifteen requests, one push");
    cr_assert_str_eq(g->token, "00bb", "the newest token wins (lower-case)");
    cr_assert_eq(result_for("udid-2")->merged, 1);
    cr_assert_eq(ts_stat(ts, "received"), 2);
    json_t *log = ts_log(ts, 10);
    int saw_new = 0;
    for (size_t i = 0; i < json_array_size(log); i++) {
        json_t *e = json_array_get(log, i);
        if (strcmp(json_string_value(json_object_get(e, "path")), "/3/device/00bb") == 0)
            saw_new = strcmp(json_string_value(json_object_get(e, "body")),
                             "{\"mdm\":\"new-magic\"}") == 0;
    }
    json_decref(log);
    cr_assert(saw_new, "the newest PushMagic was sent");
    apns_client_stats(client, &st);
    cr_assert_eq(st.submitted, 16);
    cr_assert_eq(st.coalesced, 14);

    /* Without a window, duplicates still merge while they wait for a stream. */
    apns_client_free(client);
    client = NULL;
    results_clear();
    cfg.coalesce_ms = 0;
    start_client(&cfg);
    for (int i = 0; i < 10; i++)
        p[i] = (struct apns_push){"udid-3", "00dd", "m", NULL};
    cr_assert_eq(apns_client_push(client, p, 10, NULL, &err), 0);
    wait_results(1);
    sleep_ms(100);
    size_t merged = 0;
    for (size_t i = 0; i < results.n; i++)
        merged += (size_t)results.v[i].merged;
    cr_assert_eq(merged, 10, "every submission accounted for exactly once");
    cr_assert_lt(nresults(), 10, "queued duplicates merged");
}

Test(apns_client, refused_client_certificate_halts_pushing)
{
    char *other = ts_pki("otherca.pem");
    const char *extra[] = {"--client-ca", other, NULL};
    struct apns_config cfg;
    struct apns_stats st;

    server(extra); /* the last --client-ca wins: a CA that did not issue our certificate */
    free(other);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("x-", "00", 0, 10);
    wait_results(10);
    cr_assert_eq(count_kind(APNS_KIND_FATAL), 10, "reported loudly, not retried forever");
    cr_assert(strstr(results.v[0].reason, "refused the push certificate") != NULL, "%s",
              results.v[0].reason);
    apns_client_stats(client, &st);
    cr_assert_eq(st.state, APNS_STATE_HALTED);
    cr_assert(strstr(st.last_error, "refused the push certificate") != NULL, "%s", st.last_error);
    cr_assert_eq(ts_stat(ts, "received"), 0);
    cr_assert_geq(ts_stat(ts, "tls_failures"), 1);
    /* While halted, new pushes fail at once. */
    push_n("y-", "00", 0, 3);
    wait_results(13);
    cr_assert_eq(count_kind(APNS_KIND_FATAL), 13);
}

Test(apns_client, forbidden_halts_until_a_new_certificate_is_loaded)
{
    struct apns_config cfg;
    struct scepter_error err;
    struct apns_stats st;

    server(NULL);
    cr_assert_eq(ts_script(ts, "[{\"prefix\":\"\",\"status\":403,\"reason\":\"BadCertificate\","
                               "\"times\":1}]"),
                 0);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("h-", "0f", 0, 1);
    wait_results(1);
    cr_assert_eq(results.v[0].kind, APNS_KIND_FATAL);
    cr_assert_eq(results.v[0].status, 403);
    for (int i = 0; i < 500; i++) {
        apns_client_stats(client, &st);
        if (st.state == APNS_STATE_HALTED)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(st.state, APNS_STATE_HALTED);
    push_n("h-", "0f", 1, 2);
    wait_results(3);
    cr_assert_eq(count_kind(APNS_KIND_FATAL), 3);

    /* An uploaded certificate for the same topic: pushing resumes without a restart. */
    struct apns_identity *id2 = identity("push2.pem", "push2.key");
    cr_assert_eq(apns_client_set_identity(client, id2, &err), 0, "%s", err.msg);
    apns_identity_free(id2);
    push_n("h-", "0f", 3, 5);
    wait_results(8);
    cr_assert_eq(count_kind(APNS_KIND_OK), 5);
    apns_client_stats(client, &st);
    cr_assert_eq(st.state, APNS_STATE_UP);
    cr_assert_eq(ts_stat(ts, "by_status.200"), 5);
}

Test(apns_client, hot_reload_drains_old_connections_and_changes_topic)
{
    struct apns_config cfg;
    struct scepter_error err;
    char *other_topic = ts_pki_text("topic-other");
    char now_topic[256];

    server(NULL);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("r-", "0e", 0, 20);
    wait_results(20);
    struct apns_identity *id = identity("push-other.pem", "push-other.key");
    cr_assert_eq(apns_client_set_identity(client, id, &err), 0, "%s", err.msg);
    apns_identity_free(id);
    apns_client_topic(client, now_topic, sizeof(now_topic));
    cr_assert_str_eq(now_topic, other_topic, "the topic of the new certificate, at once");
    push_n("r-", "0e", 20, 20);
    wait_results(40);
    cr_assert_eq(count_kind(APNS_KIND_OK), 40);
    cr_assert_eq(ts_stat(ts, "connections"), 2, "a new connection for the new certificate");
    cr_assert_str_eq(result_for("r-30")->topic, other_topic);
    cr_assert_str_eq(result_for("r-5")->topic, topic);
    json_t *stats = ts_stats(ts);
    cr_assert_eq(json_array_size(json_object_get(stats, "client_uids")), 2,
                 "the server saw both certificates");
    json_decref(stats);
    free(other_topic);
}

Test(apns_client, topic_override_reaches_the_server)
{
    struct apns_config cfg;
    struct scepter_error err;

    server(NULL);
    cfg = config("localhost");
    start_client(&cfg);
    struct apns_push p = {"u", "00ff", "m", "com.apple.mgmt.External.someone-else"};
    cr_assert_eq(apns_client_push(client, &p, 1, NULL, &err), 0);
    wait_results(1);
    cr_assert_eq(results.v[0].kind, APNS_KIND_REJECTED);
    cr_assert_str_eq(results.v[0].reason, "TopicDisallowed",
                     "the server compares apns-topic with the certificate's UID");
    cr_assert_str_eq(results.v[0].topic, "com.apple.mgmt.External.someone-else");
}

Test(apns_client, reconnects_after_a_drop_and_resends)
{
    const char *slow[] = {"--delay-ms", "10000", NULL};
    struct apns_config cfg;
    struct apns_stats st;
    char *pushca = ts_pki("pushca.pem"), listen_at[64];

    server(slow);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("d-", "0d", 0, 5);
    for (int i = 0; i < 1000; i++) {
        apns_client_stats(client, &st);
        if (st.in_flight == 5)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(st.in_flight, 5, "five requests on the wire");
    /* The server dies with them unanswered; more pushes arrive; it comes back. */
    snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ts->port);
    ts_stop(ts);
    ts = NULL;
    push_n("d-", "0d", 5, 5);
    for (int i = 0; i < 500; i++) {
        apns_client_stats(client, &st);
        if (st.connect_failures >= 1)
            break;
        sleep_ms(10);
    }
    cr_assert_geq(st.drops, 1, "the connection was lost with streams open");
    cr_assert_geq(st.connect_failures, 1, "it tried, and failed, to reconnect");
    cr_assert_eq(st.state, APNS_STATE_FAILING);
    cr_assert_eq(nresults(), 0, "nothing given up yet");
    const char *extra[] = {"--client-ca", pushca, "--listen", listen_at, NULL};
    ts = ts_start(extra);
    cr_assert_not_null(ts);
    wait_results(10);
    cr_assert_eq(count_kind(APNS_KIND_OK), 10, "delivered once the server is back");
    cr_assert_eq(ts_stat(ts, "received"), 10);
    apns_client_stats(client, &st);
    cr_assert_geq(st.resent, 5, "the five lost requests went out again");
    cr_assert_eq(st.state, APNS_STATE_UP);
    free(pushca);
}

Test(apns_client, a_silent_connection_is_pinged_and_dropped)
{
    struct apns_config cfg;
    struct apns_stats st;

    server(NULL);
    cfg = config("localhost");
    cfg.ping_timeout_ms = 200;
    cfg.connect_timeout_ms = 500;
    start_client(&cfg);
    push_n("bh-", "0b", 0, 3);
    wait_results(3);
    /* The server freezes: TCP stays up, nothing is read or answered (a black hole). */
    cr_assert_eq(kill(ts->pid, SIGSTOP), 0);
    push_n("bh-", "0b", 3, 5);
    for (int i = 0; i < 1000; i++) {
        apns_client_stats(client, &st);
        if (st.drops >= 1)
            break;
        sleep_ms(10);
    }
    cr_assert_geq(st.drops, 1, "the silent connection was given up");
    cr_assert(strstr(st.last_error, "PING not answered") != NULL, "%s", st.last_error);
    cr_assert_eq(nresults(), 3, "the five pushes wait, not lost");
    cr_assert_eq(kill(ts->pid, SIGCONT), 0);
    wait_results(8);
    cr_assert_eq(count_kind(APNS_KIND_OK), 8);
}

Test(apns_client, unverifiable_server_and_queue_timeout)
{
    char *cert = ts_pki("wrongname.pem"), *key = ts_pki("wrongname.key");
    const char *extra[] = {"--cert", cert, "--key", key, NULL};
    struct apns_config cfg;
    struct apns_stats st;

    server(extra);
    cfg = config("localhost");
    cfg.queue_timeout_ms = 300;
    start_client(&cfg);
    push_n("v-", "0c", 0, 3);
    wait_results(3);
    cr_assert_eq(count_kind(APNS_KIND_GAVE_UP), 3);
    cr_assert(strstr(results.v[0].reason, "no connection to APNs") != NULL, "%s",
              results.v[0].reason);
    cr_assert(strstr(results.v[0].reason, "not trusted") != NULL, "the reason says why: %s",
              results.v[0].reason);
    apns_client_stats(client, &st);
    cr_assert(strstr(st.last_error, "hostname mismatch") != NULL, "%s", st.last_error);
    cr_assert_neq(st.state, APNS_STATE_HALTED, "a server problem is not our certificate's");
    cr_assert_eq(ts_stat(ts, "received"), 0, "nothing sent to an unverified server");
    free(cert);
    free(key);
}

Test(apns_client, stop_flushes_what_is_queued)
{
    struct apns_config cfg;

    server(NULL);
    cfg = config("localhost");
    cfg.coalesce_ms = 60000; /* held for a minute, unless stop sends them at once */
    start_client(&cfg);
    push_n("s-", "0b", 0, 50);
    apns_client_stop(client, 10000);
    cr_assert_eq(nresults(), 50, "every push has its result when stop returns");
    cr_assert_eq(count_kind(APNS_KIND_OK), 50);
    cr_assert_eq(ts_stat(ts, "received"), 50);
    struct scepter_error err;
    struct apns_push p = {"late", "00", "m", NULL};
    cr_assert_eq(apns_client_push(client, &p, 1, NULL, &err), SCEPTER_EUNAVAIL);
}

Test(apns_client, stop_gives_up_after_its_deadline)
{
    struct apns_config cfg;

    cfg = config("localhost"); /* port 1: nothing listens */
    start_client(&cfg);
    push_n("z-", "0a", 0, 4);
    apns_client_stop(client, 300);
    cr_assert_eq(nresults(), 4);
    cr_assert_eq(count_kind(APNS_KIND_GAVE_UP), 4);
}

Test(apns_client, idle_connections_are_pinged)
{
    struct apns_config cfg;
    struct apns_stats st;

    server(NULL);
    cfg = config("localhost");
    cfg.ping_interval_ms = 50;
    start_client(&cfg);
    push_n("p-", "01", 0, 1);
    wait_results(1);
    for (int i = 0; i < 500; i++) {
        apns_client_stats(client, &st);
        if (st.pings >= 2)
            break;
        sleep_ms(10);
    }
    cr_assert_geq(st.pings, 2);
    cr_assert_eq(st.conns_up, 1, "answered PINGs keep the connection");
    cr_assert_eq(st.drops, 0);
    cr_assert_eq(ts_stat(ts, "connections"), 1);
}

Test(apns_client, a_large_batch_in_one_call)
{
    const char *extra[] = {"--max-streams", "500", "--log-size", "0", NULL};
    struct apns_config cfg;

    server(extra);
    cfg = config("localhost");
    start_client(&cfg);
    push_n("big-", "ab", 0, 20000);
    wait_results(20000);
    cr_assert_eq(count_kind(APNS_KIND_OK), 20000);
    cr_assert_eq(ts_stat(ts, "received"), 20000);
    cr_assert_leq(ts_stat(ts, "max_concurrent_streams"), 500);
}
