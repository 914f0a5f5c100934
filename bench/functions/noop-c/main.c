/*
 * main.c - the no-op function of the benchmarks, for the provided runtime: a
 * static bootstrap built with runtimes/c/wisp_runtime.c that answers "{}".
 *
 * Started with WISP_BENCH_EXIT=1 in its environment it exits at once, before
 * touching the Runtime API: bench/spawn_baseline times that to get the cost of
 * starting this very binary without a platform around it.
 *
 * An event {"sleep_ms": N} makes it wait N milliseconds before answering, so
 * that N parallel invocations hold N environments at the same time.
 */
#include <stdlib.h>
#include <time.h>

#include "wisp_runtime.h"

static int handler(const wisp_rt_invocation_t *inv, wisp_rt_response_t *resp)
{
    size_t len;
    const char *v = wisp_rt_json_get(inv->event, inv->event_len, "sleep_ms", &len);
    if (v != NULL) {
        long ms = strtol(v, NULL, 10);
        if (ms > 0 && ms < 600000) {
            struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return wisp_rt_append(resp, "{}", 2);
}

int main(void)
{
    if (getenv("WISP_BENCH_EXIT") != NULL)
        return 0;
    return wisp_rt_main(handler);
}
