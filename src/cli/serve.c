/*
 * serve.c - `wisp serve`: the daemon. Sets up the data folder (store,
 * admin token, AWS credentials), forks the sandbox spawner before any thread
 * exists, then runs one libuv event loop that owns all state: the admin
 * listener (native + Lambda API, metrics), the gateway listener, the Runtime
 * API of every env. SIGTERM/SIGINT drain in-flight requests and exit 0.
 */
#include <getopt.h>
#include <limits.h>
#include <openssl/sha.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "api/api.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http.h"
#include "invoke/invoke.h"
#include "registry/registry.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

int wisp_cli_serve(int argc, char **argv);

#define DRAIN_GRACE_MS 10000

struct daemon {
    uv_loop_t *loop;
    wisp_sandbox_t *sandbox;
    wisp_store_t *store;
    wisp_registry_t *registry;
    wisp_invoker_t *invoker;
    wisp_api_t *api;
    wisp_http_server_t *admin, *gateway;
    uv_signal_t sigterm, sigint;
    int http_pending; /* servers still draining */
    bool stopping;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wisp serve [options]\n"
            "  --listen HOST:PORT      gateway listener (default 127.0.0.1:7700)\n"
            "  --admin HOST:PORT       admin listener (default 127.0.0.1:7701)\n"
            "  --data DIR              data folder (default $WISP_DATA or ./wisp-data)\n"
            "  --max-envs N            live execution environments, all functions (256)\n"
            "  --memory-budget-mb N    sum of live envs' memory_mb (3/4 of RAM)\n"
            "  --queue-max N           invocations waiting per function (100)\n"
            "  --queue-wait-ms N       how long an invocation waits for an env (2000)\n"
            "  --log-buffer-mb N       log lines and records waiting to be stored before\n"
            "                          new ones are dropped (64)\n"
            "  --runtimes DIR          runtime shims (default: next to the binary)\n"
            "  --no-zygote             start every python3 and nodejs env by exec, not from the\n"
            "                          python3 zygote or a nodejs stem\n"
            "  --log-level LEVEL       debug|info|warn|error (info)\n");
}

/* The admin token: 256 random bits as hex, created on first start (0600). */
static int load_token(const char *data, char **token, wisp_err_t *err)
{
    cleanup_free char *path = xasprintf("%s/admin.token", data);
    size_t len;
    if (wisp_read_file(path, 4096, token, &len, NULL) == 0) {
        while (len > 0 && ((*token)[len - 1] == '\n' || (*token)[len - 1] == ' '))
            (*token)[--len] = '\0';
        if (len >= 16)
            return 0;
        free(*token);
        return wisp_err_set(err, WISP_EINVALID, "%s: token too short", path);
    }
    unsigned char raw[32];
    char hex[65];
    wisp_random_bytes(raw, sizeof raw);
    wisp_hex(raw, sizeof raw, hex);
    char line[80];
    snprintf(line, sizeof line, "%s\n", hex);
    if (wisp_write_file(path, line, strlen(line), 0600, err) < 0)
        return -1;
    wisp_info("serve", "created admin token at %s", path);
    *token = xstrdup(hex);
    return 0;
}

static void random_text(char *out, size_t n, const char *alphabet)
{
    unsigned char r[64];
    size_t k = strlen(alphabet);
    wisp_random_bytes(r, n);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[r[i] % k];
    out[n] = '\0';
}

/* Find `key = value` in the [default] section of an AWS credentials file. */
static char *ini_get(const char *text, const char *key)
{
    bool in_default = false;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        cleanup_free char *line = xstrndup(p, n);
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '[') {
            in_default = strncmp(s, "[default]", 9) == 0;
        } else if (in_default && strncmp(s, key, strlen(key)) == 0) {
            char *v = s + strlen(key);
            while (*v == ' ' || *v == '\t')
                v++;
            if (*v == '=') {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                char *end = v + strlen(v);
                while (end > v && (end[-1] == ' ' || end[-1] == '\r' || end[-1] == '\t'))
                    *--end = '\0';
                return xstrdup(v);
            }
        }
        p = eol ? eol + 1 : p + n;
    }
    return NULL;
}

static int load_aws_credentials(const char *data, char **akid, char **secret, wisp_err_t *err)
{
    cleanup_free char *path = xasprintf("%s/aws-credentials", data);
    cleanup_free char *text = NULL;
    size_t len;
    if (wisp_read_file(path, 65536, &text, &len, NULL) == 0) {
        *akid = ini_get(text, "aws_access_key_id");
        *secret = ini_get(text, "aws_secret_access_key");
        if (*akid && *secret)
            return 0;
        free(*akid);
        free(*secret);
        return wisp_err_set(err, WISP_EINVALID,
                            "%s: no aws_access_key_id / aws_secret_access_key in [default]", path);
    }
    char id[21], sec[41];
    memcpy(id, "AKIA", 4);
    random_text(id + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    random_text(sec, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    cleanup_free char *ini = xasprintf("[default]\naws_access_key_id = %s\n"
                                       "aws_secret_access_key = %s\n",
                                       id, sec);
    if (wisp_write_file(path, ini, strlen(ini), 0600, err) < 0)
        return -1;
    wisp_info("serve", "created AWS credentials at %s", path);
    *akid = xstrdup(id);
    *secret = xstrdup(sec);
    return 0;
}

/* Runtime shims: --runtimes, $WISP_RUNTIMES, or <binary dir>/runtimes. */
static char *find_runtimes(const char *opt)
{
    if (opt)
        return realpath(opt, NULL);
    const char *env = getenv("WISP_RUNTIMES");
    if (env)
        return realpath(env, NULL);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            /* build/runtimes (assembled by make), then an installed layout. */
            const char *cands[] = {"/runtimes", "/../lib/wisp/runtimes"};
            for (size_t i = 0; i < WISP_ARRAY_LEN(cands); i++) {
                cleanup_free char *p = xasprintf("%s%s", exe, cands[i]);
                char *r = realpath(p, NULL);
                if (r)
                    return r;
            }
        }
    }
    return NULL;
}

static void gateway_cb(wisp_http_req_t *req, void *data)
{
    static const char body[] = "{\"message\":\"Not Found\"}";
    wisp_http_respond(req, 404, "application/json", NULL, body, sizeof body - 1);
}

/* Every env is gone. The invoker is freed after the loop returns: this runs
 * inside the last env's exit handling, which still uses it. */
static void invoker_done_cb(void *data)
{
    struct daemon *d = data;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_stop(d->loop);
}

static void http_done_cb(void *data)
{
    struct daemon *d = data;
    if (--d->http_pending > 0)
        return;
    wisp_info("serve", "listeners closed; retiring environments");
    wisp_invoker_shutdown(d->invoker, invoker_done_cb, d);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        wisp_warn("serve", "second signal: exiting now");
        wisp_sandbox_close(d->sandbox);
        _exit(1);
    }
    d->stopping = true;
    wisp_info("serve", "received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    d->http_pending = 2;
    wisp_http_server_shutdown(d->admin, DRAIN_GRACE_MS, http_done_cb, d);
    wisp_http_server_shutdown(d->gateway, DRAIN_GRACE_MS, http_done_cb, d);
}

static int parse_uint(const char *name, const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max || s[0] == '-') {
        fprintf(stderr, "wisp serve: %s must be a number up to %u\n", name, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int wisp_cli_serve(int argc, char **argv)
{
    const char *listen = "127.0.0.1:7700", *admin = "127.0.0.1:7701";
    const char *data = getenv("WISP_DATA") ? getenv("WISP_DATA") : "./wisp-data";
    const char *runtimes_opt = NULL;
    bool no_zygote = false;
    wisp_invoker_config_t icfg = {0};
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"admin", required_argument, 0, 'a'},
        {"data", required_argument, 0, 'd'},
        {"max-envs", required_argument, 0, 'm'},
        {"memory-budget-mb", required_argument, 0, 'b'},
        {"queue-max", required_argument, 0, 'q'},
        {"queue-wait-ms", required_argument, 0, 'w'},
        {"log-buffer-mb", required_argument, 0, 'B'},
        {"runtimes", required_argument, 0, 'r'},
        {"log-level", required_argument, 0, 'L'},
        {"no-zygote", no_argument, 0, 'Z'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'a': admin = optarg; break;
        case 'd': data = optarg; break;
        case 'r': runtimes_opt = optarg; break;
        case 'Z': no_zygote = true; break;
        case 'm':
            if (parse_uint("--max-envs", optarg, 100000, &icfg.max_envs) < 0 || !icfg.max_envs)
                return 2;
            break;
        case 'b':
            if (parse_uint("--memory-budget-mb", optarg, 1u << 30, &icfg.memory_budget_mb) < 0)
                return 2;
            break;
        case 'q':
            if (parse_uint("--queue-max", optarg, 100000, &icfg.queue_max) < 0)
                return 2;
            break;
        case 'w':
            if (parse_uint("--queue-wait-ms", optarg, 900000, &icfg.queue_wait_ms) < 0)
                return 2;
            break;
        case 'B': {
            unsigned mb = 0;
            if (parse_uint("--log-buffer-mb", optarg, 65536, &mb) < 0)
                return 2;
            if (mb == 0) {
                fprintf(stderr, "wisp serve: --log-buffer-mb must be at least 1\n");
                return 2;
            }
            icfg.log_buffer_bytes = (size_t)mb * 1024 * 1024;
            break;
        }
        case 'L': {
            int l = wisp_log_parse_level(optarg);
            if (l < 0) {
                fprintf(stderr, "wisp serve: unknown log level %s\n", optarg);
                return 2;
            }
            wisp_log_set_level((wisp_log_level_t)l);
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wisp serve: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    umask(022);
    /* Thousands of client connections need descriptors: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    wisp_err_t err;
    if (wisp_mkdir_p(data, 0700, &err) < 0) {
        fprintf(stderr, "wisp serve: %s\n", err.msg);
        return 1;
    }
    char *data_dir = realpath(data, NULL);
    cleanup_free char *runtimes = find_runtimes(runtimes_opt);
    if (runtimes == NULL) {
        fprintf(stderr, "wisp serve: runtime shims not found; pass --runtimes DIR\n");
        free(data_dir);
        return 1;
    }
    cleanup_free char *token = NULL, *akid = NULL, *secret = NULL;
    if (load_token(data_dir, &token, &err) < 0 ||
        load_aws_credentials(data_dir, &akid, &secret, &err) < 0) {
        fprintf(stderr, "wisp serve: %s\n", err.msg);
        free(data_dir);
        return 1;
    }

    /* The spawner must be forked before any thread exists (libuv's pool). */
    struct daemon d = {0};
    cleanup_free char *sbdir = xasprintf("%s/sandbox", data_dir);
    /* Sandbox cgroups are named after the data folder: a restart on the same
     * data removes what a crashed predecessor left, and two daemons with
     * different data folders never touch each other's envs. */
    unsigned char digest[32];
    char hex[13], cgname[32];
    SHA256((const unsigned char *)data_dir, strlen(data_dir), digest);
    wisp_hex(digest, 6, hex);
    snprintf(cgname, sizeof cgname, "wisp-%s", hex);
    wisp_sandbox_config_t sbcfg = {
        .state_dir = sbdir, .cgroup_name = cgname, .no_zygote = no_zygote};
    if (wisp_sandbox_init(&d.sandbox, &sbcfg, &err) < 0) {
        wisp_error("serve", "starting the sandbox spawner: %s", err.msg);
        free(data_dir);
        return 1;
    }
    d.loop = uv_default_loop();
    cleanup_free char *dbpath = xasprintf("%s/wisp.db", data_dir);
    d.store = wisp_store_open(dbpath, &err);
    if (d.store == NULL)
        goto fail;
    d.registry = wisp_registry_new(d.loop, d.store, data_dir, &err);
    if (d.registry == NULL)
        goto fail;
    icfg.runtimes_dir = runtimes;
    d.invoker = wisp_invoker_new(d.loop, d.registry, d.store, d.sandbox, &icfg, &err);
    if (d.invoker == NULL)
        goto fail;
    wisp_api_config_t acfg = {
        .registry = d.registry,
        .store = d.store,
        .invoker = d.invoker,
        .admin_token = token,
        .aws_access_key = akid,
        .aws_secret_key = secret,
    };
    acfg.max_concurrency = icfg.max_envs ? icfg.max_envs : 256;
    d.api = wisp_api_new(&acfg);
    wisp_http_limits_t admin_lim = {.max_body_bytes = WISP_API_MAX_BODY};
    d.admin = wisp_http_server_new(d.loop, "admin", &admin_lim, wisp_api_admin_handler, d.api);
    d.gateway = wisp_http_server_new(d.loop, "gateway", NULL, gateway_cb, &d);
    wisp_http_listener_t *al, *gl;
    if (wisp_http_server_listen(d.admin, admin, NULL, &al, &err) < 0 ||
        wisp_http_server_listen(d.gateway, listen, NULL, &gl, &err) < 0)
        goto fail;
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d.sigint, signal_cb, SIGINT);

    json_t *f = json_pack("{s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:s,s:s}", "admin", admin, "admin_port",
                          wisp_http_listener_port(al), "gateway", listen, "gateway_port",
                          wisp_http_listener_port(gl), "data", data_dir, "token_file",
                          "admin.token", "aws_credentials_file", "aws-credentials", "cgroups",
                          wisp_sandbox_cgroup_mode(d.sandbox), "runtimes", runtimes);
    wisp_log_fields(WISP_LOG_INFO, "serve", "wisp is ready", f);
    /* A human summary too, when a person is watching (the log stays pure JSON otherwise). */
    if (isatty(STDERR_FILENO))
        fprintf(stderr,
                "wisp %s ready: admin http://%s (port %d), gateway http://%s (port %d)\n"
                "  data %s; token %s/admin.token; AWS credentials %s/aws-credentials\n",
                WISP_VERSION, admin, wisp_http_listener_port(al), listen,
                wisp_http_listener_port(gl), data_dir, data_dir, data_dir);

    uv_run(d.loop, UV_RUN_DEFAULT);

    wisp_logs_flush(d.invoker);
    wisp_invoker_free(d.invoker);
    wisp_api_free(d.api);
    wisp_registry_free(d.registry);
    wisp_store_close(d.store);
    wisp_sandbox_close(d.sandbox);
    /* Let closing handles finish (bounded: nothing should still be active). */
    for (int i = 0; i < 100 && uv_loop_alive(d.loop); i++)
        uv_run(d.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(d.loop) != 0)
        wisp_warn("serve", "event loop still had handles at exit");
    free(data_dir);
    wisp_info("serve", "stopped");
    return 0;

fail:
    wisp_error("serve", "%s", err.msg);
    wisp_sandbox_close(d.sandbox);
    free(data_dir);
    return 1;
}
