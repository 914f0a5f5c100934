/*
 * test_sandbox.c - unit tests for src/sandbox: real namespaces, cgroups,
 * mounts and seccomp (needs root; cases SKIP without it). Each case starts
 * its own spawner with a private cgroup name and state folder, runs
 * sandboxes on a real uv loop and checks from inside (with a probe program
 * compiled from tests/integration/sandbox-probe/probe.c into the code folder,
 * or /bin/sh) and from the host (cgroup files, processes) what they can do.
 * After each case the cgroups must be gone.
 */
#define TAP_TIMEOUT 60
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/util.h"
#include "sandbox/sandbox.h"
#include "tap.h"

#define OUT_MAX (64 * 1024)
#define MAX_RUNS 32

/* One sandbox as the test sees it. */
struct run {
    char id[65];
    bool replied, ok, exited;
    wisp_err_t err;
    wisp_sandbox_started_t st;
    char out[OUT_MAX], errout[OUT_MAX];
    int status;
    bool oom;
    uint64_t peak;
    uint64_t t_spawn, t_reply;
};

/* The per-case fixture (each case runs in its own process). */
static struct {
    char top[64];
    char state[128], code[128], runtime[128];
    char cgname[64];
    uv_loop_t loop;
    wisp_sandbox_t *sb;
    struct run *runs[MAX_RUNS];
    int nruns;
    unsigned stem_ttl_ms; /* for the next fixture_up (0: the default) */
} F;

static const char *const default_env[] = {"PATH=/usr/bin:/bin", NULL};
static char secret_dir[64]; /* a host folder the sees_only_its_own_file_system case makes */

/* A failing CHECK exits at once: remove the case's folders anyway (the
 * spawner sees our end of the socket close and removes the cgroups). */
static void remove_temp_dirs(void)
{
    wisp_err_t err;
    if (F.top[0] && wisp_rm_rf(F.top, &err) < 0)
        fprintf(stderr, "# %s\n", err.msg);
    F.top[0] = '\0';
    if (secret_dir[0])
        rmdir(secret_dir);
}

static void on_exit_cb(void *data, const char *id, int wait_status, bool oom, uint64_t peak)
{
    for (int i = 0; i < F.nruns; i++)
        if (strcmp(F.runs[i]->id, id) == 0 && !F.runs[i]->exited) {
            F.runs[i]->exited = true;
            F.runs[i]->status = wait_status;
            F.runs[i]->oom = oom;
            F.runs[i]->peak = peak;
            return;
        }
    fprintf(stderr, "# exit event for unknown sandbox %s\n", id);
    exit(1);
}

static void on_spawn_cb(void *data, const wisp_sandbox_started_t *st, const wisp_err_t *err)
{
    struct run *r = data;
    r->t_reply = wisp_mono_ns();
    r->replied = true;
    CHECK((st == NULL) != (err == NULL));
    if (st) {
        r->ok = true;
        r->st = *st;
    } else {
        r->err = *err;
    }
}

static void write_file(const char *dir, const char *name, const char *text, int mode)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(fchmod(fd, (mode_t)mode) == 0);
    close(fd);
}

static void fixture_init(void)
{
    if (geteuid() != 0)
        SKIP("sandboxes need root");
    snprintf(F.top, sizeof F.top, "/tmp/wisp-sbtest-XXXXXX");
    CHECK(mkdtemp(F.top) != NULL);
    atexit(remove_temp_dirs);
    snprintf(F.state, sizeof F.state, "%s/state", F.top);
    snprintf(F.code, sizeof F.code, "%s/code", F.top);
    snprintf(F.runtime, sizeof F.runtime, "%s/runtime", F.top);
    CHECK(mkdir(F.code, 0755) == 0 && chmod(F.code, 0755) == 0);
    CHECK(mkdir(F.runtime, 0755) == 0 && chmod(F.runtime, 0755) == 0);
    snprintf(F.cgname, sizeof F.cgname, "wisptest%d_%d", (int)getppid(), (int)getpid());
    CHECK(uv_loop_init(&F.loop) == 0);
}

static void fixture_up_cfg3(int pool_size, bool reuse, bool exec_stems)
{
    fixture_init();
    wisp_sandbox_config_t cfg = {.state_dir = F.state,
                                 .cgroup_name = F.cgname,
                                 .pool_size = pool_size,
                                 .no_netns_reuse = !reuse,
                                 .no_exec_stems = !exec_stems,
                                 .exec_stem_ttl_ms = F.stem_ttl_ms};
    wisp_err_t err;
    if (wisp_sandbox_init(&F.sb, &cfg, &err) < 0) {
        fprintf(stderr, "# init: %s\n", err.msg);
        CHECK(0);
    }
    CHECK(wisp_sandbox_attach(F.sb, &F.loop, on_exit_cb, NULL, &err) == 0);
}

static void fixture_up_cfg(int pool_size, bool reuse)
{
    fixture_up_cfg3(pool_size, reuse, true);
}

/* The pool tests count the namespaces the spawner holds: none kept for reuse. */
static void fixture_up_pool(int pool_size)
{
    fixture_up_cfg(pool_size, false);
}

static void fixture_up(void)
{
    fixture_up_cfg(0, true);
}

/* Compile the probe into the code folder. */
static void build_probe(void)
{
    const char *root = getenv("WISP_ROOT");
    cleanup_free char *src =
        xasprintf("%s/tests/integration/sandbox-probe/probe.c", root ? root : ".");
    CHECK(access(src, R_OK) == 0);
    cleanup_free char *cmd = xasprintf("gcc -O1 -o %s/probe %s", F.code, src);
    CHECK(system(cmd) == 0);
}

/* The folder of our sandboxes' groups for a controller, found independently
 * of the code under test (v1/hybrid: <mount>/<current>/<name>). */
static char *cg_base(const char *ctrl)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], *found = NULL;
    bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        bool match = v2 ? strcmp(line, "0") == 0 : strstr(c1 + 1, ctrl) != NULL;
        if (match) {
            const char *cur = strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1;
            found = v2 ? xasprintf("/sys/fs/cgroup%s/%s", cur, F.cgname)
                       : xasprintf("/sys/fs/cgroup/%s%s/%s", ctrl, cur, F.cgname);
            break;
        }
    }
    if (f)
        fclose(f);
    if (found && v2 && access(found, F_OK) != 0) {
        free(found);
        found = xasprintf("/sys/fs/cgroup/%s", F.cgname);
    }
    CHECK(found != NULL);
    return found;
}

static bool cg_exists(const char *ctrl, const char *id)
{
    cleanup_free char *base = cg_base(ctrl);
    cleanup_free char *dir = id ? xasprintf("%s/%s", base, id) : xstrdup(base);
    return access(dir, F_OK) == 0;
}

static void fixture_down(void)
{
    cleanup_free char *mem = cg_base("memory");
    cleanup_free char *pids = cg_base("pids");
    wisp_sandbox_close(F.sb);
    F.sb = NULL;
    uv_run(&F.loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&F.loop) == 0);
    CHECK(access(mem, F_OK) != 0 && errno == ENOENT);
    CHECK(access(pids, F_OK) != 0 && errno == ENOENT);
    wisp_err_t err;
    CHECK(wisp_rm_rf(F.top, &err) == 0);
    F.top[0] = '\0';
    for (int i = 0; i < F.nruns; i++)
        free(F.runs[i]);
}

static wisp_sandbox_spec_t spec_for(const char *id, const char *const *argv)
{
    wisp_sandbox_spec_t s = {
        .id = id,
        .code_dir = F.code,
        .argv = argv,
        .envp = default_env,
        .memory_mb = 128,
        .tmp_mb = 16,
        .pids_max = 64,
        .cpu_weight = 100,
    };
    return s;
}

static struct run *new_run(const char *id)
{
    CHECK(F.nruns < MAX_RUNS);
    struct run *r = xcalloc(1, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    F.runs[F.nruns++] = r;
    return r;
}

/* Ask for a sandbox and wait for the reply. */
static struct run *spawn(const wisp_sandbox_spec_t *spec)
{
    struct run *r = new_run(spec->id);
    wisp_err_t err;
    r->t_spawn = wisp_mono_ns();
    if (wisp_sandbox_spawn(F.sb, spec, on_spawn_cb, r, &err) < 0) {
        fprintf(stderr, "# spawn %s: %s\n", spec->id, err.msg);
        CHECK(0);
    }
    while (!r->replied)
        uv_run(&F.loop, UV_RUN_ONCE);
    if (!r->ok)
        fprintf(stderr, "# spawn %s failed: %s\n", spec->id, r->err.msg);
    return r;
}

/* Read stdout and stderr to their end, then wait for the exit event. */
static void finish(struct run *r)
{
    CHECK(r->ok);
    size_t n[2] = {0, 0};
    char *bufs[2] = {r->out, r->errout};
    struct pollfd p[2] = {{.fd = r->st.out_fd, .events = POLLIN},
                          {.fd = r->st.err_fd, .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        CHECK(poll(p, 2, -1) > 0);
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t k = read(p[i].fd, tmp, sizeof tmp);
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            size_t room = OUT_MAX - 1 - n[i];
            size_t take = (size_t)k < room ? (size_t)k : room;
            memcpy(bufs[i] + n[i], tmp, take);
            n[i] += take;
            bufs[i][n[i]] = '\0';
        }
    }
    while (!r->exited)
        uv_run(&F.loop, UV_RUN_ONCE);
    close(r->st.api_fd);
    if (r->st.peak_fd >= 0)
        close(r->st.peak_fd);
}

static struct run *run_to_end(const wisp_sandbox_spec_t *spec)
{
    struct run *r = spawn(spec);
    finish(r);
    return r;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

#define CHECK_LINE(text, line)                                                                     \
    do {                                                                                           \
        if (!has_line((text), (line))) {                                                           \
            fprintf(stderr, "# missing line \"%s\" in:\n%s\n", (line), (text));                    \
            CHECK(0);                                                                              \
        }                                                                                          \
    } while (0)

/* The value after "key=" on its own line, or NULL. */
static const char *value_of(const char *text, const char *key, char *buf, size_t cap)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == '=') {
            size_t len = strcspn(p + n + 1, "\n");
            snprintf(buf, cap, "%.*s", (int)len, p + n + 1);
            return buf;
        }
    return NULL;
}

/* How many seccomp filters process pid (0: this test, usually none) runs under. */
static int seccomp_filters_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid ? (int)pid : (int)getpid());
    FILE *f = fopen(path, "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Seccomp_filters: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    CHECK(n >= 0);
    return n;
}

/* ---- cases ---------------------------------------------------------------- */

TEST(runs_unprivileged_and_confined)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "ids", NULL};
    wisp_sandbox_spec_t s = spec_for("ids", argv);
    struct run *r = run_to_end(&s);
    CHECK(r->st.pid > 1);
    CHECK(r->st.setup_ns > 0);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    CHECK_LINE(r->out, "uid=65534");
    CHECK_LINE(r->out, "gid=65534");
    CHECK_LINE(r->out, "groups=1 65534");
    CHECK_LINE(r->out, "pid=1");
    CHECK_LINE(r->out, "CapInh=0000000000000000");
    CHECK_LINE(r->out, "CapPrm=0000000000000000");
    CHECK_LINE(r->out, "CapEff=0000000000000000");
    CHECK_LINE(r->out, "CapBnd=0000000000000000");
    CHECK_LINE(r->out, "CapAmb=0000000000000000");
    CHECK_LINE(r->out, "NoNewPrivs=1");
    CHECK_LINE(r->out, "Seccomp=2");
    /* One filter more than this test runs under: the spawner's, inherited. */
    char filters[64];
    snprintf(filters, sizeof filters, "Seccomp_filters=%d", seccomp_filters_of(0) + 1);
    CHECK_LINE(r->out, filters);
    CHECK(!r->oom);
    CHECK(r->peak > 0);
    CHECK_INT(wisp_sandbox_count(F.sb), 0);
    CHECK(!cg_exists("memory", "ids") && !cg_exists("pids", "ids"));
    fixture_down();
}

TEST(sees_only_its_own_file_system)
{
    fixture_up();
    write_file(F.runtime, "shim", "shim-content\n", 0644);
    /* A host folder outside /tmp that must stay invisible. */
    snprintf(secret_dir, sizeof secret_dir, "/var/tmp/wisp-sbtest-secret-XXXXXX");
    CHECK(mkdtemp(secret_dir) != NULL);
    const char *secret = secret_dir;
    cleanup_free char *script =
        xasprintf("#!/bin/sh\n"
                  "echo pid=$$\n"
                  "echo host=$(cat /proc/sys/kernel/hostname)\n"
                  "test -e /etc/shadow || echo no-shadow\n"
                  "test -e /root || echo no-root\n"
                  "test -e /home || echo no-home\n"
                  "test -e %s || echo no-secret\n"
                  "test -e %s || echo no-top\n"
                  "test -e /etc/ld.so.cache && echo ld-cache\n"
                  "grep -q '^nobody:x:65534:65534:' /etc/passwd && echo passwd-ok\n"
                  "touch /var/task/x 2>/dev/null || echo task-ro\n"
                  "touch /var/runtime/x 2>/dev/null || echo runtime-ro\n"
                  "touch /x 2>/dev/null || echo root-ro\n"
                  "touch /usr/x 2>/dev/null || echo usr-ro\n"
                  "touch /etc/x 2>/dev/null || echo etc-ro\n"
                  "echo tmp-ok > /tmp/t && cat /tmp/t\n"
                  "cat /var/runtime/shim\n"
                  "echo dev=$(ls /dev | tr '\\n' ' ')\n"
                  "echo var=$(ls /var | tr '\\n' ' ')\n"
                  "echo procs=$(ls /proc | grep -c '^[0-9]')\n"
                  "echo cwd=$(pwd)\n"
                  "grep -q ':memory:/$' /proc/self/cgroup && echo cgroupns\n"
                  "echo null-ok > /dev/null && echo devnull\n"
                  "head -c 4 /dev/urandom | wc -c\n",
                  secret, F.top);
    write_file(F.code, "fs.sh", script, 0755);
    const char *argv[] = {"/var/task/fs.sh", NULL};
    wisp_sandbox_spec_t s = spec_for("fs", argv);
    s.runtime_dir = F.runtime;
    struct run *r = run_to_end(&s);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    static const char *const want[] = {
        "pid=1",
        "host=wisp",
        "no-shadow",
        "no-root",
        "no-home",
        "no-secret",
        "no-top",
        "ld-cache",
        "passwd-ok",
        "task-ro",
        "runtime-ro",
        "root-ro",
        "usr-ro",
        "etc-ro",
        "tmp-ok",
        "shim-content",
        "dev=fd full null random shm stderr stdin stdout urandom zero",
        "var=runtime task",
        "cwd=/var/task",
        "cgroupns",
        "devnull",
        "4"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(want); i++)
        CHECK_LINE(r->out, want[i]);
    char v[64];
    CHECK(value_of(r->out, "procs", v, sizeof v) != NULL);
    CHECK(atoi(v) >= 1 && atoi(v) <= 4);
    fixture_down();
}

/* Accept the sandbox's first Runtime API connection on its listener and check
 * that it sent word. */
static void expect_first_connection(const struct run *r, const char *word)
{
    int conn = accept(r->st.api_fd, NULL, NULL);
    CHECK(conn >= 0);
    char got[16] = "";
    size_t n = strlen(word);
    CHECK(n < sizeof got && read(conn, got, n) == (ssize_t)n);
    CHECK(memcmp(got, word, n) == 0);
    close(conn);
}

TEST(network_is_loopback_only)
{
    fixture_up();
    build_probe();
    /* A host listener the sandbox must not reach. */
    int host = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(host, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(host, 8) == 0);
    socklen_t sl = sizeof sa;
    CHECK(getsockname(host, (struct sockaddr *)&sa, &sl) == 0);
    char hostport[16];
    snprintf(hostport, sizeof hostport, "%u", ntohs(sa.sin_port));
    const char *argv[] = {"/var/task/probe", "net", "9123", hostport, NULL};
    wisp_sandbox_spec_t s = spec_for("net", argv);
    s.api_port = 9123;
    struct run *r = spawn(&s);
    CHECK(r->ok);
    /* The daemon side accepts the sandbox's connection on api_fd. */
    expect_first_connection(r, "hello");
    finish(r);
    CHECK_LINE(r->out, "api=ok");
    CHECK_LINE(r->out, "host=ECONNREFUSED");
    CHECK_LINE(r->out, "lo_up=1");
    CHECK_LINE(r->out, "ifaces=lo,");
    close(host);
    fixture_down();
}

TEST(forbidden_system_calls_fail)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "sys", NULL};
    wisp_sandbox_spec_t s = spec_for("sys", argv);
    struct run *r = run_to_end(&s);
    static const char *const want[] = {"mount=EPERM",
                                       "umount=EPERM",
                                       "unshare_user=EPERM",
                                       "unshare_net=EPERM",
                                       "ptrace=EPERM",
                                       "raw=EPERM",
                                       "packet=EPERM",
                                       "netlink=EPERM",
                                       "clone3=ENOSYS",
                                       "io_uring=ENOSYS",
                                       "bpf=EPERM",
                                       "keyctl=EPERM",
                                       "perf=EPERM",
                                       "userfaultfd=EPERM",
                                       "chroot=EPERM",
                                       "sethostname=EPERM",
                                       "setuid0=EPERM",
                                       "personality=EPERM",
                                       "clone_ns=EPERM",
                                       "clone_pid=EPERM",
                                       "unshare_pid=EPERM",
                                       "unshare_user_mnt=EPERM",
                                       "setns=EPERM",
                                       "pivot_root=EPERM",
                                       "open_tree=EPERM",
                                       "tcp=ok",
                                       "udp6=ok",
                                       "socketpair=ok",
                                       "fork=ok"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(want); i++)
        CHECK_LINE(r->out, want[i]);
    fixture_down();
}

TEST(tmp_is_size_limited)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "fill", NULL};
    wisp_sandbox_spec_t s = spec_for("fill", argv);
    s.tmp_mb = 8;
    struct run *r = run_to_end(&s);
    CHECK_LINE(r->out, "errno=ENOSPC");
    char v[32];
    CHECK(value_of(r->out, "wrote_mb", v, sizeof v));
    CHECK(atoi(v) >= 6 && atoi(v) <= 8);
    fixture_down();
}

TEST(memory_limit_reports_oom)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "mem", "256", NULL};
    wisp_sandbox_spec_t s = spec_for("mem", argv);
    s.memory_mb = 32;
    struct run *r = run_to_end(&s);
    CHECK(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL);
    CHECK(r->oom);
    CHECK(r->peak > (16u << 20) && r->peak <= (33u << 20));
    CHECK(strstr(r->out, "allocated=") == NULL);
    /* Within the limit, no OOM. */
    const char *argv2[] = {"/var/task/probe", "mem", "8", NULL};
    wisp_sandbox_spec_t s2 = spec_for("mem2", argv2);
    s2.memory_mb = 64;
    r = run_to_end(&s2);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    CHECK(!r->oom);
    CHECK(r->peak >= (8u << 20));
    fixture_down();
}

TEST(fork_bomb_is_contained)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "forkbomb", NULL};
    wisp_sandbox_spec_t s = spec_for("bomb", argv);
    s.pids_max = 16;
    struct run *r = run_to_end(&s);
    char v[32];
    CHECK(value_of(r->out, "forks", v, sizeof v));
    CHECK(atoi(v) >= 8 && atoi(v) <= 15);
    CHECK_LINE(r->out, "errno=EAGAIN");
    /* A shell fork bomb, stopped with kill. */
    const char *argv2[] = {"/bin/sh", "-c", "b() { b | b & }; b; sleep 1000", NULL};
    wisp_sandbox_spec_t s2 = spec_for("shbomb", argv2);
    s2.pids_max = 32;
    r = spawn(&s2);
    CHECK(r->ok);
    usleep(300 * 1000);
    wisp_sandbox_kill(F.sb, "shbomb");
    finish(r);
    CHECK(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL);
    CHECK(!cg_exists("pids", "shbomb"));
    /* The host is unharmed. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 7);
    fixture_down();
}

TEST(kill_ends_every_process)
{
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "sleep", "3", NULL};
    wisp_sandbox_spec_t s = spec_for("sleepy", argv);
    s.memory_mb = 64;
    s.pids_max = 10;
    struct run *r = spawn(&s);
    CHECK(r->ok);
    char line[16] = "";
    CHECK(read(r->st.out_fd, line, 8) == 8 && strncmp(line, "started\n", 8) == 0);
    CHECK_INT(wisp_sandbox_count(F.sb), 1);
    CHECK(wisp_sandbox_mem_peak(F.sb, "sleepy") > 0);
    /* The limits are in the host's cgroup files. */
    cleanup_free char *pbase = cg_base("pids");
    cleanup_free char *mbase = cg_base("memory");
    cleanup_free char *procs_path = xasprintf("%s/sleepy/cgroup.procs", pbase);
    char *procs;
    size_t len;
    CHECK(wisp_read_file(procs_path, 4096, &procs, &len, NULL) == 0);
    pid_t pids[8];
    int npids = 0;
    for (char *p = procs; *p && npids < 8;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        pids[npids++] = atoi(p);
    free(procs);
    CHECK_INT(npids, 4);
    if (strcmp(wisp_sandbox_cgroup_mode(F.sb), "v2") != 0) {
        char *v;
        cleanup_free char *f1 = xasprintf("%s/sleepy/memory.limit_in_bytes", mbase);
        CHECK(wisp_read_file(f1, 64, &v, &len, NULL) == 0);
        CHECK_INT(atoll(v), 64ll << 20);
        free(v);
        cleanup_free char *f2 = xasprintf("%s/sleepy/pids.max", pbase);
        CHECK(wisp_read_file(f2, 64, &v, &len, NULL) == 0);
        CHECK_INT(atoll(v), 10);
        free(v);
    }
    wisp_sandbox_kill(F.sb, "sleepy");
    wisp_sandbox_kill(F.sb, "unknown-id");
    finish(r);
    CHECK(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL);
    CHECK_INT(wisp_sandbox_count(F.sb), 0);
    CHECK(!cg_exists("pids", "sleepy") && !cg_exists("memory", "sleepy"));
    for (int i = 0; i < npids; i++)
        CHECK(kill(pids[i], 0) < 0 && errno == ESRCH);
    fixture_down();
}

TEST(environment_is_exactly_envp)
{
    setenv("WISP_TEST_LEAK", "must-not-appear", 1);
    fixture_up();
    build_probe();
    const char *argv[] = {"/var/task/probe", "env", NULL};
    const char *envp[] = {"A=1", "B=two words", "EMPTY=", NULL};
    wisp_sandbox_spec_t s = spec_for("env", argv);
    s.envp = envp;
    struct run *r = run_to_end(&s);
    CHECK_STR(r->out, "A=1\nB=two words\nEMPTY=\n");
    fixture_down();
}

TEST(stdout_stderr_and_exit_status)
{
    fixture_up();
    const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; read x; echo \"in=$x\"; exit 3",
                          NULL};
    wisp_sandbox_spec_t s = spec_for("stdio", argv);
    struct run *r = run_to_end(&s);
    CHECK_STR(r->out, "out\nin=\n");
    CHECK_STR(r->errout, "err\n");
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 3);
    fixture_down();
}

TEST(bad_entrypoint_is_a_clear_error)
{
    fixture_up();
    const char *argv[] = {"/var/task/bootstrap", NULL};
    wisp_sandbox_spec_t s = spec_for("bad1", argv);
    struct run *r = spawn(&s);
    CHECK(!r->ok);
    CHECK_INT(r->err.code, WISP_EINVALID);
    CHECK_INT(r->err.sys_errno, ENOENT);
    CHECK_STR(r->err.msg, "exec /var/task/bootstrap: No such file or directory");
    write_file(F.code, "bootstrap", "#!/bin/sh\necho hi\n", 0644);
    s.id = "bad2";
    r = spawn(&s);
    CHECK(!r->ok);
    CHECK_INT(r->err.sys_errno, EACCES);
    CHECK_STR(r->err.msg, "exec /var/task/bootstrap: Permission denied");
    write_file(F.code, "bootstrap", "no shebang line", 0755);
    s.id = "bad3";
    r = spawn(&s);
    CHECK(!r->ok);
    CHECK_INT(r->err.sys_errno, ENOEXEC);
    /* A missing code folder fails in setup, not at exec. */
    s.id = "bad4";
    s.code_dir = "/nonexistent/code";
    r = spawn(&s);
    CHECK(!r->ok);
    CHECK_INT(r->err.code, WISP_EINTERNAL);
    CHECK(strstr(r->err.msg, "/nonexistent/code") != NULL);
    CHECK_INT(wisp_sandbox_count(F.sb), 0);
    CHECK(!cg_exists("memory", "bad1") && !cg_exists("pids", "bad2"));
    /* The spawner still works. */
    write_file(F.code, "bootstrap", "#!/bin/sh\necho hi\n", 0755);
    s.id = "good";
    s.code_dir = F.code;
    r = run_to_end(&s);
    CHECK_STR(r->out, "hi\n");
    fixture_down();
}

TEST(invalid_specs_fail_at_once)
{
    fixture_up();
    const char *argv[] = {"/bin/true", NULL};
    const char *rel[] = {"true", NULL};
    wisp_err_t err;
    wisp_sandbox_spec_t s = spec_for("a/b", argv);
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_EINVALID);
    s = spec_for("x", rel);
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_EINVALID);
    s = spec_for("x", argv);
    s.allow_network = true;
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_EUNSUPPORTED);
    char *big = xmalloc(70000);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    memcpy(big, "X=", 2);
    const char *envp[] = {big, NULL};
    s = spec_for("x", argv);
    s.envp = envp;
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_ELIMIT);
    free(big);
    /* A live id cannot be used twice. */
    const char *sleep_argv[] = {"/bin/sleep", "100", NULL};
    s = spec_for("dup", sleep_argv);
    struct run *r = spawn(&s);
    CHECK(r->ok);
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_ECONFLICT);
    wisp_sandbox_kill(F.sb, "dup");
    finish(r);
    fixture_down();
}

TEST(python_and_node_run)
{
    fixture_up();
    const char *py[] = {"/usr/bin/python3", "-c",
                        "import os, ssl, json; print(1, os.getuid(), json.dumps([2]))", NULL};
    const char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", NULL};
    wisp_sandbox_spec_t s = spec_for("py", py);
    s.memory_mb = 256;
    s.envp = envp;
    struct run *r = run_to_end(&s);
    if (strcmp(r->out, "1 65534 [2]\n") != 0)
        fprintf(stderr, "# python stdout: %s\n# stderr: %s\n", r->out, r->errout);
    CHECK_STR(r->out, "1 65534 [2]\n");
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    if (access("/usr/bin/node", X_OK) != 0) {
        fixture_down();
        SKIP("python3 ran; no /usr/bin/node to try");
    }
    const char *node[] = {"/usr/bin/node", "-e",
                          "const fs=require('fs');fs.writeFileSync('/tmp/a','x');"
                          "require('http').createServer().listen(0,'127.0.0.1',function(){"
                          "console.log(1, fs.readFileSync('/tmp/a','utf8'));this.close()})",
                          NULL};
    s = spec_for("node", node);
    s.memory_mb = 512;
    s.envp = envp;
    r = run_to_end(&s);
    if (strcmp(r->out, "1 x\n") != 0)
        fprintf(stderr, "# node stdout: %s\n# stderr: %s\n", r->out, r->errout);
    CHECK_STR(r->out, "1 x\n");
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    fixture_down();
}

TEST(many_sandboxes_at_once)
{
    fixture_up();
    const char *argv[] = {"/bin/sh", "-c", "sleep 0.2; echo done", NULL};
    struct run *runs[8];
    char ids[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof ids[i], "many%d", i);
        wisp_sandbox_spec_t s = spec_for(ids[i], argv);
        runs[i] = new_run(ids[i]);
        wisp_err_t err;
        CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, runs[i], &err) == 0);
    }
    for (int i = 0; i < 8; i++) {
        while (!runs[i]->replied)
            uv_run(&F.loop, UV_RUN_ONCE);
        CHECK(runs[i]->ok);
    }
    CHECK_INT(wisp_sandbox_count(F.sb), 8);
    for (int i = 0; i < 8; i++) {
        finish(runs[i]);
        CHECK_STR(runs[i]->out, "done\n");
    }
    CHECK_INT(wisp_sandbox_count(F.sb), 0);
    /* Closing with a sandbox still running kills it. */
    const char *sleep_argv[] = {"/bin/sleep", "1000", NULL};
    wisp_sandbox_spec_t s = spec_for("left", sleep_argv);
    struct run *r = spawn(&s);
    CHECK(r->ok);
    pid_t pid = r->st.pid;
    fixture_down();
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    CHECK(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    int ppid = 0;
    CHECK(sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid) == 1);
    return ppid;
}

TEST(spawner_crash_is_reported_and_cleaned_up)
{
    fixture_up();
    const char *argv[] = {"/bin/sleep", "1000", NULL};
    wisp_sandbox_spec_t s = spec_for("victim", argv);
    struct run *r = spawn(&s);
    CHECK(r->ok);
    pid_t spawner = parent_of(r->st.pid);
    CHECK(spawner != getpid());
    /* A stray process in a stale group, as a crashed predecessor leaves. */
    cleanup_free char *pids = cg_base("pids");
    cleanup_free char *stale = xasprintf("%s/stale1", pids);
    CHECK(mkdir(stale, 0755) == 0);
    pid_t stray = fork();
    if (stray == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        for (;;)
            pause();
    }
    cleanup_free char *procs = xasprintf("%s/cgroup.procs", stale);
    char num[16];
    snprintf(num, sizeof num, "%d", (int)stray);
    int fd = open(procs, O_WRONLY);
    CHECK(fd >= 0 && write(fd, num, strlen(num)) == (ssize_t)strlen(num));
    close(fd);

    CHECK(kill(spawner, SIGKILL) == 0);
    /* The client notices: the live sandbox gets its exit callback. */
    while (!r->exited)
        uv_run(&F.loop, UV_RUN_ONCE);
    CHECK(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL);
    CHECK_INT(wisp_sandbox_count(F.sb), 0);
    wisp_err_t err;
    CHECK(wisp_sandbox_spawn(F.sb, &s, on_spawn_cb, r, &err) < 0);
    CHECK_INT(err.code, WISP_EUNAVAILABLE);
    /* The sandbox died with its spawner (parent-death signal). */
    bool gone = false;
    for (int i = 0; i < 300 && !gone; i++) {
        gone = kill(r->st.pid, 0) < 0 && errno == ESRCH;
        if (!gone)
            usleep(10 * 1000);
    }
    CHECK(gone);
    close(r->st.out_fd);
    close(r->st.err_fd);
    close(r->st.api_fd);
    wisp_sandbox_close(F.sb);
    F.sb = NULL;
    CHECK(cg_exists("pids", "victim") || cg_exists("memory", "victim"));

    /* The next start removes the leftovers and kills the stray process. */
    wisp_sandbox_config_t cfg = {.state_dir = F.state, .cgroup_name = F.cgname};
    CHECK(wisp_sandbox_init(&F.sb, &cfg, &err) == 0);
    CHECK(wisp_sandbox_attach(F.sb, &F.loop, on_exit_cb, NULL, &err) == 0);
    int st;
    CHECK(waitpid(stray, &st, 0) == stray && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(!cg_exists("pids", "victim") && !cg_exists("memory", "victim"));
    CHECK(access(stale, F_OK) != 0);
    fixture_down();
}

TEST(daemon_death_kills_sandboxes)
{
    fixture_init();
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t daemon = fork();
    if (daemon == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        close(p[0]);
        wisp_sandbox_config_t cfg = {.state_dir = F.state, .cgroup_name = F.cgname};
        wisp_err_t err;
        if (wisp_sandbox_init(&F.sb, &cfg, &err) < 0 ||
            wisp_sandbox_attach(F.sb, &F.loop, on_exit_cb, NULL, &err) < 0)
            _exit(1);
        const char *argv[] = {"/bin/sh", "-c", "sleep 1000 & sleep 1000", NULL};
        wisp_sandbox_spec_t s = spec_for("orphan", argv);
        struct run *r = spawn(&s);
        if (!r->ok)
            _exit(2);
        pid_t pid = r->st.pid;
        if (write(p[1], &pid, sizeof pid) != sizeof pid)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    pid_t sandbox = 0;
    CHECK(read(p[0], &sandbox, sizeof sandbox) == sizeof sandbox);
    CHECK(sandbox > 0 && kill(sandbox, 0) == 0);
    /* F.sb is not set in this process; the cgroup layout check needs a mode. */
    char mem[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], cur[256] = "";
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%*d:memory:%255s", cur) == 1)
            break;
    fclose(f);
    snprintf(mem, sizeof mem, "/sys/fs/cgroup/memory%s/%s/orphan", strcmp(cur, "/") == 0 ? "" : cur,
             F.cgname);
    bool v1 = access("/sys/fs/cgroup/memory", F_OK) == 0;
    if (v1)
        CHECK(access(mem, F_OK) == 0);
    CHECK(kill(daemon, SIGKILL) == 0);
    int st;
    CHECK(waitpid(daemon, &st, 0) == daemon);
    /* The orphaned spawner is reparented to us (subreaper); reap everything. */
    bool gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        gone = kill(sandbox, 0) < 0 && errno == ESRCH;
        if (!gone)
            usleep(10 * 1000);
    }
    CHECK(gone);
    for (int i = 0; i < 200 && v1 && access(mem, F_OK) == 0; i++)
        usleep(10 * 1000);
    if (v1) {
        CHECK(access(mem, F_OK) != 0);
        *strrchr(mem, '/') = '\0';
        for (int i = 0; i < 200 && access(mem, F_OK) == 0; i++) {
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            usleep(10 * 1000);
        }
        CHECK(access(mem, F_OK) != 0);
    }
    wisp_err_t err;
    CHECK(wisp_rm_rf(F.top, &err) == 0);
    F.top[0] = '\0';
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- pools ------------------------------------------------------------------ */

/* The children of parent whose /proc/<pid>/<file> starts with the want_len
 * bytes of want: their count, and the last one found in *last (-1: none). */
static int children_with(pid_t parent, const char *file, const char *want, size_t want_len,
                         pid_t *last)
{
    int n = 0;
    *last = -1;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], text[64];
        snprintf(path, sizeof path, "/proc/%s/%s", e->d_name, file);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(text, 1, sizeof text, f);
        fclose(f);
        pid_t pid = (pid_t)atoi(e->d_name);
        if (got >= want_len && memcmp(text, want, want_len) == 0 && parent_of(pid) == parent) {
            *last = pid;
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* The last child of parent whose /proc/<pid>/<file> starts with the want_len
 * bytes of want, or -1. */
static pid_t child_with(pid_t parent, const char *file, const char *want, size_t want_len)
{
    pid_t found;
    children_with(parent, file, want, want_len, &found);
    return found;
}

/* Our spawner: the child of this process named wisp-spawner. */
static pid_t find_spawner(void)
{
    static const char comm[] = "wisp-spawner\n";
    pid_t found = child_with(getpid(), "comm", comm, sizeof comm - 1);
    CHECK(found > 0);
    return found;
}

/* The inode of a network namespace link ("net:[123]"), 0 if not one. */
static unsigned long net_inode(const char *link_path)
{
    char target[64];
    ssize_t n = readlink(link_path, target, sizeof target - 1);
    unsigned long ino = 0;
    if (n <= 0)
        return 0;
    target[n] = '\0';
    if (sscanf(target, "net:[%lu]", &ino) != 1)
        return 0;
    return ino;
}

static unsigned long netns_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    return net_inode(path);
}

/* The network namespaces the spawner holds descriptors of, other than its
 * own: the ready pool. */
static int held_netns(pid_t spawner, unsigned long *ino, int cap)
{
    unsigned long host = netns_of(getpid());
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)spawner);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unsigned long i = net_inode(path);
        if (i != 0 && i != host) {
            CHECK(n < cap);
            ino[n++] = i;
        }
    }
    closedir(d);
    return n;
}

static bool in_set(unsigned long x, const unsigned long *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == x)
            return true;
    return false;
}

/* Pooled cgroups ("pool.<n>") under a controller's base folder. */
static int pooled_groups(const char *ctrl)
{
    cleanup_free char *base = cg_base(ctrl);
    DIR *d = opendir(base);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "pool.", 5) == 0)
            n++;
    closedir(d);
    return n;
}

static bool v1_memory(void)
{
    return access("/sys/fs/cgroup/memory", F_OK) == 0;
}

/* Wait until the spawner's pools hold n items each (cgroups on v1 only). */
static void wait_pools(pid_t spawner, int n)
{
    unsigned long ino[64];
    for (int i = 0; i < 300; i++) {
        if (held_netns(spawner, ino, 64) == n && (!v1_memory() || pooled_groups("memory") == n))
            return;
        usleep(10 * 1000);
    }
    fprintf(stderr, "# pools: %d namespaces, %d memory groups; want %d\n",
            held_netns(spawner, ino, 64), pooled_groups("memory"), n);
    CHECK(0);
}

static unsigned long read_ul(const char *ctrl, const char *id, const char *file)
{
    cleanup_free char *base = cg_base(ctrl);
    cleanup_free char *path = xasprintf("%s/%s/%s", base, id, file);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    unsigned long v = 0;
    CHECK(fscanf(f, "%lu", &v) == 1);
    fclose(f);
    return v;
}

TEST(pooled_items_are_used_once)
{
    fixture_up_pool(3);
    pid_t spawner = find_spawner();
    wait_pools(spawner, 3);
    unsigned long ready[64], now[64];
    int nready = held_netns(spawner, ready, 64);
    const char *argv[] = {"/bin/sleep", "1000", NULL};
    enum { N = 6 };
    struct run *runs[N];
    unsigned long ns[N];
    char ids[N][16];
    /* One at a time: each takes a namespace made ahead of time, which the
     * spawner no longer holds once the sandbox is in it. */
    snprintf(ids[0], sizeof ids[0], "used0");
    wisp_sandbox_spec_t s = spec_for(ids[0], argv);
    runs[0] = spawn(&s);
    CHECK(runs[0]->ok);
    ns[0] = netns_of(runs[0]->st.pid);
    CHECK(in_set(ns[0], ready, nready));
    wait_pools(spawner, 3);
    int nnow = held_netns(spawner, now, 64);
    CHECK(!in_set(ns[0], now, nnow));
    /* Its pooled groups became its own, with the spec's limits. */
    if (v1_memory()) {
        CHECK_INT(read_ul("memory", "used0", "memory.limit_in_bytes"), 128ul << 20);
        CHECK_INT(read_ul("pids", "used0", "pids.max"), 64);
        CHECK_INT(read_ul("cpu", "used0", "cpu.shares"), 1024);
        CHECK_INT(read_ul("memory", "used0", "cgroup.procs"), runs[0]->st.pid);
    }
    /* More at once than the pool holds: the rest are made inline. */
    for (int i = 1; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "used%d", i);
        wisp_sandbox_spec_t si = spec_for(ids[i], argv);
        si.cpu_weight = 0;
        runs[i] = new_run(ids[i]);
        wisp_err_t err;
        CHECK(wisp_sandbox_spawn(F.sb, &si, on_spawn_cb, runs[i], &err) == 0);
    }
    for (int i = 1; i < N; i++) {
        while (!runs[i]->replied)
            uv_run(&F.loop, UV_RUN_ONCE);
        CHECK(runs[i]->ok);
        ns[i] = netns_of(runs[i]->st.pid);
        CHECK(ns[i] != 0);
        if (v1_memory())
            CHECK(!cg_exists("cpu", ids[i]));
    }
    wait_pools(spawner, 3);
    nnow = held_netns(spawner, now, 64);
    for (int i = 0; i < N; i++) {
        CHECK(!in_set(ns[i], now, nnow));
        for (int j = 0; j < i; j++)
            CHECK(ns[i] != ns[j]);
    }
    for (int i = 0; i < N; i++) {
        wisp_sandbox_kill(F.sb, ids[i]);
        finish(runs[i]);
        CHECK(!cg_exists("memory", ids[i]) && !cg_exists("pids", ids[i]));
    }
    /* Closing removes the pooled groups too (fixture_down checks that the
     * base folders are gone). */
    fixture_down();
}

TEST(pooled_env_is_isolated)
{
    fixture_up_pool(2);
    build_probe();
    pid_t spawner = find_spawner();
    wait_pools(spawner, 2);
    unsigned long ready[64], now[64];
    int nready = held_netns(spawner, ready, 64);
    int host = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(host, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(host, 8) == 0);
    socklen_t sl = sizeof sa;
    CHECK(getsockname(host, (struct sockaddr *)&sa, &sl) == 0);
    char hostport[16];
    snprintf(hostport, sizeof hostport, "%u", ntohs(sa.sin_port));
    const char *argv[] = {"/var/task/probe", "net", "9001", hostport, NULL};
    for (int round = 0; round < 3; round++) {
        char id[16];
        snprintf(id, sizeof id, "pnet%d", round);
        wisp_sandbox_spec_t s = spec_for(id, argv);
        struct run *r = spawn(&s);
        CHECK(r->ok);
        expect_first_connection(r, "hello");
        finish(r);
        CHECK_LINE(r->out, "api=ok");
        CHECK_LINE(r->out, "host=ECONNREFUSED");
        CHECK_LINE(r->out, "lo_up=1");
        CHECK_LINE(r->out, "ifaces=lo,");
        /* The namespace it ran in came from the pool and is not kept. */
        wait_pools(spawner, 2);
        int nnow = held_netns(spawner, now, 64);
        int kept = 0;
        for (int i = 0; i < nready; i++)
            kept += in_set(ready[i], now, nnow);
        CHECK_INT(kept, nready - 1);
        nready = held_netns(spawner, ready, 64);
    }
    close(host);
    fixture_down();
}

/* The netns=net:[N] line of a probe's output. */
static const char *netns_line(const struct run *r)
{
    const char *p = strstr(r->out, "netns=net:[");
    CHECK(p != NULL);
    return p;
}

TEST(netns_reused_only_with_the_same_key)
{
    fixture_up_cfg(-1, true); /* no pools: a namespace is new unless reused */
    build_probe();
    /* The first sandbox leaves a connection nobody accepted, then ends. */
    const char *stale[] = {"/var/task/probe", "leave", "stale", NULL};
    wisp_sandbox_spec_t s1 = spec_for("reuse1", stale);
    s1.reuse_key = "fnA";
    struct run *r1 = run_to_end(&s1);
    CHECK(r1->ok && WIFEXITED(r1->status) && WEXITSTATUS(r1->status) == 0);
    CHECK_LINE(r1->out, "api=ok");
    char ns1[64];
    snprintf(ns1, sizeof ns1, "%.*s", (int)strcspn(netns_line(r1), "\n"), netns_line(r1));

    /* The next sandbox with that key gets the namespace, with the listener
     * emptied: the first connection accepted is its own. */
    const char *fresh[] = {"/var/task/probe", "leave", "fresh", NULL};
    wisp_sandbox_spec_t s2 = spec_for("reuse2", fresh);
    s2.reuse_key = "fnA";
    struct run *r2 = spawn(&s2);
    CHECK(r2->ok);
    expect_first_connection(r2, "fresh");
    finish(r2);
    CHECK(strncmp(netns_line(r2), ns1, strlen(ns1)) == 0);
    CHECK_LINE(r2->out, "api=ok");

    /* Another key (another function with the very same code), no key, or
     * another Runtime API port: a namespace of its own. */
    const char *ids[] = {"reuse3", "reuse4", "reuse5"};
    for (int i = 0; i < 3; i++) {
        wisp_sandbox_spec_t sx = spec_for(ids[i], stale);
        sx.reuse_key = i == 0 ? "fnB" : i == 1 ? NULL : "fnA";
        if (i == 2)
            sx.api_port = 9123;
        struct run *rx = run_to_end(&sx);
        CHECK(rx->ok);
        CHECK(strncmp(netns_line(rx), ns1, strlen(ns1)) != 0);
    }
    fixture_down();
}

TEST(netns_reuse_can_be_disabled)
{
    fixture_up_cfg(-1, false);
    build_probe();
    const char *stale[] = {"/var/task/probe", "leave", "x", NULL};
    wisp_sandbox_spec_t s1 = spec_for("noreuse1", stale);
    s1.reuse_key = "fnA";
    struct run *r1 = run_to_end(&s1);
    wisp_sandbox_spec_t s2 = spec_for("noreuse2", stale);
    s2.reuse_key = "fnA";
    struct run *r2 = run_to_end(&s2);
    CHECK(r1->ok && r2->ok);
    char ns1[64];
    snprintf(ns1, sizeof ns1, "%.*s", (int)strcspn(netns_line(r1), "\n"), netns_line(r1));
    CHECK(strncmp(netns_line(r2), ns1, strlen(ns1)) != 0);
    fixture_down();
}

/* Compile runtimes/exec-stem into the runtime folder (as runtimes.mk does). */
static void build_exec_stem(void)
{
    const char *root = getenv("WISP_ROOT");
    cleanup_free char *src = xasprintf("%s/runtimes/exec-stem/exec_stem.c", root ? root : ".");
    CHECK(access(src, R_OK) == 0);
    cleanup_free char *cmd =
        xasprintf("gcc -O2 -ffreestanding -fno-builtin -fno-stack-protector "
                  "-fno-tree-loop-distribute-patterns -nostdlib -static -o %s/exec-stem %s",
                  F.runtime, src);
    CHECK(system(cmd) == 0);
}

/* The exec stem the spawner holds (a child of it running /var/runtime/exec-stem), or -1. */
static pid_t find_exec_stem(pid_t spawner)
{
    static const char cmdline[] = "/var/runtime/exec-stem"; /* with its NUL */
    return child_with(spawner, "cmdline", cmdline, sizeof cmdline);
}

static pid_t wait_exec_stem(pid_t spawner)
{
    for (int i = 0; i < 300; i++) {
        pid_t pid = find_exec_stem(spawner);
        if (pid > 0)
            return pid;
        usleep(10000);
    }
    return -1;
}

/* The name of the memory group of process pid (its last path component). */
static void memory_group_of(pid_t pid, char *out, size_t cap)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *ctrl = strchr(line, ':');
        if (ctrl && strncmp(ctrl + 1, "memory:", 7) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, cap, "%s", strrchr(line, '/') + 1);
        }
    }
    fclose(f);
}

/* A fixture for the exec stem cases (stems kept ttl_ms unbound, 0: the
 * default), the probe and exec-stem built; the spawner's pid. */
static pid_t exec_stem_fixture(unsigned ttl_ms)
{
    F.stem_ttl_ms = ttl_ms;
    fixture_up();
    F.stem_ttl_ms = 0;
    if (!v1_memory())
        SKIP("exec stems need renamable cgroups (v1 or hybrid memory controller)");
    build_probe();
    build_exec_stem();
    return find_spawner();
}

TEST(exec_stem_serves_the_next_sandbox_of_a_version)
{
    pid_t spawner = exec_stem_fixture(0);
    const char *argv[] = {"/var/task/probe", "env", NULL};
    const char *env1[] = {"PATH=/usr/bin:/bin", "MARK=one", NULL};
    wisp_sandbox_spec_t s1 = spec_for("xs1", argv);
    s1.runtime_dir = F.runtime;
    s1.reuse_key = "fnX";
    s1.envp = env1;
    /* A version spawned once gets no stem. */
    struct run *r1 = run_to_end(&s1);
    CHECK(r1->ok && WIFEXITED(r1->status) && WEXITSTATUS(r1->status) == 0);
    usleep(100000);
    CHECK(find_exec_stem(spawner) < 0);
    /* Twice: once the spawner is idle, a stem with the version's limits. */
    wisp_sandbox_spec_t s2 = s1;
    s2.id = "xs2";
    struct run *r2 = run_to_end(&s2);
    CHECK(r2->ok);
    pid_t stem = wait_exec_stem(spawner);
    CHECK(stem > 0);
    char group[64];
    memory_group_of(stem, group, sizeof group);
    CHECK(strncmp(group, "xstem.", 6) == 0);
    CHECK(read_ul("memory", group, "memory.limit_in_bytes") == 128ul << 20);
    /* Another version (another limit) does not bind it. */
    wisp_sandbox_spec_t s4 = s1;
    s4.id = "xs4";
    s4.memory_mb = 96;
    struct run *r4 = run_to_end(&s4);
    CHECK(r4->ok && r4->st.pid != stem);
    CHECK(find_exec_stem(spawner) == stem);
    /* The same version binds it: that process execs the request's argv with
     * exactly the request's environment, in groups named by its id. */
    const char *env3[] = {"PATH=/usr/bin:/bin", "MARK=three", NULL};
    wisp_sandbox_spec_t s3 = s1;
    s3.id = "xs3";
    s3.envp = env3;
    /* (Stopped, so that it cannot end before its groups are seen.) */
    CHECK(kill(stem, SIGSTOP) == 0);
    struct run *r3 = spawn(&s3);
    CHECK(r3->ok);
    CHECK_INT(r3->st.pid, stem);
    CHECK(r3->st.peak_fd >= 0); /* opened before the groups are renamed */
    /* The daemon bound it; the spawner renames its groups right after. */
    for (int i = 0; i < 200 && !cg_exists("memory", "xs3"); i++)
        usleep(10000);
    CHECK(cg_exists("memory", "xs3") && !cg_exists("memory", group));
    CHECK(kill(stem, SIGCONT) == 0);
    finish(r3);
    CHECK(WIFEXITED(r3->status) && WEXITSTATUS(r3->status) == 0);
    CHECK_LINE(r3->out, "MARK=three");
    CHECK_LINE(r3->out, "PATH=/usr/bin:/bin");
    CHECK(strstr(r3->out, "MARK=one") == NULL && strstr(r3->out, "WISP") == NULL);
    CHECK(r3->peak > 0);
    /* The next stem; a new folder under the code folder's path (code
     * replaced) is never served by it. */
    pid_t next = wait_exec_stem(spawner);
    CHECK(next > 0 && next != stem);
    cleanup_free char *moved = xasprintf("%s.old", F.code);
    CHECK(rename(F.code, moved) == 0);
    CHECK(mkdir(F.code, 0755) == 0 && chmod(F.code, 0755) == 0);
    build_probe();
    wisp_sandbox_spec_t s5 = s1;
    s5.id = "xs5";
    struct run *r5 = run_to_end(&s5);
    CHECK(r5->ok && r5->st.pid != next);
    CHECK(WIFEXITED(r5->status) && WEXITSTATUS(r5->status) == 0);
    fixture_down();
}

static void run_loop_for(unsigned ms);

/* The exec stems the spawner holds. */
static int count_exec_stems(pid_t spawner)
{
    static const char cmdline[] = "/var/runtime/exec-stem"; /* with its NUL */
    pid_t last;
    return children_with(spawner, "cmdline", cmdline, sizeof cmdline, &last);
}

/* A version one of whose requests found no stem while one was wanted for it
 * keeps two from then on (one ready while the last one bound is replaced);
 * a version that never missed keeps one (the case above). */
TEST(exec_stems_two_for_a_version_that_missed_one)
{
    pid_t spawner = exec_stem_fixture(0);
    const char *argv[] = {"/var/task/probe", "env", NULL};
    wisp_sandbox_spec_t s1 = spec_for("xd1", argv);
    s1.runtime_dir = F.runtime;
    s1.reuse_key = "fnD";
    struct run *r1 = run_to_end(&s1);
    CHECK(r1->ok && WIFEXITED(r1->status) && WEXITSTATUS(r1->status) == 0);
    /* Two more sent at once: the first makes the version want a stem, the
     * second comes while the first is starting, so no stem was built for it. */
    wisp_sandbox_spec_t s2 = s1, s3 = s1;
    s2.id = "xd2";
    s3.id = "xd3";
    struct run *r2 = new_run("xd2"), *r3 = new_run("xd3");
    wisp_err_t err;
    CHECK(wisp_sandbox_spawn(F.sb, &s2, on_spawn_cb, r2, &err) == 0);
    CHECK(wisp_sandbox_spawn(F.sb, &s3, on_spawn_cb, r3, &err) == 0);
    while (!r2->replied || !r3->replied)
        uv_run(&F.loop, UV_RUN_ONCE);
    CHECK(r2->ok && r3->ok && r2->st.how == WISP_SANDBOX_EXEC && r3->st.how == WISP_SANDBOX_EXEC);
    finish(r2);
    finish(r3);
    for (int i = 0; i < 500 && count_exec_stems(spawner) < 2; i++)
        usleep(10000);
    CHECK_INT(count_exec_stems(spawner), 2);
    run_loop_for(300); /* the offers read; no third one comes */
    CHECK_INT(count_exec_stems(spawner), 2);
    /* The next two requests are both served by a stem. */
    wisp_sandbox_spec_t s4 = s1, s5 = s1;
    s4.id = "xd4";
    s5.id = "xd5";
    struct run *r4 = run_to_end(&s4), *r5 = run_to_end(&s5);
    CHECK(r4->st.how == WISP_SANDBOX_EXEC_STEM && r5->st.how == WISP_SANDBOX_EXEC_STEM);
    CHECK(r4->st.pid != r5->st.pid);
    fixture_down();
}

/* Run the loop for about ms milliseconds (offers, timers). */
static void run_loop_for(unsigned ms)
{
    uint64_t end = wisp_mono_ns() + (uint64_t)ms * 1000000u;
    while (wisp_mono_ns() < end) {
        uv_run(&F.loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

/* The daemon binds exec stems the spawner hands over; one that ended before
 * its bind, or was kept too long, is never bound, and neither counts as a
 * failure (the version keeps getting stems). */
TEST(exec_stem_ended_or_kept_too_long_is_not_bound)
{
    pid_t spawner = exec_stem_fixture(1000);
    const char *argv[] = {"/var/task/probe", "env", NULL};
    wisp_sandbox_spec_t s1 = spec_for("xe1", argv);
    s1.runtime_dir = F.runtime;
    s1.reuse_key = "fnE";
    struct run *r1 = run_to_end(&s1);
    wisp_sandbox_spec_t s2 = s1;
    s2.id = "xe2";
    struct run *r2 = run_to_end(&s2);
    CHECK(r1->ok && r2->ok);
    /* A stem ends before its bind: the daemon drops the offer, the next
     * request is exec'd or bound to a newer stem, never to the dead one. */
    pid_t dead = wait_exec_stem(spawner);
    CHECK(dead > 0);
    run_loop_for(50);
    CHECK(kill(dead, SIGKILL) == 0);
    run_loop_for(100);
    wisp_sandbox_spec_t s3 = s1;
    s3.id = "xe3";
    struct run *r3 = run_to_end(&s3);
    CHECK(r3->ok && r3->st.pid != dead);
    CHECK(WIFEXITED(r3->status) && WEXITSTATUS(r3->status) == 0);
    /* A stem kept unbound past the time to live is killed; another is built
     * for the version, which binds. */
    pid_t old = wait_exec_stem(spawner);
    CHECK(old > 0);
    run_loop_for(1600);
    pid_t fresh = wait_exec_stem(spawner);
    CHECK(fresh > 0 && fresh != old);
    run_loop_for(50);
    wisp_sandbox_spec_t s4 = s1;
    s4.id = "xe4";
    struct run *r4 = spawn(&s4);
    CHECK(r4->ok);
    CHECK_INT(r4->st.pid, fresh);
    finish(r4);
    CHECK(WIFEXITED(r4->status) && WEXITSTATUS(r4->status) == 0);
    fixture_down();
}

/* Run the exec-stem program outside any sandbox with msg on its descriptor
 * 3; close_after: close the writer after msg (else keep it open until the
 * program has ended). Its stdout and stderr go to out. Returns its wait
 * status, or -1 if it had not ended after 5 s (then it is killed). */
static int run_exec_stem(const void *msg, size_t len, bool close_after, char *out, size_t cap)
{
    int sp[2], po[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    CHECK(pipe2(po, O_CLOEXEC) == 0);
    cleanup_free char *bin = xasprintf("%s/exec-stem", F.runtime);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(sp[0], 3);
        dup2(po[1], 1);
        dup2(po[1], 2);
        execl(bin, bin, (char *)NULL);
        _exit(126);
    }
    close(sp[0]);
    close(po[1]);
    CHECK(len == 0 || write(sp[1], msg, len) == (ssize_t)len);
    if (close_after)
        close(sp[1]);
    size_t got = 0;
    struct pollfd p = {.fd = po[0], .events = POLLIN};
    bool ended = false;
    while (poll(&p, 1, 5000) == 1) {
        ssize_t n = read(po[0], out + got, cap - 1 - got);
        if (n <= 0) {
            ended = true;
            break;
        }
        got += (size_t)n;
    }
    out[got] = '\0';
    close(po[0]);
    if (!ended)
        kill(pid, SIGKILL);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!close_after)
        close(sp[1]);
    return ended ? st : -1;
}

/* A message as the spawner writes it: the body's length, then the body. */
static size_t stem_message(char *buf, const char *body, size_t body_len)
{
    uint32_t n = (uint32_t)body_len;
    memcpy(buf, &n, 4);
    memcpy(buf + 4, body, body_len);
    return 4 + body_len;
}

TEST(exec_stem_program_execs_a_whole_message_at_once)
{
    fixture_up();
    build_exec_stem();
    char out[4096], msg[512];
    /* The whole message in: it execs without waiting for the writer to close
     * (a second wake-up), with exactly the environment sent. */
    static const char body[] = "/bin/sh\0-c\0echo \"$MARK:$HOME\"\0\0MARK=one\0\0";
    size_t len = stem_message(msg, body, sizeof body - 1);
    int st = run_exec_stem(msg, len, false, out, sizeof out);
    CHECK(st != -1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(out, "one:\n");
    /* Nothing before the end of file: the stem was dropped, silently. */
    st = run_exec_stem(NULL, 0, true, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK_STR(out, "");
    /* Part of a message, then the end of file. */
    st = run_exec_stem(msg, len - 3, true, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(strstr(out, "short message") != NULL);
    /* A length over the largest message. */
    uint32_t huge = 64 * 1024 + 1;
    memcpy(msg, &huge, 4);
    st = run_exec_stem(msg, 4, true, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(strstr(out, "too long") != NULL);
    /* More bytes than the length says. */
    len = stem_message(msg, body, sizeof body - 1);
    memcpy(msg + len, "xx", 2);
    st = run_exec_stem(msg, len + 2, true, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    /* A body without its environment's end: malformed, nothing exec'd. */
    static const char bad[] = "/bin/sh\0-c\0echo run\0\0MARK=one\0";
    len = stem_message(msg, bad, sizeof bad - 1);
    st = run_exec_stem(msg, len, true, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(strstr(out, "malformed") != NULL && strstr(out, "run") == NULL);
    fixture_down();
}

TEST(exec_stems_can_be_disabled)
{
    fixture_up_cfg3(0, true, false);
    build_probe();
    build_exec_stem();
    pid_t spawner = find_spawner();
    const char *argv[] = {"/var/task/probe", "true", NULL};
    const char *ids[] = {"nxs1", "nxs2", "nxs3"};
    for (int i = 0; i < 3; i++) {
        wisp_sandbox_spec_t sx = spec_for(ids[i], argv);
        sx.runtime_dir = F.runtime;
        sx.reuse_key = "fnX";
        struct run *r = run_to_end(&sx);
        CHECK(r->ok);
    }
    usleep(200000);
    CHECK(find_exec_stem(spawner) < 0);
    fixture_down();
}

TEST(pooled_groups_never_take_an_existing_name)
{
    fixture_up_pool(2);
    pid_t spawner = find_spawner();
    wait_pools(spawner, 2);
    /* A group of that name exists already (a sandbox whose groups could not
     * be removed): a pooled group must not replace it or be joined to it. */
    cleanup_free char *mem = cg_base("memory");
    cleanup_free char *clash = xasprintf("%s/clash", mem);
    CHECK(mkdir(clash, 0755) == 0);
    const char *argv[] = {"/bin/true", NULL};
    wisp_sandbox_spec_t s = spec_for("clash", argv);
    struct run *r = spawn(&s);
    CHECK(!r->ok);
    CHECK_INT(r->err.code, WISP_ECONFLICT);
    struct stat st;
    CHECK(stat(clash, &st) == 0);
    cleanup_free char *limit = xasprintf("%s/memory.limit_in_bytes", clash);
    FILE *f = fopen(limit, "r");
    unsigned long long v = 0;
    CHECK(f != NULL && fscanf(f, "%llu", &v) == 1);
    fclose(f);
    CHECK(v > (128ull << 20)); /* untouched: no limit written */
    CHECK(!cg_exists("pids", "clash"));
    CHECK(rmdir(clash) == 0);
    /* Spawning still works, and the pools are whole again. */
    wisp_sandbox_spec_t ok = spec_for("after", argv);
    struct run *r2 = run_to_end(&ok);
    CHECK(WIFEXITED(r2->status) && WEXITSTATUS(r2->status) == 0);
    wait_pools(spawner, 2);
    fixture_down();
}

TEST(shared_root_template_stays_private)
{
    fixture_up_pool(2);
    /* The template lives in the spawner's own mount namespace only. */
    char line[1024];
    FILE *f = fopen("/proc/self/mountinfo", "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f))
        CHECK(strstr(line, F.top) == NULL);
    fclose(f);
    /* Sandboxes share its read-only part; nothing one writes reaches the next. */
    const char *write_argv[] = {"/bin/sh", "-c",
                                "echo a > /tmp/mark; mkdir /var/x 2>/dev/null || echo var-ro; "
                                "touch /dev/x 2>/dev/null || echo dev-ro; "
                                "touch /proc/../x 2>/dev/null || echo root-ro",
                                NULL};
    wisp_sandbox_spec_t a = spec_for("tmpl-a", write_argv);
    struct run *ra = run_to_end(&a);
    CHECK_LINE(ra->out, "var-ro");
    CHECK_LINE(ra->out, "dev-ro");
    CHECK_LINE(ra->out, "root-ro");
    const char *check_argv[] = {"/bin/sh", "-c",
                                "test -e /tmp/mark || echo no-mark; test -e /var/x || echo no-x; "
                                "ls /var/runtime | wc -l",
                                NULL};
    wisp_sandbox_spec_t b = spec_for("tmpl-b", check_argv);
    struct run *rb = run_to_end(&b);
    CHECK_LINE(rb->out, "no-mark");
    CHECK_LINE(rb->out, "no-x");
    CHECK_LINE(rb->out, "0"); /* an empty mount point without a runtime folder */
    fixture_down();
}

TEST(pools_can_be_disabled)
{
    fixture_up_pool(-1);
    pid_t spawner = find_spawner();
    const char *argv[] = {"/bin/true", NULL};
    wisp_sandbox_spec_t s = spec_for("nopool", argv);
    struct run *r = run_to_end(&s);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    usleep(50 * 1000);
    unsigned long ino[64];
    CHECK_INT(held_netns(spawner, ino, 64), 0);
    CHECK_INT(pooled_groups("memory"), 0);
    CHECK_INT(pooled_groups("pids"), 0);
    fixture_down();
}

TEST(pool_leftovers_are_removed_at_start)
{
    fixture_up_pool(4);
    if (!v1_memory()) {
        fixture_down();
        SKIP("cgroups are pooled on v1 controllers only");
    }
    pid_t spawner = find_spawner();
    wait_pools(spawner, 4);
    /* A crash leaves the pooled groups behind... */
    CHECK(kill(spawner, SIGKILL) == 0);
    for (int i = 0; i < 300 && kill(spawner, 0) == 0; i++)
        usleep(10 * 1000);
    wisp_sandbox_close(F.sb);
    F.sb = NULL;
    CHECK_INT(pooled_groups("memory"), 4);
    CHECK_INT(pooled_groups("pids"), 4);
    /* ...and the next start removes them. */
    wisp_sandbox_config_t cfg = {.state_dir = F.state, .cgroup_name = F.cgname, .pool_size = -1};
    wisp_err_t err;
    CHECK(wisp_sandbox_init(&F.sb, &cfg, &err) == 0);
    CHECK(wisp_sandbox_attach(F.sb, &F.loop, on_exit_cb, NULL, &err) == 0);
    CHECK_INT(pooled_groups("memory"), 0);
    CHECK_INT(pooled_groups("pids"), 0);
    CHECK_INT(pooled_groups("cpu"), 0);
    fixture_down();
}

static void time_spawns(const char *label)
{
    enum { N = 30 };
    uint64_t setup[N], reply[N], total[N];
    const char *argv[] = {"/bin/true", NULL};
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        wisp_sandbox_spec_t s = spec_for(id, argv);
        struct run *r = spawn(&s);
        CHECK(r->ok);
        finish(r);
        setup[i] = r->st.setup_ns;
        reply[i] = r->t_reply - r->t_spawn;
        total[i] = wisp_mono_ns() - r->t_spawn;
        free(r);
        F.nruns--;
        /* A cold start arrives after some idle time: let the pools refill. */
        usleep(5 * 1000);
    }
    qsort(setup, N, sizeof setup[0], cmp_u64);
    qsort(reply, N, sizeof reply[0], cmp_u64);
    qsort(total, N, sizeof total[0], cmp_u64);
    printf("# spawn %s (cgroups %s): spawner setup median %.0f us (max %.0f), request to reply "
           "median %.0f us, to exit event of /bin/true median %.0f us\n",
           label, wisp_sandbox_cgroup_mode(F.sb), setup[N / 2] / 1e3, setup[N - 1] / 1e3,
           reply[N / 2] / 1e3, total[N / 2] / 1e3);
    fflush(stdout);
    CHECK(setup[N / 2] < 100ull * 1000 * 1000);
}

TEST(spawner_and_pool_maker_run_under_the_sandbox_filter)
{
    fixture_up_pool(2);
    pid_t spawner = find_spawner();
    static const char comm[] = "wisp-pool\n";
    pid_t maker = -1;
    for (int i = 0; i < 200 && maker < 0; i++) {
        maker = child_with(spawner, "comm", comm, sizeof comm - 1);
        if (maker < 0)
            usleep(10 * 1000);
    }
    CHECK(maker > 0);
    int own = seccomp_filters_of(0);
    /* One filter, loaded once by the spawner; the maker and every sandbox inherit it. */
    CHECK_INT(seccomp_filters_of(spawner), own + 1);
    if (maker > 0)
        CHECK_INT(seccomp_filters_of(maker), own + 1);
    /* The filter does not get in the way of the spawner's own work. */
    const char *argv[] = {"/bin/true", NULL};
    wisp_sandbox_spec_t s = spec_for("filtered", argv);
    struct run *r = run_to_end(&s);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    fixture_down();
}

TEST(spawn_timing_without_pools)
{
    fixture_up_pool(-1);
    time_spawns("without pools");
    fixture_down();
}

TEST(spawn_timing)
{
    fixture_up();
    wait_pools(find_spawner(), 8);
    time_spawns("with pools");
    fixture_down();
}

TEST(no_leftovers)
{
    if (geteuid() != 0)
        SKIP("sandboxes need root");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "wisptest%d_", (int)getppid());
    static const char *const ctrls[] = {"memory", "pids", "cpu"};
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512];
    int checked = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        for (size_t i = 0; i < WISP_ARRAY_LEN(ctrls); i++) {
            if (strstr(c1 + 1, ctrls[i]) == NULL)
                continue;
            cleanup_free char *dir =
                xasprintf("/sys/fs/cgroup/%s%s", ctrls[i], strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
            DIR *d = opendir(dir);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
                    fprintf(stderr, "# leftover cgroup %s/%s\n", dir, e->d_name);
                CHECK(strncmp(e->d_name, prefix, strlen(prefix)) != 0);
            }
            if (d) {
                closedir(d);
                checked++;
            }
        }
    }
    if (f)
        fclose(f);
    if (checked == 0)
        SKIP("no v1 controllers to check");
    /* No process of ours is left either: every wisp-spawner is gone. */
    DIR *d = opendir("/proc");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], comm[64] = "", ppid_line[64];
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *c = fopen(path, "r");
        if (c == NULL)
            continue;
        if (fgets(comm, sizeof comm, c) && strcmp(comm, "wisp-spawner\n") == 0) {
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *s = fopen(path, "r");
            int ppid = 0;
            if (s && fgets(ppid_line, sizeof ppid_line, s))
                sscanf(strrchr(ppid_line, ')') + 2, "%*c %d", &ppid);
            if (s)
                fclose(s);
            /* Ours would be a child of the runner or of one of its cases. */
            CHECK(ppid != getppid());
        }
        fclose(c);
    }
    closedir(d);
}

TAP_MAIN(CASE(runs_unprivileged_and_confined), CASE(sees_only_its_own_file_system),
         CASE(network_is_loopback_only), CASE(forbidden_system_calls_fail),
         CASE(tmp_is_size_limited), CASE(memory_limit_reports_oom), CASE(fork_bomb_is_contained),
         CASE(kill_ends_every_process), CASE(environment_is_exactly_envp),
         CASE(stdout_stderr_and_exit_status), CASE(bad_entrypoint_is_a_clear_error),
         CASE(invalid_specs_fail_at_once), CASE(python_and_node_run), CASE(many_sandboxes_at_once),
         CASE(spawner_crash_is_reported_and_cleaned_up), CASE(daemon_death_kills_sandboxes),
         CASE(pooled_items_are_used_once), CASE(pooled_env_is_isolated),
         CASE(netns_reused_only_with_the_same_key), CASE(netns_reuse_can_be_disabled),
         CASE(exec_stem_serves_the_next_sandbox_of_a_version),
         CASE(exec_stems_two_for_a_version_that_missed_one),
         CASE(exec_stem_ended_or_kept_too_long_is_not_bound), CASE(exec_stems_can_be_disabled),
         CASE(exec_stem_program_execs_a_whole_message_at_once),
         CASE(pooled_groups_never_take_an_existing_name), CASE(shared_root_template_stays_private),
         CASE(pools_can_be_disabled), CASE(pool_leftovers_are_removed_at_start),
         CASE(spawner_and_pool_maker_run_under_the_sandbox_filter),
         CASE(spawn_timing_without_pools), CASE(spawn_timing), CASE(no_leftovers))
