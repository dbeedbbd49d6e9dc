/*
 * Child processes for integration tests: start a program with arguments and extra
 * environment, its stderr captured to a file; stop it with a signal and get its exit status.
 * A process left running when the test exits is killed (the test harness forks per test).
 */
#ifndef SCEPTER_TESTS_PROC_H
#define SCEPTER_TESTS_PROC_H

#include <sys/types.h>

struct tu_proc {
    pid_t pid;
    char *log_path; /* stderr+stdout of the child */
};

/* argv is NULL-terminated; env entries ("K=V") are added to the current environment. */
struct tu_proc tu_proc_start(const char *const *argv, const char *const *env, const char *log_path);
/* Send sig and wait up to timeout_ms; returns the exit status (or 128+signal), -1 on timeout
 * (then the child is killed). */
int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms);
/* Is it still running? */
int tu_proc_alive(const struct tu_proc *p);
/* Wait until path exists and is non-empty (or the child died / timeout); 0 when it appeared. */
int tu_wait_file(const char *path, const struct tu_proc *p, int timeout_ms);
/* The log so far (caller frees). */
char *tu_proc_log(const struct tu_proc *p);

#endif
