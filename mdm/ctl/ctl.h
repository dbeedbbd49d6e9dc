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

#define CTL_OK    0
#define CTL_FAIL  1
#define CTL_USAGE 2

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

#endif
