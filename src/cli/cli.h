/*
 * cli.h - wisp's command-line interface: one entry point per verb
 * (src/cli/<verb>.c, dispatched from src/main.c), the libcurl client of the
 * admin API they share (client.c), and the pure helpers behind them (option
 * parsing, name derivation, runtime detection, folder zipping), which are
 * exposed as wisp__cli_* for the unit tests.
 *
 * Every command takes (argc, argv) with argv[0] the verb and returns the
 * process exit status: 0 success, 1 a server, API or system error, 2 a usage
 * error, 130 interrupted by ^C. Messages go to stderr as "wisp: <message>".
 * Global options accepted by every command: --admin URL, --token TOKEN,
 * --data DIR, --json, -h/--help. The token is never printed.
 *
 * Single-threaded; the client uses the libcurl easy API.
 */
#ifndef WISP_CLI_CLI_H
#define WISP_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/err.h"

#ifndef WISP_VERSION
#define WISP_VERSION "0.0.0-dev"
#endif
#ifndef WISP_GIT
#define WISP_GIT "unknown"
#endif

#define WISP_CLI_DEFAULT_ADMIN "http://127.0.0.1:7701"
#define WISP_CLI_DEFAULT_DATA "./wisp-data"

/* Exit statuses of the commands. */
enum {
    WISP_CLI_EXIT_OK = 0,
    WISP_CLI_EXIT_ERROR = 1, /* the server said no, or the transfer failed */
    WISP_CLI_EXIT_USAGE = 2, /* bad options or arguments */
    WISP_CLI_EXIT_INTERRUPTED = 130,
};

/* ---- commands (argv[0] is the verb) ---- */
int wisp_cli_deploy(int argc, char **argv);
int wisp_cli_ls(int argc, char **argv);
int wisp_cli_get(int argc, char **argv);
int wisp_cli_rm(int argc, char **argv);
int wisp_cli_invoke(int argc, char **argv);
int wisp_cli_logs(int argc, char **argv);
int wisp_cli_version(int argc, char **argv);
int wisp_cli_help(int argc, char **argv);
/* The daemon; written in src/cli/serve.c. */
int wisp_cli_serve(int argc, char **argv);

/* Print the usage of one command (or, with cmd NULL, the overview of all
 * commands) to out. Returns false if cmd is not a known command. */
bool wisp_cli_usage(const char *cmd, FILE *out);
/* One line "wisp <version> (git <id>)" for --version. */
void wisp_cli_print_version_line(FILE *out);

/* ---- global options and their resolution ---- */

/* What every command knows after its options are parsed. Strings are heap
 * copies owned by the struct; free with wisp__cli_free. */
typedef struct wisp_cli {
    const char *cmd; /* the verb, for messages; borrowed from argv */
    char *admin_opt; /* --admin as given, or NULL */
    char *token_opt; /* --token as given, or NULL */
    char *data_opt;  /* --data as given, or NULL */
    bool json;       /* --json: print the raw JSON */
    /* Filled by wisp__cli_resolve: */
    char *admin_url;  /* --admin, $WISP_ADMIN or the default, without trailing '/' */
    char *data_dir;   /* --data, $WISP_DATA or ./wisp-data */
    char *token;      /* --token, $WISP_TOKEN or <data>/admin.token; NULL if none */
    char *token_hint; /* why no token was found (for a 401), or NULL */
} wisp_cli_t;

/* Option ids of the global options (above any char value). */
enum {
    WISP_CLI_OPT_ADMIN = 0x1000,
    WISP_CLI_OPT_TOKEN,
    WISP_CLI_OPT_DATA,
    WISP_CLI_OPT_JSON,
    WISP_CLI_OPT_HELP,
    WISP_CLI_OPT_FIRST_LOCAL, /* commands number their long-only options from here */
};

/* Entries of the global options, for the end of each command's option table
 * (before the terminating {0}). */
/* clang-format off */
#define WISP_CLI_GLOBAL_OPTIONS                                  \
    {"admin", required_argument, NULL, WISP_CLI_OPT_ADMIN},      \
    {"token", required_argument, NULL, WISP_CLI_OPT_TOKEN},      \
    {"data", required_argument, NULL, WISP_CLI_OPT_DATA},        \
    {"json", no_argument, NULL, WISP_CLI_OPT_JSON},              \
    {"help", no_argument, NULL, WISP_CLI_OPT_HELP}
/* clang-format on */

/* What wisp__cli_getopt returns besides a command's own option values. */
enum {
    WISP_CLI_GETOPT_END = -1,   /* no more options; positionals from optind */
    WISP_CLI_GETOPT_ERROR = -2, /* unknown option or missing value; err says which */
    WISP_CLI_GETOPT_HELP = -3,  /* -h/--help was given */
};

/* Start parsing argv (resets getopt's state). */
void wisp__cli_getopt_begin(void);
/* Next option of argv with getopt_long (permuting: options and operands may
 * mix; "--" ends options). Global options are stored into cli and skipped;
 * the command's own ones are returned with optarg set. shortopts lists the
 * command's short options ("d:f"); -h is added. */
int wisp__cli_getopt(wisp_cli_t *cli, int argc, char **argv, const char *shortopts,
                     const struct option *longopts, wisp_err_t *err);

/* Fill admin_url, data_dir and token from the options, the environment
 * ($WISP_ADMIN, $WISP_DATA, $WISP_TOKEN) and <data>/admin.token. Fails
 * (WISP_EINVALID) only for an unusable value, such as a token with control
 * characters; a missing token is not an error here (token stays NULL). */
int wisp__cli_resolve(wisp_cli_t *cli, wisp_err_t *err) __attribute__((warn_unused_result));
void wisp__cli_free(wisp_cli_t *cli);

/* Print "wisp: <msg>" to stderr; return WISP_CLI_EXIT_ERROR (or
 * WISP_CLI_EXIT_INTERRUPTED if the error was an interruption). */
int wisp__cli_fail(const wisp_err_t *err);
/* Print "wisp: <msg>" and a pointer to the command's help; return WISP_CLI_EXIT_USAGE. */
int wisp__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parse the argv of a command that takes only global options and between
 * min_pos and max_pos (-1: any number) positional arguments (ls, get, rm,
 * version), then resolve cli. Returns -1 to go on with the positionals at
 * argv[*first_pos..argc), or the exit status to return at once (help printed,
 * usage error reported). */
int wisp__cli_parse_simple(wisp_cli_t *cli, int argc, char **argv, int min_pos, int max_pos,
                           int *first_pos);

/* ---- pure helpers (unit-tested) ---- */

/* Parse a non-negative decimal int ("0".."2147483647"), nothing else
 * (no sign, spaces or suffix). WISP_EINVALID naming what with the value. */
int wisp__cli_parse_uint(const char *what, const char *s, int *out, wisp_err_t *err);
/* Parse one --env K=V into obj (which it updates; a repeated key wins).
 * K must match [A-Za-z_][A-Za-z0-9_]*; V may be empty. */
int wisp__cli_parse_env(const char *kv, json_t *obj, wisp_err_t *err);
/* True if name matches [A-Za-z0-9_-]{1,64}. */
bool wisp__cli_name_valid(const char *name);
/* Derive a function name from a deploy path: the base name of the folder or
 * file (trailing slashes ignored, ".zip" dropped; "." or ".." resolve to the
 * real folder's name). *out is a heap string. WISP_EINVALID if the result is
 * not a valid name. */
int wisp__cli_name_from_path(const char *path, char **out, wisp_err_t *err);
/* Parse --since: a duration back from now_ms ("90s", "10m", "1h", "2d",
 * "500ms") or epoch milliseconds (digits only). */
int wisp__cli_parse_since(const char *s, int64_t now_ms, int64_t *out, wisp_err_t *err);
/* Epoch milliseconds as "YYYY-MM-DD hh:mm:ss" UTC into out. */
void wisp__cli_human_time(int64_t ms, char *out, size_t n);
/* "1.2 KiB", "3 B", "4.0 MiB" into out. */
void wisp__cli_human_size(int64_t bytes, char *out, size_t n);
/* s percent-encoded for a URL path segment or query value; heap string. */
char *wisp__cli_escape(const char *s);
/* "/v1/functions/<percent-encoded name><suffix>"; heap string. */
char *wisp__cli_fn_path(const char *name, const char *suffix);

/* deploy's options. Numbers are -1 when not given. */
typedef struct wisp_cli_deploy_opts {
    const char *path;        /* the folder or .zip (borrowed from argv) */
    const char *name;        /* --name or NULL */
    const char *runtime;     /* --runtime or NULL */
    const char *handler;     /* --handler or NULL */
    const char *description; /* --description or NULL */
    int memory_mb, timeout_s, tmp_mb, idle_timeout_s, min_warm;
    int concurrency; /* -1 not given, -2 "none" (JSON null: no reservation) */
    json_t *env;     /* --env pairs, or NULL if none was given; owned */
} wisp_cli_deploy_opts_t;

/* Parse deploy's argv. Returns 0 or WISP_CLI_GETOPT_HELP for --help (free o
 * with wisp__cli_deploy_opts_free in both cases), or -1 (WISP_EINVALID: a
 * usage error; nothing to free) with err filled. */
int wisp__cli_parse_deploy(wisp_cli_t *cli, int argc, char **argv, wisp_cli_deploy_opts_t *o,
                           wisp_err_t *err);
void wisp__cli_deploy_opts_free(wisp_cli_deploy_opts_t *o);
/* The config JSON to PUT: only the fields given, plus runtime and handler
 * (given or detected, either may be NULL) when creating. New reference. */
json_t *wisp__cli_deploy_config(const wisp_cli_deploy_opts_t *o, const char *runtime,
                                const char *handler, bool creating);

/* A top-level file of a package, for runtime detection. */
typedef struct wisp_cli_file {
    const char *name; /* base name */
    bool exec;        /* a regular file with an executable bit */
} wisp_cli_file_t;

/* Detect runtime and handler from the package's top-level regular files:
 *   executable "bootstrap"                 -> provided (handler NULL)
 *   "app.py"                               -> python3, "app.handler"
 *   "lambda_function.py"                   -> python3, "lambda_function.lambda_handler"
 *   "index.js" | "index.mjs" | "index.cjs" -> nodejs, "index.handler"
 * in that order. *runtime and *handler point to static strings. WISP_ENOTFOUND
 * with a hint when nothing matches. */
int wisp__cli_detect_runtime(const wisp_cli_file_t *files, size_t n, const char **runtime,
                             const char **handler, wisp_err_t *err);
/* The top-level regular files of a folder / of a zip in memory; free with
 * wisp__cli_files_free. */
int wisp__cli_list_dir(const char *dir, wisp_cli_file_t **files, size_t *n, wisp_err_t *err);
int wisp__cli_list_zip(const void *zip, size_t len, wisp_cli_file_t **files, size_t *n,
                       wisp_err_t *err);
void wisp__cli_files_free(wisp_cli_file_t *files, size_t n);

/* Zip a folder in memory: regular files and folders in byte order of their
 * names, files 0755 if any executable bit is set else 0644, folders 0755,
 * fixed timestamps and owners (the same tree gives the same bytes, so the
 * same code_sha256). Symlinks are followed when they resolve inside the
 * folder (packages cannot hold symlinks) and refused when they point outside
 * it, dangle or loop; fifos, sockets and devices are refused. Fails with
 * WISP_ELIMIT past the package limits (50 MiB zipped, 250 MiB unzipped,
 * 20000 entries), WISP_EINVALID for an empty folder. *zip is a heap buffer. */
int wisp__cli_zip_dir(const char *dir, char **zip, size_t *len, wisp_err_t *err);

/* The event of `invoke -d ARG`: ARG itself, the file after '@', or stdin for
 * "@-"; NULL ARG gives "{}". Refuses more than the 6 MiB sync payload limit
 * (WISP_ELIMIT). *out is a NUL-terminated heap buffer. */
int wisp__cli_read_payload(const char *arg, char **out, size_t *len, wisp_err_t *err);

/* One log record ({"id","ts","request_id","stream","line"}) as the human
 * line "TIMESTAMP REQUEST-ID LINE" (control characters shown as '?', no
 * trailing newline); heap string. */
char *wisp__cli_format_log(json_t *rec);

/* ---- the admin API client (client.c) ---- */

/* One request. path starts with '/' and is already percent-encoded. */
typedef struct wisp_cli_req {
    const char *method; /* "GET", "PUT", "POST", "DELETE" */
    const char *path;
    const char *content_type; /* of body, or NULL */
    const void *body;         /* may be NULL */
    size_t len;
    long timeout_s;           /* whole transfer; 0 = none (invoke, follow) */
    size_t max_body;          /* response body cap; 0 = 64 MiB */
    const char *extra_header; /* one more "Name: value", or NULL */
    /* Streaming: when set and the status is 2xx, each complete line of the
     * body (without "\n") is passed here instead of being kept in the
     * response; a non-zero return stops the transfer. */
    int (*on_line)(void *data, const char *line, size_t len);
    void *data;
} wisp_cli_req_t;

typedef struct wisp_cli_resp {
    long status;          /* HTTP status */
    wisp_buf_t body;      /* the body (unless streamed) */
    char *request_id;     /* X-Wisp-Request-Id or NULL */
    char *function_error; /* X-Wisp-Function-Error or NULL */
    char *log_result;     /* X-Wisp-Log-Result (base64) or NULL */
    int cold_start;       /* X-Wisp-Cold-Start: 1, 0, or -1 if absent */
    double duration_ms;   /* X-Wisp-Duration-Ms, or -1 if absent */
} wisp_cli_resp_t;

/* Send one request to cli->admin_url with the bearer token. Any HTTP status
 * is a success here (the caller looks at resp->status); fails for transfer
 * errors (WISP_EUNAVAILABLE: cannot connect, with the URL in the message),
 * a body past max_body (WISP_ELIMIT) or ^C (WISP_EUNAVAILABLE, errno EINTR).
 * resp must be freed with wisp_cli_resp_free even on failure. */
int wisp_cli_http(const wisp_cli_t *cli, const wisp_cli_req_t *req, wisp_cli_resp_t *resp,
                  wisp_err_t *err) __attribute__((warn_unused_result));
void wisp_cli_resp_free(wisp_cli_resp_t *resp);
/* Turn a non-2xx response into an error: the server's {"error":{"message"}}
 * (or the status and start of the body), the code mapped from the status,
 * and for 401 a hint on where the token comes from. Returns -1. */
int wisp_cli_api_error(const wisp_cli_t *cli, const wisp_cli_resp_t *resp, wisp_err_t *err);
/* Request with an optional JSON body, expecting one of the 2xx statuses and
 * a JSON body (or none: *out NULL). *status (may be NULL) gets the status. */
int wisp_cli_call_json(const wisp_cli_t *cli, const char *method, const char *path, json_t *body,
                       json_t **out, long *status, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* True once the user pressed ^C during a transfer. */
bool wisp_cli_interrupted(void);

/* Print JSON to stdout, indented, with a newline. */
void wisp__cli_print_json(json_t *j);

#endif
