/*
 * probe.c - runs inside a sandbox for tests/unit/test_sandbox.c (which
 * compiles it into the sandbox's code folder) and reports what the sandbox
 * allows, one "key=value" line per fact.
 *
 *   probe ids               credentials, capabilities, no_new_privs, seccomp
 *   probe sys               forbidden system calls (errno of each) and allowed ones
 *   probe net API HOST      connect to the Runtime API port and to a host port
 *   probe fill              write /tmp full
 *   probe mem MB            allocate and touch MB MiB
 *   probe forkbomb          fork until refused
 *   probe env               print the environment
 *   probe sleep N           start N sleeping children, then sleep
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void status_lines(void)
{
    static const char *const keys[] = {"CapInh", "CapPrm",  "CapEff",          "CapBnd",
                                       "CapAmb", "Seccomp", "Seccomp_filters", "NoNewPrivs"};
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            size_t n = strlen(keys[i]);
            if (strncmp(line, keys[i], n) == 0 && line[n] == ':') {
                char *v = line + n + 1;
                while (*v == ' ' || *v == '\t')
                    v++;
                printf("%s=%s", keys[i], v);
            }
        }
    }
    if (f)
        fclose(f);
}

static int ids(void)
{
    gid_t groups[16];
    int n = getgroups(16, groups);
    printf("uid=%d\ngid=%d\ngroups=%d", (int)getuid(), (int)getgid(), n);
    for (int i = 0; i < n; i++)
        printf(" %d", (int)groups[i]);
    printf("\npid=%d\n", (int)getpid());
    status_lines();
    return 0;
}

static void report(const char *name, long rc)
{
    printf("%s=%s\n", name, rc < 0 ? strerrorname_np(errno) : "ok");
}

static int sys(void)
{
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("umount", umount2("/proc", MNT_DETACH));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_net", unshare(CLONE_NEWNET));
    report("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    report("raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    report("packet", socket(AF_PACKET, SOCK_RAW, 0));
    report("netlink", socket(AF_NETLINK, SOCK_RAW, 0));
    report("clone3", syscall(SYS_clone3, NULL, 0));
    report("io_uring", syscall(SYS_io_uring_setup, 1, NULL));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    report("perf", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("chroot", chroot("/tmp"));
    report("sethostname", sethostname("x", 1));
    report("setuid0", setuid(0));
    report("personality", personality(ADDR_NO_RANDOMIZE));
    report("clone_ns", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    /* The filter lets these through (the spawner's own setup calls them); the
     * kernel refuses them to a process without capabilities. */
    long child = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
    if (child == 0)
        _exit(0);
    report("clone_pid", child);
    report("unshare_pid", unshare(CLONE_NEWPID));
    report("unshare_user_mnt", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    int self_net = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    report("setns", setns(self_net, CLONE_NEWNET));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /* OPEN_TREE_CLONE */));
    report("tcp", socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    report("udp6", socket(AF_INET6, SOCK_DGRAM, 0));
    int sv[2];
    report("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    report("fork", pid);
    return 0;
}

static int net(int api_port, int host_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)api_port);
    int rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
    report("api", rc);
    if (rc == 0 && write(s, "hello", 5) != 5)
        printf("api_write=failed\n");
    int h = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)host_port);
    report("host", connect(h, (struct sockaddr *)&sa, sizeof sa));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(h, SIOCGIFFLAGS, &ifr) == 0)
        printf("lo_up=%d\n", (ifr.ifr_flags & IFF_UP) != 0);
    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    printf("ifaces=");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *name = line;
        while (*name == ' ')
            name++;
        printf("%s,", name);
    }
    printf("\n");
    return 0;
}

/* Print the network namespace, connect to the Runtime API port, send word and
 * exit without waiting: the connection stays queued on the listener. */
static int leave(const char *word)
{
    char link[64];
    ssize_t n = readlink("/proc/self/ns/net", link, sizeof link - 1);
    if (n > 0) {
        link[n] = '\0';
        printf("netns=%s\n", link);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9001)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
    report("api", rc);
    if (rc == 0 && write(s, word, strlen(word)) != (ssize_t)strlen(word))
        printf("api_write=failed\n");
    return 0;
}

static int fill(void)
{
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof chunk);
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        report("open", -1);
        return 1;
    }
    long total = 0;
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n <= 0)
            break;
        total += n;
    }
    printf("errno=%s\nwrote_mb=%ld\n", strerrorname_np(errno), total >> 20);
    return 0;
}

static int mem(long mb)
{
    for (long i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        if (p == NULL) {
            printf("malloc_failed_at=%ld\n", i);
            return 1;
        }
        memset(p, 1, 1 << 20);
    }
    printf("allocated=%ld\n", mb);
    return 0;
}

static int forkbomb(void)
{
    int forks = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            pause();
            _exit(0);
        }
        if (pid < 0)
            break;
        forks++;
    }
    printf("forks=%d\nerrno=%s\n", forks, strerrorname_np(errno));
    fflush(stdout);
    return 0;
}

static int env(void)
{
    for (char **e = environ; *e; e++)
        printf("%s\n", *e);
    return 0;
}

static int sleeper(int children)
{
    for (int i = 0; i < children; i++)
        if (fork() == 0)
            for (;;)
                pause();
    printf("started\n");
    fflush(stdout);
    for (;;)
        pause();
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "ids") == 0)
        return ids();
    if (strcmp(cmd, "sys") == 0)
        return sys();
    if (strcmp(cmd, "net") == 0 && argc == 4)
        return net(atoi(argv[2]), atoi(argv[3]));
    if (strcmp(cmd, "leave") == 0 && argc == 3)
        return leave(argv[2]);
    if (strcmp(cmd, "fill") == 0)
        return fill();
    if (strcmp(cmd, "mem") == 0 && argc == 3)
        return mem(atol(argv[2]));
    if (strcmp(cmd, "forkbomb") == 0)
        return forkbomb();
    if (strcmp(cmd, "env") == 0)
        return env();
    if (strcmp(cmd, "sleep") == 0 && argc == 3)
        return sleeper(atoi(argv[2]));
    if (strcmp(cmd, "true") == 0)
        return 0;
    return 2;
}
