/*
 * exec_stem.c - the first program of an exec stem (src/sandbox/spawner.c,
 * "exec stems").
 *
 * An exec stem is a sandbox made ahead of need for one function version:
 * namespaces, cgroups with the function's limits, its code and runtime
 * mounted, unprivileged, seccomp loaded. Instead of the function's runtime it
 * runs this program, mounted at /var/runtime/exec-stem, which waits on
 * descriptor 3 (a stream socket to the spawner). When a request binds the
 * stem, the spawner writes the request's command line and environment; this
 * program closes descriptor 3 and execs them as soon as the whole message is
 * in (not at the spawner's close: that would be a second wake-up), so the
 * runtime starts exactly as the spawner's own exec would have started it.
 *
 * The message: its body's length (4 bytes, native byte order), then the body:
 * the argv entries, each NUL-terminated, an empty entry, the envp entries,
 * each NUL-terminated, and an empty entry. Anything else (end of file first:
 * the spawner dropped the stem or is gone; a short, long or malformed
 * message) ends the stem with status 1 and execs nothing.
 *
 * No C library: this program is exec'd once for every stem, and on the
 * virtual machines measured a static glibc start (relocations, cpuid traps,
 * page faults) costs about 1 ms more than this one. x86-64 and arm64 only.
 */

#define MSG_MAX (64 * 1024)       /* the spawner's largest message */
#define VEC_MAX (MSG_MAX / 2 + 4) /* entries are at least 2 bytes, separators 1 */
/* The message bytes whose pages are touched ahead (a typical request's
 * command line and environment are 1-3 KiB), and a quarter as many bytes of
 * vec (an entry pointer per 30-odd message bytes is far less). */
#define PRETOUCH_BYTES (8 * 1024)

#if defined(__x86_64__)
#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_EXECVE 59
#define SYS_EXIT_GROUP 231

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

/* The stack is 16-byte aligned at entry; C code wants it so before a call. */
__asm__(".text\n.globl _start\n_start:\n xor %ebp, %ebp\n mov %rsp, %rdi\n and $-16, %rsp\n"
        " call stem_main\n hlt\n");
#elif defined(__aarch64__)
#define SYS_READ 63
#define SYS_WRITE 64
#define SYS_CLOSE 57
#define SYS_EXECVE 221
#define SYS_EXIT_GROUP 94

static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}

__asm__(".text\n.globl _start\n_start:\n mov x29, #0\n mov x0, sp\n bl stem_main\n");
#else
#error "exec-stem: only x86-64 and arm64 are supported"
#endif

#define EINTR 4

static char buf[4 + MSG_MAX + 1]; /* the length, then the body and a NUL */
static char *const msg = buf + 4;
static char *vec[VEC_MAX];

/* Write a zero to each page of [p, p + n) (p's bytes are still all zero). */
static void pretouch(void *p, unsigned long n)
{
    unsigned long at = (unsigned long)p, end = at + n;
    for (; at < end; at = (at | 4095) + 1)
        *(volatile char *)at = 0;
}

__attribute__((noreturn)) static void leave(int code)
{
    for (;;)
        sys3(SYS_EXIT_GROUP, code, 0, 0);
}

static unsigned long length(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s)
{
    sys3(SYS_WRITE, 2, (long)s, (long)length(s));
}

/* Split msg[0..len) into vec: argv at vec[0], envp after argv's NULL.
 * Returns the index of envp, or -1 if the message is malformed. */
static long split(unsigned long len)
{
    unsigned long i = 0, n = 0;
    long envp = -1;
    for (int part = 0; part < 2; part++) {
        for (;;) {
            if (i >= len || n + 2 >= VEC_MAX)
                return -1;
            char *entry = msg + i;
            unsigned long k = length(entry);
            i += k + 1;
            if (k == 0)
                break;
            vec[n++] = entry;
        }
        vec[n++] = 0;
        if (part == 0)
            envp = (long)n;
    }
    /* Exactly the message: nothing after the second empty entry, and argv[0]. */
    return i == len && vec[0] != 0 ? envp : -1;
}

__attribute__((noreturn, used)) void stem_main(long *sp);

void stem_main(long *sp)
{
    (void)sp;
    /* Fault in now, while nothing waits, the pages a bind's message and its
     * split land in: a first touch costs 20 µs or more on the virtual
     * machines measured, and a bind would otherwise take two or three of
     * them (one inside read) between its wake-up and the exec. */
    pretouch(buf, PRETOUCH_BYTES);
    pretouch(vec, PRETOUCH_BYTES / 4);
    unsigned long got = 0, want = 0; /* bytes read; 4 + the body's length once known */
    while (want == 0 || got < want) {
        long r = sys3(SYS_READ, 3, (long)(buf + got), (long)(sizeof buf - 1 - got));
        if (r == -EINTR)
            continue;
        if (r < 0)
            leave(1);
        if (r == 0) {
            if (got == 0)
                leave(1); /* not bound: the spawner dropped the stem */
            say("wisp exec-stem: short message\n");
            leave(1);
        }
        got += (unsigned long)r;
        if (want == 0 && got >= 4) {
            unsigned int body;
            __builtin_memcpy(&body, buf, 4);
            if (body > MSG_MAX) {
                say("wisp exec-stem: message too long\n");
                leave(1);
            }
            want = 4 + (unsigned long)body;
        }
    }
    if (got != want) {
        say("wisp exec-stem: message too long\n");
        leave(1);
    }
    unsigned long len = want - 4;
    msg[len] = '\0';
    long envp = split(len);
    if (envp < 0) {
        say("wisp exec-stem: malformed message\n");
        leave(1);
    }
    sys3(SYS_CLOSE, 3, 0, 0);
    long r = sys3(SYS_EXECVE, (long)vec[0], (long)vec, (long)(vec + envp));
    say("wisp exec-stem: exec ");
    say(vec[0]);
    say(r == -2    ? ": no such file or folder\n"
        : r == -13 ? ": permission denied\n"
        : r == -8  ? ": exec format error\n"
                   : ": failed\n");
    leave(127);
}
