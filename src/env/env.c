/*
 * env.c - execution environment life cycle and the Lambda Runtime API
 * (shared/reference/lambda.md §1) served on each env's own listening socket.
 * See env.h for the states and who owns what.
 */
#include "env/env.h"

#include <openssl/evp.h>
#include <poll.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"

#define LINE_MAX_BYTES (256 * 1024) /* a longer line is split (never dropped) */
#define FINISH_WAIT_MS 200          /* wait for buffered output after the exit */
#define API_PREFIX "/2018-06-01/runtime/"

static void env_maybe_finish(wisp_env_t *env);
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

const char *wisp_env_state_name(wisp_env_state_t s)
{
    switch (s) {
    case WISP_ENV_STARTING: return "starting";
    case WISP_ENV_IDLE: return "idle";
    case WISP_ENV_BUSY: return "busy";
    case WISP_ENV_RETIRING: return "retiring";
    }
    return "unknown";
}

/* ---- freeing: every uv handle is closed first; the env is freed in the last close callback ----
 */

static void unlink_env(wisp_env_t *env)
{
    for (wisp_env_t **pp = &env->sys->by_id; *pp; pp = &(*pp)->next_all) {
        if (*pp == env) {
            *pp = env->next_all;
            env->sys->count--;
            return;
        }
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    wisp_env_t *env = h->data;
    free(h);
    if (--env->pending_closes == 0) {
        free(env->linebuf[0]);
        free(env->linebuf[1]);
        free(env);
    }
}

static void close_handle(wisp_env_t *env, uv_handle_t *h)
{
    if (h == NULL || uv_is_closing(h))
        return;
    h->data = env;
    env->pending_closes++;
    uv_close(h, handle_closed_cb);
}

static void env_free(wisp_env_t *env)
{
    unlink_env(env);
    if (env->peak_fd >= 0) {
        close(env->peak_fd);
        env->peak_fd = -1;
    }
    if (env->listener) {
        wisp_http_listener_close(env->listener);
        env->listener = NULL;
    }
    env->pending_closes++; /* hold until all handles are queued for closing */
    close_handle(env, (uv_handle_t *)env->out);
    close_handle(env, (uv_handle_t *)env->err);
    close_handle(env, (uv_handle_t *)env->timer);
    close_handle(env, (uv_handle_t *)env->finish);
    if (--env->pending_closes == 0) {
        free(env->linebuf[0]);
        free(env->linebuf[1]);
        free(env);
    }
}

/* ---- output capture ---- */

static bool quiet_output_ok(wisp_env_t *env, size_t len);

static void emit_line(wisp_env_t *env, int which, const char *line, size_t len)
{
    const wisp_env_hooks_t *h = env->sys->hooks;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (env->event == NULL && !quiet_output_ok(env, len))
        return;
    h->log(env->sys->hooks_data, env, which ? "stderr" : "stdout", line, len);
}

static void flush_partial(wisp_env_t *env, int which)
{
    if (env->linelen[which] > 0) {
        emit_line(env, which, env->linebuf[which], env->linelen[which]);
        env->linelen[which] = 0;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536]; /* loop thread only; consumed before the next read */
    buf->base = scratch;
    buf->len = sizeof scratch;
}

/* Split output into lines; a line longer than LINE_MAX_BYTES is emitted in pieces. */
static void consume(wisp_env_t *env, int which, const char *p, const char *end)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (env->linelen[which] == 0 && nl && (size_t)(nl - p) <= LINE_MAX_BYTES) {
            emit_line(env, which, p, (size_t)(nl - p)); /* a whole line: no copy */
        } else {
            if (env->linebuf[which] == NULL)
                env->linebuf[which] = xmalloc(LINE_MAX_BYTES);
            while (p < stop) {
                size_t room = LINE_MAX_BYTES - env->linelen[which];
                size_t take = (size_t)(stop - p) < room ? (size_t)(stop - p) : room;
                memcpy(env->linebuf[which] + env->linelen[which], p, take);
                env->linelen[which] += take;
                p += take;
                if (env->linelen[which] == LINE_MAX_BYTES)
                    flush_partial(env, which);
            }
            if (nl)
                flush_partial(env, which);
        }
        p = nl ? nl + 1 : end;
    }
}

/*
 * Output outside an event. What a runtime prints during init and between
 * invocations (background threads, children that outlive an invocation)
 * belongs to no request, and no invocation's 4 MiB cap bounds it: without a
 * limit of its own, an env could make the daemon buffer and store its output
 * as fast as it can write (measured: +150 MB of daemon memory per second).
 * At most WISP_ENV_QUIET_OUTPUT_MAX bytes of it are kept between two
 * deliveries; past that the rest is dropped with one notice and the env's
 * pipes are no longer read until its next delivery or its exit, so the
 * writer blocks on its own full pipe instead of costing the daemon memory
 * and CPU.
 */
static void set_reading(wisp_env_t *env, bool on)
{
    uv_pipe_t *pipes[2] = {env->out, env->err};
    bool eof[2] = {env->out_eof, env->err_eof};
    for (int i = 0; i < 2; i++) {
        if (pipes[i] == NULL || eof[i])
            continue;
        if (on)
            (void)uv_read_start((uv_stream_t *)pipes[i], alloc_cb, read_cb);
        else
            uv_read_stop((uv_stream_t *)pipes[i]);
    }
    env->output_paused = !on;
}

/* A line of len bytes printed with no event in flight: false if dropped. */
static bool quiet_output_ok(wisp_env_t *env, size_t len)
{
    if (env->quiet_over)
        return false;
    env->quiet_bytes += len + 1 + WISP_LOG_LINE_OVERHEAD;
    if (env->quiet_bytes <= WISP_ENV_QUIET_OUTPUT_MAX)
        return true;
    env->quiet_over = true;
    char msg[200];
    int n = snprintf(msg, sizeof msg,
                     "[wisp] more than %u bytes of log output outside an invocation: the rest is "
                     "dropped until the next invocation",
                     WISP_ENV_QUIET_OUTPUT_MAX);
    env->sys->hooks->log(env->sys->hooks_data, env, "platform", msg, (size_t)n);
    return false;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    wisp_env_t *env = s->data;
    int which = (uv_pipe_t *)s == env->err;
    if (n > 0 && env->event == NULL && env->quiet_over) {
        /* Dropped unparsed (after the exit, reading resumes to reach EOF). */
        if (!env->exited)
            set_reading(env, false);
        return;
    }
    if (n < 0) {
        flush_partial(env, which);
        uv_read_stop(s);
        if (which)
            env->err_eof = true;
        else
            env->out_eof = true;
        env_maybe_finish(env);
        return;
    }
    consume(env, which, buf->base, buf->base + n);
    if (env->quiet_over && env->event == NULL && !env->exited)
        set_reading(env, false); /* the runtime's writes now wait on a full pipe */
}

/* Read whatever the env has already written to stdout/stderr. Called before
 * an answer is reported, so that the lines a runtime printed before it
 * answered belong to that invocation (and its log tail) even when the loop
 * happened to see the answer's socket before the pipe. */
static void drain_output(wisp_env_t *env)
{
    uv_pipe_t *pipes[2] = {env->out, env->err};
    struct pollfd pfd[2];
    int which_of[2], n = 0;
    for (int which = 0; which < 2; which++) {
        uv_os_fd_t fd;
        if (pipes[which] == NULL || (which ? env->err_eof : env->out_eof) ||
            uv_fileno((uv_handle_t *)pipes[which], &fd) < 0)
            continue;
        pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
        which_of[n++] = which;
    }
    /* One poll for both pipes: on the warm path they are usually empty, and
     * a read of each would be two system calls ending in EAGAIN. */
    if (n == 0 || poll(pfd, (nfds_t)n, 0) <= 0)
        return;
    char buf[65536];
    for (int i = 0; i < n; i++) {
        if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        /* Bounded: a runtime that floods its pipe is read by the loop later. */
        for (int k = 0; k < 16; k++) {
            ssize_t got = read(pfd[i].fd, buf, sizeof buf);
            if (got <= 0)
                break;
            consume(env, which_of[i], buf, buf + got);
        }
    }
}

static uv_pipe_t *open_pipe(wisp_env_t *env, int fd, int which)
{
    uv_pipe_t *pipe = xcalloc(1, sizeof *pipe);
    uv_pipe_init(env->sys->loop, pipe, 0);
    pipe->data = env;
    if (uv_pipe_open(pipe, fd) < 0 || uv_read_start((uv_stream_t *)pipe, alloc_cb, read_cb) < 0) {
        close(fd);
        if (which)
            env->err_eof = true;
        else
            env->out_eof = true;
    }
    return pipe;
}

/* ---- exit ---- */

static void finish_timer_cb(uv_timer_t *t)
{
    wisp_env_t *env = t->data;
    env->out_eof = env->err_eof = true;
    env_maybe_finish(env);
}

static void env_maybe_finish(wisp_env_t *env)
{
    if (!env->exited || !env->out_eof || !env->err_eof)
        return;
    env->exited = false; /* report once */
    flush_partial(env, 0);
    flush_partial(env, 1);
    wisp_env_event_t *ev = steal_pointer(&env->event);
    if (env->next_req) {
        wisp_http_req_t *req = steal_pointer(&env->next_req);
        wisp_http_respond(req, 410, "application/json", NULL, "{}", 2);
    }
    const wisp_env_hooks_t *h = env->sys->hooks;
    h->gone(env->sys->hooks_data, env, ev, env->wait_status, env->oom, env->peak_mem, NULL);
    env_free(env);
}

static void sandbox_exit_cb(void *data, const char *id, int wait_status, bool oom,
                            uint64_t peak_mem)
{
    wisp_env_system_t *sys = data;
    for (wisp_env_t *env = sys->by_id; env; env = env->next_all) {
        if (strcmp(env->id, id) != 0)
            continue;
        env->state = WISP_ENV_RETIRING;
        env->exited = true;
        env->wait_status = wait_status;
        env->oom = oom;
        env->peak_mem = peak_mem;
        /* The runtime's connections are gone with it; stop serving it now. */
        if (env->listener) {
            wisp_http_listener_close(env->listener);
            env->listener = NULL;
        }
        if (!env->out_eof || !env->err_eof)
            uv_timer_start(env->finish, finish_timer_cb, FINISH_WAIT_MS, 0);
        if (env->output_paused)
            set_reading(env, true); /* drain to EOF (what is over the maximum is dropped) */
        env_maybe_finish(env);
        return;
    }
}

/* ---- Runtime API ---- */

static void api_error(wisp_http_req_t *req, int status, const char *type, const char *msg)
{
    json_t *o = json_pack("{s:s,s:s}", "errorMessage", msg, "errorType", type);
    char *body = json_dumps(o, JSON_COMPACT);
    wisp_http_respond(req, status, "application/json", NULL, body, strlen(body));
    free(body);
    json_decref(o);
}

static void next_abort_cb(wisp_http_req_t *req, void *data)
{
    wisp_env_t *env = data;
    if (env->next_req == req) {
        env->next_req = NULL;
        wisp_http_respond(req, 410, "application/json", NULL, "{}", 2);
    }
}

static void handle_next(wisp_env_t *env, wisp_http_req_t *req)
{
    if (env->next_req != NULL || env->event != NULL) {
        api_error(req, 403, "InvalidStateTransition",
                  env->event ? "the current invocation has not been answered"
                             : "another /next request is already waiting");
        return;
    }
    env->next_req = req;
    wisp_http_req_on_abort(req, next_abort_cb, env);
    bool first = env->state == WISP_ENV_STARTING;
    env->state = WISP_ENV_IDLE;
    env->idle_since_ns = wisp_mono_ns();
    if (first) {
        env->init_ns = env->idle_since_ns;
        wisp_step("first-next");
    }
    env->sys->hooks->ready(env->sys->hooks_data, env);
}

/* Wrap a non-JSON error body so callers always get {"errorMessage","errorType"}. */
static char *error_body(const char *type, const char *body, size_t len, size_t *out_len)
{
    json_error_t jerr;
    json_t *o = len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        cleanup_free char *text = xstrndup(body, len);
        o = json_pack("{s:s,s:s}", "errorMessage", text, "errorType", type);
    } else if (json_object_get(o, "errorType") == NULL) {
        json_object_set_new(o, "errorType", json_string(type));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *out_len = strlen(s);
    return s;
}

static const char *error_type_of(wisp_http_req_t *req, const char *fallback)
{
    const char *t = wisp_http_req_header(req, "Lambda-Runtime-Function-Error-Type");
    return t && *t ? t : fallback;
}

static void finish_event(wisp_env_t *env, const char *error_type, const char *body, size_t len)
{
    drain_output(env);
    wisp_env_event_t *ev = steal_pointer(&env->event);
    env->sys->hooks->done(env->sys->hooks_data, env, ev, error_type, body, len);
    /* After the answer has gone: the spawner may now do what it kept from
     * competing with this env's start (it builds exec stems then). An env
     * retired meanwhile is being killed, which tells the spawner as much. */
    if (!env->answered && env->spawned) {
        env->answered = true;
        if (env->state != WISP_ENV_RETIRING)
            wisp_sandbox_up(env->sys->sandbox, env->id);
    }
}

static void handle_result(wisp_env_t *env, wisp_http_req_t *req, const char *id, bool is_error)
{
    wisp_step("response");
    if (env->event == NULL || strcmp(env->event->request_id, id) != 0) {
        api_error(req, 400, "InvalidRequestID", "Invalid request ID");
        return;
    }
    if (req->body_len > WISP_ENV_RESPONSE_MAX) {
        api_error(req, 413, "RequestEntityTooLarge",
                  "Response payload size exceeded maximum allowed payload size (6291556 bytes).");
        char msg[160];
        snprintf(msg, sizeof msg,
                 "{\"errorMessage\":\"Response payload size (%zu bytes) exceeded maximum allowed "
                 "payload size (6291556 bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}",
                 req->body_len);
        finish_event(env, "Function.ResponseSizeTooLarge", msg, strlen(msg));
        return;
    }
    /* The request (and its body) lives until it is answered: report first. */
    const char *ttype = wisp_http_req_trailer(req, "Lambda-Runtime-Function-Error-Type");
    if (!is_error && ttype && *ttype) {
        /* A streamed response that failed midway: the error is in the
         * trailers (its body base64-encoded), not in what was streamed. */
        const char *b64 = wisp_http_req_trailer(req, "Lambda-Runtime-Function-Error-Body");
        size_t blen = b64 ? strlen(b64) : 0;
        cleanup_free unsigned char *raw = xmalloc(blen / 4 * 3 + 4);
        int rn = b64 ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen) : -1;
        while (rn > 0 && blen > 0 && b64[blen - 1] == '=') {
            rn--; /* EVP_DecodeBlock counts padding as zero bytes */
            blen--;
        }
        size_t n;
        cleanup_free char *body = rn >= 0 ? error_body(ttype, (const char *)raw, (size_t)rn, &n)
                                          : error_body(ttype, "", 0, &n);
        finish_event(env, ttype, body, n);
    } else if (is_error) {
        const char *type = error_type_of(req, "Unhandled");
        size_t n;
        cleanup_free char *body = error_body(type, req->body, req->body_len, &n);
        finish_event(env, type, body, n);
    } else {
        finish_event(env, NULL, req->body, req->body_len);
    }
    wisp_http_respond(req, 202, "application/json", NULL, "{\"status\":\"OK\"}", 15);
}

static void handle_init_error(wisp_env_t *env, wisp_http_req_t *req)
{
    if (env->state == WISP_ENV_STARTING) {
        const char *type = error_type_of(req, "Runtime.Unknown");
        size_t n;
        cleanup_free char *body = error_body(type, req->body, req->body_len, &n);
        env->sys->hooks->init_error(env->sys->hooks_data, env, type, body, n);
        wisp_env_retire(env);
    }
    wisp_http_respond(req, 202, "application/json", NULL, "{\"status\":\"OK\"}", 15);
}

static void runtime_api_cb(wisp_http_req_t *req, void *data)
{
    wisp_env_t *env = req->listener_data;
    if (env == NULL || env->state == WISP_ENV_RETIRING) {
        api_error(req, 410, "EnvironmentRetired", "the environment is shutting down");
        return;
    }
    const char *path = req->path;
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0) {
        api_error(req, 404, "UnknownEndpoint", "unknown Runtime API endpoint");
        return;
    }
    path += strlen(API_PREFIX);
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (strcmp(path, "invocation/next") == 0) {
        if (!get)
            return api_error(req, 405, "MethodNotAllowed", "use GET");
        return handle_next(env, req);
    }
    if (strcmp(path, "init/error") == 0) {
        if (!post)
            return api_error(req, 405, "MethodNotAllowed", "use POST");
        return handle_init_error(env, req);
    }
    if (strncmp(path, "invocation/", 11) == 0) {
        const char *id = path + 11;
        const char *slash = strchr(id, '/');
        if (slash && slash - id < 64 && post) {
            char rid[64];
            memcpy(rid, id, (size_t)(slash - id));
            rid[slash - id] = '\0';
            if (strcmp(slash, "/response") == 0)
                return handle_result(env, req, rid, false);
            if (strcmp(slash, "/error") == 0)
                return handle_result(env, req, rid, true);
        }
    }
    api_error(req, 404, "UnknownEndpoint", "unknown Runtime API endpoint");
}

/* The HTTP layer refused a request of this env's runtime before our handler
 * saw it. A body over the limit while an event is in flight is the runtime
 * trying to answer with more than the Lambda maximum. */
static void runtime_reject_cb(void *listener_data, int status)
{
    wisp_env_t *env = listener_data;
    if (env == NULL || status != 413 || env->event == NULL || env->state == WISP_ENV_RETIRING)
        return;
    static const char msg[] = "{\"errorMessage\":\"Response payload size exceeded maximum allowed "
                              "payload size (6291556 bytes).\",\"errorType\":\"Function."
                              "ResponseSizeTooLarge\"}";
    finish_event(env, "Function.ResponseSizeTooLarge", msg, sizeof msg - 1);
}

/* ---- start, deliver, retire ---- */

static void spawn_cb(void *data, const wisp_sandbox_started_t *st, const wisp_err_t *err)
{
    wisp_env_t *env = data;
    if (err != NULL) {
        env->sys->hooks->gone(env->sys->hooks_data, env, steal_pointer(&env->event), 0, false, 0,
                              err);
        env_free(env);
        return;
    }
    env->spawned = true;
    env->peak_fd = st->peak_fd; /* -1: opened on first use */
    wisp_step("spawned");
    char labels[32];
    snprintf(labels, sizeof labels, "how=\"%s\"", wisp_sandbox_how_name(st->how));
    wisp_metrics_add(env->sys->m_starts, labels, 1);
    wisp_err_t e;
    if (wisp_http_server_adopt(env->sys->runtime_api, st->api_fd, env, &env->listener, &e) < 0) {
        wisp_error("env", "env %s: serving the runtime API: %s", env->id, e.msg);
        env->listener = NULL;
    }
    env->out = open_pipe(env, st->out_fd, 0);
    env->err = open_pipe(env, st->err_fd, 1);
    if (env->listener == NULL || env->state == WISP_ENV_RETIRING)
        wisp_sandbox_kill(env->sys->sandbox, env->id);
}

wisp_env_t *wisp_env_start(wisp_env_system_t *sys, const wisp_sandbox_spec_t *spec,
                           const char *revision, const char *code_sha256, void *owner)
{
    wisp_env_t *env = xcalloc(1, sizeof *env);
    env->sys = sys;
    snprintf(env->id, sizeof env->id, "%s", spec->id);
    snprintf(env->revision, sizeof env->revision, "%s", revision);
    snprintf(env->code_sha256, sizeof env->code_sha256, "%s", code_sha256);
    env->owner = owner;
    env->state = WISP_ENV_STARTING;
    env->cold = true;
    env->peak_fd = -1;
    env->memory_mb = spec->memory_mb;
    env->start_ns = wisp_mono_ns();
    wisp_step("spawn-request");
    env->timer = xcalloc(1, sizeof *env->timer);
    uv_timer_init(sys->loop, env->timer);
    env->timer->data = env;
    env->finish = xcalloc(1, sizeof *env->finish);
    uv_timer_init(sys->loop, env->finish);
    env->finish->data = env;
    env->next_all = sys->by_id;
    sys->by_id = env;
    sys->count++;
    wisp_err_t err;
    if (wisp_sandbox_spawn(sys->sandbox, spec, spawn_cb, env, &err) < 0) {
        /* Report asynchronously-shaped but synchronously: the owner expects `gone`. */
        sys->hooks->gone(sys->hooks_data, env, NULL, 0, false, 0, &err);
        env_free(env);
        return NULL;
    }
    return env;
}

static void add_header(wisp_buf_t *h, const char *name, const char *value)
{
    if (value && *value)
        wisp_buf_addf(h, "%s: %s\r\n", name, value);
}

void wisp_env_deliver(wisp_env_t *env, wisp_env_event_t *ev)
{
    wisp_http_req_t *req = steal_pointer(&env->next_req);
    env->event = ev;
    env->state = WISP_ENV_BUSY;
    env->quiet_bytes = 0;
    env->quiet_over = false;
    if (env->output_paused)
        set_reading(env, true);
    env->event_start_ns = wisp_mono_ns();
    wisp_buf_t h = WISP_BUF_INIT(0);
    char deadline[24];
    snprintf(deadline, sizeof deadline, "%lld", (long long)ev->deadline_ms);
    add_header(&h, "Lambda-Runtime-Aws-Request-Id", ev->request_id);
    add_header(&h, "Lambda-Runtime-Deadline-Ms", deadline);
    add_header(&h, "Lambda-Runtime-Invoked-Function-Arn", ev->function_arn);
    add_header(&h, "Lambda-Runtime-Trace-Id", ev->trace_id);
    add_header(&h, "Lambda-Runtime-Client-Context", ev->client_context);
    wisp_http_respond(req, 200, "application/json", h.data, ev->payload, ev->len);
    wisp_buf_free(&h);
}

void wisp_env_retire(wisp_env_t *env)
{
    if (env->state == WISP_ENV_RETIRING)
        return;
    env->state = WISP_ENV_RETIRING;
    uv_timer_stop(env->timer);
    if (env->next_req) {
        wisp_http_req_t *req = steal_pointer(&env->next_req);
        wisp_http_respond(req, 410, "application/json", NULL, "{}", 2);
    }
    if (env->spawned)
        wisp_sandbox_kill(env->sys->sandbox, env->id);
}

unsigned wisp_env_peak_mb(wisp_env_t *env)
{
    if (env->peak_fd < 0 && env->spawned)
        env->peak_fd = wisp_sandbox_mem_peak_open(env->sys->sandbox, env->id);
    uint64_t b = wisp_sandbox_mem_peak_read(env->peak_fd);
    return (unsigned)((b + (1u << 20) - 1) >> 20);
}

/* ---- system ---- */

int wisp_env_system_init(wisp_env_system_t *sys, uv_loop_t *loop, wisp_sandbox_t *sb,
                         const wisp_env_hooks_t *hooks, void *data, wisp_err_t *err)
{
    memset(sys, 0, sizeof *sys);
    sys->loop = loop;
    sys->sandbox = sb;
    sys->hooks = hooks;
    sys->hooks_data = data;
    sys->m_starts = wisp_metrics_counter(
        "wisp_env_starts_total",
        "Execution environments started, by how: exec (built for the request), zygote (forked "
        "from the python3 zygote), nodejs_stem or exec_stem (built ahead of need, then bound).");
    wisp_http_limits_t lim = {
        .max_header_bytes = 64 * 1024,
        /* Room above the 6 MiB limit so an oversized response reaches the
         * handler, which fails the invocation with ResponseSizeTooLarge. */
        .max_body_bytes = WISP_ENV_RESPONSE_MAX + 2u * 1024 * 1024,
        .idle_timeout_ms = 3600 * 1000,
        .request_timeout_ms = 3600 * 1000,
        .on_reject = runtime_reject_cb,
        .hold_pipelined = true, /* the C runtime pipelines POST /response and GET /next */
        /* A runtime needs one connection (a few while it reconnects); the
         * cap per env keeps one env from holding the daemon's descriptors
         * and the server's connections, which would lock other envs'
         * runtimes out. The server's own cap is then only a backstop. */
        .max_listener_connections = WISP_ENV_API_CONNECTIONS_MAX,
        .max_connections = 1000000,
    };
    sys->runtime_api = wisp_http_server_new(loop, "runtime", &lim, runtime_api_cb, sys);
    return wisp_sandbox_attach(sb, loop, sandbox_exit_cb, sys, err);
}

void wisp_env_system_close(wisp_env_system_t *sys)
{
    if (sys->runtime_api)
        wisp_http_server_shutdown(sys->runtime_api, 0, NULL, NULL);
    sys->runtime_api = NULL;
}
