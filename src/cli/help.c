/*
 * help.c - `wisp help [CMD]` and the usage text of every command, printed by
 * `wisp CMD --help` as well.
 */
#include <string.h>

#include "cli/cli.h"

#define GLOBAL_OPTIONS                                                                             \
    "Global options:\n"                                                                            \
    "  --admin URL    admin API (default $WISP_ADMIN or " WISP_CLI_DEFAULT_ADMIN ")\n"             \
    "  --token TOKEN  admin token (default $WISP_TOKEN or <data>/admin.token)\n"                   \
    "  --data DIR     data folder holding admin.token (default $WISP_DATA "                        \
    "or " WISP_CLI_DEFAULT_DATA ")\n"                                                              \
    "  --json         print JSON instead of text\n"                                                \
    "  -h, --help     show this help\n"

struct command_help {
    const char *name;
    const char *summary;
    const char *usage; /* the rest after the summary */
};

static const struct command_help commands[] = {
    {"serve", "run the platform (gateway and admin API)",
     "usage: wisp serve [--listen ADDR] [--admin ADDR] [--data DIR]\n"
     "\n"
     "Runs the daemon: the gateway on --listen (default 127.0.0.1:7700) and the\n"
     "admin API on --admin (default 127.0.0.1:7701), with its state in --data\n"
     "(default $WISP_DATA or ./wisp-data). See 'wisp serve --help' for all options.\n"},
    {"deploy", "create or update a function from a folder or .zip",
     "usage: wisp deploy PATH [options]\n"
     "\n"
     "PATH is a folder (zipped here: files and folders, executable bits kept,\n"
     "symlinks stored as what they point to, refused if they point outside the\n"
     "folder) or a .zip sent as is. The function is created if it does not exist.\n"
     "\n"
     "Options:\n"
     "  --name NAME          function name (default: the folder or file name\n"
     "                       without .zip; names are [A-Za-z0-9_-]{1,64})\n"
     "  --runtime R          provided | python3 | nodejs\n"
     "  --handler H          module.function, e.g. app.handler\n"
     "  --memory MB          memory limit, 128-10240\n"
     "  --timeout S          time limit in seconds, 1-900\n"
     "  --env KEY=VALUE      environment variable; repeat for more; replaces\n"
     "                       the function's whole environment\n"
     "  --concurrency N      reserved concurrency, or 'none'\n"
     "  --tmp MB             size of /tmp\n"
     "  --idle-timeout S     how long an idle environment is kept warm\n"
     "  --min-warm N         environments kept warm\n"
     "  --description TEXT   free text\n"
     "\n"
     "When the function is new and --runtime is not given, the runtime and\n"
     "handler are detected from the files at the top of the package:\n"
     "  executable bootstrap          provided\n"
     "  app.py                        python3, handler app.handler\n"
     "  lambda_function.py            python3, handler lambda_function.lambda_handler\n"
     "  index.js, index.mjs, index.cjs  nodejs, handler index.handler\n"
     "On an update only the options given change the configuration.\n"},
    {"ls", "list functions",
     "usage: wisp ls\n"
     "\n"
     "Prints NAME RUNTIME MEMORY TIMEOUT CODE-SIZE MODIFIED, one function a line.\n"},
    {"get", "show one function", "usage: wisp get NAME\n"},
    {"rm", "delete functions", "usage: wisp rm NAME...\n"},
    {"invoke", "invoke a function and print its result",
     "usage: wisp invoke NAME [-d JSON | -d @FILE | -d @-] [--log-tail]\n"
     "\n"
     "Sends the event (default {}) and prints the result. If the function fails,\n"
     "its error JSON is printed, a summary goes to stderr and the exit status is 1.\n"
     "\n"
     "Options:\n"
     "  -d, --payload EVENT  the event: JSON text, @FILE, or @- for stdin\n"
     "  --log-tail           also print the invocation's log to stderr\n"
     "  --async              (not supported yet)\n"
     "With --json: {\"status\",\"request_id\",\"cold_start\",\"duration_ms\",\n"
     "\"function_error\",\"payload\"}.\n"},
    {"logs", "show a function's logs",
     "usage: wisp logs NAME [-f] [--request-id ID] [--since WHEN]\n"
     "\n"
     "Prints TIMESTAMP REQUEST-ID LINE. With --json, one JSON record a line.\n"
     "\n"
     "Options:\n"
     "  -f, --follow         keep printing new lines until ^C\n"
     "  --request-id ID      only the lines of one invocation\n"
     "  --since WHEN         a duration back from now (30s, 10m, 2h, 1d) or\n"
     "                       epoch milliseconds\n"},
    {"version", "print the client's and the daemon's versions", "usage: wisp version\n"},
    {"help", "show help", "usage: wisp help [COMMAND]\n"},
};

static const struct command_help *find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool wisp_cli_usage(const char *cmd, FILE *out)
{
    if (cmd == NULL) {
        fputs("usage: wisp [--version] [--help] COMMAND [ARGS]\n"
              "\n"
              "wisp runs functions on demand on your own machine.\n"
              "\n"
              "Commands:\n",
              out);
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
        fputs("\n" GLOBAL_OPTIONS "\nRun 'wisp help COMMAND' for a command's options.\n", out);
        return true;
    }
    const struct command_help *c = find(cmd);
    if (c == NULL)
        return false;
    fprintf(out, "wisp %s - %s\n\n%s\n" GLOBAL_OPTIONS, c->name, c->summary, c->usage);
    return true;
}

int wisp_cli_help(int argc, char **argv)
{
    if (argc > 2)
        return wisp__cli_usage_error("help", "help takes at most one command");
    if (argc == 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0) {
        if (!wisp_cli_usage(argv[1], stdout))
            return wisp__cli_usage_error(NULL, "unknown command '%s'", argv[1]);
        return WISP_CLI_EXIT_OK;
    }
    wisp_cli_usage(argc == 2 ? "help" : NULL, stdout);
    return WISP_CLI_EXIT_OK;
}
