/*
 * struct mdm_reply helpers: what a handler answers, gathered as a value so the HTTP layer
 * sends exactly one reply.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/mdm_int.h"

void mdm_reply_init(struct mdm_reply *r)
{
    memset(r, 0, sizeof(*r));
    r->status = 500;
}

void mdm_reply_free(struct mdm_reply *r)
{
    buf_free(&r->body);
    for (int i = 0; i < r->nheaders; i++)
        free(r->headers[i].value);
    r->nheaders = 0;
}

void mdm_reply_header(struct mdm_reply *r, const char *name, const char *value)
{
    if (r->nheaders >= MDM_MAX_HEADERS)
        return;
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = xstrdup(value);
    r->nheaders++;
}

void mdm_reply_empty(struct mdm_reply *r)
{
    r->status = 200;
    r->content_type = NULL;
    buf_reset(&r->body);
}

void mdm_reply_error(struct mdm_reply *r, int status, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    r->content_type = "text/plain; charset=utf-8";
    buf_reset(&r->body);
    buf_puts(&r->body, r->reason);
    buf_putc(&r->body, '\n');
}

void mdm_reply_unrecognized(struct mdm_reply *r, const char *why)
{
    /* schema: mdm/errors/unrecognized.device.yaml — the device unenrolls on this answer. */
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n"
        "\t<key>code</key>\n\t<string>com.apple.unrecognized.device</string>\n"
        "\t<key>description</key>\n\t<string>The device is not enrolled with this "
        "server.</string>\n"
        "</dict>\n</plist>\n";

    r->status = 403;
    str_copy(r->reason, sizeof(r->reason), why);
    r->content_type = "application/xml";
    buf_reset(&r->body);
    buf_append(&r->body, body, sizeof(body) - 1);
}

void mdm_reply_plist(struct mdm_reply *r, const char *xml, size_t len)
{
    r->status = 200;
    r->content_type = "application/xml; charset=UTF-8";
    buf_reset(&r->body);
    buf_append(&r->body, xml, len);
}

const char *mdm_header(const struct mdm_request *req, const char *name)
{
    return req->header ? req->header(req->header_arg, name) : NULL;
}

char *mdm_query_param(const char *query, const char *name)
{
    struct evkeyvalq params;
    char *v = NULL;

    if (query == NULL)
        return NULL;
    if (evhttp_parse_query_str(query, &params) == 0) {
        const char *s = evhttp_find_header(&params, name);
        if (s)
            v = xstrdup(s);
    }
    evhttp_clear_headers(&params);
    return v;
}
