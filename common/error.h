/*
 * The error value every fallible function fills in.  Functions return 0 on success or a
 * negative SCEPTER_E* code, and describe the failure in a caller-owned struct scepter_error:
 * which field was at fault (if any), the HTTP status the failure maps to, and a sentence a
 * person can act on, e.g. "Keysize: 3072 is not one of 1024, 2048, 4096".
 */
#ifndef SCEPTER_COMMON_ERROR_H
#define SCEPTER_COMMON_ERROR_H

#include <stdarg.h>

#include "attr.h"

enum scepter_errcode {
    SCEPTER_OK = 0,
    SCEPTER_EINVAL = -1,     /* bad input: 400 */
    SCEPTER_ENOTFOUND = -2,  /* unknown id: 404 */
    SCEPTER_ECONFLICT = -3,  /* duplicate name, wrong state: 409 */
    SCEPTER_ESTORE = -4,     /* the database failed: 500 / 503 */
    SCEPTER_EIO = -5,        /* a file or socket failed */
    SCEPTER_EAUTH = -6,      /* missing or wrong credentials: 401 */
    SCEPTER_EFORBIDDEN = -7, /* identity known but not allowed: 403 */
    SCEPTER_ETOOBIG = -8,    /* over a size limit: 413 */
    SCEPTER_EINTERNAL = -9,  /* a bug or an unexpected library failure: 500 */
    SCEPTER_EUNAVAIL = -10,  /* try again later: 503 */
    SCEPTER_EVERSION = -11,  /* database schema newer than this binary */
    SCEPTER_ECRYPTO = -12,   /* certificate, key or signature problem */
};

struct scepter_error {
    int code;        /* one of enum scepter_errcode */
    int http_status; /* the status an HTTP reply would carry */
    char field[64];  /* the input field at fault, or "" */
    char msg[256];   /* human-readable reason */
};

/*
 * Fill *err (which may be NULL) and return code.  field may be NULL.  The HTTP status is
 * derived from the code; use scepter_err_status() to override it.
 */
int scepter_err(struct scepter_error *err, int code, const char *field, const char *fmt, ...)
    PRINTF(4, 5);
int scepter_verr(struct scepter_error *err, int code, const char *field, const char *fmt,
                 va_list ap) PRINTF(4, 0);
/* Append OpenSSL's queued error strings to err->msg and clear the queue. */
void scepter_err_openssl(struct scepter_error *err);
void scepter_err_clear(struct scepter_error *err);
/* The default HTTP status of a code. */
int scepter_errcode_status(int code);

#endif
