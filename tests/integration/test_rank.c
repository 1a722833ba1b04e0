/* SPDX-License-Identifier: MIT */
/*
 * The rank strategy through the public API, against the real mock LLM over
 * loopback: the three stages, anonymized and shuffled reviews (own answer
 * never shown, seed recorded and reproducible), the result's shape, and the
 * paths where members, the chairman, the caller or the engine end things.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "runner.h"

/* ---- a recorder that keeps every event as parsed JSON ---------------- */

typedef struct keep {
    pthread_mutex_t mu;
    json_t *events; /* array */
    int finals;
    int member_started;
    char outcome[16];
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

    ASSERT_NOT_NULL(j);
    pthread_mutex_lock(&k->mu);
    json_array_append_new(k->events, j);
    if (council_event_type_of(ev) == COUNCIL_EV_MEMBER_STARTED)
        k->member_started++;
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void
k_final(void *state, const council_outcome *o)
{
    keep *k = state;

    pthread_mutex_lock(&k->mu);
    k->finals++;
    snprintf(k->outcome, sizeof(k->outcome), "%s",
             council_outcome_kind_name(council_outcome_kind_of(o)));
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

static void
check_seqs(keep *k)
{
    size_t i;
    json_t *e;

    json_array_foreach (k->events, i, e)
        ASSERT_EQ_INT(json_integer_value(json_object_get(e, "seq")), i + 1);
}

/* ---- fixtures ------------------------------------------------------------ */

static council_mockllm *
mock(const char *faults, uint64_t latency_ms, double tps)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_diag d;

    o.seed = 3;
    o.faults = faults;
    o.latency_ms = latency_ms;
    o.tokens_per_sec = tps;
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    return m;
}

static council_def *
council(council_mockllm *m, int quorum, const char *timeout,
        const char *chair_model)
{
    char text[1500];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: t\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: mock, model: mock-a }\n"
             "  - { name: bob, provider: mock, model: mock-b }\n"
             "  - { name: cy,  provider: mock, model: mock-c }\n"
             "  - { name: dee, provider: mock, model: bad-d }\n"
             "chairman: { provider: mock, model: %s }\n"
             "limits: { quorum: %d, member_timeout: %s }\n",
             council_mockllm_base_url(m), chair_model, quorum, timeout);
    if (council_def_load_string(text, strlen(text), "t.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

static council_run *
start(council_engine *eng, council_def *def, keep *k, uint64_t seed,
      uint64_t deadline_ms)
{
    council_recorder_spec spec = {&keep_ops, k};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    o.recorders = &spec;
    o.n_recorders = 1;
    o.seed = seed;
    o.deadline_ms = deadline_ms;
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

/* ---- tests -------------------------------------------------------------- */

TEST_T(three_stages_anonymized_reviews_and_result, 30)
{
    council_mockllm *m = mock(NULL, 0, 0);
    council_def *def = council(m, 4, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[16], *res, *started = NULL;
    size_t n, i;

    /* All four answer: dee's model is not faulted here. */
    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 42, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(k.finals, 1);
    check_seqs(&k);

    ASSERT_EQ_U64(find(&k, "run_started", &started, 1), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(started, "seed")), 42);
    ASSERT_EQ_U64(json_array_size(json_object_get(started, "members")), 4);
    ASSERT_EQ_U64(find(&k, "member_completed", ev, 16), 4);

    /* Each reviewer saw the other three, never itself, labelled A-C. */
    n = find(&k, "review_completed", ev, 16);
    ASSERT_EQ_U64(n, 4);
    for (i = 0; i < n; i++) {
        const char *me = json_string_value(json_object_get(ev[i], "member"));
        json_t *labels = json_object_get(ev[i], "labels");
        json_t *ranking = json_object_get(ev[i], "ranking");
        const char *key;
        json_t *v;
        ASSERT_EQ_U64(json_object_size(labels), 3);
        json_object_foreach (labels, key, v) {
            ASSERT(strcmp(json_string_value(v), me) != 0);
            ASSERT(key[0] >= 'A' && key[0] <= 'C' && key[1] == '\0');
        }
        ASSERT(json_is_integer(json_object_get(ev[i], "seed")));
        /* The mock answers with a valid FINAL RANKING block. */
        ASSERT_STR_EQ(json_string_value(json_object_get(ev[i], "parse")),
                      "strict");
        ASSERT(json_is_true(json_object_get(ev[i], "parse_ok")));
        ASSERT_EQ_U64(json_array_size(ranking), 3);
    }
    ASSERT_EQ_U64(find(&k, "rankings_aggregated", ev, 16), 1);
    ASSERT_EQ_U64(json_array_size(json_object_get(ev[0], "aggregate")), 4);
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[0], "ballots")), 4);

    /* The result: answer, label maps, every ranking, aggregate, usage. */
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_NOT_NULL(res);
    ASSERT(json_string_length(json_object_get(res, "answer")) > 0);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "answers")), 4);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "reviews")), 4);
    ASSERT(json_is_object(json_object_get(
        json_array_get(json_object_get(res, "reviews"), 0), "labels")));
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "aggregate")), 4);
    ASSERT(json_integer_value(json_object_get(json_object_get(res, "usage"),
                                              "completion_tokens")) > 0);
    ASSERT(json_is_true(
        json_object_get(json_object_get(res, "usage"), "complete")));
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* The same seed gives the same shuffles (and, with a deterministic mock,
 * the same rankings); another seed gives other shuffles. */
TEST_T(shuffle_seed_is_reproducible, 30)
{
    council_mockllm *m = mock(NULL, 0, 0);
    council_def *def = council(m, 4, "20s", "mock-chair");
    council_engine *eng = NULL;
    char *labels[3];
    uint64_t seeds[3] = {7, 7, 8};
    int r;

    ASSERT_OK(council_engine_open(NULL, &eng));
    for (r = 0; r < 3; r++) {
        keep k = {0};
        council_run *run = start(eng, def, &k, seeds[r], 0);
        json_t *ev[8], *all = json_array();
        size_t i, n;
        wait_for(run);
        n = find(&k, "review_completed", ev, 8);
        for (i = 0; i < n; i++)
            json_array_append(all, json_object_get(ev[i], "labels"));
        labels[r] = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(all);
        council_run_release(run);
        keep_free(&k);
    }
    /* Reviews complete in any order: compare as multisets by sorting the
     * dumped per-review objects. */
    ASSERT_NOT_NULL(labels[0]);
    {
        json_t *a = json_loads(labels[0], 0, NULL);
        json_t *b = json_loads(labels[1], 0, NULL);
        json_t *c = json_loads(labels[2], 0, NULL);
        size_t i, j, same_ab = 0, same_ac = 0;
        for (i = 0; i < json_array_size(a); i++)
            for (j = 0; j < json_array_size(b); j++)
                if (json_equal(json_array_get(a, i), json_array_get(b, j)))
                    same_ab++;
        for (i = 0; i < json_array_size(a); i++)
            for (j = 0; j < json_array_size(c); j++)
                if (json_equal(json_array_get(a, i), json_array_get(c, j)))
                    same_ac++;
        ASSERT_EQ_U64(same_ab, 4);
        ASSERT(same_ac < 4);
        json_decref(a);
        json_decref(b);
        json_decref(c);
    }
    for (r = 0; r < 3; r++)
        free(labels[r]);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}

/* A failing member: member_failed with the real cause, run goes on. */
TEST_T(failing_member_real_cause_and_quorum, 30)
{
    council_mockllm *m = mock("model=bad-*:http=429,retry_after=3", 0, 0);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    json_t *ev[8], *err, *res;
    const council_outcome *o;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 1, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 8), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "member")), "dee");
    err = json_object_get(ev[0], "error");
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "kind")), "http");
    ASSERT_EQ_INT(json_integer_value(json_object_get(err, "http_status")), 429);
    ASSERT_STR_CONTAINS(json_string_value(json_object_get(err, "message")),
                        "HTTP 429");
    /* Three answers: each reviewer ranks the two others. */
    ASSERT_EQ_U64(find(&k, "review_completed", ev, 8), 3);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "failed")), 1);
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Garbage and stalls from a provider are typed member failures. */
TEST_T(malformed_stream_and_stall_are_member_failures, 30)
{
    council_mockllm *m = mock("model=bad-*:malformed,after=2", 0, 0);
    council_mockllm *s = mock("model=bad-*:stall=5s", 0, 0);
    council_def *d1 = council(m, 3, "20s", "mock-chair");
    council_def *d2 = council(s, 3, "500ms", "mock-chair");
    council_engine *eng = NULL;
    keep k1 = {0}, k2 = {0};
    council_run *r1, *r2;
    json_t *ev[8];
    struct timespec t0, t1;

    ASSERT_OK(council_engine_open(NULL, &eng));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r1 = start(eng, d1, &k1, 1, 0);
    r2 = start(eng, d2, &k2, 1, 0);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_for(r1)), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_for(r2)), COUNCIL_OUTCOME_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASSERT_EQ_U64(find(&k1, "member_failed", ev, 8), 1);
    ASSERT_STR_EQ(json_string_value(
                      json_object_get(json_object_get(ev[0], "error"), "kind")),
                  "stream");
    ASSERT_EQ_U64(find(&k2, "member_failed", ev, 8), 1);
    ASSERT_STR_EQ(json_string_value(
                      json_object_get(json_object_get(ev[0], "error"), "kind")),
                  "timeout");
    /* The stalled member did not hold the run for its 5 s stall. */
    ASSERT(t1.tv_sec - t0.tv_sec < 4);
    council_run_release(r1);
    council_run_release(r2);
    council_engine_close(eng);
    keep_free(&k1);
    keep_free(&k2);
    council_def_free(d1);
    council_def_free(d2);
    council_mockllm_close(m);
    council_mockllm_close(s);
}

/* The chairman fails and has no fallback model: member_failed names the
 * real cause, and the top of the aggregate stands in as the answer; the
 * run still completes. */
TEST_T(chairman_failure_is_named, 30)
{
    council_mockllm *m = mock("model=chair-down:http=502", 0, 0);
    council_def *def = council(m, 3, "20s", "chair-down");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *ev[4], *agg[2], *err;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 1, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(k.finals, 1);
    check_seqs(&k);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 4), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "member")),
                  "chairman");
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "stage")),
                  "synthesis");
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "model")),
                  "chair-down");
    err = json_object_get(ev[0], "error");
    ASSERT_STR_CONTAINS(json_string_value(json_object_get(err, "message")),
                        "HTTP 502");
    ASSERT_EQ_U64(find(&k, "rankings_aggregated", agg, 2), 1);
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 4), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "fallback")),
                  "top_member");
    ASSERT_STR_EQ(json_string_value(json_object_get(ev[0], "member")),
                  json_string_value(json_object_get(
                      json_array_get(json_object_get(agg[0], "aggregate"), 0),
                      "member")));
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "answers")), 4);
    ASSERT_STR_EQ(json_string_value(json_object_get(res, "answer")),
                  json_string_value(json_object_get(ev[0], "text")));
    ASSERT_STR_EQ(json_string_value(json_object_get(
                      json_object_get(res, "synthesis"), "fallback")),
                  "top_member");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

static void
wait_started(keep *k, int n)
{
    int i, got = 0;

    for (i = 0; i < 5000 && got < n; i++) {
        pthread_mutex_lock(&k->mu);
        got = k->member_started;
        pthread_mutex_unlock(&k->mu);
        usleep(1000);
    }
    ASSERT(got >= n);
}

/* Cancel during the answers: cancelled, promptly, with the partial
 * result; the calls stop. */
TEST_T(cancel_during_answers, 30)
{
    council_mockllm *m = mock(NULL, 10000, 0);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    struct timespec t0, t1;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 1, 0);
    wait_started(&k, 4);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_OK(council_run_cancel(run));
    o = wait_for(run);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    ASSERT_NOT_NULL(council_outcome_result_json(o));
    ASSERT(t1.tv_sec - t0.tv_sec < 2);
    ASSERT_STR_EQ(k.outcome, "cancelled");
    check_seqs(&k);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* The deltas of member in the answer stage so far, joined (malloc'd);
 * *n_out how many. */
static char *
answer_deltas(keep *k, const char *member, size_t *n_out)
{
    size_t i, n = 0, len = 0;
    char *out = calloc(1, 1);
    json_t *e;

    ASSERT_NOT_NULL(out);
    pthread_mutex_lock(&k->mu);
    json_array_foreach (k->events, i, e) {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *m = json_string_value(json_object_get(e, "member"));
        const char *st = json_string_value(json_object_get(e, "stage"));
        const char *d = json_string_value(json_object_get(e, "delta"));

        if (t == NULL || strcmp(t, "member_delta") != 0 || m == NULL ||
            strcmp(m, member) != 0 || st == NULL || strcmp(st, "answer") != 0 ||
            d == NULL)
            continue;
        out = realloc(out, len + strlen(d) + 1);
        ASSERT_NOT_NULL(out);
        memcpy(out + len, d, strlen(d) + 1);
        len += strlen(d);
        n++;
    }
    pthread_mutex_unlock(&k->mu);
    *n_out = n;
    return out;
}

/* Issue 13: a run cancelled mid-answer kept only the finished answers in
 * its partial result (answers: [] when none had finished), though the
 * members' text was in the events.  Each member cut while streaming now
 * has its text so far there, "partial": true and no usage: exactly the
 * text its deltas carried. */
TEST_T(cancel_mid_answer_keeps_partial_text, 30)
{
    static const char *const names[] = {"ann", "bob", "cy", "dee"};
    council_mockllm *m = mock(NULL, 0, 20);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *answers, *a;
    size_t i, j, n;
    int tries;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 1, 0);
    /* Until every member has streamed a few deltas. */
    for (tries = 0; tries < 10000; tries++) {
        size_t least = SIZE_MAX;

        for (i = 0; i < 4; i++) {
            free(answer_deltas(&k, names[i], &n));
            if (n < least)
                least = n;
        }
        if (least >= 3)
            break;
        usleep(1000);
    }
    ASSERT_OK(council_run_cancel(run));
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_NOT_NULL(res);
    answers = json_object_get(res, "answers");
    ASSERT_EQ_INT(json_array_size(answers), 4);
    for (i = 0; i < 4; i++) {
        char *want = answer_deltas(&k, names[i], &n);

        ASSERT(n >= 3);
        json_array_foreach (answers, j, a)
            if (strcmp(json_string_value(json_object_get(a, "member")),
                       names[i]) == 0)
                break;
        ASSERT(j < 4);
        ASSERT_STR_EQ(json_string_value(json_object_get(a, "text")), want);
        ASSERT(json_is_true(json_object_get(a, "partial")));
        ASSERT(json_is_null(json_object_get(a, "usage")));
        free(want);
    }
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* The deadline bounds the run's wall time. */
TEST_T(deadline_bounds_wall_time, 30)
{
    council_mockllm *m = mock(NULL, 10000, 0);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    struct timespec t0, t1;
    double secs;

    ASSERT_OK(council_engine_open(NULL, &eng));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run = start(eng, def, &k, 1, 700);
    o = wait_for(run);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(council_outcome_errors_json(o), "\"deadline\"");
    /* Nobody answered within the stages' budget (80% of the deadline;
     * 20% is kept for the synthesis): the run fails then. */
    ASSERT(secs >= 0.55 && secs < 1.5);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Closing the engine mid-stream: crashed("shutdown"), calls aborted, and
 * nothing left behind (the runner checks fds; LSan checks memory). */
TEST_T(close_mid_stream_crashes_shutdown, 30)
{
    council_mockllm *m = mock(NULL, 0, 20);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    keep k[5];
    council_run *runs[5];
    int i;

    memset(k, 0, sizeof(k));
    ASSERT_OK(council_engine_open(NULL, &eng));
    for (i = 0; i < 5; i++)
        runs[i] = start(eng, def, &k[i], 1, 0);
    wait_started(&k[4], 4);
    usleep(200000);
    council_engine_close(eng);
    for (i = 0; i < 5; i++) {
        const council_outcome *o = NULL;
        ASSERT_OK(council_run_wait(runs[i], 0, &o));
        ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CRASHED);
        ASSERT_STR_EQ(council_outcome_reason(o), "shutdown");
        ASSERT_EQ_INT(k[i].finals, 1);
        check_seqs(&k[i]);
        council_run_release(runs[i]);
        keep_free(&k[i]);
    }
    council_def_free(def);
    council_mockllm_close(m);
}

/* A missing API key is refused at start with a message naming the
 * variable, and never the key itself. */
TEST(missing_api_key_is_named)
{
    const char *text = "name: t\n"
                       "providers:\n"
                       "  p: { kind: openai, base_url: http://127.0.0.1:9/v1,"
                       " api_key_env: COUNCIL_TEST_NO_SUCH_KEY }\n"
                       "members:\n"
                       "  - { name: a, provider: p, model: m }\n"
                       "chairman: { provider: p, model: m }\n";
    council_def *def = NULL;
    council_engine *eng = NULL;
    council_run *run = NULL;
    council_diag d;

    unsetenv("COUNCIL_TEST_NO_SUCH_KEY");
    ASSERT_OK(council_def_load_string(text, strlen(text), "k.yaml", &def, &d));
    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_EQ_INT(council_run_start(eng, def, "q", NULL, &run, &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(d.msg, "COUNCIL_TEST_NO_SUCH_KEY");
    ASSERT_NULL(run);
    council_engine_close(eng);
    council_def_free(def);
}

/* Issue 13: a question (or message) that is not UTF-8 is refused at
 * start, naming the offset of its bad byte, before any recorder is called
 * (it used to start a run whose run_started had no question and whose
 * every member failed "could not start the call"). */
TEST(question_not_utf8_is_refused)
{
    council_mockllm *m = mock(NULL, 0, 0);
    council_def *def = council(m, 1, "5s", "mock-chair");
    council_engine *eng = NULL;
    council_run *run = NULL;
    keep k = {0};
    council_recorder_spec spec = {&keep_ops, &k};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_message msgs[3] = {{"user", "hello"},
                               {"assistant", "ok \xc3\xa9 \xed\xa0\x80"},
                               {"user", "q"}};
    council_diag d;
    size_t bad = 99;

    o.recorders = &spec;
    o.n_recorders = 1;
    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_EQ_INT(council_run_start(eng, def, "caf\xe9", &o, &run, &d),
                  COUNCIL_EINVAL);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(d.msg, "the question is not valid UTF-8");
    ASSERT_STR_CONTAINS(d.msg, "byte 0xe9 at offset 3");
    /* A surrogate (ED A0 80) is not UTF-8 either; message 2, offset 6. */
    ASSERT_EQ_INT(council_run_start_messages(eng, def, msgs, 3, &o, &run, &d),
                  COUNCIL_EINVAL);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(d.msg, "message 2's content is not valid UTF-8");
    ASSERT_STR_CONTAINS(d.msg, "offset 6");
    /* No recorder was called. */
    ASSERT_NULL(k.events);
    ASSERT_EQ_INT(k.finals, 0);
    ASSERT_EQ_INT(council_utf8_check("caf\xc3\xa9", 5, &bad), COUNCIL_OK);
    ASSERT_EQ_INT(bad, 99);
    ASSERT_EQ_INT(council_utf8_check("a\0b", 3, NULL), COUNCIL_OK);
    ASSERT_EQ_INT(council_utf8_check("ab\xe2\x82", 4, &bad), COUNCIL_EINVAL);
    ASSERT_EQ_INT(bad, 2);
    ASSERT_EQ_INT(council_utf8_check("\xc0\x80", 2, &bad), COUNCIL_EINVAL);
    ASSERT_EQ_INT(bad, 0);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}

/* ---- F9: cancellation at each point, and racing completion ------------- */

typedef struct canceller {
    council_engine *eng;
    const char *on_type; /* cancel when this event type arrives */
    int fired;
    int finals;
    int gap;
    uint64_t last;
    council_outcome_kind kind;
} canceller;

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
    canceller *c = state;

    if (council_event_seq(ev) != c->last + 1)
        c->gap = 1;
    c->last = council_event_seq(ev);
    if (!c->fired && strcmp(council_event_type_name(council_event_type_of(ev)),
                            c->on_type) == 0) {
        c->fired = 1;
        council_engine_cancel(c->eng, council_event_run_id(ev));
    }
    return 0;
}

static void
c_final(void *state, const council_outcome *o)
{
    canceller *c = state;

    c->finals++;
    c->kind = council_outcome_kind_of(o);
}

static const council_recorder_ops cancel_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                                c_init, c_event, c_final, NULL};

TEST_T(cancel_at_each_stage, 60)
{
    static const struct {
        const char *on;
        council_outcome_kind want;
    } at[] = {
        {"run_started", COUNCIL_OUTCOME_CANCELLED},
        {"member_delta", COUNCIL_OUTCOME_CANCELLED},
        {"stage_completed", COUNCIL_OUTCOME_CANCELLED},
        {"review_completed", COUNCIL_OUTCOME_CANCELLED},
        {"synthesis_started", COUNCIL_OUTCOME_CANCELLED},
        {"synthesis_delta", COUNCIL_OUTCOME_CANCELLED},
        {"run_completed", COUNCIL_OUTCOME_OK}, /* too late: it finished */
    };
    /* Slow streaming so each stage lasts long enough to be caught. */
    council_mockllm *m = mock(NULL, 0, 100);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    size_t i;

    ASSERT_OK(council_engine_open(NULL, &eng));
    for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        canceller c = {eng, at[i].on};
        council_recorder_spec spec = {&cancel_ops, &c};
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
        council_run *run = NULL;
        const council_outcome *out;
        o.recorders = &spec;
        o.n_recorders = 1;
        ASSERT_OK(council_run_start(eng, def, "q", &o, &run, NULL));
        out = wait_for(run);
        if (council_outcome_kind_of(out) != at[i].want)
            FAIL("cancel on %s: outcome %s", at[i].on,
                 council_outcome_kind_name(council_outcome_kind_of(out)));
        ASSERT_EQ_INT(c.fired, 1);
        ASSERT_EQ_INT(c.finals, 1);
        ASSERT_EQ_INT(c.kind, at[i].want);
        ASSERT_EQ_INT(c.gap, 0);
        /* Cancelling again, and after the end, changes nothing. */
        ASSERT_OK(council_run_cancel(run));
        ASSERT_EQ_INT(council_outcome_kind_of(wait_for(run)), at[i].want);
        council_run_release(run);
    }
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Cancel from another thread at random moments: every run ends once, as
 * ok (completion won) or cancelled (cancel won), never anything else. */
TEST_T(cancel_races_completion, 60)
{
    enum { RUNS = 40 };
    council_mockllm *m = mock(NULL, 0, 0);
    council_def *def = council(m, 3, "20s", "mock-chair");
    council_engine *eng = NULL;
    uint64_t x = runner_seed();
    int r, ok = 0, cancelled = 0;

    ASSERT_OK(council_engine_open(NULL, &eng));
    for (r = 0; r < RUNS; r++) {
        canceller c = {eng, "never"};
        council_recorder_spec spec = {&cancel_ops, &c};
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
        council_run *run = NULL;
        const council_outcome *out;
        o.recorders = &spec;
        o.n_recorders = 1;
        ASSERT_OK(council_run_start(eng, def, "q", &o, &run, NULL));
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        usleep((useconds_t)((x >> 33) % 60000));
        council_run_cancel(run);
        out = wait_for(run);
        ASSERT_EQ_INT(c.finals, 1);
        ASSERT_EQ_INT(c.gap, 0);
        if (council_outcome_kind_of(out) == COUNCIL_OUTCOME_OK)
            ok++;
        else if (council_outcome_kind_of(out) == COUNCIL_OUTCOME_CANCELLED)
            cancelled++;
        else
            FAIL("outcome %s", council_outcome_json(out));
        ASSERT_EQ_INT(c.kind, council_outcome_kind_of(out));
        council_run_release(run);
    }
    fprintf(stderr, "cancel race: %d ok, %d cancelled\n", ok, cancelled);
    ASSERT_EQ_INT(ok + cancelled, RUNS);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}
