/*
 * test_cruntime.c - unit tests for the C runtime library (runtimes/c): its
 * JSON readers and writers, address parsing, body limits, and the invocation
 * loop against a scripted Runtime API on a real loopback socket (split
 * replies, the GET /next pipelined behind a response, Connection: close, a
 * dropped connection, an oversized body). The library is compiled into this test directly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../runtimes/c/wisp_runtime.c"
#include "tap.h"

static const char *get(const char *json, const char *key)
{
    static char out[256];
    size_t len;
    const char *v = wisp_rt_json_get(json, strlen(json), key, &len);
    if (v == NULL)
        return NULL;
    snprintf(out, sizeof(out), "%.*s", (int)len, v);
    return out;
}

TEST(json_get_finds_top_level_keys)
{
    const char *doc = " { \"a\" : {\"name\": \"inner\", \"x\": [1, \"}]\", {\"y\": 2}]},\n"
                      "\"s\\\"q\": \"v\\\"}\", \"name\":\"Ada\", \"n\": -1.5e3, \"t\": true,"
                      " \"\\u006eul\": null } ";
    CHECK_STR(get(doc, "name"), "\"Ada\"");
    CHECK_STR(get(doc, "a"), "{\"name\": \"inner\", \"x\": [1, \"}]\", {\"y\": 2}]}");
    CHECK_STR(get(doc, "s\"q"), "\"v\\\"}\"");
    CHECK_STR(get(doc, "n"), "-1.5e3");
    CHECK_STR(get(doc, "t"), "true");
    CHECK_STR(get(doc, "nul"), "null");
    CHECK(get(doc, "x") == NULL);
    CHECK(get(doc, "y") == NULL);
    CHECK(get("{}", "a") == NULL);
    CHECK(get("[{\"a\":1}]", "a") == NULL);
    CHECK(get("\"a\"", "a") == NULL);
    CHECK(get("", "a") == NULL);
    CHECK(get("{\"a\" 1}", "a") == NULL);
    CHECK(get("{\"b\":[1,2", "a") == NULL);
    CHECK(get("{\"b\":\"unterminated", "a") == NULL);
    CHECK(get("{\"a\":", "a") == NULL);
    /* Every prefix of a valid document is handled without reading past it. */
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1);
        memcpy(copy, doc, i);
        size_t len;
        const char *v = wisp_rt_json_get(copy, i, "name", &len);
        CHECK(v == NULL || (v >= copy && v + len <= copy + i));
        free(copy);
    }
}

TEST(json_string_decodes_and_rejects)
{
    char out[64];
    const char *raw = "\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac\\ud83d\\ude00\"";
    long n = wisp_rt_json_string(raw, strlen(raw), out, sizeof(out));
    CHECK_STR(out, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_INT(n, (long)strlen(out));
    CHECK_INT(wisp_rt_json_string("\"\"", 2, out, sizeof(out)), 0);
    CHECK_STR(out, "");
    const char *bad[] = {
        "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"", "\"a\nb\"", "\"\\ud83d\\u0041\"",
        "abc",     "\"abc",     "\"\\\"",      "\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(wisp_rt_json_string(bad[i], strlen(bad[i]), out, sizeof(out)), -1);
    /* Too small for the text plus its NUL. */
    CHECK_INT(wisp_rt_json_string("\"abcd\"", 6, out, 4), -1);
    CHECK_INT(wisp_rt_json_string("\"abc\"", 5, out, 4), 3);
}

TEST(append_json_string_round_trips)
{
    wisp_rt_response_t r = {0};
    const char in[] = "q\"b\\s\x01\x1f\n\r\t\b\f end \xc3\xa9";
    CHECK(wisp_rt_append_json_string(&r, in, sizeof(in) - 1) == 0);
    CHECK_STR(r.data, "\"q\\\"b\\\\s\\u0001\\u001f\\n\\r\\t\\b\\f end \xc3\xa9\"");
    char out[64];
    CHECK_INT(wisp_rt_json_string(r.data, r.len, out, sizeof(out)), (long)(sizeof(in) - 1));
    CHECK(memcmp(out, in, sizeof(in)) == 0);
    wisp_rt_reset(&r);
    CHECK(wisp_rt_appendf(&r, "{\"n\":%d,\"s\":", 42) == 0);
    CHECK(wisp_rt_append_json_string(&r, "x", 1) == 0);
    CHECK(wisp_rt_append(&r, "}", 1) == 0);
    CHECK_STR(r.data, "{\"n\":42,\"s\":\"x\"}");
    free(r.data);
}

TEST(response_body_is_limited)
{
    wisp_rt_response_t r = {0};
    size_t chunk = 1024 * 1024;
    char *block = malloc(chunk);
    memset(block, 'x', chunk);
    for (int i = 0; i < 16; i++)
        CHECK(wisp_rt_append(&r, block, chunk) == 0);
    CHECK_INT(r.len, 16 * chunk);
    CHECK(wisp_rt_append(&r, "y", 1) == -1);
    CHECK(wisp_rt_appendf(&r, "%s", "y") == -1);
    CHECK(wisp_rt_append_json_string(&r, "y", 1) == -1);
    CHECK_INT(r.len, 16 * chunk);
    CHECK(wisp_rt_append(&r, block, SIZE_MAX) == -1);
    wisp_rt_reset(&r);
    CHECK_INT(r.len, 0);
    CHECK(wisp_rt_fail(&r, "T", "m %d", 1) == -1);
    CHECK(r.failed);
    CHECK_STR(r.error_type, "T");
    CHECK_STR(r.error_message, "m 1");
    response_clear(&r);
    CHECK(!r.failed && r.error_message == NULL);
    free(r.data);
    free(block);
}

TEST(api_address_parsing)
{
    struct rt_conn c;
    CHECK(conn_init(&c, "127.0.0.1:9001") == 0);
    CHECK_INT(c.addr.ss_family, AF_INET);
    CHECK_INT(ntohs(((struct sockaddr_in *)&c.addr)->sin_port), 9001);
    CHECK_STR(c.host, "127.0.0.1:9001");
    CHECK(conn_init(&c, "[::1]:80") == 0);
    CHECK_INT(c.addr.ss_family, AF_INET6);
    CHECK(conn_init(&c, "localhost:80") == 0);
    CHECK_INT(c.addr.ss_family, AF_INET);
    const char *bad[] = {"no-port",    "1.2.3.4:",       "1.2.3.4:0", "1.2.3.4:70000",
                         "1.2.3.4:9x", "example.com:80", "[::1:80",   "[zz]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(conn_init(&c, bad[i]) == -1);
    CHECK(conn_init(&c, NULL) == -1);
}

/* ---- The loop against a scripted Runtime API ----------------------------- */

/* The scripted server's side of one connection: bytes read but not yet
 * taken as a request (the client pipelines a GET behind a POST). */
struct srv_conn {
    int fd;
    char buf[16384];
    size_t len;
};

/* Takes one request (headers and Content-Length body) into out, NUL-terminated,
 * reading more only when what was read so far does not hold it. */
static ssize_t read_request(struct srv_conn *sc, char *out, size_t size)
{
    char *hend;
    for (;;) {
        sc->buf[sc->len] = '\0';
        hend = strstr(sc->buf, "\r\n\r\n");
        if (hend != NULL)
            break;
        ssize_t n = read(sc->fd, sc->buf + sc->len, sizeof(sc->buf) - 1 - sc->len);
        if (n <= 0)
            return -1;
        sc->len += (size_t)n;
    }
    size_t head = (size_t)(hend - sc->buf) + 4, body = 0;
    const char *cl = strcasestr(sc->buf, "Content-Length:");
    if (cl != NULL && cl < hend)
        body = strtoul(cl + 15, NULL, 10);
    while (sc->len < head + body) {
        ssize_t n = read(sc->fd, sc->buf + sc->len, sizeof(sc->buf) - 1 - sc->len);
        if (n <= 0)
            return -1;
        sc->len += (size_t)n;
    }
    size_t total = head + body;
    if (total >= size)
        return -1;
    memcpy(out, sc->buf, total);
    out[total] = '\0';
    memmove(sc->buf, sc->buf + total, sc->len - total);
    sc->len -= total;
    return (ssize_t)total;
}

/* Whether a request has arrived complete without waiting for it. */
static bool request_waiting(struct srv_conn *sc)
{
    usleep(20000);
    ssize_t n = recv(sc->fd, sc->buf + sc->len, sizeof(sc->buf) - 1 - sc->len, MSG_DONTWAIT);
    if (n > 0)
        sc->len += (size_t)n;
    sc->buf[sc->len] = '\0';
    return strstr(sc->buf, "\r\n\r\n") != NULL;
}

static struct srv_conn *srv_accept(int lfd)
{
    static struct srv_conn sc;
    sc.len = 0;
    sc.fd = accept(lfd, NULL, NULL);
    return &sc;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void say(int fd, const char *text)
{
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        exit(20);
}

/* The server side, in a child: exits 0 if the client behaved. */
static void script_server(int lfd)
{
    char req[8192];
    alarm(10);
    struct srv_conn *sc = srv_accept(lfd);
    int fd = sc->fd;
    if (read_request(sc, req, sizeof(req)) < 0 ||
        !starts(req, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"))
        exit(2);
    if (strstr(req, "\r\nHost: 127.0.0.1:") == NULL)
        exit(3);
    /* A reply in pieces, with header names in another case. */
    say(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nlambda-runtime-aws-request-id:"
            " req-1\r\nLambda-Runtime-Deadline-Ms: 4102444800000\r\n");
    usleep(20000);
    say(fd, "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:0:function:f\r\n"
            "Lambda-Runtime-Trace-Id: Root=1-a\r\nContent-Length: 14\r\n\r\n{\"name\"");
    usleep(20000);
    say(fd, ":\"Ada\"}");
    if (read_request(sc, req, sizeof(req)) < 0 ||
        !starts(req, "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\n"))
        exit(4);
    if (strcmp(strstr(req, "\r\n\r\n") + 4, "{\"hello\":\"Ada\"}") != 0)
        exit(5);
    /* The next GET comes pipelined behind the response, before its reply. */
    if (!request_waiting(sc) || read_request(sc, req, sizeof(req)) < 0 ||
        !starts(req, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"))
        exit(6);
    say(fd, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
            "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-2\r\n"
            "Lambda-Runtime-Deadline-Ms: 1\r\nContent-Length: 13\r\n\r\n{\"fail\":true}");
    if (read_request(sc, req, sizeof(req)) < 0 ||
        !starts(req, "POST /2018-06-01/runtime/invocation/req-2/error HTTP/1.1\r\n"))
        exit(7);
    if (strstr(req, "\r\nLambda-Runtime-Function-Error-Type: Boom\r\n") == NULL ||
        strstr(req, "{\"errorMessage\":\"no \\\"luck\\\"\",\"errorType\":\"Boom\","
                    "\"stackTrace\":[]}") == NULL)
        exit(8);
    say(fd, "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 15\r\n\r\n"
            "{\"status\":\"OK\"}");
    close(fd);

    /* The client must open a new connection after Connection: close. */
    sc = srv_accept(lfd);
    fd = sc->fd;
    if (read_request(sc, req, sizeof(req)) < 0 || !starts(req, "GET "))
        exit(9);
    say(fd, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-3\r\n"
            "Content-Length: 14\r\n\r\n{\"name\":\"Bob\"}");
    if (read_request(sc, req, sizeof(req)) < 0 ||
        !starts(req, "POST /2018-06-01/runtime/invocation/req-3/response HTTP/1.1\r\n"))
        exit(10);
    say(fd, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}");
    /* The server then drops the connection without answering the pipelined
     * GET: the client must ask again on a new connection. */
    if (read_request(sc, req, sizeof(req)) < 0 || !starts(req, "GET "))
        exit(11);
    usleep(50000);
    close(fd);

    sc = srv_accept(lfd);
    fd = sc->fd;
    if (read_request(sc, req, sizeof(req)) < 0 || !starts(req, "GET "))
        exit(12);
    say(fd, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-4\r\n"
            "Content-Length: 999999999999\r\n\r\n");
    close(fd);
    exit(0);
}

static int calls;
static char seen_id[64], seen_arn[128], seen_trace[64], seen_event[64];
static int64_t seen_deadline, seen_remaining;

static int script_handler(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp)
{
    calls++;
    snprintf(seen_id, sizeof(seen_id), "%s", inv->request_id);
    snprintf(seen_arn, sizeof(seen_arn), "%s", inv->function_arn);
    snprintf(seen_trace, sizeof(seen_trace), "%s", inv->trace_id);
    snprintf(seen_event, sizeof(seen_event), "%s", inv->event);
    seen_deadline = inv->deadline_ms;
    seen_remaining = wisp_rt_remaining_ms(inv);
    if (wisp_rt_json_get(inv->event, inv->event_len, "fail", &(size_t){0}) != NULL)
        return wisp_rt_fail(resp, "Boom", "no \"luck\"");
    return wisp_rt_append(resp, "{\"hello\":\"Ada\"}", 15);
}

TEST(loop_against_scripted_api)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK(lfd >= 0);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", ntohs(a.sin_port));
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        script_server(lfd);
    close(lfd);

    struct rt_conn c;
    wisp_rt_response_t resp = {0};
    CHECK(conn_from_env(&c) == 0);
    CHECK(run_once(&c, script_handler, &resp) == 0);
    CHECK_STR(seen_id, "req-1");
    CHECK_STR(seen_arn, "arn:aws:lambda:us-east-1:0:function:f");
    CHECK_STR(seen_trace, "Root=1-a");
    CHECK_STR(getenv("_X_AMZN_TRACE_ID"), "Root=1-a");
    CHECK_STR(seen_event, "{\"name\":\"Ada\"}");
    CHECK(seen_deadline == 4102444800000LL);
    CHECK(seen_remaining > 0);
    CHECK(c.fd >= 0 && c.next_sent); /* kept alive, the next GET already sent */

    CHECK(run_once(&c, script_handler, &resp) == 0);
    CHECK_STR(seen_id, "req-2");
    CHECK(getenv("_X_AMZN_TRACE_ID") == NULL);
    CHECK(seen_remaining == 0);
    CHECK(c.fd == -1); /* closed after Connection: close */

    CHECK(run_once(&c, script_handler, &resp) == 0);
    CHECK_STR(seen_id, "req-3");
    CHECK(c.next_sent);

    /* The pipelined GET dropped, asked again, then a body over the limit: a
     * fatal error. */
    CHECK(run_once(&c, script_handler, &resp) == -1);
    CHECK_INT(calls, 3);

    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "# scripted server: status %d\n", WEXITSTATUS(st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    conn_close(&c);
    free(c.buf);
    response_clear(&resp);
    free(resp.data);
}

TEST(init_error_is_posted)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK(lfd >= 0);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(lfd, 1) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", ntohs(a.sin_port));
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        wisp_rt_init_error("Config.Missing", "no %s set", "DB_URL");

    char req[8192];
    struct srv_conn *sc = srv_accept(lfd);
    int fd = sc->fd;
    CHECK(fd >= 0);
    CHECK(read_request(sc, req, sizeof(req)) > 0);
    say(fd, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}");
    CHECK(starts(req, "POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"));
    CHECK(strstr(req, "\r\nLambda-Runtime-Function-Error-Type: Config.Missing\r\n") != NULL);
    CHECK_STR(strstr(req, "\r\n\r\n") + 4,
              "{\"errorMessage\":\"no DB_URL set\",\"errorType\":\"Config.Missing\","
              "\"stackTrace\":[]}");
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    close(fd);
    close(lfd);
}

TEST(main_fails_without_api)
{
    unsetenv("AWS_LAMBDA_RUNTIME_API");
    CHECK_INT(wisp_rt_main(script_handler), 1);
    /* Nothing listens on a fresh ephemeral port that was just closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", ntohs(a.sin_port));
    close(fd);
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
    CHECK_INT(wisp_rt_main(script_handler), 1);
    CHECK_INT(calls, 0);
}

TAP_MAIN(CASE(json_get_finds_top_level_keys), CASE(json_string_decodes_and_rejects),
         CASE(append_json_string_round_trips), CASE(response_body_is_limited),
         CASE(api_address_parsing), CASE(loop_against_scripted_api), CASE(init_error_is_posted),
         CASE(main_fails_without_api))
