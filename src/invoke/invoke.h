/*
 * invoke.h - the invocation path: an event arrives, an execution environment
 * of the function is found (warm) or started (cold), the runtime inside gets
 * the event from the Runtime API, and its answer comes back to the caller.
 * Also the logs of functions and invocation records.
 *
 * Every call and callback is on the event-loop thread.
 */
#ifndef WISP_INVOKE_INVOKE_H
#define WISP_INVOKE_INVOKE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "registry/registry.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

#define WISP_PAYLOAD_MAX (6u * 1024 * 1024) /* sync request and response */
#define WISP_LOG_TAIL_MAX 4096

typedef struct wisp_invoker wisp_invoker_t;

typedef struct wisp_invoker_config {
    unsigned max_envs;         /* platform-wide cap on live envs (default 256) */
    unsigned memory_budget_mb; /* sum of live envs' memory_mb (default: 3/4 of RAM) */
    unsigned queue_max;        /* waiting invocations per function (default 100) */
    unsigned queue_wait_ms;    /* how long one may wait for an env before 429 (default 2000) */
    const char *runtimes_dir;  /* host folder with the runtime shims (python3/, nodejs/) */
    const char *region;        /* AWS_REGION given to functions (default "us-east-1") */
    const char *account_id;    /* for ARNs (default "000000000000") */
    int64_t log_cap_lines;     /* per function (default 100000) */
    size_t log_buffer_bytes;   /* log lines and records held before stored (default 64 MiB) */
} wisp_invoker_config_t;

typedef struct wisp_invoke_req {
    const char *function; /* name */
    const void *payload;  /* event bytes (copied); may be empty */
    size_t len;
    const char *trigger;        /* "api" | "lambda" | "cli" ... for records */
    const char *client_context; /* base64 JSON (Lambda X-Amz-Client-Context) or NULL */
    const char *trace_id;       /* X-Amzn-Trace-Id to pass on, or NULL */
    bool want_log_tail;         /* fill log_tail with the last 4 KB of this invocation's log */
} wisp_invoke_req_t;

typedef struct wisp_invoke_result {
    /* Set when the platform refused or could not run the invocation at all
     * (WISP_ENOTFOUND, WISP_ELIMIT, WISP_ETHROTTLED, WISP_EUNAVAILABLE...);
     * then the fields below the line are not meaningful except request_id. */
    wisp_errcode_t refused;
    wisp_err_t err;
    const char *throttle_reason; /* Lambda "Reason" for 429s */
    int retry_after_s;
    /* ---- */
    const char *request_id;
    const char *payload; /* the function's result, or the error JSON if error_type */
    size_t len;
    const char *error_type; /* NULL on success; else errorType ("Runtime.ExitError", the handler's
                               own...) */
    bool cold;
    double duration_ms;   /* from event delivery to response */
    double init_ms;       /* env start to first /next (cold only) */
    double queue_ms;      /* time waited for an env */
    const char *log_tail; /* when asked: the last <= 4 KB of the invocation's log */
    size_t log_tail_len;
    const char *executed_version; /* "$LATEST" */
} wisp_invoke_result_t;

/* The result is valid only during the call. */
typedef void (*wisp_invoke_cb)(void *data, const wisp_invoke_result_t *res);

wisp_invoker_t *wisp_invoker_new(uv_loop_t *loop, wisp_registry_t *reg, wisp_store_t *store,
                                 wisp_sandbox_t *sb, const wisp_invoker_config_t *cfg,
                                 wisp_err_t *err);
/* Retire every env and stop; done runs when all are gone. */
void wisp_invoker_shutdown(wisp_invoker_t *inv, void (*done)(void *data), void *data);
void wisp_invoker_free(wisp_invoker_t *inv);

/* Start a synchronous invocation; cb runs exactly once (possibly before this
 * returns, e.g. for an unknown function). */
void wisp_invoke(wisp_invoker_t *inv, const wisp_invoke_req_t *req, wisp_invoke_cb cb, void *data);

/* ---- logs ---- */
typedef struct wisp_logsub wisp_logsub_t;
/* A log line as delivered to followers: id is the store's id (monotonic). */
typedef void (*wisp_logsub_cb)(void *data, int64_t id, int64_t ts_ms, const char *request_id,
                               const char *stream, const char *line);
/* Follow new log lines of a function (of one request if request_id != NULL). */
wisp_logsub_t *wisp_logs_subscribe(wisp_invoker_t *inv, const char *function,
                                   const char *request_id, wisp_logsub_cb cb, void *data);
void wisp_logs_unsubscribe(wisp_logsub_t *sub);
/* Hand buffered log lines and invocation records to the log writer and wait
 * until everything handed over is committed (queries then see them). Loop
 * thread only. */
void wisp_logs_flush(wisp_invoker_t *inv);

#endif
