/*
 * conn.c - one HTTP/1.1 connection: input goes through http-parser, complete
 * requests go to the handler, answers go out strictly in request order, and
 * the limits and timeouts are enforced here. Also the memory mode (no socket)
 * that the fuzz target drives.
 *
 * Flow of a request: on_message_begin queues a new request at the tail;
 * header and body callbacks fill it; on_message_complete pauses the parser so
 * that the parse loop hands the request to the handler outside the parser.
 * An answer to the request at the head of the queue is written at once (one
 * writev, nothing copied if the socket takes it all); an answer to a later
 * request waits in that request's out buffer until the ones before it are
 * done. One uv_timer per connection carries whichever deadline matters now
 * (request, idle, write, linger); it is re-armed only when a deadline moves
 * earlier and otherwise re-checked when it fires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"

typedef struct wisp__http_conn conn_t;
typedef struct wisp__http_rq rq_t;

/* Why a connection's deadline is set. */
enum deadline_kind { DL_NONE, DL_REQUEST, DL_IDLE, DL_WRITE, DL_LINGER };

/* How an answer's body is framed. */
enum body_mode { BODY_LENGTH, BODY_NONE, BODY_CHUNKED };

/* A write handed to libuv together with the bytes it owns. */
struct write_op {
    uv_write_t req;
    conn_t *conn;
    char *mem;
};

static void conn_flush(conn_t *c);
static void conn_arm(conn_t *c);
static void timer_cb(uv_timer_t *t);
static void conn_update_reading(conn_t *c);
static void rq_respond_error(rq_t *r, int status);

static uint64_t conn_now(const conn_t *c)
{
    return c->mem ? 0 : uv_now(c->srv->loop);
}

/* Make room for extra more bytes so that appending them cannot move data. */
static void buf_reserve(wisp_buf_t *b, size_t extra)
{
    size_t need = b->len + extra;
    if (b->data != NULL && need <= b->cap)
        return;
    b->data = xrealloc(b->data, need + 1);
    b->cap = need;
    b->data[b->len] = '\0';
}

/* A uv_buf_t without uv_buf_init's narrowing of the length to unsigned int. */
static uv_buf_t mkbuf(const void *base, size_t len)
{
    uv_buf_t b;
    b.base = (char *)base;
    b.len = len;
    return b;
}

static void buf_lit(wisp_buf_t *b, const char *s)
{
    wisp_buf_add(b, s, strlen(s));
}

static void buf_uint(wisp_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wisp_buf_add(b, tmp + i, sizeof tmp - i);
}

/* ---- requests ---------------------------------------------------------- */

static rq_t *rq_new(conn_t *c)
{
    rq_t *r = c->spare;
    if (r != NULL) {
        c->spare = NULL;
    } else {
        r = xcalloc(1, sizeof *r);
        wisp_buf_init(&r->fields, 0);
        wisp_buf_init(&r->body, 0);
        wisp_buf_init(&r->out, 0);
        wisp_buf_init(&r->sbuf, 0);
    }
    r->conn = c;
    r->state = WISP__RQ_RECEIVING;
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nqueue++;
    return r;
}

static void rq_free(rq_t *r)
{
    wisp_buf_free(&r->fields);
    wisp_buf_free(&r->body);
    wisp_buf_free(&r->out);
    wisp_buf_free(&r->sbuf);
    free(r->fv);
    free(r->harr);
    free(r->stream_ctype);
    free(r->stream_headers);
    free(r);
}

/* Keep the storage of a finished request for the next one, unless it grew
 * large (one big request must not pin memory for the life of a connection). */
static void rq_recycle(conn_t *c, rq_t *r)
{
    if (c->spare != NULL || c->closing || r->sbuf.data != NULL || r->stream_ctype != NULL ||
        r->stream_headers != NULL) {
        rq_free(r);
        return;
    }
    rq_t keep = *r;
    if (keep.fields.cap > 8192)
        wisp_buf_free(&keep.fields);
    if (keep.body.cap > 65536)
        wisp_buf_free(&keep.body);
    if (keep.out.cap > 16384)
        wisp_buf_free(&keep.out);
    if (keep.fv_cap > 64) {
        free(keep.fv);
        free(keep.harr);
        keep.fv = NULL;
        keep.harr = NULL;
        keep.fv_cap = keep.harr_cap = 0;
    }
    memset(r, 0, sizeof *r);
    r->fields = keep.fields;
    r->body = keep.body;
    r->out = keep.out;
    wisp_buf_reset(&r->fields);
    wisp_buf_reset(&r->body);
    wisp_buf_reset(&r->out);
    wisp_buf_init(&r->sbuf, 0);
    r->fv = keep.fv;
    r->fv_cap = keep.fv_cap;
    r->harr = keep.harr;
    r->harr_cap = keep.harr_cap;
    c->spare = r;
}

/* Set the public view (target, path, query, headers, trailers) from the
 * offsets; called again after trailers, which may have moved the storage. */
static void rq_publish(rq_t *r)
{
    if (r->harr_cap < r->nfv) {
        r->harr_cap = r->fv_cap;
        r->harr = xrealloc(r->harr, r->harr_cap * sizeof *r->harr);
    }
    char *base = r->fields.data;
    for (size_t i = 0; i < r->nfv; i++) {
        char *v = base + r->fv[i].value;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            v[--n] = '\0';
        r->harr[i].name = base + r->fv[i].name;
        r->harr[i].value = v;
    }
    r->pub.target = base;
    r->pub.path = base + r->path_off;
    r->pub.query = base + r->query_off;
    r->pub.headers = r->harr;
    r->pub.nheaders = r->nheaders;
    r->pub.trailers = r->harr != NULL ? r->harr + r->nheaders : NULL;
    r->pub.ntrailers = r->nfv - r->nheaders;
}

/* Store path and query (raw) after the target. */
static void rq_split_target(rq_t *r, int method)
{
    const char *t = r->fields.data;
    size_t tl = r->target_len;
    size_t ps = 0, pl = tl, qs = tl, ql = 0;
    if (tl > 0 && t[0] != '/' && t[0] != '*' && method != HTTP_CONNECT) {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, tl, 0, &u) == 0) {
            ps = u.field_data[UF_PATH].off;
            pl = (u.field_set & (1 << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
            if (u.field_set & (1 << UF_QUERY)) {
                qs = u.field_data[UF_QUERY].off;
                ql = u.field_data[UF_QUERY].len;
            }
        }
    } else if (method != HTTP_CONNECT) {
        const char *q = memchr(t, '?', tl);
        const char *h = memchr(t, '#', tl);
        if (h != NULL && (q == NULL || h < q))
            q = NULL;
        size_t end = h ? (size_t)(h - t) : tl;
        if (q != NULL) {
            pl = (size_t)(q - t);
            qs = pl + 1;
            ql = end - qs;
        } else {
            pl = end;
        }
    }
    buf_reserve(&r->fields, pl + ql + 3);
    r->path_off = r->fields.len;
    if (pl == 0 && method != HTTP_CONNECT)
        wisp_buf_add(&r->fields, "/", 1);
    else
        wisp_buf_add(&r->fields, r->fields.data + ps, pl);
    wisp_buf_add(&r->fields, "", 1);
    r->query_off = r->fields.len;
    wisp_buf_add(&r->fields, r->fields.data + qs, ql);
    wisp_buf_add(&r->fields, "", 1);
}

/* ---- parser callbacks -------------------------------------------------- */

static int count_header(conn_t *c, size_t n)
{
    c->hdr_bytes += n;
    if (c->hdr_bytes > c->srv->lim.max_header_bytes) {
        c->fail_status = 431;
        return -1;
    }
    return 0;
}

static void url_close(conn_t *c, rq_t *r)
{
    if (!c->url_open)
        return;
    c->url_open = false;
    r->target_len = r->fields.len;
    wisp_buf_add(&r->fields, "", 1);
}

/* End the header or trailer being received. */
static void field_close(conn_t *c, rq_t *r)
{
    if (c->hstate == 1) {
        wisp_buf_add(&r->fields, "", 1);
        r->fv[r->nfv - 1].value = r->fields.len;
        wisp_buf_add(&r->fields, "", 1);
    } else if (c->hstate == 2) {
        wisp_buf_add(&r->fields, "", 1);
    }
    c->hstate = 0;
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    rq_t *r = rq_new(c);
    c->cur = r;
    c->cur_start = conn_now(c);
    c->hdr_bytes = 0;
    c->hstate = 0;
    c->url_open = true;
    c->headers_done = false;
    c->fail_status = 0;
    r->pub.start_ns = wisp_mono_ns();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (count_header(c, len) < 0)
        return -1;
    wisp_buf_add(&c->cur->fields, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    rq_t *r = c->cur;
    if (c->hstate != 1) {
        /* Four more bytes for the colon, the space and the CRLF. */
        if (count_header(c, len + 4) < 0)
            return -1;
        url_close(c, r);
        field_close(c, r);
        if (r->nfv == r->fv_cap) {
            r->fv_cap = r->fv_cap ? r->fv_cap * 2 : 16;
            r->fv = xrealloc(r->fv, r->fv_cap * sizeof *r->fv);
        }
        r->fv[r->nfv].name = r->fields.len;
        r->fv[r->nfv].value = SIZE_MAX;
        r->nfv++;
        c->hstate = 1;
    } else if (count_header(c, len) < 0) {
        return -1;
    }
    wisp_buf_add(&r->fields, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    rq_t *r = c->cur;
    if (count_header(c, len) < 0)
        return -1;
    if (c->hstate == 1) {
        wisp_buf_add(&r->fields, "", 1);
        r->fv[r->nfv - 1].value = r->fields.len;
        c->hstate = 2;
    }
    if (c->hstate == 2)
        wisp_buf_add(&r->fields, at, len);
    return 0;
}

static void rq_emit(rq_t *r, const uv_buf_t *bufs, unsigned n);

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    rq_t *r = c->cur;
    const wisp_http_limits_t *lim = &c->srv->lim;
    url_close(c, r);
    field_close(c, r);
    c->headers_done = true;
    r->nheaders = r->nfv;
    rq_split_target(r, p->method);
    rq_publish(r);
    r->pub.method = http_method_str(p->method);
    r->head_method = p->method == HTTP_HEAD;
    if (p->http_major != 1) {
        c->fail_status = p->http_major == 0 ? 400 : 505;
        return -1;
    }
    r->http10 = p->http_minor == 0;
    r->keep_alive = http_should_keep_alive(p) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_body = chunked || (p->content_length != ULLONG_MAX && p->content_length > 0);
    if (!chunked && p->content_length != ULLONG_MAX) {
        if (p->content_length > lim->max_body_bytes) {
            c->fail_status = 413;
            return -1;
        }
        /* Reserve the declared size, but commit at most 1 MiB on the word of
         * a header; on_body reserves the rest once the bytes really come. */
        r->body_expect = (size_t)p->content_length;
        buf_reserve(&r->body, r->body_expect < (1u << 20) ? r->body_expect : (1u << 20));
    }
    const char *expect = wisp_http_req_header(&r->pub, "Expect");
    if (expect != NULL) {
        if (!wisp_streq_ci(expect, "100-continue")) {
            c->fail_status = 417;
            return -1;
        }
        if (has_body && !r->http10) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t b = mkbuf(cont, sizeof cont - 1);
            rq_emit(r, &b, 1);
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    rq_t *r = c->cur;
    if (len > c->srv->lim.max_body_bytes - r->body.len) {
        c->fail_status = 413;
        return -1;
    }
    if (r->body.len + len > r->body.cap && r->body_expect > r->body.len)
        buf_reserve(&r->body, r->body_expect - r->body.len);
    wisp_buf_add(&r->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    rq_t *r = c->cur;
    if (r->nfv > r->nheaders || c->hstate != 0) {
        field_close(c, r);
        rq_publish(r);
    }
    if (r->body.data == NULL)
        wisp_buf_add(&r->body, "", 0);
    r->pub.body = r->body.data;
    r->pub.body_len = r->body.len;
    c->cur = NULL;
    c->ready = r;
    /* Leave the parser so that the handler runs outside of it. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void wisp__http_setup_parser_limit(size_t max_header_bytes)
{
    /* http-parser's own limit is global and counts raw bytes (whitespace
     * included); keep it above every server's limit so that ours, which is
     * per server, decides, and theirs still stops floods of ignored bytes. */
    static size_t current = HTTP_MAX_HEADER_SIZE;
    size_t want = max_header_bytes + max_header_bytes / 4 + 1024;
    if (want > UINT32_MAX / 2)
        want = UINT32_MAX / 2;
    if (want > current) {
        current = want;
        http_parser_set_max_header_size((uint32_t)want);
    }
}

/* ---- output ------------------------------------------------------------ */

static const char *const wday_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

const char *wisp__http_date(wisp_http_server_t *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(srv->date, sizeof srv->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 wday_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        srv->date_sec = now;
    }
    return srv->date;
}

/* What a streamed answer has given that its client has not taken yet. */
static size_t rq_untaken(rq_t *r)
{
    if (r->buffer_stream)
        return r->sbuf.len;
    return r->out.len + (r->conn ? uv_stream_get_write_queue_size(&r->conn->h.stream) : 0);
}

static bool rq_stream_caught_up(rq_t *r)
{
    return r->buffer_stream || rq_untaken(r) <= r->conn->srv->lim.max_stream_queue_bytes / 4;
}

bool wisp_http_req_stream_ready(wisp_http_req_t *req, wisp_http_drain_cb cb, void *data)
{
    rq_t *r = (rq_t *)req;
    if (r->state != WISP__RQ_STREAMING || r->conn == NULL || r->conn->closing ||
        rq_stream_caught_up(r)) {
        r->drain_cb = NULL;
        return true;
    }
    r->drain_cb = cb;
    r->drain_data = data;
    return false;
}

/* After a write: tell the streamed answers waiting for their client. */
static void conn_tell_drained(conn_t *c)
{
    for (rq_t *r = c->head; r != NULL && !c->closing; r = r->next) {
        if (r->drain_cb == NULL || r->state != WISP__RQ_STREAMING || !rq_stream_caught_up(r))
            continue;
        wisp_http_drain_cb cb = r->drain_cb;
        r->drain_cb = NULL;
        cb(&r->pub, r->drain_data);
        return; /* the callback may have answered, changing the list */
    }
}

static void write_cb(uv_write_t *w, int status)
{
    struct write_op *op = (struct write_op *)w;
    conn_t *c = op->conn;
    free(op->mem);
    free(op);
    if (c->closing)
        return;
    if (status < 0) {
        wisp__http_conn_close(c);
        return;
    }
    c->write_progress = conn_now(c);
    if (c->paused_write &&
        uv_stream_get_write_queue_size(&c->h.stream) < WISP__HTTP_WRITE_HIGH / 2) {
        c->paused_write = false;
        conn_update_reading(c);
    }
    conn_tell_drained(c);
}

/* Queue mem (which the write takes) on the socket. */
static void conn_write_owned(conn_t *c, char *mem, size_t len)
{
    if (uv_stream_get_write_queue_size(&c->h.stream) == 0)
        c->write_progress = conn_now(c);
    struct write_op *op = xmalloc(sizeof *op);
    op->conn = c;
    op->mem = mem;
    uv_buf_t b = mkbuf(mem, len);
    int rc = uv_write(&op->req, &c->h.stream, &b, 1, write_cb);
    if (rc < 0) {
        free(op->mem);
        free(op);
        wisp__http_conn_close(c);
        return;
    }
    if (uv_stream_get_write_queue_size(&c->h.stream) > WISP__HTTP_WRITE_HIGH && !c->paused_write) {
        c->paused_write = true;
        conn_update_reading(c);
    }
    conn_arm(c);
}

/* Write bufs now: try the socket directly (one writev, no copy); whatever it
 * does not take is copied once and queued. */
static void conn_send(conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->closing || c->shutting)
        return;
    if (c->mem) {
        for (unsigned i = 0; i < n; i++)
            wisp_buf_add(c->mem_out, bufs[i].base, bufs[i].len);
        return;
    }
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    size_t done = 0;
    if (uv_stream_get_write_queue_size(&c->h.stream) == 0) {
        int rc = uv_try_write(&c->h.stream, bufs, n);
        if (rc < 0 && rc != UV_EAGAIN) {
            wisp__http_conn_close(c);
            return;
        }
        done = rc > 0 ? (size_t)rc : 0;
        if (done == total) {
            c->write_progress = conn_now(c);
            return;
        }
    }
    char *mem = xmalloc(total - done);
    size_t off = 0, skip = done;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(mem + off, bufs[i].base + skip, l - skip);
        off += l - skip;
        skip = 0;
    }
    conn_write_owned(c, mem, off);
}

/* Whether the finished answer of head r waits for the answer of the request
 * pipelined behind it (lim.hold_pipelined): while the parse loop still has
 * bytes after r (the next request may be complete in them), or while that
 * next request has been dispatched and is not answered yet. */
static bool rq_held(conn_t *c, rq_t *r)
{
    if (!c->srv->lim.hold_pipelined || c->closing || c->shutting || !r->keep_alive)
        return false;
    if (c->in_process && c->more_input)
        return true;
    return r->next != NULL && r->next->state == WISP__RQ_HANDLING;
}

/* Send bytes of r: now if r is first in line, else keep them in r->out. */
static void rq_emit(rq_t *r, const uv_buf_t *bufs, unsigned n)
{
    conn_t *c = r->conn;
    if (r == c->head && r->out.len == 0 && !rq_held(c, r)) {
        conn_send(c, bufs, n);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        wisp_buf_add(&r->out, bufs[i].base, bufs[i].len);
}

/* Whether the answer to r ends the connection; marks it so if it does. */
static bool rq_closes(rq_t *r)
{
    conn_t *c = r->conn;
    if (!r->keep_alive || (c->in_done && r->next == NULL)) {
        r->keep_alive = false;
        c->in_done = true;
        return true;
    }
    return false;
}

static void put_head(wisp_http_server_t *srv, wisp_buf_t *b, rq_t *r, int status, const char *ctype,
                     const char *extra, enum body_mode mode, size_t clen)
{
    wisp_buf_reset(b);
    buf_lit(b, "HTTP/1.1 ");
    buf_uint(b, (uint64_t)status);
    wisp_buf_add(b, " ", 1);
    buf_lit(b, wisp_http_status_text(status));
    buf_lit(b, "\r\nDate: ");
    buf_lit(b, wisp__http_date(srv));
    buf_lit(b, "\r\n");
    if (ctype != NULL && ctype[0] != '\0' && strpbrk(ctype, "\r\n") == NULL) {
        buf_lit(b, "Content-Type: ");
        buf_lit(b, ctype);
        buf_lit(b, "\r\n");
    }
    if (extra != NULL && extra[0] != '\0') {
        size_t n = strlen(extra);
        wisp_buf_add(b, extra, n);
        if (extra[n - 1] != '\n')
            buf_lit(b, "\r\n");
    }
    if (mode == BODY_LENGTH) {
        buf_lit(b, "Content-Length: ");
        buf_uint(b, clen);
        buf_lit(b, "\r\n");
    } else if (mode == BODY_CHUNKED) {
        buf_lit(b, "Transfer-Encoding: chunked\r\n");
    }
    if (rq_closes(r))
        buf_lit(b, "Connection: close\r\n");
    else if (r->http10)
        buf_lit(b, "Connection: keep-alive\r\n");
    buf_lit(b, "\r\n");
}

static void rq_count(rq_t *r, int status)
{
    wisp_http_server_t *srv = r->conn->srv;
    char labels[200];
    snprintf(labels, sizeof labels, "%s,code=\"%d\"", srv->label, status);
    wisp_metrics_add(srv->m_requests, labels, 1);
    uint64_t ns = wisp_mono_ns() - r->pub.start_ns;
    wisp_metrics_observe(srv->m_duration, srv->label, (double)ns / 1e9);
}

/* The answer to r is complete: account for it and let the output move on. */
static void rq_done(rq_t *r, int status)
{
    conn_t *c = r->conn;
    r->status = status;
    r->state = WISP__RQ_DONE;
    rq_count(r, status);
    conn_flush(c);
    conn_arm(c);
}

static int clamp_status(int status)
{
    if (status < 200 || status > 999) {
        wisp_warn("http", "handler answered with status %d; sending 500", status);
        return 500;
    }
    return status;
}

void wisp_http_respond(wisp_http_req_t *req, int status, const char *content_type,
                       const char *headers, const void *body, size_t len)
{
    rq_t *r = (rq_t *)req;
    if (r->state == WISP__RQ_STREAMING) {
        wisp_http_respond_chunk(req, body, len);
        wisp_http_respond_end(req);
        return;
    }
    if (r->state != WISP__RQ_HANDLING)
        return;
    conn_t *c = r->conn;
    if (c == NULL) {
        rq_free(r);
        return;
    }
    if (c->closing) {
        r->state = WISP__RQ_DONE;
        return;
    }
    status = clamp_status(status);
    bool no_body = status == 204 || status == 304;
    wisp_http_server_t *srv = c->srv;
    put_head(srv, &srv->scratch, r, status, content_type, headers,
             no_body ? BODY_NONE : BODY_LENGTH, len);
    uv_buf_t iov[2];
    unsigned n = 0;
    iov[n++] = mkbuf(srv->scratch.data, srv->scratch.len);
    if (!no_body && !r->head_method && len > 0)
        iov[n++] = mkbuf(body, len);
    rq_emit(r, iov, n);
    rq_done(r, status);
}

void wisp_http_respond_start(wisp_http_req_t *req, int status, const char *content_type,
                             const char *headers)
{
    rq_t *r = (rq_t *)req;
    if (r->state != WISP__RQ_HANDLING)
        return;
    status = clamp_status(status);
    r->state = WISP__RQ_STREAMING;
    r->status = status;
    conn_t *c = r->conn;
    if (c == NULL || c->closing)
        return;
    if (r->http10) {
        /* HTTP/1.0 has no chunked encoding: collect the body and send it
         * with a length at the end, so keep-alive and pipelining still work. */
        r->buffer_stream = true;
        r->stream_ctype = content_type ? xstrdup(content_type) : NULL;
        r->stream_headers = headers ? xstrdup(headers) : NULL;
        return;
    }
    wisp_http_server_t *srv = c->srv;
    bool none = status == 204 || status == 304;
    r->no_body = none || r->head_method;
    put_head(srv, &srv->scratch, r, status, content_type, headers, none ? BODY_NONE : BODY_CHUNKED,
             0);
    uv_buf_t b = mkbuf(srv->scratch.data, srv->scratch.len);
    rq_emit(r, &b, 1);
}

void wisp_http_respond_chunk(wisp_http_req_t *req, const void *data, size_t len)
{
    rq_t *r = (rq_t *)req;
    if (r->state != WISP__RQ_STREAMING || r->conn == NULL || r->conn->closing || len == 0)
        return;
    conn_t *c = r->conn;
    size_t untaken = rq_untaken(r);
    if (untaken + len > c->srv->lim.max_stream_queue_bytes) {
        wisp_warn("http",
                  "%s: closing a connection whose client left %zu bytes of a streamed "
                  "answer untaken",
                  c->srv->name, untaken);
        wisp__http_conn_close(c);
        return;
    }
    if (r->buffer_stream) {
        wisp_buf_add(&r->sbuf, data, len);
        return;
    }
    if (r->no_body)
        return;
    char hdr[24];
    int hn = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
    uv_buf_t iov[3] = {mkbuf(hdr, (size_t)hn), mkbuf(data, len), mkbuf("\r\n", 2)};
    rq_emit(r, iov, 3);
}

void wisp_http_respond_end(wisp_http_req_t *req)
{
    rq_t *r = (rq_t *)req;
    r->drain_cb = NULL;
    if (r->state == WISP__RQ_HANDLING) {
        wisp_http_respond(req, 200, NULL, NULL, NULL, 0);
        return;
    }
    if (r->state != WISP__RQ_STREAMING)
        return;
    conn_t *c = r->conn;
    if (c == NULL) {
        rq_free(r);
        return;
    }
    if (c->closing) {
        r->state = WISP__RQ_DONE;
        return;
    }
    if (r->buffer_stream) {
        cleanup_free char *ctype = steal_pointer(&r->stream_ctype);
        cleanup_free char *headers = steal_pointer(&r->stream_headers);
        wisp_buf_t body = r->sbuf;
        wisp_buf_init(&r->sbuf, 0);
        r->buffer_stream = false;
        r->state = WISP__RQ_HANDLING;
        wisp_http_respond(req, r->status, ctype, headers, body.data, body.len);
        wisp_buf_free(&body);
        return;
    }
    if (!r->no_body) {
        uv_buf_t b = mkbuf("0\r\n\r\n", 5);
        rq_emit(r, &b, 1);
    }
    rq_done(r, r->status);
}

void wisp_http_req_on_abort(wisp_http_req_t *req, wisp_http_abort_cb cb, void *data)
{
    rq_t *r = (rq_t *)req;
    r->abort_cb = cb;
    r->abort_data = data;
}

static void rq_respond_error(rq_t *r, int status)
{
    char body[160];
    wisp_errcode_t code = status == 413 || status == 431 ? WISP_ELIMIT : WISP_EINVALID;
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                     wisp_errcode_name(code), wisp_http_status_text(status));
    wisp_http_respond(&r->pub, status, "application/json", NULL, body, (size_t)n);
}

/* ---- connection state -------------------------------------------------- */

static void shutdown_cb(uv_shutdown_t *s, int status)
{
    conn_t *c = s->data;
    if (c->closing)
        return;
    if (status < 0 || c->got_eof) {
        wisp__http_conn_close(c);
        return;
    }
    c->lingering = true;
    c->linger_deadline = conn_now(c) + WISP__HTTP_LINGER_MS;
    conn_update_reading(c);
    conn_arm(c);
}

/* Everything is answered and no more requests will be read: half-close after
 * the queued writes, then drop input for a moment before closing. */
static void conn_finish(conn_t *c)
{
    if (c->shutting || c->closing)
        return;
    c->shutting = true;
    c->in_done = true;
    if (c->mem) {
        c->closing = true;
        return;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, &c->h.stream, shutdown_cb) < 0) {
        wisp__http_conn_close(c);
        return;
    }
    conn_update_reading(c);
}

static void conn_schedule_resume(conn_t *c)
{
    c->want_resume = true;
    if (c->mem || c->closing)
        return;
    uv_timer_start(&c->timer, timer_cb, 0, 0);
    c->timer_due = uv_now(c->srv->loop);
}

/* Most answers conn_flush gathers into one write. */
#define FLUSH_IOV 16

/* Hand the output of finished requests at the head to the socket, in order:
 * the answers that are ready go out together in one write. */
static void conn_flush(conn_t *c)
{
    bool more = true;
    while (more && c->head != NULL && !c->closing) {
        uv_buf_t iov[FLUSH_IOV];
        rq_t *owner[FLUSH_IOV];
        unsigned n = 0;
        /* Gather the outputs of the finished requests at the head, then what
         * the first unfinished one has (a streamed answer's start); stop at
         * an answer that is held. */
        for (rq_t *r = c->head; r != NULL && n < FLUSH_IOV; r = r->next) {
            if (r->state == WISP__RQ_DONE && rq_held(c, r))
                break;
            if (r->out.len > 0) {
                owner[n] = r;
                iov[n++] = mkbuf(r->out.data, r->out.len);
            }
            if (r->state != WISP__RQ_DONE)
                break;
        }
        more = n == FLUSH_IOV;
        if (n > 0) {
            conn_send(c, iov, n); /* copies whatever the socket does not take */
            for (unsigned i = 0; i < n; i++)
                wisp_buf_reset(&owner[i]->out);
            if (c->closing)
                return;
        }
        /* Retire the finished requests whose output is gone. */
        while (c->head != NULL && c->head->state == WISP__RQ_DONE && c->head->out.len == 0) {
            rq_t *r = c->head;
            c->head = r->next;
            if (c->head == NULL)
                c->tail = NULL;
            c->nqueue--;
            rq_recycle(c, r);
        }
    }
    if (c->closing)
        return;
    if (c->head == NULL) {
        c->idle_since = conn_now(c);
        if (c->in_done) {
            conn_finish(c);
            return;
        }
    }
    if (c->paused_pipeline && c->nqueue < c->srv->lim.max_pipelined) {
        c->paused_pipeline = false;
        if (c->inbuf.len > 0)
            conn_schedule_resume(c);
        else
            conn_update_reading(c);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    buf->base = c->srv->rbuf;
    buf->len = WISP__HTTP_READ_BYTES;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_update_reading(conn_t *c)
{
    if (c->mem || c->closing || c->got_eof)
        return;
    bool want = c->shutting || (!c->paused_pipeline && !c->paused_write && !c->want_resume);
    if (want == c->reading)
        return;
    if (want) {
        if (uv_read_start(&c->h.stream, alloc_cb, read_cb) < 0) {
            wisp__http_conn_close(c);
            return;
        }
    } else {
        uv_read_stop(&c->h.stream);
    }
    c->reading = want;
}

/* Stop reading requests after a protocol error; answer status in order. */
static void conn_fail(conn_t *c, int status)
{
    c->in_done = true;
    rq_t *r = c->cur;
    c->cur = NULL;
    if (r == NULL) {
        r = rq_new(c);
        r->pub.start_ns = wisp_mono_ns();
    }
    r->state = WISP__RQ_HANDLING;
    r->keep_alive = false;
    r->head_method = false;
    r->http10 = false;
    rq_respond_error(r, status);
}

static void conn_dispatch(conn_t *c, rq_t *r)
{
    wisp_http_server_t *srv = c->srv;
    r->state = WISP__RQ_HANDLING;
    if (!r->keep_alive || c->parser.upgrade || srv->draining) {
        r->keep_alive = false;
        c->in_done = true;
    }
    memcpy(r->pub.peer, c->peer, sizeof r->pub.peer);
    r->pub.listener = c->listener;
    r->pub.listener_data = c->listener ? c->listener->data : NULL;
    srv->handler(&r->pub, srv->data);
}

/* Run the parser over data; returns how many bytes it consumed. */
static size_t conn_parse(conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    c->in_process = true;
    while (off < len && !c->in_done && !c->closing && !c->paused_pipeline) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, data + off, len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            rq_t *r = c->ready;
            c->ready = NULL;
            c->more_input = off < len;
            if (r != NULL)
                conn_dispatch(c, r);
            if (!c->in_done && !c->closing && c->nqueue >= c->srv->lim.max_pipelined) {
                c->paused_pipeline = true;
                conn_update_reading(c);
            }
            continue;
        }
        if (e != HPE_OK) {
            int status = c->fail_status;
            if (status == 0)
                status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
            if (c->srv->lim.on_reject != NULL && c->listener != NULL)
                c->srv->lim.on_reject(c->listener->data, status);
            conn_fail(c, status);
            break;
        }
        if (n == 0)
            break;
    }
    c->in_process = false;
    c->more_input = false;
    /* Answers held while more input was being parsed go out now, unless the
     * request pipelined behind them is still waiting for its own. */
    if (c->srv->lim.hold_pipelined && c->head != NULL && !c->closing)
        conn_flush(c);
    return off;
}

/* Bytes arrived (len may be 0 to parse input held back earlier). */
static void conn_input(conn_t *c, const char *data, size_t len)
{
    if (c->in_done || c->shutting || c->closing)
        return;
    if (c->inbuf.len > 0 || c->paused_pipeline) {
        wisp_buf_add(&c->inbuf, data, len);
        if (c->paused_pipeline)
            return;
        size_t used = conn_parse(c, c->inbuf.data, c->inbuf.len);
        if (c->in_done || c->closing)
            wisp_buf_free(&c->inbuf);
        else
            wisp_buf_consume(&c->inbuf, used);
        return;
    }
    size_t used = conn_parse(c, data, len);
    if (used < len && !c->in_done && !c->closing)
        wisp_buf_add(&c->inbuf, data + used, len - used);
}

/* The peer closed its side (or the socket failed). Requests still waiting
 * for an answer are aborted; finished answers still go out. */
static void conn_on_eof(conn_t *c)
{
    c->got_eof = true;
    c->in_done = true;
    c->reading = false;
    for (rq_t *r = c->head; r != NULL; r = r->next) {
        if (r->state != WISP__RQ_DONE) {
            wisp__http_conn_close(c);
            return;
        }
    }
    if (c->lingering || c->head == NULL)
        wisp__http_conn_close(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (c->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_on_eof(c);
        else
            wisp__http_conn_close(c);
        return;
    }
    if (nread == 0 || c->in_done || c->shutting)
        return;
    conn_input(c, buf->base, (size_t)nread);
    conn_arm(c);
}

static uint64_t conn_deadline(conn_t *c, enum deadline_kind *why)
{
    const wisp_http_limits_t *lim = &c->srv->lim;
    uint64_t d = UINT64_MAX;
    *why = DL_NONE;
    if (c->lingering) {
        d = c->linger_deadline;
        *why = DL_LINGER;
    } else if (c->cur != NULL && !c->in_done) {
        d = c->cur_start + lim->request_timeout_ms;
        *why = DL_REQUEST;
    } else if (c->head == NULL && !c->shutting) {
        d = c->idle_since + lim->idle_timeout_ms;
        *why = DL_IDLE;
    }
    if (uv_stream_get_write_queue_size(&c->h.stream) > 0) {
        uint64_t w = c->write_progress + lim->request_timeout_ms;
        if (w < d) {
            d = w;
            *why = DL_WRITE;
        }
    }
    return d;
}

static void conn_arm(conn_t *c)
{
    if (c->mem || c->closing)
        return;
    enum deadline_kind why;
    uint64_t d = conn_deadline(c, &why);
    if (why == DL_NONE)
        return;
    if (c->timer_due != 0 && c->timer_due <= d)
        return;
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, timer_cb, d > now ? d - now : 0, 0);
    c->timer_due = d > now ? d : now;
}

static void conn_resume(conn_t *c)
{
    c->want_resume = false;
    if (!c->paused_pipeline && !c->in_done && !c->closing && c->inbuf.len > 0)
        conn_input(c, NULL, 0);
    conn_update_reading(c);
}

static void timer_cb(uv_timer_t *t)
{
    conn_t *c = t->data;
    c->timer_due = 0;
    if (c->closing)
        return;
    if (c->want_resume) {
        conn_resume(c);
        if (c->closing)
            return;
    }
    enum deadline_kind why;
    uint64_t d = conn_deadline(c, &why);
    if (why != DL_NONE && d <= uv_now(c->srv->loop)) {
        if (why == DL_REQUEST) {
            conn_fail(c, 408);
        } else {
            if (why == DL_WRITE)
                wisp_debug("http", "closing %s: the client does not read", c->peer);
            wisp__http_conn_close(c);
            return;
        }
        if (c->closing)
            return;
    }
    conn_arm(c);
}

/* ---- life cycle -------------------------------------------------------- */

conn_t *wisp__http_conn_new(wisp_http_server_t *srv, wisp_http_listener_t *l)
{
    conn_t *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->listener = l;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    wisp_buf_init(&c->inbuf, 0);
    c->h.handle.data = c;
    return c;
}

static void format_peer(conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    snprintf(c->peer, sizeof c->peer, "unknown");
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
}

int wisp__http_conn_start(conn_t *c)
{
    uv_loop_t *loop = c->srv->loop;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    if (c->listener != NULL && c->listener->is_pipe) {
        snprintf(c->peer, sizeof c->peer, "unix");
    } else {
        uv_tcp_nodelay(&c->h.tcp, 1);
        format_peer(c);
    }
    c->idle_since = c->write_progress = uv_now(loop);
    conn_update_reading(c);
    if (c->closing)
        return -1;
    conn_arm(c);
    return 0;
}

static void conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open == 0)
        wisp__http_conn_free(c);
}

/* Detach every request from c: unanswered ones are aborted (their abort
 * callbacks run once) and freed later by their answer; the rest are freed. */
static void conn_abort_all(conn_t *c)
{
    rq_t *r;
    while ((r = c->head) != NULL) {
        c->head = r->next;
        r->next = NULL;
        if (r->state == WISP__RQ_HANDLING || r->state == WISP__RQ_STREAMING) {
            r->conn = NULL;
            r->pub.aborted = true;
            r->drain_cb = NULL;
            wisp_http_abort_cb cb = r->abort_cb;
            r->abort_cb = NULL;
            if (cb != NULL)
                cb(&r->pub, r->abort_data);
        } else {
            rq_free(r);
        }
    }
    c->tail = NULL;
    c->cur = NULL;
    c->nqueue = 0;
}

void wisp__http_conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->in_done = true;
    if (c->mem) {
        conn_abort_all(c);
        return;
    }
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close(&c->h.handle, conn_handle_closed);
}

void wisp__http_conn_drain(conn_t *c)
{
    if (c->closing || c->shutting || c->cur != NULL)
        return;
    c->in_done = true;
    if (c->head == NULL)
        wisp__http_conn_close(c);
}

void wisp__http_conn_free(conn_t *c)
{
    wisp_http_listener_t *l = c->listener;
    wisp_http_server_t *srv = c->srv;
    bool mem = c->mem;
    if (l != NULL) {
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            l->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        l->nconns--;
    }
    conn_abort_all(c);
    if (c->spare != NULL)
        rq_free(c->spare);
    wisp_buf_free(&c->inbuf);
    free(c);
    if (!mem)
        wisp__http_conn_released(srv, l);
}

/* ---- memory mode ------------------------------------------------------- */

struct wisp__http_mem {
    wisp_http_server_t srv;
    conn_t *conn;
    wisp_buf_t out;
};

wisp__http_mem_t *wisp__http_mem_new(const wisp_http_limits_t *lim, wisp_http_handler_cb handler,
                                     void *data)
{
    wisp__http_mem_t *m = xcalloc(1, sizeof *m);
    wisp__http_server_init(&m->srv, NULL, "mem", lim, handler, data);
    wisp_buf_init(&m->out, 0);
    m->conn = wisp__http_conn_new(&m->srv, NULL);
    m->conn->mem = true;
    m->conn->mem_out = &m->out;
    snprintf(m->conn->peer, sizeof m->conn->peer, "mem");
    return m;
}

void wisp__http_mem_feed(wisp__http_mem_t *m, const void *data, size_t len)
{
    conn_t *c = m->conn;
    if (len == 0) {
        if (c->want_resume)
            conn_resume(c);
        return;
    }
    c->want_resume = false;
    conn_input(c, data, len);
}

void wisp__http_mem_eof(wisp__http_mem_t *m)
{
    if (!m->conn->closing)
        conn_on_eof(m->conn);
}

const wisp_buf_t *wisp__http_mem_output(const wisp__http_mem_t *m)
{
    return &m->out;
}

bool wisp__http_mem_closed(const wisp__http_mem_t *m)
{
    return m->conn->closing;
}

void wisp__http_mem_free(wisp__http_mem_t *m)
{
    if (m == NULL)
        return;
    wisp__http_conn_close(m->conn);
    wisp__http_conn_free(m->conn);
    wisp_buf_free(&m->out);
    wisp_buf_free(&m->srv.scratch);
    free(m->srv.rbuf);
    free(m->srv.name);
    free(m);
}
