/*
 * client.c - the CLI's HTTP client of the admin API, on the libcurl easy
 * API: one request at a time with the bearer token, a connect timeout, a cap
 * on the response body, the X-Wisp-* headers picked out, line-by-line
 * streaming for followed logs, and ^C ending a transfer cleanly.
 */
#include <curl/curl.h>
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "core/util.h"

#define CONNECT_TIMEOUT_S 10
#define BODY_MAX_DEFAULT (64u * 1024 * 1024)
#define LINE_MAX_BYTES (1024u * 1024) /* one streamed line */
#define HEADER_VALUE_MAX 4096

static volatile sig_atomic_t got_sigint;

static void sigint_handler(int sig)
{
    got_sigint = 1;
}

bool wisp_cli_interrupted(void)
{
    return got_sigint != 0;
}

struct transfer {
    CURL *curl;
    const wisp_cli_req_t *req;
    wisp_cli_resp_t *resp;
    wisp_buf_t line; /* a streamed line not yet complete */
    bool too_large;  /* the body or a line passed its cap */
    bool stopped;    /* on_line asked to stop */
};

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return NULL;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if ((size_t)(end - v) > HEADER_VALUE_MAX)
        return NULL;
    return xstrndup(v, (size_t)(end - v));
}

static void set_header(char **slot, char *value)
{
    if (value) {
        free(*slot);
        *slot = value;
    }
}

static void reset_headers(wisp_cli_resp_t *r)
{
    free(r->request_id);
    free(r->function_error);
    free(r->log_result);
    r->request_id = r->function_error = r->log_result = NULL;
    r->cold_start = -1;
    r->duration_ms = -1;
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *data)
{
    struct transfer *t = data;
    size_t n = size * nitems;
    wisp_cli_resp_t *r = t->resp;
    /* A new status line (after a 100 Continue, say): forget earlier headers. */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        reset_headers(r);
        return n;
    }
    set_header(&r->request_id, header_value(line, n, "X-Wisp-Request-Id"));
    set_header(&r->function_error, header_value(line, n, "X-Wisp-Function-Error"));
    set_header(&r->log_result, header_value(line, n, "X-Wisp-Log-Result"));
    cleanup_free char *cold = header_value(line, n, "X-Wisp-Cold-Start");
    if (cold)
        r->cold_start = strcmp(cold, "1") == 0 || wisp_streq_ci(cold, "true");
    cleanup_free char *dur = header_value(line, n, "X-Wisp-Duration-Ms");
    if (dur) {
        char *end;
        double d = strtod(dur, &end);
        if (end != dur && *end == '\0' && d >= 0)
            r->duration_ms = d;
    }
    return n;
}

static bool streaming(struct transfer *t)
{
    if (t->req->on_line == NULL)
        return false;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
}

static int emit_lines(struct transfer *t)
{
    wisp_buf_t *b = &t->line;
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] != '\n')
            continue;
        size_t n = i - start;
        if (n > 0 && b->data[start + n - 1] == '\r')
            n--;
        char saved = b->data[start + n];
        b->data[start + n] = '\0';
        int stop = t->req->on_line(t->req->data, b->data + start, n);
        b->data[start + n] = saved;
        start = i + 1;
        if (stop) {
            t->stopped = true;
            return -1;
        }
    }
    wisp_buf_consume(b, start);
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *data)
{
    struct transfer *t = data;
    size_t n = size * nmemb;
    if (streaming(t)) {
        if (wisp_buf_append(&t->line, ptr, n, NULL) < 0) {
            t->too_large = true;
            return 0;
        }
        return emit_lines(t) < 0 ? 0 : n;
    }
    if (wisp_buf_append(&t->resp->body, ptr, n, NULL) < 0) {
        t->too_large = true;
        return 0;
    }
    return n;
}

static int progress_cb(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    return got_sigint ? 1 : 0;
}

static void resp_init(wisp_cli_resp_t *resp, size_t max)
{
    memset(resp, 0, sizeof *resp);
    wisp_buf_init(&resp->body, max);
    resp->cold_start = -1;
    resp->duration_ms = -1;
}

void wisp_cli_resp_free(wisp_cli_resp_t *resp)
{
    wisp_buf_free(&resp->body);
    reset_headers(resp);
}

static struct curl_slist *add_header(struct curl_slist *list, const char *h)
{
    struct curl_slist *l = curl_slist_append(list, h);
    if (l == NULL)
        abort();
    return l;
}

static void free_headers(struct curl_slist *list, char *auth)
{
    curl_slist_free_all(list);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
}

int wisp_cli_http(const wisp_cli_t *cli, const wisp_cli_req_t *req, wisp_cli_resp_t *resp,
                  wisp_err_t *err)
{
    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return wisp_err_set(err, WISP_EINTERNAL, "cannot initialise libcurl");
        curl_ready = true;
    }
    size_t max = req->max_body ? req->max_body : BODY_MAX_DEFAULT;
    resp_init(resp, max);
    struct transfer t = {.req = req, .resp = resp, .line = WISP_BUF_INIT(LINE_MAX_BYTES)};
    t.curl = curl_easy_init();
    if (t.curl == NULL)
        return wisp_err_set(err, WISP_EINTERNAL, "cannot initialise libcurl");

    cleanup_free char *url = xasprintf("%s%s", cli->admin_url, req->path);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    if (cli->token) {
        auth = xasprintf("Authorization: Bearer %s", cli->token);
        headers = add_header(headers, auth);
    }
    /* The daemon answers at once; no need to wait for a 100 Continue. */
    headers = add_header(headers, "Expect:");
    cleanup_free char *ctype = NULL;
    if (req->content_type) {
        ctype = xasprintf("Content-Type: %s", req->content_type);
        headers = add_header(headers, ctype);
    }
    if (req->extra_header)
        headers = add_header(headers, req->extra_header);

    CURL *c = t.curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "wisp-cli/" WISP_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");

    /* ^C ends the transfer through progress_cb instead of killing the process. */
    struct sigaction sa = {.sa_handler = sigint_handler}, old;
    sigemptyset(&sa.sa_mask);
    got_sigint = 0;
    sigaction(SIGINT, &sa, &old);
    CURLcode rc = curl_easy_perform(c);
    sigaction(SIGINT, &old, NULL);

    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    /* A last streamed line without a newline. */
    if (rc == CURLE_OK && t.line.len > 0 && streaming(&t)) {
        wisp_buf_add(&t.line, "\n", 1);
        emit_lines(&t);
    }
    curl_easy_cleanup(c);
    free_headers(headers, auth);
    wisp_buf_free(&t.line);

    if (rc == CURLE_OK || t.stopped)
        return 0;
    if (got_sigint) {
        wisp_err_set(err, WISP_EUNAVAILABLE, "interrupted");
        err->sys_errno = EINTR;
        return -1;
    }
    if (t.too_large)
        return wisp_err_set(err, WISP_ELIMIT, "the response from %s is larger than %zu bytes",
                            req->path, max);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        (rc == CURLE_OPERATION_TIMEDOUT && resp->status == 0))
        return wisp_err_set(err, WISP_EUNAVAILABLE,
                            "cannot reach the wisp daemon at %s (%s); is 'wisp serve' running? "
                            "(set --admin or $WISP_ADMIN)",
                            cli->admin_url, why);
    return wisp_err_set(err, WISP_EUNAVAILABLE, "%s %s%s: %s", req->method, cli->admin_url,
                        req->path, why);
}

static wisp_errcode_t code_for_status(long status)
{
    switch (status) {
    case 400: return WISP_EINVALID;
    case 401:
    case 403: return WISP_EAUTH;
    case 404: return WISP_ENOTFOUND;
    case 409: return WISP_ECONFLICT;
    case 413: return WISP_ELIMIT;
    case 415: return WISP_EUNSUPPORTED;
    case 429: return WISP_ETHROTTLED;
    case 503: return WISP_EUNAVAILABLE;
    default: return WISP_EINTERNAL;
    }
}

int wisp_cli_api_error(const wisp_cli_t *cli, const wisp_cli_resp_t *resp, wisp_err_t *err)
{
    wisp_errcode_t code = code_for_status(resp->status);
    cleanup_json json_t *j = NULL;
    if (resp->body.len)
        j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(j, "message"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(j, "errorMessage"));
    char text[320];
    if (msg)
        snprintf(text, sizeof text, "%s", msg);
    else if (resp->body.len)
        snprintf(text, sizeof text, "HTTP %ld: %.200s", resp->status, resp->body.data);
    else
        snprintf(text, sizeof text, "HTTP %ld", resp->status);
    if (resp->status == 401 && cli->token == NULL)
        return wisp_err_set(err, code, "%s (%s)", text,
                            cli->token_hint ? cli->token_hint
                                            : "no token: set $WISP_TOKEN or pass --token");
    if (resp->status == 401)
        return wisp_err_set(err, code, "%s (the token was refused)", text);
    return wisp_err_set(err, code, "%s", text);
}

int wisp_cli_call_json(const wisp_cli_t *cli, const char *method, const char *path, json_t *body,
                       json_t **out, long *status, wisp_err_t *err)
{
    cleanup_free char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            abort();
    }
    wisp_cli_req_t req = {
        .method = method,
        .path = path,
        .content_type = body ? "application/json" : NULL,
        .body = text,
        .len = text ? strlen(text) : 0,
        .timeout_s = 300,
    };
    wisp_cli_resp_t resp;
    int rc = wisp_cli_http(cli, &req, &resp, err);
    if (rc == 0 && status)
        *status = resp.status;
    if (rc == 0 && (resp.status < 200 || resp.status > 299))
        rc = wisp_cli_api_error(cli, &resp, err);
    if (rc == 0 && out) {
        *out = NULL;
        if (resp.body.len > 0) {
            json_error_t jerr;
            *out = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
            if (*out == NULL)
                rc = wisp_err_set(err, WISP_EINTERNAL, "%s %s: the answer is not JSON (%s)", method,
                                  path, jerr.text);
        }
    }
    wisp_cli_resp_free(&resp);
    return rc;
}
