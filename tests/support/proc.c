/*
 * Child processes for integration tests.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/file.h"
#include "common/xmalloc.h"
#include "support.h"

struct tu_proc tu_proc_start(const char *const *argv, const char *const *env, const char *log_path)
{
    struct tu_proc p = {0, xstrdup(log_path)};
    pid_t parent = getpid(), pid = fork();

    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Its own process group (teardown kills the group), and death with the test process
         * — also when the test crashed or was killed before its teardown. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the test died before prctl */
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)(uintptr_t)*e);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with the child's own call */
    tu_track_pid(pid);
    p.pid = pid;
    return p;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    int status = 0, rc = -1;

    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    while (mono_ms() < deadline) {
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        usleep(10000);
    }
    if (rc == -1) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
    }
    killpg(p->pid, SIGKILL); /* anything it started in its group */
    tu_untrack_pid(p->pid);
    p->pid = 0;
    free(p->log_path);
    p->log_path = NULL;
    return rc;
}

int tu_proc_alive(const struct tu_proc *p)
{
    int status;
    return p->pid > 0 && waitpid(p->pid, &status, WNOHANG) == 0;
}

int tu_wait_file(const char *path, const struct tu_proc *p, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    struct stat st;

    while (mono_ms() < deadline) {
        if (stat(path, &st) == 0 && st.st_size > 0)
            return 0;
        if (p && !tu_proc_alive(p))
            return -1;
        usleep(20000);
    }
    return -1;
}

char *tu_proc_log(const struct tu_proc *p)
{
    unsigned char *data = NULL;
    size_t len = 0;
    struct scepter_error err;

    if (p->log_path == NULL || file_read(p->log_path, 64 << 20, &data, &len, &err) != 0)
        return xstrdup("");
    return (char *)data;
}
