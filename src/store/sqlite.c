/*
 * sqlite.c - the embedded store backend: one SQLite database file in WAL
 * mode. Each connection (struct sq_store) is used by one thread: the event
 * loop's, or the log writer's (wisp_store_open_another). WAL lets the loop
 * read while the writer commits; writes take the lock with BEGIN IMMEDIATE
 * and wait up to BUSY_TIMEOUT_MS for each other.
 *
 * Durability: synchronous=FULL. In WAL mode NORMAL would skip the fsync of
 * each commit and could lose the last transactions on a power cut, and wisp
 * acknowledges work (an accepted async invocation, a deploy) only after its
 * commit, so the acknowledgement must mean "on disk". The cost is one fsync per
 * commit; callers that write a lot (logs, invocation records) batch their
 * writes into one transaction (wisp_store_begin/commit), which SQLite then
 * commits at well over 100,000 rows per second on this class of machine.
 *
 * Every statement is prepared once (persistent) and reused; schema changes are
 * versioned migrations applied at open, each in its own transaction, with the
 * version kept in PRAGMA user_version.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "store/internal.h"

/* How long a statement waits for another connection's lock before failing
 * with WISP_EUNAVAILABLE (another wisp process, or the CLI, on the same file). */
#define BUSY_TIMEOUT_MS 5000

/*
 * Migrations, in order; migration i (0-based) brings the schema from version
 * i to version i + 1. Append only: never edit a migration that has shipped.
 *
 * log_counts keeps the number of log lines per function so that trimming a
 * function's log to its cap never counts rows: it deletes exactly the excess,
 * oldest first, through the (function, id) index.
 */
static const char *const migrations[] = {
    "CREATE TABLE functions ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  revision TEXT NOT NULL DEFAULT '',"
    "  code_sha256 TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL DEFAULT 0,"
    "  modified_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX functions_code ON functions (code_sha256);"
    "CREATE TABLE logs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  function TEXT NOT NULL,"
    "  request_id TEXT NOT NULL DEFAULT '',"
    "  ts INTEGER NOT NULL,"
    "  stream TEXT NOT NULL,"
    "  line TEXT NOT NULL"
    ");"
    "CREATE INDEX logs_function_id ON logs (function, id);"
    "CREATE INDEX logs_function_request ON logs (function, request_id);"
    "CREATE TABLE log_counts ("
    "  function TEXT PRIMARY KEY NOT NULL,"
    "  n INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE invocations ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  function TEXT NOT NULL,"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  doc TEXT NOT NULL"
    ");"
    "CREATE INDEX invocations_function_start ON invocations (function, start_ms);"
    "CREATE INDEX invocations_start ON invocations (start_ms);",
};

/*
 * Batches of log lines are inserted MANY_ROWS rows per statement (the rest
 * one by one): each statement run has a fixed cost (reset, bindings, the
 * AUTOINCREMENT bookkeeping) that a 16-row statement pays once; this took
 * 40% off the log writer's cost per line. (Invocation records are upserts,
 * which SQLite runs slower per row in a multi-row statement.)
 */
#define MANY_ROWS 16
#define ROWS_4(r) r "," r "," r "," r
#define ROWS_16(r) ROWS_4(r) "," ROWS_4(r) "," ROWS_4(r) "," ROWS_4(r)

/* The cached statements; SQL text in stmt_sql, same order. */
enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_FN_UPSERT,
    S_FN_INSERT_NEW,
    S_FN_UPDATE_IF,
    S_FN_GET,
    S_FN_LIST,
    S_FN_DELETE,
    S_FN_COUNT,
    S_PKG_REFS,
    S_LOG_INSERT,
    S_LOG_INSERT_MANY,
    S_LOG_COUNT_ADD,
    S_LOG_TRIM,
    S_LOG_COUNT_SUB,
    S_LOG_QUERY,
    S_LOG_QUERY_REQ,
    S_LOG_DELETE,
    S_LOG_COUNT_DELETE,
    S_INV_PUT,
    S_INV_GET,
    S_INV_LIST,
    S_INV_LIST_FN,
    S_INV_PRUNE,
    S_COUNT_
};

static const char *const stmt_sql[S_COUNT_] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT wisp_op",
    [S_RELEASE] = "RELEASE wisp_op",
    [S_ROLLBACK_TO] = "ROLLBACK TO wisp_op",
    [S_FN_UPSERT] = "INSERT INTO functions (name, doc, revision, code_sha256, created_ms, "
                    "modified_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO UPDATE "
                    "SET doc = excluded.doc, revision = excluded.revision, code_sha256 = "
                    "excluded.code_sha256, created_ms = excluded.created_ms, modified_ms = "
                    "excluded.modified_ms",
    [S_FN_INSERT_NEW] = "INSERT INTO functions (name, doc, revision, code_sha256, created_ms, "
                        "modified_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO "
                        "NOTHING",
    [S_FN_UPDATE_IF] = "UPDATE functions SET doc = ?2, revision = ?3, code_sha256 = ?4, "
                       "created_ms = ?5, modified_ms = ?6 WHERE name = ?1 AND revision = ?7",
    [S_FN_GET] = "SELECT doc FROM functions WHERE name = ?1",
    [S_FN_LIST] = "SELECT doc FROM functions WHERE name > ?1 ORDER BY name LIMIT ?2",
    [S_FN_DELETE] = "DELETE FROM functions WHERE name = ?1",
    [S_FN_COUNT] = "SELECT count(*) FROM functions",
    [S_PKG_REFS] = "SELECT count(*) FROM functions WHERE code_sha256 = ?1",
    [S_LOG_INSERT] = "INSERT INTO logs (function, request_id, ts, stream, line) "
                     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_LOG_INSERT_MANY] = "INSERT INTO logs (function, request_id, ts, stream, line) "
                          "VALUES " ROWS_16("(?,?,?,?,?)"),
    [S_LOG_COUNT_ADD] = "INSERT INTO log_counts (function, n) VALUES (?1, ?2) ON CONFLICT "
                        "(function) DO UPDATE SET n = n + excluded.n RETURNING n",
    [S_LOG_TRIM] = "DELETE FROM logs WHERE function = ?1 AND id <= (SELECT id FROM logs WHERE "
                   "function = ?1 ORDER BY id LIMIT 1 OFFSET ?2)",
    [S_LOG_COUNT_SUB] = "UPDATE log_counts SET n = n - ?2 WHERE function = ?1",
    [S_LOG_QUERY] = "SELECT id, ts, request_id, stream, line FROM logs WHERE function = ?1 "
                    "AND id > ?2 AND ts >= ?3 ORDER BY id LIMIT ?4",
    [S_LOG_QUERY_REQ] = "SELECT id, ts, request_id, stream, line FROM logs WHERE function = ?1 "
                        "AND request_id = ?5 AND id > ?2 AND ts >= ?3 ORDER BY id LIMIT ?4",
    [S_LOG_DELETE] = "DELETE FROM logs WHERE function = ?1",
    [S_LOG_COUNT_DELETE] = "DELETE FROM log_counts WHERE function = ?1",
    [S_INV_PUT] = "INSERT INTO invocations (id, function, start_ms, doc) VALUES (?1, ?2, ?3, ?4) "
                  "ON CONFLICT (id) DO UPDATE SET function = excluded.function, start_ms = "
                  "excluded.start_ms, doc = excluded.doc",
    [S_INV_GET] = "SELECT doc FROM invocations WHERE id = ?1",
    [S_INV_LIST] = "SELECT doc FROM invocations ORDER BY start_ms DESC, rowid DESC LIMIT ?1",
    [S_INV_LIST_FN] = "SELECT doc FROM invocations WHERE function = ?2 "
                      "ORDER BY start_ms DESC, rowid DESC LIMIT ?1",
    [S_INV_PRUNE] = "DELETE FROM invocations WHERE start_ms < ?1",
};

/* An open SQLite store. Owned by the event-loop thread. */
struct sq_store {
    wisp_store_t base;            /* must stay first: store.c casts */
    sqlite3 *db;                  /* the connection */
    char *path;                   /* file name, for messages */
    sqlite3_stmt *stmt[S_COUNT_]; /* prepared on first use, finalized at close */
    int version;                  /* schema version after migrations */
    int depth;                    /* nesting of wisp_store_begin calls; 0 = none open */
};

static struct sq_store *SQ(wisp_store_t *st)
{
    return (struct sq_store *)st;
}

/* Fill err from the connection's last error. Lock contention becomes
 * WISP_EUNAVAILABLE (retry later); everything else is internal. */
static int db_err(struct sq_store *s, wisp_err_t *err, const char *what)
{
    int rc = sqlite3_errcode(s->db);
    int prim = rc & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "store: %s: database is busy", what);
    return wisp_err_set(err, WISP_EINTERNAL, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static void stmt_resetp(sqlite3_stmt **q)
{
    if (*q != NULL) {
        sqlite3_reset(*q);
        sqlite3_clear_bindings(*q);
    }
}

/* A cached statement local: reset and unbound when it goes out of scope.
 * Strings bound with SQLITE_STATIC must be declared before it (they are
 * released after it). */
#define cleanup_stmt __attribute__((cleanup(stmt_resetp)))

static sqlite3_stmt *stmt(struct sq_store *s, enum stmt_id id, wisp_err_t *err)
{
    if (s->stmt[id] == NULL &&
        sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id],
                           NULL) != SQLITE_OK) {
        db_err(s, err, "prepare");
        s->stmt[id] = NULL;
        return NULL;
    }
    return s->stmt[id];
}

/* Run a statement without bindings or rows (transaction control). */
static int exec_stmt(struct sq_store *s, enum stmt_id id, wisp_err_t *err)
{
    cleanup_stmt sqlite3_stmt *q = stmt(s, id, err);
    if (q == NULL)
        return -1;
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_err(s, err, stmt_sql[id]);
    return 0;
}

static void bind_text(sqlite3_stmt *q, int i, const char *v)
{
    sqlite3_bind_text(q, i, v ? v : "", -1, SQLITE_STATIC);
}

/*
 * An operation that runs several statements is atomic: outside a caller's
 * transaction it opens its own (BEGIN IMMEDIATE, so that it takes the write
 * lock at once instead of failing to upgrade a read lock later); inside one it
 * uses a savepoint so that a failure undoes only its own changes.
 */
static int op_begin(struct sq_store *s, wisp_err_t *err)
{
    return exec_stmt(s, s->depth > 0 ? S_SAVEPOINT : S_BEGIN, err);
}

static int op_end(struct sq_store *s, int rc, wisp_err_t *err)
{
    if (rc == 0) {
        if (exec_stmt(s, s->depth > 0 ? S_RELEASE : S_COMMIT, err) == 0)
            return 0;
    }
    /* Undo and keep the first error; a failing rollback leaves nothing more to do. */
    if (s->depth > 0) {
        if (exec_stmt(s, S_ROLLBACK_TO, NULL) == 0)
            (void)exec_stmt(s, S_RELEASE, NULL);
    } else if (!sqlite3_get_autocommit(s->db)) {
        (void)exec_stmt(s, S_ROLLBACK, NULL);
    }
    return -1;
}

/* Parse a stored JSON document; a broken one is an internal error, not a crash. */
static json_t *load_doc(sqlite3_stmt *q, int col, wisp_err_t *err)
{
    const char *text = (const char *)sqlite3_column_text(q, col);
    int len = sqlite3_column_bytes(q, col);
    json_error_t jerr;
    json_t *doc = text ? json_loadb(text, (size_t)len, 0, &jerr) : NULL;
    if (doc == NULL)
        wisp_err_set(err, WISP_EINTERNAL, "store: stored document is not valid JSON");
    return doc;
}

/* Collect one JSON document column of every row into a new array. */
static int collect_docs(struct sq_store *s, sqlite3_stmt *q, json_t **out, wisp_err_t *err)
{
    cleanup_json json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *doc = load_doc(q, 0, err);
        if (doc == NULL)
            return -1;
        json_array_append_new(arr, doc);
    }
    if (rc != SQLITE_DONE)
        return db_err(s, err, "read");
    *out = steal_pointer(&arr);
    return 0;
}

static int64_t count_query(struct sq_store *s, sqlite3_stmt *q)
{
    if (q == NULL)
        return -1;
    if (sqlite3_step(q) != SQLITE_ROW) {
        wisp_warn("store", "count failed: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return sqlite3_column_int64(q, 0);
}

/* ---- open, migrate, close ---- */

static int pragma_int(struct sq_store *s, const char *sql, int *out, wisp_err_t *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, sql);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && out != NULL)
        *out = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(s, err, sql);
    return 0;
}

static int exec_sql(struct sq_store *s, const char *sql, wisp_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = db_err(s, err, "exec");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int migrate(struct sq_store *s, wisp_err_t *err)
{
    const int latest = (int)WISP_ARRAY_LEN(migrations);
    if (pragma_int(s, "PRAGMA user_version", &s->version, err) < 0)
        return -1;
    if (s->version > latest)
        return wisp_err_set(err, WISP_EUNSUPPORTED,
                            "store: %s has schema version %d, newer than this wisp knows (%d)",
                            s->path, s->version, latest);
    while (s->version < latest) {
        int next = s->version + 1;
        cleanup_free char *bump = xasprintf("PRAGMA user_version = %d", next);
        /* The version check is repeated inside the write lock: another process
         * opening the same file may have migrated it in the meantime. */
        int current = 0;
        if (exec_sql(s, "BEGIN IMMEDIATE", err) < 0)
            return -1;
        if (pragma_int(s, "PRAGMA user_version", &current, err) < 0)
            goto fail;
        if (current >= next) {
            s->version = current;
            if (exec_sql(s, "COMMIT", err) < 0)
                goto fail;
            continue;
        }
        if (exec_sql(s, migrations[s->version], err) < 0 || exec_sql(s, bump, err) < 0 ||
            exec_sql(s, "COMMIT", err) < 0) {
            wisp_err_wrap(err, "%s: migration to schema version %d", s->path, next);
            goto fail;
        }
        wisp_info("store", "%s: migrated to schema version %d", s->path, next);
        s->version = next;
    }
    return 0;
fail:
    if (!sqlite3_get_autocommit(s->db))
        (void)exec_sql(s, "ROLLBACK", NULL);
    return -1;
}

static void sq_close(wisp_store_t *st)
{
    struct sq_store *s = SQ(st);
    for (int i = 0; i < S_COUNT_; i++)
        sqlite3_finalize(s->stmt[i]);
    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
        wisp_warn("store", "closing %s: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
}

static wisp_store_t *sq_open_another(wisp_store_t *st, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (strcmp(s->path, ":memory:") == 0) {
        wisp_err_set(err, WISP_EUNSUPPORTED, "store: an in-memory database has one connection");
        return NULL;
    }
    return wisp__sqlite_open(s->path, err);
}

static int sq_schema_version(wisp_store_t *st)
{
    return SQ(st)->version;
}

/* ---- functions ---- */

static int sq_fn_put(wisp_store_t *st, const char *name, json_t *doc, const char *expect_revision,
                     wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_free char *text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL)
        return wisp_err_set(err, WISP_EINVALID, "store: function %s: cannot encode document", name);
    enum stmt_id id = S_FN_UPSERT;
    if (expect_revision != NULL)
        id = expect_revision[0] == '\0' ? S_FN_INSERT_NEW : S_FN_UPDATE_IF;
    cleanup_stmt sqlite3_stmt *q = stmt(s, id, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, name);
    bind_text(q, 2, text);
    bind_text(q, 3, json_string_value(json_object_get(doc, "revision")));
    bind_text(q, 4, json_string_value(json_object_get(doc, "code_sha256")));
    sqlite3_bind_int64(q, 5, json_integer_value(json_object_get(doc, "created_ms")));
    sqlite3_bind_int64(q, 6, json_integer_value(json_object_get(doc, "modified_ms")));
    if (id == S_FN_UPDATE_IF)
        bind_text(q, 7, expect_revision);
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_err(s, err, "put function");
    if (id != S_FN_UPSERT && sqlite3_changes(s->db) != 1) {
        if (id == S_FN_INSERT_NEW)
            return wisp_err_set(err, WISP_ECONFLICT, "function %s already exists", name);
        return wisp_err_set(err, WISP_ECONFLICT,
                            "function %s was changed or deleted meanwhile (revision is no "
                            "longer %s)",
                            name, expect_revision);
    }
    return 0;
}

static int sq_fn_get(wisp_store_t *st, const char *name, json_t **out, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_FN_GET, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, name);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return wisp_err_set(err, WISP_ENOTFOUND, "function %s not found", name);
    if (rc != SQLITE_ROW)
        return db_err(s, err, "get function");
    *out = load_doc(q, 0, err);
    return *out ? 0 : -1;
}

static int sq_fn_list(wisp_store_t *st, const char *after, int limit, json_t **out, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_FN_LIST, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, after);
    sqlite3_bind_int(q, 2, limit > 0 ? limit : -1);
    return collect_docs(s, q, out, err);
}

static int sq_fn_delete(wisp_store_t *st, const char *name, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_FN_DELETE, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, name);
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_err(s, err, "delete function");
    if (sqlite3_changes(s->db) == 0)
        return wisp_err_set(err, WISP_ENOTFOUND, "function %s not found", name);
    return 0;
}

static int64_t sq_fn_count(wisp_store_t *st)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_FN_COUNT, NULL);
    return count_query(s, q);
}

static int64_t sq_pkg_refs(wisp_store_t *st, const char *sha256)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_PKG_REFS, NULL);
    if (q == NULL)
        return -1;
    bind_text(q, 1, sha256);
    return count_query(s, q);
}

/* ---- logs ---- */

/* How many lines of one function a batch adds. */
struct fn_tally {
    const char *function;
    int64_t n;
};

/* Bring one function's line count up to date and delete its oldest lines
 * beyond cap. */
static int log_account(struct sq_store *s, const struct fn_tally *t, int64_t cap, wisp_err_t *err)
{
    int64_t total;
    {
        cleanup_stmt sqlite3_stmt *q = stmt(s, S_LOG_COUNT_ADD, err);
        if (q == NULL)
            return -1;
        bind_text(q, 1, t->function);
        sqlite3_bind_int64(q, 2, t->n);
        if (sqlite3_step(q) != SQLITE_ROW)
            return db_err(s, err, "count log lines");
        total = sqlite3_column_int64(q, 0);
        if (sqlite3_step(q) != SQLITE_DONE)
            return db_err(s, err, "count log lines");
    }
    if (cap <= 0 || total <= cap)
        return 0;
    int64_t removed;
    {
        cleanup_stmt sqlite3_stmt *q = stmt(s, S_LOG_TRIM, err);
        if (q == NULL)
            return -1;
        bind_text(q, 1, t->function);
        sqlite3_bind_int64(q, 2, total - cap - 1);
        if (sqlite3_step(q) != SQLITE_DONE)
            return db_err(s, err, "trim log");
        removed = sqlite3_changes64(s->db);
    }
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_LOG_COUNT_SUB, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, t->function);
    sqlite3_bind_int64(q, 2, removed);
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_err(s, err, "count log lines");
    return 0;
}

/* Bind one log line at parameters first..first+4. */
static void bind_log(sqlite3_stmt *q, int first, const wisp_log_rec_t *r)
{
    bind_text(q, first, r->function);
    bind_text(q, first + 1, r->request_id);
    sqlite3_bind_int64(q, first + 2, r->ts_ms);
    bind_text(q, first + 3, r->stream ? r->stream : "stdout");
    bind_text(q, first + 4, r->line);
}

static int log_insert_all(struct sq_store *s, const wisp_log_rec_t *recs, size_t n, int64_t cap,
                          wisp_err_t *err)
{
    /* Rows in order (ids grow in the order given): MANY_ROWS at a time. */
    for (size_t i = 0; i < n;) {
        size_t rows = n - i >= MANY_ROWS ? MANY_ROWS : 1;
        cleanup_stmt sqlite3_stmt *q = stmt(s, rows > 1 ? S_LOG_INSERT_MANY : S_LOG_INSERT, err);
        if (q == NULL)
            return -1;
        for (size_t k = 0; k < rows; k++)
            bind_log(q, 5 * (int)k + 1, &recs[i + k]);
        if (sqlite3_step(q) != SQLITE_DONE)
            return db_err(s, err, "append log");
        i += rows;
    }
    /* Batches usually hold the lines of a handful of functions: a short
     * array with a linear search beats a hash table here. */
    size_t ntally = 0, captally = 8;
    cleanup_free struct fn_tally *tally = xmalloc(captally * sizeof *tally);
    for (size_t i = 0; i < n; i++) {
        const wisp_log_rec_t *r = &recs[i];
        size_t j = 0;
        while (j < ntally && strcmp(tally[j].function, r->function) != 0)
            j++;
        if (j == ntally) {
            if (ntally == captally) {
                captally *= 2;
                tally = xrealloc(tally, captally * sizeof *tally);
            }
            tally[ntally++] = (struct fn_tally){r->function, 0};
        }
        tally[j].n++;
    }
    for (size_t j = 0; j < ntally; j++)
        if (log_account(s, &tally[j], cap, err) < 0)
            return -1;
    return 0;
}

static int sq_log_append(wisp_store_t *st, const wisp_log_rec_t *recs, size_t n, int64_t cap,
                         wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (op_begin(s, err) < 0)
        return -1;
    return op_end(s, log_insert_all(s, recs, n, cap, err), err);
}

static int sq_log_query(wisp_store_t *st, const char *function, int64_t after_id, int64_t since_ms,
                        const char *request_id, int limit, json_t **out, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, request_id ? S_LOG_QUERY_REQ : S_LOG_QUERY, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, function);
    sqlite3_bind_int64(q, 2, after_id);
    sqlite3_bind_int64(q, 3, since_ms);
    sqlite3_bind_int(q, 4, limit > 0 ? limit : -1);
    if (request_id)
        bind_text(q, 5, request_id);
    cleanup_json json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(sqlite3_column_int64(q, 0)));
        json_object_set_new(o, "ts", json_integer(sqlite3_column_int64(q, 1)));
        json_object_set_new(o, "request_id",
                            json_stringn((const char *)sqlite3_column_text(q, 2),
                                         (size_t)sqlite3_column_bytes(q, 2)));
        json_object_set_new(o, "stream",
                            json_stringn((const char *)sqlite3_column_text(q, 3),
                                         (size_t)sqlite3_column_bytes(q, 3)));
        /* Lines come from user code and need not be UTF-8; json_stringn
         * refuses such text, so those lines are kept with invalid bytes
         * replaced by '?'. */
        const char *line = (const char *)sqlite3_column_text(q, 4);
        size_t len = (size_t)sqlite3_column_bytes(q, 4);
        json_t *js = json_stringn(line ? line : "", len);
        if (js == NULL) {
            cleanup_free char *fixed = xstrndup(line, len);
            for (size_t i = 0; i < len; i++)
                if ((unsigned char)fixed[i] >= 0x80 || fixed[i] == '\0')
                    fixed[i] = '?';
            js = json_stringn(fixed, len);
        }
        json_object_set_new(o, "line", js);
        json_array_append_new(arr, o);
    }
    if (rc != SQLITE_DONE)
        return db_err(s, err, "query logs");
    *out = steal_pointer(&arr);
    return 0;
}

static int log_delete_all(struct sq_store *s, const char *function, wisp_err_t *err)
{
    static const enum stmt_id ids[] = {S_LOG_DELETE, S_LOG_COUNT_DELETE};
    for (size_t i = 0; i < WISP_ARRAY_LEN(ids); i++) {
        cleanup_stmt sqlite3_stmt *q = stmt(s, ids[i], err);
        if (q == NULL)
            return -1;
        bind_text(q, 1, function);
        if (sqlite3_step(q) != SQLITE_DONE)
            return db_err(s, err, "delete logs");
    }
    return 0;
}

static int sq_log_delete_function(wisp_store_t *st, const char *function, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (op_begin(s, err) < 0)
        return -1;
    return op_end(s, log_delete_all(s, function, err), err);
}

/* ---- invocation records ---- */

/* One row per statement: a multi-row upsert measured twice as slow per row. */
static int sq_invocation_put_rows(wisp_store_t *st, const wisp_inv_row_t *rows, size_t n,
                                  wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (op_begin(s, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cleanup_stmt sqlite3_stmt *q = stmt(s, S_INV_PUT, err);
        if (q == NULL) {
            rc = -1;
            break;
        }
        bind_text(q, 1, rows[i].id);
        bind_text(q, 2, rows[i].function);
        sqlite3_bind_int64(q, 3, rows[i].start_ms);
        bind_text(q, 4, rows[i].doc);
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = db_err(s, err, "put invocations");
    }
    return op_end(s, rc, err);
}

static int sq_invocation_put(wisp_store_t *st, json_t *rec, wisp_err_t *err)
{
    cleanup_free char *text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL)
        return wisp_err_set(err, WISP_EINVALID, "store: cannot encode invocation record");
    json_t *start = json_object_get(rec, "start_ms");
    wisp_inv_row_t row = {
        .id = json_string_value(json_object_get(rec, "id")),
        .function = json_string_value(json_object_get(rec, "function")),
        .start_ms =
            json_is_real(start) ? (int64_t)json_real_value(start) : json_integer_value(start),
        .doc = text,
    };
    return sq_invocation_put_rows(st, &row, 1, err);
}

static int sq_invocation_get(wisp_store_t *st, const char *id, json_t **out, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_INV_GET, err);
    if (q == NULL)
        return -1;
    bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return wisp_err_set(err, WISP_ENOTFOUND, "invocation %s not found", id);
    if (rc != SQLITE_ROW)
        return db_err(s, err, "get invocation");
    *out = load_doc(q, 0, err);
    return *out ? 0 : -1;
}

static int sq_invocation_list(wisp_store_t *st, const char *function, int limit, json_t **out,
                              wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, function ? S_INV_LIST_FN : S_INV_LIST, err);
    if (q == NULL)
        return -1;
    sqlite3_bind_int(q, 1, limit > 0 ? limit : -1);
    if (function)
        bind_text(q, 2, function);
    return collect_docs(s, q, out, err);
}

static int sq_invocation_prune(wisp_store_t *st, int64_t before_ms, int64_t *n, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    cleanup_stmt sqlite3_stmt *q = stmt(s, S_INV_PRUNE, err);
    if (q == NULL)
        return -1;
    sqlite3_bind_int64(q, 1, before_ms);
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_err(s, err, "prune invocations");
    if (n != NULL)
        *n = sqlite3_changes64(s->db);
    return 0;
}

/* ---- caller transactions ---- */

static int sq_begin(wisp_store_t *st, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (s->depth == 0 && exec_stmt(s, S_BEGIN, err) < 0)
        return -1;
    s->depth++;
    return 0;
}

static int sq_commit(wisp_store_t *st, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (s->depth == 0)
        return wisp_err_set(err, WISP_EINVALID, "store: commit without an open transaction");
    if (s->depth > 1) {
        s->depth--;
        return 0;
    }
    if (exec_stmt(s, S_COMMIT, err) < 0) {
        /* A failed COMMIT may leave the transaction open (SQLITE_BUSY);
         * roll it back so the connection is usable and the depth is true. */
        if (!sqlite3_get_autocommit(s->db))
            (void)exec_stmt(s, S_ROLLBACK, NULL);
        s->depth = 0;
        return -1;
    }
    s->depth = 0;
    return 0;
}

static int sq_rollback(wisp_store_t *st, wisp_err_t *err)
{
    struct sq_store *s = SQ(st);
    if (s->depth == 0)
        return wisp_err_set(err, WISP_EINVALID, "store: rollback without an open transaction");
    s->depth = 0;
    if (sqlite3_get_autocommit(s->db))
        return 0;
    return exec_stmt(s, S_ROLLBACK, err);
}

static const struct wisp_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .open_another = sq_open_another,
    .schema_version = sq_schema_version,
    .fn_put = sq_fn_put,
    .fn_get = sq_fn_get,
    .fn_list = sq_fn_list,
    .fn_delete = sq_fn_delete,
    .fn_count = sq_fn_count,
    .pkg_refs = sq_pkg_refs,
    .log_append = sq_log_append,
    .log_query = sq_log_query,
    .log_delete_function = sq_log_delete_function,
    .invocation_put = sq_invocation_put,
    .invocation_put_rows = sq_invocation_put_rows,
    .invocation_get = sq_invocation_get,
    .invocation_list = sq_invocation_list,
    .invocation_prune = sq_invocation_prune,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
};

/* The database holds function environments (possibly secrets): create the
 * file 0600 before SQLite does, which would use 0644. SQLite gives the -wal
 * and -shm files the same mode as the database. */
static int create_private(const char *path, wisp_err_t *err)
{
    if (strcmp(path, ":memory:") == 0)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return wisp_err_sys(err, errno, "store: create %s", path);
    close(fd);
    return 0;
}

wisp_store_t *wisp__sqlite_open(const char *path, wisp_err_t *err)
{
    if (create_private(path, err) < 0)
        return NULL;
    struct sq_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    s->path = xstrdup(path);
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        if (s->db == NULL)
            wisp_err_set(err, WISP_EINTERNAL, "store: open %s: out of memory", path);
        else
            wisp_err_set(err, WISP_EINTERNAL, "store: open %s: %s", path, sqlite3_errmsg(s->db));
        sq_close(&s->base);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* journal_size_limit keeps the WAL file from staying large after a burst. */
    char mode[16] = "";
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        wisp_err_set(err, WISP_EINTERNAL, "store: %s: cannot use WAL mode (journal mode is '%s')",
                     path, mode);
        sq_close(&s->base);
        return NULL;
    }
    if (exec_sql(s,
                 "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                 "PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;",
                 err) < 0 ||
        migrate(s, err) < 0) {
        sq_close(&s->base);
        return NULL;
    }
    return &s->base;
}
