/*
 * fuzz_http.c - feeds arbitrary bytes as one connection's input through the
 * server's connection code (memory mode, no socket) and checks what it
 * writes back.
 *
 * Input: the first byte is a control byte (low 6 bits + 1: the size of the
 * pieces the rest is fed in; bit 6: the client closes before deferred
 * answers are given; bit 7: deferred answers are given after every piece),
 * the rest is what the client sends. The handler answers paths containing
 * 'd' later (in reverse order), paths containing 's' with a chunked stream,
 * others at once; every answer carries X-Seq, the request's position. Odd
 * requests aborted while deferred are answered inside the abort callback.
 *
 * Invariants: the output parses as a sequence of HTTP/1.1 responses; the
 * answers to handled requests come exactly once each and in request order;
 * at most one answer without X-Seq (a protocol error) comes, and only last,
 * with Connection: close; nothing follows a Connection: close; abort
 * callbacks run at most once per request.
 */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "http/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQS 4096
#define MAX_PENDING 64

static wisp_http_req_t *pending[MAX_PENDING];
static int npending;
static int nreq;
static bool is_head[MAX_REQS];
static unsigned char aborted[MAX_REQS];

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: %s:%d: invariant %s violated\n", __FILE__, __LINE__,       \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void answer(wisp_http_req_t *req);

static void on_abort(wisp_http_req_t *req, void *data)
{
    intptr_t seq = (intptr_t)req->user;
    ASSERT(req->aborted);
    ASSERT(aborted[seq] == 0);
    aborted[seq] = 1;
    /* Odd requests are answered right here, inside the abort callback. */
    if (seq % 2 == 1) {
        for (int i = 0; i < npending; i++) {
            if (pending[i] == req) {
                pending[i] = NULL;
                answer(req);
                return;
            }
        }
    }
}

static void answer(wisp_http_req_t *req)
{
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Seq: %d\r\n", (int)(intptr_t)req->user);
    wisp_http_respond(req, 200, "text/plain", hdr, req->body, req->body_len);
}

static void handler(wisp_http_req_t *req, void *data)
{
    ASSERT(nreq < MAX_REQS);
    ASSERT(req->method != NULL && req->target != NULL && req->path != NULL && req->query != NULL);
    ASSERT(req->body != NULL && req->body[req->body_len] == '\0');
    ASSERT(req->body_len <= 4096);
    for (size_t i = 0; i < req->nheaders; i++)
        ASSERT(req->headers[i].name != NULL && req->headers[i].value != NULL);
    for (size_t i = 0; i < req->ntrailers; i++)
        ASSERT(req->trailers[i].name != NULL && req->trailers[i].value != NULL);
    int seq = nreq++;
    req->user = (void *)(intptr_t)seq;
    is_head[seq] = strcmp(req->method, "HEAD") == 0;
    wisp_http_req_on_abort(req, on_abort, NULL);
    if (strchr(req->path, 'd') != NULL && npending < MAX_PENDING) {
        pending[npending++] = req;
        return;
    }
    if (strchr(req->path, 's') != NULL) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "X-Seq: %d\r\n", seq);
        wisp_http_respond_start(req, 200, "text/plain", hdr);
        wisp_http_respond_chunk(req, "ab", 2);
        wisp_http_respond_chunk(req, req->body, req->body_len);
        wisp_http_respond_end(req);
        return;
    }
    answer(req);
}

/* Answer every deferred request, last first. */
static void answer_pending(void)
{
    while (npending > 0) {
        wisp_http_req_t *req = pending[--npending];
        if (req != NULL)
            answer(req);
    }
}

/* ---- checking the output ----------------------------------------------- */

struct check {
    int responses; /* final responses seen */
    int next_seq;  /* X-Seq expected next */
    int errors;    /* final responses without X-Seq */
    bool closed;   /* a response said Connection: close */
    bool in_field_seq, in_field_conn;
    int cur_seq;
    bool cur_close;
    int begun, completed;
};

static int c_begin(http_parser *p)
{
    struct check *k = p->data;
    ASSERT(!k->closed);
    k->begun++;
    k->cur_seq = -1;
    k->cur_close = false;
    return 0;
}

static int c_field(http_parser *p, const char *at, size_t len)
{
    struct check *k = p->data;
    k->in_field_seq = len == 5 && strncasecmp(at, "X-Seq", 5) == 0;
    k->in_field_conn = len == 10 && strncasecmp(at, "Connection", 10) == 0;
    return 0;
}

static int c_value(http_parser *p, const char *at, size_t len)
{
    struct check *k = p->data;
    if (k->in_field_seq) {
        char tmp[16];
        ASSERT(len > 0 && len < sizeof tmp);
        memcpy(tmp, at, len);
        tmp[len] = '\0';
        k->cur_seq = atoi(tmp);
    }
    if (k->in_field_conn && len == 5 && strncasecmp(at, "close", 5) == 0)
        k->cur_close = true;
    return 0;
}

static int c_headers_complete(http_parser *p)
{
    struct check *k = p->data;
    if (p->status_code == 100)
        return 0;
    k->responses++;
    if (k->cur_seq >= 0) {
        ASSERT(k->errors == 0);
        ASSERT(k->cur_seq == k->next_seq);
        k->next_seq++;
        if (is_head[k->cur_seq])
            return 1;
    } else {
        ASSERT(p->status_code >= 400);
        ASSERT(k->cur_close);
        k->errors++;
    }
    return 0;
}

static int c_complete(http_parser *p)
{
    struct check *k = p->data;
    k->completed++;
    if (k->cur_close)
        k->closed = true;
    return 0;
}

static void check_output(const wisp_buf_t *out, struct check *k)
{
    memset(k, 0, sizeof *k);
    static const http_parser_settings s = {
        .on_message_begin = c_begin,
        .on_header_field = c_field,
        .on_header_value = c_value,
        .on_headers_complete = c_headers_complete,
        .on_message_complete = c_complete,
    };
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = k;
    size_t n = http_parser_execute(&p, &s, out->data ? out->data : "", out->len);
    ASSERT(HTTP_PARSER_ERRNO(&p) == HPE_OK);
    ASSERT(n == out->len);
    ASSERT(k->begun == k->completed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    size_t piece = (size_t)(ctl & 63) + 1;
    bool early_eof = (ctl & 64) != 0;
    bool eager = (ctl & 128) != 0;
    data++;
    size--;
    npending = 0;
    nreq = 0;
    memset(aborted, 0, sizeof aborted);
    wisp_http_limits_t lim = {
        .max_header_bytes = 1024,
        .max_body_bytes = 4096,
        .max_pipelined = 4,
    };
    wisp__http_mem_t *m = wisp__http_mem_new(&lim, handler, NULL);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        wisp__http_mem_feed(m, data + off, n);
        if (eager) {
            answer_pending();
            wisp__http_mem_feed(m, NULL, 0);
        }
    }
    struct check k;
    if (early_eof) {
        int waiting[MAX_PENDING], nwaiting = npending;
        for (int i = 0; i < npending; i++)
            waiting[i] = (int)(intptr_t)pending[i]->user;
        wisp__http_mem_eof(m);
        ASSERT(wisp__http_mem_closed(m));
        answer_pending();
        check_output(wisp__http_mem_output(m), &k);
        /* Requests unanswered at the close were aborted once and got no
         * answer; the answers that did go out came in order. */
        for (int i = 0; i < nwaiting; i++) {
            ASSERT(aborted[waiting[i]] == 1);
            ASSERT(waiting[i] >= k.next_seq);
        }
        for (int i = 0; i < k.next_seq; i++)
            ASSERT(aborted[i] == 0);
    } else {
        /* Answer everything, letting held-back input be parsed, until quiet. */
        while (npending > 0) {
            answer_pending();
            wisp__http_mem_feed(m, NULL, 0);
        }
        check_output(wisp__http_mem_output(m), &k);
        ASSERT(k.next_seq == nreq);
        ASSERT(k.errors <= 1);
        ASSERT(wisp__http_mem_closed(m) == (k.errors == 1 || k.closed));
        for (int i = 0; i < nreq; i++)
            ASSERT(aborted[i] == 0);
        wisp__http_mem_eof(m);
    }
    wisp__http_mem_free(m);
    return 0;
}
