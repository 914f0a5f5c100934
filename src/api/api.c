/*
 * api.c - the admin listener's front door: dispatch between /healthz,
 * /metrics, the native /v1 API (bearer token, checked before routing) and the
 * Lambda-compatible API; the one place where error codes become HTTP statuses
 * and AWS error names; and the small helpers both APIs share.
 */
#include "api/internal.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#ifndef WISP_VERSION
#define WISP_VERSION "0.0.0"
#endif
#ifndef WISP_GIT
#define WISP_GIT "unknown"
#endif

static void sha256(const void *data, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1)
        abort(); /* only on allocation failure */
}

wisp_api_t *wisp_api_new(const wisp_api_config_t *cfg)
{
    wisp_api_t *api = xcalloc(1, sizeof *api);
    api->registry = cfg->registry;
    api->store = cfg->store;
    api->invoker = cfg->invoker;
    if (cfg->admin_token != NULL && cfg->admin_token[0] != '\0') {
        sha256(cfg->admin_token, strlen(cfg->admin_token), api->token_hash);
        api->has_token = true;
    }
    if (cfg->aws_access_key != NULL && cfg->aws_access_key[0] != '\0' &&
        cfg->aws_secret_key != NULL && cfg->aws_secret_key[0] != '\0') {
        api->aws_access_key = xstrdup(cfg->aws_access_key);
        api->aws_secret_key = xstrdup(cfg->aws_secret_key);
    }
    api->region = xstrdup(cfg->region && cfg->region[0] ? cfg->region : "us-east-1");
    api->account_id =
        xstrdup(cfg->account_id && cfg->account_id[0] ? cfg->account_id : "000000000000");
    api->max_concurrency = cfg->max_concurrency ? cfg->max_concurrency : 1000;
    api->requests = wisp_metrics_counter("wisp_api_requests_total",
                                         "Admin API requests by API (v1, lambda) and operation.");
    wisp_metric_t *info =
        wisp_metrics_gauge("wisp_build_info", "Version and git revision of this wisp build.");
    char v[128], g[128], labels[300];
    wisp_metrics_label_escape(WISP_VERSION, v, sizeof v);
    wisp_metrics_label_escape(WISP_GIT, g, sizeof g);
    snprintf(labels, sizeof labels, "version=\"%s\",git=\"%s\"", v, g);
    wisp_metrics_set(info, labels, 1);
    return api;
}

void wisp_api_free(wisp_api_t *api)
{
    if (api == NULL)
        return;
    wisp__api_v1_close_follows(api);
    if (api->aws_secret_key != NULL)
        OPENSSL_cleanse(api->aws_secret_key, strlen(api->aws_secret_key));
    free(api->aws_access_key);
    free(api->aws_secret_key);
    free(api->region);
    free(api->account_id);
    OPENSSL_cleanse(api->token_hash, sizeof api->token_hash);
    free(api);
}

/* ---- responses ---- */

void wisp__api_json(wisp_http_req_t *req, int status, json_t *body, const char *headers)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (text == NULL)
        abort(); /* jansson fails only on allocation failure */
    wisp_http_respond(req, status, "application/json", headers, text, strlen(text));
    free(text);
}

static void native_error(wisp_http_req_t *req, int status, const char *code, const char *msg,
                         const char *headers)
{
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    wisp__api_json(req, status, body, headers);
}

void wisp_api_send_error(wisp_http_req_t *req, const wisp_err_t *err)
{
    wisp_errcode_t code = err->code == WISP_OK ? WISP_EINTERNAL : err->code;
    const char *headers = NULL;
    if (code == WISP_EAUTH)
        headers = "WWW-Authenticate: Bearer realm=\"wisp\"\r\n";
    else if (code == WISP_ETHROTTLED)
        headers = "Retry-After: 1\r\n";
    native_error(req, wisp_errcode_http_status(code), wisp_errcode_name(code),
                 err->msg[0] ? err->msg : wisp_http_status_text(wisp_errcode_http_status(code)),
                 headers);
}

void wisp__api_fail(wisp_http_req_t *req, wisp_errcode_t code, const char *fmt, ...)
{
    wisp_err_t err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    wisp_api_send_error(req, &err);
}

void wisp__api_method_not_allowed(wisp_http_req_t *req, const char *allow)
{
    char headers[128], msg[160];
    snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
    snprintf(msg, sizeof msg, "method %.16s is not allowed here (allowed: %s)", req->method, allow);
    native_error(req, 405, "method_not_allowed", msg, headers);
}

/* The one table from error codes to Lambda's error names; the statuses are
 * those of wisp_errcode_http_status except where AWS differs. */
const char *wisp__lambda_error_name(wisp_errcode_t code, int *status)
{
    *status = wisp_errcode_http_status(code);
    switch (code) {
    case WISP_EINVALID: return "InvalidParameterValueException";
    case WISP_EAUTH: *status = 403; return "AccessDeniedException";
    case WISP_ENOTFOUND: return "ResourceNotFoundException";
    case WISP_ECONFLICT: return "ResourceConflictException";
    case WISP_ELIMIT: return "RequestTooLargeException";
    case WISP_EUNSUPPORTED: return "UnsupportedMediaTypeException";
    case WISP_ETHROTTLED: return "TooManyRequestsException";
    case WISP_EUNAVAILABLE: return "ServiceException";
    case WISP_OK:
    case WISP_EINTERNAL: *status = 500; return "ServiceException";
    }
    *status = 500;
    return "ServiceException";
}

void wisp__lambda_fail_ex(wisp_http_req_t *req, wisp_errcode_t code, int status, const char *type,
                          const char *extra_headers, json_t *extra, const char *msg)
{
    int st;
    const char *name = wisp__lambda_error_name(code, &st);
    if (type == NULL)
        type = name;
    if (status == 0)
        status = st;
    char rid[37];
    wisp_uuid4(rid);
    cleanup_free char *headers = xasprintf("X-Amzn-ErrorType: %s\r\nX-Amzn-RequestId: %s\r\n%s",
                                           type, rid, extra_headers ? extra_headers : "");
    json_t *body = json_pack("{s:s,s:s,s:s}", "Type", status >= 500 ? "Service" : "User", "message",
                             msg, "Message", msg);
    if (extra != NULL) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    wisp__api_json(req, status, body, headers);
}

void wisp__lambda_fail(wisp_http_req_t *req, wisp_errcode_t code, const char *type, const char *fmt,
                       ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wisp__lambda_fail_ex(req, code, 0, type, NULL, NULL, msg);
}

void wisp__lambda_fail_err(wisp_http_req_t *req, const wisp_err_t *err)
{
    wisp_errcode_t code = err->code == WISP_OK ? WISP_EINTERNAL : err->code;
    wisp__lambda_fail_ex(req, code, 0, NULL, NULL, NULL, err->msg);
}

void wisp__api_count(wisp_api_t *api, const char *which, const char *op)
{
    char labels[128];
    snprintf(labels, sizeof labels, "api=\"%s\",op=\"%s\"", which, op);
    wisp_metrics_add(api->requests, labels, 1);
}

/* ---- shared helpers ---- */

int wisp__api_segments(const char *path, char **seg, int max)
{
    int n = 0;
    const char *p = path[0] == '/' ? path + 1 : path;
    while (*p) {
        const char *end = strchrnul(p, '/');
        if (*end == '\0' && end == p)
            break;
        if (n == max) {
            wisp__api_segments_free(seg, n);
            return -1;
        }
        seg[n] = wisp_http_pct_decode(p, (size_t)(end - p), false);
        if (seg[n] == NULL) {
            wisp__api_segments_free(seg, n);
            return -1;
        }
        n++;
        if (*end == '\0' || end[1] == '\0')
            break; /* the end, or one trailing slash */
        p = end + 1;
    }
    return n;
}

void wisp__api_segments_free(char **seg, int n)
{
    for (int i = 0; i < n; i++) {
        free(seg[i]);
        seg[i] = NULL;
    }
}

int wisp__api_query_int(const wisp_http_req_t *req, const char *name, int64_t min, int64_t max,
                        int64_t def, int64_t *out, wisp_err_t *err)
{
    cleanup_free char *v = wisp_http_query_param(req->query, name);
    if (v == NULL || v[0] == '\0') {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || !isdigit((unsigned char)v[v[0] == '-']) || x < min || x > max)
        return wisp_err_set(err, WISP_EINVALID, "%s must be an integer between %lld and %lld", name,
                            (long long)min, (long long)max);
    *out = x;
    return 0;
}

int wisp__b64_decode(const char *s, size_t n, size_t max, char **out, size_t *out_len,
                     wisp_err_t *err)
{
    /* n itself is bounded by the caller's body limit; the output is checked below. */
    if (n > INT32_MAX)
        return wisp_err_set(err, WISP_ELIMIT, "the base64 text is too large");
    unsigned char *buf = xmalloc(n / 4 * 3 + 80);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (ctx == NULL)
        abort();
    EVP_DecodeInit(ctx);
    int len = 0, fin = 0;
    int r = EVP_DecodeUpdate(ctx, buf, &len, (const unsigned char *)s, (int)n);
    if (r >= 0 && EVP_DecodeFinal(ctx, buf + len, &fin) == 1)
        len += fin;
    else
        r = -1;
    EVP_ENCODE_CTX_free(ctx);
    if (r < 0) {
        free(buf);
        return wisp_err_set(err, WISP_EINVALID, "not valid base64");
    }
    if ((size_t)len > max) {
        free(buf);
        return wisp_err_set(err, WISP_ELIMIT, "the decoded data is larger than %zu bytes", max);
    }
    *out = (char *)buf;
    *out_len = (size_t)len;
    return 0;
}

char *wisp__b64_encode(const void *data, size_t n)
{
    char *out = xmalloc((n + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    return out;
}

void wisp__api_header_safe(const char *s, char *out, size_t max)
{
    size_t o = 0;
    for (; s && *s && o + 1 < max; s++)
        if ((unsigned char)*s >= 0x20 && *s != 0x7f)
            out[o++] = *s;
    out[o] = '\0';
}

/* ---- dispatch ---- */

static void healthz(wisp_http_req_t *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return wisp__api_method_not_allowed(req, "GET");
    wisp__api_json(
        req, 200,
        json_pack("{s:s,s:s,s:s}", "status", "ok", "version", WISP_VERSION, "git", WISP_GIT), NULL);
}

static void metrics(wisp_http_req_t *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return wisp__api_method_not_allowed(req, "GET");
    wisp_buf_t out = WISP_BUF_INIT(0);
    wisp_metrics_render(&out);
    wisp_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                      out.data ? out.data : "", out.len);
    wisp_buf_free(&out);
}

/* Constant-time check of "Authorization: Bearer <token>": both sides are
 * hashed first, so neither the token nor its length leaks through timing. */
static bool bearer_ok(const wisp_api_t *api, const wisp_http_req_t *req)
{
    const char *h = wisp_http_req_header(req, "Authorization");
    if (!api->has_token || h == NULL || strncasecmp(h, "Bearer", 6) != 0 ||
        (h[6] != ' ' && h[6] != '\t'))
        return false;
    const char *tok = h + 7;
    while (*tok == ' ' || *tok == '\t')
        tok++;
    unsigned char got[32];
    sha256(tok, strlen(tok), got);
    return CRYPTO_memcmp(got, api->token_hash, sizeof got) == 0;
}

void wisp_api_admin_handler(wisp_http_req_t *req, void *data)
{
    wisp_api_t *api = data;
    if (strcmp(req->path, "/healthz") == 0)
        return healthz(req);
    if (strcmp(req->path, "/metrics") == 0)
        return metrics(req);
    if (wisp__api_is_lambda(req))
        return wisp__api_lambda(api, req);
    if (strcmp(req->path, "/v1") == 0 || strncmp(req->path, "/v1/", 4) == 0) {
        if (!bearer_ok(api, req)) {
            wisp__api_count(api, "v1", "unauthorized");
            return wisp__api_fail(req, WISP_EAUTH, "missing or invalid bearer token");
        }
        return wisp__api_v1(api, req);
    }
    wisp__api_fail(req, WISP_ENOTFOUND, "no such endpoint: %.200s", req->path);
}
