/*
 * util.h - small helpers every module uses: allocation that aborts on
 * failure, cleanup attributes for locals, ownership hand-off, time, random
 * ids and file helpers.
 *
 * Allocation failure is not recoverable in wisp: xmalloc and friends abort
 * with a message. Anything sized by untrusted input must be checked against a
 * maximum before it is allocated (see buf.h).
 */
#ifndef WISP_CORE_UTIL_H
#define WISP_CORE_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/err.h"

#define WISP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define WISP_WUR __attribute__((warn_unused_result))
#define WISP_UNUSED __attribute__((unused))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void wisp__freep(void *p);
void wisp__closep(int *fd);
void wisp__fclosep(FILE **f);
void wisp__json_decrefp(json_t **j);

/* Locals released when they go out of scope. */
#define cleanup_free __attribute__((cleanup(wisp__freep)))
#define cleanup_close __attribute__((cleanup(wisp__closep)))
#define cleanup_fclose __attribute__((cleanup(wisp__fclosep)))
#define cleanup_json __attribute__((cleanup(wisp__json_decrefp)))

/* Hand ownership of a pointer on: returns it and NULLs the variable. */
#define steal_pointer(pp)                                                                          \
    ({                                                                                             \
        __typeof__(*(pp)) stolen_ = *(pp);                                                         \
        *(pp) = NULL;                                                                              \
        stolen_;                                                                                   \
    })
/* The same for file descriptors: returns it and sets the variable to -1. */
#define steal_fd(fdp)                                                                              \
    ({                                                                                             \
        int stolen_fd_ = *(fdp);                                                                   \
        *(fdp) = -1;                                                                               \
        stolen_fd_;                                                                                \
    })

/* Wall-clock time in milliseconds since the epoch. */
int64_t wisp_now_ms(void);
/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
uint64_t wisp_mono_ns(void);
/* Format epoch milliseconds as "YYYY-MM-DDThh:mm:ss.sss+0000" (Lambda LastModified). */
void wisp_time_lambda(int64_t ms, char out[32]);
/* Format epoch milliseconds as RFC 3339 UTC "YYYY-MM-DDThh:mm:ss.sssZ". */
void wisp_time_rfc3339(int64_t ms, char out[32]);

/* Fill buf with n bytes from getrandom(2); aborts if the kernel cannot. */
void wisp_random_bytes(void *buf, size_t n);
/* A random RFC 4122 version-4 UUID, lower-case, NUL-terminated. */
void wisp_uuid4(char out[37]);
/* A time-ordered RFC 9562 version-7 UUID, lower-case, NUL-terminated: 48 bits
 * of epoch milliseconds, then 74 random bits. Ids made later sort after ids
 * made earlier by the same thread (a counter in the random part keeps ids of
 * the same millisecond in order), so indexes keyed by them grow at one end.
 * The random bits come from a per-thread buffer of getrandom(2) output, refilled
 * once per 4 KiB, so a call makes a system call only every ~400 ids. Any
 * thread may call it. */
void wisp_uuid7(char out[37]);
/* Like wisp_random_bytes (same source), through that per-thread buffer; for
 * the many small random values of the invocation path. n <= 256. */
void wisp_random_bytes_fast(void *buf, size_t n);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void wisp_hex(const void *data, size_t n, char *out);

/* Read a whole file, refusing more than max bytes (WISP_ELIMIT). *out is
 * NUL-terminated; *len excludes the NUL. */
int wisp_read_file(const char *path, size_t max, char **out, size_t *len, wisp_err_t *err) WISP_WUR;
/* Write data to path atomically (temp file, fsync, rename) with mode. */
int wisp_write_file(const char *path, const void *data, size_t len, int mode,
                    wisp_err_t *err) WISP_WUR;
/* mkdir -p with mode for the missing parts. */
int wisp_mkdir_p(const char *path, int mode, wisp_err_t *err) WISP_WUR;
/* rm -rf; does not follow symlinks; missing path is success. */
int wisp_rm_rf(const char *path, wisp_err_t *err) WISP_WUR;

/* Case-insensitive ASCII compare of NUL-terminated strings. */
bool wisp_streq_ci(const char *a, const char *b);

#endif
