/*
 * Test helpers.
 */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

char *tu_shared_path(const char *rel)
{
    return env_path("SCEPTER_SHARED_DIR", "../shared", rel);
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

unsigned char *tu_read_shared(const char *rel, size_t *len)
{
    char *p = tu_shared_path(rel);
    unsigned char *d = tu_read(p, len);
    free(p);
    return d;
}

void tu_write(const char *path, const void *data, size_t len)
{
    struct scepter_error err;
    cr_assert_eq(file_write(path, data, len, 0600, &err), 0, "write %s: %s", path, err.msg);
}

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/scepter-test.XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

void tu_rmtree(const char *path)
{
    if (path && strncmp(path, "/tmp/", 5) == 0)
        cr_assert_eq(tu_sh(NULL, "rm -rf '%s'", path), 0);
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
