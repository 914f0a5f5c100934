/*
 * v1.c - the native admin API under /v1 (the bearer token is already
 * checked by api.c): functions, code packages, synchronous invocation, logs
 * (one page, or followed as an NDJSON stream) and invocation records.
 */
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/log.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define LOGS_DEFAULT 1000
#define LOGS_MAX 10000
#define LOGS_PAGE 1000
#define FOLLOW_CHUNK (64 * 1024) /* backlog bytes per chunk of a follow */
#define INVOCATIONS_DEFAULT 50
#define INVOCATIONS_MAX 1000
#define REQUEST_ID_MAX 128

/* An open `logs?follow=1` stream. Owned by the API's list until the client
 * goes away (abort callback) or the API is freed. */
struct wisp__follow {
    struct wisp__follow *next;
    struct wisp__follow **prevp;
    wisp_api_t *api;
    wisp_http_req_t *req;
    wisp_logsub_t *sub; /* NULL while the backlog is still being sent */
    int64_t last_id;    /* lines up to this id were sent */
    char *name;         /* the function */
    char *rid;          /* only this request's lines, or NULL */
    int64_t since;
};

static void fn_answer(wisp_http_req_t *req, int status, const wisp_fn_t *fn)
{
    wisp__api_json(req, status, wisp_fn_to_json(fn), NULL);
}

/* ---- functions ---- */

static void list_functions(wisp_api_t *api, wisp_http_req_t *req)
{
    wisp_err_t err;
    int64_t limit;
    if (wisp__api_query_int(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit, &err) < 0)
        return wisp_api_send_error(req, &err);
    cleanup_free char *after = wisp_http_query_param(req->query, "after");
    wisp_fn_t **list = NULL;
    size_t n = 0;
    if (wisp_registry_list(api->registry, after && after[0] ? after : NULL, (int)limit + 1, &list,
                           &n, &err) < 0)
        return wisp_api_send_error(req, &err);
    json_t *arr = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, wisp_fn_to_json(list[i]));
    json_t *next = n > shown ? json_string(list[shown - 1]->name) : json_null();
    wisp_fn_list_free(list, n);
    wisp__api_json(req, 200, json_pack("{s:o,s:o}", "functions", arr, "next", next), NULL);
}

static void get_function(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_fn_t *fn = NULL;
    wisp_err_t err;
    if (wisp_registry_get(api->registry, name, &fn, &err) < 0)
        return wisp_api_send_error(req, &err);
    fn_answer(req, 200, fn);
    wisp_fn_free(fn);
}

static void delete_function(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_err_t err;
    if (wisp_registry_delete(api->registry, name, &err) < 0)
        return wisp_api_send_error(req, &err);
    wisp_http_respond(req, 204, NULL, NULL, NULL, 0);
}

/* Deploys answer when the registry is done; data is the request. */
static void deployed_cb(void *data, const wisp_fn_t *fn, bool created, const wisp_err_t *err)
{
    wisp_http_req_t *req = data;
    if (fn == NULL)
        return wisp_api_send_error(req, err);
    fn_answer(req, created ? 201 : 200, fn);
}

static void put_function(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    if (req->body_len > WISP_API_CONFIG_MAX)
        return wisp__api_fail(req, WISP_ELIMIT, "the configuration is larger than %u bytes",
                              WISP_API_CONFIG_MAX);
    json_error_t jerr;
    cleanup_json json_t *config =
        json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (config == NULL)
        return wisp__api_fail(req, WISP_EINVALID, "malformed JSON: %s (line %d, column %d)",
                              jerr.text, jerr.line, jerr.column);
    if (!json_is_object(config))
        return wisp__api_fail(req, WISP_EINVALID, "the configuration must be a JSON object");
    wisp_err_t err;
    if (wisp_registry_deploy(api->registry, name, config, NULL, 0, WISP_DEPLOY_UPSERT, deployed_cb,
                             req, &err) < 0)
        return wisp_api_send_error(req, &err);
}

static bool zip_content_type(const char *ct)
{
    if (ct == NULL || ct[0] == '\0')
        return true;
    size_t n = strcspn(ct, "; \t");
    return (n == 15 && strncasecmp(ct, "application/zip", n) == 0) ||
           (n == 24 && strncasecmp(ct, "application/octet-stream", n) == 0);
}

static void put_code(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    if (!zip_content_type(wisp_http_req_header(req, "Content-Type")))
        return wisp__api_fail(req, WISP_EUNSUPPORTED,
                              "code must be sent as application/zip or application/octet-stream");
    if (req->body_len > WISP_ZIP_MAX)
        return wisp__api_fail(req, WISP_ELIMIT, "the package is larger than %u bytes",
                              WISP_ZIP_MAX);
    if (req->body_len == 0)
        return wisp__api_fail(req, WISP_EINVALID, "the body must be a zip package");
    wisp_err_t err;
    if (wisp_registry_deploy(api->registry, name, NULL, req->body, req->body_len,
                             WISP_DEPLOY_UPDATE_ONLY, deployed_cb, req, &err) < 0)
        return wisp_api_send_error(req, &err);
}

/* ---- invocation ---- */

static void invoked_cb(void *data, const wisp_invoke_result_t *res)
{
    wisp_http_req_t *req = data;
    char rid[REQUEST_ID_MAX + 1];
    wisp__api_header_safe(res->request_id, rid, sizeof rid);
    if (res->refused != WISP_OK) {
        wisp_err_t err = res->err;
        err.code = res->refused;
        if (err.msg[0] == '\0')
            snprintf(err.msg, sizeof err.msg, "the invocation was refused");
        char headers[256] = "";
        int n = 0;
        if (rid[0])
            n = snprintf(headers, sizeof headers, "X-Wisp-Request-Id: %s\r\n", rid);
        if (res->refused == WISP_ETHROTTLED)
            snprintf(headers + n, sizeof headers - (size_t)n, "Retry-After: %d\r\n",
                     res->retry_after_s > 0 ? res->retry_after_s : 1);
        json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", wisp_errcode_name(err.code),
                                 "message", err.msg);
        return wisp__api_json(req, wisp_errcode_http_status(err.code), body, headers);
    }
    char etype[129];
    wisp__api_header_safe(res->error_type, etype, sizeof etype);
    /* X-Wisp-Log-Type: Tail asked for the last 4 KB of the invocation's log. */
    cleanup_free char *tail =
        res->log_tail_len ? wisp__b64_encode(res->log_tail, res->log_tail_len) : NULL;
    cleanup_free char *headers =
        xasprintf("X-Wisp-Request-Id: %s\r\nX-Wisp-Cold-Start: %d\r\nX-Wisp-Duration-Ms: %.3f\r\n"
                  "%s%s%s%s%s%s",
                  rid, res->cold ? 1 : 0, res->duration_ms,
                  etype[0] ? "X-Wisp-Function-Error: " : "", etype, etype[0] ? "\r\n" : "",
                  tail ? "X-Wisp-Log-Result: " : "", tail ? tail : "", tail ? "\r\n" : "");
    wisp_http_respond(req, 200, "application/json", headers, res->payload ? res->payload : "",
                      res->payload ? res->len : 0);
}

static bool truthy(const char *v)
{
    return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

static void invoke(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    cleanup_free char *async = wisp_http_query_param(req->query, "async");
    if (truthy(async))
        return wisp__api_fail(req, WISP_EINVALID, "async invocation is not available yet");
    if (req->body_len > WISP_PAYLOAD_MAX)
        return wisp__api_fail(req, WISP_ELIMIT,
                              "the event is larger than %u bytes (6 MiB), the limit for "
                              "synchronous invocations",
                              WISP_PAYLOAD_MAX);
    if (api->invoker == NULL)
        return wisp__api_fail(req, WISP_EUNAVAILABLE, "invocations are not available");
    /* An empty body is the empty event, as Lambda makes it. */
    wisp_invoke_req_t ireq = {
        .function = name,
        .payload = req->body_len ? req->body : "{}",
        .len = req->body_len ? req->body_len : 2,
        .trigger = "api",
        .trace_id = wisp_http_req_header(req, "X-Amzn-Trace-Id"),
    };
    const char *logtype = wisp_http_req_header(req, "X-Wisp-Log-Type");
    ireq.want_log_tail = logtype != NULL && strcasecmp(logtype, "Tail") == 0;
    wisp_invoke(api->invoker, &ireq, invoked_cb, req);
}

/* ---- logs ---- */

static char *log_line_json(int64_t id, int64_t ts, const char *request_id, const char *stream,
                           const char *line)
{
    json_t *o = json_pack("{s:o,s:I,s:s,s:s,s:s}", "id", id > 0 ? json_integer(id) : json_null(),
                          "ts", (json_int_t)ts, "request_id", request_id ? request_id : "",
                          "stream", stream ? stream : "", "line", line ? line : "");
    if (o == NULL) /* a line that is not UTF-8 */
        o = json_pack("{s:o,s:I,s:s,s:s,s:s}", "id", id > 0 ? json_integer(id) : json_null(), "ts",
                      (json_int_t)ts, "request_id", "", "stream", "", "line",
                      "(line is not valid UTF-8)");
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (s == NULL)
        abort();
    return s;
}

static void follow_line_cb(void *data, int64_t id, int64_t ts_ms, const char *request_id,
                           const char *stream, const char *line)
{
    struct wisp__follow *f = data;
    /* Lines may come with their store id (skip those the backlog had) or,
     * captured before they are stored, with id 0: those are always new. */
    if (id > 0 && id <= f->last_id)
        return;
    if (id > 0)
        f->last_id = id;
    cleanup_free char *s = log_line_json(id, ts_ms, request_id, stream, line);
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL; the length says where it ends */
    wisp_http_respond_chunk(f->req, s, n + 1);
}

static void follow_end(struct wisp__follow *f)
{
    if (f->sub != NULL)
        wisp_logs_unsubscribe(f->sub);
    if (f->next != NULL)
        f->next->prevp = f->prevp;
    *f->prevp = f->next;
    wisp_http_respond_end(f->req);
    free(f->name);
    free(f->rid);
    free(f);
}

static void follow_abort_cb(wisp_http_req_t *req, void *data)
{
    follow_end(data);
}

void wisp__api_v1_close_follows(wisp_api_t *api)
{
    while (api->follows != NULL)
        follow_end(api->follows);
}

static void follow_pump(struct wisp__follow *f);

static void follow_drained_cb(wisp_http_req_t *req, void *data)
{
    follow_pump(data);
}

/*
 * Send the lines already stored, a page at a time and only as fast as the
 * client takes them (wisp_http_req_stream_ready: a backlog of up to 100,000
 * lines of up to 256 KiB is never queued whole), then follow new lines. The
 * last page is read right after everything captured so far was stored, and
 * the subscription starts in the same turn of the loop (the only thread that
 * captures lines), so no line falls between the backlog and the live ones.
 */
static void follow_pump(struct wisp__follow *f)
{
    wisp_api_t *api = f->api;
    for (;;) {
        if (!wisp_http_req_stream_ready(f->req, follow_drained_cb, f))
            return; /* resumed from follow_drained_cb */
        if (api->invoker != NULL)
            wisp_logs_flush(api->invoker);
        cleanup_json json_t *page = NULL;
        wisp_err_t err;
        if (wisp_store_log_query(api->store, f->name, f->last_id, f->since, f->rid, LOGS_PAGE,
                                 &page, &err) < 0) {
            wisp_warn("api", "logs of %s: %s", f->name, err.msg);
            return follow_end(f);
        }
        /* Chunks of about FOLLOW_CHUNK bytes; lines may be long (256 KiB),
         * so readiness is checked after each chunk, not each page. */
        wisp_buf_t out = WISP_BUF_INIT(0);
        bool paused = false;
        size_t i;
        json_t *rec;
        json_array_foreach(page, i, rec)
        {
            char *s = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);
            wisp_buf_addf(&out, "%s\n", s ? s : "{}");
            free(s);
            json_int_t id = json_integer_value(json_object_get(rec, "id"));
            if (id > f->last_id)
                f->last_id = id;
            if (out.len >= FOLLOW_CHUNK) {
                wisp_http_respond_chunk(f->req, out.data, out.len);
                wisp_buf_reset(&out);
                if (!wisp_http_req_stream_ready(f->req, follow_drained_cb, f)) {
                    paused = true; /* the rest of the page is read again from last_id */
                    break;
                }
            }
        }
        if (out.len > 0)
            wisp_http_respond_chunk(f->req, out.data, out.len);
        wisp_buf_free(&out);
        if (paused || f->req->aborted)
            return; /* resumed from follow_drained_cb; or follow_abort_cb ends it */
        if (json_array_size(page) < LOGS_PAGE)
            break;
    }
    if (api->invoker == NULL)
        return follow_end(f);
    f->sub = wisp_logs_subscribe(api->invoker, f->name, f->rid, follow_line_cb, f);
    if (f->sub == NULL)
        follow_end(f);
}

static void logs(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_err_t err;
    wisp_fn_t *fn = NULL;
    if (wisp_registry_get(api->registry, name, &fn, &err) < 0)
        return wisp_api_send_error(req, &err);
    wisp_fn_free(fn);
    int64_t since, after, limit;
    if (wisp__api_query_int(req, "since", 0, INT64_MAX, 0, &since, &err) < 0 ||
        wisp__api_query_int(req, "after", 0, INT64_MAX, 0, &after, &err) < 0 ||
        wisp__api_query_int(req, "limit", 1, LOGS_MAX, LOGS_DEFAULT, &limit, &err) < 0)
        return wisp_api_send_error(req, &err);
    cleanup_free char *rid = wisp_http_query_param(req->query, "request_id");
    if (rid != NULL && strlen(rid) > REQUEST_ID_MAX)
        return wisp__api_fail(req, WISP_EINVALID, "request_id is longer than %d characters",
                              REQUEST_ID_MAX);
    if (rid != NULL && rid[0] == '\0') {
        free(rid);
        rid = NULL;
    }
    cleanup_free char *follow = wisp_http_query_param(req->query, "follow");
    if (api->invoker != NULL)
        wisp_logs_flush(api->invoker);

    if (!truthy(follow)) {
        json_t *page = NULL;
        if (wisp_store_log_query(api->store, name, after, since, rid, (int)limit, &page, &err) < 0)
            return wisp_api_send_error(req, &err);
        size_t n = json_array_size(page);
        int64_t next = after;
        if (n > 0)
            next = json_integer_value(json_object_get(json_array_get(page, n - 1), "id"));
        /* "more": a full page came back, so the caller should ask again with after=next. */
        return wisp__api_json(req, 200,
                              json_pack("{s:o,s:I,s:b}", "logs", page, "next", (json_int_t)next,
                                        "more", n == (size_t)limit),
                              NULL);
    }

    wisp_http_respond_start(req, 200, "application/x-ndjson", "Cache-Control: no-cache\r\n");
    struct wisp__follow *f = xcalloc(1, sizeof *f);
    f->api = api;
    f->req = req;
    f->last_id = after;
    f->name = xstrdup(name);
    f->rid = rid ? xstrdup(rid) : NULL;
    f->since = since;
    f->next = api->follows;
    if (f->next != NULL)
        f->next->prevp = &f->next;
    f->prevp = &api->follows;
    api->follows = f;
    wisp_http_req_on_abort(req, follow_abort_cb, f);
    follow_pump(f);
}

/* ---- invocation records ---- */

static bool id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static void get_invocation(wisp_api_t *api, wisp_http_req_t *req, const char *id)
{
    if (!id_valid(id))
        return wisp__api_fail(req, WISP_EINVALID, "invalid invocation id");
    json_t *rec = NULL;
    wisp_err_t err;
    if (api->invoker != NULL)
        wisp_logs_flush(api->invoker); /* records are written in batches */
    if (wisp_store_invocation_get(api->store, id, &rec, &err) < 0)
        return wisp_api_send_error(req, &err);
    wisp__api_json(req, 200, rec, NULL);
}

static void list_invocations(wisp_api_t *api, wisp_http_req_t *req, const char *name)
{
    wisp_err_t err;
    int64_t limit;
    if (wisp__api_query_int(req, "limit", 1, INVOCATIONS_MAX, INVOCATIONS_DEFAULT, &limit, &err) <
        0)
        return wisp_api_send_error(req, &err);
    wisp_fn_t *fn = NULL;
    if (wisp_registry_get(api->registry, name, &fn, &err) < 0)
        return wisp_api_send_error(req, &err);
    wisp_fn_free(fn);
    json_t *arr = NULL;
    if (api->invoker != NULL)
        wisp_logs_flush(api->invoker);
    if (wisp_store_invocation_list(api->store, name, (int)limit, &arr, &err) < 0)
        return wisp_api_send_error(req, &err);
    wisp__api_json(req, 200, json_pack("{s:o}", "invocations", arr), NULL);
}

/* ---- routing ---- */

static bool is(const wisp_http_req_t *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

static void route(wisp_api_t *api, wisp_http_req_t *req, char **seg, int n)
{
    if (n >= 1 && strcmp(seg[0], "functions") == 0) {
        if (n == 1) {
            wisp__api_count(api, "v1", "list_functions");
            if (!is(req, "GET"))
                return wisp__api_method_not_allowed(req, "GET");
            return list_functions(api, req);
        }
        const char *name = seg[1];
        if (!wisp_fn_name_valid(name)) {
            wisp__api_count(api, "v1", "invalid_name");
            return wisp__api_fail(req, WISP_EINVALID,
                                  "invalid function name: it must match [A-Za-z0-9_-]{1,64}");
        }
        if (n == 2) {
            if (is(req, "GET")) {
                wisp__api_count(api, "v1", "get_function");
                return get_function(api, req, name);
            }
            if (is(req, "PUT")) {
                wisp__api_count(api, "v1", "put_function");
                return put_function(api, req, name);
            }
            if (is(req, "DELETE")) {
                wisp__api_count(api, "v1", "delete_function");
                return delete_function(api, req, name);
            }
            return wisp__api_method_not_allowed(req, "GET, PUT, DELETE");
        }
        static const struct {
            const char *what, *method, *op;
            void (*fn)(wisp_api_t *, wisp_http_req_t *, const char *);
        } sub[] = {
            {"code", "PUT", "put_code", put_code},
            {"invoke", "POST", "invoke", invoke},
            {"logs", "GET", "logs", logs},
            {"invocations", "GET", "list_invocations", list_invocations},
        };
        for (size_t i = 0; n == 3 && i < WISP_ARRAY_LEN(sub); i++) {
            if (strcmp(seg[2], sub[i].what) != 0)
                continue;
            wisp__api_count(api, "v1", sub[i].op);
            if (!is(req, sub[i].method))
                return wisp__api_method_not_allowed(req, sub[i].method);
            return sub[i].fn(api, req, name);
        }
    } else if (n == 2 && strcmp(seg[0], "invocations") == 0) {
        wisp__api_count(api, "v1", "get_invocation");
        if (!is(req, "GET"))
            return wisp__api_method_not_allowed(req, "GET");
        return get_invocation(api, req, seg[1]);
    }
    wisp__api_count(api, "v1", "unknown");
    wisp__api_fail(req, WISP_ENOTFOUND, "no such endpoint: %s %.200s", req->method, req->path);
}

void wisp__api_v1(wisp_api_t *api, wisp_http_req_t *req)
{
    char *seg[4] = {0};
    int n = wisp__api_segments(req->path + 3, seg, 4);
    if (n < 0) {
        wisp__api_count(api, "v1", "unknown");
        return wisp__api_fail(req, WISP_ENOTFOUND, "no such endpoint: %s %.200s", req->method,
                              req->path);
    }
    route(api, req, seg, n);
    wisp__api_segments_free(seg, n);
}
