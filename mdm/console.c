/*
 * The web console's files: GET /console/ serves console/index.html and GET /console/<path>
 * the file console/<path>, from the copies embedded in the binary at build time
 * (mdm/embed_console.cmake) — nothing is read from disk, so no path can reach another file.
 * Paths with "." or ".." segments, empty segments, backslashes or percent signs (left by a
 * double encoding) are refused outright.  Every console response — files, redirects and
 * errors — carries a strict Content-Security-Policy (no inline script, no framing),
 * X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer; index.html is never
 * cached.  The console itself speaks the /v1 API (mdm/api_session.c signs it in).
 */
#include <string.h>
#include <strings.h>

#include "common/str.h"
#include "mdm/console_int.h"

const struct console_asset *mdm_console_find(const char *path)
{
    for (size_t i = 0; i < console_assets_len; i++)
        if (strcmp(console_assets[i].path, path) == 0)
            return &console_assets[i];
    return NULL;
}

const char *mdm_console_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".jpg", "image/jpeg"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');

    if (dot != NULL)
        for (size_t i = 0; i < ARRAY_LEN(types); i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static void security_headers(struct mdm_reply *reply)
{
    mdm_reply_header(reply, "Content-Security-Policy", CONSOLE_CSP);
    mdm_reply_header(reply, "X-Content-Type-Options", "nosniff");
    mdm_reply_header(reply, "Referrer-Policy", "no-referrer");
    mdm_reply_header(reply, "X-Frame-Options", "DENY");
}

/* A relative path of plain segments: no "", ".", ".." segment, no '\\', '%' or control
 * character. */
static bool plain_path(const char *p)
{
    const char *seg = p;

    for (;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t len = (size_t)(p - seg);
            if (len == 0 || (len == 1 && seg[0] == '.') ||
                (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
        } else if (*p == '\\' || *p == '%' || (unsigned char)*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
}

void mdm_console_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                        struct mdm_reply *reply)
{
    const char *rel;
    const struct console_asset *a;

    (void)ctx;
    (void)now;
    reply->event = "console";
    reply->message_type = req->path;
    security_headers(reply);
    if (req->method != MDM_GET && req->method != MDM_HEAD) {
        mdm_reply_header(reply, "Allow", "GET, HEAD");
        mdm_reply_error(reply, 405, "console: GET only");
        return;
    }
    if (strcmp(req->path, "/console") == 0) {
        mdm_reply_header(reply, "Location", "/console/");
        mdm_reply_error(reply, 301, "the console is at /console/");
        return;
    }
    rel = req->path + strlen("/console/");
    if (*rel == '\0')
        rel = "index.html";
    if (!plain_path(rel)) {
        mdm_reply_error(reply, 400, "console: '%.100s' is not a plain file path", rel);
        return;
    }
    if ((a = mdm_console_find(rel)) == NULL) {
        mdm_reply_error(reply, 404, "console: no file %.100s", rel);
        return;
    }
    mdm_reply_header(reply, "Cache-Control",
                     strcmp(a->path, "index.html") == 0 ? "no-store" : "no-cache");
    reply->status = 200;
    reply->content_type = mdm_console_content_type(a->path);
    buf_reset(&reply->body);
    buf_append(&reply->body, a->data, a->len); /* evhttp sends no body to a HEAD */
}

void mdm_console_root(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                      struct mdm_reply *reply)
{
    const char *accept = mdm_header(req, "Accept");

    (void)ctx;
    (void)now;
    reply->event = "http";
    if ((req->method == MDM_GET || req->method == MDM_HEAD) && accept != NULL &&
        strcasestr(accept, "text/html") != NULL) {
        reply->event = "console";
        security_headers(reply);
        mdm_reply_header(reply, "Location", "/console/");
        mdm_reply_error(reply, 302, "the console is at /console/");
        return;
    }
    mdm_reply_error(reply, 404, "no such endpoint: /");
}
