/* SPDX-License-Identifier: MIT */
/*
 * The run contract (DESIGN 2, from reference/recorder_process.ex), clause by
 * clause, driven by the scripted run host so no model is involved.  Each
 * test records what every recorder saw and checks it against the clause.
 * TEST_LABELS: threaded
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/script_host.h"
#include "runner.h"

/* ---- a recorder that keeps a history --------------------------------- */

#define MAX_SEEN 20000

typedef struct trec {
    /* configuration */
    int refuse;         /* init refuses */
    int fail_events;    /* handle_event returns -1 */
    unsigned fail_mask; /* ... for the seqs whose bit is set */
    int sleep_first_ms; /* sleep in the first handle_event */
    int cancel_on_seq;  /* call council_engine_cancel at this seq */
    int wait_on_seq;    /* call council_run_wait from handle_event */
    int cancel_in_init; /* call council_engine_cancel from init */
    council_err init_cancel_rc;
    council_engine *eng;
    _Atomic(council_run *) wait_run; /* set by the test after start */
    /* history */
    atomic_int inits;
    atomic_int finals;
    atomic_int events_after_final;
    atomic_int overlap;
    atomic_int busy;
    atomic_int flushes;
    int wait_rc;
    char run_id[80];
    uint64_t seqs[MAX_SEEN];
    council_event_type types[MAX_SEEN];
    size_t n;
    council_outcome_kind final_kind;
    char final_reason[256];
    char final_json[1024];
    int64_t final_at_us;
} trec;

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
enter(trec *t)
{
    if (atomic_fetch_add(&t->busy, 1) != 0)
        atomic_fetch_add(&t->overlap, 1);
}

static void
leave(trec *t)
{
    atomic_fetch_sub(&t->busy, 1);
}

static int
t_init(const char *run_id, void *args, void **state, char *why, size_t why_size)
{
    trec *t = args;

    enter(t);
    atomic_fetch_add(&t->inits, 1);
    snprintf(t->run_id, sizeof(t->run_id), "%s", run_id);
    if (t->cancel_in_init)
        t->init_cancel_rc = council_engine_cancel(t->eng, run_id);
    if (t->refuse) {
        snprintf(why, why_size, "disk is on fire");
        leave(t);
        return 1;
    }
    *state = t;
    leave(t);
    return 0;
}

static int
t_event(void *state, council_event *ev)
{
    trec *t = state;
    int rc = 0;

    enter(t);
    if (atomic_load(&t->finals) > 0)
        atomic_fetch_add(&t->events_after_final, 1);
    if (t->sleep_first_ms > 0 && t->n == 0)
        usleep((useconds_t)t->sleep_first_ms * 1000);
    if (t->n < MAX_SEEN) {
        t->seqs[t->n] = council_event_seq(ev);
        t->types[t->n] = council_event_type_of(ev);
        t->n++;
    }
    if (t->cancel_on_seq > 0 &&
        council_event_seq(ev) == (uint64_t)t->cancel_on_seq)
        council_engine_cancel(t->eng, council_event_run_id(ev));
    if (t->wait_on_seq > 0 &&
        council_event_seq(ev) == (uint64_t)t->wait_on_seq) {
        council_run *r;

        /* The event may come before the test thread stored the handle
         * that council_run_start returned. */
        while ((r = atomic_load(&t->wait_run)) == NULL)
            usleep(1000);
        t->wait_rc = council_run_wait(r, 0, NULL);
    }
    if (t->fail_events)
        rc = -1;
    if (council_event_seq(ev) < 32 &&
        (t->fail_mask >> council_event_seq(ev)) & 1)
        rc = -1;
    leave(t);
    return rc;
}

static void
t_flush(void *state)
{
    trec *t = state;

    enter(t);
    atomic_fetch_add(&t->flushes, 1);
    leave(t);
}

static void
t_final(void *state, const council_outcome *o)
{
    trec *t = state;
    const char *r = council_outcome_reason(o);

    enter(t);
    t->final_kind = council_outcome_kind_of(o);
    snprintf(t->final_reason, sizeof(t->final_reason), "%s",
             r != NULL ? r : "");
    snprintf(t->final_json, sizeof(t->final_json), "%s",
             council_outcome_json(o));
    t->final_at_us = mono_us();
    atomic_fetch_add(&t->finals, 1);
    leave(t);
}

static const council_recorder_ops trec_ops = {
    COUNCIL_RECORDER_OPS_VERSION, t_init, t_event, t_final, t_flush};

/* The per-recorder invariants I1, I2 of RELIABILITY.md. */
static void
check_history(const trec *t, size_t expect_events)
{
    size_t i;

    ASSERT_EQ_INT(atomic_load(&t->inits), 1);
    ASSERT_EQ_INT(atomic_load(&t->finals), 1);
    ASSERT_EQ_INT(atomic_load(&t->events_after_final), 0);
    ASSERT_EQ_INT(atomic_load(&t->overlap), 0);
    ASSERT_EQ_U64(t->n, expect_events);
    for (i = 0; i < t->n; i++)
        ASSERT_EQ_U64(t->seqs[i], i + 1);
}

/* ---- scripts ---------------------------------------------------------- */

#define STARTED                                                                \
    {                                                                          \
        COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, "{\"council\":\"test\"}", 0  \
    }
#define DELTA(m, txt)                                                          \
    {                                                                          \
        COUNCIL_EV_MEMBER_DELTA, "answer", m, txt, NULL, 0                     \
    }
#define COMPLETED                                                              \
    {                                                                          \
        COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL,                            \
            "{\"result\":{\"answer\":\"blue\"}}", 0                            \
    }
#define FAILED(kind)                                                           \
    {                                                                          \
        COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL,                               \
            "{\"errors\":[{\"kind\":\"" kind "\",\"message\":\"m\"}]}", 0      \
    }

static const council__script_step ok_steps[] = {STARTED, DELTA("a", "The "),
                                                DELTA("b", "sky "),
                                                DELTA("a", "is"), COMPLETED};

static council_engine *
open_engine(void)
{
    council_engine *eng = NULL;

    ASSERT_OK(council_engine_open(NULL, &eng));
    return eng;
}

static council_err
start(council_engine *eng, const council__script *s, trec **recs, size_t n,
      const char *run_id, council_run **run, council_diag *diag)
{
    council_recorder_spec specs[16];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    size_t i;

    for (i = 0; i < n; i++) {
        specs[i].ops = &trec_ops;
        specs[i].args = recs[i];
    }
    o.recorders = specs;
    o.n_recorders = n;
    o.run_id = run_id;
    return council__run_start_script(eng, s, &o, run, diag);
}

static const council_outcome *
wait_run(council_run *run)
{
    const council_outcome *o = NULL;

    ASSERT_OK(council_run_wait(run, 10000, &o));
    ASSERT_NOT_NULL(o);
    return o;
}

/* Clause 1: subscribe before start.  The host emits run_started inside its
 * start callback, before council_run_start even returns. */
TEST(subscribe_before_start_sees_run_started)
{
    council_engine *eng = open_engine();
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
    int r;

    s.emit_in_start = 1;
    for (r = 0; r < 200; r++) {
        trec *t[3];
        council_run *run;
        int i;
        for (i = 0; i < 3; i++)
            t[i] = calloc(1, sizeof(trec));
        ASSERT_OK(start(eng, &s, t, 3, NULL, &run, NULL));
        ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)),
                      COUNCIL_OUTCOME_OK);
        for (i = 0; i < 3; i++) {
            check_history(t[i], 5);
            ASSERT_EQ_INT(t[i]->types[0], COUNCIL_EV_RUN_STARTED);
            ASSERT_EQ_INT(t[i]->types[4], COUNCIL_EV_RUN_COMPLETED);
            ASSERT_STR_EQ(t[i]->run_id, council_run_id(run));
            free(t[i]);
        }
        council_run_release(run);
    }
    council_engine_close(eng);
}

/* Clause 2: init may refuse. */
TEST(init_refusal_fails_start_and_finalizes_earlier_recorders)
{
    council_engine *eng = open_engine();
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
    trec a = {0}, b = {0}, c = {0};
    trec *t[3] = {&a, &b, &c};
    council_engine_stats st;
    council_diag diag;
    council_run *run = (council_run *)1;
    int started = 0;

    b.refuse = 1;
    s.started = &started;
    ASSERT_EQ_INT(start(eng, &s, t, 3, NULL, &run, &diag), COUNCIL_EREFUSED);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(diag.msg, "recorder 1 refused: disk is on fire");
    /* The run never started. */
    ASSERT_EQ_INT(started, 0);
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.runs_started, 0);
    /* a: finalized once with an error naming the refusal, no events. */
    ASSERT_EQ_INT(atomic_load(&a.finals), 1);
    ASSERT_EQ_U64(a.n, 0);
    ASSERT_EQ_INT(a.final_kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(a.final_reason, "disk is on fire");
    ASSERT_STR_CONTAINS(a.final_json, "\"kind\":\"refused\"");
    /* b: refused, so never finalized; c: never initialized. */
    ASSERT_EQ_INT(atomic_load(&b.inits), 1);
    ASSERT_EQ_INT(atomic_load(&b.finals), 0);
    ASSERT_EQ_INT(atomic_load(&c.inits), 0);
    ASSERT_EQ_INT(atomic_load(&c.finals), 0);
    /* The id was released: the same id can start now. */
    b.refuse = 0;
    {
        trec d = {0};
        trec *td[1] = {&d};
        ASSERT_OK(start(eng, &s, td, 1, a.run_id, &run, NULL));
        wait_run(run);
        council_run_release(run);
        check_history(&d, 5);
    }
    council_engine_close(eng);
}

/* Clause 3: seq 1..n, each once, in order, no overlap; 8 recorders. */
TEST_T(seq_contiguous_in_order_to_eight_recorders, 30)
{
    enum { N = 10000 };
    council__script_step *steps = calloc(N, sizeof(*steps));
    council_engine *eng = open_engine();
    council__script s = {steps, N, COUNCIL__SCRIPT_EXIT};
    trec *t[8];
    council_run *run;
    council_engine_stats st;
    int i;

    steps[0] = (council__script_step)STARTED;
    for (i = 1; i < N - 1; i++)
        steps[i] = (council__script_step)DELTA("m", "x");
    steps[N - 1] = (council__script_step)COMPLETED;
    for (i = 0; i < 8; i++)
        t[i] = calloc(1, sizeof(trec));
    ASSERT_OK(start(eng, &s, t, 8, NULL, &run, NULL));
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)), COUNCIL_OUTCOME_OK);
    for (i = 0; i < 8; i++) {
        check_history(t[i], N);
        free(t[i]);
    }
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.events_published, N);
    ASSERT_EQ_U64(st.deliveries, 8 * N);
    council_run_release(run);
    council_engine_close(eng);
    free(steps);
}

/* Clause 4: each outcome kind, classified as the original does. */
TEST(finalize_once_with_each_outcome)
{
    static const council__script_step cancelled[] = {
        STARTED,
        {COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL,
         "{\"errors\":[{\"kind\":\"timeout\",\"message\":\"x\"},"
         "{\"kind\":\"cancelled\",\"message\":\"y\"}]}",
         0}};
    static const council__script_step failed[] = {STARTED, FAILED("quorum")};
    static const council__script_step crashed[] = {STARTED, DELTA("a", "half")};
    struct {
        const council__script_step *steps;
        size_t n;
        council_outcome_kind kind;
        const char *reason;
    } cases[] = {
        {ok_steps, 5, COUNCIL_OUTCOME_OK, ""},
        {cancelled, 2, COUNCIL_OUTCOME_CANCELLED, ""},
        {failed, 2, COUNCIL_OUTCOME_ERROR, "m"},
        {crashed, 2, COUNCIL_OUTCOME_CRASHED, "exit status 3"},
    };
    council_engine *eng = open_engine();
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        council__script s = {cases[i].steps, cases[i].n, COUNCIL__SCRIPT_EXIT,
                             "exit status 3"};
        trec t = {0};
        trec *tp[1] = {&t};
        council_run *run;
        const council_outcome *o;

        ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
        o = wait_run(run);
        ASSERT_EQ_INT(council_outcome_kind_of(o), cases[i].kind);
        ASSERT_EQ_INT(t.final_kind, cases[i].kind);
        ASSERT_STR_EQ(t.final_reason, cases[i].reason);
        /* Every event reaches handle_event, the terminal one included. */
        check_history(&t, cases[i].n);
        council_run_release(run);
    }
    council_engine_close(eng);
}

/* Clause 4: a terminal event broadcast before the host died wins. */
TEST(terminal_event_beats_crash)
{
    council_engine *eng = open_engine();
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT, "signal SIGKILL"};
    int r;

    for (r = 0; r < 100; r++) {
        trec t = {0};
        trec *tp[1] = {&t};
        council_run *run;
        s.emit_in_start = r % 2;
        ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
        ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)),
                      COUNCIL_OUTCOME_OK);
        ASSERT_EQ_INT(t.final_kind, COUNCIL_OUTCOME_OK);
        check_history(&t, 5);
        council_run_release(run);
    }
    council_engine_close(eng);
}

/* Clause 4: nothing after the terminal event reaches anyone. */
TEST(events_after_terminal_are_dropped)
{
    static const council__script_step steps[] = {
        STARTED, COMPLETED, DELTA("a", "late"), FAILED("late")};
    council_engine *eng = open_engine();
    council__script s = {steps, 4, COUNCIL__SCRIPT_EXIT};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;
    council_engine_stats st;

    ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)), COUNCIL_OUTCOME_OK);
    check_history(&t, 2);
    /* The host may still be emitting its late events when wait returns
     * (wait follows the outcome, not the host): read the counters once
     * the run has exited. */
    {
        int64_t t0 = mono_us();
        do {
            usleep(1000);
            council_engine_stats_get(eng, &st);
        } while (st.events_dropped < 2 && mono_us() - t0 < 2000000);
    }
    usleep(20000);
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.events_dropped, 2);
    ASSERT_EQ_U64(st.events_published, 2);
    check_history(&t, 2);
    council_run_release(run);
    council_engine_close(eng);
}

/* Clause 5: the exact crash reason, even when the host dies at once. */
TEST(crash_reason_is_exact_even_immediately)
{
    council_engine *eng = open_engine();
    council__script s = {NULL, 0, COUNCIL__SCRIPT_EXIT, "signal SIGSEGV"};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;
    const council_outcome *o;

    s.emit_in_start = 1;
    ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
    o = wait_run(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(council_outcome_reason(o), "signal SIGSEGV");
    ASSERT_STR_EQ(t.final_reason, "signal SIGSEGV");
    check_history(&t, 0);
    council_run_release(run);
    council_engine_close(eng);
}

/* Clause 5: a host that cannot start leaves no orphan recorder. */
TEST(host_start_failure_finalizes_recorders)
{
    council_engine *eng = open_engine();
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
    trec a = {0}, b = {0};
    trec *tp[2] = {&a, &b};
    council_run *run = NULL;
    council_diag diag;
    council_engine_stats st;

    s.fail_start = "worker binary missing";
    ASSERT_EQ_INT(start(eng, &s, tp, 2, NULL, &run, &diag), COUNCIL_ESTART);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(diag.msg, "worker binary missing");
    /* Finalization runs on the pool: close waits for it. */
    council_engine_close(eng);
    check_history(&a, 0);
    check_history(&b, 0);
    ASSERT_EQ_INT(a.final_kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(a.final_reason, "worker binary missing");
    (void)st;
}

/* Clause 6: a slow recorder delays only itself. */
TEST(slow_recorder_delays_only_itself)
{
    council_engine *eng = open_engine();
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
    trec slow = {0}, fast = {0};
    trec *tp[2] = {&slow, &fast};
    council_run *run;
    int64_t t0 = mono_us();

    slow.sleep_first_ms = 1500;
    ASSERT_OK(start(eng, &s, tp, 2, NULL, &run, NULL));
    /* The fast recorder is finalized long before the slow one wakes. */
    while (atomic_load(&fast.finals) == 0 && mono_us() - t0 < 5000000)
        usleep(1000);
    ASSERT_EQ_INT(atomic_load(&fast.finals), 1);
    ASSERT(mono_us() - t0 < 1000000);
    ASSERT_EQ_INT(atomic_load(&slow.finals), 0);
    /* wait returns only when every recorder is finalized. */
    wait_run(run);
    ASSERT_EQ_INT(atomic_load(&slow.finals), 1);
    ASSERT(slow.final_at_us - t0 >= 1500000);
    check_history(&slow, 5);
    check_history(&fast, 5);
    council_run_release(run);
    council_engine_close(eng);
}

static char logged[512];
static atomic_int log_lines;

static char last_logged[512], all_logged[4096];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void
capture_log(const char *line, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&log_mu);
    if (atomic_fetch_add(&log_lines, 1) == 0)
        snprintf(logged, sizeof(logged), "%s", line);
    snprintf(last_logged, sizeof(last_logged), "%s", line);
    if (strlen(all_logged) + strlen(line) + 2 < sizeof(all_logged)) {
        strcat(all_logged, line);
        strcat(all_logged, "\n");
    }
    pthread_mutex_unlock(&log_mu);
}

/* Clause 6: a failing recorder is reported and still finalized. */
TEST(failing_recorder_is_reported_and_finalized)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *eng;
    council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
    trec bad = {0}, good = {0};
    trec *tp[2] = {&bad, &good};
    council_run *run;
    council_engine_stats st;

    eo.log = capture_log;
    ASSERT_OK(council_engine_open(&eo, &eng));
    bad.fail_events = 1;
    ASSERT_OK(start(eng, &s, tp, 2, NULL, &run, NULL));
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)), COUNCIL_OUTCOME_OK);
    check_history(&bad, 5);
    check_history(&good, 5);
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.recorder_failures, 5);
    /* One episode of five failures: its first, and its sum at the end
     * (never a line per event). */
    ASSERT_EQ_INT(atomic_load(&log_lines), 2);
    ASSERT_STR_CONTAINS(logged, "recorder 0 failed on seq 1 (run_started)");
    ASSERT_STR_CONTAINS(last_logged,
                        "recorder 0 failed on 5 events (seq 1 to 5)");
    council_run_release(run);
    council_engine_close(eng);
}

static const council__script_step hang_steps[] = {STARTED,
                                                  DELTA("a", "thinking")};

/* Cancel: the run ends as cancelled; cancelling twice or late is fine. */
TEST(cancel_ends_run_cancelled)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;

    ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
    ASSERT_EQ_INT(council_run_wait(run, 100, NULL), COUNCIL_ETIMEDOUT);
    ASSERT_OK(council_run_cancel(run));
    ASSERT_OK(council_run_cancel(run));
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)),
                  COUNCIL_OUTCOME_CANCELLED);
    check_history(&t, 3);
    ASSERT_EQ_INT(t.types[2], COUNCIL_EV_RUN_FAILED);
    ASSERT_OK(council_run_cancel(run));
    ASSERT_EQ_INT(council_engine_cancel(eng, council_run_id(run)),
                  COUNCIL_ENOTFOUND);
    council_run_release(run);
    council_engine_close(eng);
}

/* Cancelling its own run from handle_event works and never deadlocks;
 * council_run_wait from the same callback says EDEADLK. */
TEST(cancel_and_wait_from_inside_handle_event)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;

    t.eng = eng;
    t.cancel_on_seq = 2;
    t.wait_on_seq = 3; /* before start: seq 3 may come before start returns */
    ASSERT_OK(start(eng, &s, tp, 1, "self-cancel", &run, NULL));
    atomic_store(&t.wait_run, run);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)),
                  COUNCIL_OUTCOME_CANCELLED);
    ASSERT_EQ_INT(t.wait_rc, COUNCIL_EDEADLK);
    check_history(&t, 3);
    council_run_release(run);
    council_engine_close(eng);
}

/* A cancel that reaches the loop before the run's start (from a recorder's
 * init, by id: the run is registered, its host not started) is not lost:
 * the host is cancelled as it starts (the lifecycle's STARTING x cancel
 * cell), and the run ends cancelled. */
TEST(cancel_before_start_is_kept)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;
    int started = 0;

    s.started = &started;
    t.eng = eng;
    t.cancel_in_init = 1;
    ASSERT_OK(start(eng, &s, tp, 1, "cancel-first", &run, NULL));
    ASSERT_OK(t.init_cancel_rc);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)),
                  COUNCIL_OUTCOME_CANCELLED);
    /* The host started and was cancelled at once: its first event is
     * the cancelled run_failed. */
    ASSERT_EQ_INT(started, 1);
    ASSERT(t.n >= 1);
    ASSERT_EQ_INT(t.types[t.n - 1], COUNCIL_EV_RUN_FAILED);
    check_history(&t, t.n);
    council_run_release(run);
    council_engine_close(eng);
}

/* The run's deadline ends it as an error of kind "deadline". */
TEST(deadline_ends_run)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    council_recorder_spec spec;
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    trec t = {0};
    council_run *run;
    const council_outcome *out;
    int64_t t0 = mono_us();

    spec.ops = &trec_ops;
    spec.args = &t;
    o.recorders = &spec;
    o.n_recorders = 1;
    o.deadline_ms = 200;
    ASSERT_OK(council__run_start_script(eng, &s, &o, &run, NULL));
    out = wait_run(run);
    ASSERT_EQ_INT(council_outcome_kind_of(out), COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(council_outcome_errors_json(out),
                        "\"kind\":\"deadline\"");
    ASSERT(mono_us() - t0 >= 200000);
    ASSERT(mono_us() - t0 < 1200000);
    check_history(&t, 3);
    council_run_release(run);
    council_engine_close(eng);
}

/* A caller-chosen id already in flight is refused before any init. */
TEST(run_id_in_use_is_refused)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec a = {0}, b = {0};
    trec *ta[1] = {&a}, *tb[1] = {&b};
    council_run *r1, *r2 = NULL;
    council_diag diag;

    ASSERT_OK(start(eng, &s, ta, 1, "same", &r1, NULL));
    ASSERT_EQ_INT(start(eng, &s, tb, 1, "same", &r2, &diag), COUNCIL_EEXIST);
    ASSERT_STR_CONTAINS(diag.msg, "already in use");
    ASSERT_EQ_INT(atomic_load(&b.inits), 0);
    ASSERT_EQ_INT(start(eng, &s, tb, 1, "bad/id", &r2, &diag), COUNCIL_EINVAL);
    council_run_cancel(r1);
    wait_run(r1);
    council_run_release(r1);
    council_engine_close(eng);
}

/* Shutdown: every run in flight ends crashed("shutdown"), within bound. */
TEST_T(close_with_runs_in_flight, 30)
{
    enum { RUNS = 100 };
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec *t = calloc(RUNS, sizeof(trec));
    council_run *runs[RUNS];
    int64_t t0;
    int i;

    for (i = 0; i < RUNS; i++) {
        trec *tp[1] = {&t[i]};
        ASSERT_OK(start(eng, &s, tp, 1, NULL, &runs[i], NULL));
    }
    usleep(50000);
    t0 = mono_us();
    council_engine_close(eng);
    /* Bound: 1 s for 100 runs (measured: a few ms). */
    ASSERT(mono_us() - t0 < 1000000);
    for (i = 0; i < RUNS; i++) {
        const council_outcome *o = NULL;
        ASSERT_OK(council_run_wait(runs[i], 0, &o));
        ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CRASHED);
        ASSERT_STR_EQ(council_outcome_reason(o), "shutdown");
        ASSERT_EQ_INT(t[i].final_kind, COUNCIL_OUTCOME_CRASHED);
        check_history(&t[i], 2);
        council_run_release(runs[i]);
    }
    free(t);
}

/* Shutdown with a recorder blocked in handle_event: close waits for it,
 * and it is still finalized once, after its last event. */
TEST(close_waits_for_blocked_recorder)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    trec t = {0};
    trec *tp[1] = {&t};
    council_run *run;
    int64_t t0 = mono_us();

    t.sleep_first_ms = 500;
    ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
    usleep(50000);
    council_engine_close(eng);
    ASSERT(mono_us() - t0 >= 500000);
    ASSERT_EQ_INT(t.final_kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(t.final_reason, "shutdown");
    check_history(&t, 2);
    council_run_release(run);
}

/* Starting after close began is refused; nothing is left behind. */
TEST(start_on_closing_engine)
{
    council_engine *eng = open_engine();

    council_engine_close(eng);
    council_engine_close(NULL);
}

/* ---- subscriptions ------------------------------------------------------ */

typedef struct tsub {
    atomic_int events;
    atomic_int ends;
    atomic_int after_end;
    int end_null;
    uint64_t last_seq;
    int order_bad;
} tsub;

static void
s_event(council_event *ev, void *ud)
{
    tsub *s = ud;

    if (atomic_load(&s->ends) > 0)
        atomic_fetch_add(&s->after_end, 1);
    if (s->last_seq != 0 && council_event_seq(ev) != s->last_seq + 1)
        s->order_bad = 1;
    s->last_seq = council_event_seq(ev);
    atomic_fetch_add(&s->events, 1);
}

static void
s_end(const council_outcome *o, void *ud)
{
    tsub *s = ud;

    s->end_null = o == NULL;
    atomic_fetch_add(&s->ends, 1);
}

TEST(subscribe_follows_until_end)
{
    static const council__script_step steps[] = {
        STARTED,
        {COUNCIL_EV_MEMBER_DELTA, "answer", "a", "x", NULL, 200},
        DELTA("a", "y"),
        COMPLETED};
    council_engine *eng = open_engine();
    council__script s = {steps, 4, COUNCIL__SCRIPT_EXIT};
    council_run *run;
    council_sub *sub;
    tsub ts = {0};

    ASSERT_OK(start(eng, &s, NULL, 0, "followed", &run, NULL));
    ASSERT_OK(
        council_run_subscribe(eng, "followed", s_event, s_end, &ts, &sub));
    wait_run(run);
    council_unsubscribe(sub); /* after the end: only frees */
    ASSERT_EQ_INT(atomic_load(&ts.ends), 1);
    ASSERT_EQ_INT(ts.end_null, 0);
    ASSERT_EQ_INT(ts.order_bad, 0);
    ASSERT_EQ_INT(atomic_load(&ts.after_end), 0);
    /* Subscribed before the delayed step: saw at least the last three. */
    ASSERT(atomic_load(&ts.events) >= 3);
    ASSERT_EQ_U64(ts.last_seq, 4);
    ASSERT_EQ_INT(
        council_run_subscribe(eng, "followed", s_event, s_end, &ts, &sub),
        COUNCIL_ENOTFOUND);
    council_run_release(run);
    council_engine_close(eng);
}

TEST(unsubscribe_mid_run_ends_with_null)
{
    council_engine *eng = open_engine();
    council__script s = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    council_run *run;
    council_sub *sub;
    tsub ts = {0};
    int ev_at_unsub;

    ASSERT_OK(start(eng, &s, NULL, 0, "u", &run, NULL));
    ASSERT_OK(council_run_subscribe(eng, "u", s_event, s_end, &ts, &sub));
    council_unsubscribe(sub);
    /* on_end(NULL) has run by the time unsubscribe returns. */
    ASSERT_EQ_INT(atomic_load(&ts.ends), 1);
    ASSERT_EQ_INT(ts.end_null, 1);
    ev_at_unsub = atomic_load(&ts.events);
    council_run_cancel(run);
    wait_run(run);
    ASSERT_EQ_INT(atomic_load(&ts.events), ev_at_unsub);
    council_run_release(run);
    council_engine_close(eng);
}

/* ---- a randomized mix (RELIABILITY I1-I3 under concurrency) ------------- */

typedef struct mix_run {
    council_run *run;
    trec rec[2];
    int kind; /* 0 ok, 1 crash, 2 hang+cancel, 3 hang until close */
} mix_run;

static council_engine *mix_eng;
static mix_run *mix;
static int mix_n;

static void *
canceller(void *arg)
{
    uint64_t seed = *(uint64_t *)arg;
    int i;

    for (i = 0; i < mix_n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (mix[i].kind == 2) {
            usleep((useconds_t)((seed >> 33) % 300));
            council_run_cancel(mix[i].run);
        }
    }
    return NULL;
}

TEST_T(random_mix_of_outcomes_and_cancels, 60)
{
    static const council__script_step crash_steps[] = {STARTED,
                                                       DELTA("a", "1")};
    uint64_t seed = runner_seed();
    uint64_t x = seed;
    pthread_t th;
    int i;

    mix_n = 400;
    mix = calloc((size_t)mix_n, sizeof(*mix));
    mix_eng = open_engine();
    for (i = 0; i < mix_n; i++) {
        council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT,
                             "signal SIGKILL"};
        trec *tp[2] = {&mix[i].rec[0], &mix[i].rec[1]};
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        mix[i].kind = (int)((x >> 33) % 4);
        if (mix[i].kind == 1) {
            s.steps = crash_steps;
            s.n_steps = 2;
        } else if (mix[i].kind >= 2) {
            s.steps = hang_steps;
            s.n_steps = 2;
            s.then = COUNCIL__SCRIPT_HANG;
        }
        s.emit_in_start = (int)((x >> 40) & 1);
        ASSERT_OK(start(mix_eng, &s, tp, 2, NULL, &mix[i].run, NULL));
    }
    pthread_create(&th, NULL, canceller, &seed);
    pthread_join(th, NULL);
    for (i = 0; i < mix_n; i++)
        if (mix[i].kind != 3)
            wait_run(mix[i].run);
    council_engine_close(mix_eng);
    for (i = 0; i < mix_n; i++) {
        static const council_outcome_kind want[] = {
            COUNCIL_OUTCOME_OK, COUNCIL_OUTCOME_CRASHED,
            COUNCIL_OUTCOME_CANCELLED, COUNCIL_OUTCOME_CRASHED};
        static const size_t n_events[] = {5, 2, 3, 2};
        int k;
        for (k = 0; k < 2; k++) {
            trec *t = &mix[i].rec[k];
            check_history(t, n_events[mix[i].kind]);
            ASSERT_EQ_INT(t->final_kind, want[mix[i].kind]);
            if (mix[i].kind == 3)
                ASSERT_STR_EQ(t->final_reason, "shutdown");
        }
        council_run_release(mix[i].run);
    }
    free(mix);
}

/* ---- spinning before sleeping (engine option spin_us, core/spin.h) ---- */

/* The option's range, and a version-2 struct (which has no spin_us)
 * still opens. */
TEST(spin_option_range)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *eng = NULL;
    const int bad[] = {-2, 10001, -1000};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eo.spin_us = bad[i];
        ASSERT_EQ_INT(council_engine_open(&eo, &eng), COUNCIL_EINVAL);
        ASSERT(eng == NULL);
    }
    eo.version = COUNCIL_ENGINE_OPTS_VERSION + 1;
    eo.spin_us = 0;
    ASSERT_EQ_INT(council_engine_open(&eo, &eng), COUNCIL_EINVAL);
    eo.version = 2;
    eo.spin_us = 99999; /* not read: version 2 ends before it */
    ASSERT_OK(council_engine_open(&eo, &eng));
    council_engine_close(eng);
}

/* Whatever the budget, and with starts spaced around it (so a loop often
 * goes cold just as a command comes: the race post and on_hot close with
 * their fences), every run keeps the contract and none waits for a wakeup
 * that never comes. */
TEST_T(every_spin_budget_keeps_the_contract, 60)
{
    static const int budgets[] = {-1, 0, 1, 20, 50, 10000};
    uint64_t x = runner_seed();
    size_t b;

    for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
        council_engine *eng;
        int i;

        eo.spin_us = budgets[b];
        eo.loop_threads = 1 + (int)(b % 2);
        eo.recorder_threads = 1 + (int)(b % 3);
        ASSERT_OK(council_engine_open(&eo, &eng));
        for (i = 0; i < 300; i++) {
            council__script s = {ok_steps, 5, COUNCIL__SCRIPT_EXIT};
            trec t[2];
            trec *tp[2] = {&t[0], &t[1]};
            council_run *run;
            const council_outcome *o = NULL;

            memset(t, 0, sizeof(t));
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            s.emit_in_start = (int)((x >> 40) & 1);
            ASSERT_OK(start(eng, &s, tp, 2, NULL, &run, NULL));
            ASSERT_OK(council_run_wait(run, 10000, &o));
            ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
            check_history(&t[0], 5);
            check_history(&t[1], 5);
            council_run_release(run);
            /* 0-127 us: around the budgets of 1, 20 and 50 us. */
            if ((x >> 20) & 1)
                usleep((useconds_t)((x >> 24) & 127));
        }
        council_engine_close(eng);
    }
}

/* Failures are logged by episode: the first of each, and a sum when the
 * recorder records again (then) or the run ends; an episode of one is its
 * first line alone. */
static const council__script_step nine_steps[] = {
    STARTED,         DELTA("a", "1"), DELTA("a", "2"),
    DELTA("a", "3"), DELTA("a", "4"), DELTA("a", "5"),
    DELTA("a", "6"), DELTA("a", "7"), COMPLETED};

TEST(recorder_failures_are_logged_by_episode)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *eng;
    council__script s = {nine_steps, 9, COUNCIL__SCRIPT_EXIT};
    trec bad = {0};
    trec *tp[1] = {&bad};
    council_run *run;
    council_engine_stats st;

    eo.log = capture_log;
    atomic_store(&log_lines, 0);
    ASSERT_OK(council_engine_open(&eo, &eng));
    /* seq 2-5 fail (an episode of four), 6 is recorded, 8 fails alone. */
    bad.fail_mask = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 8);
    ASSERT_OK(start(eng, &s, tp, 1, NULL, &run, NULL));
    ASSERT_EQ_INT(council_outcome_kind_of(wait_run(run)), COUNCIL_OUTCOME_OK);
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.recorder_failures, 5);
    ASSERT_EQ_INT(atomic_load(&log_lines), 3);
    ASSERT_STR_CONTAINS(logged, "recorder 0 failed on seq 2 (member_delta)");
    ASSERT_STR_CONTAINS(all_logged, "recorder 0 failed on 4 events (seq 2 to "
                                    "5), then recorded seq 6\n");
    ASSERT_STR_CONTAINS(last_logged, "recorder 0 failed on seq 8");
    council_run_release(run);
    council_engine_close(eng);
}
