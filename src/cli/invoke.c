/*
 * invoke.c - `wisp invoke NAME [-d JSON|@file|@-] [--log-tail]`: a
 * synchronous invocation (POST /v1/functions/{name}/invoke). The result goes
 * to stdout as the function returned it; when the function failed
 * (X-Wisp-Function-Error) its error JSON goes to stdout, a summary to stderr,
 * and the exit status is 1. No total timeout: a function may run for 900 s;
 * ^C ends the wait.
 *
 * --log-tail asks for the invocation's log with X-Wisp-Log-Type: Tail and
 * prints the daemon's X-Wisp-Log-Result (base64) to stderr; if the daemon
 * does not send one, the log is fetched with GET .../logs?request_id=.
 */
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"
#include "invoke/invoke.h"

#define LOG_RESULT_B64_MAX (64 * 1024)

enum {
    OPT_PAYLOAD = WISP_CLI_OPT_FIRST_LOCAL,
    OPT_LOG_TAIL,
    OPT_ASYNC,
};

static const struct option invoke_options[] = {
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"log-tail", no_argument, NULL, OPT_LOG_TAIL},
    {"async", no_argument, NULL, OPT_ASYNC},
    WISP_CLI_GLOBAL_OPTIONS,
    {0},
};

int wisp__cli_read_payload(const char *arg, char **out, size_t *len, wisp_err_t *err)
{
    if (arg == NULL) {
        *out = xstrdup("{}");
        *len = 2;
        return 0;
    }
    if (arg[0] != '@') {
        *len = strlen(arg);
        if (*len > WISP_PAYLOAD_MAX)
            return wisp_err_set(err, WISP_ELIMIT, "the event is larger than %u MiB",
                                WISP_PAYLOAD_MAX / (1024 * 1024));
        *out = xstrdup(arg);
        return 0;
    }
    if (strcmp(arg, "@-") == 0) {
        wisp_buf_t b = WISP_BUF_INIT(WISP_PAYLOAD_MAX);
        char chunk[65536];
        for (;;) {
            ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                wisp_buf_free(&b);
                return wisp_err_sys(err, errno, "reading the event from stdin");
            }
            if (n == 0)
                break;
            if (wisp_buf_append(&b, chunk, (size_t)n, NULL) < 0) {
                wisp_buf_free(&b);
                return wisp_err_set(err, WISP_ELIMIT, "the event on stdin is larger than %u MiB",
                                    WISP_PAYLOAD_MAX / (1024 * 1024));
            }
        }
        *out = wisp_buf_steal(&b, len);
        return 0;
    }
    if (wisp_read_file(arg + 1, WISP_PAYLOAD_MAX, out, len, err) < 0) {
        if (err && err->code == WISP_ELIMIT)
            return wisp_err_set(err, WISP_ELIMIT, "%s: the event is larger than %u MiB", arg + 1,
                                WISP_PAYLOAD_MAX / (1024 * 1024));
        return -1;
    }
    return 0;
}

static void print_body(const char *data, size_t len)
{
    fwrite(data, 1, len, stdout);
    /* Results rarely end in a newline; add one for a person, not for a pipe. */
    if (isatty(STDOUT_FILENO) && (len == 0 || data[len - 1] != '\n'))
        fputc('\n', stdout);
    fflush(stdout);
}

/* The base64 X-Wisp-Log-Result decoded; heap string or NULL if malformed. */
static char *decode_log_result(const char *b64)
{
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0 || n > LOG_RESULT_B64_MAX)
        return NULL;
    unsigned char *out = xmalloc(n / 4 * 3 + 1);
    int m = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (m < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the bytes that padding stands for. */
    if (b64[n - 1] == '=')
        m--;
    if (b64[n - 2] == '=')
        m--;
    out[m] = '\0';
    return (char *)out;
}

/* The invocation's log lines through the logs API: printed to stderr as
 * text, or, if into is set, their raw lines appended to it. */
static int fetch_log(wisp_cli_t *cli, const char *name, const char *request_id, wisp_buf_t *into,
                     wisp_err_t *err)
{
    cleanup_free char *rid = wisp__cli_escape(request_id);
    cleanup_free char *q = xasprintf("/logs?request_id=%s", rid);
    cleanup_free char *path = wisp__cli_fn_path(name, q);
    cleanup_json json_t *res = NULL;
    if (wisp_cli_call_json(cli, "GET", path, NULL, &res, NULL, err) < 0)
        return -1;
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(res, "logs"), i, rec)
    {
        if (into) {
            const char *l = json_string_value(json_object_get(rec, "line"));
            wisp_buf_addf(into, "%s\n", l ? l : "");
        } else {
            cleanup_free char *text = wisp__cli_format_log(rec);
            fprintf(stderr, "%s\n", text);
        }
    }
    return 0;
}

static json_t *payload_json(const wisp_cli_resp_t *resp, const char **key)
{
    *key = "payload";
    if (resp->body.len == 0)
        return json_null();
    json_t *p = json_loadb(resp->body.data, resp->body.len, JSON_DECODE_ANY, NULL);
    if (p == NULL)
        p = json_stringn(resp->body.data, resp->body.len);
    if (p)
        return p;
    /* Not UTF-8: JSON cannot hold it as text. */
    *key = "payload_base64";
    char *b64 = xmalloc(4 * ((resp->body.len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)resp->body.data,
                    (int)resp->body.len);
    p = json_string(b64);
    free(b64);
    return p;
}

static int run_invoke(wisp_cli_t *cli, const char *name, const char *payload_arg, bool log_tail)
{
    wisp_err_t err;
    cleanup_free char *payload = NULL;
    size_t len = 0;
    if (wisp__cli_read_payload(payload_arg, &payload, &len, &err) < 0)
        return wisp__cli_fail(&err);
    cleanup_free char *path = wisp__cli_fn_path(name, "/invoke");
    wisp_cli_req_t req = {
        .method = "POST",
        .path = path,
        .content_type = "application/json",
        .body = payload,
        .len = len,
        .timeout_s = 0,
        .max_body = WISP_PAYLOAD_MAX + 64 * 1024,
        .extra_header = log_tail ? "X-Wisp-Log-Type: Tail" : NULL,
    };
    wisp_cli_resp_t resp;
    if (wisp_cli_http(cli, &req, &resp, &err) < 0) {
        wisp_cli_resp_free(&resp);
        return wisp__cli_fail(&err);
    }
    if (resp.status < 200 || resp.status > 299) {
        wisp_cli_api_error(cli, &resp, &err);
        wisp_cli_resp_free(&resp);
        return wisp__cli_fail(&err);
    }

    /* The log tail: from the header, else from the logs API. */
    cleanup_free char *tail = NULL;
    bool have_tail = false;
    if (log_tail && resp.log_result) {
        tail = decode_log_result(resp.log_result);
        have_tail = tail != NULL;
    }
    int rc = WISP_CLI_EXIT_OK;
    if (cli->json) {
        cleanup_json json_t *out = json_object();
        json_object_set_new(out, "status", json_integer(resp.status));
        json_object_set_new(out, "request_id",
                            resp.request_id ? json_string(resp.request_id) : json_null());
        json_object_set_new(out, "cold_start",
                            resp.cold_start < 0 ? json_null() : json_boolean(resp.cold_start));
        json_object_set_new(out, "duration_ms",
                            resp.duration_ms < 0 ? json_null() : json_real(resp.duration_ms));
        json_object_set_new(out, "function_error",
                            resp.function_error ? json_string(resp.function_error) : json_null());
        const char *pkey;
        json_t *p = payload_json(&resp, &pkey);
        json_object_set_new(out, pkey, p ? p : json_null());
        if (log_tail) {
            wisp_buf_t acc = WISP_BUF_INIT(0);
            if (!have_tail && resp.request_id &&
                fetch_log(cli, name, resp.request_id, &acc, &err) == 0) {
                tail = wisp_buf_steal(&acc, NULL);
                have_tail = true;
            }
            wisp_buf_free(&acc);
            json_t *t = have_tail ? json_string(tail) : NULL;
            json_object_set_new(out, "log_tail", t ? t : json_null());
        }
        wisp__cli_print_json(out);
    } else {
        print_body(resp.body.data ? resp.body.data : "", resp.body.len);
        if (log_tail) {
            if (have_tail) {
                fputs(tail, stderr);
                if (*tail && tail[strlen(tail) - 1] != '\n')
                    fputc('\n', stderr);
            } else if (resp.request_id && fetch_log(cli, name, resp.request_id, NULL, &err) < 0) {
                fprintf(stderr, "wisp: no log tail: %s\n", err.msg);
            }
        }
    }
    if (resp.function_error) {
        cleanup_json json_t *e =
            json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        const char *type = json_string_value(json_object_get(e, "errorType"));
        const char *msg = json_string_value(json_object_get(e, "errorMessage"));
        if (!cli->json)
            fprintf(stderr, "wisp: %s failed (%s)%s%s\n", name, type ? type : resp.function_error,
                    msg ? ": " : "", msg ? msg : "");
        rc = WISP_CLI_EXIT_ERROR;
    }
    wisp_cli_resp_free(&resp);
    return rc;
}

int wisp_cli_invoke(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    wisp_err_t err;
    const char *payload = NULL;
    bool log_tail = false, async = false;
    int rc = -1;
    cli.cmd = argv[0];
    wisp__cli_getopt_begin();
    int c;
    while (rc < 0 && (c = wisp__cli_getopt(&cli, argc, argv, "d:", invoke_options, &err)) !=
                         WISP_CLI_GETOPT_END) {
        switch (c) {
        case WISP_CLI_GETOPT_HELP:
            wisp_cli_usage("invoke", stdout);
            rc = WISP_CLI_EXIT_OK;
            break;
        case WISP_CLI_GETOPT_ERROR: rc = wisp__cli_usage_error("invoke", "%s", err.msg); break;
        case 'd':
        case OPT_PAYLOAD: payload = optarg; break;
        case OPT_LOG_TAIL: log_tail = true; break;
        case OPT_ASYNC: async = true; break;
        default: rc = wisp__cli_usage_error("invoke", "unexpected option");
        }
    }
    if (rc < 0 && async)
        rc = wisp__cli_usage_error("invoke", "invoke --async is not supported yet");
    if (rc < 0 && argc - optind != 1)
        rc = wisp__cli_usage_error("invoke", argc - optind < 1 ? "invoke needs a function name"
                                                               : "invoke takes one function name");
    if (rc < 0 && wisp__cli_resolve(&cli, &err) < 0)
        rc = wisp__cli_usage_error("invoke", "%s", err.msg);
    if (rc < 0)
        rc = run_invoke(&cli, argv[optind], payload, log_tail);
    wisp__cli_free(&cli);
    return rc;
}
