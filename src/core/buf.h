/*
 * buf.h - growable byte buffers with a hard maximum.
 *
 * Every buffer fed by untrusted input is created with a maximum; an append
 * that would pass it fails with WISP_ELIMIT and leaves the buffer unchanged,
 * so callers answer 413 instead of truncating. Buffers are always
 * NUL-terminated (the NUL is not counted in len). Not thread-safe.
 */
#ifndef WISP_CORE_BUF_H
#define WISP_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

typedef struct wisp_buf {
    char *data; /* heap storage, NUL-terminated when non-NULL */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated for data, excluding room for the NUL */
    size_t max; /* largest len allowed; 0 means unlimited (trusted input only) */
} wisp_buf_t;

#define WISP_BUF_INIT(maxbytes)                                                                    \
    {                                                                                              \
        NULL, 0, 0, (maxbytes)                                                                     \
    }

void wisp_buf_init(wisp_buf_t *b, size_t max);
/* Append n bytes; WISP_ELIMIT (buffer unchanged) if len would pass max. */
int wisp_buf_append(wisp_buf_t *b, const void *data, size_t n, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Append a NUL-terminated string / formatted text; same limits. */
int wisp_buf_puts(wisp_buf_t *b, const char *s, wisp_err_t *err)
    __attribute__((warn_unused_result));
int wisp_buf_printf(wisp_buf_t *b, wisp_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), warn_unused_result));
/* Appends for buffers made with max 0 (trusted, internal text): cannot fail. */
void wisp_buf_add(wisp_buf_t *b, const void *data, size_t n);
void wisp_buf_addf(wisp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wisp_buf_addvf(wisp_buf_t *b, const char *fmt, va_list ap);
/* Drop the first n bytes (consumed input). */
void wisp_buf_consume(wisp_buf_t *b, size_t n);
void wisp_buf_reset(wisp_buf_t *b);
/* Take the storage (caller frees); the buffer becomes empty. Never NULL. */
char *wisp_buf_steal(wisp_buf_t *b, size_t *len);
void wisp_buf_free(wisp_buf_t *b);

#endif
