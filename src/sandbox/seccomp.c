/*
 * seccomp.c - the sandbox's system-call allow-list, compiled to BPF with
 * libseccomp and loaded once, by the spawner into itself: every sandbox,
 * cloned from the spawner (or from the python3 zygote, the spawner's child),
 * inherits the very same filter. Loading a filter per sandbox cost 0.2-0.3 ms
 * of machine CPU each (the kernel translates and JIT-compiles every load and
 * frees the program at exit) and a fifth of the spawner's blocked time per
 * build.
 *
 * So the list also holds what the spawner and a sandbox's setup call, which
 * the kernel itself refuses (EPERM) to a sandbox's processes: they run with
 * no capabilities, an empty bounding set, no_new_privs and a non-root uid,
 * and the one way to gain capabilities again, a new user namespace, stays
 * refused here (clone and unshare with CLONE_NEWUSER; clone3, whose flags a
 * filter cannot read, fails with ENOSYS). Those calls: mount, umount2,
 * pivot_root, setns, sethostname, open_tree, move_mount, mount_setattr, and
 * clone and unshare with other namespace flags.
 *
 * Anything not listed fails with EPERM: ptrace, process_vm_*, bpf,
 * perf_event_open, kernel modules, kexec, keyrings, userfaultfd,
 * open_by_handle_at, chroot, reboot, swap, acct, quotactl, syslog,
 * iopl/ioperm, clock changes. clone3 and io_uring_* fail with ENOSYS so that
 * glibc falls back to clone and libuv (node) to its thread pool. socket()
 * allows only AF_UNIX, AF_INET and AF_INET6 with stream or datagram types (no
 * raw, packet or netlink sockets); personality() only queries and PER_LINUX.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

/* Allowed without conditions. Names libseccomp or this architecture does not know are
 * skipped (newer calls fail with EPERM until libseccomp learns them). */
/* clang-format off */
static const char *const allowed[] = {
    /* files and descriptors */
    "read", "write", "open", "openat", "openat2", "close", "close_range", "creat", "lseek",
    "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "dup", "dup2", "dup3", "fcntl", "flock", "fsync", "fdatasync",
    "syncfs", "sync", "sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64",
    "readahead", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename", "renameat",
    "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat",
    "symlink", "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask", "utime", "utimes",
    "utimensat", "futimesat", "mknod", "mknodat", "setxattr", "lsetxattr", "fsetxattr",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "removexattr", "lremovexattr", "fremovexattr", "sendfile", "splice", "tee", "vmsplice",
    "copy_file_range", "pipe", "pipe2", "ioctl", "memfd_create", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "cachestat",
    /* polling and events */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
    "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* memory */
    "brk", "mmap", "munmap", "mprotect", "mremap", "msync", "mincore", "madvise", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "mbind", "get_mempolicy", "set_mempolicy",
    "pkey_mprotect", "pkey_alloc", "pkey_free", "membarrier", "map_shadow_stack",
    /* processes, threads and signals */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
    "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack",
    "pause", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid", "getpgid",
    "getpgrp", "setpgid", "getsid", "setsid", "set_tid_address", "set_robust_list",
    "get_robust_list", "rseq", "futex", "futex_waitv", "futex_wake", "futex_wait",
    "futex_requeue", "arch_prctl", "prctl", "seccomp", "restart_syscall", "sched_yield",
    "sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
    "sched_setaffinity", "sched_getaffinity", "sched_setattr", "sched_getattr", "getpriority",
    "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit", "prlimit64",
    "getrusage", "getcpu", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self",
    /* credentials (without capabilities these can only keep or drop ids) */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
    "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
    "setfsgid", "capget", "capset",
    /* time */
    "time", "gettimeofday", "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "times",
    /* system information */
    "uname", "sysinfo", "getrandom",
    /* sockets (socket and socketpair themselves are conditional) */
    "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname", "getpeername",
    "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg",
    /* System V and POSIX IPC (private to the sandbox's IPC namespace) */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    /* Linux AIO (bounded by the cgroup like any memory) */
    "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit", "io_cancel",
    /* a sandbox's setup (the spawner's; without capabilities the kernel refuses them) */
    "mount", "umount2", "pivot_root", "setns", "sethostname", "open_tree", "move_mount",
    "mount_setattr",
};
/* clang-format on */

/* Refused with ENOSYS so that callers fall back to older interfaces. */
static const char *const enosys[] = {"clone3", "io_uring_setup", "io_uring_enter",
                                     "io_uring_register"};

static int add_conditional(scmp_filter_ctx ctx)
{
    static const int domains[] = {AF_UNIX, AF_INET, AF_INET6};
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    const scmp_datum_t type_mask = ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC) & 0xffffffffu;
    int rc = 0;
    for (size_t d = 0; rc == 0 && d < WISP_ARRAY_LEN(domains); d++)
        for (size_t t = 0; rc == 0 && t < WISP_ARRAY_LEN(types); t++) {
            if (types[t] == SOCK_SEQPACKET && domains[d] != AF_UNIX)
                continue;
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                                  SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domains[d], 0),
                                  SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, (scmp_datum_t)types[t]));
        }
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                              SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
    /* Never a new user namespace (see the top of this file). */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unshare), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_EQ, 0, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_EQ, 0xffffffffu, 0));
    return rc;
}

/* Write the compiled filter to a memory file and read it back. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *prog, wisp_err_t *err)
{
    cleanup_close int fd = memfd_create("wisp-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return wisp_err_sys(err, errno, "memfd_create");
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0)
        return wisp_err_sys(err, -rc, "seccomp_export_bpf");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return wisp_err_sys(err, errno, "fstat");
    size_t size = (size_t)st.st_size;
    if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return wisp_err_set(err, WISP_EINTERNAL, "seccomp program of %zu bytes", size);
    struct sock_filter *code = xmalloc(size);
    if (pread(fd, code, size, 0) != (ssize_t)size) {
        free(code);
        return wisp_err_sys(err, errno, "read seccomp program");
    }
    prog->len = (unsigned short)(size / sizeof(struct sock_filter));
    prog->filter = code;
    return 0;
}

static int build(struct sock_fprog *prog, wisp_err_t *err)
{
    memset(prog, 0, sizeof *prog);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == NULL)
        return wisp_err_set(err, WISP_EINTERNAL, "seccomp_init failed");
    int rc = 0;
    /* A binary search tree: the list is long and every syscall walks it. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; rc == 0 && i < WISP_ARRAY_LEN(allowed); i++) {
        int nr = seccomp_syscall_resolve_name(allowed[i]);
        if (nr >= 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    for (size_t i = 0; rc == 0 && i < WISP_ARRAY_LEN(enosys); i++) {
        int nr = seccomp_syscall_resolve_name(enosys[i]);
        if (nr >= 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    }
    if (rc == 0)
        rc = add_conditional(ctx);
    if (rc < 0) {
        seccomp_release(ctx);
        return wisp_err_sys(err, -rc, "seccomp_rule_add");
    }
    rc = export_bpf(ctx, prog, err);
    seccomp_release(ctx);
    return rc;
}

static void release(struct sock_fprog *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

int wisp__seccomp_install(wisp_err_t *err)
{
    struct sock_fprog prog;
    if (build(&prog, err) < 0)
        return -1;
    /* The spawner is root with CAP_SYS_ADMIN: no no_new_privs needed (its
     * sandboxes set it before their exec). */
    int rc = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    int e = errno;
    release(&prog);
    if (rc < 0)
        return wisp_err_sys(err, e, "load the sandbox seccomp filter into the spawner");
    return 0;
}
