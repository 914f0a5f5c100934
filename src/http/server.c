/*
 * server.c - HTTP servers and their listeners: binding or adopting listening
 * sockets, accepting connections under the per-server cap, closing one
 * listener, and the graceful shutdown of a whole server. The connections
 * themselves live in conn.c.
 *
 * Lifetime: a listener is freed once its handle is closed and its last
 * connection is released; a shutting-down server is freed (and done called)
 * once its last listener and connection are gone. Every free happens in a
 * libuv close callback or right after one, never inside a caller's frame.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"

#define LISTEN_BACKLOG 1024

void wisp__http_limits_fill(wisp_http_limits_t *out, const wisp_http_limits_t *in)
{
    static const wisp_http_limits_t defaults = {
        .max_header_bytes = 64 * 1024,
        .max_body_bytes = 6 * 1024 * 1024 + 64 * 1024,
        .idle_timeout_ms = 60000,
        .request_timeout_ms = 30000,
        .max_connections = 10000,
        .max_pipelined = 64,
        .max_stream_queue_bytes = 16 * 1024 * 1024,
    };
    *out = defaults;
    if (in == NULL)
        return;
    if (in->max_header_bytes)
        out->max_header_bytes = in->max_header_bytes;
    if (in->max_body_bytes)
        out->max_body_bytes = in->max_body_bytes;
    if (in->idle_timeout_ms)
        out->idle_timeout_ms = in->idle_timeout_ms;
    if (in->request_timeout_ms)
        out->request_timeout_ms = in->request_timeout_ms;
    if (in->max_connections)
        out->max_connections = in->max_connections;
    out->max_listener_connections = in->max_listener_connections;
    if (in->max_pipelined)
        out->max_pipelined = in->max_pipelined;
    if (in->max_stream_queue_bytes)
        out->max_stream_queue_bytes = in->max_stream_queue_bytes;
    out->on_reject = in->on_reject;
    out->hold_pipelined = in->hold_pipelined;
}

void wisp__http_server_init(wisp_http_server_t *srv, uv_loop_t *loop, const char *name,
                            const wisp_http_limits_t *lim, wisp_http_handler_cb handler, void *data)
{
    srv->loop = loop;
    srv->name = xstrdup(name ? name : "http");
    char esc[128];
    wisp_metrics_label_escape(srv->name, esc, sizeof esc);
    snprintf(srv->label, sizeof srv->label, "listener=\"%s\"", esc);
    wisp__http_limits_fill(&srv->lim, lim);
    wisp__http_setup_parser_limit(srv->lim.max_header_bytes);
    srv->handler = handler;
    srv->data = data;
    srv->rbuf = loop ? xmalloc(WISP__HTTP_READ_BYTES) : NULL;
    wisp_buf_init(&srv->scratch, 0);
    srv->m_requests =
        wisp_metrics_counter("wisp_http_requests_total", "HTTP requests answered, by status code.");
    srv->m_duration =
        wisp_metrics_histogram("wisp_http_request_duration_seconds",
                               "Time from the request line to the complete answer, in seconds.",
                               wisp_metrics_latency_buckets, wisp_metrics_latency_nbuckets);
    srv->m_conns = wisp_metrics_gauge("wisp_http_connections", "Open HTTP connections.");
}

wisp_http_server_t *wisp_http_server_new(uv_loop_t *loop, const char *name,
                                         const wisp_http_limits_t *lim,
                                         wisp_http_handler_cb handler, void *data)
{
    wisp_http_server_t *srv = xcalloc(1, sizeof *srv);
    wisp__http_server_init(srv, loop, name, lim, handler, data);
    uv_timer_init(loop, &srv->grace);
    srv->grace.data = srv;
    wisp_metrics_set(srv->m_conns, srv->label, 0);
    return srv;
}

static void server_grace_closed(uv_handle_t *h)
{
    wisp_http_server_t *srv = h->data;
    void (*done)(void *) = srv->done;
    void *done_data = srv->done_data;
    free(srv->rbuf);
    wisp_buf_free(&srv->scratch);
    free(srv->name);
    free(srv);
    if (done != NULL)
        done(done_data);
}

static void server_maybe_finish(wisp_http_server_t *srv)
{
    if (!srv->draining || srv->finishing || srv->nconns > 0 || srv->listeners != NULL)
        return;
    srv->finishing = true;
    uv_timer_stop(&srv->grace);
    uv_close((uv_handle_t *)&srv->grace, server_grace_closed);
}

static void listener_maybe_free(wisp_http_listener_t *l)
{
    if (!l->handle_closed || l->nconns > 0)
        return;
    wisp_http_server_t *srv = l->srv;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        srv->listeners = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    free(l);
    server_maybe_finish(srv);
}

void wisp__http_conn_released(wisp_http_server_t *srv, wisp_http_listener_t *l)
{
    srv->nconns--;
    wisp_metrics_set(srv->m_conns, srv->label, (double)srv->nconns);
    if (l != NULL)
        listener_maybe_free(l);
    else
        server_maybe_finish(srv);
}

static void free_handle_data(uv_handle_t *h)
{
    free(h->data);
}

static void on_connection(uv_stream_t *ls, int status)
{
    wisp_http_listener_t *l = ls->data;
    wisp_http_server_t *srv = l->srv;
    if (status < 0) {
        wisp_warn("http", "%s: accept failed: %s", srv->name, uv_strerror(status));
        return;
    }
    struct wisp__http_conn *c = wisp__http_conn_new(srv, l);
    int rc =
        l->is_pipe ? uv_pipe_init(srv->loop, &c->h.pipe, 0) : uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    rc = uv_accept(ls, &c->h.stream);
    bool full =
        srv->nconns >= srv->lim.max_connections ||
        (srv->lim.max_listener_connections && l->nconns >= srv->lim.max_listener_connections);
    if (rc < 0 || full || srv->draining || l->closing) {
        if (rc == 0 && full)
            wisp_debug("http",
                       "%s: connection cap reached (%zu on the server, %zu on the listener)",
                       srv->name, srv->nconns, l->nconns);
        uv_close(&c->h.handle, free_handle_data);
        return;
    }
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    srv->nconns++;
    wisp_metrics_set(srv->m_conns, srv->label, (double)srv->nconns);
    wisp__http_conn_start(c);
}

static void listener_closed(uv_handle_t *h)
{
    wisp_http_listener_t *l = h->data;
    l->handle_closed = true;
    listener_maybe_free(l);
}

/* Start accepting on l's initialised handle and link it into srv. */
static int listener_start(wisp_http_server_t *srv, wisp_http_listener_t *l, const char *what,
                          wisp_http_listener_t **out, wisp_err_t *err)
{
    int rc = uv_listen(&l->h.stream, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        uv_close(&l->h.handle, free_handle_data);
        return wisp_err_sys(err, -rc, "listen on %s", what);
    }
    l->next = srv->listeners;
    if (srv->listeners != NULL)
        srv->listeners->prev = l;
    srv->listeners = l;
    if (out != NULL)
        *out = l;
    return 0;
}

static wisp_http_listener_t *listener_new(wisp_http_server_t *srv, void *data)
{
    wisp_http_listener_t *l = xcalloc(1, sizeof *l);
    l->srv = srv;
    l->data = data;
    return l;
}

/* Parse "host:port" or "[v6]:port" into addr. */
static int parse_hostport(const char *hostport, struct sockaddr_storage *addr, wisp_err_t *err)
{
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        return wisp_err_set(err, WISP_EINVALID, "listen address %s: expected host:port", hostport);
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port > 65535)
        return wisp_err_set(err, WISP_EINVALID, "listen address %s: bad port", hostport);
    char host[INET6_ADDRSTRLEN + 2];
    size_t hl = (size_t)(colon - hostport);
    if (hl >= sizeof host)
        return wisp_err_set(err, WISP_EINVALID, "listen address %s: bad host", hostport);
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    memset(addr, 0, sizeof *addr);
    if (host[0] == '[') {
        if (hl < 2 || host[hl - 1] != ']')
            return wisp_err_set(err, WISP_EINVALID, "listen address %s: bad host", hostport);
        host[hl - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)addr) < 0)
            return wisp_err_set(err, WISP_EINVALID, "listen address %s: bad IPv6 address",
                                hostport);
        return 0;
    }
    const char *ip = host;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        ip = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        ip = "127.0.0.1";
    if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)addr) < 0)
        return wisp_err_set(err, WISP_EINVALID, "listen address %s: bad IPv4 address", hostport);
    return 0;
}

int wisp_http_server_listen(wisp_http_server_t *srv, const char *hostport, void *listener_data,
                            wisp_http_listener_t **out, wisp_err_t *err)
{
    struct sockaddr_storage addr;
    if (parse_hostport(hostport, &addr, err) < 0)
        return -1;
    if (srv->draining)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "server %s is shutting down", srv->name);
    wisp_http_listener_t *l = listener_new(srv, listener_data);
    int rc = uv_tcp_init(srv->loop, &l->h.tcp);
    if (rc < 0) {
        free(l);
        return wisp_err_sys(err, -rc, "listen on %s", hostport);
    }
    l->h.handle.data = l;
    rc = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&addr, 0);
    if (rc < 0) {
        uv_close(&l->h.handle, free_handle_data);
        return wisp_err_sys(err, -rc, "bind %s", hostport);
    }
    return listener_start(srv, l, hostport, out, err);
}

int wisp_http_server_adopt(wisp_http_server_t *srv, int fd, void *listener_data,
                           wisp_http_listener_t **out, wisp_err_t *err)
{
    int domain = 0;
    socklen_t dl = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0) {
        int e = errno;
        close(fd);
        return wisp_err_sys(err, e, "adopt fd %d", fd);
    }
    if (srv->draining) {
        close(fd);
        return wisp_err_set(err, WISP_EUNAVAILABLE, "server %s is shutting down", srv->name);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    wisp_http_listener_t *l = listener_new(srv, listener_data);
    l->is_pipe = domain == AF_UNIX;
    int rc =
        l->is_pipe ? uv_pipe_init(srv->loop, &l->h.pipe, 0) : uv_tcp_init(srv->loop, &l->h.tcp);
    if (rc < 0) {
        free(l);
        close(fd);
        return wisp_err_sys(err, -rc, "adopt fd %d", fd);
    }
    l->h.handle.data = l;
    rc = l->is_pipe ? uv_pipe_open(&l->h.pipe, fd) : uv_tcp_open(&l->h.tcp, fd);
    if (rc < 0) {
        uv_close(&l->h.handle, free_handle_data);
        close(fd);
        return wisp_err_sys(err, -rc, "adopt fd %d", fd);
    }
    char what[32];
    snprintf(what, sizeof what, "fd %d", fd);
    return listener_start(srv, l, what, out, err);
}

int wisp_http_listener_port(wisp_http_listener_t *l)
{
    if (l == NULL || l->is_pipe)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* Stop accepting on l; its connections stay. */
static void listener_stop(wisp_http_listener_t *l)
{
    if (l->closing)
        return;
    l->closing = true;
    uv_close(&l->h.handle, listener_closed);
}

void wisp_http_listener_close(wisp_http_listener_t *l)
{
    if (l == NULL)
        return;
    listener_stop(l);
    for (struct wisp__http_conn *c = l->conns; c != NULL; c = c->next)
        wisp__http_conn_close(c);
}

static void close_all(wisp_http_server_t *srv)
{
    for (wisp_http_listener_t *l = srv->listeners; l != NULL; l = l->next)
        for (struct wisp__http_conn *c = l->conns; c != NULL; c = c->next)
            wisp__http_conn_close(c);
}

static void grace_cb(uv_timer_t *t)
{
    wisp_http_server_t *srv = t->data;
    if (srv->nconns > 0)
        wisp_info("http", "%s: closing %zu connection(s) after the shutdown grace period",
                  srv->name, srv->nconns);
    close_all(srv);
}

void wisp_http_server_shutdown(wisp_http_server_t *srv, unsigned grace_ms, void (*done)(void *data),
                               void *data)
{
    if (srv == NULL || srv->draining)
        return;
    srv->draining = true;
    srv->done = done;
    srv->done_data = data;
    for (wisp_http_listener_t *l = srv->listeners; l != NULL; l = l->next) {
        listener_stop(l);
        for (struct wisp__http_conn *c = l->conns; c != NULL; c = c->next)
            wisp__http_conn_drain(c);
    }
    if (grace_ms == 0)
        close_all(srv);
    else
        uv_timer_start(&srv->grace, grace_cb, grace_ms, 0);
    server_maybe_finish(srv);
}
