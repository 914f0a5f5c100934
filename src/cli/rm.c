/*
 * rm.c - `wisp rm NAME...`: delete functions (DELETE /v1/functions/{name}).
 * Goes on past a failure and exits 1 if any delete failed.
 */
#include "cli/cli.h"
#include "core/util.h"

int wisp_cli_rm(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    int pos;
    int rc = wisp__cli_parse_simple(&cli, argc, argv, 1, -1, &pos);
    if (rc >= 0) {
        wisp__cli_free(&cli);
        return rc;
    }
    rc = WISP_CLI_EXIT_OK;
    for (int i = pos; i < argc; i++) {
        wisp_err_t err;
        cleanup_free char *path = wisp__cli_fn_path(argv[i], NULL);
        if (wisp_cli_call_json(&cli, "DELETE", path, NULL, NULL, NULL, &err) < 0) {
            int r = wisp__cli_fail(&err);
            if (r == WISP_CLI_EXIT_INTERRUPTED) {
                rc = r;
                break;
            }
            rc = r;
            continue;
        }
        if (cli.json) {
            cleanup_json json_t *out = json_pack("{ss sb}", "name", argv[i], "deleted", 1);
            wisp__cli_print_json(out);
        } else {
            printf("deleted %s\n", argv[i]);
        }
    }
    wisp__cli_free(&cli);
    return rc;
}
