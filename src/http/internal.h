/*
 * internal.h - the HTTP server's private structures, shared by server.c
 * (servers, listeners, accepting, shutdown), conn.c (one connection: parsing,
 * ordering answers, writing, timers) and util.c. Nothing outside src/http/
 * includes this file, except the fuzz target, which drives a connection
 * without a socket through the wisp__http_mem_* entry points below.
 *
 * Ownership rules:
 * - A server owns its listeners; a listener owns the connections it accepted;
 *   a connection owns the requests in its queue. Everything is released from
 *   libuv close callbacks only, never in the middle of a callback chain.
 * - A request handed to the handler belongs to the handler until it answers.
 *   If the connection goes away first, the request is detached (conn = NULL,
 *   aborted = true) and freed by the answer.
 * All of it runs on the loop thread.
 */
#ifndef WISP_HTTP_INTERNAL_H
#define WISP_HTTP_INTERNAL_H

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "http/http.h"
#include "obs/metrics.h"

/* Bytes read from a socket at once, into the server's shared read buffer. */
#define WISP__HTTP_READ_BYTES (64 * 1024)
/* Stop reading new requests while this much output waits in the socket's write queue. */
#define WISP__HTTP_WRITE_HIGH (1024 * 1024)
/* How long a closing connection keeps reading (and dropping) input after its
 * last answer, so that the peer sees the answer rather than a reset. */
#define WISP__HTTP_LINGER_MS 2000

struct wisp__http_conn;

/* Where a request is in its life. */
enum wisp__http_rq_state {
    WISP__RQ_RECEIVING, /* headers or body still arriving */
    WISP__RQ_HANDLING,  /* handed to the handler, no answer yet */
    WISP__RQ_STREAMING, /* respond_start called, respond_end not yet */
    WISP__RQ_DONE,      /* answered; output may still wait for earlier answers */
};

/* One header or trailer as offsets into the request's field storage. */
struct wisp__http_field {
    size_t name;  /* offset of the NUL-terminated name */
    size_t value; /* offset of the NUL-terminated value; SIZE_MAX until seen */
};

/* A request and its answer. pub comes first so that the public pointer
 * converts back. Reused by its connection for the next request. */
struct wisp__http_rq {
    wisp_http_req_t pub;
    struct wisp__http_conn *conn; /* NULL once detached by an abort */
    struct wisp__http_rq *next;   /* next request on the connection, in order */
    enum wisp__http_rq_state state;
    int status;                  /* status of the answer, for metrics */
    bool keep_alive;             /* the connection may carry another request after this */
    bool head_method;            /* HEAD: answer without a body */
    bool http10;                 /* HTTP/1.0 client: no chunked answers */
    bool no_body;                /* streaming answer whose chunks are dropped (HEAD, 204) */
    wisp_buf_t fields;           /* target, path, query, then names and values, NUL-separated */
    size_t target_len;           /* bytes of target at the start of fields */
    size_t path_off;             /* offset of the NUL-terminated path in fields */
    size_t query_off;            /* offset of the NUL-terminated query in fields */
    struct wisp__http_field *fv; /* headers, then trailers */
    size_t nfv, fv_cap;
    size_t nheaders;          /* how many of fv are headers (the rest are trailers) */
    wisp_http_header_t *harr; /* public view of fv */
    size_t harr_cap;
    wisp_buf_t body;    /* the request body (limit checked before each append) */
    size_t body_expect; /* Content-Length of the body, 0 if chunked or none */
    wisp_buf_t out;     /* answer bytes waiting for earlier answers to go out */
    bool buffer_stream; /* streaming answer to HTTP/1.0: collected, sent whole at the end */
    wisp_buf_t sbuf;    /* the collected body of such an answer */
    char *stream_ctype; /* its content type and extra headers, kept until the end */
    char *stream_headers;
    wisp_http_abort_cb abort_cb;
    void *abort_data;
    wisp_http_drain_cb drain_cb; /* wisp_http_req_stream_ready: told once the client caught up */
    void *drain_data;
};

/* One client connection. */
struct wisp__http_conn {
    wisp_http_server_t *srv;
    wisp_http_listener_t *listener;      /* NULL in memory mode */
    struct wisp__http_conn *prev, *next; /* in the listener's list */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;       /* the one deadline of this connection */
    uv_shutdown_t shutdown; /* half-close after the last answer */
    http_parser parser;
    struct wisp__http_rq *head, *tail; /* requests not yet fully written, in order */
    struct wisp__http_rq *cur;         /* the request being received, also the tail */
    struct wisp__http_rq *ready;       /* completed by the parser, to dispatch */
    struct wisp__http_rq *spare;       /* a finished request kept for reuse */
    unsigned nqueue;                   /* requests in head..tail */
    wisp_buf_t inbuf;                  /* input read but not yet parsed (paused) */
    wisp_buf_t *mem_out;               /* memory mode: where the output goes */
    char peer[64];
    size_t hdr_bytes;        /* header (and trailer) bytes of the current request */
    int hstate;              /* 0 none, 1 in a field name, 2 in a value */
    bool url_open;           /* the target is still being received */
    bool headers_done;       /* further fields are trailers */
    int fail_status;         /* the status a callback chose when it stopped the parser */
    int handles_open;        /* closes still to come before the free */
    bool mem;                /* memory mode: no socket, no loop */
    bool in_process;         /* inside the parse loop */
    bool more_input;         /* in the parse loop, bytes follow the request being handled */
    bool in_done;            /* no further requests are read; input is dropped */
    bool reading;            /* uv_read_start is in effect */
    bool paused_pipeline;    /* too many requests waiting for answers */
    bool paused_write;       /* too much output waiting */
    bool want_resume;        /* parse inbuf again on the next turn */
    bool shutting;           /* uv_shutdown issued */
    bool got_eof;            /* the peer closed its side */
    bool lingering;          /* shut down; dropping input until EOF or the linger deadline */
    bool closing;            /* uv_close issued (or memory mode closed) */
    uint64_t cur_start;      /* loop time (ms) when the current request began */
    uint64_t idle_since;     /* loop time when the queue last became empty */
    uint64_t write_progress; /* loop time of the last write progress */
    uint64_t linger_deadline;
    uint64_t timer_due; /* when the armed timer fires, 0 if not armed */
};

struct wisp_http_listener {
    wisp_http_server_t *srv;
    wisp_http_listener_t *prev, *next; /* in the server's list */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    bool is_pipe;                  /* a unix-domain socket */
    bool closing;                  /* uv_close issued on h */
    bool handle_closed;            /* its close callback ran */
    void *data;                    /* listener_data */
    struct wisp__http_conn *conns; /* accepted connections not yet freed */
    size_t nconns;
};

struct wisp_http_server {
    uv_loop_t *loop; /* NULL in memory mode */
    char *name;
    char label[160]; /* listener="<name>" */
    wisp_http_limits_t lim;
    wisp_http_handler_cb handler;
    void *data;
    wisp_http_listener_t *listeners;
    size_t nconns;  /* connections accepted and not yet freed */
    bool draining;  /* shutdown started */
    bool finishing; /* the final close is under way */
    uv_timer_t grace;
    void (*done)(void *data);
    void *done_data;
    char *rbuf;         /* shared read buffer: reads are parsed before the next read */
    wisp_buf_t scratch; /* answer heads are built here before they are written */
    char date[40];      /* cached Date header value */
    time_t date_sec;
    wisp_metric_t *m_requests, *m_duration, *m_conns;
};

/* conn.c */
struct wisp__http_conn *wisp__http_conn_new(wisp_http_server_t *srv, wisp_http_listener_t *l);
int wisp__http_conn_start(struct wisp__http_conn *c);
void wisp__http_conn_close(struct wisp__http_conn *c);
void wisp__http_conn_drain(struct wisp__http_conn *c);
void wisp__http_conn_free(struct wisp__http_conn *c);
const char *wisp__http_date(wisp_http_server_t *srv);
void wisp__http_setup_parser_limit(size_t max_header_bytes);

/* server.c: called when a connection is released. */
void wisp__http_conn_released(wisp_http_server_t *srv, wisp_http_listener_t *l);
void wisp__http_limits_fill(wisp_http_limits_t *out, const wisp_http_limits_t *in);
void wisp__http_server_init(wisp_http_server_t *srv, uv_loop_t *loop, const char *name,
                            const wisp_http_limits_t *lim, wisp_http_handler_cb handler,
                            void *data);

/*
 * Memory mode, for the fuzz target and tests: one connection with no socket
 * and no loop. Input is fed as if read from a socket; every byte the server
 * would write is appended to an output buffer. No timers run.
 */
typedef struct wisp__http_mem wisp__http_mem_t;
/* A connection of a server named "mem" with the given limits and handler. */
wisp__http_mem_t *wisp__http_mem_new(const wisp_http_limits_t *lim, wisp_http_handler_cb handler,
                                     void *data);
/* Feed bytes; len 0 parses input held back while too many requests waited. */
void wisp__http_mem_feed(wisp__http_mem_t *m, const void *data, size_t len);
/* The client closes: requests still unanswered are aborted. */
void wisp__http_mem_eof(wisp__http_mem_t *m);
/* Everything written so far. */
const wisp_buf_t *wisp__http_mem_output(const wisp__http_mem_t *m);
/* The server closed (or would have closed) the connection. */
bool wisp__http_mem_closed(const wisp__http_mem_t *m);
/* Release everything; requests still unanswered are aborted first. */
void wisp__http_mem_free(wisp__http_mem_t *m);

#endif
