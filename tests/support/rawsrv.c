/*
 * The scripted HTTP receiver (see rawsrv.h).
 */
#include "support/rawsrv.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#define MAX_REQUEST (4u << 20)
#define IO_WAIT_MS  5000

struct rec {
    char *head, *body;
};

struct tu_rawsrv {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    struct tu_raw_reply *replies; /* data owned */
    size_t nreplies, served;
    struct rec *recs;
    size_t nrecs, cap;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool wait_in(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* Read one request (head and Content-Length body); false when the client gave up. */
static bool read_request(struct tu_rawsrv *s, int fd, struct rec *r)
{
    struct buf in = BUF_INIT;
    char chunk[8192];
    char *end = NULL;
    size_t want = 0;

    while (!atomic_load(&s->stop) && in.len < MAX_REQUEST) {
        if (end == NULL && in.data && (end = strstr(in.data, "\r\n\r\n")) != NULL) {
            const char *cl = NULL;
            for (const char *p = in.data; p < end; p = strstr(p, "\r\n") + 2)
                if (strncasecmp(p, "Content-Length:", 15) == 0)
                    cl = p + 15;
            want = (size_t)(end - in.data) + 4 + (cl ? strtoul(cl, NULL, 10) : 0);
        }
        if (end && in.len >= want)
            break;
        if (!wait_in(fd, IO_WAIT_MS))
            break;
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        buf_append(&in, chunk, (size_t)n);
    }
    if (end == NULL || in.len < want) {
        buf_free(&in);
        return false;
    }
    size_t hlen = (size_t)(end - in.data);
    r->head = xmemdup0(in.data, hlen);
    r->body = xmemdup0(in.data + hlen + 4, want - hlen - 4);
    buf_free(&in);
    return true;
}

static void send_reply(struct tu_rawsrv *s, int fd, const struct tu_raw_reply *rp)
{
    size_t off = 0;

    while (off < rp->len && !atomic_load(&s->stop)) {
        size_t n = rp->drip_ms > 0 ? 1 : rp->len - off;
        ssize_t w = send(fd, rp->data + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the client hung up (a deadline, a refused response) */
        off += (size_t)w;
        if (rp->drip_ms > 0)
            sleep_ms(rp->drip_ms);
    }
}

static void *serve(void *arg)
{
    struct tu_rawsrv *s = arg;

    while (!atomic_load(&s->stop)) {
        if (!wait_in(s->fd, 50))
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct rec r = {NULL, NULL};
        if (read_request(s, c, &r)) {
            struct tu_raw_reply rp = {NULL, 0, 0};
            pthread_mutex_lock(&s->lock);
            if (s->nrecs == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 16;
                s->recs = xreallocarray(s->recs, s->cap, sizeof(*s->recs));
            }
            s->recs[s->nrecs++] = r;
            if (s->nreplies) {
                rp = s->replies[s->served++ % s->nreplies];
                rp.data = xmemdup(rp.data, rp.len);
            }
            pthread_mutex_unlock(&s->lock);
            if (rp.data == NULL) {
                static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                rp.data = xmemdup(ok, sizeof(ok) - 1);
                rp.len = sizeof(ok) - 1;
            }
            send_reply(s, c, &rp);
            free((char *)rp.data);
        }
        shutdown(c, SHUT_RDWR);
        close(c);
    }
    return NULL;
}

struct tu_rawsrv *tu_rawsrv_start(void)
{
    struct tu_rawsrv *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int one = 1;

    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->fd, 0);
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(s->fd, 16), 0);
    cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    pthread_mutex_init(&s->lock, NULL);
    cr_assert_eq(pthread_create(&s->thread, NULL, serve, s), 0);
    return s;
}

int tu_rawsrv_port(const struct tu_rawsrv *s)
{
    return s->port;
}

static void free_replies(struct tu_rawsrv *s)
{
    for (size_t i = 0; i < s->nreplies; i++)
        free((char *)s->replies[i].data);
    free(s->replies);
    s->replies = NULL;
    s->nreplies = 0;
}

void tu_rawsrv_script(struct tu_rawsrv *s, const struct tu_raw_reply *replies, size_t n)
{
    pthread_mutex_lock(&s->lock);
    free_replies(s);
    s->replies = n ? xcalloc(n, sizeof(*replies)) : NULL;
    for (size_t i = 0; i < n; i++) {
        s->replies[i] = replies[i];
        if (s->replies[i].len == 0)
            s->replies[i].len = strlen(replies[i].data);
        s->replies[i].data = xmemdup(replies[i].data, s->replies[i].len);
    }
    s->nreplies = n;
    s->served = 0;
    pthread_mutex_unlock(&s->lock);
}

size_t tu_rawsrv_count(struct tu_rawsrv *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->nrecs;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static char *rec_field(struct tu_rawsrv *s, size_t i, bool body)
{
    char *out = NULL;

    pthread_mutex_lock(&s->lock);
    if (i < s->nrecs)
        out = xstrdup(body ? s->recs[i].body : s->recs[i].head);
    pthread_mutex_unlock(&s->lock);
    return out;
}

char *tu_rawsrv_body(struct tu_rawsrv *s, size_t i)
{
    return rec_field(s, i, true);
}

char *tu_rawsrv_head(struct tu_rawsrv *s, size_t i)
{
    return rec_field(s, i, false);
}

size_t tu_rawsrv_wait(struct tu_rawsrv *s, size_t n, int timeout_ms)
{
    size_t got = 0;

    for (int waited = 0; (got = tu_rawsrv_count(s)) < n && waited < timeout_ms; waited += 20)
        sleep_ms(20);
    return got;
}

void tu_rawsrv_stop(struct tu_rawsrv *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    free_replies(s);
    for (size_t i = 0; i < s->nrecs; i++) {
        free(s->recs[i].head);
        free(s->recs[i].body);
    }
    free(s->recs);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
