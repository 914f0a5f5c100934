/*
 * get.c - `wisp get NAME`: one function as "key: value" lines in the
 * daemon's order (env one KEY=VALUE per line, epoch-millisecond times also
 * shown as UTC dates), or with --json the function's JSON.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void print_value(const char *key, json_t *v, int indent)
{
    switch (json_typeof(v)) {
    case JSON_STRING: printf("%s\n", json_string_value(v)); break;
    case JSON_INTEGER:
        if (ends_with(key, "_ms") && json_integer_value(v) > 0) {
            char t[64];
            wisp__cli_human_time(json_integer_value(v), t, sizeof t);
            printf("%s UTC (%lld)\n", t, (long long)json_integer_value(v));
        } else {
            printf("%lld\n", (long long)json_integer_value(v));
        }
        break;
    case JSON_NULL: printf("-\n"); break;
    case JSON_OBJECT:
        if (strcmp(key, "env") == 0 && json_object_size(v) > 0) {
            const char *k;
            json_t *ev;
            bool first = true;
            json_object_foreach(v, k, ev)
            {
                const char *s = json_string_value(ev);
                cleanup_free char *dumped = s ? NULL : json_dumps(ev, JSON_ENCODE_ANY);
                printf("%*s%s=%s\n", first ? 0 : indent, "", k, s ? s : dumped);
                first = false;
            }
            break;
        }
        /* fall through */
    default: {
        cleanup_free char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%s\n", s ? s : "?");
    }
    }
}

static void print_fn(json_t *fn)
{
    const char *key;
    json_t *v;
    int width = 0;
    json_object_foreach(fn, key, v) if ((int)strlen(key) > width) width = (int)strlen(key);
    json_object_foreach(fn, key, v)
    {
        printf("%s:%*s ", key, width - (int)strlen(key), "");
        print_value(key, v, width + 2);
    }
}

int wisp_cli_get(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    int pos;
    int rc = wisp__cli_parse_simple(&cli, argc, argv, 1, 1, &pos);
    if (rc >= 0) {
        wisp__cli_free(&cli);
        return rc;
    }
    wisp_err_t err;
    cleanup_free char *path = wisp__cli_fn_path(argv[pos], NULL);
    cleanup_json json_t *fn = NULL;
    if (wisp_cli_call_json(&cli, "GET", path, NULL, &fn, NULL, &err) < 0) {
        rc = wisp__cli_fail(&err);
    } else if (!json_is_object(fn)) {
        fprintf(stderr, "wisp: the daemon's answer is not a JSON object\n");
        rc = WISP_CLI_EXIT_ERROR;
    } else {
        if (cli.json)
            wisp__cli_print_json(fn);
        else
            print_fn(fn);
        rc = WISP_CLI_EXIT_OK;
    }
    wisp__cli_free(&cli);
    return rc;
}
