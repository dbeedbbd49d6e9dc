/*
 * scepterctl operator — operator accounts (an admin's API key), and scepterctl audit.
 *
 *   operator list
 *   operator create NAME --role ROLE [--password-file F | --password-stdin]
 *   operator set-role NAME ROLE
 *   operator passwd NAME [--password-file F | --password-stdin]   (an admin's reset: the
 *                                                                  account's sessions end)
 *   operator disable NAME | enable NAME | delete NAME
 *   audit [--actor A] [--action X] [--object O] [--since T] [--until T] [--limit N]
 *         [--before ID]
 *
 * Without --password-file or --password-stdin the password is asked for twice on the
 * terminal, without echo.  A password never appears on the command line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"

#define PW_MAX 1024

static int op_usage(void)
{
    fputs("usage: scepterctl operator list\n"
          "       scepterctl operator create NAME --role admin|operator|viewer\n"
          "                  [--password-file F | --password-stdin]\n"
          "       scepterctl operator set-role NAME admin|operator|viewer\n"
          "       scepterctl operator passwd NAME [--password-file F | --password-stdin]\n"
          "       scepterctl operator disable|enable|delete NAME\n",
          stderr);
    return CTL_USAGE;
}

/* Strip one final "\n" or "\r\n". */
static void chomp(char *s)
{
    size_t n = strlen(s);

    if (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    if (n > 0 && s[n - 1] == '\r')
        s[--n] = '\0';
}

/* One line from fp into out (at most PW_MAX - 1 bytes); false at EOF or when too long. */
static bool read_line(FILE *fp, char out[PW_MAX])
{
    if (fgets(out, PW_MAX, fp) == NULL)
        return false;
    if (strchr(out, '\n') == NULL && !feof(fp))
        return false;
    chomp(out);
    return true;
}

/* Ask on the terminal without echo. */
static bool prompt(const char *text, char out[PW_MAX])
{
    struct termios old, quiet;
    FILE *tty = fopen("/dev/tty", "r+");
    bool ok, echo_off;

    if (tty == NULL)
        return false;
    fputs(text, tty);
    fflush(tty);
    echo_off = tcgetattr(fileno(tty), &old) == 0;
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    ok = read_line(tty, out);
    if (echo_off)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputc('\n', tty);
    fclose(tty);
    return ok;
}

/* The password from --password-file, --password-stdin or the terminal into out; 0 or an exit
 * code after printing why. */
static int get_password(const char *file, bool from_stdin, char out[PW_MAX])
{
    struct scepter_error err;

    if (file && from_stdin) {
        fputs("scepterctl operator: --password-file and --password-stdin exclude each other\n",
              stderr);
        return CTL_USAGE;
    }
    if (file) {
        unsigned char *data = NULL;
        size_t len = 0;
        if (file_read(file, PW_MAX - 1, &data, &len, &err) != 0) {
            fprintf(stderr, "scepterctl operator: --password-file: %s\n", err.msg);
            return CTL_USAGE;
        }
        if (strlen((char *)data) != len) {
            fputs("scepterctl operator: --password-file: contains a NUL byte\n", stderr);
            free(data);
            return CTL_USAGE;
        }
        str_copy(out, PW_MAX, (char *)data);
        explicit_bzero(data, len);
        free(data);
        chomp(out);
        return 0;
    }
    if (from_stdin) {
        if (!read_line(stdin, out)) {
            fputs("scepterctl operator: --password-stdin: no password line on stdin (or too "
                  "long)\n",
                  stderr);
            return CTL_USAGE;
        }
        return 0;
    }
    char again[PW_MAX];
    if (!prompt("Password: ", out) || !prompt("Password again: ", again)) {
        fputs("scepterctl operator: no terminal to ask for the password on: use "
              "--password-file F or --password-stdin\n",
              stderr);
        return CTL_USAGE;
    }
    bool same = strcmp(out, again) == 0;
    explicit_bzero(again, sizeof(again));
    if (!same) {
        fputs("scepterctl operator: the passwords differ\n", stderr);
        return CTL_USAGE;
    }
    return 0;
}

static int show(int rc, json_t *r, void (*fn)(json_t *))
{
    if (rc == CTL_OK && r != NULL) {
        if (ctl_conn()->json || fn == NULL)
            ctl_print_json(r);
        else
            fn(r);
    }
    json_decref(r);
    return rc;
}

static void print_operators(json_t *r)
{
    static const char *const cols[] = {
        "name", "role", "disabled", "created_at", "updated_at", "last_sign_in_at", NULL};
    static const char *const heads[] = {"NAME",    "ROLE",         "DISABLED", "CREATED",
                                        "UPDATED", "LAST SIGN-IN", NULL};
    ctl_print_table(json_object_get(r, "operators"), cols, heads);
}

static void print_operator(json_t *r)
{
    printf("%s: %s%s\n", json_string_value(json_object_get(r, "name")),
           json_string_value(json_object_get(r, "role")),
           json_is_true(json_object_get(r, "disabled")) ? " (disabled)" : "");
}

/* PATCH /v1/operators/NAME with body (stolen). */
static int patch(const char *name, json_t *body)
{
    char *path = ctl_path("/v1/operators/%s", name);
    json_t *r = NULL;
    int rc = ctl_call("PATCH", path, body, &r);

    json_decref(body);
    free(path);
    return show(rc, r, print_operator);
}

int cmd_operator(int argc, char **argv)
{
    const char *pos[2], *role = NULL, *pwfile = NULL, *pwstdin = NULL;
    struct ctl_opt opts[] = {{"role", true, &role},
                             {"password-file", true, &pwfile},
                             {"password-stdin", false, &pwstdin},
                             {NULL, false, NULL}};
    char pw[PW_MAX];
    size_t npos = 0;
    json_t *r = NULL;
    int rc;

    argc--; /* argv[0] is the group; the action follows */
    argv++;
    if (argc < 1 || ctl_parse_opts("scepterctl operator", argc, argv, opts, pos, 2, &npos) != 0)
        return op_usage();
    const char *act = argv[0];
    if (strcmp(act, "list") == 0 && npos == 0) {
        rc = ctl_call("GET", "/v1/operators", NULL, &r); /* before r is read */
        return show(rc, r, print_operators);
    }
    if (strcmp(act, "create") == 0 && npos == 1) {
        if (role == NULL) {
            fputs("scepterctl operator create: --role admin|operator|viewer is required\n", stderr);
            return CTL_USAGE;
        }
        if ((rc = get_password(pwfile, pwstdin != NULL, pw)) != 0)
            return rc;
        json_t *body = json_pack("{s:s,s:s,s:s}", "name", pos[0], "role", role, "password", pw);
        explicit_bzero(pw, sizeof(pw));
        rc = ctl_call("POST", "/v1/operators", body, &r);
        json_decref(body);
        return show(rc, r, print_operator);
    }
    if (strcmp(act, "set-role") == 0 && npos == 2)
        return patch(pos[0], json_pack("{s:s}", "role", pos[1]));
    if (strcmp(act, "passwd") == 0 && npos == 1) {
        if ((rc = get_password(pwfile, pwstdin != NULL, pw)) != 0)
            return rc;
        json_t *body = json_pack("{s:s}", "password", pw);
        explicit_bzero(pw, sizeof(pw));
        return patch(pos[0], body);
    }
    if ((strcmp(act, "disable") == 0 || strcmp(act, "enable") == 0) && npos == 1)
        return patch(pos[0], json_pack("{s:b}", "disabled", strcmp(act, "disable") == 0));
    if (strcmp(act, "delete") == 0 && npos == 1) {
        char *path = ctl_path("/v1/operators/%s", pos[0]);
        rc = ctl_call("DELETE", path, NULL, &r);
        free(path);
        json_decref(r);
        if (rc == CTL_OK)
            fprintf(stderr, "operator %s deleted\n", pos[0]);
        return rc;
    }
    return op_usage();
}

static void print_audit(json_t *r)
{
    json_t *rows = json_array(), *e;
    size_t i;

    /* Flatten the actor for the table. */
    json_array_foreach(json_object_get(r, "entries"), i, e)
    {
        json_t *a = json_object_get(e, "actor");
        char *who = xasprintf("%s:%s", json_string_value(json_object_get(a, "type")),
                              json_string_value(json_object_get(a, "name")));
        json_t *row = json_deep_copy(e);
        json_object_set_new(row, "who", json_string(who));
        free(who);
        json_array_append_new(rows, row);
    }
    static const char *const cols[] = {"id",     "at",     "who",     "address",
                                       "action", "object", "summary", NULL};
    static const char *const heads[] = {"ID",     "AT",     "ACTOR",   "ADDRESS",
                                        "ACTION", "OBJECT", "SUMMARY", NULL};
    ctl_print_table(rows, cols, heads);
    json_decref(rows);
    json_t *next = json_object_get(r, "next_before");
    if (json_is_integer(next))
        fprintf(stderr, "more: --before %lld\n", (long long)json_integer_value(next));
}

int cmd_audit(int argc, char **argv)
{
    const char *v[7] = {NULL};
    static const char *const names[] = {"actor", "action", "object", "since",
                                        "until", "limit",  "before"};
    struct ctl_opt opts[8];
    const char *pos[1];
    size_t npos = 0;
    struct buf q = {0};
    json_t *r = NULL;

    for (size_t i = 0; i < 7; i++)
        opts[i] = (struct ctl_opt){names[i], true, &v[i]};
    opts[7] = (struct ctl_opt){NULL, false, NULL};
    if (ctl_parse_opts("scepterctl audit", argc, argv, opts, pos, 0, &npos) != 0)
        return CTL_USAGE;
    for (size_t i = 0; i < 7; i++)
        ctl_query_add(&q, names[i], v[i]);
    char *path = xasprintf("/v1/audit%s", q.data ? q.data : "");
    buf_free(&q);
    int rc = ctl_call("GET", path, NULL, &r);
    free(path);
    return show(rc, r, print_audit);
}
