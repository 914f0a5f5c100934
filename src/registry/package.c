/*
 * package.c - code packages: checking and extracting untrusted zip archives
 * (libarchive, read from memory), hashing them, and removing extracted trees.
 *
 * A package comes from a user and will be read by sandboxes, so extraction
 * trusts nothing in it: entry names are checked component by component (no
 * absolute paths, no ".."), only regular files and folders are accepted (no
 * symlinks, hard links, devices, fifos or sockets), and the number of entries
 * and the bytes actually inflated are counted against limits while reading
 * (sizes in headers are never believed). Files are created with openat()
 * relative to folder descriptors, O_NOFOLLOW and O_EXCL, inside a fresh
 * temporary folder that is renamed into place only when everything passed;
 * nothing is ever written through a path that could leave that folder.
 *
 * Everything here is thread-safe (no shared state): the registry calls it on
 * the libuv thread pool.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "registry/internal.h"

#define NAME_MAX_BYTES 255  /* one path component */
#define PATH_MAX_BYTES 4095 /* a whole entry name */
#define READ_CHUNK (64 * 1024)

const struct wisp__pkg_limits wisp__pkg_default_limits = {
    .zip_max = WISP_ZIP_MAX,
    .unzipped_max = WISP_UNZIPPED_MAX,
    .entries_max = WISP_ZIP_ENTRIES_MAX,
};

void wisp__sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        /* Only a broken libcrypto fails here; a wrong hash would be worse. */
        fprintf(stderr, "wisp: SHA-256 failed\n");
        abort();
    }
    wisp_hex(md, 32, out);
}

bool wisp__is_sha256_hex(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void archive_freep(struct archive **a)
{
    if (*a != NULL)
        archive_read_free(*a);
}
#define cleanup_archive __attribute__((cleanup(archive_freep)))

/* Sizes in messages, as people say them: "50 MiB". */
static void human(uint64_t bytes, char *out, size_t n)
{
    if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
        snprintf(out, n, "%llu MiB", (unsigned long long)(bytes / (1024 * 1024)));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(out, n, "%llu KiB", (unsigned long long)(bytes / 1024));
    else
        snprintf(out, n, "%llu bytes", (unsigned long long)bytes);
}

/* Folders created while extracting, given their final mode at the end. */
struct dirlist {
    char **paths;
    size_t n, cap;
};

static void dirlist_free(struct dirlist *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->paths[i]);
    free(d->paths);
}

/*
 * Split an entry name into its components, in place: "./a//b/" gives a, b.
 * Empty and "." components are dropped; an absolute name, a ".." anywhere,
 * or an over-long name is refused. *ncomp may be 0 (the root itself).
 */
static int split_name(char *name, char **comp, size_t *ncomp, wisp_err_t *err)
{
    size_t len = strlen(name);
    if (len > PATH_MAX_BYTES)
        return wisp_err_set(err, WISP_EINVALID, "package entry name is longer than %d bytes",
                            PATH_MAX_BYTES);
    if (name[0] == '/')
        return wisp_err_set(err, WISP_EINVALID, "package entry \"%.200s\" has an absolute path",
                            name);
    *ncomp = 0;
    char *save = NULL;
    for (char *c = strtok_r(name, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0)
            return wisp_err_set(err, WISP_EINVALID,
                                "package entry names may not contain \"..\" (entry leaves the "
                                "package folder)");
        if (strlen(c) > NAME_MAX_BYTES)
            return wisp_err_set(err, WISP_EINVALID,
                                "package entry has a name component longer than %d bytes",
                                NAME_MAX_BYTES);
        if (*ncomp >= WISP_PKG_DEPTH_MAX)
            return wisp_err_set(err, WISP_EINVALID, "package nests folders deeper than %d levels",
                                WISP_PKG_DEPTH_MAX);
        comp[(*ncomp)++] = c;
    }
    return 0;
}

/* Open (creating as needed) the folder comp[0]/.../comp[n-1] under root,
 * never following a symlink. Returns a new descriptor. */
static int open_dirs(int root, char **comp, size_t n, struct dirlist *made, wisp_err_t *err)
{
    int fd = dup(root);
    if (fd < 0)
        return wisp_err_sys(err, errno, "dup");
    for (size_t i = 0; i < n; i++) {
        int next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, comp[i], 0755) < 0) {
                int e = errno;
                close(fd);
                return wisp_err_sys(err, e, "create folder %s", comp[i]);
            }
            if (made->n == made->cap) {
                made->cap = made->cap ? made->cap * 2 : 64;
                made->paths = xrealloc(made->paths, made->cap * sizeof *made->paths);
            }
            /* Rebuild the relative path for the final chmod pass. */
            size_t len = 0;
            for (size_t j = 0; j <= i; j++)
                len += strlen(comp[j]) + 1;
            char *p = xmalloc(len);
            p[0] = '\0';
            for (size_t j = 0; j <= i; j++) {
                if (j)
                    strcat(p, "/");
                strcat(p, comp[j]);
            }
            made->paths[made->n++] = p;
            next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            close(fd);
            if (e == ENOTDIR || e == ELOOP)
                return wisp_err_set(err, WISP_EINVALID,
                                    "package entry %.200s is both a file and a folder", comp[i]);
            return wisp_err_sys(err, e, "open folder %s", comp[i]);
        }
        close(fd);
        fd = next;
    }
    return fd;
}

static int write_all(int fd, const void *buf, size_t n, wisp_err_t *err)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return wisp_err_sys(err, errno, "write package file");
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read one entry's data, counting the bytes actually produced against the
 * package-wide limit, and write it to fd unless fd is -1. */
static int copy_data(struct archive *a, const char *name, int fd, uint64_t *total,
                     const struct wisp__pkg_limits *lim, char *buf, wisp_err_t *err)
{
    for (;;) {
        la_ssize_t r = archive_read_data(a, buf, READ_CHUNK);
        if (r == 0)
            return 0;
        if (r < 0)
            return wisp_err_set(err, WISP_EINVALID, "package entry %.200s cannot be read: %s", name,
                                archive_error_string(a) ? archive_error_string(a) : "error");
        *total += (uint64_t)r;
        if (*total > lim->unzipped_max) {
            char h[32];
            human(lim->unzipped_max, h, sizeof h);
            return wisp_err_set(err, WISP_ELIMIT, "package expands to more than %s", h);
        }
        if (fd >= 0 && write_all(fd, buf, (size_t)r, err) < 0)
            return -1;
    }
}

/* Create one regular file (exclusively) and fill it. */
static int extract_file(struct archive *a, struct archive_entry *e, int root, char **comp,
                        size_t ncomp, struct dirlist *made, uint64_t *total,
                        const struct wisp__pkg_limits *lim, char *buf, wisp_err_t *err)
{
    cleanup_close int dir = open_dirs(root, comp, ncomp - 1, made, err);
    if (dir < 0)
        return -1;
    const char *leaf = comp[ncomp - 1];
    cleanup_close int fd =
        openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return wisp_err_set(err, WISP_EINVALID, "package has two entries named %.200s",
                                archive_entry_pathname(e));
        return wisp_err_sys(err, errno, "create %s", leaf);
    }
    if (copy_data(a, leaf, fd, total, lim, buf, err) < 0)
        return -1;
    /* Read-only for everyone; executable for everyone if any x bit was set. */
    mode_t mode = (archive_entry_perm(e) & 0111) ? 0555 : 0444;
    if (fchmod(fd, mode) < 0)
        return wisp_err_sys(err, errno, "chmod %s", leaf);
    int rc = close(steal_fd(&fd));
    if (rc < 0)
        return wisp_err_sys(err, errno, "close %s", leaf);
    return 0;
}

static int check_type(struct archive_entry *e, const char *name, wisp_err_t *err)
{
    if (archive_entry_hardlink(e) != NULL)
        return wisp_err_set(err, WISP_EINVALID,
                            "package entry %.200s is a hard link; links are not allowed", name);
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
    case AE_IFDIR: return 0;
    case AE_IFLNK:
        return wisp_err_set(err, WISP_EINVALID,
                            "package entry %.200s is a symbolic link; links are not allowed", name);
    default:
        return wisp_err_set(err, WISP_EINVALID,
                            "package entry %.200s is not a regular file or folder (device, fifo "
                            "or socket)",
                            name);
    }
}

/*
 * Go through every entry of the zip, checking it, and extract it under root
 * unless root is -1 (check only). Folders created are added to made.
 */
static int walk(const void *zip, size_t len, int root, const struct wisp__pkg_limits *lim,
                struct dirlist *made, wisp_err_t *err)
{
    char h[32];
    if (len > lim->zip_max) {
        human(lim->zip_max, h, sizeof h);
        return wisp_err_set(err, WISP_ELIMIT, "package is larger than %s zipped", h);
    }
    cleanup_archive struct archive *a = archive_read_new();
    if (a == NULL)
        return wisp_err_set(err, WISP_EINTERNAL, "libarchive: out of memory");
    archive_read_support_format_zip(a);
    if (archive_read_open_memory(a, zip, len) != ARCHIVE_OK)
        return wisp_err_set(err, WISP_EINVALID, "package is not a valid zip archive (%s)",
                            archive_error_string(a) ? archive_error_string(a) : "unreadable");
    cleanup_free char *buf = xmalloc(READ_CHUNK);
    uint64_t total = 0;
    unsigned entries = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return wisp_err_set(err, WISP_EINVALID, "package is not a valid zip archive (%s)",
                                archive_error_string(a) ? archive_error_string(a) : "corrupt");
        if (++entries > lim->entries_max)
            return wisp_err_set(err, WISP_ELIMIT, "package has more than %u entries",
                                lim->entries_max);
        const char *raw = archive_entry_pathname(e);
        if (raw == NULL)
            raw = archive_entry_pathname_utf8(e);
        if (raw == NULL || raw[0] == '\0')
            return wisp_err_set(err, WISP_EINVALID, "package entry %u has no readable name",
                                entries);
        if (check_type(e, raw, err) < 0)
            return -1;
        cleanup_free char *name = xstrdup(raw);
        char *comp[WISP_PKG_DEPTH_MAX];
        size_t ncomp = 0;
        if (split_name(name, comp, &ncomp, err) < 0)
            return -1;
        bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
        if (ncomp == 0 && !is_dir)
            return wisp_err_set(err, WISP_EINVALID, "package has a file entry without a name");
        if (root < 0 || ncomp == 0) {
            /* Folders have no data, but read anyway so nothing escapes the count. */
            if (copy_data(a, raw, -1, &total, lim, buf, err) < 0)
                return -1;
            continue;
        }
        if (is_dir) {
            int fd = open_dirs(root, comp, ncomp, made, err);
            if (fd < 0)
                return -1;
            close(fd);
            if (copy_data(a, raw, -1, &total, lim, buf, err) < 0)
                return -1;
            continue;
        }
        if (extract_file(a, e, root, comp, ncomp, made, &total, lim, buf, err) < 0)
            return -1;
    }
    return 0;
}

int wisp__package_check_limits(const void *zip, size_t len, const struct wisp__pkg_limits *lim,
                               wisp_err_t *err)
{
    struct dirlist none = {0};
    return walk(zip, len, -1, lim, &none, err);
}

int wisp_package_check(const void *zip, size_t len, wisp_err_t *err)
{
    return wisp__package_check_limits(zip, len, &wisp__pkg_default_limits, err);
}

/* Give every folder of a finished tree its final mode: readable and
 * searchable by everyone (sandboxes run as an unprivileged uid), writable by
 * no one. No symlink exists in the tree: extraction never creates one. */
static int seal_tree(int root, const struct dirlist *made, wisp_err_t *err)
{
    for (size_t i = 0; i < made->n; i++)
        if (fchmodat(root, made->paths[i], 0555, 0) < 0)
            return wisp_err_sys(err, errno, "chmod %s", made->paths[i]);
    if (fchmod(root, 0555) < 0)
        return wisp_err_sys(err, errno, "chmod package root");
    return 0;
}

/* rename(2) that refuses to replace dest (even an empty folder). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* A filesystem without RENAME_NOREPLACE: check, then rename. */
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

int wisp__package_extract_limits(const void *zip, size_t len, const char *dest,
                                 const struct wisp__pkg_limits *lim, wisp_err_t *err)
{
    struct stat st;
    if (lstat(dest, &st) == 0)
        return wisp_err_set(err, WISP_ECONFLICT, "%s already exists", dest);
    if (len > lim->zip_max)
        return walk(zip, len, -1, lim, NULL, err);
    cleanup_free char *tmp = xasprintf("%s.tmp-XXXXXX", dest);
    if (mkdtemp(tmp) == NULL)
        return wisp_err_sys(err, errno, "create %s", tmp);
    struct dirlist made = {0};
    int rc = -1;
    int root = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0) {
        wisp_err_sys(err, errno, "open %s", tmp);
    } else {
        rc = walk(zip, len, root, lim, &made, err);
        if (rc == 0)
            rc = seal_tree(root, &made, err);
        close(root);
    }
    dirlist_free(&made);
    if (rc == 0 && rename_noreplace(tmp, dest) < 0) {
        if (errno == EEXIST || errno == ENOTEMPTY)
            rc = wisp_err_set(err, WISP_ECONFLICT, "%s already exists", dest);
        else
            rc = wisp_err_sys(err, errno, "rename %s", tmp);
    }
    if (rc < 0) {
        wisp_err_t ignored;
        if (wisp__package_remove(tmp, &ignored) < 0)
            fprintf(stderr, "wisp: cannot remove %s: %s\n", tmp, ignored.msg);
    }
    return rc;
}

int wisp_package_extract(const void *zip, size_t len, const char *dest, wisp_err_t *err)
{
    return wisp__package_extract_limits(zip, len, dest, &wisp__pkg_default_limits, err);
}

/* Remove name under parent; folders are made writable before their contents
 * go. Recursion depth is bounded by WISP_PKG_DEPTH_MAX for trees we made. */
static int remove_at(int parent, const char *name, int depth, wisp_err_t *err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : wisp_err_sys(err, errno, "stat %s", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
            return wisp_err_sys(err, errno, "unlink %s", name);
        return 0;
    }
    if (depth > WISP_PKG_DEPTH_MAX + 8)
        return wisp_err_set(err, WISP_EINTERNAL, "%s: folders nested too deep to remove", name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return wisp_err_sys(err, errno, "open %s", name);
    if ((st.st_mode & 0700) != 0700 && fchmod(fd, (st.st_mode & 07777) | 0700) < 0) {
        int e = errno;
        close(fd);
        return wisp_err_sys(err, e, "chmod %s", name);
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return wisp_err_sys(err, e, "opendir %s", name);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = remove_at(dirfd(d), de->d_name, depth + 1, err);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return wisp_err_sys(err, errno, "rmdir %s", name);
    return rc;
}

int wisp__package_remove(const char *path, wisp_err_t *err)
{
    return remove_at(AT_FDCWD, path, 0, err);
}
