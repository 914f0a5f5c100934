/* log.c - structured JSON log lines; see log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

static int threshold = -1;
static const char *names[] = {"debug", "info", "warn", "error"};

void wisp_log_set_level(wisp_log_level_t level)
{
    threshold = (int)level;
}

int wisp_log_parse_level(const char *s)
{
    for (size_t i = 0; i < WISP_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

static int current_threshold(void)
{
    if (threshold < 0) {
        const char *e = getenv("WISP_LOG_LEVEL");
        int l = e ? wisp_log_parse_level(e) : -1;
        threshold = l >= 0 ? l : WISP_LOG_INFO;
    }
    return threshold;
}

void wisp_step(const char *name)
{
    static int on = -1; /* read once; forked helpers inherit it */
    if (on < 0) {
        const char *e = getenv("WISP_STEPS");
        on = e != NULL && strcmp(e, "1") == 0;
    }
    if (!on)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "step %s %llu\n", name,
                     (unsigned long long)(wisp_mono_ns() / 1000));
    if (n > 0 && (size_t)n < sizeof line) {
        ssize_t w WISP_UNUSED = write(STDERR_FILENO, line, (size_t)n);
    }
}

void wisp_log_fields(wisp_log_level_t level, const char *component, const char *msg, json_t *fields)
{
    if ((int)level < current_threshold()) {
        json_decref(fields);
        return;
    }
    char ts[32];
    wisp_time_rfc3339(wisp_now_ms(), ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", names[level], "component",
                          component, "msg", msg);
    if (fields != NULL) {
        json_object_update_missing(o, fields);
        json_decref(fields);
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL)
        return;
    size_t n = strlen(line);
    line = xrealloc(line, n + 2);
    line[n] = '\n';
    line[n + 1] = '\0';
    ssize_t w WISP_UNUSED = write(STDERR_FILENO, line, n + 1);
    free(line);
}

void wisp_log(wisp_log_level_t level, const char *component, const char *fmt, ...)
{
    if ((int)level < current_threshold())
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wisp_log_fields(level, component, msg, NULL);
}
