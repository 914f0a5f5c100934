/*
 * wisp_runtime.h - a tiny runtime library for functions written in C, for
 * wisp's "provided" runtime (and AWS Lambda's provided.al2 / custom runtimes:
 * it speaks only the Lambda Runtime API).
 *
 * A function is an executable named "bootstrap" whose main() hands its
 * handler to wisp_rt_main():
 *
 *     #include "wisp_runtime.h"
 *
 *     static int handler(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp)
 *     {
 *         return wisp_rt_appendf(resp, "{\"bytes\":%zu}", inv->event_len);
 *     }
 *
 *     int main(void) { return wisp_rt_main(handler); }
 *
 * Build it statically (gcc -static -O2 main.c wisp_runtime.c -o bootstrap) so
 * it needs nothing from the sandbox's file system and starts in well under a
 * millisecond. The library uses libc only: plain sockets to the address in
 * AWS_LAMBDA_RUNTIME_API (an IPv4 or [IPv6] literal, or "localhost"), no name
 * service, no threads, no signal handlers, nothing at start beyond one
 * connect().
 *
 * Every function here is for the one thread that called wisp_rt_main(). The
 * functions that can fail return -1 (and 0 on success); a failure to reach
 * the Runtime API ends the process with status 1 after a line on stderr.
 */
#ifndef WISP_RUNTIME_H
#define WISP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One invocation, as the Runtime API delivered it. Every string is
 * NUL-terminated, "" when the header was absent, and valid only during the
 * handler call. */
typedef struct wisp_rt_invocation {
    const char *request_id;       /* Lambda-Runtime-Aws-Request-Id */
    int64_t deadline_ms;          /* Lambda-Runtime-Deadline-Ms: epoch ms, 0 if absent */
    const char *function_arn;     /* Lambda-Runtime-Invoked-Function-Arn */
    const char *trace_id;         /* Lambda-Runtime-Trace-Id (also set as _X_AMZN_TRACE_ID) */
    const char *client_context;   /* Lambda-Runtime-Client-Context (JSON) */
    const char *cognito_identity; /* Lambda-Runtime-Cognito-Identity (JSON) */
    const char *event;            /* the event bytes, followed by a NUL */
    size_t event_len;             /* their length (the NUL not counted) */
} wisp_rt_invocation_t;

/* The answer being built by a handler: a body, or an error. Opaque. */
typedef struct wisp_rt_response wisp_rt_response_t;

/* A handler returns 0 to send the body appended to resp as the result, or
 * non-zero to fail the invocation: with the error set by wisp_rt_fail(), or
 * else errorType "HandlerError". */
typedef int (*wisp_rt_handler_t)(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp);

/* Runs the Runtime API loop: waits for an event, calls handler, posts the
 * result or the error, forever. A result is sent together with the next
 * GET /invocation/next (HTTP/1.1 pipelining: the same requests in the same
 * order, one write instead of two). Returns only on a fatal error (the
 * Runtime API gone or broken), with the exit status to return from main(). */
int wisp_rt_main(wisp_rt_handler_t handler);

/* Reports a failed initialisation (before wisp_rt_main) to the Runtime API as
 * errorType/errorMessage, then exits the process with status 1. */
__attribute__((noreturn, format(printf, 2, 3))) void wisp_rt_init_error(const char *error_type,
                                                                        const char *fmt, ...);

/* Milliseconds left before the invocation's deadline (0 once it is past). */
int64_t wisp_rt_remaining_ms(const wisp_rt_invocation_t *inv);

/* Body building. The body starts empty for every invocation; it is limited to
 * 16 MiB (the Runtime API refuses more than 6 MiB anyway). Each returns 0, or
 * -1 when the limit would be passed (the body is then left unchanged). */
int wisp_rt_append(wisp_rt_response_t *resp, const void *data, size_t len);
__attribute__((format(printf, 2, 3))) int wisp_rt_appendf(wisp_rt_response_t *resp, const char *fmt,
                                                          ...);
/* Appends s (len bytes, UTF-8) as a quoted, escaped JSON string. */
int wisp_rt_append_json_string(wisp_rt_response_t *resp, const char *s, size_t len);
/* Empties the body. */
void wisp_rt_reset(wisp_rt_response_t *resp);

/* Marks the invocation as failed with errorType (a short name such as
 * "InvalidInput") and a printf-formatted errorMessage. Returns -1, so a
 * handler can end with `return wisp_rt_fail(resp, ...);`. */
__attribute__((format(printf, 3, 4))) int
wisp_rt_fail(wisp_rt_response_t *resp, const char *error_type, const char *fmt, ...);

/* Small helpers to read an event: JSON text in, no allocation.
 *
 * wisp_rt_json_get finds key among the members of the top-level object of
 * json[0..len) and returns a pointer to the start of its value (raw JSON text,
 * *value_len bytes), or NULL if json is not an object, the key is absent or
 * the text is malformed before it was found.
 *
 * wisp_rt_json_string decodes the JSON string value at raw[0..raw_len) (as
 * returned by wisp_rt_json_get, quotes included) into out as UTF-8 with a
 * terminating NUL. Returns the decoded length, or -1 if raw is not a valid
 * string or out (out_size bytes) is too small. */
const char *wisp_rt_json_get(const char *json, size_t len, const char *key, size_t *value_len);
long wisp_rt_json_string(const char *raw, size_t raw_len, char *out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif
