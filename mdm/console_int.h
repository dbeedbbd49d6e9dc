/*
 * Private to mdm/: the web console (mdm/console.c) — its files, embedded in the binary at
 * build time from console/ (mdm/embed_console.cmake) — and the retention of its sessions
 * (mdm/api_session.c).
 */
#ifndef SCEPTER_MDM_CONSOLE_INT_H
#define SCEPTER_MDM_CONSOLE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mdm/mdm_int.h"

/* One embedded file of console/. */
struct console_asset {
    const char *path; /* relative to console/: "index.html", "css/app.css" */
    const unsigned char *data;
    size_t len;
};
/* Generated (console_assets.c). */
extern const struct console_asset console_assets[];
extern const size_t console_assets_len;

/* The Content-Security-Policy of every console response. */
#define CONSOLE_CSP                                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "                   \
    "frame-ancestors 'none'"

/* The embedded file at path (relative to console/), or NULL. */
const struct console_asset *mdm_console_find(const char *path);
/* The media type served for a file name, by its extension. */
const char *mdm_console_content_type(const char *path);
/* GET /console and /console/... */
void mdm_console_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply);
/* GET /: a browser (Accept: text/html) is sent to /console/; anything else gets 404. */
void mdm_console_root(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                      struct mdm_reply *reply);
/* Retention: delete console sessions that can no longer be used (the retention job). */
void mdm_sessions_purge(struct store *st, const struct cfg *cfg, int64_t now);
/* Delete audit entries older than audit_retention_days (mdm/audit.c). */
void mdm_audit_purge(struct store *st, const struct cfg *cfg, int64_t now);

#endif
