/*
 * Helpers shared by the test suites: where fixtures live, temporary directories, the
 * throwaway PostgreSQL's URL, reading files.  Everything aborts the test on failure
 * (Criterion's cr_assert), so callers need no checks.
 */
#ifndef SCEPTER_TESTS_SUPPORT_H
#define SCEPTER_TESTS_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

/* "<repo>/tests/data/<rel>": the suite's data files (tests/data/SOURCES.md names their origin).
 * The directory is compiled in (SCEPTER_TEST_DATA_DIR); caller frees. */
char *tu_data_path(const char *rel);
/* "<repo>/<rel>"; caller frees. */
char *tu_source_path(const char *rel);
/* "<build dir>/<rel>"; caller frees. */
char *tu_binary_path(const char *rel);
/* Read a whole file (asserts success); NUL-terminated; caller frees. */
unsigned char *tu_read(const char *path, size_t *len);
unsigned char *tu_read_data(const char *rel, size_t *len);
/* Write a file (asserts success). */
void tu_write(const char *path, const void *data, size_t len);
/* A fresh empty directory /tmp/scepter-test.<SCEPTER_TEST_TAG>.XXXXXX; caller frees the path.
 * Removed by tu_rmtree, or when the test process exits (also after a failed assertion). */
char *tu_tmpdir(void);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* Child processes a test started: killed (with their process group) when the test process
 * exits, unless untracked first (tu_proc_stop does it).  Children also get PR_SET_PDEATHSIG. */
void tu_track_pid(pid_t pid);
void tu_untrack_pid(pid_t pid);
/* The URL of the test PostgreSQL, or NULL when the "pg" fixture is not running. */
char *tu_pg_url(void);
/* Run a shell command; returns its exit status; output to *out (caller frees) if out. */
int tu_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
