/*
 * fuzz_sigv4.c - SigV4 verification on arbitrary requests.
 *
 * Input: a request line "METHOD /path?query", header lines "Name: value", an
 * empty line, then the body (LF or CRLF line ends). Invariants: verification
 * never crashes and answers a known status with an error name and a message;
 * it succeeds only for the request as signed; and signing the request
 * ourselves (Host and X-Amz-Date as signed headers) then verifying it at its
 * own date always succeeds unless the request is malformed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/sigv4.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AK "AKIAWISPTEST00000001"
#define SK "wispTestSecret/Key+0123456789abcdefghijAB"
#define MAX_HEADERS 32

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sigv4: invariant failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char *next_line(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p;
    char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) {
        *p = end;
        return s;
    }
    *nl = '\0';
    if (nl > s && nl[-1] == '\r')
        nl[-1] = '\0';
    *p = nl + 1;
    return s;
}

static void check_result(wisp_sigv4_status_t st, const wisp_sigv4_result_t *res)
{
    REQUIRE(st == res->status);
    REQUIRE(st >= WISP_SIGV4_OK && st <= WISP_SIGV4_EXPIRED);
    if (st != WISP_SIGV4_OK)
        REQUIRE(res->error_type != NULL && res->error_type[0] != '\0' && res->message[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *buf = xmalloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *p = buf, *end = buf + size;
    char *line = next_line(&p, end);
    char *sp = line ? strchr(line, ' ') : NULL;
    if (sp == NULL) {
        free(buf);
        return 0;
    }
    *sp = '\0';
    char *target = sp + 1;
    char *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    wisp_http_header_t h[MAX_HEADERS + 1];
    size_t nh = 0;
    char *date = NULL;
    while ((line = next_line(&p, end)) != NULL && line[0] != '\0' && nh < MAX_HEADERS) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        h[nh].name = line;
        h[nh].value = v;
        if (date == NULL && strcasecmp(line, "x-amz-date") == 0)
            date = v;
        nh++;
    }
    wisp_http_req_t req = {.method = buf,
                           .path = target,
                           .query = q ? q : "",
                           .headers = h,
                           .nheaders = nh,
                           .body = p < end ? p : "",
                           .body_len = p < end ? (size_t)(end - p) : 0};
    wisp_sigv4_result_t res;
    time_t now = 1795710811;
    check_result(wisp__sigv4_verify(&req, AK, SK, "lambda", now, &res), &res);

    /* Round trip: sign it ourselves (without the caller's own Authorization
     * and payload hash headers), then verify at the signed date. */
    struct tm tm = {0};
    const char *rest = date ? strptime(date, "%Y%m%dT%H%M%SZ", &tm) : NULL;
    if (rest != NULL && *rest == '\0' && strlen(date) == 16) {
        size_t keep = 0;
        for (size_t i = 0; i < nh; i++)
            if (strcasecmp(h[i].name, "authorization") != 0 &&
                strcasecmp(h[i].name, "x-amz-content-sha256") != 0)
                h[keep++] = h[i];
        char authz[1024];
        req.nheaders = keep;
        if (wisp__sigv4_sign(&req, "host;x-amz-date", AK, SK, "us-east-1", "lambda", authz,
                             sizeof authz) == 0) {
            h[keep].name = "Authorization";
            h[keep].value = authz;
            req.nheaders = keep + 1;
            wisp_sigv4_status_t st = wisp__sigv4_verify(&req, AK, SK, "lambda", timegm(&tm), &res);
            check_result(st, &res);
            REQUIRE(st == WISP_SIGV4_OK || st == WISP_SIGV4_MALFORMED);
            /* Another secret never verifies. */
            if (st == WISP_SIGV4_OK)
                REQUIRE(wisp__sigv4_verify(&req, AK, SK "x", "lambda", timegm(&tm), &res) ==
                        WISP_SIGV4_BAD_SIGNATURE);
        }
    }
    free(buf);
    return 0;
}
