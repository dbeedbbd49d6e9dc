/*
 * Helpers shared by the test suites: where fixtures live, temporary directories, the
 * throwaway PostgreSQL's URL, reading files.  Everything aborts the test on failure
 * (Criterion's cr_assert), so callers need no checks.
 */
#ifndef SCEPTER_TESTS_SUPPORT_H
#define SCEPTER_TESTS_SUPPORT_H

#include <stddef.h>

/* "<repo>/../shared/<rel>" (SCEPTER_SHARED_DIR set by ctest); caller frees. */
char *tu_shared_path(const char *rel);
/* "<repo>/<rel>"; caller frees. */
char *tu_source_path(const char *rel);
/* "<build dir>/<rel>"; caller frees. */
char *tu_binary_path(const char *rel);
/* Read a whole file (asserts success); NUL-terminated; caller frees. */
unsigned char *tu_read(const char *path, size_t *len);
unsigned char *tu_read_shared(const char *rel, size_t *len);
/* Write a file (asserts success). */
void tu_write(const char *path, const void *data, size_t len);
/* A fresh empty directory under /tmp; caller frees the path (and may remove the tree). */
char *tu_tmpdir(void);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* The URL of the test PostgreSQL, or NULL when the "pg" fixture is not running. */
char *tu_pg_url(void);
/* Run a shell command; returns its exit status; output to *out (caller frees) if out. */
int tu_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
