/* test_package.c - unit tests for code package checks and safe extraction,
 * with hostile zips built here by libarchive's writer (and patched by hand
 * where the writer refuses to produce what an attacker could). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TAP_TIMEOUT 120
#include "core/util.h"
#include "registry/internal.h"
#include "tap.h"

/* ---- building zips in memory ---- */

struct zb {
    struct archive *a;
    char *buf;
    size_t cap, used;
};

static void zb_open(struct zb *z, size_t cap)
{
    z->buf = xmalloc(cap);
    z->cap = cap;
    z->used = 0;
    z->a = archive_write_new();
    CHECK(archive_write_set_format_zip(z->a) == ARCHIVE_OK);
    CHECK(archive_write_open_memory(z->a, z->buf, cap, &z->used) == ARCHIVE_OK);
}

/* Add an entry: type AE_IFREG/AE_IFDIR/AE_IFLNK; link is the symlink target
 * or hard-link source. */
static void zb_entry(struct zb *z, const char *name, unsigned type, unsigned perm, const void *data,
                     size_t len, const char *symlink, const char *hardlink)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_size(e, (la_int64_t)len);
    if (symlink)
        archive_entry_set_symlink(e, symlink);
    if (hardlink)
        archive_entry_set_hardlink(e, hardlink);
    int rc = archive_write_header(z->a, e);
    if (rc != ARCHIVE_OK)
        fprintf(stderr, "# write header %s: %s\n", name, archive_error_string(z->a));
    CHECK(rc == ARCHIVE_OK);
    if (len > 0)
        CHECK(archive_write_data(z->a, data, len) == (la_ssize_t)len);
    archive_entry_free(e);
}

static void zb_file(struct zb *z, const char *name, unsigned perm, const char *text)
{
    zb_entry(z, name, AE_IFREG, perm, text, strlen(text), NULL, NULL);
}

/* A file of n zero bytes, written in chunks (compresses about 1000:1). */
static void zb_zeros(struct zb *z, const char *name, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)n);
    CHECK(archive_write_header(z->a, e) == ARCHIVE_OK);
    size_t chunk = 1 << 20;
    char *zero = xcalloc(1, chunk);
    for (size_t done = 0; done < n; done += chunk) {
        size_t k = n - done < chunk ? n - done : chunk;
        CHECK(archive_write_data(z->a, zero, k) == (la_ssize_t)k);
    }
    free(zero);
    archive_entry_free(e);
}

static void zb_close(struct zb *z)
{
    CHECK(archive_write_close(z->a) == ARCHIVE_OK);
    archive_write_free(z->a);
    z->a = NULL;
}

/* Set the Unix mode of the central-directory record of entry name: what an
 * attacker writes to smuggle a device or socket past a zip writer. */
static void zb_patch_mode(struct zb *z, const char *name, uint32_t mode)
{
    size_t nlen = strlen(name);
    bool patched = false;
    for (size_t i = 0; i + 46 + nlen <= z->used; i++) {
        unsigned char *p = (unsigned char *)z->buf + i;
        if (memcmp(p, "PK\1\2", 4) != 0)
            continue;
        size_t fl = (size_t)p[28] | (size_t)p[29] << 8;
        if (fl != nlen || memcmp(p + 46, name, nlen) != 0)
            continue;
        p[5] = 3; /* made by Unix: the mode is in the high half of the attributes */
        p[40] = (unsigned char)(mode & 0xff);
        p[41] = (unsigned char)(mode >> 8);
        patched = true;
    }
    CHECK(patched);
}

/* ---- temporary folders ---- */

static char base[64];

static void make_base(void)
{
    snprintf(base, sizeof base, "/tmp/wisp-pkg-XXXXXX");
    CHECK(mkdtemp(base) != NULL);
}

static char *in_base(const char *name)
{
    return xasprintf("%s/%s", base, name);
}

/* Entries of the base folder other than "." and ".." (extraction must never
 * leave anything there but its destination). */
static int base_entries(void)
{
    DIR *d = opendir(base);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void remove_base(void)
{
    CHECK(wisp__package_remove(base, NULL) == 0);
}

/* Extraction must fail with code; nothing may be left behind. */
static void expect_reject(struct zb *z, wisp_errcode_t code, const char *msg_part)
{
    make_base();
    cleanup_free char *dest = in_base("out");
    wisp_err_t err;
    CHECK(wisp_package_extract(z->buf, z->used, dest, &err) == -1);
    if (err.code != code || (msg_part && strstr(err.msg, msg_part) == NULL))
        fprintf(stderr, "# got code %d: %s\n", err.code, err.msg);
    CHECK_INT(err.code, code);
    if (msg_part)
        CHECK(strstr(err.msg, msg_part) != NULL);
    CHECK(access(dest, F_OK) != 0);
    CHECK_INT(base_entries(), 0);
    wisp_err_t cerr;
    CHECK(wisp_package_check(z->buf, z->used, &cerr) == -1);
    remove_base();
}

static void check_mode(const char *path, unsigned type, unsigned perm)
{
    struct stat st;
    CHECK(lstat(path, &st) == 0);
    if ((st.st_mode & S_IFMT) != type || (st.st_mode & 07777) != perm)
        fprintf(stderr, "# %s: mode %o\n", path, st.st_mode);
    CHECK((st.st_mode & S_IFMT) == type);
    CHECK_INT(st.st_mode & 07777, perm);
}

TEST(normal_package_keeps_modes)
{
    struct zb z;
    zb_open(&z, 1 << 20);
    zb_file(&z, "bootstrap", 0755, "#!/bin/sh\necho hi\n");
    zb_entry(&z, "lib/", AE_IFDIR, 0700, NULL, 0, NULL, NULL);
    zb_file(&z, "lib/helper.txt", 0666, "help");
    zb_file(&z, "deep/er/still/x.py", 0600, "x = 1\n"); /* folders without entries */
    zb_file(&z, "./dot/./y", 0644, "y");
    zb_close(&z);
    wisp_err_t err;
    CHECK(wisp_package_check(z.buf, z.used, &err) == 0);

    make_base();
    cleanup_free char *dest = in_base("out");
    int rc = wisp_package_extract(z.buf, z.used, dest, &err);
    if (rc != 0)
        fprintf(stderr, "# extract: %s\n", err.msg);
    CHECK(rc == 0);
    CHECK_INT(base_entries(), 1);
    cleanup_free char *boot = xasprintf("%s/bootstrap", dest);
    cleanup_free char *helper = xasprintf("%s/lib/helper.txt", dest);
    cleanup_free char *lib = xasprintf("%s/lib", dest);
    cleanup_free char *x = xasprintf("%s/deep/er/still/x.py", dest);
    cleanup_free char *still = xasprintf("%s/deep/er/still", dest);
    cleanup_free char *y = xasprintf("%s/dot/y", dest);
    check_mode(dest, S_IFDIR, 0555);
    check_mode(boot, S_IFREG, 0555);
    check_mode(lib, S_IFDIR, 0555);
    check_mode(helper, S_IFREG, 0444);
    check_mode(still, S_IFDIR, 0555);
    check_mode(x, S_IFREG, 0444);
    check_mode(y, S_IFREG, 0444);
    char *data;
    size_t len;
    CHECK(wisp_read_file(boot, 100, &data, &len, NULL) == 0);
    CHECK_STR(data, "#!/bin/sh\necho hi\n");
    free(data);

    /* An unprivileged user (what sandboxes run as) can read and run it. */
    if (geteuid() == 0) {
        CHECK(chmod(base, 0755) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) < 0 || setuid(65534) < 0)
                _exit(10);
            if (access(boot, X_OK) != 0 || access(helper, R_OK) != 0)
                _exit(11);
            if (access(helper, W_OK) == 0)
                _exit(12);
            cleanup_free char *cmd = xasprintf("%s >/dev/null", boot);
            _exit(system(cmd) == 0 ? 0 : 13);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st));
        CHECK_INT(WEXITSTATUS(st), 0);
    }

    /* The destination must not exist. */
    CHECK(wisp_package_extract(z.buf, z.used, dest, &err) == -1);
    CHECK_INT(err.code, WISP_ECONFLICT);
    /* Read-only trees can be removed. */
    CHECK(wisp__package_remove(dest, &err) == 0);
    CHECK(access(dest, F_OK) != 0);
    remove_base();
    free(z.buf);
}

TEST(rejects_path_traversal)
{
    const char *names[] = {"../x", "a/../../x", "a/..", "/abs", "/etc/cron.d/x", "ok/../../../x"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(names); i++) {
        struct zb z;
        zb_open(&z, 1 << 16);
        zb_file(&z, "fine", 0644, "fine");
        zb_file(&z, names[i], 0644, "evil");
        zb_close(&z);
        expect_reject(&z, WISP_EINVALID, names[i][0] == '/' ? "absolute" : "..");
        free(z.buf);
    }
}

TEST(rejects_symlinks)
{
    const char *targets[] = {"/etc/passwd", "../../x", "inside"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(targets); i++) {
        struct zb z;
        zb_open(&z, 1 << 16);
        zb_file(&z, "inside", 0644, "x");
        zb_entry(&z, "link", AE_IFLNK, 0777, NULL, 0, targets[i], NULL);
        zb_file(&z, "link/through", 0644, "evil");
        zb_close(&z);
        expect_reject(&z, WISP_EINVALID, "symbolic link");
        free(z.buf);
    }
    /* The same smuggled in through the central directory's mode. */
    struct zb z;
    zb_open(&z, 1 << 16);
    zb_file(&z, "l", 0644, "/etc/shadow");
    zb_close(&z);
    zb_patch_mode(&z, "l", S_IFLNK | 0777);
    expect_reject(&z, WISP_EINVALID, "symbolic link");
    free(z.buf);
}

TEST(hard_links_never_alias)
{
    /* Zip cannot express hard links: libarchive writes the entry as a plain
     * (empty) file. Make sure it comes out as an independent file and never as
     * a second name of another file (the reader-side refusal is exercised by
     * formats that have links; zip is the only one enabled). */
    struct zb z;
    zb_open(&z, 1 << 16);
    zb_file(&z, "target", 0644, "secret");
    zb_entry(&z, "alias", AE_IFREG, 0644, NULL, 0, NULL, "target");
    zb_close(&z);
    make_base();
    cleanup_free char *dest = in_base("out");
    wisp_err_t err;
    CHECK(wisp_package_extract(z.buf, z.used, dest, &err) == 0);
    cleanup_free char *alias = xasprintf("%s/alias", dest);
    cleanup_free char *target = xasprintf("%s/target", dest);
    struct stat a, t;
    CHECK(lstat(alias, &a) == 0 && lstat(target, &t) == 0);
    CHECK(S_ISREG(a.st_mode));
    CHECK_INT(a.st_nlink, 1);
    CHECK_INT(t.st_nlink, 1);
    CHECK(a.st_ino != t.st_ino);
    remove_base();
    free(z.buf);
}

TEST(rejects_devices_and_sockets)
{
    const uint32_t modes[] = {S_IFCHR | 0666, S_IFBLK | 0660, S_IFSOCK | 0777};
    for (size_t i = 0; i < WISP_ARRAY_LEN(modes); i++) {
        struct zb z;
        zb_open(&z, 1 << 16);
        zb_file(&z, "ok", 0644, "ok");
        zb_file(&z, "dev", 0644, "xx");
        zb_close(&z);
        zb_patch_mode(&z, "dev", modes[i]);
        expect_reject(&z, WISP_EINVALID, "not a regular file");
        free(z.buf);
    }
    /* libarchive turns a fifo mode into a regular file: it must come out as one. */
    struct zb z;
    zb_open(&z, 1 << 16);
    zb_file(&z, "fifo", 0644, "xx");
    zb_close(&z);
    zb_patch_mode(&z, "fifo", S_IFIFO | 0644);
    make_base();
    cleanup_free char *dest = in_base("out");
    wisp_err_t err;
    if (wisp_package_extract(z.buf, z.used, dest, &err) == 0) {
        cleanup_free char *f = xasprintf("%s/fifo", dest);
        check_mode(f, S_IFREG, 0444);
    } else {
        CHECK_INT(err.code, WISP_EINVALID);
    }
    remove_base();
    free(z.buf);
}

TEST(entry_limit)
{
    /* One entry past the limit is refused (after extracting the others,
     * which must then be cleaned away)... */
    struct zb z;
    zb_open(&z, 16 << 20);
    for (int i = 0; i <= WISP_ZIP_ENTRIES_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d/f%d", i % 50, i);
        zb_entry(&z, name, AE_IFREG, 0644, NULL, 0, NULL, NULL);
    }
    zb_close(&z);
    expect_reject(&z, WISP_ELIMIT, "more than 20000 entries");
    free(z.buf);

    /* ...and exactly the limit passes. */
    zb_open(&z, 16 << 20);
    for (int i = 0; i < WISP_ZIP_ENTRIES_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        zb_entry(&z, name, AE_IFREG, 0644, NULL, 0, NULL, NULL);
    }
    zb_close(&z);
    wisp_err_t err;
    CHECK(wisp_package_check(z.buf, z.used, &err) == 0);
    free(z.buf);
}

TEST(zip_bomb_small_limits)
{
    struct wisp__pkg_limits lim = {.zip_max = 1 << 20, .unzipped_max = 1 << 20, .entries_max = 100};
    /* One highly compressible file past the limit. */
    struct zb z;
    zb_open(&z, 1 << 20);
    zb_file(&z, "small", 0644, "s");
    zb_zeros(&z, "bomb", 4 << 20);
    zb_close(&z);
    CHECK(z.used < 64 * 1024);
    make_base();
    cleanup_free char *dest = in_base("out");
    wisp_err_t err;
    CHECK(wisp__package_extract_limits(z.buf, z.used, dest, &lim, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK_STR(err.msg, "package expands to more than 1 MiB");
    CHECK(access(dest, F_OK) != 0);
    CHECK_INT(base_entries(), 0);
    CHECK(wisp__package_check_limits(z.buf, z.used, &lim, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    free(z.buf);

    /* Many files each under the limit, together over it. */
    zb_open(&z, 1 << 20);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "part%d", i);
        zb_zeros(&z, name, 300 << 10);
    }
    zb_close(&z);
    CHECK(wisp__package_extract_limits(z.buf, z.used, dest, &lim, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK_INT(base_entries(), 0);
    /* The same package is fine under the real limits. */
    CHECK(wisp_package_extract(z.buf, z.used, dest, &err) == 0);
    remove_base();
    free(z.buf);

    /* The zip itself too large. */
    struct wisp__pkg_limits tiny = {.zip_max = 100, .unzipped_max = 1 << 20, .entries_max = 10};
    zb_open(&z, 1 << 16);
    zb_file(&z, "a", 0644, "0123456789012345678901234567890123456789");
    zb_file(&z, "b", 0644, "0123456789012345678901234567890123456789");
    zb_close(&z);
    CHECK(z.used > 100);
    CHECK(wisp__package_check_limits(z.buf, z.used, &tiny, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK(strstr(err.msg, "zipped") != NULL);
    free(z.buf);
}

TEST(zip_bomb_real_limits)
{
    /* 251 MiB of zeros in a ~250 KiB zip: refused by the real 250 MiB limit
     * while inflating. */
    struct zb z;
    zb_open(&z, 4 << 20);
    zb_zeros(&z, "bomb", (size_t)251 << 20);
    zb_close(&z);
    CHECK(z.used < (1 << 20));
    wisp_err_t err;
    CHECK(wisp_package_check(z.buf, z.used, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK_STR(err.msg, "package expands to more than 250 MiB");
    free(z.buf);
    /* A zip over 50 MiB is refused before it is parsed. */
    size_t big = WISP_ZIP_MAX + 1;
    char *junk = xcalloc(1, big);
    CHECK(wisp_package_check(junk, big, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK_STR(err.msg, "package is larger than 50 MiB zipped");
    free(junk);
}

TEST(rejects_garbage)
{
    wisp_err_t err;
    static const char text[] = "this is not a zip file at all, just some text";
    CHECK(wisp_package_check(text, sizeof text, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK(strstr(err.msg, "not a valid zip") != NULL);
    CHECK(wisp_package_check("", 0, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);

    struct zb z;
    zb_open(&z, 1 << 16);
    /* Pseudo-random bytes, so that deflate stores them nearly as they are. */
    char data[4096];
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof data; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (char)(seed >> 16);
    }
    zb_entry(&z, "data.txt", AE_IFREG, 0644, data, sizeof data, NULL, NULL);
    zb_close(&z);
    CHECK(wisp_package_check(z.buf, z.used, &err) == 0);
    /* Cut in half. */
    struct zb half = z;
    half.used = z.used / 2;
    expect_reject(&half, WISP_EINVALID, NULL);
    /* Damaged compressed data (the CRC no longer matches). */
    char *copy = xmalloc(z.used);
    memcpy(copy, z.buf, z.used);
    CHECK(z.used > 3000);
    for (size_t i = 1000; i < 1100; i++)
        copy[i] ^= 0x5a;
    struct zb bad = {.buf = copy, .used = z.used};
    expect_reject(&bad, WISP_EINVALID, NULL);
    free(copy);
    free(z.buf);
}

TEST(rejects_duplicates_and_clashes)
{
    struct zb z;
    zb_open(&z, 1 << 16);
    zb_file(&z, "a", 0644, "one");
    zb_file(&z, "a", 0644, "two");
    zb_close(&z);
    make_base();
    cleanup_free char *dest = in_base("out");
    wisp_err_t err;
    CHECK(wisp_package_extract(z.buf, z.used, dest, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK(strstr(err.msg, "two entries") != NULL);
    CHECK_INT(base_entries(), 0);
    free(z.buf);

    zb_open(&z, 1 << 16);
    zb_file(&z, "a", 0644, "file");
    zb_file(&z, "a/b", 0644, "under a file");
    zb_close(&z);
    CHECK(wisp_package_extract(z.buf, z.used, dest, &err) == -1);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK_INT(base_entries(), 0);
    remove_base();
    free(z.buf);
}

TEST(sha256_and_names)
{
    char hex[65];
    wisp__sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(wisp__is_sha256_hex(hex, 64));
    CHECK(!wisp__is_sha256_hex(hex, 63));
    hex[3] = 'G';
    CHECK(!wisp__is_sha256_hex(hex, 64));
}

TAP_MAIN(CASE(normal_package_keeps_modes), CASE(rejects_path_traversal), CASE(rejects_symlinks),
         CASE(hard_links_never_alias), CASE(rejects_devices_and_sockets), CASE(entry_limit),
         CASE(zip_bomb_small_limits), CASE(zip_bomb_real_limits), CASE(rejects_garbage),
         CASE(rejects_duplicates_and_clashes), CASE(sha256_and_names))
