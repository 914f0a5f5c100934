/*
 * ns.c - a new sandbox's first process between clone() and execve().
 *
 * The spawner clones it with CLONE_VM | CLONE_VFORK into new pid, mount, ipc
 * and uts namespaces; the spawner stays suspended until the exec (or the
 * exit), so the child works in the spawner's memory: it must not allocate,
 * take locks or use stdio, and it reports a failure by filling struct
 * wisp__child (read by the spawner once clone returns) and _exit()ing.
 *
 * In order: join the cgroups (write "0" to the cgroup.procs or tasks files the
 * spawner opened) and only then unshare the cgroup namespace (so that its
 * root is the sandbox's own group), join the prepared network namespace, set
 * the host name, build and enter the root file system, set up stdio (stdin
 * /dev/null, stdout and stderr to the spawner's pipes) and close every other
 * descriptor, set rlimits, drop privileges (secure bits, bounding and ambient
 * sets, groups, gid, uid, remaining capabilities, no_new_privs), ask for
 * SIGKILL when the spawner dies, restore signals, widen the CPU affinity
 * (the spawner starts it pinned to its own CPU), check that it runs under
 * the sandbox seccomp filter (inherited from the spawner: seccomp.c) and exec
 * argv with exactly envp.
 *
 * wisp__child_setup is all of that but the exec; a zygote-born sandbox
 * (zygote.c) runs it too, in its own process, and then goes on in the
 * interpreter it already is.
 */
#include <fcntl.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/internal.h"

bool wisp__bounding_empty(cap_value_t last_cap)
{
    for (cap_value_t cap = 0; cap <= last_cap; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
            return false;
    return true;
}

int wisp__child_fail(struct wisp__child *c, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
    va_end(ap);
    /* strerrordesc_np, unlike strerror, never allocates. */
    const char *desc = errnum ? strerrordesc_np(errnum) : NULL;
    if (desc && n >= 0 && (size_t)n < sizeof c->fail_msg)
        snprintf(c->fail_msg + n, sizeof c->fail_msg - (size_t)n, ": %s", desc);
    c->fail_errno = errnum;
    return -1;
}

static int join_cgroups_and_net(struct wisp__child *c)
{
    for (int i = 0; i < WISP_CG_N; i++)
        if (c->cg_fds[i] >= 0 && write(c->cg_fds[i], "0", 1) != 1)
            return wisp__child_fail(c, errno, "join cgroup");
    if (unshare(CLONE_NEWCGROUP) < 0)
        return wisp__child_fail(c, errno, "unshare(CLONE_NEWCGROUP)");
    if (setns(c->netns_fd, CLONE_NEWNET) < 0)
        return wisp__child_fail(c, errno, "setns(network)");
    if (sethostname(WISP_SB_HOSTNAME, sizeof WISP_SB_HOSTNAME - 1) < 0)
        return wisp__child_fail(c, errno, "sethostname");
    return 0;
}

static int setup_stdio(struct wisp__child *c)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return wisp__child_fail(c, errno, "open /dev/null");
    if (dup2(null, 0) < 0 || dup2(c->out_w, 1) < 0 || dup2(c->err_w, 2) < 0)
        return wisp__child_fail(c, errno, "dup2");
    /* A stem's bind pipe becomes descriptor 3 (kept across exec). */
    if (c->bind_fd >= 0) {
        if (c->bind_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(c->bind_fd, 3) < 0)
            return wisp__child_fail(c, errno, "dup2 bind pipe");
    }
    /* Everything else goes, except the zygote path's status pipe. */
    int keep = c->bind_fd >= 0 ? 3 : c->keep_fd;
    if (keep > 3 && syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U) < 0)
        return wisp__child_fail(c, errno, "close_range");
    if (syscall(SYS_close_range, keep >= 3 ? (unsigned)keep + 1 : 3U, ~0U, 0U) < 0)
        return wisp__child_fail(c, errno, "close_range");
    return 0;
}

static int set_rlimits(struct wisp__child *c)
{
    struct rlimit nofile = {c->spec->nofile, c->spec->nofile};
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
        return wisp__child_fail(c, errno, "setrlimit(RLIMIT_NOFILE, %u)", c->spec->nofile);
    if (setrlimit(RLIMIT_CORE, &core) < 0)
        return wisp__child_fail(c, errno, "setrlimit(RLIMIT_CORE)");
    return 0;
}

static int drop_privileges(struct wisp__child *c, cap_t empty)
{
    /* Root gains nothing on exec, and setuid() below cannot keep capabilities. */
    unsigned bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                    SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                    SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (cap_set_secbits(bits) < 0)
        return wisp__child_fail(c, errno, "set secure bits");
    /* Inherited empty, normally (the spawner's setup): one system call per
     * capability otherwise, 0.1 ms on the virtual machines measured. */
    if (!c->bounding_empty)
        for (cap_value_t cap = 0; cap <= c->last_cap; cap++)
            if (cap_drop_bound(cap) < 0)
                return wisp__child_fail(c, errno, "drop capability %d from the bounding set", cap);
    /* One call (libcap's cap_reset_ambient probes every capability first). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return wisp__child_fail(c, errno, "clear ambient capabilities");
    /* Raw system calls: glibc's wrappers would coordinate with the threads of
     * the process whose memory we borrow. */
    if (syscall(SYS_setgroups, 1, &c->gid) < 0)
        return wisp__child_fail(c, errno, "setgroups");
    if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0)
        return wisp__child_fail(c, errno, "setresgid(%u)", (unsigned)c->gid);
    if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
        return wisp__child_fail(c, errno, "setresuid(%u)", (unsigned)c->uid);
    if (cap_set_proc(empty) < 0)
        return wisp__child_fail(c, errno, "clear capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return wisp__child_fail(c, errno, "PR_SET_NO_NEW_PRIVS");
    /* Credential changes reset the parent-death signal, so it comes last. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return wisp__child_fail(c, errno, "PR_SET_PDEATHSIG");
    return 0;
}

/* The signals the spawner ignores or blocks must not reach the sandbox so. */
static void restore_signals(void)
{
    static const int ignored[] = {SIGPIPE, SIGINT, SIGQUIT, SIGHUP};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int wisp__child_setup(struct wisp__child *c)
{
    if (join_cgroups_and_net(c) < 0)
        return -1;
    umask(0);
    if (wisp__rootfs_enter(c) < 0 || setup_stdio(c) < 0 || set_rlimits(c) < 0)
        return -1;
    if (chdir("/var/task") < 0)
        return wisp__child_fail(c, errno, "chdir /var/task");
    if (drop_privileges(c, c->empty_caps) < 0)
        return -1;
    /* A zygote's interpreter keeps the signal state it set up itself. */
    if (c->keep_fd < 0)
        restore_signals();
    umask(022);
    if (c->cpus)
        sched_setaffinity(0, sizeof *c->cpus, c->cpus);
    /* The filter came with the clone (seccomp.c); fail closed without it. */
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER)
        return wisp__child_fail(c, EPERM, "not under the sandbox seccomp filter");
    return 0;
}

static int run(struct wisp__child *c)
{
    if (wisp__child_setup(c) < 0)
        return -1;
    execve(c->spec->argv[0], c->spec->argv, c->spec->envp);
    c->fail_exec = true;
    return wisp__child_fail(c, errno, "exec %s", c->spec->argv[0]);
}

int wisp__child_main(void *arg)
{
    run(arg);
    _exit(127);
}
