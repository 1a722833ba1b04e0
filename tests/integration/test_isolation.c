/* SPDX-License-Identifier: MIT */
/*
 * isolation: process, end to end: runs whose host is a real child process
 * (build/council-host, $COUNCIL_HOST_PROGRAM), against the real mock LLM
 * over loopback.  What recorders see must be what they see for a run in
 * the engine's process; a child that dies, hangs, lies or vanishes ends
 * its run, and only its run, with the exact reason (DISTRIBUTED 2 and 5).
 * The child misbehaves on cue: COUNCIL_TEST_HOST_FAULT=ACTION@SEQ
 * (src/host/child.c) acts right after it wrote event SEQ.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "host/host.h"
#include "runner.h"

/* ---- a recorder that keeps what it saw -------------------------------- */

#define MAX_EV 4096

typedef struct seen {
    pthread_mutex_t mu;
    int inits, finals, after_final;
    size_t n;
    uint64_t seq[MAX_EV];
    council_event_type type[MAX_EV];
    char *json[MAX_EV];
    council_outcome_kind kind;
    char reason[256];
    char errors[512];
    council_engine *eng; /* cancel_at: cancel the run at this seq */
    uint64_t cancel_at;
} seen;

static int
s_init(const char *id, void *args, void **state, char *why, size_t n)
{
    seen *s = args;

    (void)id;
    (void)why;
    (void)n;
    s->inits++;
    *state = s;
    return 0;
}

static int
s_event(void *state, council_event *ev)
{
    seen *s = state;

    pthread_mutex_lock(&s->mu);
    if (s->finals > 0)
        s->after_final++;
    if (s->n < MAX_EV) {
        s->seq[s->n] = council_event_seq(ev);
        s->type[s->n] = council_event_type_of(ev);
        s->json[s->n] = strdup(council_event_json(ev));
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->cancel_at != 0 && council_event_seq(ev) == s->cancel_at)
        council_engine_cancel(s->eng, council_event_run_id(ev));
    return 0;
}

static void
s_final(void *state, const council_outcome *o)
{
    seen *s = state;
    const char *r = council_outcome_reason(o);
    const char *e = council_outcome_errors_json(o);

    pthread_mutex_lock(&s->mu);
    s->finals++;
    s->kind = council_outcome_kind_of(o);
    snprintf(s->reason, sizeof(s->reason), "%s", r != NULL ? r : "");
    snprintf(s->errors, sizeof(s->errors), "%s", e != NULL ? e : "");
    pthread_mutex_unlock(&s->mu);
}

static const council_recorder_ops seen_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                              s_init, s_event, s_final, NULL};

static void
seen_init(seen *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
}

static void
seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->json[i]);
    pthread_mutex_destroy(&s->mu);
}

/* I1 and I2: finalized once, seqs 1..n in order, nothing after. */
static void
check_prefix(const seen *s)
{
    ASSERT_EQ_INT(s->inits, 1);
    ASSERT_EQ_INT(s->finals, 1);
    ASSERT_EQ_INT(s->after_final, 0);
    for (size_t i = 0; i < s->n; i++)
        ASSERT_EQ_U64(s->seq[i], i + 1);
}

/* ---- the council and the engine ---------------------------------------- */

typedef struct fixture {
    council_mockllm *mock;
    council_def *def;
    council_engine *eng;
} fixture;

static void
fx_open(fixture *f, double tokens_per_sec, uint64_t latency_ms,
        const council_engine_opts *eo)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    char yaml[1024];
    council_diag d;

    memset(f, 0, sizeof(*f));
    mo.seed = 7;
    mo.tokens_per_sec = tokens_per_sec;
    mo.latency_ms = latency_ms;
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

/* One run with recorder s (isolation as given; DEFAULT = the council's
 * key, process); waits for it. */
static council_err
run_one(fixture *f, seen *s, int isolation, uint64_t seed, council_run **out)
{
    council_recorder_spec rec = {&seen_ops, s};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_diag d;
    council_err rc;

    ro.recorders = &rec;
    ro.n_recorders = 1;
    ro.seed = seed;
    ro.isolation = isolation;
    rc =
        council_run_start(f->eng, f->def, "Why is the sky blue?", &ro, out, &d);
    if (rc == COUNCIL_OK)
        ASSERT_OK(council_run_wait(*out, 30000, NULL));
    return rc;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The event's JSON from its "ts" value on (seq and time cut out); its
 * member's name, or "" for a run-level event. */
static void
tail_of(const char *json, char *out, size_t size, char *member, size_t msize)
{
    const char *ts = strstr(json, "\"ts\":\"");
    const char *end = ts != NULL ? strchr(ts + 6, '"') : NULL;
    const char *m = strstr(json, "\"member\":\"");

    static const char *const timed[] = {"\"latency_ms\":",
                                        "\"first_byte_ms\":"};

    ASSERT(ts != NULL && end != NULL);
    snprintf(out, size, "%s", end + 1);
    /* Durations measured in the run are its own: blank their digits. */
    for (size_t k = 0; k < 2; k++) {
        for (char *p = strstr(out, timed[k]); p != NULL;
             p = strstr(p + 1, timed[k])) {
            char *d = p + strlen(timed[k]), *e = d;
            while (*e >= '0' && *e <= '9')
                e++;
            memmove(d, e, strlen(e) + 1);
        }
    }
    member[0] = '\0';
    if (m != NULL) {
        const char *q = strchr(m + 10, '"');
        snprintf(member, msize, "%.*s", (int)(q - (m + 10)), m + 10);
    }
}

/* For each member (and for the run-level events), the events in order. */
static void
same_streams(const seen *a, const seen *b)
{
    static const char *const who[] = {"", "a", "b", "c", "chairman"};
    char x[8192], y[8192], mx[64], my[64];
    size_t w, i, j;

    for (w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
        i = j = 0;
        for (;;) {
            while (i < a->n) {
                tail_of(a->json[i], x, sizeof(x), mx, sizeof(mx));
                if (strcmp(mx, who[w]) == 0)
                    break;
                i++;
            }
            while (j < b->n) {
                tail_of(b->json[j], y, sizeof(y), my, sizeof(my));
                if (strcmp(my, who[w]) == 0)
                    break;
                j++;
            }
            if (i == a->n || j == b->n)
                break;
            if (strcmp(x, y) != 0)
                FAIL("member \"%s\": seq %zu vs %zu differ:\n  %s\n  %s",
                     who[w], i + 1, j + 1, a->json[i], b->json[j]);
            i++;
            j++;
        }
        if (i != a->n || j != b->n)
            FAIL("member \"%s\": the streams have different lengths", who[w]);
    }
}

/* ---- the same run, in and out of process -------------------------- */

/* A run in a child gives its recorders exactly the events of the same run
 * in the engine's process: for every member and for the run itself, the
 * same events in the same order with the same fields (the run id, the
 * times and the interleaving of members that stream at once differ). */
TEST_T(isolated_run_matches_in_process_run, 60)
{
    fixture f;
    seen a, b;
    council_run *ra, *rb;

    fx_open(&f, 0, 0, NULL);
    seen_init(&a);
    seen_init(&b);
    ASSERT_OK(run_one(&f, &a, COUNCIL_ISOLATION_NONE, 42, &ra));
    ASSERT_OK(run_one(&f, &b, COUNCIL_ISOLATION_PROCESS, 42, &rb));
    check_prefix(&a);
    check_prefix(&b);
    ASSERT_EQ_INT(a.kind, COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(b.kind, COUNCIL_OUTCOME_OK);
    ASSERT_EQ_U64(b.n, a.n);
    ASSERT(a.n > 20);
    same_streams(&a, &b);
    council_run_release(ra);
    council_run_release(rb);
    seen_free(&a);
    seen_free(&b);
    fx_close(&f);
}

/* ---- a child that dies ------------------------------------------------ */

/* The run of a child that dies right after event k: crashed with the
 * exit's reason, every event up to k kept, none after. */
static void
die_at(const char *action, uint64_t k, const char *reason, size_t *n_out)
{
    fixture f;
    seen s;
    council_run *run;
    char fault[64];

    snprintf(fault, sizeof(fault), "%s@%llu", action, (unsigned long long)k);
    setenv("COUNCIL_TEST_HOST_FAULT", fault, 1);
    fx_open(&f, 0, 0, NULL);
    seen_init(&s);
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 42, &run));
    check_prefix(&s);
    if (n_out != NULL)
        *n_out = s.n;
    if (reason == NULL) {
        /* k is the terminal event: it was written before the death. */
        ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_OK);
    } else {
        ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CRASHED);
        ASSERT_STR_EQ(s.reason, reason);
        ASSERT_EQ_U64(s.n, k);
    }
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
}

/* The number of events of the demo run (the last one is terminal). */
static size_t
events_of_a_run(void)
{
    fixture f;
    seen s;
    council_run *run;
    size_t n;

    fx_open(&f, 0, 0, NULL);
    seen_init(&s);
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_PROCESS, 42, &run));
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_OK);
    n = s.n;
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
    return n;
}

/* SIGKILL right after event k, for every k of a run (the SQLite
 * writecrash loop); at the terminal event the terminal wins. */
TEST_T(sigkill_after_every_event, 300)
{
    size_t m = events_of_a_run(), k, n;

    ASSERT(m > 10);
    for (k = 1; k < m; k++)
        die_at("kill", k, "signal SIGKILL", NULL);
    die_at("kill", m, NULL, &n);
    ASSERT_EQ_U64(n, m);
}

TEST_T(sigsegv_abort_exit3, 60)
{
    die_at("segv", 1, "signal SIGSEGV", NULL);
    die_at("segv", 17, "signal SIGSEGV", NULL);
    die_at("abort", 9, "signal SIGABRT", NULL);
    die_at("exit3", 5, "exit status 3", NULL);
    die_at("exit3", 0, "exit status 3 before the host was ready", NULL);
}

/* The terminal event, then death: the terminal wins, for each way of
 * dying. */
TEST_T(terminal_then_death_is_not_a_crash, 60)
{
    size_t m = events_of_a_run();

    die_at("kill", m, NULL, NULL);
    die_at("segv", m, NULL, NULL);
    die_at("exit3", m, NULL, NULL);
}

/* ---- a child that hangs, lies or vanishes ------------------------------- */

static void
misbehave(const char *fault, uint64_t heartbeat_ms, const char *reason_prefix,
          int64_t max_ms, size_t events)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    fixture f;
    seen s;
    council_run *run;
    int64_t t0;

    eo.host_heartbeat_ms = heartbeat_ms;
    setenv("COUNCIL_TEST_HOST_FAULT", fault, 1);
    fx_open(&f, 0, 0, &eo);
    seen_init(&s);
    t0 = mono_ms();
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 42, &run));
    check_prefix(&s);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CRASHED);
    if (strncmp(s.reason, reason_prefix, strlen(reason_prefix)) != 0)
        FAIL("reason \"%s\", expected \"%s...\"", s.reason, reason_prefix);
    ASSERT_EQ_U64(s.n, events);
    if (mono_ms() - t0 > max_ms)
        FAIL("decided after %lld ms (bound %lld)", (long long)(mono_ms() - t0),
             (long long)max_ms);
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
}

/* SIGSTOP: no heartbeat for the period, killed, crashed within about a
 * period and a quarter. */
TEST_T(stopped_child_is_killed_after_its_heartbeat, 30)
{
    misbehave("stop@4", 400, "no heartbeat for 400ms",
              (int64_t)(1500 * runner_timeout_multiplier()), 4);
}

/* A grandchild (out of the child's process group) keeps the socket open
 * after the child exits: the outcome is decided after the grace (the
 * exit's reason), never hangs. */
TEST_T(grandchild_holding_the_socket, 30)
{
    int64_t t0 = mono_ms();

    misbehave("grandchild@4", 10000, "exit status 3",
              (int64_t)(2000 * runner_timeout_multiplier()), 4);
    ASSERT(mono_ms() - t0 >= COUNCIL__HOST_EOF_GRACE_MS);
}

/* The child closes its socket and lives on: killed, with that reason. */
TEST_T(child_closes_socket_and_lives, 30)
{
    misbehave("close@4", 10000, "host closed its socket",
              (int64_t)(3000 * runner_timeout_multiplier()), 4);
}

TEST_T(garbage_huge_frame_and_bad_seq, 60)
{
    misbehave("garbage@4", 10000, "host protocol error: ", 5000, 4);
    misbehave("huge@4", 10000,
              "host protocol error: a frame of 1073741824 bytes", 5000, 4);
    misbehave("badseq@4", 10000, "host protocol error: event seq 9 after seq 4",
              5000, 4);
}

/* ---- the host program --------------------------------------------------- */

static void
bad_program(const char *program, const char *reason)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_recorder_spec rec;
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_diag d;
    fixture f;
    seen s;
    council_run *run = NULL;

    eo.host_program = program;
    fx_open(&f, 0, 0, &eo);
    seen_init(&s);
    rec.ops = &seen_ops;
    rec.args = &s;
    ro.recorders = &rec;
    ro.n_recorders = 1;
    ASSERT_EQ_INT(council_run_start(f.eng, f.def, "q", &ro, &run, &d),
                  COUNCIL_ESTART);
    ASSERT(run == NULL);
    if (strstr(d.msg, reason) == NULL)
        FAIL("diag \"%s\" lacks \"%s\"", d.msg, reason);
    /* No orphan: the recorder learnt why (finalized on the pool: close
     * waits for it). */
    fx_close(&f);
    ASSERT_EQ_INT(s.finals, 1);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_ERROR);
    ASSERT(strstr(s.errors, reason) != NULL);
    seen_free(&s);
}

TEST_T(missing_or_unexecutable_host_program, 30)
{
    char path[4200];
    int fd;

    bad_program("/nonexistent/council-host", "No such file or directory");
    snprintf(path, sizeof(path), "%s/not-executable", runner_tmpdir());
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT(fd >= 0);
    close(fd);
    bad_program(path, "Permission denied");
}

/* A program that is not a council host: it exits without a word. */
TEST_T(host_program_that_is_not_a_host, 30)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    fixture f;
    seen s;
    council_run *run;

    eo.host_program = "/bin/true";
    fx_open(&f, 0, 0, &eo);
    seen_init(&s);
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 1, &run));
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(s.reason, "exit status 0 before the host was ready");
    ASSERT_EQ_U64(s.n, 0);
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
}

/* Descriptors the embedder opened without O_CLOEXEC never reach a child:
 * it holds 0-3 only (the fault makes it exit with its count). */
TEST_T(child_inherits_no_descriptor, 30)
{
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */

    ASSERT(leak >= 0);
    misbehave("fdcheck@0", 10000, "exit status 4 before the host was ready",
              5000, 0);
    close(leak);
}

/* ---- cancel, deadline, shutdown ---------------------------------------- */

/* Cancel goes down the socket; the child ends its run cancelled. */
TEST_T(cancel_reaches_the_child, 30)
{
    fixture f;
    seen s;
    council_run *run;

    fx_open(&f, 50, 0, NULL); /* slow enough to be mid-answer */
    seen_init(&s);
    s.eng = f.eng;
    s.cancel_at = 8;
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 3, &run));
    check_prefix(&s);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CANCELLED);
    ASSERT_EQ_INT(s.type[s.n - 1], COUNCIL_EV_RUN_FAILED);
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
}

/* A child that ignores the cancel is killed after the grace, and the run
 * still ends cancelled: the cancel won. */
TEST_T(child_ignoring_cancel_is_killed_and_run_cancelled, 30)
{
    fixture f;
    seen s;
    council_run *run;
    int64_t t0;

    setenv("COUNCIL_TEST_HOST_FAULT", "nocancel@0", 1);
    fx_open(&f, 20, 0, NULL);
    seen_init(&s);
    s.eng = f.eng;
    s.cancel_at = 6;
    t0 = mono_ms();
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 3, &run));
    check_prefix(&s);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CANCELLED);
    ASSERT(strstr(s.errors, "did not stop within 2s") != NULL);
    ASSERT(mono_ms() - t0 >= COUNCIL__HOST_CANCEL_GRACE_MS);
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
}

TEST_T(deadline_reaches_the_child, 30)
{
    fixture f;
    seen s;
    council_recorder_spec rec = {&seen_ops, &s};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run;
    council_diag d;

    fx_open(&f, 20, 0, NULL);
    seen_init(&s);
    ro.recorders = &rec;
    ro.n_recorders = 1;
    ro.deadline_ms = 300;
    ASSERT_OK(council_run_start(f.eng, f.def, "q", &ro, &run, &d));
    ASSERT_OK(council_run_wait(run, 30000, NULL));
    check_prefix(&s);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_CONTAINS(s.errors, "\"kind\":\"deadline\"");
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
}

/* Engine close with isolated runs mid-stream: each crashed("shutdown")
 * once, quickly; every child reaped (the runner checks no child is
 * left). */
TEST_T(close_with_isolated_runs_in_flight, 60)
{
    enum { N = 8 };
    fixture f;
    seen s[N];
    council_recorder_spec rec[N];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run[N];
    council_diag d;
    int64_t t0;
    int i;

    fx_open(&f, 20, 0, NULL);
    for (i = 0; i < N; i++) {
        seen_init(&s[i]);
        rec[i].ops = &seen_ops;
        rec[i].args = &s[i];
        ro.recorders = &rec[i];
        ro.n_recorders = 1;
        ASSERT_OK(council_run_start(f.eng, f.def, "q", &ro, &run[i], &d));
    }
    usleep(300 * 1000);
    t0 = mono_ms();
    council_engine_close(f.eng);
    if (mono_ms() - t0 > (int64_t)(2000 * runner_timeout_multiplier()))
        FAIL("close took %lld ms", (long long)(mono_ms() - t0));
    f.eng = NULL;
    for (i = 0; i < N; i++) {
        check_prefix(&s[i]);
        ASSERT_EQ_INT(s[i].kind, COUNCIL_OUTCOME_CRASHED);
        ASSERT_STR_EQ(s[i].reason, "shutdown");
        council_run_release(run[i]);
        seen_free(&s[i]);
    }
    fx_close(&f);
}

/* ---- reuse --------------------------------------------------------------- */

/* Children whose runs ended cleanly take the next run: 20 runs one after
 * another spawn a handful of processes, not 20 (a run is over for its
 * waiters at its terminal event, a moment before its child says it is
 * free again, so the next run may take the spare and a new spare be
 * started); with host_runs_per_child 1 every run gets a fresh one. */
TEST_T(children_are_reused_up_to_the_limit, 60)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    uint64_t before;
    fixture f;
    int i, pass;

    for (pass = 0; pass < 2; pass++) {
        eo.host_runs_per_child = pass == 0 ? 0 : 1;
        eo.loop_threads = 1;
        before = atomic_load(&council__host_spawned);
        fx_open(&f, 0, 0, &eo);
        for (i = 0; i < 20; i++) {
            seen s;
            council_run *run;
            seen_init(&s);
            ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 5, &run));
            ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_OK);
            council_run_release(run);
            seen_free(&s);
        }
        fx_close(&f);
        if (pass == 0)
            ASSERT_LE_U64(atomic_load(&council__host_spawned) - before, 6);
        else
            ASSERT(atomic_load(&council__host_spawned) - before >= 20);
    }
}

/* ---- the parent dies ---------------------------------------------------- */

/* A process with isolated runs in flight is killed: its children die
 * with it (PR_SET_PDEATHSIG), none is left running.  This test process is
 * the subreaper, so the orphans come back to it to be counted. */
TEST_T(children_die_with_their_parent, 30)
{
    pid_t pid;
    int st, n = 0;
    int64_t t0;

    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        fixture f;
        council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
        council_diag d;
        council_run *run;
        fx_open(&f, 5, 0, NULL);
        for (int i = 0; i < 3; i++)
            if (council_run_start(f.eng, f.def, "q", &ro, &run, &d) !=
                COUNCIL_OK)
                _exit(1);
        sleep(60);
        _exit(0);
    }
    usleep(700 * 1000);
    ASSERT_EQ_INT(kill(pid, SIGKILL), 0);
    t0 = mono_ms();
    /* The parent, then each orphaned child (and spare) as it dies. */
    for (;;) {
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0 && errno == ECHILD)
            break;
        ASSERT(w > 0);
        if (w != pid)
            n++;
        if (mono_ms() - t0 > 10000)
            FAIL("children still alive 10 s after their parent died");
    }
    ASSERT(n >= 3);
}
