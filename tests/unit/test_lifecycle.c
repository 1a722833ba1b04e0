/* SPDX-License-Identifier: MIT */
/*
 * The run lifecycle's table (src/core/lifecycle.c), cell by cell, with a
 * host written for each case: it does, from its start, its cancel or its
 * shutdown callback, exactly the inputs of the cell under test (emit,
 * terminal, exit, a failed start), in the order the cell needs.  The
 * cells reached through the public API alone (a plain run, a cancel, a
 * deadline, a crash) are in test_contract.c; "bail" cells cannot be
 * reached by a host that follows core/run.h and are not tested.
 * TEST_LABELS: threaded
 */
#include <string.h>

#include "core/run.h"
#include "runner.h"

/* ---- a recorder that keeps its seqs and its outcome ------------------- */

typedef struct trec {
    int finals;
    size_t n;
    uint64_t seq[64];
    council_event_type type[64];
    council_outcome_kind kind;
    char reason[200];
} trec;

static int
t_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
t_event(void *state, council_event *ev)
{
    trec *t = state;

    if (t->n < 64) {
        t->seq[t->n] = council_event_seq(ev);
        t->type[t->n] = council_event_type_of(ev);
        t->n++;
    }
    return 0;
}

static void
t_final(void *state, const council_outcome *o)
{
    trec *t = state;
    const char *r = council_outcome_reason(o);

    t->finals++;
    t->kind = council_outcome_kind_of(o);
    snprintf(t->reason, sizeof(t->reason), "%s", r != NULL ? r : "");
}

static const council_recorder_ops trec_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                              t_init, t_event, t_final, NULL};

/* ---- a host that plays one cell ---------------------------------------- */

enum act {
    A_NONE,
    A_EMIT,     /* a member_delta */
    A_TERMINAL, /* run_completed */
    A_EXIT,     /* council__run_exit(run, "host exit") */
    A_FAIL      /* start returns COUNCIL_ESTART (last only) */
};

typedef struct host {
    council_run *run;
    enum act in_start[6];
    enum act in_cancel[4];
    enum act in_shutdown[4];
    council_err emit_rc[8]; /* what each council__run_emit returned */
    int n_emit;
    int freed;
} host;

static void
play(host *h, const enum act *acts, size_t n)
{
    council__event_init in;
    size_t i;

    for (i = 0; i < n; i++) {
        memset(&in, 0, sizeof(in));
        switch (acts[i]) {
        case A_NONE:
        case A_FAIL:
            return;
        case A_EMIT:
            in.type = COUNCIL_EV_MEMBER_DELTA;
            in.stage = "answer";
            in.member = "a";
            in.text = "x";
            in.text_len = 1;
            h->emit_rc[h->n_emit++] = council__run_emit(h->run, &in);
            break;
        case A_TERMINAL:
            in.type = COUNCIL_EV_RUN_COMPLETED;
            in.data = json_pack("{s:{s:s}}", "result", "answer", "ok");
            h->emit_rc[h->n_emit++] = council__run_emit(h->run, &in);
            break;
        case A_EXIT:
            council__run_exit(h->run, "host exit");
            break;
        }
    }
}

static council_err
h_start(council_run *run, void *state, char *msg, size_t size)
{
    host *h = state;
    size_t i;

    h->run = run;
    play(h, h->in_start, 6);
    for (i = 0; i < 6; i++)
        if (h->in_start[i] == A_FAIL) {
            snprintf(msg, size, "told to fail");
            return COUNCIL_ESTART;
        }
    return COUNCIL_OK;
}

static void
h_cancel(void *state, const char *kind)
{
    host *h = state;

    (void)kind;
    play(h, h->in_cancel, 4);
}

static void
h_shutdown(void *state)
{
    host *h = state;

    play(h, h->in_shutdown, 4);
}

static void
h_free(void *state)
{
    ((host *)state)->freed++;
}

static const council__host_ops ops = {h_start, h_cancel, h_shutdown, h_free};

static council_err
start(council_engine *eng, host *h, trec *t, council_run **run, council_diag *d)
{
    council_recorder_spec rec = {&trec_ops, t};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};

    ro.recorders = &rec;
    ro.n_recorders = 1;
    return council__run_start_host(eng, &ops, h, &ro, run, d);
}

static void
contiguous(const trec *t)
{
    ASSERT_EQ_INT(t->finals, 1);
    for (size_t i = 0; i < t->n; i++)
        ASSERT_EQ_U64(t->seq[i], i + 1);
}

/* RUNNING x emit, terminal; TERMINAL x emit, terminal (dropped, counted,
 * ECLOSED); TERMINAL x exit (-> EXITED, the terminal's outcome). */
TEST(terminal_state_drops_later_events)
{
    council_engine *eng;
    council_engine_stats st;
    host h = {.in_start = {A_EMIT, A_TERMINAL, A_EMIT, A_TERMINAL, A_EXIT}};
    trec t = {0};
    council_run *run;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(start(eng, &h, &t, &run, NULL));
    ASSERT_OK(council_run_wait(run, 10000, NULL));
    ASSERT_EQ_INT(h.emit_rc[0], COUNCIL_OK);
    ASSERT_EQ_INT(h.emit_rc[1], COUNCIL_OK);
    ASSERT_EQ_INT(h.emit_rc[2], COUNCIL_ECLOSED);
    ASSERT_EQ_INT(h.emit_rc[3], COUNCIL_ECLOSED);
    council_engine_stats_get(eng, &st);
    ASSERT_EQ_U64(st.events_dropped, 2);
    council_run_release(run);
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_U64(t.n, 2);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(h.freed, 1);
}

/* RUNNING x exit (crash) then EXITED x exit (nop) and EXITED x emit
 * (dropped): the first exit's reason stands. */
TEST(exited_state_ignores_a_second_exit_and_events)
{
    council_engine *eng;
    host h = {.in_start = {A_EMIT, A_EXIT, A_EXIT, A_EMIT}};
    trec t = {0};
    council_run *run;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(start(eng, &h, &t, &run, NULL));
    ASSERT_OK(council_run_wait(run, 10000, NULL));
    ASSERT_EQ_INT(h.emit_rc[1], COUNCIL_ECLOSED);
    council_run_release(run);
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_U64(t.n, 1);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(t.reason, "host exit");
    ASSERT_EQ_INT(h.freed, 1);
}

/* A failed start after the host emitted its terminal (TERMINAL x failed
 * start -> EXITED): the terminal's outcome stands, start says ESTART. */
TEST(failed_start_after_terminal_keeps_the_terminal)
{
    council_engine *eng;
    host h = {.in_start = {A_TERMINAL, A_FAIL}};
    trec t = {0};
    council_run *run = NULL;
    council_diag d;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_EQ_INT(start(eng, &h, &t, &run, &d), COUNCIL_ESTART);
    ASSERT_STR_CONTAINS(d.msg, "told to fail");
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_U64(t.n, 1);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(h.freed, 1);
}

/* A failed start after the host exited (EXITED x failed start): the
 * exit's crash stands; the host is freed once. */
TEST(failed_start_after_exit_keeps_the_crash)
{
    council_engine *eng;
    host h = {.in_start = {A_EMIT, A_EXIT, A_FAIL}};
    trec t = {0};
    council_run *run = NULL;
    council_diag d;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_EQ_INT(start(eng, &h, &t, &run, &d), COUNCIL_ESTART);
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(t.reason, "host exit");
    ASSERT_EQ_INT(h.freed, 1);
}

/* A failed start with nothing emitted (RUNNING x failed start): an error
 * outcome naming the cause. */
TEST(failed_start_is_an_error_naming_it)
{
    council_engine *eng;
    host h = {.in_start = {A_FAIL}};
    trec t = {0};
    council_run *run = NULL;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_EQ_INT(start(eng, &h, &t, &run, NULL), COUNCIL_ESTART);
    council_engine_close(eng);
    ASSERT_EQ_INT(t.finals, 1);
    ASSERT_EQ_U64(t.n, 0);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(t.reason, "told to fail");
}

/* TERMINAL x shutdown: a host that emitted its terminal but has not
 * exited when the engine closes is shut down, and the run keeps the
 * terminal's outcome (not crashed("shutdown")). */
TEST(shutdown_after_terminal_keeps_the_terminal)
{
    council_engine *eng;
    host h = {.in_start = {A_EMIT, A_TERMINAL}};
    trec t = {0};
    council_run *run;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(start(eng, &h, &t, &run, NULL));
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_U64(t.n, 2);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_OK);
    council_run_release(run);
    ASSERT_EQ_INT(h.freed, 1);
}

/* RUNNING x shutdown with a host that exits by itself in its shutdown
 * callback, with its own reason: the engine's exit("shutdown") after it
 * is an EXITED x exit nop, and the host's reason stands. */
TEST(shutdown_with_a_host_that_exits_itself)
{
    council_engine *eng;
    host h = {.in_start = {A_EMIT}, .in_shutdown = {A_EXIT}};
    trec t = {0};
    council_run *run;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(start(eng, &h, &t, &run, NULL));
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(t.reason, "host exit");
    council_run_release(run);
}

/* RUNNING x cancel with a host that ignores it (emits nothing): the run
 * goes on; TERMINAL x cancel after the terminal: nop. */
TEST(cancel_is_the_hosts_to_honour)
{
    council_engine *eng;
    host h = {.in_start = {A_EMIT}};
    trec t = {0};
    council_run *run;

    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(start(eng, &h, &t, &run, NULL));
    ASSERT_OK(council_run_cancel(run));
    ASSERT_EQ_INT(council_run_wait(run, 200, NULL), COUNCIL_ETIMEDOUT);
    council_engine_close(eng);
    contiguous(&t);
    ASSERT_EQ_INT(t.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(t.reason, "shutdown");
    council_run_release(run);
}
