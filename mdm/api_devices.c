/*
 * The operator API's devices:
 *
 *   GET    /v1/devices          enrolled (and removed) devices, filtered and paged
 *                               (?awaiting_configuration=true: those in Setup Assistant
 *                               waiting for DeviceConfigured)
 *   GET    /v1/devices/{udid}   one device: facts, groups, policies, certificates
 *
 * Removal and re-enrollment are in mdm/api_security.c, the command queue in
 * mdm/api_commands.c.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"

static const char *enroll_type_name(enum store_enroll_type t)
{
    switch (t) {
    case STORE_ENROLL_USER_ENROLLMENT:
        return "user_enrollment";
    case STORE_ENROLL_USER:
        return "user";
    case STORE_ENROLL_USER_ENROLLMENT_USER:
        return "user_enrollment_user";
    case STORE_ENROLL_SHARED_IPAD_USER:
        return "shared_ipad_user";
    default:
        return "device";
    }
}

static json_t *device_json(const struct store_device *d)
{
    json_t *j = json_object(), *groups = json_array();

    json_object_set_new(j, "udid", json_string(d->id));
    json_object_set_new(j, "type", json_string(enroll_type_name(d->type)));
    json_object_set_new(j, "platform", json_string(store_platform_name(d->platform)));
    json_object_set_new(j, "serial_number", api_opt_str(d->serial_number));
    json_object_set_new(j, "device_name", api_opt_str(d->device_name));
    json_object_set_new(j, "model", api_opt_str(d->model));
    json_object_set_new(j, "model_name", api_opt_str(d->model_name));
    json_object_set_new(j, "product_name", api_opt_str(d->product_name));
    json_object_set_new(j, "os_version", api_opt_str(d->os_version));
    json_object_set_new(j, "build_version", api_opt_str(d->build_version));
    json_object_set_new(j, "model_family", api_opt_str(d->model_family)); /* DDM status */
    json_object_set_new(j, "topic", api_opt_str(d->topic));
    json_object_set_new(j, "enrolled", json_boolean(d->enrolled));
    json_object_set_new(j, "push_token_valid", json_boolean(d->token_valid));
    json_object_set_new(j, "bootstrap_token", json_boolean(d->has_bootstrap_token));
    json_object_set_new(j, "last_seen", api_time(d->last_seen));
    json_object_set_new(j, "authenticated_at", api_time(d->authenticated_at));
    json_object_set_new(j, "token_updated_at", api_time(d->token_updated_at));
    json_object_set_new(j, "checked_out_at", api_time(d->checked_out_at));
    json_object_set_new(j, "removed_at", api_time(d->removed_at));
    json_object_set_new(j, "reenroll_until", api_time(d->reenroll_until));
    json_object_set_new(j, "awaiting_configuration", json_boolean(d->awaiting_configuration));
    json_object_set_new(j, "identity_not_after", api_time(d->identity_not_after));
    json_object_set_new(j, "identity_renewal",
                        json_string(d->renewal_at   ? "outstanding"
                                    : d->renewed_at ? "renewed"
                                                    : "none"));
    json_object_set_new(j, "identity_renewal_queued_at", api_time(d->renewal_at));
    json_object_set_new(j, "identity_renewed_at", api_time(d->renewed_at));
    json_object_set_new(j, "created", api_time(d->created));
    for (size_t i = 0; i < d->n_groups; i++)
        json_array_append_new(groups, json_string(d->groups[i]));
    json_object_set_new(j, "groups", groups);
    return j;
}

/* "2026-11-25T18:00:00Z" or UNIX seconds -> seconds; -1 when neither. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    int64_t v;
    const char *end;

    if (str_to_i64(s, 0, INT64_MAX, &v) == 0)
        return v;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
        return -1;
    return (int64_t)timegm(&tm);
}

/*
 * GET /v1/devices: a page of devices by UDID (limit: 1000 unless asked, up to 100000), the
 * next page by offset (with "total", the devices matching) or by the cursor "next_after"
 * (?after=: costs the page, not the fleet; no total).
 */
#define DEVICES_PAGE 1000
void api_devices_list(struct api_call *c)
{
    static const char *const names[] = {"platform",    "enrolled", "seen_after",
                                        "seen_before", "group",    "limit",
                                        "offset",      "q",        "awaiting_configuration",
                                        "after"};
    struct store_device_filter f = {.enrolled = -1, .limit = DEVICES_PAGE};
    char *v[10] = {NULL};
    struct store_device *devs = NULL;
    struct scepter_error err;
    size_t n = 0, total = 0;
    int64_t num;
    bool b;

    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        v[i] = api_query(c, names[i]);
    if (v[0]) {
        f.platform = store_platform_parse(v[0]);
        if (f.platform == STORE_PLATFORM_UNKNOWN) {
            api_reply_error(c, 400, "platform",
                            "platform: '%s' is not one of macos, ios, ipados, tvos, watchos, "
                            "visionos",
                            v[0]);
            goto out;
        }
    }
    if (v[1]) {
        if (str_to_bool(v[1], &b) != 0) {
            api_reply_error(c, 400, "enrolled", "enrolled: '%s' is not true or false", v[1]);
            goto out;
        }
        f.enrolled = b;
    }
    if (v[2] && (f.seen_after = parse_time(v[2])) < 0) {
        api_reply_error(c, 400, "seen_after",
                        "seen_after: '%s' is not a time (2026-11-25T18:00:00Z or UNIX seconds)",
                        v[2]);
        goto out;
    }
    if (v[3] && (f.seen_before = parse_time(v[3])) < 0) {
        api_reply_error(c, 400, "seen_before",
                        "seen_before: '%s' is not a time (2026-11-25T18:00:00Z or UNIX "
                        "seconds)",
                        v[3]);
        goto out;
    }
    f.group = v[4];
    if (v[5]) {
        if (str_to_i64(v[5], 1, 100000, &num) != 0) {
            api_reply_error(c, 400, "limit", "limit: '%s' is not between 1 and 100000", v[5]);
            goto out;
        }
        f.limit = (size_t)num;
    }
    if (v[6]) {
        if (str_to_i64(v[6], 0, INT64_MAX, &num) != 0) {
            api_reply_error(c, 400, "offset", "offset: '%s' is not a count", v[6]);
            goto out;
        }
        f.offset = (size_t)num;
    }
    f.q = v[7] && *v[7] ? v[7] : NULL;
    if (v[8]) {
        if (str_to_bool(v[8], &b) != 0) {
            api_reply_error(c, 400, "awaiting_configuration",
                            "awaiting_configuration: '%s' is not true or false", v[8]);
            goto out;
        }
        f.awaiting_configuration = b ? 1 : -1;
    }
    if (v[9] && v[6]) {
        api_reply_error(c, 400, "after", "after: a cursor pages on its own, not with offset");
        goto out;
    }
    f.after = v[9];
    /* Counting every matching device costs the whole fleet: offset paging (the console's,
     * which shows "1-20 of N") gets the count; cursor paging (after=) does not. */
    f.total = f.after ? NULL : &total;
    size_t limit = f.limit;
    f.limit = limit + 1; /* one more: whether a next page exists */
    if (store_device_list(c->ctx->store, &f, &devs, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    size_t shown = n > limit ? limit : n;
    json_t *arr = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, device_json(&devs[i]));
    json_t *j = json_pack("{s:o,s:I}", "devices", arr, "count", (json_int_t)shown);
    if (f.total)
        json_object_set_new(j, "total", json_integer((json_int_t)total));
    if (n > limit)
        json_object_set_new(j, "next_after", json_string(devs[limit - 1].id));
    api_reply_json(c, 200, j);
    store_devices_free(devs, n);
out:
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        free(v[i]);
}

void api_device_show(struct api_call *c)
{
    const char *udid = c->seg[1];
    struct store_device d;
    struct scepter_error err;
    json_t *j;

    memset(&d, 0, sizeof(d));
    if (store_device_get(c->ctx->store, udid, &d, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    j = device_json(&d);
    json_object_set_new(j, "policies", api_device_policies(c, udid));
    {
        char **hashes = NULL;
        size_t n = 0;
        json_t *certs = json_array();
        if (store_device_bindings(c->ctx->store, udid, &hashes, &n, &err) == 0)
            for (size_t i = 0; i < n; i++)
                json_array_append_new(certs, json_string(hashes[i]));
        store_strv_free(hashes, n);
        json_object_set_new(j, "certificates", certs);
    }
    store_device_clear(&d);
    api_reply_json(c, 200, j);
}
