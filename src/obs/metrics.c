/* metrics.c - the metrics registry; see metrics.h for the rules. */
#include "obs/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/util.h"

enum kind { COUNTER, GAUGE, HISTOGRAM, GAUGE_FN };

/* One labelled series of a metric. For histograms, counts has nbounds+1 cells. */
struct series {
    struct series *next;  /* the metric's series, sorted by labels (the rendering order) */
    struct series *hnext; /* the next series in the same hash table slot */
    uint32_t hash;        /* of labels */
    char *labels;         /* Prometheus label text without braces, "" if none */
    double value;         /* counter/gauge value; histogram sum */
    double *buckets;      /* histogram: cumulative counts are computed at render */
    double count;         /* histogram: number of observations */
};

struct wisp_metric {
    struct wisp_metric *next;
    const char *name;
    const char *help;
    enum kind kind;
    double *bounds; /* histogram upper bounds */
    size_t nbounds;
    struct series *series;
    /* The series by label hash: every invocation updates several series, and a
     * list walk would grow with the number of functions. */
    struct series **table;
    size_t table_size; /* a power of two, 0 before the first series */
    size_t nseries;
    wisp_metrics_collect_cb cb; /* GAUGE_FN only */
    void *cb_data;
};

static wisp_metric_t *registry;
static wisp_metric_t **registry_tail = &registry;

const double wisp_metrics_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10,    30,     60};
const size_t wisp_metrics_latency_nbuckets = WISP_ARRAY_LEN(wisp_metrics_latency_buckets);

static wisp_metric_t *find(const char *name)
{
    for (wisp_metric_t *m = registry; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static wisp_metric_t *add(const char *name, const char *help, enum kind kind)
{
    wisp_metric_t *m = find(name);
    if (m != NULL)
        return m;
    m = xcalloc(1, sizeof *m);
    m->name = name;
    m->help = help;
    m->kind = kind;
    *registry_tail = m;
    registry_tail = &m->next;
    return m;
}

wisp_metric_t *wisp_metrics_counter(const char *name, const char *help)
{
    return add(name, help, COUNTER);
}

wisp_metric_t *wisp_metrics_gauge(const char *name, const char *help)
{
    return add(name, help, GAUGE);
}

wisp_metric_t *wisp_metrics_histogram(const char *name, const char *help, const double *bounds,
                                      size_t nbounds)
{
    wisp_metric_t *m = add(name, help, HISTOGRAM);
    if (m->bounds == NULL) {
        m->bounds = xmalloc(nbounds * sizeof *bounds);
        memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
        m->nbounds = nbounds;
    }
    return m;
}

void wisp_metrics_gauge_fn(const char *name, const char *help, wisp_metrics_collect_cb cb,
                           void *data)
{
    wisp_metric_t *m = add(name, help, GAUGE_FN);
    m->cb = cb;
    m->cb_data = data;
}

static uint32_t label_hash(const char *labels)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static struct series *find_series(const wisp_metric_t *m, const char *labels, uint32_t hash)
{
    if (m->table_size == 0)
        return NULL;
    for (struct series *s = m->table[hash & (m->table_size - 1)]; s; s = s->hnext)
        if (s->hash == hash && strcmp(s->labels, labels) == 0)
            return s;
    return NULL;
}

/* Add s (not yet in m->series) to the table; keep at most one series per slot
 * on average: double and rehash the listed series when full. */
static void table_insert(wisp_metric_t *m, struct series *s)
{
    if (m->nseries + 1 > m->table_size) {
        size_t size = m->table_size ? m->table_size * 2 : 16;
        free(m->table);
        m->table = xcalloc(size, sizeof *m->table);
        m->table_size = size;
        for (struct series *o = m->series; o; o = o->next) {
            o->hnext = m->table[o->hash & (size - 1)];
            m->table[o->hash & (size - 1)] = o;
        }
    }
    struct series **slot = &m->table[s->hash & (m->table_size - 1)];
    s->hnext = *slot;
    *slot = s;
    m->nseries++;
}

static struct series *get_series(wisp_metric_t *m, const char *labels)
{
    if (labels == NULL)
        labels = "";
    uint32_t hash = label_hash(labels);
    struct series *s = find_series(m, labels, hash);
    if (s != NULL)
        return s;
    s = xcalloc(1, sizeof *s);
    s->hash = hash;
    s->labels = xstrdup(labels);
    if (m->kind == HISTOGRAM)
        s->buckets = xcalloc(m->nbounds + 1, sizeof(double));
    table_insert(m, s);
    /* Keep series sorted by labels so the output is stable. */
    struct series **pp = &m->series;
    while (*pp && strcmp((*pp)->labels, labels) < 0)
        pp = &(*pp)->next;
    s->next = *pp;
    *pp = s;
    return s;
}

/* Whether labels (comma-separated pairs) has the pair label. Escaped values
 * hold no bare quote, so a pair cannot be matched inside another's value. */
static bool has_label(const char *labels, const char *label, size_t n)
{
    for (const char *p = labels; (p = strstr(p, label)) != NULL; p++)
        if ((p == labels || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

static void free_series(struct series *s)
{
    free(s->labels);
    free(s->buckets);
    free(s);
}

void wisp_metrics_forget(const char *label)
{
    size_t n = strlen(label);
    for (wisp_metric_t *m = registry; m; m = m->next) {
        for (struct series **pp = &m->series; *pp;) {
            struct series *s = *pp;
            if (!has_label(s->labels, label, n)) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            struct series **hp = &m->table[s->hash & (m->table_size - 1)];
            while (*hp != s)
                hp = &(*hp)->hnext;
            *hp = s->hnext;
            m->nseries--;
            free_series(s);
        }
    }
}

void wisp_metrics_add(wisp_metric_t *m, const char *labels, double delta)
{
    get_series(m, labels)->value += delta;
}

void wisp_metrics_set(wisp_metric_t *m, const char *labels, double value)
{
    get_series(m, labels)->value = value;
}

void wisp_metrics_observe(wisp_metric_t *m, const char *labels, double value)
{
    struct series *s = get_series(m, labels);
    size_t i = 0;
    while (i < m->nbounds && value > m->bounds[i])
        i++;
    s->buckets[i] += 1;
    s->count += 1;
    s->value += value;
}

double wisp_metrics_value(wisp_metric_t *m, const char *labels)
{
    if (labels == NULL)
        labels = "";
    const struct series *s = find_series(m, labels, label_hash(labels));
    if (s == NULL)
        return 0;
    return m->kind == HISTOGRAM ? s->count : s->value;
}

void wisp_metrics_label_escape(const char *value, char *out, size_t n)
{
    size_t j = 0;
    for (const char *p = value; *p && j + 3 < n; p++) {
        if (*p == '\\' || *p == '"') {
            out[j++] = '\\';
            out[j++] = *p;
        } else if (*p == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else {
            out[j++] = *p;
        }
    }
    out[j] = '\0';
}

static void fmt_num(wisp_buf_t *out, double v)
{
    if (isinf(v))
        wisp_buf_addf(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        wisp_buf_addf(out, "%lld", (long long)v);
    else
        wisp_buf_addf(out, "%.9g", v);
}

static void render_histogram(wisp_buf_t *out, wisp_metric_t *m, struct series *s)
{
    double cum = 0;
    const char *sep = s->labels[0] ? "," : "";
    for (size_t i = 0; i <= m->nbounds; i++) {
        cum += s->buckets[i];
        wisp_buf_addf(out, "%s_bucket{%s%sle=\"", m->name, s->labels, sep);
        fmt_num(out, i < m->nbounds ? m->bounds[i] : INFINITY);
        wisp_buf_addf(out, "\"} ");
        fmt_num(out, cum);
        wisp_buf_add(out, "\n", 1);
    }
    const char *lo = s->labels[0] ? "{" : "", *lc = s->labels[0] ? "}" : "";
    wisp_buf_addf(out, "%s_sum%s%s%s ", m->name, lo, s->labels, lc);
    fmt_num(out, s->value);
    wisp_buf_addf(out, "\n%s_count%s%s%s ", m->name, lo, s->labels, lc);
    fmt_num(out, s->count);
    wisp_buf_add(out, "\n", 1);
}

void wisp_metrics_render(wisp_buf_t *out)
{
    static const char *types[] = {"counter", "gauge", "histogram", "gauge"};
    for (wisp_metric_t *m = registry; m; m = m->next) {
        wisp_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                      types[m->kind]);
        if (m->kind == GAUGE_FN) {
            m->cb(out, m->name, m->cb_data);
            continue;
        }
        for (struct series *s = m->series; s; s = s->next) {
            if (m->kind == HISTOGRAM) {
                render_histogram(out, m, s);
                continue;
            }
            if (s->labels[0])
                wisp_buf_addf(out, "%s{%s} ", m->name, s->labels);
            else
                wisp_buf_addf(out, "%s ", m->name);
            fmt_num(out, s->value);
            wisp_buf_add(out, "\n", 1);
        }
    }
}

void wisp_metrics_reset(void)
{
    while (registry) {
        wisp_metric_t *m = registry;
        registry = m->next;
        while (m->series) {
            struct series *s = m->series;
            m->series = s->next;
            free_series(s);
        }
        free(m->table);
        free(m->bounds);
        free(m);
    }
    registry_tail = &registry;
}
