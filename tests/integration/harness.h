/*
 * Integration-test harness: a real `scepter` process on an ephemeral port, with a throwaway
 * PKI (TLS CA and server certificate, device CA), on the store backend named by
 * SCEPTER_TEST_STORE ("sqlite", the default, or "postgres": a fresh database on the test
 * PostgreSQL for each test), and helpers to speak to it as a device or as an operator.
 */
#ifndef SCEPTER_TESTS_HARNESS_H
#define SCEPTER_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "support/httpc.h"
#include "support/pki.h"
#include "support/proc.h"

#define H_TOPIC   "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
#define H_API_KEY "test-api-key-0123456789"

struct h_server {
    char *dir;
    char *conf;
    char *store_url;
    const char *backend;
    struct tu_proc proc;
    int port;      /* HTTPS */
    int http_port; /* plain HTTP (when enabled) */
    struct tu_cert tls_ca, tls, dev_ca;
    char topic[160]; /* the push topic devices enroll with */
    bool peer;       /* shares another instance's directory */
    char *ports_file, *log_file;
    char *env; /* h_opts.env, kept for restarts */
};

struct h_opts {
    const char *identity; /* default "mtls,signature" */
    const char *extra;    /* more config lines */
    bool plain_http;      /* also listen_http */
    bool no_push_topic;   /* leave push_topic unset */
    const char *topic;    /* the topic devices use (default H_TOPIC) */
    const char *env;      /* one more environment variable for scepter ("KEY=VALUE") */

    const char *store_url; /* a store of the test's own (default: per SCEPTER_TEST_STORE) */
};

/* Start scepter (asserts it comes up). */
void h_start(struct h_server *s, const struct h_opts *o);
/*
 * A second instance sharing first's PKI, store and topic (scale-out), on its own port, with
 * its own configuration file; stop it with h_stop_peer.
 */
void h_start_peer(struct h_server *peer, const struct h_server *first, const struct h_opts *o);
void h_stop_peer(struct h_server *peer);
/* Append configuration lines to the server's file (then SIGHUP it, or restart). */
void h_conf_append(struct h_server *s, const char *lines);
/* Restart the same server (same store, same PKI). */
void h_restart(struct h_server *s);
/* SIGKILL (a crash: nothing is cleaned up), then start the same server again. */
void h_crash_restart(struct h_server *s);
/* SIGKILL only (h_relaunch starts it again): what a fault test inspects in between. */
void h_kill(struct h_server *s);
void h_relaunch(struct h_server *s);
/* SIGTERM; asserts a clean exit 0 unless allow_fail; frees everything. */
void h_stop(struct h_server *s);
/* A device identity issued by the device CA with CN = cn. */
struct tu_cert h_device_cert(struct h_server *s, const char *cn);

/* How a device proves its identity. */
enum h_auth { H_MTLS, H_SIGNATURE, H_NONE };

/* PUT a body to /mdm/checkin or /mdm/connect as a device. */
int h_device_put(struct h_server *s, const struct tu_cert *id, enum h_auth auth, const char *path,
                 const char *content_type, const void *body, size_t len, struct tu_http_resp *resp);
int h_checkin(struct h_server *s, const struct tu_cert *id, const char *xml,
              struct tu_http_resp *resp);
int h_connect(struct h_server *s, const struct tu_cert *id, const char *xml,
              struct tu_http_resp *resp);
/* A check-in/connect plist body from key/value pairs: "MessageType", "Authenticate", ...
 * Values starting with "data:" become <data> (base64 of the rest), "true"/"false" booleans. */
char *h_plist(const char *first_key, ...) __attribute__((sentinel));
/* Authenticate + TokenUpdate for udid with identity id (asserts 200s). */
void h_enroll(struct h_server *s, const struct tu_cert *id, const char *udid, const char *product);

/* Operator API call with the bootstrap key; body may be NULL.  Returns the status; *out is
 * the parsed JSON (caller json_decref()s) when out is non-NULL. */
int h_api(struct h_server *s, const char *method, const char *path, const char *body, json_t **out);

/* JSON text for assertion messages (a static buffer; truncated at 8 KiB). */
const char *h_json(const json_t *j);

#endif
