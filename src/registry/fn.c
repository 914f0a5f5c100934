/*
 * fn.c - one function's configuration: defaults, the one validator that the
 * native API, the Lambda API and the CLI all go through, and the JSON views.
 *
 * Validation errors name the field and say what is allowed ("memory_mb must be
 * an integer between 128 and 10240"), because they go back to users as they
 * are.
 */
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "registry/internal.h"

#define HANDLER_MAX 128
#define DESCRIPTION_MAX 256

wisp_fn_t *wisp_fn_new(void)
{
    wisp_fn_t *fn = xcalloc(1, sizeof *fn);
    fn->memory_mb = 128;
    fn->timeout_s = 3;
    fn->tmp_mb = 512;
    fn->idle_timeout_s = 300;
    fn->concurrency = -1;
    fn->min_warm = 0;
    fn->env = json_object();
    return fn;
}

wisp_fn_t *wisp_fn_dup(const wisp_fn_t *fn)
{
    wisp_fn_t *copy = xmalloc(sizeof *copy);
    memcpy(copy, fn, sizeof *copy);
    copy->env = json_deep_copy(fn->env);
    return copy;
}

void wisp_fn_free(wisp_fn_t *fn)
{
    if (fn == NULL)
        return;
    json_decref(fn->env);
    free(fn);
}

json_t *wisp_fn_to_json(const wisp_fn_t *fn)
{
    char created[32], modified[32];
    wisp_time_rfc3339(fn->created_ms, created);
    wisp_time_rfc3339(fn->modified_ms, modified);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(fn->name));
    json_object_set_new(o, "runtime", json_string(fn->runtime));
    json_object_set_new(o, "handler", json_string(fn->handler));
    json_object_set_new(o, "memory_mb", json_integer(fn->memory_mb));
    json_object_set_new(o, "timeout_s", json_integer(fn->timeout_s));
    json_object_set_new(o, "tmp_mb", json_integer(fn->tmp_mb));
    json_object_set_new(o, "idle_timeout_s", json_integer(fn->idle_timeout_s));
    json_object_set_new(o, "concurrency",
                        fn->concurrency < 0 ? json_null() : json_integer(fn->concurrency));
    json_object_set_new(o, "min_warm", json_integer(fn->min_warm));
    json_object_set_new(o, "description", json_string(fn->description));
    json_object_set_new(o, "env", fn->env ? json_deep_copy(fn->env) : json_object());
    json_object_set_new(o, "code_sha256", json_string(fn->code_sha256));
    json_object_set_new(o, "code_size", json_integer(fn->code_size));
    json_object_set_new(o, "revision", json_string(fn->revision));
    json_object_set_new(o, "created", json_string(created));
    json_object_set_new(o, "modified", json_string(modified));
    json_object_set_new(o, "created_ms", json_integer(fn->created_ms));
    json_object_set_new(o, "modified_ms", json_integer(fn->modified_ms));
    return o;
}

bool wisp_fn_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= WISP_FN_NAME_MAX)
            return false;
    }
    return n > 0;
}

/* ---- field parsers: each checks one value and stores it ---- */

/* An integer in [min, max]; JSON reals with an integral value (128.0) pass,
 * since some clients write every number that way. */
static int get_int(json_t *v, const char *field, long min, long max, int *out, wisp_err_t *err)
{
    double d = 0;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
        d = json_real_value(v);
    else
        d = NAN;
    if (!(d >= (double)min && d <= (double)max))
        return wisp_err_set(err, WISP_EINVALID, "%s must be an integer between %ld and %ld", field,
                            min, max);
    *out = (int)d;
    return 0;
}

/* A string without NUL bytes of at most max bytes; JSON null means "". */
static int get_str(json_t *v, const char *field, size_t max, char *out, wisp_err_t *err)
{
    if (json_is_null(v)) {
        out[0] = '\0';
        return 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL)
        return wisp_err_set(err, WISP_EINVALID, "%s must be a string", field);
    size_t len = json_string_length(v);
    if (strlen(s) != len)
        return wisp_err_set(err, WISP_EINVALID, "%s must not contain NUL characters", field);
    if (len > max)
        return wisp_err_set(err, WISP_EINVALID, "%s must be at most %zu characters (got %zu)",
                            field, max, len);
    memcpy(out, s, len + 1);
    return 0;
}

static int set_runtime(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    static const char *const runtimes[] = {"provided", "python3", "nodejs"};
    const char *s = json_string_value(v);
    for (size_t i = 0; s && i < WISP_ARRAY_LEN(runtimes); i++) {
        if (strcmp(s, runtimes[i]) == 0) {
            snprintf(fn->runtime, sizeof fn->runtime, "%s", runtimes[i]);
            return 0;
        }
    }
    return wisp_err_set(err, WISP_EINVALID, "runtime must be one of provided, python3, nodejs");
}

static int set_handler(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_str(v, "handler", HANDLER_MAX, fn->handler, err);
}

static int set_description(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_str(v, "description", DESCRIPTION_MAX, fn->description, err);
}

static int set_memory(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_int(v, "memory_mb", 128, 10240, &fn->memory_mb, err);
}

static int set_timeout(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_int(v, "timeout_s", 1, 900, &fn->timeout_s, err);
}

static int set_tmp(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_int(v, "tmp_mb", 512, 10240, &fn->tmp_mb, err);
}

static int set_idle(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_int(v, "idle_timeout_s", 0, 86400, &fn->idle_timeout_s, err);
}

static int set_min_warm(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    return get_int(v, "min_warm", 0, 100, &fn->min_warm, err);
}

static int set_concurrency(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    if (json_is_null(v)) {
        fn->concurrency = -1;
        return 0;
    }
    if (get_int(v, "concurrency", 0, 1000, &fn->concurrency, NULL) < 0)
        return wisp_err_set(err, WISP_EINVALID,
                            "concurrency must be null or an integer between 0 and 1000");
    return 0;
}

/* Variables the platform itself sets for every runtime (as Lambda reserves
 * them); names starting with AWS_LAMBDA_ are all kept for the platform. */
static const char *const reserved_env[] = {
    "_HANDLER",          "_X_AMZN_TRACE_ID", "AWS_REGION",         "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV", "AWS_ACCESS_KEY",   "AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
};

static bool env_key_valid(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

/* The environment is replaced as a whole, as Lambda's Environment.Variables is. */
static int set_env(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    if (json_is_null(v)) {
        json_decref(fn->env);
        fn->env = json_object();
        return 0;
    }
    if (!json_is_object(v))
        return wisp_err_set(err, WISP_EINVALID, "env must be an object of string values");
    size_t total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        if (!env_key_valid(key))
            return wisp_err_set(err, WISP_EINVALID,
                                "env: \"%.64s\" is not a valid variable name "
                                "([A-Za-z_][A-Za-z0-9_]*)",
                                key);
        if (strncmp(key, "AWS_LAMBDA_", 11) == 0)
            return wisp_err_set(err, WISP_EINVALID,
                                "env: %.64s is reserved (names starting with AWS_LAMBDA_ are set "
                                "by the platform)",
                                key);
        for (size_t i = 0; i < WISP_ARRAY_LEN(reserved_env); i++)
            if (strcmp(key, reserved_env[i]) == 0)
                return wisp_err_set(err, WISP_EINVALID, "env: %s is reserved (set by the platform)",
                                    key);
        const char *s = json_string_value(val);
        if (s == NULL)
            return wisp_err_set(err, WISP_EINVALID, "env: the value of %.64s must be a string",
                                key);
        if (strlen(s) != json_string_length(val))
            return wisp_err_set(err, WISP_EINVALID,
                                "env: the value of %.64s must not contain NUL characters", key);
        total += strlen(key) + json_string_length(val);
    }
    if (total > WISP_ENV_BYTES_MAX)
        return wisp_err_set(err, WISP_ELIMIT,
                            "env is too large: names and values take %zu bytes, more than %u",
                            total, (unsigned)WISP_ENV_BYTES_MAX);
    json_decref(fn->env);
    fn->env = json_deep_copy(v);
    return 0;
}

/* "name" may appear in a body for convenience (wisp.yaml, GET output); it
 * must then be the function's own name, since the path names the function. */
static int set_name(wisp_fn_t *fn, json_t *v, wisp_err_t *err)
{
    const char *s = json_string_value(v);
    if (s == NULL || !wisp_fn_name_valid(s))
        return wisp_err_set(err, WISP_EINVALID, "name must match [A-Za-z0-9_-]{1,64}");
    if (fn->name[0] == '\0')
        snprintf(fn->name, sizeof fn->name, "%s", s);
    else if (strcmp(fn->name, s) != 0)
        return wisp_err_set(err, WISP_EINVALID,
                            "name \"%s\" in the configuration does not match the function \"%s\"",
                            s, fn->name);
    return 0;
}

static const struct field {
    const char *name;
    int (*set)(wisp_fn_t *fn, json_t *v, wisp_err_t *err);
} fields[] = {
    {"name", set_name},
    {"runtime", set_runtime},
    {"handler", set_handler},
    {"memory_mb", set_memory},
    {"timeout_s", set_timeout},
    {"env", set_env},
    {"concurrency", set_concurrency},
    {"tmp_mb", set_tmp},
    {"idle_timeout_s", set_idle},
    {"min_warm", set_min_warm},
    {"description", set_description},
};

/* Fields of the JSON view that are not configuration. */
static const char *const read_only[] = {"code_sha256", "code_size",  "revision",   "created",
                                        "modified",    "created_ms", "modified_ms"};

static bool ident_char(char c, bool first, bool dollar)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (dollar && c == '$'))
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Identifiers separated by dots ("handler", "a.b"), none empty. */
static bool dotted_idents(const char *s, size_t n, bool dollar)
{
    if (n == 0)
        return false;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (first)
                return false;
            first = true;
            continue;
        }
        if (!ident_char(s[i], first, dollar))
            return false;
        first = false;
    }
    return !first;
}

/* Folders of a handler path ("src/lib/"): each a plain name, never . or .. */
static bool handler_dirs(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.'))
                return false;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || (len == 1 && s[start] == '.') ||
            (len == 2 && s[start] == '.' && s[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

/* Python: "module.function", the module possibly a dotted or slashed path
 * ("pkg.app.handler", "src/app.handler"). The runtime imports the slashed
 * form with the slashes turned into dots, so every part is an identifier. */
static bool python_handler_valid(const char *h)
{
    const char *dot = strrchr(h, '.');
    if (dot == NULL || !dotted_idents(dot + 1, strlen(dot + 1), false))
        return false;
    size_t start = 0, n = (size_t)(dot - h);
    for (size_t i = 0; i <= n; i++) {
        if (i < n && h[i] != '/')
            continue;
        if (!dotted_idents(h + start, i - start, false))
            return false;
        start = i + 1;
    }
    return true;
}

/* Node.js: "file.export" where the file is resolved with .js/.mjs/.cjs as
 * Lambda does: the name up to the first dot after the last slash; the export
 * may be a nested path ("index.handlers.main"). */
static bool node_handler_valid(const char *h)
{
    const char *slash = strrchr(h, '/');
    const char *base = slash ? slash + 1 : h;
    if (slash && !handler_dirs(h, (size_t)(slash - h)))
        return false;
    const char *dot = strchr(base, '.');
    if (dot == NULL || dot == base)
        return false;
    for (const char *p = base; p < dot; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return dotted_idents(dot + 1, strlen(dot + 1), true);
}

/* Rules across fields, checked once every field is applied. */
static int check_whole(wisp_fn_t *fn, bool creating, wisp_err_t *err)
{
    if (fn->runtime[0] == '\0')
        return wisp_err_set(err, WISP_EINVALID,
                            "runtime is required (provided, python3 or nodejs)");
    const char *h = fn->handler;
    if (strcmp(fn->runtime, "python3") == 0) {
        if (h[0] == '\0')
            return wisp_err_set(err, WISP_EINVALID,
                                "handler is required for runtime python3 (module.function, "
                                "e.g. app.handler)");
        if (!python_handler_valid(h))
            return wisp_err_set(err, WISP_EINVALID,
                                "handler \"%s\" is not valid for python3: expected "
                                "module.function, e.g. app.handler",
                                h);
    } else if (strcmp(fn->runtime, "nodejs") == 0) {
        if (h[0] == '\0')
            return wisp_err_set(err, WISP_EINVALID,
                                "handler is required for runtime nodejs (file.export, e.g. "
                                "index.handler)");
        if (!node_handler_valid(h))
            return wisp_err_set(err, WISP_EINVALID,
                                "handler \"%s\" is not valid for nodejs: expected file.export, "
                                "e.g. index.handler",
                                h);
    } else {
        /* provided: the bootstrap interprets the handler; printable and no spaces. */
        for (const char *p = h; *p; p++)
            if (*p <= ' ' || *p >= 0x7f)
                return wisp_err_set(err, WISP_EINVALID,
                                    "handler must be printable ASCII without spaces");
    }
    if (fn->concurrency >= 0 && fn->min_warm > fn->concurrency)
        return wisp_err_set(err, WISP_EINVALID, "min_warm (%d) must not exceed concurrency (%d)",
                            fn->min_warm, fn->concurrency);
    return 0;
}

/* Check and apply each field on its own, without the rules across fields. */
static int apply_fields(wisp_fn_t *fn, json_t *config, wisp_err_t *err)
{
    if (!json_is_object(config))
        return wisp_err_set(err, WISP_EINVALID, "configuration must be a JSON object");
    /* Unknown fields first, so that a typo is reported even next to other errors. */
    const char *key;
    json_t *val;
    json_object_foreach(config, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < WISP_ARRAY_LEN(fields) && !known; i++)
            known = strcmp(key, fields[i].name) == 0;
        if (known)
            continue;
        for (size_t i = 0; i < WISP_ARRAY_LEN(read_only); i++)
            if (strcmp(key, read_only[i]) == 0)
                return wisp_err_set(err, WISP_EINVALID,
                                    "%s cannot be set: it is maintained by wisp (upload code to "
                                    "change the package)",
                                    key);
        return wisp_err_set(err, WISP_EINVALID, "unknown field \"%.64s\" in function configuration",
                            key);
    }
    for (size_t i = 0; i < WISP_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(config, fields[i].name);
        if (v != NULL && fields[i].set(fn, v, err) < 0)
            return -1;
    }
    return 0;
}

int wisp_fn_apply_config(wisp_fn_t *fn, json_t *config, bool creating, wisp_err_t *err)
{
    if (config != NULL && apply_fields(fn, config, err) < 0)
        return -1;
    return check_whole(fn, creating, err);
}

int wisp__fn_check_fields(const char *name, json_t *config, wisp_err_t *err)
{
    if (config == NULL)
        return 0;
    wisp_fn_t *scratch = wisp_fn_new();
    snprintf(scratch->name, sizeof scratch->name, "%s", name);
    int rc = apply_fields(scratch, config, err);
    wisp_fn_free(scratch);
    return rc;
}

/* ---- stored documents ---- */

static void copy_str(json_t *doc, const char *key, char *out, size_t n)
{
    const char *s = json_string_value(json_object_get(doc, key));
    snprintf(out, n, "%s", s ? s : "");
}

static int copy_int(json_t *doc, const char *key, int dflt)
{
    json_t *v = json_object_get(doc, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

int wisp__fn_from_doc(json_t *doc, wisp_fn_t **out, wisp_err_t *err)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!json_is_object(doc) || !wisp_fn_name_valid(name))
        return wisp_err_set(err, WISP_EINTERNAL, "stored function document is damaged");
    wisp_fn_t *fn = wisp_fn_new();
    copy_str(doc, "name", fn->name, sizeof fn->name);
    copy_str(doc, "runtime", fn->runtime, sizeof fn->runtime);
    copy_str(doc, "handler", fn->handler, sizeof fn->handler);
    copy_str(doc, "description", fn->description, sizeof fn->description);
    copy_str(doc, "code_sha256", fn->code_sha256, sizeof fn->code_sha256);
    copy_str(doc, "revision", fn->revision, sizeof fn->revision);
    fn->memory_mb = copy_int(doc, "memory_mb", fn->memory_mb);
    fn->timeout_s = copy_int(doc, "timeout_s", fn->timeout_s);
    fn->tmp_mb = copy_int(doc, "tmp_mb", fn->tmp_mb);
    fn->idle_timeout_s = copy_int(doc, "idle_timeout_s", fn->idle_timeout_s);
    fn->concurrency = copy_int(doc, "concurrency", -1);
    fn->min_warm = copy_int(doc, "min_warm", fn->min_warm);
    fn->code_size = json_integer_value(json_object_get(doc, "code_size"));
    fn->created_ms = json_integer_value(json_object_get(doc, "created_ms"));
    fn->modified_ms = json_integer_value(json_object_get(doc, "modified_ms"));
    json_t *env = json_object_get(doc, "env");
    if (json_is_object(env)) {
        json_decref(fn->env);
        fn->env = json_deep_copy(env);
    }
    *out = fn;
    return 0;
}
