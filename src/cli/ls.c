/*
 * ls.c - `wisp ls`: the functions as a table (NAME RUNTIME MEMORY TIMEOUT
 * CODE-SIZE MODIFIED), or with --json {"functions":[...]}. Follows the
 * listing's pages when the daemon returns a "next" cursor
 * (GET /v1/functions?after=<next>).
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

#define MAX_PAGES 10000

enum { COL_NAME, COL_RUNTIME, COL_MEMORY, COL_TIMEOUT, COL_SIZE, COL_MODIFIED, NCOLS };

static const char *const headings[NCOLS] = {"NAME",    "RUNTIME",   "MEMORY",
                                            "TIMEOUT", "CODE-SIZE", "MODIFIED"};

/* Every function, over as many pages as the daemon hands out. */
static int list_all(wisp_cli_t *cli, json_t *all, wisp_err_t *err)
{
    cleanup_free char *after = NULL;
    for (int page = 0; page < MAX_PAGES; page++) {
        cleanup_free char *path = NULL;
        if (after) {
            cleanup_free char *enc = wisp__cli_escape(after);
            path = xasprintf("/v1/functions?after=%s", enc);
        } else {
            path = xstrdup("/v1/functions");
        }
        cleanup_json json_t *res = NULL;
        if (wisp_cli_call_json(cli, "GET", path, NULL, &res, NULL, err) < 0)
            return -1;
        json_t *fns = json_object_get(res, "functions");
        if (!json_is_array(fns))
            return wisp_err_set(err, WISP_EINTERNAL, "the daemon's list has no \"functions\"");
        json_array_extend(all, fns);
        const char *next = json_string_value(json_object_get(res, "next"));
        if (next == NULL || *next == '\0' || json_array_size(fns) == 0)
            return 0;
        if (after && strcmp(after, next) == 0)
            return 0;
        free(after);
        after = xstrdup(next);
    }
    return 0;
}

static char *int_cell(json_t *fn, const char *key, const char *unit)
{
    json_t *v = json_object_get(fn, key);
    if (json_is_integer(v))
        return xasprintf("%lld%s", (long long)json_integer_value(v), unit);
    return xstrdup("-");
}

static char *modified_cell(json_t *fn)
{
    char buf[64];
    json_t *v = json_object_get(fn, "modified_ms");
    if (json_is_integer(v)) {
        wisp__cli_human_time(json_integer_value(v), buf, sizeof buf);
        return xstrdup(buf);
    }
    const char *s = json_string_value(json_object_get(fn, "last_modified"));
    if (s == NULL)
        s = json_string_value(json_object_get(fn, "modified"));
    return xstrdup(s ? s : "-");
}

static void fill_row(json_t *fn, char *row[NCOLS])
{
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *runtime = json_string_value(json_object_get(fn, "runtime"));
    row[COL_NAME] = xstrdup(name ? name : "?");
    row[COL_RUNTIME] = xstrdup(runtime && *runtime ? runtime : "-");
    row[COL_MEMORY] = int_cell(fn, "memory_mb", " MB");
    row[COL_TIMEOUT] = int_cell(fn, "timeout_s", " s");
    const char *sha = json_string_value(json_object_get(fn, "code_sha256"));
    json_t *size = json_object_get(fn, "code_size");
    if (json_is_integer(size) && !(sha && *sha == '\0')) {
        char buf[32];
        wisp__cli_human_size(json_integer_value(size), buf, sizeof buf);
        row[COL_SIZE] = xstrdup(buf);
    } else {
        row[COL_SIZE] = xstrdup("-");
    }
    row[COL_MODIFIED] = modified_cell(fn);
}

static void print_table(json_t *fns)
{
    size_t n = json_array_size(fns);
    char *(*rows)[NCOLS] = xcalloc(n + 1, sizeof *rows);
    size_t width[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        rows[0][c] = xstrdup(headings[c]);
        width[c] = strlen(headings[c]);
    }
    for (size_t i = 0; i < n; i++) {
        fill_row(json_array_get(fns, i), rows[i + 1]);
        for (int c = 0; c < NCOLS; c++)
            if (strlen(rows[i + 1][c]) > width[c])
                width[c] = strlen(rows[i + 1][c]);
    }
    for (size_t i = 0; i <= n; i++) {
        for (int c = 0; c < NCOLS; c++) {
            if (c == NCOLS - 1)
                printf("%s\n", rows[i][c]);
            else
                printf("%-*s  ", (int)width[c], rows[i][c]);
            free(rows[i][c]);
        }
    }
    free(rows);
}

int wisp_cli_ls(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    int pos;
    int rc = wisp__cli_parse_simple(&cli, argc, argv, 0, 0, &pos);
    if (rc >= 0) {
        wisp__cli_free(&cli);
        return rc;
    }
    wisp_err_t err;
    cleanup_json json_t *all = json_array();
    if (list_all(&cli, all, &err) < 0) {
        rc = wisp__cli_fail(&err);
    } else if (cli.json) {
        cleanup_json json_t *out = json_pack("{sO}", "functions", all);
        wisp__cli_print_json(out);
        rc = WISP_CLI_EXIT_OK;
    } else {
        print_table(all);
        rc = WISP_CLI_EXIT_OK;
    }
    wisp__cli_free(&cli);
    return rc;
}
