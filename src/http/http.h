/*
 * http.h - HTTP/1.1 server on libuv with the request parser from Debian's
 * http-parser library. No business logic lives here.
 *
 * A server owns any number of listeners (TCP host:port, or an already
 * listening socket handed in by fd, as the Runtime API sockets created inside
 * each sandbox's network namespace are). For each complete request (headers
 * and the whole body, de-chunked) it calls the handler on the event-loop
 * thread. The handler must answer exactly once with wisp_http_respond*(),
 * either at once or later (long polls, invocations): the request stays valid
 * until it is answered, even if the client goes away meanwhile (then
 * req->aborted is set, the abort callback runs, and the answer is discarded).
 *
 * Supported: keep-alive, pipelining (answers go out in request order),
 * chunked request bodies with trailers, Expect: 100-continue, limits on the
 * header block (431) and the body (413, answered before the body is read when
 * Content-Length says so), idle and slow-client timeouts, 400 on malformed
 * input (that connection only), a connection cap. Chunked responses for
 * streaming. All calls are made on the event-loop thread.
 */
#ifndef WISP_HTTP_HTTP_H
#define WISP_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"

typedef struct wisp_http_server wisp_http_server_t;
typedef struct wisp_http_listener wisp_http_listener_t;
typedef struct wisp_http_req wisp_http_req_t;

typedef struct wisp_http_header {
    char *name;  /* as received (compare case-insensitively) */
    char *value; /* leading/trailing whitespace trimmed */
} wisp_http_header_t;

/* A parsed request. Fields are owned by the server and valid until the
 * response is complete (or, after an abort, until the handler answers). */
struct wisp_http_req {
    const char *method;          /* "GET", "POST", ... */
    char *target;                /* raw request target, e.g. "/v1/x%20y?a=1" */
    char *path;                  /* raw (still percent-encoded) path part of target */
    char *query;                 /* raw query after '?', "" if none */
    wisp_http_header_t *headers; /* request headers in order */
    size_t nheaders;
    wisp_http_header_t *trailers; /* trailers after a chunked body, if any */
    size_t ntrailers;
    char *body; /* whole body, NUL-terminated (NUL not counted) */
    size_t body_len;
    bool aborted;      /* the client went away before the answer */
    uint64_t start_ns; /* wisp_mono_ns() when the request line arrived */
    char peer[64];     /* "ip:port" of the client */
    wisp_http_listener_t *listener;
    void *listener_data; /* the data given to the listener that accepted it */
    void *user;          /* free for the handler's use */
};

typedef void (*wisp_http_handler_cb)(wisp_http_req_t *req, void *data);
/* Called once if the client disconnects before the request was answered. */
typedef void (*wisp_http_abort_cb)(wisp_http_req_t *req, void *data);
typedef void (*wisp_http_drain_cb)(wisp_http_req_t *req, void *data);

typedef struct wisp_http_limits {
    size_t max_header_bytes;     /* request line + headers; default 64 KiB; over: 431 */
    size_t max_body_bytes;       /* default 6 MiB + 64 KiB; over: 413 */
    unsigned idle_timeout_ms;    /* keep-alive idle before close; default 60000 */
    unsigned request_timeout_ms; /* a started request must be complete within; default 30000 */
    unsigned max_connections;    /* per server; default 10000; over: accept and close */
    unsigned max_listener_connections; /* per listener; 0 (default): only max_connections */
    unsigned max_pipelined;            /* requests buffered on one connection; default 64 */
    /* A streamed answer's bytes that the client has not taken yet (queued on
     * the socket, or buffered for an HTTP/1.0 client); default 16 MiB; over:
     * the connection is closed and the request aborted (a log follower that
     * stops reading must not grow the daemon). */
    size_t max_stream_queue_bytes;
    /* Optional: told when a request is refused before it reaches the handler
     * (400, 408, 413, 431...), with the data of the listener that accepted
     * it. Lets the Runtime API fail an invocation whose answer was too large. */
    void (*on_reject)(void *listener_data, int status);
    /* Hold an answer while the client has already sent the next request on
     * the same connection (HTTP/1.1 pipelining) and that request waits for
     * its own answer: both then go out in one write (one wake-up of the
     * client instead of two). Only for servers that answer every request
     * they have dispatched (the Runtime API: a waiting /next gets an event,
     * a 410 at retirement, or its connection closes); a client that does not
     * pipeline sees no difference. */
    bool hold_pipelined;
} wisp_http_limits_t;

/* Create a server; name labels metrics ("admin", "gateway", "runtime").
 * lim may be NULL for defaults; zero fields take defaults. */
wisp_http_server_t *wisp_http_server_new(uv_loop_t *loop, const char *name,
                                         const wisp_http_limits_t *lim,
                                         wisp_http_handler_cb handler, void *data);

/* Listen on "host:port" (IPv4 or [IPv6]); port 0 picks a free port. */
int wisp_http_server_listen(wisp_http_server_t *srv, const char *hostport, void *listener_data,
                            wisp_http_listener_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Adopt a socket that is already bound and listening (TCP or unix-domain);
 * the server takes fd, also when this fails. */
int wisp_http_server_adopt(wisp_http_server_t *srv, int fd, void *listener_data,
                           wisp_http_listener_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* The bound port of a listener (after listen with port 0); -1 for a
 * unix-domain socket or on error. */
int wisp_http_listener_port(wisp_http_listener_t *l);
/* Stop a listener and close every connection it accepted; requests still
 * waiting for an answer are aborted (abort callbacks run). */
void wisp_http_listener_close(wisp_http_listener_t *l);

/* Stop accepting, let in-flight requests finish for up to grace_ms, then close
 * everything; done runs once the server is fully released (it is freed).
 * Idle connections close at once; busy ones answer with Connection: close.
 * A second call is ignored. Requests still held by handlers after that stay
 * valid (aborted) until they are answered. */
void wisp_http_server_shutdown(wisp_http_server_t *srv, unsigned grace_ms, void (*done)(void *data),
                               void *data);

/* Case-insensitive lookup; NULL if absent. First match. */
const char *wisp_http_req_header(const wisp_http_req_t *req, const char *name);
const char *wisp_http_req_trailer(const wisp_http_req_t *req, const char *name);
/* Set the abort callback (replacing an earlier one). It is not called if the
 * request was aborted already: check req->aborted. After an abort,
 * req->listener and req->listener_data may point to a listener that is gone. */
void wisp_http_req_on_abort(wisp_http_req_t *req, wisp_http_abort_cb cb, void *data);
/* For a streamed answer: true if the client has taken enough of it that more
 * may be sent now (at most a quarter of max_stream_queue_bytes is waiting for
 * it; always true for an HTTP/1.0 client, whose answer is collected whole).
 * Otherwise false, and cb is called once, from a later write completion,
 * when that becomes true (never after an abort). A producer with much to
 * send (a log backlog) sends while this is true and resumes from cb, so it
 * never meets the max_stream_queue_bytes cut-off. */
bool wisp_http_req_stream_ready(wisp_http_req_t *req, wisp_http_drain_cb cb, void *data);

/* Answer with a complete body. headers are extra lines already formatted
 * ("Name: value\r\n"...), or NULL; they are trusted (not checked for CR/LF).
 * Content-Length, Date, Connection are added. body is borrowed: it has been
 * written or copied when the call returns. HEAD gets the headers only; 204 and
 * 304 get no body and no Content-Length. After the call req must not be used. */
void wisp_http_respond(wisp_http_req_t *req, int status, const char *content_type,
                       const char *headers, const void *body, size_t len);
/* Streaming answer with chunked encoding: start, any number of chunks, end.
 * Chunks are borrowed like bodies; empty chunks are ignored. To an HTTP/1.0
 * client (no chunked encoding) the chunks are collected and sent with a
 * Content-Length at the end. */
void wisp_http_respond_start(wisp_http_req_t *req, int status, const char *content_type,
                             const char *headers);
void wisp_http_respond_chunk(wisp_http_req_t *req, const void *data, size_t len);
void wisp_http_respond_end(wisp_http_req_t *req);

/* The standard reason phrase of a status ("Not Found"). */
const char *wisp_http_status_text(int status);

/* Percent-decode src (n bytes) into a new string; returns NULL if malformed
 * (bad escape or an encoded NUL). plus_as_space for query strings. */
char *wisp_http_pct_decode(const char *src, size_t n, bool plus_as_space);
/* Find a query parameter (decoded value, caller frees); NULL if absent. */
char *wisp_http_query_param(const char *query, const char *name);

#endif
