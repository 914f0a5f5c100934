/*
 * test_api.c - the admin API end to end: a real HTTP server on 127.0.0.1:0
 * serving the API over a real registry and SQLite store in a temporary
 * folder, on an event loop in a second thread, driven by libcurl with
 * hand-signed SigV4 requests and, where they are installed, by the real AWS
 * CLI (/usr/bin/aws) and boto3 (/usr/bin/python3). There is no invoker here
 * (that needs sandboxes): invocations that pass validation answer 503.
 */
#define TAP_TIMEOUT 180

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "api/api.h"
#include "api/internal.h"
#include "api/sigv4.h"
#include "core/util.h"
#include "tap.h"

#define TOKEN "test-token-0123456789"
#define AK "AKIAWISPTEST00000001"
#define SK "wispTestSecret/Key+0123456789abcdefghijAB"
#define ACCOUNT "123456789012"

/* The server side, owned by the loop thread once started. */
static struct {
    char dir[64];
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    wisp_store_t *store;
    wisp_registry_t *reg;
    wisp_api_t *api;
    wisp_http_server_t *srv;
    int port;
} fx;

static void *loop_main(void *arg)
{
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    return NULL;
}

static void server_done(void *data)
{
    wisp_api_free(fx.api);
    wisp_registry_free(fx.reg);
    wisp_store_close(fx.store);
    uv_close((uv_handle_t *)&fx.stop, NULL);
}

static void stop_cb(uv_async_t *a)
{
    wisp_http_server_shutdown(fx.srv, 0, server_done, NULL);
}

/* Start the server; prepare (may be NULL) runs on the store before the loop does. */
static void start(void (*prepare)(wisp_store_t *st))
{
    wisp_err_t err;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/wisp-test-api-XXXXXX");
    CHECK(mkdtemp(fx.dir) != NULL);
    CHECK(uv_loop_init(&fx.loop) == 0);
    char db[128];
    snprintf(db, sizeof db, "%s/wisp.db", fx.dir);
    fx.store = wisp_store_open(db, &err);
    if (fx.store == NULL)
        fprintf(stderr, "# store: %s\n", err.msg);
    CHECK(fx.store != NULL);
    fx.reg = wisp_registry_new(&fx.loop, fx.store, fx.dir, &err);
    if (fx.reg == NULL)
        fprintf(stderr, "# registry: %s\n", err.msg);
    CHECK(fx.reg != NULL);
    if (prepare != NULL)
        prepare(fx.store);
    wisp_api_config_t cfg = {
        .registry = fx.reg,
        .store = fx.store,
        .admin_token = TOKEN,
        .aws_access_key = AK,
        .aws_secret_key = SK,
        .account_id = ACCOUNT,
        .max_concurrency = 100,
    };
    fx.api = wisp_api_new(&cfg);
    wisp_http_limits_t lim = {.max_body_bytes = WISP_API_MAX_BODY};
    fx.srv = wisp_http_server_new(&fx.loop, "admin", &lim, wisp_api_admin_handler, fx.api);
    wisp_http_listener_t *l = NULL;
    CHECK(wisp_http_server_listen(fx.srv, "127.0.0.1:0", NULL, &l, &err) == 0);
    fx.port = wisp_http_listener_port(l);
    CHECK(fx.port > 0);
    CHECK(uv_async_init(&fx.loop, &fx.stop, stop_cb) == 0);
    CHECK(pthread_create(&fx.thread, NULL, loop_main, NULL) == 0);
}

static void stop(void)
{
    uv_async_send(&fx.stop);
    pthread_join(fx.thread, NULL);
    uv_loop_close(&fx.loop);
    wisp_err_t err;
    CHECK(wisp_rm_rf(fx.dir, &err) == 0);
}

/* ---- the client ---- */

struct resp {
    long status;
    wisp_buf_t body;
    wisp_buf_t headers;
    json_t *json; /* the body parsed, if it is JSON */
};

static size_t body_cb(char *p, size_t size, size_t n, void *data)
{
    wisp_buf_add(&((struct resp *)data)->body, p, size * n);
    return size * n;
}

static size_t header_cb(char *p, size_t size, size_t n, void *data)
{
    wisp_buf_add(&((struct resp *)data)->headers, p, size * n);
    return size * n;
}

static void resp_free(struct resp *r)
{
    wisp_buf_free(&r->body);
    wisp_buf_free(&r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* The value of a response header (first match), or NULL; static buffer. */
static const char *rheader(struct resp *r, const char *name)
{
    static char value[4096];
    size_t n = strlen(name);
    for (const char *p = r->headers.data; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
            return value;
        }
        p = eol + 2;
    }
    return NULL;
}

static void request(const char *method, const char *target, struct curl_slist *hdrs,
                    const void *body, size_t len, struct resp *r)
{
    resp_free(r);
    CURL *c = curl_easy_init();
    CHECK(c != NULL);
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fx.port, target);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "# %s %s: %s\n", method, target, curl_easy_strerror(rc));
    CHECK(rc == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (r->body.len > 0)
        r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
}

/* A native API call with the admin token; body is a string or NULL. */
static void v1(const char *method, const char *target, const char *body, struct resp *r)
{
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    request(method, target, h, body, body ? strlen(body) : 0, r);
}

/* A Lambda API call signed (host and x-amz-date) with the test credentials;
 * extra is one more header line ("X-Amz-Invocation-Type: DryRun") or NULL. */
static void lam_with(const char *method, const char *target, const void *body, size_t len,
                     const char *extra, const char *secret, time_t when, struct resp *r)
{
    char path[1024], query[1024], host[64], date[32];
    const char *q = strchr(target, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? q - target : (long)strlen(target)), target);
    snprintf(query, sizeof query, "%s", q ? q + 1 : "");
    snprintf(host, sizeof host, "127.0.0.1:%d", fx.port);
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    wisp_http_header_t hs[] = {{"Host", host}, {"X-Amz-Date", date}};
    wisp_http_req_t req = {.method = method,
                           .path = path,
                           .query = query,
                           .headers = hs,
                           .nheaders = 2,
                           .body = (char *)(body ? body : ""),
                           .body_len = body ? len : 0};
    char authz[512];
    CHECK(wisp__sigv4_sign(&req, "host;x-amz-date", AK, secret, "us-east-1", "lambda", authz,
                           sizeof authz) == 0);
    char line[600];
    struct curl_slist *h = NULL;
    snprintf(line, sizeof line, "Host: %s", host);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Amz-Date: %s", date);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "Authorization: %s", authz);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (extra != NULL)
        h = curl_slist_append(h, extra);
    request(method, target, h, body ? body : "", body ? len : 0, r);
}

static void lam(const char *method, const char *target, const char *body, const char *extra,
                struct resp *r)
{
    lam_with(method, target, body, body ? strlen(body) : 0, extra, SK, time(NULL), r);
}

static const char *jstr(struct resp *r, const char *path)
{
    json_t *v = r->json;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(copy, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_string_value(v);
}

static long long jint(struct resp *r, const char *path)
{
    json_t *v = r->json;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(copy, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    CHECK(json_is_integer(v));
    return json_integer_value(v);
}

/* Check a native error answer. */
static void check_v1_error(struct resp *r, long status, const char *code)
{
    if (r->status != status)
        fprintf(stderr, "# got %ld: %s\n", r->status, r->body.data ? r->body.data : "");
    CHECK_INT(r->status, status);
    CHECK_STR(jstr(r, "error.code"), code);
    CHECK(jstr(r, "error.message") != NULL);
}

/* Check a Lambda error answer. */
static void check_lambda_error(struct resp *r, long status, const char *type)
{
    if (r->status != status)
        fprintf(stderr, "# got %ld: %s\n", r->status, r->body.data ? r->body.data : "");
    CHECK_INT(r->status, status);
    CHECK_STR(rheader(r, "X-Amzn-ErrorType"), type);
    CHECK(jstr(r, "message") != NULL);
    CHECK_STR(jstr(r, "Message"), jstr(r, "message"));
    CHECK_STR(jstr(r, "Type"), status >= 500 ? "Service" : "User");
}

/* A small zip with one file, made with libarchive. */
static char *make_zip(const char *name, const char *content, size_t *len)
{
    size_t cap = 64 * 1024, used = 0;
    char *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    CHECK(archive_write_set_format_zip(a) == ARCHIVE_OK);
    CHECK(archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)strlen(content));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    CHECK(archive_write_header(a, e) == ARCHIVE_OK);
    CHECK(archive_write_data(a, content, strlen(content)) == (la_ssize_t)strlen(content));
    archive_entry_free(e);
    CHECK(archive_write_close(a) == ARCHIVE_OK);
    archive_write_free(a);
    *len = used;
    return buf;
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen;
    CHECK(EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) == 1);
    wisp_hex(md, 32, out);
}

/* ---- front door ---- */

TEST(healthz_and_metrics_without_token)
{
    start(NULL);
    struct resp r = {0};
    request("GET", "/healthz", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "status"), "ok");
    CHECK(jstr(&r, "version") != NULL && jstr(&r, "version")[0] != '\0');
    request("POST", "/healthz", NULL, "", 0, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(rheader(&r, "Allow"), "GET");

    v1("GET", "/v1/functions", NULL, &r);
    CHECK_INT(r.status, 200);
    request("GET", "/metrics", NULL, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(strncmp(rheader(&r, "Content-Type"), "text/plain; version=0.0.4", 25) == 0);
    CHECK(strstr(r.body.data, "wisp_build_info{version=\"") != NULL);
    CHECK(strstr(r.body.data, "wisp_api_requests_total{api=\"v1\",op=\"list_functions\"} 1") !=
          NULL);

    request("GET", "/nope", NULL, NULL, 0, &r);
    check_v1_error(&r, 404, "not_found");
    resp_free(&r);
    stop();
}

TEST(v1_requires_the_bearer_token)
{
    start(NULL);
    struct resp r = {0};
    static const char *const bad[] = {
        NULL,
        "Authorization: Bearer wrong",
        "Authorization: Bearer " TOKEN "x",
        "Authorization: Bearer test-token",
        "Authorization: Basic dGVzdDp0ZXN0",
        "Authorization: " TOKEN,
        "Authorization: Bearer",
    };
    const char *paths[] = {"/v1/functions", "/v1/nope", "/v1", "/v1/functions/x/invoke"};
    for (size_t i = 0; i < WISP_ARRAY_LEN(bad); i++) {
        for (size_t j = 0; j < WISP_ARRAY_LEN(paths); j++) {
            struct curl_slist *h = bad[i] ? curl_slist_append(NULL, bad[i]) : NULL;
            request("GET", paths[j], h, NULL, 0, &r);
            check_v1_error(&r, 401, "unauthorized");
            CHECK(strncmp(rheader(&r, "WWW-Authenticate"), "Bearer", 6) == 0);
            /* Nothing else is revealed. */
            CHECK(strstr(r.body.data, "functions") == NULL);
        }
    }
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: bearer  " TOKEN);
    request("GET", "/v1/functions", h, NULL, 0, &r);
    CHECK_INT(r.status, 200);
    v1("GET", "/v1/nope", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    resp_free(&r);
    stop();
}

/* ---- native API ---- */

TEST(v1_function_lifecycle)
{
    start(NULL);
    struct resp r = {0};
    v1("PUT", "/v1/functions/hello", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", &r);
    CHECK_INT(r.status, 201);
    CHECK_STR(jstr(&r, "name"), "hello");
    CHECK_STR(jstr(&r, "runtime"), "python3");
    v1("PUT", "/v1/functions/hello", "{\"memory_mb\":256}", &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(&r, "memory_mb"), 256);
    CHECK_STR(jstr(&r, "handler"), "app.handler");
    v1("PUT", "/v1/functions/hello", "{\"memory_mb\":", &r);
    check_v1_error(&r, 400, "invalid");
    v1("PUT", "/v1/functions/hello", "[1]", &r);
    check_v1_error(&r, 400, "invalid");
    v1("PUT", "/v1/functions/hello", "{\"memory_mb\":1}", &r);
    check_v1_error(&r, 400, "invalid");
    v1("PUT", "/v1/functions/hello", "{\"no_such_field\":1}", &r);
    check_v1_error(&r, 400, "invalid");
    v1("PUT", "/v1/functions/bad.name", "{\"runtime\":\"provided\"}", &r);
    check_v1_error(&r, 400, "invalid");
    v1("PUT", "/v1/functions/bad%2Fname", "{\"runtime\":\"provided\"}", &r);
    check_v1_error(&r, 400, "invalid");
    v1("POST", "/v1/functions/hello", "{}", &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(rheader(&r, "Allow"), "GET, PUT, DELETE");
    v1("GET", "/v1/functions/hello/code", NULL, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(rheader(&r, "Allow"), "PUT");
    char *big = xmalloc(WISP_API_CONFIG_MAX + 2);
    memset(big, ' ', WISP_API_CONFIG_MAX + 1);
    big[WISP_API_CONFIG_MAX + 1] = '\0';
    v1("PUT", "/v1/functions/hello", big, &r);
    check_v1_error(&r, 413, "too_large");
    free(big);

    size_t zlen;
    cleanup_free char *zip = make_zip("app.py", "def handler(e, c):\n    return e\n", &zlen);
    char hex[65];
    sha256_hex(zip, zlen, hex);
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    h = curl_slist_append(h, "Content-Type: text/plain");
    request("PUT", "/v1/functions/hello/code", h, zip, zlen, &r);
    check_v1_error(&r, 415, "unsupported");
    h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    h = curl_slist_append(h, "Content-Type: application/zip");
    request("PUT", "/v1/functions/hello/code", h, zip, zlen, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "code_sha256"), hex);
    CHECK_INT(jint(&r, "code_size"), zlen);
    h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    request("PUT", "/v1/functions/other/code", h, zip, zlen, &r);
    check_v1_error(&r, 404, "not_found");
    h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    h = curl_slist_append(h, "Content-Type:"); /* none at all is fine too */
    request("PUT", "/v1/functions/hello/code", h, "not a zip", 9, &r);
    check_v1_error(&r, 400, "invalid");

    v1("GET", "/v1/functions/hello", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "code_sha256"), hex);
    for (const char *n = "abc"; *n; n++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/functions/%c", *n);
        v1("PUT", path, "{\"runtime\":\"provided\"}", &r);
        CHECK_INT(r.status, 201);
    }
    v1("GET", "/v1/functions?limit=2", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_array_size(json_object_get(r.json, "functions")), 2);
    CHECK_STR(jstr(&r, "next"), "b");
    v1("GET", "/v1/functions?limit=2&after=b", NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "functions")), 2);
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(r.json, "functions"), 1), "name")),
              "hello");
    CHECK(json_is_null(json_object_get(r.json, "next")));
    v1("GET", "/v1/functions/", NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "functions")), 4);
    v1("GET", "/v1/functions?limit=0", NULL, &r);
    check_v1_error(&r, 400, "invalid");
    v1("GET", "/v1/functions?limit=x", NULL, &r);
    check_v1_error(&r, 400, "invalid");

    v1("DELETE", "/v1/functions/hello", NULL, &r);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.body.len, 0);
    v1("GET", "/v1/functions/hello", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    v1("DELETE", "/v1/functions/hello", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    resp_free(&r);
    stop();
}

TEST(v1_invoke_checks_before_the_invoker)
{
    start(NULL);
    struct resp r = {0};
    v1("PUT", "/v1/functions/hello", "{\"runtime\":\"provided\"}", &r);
    CHECK_INT(r.status, 201);
    v1("POST", "/v1/functions/hello/invoke?async=1", "{}", &r);
    check_v1_error(&r, 400, "invalid");
    CHECK_STR(jstr(&r, "error.message"), "async invocation is not available yet");
    char *big = xmalloc(WISP_PAYLOAD_MAX + 2);
    memset(big, 'a', WISP_PAYLOAD_MAX + 1);
    big[WISP_PAYLOAD_MAX + 1] = '\0';
    v1("POST", "/v1/functions/hello/invoke", big, &r);
    check_v1_error(&r, 413, "too_large");
    free(big);
    v1("POST", "/v1/functions/hello/invoke", "{\"x\":1}", &r);
    check_v1_error(&r, 503, "unavailable");
    v1("GET", "/v1/functions/hello/invoke", NULL, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(rheader(&r, "Allow"), "POST");
    resp_free(&r);
    stop();
}

static void add_logs(wisp_store_t *st)
{
    wisp_log_rec_t recs[] = {
        {"hello", "r1", 1000, "platform", "START RequestId: r1 Version: $LATEST"},
        {"hello", "r1", 1001, "stdout", "hi \"there\""},
        {"hello", "r2", 2000, "stderr", "second"},
        {"other", "r3", 2000, "stdout", "not mine"},
    };
    wisp_err_t err;
    CHECK(wisp_store_log_append(st, recs, WISP_ARRAY_LEN(recs), 1000, &err) == 0);
    json_t *inv = json_pack("{s:s,s:s,s:I,s:s}", "id", "inv-1", "function", "hello", "start_ms",
                            (json_int_t)1000, "outcome", "success");
    CHECK(wisp_store_invocation_put(st, inv, &err) == 0);
    json_decref(inv);
}

TEST(v1_logs_and_invocations)
{
    start(add_logs);
    struct resp r = {0};
    v1("GET", "/v1/functions/hello/logs", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    v1("PUT", "/v1/functions/hello", "{\"runtime\":\"provided\"}", &r);
    CHECK_INT(r.status, 201);
    v1("GET", "/v1/functions/hello/logs", NULL, &r);
    CHECK_INT(r.status, 200);
    json_t *logs = json_object_get(r.json, "logs");
    CHECK_INT(json_array_size(logs), 3);
    json_int_t first = json_integer_value(json_object_get(json_array_get(logs, 0), "id"));
    json_int_t last = json_integer_value(json_object_get(json_array_get(logs, 2), "id"));
    CHECK(last > first);
    CHECK_INT(jint(&r, "next"), last);
    CHECK_STR(json_string_value(json_object_get(json_array_get(logs, 1), "line")), "hi \"there\"");

    char path[256];
    snprintf(path, sizeof path, "/v1/functions/hello/logs?after=%lld", (long long)first);
    v1("GET", path, NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 2);
    v1("GET", "/v1/functions/hello/logs?request_id=r2", NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 1);
    v1("GET", "/v1/functions/hello/logs?since=1500", NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 1);
    v1("GET", "/v1/functions/hello/logs?limit=1", NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 1);
    CHECK_INT(jint(&r, "next"), first);
    snprintf(path, sizeof path, "/v1/functions/hello/logs?after=%lld", (long long)last);
    v1("GET", path, NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 0);
    CHECK_INT(jint(&r, "next"), last);
    v1("GET", "/v1/functions/hello/logs?limit=0", NULL, &r);
    check_v1_error(&r, 400, "invalid");
    v1("GET", "/v1/functions/hello/logs?limit=10001", NULL, &r);
    check_v1_error(&r, 400, "invalid");
    v1("GET", "/v1/functions/hello/logs?since=-1", NULL, &r);
    check_v1_error(&r, 400, "invalid");

    /* Without an invoker a follow sends what is stored and ends. */
    v1("GET", "/v1/functions/hello/logs?follow=1&after=0", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(rheader(&r, "Content-Type"), "application/x-ndjson");
    CHECK_STR(rheader(&r, "Transfer-Encoding"), "chunked");
    int lines = 0;
    for (char *p = r.body.data, *save = NULL, *l = strtok_r(p, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        CHECK(json_is_object(j));
        CHECK(json_is_integer(json_object_get(j, "id")));
        json_decref(j);
        lines++;
    }
    CHECK_INT(lines, 3);

    v1("GET", "/v1/invocations/inv-1", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "function"), "hello");
    v1("GET", "/v1/invocations/nope", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    v1("GET", "/v1/invocations/bad%20id", NULL, &r);
    check_v1_error(&r, 400, "invalid");
    v1("GET", "/v1/functions/hello/invocations", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_array_size(json_object_get(r.json, "invocations")), 1);
    v1("GET", "/v1/functions/nope/invocations", NULL, &r);
    check_v1_error(&r, 404, "not_found");
    resp_free(&r);
    stop();
}

/* ---- Lambda API with hand-signed requests ---- */

TEST(lambda_authentication)
{
    start(NULL);
    struct resp r = {0};
    request("GET", "/2015-03-31/functions/", NULL, NULL, 0, &r);
    check_lambda_error(&r, 403, "MissingAuthenticationTokenException");
    CHECK_STR(jstr(&r, "message"), "Missing Authentication Token");
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    request("GET", "/2015-03-31/functions/", h, NULL, 0, &r);
    check_lambda_error(&r, 403, "IncompleteSignatureException");
    lam_with("GET", "/2015-03-31/functions/", NULL, 0, NULL, SK "x", time(NULL), &r);
    check_lambda_error(&r, 403, "InvalidSignatureException");
    lam_with("GET", "/2015-03-31/functions/", NULL, 0, NULL, SK, time(NULL) - 3600, &r);
    check_lambda_error(&r, 403, "InvalidSignatureException");
    CHECK(strncmp(jstr(&r, "message"), "Signature expired", 17) == 0);
    h = curl_slist_append(NULL,
                          "Authorization: AWS4-HMAC-SHA256 Credential=AKIAOTHER/20260101/us-east-1/"
                          "lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00");
    h = curl_slist_append(h, "X-Amz-Date: 20260101T000000Z");
    request("GET", "/2015-03-31/functions/", h, NULL, 0, &r);
    check_lambda_error(&r, 403, "UnrecognizedClientException");
    CHECK_STR(jstr(&r, "message"), "The security token included in the request is invalid.");
    lam("GET", "/2015-03-31/functions/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(json_is_array(json_object_get(r.json, "Functions")));
    resp_free(&r);
    stop();
}

static char *create_body(const char *name, const char *zip, size_t zlen, const char *extra)
{
    cleanup_free char *b64 = wisp__b64_encode(zip, zlen);
    return xasprintf("{\"FunctionName\":\"%s\",\"Runtime\":\"python3.12\",\"Role\":"
                     "\"arn:aws:iam::123456789012:role/x\",\"Handler\":\"app.handler\","
                     "\"Code\":{\"ZipFile\":\"%s\"}%s}",
                     name, b64, extra ? extra : "");
}

TEST(lambda_function_lifecycle)
{
    start(NULL);
    struct resp r = {0};
    size_t zlen;
    cleanup_free char *zip = make_zip("app.py", "def handler(e, c):\n    return e\n", &zlen);
    unsigned char md[32];
    unsigned int mdlen;
    CHECK(EVP_Digest(zip, zlen, md, &mdlen, EVP_sha256(), NULL) == 1);
    cleanup_free char *sha_b64 = wisp__b64_encode(md, 32);

    cleanup_free char *body =
        create_body("hello", zip, zlen,
                    ",\"MemorySize\":256,\"Timeout\":10,\"Environment\":{\"Variables\":{\"A\":"
                    "\"b c\"}},\"EphemeralStorage\":{\"Size\":1024},\"Description\":\"d\"");
    lam("POST", "/2015-03-31/functions", body, NULL, &r);
    if (r.status != 201)
        fprintf(stderr, "# %s\n", r.body.data);
    CHECK_INT(r.status, 201);
    CHECK_STR(jstr(&r, "FunctionName"), "hello");
    CHECK_STR(jstr(&r, "FunctionArn"), "arn:aws:lambda:us-east-1:" ACCOUNT ":function:hello");
    CHECK_STR(jstr(&r, "Runtime"), "python3.11");
    CHECK_STR(jstr(&r, "Handler"), "app.handler");
    CHECK_STR(jstr(&r, "CodeSha256"), sha_b64);
    CHECK_INT(jint(&r, "CodeSize"), zlen);
    CHECK_INT(jint(&r, "MemorySize"), 256);
    CHECK_INT(jint(&r, "Timeout"), 10);
    CHECK_INT(jint(&r, "EphemeralStorage.Size"), 1024);
    CHECK_STR(jstr(&r, "Environment.Variables.A"), "b c");
    CHECK_STR(jstr(&r, "Version"), "$LATEST");
    CHECK_STR(jstr(&r, "State"), "Active");
    CHECK_STR(jstr(&r, "LastUpdateStatus"), "Successful");
    CHECK_STR(jstr(&r, "PackageType"), "Zip");
    CHECK_STR(jstr(&r, "Description"), "d");
    CHECK_INT(strlen(jstr(&r, "LastModified")), 28);
    CHECK(rheader(&r, "X-Amzn-RequestId") != NULL);
    char revision[64];
    snprintf(revision, sizeof revision, "%s", jstr(&r, "RevisionId"));

    lam("POST", "/2015-03-31/functions", body, NULL, &r);
    check_lambda_error(&r, 409, "ResourceConflictException");

    cleanup_free char *bad_rt = xasprintf("{\"FunctionName\":\"j\",\"Runtime\":\"java17\","
                                          "\"Handler\":\"x\",\"Code\":{\"ZipFile\":\"UEsFBg==\"}}");
    lam("POST", "/2015-03-31/functions", bad_rt, NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("POST", "/2015-03-31/functions",
        "{\"FunctionName\":\"s3\",\"Runtime\":\"python3.11\",\"Handler\":\"a.b\","
        "\"Code\":{\"S3Bucket\":\"b\",\"S3Key\":\"k\"}}",
        NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("POST", "/2015-03-31/functions", "{\"FunctionName\":", NULL, &r);
    check_lambda_error(&r, 400, "InvalidRequestContentException");

    /* Every form of the name reaches the same function. */
    static const char *const forms[] = {
        "/2015-03-31/functions/hello",
        "/2015-03-31/functions/hello%3A%24LATEST",
        "/2015-03-31/functions/" ACCOUNT "%3Afunction%3Ahello",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A" ACCOUNT "%3Afunction%3Ahello",
        "/2015-03-31/functions/hello?Qualifier=%24LATEST",
    };
    for (size_t i = 0; i < WISP_ARRAY_LEN(forms); i++) {
        lam("GET", forms[i], NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_STR(jstr(&r, "Configuration.FunctionName"), "hello");
        CHECK_STR(jstr(&r, "Code.RepositoryType"), "S3");
        CHECK(json_is_object(json_object_get(r.json, "Tags")));
        CHECK(json_object_get(r.json, "Concurrency") == NULL);
    }
    lam("GET", "/2015-03-31/functions/hello%3A1", NULL, NULL, &r);
    check_lambda_error(&r, 404, "ResourceNotFoundException");
    lam("GET", "/2015-03-31/functions/hello:1?Qualifier=2", NULL, NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("GET", "/2015-03-31/functions/a%3Ab%3Ac%3Ad%3Ae", NULL, NULL, &r);
    check_lambda_error(&r, 400, "ValidationException");
    lam("GET", "/2015-03-31/functions/nope", NULL, NULL, &r);
    check_lambda_error(&r, 404, "ResourceNotFoundException");
    CHECK_STR(jstr(&r, "message"),
              "Function not found: arn:aws:lambda:us-east-1:" ACCOUNT ":function:nope");

    lam("GET", "/2015-03-31/functions/hello/configuration", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "FunctionName"), "hello");
    lam("PUT", "/2015-03-31/functions/hello/configuration",
        "{\"MemorySize\":512,\"Environment\":{\"Variables\":{\"X\":\"1\"}}}", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(&r, "MemorySize"), 512);
    CHECK_INT(jint(&r, "Timeout"), 10);
    CHECK_STR(jstr(&r, "Environment.Variables.X"), "1");
    CHECK(jstr(&r, "Environment.Variables.A") == NULL);
    CHECK(strcmp(jstr(&r, "RevisionId"), revision) != 0);
    lam("PUT", "/2015-03-31/functions/hello/configuration", "{\"MemorySize\":99999}", NULL, &r);
    check_lambda_error(&r, 400, "ValidationException");
    lam("PUT", "/2015-03-31/functions/hello/configuration", "{\"Timeout\":\"x\"}", NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    cleanup_free char *stale = xasprintf("{\"Timeout\":5,\"RevisionId\":\"%s\"}", revision);
    lam("PUT", "/2015-03-31/functions/hello/configuration", stale, NULL, &r);
    check_lambda_error(&r, 412, "PreconditionFailedException");
    lam("PUT", "/2015-03-31/functions/nope/configuration", "{\"Timeout\":5}", NULL, &r);
    check_lambda_error(&r, 404, "ResourceNotFoundException");

    size_t z2len;
    cleanup_free char *zip2 = make_zip("app.py", "def handler(e, c):\n    return 2\n", &z2len);
    cleanup_free char *b64 = wisp__b64_encode(zip2, z2len);
    cleanup_free char *code = xasprintf("{\"ZipFile\":\"%s\",\"Publish\":false}", b64);
    lam("PUT", "/2015-03-31/functions/hello/code", code, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(strcmp(jstr(&r, "CodeSha256"), sha_b64) != 0);
    CHECK_INT(jint(&r, "CodeSize"), z2len);
    CHECK_INT(jint(&r, "MemorySize"), 512);
    lam("PUT", "/2015-03-31/functions/hello/code", "{\"ZipFile\":\"!!!\"}", NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("PUT", "/2015-03-31/functions/hello/code", "{\"ZipFile\":\"aGVsbG8=\"}", NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");

    cleanup_free char *body2 = create_body("zeta", zip, zlen, NULL);
    lam("POST", "/2015-03-31/functions", body2, NULL, &r);
    CHECK_INT(r.status, 201);
    lam("GET", "/2015-03-31/functions/?MaxItems=1", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_array_size(json_object_get(r.json, "Functions")), 1);
    CHECK_STR(jstr(&r, "NextMarker"), "hello");
    lam("GET", "/2015-03-31/functions/?MaxItems=1&Marker=hello", NULL, NULL, &r);
    CHECK_STR(json_string_value(json_object_get(
                  json_array_get(json_object_get(r.json, "Functions"), 0), "FunctionName")),
              "zeta");
    CHECK(jstr(&r, "NextMarker") == NULL);
    lam("GET", "/2015-03-31/functions?MaxItems=0", NULL, NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");

    lam("PUT", "/2017-10-31/functions/hello/concurrency", "{\"ReservedConcurrentExecutions\":5}",
        NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(&r, "ReservedConcurrentExecutions"), 5);
    lam("GET", "/2019-09-30/functions/hello/concurrency", NULL, NULL, &r);
    CHECK_INT(jint(&r, "ReservedConcurrentExecutions"), 5);
    lam("GET", "/2015-03-31/functions/hello", NULL, NULL, &r);
    CHECK_INT(jint(&r, "Concurrency.ReservedConcurrentExecutions"), 5);
    lam("GET", "/2016-08-19/account-settings/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(&r, "AccountUsage.FunctionCount"), 2);
    CHECK_INT(jint(&r, "AccountUsage.TotalCodeSize"), zlen + z2len);
    CHECK_INT(jint(&r, "AccountLimit.ConcurrentExecutions"), 100);
    CHECK_INT(jint(&r, "AccountLimit.UnreservedConcurrentExecutions"), 95);
    lam("DELETE", "/2017-10-31/functions/hello/concurrency", NULL, NULL, &r);
    CHECK_INT(r.status, 204);
    lam("GET", "/2019-09-30/functions/hello/concurrency", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_object_size(r.json), 0);

    lam("POST", "/2015-03-31/functions/hello/invocations", "{}", "X-Amz-Invocation-Type: DryRun",
        &r);
    CHECK_INT(r.status, 204);
    lam("POST", "/2015-03-31/functions/nope/invocations", "{}", "X-Amz-Invocation-Type: DryRun",
        &r);
    check_lambda_error(&r, 404, "ResourceNotFoundException");
    lam("POST", "/2015-03-31/functions/hello/invocations", "{}", "X-Amz-Invocation-Type: Event",
        &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("POST", "/2014-11-13/functions/hello/invoke-async/", "{}", NULL, &r);
    check_lambda_error(&r, 400, "InvalidParameterValueException");
    lam("POST", "/2015-03-31/functions/hello/invocations", "{not json", NULL, &r);
    check_lambda_error(&r, 400, "InvalidRequestContentException");
    lam("POST", "/2015-03-31/functions/hello/invocations", "{}", NULL, &r);
    check_lambda_error(&r, 503, "ServiceException");
    char *big = xmalloc(WISP_PAYLOAD_MAX + 1);
    memset(big, ' ', WISP_PAYLOAD_MAX + 1);
    lam_with("POST", "/2015-03-31/functions/hello/invocations", big, WISP_PAYLOAD_MAX + 1, NULL, SK,
             time(NULL), &r);
    check_lambda_error(&r, 413, "RequestTooLargeException");
    free(big);

    lam("GET", "/2015-03-31/functions/hello/versions", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_array_size(json_object_get(r.json, "Versions")), 1);
    lam("GET", "/2015-03-31/functions/hello/aliases", NULL, NULL, &r);
    CHECK_INT(json_array_size(json_object_get(r.json, "Aliases")), 0);
    lam("GET", "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A" ACCOUNT "%3Afunction%3Ahello",
        NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    lam("POST", "/2015-03-31/event-source-mappings/", "{}", NULL, &r);
    check_lambda_error(&r, 404, "UnknownOperationException");

    lam("DELETE", "/2015-03-31/functions/hello", NULL, NULL, &r);
    CHECK_INT(r.status, 204);
    lam("DELETE", "/2015-03-31/functions/hello", NULL, NULL, &r);
    check_lambda_error(&r, 404, "ResourceNotFoundException");

    /* The native API sees what the Lambda API made. */
    v1("GET", "/v1/functions/zeta", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "runtime"), "python3");
    resp_free(&r);
    stop();
}

/* ---- real clients ---- */

/* Run a shell command with the test credentials; returns its exit status and
 * leaves its standard output in out (a file path). */
static int run(const char *cmd, const char *out)
{
    cleanup_free char *full = xasprintf(
        "env AWS_ACCESS_KEY_ID=" AK " AWS_SECRET_ACCESS_KEY='" SK "' AWS_DEFAULT_REGION=us-east-1 "
        "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= "
        "AWS_EC2_METADATA_DISABLED=true AWS_MAX_ATTEMPTS=1 %s >%s 2>%s.err",
        cmd, out, out);
    int st = system(full);
    if (st != 0) {
        cleanup_free char *show = xasprintf("sed 's/^/# /' %s.err %s >&2", out, out);
        if (system(show) < 0)
            perror("system");
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *load(const char *path)
{
    json_t *j = json_load_file(path, 0, NULL);
    CHECK(j != NULL);
    return j;
}

TEST(aws_cli_v2)
{
    if (access("/usr/bin/aws", X_OK) != 0)
        SKIP("/usr/bin/aws (Debian's awscli) is not installed");
    start(NULL);
    char zpath[128], out[128], cmd[1024];
    size_t zlen;
    cleanup_free char *zip = make_zip("app.py", "def handler(e, c):\n    return e\n", &zlen);
    snprintf(zpath, sizeof zpath, "%s/f.zip", fx.dir);
    snprintf(out, sizeof out, "%s/out.json", fx.dir);
    wisp_err_t err;
    CHECK(wisp_write_file(zpath, zip, zlen, 0644, &err) == 0);
    char ep[64];
    snprintf(ep, sizeof ep, "--endpoint-url http://127.0.0.1:%d", fx.port);

    snprintf(cmd, sizeof cmd,
             "/usr/bin/aws %s lambda create-function --function-name hello --runtime python3.11 "
             "--role arn:aws:iam::" ACCOUNT ":role/x --handler app.handler "
             "--zip-file fileb://%s --environment 'Variables={K=v}'",
             ep, zpath);
    CHECK_INT(run(cmd, out), 0);
    json_t *j = load(out);
    CHECK_STR(json_string_value(json_object_get(j, "FunctionName")), "hello");
    json_decref(j);

    snprintf(cmd, sizeof cmd,
             "/usr/bin/aws %s lambda get-function --function-name "
             "arn:aws:lambda:us-east-1:" ACCOUNT ":function:hello",
             ep);
    CHECK_INT(run(cmd, out), 0);
    j = load(out);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "Configuration"), "Handler")),
              "app.handler");
    json_decref(j);

    snprintf(cmd, sizeof cmd,
             "/usr/bin/aws %s lambda update-function-configuration --function-name hello "
             "--memory-size 256 --timeout 30",
             ep);
    CHECK_INT(run(cmd, out), 0);
    j = load(out);
    CHECK_INT(json_integer_value(json_object_get(j, "MemorySize")), 256);
    json_decref(j);

    snprintf(cmd, sizeof cmd, "/usr/bin/aws %s lambda wait function-updated --function-name hello",
             ep);
    CHECK_INT(run(cmd, out), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/aws %s lambda list-functions", ep);
    CHECK_INT(run(cmd, out), 0);
    j = load(out);
    CHECK_INT(json_array_size(json_object_get(j, "Functions")), 1);
    json_decref(j);

    snprintf(cmd, sizeof cmd, "/usr/bin/aws %s lambda get-function --function-name nope", ep);
    CHECK_INT(run(cmd, out), 254);
    snprintf(cmd, sizeof cmd, "grep -q ResourceNotFoundException %s.err", out);
    CHECK(system(cmd) == 0);

    snprintf(cmd, sizeof cmd, "/usr/bin/aws %s lambda delete-function --function-name hello", ep);
    CHECK_INT(run(cmd, out), 0);
    stop();
}

static const char boto3_script[] =
    "import boto3, botocore, io, sys, zipfile\n"
    "from botocore.config import Config\n"
    "port = sys.argv[1]\n"
    "c = boto3.client('lambda', endpoint_url='http://127.0.0.1:' + port,\n"
    "                 config=Config(retries={'max_attempts': 0}))\n"
    "buf = io.BytesIO()\n"
    "with zipfile.ZipFile(buf, 'w') as z:\n"
    "    z.writestr('index.js', 'exports.handler = async (e) => e;')\n"
    "code = buf.getvalue()\n"
    "r = c.create_function(FunctionName='node-fn', Runtime='nodejs18.x', Role='r',\n"
    "                      Handler='index.handler', Code={'ZipFile': code}, Timeout=7)\n"
    "assert r['ResponseMetadata']['HTTPStatusCode'] == 201, r\n"
    "assert r['Runtime'] == 'nodejs20.x' and r['Timeout'] == 7, r\n"
    "import hashlib, base64\n"
    "assert r['CodeSha256'] == base64.b64encode(hashlib.sha256(code).digest()).decode(), r\n"
    "for i in range(3):\n"
    "    c.create_function(FunctionName='f%d' % i, Runtime='provided.al2023', Role='r',\n"
    "                      Code={'ZipFile': code})\n"
    "names = []\n"
    "for page in c.get_paginator('list_functions').paginate(PaginationConfig={'PageSize': 2}):\n"
    "    names += [f['FunctionName'] for f in page['Functions']]\n"
    "assert names == ['f0', 'f1', 'f2', 'node-fn'], names\n"
    "g = c.get_function(FunctionName='arn:aws:lambda:us-east-1:" ACCOUNT ":function:node-fn')\n"
    "assert g['Configuration']['Handler'] == 'index.handler', g\n"
    "c.put_function_concurrency(FunctionName='f0', ReservedConcurrentExecutions=3)\n"
    "assert c.get_function_concurrency(FunctionName='f0')['ReservedConcurrentExecutions'] == 3\n"
    "s = c.get_account_settings()\n"
    "assert s['AccountUsage']['FunctionCount'] == 4, s\n"
    "r = c.invoke(FunctionName='node-fn', InvocationType='DryRun')\n"
    "assert r['StatusCode'] == 204, r\n"
    "try:\n"
    "    c.get_function(FunctionName='missing')\n"
    "    raise SystemExit('no error')\n"
    "except botocore.exceptions.ClientError as e:\n"
    "    assert e.response['Error']['Code'] == 'ResourceNotFoundException', e.response\n"
    "    assert 'function:missing' in e.response['Error']['Message'], e.response\n"
    "try:\n"
    "    c.exceptions.ResourceNotFoundException\n"
    "    c.invoke(FunctionName='node-fn', Payload=b'{}', LogType='Tail')\n"
    "    raise SystemExit('no error')\n"
    "except c.exceptions.ServiceException:\n"
    "    pass\n"
    "c.update_function_code(FunctionName='node-fn', ZipFile=code)\n"
    "c.delete_function(FunctionName='node-fn')\n"
    "print('OK')\n";

TEST(boto3)
{
    if (system("/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1") != 0)
        SKIP("boto3 for /usr/bin/python3 (python3-boto3) is not installed");
    start(NULL);
    char script[128], out[128], cmd[512];
    snprintf(script, sizeof script, "%s/t.py", fx.dir);
    snprintf(out, sizeof out, "%s/out.txt", fx.dir);
    wisp_err_t err;
    CHECK(wisp_write_file(script, boto3_script, strlen(boto3_script), 0644, &err) == 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d", script, fx.port);
    CHECK_INT(run(cmd, out), 0);
    cleanup_free char *text = NULL;
    size_t n;
    CHECK(wisp_read_file(out, 4096, &text, &n, &err) == 0);
    CHECK_STR(text, "OK\n");
    stop();
}

TAP_MAIN(CASE(healthz_and_metrics_without_token), CASE(v1_requires_the_bearer_token),
         CASE(v1_function_lifecycle), CASE(v1_invoke_checks_before_the_invoker),
         CASE(v1_logs_and_invocations), CASE(lambda_authentication),
         CASE(lambda_function_lifecycle), CASE(aws_cli_v2), CASE(boto3))
