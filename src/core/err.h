/*
 * err.h - the error contract shared by every wisp module.
 *
 * A function that can fail takes `wisp_err_t *err` as its last argument and
 * returns a negative value with *err filled in: a small code that the API
 * layer maps to an HTTP status in one place, the errno that caused it (0 if
 * none) and a one-line human message. Callers may pass a NULL err when they
 * do not care about the details.
 */
#ifndef WISP_CORE_ERR_H
#define WISP_CORE_ERR_H

#include <errno.h>
#include <stddef.h>

typedef enum wisp_errcode {
    WISP_OK = 0,
    WISP_EINVALID,     /* bad input from the caller: 400 */
    WISP_EAUTH,        /* missing or wrong credentials: 401/403 */
    WISP_ENOTFOUND,    /* no such object: 404 */
    WISP_ECONFLICT,    /* exists already, or changed underneath: 409 */
    WISP_ELIMIT,       /* too large or too many: 413 */
    WISP_EUNSUPPORTED, /* unsupported media type or operation: 415 */
    WISP_ETHROTTLED,   /* over a concurrency or rate limit: 429 */
    WISP_EUNAVAILABLE, /* temporarily unable (shutting down, not ready): 503 */
    WISP_EINTERNAL,    /* a bug or a system failure: 500 */
} wisp_errcode_t;

typedef struct wisp_err {
    wisp_errcode_t code; /* what kind of failure */
    int sys_errno;       /* errno behind it, 0 if none */
    char msg[512];       /* one line, no trailing newline */
} wisp_err_t;

/* Fill *err (if not NULL) with code and a printf-style message; returns -1 so
 * that `return wisp_err_set(err, WISP_EINVALID, "bad %s", x);` reads well. */
int wisp_err_set(wisp_err_t *err, wisp_errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like wisp_err_set with code WISP_EINTERNAL; appends ": strerror(errnum)". */
int wisp_err_sys(wisp_err_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with more context ("loading x: <old msg>"). */
int wisp_err_wrap(wisp_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to WISP_OK with an empty message. */
void wisp_err_clear(wisp_err_t *err);

/* Stable lower-case name of a code ("invalid", "not_found"...), used in JSON errors. */
const char *wisp_errcode_name(wisp_errcode_t code);

/* The HTTP status that the API layer uses for a code. */
int wisp_errcode_http_status(wisp_errcode_t code);

#endif
