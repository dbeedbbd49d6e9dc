/*
 * Logging.  One line per event on stderr, in one of three formats: "text" for people at a
 * terminal, "logfmt" and "json" for log collectors.  The logger is the one piece of global
 * state Scepter keeps; log_init() sets it once at start-up (and again on SIGHUP).
 *
 * Two vocabularies:
 *   - printf style, after OpenSMTPD: log_warn (adds strerror(errno)), log_warnx, log_info,
 *     log_debug, fatal/fatalx (log, then exit 1);
 *   - structured: log_kv(level, event, key, value, ..., NULL) for request lines that carry
 *     the peer, the request id, the enrollment id and the command UUID.
 * Secrets and tokens never go in full into a log line: pass them through log_mask().
 */
#ifndef SCEPTER_COMMON_LOG_H
#define SCEPTER_COMMON_LOG_H

#include <stddef.h>

#include "attr.h"

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_format { LOG_FMT_TEXT = 0, LOG_FMT_LOGFMT, LOG_FMT_JSON };

void log_init(enum log_level level, enum log_format format);
/* Parse "error", "warn", "info", "debug"; 0 or -1. */
int log_level_parse(const char *s, enum log_level *out) WUR;
/* Parse "text", "logfmt", "json"; 0 or -1. */
int log_format_parse(const char *s, enum log_format *out) WUR;
int log_enabled(enum log_level level);
/* Send log lines to fd instead of stderr (tests). */
void log_set_fd(int fd);

void log_warn(const char *fmt, ...) PRINTF(1, 2);
void log_warnx(const char *fmt, ...) PRINTF(1, 2);
void log_error(const char *fmt, ...) PRINTF(1, 2);
void log_info(const char *fmt, ...) PRINTF(1, 2);
void log_debug(const char *fmt, ...) PRINTF(1, 2);
NORETURN void fatal(const char *fmt, ...) PRINTF(1, 2);
NORETURN void fatalx(const char *fmt, ...) PRINTF(1, 2);

/*
 * A structured event: NULL-terminated key/value string pairs.  A NULL value is skipped, so
 * optional fields can be passed unconditionally.
 */
void log_kv(enum log_level level, const char *event, ...) __attribute__((sentinel));

/*
 * Mask a secret for logging: the first four characters then "…" and the length, e.g.
 * "abcd…(64)".  Writes into out (at least LOG_MASK_LEN bytes) and returns it.
 */
#define LOG_MASK_LEN 32
const char *log_mask(const char *secret, char *out, size_t outlen);

#endif
