/* SPDX-License-Identifier: MIT */
/*
 * The process faults (RELIABILITY.md F4, DISTRIBUTED.md 5) against real
 * child-process run hosts (build/council-host, $COUNCIL_HOST_PROGRAM, which
 * CTest sets) and the real mock LLM over loopback, each case writing a
 * history (tests/support/history.h) and ending with the one checker
 * (I1-I5): a child killed by SIGKILL after every event k of a run (at the
 * terminal event the terminal must win), by SIGSEGV, abort or exit(3) at
 * several k and before it was ready; stopped past its heartbeat; leaving a
 * grandchild on its socket; closing its socket and living on; writing
 * garbage, a 1 GiB frame or a seq out of order; a cancel that reaches the
 * child and one it ignores; the deadline; engine close with isolated runs
 * in flight; and children dying with their parent.
 *
 * The child misbehaves on cue: COUNCIL_TEST_HOST_FAULT=ACTION@SEQ
 * (src/host/child.c) acts right after it wrote event SEQ.  The variable
 * is set before the engine opens (its children inherit it), and the
 * fault's record, with the outcome it must produce, is written before the
 * run starts, under the run's caller-chosen id, so it precedes anything
 * the fault causes.  Each run has two history recorders.  What the
 * history cannot say (how many events a child sent before it died, a
 * lower time bound, an error's text) the case checks itself; those checks
 * are collected and reported after the checker's verdict, so that a
 * broken host is reported by the checker first.  With $COUNCIL_HISTORY_DIR
 * set, each case leaves its history there (bench/fault_figures.sh).
 * tests/integration/test_isolation.c keeps the cases that are not faults.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_history.h"
#include "history.h"
#include "host/host.h"
#include "runner.h"

/* ---- the case: its history, and its own checks -------------------------- */

static hist *H;
static int fds0;
static char own[8192];
static size_t own_len;

/* Begin the case: the history (and the tap) first, then the baseline of
 * descriptors. */
static void
case_begin(const char *name)
{
    H = hist_open_case(name);
    fds0 = hist_count_fds();
    hist_tap_install(H);
}

static void own_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A check of the case's own that failed: kept for the end of the case. */
static void
own_fail(const char *fmt, ...)
{
    va_list ap;
    int n;

    if (own_len + 2 >= sizeof(own))
        return;
    va_start(ap, fmt);
    n = vsnprintf(own + own_len, sizeof(own) - own_len - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    own_len += (size_t)n < sizeof(own) - own_len - 1
                   ? (size_t)n
                   : sizeof(own) - own_len - 2;
    own[own_len++] = '\n';
    own[own_len] = '\0';
}

/* End the case: resources, the checker's verdict, then the case's own. */
static void
case_end(void)
{
    hist_tap_remove();
    hist_resources(H, fds0);
    if (own_len > 0)
        fprintf(stderr, "the case's own checks failed:\n%s", own);
    hist_assert_clean(H);
    hist_close(H);
    H = NULL;
    if (own_len > 0)
        FAIL("the history is clean, but:\n%s", own);
}

/* ---- the council and the engine ----------------------------------------- */

typedef struct fixture {
    council_mockllm *mock;
    council_def *def;
    council_engine *eng;
} fixture;

/* The mock LLM (its token rate, 0 = as fast as it goes), a rank council
 * with isolation: process on it, and an engine (eo may be NULL). */
static void
fx_open(fixture *f, double tokens_per_sec, const council_engine_opts *eo)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    char yaml[1024];
    council_diag d;

    memset(f, 0, sizeof(*f));
    mo.seed = 7;
    mo.tokens_per_sec = tokens_per_sec;
    ASSERT_OK(council_mockllm_open(&mo, &f->mock, &d));
    snprintf(yaml, sizeof(yaml),
             "name: iso\n"
             "strategy: rank\n"
             "isolation: process\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: a, provider: mock, model: m-a }\n"
             "  - { name: b, provider: mock, model: m-b }\n"
             "  - { name: c, provider: mock, model: m-c }\n"
             "chairman: { provider: mock, model: m-chair }\n"
             "limits: { quorum: 2, max_tokens: 64, deadline: 60s }\n",
             council_mockllm_base_url(f->mock));
    ASSERT_OK(
        council_def_load_string(yaml, strlen(yaml), "iso.yaml", &f->def, &d));
    ASSERT_OK(council_engine_open(eo, &f->eng));
}

static void
fx_close(fixture *f)
{
    council_engine_close(f->eng);
    council_def_free(f->def);
    council_mockllm_close(f->mock);
}

/* ---- one run with two history recorders ---------------------------------- */

typedef struct one {
    char id[64];
    hist_rec r[2];
    council_run *run;
    const council_outcome *o; /* borrowed from run */
    int64_t t0_us, t1_us;
} one;

/* Set the recorders' misbehaviour between one_init and one_start. */
static void
one_init(one *x, const char *id)
{
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    hist_rec_init(&x->r[0], H);
    hist_rec_init(&x->r[1], H);
}

static void
one_start(fixture *f, one *x, uint64_t deadline_ms)
{
    council_recorder_spec specs[2];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_diag d;

    hist_rec_specs(x->r, 2, specs);
    ro.run_id = x->id;
    ro.recorders = specs;
    ro.n_recorders = 2;
    ro.seed = 42;
    ro.deadline_ms = deadline_ms;
    x->t0_us = hist_now_us();
    if (hist_run(H, f->eng, f->def, "Why is the sky blue?", &ro, &x->run, &d) !=
        COUNCIL_OK)
        FAIL("start %s: %s", x->id, d.msg);
}

static void
one_wait(one *x)
{
    x->o = hist_wait(H, x->run, 60000);
    if (x->o == NULL)
        FAIL("run %s did not end within 60 s", x->id);
    x->t1_us = hist_now_us();
}

static double
one_ms(const one *x)
{
    return (double)(x->t1_us - x->t0_us) / 1000.0;
}

/* reason: exact, or a prefix when it ends with '*'; NULL: any. */
static int
reason_is(const char *reason, const char *want)
{
    size_t n;

    if (want == NULL)
        return 1;
    if (reason == NULL)
        return 0;
    n = strlen(want);
    if (n > 0 && want[n - 1] == '*')
        return strncmp(reason, want, n - 1) == 0;
    return strcmp(reason, want) == 0;
}

static void
own_outcome(const one *x, council_outcome_kind kind, const char *reason)
{
    if (council_outcome_kind_of(x->o) != kind ||
        !reason_is(council_outcome_reason(x->o), reason))
        own_fail("run %s: outcome %s, expected %s \"%s\"", x->id,
                 council_outcome_json(x->o), council_outcome_kind_name(kind),
                 reason != NULL ? reason : "");
}

/* Both recorders got exactly n events (the checker knows they got what
 * the bus accepted; not how many that had to be). */
static void
own_events(const one *x, int n)
{
    int i;

    for (i = 0; i < 2; i++)
        if (atomic_load(&x->r[i].events) != n)
            own_fail("run %s rec %d: %d events, expected %d", x->id, x->r[i].id,
                     atomic_load(&x->r[i].events), n);
}

static void
own_errors_contain(const one *x, const char *needle)
{
    const char *e = council_outcome_errors_json(x->o);

    if (e == NULL || strstr(e, needle) == NULL)
        own_fail("run %s: errors %s lack \"%s\"", x->id,
                 e != NULL ? e : "(none)", needle);
}

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

/* ---- a child that dies ----------------------------------------------------
 */

/* The number of events of the demo run (the last one is terminal): a run
 * without a fault, in the same history. */
static int
events_of_a_run(void)
{
    fixture f;
    one x;
    int n;

    fx_open(&f, 0, NULL);
    one_init(&x, "no-fault");
    one_start(&f, &x, 0);
    one_wait(&x);
    if (council_outcome_kind_of(x.o) != COUNCIL_OUTCOME_OK)
        FAIL("the run without a fault ended %s", council_outcome_json(x.o));
    n = atomic_load(&x.r[0].events);
    council_run_release(x.run);
    fx_close(&f);
    return n;
}

/*
 * A child that dies (action) right after event k.  Before the terminal
 * event (m_terminal 0): the run crashed with reason, events 1..k kept and
 * none after.  At the terminal event m (m_terminal = m): it was written
 * before the death and wins, the fault expects "terminal".
 */
static void
die_at(const char *action, const char *kind, uint64_t k, const char *reason,
       int m_terminal)
{
    char fault[64], id[64];
    fixture f;
    one x;

    snprintf(fault, sizeof(fault), "%s@%llu", action, (unsigned long long)k);
    snprintf(id, sizeof(id), "%s-at-%llu", action, (unsigned long long)k);
    setenv("COUNCIL_TEST_HOST_FAULT", fault, 1);
    fx_open(&f, 0, NULL);
    one_init(&x, id);
    hist_fault(H, id, kind, k, m_terminal ? "terminal" : "crashed",
               m_terminal ? NULL : reason);
    one_start(&f, &x, 0);
    one_wait(&x);
    if (m_terminal) {
        own_outcome(&x, COUNCIL_OUTCOME_OK, NULL);
        own_events(&x, m_terminal);
    } else {
        own_outcome(&x, COUNCIL_OUTCOME_CRASHED, reason);
        own_events(&x, (int)k);
    }
    council_run_release(x.run);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
}

/* SIGKILL right after event k, for every k of a run (the SQLite
 * writecrash loop): one child per k; at the terminal event the terminal
 * wins. */
TEST_T(sigkill_after_every_event, 600)
{
    int m, k;

    case_begin("sigkill_after_every_event");
    m = events_of_a_run();
    ASSERT(m > 10);
    for (k = 1; k < m; k++)
        die_at("kill", "sigkill", (uint64_t)k, "signal SIGKILL", 0);
    die_at("kill", "sigkill", (uint64_t)m, NULL, m);
    case_end();
}

/* SIGSEGV, abort and exit(3) at the first event, in the middle and at the
 * event before the terminal. */
TEST_T(sigsegv_abort_exit3, 120)
{
    int m;

    case_begin("sigsegv_abort_exit3");
    m = events_of_a_run();
    ASSERT(m > 20);
    die_at("segv", "sigsegv", 1, "signal SIGSEGV", 0);
    die_at("segv", "sigsegv", 17, "signal SIGSEGV", 0);
    die_at("segv", "sigsegv", (uint64_t)m - 1, "signal SIGSEGV", 0);
    die_at("abort", "abort", 1, "signal SIGABRT", 0);
    die_at("abort", "abort", 9, "signal SIGABRT", 0);
    die_at("abort", "abort", (uint64_t)m - 1, "signal SIGABRT", 0);
    die_at("exit3", "exit", 1, "exit status 3", 0);
    die_at("exit3", "exit", 5, "exit status 3", 0);
    die_at("exit3", "exit", (uint64_t)m - 1, "exit status 3", 0);
    case_end();
}

/* A child that exits before it said it is ready: crashed with that
 * reason, no event. */
TEST_T(exit_before_ready, 60)
{
    case_begin("exit_before_ready");
    die_at("exit3", "exit", 0, "exit status 3 before the host was ready", 0);
    case_end();
}

/* The terminal event, then death: the terminal wins, for each way of
 * dying (the terminal-then-death race). */
TEST_T(terminal_then_death_is_not_a_crash, 60)
{
    int m;

    case_begin("terminal_then_death_is_not_a_crash");
    m = events_of_a_run();
    die_at("kill", "sigkill", (uint64_t)m, NULL, m);
    die_at("segv", "sigsegv", (uint64_t)m, NULL, m);
    die_at("abort", "abort", (uint64_t)m, NULL, m);
    die_at("exit3", "exit", (uint64_t)m, NULL, m);
    case_end();
}

/* ---- a child that hangs, lies or vanishes ---------------------------------
 */

/*
 * The child misbehaves (fault "ACTION@SEQ") with the engine's heartbeat
 * period heartbeat_ms: the run crashed with reason (exact, or a prefix
 * ending in '*') after exactly `events` events, decided within bound_ms
 * of its start (a bound record).  Returns the time taken, in ms.
 */
static double
misbehave(const char *fault, const char *kind, uint64_t heartbeat_ms,
          const char *reason, const char *what, double bound_ms, int events)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    char id[64], *at;
    fixture f;
    one x;
    double ms;

    snprintf(id, sizeof(id), "%s", fault);
    at = strchr(id, '@');
    if (at != NULL)
        *at = '-';
    eo.host_heartbeat_ms = heartbeat_ms;
    setenv("COUNCIL_TEST_HOST_FAULT", fault, 1);
    fx_open(&f, 0, &eo);
    one_init(&x, id);
    hist_fault(H, id, kind, (uint64_t)events, "crashed", reason);
    one_start(&f, &x, 0);
    one_wait(&x);
    ms = one_ms(&x);
    hist_bound(H, what, ms, bound_ms);
    own_outcome(&x, COUNCIL_OUTCOME_CRASHED, reason);
    own_events(&x, events);
    council_run_release(x.run);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
    return ms;
}

/* SIGSTOP: no heartbeat for the period, killed, crashed within about a
 * period and a quarter. */
TEST_T(stopped_child_is_killed_after_its_heartbeat, 30)
{
    case_begin("stopped_child_is_killed_after_its_heartbeat");
    misbehave("stop@4", "sigstop", 400, "no heartbeat for 400ms",
              "SIGSTOP, heartbeat 400 ms: the run crashed",
              1500 * runner_timeout_multiplier(), 4);
    case_end();
}

/* A grandchild (out of the child's process group) keeps the socket open
 * after the child exits: the outcome is decided after the grace (the
 * exit's reason), never hangs. */
TEST_T(grandchild_holding_the_socket, 30)
{
    double ms;

    case_begin("grandchild_holding_the_socket");
    ms = misbehave("grandchild@4", "exit", 10000, "exit status 3",
                   "a grandchild holds the socket: the run decided",
                   2000 * runner_timeout_multiplier(), 4);
    if (ms < COUNCIL__HOST_EOF_GRACE_MS)
        own_fail("decided after %.0f ms, before the %d ms grace", ms,
                 COUNCIL__HOST_EOF_GRACE_MS);
    case_end();
}

/* The child closes its socket and lives on: killed, with that reason. */
TEST_T(child_closes_socket_and_lives, 30)
{
    case_begin("child_closes_socket_and_lives");
    misbehave("close@4", "socket_closed", 10000,
              "host closed its socket and was still running 1s later",
              "the child closed its socket: the run crashed",
              3000 * runner_timeout_multiplier(), 4);
    case_end();
}

/* Bytes the parent cannot trust: the child is killed, the run crashed
 * with the protocol error, the events before it kept. */
TEST_T(garbage_huge_frame_and_bad_seq, 60)
{
    case_begin("garbage_huge_frame_and_bad_seq");
    misbehave("garbage@4", "protocol", 10000,
              "host protocol error: a frame of unknown type 0x58",
              "garbage: the run crashed", 5000, 4);
    misbehave("huge@4", "protocol", 10000,
              "host protocol error: a frame of 1073741824 bytes*",
              "a 1 GiB frame: the run crashed", 5000, 4);
    misbehave("badseq@4", "protocol", 10000,
              "host protocol error: event seq 9 after seq 4",
              "a seq out of order: the run crashed", 5000, 4);
    case_end();
}

/* ---- cancel, deadline, shutdown ------------------------------------------ */

/* Cancel goes down the socket; the child ends its run cancelled. */
TEST_T(cancel_reaches_the_child, 30)
{
    fixture f;
    one x;

    case_begin("cancel_reaches_the_child");
    fx_open(&f, 50, NULL); /* slow enough to be mid-answer */
    one_init(&x, "cancel-at-8");
    x.r[0].cancel_at_seq = 8; /* expect "cancelled": it must win */
    one_start(&f, &x, 0);
    one_wait(&x);
    own_outcome(&x, COUNCIL_OUTCOME_CANCELLED, NULL);
    if (x.r[0].cancel_fired != 1)
        own_fail("the recorder's cancel did not fire");
    council_run_release(x.run);
    fx_close(&f);
    case_end();
}

/* A child that ignores the cancel is killed after the grace, and the run
 * still ends cancelled: the cancel won. */
TEST_T(child_ignoring_cancel_is_killed_and_run_cancelled, 30)
{
    fixture f;
    one x;
    double ms;

    case_begin("child_ignoring_cancel_is_killed_and_run_cancelled");
    setenv("COUNCIL_TEST_HOST_FAULT", "nocancel@0", 1);
    fx_open(&f, 20, NULL);
    one_init(&x, "nocancel-cancel-at-6");
    x.r[0].cancel_at_seq = 6;
    hist_fault(H, x.id, "nocancel", 0, "cancelled", NULL);
    one_start(&f, &x, 0);
    one_wait(&x);
    ms = one_ms(&x);
    hist_bound(H, "cancel ignored by the child: the run ended", ms,
               COUNCIL__HOST_CANCEL_GRACE_MS +
                   2000 * runner_timeout_multiplier());
    own_outcome(&x, COUNCIL_OUTCOME_CANCELLED, NULL);
    own_errors_contain(&x, "did not stop within 2s");
    if (ms < COUNCIL__HOST_CANCEL_GRACE_MS)
        own_fail("ended after %.0f ms, before the %d ms cancel grace", ms,
                 COUNCIL__HOST_CANCEL_GRACE_MS);
    council_run_release(x.run);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
    case_end();
}

/* The run's deadline passes mid-run: the child ends its run with the
 * deadline's error (a terminal event, not a crash). */
TEST_T(deadline_reaches_the_child, 30)
{
    fixture f;
    one x;

    case_begin("deadline_reaches_the_child");
    fx_open(&f, 20, NULL);
    one_init(&x, "deadline-300ms");
    hist_fault(H, x.id, "deadline", 0, "terminal", NULL);
    one_start(&f, &x, 300);
    one_wait(&x);
    hist_bound(H, "deadline 300 ms: the run ended", one_ms(&x),
               300 + 1500 * runner_timeout_multiplier());
    own_outcome(&x, COUNCIL_OUTCOME_ERROR, NULL);
    own_errors_contain(&x, "\"kind\":\"deadline\"");
    council_run_release(x.run);
    fx_close(&f);
    case_end();
}

/* Engine close with isolated runs mid-stream: each crashed("shutdown")
 * once, quickly; every child reaped (the resources record). */
TEST_T(close_with_isolated_runs_in_flight, 60)
{
    enum { N = 8 };
    fixture f;
    one *x = calloc(N, sizeof(*x));
    char id[32];
    int64_t t0;
    int i;

    ASSERT_NOT_NULL(x);
    case_begin("close_with_isolated_runs_in_flight");
    fx_open(&f, 20, NULL);
    for (i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "in-flight-%d", i);
        one_init(&x[i], id);
        one_start(&f, &x[i], 0);
    }
    for (i = 0; i < N; i++)
        wait_deltas(&x[i].r[0], 1);
    hist_fault(H, NULL, "shutdown", 0, "crashed", "shutdown");
    t0 = hist_now_us();
    council_engine_close(f.eng);
    f.eng = NULL;
    hist_bound(H, "engine close, 8 isolated runs mid-stream",
               (double)(hist_now_us() - t0) / 1000.0,
               2000 * runner_timeout_multiplier());
    for (i = 0; i < N; i++) {
        one_wait(&x[i]);
        own_outcome(&x[i], COUNCIL_OUTCOME_CRASHED, "shutdown");
        council_run_release(x[i].run);
    }
    fx_close(&f);
    case_end();
    free(x);
}

/* ---- the parent dies ------------------------------------------------------
 */

/*
 * A process with isolated runs in flight is killed: its children die with
 * it (PR_SET_PDEATHSIG), none is left running.  This test process is the
 * subreaper, so the orphans come back to it to be counted.  The killed
 * process writes its part of the history (its starts and the events its
 * bus accepted) through the descriptor it inherited; it has no recorder,
 * since none could be finalized there (the store's owner check,
 * DISTRIBUTED 3, closes such runs).
 */
TEST_T(children_die_with_their_parent, 30)
{
    int pp[2], st, n = 0;
    char c;
    pid_t pid;
    int64_t t0;

    case_begin("children_die_with_their_parent");
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ASSERT_EQ_INT(pipe2(pp, O_CLOEXEC), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        fixture f;
        council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
        council_diag d;
        council_run *run;
        close(pp[0]);
        fx_open(&f, 5, NULL);
        for (int i = 0; i < 3; i++)
            if (hist_run(H, f.eng, f.def, "q", &ro, &run, &d) != COUNCIL_OK)
                _exit(1);
        if (write(pp[1], "s", 1) != 1)
            _exit(1);
        sleep(60);
        _exit(0);
    }
    close(pp[1]);
    /* Its three runs started, then mid-stream. */
    ASSERT_EQ_INT(read(pp[0], &c, 1), 1);
    close(pp[0]);
    usleep(300 * 1000);
    hist_fault(H, NULL, "engine_kill", 0, "none", NULL);
    ASSERT_EQ_INT(kill(pid, SIGKILL), 0);
    t0 = hist_now_us();
    /* The parent, then each orphaned child (and spare) as it dies. */
    for (;;) {
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0 && errno == ECHILD)
            break;
        ASSERT(w > 0);
        if (w != pid)
            n++;
        if (hist_now_us() - t0 > 10000000)
            FAIL("children still alive 10 s after their parent died");
    }
    hist_bound(H, "the children gone after their parent was killed",
               (double)(hist_now_us() - t0) / 1000.0, 10000);
    if (n < 3)
        own_fail("%d children came back to the subreaper, not 3 or more", n);
    case_end();
}
