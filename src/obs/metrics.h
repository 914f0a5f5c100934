/*
 * metrics.h - a small process-wide metrics registry rendered in the
 * Prometheus text exposition format (GET /metrics on the admin listener).
 *
 * Every subsystem registers its metrics once at start-up and updates them
 * from the event-loop thread. A series is identified by its metric and a
 * label string already in Prometheus form, e.g. `listener="admin",code="200"`
 * (use wisp_metrics_label_escape for values that come from users). Gauges can
 * also be computed at scrape time by a callback.
 *
 * Thread safety: all calls are made from the event-loop thread only.
 */
#ifndef WISP_OBS_METRICS_H
#define WISP_OBS_METRICS_H

#include <stddef.h>

#include "core/buf.h"

typedef struct wisp_metric wisp_metric_t;

/* Register (or find, if the name exists) a metric. Names and help are static strings. */
wisp_metric_t *wisp_metrics_counter(const char *name, const char *help);
wisp_metric_t *wisp_metrics_gauge(const char *name, const char *help);
/* Histogram with the given upper bounds (ascending, in the metric's unit; +Inf added). */
wisp_metric_t *wisp_metrics_histogram(const char *name, const char *help, const double *bounds,
                                      size_t nbounds);

/* A gauge whose series are produced at scrape time: cb appends lines of the
 * form `name{labels} value\n` (or `name value\n`) to out. */
typedef void (*wisp_metrics_collect_cb)(wisp_buf_t *out, const char *name, void *data);
void wisp_metrics_gauge_fn(const char *name, const char *help, wisp_metrics_collect_cb cb,
                           void *data);

/* labels may be NULL or "" for the series without labels. */
void wisp_metrics_add(wisp_metric_t *m, const char *labels, double delta);
void wisp_metrics_set(wisp_metric_t *m, const char *labels, double value);
void wisp_metrics_observe(wisp_metric_t *m, const char *labels, double value);
/* Current value of a counter or gauge series (0 if absent); for tests. */
double wisp_metrics_value(wisp_metric_t *m, const char *labels);

/* Remove, from every metric, the series that carry the label `label` (one
 * `name="value"` pair, value escaped as wisp_metrics_label_escape does):
 * what a deleted function leaves behind. */
void wisp_metrics_forget(const char *label);

/* Escape a label value (backslash, quote, newline) into out (size n). */
void wisp_metrics_label_escape(const char *value, char *out, size_t n);

/* Append the whole registry in text format 0.0.4. */
void wisp_metrics_render(wisp_buf_t *out);

/* Drop every metric (tests and shutdown). */
void wisp_metrics_reset(void);

/* Common bucket sets, in seconds. */
extern const double wisp_metrics_latency_buckets[];
extern const size_t wisp_metrics_latency_nbuckets;

#endif
