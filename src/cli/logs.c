/*
 * logs.c - `wisp logs NAME [-f] [--request-id ID] [--since WHEN]`: a
 * function's log lines as "TIMESTAMP REQUEST-ID LINE" (with --json the
 * records, one JSON object per line).
 *
 * The daemon's API (GET /v1/functions/{name}/logs):
 *   ?since=<epoch ms>&request_id=<id>&after=<id>&limit=<n>
 *     -> {"logs":[{"id","ts","request_id","stream","line"}...], "next":<last id>, "more":bool}
 *     ascending ids; the client asks again with after=<next> while "more" is
 *     true or, when the daemon sends no "more", until a page comes back empty.
 *   &follow=1
 *     -> a chunked application/x-ndjson stream: the stored lines that match,
 *     then new ones as they come, one record per line (blank lines are
 *     keep-alives), until the client goes away.
 * When a followed stream ends the client reconnects with after=<last id>
 * a second later, so following survives the stream being cut (and works,
 * by polling, against a daemon that answers follow=1 with one page).
 */
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"

#define MAX_PAGES 100000
#define RECONNECT_DELAY_S 1

enum {
    OPT_FOLLOW = WISP_CLI_OPT_FIRST_LOCAL,
    OPT_REQUEST_ID,
    OPT_SINCE,
};

static const struct option logs_options[] = {
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"request-id", required_argument, NULL, OPT_REQUEST_ID},
    {"since", required_argument, NULL, OPT_SINCE},
    WISP_CLI_GLOBAL_OPTIONS,
    {0},
};

struct logs {
    wisp_cli_t *cli;
    const char *name;
    const char *request_id;
    int64_t since; /* -1 if not given */
    int64_t after; /* last id seen, 0 if none */
};

static void print_record(struct logs *lg, json_t *rec)
{
    json_t *id = json_object_get(rec, "id");
    if (json_is_integer(id) && json_integer_value(id) > lg->after)
        lg->after = json_integer_value(id);
    if (lg->cli->json) {
        cleanup_free char *s = json_dumps(rec, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
    } else {
        cleanup_free char *s = wisp__cli_format_log(rec);
        printf("%s\n", s);
    }
}

static void print_page(struct logs *lg, json_t *page)
{
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(page, "logs"), i, rec) print_record(lg, rec);
    json_t *next = json_object_get(page, "next");
    if (json_is_integer(next) && json_integer_value(next) > lg->after)
        lg->after = json_integer_value(next);
}

static char *logs_path(struct logs *lg, bool follow)
{
    wisp_buf_t q = WISP_BUF_INIT(0);
    wisp_buf_addf(&q, "/logs?");
    if (lg->since >= 0)
        wisp_buf_addf(&q, "since=%lld&", (long long)lg->since);
    if (lg->request_id) {
        cleanup_free char *rid = wisp__cli_escape(lg->request_id);
        wisp_buf_addf(&q, "request_id=%s&", rid);
    }
    if (lg->after > 0)
        wisp_buf_addf(&q, "after=%lld&", (long long)lg->after);
    if (follow)
        wisp_buf_addf(&q, "follow=1&");
    q.data[--q.len] = '\0'; /* the last '&' or '?' */
    char *path = wisp__cli_fn_path(lg->name, q.data);
    wisp_buf_free(&q);
    return path;
}

static int list_logs(struct logs *lg, wisp_err_t *err)
{
    for (int page = 0; page < MAX_PAGES; page++) {
        cleanup_free char *path = logs_path(lg, false);
        cleanup_json json_t *res = NULL;
        if (wisp_cli_call_json(lg->cli, "GET", path, NULL, &res, NULL, err) < 0)
            return -1;
        if (!json_is_array(json_object_get(res, "logs")))
            return wisp_err_set(err, WISP_EINTERNAL, "the daemon's answer has no \"logs\"");
        int64_t before = lg->after;
        print_page(lg, res);
        /* Without "more" the daemon's pages end with an empty one. */
        json_t *more = json_object_get(res, "more");
        if ((more ? !json_is_true(more) : json_array_size(json_object_get(res, "logs")) == 0) ||
            lg->after == before)
            break;
    }
    fflush(stdout);
    return 0;
}

static int on_stream_line(void *data, const char *line, size_t len)
{
    struct logs *lg = data;
    if (strspn(line, " \t\r") == len)
        return 0;
    cleanup_json json_t *rec = json_loadb(line, len, 0, NULL);
    if (!json_is_object(rec)) {
        fprintf(stderr, "wisp: skipping a log record that is not JSON: %.80s\n", line);
        return 0;
    }
    if (json_is_array(json_object_get(rec, "logs")))
        print_page(lg, rec);
    else
        print_record(lg, rec);
    fflush(stdout);
    return 0;
}

static int follow_logs(struct logs *lg, wisp_err_t *err)
{
    for (;;) {
        cleanup_free char *path = logs_path(lg, true);
        wisp_cli_req_t req = {
            .method = "GET",
            .path = path,
            .timeout_s = 0,
            .on_line = on_stream_line,
            .data = lg,
        };
        wisp_cli_resp_t resp;
        int rc = wisp_cli_http(lg->cli, &req, &resp, err);
        if (rc == 0 && (resp.status < 200 || resp.status > 299))
            rc = wisp_cli_api_error(lg->cli, &resp, err);
        wisp_cli_resp_free(&resp);
        if (rc < 0)
            return wisp_cli_interrupted() ? 0 : -1;
        sleep(RECONNECT_DELAY_S);
    }
}

int wisp_cli_logs(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    wisp_err_t err;
    struct logs lg = {.cli = &cli, .since = -1};
    bool follow = false;
    int rc = -1;
    cli.cmd = argv[0];
    wisp__cli_getopt_begin();
    int c;
    while (rc < 0 && (c = wisp__cli_getopt(&cli, argc, argv, "f", logs_options, &err)) !=
                         WISP_CLI_GETOPT_END) {
        switch (c) {
        case WISP_CLI_GETOPT_HELP:
            wisp_cli_usage("logs", stdout);
            rc = WISP_CLI_EXIT_OK;
            break;
        case WISP_CLI_GETOPT_ERROR: rc = wisp__cli_usage_error("logs", "%s", err.msg); break;
        case 'f':
        case OPT_FOLLOW: follow = true; break;
        case OPT_REQUEST_ID: lg.request_id = optarg; break;
        case OPT_SINCE:
            if (wisp__cli_parse_since(optarg, wisp_now_ms(), &lg.since, &err) < 0)
                rc = wisp__cli_usage_error("logs", "%s", err.msg);
            break;
        default: rc = wisp__cli_usage_error("logs", "unexpected option");
        }
    }
    if (rc < 0 && argc - optind != 1)
        rc = wisp__cli_usage_error("logs", argc - optind < 1 ? "logs needs a function name"
                                                             : "logs takes one function name");
    if (rc < 0 && wisp__cli_resolve(&cli, &err) < 0)
        rc = wisp__cli_usage_error("logs", "%s", err.msg);
    if (rc < 0) {
        lg.name = argv[optind];
        if ((follow ? follow_logs(&lg, &err) : list_logs(&lg, &err)) < 0)
            rc = wisp__cli_fail(&err);
        else
            rc = WISP_CLI_EXIT_OK;
    }
    wisp__cli_free(&cli);
    return rc;
}
