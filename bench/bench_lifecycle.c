/* SPDX-License-Identifier: MIT */
/*
 * The run lifecycle itself, on the Elixir peer's own scenarios
 * (../shared/peers/elixir, bench.exs "short" and "memory"), with no model
 * and no provider: a scripted host (src/core/script_host.h) plays the
 * events.
 *
 *   short N: N runs one after another, each 10 events (run_started, 8
 *     member_delta, run_completed) to one counting recorder, then its
 *     finalize; a run is over when council_run_wait returns.  Reported:
 *     runs/s (the peer: start/3, 10 events, RecorderProcess finalize).
 *   memory N: N runs started and left idle (run_started emitted, the host
 *     waiting for a cancel), each with one recorder; VmRSS before and
 *     after, per run (the peer: two processes and a registry entry per
 *     run).  Then every run is cancelled and must end cancelled.
 *
 *   bench_lifecycle short [N] | memory [N] [--loops L] [--spin-us U]
 * (--spin-us: the engine's spin_us, council.h; default the engine's)
 * Prints one JSON line.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "council.h"
#include "core/script_host.h"

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
status_kib(const char *key)
{
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static atomic_ulong events, finals;

static int
r_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
r_event(void *state, council_event *ev)
{
    (void)state;
    (void)ev;
    atomic_fetch_add_explicit(&events, 1, memory_order_relaxed);
    return 0;
}

static void
r_final(void *state, const council_outcome *o)
{
    (void)state;
    (void)o;
    atomic_fetch_add_explicit(&finals, 1, memory_order_relaxed);
}

static const council_recorder_ops counting = {COUNCIL_RECORDER_OPS_VERSION,
                                              r_init, r_event, r_final, NULL};

#define DELTA                                                                  \
    {                                                                          \
        COUNCIL_EV_MEMBER_DELTA, "answer", "a", "word ", NULL, 0               \
    }
static const council__script_step ten[] = {
    {COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, "{\"council\":\"bench\"}", 0},
    DELTA,
    DELTA,
    DELTA,
    DELTA,
    DELTA,
    DELTA,
    DELTA,
    DELTA,
    {COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL,
     "{\"result\":{\"answer\":\"ok\"}}", 0}};

static int
short_runs(council_engine *eng, long n)
{
    council__script s = {ten, 10, COUNCIL__SCRIPT_EXIT};
    council_recorder_spec rec = {&counting, NULL};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    double t0, t1;
    long i, bad = 0;

    /* The steps' data parsed once and shared by every run (script_host.h),
     * as the peer's RunServer sends terms it already has: the bench
     * measures the lifecycle, not making JSON. */
    json_t *data[10] = {NULL};

    for (i = 0; i < 10; i++)
        if (ten[i].data_json != NULL &&
            (data[i] = json_loads(ten[i].data_json, 0, NULL)) == NULL)
            return 1;
    s.data = data;
    s.emit_in_start = 1;
    ro.recorders = &rec;
    ro.n_recorders = 1;
    /* Warm up: first allocations, the pool's threads. */
    for (i = 0; i < 1000 && i < n; i++) {
        council_run *run;
        if (council__run_start_script(eng, &s, &ro, &run, NULL) != COUNCIL_OK)
            return 1;
        council_run_wait(run, UINT64_MAX, NULL);
        council_run_release(run);
    }
    atomic_store(&events, 0);
    t0 = now_s();
    for (i = 0; i < n; i++) {
        council_run *run;
        const council_outcome *o;
        if (council__run_start_script(eng, &s, &ro, &run, NULL) != COUNCIL_OK)
            return 1;
        council_run_wait(run, UINT64_MAX, &o);
        if (council_outcome_kind_of(o) != COUNCIL_OUTCOME_OK)
            bad++;
        council_run_release(run);
    }
    t1 = now_s();
    printf(
        "{\"bench\":\"lifecycle_short\",\"runs\":%ld,\"events_per_run\":%.1f,"
        "\"wall_s\":%.3f,\"runs_per_s\":%.0f,\"us_per_run\":%.2f,"
        "\"bad\":%ld}\n",
        n, (double)atomic_load(&events) / (double)n, t1 - t0,
        (double)n / (t1 - t0), (t1 - t0) / (double)n * 1e6, bad);
    for (i = 0; i < 10; i++)
        json_decref(data[i]);
    return bad != 0;
}

static int
idle_runs(council_engine *eng, long n)
{
    static const council__script_step one[] = {{COUNCIL_EV_RUN_STARTED, NULL,
                                                NULL, NULL,
                                                "{\"council\":\"bench\"}", 0}};
    council__script s = {one, 1, COUNCIL__SCRIPT_HANG};
    council_recorder_spec rec = {&counting, NULL};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run **runs = calloc((size_t)n, sizeof(*runs));
    long before, after, i, bad = 0;
    double t0;

    if (runs == NULL)
        return 1;
    s.emit_in_start = 1;
    ro.recorders = &rec;
    ro.n_recorders = 1;
    before = status_kib("VmRSS");
    t0 = now_s();
    for (i = 0; i < n; i++)
        if (council__run_start_script(eng, &s, &ro, &runs[i], NULL) !=
            COUNCIL_OK)
            return 1;
    /* Every run_started delivered: the runs are idle. */
    while (atomic_load(&events) < (unsigned long)n)
        ;
    after = status_kib("VmRSS");
    printf("{\"bench\":\"lifecycle_memory\",\"runs\":%ld,\"start_s\":%.3f,"
           "\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
           "\"kib_per_idle_run\":%.2f",
           n, now_s() - t0, before, after,
           (double)(after - before) / (double)n);
    for (i = 0; i < n; i++) {
        const council_outcome *o;
        council_run_cancel(runs[i]);
        council_run_wait(runs[i], UINT64_MAX, &o);
        if (council_outcome_kind_of(o) != COUNCIL_OUTCOME_CANCELLED)
            bad++;
        council_run_release(runs[i]);
    }
    printf(",\"bad\":%ld}\n", bad);
    free(runs);
    return bad != 0;
}

int
main(int argc, char **argv)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *eng;
    const char *mode = argc > 1 ? argv[1] : "short";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
    int rc, i;

    for (i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--loops") == 0)
            eo.loop_threads = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--spin-us") == 0)
            eo.spin_us = (int)strtol(argv[i + 1], NULL, 10);
    }
    if (n < 1 || (strcmp(mode, "short") != 0 && strcmp(mode, "memory") != 0)) {
        fprintf(stderr, "usage: bench_lifecycle short [N] | memory [N] "
                        "[--loops L] [--spin-us U]\n");
        return 2;
    }
    if (council_engine_open(&eo, &eng) != COUNCIL_OK)
        return 1;
    rc = strcmp(mode, "short") == 0 ? short_runs(eng, n) : idle_runs(eng, n);
    council_engine_close(eng);
    return rc;
}
