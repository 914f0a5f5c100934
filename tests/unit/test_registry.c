/* test_registry.c - unit tests for the registry: configuration validation of
 * every field, the JSON view, and deploys on a real libuv loop over a real
 * SQLite store and data folder (create, update, conflicts, ordering, package
 * dedupe and garbage collection with holds). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#define TAP_TIMEOUT 60
#include "core/util.h"
#include "obs/metrics.h"
#include "registry/internal.h"
#include "store/store.h"
#include "tap.h"

/* ---- validation ---- */

static json_t *J(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        fprintf(stderr, "# bad test JSON %s: %s\n", text, jerr.text);
    CHECK(j != NULL);
    return j;
}

/* Apply config to a fresh function (create) and return the error code. */
static int apply_code(const char *config, bool creating, wisp_err_t *err)
{
    wisp_fn_t *fn = wisp_fn_new();
    snprintf(fn->name, sizeof fn->name, "f");
    if (!creating)
        snprintf(fn->runtime, sizeof fn->runtime, "provided");
    cleanup_json json_t *c = J(config);
    int rc = wisp_fn_apply_config(fn, c, creating, err);
    wisp_fn_free(fn);
    return rc == 0 ? WISP_OK : (int)err->code;
}

static void expect_ok(const char *config)
{
    wisp_err_t err;
    int code = apply_code(config, true, &err);
    if (code != WISP_OK)
        fprintf(stderr, "# %s: %s\n", config, err.msg);
    CHECK_INT(code, WISP_OK);
}

static void expect_bad(const char *config, wisp_errcode_t want, const char *msg_part)
{
    wisp_err_t err;
    int code = apply_code(config, true, &err);
    if (code != (int)want || (msg_part && strstr(err.msg, msg_part) == NULL))
        fprintf(stderr, "# %s: code %d: %s\n", config, code, code ? err.msg : "");
    CHECK_INT(code, want);
    if (msg_part)
        CHECK(strstr(err.msg, msg_part) != NULL);
}

TEST(names)
{
    CHECK(wisp_fn_name_valid("a"));
    CHECK(wisp_fn_name_valid("Hello_World-2"));
    char max[65];
    memset(max, 'x', 64);
    max[64] = '\0';
    CHECK(wisp_fn_name_valid(max));
    char over[66];
    memset(over, 'x', 65);
    over[65] = '\0';
    CHECK(!wisp_fn_name_valid(over));
    CHECK(!wisp_fn_name_valid(""));
    CHECK(!wisp_fn_name_valid(NULL));
    CHECK(!wisp_fn_name_valid("a.b"));
    CHECK(!wisp_fn_name_valid("a/b"));
    CHECK(!wisp_fn_name_valid("../x"));
    CHECK(!wisp_fn_name_valid("sp ace"));
    CHECK(!wisp_fn_name_valid("caf\xc3\xa9"));
}

TEST(defaults_and_json_view)
{
    wisp_fn_t *fn = wisp_fn_new();
    snprintf(fn->name, sizeof fn->name, "hello");
    cleanup_json json_t *c = J("{\"runtime\":\"provided\"}");
    wisp_err_t err;
    CHECK(wisp_fn_apply_config(fn, c, true, &err) == 0);
    CHECK_INT(fn->memory_mb, 128);
    CHECK_INT(fn->timeout_s, 3);
    CHECK_INT(fn->tmp_mb, 512);
    CHECK_INT(fn->idle_timeout_s, 300);
    CHECK_INT(fn->min_warm, 0);
    CHECK_INT(fn->concurrency, -1);
    CHECK_STR(fn->handler, "");
    CHECK(json_object_size(fn->env) == 0);
    fn->created_ms = 1700000000123;
    fn->modified_ms = 1700000000456;
    cleanup_json json_t *j = wisp_fn_to_json(fn);
    const char *keys[] = {"name",     "runtime",        "handler",     "memory_mb", "timeout_s",
                          "tmp_mb",   "idle_timeout_s", "concurrency", "min_warm",  "description",
                          "env",      "code_sha256",    "code_size",   "revision",  "created",
                          "modified", "created_ms",     "modified_ms"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(keys); i++) {
        if (json_object_get(j, keys[i]) == NULL)
            fprintf(stderr, "# missing %s\n", keys[i]);
        CHECK(json_object_get(j, keys[i]) != NULL);
    }
    CHECK_INT(json_object_size(j), WISP_ARRAY_LEN(keys));
    CHECK(json_is_null(json_object_get(j, "concurrency")));
    CHECK_STR(json_string_value(json_object_get(j, "created")), "2023-11-14T22:13:20.123Z");
    CHECK_STR(json_string_value(json_object_get(j, "modified")), "2023-11-14T22:13:20.456Z");
    CHECK_INT(json_integer_value(json_object_get(j, "modified_ms")), 1700000000456);

    /* The JSON view reads back into the same function. */
    wisp_fn_t *back;
    CHECK(wisp__fn_from_doc(j, &back, &err) == 0);
    cleanup_json json_t *j2 = wisp_fn_to_json(back);
    CHECK(json_equal(j, j2));
    wisp_fn_t *dup = wisp_fn_dup(back);
    CHECK(dup->env != back->env);
    wisp_fn_free(back);
    fn->concurrency = 5;
    cleanup_json json_t *j3 = wisp_fn_to_json(fn);
    CHECK_INT(json_integer_value(json_object_get(j3, "concurrency")), 5);
    wisp_fn_free(dup);
    wisp_fn_free(fn);
}

TEST(integer_fields)
{
    expect_ok("{\"runtime\":\"provided\",\"memory_mb\":128,\"timeout_s\":900,\"tmp_mb\":10240,"
              "\"idle_timeout_s\":0,\"min_warm\":100,\"concurrency\":1000}");
    expect_ok("{\"runtime\":\"provided\",\"memory_mb\":10240.0,\"timeout_s\":1}");
    const char *m = "memory_mb must be an integer between 128 and 10240";
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":127}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":10241}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":\"256\"}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":256.5}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":null}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":1e300}", WISP_EINVALID, m);
    expect_bad("{\"runtime\":\"provided\",\"memory_mb\":true}", WISP_EINVALID, m);
    const char *t = "timeout_s must be an integer between 1 and 900";
    expect_bad("{\"runtime\":\"provided\",\"timeout_s\":0}", WISP_EINVALID, t);
    expect_bad("{\"runtime\":\"provided\",\"timeout_s\":901}", WISP_EINVALID, t);
    expect_bad("{\"runtime\":\"provided\",\"timeout_s\":[]}", WISP_EINVALID, t);
    expect_bad("{\"runtime\":\"provided\",\"tmp_mb\":511}", WISP_EINVALID,
               "tmp_mb must be an integer between 512 and 10240");
    expect_bad("{\"runtime\":\"provided\",\"tmp_mb\":10241}", WISP_EINVALID, "tmp_mb");
    expect_bad("{\"runtime\":\"provided\",\"idle_timeout_s\":-1}", WISP_EINVALID,
               "idle_timeout_s must be an integer between 0 and 86400");
    expect_bad("{\"runtime\":\"provided\",\"idle_timeout_s\":86401}", WISP_EINVALID,
               "idle_timeout_s");
    expect_bad("{\"runtime\":\"provided\",\"min_warm\":101}", WISP_EINVALID,
               "min_warm must be an integer between 0 and 100");
    expect_bad("{\"runtime\":\"provided\",\"min_warm\":-1}", WISP_EINVALID, "min_warm");
    const char *c = "concurrency must be null or an integer between 0 and 1000";
    expect_bad("{\"runtime\":\"provided\",\"concurrency\":-1}", WISP_EINVALID, c);
    expect_bad("{\"runtime\":\"provided\",\"concurrency\":1001}", WISP_EINVALID, c);
    expect_bad("{\"runtime\":\"provided\",\"concurrency\":\"10\"}", WISP_EINVALID, c);
    expect_ok("{\"runtime\":\"provided\",\"concurrency\":null}");
    expect_ok("{\"runtime\":\"provided\",\"concurrency\":0}");
    /* min_warm may not exceed a set concurrency. */
    expect_ok("{\"runtime\":\"provided\",\"concurrency\":5,\"min_warm\":5}");
    expect_ok("{\"runtime\":\"provided\",\"min_warm\":50}");
    expect_bad("{\"runtime\":\"provided\",\"concurrency\":2,\"min_warm\":3}", WISP_EINVALID,
               "min_warm (3) must not exceed concurrency (2)");
}

TEST(runtime_and_handler)
{
    expect_bad("{}", WISP_EINVALID, "runtime is required");
    expect_bad("{\"runtime\":\"java\"}", WISP_EINVALID,
               "runtime must be one of provided, python3, nodejs");
    expect_bad("{\"runtime\":3}", WISP_EINVALID, "runtime must be one of");
    expect_bad("{\"runtime\":\"python3\"}", WISP_EINVALID,
               "handler is required for runtime python3");
    expect_bad("{\"runtime\":\"nodejs\"}", WISP_EINVALID, "handler is required for runtime nodejs");
    expect_ok("{\"runtime\":\"python3\",\"handler\":\"app.handler\"}");
    expect_ok("{\"runtime\":\"python3\",\"handler\":\"pkg.sub.app.handler\"}");
    expect_ok("{\"runtime\":\"python3\",\"handler\":\"src/lambda_function.lambda_handler\"}");
    const char *bad_py[] = {"app",          "app.",           ".handler",         "app.1handler",
                            "a-b.handler",  "../app.handler", "/abs/app.handler", "app.han dler",
                            "app..handler", "..null/x.y",     "my-dir/app.h",     "src//app.h"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(bad_py); i++) {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"runtime\":\"python3\",\"handler\":\"%s\"}", bad_py[i]);
        expect_bad(cfg, WISP_EINVALID, "is not valid for python3");
    }
    expect_ok("{\"runtime\":\"nodejs\",\"handler\":\"index.handler\"}");
    expect_ok("{\"runtime\":\"nodejs\",\"handler\":\"src/my-app.main\"}");
    expect_ok("{\"runtime\":\"nodejs\",\"handler\":\"index.handlers.$main\"}");
    const char *bad_node[] = {"index",    ".handler", "index.", "../index.handler",
                              "in dex.h", "index.1a"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(bad_node); i++) {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"runtime\":\"nodejs\",\"handler\":\"%s\"}", bad_node[i]);
        expect_bad(cfg, WISP_EINVALID, "is not valid for nodejs");
    }
    expect_ok("{\"runtime\":\"provided\",\"handler\":\"anything.goes:here/x\"}");
    expect_bad("{\"runtime\":\"provided\",\"handler\":\"has space\"}", WISP_EINVALID, "handler");
    expect_bad("{\"runtime\":\"provided\",\"handler\":42}", WISP_EINVALID,
               "handler must be a string");
    char long_handler[200];
    memset(long_handler, 'a', 129);
    long_handler[129] = '\0';
    char cfg[512];
    snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"handler\":\"%s\"}", long_handler);
    expect_bad(cfg, WISP_EINVALID, "handler must be at most 128 characters");
    expect_bad("{\"runtime\":\"provided\",\"handler\":\"a\\u0000b\"}", WISP_EINVALID, "NUL");
}

TEST(description_env_unknown)
{
    char desc[300];
    memset(desc, 'd', 256);
    desc[256] = '\0';
    char cfg[8192];
    snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"description\":\"%s\"}", desc);
    expect_ok(cfg);
    desc[256] = 'd';
    desc[257] = '\0';
    snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"description\":\"%s\"}", desc);
    expect_bad(cfg, WISP_EINVALID, "description must be at most 256 characters");
    expect_bad("{\"runtime\":\"provided\",\"description\":5}", WISP_EINVALID,
               "description must be a string");

    expect_ok("{\"runtime\":\"provided\",\"env\":{\"A\":\"1\",\"_b2\":\"\",\"PATH\":\"/x\"}}");
    expect_ok("{\"runtime\":\"provided\",\"env\":null}");
    expect_bad("{\"runtime\":\"provided\",\"env\":[]}", WISP_EINVALID,
               "env must be an object of string values");
    expect_bad("{\"runtime\":\"provided\",\"env\":{\"A\":1}}", WISP_EINVALID,
               "the value of A must be a string");
    expect_bad("{\"runtime\":\"provided\",\"env\":{\"1A\":\"x\"}}", WISP_EINVALID,
               "\"1A\" is not a valid variable name");
    expect_bad("{\"runtime\":\"provided\",\"env\":{\"A-B\":\"x\"}}", WISP_EINVALID,
               "not a valid variable name");
    expect_bad("{\"runtime\":\"provided\",\"env\":{\"\":\"x\"}}", WISP_EINVALID,
               "not a valid variable name");
    expect_bad("{\"runtime\":\"provided\",\"env\":{\"A\":\"x\\u0000y\"}}", WISP_EINVALID, "NUL");
    const char *reserved[] = {"AWS_LAMBDA_RUNTIME_API",   "_HANDLER",
                              "LAMBDA_TASK_ROOT",         "AWS_REGION",
                              "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_ANYTHING",
                              "AWS_SECRET_ACCESS_KEY"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(reserved); i++) {
        snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"env\":{\"%s\":\"x\"}}", reserved[i]);
        expect_bad(cfg, WISP_EINVALID, "is reserved");
    }
    /* 4 KiB of names and values: exactly at the limit passes, one more is LIMIT. */
    char big[4200];
    memset(big, 'v', 4095);
    big[4095] = '\0';
    snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"env\":{\"K\":\"%s\"}}", big);
    expect_ok(cfg);
    big[4095] = 'v';
    big[4096] = '\0';
    snprintf(cfg, sizeof cfg, "{\"runtime\":\"provided\",\"env\":{\"K\":\"%s\"}}", big);
    expect_bad(cfg, WISP_ELIMIT, "env is too large");

    expect_bad("{\"runtime\":\"provided\",\"memroy_mb\":256}", WISP_EINVALID,
               "unknown field \"memroy_mb\"");
    expect_bad("{\"runtime\":\"provided\",\"revision\":\"x\"}", WISP_EINVALID,
               "revision cannot be set");
    expect_bad("{\"runtime\":\"provided\",\"code_sha256\":\"x\"}", WISP_EINVALID, "code_sha256");
    expect_bad("[1,2]", WISP_EINVALID, "configuration must be a JSON object");
    expect_ok("{\"runtime\":\"provided\",\"name\":\"f\"}");
    expect_bad("{\"runtime\":\"provided\",\"name\":\"g\"}", WISP_EINVALID, "does not match");
    expect_bad("{\"runtime\":\"provided\",\"name\":\"bad name\"}", WISP_EINVALID, "name must");
}

TEST(update_keeps_other_fields)
{
    wisp_fn_t *fn = wisp_fn_new();
    snprintf(fn->name, sizeof fn->name, "f");
    cleanup_json json_t *c1 = J("{\"runtime\":\"python3\",\"handler\":\"app.h\",\"memory_mb\":512,"
                                "\"env\":{\"A\":\"1\"},\"concurrency\":4}");
    wisp_err_t err;
    CHECK(wisp_fn_apply_config(fn, c1, true, &err) == 0);
    cleanup_json json_t *c2 = J("{\"timeout_s\":30}");
    CHECK(wisp_fn_apply_config(fn, c2, false, &err) == 0);
    CHECK_INT(fn->memory_mb, 512);
    CHECK_INT(fn->timeout_s, 30);
    CHECK_INT(fn->concurrency, 4);
    CHECK_STR(fn->runtime, "python3");
    CHECK_STR(json_string_value(json_object_get(fn->env, "A")), "1");
    /* Switching runtime re-checks the kept handler against the new runtime. */
    cleanup_json json_t *c3 = J("{\"runtime\":\"nodejs\"}");
    CHECK(wisp_fn_apply_config(fn, c3, false, &err) == 0); /* app.h is a valid node handler */
    cleanup_json json_t *c4 = J("{\"handler\":\"\",\"runtime\":\"python3\"}");
    CHECK(wisp_fn_apply_config(fn, c4, false, &err) == -1);
    CHECK(strstr(err.msg, "handler is required") != NULL);
    /* concurrency back to unset. */
    wisp_fn_t *g = wisp_fn_new();
    snprintf(g->runtime, sizeof g->runtime, "provided");
    g->concurrency = 3;
    cleanup_json json_t *c5 = J("{\"concurrency\":null}");
    CHECK(wisp_fn_apply_config(g, c5, false, &err) == 0);
    CHECK_INT(g->concurrency, -1);
    wisp_fn_free(g);
    wisp_fn_free(fn);
}

/* ---- deploys on a real loop ---- */

struct env {
    char dir[64];
    char *code;
    uv_loop_t loop;
    wisp_store_t *st;
    wisp_registry_t *reg;
};

static void env_open(struct env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/wisp-reg-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    e->code = xasprintf("%s/code", e->dir);
    CHECK(uv_loop_init(&e->loop) == 0);
    cleanup_free char *db = xasprintf("%s/wisp.db", e->dir);
    wisp_err_t err;
    e->st = wisp_store_open(db, &err);
    CHECK(e->st != NULL);
    e->reg = wisp_registry_new(&e->loop, e->st, e->dir, &err);
    CHECK(e->reg != NULL);
}

static void env_close(struct env *e)
{
    wisp_registry_free(e->reg);
    CHECK(uv_run(&e->loop, UV_RUN_DEFAULT) == 0);
    CHECK(uv_loop_close(&e->loop) == 0);
    wisp_store_close(e->st);
    CHECK(wisp__package_remove(e->dir, NULL) == 0);
    free(e->code);
    wisp_metrics_reset();
}

/* What a deploy callback saw. */
struct outcome {
    int calls;
    bool ok, created;
    wisp_err_t err;
    wisp_fn_t *fn;
};

static void deploy_cb(void *data, const wisp_fn_t *fn, bool created, const wisp_err_t *err)
{
    struct outcome *o = data;
    o->calls++;
    o->ok = fn != NULL;
    o->created = created;
    if (err)
        o->err = *err;
    wisp_fn_free(o->fn);
    o->fn = fn ? wisp_fn_dup(fn) : NULL;
}

static void outcome_clear(struct outcome *o)
{
    wisp_fn_free(o->fn);
    memset(o, 0, sizeof *o);
}

/* A zip in memory. */
struct zb_buf {
    char *buf;
    size_t used;
};

/* Deploy and run the loop until done; returns the callback's view
 * (calls == -1 if the deploy was rejected at once). */
static struct outcome deploy(struct env *e, const char *name, const char *config,
                             const struct zb_buf *zip, wisp_deploy_mode_t mode)
{
    struct outcome o = {0};
    cleanup_json json_t *c = config ? J(config) : NULL;
    wisp_err_t err;
    int rc = wisp_registry_deploy(e->reg, name, c, zip ? zip->buf : NULL, zip ? zip->used : 0, mode,
                                  deploy_cb, &o, &err);
    if (rc < 0) {
        o.err = err;
        o.calls = -1; /* rejected at once */
        return o;
    }
    CHECK_INT(o.calls, 0); /* never before deploy returns */
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK_INT(o.calls, 1);
    if (!o.ok)
        fprintf(stderr, "# deploy %s failed: %s\n", name, o.err.msg);
    return o;
}

/* Deploy that must succeed (upsert); the outcome is not needed after. */
static void upsert_ok(struct env *e, const char *name, const char *config, const struct zb_buf *zip)
{
    struct outcome o = deploy(e, name, config, zip, WISP_DEPLOY_UPSERT);
    CHECK(o.ok);
    outcome_clear(&o);
}

/* A zip with an executable bootstrap printing tag, plus a filler file. */
static struct zb_buf make_zip(const char *tag, size_t filler)
{
    struct zb_buf z = {xmalloc(filler + (1 << 16)), 0};
    struct archive *a = archive_write_new();
    CHECK(archive_write_set_format_zip(a) == ARCHIVE_OK);
    CHECK(archive_write_open_memory(a, z.buf, filler + (1 << 16), &z.used) == ARCHIVE_OK);
    cleanup_free char *script = xasprintf("#!/bin/sh\necho %s\n", tag);
    struct archive_entry *en = archive_entry_new();
    archive_entry_set_pathname(en, "bootstrap");
    archive_entry_set_filetype(en, AE_IFREG);
    archive_entry_set_perm(en, 0755);
    archive_entry_set_size(en, (la_int64_t)strlen(script));
    CHECK(archive_write_header(a, en) == ARCHIVE_OK);
    CHECK(archive_write_data(a, script, strlen(script)) == (la_ssize_t)strlen(script));
    archive_entry_free(en);
    if (filler > 0) {
        char *data = xmalloc(filler);
        unsigned seed = 7;
        for (size_t i = 0; i < filler; i++) {
            seed = seed * 1103515245u + 12345u;
            data[i] = (char)(seed >> 16);
        }
        en = archive_entry_new();
        archive_entry_set_pathname(en, "data/filler.bin");
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        archive_entry_set_size(en, (la_int64_t)filler);
        CHECK(archive_write_header(a, en) == ARCHIVE_OK);
        CHECK(archive_write_data(a, data, filler) == (la_ssize_t)filler);
        archive_entry_free(en);
        free(data);
    }
    CHECK(archive_write_close(a) == ARCHIVE_OK);
    archive_write_free(a);
    return z;
}

static bool pkg_exists(struct env *e, const char *sha)
{
    cleanup_free char *dir = xasprintf("%s/%s", e->code, sha);
    cleanup_free char *zip = xasprintf("%s/%s.zip", e->code, sha);
    bool d = access(dir, F_OK) == 0, z = access(zip, F_OK) == 0;
    CHECK(d == z); /* tree and zip live and go together */
    return d;
}

static int code_entries(struct env *e)
{
    DIR *d = opendir(e->code);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
            n++;
    closedir(d);
    return n;
}

struct changes {
    int n;
    char last[65];
    bool last_deleted;
    char rev[37];
};

static void change_cb(void *data, const char *name, const wisp_fn_t *fn)
{
    struct changes *c = data;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", name);
    c->last_deleted = fn == NULL;
    snprintf(c->rev, sizeof c->rev, "%s", fn ? fn->revision : "");
}

TEST(deploy_create_update_delete)
{
    struct env e;
    env_open(&e);
    struct changes ch = {0};
    wisp_registry_on_change(e.reg, change_cb, &ch);

    /* Create without code. */
    struct outcome o = deploy(&e, "hello", "{\"runtime\":\"provided\"}", NULL, WISP_DEPLOY_UPSERT);
    CHECK(o.ok && o.created);
    CHECK_STR(o.fn->code_sha256, "");
    CHECK_INT(strlen(o.fn->revision), 36);
    CHECK(o.fn->created_ms > 0 && o.fn->created_ms == o.fn->modified_ms);
    CHECK_INT(ch.n, 1);
    CHECK_STR(ch.rev, o.fn->revision);
    char rev1[37];
    snprintf(rev1, sizeof rev1, "%s", o.fn->revision);
    outcome_clear(&o);
    CHECK_INT(wisp_registry_count(e.reg), 1);

    /* Rejected at once: no callback. */
    o = deploy(&e, "hello", "{\"runtime\":\"provided\"}", NULL, WISP_DEPLOY_CREATE_ONLY);
    CHECK_INT(o.calls, -1);
    CHECK_INT(o.err.code, WISP_ECONFLICT);
    o = deploy(&e, "nobody", "{\"memory_mb\":256}", NULL, WISP_DEPLOY_UPDATE_ONLY);
    CHECK_INT(o.calls, -1);
    CHECK_INT(o.err.code, WISP_ENOTFOUND);
    o = deploy(&e, "hello", "{\"memory_mb\":1}", NULL, WISP_DEPLOY_UPSERT);
    CHECK_INT(o.calls, -1);
    CHECK_INT(o.err.code, WISP_EINVALID);
    CHECK(strstr(o.err.msg, "memory_mb") != NULL);
    o = deploy(&e, "bad name", "{\"runtime\":\"provided\"}", NULL, WISP_DEPLOY_UPSERT);
    CHECK_INT(o.calls, -1);
    CHECK_INT(o.err.code, WISP_EINVALID);
    o = deploy(&e, "newfn", "{\"memory_mb\":256}", NULL, WISP_DEPLOY_UPSERT);
    CHECK_INT(o.calls, -1);
    CHECK(strstr(o.err.msg, "runtime is required") != NULL);
    CHECK_INT(ch.n, 1);

    /* Add code. */
    struct zb_buf z = make_zip("v1", 1000);
    char sha[65];
    wisp__sha256_hex(z.buf, z.used, sha);
    o = deploy(&e, "hello", NULL, &z, WISP_DEPLOY_UPDATE_ONLY);
    CHECK(o.ok && !o.created);
    CHECK_STR(o.fn->code_sha256, sha);
    CHECK_INT(o.fn->code_size, z.used);
    CHECK(strcmp(o.fn->revision, rev1) != 0);
    CHECK(o.fn->modified_ms >= o.fn->created_ms);
    char dir[4096];
    wisp_registry_code_dir(e.reg, sha, dir, sizeof dir);
    cleanup_free char *boot = xasprintf("%s/bootstrap", dir);
    struct stat sb;
    CHECK(stat(boot, &sb) == 0);
    CHECK_INT(sb.st_mode & 0777, 0555);
    CHECK(pkg_exists(&e, sha));
    char rev2[37];
    snprintf(rev2, sizeof rev2, "%s", o.fn->revision);
    outcome_clear(&o);

    /* Config-only update keeps the code, changes the revision. */
    o = deploy(&e, "hello", "{\"memory_mb\":256,\"env\":{\"A\":\"b\"}}", NULL, WISP_DEPLOY_UPSERT);
    CHECK(o.ok);
    CHECK_STR(o.fn->code_sha256, sha);
    CHECK_INT(o.fn->memory_mb, 256);
    CHECK(strcmp(o.fn->revision, rev2) != 0);
    char rev3[37];
    snprintf(rev3, sizeof rev3, "%s", o.fn->revision);
    outcome_clear(&o);
    int nchanges = ch.n;

    /* The same again changes nothing: same revision, no listener call. */
    o = deploy(&e, "hello", "{\"memory_mb\":256}", &z, WISP_DEPLOY_UPSERT);
    CHECK(o.ok && !o.created);
    CHECK_STR(o.fn->revision, rev3);
    CHECK_INT(ch.n, nchanges);
    outcome_clear(&o);

    /* Stored state matches. */
    wisp_fn_t *got;
    wisp_err_t err;
    CHECK(wisp_registry_get(e.reg, "hello", &got, &err) == 0);
    CHECK_STR(got->revision, rev3);
    CHECK_STR(got->code_sha256, sha);
    CHECK_STR(json_string_value(json_object_get(got->env, "A")), "b");
    wisp_fn_free(got);
    CHECK(wisp_registry_get(e.reg, "nope", &got, &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);

    /* A bad package fails through the callback and changes nothing. */
    struct zb_buf junk = {xstrdup("definitely not a zip"), 20};
    o = deploy(&e, "hello", NULL, &junk, WISP_DEPLOY_UPSERT);
    CHECK_INT(o.calls, 1);
    CHECK(!o.ok);
    CHECK_INT(o.err.code, WISP_EINVALID);
    CHECK(strstr(o.err.msg, "zip") != NULL);
    CHECK(wisp_registry_get(e.reg, "hello", &got, &err) == 0);
    CHECK_STR(got->revision, rev3);
    wisp_fn_free(got);
    free(junk.buf);
    /* Oversized packages are refused before any copy. */
    struct zb_buf huge = {xcalloc(1, WISP_ZIP_MAX + 1), WISP_ZIP_MAX + 1};
    o = deploy(&e, "hello", NULL, &huge, WISP_DEPLOY_UPSERT);
    CHECK_INT(o.calls, -1);
    CHECK_INT(o.err.code, WISP_ELIMIT);
    free(huge.buf);

    /* List and delete. */
    o = deploy(&e, "another", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", NULL,
               WISP_DEPLOY_CREATE_ONLY);
    CHECK(o.ok && o.created);
    outcome_clear(&o);
    wisp_fn_t **list;
    size_t n;
    CHECK(wisp_registry_list(e.reg, NULL, 10, &list, &n, &err) == 0);
    CHECK_INT(n, 2);
    CHECK_STR(list[0]->name, "another");
    CHECK_STR(list[1]->name, "hello");
    wisp_fn_list_free(list, n);
    CHECK(wisp_registry_list(e.reg, "another", 10, &list, &n, &err) == 0);
    CHECK_INT(n, 1);
    wisp_fn_list_free(list, n);

    wisp_log_rec_t line = {"hello", "r1", 1, "stdout", "hi"};
    CHECK(wisp_store_log_append(e.st, &line, 1, 0, &err) == 0);
    CHECK(wisp_registry_delete(e.reg, "hello", &err) == 0);
    CHECK(ch.last_deleted);
    CHECK_STR(ch.last, "hello");
    CHECK(wisp_registry_delete(e.reg, "hello", &err) == -1);
    CHECK_INT(err.code, WISP_ENOTFOUND);
    json_t *logs;
    CHECK(wisp_store_log_query(e.st, "hello", 0, 0, NULL, 0, &logs, &err) == 0);
    CHECK_INT(json_array_size(logs), 0);
    json_decref(logs);
    CHECK_INT(wisp_registry_count(e.reg), 1);
    /* Its package was collected. */
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(!pkg_exists(&e, sha));

    /* Metrics. */
    wisp_buf_t out = WISP_BUF_INIT(0);
    wisp_metrics_render(&out);
    CHECK(strstr(out.data, "wisp_functions 1\n") != NULL);
    CHECK(strstr(out.data, "wisp_deploys_total{outcome=\"success\"} 5\n") != NULL);
    CHECK(strstr(out.data, "wisp_deploys_total{outcome=\"invalid\"}") != NULL);
    CHECK(strstr(out.data, "wisp_deploys_total{outcome=\"conflict\"} 1\n") != NULL);
    wisp_buf_free(&out);
    free(z.buf);
    env_close(&e);
}

TEST(deploys_of_one_function_are_ordered)
{
    struct env e;
    env_open(&e);
    /* A slow deploy (big package) then a fast one: the later one wins. */
    struct zb_buf big = make_zip("big", 8 << 20);
    struct zb_buf small = make_zip("small", 0);
    char sha_small[65];
    wisp__sha256_hex(small.buf, small.used, sha_small);
    cleanup_json json_t *cfg = J("{\"runtime\":\"provided\"}");
    struct outcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0};
    wisp_err_t err;
    CHECK(wisp_registry_deploy(e.reg, "f", cfg, big.buf, big.used, WISP_DEPLOY_UPSERT, deploy_cb,
                               &o1, &err) == 0);
    CHECK(wisp_registry_deploy(e.reg, "f", NULL, small.buf, small.used, WISP_DEPLOY_UPSERT,
                               deploy_cb, &o2, &err) == 0);
    /* Two creates of another function: both accepted, the second conflicts. */
    CHECK(wisp_registry_deploy(e.reg, "g", cfg, NULL, 0, WISP_DEPLOY_CREATE_ONLY, deploy_cb, &o3,
                               &err) == 0);
    CHECK(wisp_registry_deploy(e.reg, "g", cfg, NULL, 0, WISP_DEPLOY_CREATE_ONLY, deploy_cb, &o4,
                               &err) == 0);
    /* The caller's buffers may go away at once: the registry copied them. */
    memset(big.buf, 0, big.used);
    free(big.buf);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(o1.ok && o1.created);
    CHECK(o2.ok && !o2.created);
    CHECK_STR(o2.fn->code_sha256, sha_small);
    CHECK(o3.ok && o3.created);
    CHECK_INT(o4.calls, 1);
    CHECK(!o4.ok);
    CHECK_INT(o4.err.code, WISP_ECONFLICT);
    wisp_fn_t *f;
    CHECK(wisp_registry_get(e.reg, "f", &f, &err) == 0);
    CHECK_STR(f->code_sha256, sha_small);
    CHECK_STR(f->revision, o2.fn->revision);
    wisp_fn_free(f);
    /* The big package, replaced, was collected once the queue drained. */
    CHECK_STR(o1.fn->code_sha256, o1.fn->code_sha256);
    CHECK(!pkg_exists(&e, o1.fn->code_sha256));
    CHECK(pkg_exists(&e, sha_small));
    CHECK_INT(code_entries(&e), 2);
    outcome_clear(&o1);
    outcome_clear(&o2);
    outcome_clear(&o3);
    outcome_clear(&o4);
    free(small.buf);
    env_close(&e);
}

TEST(packages_dedupe_and_gc_with_holds)
{
    struct env e;
    env_open(&e);
    struct zb_buf a = make_zip("a", 100), b = make_zip("b", 100), c = make_zip("c", 100);
    char sa[65], sb[65], sc[65];
    wisp__sha256_hex(a.buf, a.used, sa);
    wisp__sha256_hex(b.buf, b.used, sb);
    wisp__sha256_hex(c.buf, c.used, sc);
    const char *cfg = "{\"runtime\":\"provided\"}";
    struct outcome o;
    upsert_ok(&e, "f1", cfg, &a);
    o = deploy(&e, "f2", cfg, &a, WISP_DEPLOY_UPSERT);
    CHECK(o.ok);
    CHECK_STR(o.fn->code_sha256, sa);
    outcome_clear(&o);
    CHECK_INT(code_entries(&e), 2); /* one tree, one zip */
    CHECK_INT(wisp_store_pkg_refs(e.st, sa), 2);

    /* f1 moves to b: a is still used by f2. */
    upsert_ok(&e, "f1", NULL, &b);
    CHECK(pkg_exists(&e, sa));
    CHECK(pkg_exists(&e, sb));
    /* An env holds a; f2 is deleted: a stays while held. */
    wisp_registry_pkg_hold(e.reg, sa);
    wisp_registry_pkg_hold(e.reg, sa);
    wisp_err_t err;
    CHECK(wisp_registry_delete(e.reg, "f2", &err) == 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(pkg_exists(&e, sa));
    wisp_registry_pkg_release(e.reg, sa);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(pkg_exists(&e, sa));
    wisp_registry_pkg_release(e.reg, sa);
    CHECK(!pkg_exists(&e, sa)); /* moved away at once */
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_INT(code_entries(&e), 2); /* b only; the trash is gone too */

    /* Holding the current package of a function and changing its code. */
    upsert_ok(&e, "f3", cfg, &c);
    wisp_registry_pkg_hold(e.reg, sc);
    upsert_ok(&e, "f3", NULL, &b);
    CHECK(pkg_exists(&e, sc));
    wisp_registry_pkg_release(e.reg, sc);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(!pkg_exists(&e, sc));
    CHECK(pkg_exists(&e, sb));
    CHECK_INT(wisp_store_pkg_refs(e.st, sb), 2);

    /* Envs of a package that is still its function's code come and go (the
     * registry remembers it is referenced); once the function is deleted,
     * the last release collects it all the same. */
    upsert_ok(&e, "f4", cfg, &c);
    for (int i = 0; i < 3; i++) {
        wisp_registry_pkg_hold(e.reg, sc);
        wisp_registry_pkg_release(e.reg, sc);
        CHECK(pkg_exists(&e, sc));
    }
    wisp_registry_pkg_hold(e.reg, sc);
    CHECK(wisp_registry_delete(e.reg, "f4", &err) == 0);
    CHECK(pkg_exists(&e, sc));
    wisp_registry_pkg_release(e.reg, sc);
    CHECK(!pkg_exists(&e, sc));
    /* The same after the function moved to other code while held. */
    upsert_ok(&e, "f5", cfg, &c);
    wisp_registry_pkg_hold(e.reg, sc);
    wisp_registry_pkg_release(e.reg, sc);
    wisp_registry_pkg_hold(e.reg, sc);
    upsert_ok(&e, "f5", NULL, &b);
    CHECK(pkg_exists(&e, sc));
    wisp_registry_pkg_release(e.reg, sc);
    CHECK(!pkg_exists(&e, sc));
    uv_run(&e.loop, UV_RUN_DEFAULT);
    free(a.buf);
    free(b.buf);
    free(c.buf);
    env_close(&e);
}

TEST(same_package_deployed_concurrently)
{
    struct env e;
    env_open(&e);
    /* Several functions with the same new zip at once: extractions race on the
     * thread pool; every deploy succeeds and one tree is kept. */
    struct zb_buf z = make_zip("shared", 2 << 20);
    char sha[65];
    wisp__sha256_hex(z.buf, z.used, sha);
    cleanup_json json_t *cfg = J("{\"runtime\":\"provided\"}");
    struct outcome o[6];
    memset(o, 0, sizeof o);
    wisp_err_t err;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "fn%d", i);
        CHECK(wisp_registry_deploy(e.reg, name, cfg, z.buf, z.used, WISP_DEPLOY_CREATE_ONLY,
                                   deploy_cb, &o[i], &err) == 0);
    }
    uv_run(&e.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 6; i++) {
        CHECK(o[i].ok && o[i].created);
        CHECK_STR(o[i].fn->code_sha256, sha);
        outcome_clear(&o[i]);
    }
    CHECK_INT(code_entries(&e), 2);
    CHECK_INT(wisp_store_pkg_refs(e.st, sha), 6);
    cleanup_free char *filler = xasprintf("%s/%s/data/filler.bin", e.code, sha);
    struct stat st;
    CHECK(stat(filler, &st) == 0);
    CHECK_INT(st.st_size, 2 << 20);
    free(z.buf);
    env_close(&e);
}

TEST(orphans_swept_at_start)
{
    struct env e;
    env_open(&e);
    struct zb_buf a = make_zip("a", 10);
    char sa[65];
    wisp__sha256_hex(a.buf, a.used, sa);
    struct outcome o = deploy(&e, "keep", "{\"runtime\":\"provided\"}", &a, WISP_DEPLOY_UPSERT);
    CHECK(o.ok);
    outcome_clear(&o);
    wisp_registry_free(e.reg);
    uv_run(&e.loop, UV_RUN_DEFAULT);

    /* What a crash could leave: an unreferenced package, half-done
     * extraction and removal folders, a temporary zip; plus a file that is
     * not ours, which must stay. */
    const char *orphan = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    cleanup_free char *od = xasprintf("%s/%s", e.code, orphan);
    cleanup_free char *odf = xasprintf("%s/%s/file", e.code, orphan);
    cleanup_free char *oz = xasprintf("%s/%s.zip", e.code, orphan);
    cleanup_free char *tmpd = xasprintf("%s/%s.tmp-abcdef", e.code, orphan);
    cleanup_free char *trash = xasprintf("%s/.trash-1234", e.code);
    cleanup_free char *trashf = xasprintf("%s/.trash-1234/x", e.code);
    cleanup_free char *tmpz = xasprintf("%s/.tmp-0123-abcdef", e.code);
    cleanup_free char *mine = xasprintf("%s/README", e.code);
    CHECK(mkdir(od, 0755) == 0 && mkdir(tmpd, 0755) == 0 && mkdir(trash, 0755) == 0);
    CHECK(wisp_write_file(odf, "x", 1, 0444, NULL) == 0);
    CHECK(wisp_write_file(trashf, "x", 1, 0444, NULL) == 0);
    CHECK(chmod(od, 0555) == 0);
    CHECK(wisp_write_file(oz, "x", 1, 0444, NULL) == 0);
    CHECK(wisp_write_file(tmpz, "x", 1, 0600, NULL) == 0);
    CHECK(wisp_write_file(mine, "x", 1, 0600, NULL) == 0);
    wisp_err_t err;
    e.reg = wisp_registry_new(&e.loop, e.st, e.dir, &err);
    CHECK(e.reg != NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK(access(od, F_OK) != 0);
    CHECK(access(oz, F_OK) != 0);
    CHECK(access(tmpd, F_OK) != 0);
    CHECK(access(trash, F_OK) != 0);
    CHECK(access(tmpz, F_OK) != 0);
    CHECK(access(mine, F_OK) == 0);
    CHECK(pkg_exists(&e, sa));
    CHECK_INT(code_entries(&e), 3);
    free(a.buf);
    env_close(&e);
}

TEST(free_with_deploy_in_flight)
{
    struct env e;
    env_open(&e);
    struct zb_buf big = make_zip("big", 4 << 20);
    cleanup_json json_t *cfg = J("{\"runtime\":\"provided\"}");
    struct outcome o1 = {0}, o2 = {0};
    wisp_err_t err;
    CHECK(wisp_registry_deploy(e.reg, "f", cfg, big.buf, big.used, WISP_DEPLOY_UPSERT, deploy_cb,
                               &o1, &err) == 0);
    CHECK(wisp_registry_deploy(e.reg, "f", cfg, NULL, 0, WISP_DEPLOY_UPSERT, deploy_cb, &o2,
                               &err) == 0);
    wisp_registry_free(e.reg);
    e.reg = NULL;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    /* Dropped without callbacks; nothing stored. */
    CHECK_INT(o1.calls, 0);
    CHECK_INT(o2.calls, 0);
    CHECK_INT(wisp_store_fn_count(e.st), 0);
    free(big.buf);
    env_close(&e);
}

TAP_MAIN(CASE(names), CASE(defaults_and_json_view), CASE(integer_fields), CASE(runtime_and_handler),
         CASE(description_env_unknown), CASE(update_keeps_other_fields),
         CASE(deploy_create_update_delete), CASE(deploys_of_one_function_are_ordered),
         CASE(packages_dedupe_and_gc_with_holds), CASE(same_package_deployed_concurrently),
         CASE(orphans_swept_at_start), CASE(free_with_deploy_in_flight))
