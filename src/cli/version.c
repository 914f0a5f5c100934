/*
 * version.c - `wisp version`: the client's version and git id and, when the
 * daemon answers GET /healthz, the server's ({"version","git"} in its
 * answer). The daemon being down is reported but is not an error.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

#define HEALTHZ_TIMEOUT_S 5
#define HEALTHZ_MAX (64 * 1024)

void wisp_cli_print_version_line(FILE *out)
{
    fprintf(out, "wisp %s (git %s)\n", WISP_VERSION, WISP_GIT);
}

/* The daemon's /healthz as JSON: its object, or {"status":<http status>}
 * when it answered with something else. NULL with err when unreachable. */
static json_t *healthz(wisp_cli_t *cli, wisp_err_t *err)
{
    wisp_cli_req_t req = {
        .method = "GET",
        .path = "/healthz",
        .timeout_s = HEALTHZ_TIMEOUT_S,
        .max_body = HEALTHZ_MAX,
    };
    wisp_cli_resp_t resp;
    json_t *j = NULL;
    if (wisp_cli_http(cli, &req, &resp, err) == 0) {
        if (resp.body.len)
            j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            j = json_pack("{sI}", "http_status", (json_int_t)resp.status);
        }
    }
    wisp_cli_resp_free(&resp);
    return j;
}

int wisp_cli_version(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    int pos;
    int rc = wisp__cli_parse_simple(&cli, argc, argv, 0, 0, &pos);
    if (rc >= 0) {
        wisp__cli_free(&cli);
        return rc;
    }
    wisp_err_t err;
    cleanup_json json_t *server = healthz(&cli, &err);
    if (server == NULL && wisp_cli_interrupted()) {
        wisp__cli_free(&cli);
        return wisp__cli_fail(&err);
    }
    if (cli.json) {
        cleanup_json json_t *out =
            json_pack("{s{ssss}sO}", "client", "version", WISP_VERSION, "git", WISP_GIT, "server",
                      server ? server : json_null());
        wisp__cli_print_json(out);
    } else {
        wisp_cli_print_version_line(stdout);
        const char *v = json_string_value(json_object_get(server, "version"));
        const char *git = json_string_value(json_object_get(server, "git"));
        if (server == NULL)
            printf("server: not reachable at %s\n", cli.admin_url);
        else if (v && git)
            printf("server: wisp %s (git %s) at %s\n", v, git, cli.admin_url);
        else if (v)
            printf("server: wisp %s at %s\n", v, cli.admin_url);
        else
            printf("server: answering at %s (no version in /healthz)\n", cli.admin_url);
    }
    wisp__cli_free(&cli);
    return WISP_CLI_EXIT_OK;
}
