/* test_store.c - unit tests for the SQLite store: migrations, function
 * documents, log lines with trimming, invocation records (and the log
 * writer's encoding of them), transactions. Every case uses a real database
 * file in its own temporary folder. */
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "invoke/internal.h"
#include "store/store.h"
#include "tap.h"

static char tmpdir[64];

/* A fresh folder per case (each case runs in its own child). */
static char *db_path(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wisp-store-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    return xasprintf("%s/wisp.db", tmpdir);
}

static void cleanup_dir(void)
{
    CHECK(wisp_rm_rf(tmpdir, NULL) == 0);
}

static wisp_store_t *open_ok(const char *path)
{
    wisp_err_t err;
    wisp_store_t *st = wisp_store_open(path, &err);
    if (st == NULL)
        fprintf(stderr, "# open: %s\n", err.msg);
    CHECK(st != NULL);
    return st;
}

static json_t *fn_doc(const char *name, const char *rev, const char *sha)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "name", name, "runtime", "provided",
                     "revision", rev, "code_sha256", sha, "created_ms", (json_int_t)1000,
                     "modified_ms", (json_int_t)2000);
}

static void put_ok(wisp_store_t *st, const char *name, const char *rev, const char *sha,
                   const char *expect)
{
    cleanup_json json_t *doc = fn_doc(name, rev, sha);
    wisp_err_t err;
    int rc = wisp_store_fn_put(st, name, doc, expect, &err);
    if (rc != 0)
        fprintf(stderr, "# put %s: %s\n", name, err.msg);
    CHECK(rc == 0);
}

TEST(migrations_idempotent)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    int v = wisp_store_schema_version(st);
    CHECK(v >= 1);
    put_ok(st, "keep", "r1", "", NULL);
    wisp_store_close(st);

    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK_INT(sb.st_mode & 0777, 0600);

    /* Reopening runs no migration again and keeps the data. */
    st = open_ok(path);
    CHECK_INT(wisp_store_schema_version(st), v);
    CHECK_INT(wisp_store_fn_count(st), 1);
    wisp_store_close(st);

    /* The file is in WAL mode and its version is the one reported. */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(q, 0), v);
    sqlite3_finalize(q);
    /* A database from a newer wisp is refused, not damaged. */
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    wisp_err_t err;
    CHECK(wisp_store_open(path, &err) == NULL);
    CHECK_INT(err.code, WISP_EUNSUPPORTED);
    CHECK(strstr(err.msg, "999") != NULL);
    cleanup_dir();
}

TEST(uri_forms)
{
    cleanup_free char *path = db_path();
    cleanup_free char *uri = xasprintf("sqlite:%s", path);
    wisp_store_t *st = open_ok(uri);
    wisp_store_close(st);
    CHECK(access(path, F_OK) == 0);
    wisp_err_t err;
    CHECK(wisp_store_open("postgres://localhost/wisp", &err) == NULL);
    CHECK_INT(err.code, WISP_EUNSUPPORTED);
    CHECK(wisp_store_open("", &err) == NULL);
    CHECK_INT(err.code, WISP_EINVALID);
    cleanup_free char *bad = xasprintf("%s/missing-dir/wisp.db", tmpdir);
    CHECK(wisp_store_open(bad, &err) == NULL);
    cleanup_dir();
}

TEST(functions_crud_and_paging)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    const char *names[] = {"delta", "alpha", "echo", "charlie", "bravo"};
    for (size_t i = 0; i < 5; i++)
        put_ok(st, names[i], "r1", i < 2 ? "aaaa" : "bbbb", NULL);
    CHECK_INT(wisp_store_fn_count(st), 5);
    CHECK_INT(wisp_store_pkg_refs(st, "aaaa"), 2);
    CHECK_INT(wisp_store_pkg_refs(st, "bbbb"), 3);
    CHECK_INT(wisp_store_pkg_refs(st, "cccc"), 0);

    wisp_err_t err;
    json_t *doc;
    CHECK(wisp_store_fn_get(st, "charlie", &doc, &err) == 0);
    CHECK_STR(json_string_value(json_object_get(doc, "name")), "charlie");
    CHECK_INT(json_integer_value(json_object_get(doc, "created_ms")), 1000);
    json_decref(doc);
    CHECK(wisp_store_fn_get(st, "zulu", &doc, &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);

    /* Page through two at a time, in name order. */
    const char *want[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    const char *after = NULL;
    size_t seen = 0;
    cleanup_free char *last = NULL;
    for (;;) {
        json_t *page;
        CHECK(wisp_store_fn_list(st, after, 2, &page, &err) == 0);
        size_t n = json_array_size(page);
        CHECK(n <= 2);
        for (size_t i = 0; i < n; i++) {
            const char *nm = json_string_value(json_object_get(json_array_get(page, i), "name"));
            CHECK(seen < 5);
            CHECK_STR(nm, want[seen]);
            seen++;
        }
        if (n > 0) {
            free(last);
            last = xstrdup(json_string_value(json_object_get(json_array_get(page, n - 1), "name")));
            after = last;
        }
        json_decref(page);
        if (n < 2)
            break;
    }
    CHECK_INT(seen, 5);
    json_t *all;
    CHECK(wisp_store_fn_list(st, NULL, 0, &all, &err) == 0);
    CHECK_INT(json_array_size(all), 5);
    json_decref(all);

    /* Replacing keeps one row and updates the code index. */
    put_ok(st, "alpha", "r2", "bbbb", NULL);
    CHECK_INT(wisp_store_fn_count(st), 5);
    CHECK_INT(wisp_store_pkg_refs(st, "aaaa"), 1);

    CHECK(wisp_store_fn_delete(st, "delta", &err) == 0);
    CHECK(wisp_store_fn_delete(st, "delta", &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);
    CHECK_INT(wisp_store_fn_count(st), 4);
    CHECK(wisp_store_fn_get(st, "delta", &doc, &err) == -1);
    wisp_store_close(st);
    cleanup_dir();
}

TEST(functions_revision_conflict)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    put_ok(st, "f", "r1", "", "");
    cleanup_json json_t *d2 = fn_doc("f", "r2", "");
    /* "" means "must not exist". */
    CHECK(wisp_store_fn_put(st, "f", d2, "", &err) == -1);
    CHECK_INT(err.code, WISP_ECONFLICT);
    /* A stale revision is refused and changes nothing. */
    CHECK(wisp_store_fn_put(st, "f", d2, "r0", &err) == -1);
    CHECK_INT(err.code, WISP_ECONFLICT);
    json_t *doc;
    CHECK(wisp_store_fn_get(st, "f", &doc, &err) == 0);
    CHECK_STR(json_string_value(json_object_get(doc, "revision")), "r1");
    json_decref(doc);
    /* The right one passes. */
    CHECK(wisp_store_fn_put(st, "f", d2, "r1", &err) == 0);
    CHECK(wisp_store_fn_get(st, "f", &doc, &err) == 0);
    CHECK_STR(json_string_value(json_object_get(doc, "revision")), "r2");
    json_decref(doc);
    /* Expecting a revision of a function that does not exist is a conflict too. */
    cleanup_json json_t *g = fn_doc("g", "r9", "");
    CHECK(wisp_store_fn_put(st, "g", g, "r8", &err) == -1);
    CHECK_INT(err.code, WISP_ECONFLICT);
    CHECK_INT(wisp_store_fn_count(st), 1);
    /* Not an object. */
    cleanup_json json_t *arr = json_array();
    CHECK(wisp_store_fn_put(st, "h", arr, NULL, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    wisp_store_close(st);
    cleanup_dir();
}

static void append_lines(wisp_store_t *st, const char *fn, const char *req, int from, int n,
                         int64_t cap)
{
    wisp_log_rec_t *recs = xcalloc((size_t)n, sizeof *recs);
    char **lines = xcalloc((size_t)n, sizeof *lines);
    for (int i = 0; i < n; i++) {
        lines[i] = xasprintf("line %d", from + i);
        recs[i] = (wisp_log_rec_t){fn, req, 1000 + from + i, "stdout", lines[i]};
    }
    wisp_err_t err;
    int rc = wisp_store_log_append(st, recs, (size_t)n, cap, &err);
    if (rc != 0)
        fprintf(stderr, "# append: %s\n", err.msg);
    CHECK(rc == 0);
    for (int i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(recs);
}

TEST(logs_append_query)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    append_lines(st, "a", "req-1", 0, 3, 0);
    append_lines(st, "b", "req-2", 100, 2, 0);
    append_lines(st, "a", "req-3", 3, 4, 0);
    /* A mixed batch, with a platform line outside any request. */
    wisp_log_rec_t mixed[] = {
        {"a", "", 2000, "platform", "INIT_START"},
        {"b", "req-4", 2001, "stderr", "oops"},
    };
    CHECK(wisp_store_log_append(st, mixed, 2, 0, &err) == 0);

    json_t *out;
    CHECK(wisp_store_log_query(st, "a", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 8);
    int64_t prev = 0;
    for (size_t i = 0; i < json_array_size(out); i++) {
        int64_t id = json_integer_value(json_object_get(json_array_get(out, i), "id"));
        CHECK(id > prev);
        prev = id;
    }
    json_t *first = json_array_get(out, 0);
    CHECK_STR(json_string_value(json_object_get(first, "line")), "line 0");
    CHECK_STR(json_string_value(json_object_get(first, "stream")), "stdout");
    CHECK_STR(json_string_value(json_object_get(first, "request_id")), "req-1");
    CHECK_INT(json_integer_value(json_object_get(first, "ts")), 1000);
    int64_t third_id = json_integer_value(json_object_get(json_array_get(out, 2), "id"));
    json_t *last = json_array_get(out, 7);
    CHECK_STR(json_string_value(json_object_get(last, "stream")), "platform");
    CHECK_STR(json_string_value(json_object_get(last, "request_id")), "");
    json_decref(out);

    /* One request; after an id; since a time; a limit. */
    CHECK(wisp_store_log_query(st, "a", 0, 0, "req-3", 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 4);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "line 3");
    json_decref(out);
    CHECK(wisp_store_log_query(st, "a", third_id, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 5);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "line 3");
    json_decref(out);
    CHECK(wisp_store_log_query(st, "a", 0, 1005, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 3); /* line 5, line 6, INIT_START */
    json_decref(out);
    CHECK(wisp_store_log_query(st, "a", 0, 0, NULL, 2, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 2);
    json_decref(out);
    CHECK(wisp_store_log_query(st, "b", 0, 0, "req-4", 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "stream")), "stderr");
    json_decref(out);

    /* Bytes that are not UTF-8 come back readable rather than failing the query. */
    wisp_log_rec_t bin = {"c", "", 1, "stdout", "ok \xff\xfe end"};
    CHECK(wisp_store_log_append(st, &bin, 1, 0, &err) == 0);
    CHECK(wisp_store_log_query(st, "c", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "ok ?? end");
    json_decref(out);

    CHECK(wisp_store_log_delete_function(st, "a", &err) == 0);
    CHECK(wisp_store_log_query(st, "a", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 0);
    json_decref(out);
    CHECK(wisp_store_log_query(st, "b", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 3);
    json_decref(out);
    wisp_store_close(st);
    cleanup_dir();
}

static int64_t raw_count(const char *path, const char *sql);

/* A batch longer than one multi-row statement (and not a multiple of it)
 * keeps its order: ids grow line by line, across two functions. */
TEST(logs_batch_order)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    enum { N = 53 };
    wisp_log_rec_t recs[N];
    char lines[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(lines[i], sizeof lines[i], "line %d", i);
        recs[i] = (wisp_log_rec_t){i % 3 == 2 ? "other" : "main", i < 20 ? "req-a" : "req-b",
                                   100 + i, i % 2 ? "stderr" : "stdout", lines[i]};
    }
    CHECK(wisp_store_log_append(st, recs, N, 0, &err) == 0);
    json_t *out;
    CHECK(wisp_store_log_query(st, "main", 0, 0, NULL, 0, &out, &err) == 0);
    int64_t prev = 0;
    size_t k = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 2)
            continue;
        json_t *o = json_array_get(out, k++);
        CHECK_STR(json_string_value(json_object_get(o, "line")), lines[i]);
        CHECK_STR(json_string_value(json_object_get(o, "request_id")), recs[i].request_id);
        CHECK_STR(json_string_value(json_object_get(o, "stream")), recs[i].stream);
        CHECK_INT(json_integer_value(json_object_get(o, "ts")), 100 + i);
        int64_t id = json_integer_value(json_object_get(o, "id"));
        CHECK(id > prev);
        prev = id;
    }
    CHECK_INT(json_array_size(out), k);
    json_decref(out);
    CHECK(wisp_store_log_query(st, "other", 0, 0, "req-b", 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 11); /* i = 20, 23, ..., 50 */
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "line 20");
    json_decref(out);
    wisp_store_close(st);
    CHECK_INT(raw_count(path, "SELECT n FROM log_counts WHERE function = 'main'"), 36);
    CHECK_INT(raw_count(path, "SELECT n FROM log_counts WHERE function = 'other'"), 17);
    cleanup_dir();
}

static int64_t raw_count(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

TEST(logs_trim_to_cap)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    /* 20 batches of 1000 lines with a cap of 5000: the newest 5000 stay. */
    for (int b = 0; b < 20; b++)
        append_lines(st, "busy", "r", b * 1000, 1000, 5000);
    append_lines(st, "quiet", "r", 0, 10, 5000);
    json_t *out;
    CHECK(wisp_store_log_query(st, "busy", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 5000);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "line 15000");
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 4999), "line")), "line 19999");
    json_decref(out);
    /* A batch larger than the cap keeps only its own newest lines. */
    append_lines(st, "quiet", "r", 10, 30, 25);
    CHECK(wisp_store_log_query(st, "quiet", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 25);
    CHECK_STR(json_string_value(json_object_get(json_array_get(out, 0), "line")), "line 15");
    json_decref(out);
    wisp_store_close(st);
    CHECK_INT(raw_count(path, "SELECT count(*) FROM logs"), 5025);
    /* The kept counters agree with the rows (trimming relies on them). */
    CHECK_INT(raw_count(path, "SELECT n FROM log_counts WHERE function = 'busy'"), 5000);
    CHECK_INT(raw_count(path, "SELECT n FROM log_counts WHERE function = 'quiet'"), 25);
    cleanup_dir();
}

static void put_inv(wisp_store_t *st, const char *id, const char *fn, int64_t start,
                    const char *outcome)
{
    cleanup_json json_t *rec =
        json_pack("{s:s, s:s, s:I, s:s, s:b}", "id", id, "function", fn, "start_ms",
                  (json_int_t)start, "outcome", outcome, "cold", 1);
    wisp_err_t err;
    CHECK(wisp_store_invocation_put(st, rec, &err) == 0);
}

TEST(invocation_records)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    put_inv(st, "i1", "a", 100, "pending");
    put_inv(st, "i2", "b", 200, "success");
    put_inv(st, "i3", "a", 300, "success");
    put_inv(st, "i1", "a", 100, "error"); /* replaces */

    json_t *rec;
    CHECK(wisp_store_invocation_get(st, "i1", &rec, &err) == 0);
    CHECK_STR(json_string_value(json_object_get(rec, "outcome")), "error");
    CHECK(json_is_true(json_object_get(rec, "cold")));
    json_decref(rec);
    CHECK(wisp_store_invocation_get(st, "nope", &rec, &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);

    json_t *list;
    CHECK(wisp_store_invocation_list(st, NULL, 0, &list, &err) == 0);
    CHECK_INT(json_array_size(list), 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "id")), "i3");
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 2), "id")), "i1");
    json_decref(list);
    CHECK(wisp_store_invocation_list(st, "a", 1, &list, &err) == 0);
    CHECK_INT(json_array_size(list), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "id")), "i3");
    json_decref(list);

    /* Records need an id and a function. */
    cleanup_json json_t *bad = json_pack("{s:s}", "id", "x");
    CHECK(wisp_store_invocation_put(st, bad, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);

    int64_t n = -1;
    CHECK(wisp_store_invocation_prune(st, 250, &n, &err) == 0);
    CHECK_INT(n, 2);
    CHECK(wisp_store_invocation_list(st, NULL, 0, &list, &err) == 0);
    CHECK_INT(json_array_size(list), 1);
    json_decref(list);
    wisp_store_close(st);
    cleanup_dir();
}

TEST(transactions)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    CHECK(wisp_store_commit(st, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);

    CHECK(wisp_store_begin(st, &err) == 0);
    put_ok(st, "gone", "r1", "", NULL);
    CHECK(wisp_store_rollback(st, &err) == 0);
    CHECK_INT(wisp_store_fn_count(st), 0);

    /* Nested: only the outermost commit writes; a failing operation inside
     * undoes only itself. */
    CHECK(wisp_store_begin(st, &err) == 0);
    CHECK(wisp_store_begin(st, &err) == 0);
    put_ok(st, "kept", "r1", "", NULL);
    append_lines(st, "kept", "r", 0, 3, 2);
    cleanup_json json_t *d = fn_doc("kept", "r2", "");
    CHECK(wisp_store_fn_put(st, "kept", d, "", &err) == -1);
    CHECK(wisp_store_commit(st, &err) == 0);
    /* Still open: a second connection does not see the row yet. */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "SELECT count(*) FROM functions", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(q, 0), 0);
    sqlite3_reset(q);
    CHECK(wisp_store_commit(st, &err) == 0);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);

    /* While the other connection holds the write lock, writes fail as
     * "unavailable" after the busy timeout instead of hanging. */
    CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    cleanup_json json_t *e = fn_doc("blocked", "r1", "");
    CHECK(wisp_store_fn_put(st, "blocked", e, NULL, &err) == -1);
    CHECK_INT(err.code, WISP_EUNAVAILABLE);
    CHECK(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK(wisp_store_fn_put(st, "blocked", e, NULL, &err) == 0);

    json_t *out;
    CHECK(wisp_store_log_query(st, "kept", 0, 0, NULL, 0, &out, &err) == 0);
    CHECK_INT(json_array_size(out), 2);
    json_decref(out);
    wisp_store_close(st);
    cleanup_dir();
}

/* A second connection (the log writer's) sees and makes the same data; an
 * in-memory database cannot give one. */
TEST(second_connection)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    wisp_store_t *other = wisp_store_open_another(st, &err);
    CHECK(other != NULL);
    put_ok(st, "one", "r1", "", NULL);
    CHECK_INT(wisp_store_fn_count(other), 1);
    CHECK(wisp_store_begin(other, &err) == 0);
    put_ok(other, "two", "r1", "", NULL);
    CHECK(wisp_store_commit(other, &err) == 0);
    CHECK_INT(wisp_store_fn_count(st), 2);
    wisp_store_close(other);
    wisp_store_close(st);

    st = open_ok(":memory:");
    CHECK(wisp_store_open_another(st, &err) == NULL);
    CHECK_INT(err.code, WISP_EUNSUPPORTED);
    wisp_store_close(st);
}

/* The log writer's records: encoded without jansson (wisp__invrec_json) and
 * stored in one operation; what the API reads back is the same record, with
 * error types from a runtime escaped, and bytes that are not UTF-8 as '?'. */
TEST(invocation_rows_encoded)
{
    cleanup_free char *path = db_path();
    wisp_store_t *st = open_ok(path);
    wisp_err_t err;
    const char *errtypes[] = {NULL, "Handled", "Bad \"quote\" \\ and\ttab\x01", "caf\xc3\xa9",
                              "bin\xff\xfe"};
    const char *want_err[] = {NULL, "Handled", "Bad \"quote\" \\ and\ttab\x01", "caf\xc3\xa9",
                              "bin??"};
    enum { N = 5 };
    invrec_t recs[N];
    wisp_buf_t docs[N];
    wisp_inv_row_t rows[N];
    for (int i = 0; i < N; i++) {
        recs[i] = (invrec_t){.start_ms = 1764250000000LL + i,
                             .queue_ms = 0.0125,
                             .init_ms = i == 0 ? 12.5 : 0,
                             .duration_ms = 1.0 / 3,
                             .billed_ms = 1,
                             .max_memory_mb = 7,
                             .cold = i == 0,
                             .outcome = i ? "error" : "success",
                             .function = "enc-fn",
                             .error_type = (char *)errtypes[i]};
        snprintf(recs[i].id, sizeof recs[i].id, "0190aaaa-bbbb-7ccc-8ddd-00000000000%d", i);
        snprintf(recs[i].revision, sizeof recs[i].revision, "rev-%d", i);
        snprintf(recs[i].trigger, sizeof recs[i].trigger, "http");
        wisp_buf_init(&docs[i], 0);
        wisp__invrec_json(&recs[i], &docs[i]);
        rows[i] = (wisp_inv_row_t){recs[i].id, "enc-fn", recs[i].start_ms, docs[i].data};
    }
    CHECK(wisp_store_invocation_put_rows(st, rows, N, &err) == 0);
    for (int i = 0; i < N; i++) {
        json_t *rec;
        CHECK(wisp_store_invocation_get(st, recs[i].id, &rec, &err) == 0);
        CHECK_INT(json_object_size(rec), 13);
        CHECK_STR(json_string_value(json_object_get(rec, "id")), recs[i].id);
        CHECK_STR(json_string_value(json_object_get(rec, "function")), "enc-fn");
        CHECK_STR(json_string_value(json_object_get(rec, "revision")), recs[i].revision);
        CHECK_STR(json_string_value(json_object_get(rec, "trigger")), "http");
        CHECK(json_is_integer(json_object_get(rec, "start_ms")));
        CHECK_INT(json_integer_value(json_object_get(rec, "start_ms")), recs[i].start_ms);
        CHECK(json_is_real(json_object_get(rec, "queue_ms")));
        CHECK(json_is_real(json_object_get(rec, "init_ms")));
        CHECK(json_real_value(json_object_get(rec, "init_ms")) == (i == 0 ? 12.5 : 0));
        CHECK(json_real_value(json_object_get(rec, "duration_ms")) == 0.333);
        CHECK_INT(json_integer_value(json_object_get(rec, "billed_ms")), 1);
        CHECK_INT(json_integer_value(json_object_get(rec, "max_memory_mb")), 7);
        CHECK(json_is_boolean(json_object_get(rec, "cold")));
        CHECK(json_boolean_value(json_object_get(rec, "cold")) == (i == 0));
        CHECK_STR(json_string_value(json_object_get(rec, "outcome")), recs[i].outcome);
        json_t *et = json_object_get(rec, "error_type");
        if (want_err[i] == NULL)
            CHECK(json_is_null(et));
        else
            CHECK_STR(json_string_value(et), want_err[i]);
        json_decref(rec);
        wisp_buf_free(&docs[i]);
    }
    json_t *list;
    CHECK(wisp_store_invocation_list(st, "enc-fn", 0, &list, &err) == 0);
    CHECK_INT(json_array_size(list), N);
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "id")), recs[N - 1].id);
    json_decref(list);
    /* All or none: a row without a JSON object fails the whole call. */
    wisp_inv_row_t bad[] = {{"new-1", "enc-fn", 1, "{}"}, {"new-2", "enc-fn", 2, "oops"}};
    CHECK(wisp_store_invocation_put_rows(st, bad, 2, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    json_t *rec;
    CHECK(wisp_store_invocation_get(st, "new-1", &rec, &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);
    wisp_store_close(st);
    cleanup_dir();
}

TAP_MAIN(CASE(migrations_idempotent), CASE(uri_forms), CASE(functions_crud_and_paging),
         CASE(functions_revision_conflict), CASE(logs_append_query), CASE(logs_batch_order),
         CASE(logs_trim_to_cap), CASE(invocation_records), CASE(invocation_rows_encoded),
         CASE(transactions), CASE(second_connection))
