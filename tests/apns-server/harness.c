/*
 * Driving apns-test-server from tests and benchmarks: see harness.h.  Every wait is bounded
 * in count and time; the child gets PR_SET_PDEATHSIG so a crashed test never leaves it
 * running.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xmalloc.h"

static char *pki_dir(void)
{
    const char *env = getenv("SCEPTER_APNS_PKI");
    const char *bin = getenv("SCEPTER_BINARY_DIR");
    const char *src = getenv("SCEPTER_SOURCE_DIR");
    char *dir, *marker, *cmd;
    struct stat st;
    int rc;

    if (env && *env)
        return xstrdup(env);
    dir = xasprintf("%s/apns-pki", bin ? bin : ".");
    marker = xasprintf("%s/.complete", dir);
    rc = stat(marker, &st);
    free(marker);
    if (rc == 0)
        return dir;
    cmd =
        xasprintf("'%s/tests/apns-server/make-test-pki.sh' '%s' >/dev/null", src ? src : ".", dir);
    rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "harness: cannot generate the test PKI in %s\n", dir);
        free(dir);
        return NULL;
    }
    return dir;
}

char *ts_pki(const char *name)
{
    char *dir = pki_dir(), *p;

    if (dir == NULL)
        return NULL;
    p = xasprintf("%s/%s", dir, name);
    free(dir);
    return p;
}

char *ts_pki_text(const char *name)
{
    char *p = ts_pki(name);
    unsigned char *data = NULL;
    size_t len = 0;
    struct scepter_error err;

    if (p == NULL || file_read(p, 65536, &data, &len, &err) != 0) {
        free(p);
        return NULL;
    }
    free(p);
    str_trim((char *)data);
    return (char *)data;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int read_port(const char *path)
{
    unsigned char *data = NULL;
    size_t len = 0;
    struct scepter_error err;
    int64_t port = -1;

    if (file_read(path, 64, &data, &len, &err) != 0)
        return -1;
    if (str_to_i64(str_trim((char *)data), 1, 65535, &port) != 0)
        port = -1;
    free(data);
    return (int)port;
}

static const char *server_binary(char *buf, size_t len)
{
    const char *bin = getenv("SCEPTER_BINARY_DIR");

    snprintf(buf, len, "%s/tests/apns-server/apns-test-server", bin ? bin : ".");
    return buf;
}

struct ts_server *ts_start(const char *const *extra_args)
{
    const char *tag = getenv("SCEPTER_TEST_TAG");
    char tmpl[128], exe[1024];
    char *cert = ts_pki("server.pem"), *key = ts_pki("server.key");
    char *pf = NULL, *cpf = NULL;
    const char *argv[64];
    size_t argc = 0;
    struct ts_server *ts = NULL;
    pid_t parent = getpid(), pid;

    /* Named like the suite's other temporary directories (the leftovers check finds them). */
    snprintf(tmpl, sizeof(tmpl), "/tmp/scepter-test.%s%sXXXXXX", tag && *tag ? tag : "",
             tag && *tag ? "." : "");
    if (cert == NULL || key == NULL || mkdtemp(tmpl) == NULL)
        goto out;
    pf = xasprintf("%s/port", tmpl);
    cpf = xasprintf("%s/control-port", tmpl);
    argv[argc++] = server_binary(exe, sizeof(exe));
    argv[argc++] = "--cert";
    argv[argc++] = cert;
    argv[argc++] = "--key";
    argv[argc++] = key;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--control";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--port-file";
    argv[argc++] = pf;
    argv[argc++] = "--control-port-file";
    argv[argc++] = cpf;
    argv[argc++] = "--max-lifetime";
    argv[argc++] = "600";
    argv[argc++] = "--quiet";
    for (size_t i = 0; extra_args && extra_args[i] && argc < ARRAY_LEN(argv) - 1; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    ts = xcalloc(1, sizeof(*ts));
    ts->pid = pid;
    ts->dir = xstrdup(tmpl);
    ts->port = ts->control_port = -1;
    for (int i = 0; i < 1000 && (ts->port < 0 || ts->control_port < 0); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "harness: apns-test-server exited at start (status %d)\n", status);
            ts->pid = -1;
            ts_stop(ts);
            ts = NULL;
            goto out;
        }
        ts->port = read_port(pf);
        ts->control_port = read_port(cpf);
        if (ts->port < 0 || ts->control_port < 0)
            sleep_ms(10);
    }
    if (ts->port < 0 || ts->control_port < 0) {
        fprintf(stderr, "harness: apns-test-server did not report its ports within 10 s\n");
        ts_stop(ts);
        ts = NULL;
    } else {
        /* The port files served their purpose: nothing stays on disk if the test dies. */
        unlink(pf);
        unlink(cpf);
        rmdir(ts->dir);
    }
out:
    free(cert);
    free(key);
    free(pf);
    free(cpf);
    return ts;
}

int ts_stop(struct ts_server *ts)
{
    int status = -1, rc = -1;

    if (ts == NULL)
        return -1;
    if (ts->pid > 0) {
        kill(ts->pid, SIGTERM);
        for (int i = 0; i < 1000; i++) {
            if (waitpid(ts->pid, &status, WNOHANG) == ts->pid) {
                rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                break;
            }
            sleep_ms(10);
        }
        if (rc == -1 && kill(ts->pid, 0) == 0) {
            kill(ts->pid, SIGKILL);
            waitpid(ts->pid, &status, 0);
        }
    }
    if (ts->dir) {
        char *p = xasprintf("%s/port", ts->dir);
        unlink(p);
        free(p);
        p = xasprintf("%s/control-port", ts->dir);
        unlink(p);
        free(p);
        rmdir(ts->dir);
    }
    free(ts->dir);
    free(ts);
    return rc;
}

int ts_http(int port, const char *method, const char *path, const char *body, char **resp)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    struct timeval tv = {10, 0};
    struct buf req = BUF_INIT, in = BUF_INIT;
    char chunk[4096], *p;
    ssize_t n;
    size_t off = 0;

    if (resp)
        *resp = NULL;
    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    buf_printf(&req,
               "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
               method, path, body ? strlen(body) : 0, body ? body : "");
    while (off < req.len) {
        n = write(fd, req.data + off, req.len - off);
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    for (int i = 0; i < 100000 && (n = read(fd, chunk, sizeof(chunk))) > 0; i++)
        buf_append(&in, chunk, (size_t)n);
    if (in.len < 12 || strncmp(in.data, "HTTP/1.1 ", 9) != 0)
        goto out;
    status = (int)strtol(in.data + 9, NULL, 10);
    p = strstr(in.data, "\r\n\r\n");
    if (resp)
        *resp = xstrdup(p ? p + 4 : "");
out:
    close(fd);
    buf_free(&req);
    buf_free(&in);
    return status;
}

json_t *ts_stats(struct ts_server *ts)
{
    char *body = NULL;
    json_t *j = NULL;

    if (ts_http(ts->control_port, "GET", "/stats", NULL, &body) == 200)
        j = json_loads(body, 0, NULL);
    free(body);
    return j;
}

long long ts_stat(struct ts_server *ts, const char *path)
{
    json_t *root = ts_stats(ts), *v = root;
    char key[128];
    const char *p = path;
    long long out;

    if (root == NULL)
        return -1;
    while (v && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key))
            n = sizeof(key) - 1;
        memcpy(key, p, n);
        key[n] = '\0';
        v = json_object_get(v, key);
        p += n;
        if (*p == '.')
            p++;
    }
    out = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    json_decref(root);
    return out;
}

json_t *ts_log(struct ts_server *ts, size_t n)
{
    char path[64], *body = NULL;
    json_t *j = NULL, *entries = NULL;

    snprintf(path, sizeof(path), "/log?n=%zu", n);
    if (ts_http(ts->control_port, "GET", path, NULL, &body) == 200)
        j = json_loads(body, 0, NULL);
    free(body);
    if (j) {
        entries = json_object_get(j, "entries");
        json_incref(entries);
        json_decref(j);
    }
    return entries;
}

int ts_script(struct ts_server *ts, const char *json)
{
    char *body = NULL;
    int st = ts_http(ts->control_port, "POST", "/script", json, &body);

    if (st != 200)
        fprintf(stderr, "harness: POST /script: %d %s\n", st, body ? body : "");
    free(body);
    return st == 200 ? 0 : -1;
}
