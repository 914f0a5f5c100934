/*
 * internal.h - the store's backend interface: each backend (SQLite now,
 * PostgreSQL later) fills a table of operations, and store.c dispatches the
 * public wisp_store_* calls to it after checking the arguments that every
 * backend would otherwise check again. Nothing outside src/store includes this.
 *
 * A backend's handle embeds struct wisp_store as its first member so that
 * store.c can reach the operations and the backend can cast back.
 */
#ifndef WISP_STORE_INTERNAL_H
#define WISP_STORE_INTERNAL_H

#include "store/store.h"

/*
 * The operations of one backend. Arguments are already checked by store.c:
 * names and ids are non-NULL strings, documents are JSON objects, records
 * have string "id" and "function". Each operation has the meaning of the
 * public call of the same name in store.h.
 */
struct wisp_store_ops {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(wisp_store_t *st);
    wisp_store_t *(*open_another)(wisp_store_t *st, wisp_err_t *err);
    int (*schema_version)(wisp_store_t *st);

    int (*fn_put)(wisp_store_t *st, const char *name, json_t *doc, const char *expect_revision,
                  wisp_err_t *err);
    int (*fn_get)(wisp_store_t *st, const char *name, json_t **out, wisp_err_t *err);
    int (*fn_list)(wisp_store_t *st, const char *after, int limit, json_t **out, wisp_err_t *err);
    int (*fn_delete)(wisp_store_t *st, const char *name, wisp_err_t *err);
    int64_t (*fn_count)(wisp_store_t *st);
    int64_t (*pkg_refs)(wisp_store_t *st, const char *sha256);

    int (*log_append)(wisp_store_t *st, const wisp_log_rec_t *recs, size_t n, int64_t cap,
                      wisp_err_t *err);
    int (*log_query)(wisp_store_t *st, const char *function, int64_t after_id, int64_t since_ms,
                     const char *request_id, int limit, json_t **out, wisp_err_t *err);
    int (*log_delete_function)(wisp_store_t *st, const char *function, wisp_err_t *err);

    int (*invocation_put)(wisp_store_t *st, json_t *rec, wisp_err_t *err);
    int (*invocation_put_rows)(wisp_store_t *st, const wisp_inv_row_t *rows, size_t n,
                               wisp_err_t *err);
    int (*invocation_get)(wisp_store_t *st, const char *id, json_t **out, wisp_err_t *err);
    int (*invocation_list)(wisp_store_t *st, const char *function, int limit, json_t **out,
                           wisp_err_t *err);
    int (*invocation_prune)(wisp_store_t *st, int64_t before_ms, int64_t *n, wisp_err_t *err);

    int (*begin)(wisp_store_t *st, wisp_err_t *err);
    int (*commit)(wisp_store_t *st, wisp_err_t *err);
    int (*rollback)(wisp_store_t *st, wisp_err_t *err);
};

/* The part of every backend handle that store.c sees. */
struct wisp_store {
    const struct wisp_store_ops *ops; /* never NULL */
};

/* Open an SQLite database file (sqlite.c); path ":memory:" works for tests. */
wisp_store_t *wisp__sqlite_open(const char *path, wisp_err_t *err);

#endif
