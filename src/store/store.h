/*
 * store.h - durable state behind one interface: SQLite (WAL) on one machine;
 * a PostgreSQL backend can implement the same operations later (the
 * operations are a table of function pointers in store/internal.h).
 *
 * The store knows nothing of function semantics: it keeps function records as
 * JSON documents keyed by name, plus log lines and invocation records.
 * Schema migrations are versioned and run at open. Calls are synchronous and
 * made from the event-loop thread; they are short (indexed point reads and
 * small writes). Log lines are appended in batches by the caller.
 */
#ifndef WISP_STORE_STORE_H
#define WISP_STORE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct wisp_store wisp_store_t;

/* Open (creating if needed, mode 0600) the store at uri: a path to an SQLite
 * file, or "sqlite:PATH". Runs pending migrations, each in its own
 * transaction. Fails with WISP_EUNSUPPORTED for a "postgres://" uri (not built
 * yet) or a database written by a newer wisp (schema version too high). */
wisp_store_t *wisp_store_open(const char *uri, wisp_err_t *err);
void wisp_store_close(wisp_store_t *st);
/* A second, independent connection to the same store, for use by another
 * thread (each connection is used by one thread at a time). Fails with
 * WISP_EUNSUPPORTED when the store cannot be shared (an in-memory SQLite
 * database); callers then keep using st on its own thread. */
wisp_store_t *wisp_store_open_another(wisp_store_t *st, wisp_err_t *err);
/* Schema version after migrations (for tests and /healthz). */
int wisp_store_schema_version(wisp_store_t *st);

/* ---- functions: JSON documents keyed by name ---- */

/* Insert or replace. If expect_revision is not NULL the stored document's
 * "revision" must equal it (WISP_ECONFLICT otherwise; "" means must not exist). */
int wisp_store_fn_put(wisp_store_t *st, const char *name, json_t *doc, const char *expect_revision,
                      wisp_err_t *err) __attribute__((warn_unused_result));
/* *out is a new reference; WISP_ENOTFOUND if absent. */
int wisp_store_fn_get(wisp_store_t *st, const char *name, json_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Documents with name > after (NULL: from the start), ordered by name, at
 * most limit (<= 0: no limit). *out: new array. */
int wisp_store_fn_list(wisp_store_t *st, const char *after, int limit, json_t **out,
                       wisp_err_t *err) __attribute__((warn_unused_result));
int wisp_store_fn_delete(wisp_store_t *st, const char *name, wisp_err_t *err)
    __attribute__((warn_unused_result));
int64_t wisp_store_fn_count(wisp_store_t *st);
/* Number of functions whose document has "code_sha256" == sha (package GC).
 * -1 if the store cannot answer (callers must then keep the package). */
int64_t wisp_store_pkg_refs(wisp_store_t *st, const char *sha256);

/* ---- logs: lines a function printed, plus START/END/REPORT ---- */

typedef struct wisp_log_rec {
    const char *function;   /* function name */
    const char *request_id; /* invocation it belongs to, "" if none (init) */
    int64_t ts_ms;          /* epoch ms */
    const char *stream;     /* "stdout" | "stderr" | "platform" */
    const char *line;       /* without the newline */
} wisp_log_rec_t;

/* Append n lines in one transaction; then trims the function's lines beyond
 * its cap (oldest first) so the store stays bounded. */
int wisp_store_log_append(wisp_store_t *st, const wisp_log_rec_t *recs, size_t n,
                          int64_t cap_per_function, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Lines of a function with id > after_id and ts >= since_ms (0: all), of one
 * request_id if not NULL, oldest first, at most limit (<= 0: no limit).
 * *out: new array of
 * {"id","ts","request_id","stream","line"} objects. */
int wisp_store_log_query(wisp_store_t *st, const char *function, int64_t after_id, int64_t since_ms,
                         const char *request_id, int limit, json_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
int wisp_store_log_delete_function(wisp_store_t *st, const char *function, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* ---- invocation records ---- */

/* Insert or replace a record: a JSON object with at least "id" and
 * "function"; other fields (revision, trigger, start_ms, queue_ms, init_ms,
 * duration_ms, billed_ms, max_memory_mb, cold, outcome, error_type) are kept
 * as given. */
int wisp_store_invocation_put(wisp_store_t *st, json_t *rec, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* The same for n records already encoded, in one operation (all or none):
 * doc is the record's JSON object text, which the caller vouches for (the
 * log writer's encoder; wisp_store_invocation_put checks a json_t instead),
 * id and function are its "id" and "function", start_ms its "start_ms". */
typedef struct wisp_inv_row {
    const char *id;
    const char *function;
    int64_t start_ms;
    const char *doc;
} wisp_inv_row_t;
int wisp_store_invocation_put_rows(wisp_store_t *st, const wisp_inv_row_t *rows, size_t n,
                                   wisp_err_t *err) __attribute__((warn_unused_result));
int wisp_store_invocation_get(wisp_store_t *st, const char *id, json_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Most recent first (by "start_ms"), of one function (or all if NULL), at
 * most limit (<= 0: no limit). */
int wisp_store_invocation_list(wisp_store_t *st, const char *function, int limit, json_t **out,
                               wisp_err_t *err) __attribute__((warn_unused_result));
/* Delete the records whose "start_ms" is before before_ms (retention); *n
 * (if not NULL) receives how many were deleted. */
int wisp_store_invocation_prune(wisp_store_t *st, int64_t before_ms, int64_t *n, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* Run several writes in one transaction (batching for throughput). Calls
 * nest: only the outermost commit writes. Every other store call works inside
 * such a transaction. */
int wisp_store_begin(wisp_store_t *st, wisp_err_t *err) __attribute__((warn_unused_result));
int wisp_store_commit(wisp_store_t *st, wisp_err_t *err) __attribute__((warn_unused_result));
/* Abandon the whole open transaction, however deeply begun (a later commit of
 * an inner level fails with WISP_EINVALID). */
int wisp_store_rollback(wisp_store_t *st, wisp_err_t *err) __attribute__((warn_unused_result));

#endif
