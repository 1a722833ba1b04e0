/* SPDX-License-Identifier: MIT */
/*
 * Event fan-out: events/s from one run to S subscribers (recorders), the
 * figure the original Elixir runtime is compared on (peers/elixir
 * "throughput": 1 run -> 1 recorder, and -> 8).
 *
 * Method.  A run host on the loop emits run_started, N member_delta
 * events and run_completed, in slices of SLICE events per loop turn (so
 * the loop stays responsive, as a real host's would).  Each of the S
 * recorders counts what it receives and checks seq order.  The clock runs
 * from council__run_start_host to council_run_wait returning, i.e. until
 * every recorder has received every event and been finalized.  Prints one
 * line of JSON per repetition; the median is taken by bench/run_fanout.sh.
 *
 *   bench_fanout [events=1000000] [subscribers=1] [reps=5] [spin_us=0]
 * (spin_us: the engine option of council.h; 0 = its default)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine.h"
#include "core/run.h"

#define SLICE 4096

typedef struct host {
    council_run *run;
    uv_idle_t idle;
    uint64_t left;
    int open;
    int freed;
} host;

typedef struct counter {
    uint64_t n;
    uint64_t last;
    int bad;
} counter;

static void
host_maybe_free(host *h)
{
    if (h->freed && !h->open)
        free(h);
}

static void
idle_closed(uv_handle_t *hd)
{
    host *h = hd->data;

    h->open = 0;
    host_maybe_free(h);
}

static void
on_idle(uv_idle_t *i)
{
    host *h = i->data;
    council__event_init in;
    int k;

    for (k = 0; k < SLICE && h->left > 0; k++, h->left--) {
        memset(&in, 0, sizeof(in));
        in.type = COUNCIL_EV_MEMBER_DELTA;
        in.stage = "answer";
        in.member = "analyst";
        in.text = " token";
        in.text_len = 6;
        council__run_emit(h->run, &in);
    }
    if (h->left == 0) {
        memset(&in, 0, sizeof(in));
        in.type = COUNCIL_EV_RUN_COMPLETED;
        in.data = json_pack("{s:{}}", "result");
        council__run_emit(h->run, &in);
        uv_idle_stop(&h->idle);
        uv_close((uv_handle_t *)&h->idle, idle_closed);
        council__run_exit(h->run, "done");
    }
}

static council_err
h_start(council_run *run, void *state, char *msg, size_t n)
{
    host *h = state;
    council__event_init in;

    (void)msg;
    (void)n;
    h->run = run;
    memset(&in, 0, sizeof(in));
    in.type = COUNCIL_EV_RUN_STARTED;
    council__run_emit(run, &in);
    uv_idle_init(council__run_loop(run), &h->idle);
    h->idle.data = h;
    h->open = 1;
    uv_idle_start(&h->idle, on_idle);
    return COUNCIL_OK;
}

static void
h_cancel(void *state, const char *kind)
{
    (void)state;
    (void)kind;
}

static void
h_shutdown(void *state)
{
    host *h = state;

    if (h->open && !uv_is_closing((uv_handle_t *)&h->idle))
        uv_close((uv_handle_t *)&h->idle, idle_closed);
    council__run_exit(h->run, "shutdown");
}

static void
h_free(void *state)
{
    host *h = state;

    h->freed = 1;
    host_maybe_free(h);
}

static const council__host_ops ops = {h_start, h_cancel, h_shutdown, h_free};

static int
c_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
c_event(void *state, council_event *ev)
{
    counter *c = state;
    uint64_t s = council_event_seq(ev);

    if (s != c->last + 1)
        c->bad = 1;
    c->last = s;
    c->n++;
    return 0;
}

static void
c_final(void *state, const council_outcome *o)
{
    (void)state;
    (void)o;
}

static const council_recorder_ops cops = {COUNCIL_RECORDER_OPS_VERSION, c_init,
                                          c_event, c_final, NULL};

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    uint64_t events = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int subs = argc > 2 ? atoi(argv[2]) : 1;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    int spin_us = argc > 4 ? atoi(argv[4]) : 0;
    council_recorder_spec spec[64];
    counter cnt[64];
    int r, i;

    if (subs < 1 || subs > 64)
        return 2;
    for (r = 0; r < reps; r++) {
        council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
        council_engine *eng;
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
        council_run *run;
        host *h = calloc(1, sizeof(*h));
        double t0, t1;

        eo.recorder_threads = subs < 4 ? subs : 4;
        eo.spin_us = spin_us;
        if (council_engine_open(&eo, &eng) != COUNCIL_OK)
            return 1;
        memset(cnt, 0, sizeof(cnt));
        for (i = 0; i < subs; i++) {
            spec[i].ops = &cops;
            spec[i].args = &cnt[i];
        }
        o.recorders = spec;
        o.n_recorders = (size_t)subs;
        h->left = events;
        t0 = now_s();
        if (council__run_start_host(eng, &ops, h, &o, &run, NULL) != COUNCIL_OK)
            return 1;
        council_run_wait(run, UINT64_MAX, NULL);
        t1 = now_s();
        for (i = 0; i < subs; i++)
            if (cnt[i].bad || cnt[i].n != events + 2) {
                fprintf(stderr, "subscriber %d: %llu events, order %s\n", i,
                        (unsigned long long)cnt[i].n,
                        cnt[i].bad ? "BAD" : "ok");
                return 1;
            }
        printf("{\"bench\":\"fanout\",\"events\":%llu,\"subscribers\":%d,"
               "\"seconds\":%.4f,\"events_per_s\":%.0f,"
               "\"deliveries_per_s\":%.0f}\n",
               (unsigned long long)events, subs, t1 - t0,
               (double)(events + 2) / (t1 - t0),
               (double)(events + 2) * subs / (t1 - t0));
        council_run_release(run);
        council_engine_close(eng);
    }
    return 0;
}
