/*
 * netns.c - network namespaces for sandboxes: a fresh namespace with only
 * loopback, brought up, and the Runtime API listener bound to
 * 127.0.0.1:<port> inside it. The spawner makes them (unshare, set up, setns
 * back) so that a later pool can make them ahead of time; a new sandbox joins
 * one with setns().
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"

static int loopback_up(wisp_err_t *err)
{
    cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return wisp_err_sys(err, errno, "socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return wisp_err_sys(err, errno, "SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return wisp_err_sys(err, errno, "SIOCSIFFLAGS lo");
    return 0;
}

static int listen_on(uint16_t port, wisp_err_t *err)
{
    cleanup_close int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return wisp_err_sys(err, errno, "socket");
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0)
        return wisp_err_sys(err, errno, "bind 127.0.0.1:%u", port);
    if (listen(s, 128) < 0)
        return wisp_err_sys(err, errno, "listen");
    return steal_fd(&s);
}

int wisp__netns_new(int orig_ns, uint16_t port, int *ns_fd, int *api_fd, wisp_err_t *err)
{
    if (unshare(CLONE_NEWNET) < 0)
        return wisp_err_sys(err, errno, "unshare(CLONE_NEWNET)");
    int rc = loopback_up(err);
    int api = rc < 0 ? -1 : listen_on(port, err);
    int ns = api < 0 ? -1 : open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (api >= 0 && ns < 0)
        wisp_err_sys(err, errno, "open /proc/self/ns/net");
    /* Whatever happened, the spawner must be back in its own namespace. */
    if (setns(orig_ns, CLONE_NEWNET) < 0) {
        wisp_error("sandbox", "setns back to the host network namespace: %s", strerror(errno));
        abort();
    }
    if (ns < 0) {
        if (api >= 0)
            close(api);
        return -1;
    }
    *ns_fd = ns;
    *api_fd = api;
    return 0;
}
