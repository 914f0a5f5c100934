/*
 * test_http.c - unit tests for the HTTP server: a real server on 127.0.0.1:0
 * runs on a uv loop in the test process while a client thread drives it
 * with plain blocking sockets. The handler's behaviour is chosen by path:
 *
 *   /echo     answers at once with what it received
 *   /defer    answers after ?ms= milliseconds (timer)
 *   /stream   answers with ?n= chunks, one every 20 ms
 *   /hang     never answers until aborted; answers 50 ms after the abort
 *   /big      answers with ?n= bytes
 *   /flood    streams 256 KiB chunks every millisecond until aborted (64 MiB at most)
 *   /pump     streams ?mb= MiB in 64 KiB chunks as fast as the client takes them
 *             (wisp_http_req_stream_ready)
 */
#define TAP_TIMEOUT 60
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "core/util.h"
#include "http/http.h"
#include "http/internal.h"
#include "obs/metrics.h"
#include "tap.h"

/* ---- the server side (loop thread) ------------------------------------- */

static uv_loop_t loop;
static wisp_http_server_t *srv;
static wisp_http_listener_t *listener;
static int port;
static uv_async_t control;
static atomic_int control_op;      /* what the client thread asks the loop to do */
static atomic_int aborts;          /* abort callbacks run */
static atomic_int handled;         /* requests seen by the handler */
static atomic_int shutdown_done;   /* wisp_http_server_shutdown's done ran */
static atomic_int answered_late;   /* deferred answers given after the client left */
static unsigned shutdown_grace_ms; /* grace used when the client thread finishes */

enum { OP_FINISH = 1, OP_CLOSE_LISTENER, OP_SHUTDOWN };

struct deferred {
    uv_timer_t timer;
    wisp_http_req_t *req;
    int left; /* chunks still to send (stream) */
    int n;    /* chunk counter */
    bool after_abort;
};

static void deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static void answer_text(wisp_http_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void answer_text(wisp_http_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    wisp_http_respond(req, 200, "text/plain", "X-Test: 1\r\n", s, (size_t)n);
    free(s);
}

static void defer_fire(uv_timer_t *t)
{
    struct deferred *d = t->data;
    if (d->after_abort) {
        CHECK(d->req->aborted);
        atomic_fetch_add(&answered_late, 1);
    }
    answer_text(d->req, "deferred %s", d->req->path);
    uv_close((uv_handle_t *)t, deferred_closed);
}

static void stream_tick(uv_timer_t *t)
{
    struct deferred *d = t->data;
    if (d->left-- > 0) {
        char chunk[32];
        int n = snprintf(chunk, sizeof chunk, "chunk%d;", d->n++);
        wisp_http_respond_chunk(d->req, chunk, (size_t)n);
        return;
    }
    wisp_http_respond_end(d->req);
    uv_close((uv_handle_t *)t, deferred_closed);
}

static atomic_long flooded; /* bytes /flood handed to respond_chunk */

static void flood_tick(uv_timer_t *t)
{
    struct deferred *d = t->data;
    static char chunk[256 * 1024];
    if (d->req->aborted || d->left-- <= 0) {
        wisp_http_respond_end(d->req); /* discarded quietly after an abort */
        uv_close((uv_handle_t *)t, deferred_closed);
        return;
    }
    memset(chunk, 'f', sizeof chunk);
    wisp_http_respond_chunk(d->req, chunk, sizeof chunk);
    atomic_fetch_add(&flooded, (long)sizeof chunk);
}

struct pump {
    wisp_http_req_t *req;
    long left; /* bytes still to send */
};

static void pump_more(wisp_http_req_t *req, void *data)
{
    struct pump *p = data;
    static char chunk[64 * 1024];
    memset(chunk, 'p', sizeof chunk);
    while (p->left > 0) {
        if (!wisp_http_req_stream_ready(req, pump_more, p))
            return; /* called again once the client caught up */
        wisp_http_respond_chunk(req, chunk, sizeof chunk);
        p->left -= (long)sizeof chunk;
    }
    wisp_http_respond_end(req);
    free(p);
}

static void pump_aborted(wisp_http_req_t *req, void *data)
{
    atomic_fetch_add(&aborts, 1);
    free(data);
    wisp_http_respond_end(req);
}

static void hang_aborted(wisp_http_req_t *req, void *data)
{
    atomic_fetch_add(&aborts, 1);
    /* Answer later, after the client is gone: must be discarded quietly. */
    struct deferred *d = xcalloc(1, sizeof *d);
    d->req = req;
    d->after_abort = true;
    uv_timer_init(&loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, defer_fire, 50, 0);
}

static void count_abort(wisp_http_req_t *req, void *data)
{
    atomic_fetch_add(&aborts, 1);
}

static int query_int(wisp_http_req_t *req, const char *name, int dflt)
{
    char *v = wisp_http_query_param(req->query, name);
    int n = v ? atoi(v) : dflt;
    free(v);
    return n;
}

static void handler(wisp_http_req_t *req, void *data)
{
    atomic_fetch_add(&handled, 1);
    CHECK(req->listener != NULL);
    CHECK(strncmp(req->peer, "127.0.0.1:", 10) == 0 || strncmp(req->peer, "[::1]:", 6) == 0 ||
          strcmp(req->peer, "unix") == 0);
    if (strcmp(req->path, "/echo") == 0) {
        const char *tr = wisp_http_req_trailer(req, "X-Checksum");
        const char *h = wisp_http_req_header(req, "x-hello");
        answer_text(req, "%s %s q=%s h=%s t=%s n=%zu/%zu body=%s", req->method, req->path,
                    req->query, h ? h : "-", tr ? tr : "-", req->nheaders, req->ntrailers,
                    req->body);
        return;
    }
    if (strcmp(req->path, "/defer") == 0 || strcmp(req->path, "/stream") == 0) {
        bool stream = req->path[1] == 's';
        struct deferred *d = xcalloc(1, sizeof *d);
        d->req = req;
        uv_timer_init(&loop, &d->timer);
        d->timer.data = d;
        wisp_http_req_on_abort(req, count_abort, NULL);
        if (stream) {
            d->left = query_int(req, "n", 3);
            wisp_http_respond_start(req, 200, "text/plain", NULL);
            uv_timer_start(&d->timer, stream_tick, 20, 20);
        } else {
            uv_timer_start(&d->timer, defer_fire, (uint64_t)query_int(req, "ms", 10), 0);
        }
        return;
    }
    if (strcmp(req->path, "/pump") == 0) {
        struct pump *p = xcalloc(1, sizeof *p);
        p->req = req;
        p->left = (long)query_int(req, "mb", 1) * 1024 * 1024;
        wisp_http_req_on_abort(req, pump_aborted, p);
        wisp_http_respond_start(req, 200, "application/octet-stream", NULL);
        pump_more(req, p);
        return;
    }
    if (strcmp(req->path, "/flood") == 0) {
        struct deferred *d = xcalloc(1, sizeof *d);
        d->req = req;
        d->left = 256;
        uv_timer_init(&loop, &d->timer);
        d->timer.data = d;
        wisp_http_req_on_abort(req, count_abort, NULL);
        wisp_http_respond_start(req, 200, "text/plain", NULL);
        uv_timer_start(&d->timer, flood_tick, 1, 1);
        return;
    }
    if (strcmp(req->path, "/hang") == 0) {
        wisp_http_req_on_abort(req, hang_aborted, NULL);
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        size_t n = (size_t)query_int(req, "n", 1000);
        char *b = xmalloc(n);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)('a' + i % 26);
        wisp_http_respond(req, 200, "application/octet-stream", NULL, b, n);
        free(b);
        return;
    }
    wisp_http_respond(req, 404, "text/plain", NULL, "nope", 4);
}

static void shutdown_cb(void *data)
{
    atomic_store(&shutdown_done, 1);
}

static void control_cb(uv_async_t *a)
{
    int op = atomic_exchange(&control_op, 0);
    if (op == OP_CLOSE_LISTENER) {
        wisp_http_listener_close(listener);
        listener = NULL;
    } else if (op == OP_SHUTDOWN) {
        wisp_http_server_shutdown(srv, shutdown_grace_ms, shutdown_cb, NULL);
    } else if (op == OP_FINISH) {
        wisp_http_server_shutdown(srv, shutdown_grace_ms, shutdown_cb, NULL);
        uv_close((uv_handle_t *)a, NULL);
    }
}

/* Ask the loop thread to do op (one at a time). */
static void loop_do(int op)
{
    while (atomic_load(&control_op) != 0)
        usleep(1000);
    atomic_store(&control_op, op);
    uv_async_send(&control);
    while (atomic_load(&control_op) != 0)
        usleep(1000);
}

static void start_server(const wisp_http_limits_t *lim)
{
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", lim, handler, NULL);
    wisp_err_t err;
    CHECK(wisp_http_server_listen(srv, "127.0.0.1:0", (void *)0x1234, &listener, &err) == 0);
    port = wisp_http_listener_port(listener);
    CHECK(port > 0);
}

static void (*client_fn)(void);

static void *client_main(void *arg)
{
    client_fn();
    return NULL;
}

/* Run the loop while client() runs in a thread; then shut the server down
 * and check that every handle was released. */
static void run_with_client(void (*client)(void))
{
    pthread_t th;
    client_fn = client;
    CHECK(pthread_create(&th, NULL, client_main, NULL) == 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    CHECK(atomic_load(&shutdown_done) == 1);
    CHECK(uv_loop_close(&loop) == 0);
}

/* ---- the client side (client thread) ----------------------------------- */

struct client {
    int fd;
    char *buf;
    size_t len, cap;
};

struct resp {
    int status;
    char head[16384];
    char *body;
    size_t body_len;
};

static int connect_port(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void client_open_port(struct client *c, int p)
{
    c->fd = connect_port(p);
    c->len = 0;
    c->cap = 65536;
    c->buf = xmalloc(c->cap);
}

static void client_open(struct client *c)
{
    client_open_port(c, port);
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c->buf);
    c->buf = NULL;
}

static void send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void send_str(struct client *c, const char *s)
{
    send_all(c->fd, s, strlen(s));
}

/* Read more into c->buf; returns bytes read, 0 on EOF, -1 on error/timeout. */
static ssize_t client_fill(struct client *c)
{
    if (c->len == c->cap) {
        c->cap *= 2;
        c->buf = xrealloc(c->buf, c->cap);
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r > 0)
        c->len += (size_t)r;
    return r;
}

static void client_consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Wait until n bytes are buffered; false on EOF or error. */
static bool client_need(struct client *c, size_t n)
{
    while (c->len < n)
        if (client_fill(c) <= 0)
            return false;
    return true;
}

/* Read one line (without CRLF) into out. */
static bool client_line(struct client *c, char *out, size_t max)
{
    for (;;) {
        char *nl = memmem(c->buf, c->len, "\r\n", 2);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            CHECK(n < max);
            memcpy(out, c->buf, n);
            out[n] = '\0';
            client_consume(c, n + 2);
            return true;
        }
        if (client_fill(c) <= 0)
            return false;
    }
}

static const char *resp_header(const struct resp *r, const char *name, char *out, size_t max)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p != NULL && p[2] != '\0') {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            CHECK(vl < max);
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Read one response; false on EOF before one arrived. */
static bool read_response(struct client *c, struct resp *r, bool head_req)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end != NULL)
            break;
        if (client_fill(c) <= 0)
            return false;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    CHECK(hl < sizeof r->head);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    client_consume(c, hl);
    CHECK(strncmp(r->head, "HTTP/1.1 ", 9) == 0);
    r->status = atoi(r->head + 9);
    char v[256];
    if (head_req || r->status < 200 || r->status == 204 || r->status == 304)
        return true;
    if (resp_header(r, "Transfer-Encoding", v, sizeof v) != NULL) {
        CHECK(strcasecmp(v, "chunked") == 0);
        wisp_buf_t body = WISP_BUF_INIT(0);
        for (;;) {
            char line[64];
            CHECK(client_line(c, line, sizeof line));
            size_t n = strtoul(line, NULL, 16);
            if (n == 0) {
                CHECK(client_line(c, line, sizeof line));
                CHECK(line[0] == '\0');
                break;
            }
            CHECK(client_need(c, n + 2));
            wisp_buf_add(&body, c->buf, n);
            CHECK(memcmp(c->buf + n, "\r\n", 2) == 0);
            client_consume(c, n + 2);
        }
        r->body_len = body.len;
        r->body = wisp_buf_steal(&body, NULL);
        return true;
    }
    CHECK(resp_header(r, "Content-Length", v, sizeof v) != NULL);
    size_t n = strtoul(v, NULL, 10);
    CHECK(client_need(c, n));
    r->body = xmalloc(n + 1);
    memcpy(r->body, c->buf, n);
    r->body[n] = '\0';
    r->body_len = n;
    client_consume(c, n);
    return true;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* True if the server closed the connection (EOF or reset) within the socket timeout. */
static bool client_sees_eof(struct client *c)
{
    for (;;) {
        ssize_t r = client_fill(c);
        if (r == 0)
            return true;
        if (r < 0)
            return errno == ECONNRESET;
    }
}

static uint64_t now_ms(void)
{
    return wisp_mono_ns() / 1000000;
}

static void finish(void)
{
    loop_do(OP_FINISH);
}

/* ---- tests ------------------------------------------------------------- */

static void client_simple_get(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /echo?x=1&y=%20z HTTP/1.1\r\nHost: a\r\nX-Hello:  world  \r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "GET /echo q=x=1&y=%20z h=world t=- n=2/0 body=");
    char v[128];
    CHECK(resp_header(&r, "Date", v, sizeof v) != NULL);
    CHECK(strstr(v, "GMT") != NULL);
    CHECK_STR(resp_header(&r, "Content-Type", v, sizeof v), "text/plain");
    CHECK_STR(resp_header(&r, "X-Test", v, sizeof v), "1");
    CHECK(resp_header(&r, "Connection", v, sizeof v) == NULL);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(simple_get)
{
    start_server(NULL);
    run_with_client(client_simple_get);
    CHECK_INT(atomic_load(&handled), 1);
}

static void client_keep_alive(void)
{
    struct client c;
    client_open(&c);
    for (int i = 0; i < 2; i++) {
        send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
        struct resp r;
        CHECK(read_response(&c, &r, false));
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
    client_close(&c);
    finish();
}

TEST(keep_alive_two_requests)
{
    start_server(NULL);
    run_with_client(client_keep_alive);
    CHECK_INT(atomic_load(&handled), 2);
    wisp_metric_t *m = wisp_metrics_counter("wisp_http_requests_total", "");
    CHECK(wisp_metrics_value(m, "listener=\"test\",code=\"200\"") == 2);
    wisp_metric_t *h =
        wisp_metrics_histogram("wisp_http_request_duration_seconds", "",
                               wisp_metrics_latency_buckets, wisp_metrics_latency_nbuckets);
    CHECK(wisp_metrics_value(h, "listener=\"test\"") == 2);
}

static void client_pipelined(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /defer?ms=200 HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /defer?ms=50 HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /echo?third HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_STR(r.body, "deferred /defer");
    resp_free(&r);
    CHECK(read_response(&c, &r, false));
    CHECK_STR(r.body, "deferred /defer");
    resp_free(&r);
    CHECK(read_response(&c, &r, false));
    CHECK(strncmp(r.body, "GET /echo q=third", 17) == 0);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(pipelined_answers_in_order)
{
    start_server(NULL);
    run_with_client(client_pipelined);
    CHECK_INT(atomic_load(&handled), 3);
}

static void client_pipeline_limit(void)
{
    struct client c;
    client_open(&c);
    wisp_buf_t req = WISP_BUF_INIT(0);
    for (int i = 0; i < 10; i++)
        wisp_buf_addf(&req, "GET /defer?ms=%d HTTP/1.1\r\nHost: a\r\n\r\n", 100 - i * 10);
    send_all(c.fd, req.data, req.len);
    wisp_buf_free(&req);
    for (int i = 0; i < 10; i++) {
        struct resp r;
        CHECK(read_response(&c, &r, false));
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
    client_close(&c);
    finish();
}

TEST(pipeline_limit_pauses_and_resumes)
{
    wisp_http_limits_t lim = {.max_pipelined = 2};
    start_server(&lim);
    run_with_client(client_pipeline_limit);
    CHECK_INT(atomic_load(&handled), 10);
}

static void client_chunked_trailers(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Trailer: X-Checksum\r\n\r\n"
                 "5\r\nhello\r\n");
    usleep(20000);
    send_str(&c, "6;ext=1\r\n world\r\n0\r\nX-Checksum: abc123\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "POST /echo q= h=- t=abc123 n=3/1 body=hello world");
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(chunked_body_with_trailers)
{
    start_server(NULL);
    run_with_client(client_chunked_trailers);
}

static void client_expect_ok(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                 "Expect: 100-continue\r\n\r\n");
    char line[128];
    CHECK(client_line(&c, line, sizeof line));
    CHECK_STR(line, "HTTP/1.1 100 Continue");
    CHECK(client_line(&c, line, sizeof line));
    CHECK_STR(line, "");
    send_str(&c, "abcde");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "body=abcde") != NULL);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(expect_continue_accepted)
{
    start_server(NULL);
    run_with_client(client_expect_ok);
}

static void client_expect_413(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 413);
    char v[64];
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "close");
    CHECK(strstr(r.body, "too_large") != NULL);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    finish();
}

TEST(expect_continue_rejected_413)
{
    wisp_http_limits_t lim = {.max_body_bytes = 1024};
    start_server(&lim);
    run_with_client(client_expect_413);
    CHECK_INT(atomic_load(&handled), 0);
    wisp_metric_t *m = wisp_metrics_counter("wisp_http_requests_total", "");
    CHECK(wisp_metrics_value(m, "listener=\"test\",code=\"413\"") == 1);
}

static void client_big_header(void)
{
    struct client c;
    client_open(&c);
    char *big = xmalloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: ");
    send_str(&c, big);
    send_str(&c, "\r\n\r\n");
    free(big);
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 431);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    finish();
}

TEST(oversized_header_431)
{
    wisp_http_limits_t lim = {.max_header_bytes = 4096};
    start_server(&lim);
    run_with_client(client_big_header);
    CHECK_INT(atomic_load(&handled), 0);
}

static void client_big_body(void)
{
    struct client c;
    struct resp r;
    /* Declared too large: answered before the body is sent. */
    client_open(&c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 413);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    /* Chunked and growing past the limit. */
    client_open(&c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'y', sizeof chunk);
    bool got = false;
    for (int i = 0; i < 10 && !got; i++) {
        char hdr[16];
        snprintf(hdr, sizeof hdr, "%zx\r\n", sizeof chunk);
        if (send(c.fd, hdr, strlen(hdr), MSG_NOSIGNAL) < 0 ||
            send(c.fd, chunk, sizeof chunk, MSG_NOSIGNAL) < 0 ||
            send(c.fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
            break;
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
        got = poll(&pfd, 1, 20) > 0;
    }
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 413);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    /* Within the limit still works. */
    client_open(&c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd");
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(oversized_body_413)
{
    wisp_http_limits_t lim = {.max_body_bytes = 2048};
    start_server(&lim);
    run_with_client(client_big_body);
    CHECK_INT(atomic_load(&handled), 1);
}

static void client_malformed(void)
{
    struct client a, b;
    client_open(&a);
    client_open(&b);
    /* b starts a request, a sends garbage, b finishes: b must be served. */
    send_str(&b, "GET /echo HTTP/1.1\r\nHo");
    send_str(&a, "GET /echo HTTP/1.1\r\nBad Header Line\r\n\r\n");
    struct resp r;
    CHECK(read_response(&a, &r, false));
    CHECK_INT(r.status, 400);
    char v[64];
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    CHECK(client_sees_eof(&a));
    send_str(&b, "st: a\r\n\r\n");
    CHECK(read_response(&b, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    /* A request smuggling attempt (both framings) is refused too. */
    client_close(&a);
    client_open(&a);
    send_str(&a, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(read_response(&a, &r, false));
    CHECK_INT(r.status, 400);
    resp_free(&r);
    client_close(&a);
    /* An answer after a good pipelined request comes after that answer. */
    client_open(&a);
    send_str(&a, "GET /defer?ms=50 HTTP/1.1\r\nHost: a\r\n\r\n\x01garbage\r\n\r\n");
    CHECK(read_response(&a, &r, false));
    CHECK_INT(r.status, 200);
    CHECK(resp_header(&r, "Connection", v, sizeof v) == NULL);
    resp_free(&r);
    CHECK(read_response(&a, &r, false));
    CHECK_INT(r.status, 400);
    resp_free(&r);
    CHECK(client_sees_eof(&a));
    client_close(&a);
    client_close(&b);
    finish();
}

TEST(malformed_400_only_that_connection)
{
    start_server(NULL);
    run_with_client(client_malformed);
}

static void client_idle(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    resp_free(&r);
    uint64_t t0 = now_ms();
    CHECK(client_sees_eof(&c));
    uint64_t took = now_ms() - t0;
    CHECK(took >= 150 && took < 3000);
    client_close(&c);
    /* A connection that never sends anything is closed too. */
    client_open(&c);
    t0 = now_ms();
    CHECK(client_sees_eof(&c));
    CHECK(now_ms() - t0 < 3000);
    client_close(&c);
    finish();
}

TEST(idle_timeout_closes)
{
    wisp_http_limits_t lim = {.idle_timeout_ms = 200};
    start_server(&lim);
    run_with_client(client_idle);
    wisp_metric_t *g = wisp_metrics_gauge("wisp_http_connections", "");
    CHECK(wisp_metrics_value(g, "listener=\"test\"") == 0);
}

static void client_slow(void)
{
    struct client c;
    /* Headers trickling in: one byte every 50 ms never completes in time. */
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\n");
    uint64_t t0 = now_ms();
    struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
    while (poll(&pfd, 1, 50) == 0)
        CHECK(send(c.fd, "X", 1, MSG_NOSIGNAL) == 1);
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 408);
    CHECK(now_ms() - t0 < 2000);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    /* A body trickling in. */
    client_open(&c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    pfd.fd = c.fd;
    while (poll(&pfd, 1, 50) == 0)
        CHECK(send(c.fd, "X", 1, MSG_NOSIGNAL) == 1);
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 408);
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    finish();
}

TEST(slow_client_times_out)
{
    wisp_http_limits_t lim = {.request_timeout_ms = 300, .idle_timeout_ms = 60000};
    start_server(&lim);
    run_with_client(client_slow);
    CHECK_INT(atomic_load(&handled), 0);
}

static void client_abort(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
    while (atomic_load(&handled) < 1)
        usleep(1000);
    client_close(&c);
    uint64_t t0 = now_ms();
    while (atomic_load(&answered_late) < 1 && now_ms() - t0 < 3000)
        usleep(1000);
    CHECK_INT(atomic_load(&aborts), 1);
    CHECK_INT(atomic_load(&answered_late), 1);
    /* The server still serves. */
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(abort_when_client_disconnects)
{
    start_server(NULL);
    run_with_client(client_abort);
    CHECK_INT(atomic_load(&aborts), 1);
}

static int adopted_fd;

static void client_adopt(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(adopt_listening_fd)
{
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", NULL, handler, NULL);
    adopted_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(adopted_fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(adopted_fd, 16) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(adopted_fd, (struct sockaddr *)&a, &al) == 0);
    wisp_err_t err;
    CHECK(wisp_http_server_adopt(srv, adopted_fd, NULL, &listener, &err) == 0);
    port = wisp_http_listener_port(listener);
    CHECK_INT(port, ntohs(a.sin_port));
    run_with_client(client_adopt);
    CHECK_INT(atomic_load(&handled), 1);
    /* The server owned the fd and closed it. */
    CHECK(fcntl(adopted_fd, F_GETFD) < 0);
}

static char unix_path[108];

static void client_adopt_unix(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", unix_path);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct client c = {.fd = fd, .cap = 4096};
    c.buf = xmalloc(c.cap);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "body=hi") != NULL);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(adopt_unix_socket)
{
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", NULL, handler, NULL);
    snprintf(unix_path, sizeof unix_path, "/tmp/wisp-test-http-%d.sock", (int)getpid());
    unlink(unix_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", unix_path);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 16) == 0);
    wisp_err_t err;
    CHECK(wisp_http_server_adopt(srv, fd, NULL, &listener, &err) == 0);
    CHECK_INT(wisp_http_listener_port(listener), -1);
    run_with_client(client_adopt_unix);
    unlink(unix_path);
    CHECK_INT(atomic_load(&handled), 1);
}

static void client_large(void)
{
    struct client c;
    client_open(&c);
    size_t n = 3 * 1024 * 1024;
    char *body = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('A' + i % 23);
    body[n] = '\0';
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", n);
    send_str(&c, head);
    send_all(c.fd, body, n);
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    const char *b = strstr(r.body, "body=");
    CHECK(b != NULL && strlen(b + 5) == n && memcmp(b + 5, body, n) == 0);
    resp_free(&r);
    free(body);
    /* A 5 MB answer read slowly: partial writes, then queued output. */
    send_str(&c, "GET /big?n=5000000 HTTP/1.1\r\nHost: a\r\n\r\n");
    usleep(200000);
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.body_len, 5000000);
    for (size_t i = 0; i < r.body_len; i += 4999)
        CHECK(r.body[i] == (char)('a' + i % 26));
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(large_bodies)
{
    start_server(NULL);
    run_with_client(client_large);
}

static void client_head(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "HEAD /big?n=500 HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, true));
    CHECK_INT(r.status, 200);
    char v[64];
    CHECK_STR(resp_header(&r, "Content-Length", v, sizeof v), "500");
    resp_free(&r);
    /* No stray body: the next answer starts right away. */
    send_str(&c, "GET /big?n=26 HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_STR(r.body, "abcdefghijklmnopqrstuvwxyz");
    resp_free(&r);
    /* HEAD of a streaming answer: headers only. */
    send_str(&c, "HEAD /stream?n=2 HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(read_response(&c, &r, true));
    CHECK_STR(resp_header(&r, "Transfer-Encoding", v, sizeof v), "chunked");
    resp_free(&r);
    send_str(&c, "GET /big?n=3 HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_STR(r.body, "abc");
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(head_has_no_body)
{
    start_server(NULL);
    run_with_client(client_head);
}

static void client_stream(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /stream?n=4 HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "chunk0;chunk1;chunk2;chunk3;");
    resp_free(&r);
    CHECK(read_response(&c, &r, false));
    CHECK(strncmp(r.body, "GET /echo", 9) == 0);
    resp_free(&r);
    /* HTTP/1.0 gets the same stream with a length. */
    send_str(&c, "GET /stream?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    char v[64];
    CHECK_STR(resp_header(&r, "Content-Length", v, sizeof v), "14");
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "keep-alive");
    CHECK_STR(r.body, "chunk0;chunk1;");
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(streaming_chunked_response)
{
    start_server(NULL);
    run_with_client(client_stream);
}

/* A client that never reads a streamed answer: once more than
 * max_stream_queue_bytes wait for it (queued on the socket, or buffered for
 * an HTTP/1.0 client), the server closes the connection and aborts the
 * request instead of queueing without end. */
static void client_stops_reading(void)
{
    const char *reqs[] = {"GET /flood HTTP/1.1\r\nHost: a\r\n\r\n", "GET /flood HTTP/1.0\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        struct client c;
        client_open(&c);
        atomic_store(&flooded, 0);
        send_str(&c, reqs[i]);
        for (int k = 0; k < 300 && atomic_load(&aborts) == i; k++)
            usleep(10 * 1000);
        CHECK_INT(atomic_load(&aborts), i + 1);
        long sent = atomic_load(&flooded);
        if (sent > 16L * 1024 * 1024)
            fprintf(stderr, "# %ld bytes handed over before the close\n", sent);
        CHECK(sent <= 16L * 1024 * 1024); /* 4 MiB queued, plus what the kernel took */
        client_close(&c);
    }
    finish();
}

/* A producer that sends only while wisp_http_req_stream_ready says so gets
 * 12 MiB through a 1 MiB cut-off to a client that starts reading late. */
static void client_reads_late(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /pump?mb=12 HTTP/1.1\r\nHost: a\r\n\r\n");
    usleep(300 * 1000); /* the server fills what it may meanwhile */
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body_len, 12 * 1024 * 1024);
    CHECK(r.body_len > 0 && r.body[0] == 'p' && r.body[r.body_len - 1] == 'p');
    resp_free(&r);
    CHECK_INT(atomic_load(&aborts), 0);
    client_close(&c);
    finish();
}

TEST(stream_paced_by_the_client)
{
    wisp_http_limits_t lim = {.max_stream_queue_bytes = 1024 * 1024};
    start_server(&lim);
    run_with_client(client_reads_late);
}

TEST(stream_to_a_client_that_stops_reading)
{
    wisp_http_limits_t lim = {.max_stream_queue_bytes = 4 * 1024 * 1024};
    start_server(&lim);
    run_with_client(client_stops_reading);
}

static void client_close_modes(void)
{
    struct client c;
    struct resp r;
    char v[64];
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.0\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\nGET /echo HTTP/1.1\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    CHECK_INT(c.len, 0);
    client_close(&c);
    finish();
}

TEST(http10_and_connection_close)
{
    start_server(NULL);
    run_with_client(client_close_modes);
    CHECK_INT(atomic_load(&handled), 2);
}

static void client_listener_close(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /defer?ms=1000 HTTP/1.1\r\nHost: a\r\n\r\n");
    while (atomic_load(&handled) < 1)
        usleep(1000);
    loop_do(OP_CLOSE_LISTENER);
    CHECK(client_sees_eof(&c));
    CHECK_INT(c.len, 0);
    client_close(&c);
    CHECK_INT(atomic_load(&aborts), 1);
    /* Nothing listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);
    finish();
}

TEST(listener_close_aborts_pending)
{
    start_server(NULL);
    run_with_client(client_listener_close);
}

static void client_shutdown(void)
{
    struct client c, idle;
    client_open(&idle);
    client_open(&c);
    send_str(&c, "GET /defer?ms=200 HTTP/1.1\r\nHost: a\r\n\r\n");
    while (atomic_load(&handled) < 1)
        usleep(1000);
    loop_do(OP_SHUTDOWN);
    /* The idle connection is closed at once, the busy one gets its answer. */
    CHECK(client_sees_eof(&idle));
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    char v[64];
    CHECK_STR(resp_header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    CHECK(client_sees_eof(&c));
    client_close(&c);
    client_close(&idle);
    uv_async_send(&control);
    while (!atomic_load(&shutdown_done))
        usleep(1000);
}

static void shutdown_control_cb(uv_async_t *a)
{
    int op = atomic_exchange(&control_op, 0);
    if (op == OP_SHUTDOWN)
        wisp_http_server_shutdown(srv, shutdown_grace_ms, shutdown_cb, NULL);
    else
        uv_close((uv_handle_t *)a, NULL);
}

TEST(shutdown_is_graceful)
{
    shutdown_grace_ms = 5000;
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, shutdown_control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", NULL, handler, NULL);
    wisp_err_t err;
    CHECK(wisp_http_server_listen(srv, "127.0.0.1:0", NULL, &listener, &err) == 0);
    port = wisp_http_listener_port(listener);
    uint64_t t0 = now_ms();
    run_with_client(client_shutdown);
    CHECK(now_ms() - t0 < 3000);
    CHECK_INT(atomic_load(&aborts), 0);
}

static void client_shutdown_grace(void)
{
    struct client c;
    client_open(&c);
    send_str(&c, "GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
    while (atomic_load(&handled) < 1)
        usleep(1000);
    uint64_t t0 = now_ms();
    loop_do(OP_SHUTDOWN);
    CHECK(client_sees_eof(&c));
    CHECK(now_ms() - t0 >= 250);
    client_close(&c);
    while (!atomic_load(&shutdown_done))
        usleep(1000);
    CHECK_INT(atomic_load(&aborts), 1);
    uv_async_send(&control);
}

TEST(shutdown_grace_expires)
{
    shutdown_grace_ms = 300;
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, shutdown_control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", NULL, handler, NULL);
    wisp_err_t err;
    CHECK(wisp_http_server_listen(srv, "127.0.0.1:0", NULL, &listener, &err) == 0);
    port = wisp_http_listener_port(listener);
    run_with_client(client_shutdown_grace);
    /* The late answer (50 ms after the abort) went to a freed server: fine. */
    CHECK_INT(atomic_load(&answered_late), 1);
}

/* Open a and b on the test listener (each answered), then check that a third
 * connection there is closed without an answer: a cap of 2 is reached. */
static void fill_to_cap_of_two(struct client *a, struct client *b)
{
    client_open(a);
    client_open(b);
    send_str(a, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    send_str(b, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(a, &r, false));
    resp_free(&r);
    CHECK(read_response(b, &r, false));
    resp_free(&r);
    struct client c;
    client_open(&c);
    CHECK(client_sees_eof(&c));
    client_close(&c);
}

static void client_cap(void)
{
    struct client a, b, c;
    struct resp r;
    fill_to_cap_of_two(&a, &b);
    client_close(&a);
    usleep(100000);
    client_open(&c);
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&c);
    client_close(&b);
    finish();
}

TEST(connection_cap)
{
    wisp_http_limits_t lim = {.max_connections = 2};
    start_server(&lim);
    run_with_client(client_cap);
}

/* With max_listener_connections, a full listener closes new connections
 * while another listener of the same server still takes them. */
static int port2;

static void client_listener_cap(void)
{
    struct client a, b, d;
    struct resp r;
    fill_to_cap_of_two(&a, &b);
    client_open_port(&d, port2);
    send_str(&d, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(read_response(&d, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&d);
    client_close(&a);
    client_close(&b);
    finish();
}

TEST(listener_connection_cap)
{
    wisp_http_limits_t lim = {.max_listener_connections = 2};
    start_server(&lim);
    wisp_http_listener_t *second;
    wisp_err_t err;
    CHECK(wisp_http_server_listen(srv, "127.0.0.1:0", NULL, &second, &err) == 0);
    port2 = wisp_http_listener_port(second);
    run_with_client(client_listener_cap);
}

#define MANY 2000

static void client_many(void)
{
    struct client *cs = xcalloc(MANY, sizeof *cs);
    for (int i = 0; i < MANY; i++) {
        client_open(&cs[i]);
        send_str(&cs[i], "GET /defer?ms=100 HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    wisp_metric_t *g = wisp_metrics_gauge("wisp_http_connections", "");
    (void)g;
    for (int i = 0; i < MANY; i++) {
        struct resp r;
        CHECK(read_response(&cs[i], &r, false));
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
    for (int i = 0; i < MANY; i++) {
        send_str(&cs[i], "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    for (int i = 0; i < MANY; i++) {
        struct resp r;
        CHECK(read_response(&cs[i], &r, false));
        CHECK_INT(r.status, 200);
        resp_free(&r);
        client_close(&cs[i]);
    }
    free(cs);
    finish();
}

TEST(many_concurrent_connections)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < 2 * MANY + 100) {
        rl.rlim_cur = 2 * MANY + 200;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            SKIP("cannot raise RLIMIT_NOFILE");
    }
    start_server(NULL);
    run_with_client(client_many);
    CHECK_INT(atomic_load(&handled), 2 * MANY);
}

static void client_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    a.sin6_addr = in6addr_loopback;
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct client c = {.fd = fd, .cap = 4096};
    c.buf = xmalloc(c.cap);
    send_str(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp r;
    CHECK(read_response(&c, &r, false));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    client_close(&c);
    finish();
}

TEST(listen_ipv6)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    a.sin6_addr = in6addr_loopback;
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof a) < 0)
        SKIP("no IPv6 loopback");
    close(probe);
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(uv_async_init(&loop, &control, control_cb) == 0);
    srv = wisp_http_server_new(&loop, "test", NULL, handler, NULL);
    wisp_err_t err;
    CHECK(wisp_http_server_listen(srv, "[::1]:0", NULL, &listener, &err) == 0);
    port = wisp_http_listener_port(listener);
    CHECK(port > 0);
    CHECK(wisp_http_server_listen(srv, "nonsense", NULL, NULL, &err) < 0);
    CHECK_INT(err.code, WISP_EINVALID);
    CHECK(wisp_http_server_listen(srv, "127.0.0.1:99999", NULL, NULL, &err) < 0);
    run_with_client(client_ipv6);
}

TEST(helpers)
{
    CHECK_STR(wisp_http_status_text(404), "Not Found");
    CHECK_STR(wisp_http_status_text(431), "Request Header Fields Too Large");
    CHECK_STR(wisp_http_status_text(299), "Success");
    char *s = wisp_http_pct_decode("a%20b+c%2F", 10, false);
    CHECK_STR(s, "a b+c/");
    free(s);
    s = wisp_http_pct_decode("a%20b+c", 7, true);
    CHECK_STR(s, "a b c");
    free(s);
    CHECK(wisp_http_pct_decode("a%2", 3, false) == NULL);
    CHECK(wisp_http_pct_decode("a%zz", 4, false) == NULL);
    CHECK(wisp_http_pct_decode("a%00b", 5, false) == NULL);
    CHECK(wisp_http_pct_decode("a\0b", 3, false) == NULL);
    s = wisp_http_query_param("a=1&name=J%C3%B6rg+x&flag&e=", "name");
    CHECK_STR(s, "J\xc3\xb6rg x");
    free(s);
    s = wisp_http_query_param("a=1&flag&e=", "flag");
    CHECK_STR(s, "");
    free(s);
    s = wisp_http_query_param("a=1&e=", "e");
    CHECK_STR(s, "");
    free(s);
    CHECK(wisp_http_query_param("a=1&b=2", "c") == NULL);
    CHECK(wisp_http_query_param("", "c") == NULL);
    s = wisp_http_query_param("x%3Dy=2", "x=y");
    CHECK_STR(s, "2");
    free(s);
}

/* Memory mode: the same connection code without a socket. */
static wisp_http_req_t *mem_pending[4];
static int mem_npending;

static void mem_handler(wisp_http_req_t *req, void *data)
{
    if (strcmp(req->path, "/later") == 0) {
        mem_pending[mem_npending++] = req;
        return;
    }
    wisp_http_respond(req, 200, NULL, NULL, req->path, strlen(req->path));
}

TEST(memory_mode)
{
    wisp__http_mem_t *m = wisp__http_mem_new(NULL, mem_handler, NULL);
    const char *in = "GET /later HTTP/1.1\r\n\r\nGET /now HTTP/1.1\r\n\r\n";
    for (const char *p = in; *p; p++)
        wisp__http_mem_feed(m, p, 1);
    CHECK_INT(wisp__http_mem_output(m)->len, 0);
    CHECK_INT(mem_npending, 1);
    wisp_http_respond(mem_pending[0], 201, NULL, NULL, "x", 1);
    const char *out = wisp__http_mem_output(m)->data;
    const char *second = strstr(out, "HTTP/1.1 200");
    CHECK(strncmp(out, "HTTP/1.1 201 Created\r\n", 22) == 0);
    CHECK(second != NULL && strstr(second, "\r\n\r\n/now") != NULL);
    CHECK(!wisp__http_mem_closed(m));
    wisp__http_mem_feed(m, "GET /later HTTP/1.1\r\n\r\n", 23);
    wisp__http_mem_eof(m);
    CHECK(wisp__http_mem_closed(m));
    CHECK(mem_pending[1]->aborted);
    wisp_http_respond(mem_pending[1], 200, NULL, NULL, NULL, 0);
    wisp__http_mem_free(m);
}

/* hold_pipelined: the answer to /now waits for the answer to the /later
 * pipelined behind it, then both are output together; without a pipelined
 * request, or when the next request is still arriving, nothing is held. */
TEST(hold_pipelined_answers)
{
    wisp_http_limits_t lim = {.hold_pipelined = true};
    mem_npending = 0;
    wisp__http_mem_t *m = wisp__http_mem_new(&lim, mem_handler, NULL);
    const char *now = "GET /now HTTP/1.1\r\n\r\n";
    wisp__http_mem_feed(m, now, strlen(now));
    size_t first = wisp__http_mem_output(m)->len;
    CHECK(first > 0); /* alone: answered at once */
    const char *in = "GET /now HTTP/1.1\r\n\r\nGET /later HTTP/1.1\r\n\r\n";
    wisp__http_mem_feed(m, in, strlen(in));
    CHECK_INT(mem_npending, 1);
    CHECK_INT(wisp__http_mem_output(m)->len, first); /* held behind /later */
    wisp_http_respond(mem_pending[0], 201, NULL, NULL, "x", 1);
    const char *out = wisp__http_mem_output(m)->data + first;
    const char *second = strstr(out, "HTTP/1.1 201");
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(second != NULL && strstr(second, "\r\n\r\nx") != NULL);
    /* The next request only partly received: the answer goes out now. */
    size_t before = wisp__http_mem_output(m)->len;
    const char *part = "GET /now HTTP/1.1\r\n\r\nGET /lat";
    wisp__http_mem_feed(m, part, strlen(part));
    CHECK(wisp__http_mem_output(m)->len > before);
    wisp__http_mem_free(m);
}

TAP_MAIN(CASE(simple_get), CASE(keep_alive_two_requests), CASE(pipelined_answers_in_order),
         CASE(pipeline_limit_pauses_and_resumes), CASE(chunked_body_with_trailers),
         CASE(expect_continue_accepted), CASE(expect_continue_rejected_413),
         CASE(oversized_header_431), CASE(oversized_body_413),
         CASE(malformed_400_only_that_connection), CASE(idle_timeout_closes),
         CASE(slow_client_times_out), CASE(abort_when_client_disconnects), CASE(adopt_listening_fd),
         CASE(adopt_unix_socket), CASE(large_bodies), CASE(head_has_no_body),
         CASE(streaming_chunked_response), CASE(stream_paced_by_the_client),
         CASE(stream_to_a_client_that_stops_reading), CASE(http10_and_connection_close),
         CASE(listener_close_aborts_pending), CASE(shutdown_is_graceful),
         CASE(shutdown_grace_expires), CASE(connection_cap), CASE(listener_connection_cap),
         CASE(many_concurrent_connections), CASE(listen_ipv6), CASE(helpers), CASE(memory_mode),
         CASE(hold_pipelined_answers))
