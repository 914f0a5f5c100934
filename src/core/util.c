/* util.c - allocation, cleanup helpers, time, randomness and file helpers. */
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "wisp: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return s;
}

void wisp__freep(void *p)
{
    free(*(void **)p);
}

void wisp__closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

void wisp__fclosep(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
}

void wisp__json_decrefp(json_t **j)
{
    json_decref(*j);
}

int64_t wisp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wisp_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fmt_time(int64_t ms, char out[32], const char *suffix)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, 20, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03d%.6s", (int)(ms % 1000), suffix);
}

void wisp_time_lambda(int64_t ms, char out[32])
{
    fmt_time(ms, out, "+0000");
}

void wisp_time_rfc3339(int64_t ms, char out[32])
{
    fmt_time(ms, out, "Z");
}

void wisp_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "wisp: getrandom failed: %s\n", strerror(errno));
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void wisp_hex(const void *data, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void wisp_uuid4(char out[37])
{
    unsigned char b[16];
    wisp_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    wisp_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

#define RANDOM_POOL 4096

void wisp_random_bytes_fast(void *buf, size_t n)
{
    static __thread unsigned char pool[RANDOM_POOL];
    static __thread size_t left; /* unused bytes at the end of pool */
    if (n > 256)
        abort(); /* a caller's bug: large amounts go through wisp_random_bytes */
    if (left < n) {
        wisp_random_bytes(pool, sizeof pool);
        left = sizeof pool;
    }
    unsigned char *src = pool + sizeof pool - left;
    memcpy(buf, src, n);
    memset(src, 0, n); /* bytes handed out do not stay in memory */
    left -= n;
}

void wisp_uuid7(char out[37])
{
    static __thread uint64_t last_ms;
    static __thread uint16_t seq; /* 12-bit counter within one millisecond */
    unsigned char b[16];
    wisp_random_bytes_fast(b + 6, 10);
    uint64_t ms = (uint64_t)wisp_now_ms();
    if (ms <= last_ms) {
        /* Same millisecond (or the clock stepped back): keep the order by
         * counting on from the last id; past 4096 ids, borrow the next ms. */
        ms = last_ms;
        if (++seq > 0x0fff) {
            ms++;
            seq = (uint16_t)(b[6] & 0x07);
        }
    } else {
        /* A new millisecond: start the counter low but random, so that ids
         * are not guessable from one another. */
        seq = (uint16_t)(((b[6] & 0x07) << 8) | b[7]);
    }
    last_ms = ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (seq >> 8));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    wisp_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int wisp_read_file(const char *path, size_t max, char **out, size_t *len, wisp_err_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return wisp_err_set(err, WISP_ENOTFOUND, "%s: no such file", path);
        return wisp_err_sys(err, errno, "open %s", path);
    }
    size_t cap = 4096, n = 0;
    cleanup_free char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1)
                return wisp_err_set(err, WISP_ELIMIT, "%s: larger than %zu bytes", path, max);
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return wisp_err_sys(err, errno, "read %s", path);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max)
            return wisp_err_set(err, WISP_ELIMIT, "%s: larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *out = steal_pointer(&buf);
    if (len)
        *len = n;
    return 0;
}

int wisp_write_file(const char *path, const void *data, size_t len, int mode, wisp_err_t *err)
{
    cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return wisp_err_sys(err, errno, "create %s", tmp);
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return wisp_err_sys(err, e, "write %s", tmp);
        }
        p += w;
        len -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return wisp_err_sys(err, e, "sync %s", tmp);
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return wisp_err_sys(err, e, "rename %s", path);
    }
    return 0;
}

int wisp_mkdir_p(const char *path, int mode, wisp_err_t *err)
{
    cleanup_free char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
            return wisp_err_sys(err, errno, "mkdir %s", p);
        *s = '/';
    }
    if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
        return wisp_err_sys(err, errno, "mkdir %s", p);
    return 0;
}

static int rm_at(int parent, const char *name, wisp_err_t *err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : wisp_err_sys(err, errno, "stat %s", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
            return wisp_err_sys(err, errno, "unlink %s", name);
        return 0;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return wisp_err_sys(err, errno, "open %s", name);
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return wisp_err_sys(err, errno, "opendir %s", name);
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (rm_at(dirfd(d), de->d_name, err) < 0) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return wisp_err_sys(err, errno, "rmdir %s", name);
    return rc;
}

int wisp_rm_rf(const char *path, wisp_err_t *err)
{
    return rm_at(AT_FDCWD, path, err);
}

bool wisp_streq_ci(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}
