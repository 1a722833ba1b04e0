/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure (RELIABILITY F1, the per-PR shallow tier): a counting
 * allocator installed with council_set_allocator fails the i-th allocation
 * of a scenario (engine open, a run with 2 recorders and 12 events, wait,
 * close), once ("transient") or from then on ("persistent").  Each call
 * must return COUNCIL_ENOMEM or succeed; nothing crashes or leaks
 * (LeakSanitizer checks at exit); and if the run started, each recorder is
 * finalized exactly once after a contiguous prefix 1..m of seqs.
 *
 * Method: count N allocations in a clean pass, then try the first 5, the
 * last 5 and 15 random points in between (seed printed; COUNCIL_SEED
 * reproduces), in both modes.  COUNCIL_ALLOC_ALL=1 tries every point.
 * The same for reading a run back (store handle on SQLite and jsonl, the
 * record, the events, a parsed line) and replaying it: ENOMEM or success,
 * never a damaged-record error, and the replay's recorder finalized once
 * after a gapless prefix.
 * TEST_LABELS: threaded
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/event.h"
#include "core/script_host.h"
#include "provider/provider.h"
#include "runner.h"

static atomic_long counter; /* allocations so far */
static atomic_long fail_at; /* 0 = never */
static atomic_int persistent;
static atomic_long failures;

static int
should_fail(void)
{
    long n = atomic_fetch_add(&counter, 1) + 1;
    long at = atomic_load(&fail_at);

    if (at == 0)
        return 0;
    if (n == at || (atomic_load(&persistent) && n > at)) {
        atomic_fetch_add(&failures, 1);
        return 1;
    }
    return 0;
}

static void *
t_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *
t_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

/* While set, every allocation of exactly this size made on another thread
 * than fail_size_caller (on the engine's threads) fails as well. */
static atomic_size_t fail_size;
static pthread_t fail_size_caller;

static void *
t_calloc(size_t c, size_t n)
{
    size_t sz = atomic_load(&fail_size);

    if (sz != 0 && c * n == sz &&
        !pthread_equal(pthread_self(), fail_size_caller))
        return NULL;
    return should_fail() ? NULL : calloc(c, n);
}

/* ---- the recorder ----------------------------------------------------------
 */

typedef struct hist {
    int inits, finals;
    uint64_t last_seq;
    int gap, after_final;
} hist;

static int
h_init(const char *id, void *args, void **state, char *why, size_t n)
{
    hist *h = args;

    (void)id;
    (void)why;
    (void)n;
    h->inits++;
    *state = h;
    return 0;
}

static int
h_event(void *state, council_event *ev)
{
    hist *h = state;

    if (h->finals > 0)
        h->after_final = 1;
    if (council_event_seq(ev) != h->last_seq + 1)
        h->gap = 1;
    h->last_seq = council_event_seq(ev);
    return 0;
}

static void
h_final(void *state, const council_outcome *o)
{
    hist *h = state;

    (void)o;
    h->finals++;
}

static const council_recorder_ops h_ops = {COUNCIL_RECORDER_OPS_VERSION, h_init,
                                           h_event, h_final, NULL};

#define D(t)                                                                   \
    {                                                                          \
        COUNCIL_EV_MEMBER_DELTA, "answer", "m", t, NULL, 0                     \
    }
static const council__script_step steps[] = {
    {COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, "{\"council\":\"c\"}", 0},
    D("a"),
    D("b"),
    D("c"),
    D("d"),
    D("e"),
    D("f"),
    D("g"),
    D("h"),
    D("i"),
    D("j"),
    {COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL, "{\"result\":{\"x\":1}}", 0}};

/* One pass of the scenario.  Returns the allocations it made. */
static long
scenario(void)
{
    council__script s = {steps, sizeof(steps) / sizeof(steps[0]),
                         COUNCIL__SCRIPT_EXIT};
    council_engine *eng = NULL;
    council_recorder_spec spec[2];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    hist h[2] = {{0}, {0}};
    council_err rc;
    long before = atomic_load(&counter);
    int i;

    rc = council_engine_open(NULL, &eng);
    if (rc != COUNCIL_OK) {
        ASSERT_EQ_INT(rc, COUNCIL_ENOMEM);
        ASSERT_NULL(eng);
        return atomic_load(&counter) - before;
    }
    for (i = 0; i < 2; i++) {
        spec[i].ops = &h_ops;
        spec[i].args = &h[i];
    }
    o.recorders = spec;
    o.n_recorders = 2;
    rc = council__run_start_script(eng, &s, &o, &run, NULL);
    if (rc == COUNCIL_OK) {
        const council_outcome *out = NULL;
        ASSERT_OK(council_run_wait(run, 10000, &out));
        ASSERT_NOT_NULL(out);
        council_run_release(run);
    } else {
        ASSERT(rc == COUNCIL_ENOMEM || rc == COUNCIL_ESTART);
        ASSERT_NULL(run);
    }
    council_engine_close(eng);
    for (i = 0; i < 2; i++) {
        /* Initialized => finalized exactly once, after a gapless prefix. */
        ASSERT_EQ_INT(h[i].finals, h[i].inits);
        ASSERT(h[i].finals <= 1);
        ASSERT_EQ_INT(h[i].gap, 0);
        ASSERT_EQ_INT(h[i].after_final, 0);
    }
    if (atomic_load(&fail_at) == 0) {
        /* The clean pass: everything arrived. */
        ASSERT_EQ_INT(h[0].finals, 1);
        ASSERT_EQ_U64(h[0].last_seq, sizeof(steps) / sizeof(steps[0]));
    }
    return atomic_load(&counter) - before;
}

static void
sweep(int mode)
{
    long n, i;
    uint64_t x = runner_seed();
    int all = getenv("COUNCIL_ALLOC_ALL") != NULL;
    long points[32];
    int n_points = 0, p;

    ASSERT_OK(council_set_allocator(t_malloc, t_realloc, t_calloc, free));
    atomic_store(&fail_at, 0);
    n = scenario();
    ASSERT(n > 20);
    fprintf(stderr, "scenario makes %ld allocations\n", n);
    for (i = 1; i <= 5; i++)
        points[n_points++] = i;
    for (i = n - 4; i <= n; i++)
        points[n_points++] = i;
    for (i = 0; i < 15; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        points[n_points++] = 1 + (long)((x >> 33) % (uint64_t)n);
    }
    atomic_store(&persistent, mode);
    for (p = 0; all ? p < n : p < n_points; p++) {
        long at = all ? p + 1 : points[p];
        atomic_store(&counter, 0);
        atomic_store(&fail_at, at);
        if (getenv("COUNCIL_ALLOC_VERBOSE") != NULL)
            fprintf(stderr, "failing allocation %ld (%s)\n", at,
                    mode ? "persistent" : "transient");
        scenario();
    }
    atomic_store(&fail_at, 0);
    ASSERT(atomic_load(&failures) > 0);
}

TEST_T(transient_allocation_failures, 120)
{
    sweep(0);
}

TEST_T(persistent_allocation_failures, 120)
{
    sweep(1);
}

/* ---- a whole rank run against the mock LLM ------------------------------ */

static const char *mock_url;

static long
rank_scenario(const char *dir)
{
    char text[1024], db[600];
    council_def *def = NULL;
    council_engine *eng = NULL;
    council_recorder_spec spec[3];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;
    hist h = {0};
    long before = atomic_load(&counter);
    council_err rc;

    snprintf(text, sizeof(text),
             "name: t\nproviders:\n  m: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: a, provider: m, model: x-a }\n"
             "  - { name: b, provider: m, model: x-b }\n"
             "  - { name: c, provider: m, model: x-c }\n"
             "chairman: { provider: m, model: x-chair }\n"
             "limits: { quorum: 1, member_timeout: 5s }\n",
             mock_url);
    snprintf(db, sizeof(db), "%s/runs.db", dir);
    rc = council_def_load_string(text, strlen(text), "t", &def, &d);
    if (rc != COUNCIL_OK) {
        ASSERT_EQ_INT(rc, COUNCIL_ENOMEM);
        return atomic_load(&counter) - before;
    }
    rc = council_engine_open(NULL, &eng);
    if (rc == COUNCIL_OK) {
        spec[0].ops = &h_ops;
        spec[0].args = &h;
        spec[1].ops = council_recorder_sqlite();
        spec[1].args = db;
        spec[2].ops = council_recorder_jsonl();
        spec[2].args = (void *)dir;
        o.recorders = spec;
        o.n_recorders = 3;
        rc = council_run_start(eng, def, "q", &o, &run, &d);
        if (rc == COUNCIL_OK) {
            const council_outcome *out = NULL;
            ASSERT_OK(council_run_wait(run, 30000, &out));
            ASSERT_NOT_NULL(out);
            council_run_release(run);
        }
        council_engine_close(eng);
    }
    council_def_free(def);
    ASSERT_EQ_INT(h.finals, h.inits);
    ASSERT(h.finals <= 1);
    ASSERT_EQ_INT(h.gap, 0);
    ASSERT_EQ_INT(h.after_final, 0);
    if (atomic_load(&fail_at) == 0)
        ASSERT_EQ_INT(h.finals, 1);
    return atomic_load(&counter) - before;
}

TEST_T(rank_run_allocation_failures, 300)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    uint64_t x = runner_seed();
    char dir[700];
    long n;
    int p, mode;

    ASSERT_OK(council_set_allocator(t_malloc, t_realloc, t_calloc, free));
    ASSERT_OK(council_mockllm_open(&mo, &m, NULL));
    mock_url = council_mockllm_base_url(m);
    snprintf(dir, sizeof(dir), "%s/clean", runner_tmpdir());
    mkdir(dir, 0700);
    atomic_store(&counter, 0);
    n = rank_scenario(dir);
    fprintf(stderr, "rank scenario makes %ld allocations\n", n);
    ASSERT(n > 100);
    for (mode = 0; mode < 2; mode++) {
        atomic_store(&persistent, mode);
        for (p = 0; p < 12; p++) {
            long at;
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            at = 1 + (long)((x >> 33) % (uint64_t)n);
            snprintf(dir, sizeof(dir), "%s/%d-%d", runner_tmpdir(), mode, p);
            mkdir(dir, 0700);
            if (getenv("COUNCIL_ALLOC_VERBOSE") != NULL)
                fprintf(stderr, "rank: failing allocation %ld (%s)\n", at,
                        mode ? "persistent" : "transient");
            atomic_store(&counter, 0);
            atomic_store(&fail_at, at);
            rank_scenario(dir);
            atomic_store(&fail_at, 0);
        }
    }
    council_mockllm_close(m);
}

/* The watcher of a new connection's socket cannot be allocated: only the
 * calls that needed it fail (their run ends, recorded), and the other
 * calls on the loop go on.  Failing the socket callback instead marked
 * libcurl's multi handle dead: every transfer in flight on the loop
 * failed, new ones could not be added until all had drained, and libcurl
 * 7.88 crashed in multi_done on a transfer without a connection yet
 * (found by rank_run_allocation_failures, about 1 run in 25). */
static atomic_int deltas_seen;

static int
d_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
d_event(void *state, council_event *ev)
{
    (void)state;
    if (council_event_type_of(ev) == COUNCIL_EV_MEMBER_DELTA)
        atomic_fetch_add(&deltas_seen, 1);
    return 0;
}

static void
d_final(void *state, const council_outcome *o)
{
    (void)state;
    (void)o;
}

static const council_recorder_ops d_ops = {COUNCIL_RECORDER_OPS_VERSION, d_init,
                                           d_event, d_final, NULL};

static council_run *
start_rank_run(council_engine *eng, const council_def *def, hist *h)
{
    council_recorder_spec spec[2] = {{&h_ops, h}, {&d_ops, NULL}};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    o.recorders = spec;
    o.n_recorders = 2;
    ASSERT_OK(council_run_start(eng, def, "q", &o, &run, &d));
    return run;
}

static council_outcome_kind
end_rank_run(council_run *run)
{
    const council_outcome *out = NULL;
    council_outcome_kind k;

    ASSERT_OK(council_run_wait(run, 30000, &out));
    k = council_outcome_kind_of(out);
    council_run_release(run);
    return k;
}

TEST_T(socket_watcher_allocation_fails_one_call_not_the_loop, 60)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_engine *eng = NULL;
    council_def *def = NULL;
    council_run *busy, *failing;
    council_diag d;
    hist hb = {0}, hf = {0}, ha = {0};
    char text[1024];
    int i;

    ASSERT_OK(council_set_allocator(t_malloc, t_realloc, t_calloc, free));
    mo.tokens_per_sec = 40; /* an answer streams for a second or more */
    ASSERT_OK(council_mockllm_open(&mo, &m, NULL));
    snprintf(text, sizeof(text),
             "name: t\nproviders:\n  m: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: a, provider: m, model: x-a }\n"
             "  - { name: b, provider: m, model: x-b }\n"
             "chairman: { provider: m, model: x-chair }\n"
             "limits: { quorum: 1, member_timeout: 20s, retries: 0 }\n",
             council_mockllm_base_url(m));
    ASSERT_OK(council_def_load_string(text, strlen(text), "t", &def, &d));
    eo.loop_threads = 1; /* both runs on one loop, one multi handle */
    ASSERT_OK(council_engine_open(&eo, &eng));

    /* A run whose calls stream on their connections... */
    busy = start_rank_run(eng, def, &hb);
    for (i = 0; i < 1000 && atomic_load(&deltas_seen) < 2; i++)
        usleep(5000);
    ASSERT(atomic_load(&deltas_seen) >= 2);

    /* ...while another one's new connections cannot be watched. */
    fail_size_caller = pthread_self();
    atomic_store(&fail_size, council__http_sock_size());
    failing = start_rank_run(eng, def, &hf);
    ASSERT_EQ_INT(end_rank_run(failing), COUNCIL_OUTCOME_ERROR);
    atomic_store(&fail_size, 0);
    ASSERT_EQ_INT(hf.finals, 1);
    ASSERT_EQ_INT(hf.gap, 0);

    ASSERT_EQ_INT(end_rank_run(busy), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(hb.finals, 1);
    ASSERT_EQ_INT(hb.gap, 0);

    /* And the loop starts new calls as before. */
    ASSERT_EQ_INT(end_rank_run(start_rank_run(eng, def, &ha)),
                  COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(ha.finals, 1);

    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}

/* ---- reading a run back and replaying it -------------------------------- */

static const char *rb_db, *rb_jsonl;

static int
collect_ev(council_event *ev, void *ud)
{
    council_event **evs = ud;
    size_t i = (size_t)council_event_seq(ev) - 1;

    ASSERT(i < sizeof(steps) / sizeof(steps[0]));
    evs[i] = council_event_ref(ev);
    return 0;
}

static long
read_back_scenario(void)
{
    static const char line[] =
        "{\"type\":\"member_delta\",\"run_id\":\"r\",\"seq\":2,"
        "\"ts\":\"2026-11-24T01:02:03.000001Z\",\"stage\":\"answer\","
        "\"member\":\"m\",\"delta\":\"hi\"}";
    enum { N = sizeof(steps) / sizeof(steps[0]) };
    const char *paths[2] = {rb_db, rb_jsonl};
    council_event *evs[N];
    long before = atomic_load(&counter);
    council_event *ev = NULL;
    council_store *s;
    council_diag diag;
    council_err rc;
    size_t i;
    int k;

    rc = council_event_parse(line, sizeof(line) - 1, &ev, &diag);
    if (rc != COUNCIL_OK && rc != COUNCIL_ENOMEM)
        FAIL("parse: %s: %s", council_strerror(rc), diag.msg);
    council_event_unref(ev);
    for (k = 0; k < 2; k++) {
        char *json = NULL;

        memset(evs, 0, sizeof(evs));
        rc = council_store_open(paths[k], COUNCIL_STORE_READONLY, &s, &diag);
        if (rc != COUNCIL_OK) {
            if (rc != COUNCIL_ENOMEM)
                FAIL("open %s: %s: %s", paths[k], council_strerror(rc),
                     diag.msg);
            continue;
        }
        rc = council_store_run(s, "r", &json, &diag);
        if (rc != COUNCIL_OK && rc != COUNCIL_ENOMEM)
            FAIL("run: %s: %s", council_strerror(rc), diag.msg);
        council_free(json);
        rc = council_store_events(s, "r", 0, collect_ev, evs, &diag);
        if (rc != COUNCIL_OK && rc != COUNCIL_ENOMEM)
            FAIL("events: %s: %s", council_strerror(rc), diag.msg);
        council_store_close(s);
        if (rc == COUNCIL_OK) {
            council_engine *eng = NULL;
            council_recorder_spec spec = {&h_ops, NULL};
            council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
            council_run *run = NULL;
            hist h = {0};

            for (i = 0; i < N; i++)
                ASSERT_NOT_NULL(evs[i]);
            spec.args = &h;
            o.recorders = &spec;
            o.n_recorders = 1;
            rc = council_engine_open(NULL, &eng);
            if (rc == COUNCIL_OK) {
                rc = council_run_replay(eng, &o, evs, N, 0, &run, NULL);
                if (rc == COUNCIL_OK) {
                    ASSERT_OK(council_run_wait(run, 10000, NULL));
                    council_run_release(run);
                } else {
                    ASSERT(rc == COUNCIL_ENOMEM || rc == COUNCIL_ESTART);
                }
                council_engine_close(eng);
            } else {
                ASSERT_EQ_INT(rc, COUNCIL_ENOMEM);
            }
            ASSERT_EQ_INT(h.finals, h.inits);
            ASSERT(h.finals <= 1);
            ASSERT_EQ_INT(h.gap, 0);
            ASSERT_EQ_INT(h.after_final, 0);
            if (atomic_load(&fail_at) == 0)
                ASSERT_EQ_U64(h.last_seq, N);
        }
        for (i = 0; i < N; i++)
            council_event_unref(evs[i]);
    }
    return atomic_load(&counter) - before;
}

TEST_T(read_back_and_replay_allocation_failures, 300)
{
    council__script s = {steps, sizeof(steps) / sizeof(steps[0]),
                         COUNCIL__SCRIPT_EXIT};
    council_recorder_spec spec[2];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_engine *eng = NULL;
    council_run *run = NULL;
    char db[700], jsonl[700];
    uint64_t x = runner_seed();
    long n;
    int p, mode;

    ASSERT_OK(council_set_allocator(t_malloc, t_realloc, t_calloc, free));
    snprintf(db, sizeof(db), "%s/runs.db", runner_tmpdir());
    snprintf(jsonl, sizeof(jsonl), "%s/r.jsonl", runner_tmpdir());
    rb_db = db;
    rb_jsonl = jsonl;
    spec[0] = (council_recorder_spec){council_recorder_sqlite(), db};
    spec[1] = (council_recorder_spec){council_recorder_jsonl(),
                                      (void *)runner_tmpdir()};
    o.recorders = spec;
    o.n_recorders = 2;
    o.run_id = "r";
    ASSERT_OK(council_engine_open(NULL, &eng));
    ASSERT_OK(council__run_start_script(eng, &s, &o, &run, NULL));
    ASSERT_OK(council_run_wait(run, 10000, NULL));
    council_run_release(run);
    council_engine_close(eng);

    atomic_store(&counter, 0);
    n = read_back_scenario();
    fprintf(stderr, "read-back scenario makes %ld allocations\n", n);
    ASSERT(n > 50);
    for (mode = 0; mode < 2; mode++) {
        int all = getenv("COUNCIL_ALLOC_ALL") != NULL;

        atomic_store(&persistent, mode);
        for (p = 0; all ? p < n : p < 20; p++) {
            long at;

            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            at = all     ? p + 1
                 : p < 4 ? p + 1
                         : 1 + (long)((x >> 33) % (uint64_t)n);
            if (getenv("COUNCIL_ALLOC_VERBOSE") != NULL)
                fprintf(stderr, "read-back: failing allocation %ld (%s)\n", at,
                        mode ? "persistent" : "transient");
            atomic_store(&counter, 0);
            atomic_store(&fail_at, at);
            read_back_scenario();
            atomic_store(&fail_at, 0);
        }
    }
    ASSERT(atomic_load(&failures) > 0);
}

/* ---- a recorder's init ----------------------------------------------------
 */

static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    while (d != NULL && (de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

/* The built-in recorders' init under every allocation failure: it accepts,
 * or refuses naming the cause, and a refusal leaves nothing behind: no
 * descriptor open, and no file (a jsonl record that init created and then
 * could not finish would make its run id look taken). */
TEST_T(recorder_init_allocation_failures, 60)
{
    const council_recorder_ops *ops[2] = {council_recorder_jsonl(),
                                          council_recorder_sqlite()};
    char db[600], path[700], why[256];
    long at, n;
    int k;

    snprintf(db, sizeof(db), "%s/init.db", runner_tmpdir());
    ASSERT_OK(council_set_allocator(t_malloc, t_realloc, t_calloc, free));
    for (k = 0; k < 2; k++) {
        void *arg = k == 0 ? (void *)runner_tmpdir() : (void *)db;
        for (at = 1; at < 400; at++) {
            council_outcome *o = NULL;
            void *state = NULL;
            struct stat sb;
            int fds = count_fds(), rc;
            char id[32];

            snprintf(id, sizeof(id), "init-%d-%ld", k, at);
            snprintf(path, sizeof(path), "%s/%s.jsonl", runner_tmpdir(), id);
            n = atomic_load(&failures);
            atomic_store(&counter, 0);
            atomic_store(&persistent, 0);
            atomic_store(&fail_at, at);
            why[0] = '\0';
            rc = ops[k]->init(id, arg, &state, why, sizeof(why));
            atomic_store(&fail_at, 0);
            if (rc == 0) {
                /* Finalize it as a run that never started would be. */
                o = council__outcome_new(COUNCIL_OUTCOME_ERROR, NULL, NULL,
                                         "not started");
                ASSERT_NOT_NULL(o);
                ops[k]->handle_finalize(state, o);
                council__outcome_free(o);
                if (atomic_load(&failures) == n)
                    break; /* no allocation failed: every point was tried */
                continue;
            }
            ASSERT(why[0] != '\0');
            if (count_fds() != fds)
                FAIL("init failing at allocation %ld (%s) left a descriptor "
                     "open",
                     at, why);
            if (k == 0 && stat(path, &sb) == 0)
                FAIL("init failing at allocation %ld left %s", at, path);
        }
    }
}
