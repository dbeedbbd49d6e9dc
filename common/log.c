/*
 * The logger: formats one event into a stack buffer and writes it with a single write(2),
 * so lines from several threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "str.h"

static enum log_level g_level = LOG_LVL_INFO;
static enum log_format g_format = LOG_FMT_TEXT;
static int g_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(enum log_level level, enum log_format format)
{
    g_level = level;
    g_format = format;
}

void log_set_fd(int fd)
{
    g_fd = fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return 0;
    }
    return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcasecmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcasecmp(s, "logfmt") == 0)
        *out = LOG_FMT_LOGFMT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -1;
    return 0;
}

int log_enabled(enum log_level level)
{
    return level <= g_level;
}

/* A bounded line buffer; appends silently truncate. */
struct line {
    char buf[4096];
    size_t len;
};

static void line_put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len;
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* Append a value quoted for the current format (JSON string, or logfmt-quoted if needed). */
static void line_value(struct line *l, const char *v)
{
    const unsigned char *p;
    int quote = g_format == LOG_FMT_JSON;
    char esc[8];

    if (g_format != LOG_FMT_JSON) {
        quote = *v == '\0';
        for (p = (const unsigned char *)v; *p && !quote; p++)
            if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
                quote = 1;
    }
    if (quote)
        line_put(l, "\"", 1);
    for (p = (const unsigned char *)v; *p; p++) {
        if (quote && (*p == '"' || *p == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)*p;
            line_put(l, esc, 2);
        } else if (quote && *p == '\n') {
            line_puts(l, "\\n");
        } else if (quote && (*p < 0x20 || *p == 0x7f)) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            line_puts(l, esc);
        } else {
            line_put(l, (const char *)p, 1);
        }
    }
    if (quote)
        line_put(l, "\"", 1);
}

static void line_begin(struct line *l, enum log_level level, const char *event)
{
    struct timespec ts;
    struct tm tm;
    char tbuf[40], frac[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(frac, sizeof(frac), ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
    str_append(tbuf, sizeof(tbuf), frac);

    l->len = 0;
    switch (g_format) {
    case LOG_FMT_JSON:
        line_puts(l, "{\"ts\":\"");
        line_puts(l, tbuf);
        line_puts(l, "\",\"level\":\"");
        line_puts(l, level_names[level]);
        line_puts(l, "\",\"event\":");
        line_value(l, event);
        break;
    case LOG_FMT_LOGFMT:
        line_puts(l, "ts=");
        line_puts(l, tbuf);
        line_puts(l, " level=");
        line_puts(l, level_names[level]);
        line_puts(l, " event=");
        line_value(l, event);
        break;
    default:
        line_puts(l, tbuf);
        line_puts(l, " ");
        line_puts(l, level_names[level]);
        line_puts(l, " ");
        line_puts(l, event);
        break;
    }
}

static void line_kv(struct line *l, const char *key, const char *value)
{
    if (g_format == LOG_FMT_JSON) {
        line_puts(l, ",");
        line_value(l, key);
        line_puts(l, ":");
    } else {
        line_puts(l, " ");
        line_puts(l, key);
        line_puts(l, "=");
    }
    line_value(l, value);
}

static void line_end(struct line *l)
{
    if (g_format == LOG_FMT_JSON)
        line_puts(l, "}");
    l->buf[l->len++] = '\n';
    ssize_t off = 0;
    while ((size_t)off < l->len) {
        ssize_t n = write(g_fd, l->buf + off, l->len - (size_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += n;
    }
}

static void vlog_msg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    struct line l;
    char msg[2048];

    if (!log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (suffix) {
        str_append(msg, sizeof(msg), ": ");
        str_append(msg, sizeof(msg), suffix);
    }
    line_begin(&l, level, "log");
    line_kv(&l, "msg", msg);
    line_end(&l);
}

#define LOG_FN(name, level, with_errno)                                                            \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        int saved = errno;                                                                         \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog_msg(level, (with_errno) ? strerror(saved) : NULL, fmt, ap);                           \
        va_end(ap);                                                                                \
        errno = saved;                                                                             \
    }

LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_error, LOG_LVL_ERROR, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    vlog_msg(LOG_LVL_ERROR, strerror(saved), fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_msg(LOG_LVL_ERROR, NULL, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_kv(enum log_level level, const char *event, ...)
{
    struct line l;
    va_list ap;
    const char *k, *v;

    if (!log_enabled(level))
        return;
    line_begin(&l, level, event);
    va_start(ap, event);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        if (v != NULL)
            line_kv(&l, k, v);
    }
    va_end(ap);
    line_end(&l);
}

const char *log_mask(const char *secret, char *out, size_t outlen)
{
    size_t len;

    if (secret == NULL || *secret == '\0') {
        str_copy(out, outlen, "");
        return out;
    }
    len = strlen(secret);
    if (len <= 8)
        snprintf(out, outlen, "…(%zu)", len);
    else
        snprintf(out, outlen, "%.4s…(%zu)", secret, len);
    return out;
}
