/*
 * The connection bound of scale mode: a counting semaphore with a FIFO wait queue, as plain
 * bookkeeping.  The engine asks for a slot before a device opens a connection and gives it
 * back when the device's exchange ends; the waiter handed the freed slot starts next.  Kept
 * free of sockets so the bound and the order are unit-tested directly.
 */
#include "sim.h"

#include "common/xmalloc.h"

struct sim_pool {
    unsigned limit;
    unsigned in_use;
    unsigned peak;
    void **q; /* ring buffer of waiters */
    size_t qcap;
    size_t head; /* index of the oldest waiter */
    size_t qlen;
};

struct sim_pool *sim_pool_new(unsigned limit)
{
    struct sim_pool *p = xcalloc(1, sizeof(*p));

    p->limit = limit ? limit : 1;
    return p;
}

void sim_pool_free(struct sim_pool *p)
{
    if (p == NULL)
        return;
    free(p->q);
    free(p);
}

static void push(struct sim_pool *p, void *who)
{
    if (p->qlen == p->qcap) {
        size_t ncap = p->qcap ? p->qcap * 2 : 64;
        void **nq = xreallocarray(NULL, ncap, sizeof(void *));

        for (size_t i = 0; i < p->qlen; i++)
            nq[i] = p->q[(p->head + i) % p->qcap];
        free(p->q);
        p->q = nq;
        p->qcap = ncap;
        p->head = 0;
    }
    p->q[(p->head + p->qlen) % p->qcap] = who;
    p->qlen++;
}

bool sim_pool_acquire(struct sim_pool *p, void *who)
{
    if (p->in_use < p->limit && p->qlen == 0) {
        p->in_use++;
        if (p->in_use > p->peak)
            p->peak = p->in_use;
        return true;
    }
    push(p, who);
    return false;
}

void *sim_pool_release(struct sim_pool *p)
{
    void *next;

    if (p->in_use == 0)
        return NULL;
    if (p->qlen == 0) {
        p->in_use--;
        return NULL;
    }
    /* The slot passes straight to the oldest waiter: in_use stays the same. */
    next = p->q[p->head];
    p->head = (p->head + 1) % p->qcap;
    p->qlen--;
    return next;
}

bool sim_pool_cancel(struct sim_pool *p, void *who)
{
    for (size_t i = 0; i < p->qlen; i++) {
        if (p->q[(p->head + i) % p->qcap] != who)
            continue;
        for (size_t j = i; j + 1 < p->qlen; j++)
            p->q[(p->head + j) % p->qcap] = p->q[(p->head + j + 1) % p->qcap];
        p->qlen--;
        return true;
    }
    return false;
}

unsigned sim_pool_in_use(const struct sim_pool *p)
{
    return p->in_use;
}

size_t sim_pool_waiting(const struct sim_pool *p)
{
    return p->qlen;
}

unsigned sim_pool_peak(const struct sim_pool *p)
{
    return p->peak;
}
