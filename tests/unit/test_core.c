/* test_core.c - unit tests for core: errors, buffers, ids, time, metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "tap.h"

TEST(err_set_and_map)
{
    wisp_err_t err;
    CHECK(wisp_err_set(&err, WISP_ENOTFOUND, "no %s", "x") == -1);
    CHECK_STR(err.msg, "no x");
    CHECK_INT(wisp_errcode_http_status(err.code), 404);
    CHECK_STR(wisp_errcode_name(WISP_ELIMIT), "too_large");
    wisp_err_sys(&err, ENOENT, "open %s", "f");
    CHECK(strstr(err.msg, "open f: ") == err.msg);
    wisp_err_wrap(&err, "loading");
    CHECK(strncmp(err.msg, "loading: open f", 15) == 0);
}

TEST(buf_respects_max)
{
    wisp_buf_t b = WISP_BUF_INIT(8);
    wisp_err_t err;
    CHECK(wisp_buf_append(&b, "12345", 5, &err) == 0);
    CHECK(wisp_buf_append(&b, "6789", 4, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK_STR(b.data, "12345");
    CHECK(wisp_buf_append(&b, "678", 3, &err) == 0);
    wisp_buf_consume(&b, 2);
    CHECK_STR(b.data, "345678");
    wisp_buf_free(&b);
    wisp_buf_t u = WISP_BUF_INIT(0);
    for (int i = 0; i < 1000; i++)
        wisp_buf_addf(&u, "%04d", i);
    CHECK_INT(u.len, 4000);
    size_t n;
    char *s = wisp_buf_steal(&u, &n);
    CHECK_INT(n, 4000);
    free(s);
}

TEST(uuid_shape)
{
    char a[37], b[37];
    wisp_uuid4(a);
    wisp_uuid4(b);
    CHECK_INT(strlen(a), 36);
    CHECK(a[14] == '4');
    CHECK(strcmp(a, b) != 0);
}

TEST(uuid7_shape_and_order)
{
    char prev[37], cur[37];
    wisp_uuid7(prev);
    CHECK_INT(strlen(prev), 36);
    CHECK(prev[14] == '7');
    CHECK(strchr("89ab", prev[19]) != NULL);
    /* Many ids within the same milliseconds: each sorts after the one before. */
    for (int i = 0; i < 20000; i++) {
        wisp_uuid7(cur);
        if (strcmp(prev, cur) >= 0) {
            CHECK(strcmp(prev, cur) < 0);
            break;
        }
        memcpy(prev, cur, sizeof cur);
    }
    /* The first 12 hex digits are the epoch milliseconds. */
    char ms_hex[13];
    memcpy(ms_hex, cur, 8);
    memcpy(ms_hex + 8, cur + 9, 4);
    ms_hex[12] = '\0';
    long long ms = strtoll(ms_hex, NULL, 16);
    CHECK(ms > wisp_now_ms() - 60000 && ms < wisp_now_ms() + 60000);
}

TEST(time_formats)
{
    char s[32];
    wisp_time_lambda(1700000000123, s);
    CHECK_STR(s, "2023-11-14T22:13:20.123+0000");
    wisp_time_rfc3339(0, s);
    CHECK_STR(s, "1970-01-01T00:00:00.000Z");
}

TEST(files_roundtrip)
{
    char dir[] = "/tmp/wisp-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    cleanup_free char *sub = xasprintf("%s/a/b/c", dir);
    CHECK(wisp_mkdir_p(sub, 0700, NULL) == 0);
    cleanup_free char *f = xasprintf("%s/file", sub);
    CHECK(wisp_write_file(f, "hello", 5, 0600, NULL) == 0);
    char *data;
    size_t len;
    CHECK(wisp_read_file(f, 100, &data, &len, NULL) == 0);
    CHECK_STR(data, "hello");
    free(data);
    wisp_err_t err;
    CHECK(wisp_read_file(f, 3, &data, &len, &err) == -1);
    CHECK_INT(err.code, WISP_ELIMIT);
    CHECK(wisp_rm_rf(dir, NULL) == 0);
    CHECK(access(dir, F_OK) != 0);
}

TEST(metrics_render)
{
    wisp_metric_t *c = wisp_metrics_counter("t_requests_total", "Requests.");
    wisp_metrics_add(c, "code=\"200\"", 2);
    wisp_metrics_add(c, "code=\"200\"", 1);
    double b[] = {0.1, 1};
    wisp_metric_t *h = wisp_metrics_histogram("t_seconds", "Latency.", b, 2);
    wisp_metrics_observe(h, NULL, 0.05);
    wisp_metrics_observe(h, NULL, 5);
    wisp_buf_t out = WISP_BUF_INIT(0);
    wisp_metrics_render(&out);
    CHECK(strstr(out.data, "# TYPE t_requests_total counter\n"));
    CHECK(strstr(out.data, "t_requests_total{code=\"200\"} 3\n"));
    CHECK(strstr(out.data, "t_seconds_bucket{le=\"0.1\"} 1\n"));
    CHECK(strstr(out.data, "t_seconds_bucket{le=\"+Inf\"} 2\n"));
    CHECK(strstr(out.data, "t_seconds_count 2\n"));
    char esc[32];
    wisp_metrics_label_escape("a\"b\\c\n", esc, sizeof esc);
    CHECK_STR(esc, "a\\\"b\\\\c\\n");
    wisp_buf_free(&out);
    wisp_metrics_reset();
}

/* Thousands of series (one per function): each keeps its own value through the
 * table's growth, lookups of absent series create nothing, and the output stays
 * sorted by labels. */
TEST(metrics_many_series)
{
    wisp_metric_t *c = wisp_metrics_counter("t_calls_total", "Calls.");
    double b[] = {0.1, 1};
    wisp_metric_t *h = wisp_metrics_histogram("t_call_seconds", "Latency.", b, 2);
    enum { N = 3000 };
    char labels[64];
    for (int round = 0; round < 2; round++)
        for (int i = N - 1; i >= 0; i--) {
            snprintf(labels, sizeof labels, "function=\"f%05d\"", i);
            wisp_metrics_add(c, labels, (double)i);
            wisp_metrics_observe(h, labels, 0.5);
        }
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(labels, sizeof labels, "function=\"f%05d\"", i);
        wrong += wisp_metrics_value(c, labels) != 2.0 * i;
        wrong += wisp_metrics_value(h, labels) != 2.0;
    }
    CHECK_INT(wrong, 0);
    CHECK(wisp_metrics_value(c, "function=\"absent\"") == 0);
    CHECK(wisp_metrics_value(c, NULL) == 0);
    wisp_buf_t out = WISP_BUF_INIT(0);
    wisp_metrics_render(&out);
    CHECK(strstr(out.data, "t_calls_total{function=\"f02999\"} 5998\n"));
    CHECK(strstr(out.data, "t_call_seconds_count{function=\"f00007\"} 2\n"));
    const char *a = strstr(out.data, "t_calls_total{function=\"f00009\"}");
    const char *z = strstr(out.data, "t_calls_total{function=\"f00010\"}");
    CHECK(a != NULL && z != NULL && a < z);
    size_t rows = 0;
    for (const char *p = out.data; (p = strstr(p, "t_calls_total{")) != NULL; p++)
        rows++;
    CHECK_INT((long)rows, N);
    wisp_buf_free(&out);
    wisp_metrics_reset();
}

/* A deleted function's series go from every metric, and only its own:
 * not a function whose name it prefixes, nor a value that merely contains
 * the label's text; the hash table still finds what is left. */
TEST(metrics_forget)
{
    wisp_metric_t *c = wisp_metrics_counter("t_inv_total", "Test.");
    wisp_metric_t *h = wisp_metrics_histogram("t_inv_seconds", "Test.", (double[]){0.1, 1}, 2);
    for (int i = 0; i < 200; i++) {
        char l[64];
        snprintf(l, sizeof l, "function=\"f%d\",outcome=\"success\"", i);
        wisp_metrics_add(c, l, 1);
        snprintf(l, sizeof l, "function=\"f%d\"", i);
        wisp_metrics_observe(h, l, 0.5);
    }
    wisp_metrics_add(c, "outcome=\"x\",function=\"f7\"", 1); /* not first */
    wisp_metrics_add(c, "other=\"function=\\\"f7\\\"\"", 1); /* only inside a value */
    wisp_metrics_forget("function=\"f7\"");
    CHECK(wisp_metrics_value(c, "function=\"f7\",outcome=\"success\"") == 0);
    CHECK(wisp_metrics_value(c, "outcome=\"x\",function=\"f7\"") == 0);
    CHECK(wisp_metrics_value(c, "function=\"f70\",outcome=\"success\"") == 1);
    CHECK(wisp_metrics_value(c, "function=\"f199\",outcome=\"success\"") == 1);
    CHECK(wisp_metrics_value(c, "other=\"function=\\\"f7\\\"\"") == 1);
    wisp_buf_t out = WISP_BUF_INIT(0);
    wisp_metrics_render(&out);
    CHECK(strstr(out.data, "function=\"f7\"") == NULL);
    CHECK(strstr(out.data, "t_inv_seconds_count{function=\"f70\"} 1\n") != NULL);
    wisp_buf_free(&out);
    /* Updated again, the series starts over. */
    wisp_metrics_add(c, "function=\"f7\",outcome=\"success\"", 2);
    CHECK(wisp_metrics_value(c, "function=\"f7\",outcome=\"success\"") == 2);
    wisp_metrics_reset();
}

TAP_MAIN(CASE(err_set_and_map), CASE(buf_respects_max), CASE(uuid_shape),
         CASE(uuid7_shape_and_order), CASE(time_formats), CASE(files_roundtrip),
         CASE(metrics_render), CASE(metrics_many_series), CASE(metrics_forget))
