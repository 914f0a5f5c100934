/*
 * internal.h - what api.c, v1.c and lambda.c share: the API object, response
 * helpers, and the one table that maps error codes to HTTP statuses and AWS
 * error names. Nothing outside src/api includes it (tests and fuzz targets
 * do).
 *
 * All calls on the event-loop thread.
 */
#ifndef WISP_API_INTERNAL_H
#define WISP_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "core/util.h"
#include "obs/metrics.h"

/* Per-route limits on request bodies (the HTTP layer's own limit, set by
 * whoever creates the admin listener, should be WISP_API_MAX_BODY). */
#define WISP_API_CONFIG_MAX (256u * 1024) /* a JSON configuration or small control body */
/* A Lambda CreateFunction/UpdateFunctionCode body: base64 of a maximal zip plus the rest. */
#define WISP_API_LAMBDA_CODE_BODY_MAX ((WISP_ZIP_MAX / 3 + 1) * 4 + WISP_API_CONFIG_MAX)

struct wisp__follow;

/* The admin API. Copies of the configuration strings; borrowed services. */
struct wisp_api {
    wisp_registry_t *registry;
    wisp_store_t *store;
    wisp_invoker_t *invoker;      /* NULL: invocations answer 503 */
    unsigned char token_hash[32]; /* SHA-256 of the admin token */
    bool has_token;               /* false: /v1 refuses everyone */
    char *aws_access_key;         /* NULL: the Lambda API refuses everyone */
    char *aws_secret_key;
    char *region;
    char *account_id;
    unsigned max_concurrency;
    struct wisp__follow *follows; /* open `logs?follow=1` streams, to end at free */
    wisp_metric_t *requests;      /* wisp_api_requests_total{api,op} */
};

/* ---- responses (api.c) ---- */

/* Answer with a JSON body, which the call takes (steals); headers as for wisp_http_respond. */
void wisp__api_json(wisp_http_req_t *req, int status, json_t *body, const char *headers);
/* Native error {"error":{"code","message"}} for code. */
void wisp__api_fail(wisp_http_req_t *req, wisp_errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 405 with an Allow header listing allow ("GET, PUT"). */
void wisp__api_method_not_allowed(wisp_http_req_t *req, const char *allow);

/* The Lambda error name and HTTP status for an error code. */
const char *wisp__lambda_error_name(wisp_errcode_t code, int *status);
/* Lambda error: header X-Amzn-ErrorType, body {"Type","message","Message"}.
 * type NULL means the name for code; status 0 means the status for code.
 * extra_headers may be NULL; extra (may be NULL) is merged into the body and taken. */
void wisp__lambda_fail_ex(wisp_http_req_t *req, wisp_errcode_t code, int status, const char *type,
                          const char *extra_headers, json_t *extra, const char *msg);
void wisp__lambda_fail(wisp_http_req_t *req, wisp_errcode_t code, const char *type, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
/* The same from a wisp_err_t. */
void wisp__lambda_fail_err(wisp_http_req_t *req, const wisp_err_t *err);

/* Count a request in wisp_api_requests_total. api is "v1" or "lambda"; op static. */
void wisp__api_count(wisp_api_t *api, const char *which, const char *op);

/* ---- shared helpers (api.c) ---- */

/* Split a raw path (after a prefix) into at most max percent-decoded segments
 * (one trailing slash is ignored). Returns the count, or -1 if there are more
 * or a segment is malformed. Free with wisp__api_segments_free. */
int wisp__api_segments(const char *path, char **seg, int max);
void wisp__api_segments_free(char **seg, int n);
/* Parse a query parameter as an integer in [min, max]; def if absent.
 * Returns -1 (err WISP_EINVALID naming the parameter) if malformed. */
int wisp__api_query_int(const wisp_http_req_t *req, const char *name, int64_t min, int64_t max,
                        int64_t def, int64_t *out, wisp_err_t *err) WISP_WUR;
/* Base64 (standard alphabet, padding, whitespace ignored) to bytes, refusing
 * more than max decoded bytes (WISP_ELIMIT) or bad input (WISP_EINVALID). */
int wisp__b64_decode(const char *s, size_t n, size_t max, char **out, size_t *out_len,
                     wisp_err_t *err) WISP_WUR;
/* Bytes to base64 (no newlines); caller frees. */
char *wisp__b64_encode(const void *data, size_t n);
/* Copy s into a header value: control characters dropped, at most max bytes. */
void wisp__api_header_safe(const char *s, char *out, size_t max);

/* ---- the two APIs ---- */

/* Native /v1 (after the bearer check); path is the raw path. */
void wisp__api_v1(wisp_api_t *api, wisp_http_req_t *req);
/* End every open log stream (at free). */
void wisp__api_v1_close_follows(wisp_api_t *api);
/* True if the request is for the Lambda API (SigV4 header or a Lambda path). */
bool wisp__api_is_lambda(const wisp_http_req_t *req);
/* The Lambda REST API (verifies SigV4 first). */
void wisp__api_lambda(wisp_api_t *api, wisp_http_req_t *req);

/* Map a Lambda CreateFunction (creating) or UpdateFunctionConfiguration body
 * onto a native configuration object (*native, new reference). For a create,
 * also the function name from FunctionName (name, WISP_FN_NAME_MAX + 1 bytes)
 * and the decoded Code.ZipFile (*zip, *zip_len; caller frees). Values are
 * checked for type and Lambda's ranges here; the registry validates again.
 * Returns -1 with err (WISP_EINVALID / WISP_ELIMIT / WISP_EUNSUPPORTED) on
 * refusal; *type then names the Lambda error (static string). */
int wisp__lambda_map_config(json_t *body, bool creating, json_t **native, char *name, char **zip,
                            size_t *zip_len, const char **type, wisp_err_t *err) WISP_WUR;

/* Parse a Lambda function name in any of its forms (name, name:qualifier,
 * account:function:name[:qualifier], full ARN) into name (WISP_FN_NAME_MAX+1
 * bytes) and qualifier (129 bytes, "" if none). WISP_EINVALID if malformed. */
int wisp__lambda_parse_name(const char *s, char *name, char *qualifier, wisp_err_t *err) WISP_WUR;

/* The Lambda FunctionConfiguration view of fn (new reference). */
json_t *wisp__lambda_config_json(const wisp_fn_t *fn, const char *region, const char *account);

#endif
