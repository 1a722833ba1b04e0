/* SPDX-License-Identifier: MIT */
/*
 * Shared by the run store and replay tests (test_store.c, test_replay.c):
 * runs recorded for real, through the engine, by the real sqlite and jsonl
 * recorders, from the scripted run host (a rank-shaped script holding
 * every event type, plus failing, cancelled and crashing variants); and a
 * recorder that keeps every event's JSON line and its outcome, for
 * comparing a replay with its original.  Static functions: each test file
 * includes this once.
 */
#ifndef RECORD_FIXTURE_H
#define RECORD_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/script_host.h"
#include "runner.h"

/* ---- a recorder that keeps what it saw ---------------------------------- */

#define KEEP_MAX 512

typedef struct kept {
    atomic_int inits, finals, events_after_final;
    char run_id[80];
    char *lines[KEEP_MAX]; /* council_event_json of each event (strdup) */
    uint64_t seqs[KEEP_MAX];
    int64_t mono_us[KEEP_MAX]; /* when each arrived */
    size_t n;
    council_outcome_kind kind;
    char reason[256];
    char *outcome_json;
} kept;

static int64_t
fx_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
kept_init(const char *run_id, void *args, void **state, char *why, size_t n)
{
    kept *k = args;

    (void)why;
    (void)n;
    atomic_fetch_add(&k->inits, 1);
    snprintf(k->run_id, sizeof(k->run_id), "%s", run_id);
    *state = k;
    return 0;
}

static int
kept_event(void *state, council_event *ev)
{
    kept *k = state;

    if (atomic_load(&k->finals) > 0)
        atomic_fetch_add(&k->events_after_final, 1);
    ASSERT(k->n < KEEP_MAX);
    k->lines[k->n] = strdup(council_event_json(ev));
    k->seqs[k->n] = council_event_seq(ev);
    k->mono_us[k->n] = fx_mono_us();
    k->n++;
    return 0;
}

static void
kept_final(void *state, const council_outcome *o)
{
    kept *k = state;
    const char *r = council_outcome_reason(o);

    k->kind = council_outcome_kind_of(o);
    snprintf(k->reason, sizeof(k->reason), "%s", r != NULL ? r : "");
    k->outcome_json = strdup(council_outcome_json(o));
    atomic_fetch_add(&k->finals, 1);
}

static const council_recorder_ops kept_ops = {
    COUNCIL_RECORDER_OPS_VERSION, kept_init, kept_event, kept_final, NULL};

static void
kept_free(kept *k)
{
    size_t i;

    for (i = 0; i < k->n; i++)
        free(k->lines[i]);
    free(k->outcome_json);
    memset(k, 0, sizeof(*k));
}

/* Init and finalize once each, seqs 1..n, nothing after finalize. */
static void
kept_check(const kept *k, size_t n)
{
    size_t i;

    ASSERT_EQ_INT(atomic_load(&k->inits), 1);
    ASSERT_EQ_INT(atomic_load(&k->finals), 1);
    ASSERT_EQ_INT(atomic_load(&k->events_after_final), 0);
    ASSERT_EQ_U64(k->n, n);
    for (i = 0; i < k->n; i++)
        ASSERT_EQ_U64(k->seqs[i], i + 1);
}

/* ---- scripts ------------------------------------------------------------- */

#define FX_STARTED(council, question)                                          \
    {                                                                          \
        COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL,                              \
            "{\"council\":\"" council                                          \
            "\",\"strategy\":\"rank\",\"question\":\"" question                \
            "\",\"messages\":[{\"role\":\"user\",\"content\":\"" question      \
            "\"}],\"members\":[{\"name\":\"alpha\",\"provider\":\"mock\","     \
            "\"model\":\"mock-a\"},{\"name\":\"beta\",\"provider\":\"mock\","  \
            "\"model\":\"mock-b\"},{\"name\":\"gamma\",\"provider\":\"mock\"," \
            "\"model\":\"mock-c\"}],\"chairman\":{\"provider\":\"mock\","      \
            "\"model\":\"mock-chair\"},\"seed\":42}",                          \
            0                                                                  \
    }

/* A rank run: every event type, with the fields the strategy gives. */
static const council__script_step fx_rank_steps[] = {
    FX_STARTED("demo", "Why is the sky blue?"),
    {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
    {COUNCIL_EV_MEMBER_STARTED, "answer", "alpha", NULL,
     "{\"model\":\"mock-a\"}", 0},
    {COUNCIL_EV_MEMBER_STARTED, "answer", "beta", NULL,
     "{\"model\":\"mock-b\"}", 0},
    {COUNCIL_EV_MEMBER_STARTED, "answer", "gamma", NULL,
     "{\"model\":\"mock-c\"}", 0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "Rayleigh ", NULL, 0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "beta", "Blue ", NULL, 0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "scattering.", NULL, 0},
    {COUNCIL_EV_MEMBER_COMPLETED, "answer", "alpha", "Rayleigh scattering.",
     "{\"model\":\"mock-a\",\"usage\":{\"prompt_tokens\":5,"
     "\"completion_tokens\":3,\"total_tokens\":8},\"latency_ms\":75,"
     "\"first_byte_ms\":2,\"finish_reason\":\"stop\"}",
     0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "beta", "light.", NULL, 0},
    {COUNCIL_EV_MEMBER_COMPLETED, "answer", "beta", "Blue light.",
     "{\"model\":\"mock-b\",\"usage\":null,\"latency_ms\":80,"
     "\"first_byte_ms\":3,\"finish_reason\":\"stop\"}",
     0},
    {COUNCIL_EV_MEMBER_FAILED, "answer", "gamma", NULL,
     "{\"model\":\"mock-c\",\"error\":{\"kind\":\"http\",\"message\":"
     "\"HTTP 503 (server error; retryable; gave up after 3 attempts): "
     "overloaded\",\"http_status\":503,\"retryable\":true,\"attempts\":3}}",
     0},
    {COUNCIL_EV_STAGE_COMPLETED, "answer", NULL, NULL,
     "{\"answered\":2,\"failed\":1}", 0},
    {COUNCIL_EV_STAGE_STARTED, "review", NULL, NULL, NULL, 0},
    {COUNCIL_EV_MEMBER_STARTED, "review", "alpha", NULL,
     "{\"model\":\"mock-a\"}", 0},
    {COUNCIL_EV_REVIEW_COMPLETED, "review", "alpha",
     "FINAL RANKING:\n1. Response A",
     "{\"model\":\"mock-a\",\"labels\":{\"A\":\"beta\"},\"seed\":7,"
     "\"ranking\":[\"beta\"],\"parse\":\"strict\",\"parse_ok\":true,"
     "\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9,"
     "\"total_tokens\":59},\"latency_ms\":40,\"first_byte_ms\":2}",
     0},
    {COUNCIL_EV_RANKINGS_AGGREGATED, "review", NULL, NULL,
     "{\"aggregate\":[{\"member\":\"beta\",\"borda\":1.0,\"mean_rank\":1.0,"
     "\"votes\":1},{\"member\":\"alpha\",\"borda\":0.0,\"mean_rank\":2.0,"
     "\"votes\":1}],\"ballots\":1}",
     0},
    {COUNCIL_EV_STAGE_COMPLETED, "review", NULL, NULL, "{\"reviews\":1}", 0},
    {COUNCIL_EV_STAGE_STARTED, "synthesis", NULL, NULL, NULL, 0},
    {COUNCIL_EV_SYNTHESIS_STARTED, "synthesis", NULL, NULL,
     "{\"model\":\"mock-chair\",\"provider\":\"mock\"}", 0},
    {COUNCIL_EV_SYNTHESIS_DELTA, "synthesis", NULL, "Sunlight ", NULL, 0},
    {COUNCIL_EV_SYNTHESIS_DELTA, "synthesis", NULL, "scatters.", NULL, 0},
    {COUNCIL_EV_SYNTHESIS_COMPLETED, "synthesis", NULL, "Sunlight scatters.",
     "{\"model\":\"mock-chair\",\"usage\":{\"prompt_tokens\":90,"
     "\"completion_tokens\":4,\"total_tokens\":94},\"latency_ms\":30,"
     "\"first_byte_ms\":1,\"finish_reason\":\"stop\"}",
     0},
    {COUNCIL_EV_STAGE_COMPLETED, "synthesis", NULL, NULL, NULL, 0},
    {COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL,
     "{\"result\":{\"council\":\"demo\",\"strategy\":\"rank\",\"answer\":"
     "\"Sunlight scatters.\",\"answers\":[{\"member\":\"alpha\",\"model\":"
     "\"mock-a\",\"text\":\"Rayleigh scattering.\",\"usage\":{"
     "\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}},"
     "{\"member\":\"beta\",\"model\":\"mock-b\",\"text\":\"Blue light.\","
     "\"usage\":null}],\"failed\":[{\"member\":\"gamma\",\"error\":{"
     "\"kind\":\"http\",\"message\":\"HTTP 503\"}}],\"reviews\":[{"
     "\"reviewer\":\"alpha\",\"labels\":{\"A\":\"beta\"},\"seed\":7,"
     "\"ranking\":[\"beta\"],\"parse\":\"strict\",\"parse_ok\":true}],"
     "\"aggregate\":[{\"member\":\"beta\",\"borda\":1.0,\"mean_rank\":1.0,"
     "\"votes\":1},{\"member\":\"alpha\",\"borda\":0.0,\"mean_rank\":2.0,"
     "\"votes\":1}],\"synthesis\":{\"by\":\"chairman\",\"model\":"
     "\"mock-chair\"},\"usage\":{\"prompt_tokens\":145,"
     "\"completion_tokens\":16,\"total_tokens\":161,\"complete\":false},"
     "\"seed\":42}}",
     0},
};
#define FX_RANK_N (sizeof(fx_rank_steps) / sizeof(fx_rank_steps[0]))

static const council__script_step fx_failed_steps[] = {
    FX_STARTED("other", "Will it fail?"),
    {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
    {COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL,
     "{\"errors\":[{\"kind\":\"quorum\",\"message\":\"0 of 3 members "
     "answered; quorum is 2\"}],\"result\":{\"answers\":[]}}",
     0},
};

static const council__script_step fx_cancelled_steps[] = {
    FX_STARTED("demo", "Cancel me"),
    {COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL,
     "{\"errors\":[{\"kind\":\"cancelled\",\"message\":\"the run was "
     "cancelled\"}],\"result\":{}}",
     0},
};

/* Ends without a terminal event: the run crashes. */
static const council__script_step fx_crash_steps[] = {
    FX_STARTED("demo", "Crash"),
    {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "half an ans", NULL, 0},
};

#define FX_N(steps) (sizeof(steps) / sizeof(steps[0]))

/* Record a scripted run with id run_id to the sqlite store db (and the
 * jsonl directory dir unless NULL), and to k unless NULL; wait for it. */
static void
fx_record(council_engine *eng, const char *db, const char *dir,
          const char *run_id, const council__script_step *steps, size_t n,
          const char *crash_reason, kept *k)
{
    council__script s = {steps, n, COUNCIL__SCRIPT_EXIT, crash_reason};
    council_recorder_spec specs[3];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag diag;
    size_t ns = 0;

    specs[ns++] =
        (council_recorder_spec){council_recorder_sqlite(), (void *)db};
    if (dir != NULL)
        specs[ns++] =
            (council_recorder_spec){council_recorder_jsonl(), (void *)dir};
    if (k != NULL)
        specs[ns++] = (council_recorder_spec){&kept_ops, k};
    o.recorders = specs;
    o.n_recorders = ns;
    o.run_id = run_id;
    if (council__run_start_script(eng, &s, &o, &run, &diag) != COUNCIL_OK)
        FAIL("start %s: %s", run_id, diag.msg);
    ASSERT_OK(council_run_wait(run, 10000, NULL));
    council_run_release(run);
}

/* The whole file (malloc'd, NUL-terminated). */
static char *
fx_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, k;

    if (f == NULL)
        FAIL("cannot open %s", path);
    do {
        if (cap - n < 4096) {
            cap = cap != 0 ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            ASSERT_NOT_NULL(buf);
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
    } while (k > 0);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static char *
fx_path(const char *name)
{
    static char p[8][600];
    static int i;

    i = (i + 1) % 8;
    snprintf(p[i], sizeof(p[i]), "%s/%s", runner_tmpdir(), name);
    return p[i];
}

/* The events of run_id in the store at path, as references (free with
 * fx_events_free); *n gets the count. */
typedef struct fx_events {
    council_event **evs;
    size_t n, cap;
} fx_events;

static int
fx_collect(council_event *ev, void *ud)
{
    fx_events *e = ud;

    if (e->n == e->cap) {
        e->cap = e->cap != 0 ? e->cap * 2 : 64;
        e->evs = realloc(e->evs, e->cap * sizeof(*e->evs));
        ASSERT_NOT_NULL(e->evs);
    }
    e->evs[e->n++] = council_event_ref(ev);
    return 0;
}

static void
fx_events_free(fx_events *e)
{
    size_t i;

    for (i = 0; i < e->n; i++)
        council_event_unref(e->evs[i]);
    free(e->evs);
    memset(e, 0, sizeof(*e));
}

static fx_events
fx_load(const char *path, const char *run_id)
{
    council_store *s = NULL;
    council_diag diag;
    fx_events e = {0};

    if (council_store_open(path, COUNCIL_STORE_READONLY, &s, &diag) !=
        COUNCIL_OK)
        FAIL("open %s: %s", path, diag.msg);
    if (council_store_events(s, run_id, 0, fx_collect, &e, &diag) != COUNCIL_OK)
        FAIL("events of %s: %s", run_id, diag.msg);
    council_store_close(s);
    return e;
}

#endif
