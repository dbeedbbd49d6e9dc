/*
 * Fuzz target: the operator API (/v1), every route and its body, through mdm_api_handle with a
 * real store (SQLite in memory) holding one enrolled device, one group and one policy.  An
 * input is a request in text:
 *   METHOD /v1/path[?query]\n
 *   \n
 *   JSON body (the rest)
 * so the seeds (seeds/api_body/) name routes by their path and survive changes of the route
 * table.  The router, the query parameters and every handler's reading of its body are
 * reached.  Nothing may crash, leak or read out of bounds, every answer must be a status the
 * API uses, and every error must be a JSON object with an "error" message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/xmalloc.h"
#include "config/config.h"
#include "mdm/api_int.h"
#include "mdm/mdm_int.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define API_KEY "fuzz-api-key-0123456789abcdef0123456789"
/* Requests per store: the store is made again after these, so it stays small. */
#define STORE_ROUNDS 20000

static struct mdm_server *srv;
static struct store *store;
static int rounds;
static int64_t now;

static const char *header(const void *arg, const char *name)
{
    (void)arg;
    if (strcasecmp(name, "Authorization") == 0)
        return "Bearer " API_KEY;
    if (strcasecmp(name, "Content-Type") == 0)
        return "application/json";
    return NULL;
}

static void need(int rc, const struct scepter_error *err)
{
    if (rc < 0) {
        fprintf(stderr, "fuzz_api_body: %s\n", err->msg);
        abort();
    }
}

/* A store with one enrolled device (UDID "FUZZ-UDID") and nothing else. */
static void store_new(void)
{
    struct scepter_error err;
    static const unsigned char token[32] = {1, 2, 3};
    struct store_authenticate a = {.device_id = "FUZZ-UDID",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.fuzz",
                                   .cert_hash = "0123456789abcdef0123456789abcdef"
                                                "0123456789abcdef0123456789abcdef"};
    struct store_token_update t = {.enrollment_id = "FUZZ-UDID",
                                   .device_id = "FUZZ-UDID",
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = "com.apple.mgmt.External.fuzz",
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "magic"};
    bool first;

    a.facts.serial_number = "FUZZSERIAL";
    a.facts.platform = STORE_PLATFORM_IOS;
    store_close(store);
    need(store_open("sqlite::memory:", &store, &err), &err);
    need(store_authenticate(store, &a, now, NULL, &err), &err);
    need(store_token_update(store, &t, now, &first, &err), &err);
}

static void init(void)
{
    struct scepter_error err;
    struct cfg *cfg = cfg_new();

    now = (int64_t)time(NULL);
    need(cfg_set(cfg, "api_key", API_KEY, "fuzz", &err), &err);
    if ((srv = mdm_server_core_new(cfg, &err)) == NULL)
        need(-1, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        const char *name;
        enum mdm_method m;
    } methods[] = {{"GET", MDM_GET},
                   {"POST", MDM_POST},
                   {"PUT", MDM_PUT},
                   {"DELETE", MDM_DELETE},
                   {"PATCH", MDM_PATCH}};
    const uint8_t *nl = memchr(data, '\n', size), *sp;
    char *line, *path, *query;
    struct mdm_request req;
    struct mdm_reply reply;
    struct mdm_ctx ctx;
    size_t i;

    if (srv == NULL)
        init();
    if (nl == NULL || (sp = memchr(data, ' ', (size_t)(nl - data))) == NULL)
        return 0;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].name) == (size_t)(sp - data) &&
            memcmp(methods[i].name, data, (size_t)(sp - data)) == 0)
            break;
    if (i == sizeof(methods) / sizeof(methods[0]))
        return 0;
    line = xstrndup((const char *)sp + 1, (size_t)(nl - sp - 1));
    if (strncmp(line, "/v1/", 4) != 0 && strcmp(line, "/v1") != 0) {
        free(line);
        return 0; /* mdm_route sends only /v1 paths here */
    }
    path = line;
    if ((query = strchr(line, '?')) != NULL)
        *query++ = '\0';
    /* the body: after the blank line */
    const uint8_t *body = nl + 1, *end = data + size;
    if (body < end && *body == '\n')
        body++;

    if (store == NULL || rounds++ % STORE_ROUNDS == 0)
        store_new();
    memset(&req, 0, sizeof(req));
    req.method = methods[i].m;
    req.path = path;
    req.query = query;
    req.body = body;
    req.body_len = (size_t)(end - body);
    req.header = header;
    req.peer_addr = "127.0.0.1";
    ctx = (struct mdm_ctx){srv, srv->cfg, store, NULL, srv->conf};
    mdm_reply_init(&reply);
    mdm_api_handle(&ctx, &req, now, &reply);
    if (reply.status < 200 || reply.status > 599)
        abort(); /* not an HTTP status */
    if (reply.status >= 400) {
        json_t *j = json_loadb(reply.body.data ? reply.body.data : "", reply.body.len, 0, NULL);
        if (!json_is_object(j) || !json_is_string(json_object_get(j, "error"))) {
            fprintf(stderr, "fuzz_api_body: %d without an error message: %.*s\n", reply.status,
                    (int)reply.body.len, reply.body.data ? reply.body.data : "");
            abort();
        }
        json_decref(j);
    }
    mdm_reply_free(&reply);
    free(line);
    return 0;
}
