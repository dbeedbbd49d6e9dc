/*
 * scepterctl's connection to the operator API: global options (--server, --api-key, --ca,
 * --insecure, --json, from flags or SCEPTER_SERVER / SCEPTER_API_KEY / SCEPTER_CA), one
 * request per call, the error an operator or a script acts on, and table output.
 *
 * The connection settings are the one piece of process-wide state scepterctl keeps: main()
 * fills them once, before any command runs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/httpc.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"

static struct ctl_conn g_conn = {"https://localhost:8443", NULL, NULL, false, false};

const struct ctl_conn *ctl_conn(void)
{
    return &g_conn;
}

int ctl_global_opts(int *argc, char **argv)
{
    const char *v;
    int o = 0;

    if ((v = getenv("SCEPTER_SERVER")) && *v)
        g_conn.server = v;
    if ((v = getenv("SCEPTER_API_KEY")) && *v)
        g_conn.api_key = v;
    if ((v = getenv("SCEPTER_CA")) && *v)
        g_conn.ca_file = v;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i], **slot = NULL;
        bool *flag = NULL;
        size_t nlen;
        const char *names[] = {"--server", "--api-key", "--ca"};
        const char **slots[] = {&g_conn.server, &g_conn.api_key, &g_conn.ca_file};

        for (size_t k = 0; k < ARRAY_LEN(names); k++) {
            nlen = strlen(names[k]);
            if (strncmp(a, names[k], nlen) == 0 && (a[nlen] == '\0' || a[nlen] == '=')) {
                slot = slots[k];
                if (a[nlen] == '=') {
                    *slot = a + nlen + 1;
                } else if (i + 1 < *argc) {
                    *slot = argv[++i];
                } else {
                    fprintf(stderr, "scepterctl: %s needs a value\n", names[k]);
                    return CTL_USAGE;
                }
                break;
            }
        }
        if (strcmp(a, "--insecure") == 0)
            flag = &g_conn.insecure;
        else if (strcmp(a, "--json") == 0)
            flag = &g_conn.json;
        if (flag)
            *flag = true;
        if (slot == NULL && flag == NULL)
            argv[o++] = argv[i];
    }
    *argc = o;
    return 0;
}

int ctl_exit_for_status(int status)
{
    if (status >= 200 && status < 300)
        return CTL_OK;
    switch (status) {
    case 400:
    case 405:
    case 413:
    case 415:
        return CTL_USAGE;
    case 404:
        return CTL_NOTFOUND;
    case 409:
        return CTL_CONFLICT;
    case 401:
    case 403:
        return CTL_AUTH;
    default:
        return CTL_FAIL;
    }
}

static int call(const char *method, const char *path, json_t *body, const char *accept,
                json_t **out, char **raw, size_t *raw_len)
{
    struct httpc_opts o = {
        .ca_file = g_conn.ca_file, .insecure = g_conn.insecure, .timeout_ms = 60000};
    struct httpc_response r;
    struct scepter_error err;
    char *url = xasprintf("%s%s", g_conn.server, path), *headers, *text = NULL;
    json_t *reply = NULL;
    int rc;

    *out = NULL;
    if (g_conn.api_key == NULL) {
        fprintf(stderr, "scepterctl: no API key: pass --api-key or set SCEPTER_API_KEY\n");
        free(url);
        return CTL_USAGE;
    }
    headers = xasprintf("Authorization: Bearer %s\r\nAccept: %s\r\n%s", g_conn.api_key, accept,
                        body ? "Content-Type: application/json\r\n" : "");
    if (body)
        text = json_dumps(body, JSON_COMPACT);
    rc = httpc_request(url, method, headers, text, text ? strlen(text) : 0, &o, &r, &err);
    free(text); /* jansson's allocation */
    free(headers);
    if (rc != 0) {
        fprintf(stderr, "scepterctl: %s %s: %s\n", method, url, err.msg);
        free(url);
        return CTL_FAIL;
    }
    free(url);
    if (r.body_len)
        reply = json_loadb(r.body, r.body_len, 0, NULL);
    if (raw && r.status >= 200 && r.status < 300) {
        *raw = xmemdup0(r.body ? r.body : "", r.body_len);
        *raw_len = r.body_len;
    }
    if (r.status < 200 || r.status >= 300) {
        const char *msg = reply ? json_string_value(json_object_get(reply, "error")) : NULL;
        const char *field = reply ? json_string_value(json_object_get(reply, "field")) : NULL;
        json_t *problems = reply ? json_object_get(reply, "problems") : NULL;
        if (json_array_size(problems) > 0) {
            size_t i;
            json_t *p;
            json_array_foreach(problems, i, p)
            {
                const char *sev = json_string_value(json_object_get(p, "severity"));
                const char *m = json_string_value(json_object_get(p, "message"));
                fprintf(stderr, "%s: %s\n", sev ? sev : "error", m ? m : "?");
            }
        } else {
            fprintf(stderr, "scepterctl: %d: %s%s%s%s\n", r.status,
                    msg ? msg : (r.body_len ? r.body : "no detail"), field ? " (field: " : "",
                    field ? field : "", field ? ")" : "");
        }
        json_decref(reply);
        rc = ctl_exit_for_status(r.status);
        httpc_response_clear(&r);
        return rc;
    }
    httpc_response_clear(&r);
    *out = reply ? reply : json_object();
    return CTL_OK;
}

int ctl_call(const char *method, const char *path, json_t *body, json_t **out)
{
    return call(method, path, body, "application/json", out, NULL, NULL);
}

int ctl_get_raw(const char *path, const char *accept, char **out, size_t *len)
{
    json_t *ignored = NULL;
    int rc;

    *out = NULL;
    *len = 0;
    rc = call("GET", path, NULL, accept, &ignored, out, len);
    json_decref(ignored);
    return rc;
}

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s) {
        puts(s);
        free(s); /* jansson's allocation */
    }
}

/* The text of a JSON scalar for a table cell. */
static void cell(json_t *v, char *out, size_t outlen)
{
    if (v == NULL || json_is_null(v))
        str_copy(out, outlen, "-");
    else if (json_is_string(v))
        str_copy(out, outlen, json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        str_copy(out, outlen, json_is_true(v) ? "yes" : "no");
    else if (json_is_array(v))
        snprintf(out, outlen, "%zu", json_array_size(v));
    else
        str_copy(out, outlen, "…");
}

void ctl_print_table(json_t *rows, const char *const *cols, const char *const *heads)
{
    size_t ncols = 0, width[16] = {0};
    char buf[256];
    size_t i, c;
    json_t *row;

    while (cols[ncols] && ncols < 16)
        ncols++;
    for (c = 0; c < ncols; c++)
        width[c] = strlen(heads[c]);
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < ncols; c++) {
            cell(json_object_get(row, cols[c]), buf, sizeof(buf));
            if (strlen(buf) > width[c])
                width[c] = strlen(buf) > 48 ? 48 : strlen(buf);
        }
    }
    for (c = 0; c < ncols; c++)
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, heads[c], c + 1 < ncols ? "  " : "\n");
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < ncols; c++) {
            cell(json_object_get(row, cols[c]), buf, sizeof(buf));
            if (c + 1 == ncols) /* the last column is never cut (long identifiers go there) */
                printf("%s\n", buf);
            else
                printf("%-*.*s  ", (int)width[c], (int)width[c], buf);
        }
    }
}

json_t *ctl_read_json_file(const char *path)
{
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t len = 0;
    json_error_t jerr;
    json_t *j;

    if (strcmp(path, "-") == 0) {
        j = json_loadf(stdin, 0, &jerr);
    } else {
        if (file_read(path, 16 << 20, &data, &len, &err) != 0) {
            fprintf(stderr, "scepterctl: %s\n", err.msg);
            return NULL;
        }
        j = json_loadb((const char *)data, len, 0, &jerr);
        free(data);
    }
    if (j == NULL)
        fprintf(stderr, "scepterctl: %s: line %d: %s\n", path, jerr.line, jerr.text);
    return j;
}

char *ctl_path(const char *fmt, ...)
{
    va_list ap;
    char *raw = NULL;
    struct buf b = BUF_INIT;

    va_start(ap, fmt);
    if (vasprintf(&raw, fmt, ap) < 0)
        raw = NULL;
    va_end(ap);
    /* Escape what a URL cannot hold as is (group names with spaces, say). */
    for (const unsigned char *p = (const unsigned char *)(raw ? raw : ""); *p; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '%' && *p != '#' && *p != '+')
            buf_putc(&b, (char)*p);
        else
            buf_printf(&b, "%%%02X", *p);
    }
    free(raw); /* vasprintf's allocation */
    return buf_steal(&b, NULL);
}

/* Append "&k=v" (v escaped) to a query under construction. */
void ctl_query_add(struct buf *q, const char *k, const char *v)
{
    if (v == NULL)
        return;
    buf_putc(q, q->len ? '&' : '?');
    buf_puts(q, k);
    buf_putc(q, '=');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == ':')
            buf_putc(q, (char)*p);
        else
            buf_printf(q, "%%%02X", *p);
    }
}
