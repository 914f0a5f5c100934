/*
 * fuzz_lambda_json.c - the Lambda CreateFunction / UpdateFunctionConfiguration
 * body -> native configuration mapping (and the function-name parser) on
 * arbitrary bytes.
 *
 * Invariants: no crash; a refusal has a code, a message and a Lambda error
 * name and leaves no output behind; an accepted body yields only native
 * fields of the right types within Lambda's ranges, a valid name and a
 * non-empty zip when creating; the registry's validator then accepts or
 * refuses it without crashing, and whatever it accepts renders back as a
 * Lambda FunctionConfiguration.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_lambda_json: invariant failed: %s (line %d)\n", #cond,           \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool int_in(json_t *o, const char *key, long min, long max)
{
    json_t *v = json_object_get(o, key);
    return v == NULL ||
           (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max);
}

static void check_native(json_t *native)
{
    static const char *const allowed[] = {"runtime", "handler", "memory_mb",  "timeout_s",
                                          "tmp_mb",  "env",     "description"};
    REQUIRE(json_is_object(native));
    const char *key;
    json_t *v;
    json_object_foreach(native, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < WISP_ARRAY_LEN(allowed); i++)
            known |= strcmp(key, allowed[i]) == 0;
        REQUIRE(known);
    }
    json_t *rt = json_object_get(native, "runtime");
    REQUIRE(rt == NULL || (json_is_string(rt) && (strcmp(json_string_value(rt), "python3") == 0 ||
                                                  strcmp(json_string_value(rt), "nodejs") == 0 ||
                                                  strcmp(json_string_value(rt), "provided") == 0)));
    REQUIRE(int_in(native, "memory_mb", 128, 10240));
    REQUIRE(int_in(native, "timeout_s", 1, 900));
    REQUIRE(int_in(native, "tmp_mb", 512, 10240));
    json_t *h = json_object_get(native, "handler");
    REQUIRE(h == NULL || json_is_string(h));
    json_t *d = json_object_get(native, "description");
    REQUIRE(d == NULL || json_is_string(d));
    json_t *env = json_object_get(native, "env");
    if (env != NULL) {
        REQUIRE(json_is_object(env));
        json_object_foreach(env, key, v) REQUIRE(json_is_string(v));
    }
}

static void one(json_t *body, bool creating)
{
    json_t *native = NULL;
    char name[WISP_FN_NAME_MAX + 1] = "";
    char *zip = NULL;
    size_t zip_len = 0;
    const char *type = NULL;
    wisp_err_t err = {0};
    int rc = wisp__lambda_map_config(body, creating, &native, name, &zip, &zip_len, &type, &err);
    if (rc < 0) {
        REQUIRE(rc == -1);
        REQUIRE(native == NULL && zip == NULL);
        REQUIRE(err.code == WISP_EINVALID || err.code == WISP_ELIMIT ||
                err.code == WISP_EUNSUPPORTED);
        REQUIRE(err.msg[0] != '\0');
        REQUIRE(type != NULL && type[0] != '\0');
        return;
    }
    check_native(native);
    if (creating) {
        REQUIRE(wisp_fn_name_valid(name));
        REQUIRE(zip != NULL && zip_len > 0 && zip_len <= WISP_ZIP_MAX);
    }
    wisp_fn_t *fn = wisp_fn_new();
    snprintf(fn->name, sizeof fn->name, "%s", creating ? name : "fuzz");
    if (wisp_fn_apply_config(fn, native, creating, &err) == 0) {
        REQUIRE(fn->memory_mb >= 128 && fn->memory_mb <= 10240);
        REQUIRE(fn->timeout_s >= 1 && fn->timeout_s <= 900);
        REQUIRE(fn->tmp_mb >= 512 && fn->tmp_mb <= 10240);
        json_t *cfg = wisp__lambda_config_json(fn, "us-east-1", "000000000000");
        REQUIRE(json_is_object(cfg));
        char *text = json_dumps(cfg, JSON_COMPACT);
        REQUIRE(text != NULL);
        free(text);
        json_decref(cfg);
    } else {
        REQUIRE(err.msg[0] != '\0');
    }
    wisp_fn_free(fn);
    json_decref(native);
    free(zip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The raw bytes as a function name from a path. */
    if (size <= 300) {
        char s[301], name[WISP_FN_NAME_MAX + 1], qualifier[129];
        memcpy(s, data, size);
        s[size] = '\0';
        wisp_err_t err;
        if (wisp__lambda_parse_name(s, name, qualifier, &err) == 0)
            REQUIRE(wisp_fn_name_valid(name) && strlen(qualifier) <= 128);
        else
            REQUIRE(err.code == WISP_EINVALID);
    }
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (body == NULL)
        return 0;
    one(body, true);
    one(body, false);
    json_decref(body);
    return 0;
}
