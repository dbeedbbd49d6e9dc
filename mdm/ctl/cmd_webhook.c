/*
 * scepterctl webhook: the webhook's dead letters, events given up on after
 * webhook_max_attempts failed deliveries.
 *
 *   scepterctl webhook dead-letters [--limit N]   list them, newest first
 *   scepterctl webhook retry [ID]                 put one (or every one) back in the outbox
 *   scepterctl webhook drop ID                    delete one
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"

static const char USAGE[] = "usage: scepterctl webhook dead-letters [--limit N]\n"
                            "       scepterctl webhook retry [ID]   (no ID: all of them)\n"
                            "       scepterctl webhook drop ID\n";

static void print_dead(json_t *r)
{
    static const char *const cols[] = {"id", "topic", "attempts", "dead_at", "last_error", NULL};
    static const char *const heads[] = {"ID",         "TOPIC",      "ATTEMPTS",
                                        "DEAD SINCE", "LAST ERROR", NULL};
    ctl_print_table(json_object_get(r, "dead_letters"), cols, heads);
}

static void print_dropped(json_t *r)
{
    printf("dead letter %lld dropped\n", (long long)json_integer_value(json_object_get(r, "id")));
}

static int show(const char *method, const char *path, void (*fn)(json_t *), const char *done)
{
    json_t *r = NULL;
    int rc = ctl_call(method, path, NULL, &r);

    if (rc == CTL_OK) {
        if (ctl_conn()->json)
            ctl_print_json(r);
        else if (fn)
            fn(r);
        else
            printf("%lld %s\n", (long long)json_integer_value(json_object_get(r, "retried")), done);
    }
    json_decref(r);
    return rc;
}

int cmd_webhook(int argc, char **argv)
{
    const char *limit = NULL, *pos[1];
    struct ctl_opt opts[] = {{"limit", true, &limit}, {NULL, false, NULL}};
    size_t npos = 0;
    char *path = NULL;
    int64_t id;
    int rc;

    argc--;
    argv++;
    if (argc < 1 || ctl_parse_opts("scepterctl webhook", argc, argv, opts, pos, 1, &npos) != 0)
        goto bad;
    if (npos == 1 && str_to_i64(pos[0], 1, INT64_MAX, &id) != 0) {
        fprintf(stderr, "scepterctl webhook: ID '%s' is not a dead letter id (a number)\n", pos[0]);
        return CTL_USAGE;
    }
    if (strcmp(argv[0], "dead-letters") == 0 && npos == 0) {
        struct buf q = BUF_INIT;
        ctl_query_add(&q, "limit", limit);
        path = xasprintf("/v1/webhooks/dead-letters%s", q.data ? q.data : "");
        buf_free(&q);
        rc = show("GET", path, print_dead, NULL);
    } else if (strcmp(argv[0], "retry") == 0 && npos <= 1 && limit == NULL) {
        if (npos == 1)
            path = ctl_path("/v1/webhooks/dead-letters/%s/retry", pos[0]);
        else
            path = xstrdup("/v1/webhooks/dead-letters/retry");
        rc = show("POST", path, NULL, "event(s) back in the outbox");
    } else if (strcmp(argv[0], "drop") == 0 && npos == 1 && limit == NULL) {
        path = ctl_path("/v1/webhooks/dead-letters/%s", pos[0]);
        rc = show("DELETE", path, print_dropped, NULL);
    } else {
        goto bad;
    }
    free(path);
    return rc;
bad:
    fputs(USAGE, stderr);
    return CTL_USAGE;
}
