/*
 * Fuzz target: the console session cookie and the CSRF header (mdm/api_session.c), through
 * mdm_api_handle with a real store (SQLite in memory) that holds one live session whose id
 * and CSRF token are known here, so seeds can carry them and mutations land next to them.
 * An input is:
 *   METHOD /v1/path[?query]\n
 *   the Cookie header's value (an empty line: no Cookie header)\n
 *   the X-CSRF-Token header's value (an empty line: none)\n
 *   the body (the rest)
 * No Authorization header is sent: the cookie decides.  Beyond "nothing crashes, leaks or
 * reads out of bounds", the answers are checked against an oracle written here from the
 * cookie rules (RFC 6265 §5.4 pairs; the first well-formed scepter_session wins):
 *   - without the live session's cookie, every route but sign-in answers 401 (a path longer
 *     than any route: 404 "no such endpoint", before authentication);
 *   - with it, a POST, PUT, PATCH or DELETE whose X-CSRF-Token is not exactly the session's
 *     is refused 403, never carried out;
 *   - every status is an HTTP status, every error a JSON object with an "error" message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/xmalloc.h"
#include "config/config.h"
#include "mdm/api_int.h"
#include "mdm/mdm_int.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define API_KEY "fuzz-api-key-0123456789abcdef0123456789"
/* The live session: its id (43 base64url characters, as the server makes them) and token. */
#define SESSION_ID "FuzzSessionId-0123456789_abcdefghijklmnopqr"
#define CSRF_TOKEN "FuzzCsrfToken-0123456789_abcdefghijklmnopqr"
#define COOKIE     "scepter_session"
/* Requests per store: made again after these (or once the session was signed out). */
#define STORE_ROUNDS 20000

static struct mdm_server *srv;
static struct store *store;
static int rounds;
static int64_t now;
static const char *cookie_hdr, *csrf_hdr;

static const char *header(const void *arg, const char *name)
{
    (void)arg;
    if (strcasecmp(name, "Cookie") == 0)
        return cookie_hdr;
    if (strcasecmp(name, "X-CSRF-Token") == 0)
        return csrf_hdr;
    if (strcasecmp(name, "Content-Type") == 0)
        return "application/json";
    return NULL;
}

static void need(int rc, const struct scepter_error *err)
{
    if (rc < 0) {
        fprintf(stderr, "fuzz_session_cookie: %s\n", err->msg);
        abort();
    }
}

static void sha256_hex(const char *s, char hex[65])
{
    unsigned char md[32];

    crypto_sha256(s, strlen(s), md);
    hex_encode_to(md, sizeof(md), hex, false);
}

/* A fresh store holding the live session, signed in with the bootstrap key. */
static void store_new(void)
{
    struct scepter_error err;
    char hash[65], key_hash[65];

    store_close(store);
    need(store_open("sqlite::memory:", &store, &err), &err);
    sha256_hex(SESSION_ID, hash);
    sha256_hex(API_KEY, key_hash);
    need(
        store_session_create(store, hash, CSRF_TOKEN, key_hash, "127.0.0.1", now, now + 3600, &err),
        &err);
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

static bool is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* The oracle: does the Cookie header name the live session?  Pairs are separated by ';',
 * blanks around them are not part of them; the first scepter_session pair whose value is a
 * session id in form (43 base64url characters) is the one that counts. */
static bool names_live_session(const char *h)
{
    const size_t idlen = strlen(SESSION_ID), nl = strlen(COOKIE);

    while (h && *h) {
        h += strspn(h, " \t;");
        const char *end = strchr(h, ';');
        size_t len = end ? (size_t)(end - h) : strlen(h);
        while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
            len--;
        if (len == nl + 1 + idlen && memcmp(h, COOKIE "=", nl + 1) == 0 &&
            is_b64url(h + nl + 1, idlen))
            return memcmp(h + nl + 1, SESSION_ID, idlen) == 0;
        h = end;
    }
    return false;
}

/* Is path /v1/sessions, read as the router reads it (empty segments do not count: a
 * trailing or doubled '/' names the same route)? */
static bool is_sessions_path(const char *path)
{
    static const char *const want[] = {"v1", "sessions"};
    size_t n = 0;

    for (const char *p = path; *p;) {
        size_t len;
        p += strspn(p, "/");
        if ((len = strcspn(p, "/")) == 0)
            break;
        if (n >= 2 || strlen(want[n]) != len || memcmp(p, want[n], len) != 0)
            return false;
        n++;
        p += len;
    }
    return n == 2;
}

/* The next line of [*p, end) as a new string (without its '\n'); *p moves past it. */
static char *next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    char *s = xstrndup((const char *)*p, (size_t)(stop - *p));

    *p = nl ? nl + 1 : end;
    return s;
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
    const uint8_t *p = data, *end = data + size;
    char *line, *cookie, *csrf, *path, *query, *sp;
    struct mdm_request req;
    struct mdm_reply reply;
    struct mdm_ctx ctx;
    size_t i;

    if (srv == NULL)
        init();
    line = next_line(&p, end);
    cookie = next_line(&p, end);
    csrf = next_line(&p, end);
    if ((sp = strchr(line, ' ')) == NULL)
        goto out;
    *sp = '\0';
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(methods[i].name, line) == 0)
            break;
    path = sp + 1;
    if (i == sizeof(methods) / sizeof(methods[0]) ||
        (strncmp(path, "/v1/", 4) != 0 && strcmp(path, "/v1") != 0))
        goto out; /* mdm_route sends only /v1 paths here */
    if ((query = strchr(path, '?')) != NULL)
        *query++ = '\0';
    if (store == NULL || rounds++ % STORE_ROUNDS == 0)
        store_new();
    cookie_hdr = *cookie ? cookie : NULL;
    csrf_hdr = *csrf ? csrf : NULL;
    memset(&req, 0, sizeof(req));
    req.method = methods[i].m;
    req.path = path;
    req.query = query;
    req.body = p;
    req.body_len = (size_t)(end - p);
    req.header = header;
    req.peer_addr = "127.0.0.1";
    ctx = (struct mdm_ctx){srv, srv->cfg, store, NULL, srv->conf};
    mdm_reply_init(&reply);
    mdm_api_handle(&ctx, &req, now, &reply);

    bool live = cookie_hdr && names_live_session(cookie_hdr);
    bool sign_in = req.method == MDM_POST && is_sessions_path(path);
    bool changes = req.method != MDM_GET;
    bool csrf_ok = csrf_hdr && strcmp(csrf_hdr, CSRF_TOKEN) == 0;
    /* A path with more segments than any route is refused before anyone is asked who they
     * are: it names nothing. */
    bool no_route = reply.status == 404 && reply.body.len > 0 &&
                    memmem(reply.body.data, reply.body.len, "\"no such endpoint\"", 18) != NULL;
    if (reply.status < 200 || reply.status > 599)
        abort(); /* not an HTTP status */
    if (!sign_in && !live && reply.status != 401 && !no_route) {
        fprintf(stderr, "fuzz_session_cookie: %s %s without the session's cookie: %d\n",
                methods[i].name, path, reply.status);
        abort();
    }
    if (!sign_in && live && changes && !csrf_ok && reply.status != 403 && !no_route) {
        fprintf(stderr, "fuzz_session_cookie: %s %s without the CSRF token: %d\n", methods[i].name,
                path, reply.status);
        abort();
    }
    if (reply.status >= 400) {
        json_t *j = json_loadb(reply.body.data ? reply.body.data : "", reply.body.len, 0, NULL);
        if (!json_is_object(j) || !json_is_string(json_object_get(j, "error"))) {
            fprintf(stderr, "fuzz_session_cookie: %d without an error message\n", reply.status);
            abort();
        }
        json_decref(j);
    }
    /* Signed out: the next input gets a fresh store with the session live again. */
    if (req.method == MDM_DELETE && reply.status == 204)
        rounds = 0;
    mdm_reply_free(&reply);
out:
    free(line);
    free(cookie);
    free(csrf);
    return 0;
}
