/*
 * zygote_child.c - the C half of a zygote (see spawner.c): the functions a
 * pre-initialised interpreter calls, through ctypes, to turn a fork of
 * itself into a sandbox exactly as ns.c makes one before exec.
 *
 * Built into wisp (unused there) and, with ns.c, mounts.c, protocol.c and
 * core/, into the shared library the python3 zygote loads
 * ($(BUILD)/runtimes/python3/libwispenter.so). The zygote is root in the
 * spawner's mount namespace (where the read-only root template is mounted);
 * for each request it calls wisp_zygote_fork, which forks (as os.fork does,
 * with the interpreter's fork hooks) into new pid, mount, ipc and uts
 * namespaces with CLONE_PARENT: the sandbox's first process is PID 1 of its
 * pid namespace and a child of the spawner, which reaps it like any sandbox;
 * the zygote reports its host pid on the status pipe. The first process
 * calls wisp_zygote_enter: wisp__child_setup (cgroups, network namespace,
 * root, stdio, rlimits, privileges; the seccomp filter is the spawner's,
 * inherited), then success or the failure on
 * the status pipe, which the spawner reads (the two records may come in
 * either order).
 *
 * Status records (struct wisp__zyg_status) are smaller than PIPE_BUF, so each
 * write is atomic and each read of sizeof record returns one record.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/util.h"
#include "sandbox/internal.h"

/* What every sandbox forked from this zygote needs, made once. */
static struct {
    bool ready;
    struct wisp__rootfs fs;
    cap_t empty_caps;
    cap_value_t last_cap;
    bool bounding_empty; /* inherited from the spawner (checked once) */
    uid_t uid;
    gid_t gid;
    /* The interpreter's fork hooks (as os.fork calls them), found at init. */
    void (*before_fork)(void), (*after_fork_parent)(void), (*after_fork_child)(void);
    unsigned long arg_start, arg_end; /* the argument strings (find_arguments) */
    unsigned long env_start, env_end; /* the initial environment block */
    cpu_set_t cpus; /* the CPUs sandboxes may use (the spawner pins the zygote to one) */
    bool have_cpus;
    struct wisp__sb_spec spec; /* this process's sandbox, once entered */
    void *msg;                 /* the request spec points into */
} Z;

static void put_status(int fd, int kind, int value, const char *msg)
{
    struct wisp__zyg_status st = {.kind = kind, .value = value};
    if (msg)
        snprintf(st.msg, sizeof st.msg, "%s", msg);
    ssize_t n;
    do
        n = write(fd, &st, sizeof st);
    while (n < 0 && errno == EINTR);
}

/* What an exec'd python3 sandbox shows as its command line. */
static char exec_cmdline[] = "/usr/bin/python3\0-S\0-B\0/var/runtime/python3/bootstrap.py";

/* Where the kernel finds /proc/<pid>/cmdline (arg_start, arg_end: fields 48
 * and 49 of /proc/self/stat) and /proc/<pid>/environ (env_start, env_end:
 * 50 and 51); 0 if unknown. */
static void find_arguments(unsigned long *start, unsigned long *end, unsigned long *env_start,
                           unsigned long *env_end)
{
    *env_start = *env_end = 0;
    char stat[1024];
    *start = *end = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    char *p = strrchr(stat, ')');
    for (int field = 2; p && field < 48; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%lu %lu %lu %lu", start, end, env_start, env_end) != 4 ||
        *end <= *start || *end - *start < sizeof exec_cmdline)
        *start = *end = 0;
    if (*env_end <= *env_start)
        *env_start = *env_end = 0;
}

/* Make the command line of a sandbox that of an exec'd one, without the host
 * paths of the zygote's arguments: overwrite the argument strings in place
 * (the interpreter keeps its own copies; the pages are this process's own
 * copy since the fork), padding with NULs. */
static void hide_arguments(void)
{
    if (Z.arg_start == 0)
        return;
    memset((void *)Z.arg_start, 0, Z.arg_end - Z.arg_start);
    memcpy((void *)Z.arg_start, exec_cmdline, sizeof exec_cmdline);
}

/* The same for /proc/<pid>/environ: the spec's environment, written over the
 * zygote's initial environment block (which the spawner made large enough
 * with WISP_ZYG_ENV_SPACE). The process no longer reads that block: its
 * environment is set with clearenv and putenv. */
static void show_environment(char **envp)
{
    size_t need = 0, room = Z.env_end - Z.env_start;
    for (char **e = envp; *e; e++)
        need += strlen(*e) + 1;
    if (Z.env_start == 0 || need > room)
        return;
    char *p = (char *)Z.env_start;
    memset(p, 0, room);
    for (char **e = envp; *e; e++) {
        size_t n = strlen(*e) + 1;
        memcpy(p, *e, n);
        p += n;
    }
}

int wisp_zygote_init(const char *tmpl_dir, unsigned uid, unsigned gid, char *errbuf, size_t errlen)
{
    if (tmpl_dir == NULL || tmpl_dir[0] != '/') {
        snprintf(errbuf, errlen, "the root template must be an absolute path");
        return -1;
    }
    Z.fs.tmpl_dir = xstrdup(tmpl_dir);
    Z.last_cap = 0;
    while (prctl(PR_CAPBSET_READ, Z.last_cap + 1, 0, 0, 0) >= 0)
        Z.last_cap++;
    Z.bounding_empty = wisp__bounding_empty(Z.last_cap);
    Z.empty_caps = cap_init();
    if (Z.empty_caps == NULL) {
        snprintf(errbuf, errlen, "cap_init: %s", strerror(errno));
        return -1;
    }
    Z.uid = uid;
    Z.gid = gid;
    *(void **)&Z.before_fork = dlsym(RTLD_DEFAULT, "PyOS_BeforeFork");
    *(void **)&Z.after_fork_parent = dlsym(RTLD_DEFAULT, "PyOS_AfterFork_Parent");
    *(void **)&Z.after_fork_child = dlsym(RTLD_DEFAULT, "PyOS_AfterFork_Child");
    if (!Z.before_fork || !Z.after_fork_parent || !Z.after_fork_child) {
        snprintf(errbuf, errlen, "the interpreter's PyOS_*Fork* functions are missing");
        return -1;
    }
    Z.have_cpus = sched_getaffinity(0, sizeof Z.cpus, &Z.cpus) == 0;
    find_arguments(&Z.arg_start, &Z.arg_end, &Z.env_start, &Z.env_end);
    Z.ready = true;
    return 0;
}

int wisp_zygote_fork(int status_fd)
{
    if (!Z.ready)
        return -1;
    /* os.fork with other flags: the child is PID 1 of new pid, mount, ipc
     * and uts namespaces, and (CLONE_PARENT) the spawner's child, so the
     * spawner reaps it and its parent-death signal follows the spawner. */
    Z.before_fork();
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | WISP_SB_CLONE_FLAGS | SIGCHLD),
                       NULL, NULL, NULL, NULL);
    int e = errno;
    if (pid == 0) {
        Z.after_fork_child();
        return 0;
    }
    Z.after_fork_parent();
    if (pid < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "clone(pid, mount, ipc, uts): %s", strerror(e));
        put_status(status_fd, WISP_ZYG_FAIL, e, msg);
        return -1;
    }
    if (status_fd >= 0)
        put_status(status_fd, WISP_ZYG_PID, (int)pid, NULL);
    return (int)pid;
}

int wisp_zygote_enter(const void *msg, size_t len, const int *fds, int nfds)
{
    if (nfds < 4 || !Z.ready)
        return -1;
    int status = fds[0];
    /* The spec's strings must outlive the caller's buffer. */
    Z.msg = xmalloc(len > 0 ? len : 1);
    memcpy(Z.msg, msg, len);
    const struct wisp__zyg_req *req = Z.msg;
    wisp_err_t err;
    wisp_err_clear(&err);
    if (len < sizeof *req || wisp__sb_decode_spawn(req + 1, len - sizeof *req, &Z.spec, &err) < 0) {
        put_status(status, WISP_ZYG_FAIL, EINVAL, "malformed zygote request");
        return -1;
    }
    struct wisp__child c = {
        .fs = &Z.fs,
        .spec = &Z.spec,
        .empty_caps = Z.empty_caps,
        .last_cap = Z.last_cap,
        .bounding_empty = Z.bounding_empty,
        .uid = Z.uid,
        .gid = Z.gid,
        .netns_fd = fds[1],
        .out_w = fds[2],
        .err_w = fds[3],
        .keep_fd = status,
        .bind_fd = -1,
        .cpus = Z.have_cpus ? &Z.cpus : NULL,
    };
    int next = 4;
    for (int i = 0; i < WISP_CG_N; i++) {
        c.cg_fds[i] = -1;
        if (req->cg_mask & (1u << i)) {
            if (next >= nfds) {
                put_status(status, WISP_ZYG_FAIL, EINVAL, "zygote request without its cgroups");
                return -1;
            }
            c.cg_fds[i] = fds[next++];
        }
    }
    hide_arguments();
    if (wisp__child_setup(&c) < 0) {
        put_status(status, WISP_ZYG_FAIL, c.fail_errno, c.fail_msg);
        return -1;
    }
    /* The uid change made the process non-dumpable (its /proc files root's,
     * /proc/self/fd unreadable); an exec'd sandbox is dumpable again. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) {
        put_status(status, WISP_ZYG_FAIL, errno, "PR_SET_DUMPABLE");
        return -1;
    }
    /* The C environment is the spec's exactly (the strings live in Z.msg). */
    clearenv();
    for (char **e = Z.spec.envp; *e; e++)
        putenv(*e);
    show_environment(Z.spec.envp);
    put_status(status, WISP_ZYG_OK, 0, NULL);
    close(status);
    return 0;
}

const char *wisp_zygote_env(unsigned i)
{
    for (unsigned k = 0; Z.spec.envp && Z.spec.envp[k]; k++)
        if (k == i)
            return Z.spec.envp[k];
    return NULL;
}
