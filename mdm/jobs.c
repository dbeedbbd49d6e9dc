/*
 * The main thread's event loop and the background jobs it runs on timers, with its own store
 * connection: retention clean-up, the periodic re-push of enrollments with pending commands
 * (mdm/push.c), and whatever later issues add.  With several scepter processes on one
 * PostgreSQL, a job runs in one process at a time: each run first takes a lease in the store
 * (store_lease), so the work is done once, not once per instance.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "mdm/console_int.h"
#include "mdm/metrics_int.h"
#include "mdm/push_int.h"
#include "mdm/server_int.h"
#include "mdm/webhook_int.h"

struct mdm_job {
    const char *name;
    int64_t interval; /* seconds */
    void (*run)(struct mdm_runtime *rt, int64_t now);
    struct event *ev;
    struct mdm_runtime *rt;
};

struct mdm_jobs {
    char holder[64]; /* this process, for leases */
    struct mdm_job jobs[16];
    int n;
};

static void retention_run(struct mdm_runtime *rt, int64_t now)
{
    struct mdm_conf *conf = mdm_conf_get(rt->srv);
    int64_t days = conf->cfg->retention_days;
    struct scepter_error err;
    size_t deleted = 0;

    mdm_sessions_purge(rt->store, conf->cfg, now); /* console sessions (mdm/api_session.c) */
    mdm_audit_purge(rt->store, conf->cfg, now);    /* audit_retention_days (mdm/audit.c) */
    mdm_conf_put(rt->srv, conf);
    if (days <= 0)
        return;
    if (store_retention(rt->store, now - days * 86400, 1000, &deleted, &err) < 0) {
        log_warnx("retention: %s", err.msg);
        return;
    }
    if (deleted) {
        char n[24];
        snprintf(n, sizeof(n), "%zu", deleted);
        log_kv(LOG_LVL_INFO, "retention", "deleted", n, NULL);
    }
}

/* Queued commands past their expiry become final ("Expired"), in bounded batches. */
static void expiry_run(struct mdm_runtime *rt, int64_t now)
{
    struct scepter_error err;
    size_t n = 0, total = 0;

    for (int i = 0; i < 100; i++) {
        if (store_queue_expire(rt->store, now, 10000, &n, &err) < 0) {
            log_warnx("expiry: %s", err.msg);
            break;
        }
        total += n;
        if (n < 10000)
            break;
    }
    if (total) {
        char num[24];
        snprintf(num, sizeof(num), "%zu", total);
        mdm_metrics_expired(rt->srv, total);
        log_kv(LOG_LVL_INFO, "commands_expired", "count", num, NULL);
    }
}

/* Identities close to their notAfter get the enrollment profile again (mdm/identity.c). */
static void renewal_run(struct mdm_runtime *rt, int64_t now)
{
    struct mdm_conf *conf = mdm_conf_get(rt->srv);
    struct mdm_ctx ctx = {rt->srv, conf->cfg, rt->store, NULL, conf};

    mdm_renewal_run(&ctx, now);
    mdm_conf_put(rt->srv, conf);
}

static void job_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_job *job = arg;
    struct mdm_runtime *rt = job->rt;
    struct scepter_error err;
    int64_t now = (int64_t)time(NULL);
    int rc;

    (void)fd;
    (void)what;
    rc = store_lease(rt->store, job->name, rt->jobs->holder, now, job->interval * 2 + 10, &err);
    if (rc < 0) {
        log_warnx("job %s: lease: %s", job->name, err.msg);
        return;
    }
    if (rc == 0)
        return; /* another instance runs it */
    job->run(rt, now);
}

void mdm_jobs_add(struct mdm_runtime *rt, const char *name, int64_t interval,
                  void (*run)(struct mdm_runtime *rt, int64_t now))
{
    struct mdm_jobs *jobs = rt->jobs;
    struct mdm_job *job;
    struct timeval tv = {interval, 0};

    if (interval <= 0 || jobs->n >= (int)ARRAY_LEN(jobs->jobs))
        return;
    job = &jobs->jobs[jobs->n++];
    job->name = name;
    job->interval = interval;
    job->run = run;
    job->rt = rt;
    job->ev = event_new(rt->base, -1, EV_PERSIST, job_cb, job);
    event_add(job->ev, &tv);
}

int mdm_runtime_start(struct mdm_runtime *rt, struct scepter_error *err)
{
    char host[64] = "host";

    rt->base = event_base_new();
    rt->jobs = xcalloc(1, sizeof(*rt->jobs));
    gethostname(host, sizeof(host) - 1);
    char id[UUID_STR_LEN];
    uuid_new(id);
    snprintf(rt->jobs->holder, sizeof(rt->jobs->holder), "%.24s/%ld/%.8s", host, (long)getpid(),
             id);
    mdm_jobs_add(rt, "retention", rt->srv->cfg->retention_interval, retention_run);
    mdm_jobs_add(rt, "expiry", rt->srv->cfg->expiry_interval, expiry_run);
    mdm_jobs_add(rt, "renewal", rt->srv->cfg->identity_renew_interval, renewal_run);
    mdm_webhook_start(rt);
    return mdm_push_start(rt, err);
}

void mdm_runtime_stop(struct mdm_runtime *rt)
{
    mdm_push_stop(rt->srv);
    if (rt->jobs == NULL)
        return;
    for (int i = 0; i < rt->jobs->n; i++)
        event_free(rt->jobs->jobs[i].ev);
    free(rt->jobs);
    rt->jobs = NULL;
}
