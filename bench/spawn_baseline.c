/*
 * spawn_baseline.c - the "no platform" baseline of wisp's benchmarks: starts a
 * program N times, one after the other, and times each start from just before
 * the spawn to the moment wait() returns its exit status.
 *
 * This is what a process start costs on the machine without any isolation:
 * posix_spawn (glibc uses clone(CLONE_VM|CLONE_VFORK), so the parent's size
 * does not matter) + execve + the program's own start and exit + wait. The
 * benchmarks compare wisp's cold starts with it, measured in the same run.
 *
 * The program gets an empty environment (what `env -i` gives, without the
 * extra exec of env itself) unless -i is given; -e NAME=VALUE adds variables.
 * Its stdin, stdout and stderr are /dev/null unless -v. "%i" in an argument is
 * replaced by the iteration number (unique container names for crun).
 *
 * With -P (burst) the N runs are started back to back without waiting, then
 * all are reaped: the latency of each is from the start of the burst to its
 * exit, and the elapsed time is how long N process starts take at once.
 * -o writes every latency (microseconds, one a line) to a file.
 *
 * With -a (Runtime API) the program is a Lambda runtime: it gets
 * AWS_LAMBDA_RUNTIME_API pointing at a listener of this tool on loopback,
 * which answers its first GET /next with the event {} and its POST /response
 * with 202; a run lasts from just before the spawn to that 202, then the
 * program is killed. That is a cold start of the same bootstrap with no
 * platform and no isolation at all: the floor of wisp's cold start.
 *
 * -p USEC pauses that long before each run (not with -P): what the cold-start
 * benchmark leaves between invocations, so the floor meets the same idle CPU.
 *
 *   spawn_baseline [-n runs] [-w warmup] [-m spawn|fork] [-P | -a] [-p usec] [-i]
 *                  [-e NAME=VALUE]... [-v] [-o latencies.txt] [-j] -- program [args...]
 *
 * Exit status 1 if any run of the program failed (non-zero exit or a signal;
 * with -a: no answer over the Runtime API within 10 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENV 64
#define MAX_ARGS 64

extern char **environ;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values by the nearest-rank method. */
static size_t rank(size_t n, double q)
{
    size_t r = (size_t)ceil(q * (double)n);
    return r == 0 ? 0 : r - 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: spawn_baseline [-n runs] [-w warmup] [-m spawn|fork] [-P | -a] [-p usec] "
            "[-i] [-e NAME=VALUE]... [-v] [-o FILE] [-j] -- program [args...]\n");
    exit(2);
}

/* Replaces every "%i" in the template by i; the result is in buf. */
static const char *subst(const char *tmpl, long i, char *buf, size_t cap)
{
    const char *p = strstr(tmpl, "%i");
    if (p == NULL)
        return tmpl;
    size_t used = 0;
    while (p != NULL && used < cap) {
        used += (size_t)snprintf(buf + used, cap - used, "%.*s%ld", (int)(p - tmpl), tmpl, i);
        tmpl = p + 2;
        p = strstr(tmpl, "%i");
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "%s", tmpl);
    return buf;
}

/* Starts the program once; returns its pid or -1. */
static pid_t start_one(bool use_fork, char *const argv[], char *const envp[], bool verbose)
{
    pid_t pid;
    if (use_fork) {
        pid = fork();
        if (pid == 0) {
            if (!verbose) {
                int fd = open("/dev/null", O_RDWR);
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execve(argv[0], argv, envp);
            _exit(127);
        }
        if (pid < 0)
            return -1;
    } else {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        if (!verbose) {
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
            posix_spawn_file_actions_adddup2(&fa, 1, 2);
        }
        int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
            errno = rc;
            return -1;
        }
    }
    return pid;
}

/* Waits for pid (or any child when pid is -1); returns its pid, status in *status. */
static pid_t reap(pid_t pid, int *status)
{
    pid_t r;
    while ((r = waitpid(pid, status, 0)) < 0)
        if (errno != EINTR)
            return -1;
    return r;
}

/* Records the latency of the burst member pid among the n started so far. */
static void burst_done(const pid_t *pids, long n, uint64_t *lat, pid_t pid, uint64_t ns)
{
    for (long i = 0; i < n; i++)
        if (pids[i] == pid)
            lat[i] = ns;
}

/* ---- -a: one invocation over the Runtime API ---- */

/* Read from fd into buf (cap bytes) until a whole request (head and a body of
 * Content-Length bytes) is there; false on error, end of stream or timeout. */
static bool read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            size_t body = 0;
            for (char *h = buf; h < end; h++)
                if (strncasecmp(h, "\ncontent-length:", 16) == 0)
                    body = strtoul(h + 16, NULL, 10);
            if (len >= (size_t)(end + 4 - buf) + body)
                return true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (len + 1 >= cap || poll(&p, 1, 10000) != 1)
            return false;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
    }
}

static bool write_all(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* Serve the runtime's first invocation: true once its answer got the 202. */
static bool serve_one(int listener)
{
    struct pollfd p = {.fd = listener, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
        return false;
    int c = accept(listener, NULL, NULL);
    if (c < 0)
        return false;
    char buf[16384], event[512];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long long deadline = (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + 60000;
    snprintf(event, sizeof event,
             "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: baseline-1\r\n"
             "Lambda-Runtime-Deadline-Ms: %lld\r\n"
             "Lambda-Runtime-Invoked-Function-Arn: "
             "arn:aws:lambda:us-east-1:000000000000:function:baseline\r\n"
             "Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
             deadline);
    bool ok =
        read_request(c, buf, sizeof buf) && strncmp(buf, "GET ", 4) == 0 && write_all(c, event);
    /* The runtime may answer on this connection or on a new one. */
    int answer = c;
    if (ok && !read_request(c, buf, sizeof buf)) {
        p.revents = 0;
        answer = poll(&p, 1, 10000) == 1 ? accept(listener, NULL, NULL) : -1;
        ok = answer >= 0 && read_request(answer, buf, sizeof buf);
    }
    ok = ok && strncmp(buf, "POST ", 5) == 0 && strstr(buf, "/response") != NULL &&
         write_all(answer, "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                           "Content-Length: 16\r\n\r\n{\"status\":\"OK\"}\n");
    if (answer != c && answer >= 0)
        close(answer);
    close(c);
    return ok;
}

/* Close the connections still queued on the listener: a runtime killed right
 * after its answer may have opened one (to send its next GET /next) that the
 * next run must not take for its own. */
static void drain_backlog(int listener)
{
    struct pollfd p = {.fd = listener, .events = POLLIN};
    while (poll(&p, 1, 0) == 1) {
        int c = accept(listener, NULL, NULL);
        if (c < 0)
            break;
        close(c);
    }
}

/* A loopback listener on a free port; its "AWS_LAMBDA_RUNTIME_API=..." in env. */
static int api_listener(char *env, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    snprintf(env, cap, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

int main(int argc, char **argv)
{
    long runs = 100, warmup = 3, pause_us = 0;
    bool use_fork = false, inherit = false, verbose = false, json = false, burst = false;
    bool api = false;
    const char *raw_out = NULL;
    char *env[MAX_ENV + 1];
    int nenv = 0;
    int ch;
    while ((ch = getopt(argc, argv, "+n:w:m:Pap:ie:vo:j")) != -1) {
        switch (ch) {
        case 'n': runs = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'm':
            if (strcmp(optarg, "fork") == 0)
                use_fork = true;
            else if (strcmp(optarg, "spawn") != 0)
                usage();
            break;
        case 'P': burst = true; break;
        case 'a': api = true; break;
        case 'p':
            pause_us = atol(optarg);
            if (pause_us < 0 || pause_us > 10000000)
                usage();
            break;
        case 'i': inherit = true; break;
        case 'e':
            if (nenv == MAX_ENV)
                usage();
            env[nenv++] = optarg;
            break;
        case 'v': verbose = true; break;
        case 'o': raw_out = optarg; break;
        case 'j': json = true; break;
        default: usage();
        }
    }
    if (optind >= argc || runs < 1 || warmup < 0 || argc - optind > MAX_ARGS || (api && burst) ||
        (burst && pause_us > 0))
        usage();
    if (inherit)
        for (char **e = environ; *e != NULL && nenv < MAX_ENV - 1; e++)
            env[nenv++] = *e;
    char api_env[64];
    int listener = -1;
    if (api) {
        if (nenv == MAX_ENV || (listener = api_listener(api_env, sizeof api_env)) < 0) {
            fprintf(stderr, "spawn_baseline: Runtime API listener: %s\n", strerror(errno));
            return 2;
        }
        env[nenv++] = api_env;
    }
    env[nenv] = NULL;

    int nargs = argc - optind;
    char *args[MAX_ARGS + 1];
    char bufs[MAX_ARGS][512];
    uint64_t *lat = calloc((size_t)runs, sizeof(*lat));
    pid_t *pids = calloc((size_t)runs, sizeof(*pids));
    if (lat == NULL || pids == NULL)
        return 2;
    long failed = 0, reaped = 0;
    int last_status = 0, status;
    uint64_t t_first = 0, t_last = 0;
    for (long i = -warmup; i < runs; i++) {
        for (int a = 0; a < nargs; a++)
            args[a] = (char *)subst(argv[optind + a], i + warmup, bufs[a], sizeof(bufs[a]));
        args[nargs] = NULL;
        if (api)
            drain_backlog(listener); /* the previous run's process is reaped: none can come */
        if (pause_us > 0)
            usleep((useconds_t)pause_us);
        uint64_t t0 = now_ns();
        if (burst && i >= 0 && t_first == 0)
            t_first = t0;
        pid_t pid = start_one(use_fork, args, env, verbose);
        if (pid < 0) {
            fprintf(stderr, "spawn_baseline: %s: %s\n", args[0], strerror(errno));
            return 2;
        }
        if (burst && i >= 0) {
            pids[i] = pid;
            /* Reap what already ended, so each latency is close to its exit. */
            pid_t r;
            while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
                t_last = now_ns();
                burst_done(pids, i + 1, lat, r, t_last - t_first);
                reaped++;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    failed++;
                    last_status = status;
                }
            }
            continue;
        }
        bool served = true;
        uint64_t t1 = 0;
        if (api) {
            served = serve_one(listener);
            t1 = now_ns();
            kill(pid, SIGKILL);
        }
        if (reap(pid, &status) < 0)
            return 2;
        if (!api)
            t1 = now_ns();
        if (api) /* killed by us once answered: only the answer counts */
            status = served ? 0 : status ? status : 1;
        if (i < 0)
            continue;
        if (t_first == 0)
            t_first = t0;
        t_last = t1;
        lat[i] = t1 - t0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            last_status = status;
        }
    }
    for (long done = reaped; burst && done < runs; done++) {
        pid_t pid = reap(-1, &status);
        if (pid < 0)
            return 2;
        t_last = now_ns();
        burst_done(pids, runs, lat, pid, t_last - t_first);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            last_status = status;
        }
    }
    qsort(lat, (size_t)runs, sizeof(*lat), cmp_u64);
    double sum = 0;
    for (long i = 0; i < runs; i++)
        sum += (double)lat[i];
    size_t n = (size_t)runs;
    if (raw_out != NULL) {
        FILE *f = fopen(raw_out, "w");
        if (f == NULL) {
            fprintf(stderr, "spawn_baseline: %s: %s\n", raw_out, strerror(errno));
            return 2;
        }
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%.1f\n", (double)lat[i] / 1e3);
        fclose(f);
    }
#define Q(q) ((double)lat[rank(n, q)] / 1e3)
    double elapsed = (double)(t_last - t_first) / 1e9;
    if (json)
        printf("{\"runs\":%ld,\"failed\":%ld,\"elapsed_s\":%.6f,\"rps\":%.1f,\"lat_us\":{\"min\":%."
               "1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"mean\":%.1f}}\n",
               runs, failed, elapsed, elapsed > 0 ? (double)runs / elapsed : 0.0, Q(0.0), Q(0.5),
               Q(0.9), Q(0.99), Q(1.0), sum / (double)n / 1e3);
    else
        printf("%ld runs of %s in %.3f s: us p50 %.1f p90 %.1f p99 %.1f max %.1f; %ld failed\n",
               runs, argv[optind], elapsed, Q(0.5), Q(0.9), Q(0.99), Q(1.0), failed);
    if (failed > 0)
        fprintf(stderr, "spawn_baseline: %ld of %ld runs failed (last wait status 0x%x)\n", failed,
                runs, (unsigned)last_status);
    free(lat);
    free(pids);
    return failed > 0 ? 1 : 0;
}
