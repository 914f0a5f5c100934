/*
 * cgroup.c - control groups for sandboxes: detection of the host's layout
 * (cgroup v2 unified, v1, or hybrid: v1 controllers plus an empty v2 tree at
 * /sys/fs/cgroup/unified; found as crun does, by the file system magic of
 * /sys/fs/cgroup), one group per sandbox under <mount>/<current>/<name>/<id>
 * with memory (swap included), pids and CPU limits, killing every process of
 * a group, reading its peak memory and OOM count, and removing it.
 *
 * v2 files: memory.max, memory.swap.max, memory.oom.group, pids.max,
 * cpu.weight, memory.peak, memory.events (oom_kill), cgroup.kill.
 * v1 files: memory.limit_in_bytes, memory.memsw.limit_in_bytes (when swap
 * accounting exists), pids.max, cpu.shares, memory.max_usage_in_bytes,
 * memory.oom_control (oom_kill).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static const char *const ctrl_names[WISP_CG_N] = {"memory", "pids", "cpu"};

/* How many distinct base folders the layout has (one on v2). */
static int ndirs(const struct wisp__cg *cg)
{
    return cg->unified ? 1 : WISP_CG_N;
}

/* Write val to dir/file; 0 or -errno. */
static int write_at(const char *dir, const char *file, const char *val)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, val, strlen(val));
    int e = n < 0 ? errno : 0;
    close(fd);
    return -e;
}

/* Read up to cap-1 bytes of dir/id/file into buf; length or -1. */
static ssize_t read_at(const char *dir, const char *id, const char *file, char *buf, size_t cap)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s/%s", dir, id, file) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static bool fs_is_cgroup2(const char *path)
{
    struct statfs sfs;
    return statfs(path, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

/* Is word an element of the comma- (or space-) separated list? */
static bool list_has(const char *list, const char *word, char sep)
{
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* The current group of the process for a v1 controller, or for v2 when ctrl
 * is NULL, from /proc/self/cgroup. */
static char *current_group(const char *ctrl)
{
    cleanup_fclose FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return NULL;
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        if (ctrl == NULL ? (strncmp(line, "0:", 2) == 0 && *ctrls == '\0')
                         : list_has(ctrls, ctrl, ','))
            return xstrdup(c2 + 1);
    }
    return NULL;
}

/* Find the mount of a v1 controller (fstype "cgroup") or of cgroup2 at
 * mountpoint want_mnt (ctrl NULL); returns the mount point and its root. */
static int find_mount(const char *ctrl, const char *want_mnt, char **mnt, char **root)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -1;
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        char *fields[16];
        int nf = 0, sep = -1;
        char *save = NULL;
        for (char *t = strtok_r(line, " ", &save); t && nf < 16; t = strtok_r(NULL, " ", &save)) {
            if (sep < 0 && strcmp(t, "-") == 0)
                sep = nf;
            fields[nf++] = t;
        }
        if (sep < 5 || sep + 3 >= nf)
            continue;
        const char *fstype = fields[sep + 1], *opts = fields[sep + 3];
        bool match = ctrl ? strcmp(fstype, "cgroup") == 0 && list_has(opts, ctrl, ',')
                          : strcmp(fstype, "cgroup2") == 0 && strcmp(fields[4], want_mnt) == 0;
        if (match) {
            *mnt = xstrdup(fields[4]);
            *root = xstrdup(fields[3]);
            return 0;
        }
    }
    return -1;
}

/* <mnt>/<current relative to the mount's root>. */
static char *group_dir(const char *mnt, const char *root, const char *cur)
{
    size_t rl = strlen(root);
    const char *rel = cur;
    if (strcmp(root, "/") != 0 && strncmp(cur, root, rl) == 0 && (cur[rl] == '/' || !cur[rl]))
        rel = cur + rl;
    while (*rel == '/')
        rel++;
    return *rel ? xasprintf("%s/%s", mnt, rel) : xstrdup(mnt);
}

/* Kill the processes of one group folder; returns how many were seen. */
static int kill_dir(const char *dir, bool unified)
{
    if (unified && write_at(dir, "cgroup.kill", "1") == 0)
        return 1;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path)
        return 0;
    cleanup_fclose FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    int seen = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 0)
            kill((pid_t)pid, SIGKILL);
        seen++;
    }
    return seen;
}

/* Kill everything in a group folder and remove it, waiting up to ~2 s. */
static void remove_group_blocking(const char *dir, bool unified)
{
    for (int i = 0; i < 400; i++) {
        kill_dir(dir, unified);
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    wisp_warn("sandbox", "cannot remove stale cgroup %s: %s", dir, strerror(errno));
}

/* The name of a group of ours under base: a sandbox id, or a stem's name
 * (spawner.c: "stem.N", "xstem.N"; a bound exec stem whose groups could not
 * be renamed keeps it). */
static bool group_name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char ch = name[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || (ch == '.' && n > 0);
        if (!ok || n >= WISP_SB_ID_MAX)
            return false;
    }
    return n > 0;
}

/* Remove the sandbox groups left under base by a crashed predecessor. */
static void remove_stale(const char *base, bool unified)
{
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        bool pooled = strncmp(e->d_name, WISP_CG_POOL_PREFIX, strlen(WISP_CG_POOL_PREFIX)) == 0;
        if (e->d_type != DT_DIR || !(group_name_ok(e->d_name) || pooled))
            continue;
        cleanup_free char *dir = xasprintf("%s/%s", base, e->d_name);
        wisp_info("sandbox", "removing stale sandbox cgroup %s", dir);
        remove_group_blocking(dir, unified);
    }
    closedir(d);
}

/* Enable the controllers we need in dir/cgroup.subtree_control (v2). */
static int enable_controllers(const char *dir, bool *have_cpu)
{
    char path[PATH_MAX], avail[512] = "";
    snprintf(path, sizeof path, "%s/cgroup.controllers", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, avail, sizeof avail - 1);
    close(fd);
    avail[n > 0 ? n : 0] = '\0';
    char *nl = strchr(avail, '\n');
    if (nl)
        *nl = '\0';
    if (!list_has(avail, "memory", ' ') || !list_has(avail, "pids", ' '))
        return -ENOTSUP;
    *have_cpu = list_has(avail, "cpu", ' ');
    int rc =
        write_at(dir, "cgroup.subtree_control", *have_cpu ? "+memory +pids +cpu" : "+memory +pids");
    return rc;
}

static int setup_v2(struct wisp__cg *cg, const char *name, wisp_err_t *err)
{
    cleanup_free char *cur = current_group(NULL);
    cleanup_free char *mnt = NULL, *root = NULL;
    if (find_mount(NULL, CGROUP_ROOT, &mnt, &root) < 0) {
        mnt = xstrdup(CGROUP_ROOT);
        root = xstrdup("/");
    }
    cleanup_free char *parent = group_dir(mnt, root, cur ? cur : "/");
    bool have_cpu = false;
    /* Our own group cannot delegate controllers while it holds processes (the
     * "no internal processes" rule); the root group can, so fall back to it. */
    int rc = enable_controllers(parent, &have_cpu);
    if (rc < 0 && strcmp(parent, mnt) != 0) {
        wisp_info("sandbox", "cgroup v2: cannot delegate controllers below %s (%s); using %s",
                  parent, strerror(-rc), mnt);
        free(parent);
        parent = xstrdup(mnt);
        rc = enable_controllers(parent, &have_cpu);
    }
    char *base = xasprintf("%s/%s", parent, name);
    for (int c = 0; c < WISP_CG_N; c++)
        cg->base[c] = xstrdup(base);
    free(base);
    if (mkdir(cg->base[0], 0755) < 0 && errno != EEXIST)
        return wisp_err_sys(err, errno, "mkdir %s", cg->base[0]);
    if (rc == 0)
        rc = enable_controllers(cg->base[0], &have_cpu);
    cg->limits_ok = rc == 0;
    if (!cg->limits_ok)
        wisp_warn("sandbox",
                  "cgroup v2: memory and pids controllers unavailable (%s); sandboxes "
                  "run without limits",
                  strerror(-rc));
    return 0;
}

static int setup_v1(struct wisp__cg *cg, const char *name, wisp_err_t *err)
{
    for (int c = 0; c < WISP_CG_N; c++) {
        cleanup_free char *mnt = NULL, *root = NULL, *cur = NULL;
        if (find_mount(ctrl_names[c], NULL, &mnt, &root) < 0)
            continue;
        cur = current_group(ctrl_names[c]);
        cleanup_free char *parent = group_dir(mnt, root, cur ? cur : "/");
        char *base = xasprintf("%s/%s", parent, name);
        if (mkdir(base, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            wisp_err_sys(err, e, "mkdir %s", base);
            free(base);
            return -1;
        }
        cg->base[c] = base;
    }
    cg->limits_ok = cg->base[WISP_CG_MEMORY] && cg->base[WISP_CG_PIDS];
    if (!cg->limits_ok)
        wisp_warn("sandbox", "cgroup v1: memory or pids controller missing; sandboxes run without "
                             "those limits");
    return 0;
}

int wisp__cg_setup(struct wisp__cg *cg, const char *name, wisp_err_t *err)
{
    memset(cg, 0, sizeof *cg);
    if (!wisp__sb_id_valid(name))
        return wisp_err_set(err, WISP_EINVALID, "cgroup name must match [A-Za-z0-9_-]{1,64}");
    struct statfs sfs;
    int rc;
    if (statfs(CGROUP_ROOT, &sfs) < 0) {
        cg->mode = "none";
        wisp_warn("sandbox", "no cgroup file system at " CGROUP_ROOT "; sandboxes run without "
                             "limits");
        return 0;
    }
    if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
        cg->mode = "v2";
        cg->unified = true;
        rc = setup_v2(cg, name, err);
    } else {
        cg->mode = fs_is_cgroup2(CGROUP_ROOT "/unified") ? "hybrid" : "v1";
        rc = setup_v1(cg, name, err);
    }
    if (rc < 0) {
        wisp__cg_free(cg);
        return -1;
    }
    for (int c = 0; c < ndirs(cg); c++)
        if (cg->base[c])
            remove_stale(cg->base[c], cg->unified);
    return 0;
}

void wisp__cg_free(struct wisp__cg *cg)
{
    for (int c = 0; c < WISP_CG_N; c++) {
        free(cg->base[c]);
        cg->base[c] = NULL;
    }
}

void wisp__cg_teardown(const struct wisp__cg *cg)
{
    for (int c = 0; c < ndirs(cg); c++)
        if (cg->base[c])
            rmdir(cg->base[c]);
}

/* The file a new sandbox writes "0" to, to join a group. On v1 it is
 * "tasks", which moves only the writing thread: the child is
 * single-threaded at that point, so the whole process moves, and the kernel
 * skips the global threadgroup lock whose write side waits for an RCU grace
 * period (cgroup.procs costs 15-19 ms here when no attach happened in the
 * previous few milliseconds, "tasks" about 30 us). v2 has no such file for
 * domain groups. */
static const char *join_file(const struct wisp__cg *cg)
{
    return cg->unified ? "/cgroup.procs" : "/tasks";
}

static unsigned v1_shares(unsigned weight)
{
    unsigned long s = (unsigned long)weight * 1024 / 100;
    return s < 2 ? 2 : s > 262144 ? 262144 : (unsigned)s;
}

/* Write a limit; a missing optional file is fine. */
static int set_limit(const char *dir, const char *file, const char *val, bool optional,
                     wisp_err_t *err)
{
    int rc = write_at(dir, file, val);
    if (rc == 0 || (optional && rc == -ENOENT))
        return 0;
    return wisp_err_sys(err, -rc, "cgroup %s/%s = %s", dir, file, val);
}

static int apply_limits(const struct wisp__cg *cg, int c, const char *dir,
                        const struct wisp__cg_limits *lim, wisp_err_t *err)
{
    char mem[32], pids[32], cpu[32];
    snprintf(mem, sizeof mem, "%llu", (unsigned long long)lim->memory_bytes);
    snprintf(pids, sizeof pids, "%u", lim->pids_max);
    if (cg->unified) {
        snprintf(cpu, sizeof cpu, "%u", lim->cpu_weight);
        if (lim->memory_bytes && (set_limit(dir, "memory.max", mem, false, err) < 0 ||
                                  set_limit(dir, "memory.swap.max", "0", true, err) < 0 ||
                                  set_limit(dir, "memory.oom.group", "1", true, err) < 0))
            return -1;
        if (lim->pids_max && set_limit(dir, "pids.max", pids, false, err) < 0)
            return -1;
        if (lim->cpu_weight && set_limit(dir, "cpu.weight", cpu, true, err) < 0)
            return -1;
        return 0;
    }
    switch (c) {
    case WISP_CG_MEMORY:
        if (lim->memory_bytes &&
            (set_limit(dir, "memory.limit_in_bytes", mem, false, err) < 0 ||
             set_limit(dir, "memory.memsw.limit_in_bytes", mem, true, err) < 0))
            return -1;
        return 0;
    case WISP_CG_PIDS: return lim->pids_max ? set_limit(dir, "pids.max", pids, false, err) : 0;
    default:
        snprintf(cpu, sizeof cpu, "%u", v1_shares(lim->cpu_weight));
        return set_limit(dir, "cpu.shares", cpu, false, err);
    }
}

/* Write a group's limits, then open its join file (cgroup.procs or tasks)
 * for the sandbox's first process. dir (PATH_MAX bytes) is the group folder
 * and is extended with the file name. */
static int limit_and_open(const struct wisp__cg *cg, int c, char *dir,
                          const struct wisp__cg_limits *lim, int *fd, wisp_err_t *err)
{
    if (apply_limits(cg, c, dir, lim, err) < 0)
        return -1;
    strncat(dir, join_file(cg), PATH_MAX - strlen(dir) - 1);
    *fd = open(dir, O_WRONLY | O_CLOEXEC);
    if (*fd < 0)
        return wisp_err_sys(err, errno, "open %s", dir);
    return 0;
}

int wisp__cg_create(const struct wisp__cg *cg, const char *id, const struct wisp__cg_limits *lim,
                    int procs_fds[WISP_CG_N], wisp_err_t *err)
{
    for (int c = 0; c < WISP_CG_N; c++)
        procs_fds[c] = -1;
    for (int c = 0; c < ndirs(cg); c++) {
        if (cg->base[c] == NULL || (c == WISP_CG_CPU && lim->cpu_weight == 0))
            continue;
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s/%s", cg->base[c], id) >= (int)sizeof dir) {
            wisp_err_set(err, WISP_EINVALID, "cgroup path too long");
            goto fail;
        }
        if (mkdir(dir, 0755) < 0) {
            wisp_err_sys(err, errno, "mkdir %s", dir);
            if (errno == EEXIST)
                err->code = WISP_ECONFLICT;
            goto fail;
        }
        if (limit_and_open(cg, c, dir, lim, &procs_fds[c], err) < 0)
            goto fail;
    }
    return 0;
fail:
    for (int c = 0; c < WISP_CG_N; c++) {
        if (procs_fds[c] >= 0)
            close(procs_fds[c]);
        procs_fds[c] = -1;
    }
    if (err == NULL || err->code != WISP_ECONFLICT)
        wisp__cg_destroy(cg, id);
    return -1;
}

int wisp__cg_rename(const struct wisp__cg *cg, const char *from, const char *id,
                    const struct wisp__cg_limits *lim, wisp_err_t *err)
{
    if (!wisp__cg_pool_ok(cg))
        return wisp_err_set(err, WISP_EUNSUPPORTED, "cgroups cannot be renamed here");
    for (int c = 0; c < WISP_CG_N; c++) {
        if (cg->base[c] == NULL)
            continue;
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "%s/%s", cg->base[c], from);
        if (snprintf(dst, sizeof dst, "%s/%s", cg->base[c], id) >= (int)sizeof dst)
            return wisp_err_set(err, WISP_EINVALID, "cgroup path too long");
        if (rename(src, dst) < 0)
            return wisp_err_sys(err, errno, "rename %s", src);
        /* The memory limit goes down (a stem has none): v1 takes the plain
         * limit before the one with swap, as apply_limits writes them. */
        if (lim && (c != WISP_CG_CPU || lim->cpu_weight) && apply_limits(cg, c, dst, lim, err) < 0)
            return -1;
    }
    return 0;
}

bool wisp__cg_pool_ok(const struct wisp__cg *cg)
{
    return !cg->unified && cg->base[WISP_CG_MEMORY] != NULL;
}

int wisp__cg_pool_make(const struct wisp__cg *cg, const char *name, wisp_err_t *err)
{
    if (!wisp__cg_pool_ok(cg))
        return wisp_err_set(err, WISP_EUNSUPPORTED, "cgroups cannot be pooled here");
    for (int c = 0; c < WISP_CG_N; c++) {
        if (cg->base[c] == NULL)
            continue;
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s/%s", cg->base[c], name) >= (int)sizeof dir ||
            mkdir(dir, 0755) < 0) {
            wisp_err_sys(err, errno, "mkdir %s", dir);
            wisp__cg_destroy(cg, name);
            return -1;
        }
    }
    return 0;
}

int wisp__cg_pool_take(const struct wisp__cg *cg, const char *name, const char *id,
                       const struct wisp__cg_limits *lim, int procs_fds[WISP_CG_N], wisp_err_t *err)
{
    bool renamed[WISP_CG_N] = {false};
    for (int c = 0; c < WISP_CG_N; c++)
        procs_fds[c] = -1;
    for (int c = 0; c < WISP_CG_N; c++) {
        if (cg->base[c] == NULL)
            continue;
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/%s", cg->base[c], name);
        if (snprintf(to, sizeof to, "%s/%s", cg->base[c], id) >= (int)sizeof to) {
            wisp_err_set(err, WISP_EINVALID, "cgroup path too long");
            goto fail;
        }
        if (c == WISP_CG_CPU && lim->cpu_weight == 0) {
            rmdir(from);
            continue;
        }
        /* rename(2) never replaces a cgroup: an existing id fails with EEXIST
         * (or EBUSY), so the groups of a live sandbox stay untouched. */
        if (rename(from, to) < 0) {
            wisp_err_sys(err, errno, "rename %s", from);
            goto fail;
        }
        renamed[c] = true;
        if (limit_and_open(cg, c, to, lim, &procs_fds[c], err) < 0)
            goto fail;
    }
    return 0;
fail:
    for (int c = 0; c < WISP_CG_N; c++) {
        if (procs_fds[c] >= 0)
            close(procs_fds[c]);
        procs_fds[c] = -1;
        if (cg->base[c] == NULL)
            continue;
        /* Nothing has joined these groups: remove them under whichever name
         * they have, never touching the groups of another id. */
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", cg->base[c], renamed[c] ? id : name);
        rmdir(dir);
    }
    return -1;
}

int wisp__cg_kill(const struct wisp__cg *cg, const char *id)
{
    int seen = 0;
    for (int c = 0; c < ndirs(cg); c++) {
        if (cg->base[c] == NULL)
            continue;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", cg->base[c], id);
        seen += kill_dir(dir, cg->unified);
    }
    return seen;
}

int wisp__cg_kill_one(const struct wisp__cg *cg, const char *id)
{
    for (int c = 0; c < ndirs(cg); c++) {
        if (cg->base[c] == NULL)
            continue;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", cg->base[c], id);
        return kill_dir(dir, cg->unified);
    }
    return 0;
}

bool wisp__cg_destroy(const struct wisp__cg *cg, const char *id)
{
    bool gone = true;
    for (int c = 0; c < ndirs(cg); c++) {
        if (cg->base[c] == NULL)
            continue;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", cg->base[c], id);
        if (rmdir(dir) < 0 && errno != ENOENT)
            gone = false;
    }
    return gone;
}

uint64_t wisp__cg_peak(const struct wisp__cg *cg, const char *id)
{
    char buf[64];
    const char *dir = cg->base[WISP_CG_MEMORY];
    if (dir == NULL || !group_name_ok(id))
        return 0;
    if (read_at(dir, id, cg->unified ? "memory.peak" : "memory.max_usage_in_bytes", buf,
                sizeof buf) <= 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

int wisp__cg_peak_open(const struct wisp__cg *cg, const char *id)
{
    char path[PATH_MAX];
    const char *dir = cg->base[WISP_CG_MEMORY];
    if (dir == NULL || !group_name_ok(id) ||
        snprintf(path, sizeof path, "%s/%s/%s", dir, id,
                 cg->unified ? "memory.peak" : "memory.max_usage_in_bytes") >= (int)sizeof path)
        return -1;
    return open(path, O_RDONLY | O_CLOEXEC);
}

bool wisp__cg_oom(const struct wisp__cg *cg, const char *id)
{
    char buf[1024];
    const char *dir = cg->base[WISP_CG_MEMORY];
    if (dir == NULL || read_at(dir, id, cg->unified ? "memory.events" : "memory.oom_control", buf,
                               sizeof buf) <= 0)
        return false;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "oom_kill ", 9) == 0)
            return strtoull(line + 9, NULL, 10) > 0;
        line = nl ? nl + 1 : NULL;
    }
    return false;
}
