/* SPDX-License-Identifier: MIT */
/*
 * Reads from the run store through handles, as the HTTP server does for
 * GET /v1/runs/{id} and for resuming a finished run's event stream:
 * council_store_run and council_store_events per second, with T threads,
 * one handle each.  The store is made first: R runs of a four-member rank
 * council recorded by the sqlite recorder against the in-process mock LLM
 * (real records, about 400 events each), in a temporary directory.
 *
 *   bench_store [threads=1] [seconds=3] [runs=20]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "council.h"

static const char yaml[] =
    "name: bench\n"
    "strategy: rank\n"
    "providers:\n"
    "  mock: { kind: openai, base_url: %s }\n"
    "members:\n"
    "  - { name: alpha, provider: mock, model: mock-a }\n"
    "  - { name: beta,  provider: mock, model: mock-b }\n"
    "  - { name: gamma, provider: mock, model: mock-c }\n"
    "  - { name: delta, provider: mock, model: mock-d }\n"
    "chairman: { provider: mock, model: mock-chair }\n"
    "limits: { member_timeout: 30s, deadline: 120s, quorum: 3 }\n";

static char db[512];
static char ids[64][40];
static int n_ids;
static double seconds = 3;

typedef struct worker {
    long records, events, bytes, passes;
    double record_s, events_s;
} worker;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
count(council_event *ev, void *ud)
{
    /* The server sends each event's JSON: make sure it exists. */
    *(long *)ud += council_event_json(ev) != NULL;
    return 0;
}

static void *
work(void *arg)
{
    worker *w = arg;
    council_store *s = NULL;
    council_diag diag;
    double t0, end;
    long i;

    if (council_store_open(db, COUNCIL_STORE_READONLY, &s, &diag) !=
        COUNCIL_OK) {
        fprintf(stderr, "open: %s\n", diag.msg);
        exit(1);
    }
    t0 = now_s();
    end = t0 + seconds / 2;
    for (i = 0; now_s() < end; i++) {
        char *json = NULL;

        if (council_store_run(s, ids[i % n_ids], &json, &diag) != COUNCIL_OK) {
            fprintf(stderr, "run: %s\n", diag.msg);
            exit(1);
        }
        w->bytes += (long)strlen(json);
        council_free(json);
        w->records++;
    }
    w->record_s = now_s() - t0;
    t0 = now_s();
    end = t0 + seconds / 2;
    for (i = 0; now_s() < end; i++) {
        long n = 0;

        if (council_store_events(s, ids[i % n_ids], 0, count, &n, &diag) !=
            COUNCIL_OK) {
            fprintf(stderr, "events: %s\n", diag.msg);
            exit(1);
        }
        w->events += n;
        w->passes++;
    }
    w->events_s = now_s() - t0;
    council_store_close(s);
    return NULL;
}

int
main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int runs = argc > 3 ? atoi(argv[3]) : 20;
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_engine *eng = NULL;
    council_def *def = NULL;
    council_diag diag;
    char text[2048], dir[] = "/tmp/bench_store.XXXXXX";
    pthread_t th[64];
    worker w[64];
    long records = 0, events = 0, bytes = 0, passes = 0;
    double rs = 0, es = 0;
    int i;

    if (argc > 2)
        seconds = atof(argv[2]);
    if (threads < 1 || threads > 64 || runs < 1 || runs > 64 || seconds <= 0) {
        fprintf(stderr, "usage: bench_store [threads 1..64] [seconds] "
                        "[runs 1..64]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(db, sizeof(db), "%s/runs.db", dir);
    mo.seed = 1;
    if (council_mockllm_open(&mo, &m, &diag) != COUNCIL_OK ||
        council_engine_open(NULL, &eng) != COUNCIL_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return 1;
    }
    snprintf(text, sizeof(text), yaml, council_mockllm_base_url(m));
    if (council_def_load_string(text, strlen(text), "bench", &def, &diag) !=
        COUNCIL_OK) {
        fprintf(stderr, "council: %s\n", diag.msg);
        return 1;
    }
    for (i = 0; i < runs; i++) {
        council_recorder_spec rec = {council_recorder_sqlite(), db};
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
        council_run *run = NULL;

        snprintf(ids[i], sizeof(ids[i]), "bench-%d", i);
        o.recorders = &rec;
        o.n_recorders = 1;
        o.run_id = ids[i];
        if (council_run_start(eng, def, "Why is the sky blue?", &o, &run,
                              &diag) != COUNCIL_OK ||
            council_run_wait(run, 60000, NULL) != COUNCIL_OK) {
            fprintf(stderr, "run: %s\n", diag.msg);
            return 1;
        }
        council_run_release(run);
    }
    n_ids = runs;
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);

    memset(w, 0, sizeof(w));
    for (i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, work, &w[i]);
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        records += w[i].records;
        events += w[i].events;
        bytes += w[i].bytes;
        passes += w[i].passes;
        rs += w[i].records / w[i].record_s;
        es += w[i].events / w[i].events_s;
    }
    printf("{\"bench\":\"store\",\"threads\":%d,\"runs\":%d,"
           "\"record_per_s\":%.0f,\"record_bytes\":%ld,"
           "\"events_per_s\":%.0f,\"events_per_run\":%ld}\n",
           threads, runs, rs, records > 0 ? bytes / records : 0, es,
           passes > 0 ? events / passes : 0);
    snprintf(text, sizeof(text), "%s/runs.db", dir);
    unlink(text);
    snprintf(text, sizeof(text), "%s/runs.db-wal", dir);
    unlink(text);
    snprintf(text, sizeof(text), "%s/runs.db-shm", dir);
    unlink(text);
    rmdir(dir);
    return 0;
}
