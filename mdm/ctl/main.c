/*
 * scepterctl — the operator CLI.  A table-driven dispatcher: the first argument names a
 * command group (profile, and later policy, device, ...), whose own table names the action.
 * Groups live in cmd_<group>.c; see ctl.h for how to add one.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "mdm/ctl/ctl.h"

static const struct ctl_cmd g_groups[] = {
    {"profile", cmd_profile,
     "profile render|check|variables|verify ...  -- SCEP Profiles policies as .mobileconfig"},
    {"policy", cmd_policy,
     "policy list|show|create|update|delete|status|preview ...  -- SCEP Profiles policies on the "
     "server"},
    {"device", cmd_device,
     "device list|show|declarations|commands|enqueue|cancel|clear|result|remove|"
     "allow-reenroll ...  -- devices and their command queues"},
    {"group", cmd_group, "group list|create|show|rename|delete|add|remove ...  -- device groups"},
    {"command", cmd_command, "command send ...  -- one command to many devices and groups"},
    {"push", cmd_push, "push UDID... [--group G]  -- wake devices now"},
    {"pushcert", cmd_pushcert, "pushcert show|upload ...  -- the APNs push certificate"},
    {"apikey", cmd_apikey, "apikey list|create|delete ...  -- operator API keys"},
    {"operator", cmd_operator,
     "operator list|create|set-role|passwd|disable|enable|delete ...  -- operator accounts"},
    {"audit", cmd_audit,
     "audit [--actor A] [--action X] [--object O] [--since T] [--until T] [--limit N] "
     "[--before ID]  -- the audit log"},
    {"cert", cmd_cert,
     "cert revoke SHA256 [--reason R] | cert revocations [--device UDID]  -- "
     "device identity certificates"},
    {"enrollment-token", cmd_enrollment_token,
     "enrollment-token create|list|delete ...  -- tokens for /mdm/enroll?token="},
    {"events", cmd_events, "events [--device UDID] [--kind K] [--limit N]  -- security events"},
    {"webhook", cmd_webhook,
     "webhook dead-letters [--limit N] | retry [ID] | drop ID  -- events the webhook gave up on"},
};

int ctl_dispatch(const char *what, const struct ctl_cmd *table, size_t n, int argc, char **argv)
{
    bool help = argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
                strcmp(argv[0], "help") == 0;

    if (!help) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(table[i].name, argv[0]) == 0)
                return table[i].run(argc, argv);
        fprintf(stderr, "%s: unknown command \"%s\"\n", what, argv[0]);
    }
    FILE *fp = help && argc >= 1 ? stdout : stderr;
    fprintf(fp, "usage:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "  %s %s\n", what, table[i].usage);
    return help && argc >= 1 ? CTL_OK : CTL_USAGE;
}

int ctl_parse_opts(const char *what, int argc, char **argv, const struct ctl_opt *opts,
                   const char **pos, size_t maxpos, size_t *npos)
{
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*npos == maxpos) {
                fprintf(stderr, "%s: unexpected argument \"%s\"\n", what, a);
                return CTL_USAGE;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct ctl_opt *o = opts;
        while (o->name && !(strlen(o->name) == nlen && strncmp(o->name, name, nlen) == 0))
            o++;
        if (o->name == NULL) {
            fprintf(stderr, "%s: unknown option --%.*s\n", what, (int)nlen, name);
            return CTL_USAGE;
        }
        if (!o->has_arg) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", what, o->name);
                return CTL_USAGE;
            }
            *o->value = "1";
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", what, o->name);
            return CTL_USAGE;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc - 1;

    log_init(LOG_LVL_WARN, LOG_FMT_TEXT);
    /* --server, --api-key, --ca, --insecure and --json may appear anywhere. */
    if (ctl_global_opts(&n, argv + 1) != 0)
        return CTL_USAGE;
    if (n < 1) {
        fputs("scepterctl — operate a Scepter MDM server.\n"
              "Global options: --server URL (SCEPTER_SERVER), --api-key KEY (SCEPTER_API_KEY),\n"
              "  --ca FILE (SCEPTER_CA), --insecure, --json.\n"
              "Exit codes: 0 ok, 1 failure (network, server), 2 usage or input refused (400),\n"
              "  3 not found (404), 4 conflict (409), 5 API key refused (401/403).\n",
              stderr);
    }
    return ctl_dispatch("scepterctl", g_groups, ARRAY_LEN(g_groups), n, argv + 1);
}
