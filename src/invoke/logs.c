/*
 * logs.c - function log lines and invocation records: buffered in memory on
 * the loop thread and handed, every 100 ms (or sooner when many lines are
 * waiting), as one batch to a writer thread that stores each batch in one
 * transaction on its own store connection. The loop thread never waits for
 * SQLite on the invocation path. Followers get each line as it is captured.
 *
 * Durability: a line or record is in memory until its batch is committed,
 * i.e. up to FLUSH_MS plus the writer's commit time after it was captured; a
 * crash of the daemon loses at most that. wisp_logs_flush hands over what is
 * buffered and waits until the writer has committed everything handed over
 * (API queries call it so that they see all lines; so does shutdown, before
 * the writer is stopped), so a clean stop loses nothing.
 *
 * Memory: what waits to be stored is bounded by cfg.log_buffer_bytes (64
 * MiB): each line counts its text plus WISP_LOG_LINE_OVERHEAD for its
 * bookkeeping, so that a flood of short lines is bounded too. When the store
 * falls that far behind (a slow disk, output faster than SQLite takes it),
 * functions' new lines are dropped, counted in
 * wisp_logs_dropped_total{function,what} and warned about (at most every
 * 10 s); an invocation whose own lines were dropped says so in a platform
 * line before its END. Platform lines (START, END, REPORT, notices) and
 * invocation records may use an eighth more, so that a flood of output does
 * not take them with it; past that they are dropped and counted too.
 *
 * Threads: everything here runs on the loop thread except writer_main and
 * write_batch, which touch only batches already handed over and the
 * writer's own store connection. When the store cannot give a second
 * connection (an in-memory database), batches are written on the loop
 * thread as they are handed over.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "invoke/internal.h"

#define FLUSH_MS 100
#define FLUSH_LINES 2000
#define PRUNE_EVERY_MS (3600 * 1000LL)
#define RECORD_RETENTION_MS (7 * 24 * 3600 * 1000LL)
#define LOG_BUFFER_DEFAULT (64u * 1024 * 1024)
#define BEHIND_WARN_MS 10000

/* What one flush hands to the writer: it owns all of it. */
struct logbatch {
    struct logbatch *next;
    logrec_t *lines;
    size_t nlines;
    invrec_t *recs; /* invocation records */
    size_t nrecs;
    size_t held; /* what it counts against cfg.log_buffer_bytes */
};

/*
 * The writer thread. mu guards the queue, the counters and stop; the store
 * connection, cap and last_prune_ms belong to the writer thread (to the loop
 * thread in synchronous mode).
 */
struct wisp__logwriter {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the writer waits for batches or stop */
    pthread_cond_t done_cv; /* flushers wait for done == queued */
    struct logbatch *head, *tail;
    uint64_t queued; /* batches handed over so far */
    uint64_t done;   /* batches committed (or given up on) so far */
    bool stop;
    wisp_store_t *store;   /* the writer's own connection */
    int64_t cap;           /* log lines kept per function */
    int64_t last_prune_ms; /* when invocation records were last pruned */
    _Atomic size_t *held;  /* the invoker's log_held: released per batch stored */
};

/* Append a string literal. */
#define ADD_LIT(b, lit) wisp_buf_add((b), (lit), sizeof(lit) - 1)

/* Append s as a JSON string. The daemon's own strings (UUIDs, function
 * names, fixed words) are ASCII and take the short path; text from a runtime
 * (an error type) that is not valid UTF-8 is kept with those bytes as '?', as
 * log queries do. */
static void json_str(wisp_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0' && *p < 0x80)
        p++;
    if (*p != '\0') { /* not ASCII: jansson checks the UTF-8 and escapes */
        json_t *js = json_string(s);
        if (js == NULL) {
            cleanup_free char *fixed = xstrdup(s);
            for (char *c = fixed; *c != '\0'; c++)
                if ((unsigned char)*c >= 0x80)
                    *c = '?';
            js = json_string(fixed);
        }
        cleanup_free char *text = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        wisp_buf_addf(b, "%s", text ? text : "\"\"");
        return;
    }
    ADD_LIT(b, "\"");
    for (p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            wisp_buf_addf(b, "\\%c", *p);
        else if (*p < 0x20)
            wisp_buf_addf(b, "\\u%04x", *p);
        else
            wisp_buf_add(b, p, 1);
    }
    ADD_LIT(b, "\"");
}

/* A duration in ms as a JSON number, to the microsecond. */
static void json_ms(wisp_buf_t *b, const char *key, double ms)
{
    wisp_buf_addf(b, ",\"%s\":%.3f", key, isfinite(ms) ? ms : 0.0);
}

void wisp__invrec_json(const invrec_t *r, wisp_buf_t *b)
{
    ADD_LIT(b, "{\"id\":");
    json_str(b, r->id);
    ADD_LIT(b, ",\"function\":");
    json_str(b, r->function);
    ADD_LIT(b, ",\"revision\":");
    json_str(b, r->revision);
    ADD_LIT(b, ",\"trigger\":");
    json_str(b, r->trigger);
    wisp_buf_addf(b, ",\"start_ms\":%lld", (long long)r->start_ms);
    json_ms(b, "queue_ms", r->queue_ms);
    json_ms(b, "init_ms", r->init_ms);
    json_ms(b, "duration_ms", r->duration_ms);
    wisp_buf_addf(b, ",\"billed_ms\":%lld,\"max_memory_mb\":%u,\"cold\":%s,\"outcome\":",
                  (long long)r->billed_ms, r->max_memory_mb, r->cold ? "true" : "false");
    json_str(b, r->outcome);
    ADD_LIT(b, ",\"error_type\":");
    if (r->error_type != NULL)
        json_str(b, r->error_type);
    else
        ADD_LIT(b, "null");
    ADD_LIT(b, "}");
}

int wisp__invrecs_store(wisp_store_t *store, const invrec_t *recs, size_t n, wisp_err_t *err)
{
    if (n == 0)
        return 0;
    /* All documents in one buffer (NUL-separated); pointers taken once it
     * stops growing. */
    wisp_buf_t docs = WISP_BUF_INIT(0);
    size_t *at = xmalloc(n * sizeof *at);
    for (size_t i = 0; i < n; i++) {
        at[i] = docs.len;
        wisp__invrec_json(&recs[i], &docs);
        wisp_buf_add(&docs, "", 1);
    }
    wisp_inv_row_t *rows = xmalloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        rows[i] =
            (wisp_inv_row_t){recs[i].id, recs[i].function, recs[i].start_ms, docs.data + at[i]};
    int rc = wisp_store_invocation_put_rows(store, rows, n, err);
    free(rows);
    free(at);
    wisp_buf_free(&docs);
    return rc;
}

/* Store one batch in one transaction, then free it. Errors are logged: the
 * lines are then lost, as they would be if the disk failed. */
static void write_batch(wisp_store_t *store, struct logbatch *b, int64_t cap,
                        int64_t *last_prune_ms, _Atomic size_t *held)
{
    wisp_err_t err;
    bool tx = wisp_store_begin(store, &err) == 0;
    if (!tx)
        wisp_error("logs", "begin: %s", err.msg);
    if (b->nlines > 0) {
        wisp_log_rec_t *recs = xcalloc(b->nlines, sizeof *recs);
        for (size_t i = 0; i < b->nlines; i++) {
            recs[i].function = b->lines[i].function;
            recs[i].request_id = b->lines[i].request_id;
            recs[i].ts_ms = b->lines[i].ts_ms;
            recs[i].stream = b->lines[i].stream;
            recs[i].line = b->lines[i].line;
        }
        if (wisp_store_log_append(store, recs, b->nlines, cap, &err) < 0)
            wisp_error("logs", "storing %zu log lines: %s", b->nlines, err.msg);
        free(recs);
    }
    if (b->nrecs > 0 && wisp__invrecs_store(store, b->recs, b->nrecs, &err) < 0)
        wisp_error("logs", "storing %zu invocation records: %s", b->nrecs, err.msg);
    /* Invocation records are kept for RECORD_RETENTION_MS; pruned hourly. */
    int64_t now = wisp_now_ms();
    if (now - *last_prune_ms > PRUNE_EVERY_MS) {
        *last_prune_ms = now;
        int64_t pruned = 0;
        if (wisp_store_invocation_prune(store, now - RECORD_RETENTION_MS, &pruned, &err) < 0)
            wisp_error("logs", "pruning invocation records: %s", err.msg);
        else if (pruned > 0)
            wisp_info("logs", "pruned %lld invocation records older than 7 days",
                      (long long)pruned);
    }
    if (tx && wisp_store_commit(store, &err) < 0)
        wisp_error("logs", "commit: %s", err.msg);
    atomic_fetch_sub_explicit(held, b->held, memory_order_relaxed);
    for (size_t k = 0; k < b->nlines; k++) {
        free(b->lines[k].line); /* with its function and request id */
    }
    free(b->lines);
    for (size_t k = 0; k < b->nrecs; k++) {
        free(b->recs[k].function);
        free(b->recs[k].error_type);
    }
    free(b->recs);
    free(b);
}

static void *writer_main(void *arg)
{
    struct wisp__logwriter *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->wake, &w->mu);
        if (w->head == NULL)
            break; /* stop, and nothing left */
        struct logbatch *b = w->head;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        uint64_t n = 0;
        while (b != NULL) {
            struct logbatch *next = b->next;
            write_batch(w->store, b, w->cap, &w->last_prune_ms, w->held);
            b = next;
            n++;
        }
        pthread_mutex_lock(&w->mu);
        w->done += n;
        pthread_cond_broadcast(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void handoff(wisp_invoker_t *inv);

static void flush_timer_cb(uv_timer_t *t)
{
    handoff(t->data);
}

void wisp__logs_init(wisp_invoker_t *inv)
{
    inv->flush_timer = xcalloc(1, sizeof *inv->flush_timer);
    uv_timer_init(inv->loop, inv->flush_timer);
    inv->flush_timer->data = inv;
    if (inv->cfg.log_buffer_bytes == 0)
        inv->cfg.log_buffer_bytes = LOG_BUFFER_DEFAULT;
    atomic_init(&inv->log_held, 0);
    inv->m_log_dropped = wisp_metrics_counter(
        "wisp_logs_dropped_total", "Log lines and invocation records dropped because the log store "
                                   "was behind (what=\"lines\"|\"records\").");
    wisp_err_t err;
    wisp_store_t *own = wisp_store_open_another(inv->store, &err);
    if (own == NULL) {
        if (err.code != WISP_EUNSUPPORTED)
            wisp_warn("logs", "no second store connection (%s): writing logs on the loop thread",
                      err.msg);
        return;
    }
    struct wisp__logwriter *w = xcalloc(1, sizeof *w);
    w->store = own;
    w->cap = inv->cfg.log_cap_lines;
    w->held = &inv->log_held;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc != 0) {
        wisp_warn("logs", "no log writer thread (%s): writing logs on the loop thread",
                  strerror(rc));
        wisp_store_close(own);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done_cv);
        free(w);
        return;
    }
    inv->writer = w;
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

void wisp__logs_close(wisp_invoker_t *inv)
{
    wisp_logs_flush(inv);
    struct wisp__logwriter *w = inv->writer;
    if (w != NULL) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        wisp_store_close(w->store);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done_cv);
        free(w);
        inv->writer = NULL;
    }
    uv_close((uv_handle_t *)inv->flush_timer, free_handle_cb);
    inv->flush_timer = NULL;
    free(inv->recbuf);
    inv->recbuf = NULL;
    free(inv->logbuf);
    inv->logbuf = NULL;
    while (inv->subs)
        wisp_logs_unsubscribe(inv->subs);
}

static void handoff(wisp_invoker_t *inv);

static void schedule_flush(wisp_invoker_t *inv)
{
    if (inv->nlog >= FLUSH_LINES) {
        handoff(inv);
        return;
    }
    if (!uv_is_active((uv_handle_t *)inv->flush_timer))
        uv_timer_start(inv->flush_timer, flush_timer_cb, FLUSH_MS, 0);
}

/* Count bytes against the budget; false (and counted as dropped) if they do
 * not fit. Only the loop thread adds, so the check cannot race with another
 * add; the writer only releases. */
static bool hold(wisp_invoker_t *inv, const char *function, const char *what, size_t bytes,
                 bool platform)
{
    size_t held = atomic_load_explicit(&inv->log_held, memory_order_relaxed);
    size_t limit = inv->cfg.log_buffer_bytes + (platform ? inv->cfg.log_buffer_bytes / 8 : 0);
    if (held + bytes <= limit) {
        atomic_fetch_add_explicit(&inv->log_held, bytes, memory_order_relaxed);
        inv->held_unflushed += bytes;
        return true;
    }
    char labels[200], fname[140];
    wisp_metrics_label_escape(function, fname, sizeof fname);
    snprintf(labels, sizeof labels, "function=\"%s\",what=\"%s\"", fname, what);
    wisp_metrics_add(inv->m_log_dropped, labels, 1);
    int64_t now = wisp_now_ms();
    if (now - inv->behind_warned_ms >= BEHIND_WARN_MS) {
        inv->behind_warned_ms = now;
        wisp_warn("logs",
                  "the log store is behind (%zu bytes waiting, at most %zu): dropping log %s "
                  "(wisp_logs_dropped_total counts them)",
                  held, inv->cfg.log_buffer_bytes, what);
    }
    return false;
}

bool wisp__logs_add(wisp_invoker_t *inv, const char *function, const char *request_id,
                    const char *stream, const char *line, size_t len)
{
    size_t flen = strlen(function), rlen = strlen(request_id);
    if (!hold(inv, function, "lines", len + flen + rlen + 3 + WISP_LOG_LINE_OVERHEAD,
              strcmp(stream, "platform") == 0))
        return false;
    if (inv->nlog == inv->caplog) {
        inv->caplog = inv->caplog ? inv->caplog * 2 : 256;
        inv->logbuf = xrealloc(inv->logbuf, inv->caplog * sizeof *inv->logbuf);
    }
    logrec_t *r = &inv->logbuf[inv->nlog++];
    /* One allocation per line: the text, then the function and request id
     * (on the warm path this saves two of every line's three mallocs and
     * frees, the loop's and the writer's). */
    char *block = xmalloc(len + 1 + flen + 1 + rlen + 1);
    memcpy(block, line, len);
    block[len] = '\0';
    memcpy(block + len + 1, function, flen + 1);
    memcpy(block + len + 1 + flen + 1, request_id, rlen + 1);
    r->line = block;
    r->function = block + len + 1;
    r->request_id = block + len + 1 + flen + 1;
    r->ts_ms = wisp_now_ms();
    r->stream = stream;
    for (wisp_logsub_t *s = inv->subs, *next; s; s = next) {
        next = s->next; /* a callback may unsubscribe itself */
        if (strcmp(s->function, function) != 0)
            continue;
        if (s->request_id && strcmp(s->request_id, request_id) != 0)
            continue;
        s->cb(s->data, 0, r->ts_ms, request_id, stream, r->line);
    }
    schedule_flush(inv);
    return true;
}

bool wisp__logs_record(wisp_invoker_t *inv, const invrec_t *rec)
{
    size_t bytes = sizeof *rec + strlen(rec->function) + 1 +
                   (rec->error_type ? strlen(rec->error_type) + 1 : 0) + WISP_LOG_LINE_OVERHEAD;
    if (!hold(inv, rec->function, "records", bytes, true)) {
        free(rec->function);
        free(rec->error_type);
        return false;
    }
    if (inv->nrec == inv->caprec) {
        inv->caprec = inv->caprec ? inv->caprec * 2 : 256;
        inv->recbuf = xrealloc(inv->recbuf, inv->caprec * sizeof *inv->recbuf);
    }
    inv->recbuf[inv->nrec++] = *rec;
    schedule_flush(inv);
    return true;
}

/* Hand what is buffered to the writer as one batch (or, without a writer
 * thread, store it now). */
static void handoff(wisp_invoker_t *inv)
{
    if (inv->nlog == 0 && inv->nrec == 0)
        return;
    uv_timer_stop(inv->flush_timer);
    struct logbatch *b = xcalloc(1, sizeof *b);
    b->lines = steal_pointer(&inv->logbuf);
    b->nlines = inv->nlog;
    b->recs = steal_pointer(&inv->recbuf);
    b->nrecs = inv->nrec;
    b->held = inv->held_unflushed;
    inv->held_unflushed = 0;
    inv->nlog = inv->caplog = 0;
    inv->nrec = inv->caprec = 0;
    struct wisp__logwriter *w = inv->writer;
    if (w == NULL) {
        write_batch(inv->store, b, inv->cfg.log_cap_lines, &inv->last_prune_ms, &inv->log_held);
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (w->tail != NULL)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
    w->queued++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

void wisp_logs_flush(wisp_invoker_t *inv)
{
    handoff(inv);
    struct wisp__logwriter *w = inv->writer;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->done < w->queued)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

wisp_logsub_t *wisp_logs_subscribe(wisp_invoker_t *inv, const char *function,
                                   const char *request_id, wisp_logsub_cb cb, void *data)
{
    wisp_logsub_t *s = xcalloc(1, sizeof *s);
    s->inv = inv;
    s->function = xstrdup(function);
    s->request_id = request_id ? xstrdup(request_id) : NULL;
    s->cb = cb;
    s->data = data;
    s->next = inv->subs;
    inv->subs = s;
    return s;
}

void wisp_logs_unsubscribe(wisp_logsub_t *sub)
{
    if (sub == NULL)
        return;
    for (wisp_logsub_t **pp = &sub->inv->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    }
    free(sub->function);
    free(sub->request_id);
    free(sub);
}
