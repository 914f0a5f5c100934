/*
 * netpool.c - the network namespace maker: a process of its own, forked by
 * the spawner, that keeps up to `size` ready network namespaces (loopback up,
 * the Runtime API listener on the default port; netns.c) queued on a
 * SOCK_SEQPACKET socket to the spawner.
 *
 * A namespace costs about 450 us of CPU to make (copy_net_ns and the
 * loopback device), more than half the spawner's own work per sandbox. Made
 * in the spawner, it either delays the spawn that needs it or waits for the
 * spawner to be idle (never, under a steady stream of new sandboxes); made
 * here, it runs on another CPU while the spawner serves the next request.
 *
 * Flow control by credits: the maker starts with `size` credits, spends one
 * per namespace sent (one message: the 4-byte tag WISP_NETPOOL_ITEM, the
 * namespace and listener descriptors) and sleeps in recv() until the spawner
 * returns a credit (one byte per namespace given to a sandbox), so at most
 * `size` ready namespaces exist, queued or held by the spawner. A failure to make one is
 * sent as WISP_NETPOOL_FAILED followed by the message text, after which the
 * maker exits: the spawner then makes its namespaces inline, as it does when
 * the queue is empty. The maker exits at end of file on its socket and dies
 * with the spawner (PR_SET_PDEATHSIG).
 *
 * Each namespace serves one sandbox; the spawner closes its descriptor once
 * the sandbox's first process has joined it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

#define WISP_NETPOOL_ITEM 0x4e455431u   /* "NET1" */
#define WISP_NETPOOL_FAILED 0x4641494cu /* "FAIL" */

/* The maker's loop; never returns. */
__attribute__((noreturn)) static void maker_main(int sock, int host_ns, int size)
{
    prctl(PR_SET_NAME, "wisp-netpool", 0, 0, 0);
    int credits = size;
    for (;;) {
        for (; credits > 0; credits--) {
            int ns_fd, api_fd;
            wisp_err_t err;
            wisp_err_clear(&err);
            if (wisp__netns_new(host_ns, WISP_SB_DEFAULT_PORT, &ns_fd, &api_fd, &err) < 0) {
                char msg[4 + sizeof err.msg];
                uint32_t tag = WISP_NETPOOL_FAILED;
                memcpy(msg, &tag, sizeof tag);
                size_t n = strlen(err.msg);
                memcpy(msg + sizeof tag, err.msg, n);
                wisp__sb_send(sock, msg, sizeof tag + n, NULL, 0, 0);
                _exit(1);
            }
            uint32_t tag = WISP_NETPOOL_ITEM;
            int fds[2] = {ns_fd, api_fd};
            int rc = wisp__sb_send(sock, &tag, sizeof tag, fds, 2, 0);
            close(ns_fd);
            close(api_fd);
            if (rc < 0)
                _exit(0); /* the spawner is gone */
        }
        char buf[64];
        ssize_t n;
        do
            n = recv(sock, buf, sizeof buf, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            _exit(0);
        credits += (int)n;
        if (credits > size)
            credits = size;
    }
}

int wisp__netpool_start(struct wisp__netpool *p, int host_ns, int size, wisp_err_t *err)
{
    p->pid = -1;
    p->sock = -1;
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
        return wisp_err_sys(err, e, "fork the network namespace maker");
    }
    if (pid == 0) {
        /* Only the socket and the host namespace stay open; SIGTERM and
         * SIGCHLD stay blocked as in the spawner (it has no children). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != self)
            _exit(1);
        int keep_lo = sv[1] < host_ns ? sv[1] : host_ns;
        int keep_hi = sv[1] < host_ns ? host_ns : sv[1];
        syscall(SYS_close_range, 3U, (unsigned)keep_lo - 1, 0U);
        if (keep_hi > keep_lo + 1)
            syscall(SYS_close_range, (unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0U);
        syscall(SYS_close_range, (unsigned)keep_hi + 1, ~0U, 0U);
        maker_main(sv[1], host_ns, size);
    }
    close(sv[1]);
    p->pid = pid;
    p->sock = sv[0];
    return 0;
}

int wisp__netpool_recv(struct wisp__netpool *p, int *ns_fd, int *api_fd)
{
    if (p->sock < 0)
        return -1;
    char buf[4 + sizeof((wisp_err_t *)0)->msg + 1];
    int fds[2], nfds = 2;
    ssize_t n = wisp__sb_recv(p->sock, buf, sizeof buf - 1, fds, &nfds, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    uint32_t tag = 0;
    if (n >= (ssize_t)sizeof tag)
        memcpy(&tag, buf, sizeof tag);
    if (n == (ssize_t)sizeof tag && tag == WISP_NETPOOL_ITEM && nfds == 2) {
        *ns_fd = fds[0];
        *api_fd = fds[1];
        return 0;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (n > 0 && tag == WISP_NETPOOL_FAILED) {
        buf[n] = '\0';
        wisp_warn("sandbox", "network namespace pool disabled: %s", buf + sizeof tag);
    } else {
        wisp_warn("sandbox", "network namespace pool disabled: %s",
                  n == 0  ? "the maker exited"
                  : n < 0 ? strerror(errno)
                          : "bad message");
    }
    wisp__netpool_stop(p);
    return -1;
}

void wisp__netpool_credit(struct wisp__netpool *p)
{
    /* If it cannot be sent, the maker is gone and recv will say so. */
    if (p->sock >= 0)
        send(p->sock, "c", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool wisp__netpool_reaped(struct wisp__netpool *p, pid_t pid)
{
    if (p->pid <= 0 || pid != p->pid)
        return false;
    /* Namespaces already queued stay usable until the socket is drained. */
    p->pid = -1;
    return true;
}

void wisp__netpool_stop(struct wisp__netpool *p)
{
    if (p->sock >= 0) {
        close(p->sock);
        p->sock = -1;
    }
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        p->pid = -1;
    }
}
