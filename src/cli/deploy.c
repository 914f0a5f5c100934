/*
 * deploy.c - `wisp deploy PATH [options]`: a folder (zipped here) or a .zip
 * becomes a function. The function's config is created or changed with
 * PUT /v1/functions/{name} (only the fields given, plus the detected runtime
 * and handler when it is new), then the code is sent with
 * PUT /v1/functions/{name}/code.
 */
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/util.h"
#include "registry/registry.h"

enum {
    OPT_NAME = WISP_CLI_OPT_FIRST_LOCAL,
    OPT_RUNTIME,
    OPT_HANDLER,
    OPT_MEMORY,
    OPT_TIMEOUT,
    OPT_ENV,
    OPT_CONCURRENCY,
    OPT_TMP,
    OPT_IDLE_TIMEOUT,
    OPT_MIN_WARM,
    OPT_DESCRIPTION,
};

static const struct option deploy_options[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"runtime", required_argument, NULL, OPT_RUNTIME},
    {"handler", required_argument, NULL, OPT_HANDLER},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"env", required_argument, NULL, OPT_ENV},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"tmp", required_argument, NULL, OPT_TMP},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"min-warm", required_argument, NULL, OPT_MIN_WARM},
    {"description", required_argument, NULL, OPT_DESCRIPTION},
    WISP_CLI_GLOBAL_OPTIONS,
    {0},
};

void wisp__cli_deploy_opts_free(wisp_cli_deploy_opts_t *o)
{
    json_decref(o->env);
    o->env = NULL;
}

int wisp__cli_parse_deploy(wisp_cli_t *cli, int argc, char **argv, wisp_cli_deploy_opts_t *o,
                           wisp_err_t *err)
{
    memset(o, 0, sizeof *o);
    o->memory_mb = o->timeout_s = o->tmp_mb = o->idle_timeout_s = o->min_warm = -1;
    o->concurrency = -1;
    cli->cmd = argv[0];
    wisp__cli_getopt_begin();
    int c;
    while ((c = wisp__cli_getopt(cli, argc, argv, "", deploy_options, err)) !=
           WISP_CLI_GETOPT_END) {
        int rc = 0;
        switch (c) {
        case WISP_CLI_GETOPT_HELP: return WISP_CLI_GETOPT_HELP;
        case WISP_CLI_GETOPT_ERROR: return -1;
        case OPT_NAME: o->name = optarg; break;
        case OPT_RUNTIME: o->runtime = optarg; break;
        case OPT_HANDLER: o->handler = optarg; break;
        case OPT_DESCRIPTION: o->description = optarg; break;
        case OPT_MEMORY: rc = wisp__cli_parse_uint("--memory", optarg, &o->memory_mb, err); break;
        case OPT_TIMEOUT: rc = wisp__cli_parse_uint("--timeout", optarg, &o->timeout_s, err); break;
        case OPT_TMP: rc = wisp__cli_parse_uint("--tmp", optarg, &o->tmp_mb, err); break;
        case OPT_IDLE_TIMEOUT:
            rc = wisp__cli_parse_uint("--idle-timeout", optarg, &o->idle_timeout_s, err);
            break;
        case OPT_MIN_WARM:
            rc = wisp__cli_parse_uint("--min-warm", optarg, &o->min_warm, err);
            break;
        case OPT_CONCURRENCY:
            if (strcmp(optarg, "none") == 0)
                o->concurrency = -2;
            else
                rc = wisp__cli_parse_uint("--concurrency", optarg, &o->concurrency, err);
            break;
        case OPT_ENV:
            if (o->env == NULL)
                o->env = json_object();
            rc = wisp__cli_parse_env(optarg, o->env, err);
            break;
        default: rc = wisp_err_set(err, WISP_EINVALID, "unexpected option");
        }
        if (rc < 0)
            goto fail;
    }
    if (argc - optind < 1) {
        wisp_err_set(err, WISP_EINVALID, "deploy needs a folder or .zip to deploy");
        goto fail;
    }
    if (argc - optind > 1) {
        wisp_err_set(err, WISP_EINVALID, "deploy takes one folder or .zip, not also '%s'",
                     argv[optind + 1]);
        goto fail;
    }
    o->path = argv[optind];
    if (o->name && !wisp__cli_name_valid(o->name)) {
        wisp_err_set(err, WISP_EINVALID, "--name '%s': names are 1-64 letters, digits, '-' or '_'",
                     o->name);
        goto fail;
    }
    return 0;
fail:
    wisp__cli_deploy_opts_free(o);
    return -1;
}

static void set_int(json_t *cfg, const char *key, int v)
{
    if (v >= 0)
        json_object_set_new(cfg, key, json_integer(v));
}

json_t *wisp__cli_deploy_config(const wisp_cli_deploy_opts_t *o, const char *runtime,
                                const char *handler, bool creating)
{
    json_t *cfg = json_object();
    if (o->runtime)
        json_object_set_new(cfg, "runtime", json_string(o->runtime));
    else if (creating && runtime)
        json_object_set_new(cfg, "runtime", json_string(runtime));
    if (o->handler)
        json_object_set_new(cfg, "handler", json_string(o->handler));
    else if (creating && handler)
        json_object_set_new(cfg, "handler", json_string(handler));
    set_int(cfg, "memory_mb", o->memory_mb);
    set_int(cfg, "timeout_s", o->timeout_s);
    set_int(cfg, "tmp_mb", o->tmp_mb);
    set_int(cfg, "idle_timeout_s", o->idle_timeout_s);
    set_int(cfg, "min_warm", o->min_warm);
    if (o->concurrency == -2)
        json_object_set_new(cfg, "concurrency", json_null());
    else
        set_int(cfg, "concurrency", o->concurrency);
    if (o->env)
        json_object_set(cfg, "env", o->env);
    if (o->description) {
        json_t *d = json_string(o->description);
        json_object_set_new(cfg, "description", d ? d : json_string(""));
    }
    return cfg;
}

/* The package and what it holds at the top, from a folder or a .zip. */
static int load_package(const char *path, char **zip, size_t *len, wisp_cli_file_t **files,
                        size_t *n, wisp_err_t *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return wisp_err_sys(err, errno, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        if (wisp__cli_zip_dir(path, zip, len, err) < 0)
            return -1;
        return wisp__cli_list_dir(path, files, n, err);
    }
    if (!S_ISREG(st.st_mode))
        return wisp_err_set(err, WISP_EINVALID, "%s is neither a folder nor a .zip file", path);
    if (wisp_read_file(path, WISP_ZIP_MAX, zip, len, err) < 0) {
        if (err && err->code == WISP_ELIMIT)
            return wisp_err_set(err, WISP_ELIMIT, "%s is larger than %u MiB", path,
                                WISP_ZIP_MAX / (1024 * 1024));
        return -1;
    }
    if (*len < 4 || memcmp(*zip, "PK", 2) != 0)
        return wisp_err_set(err, WISP_EINVALID, "%s is not a zip file", path);
    return wisp__cli_list_zip(*zip, *len, files, n, err);
}

static void print_deployed(json_t *fn, const char *name)
{
    const char *runtime = json_string_value(json_object_get(fn, "runtime"));
    const char *sha = json_string_value(json_object_get(fn, "code_sha256"));
    const char *rev = json_string_value(json_object_get(fn, "revision"));
    json_t *size = json_object_get(fn, "code_size");
    char hsize[32] = "?";
    if (json_is_integer(size))
        wisp__cli_human_size(json_integer_value(size), hsize, sizeof hsize);
    printf("deployed %s (%s, sha256 %.12s, %s, revision %s)\n", name, runtime ? runtime : "?",
           sha ? sha : "?", hsize, rev ? rev : "?");
}

static int deploy(wisp_cli_t *cli, const wisp_cli_deploy_opts_t *o)
{
    wisp_err_t err;
    struct stat st;
    if (stat(o->path, &st) < 0)
        return wisp__cli_usage_error(cli->cmd, "%s: %s", o->path, strerror(errno));
    const char *dot = strrchr(o->path, '.');
    if (S_ISREG(st.st_mode) && dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
        return wisp__cli_usage_error(cli->cmd, "%s: deploying a wisp.yaml app is not supported yet",
                                     o->path);
    cleanup_free char *name = NULL;
    if (o->name)
        name = xstrdup(o->name);
    else if (wisp__cli_name_from_path(o->path, &name, &err) < 0)
        return wisp__cli_usage_error(cli->cmd, "%s", err.msg);

    cleanup_free char *zip = NULL;
    size_t zip_len = 0;
    wisp_cli_file_t *files = NULL;
    size_t nfiles = 0;
    if (load_package(o->path, &zip, &zip_len, &files, &nfiles, &err) < 0) {
        wisp__cli_files_free(files, nfiles);
        return wisp__cli_fail(&err);
    }
    const char *runtime = NULL, *handler = NULL;
    wisp_err_t derr;
    int detected = wisp__cli_detect_runtime(files, nfiles, &runtime, &handler, &derr);
    wisp__cli_files_free(files, nfiles);
    /* A handler detected for another runtime than the one asked for is no use. */
    if (detected == 0 && o->runtime && strcmp(o->runtime, runtime) != 0)
        handler = NULL;

    cleanup_free char *fn_path = wisp__cli_fn_path(name, NULL);
    long status = 0;
    cleanup_json json_t *existing = NULL;
    if (wisp_cli_call_json(cli, "GET", fn_path, NULL, &existing, &status, &err) < 0 &&
        status != 404)
        return wisp__cli_fail(&err);
    bool creating = status == 404;
    if (creating && o->runtime == NULL && detected < 0)
        return wisp__cli_usage_error(cli->cmd, "%s", derr.msg);

    cleanup_json json_t *cfg = wisp__cli_deploy_config(o, runtime, handler, creating);
    if (creating || json_object_size(cfg) > 0) {
        if (wisp_cli_call_json(cli, "PUT", fn_path, cfg, NULL, NULL, &err) < 0) {
            wisp_err_wrap(&err, "%s %s", creating ? "creating" : "configuring", name);
            return wisp__cli_fail(&err);
        }
    }

    cleanup_free char *code_path = wisp__cli_fn_path(name, "/code");
    wisp_cli_req_t req = {
        .method = "PUT",
        .path = code_path,
        .content_type = "application/zip",
        .body = zip,
        .len = zip_len,
        .timeout_s = 600,
    };
    wisp_cli_resp_t resp;
    int rc = wisp_cli_http(cli, &req, &resp, &err);
    if (rc == 0 && (resp.status < 200 || resp.status > 299))
        rc = wisp_cli_api_error(cli, &resp, &err);
    cleanup_json json_t *fn = NULL;
    if (rc == 0)
        fn = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    wisp_cli_resp_free(&resp);
    if (rc < 0) {
        wisp_err_wrap(&err, "uploading the code of %s", name);
        return wisp__cli_fail(&err);
    }
    if (fn == NULL) {
        fprintf(stderr, "wisp: the daemon's answer to the code upload is not JSON\n");
        return WISP_CLI_EXIT_ERROR;
    }
    if (cli->json)
        wisp__cli_print_json(fn);
    else
        print_deployed(fn, name);
    return WISP_CLI_EXIT_OK;
}

int wisp_cli_deploy(int argc, char **argv)
{
    wisp_cli_t cli = {0};
    wisp_cli_deploy_opts_t o;
    wisp_err_t err;
    int rc = wisp__cli_parse_deploy(&cli, argc, argv, &o, &err);
    if (rc == WISP_CLI_GETOPT_HELP) {
        wisp_cli_usage("deploy", stdout);
        wisp__cli_deploy_opts_free(&o);
        wisp__cli_free(&cli);
        return WISP_CLI_EXIT_OK;
    }
    if (rc < 0) {
        wisp__cli_free(&cli);
        return wisp__cli_usage_error("deploy", "%s", err.msg);
    }
    if (wisp__cli_resolve(&cli, &err) < 0)
        rc = wisp__cli_usage_error("deploy", "%s", err.msg);
    else
        rc = deploy(&cli, &o);
    wisp__cli_deploy_opts_free(&o);
    wisp__cli_free(&cli);
    return rc;
}
