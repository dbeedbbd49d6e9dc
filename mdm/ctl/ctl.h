/*
 * mdm/ctl/ctl.h — private to scepterctl: the subcommand table the dispatcher walks and the
 * helpers subcommands share (option parsing, reading files).  To add a command group
 * (`scepterctl policy ...`, `scepterctl device ...`), write cmd_<group>.c with an entry point
 * of type ctl_run_fn and add one line to the table in main.c.
 *
 * Exit codes: 0 success, 1 an operation failed (I/O, crypto), 2 bad usage or invalid input.
 */
#ifndef SCEPTER_MDM_CTL_CTL_H
#define SCEPTER_MDM_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/attr.h"

#define CTL_OK       0
#define CTL_FAIL     1 /* network, TLS, or a server error (5xx) */
#define CTL_USAGE    2 /* bad usage, or the server refused the input (400) */
#define CTL_NOTFOUND 3 /* 404: no such policy, device, group, command */
#define CTL_CONFLICT 4 /* 409: duplicate name, topic change refused, state conflict */
#define CTL_AUTH     5 /* 401/403: missing or wrong API key */

/* A subcommand: argv[0] is its own name. */
typedef int (*ctl_run_fn)(int argc, char **argv);

struct ctl_cmd {
    const char *name;
    ctl_run_fn run;
    const char *usage; /* one or more "name args  -- summary" lines */
};

/*
 * Run the entry of table (n entries) named argv[0]; print the table's usage for --help, no
 * command or an unknown one (exit CTL_USAGE for the last two).  what names the level in
 * messages ("scepterctl", "scepterctl profile").
 */
int ctl_dispatch(const char *what, const struct ctl_cmd *table, size_t n, int argc, char **argv);

/* An option spec for ctl_parse_opts: "--name" taking a value, or a flag when !has_arg. */
struct ctl_opt {
    const char *name; /* without the dashes */
    bool has_arg;
    const char **value; /* set to the argument (or "1" for a flag) */
};
/*
 * Parse argv[1..] against opts (NULL-name terminated): "--name value" and "--name=value".
 * Positional arguments are collected in pos (at most maxpos).  Prints a message and returns
 * CTL_USAGE on an unknown option or a missing value; 0 otherwise.
 */
int ctl_parse_opts(const char *what, int argc, char **argv, const struct ctl_opt *opts,
                   const char **pos, size_t maxpos, size_t *npos) WUR;

/* The command groups. */
int cmd_profile(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_group(int argc, char **argv);
int cmd_command(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pushcert(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_enrollment_token(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_webhook(int argc, char **argv);
int cmd_operator(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* ---------------------------------------------------------------------------------------- */
/* The operator API (mdm/ctl/client.c)                                                       */

#include <jansson.h>

#include "common/buf.h"

struct ctl_conn {
    const char *server;  /* https://host:port (--server, SCEPTER_SERVER) */
    const char *api_key; /* --api-key, SCEPTER_API_KEY */
    const char *ca_file; /* --ca, SCEPTER_CA: verifies the server */
    bool insecure;       /* --insecure: do not verify the server (development) */
    bool json;           /* --json: print the API's JSON instead of tables */
};
const struct ctl_conn *ctl_conn(void);
/* Take the global options out of argv (anywhere); 0 or CTL_USAGE. */
int ctl_global_opts(int *argc, char **argv) WUR;
/*
 * One API call; body may be NULL.  On 2xx *out is the reply (caller json_decref()s) and
 * CTL_OK is returned; otherwise the server's error (every problem of a refused policy) is
 * printed on stderr and the exit code for its status returned.
 */
int ctl_call(const char *method, const char *path, json_t *body, json_t **out) WUR;
/* A GET whose 2xx answer is not JSON (Accept: accept): *out (caller frees, NUL-terminated) and
 * *len; errors as ctl_call. */
int ctl_get_raw(const char *path, const char *accept, char **out, size_t *len) WUR;
int ctl_exit_for_status(int status);
void ctl_print_json(json_t *j);
/* A table of rows (array of objects), columns cols with headings heads (NULL-terminated). */
void ctl_print_table(json_t *rows, const char *const *cols, const char *const *heads);
/* A JSON file ("-" = stdin); NULL after printing why. */
json_t *ctl_read_json_file(const char *path);
/* printf into a URL path, escaping spaces and other unsafe bytes; caller frees. */
char *ctl_path(const char *fmt, ...) PRINTF(1, 2);
/* Append "?k=v" or "&k=v" (v escaped) to a query under construction; nothing when v is NULL. */
void ctl_query_add(struct buf *q, const char *k, const char *v);

#endif
