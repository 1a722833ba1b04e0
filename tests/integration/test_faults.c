/* SPDX-License-Identifier: MIT */
/*
 * Faults against the in-process engine (RELIABILITY.md F5, F8, F9), each
 * case writing a history (tests/support/history.h) and ending with the
 * one checker (I1-I5): engine shutdown with runs in flight, recorders
 * that fail, block, cancel their own run or refuse, and cancellation at
 * every point of a run and racing its completion or its crash.  Real rank
 * runs go against the in-process mock LLM; scripted runs
 * (src/core/script_host.h) reach the corners no model reaches on cue.
 * tests/unit/test_contract.c checks some of the same clauses without a
 * history; these add the oracle.  With $COUNCIL_HISTORY_DIR set, each
 * case leaves its history there (bench/fault_figures.sh).
 * TEST_LABELS: threaded
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_history.h"
#include "core/script_host.h"
#include "history.h"
#include "runner.h"

/* ---- fixture ------------------------------------------------------------ */

typedef struct fx {
    hist *h;
    council_engine *eng;
    council_mockllm *mock;
    council_def *def;
    int fds0;
} fx;

/* A rank council of three members and a chairman on the mock LLM. */
static council_def *
rank_council(council_mockllm *m)
{
    char text[1200];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: faults\n"
             "strategy: rank\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: mock, model: mock-a }\n"
             "  - { name: bob, provider: mock, model: mock-b }\n"
             "  - { name: cy,  provider: mock, model: mock-c }\n"
             "chairman: { provider: mock, model: mock-chair }\n"
             "limits: { quorum: 2, member_timeout: 60s }\n",
             council_mockllm_base_url(m));
    if (council_def_load_string(text, strlen(text), "faults.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

/* History (and tap) first, then the baseline of descriptors, then the mock
 * LLM (when tps >= 0: its token rate, 0 = as fast as it goes) and the
 * engine. */
static void
fx_open(fx *f, const char *name, double tps)
{
    memset(f, 0, sizeof(*f));
    f->h = hist_open_case(name);
    f->fds0 = hist_count_fds();
    hist_tap_install(f->h);
    if (tps >= 0) {
        council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
        council_diag d;
        o.seed = 5;
        o.tokens_per_sec = tps;
        if (council_mockllm_open(&o, &f->mock, &d) != COUNCIL_OK)
            FAIL("mock-llm: %s", d.msg);
        f->def = rank_council(f->mock);
    }
    ASSERT_OK(council_engine_open(NULL, &f->eng));
}

/* Close the engine; returns how long it took, in ms. */
static double
fx_close_engine(fx *f)
{
    int64_t t0 = hist_now_us();

    council_engine_close(f->eng);
    f->eng = NULL;
    return (double)(hist_now_us() - t0) / 1000.0;
}

/* Close everything, record the resources, and check the history. */
static void
fx_end(fx *f)
{
    if (f->eng != NULL)
        fx_close_engine(f);
    hist_tap_remove();
    council_def_free(f->def);
    council_mockllm_close(f->mock);
    hist_resources(f->h, f->fds0);
    hist_assert_clean(f->h);
    hist_close(f->h);
}

static void
recs_init(fx *f, hist_rec *r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        hist_rec_init(&r[i], f->h);
}

static council_run *
start_rank(fx *f, hist_rec *recs, size_t n)
{
    council_recorder_spec specs[8];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    hist_rec_specs(recs, n, specs);
    o.recorders = specs;
    o.n_recorders = n;
    o.seed = 7;
    if (hist_run(f->h, f->eng, f->def, "Why is the sky blue?", &o, &run, &d) !=
        COUNCIL_OK)
        FAIL("start: %s", d.msg);
    return run;
}

static council_run *
start_script(fx *f, const council__script *s, hist_rec *recs, size_t n)
{
    council_recorder_spec specs[8];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    hist_rec_specs(recs, n, specs);
    o.recorders = specs;
    o.n_recorders = n;
    if (hist_run_script(f->h, f->eng, s, &o, &run, &d) != COUNCIL_OK)
        FAIL("start: %s", d.msg);
    return run;
}

static const council_outcome *
wait_end(fx *f, council_run *run)
{
    const council_outcome *o = hist_wait(f->h, run, 60000);

    if (o == NULL)
        FAIL("run %s did not end", council_run_id(run));
    return o;
}

static void
assert_outcome(const council_outcome *o, council_outcome_kind kind,
               const char *reason)
{
    if (council_outcome_kind_of(o) != kind)
        FAIL("outcome %s, not %s", council_outcome_json(o),
             council_outcome_kind_name(kind));
    if (reason != NULL)
        ASSERT_STR_EQ(council_outcome_reason(o), reason);
}

/* Wait until r has seen n streamed deltas (the run is mid-stream). */
static void
wait_deltas(hist_rec *r, int n)
{
    int64_t t0 = hist_now_us();

    while (atomic_load(&r->deltas) < n) {
        if (hist_now_us() - t0 > 20000000)
            FAIL("recorder %d saw %d deltas, not %d", r->id,
                 atomic_load(&r->deltas), n);
        usleep(1000);
    }
}

static void
wait_events(hist_rec *r, int n)
{
    int64_t t0 = hist_now_us();

    while (atomic_load(&r->events) < n) {
        if (hist_now_us() - t0 > 20000000)
            FAIL("recorder %d saw %d events, not %d", r->id,
                 atomic_load(&r->events), n);
        usleep(1000);
    }
}

static uint64_t
next_rand(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

/* ---- scripts ---------------------------------------------------------- */

#define STARTED                                                                \
    {                                                                          \
        COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, "{\"council\":\"s\"}", 0     \
    }
#define DELTA(txt, delay)                                                      \
    {                                                                          \
        COUNCIL_EV_MEMBER_DELTA, "answer", "m", txt, NULL, delay               \
    }
#define COMPLETED(delay)                                                       \
    {                                                                          \
        COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL,                            \
            "{\"result\":{\"answer\":\"blue\"}}", delay                        \
    }

static const council__script_step hang_steps[] = {STARTED,
                                                  DELTA("thinking", 0)};

/* ---- F5: engine shutdown with runs in flight ------------------------------
 */

/* Bounds for council_engine_close (measured: a few ms for 100 runs; the
 * bound leaves room for the sanitizers and a loaded machine). */
#define CLOSE_BOUND_MS 2000.0

TEST(f5_close_with_no_runs)
{
    fx f;

    fx_open(&f, "f5_close_with_no_runs", -1);
    hist_fault(f.h, NULL, "shutdown", 0, "crashed", "shutdown");
    hist_bound(f.h, "engine close, no run", fx_close_engine(&f),
               CLOSE_BOUND_MS);
    fx_end(&f);
}

TEST_T(f5_close_one_rank_run_mid_stream, 30)
{
    fx f;
    hist_rec r[2];
    council_run *run;
    int i;

    fx_open(&f, "f5_close_one_rank_run_mid_stream", 20);
    recs_init(&f, r, 2);
    run = start_rank(&f, r, 2);
    wait_deltas(&r[0], 3);
    hist_fault(f.h, NULL, "shutdown", 0, "crashed", "shutdown");
    hist_bound(f.h, "engine close, 1 rank run mid-stream", fx_close_engine(&f),
               CLOSE_BOUND_MS);
    assert_outcome(wait_end(&f, run), COUNCIL_OUTCOME_CRASHED, "shutdown");
    for (i = 0; i < 2; i++) {
        ASSERT_EQ_INT(atomic_load(&r[i].finals), 1);
        ASSERT_EQ_INT(r[i].final_kind, COUNCIL_OUTCOME_CRASHED);
    }
    council_run_release(run);
    fx_end(&f);
}

TEST_T(f5_close_100_rank_runs_mid_stream, 60)
{
    enum { RUNS = 100 };
    fx f;
    hist_rec *r = calloc(RUNS, sizeof(*r));
    council_run *runs[RUNS];
    int i;

    fx_open(&f, "f5_close_100_rank_runs_mid_stream", 10);
    recs_init(&f, r, RUNS);
    for (i = 0; i < RUNS; i++)
        runs[i] = start_rank(&f, &r[i], 1);
    for (i = 0; i < RUNS; i++)
        wait_deltas(&r[i], 1);
    hist_fault(f.h, NULL, "shutdown", 0, "crashed", "shutdown");
    hist_bound(f.h, "engine close, 100 rank runs mid-stream",
               fx_close_engine(&f), CLOSE_BOUND_MS);
    for (i = 0; i < RUNS; i++) {
        assert_outcome(wait_end(&f, runs[i]), COUNCIL_OUTCOME_CRASHED,
                       "shutdown");
        council_run_release(runs[i]);
    }
    fx_end(&f);
    free(r);
}

/* 100 scripted runs hanging mid-run, and one recorder blocked in
 * handle_event: close waits for that recorder alone; every other
 * recorder is finalized while it is still blocked. */
TEST_T(f5_close_100_scripted_runs_and_a_blocked_recorder, 30)
{
    enum { RUNS = 100, BLOCK_MS = 1500 };
    fx f;
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    hist_rec *r = calloc(2 * RUNS, sizeof(*r));
    council_run *runs[RUNS];
    int64_t t0, last = 0;
    int i;

    fx_open(&f, "f5_close_100_scripted_runs_and_a_blocked_recorder", -1);
    recs_init(&f, r, 2 * RUNS);
    r[0].block_at_seq = 2;
    r[0].block_ms = BLOCK_MS;
    for (i = 0; i < RUNS; i++)
        runs[i] = start_script(&f, &s, &r[2 * i], 2);
    for (i = 0; i < 2 * RUNS; i++)
        wait_events(&r[i], 2);
    hist_fault(f.h, NULL, "shutdown", 0, "crashed", "shutdown");
    t0 = hist_now_us();
    hist_bound(f.h, "engine close, 100 scripted runs, a recorder blocked",
               fx_close_engine(&f), BLOCK_MS + CLOSE_BOUND_MS);
    for (i = 0; i < RUNS; i++) {
        assert_outcome(wait_end(&f, runs[i]), COUNCIL_OUTCOME_CRASHED,
                       "shutdown");
        council_run_release(runs[i]);
    }
    /* The blocked one was finalized last, after its block, and no one
     * else waited for it. */
    for (i = 1; i < 2 * RUNS; i++) {
        if (r[i].final_us >= r[0].final_us)
            FAIL("recorder %d finalized %lld us after the blocked one", r[i].id,
                 (long long)(r[i].final_us - r[0].final_us));
        if (r[i].final_us > last)
            last = r[i].final_us;
    }
    hist_bound(f.h, "others finalized while a recorder blocked",
               (double)(last - t0) / 1000.0, BLOCK_MS / 2.0);
    fx_end(&f);
    free(r);
}

/* ---- F8: misbehaving recorders ----------------------------------------------
 */

TEST_T(f8_handle_event_errors_affect_no_one, 30)
{
    static const council__script_step ok_steps[] = {
        STARTED, DELTA("a", 0), DELTA("b", 0), COMPLETED(0)};
    fx f;
    council__script s = {ok_steps, 4, COUNCIL__SCRIPT_EXIT, "signal SIGKILL"};
    hist_rec r[6];
    council_run *a, *b;
    council_engine_stats st;

    fx_open(&f, "f8_handle_event_errors_affect_no_one", 0);
    recs_init(&f, r, 6);
    r[0].fail_every = 1;
    r[1].fail_at_seq = 2;
    r[3].fail_every = 1;
    a = start_rank(&f, &r[0], 3);
    b = start_script(&f, &s, &r[3], 3);
    assert_outcome(wait_end(&f, a), COUNCIL_OUTCOME_OK, NULL);
    assert_outcome(wait_end(&f, b), COUNCIL_OUTCOME_OK, NULL);
    council_engine_stats_get(f.eng, &st);
    /* Every failure is counted; the failing ones got every event. */
    ASSERT_EQ_U64(st.recorder_failures, atomic_load(&r[0].events) + 1 + 4);
    ASSERT_EQ_INT(atomic_load(&r[0].events), atomic_load(&r[2].events));
    ASSERT_EQ_INT(atomic_load(&r[3].events), 4);
    council_run_release(a);
    council_run_release(b);
    fx_end(&f);
}

/* A recorder blocked for BLOCK_MS (RELIABILITY says 10 s; 3 s makes the
 * same point in a third of the time): its run ends, the other recorder of
 * that run and a second run are finalized long before it wakes. */
TEST_T(f8_blocked_recorder_delays_only_itself, 60)
{
    enum { BLOCK_MS = 3000 };
    fx f;
    hist_rec r[3];
    council_run *a, *b;
    int64_t t0;

    fx_open(&f, "f8_blocked_recorder_delays_only_itself", 0);
    recs_init(&f, r, 3);
    r[0].block_at_seq = 1;
    r[0].block_ms = BLOCK_MS;
    t0 = hist_now_us();
    a = start_rank(&f, &r[0], 2);
    b = start_rank(&f, &r[2], 1);
    while ((atomic_load(&r[1].finals) == 0 || atomic_load(&r[2].finals) == 0) &&
           hist_now_us() - t0 < 20000000)
        usleep(1000);
    ASSERT_EQ_INT(atomic_load(&r[0].finals), 0);
    ASSERT_EQ_INT(r[1].final_kind, COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(r[2].final_kind, COUNCIL_OUTCOME_OK);
    hist_bound(f.h, "run finalized while a sibling recorder blocks",
               (double)(r[1].final_us - t0) / 1000.0, BLOCK_MS / 2.0);
    hist_bound(f.h, "other run finalized while a recorder blocks",
               (double)(r[2].final_us - t0) / 1000.0, BLOCK_MS / 2.0);
    assert_outcome(wait_end(&f, b), COUNCIL_OUTCOME_OK, NULL);
    /* Waiting on a waits for its slow recorder too. */
    assert_outcome(wait_end(&f, a), COUNCIL_OUTCOME_OK, NULL);
    ASSERT(r[0].final_us - t0 >= BLOCK_MS * 1000);
    ASSERT_EQ_INT(atomic_load(&r[0].events), atomic_load(&r[1].events));
    council_run_release(a);
    council_run_release(b);
    fx_end(&f);
}

/* council_run_cancel from inside handle_event, on the recorder's own run:
 * no deadlock, the run ends cancelled, everyone finalized once. */
TEST_T(f8_cancel_from_handle_event, 30)
{
    fx f;
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    hist_rec r[4];
    council_run *a, *b;

    fx_open(&f, "f8_cancel_from_handle_event", 50);
    recs_init(&f, r, 4);
    r[0].cancel_on_type = "member_delta";
    r[2].cancel_at_seq = 2;
    a = start_rank(&f, &r[0], 2);
    b = start_script(&f, &s, &r[2], 2);
    assert_outcome(wait_end(&f, a), COUNCIL_OUTCOME_CANCELLED, NULL);
    assert_outcome(wait_end(&f, b), COUNCIL_OUTCOME_CANCELLED, NULL);
    ASSERT_EQ_INT(r[0].cancel_fired, 1);
    ASSERT_EQ_INT(r[2].cancel_fired, 1);
    council_run_release(a);
    council_run_release(b);
    fx_end(&f);
}

/* One of three recorders refuses: the start fails, the run never starts
 * (no model is asked), the first is finalized with an error naming the
 * refusal, the third never initialized; the engine goes on. */
TEST_T(f8_init_refuses_one_of_three, 30)
{
    fx f;
    hist_rec r[4];
    council_recorder_spec specs[3];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = (council_run *)1;
    council_engine_stats st;
    council_diag d;

    fx_open(&f, "f8_init_refuses_one_of_three", 0);
    recs_init(&f, r, 4);
    r[1].refuse = 1;
    hist_rec_specs(r, 3, specs);
    o.recorders = specs;
    o.n_recorders = 3;
    ASSERT_EQ_INT(hist_run(f.h, f.eng, f.def, "q", &o, &run, &d),
                  COUNCIL_EREFUSED);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(d.msg, "recorder 1 refused: refused by the test");
    ASSERT_EQ_INT(atomic_load(&r[0].finals), 1);
    ASSERT_EQ_INT(r[0].final_kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(r[0].final_reason, "refused by the test");
    ASSERT_EQ_INT(atomic_load(&r[1].inits), 1);
    ASSERT_EQ_INT(atomic_load(&r[1].finals), 0);
    ASSERT_EQ_INT(atomic_load(&r[2].inits), 0);
    council_engine_stats_get(f.eng, &st);
    ASSERT_EQ_U64(st.runs_started, 0);
    ASSERT_EQ_U64(council_mockllm_requests(f.mock), 0);
    /* Nothing was left behind: the next run is ordinary. */
    run = start_rank(&f, &r[3], 1);
    assert_outcome(wait_end(&f, run), COUNCIL_OUTCOME_OK, NULL);
    council_run_release(run);
    fx_end(&f);
}

/* ---- F9: cancellation
 * --------------------------------------------------------- */

/* As early as the API allows: from a recorder's init, before the run host
 * exists.  council_engine_cancel accepted the cancel (COUNCIL_OK), and the
 * run had not ended, so by council_run_cancel's contract it must win. */
TEST_T(f9_cancel_before_start, 30)
{
    fx f;
    hist_rec r[2];
    council_run *run;

    fx_open(&f, "f9_cancel_before_start", 0);
    recs_init(&f, r, 2);
    r[0].cancel_in_init = f.eng;
    run = start_rank(&f, r, 2);
    ASSERT_OK(r[0].init_cancel_rc);
    assert_outcome(wait_end(&f, run), COUNCIL_OUTCOME_CANCELLED, NULL);
    ASSERT_EQ_U64(council_mockllm_requests(f.mock), 0);
    council_run_release(run);
    fx_end(&f);
}

/* At each point of a rank run: during the members' answers, the
 * reviews, the synthesis; and at its terminal event (too late: it must
 * change nothing). */
TEST_T(f9_cancel_at_each_stage, 90)
{
    static const struct {
        const char *type, *stage, *expect;
        council_outcome_kind want;
    } at[] = {
        {"member_started", "answer", "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"member_delta", "answer", "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"stage_completed", "answer", "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"member_delta", "review", "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"review_completed", "review", "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"synthesis_started", NULL, "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"synthesis_delta", NULL, "cancelled", COUNCIL_OUTCOME_CANCELLED},
        {"run_completed", NULL, "none", COUNCIL_OUTCOME_OK},
    };
    fx f;
    size_t i;

    /* Slow streaming so that each stage lasts long enough to be caught. */
    fx_open(&f, "f9_cancel_at_each_stage", 100);
    for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        hist_rec r[2];
        council_run *run;
        recs_init(&f, r, 2);
        r[0].cancel_on_type = at[i].type;
        r[0].cancel_on_stage = at[i].stage;
        r[0].cancel_expect = at[i].expect;
        run = start_rank(&f, r, 2);
        assert_outcome(wait_end(&f, run), at[i].want, NULL);
        ASSERT_EQ_INT(r[0].cancel_fired, 1);
        council_run_release(run);
    }
    fx_end(&f);
}

/* From the test's thread: twice while it runs (one outcome), and after
 * it ended (nothing changes). */
TEST_T(f9_cancel_twice_and_after_completion, 30)
{
    static const council__script_step ok_steps[] = {STARTED, COMPLETED(0)};
    council__script s = {ok_steps, 2, COUNCIL__SCRIPT_EXIT};
    fx f;
    hist_rec r[2];
    council_run *a, *b;

    fx_open(&f, "f9_cancel_twice_and_after_completion", 50);
    recs_init(&f, r, 2);
    a = start_rank(&f, &r[0], 1);
    wait_deltas(&r[0], 2);
    ASSERT_OK(hist_cancel(f.h, a, "cancelled"));
    ASSERT_OK(hist_cancel(f.h, a, "cancelled"));
    assert_outcome(wait_end(&f, a), COUNCIL_OUTCOME_CANCELLED, NULL);
    ASSERT_OK(hist_cancel(f.h, a, "none"));
    assert_outcome(wait_end(&f, a), COUNCIL_OUTCOME_CANCELLED, NULL);

    b = start_script(&f, &s, &r[1], 1);
    assert_outcome(wait_end(&f, b), COUNCIL_OUTCOME_OK, NULL);
    ASSERT_OK(hist_cancel(f.h, b, "none"));
    ASSERT_OK(hist_cancel(f.h, b, "none"));
    assert_outcome(wait_end(&f, b), COUNCIL_OUTCOME_OK, NULL);
    council_run_release(a);
    council_run_release(b);
    fx_end(&f);
}

/* Cancel at a random moment against a fast rank run: it ends once, ok
 * (the completion won) or cancelled (the cancel won), as the history's
 * terminal event says. */
TEST_T(f9_cancel_races_completion, 90)
{
    enum { RUNS = 30 };
    uint64_t seed = runner_seed(), x = seed;
    fx f;
    hist_rec *r = calloc(RUNS, sizeof(*r));
    int i, ok = 0, cancelled = 0;

    fx_open(&f, "f9_cancel_races_completion", 0);
    hist_note_seed(f.h, seed);
    recs_init(&f, r, RUNS);
    for (i = 0; i < RUNS; i++) {
        council_run *run = start_rank(&f, &r[i], 1);
        const council_outcome *o;
        usleep((useconds_t)(next_rand(&x) % 40000));
        hist_cancel(f.h, run, "race");
        o = wait_end(&f, run);
        if (council_outcome_kind_of(o) == COUNCIL_OUTCOME_OK)
            ok++;
        else if (council_outcome_kind_of(o) == COUNCIL_OUTCOME_CANCELLED)
            cancelled++;
        else
            FAIL("outcome %s", council_outcome_json(o));
        council_run_release(run);
    }
    fprintf(stderr, "cancel vs completion: %d ok, %d cancelled\n", ok,
            cancelled);
    fx_end(&f);
    free(r);
}

/* Scripted runs that end on their own after a random delay, by a
 * completion or by a crash (the host exits without a terminal event),
 * against a cancel at another random delay: exactly one outcome,
 * cancelled only when the cancel came first. */
TEST_T(f9_cancel_races_crash_and_completion, 60)
{
    enum { RUNS = 200 };
    uint64_t seed = runner_seed(), x = seed;
    fx f;
    council__script_step *steps = calloc(2 * RUNS, sizeof(*steps));
    hist_rec *r = calloc(RUNS, sizeof(*r));
    council_run *runs[RUNS];
    int counts[2][2] = {{0}};
    int i;

    fx_open(&f, "f9_cancel_races_crash_and_completion", -1);
    hist_note_seed(f.h, seed);
    recs_init(&f, r, RUNS);
    for (i = 0; i < RUNS; i++) {
        int crash = i % 2;
        council__script s = {&steps[2 * i], 0, COUNCIL__SCRIPT_EXIT,
                             "exit status 3"};
        uint64_t delay = next_rand(&x) % 4;
        steps[2 * i] = (council__script_step)STARTED;
        if (crash) {
            steps[2 * i + 1] = (council__script_step)DELTA("half", delay);
        } else {
            steps[2 * i + 1] = (council__script_step)COMPLETED(delay);
        }
        s.n_steps = 2;
        runs[i] = start_script(&f, &s, &r[i], 1);
        if (crash)
            hist_fault(f.h, council_run_id(runs[i]), "host_exit", 2, "crashed",
                       "exit status 3");
        usleep((useconds_t)(next_rand(&x) % 4000));
        hist_cancel(f.h, runs[i], "race");
    }
    for (i = 0; i < RUNS; i++) {
        const council_outcome *o = wait_end(&f, runs[i]);
        council_outcome_kind k = council_outcome_kind_of(o);
        if (i % 2 == 1 && k == COUNCIL_OUTCOME_CRASHED)
            ASSERT_STR_EQ(council_outcome_reason(o), "exit status 3");
        else if (k != COUNCIL_OUTCOME_CANCELLED &&
                 !(i % 2 == 0 && k == COUNCIL_OUTCOME_OK))
            FAIL("run %d: outcome %s", i, council_outcome_json(o));
        counts[i % 2][k == COUNCIL_OUTCOME_CANCELLED ? 0 : 1]++;
        council_run_release(runs[i]);
    }
    fprintf(stderr,
            "cancel vs completion: %d cancelled, %d ok; "
            "cancel vs crash: %d cancelled, %d crashed\n",
            counts[0][0], counts[0][1], counts[1][0], counts[1][1]);
    fx_end(&f);
    free(r);
    free(steps);
}
