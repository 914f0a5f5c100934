/*
 * main.c - wisp's entry point: `wisp <command> [args]` dispatches to the
 * command's function in src/cli/<command>.c with argv starting at the
 * command's name. Global options written before the command
 * (`wisp --json ls`) are moved after it, so every command parses them.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"serve", wisp_cli_serve}, {"deploy", wisp_cli_deploy},   {"ls", wisp_cli_ls},
    {"get", wisp_cli_get},     {"rm", wisp_cli_rm},           {"invoke", wisp_cli_invoke},
    {"logs", wisp_cli_logs},   {"version", wisp_cli_version}, {"help", wisp_cli_help},
};

/* How many argv entries the global option at argv[i] takes (1 or 2), or 0 if
 * it is not a global option. */
static int global_option_len(char **argv, int argc, int i)
{
    static const char *const with_value[] = {"--admin", "--token", "--data"};
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0)
        return 1;
    for (size_t k = 0; k < WISP_ARRAY_LEN(with_value); k++) {
        size_t n = strlen(with_value[k]);
        if (strncmp(a, with_value[k], n) != 0)
            continue;
        if (a[n] == '=')
            return 1;
        if (a[n] == '\0')
            return i + 1 < argc ? 2 : 1; /* a missing value is reported by the command */
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        wisp_cli_usage(NULL, stderr);
        return WISP_CLI_EXIT_USAGE;
    }
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            wisp_cli_print_version_line(stdout);
            return WISP_CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            wisp_cli_usage(NULL, stdout);
            return WISP_CLI_EXIT_OK;
        }
        int n = global_option_len(argv, argc, i);
        if (n == 0)
            return wisp__cli_usage_error(NULL, "unknown option %s", argv[i]);
        i += n;
    }
    if (i == argc)
        return wisp__cli_usage_error(NULL, "no command given");
    const struct command *cmd = NULL;
    for (size_t k = 0; k < WISP_ARRAY_LEN(commands); k++)
        if (strcmp(commands[k].name, argv[i]) == 0)
            cmd = &commands[k];
    if (cmd == NULL)
        return wisp__cli_usage_error(NULL, "unknown command '%s'", argv[i]);

    /* argv for the command: its name, the leading global options, the rest. */
    char **args = xcalloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    args[n++] = argv[i];
    for (int k = 1; k < i; k++)
        args[n++] = argv[k];
    for (int k = i + 1; k < argc; k++)
        args[n++] = argv[k];
    args[n] = NULL;
    int rc = cmd->run(n, args);
    free(args);
    fflush(stdout);
    return rc;
}
