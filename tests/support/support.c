/*
 * Test helpers.
 */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/xmalloc.h"

static char *env_path(const char *var, const char *fallback, const char *rel)
{
    const char *base = getenv(var);
    if (base == NULL)
        base = fallback;
    return xasprintf("%s/%s", base, rel);
}

#ifndef SCEPTER_TEST_DATA_DIR
#error "SCEPTER_TEST_DATA_DIR must name tests/data (tests/support/CMakeLists.txt sets it)"
#endif

char *tu_data_path(const char *rel)
{
    return xasprintf("%s/%s", SCEPTER_TEST_DATA_DIR, rel);
}

char *tu_source_path(const char *rel)
{
    return env_path("SCEPTER_SOURCE_DIR", ".", rel);
}

char *tu_binary_path(const char *rel)
{
    return env_path("SCEPTER_BINARY_DIR", ".", rel);
}

unsigned char *tu_read(const char *path, size_t *len)
{
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t n = 0;

    cr_assert_eq(file_read(path, 64 * 1024 * 1024, &data, &n, &err), 0, "read %s: %s", path,
                 err.msg);
    if (len)
        *len = n;
    return data;
}

unsigned char *tu_read_data(const char *rel, size_t *len)
{
    char *p = tu_data_path(rel);
    unsigned char *d = tu_read(p, len);
    free(p);
    return d;
}

void tu_write(const char *path, const void *data, size_t len)
{
    struct scepter_error err;
    cr_assert_eq(file_write(path, data, len, 0600, &err), 0, "write %s: %s", path, err.msg);
}

/*
 * What a test process made and must not leave behind: its temporary directories and child
 * processes, cleaned at exit() of the process that registered them (Criterion runs each test
 * in its own process and exits it normally after a failed assertion).  A crash skips atexit;
 * the children then die of PR_SET_PDEATHSIG, and leftovers_check reports the directories.
 */
#define TU_MAX_TRACKED 64

static struct {
    pid_t owner;
    char *dirs[TU_MAX_TRACKED];
    pid_t pids[TU_MAX_TRACKED];
} g_tracked;

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "support: cannot remove %s\n", path);
    free(cmd);
}

static void cleanup_at_exit(void)
{
    if (g_tracked.owner != getpid())
        return; /* a forked child inherited the handler */
    for (size_t i = 0; i < TU_MAX_TRACKED; i++) {
        pid_t pid = g_tracked.pids[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            killpg(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            g_tracked.pids[i] = 0;
        }
    }
    for (size_t i = 0; i < TU_MAX_TRACKED; i++) {
        if (g_tracked.dirs[i]) {
            rm_rf(g_tracked.dirs[i]);
            free(g_tracked.dirs[i]);
            g_tracked.dirs[i] = NULL;
        }
    }
}

static void track_init(void)
{
    if (g_tracked.owner != getpid()) {
        /* First use in this process (or in a fork of the one that registered). */
        memset(&g_tracked, 0, sizeof(g_tracked));
        g_tracked.owner = getpid();
        atexit(cleanup_at_exit);
    }
}

void tu_track_pid(pid_t pid)
{
    track_init();
    for (size_t i = 0; i < TU_MAX_TRACKED; i++)
        if (g_tracked.pids[i] == 0) {
            g_tracked.pids[i] = pid;
            return;
        }
    cr_assert_fail("more than %d child processes in one test", TU_MAX_TRACKED);
}

void tu_untrack_pid(pid_t pid)
{
    if (g_tracked.owner != getpid())
        return;
    for (size_t i = 0; i < TU_MAX_TRACKED; i++)
        if (g_tracked.pids[i] == pid)
            g_tracked.pids[i] = 0;
}

char *tu_tmpdir(void)
{
    const char *tag = getenv("SCEPTER_TEST_TAG");
    char *tmpl = tag && *tag ? xasprintf("/tmp/scepter-test.%s.XXXXXX", tag)
                             : xstrdup("/tmp/scepter-test.XXXXXX");

    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp %s", tmpl);
    track_init();
    for (size_t i = 0; i < TU_MAX_TRACKED; i++)
        if (g_tracked.dirs[i] == NULL) {
            g_tracked.dirs[i] = xstrdup(tmpl);
            return tmpl;
        }
    rm_rf(tmpl);
    cr_assert_fail("more than %d temporary directories in one test", TU_MAX_TRACKED);
    return NULL;
}

void tu_rmtree(const char *path)
{
    if (path == NULL || strncmp(path, "/tmp/", 5) != 0)
        return;
    cr_assert_eq(tu_sh(NULL, "rm -rf '%s'", path), 0);
    if (g_tracked.owner != getpid())
        return;
    for (size_t i = 0; i < TU_MAX_TRACKED; i++)
        if (g_tracked.dirs[i] && strcmp(g_tracked.dirs[i], path) == 0) {
            free(g_tracked.dirs[i]);
            g_tracked.dirs[i] = NULL;
        }
}

char *tu_pg_url(void)
{
    char *p = tu_binary_path("pgtest/pg.url");
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = file_read(p, 4096, &data, &len, &err);

    free(p);
    if (rc != 0)
        return NULL;
    while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
        data[--len] = '\0';
    return (char *)data;
}

int tu_sh(char **out, const char *fmt, ...)
{
    va_list ap;
    char *cmd = NULL;
    FILE *fp;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    int status;

    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&cmd, fmt, ap), 0);
    va_end(ap);
    fp = popen(cmd, "r");
    cr_assert_not_null(fp, "popen %s", cmd);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        buf_append(&b, chunk, n);
    status = pclose(fp);
    free(cmd);
    if (out)
        *out = buf_steal(&b, NULL);
    else
        buf_free(&b);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
