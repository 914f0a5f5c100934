/*
 * internal.h - what the parts of the sandbox subsystem share: the wire
 * protocol between the daemon (client.c) and the spawner (spawner.c), the
 * cgroup layout (cgroup.c), the network namespace factory (netns.c), the
 * seccomp filter (seccomp.c), the root file system (mounts.c) and the code
 * that runs in a new sandbox before exec (ns.c). Nothing outside
 * src/sandbox/ includes this file (unit tests of the subsystem may).
 *
 * Process roles:
 *   daemon   - calls the public API on its loop thread; holds one end of a
 *              SOCK_SEQPACKET socketpair.
 *   spawner  - forked by wisp_sandbox_init before any thread; single-threaded,
 *              root; creates and reaps sandboxes; dies with the daemon.
 *   child    - a sandbox's first process between clone() and execve(). It
 *              shares the spawner's memory (CLONE_VM | CLONE_VFORK, the
 *              spawner is suspended until the exec), so it must not allocate
 *              or use stdio; it reports failure by writing into
 *              struct wisp__child and _exit()ing.
 */
#ifndef WISP_SANDBOX_INTERNAL_H
#define WISP_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/capability.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/err.h"
#include "sandbox/sandbox.h"

#define WISP_SB_ID_MAX 64           /* longest sandbox id */
#define WISP_SB_MSG_MAX (64 * 1024) /* largest protocol message */
#define WISP_SB_ARGS_MAX 4096       /* most argv + envp entries in one spec */
#define WISP_SB_DEFAULT_PIDS 256
#define WISP_SB_DEFAULT_NOFILE 1024
#define WISP_SB_DEFAULT_TMP_MB 512
#define WISP_SB_DEFAULT_PORT 9001
#define WISP_SB_HOSTNAME "wisp"
#define WISP_SB_DEFAULT_POOL 8 /* ready network namespaces and cgroups */
#define WISP_SB_POOL_MAX 64

/* ---- protocol ---------------------------------------------------------------
 * One message per SOCK_SEQPACKET datagram, native byte order (both ends are
 * the same binary). Every message starts with struct wisp__sb_hdr.
 */
enum wisp__sb_type {
    WISP_SB_READY = 1, /* spawner -> daemon once at start: wisp__sb_result */
    WISP_SB_SPAWN,     /* daemon -> spawner: wisp__sb_spawn + strings */
    WISP_SB_SPAWNED,   /* spawner -> daemon: wisp__sb_result (+ api, out, err fds) */
    WISP_SB_KILL,      /* daemon -> spawner: wisp__sb_kill */
    WISP_SB_EXIT,      /* spawner -> daemon: wisp__sb_exit */
    WISP_SB_SHUTDOWN,  /* daemon -> spawner: kill everything and exit */
    WISP_SB_RELEASED,  /* daemon -> spawner: wisp__sb_kill; after an EXIT, the daemon has
                          closed its copy of that sandbox's listener (its network
                          namespace may now serve another sandbox, spawner.c) */
    WISP_SB_UP,        /* daemon -> spawner: wisp__sb_kill; that sandbox's runtime has
                          answered its first invocation: it has started (spawner.c
                          builds exec stems only while no sandbox is starting) */
    WISP_SB_STEM,      /* spawner -> daemon: wisp__sb_stem (+ bind, api, out, err fds): an
                          exec stem, now the daemon's to bind (client.c) or to drop */
    WISP_SB_BOUND,     /* daemon -> spawner: wisp__sb_bound; the daemon has bound that
                          stem: it is the sandbox of that id, starting */
    WISP_SB_DROP,      /* daemon -> spawner: wisp__sb_kill with a stem's id; the daemon
                          gives the stem up unbound (kept too long, code replaced) */
    WISP_SB_USE_STEM,  /* spawner -> daemon: wisp__sb_kill (the SPAWN's seq, a stem's id);
                          the reply to a SPAWN sent before the daemon had the offer of a
                          stem that fits it: bind that stem, or send the SPAWN again */
};

struct wisp__sb_hdr {
    uint32_t type; /* enum wisp__sb_type */
    uint32_t seq;  /* request number, echoed in the reply */
};

/* A spawn request: fixed fields, then `strings_len` bytes of NUL-terminated
 * strings in this order: id, code_dir, runtime_dir (empty when absent),
 * reuse_key (empty when absent),
 * argc argv entries, envc envp entries. */
struct wisp__sb_spawn {
    struct wisp__sb_hdr hdr;
    uint32_t memory_mb;
    uint32_t tmp_mb;
    uint32_t pids_max;
    uint32_t cpu_weight;
    uint32_t nofile;
    uint16_t api_port;
    uint8_t has_runtime;
    uint8_t zygote; /* enum wisp__sb_zygote */
    uint32_t argc;
    uint32_t envc;
    uint32_t strings_len;
    char strings[];
};

/* Pre-initialised runtimes a spawn request may use: the python3 zygote, or
 * a nodejs stem (a sandbox started ahead with no code, bound on first use). */
enum wisp__sb_zygote { WISP_SB_ZYG_NONE, WISP_SB_ZYG_PYTHON3, WISP_SB_ZYG_NODEJS };

/* Reply to SPAWN (with three fds on success) and the READY greeting. */
struct wisp__sb_result {
    struct wisp__sb_hdr hdr;
    int32_t code;      /* wisp_errcode_t; WISP_OK on success */
    int32_t sys_errno; /* errno behind a failure */
    int32_t pid;       /* host pid of the sandbox's first process */
    uint32_t how;      /* wisp_sandbox_how_t */
    uint64_t setup_ns; /* spawner time spent on the request */
    char msg[512];     /* failure text, NUL-terminated */
};

struct wisp__sb_kill {
    struct wisp__sb_hdr hdr;
    char id[WISP_SB_ID_MAX + 1];
};

/* An exec stem handed to the daemon. spec is the spawn request the stem was
 * built from (its id and environment are not the stem's); a request with
 * the same sandbox (wisp__sb_same_sandbox) and the same code folder (device
 * and inode) may bind it. Its EXIT, if it ends unbound, carries its id. */
struct wisp__sb_stem {
    struct wisp__sb_hdr hdr;
    char id[WISP_SB_ID_MAX + 1];
    int32_t pid;
    uint64_t code_dev;
    uint64_t code_ino;
    uint32_t spec_len;
    char spec[];
};

#define WISP_SB_XSTEM_TTL_MS 10000 /* default: the daemon drops a stem not bound by then */

struct wisp__sb_bound {
    struct wisp__sb_hdr hdr;
    char stem[WISP_SB_ID_MAX + 1]; /* the stem's id */
    char id[WISP_SB_ID_MAX + 1];   /* the sandbox's id from now on */
};

struct wisp__sb_exit {
    struct wisp__sb_hdr hdr;
    char id[WISP_SB_ID_MAX + 1];
    uint8_t oom;
    int32_t wait_status;
    uint64_t peak_mem;
};

/* A decoded spawn request; every pointer points into the message buffer
 * except the argv/envp arrays, which are heap-allocated (free with
 * wisp__sb_spec_free). */
struct wisp__sb_spec {
    uint32_t seq;
    const char *id;
    const char *code_dir;
    const char *runtime_dir; /* NULL if none */
    char **argv;             /* NULL-terminated */
    char **envp;             /* NULL-terminated */
    unsigned memory_mb, tmp_mb, pids_max, cpu_weight, nofile;
    uint16_t api_port;
    unsigned zygote;       /* enum wisp__sb_zygote */
    const char *reuse_key; /* NULL if none */
};

/* Is id a valid sandbox id ([A-Za-z0-9_-]{1,64})? */
bool wisp__sb_id_valid(const char *id);
/* Serialize spec (defaults applied) into a fresh buffer; WISP_ELIMIT if it
 * would exceed WISP_SB_MSG_MAX, WISP_EINVALID for a bad spec. */
int wisp__sb_encode_spawn(const wisp_sandbox_spec_t *spec, uint32_t seq, void **out, size_t *len,
                          wisp_err_t *err) __attribute__((warn_unused_result));
/* Parse a SPAWN message of len bytes into *spec (pointers into msg). */
int wisp__sb_decode_spawn(const void *msg, size_t len, struct wisp__sb_spec *spec, wisp_err_t *err)
    __attribute__((warn_unused_result));
void wisp__sb_spec_free(struct wisp__sb_spec *spec);
/* Append the entries of v to b, each NUL-terminated. */
int wisp__sb_put_strv(wisp_buf_t *b, char *const *v, wisp_err_t *err);
/* Would a and b get the same sandbox (paths, limits, port, reuse_key,
 * argv; not the id nor the environment)? What an exec stem serves. */
bool wisp__sb_same_sandbox(const struct wisp__sb_spec *a, const struct wisp__sb_spec *b);
/* An exec stem's bind message for spec into *out (fresh): the body's length
 * (uint32_t), then argv, an empty entry, envp, an empty entry; WISP_ELIMIT
 * if the body would reach WISP_SB_MSG_MAX. */
int wisp__sb_stem_message(const struct wisp__sb_spec *spec, void **out, size_t *len,
                          wisp_err_t *err) __attribute__((warn_unused_result));
#define WISP_SB_FDS_MAX 8 /* most descriptors in one message */

/* Send one message with up to WISP_SB_FDS_MAX fds; -1 with errno on failure.
 * flags go to sendmsg. */
int wisp__sb_send(int sock, const void *msg, size_t len, const int *fds, int nfds, int flags);
/* Receive one message into buf (cap bytes) and up to *nfds fds (close-on-exec).
 * Returns the length, 0 at EOF, -1 with errno (EMSGSIZE if truncated; any
 * fds of a bad message are closed). */
ssize_t wisp__sb_recv(int sock, void *buf, size_t cap, int *fds, int *nfds, int flags);

/* ---- cgroups ------------------------------------------------------------- */
enum wisp__cg_ctrl { WISP_CG_MEMORY, WISP_CG_PIDS, WISP_CG_CPU, WISP_CG_N };

/* The cgroup layout, found once in the daemon before the spawner is forked
 * (both processes then hold the same copy). base[c] is the folder holding
 * the sandboxes' groups for controller c (<mount>/<current>/<name>), NULL if
 * the controller is not available; on cgroup v2 all entries are the same
 * folder. */
struct wisp__cg {
    const char *mode; /* "v2", "v1", "hybrid" or "none" */
    bool unified;     /* pure cgroup v2 */
    bool limits_ok;   /* memory and pids limits can be applied */
    char *base[WISP_CG_N];
};

struct wisp__cg_limits {
    uint64_t memory_bytes; /* 0: no limit */
    unsigned pids_max;     /* 0: no limit */
    unsigned cpu_weight;   /* 0: no cpu group */
};

/* Detect the layout, create the base folders (enabling v2 controllers) and
 * remove what a crashed predecessor left in them (killing its processes). */
int wisp__cg_setup(struct wisp__cg *cg, const char *name, wisp_err_t *err)
    __attribute__((warn_unused_result));
void wisp__cg_free(struct wisp__cg *cg);
/* Remove the base folders if empty (clean shutdown). */
void wisp__cg_teardown(const struct wisp__cg *cg);
/* Create the groups of sandbox id with limits; procs_fds[c] is the open
 * join file (v2 cgroup.procs, v1 tasks) of each group the child must join
 * (write "0"), -1 otherwise (on v2 only procs_fds[0] is used). The caller
 * closes them. */
int wisp__cg_create(const struct wisp__cg *cg, const char *id, const struct wisp__cg_limits *lim,
                    int procs_fds[WISP_CG_N], wisp_err_t *err) __attribute__((warn_unused_result));
/* Pooled groups: created ahead of time (the mkdir is what costs) under a
 * name no sandbox id can take ("pool.<n>"), without limits; taking one
 * renames it to the sandbox's id and writes the limits. cgroup v2 cannot
 * rename groups, so pools exist only with v1 controllers (v1 and hybrid). */
#define WISP_CG_POOL_PREFIX "pool."
/* Can groups be pooled on this layout? */
bool wisp__cg_pool_ok(const struct wisp__cg *cg);
/* Create the pooled groups named name under every controller. */
int wisp__cg_pool_make(const struct wisp__cg *cg, const char *name, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Make the pooled groups name those of sandbox id, as wisp__cg_create does.
 * On failure the pooled groups are removed (the caller may then create the
 * sandbox's groups with wisp__cg_create). */
int wisp__cg_pool_take(const struct wisp__cg *cg, const char *name, const char *id,
                       const struct wisp__cg_limits *lim, int procs_fds[WISP_CG_N], wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Rename the (live) groups of from to id and write the limits lim, lowering
 * or raising what from had (a stem's groups, see spawner.c; lim NULL: keep
 * the limits, which an exec stem has had from the start). On failure the
 * groups may carry either name; the caller kills and removes both. */
int wisp__cg_rename(const struct wisp__cg *cg, const char *from, const char *id,
                    const struct wisp__cg_limits *lim, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* SIGKILL every process in the groups of id; returns how many were seen. */
int wisp__cg_kill(const struct wisp__cg *cg, const char *id);
/* SIGKILL every process in the first group of id only (enough when every
 * process is in all of them, as a sandbox's are); returns how many were seen. */
int wisp__cg_kill_one(const struct wisp__cg *cg, const char *id);
/* Remove the groups of id; true when none is left (false: busy, retry). */
bool wisp__cg_destroy(const struct wisp__cg *cg, const char *id);
/* Memory high-water mark in bytes (0 if unknown). */
uint64_t wisp__cg_peak(const struct wisp__cg *cg, const char *id);
/* An open descriptor on the memory high-water mark file (-1 if none). */
int wisp__cg_peak_open(const struct wisp__cg *cg, const char *id);
/* Did the OOM killer act in the memory group of id? */
bool wisp__cg_oom(const struct wisp__cg *cg, const char *id);

/* ---- network namespaces -------------------------------------------------- */
/* Create a network namespace with loopback up and a socket listening on
 * 127.0.0.1:port inside it, then return to the namespace orig_ns. *ns_fd
 * keeps the namespace for setns(); *api_fd is the listener. Both CLOEXEC. */
int wisp__netns_new(int orig_ns, uint16_t port, int *ns_fd, int *api_fd, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* The pool maker (pool.c): a process forked by the spawner that keeps up to
 * size network namespaces from wisp__netns_new(host_ns, WISP_SB_DEFAULT_PORT)
 * and, if wisp__cg_pool_ok, up to size pooled groups queued on a socket.
 * Spawner thread only. */
struct wisp__pool {
    pid_t pid;    /* the maker, > 0 until reaped */
    int sock;     /* to the maker, -1 once closed */
    bool stopped; /* wisp__pool_stop was called: its end is no news */
};
enum wisp__pool_kind {
    WISP_POOL_NET = 1,    /* a namespace: ns_fd, api_fd */
    WISP_POOL_CG,         /* groups named WISP_CG_POOL_PREFIX "<cg>" */
    WISP_POOL_NET_FAILED, /* no more namespaces (logged) */
    WISP_POOL_CG_FAILED,  /* no more groups (logged) */
};
struct wisp__pool_item {
    enum wisp__pool_kind kind;
    int ns_fd, api_fd; /* WISP_POOL_NET, close-on-exec; the receiver owns them */
    unsigned cg;       /* WISP_POOL_CG */
};
/* Fork the maker; on failure p stays off (sock -1). */
int wisp__pool_start(struct wisp__pool *p, int host_ns, const struct wisp__cg *cg, int size,
                     wisp_err_t *err) __attribute__((warn_unused_result));
/* Receive one queued item without waiting: 0, or -1 when none is queued. If
 * the maker is gone and nothing is left, logs it and closes the socket. */
int wisp__pool_recv(struct wisp__pool *p, struct wisp__pool_item *it);
/* Let the maker make one more of kind (once per item given to a sandbox). */
void wisp__pool_credit(struct wisp__pool *p, enum wisp__pool_kind kind);
/* Tell the maker no sandbox is starting: it makes what is owed at once. */
void wisp__pool_go(struct wisp__pool *p);
/* Is pid (just reaped by the spawner) the maker? Forgets it if so. */
bool wisp__pool_reaped(struct wisp__pool *p, pid_t pid);
/* Stop and reap the maker (it finishes the item it is making; killed after
 * 2 s); what it queued can still be received. */
void wisp__pool_stop(struct wisp__pool *p);
/* Close the socket (what is still queued is dropped). */
void wisp__pool_close(struct wisp__pool *p);

/* ---- seccomp ------------------------------------------------------------- */
/* Compile the sandbox allow-list to BPF and load it into the calling process
 * (the spawner, once): every sandbox it makes inherits it. */
int wisp__seccomp_install(wisp_err_t *err) __attribute__((warn_unused_result));

/* ---- root file system ---------------------------------------------------- */
#define WISP_ROOT_TOP_MAX 8

/* What every sandbox root is made of, prepared once by the spawner. */
struct wisp__rootfs {
    char *root_dir; /* empty folder the new root's tmpfs is mounted on */
    char *etc_dir;  /* template /etc, bound read-only */
    char *tmpl_dir; /* the prepared read-only root (wisp__rootfs_template), or NULL */
    struct {
        const char *name; /* "usr", "lib", "bin"... */
        char *link;       /* symlink target, or NULL to bind the host folder */
    } top[WISP_ROOT_TOP_MAX];
    int ntop;
};

/* Build the template /etc in state_dir and the plan of top-level folders. */
int wisp__rootfs_prepare(struct wisp__rootfs *fs, const char *state_dir, uid_t uid, gid_t gid,
                         wisp_err_t *err) __attribute__((warn_unused_result));
void wisp__rootfs_free(struct wisp__rootfs *fs);
/* Move the calling process (the spawner) into a mount namespace of its own
 * and build there, once, the part of the root all sandboxes share; sets
 * fs->tmpl_dir. Without it (failure) each sandbox builds its whole root. */
int wisp__rootfs_template(struct wisp__rootfs *fs, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* ---- the child ----------------------------------------------------------- */
/* Everything a new sandbox process needs between clone and exec, prepared by
 * the spawner; the child writes only the error fields. */
struct wisp__child {
    const struct wisp__rootfs *fs;
    const struct wisp__sb_spec *spec;
    cap_t empty_caps;      /* an empty capability set, for cap_set_proc */
    cap_value_t last_cap;  /* highest capability the kernel knows */
    bool bounding_empty;   /* the bounding set came empty from the spawner (or zygote) */
    const cpu_set_t *cpus; /* the CPUs the sandbox may use (it starts pinned) */
    uid_t uid;
    gid_t gid;
    int cg_fds[WISP_CG_N]; /* cgroup.procs or tasks to join, -1 if none */
    int netns_fd;          /* network namespace to enter */
    int out_w, err_w;      /* write ends of stdout and stderr */
    int keep_fd;           /* a descriptor (>= 3) to keep open, -1 for none: set only on the
                              zygote path, which also keeps the interpreter's signal state */
    int bind_fd;           /* a stem's bind pipe (read end), made descriptor 3; -1: none */
    /* Filled by the child on failure. */
    int fail_errno;
    bool fail_exec; /* execve itself failed */
    char fail_msg[400];
};

/* Namespaces the child is cloned into (the network one comes from setns). */
#define WISP_SB_CLONE_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)

/* The child's entry point for clone(): never returns on success. */
int wisp__child_main(void *arg);
/* Everything the child does except the exec (also used by zygote-born
 * sandboxes); -1 with c's error fields filled. */
int wisp__child_setup(struct wisp__child *c);
/* Mount the sandbox root and pivot into it (called by the child). */
int wisp__rootfs_enter(struct wisp__child *c);
/* Whether the calling process's capability bounding set is empty (every
 * capability up to last_cap dropped). */
bool wisp__bounding_empty(cap_value_t last_cap);
/* Record a failure in c (printf-style) and return -1. */
int wisp__child_fail(struct wisp__child *c, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- zygotes (zygote_child.c; the spawner's side is in spawner.c) ---------- */
#define WISP_ZYG_TIMEOUT_MS 5000             /* longest wait for a zygote-born sandbox's setup */
#define WISP_ZYG_ENV_SPACE "_WISP_ENV_SPACE" /* filler variable in the zygote's environment */

/* Spawner -> zygote: this header, then the daemon's SPAWN message as is;
 * descriptors: status pipe, network namespace, stdout and stderr write ends,
 * then the cgroup join files of the controllers set in cg_mask, in order. */
struct wisp__zyg_req {
    uint32_t cg_mask;
    uint32_t pad_;
};

enum { WISP_ZYG_PID = 1, WISP_ZYG_OK, WISP_ZYG_FAIL };

/* One record on the status pipe. */
struct wisp__zyg_status {
    int32_t kind;  /* WISP_ZYG_* */
    int32_t value; /* the host pid (PID) or the errno (FAIL) */
    char msg[400]; /* failure text */
};

/* Called by the zygote's interpreter (ctypes), see zygote_child.c. */
int wisp_zygote_init(const char *tmpl_dir, unsigned uid, unsigned gid, char *errbuf, size_t errlen);
int wisp_zygote_fork(int status_fd);
int wisp_zygote_enter(const void *msg, size_t len, const int *fds, int nfds);
const char *wisp_zygote_env(unsigned i);

/* ---- the spawner --------------------------------------------------------- */
/* Run the spawner in the process just forked from the daemon (pid daemon);
 * never returns. cfg has its defaults filled in. */
__attribute__((noreturn)) void wisp__spawner_main(int sock, pid_t daemon,
                                                  const wisp_sandbox_config_t *cfg,
                                                  const struct wisp__cg *cg);

#endif
