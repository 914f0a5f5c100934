/*
 * mounts.c - the sandbox's root file system.
 *
 * Prepared once by the spawner: a template /etc in <state_dir>/etc holding a
 * few synthesized files (passwd and group with the sandbox user, hosts,
 * nsswitch.conf, hostname) and copies of the host files runtimes need
 * (ld.so.cache, the CA bundle, openssl.cnf, the /etc/alternatives links), and
 * the plan of the host's top-level folders (/usr, /lib... bound read-only;
 * merged-/usr symlinks such as /bin -> usr/bin recreated as symlinks).
 *
 * Entered by each new sandbox (in its own mount namespace, still root):
 *
 *   /             tmpfs, read-only once built, nosuid
 *   /usr /lib...  read-only, nosuid, nodev binds of the host's folders
 *   /etc          read-only bind of the template (host /etc stays invisible)
 *   /var/task     read-only, nosuid, nodev bind of the code folder
 *   /var/runtime  read-only, nosuid, nodev bind of the runtime folder (optional)
 *   /tmp          tmpfs of tmp_mb, mode 1777, nosuid, nodev
 *   /proc         proc of the sandbox's pid namespace, nosuid, nodev, noexec
 *   /dev          null zero full random urandom device nodes and the usual
 *                 fd/stdin/stdout/stderr links; /dev/shm -> /tmp
 *
 * then pivot_root into it and detach the old root.
 *
 * The shared part (the tmpfs, /usr..., /etc, /dev and the mount points) is
 * built once by the spawner when it can, as a read-only template mounted at
 * <state_dir>/root.tmpl in the spawner's own mount namespace (which goes
 * away with the spawner): each sandbox's new mount namespace starts with a
 * copy of it, so a sandbox only mounts its code, runtime, /tmp and /proc on
 * the template's mount points and pivots into it (about 150 us less than
 * building the whole root). The sandboxes then share the template's
 * read-only tmpfs; /var/runtime exists (empty) even without a runtime
 * folder. Without a template every sandbox builds the whole tree on
 * <state_dir>/root. Nothing else of the host
 * (its /etc, /root, /home, the data folder, other functions' code) exists
 * inside. The child side must not allocate (see internal.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

static const char *const top_names[] = {"usr", "lib", "lib64", "lib32", "libx32", "bin", "sbin"};

/* ---- preparation (spawner) ----------------------------------------------- */

/* Write a root-owned file with mode (umask does not apply). */
static int put_file(const char *dir, const char *name, const void *data, size_t len, int mode,
                    wisp_err_t *err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, name);
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return wisp_err_sys(err, errno, "create %s", path);
    if (fchmod(fd, (mode_t)mode) < 0)
        return wisp_err_sys(err, errno, "chmod %s", path);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return wisp_err_sys(err, errno, "write %s", path);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy a host file into the template if the host has it. */
static int copy_host_file(const char *src, const char *dir, const char *name, wisp_err_t *err)
{
    char *data;
    size_t len;
    wisp_err_t e;
    if (wisp_read_file(src, 16 << 20, &data, &len, &e) < 0) {
        if (e.code != WISP_ENOTFOUND)
            wisp_warn("sandbox", "not copying %s into the sandboxes' /etc: %s", src, e.msg);
        return 0;
    }
    int rc = put_file(dir, name, data, len, 0644, err);
    free(data);
    return rc;
}

static int make_dir(const char *path, wisp_err_t *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return wisp_err_sys(err, errno, "mkdir %s", path);
    if (chmod(path, 0755) < 0)
        return wisp_err_sys(err, errno, "chmod %s", path);
    return 0;
}

/* Recreate the symlinks of host folder src (e.g. /etc/alternatives) in dst. */
static void copy_symlinks(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        cleanup_free char *path = xasprintf("%s/%s", dst, e->d_name);
        if (symlink(target, path) < 0 && errno != EEXIST)
            continue;
    }
    closedir(d);
}

static int build_etc(const char *etc, uid_t uid, gid_t gid, wisp_err_t *err)
{
    wisp_err_t ignored;
    if (wisp_rm_rf(etc, &ignored) < 0 || make_dir(etc, err) < 0)
        return wisp_err_set(err, WISP_EINTERNAL, "cannot recreate %s", etc);
    const char *user = uid == 65534 ? "nobody" : "sbx_user";
    const char *group = gid == 65534 ? "nogroup" : "sbx_group";
    cleanup_free char *passwd =
        xasprintf("root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%u:%u:wisp sandbox:/tmp:"
                  "/usr/sbin/nologin\n",
                  user, (unsigned)uid, (unsigned)gid);
    cleanup_free char *grp = xasprintf("root:x:0:\n%s:x:%u:\n", group, (unsigned)gid);
    static const char hosts[] = "127.0.0.1\tlocalhost " WISP_SB_HOSTNAME "\n"
                                "::1\tlocalhost ip6-localhost ip6-loopback\n";
    static const char nss[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                              "networks: files\nprotocols: files\nservices: files\n";
    static const char hostname[] = WISP_SB_HOSTNAME "\n";
    cleanup_free char *ssl = xasprintf("%s/ssl", etc);
    cleanup_free char *certs = xasprintf("%s/ssl/certs", etc);
    cleanup_free char *alt = xasprintf("%s/alternatives", etc);
    if (put_file(etc, "passwd", passwd, strlen(passwd), 0644, err) < 0 ||
        put_file(etc, "group", grp, strlen(grp), 0644, err) < 0 ||
        put_file(etc, "hosts", hosts, sizeof hosts - 1, 0644, err) < 0 ||
        put_file(etc, "nsswitch.conf", nss, sizeof nss - 1, 0644, err) < 0 ||
        put_file(etc, "hostname", hostname, sizeof hostname - 1, 0644, err) < 0 ||
        put_file(etc, "resolv.conf", "", 0, 0644, err) < 0 ||
        copy_host_file("/etc/ld.so.cache", etc, "ld.so.cache", err) < 0 || make_dir(ssl, err) < 0 ||
        make_dir(certs, err) < 0 ||
        copy_host_file("/etc/ssl/openssl.cnf", ssl, "openssl.cnf", err) < 0 ||
        copy_host_file("/etc/ssl/certs/ca-certificates.crt", certs, "ca-certificates.crt", err) <
            0 ||
        make_dir(alt, err) < 0)
        return -1;
    copy_symlinks("/etc/alternatives", alt);
    cleanup_free char *localtime = xasprintf("%s/localtime", etc);
    if (symlink("/usr/share/zoneinfo/UTC", localtime) < 0)
        return wisp_err_sys(err, errno, "symlink %s", localtime);
    return 0;
}

int wisp__rootfs_prepare(struct wisp__rootfs *fs, const char *state_dir, uid_t uid, gid_t gid,
                         wisp_err_t *err)
{
    memset(fs, 0, sizeof *fs);
    if (wisp_mkdir_p(state_dir, 0700, err) < 0)
        return -1;
    fs->root_dir = xasprintf("%s/root", state_dir);
    fs->etc_dir = xasprintf("%s/etc", state_dir);
    if (make_dir(fs->root_dir, err) < 0 || build_etc(fs->etc_dir, uid, gid, err) < 0)
        goto fail;
    for (size_t i = 0; i < WISP_ARRAY_LEN(top_names); i++) {
        char host[64], target[PATH_MAX];
        struct stat st;
        snprintf(host, sizeof host, "/%s", top_names[i]);
        if (lstat(host, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            fs->top[fs->ntop].link = xstrdup(target);
        } else if (!S_ISDIR(st.st_mode)) {
            continue;
        }
        fs->top[fs->ntop++].name = top_names[i];
    }
    return 0;
fail:
    wisp__rootfs_free(fs);
    return -1;
}

void wisp__rootfs_free(struct wisp__rootfs *fs)
{
    free(fs->root_dir);
    free(fs->tmpl_dir);
    free(fs->etc_dir);
    for (int i = 0; i < fs->ntop; i++)
        free(fs->top[i].link);
    memset(fs, 0, sizeof *fs);
}

/* ---- entering (child; no allocation) -------------------------------------- */

static int do_mount(struct wisp__child *c, const char *src, const char *dst, const char *type,
                    unsigned long flags, const char *data)
{
    if (mount(src, dst, type, flags, data) < 0) {
        const char *what = src ? src : type ? type : "(remount)";
        return wisp__child_fail(c, errno, "mount %s on %s", what, dst);
    }
    return 0;
}

/* Bind src on dst (a new folder under the new root) read-only with flags. */
static int bind_ro(struct wisp__child *c, const char *src, const char *dst, unsigned long flags)
{
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
        return wisp__child_fail(c, errno, "mkdir %s", dst);
    if (do_mount(c, src, dst, NULL, MS_BIND, NULL) < 0)
        return -1;
    return do_mount(c, NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, NULL);
}

static int make_devices(struct wisp__child *c, const char *root)
{
    static const struct {
        const char *name;
        unsigned minor;
    } devs[] = {{"null", 3}, {"zero", 5}, {"full", 7}, {"random", 8}, {"urandom", 9}};
    static const struct {
        const char *name, *target;
    } links[] = {{"fd", "/proc/self/fd"},
                 {"stdin", "/proc/self/fd/0"},
                 {"stdout", "/proc/self/fd/1"},
                 {"stderr", "/proc/self/fd/2"},
                 {"shm", "/tmp"}};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/dev", root);
    if (mkdir(path, 0755) < 0)
        return wisp__child_fail(c, errno, "mkdir %s", path);
    for (size_t i = 0; i < WISP_ARRAY_LEN(devs); i++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, devs[i].name);
        if (mknod(path, S_IFCHR | 0666, makedev(1, devs[i].minor)) < 0)
            return wisp__child_fail(c, errno, "mknod %s", path);
    }
    for (size_t i = 0; i < WISP_ARRAY_LEN(links); i++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, links[i].name);
        if (symlink(links[i].target, path) < 0)
            return wisp__child_fail(c, errno, "symlink %s", path);
    }
    return 0;
}

/* The parts of the root every sandbox shares: the tmpfs, the host's top-level
 * folders, /etc, /dev and the mount points of the rest (/var/runtime only
 * when runtime is true). */
static int build_skeleton(struct wisp__child *c, const char *root, bool runtime)
{
    const struct wisp__rootfs *fs = c->fs;
    char path[PATH_MAX];
    if (do_mount(c, "tmpfs", root, "tmpfs", MS_NOSUID, "size=1m,nr_inodes=1024,mode=755") < 0)
        return -1;
    for (int i = 0; i < fs->ntop; i++) {
        snprintf(path, sizeof path, "%s/%s", root, fs->top[i].name);
        if (fs->top[i].link) {
            if (symlink(fs->top[i].link, path) < 0)
                return wisp__child_fail(c, errno, "symlink %s", path);
            continue;
        }
        char host[64];
        snprintf(host, sizeof host, "/%s", fs->top[i].name);
        if (bind_ro(c, host, path, MS_NOSUID | MS_NODEV) < 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/etc", root);
    if (bind_ro(c, fs->etc_dir, path, MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        return -1;
    static const struct {
        const char *name;
        mode_t mode;
    } dirs[] = {
        {"var", 0755}, {"var/task", 0755}, {"var/runtime", 0755}, {"tmp", 0755}, {"proc", 0555}};
    for (size_t i = 0; i < WISP_ARRAY_LEN(dirs); i++) {
        if (!runtime && strcmp(dirs[i].name, "var/runtime") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", root, dirs[i].name);
        if (mkdir(path, dirs[i].mode) < 0)
            return wisp__child_fail(c, errno, "mkdir %s", path);
    }
    return make_devices(c, root);
}

int wisp__rootfs_template(struct wisp__rootfs *fs, wisp_err_t *err)
{
    if (unshare(CLONE_NEWNS) < 0)
        return wisp_err_sys(err, errno, "unshare(CLONE_NEWNS)");
    /* Our mounts stay ours; the host's later ones still reach us. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return wisp_err_sys(err, errno, "make / a slave mount");
    char *dir = xasprintf("%s.tmpl", fs->root_dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        wisp_err_sys(err, errno, "mkdir %s", dir);
        free(dir);
        return -1;
    }
    struct wisp__child c;
    memset(&c, 0, sizeof c);
    c.fs = fs;
    /* The modes are exact, as a sandbox child (umask 0) makes them. */
    mode_t mask = umask(0);
    int rc = build_skeleton(&c, dir, true);
    umask(mask);
    if (rc < 0 ||
        do_mount(&c, NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL) < 0) {
        wisp_err_set(err, WISP_EINTERNAL, "%s", c.fail_msg);
        err->sys_errno = c.fail_errno;
        umount2(dir, MNT_DETACH);
        free(dir);
        return -1;
    }
    fs->tmpl_dir = dir;
    return 0;
}

int wisp__rootfs_enter(struct wisp__child *c)
{
    const struct wisp__rootfs *fs = c->fs;
    /* With a template (a copy of it is in this new mount namespace) only the
     * sandbox's own parts are mounted, on its read-only mount points. */
    const char *root = fs->tmpl_dir ? fs->tmpl_dir : fs->root_dir;
    char path[PATH_MAX], opts[64];
    const unsigned long ro_code = MS_NOSUID | MS_NODEV;

    if (do_mount(c, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    if (fs->tmpl_dir == NULL && build_skeleton(c, root, c->spec->runtime_dir != NULL) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/var/task", root);
    if (do_mount(c, c->spec->code_dir, path, NULL, MS_BIND, NULL) < 0 ||
        do_mount(c, NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | ro_code, NULL) < 0)
        return -1;
    if (c->spec->runtime_dir) {
        snprintf(path, sizeof path, "%s/var/runtime", root);
        if (do_mount(c, c->spec->runtime_dir, path, NULL, MS_BIND, NULL) < 0 ||
            do_mount(c, NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | ro_code, NULL) < 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/tmp", root);
    snprintf(opts, sizeof opts, "size=%um,mode=1777", c->spec->tmp_mb);
    if (do_mount(c, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/proc", root);
    if (do_mount(c, "proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return -1;

    /* Stack the old root under the new one, then detach it. */
    if (chdir(root) < 0)
        return wisp__child_fail(c, errno, "chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return wisp__child_fail(c, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        return wisp__child_fail(c, errno, "detach the old root");
    if (chdir("/") < 0)
        return wisp__child_fail(c, errno, "chdir /");
    return do_mount(c, NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL);
}
