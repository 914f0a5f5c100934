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

typedef struct wisp_api_config {
    wisp_registry_t *registry;
    wisp_store_t *store;
    wisp_invoker_t *invoker;    /* may be NULL in unit tests: invoke answers 503 */
    const char *admin_token;    /* bearer token for /v1 */
    const char *aws_access_key; /* from <data>/aws-credentials */
    const char *aws_secret_key;
    const char *region;         /* for ARNs; default "us-east-1" */
    const char *account_id;     /* for ARNs; default "000000000000" */
} wisp_api_config_t;

wisp_api_t *wisp_api_new(const wisp_api_config_t *cfg);
void wisp_api_free(wisp_api_t *api);

/* The admin listener's wisp_http_handler_cb; data is the wisp_api_t. */
void wisp_api_admin_handler(wisp_http_req_t *req, void *data);

/* Send {"error":{"code","message"}} with the status for err->code. */
void wisp_api_send_error(wisp_http_req_t *req, const wisp_err_t *err);

#endif
