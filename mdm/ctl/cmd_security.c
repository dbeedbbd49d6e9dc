/*
 * scepterctl command groups for who may talk as a device and who may enroll: cert (revoke a
 * device certificate, list revocations), enrollment-token (tokens for /mdm/enroll?token=) and
 * events (the security event log).  Device removal and re-enrollment windows are actions of
 * `scepterctl device` (cmd_api.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"

static int usage(const char *what, const char *text)
{
    fprintf(stderr, "usage: scepterctl %s %s\n", what, text);
    return CTL_USAGE;
}

/* Call, then print the reply as JSON (--json) or through fn. */
static int call_show(const char *method, const char *path, json_t *body, void (*fn)(json_t *))
{
    json_t *r = NULL;
    int rc = ctl_call(method, path, body, &r);

    if (rc == CTL_OK) {
        if (ctl_conn()->json || fn == NULL)
            ctl_print_json(r);
        else
            fn(r);
    }
    json_decref(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* cert                                                                                      */

static void print_revoked(json_t *r)
{
    const char *udid = json_string_value(json_object_get(r, "udid"));

    printf("certificate %s %s%s%s\n", json_string_value(json_object_get(r, "cert_sha256")),
           json_is_true(json_object_get(r, "already_revoked")) ? "was already revoked" : "revoked",
           udid ? "; it was bound to " : "", udid ? udid : "");
}

static void print_revocations(json_t *r)
{
    static const char *const cols[] = {"cert_sha256", "udid", "reason", "revoked_at", NULL};
    static const char *const heads[] = {"SHA-256", "DEVICE", "REASON", "REVOKED", NULL};
    ctl_print_table(json_object_get(r, "revocations"), cols, heads);
}

int cmd_cert(int argc, char **argv)
{
    const char *reason = NULL, *device = NULL, *limit = NULL, *pos[1];
    struct ctl_opt opts[] = {{"reason", true, &reason},
                             {"device", true, &device},
                             {"limit", true, &limit},
                             {NULL, false, NULL}};
    size_t npos = 0;
    char *path = NULL;
    int rc;

    argc--;
    argv++;
    if (argc < 1 || ctl_parse_opts("scepterctl cert", argc, argv, opts, pos, 1, &npos) != 0)
        return usage("cert", "revoke SHA256 [--reason R] | revocations [--device UDID] "
                             "[--limit N]");
    if (strcmp(argv[0], "revoke") == 0 && npos == 1) {
        json_t *body = reason ? json_pack("{s:s}", "reason", reason) : NULL;
        path = ctl_path("/v1/certificates/%s/revoke", pos[0]);
        rc = call_show("POST", path, body, print_revoked);
        json_decref(body);
    } else if (strcmp(argv[0], "revocations") == 0 && npos == 0) {
        struct buf q = BUF_INIT;
        ctl_query_add(&q, "udid", device);
        ctl_query_add(&q, "limit", limit);
        path = xasprintf("/v1/revocations%s", q.data ? q.data : "");
        buf_free(&q);
        rc = call_show("GET", path, NULL, print_revocations);
    } else {
        return usage("cert", "revoke SHA256 [--reason R] | revocations [--device UDID] "
                             "[--limit N]");
    }
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* enrollment-token                                                                          */

static void print_token(json_t *r)
{
    printf("enrollment token %lld: %s\n"
           "  uses: %lld (0 = unlimited), expires: %s\n"
           "  devices enroll with /mdm/enroll?token=<token>; it is shown only now\n",
           (long long)json_integer_value(json_object_get(r, "id")),
           json_string_value(json_object_get(r, "token")),
           (long long)json_integer_value(json_object_get(r, "uses")),
           json_string_value(json_object_get(r, "expires_at")));
}

static void print_tokens(json_t *r)
{
    static const char *const cols[] = {"id",         "note",    "uses",      "used",
                                       "expires_at", "created", "last_used", NULL};
    static const char *const heads[] = {"ID",      "NOTE",    "USES",      "USED",
                                        "EXPIRES", "CREATED", "LAST USED", NULL};
    ctl_print_table(json_object_get(r, "enrollment_tokens"), cols, heads);
    if (json_is_false(json_object_get(r, "accepted")))
        printf("note: the server does not accept tokens (enroll_tokens = false)\n");
}

int cmd_enrollment_token(int argc, char **argv)
{
    const char *uses = NULL, *expires = NULL, *note = NULL, *pos[1];
    struct ctl_opt opts[] = {{"uses", true, &uses},
                             {"expires", true, &expires},
                             {"note", true, &note},
                             {NULL, false, NULL}};
    size_t npos = 0;
    char *path = NULL;
    int rc;

    argc--;
    argv++;
    if (argc < 1 ||
        ctl_parse_opts("scepterctl enrollment-token", argc, argv, opts, pos, 1, &npos) != 0)
        goto bad;
    if (strcmp(argv[0], "create") == 0 && npos == 0) {
        int64_t n = 1;
        if (uses && str_to_i64(uses, 0, 1000000, &n) != 0)
            return usage("enrollment-token", "create: --uses is 0 (unlimited) to 1000000");
        json_t *body =
            json_pack("{s:I,s:s}", "uses", (json_int_t)n, "expires_in", expires ? expires : "7d");
        if (note)
            json_object_set_new(body, "note", json_string(note));
        rc = call_show("POST", "/v1/enrollment-tokens", body, print_token);
        json_decref(body);
    } else if (strcmp(argv[0], "list") == 0 && npos == 0) {
        rc = call_show("GET", "/v1/enrollment-tokens", NULL, print_tokens);
    } else if (strcmp(argv[0], "delete") == 0 && npos == 1) {
        path = ctl_path("/v1/enrollment-tokens/%s", pos[0]);
        rc = call_show("DELETE", path, NULL, NULL);
    } else {
        goto bad;
    }
    free(path);
    return rc;
bad:
    return usage("enrollment-token", "create [--uses N] [--expires 7d] [--note TEXT]\n"
                                     "       scepterctl enrollment-token list\n"
                                     "       scepterctl enrollment-token delete ID");
}

/* ---------------------------------------------------------------------------------------- */
/* events                                                                                    */

static void print_events(json_t *r)
{
    json_t *ev = json_object_get(r, "events"), *e;
    size_t i;

    json_array_foreach(ev, i, e)
    {
        char *detail = json_dumps(json_object_get(e, "detail"), JSON_COMPACT | JSON_SORT_KEYS);
        const char *udid = json_string_value(json_object_get(e, "udid"));
        printf("%s  %-22s %-40s %s\n", json_string_value(json_object_get(e, "created")),
               json_string_value(json_object_get(e, "kind")), udid ? udid : "-",
               detail ? detail : "{}");
        free(detail);
    }
}

int cmd_events(int argc, char **argv)
{
    const char *device = NULL, *kind = NULL, *limit = NULL, *pos[1];
    struct ctl_opt opts[] = {{"device", true, &device},
                             {"kind", true, &kind},
                             {"limit", true, &limit},
                             {NULL, false, NULL}};
    size_t npos = 0;
    char *path;
    int rc;

    /* argv[0] is "events" itself: no action follows */
    if (ctl_parse_opts("scepterctl events", argc, argv, opts, pos, 0, &npos) != 0)
        return usage("events", "[--device UDID] [--kind K] [--limit N]");
    {
        struct buf q = BUF_INIT;
        ctl_query_add(&q, "udid", device);
        ctl_query_add(&q, "kind", kind);
        ctl_query_add(&q, "limit", limit);
        path = xasprintf("/v1/events%s", q.data ? q.data : "");
        buf_free(&q);
    }
    rc = call_show("GET", path, NULL, print_events);
    free(path);
    return rc;
}
