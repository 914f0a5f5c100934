/*
 * zip.c - turning a deploy folder into a code package: zipping it in memory
 * with libarchive (deterministic, within the package limits, refusing what a
 * package cannot hold), listing the top-level files of a folder or zip, and
 * detecting the runtime and handler from them.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/util.h"
#include "registry/registry.h"

/* 1980-01-02 UTC: the zip (DOS) clock starts in 1980; a day in, no time zone
 * can push it below that. */
#define ZIP_FIXED_MTIME 315619200
#define COPY_CHUNK (64 * 1024)
#define MAX_DEPTH 128

/* One folder on the path from the root to where the walk is, to see loops
 * made by symlinks. */
struct ancestor {
    dev_t dev;
    ino_t ino;
};

struct zipper {
    struct archive *a;
    wisp_buf_t out;    /* the zip; max WISP_ZIP_MAX */
    bool out_full;     /* the write callback hit out.max */
    char *root;        /* realpath of the folder */
    size_t entries;    /* entries written */
    uint64_t unzipped; /* sum of file sizes */
    struct ancestor stack[MAX_DEPTH];
    int depth;
};

static la_ssize_t write_cb(struct archive *a, void *data, const void *buf, size_t n)
{
    struct zipper *z = data;
    if (wisp_buf_append(&z->out, buf, n, NULL) < 0) {
        z->out_full = true;
        archive_set_error(a, EFBIG, "package too large");
        return -1;
    }
    return (la_ssize_t)n;
}

static int archive_fail(struct zipper *z, const char *rel, wisp_err_t *err)
{
    if (z->out_full)
        return wisp_err_set(err, WISP_ELIMIT, "the zipped folder is larger than %u MiB",
                            WISP_ZIP_MAX / (1024 * 1024));
    return wisp_err_set(err, WISP_EINTERNAL, "zipping %s: %s", rel, archive_error_string(z->a));
}

static int count_entry(struct zipper *z, const char *rel, wisp_err_t *err)
{
    if (++z->entries > WISP_ZIP_ENTRIES_MAX)
        return wisp_err_set(err, WISP_ELIMIT, "the folder has more than %d files and folders",
                            WISP_ZIP_ENTRIES_MAX);
    return 0;
}

static struct archive_entry *new_entry(const char *path, mode_t type, int perm)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        abort();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_mtime(e, ZIP_FIXED_MTIME, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    return e;
}

static int add_file(struct zipper *z, const char *full, const char *rel, const struct stat *st,
                    wisp_err_t *err)
{
    if (count_entry(z, rel, err) < 0)
        return -1;
    z->unzipped += (uint64_t)st->st_size;
    if (z->unzipped > WISP_UNZIPPED_MAX)
        return wisp_err_set(err, WISP_ELIMIT, "the folder holds more than %u MiB of files",
                            WISP_UNZIPPED_MAX / (1024 * 1024));
    cleanup_close int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return wisp_err_sys(err, errno, "cannot read %s", rel);
    struct archive_entry *e = new_entry(rel, AE_IFREG, (st->st_mode & 0111) ? 0755 : 0644);
    archive_entry_set_size(e, st->st_size);
    int r = archive_write_header(z->a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return archive_fail(z, rel, err);
    cleanup_free char *chunk = xmalloc(COPY_CHUNK);
    off_t done = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return wisp_err_sys(err, errno, "reading %s", rel);
        if (n == 0)
            break;
        if (done + n > st->st_size)
            break;
        if (archive_write_data(z->a, chunk, (size_t)n) != n)
            return archive_fail(z, rel, err);
        done += n;
    }
    if (done != st->st_size)
        return wisp_err_set(err, WISP_ECONFLICT, "%s changed size while it was being zipped", rel);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The entries of a folder but "." and "..", sorted by bytes. */
static int read_names(const char *dir, const char *rel, char ***out, size_t *count, wisp_err_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return wisp_err_sys(err, errno, "cannot open folder %s", rel);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(de->d_name);
    }
    int saved = errno;
    closedir(d);
    if (saved) {
        free_names(names, n);
        return wisp_err_sys(err, saved, "cannot list folder %s", rel);
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *count = n;
    return 0;
}

static bool inside_root(const struct zipper *z, const char *real)
{
    size_t n = strlen(z->root);
    if (strcmp(z->root, "/") == 0)
        return true;
    return strncmp(real, z->root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

static int add_dir(struct zipper *z, const char *full, const char *rel, const struct stat *st,
                   wisp_err_t *err);

static int add_path(struct zipper *z, const char *full, const char *rel, wisp_err_t *err)
{
    struct stat st;
    if (lstat(full, &st) < 0)
        return wisp_err_sys(err, errno, "cannot stat %s", rel);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t tn = readlink(full, target, sizeof target - 1);
        target[tn > 0 ? tn : 0] = '\0';
        cleanup_free char *real = realpath(full, NULL);
        if (real == NULL) {
            if (errno == ENOENT)
                return wisp_err_set(err, WISP_EINVALID, "symlink %s -> %s points to nothing", rel,
                                    target);
            if (errno == ELOOP)
                return wisp_err_set(err, WISP_EINVALID, "symlink %s -> %s loops", rel, target);
            return wisp_err_sys(err, errno, "cannot resolve symlink %s", rel);
        }
        if (!inside_root(z, real))
            return wisp_err_set(err, WISP_EINVALID,
                                "symlink %s -> %s points outside the folder; packages can only "
                                "hold what is inside it (copy the file in instead)",
                                rel, target);
        /* Packages cannot hold symlinks: one that stays inside the folder is
         * stored as what it points to. */
        if (stat(real, &st) < 0)
            return wisp_err_sys(err, errno, "cannot stat %s", rel);
    }
    if (S_ISREG(st.st_mode))
        return add_file(z, full, rel, &st, err);
    if (S_ISDIR(st.st_mode))
        return add_dir(z, full, rel, &st, err);
    const char *what = S_ISFIFO(st.st_mode)   ? "a fifo"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "not a regular file";
    return wisp_err_set(err, WISP_EINVALID, "%s is %s; packages can hold only files and folders",
                        rel, what);
}

/* Write the folder's entry (unless it is the root, rel "") and its contents. */
static int add_dir(struct zipper *z, const char *full, const char *rel, const struct stat *st,
                   wisp_err_t *err)
{
    for (int i = 0; i < z->depth; i++)
        if (z->stack[i].dev == st->st_dev && z->stack[i].ino == st->st_ino)
            return wisp_err_set(err, WISP_EINVALID,
                                "%s is a symlink to a folder that contains it (a loop)", rel);
    if (z->depth == MAX_DEPTH)
        return wisp_err_set(err, WISP_ELIMIT, "%s: folders nested more than %d deep", rel,
                            MAX_DEPTH);
    if (*rel) {
        if (count_entry(z, rel, err) < 0)
            return -1;
        cleanup_free char *dname = xasprintf("%s/", rel);
        struct archive_entry *e = new_entry(dname, AE_IFDIR, 0755);
        int r = archive_write_header(z->a, e);
        archive_entry_free(e);
        if (r != ARCHIVE_OK)
            return archive_fail(z, rel, err);
    }
    char **names = NULL;
    size_t n = 0;
    if (read_names(full, *rel ? rel : ".", &names, &n, err) < 0)
        return -1;
    z->stack[z->depth].dev = st->st_dev;
    z->stack[z->depth].ino = st->st_ino;
    z->depth++;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cleanup_free char *cfull = xasprintf("%s/%s", full, names[i]);
        cleanup_free char *crel = *rel ? xasprintf("%s/%s", rel, names[i]) : xstrdup(names[i]);
        if (strlen(crel) >= PATH_MAX)
            rc = wisp_err_set(err, WISP_ELIMIT, "%s...: path too long", names[i]);
        else
            rc = add_path(z, cfull, crel, err);
    }
    z->depth--;
    free_names(names, n);
    return rc;
}

int wisp__cli_zip_dir(const char *dir, char **zip, size_t *len, wisp_err_t *err)
{
    struct zipper z = {.out = WISP_BUF_INIT(WISP_ZIP_MAX)};
    z.root = realpath(dir, NULL);
    if (z.root == NULL)
        return wisp_err_sys(err, errno, "%s", dir);
    int rc = -1;
    struct stat st;
    if (stat(z.root, &st) < 0) {
        wisp_err_sys(err, errno, "%s", dir);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        wisp_err_set(err, WISP_EINVALID, "%s is not a folder", dir);
        goto out;
    }
    z.a = archive_write_new();
    if (z.a == NULL)
        abort();
    /* No blocking: bytes go straight to the buffer and the end is not padded. */
    if (archive_write_set_format_zip(z.a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(z.a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(z.a, 1) != ARCHIVE_OK ||
        archive_write_open(z.a, &z, NULL, write_cb, NULL) != ARCHIVE_OK) {
        archive_fail(&z, dir, err);
        goto out;
    }
    if (add_dir(&z, z.root, "", &st, err) < 0)
        goto out;
    if (z.entries == 0) {
        wisp_err_set(err, WISP_EINVALID, "%s is empty: nothing to deploy", dir);
        goto out;
    }
    if (archive_write_close(z.a) != ARCHIVE_OK) {
        archive_fail(&z, dir, err);
        goto out;
    }
    *zip = wisp_buf_steal(&z.out, len);
    rc = 0;
out:
    if (z.a)
        archive_write_free(z.a);
    wisp_buf_free(&z.out);
    free(z.root);
    return rc;
}

/* ---- listing and detection ---- */

static void add_file_entry(wisp_cli_file_t **files, size_t *n, size_t *cap, const char *name,
                           bool exec)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *files = xrealloc(*files, *cap * sizeof **files);
    }
    (*files)[*n].name = xstrdup(name);
    (*files)[*n].exec = exec;
    (*n)++;
}

void wisp__cli_files_free(wisp_cli_file_t *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)files[i].name);
    free(files);
}

int wisp__cli_list_dir(const char *dir, wisp_cli_file_t **files, size_t *n, wisp_err_t *err)
{
    char **names = NULL;
    size_t count = 0, cap = 0;
    *files = NULL;
    *n = 0;
    if (read_names(dir, dir, &names, &count, err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        cleanup_free char *full = xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        /* Follows symlinks, as zipping does. */
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            add_file_entry(files, n, &cap, names[i], (st.st_mode & 0111) != 0);
    }
    free_names(names, count);
    return 0;
}

int wisp__cli_list_zip(const void *zip, size_t len, wisp_cli_file_t **files, size_t *n,
                       wisp_err_t *err)
{
    size_t cap = 0;
    *files = NULL;
    *n = 0;
    struct archive *a = archive_read_new();
    if (a == NULL)
        abort();
    archive_read_support_format_zip(a);
    int rc = 0;
    if (archive_read_open_memory(a, zip, len) != ARCHIVE_OK) {
        rc = wisp_err_set(err, WISP_EINVALID, "not a readable zip: %s", archive_error_string(a));
        goto out;
    }
    struct archive_entry *e;
    size_t seen = 0;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (++seen > WISP_ZIP_ENTRIES_MAX) {
            rc = wisp_err_set(err, WISP_ELIMIT, "the zip has more than %d entries",
                              WISP_ZIP_ENTRIES_MAX);
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (name == NULL)
            continue;
        if (name[0] == '.' && name[1] == '/')
            name += 2;
        if (*name == '\0' || strchr(name, '/') != NULL || archive_entry_filetype(e) != AE_IFREG)
            continue;
        add_file_entry(files, n, &cap, name, (archive_entry_perm(e) & 0111) != 0);
    }
    if (r != ARCHIVE_EOF)
        rc = wisp_err_set(err, WISP_EINVALID, "not a readable zip: %s", archive_error_string(a));
out:
    archive_read_free(a);
    if (rc < 0) {
        wisp__cli_files_free(*files, *n);
        *files = NULL;
        *n = 0;
    }
    return rc;
}

static const wisp_cli_file_t *find_file(const wisp_cli_file_t *files, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

int wisp__cli_detect_runtime(const wisp_cli_file_t *files, size_t n, const char **runtime,
                             const char **handler, wisp_err_t *err)
{
    static const struct {
        const char *file;
        const char *runtime;
        const char *handler;
    } rules[] = {
        {"app.py", "python3", "app.handler"},
        {"lambda_function.py", "python3", "lambda_function.lambda_handler"},
        {"index.js", "nodejs", "index.handler"},
        {"index.mjs", "nodejs", "index.handler"},
        {"index.cjs", "nodejs", "index.handler"},
    };
    const wisp_cli_file_t *boot = find_file(files, n, "bootstrap");
    if (boot && boot->exec) {
        *runtime = "provided";
        *handler = NULL;
        return 0;
    }
    for (size_t i = 0; i < WISP_ARRAY_LEN(rules); i++) {
        if (find_file(files, n, rules[i].file)) {
            *runtime = rules[i].runtime;
            *handler = rules[i].handler;
            return 0;
        }
    }
    *runtime = *handler = NULL;
    if (boot)
        return wisp_err_set(err, WISP_ENOTFOUND,
                            "bootstrap is not executable (chmod +x it), or give --runtime");
    return wisp_err_set(err, WISP_ENOTFOUND,
                        "cannot tell the runtime: no executable bootstrap, app.py, "
                        "lambda_function.py or index.js/.mjs/.cjs at the top; give --runtime "
                        "(and --handler)");
}
