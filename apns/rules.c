/*
 * The rules of APNs, as pure functions: what an answer means (apns_classify, after Apple's
 * "Handling notification responses" table), what a valid push looks like, where to connect
 * (apns_url), how long to back off, and the slots /metrics counts answers in.
 */
#include "apns_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/str.h"

const char *apns_kind_name(enum apns_kind kind)
{
    switch (kind) {
    case APNS_KIND_OK:
        return "ok";
    case APNS_KIND_PERMANENT:
        return "permanent";
    case APNS_KIND_REJECTED:
        return "rejected";
    case APNS_KIND_RETRY:
        return "retry";
    case APNS_KIND_GAVE_UP:
        return "gave_up";
    case APNS_KIND_FATAL:
        return "fatal";
    }
    return "unknown";
}

const char *apns_state_name(enum apns_state state)
{
    switch (state) {
    case APNS_STATE_IDLE:
        return "idle";
    case APNS_STATE_CONNECTING:
        return "connecting";
    case APNS_STATE_UP:
        return "up";
    case APNS_STATE_FAILING:
        return "failing";
    case APNS_STATE_HALTED:
        return "halted";
    case APNS_STATE_STOPPED:
        return "stopped";
    }
    return "unknown";
}

enum apns_kind apns_classify(int status, const char *reason)
{
    const char *r = reason ? reason : "";

    if (status == 200)
        return APNS_KIND_OK;
    if (status == 410)
        return APNS_KIND_PERMANENT; /* Unregistered, ExpiredToken */
    if (status == 400) {
        if (strcmp(r, "BadDeviceToken") == 0 || strcmp(r, "DeviceTokenNotForTopic") == 0)
            return APNS_KIND_PERMANENT;
        if (strcmp(r, "IdleTimeout") == 0)
            return APNS_KIND_RETRY; /* the connection idled out, not the push */
        return APNS_KIND_REJECTED;
    }
    if (status == 403)
        return APNS_KIND_FATAL; /* BadCertificate, BadCertificateEnvironment, Forbidden... */
    if (status == 429 || (status >= 500 && status <= 599))
        return APNS_KIND_RETRY;
    return APNS_KIND_REJECTED;
}

int apns_push_magic_check(const char *magic, const char *field, struct scepter_error *err)
{
    size_t n;

    if (str_empty(magic))
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: missing", field);
    n = strlen(magic);
    if (n > APNS_MAX_MAGIC)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: %zu characters, at most %d", field, n,
                           APNS_MAX_MAGIC);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)magic[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return scepter_err(err, SCEPTER_EINVAL, field,
                               "%s: character %zu is not printable ASCII without quotes or "
                               "backslashes",
                               field, i + 1);
    }
    return 0;
}

int apns_token_check(size_t token_len, const char *field, struct scepter_error *err)
{
    if (token_len == 0 || token_len > LIMIT_PUSH_TOKEN_BYTES)
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: %zu bytes is not a device token (1 to %d bytes)", field, token_len,
                           LIMIT_PUSH_TOKEN_BYTES);
    return 0;
}

int apns_push_validate(const struct apns_push *p, struct scepter_error *err)
{
    size_t n;
    int rc;

    if (str_empty(p->enrollment_id))
        return scepter_err(err, SCEPTER_EINVAL, "enrollment_id", "enrollment_id: missing");
    n = strlen(p->enrollment_id);
    if (n > APNS_MAX_ENROLLMENT_ID)
        return scepter_err(err, SCEPTER_EINVAL, "enrollment_id",
                           "enrollment_id: %zu characters, at most %d", n, APNS_MAX_ENROLLMENT_ID);
    if (str_empty(p->token_hex))
        return scepter_err(err, SCEPTER_EINVAL, "token", "token: missing (no TokenUpdate yet?)");
    n = strlen(p->token_hex);
    if (n > APNS_MAX_TOKEN_HEX || n % 2 != 0)
        return scepter_err(err, SCEPTER_EINVAL, "token",
                           "token: %zu hex digits; expected an even number, at most %d", n,
                           APNS_MAX_TOKEN_HEX);
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)p->token_hex[i]))
            return scepter_err(err, SCEPTER_EINVAL, "token",
                               "token: character %zu is not a hex digit", i + 1);
    }
    if ((rc = apns_push_magic_check(p->push_magic, "push_magic", err)) != 0)
        return rc;
    if (!str_empty(p->topic)) {
        n = strlen(p->topic);
        if (n > APNS_MAX_TOPIC)
            return scepter_err(err, SCEPTER_EINVAL, "topic", "topic: %zu characters, at most %d", n,
                               APNS_MAX_TOPIC);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p->topic[i];
            if (c <= 0x20 || c > 0x7e || c == '"' || c == '\\')
                return scepter_err(err, SCEPTER_EINVAL, "topic",
                                   "topic: character %zu is not printable ASCII", i + 1);
        }
    }
    return 0;
}

void apns_config_init(struct apns_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->url = "https://api.push.apple.com";
    cfg->ca_file = NULL;
    cfg->connections = 1;
    cfg->coalesce_ms = 100;
    cfg->priority = 10;
    cfg->expiration_s = 86400;
    cfg->max_attempts = 5;
    cfg->retry_base_ms = 5000;
    cfg->retry_max_ms = 15 * 60 * 1000; /* Apple: retry 5xx after about 15 minutes */
    cfg->reconnect_base_ms = 1000;
    cfg->reconnect_max_ms = 60 * 1000;
    cfg->connect_timeout_ms = 15 * 1000;
    cfg->ping_interval_ms = 60 * 60 * 1000; /* Apple: PING after about an hour idle */
    cfg->ping_timeout_ms = 30 * 1000;
    cfg->queue_timeout_ms = 10 * 60 * 1000;
    cfg->max_queue = 1000000;
}

int apns_endpoint_parse(const char *url, struct apns_endpoint *ep, struct scepter_error *err)
{
    const char *p = url, *host, *hend, *port = NULL, *end;
    size_t hlen, plen;
    int64_t portnum = 443;

    memset(ep, 0, sizeof(*ep));
    if (str_empty(url))
        return scepter_err(err, SCEPTER_EINVAL, "apns_url", "apns_url: empty");
    if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else if (strstr(p, "://") != NULL)
        return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                           "apns_url: \"%.100s\": only https:// is supported", url);
    end = p + strcspn(p, "/?#");
    if (*end != '\0' && strcmp(end, "/") != 0)
        return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                           "apns_url: \"%.100s\": give only scheme, host and port", url);
    if (*p == '[') {
        host = p + 1;
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL)
            return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                               "apns_url: \"%.100s\": unterminated [IPv6] address", url);
        if (hend + 1 < end) {
            if (hend[1] != ':')
                return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                                   "apns_url: \"%.100s\": expected :port after ]", url);
            port = hend + 2;
        }
        ep->host_is_ip = true;
    } else {
        host = p;
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend != NULL)
            port = hend + 1;
        else
            hend = end;
    }
    hlen = (size_t)(hend - host);
    if (hlen == 0 || hlen >= sizeof(ep->host))
        return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                           "apns_url: \"%.100s\": missing or too long host", url);
    memcpy(ep->host, host, hlen);
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)ep->host[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || (ep->host_is_ip && c == ':')))
            return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                               "apns_url: \"%.100s\": bad character in host", url);
    }
    if (port != NULL) {
        char digits[8];
        plen = (size_t)(end - port);
        if (plen == 0 || plen >= sizeof(digits))
            return scepter_err(err, SCEPTER_EINVAL, "apns_url", "apns_url: \"%.100s\": bad port",
                               url);
        memcpy(digits, port, plen);
        digits[plen] = '\0';
        if (str_to_i64(digits, 1, 65535, &portnum) != 0)
            return scepter_err(err, SCEPTER_EINVAL, "apns_url",
                               "apns_url: \"%.100s\": port must be 1..65535", url);
    }
    if (!ep->host_is_ip) {
        bool digits_dots = true;
        for (size_t i = 0; i < hlen; i++)
            digits_dots &= isdigit((unsigned char)ep->host[i]) || ep->host[i] == '.';
        ep->host_is_ip = digits_dots;
    }
    snprintf(ep->port, sizeof(ep->port), "%d", (int)portnum);
    if (portnum == 443)
        snprintf(ep->authority, sizeof(ep->authority),
                 ep->host_is_ip && strchr(ep->host, ':') ? "[%s]" : "%s", ep->host);
    else
        snprintf(ep->authority, sizeof(ep->authority),
                 ep->host_is_ip && strchr(ep->host, ':') ? "[%s]:%s" : "%s:%s", ep->host, ep->port);
    return 0;
}

uint64_t apns_rand_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

int64_t apns_backoff_ms(int64_t base, int64_t max, int attempt, uint64_t rnd)
{
    int64_t d = base < 1 ? 1 : base;

    for (int i = 1; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    if (d < 2)
        return 1;
    return d / 2 + (int64_t)(rnd % (uint64_t)(d - d / 2 + 1));
}

int64_t apns_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const int latency_bounds[APNS_LATENCY_BUCKETS] = {5,   10,   25,   50,   100,   250,
                                                         500, 1000, 2500, 5000, 10000, 30000};

int apns_latency_bound_ms(size_t i)
{
    return i < APNS_LATENCY_BUCKETS ? latency_bounds[i] : -1;
}

static const int status_codes[APNS_STATUS_SLOTS] = {200, 400, 403, 404, 405, 410,
                                                    413, 429, 500, 503, 0};

int apns_status_slot_code(size_t i)
{
    return i < APNS_STATUS_SLOTS ? status_codes[i] : 0;
}

size_t apns_status_slot(int status)
{
    for (size_t i = 0; i + 1 < APNS_STATUS_SLOTS; i++) {
        if (status_codes[i] == status)
            return i;
    }
    return APNS_STATUS_SLOTS - 1;
}

/* Apple's reasons (handling-notification-responses-from-apns), then "other". */
static const char *const reasons[APNS_REASON_SLOTS] = {
    "BadCollapseId",
    "BadDeviceToken",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DeviceTokenNotForTopic",
    "DuplicateHeaders",
    "IdleTimeout",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "BadPath",
    "MethodNotAllowed",
    "ExpiredToken",
    "Unregistered",
    "PayloadTooLarge",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
    "other",
};

const char *apns_reason_slot_name(size_t i)
{
    return i < APNS_REASON_SLOTS ? reasons[i] : "other";
}

size_t apns_reason_slot(const char *reason)
{
    if (reason != NULL) {
        for (size_t i = 0; i + 1 < APNS_REASON_SLOTS; i++) {
            if (strcmp(reasons[i], reason) == 0)
                return i;
        }
    }
    return APNS_REASON_SLOTS - 1;
}
