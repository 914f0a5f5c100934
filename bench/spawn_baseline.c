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
 *   spawn_baseline [-n runs] [-w warmup] [-m spawn|fork] [-P] [-i] [-e NAME=VALUE]...
 *                  [-v] [-o latencies.txt] [-j] -- program [args...]
 *
 * Exit status 1 if any run of the program failed (non-zero exit or a signal).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    fprintf(stderr, "usage: spawn_baseline [-n runs] [-w warmup] [-m spawn|fork] [-i] "
                    "[-e NAME=VALUE]... [-v] [-j] -- program [args...]\n");
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

int main(int argc, char **argv)
{
    long runs = 100, warmup = 3;
    bool use_fork = false, inherit = false, verbose = false, json = false, burst = false;
    const char *raw_out = NULL;
    char *env[MAX_ENV + 1];
    int nenv = 0;
    int ch;
    while ((ch = getopt(argc, argv, "+n:w:m:Pie:vo:j")) != -1) {
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
    if (optind >= argc || runs < 1 || warmup < 0 || argc - optind > MAX_ARGS)
        usage();
    if (inherit)
        for (char **e = environ; *e != NULL && nenv < MAX_ENV; e++)
            env[nenv++] = *e;
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
        if (reap(pid, &status) < 0)
            return 2;
        uint64_t t1 = now_ns();
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
