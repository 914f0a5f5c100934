/*
 * main.c - the no-op function of the benchmarks, for the provided runtime: a
 * static bootstrap built with runtimes/c/wisp_runtime.c that answers "{}".
 *
 * Started with WISP_BENCH_EXIT=1 in its environment it exits at once, before
 * touching the Runtime API: bench/spawn_baseline times that to get the cost of
 * starting this very binary without a platform around it.
 *
 * An event {"sleep_ms": N} makes it wait N milliseconds before answering, so
 * that N parallel invocations hold N environments at the same time.
 *
 * With WISP_BENCH_ONESHOT=1 (set in the function's env) it answers one event
 * with plain Runtime API calls and exits: every invocation then needs a new
 * env, which is how the env creation rate is measured even though wisp hands
 * queued work to an env that has just answered.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wisp_runtime.h"

static int handler(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp)
{
    size_t len;
    const char *v = wisp_rt_json_get(inv->event, inv->event_len, "sleep_ms", &len);
    if (v != NULL) {
        long ms = strtol(v, NULL, 10);
        if (ms > 0 && ms < 600000) {
            struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return wisp_rt_append(resp, "{}", 2);
}

/* Sends an HTTP request on fd and reads the reply into buf (headers and a short
 * body); returns the bytes read or -1. */
static ssize_t exchange(int fd, const char *req, size_t len, char *buf, size_t cap)
{
    if (write(fd, req, len) != (ssize_t)len)
        return -1;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        char *cl = strcasestr(buf, "\ncontent-length:");
        size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
        if (got >= (size_t)(end + 4 - buf) + body)
            return (ssize_t)got;
    }
    return -1;
}

/* One event, answered "{}", over one keep-alive connection; then exit. */
static int oneshot(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[128], buf[65536], req[512];
    if (api == NULL || strlen(api) >= sizeof(host))
        return 1;
    strcpy(host, api);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return 1;
    *colon = '\0';
    /* An IPv4 literal or a bracketed IPv6 one (no name service in a static binary). */
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
    struct sockaddr_in sa4 = {.sin_family = AF_INET};
    uint16_t port = htons((uint16_t)atoi(colon + 1));
    struct sockaddr *sa = (struct sockaddr *)&sa4;
    socklen_t salen = sizeof(sa4);
    if (host[0] == '[') {
        host[strlen(host) - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &sa6.sin6_addr) != 1)
            return 1;
        sa6.sin6_port = port;
        sa = (struct sockaddr *)&sa6;
        salen = sizeof(sa6);
    } else {
        if (strcmp(host, "localhost") == 0)
            strcpy(host, "127.0.0.1");
        if (inet_pton(AF_INET, host, &sa4.sin_addr) != 1)
            return 1;
        sa4.sin_port = port;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, sa, salen) < 0)
        return 1;
    int n = snprintf(req, sizeof(req),
                     "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n", api);
    if (exchange(fd, req, (size_t)n, buf, sizeof(buf)) < 0)
        return 1;
    char *id = strcasestr(buf, "\nLambda-Runtime-Aws-Request-Id:");
    if (id == NULL)
        return 1;
    id += 31;
    id += strspn(id, " ");
    id[strcspn(id, "\r\n")] = '\0';
    n = snprintf(req, sizeof(req),
                 "POST /2018-06-01/runtime/invocation/%.64s/response HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Length: 2\r\n\r\n{}",
                 id, api);
    return exchange(fd, req, (size_t)n, buf, sizeof(buf)) < 0 ? 1 : 0;
}

int main(void)
{
    if (getenv("WISP_BENCH_EXIT") != NULL)
        return 0;
    if (getenv("WISP_BENCH_ONESHOT") != NULL)
        return oneshot();
    return wisp_rt_main(handler);
}
