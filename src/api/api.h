/*
 * api.h - the admin listener's request handling: /healthz, /metrics, the
 * native /v1 API (bearer token) and the AWS Lambda-compatible REST API
 * (/2015-03-31/... and friends, SigV4 against <data>/aws-credentials), all
 * mapped onto the same registry and invoker. Errors map from wisp_errcode_t
 * to HTTP statuses in one place.
 *
 * All calls on the event-loop thread.
 */
#ifndef WISP_API_API_H
#define WISP_API_API_H

#include "http/http.h"
#include "invoke/invoke.h"
#include "registry/registry.h"
#include "store/store.h"

typedef struct wisp_api wisp_api_t;

/* The largest request body the admin listener must let through: a Lambda
 * CreateFunction carrying a maximal zip in base64. Give it as max_body_bytes
 * of the admin server's limits; each route checks its own smaller limit
 * (6 MiB invoke payloads, 50 MiB zips, 256 KiB configurations) and answers 413. */
#define WISP_API_MAX_BODY (72u * 1024 * 1024)

typedef struct wisp_api_config {
    wisp_registry_t *registry;
    wisp_store_t *store;
    wisp_invoker_t *invoker;    /* may be NULL in unit tests: invoke answers 503 */
    const char *admin_token;    /* bearer token for /v1 */
    const char *aws_access_key; /* from <data>/aws-credentials */
    const char *aws_secret_key;
    const char *region;       /* for ARNs; default "us-east-1" */
    const char *account_id;   /* for ARNs; default "000000000000" */
    unsigned max_concurrency; /* platform-wide cap on live envs, for GetAccountSettings;
                                 0 = 1000 */
} wisp_api_config_t;

/* Create the API; the strings are copied, the services borrowed (they must
 * outlive it). Also registers the metrics wisp_build_info and
 * wisp_api_requests_total. */
wisp_api_t *wisp_api_new(const wisp_api_config_t *cfg);
/* Free the API (NULL is fine). Ends open `logs?follow=1` streams. Call it
 * after the admin HTTP server has shut down: answers to requests still
 * pending (deploys, invocations) hold no reference to the API and can still
 * arrive, but new requests must not. */
void wisp_api_free(wisp_api_t *api);

/* The admin listener's wisp_http_handler_cb; data is the wisp_api_t.
 *   GET /healthz, GET /metrics    no authentication (Prometheus scrapers have
 *                                 no token; only mount this on the admin listener)
 *   /v1/...                       Authorization: Bearer <admin token>, checked
 *                                 before routing (unknown /v1 paths say 401 too)
 *   Lambda API                    any request signed AWS4-HMAC-SHA256, or under
 *                                 /2015-03-31/, /2014-11-13/, /2016-08-19/,
 *                                 /2017-03-31/, /2017-10-31/, /2018-10-31/,
 *                                 /2019-09-25/, /2019-09-30/, /2020-04-22/,
 *                                 /2020-06-30/, /2021-10-31/: SigV4 verified */
void wisp_api_admin_handler(wisp_http_req_t *req, void *data);

/* Send {"error":{"code","message"}} with the status for err->code. */
void wisp_api_send_error(wisp_http_req_t *req, const wisp_err_t *err);

#endif
