/*
 * scepterctl command groups that speak the operator API: policy, device, group, command,
 * push, pushcert, apikey.  Tables for people, --json for scripts; exit codes in ctl.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"

/* Print the reply as JSON (--json) or with fn, then release it. */
static int show(int rc, json_t *reply, void (*fn)(json_t *))
{
    if (rc == CTL_OK) {
        if (ctl_conn()->json || fn == NULL)
            ctl_print_json(reply);
        else
            fn(reply);
    }
    json_decref(reply);
    return rc;
}

/* Call the API, then show the reply (ctl_call must run before the reply is read). */
static int show_call(const char *method, const char *path, json_t *body, json_t **r,
                     void (*fn)(json_t *))
{
    int rc = ctl_call(method, path, body, r);
    return show(rc, *r, fn);
}

static int usage(const char *what, const char *text)
{
    fprintf(stderr, "usage: scepterctl %s %s\n", what, text);
    return CTL_USAGE;
}

/* ---------------------------------------------------------------------------------------- */
/* policy                                                                                    */

static void print_policies(json_t *r)
{
    static const char *const cols[] = {"id", "platform", "name", "version", "updated", NULL};
    static const char *const heads[] = {"ID", "PLATFORM", "NAME", "VERSION", "UPDATED", NULL};
    ctl_print_table(json_object_get(r, "policies"), cols, heads);
}

static void print_saved(json_t *r)
{
    json_t *w = json_object_get(r, "warnings"), *skipped = json_object_get(r, "not_rendered");
    size_t i;
    json_t *v;

    printf("policy %lld \"%s\" (version %lld) saved: %lld InstallProfile and %lld RemoveProfile "
           "queued\n",
           (long long)json_integer_value(json_object_get(r, "id")),
           json_string_value(json_object_get(r, "name")),
           (long long)json_integer_value(json_object_get(r, "version")),
           (long long)json_integer_value(json_object_get(r, "queued_installs")),
           (long long)json_integer_value(json_object_get(r, "queued_removals")));
    json_array_foreach(w, i, v)
        printf("warning: %s\n", json_string_value(json_object_get(v, "message")));
    json_array_foreach(skipped, i, v)
        printf("not rendered for %s: %s\n", json_string_value(json_object_get(v, "device")),
               json_string_value(json_object_get(v, "error")));
    if (json_object_get(r, "message"))
        printf("%s\n", json_string_value(json_object_get(r, "message")));
}

/* "3 active, 1 syncing" of the non-zero counts among keys; "none yet" when all are zero. */
static void print_counts(json_t *counts, const char *const *keys)
{
    bool any = false;
    for (size_t k = 0; keys[k]; k++) {
        json_int_t n = json_integer_value(json_object_get(counts, keys[k]));
        if (n == 0)
            continue;
        printf("%s%lld %s", any ? ", " : "", (long long)n, keys[k]);
        any = true;
    }
    if (!any)
        printf("none yet");
}

/*
 * A DDM entry's state in one word: what the device reported of the policy's declarations
 * (active, inactive, invalid, unknown), or "syncing" while it does not hold their current
 * version; "-" on the profile channel.
 */
static const char *ddm_word(json_t *entry)
{
    json_t *d = json_object_get(entry, "ddm");
    const char *st = json_string_value(json_object_get(d, "state"));

    if (!json_is_object(d))
        return "-";
    if (json_is_true(json_object_get(d, "syncing")))
        return "syncing";
    return st ? st : "error";
}

/* The reasons a device gave for its invalid declarations, one line each. */
static void print_reasons(const char *device, json_t *decls)
{
    size_t i, k;
    json_t *v, *why;

    json_array_foreach(decls, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "identifier"));
        const char *dot = id ? strrchr(id, '.') : NULL;
        json_array_foreach(json_object_get(v, "reasons"), k, why)
        {
            const char *desc = json_string_value(json_object_get(why, "description"));
            const char *code = json_string_value(json_object_get(why, "code"));
            printf("  %s: %s: %s%s%s%s\n", device, dot ? dot + 1 : (id ? id : "?"),
                   desc ? desc : (code ? code : "reason"), desc && code ? " (" : "",
                   desc && code ? code : "", desc && code ? ")" : "");
        }
    }
}

static void print_status(json_t *r)
{
    static const char *const cols[] = {"device",  "state",        "delivery", "ddm",
                                       "command", "notnow_count", "updated",  NULL};
    static const char *const heads[] = {"DEVICE",  "STATE",  "DELIVERY", "DDM",
                                        "COMMAND", "NOTNOW", "UPDATED",  NULL};
    static const char *const ddm_keys[] = {"active",  "inactive", "invalid",
                                           "unknown", "syncing",  NULL};
    static const char *const profile_keys[] = {"installed", "pending", "failed", NULL};
    json_t *all = json_array();
    const char *groups[] = {"installed", "pending", "failed", "removed"};
    json_t *by = json_object_get(r, "by_delivery");

    for (size_t g = 0; g < 4; g++) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r, groups[g]), i, e)
        {
            json_t *row = json_deep_copy(e);
            if (json_object_get(row, "delivery") == NULL)
                json_object_set_new(row, "delivery", json_string("profile"));
            json_object_set_new(row, "ddm", json_string(ddm_word(e)));
            json_array_append_new(all, row);
        }
    }
    printf("policy %lld \"%s\": %lld installed, %lld pending, %lld failed\n",
           (long long)json_integer_value(json_object_get(r, "id")),
           json_string_value(json_object_get(r, "name")),
           (long long)json_array_size(json_object_get(r, "installed")),
           (long long)json_array_size(json_object_get(r, "pending")),
           (long long)json_array_size(json_object_get(r, "failed")));
    if (json_is_object(by)) {
        json_t *dd = json_object_get(by, "ddm"), *pr = json_object_get(by, "profile");
        printf("delivery: %lld via DDM (",
               (long long)json_integer_value(json_object_get(dd, "devices")));
        print_counts(dd, ddm_keys);
        printf("), %lld via profile (",
               (long long)json_integer_value(json_object_get(pr, "devices")));
        print_counts(pr, profile_keys);
        printf(")\n");
    }
    ctl_print_table(all, cols, heads);
    size_t i;
    json_t *f;
    for (size_t g = 0; g < 3; g++)
        json_array_foreach(json_object_get(r, groups[g]), i, f)
        {
            print_reasons(json_string_value(json_object_get(f, "device")),
                          json_object_get(json_object_get(f, "ddm"), "declarations"));
        }
    json_array_foreach(json_object_get(r, "failed"), i, f)
    {
        char *chain = json_dumps(json_object_get(f, "error_chain"), JSON_COMPACT);
        printf("  %s: %s\n", json_string_value(json_object_get(f, "device")), chain ? chain : "-");
        free(chain);
    }
    json_decref(all);
}

int cmd_policy(int argc, char **argv)
{
    const char *file = NULL, *platform = NULL, *secrets = NULL, *device = NULL, *pos[2];
    struct ctl_opt opts[] = {{"file", true, &file},
                             {"platform", true, &platform},
                             {"device", true, &device},
                             {"show-secrets", false, &secrets},
                             {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL, *body;
    char *path = NULL;
    int rc;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1)
        return usage("policy", "list|show|create|update|delete|status|preview ...");
    if (ctl_parse_opts("scepterctl policy", argc, argv, opts, pos, 2, &npos) != 0)
        return CTL_USAGE;
    const char *act = argv[0];
    if (strcmp(act, "list") == 0) {
        struct buf q = BUF_INIT;
        ctl_query_add(&q, "platform", platform);
        path = xasprintf("/v1/policies%s", q.data ? q.data : "");
        buf_free(&q);
        rc = show_call("GET", path, NULL, &r, print_policies);
    } else if (strcmp(act, "create") == 0 || (strcmp(act, "update") == 0 && npos == 1)) {
        if (file == NULL)
            return usage("policy", "create --file POLICY.json | update ID --file POLICY.json");
        if ((body = ctl_read_json_file(file)) == NULL)
            return CTL_USAGE;
        path = npos ? ctl_path("/v1/policies/%s", pos[0]) : xstrdup("/v1/policies");
        rc = ctl_call(npos ? "PUT" : "POST", path, body, &r);
        json_decref(body);
        rc = show(rc, r, print_saved);
    } else if ((strcmp(act, "show") == 0 || strcmp(act, "delete") == 0 ||
                strcmp(act, "status") == 0) &&
               npos == 1) {
        if (strcmp(act, "status") == 0)
            path = ctl_path("/v1/policies/%s/status", pos[0]);
        else
            path = ctl_path("/v1/policies/%s%s", pos[0], secrets ? "?show_secrets=true" : "");
        rc = ctl_call(strcmp(act, "delete") == 0 ? "DELETE" : "GET", path, NULL, &r);
        rc = show(rc, r, strcmp(act, "status") == 0 ? print_status : NULL);
    } else if (strcmp(act, "preview") == 0 && npos == 1 && device) {
        /* The .mobileconfig the device would be sent, on stdout. */
        struct buf q = BUF_INIT;
        char *xml = NULL;
        size_t len = 0;
        ctl_query_add(&q, "device", device);
        char *base = ctl_path("/v1/policies/%s/preview", pos[0]);
        path = xasprintf("%s%s", base, q.data);
        free(base);
        buf_free(&q);
        rc = ctl_get_raw(path, "application/x-apple-aspen-config", &xml, &len);
        if (rc == CTL_OK && fwrite(xml, 1, len, stdout) != len)
            rc = CTL_FAIL;
        free(xml);
    } else {
        return usage("policy", "list [--platform macos|ios] | show ID [--show-secrets] | "
                               "create --file F | update ID --file F | delete ID | status ID | "
                               "preview ID --device UDID");
    }
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* device                                                                                    */

static void print_devices(json_t *r)
{
    static const char *const cols[] = {"udid",     "platform",  "device_name", "serial_number",
                                       "enrolled", "last_seen", NULL};
    static const char *const heads[] = {"UDID",     "PLATFORM",  "NAME", "SERIAL",
                                        "ENROLLED", "LAST SEEN", NULL};
    json_t *next = json_object_get(r, "next_after");

    ctl_print_table(json_object_get(r, "devices"), cols, heads);
    if (next) /* a page: how to ask for the next one */
        printf("(more devices: --after %s)\n", json_string_value(next));
}

static void print_queue(json_t *r)
{
    static const char *const cols[] = {"uuid",         "request_type", "status",
                                       "notnow_count", "created",      NULL};
    static const char *const heads[] = {"UUID", "TYPE", "STATUS", "NOTNOW", "CREATED", NULL};
    json_t *next = json_object_get(r, "next_before");

    ctl_print_table(json_object_get(r, "commands"), cols, heads);
    if (next) /* the history is paged: how to ask for the next page */
        printf("(older commands: --all --before %lld)\n", (long long)json_integer_value(next));
}

static void print_queued(json_t *r)
{
    printf("%s %s queued", json_string_value(json_object_get(r, "request_type")),
           json_string_value(json_object_get(r, "uuid")));
    if (json_object_get(r, "queued"))
        printf(" for %lld devices", (long long)json_integer_value(json_object_get(r, "queued")));
    printf("%s\n", json_is_true(json_object_get(r, "pushed")) ? " and pushed" : "");
}

/*
 * The "command" object of an enqueue from flags: --type T [--identifier I] [--payload FILE]
 * [--queries a,b] [--managed-only] [--fields JSON], or --plist FILE for a raw command.
 * --fields is a JSON object of the command's keys as Apple names them ('{"Message":"Call
 * IT","PIN":"123456"}' for DeviceLock); the server checks them against Apple's schema.
 */
static json_t *command_from_flags(const char *type, const char *ident, const char *payload,
                                  const char *queries, const char *managed, const char *plist,
                                  const char *fields)
{
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t len = 0;
    json_t *cmd;

    if (plist) {
        if (file_read(plist, 16 << 20, &data, &len, &err) != 0) {
            fprintf(stderr, "scepterctl: %s\n", err.msg);
            return NULL;
        }
        cmd = json_pack("{s:s%}", "plist", (const char *)data, len);
        free(data);
        return cmd;
    }
    if (type == NULL) {
        fprintf(stderr, "scepterctl: name the command with --type or --plist\n");
        return NULL;
    }
    cmd = json_pack("{s:s}", "request_type", type);
    if (fields) {
        json_error_t je;
        json_t *f = json_loads(fields, 0, &je);
        if (!json_is_object(f)) {
            fprintf(stderr, "scepterctl: --fields: not a JSON object (%s)\n",
                    f ? "another JSON value" : je.text);
            json_decref(f);
            json_decref(cmd);
            return NULL;
        }
        json_object_update(cmd, f);
        json_decref(f);
    }
    if (ident)
        json_object_set_new(cmd, "identifier", json_string(ident));
    if (managed)
        json_object_set_new(cmd, "managed_only", json_true());
    if (payload) {
        if (file_read(payload, 16 << 20, &data, &len, &err) != 0) {
            fprintf(stderr, "scepterctl: %s\n", err.msg);
            json_decref(cmd);
            return NULL;
        }
        char *b64 = base64_encode(data, len);
        json_object_set_new(cmd, "payload", json_string(b64));
        free(b64);
        free(data);
    }
    if (queries) {
        json_t *q = json_array();
        char *copy = xstrdup(queries), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(q, json_string(str_trim(t)));
        free(copy);
        json_object_set_new(cmd, "queries", q);
    }
    return cmd;
}

/* GET /v1/devices/{udid}/declarations as a table: each declaration with its reported state,
 * then those the device reported but should no longer hold. */
static void print_declarations(json_t *r)
{
    static const char *const cols[] = {"kind",    "type",    "active",     "valid",
                                       "current", "updated", "identifier", NULL};
    static const char *const heads[] = {"KIND",    "TYPE",        "ACTIVE",     "VALID",
                                        "CURRENT", "LAST REPORT", "IDENTIFIER", NULL};
    json_t *rows = json_array(), *v;
    size_t i;

    printf("device %s: %s, DeclarationsToken %s\n", json_string_value(json_object_get(r, "device")),
           json_is_true(json_object_get(r, "ddm_capable"))
               ? "DDM-capable"
               : "not DDM-capable (profiles only: iOS 17 / macOS 14 needed)",
           json_string_value(json_object_get(r, "declarations_token")));
    json_array_foreach(json_object_get(r, "declarations"), i, v)
    {
        json_t *st = json_object_get(v, "status");
        json_t *row =
            json_pack("{s:O,s:O,s:O}", "identifier", json_object_get(v, "identifier"), "kind",
                      json_object_get(v, "kind"), "type", json_object_get(v, "type"));
        if (json_is_object(st)) {
            json_object_set(row, "active", json_object_get(st, "active"));
            json_object_set(row, "valid", json_object_get(st, "valid"));
            json_object_set(row, "current", json_object_get(st, "current"));
            json_object_set(row, "updated", json_object_get(st, "updated"));
        } else {
            json_object_set_new(row, "valid", json_string("not reported"));
        }
        json_array_append_new(rows, row);
    }
    json_array_foreach(json_object_get(r, "stale"), i, v)
    {
        json_t *row = json_pack(
            "{s:O,s:O,s:s,s:O,s:O,s:s,s:O}", "identifier", json_object_get(v, "identifier"), "kind",
            json_object_get(v, "kind"), "type", "(no longer assigned)", "active",
            json_object_get(v, "active"), "valid", json_object_get(v, "valid"), "current", "stale",
            "updated", json_object_get(v, "updated"));
        json_array_append_new(rows, row);
    }
    ctl_print_table(rows, cols, heads);
    json_decref(rows);
    json_t *st_list = json_array();
    json_array_foreach(json_object_get(r, "declarations"), i, v)
    {
        if (json_is_object(json_object_get(v, "status")))
            json_array_append(st_list, json_object_get(v, "status"));
    }
    json_array_extend(st_list, json_object_get(r, "stale"));
    print_reasons(json_string_value(json_object_get(r, "device")), st_list);
    json_decref(st_list);
}

static void print_removed(json_t *r)
{
    printf("device %s removed: %lld certificate(s) revoked, %lld queued command(s) cancelled\n",
           json_string_value(json_object_get(r, "udid")),
           (long long)json_integer_value(json_object_get(r, "certificates_revoked")),
           (long long)json_integer_value(json_object_get(r, "commands_cancelled")));
}

static void print_reenroll(json_t *r)
{
    printf("device %s may enroll with a new identity until %s\n",
           json_string_value(json_object_get(r, "udid")),
           json_string_value(json_object_get(r, "reenroll_until")));
}

int cmd_device(int argc, char **argv)
{
    const char *platform = NULL, *enrolled = NULL, *group = NULL, *after = NULL, *before = NULL,
               *limit = NULL, *all = NULL, *type = NULL, *ident = NULL, *payload = NULL,
               *queries = NULL, *managed = NULL, *plist = NULL, *nopush = NULL, *priority = NULL,
               *user = NULL, *dur = NULL, *fields = NULL, *expires = NULL, *older = NULL,
               *cursor = NULL, *pos[2];
    struct ctl_opt opts[] = {{"platform", true, &platform},
                             {"for", true, &dur},
                             {"enrolled", true, &enrolled},
                             {"group", true, &group},
                             {"seen-after", true, &after},
                             {"seen-before", true, &before},
                             {"limit", true, &limit},
                             {"all", false, &all},
                             {"type", true, &type},
                             {"identifier", true, &ident},
                             {"payload", true, &payload},
                             {"queries", true, &queries},
                             {"managed-only", false, &managed},
                             {"plist", true, &plist},
                             {"no-push", false, &nopush},
                             {"priority", true, &priority},
                             {"user", true, &user},
                             {"fields", true, &fields},
                             {"expires-in", true, &expires},
                             {"before", true, &older},
                             {"after", true, &cursor},
                             {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL;
    char *path = NULL;
    struct buf q = BUF_INIT;
    int rc;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1)
        return usage("device", "list|show|declarations|commands|enqueue|cancel|clear|result ...");
    if (ctl_parse_opts("scepterctl device", argc, argv, opts, pos, 2, &npos) != 0)
        return CTL_USAGE;
    const char *act = argv[0];
    ctl_query_add(&q, "user", user);
    if (strcmp(act, "list") == 0) {
        ctl_query_add(&q, "platform", platform);
        ctl_query_add(&q, "enrolled", enrolled);
        ctl_query_add(&q, "group", group);
        ctl_query_add(&q, "seen_after", after);
        ctl_query_add(&q, "seen_before", before);
        ctl_query_add(&q, "limit", limit);
        ctl_query_add(&q, "after", cursor);
        path = xasprintf("/v1/devices%s", q.data ? q.data : "");
        rc = show_call("GET", path, NULL, &r, print_devices);
    } else if (strcmp(act, "show") == 0 && npos == 1) {
        path = ctl_path("/v1/devices/%s", pos[0]);
        rc = show_call("GET", path, NULL, &r, NULL);
    } else if (strcmp(act, "declarations") == 0 && npos == 1) {
        path = ctl_path("/v1/devices/%s/declarations", pos[0]);
        rc = show_call("GET", path, NULL, &r, print_declarations);
    } else if (strcmp(act, "commands") == 0 && npos == 1) {
        ctl_query_add(&q, "all", all ? "true" : NULL);
        ctl_query_add(&q, "limit", limit);
        ctl_query_add(&q, "before", older);
        path = ctl_path("/v1/devices/%s/commands%s", pos[0], q.data ? q.data : "");
        rc = show_call("GET", path, NULL, &r, print_queue);
    } else if (strcmp(act, "enqueue") == 0 && npos == 1) {
        json_t *cmd = command_from_flags(type, ident, payload, queries, managed, plist, fields);
        int64_t prio = 0;
        if (cmd == NULL)
            return CTL_USAGE;
        if (priority && str_to_i64(priority, -100, 100, &prio) != 0) {
            json_decref(cmd);
            return usage("device", "enqueue: --priority is -100..100");
        }
        json_t *body = json_pack("{s:o,s:b,s:I}", "command", cmd, "push", nopush == NULL,
                                 "priority", (json_int_t)prio);
        if (expires)
            json_object_set_new(body, "expires_in", json_string(expires));
        path = ctl_path("/v1/devices/%s/commands%s", pos[0], q.data ? q.data : "");
        rc = ctl_call("POST", path, body, &r);
        json_decref(body);
        rc = show(rc, r, print_queued);
    } else if ((strcmp(act, "cancel") == 0 || strcmp(act, "result") == 0) && npos == 2) {
        path = ctl_path("/v1/devices/%s/commands/%s%s", pos[0], pos[1], q.data ? q.data : "");
        rc = show_call(strcmp(act, "cancel") == 0 ? "DELETE" : "GET", path, NULL, &r, NULL);
    } else if (strcmp(act, "clear") == 0 && npos == 1) {
        path = ctl_path("/v1/devices/%s/commands%s", pos[0], q.data ? q.data : "");
        rc = show_call("DELETE", path, NULL, &r, NULL);
    } else if (strcmp(act, "remove") == 0 && npos == 1) {
        path = ctl_path("/v1/devices/%s", pos[0]);
        rc = show_call("DELETE", path, NULL, &r, print_removed);
    } else if (strcmp(act, "allow-reenroll") == 0 && npos == 1) {
        json_t *body = json_pack("{s:s}", "for", dur ? dur : "1h");
        path = ctl_path("/v1/devices/%s/reenroll", pos[0]);
        rc = ctl_call("POST", path, body, &r);
        json_decref(body);
        rc = show(rc, r, print_reenroll);
    } else {
        buf_free(&q);
        return usage("device",
                     "list [--platform P] [--enrolled true|false] [--group G] [--seen-after T] "
                     "[--seen-before T] [--limit N] [--after UDID]\n"
                     "       scepterctl device show UDID\n"
                     "       scepterctl device declarations UDID\n"
                     "       scepterctl device commands UDID [--all [--limit N] [--before C]] "
                     "[--user UID]\n"
                     "       scepterctl device enqueue UDID (--type T [--identifier I] [--payload "
                     "F] [--queries a,b] [--managed-only] [--fields JSON] | --plist F) "
                     "[--no-push] [--priority N] [--expires-in 10m]\n"
                     "       scepterctl device cancel|result UDID UUID\n"
                     "       scepterctl device clear UDID\n"
                     "       scepterctl device remove UDID\n"
                     "       scepterctl device allow-reenroll UDID [--for 1h]");
    }
    buf_free(&q);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* group                                                                                     */

static void print_groups(json_t *r)
{
    static const char *const cols[] = {"name", "members", "created", NULL};
    static const char *const heads[] = {"NAME", "MEMBERS", "CREATED", NULL};
    ctl_print_table(json_object_get(r, "device_groups"), cols, heads);
}

static json_t *devices_body(const char **ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    return json_pack("{s:o}", "devices", arr);
}

int cmd_group(int argc, char **argv)
{
    const char *pos[256];
    struct ctl_opt opts[] = {{NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL, *body = NULL;
    char *path = NULL;
    int rc;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1)
        return usage("group", "list|create|show|rename|delete|add|remove ...");
    if (ctl_parse_opts("scepterctl group", argc, argv, opts, pos, ARRAY_LEN(pos), &npos) != 0)
        return CTL_USAGE;
    const char *act = argv[0];
    if (strcmp(act, "list") == 0) {
        rc = show_call("GET", "/v1/device-groups", NULL, &r, print_groups);
    } else if (strcmp(act, "create") == 0 && npos >= 1) {
        body = devices_body(pos + 1, npos - 1);
        json_object_set_new(body, "name", json_string(pos[0]));
        rc = show_call("POST", "/v1/device-groups", body, &r, NULL);
    } else if ((strcmp(act, "show") == 0 || strcmp(act, "delete") == 0) && npos == 1) {
        path = ctl_path("/v1/device-groups/%s", pos[0]);
        rc = show_call(strcmp(act, "show") == 0 ? "GET" : "DELETE", path, NULL, &r, NULL);
    } else if (strcmp(act, "rename") == 0 && npos == 2) {
        path = ctl_path("/v1/device-groups/%s", pos[0]);
        body = json_pack("{s:s}", "name", pos[1]);
        rc = show_call("PATCH", path, body, &r, NULL);
    } else if ((strcmp(act, "add") == 0 || strcmp(act, "remove") == 0) && npos >= 2) {
        path = ctl_path("/v1/device-groups/%s/members", pos[0]);
        body = devices_body(pos + 1, npos - 1);
        rc = show_call(strcmp(act, "add") == 0 ? "POST" : "DELETE", path, body, &r, NULL);
    } else {
        return usage("group", "list | create NAME [UDID...] | show NAME | rename NAME NEW | "
                              "delete NAME | add NAME UDID... | remove NAME UDID...");
    }
    json_decref(body);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* command (one to many), push                                                               */

/* Collect repeated --device/--group flags: ctl_parse_opts keeps the last, so scan argv. */
static void collect(int argc, char **argv, const char *flag, json_t *arr)
{
    size_t flen = strlen(flag);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0 && i + 1 < argc)
            json_array_append_new(arr, json_string(argv[++i]));
        else if (strncmp(argv[i], flag, flen) == 0 && argv[i][flen] == '=')
            json_array_append_new(arr, json_string(argv[i] + flen + 1));
    }
}

int cmd_command(int argc, char **argv)
{
    const char *dev = NULL, *group = NULL, *type = NULL, *ident = NULL, *payload = NULL,
               *queries = NULL, *managed = NULL, *plist = NULL, *nopush = NULL, *priority = NULL,
               *fields = NULL, *expires = NULL, *pos[1];
    struct ctl_opt opts[] = {{"device", true, &dev},
                             {"group", true, &group},
                             {"type", true, &type},
                             {"identifier", true, &ident},
                             {"payload", true, &payload},
                             {"queries", true, &queries},
                             {"managed-only", false, &managed},
                             {"plist", true, &plist},
                             {"no-push", false, &nopush},
                             {"priority", true, &priority},
                             {"fields", true, &fields},
                             {"expires-in", true, &expires},
                             {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL;
    int64_t prio = 0;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1 || strcmp(argv[0], "send") != 0)
        return usage("command", "send (--device UDID | --group NAME)... (--type T ... | --plist "
                                "F) [--fields JSON] [--no-push] [--priority N] [--expires-in 10m]");
    if (ctl_parse_opts("scepterctl command", argc, argv, opts, pos, 0, &npos) != 0)
        return CTL_USAGE;
    if (priority && str_to_i64(priority, -100, 100, &prio) != 0)
        return usage("command", "send: --priority is -100..100");
    json_t *cmd = command_from_flags(type, ident, payload, queries, managed, plist, fields);
    if (cmd == NULL)
        return CTL_USAGE;
    json_t *devs = json_array(), *groups = json_array();
    collect(argc, argv, "--device", devs);
    collect(argc, argv, "--group", groups);
    json_t *body = json_pack("{s:o,s:o,s:o,s:b,s:I}", "devices", devs, "device_groups", groups,
                             "command", cmd, "push", nopush == NULL, "priority", (json_int_t)prio);
    if (expires)
        json_object_set_new(body, "expires_in", json_string(expires));
    int rc = ctl_call("POST", "/v1/commands", body, &r);
    json_decref(body);
    return show(rc, r, print_queued);
}

int cmd_push(int argc, char **argv)
{
    const char *group = NULL, *pos[1024];
    struct ctl_opt opts[] = {{"group", true, &group}, {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL;

    /* argv[0] is "push" itself: the UDIDs follow. */
    if (ctl_parse_opts("scepterctl push", argc, argv, opts, pos, ARRAY_LEN(pos), &npos) != 0)
        return CTL_USAGE;
    json_t *devs = json_array(), *groups = json_array();
    for (size_t i = 0; i < npos; i++)
        json_array_append_new(devs, json_string(pos[i]));
    collect(argc, argv, "--group", groups);
    if (json_array_size(devs) + json_array_size(groups) == 0) {
        json_decref(devs);
        json_decref(groups);
        return usage("push", "UDID... [--group NAME]...");
    }
    json_t *body = json_pack("{s:o,s:o}", "devices", devs, "device_groups", groups);
    int rc = ctl_call("POST", "/v1/push", body, &r);
    json_decref(body);
    if (rc == CTL_OK && !ctl_conn()->json)
        printf("push requested for %lld enrollments\n",
               (long long)json_integer_value(json_object_get(r, "requested")));
    else if (rc == CTL_OK)
        ctl_print_json(r);
    json_decref(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* pushcert, apikey                                                                          */

int cmd_pushcert(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *p12 = NULL, *password = NULL, *force = NULL, *pos[1];
    struct ctl_opt opts[] = {{"cert", true, &cert},    {"key", true, &key},
                             {"p12", true, &p12},      {"password", true, &password},
                             {"force", false, &force}, {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL;
    struct scepter_error err;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1)
        return usage("pushcert", "show | upload (--cert C --key K | --p12 F [--password P]) "
                                 "[--force]");
    if (ctl_parse_opts("scepterctl pushcert", argc, argv, opts, pos, 0, &npos) != 0)
        return CTL_USAGE;
    if (strcmp(argv[0], "show") == 0)
        return show_call("GET", "/v1/pushcert", NULL, &r, NULL);
    if (strcmp(argv[0], "upload") != 0 || (cert == NULL) == (p12 == NULL))
        return usage("pushcert", "upload (--cert C --key K | --p12 F [--password P]) [--force]");
    json_t *body = json_object();
    unsigned char *data = NULL;
    size_t len = 0;
    const char *files[2] = {cert ? cert : p12, key};
    const char *fields[2] = {cert ? "cert_pem" : "pkcs12", "key_pem"};
    for (int i = 0; i < 2; i++) {
        if (files[i] == NULL)
            continue;
        if (file_read(files[i], 1 << 20, &data, &len, &err) != 0) {
            fprintf(stderr, "scepterctl: %s\n", err.msg);
            json_decref(body);
            return CTL_USAGE;
        }
        if (p12 && i == 0) {
            char *b64 = base64_encode(data, len);
            json_object_set_new(body, fields[i], json_string(b64));
            free(b64);
        } else {
            json_object_set_new(body, fields[i], json_stringn((const char *)data, len));
        }
        free(data);
    }
    if (password)
        json_object_set_new(body, "password", json_string(password));
    int rc = ctl_call("PUT", force ? "/v1/pushcert?force=true" : "/v1/pushcert", body, &r);
    json_decref(body);
    return show(rc, r, NULL);
}

static void print_keys(json_t *r)
{
    static const char *const cols[] = {"id",      "name",      "hash_prefix", "role",
                                       "created", "last_used", NULL};
    static const char *const heads[] = {"ID", "NAME", "HASH", "ROLE", "CREATED", "LAST USED", NULL};
    ctl_print_table(json_object_get(r, "api_keys"), cols, heads);
}

static void print_new_key(json_t *r)
{
    printf("%s\n", json_string_value(json_object_get(r, "key")));
    fprintf(stderr, "API key %lld \"%s\" created; it is shown once, only its hash is stored\n",
            (long long)json_integer_value(json_object_get(r, "id")),
            json_string_value(json_object_get(r, "name")));
}

int cmd_apikey(int argc, char **argv)
{
    const char *pos[1], *role = NULL;
    struct ctl_opt opts[] = {{"role", true, &role}, {NULL, false, NULL}};
    size_t npos = 0;
    json_t *r = NULL;

    /* argv[0] is the group ("policy"); the action follows */
    argc--;
    argv++;

    if (argc < 1 || ctl_parse_opts("scepterctl apikey", argc, argv, opts, pos, 1, &npos) != 0)
        return usage("apikey", "list | create NAME [--role admin|operator|viewer] | delete ID");
    if (strcmp(argv[0], "list") == 0)
        return show_call("GET", "/v1/apikeys", NULL, &r, print_keys);
    if (strcmp(argv[0], "create") == 0 && npos == 1) {
        json_t *body = json_pack("{s:s}", "name", pos[0]);
        if (role)
            json_object_set_new(body, "role", json_string(role));
        int rc = ctl_call("POST", "/v1/apikeys", body, &r);
        json_decref(body);
        return show(rc, r, print_new_key);
    }
    if (strcmp(argv[0], "delete") == 0 && npos == 1) {
        char *path = ctl_path("/v1/apikeys/%s", pos[0]);
        int rc = show_call("DELETE", path, NULL, &r, NULL);
        free(path);
        return rc;
    }
    return usage("apikey", "list | create NAME [--role admin|operator|viewer] | delete ID");
}
