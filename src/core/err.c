/* err.c - filling and naming wisp_err_t; see err.h for the contract. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int wisp_err_set(wisp_err_t *err, wisp_errcode_t code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->sys_errno = 0;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int wisp_err_sys(wisp_err_t *err, int errnum, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    err->code = WISP_EINTERNAL;
    err->sys_errno = errnum;
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(errnum));
    return -1;
}

int wisp_err_wrap(wisp_err_t *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char prefix[256];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n + 2 >= sizeof err->msg)
        return -1;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t oldlen = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, oldlen);
    err->msg[n + 2 + oldlen] = '\0';
    return -1;
}

void wisp_err_clear(wisp_err_t *err)
{
    if (err == NULL)
        return;
    err->code = WISP_OK;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

const char *wisp_errcode_name(wisp_errcode_t code)
{
    switch (code) {
    case WISP_OK: return "ok";
    case WISP_EINVALID: return "invalid";
    case WISP_EAUTH: return "unauthorized";
    case WISP_ENOTFOUND: return "not_found";
    case WISP_ECONFLICT: return "conflict";
    case WISP_ELIMIT: return "too_large";
    case WISP_EUNSUPPORTED: return "unsupported";
    case WISP_ETHROTTLED: return "throttled";
    case WISP_EUNAVAILABLE: return "unavailable";
    case WISP_EINTERNAL: return "internal";
    }
    return "internal";
}

int wisp_errcode_http_status(wisp_errcode_t code)
{
    switch (code) {
    case WISP_OK: return 200;
    case WISP_EINVALID: return 400;
    case WISP_EAUTH: return 401;
    case WISP_ENOTFOUND: return 404;
    case WISP_ECONFLICT: return 409;
    case WISP_ELIMIT: return 413;
    case WISP_EUNSUPPORTED: return 415;
    case WISP_ETHROTTLED: return 429;
    case WISP_EUNAVAILABLE: return 503;
    case WISP_EINTERNAL: return 500;
    }
    return 500;
}
