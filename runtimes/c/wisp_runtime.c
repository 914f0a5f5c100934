/*
 * wisp_runtime.c - the Runtime API client behind wisp_runtime.h: one
 * keep-alive HTTP/1.1 connection to AWS_LAMBDA_RUNTIME_API, the invocation
 * loop (which pipelines the next GET /invocation/next behind each response),
 * response building and two small JSON readers.
 *
 * The HTTP client understands what the Runtime API sends: a status line,
 * headers and a Content-Length body (no chunked encoding). Every size read
 * from the wire has a maximum. It depends on libc only and does nothing slow
 * at start, so a static bootstrap is ready as soon as connect() returns.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, vasprintf */
#endif
#include "wisp_runtime.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define API_PREFIX "/2018-06-01/runtime"
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_EVENT_BYTES (64u * 1024 * 1024)
#define MAX_BODY_BYTES (16u * 1024 * 1024)
#define MAX_REQUEST_ID 128

/* The Lambda-Runtime-* headers of a /next reply that an invocation exposes. */
enum rt_header {
    HDR_REQUEST_ID,
    HDR_DEADLINE,
    HDR_ARN,
    HDR_TRACE,
    HDR_CLIENT_CONTEXT,
    HDR_IDENTITY,
    HDR_COUNT,
};

static const char *const header_names[HDR_COUNT] = {
    [HDR_REQUEST_ID] = "Lambda-Runtime-Aws-Request-Id",
    [HDR_DEADLINE] = "Lambda-Runtime-Deadline-Ms",
    [HDR_ARN] = "Lambda-Runtime-Invoked-Function-Arn",
    [HDR_TRACE] = "Lambda-Runtime-Trace-Id",
    [HDR_CLIENT_CONTEXT] = "Lambda-Runtime-Client-Context",
    [HDR_IDENTITY] = "Lambda-Runtime-Cognito-Identity",
};

/* The connection to the Runtime API. buf holds bytes received and not yet
 * consumed (only ever part of the next reply). */
struct rt_conn {
    int fd; /* -1 when not connected */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[128]; /* the Host header: AWS_LAMBDA_RUNTIME_API as given */
    char *buf;
    size_t len, cap;
    bool next_sent; /* a GET /next went out behind the last POST; its reply comes next */
};

/* One reply: status, the interesting headers (heap strings or NULL) and the
 * body (heap, NUL-terminated, body_len bytes before the NUL). */
struct rt_reply {
    int status;
    bool close;
    char *headers[HDR_COUNT];
    char *body;
    size_t body_len;
};

struct wisp_rt_response {
    char *data;
    size_t len, cap;
    bool failed;
    char error_type[128];
    char *error_message; /* heap, or NULL */
};

static void reply_free(struct rt_reply *r)
{
    for (int i = 0; i < HDR_COUNT; i++)
        free(r->headers[i]);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void *rt_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("wisp runtime: out of memory\n", stderr);
        _exit(1);
    }
    return p;
}

static char *dup_range(const char *s, size_t n)
{
    char *p = rt_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- Connection ---------------------------------------------------------- */

/* Parses "a.b.c.d:port", "[v6]:port" or "localhost:port" into c->addr. */
static int conn_init(struct rt_conn *c, const char *api)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (api == NULL || strlen(api) >= sizeof(c->host))
        return -1;
    snprintf(c->host, sizeof(c->host), "%s", api);
    char host[128];
    const char *colon = strrchr(api, ':');
    if (colon == NULL)
        return -1;
    size_t hlen = (size_t)(colon - api);
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, api, hlen);
    host[hlen] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
        return -1;

    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->addr;
        host[hlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        c->addr_len = sizeof(*a6);
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&c->addr;
    if (hlen == 0 || strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return -1;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    c->addr_len = sizeof(*a4);
    return 0;
}

static void conn_close(struct rt_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
    c->next_sent = false;
}

static int conn_open(struct rt_conn *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (connect(fd, (struct sockaddr *)&c->addr, c->addr_len) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    c->fd = fd;
    c->len = 0;
    return 0;
}

static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* Receives more bytes into c->buf. Returns the count, 0 at end of stream, -1
 * on error (errno set). */
static ssize_t conn_fill(struct rt_conn *c)
{
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 16384;
        char *p = realloc(c->buf, cap);
        if (p == NULL)
            return -1;
        c->buf = p;
        c->cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            c->len += (size_t)n;
        return n;
    }
}

static bool header_is(const char *line, size_t len, const char *name, const char **value,
                      size_t *value_len)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *value_len = (size_t)(end - v);
    return true;
}

/* Reads one reply. *pristine stays true if the peer closed or reset the
 * connection before sending a byte of it (a stale keep-alive connection). */
static int read_reply(struct rt_conn *c, struct rt_reply *r, size_t max_body, bool *pristine)
{
    char *hend;
    *pristine = c->len == 0;
    while ((hend = memmem(c->buf ? c->buf : "", c->len, "\r\n\r\n", 4)) == NULL) {
        if (c->len > MAX_HEADER_BYTES) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t n = conn_fill(c);
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            return -1;
        }
        *pristine = false;
    }
    size_t head_len = (size_t)(hend - c->buf) + 4;

    const char *line = c->buf, *stop = hend + 2;
    const char *eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
    if (eol - line < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ') {
        errno = EPROTO;
        return -1;
    }
    r->status = atoi(line + 9);
    if (r->status < 100 || r->status > 999) {
        errno = EPROTO;
        return -1;
    }
    size_t content_length = 0;
    for (line = eol + 2; line < stop; line = eol + 2) {
        eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
        size_t len = (size_t)(eol - line), vlen;
        const char *v;
        if (header_is(line, len, "Content-Length", &v, &vlen)) {
            char num[24];
            if (vlen == 0 || vlen >= sizeof(num)) {
                errno = EPROTO;
                return -1;
            }
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            char *end;
            unsigned long long cl = strtoull(num, &end, 10);
            if (*end != '\0' || num[0] == '-' || cl > max_body) {
                errno = cl > max_body ? EMSGSIZE : EPROTO;
                return -1;
            }
            content_length = (size_t)cl;
        } else if (header_is(line, len, "Transfer-Encoding", &v, &vlen)) {
            errno = EPROTO; /* The Runtime API never sends chunked bodies. */
            return -1;
        } else if (header_is(line, len, "Connection", &v, &vlen)) {
            r->close = vlen == 5 && strncasecmp(v, "close", 5) == 0;
        } else {
            for (int i = 0; i < HDR_COUNT; i++) {
                if (r->headers[i] == NULL && header_is(line, len, header_names[i], &v, &vlen)) {
                    r->headers[i] = dup_range(v, vlen);
                    break;
                }
            }
        }
    }

    r->body = rt_alloc(content_length + 1);
    r->body_len = content_length;
    size_t have = c->len - head_len;
    if (have > content_length)
        have = content_length;
    memcpy(r->body, c->buf + head_len, have);
    size_t used = head_len + have;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    while (have < content_length) {
        ssize_t n = recv(c->fd, r->body + have, content_length - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            return -1;
        }
        have += (size_t)n;
    }
    r->body[content_length] = '\0';
    return 0;
}

/* Formats a request head into head[size]; returns its length or -1. */
static int format_head(char *head, size_t size, const struct rt_conn *c, const char *method,
                       const char *path, const char *extra_headers, size_t len)
{
    int hl = snprintf(head, size,
                      "%s " API_PREFIX "%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n%s\r\n",
                      method, path, c->host, len, extra_headers ? extra_headers : "");
    if (hl < 0 || (size_t)hl >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return hl;
}

/* Writes iov on c's open connection and reads one reply into r. On failure
 * *pristine says whether the server cannot have seen the request (a kept-alive
 * connection it had closed), so that it may be sent again on a new one. */
static int exchange(struct rt_conn *c, struct iovec *iov, int niov, size_t max_body,
                    struct rt_reply *r, bool *pristine)
{
    *pristine = true;
    if (send_all(c->fd, iov, niov) < 0) {
        *pristine = errno == EPIPE || errno == ECONNRESET;
        return -1;
    }
    reply_free(r);
    return read_reply(c, r, max_body, pristine);
}

/* Closes c after a failed exchange, keeping the failure's errno. */
static void conn_fail(struct rt_conn *c)
{
    int e = errno;
    conn_close(c);
    errno = e;
}

/* Sends one request and reads its reply into r (which the caller frees with
 * reply_free). A reused connection found closed is replaced once. */
static int rt_request(struct rt_conn *c, const char *method, const char *path,
                      const char *extra_headers, const void *body, size_t len, size_t max_body,
                      struct rt_reply *r)
{
    char head[1024];
    int hl = format_head(head, sizeof(head), c, method, path, extra_headers, len);
    if (hl < 0)
        return -1;
    for (int attempt = 0;; attempt++) {
        bool reused = c->fd >= 0, pristine;
        if (!reused && conn_open(c) < 0)
            return -1;
        struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, len}};
        if (exchange(c, iov, len ? 2 : 1, max_body, r, &pristine) == 0) {
            if (r->close)
                conn_close(c);
            return 0;
        }
        conn_fail(c);
        if (!(reused && pristine && attempt == 0))
            return -1;
    }
}

/*
 * Posts an invocation's response and, in the same write on the same
 * connection, the GET /invocation/next that would follow it (HTTP/1.1
 * pipelining), then reads the POST's reply into r. The GET's reply is read by
 * the next run_once (c->next_sent). This saves a write and a wake-up per
 * invocation on both sides; the Runtime API answers requests in order, so
 * the exchange on the wire is the same as without pipelining. If the server
 * closes the connection after the POST's reply, the GET was not taken and is
 * sent again on a new connection; a kept-alive connection found closed
 * before any reply is replaced and the POST sent alone, as rt_request does.
 */
static int post_and_next(struct rt_conn *c, const char *path, const void *body, size_t len,
                         struct rt_reply *r)
{
    if (c->fd < 0)
        return rt_request(c, "POST", path, NULL, body, len, MAX_HEADER_BYTES, r);
    char head[1024], next[512];
    int hl = format_head(head, sizeof(head), c, "POST", path, NULL, len);
    int nl = format_head(next, sizeof(next), c, "GET", "/invocation/next", NULL, 0);
    if (hl < 0 || nl < 0)
        return -1;
    struct iovec iov[3] = {{head, (size_t)hl}, {(void *)body, len}, {next, (size_t)nl}};
    bool pristine;
    if (exchange(c, iov, 3, MAX_HEADER_BYTES, r, &pristine) == 0) {
        if (r->close)
            conn_close(c); /* the server did not read the GET */
        else
            c->next_sent = true;
        return 0;
    }
    conn_fail(c);
    if (!pristine)
        return -1;
    return rt_request(c, "POST", path, NULL, body, len, MAX_HEADER_BYTES, r);
}

/* Gets the next event: the reply to the GET pipelined behind the last
 * response if there is one, else a GET of its own. */
static int get_next(struct rt_conn *c, struct rt_reply *r)
{
    if (c->next_sent) {
        c->next_sent = false;
        bool pristine = true;
        if (read_reply(c, r, MAX_EVENT_BYTES, &pristine) == 0) {
            if (r->close)
                conn_close(c);
            return 0;
        }
        conn_fail(c);
        if (!pristine)
            return -1;
        reply_free(r); /* closed before any reply: ask again on a new connection */
    }
    return rt_request(c, "GET", "/invocation/next", NULL, NULL, 0, MAX_EVENT_BYTES, r);
}

/* ---- Responses ----------------------------------------------------------- */

void wisp_rt_reset(wisp_rt_response_t *resp)
{
    resp->len = 0;
    if (resp->data)
        resp->data[0] = '\0';
}

static int reserve(wisp_rt_response_t *resp, size_t extra)
{
    if (extra > MAX_BODY_BYTES || resp->len + extra > MAX_BODY_BYTES)
        return -1;
    size_t need = resp->len + extra + 1;
    if (need <= resp->cap)
        return 0;
    size_t cap = resp->cap ? resp->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(resp->data, cap);
    if (p == NULL)
        return -1;
    resp->data = p;
    resp->cap = cap;
    return 0;
}

int wisp_rt_append(wisp_rt_response_t *resp, const void *data, size_t len)
{
    if (reserve(resp, len) < 0)
        return -1;
    if (len)
        memcpy(resp->data + resp->len, data, len);
    resp->len += len;
    resp->data[resp->len] = '\0';
    return 0;
}

static int vappendf(wisp_rt_response_t *resp, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || reserve(resp, (size_t)n) < 0)
        return -1;
    vsnprintf(resp->data + resp->len, (size_t)n + 1, fmt, ap);
    resp->len += (size_t)n;
    return 0;
}

int wisp_rt_appendf(wisp_rt_response_t *resp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vappendf(resp, fmt, ap);
    va_end(ap);
    return rc;
}

int wisp_rt_append_json_string(wisp_rt_response_t *resp, const char *s, size_t len)
{
    size_t start = resp->len;
    if (wisp_rt_append(resp, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        const char *out = NULL;
        size_t n = 2;
        switch (ch) {
        case '"': out = "\\\""; break;
        case '\\': out = "\\\\"; break;
        case '\n': out = "\\n"; break;
        case '\r': out = "\\r"; break;
        case '\t': out = "\\t"; break;
        case '\b': out = "\\b"; break;
        case '\f': out = "\\f"; break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", ch);
                out = esc;
                n = 6;
            }
        }
        if (out == NULL) {
            size_t run = i;
            while (run < len && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
                run++;
            if (wisp_rt_append(resp, s + i, run - i) < 0)
                goto fail;
            i = run - 1;
        } else if (wisp_rt_append(resp, out, n) < 0) {
            goto fail;
        }
    }
    if (wisp_rt_append(resp, "\"", 1) == 0)
        return 0;
fail:
    resp->len = start;
    resp->data[start] = '\0';
    return -1;
}

int wisp_rt_fail(wisp_rt_response_t *resp, const char *error_type, const char *fmt, ...)
{
    resp->failed = true;
    snprintf(resp->error_type, sizeof(resp->error_type), "%s",
             error_type && *error_type ? error_type : "HandlerError");
    free(resp->error_message);
    resp->error_message = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&resp->error_message, fmt, ap) < 0)
        resp->error_message = NULL;
    va_end(ap);
    return -1;
}

static void response_clear(wisp_rt_response_t *resp)
{
    wisp_rt_reset(resp);
    resp->failed = false;
    resp->error_type[0] = '\0';
    free(resp->error_message);
    resp->error_message = NULL;
}

/* Builds Lambda's error document {"errorMessage","errorType","stackTrace":[]}
 * into out (reset first). */
static int error_document(wisp_rt_response_t *out, const char *type, const char *message)
{
    wisp_rt_reset(out);
    if (wisp_rt_append(out, "{\"errorMessage\":", 16) < 0 ||
        wisp_rt_append_json_string(out, message, strlen(message)) < 0 ||
        wisp_rt_append(out, ",\"errorType\":", 13) < 0 ||
        wisp_rt_append_json_string(out, type, strlen(type)) < 0 ||
        wisp_rt_append(out, ",\"stackTrace\":[]}", 17) < 0)
        return -1;
    return 0;
}

/* Keeps printable ASCII only, so a type can go in a header. */
static void header_safe(char *dst, size_t size, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < size; i++) {
        if (src[i] >= 0x20 && src[i] <= 0x7e)
            dst[j++] = src[i];
    }
    dst[j] = '\0';
    if (j == 0)
        snprintf(dst, size, "Unknown");
}

static int post_error(struct rt_conn *c, const char *path, const char *type, const char *message)
{
    wisp_rt_response_t doc = {0};
    char safe[128], headers[256];
    header_safe(safe, sizeof(safe), type);
    snprintf(headers, sizeof(headers),
             "Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: %s\r\n", safe);
    struct rt_reply r = {0};
    int rc = error_document(&doc, type, message);
    if (rc == 0)
        rc = rt_request(c, "POST", path, headers, doc.data, doc.len, MAX_HEADER_BYTES, &r);
    if (rc == 0 && r.status >= 300)
        fprintf(stderr, "wisp runtime: POST %s answered %d\n", path, r.status);
    reply_free(&r);
    free(doc.data);
    return rc;
}

/* ---- The loop ------------------------------------------------------------ */

static bool request_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > MAX_REQUEST_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

int64_t wisp_rt_remaining_ms(const wisp_rt_invocation_t *inv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return inv->deadline_ms > now ? inv->deadline_ms - now : 0;
}

/* Waits for one invocation, runs handler and posts its outcome. Returns -1
 * when the Runtime API cannot be used any more. */
static int run_once(struct rt_conn *c, wisp_rt_handler_t handler, wisp_rt_response_t *resp)
{
    struct rt_reply r = {0};
    if (get_next(c, &r) < 0) {
        fprintf(stderr, "wisp runtime: GET /next failed: %s\n", strerror(errno));
        reply_free(&r);
        return -1;
    }
    if (r.status != 200) {
        fprintf(stderr, "wisp runtime: GET /next answered %d\n", r.status);
        reply_free(&r);
        return -1;
    }
    const char *h[HDR_COUNT];
    for (int i = 0; i < HDR_COUNT; i++)
        h[i] = r.headers[i] ? r.headers[i] : "";
    if (!request_id_ok(h[HDR_REQUEST_ID])) {
        fprintf(stderr, "wisp runtime: bad request id from /next\n");
        reply_free(&r);
        return -1;
    }
    wisp_rt_invocation_t inv = {
        .request_id = h[HDR_REQUEST_ID],
        .deadline_ms = strtoll(h[HDR_DEADLINE], NULL, 10),
        .function_arn = h[HDR_ARN],
        .trace_id = h[HDR_TRACE],
        .client_context = h[HDR_CLIENT_CONTEXT],
        .cognito_identity = h[HDR_IDENTITY],
        .event = r.body,
        .event_len = r.body_len,
    };
    if (*inv.trace_id)
        setenv("_X_AMZN_TRACE_ID", inv.trace_id, 1);
    else
        unsetenv("_X_AMZN_TRACE_ID");

    response_clear(resp);
    int hrc = handler(&inv, resp);
    /* Make what the handler printed visible before the result is. */
    fflush(stdout);
    fflush(stderr);

    char path[MAX_REQUEST_ID + 32];
    struct rt_reply pr = {0};
    int rc;
    if (hrc == 0 && !resp->failed) {
        snprintf(path, sizeof(path), "/invocation/%s/response", inv.request_id);
        rc = post_and_next(c, path, resp->data, resp->len, &pr);
        if (rc == 0 && pr.status >= 300)
            fprintf(stderr, "wisp runtime: response for %s refused (%d)\n", inv.request_id,
                    pr.status);
    } else {
        char fallback[64];
        const char *type = resp->failed ? resp->error_type : "HandlerError";
        const char *msg = resp->error_message;
        if (msg == NULL) {
            snprintf(fallback, sizeof(fallback), "handler returned %d", hrc);
            msg = fallback;
        }
        fprintf(stderr, "[ERROR] %s: %s\n", type, msg);
        snprintf(path, sizeof(path), "/invocation/%s/error", inv.request_id);
        rc = post_error(c, path, type, msg);
    }
    if (rc < 0)
        fprintf(stderr, "wisp runtime: posting the result failed: %s\n", strerror(errno));
    reply_free(&pr);
    reply_free(&r);
    return rc;
}

static int conn_from_env(struct rt_conn *c)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (conn_init(c, api) < 0) {
        fprintf(stderr, "wisp runtime: bad AWS_LAMBDA_RUNTIME_API \"%s\"\n", api ? api : "");
        return -1;
    }
    return 0;
}

int wisp_rt_main(wisp_rt_handler_t handler)
{
    struct rt_conn c;
    wisp_rt_response_t resp = {0};
    if (conn_from_env(&c) < 0)
        return 1;
    while (run_once(&c, handler, &resp) == 0) {
    }
    conn_close(&c);
    free(c.buf);
    response_clear(&resp);
    free(resp.data);
    return 1;
}

void wisp_rt_init_error(const char *error_type, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    const char *type = error_type && *error_type ? error_type : "Runtime.InitError";
    fprintf(stderr, "[ERROR] %s: %s\n", type, msg ? msg : "");
    struct rt_conn c;
    if (conn_from_env(&c) == 0 && post_error(&c, "/init/error", type, msg ? msg : "") < 0)
        fprintf(stderr, "wisp runtime: could not report the init error: %s\n", strerror(errno));
    fflush(stdout);
    _exit(1);
}

/* ---- JSON readers -------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at an opening quote; returns the byte after the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skips one value (leniently: nesting is counted, not checked for kind). */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (p == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *start = p;
    while (p < end && !strchr(",}] \t\r\n", *p))
        p++;
    return p > start ? p : NULL;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

long wisp_rt_json_string(const char *raw, size_t raw_len, char *out, size_t out_size)
{
    if (raw_len < 2 || raw[0] != '"' || raw[raw_len - 1] != '"' || out_size == 0)
        return -1;
    const char *p = raw + 1, *end = raw + raw_len - 1;
    size_t n = 0;
    while (p < end) {
        unsigned char ch = (unsigned char)*p++;
        char buf[4];
        size_t k = 1;
        if (ch == '"' || ch < 0x20)
            return -1;
        if (ch != '\\') {
            buf[0] = (char)ch;
        } else {
            if (p >= end)
                return -1;
            char e = *p++;
            switch (e) {
            case '"': buf[0] = '"'; break;
            case '\\': buf[0] = '\\'; break;
            case '/': buf[0] = '/'; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (end - p < 4 || hex4(p, &cp) < 0)
                    return -1;
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return -1;
                }
                if (cp < 0x80) {
                    buf[0] = (char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (char)(0xc0 | (cp >> 6));
                    buf[1] = (char)(0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp < 0x10000) {
                    buf[0] = (char)(0xe0 | (cp >> 12));
                    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[2] = (char)(0x80 | (cp & 0x3f));
                    k = 3;
                } else {
                    buf[0] = (char)(0xf0 | (cp >> 18));
                    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[3] = (char)(0x80 | (cp & 0x3f));
                    k = 4;
                }
                break;
            }
            default: return -1;
            }
        }
        if (n + k >= out_size)
            return -1;
        memcpy(out + n, buf, k);
        n += k;
    }
    out[n] = '\0';
    return (long)n;
}

const char *wisp_rt_json_get(const char *json, size_t len, const char *key, size_t *value_len)
{
    const char *end = json + len, *p = skip_ws(json, end);
    size_t klen = strlen(key);
    if (p >= end || *p != '{')
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return NULL;
    while (p < end) {
        if (*p != '"')
            return NULL;
        const char *kend = skip_string(p, end);
        if (kend == NULL)
            return NULL;
        char name[256];
        long n = wisp_rt_json_string(p, (size_t)(kend - p), name, sizeof(name));
        bool match = n >= 0 && (size_t)n == klen && memcmp(name, key, klen) == 0;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        const char *vend = skip_value(p, end);
        if (vend == NULL)
            return NULL;
        if (match) {
            *value_len = (size_t)(vend - p);
            return p;
        }
        p = skip_ws(vend, end);
        if (p >= end || *p != ',')
            return NULL;
        p = skip_ws(p + 1, end);
    }
    return NULL;
}
