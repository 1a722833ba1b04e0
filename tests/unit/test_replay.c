/* SPDX-License-Identifier: MIT */
/*
 * council_run_replay: recorded runs (real SQLite and jsonl records of
 * scripted runs) replayed through the run contract.  Recorders get init,
 * exactly the recorded events (byte for byte) and finalize once with the
 * outcome the events imply: the terminal event's, or crashed for a record
 * cut short.  A replay recorded by the jsonl recorder equals the original
 * file; recording into the store it came from is COUNCIL_EEXIST unless
 * renamed; paced replays keep the recorded gaps (on loop timers);
 * cancellation, engine close and malformed records.
 * TEST_LABELS: threaded
 */
#include <sys/stat.h>
#include <unistd.h>

#include "council.h"
#include "record_fixture.h"

static council_engine *
engine(void)
{
    council_engine *eng = NULL;

    ASSERT_OK(council_engine_open(NULL, &eng));
    return eng;
}

/* When the last replay() started (fx_mono_us). */
static int64_t replay_t0_us;

/* Replay evs with the given recorders (plus k); wait; the outcome's kind. */
static council_outcome_kind
replay(council_engine *eng, fx_events *evs, const char *run_id,
       council_recorder_spec *extra, size_t n_extra, unsigned flags, kept *k)
{
    council_recorder_spec specs[4];
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    const council_outcome *out = NULL;
    council_run *run = NULL;
    council_outcome_kind kind;
    council_diag diag;
    size_t i;

    for (i = 0; i < n_extra; i++)
        specs[i] = extra[i];
    specs[n_extra] = (council_recorder_spec){&kept_ops, k};
    o.recorders = specs;
    o.n_recorders = n_extra + 1;
    o.run_id = run_id;
    replay_t0_us = fx_mono_us();
    if (council_run_replay(eng, &o, evs->evs, evs->n, flags, &run, &diag) !=
        COUNCIL_OK)
        FAIL("replay: %s", diag.msg);
    ASSERT_OK(council_run_wait(run, 30000, &out));
    kind = council_outcome_kind_of(out);
    council_run_release(run);
    return kind;
}

/* Each outcome: the events byte for byte, the outcome of the original. */
TEST_T(replays_each_outcome_exactly, 30)
{
    static const struct {
        const council__script_step *steps;
        size_t n;
        council_outcome_kind kind;
    } cases[] = {
        {fx_rank_steps, FX_RANK_N, COUNCIL_OUTCOME_OK},
        {fx_failed_steps, FX_N(fx_failed_steps), COUNCIL_OUTCOME_ERROR},
        {fx_cancelled_steps, FX_N(fx_cancelled_steps),
         COUNCIL_OUTCOME_CANCELLED},
    };
    const char *db = fx_path("src.db");
    council_engine *eng = engine();
    size_t c, i;

    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        kept orig, again;
        fx_events evs;
        char id[16];

        memset(&orig, 0, sizeof(orig));
        memset(&again, 0, sizeof(again));
        snprintf(id, sizeof(id), "run%zu", c);
        fx_record(eng, db, NULL, id, cases[c].steps, cases[c].n, NULL, &orig);
        ASSERT_EQ_INT(orig.kind, cases[c].kind);
        evs = fx_load(db, id);
        ASSERT_EQ_U64(evs.n, cases[c].n);
        ASSERT_EQ_INT(replay(eng, &evs, NULL, NULL, 0, 0, &again),
                      cases[c].kind);
        kept_check(&again, cases[c].n);
        ASSERT_STR_EQ(again.run_id, id); /* the recorded id */
        for (i = 0; i < again.n; i++)
            ASSERT_STR_EQ(again.lines[i], orig.lines[i]);
        ASSERT_EQ_INT(again.kind, cases[c].kind);
        ASSERT_STR_EQ(again.outcome_json, orig.outcome_json);
        fx_events_free(&evs);
        kept_free(&orig);
        kept_free(&again);
    }
    council_engine_close(eng);
}

/* A record without a terminal event (the original crashed, or the record
 * was cut short) finalizes as crashed, saying so. */
TEST(truncated_record_is_crashed)
{
    const char *db = fx_path("src.db");
    council_engine *eng = engine();
    kept orig, again, cut;
    fx_events evs;
    size_t full;

    memset(&orig, 0, sizeof(orig));
    memset(&again, 0, sizeof(again));
    memset(&cut, 0, sizeof(cut));
    fx_record(eng, db, NULL, "crash", fx_crash_steps, FX_N(fx_crash_steps),
              "signal SIGKILL", &orig);
    ASSERT_EQ_INT(orig.kind, COUNCIL_OUTCOME_CRASHED);
    evs = fx_load(db, "crash");
    ASSERT_EQ_INT(replay(eng, &evs, NULL, NULL, 0, 0, &again),
                  COUNCIL_OUTCOME_CRASHED);
    kept_check(&again, FX_N(fx_crash_steps));
    ASSERT_STR_EQ(again.reason,
                  "the record ends without a terminal event (last seq 3)");
    fx_events_free(&evs);

    /* A complete record cut before its end: the same. */
    fx_record(eng, db, NULL, "full", fx_rank_steps, FX_RANK_N, NULL, NULL);
    evs = fx_load(db, "full");
    full = evs.n;
    evs.n = 12;
    ASSERT_EQ_INT(replay(eng, &evs, NULL, NULL, 0, 0, &cut),
                  COUNCIL_OUTCOME_CRASHED);
    kept_check(&cut, 12);
    ASSERT_STR_EQ(cut.reason,
                  "the record ends without a terminal event (last seq 12)");
    evs.n = full;
    fx_events_free(&evs);
    kept_free(&orig);
    kept_free(&again);
    kept_free(&cut);
    council_engine_close(eng);
}

/* Into the jsonl recorder: the replay's file equals the original's. */
TEST_T(replay_into_jsonl_equals_the_original, 30)
{
    const char *db = fx_path("src.db");
    const char *dir1 = fx_path("orig");
    const char *dir2 = fx_path("again");
    council_engine *eng = engine();
    council_recorder_spec rec = {council_recorder_jsonl(), (void *)dir2};
    char f1[700], f2[700];
    char *a, *b;
    kept k;
    fx_events evs;

    memset(&k, 0, sizeof(k));
    mkdir(dir1, 0700);
    mkdir(dir2, 0700);
    fx_record(eng, db, dir1, "r", fx_rank_steps, FX_RANK_N, NULL, NULL);
    evs = fx_load(db, "r");
    ASSERT_EQ_INT(replay(eng, &evs, NULL, &rec, 1, 0, &k), COUNCIL_OUTCOME_OK);
    snprintf(f1, sizeof(f1), "%s/r.jsonl", dir1);
    snprintf(f2, sizeof(f2), "%s/r.jsonl", dir2);
    a = fx_slurp(f1);
    b = fx_slurp(f2);
    ASSERT(strlen(a) > 1000);
    ASSERT_STR_EQ(b, a); /* events and the outcome line */
    free(a);
    free(b);
    fx_events_free(&evs);
    kept_free(&k);
    council_engine_close(eng);
}

/* Recording the replay where the run already is: COUNCIL_EEXIST, naming
 * the store, before any recorder's init.  Under another id it works. */
TEST_T(replay_into_its_own_store, 30)
{
    const char *db = fx_path("src.db");
    const char *dir = fx_path("dir");
    council_engine *eng = engine();
    council_recorder_spec rec = {council_recorder_sqlite(), (void *)db};
    council_recorder_spec jrec = {council_recorder_jsonl(), (void *)dir};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = (council_run *)&o;
    council_diag diag;
    fx_events evs, copy;
    kept k, inits;
    size_t i;

    memset(&k, 0, sizeof(k));
    memset(&inits, 0, sizeof(inits));
    mkdir(dir, 0700);
    fx_record(eng, db, dir, "r", fx_rank_steps, FX_RANK_N, NULL, NULL);
    evs = fx_load(db, "r");
    {
        council_recorder_spec specs[2] = {{&kept_ops, &inits}, rec};

        o.recorders = specs;
        o.n_recorders = 2;
        ASSERT_EQ_INT(
            council_run_replay(eng, &o, evs.evs, evs.n, 0, &run, &diag),
            COUNCIL_EEXIST);
        ASSERT_NULL(run);
        ASSERT_STR_CONTAINS(diag.msg, "run r is already recorded in ");
        ASSERT_STR_CONTAINS(diag.msg, "src.db");
        ASSERT_EQ_INT(atomic_load(&inits.inits), 0); /* nobody was started */
    }
    o.recorders = &jrec;
    o.n_recorders = 1;
    ASSERT_EQ_INT(council_run_replay(eng, &o, evs.evs, evs.n, 0, &run, &diag),
                  COUNCIL_EEXIST);
    ASSERT_STR_CONTAINS(diag.msg, "r.jsonl");

    /* Renamed: recorded beside the original, same events but the id. */
    ASSERT_EQ_INT(replay(eng, &evs, "r-again", &rec, 1, 0, &k),
                  COUNCIL_OUTCOME_OK);
    ASSERT_STR_EQ(k.run_id, "r-again");
    copy = fx_load(db, "r-again");
    ASSERT_EQ_U64(copy.n, evs.n);
    for (i = 0; i < evs.n; i++) {
        ASSERT_STR_EQ(council_event_run_id(copy.evs[i]), "r-again");
        ASSERT_EQ_INT(council_event_time_us(copy.evs[i]),
                      council_event_time_us(evs.evs[i]));
        ASSERT_EQ_INT(council_event_type_of(copy.evs[i]),
                      council_event_type_of(evs.evs[i]));
    }
    fx_events_free(&copy);
    fx_events_free(&evs);
    kept_free(&k);
    kept_free(&inits);
    council_engine_close(eng);
}

/* Scripted with gaps of 0, 150 and 250 ms. */
static const council__script_step slow_steps[] = {
    FX_STARTED("demo", "Slowly"),
    {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "one", NULL, 150},
    {COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "two", NULL, 250},
    {COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL,
     "{\"result\":{\"answer\":\"two\"}}", 0},
};

TEST(malformed_records_are_refused)
{
    const char *db = fx_path("src.db");
    council_engine *eng = engine();
    council_run *run = NULL;
    council_diag diag;
    fx_events a, b;
    council_event *tmp;
    council_event *mixed[3];

    fx_record(eng, db, NULL, "a", fx_rank_steps, FX_RANK_N, NULL, NULL);
    fx_record(eng, db, NULL, "b", fx_rank_steps, FX_RANK_N, NULL, NULL);
    fx_record(eng, db, NULL, "slow", slow_steps, FX_N(slow_steps), NULL, NULL);
    a = fx_load(db, "a");
    b = fx_load(db, "b");

    ASSERT_EQ_INT(council_run_replay(eng, NULL, a.evs, 0, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "no events");
    ASSERT_EQ_INT(council_run_replay(eng, NULL, NULL, 3, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_run_replay(eng, NULL, a.evs + 1, 3, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "event 0 has seq 2, not 1");
    /* Two run ids. */
    mixed[0] = a.evs[0];
    mixed[1] = b.evs[1];
    mixed[2] = a.evs[2];
    ASSERT_EQ_INT(council_run_replay(eng, NULL, mixed, 3, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "event 1 is of run b, not a");
    mixed[1] = NULL;
    ASSERT_EQ_INT(council_run_replay(eng, NULL, mixed, 3, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "event 1 is NULL");
    /* A terminal event before the last. */
    tmp = a.evs[a.n - 1];
    {
        council_event *ended[FX_RANK_N + 1];

        memcpy(ended, a.evs, a.n * sizeof(*ended));
        ended[a.n] = tmp;
        ASSERT_EQ_INT(
            council_run_replay(eng, NULL, ended, a.n + 1, 0, &run, &diag),
            COUNCIL_EINVAL);
    }
    ASSERT_EQ_INT(council_run_replay(eng, NULL, a.evs, a.n, 0x10, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_run_replay(NULL, NULL, a.evs, a.n, 0, &run, &diag),
                  COUNCIL_EINVAL);
    ASSERT_NULL(run);
    /* A run of that id in flight (a paced replay takes 400 ms). */
    {
        fx_events slow = fx_load(db, "slow");
        council_run *first = NULL;
        kept k;
        council_recorder_spec spec = {&kept_ops, &k};
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};

        memset(&k, 0, sizeof(k));
        o.recorders = &spec;
        o.n_recorders = 1;
        ASSERT_OK(council_run_replay(eng, &o, slow.evs, slow.n,
                                     COUNCIL_REPLAY_PACED, &first, &diag));
        ASSERT_EQ_INT(
            council_run_replay(eng, NULL, slow.evs, slow.n, 0, &run, &diag),
            COUNCIL_EEXIST);
        ASSERT_STR_CONTAINS(diag.msg, "already in use");
        ASSERT_OK(council_run_wait(first, 10000, NULL));
        council_run_release(first);
        kept_free(&k);
        fx_events_free(&slow);
    }
    fx_events_free(&a);
    fx_events_free(&b);
    council_engine_close(eng);
}

TEST_T(paced_keeps_the_recorded_gaps, 30)
{
    const char *db = fx_path("src.db");
    council_engine *eng = engine();
    kept orig, paced, fast;
    fx_events evs;
    int64_t rec_total, paced_total, fast_total;
    size_t i;

    memset(&orig, 0, sizeof(orig));
    memset(&paced, 0, sizeof(paced));
    memset(&fast, 0, sizeof(fast));
    fx_record(eng, db, NULL, "slow", slow_steps, FX_N(slow_steps), NULL, &orig);
    evs = fx_load(db, "slow");
    rec_total = council_event_time_us(evs.evs[evs.n - 1]) -
                council_event_time_us(evs.evs[0]);
    ASSERT(rec_total >= 400000);

    ASSERT_EQ_INT(
        replay(eng, &evs, NULL, NULL, 0, COUNCIL_REPLAY_PACED, &paced),
        COUNCIL_OUTCOME_OK);
    kept_check(&paced, FX_N(slow_steps));
    /* Each event no earlier after the replay's start than recorded after
     * the first (timers never fire early; 2 ms for libuv's millisecond
     * clock), and the events the same.  Measured from the start, not
     * from the first delivery: a first event delivered late (a loaded
     * machine) does not push the later ones back, so against it they
     * would seem early. */
    for (i = 1; i < paced.n; i++) {
        int64_t want = council_event_time_us(evs.evs[i]) -
                       council_event_time_us(evs.evs[0]);
        int64_t got_at = paced.mono_us[i] - replay_t0_us;

        if (got_at + 2000 < want)
            FAIL("seq %zu came %lld us after the replay started, recorded "
                 "%lld us after the first",
                 i + 1, (long long)got_at, (long long)want);
        ASSERT_STR_EQ(paced.lines[i], orig.lines[i]);
    }
    paced_total = paced.mono_us[paced.n - 1] - replay_t0_us;
    ASSERT(paced_total + 2000 >= rec_total);

    ASSERT_EQ_INT(replay(eng, &evs, NULL, NULL, 0, 0, &fast),
                  COUNCIL_OUTCOME_OK);
    fast_total = fast.mono_us[fast.n - 1] - fast.mono_us[0];
    if (fast_total * 2 > rec_total)
        FAIL("unpaced replay took %lld us of a %lld us record",
             (long long)fast_total, (long long)rec_total);
    fx_events_free(&evs);
    kept_free(&orig);
    kept_free(&paced);
    kept_free(&fast);
    council_engine_close(eng);
}

/* Cancelling a paced replay ends it with one more event, run_failed
 * (cancelled); closing the engine ends one as crashed(shutdown). */
TEST_T(cancel_and_close_during_a_paced_replay, 30)
{
    const char *db = fx_path("src.db");
    council_engine *eng = engine();
    council_recorder_spec spec;
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    const council_outcome *out = NULL;
    council_run *run = NULL;
    kept k, k2;
    fx_events evs;

    memset(&k, 0, sizeof(k));
    memset(&k2, 0, sizeof(k2));
    fx_record(eng, db, NULL, "slow", slow_steps, FX_N(slow_steps), NULL, NULL);
    evs = fx_load(db, "slow");
    spec = (council_recorder_spec){&kept_ops, &k};
    o.recorders = &spec;
    o.n_recorders = 1;
    ASSERT_OK(council_run_replay(eng, &o, evs.evs, evs.n, COUNCIL_REPLAY_PACED,
                                 &run, NULL));
    usleep(60000); /* inside the first 150 ms gap */
    ASSERT_OK(council_run_cancel(run));
    ASSERT_OK(council_run_wait(run, 10000, &out));
    ASSERT_EQ_INT(council_outcome_kind_of(out), COUNCIL_OUTCOME_CANCELLED);
    council_run_release(run);
    kept_check(&k, 3);
    ASSERT_STR_CONTAINS(k.lines[2], "\"type\":\"run_failed\"");
    ASSERT_STR_CONTAINS(k.lines[2], "the replay was cancelled");

    spec = (council_recorder_spec){&kept_ops, &k2};
    o.run_id = "closing";
    ASSERT_OK(council_run_replay(eng, &o, evs.evs, evs.n, COUNCIL_REPLAY_PACED,
                                 NULL, NULL));
    usleep(60000);
    council_engine_close(eng);
    kept_check(&k2, 2);
    ASSERT_EQ_INT(k2.kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(k2.reason, "shutdown");
    fx_events_free(&evs);
    kept_free(&k);
    kept_free(&k2);
}

/* A long record unpaced, emitted in chunks: every event, in order. */
TEST_T(long_record, 60)
{
    enum { N = 5000 };
    council__script_step *steps = calloc(N, sizeof(*steps));
    const char *db = fx_path("long.db");
    council_engine *eng = engine();
    fx_events evs;
    council__script s;
    council_recorder_spec spec = {council_recorder_sqlite(), (void *)db};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    size_t i;

    ASSERT_NOT_NULL(steps);
    steps[0] = fx_rank_steps[0];
    for (i = 1; i < N - 1; i++)
        steps[i] = (council__script_step){
            COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "x", NULL, 0};
    steps[N - 1] = fx_rank_steps[FX_RANK_N - 1];
    s = (council__script){steps, N, COUNCIL__SCRIPT_EXIT};
    o.recorders = &spec;
    o.n_recorders = 1;
    o.run_id = "long";
    ASSERT_OK(council__run_start_script(eng, &s, &o, &run, NULL));
    ASSERT_OK(council_run_wait(run, 30000, NULL));
    council_run_release(run);
    evs = fx_load(db, "long");
    ASSERT_EQ_U64(evs.n, N);
    /* Replayed into another store: every event, byte for byte. */
    {
        const char *db2 = fx_path("long2.db");
        council_recorder_spec r2 = {council_recorder_sqlite(), (void *)db2};
        council_run_opts o2 = {COUNCIL_RUN_OPTS_VERSION};
        fx_events back;

        o2.recorders = &r2;
        o2.n_recorders = 1;
        ASSERT_OK(council_run_replay(eng, &o2, evs.evs, evs.n, 0, &run, NULL));
        ASSERT_OK(council_run_wait(run, 30000, NULL));
        council_run_release(run);
        back = fx_load(db2, "long");
        ASSERT_EQ_U64(back.n, N);
        for (i = 0; i < N; i++)
            ASSERT_STR_EQ(council_event_json(back.evs[i]),
                          council_event_json(evs.evs[i]));
        fx_events_free(&back);
    }
    fx_events_free(&evs);
    free(steps);
    council_engine_close(eng);
}
