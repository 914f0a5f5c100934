/*
 * env.h - execution environments ("envs"): one sandboxed runtime process tree
 * of one function revision, and the Lambda Runtime API it talks to.
 *
 * An env is started with wisp_env_start (the sandbox spawner creates it), and
 * serves the Runtime API on the listening socket that the spawner made inside
 * the env's own network namespace. The env module knows the Runtime API and
 * the env's life; it knows nothing of queues, limits or callers: those belong
 * to its owner (the invoker), which it tells about every event through hooks.
 *
 * States: STARTING (spawned, no /next yet) -> IDLE (a /next is waiting) ->
 * BUSY (an event was handed out) -> IDLE ... ; any state -> RETIRING (killed,
 * waiting for the exit) -> gone (hook `gone`, then the env is freed).
 * One invocation at a time per env. All on the event-loop thread.
 */
#ifndef WISP_ENV_ENV_H
#define WISP_ENV_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/http.h"
#include "obs/metrics.h"
#include "sandbox/sandbox.h"

#define WISP_ENV_RESPONSE_MAX (6u * 1024 * 1024)
/* Output an env may print while no event is in flight (init, and between
 * invocations: background threads, children) before the rest is dropped and
 * its pipes are not read until the next delivery (env.c, "output outside an
 * event"). Each line counts WISP_LOG_LINE_OVERHEAD bytes more than its text:
 * what it costs the daemon to hold and store it, so that a flood of short
 * lines is bounded as well as one of long ones. */
#define WISP_ENV_QUIET_OUTPUT_MAX (4u * 1024 * 1024)
#define WISP_LOG_LINE_OVERHEAD 64
/* Runtime API connections one env may hold open at once; more are accepted
 * and closed at once. */
#define WISP_ENV_API_CONNECTIONS_MAX 8

typedef struct wisp_env wisp_env_t;

typedef enum wisp_env_state {
    WISP_ENV_STARTING,
    WISP_ENV_IDLE,
    WISP_ENV_BUSY,
    WISP_ENV_RETIRING,
} wisp_env_state_t;

/* The event handed to a runtime; owned by the caller of wisp_env_deliver and
 * kept alive until the `done` hook (or `gone`) reports on it. */
typedef struct wisp_env_event {
    char request_id[37];
    const char *payload;
    size_t len;
    int64_t deadline_ms; /* epoch ms */
    const char *function_arn;
    const char *trace_id;       /* Lambda-Runtime-Trace-Id value */
    const char *client_context; /* JSON text or NULL */
} wisp_env_event_t;

/* How an env reports to its owner. `data` is the owner's pointer given at start. */
typedef struct wisp_env_hooks {
    /* The runtime is waiting on /next (first time: init finished). */
    void (*ready)(void *data, wisp_env_t *env);
    /* The current event finished: error_type NULL for a response, else the
     * error type (body = error JSON). body is valid during the call. */
    void (*done)(void *data, wisp_env_t *env, wisp_env_event_t *ev, const char *error_type,
                 const char *body, size_t len);
    /* A line the env printed (stream "stdout"/"stderr"), without newline. */
    void (*log)(void *data, wisp_env_t *env, const char *stream, const char *line, size_t len);
    /* The runtime reported an init error (body = error JSON); the env is
     * being retired. */
    void (*init_error)(void *data, wisp_env_t *env, const char *error_type, const char *body,
                       size_t len);
    /* The env is gone. If an event was in flight it is passed as ev (the
     * owner turns it into a failure). spawn_err is set if it never started.
     * After this the env is freed. */
    void (*gone)(void *data, wisp_env_t *env, wisp_env_event_t *ev, int wait_status, bool oom,
                 uint64_t peak_mem, const wisp_err_t *spawn_err);
} wisp_env_hooks_t;

/* The shared Runtime API server, one per process. */
typedef struct wisp_env_system {
    uv_loop_t *loop;
    wisp_sandbox_t *sandbox;
    wisp_http_server_t *runtime_api;
    struct wisp_env *by_id; /* all envs, for exit events (a short list per process) */
    unsigned count;
    const wisp_env_hooks_t *hooks;
    void *hooks_data;
    wisp_metric_t *m_starts; /* wisp_env_starts_total{how} */
} wisp_env_system_t;

/* Create the Runtime API server and attach to the sandbox exit events. */
int wisp_env_system_init(wisp_env_system_t *sys, uv_loop_t *loop, wisp_sandbox_t *sb,
                         const wisp_env_hooks_t *hooks, void *data, wisp_err_t *err)
    __attribute__((warn_unused_result));
void wisp_env_system_close(wisp_env_system_t *sys);

struct wisp_env {
    struct wisp_env *next_all; /* list of all envs in the system */
    wisp_env_system_t *sys;
    char id[40]; /* sandbox id */
    wisp_env_state_t state;
    void *owner;           /* the owner's per-env data (the invoker's function state) */
    struct wisp_env *next; /* owner's list link */
    char revision[37];     /* function revision it runs */
    char code_sha256[65];  /* package it runs (held in the registry while it lives) */
    unsigned memory_mb;
    bool cold;         /* no event delivered yet */
    bool spawned;      /* the sandbox exists (exit event will come) */
    bool answered;     /* its runtime has answered an event (the spawner was told) */
    bool stale;        /* retire after the current event */
    uint64_t start_ns; /* spawn requested */
    uint64_t init_ns;  /* first /next arrived (0 before) */
    uint64_t idle_since_ns;
    wisp_http_listener_t *listener;
    wisp_http_req_t *next_req; /* the pending /next long poll, if any */
    wisp_env_event_t *event;   /* event in flight */
    uint64_t event_start_ns;
    uv_pipe_t *out, *err; /* stdout / stderr of the sandbox */
    char *linebuf[2];     /* partial lines of stdout/stderr */
    size_t linelen[2];
    size_t quiet_bytes;    /* output with no event in flight since the last delivery */
    bool quiet_over;       /* ... past WISP_ENV_QUIET_OUTPUT_MAX: dropped until then */
    bool output_paused;    /* pipes not read meanwhile */
    uv_timer_t *timer;     /* for the owner's use (idle, init, deadline); data = env */
    uv_timer_t *finish;    /* internal: bounds the wait for output after the exit */
    bool exited;           /* exit event received */
    bool out_eof, err_eof; /* the pipes reached EOF */
    int wait_status;       /* from the exit event */
    bool oom;
    uint64_t peak_mem;
    int pending_closes; /* handles still closing before the env can be freed */
    int peak_fd;        /* memory high-water mark file, opened on first use; -1 */
};

/* Start an env: spawn the sandbox (spec is copied). The env is STARTING; the
 * hooks report what follows. owner is stored in env->owner. */
wisp_env_t *wisp_env_start(wisp_env_system_t *sys, const wisp_sandbox_spec_t *spec,
                           const char *revision, const char *code_sha256, void *owner);
/* Hand an event to an IDLE env; it becomes BUSY. */
void wisp_env_deliver(wisp_env_t *env, wisp_env_event_t *ev);
/* Kill the env (RETIRING); `gone` follows. Safe to call more than once. */
void wisp_env_retire(wisp_env_t *env);
/* Memory high-water mark so far, MiB (rounded up). */
unsigned wisp_env_peak_mb(wisp_env_t *env);
const char *wisp_env_state_name(wisp_env_state_t s);

#endif
