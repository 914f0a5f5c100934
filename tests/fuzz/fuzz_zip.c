/*
 * fuzz_zip.c - code packages from arbitrary bytes: wisp_package_check, then
 * extraction into a temporary folder.
 *
 * Invariants (abort on violation):
 *  - failures are WISP_EINVALID or WISP_ELIMIT, never anything else;
 *  - extraction succeeds only if the check does;
 *  - nothing is written outside the destination: the folder around it holds
 *    nothing else afterwards, and a canary file next to it is untouched;
 *  - a failed extraction leaves nothing behind;
 *  - a successful one holds only regular files (0444 or 0555) and folders
 *    (0555), no links, within the entry and size limits.
 * Limits are smaller than the real ones so that inputs run fast.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "registry/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_zip: invariant failed: %s (%s:%d)\n", #cond, __FILE__,           \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct wisp__pkg_limits lim = {
    .zip_max = 1 << 20,
    .unzipped_max = 4 << 20,
    .entries_max = 1000,
};

static char parent[64]; /* holds "canary" and "work" */
static char *work;      /* holds nothing but, for a while, "out" */
static char *dest;
static char *canary;

static void cleanup_parent(void)
{
    if (parent[0] && wisp__package_remove(parent, NULL) < 0)
        fprintf(stderr, "fuzz_zip: cannot remove %s\n", parent);
}

static void setup(void)
{
    if (parent[0])
        return;
    snprintf(parent, sizeof parent, "/tmp/wisp-fuzz-zip-XXXXXX");
    FUZZ_CHECK(mkdtemp(parent) != NULL);
    work = xasprintf("%s/work", parent);
    dest = xasprintf("%s/out", work);
    canary = xasprintf("%s/canary", parent);
    FUZZ_CHECK(mkdir(work, 0700) == 0);
    FUZZ_CHECK(wisp_write_file(canary, "canary", 6, 0600, NULL) == 0);
    atexit(cleanup_parent);
}

/* Names in a folder other than "." and "..", up to max, into names. */
static int list(const char *dir, char names[][256], int max)
{
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n < max)
            snprintf(names[n], 256, "%s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

struct tally {
    uint64_t bytes;
    unsigned entries;
};

static void check_tree(int dirfd, int depth, struct tally *t)
{
    FUZZ_CHECK(depth <= WISP_PKG_DEPTH_MAX + 1);
    int fd = dup(dirfd);
    FUZZ_CHECK(fd >= 0);
    DIR *d = fdopendir(fd);
    FUZZ_CHECK(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        FUZZ_CHECK(fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
        t->entries++;
        if (S_ISREG(st.st_mode)) {
            FUZZ_CHECK((st.st_mode & 07777) == 0444 || (st.st_mode & 07777) == 0555);
            FUZZ_CHECK(st.st_nlink == 1);
            t->bytes += (uint64_t)st.st_size;
        } else {
            FUZZ_CHECK(S_ISDIR(st.st_mode));
            FUZZ_CHECK((st.st_mode & 07777) == 0555);
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            FUZZ_CHECK(sub >= 0);
            check_tree(sub, depth + 1, t);
            close(sub);
        }
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    wisp_err_t cerr, xerr;
    int crc = wisp__package_check_limits(data, size, &lim, &cerr);
    if (crc < 0)
        FUZZ_CHECK(cerr.code == WISP_EINVALID || cerr.code == WISP_ELIMIT);
    int xrc = wisp__package_extract_limits(data, size, dest, &lim, &xerr);
    if (xrc < 0) {
        if (xerr.code != WISP_EINVALID && xerr.code != WISP_ELIMIT)
            fprintf(stderr, "fuzz_zip: unexpected error: %s\n", xerr.msg);
        FUZZ_CHECK(xerr.code == WISP_EINVALID || xerr.code == WISP_ELIMIT);
    } else {
        FUZZ_CHECK(crc == 0);
    }

    char names[4][256];
    FUZZ_CHECK(list(parent, names, 4) == 2);
    char *text = NULL;
    size_t len = 0;
    FUZZ_CHECK(wisp_read_file(canary, 64, &text, &len, NULL) == 0);
    FUZZ_CHECK(len == 6 && memcmp(text, "canary", 6) == 0);
    free(text);
    int n = list(work, names, 4);
    if (xrc < 0) {
        FUZZ_CHECK(n == 0);
        return 0;
    }
    FUZZ_CHECK(n == 1 && strcmp(names[0], "out") == 0);
    struct stat st;
    FUZZ_CHECK(lstat(dest, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0555);
    int root = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    FUZZ_CHECK(root >= 0);
    struct tally t = {0, 0};
    check_tree(root, 0, &t);
    close(root);
    FUZZ_CHECK(t.bytes <= lim.unzipped_max);
    FUZZ_CHECK(t.entries <= lim.entries_max * (WISP_PKG_DEPTH_MAX + 1));
    FUZZ_CHECK(wisp__package_remove(dest, NULL) == 0);
    return 0;
}
