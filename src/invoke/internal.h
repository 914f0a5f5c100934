/*
 * internal.h - shared between the files of src/invoke only.
 */
#ifndef WISP_INVOKE_INTERNAL_H
#define WISP_INVOKE_INTERNAL_H

#include <stdatomic.h>

#include "core/buf.h"
#include "env/env.h"
#include "invoke/invoke.h"
#include "obs/metrics.h"

/* Log lines kept per invocation before the rest is dropped (with a notice). */
#define WISP_LOG_INVOCATION_MAX (4u * 1024 * 1024)

struct invocation;

/* Per-function state: the cached configuration, its envs and its queue. */
struct fnstate {
    struct fnstate *next_hash; /* bucket chain */
    struct fnstate *next_wait; /* on inv->waiting: queued work blocked by global limits */
    bool waiting;
    char name[WISP_FN_NAME_MAX + 1];
    char arn[160];
    wisp_fn_t *fn;             /* current configuration; NULL once deleted */
    wisp_env_t *envs;          /* all envs of the function (env->next) */
    unsigned live;             /* envs that exist, any state */
    struct invocation *q_head; /* FIFO of invocations waiting for an env */
    struct invocation *q_tail;
    unsigned qlen;
    uv_timer_t *qtimer;    /* fires at the queue head's wait deadline */
    char *init_error_type; /* last init error reported by a STARTING env */
    char *init_error_body;
    uint64_t warm_backoff_until_ns; /* min_warm restarts paused after init failures */
    uint64_t start_avg_ns;  /* moving average of an env's start (spawn to first /next); 0: none */
    uint64_t run_low_ns;    /* lower envelope of an invocation's time in its env; 0: none */
    uint64_t drain_ns;      /* moving average of the interval between two takes from the queue
                               while work stayed queued; 0: none */
    uint64_t drain_from_ns; /* the last take that left work queued; 0: none */
    uint64_t patience_ns;   /* how long the queue's head may wait before scale_out stops
                               trusting its estimates (0: start_avg_ns) */
};

/* One invocation in flight. */
struct invocation {
    struct invocation *next; /* queue link */
    wisp_invoker_t *inv;
    struct fnstate *fs;
    wisp_env_event_t ev; /* what the runtime gets */
    char *payload;
    char *client_context;
    char trace_id[96];
    char trigger[16];
    char revision[37];
    wisp_invoke_cb cb;
    void *cb_data;
    uint64_t enqueue_ns;
    unsigned ahead;    /* invocations queued before it when it was queued */
    uint64_t start_ns; /* handed to an env */
    uint64_t queue_deadline_ns;
    bool cold;
    double init_ms;
    bool want_tail;
    wisp_buf_t tail;    /* log text of this invocation (for Tail), last 4 KB kept */
    size_t log_bytes;   /* bytes logged so far */
    size_t log_dropped; /* bytes dropped past WISP_LOG_INVOCATION_MAX */
    size_t log_behind;  /* bytes dropped because the log store was behind */
    wisp_env_t *env;
};

typedef struct logrec {
    char *line;             /* heap: the line, then the function and request id */
    const char *function;   /* inside line's block */
    const char *request_id; /* inside line's block */
    int64_t ts_ms;
    const char *stream; /* static string */
} logrec_t;

/* An invocation record waiting for the log writer, which turns it into the
 * JSON document the store keeps (wisp_store_invocation_put): building JSON
 * is left off the loop thread. */
typedef struct invrec {
    char id[37];
    char *function; /* heap */
    char revision[37];
    char trigger[16];
    int64_t start_ms;
    double queue_ms, init_ms, duration_ms;
    int64_t billed_ms;
    unsigned max_memory_mb;
    bool cold;
    const char *outcome; /* static string */
    char *error_type;    /* heap, or NULL */
} invrec_t;

struct wisp_logsub {
    struct wisp_logsub *next;
    wisp_invoker_t *inv;
    char *function;
    char *request_id;
    wisp_logsub_cb cb;
    void *data;
};

struct wisp_invoker {
    uv_loop_t *loop;
    wisp_registry_t *reg;
    wisp_store_t *store;
    wisp_sandbox_t *sb;
    wisp_invoker_config_t cfg;
    char *runtimes_dir;
    char *region;
    char *account_id;
    wisp_env_system_t envsys;
    /* Function state by name: a chained hash table that doubles when it holds
     * as many functions as buckets, so a lookup stays short however many
     * functions have been invoked. */
    struct fnstate **table;
    size_t table_size; /* a power of two */
    size_t nfns;
    struct fnstate *waiting; /* functions with queued work blocked by global limits */
    unsigned live;           /* envs alive, all functions */
    unsigned mem_used_mb;    /* sum of memory_mb of live envs */
    uint64_t env_seq;
    bool shutting_down;
    void (*shutdown_done)(void *);
    void *shutdown_data;
    /* logs */
    logrec_t *logbuf;
    size_t nlog, caplog;
    invrec_t *recbuf; /* invocation records waiting for the next flush */
    size_t nrec, caprec;
    uv_timer_t *flush_timer;
    struct wisp_logsub *subs;
    struct wisp__logwriter *writer; /* the thread that stores batches; NULL: the loop does */
    int64_t last_prune_ms;          /* without a writer: when records were last pruned */
    _Atomic size_t log_held;        /* bytes of lines and records not stored yet (logs.c) */
    size_t held_unflushed;          /* of which in logbuf/recbuf (loop thread) */
    int64_t behind_warned_ms;       /* last "log store is behind" warning */
    wisp_metric_t *m_log_dropped;   /* wisp_logs_dropped_total{function,what} */
    /* metrics */
    wisp_metric_t *m_invocations, *m_duration, *m_init, *m_cold, *m_throttles, *m_queue_wait;
};

/* logs.c */
void wisp__logs_init(wisp_invoker_t *inv);
void wisp__logs_close(wisp_invoker_t *inv);
/* Record one line; request_id may be "" (init output). False if it was
 * dropped because cfg.log_buffer_bytes are already waiting to be stored. */
bool wisp__logs_add(wisp_invoker_t *inv, const char *function, const char *request_id,
                    const char *stream, const char *line, size_t len);
/* Queue an invocation record (copied; its heap fields are taken, or freed
 * if it is dropped as above) for the next flush. */
bool wisp__logs_record(wisp_invoker_t *inv, const invrec_t *rec);
/* Append rec as the JSON object text the store keeps for it: {"id",
 * "function", "revision", "trigger", "start_ms", "queue_ms", "init_ms",
 * "duration_ms", "billed_ms", "max_memory_mb", "cold", "outcome",
 * "error_type"} (durations to the microsecond, error_type null if none). */
void wisp__invrec_json(const invrec_t *rec, wisp_buf_t *b);
/* Encode n records (wisp__invrec_json) and store them in one operation. */
int wisp__invrecs_store(wisp_store_t *store, const invrec_t *recs, size_t n, wisp_err_t *err);

#endif
