/*
 * sigv4.h - verification of AWS Signature Version 4 on requests to the
 * Lambda-compatible API (internal to src/api; tests include it).
 *
 * The verifier rebuilds the canonical request from what arrived (method, the
 * raw path with each segment percent-encoded once more, the sorted canonical
 * query, the headers named in SignedHeaders, the payload hash), derives the
 * signing key from the secret and the credential scope, and compares the
 * signature in constant time. Only the Authorization header form is
 * supported (no presigned query strings). The payload must be covered: an
 * X-Amz-Content-Sha256 header, if present, must be the hex SHA-256 of the body
 * (UNSIGNED-PAYLOAD and streaming forms are refused).
 *
 * Pure functions of their arguments: safe from any thread.
 */
#ifndef WISP_API_SIGV4_H
#define WISP_API_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "http/http.h"

/* Requests may be this far from the verifier's clock (AWS's 15 minutes). */
#define WISP_SIGV4_MAX_SKEW_S (15 * 60)

typedef enum wisp_sigv4_status {
    WISP_SIGV4_OK,
    WISP_SIGV4_MISSING,       /* no AWS4-HMAC-SHA256 Authorization header */
    WISP_SIGV4_MALFORMED,     /* the header or X-Amz-Date cannot be parsed */
    WISP_SIGV4_UNKNOWN_KEY,   /* the access key id is not ours */
    WISP_SIGV4_BAD_SIGNATURE, /* the signature (or the payload hash) does not match */
    WISP_SIGV4_EXPIRED,       /* X-Amz-Date is more than WISP_SIGV4_MAX_SKEW_S away from now */
} wisp_sigv4_status_t;

/* Outcome of a verification: the status, the AWS error name and message to
 * answer with (both "" when OK), and the region of the credential scope. */
typedef struct wisp_sigv4_result {
    wisp_sigv4_status_t status;
    const char *error_type; /* "InvalidSignatureException"...; static */
    char message[256];
    char region[32];
} wisp_sigv4_result_t;

/* Verify req's signature against one access key and its secret for the
 * given service ("lambda") at time now (seconds since the epoch; a parameter
 * so that tests can replay recorded requests). Any region in the credential
 * scope is accepted (the signature covers it). Returns res->status. */
wisp_sigv4_status_t wisp__sigv4_verify(const wisp_http_req_t *req, const char *access_key,
                                       const char *secret_key, const char *service, time_t now,
                                       wisp_sigv4_result_t *res);

/* Sign a request the way an AWS SDK does, for tests and tools: given the
 * request's method, raw path, raw query, its headers (which must include Host
 * and X-Amz-Date), the names to sign (lower-case, ';'-separated, sorted) and
 * the body, write the value of the Authorization header into out (size n).
 * Returns 0, or -1 if out is too small or a signed header is missing. */
int wisp__sigv4_sign(const wisp_http_req_t *req, const char *signed_headers, const char *access_key,
                     const char *secret_key, const char *region, const char *service, char *out,
                     size_t n);

#endif
