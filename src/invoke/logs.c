/*
 * logs.c - function log lines and invocation records: buffered in memory and
 * written to the store in one transaction per flush (every 100 ms, or sooner
 * when many lines are waiting), so a busy function costs one commit per
 * batch, not one per line. Followers get each line as it is captured.
 */
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "invoke/internal.h"

#define FLUSH_MS 100
#define FLUSH_LINES 2000
#define PRUNE_EVERY_MS (3600 * 1000LL)
#define RECORD_RETENTION_MS (7 * 24 * 3600 * 1000LL)

static void flush_timer_cb(uv_timer_t *t)
{
    wisp_logs_flush(t->data);
}

void wisp__logs_init(wisp_invoker_t *inv)
{
    inv->flush_timer = xcalloc(1, sizeof *inv->flush_timer);
    uv_timer_init(inv->loop, inv->flush_timer);
    inv->flush_timer->data = inv;
    inv->records = json_array();
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

void wisp__logs_close(wisp_invoker_t *inv)
{
    wisp_logs_flush(inv);
    uv_close((uv_handle_t *)inv->flush_timer, free_handle_cb);
    inv->flush_timer = NULL;
    json_decref(inv->records);
    inv->records = NULL;
    free(inv->logbuf);
    inv->logbuf = NULL;
    while (inv->subs)
        wisp_logs_unsubscribe(inv->subs);
}

static void schedule_flush(wisp_invoker_t *inv)
{
    if (inv->nlog >= FLUSH_LINES) {
        wisp_logs_flush(inv);
        return;
    }
    if (!uv_is_active((uv_handle_t *)inv->flush_timer))
        uv_timer_start(inv->flush_timer, flush_timer_cb, FLUSH_MS, 0);
}

void wisp__logs_add(wisp_invoker_t *inv, const char *function, const char *request_id,
                    const char *stream, const char *line, size_t len)
{
    if (inv->nlog == inv->caplog) {
        inv->caplog = inv->caplog ? inv->caplog * 2 : 256;
        inv->logbuf = xrealloc(inv->logbuf, inv->caplog * sizeof *inv->logbuf);
    }
    logrec_t *r = &inv->logbuf[inv->nlog++];
    r->function = xstrdup(function);
    r->request_id = xstrdup(request_id);
    r->ts_ms = wisp_now_ms();
    r->stream = stream;
    r->line = xstrndup(line, len);
    for (wisp_logsub_t *s = inv->subs, *next; s; s = next) {
        next = s->next; /* a callback may unsubscribe itself */
        if (strcmp(s->function, function) != 0)
            continue;
        if (s->request_id && strcmp(s->request_id, request_id) != 0)
            continue;
        s->cb(s->data, 0, r->ts_ms, request_id, stream, r->line);
    }
    schedule_flush(inv);
}

void wisp__logs_record(wisp_invoker_t *inv, json_t *rec)
{
    json_array_append_new(inv->records, rec);
    schedule_flush(inv);
}

void wisp_logs_flush(wisp_invoker_t *inv)
{
    if (inv->nlog == 0 && json_array_size(inv->records) == 0)
        return;
    uv_timer_stop(inv->flush_timer);
    wisp_err_t err;
    bool tx = wisp_store_begin(inv->store, &err) == 0;
    if (!tx)
        wisp_error("logs", "begin: %s", err.msg);
    if (inv->nlog > 0) {
        wisp_log_rec_t *recs = xcalloc(inv->nlog, sizeof *recs);
        for (size_t i = 0; i < inv->nlog; i++) {
            recs[i].function = inv->logbuf[i].function;
            recs[i].request_id = inv->logbuf[i].request_id;
            recs[i].ts_ms = inv->logbuf[i].ts_ms;
            recs[i].stream = inv->logbuf[i].stream;
            recs[i].line = inv->logbuf[i].line;
        }
        if (wisp_store_log_append(inv->store, recs, inv->nlog, inv->cfg.log_cap_lines, &err) < 0)
            wisp_error("logs", "storing %zu log lines: %s", inv->nlog, err.msg);
        free(recs);
        for (size_t i = 0; i < inv->nlog; i++) {
            free(inv->logbuf[i].function);
            free(inv->logbuf[i].request_id);
            free(inv->logbuf[i].line);
        }
        inv->nlog = 0;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(inv->records, i, rec)
    {
        if (wisp_store_invocation_put(inv->store, rec, &err) < 0)
            wisp_error("logs", "storing invocation record: %s", err.msg);
    }
    json_array_clear(inv->records);
    /* Invocation records are kept for RECORD_RETENTION_MS; pruned hourly. */
    int64_t now = wisp_now_ms();
    if (now - inv->last_prune_ms > PRUNE_EVERY_MS) {
        inv->last_prune_ms = now;
        int64_t pruned = 0;
        if (wisp_store_invocation_prune(inv->store, now - RECORD_RETENTION_MS, &pruned, &err) < 0)
            wisp_error("logs", "pruning invocation records: %s", err.msg);
        else if (pruned > 0)
            wisp_info("logs", "pruned %lld invocation records older than 7 days",
                      (long long)pruned);
    }
    if (tx && wisp_store_commit(inv->store, &err) < 0)
        wisp_error("logs", "commit: %s", err.msg);
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
