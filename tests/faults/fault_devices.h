/*
 * The fault suite's devices and operator: simulated devices that poll the real scepter over
 * mTLS from a few threads, keep their own record of every command they were given and every
 * result they sent, and an operator thread that fans commands out to random subsets of them
 * with UUIDs of its own (so an answer lost in a crash is retried and recognised).  After the
 * faults, fd_check() compares the devices' records with what the store says.
 */
#ifndef SCEPTER_TESTS_FAULT_DEVICES_H
#define SCEPTER_TESTS_FAULT_DEVICES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "integration/harness.h"

#define FD_MAX_DEVICES  512
#define FD_MAX_COMMANDS 128
#define FD_MAX_ACKS     64 /* result attempts remembered per (device, command) */
#define FD_MAX_THREADS  8

/* One (device, command) pair as the device saw it. */
struct fd_pair {
    int delivered;                    /* times the command came over the wire */
    int nacks;                        /* results sent */
    long long ack_nonce[FD_MAX_ACKS]; /* the FaultNonce of each result sent */
    bool ack_ok[FD_MAX_ACKS];         /* ... and whether the server answered it 200 */
    bool settled;   /* a result answered 200, or one left unanswered and not asked for again */
    bool forgotten; /* its unanswered result given up on: settled if the queue runs empty */
};

struct fd_device {
    char udid[40];
    struct tu_cert id;
    struct fd_pair pairs[FD_MAX_COMMANDS];
    int foreign;           /* commands delivered that the operator never queued for it */
    long long nonce;       /* next FaultNonce */
    int pending_k;         /* a result not answered 200 (-1: none), re-sent on reconnection */
    long long polls;       /* requests answered */
    long long refused;     /* answers 401/403 (never acceptable) */
    long long s5xx;        /* answers 5xx (retryable) */
    long long s500;        /* answers 500 exactly (a store outage must be 503) */
    long long other;       /* other non-200 answers */
    long long netfail;     /* no answer: connection refused, reset, timeout */
    long long max_wait_ms; /* longest time one request took */
};

struct fd_command {
    char uuid[40];
    bool target[FD_MAX_DEVICES];
    int ntargets;
    atomic_bool queued;
    int attempts; /* POSTs until 201/409 */
};

struct fd_world;
struct fd_thread {
    struct fd_world *w;
    int no;
};

struct fd_world {
    struct h_server *srv[2]; /* requests go to either (srv[1] may be NULL) */
    int ninst;
    int ndevices, ncommands, nthreads;
    unsigned seed;
    struct fd_device dev[FD_MAX_DEVICES];
    struct fd_command cmd[FD_MAX_COMMANDS];
    int fanout_gap_ms; /* operator's pause between fan-outs */
    atomic_bool stop;  /* devices stop */
    atomic_int fanned; /* commands queued so far */
    pthread_t threads[FD_MAX_THREADS], op;
    struct fd_thread thr[FD_MAX_THREADS];
    atomic_llong api_fail; /* operator POSTs without a usable answer */
    atomic_int in_fanout;  /* the operator's POST /v1/commands is in flight */
    atomic_int in_flight;  /* device requests in flight */
};

/* Enroll the devices (through srv[0]). */
void fd_setup(struct fd_world *w, struct h_server *srv, int ndevices, int ncommands, int nthreads,
              unsigned seed);
/* Start the device threads and the operator thread. */
void fd_run(struct fd_world *w);
/* Wait for the operator to have queued everything, then (bounded) for every device to have
 * had each of its commands answered; stop the devices.  false when the wait ran out. */
bool fd_finish(struct fd_world *w, int timeout_s);

/* Figures for the report, and the invariants checked against the store. */
struct fd_report {
    long long pairs;        /* (device, command) pairs queued */
    long long deliveries;   /* commands seen on the wire */
    long long duplicates;   /* re-deliveries (at-least-once) */
    long long results_sent; /* result messages sent */
    long long lost;         /* pairs never delivered or not acknowledged in the store */
    long long wrong_device; /* deliveries of a command not queued for that device */
    long long bad_record;   /* results in the store not from an attempt before the first 200 */
    long long phantom;      /* queue rows for commands the operator never queued there */
    long long corrupt;      /* enrollments not enrolled / token lost / final Idle refused */
    long long refused;      /* 401/403 answers */
    long long s5xx, s500, netfail;
    long long max_wait_ms;
};
void fd_check(struct fd_world *w, struct h_server *srv, struct fd_report *r);
void fd_free(struct fd_world *w);

/* Operator call without asserting (fault-tolerant); status or -1.  *out parsed JSON. */
int fd_api(struct h_server *s, const char *method, const char *path, const char *body,
           json_t **out);

#endif
