/*
 * loadgen.c - the HTTP/1.1 load generator of wisp's benchmarks.
 *
 * It keeps N keep-alive connections busy (one request in flight on each, no
 * pipelining) for M requests in all or for a duration, records the latency of
 * every request (first byte written to last byte read) and prints the
 * percentiles and the request rate, as a text line and, with -j, as one JSON
 * object for bench/bench.py. It is plain sockets and epoll, one or more
 * threads each owning a share of the connections, so its own cost per request
 * is a write, a read and an epoll_wait: small next to what it measures.
 *
 * All connections are opened before the clock starts (a burst of -c 200 -n 200
 * sends 200 requests at the same moment). It understands Content-Length and
 * chunked responses, reconnects after "Connection: close" or an error, and
 * reads two wisp headers when present: X-Wisp-Cold-Start (cold starts are
 * counted) and X-Wisp-Duration-Ms (the env's own time, so the latency added
 * around it is reported per request). -o writes each recorded request as a
 * line "latency_us cold" (cold: 1, 0, or -1 without the header).
 *
 *   loadgen [-c conns] [-n requests | -d seconds] [-t threads] [-m method]
 *           [-b body | -B file] [-H 'Name: value']... [-w warmup] [-p pause_us]
 *           [-T timeout_s] [-o latencies.txt] [-j] http://host:port/path
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_RESPONSE (8u << 20) /* a response larger than this is an error */
#define MAX_CONNS 100000
#define MAX_THREADS 64

/* A connection and its one request in flight. */
struct conn {
    int fd;
    struct thread *owner;
    bool busy;        /* a request was sent and its response is not complete */
    bool recorded;    /* the request in flight counts (it is not a warm-up) */
    bool done;        /* no more requests for this connection */
    int warmup_left;  /* warm-up requests still to send (not recorded) */
    size_t sent;      /* bytes of the request written so far */
    uint64_t t_start; /* when the request's first byte was written (ns) */
    uint64_t t_next;  /* not before this time may the next request go (pause) */
    char *rbuf;       /* the response read so far */
    size_t rlen, rcap;
};

/* Results of one thread, merged at the end. */
struct stats {
    uint64_t *lat_ns;  /* latency of each recorded request */
    signed char *cold; /* X-Wisp-Cold-Start of each recorded request: 1, 0, -1 = absent */
    double *added_us;  /* latency minus X-Wisp-Duration-Ms, when the header came */
    size_t n_lat, cap_lat, n_added, cap_added;
    uint64_t ok, non2xx, errors, timeouts, cold_n, warm, reconnects;
    double dur_ms_sum;
    uint64_t dur_n;
    uint64_t first_start, last_end;
};

struct thread {
    pthread_t tid;
    int epfd;
    struct conn *conns;
    int nconns;
    struct stats st;
};

/* Options and shared state. */
static struct {
    const char *host, *port, *path, *method;
    char *request;
    size_t request_len;
    const char *body;
    size_t body_len;
    const char *headers[MAX_HEADERS];
    int nheaders;
    int conns, threads, warmup;
    long long requests; /* -1: run for a duration */
    double duration_s, timeout_s;
    long pause_us;
    const char *raw_out;
    bool json;
    struct addrinfo *addr;
    atomic_llong claimed; /* requests handed out so far */
    uint64_t deadline;    /* in duration mode: no request starts after this */
    atomic_bool stop;
    pthread_barrier_t barrier;
} opt;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [-c conns] [-n requests | -d seconds] [-t threads] [-m method]\n"
            "               [-b body | -B file] [-H 'Name: value']... [-w warmup_per_conn]\n"
            "               [-p pause_us] [-T timeout_s] [-o latencies.txt] [-j] "
            "http://host:port/path\n");
    exit(2);
}

/* Splits http://host[:port][/path] into opt.host, opt.port and opt.path. */
static void parse_url(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        die("only http:// URLs: %s", url);
    char *rest = strdup(url + 7);
    if (rest == NULL)
        die("out of memory");
    char *slash = strchr(rest, '/');
    opt.path = slash != NULL ? strdup(slash) : "/";
    if (slash != NULL)
        *slash = '\0';
    char *colon = strrchr(rest, ':');
    opt.port = "80";
    if (colon != NULL) {
        *colon = '\0';
        opt.port = colon + 1;
    }
    opt.host = rest;
}

static void build_request(void)
{
    size_t cap = 512 + opt.body_len + strlen(opt.path);
    for (int i = 0; i < opt.nheaders; i++)
        cap += strlen(opt.headers[i]) + 2;
    opt.request = xrealloc(NULL, cap);
    int n = snprintf(opt.request, cap, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n", opt.method, opt.path,
                     opt.host, opt.port);
    for (int i = 0; i < opt.nheaders; i++)
        n += snprintf(opt.request + n, cap - (size_t)n, "%s\r\n", opt.headers[i]);
    if (opt.body != NULL || strcmp(opt.method, "POST") == 0 || strcmp(opt.method, "PUT") == 0)
        n += snprintf(opt.request + n, cap - (size_t)n, "Content-Length: %zu\r\n", opt.body_len);
    n += snprintf(opt.request + n, cap - (size_t)n, "\r\n");
    if (opt.body_len > 0)
        memcpy(opt.request + n, opt.body, opt.body_len);
    opt.request_len = (size_t)n + opt.body_len;
}

/* Opens a connection (blocking connect, then non-blocking) and registers it. */
static int conn_open(struct conn *c)
{
    int fd = socket(opt.addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, opt.addr->ai_addr, opt.addr->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(c->owner->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->busy = false;
    c->rlen = 0;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->owner->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = false;
    c->rlen = 0;
}

/* Takes one request from the budget; false when the run is over. */
static bool claim_request(void)
{
    if (atomic_load(&opt.stop))
        return false;
    if (opt.requests < 0)
        return now_ns() < opt.deadline;
    return atomic_fetch_add(&opt.claimed, 1) < opt.requests;
}

/* Writes what the socket takes of the request; -1 on error. */
static int conn_write(struct conn *c)
{
    while (c->sent < opt.request_len) {
        ssize_t w = send(c->fd, opt.request + c->sent, opt.request_len - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(c->owner->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            return -1;
        }
        c->sent += (size_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(c->owner->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/* Starts the next request on c if the budget allows; returns false when c is done. */
static bool conn_start(struct conn *c)
{
    bool warm = c->warmup_left > 0;
    if (!warm && !claim_request())
        return false;
    if (warm)
        c->warmup_left--;
    c->recorded = !warm;
    for (int attempt = 0; c->fd < 0; attempt++) {
        if (conn_open(c) == 0) {
            c->owner->st.reconnects++;
            break;
        }
        c->owner->st.errors++;
        if (attempt > 100 || atomic_load(&opt.stop))
            return false;
        usleep(10000);
    }
    c->busy = true;
    c->sent = 0;
    c->rlen = 0;
    c->t_start = now_ns();
    if (!warm && c->owner->st.first_start == 0)
        c->owner->st.first_start = c->t_start;
    if (conn_write(c) < 0) {
        c->owner->st.errors++;
        conn_close(c);
        return true;
    }
    return true;
}

/* Looks a header up in the head [head, end); returns its value (trimmed) or NULL. */
static const char *find_header(const char *head, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', (size_t)(end - head));
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        p = eol < end ? eol : NULL;
    }
    return NULL;
}

/* Finds the end of a chunked body starting at b; 0 while incomplete, -1 if malformed. */
static long chunked_end(const char *b, const char *end)
{
    const char *p = b;
    for (;;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            return 0;
        char *stop;
        unsigned long size = strtoul(p, &stop, 16);
        if (stop == p || size > MAX_RESPONSE)
            return -1;
        p = eol + 2;
        if (size == 0) {
            /* Trailers (none expected) end with an empty line. */
            const char *fin = memmem(p - 2, (size_t)(end - p + 2), "\r\n\r\n", 4);
            return fin == NULL ? 0 : (long)(fin + 4 - b);
        }
        if ((size_t)(end - p) < size + 2)
            return 0;
        p += size + 2;
    }
}

/* Checks whether c->rbuf holds a whole response; records it if so.
 * Returns 1 when complete, 0 when more is needed, -1 on a malformed response. */
static int conn_parse(struct conn *c, bool *close_after)
{
    const char *b = c->rbuf, *end = c->rbuf + c->rlen;
    const char *hend = memmem(b, c->rlen, "\r\n\r\n", 4);
    if (hend == NULL)
        return c->rlen > 65536 ? -1 : 0;
    const char *body = hend + 4;
    if (c->rlen < 12 || strncmp(b, "HTTP/1.", 7) != 0)
        return -1;
    int status = atoi(b + 9);
    if (status == 100) { /* 100 Continue: drop it and keep reading */
        size_t skip = (size_t)(body - b);
        memmove(c->rbuf, body, c->rlen - skip);
        c->rlen -= skip;
        return conn_parse(c, close_after);
    }
    size_t vl;
    const char *v;
    long body_len;
    if ((v = find_header(b, hend + 2, "Content-Length", &vl)) != NULL) {
        body_len = strtol(v, NULL, 10);
        if (body_len < 0 || body_len > (long)MAX_RESPONSE)
            return -1;
        if (end - body < body_len)
            return 0;
    } else if ((v = find_header(b, hend + 2, "Transfer-Encoding", &vl)) != NULL && vl == 7 &&
               strncasecmp(v, "chunked", 7) == 0) {
        body_len = chunked_end(body, end);
        if (body_len <= 0)
            return (int)body_len;
    } else {
        return -1; /* a body delimited by close is not used by the servers measured */
    }
    *close_after = false;
    if ((v = find_header(b, hend + 2, "Connection", &vl)) != NULL && vl == 5 &&
        strncasecmp(v, "close", 5) == 0)
        *close_after = true;

    uint64_t t_end = now_ns();
    struct stats *st = &c->owner->st;
    if (!c->recorded)
        return 1;
    if (status >= 200 && status < 300)
        st->ok++;
    else
        st->non2xx++;
    if (st->n_lat == st->cap_lat) {
        st->cap_lat = st->cap_lat ? st->cap_lat * 2 : 4096;
        st->lat_ns = xrealloc(st->lat_ns, st->cap_lat * sizeof(*st->lat_ns));
        st->cold = xrealloc(st->cold, st->cap_lat * sizeof(*st->cold));
    }
    uint64_t lat = t_end - c->t_start;
    st->cold[st->n_lat] = -1;
    st->lat_ns[st->n_lat++] = lat;
    if (t_end > st->last_end)
        st->last_end = t_end;
    if ((v = find_header(b, hend + 2, "X-Wisp-Cold-Start", &vl)) != NULL && vl >= 1) {
        st->cold[st->n_lat - 1] = v[0] == '1';
        if (v[0] == '1')
            st->cold_n++;
        else
            st->warm++;
    }
    if ((v = find_header(b, hend + 2, "X-Wisp-Duration-Ms", &vl)) != NULL && vl >= 1) {
        double d = strtod(v, NULL);
        st->dur_ms_sum += d;
        st->dur_n++;
        if (st->n_added == st->cap_added) {
            st->cap_added = st->cap_added ? st->cap_added * 2 : 4096;
            st->added_us = xrealloc(st->added_us, st->cap_added * sizeof(*st->added_us));
        }
        st->added_us[st->n_added++] = (double)lat / 1e3 - d * 1e3;
    }
    /* Anything after the response would be an unrequested extra: drop it. */
    c->rlen = 0;
    return 1;
}

/* Reads what is there; finishes the request when the response is whole. */
static void conn_read(struct conn *c)
{
    struct stats *st = &c->owner->st;
    for (;;) {
        if (c->rcap - c->rlen < 16384) {
            if (c->rcap >= MAX_RESPONSE + 65536) {
                st->errors++;
                conn_close(c);
                return;
            }
            c->rcap = c->rcap ? c->rcap * 2 : 32768;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            if (c->busy)
                st->errors++;
            conn_close(c);
            return;
        }
        c->rlen += (size_t)r;
        if (!c->busy) /* unexpected bytes between requests */
            continue;
        bool close_after = false;
        int done = conn_parse(c, &close_after);
        if (done < 0) {
            st->errors++;
            conn_close(c);
            return;
        }
        if (done == 1) {
            c->busy = false;
            if (close_after)
                conn_close(c);
            return;
        }
    }
}

/* How long the thread may sleep in epoll: until the first paused connection
 * may send again or the first request in flight times out, never more than
 * 10 ms (the sweep's cadence). The client must not wake while nothing is due:
 * its wake-ups would share the CPUs with what it measures (every millisecond
 * of a 3 ms cold start, before). */
static struct timespec wait_for(const struct thread *t, uint64_t pause_ns, uint64_t limit)
{
    uint64_t now = now_ns(), due = now + 10000000u;
    for (int i = 0; i < t->nconns; i++) {
        const struct conn *c = &t->conns[i];
        if (c->done)
            continue;
        uint64_t at = c->busy ? c->t_start + limit : pause_ns > 0 ? c->t_next : due;
        if (at < due)
            due = at;
    }
    uint64_t d = due > now ? due - now : 0;
    return (struct timespec){.tv_sec = (time_t)(d / 1000000000u),
                             .tv_nsec = (long)(d % 1000000000u)};
}

static void *thread_main(void *arg)
{
    struct thread *t = arg;
    pthread_barrier_wait(&opt.barrier);
    uint64_t pause_ns = (uint64_t)opt.pause_us * 1000u;
    uint64_t limit = (uint64_t)(opt.timeout_s * 1e9);
    for (int i = 0; i < t->nconns; i++)
        if (!conn_start(&t->conns[i]))
            t->conns[i].done = true;
    struct epoll_event evs[256];
    uint64_t last_sweep = 0;
    for (;;) {
        struct timespec wait = wait_for(t, pause_ns, limit);
        int n = epoll_pwait2(t->epfd, evs, 256, &wait, NULL);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && c->busy && conn_write(c) < 0) {
                t->st.errors++;
                conn_close(c);
            }
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                conn_read(c);
            if (!c->busy && !c->done) {
                if (pause_ns > 0)
                    c->t_next = now_ns() + pause_ns;
                else if (!conn_start(c))
                    c->done = true;
            }
        }
        /* Every few milliseconds: time-outs, paused connections whose time has
         * come, and connections that lost their request to an error. */
        uint64_t now = now_ns();
        if (now - last_sweep < 5000000u && pause_ns == 0 && n > 0)
            continue;
        last_sweep = now;
        int active = 0;
        for (int i = 0; i < t->nconns; i++) {
            struct conn *c = &t->conns[i];
            if (c->done)
                continue;
            if (c->busy && now - c->t_start > limit) {
                t->st.timeouts++;
                conn_close(c);
            }
            if (!c->busy && now >= c->t_next && !conn_start(c))
                c->done = true;
            active += !c->done;
        }
        if (active == 0)
            return NULL;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted values by the nearest-rank method. */
static size_t rank(size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t r = (size_t)ceil(q * (double)n);
    return r == 0 ? 0 : r - 1;
}

int main(int argc, char **argv)
{
    opt.conns = 1;
    opt.threads = 1;
    opt.requests = 1000;
    opt.timeout_s = 30;
    opt.method = NULL;
    int ch;
    while ((ch = getopt(argc, argv, "c:n:d:t:m:b:B:H:w:p:T:o:j")) != -1) {
        switch (ch) {
        case 'c': opt.conns = atoi(optarg); break;
        case 'n': opt.requests = atoll(optarg); break;
        case 'd': opt.duration_s = atof(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'm': opt.method = optarg; break;
        case 'b':
            opt.body = optarg;
            opt.body_len = strlen(optarg);
            break;
        case 'B': {
            FILE *f = fopen(optarg, "rb");
            if (f == NULL)
                die("open %s: %s", optarg, strerror(errno));
            char *data = xrealloc(NULL, MAX_RESPONSE);
            opt.body_len = fread(data, 1, MAX_RESPONSE, f);
            opt.body = data;
            fclose(f);
            break;
        }
        case 'H':
            if (opt.nheaders == MAX_HEADERS)
                die("at most %d headers", MAX_HEADERS);
            opt.headers[opt.nheaders++] = optarg;
            break;
        case 'w': opt.warmup = atoi(optarg); break;
        case 'p': opt.pause_us = atol(optarg); break;
        case 'T': opt.timeout_s = atof(optarg); break;
        case 'o': opt.raw_out = optarg; break;
        case 'j': opt.json = true; break;
        default: usage();
        }
    }
    if (optind != argc - 1)
        usage();
    if (opt.conns < 1 || opt.conns > MAX_CONNS || opt.threads < 1 || opt.threads > MAX_THREADS)
        die("bad -c or -t");
    if (opt.threads > opt.conns)
        opt.threads = opt.conns;
    if (opt.duration_s > 0)
        opt.requests = -1;
    if (opt.method == NULL)
        opt.method = opt.body != NULL ? "POST" : "GET";
    parse_url(argv[optind]);
    build_request();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(opt.host, opt.port, &hints, &opt.addr);
    if (gai != 0)
        die("%s: %s", opt.host, gai_strerror(gai));

    /* Connections are spread over the threads and all opened before the start. */
    struct thread *threads = calloc((size_t)opt.threads, sizeof(*threads));
    struct conn *conns = calloc((size_t)opt.conns, sizeof(*conns));
    if (threads == NULL || conns == NULL)
        die("out of memory");
    for (int i = 0, next = 0; i < opt.threads; i++) {
        struct thread *t = &threads[i];
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->nconns = opt.conns / opt.threads + (i < opt.conns % opt.threads);
        t->conns = conns + next;
        next += t->nconns;
        for (int j = 0; j < t->nconns; j++) {
            struct conn *c = &t->conns[j];
            c->owner = t;
            c->fd = -1;
            c->warmup_left = opt.warmup;
            if (conn_open(c) < 0)
                die("connect %s:%s: %s", opt.host, opt.port, strerror(errno));
        }
    }
    pthread_barrier_init(&opt.barrier, NULL, (unsigned)opt.threads + 1);
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0)
            die("pthread_create");
    uint64_t t0 = now_ns();
    if (opt.requests < 0)
        opt.deadline = t0 + (uint64_t)(opt.duration_s * 1e9);
    pthread_barrier_wait(&opt.barrier);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(threads[i].tid, NULL);

    /* Merge. The elapsed time runs from the first request sent to the last
     * response received (warm-up requests excluded when there are any). */
    struct stats all = {0};
    for (int i = 0; i < opt.threads; i++) {
        struct stats *s = &threads[i].st;
        all.lat_ns = xrealloc(all.lat_ns, (all.n_lat + s->n_lat + 1) * sizeof(*all.lat_ns));
        if (s->n_lat > 0)
            memcpy(all.lat_ns + all.n_lat, s->lat_ns, s->n_lat * sizeof(*s->lat_ns));
        all.n_lat += s->n_lat;
        all.added_us =
            xrealloc(all.added_us, (all.n_added + s->n_added + 1) * sizeof(*all.added_us));
        if (s->n_added > 0)
            memcpy(all.added_us + all.n_added, s->added_us, s->n_added * sizeof(*s->added_us));
        all.n_added += s->n_added;
        all.ok += s->ok;
        all.non2xx += s->non2xx;
        all.errors += s->errors;
        all.timeouts += s->timeouts;
        all.cold_n += s->cold_n;
        all.warm += s->warm;
        all.dur_ms_sum += s->dur_ms_sum;
        all.dur_n += s->dur_n;
        if (s->first_start && (all.first_start == 0 || s->first_start < all.first_start))
            all.first_start = s->first_start;
        if (s->last_end > all.last_end)
            all.last_end = s->last_end;
    }
    double elapsed =
        all.last_end > all.first_start ? (double)(all.last_end - all.first_start) / 1e9 : 0.0;
    if (opt.raw_out != NULL) {
        FILE *f = fopen(opt.raw_out, "w");
        if (f == NULL)
            die("open %s: %s", opt.raw_out, strerror(errno));
        for (int i = 0; i < opt.threads; i++)
            for (size_t j = 0; j < threads[i].st.n_lat; j++)
                fprintf(f, "%.1f %d\n", (double)threads[i].st.lat_ns[j] / 1e3,
                        threads[i].st.cold[j]);
        fclose(f);
    }
    qsort(all.lat_ns, all.n_lat, sizeof(*all.lat_ns), cmp_u64);
    qsort(all.added_us, all.n_added, sizeof(*all.added_us), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < all.n_lat; i++)
        sum += (double)all.lat_ns[i];
    size_t n = all.n_lat;
#define LAT(q) (n ? (double)all.lat_ns[rank(n, q)] / 1e3 : 0.0)
#define ADD(q) (all.n_added ? all.added_us[rank(all.n_added, q)] : 0.0)
    double rps = elapsed > 0 ? (double)n / elapsed : 0.0;
    if (opt.json) {
        printf("{\"requests\":%zu,\"ok\":%llu,\"non2xx\":%llu,\"errors\":%llu,\"timeouts\":%llu,"
               "\"reconnects\":%llu,\"conns\":%d,\"threads\":%d,\"elapsed_s\":%.6f,\"rps\":%.1f,"
               "\"lat_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
               "\"max\":%.1f,\"mean\":%.1f},\"cold\":%llu,\"warm\":%llu,\"dur_ms_mean\":%.4f,"
               "\"added_us\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
               n, (unsigned long long)all.ok, (unsigned long long)all.non2xx,
               (unsigned long long)all.errors, (unsigned long long)all.timeouts,
               (unsigned long long)(all.reconnects), opt.conns, opt.threads, elapsed, rps, LAT(0.0),
               LAT(0.5), LAT(0.9), LAT(0.99), LAT(0.999), LAT(1.0), n ? sum / (double)n / 1e3 : 0.0,
               (unsigned long long)all.cold_n, (unsigned long long)all.warm,
               all.dur_n ? all.dur_ms_sum / (double)all.dur_n : 0.0, all.n_added, ADD(0.5),
               ADD(0.9), ADD(0.99), ADD(1.0));
    } else {
        printf("%zu requests in %.3f s: %.0f req/s; latency us p50 %.1f p90 %.1f p99 %.1f max "
               "%.1f; ok %llu, non-2xx %llu, errors %llu, timeouts %llu, cold %llu\n",
               n, elapsed, rps, LAT(0.5), LAT(0.9), LAT(0.99), LAT(1.0), (unsigned long long)all.ok,
               (unsigned long long)all.non2xx, (unsigned long long)all.errors,
               (unsigned long long)all.timeouts, (unsigned long long)all.cold_n);
    }
    for (int i = 0; i < opt.threads; i++) {
        free(threads[i].st.lat_ns);
        free(threads[i].st.added_us);
        free(threads[i].st.cold);
        close(threads[i].epfd);
    }
    for (int i = 0; i < opt.conns; i++) {
        conn_close(&conns[i]);
        free(conns[i].rbuf);
    }
    free(all.lat_ns);
    free(all.added_us);
    free(threads);
    free(conns);
    free(opt.request);
    freeaddrinfo(opt.addr);
    return all.errors + all.timeouts > 0 && all.ok == 0 ? 1 : 0;
}
