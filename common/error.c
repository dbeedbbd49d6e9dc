/*
 * struct scepter_error helpers.
 */
#include "error.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "str.h"

int scepter_errcode_status(int code)
{
    switch (code) {
    case SCEPTER_OK:
        return 200;
    case SCEPTER_EINVAL:
        return 400;
    case SCEPTER_EAUTH:
        return 401;
    case SCEPTER_EFORBIDDEN:
        return 403;
    case SCEPTER_ENOTFOUND:
        return 404;
    case SCEPTER_ECONFLICT:
        return 409;
    case SCEPTER_ETOOBIG:
        return 413;
    case SCEPTER_ECRYPTO:
        return 400;
    case SCEPTER_EUNAVAIL:
    case SCEPTER_ESTORE:
        return 503;
    default:
        return 500;
    }
}

int scepter_verr(struct scepter_error *err, int code, const char *field, const char *fmt,
                 va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->http_status = scepter_errcode_status(code);
    str_copy(err->field, sizeof(err->field), field ? field : "");
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

int scepter_err(struct scepter_error *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    scepter_verr(err, code, field, fmt, ap);
    va_end(ap);
    return code;
}

void scepter_err_openssl(struct scepter_error *err)
{
    unsigned long e;
    char buf[160];

    while ((e = ERR_get_error()) != 0) {
        if (err == NULL)
            continue;
        ERR_error_string_n(e, buf, sizeof(buf));
        size_t len = strlen(err->msg);
        if (len + 3 < sizeof(err->msg))
            snprintf(err->msg + len, sizeof(err->msg) - len, " (%s)", buf);
    }
}

void scepter_err_clear(struct scepter_error *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
}
