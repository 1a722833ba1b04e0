/* SPDX-License-Identifier: MIT */
/*
 * isolation: process, end to end: runs whose host is a real child process
 * (build/council-host, $COUNCIL_HOST_PROGRAM), against the real mock LLM
 * over loopback.  What recorders see must be what they see for a run in
 * the engine's process; a host program that is missing, not executable or
 * not a host ends the run with a clear reason; a child inherits no
 * descriptor of its parent; children are reused up to their limit.  The
 * faults (a child that dies, hangs, lies or vanishes; cancel, deadline and
 * shutdown; the parent's death) are in test_faults_process.c, through the
 * history checker.  COUNCIL_TEST_HOST_FAULT=ACTION@SEQ (src/host/child.c)
 * makes a child misbehave on cue.
 * TEST_LABELS: threaded
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
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
    fixture f;
    seen s;
    council_run *run;
    int64_t t0;

    ASSERT(leak >= 0);
    setenv("COUNCIL_TEST_HOST_FAULT", "fdcheck@0", 1);
    fx_open(&f, 0, 0, NULL);
    seen_init(&s);
    t0 = mono_ms();
    ASSERT_OK(run_one(&f, &s, COUNCIL_ISOLATION_DEFAULT, 42, &run));
    check_prefix(&s);
    ASSERT_EQ_INT(s.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(s.reason, "exit status 4 before the host was ready");
    ASSERT_EQ_U64(s.n, 0);
    if (mono_ms() - t0 > 5000)
        FAIL("decided after %lld ms (bound 5000)", (long long)(mono_ms() - t0));
    council_run_release(run);
    seen_free(&s);
    fx_close(&f);
    unsetenv("COUNCIL_TEST_HOST_FAULT");
    close(leak);
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
