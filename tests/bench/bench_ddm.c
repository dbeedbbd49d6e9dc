/*
 * bench_ddm — what Declarative Device Management costs the server, computed as it is on a
 * request (mdm/ddm.c), without sockets or the store.
 *   bench_ddm [DEVICES]   (default 100000)
 * Prints, for an iOS SCEP policy with "ddm": true whose subject uses %SerialNumber% (so every
 * device's credential asset differs):
 *   - a policy save: new tokens for every device (the declarations and the
 *     DeclarativeManagement command each DDM device is queued), total and per device;
 *   - one declaration-items sync: the device's declarations and the reply's JSON;
 *   - the same for a policy without server-side variables (shared declarations).
 * Timing is reported, never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xmalloc.h"
#include "mdm/commands_int.h"
#include "mdm/ddm_int.h"

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void policy(struct profile_policy *p, const char *subject)
{
    profile_policy_init(p);
    p->name = xstrdup("Bench DDM");
    p->platform = PROFILE_PLATFORM_IOS;
    p->ddm = true;
    p->scep_url = xstrdup("https://scep.example.com/scep");
    p->scep_challenge = xstrdup("s3cret");
    p->scep_subject = xstrdup(subject);
    p->key_size = 2048;
}

/* Every device's tokens after a save: declarations + the DeclarativeManagement command. */
static double save(const struct profile_policy *p, size_t n, char (*serial)[24])
{
    struct ddm_policy_in in = {"6f1c7f4e-1111-4222-8333-944444444444", 1700000000, p};
    struct scepter_error err;
    double t = cpu_us();
    for (size_t i = 0; i < n; i++) {
        struct profile_device d;
        struct ddm_set s;
        struct mdm_command cmd;
        memset(&d, 0, sizeof(d));
        d.udid = serial[i];
        d.serial_number = serial[i];
        d.platform = "ios";
        d.os_version = "17.5";
        if (ddm_compute(&in, 1, &d, "com.scepter", "https://mdm.example.com", &s, NULL, &err) !=
            0) {
            fprintf(stderr, "bench_ddm: %s\n", err.msg);
            exit(1);
        }
        mdm_ddm_command(&s, &cmd);
        mdm_command_clear(&cmd);
        ddm_set_clear(&s);
    }
    return cpu_us() - t;
}

/* One declaration-items sync: compute and render the reply (as mdm_ddm_checkin does). */
static double items(const struct profile_policy *p, size_t n)
{
    struct ddm_policy_in in = {"6f1c7f4e-1111-4222-8333-944444444444", 1700000000, p};
    struct scepter_error err;
    double t = cpu_us();
    for (size_t i = 0; i < n; i++) {
        struct profile_device d;
        struct ddm_set s;
        memset(&d, 0, sizeof(d));
        d.udid = "00008110-000A1234ABCD0001";
        d.serial_number = "F2LXK0001";
        d.platform = "ios";
        d.os_version = "17.5";
        if (ddm_compute(&in, 1, &d, "com.scepter", "https://mdm.example.com", &s, NULL, &err) != 0)
            exit(1);
        json_t *decls = json_object();
        for (size_t k = 0; k < s.n; k++) {
            const char *key = ddm_kind_items_key(s.v[k].kind);
            if (json_object_get(decls, key) == NULL)
                json_object_set_new(decls, key, json_array());
            json_array_append_new(json_object_get(decls, key),
                                  json_pack("{s:s,s:s}", "Identifier", s.v[k].identifier,
                                            "ServerToken", s.v[k].token));
        }
        json_t *reply = json_pack("{s:o,s:s}", "Declarations", decls, "DeclarationsToken", s.token);
        char *text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
        free(text);
        json_decref(reply);
        ddm_set_clear(&s);
    }
    return cpu_us() - t;
}

int main(int argc, char **argv)
{
    size_t n = 100000, m;
    char(*serial)[24];
    struct profile_policy per_device, shared;
    double us;

    if (argc > 1) {
        char *end = NULL;
        n = (size_t)strtoull(argv[1], &end, 10);
        if (end == argv[1] || *end || n == 0) {
            fprintf(stderr, "usage: bench_ddm [DEVICES]\n");
            return 2;
        }
    }
    m = n < 10000 ? n : 10000;
    serial = xcalloc(n, sizeof(*serial));
    for (size_t i = 0; i < n; i++)
        snprintf(serial[i], sizeof(serial[i]), "F2L%09zu", i % 1000000000u);
    policy(&per_device, "/O=Example/CN=%SerialNumber%/");
    policy(&shared, "/O=Example/CN=Wi-Fi/");

    printf("== ddm (%zu devices, CPU time)\n", n);
    us = save(&per_device, n, serial);
    printf("  policy save, new tokens for every device   %8.1f ms total  (%.2f us/device)\n",
           us / 1e3, us / (double)n);
    us = save(&shared, n, serial);
    printf("  policy save, shared declarations           %8.1f ms total  (%.2f us/device)\n",
           us / 1e3, us / (double)n);
    us = items(&per_device, m);
    printf("  declaration-items sync, per-device asset   %8.2f us/sync\n", us / (double)m);
    us = items(&shared, m);
    printf("  declaration-items sync, shared             %8.2f us/sync\n", us / (double)m);
    profile_policy_clear(&per_device);
    profile_policy_clear(&shared);
    free(serial);
    return 0;
}
