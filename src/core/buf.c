/* buf.c - bounded growable buffers; see buf.h. */
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

void wisp_buf_init(wisp_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static void grow(wisp_buf_t *b, size_t need)
{
    if (need <= b->cap && b->data != NULL)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap + 1);
    b->cap = cap;
}

void wisp_buf_add(wisp_buf_t *b, const void *data, size_t n)
{
    grow(b, b->len + n);
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

int wisp_buf_append(wisp_buf_t *b, const void *data, size_t n, wisp_err_t *err)
{
    if (b->max && (n > b->max || b->len > b->max - n))
        return wisp_err_set(err, WISP_ELIMIT, "more than %zu bytes", b->max);
    wisp_buf_add(b, data, n);
    return 0;
}

int wisp_buf_puts(wisp_buf_t *b, const char *s, wisp_err_t *err)
{
    return wisp_buf_append(b, s, strlen(s), err);
}

void wisp_buf_addvf(wisp_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof small) {
        wisp_buf_add(b, small, (size_t)n);
    } else {
        grow(b, b->len + (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void wisp_buf_addf(wisp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wisp_buf_addvf(b, fmt, ap);
    va_end(ap);
}

int wisp_buf_printf(wisp_buf_t *b, wisp_err_t *err, const char *fmt, ...)
{
    wisp_buf_t tmp = WISP_BUF_INIT(0);
    va_list ap;
    va_start(ap, fmt);
    wisp_buf_addvf(&tmp, fmt, ap);
    va_end(ap);
    int rc = wisp_buf_append(b, tmp.data ? tmp.data : "", tmp.len, err);
    wisp_buf_free(&tmp);
    return rc;
}

void wisp_buf_consume(wisp_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->data)
            b->data[0] = '\0';
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void wisp_buf_reset(wisp_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *wisp_buf_steal(wisp_buf_t *b, size_t *len)
{
    if (b->data == NULL)
        grow(b, 0), b->data[0] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void wisp_buf_free(wisp_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
