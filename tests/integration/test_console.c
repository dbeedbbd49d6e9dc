/*
 * The web console over HTTPS, on both stores: signing in with an API key answers a session
 * cookie with exactly the agreed flags; the cookie works on every /v1 route, and with it a
 * state-changing request needs the session's X-CSRF-Token (refused without, nothing changed);
 * Bearer keys keep working without CSRF; sign-out, the lifetime, the idle timeout and
 * deleting the key that signed in end a session; failed sign-ins are limited per address.
 * The embedded console files come with the security headers; / sends browsers to /console/;
 * unknown files are 404 and no path reaches outside the console.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "harness.h"
#include "support/support.h"

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "                   \
    "frame-ancestors 'none'"

/* One request with extra header lines ("Name: value\r\n"...); asserts an answer. */
static void req(struct h_server *s, const char *method, const char *path, const char *headers,
                const char *body, struct tu_http_resp *r)
{
    char *h =
        xasprintf("%s%s", body ? "Content-Type: application/json\r\n" : "", headers ? headers : "");
    cr_assert_eq(
        tu_http(s->port, true, NULL, NULL, method, path, h, body, body ? strlen(body) : 0, r), 0,
        "%s %s: no answer", method, path);
    free(h);
}

static json_t *body_json(const struct tu_http_resp *r)
{
    json_error_t jerr;
    json_t *j = r->body_len ? json_loadb((const char *)r->body, r->body_len, 0, &jerr) : NULL;
    cr_assert(r->body_len == 0 || j != NULL, "not JSON: %.*s", (int)r->body_len, r->body);
    return j;
}

static const char *header(const struct tu_http_resp *r, const char *name)
{
    static char buf[4][1024];
    static int n;
    char *out = buf[n++ % 4];
    return tu_http_header(r, name, out, sizeof(buf[0]));
}

/* A session: its cookie ("scepter_session=...") and CSRF token. */
struct sess {
    char cookie[128];
    char csrf[128];
    int64_t expires; /* expires_at */
};

/* Sign in with key; asserts 201 and exactly the agreed cookie attributes. */
static struct sess sign_in(struct h_server *s, const char *key)
{
    struct tu_http_resp r;
    struct sess out;
    char *body = xasprintf("{\"api_key\":\"%s\"}", key);

    req(s, "POST", "/v1/sessions", NULL, body, &r);
    cr_assert_eq(r.status, 201, "sign-in: %d %.*s", r.status, (int)r.body_len, r.body);
    const char *sc = header(&r, "Set-Cookie");
    cr_assert_not_null(sc, "no Set-Cookie");
    const char *attrs = "; HttpOnly; Secure; SameSite=Strict; Path=/";
    cr_assert(strncmp(sc, "scepter_session=", 16) == 0, "%s", sc);
    size_t idlen = strcspn(sc + 16, ";");
    cr_assert_eq(idlen, 43, "a 256-bit id in base64url: %s", sc);
    cr_assert_eq(
        strspn(sc + 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43,
        "%s", sc);
    cr_assert_str_eq(sc + 16 + idlen, attrs, "cookie attributes: %s", sc);
    snprintf(out.cookie, sizeof(out.cookie), "%.*s", (int)(16 + idlen), sc);
    json_t *j = body_json(&r);
    const char *csrf = json_string_value(json_object_get(j, "csrf_token"));
    cr_assert_not_null(csrf, "%s", h_json(j));
    cr_assert_eq(strlen(csrf), 43);
    const char *exp = json_string_value(json_object_get(j, "expires_at"));
    cr_assert_not_null(exp, "%s", h_json(j));
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    cr_assert_not_null(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &tm), "expires_at: %s", exp);
    out.expires = (int64_t)timegm(&tm);
    cr_assert(json_is_integer(json_object_get(j, "idle_timeout_s")), "%s", h_json(j));
    snprintf(out.csrf, sizeof(out.csrf), "%s", csrf);
    json_decref(j);
    tu_http_resp_free(&r);
    free(body);
    return out;
}

/* A request with the session's cookie, and its CSRF token when csrf is true. */
static int with_cookie(struct h_server *s, const struct sess *ss, bool csrf, const char *method,
                       const char *path, const char *body, json_t **out)
{
    struct tu_http_resp r;
    char *h = csrf ? xasprintf("Cookie: %s\r\nX-CSRF-Token: %s\r\n", ss->cookie, ss->csrf)
                   : xasprintf("Cookie: %s\r\n", ss->cookie);
    req(s, method, path, h, body, &r);
    int st = r.status;
    if (out)
        *out = body_json(&r);
    tu_http_resp_free(&r);
    free(h);
    return st;
}

static size_t group_count(struct h_server *s)
{
    json_t *j = NULL;
    cr_assert_eq(h_api(s, "GET", "/v1/device-groups", NULL, &j), 200, "%s", h_json(j));
    json_t *arr = json_object_get(j, "device_groups");
    size_t n = json_array_size(arr);
    json_decref(j);
    return n;
}

static size_t event_count(struct h_server *s, const char *kind)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/events?kind=%s", kind);
    cr_assert_eq(h_api(s, "GET", path, NULL, &j), 200, "%s", h_json(j));
    size_t n = json_array_size(json_object_get(j, "events"));
    json_decref(j);
    free(path);
    return n;
}

static void assert_expired(int status, json_t *j)
{
    cr_assert_eq(status, 401, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "session expired", "%s",
                     h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "session");
}

static bool log_contains(const struct h_server *s, const char *needle)
{
    char *log = tu_proc_log(&s->proc);
    bool found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                  */

Test(console, session_cookie_csrf_bearer_and_sign_out)
{
    struct h_server S;
    struct tu_http_resp r;
    json_t *j = NULL;
    h_start(&S, NULL);

    /* A wrong key: 401 naming api_key, no cookie. */
    req(&S, "POST", "/v1/sessions", NULL, "{\"api_key\":\"not-the-key-0123456789\"}", &r);
    j = body_json(&r);
    cr_assert_eq(r.status, 401, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "api_key");
    cr_assert_null(header(&r, "Set-Cookie"));
    json_decref(j);
    tu_http_resp_free(&r);
    /* No body, an unknown field: 400 naming them. */
    req(&S, "POST", "/v1/sessions", NULL, "{\"key\":\"x\"}", &r);
    cr_assert_eq(r.status, 400);
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "key", "%s", h_json(j));
    json_decref(j);
    tu_http_resp_free(&r);

    struct sess a = sign_in(&S, H_API_KEY);
    /* The cookie alone reads. */
    cr_assert_eq(with_cookie(&S, &a, false, "GET", "/v1/devices", NULL, &j), 200, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(with_cookie(&S, &a, false, "GET", "/v1/sessions/current", NULL, &j), 200, "%s",
                 h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "csrf_token")), a.csrf);
    cr_assert_eq(json_integer_value(json_object_get(j, "idle_timeout_s")), 1800);
    json_decref(j);

    /* A POST with the cookie and no or a wrong X-CSRF-Token: 403 naming it, nothing made. */
    size_t groups = group_count(&S);
    cr_assert_eq(with_cookie(&S, &a, false, "POST", "/v1/device-groups",
                             "{\"name\":\"csrf-less\",\"devices\":[]}", &j),
                 403, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "X-CSRF-Token");
    json_decref(j);
    struct sess wrong = a;
    snprintf(wrong.csrf, sizeof(wrong.csrf), "%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    cr_assert_eq(with_cookie(&S, &wrong, true, "POST", "/v1/device-groups",
                             "{\"name\":\"csrf-wrong\",\"devices\":[]}", &j),
                 403, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "X-CSRF-Token");
    json_decref(j);
    cr_assert_eq(group_count(&S), groups, "a refused request changed nothing");
    cr_assert_eq(event_count(&S, "console.CSRFRefused"), 2);
    /* With the token it works. */
    cr_assert_eq(with_cookie(&S, &a, true, "POST", "/v1/device-groups",
                             "{\"name\":\"with-csrf\",\"devices\":[]}", &j),
                 201, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(group_count(&S), groups + 1);
    /* Bearer keys work as before, without any CSRF token. */
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"bearer\",\"devices\":[]}", &j),
                 201, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(group_count(&S), groups + 2);

    /* A second session of a stored key ends when the key is deleted. */
    cr_assert_eq(h_api(&S, "POST", "/v1/apikeys", "{\"name\":\"console-user\"}", &j), 201, "%s",
                 h_json(j));
    char *key = xstrdup(json_string_value(json_object_get(j, "key")));
    json_int_t key_id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    struct sess b = sign_in(&S, key);
    /* The sign-in event names the key as GET /v1/apikeys does, by its hash prefix. */
    cr_assert_eq(h_api(&S, "GET", "/v1/apikeys", NULL, &j), 200);
    char *prefix = xstrdup(json_string_value(
        json_object_get(json_array_get(json_object_get(j, "api_keys"), 0), "hash_prefix")));
    json_decref(j);
    cr_assert_eq(h_api(&S, "GET", "/v1/events?kind=console.SignIn", NULL, &j), 200);
    json_t *newest = json_array_get(json_object_get(j, "events"), 0);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(newest, "detail"), "key_hash_prefix")),
        prefix, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(newest, "detail"), "peer")),
                     "127.0.0.1");
    json_decref(j);
    free(prefix);
    cr_assert_eq(with_cookie(&S, &b, false, "GET", "/v1/devices", NULL, &j), 200, "%s", h_json(j));
    json_decref(j);
    char *del = xasprintf("/v1/apikeys/%lld", (long long)key_id);
    cr_assert_eq(h_api(&S, "DELETE", del, NULL, NULL), 200);
    int st = with_cookie(&S, &b, false, "GET", "/v1/devices", NULL, &j);
    assert_expired(st, j);
    json_decref(j);
    free(del);
    free(key);

    /* Sign-out needs the token too; then the cookie is cleared and no longer works. */
    cr_assert_eq(with_cookie(&S, &a, false, "DELETE", "/v1/sessions/current", NULL, &j), 403, "%s",
                 h_json(j));
    json_decref(j);
    char *h = xasprintf("Cookie: %s\r\nX-CSRF-Token: %s\r\n", a.cookie, a.csrf);
    req(&S, "DELETE", "/v1/sessions/current", h, NULL, &r);
    cr_assert_eq(r.status, 204);
    const char *cleared = header(&r, "Set-Cookie");
    cr_assert_not_null(cleared);
    cr_assert(strncmp(cleared, "scepter_session=;", 17) == 0 && strstr(cleared, "Max-Age=0"), "%s",
              cleared);
    tu_http_resp_free(&r);
    free(h);
    st = with_cookie(&S, &a, false, "GET", "/v1/devices", NULL, &j);
    assert_expired(st, j);
    json_decref(j);
    st = with_cookie(&S, &a, true, "POST", "/v1/device-groups",
                     "{\"name\":\"after-signout\",\"devices\":[]}", &j);
    assert_expired(st, j);
    json_decref(j);
    cr_assert_eq(group_count(&S), groups + 2);
    cr_assert_eq(with_cookie(&S, &a, false, "GET", "/v1/sessions/current", NULL, &j), 401);
    json_decref(j);

    /* A cookie that was never issued, and a malformed one. */
    struct sess forged = a;
    snprintf(forged.cookie, sizeof(forged.cookie), "%s",
             "scepter_session=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
    st = with_cookie(&S, &forged, false, "GET", "/v1/devices", NULL, &j);
    assert_expired(st, j);
    json_decref(j);
    snprintf(forged.cookie, sizeof(forged.cookie), "%s", "scepter_session=../../x");
    cr_assert_eq(with_cookie(&S, &forged, false, "GET", "/v1/devices", NULL, &j), 401);
    json_decref(j);

    cr_assert_eq(event_count(&S, "console.SignIn"), 2);
    cr_assert_eq(event_count(&S, "console.SignOut"), 1);
    cr_assert_eq(event_count(&S, "console.SignInRefused"), 1);
    cr_assert(log_contains(&S, "console_signin"));
    cr_assert(log_contains(&S, "console_csrf_refused"));
    h_stop(&S);
}

/*
 * Timing on a loaded machine: every assertion is made only where the client's clock (the
 * server's, in whole seconds) proves what the answer must be.
 */
Test(console, sessions_end_after_their_lifetime_and_when_idle)
{
    struct h_server S;
    struct h_opts o = {.extra = "console_session_ttl = 8\nconsole_session_idle = 3\n"};
    json_t *j = NULL;
    int st;
    h_start(&S, &o);

    int64_t t0 = (int64_t)time(NULL);
    struct sess busy = sign_in(&S, H_API_KEY);
    struct sess idle = sign_in(&S, H_API_KEY);
    int64_t t1 = (int64_t)time(NULL);
    cr_assert(busy.expires >= t0 + 8 && busy.expires <= t1 + 8, "expires_at is sign-in + ttl");
    int64_t created = busy.expires - 8;

    /* busy is used every second until past its lifetime: it outlives the idle timeout. */
    int64_t prev_before = t0, last_ok = 0;
    bool idle_checked = false, ended = false;
    for (int i = 0; i < 40 && !ended; i++) {
        sleep(1);
        if (!idle_checked && (int64_t)time(NULL) >= t1 + 4) {
            /* idle was last used at sign-in, 4 s or more ago: over the 3 s timeout. */
            int64_t before = (int64_t)time(NULL);
            st = with_cookie(&S, &idle, false, "GET", "/v1/devices", NULL, &j);
            assert_expired(st, j);
            json_decref(j);
            if (before < idle.expires - 1)
                cr_assert(log_contains(&S, "idle longer than console_session_idle"));
            idle_checked = true;
        }
        int64_t before = (int64_t)time(NULL);
        st = with_cookie(&S, &busy, false, "GET", "/v1/devices", NULL, &j);
        int64_t after = (int64_t)time(NULL);
        if (before >= busy.expires) {
            assert_expired(st, j);
            ended = true;
        } else if (after < busy.expires && after - prev_before <= 3) {
            cr_assert_eq(st, 200, "at %+lld s: %s", (long long)(after - created), h_json(j));
            last_ok = after;
        }
        json_decref(j);
        prev_before = before;
    }
    cr_assert(idle_checked);
    cr_assert(ended, "the session outlived its lifetime");
    cr_assert(log_contains(&S, "past console_session_ttl"));
    cr_assert_geq(last_ok, created + 4, "a session in use outlives the idle timeout");
    h_stop(&S);
}

Test(console, failed_sign_ins_are_limited_per_address)
{
    struct h_server S;
    struct tu_http_resp r;
    json_t *j = NULL;
    h_start(&S, NULL);

    for (int i = 0; i < 10; i++) {
        req(&S, "POST", "/v1/sessions", NULL, "{\"api_key\":\"guess-0123456789abcdef\"}", &r);
        cr_assert_eq(r.status, 401, "attempt %d: %d", i + 1, r.status);
        tu_http_resp_free(&r);
    }
    req(&S, "POST", "/v1/sessions", NULL, "{\"api_key\":\"guess-0123456789abcdef\"}", &r);
    cr_assert_eq(r.status, 429);
    cr_assert_not_null(header(&r, "Retry-After"));
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "api_key");
    json_decref(j);
    tu_http_resp_free(&r);
    /* Even the right key waits: the address is not guessing any more for now. */
    req(&S, "POST", "/v1/sessions", NULL, "{\"api_key\":\"" H_API_KEY "\"}", &r);
    cr_assert_eq(r.status, 429);
    cr_assert_null(header(&r, "Set-Cookie"));
    tu_http_resp_free(&r);
    /* Scripts with a Bearer key are not affected. */
    cr_assert_eq(h_api(&S, "GET", "/v1/devices", NULL, NULL), 200);
    cr_assert_eq(event_count(&S, "console.SignInRefused"), 10);
    h_stop(&S);
}

/* ---------------------------------------------------------------------------------------- */
/* The console's files                                                                       */

static void assert_console_headers(const struct tu_http_resp *r, const char *what)
{
    const char *csp = header(r, "Content-Security-Policy");
    cr_assert_not_null(csp, "%s: no CSP", what);
    cr_assert_str_eq(csp, CSP, "%s", what);
    cr_assert_str_eq(header(r, "X-Content-Type-Options"), "nosniff", "%s", what);
    cr_assert_str_eq(header(r, "Referrer-Policy"), "no-referrer", "%s", what);
}

static void assert_file(struct h_server *s, const char *path, const char *file, const char *type)
{
    struct tu_http_resp r;
    char *src = tu_source_path(file);
    size_t len = 0;
    unsigned char *want = tu_read(src, &len);

    req(s, "GET", path, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s: %d", path, r.status);
    assert_console_headers(&r, path);
    cr_assert_str_eq(header(&r, "Content-Type"), type, "%s", path);
    cr_assert_eq(r.body_len, len, "%s: the embedded copy of %s", path, file);
    cr_assert(memcmp(r.body, want, len) == 0, "%s: the embedded copy of %s", path, file);
    tu_http_resp_free(&r);
    free(want);
    free(src);
}

Test(console, files_headers_redirects_and_refusals)
{
    struct h_server S;
    struct tu_http_resp r;
    h_start(&S, NULL);

    assert_file(&S, "/console/", "console/index.html", "text/html; charset=utf-8");
    req(&S, "GET", "/console/", NULL, NULL, &r);
    cr_assert_str_eq(header(&r, "Cache-Control"), "no-store");
    tu_http_resp_free(&r);
    assert_file(&S, "/console/index.html", "console/index.html", "text/html; charset=utf-8");
    assert_file(&S, "/console/js/app.js", "console/js/app.js", "text/javascript; charset=utf-8");

    /* No inline script in the page the CSP protects. */
    char *src = tu_source_path("console/index.html");
    char *html = (char *)tu_read(src, NULL);
    for (const char *p = html; (p = strstr(p, "<script")) != NULL; p++) {
        const char *end = strchr(p, '>');
        cr_assert(end && memmem(p, (size_t)(end - p), "src=", 4) != NULL,
                  "index.html has an inline script");
        cr_assert(strncmp(end, "></script>", 10) == 0, "index.html has an inline script");
    }
    free(html);
    free(src);

    /* Browsers asking for / go to the console; API clients still get 404 there. */
    req(&S, "GET", "/", "Accept: text/html,application/xhtml+xml;q=0.9\r\n", NULL, &r);
    cr_assert_eq(r.status, 302);
    cr_assert_str_eq(header(&r, "Location"), "/console/");
    assert_console_headers(&r, "/ redirect");
    tu_http_resp_free(&r);
    req(&S, "GET", "/", "Accept: application/json\r\n", NULL, &r);
    cr_assert_eq(r.status, 404);
    tu_http_resp_free(&r);
    req(&S, "GET", "/console", NULL, NULL, &r);
    cr_assert_eq(r.status, 301);
    cr_assert_str_eq(header(&r, "Location"), "/console/");
    tu_http_resp_free(&r);

    req(&S, "GET", "/console/no-such-file.js", NULL, NULL, &r);
    cr_assert_eq(r.status, 404);
    assert_console_headers(&r, "404");
    tu_http_resp_free(&r);
    req(&S, "POST", "/console/", NULL, "{}", &r);
    cr_assert_eq(r.status, 405);
    assert_console_headers(&r, "405");
    tu_http_resp_free(&r);

    /* Nothing outside the console, however the path is spelled. */
    static const char *const escapes[] = {
        "/console/../scepter.conf",
        "/console/%2e%2e/scepter.conf",
        "/console/%2E%2E%2Fscepter.conf",
        "/console/..%2fscepter.conf",
        "/console/%252e%252e/scepter.conf",
        "/console/..%5cscepter.conf",
        "/console/./index.html",
        "/console//index.html",
        "/console/css/../../scepter.conf",
    };
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        req(&S, "GET", escapes[i], NULL, NULL, &r);
        cr_assert(r.status == 400 || r.status == 404, "%s: %d", escapes[i], r.status);
        cr_assert(r.body_len == 0 || memmem(r.body, r.body_len, "api_key", 7) == NULL,
                  "%s: served the configuration", escapes[i]);
        tu_http_resp_free(&r);
    }
    h_stop(&S);
}
