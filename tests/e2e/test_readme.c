/*
 * The README works as printed: its operator examples (the shell block between
 * <!-- readme-test:begin --> and <!-- readme-test:end --> in README.md) run in order, each
 * command as written, against a fresh server with simulated devices enrolled first.
 *
 * Only these substitutions are made, so the README cannot drift from what works:
 *   https://localhost:8443  -> the test server's address (an ephemeral port)
 *   <UDID>                  -> enrolled Macs' UDIDs (the n-th <UDID> of a line is the n-th Mac)
 * Any other <PLACEHOLDER> fails the test.  The commands run with sh in a scratch directory that
 * looks like a clone after `make run`: var/dev/api_key, var/dev/tls-ca.pem, profiles/ and the
 * push.pem / push.key the example uploads; scepterctl is on PATH.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "apns-server/harness.h"
#include "integration/harness.h"
#include "support/proc.h"
#include "support/support.h"

#define BEGIN_MARK "<!-- readme-test:begin -->"
#define END_MARK   "<!-- readme-test:end -->"
#define NMACS      2

/* The lines of the marked ```sh block (caller frees the array and the strings). */
static char **readme_commands(size_t *n)
{
    char *path = tu_source_path("README.md");
    char *text = (char *)tu_read(path, NULL);
    char *b = strstr(text, BEGIN_MARK), *e = b ? strstr(b, END_MARK) : NULL;
    char **out = NULL;
    size_t cap = 0;

    cr_assert_not_null(b, "README.md has no %s marker", BEGIN_MARK);
    cr_assert_not_null(e, "README.md has no %s marker after the begin marker", END_MARK);
    *e = '\0';
    char *fence = strstr(b, "```sh\n");
    cr_assert_not_null(fence, "no ```sh block between the README's readme-test markers");
    char *body = fence + strlen("```sh\n"), *close = strstr(body, "```");
    cr_assert_not_null(close, "the README's ```sh block is not closed before %s", END_MARK);
    *close = '\0';
    *n = 0;
    for (char *line = body, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        while (*line == ' ')
            line++;
        if (*line == '\0' || *line == '#')
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            out = xrealloc(out, cap * sizeof(*out));
        }
        out[(*n)++] = xstrdup(line);
    }
    free(text);
    free(path);
    return out;
}

/* Replace every occurrence of from in s by to (returns a new string; frees s). */
static char *replace_all(char *s, const char *from, const char *to)
{
    struct buf b = BUF_INIT;
    const char *p = s, *hit;

    while ((hit = strstr(p, from)) != NULL) {
        buf_append(&b, p, (size_t)(hit - p));
        buf_append(&b, to, strlen(to));
        p = hit + strlen(from);
    }
    buf_append(&b, p, strlen(p));
    free(s);
    return buf_steal(&b, NULL);
}

/* The n-th <UDID> of a line becomes the n-th Mac. */
static char *fill_udids(char *line, char *const *macs)
{
    struct buf b = BUF_INIT;
    const char *p = line, *hit;
    size_t k = 0;

    while ((hit = strstr(p, "<UDID>")) != NULL) {
        cr_assert_lt(k, NMACS, "more than %d <UDID> in one README line: %s", NMACS, line);
        buf_append(&b, p, (size_t)(hit - p));
        buf_append(&b, macs[k], strlen(macs[k]));
        k++;
        p = hit + strlen("<UDID>");
    }
    buf_append(&b, p, strlen(p));
    free(line);
    return buf_steal(&b, NULL);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    unsigned char *d = tu_read(from, &len);
    tu_write(to, d, len);
    free(d);
}

Test(readme, operator_examples_run_as_printed, .timeout = 600)
{
    struct h_server S;
    struct ts_server *ts;

    /* APNs (the examples push), then scepter with PKCS#12 identities from its device CA. */
    char *pushca = ts_pki("pushca.pem"), *apns_ca = ts_pki("ca.pem"), *cert = ts_pki("push.pem"),
         *key = ts_pki("push.key");
    const char *targs[] = {"--client-ca", pushca, NULL};
    ts = ts_start(targs);
    cr_assert_not_null(ts, "apns-test-server did not start");
    char *topic = ts_pki_text("topic");
    char *extra = xasprintf("apns_url = https://localhost:%d\napns_ca_file = %s\n"
                            "apns_cert_file = %s\napns_key_file = %s\n"
                            "enroll_rate_limit = 0\nenroll_key_pool = 2\n",
                            ts->port, apns_ca, cert, key);
    struct h_opts o = {.no_push_topic = true, .topic = topic, .extra = extra};
    h_start(&S, &o);

    /* Simulated devices: 2 Macs and 2 iPhones enroll, then the simulator exits. */
    char *server = xasprintf("https://127.0.0.1:%d", S.port);
    char *tlsca = xasprintf("%s/tls-ca.pem", S.dir);
    char *simlog = xasprintf("%s/sim.log", S.dir);
    const char *sim_bin = getenv("SCEPTER_SIM_BIN");
    cr_assert_not_null(sim_bin, "SCEPTER_SIM_BIN is not set (ctest sets it)");
    const char *sargv[] = {sim_bin,
                           "--server",
                           server,
                           "--ca",
                           tlsca,
                           "--devices",
                           "4",
                           "--platform-mix",
                           "mac=50,iphone=50",
                           "--seed",
                           "11",
                           "--enroll-only",
                           "--log-level",
                           "warn",
                           NULL};
    struct tu_proc sim = tu_proc_start(sargv, NULL, simlog);
    int status = -1;
    for (int i = 0; i < 1200 && waitpid(sim.pid, &status, WNOHANG) == 0; i++)
        usleep(100000);
    char *simout = tu_proc_log(&sim);
    if (kill(sim.pid, 0) == 0) /* still running after 120 s */
        tu_proc_stop(&sim, SIGKILL, 5000);
    tu_untrack_pid(sim.pid);
    free(sim.log_path);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the simulator failed:\n%s", simout);
    free(simout);

    json_t *j = NULL;
    cr_assert_eq(h_api(&S, "GET", "/v1/devices?enrolled=true&platform=macos", NULL, &j), 200);
    json_t *devs = json_object_get(j, "devices");
    cr_assert_eq(json_array_size(devs), NMACS, "%s", h_json(j));
    char *macs[NMACS];
    for (size_t i = 0; i < NMACS; i++)
        macs[i] = xstrdup(json_string_value(json_object_get(json_array_get(devs, i), "udid")));
    json_decref(j);

    /* A scratch directory laid out like a clone after `make run`. */
    char *w = tu_tmpdir();
    char *profiles = tu_source_path("profiles");
    cr_assert_eq(tu_sh(NULL, "mkdir -p '%s/var/dev' && ln -s '%s' '%s/profiles'", w, profiles, w),
                 0);
    char *p = xasprintf("%s/var/dev/api_key", w);
    tu_write(p, H_API_KEY "\n", strlen(H_API_KEY) + 1);
    free(p);
    p = xasprintf("%s/var/dev/tls-ca.pem", w);
    copy_file(tlsca, p);
    free(p);
    p = xasprintf("%s/push.pem", w);
    copy_file(cert, p);
    free(p);
    p = xasprintf("%s/push.key", w);
    copy_file(key, p);
    free(p);

    /* The script: each README line run in order, stopping at the first that fails. */
    size_t n = 0;
    char **cmds = readme_commands(&n);
    cr_assert_geq(n, 10, "only %zu commands between the README's readme-test markers", n);
    char *addr = xasprintf("https://localhost:%d", S.port);
    struct buf script = BUF_INIT;
    regex_t ph;
    cr_assert_eq(regcomp(&ph, "<[A-Za-z_][A-Za-z0-9_-]*>", REG_EXTENDED | REG_NOSUB), 0);
    buf_printf(&script, "run() {\n  printf '+ %%s\\n' \"$1\"\n  eval \"$1\" || {\n"
                        "    rc=$?; printf 'readme: exit %%d: %%s\\n' $rc \"$1\"; exit 1; }\n}\n");
    for (size_t i = 0; i < n; i++) {
        char *line = replace_all(cmds[i], "https://localhost:8443", addr);
        line = fill_udids(line, macs);
        cr_assert_neq(regexec(&ph, line, 0, NULL, 0), 0,
                      "README line %zu has a placeholder the test cannot fill: %s", i + 1, line);
        line = replace_all(line, "'", "'\\''");
        buf_printf(&script, "run '%s'\n", line);
        free(line);
    }
    free(cmds);
    regfree(&ph);
    p = xasprintf("%s/readme.sh", w);
    tu_write(p, script.data, script.len);
    free(p);

    char *out = NULL;
    const char *bin = getenv("SCEPTER_BINARY_DIR");
    int rc =
        tu_sh(&out, "cd '%s' && PATH='%s/mdm':\"$PATH\" sh ./readme.sh 2>&1", w, bin ? bin : ".");
    cr_assert_eq(rc, 0, "a README example failed:\n%s", out);

    /* The policy example reached the two Macs of the group the README made. */
    cr_assert(strstr(out, "2 InstallProfile") != NULL, "policy create queued for 2 Macs:\n%s", out);
    free(out);

    buf_free(&script);
    free(addr);
    tu_rmtree(w);
    free(w);
    free(profiles);
    for (size_t i = 0; i < NMACS; i++)
        free(macs[i]);
    h_stop(&S);
    ts_stop(ts);
    free(server);
    free(tlsca);
    free(simlog);
    free(extra);
    free(topic);
    free(pushca);
    free(apns_ca);
    free(cert);
    free(key);
}
