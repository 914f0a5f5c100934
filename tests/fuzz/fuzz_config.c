/*
 * fuzz_config.c - function configuration from arbitrary bytes: parsed as JSON
 * and applied with wisp_fn_apply_config both as a create (defaults) and as an
 * update of an existing python3 function.
 *
 * Invariants on success (abort on violation), checked here independently of
 * the validator: name valid; runtime one of the three; every number in its
 * range; min_warm <= concurrency when set; handler present and well formed
 * for python3/nodejs; description and handler within their sizes; env an
 * object of NUL-free strings under valid, non-reserved names within 4 KiB;
 * the JSON view reads back to the same function; the configuration part of
 * the JSON view applied to a new function gives the same configuration. A
 * config that applies must also pass the field-only check.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "registry/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant failed: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool env_name_ok(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return strncmp(k, "AWS_LAMBDA_", 11) != 0 && strcmp(k, "_HANDLER") != 0 &&
           strcmp(k, "LAMBDA_TASK_ROOT") != 0 && strcmp(k, "AWS_REGION") != 0;
}

static void check_fn(const wisp_fn_t *fn)
{
    FUZZ_CHECK(wisp_fn_name_valid(fn->name));
    bool py = strcmp(fn->runtime, "python3") == 0, node = strcmp(fn->runtime, "nodejs") == 0;
    FUZZ_CHECK(py || node || strcmp(fn->runtime, "provided") == 0);
    FUZZ_CHECK(fn->memory_mb >= 128 && fn->memory_mb <= 10240);
    FUZZ_CHECK(fn->timeout_s >= 1 && fn->timeout_s <= 900);
    FUZZ_CHECK(fn->tmp_mb >= 512 && fn->tmp_mb <= 10240);
    FUZZ_CHECK(fn->idle_timeout_s >= 0 && fn->idle_timeout_s <= 86400);
    FUZZ_CHECK(fn->min_warm >= 0 && fn->min_warm <= 100);
    FUZZ_CHECK(fn->concurrency == -1 || (fn->concurrency >= 0 && fn->concurrency <= 1000));
    FUZZ_CHECK(fn->concurrency == -1 || fn->min_warm <= fn->concurrency);
    FUZZ_CHECK(strlen(fn->description) <= 256);
    size_t hl = strlen(fn->handler);
    FUZZ_CHECK(hl <= 128);
    if (py || node) {
        FUZZ_CHECK(hl > 0 && strchr(fn->handler, '.') != NULL);
        FUZZ_CHECK(fn->handler[0] != '/');
        /* No path component is "." or "..". */
        char copy[129];
        snprintf(copy, sizeof copy, "%s", fn->handler);
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
            FUZZ_CHECK(strcmp(c, "..") != 0 && strcmp(c, ".") != 0);
        FUZZ_CHECK(strstr(fn->handler, "//") == NULL);
        FUZZ_CHECK(fn->handler[hl - 1] != '.');
    }
    for (size_t i = 0; i < hl; i++)
        FUZZ_CHECK(fn->handler[i] > ' ' && fn->handler[i] < 0x7f);
    FUZZ_CHECK(json_is_object(fn->env));
    size_t total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(fn->env, key, val)
    {
        FUZZ_CHECK(env_name_ok(key));
        FUZZ_CHECK(json_is_string(val));
        FUZZ_CHECK(strlen(json_string_value(val)) == json_string_length(val));
        total += strlen(key) + json_string_length(val);
    }
    FUZZ_CHECK(total <= WISP_ENV_BYTES_MAX);

    /* The stored view reads back to the same function. */
    json_t *view = wisp_fn_to_json(fn);
    wisp_fn_t *back = NULL;
    FUZZ_CHECK(wisp__fn_from_doc(view, &back, NULL) == 0);
    json_t *view2 = wisp_fn_to_json(back);
    FUZZ_CHECK(json_equal(view, view2));
    json_decref(view2);
    wisp_fn_free(back);

    /* Its configuration part, applied to a new function, gives the same. */
    static const char *const maintained[] = {"code_sha256", "code_size",  "revision",   "created",
                                             "modified",    "created_ms", "modified_ms"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(maintained); i++)
        json_object_del(view, maintained[i]);
    wisp_fn_t *again = wisp_fn_new();
    snprintf(again->name, sizeof again->name, "%s", fn->name);
    wisp_err_t err;
    int rc = wisp_fn_apply_config(again, view, true, &err);
    if (rc != 0)
        fprintf(stderr, "fuzz_config: re-apply failed: %s\n", err.msg);
    FUZZ_CHECK(rc == 0);
    json_t *view3 = wisp_fn_to_json(again);
    for (size_t i = 0; i < WISP_ARRAY_LEN(maintained); i++)
        json_object_del(view3, maintained[i]);
    FUZZ_CHECK(json_equal(view, view3));
    json_decref(view3);
    json_decref(view);
    wisp_fn_free(again);
}

static void try_apply(json_t *config, bool creating)
{
    wisp_fn_t *fn = wisp_fn_new();
    snprintf(fn->name, sizeof fn->name, "fuzzed");
    if (!creating) {
        snprintf(fn->runtime, sizeof fn->runtime, "python3");
        snprintf(fn->handler, sizeof fn->handler, "app.handler");
        fn->memory_mb = 1024;
        fn->concurrency = 10;
        fn->min_warm = 2;
        json_object_set_new(fn->env, "KEEP", json_string("me"));
    }
    wisp_err_t err;
    int rc = wisp_fn_apply_config(fn, config, creating, &err);
    if (rc == 0) {
        check_fn(fn);
        FUZZ_CHECK(wisp__fn_check_fields(fn->name, config, &err) == 0);
    } else {
        FUZZ_CHECK(err.code == WISP_EINVALID || err.code == WISP_ELIMIT);
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    wisp_fn_free(fn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    /* As the API parses bodies: duplicates refused, any top-level value. */
    json_t *config = json_loadb((const char *)data, size,
                                JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (config == NULL)
        return 0;
    try_apply(config, true);
    try_apply(config, false);
    json_decref(config);
    return 0;
}
