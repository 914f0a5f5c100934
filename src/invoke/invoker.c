/*
 * invoker.c - the synchronous invocation path and env scheduling.
 *
 * Rules (all on the loop thread):
 * - An invocation first looks for an IDLE env of the function's current
 *   revision (warm); if none, it waits in the function's FIFO queue while an
 *   env is started for it (cold). Envs take queued work as they become ready.
 * - Envs are started only within the limits: the function's `concurrency`
 *   (reserved maximum), the platform's max_envs and memory budget. Over a
 *   limit, work waits up to queue_wait_ms in a queue of at most queue_max,
 *   then is throttled (429). concurrency 0 throttles at once.
 * - One event at a time per env. After its answer an env retires if the
 *   function changed or idle_timeout_s is 0, else it idles for
 *   idle_timeout_s; min_warm envs are kept (provisioned concurrency).
 * - The function's timeout is enforced by killing the env at the deadline.
 */
#include <math.h>
#include <openssl/evp.h>
#include <signal.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "invoke/internal.h"

#define INIT_TIMEOUT_MIN_S 10 /* a runtime gets at least this long to reach /next */
/* Envs a function may have starting at once before any has shown how long an
 * invocation takes, or until as many serve (scale_out): twice the CPUs, at
 * least 4. */
#define START_BATCH_MIN 4

static void dispatch(wisp_invoker_t *inv, struct fnstate *fs);
static void dispatch_waiting(wisp_invoker_t *inv);

/* ---- function state ---- */

#define FN_TABLE_MIN 64 /* buckets to start with */

static unsigned hash_name(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static struct fnstate **fs_bucket(wisp_invoker_t *inv, const char *name)
{
    return &inv->table[hash_name(name) & (inv->table_size - 1)];
}

static struct fnstate *fs_find(wisp_invoker_t *inv, const char *name)
{
    for (struct fnstate *fs = *fs_bucket(inv, name); fs; fs = fs->next_hash)
        if (strcmp(fs->name, name) == 0)
            return fs;
    return NULL;
}

/* Add fs to the table, doubling it (and rehashing) when full. */
static void fs_insert(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (inv->nfns + 1 > inv->table_size) {
        size_t old_size = inv->table_size;
        struct fnstate **old = inv->table;
        inv->table_size = old_size * 2;
        inv->table = xcalloc(inv->table_size, sizeof *inv->table);
        for (size_t b = 0; b < old_size; b++) {
            while (old[b]) {
                struct fnstate *o = old[b];
                old[b] = o->next_hash;
                struct fnstate **slot = fs_bucket(inv, o->name);
                o->next_hash = *slot;
                *slot = o;
            }
        }
        free(old);
    }
    struct fnstate **slot = fs_bucket(inv, fs->name);
    fs->next_hash = *slot;
    *slot = fs;
    inv->nfns++;
}

static void qtimer_cb(uv_timer_t *t);

static struct fnstate *fs_get(wisp_invoker_t *inv, const char *name, bool load)
{
    struct fnstate *fs = fs_find(inv, name);
    if (fs != NULL || !load)
        return fs;
    wisp_fn_t *fn = NULL;
    if (wisp_registry_get(inv->reg, name, &fn, NULL) < 0)
        return NULL;
    fs = xcalloc(1, sizeof *fs);
    snprintf(fs->name, sizeof fs->name, "%s", name);
    snprintf(fs->arn, sizeof fs->arn, "arn:aws:lambda:%s:%s:function:%s", inv->region,
             inv->account_id, name);
    fs->fn = fn;
    fs->qtimer = xcalloc(1, sizeof *fs->qtimer);
    uv_timer_init(inv->loop, fs->qtimer);
    fs->qtimer->data = fs;
    fs_insert(inv, fs);
    return fs;
}

static void free_cb(uv_handle_t *h);

/* Free fs, already out of the table. */
static void fs_free(struct fnstate *fs)
{
    wisp_fn_free(fs->fn);
    free(fs->init_error_type);
    free(fs->init_error_body);
    uv_close((uv_handle_t *)fs->qtimer, free_cb);
    free(fs);
}

/* A deleted function's state goes once nothing refers to it: no env (each
 * points at it as its owner), no queued invocation (each points at it), not
 * on the wait list (it is taken off at the deletion, and a deleted function
 * is never put back: dispatch and wisp_invoke refuse it). Without this,
 * every function ever deleted kept its state and lengthened its hash chain
 * for the life of the daemon. */
static void fs_release_if_unused(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->fn != NULL || fs->live > 0 || fs->envs != NULL || fs->q_head != NULL || fs->waiting)
        return;
    struct fnstate **pp = fs_bucket(inv, fs->name);
    while (*pp != fs)
        pp = &(*pp)->next_hash;
    *pp = fs->next_hash;
    inv->nfns--;
    fs_free(fs);
}

/* ---- results ---- */

static void record_and_free(wisp_invoker_t *inv, struct invocation *in, const char *outcome,
                            const char *error_type, double duration_ms, double queue_ms,
                            unsigned max_mem_mb)
{
    invrec_t rec = {
        .function = xstrdup(in->fs->name),
        .start_ms = wisp_now_ms() - (int64_t)duration_ms,
        .queue_ms = queue_ms,
        .init_ms = in->init_ms,
        .duration_ms = duration_ms,
        .billed_ms = (int64_t)ceil(duration_ms),
        .max_memory_mb = max_mem_mb,
        .cold = in->cold,
        .outcome = outcome,
        .error_type = error_type ? xstrdup(error_type) : NULL,
    };
    memcpy(rec.id, in->ev.request_id, sizeof rec.id);
    memcpy(rec.revision, in->revision, sizeof rec.revision);
    memcpy(rec.trigger, in->trigger, sizeof rec.trigger);
    wisp__logs_record(inv, &rec);
    char labels[200], fname[140];
    wisp_metrics_label_escape(in->fs->name, fname, sizeof fname);
    snprintf(labels, sizeof labels, "function=\"%s\",outcome=\"%s\"", fname, outcome);
    wisp_metrics_add(inv->m_invocations, labels, 1);
    snprintf(labels, sizeof labels, "function=\"%s\"", fname);
    if (strcmp(outcome, "throttled") != 0) {
        wisp_metrics_observe(inv->m_duration, labels, duration_ms / 1000.0);
        wisp_metrics_observe(inv->m_queue_wait, labels, queue_ms / 1000.0);
    }
    if (in->cold) {
        wisp_metrics_add(inv->m_cold, labels, 1);
        wisp_metrics_observe(inv->m_init, labels, in->init_ms / 1000.0);
    }
    free(in->payload);
    free(in->client_context);
    wisp_buf_free(&in->tail);
    free(in);
}

static void tail_add(struct invocation *in, const char *line, size_t len)
{
    if (!in->want_tail)
        return;
    wisp_buf_add(&in->tail, line, len);
    wisp_buf_add(&in->tail, "\n", 1);
    if (in->tail.len > 2 * WISP_LOG_TAIL_MAX)
        wisp_buf_consume(&in->tail, in->tail.len - WISP_LOG_TAIL_MAX);
}

/* A platform line (START/END/REPORT, notices) in the function's log. */
static void platform_line(wisp_invoker_t *inv, struct invocation *in, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void platform_line(wisp_invoker_t *inv, struct invocation *in, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof line ? sizeof line - 1 : (size_t)n;
    wisp__logs_add(inv, in->fs->name, in->ev.request_id, "platform", line, len);
    tail_add(in, line, len);
}

/* Finish an invocation that ran in an env (success or function error).
 * With peak_of, the memory high-water mark is read from that env (else
 * max_mem_mb is it): after the answer has gone, unless the caller wants the
 * log tail, whose REPORT line carries it (the read is a cgroup file's, tens
 * of microseconds on a virtual machine, and the END and REPORT lines are
 * formatted after it). */
static void complete(wisp_invoker_t *inv, struct invocation *in, const char *error_type,
                     const char *body, size_t len, wisp_env_t *peak_of, unsigned max_mem_mb)
{
    double duration_ms = (double)(wisp_mono_ns() - in->start_ns) / 1e6;
    double queue_ms = (double)(in->start_ns - in->enqueue_ns) / 1e6;
    wisp_invoke_result_t res = {
        .refused = WISP_OK,
        .request_id = in->ev.request_id,
        .payload = body,
        .len = len,
        .error_type = error_type,
        .cold = in->cold,
        .duration_ms = duration_ms,
        .init_ms = in->init_ms,
        .queue_ms = queue_ms,
        .executed_version = "$LATEST",
    };
    bool answered = !in->want_tail;
    if (answered) {
        in->cb(in->cb_data, &res);
        wisp_step("answered");
    }
    if (peak_of)
        max_mem_mb = wisp_env_peak_mb(peak_of);
    if (in->log_dropped)
        platform_line(inv, in,
                      "[wisp] %zu bytes of log output dropped: more than %u bytes (a line counts "
                      "%u bytes more than its text)",
                      in->log_dropped, WISP_LOG_INVOCATION_MAX, WISP_LOG_LINE_OVERHEAD);
    if (in->log_behind)
        platform_line(inv, in, "[wisp] %zu bytes of log output dropped: the log store was behind",
                      in->log_behind);
    platform_line(inv, in, "END RequestId: %s", in->ev.request_id);
    char init[64] = "";
    if (in->cold)
        snprintf(init, sizeof init, "\tInit Duration: %.2f ms", in->init_ms);
    platform_line(inv, in,
                  "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %.0f ms\tMemory "
                  "Size: %d MB\tMax Memory Used: %u MB%s",
                  in->ev.request_id, duration_ms, ceil(duration_ms),
                  in->fs->fn ? in->fs->fn->memory_mb : 0, max_mem_mb, init);
    if (!answered) {
        res.log_tail = in->tail.data;
        res.log_tail_len = in->tail.len;
        if (in->tail.len > WISP_LOG_TAIL_MAX) {
            res.log_tail = in->tail.data + in->tail.len - WISP_LOG_TAIL_MAX;
            res.log_tail_len = WISP_LOG_TAIL_MAX;
        }
        in->cb(in->cb_data, &res);
        wisp_step("answered");
    }
    record_and_free(inv, in, error_type ? "error" : "success", error_type, duration_ms, queue_ms,
                    max_mem_mb);
}

/* Finish with a platform error JSON built from type and message. */
static void complete_error(wisp_invoker_t *inv, struct invocation *in, const char *type,
                           const char *msg, unsigned max_mem_mb)
{
    json_t *o = json_pack("{s:s,s:s}", "errorMessage", msg, "errorType", type);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    complete(inv, in, type, body, strlen(body), NULL, max_mem_mb);
    free(body);
}

/* Refuse an invocation that never ran (not found, throttled, ...). */
static void refuse(wisp_invoker_t *inv, struct invocation *in, wisp_errcode_t code,
                   const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void refuse(wisp_invoker_t *inv, struct invocation *in, wisp_errcode_t code,
                   const char *reason, const char *fmt, ...)
{
    wisp_invoke_result_t res = {.refused = code, .request_id = in->ev.request_id};
    va_list ap;
    va_start(ap, fmt);
    res.err.code = code;
    vsnprintf(res.err.msg, sizeof res.err.msg, fmt, ap);
    va_end(ap);
    res.throttle_reason = reason;
    res.retry_after_s = code == WISP_ETHROTTLED ? 1 : 0;
    res.executed_version = "$LATEST";
    in->cb(in->cb_data, &res);
    if (code == WISP_ETHROTTLED && in->fs) {
        char labels[160], fname[140];
        wisp_metrics_label_escape(in->fs->name, fname, sizeof fname);
        snprintf(labels, sizeof labels, "function=\"%s\"", fname);
        wisp_metrics_add(inv->m_throttles, labels, 1);
    }
    if (in->fs) {
        double queue_ms = (double)(wisp_mono_ns() - in->enqueue_ns) / 1e6;
        const char *outcome = code == WISP_ETHROTTLED ? "throttled" : "refused";
        record_and_free(inv, in, outcome, NULL, 0, queue_ms, 0);
    } else {
        free(in->payload);
        free(in->client_context);
        wisp_buf_free(&in->tail);
        free(in);
    }
}

/* ---- queue ---- */

static void enqueue(struct fnstate *fs, struct invocation *in)
{
    in->next = NULL;
    in->ahead = fs->qlen;
    if (fs->q_tail)
        fs->q_tail->next = in;
    else
        fs->q_head = in;
    fs->q_tail = in;
    fs->qlen++;
}

static struct invocation *dequeue(struct fnstate *fs)
{
    struct invocation *in = fs->q_head;
    if (in == NULL)
        return NULL;
    fs->q_head = in->next;
    if (fs->q_head == NULL)
        fs->q_tail = NULL;
    fs->qlen--;
    in->next = NULL;
    return in;
}

static void average_in(uint64_t *avg, uint64_t sample);

/* Take the queue's head for an env, timing the queue's drain: the interval
 * between two takes while work stayed queued is what each queued invocation
 * adds to the wait, whatever it is spent on (the env, the daemon, the other
 * work on the CPUs). A sample is capped at a start: a longer one is the
 * fallback's business (scale_out). */
static struct invocation *take(struct fnstate *fs)
{
    uint64_t now = wisp_mono_ns();
    if (fs->drain_from_ns) {
        uint64_t gap = now - fs->drain_from_ns;
        average_in(&fs->drain_ns,
                   fs->start_avg_ns && gap > fs->start_avg_ns ? fs->start_avg_ns : gap);
    }
    struct invocation *in = dequeue(fs);
    fs->drain_from_ns = fs->q_head ? now : 0;
    return in;
}

static void arm_qtimer(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->q_head == NULL) {
        uv_timer_stop(fs->qtimer);
        return;
    }
    /* libuv counts the timeout from the loop's cached time, which lags while
     * an iteration runs: refresh it so the timer does not fire early. */
    uv_update_time(inv->loop);
    uint64_t now = wisp_mono_ns();
    uint64_t d = fs->q_head->queue_deadline_ns;
    /* Work left waiting for busy envs (scale_out) is looked at again once the
     * head has waited as long as scale_out's patience. */
    uint64_t patience = fs->patience_ns ? fs->patience_ns : fs->start_avg_ns;
    uint64_t again = fs->q_head->enqueue_ns + patience;
    if (patience && again > now && again < d)
        d = again;
    uv_timer_start(fs->qtimer, qtimer_cb, d > now ? (d - now) / 1000000 + 1 : 0, 0);
}

static const char *throttle_reason(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->fn && fs->fn->concurrency >= 0 && fs->live >= (unsigned)fs->fn->concurrency)
        return "ReservedFunctionConcurrentInvocationLimitExceeded";
    return "ConcurrentInvocationLimitExceeded";
}

static void qtimer_cb(uv_timer_t *t)
{
    struct fnstate *fs = t->data;
    uint64_t now = wisp_mono_ns();
    while (fs->q_head && fs->q_head->queue_deadline_ns <= now) {
        struct invocation *in = dequeue(fs);
        wisp_invoker_t *inv = in->inv;
        refuse(inv, in, WISP_ETHROTTLED, throttle_reason(inv, fs),
               "Rate Exceeded: no execution environment became free within %u ms",
               inv->cfg.queue_wait_ms);
    }
    /* Re-armed for the new head, also when the timer fired before the old
     * head's deadline (it then refused nothing and used to stay unarmed, so
     * that invocation waited past its deadline for an env). dispatch re-arms
     * it, after starting an env for a head that waited too long for a busy one. */
    if (fs->q_head == NULL)
        return;
    wisp_invoker_t *inv = fs->q_head->inv;
    if (fs->fn && !inv->shutting_down)
        dispatch(inv, fs);
    else
        arm_qtimer(inv, fs);
}

/* ---- envs ---- */

enum capacity { CAN_START, FN_LIMIT, GLOBAL_LIMIT };

static enum capacity can_start(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->fn->concurrency >= 0 && fs->live >= (unsigned)fs->fn->concurrency)
        return FN_LIMIT;
    if (inv->live >= inv->cfg.max_envs ||
        inv->mem_used_mb + (unsigned)fs->fn->memory_mb > inv->cfg.memory_budget_mb)
        return GLOBAL_LIMIT;
    return CAN_START;
}

static void env_list_remove(struct fnstate *fs, wisp_env_t *env)
{
    for (wisp_env_t **pp = &fs->envs; *pp; pp = &(*pp)->next) {
        if (*pp == env) {
            *pp = env->next;
            return;
        }
    }
}

static void build_env(wisp_invoker_t *inv, const wisp_fn_t *fn, const char *env_id,
                      bool provisioned, char ***out)
{
    size_t n = 0, cap = 32 + json_object_size(fn->env);
    char **envp = xcalloc(cap + 1, sizeof *envp);
    char date[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y/%m/%d", &tm);
    const char *key;
    json_t *val;
    json_object_foreach(fn->env, key, val)
    {
        if (json_is_string(val))
            envp[n++] = xasprintf("%s=%s", key, json_string_value(val));
    }
    envp[n++] = xstrdup("AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001");
    envp[n++] = xasprintf("_HANDLER=%s", fn->handler);
    envp[n++] = xstrdup("LAMBDA_TASK_ROOT=/var/task");
    envp[n++] = xstrdup("LAMBDA_RUNTIME_DIR=/var/runtime");
    envp[n++] = xasprintf("AWS_REGION=%s", inv->region);
    envp[n++] = xasprintf("AWS_DEFAULT_REGION=%s", inv->region);
    envp[n++] = xasprintf("AWS_LAMBDA_FUNCTION_NAME=%s", fn->name);
    envp[n++] = xasprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", fn->memory_mb);
    envp[n++] = xstrdup("AWS_LAMBDA_FUNCTION_VERSION=$LATEST");
    envp[n++] = xasprintf("AWS_LAMBDA_INITIALIZATION_TYPE=%s",
                          provisioned ? "provisioned-concurrency" : "on-demand");
    envp[n++] = xasprintf("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s", fn->name);
    envp[n++] = xasprintf("AWS_LAMBDA_LOG_STREAM_NAME=%s/[$LATEST]%s", date, env_id);
    envp[n++] = xasprintf("AWS_EXECUTION_ENV=AWS_Lambda_wisp_%s", fn->runtime);
    /* Defaults a function may override with its own env, as on Lambda. */
    static const char *const defaults[][2] = {
        {"TZ", ":UTC"},
        {"LANG", "C.UTF-8"},
        {"PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"},
        {"LD_LIBRARY_PATH", "/var/task/lib:/opt/lib"},
    };
    for (size_t i = 0; i < WISP_ARRAY_LEN(defaults); i++)
        if (json_object_get(fn->env, defaults[i][0]) == NULL)
            envp[n++] = xasprintf("%s=%s", defaults[i][0], defaults[i][1]);
    envp[n] = NULL;
    *out = envp;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void env_timer_cb(uv_timer_t *t);

static void start_env(wisp_invoker_t *inv, struct fnstate *fs, bool provisioned)
{
    const wisp_fn_t *fn = fs->fn;
    char id[64], code_dir[4096], reuse_key[160];
    snprintf(id, sizeof id, "%.40s-%llu", fn->name, (unsigned long long)++inv->env_seq);
    /* Envs of one function version may follow each other in a network
     * namespace (the revision changes with every code or config change). */
    snprintf(reuse_key, sizeof reuse_key, "%s/%s", fn->name, fn->revision);
    wisp_registry_code_dir(inv->reg, fn->code_sha256, code_dir, sizeof code_dir);
    const char *argv_provided[] = {"/var/task/bootstrap", NULL};
    const char *argv_python[] = {"/usr/bin/python3", "-S", "-B",
                                 "/var/runtime/python3/bootstrap.py", NULL};
    const char *argv_node[] = {"/usr/bin/node", "/var/runtime/nodejs/bootstrap.js", NULL};
    const char *const *argv = argv_provided;
    if (strcmp(fn->runtime, "python3") == 0)
        argv = argv_python;
    else if (strcmp(fn->runtime, "nodejs") == 0)
        argv = argv_node;
    char **envp;
    build_env(inv, fn, id, provisioned, &envp);
    unsigned weight = (unsigned)fn->memory_mb / 16;
    wisp_sandbox_spec_t spec = {
        .id = id,
        .code_dir = code_dir,
        .runtime_dir = inv->runtimes_dir,
        .argv = argv,
        .envp = (const char *const *)envp,
        .memory_mb = (unsigned)fn->memory_mb,
        .tmp_mb = (unsigned)fn->tmp_mb,
        .pids_max = 256,
        .cpu_weight = weight < 1       ? 1
                      : weight > 10000 ? 10000
                                       : weight,
        .nofile = 1024,
        .api_port = 9001,
        .zygote = argv == argv_python ? "python3"
                  : argv == argv_node ? "nodejs"
                                      : NULL,
        .reuse_key = reuse_key,
    };
    fs->live++;
    inv->live++;
    inv->mem_used_mb += (unsigned)fn->memory_mb;
    wisp_registry_pkg_hold(inv->reg, fn->code_sha256);
    wisp_env_t *env = wisp_env_start(&inv->envsys, &spec, fn->revision, fn->code_sha256, fs);
    free_strv(envp);
    if (env == NULL)
        return; /* `gone` already ran and undid the counts */
    env->next = fs->envs;
    fs->envs = env;
    unsigned init_s =
        (unsigned)fn->timeout_s > INIT_TIMEOUT_MIN_S ? (unsigned)fn->timeout_s : INIT_TIMEOUT_MIN_S;
    uv_timer_start(env->timer, env_timer_cb, init_s * 1000ull, 0);
}

/* Timer of an env: init timeout (STARTING), deadline (BUSY) or keep-alive (IDLE). */
static void env_timer_cb(uv_timer_t *t)
{
    wisp_env_t *env = t->data;
    struct fnstate *fs = env->owner;
    wisp_invoker_t *inv = env->sys->hooks_data;
    if (env->state == WISP_ENV_BUSY && env->event) {
        struct invocation *in =
            (struct invocation *)((char *)env->event - offsetof(struct invocation, ev));
        env->event = NULL;
        unsigned mem = wisp_env_peak_mb(env);
        char msg[160];
        snprintf(msg, sizeof msg, "RequestId: %s Error: Task timed out after %d.00 seconds",
                 in->ev.request_id, fs->fn ? fs->fn->timeout_s : 0);
        wisp_env_retire(env);
        complete_error(inv, in, "Sandbox.Timedout", msg, mem);
        return;
    }
    if (env->state == WISP_ENV_STARTING)
        wisp_warn("invoke", "env %s of %s did not reach /next in time; retiring", env->id,
                  fs->name);
    wisp_env_retire(env);
}

static wisp_env_t *find_idle(struct fnstate *fs)
{
    wisp_env_t *best = NULL;
    for (wisp_env_t *e = fs->envs; e; e = e->next) {
        if (e->state != WISP_ENV_IDLE || e->stale || e->next_req == NULL)
            continue;
        /* Prefer the most recently used env: keeps the others cold enough to retire. */
        if (best == NULL || e->idle_since_ns > best->idle_since_ns)
            best = e;
    }
    return best;
}

static void deliver(wisp_invoker_t *inv, wisp_env_t *env, struct invocation *in)
{
    struct fnstate *fs = env->owner;
    in->env = env;
    in->start_ns = wisp_mono_ns();
    in->cold = env->cold;
    if (env->cold)
        in->init_ms = (double)(env->init_ns - env->start_ns) / 1e6;
    env->cold = false;
    snprintf(in->revision, sizeof in->revision, "%s", env->revision);
    in->ev.deadline_ms = wisp_now_ms() + (int64_t)fs->fn->timeout_s * 1000;
    in->ev.function_arn = fs->arn;
    platform_line(inv, in, "START RequestId: %s Version: $LATEST", in->ev.request_id);
    uv_timer_start(env->timer, env_timer_cb, (uint64_t)fs->fn->timeout_s * 1000, 0);
    wisp_env_deliver(env, &in->ev);
}

/* Evict an idle env of another function to make room under the global
 * limits, the one idle the longest, unless need envs are already on their way
 * out: a retiring env holds its room until it is gone, and a dispatch that
 * runs meanwhile (another invocation, an env going idle) must not evict one
 * more for the same need. The walk is over the live envs (at most max_envs),
 * not over every function ever invoked. */
static void evict_idle_elsewhere(wisp_invoker_t *inv, struct fnstate *except, unsigned need)
{
    wisp_env_t *victim = NULL;
    unsigned retiring = 0;
    for (wisp_env_t *e = inv->envsys.by_id; e; e = e->next_all) {
        const struct fnstate *fs = e->owner;
        if (e->state == WISP_ENV_RETIRING)
            retiring++;
        if (e->state != WISP_ENV_IDLE || fs == except || fs->qlen > 0)
            continue;
        if (victim == NULL || e->idle_since_ns < victim->idle_since_ns)
            victim = e;
    }
    if (victim != NULL && retiring < need)
        wisp_env_retire(victim);
}

static void add_waiting(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->waiting)
        return;
    fs->waiting = true;
    fs->next_wait = inv->waiting;
    inv->waiting = fs;
}

/* Envs of the current revision that are not on their way out. */
static unsigned count_current(struct fnstate *fs)
{
    unsigned n = 0;
    for (wisp_env_t *e = fs->envs; e; e = e->next)
        if (e->state != WISP_ENV_RETIRING && !e->stale)
            n++;
    return n;
}

/* Fold sample into a moving average (weight 1/4; the first sample is taken as is). */
static void average_in(uint64_t *avg, uint64_t sample)
{
    if (sample == 0)
        sample = 1;
    *avg = *avg ? (*avg * 3 + sample) / 4 : sample;
}

/* Fold sample into a lower envelope: it follows a lower sample at once and a
 * higher one by 1/16 per sample. An invocation's time in its env grows with
 * the number of envs competing for the CPUs; its lower envelope is what it
 * costs, which is what scale_out must weigh (an average would start more envs
 * the more envs there are). */
static void envelope_in(uint64_t *low, uint64_t sample)
{
    if (sample == 0)
        sample = 1;
    if (*low == 0 || sample <= *low)
        *low = sample;
    else
        *low += (sample - *low < *low / 16 + 1) ? sample - *low : *low / 16 + 1;
}

static unsigned start_batch(void)
{
    static unsigned batch;
    if (batch == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        batch = n > START_BATCH_MIN / 2 ? (unsigned)n * 2 : START_BATCH_MIN;
    }
    return batch;
}

/* Of the need envs the queue asks for, how many are worth starting
 * (cost-based scale-out). A new env costs its start: ~100 ms of CPU for an
 * exec'd node on a small machine, where 64 requests at once used to start 64
 * nodes that then competed for 2 CPUs while one warm env could have answered
 * all of them in milliseconds. Queued work that the envs already serving will
 * finish sooner than a new env could start waits for them: enough envs are
 * started that the queue drains within one start time (qlen x run_low / envs
 * <= start_avg). Before a function has both estimates, and whenever the
 * queue's head has waited longer than they predict (a start, plus four times
 * its wait for the invocations queued before it at the observed drain: the
 * work got slower, or envs are stuck), up to start_batch() of its envs start
 * at once; otherwise no more than the larger of start_batch() and serving.
 * serving: the envs that will take queued work once free. Capacity limits
 * apply afterwards.
 *
 * The prediction counts the queue: many clients each waiting for their answer
 * before sending again keep it long with nothing wrong, and under such a load
 * an invocation's cycle (the daemon's work and the wake-ups included) is
 * several times its time in the env. Measured against a start time alone,
 * 64 such clients of a no-op nodejs function on 2 CPUs fell back to batches
 * again and again: 6 more envs, each about a CPU-second of start and JIT
 * warm-up there, and a third of one env's throughput for seconds. */
static unsigned scale_out(struct fnstate *fs, unsigned need, unsigned starting, unsigned serving)
{
    if (need == 0)
        return 0;
    if (fs->fn->idle_timeout_s == 0)
        serving = 0; /* they retire after their answer */
    uint64_t per = fs->drain_ns ? fs->drain_ns : serving ? fs->run_low_ns / serving : 0;
    unsigned ahead = fs->q_head ? fs->q_head->ahead : 0;
    fs->patience_ns = fs->start_avg_ns ? fs->start_avg_ns + 4 * (uint64_t)ahead * per : 0;
    bool judged = fs->run_low_ns && fs->start_avg_ns && serving > 0 && fs->q_head &&
                  wisp_mono_ns() - fs->q_head->enqueue_ns < fs->patience_ns;
    if (!judged) {
        unsigned room = starting < start_batch() ? start_batch() - starting : 0;
        return need < room ? need : room;
    }
    uint64_t want = ((uint64_t)fs->qlen * fs->run_low_ns + fs->start_avg_ns - 1) / fs->start_avg_ns;
    uint64_t have = (uint64_t)serving + starting;
    if (want <= have)
        return 0;
    /* Starts in flight stay within the larger of a batch and the envs
     * serving: a function's envs at most double per start time. The first
     * invocations judge the queue from few samples (a cold env's first run
     * can take several times its next ones), and more starts at once than
     * the CPUs can run only share them. */
    unsigned cap = serving > start_batch() ? serving : start_batch();
    unsigned room = starting < cap ? cap - starting : 0;
    uint64_t n = want - have < need ? want - have : need;
    return n < room ? (unsigned)n : room;
}

static void dispatch(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (fs->fn == NULL || inv->shutting_down)
        return;
    /* Warm envs first. */
    while (fs->q_head) {
        wisp_env_t *env = find_idle(fs);
        if (env == NULL)
            break;
        deliver(inv, env, take(fs));
    }
    /* Start envs for the work that no starting env will take. An env that
     * has answered but not yet asked for /next again is as good as idle: it
     * will be there in microseconds, far sooner than a new one; and it serves
     * (counted as not serving, a lone env between two invocations made
     * scale_out fall back to a batch). */
    unsigned starting = 0, between = 0, serving = 0;
    for (wisp_env_t *e = fs->envs; e; e = e->next) {
        if (e->stale)
            continue;
        if (e->state == WISP_ENV_STARTING)
            starting++;
        else if (e->state == WISP_ENV_BUSY && e->event == NULL)
            between++;
        else if (e->state == WISP_ENV_IDLE || e->state == WISP_ENV_BUSY)
            serving++;
    }
    unsigned soon = starting + between;
    unsigned need =
        scale_out(fs, fs->qlen > soon ? fs->qlen - soon : 0, starting, serving + between);
    /* Keep min_warm envs (provisioned concurrency). */
    unsigned current = count_current(fs);
    bool warm = false;
    if (need == 0 && current < (unsigned)fs->fn->min_warm && fs->fn->code_sha256[0] &&
        wisp_mono_ns() >= fs->warm_backoff_until_ns) {
        need = (unsigned)fs->fn->min_warm - current;
        warm = true;
    }
    while (need > 0) {
        enum capacity c = can_start(inv, fs);
        if (c == GLOBAL_LIMIT && !warm) {
            /* can_start passed the function's own limit: live < concurrency */
            unsigned room =
                fs->fn->concurrency >= 0 ? (unsigned)fs->fn->concurrency - fs->live : need;
            evict_idle_elsewhere(inv, fs, need < room ? need : room);
            add_waiting(inv, fs);
        }
        if (c != CAN_START)
            break;
        start_env(inv, fs, warm);
        need--;
    }
    arm_qtimer(inv, fs);
}

static void dispatch_waiting(wisp_invoker_t *inv)
{
    struct fnstate *list = inv->waiting;
    inv->waiting = NULL;
    while (list) {
        struct fnstate *fs = list;
        list = fs->next_wait;
        fs->waiting = false;
        if (fs->qlen > 0)
            dispatch(inv, fs);
    }
}

/* Take fs off the wait list (a deleted function has nothing to wait for). */
static void remove_waiting(wisp_invoker_t *inv, struct fnstate *fs)
{
    if (!fs->waiting)
        return;
    struct fnstate **pp = &inv->waiting;
    while (*pp != fs)
        pp = &(*pp)->next_wait;
    *pp = fs->next_wait;
    fs->waiting = false;
}

/* ---- env hooks ---- */

static void hook_ready(void *data, wisp_env_t *env)
{
    wisp_invoker_t *inv = data;
    struct fnstate *fs = env->owner;
    uv_timer_stop(env->timer);
    bool first = env->cold; /* its first /next: its start is over */
    if (first && env->init_ns > env->start_ns)
        average_in(&fs->start_avg_ns, env->init_ns - env->start_ns);
    if (env->stale || fs->fn == NULL || inv->shutting_down) {
        wisp_env_retire(env);
        return;
    }
    if (fs->q_head) {
        deliver(inv, env, take(fs));
        /* A start is over: scale_out may start the next ones. */
        if (first)
            dispatch(inv, fs);
        else
            arm_qtimer(inv, fs);
        return;
    }
    /* Nothing to do: keep it warm for idle_timeout_s (min_warm envs stay).
     * Its initialisation is over, so whoever gets it next is a warm start. */
    env->cold = false;
    unsigned current = count_current(fs);
    bool keep = current <= (unsigned)fs->fn->min_warm;
    if (fs->fn->idle_timeout_s == 0 && !keep) {
        wisp_env_retire(env);
        return;
    }
    if (!keep)
        uv_timer_start(env->timer, env_timer_cb, (uint64_t)fs->fn->idle_timeout_s * 1000, 0);
    /* Other functions may be waiting for capacity that this idle env holds. */
    if (inv->waiting && !keep)
        dispatch_waiting(inv);
}

static struct invocation *invocation_of(wisp_env_event_t *ev)
{
    return (struct invocation *)((char *)ev - offsetof(struct invocation, ev));
}

static void hook_done(void *data, wisp_env_t *env, wisp_env_event_t *ev, const char *error_type,
                      const char *body, size_t len)
{
    wisp_invoker_t *inv = data;
    struct fnstate *fs = env->owner;
    uv_timer_stop(env->timer);
    struct invocation *in = invocation_of(ev);
    bool first_run = fs->run_low_ns == 0;
    envelope_in(&fs->run_low_ns, wisp_mono_ns() - in->start_ns);
    complete(inv, in, error_type, body, len, env, 0);
    /* idle_timeout_s 0: retire right after the answer (min_warm envs stay). */
    if (fs->fn && fs->fn->idle_timeout_s == 0 && !env->stale) {
        if (count_current(fs) > (unsigned)fs->fn->min_warm)
            env->stale = true;
    }
    if (env->stale || fs->fn == NULL)
        wisp_env_retire(env);
    /* The first measured invocation: scale_out can now judge the queue. */
    if (first_run && fs->q_head)
        dispatch(inv, fs);
}

static void hook_log(void *data, wisp_env_t *env, const char *stream, const char *line, size_t len)
{
    wisp_invoker_t *inv = data;
    struct fnstate *fs = env->owner;
    if (env->event == NULL) {
        wisp__logs_add(inv, fs->name, "", stream, line, len);
        return;
    }
    struct invocation *in = invocation_of(env->event);
    in->log_bytes += len + 1 + WISP_LOG_LINE_OVERHEAD; /* what holding the line costs */
    if (in->log_bytes > WISP_LOG_INVOCATION_MAX) {
        in->log_dropped += len + 1; /* the text's bytes */
        return;
    }
    if (!wisp__logs_add(inv, fs->name, in->ev.request_id, stream, line, len))
        in->log_behind += len + 1;
    tail_add(in, line, len);
}

static void hook_init_error(void *data, wisp_env_t *env, const char *error_type, const char *body,
                            size_t len)
{
    struct fnstate *fs = env->owner;
    free(fs->init_error_type);
    free(fs->init_error_body);
    fs->init_error_type = xstrdup(error_type);
    fs->init_error_body = xstrndup(body, len);
}

static void exit_message(char *out, size_t n, const char *rid, int status)
{
    if (WIFEXITED(status))
        snprintf(out, n, "RequestId: %s Error: Runtime exited with error: exit status %d", rid,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "RequestId: %s Error: Runtime exited with error: signal: %s", rid,
                 WTERMSIG(status) == SIGKILL ? "killed" : strsignal(WTERMSIG(status)));
    else
        snprintf(out, n, "RequestId: %s Error: Runtime exited without providing a reason", rid);
}

/* Fail an invocation because its env died (or could not start). */
static void fail_from_exit(wisp_invoker_t *inv, struct fnstate *fs, struct invocation *in,
                           int status, bool oom, uint64_t peak, const wisp_err_t *spawn_err,
                           bool during_init)
{
    char msg[700];
    unsigned mem = (unsigned)((peak + (1u << 20) - 1) >> 20);
    if (in->start_ns == 0)
        in->start_ns = wisp_mono_ns();
    if (spawn_err) {
        int e = spawn_err->sys_errno;
        bool entry = e == ENOENT || e == EACCES || e == ENOEXEC || e == ENOTDIR;
        snprintf(msg, sizeof msg, "RequestId: %s Error: %s", in->ev.request_id, spawn_err->msg);
        complete_error(inv, in, entry ? "Runtime.InvalidEntrypoint" : "Runtime.Unknown", msg, 0);
        return;
    }
    if (during_init && fs->init_error_type) {
        cleanup_free char *type = steal_pointer(&fs->init_error_type);
        cleanup_free char *body = steal_pointer(&fs->init_error_body);
        complete(inv, in, type, body, strlen(body), NULL, mem);
        return;
    }
    if (oom) {
        snprintf(msg, sizeof msg, "RequestId: %s Error: Runtime exited with error: signal: killed",
                 in->ev.request_id);
        complete_error(inv, in, "Runtime.OutOfMemory", msg, mem);
        return;
    }
    exit_message(msg, sizeof msg, in->ev.request_id, status);
    complete_error(inv, in, "Runtime.ExitError", msg, mem);
}

static void hook_gone(void *data, wisp_env_t *env, wisp_env_event_t *ev, int wait_status, bool oom,
                      uint64_t peak, const wisp_err_t *spawn_err)
{
    wisp_invoker_t *inv = data;
    struct fnstate *fs = env->owner;
    bool during_init = env->init_ns == 0;
    env_list_remove(fs, env);
    fs->live--;
    inv->live--;
    inv->mem_used_mb -= env->memory_mb;
    wisp_registry_pkg_release(inv->reg, env->code_sha256);
    if (spawn_err)
        wisp_warn("invoke", "env %s of %s failed to start: %s", env->id, fs->name, spawn_err->msg);
    if (ev) {
        fail_from_exit(inv, fs, invocation_of(ev), wait_status, oom, peak, spawn_err, false);
    } else if (during_init && !env->stale && fs->q_head && !inv->shutting_down) {
        /* The env died before it could take work: the next waiting invocation
         * gets the reason, so a broken function fails fast instead of looping. */
        struct invocation *in = dequeue(fs);
        in->cold = true;
        fail_from_exit(inv, fs, in, wait_status, oom, peak, spawn_err, true);
        fs->warm_backoff_until_ns = wisp_mono_ns() + 1000000000ull;
    } else if (during_init && !env->stale) {
        fs->warm_backoff_until_ns = wisp_mono_ns() + 1000000000ull;
    }
    if (inv->shutting_down) {
        if (inv->live == 0 && inv->shutdown_done) {
            void (*done)(void *) = inv->shutdown_done;
            inv->shutdown_done = NULL;
            done(inv->shutdown_data);
        }
        return;
    }
    dispatch(inv, fs);
    if (inv->waiting)
        dispatch_waiting(inv);
    fs_release_if_unused(inv, fs); /* the last env of a deleted function */
}

static const wisp_env_hooks_t hooks = {
    .ready = hook_ready,
    .done = hook_done,
    .log = hook_log,
    .init_error = hook_init_error,
    .gone = hook_gone,
};

/* ---- registry changes ---- */

/* A deleted function's metric series go with it (a platform that creates
 * and deletes functions all day must not keep their series forever). */
static void forget_metrics(const char *name)
{
    char label[200], fname[140];
    wisp_metrics_label_escape(name, fname, sizeof fname);
    snprintf(label, sizeof label, "function=\"%s\"", fname);
    wisp_metrics_forget(label);
}

static void fn_changed(void *data, const char *name, const wisp_fn_t *fn)
{
    wisp_invoker_t *inv = data;
    struct fnstate *fs = fs_find(inv, name);
    if (fs == NULL) {
        if (fn == NULL || fn->min_warm == 0)
            return;
        fs = fs_get(inv, name, true);
        if (fs == NULL)
            return;
    } else {
        /* Envs of the old revision finish their event, then retire. */
        if (fs->fn) {
            for (wisp_env_t *e = fs->envs; e; e = e->next) {
                e->stale = true;
                if (e->state == WISP_ENV_IDLE || e->state == WISP_ENV_STARTING)
                    wisp_env_retire(e);
            }
        }
        wisp_fn_free(fs->fn);
        fs->fn = fn ? wisp_fn_dup(fn) : NULL;
        /* New code or limits: what was measured of the old is no guide. */
        fs->start_avg_ns = fs->run_low_ns = fs->drain_ns = fs->drain_from_ns = fs->patience_ns = 0;
    }
    if (fs->fn == NULL) {
        while (fs->q_head) {
            struct invocation *in = dequeue(fs);
            refuse(inv, in, WISP_ENOTFOUND, NULL, "Function not found: %s", fs->arn);
        }
        arm_qtimer(inv, fs);
        forget_metrics(name);
        remove_waiting(inv, fs);
        fs_release_if_unused(inv, fs); /* now, or when its last env is gone */
        return;
    }
    dispatch(inv, fs);
}

/* ---- public ---- */

static void envs_gauge(wisp_buf_t *out, const char *name, void *data)
{
    wisp_invoker_t *inv = data;
    unsigned counts[4] = {0};
    for (wisp_env_t *e = inv->envsys.by_id; e; e = e->next_all)
        counts[e->state]++;
    for (int s = 0; s < 4; s++)
        wisp_buf_addf(out, "%s{state=\"%s\"} %u\n", name, wisp_env_state_name((wisp_env_state_t)s),
                      counts[s]);
}

static void functions_gauge(wisp_buf_t *out, const char *name, void *data)
{
    const wisp_invoker_t *inv = data;
    wisp_buf_addf(out, "%s %zu\n", name, inv->nfns);
}

wisp_invoker_t *wisp_invoker_new(uv_loop_t *loop, wisp_registry_t *reg, wisp_store_t *store,
                                 wisp_sandbox_t *sb, const wisp_invoker_config_t *cfg,
                                 wisp_err_t *err)
{
    wisp_invoker_t *inv = xcalloc(1, sizeof *inv);
    inv->loop = loop;
    inv->reg = reg;
    inv->store = store;
    inv->sb = sb;
    if (cfg)
        inv->cfg = *cfg;
    if (inv->cfg.max_envs == 0)
        inv->cfg.max_envs = 256;
    inv->table_size = FN_TABLE_MIN;
    inv->table = xcalloc(inv->table_size, sizeof *inv->table);
    if (inv->cfg.memory_budget_mb == 0) {
        struct sysinfo si;
        sysinfo(&si);
        inv->cfg.memory_budget_mb =
            (unsigned)((uint64_t)si.totalram * si.mem_unit / (1024 * 1024) * 3 / 4);
    }
    if (inv->cfg.queue_max == 0)
        inv->cfg.queue_max = 100;
    if (inv->cfg.queue_wait_ms == 0)
        inv->cfg.queue_wait_ms = 2000;
    if (inv->cfg.log_cap_lines == 0)
        inv->cfg.log_cap_lines = 100000;
    inv->runtimes_dir =
        xstrdup(cfg && cfg->runtimes_dir ? cfg->runtimes_dir : "/usr/lib/wisp/runtimes");
    inv->region = xstrdup(cfg && cfg->region ? cfg->region : "us-east-1");
    inv->account_id = xstrdup(cfg && cfg->account_id ? cfg->account_id : "000000000000");
    if (wisp_env_system_init(&inv->envsys, loop, sb, &hooks, inv, err) < 0) {
        wisp_invoker_free(inv);
        return NULL;
    }
    wisp__logs_init(inv);
    inv->m_invocations =
        wisp_metrics_counter("wisp_invocations_total", "Invocations by function and outcome.");
    inv->m_duration = wisp_metrics_histogram(
        "wisp_invocation_duration_seconds", "Time from event delivery to the answer.",
        wisp_metrics_latency_buckets, wisp_metrics_latency_nbuckets);
    inv->m_init = wisp_metrics_histogram(
        "wisp_init_duration_seconds", "Cold start: env creation to the runtime's first /next.",
        wisp_metrics_latency_buckets, wisp_metrics_latency_nbuckets);
    inv->m_cold = wisp_metrics_counter("wisp_cold_starts_total", "Invocations served cold.");
    inv->m_throttles = wisp_metrics_counter("wisp_throttles_total", "Invocations throttled (429).");
    inv->m_queue_wait =
        wisp_metrics_histogram("wisp_queue_wait_seconds", "Time invocations waited for an env.",
                               wisp_metrics_latency_buckets, wisp_metrics_latency_nbuckets);
    wisp_metrics_gauge_fn("wisp_envs", "Live execution environments by state.", envs_gauge, inv);
    wisp_metrics_gauge_fn("wisp_invoker_functions",
                          "Functions the invoker holds state for (invoked or provisioned; a "
                          "deleted one until its last env is gone).",
                          functions_gauge, inv);
    wisp_registry_on_change(reg, fn_changed, inv);
    /* Provisioned concurrency: start min_warm envs of every function now. */
    wisp_fn_t **list = NULL;
    size_t n = 0;
    if (wisp_registry_list(reg, NULL, 100000, &list, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++)
            if (list[i]->min_warm > 0)
                fn_changed(inv, list[i]->name, list[i]);
        wisp_fn_list_free(list, n);
    }
    return inv;
}

void wisp_invoke(wisp_invoker_t *inv, const wisp_invoke_req_t *req, wisp_invoke_cb cb, void *data)
{
    struct invocation *in = xcalloc(1, sizeof *in);
    in->inv = inv;
    /* Time-ordered: the invocation records and log lines keyed by it are
     * appended at the end of their indexes instead of all over them. */
    wisp_uuid7(in->ev.request_id);
    in->cb = cb;
    in->cb_data = data;
    in->enqueue_ns = wisp_mono_ns();
    wisp_step("invoke");
    in->want_tail = req->want_log_tail;
    wisp_buf_init(&in->tail, 0);
    snprintf(in->trigger, sizeof in->trigger, "%s", req->trigger ? req->trigger : "api");
    if (inv->shutting_down)
        return refuse(inv, in, WISP_EUNAVAILABLE, NULL, "the platform is shutting down");
    if (req->len > WISP_PAYLOAD_MAX)
        return refuse(inv, in, WISP_ELIMIT, NULL,
                      "Request payload size (%zu bytes) exceeded the maximum of %u bytes", req->len,
                      WISP_PAYLOAD_MAX);
    struct fnstate *fs = fs_get(inv, req->function, true);
    if (fs == NULL || fs->fn == NULL)
        return refuse(inv, in, WISP_ENOTFOUND, NULL,
                      "Function not found: arn:aws:lambda:%s:%s:function:%s", inv->region,
                      inv->account_id, req->function);
    in->fs = fs;
    if (fs->fn->code_sha256[0] == '\0')
        return refuse(inv, in, WISP_ECONFLICT, NULL,
                      "function %s has no code yet: upload a package first", fs->name);
    if (fs->fn->concurrency == 0)
        return refuse(inv, in, WISP_ETHROTTLED, "ReservedFunctionConcurrentInvocationLimitExceeded",
                      "Rate Exceeded: function %s has a reserved concurrency of 0", fs->name);
    in->payload = xmalloc(req->len + 1);
    memcpy(in->payload, req->payload ? req->payload : "", req->len);
    in->payload[req->len] = '\0';
    in->ev.payload = in->payload;
    in->ev.len = req->len;
    if (req->len == 0) {
        in->ev.payload = "{}";
        in->ev.len = 2;
    }
    if (req->trace_id && *req->trace_id) {
        snprintf(in->trace_id, sizeof in->trace_id, "%s", req->trace_id);
    } else {
        unsigned char r[20];
        char hex[41];
        wisp_random_bytes_fast(r, sizeof r);
        wisp_hex(r, sizeof r, hex);
        snprintf(in->trace_id, sizeof in->trace_id, "Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0",
                 (unsigned long long)(wisp_now_ms() / 1000), hex, hex + 24);
    }
    in->ev.trace_id = in->trace_id;
    if (req->client_context && *req->client_context) {
        /* Callers give it base64-encoded (X-Amz-Client-Context); runtimes get JSON. */
        size_t blen = strlen(req->client_context);
        if (blen > 3583 * 4 / 3 + 4)
            return refuse(inv, in, WISP_EINVALID, NULL,
                          "Client context must be at most 3583 bytes of base64-encoded JSON");
        char *raw = xmalloc(blen / 4 * 3 + 4);
        int rn = EVP_DecodeBlock((unsigned char *)raw, (const unsigned char *)req->client_context,
                                 (int)blen);
        while (rn > 0 && blen > 0 && req->client_context[blen - 1] == '=') {
            rn--;
            blen--;
        }
        json_error_t jerr;
        json_t *cc = rn > 0 ? json_loadb(raw, (size_t)rn, 0, &jerr) : NULL;
        if (!json_is_object(cc)) {
            json_decref(cc);
            free(raw);
            return refuse(inv, in, WISP_EINVALID, NULL,
                          "Client context must be a valid Base64-encoded JSON object");
        }
        json_decref(cc);
        raw[rn] = '\0';
        for (int i = 0; i < rn; i++)
            if (raw[i] == '\r' || raw[i] == '\n')
                raw[i] = ' '; /* it travels in a header */
        in->client_context = raw;
        in->ev.client_context = in->client_context;
    }
    /* Fast path: a warm env is waiting. */
    wisp_env_t *env = fs->q_head == NULL ? find_idle(fs) : NULL;
    if (env != NULL) {
        uv_timer_stop(env->timer);
        deliver(inv, env, in);
        return;
    }
    if (fs->qlen >= inv->cfg.queue_max)
        return refuse(inv, in, WISP_ETHROTTLED, throttle_reason(inv, fs),
                      "Rate Exceeded: %u invocations of %s are already waiting", fs->qlen,
                      fs->name);
    in->queue_deadline_ns = in->enqueue_ns + (uint64_t)inv->cfg.queue_wait_ms * 1000000;
    enqueue(fs, in);
    dispatch(inv, fs);
}

void wisp_invoker_shutdown(wisp_invoker_t *inv, void (*done)(void *data), void *data)
{
    inv->shutting_down = true;
    for (size_t b = 0; b < inv->table_size; b++) {
        for (struct fnstate *fs = inv->table[b]; fs; fs = fs->next_hash) {
            while (fs->q_head)
                refuse(inv, dequeue(fs), WISP_EUNAVAILABLE, NULL, "the platform is shutting down");
            uv_timer_stop(fs->qtimer);
        }
    }
    for (wisp_env_t *e = inv->envsys.by_id; e; e = e->next_all)
        wisp_env_retire(e);
    if (inv->live == 0) {
        if (done)
            done(data);
        return;
    }
    inv->shutdown_done = done;
    inv->shutdown_data = data;
}

static void free_cb(uv_handle_t *h)
{
    free(h);
}

void wisp_invoker_free(wisp_invoker_t *inv)
{
    if (inv == NULL)
        return;
    if (inv->flush_timer)
        wisp__logs_close(inv);
    for (size_t b = 0; b < inv->table_size; b++) {
        while (inv->table[b]) {
            struct fnstate *fs = inv->table[b];
            inv->table[b] = fs->next_hash;
            fs_free(fs);
        }
    }
    free(inv->table);
    wisp_env_system_close(&inv->envsys);
    free(inv->runtimes_dir);
    free(inv->region);
    free(inv->account_id);
    free(inv);
}
