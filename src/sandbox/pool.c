/*
 * pool.c - the pool maker: a process of its own, forked by the spawner, that
 * keeps up to `size` ready network namespaces (loopback up, the Runtime API
 * listener on the default port; netns.c) and, where cgroups can be pooled
 * (v1, cgroup.c), up to `size` empty groups named pool.<n>, queued on a
 * SOCK_SEQPACKET socket to the spawner.
 *
 * A namespace costs about 450 us of CPU to make (copy_net_ns and the
 * loopback device) and a pooled group about 200 us (three mkdir), together
 * most of the spawner's own work per sandbox. Made in the spawner, they either
 * delay the spawn that needs them or wait for the spawner to be idle (never,
 * under a steady stream of new sandboxes); made here, they are made on another
 * CPU while the spawner serves the next request.
 *
 * Messages from the maker are struct pool_msg: an item (a namespace with its
 * two descriptors, or the number n of a group pool.<n>), or the failure of
 * one kind with its text. After a namespace failure the maker exits; after a
 * group failure it makes namespaces only. The spawner then makes what is
 * missing inline, as it does when the queue is empty.
 *
 * Flow control by credits: the maker starts with `size` credits of each kind,
 * spends one per item sent and sleeps in poll() until the spawner returns
 * credits (one byte, 'n' or 'g', per item given to a sandbox), so at most
 * `size` ready items of each kind exist, queued or held by the spawner. It
 * makes what is owed when the spawner says no sandbox is starting (a byte
 * '!': making a namespace beside a start would slow it on a small machine),
 * at once when half a pool is owed (a steady stream of spawns), or once no
 * credit has come for WISP_POOL_IDLE_MS (a sandbox that takes long to
 * start). The
 * maker exits at end of file on its socket and dies with the spawner
 * (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

/* How long no credit must have come before the maker makes what is owed
 * without the spawner's word. */
#define WISP_POOL_IDLE_MS 10
/* How long wisp__pool_stop waits for the maker to exit by itself. */
#define STOP_WAIT_MS 2000
#define CREDIT_NET 'n'
#define CREDIT_CG 'g'
#define GO '!' /* no sandbox is starting: make what is owed now */

struct pool_msg {
    uint32_t kind;                          /* enum wisp__pool_kind */
    uint32_t cg;                            /* WISP_POOL_CG: the group's number */
    char msg[sizeof((wisp_err_t *)0)->msg]; /* failures: the reason (not terminated) */
};

static void send_failure(int sock, enum wisp__pool_kind kind, const wisp_err_t *err)
{
    struct pool_msg m = {.kind = kind};
    size_t n = strlen(err->msg);
    memcpy(m.msg, err->msg, n);
    wisp__sb_send(sock, &m, offsetof(struct pool_msg, msg) + n, NULL, 0, 0);
}

/* Make what is owed: up to nets namespaces and cgs groups (cgs < 0: groups
 * are off). Exits if the spawner is gone or namespaces cannot be made. */
static void make_owed(int sock, int host_ns, const struct wisp__cg *cg, int *nets, int *cgs,
                      unsigned *next_cg)
{
    if (*nets > 0 || *cgs > 0)
        wisp_step("pool-make");
    while (*nets > 0 || *cgs > 0) {
        wisp_err_t err;
        wisp_err_clear(&err);
        if (*nets > 0) {
            int fds[2];
            if (wisp__netns_new(host_ns, WISP_SB_DEFAULT_PORT, &fds[0], &fds[1], &err) < 0) {
                send_failure(sock, WISP_POOL_NET_FAILED, &err);
                _exit(1);
            }
            struct pool_msg m = {.kind = WISP_POOL_NET};
            int rc = wisp__sb_send(sock, &m, offsetof(struct pool_msg, msg), fds, 2, 0);
            close(fds[0]);
            close(fds[1]);
            if (rc < 0)
                _exit(0); /* the spawner is gone */
            (*nets)--;
        }
        if (*cgs > 0) {
            char name[32];
            snprintf(name, sizeof name, WISP_CG_POOL_PREFIX "%u", *next_cg);
            struct pool_msg m = {.kind = WISP_POOL_CG, .cg = *next_cg};
            if (wisp__cg_pool_make(cg, name, &err) < 0) {
                send_failure(sock, WISP_POOL_CG_FAILED, &err);
                *cgs = -1; /* namespaces only from now on */
            } else if (wisp__sb_send(sock, &m, offsetof(struct pool_msg, msg), NULL, 0, 0) < 0) {
                wisp__cg_destroy(cg, name);
                _exit(0);
            } else {
                (*next_cg)++;
                (*cgs)--;
            }
        }
    }
}

/* The maker's loop; never returns. nets and cgs count what is owed. */
__attribute__((noreturn)) static void maker_main(int sock, int host_ns, const struct wisp__cg *cg,
                                                 int size)
{
    prctl(PR_SET_NAME, "wisp-pool", 0, 0, 0);
    int nets = size, cgs = wisp__cg_pool_ok(cg) ? size : -1;
    unsigned next_cg = 0;
    bool now = true; /* at start: fill the pools at once */
    for (;;) {
        if (now)
            make_owed(sock, host_ns, cg, &nets, &cgs, &next_cg);
        /* Once something is owed, make it when the spawner says no sandbox
         * is starting, at once when half a pool is owed (a steady stream of
         * spawns), or when no credit has come for WISP_POOL_IDLE_MS. */
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int r = poll(&p, 1, nets > 0 || cgs > 0 ? WISP_POOL_IDLE_MS : -1);
        now = r == 0;
        if (r <= 0)
            continue;
        char buf[64];
        ssize_t n;
        bool go = false;
        while ((n = recv(sock, buf, sizeof buf, MSG_DONTWAIT)) > 0)
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == CREDIT_NET && nets < size)
                    nets++;
                else if (buf[i] == CREDIT_CG && cgs >= 0 && cgs < size)
                    cgs++;
                else if (buf[i] == GO)
                    go = true;
            }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            _exit(0);
        now = go || 2 * nets >= size || 2 * cgs >= size;
    }
}

int wisp__pool_start(struct wisp__pool *p, int host_ns, const struct wisp__cg *cg, int size,
                     wisp_err_t *err)
{
    *p = (struct wisp__pool){.pid = -1, .sock = -1};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return wisp_err_sys(err, errno, "socketpair");
    pid_t self = getpid();
    /* The raw system call, not fork(): no atfork handler may run in the
     * child (libuv's closes and reopens the descriptor numbers its signal
     * pipe had in the daemon, which are other descriptors here). The
     * spawner is single-threaded, so the copy is consistent. */
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return wisp_err_sys(err, e, "fork the pool maker");
    }
    if (pid == 0) {
        /* Only the socket, the host namespace and stdio stay open; SIGTERM
         * and SIGCHLD stay blocked as in the spawner (it has no children). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != self)
            _exit(1);
        int lo = sv[1] < host_ns ? sv[1] : host_ns, hi = sv[1] < host_ns ? host_ns : sv[1];
        if (lo > 3)
            syscall(SYS_close_range, 3U, (unsigned)lo - 1, 0U);
        if (hi > lo + 1)
            syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0U);
        syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0U);
        maker_main(sv[1], host_ns, cg, size);
    }
    close(sv[1]);
    p->pid = pid;
    p->sock = sv[0];
    return 0;
}

int wisp__pool_recv(struct wisp__pool *p, struct wisp__pool_item *it)
{
    if (p->sock < 0)
        return -1;
    struct pool_msg m;
    int fds[2], nfds = 2;
    ssize_t n = wisp__sb_recv(p->sock, &m, sizeof m, fds, &nfds, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    bool whole = n >= (ssize_t)offsetof(struct pool_msg, msg);
    if (whole && m.kind == WISP_POOL_NET && nfds == 2) {
        *it = (struct wisp__pool_item){.kind = WISP_POOL_NET, .ns_fd = fds[0], .api_fd = fds[1]};
        return 0;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (whole && m.kind == WISP_POOL_CG) {
        *it = (struct wisp__pool_item){.kind = WISP_POOL_CG, .cg = m.cg, .ns_fd = -1, .api_fd = -1};
        return 0;
    }
    if (whole && (m.kind == WISP_POOL_NET_FAILED || m.kind == WISP_POOL_CG_FAILED)) {
        int len = (int)(n - (ssize_t)offsetof(struct pool_msg, msg));
        wisp_warn("sandbox", "%s pool disabled: %.*s",
                  m.kind == WISP_POOL_NET_FAILED ? "network namespace" : "cgroup", len, m.msg);
        *it = (struct wisp__pool_item){.kind = m.kind, .ns_fd = -1, .api_fd = -1};
        return 0;
    }
    if (!p->stopped)
        wisp_warn("sandbox", "pool maker: %s",
                  n == 0  ? "exited"
                  : n < 0 ? strerror(errno)
                          : "bad message");
    wisp__pool_stop(p);
    wisp__pool_close(p);
    return -1;
}

static void send_byte(struct wisp__pool *p, char c)
{
    /* If it cannot be sent, the maker is gone and recv will say so. */
    if (p->sock >= 0)
        send(p->sock, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void wisp__pool_credit(struct wisp__pool *p, enum wisp__pool_kind kind)
{
    send_byte(p, kind == WISP_POOL_NET ? CREDIT_NET : CREDIT_CG);
}

void wisp__pool_go(struct wisp__pool *p)
{
    send_byte(p, GO);
}

bool wisp__pool_reaped(struct wisp__pool *p, pid_t pid)
{
    if (p->pid <= 0 || pid != p->pid)
        return false;
    /* What is still queued stays usable until the socket is drained. */
    p->pid = -1;
    return true;
}

void wisp__pool_stop(struct wisp__pool *p)
{
    p->stopped = true;
    if (p->pid <= 0)
        return;
    /* End of file tells the maker to exit once the item it is making is sent,
     * so no half-made group is left behind; SIGKILL if it takes too long. */
    if (p->sock >= 0)
        shutdown(p->sock, SHUT_WR);
    for (int i = 0; i < STOP_WAIT_MS; i++) {
        pid_t r = waitpid(p->pid, NULL, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR)) {
            p->pid = -1;
            return;
        }
        nanosleep(&(struct timespec){0, 1000000L}, NULL);
    }
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    p->pid = -1;
}

void wisp__pool_close(struct wisp__pool *p)
{
    if (p->sock >= 0) {
        close(p->sock);
        p->sock = -1;
    }
}
