/*
 * Driving apns-test-server from C: start it as a child process (it dies with its parent),
 * learn its ports, talk to its control API, stop it.  Used by the APNs unit tests, the push
 * benchmark and the device simulator.  No Criterion here: functions return NULL / negative
 * and print the reason to stderr, so benchmarks can use them too.
 */
#ifndef SCEPTER_TESTS_APNS_HARNESS_H
#define SCEPTER_TESTS_APNS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct ts_server {
    pid_t pid;
    int port;         /* HTTP/2 TLS */
    int control_port; /* HTTP/1.1 control API */
    char *dir;        /* temporary directory of the port files */
};

/*
 * The certificates of tests/apns-server/make-test-pki.sh: $SCEPTER_APNS_PKI, else
 * $SCEPTER_BINARY_DIR/apns-pki, generated there on first use.  Returns "<dir>/<name>"
 * (caller frees), or NULL when the directory cannot be made.
 */
char *ts_pki(const char *name);
/* The contents of a small PKI text file (e.g. "topic"), trimmed; caller frees. */
char *ts_pki_text(const char *name);

/*
 * Start the server with TLS cert/key from the PKI, a control port, the given extra
 * arguments (NULL-terminated) and a lifetime limit.  Waits (bounded) for its port files.
 * Returns NULL on failure.
 */
struct ts_server *ts_start(const char *const *extra_args);
/* SIGTERM, wait (bounded; SIGKILL after 10 s) and free.  Returns the exit status or -1. */
int ts_stop(struct ts_server *ts);

/*
 * One HTTP/1.1 request to 127.0.0.1:port (Connection: close).  Returns the status and the
 * body in *body (caller frees; may be NULL), or -1.
 */
int ts_http(int port, const char *method, const char *path, const char *body, char **resp);
/* GET /stats, parsed; NULL on failure. */
json_t *ts_stats(struct ts_server *ts);
/* An integer field of /stats (dotted path into objects, e.g. "by_status.200"); 0 if absent,
 * -1 on failure. */
long long ts_stat(struct ts_server *ts, const char *path);
/* GET /log?n=N, the "entries" array (caller decrefs); NULL on failure. */
json_t *ts_log(struct ts_server *ts, size_t n);
/* POST /script with this JSON text; 0 or -1. */
int ts_script(struct ts_server *ts, const char *json);

#endif
