/*
 * lambda.c - the AWS Lambda-compatible REST API (protocol rest-json, signing
 * name "lambda") on the admin listener, mapped onto the same registry and
 * invoker as /v1, so that the AWS CLI, boto3 and the JavaScript SDK work
 * unchanged with --endpoint-url. Wire facts: shared/reference/lambda.md §2.
 *
 * Implemented: CreateFunction, GetFunction, GetFunctionConfiguration,
 * ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration,
 * DeleteFunction, Invoke (RequestResponse and DryRun), Put/Get/Delete
 * FunctionConcurrency, GetAccountSettings, and the read-only views that tools
 * call around them (ListVersionsByFunction: $LATEST only, ListAliases: none,
 * ListTags: none). Asynchronous invocation (Event, InvokeAsync) answers a
 * clear error until it exists. Other operations answer
 * UnknownOperationException.
 *
 * Our registry keeps its own runtime names, so Runtime comes back as the
 * version the host provides ("python3.11", "nodejs20.x", "provided.al2023")
 * whatever minor version was asked for; Role is not kept and comes back as
 * arn:aws:iam::<account>:role/wisp-function.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "api/sigv4.h"

#define LIST_DEFAULT 50
#define LIST_MAX 10000
#define CLIENT_CONTEXT_MAX 3583 /* Lambda's limit on X-Amz-Client-Context */
#define QUALIFIER_MAX 128
#define NAME_ARG_MAX 256
#define ACCOUNT_CODE_LIMIT 80530636800LL /* Lambda's default 75 GB; we report it */

static const char *const prefixes[] = {
    "/2015-03-31/", "/2014-11-13/", "/2016-08-19/", "/2017-03-31/", "/2017-10-31/", "/2018-10-31/",
    "/2019-09-25/", "/2019-09-30/", "/2020-04-22/", "/2020-06-30/", "/2021-10-31/",
};

bool wisp__api_is_lambda(const wisp_http_req_t *req)
{
    const char *authz = wisp_http_req_header(req, "Authorization");
    if (authz != NULL && strncmp(authz, "AWS4-HMAC-SHA256", 16) == 0)
        return true;
    for (size_t i = 0; i < WISP_ARRAY_LEN(prefixes); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(req->path, prefixes[i], n) == 0 ||
            (strncmp(req->path, prefixes[i], n - 1) == 0 && req->path[n - 1] == '\0'))
            return true;
    }
    return false;
}

/* ---- names and ARNs ---- */

static bool qualifier_valid(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > QUALIFIER_MAX)
        return false;
    for (; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' && *q != '$')
            return false;
    return true;
}

int wisp__lambda_parse_name(const char *s, char *name, char *qualifier, wisp_err_t *err)
{
    name[0] = qualifier[0] = '\0';
    size_t len = strlen(s);
    if (len == 0 || len > NAME_ARG_MAX)
        return wisp_err_set(err, WISP_EINVALID,
                            "1 validation error detected: Value at 'functionName' failed to "
                            "satisfy constraint: Member must have length between 1 and %d",
                            NAME_ARG_MAX);
    char copy[NAME_ARG_MAX + 1];
    memcpy(copy, s, len + 1);
    char *part[9];
    int n = 0;
    for (char *p = copy;;) {
        if (n == 9)
            goto bad;
        part[n++] = p;
        char *colon = strchr(p, ':');
        if (colon == NULL)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    const char *fn = NULL, *q = NULL;
    if (n == 1 || n == 2) {
        fn = part[0];
        q = n == 2 ? part[1] : NULL;
    } else if ((n == 3 || n == 4) && strcmp(part[1], "function") == 0) {
        fn = part[2];
        q = n == 4 ? part[3] : NULL;
    } else if ((n == 7 || n == 8) && strcmp(part[0], "arn") == 0 &&
               strcmp(part[2], "lambda") == 0 && strcmp(part[5], "function") == 0) {
        fn = part[6];
        q = n == 8 ? part[7] : NULL;
    }
    if (fn == NULL || !wisp_fn_name_valid(fn) || (q != NULL && !qualifier_valid(q)))
        goto bad;
    snprintf(name, WISP_FN_NAME_MAX + 1, "%s", fn);
    if (q != NULL)
        snprintf(qualifier, QUALIFIER_MAX + 1, "%s", q);
    return 0;
bad:
    return wisp_err_set(err, WISP_EINVALID,
                        "1 validation error detected: Value '%.64s' at 'functionName' failed to "
                        "satisfy constraint: Member must be a function name ([A-Za-z0-9_-]{1,64}), "
                        "name:qualifier, account:function:name or a function ARN",
                        s);
}

static char *fn_arn(const char *region, const char *account, const char *name)
{
    return xasprintf("arn:aws:lambda:%s:%s:function:%s", region, account, name);
}

/* ---- the FunctionConfiguration view ---- */

static const char *lambda_runtime(const char *ours)
{
    if (strcmp(ours, "python3") == 0)
        return "python3.11";
    if (strcmp(ours, "nodejs") == 0)
        return "nodejs20.x";
    if (strcmp(ours, "provided") == 0)
        return "provided.al2023";
    return ours;
}

/* Base64 of the raw SHA-256 whose hex is given; "" if there is none. */
static char *code_sha256_b64(const char *hex)
{
    unsigned char raw[32];
    if (strlen(hex) != 64)
        return xstrdup("");
    for (int i = 0; i < 32; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return xstrdup("");
        raw[i] = (unsigned char)b;
    }
    return wisp__b64_encode(raw, 32);
}

json_t *wisp__lambda_config_json(const wisp_fn_t *fn, const char *region, const char *account)
{
    char modified[32];
    wisp_time_lambda(fn->modified_ms, modified);
    cleanup_free char *arn = fn_arn(region, account, fn->name);
    cleanup_free char *role = xasprintf("arn:aws:iam::%s:role/wisp-function", account);
    cleanup_free char *sha = code_sha256_b64(fn->code_sha256);
    json_t *o = json_object();
    json_object_set_new(o, "FunctionName", json_string(fn->name));
    json_object_set_new(o, "FunctionArn", json_string(arn));
    json_object_set_new(o, "Runtime", json_string(lambda_runtime(fn->runtime)));
    json_object_set_new(o, "Role", json_string(role));
    if (fn->handler[0] != '\0')
        json_object_set_new(o, "Handler", json_string(fn->handler));
    json_object_set_new(o, "CodeSize", json_integer(fn->code_size));
    json_object_set_new(o, "Description", json_string(fn->description));
    json_object_set_new(o, "Timeout", json_integer(fn->timeout_s));
    json_object_set_new(o, "MemorySize", json_integer(fn->memory_mb));
    json_object_set_new(o, "LastModified", json_string(modified));
    json_object_set_new(o, "CodeSha256", json_string(sha));
    json_object_set_new(o, "Version", json_string("$LATEST"));
    if (fn->env != NULL && json_object_size(fn->env) > 0)
        json_object_set_new(o, "Environment", json_pack("{s:O}", "Variables", fn->env));
    json_object_set_new(o, "TracingConfig", json_pack("{s:s}", "Mode", "PassThrough"));
    json_object_set_new(o, "RevisionId", json_string(fn->revision));
    json_object_set_new(o, "State", json_string("Active"));
    json_object_set_new(o, "LastUpdateStatus", json_string("Successful"));
    json_object_set_new(o, "PackageType", json_string("Zip"));
    json_object_set_new(o, "Architectures", json_pack("[s]", "x86_64"));
    json_object_set_new(o, "EphemeralStorage", json_pack("{s:i}", "Size", fn->tmp_mb));
    return o;
}

/* ---- Lambda configuration JSON -> native configuration ---- */

static const char *const validation = "ValidationException";
static const char *const invalid_param = "InvalidParameterValueException";

/* Lambda's runtime identifiers onto ours; NULL if not supported. */
static const char *our_runtime(const char *r)
{
    if (strncmp(r, "python3.", 8) == 0 && r[8] != '\0' &&
        strspn(r + 8, "0123456789") == strlen(r + 8))
        return "python3";
    if (strcmp(r, "python3") == 0)
        return "python3";
    if (strncmp(r, "nodejs", 6) == 0 && strspn(r + 6, "0123456789.x") == strlen(r + 6))
        return "nodejs";
    if (strncmp(r, "provided", 8) == 0 && (r[8] == '\0' || (r[8] == '.' && r[9] != '\0')))
        return "provided";
    return NULL;
}

static int int_field(json_t *body, const char *key, const char *wire, long min, long max,
                     json_t *native, const char *ours, const char **type, wisp_err_t *err)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        *type = invalid_param;
        return wisp_err_set(err, WISP_EINVALID, "%s must be an integer", key);
    }
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        *type = validation;
        return wisp_err_set(err, WISP_EINVALID,
                            "1 validation error detected: Value '%lld' at '%s' failed to satisfy "
                            "constraint: Member must have value %s %ld",
                            (long long)x, wire,
                            x < min ? "greater than or equal to" : "less than or equal to",
                            x < min ? min : max);
    }
    json_object_set_new(native, ours, json_integer(x));
    return 0;
}

static int str_field(json_t *body, const char *key, json_t *native, const char *ours,
                     const char **type, wisp_err_t *err)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        *type = invalid_param;
        return wisp_err_set(err, WISP_EINVALID, "%s must be a string", key);
    }
    json_object_set(native, ours, v);
    return 0;
}

static bool nonempty(json_t *v)
{
    if (v == NULL || json_is_null(v))
        return false;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return true;
}

/* Settings that would change behaviour and that we cannot honour yet are
 * refused rather than silently dropped. */
static int unsupported_fields(json_t *body, const char **type, wisp_err_t *err)
{
    *type = invalid_param;
    json_t *pt = json_object_get(body, "PackageType");
    if (pt != NULL && !json_is_null(pt) &&
        (!json_is_string(pt) || strcmp(json_string_value(pt), "Zip") != 0))
        return wisp_err_set(err, WISP_EINVALID,
                            "PackageType must be Zip: container images are not supported");
    json_t *arch = json_object_get(body, "Architectures");
    if (arch != NULL && !json_is_null(arch)) {
        size_t i;
        json_t *a;
        if (!json_is_array(arch))
            return wisp_err_set(err, WISP_EINVALID, "Architectures must be a list");
        json_array_foreach(arch, i, a)
        {
            if (!json_is_string(a) || strcmp(json_string_value(a), "x86_64") != 0)
                return wisp_err_set(err, WISP_EINVALID,
                                    "Architectures: only x86_64 is supported on this platform");
        }
    }
    if (nonempty(json_object_get(body, "Layers")))
        return wisp_err_set(err, WISP_EINVALID, "Layers are not supported yet");
    if (nonempty(json_object_get(body, "FileSystemConfigs")))
        return wisp_err_set(err, WISP_EINVALID, "FileSystemConfigs are not supported");
    if (nonempty(json_object_get(body, "ImageConfig")))
        return wisp_err_set(err, WISP_EINVALID,
                            "ImageConfig is not supported: container images are not supported");
    json_t *dlq = json_object_get(body, "DeadLetterConfig");
    if (json_is_object(dlq) && nonempty(json_object_get(dlq, "TargetArn")))
        return wisp_err_set(err, WISP_EINVALID,
                            "DeadLetterConfig is not supported yet (asynchronous invocation is "
                            "not available yet)");
    json_t *vpc = json_object_get(body, "VpcConfig");
    if (json_is_object(vpc) && (nonempty(json_object_get(vpc, "SubnetIds")) ||
                                nonempty(json_object_get(vpc, "SecurityGroupIds"))))
        return wisp_err_set(err, WISP_EINVALID, "VpcConfig is not supported");
    return 0;
}

static int map_environment(json_t *body, json_t *native, const char **type, wisp_err_t *err)
{
    json_t *e = json_object_get(body, "Environment");
    if (e == NULL || json_is_null(e))
        return 0;
    *type = invalid_param;
    if (!json_is_object(e))
        return wisp_err_set(err, WISP_EINVALID, "Environment must be an object");
    json_t *vars = json_object_get(e, "Variables");
    if (vars == NULL || json_is_null(vars)) {
        json_object_set_new(native, "env", json_object());
        return 0;
    }
    if (!json_is_object(vars))
        return wisp_err_set(err, WISP_EINVALID, "Environment.Variables must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v)
    {
        if (!json_is_string(v))
            return wisp_err_set(err, WISP_EINVALID,
                                "Environment.Variables: the value of %.64s must be a string", k);
    }
    json_object_set(native, "env", vars);
    return 0;
}

/* Code.ZipFile (base64) into bytes. */
static int map_code(json_t *code, char **zip, size_t *zip_len, const char **type, wisp_err_t *err)
{
    *type = invalid_param;
    if (!json_is_object(code))
        return wisp_err_set(err, WISP_EINVALID, "Code must be an object with a ZipFile");
    if (nonempty(json_object_get(code, "S3Bucket")) || nonempty(json_object_get(code, "S3Key")) ||
        nonempty(json_object_get(code, "S3ObjectVersion")))
        return wisp_err_set(err, WISP_EINVALID,
                            "Code from S3 is not supported: send the package as Code.ZipFile");
    if (nonempty(json_object_get(code, "ImageUri")))
        return wisp_err_set(err, WISP_EINVALID, "container images are not supported");
    json_t *zf = json_object_get(code, "ZipFile");
    if (!json_is_string(zf))
        return wisp_err_set(err, WISP_EINVALID, "Code.ZipFile (base64 of a zip) is required");
    if (wisp__b64_decode(json_string_value(zf), json_string_length(zf), WISP_ZIP_MAX, zip, zip_len,
                         err) < 0) {
        if (err != NULL && err->code == WISP_ELIMIT)
            *type = "RequestTooLargeException";
        return wisp_err_wrap(err, "Code.ZipFile");
    }
    if (*zip_len == 0) {
        free(*zip);
        *zip = NULL;
        return wisp_err_set(err, WISP_EINVALID, "Code.ZipFile is empty");
    }
    return 0;
}

int wisp__lambda_map_config(json_t *body, bool creating, json_t **native, char *name, char **zip,
                            size_t *zip_len, const char **type, wisp_err_t *err)
{
    *type = invalid_param;
    *native = NULL;
    if (zip != NULL) {
        *zip = NULL;
        *zip_len = 0;
    }
    if (!json_is_object(body))
        return wisp_err_set(err, WISP_EINVALID, "the request body must be a JSON object");
    if (unsupported_fields(body, type, err) < 0)
        return -1;
    cleanup_json json_t *out = json_object();
    if (creating) {
        json_t *fnv = json_object_get(body, "FunctionName");
        char qualifier[QUALIFIER_MAX + 1];
        if (!json_is_string(fnv))
            return wisp_err_set(err, WISP_EINVALID, "FunctionName is required");
        if (wisp__lambda_parse_name(json_string_value(fnv), name, qualifier, err) < 0) {
            *type = validation;
            return -1;
        }
        if (qualifier[0] != '\0')
            return wisp_err_set(err, WISP_EINVALID,
                                "FunctionName must not have a qualifier when creating a function");
    }
    json_t *rt = json_object_get(body, "Runtime");
    if (rt != NULL && !json_is_null(rt)) {
        const char *ours = json_is_string(rt) ? our_runtime(json_string_value(rt)) : NULL;
        if (ours == NULL)
            return wisp_err_set(err, WISP_EINVALID,
                                "Runtime %.40s is not supported: use python3.x, nodejs*.x or "
                                "provided[.al2|.al2023]",
                                json_is_string(rt) ? json_string_value(rt) : "(not a string)");
        json_object_set_new(out, "runtime", json_string(ours));
    } else if (creating) {
        return wisp_err_set(err, WISP_EINVALID,
                            "Runtime and Handler are mandatory parameters for functions created "
                            "with deployment packages.");
    }
    json_t *role = json_object_get(body, "Role");
    if (role != NULL && !json_is_null(role) && !json_is_string(role))
        return wisp_err_set(err, WISP_EINVALID, "Role must be a string");
    if (str_field(body, "Handler", out, "handler", type, err) < 0 ||
        str_field(body, "Description", out, "description", type, err) < 0 ||
        int_field(body, "Timeout", "timeout", 1, 900, out, "timeout_s", type, err) < 0 ||
        int_field(body, "MemorySize", "memorySize", 128, 10240, out, "memory_mb", type, err) < 0 ||
        map_environment(body, out, type, err) < 0)
        return -1;
    json_t *eph = json_object_get(body, "EphemeralStorage");
    if (eph != NULL && !json_is_null(eph)) {
        if (!json_is_object(eph)) {
            *type = invalid_param;
            return wisp_err_set(err, WISP_EINVALID, "EphemeralStorage must be an object");
        }
        if (int_field(eph, "Size", "ephemeralStorage.size", 512, 10240, out, "tmp_mb", type, err) <
            0)
            return -1;
    }
    if (creating) {
        json_t *code = json_object_get(body, "Code");
        if (code == NULL || json_is_null(code))
            return wisp_err_set(err, WISP_EINVALID, "Code is required (Code.ZipFile)");
        if (zip != NULL && map_code(code, zip, zip_len, type, err) < 0)
            return -1;
    }
    *native = steal_pointer(&out);
    return 0;
}

/* ---- responses ---- */

static void lambda_json(wisp_http_req_t *req, int status, json_t *body)
{
    char rid[37], headers[80];
    wisp_uuid4(rid);
    snprintf(headers, sizeof headers, "X-Amzn-RequestId: %s\r\n", rid);
    wisp__api_json(req, status, body, headers);
}

static void no_content(wisp_http_req_t *req)
{
    char rid[37], headers[80];
    wisp_uuid4(rid);
    snprintf(headers, sizeof headers, "X-Amzn-RequestId: %s\r\n", rid);
    wisp_http_respond(req, 204, NULL, headers, NULL, 0);
}

static void not_found(wisp_http_req_t *req, const char *region, const char *account,
                      const char *name, const char *qualifier)
{
    cleanup_free char *arn = fn_arn(region, account, name);
    wisp__lambda_fail(req, WISP_ENOTFOUND, NULL, "Function not found: %s%s%s", arn,
                      qualifier && qualifier[0] ? ":" : "", qualifier ? qualifier : "");
}

/* Answer a registry failure about function name. */
static void fn_fail(wisp_http_req_t *req, const char *region, const char *account, const char *name,
                    const wisp_err_t *err)
{
    if (err->code == WISP_ENOTFOUND)
        return not_found(req, region, account, name, NULL);
    if (err->code == WISP_ECONFLICT)
        return wisp__lambda_fail(req, WISP_ECONFLICT, NULL, "Function already exist: %s", name);
    wisp__lambda_fail_err(req, err);
}

/* ---- operations ---- */

/* What a pending deploy needs to answer; the API may be gone by then. */
struct op {
    wisp_http_req_t *req;
    enum { OP_CREATE, OP_UPDATE, OP_PUT_CONCURRENCY, OP_DELETE_CONCURRENCY } kind;
    char name[WISP_FN_NAME_MAX + 1];
    char *region;
    char *account;
    int concurrency;
    bool want_tail;
};

static struct op *op_new(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    struct op *op = xcalloc(1, sizeof *op);
    op->req = req;
    snprintf(op->name, sizeof op->name, "%s", name);
    op->region = xstrdup(api->region);
    op->account = xstrdup(api->account_id);
    return op;
}

static void op_free(struct op *op)
{
    free(op->region);
    free(op->account);
    free(op);
}

static void deployed_cb(void *data, const wisp_fn_t *fn, bool created, const wisp_err_t *err)
{
    struct op *op = data;
    if (fn == NULL) {
        fn_fail(op->req, op->region, op->account, op->name, err);
    } else if (op->kind == OP_PUT_CONCURRENCY) {
        lambda_json(op->req, 200,
                    json_pack("{s:i}", "ReservedConcurrentExecutions", fn->concurrency));
    } else if (op->kind == OP_DELETE_CONCURRENCY) {
        no_content(op->req);
    } else {
        lambda_json(op->req, op->kind == OP_CREATE ? 201 : 200,
                    wisp__lambda_config_json(fn, op->region, op->account));
    }
    op_free(op);
}

/* Start a deploy answered by deployed_cb; answers the error itself if refused at once. */
static void deploy(wisp_api_t *api, struct op *op, json_t *config, const void *zip, size_t zip_len,
                   wisp_deploy_mode_t mode)
{
    wisp_err_t err;
    if (wisp_registry_deploy(api->registry, op->name, config, zip, zip_len, mode, deployed_cb, op,
                             &err) < 0) {
        fn_fail(op->req, op->region, op->account, op->name, &err);
        op_free(op);
    }
}

/* Parse a JSON body of at most max bytes; answers the error itself and returns NULL. */
static json_t *json_body(wisp_http_req_t *req, size_t max, const char *opname)
{
    if (req->body_len > max) {
        wisp__lambda_fail(req, WISP_ELIMIT, NULL,
                          "Request must be smaller than %zu bytes for the %s operation", max,
                          opname);
        return NULL;
    }
    json_error_t jerr;
    json_t *body =
        json_loadb(req->body_len ? req->body : "{}", req->body_len ? req->body_len : 2, 0, &jerr);
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        wisp__lambda_fail(req, WISP_EINVALID, "InvalidRequestContentException",
                          "Could not parse request body into json: %s",
                          body ? "not an object" : jerr.text);
        return NULL;
    }
    return body;
}

static void list_functions(wisp_api_t *api, wisp_http_req_t *req)
{
    wisp_err_t err;
    int64_t max;
    if (wisp__api_query_int(req, "MaxItems", 1, LIST_MAX, LIST_DEFAULT, &max, &err) < 0)
        return wisp__lambda_fail_err(req, &err);
    cleanup_free char *marker = wisp_http_query_param(req->query, "Marker");
    wisp_fn_t **list = NULL;
    size_t n = 0;
    if (wisp_registry_list(api->registry, marker && marker[0] ? marker : NULL, (int)max + 1, &list,
                           &n, &err) < 0)
        return wisp__lambda_fail_err(req, &err);
    size_t shown = n > (size_t)max ? (size_t)max : n;
    json_t *arr = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, wisp__lambda_config_json(list[i], api->region, api->account_id));
    json_t *out = json_pack("{s:o}", "Functions", arr);
    if (n > shown)
        json_object_set_new(out, "NextMarker", json_string(list[shown - 1]->name));
    wisp_fn_list_free(list, n);
    lambda_json(req, 200, out);
}

static void create_function(wisp_api_t *api, wisp_http_req_t *req)
{
    cleanup_json json_t *body = json_body(req, WISP_API_LAMBDA_CODE_BODY_MAX, "CreateFunction");
    if (body == NULL)
        return;
    json_t *native = NULL;
    char name[WISP_FN_NAME_MAX + 1];
    cleanup_free char *zip = NULL;
    size_t zip_len = 0;
    const char *type = NULL;
    wisp_err_t err;
    if (wisp__lambda_map_config(body, true, &native, name, &zip, &zip_len, &type, &err) < 0)
        return wisp__lambda_fail_ex(req, err.code, 0, type, NULL, NULL, err.msg);
    struct op *op = op_new(api, req, name);
    op->kind = OP_CREATE;
    deploy(api, op, native, zip, zip_len, WISP_DEPLOY_CREATE_ONLY);
    json_decref(native);
}

/* The function a request is about, from the path segment and ?Qualifier=;
 * only $LATEST exists until versions do. Answers the error itself (-1). */
static int resolve(wisp_api_t *api, wisp_http_req_t *req, const char *seg, char *name)
{
    char qualifier[QUALIFIER_MAX + 1];
    wisp_err_t err;
    if (wisp__lambda_parse_name(seg, name, qualifier, &err) < 0) {
        wisp__lambda_fail(req, WISP_EINVALID, validation, "%s", err.msg);
        return -1;
    }
    cleanup_free char *q = wisp_http_query_param(req->query, "Qualifier");
    if (q != NULL && q[0] != '\0') {
        if (qualifier[0] != '\0' && strcmp(qualifier, q) != 0) {
            wisp__lambda_fail(req, WISP_EINVALID, NULL,
                              "The derived qualifier from the function name does not match the "
                              "specified qualifier.");
            return -1;
        }
        if (!qualifier_valid(q)) {
            wisp__lambda_fail(req, WISP_EINVALID, validation,
                              "1 validation error detected: Value at 'qualifier' failed to "
                              "satisfy constraint: Member must match (|[a-zA-Z0-9$_-]+)");
            return -1;
        }
        snprintf(qualifier, sizeof qualifier, "%s", q);
    }
    if (qualifier[0] != '\0' && strcmp(qualifier, "$LATEST") != 0) {
        not_found(req, api->region, api->account_id, name, qualifier);
        return -1;
    }
    return 0;
}

/* Look the function up; answers the error itself (NULL). */
static wisp_fn_t *lookup(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_fn_t *fn = NULL;
    wisp_err_t err;
    if (wisp_registry_get(api->registry, name, &fn, &err) < 0) {
        fn_fail(req, api->region, api->account_id, name, &err);
        return NULL;
    }
    return fn;
}

static void get_function(wisp_api_t *api, wisp_http_req_t *req, const char *name, bool full)
{
    wisp_fn_t *fn = lookup(api, req, name);
    if (fn == NULL)
        return;
    json_t *cfg = wisp__lambda_config_json(fn, api->region, api->account_id);
    if (!full) {
        wisp_fn_free(fn);
        return lambda_json(req, 200, cfg);
    }
    json_t *out = json_pack("{s:o,s:{s:s,s:s},s:{}}", "Configuration", cfg, "Code",
                            "RepositoryType", "S3", "Location", "", "Tags");
    if (fn->concurrency >= 0)
        json_object_set_new(out, "Concurrency",
                            json_pack("{s:i}", "ReservedConcurrentExecutions", fn->concurrency));
    wisp_fn_free(fn);
    lambda_json(req, 200, out);
}

static void get_function_full(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    get_function(api, req, name, true);
}

static void get_configuration(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    get_function(api, req, name, false);
}

/* Only $LATEST exists until versions do. */
static void list_versions(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_fn_t *fn = lookup(api, req, name);
    if (fn == NULL)
        return;
    json_t *cfg = wisp__lambda_config_json(fn, api->region, api->account_id);
    wisp_fn_free(fn);
    lambda_json(req, 200, json_pack("{s:[o]}", "Versions", cfg));
}

/* No aliases until they exist. */
static void list_aliases(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_fn_t *fn = lookup(api, req, name);
    if (fn == NULL)
        return;
    wisp_fn_free(fn);
    lambda_json(req, 200, json_pack("{s:[]}", "Aliases"));
}

/* RevisionId in a body must name the current revision (optimistic locking). */
static int check_revision(wisp_api_t *api, wisp_http_req_t *req, const char *name, json_t *body)
{
    json_t *rev = json_object_get(body, "RevisionId");
    if (rev == NULL || json_is_null(rev))
        return 0;
    wisp_fn_t *fn = lookup(api, req, name);
    if (fn == NULL)
        return -1;
    bool same = json_is_string(rev) && strcmp(json_string_value(rev), fn->revision) == 0;
    wisp_fn_free(fn);
    if (!same) {
        wisp__lambda_fail_ex(req, WISP_ECONFLICT, 412, "PreconditionFailedException", NULL, NULL,
                             "The Revision Id provided does not match the latest Revision Id. "
                             "Call the GetFunction/GetAlias API to retrieve the latest Revision "
                             "Id");
        return -1;
    }
    return 0;
}

static void update_configuration(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    cleanup_json json_t *body = json_body(req, WISP_API_CONFIG_MAX, "UpdateFunctionConfiguration");
    if (body == NULL || check_revision(api, req, name, body) < 0)
        return;
    cleanup_json json_t *native = NULL;
    const char *type = NULL;
    wisp_err_t err;
    if (wisp__lambda_map_config(body, false, &native, NULL, NULL, NULL, &type, &err) < 0)
        return wisp__lambda_fail_ex(req, err.code, 0, type, NULL, NULL, err.msg);
    struct op *op = op_new(api, req, name);
    op->kind = OP_UPDATE;
    deploy(api, op, native, NULL, 0, WISP_DEPLOY_UPDATE_ONLY);
}

static void update_code(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    cleanup_json json_t *body = json_body(req, WISP_API_LAMBDA_CODE_BODY_MAX, "UpdateFunctionCode");
    if (body == NULL || check_revision(api, req, name, body) < 0)
        return;
    const char *type = NULL;
    wisp_err_t err;
    cleanup_json json_t *probe = json_object(); /* Architectures and friends */
    json_t *arch = json_object_get(body, "Architectures");
    if (arch != NULL)
        json_object_set(probe, "Architectures", arch);
    if (unsupported_fields(probe, &type, &err) < 0)
        return wisp__lambda_fail_ex(req, err.code, 0, type, NULL, NULL, err.msg);
    cleanup_free char *zip = NULL;
    size_t zip_len = 0;
    if (map_code(body, &zip, &zip_len, &type, &err) < 0)
        return wisp__lambda_fail_ex(req, err.code, 0, type, NULL, NULL, err.msg);
    if (json_is_true(json_object_get(body, "DryRun"))) {
        if (wisp_package_check(zip, zip_len, &err) < 0)
            return wisp__lambda_fail_err(req, &err);
        return get_function(api, req, name, false);
    }
    struct op *op = op_new(api, req, name);
    op->kind = OP_UPDATE;
    deploy(api, op, NULL, zip, zip_len, WISP_DEPLOY_UPDATE_ONLY);
}

static void delete_function(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_err_t err;
    if (wisp_registry_delete(api->registry, name, &err) < 0)
        return fn_fail(req, api->region, api->account_id, name, &err);
    no_content(req);
}

static void put_concurrency(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    cleanup_json json_t *body = json_body(req, WISP_API_CONFIG_MAX, "PutFunctionConcurrency");
    if (body == NULL)
        return;
    json_t *v = json_object_get(body, "ReservedConcurrentExecutions");
    if (!json_is_integer(v))
        return wisp__lambda_fail(req, WISP_EINVALID, NULL,
                                 "ReservedConcurrentExecutions (an integer) is required");
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > 1000)
        return wisp__lambda_fail(req, WISP_EINVALID, validation,
                                 "1 validation error detected: Value '%lld' at "
                                 "'reservedConcurrentExecutions' failed to satisfy constraint: "
                                 "Member must have value between 0 and 1000",
                                 (long long)n);
    struct op *op = op_new(api, req, name);
    op->kind = OP_PUT_CONCURRENCY;
    cleanup_json json_t *cfg = json_pack("{s:I}", "concurrency", n);
    deploy(api, op, cfg, NULL, 0, WISP_DEPLOY_UPDATE_ONLY);
}

static void get_concurrency(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_fn_t *fn = lookup(api, req, name);
    if (fn == NULL)
        return;
    json_t *out = json_object();
    if (fn->concurrency >= 0)
        json_object_set_new(out, "ReservedConcurrentExecutions", json_integer(fn->concurrency));
    wisp_fn_free(fn);
    lambda_json(req, 200, out);
}

static void delete_concurrency(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    struct op *op = op_new(api, req, name);
    op->kind = OP_DELETE_CONCURRENCY;
    cleanup_json json_t *cfg = json_pack("{s:n}", "concurrency");
    deploy(api, op, cfg, NULL, 0, WISP_DEPLOY_UPDATE_ONLY);
}

static void account_settings(wisp_api_t *api, wisp_http_req_t *req)
{
    long long code = 0, reserved = 0, count = 0;
    char after[WISP_FN_NAME_MAX + 1] = "";
    for (;;) {
        wisp_fn_t **list = NULL;
        size_t n = 0;
        wisp_err_t err;
        if (wisp_registry_list(api->registry, after[0] ? after : NULL, 1000, &list, &n, &err) < 0)
            return wisp__lambda_fail_err(req, &err);
        for (size_t i = 0; i < n; i++) {
            code += list[i]->code_size;
            reserved += list[i]->concurrency > 0 ? list[i]->concurrency : 0;
        }
        count += (long long)n;
        if (n > 0)
            snprintf(after, sizeof after, "%s", list[n - 1]->name);
        wisp_fn_list_free(list, n);
        if (n < 1000)
            break;
    }
    long long unreserved = (long long)api->max_concurrency - reserved;
    json_t *out =
        json_pack("{s:{s:I,s:I,s:I,s:I,s:I},s:{s:I,s:I}}", "AccountLimit", "TotalCodeSize",
                  (json_int_t)ACCOUNT_CODE_LIMIT, "CodeSizeUnzipped", (json_int_t)WISP_UNZIPPED_MAX,
                  "CodeSizeZipped", (json_int_t)WISP_ZIP_MAX, "ConcurrentExecutions",
                  (json_int_t)api->max_concurrency, "UnreservedConcurrentExecutions",
                  (json_int_t)(unreserved > 0 ? unreserved : 0), "AccountUsage", "TotalCodeSize",
                  (json_int_t)code, "FunctionCount", (json_int_t)count);
    lambda_json(req, 200, out);
}

/* ---- Invoke ---- */

static void invoked_cb(void *data, const wisp_invoke_result_t *res)
{
    struct op *op = data;
    wisp_http_req_t *req = op->req;
    char rid[129];
    wisp__api_header_safe(res->request_id, rid, sizeof rid);
    if (rid[0] == '\0')
        wisp_uuid4(rid);
    if (res->refused != WISP_OK) {
        const char *msg = res->err.msg[0] ? res->err.msg : "the invocation was refused";
        char headers[256];
        if (res->refused == WISP_ENOTFOUND) {
            not_found(req, op->region, op->account, op->name, NULL);
        } else if (res->refused == WISP_ETHROTTLED) {
            char reason[96];
            wisp__api_header_safe(res->throttle_reason, reason, sizeof reason);
            snprintf(headers, sizeof headers, "Retry-After: %d\r\n",
                     res->retry_after_s > 0 ? res->retry_after_s : 1);
            json_t *extra =
                json_pack("{s:s}", "Reason",
                          reason[0] ? reason : "ReservedFunctionConcurrentInvocationLimitExceeded");
            wisp__lambda_fail_ex(req, WISP_ETHROTTLED, 0, NULL, headers, extra,
                                 res->err.msg[0] ? res->err.msg : "Rate Exceeded.");
        } else {
            wisp__lambda_fail_ex(req, res->refused, 0, NULL, NULL, NULL, msg);
        }
        return op_free(op);
    }
    wisp_buf_t headers = WISP_BUF_INIT(0);
    char version[64];
    wisp__api_header_safe(res->executed_version ? res->executed_version : "$LATEST", version,
                          sizeof version);
    wisp_buf_addf(&headers, "X-Amzn-RequestId: %s\r\nX-Amz-Executed-Version: %s\r\n", rid,
                  version[0] ? version : "$LATEST");
    if (res->error_type != NULL)
        wisp_buf_addf(&headers, "X-Amz-Function-Error: Unhandled\r\n");
    if (op->want_tail) {
        cleanup_free char *tail = wisp__b64_encode(res->log_tail ? res->log_tail : "",
                                                   res->log_tail ? res->log_tail_len : 0);
        wisp_buf_addf(&headers, "X-Amz-Log-Result: %s\r\n", tail);
    }
    wisp_http_respond(req, 200, "application/json", headers.data, res->payload ? res->payload : "",
                      res->payload ? res->len : 0);
    wisp_buf_free(&headers);
    op_free(op);
}

static void invoke(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    const char *itype = wisp_http_req_header(req, "X-Amz-Invocation-Type");
    const char *ltype = wisp_http_req_header(req, "X-Amz-Log-Type");
    const char *ctx = wisp_http_req_header(req, "X-Amz-Client-Context");
    if (itype != NULL && strcmp(itype, "Event") == 0)
        return wisp__lambda_fail(req, WISP_EINVALID, NULL,
                                 "InvocationType Event (asynchronous invocation) is not "
                                 "available yet; use RequestResponse");
    if (itype != NULL && strcmp(itype, "DryRun") == 0) {
        wisp_fn_t *fn = lookup(api, req, name);
        if (fn != NULL)
            no_content(req);
        wisp_fn_free(fn);
        return;
    }
    if (itype != NULL && itype[0] != '\0' && strcmp(itype, "RequestResponse") != 0)
        return wisp__lambda_fail(req, WISP_EINVALID, validation,
                                 "1 validation error detected: Value at 'invocationType' failed "
                                 "to satisfy constraint: Member must satisfy enum value set: "
                                 "[Event, RequestResponse, DryRun]");
    if (ltype != NULL && ltype[0] != '\0' && strcmp(ltype, "Tail") != 0 &&
        strcmp(ltype, "None") != 0)
        return wisp__lambda_fail(req, WISP_EINVALID, validation,
                                 "1 validation error detected: Value at 'logType' failed to "
                                 "satisfy constraint: Member must satisfy enum value set: "
                                 "[None, Tail]");
    if (ctx != NULL && strlen(ctx) > CLIENT_CONTEXT_MAX)
        return wisp__lambda_fail(req, WISP_EINVALID, NULL,
                                 "Client context must be at most %d bytes", CLIENT_CONTEXT_MAX);
    if (req->body_len > WISP_PAYLOAD_MAX)
        return wisp__lambda_fail(req, WISP_ELIMIT, NULL,
                                 "Request must be smaller than %u bytes for the InvokeFunction "
                                 "operation",
                                 WISP_PAYLOAD_MAX);
    if (req->body_len > 0) {
        json_error_t jerr;
        json_t *j = json_loadb(req->body, req->body_len, JSON_DECODE_ANY, &jerr);
        if (j == NULL)
            return wisp__lambda_fail(req, WISP_EINVALID, "InvalidRequestContentException",
                                     "Could not parse request body into json: Could not parse "
                                     "payload into json: %s",
                                     jerr.text);
        json_decref(j);
    }
    if (api->invoker == NULL)
        return wisp__lambda_fail(req, WISP_EUNAVAILABLE, NULL, "invocations are not available");
    struct op *op = op_new(api, req, name);
    op->want_tail = ltype != NULL && strcmp(ltype, "Tail") == 0;
    wisp_invoke_req_t ireq = {
        .function = op->name,
        .payload = req->body_len ? req->body : "{}",
        .len = req->body_len ? req->body_len : 2,
        .trigger = "lambda",
        .client_context = ctx,
        .trace_id = wisp_http_req_header(req, "X-Amzn-Trace-Id"),
        .want_log_tail = op->want_tail,
    };
    wisp_invoke(api->invoker, &ireq, invoked_cb, op);
}

/* ---- routing ---- */

static bool is(const wisp_http_req_t *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

static void unknown_operation(wisp_api_t *api, wisp_http_req_t *req)
{
    wisp__api_count(api, "lambda", "unknown");
    wisp__lambda_fail(req, WISP_ENOTFOUND, "UnknownOperationException",
                      "Unknown operation %s %.200s (not supported by wisp)", req->method,
                      req->path);
}

/* Operations on /<version>/functions/{name}[/<what>]. */
static void function_route(wisp_api_t *api, wisp_http_req_t *req, const char *version,
                           const char *seg, const char *what)
{
    static const struct route {
        const char *version, *what, *method, *op;
        void (*fn)(wisp_api_t *, wisp_http_req_t *, const char *);
    } routes[] = {
        {"2015-03-31", "", "GET", "GetFunction", get_function_full},
        {"2015-03-31", "configuration", "GET", "GetFunctionConfiguration", get_configuration},
        {"2015-03-31", "versions", "GET", "ListVersionsByFunction", list_versions},
        {"2015-03-31", "aliases", "GET", "ListAliases", list_aliases},
        {"2015-03-31", "configuration", "PUT", "UpdateFunctionConfiguration", update_configuration},
        {"2015-03-31", "code", "PUT", "UpdateFunctionCode", update_code},
        {"2015-03-31", "", "DELETE", "DeleteFunction", delete_function},
        {"2015-03-31", "invocations", "POST", "Invoke", invoke},
        {"2017-10-31", "concurrency", "PUT", "PutFunctionConcurrency", put_concurrency},
        {"2017-10-31", "concurrency", "DELETE", "DeleteFunctionConcurrency", delete_concurrency},
        {"2019-09-30", "concurrency", "GET", "GetFunctionConcurrency", get_concurrency},
    };
    char name[WISP_FN_NAME_MAX + 1];
    if (strcmp(version, "2014-11-13") == 0 && strcmp(what, "invoke-async") == 0 &&
        is(req, "POST")) {
        wisp__api_count(api, "lambda", "InvokeAsync");
        return wisp__lambda_fail(req, WISP_EINVALID, NULL,
                                 "asynchronous invocation (InvokeAsync) is not available yet");
    }
    for (size_t i = 0; i < WISP_ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        if (strcmp(version, r->version) != 0 || strcmp(what, r->what) != 0 || !is(req, r->method))
            continue;
        wisp__api_count(api, "lambda", r->op);
        if (resolve(api, req, seg, name) < 0)
            return;
        return r->fn(api, req, name);
    }
    unknown_operation(api, req);
}

static void route(wisp_api_t *api, wisp_http_req_t *req, char **seg, int n)
{
    if (n == 2 && strcmp(seg[0], "2015-03-31") == 0 && strcmp(seg[1], "functions") == 0) {
        if (is(req, "GET")) {
            wisp__api_count(api, "lambda", "ListFunctions");
            return list_functions(api, req);
        }
        if (is(req, "POST")) {
            wisp__api_count(api, "lambda", "CreateFunction");
            return create_function(api, req);
        }
    } else if ((n == 3 || n == 4) && strcmp(seg[1], "functions") == 0) {
        return function_route(api, req, seg[0], seg[2], n == 4 ? seg[3] : "");
    } else if (n == 2 && strcmp(seg[0], "2016-08-19") == 0 &&
               strcmp(seg[1], "account-settings") == 0 && is(req, "GET")) {
        wisp__api_count(api, "lambda", "GetAccountSettings");
        return account_settings(api, req);
    } else if (n == 3 && strcmp(seg[0], "2017-03-31") == 0 && strcmp(seg[1], "tags") == 0 &&
               is(req, "GET")) {
        wisp__api_count(api, "lambda", "ListTags");
        char name[WISP_FN_NAME_MAX + 1];
        if (resolve(api, req, seg[2], name) < 0)
            return;
        wisp_fn_t *fn = lookup(api, req, name);
        if (fn != NULL)
            lambda_json(req, 200, json_pack("{s:{}}", "Tags"));
        wisp_fn_free(fn);
        return;
    }
    unknown_operation(api, req);
}

void wisp__api_lambda(wisp_api_t *api, wisp_http_req_t *req)
{
    wisp_sigv4_result_t res;
    if (wisp__sigv4_verify(req, api->aws_access_key, api->aws_secret_key, "lambda", time(NULL),
                           &res) != WISP_SIGV4_OK) {
        wisp__api_count(api, "lambda", "unauthorized");
        return wisp__lambda_fail_ex(req, WISP_EAUTH, 403, res.error_type, NULL, NULL, res.message);
    }
    char *seg[5] = {0};
    int n = wisp__api_segments(req->path, seg, 5);
    if (n < 2) {
        if (n > 0)
            wisp__api_segments_free(seg, n);
        return unknown_operation(api, req);
    }
    route(api, req, seg, n);
    wisp__api_segments_free(seg, n);
}
