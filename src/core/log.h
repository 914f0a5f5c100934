/*
 * log.h - structured JSON log lines on stderr.
 *
 * One line per event: {"ts":"...","level":"info","component":"http","msg":"...", ...fields}.
 * Safe to call from any thread (each line is one write(2)). The level
 * threshold comes from wisp_log_set_level or $WISP_LOG_LEVEL.
 */
#ifndef WISP_CORE_LOG_H
#define WISP_CORE_LOG_H

#include <jansson.h>

typedef enum wisp_log_level {
    WISP_LOG_DEBUG,
    WISP_LOG_INFO,
    WISP_LOG_WARN,
    WISP_LOG_ERROR,
} wisp_log_level_t;

void wisp_log_set_level(wisp_log_level_t level);
/* Parse "debug"/"info"/"warn"/"error"; returns -1 if unknown. */
int wisp_log_parse_level(const char *s);

/* Log a formatted message. */
void wisp_log(wisp_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Log msg with extra fields from a JSON object, which the call takes (steals). */
void wisp_log_fields(wisp_log_level_t level, const char *component, const char *msg,
                     json_t *fields);

/* Step timestamps for latency analysis (bench/steps.py): with WISP_STEPS=1 in
 * the daemon's environment, each call writes "step NAME MICROSECONDS\n"
 * (CLOCK_MONOTONIC, one write(2)) to stderr, from the daemon and its helper
 * processes alike; otherwise it costs a branch. */
void wisp_step(const char *name);

#define wisp_debug(c, ...) wisp_log(WISP_LOG_DEBUG, c, __VA_ARGS__)
#define wisp_info(c, ...) wisp_log(WISP_LOG_INFO, c, __VA_ARGS__)
#define wisp_warn(c, ...) wisp_log(WISP_LOG_WARN, c, __VA_ARGS__)
#define wisp_error(c, ...) wisp_log(WISP_LOG_ERROR, c, __VA_ARGS__)

#endif
