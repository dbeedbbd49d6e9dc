/*
 * Private to mdm/: the runtime behind struct mdm_server — workers, listeners, the main
 * thread's event loop and its background jobs.
 */
#ifndef SCEPTER_MDM_SERVER_INT_H
#define SCEPTER_MDM_SERVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "mdm/mdm_int.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;

/* An Idle poll waiting for the batch's store round trip (PostgreSQL). */
struct idle_item {
    struct evhttp_request *http;
    char id[24];
    char enrollment_id[256];
    char device_id[128];
    char hash[CRYPTO_SHA256_HEX_LEN];
    char *peer, *path; /* for the request log */
    struct timespec t0;
};

/* Idle polls taken in this loop turn, answered together when the turn's I/O is done. */
struct idle_batch {
    struct idle_item *items;
    size_t n, cap;
    struct event *ev; /* activated by the first poll of a batch */
};

/* A result report waiting for the batch's transaction (both stores). */
struct report_item {
    struct evhttp_request *http;
    struct mdm_report report; /* owned */
    char *peer, *path;        /* for the request log */
    struct timespec t0;
};

/* Result reports taken in this loop turn: stored with one commit, then answered. */
struct report_batch {
    struct report_item *items;
    size_t n, cap;
    struct event *ev; /* activated by the first report of a batch */
};

/* Enrollment ids seen since the last flush: an open-addressing string set. */
struct touchset {
    char **slots;
    size_t cap; /* power of two */
    size_t n;
};

/* API keys whose last_used a worker remembers between flushes (more distinct keys than this in
 * one flush interval are written at once); last_used is written at most once a minute a key. */
#define MDM_KEYS_USED_SLOTS    32
#define MDM_KEY_USED_PRECISION 60
/* Enrollments seen before the worker writes their last_seen without waiting for the timer. */
#define MDM_TOUCH_FLUSH_AT 50000

struct mdm_worker {
    int index;
    struct mdm_server *srv;
    struct mdm_runtime *rt;
    struct event_base *base;
    struct evhttp *https, *http;
    struct evhttp_bound_socket *https_sock, *http_sock;
    struct store *store;
    pthread_t thread;
    struct event *flush_ev, *stop_ev, *drain_ev;
    struct touchset touched;
    struct {
        int64_t id;      /* an API key that authenticated a request */
        int64_t used;    /* when, latest */
        int64_t written; /* the last_used written to the store (0 = never) */
    } keys_used[MDM_KEYS_USED_SLOTS];
    size_t nkeys_used;
    struct idle_batch idle;      /* used when batch_idle */
    bool batch_idle;             /* the store answers many Idle polls in one statement */
    struct report_batch reports; /* result reports of this loop turn */
    struct mdm_idcache *idcache; /* verified device certificates */
    unsigned long long seq;      /* requests served, for request ids */
    int inflight;                /* requests not yet answered (deferred Idle polls too) */
    int writing;                 /* replies handed to evhttp, not yet fully written */
    int64_t last_activity_ms;
    int64_t drain_deadline_ms;
    bool draining;
    struct mdm_conf *conf;   /* the snapshot requests are served with (a reference) */
    unsigned long cache_gen; /* srv->cache_gen when idcache was last valid */
    int64_t conns;           /* open TLS connections */
    int64_t max_conns;       /* max_connections */
};

struct mdm_runtime {
    struct mdm_server *srv;
    struct mdm_worker *workers;
    int nworkers;
    SSL_CTX *ssl;
    int https_port, http_port; /* bound ports */
    struct event_base *base;   /* the main thread: signals and background jobs */
    struct store *store;       /* the main thread's store connection */
    struct mdm_jobs *jobs;
    bool started, stopping;
};

/* Create the main event loop and the background jobs (mdm/jobs.c). */
int mdm_runtime_start(struct mdm_runtime *rt, struct scepter_error *err) WUR;
void mdm_runtime_stop(struct mdm_runtime *rt);
/* Run `run` every `interval` seconds in the main thread, in one process at a time. */
void mdm_jobs_add(struct mdm_runtime *rt, const char *name, int64_t interval,
                  void (*run)(struct mdm_runtime *rt, int64_t now));
/* SIGHUP: re-read the configuration and apply what can change without a restart. */
void mdm_reload(struct mdm_runtime *rt);
/* Warn about settings that are unsafe outside a lab (at start and after a reload). */
void mdm_config_warnings(const struct cfg *cfg);
/* Count a served request for /metrics. */
void mdm_metrics_request(struct mdm_server *srv, const struct mdm_reply *reply, int64_t elapsed_us);

#endif
