/*
 * common.c - what every CLI command shares: option parsing with the global
 * options, finding the admin URL and token, error reporting with the exit
 * statuses, and small parsers and formatters (numbers, --env, names,
 * --since, sizes, log lines).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "core/util.h"

#define TOKEN_FILE_MAX 4096

void wisp__cli_getopt_begin(void)
{
    /* glibc re-initialises its whole state (including permutation) when optind is 0. */
    optind = 0;
    opterr = 0;
}

int wisp__cli_getopt(wisp_cli_t *cli, int argc, char **argv, const char *shortopts,
                     const struct option *longopts, wisp_err_t *err)
{
    /* A leading ':' makes a missing value return ':' instead of '?'. */
    cleanup_free char *spec = xasprintf(":%sh", shortopts ? shortopts : "");
    for (;;) {
        int before = optind ? optind : 1;
        int c = getopt_long(argc, argv, spec, longopts, NULL);
        switch (c) {
        case -1: return WISP_CLI_GETOPT_END;
        case 'h':
        case WISP_CLI_OPT_HELP: return WISP_CLI_GETOPT_HELP;
        case WISP_CLI_OPT_ADMIN:
            free(cli->admin_opt);
            cli->admin_opt = xstrdup(optarg);
            continue;
        case WISP_CLI_OPT_TOKEN:
            free(cli->token_opt);
            cli->token_opt = xstrdup(optarg);
            continue;
        case WISP_CLI_OPT_DATA:
            free(cli->data_opt);
            cli->data_opt = xstrdup(optarg);
            continue;
        case WISP_CLI_OPT_JSON: cli->json = true; continue;
        case ':':
            if (optopt > 0 && optopt < 0x100)
                wisp_err_set(err, WISP_EINVALID, "option -%c needs a value", optopt);
            else
                wisp_err_set(err, WISP_EINVALID, "option %s needs a value", argv[optind - 1]);
            return WISP_CLI_GETOPT_ERROR;
        case '?':
            if (optopt > 0 && optopt < 0x100)
                wisp_err_set(err, WISP_EINVALID, "unknown option -%c", optopt);
            else if (optind - 1 >= before && optind - 1 < argc)
                wisp_err_set(err, WISP_EINVALID, "unknown option %s", argv[optind - 1]);
            else
                wisp_err_set(err, WISP_EINVALID, "unknown option");
            return WISP_CLI_GETOPT_ERROR;
        default: return c;
        }
    }
}

static char *strip_trailing_slashes(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return xstrndup(s, n);
}

static bool token_ok(const char *t)
{
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x21 || *p == 0x7f)
            return false;
    return *t != '\0';
}

static int read_token_file(wisp_cli_t *cli, wisp_err_t *err)
{
    cleanup_free char *path = xasprintf("%s/admin.token", cli->data_dir);
    char *data = NULL;
    size_t len = 0;
    wisp_err_t ferr;
    if (wisp_read_file(path, TOKEN_FILE_MAX, &data, &len, &ferr) < 0) {
        cli->token_hint = xasprintf("no token: set $WISP_TOKEN, pass --token, or point --data or "
                                    "$WISP_DATA at the daemon's data folder (%s)",
                                    ferr.msg);
        return 0;
    }
    /* The file holds the token and perhaps a newline. */
    while (len > 0 && isspace((unsigned char)data[len - 1]))
        data[--len] = '\0';
    size_t skip = strspn(data, " \t\r\n");
    cli->token = xstrdup(data + skip);
    explicit_bzero(data, len);
    free(data);
    if (!token_ok(cli->token))
        return wisp_err_set(err, WISP_EINVALID, "%s does not hold a usable token", path);
    return 0;
}

int wisp__cli_resolve(wisp_cli_t *cli, wisp_err_t *err)
{
    const char *admin = cli->admin_opt;
    if (admin == NULL || *admin == '\0')
        admin = getenv("WISP_ADMIN");
    if (admin == NULL || *admin == '\0')
        admin = WISP_CLI_DEFAULT_ADMIN;
    free(cli->admin_url);
    cli->admin_url = strip_trailing_slashes(admin);
    if (cli->admin_url[0] == '\0')
        return wisp_err_set(err, WISP_EINVALID, "the admin URL '%s' is empty", admin);

    const char *data = cli->data_opt;
    if (data == NULL || *data == '\0')
        data = getenv("WISP_DATA");
    if (data == NULL || *data == '\0')
        data = WISP_CLI_DEFAULT_DATA;
    free(cli->data_dir);
    cli->data_dir = xstrdup(data);

    free(cli->token);
    cli->token = NULL;
    free(cli->token_hint);
    cli->token_hint = NULL;
    const char *tok = cli->token_opt;
    const char *from = "--token";
    if (tok == NULL || *tok == '\0') {
        tok = getenv("WISP_TOKEN");
        from = "$WISP_TOKEN";
    }
    if (tok != NULL && *tok != '\0') {
        if (!token_ok(tok))
            return wisp_err_set(err, WISP_EINVALID,
                                "the token in %s has spaces or control "
                                "characters",
                                from);
        cli->token = xstrdup(tok);
        return 0;
    }
    return read_token_file(cli, err);
}

void wisp__cli_free(wisp_cli_t *cli)
{
    if (cli->token)
        explicit_bzero(cli->token, strlen(cli->token));
    if (cli->token_opt)
        explicit_bzero(cli->token_opt, strlen(cli->token_opt));
    free(cli->admin_opt);
    free(cli->token_opt);
    free(cli->data_opt);
    free(cli->admin_url);
    free(cli->data_dir);
    free(cli->token);
    free(cli->token_hint);
    memset(cli, 0, sizeof *cli);
}

int wisp__cli_fail(const wisp_err_t *err)
{
    if (err->code == WISP_EUNAVAILABLE && err->sys_errno == EINTR) {
        fprintf(stderr, "wisp: interrupted\n");
        return WISP_CLI_EXIT_INTERRUPTED;
    }
    fprintf(stderr, "wisp: %s\n", err->msg[0] ? err->msg : "failed");
    return WISP_CLI_EXIT_ERROR;
}

int wisp__cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wisp: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "\nrun 'wisp help %s' for usage\n", cmd);
    else
        fputs("\nrun 'wisp help' for usage\n", stderr);
    return WISP_CLI_EXIT_USAGE;
}

int wisp__cli_parse_simple(wisp_cli_t *cli, int argc, char **argv, int min_pos, int max_pos,
                           int *first_pos)
{
    static const struct option opts[] = {WISP_CLI_GLOBAL_OPTIONS, {0}};
    wisp_err_t err;
    cli->cmd = argv[0];
    wisp__cli_getopt_begin();
    int c;
    while ((c = wisp__cli_getopt(cli, argc, argv, "", opts, &err)) != WISP_CLI_GETOPT_END) {
        if (c == WISP_CLI_GETOPT_HELP) {
            wisp_cli_usage(cli->cmd, stdout);
            return WISP_CLI_EXIT_OK;
        }
        if (c == WISP_CLI_GETOPT_ERROR)
            return wisp__cli_usage_error(cli->cmd, "%s", err.msg);
        return wisp__cli_usage_error(cli->cmd, "unexpected option");
    }
    int npos = argc - optind;
    if (npos < min_pos)
        return wisp__cli_usage_error(cli->cmd, "%s needs %s", cli->cmd,
                                     min_pos == 1 ? "a function name" : "more arguments");
    if (max_pos >= 0 && npos > max_pos)
        return wisp__cli_usage_error(cli->cmd, "unexpected argument '%s'", argv[optind + max_pos]);
    if (wisp__cli_resolve(cli, &err) < 0)
        return wisp__cli_usage_error(cli->cmd, "%s", err.msg);
    *first_pos = optind;
    return -1;
}

int wisp__cli_parse_uint(const char *what, const char *s, int *out, wisp_err_t *err)
{
    if (s == NULL || *s == '\0')
        return wisp_err_set(err, WISP_EINVALID, "%s needs a number", what);
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return wisp_err_set(err, WISP_EINVALID, "%s: '%s' is not a whole number", what, s);
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return wisp_err_set(err, WISP_EINVALID, "%s: %s is too large", what, s);
    }
    *out = (int)v;
    return 0;
}

int wisp__cli_parse_env(const char *kv, json_t *obj, wisp_err_t *err)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL)
        return wisp_err_set(err, WISP_EINVALID, "--env '%s': expected KEY=VALUE", kv);
    size_t klen = (size_t)(eq - kv);
    if (klen == 0)
        return wisp_err_set(err, WISP_EINVALID, "--env '%s': the key is empty", kv);
    for (size_t i = 0; i < klen; i++) {
        unsigned char ch = (unsigned char)kv[i];
        if (!(isalpha(ch) || ch == '_' || (i > 0 && isdigit(ch))))
            return wisp_err_set(err, WISP_EINVALID,
                                "--env '%.*s': keys are letters, digits and '_', not starting "
                                "with a digit",
                                (int)klen, kv);
    }
    cleanup_free char *key = xstrndup(kv, klen);
    json_t *val = json_string(eq + 1);
    if (val == NULL)
        return wisp_err_set(err, WISP_EINVALID, "--env %s: the value is not valid UTF-8", key);
    json_object_set_new(obj, key, val);
    return 0;
}

bool wisp__cli_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int wisp__cli_name_from_path(const char *path, char **out, wisp_err_t *err)
{
    cleanup_free char *p = strip_trailing_slashes(path);
    cleanup_free char *real = NULL;
    const char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        real = realpath(*p ? p : "/", NULL);
        if (real == NULL)
            return wisp_err_sys(err, errno, "%s", path);
        base = strrchr(real, '/');
        base = base ? base + 1 : real;
    }
    size_t n = strlen(base);
    if (n > 4 && wisp_streq_ci(base + n - 4, ".zip"))
        n -= 4;
    cleanup_free char *name = xstrndup(base, n);
    if (!wisp__cli_name_valid(name))
        return wisp_err_set(err, WISP_EINVALID,
                            "cannot use '%s' as a function name (names are 1-64 letters, digits, "
                            "'-' or '_'): give one with --name",
                            name);
    *out = steal_pointer(&name);
    return 0;
}

int wisp__cli_parse_since(const char *s, int64_t now_ms, int64_t *out, wisp_err_t *err)
{
    const char *p = s;
    int64_t v = 0;
    if (!isdigit((unsigned char)*p))
        goto bad;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (INT64_MAX - 9) / 10)
            goto bad;
        v = v * 10 + (*p - '0');
    }
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", -1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < WISP_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        if (units[i].ms < 0) {
            *out = v;
            return 0;
        }
        if (v > now_ms / units[i].ms)
            goto bad;
        *out = now_ms - v * units[i].ms;
        return 0;
    }
bad:
    return wisp_err_set(err, WISP_EINVALID,
                        "--since '%s': expected a duration (30s, 10m, 2h, 1d) or epoch "
                        "milliseconds",
                        s);
}

void wisp__cli_human_size(int64_t bytes, char *out, size_t n)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(out, n, "%lld B", (long long)bytes);
        return;
    }
    double v = (double)bytes;
    size_t u = 0;
    v /= 1024;
    while (v >= 1024 && u + 1 < WISP_ARRAY_LEN(units)) {
        v /= 1024;
        u++;
    }
    snprintf(out, n, "%.1f %s", v, units[u]);
}

char *wisp__cli_escape(const char *s)
{
    char *enc = curl_easy_escape(NULL, s, 0);
    if (enc == NULL)
        abort();
    char *out = xstrdup(enc);
    curl_free(enc);
    return out;
}

char *wisp__cli_fn_path(const char *name, const char *suffix)
{
    cleanup_free char *enc = wisp__cli_escape(name);
    return xasprintf("/v1/functions/%s%s", enc, suffix ? suffix : "");
}

void wisp__cli_human_time(int64_t ms, char *out, size_t n)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, n, "%lld", (long long)ms);
}

char *wisp__cli_format_log(json_t *rec)
{
    char ts[32] = "-";
    json_t *t = json_object_get(rec, "ts");
    if (json_is_integer(t))
        wisp_time_rfc3339(json_integer_value(t), ts);
    else if (json_is_string(t))
        snprintf(ts, sizeof ts, "%s", json_string_value(t));
    const char *rid = json_string_value(json_object_get(rec, "request_id"));
    if (rid == NULL || *rid == '\0')
        rid = "-";
    const char *line = json_string_value(json_object_get(rec, "line"));
    if (line == NULL)
        line = "";
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    wisp_buf_t b = WISP_BUF_INIT(0);
    wisp_buf_addf(&b, "%s %s ", ts, rid);
    /* A function's output must not drive the terminal: control characters
     * other than tab are shown as '?'. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        char ch = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
        wisp_buf_add(&b, &ch, 1);
    }
    return wisp_buf_steal(&b, NULL);
}

void wisp__cli_print_json(json_t *j)
{
    if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) == 0)
        fputc('\n', stdout);
}
