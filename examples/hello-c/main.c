/*
 * main.c - "hello" as a function in C, for the provided runtime: a static
 * executable named bootstrap built with runtimes/c/wisp_runtime.c. It runs
 * unmodified on AWS Lambda (provided.al2023) too.
 *
 * Event: {"name": "..."} (optional). Result:
 *   {"message":"Hello, <name>!","runtime":"c","request_id":"...",
 *    "function_arn":"...","remaining_ms":N,"event_bytes":N}
 * An event with "fail": true fails the invocation with errorType "HelloError",
 * to show how errors are reported.
 */
#include <stdio.h>
#include <string.h>

#include "wisp_runtime.h"

static int handler(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp)
{
    char name[256] = "world";
    size_t len;
    const char *v = wisp_rt_json_get(inv->event, inv->event_len, "name", &len);
    if (v != NULL && wisp_rt_json_string(v, len, name, sizeof(name)) < 0)
        return wisp_rt_fail(resp, "InvalidInput", "\"name\" must be a string under %zu bytes",
                            sizeof(name));
    v = wisp_rt_json_get(inv->event, inv->event_len, "fail", &len);
    if (v != NULL && len == 4 && memcmp(v, "true", 4) == 0)
        return wisp_rt_fail(resp, "HelloError", "asked to fail by the event");

    char message[300];
    snprintf(message, sizeof(message), "Hello, %s!", name);
    if (wisp_rt_appendf(resp, "{\"message\":") < 0 ||
        wisp_rt_append_json_string(resp, message, strlen(message)) < 0 ||
        wisp_rt_appendf(resp, ",\"runtime\":\"c\",\"request_id\":\"%s\",\"function_arn\":",
                        inv->request_id) < 0 ||
        wisp_rt_append_json_string(resp, inv->function_arn, strlen(inv->function_arn)) < 0 ||
        wisp_rt_appendf(resp, ",\"remaining_ms\":%lld,\"event_bytes\":%zu}",
                        (long long)wisp_rt_remaining_ms(inv), inv->event_len) < 0)
        return wisp_rt_fail(resp, "ResponseTooLarge", "could not build the response");
    return 0;
}

int main(void)
{
    return wisp_rt_main(handler);
}
