/*
 * Bounded file I/O.
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xmalloc.h"

int file_read(const char *path, size_t max, unsigned char **out, size_t *len,
              struct scepter_error *err)
{
    int fd = -1, rc;
    struct stat st;
    unsigned char *buf = NULL;
    size_t n = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: is a directory", path);
        goto out;
    }
    if (S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        rc = scepter_err(err, SCEPTER_ETOOBIG, NULL, "%s: %lld bytes is over the %zu-byte limit",
                         path, (long long)st.st_size, max);
        goto out;
    }
    buf = xmalloc(max + 1);
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            rc = scepter_err(err, SCEPTER_ETOOBIG, NULL, "%s: over the %zu-byte limit", path, max);
            goto out;
        }
    }
    buf = xrealloc(buf, n + 1);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int file_write(const char *path, const void *data, size_t len, int mode, struct scepter_error *err)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = -1, rc;
    size_t off = 0;

    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = scepter_err(err, SCEPTER_EIO, NULL, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}
