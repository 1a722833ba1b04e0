/* SPDX-License-Identifier: MIT */
/*
 * Shared fixtures of the strategy tests (test_debate.c, test_vote.c): a
 * recorder that keeps every event as parsed JSON and counts finalizes, a
 * recorder that cancels its run on a chosen event, the in-process mock
 * LLM, and a council file built from parts.  Static functions: each test
 * file includes this once (those a test may not need are marked unused).
 */
#ifndef STRATEGY_FIXTURE_H
#define STRATEGY_FIXTURE_H

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "council.h"
#include "runner.h"

typedef struct keep {
    pthread_mutex_t mu;
    json_t *events; /* array */
    int finals;
    council_engine *eng;   /* set to cancel on an event */
    const char *cancel_on; /* event type */
    int cancel_round;      /* and this round (0: any) */
    int fired;
} keep;

static int
k_init(const char *id, void *args, void **state, char *why, size_t n)
{
    keep *k = args;

    (void)id;
    (void)why;
    (void)n;
    pthread_mutex_init(&k->mu, NULL);
    k->events = json_array();
    *state = k;
    return 0;
}

static int
k_event(void *state, council_event *ev)
{
    keep *k = state;
    json_t *j = json_loads(council_event_json(ev), 0, NULL);
    int cancel = 0;

    ASSERT_NOT_NULL(j);
    pthread_mutex_lock(&k->mu);
    json_array_append_new(k->events, j);
    if (k->cancel_on != NULL && !k->fired &&
        strcmp(council_event_type_name(council_event_type_of(ev)),
               k->cancel_on) == 0 &&
        (k->cancel_round == 0 || council_event_round(ev) == k->cancel_round)) {
        k->fired = 1;
        cancel = 1;
    }
    pthread_mutex_unlock(&k->mu);
    if (cancel)
        council_engine_cancel(k->eng, council_event_run_id(ev));
    return 0;
}

static void
k_final(void *state, const council_outcome *o)
{
    keep *k = state;

    (void)o;
    pthread_mutex_lock(&k->mu);
    k->finals++;
    pthread_mutex_unlock(&k->mu);
}

static const council_recorder_ops keep_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                              k_init, k_event, k_final, NULL};

static void
keep_free(keep *k)
{
    json_decref(k->events);
    pthread_mutex_destroy(&k->mu);
}

/* Events of a type, in order (borrowed from k->events). */
static size_t
find(keep *k, const char *type, json_t **out, size_t max)
{
    size_t i, n = 0;
    json_t *e;

    json_array_foreach (k->events, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0) {
            if (n < max)
                out[n] = e;
            n++;
        }
    }
    return n;
}

/* Seqs 1..n without gaps, the terminal event last, finalized once. */
static void
check_run(keep *k)
{
    size_t i, n = json_array_size(k->events);
    json_t *e;
    const char *last;

    json_array_foreach (k->events, i, e)
        ASSERT_EQ_INT(json_integer_value(json_object_get(e, "seq")), i + 1);
    ASSERT(n > 0);
    last = json_string_value(
        json_object_get(json_array_get(k->events, n - 1), "type"));
    ASSERT(strcmp(last, "run_completed") == 0 ||
           strcmp(last, "run_failed") == 0);
    ASSERT_EQ_INT(k->finals, 1);
}

static const char *
str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static council_mockllm *
mock(const char *faults, double tps)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_diag d;

    o.seed = 3;
    o.faults = faults;
    o.tokens_per_sec = tps;
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    return m;
}

/* A council of the given strategy; members is YAML list items, chair the
 * chairman mapping's inside, limits the limits mapping's inside. */
static __attribute__((unused)) council_def *
council(council_mockllm *m, const char *strategy, const char *members,
        const char *chair, const char *limits)
{
    char text[3000];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: t\n"
             "strategy: %s\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n%s"
             "chairman: { %s }\n"
             "limits: { %s }\n",
             strategy, council_mockllm_base_url(m), members, chair, limits);
    if (council_def_load_string(text, strlen(text), "t.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

#define FOUR_MEMBERS                                                           \
    "  - { name: ann, provider: mock, model: mock-a }\n"                       \
    "  - { name: bob, provider: mock, model: mock-b }\n"                       \
    "  - { name: cy,  provider: mock, model: mock-c }\n"                       \
    "  - { name: dee, provider: mock, model: slow-d }\n"
#define CHAIR "provider: mock, model: mock-chair"

static council_run *
start(council_engine *eng, council_def *def, keep *k, uint64_t deadline_ms)
{
    council_recorder_spec spec = {&keep_ops, k};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    o.recorders = &spec;
    o.n_recorders = 1;
    o.seed = 11;
    o.deadline_ms = deadline_ms;
    k->eng = eng;
    if (council_run_start(eng, def, "Why is the sky blue?", &o, &run, &d) !=
        COUNCIL_OK)
        FAIL("start: %s", d.msg);
    return run;
}

static const council_outcome *
wait_for(council_run *run)
{
    const council_outcome *o = NULL;

    ASSERT_OK(council_run_wait(run, 30000, &o));
    return o;
}

static __attribute__((unused)) double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
