/*
 * sigv4.c - AWS Signature Version 4 verification (and signing, for tests) of
 * requests to the Lambda-compatible API; see sigv4.h for the contract.
 *
 * The canonical request is rebuilt the way botocore and the JavaScript SDK
 * build it for non-S3 services: the path has its dot segments and empty
 * segments removed and every byte outside the unreserved set percent-encoded
 * (so an already encoded "%3A" is signed as "%253A"); the query pairs are
 * decoded, re-encoded strictly and sorted; signed header values are trimmed
 * with inner runs of whitespace collapsed, repeated headers joined by ",".
 */
#include "api/sigv4.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
/* The canonical request is built from the path, query and headers, which the
 * HTTP layer already bounds; this is a second, generous bound. */
#define CANONICAL_MAX (1024 * 1024)

static const char msg_bad_signature[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

static const char *find_header(const wisp_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        abort(); /* only fails on allocation failure */
    wisp_hex(md, 32, out);
}

static void hmac256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[32])
{
    unsigned int outlen = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL || outlen != 32)
        abort();
}

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Append s[0..n) with every byte outside the unreserved set as %XX. */
static int uri_encode(wisp_buf_t *out, const char *s, size_t n, wisp_err_t *err)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
        int r =
            unreserved(c) ? wisp_buf_append(out, &s[i], 1, err) : wisp_buf_append(out, enc, 3, err);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode s[0..n) ('+' stays '+'); NULL if an escape is malformed or NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* The canonical URI: dot and empty segments removed, each segment encoded. */
static int canonical_uri(wisp_buf_t *out, const char *path, wisp_err_t *err)
{
    size_t plen = strlen(path);
    size_t cap = 1;
    for (size_t i = 0; i < plen; i++)
        cap += path[i] == '/';
    const char **seg = xcalloc(cap, sizeof *seg);
    size_t *seglen = xcalloc(cap, sizeof *seglen);
    size_t nseg = 0;
    for (const char *p = path; *p;) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (nseg > 0)
                nseg--;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            seg[nseg] = p;
            seglen[nseg++] = len;
        }
        p = *end ? end + 1 : end;
    }
    int r = wisp_buf_append(out, "/", 1, err);
    for (size_t i = 0; r == 0 && i < nseg; i++) {
        if (i > 0)
            r = wisp_buf_append(out, "/", 1, err);
        if (r == 0)
            r = uri_encode(out, seg[i], seglen[i], err);
    }
    if (r == 0 && nseg > 0 && plen > 0 && path[plen - 1] == '/')
        r = wisp_buf_append(out, "/", 1, err);
    free(seg);
    free(seglen);
    return r;
}

struct qpair {
    char *key; /* strictly re-encoded */
    char *val;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->val, y->val);
}

static char *reencode(const char *s, size_t n, wisp_err_t *err)
{
    cleanup_free char *dec = pct_decode(s, n);
    if (dec == NULL) {
        wisp_err_set(err, WISP_EINVALID, "malformed percent-encoding in the query string");
        return NULL;
    }
    wisp_buf_t b = WISP_BUF_INIT(0);
    if (uri_encode(&b, dec, strlen(dec), err) < 0) {
        wisp_buf_free(&b);
        return NULL;
    }
    return wisp_buf_steal(&b, NULL);
}

/* The canonical query: pairs decoded, strictly re-encoded, sorted. */
static int canonical_query(wisp_buf_t *out, const char *query, wisp_err_t *err)
{
    size_t qlen = strlen(query);
    size_t cap = 1;
    for (size_t i = 0; i < qlen; i++)
        cap += query[i] == '&';
    struct qpair *pairs = xcalloc(cap, sizeof *pairs);
    size_t n = 0;
    int r = 0;
    for (const char *p = query; *p && r == 0;) {
        const char *end = strchrnul(p, '&');
        if (end > p) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *kend = eq ? eq : end;
            const char *v = eq ? eq + 1 : end;
            pairs[n].key = reencode(p, (size_t)(kend - p), err);
            pairs[n].val = pairs[n].key ? reencode(v, (size_t)(end - v), err) : NULL;
            if (pairs[n].key == NULL || pairs[n].val == NULL)
                r = -1;
            n++;
        }
        p = *end ? end + 1 : end;
    }
    if (r == 0)
        qsort(pairs, n, sizeof *pairs, qpair_cmp);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = wisp_buf_printf(out, err, "%s%s=%s", i ? "&" : "", pairs[i].key, pairs[i].val);
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].key);
        free(pairs[i].val);
    }
    free(pairs);
    return r;
}

/* Append the header value trimmed, with runs of blanks collapsed to one space. */
static int header_value(wisp_buf_t *out, const char *v, wisp_err_t *err)
{
    bool blank = false, any = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            blank = any;
            continue;
        }
        if (blank && wisp_buf_append(out, " ", 1, err) < 0)
            return -1;
        if (wisp_buf_append(out, v, 1, err) < 0)
            return -1;
        blank = false;
        any = true;
    }
    return 0;
}

/* "name:v1,v2\n" for every name in the ';'-separated list; -1 (err
 * WISP_ENOTFOUND) if a named header is absent. */
static int canonical_headers(wisp_buf_t *out, const wisp_http_req_t *req, const char *names,
                             wisp_err_t *err)
{
    for (const char *p = names; *p;) {
        const char *end = strchrnul(p, ';');
        size_t len = (size_t)(end - p);
        if (len == 0)
            return wisp_err_set(err, WISP_EINVALID, "empty name in SignedHeaders");
        if (wisp_buf_append(out, p, len, err) < 0 || wisp_buf_append(out, ":", 1, err) < 0)
            return -1;
        int found = 0;
        for (size_t i = 0; i < req->nheaders; i++) {
            const char *hn = req->headers[i].name;
            if (strlen(hn) != len || strncasecmp(hn, p, len) != 0)
                continue;
            if (found++ && wisp_buf_append(out, ",", 1, err) < 0)
                return -1;
            if (header_value(out, req->headers[i].value, err) < 0)
                return -1;
        }
        if (!found)
            return wisp_err_set(err, WISP_ENOTFOUND, "signed header %.*s is missing", (int)len, p);
        if (wisp_buf_append(out, "\n", 1, err) < 0)
            return -1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Compute the hex signature of req. scope_date is YYYYMMDD. */
static int compute_signature(const wisp_http_req_t *req, const char *signed_headers,
                             const char *payload_hash, const char *amz_date, const char *scope_date,
                             const char *region, const char *service, const char *secret,
                             char sig[65], wisp_err_t *err)
{
    wisp_buf_t c = WISP_BUF_INIT(CANONICAL_MAX);
    int r = wisp_buf_printf(&c, err, "%s\n", req->method);
    if (r == 0)
        r = canonical_uri(&c, req->path, err);
    if (r == 0)
        r = wisp_buf_append(&c, "\n", 1, err);
    if (r == 0)
        r = canonical_query(&c, req->query ? req->query : "", err);
    if (r == 0)
        r = wisp_buf_append(&c, "\n", 1, err);
    if (r == 0)
        r = canonical_headers(&c, req, signed_headers, err);
    if (r == 0)
        r = wisp_buf_printf(&c, err, "\n%s\n%s", signed_headers, payload_hash);
    if (r < 0) {
        wisp_buf_free(&c);
        return -1;
    }
    char creq_hash[65];
    sha256_hex(c.data, c.len, creq_hash);
    wisp_buf_free(&c);

    cleanup_free char *sts = xasprintf(ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", amz_date,
                                       scope_date, region, service, creq_hash);
    cleanup_free char *key0 = xasprintf("AWS4%s", secret);
    unsigned char k[32];
    hmac256(key0, strlen(key0), scope_date, strlen(scope_date), k);
    hmac256(k, 32, region, strlen(region), k);
    hmac256(k, 32, service, strlen(service), k);
    hmac256(k, 32, "aws4_request", 12, k);
    unsigned char mac[32];
    hmac256(k, 32, sts, strlen(sts), mac);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(key0, strlen(key0));
    wisp_hex(mac, 32, sig);
    return 0;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
            return false;
    return true;
}

/* Parse "YYYYMMDDTHHMMSSZ" into epoch seconds; -1 if malformed. */
static int parse_amz_date(const char *s, time_t *out)
{
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return -1;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)s[i]))
            return -1;
    struct tm tm = {0};
    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
    tm.tm_mon = (s[4] - '0') * 10 + (s[5] - '0') - 1;
    tm.tm_mday = (s[6] - '0') * 10 + (s[7] - '0');
    tm.tm_hour = (s[9] - '0') * 10 + (s[10] - '0');
    tm.tm_min = (s[11] - '0') * 10 + (s[12] - '0');
    tm.tm_sec = (s[13] - '0') * 10 + (s[14] - '0');
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    *out = timegm(&tm);
    return 0;
}

static void fmt_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* The three parts of an Authorization header, pointing into a copy. */
struct auth {
    char *copy;
    char *credential;
    char *signed_headers;
    char *signature;
};

static int parse_auth(const char *value, struct auth *a)
{
    size_t alen = strlen(ALGORITHM);
    if (strncmp(value, ALGORITHM, alen) != 0 || (value[alen] != ' ' && value[alen] != '\t'))
        return -1;
    a->copy = xstrdup(value + alen);
    char *save = NULL;
    for (char *tok = strtok_r(a->copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(tok, "Credential") == 0)
            a->credential = eq + 1;
        else if (strcmp(tok, "SignedHeaders") == 0)
            a->signed_headers = eq + 1;
        else if (strcmp(tok, "Signature") == 0)
            a->signature = eq + 1;
    }
    return 0;
}

static wisp_sigv4_status_t fail(wisp_sigv4_result_t *res, wisp_sigv4_status_t st, const char *type,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static wisp_sigv4_status_t fail(wisp_sigv4_result_t *res, wisp_sigv4_status_t st, const char *type,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    res->status = st;
    res->error_type = type;
    return st;
}

static bool ct_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

static bool contains_name(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchrnul(p, ';');
        if ((size_t)(end - p) == n && strncmp(p, name, n) == 0)
            return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

wisp_sigv4_status_t wisp__sigv4_verify(const wisp_http_req_t *req, const char *access_key,
                                       const char *secret_key, const char *service, time_t now,
                                       wisp_sigv4_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->error_type = "";
    const char *authz = find_header(req, "Authorization");
    if (authz == NULL || *authz == '\0')
        return fail(res, WISP_SIGV4_MISSING, "MissingAuthenticationTokenException",
                    "Missing Authentication Token");

    struct auth a = {0};
    if (parse_auth(authz, &a) < 0) {
        free(a.copy);
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "Unsupported authorization type: only " ALGORITHM " is accepted.");
    }
    cleanup_free char *copy = a.copy;
    if (a.credential == NULL || a.signed_headers == NULL || a.signature == NULL)
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "Authorization header requires 'Credential', 'Signature' and "
                    "'SignedHeaders' parameters.");

    /* Credential=AKID/YYYYMMDD/region/service/aws4_request */
    char *parts[5] = {0};
    int nparts = 0;
    char *save = NULL;
    for (char *t = strtok_r(a.credential, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (nparts == 5) {
            nparts++;
            break;
        }
        parts[nparts++] = t;
    }
    if (nparts != 5 || strlen(parts[1]) != 8 || strcmp(parts[4], "aws4_request") != 0 ||
        strlen(parts[2]) >= sizeof res->region)
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "Credential must have the form <key>/<date>/<region>/<service>/aws4_request.");
    for (const char *r = parts[2]; *r; r++)
        if (!isalnum((unsigned char)*r) && *r != '-')
            return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                        "Credential has an invalid region.");
    snprintf(res->region, sizeof res->region, "%s", parts[2]);

    if (access_key == NULL || secret_key == NULL || *access_key == '\0' ||
        !ct_equal(parts[0], access_key))
        return fail(res, WISP_SIGV4_UNKNOWN_KEY, "UnrecognizedClientException",
                    "The security token included in the request is invalid.");

    const char *amz_date = find_header(req, "X-Amz-Date");
    time_t t;
    if (amz_date == NULL)
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "Authorization header requires existence of a 'X-Amz-Date' header.");
    if (parse_amz_date(amz_date, &t) < 0)
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "X-Amz-Date must have the form YYYYMMDDThhmmssZ.");
    if (strncmp(parts[1], amz_date, 8) != 0)
        return fail(res, WISP_SIGV4_BAD_SIGNATURE, "InvalidSignatureException",
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP: '%s' != '%.8s', from '%s'.",
                    parts[1], amz_date, amz_date);
    if (strcmp(parts[3], service) != 0)
        return fail(res, WISP_SIGV4_BAD_SIGNATURE, "InvalidSignatureException",
                    "Credential should be scoped to correct service: '%s'.", service);
    char tbuf[17], lim[17], nowbuf[17];
    fmt_amz_date(t, tbuf);
    fmt_amz_date(now, nowbuf);
    if (t < now - WISP_SIGV4_MAX_SKEW_S) {
        fmt_amz_date(now - WISP_SIGV4_MAX_SKEW_S, lim);
        return fail(res, WISP_SIGV4_EXPIRED, "InvalidSignatureException",
                    "Signature expired: %s is now earlier than %s (%s - 15 min.)", tbuf, lim,
                    nowbuf);
    }
    if (t > now + WISP_SIGV4_MAX_SKEW_S) {
        fmt_amz_date(now + WISP_SIGV4_MAX_SKEW_S, lim);
        return fail(res, WISP_SIGV4_EXPIRED, "InvalidSignatureException",
                    "Signature not yet current: %s is still later than %s (%s + 15 min.)", tbuf,
                    lim, nowbuf);
    }
    if (!contains_name(a.signed_headers, "host"))
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException",
                    "'Host' must be a signed header.");

    char body_hash[65];
    sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, body_hash);
    const char *claimed = find_header(req, "X-Amz-Content-Sha256");
    if (claimed != NULL && (!is_hex64(claimed) || strcmp(claimed, body_hash) != 0))
        return fail(res, WISP_SIGV4_BAD_SIGNATURE, "InvalidSignatureException",
                    "The provided 'x-amz-content-sha256' header does not match what was "
                    "computed (only a hex SHA-256 of the body is accepted).");

    char sig[65];
    wisp_err_t err;
    if (compute_signature(req, a.signed_headers, body_hash, amz_date, parts[1], parts[2], service,
                          secret_key, sig, &err) < 0) {
        if (err.code == WISP_ENOTFOUND)
            return fail(res, WISP_SIGV4_BAD_SIGNATURE, "InvalidSignatureException", "%s",
                        msg_bad_signature);
        return fail(res, WISP_SIGV4_MALFORMED, "IncompleteSignatureException", "%s", err.msg);
    }
    if (!ct_equal(a.signature, sig))
        return fail(res, WISP_SIGV4_BAD_SIGNATURE, "InvalidSignatureException", "%s",
                    msg_bad_signature);
    res->status = WISP_SIGV4_OK;
    return WISP_SIGV4_OK;
}

int wisp__sigv4_sign(const wisp_http_req_t *req, const char *signed_headers, const char *access_key,
                     const char *secret_key, const char *region, const char *service, char *out,
                     size_t n)
{
    const char *amz_date = find_header(req, "X-Amz-Date");
    if (amz_date == NULL || strlen(amz_date) < 8)
        return -1;
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char body_hash[65], sig[65];
    sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, body_hash);
    if (compute_signature(req, signed_headers, body_hash, amz_date, date, region, service,
                          secret_key, sig, NULL) < 0)
        return -1;
    int w = snprintf(out, n,
                     ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                               "Signature=%s",
                     access_key, date, region, service, signed_headers, sig);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}
