/* test_cli.c - unit tests for the CLI's parts that need no daemon: option
 * parsing, name derivation, runtime detection, folder zipping (read back
 * with libarchive), and the HTTP client against a canned server on a real
 * loopback socket. */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "core/util.h"
#include "tap.h"

/* ---- helpers ---- */

/* A writable argv from a NULL-terminated list (getopt permutes it). */
static char **make_argv(int *argc, ...)
{
    va_list ap;
    char **argv = xcalloc(64, sizeof *argv);
    int n = 0;
    va_start(ap, argc);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && n < 63)
        argv[n++] = xstrdup(s);
    va_end(ap);
    *argc = n;
    return argv;
}

static void free_argv(char **argv, int argc)
{
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static char *make_tmpdir(void)
{
    char *dir = xstrdup("/tmp/wisp-test-cli-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    return dir;
}

static void write_file(const char *dir, const char *rel, const char *content, int mode)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    fputs(content, f);
    fclose(f);
    CHECK(chmod(p, mode) == 0);
}

static void make_subdir(const char *dir, const char *rel)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, rel);
    CHECK(mkdir(p, 0755) == 0);
}

static void make_symlink(const char *dir, const char *rel, const char *target)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, rel);
    CHECK(symlink(target, p) == 0);
}

/* ---- option parsing ---- */

TEST(deploy_options_parse)
{
    int argc;
    char **argv = make_argv(&argc, "deploy", "--env", "A=1", "./fn", "--memory", "256", "--env",
                            "B=", "--env=A=x=y", "--timeout", "30", "--concurrency", "none",
                            "--json", "--admin", "http://h:1/", "--description", "hi", NULL);
    wisp_cli_t cli = {0};
    wisp_cli_deploy_opts_t o;
    wisp_err_t err;
    CHECK_INT(wisp__cli_parse_deploy(&cli, argc, argv, &o, &err), 0);
    CHECK_STR(o.path, "./fn");
    CHECK_INT(o.memory_mb, 256);
    CHECK_INT(o.timeout_s, 30);
    CHECK_INT(o.tmp_mb, -1);
    CHECK_INT(o.concurrency, -2);
    CHECK(cli.json);
    CHECK_STR(cli.admin_opt, "http://h:1/");
    CHECK_STR(json_string_value(json_object_get(o.env, "A")), "x=y");
    CHECK_STR(json_string_value(json_object_get(o.env, "B")), "");
    CHECK_INT(json_object_size(o.env), 2);

    /* Update: only the given fields; create: detected runtime and handler too. */
    cleanup_json json_t *upd = wisp__cli_deploy_config(&o, "python3", "app.handler", false);
    CHECK(json_object_get(upd, "runtime") == NULL);
    CHECK(json_object_get(upd, "handler") == NULL);
    CHECK(json_object_get(upd, "tmp_mb") == NULL);
    CHECK_INT(json_integer_value(json_object_get(upd, "memory_mb")), 256);
    CHECK(json_is_null(json_object_get(upd, "concurrency")));
    CHECK_STR(json_string_value(json_object_get(upd, "description")), "hi");
    cleanup_json json_t *cre = wisp__cli_deploy_config(&o, "python3", "app.handler", true);
    CHECK_STR(json_string_value(json_object_get(cre, "runtime")), "python3");
    CHECK_STR(json_string_value(json_object_get(cre, "handler")), "app.handler");
    wisp__cli_deploy_opts_free(&o);
    wisp__cli_free(&cli);
    free_argv(argv, argc);
}

static int parse_deploy_fails(const char *expect_in_msg, ...)
{
    va_list ap;
    char **argv = xcalloc(32, sizeof *argv);
    int argc = 0;
    va_start(ap, expect_in_msg);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        argv[argc++] = xstrdup(s);
    va_end(ap);
    wisp_cli_t cli = {0};
    wisp_cli_deploy_opts_t o;
    wisp_err_t err;
    int rc = wisp__cli_parse_deploy(&cli, argc, argv, &o, &err);
    wisp__cli_free(&cli);
    free_argv(argv, argc);
    if (rc != -1) {
        fprintf(stderr, "# parse returned %d\n", rc);
        return 0;
    }
    if (err.code != WISP_EINVALID || strstr(err.msg, expect_in_msg) == NULL) {
        fprintf(stderr, "# message: %s\n", err.msg);
        return 0;
    }
    return 1;
}

TEST(deploy_options_reject)
{
    CHECK(parse_deploy_fails("not a whole number", "deploy", "d", "--memory", "12x", NULL));
    CHECK(parse_deploy_fails("not a whole number", "deploy", "d", "--timeout", "-3", NULL));
    CHECK(parse_deploy_fails("needs a number", "deploy", "d", "--memory", "", NULL));
    CHECK(parse_deploy_fails("too large", "deploy", "d", "--min-warm", "99999999999", NULL));
    CHECK(parse_deploy_fails("expected KEY=VALUE", "deploy", "d", "--env", "NOEQ", NULL));
    CHECK(parse_deploy_fails("key is empty", "deploy", "d", "--env", "=v", NULL));
    CHECK(parse_deploy_fails("keys are letters", "deploy", "d", "--env", "1A=v", NULL));
    CHECK(parse_deploy_fails("keys are letters", "deploy", "d", "--env", "A-B=v", NULL));
    CHECK(parse_deploy_fails("unknown option --bogus", "deploy", "d", "--bogus", NULL));
    CHECK(parse_deploy_fails("needs a value", "deploy", "d", "--memory", NULL));
    CHECK(parse_deploy_fails("needs a folder", "deploy", "--memory", "128", NULL));
    CHECK(parse_deploy_fails("not also", "deploy", "a", "b", NULL));
    CHECK(parse_deploy_fails("--name 'a b'", "deploy", "d", "--name", "a b", NULL));

    int argc;
    char **argv = make_argv(&argc, "deploy", "x", "--help", NULL);
    wisp_cli_t cli = {0};
    wisp_cli_deploy_opts_t o;
    wisp_err_t err;
    CHECK_INT(wisp__cli_parse_deploy(&cli, argc, argv, &o, &err), WISP_CLI_GETOPT_HELP);
    wisp__cli_deploy_opts_free(&o);
    wisp__cli_free(&cli);
    free_argv(argv, argc);
}

TEST(numbers_and_since)
{
    int v = -1;
    wisp_err_t err;
    CHECK(wisp__cli_parse_uint("--x", "0", &v, &err) == 0 && v == 0);
    CHECK(wisp__cli_parse_uint("--x", "2147483647", &v, &err) == 0 && v == 2147483647);
    CHECK(wisp__cli_parse_uint("--x", "2147483648", &v, &err) == -1);
    CHECK(wisp__cli_parse_uint("--x", " 1", &v, &err) == -1);
    CHECK(wisp__cli_parse_uint("--x", "+1", &v, &err) == -1);

    int64_t now = 1700000000000, t = 0;
    CHECK(wisp__cli_parse_since("10m", now, &t, &err) == 0);
    CHECK_INT(t, now - 600000);
    CHECK(wisp__cli_parse_since("1h", now, &t, &err) == 0);
    CHECK_INT(t, now - 3600000);
    CHECK(wisp__cli_parse_since("2d", now, &t, &err) == 0);
    CHECK_INT(t, now - 2 * 86400000LL);
    CHECK(wisp__cli_parse_since("30s", now, &t, &err) == 0);
    CHECK_INT(t, now - 30000);
    CHECK(wisp__cli_parse_since("250ms", now, &t, &err) == 0);
    CHECK_INT(t, now - 250);
    CHECK(wisp__cli_parse_since("1699999999999", now, &t, &err) == 0);
    CHECK_INT(t, 1699999999999LL);
    CHECK(wisp__cli_parse_since("10x", now, &t, &err) == -1);
    CHECK(strstr(err.msg, "10x") != NULL);
    CHECK(wisp__cli_parse_since("m", now, &t, &err) == -1);
    CHECK(wisp__cli_parse_since("", now, &t, &err) == -1);
    CHECK(wisp__cli_parse_since("-5m", now, &t, &err) == -1);
    CHECK(wisp__cli_parse_since("99999999999999999999d", now, &t, &err) == -1);

    char s[32];
    wisp__cli_human_size(0, s, sizeof s);
    CHECK_STR(s, "0 B");
    wisp__cli_human_size(1023, s, sizeof s);
    CHECK_STR(s, "1023 B");
    wisp__cli_human_size(1536, s, sizeof s);
    CHECK_STR(s, "1.5 KiB");
    wisp__cli_human_size(5 * 1024 * 1024, s, sizeof s);
    CHECK_STR(s, "5.0 MiB");
}

TEST(paths_and_log_lines)
{
    cleanup_free char *p = wisp__cli_fn_path("a b/c", "/invoke");
    CHECK_STR(p, "/v1/functions/a%20b%2Fc/invoke");
    cleanup_free char *q = wisp__cli_fn_path("hello", NULL);
    CHECK_STR(q, "/v1/functions/hello");

    cleanup_json json_t *rec =
        json_pack("{sI sI ss ss ss}", "id", (json_int_t)7, "ts", (json_int_t)1700000000123,
                  "request_id", "r-1", "stream", "stdout", "line", "hi\x1b[31m\tthere\n");
    cleanup_free char *line = wisp__cli_format_log(rec);
    CHECK_STR(line, "2023-11-14T22:13:20.123Z r-1 hi?[31m\tthere");
    cleanup_json json_t *bare = json_pack("{ss}", "line", "x");
    cleanup_free char *l2 = wisp__cli_format_log(bare);
    CHECK_STR(l2, "- - x");
}

TEST(resolve_admin_and_token)
{
    cleanup_free char *dir = make_tmpdir();
    write_file(dir, "admin.token", "  abc123\n", 0600);
    unsetenv("WISP_TOKEN");
    setenv("WISP_ADMIN", "http://127.0.0.1:9///", 1);
    setenv("WISP_DATA", dir, 1);
    wisp_cli_t cli = {0};
    wisp_err_t err;
    CHECK(wisp__cli_resolve(&cli, &err) == 0);
    CHECK_STR(cli.admin_url, "http://127.0.0.1:9");
    CHECK_STR(cli.token, "abc123");
    CHECK_STR(cli.data_dir, dir);

    /* Options win over the environment, which wins over the file. */
    setenv("WISP_TOKEN", "fromenv", 1);
    CHECK(wisp__cli_resolve(&cli, &err) == 0);
    CHECK_STR(cli.token, "fromenv");
    cli.token_opt = xstrdup("fromopt");
    cli.admin_opt = xstrdup("http://other:1/");
    CHECK(wisp__cli_resolve(&cli, &err) == 0);
    CHECK_STR(cli.token, "fromopt");
    CHECK_STR(cli.admin_url, "http://other:1");
    wisp__cli_free(&cli);

    /* No token anywhere: not an error, but a hint for a later 401. */
    unsetenv("WISP_TOKEN");
    unsetenv("WISP_ADMIN");
    wisp_cli_t c2 = {0};
    c2.data_opt = xasprintf("%s/nope", dir);
    CHECK(wisp__cli_resolve(&c2, &err) == 0);
    CHECK(c2.token == NULL);
    CHECK(c2.token_hint != NULL && strstr(c2.token_hint, "WISP_TOKEN") != NULL);
    CHECK_STR(c2.admin_url, WISP_CLI_DEFAULT_ADMIN);
    wisp__cli_free(&c2);

    /* A token that would break the header is refused. */
    setenv("WISP_TOKEN", "a b", 1);
    wisp_cli_t c3 = {0};
    CHECK(wisp__cli_resolve(&c3, &err) == -1);
    CHECK(strstr(err.msg, "a b") == NULL); /* never echo the token */
    wisp__cli_free(&c3);
    unsetenv("WISP_TOKEN");
    CHECK(wisp_rm_rf(dir, NULL) == 0);
}

/* ---- names and runtimes ---- */

TEST(names_from_paths)
{
    wisp_err_t err;
    char *n = NULL;
    CHECK(wisp__cli_name_from_path("./hello", &n, &err) == 0);
    CHECK_STR(n, "hello");
    free(n);
    CHECK(wisp__cli_name_from_path("/a/b/my-fn_2///", &n, &err) == 0);
    CHECK_STR(n, "my-fn_2");
    free(n);
    CHECK(wisp__cli_name_from_path("pkgs/thing.ZIP", &n, &err) == 0);
    CHECK_STR(n, "thing");
    free(n);
    CHECK(wisp__cli_name_from_path("x.zip", &n, &err) == 0);
    CHECK_STR(n, "x");
    free(n);
    CHECK(wisp__cli_name_from_path("my.func", &n, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK(strstr(err.msg, "--name") != NULL);
    CHECK(wisp__cli_name_from_path(".zip", &n, &err) == -1);
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    CHECK(wisp__cli_name_from_path(long_name, &n, &err) == -1);
    long_name[64] = '\0';
    CHECK(wisp__cli_name_from_path(long_name, &n, &err) == 0);
    free(n);

    /* "." is the current folder's own name. */
    cleanup_free char *dir = make_tmpdir();
    make_subdir(dir, "cwd_fn");
    cleanup_free char *sub = xasprintf("%s/cwd_fn", dir);
    CHECK(chdir(sub) == 0);
    CHECK(wisp__cli_name_from_path(".", &n, &err) == 0);
    CHECK_STR(n, "cwd_fn");
    free(n);
    CHECK(wisp__cli_name_from_path("./", &n, &err) == 0);
    CHECK_STR(n, "cwd_fn");
    free(n);
    CHECK(chdir("/") == 0);
    CHECK(wisp_rm_rf(dir, NULL) == 0);
}

static void detect_dir(const char *dir, const char **rt, const char **h, int *rc, wisp_err_t *err)
{
    wisp_cli_file_t *files;
    size_t n;
    CHECK(wisp__cli_list_dir(dir, &files, &n, err) == 0);
    *rc = wisp__cli_detect_runtime(files, n, rt, h, err);
    wisp__cli_files_free(files, n);
}

TEST(runtime_detection)
{
    const char *rt, *h;
    int rc;
    wisp_err_t err;
    cleanup_free char *d = make_tmpdir();

    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_INT(rc, -1);
    CHECK(strstr(err.msg, "--runtime") != NULL);

    write_file(d, "bootstrap", "#!/bin/sh\n", 0644);
    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_INT(rc, -1);
    CHECK(strstr(err.msg, "chmod +x") != NULL);

    write_file(d, "index.mjs", "export const handler = async () => 1;\n", 0644);
    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_INT(rc, 0);
    CHECK_STR(rt, "nodejs");
    CHECK_STR(h, "index.handler");

    write_file(d, "lambda_function.py", "def lambda_handler(e, c): pass\n", 0644);
    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_STR(rt, "python3");
    CHECK_STR(h, "lambda_function.lambda_handler");

    write_file(d, "app.py", "def handler(e, c): pass\n", 0644);
    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_STR(rt, "python3");
    CHECK_STR(h, "app.handler");

    cleanup_free char *boot = xasprintf("%s/bootstrap", d);
    CHECK(chmod(boot, 0755) == 0);
    detect_dir(d, &rt, &h, &rc, &err);
    CHECK_INT(rc, 0);
    CHECK_STR(rt, "provided");
    CHECK(h == NULL);

    /* A folder named like a rule does not count; only regular files do. */
    cleanup_free char *d2 = make_tmpdir();
    make_subdir(d2, "app.py");
    detect_dir(d2, &rt, &h, &rc, &err);
    CHECK_INT(rc, -1);
    CHECK(wisp_rm_rf(d, NULL) == 0);
    CHECK(wisp_rm_rf(d2, NULL) == 0);
}

/* ---- zipping ---- */

struct entry {
    char path[256];
    int type;
    int perm;
    char data[256];
};

static int read_zip(const char *zip, size_t len, struct entry *out, int max)
{
    struct archive *a = archive_read_new();
    CHECK(a != NULL);
    archive_read_support_format_zip(a);
    CHECK(archive_read_open_memory(a, zip, len) == ARCHIVE_OK);
    struct archive_entry *e;
    int n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        CHECK(n < max);
        snprintf(out[n].path, sizeof out[n].path, "%s", archive_entry_pathname(e));
        out[n].type = (int)archive_entry_filetype(e);
        out[n].perm = (int)archive_entry_perm(e);
        la_ssize_t r = archive_read_data(a, out[n].data, sizeof out[n].data - 1);
        CHECK(r >= 0);
        out[n].data[r] = '\0';
        n++;
    }
    archive_read_free(a);
    return n;
}

TEST(zip_folder_roundtrip)
{
    cleanup_free char *d = make_tmpdir();
    write_file(d, "bootstrap", "#!/bin/sh\necho hi\n", 0700);
    write_file(d, "b.txt", "bee", 0600);
    make_subdir(d, "sub");
    write_file(d, "sub/data.json", "{\"k\":1}", 0644);
    make_subdir(d, "sub/deeper");
    write_file(d, "sub/deeper/tool", "x", 0751);
    make_subdir(d, "empty");
    make_symlink(d, "link.txt", "sub/data.json"); /* inside: stored as the file */
    make_symlink(d, "alias", "sub/deeper");       /* a folder inside: stored as a folder */

    char *zip = NULL;
    size_t len = 0;
    wisp_err_t err;
    CHECK(wisp__cli_zip_dir(d, &zip, &len, &err) == 0);
    CHECK(len > 22 && memcmp(zip, "PK", 2) == 0);

    struct entry es[32];
    int n = read_zip(zip, len, es, 32);
    static const struct {
        const char *path;
        int type;
        int perm;
        const char *data;
    } want[] = {
        {"alias/", AE_IFDIR, 0755, ""},      {"alias/tool", AE_IFREG, 0755, "x"},
        {"b.txt", AE_IFREG, 0644, "bee"},    {"bootstrap", AE_IFREG, 0755, "#!/bin/sh\necho hi\n"},
        {"empty/", AE_IFDIR, 0755, ""},      {"link.txt", AE_IFREG, 0644, "{\"k\":1}"},
        {"sub/", AE_IFDIR, 0755, ""},        {"sub/data.json", AE_IFREG, 0644, "{\"k\":1}"},
        {"sub/deeper/", AE_IFDIR, 0755, ""}, {"sub/deeper/tool", AE_IFREG, 0755, "x"},
    };
    CHECK_INT(n, (int)WISP_ARRAY_LEN(want));
    for (int i = 0; i < n; i++) {
        CHECK_STR(es[i].path, want[i].path);
        CHECK_INT(es[i].type, want[i].type);
        CHECK_INT(es[i].perm, want[i].perm);
        CHECK_STR(es[i].data, want[i].data);
    }

    /* Deterministic: the same tree, touched later, gives the same bytes. */
    cleanup_free char *b = xasprintf("%s/b.txt", d);
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    CHECK(utimensat(AT_FDCWD, b, ts, 0) == 0);
    char *zip2 = NULL;
    size_t len2 = 0;
    CHECK(wisp__cli_zip_dir(d, &zip2, &len2, &err) == 0);
    CHECK_INT(len2, len);
    CHECK(memcmp(zip, zip2, len) == 0);

    /* The zip's top-level files are what runtime detection sees. */
    wisp_cli_file_t *files;
    size_t nf;
    CHECK(wisp__cli_list_zip(zip, len, &files, &nf, &err) == 0);
    const char *rt, *h;
    CHECK(wisp__cli_detect_runtime(files, nf, &rt, &h, &err) == 0);
    CHECK_STR(rt, "provided");
    CHECK_INT(nf, 3); /* b.txt, bootstrap, link.txt */
    wisp__cli_files_free(files, nf);
    free(zip);
    free(zip2);
    CHECK(wisp_rm_rf(d, NULL) == 0);
}

TEST(zip_refuses_escapes)
{
    wisp_err_t err;
    char *zip = NULL;
    size_t len = 0;

    cleanup_free char *outside = make_tmpdir();
    write_file(outside, "secret", "s", 0644);
    cleanup_free char *secret = xasprintf("%s/secret", outside);

    cleanup_free char *d1 = make_tmpdir();
    write_file(d1, "app.py", "", 0644);
    make_symlink(d1, "abs", secret);
    CHECK(wisp__cli_zip_dir(d1, &zip, &len, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK(strstr(err.msg, "abs") != NULL && strstr(err.msg, "outside the folder") != NULL);

    cleanup_free char *d2 = make_tmpdir();
    make_subdir(d2, "sub");
    make_symlink(d2, "sub/up", "../../");
    CHECK(wisp__cli_zip_dir(d2, &zip, &len, &err) == -1);
    CHECK(strstr(err.msg, "sub/up") != NULL && strstr(err.msg, "outside") != NULL);

    cleanup_free char *d3 = make_tmpdir();
    make_symlink(d3, "dangling", "nowhere");
    CHECK(wisp__cli_zip_dir(d3, &zip, &len, &err) == -1);
    CHECK(strstr(err.msg, "points to nothing") != NULL);

    cleanup_free char *d4 = make_tmpdir();
    make_subdir(d4, "a");
    make_symlink(d4, "a/loop", "..");
    CHECK(wisp__cli_zip_dir(d4, &zip, &len, &err) == -1);
    CHECK(strstr(err.msg, "loop") != NULL);

    cleanup_free char *d5 = make_tmpdir();
    cleanup_free char *fifo = xasprintf("%s/pipe", d5);
    CHECK(mkfifo(fifo, 0644) == 0);
    CHECK(wisp__cli_zip_dir(d5, &zip, &len, &err) == -1);
    CHECK(strstr(err.msg, "fifo") != NULL);

    cleanup_free char *d6 = make_tmpdir();
    CHECK(wisp__cli_zip_dir(d6, &zip, &len, &err) == -1);
    CHECK(strstr(err.msg, "empty") != NULL);

    /* An unreadable file is an error, not a silent skip (root reads anything). */
    if (geteuid() != 0) {
        cleanup_free char *d7 = make_tmpdir();
        write_file(d7, "locked", "x", 0000);
        CHECK(wisp__cli_zip_dir(d7, &zip, &len, &err) == -1);
        CHECK(strstr(err.msg, "locked") != NULL);
        CHECK(wisp_rm_rf(d7, NULL) == 0);
    }
    CHECK(wisp_rm_rf(d1, NULL) == 0);
    CHECK(wisp_rm_rf(d2, NULL) == 0);
    CHECK(wisp_rm_rf(d3, NULL) == 0);
    CHECK(wisp_rm_rf(d4, NULL) == 0);
    CHECK(wisp_rm_rf(d5, NULL) == 0);
    CHECK(wisp_rm_rf(d6, NULL) == 0);
    CHECK(wisp_rm_rf(outside, NULL) == 0);
}

TEST(payload_sources)
{
    wisp_err_t err;
    char *p;
    size_t len;
    CHECK(wisp__cli_read_payload(NULL, &p, &len, &err) == 0);
    CHECK_STR(p, "{}");
    free(p);
    CHECK(wisp__cli_read_payload("{\"x\":1}", &p, &len, &err) == 0);
    CHECK_STR(p, "{\"x\":1}");
    free(p);
    cleanup_free char *d = make_tmpdir();
    write_file(d, "e.json", "[1,2]", 0644);
    cleanup_free char *arg = xasprintf("@%s/e.json", d);
    CHECK(wisp__cli_read_payload(arg, &p, &len, &err) == 0);
    CHECK_STR(p, "[1,2]");
    CHECK_INT(len, 5);
    free(p);
    cleanup_free char *missing = xasprintf("@%s/none.json", d);
    CHECK(wisp__cli_read_payload(missing, &p, &len, &err) == -1);
    CHECK(strstr(err.msg, "none.json") != NULL);
    /* Over the 6 MiB sync limit. */
    cleanup_free char *big = xasprintf("%s/big", d);
    FILE *f = fopen(big, "w");
    CHECK(f != NULL);
    CHECK(ftruncate(fileno(f), 6 * 1024 * 1024 + 1) == 0);
    fclose(f);
    cleanup_free char *bigarg = xasprintf("@%s", big);
    CHECK(wisp__cli_read_payload(bigarg, &p, &len, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK(wisp_rm_rf(d, NULL) == 0);
}

/* ---- the client against a canned server on a loopback socket ---- */

struct canned {
    int port;
    pid_t pid;
    int req_fd; /* read end: the request the server saw */
};

/* Serve one connection: read the request (headers and Content-Length body),
 * pass it to the parent, write each response part with a pause between. */
static void canned_start(struct canned *c, const char *const *parts)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(ls >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(ls, 4) == 0);
    socklen_t sl = sizeof sa;
    CHECK(getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);
    c->port = ntohs(sa.sin_port);
    int p[2];
    CHECK(pipe(p) == 0);
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        close(p[0]);
        alarm(10);
        int s = accept(ls, NULL, NULL);
        if (s < 0)
            _exit(1);
        wisp_buf_t req = WISP_BUF_INIT(0);
        char buf[4096];
        for (;;) {
            char *end = req.data ? strstr(req.data, "\r\n\r\n") : NULL;
            if (end) {
                const char *cl = strcasestr(req.data, "\r\nContent-Length:");
                size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
                if (req.len >= (size_t)(end + 4 - req.data) + want)
                    break;
            }
            ssize_t n = read(s, buf, sizeof buf);
            if (n <= 0)
                break;
            wisp_buf_add(&req, buf, (size_t)n);
        }
        if (write(p[1], req.data, req.len) < 0)
            _exit(1);
        close(p[1]);
        for (int i = 0; parts[i]; i++) {
            if (write(s, parts[i], strlen(parts[i])) < 0)
                _exit(1);
            usleep(50000);
        }
        close(s);
        _exit(0);
    }
    close(p[1]);
    close(ls);
    c->req_fd = p[0];
}

/* The request the server saw; heap string. */
static char *canned_finish(struct canned *c)
{
    wisp_buf_t b = WISP_BUF_INIT(0);
    char buf[4096];
    ssize_t n;
    while ((n = read(c->req_fd, buf, sizeof buf)) > 0)
        wisp_buf_add(&b, buf, (size_t)n);
    close(c->req_fd);
    int st;
    CHECK(waitpid(c->pid, &st, 0) == c->pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return wisp_buf_steal(&b, NULL);
}

static void client_for(wisp_cli_t *cli, int port, const char *token)
{
    memset(cli, 0, sizeof *cli);
    cli->admin_opt = xasprintf("http://127.0.0.1:%d/", port);
    if (token)
        cli->token_opt = xstrdup(token);
    cli->data_opt = xstrdup("/nonexistent-wisp-data");
    unsetenv("WISP_TOKEN");
    wisp_err_t err;
    CHECK(wisp__cli_resolve(cli, &err) == 0);
}

TEST(client_invoke_headers)
{
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "X-Wisp-Request-Id: 0b5c-42\r\nX-Wisp-Function-Error: Unhandled\r\n"
        "x-wisp-cold-start: 1\r\nX-Wisp-Duration-Ms: 12.5\r\nContent-Length: 26\r\n"
        "Connection: close\r\n\r\n",
        "{\"errorType\":\"E\",\"x\":\"\xc3\xa9\"}",
        NULL,
    };
    struct canned c;
    canned_start(&c, parts);
    wisp_cli_t cli;
    client_for(&cli, c.port, "sekrit-token");
    cleanup_free char *base = xasprintf("http://127.0.0.1:%d", c.port);
    CHECK_STR(cli.admin_url, base); /* the trailing '/' is dropped */
    cleanup_free char *path = wisp__cli_fn_path("a b", "/invoke");
    wisp_cli_req_t req = {.method = "POST",
                          .path = path,
                          .content_type = "application/json",
                          .body = "{\"n\":1}",
                          .len = 7};
    wisp_cli_resp_t resp;
    wisp_err_t err;
    CHECK(wisp_cli_http(&cli, &req, &resp, &err) == 0);
    CHECK_INT(resp.status, 200);
    CHECK_STR(resp.request_id, "0b5c-42");
    CHECK_STR(resp.function_error, "Unhandled");
    CHECK_INT(resp.cold_start, 1);
    CHECK(resp.duration_ms > 12.4 && resp.duration_ms < 12.6);
    CHECK_INT(resp.body.len, 26);
    CHECK(strncmp(resp.body.data, "{\"errorType\":\"E\"", 16) == 0);
    wisp_cli_resp_free(&resp);
    cleanup_free char *seen = canned_finish(&c);
    CHECK(starts_with(seen, "POST /v1/functions/a%20b/invoke HTTP/1.1\r\n"));
    CHECK(strstr(seen, "\r\nAuthorization: Bearer sekrit-token\r\n") != NULL);
    CHECK(strstr(seen, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strstr(seen, "Expect:") == NULL);
    CHECK(strstr(seen, "\r\n\r\n{\"n\":1}") != NULL);
    wisp__cli_free(&cli);
}

TEST(client_api_errors)
{
    static const char *const parts[] = {
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 61\r\n"
        "Connection: close\r\n\r\n"
        "{\"error\":{\"code\":\"not_found\",\"message\":\"no function 'nope'\"}}",
        NULL,
    };
    struct canned c;
    canned_start(&c, parts);
    wisp_cli_t cli;
    client_for(&cli, c.port, "t0ken");
    json_t *out = NULL;
    long status = 0;
    wisp_err_t err;
    CHECK(wisp_cli_call_json(&cli, "GET", "/v1/functions/nope", NULL, &out, &status, &err) == -1);
    CHECK_INT(status, 404);
    CHECK_INT(err.code, WISP_ENOTFOUND);
    CHECK_STR(err.msg, "no function 'nope'");
    cleanup_free char *seen = canned_finish(&c);
    CHECK(starts_with(seen, "GET /v1/functions/nope HTTP/1.1\r\n"));
    wisp__cli_free(&cli);

    /* 401 without a token: the message says where a token comes from. */
    static const char *const unauth[] = {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        NULL,
    };
    canned_start(&c, unauth);
    client_for(&cli, c.port, NULL);
    CHECK(wisp_cli_call_json(&cli, "GET", "/v1/functions", NULL, &out, &status, &err) == -1);
    CHECK_INT(err.code, WISP_EAUTH);
    CHECK(strstr(err.msg, "WISP_TOKEN") != NULL);
    cleanup_free char *seen2 = canned_finish(&c);
    CHECK(strstr(seen2, "Authorization") == NULL);
    wisp__cli_free(&cli);
}

struct lines {
    char got[8][64];
    int n;
};

static int collect_line(void *data, const char *line, size_t len)
{
    struct lines *l = data;
    if (l->n < 8)
        snprintf(l->got[l->n++], sizeof l->got[0], "%.*s", (int)len, line);
    return 0;
}

TEST(client_streams_lines)
{
    /* A chunked NDJSON stream whose lines are cut across chunks and writes;
     * the last line has no newline. */
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        "d\r\n{\"id\":1}\n{\"id\r\n",
        "6\r\n\":2}\n\n\r\n",
        "8\r\n{\"id\":3}\r\n0\r\n\r\n",
        NULL,
    };
    struct canned c;
    canned_start(&c, parts);
    wisp_cli_t cli;
    client_for(&cli, c.port, "tok");
    struct lines l = {.n = 0};
    wisp_cli_req_t req = {.method = "GET",
                          .path = "/v1/functions/f/logs?follow=1",
                          .on_line = collect_line,
                          .data = &l};
    wisp_cli_resp_t resp;
    wisp_err_t err;
    CHECK(wisp_cli_http(&cli, &req, &resp, &err) == 0);
    CHECK_INT(resp.status, 200);
    CHECK_INT(resp.body.len, 0);
    wisp_cli_resp_free(&resp);
    CHECK_INT(l.n, 4);
    CHECK_STR(l.got[0], "{\"id\":1}");
    CHECK_STR(l.got[1], "{\"id\":2}");
    CHECK_STR(l.got[2], "");
    CHECK_STR(l.got[3], "{\"id\":3}");
    free(canned_finish(&c));
    wisp__cli_free(&cli);

    /* An error status is not streamed: the body stays for the error message. */
    static const char *const bad[] = {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
        "no such thing",
        NULL,
    };
    canned_start(&c, bad);
    client_for(&cli, c.port, "tok");
    l.n = 0;
    CHECK(wisp_cli_http(&cli, &req, &resp, &err) == 0);
    CHECK_INT(resp.status, 404);
    CHECK_INT(l.n, 0);
    CHECK(wisp_cli_api_error(&cli, &resp, &err) == -1);
    CHECK_STR(err.msg, "HTTP 404: no such thing");
    wisp_cli_resp_free(&resp);
    free(canned_finish(&c));
    wisp__cli_free(&cli);
}

TEST(client_limits_and_refusal)
{
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
        "567890123456789",
        NULL,
    };
    struct canned c;
    canned_start(&c, parts);
    wisp_cli_t cli;
    client_for(&cli, c.port, "tok");
    wisp_cli_req_t req = {.method = "GET", .path = "/healthz", .max_body = 10};
    wisp_cli_resp_t resp;
    wisp_err_t err;
    CHECK(wisp_cli_http(&cli, &req, &resp, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    wisp_cli_resp_free(&resp);
    free(canned_finish(&c));
    wisp__cli_free(&cli);

    /* Nothing listens on a port just closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
    socklen_t sl = sizeof sa;
    CHECK(getsockname(s, (struct sockaddr *)&sa, &sl) == 0);
    close(s);
    client_for(&cli, ntohs(sa.sin_port), "zz-secret-zz");
    CHECK(wisp_cli_http(&cli, &req, &resp, &err) == -1);
    CHECK_INT(err.code, WISP_EUNAVAILABLE);
    CHECK(strstr(err.msg, "cannot reach the wisp daemon") != NULL);
    CHECK(strstr(err.msg, "secret") == NULL);
    wisp_cli_resp_free(&resp);
    wisp__cli_free(&cli);
}

TAP_MAIN(CASE(deploy_options_parse), CASE(deploy_options_reject), CASE(numbers_and_since),
         CASE(paths_and_log_lines), CASE(resolve_admin_and_token), CASE(names_from_paths),
         CASE(runtime_detection), CASE(zip_folder_roundtrip), CASE(zip_refuses_escapes),
         CASE(payload_sources), CASE(client_invoke_headers), CASE(client_api_errors),
         CASE(client_streams_lines), CASE(client_limits_and_refusal))
