/*
 * store_batch.c - what the log writer's store work costs per invocation.
 *
 * A warm no-op invocation leaves three platform lines (START, END, REPORT)
 * and one invocation record, which the log writer thread stores in one
 * transaction per batch (src/invoke/logs.c). This tool replays such batches
 * against a real SQLite file through the store API, as the writer does, and
 * prints the thread's CPU time per invocation for each part: the lines, the
 * records (the writer's encoder + wisp_store_invocation_put_rows), and the
 * commit. In the same run, alternated with it, it stores the same records the
 * way the writer did before 2026-11-27 (a jansson document per record through
 * wisp_store_invocation_put), as the ratio's baseline.
 *
 *   store_batch [--batches N] [--per N] [--dir DIR]
 *
 * Defaults: 40 batches of 1,300 invocations (13k invocations/s in 100 ms
 * batches, the warm 64-connection rate on the 2-vCPU guest), so that the
 * later batches also trim the function's log at its default cap (100,000
 * lines). Linked with the daemon's objects by bench/run.sh.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "invoke/internal.h"
#include "store/store.h"

#define LOG_CAP 100000
#define ROUNDS 3

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One simulated invocation's three platform lines (its record is beside). */
struct sim {
    char lines[3][192];
};

static void fill(struct sim *s, invrec_t *rec, int64_t ts)
{
    *rec = (invrec_t){.start_ms = ts,
                      .queue_ms = 0.0125,
                      .duration_ms = 0.3123,
                      .billed_ms = 1,
                      .max_memory_mb = 2,
                      .outcome = "success",
                      .function = (char *)"bench-fn"};
    wisp_uuid7(rec->id);
    snprintf(rec->revision, sizeof rec->revision, "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000");
    snprintf(rec->trigger, sizeof rec->trigger, "http");
    snprintf(s->lines[0], sizeof s->lines[0], "START RequestId: %s Version: $LATEST", rec->id);
    snprintf(s->lines[1], sizeof s->lines[1], "END RequestId: %s", rec->id);
    snprintf(s->lines[2], sizeof s->lines[2],
             "REPORT RequestId: %s\tDuration: 0.31 ms\tBilled Duration: 1 ms\tMemory Size: 128 "
             "MB\tMax Memory Used: 2 MB",
             rec->id);
}

/* The records as the writer stores them now. */
static int put_encoded(wisp_store_t *st, const invrec_t *recs, int n, wisp_err_t *err)
{
    return wisp__invrecs_store(st, recs, (size_t)n, err);
}

/* The records as the writer stored them before: a jansson document each. */
static int put_jansson(wisp_store_t *st, const invrec_t *recs, int n, wisp_err_t *err)
{
    for (int i = 0; i < n; i++) {
        const invrec_t *r = &recs[i];
        json_t *doc =
            json_pack("{s:s,s:s,s:s,s:s,s:I,s:f,s:f,s:f,s:I,s:I,s:b,s:s,s:s?}", "id", r->id,
                      "function", r->function, "revision", r->revision, "trigger", r->trigger,
                      "start_ms", (json_int_t)r->start_ms, "queue_ms", r->queue_ms, "init_ms",
                      r->init_ms, "duration_ms", r->duration_ms, "billed_ms",
                      (json_int_t)r->billed_ms, "max_memory_mb", (json_int_t)r->max_memory_mb,
                      "cold", r->cold, "outcome", r->outcome, "error_type", r->error_type);
        int rc = doc ? wisp_store_invocation_put(st, doc, err) : -1;
        json_decref(doc);
        if (rc < 0)
            return -1;
    }
    return 0;
}

struct tally {
    double lines, records, commit;
};

static double total(const struct tally *t)
{
    return t->lines + t->records + t->commit;
}

/* Store `batches` batches of `per` invocations in a fresh database; the
 * records through put(). */
static int run(const char *dir, const char *tag, int batches, int per,
               int (*put)(wisp_store_t *, const invrec_t *, int, wisp_err_t *), struct tally *t)
{
    char uri[512];
    snprintf(uri, sizeof uri, "sqlite:%s/%s.db", dir, tag);
    wisp_err_t err;
    wisp_store_t *st = wisp_store_open(uri, &err);
    if (st == NULL) {
        fprintf(stderr, "store_batch: %s\n", err.msg);
        return -1;
    }
    struct sim *sims = xcalloc((size_t)per, sizeof *sims);
    invrec_t *recs_of = xcalloc((size_t)per, sizeof *recs_of);
    wisp_log_rec_t *recs = xcalloc((size_t)per * 3, sizeof *recs);
    *t = (struct tally){0};
    int rc = 0;
    for (int b = 0; b < batches && rc == 0; b++) {
        int64_t ts = wisp_now_ms();
        for (int i = 0; i < per; i++) {
            fill(&sims[i], &recs_of[i], ts);
            for (int k = 0; k < 3; k++)
                recs[3 * i + k] =
                    (wisp_log_rec_t){"bench-fn", recs_of[i].id, ts, "platform", sims[i].lines[k]};
        }
        double t0 = cpu_s();
        rc = wisp_store_begin(st, &err);
        if (rc == 0)
            rc = wisp_store_log_append(st, recs, (size_t)per * 3, LOG_CAP, &err);
        double t1 = cpu_s();
        if (rc == 0)
            rc = put(st, recs_of, per, &err);
        double t2 = cpu_s();
        if (rc == 0)
            rc = wisp_store_commit(st, &err);
        double t3 = cpu_s();
        t->lines += t1 - t0;
        t->records += t2 - t1;
        t->commit += t3 - t2;
    }
    if (rc != 0)
        fprintf(stderr, "store_batch: %s: %s\n", tag, err.msg);
    double n = (double)batches * per / 1e6; /* per invocation, in µs */
    t->lines /= n;
    t->records /= n;
    t->commit /= n;
    free(recs);
    free(recs_of);
    free(sims);
    wisp_store_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    int batches = 40, per = 1300;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
            batches = atoi(argv[++i]);
        else if (strcmp(argv[i], "--per") == 0 && i + 1 < argc)
            per = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: store_batch [--batches N] [--per N] [--dir DIR]\n");
            return 2;
        }
    }
    if (batches < 1 || per < 1) {
        fprintf(stderr, "store_batch: --batches and --per must be positive\n");
        return 2;
    }
    char tmp[] = "/tmp/wisp-store-batch-XXXXXX";
    if (dir == NULL && (dir = mkdtemp(tmp)) == NULL) {
        perror("store_batch: mkdtemp");
        return 1;
    }
    /* Alternated rounds (the first run on a machine also pays for new page
     * cache memory); each variant's best round is reported. */
    struct tally now = {1e9, 0, 0}, before = {1e9, 0, 0};
    int rc = 0;
    for (int round = 0; round < ROUNDS && rc == 0; round++) {
        struct tally t;
        char tag[32];
        snprintf(tag, sizeof tag, "now-%d", round);
        if ((rc = run(dir, tag, batches, per, put_encoded, &t)) == 0 && total(&t) < total(&now))
            now = t;
        snprintf(tag, sizeof tag, "before-%d", round);
        if (rc == 0 && (rc = run(dir, tag, batches, per, put_jansson, &t)) == 0 &&
            total(&t) < total(&before))
            before = t;
    }
    if (dir == tmp && wisp_rm_rf(tmp, NULL) < 0)
        fprintf(stderr, "store_batch: cannot remove %s\n", tmp);
    if (rc != 0)
        return 1;
    printf("# log writer store work, %d batches of %d invocations (3 lines + 1 record each), "
           "thread CPU per invocation, best of %d alternated rounds\n",
           batches, per, ROUNDS);
    printf("| part | writer now | records as before (jansson, one put each) | ratio |\n");
    printf("|---|---|---|---|\n");
    printf("| 3 log lines | %.1f µs | %.1f µs | |\n", now.lines, before.lines);
    printf("| 1 record | %.1f µs | %.1f µs | %.2f× |\n", now.records, before.records,
           now.records / before.records);
    printf("| commit | %.1f µs | %.1f µs | |\n", now.commit, before.commit);
    double a = total(&now), b = total(&before);
    printf("| total | %.1f µs | %.1f µs | %.2f× |\n", a, b, a / b);
    return 0;
}
