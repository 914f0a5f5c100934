/*
 * sandbox.h - isolated execution environments at the process level. Knows
 * nothing of functions, HTTP or SQL.
 *
 * wisp_sandbox_init() forks a small privileged "spawner" process; it must be
 * called before the daemon creates any thread. The daemon talks to it over a
 * socketpair (requests down, replies and exit events up, file descriptors
 * passed with SCM_RIGHTS). The spawner creates each sandbox: new pid, mount,
 * ipc, uts, net and cgroup namespaces; a network namespace with only
 * loopback, up; a listening TCP socket on 127.0.0.1:<api_port> inside it (the
 * daemon serves the Runtime API on that socket from its own event loop);
 * cgroup limits for memory, pids and CPU (v2, or v1/hybrid by detection); a
 * read-only root of the host's runtime folders with the code at /var/task,
 * the runtime shims at /var/runtime and a size-limited tmpfs at /tmp; an
 * unprivileged uid/gid, no capabilities, no_new_privs, rlimits and a seccomp
 * allow-list; then it execs argv with exactly envp. The spawner reaps the
 * sandbox and reports its exit. If the daemon dies, the spawner kills every
 * sandbox and exits; at start it removes what a crashed predecessor left.
 *
 * Threads: init before any thread; every other call and every callback on
 * the event-loop thread given to wisp_sandbox_attach.
 */
#ifndef WISP_SANDBOX_SANDBOX_H
#define WISP_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/err.h"

typedef struct wisp_sandbox wisp_sandbox_t;

typedef struct wisp_sandbox_config {
    const char *state_dir;   /* private folder for the spawner (mount points); created;
                                absolute; default "/run/wisp" */
    const char *cgroup_name; /* leaf under each controller's current group; default "wisp" */
    uid_t uid;               /* unprivileged ids the sandboxes run as; default (0) 65534 */
    gid_t gid;
    int pool_size;             /* network namespaces (with their listener on port 9001) and
                                  cgroups the spawner keeps ready, refilled while idle;
                                  0: default (8); negative: no pools */
    bool no_zygote;            /* never fork sandboxes from a zygote nor bind a nodejs stem (also:
                                  env WISP_ZYGOTE=0) */
    bool no_netns_reuse;       /* never give an ended sandbox's network namespace to the next
                                  sandbox of the same reuse_key (also: env WISP_NETNS_REUSE=0) */
    bool no_exec_stems;        /* never build a sandbox ahead of need for a function version that
                                  execs its runtime (also: env WISP_EXEC_STEMS=0) */
    unsigned exec_stem_ttl_ms; /* how long an exec stem is kept unbound; 0: 10 s */
} wisp_sandbox_config_t;

typedef struct wisp_sandbox_spec {
    const char *id;          /* unique, [A-Za-z0-9_-]{1,64}; names the cgroups */
    const char *code_dir;    /* host folder mounted read-only at /var/task */
    const char *runtime_dir; /* host folder mounted read-only at /var/runtime, or NULL */
    const char *const *argv; /* NULL-terminated; argv[0] is an absolute path inside the
                                sandbox (no PATH search); the working folder is /var/task */
    const char *const *envp; /* NULL-terminated; the complete environment */
    unsigned memory_mb;      /* memory limit (swap too); OOM kills the sandbox; 0: none */
    unsigned tmp_mb;         /* size of the /tmp tmpfs; default 512 */
    unsigned pids_max;       /* process/thread limit; default 256 */
    unsigned cpu_weight;     /* 1-10000 relative CPU share (v2 weight; v1 shares derived);
                                0: no CPU group (the host's default share) */
    unsigned nofile;         /* RLIMIT_NOFILE; default 1024 */
    uint16_t api_port;       /* Runtime API port inside the sandbox; default 9001 */
    bool allow_network;      /* reserved: always false for now (loopback only) */
    const char *zygote;      /* "python3": the sandbox may instead be forked from a
                                pre-initialised interpreter (same isolation, see
                                zygote_child.c); "nodejs": it may be a pre-started
                                stem bound to this spec (spawner.c); either only when
                                argv, envp and runtime_dir allow it; NULL or unknown:
                                always exec argv */
    const char *reuse_key;   /* sandboxes with the same key (one function version) may
                                get the network namespace of an ended one (spawner.c);
                                NULL: always a namespace of its own */
} wisp_sandbox_spec_t;

/* How a sandbox came to be (wisp_sandbox_started_t.how). */
typedef enum wisp_sandbox_how {
    WISP_SANDBOX_EXEC,        /* built for the request, its runtime exec'd */
    WISP_SANDBOX_ZYGOTE,      /* forked from the python3 zygote */
    WISP_SANDBOX_NODEJS_STEM, /* a nodejs stem, bound */
    WISP_SANDBOX_EXEC_STEM,   /* an exec stem (built ahead for its version), bound */
} wisp_sandbox_how_t;

/* The name of how in metrics and logs: "exec", "zygote", "nodejs_stem", "exec_stem". */
const char *wisp_sandbox_how_name(wisp_sandbox_how_t how);

typedef struct wisp_sandbox_started {
    pid_t pid;              /* host pid of the sandbox's first process */
    int api_fd;             /* listening socket inside the sandbox's netns; caller owns, and
                               must have closed it (and stopped accepting on it) when the
                               exit callback for this sandbox returns: the namespace and
                               this very socket may then serve a later sandbox of the same
                               reuse_key */
    int out_fd;             /* read end of the sandbox's stdout; caller owns */
    int err_fd;             /* read end of the sandbox's stderr; caller owns */
    uint64_t setup_ns;      /* time the spawner spent creating it */
    wisp_sandbox_how_t how; /* exec'd, forked from a zygote or bound from a stem */
    int peak_fd;            /* its memory high-water mark file, opened (caller owns), or -1
                               (wisp_sandbox_mem_peak_open opens it by id) */
} wisp_sandbox_started_t;

/* Result of wisp_sandbox_spawn: st on success, err on failure (never both).
 * Failures: err->code WISP_EINVALID with err->sys_errno set when execve of
 * argv[0] failed (message "exec <path>: <strerror>", e.g. ENOENT, EACCES,
 * ENOEXEC: a bad entry point); WISP_ECONFLICT for an id in use;
 * WISP_EUNAVAILABLE when the spawner is gone; WISP_EINTERNAL (with the errno
 * and the failing step in the message) for any other setup failure. */
typedef void (*wisp_sandbox_spawn_cb)(void *data, const wisp_sandbox_started_t *st,
                                      const wisp_err_t *err);
/* A sandbox ended: its first process exited with wait_status (as waitpid), all
 * its processes are gone and its cgroups removed. oom is true if the kernel's
 * OOM killer acted in its memory cgroup. peak_mem is its memory high-water
 * mark in bytes. When it returns, the sandbox's api_fd must be closed (see
 * wisp_sandbox_started_t). */
typedef void (*wisp_sandbox_exit_cb)(void *data, const char *id, int wait_status, bool oom,
                                     uint64_t peak_mem);

/* Fork the spawner. Call before any thread exists. cfg may be NULL for defaults. */
int wisp_sandbox_init(wisp_sandbox_t **out, const wisp_sandbox_config_t *cfg, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Start receiving replies and exit events on loop; exit_cb runs for every sandbox that ends. */
int wisp_sandbox_attach(wisp_sandbox_t *sb, uv_loop_t *loop, wisp_sandbox_exit_cb exit_cb,
                        void *data, wisp_err_t *err) __attribute__((warn_unused_result));
/* Ask for a new sandbox; cb runs once with the result (later, on the loop).
 * spec is copied. Fails at once (cb never runs) for an invalid spec
 * (WISP_EINVALID), a spec over 64 KiB (WISP_ELIMIT), an id in use
 * (WISP_ECONFLICT), allow_network (WISP_EUNSUPPORTED), or no spawner. */
int wisp_sandbox_spawn(wisp_sandbox_t *sb, const wisp_sandbox_spec_t *spec,
                       wisp_sandbox_spawn_cb cb, void *data, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Kill every process of a sandbox (SIGKILL through its cgroup); the exit
 * callback follows. Unknown ids are ignored. */
void wisp_sandbox_kill(wisp_sandbox_t *sb, const char *id);
/* Tell the spawner that a sandbox's runtime has answered its first
 * invocation: its start is over, and work that would compete with it for the
 * CPUs (building exec stems) may run. Not needed after wisp_sandbox_kill.
 * Unknown ids are ignored. */
void wisp_sandbox_up(wisp_sandbox_t *sb, const char *id);
/* Current memory high-water mark of a live sandbox in bytes (0 if unknown). */
uint64_t wisp_sandbox_mem_peak(wisp_sandbox_t *sb, const char *id);
/* The same read through a descriptor kept open (saves an open/close per
 * invocation): open returns -1 if unknown; the caller closes it. read gives 0
 * on any failure. */
int wisp_sandbox_mem_peak_open(wisp_sandbox_t *sb, const char *id);
uint64_t wisp_sandbox_mem_peak_read(int fd);
/* Number of live sandboxes. */
unsigned wisp_sandbox_count(wisp_sandbox_t *sb);
/* Detected cgroup layout: "v2", "v1", "hybrid" (or "none"). */
const char *wisp_sandbox_cgroup_mode(wisp_sandbox_t *sb);
/* Whether memory and pids limits are applied (false: sandboxes run without). */
bool wisp_sandbox_limits_ok(wisp_sandbox_t *sb);
/* Kill all sandboxes, stop the spawner and wait for it; frees sb. NULL is fine.
 * No callback runs from here: pending spawns and live sandboxes are dropped
 * silently (their descriptors, already handed out, stay the caller's). May be
 * called from a callback. If the spawner dies unexpectedly, pending spawns
 * fail with WISP_EUNAVAILABLE and every live sandbox gets its exit callback
 * (wait_status SIGKILL). */
void wisp_sandbox_close(wisp_sandbox_t *sb);

#endif
