/*
 * sandbox_rate.c - wisp's sandboxes without the platform: created back to
 * back by wisp's spawner, with no daemon and no client.
 *
 * The env creation rate benchmark compares wisp (create an env, invoke it,
 * retire it) with bare spawn+exec+wait loops of the same binary. This tool is
 * the step between the two: it links the daemon's sandbox module (as the
 * daemon does: the spawner forked before any thread, its pools of network
 * namespaces and cgroups, network namespace reuse and exec stems, all as
 * configured by default), and keeps C sandboxes in flight, each running the
 * program with exactly the given environment and the limits the daemon gives
 * a 128 MB `provided` function, until N have ended. A sandbox counts from the
 * spawn request to its exit callback (its processes gone, its cgroups
 * removed). Without -a the descriptors a sandbox hands over are closed at
 * once, as the program is expected to exit without using them (the suite runs
 * the no-op bootstrap with WISP_BENCH_EXIT=1). With -a this tool serves each
 * sandbox's listener as a minimal Runtime API: the first GET .../next gets
 * the event {}, the first POST gets 202, and the program is expected to exit
 * after that (the no-op bootstrap with WISP_BENCH_ONESHOT=1 and
 * AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001): the isolation and one invocation's
 * own work in the env, without the daemon or a client.
 *
 *   sandbox_rate [-c C] [-n N] [-m MB] [-a] [-e NAME=VALUE]... [-j] [-o latencies.txt]
 *                -- CODE_DIR PROGRAM
 *
 * -m sets the memory limit (default 128 MB, as the suite's function; 0: none,
 * so no memory group), for measuring what the limit itself costs.
 *
 * CODE_DIR is mounted at /var/task; PROGRAM is the path inside the sandbox
 * (e.g. /var/task/noop-bootstrap). Prints the count, elapsed seconds and rate
 * (with -j as one JSON line); -o writes each sandbox's latency in
 * microseconds, one a line. The machine CPU per sandbox is measured by the
 * caller (bench.py reads /proc/stat around the run). Needs root; exits 1 if
 * any sandbox failed to start, ended with a status other than 0 or (-a) ended
 * before its invocation was answered.
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sandbox/sandbox.h"

#define MAX_ENV 32

struct run {
    wisp_sandbox_t *sb;
    uv_loop_t *loop;
    const char *code_dir;
    const char *argv[2];
    const char *envp[MAX_ENV + 1];
    int conns, total;
    unsigned memory_mb; /* -m: the sandboxes' memory limit; 0: none */
    bool serve;         /* -a */
    int started, ended, failed;
    int stems; /* sandboxes that were exec stems, bound (the rest were built per request) */
    uint64_t t0_ns;
    uint64_t *start_ns; /* by sandbox number */
    double *lat_us;     /* by order of ending */
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void start_one(struct run *r);

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* One sandbox of a run; with -a, its Runtime API (one connection, two requests). */
struct sbox {
    struct run *r;
    int k;
    int api_fd, conn_fd;    /* -1 when closed */
    uv_poll_t lpoll, cpoll; /* on api_fd, on conn_fd */
    int open_handles;       /* freed when 0 and ended */
    bool ended;
    int answered; /* requests answered: 2 = the invocation is done */
    char buf[8192];
    size_t len;
};

static struct sbox **boxes; /* by sandbox number, until its exit callback */

static void box_handle_closed(uv_handle_t *h)
{
    struct sbox *b = h->data;
    if (--b->open_handles == 0 && b->ended)
        free(b);
}

static void box_close(struct sbox *b)
{
    if (b->api_fd >= 0) {
        uv_poll_stop(&b->lpoll);
        uv_close((uv_handle_t *)&b->lpoll, box_handle_closed);
        close(b->api_fd); /* the spawner keeps its own for the namespace's reuse */
        b->api_fd = -1;
    }
    if (b->conn_fd >= 0) {
        uv_poll_stop(&b->cpoll);
        uv_close((uv_handle_t *)&b->cpoll, box_handle_closed);
        close(b->conn_fd);
        b->conn_fd = -1;
    }
}

static void box_fail(struct sbox *b, const char *what)
{
    fprintf(stderr, "sandbox_rate: r%d: %s\n", b->k, what);
    box_close(b);
}

/* The whole request in b->buf (headers and Content-Length body)? */
static bool request_complete(const struct sbox *b)
{
    const char *end = memmem(b->buf, b->len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    size_t head = (size_t)(end - b->buf) + 4, body = 0;
    const char *cl = memmem(b->buf, head, "\nContent-Length:", 16);
    if (cl == NULL)
        cl = memmem(b->buf, head, "\ncontent-length:", 16);
    if (cl != NULL)
        body = strtoul(cl + 16, NULL, 10);
    return b->len >= head + body;
}

static void on_conn(uv_poll_t *h, int status, int events)
{
    struct sbox *b = h->data;
    ssize_t n = read(b->conn_fd, b->buf + b->len, sizeof b->buf - 1 - b->len);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0 || (size_t)n == sizeof b->buf - 1 - b->len) {
        box_fail(b, n == 0 ? "the runtime closed its connection" : "reading the runtime");
        return;
    }
    b->len += (size_t)n;
    if (!request_complete(b))
        return;
    char out[512];
    int m;
    if (b->answered == 0 && strncmp(b->buf, "GET ", 4) == 0)
        m = snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r%d\r\n"
                     "Lambda-Runtime-Deadline-Ms: 9999999999999\r\n"
                     "Lambda-Runtime-Invoked-Function-Arn: "
                     "arn:aws:lambda:local:000000000000:function:sandbox-rate\r\n"
                     "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                     b->k);
    else if (b->answered == 1 && strncmp(b->buf, "POST ", 5) == 0)
        m = snprintf(out, sizeof out,
                     "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                     "Content-Length: 15\r\n\r\n{\"status\":\"OK\"}");
    else {
        box_fail(b, "an unexpected request");
        return;
    }
    /* A few hundred bytes into an empty socket buffer: written whole. */
    if (write(b->conn_fd, out, (size_t)m) != m) {
        box_fail(b, "writing to the runtime");
        return;
    }
    b->answered++;
    b->len = 0;
    if (b->answered == 2) { /* as the daemon does once an env's first answer has gone */
        char id[32];
        snprintf(id, sizeof id, "r%d", b->k);
        wisp_sandbox_up(b->r->sb, id);
    }
}

static void on_listen(uv_poll_t *h, int status, int events)
{
    struct sbox *b = h->data;
    int fd = accept4(b->api_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* EAGAIN; anything else shows as a sandbox that never answered */
    if (b->conn_fd >= 0) {
        close(fd); /* one connection per sandbox */
        return;
    }
    b->conn_fd = fd;
    uv_poll_init(b->r->loop, &b->cpoll, fd);
    b->cpoll.data = b;
    b->open_handles++;
    uv_poll_start(&b->cpoll, UV_READABLE, on_conn);
}

static void on_spawned(void *data, const wisp_sandbox_started_t *st, const wisp_err_t *err)
{
    struct sbox *b = data;
    struct run *r = b->r;
    if (err) {
        fprintf(stderr, "sandbox_rate: spawn: %s\n", err->msg);
        r->failed++;
        r->ended++; /* no exit callback follows a failed spawn */
        boxes[b->k] = NULL;
        free(b);
        if (r->failed == 1)
            uv_stop(r->loop);
        return;
    }
    if (st->how == WISP_SANDBOX_EXEC_STEM)
        r->stems++;
    close(st->out_fd);
    close(st->err_fd);
    if (st->peak_fd >= 0)
        close(st->peak_fd);
    if (!r->serve) { /* nothing is served: the program is to exit at once */
        close(st->api_fd);
        return;
    }
    b->api_fd = st->api_fd;
    uv_poll_init(r->loop, &b->lpoll, b->api_fd);
    b->lpoll.data = b;
    b->open_handles++;
    uv_poll_start(&b->lpoll, UV_READABLE, on_listen);
}

static void on_exit_cb(void *data, const char *id, int wait_status, bool oom, uint64_t peak)
{
    struct run *r = data;
    int k = atoi(id + 1);
    if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
        fprintf(stderr, "sandbox_rate: sandbox %s ended with status 0x%x\n", id, wait_status);
        r->failed++;
    }
    struct sbox *b = k >= 0 && k < r->total ? boxes[k] : NULL;
    if (b != NULL) {
        if (r->serve && b->answered != 2) {
            fprintf(stderr, "sandbox_rate: sandbox %s ended before its invocation was done\n", id);
            r->failed++;
        }
        box_close(b); /* before this callback returns: the listener may serve the next */
        boxes[k] = NULL;
        b->ended = true;
        if (b->open_handles == 0)
            free(b);
    }
    if (k >= 0 && k < r->total)
        r->lat_us[r->ended] = (double)(now_ns() - r->start_ns[k]) / 1e3;
    r->ended++;
    if (r->ended == r->total)
        uv_stop(r->loop);
    else if (r->started < r->total)
        start_one(r);
}

static void start_one(struct run *r)
{
    char id[32];
    int k = r->started++;
    snprintf(id, sizeof id, "r%d", k);
    wisp_sandbox_spec_t spec = {
        .id = id,
        .code_dir = r->code_dir,
        .argv = r->argv,
        .envp = r->envp,
        .memory_mb = r->memory_mb,
        .tmp_mb = 512,
        .pids_max = 256,
        .cpu_weight = 8,
        .nofile = 1024,
        .api_port = 9001,
        .reuse_key = "sandbox-rate",
    };
    struct sbox *b = calloc(1, sizeof *b);
    *b = (struct sbox){.r = r, .k = k, .api_fd = -1, .conn_fd = -1};
    boxes[k] = b;
    wisp_err_t err;
    r->start_ns[k] = now_ns();
    if (wisp_sandbox_spawn(r->sb, &spec, on_spawned, b, &err) < 0) {
        fprintf(stderr, "sandbox_rate: spawn: %s\n", err.msg);
        boxes[k] = NULL;
        free(b);
        r->failed++;
        r->ended++;
        uv_stop(r->loop);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: sandbox_rate [-c C] [-n N] [-m MB] [-a] [-e NAME=VALUE]... [-j] "
                    "[-o FILE] -- CODE_DIR PROGRAM\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct run r = {.conns = 8, .total = 400, .memory_mb = 128};
    int nenv = 0;
    bool json = false;
    const char *out = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:n:m:ae:jo:")) != -1) {
        switch (opt) {
        case 'a': r.serve = true; break;
        case 'c': r.conns = atoi(optarg); break;
        case 'n': r.total = atoi(optarg); break;
        case 'm': r.memory_mb = (unsigned)atoi(optarg); break;
        case 'e':
            if (nenv == MAX_ENV || strchr(optarg, '=') == NULL)
                usage();
            r.envp[nenv++] = optarg;
            break;
        case 'j': json = true; break;
        case 'o': out = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 2 || r.conns < 1 || r.total < 1)
        usage();
    r.code_dir = argv[optind];
    r.argv[0] = argv[optind + 1];
    if (geteuid() != 0) {
        fprintf(stderr, "sandbox_rate: sandboxes need root\n");
        return 2;
    }

    /* A state folder and cgroup name of its own: the spawner removes, at its
     * start, what a predecessor with the same name left, so never a daemon's. */
    char state[] = "/tmp/wisp-sbrate-XXXXXX", cgname[48];
    if (mkdtemp(state) == NULL) {
        perror("sandbox_rate: mkdtemp");
        return 1;
    }
    snprintf(cgname, sizeof cgname, "wisp-sbrate-%d", (int)getpid());
    wisp_sandbox_config_t cfg = {.state_dir = state, .cgroup_name = cgname};
    wisp_err_t err;
    if (wisp_sandbox_init(&r.sb, &cfg, &err) < 0) { /* before any thread */
        fprintf(stderr, "sandbox_rate: %s\n", err.msg);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    r.loop = &loop;
    if (wisp_sandbox_attach(r.sb, &loop, on_exit_cb, &r, &err) < 0) {
        fprintf(stderr, "sandbox_rate: %s\n", err.msg);
        wisp_sandbox_close(r.sb);
        return 1;
    }
    r.start_ns = calloc((size_t)r.total, sizeof *r.start_ns);
    boxes = calloc((size_t)r.total, sizeof *boxes);
    r.lat_us = calloc((size_t)r.total, sizeof *r.lat_us);
    r.t0_ns = now_ns();
    for (int i = 0; i < r.conns && r.started < r.total; i++)
        start_one(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    double elapsed = (double)(now_ns() - r.t0_ns) / 1e9;
    wisp_sandbox_close(r.sb);
    for (int k = 0; k < r.total; k++) /* left after a failure */
        if (boxes[k] != NULL) {
            box_close(boxes[k]);
            boxes[k]->ended = true;
            if (boxes[k]->open_handles == 0)
                free(boxes[k]);
        }
    uv_run(&loop, UV_RUN_DEFAULT); /* the handles closed */
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "sandbox_rate: the loop still has handles\n");
    /* What the spawner left in its state folder (files only: it unmounts
     * everything at its exit; FTW_MOUNT keeps the walk on this file system). */
    if (nftw(state, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
        fprintf(stderr, "sandbox_rate: removing %s: %s\n", state, strerror(errno));

    if (out) {
        FILE *f = fopen(out, "w");
        for (int i = 0; f && i < r.ended; i++)
            if (r.lat_us[i] > 0)
                fprintf(f, "%.1f\n", r.lat_us[i]);
        if (f == NULL || fclose(f) != 0) {
            perror("sandbox_rate: -o");
            return 1;
        }
    }
    double rate = elapsed > 0 ? r.ended / elapsed : 0;
    if (json)
        printf("{\"sandboxes\":%d,\"failed\":%d,\"conns\":%d,\"served\":%s,\"exec_stems\":%d,"
               "\"elapsed_s\":%.6f,\"rate\":%.1f}\n",
               r.ended, r.failed, r.conns, r.serve ? "true" : "false", r.stems, elapsed, rate);
    else
        printf("%d sandboxes (%d failed, %d exec stems), %d in flight, %.3f s: %.1f/s\n", r.ended,
               r.failed, r.stems, r.conns, elapsed, rate);
    free(r.start_ns);
    free(r.lat_us);
    free(boxes);
    return r.failed ? 1 : 0;
}
