/*
 * Operator accounts, roles and the audit log over HTTPS, on both stores.
 *
 * The role table: every row of the server's own route table (mdm_api_routes, so a route
 * added later cannot be missed) is called by an admin, an operator and a viewer account
 * (console sessions, with CSRF) and by an API key of each role (Authorization: Bearer):
 * allowed (anything but 401/403) exactly when the actor's role reaches the route's, else 403
 * naming the role needed.  The accounts: the first admin from the configuration, an account
 * made by an admin, signing in as it, changing its password (its other sessions end), an
 * admin's reset (all end), disabling, the last admin kept, failed sign-ins limited per name
 * and per address, and the audit log holding each change with the right actor.  And the
 * command lines: scepterctl operator and scepter operator bootstrap.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "harness.h"
#include "mdm/api_int.h"
#include "support/rawsrv.h"
#include "support/support.h"

#define ROOT_PW  "root-password-0123"
#define ALICE_PW "alice-password-0123"

/* One keep-alive connection for the many requests of a test (a TLS handshake each would
 * make the role table slow on a loaded machine); made again when the server closed it. */
static struct tu_http_conn *g_conn;
static int g_conn_port;

static int send_req(struct h_server *s, const char *method, const char *path, const char *h,
                    const char *body, struct tu_http_resp *r)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (g_conn == NULL || g_conn_port != s->port) {
            tu_http_close(g_conn);
            g_conn = tu_http_connect(s->port, true, NULL, NULL);
            g_conn_port = s->port;
            if (g_conn == NULL)
                return -1;
        }
        if (tu_http_do(g_conn, method, path, h, body, body ? strlen(body) : 0, r) == 0)
            return 0;
        tu_http_close(g_conn);
        g_conn = NULL;
    }
    return -1;
}

/* One request with extra header lines; asserts an answer. */
static int req(struct h_server *s, const char *method, const char *path, const char *headers,
               const char *body, json_t **out, char *cookie_out, size_t cookie_len)
{
    struct tu_http_resp r;
    char *h =
        xasprintf("%s%s", body ? "Content-Type: application/json\r\n" : "", headers ? headers : "");
    cr_assert_eq(send_req(s, method, path, h, body, &r), 0, "%s %s: no answer", method, path);
    free(h);
    if (out) {
        json_error_t jerr;
        *out = r.body_len ? json_loadb((const char *)r.body, r.body_len, 0, &jerr) : NULL;
    }
    if (cookie_out) {
        char sc[512];
        const char *v = tu_http_header(&r, "Set-Cookie", sc, sizeof(sc));
        snprintf(cookie_out, cookie_len, "%.*s", v ? (int)strcspn(v, ";") : 0, v ? v : "");
    }
    int st = r.status;
    tu_http_resp_free(&r);
    return st;
}

/* Someone calling the API: a console session (cookie and CSRF token) or a Bearer key. */
struct actor {
    const char *label;
    enum store_role role;
    char name[64], secret[128]; /* account name and password, or "" and the key */
    char cookie[128], csrf[128];
};

/* Sign in (name and password, or the key); asserts 201 and the actor of the answer. */
static void sign_in(struct h_server *s, struct actor *a)
{
    json_t *j = NULL;
    char *body = a->name[0] ? xasprintf("{\"name\":\"%s\",\"password\":\"%s\"}", a->name, a->secret)
                            : xasprintf("{\"api_key\":\"%s\"}", a->secret);
    int st = req(s, "POST", "/v1/sessions", NULL, body, &j, a->cookie, sizeof(a->cookie));
    cr_assert_eq(st, 201, "%s: sign-in %d %s", a->label, st, h_json(j));
    json_t *actor = json_object_get(j, "actor");
    cr_assert_str_eq(json_string_value(json_object_get(actor, "type")),
                     a->name[0] ? "operator" : "api_key", "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(actor, "role")), store_role_name(a->role),
                     "%s", h_json(j));
    if (a->name[0])
        cr_assert_str_eq(json_string_value(json_object_get(actor, "name")), a->name);
    snprintf(a->csrf, sizeof(a->csrf), "%s", json_string_value(json_object_get(j, "csrf_token")));
    json_decref(j);
    free(body);
}

/* A call as a: with its session when it has one, else its key. */
static int call(struct h_server *s, const struct actor *a, const char *method, const char *path,
                const char *body, json_t **out)
{
    char *h = a->cookie[0] ? xasprintf("Cookie: %s\r\nX-CSRF-Token: %s\r\n", a->cookie, a->csrf)
                           : xasprintf("Authorization: Bearer %s\r\n", a->secret);
    int st = req(s, method, path, h, body, out, NULL, 0);
    free(h);
    return st;
}

static void start_with(struct h_server *s, const char *more)
{
    char *dir = tu_tmpdir();
    char *pwfile = xasprintf("%s/root.pw", dir);
    FILE *fp = fopen(pwfile, "w");
    cr_assert_not_null(fp);
    fputs(ROOT_PW "\n", fp);
    fclose(fp);
    char *extra = xasprintf("bootstrap_admin_name = root\n"
                            "bootstrap_admin_password_file = %s\n%s",
                            pwfile, more ? more : "");
    struct h_opts o = {.extra = extra};
    h_start(s, &o);
    free(extra);
    free(pwfile);
    free(dir);
}

static void start(struct h_server *s)
{
    start_with(s, NULL);
}

static void make_account(struct h_server *s, struct actor *admin, const char *name,
                         const char *role, const char *pw)
{
    json_t *j = NULL;
    char *body = xasprintf("{\"name\":\"%s\",\"role\":\"%s\",\"password\":\"%s\"}", name, role, pw);
    int st = call(s, admin, "POST", "/v1/operators", body, &j);
    cr_assert_eq(st, 201, "create %s: %d %s", name, st, h_json(j));
    json_decref(j);
    free(body);
}

static void make_key(struct h_server *s, const char *role, char *out, size_t outlen)
{
    json_t *j = NULL;
    char *body = xasprintf("{\"name\":\"key-%s\",\"role\":\"%s\"}", role, role);
    cr_assert_eq(h_api(s, "POST", "/v1/apikeys", body, &j), 201, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "role")), role);
    snprintf(out, outlen, "%s", json_string_value(json_object_get(j, "key")));
    json_decref(j);
    free(body);
}

/* The route's pattern with every {x} replaced by a value that names nothing. */
static char *concrete(const char *pattern)
{
    char out[512] = "";
    const char *p = pattern;

    while (*p) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            size_t len = (size_t)(end - p - 1);
            const char *v = "no-such-thing";
            if (len == 2 && strncmp(p + 1, "id", 2) == 0)
                v = "987654";
            else if (len == 6 && strncmp(p + 1, "sha256", 6) == 0)
                v = "00000000000000000000000000000000000000000000000000000000000000aa";
            else if (len == 4 && strncmp(p + 1, "uuid", 4) == 0)
                v = "0badc0de-0000-4000-8000-000000000000";
            else if (len == 6 && strncmp(p + 1, "serial", 6) == 0)
                v = "0a0b0c";
            strncat(out, v, sizeof(out) - strlen(out) - 1);
            p = end + 1;
        } else {
            strncat(out, p, 1);
            p++;
        }
    }
    return xstrdup(out);
}

static const char *method_name(enum mdm_method m)
{
    return api_method_name(m);
}

Test(roles, every_route_for_every_role)
{
    struct h_server S;
    struct actor actors[6] = {
        {.label = "admin account", .role = STORE_ROLE_ADMIN, .name = "root", .secret = ROOT_PW},
        {.label = "operator account",
         .role = STORE_ROLE_OPERATOR,
         .name = "olivia",
         .secret = "olivia-password-0123"},
        {.label = "viewer account",
         .role = STORE_ROLE_VIEWER,
         .name = "victor",
         .secret = "victor-password-0123"},
        {.label = "admin key", .role = STORE_ROLE_ADMIN},
        {.label = "operator key", .role = STORE_ROLE_OPERATOR},
        {.label = "viewer key", .role = STORE_ROLE_VIEWER},
    };
    size_t n;
    const struct api_route *routes = mdm_api_routes(&n);
    size_t allowed = 0, refused = 0;

    start(&S);
    sign_in(&S, &actors[0]);
    make_account(&S, &actors[0], "olivia", "operator", actors[1].secret);
    make_account(&S, &actors[0], "victor", "viewer", actors[2].secret);
    sign_in(&S, &actors[1]);
    sign_in(&S, &actors[2]);
    make_key(&S, "admin", actors[3].secret, sizeof(actors[3].secret));
    make_key(&S, "operator", actors[4].secret, sizeof(actors[4].secret));
    make_key(&S, "viewer", actors[5].secret, sizeof(actors[5].secret));

    for (size_t r = 0; r < n; r++) {
        char *path = concrete(routes[r].pattern);
        const char *m = method_name(routes[r].method);
        for (size_t a = 0; a < ARRAY_LEN(actors); a++) {
            /* The session's own routes need a session: a fresh one each time, for signing out
             * must not end the one the table goes on with.  Keys sign in with the key. */
            struct actor who = actors[a];
            if (strncmp(routes[r].pattern, "/v1/sessions/current", 20) == 0)
                sign_in(&S, &who);
            json_t *j = NULL;
            int st = call(&S, &who, m, path, NULL, &j);
            bool want = api_role_allows(routes[r].role, who.role);
            if (want) {
                cr_assert(st != 401 && st != 403, "%s %s as %s: %d %s (the %s role suffices)", m,
                          path, who.label, st, h_json(j), api_role_name(routes[r].role));
                allowed++;
            } else {
                cr_assert_eq(st, 403, "%s %s as %s: %d %s, but it needs %s", m, path, who.label, st,
                             h_json(j), api_role_name(routes[r].role));
                cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "role", "%s",
                                 h_json(j));
                cr_assert_str_eq(json_string_value(json_object_get(j, "required_role")),
                                 api_role_name(routes[r].role), "%s", h_json(j));
                cr_assert_not_null(strstr(json_string_value(json_object_get(j, "error")),
                                          api_role_name(routes[r].role)),
                                   "%s", h_json(j));
                refused++;
            }
            json_decref(j);
        }
        free(path);
    }
    cr_assert_gt(allowed, n, "most calls are allowed to someone");
    cr_assert_gt(refused, 20, "and many are refused");
    /* A well-formed change sent by a viewer (its session with the CSRF token, or its key) is
     * refused like the empty ones, and changes nothing. */
    json_t *j = NULL;
    for (size_t a = 2; a < ARRAY_LEN(actors); a += 3) {
        cr_assert_eq(call(&S, &actors[a], "POST", "/v1/device-groups", "{\"name\":\"forged\"}", &j),
                     403, "%s: %s", actors[a].label, h_json(j));
        json_decref(j);
    }
    cr_assert_eq(call(&S, &actors[2], "GET", "/v1/device-groups/forged", NULL, &j), 404, "%s",
                 h_json(j));
    json_decref(j);
    /* Nothing the viewer did was a change: the audit log has only its sign-ins and sign-outs. */
    cr_assert_eq(call(&S, &actors[0], "GET", "/v1/audit?actor=victor&limit=1000", NULL, &j), 200);
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(j, "entries"), i, e)
    {
        const char *action = json_string_value(json_object_get(e, "action"));
        cr_assert(strncmp(action, "session.", 8) == 0, "the viewer changed something: %s",
                  h_json(e));
    }
    json_decref(j);
    h_stop(&S);
}

/* Entries of the audit log matching a query, as the admin sees them. */
static json_t *audit(struct h_server *s, struct actor *admin, const char *query)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/audit%s", query);
    int st = call(s, admin, "GET", path, NULL, &j);
    cr_assert_eq(st, 200, "%s: %d %s", path, st, h_json(j));
    free(path);
    return j;
}

/* The newest entry with this action, asserted to exist. */
static json_t *newest(json_t *list, const char *action)
{
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(list, "entries"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "action")), action) == 0)
            return e;
    }
    cr_assert_fail("no %s entry in %s", action, h_json(list));
    return NULL;
}

static void assert_actor(json_t *e, const char *type, const char *name)
{
    json_t *a = json_object_get(e, "actor");
    cr_assert_str_eq(json_string_value(json_object_get(a, "type")), type, "%s", h_json(e));
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), name, "%s", h_json(e));
    cr_assert_str_eq(json_string_value(json_object_get(e, "address")), "127.0.0.1", "%s",
                     h_json(e));
}

Test(roles, accounts_passwords_sessions_and_the_audit_log)
{
    struct h_server S;
    struct actor root = {
        .label = "root", .role = STORE_ROLE_ADMIN, .name = "root", .secret = ROOT_PW};
    struct actor a1 = {
        .label = "alice 1", .role = STORE_ROLE_OPERATOR, .name = "alice", .secret = ALICE_PW};
    struct actor a2, a3;
    json_t *j = NULL, *list;
    int st;

    start(&S);
    sign_in(&S, &root);
    cr_assert_eq(call(&S, &root, "GET", "/v1/sessions/current", NULL, &j), 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "actor"), "name")),
                     "root", "%s", h_json(j));
    json_decref(j);

    /* Bad accounts are refused naming the field. */
    static const struct {
        const char *body, *field;
        int status;
    } bad[] = {
        {"{\"name\":\"alice\",\"role\":\"operator\",\"password\":\"short\"}", "password", 400},
        {"{\"name\":\"al ice\",\"role\":\"operator\",\"password\":\"long-enough-pw-1\"}", "name",
         400},
        {"{\"name\":\"alice\",\"role\":\"boss\",\"password\":\"long-enough-pw-1\"}", "role", 400},
        {"{\"name\":\"alice\",\"role\":\"operator\"}", "password", 400},
        {"{\"name\":\"root\",\"role\":\"operator\",\"password\":\"long-enough-pw-1\"}", "name",
         409},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        st = call(&S, &root, "POST", "/v1/operators", bad[i].body, &j);
        cr_assert_eq(st, bad[i].status, "%s: %d %s", bad[i].body, st, h_json(j));
        cr_assert_str_eq(json_string_value(json_object_get(j, "field")), bad[i].field, "%s",
                         h_json(j));
        json_decref(j);
    }
    make_account(&S, &root, "alice", "operator", ALICE_PW);
    cr_assert_eq(call(&S, &root, "GET", "/v1/operators", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "operators")), 2, "%s", h_json(j));
    json_decref(j);

    /* Alice signs in twice, changes her password in the first session: the other ends. */
    sign_in(&S, &a1);
    a2 = a1;
    a2.label = "alice 2";
    sign_in(&S, &a2);
    st = call(&S, &a1, "POST", "/v1/sessions/current/password",
              "{\"current_password\":\"wrong-password-000\",\"new_password\":\"a-new-password-1\"}",
              &j);
    cr_assert_eq(st, 400, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "current_password");
    json_decref(j);
    st = call(&S, &a1, "POST", "/v1/sessions/current/password",
              "{\"current_password\":\"" ALICE_PW "\",\"new_password\":\"short\"}", &j);
    cr_assert_eq(st, 400, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "new_password");
    json_decref(j);
    st = call(&S, &a1, "POST", "/v1/sessions/current/password",
              "{\"current_password\":\"" ALICE_PW "\",\"new_password\":\"a-new-password-1\"}", &j);
    cr_assert_eq(st, 204, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(call(&S, &a2, "GET", "/v1/devices", NULL, NULL), 401, "the other session ended");
    cr_assert_eq(call(&S, &a1, "GET", "/v1/devices", NULL, NULL), 200, "this one stays");
    st = req(&S, "POST", "/v1/sessions", NULL, "{\"name\":\"alice\",\"password\":\"" ALICE_PW "\"}",
             NULL, NULL, 0);
    cr_assert_eq(st, 401, "the old password is gone");
    a3 = a1;
    snprintf(a3.secret, sizeof(a3.secret), "a-new-password-1");
    sign_in(&S, &a3);

    /* What alice may do as an operator, and may not. */
    cr_assert_eq(call(&S, &a1, "POST", "/v1/device-groups", "{\"name\":\"lab\"}", &j), 201, "%s",
                 h_json(j));
    json_decref(j);
    cr_assert_eq(call(&S, &a1, "GET", "/v1/operators", NULL, &j), 403, "%s", h_json(j));
    json_decref(j);

    /* An admin's reset ends every session of the account. */
    cr_assert_eq(
        call(&S, &root, "PATCH", "/v1/operators/alice", "{\"password\":\"reset-by-root-123\"}", &j),
        200, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(call(&S, &a1, "GET", "/v1/devices", NULL, NULL), 401);
    cr_assert_eq(call(&S, &a3, "GET", "/v1/devices", NULL, NULL), 401);
    snprintf(a1.secret, sizeof(a1.secret), "reset-by-root-123");
    a1.cookie[0] = '\0';
    sign_in(&S, &a1);
    /* Demoted: the session follows at once. */
    cr_assert_eq(call(&S, &root, "PATCH", "/v1/operators/alice", "{\"role\":\"viewer\"}", &j), 200,
                 "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "role")), "viewer");
    json_decref(j);
    cr_assert_eq(call(&S, &a1, "DELETE", "/v1/device-groups/lab", NULL, &j), 403, "%s", h_json(j));
    json_decref(j);
    /* Disabled: the session ends, sign-in is refused like a wrong password. */
    cr_assert_eq(call(&S, &root, "PATCH", "/v1/operators/alice", "{\"disabled\":true}", &j), 200,
                 "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(call(&S, &a1, "GET", "/v1/devices", NULL, NULL), 401);
    st = req(&S, "POST", "/v1/sessions", NULL,
             "{\"name\":\"alice\",\"password\":\"reset-by-root-123\"}", &j, NULL, 0);
    cr_assert_eq(st, 401, "%s", h_json(j));
    json_decref(j);

    /* The last enabled admin stays one. */
    static const char *const last[] = {"{\"role\":\"operator\"}", "{\"disabled\":true}"};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(call(&S, &root, "PATCH", "/v1/operators/root", last[i], &j), 409, "%s",
                     h_json(j));
        json_decref(j);
    }
    cr_assert_eq(call(&S, &root, "DELETE", "/v1/operators/root", NULL, &j), 409, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(call(&S, &root, "DELETE", "/v1/operators/alice", NULL, NULL), 204);
    cr_assert_eq(call(&S, &root, "DELETE", "/v1/operators/alice", NULL, NULL), 404);

    /* A change made with the configuration's key. */
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"by-key\"}", NULL), 201);

    /* The audit log: each change with its actor, newest first. */
    list = audit(&S, &root, "?limit=1000");
    assert_actor(newest(list, "operator.delete"), "operator", "root");
    json_t *e = newest(list, "operator.create");
    assert_actor(e, "operator", "root");
    cr_assert_str_eq(json_string_value(json_object_get(e, "object")), "alice");
    cr_assert_str_eq(json_string_value(json_object_get(e, "route")), "POST /v1/operators");
    cr_assert_null(strstr(h_json(list), ALICE_PW), "a password in the audit log");
    cr_assert_null(strstr(h_json(list), "reset-by-root-123"), "a password in the audit log");
    cr_assert_null(strstr(h_json(list), "a-new-password-1"), "a password in the audit log");
    e = newest(list, "operator.update");
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")),
                     "disabled false -> true; 1 sessions revoked", "%s", h_json(e));
    e = newest(list, "session.password");
    assert_actor(e, "operator", "alice");
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")),
                     "password changed; 1 other sessions revoked", "%s", h_json(e));
    e = newest(list, "group.create");
    assert_actor(e, "api_key", "bootstrap");
    cr_assert_str_eq(json_string_value(json_object_get(e, "object")), "by-key", "%s", h_json(e));
    e = newest(list, "session.fail");
    assert_actor(e, "operator", "alice");
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")), "account disabled");
    assert_actor(newest(list, "session.create"), "operator", "alice");
    /* The older group.create was alice's. */
    json_decref(list);
    list = audit(&S, &root, "?action=group.create");
    cr_assert_eq(json_array_size(json_object_get(list, "entries")), 2, "%s", h_json(list));
    assert_actor(json_array_get(json_object_get(list, "entries"), 1), "operator", "alice");
    json_decref(list);
    /* Filters and paging. */
    list = audit(&S, &root, "?actor=alice&action=session.*");
    size_t k;
    json_array_foreach(json_object_get(list, "entries"), k, e)
    {
        cr_assert(strncmp(json_string_value(json_object_get(e, "action")), "session.", 8) == 0);
    }
    cr_assert_geq(json_array_size(json_object_get(list, "entries")), 4, "%s", h_json(list));
    json_decref(list);
    list = audit(&S, &root, "?limit=2");
    cr_assert_eq(json_array_size(json_object_get(list, "entries")), 2);
    json_int_t next = json_integer_value(json_object_get(list, "next_before"));
    cr_assert_gt(next, 0, "%s", h_json(list));
    json_decref(list);
    char *q = xasprintf("?limit=2&before=%lld", (long long)next);
    list = audit(&S, &root, q);
    free(q);
    cr_assert_lt(json_integer_value(
                     json_object_get(json_array_get(json_object_get(list, "entries"), 0), "id")),
                 next);
    json_decref(list);
    cr_assert_eq(call(&S, &root, "GET", "/v1/audit?since=yesterday", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "since");
    json_decref(j);
    h_stop(&S);
}

Test(roles, failed_sign_ins_are_limited_per_name_and_per_address)
{
    struct h_server S;
    struct actor root = {
        .label = "root", .role = STORE_ROLE_ADMIN, .name = "root", .secret = ROOT_PW};
    json_t *j = NULL;
    int st;

    start(&S);
    sign_in(&S, &root);
    make_account(&S, &root, "carol", "viewer", "carol-password-0123");
    make_account(&S, &root, "dave", "viewer", "dave-password-01234");
    /* Wrong passwords for carol until her name is locked: 5 at once (a few more if the
     * machine is slow enough for the bucket to refill meanwhile). */
    int refused = 0, i;
    for (i = 0; i < 15; i++) {
        st = req(&S, "POST", "/v1/sessions", NULL,
                 "{\"name\":\"carol\",\"password\":\"guess-1234567\"}", &j, NULL, 0);
        if (st == 429)
            break;
        cr_assert_eq(st, 401, "attempt %d: %d %s", i + 1, st, h_json(j));
        json_decref(j);
        refused++;
    }
    cr_assert_eq(st, 429, "carol's name was never locked");
    cr_assert_geq(refused, 5, "locked after %d failures", refused);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "name", "%s", h_json(j));
    json_decref(j);
    /* Carol's name is locked, even with her password ... */
    st = req(&S, "POST", "/v1/sessions", NULL,
             "{\"name\":\"carol\",\"password\":\"carol-password-0123\"}", &j, NULL, 0);
    cr_assert_eq(st, 429, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "name");
    cr_assert_not_null(strstr(json_string_value(json_object_get(j, "error")), "this account"));
    json_decref(j);
    /* ... but not the address: dave signs in from it. */
    struct actor dave = {.label = "dave",
                         .role = STORE_ROLE_VIEWER,
                         .name = "dave",
                         .secret = "dave-password-01234"};
    sign_in(&S, &dave);
    /* Failures for other names until the address waits (10 at once). */
    for (i = 0; i < 30; i++) {
        char *body = xasprintf("{\"name\":\"nobody%d\",\"password\":\"guess-1234567\"}", i);
        st = req(&S, "POST", "/v1/sessions", NULL, body, &j, NULL, 0);
        free(body);
        if (st == 429)
            break;
        cr_assert_eq(st, 401, "attempt %d: %d %s", i + 1, st, h_json(j));
        json_decref(j);
        refused++;
    }
    cr_assert_eq(st, 429, "the address was never limited");
    cr_assert_geq(refused, 10);
    cr_assert_not_null(strstr(json_string_value(json_object_get(j, "error")), "from 127.0.0.1"),
                       "%s", h_json(j));
    json_decref(j);
    st = req(&S, "POST", "/v1/sessions", NULL,
             "{\"name\":\"dave\",\"password\":\"dave-password-01234\"}", &j, NULL, 0);
    cr_assert_eq(st, 429, "%s", h_json(j));
    json_decref(j);
    /* Every refusal is in the audit log (the 429s are not attempts). */
    json_t *list = audit(&S, &root, "?action=session.fail&limit=100");
    cr_assert_eq(json_array_size(json_object_get(list, "entries")), (size_t)refused, "%s",
                 h_json(list));
    json_decref(list);
    char *log = tu_proc_log(&S.proc);
    cr_assert_not_null(strstr(log, "console_signin_refused"));
    free(log);
    h_stop(&S);
}

/* scepterctl operator ... and scepter operator bootstrap. */
Test(roles, command_lines)
{
    struct h_server S;
    char *out = NULL;
    char *ctl = tu_binary_path("mdm/scepterctl");
    char *scepter = tu_binary_path("mdm/scepter");
    char *ca = NULL;
    int rc;

    start(&S);
    ca = xasprintf("%s/tls-ca.pem", S.dir);
#define CTL_IN(in, args)                                                                           \
    tu_sh(&out,                                                                                    \
          "printf '%%s\\n' '%s' | env SCEPTER_SERVER=https://127.0.0.1:%d SCEPTER_CA=%s "          \
          "SCEPTER_API_KEY=" H_API_KEY " %s " args " 2>&1",                                        \
          in, S.port, ca, ctl)
#define CTL(args) CTL_IN("", args)
    rc = CTL_IN("erin-password-0123", "operator create erin --role operator --password-stdin");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = CTL_IN("erin-password-0123", "operator create erin --role operator --password-stdin");
    cr_assert_eq(rc, 4, "a duplicate is a conflict: %s", out);
    free(out);
    rc = CTL_IN("short", "operator create frank --role operator --password-stdin");
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_not_null(strstr(out, "password: at least 12 characters"), "%s", out);
    free(out);
    rc = CTL("operator set-role erin viewer");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = CTL("operator list");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "erin"), "%s", out);
    cr_assert_not_null(strstr(out, "viewer"), "%s", out);
    free(out);
    rc = CTL("operator disable erin");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = CTL("apikey create readonly --role viewer");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = CTL("--json apikey list");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"role\": \"viewer\""), "%s", out);
    free(out);
    rc = CTL("audit --action 'operator.*' --limit 10");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "operator.create"), "%s", out);
    cr_assert_not_null(strstr(out, "api_key:bootstrap"), "%s", out);
    free(out);
    rc = CTL("operator delete erin");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);

    /* The first admin exists (from the configuration): bootstrap refuses without --force. */
    rc = tu_sh(&out,
               "echo second-password-012 | %s operator bootstrap second --password-stdin "
               "--config %s 2>&1",
               scepter, S.conf);
    cr_assert_eq(rc, 4, "%s", out);
    cr_assert_not_null(strstr(out, "--force"), "%s", out);
    free(out);
    rc = tu_sh(&out,
               "echo second-password-012 | %s operator bootstrap second --force "
               "--password-stdin --config %s 2>&1",
               scepter, S.conf);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    struct actor second = {.label = "second",
                           .role = STORE_ROLE_ADMIN,
                           .name = "second",
                           .secret = "second-password-012"};
    sign_in(&S, &second);
    free(ca);
    free(ctl);
    free(scepter);
    h_stop(&S);
}

/* Each audit entry also reaches the webhook as audit.<action>, with its actor and no secret. */
Test(roles, audit_entries_reach_the_webhook)
{
    struct tu_rawsrv *rs = tu_rawsrv_start();
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const struct tu_raw_reply good = {ok, 0, 0};
    tu_rawsrv_script(rs, &good, 1);
    char *more = xasprintf("webhook_url = http://127.0.0.1:%d/hook\nwebhook_audit = true\n",
                           tu_rawsrv_port(rs));
    struct h_server S;
    json_t *j = NULL, *ev = NULL;

    start_with(&S, more);
    cr_assert_eq(h_api(&S, "POST", "/v1/operators",
                       "{\"name\":\"zoe\",\"role\":\"viewer\",\"password\":\"zoe-password-0123\"}",
                       &j),
                 201, "%s", h_json(j));
    json_decref(j);
    for (int waited = 0; waited <= 20000 && ev == NULL; waited += 100) {
        size_t n = tu_rawsrv_count(rs);
        for (size_t i = 0; i < n && ev == NULL; i++) {
            char *body = tu_rawsrv_body(rs, i);
            cr_assert_null(strstr(body, "zoe-password-0123"), "a password in a webhook: %s", body);
            json_t *e = json_loads(body, 0, NULL);
            free(body);
            if (e && strcmp(json_string_value(json_object_get(e, "topic")),
                            "audit.operator.create") == 0)
                ev = e;
            else
                json_decref(e);
        }
        if (ev == NULL)
            usleep(100000);
    }
    cr_assert_not_null(ev, "no audit.operator.create webhook");
    json_t *d = json_object_get(ev, "event");
    cr_assert_str_eq(json_string_value(json_object_get(d, "action")), "operator.create");
    cr_assert_str_eq(json_string_value(json_object_get(d, "object")), "zoe", "%s", h_json(ev));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "actor"), "type")),
                     "api_key");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "actor"), "name")),
                     "bootstrap");
    cr_assert_str_eq(json_string_value(json_object_get(d, "summary")), "role viewer");
    json_decref(ev);
    h_stop(&S);
    tu_rawsrv_stop(rs);
    free(more);
}

/* An update's audit entry says what changed, before -> after, and never shows a secret. */
Test(roles, audit_entries_say_what_changed)
{
    struct h_server S;
    struct actor root = {
        .label = "root", .role = STORE_ROLE_ADMIN, .name = "root", .secret = ROOT_PW};
    static const char *const body =
        "{\"name\":\"%s\",\"platform\":\"macos\",\"scep\":{\"url\":\"http://127.0.0.1:9/scep\","
        "\"challenge\":\"%s\",\"key_size\":%d,\"subject\":\"/O=Scepter/CN=%%SerialNumber%%/\"},"
        "\"targets\":{\"device_groups\":[%s]}}";
    json_t *j = NULL, *list, *e;
    char *b, *path;
    const char *sum;

    start(&S);
    sign_in(&S, &root);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"g1\"}", NULL), 201);
    cr_assert_eq(h_api(&S, "POST", "/v1/device-groups", "{\"name\":\"g2\"}", NULL), 201);
    b = xasprintf(body, "Before", "old-challenge-1", 2048, "\"g1\"");
    cr_assert_eq(h_api(&S, "POST", "/v1/policies", b, &j), 201, "%s", h_json(j));
    free(b);
    path = xasprintf("/v1/policies/%lld", (long long)json_integer_value(json_object_get(j, "id")));
    json_decref(j);
    b = xasprintf(body, "After", "new-challenge-2", 4096, "\"g1\",\"g2\"");
    cr_assert_eq(call(&S, &root, "PUT", path, b, &j), 200, "%s", h_json(j));
    json_decref(j);
    free(b);
    free(path);
    cr_assert_eq(call(&S, &root, "PATCH", "/v1/device-groups/g2", "{\"name\":\"g3\"}", NULL), 200);

    list = audit(&S, &root, "?limit=100");
    e = newest(list, "policy.update");
    assert_actor(e, "operator", "root");
    sum = json_string_value(json_object_get(e, "summary"));
    cr_assert_not_null(strstr(sum, "name: \"Before\" -> \"After\""), "%s", sum);
    cr_assert_not_null(strstr(sum, "scep.key_size: 2048 -> 4096"), "%s", sum);
    cr_assert_not_null(strstr(sum, "targets.device_groups: [\"g1\"] -> [\"g1\",\"g2\"]"), "%s",
                       sum);
    cr_assert_not_null(strstr(sum, "scep.challenge changed"), "%s", sum);
    cr_assert_null(strstr(h_json(list), "old-challenge-1"), "a challenge in the audit log");
    cr_assert_null(strstr(h_json(list), "new-challenge-2"), "a challenge in the audit log");
    e = newest(list, "group.rename");
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")), "name: \"g2\" -> \"g3\"",
                     "%s", h_json(e));
    json_decref(list);
    h_stop(&S);
}
