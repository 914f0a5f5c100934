/*
 * store.c - the public store interface: picks a backend from the uri, checks
 * arguments once for every backend, and dispatches to the backend's table of
 * operations (internal.h).
 */
#include <string.h>

#include "core/util.h"
#include "store/internal.h"

wisp_store_t *wisp_store_open(const char *uri, wisp_err_t *err)
{
    if (uri == NULL || uri[0] == '\0') {
        wisp_err_set(err, WISP_EINVALID, "store: empty location");
        return NULL;
    }
    if (strncmp(uri, "postgres://", 11) == 0 || strncmp(uri, "postgresql://", 13) == 0) {
        wisp_err_set(err, WISP_EUNSUPPORTED, "store: the PostgreSQL backend is not available yet");
        return NULL;
    }
    const char *path = uri;
    if (strncmp(uri, "sqlite:", 7) == 0)
        path = uri + 7;
    if (path[0] == '\0') {
        wisp_err_set(err, WISP_EINVALID, "store: empty SQLite path in %s", uri);
        return NULL;
    }
    return wisp__sqlite_open(path, err);
}

void wisp_store_close(wisp_store_t *st)
{
    if (st != NULL)
        st->ops->close(st);
}

wisp_store_t *wisp_store_open_another(wisp_store_t *st, wisp_err_t *err)
{
    return st->ops->open_another(st, err);
}

int wisp_store_schema_version(wisp_store_t *st)
{
    return st->ops->schema_version(st);
}

static int check_name(const char *what, const char *s, wisp_err_t *err)
{
    if (s == NULL || s[0] == '\0')
        return wisp_err_set(err, WISP_EINVALID, "store: missing %s", what);
    return 0;
}

int wisp_store_fn_put(wisp_store_t *st, const char *name, json_t *doc, const char *expect_revision,
                      wisp_err_t *err)
{
    if (check_name("function name", name, err) < 0)
        return -1;
    if (!json_is_object(doc))
        return wisp_err_set(err, WISP_EINVALID, "store: function %s: document is not an object",
                            name);
    return st->ops->fn_put(st, name, doc, expect_revision, err);
}

int wisp_store_fn_get(wisp_store_t *st, const char *name, json_t **out, wisp_err_t *err)
{
    *out = NULL;
    if (check_name("function name", name, err) < 0)
        return -1;
    return st->ops->fn_get(st, name, out, err);
}

int wisp_store_fn_list(wisp_store_t *st, const char *after, int limit, json_t **out,
                       wisp_err_t *err)
{
    *out = NULL;
    return st->ops->fn_list(st, after ? after : "", limit, out, err);
}

int wisp_store_fn_delete(wisp_store_t *st, const char *name, wisp_err_t *err)
{
    if (check_name("function name", name, err) < 0)
        return -1;
    return st->ops->fn_delete(st, name, err);
}

int64_t wisp_store_fn_count(wisp_store_t *st)
{
    return st->ops->fn_count(st);
}

int64_t wisp_store_pkg_refs(wisp_store_t *st, const char *sha256)
{
    if (sha256 == NULL || sha256[0] == '\0')
        return 0;
    return st->ops->pkg_refs(st, sha256);
}

int wisp_store_log_append(wisp_store_t *st, const wisp_log_rec_t *recs, size_t n,
                          int64_t cap_per_function, wisp_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (check_name("log function", recs[i].function, err) < 0)
            return -1;
        if (recs[i].line == NULL)
            return wisp_err_set(err, WISP_EINVALID, "store: log line %zu has no text", i);
    }
    if (n == 0)
        return 0;
    return st->ops->log_append(st, recs, n, cap_per_function, err);
}

int wisp_store_log_query(wisp_store_t *st, const char *function, int64_t after_id, int64_t since_ms,
                         const char *request_id, int limit, json_t **out, wisp_err_t *err)
{
    *out = NULL;
    if (check_name("log function", function, err) < 0)
        return -1;
    return st->ops->log_query(st, function, after_id, since_ms, request_id, limit, out, err);
}

int wisp_store_log_delete_function(wisp_store_t *st, const char *function, wisp_err_t *err)
{
    if (check_name("log function", function, err) < 0)
        return -1;
    return st->ops->log_delete_function(st, function, err);
}

int wisp_store_invocation_put(wisp_store_t *st, json_t *rec, wisp_err_t *err)
{
    if (!json_is_object(rec))
        return wisp_err_set(err, WISP_EINVALID, "store: invocation record is not an object");
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *fn = json_string_value(json_object_get(rec, "function"));
    if (check_name("invocation id", id, err) < 0 || check_name("invocation function", fn, err) < 0)
        return -1;
    return st->ops->invocation_put(st, rec, err);
}

int wisp_store_invocation_put_rows(wisp_store_t *st, const wisp_inv_row_t *rows, size_t n,
                                   wisp_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (check_name("invocation id", rows[i].id, err) < 0 ||
            check_name("invocation function", rows[i].function, err) < 0)
            return -1;
        if (rows[i].doc == NULL || rows[i].doc[0] != '{')
            return wisp_err_set(err, WISP_EINVALID, "store: invocation record %s is not an object",
                                rows[i].id);
    }
    if (n == 0)
        return 0;
    return st->ops->invocation_put_rows(st, rows, n, err);
}

int wisp_store_invocation_get(wisp_store_t *st, const char *id, json_t **out, wisp_err_t *err)
{
    *out = NULL;
    if (check_name("invocation id", id, err) < 0)
        return -1;
    return st->ops->invocation_get(st, id, out, err);
}

int wisp_store_invocation_list(wisp_store_t *st, const char *function, int limit, json_t **out,
                               wisp_err_t *err)
{
    *out = NULL;
    return st->ops->invocation_list(st, function, limit, out, err);
}

int wisp_store_invocation_prune(wisp_store_t *st, int64_t before_ms, int64_t *n, wisp_err_t *err)
{
    if (n != NULL)
        *n = 0;
    return st->ops->invocation_prune(st, before_ms, n, err);
}

int wisp_store_begin(wisp_store_t *st, wisp_err_t *err)
{
    return st->ops->begin(st, err);
}

int wisp_store_commit(wisp_store_t *st, wisp_err_t *err)
{
    return st->ops->commit(st, err);
}

int wisp_store_rollback(wisp_store_t *st, wisp_err_t *err)
{
    return st->ops->rollback(st, err);
}
