/*
 * util.c - small HTTP helpers with no connection state: reason phrases,
 * percent-decoding, query parameters and header lookup.
 */
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "http/internal.h"

const char *wisp_http_status_text(int status)
{
    if (status < 0 || status > 999)
        return "Unknown";
    const char *s = http_status_str((enum http_status)status);
    if (s != NULL && s[0] != '<')
        return s;
    switch (status / 100) {
    case 1: return "Informational";
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    case 5: return "Server Error";
    default: return "Unknown";
    }
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *wisp_http_pct_decode(const char *src, size_t n, bool plus_as_space)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '%') {
            if (n - i < 3) {
                free(out);
                return NULL;
            }
            int hi = hexval((unsigned char)src[i + 1]);
            int lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '\0') {
            free(out);
            return NULL;
        } else if (ch == '+' && plus_as_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return out;
}

char *wisp_http_query_param(const char *query, const char *name)
{
    if (query == NULL || name == NULL)
        return NULL;
    const char *p = query;
    while (*p != '\0') {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        cleanup_free char *key = wisp_http_pct_decode(p, klen, true);
        if (key != NULL && strcmp(key, name) == 0) {
            if (eq == NULL)
                return xstrdup("");
            return wisp_http_pct_decode(eq + 1, len - klen - 1, true);
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

static const char *find(const wisp_http_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

const char *wisp_http_req_header(const wisp_http_req_t *req, const char *name)
{
    return find(req->headers, req->nheaders, name);
}

const char *wisp_http_req_trailer(const wisp_http_req_t *req, const char *name)
{
    return find(req->trailers, req->ntrailers, name);
}
