/* SPDX-License-Identifier: MIT */
/*
 * The run store through a handle (council_store_open and the calls on
 * it), on real SQLite files written by the real sqlite recorder through
 * real runs (the scripted host), and on jsonl records written by the jsonl
 * recorder: filters, one run's record, its events as events (byte for
 * byte what the recorders saw), resume after a seq, deletion; and bad
 * input: missing, foreign, newer and corrupted stores, damaged event rows,
 * gaps, unknown ids, cut-short and damaged jsonl records.  Handles are used
 * from several threads at once (one each) while a recorder writes.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <sqlite3.h>
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

static council_store *
open_ro(const char *path)
{
    council_store *s = NULL;
    council_diag diag;

    if (council_store_open(path, COUNCIL_STORE_READONLY, &s, &diag) !=
        COUNCIL_OK)
        FAIL("open %s: %s", path, diag.msg);
    return s;
}

static void
sql(const char *db, const char *text)
{
    sqlite3 *h = NULL;
    char *err = NULL;

    ASSERT_EQ_INT(sqlite3_open_v2(
                      db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                  SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    if (sqlite3_exec(h, text, NULL, NULL, &err) != SQLITE_OK)
        FAIL("%s: %s", text, err);
    sqlite3_close(h);
}

static long long
sql_int(const char *db, const char *text)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long long v;

    ASSERT_EQ_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                  SQLITE_OK);
    if (sqlite3_prepare_v2(h, text, -1, &st, NULL) != SQLITE_OK)
        FAIL("%s: %s", text, sqlite3_errmsg(h));
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* ---- listing with filters ------------------------------------------------ */

typedef struct rows {
    int n, stop_after;
    char ids[16][40];
    char outcomes[16][16];
    char councils[16][16];
    char strategies[16][16];
    uint64_t events[16];
} rows;

static int
collect_row(const council_run_row *r, void *ud)
{
    rows *s = ud;

    ASSERT(s->n < 16);
    snprintf(s->ids[s->n], 40, "%s", r->run_id);
    snprintf(s->outcomes[s->n], 16, "%s",
             r->outcome != NULL ? r->outcome : "-");
    snprintf(s->councils[s->n], 16, "%s", r->council ? r->council : "-");
    snprintf(s->strategies[s->n], 16, "%s", r->strategy ? r->strategy : "-");
    s->events[s->n] = r->events;
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

static rows
query(council_store *s, const char *council, const char *outcome,
      int64_t since_us, size_t limit)
{
    council_store_query q = {council, outcome, since_us, limit};
    council_diag diag;
    rows r;

    memset(&r, 0, sizeof(r));
    if (council_store_runs(s, &q, collect_row, &r, &diag) != COUNCIL_OK)
        FAIL("runs: %s", diag.msg);
    return r;
}

static const council__script_step hang_steps[] = {
    FX_STARTED("demo", "Still thinking"),
    {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
};

TEST_T(runs_filters, 30)
{
    const char *db = fx_path("runs.db");
    council_engine *eng = engine();
    council__script hang = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    council_recorder_spec spec = {council_recorder_sqlite(), (void *)db};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *running = NULL;
    council_store *s;
    int64_t mid;
    rows r;

    fx_record(eng, db, NULL, "r1-ok", fx_rank_steps, FX_RANK_N, NULL, NULL);
    usleep(3000);
    fx_record(eng, db, NULL, "r2-failed", fx_failed_steps,
              FX_N(fx_failed_steps), NULL, NULL);
    usleep(3000);
    {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        mid = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    usleep(3000);
    fx_record(eng, db, NULL, "r3-cancelled", fx_cancelled_steps,
              FX_N(fx_cancelled_steps), NULL, NULL);
    usleep(3000);
    fx_record(eng, db, NULL, "r4-crashed", fx_crash_steps, FX_N(fx_crash_steps),
              "signal SIGKILL", NULL);
    usleep(3000);
    o.recorders = &spec;
    o.n_recorders = 1;
    o.run_id = "r5-running";
    ASSERT_OK(council__run_start_script(eng, &hang, &o, &running, NULL));
    /* Wait until its events are stored (the recorder flushes when its
     * mailbox runs empty). */
    for (int i = 0; i < 500 && sql_int(db, "SELECT events FROM runs WHERE "
                                           "run_id='r5-running'") < 2;
         i++)
        usleep(10000);

    s = open_ro(db);
    r = query(s, NULL, NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 5);
    ASSERT_STR_EQ(r.ids[0], "r5-running"); /* newest first */
    ASSERT_STR_EQ(r.ids[4], "r1-ok");
    ASSERT_STR_EQ(r.outcomes[0], "-");
    ASSERT_EQ_U64(r.events[0], 2);
    ASSERT_STR_EQ(r.outcomes[1], "crashed");
    ASSERT_STR_EQ(r.outcomes[2], "cancelled");
    ASSERT_STR_EQ(r.outcomes[3], "error");
    ASSERT_STR_EQ(r.outcomes[4], "ok");
    ASSERT_EQ_U64(r.events[4], FX_RANK_N);
    ASSERT_STR_EQ(r.strategies[4], "rank");

    r = query(s, "other", NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_STR_EQ(r.ids[0], "r2-failed");
    r = query(s, "demo", NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 4);
    r = query(s, "nobody", NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 0);

    r = query(s, NULL, "ok", 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_STR_EQ(r.ids[0], "r1-ok");
    r = query(s, NULL, "error", 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_STR_EQ(r.ids[0], "r2-failed");
    r = query(s, NULL, "cancelled", 0, 0);
    ASSERT_STR_EQ(r.ids[0], "r3-cancelled");
    r = query(s, NULL, "crashed", 0, 0);
    ASSERT_STR_EQ(r.ids[0], "r4-crashed");
    r = query(s, NULL, "running", 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_STR_EQ(r.ids[0], "r5-running");

    r = query(s, NULL, NULL, mid, 0);
    ASSERT_EQ_INT(r.n, 3);
    ASSERT_STR_EQ(r.ids[2], "r3-cancelled");
    r = query(s, "demo", "cancelled", mid, 0);
    ASSERT_EQ_INT(r.n, 1);
    r = query(s, "other", NULL, mid, 0);
    ASSERT_EQ_INT(r.n, 0);
    r = query(s, NULL, NULL, 0, 2);
    ASSERT_EQ_INT(r.n, 2);
    ASSERT_STR_EQ(r.ids[1], "r4-crashed");

    /* A NULL query is every run; the callback may stop early. */
    {
        rows all;

        memset(&all, 0, sizeof(all));
        all.stop_after = 2;
        ASSERT_OK(council_store_runs(s, NULL, collect_row, &all, NULL));
        ASSERT_EQ_INT(all.n, 2);
    }
    {
        council_store_query bad = {NULL, "finished", 0, 0};
        council_diag diag;

        ASSERT_EQ_INT(council_store_runs(s, &bad, collect_row, &r, &diag),
                      COUNCIL_EINVAL);
        ASSERT_STR_CONTAINS(diag.msg, "unknown outcome");
        ASSERT_EQ_INT(council_store_runs(s, NULL, NULL, NULL, &diag),
                      COUNCIL_EINVAL);
        ASSERT_EQ_INT(council_store_runs(NULL, NULL, collect_row, &r, &diag),
                      COUNCIL_EINVAL);
    }
    council_store_close(s);

    /* Once the engine closes, the running run is crashed("shutdown"). */
    council_run_release(running);
    council_engine_close(eng);
    s = open_ro(db);
    r = query(s, NULL, "running", 0, 0);
    ASSERT_EQ_INT(r.n, 0);
    r = query(s, NULL, "crashed", 0, 0);
    ASSERT_EQ_INT(r.n, 2);
    council_store_close(s);
}

/* ---- one run's record ---------------------------------------------------- */

static json_t *
record_of(council_store *s, const char *run_id)
{
    council_diag diag;
    char *text = NULL;
    json_t *j;
    json_error_t je;

    if (council_store_run(s, run_id, &text, &diag) != COUNCIL_OK)
        FAIL("run %s: %s", run_id, diag.msg);
    ASSERT(strchr(text, '\n') == NULL);
    j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        FAIL("record is not JSON: %s: %s", je.text, text);
    council_free(text);
    return j;
}

static const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

TEST_T(run_record, 30)
{
    const char *db = fx_path("rec.db");
    council_engine *eng = engine();
    council_store *s;
    council_diag diag;
    char *text = (char *)"x";
    json_t *j, *v;
    char ts[64];

    fx_record(eng, db, NULL, "ok", fx_rank_steps, FX_RANK_N, NULL, NULL);
    fx_record(eng, db, NULL, "failed", fx_failed_steps, FX_N(fx_failed_steps),
              NULL, NULL);
    fx_record(eng, db, NULL, "crashed", fx_crash_steps, FX_N(fx_crash_steps),
              "signal SIGKILL", NULL);
    council_engine_close(eng);
    s = open_ro(db);

    j = record_of(s, "ok");
    ASSERT_STR_EQ(jstr(j, "run_id"), "ok");
    ASSERT_STR_EQ(jstr(j, "council"), "demo");
    ASSERT_STR_EQ(jstr(j, "strategy"), "rank");
    ASSERT_STR_EQ(jstr(j, "question"), "Why is the sky blue?");
    v = json_object_get(j, "messages");
    ASSERT_EQ_INT(json_array_size(v), 1);
    ASSERT_STR_EQ(jstr(json_array_get(v, 0), "role"), "user");
    ASSERT_EQ_INT(json_array_size(json_object_get(j, "members")), 3);
    ASSERT_STR_EQ(jstr(json_object_get(j, "chairman"), "model"), "mock-chair");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "seed")), 42);
    ASSERT_NULL(json_object_get(j, "type")); /* not the event's fields */
    ASSERT_NULL(json_object_get(j, "seq"));
    ASSERT(json_integer_value(json_object_get(j, "started_us")) > 0);
    /* The same instant in both forms. */
    {
        int64_t us = 0;
        const char *st = jstr(j, "started");

        ASSERT_NOT_NULL(st);
        snprintf(ts, sizeof(ts), "%s", st);
        ASSERT_EQ_INT(council__parse_ts(ts, strlen(ts), &us), 0);
        ASSERT_EQ_INT(us, json_integer_value(json_object_get(j, "started_us")));
    }
    ASSERT(json_integer_value(json_object_get(j, "ended_us")) >=
           json_integer_value(json_object_get(j, "started_us")));
    ASSERT(json_is_string(json_object_get(j, "ended")));
    ASSERT(json_is_integer(json_object_get(j, "duration_ms")));
    ASSERT_STR_EQ(jstr(j, "outcome"), "ok");
    ASSERT_STR_EQ(jstr(json_object_get(j, "result"), "answer"),
                  "Sunlight scatters.");
    ASSERT_NULL(json_object_get(j, "errors"));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), FX_RANK_N);
    json_decref(j);

    j = record_of(s, "failed");
    ASSERT_STR_EQ(jstr(j, "council"), "other");
    ASSERT_STR_EQ(jstr(j, "outcome"), "error");
    ASSERT_STR_EQ(jstr(j, "reason"), "0 of 3 members answered; quorum is 2");
    ASSERT_STR_EQ(jstr(json_array_get(json_object_get(j, "errors"), 0), "kind"),
                  "quorum");
    ASSERT(json_is_object(json_object_get(j, "result")));
    json_decref(j);

    j = record_of(s, "crashed");
    ASSERT_STR_EQ(jstr(j, "outcome"), "crashed");
    ASSERT_STR_EQ(jstr(j, "reason"), "signal SIGKILL");
    ASSERT_NULL(json_object_get(j, "result"));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), 3);
    json_decref(j);

    ASSERT_EQ_INT(council_store_run(s, "nope", &text, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_NULL(text);
    ASSERT_STR_CONTAINS(diag.msg, "no run nope in ");
    ASSERT_STR_CONTAINS(diag.msg, "rec.db");
    ASSERT_EQ_INT(council_store_run(s, NULL, &text, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_run(s, "ok", NULL, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_run(NULL, "ok", &text, &diag), COUNCIL_EINVAL);
    council_store_close(s);
}

/* A run whose process ended before its recorder finalized: a row with
 * events and no outcome, written by the recorder itself. */
TEST(running_record)
{
    const char *db = fx_path("running.db");
    council_engine *eng = engine();
    council__script hang = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    council_recorder_spec spec = {council_recorder_sqlite(), (void *)db};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_store *s;
    json_t *j;

    o.recorders = &spec;
    o.n_recorders = 1;
    o.run_id = "live";
    ASSERT_OK(council__run_start_script(eng, &hang, &o, &run, NULL));
    for (int i = 0;
         i < 500 &&
         sql_int(db, "SELECT events FROM runs WHERE run_id='live'") < 2;
         i++)
        usleep(10000);
    s = open_ro(db);
    j = record_of(s, "live");
    ASSERT_STR_EQ(jstr(j, "outcome"), "running");
    ASSERT(json_is_null(json_object_get(j, "ended_us")));
    ASSERT(json_is_null(json_object_get(j, "ended")));
    ASSERT(json_is_null(json_object_get(j, "duration_ms")));
    ASSERT_STR_EQ(jstr(j, "question"), "Still thinking");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), 2);
    json_decref(j);
    council_store_close(s);
    council_run_release(run);
    council_engine_close(eng);
}

/* ---- events ------------------------------------------------------------- */

typedef struct seen {
    fx_events e;
    int stop_at;
} seen;

static int
collect_some(council_event *ev, void *ud)
{
    seen *s = ud;

    fx_collect(ev, &s->e);
    return s->stop_at != 0 && (int)s->e.n >= s->stop_at;
}

TEST_T(events_as_recorded, 30)
{
    const char *db = fx_path("ev.db");
    council_engine *eng = engine();
    council_store *s;
    council_diag diag;
    kept k;
    seen got;
    size_t i;

    memset(&k, 0, sizeof(k));
    fx_record(eng, db, NULL, "ok", fx_rank_steps, FX_RANK_N, NULL, &k);
    fx_record(eng, db, NULL, "other", fx_failed_steps, FX_N(fx_failed_steps),
              NULL, NULL);
    council_engine_close(eng);
    kept_check(&k, FX_RANK_N);
    s = open_ro(db);

    /* The whole record: byte for byte what a recorder saw. */
    memset(&got, 0, sizeof(got));
    ASSERT_OK(council_store_events(s, "ok", 0, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, FX_RANK_N);
    for (i = 0; i < got.e.n; i++) {
        council_event *ev = got.e.evs[i];

        ASSERT_EQ_U64(council_event_seq(ev), i + 1);
        ASSERT_STR_EQ(council_event_run_id(ev), "ok");
        ASSERT_STR_EQ(council_event_json(ev), k.lines[i]);
        ASSERT_EQ_INT(council_event_type_of(ev), fx_rank_steps[i].type);
        if (fx_rank_steps[i].member != NULL)
            ASSERT_STR_EQ(council_event_member(ev), fx_rank_steps[i].member);
        if (fx_rank_steps[i].text != NULL)
            ASSERT_STR_EQ(council_event_text(ev), fx_rank_steps[i].text);
    }
    fx_events_free(&got.e);

    /* Resume after seq 20: 21.., in order. */
    ASSERT_OK(council_store_events(s, "ok", 20, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, FX_RANK_N - 20);
    ASSERT_EQ_U64(council_event_seq(got.e.evs[0]), 21);
    fx_events_free(&got.e);
    /* At or past the end: nothing, and no error. */
    ASSERT_OK(
        council_store_events(s, "ok", FX_RANK_N, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, 0);
    ASSERT_OK(council_store_events(s, "ok", 1000000, collect_some, &got, NULL));
    ASSERT_EQ_U64(got.e.n, 0);
    /* The callback stops. */
    got.stop_at = 3;
    ASSERT_OK(council_store_events(s, "ok", 0, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, 3);
    fx_events_free(&got.e);
    got.stop_at = 0;
    /* Only that run's events. */
    ASSERT_OK(council_store_events(s, "other", 0, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, FX_N(fx_failed_steps));
    fx_events_free(&got.e);

    ASSERT_EQ_INT(council_store_events(s, "nope", 0, collect_some, &got, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_STR_CONTAINS(diag.msg, "no run nope");
    ASSERT_EQ_U64(got.e.n, 0);
    ASSERT_EQ_INT(council_store_events(s, "ok", 0, NULL, &got, &diag),
                  COUNCIL_EINVAL);
    council_store_close(s);
    kept_free(&k);
}

/* Damaged rows: the events before the damage, then COUNCIL_EIO naming the
 * seq; never a crash, never an event that is not what it says. */
TEST_T(damaged_event_rows, 30)
{
    static const struct {
        const char *sql;
        const char *says;
        size_t before;
    } cases[] = {
        {"UPDATE events SET json='{\"type\":' WHERE run_id='ok' AND seq=5",
         "event seq 5 is damaged: not JSON", 4},
        {"UPDATE events SET json='[1,2]' WHERE run_id='ok' AND seq=5",
         "event seq 5 is damaged", 4},
        {"UPDATE events SET json=replace(json,'\"seq\":7','\"seq\":8')"
         " WHERE run_id='ok' AND seq=7",
         "event seq 7 is damaged: it holds another seq", 6},
        {"UPDATE events SET json=replace(json,'\"run_id\":\"ok\"',"
         "'\"run_id\":\"ko\"') WHERE run_id='ok' AND seq=3",
         "event seq 3 is damaged: it holds another run's id", 2},
        {"UPDATE events SET json=replace(json,'member_delta','member_sneeze')"
         " WHERE run_id='ok' AND seq=6",
         "unknown event type", 5},
        {"DELETE FROM events WHERE run_id='ok' AND seq=9",
         "seq 10 follows seq 8", 8},
        {"DELETE FROM events WHERE run_id='ok' AND seq=1",
         "seq 2 follows seq 0", 0},
    };
    const char *good = fx_path("good.db");
    council_engine *eng = engine();
    size_t i;

    fx_record(eng, good, NULL, "ok", fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char bad[700], cmd[2200];
        council_store *s;
        council_diag diag;
        seen got;

        snprintf(bad, sizeof(bad), "%s/bad%zu.db", runner_tmpdir(), i);
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", good, bad);
        ASSERT_EQ_INT(system(cmd), 0);
        sql(bad, cases[i].sql);
        s = open_ro(bad);
        memset(&got, 0, sizeof(got));
        ASSERT_EQ_INT(
            council_store_events(s, "ok", 0, collect_some, &got, &diag),
            COUNCIL_EIO);
        ASSERT_STR_CONTAINS(diag.msg, cases[i].says);
        ASSERT_EQ_U64(got.e.n, cases[i].before);
        for (size_t j = 0; j < got.e.n; j++)
            ASSERT_EQ_U64(council_event_seq(got.e.evs[j]), j + 1);
        fx_events_free(&got.e);
        council_store_close(s);
    }
}

TEST(damaged_record_parts)
{
    const char *db = fx_path("parts.db");
    council_engine *eng = engine();
    council_store *s;
    council_diag diag;
    char *text = NULL;

    fx_record(eng, db, NULL, "a", fx_rank_steps, FX_RANK_N, NULL, NULL);
    fx_record(eng, db, NULL, "b", fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    sql(db, "UPDATE events SET json='nonsense' WHERE run_id='a' AND seq=1");
    sql(db, "UPDATE runs SET outcome_json='{\"outcome\":' WHERE run_id='b'");
    s = open_ro(db);
    ASSERT_EQ_INT(council_store_run(s, "a", &text, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "run a: its run_started event (seq 1) is "
                                  "damaged");
    ASSERT_NULL(text);
    ASSERT_EQ_INT(council_store_run(s, "b", &text, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "run b: its outcome is damaged");
    council_store_close(s);

    /* A row without its run_started event still has a record, from the
     * row (a question that is not UTF-8 is written with U+FFFD). */
    sql(db, "DELETE FROM events WHERE run_id='a' AND seq=1");
    sql(db, "UPDATE runs SET question=CAST(x'41ff42' AS TEXT) "
            "WHERE run_id='a'");
    /* Stored fields named like the record's own do not replace them, and
     * the record has each key once (record_of refuses duplicates). */
    sql(db, "UPDATE events SET json='{\"type\":\"run_started\","
            "\"run_id\":\"b\",\"seq\":1,\"ts\":\"2026-11-24T01:02:03Z\","
            "\"council\":\"demo\",\"outcome\":\"fake\",\"events\":-1,"
            "\"result\":1,\"messages\":[], \"note\" : \"kept\" }' "
            "WHERE run_id='b' AND seq=1");
    sql(db, "UPDATE runs SET outcome_json='{\"outcome\":\"ok\","
            "\"result\":{\"answer\":\"x\"},\"messages\":0}' "
            "WHERE run_id='b'");
    s = open_ro(db);
    {
        json_t *j = record_of(s, "a");

        ASSERT_STR_EQ(jstr(j, "council"), "demo");
        ASSERT_STR_EQ(jstr(j, "question"), "A\xef\xbf\xbd"
                                           "B");
        ASSERT_NULL(json_object_get(j, "messages"));
        json_decref(j);
        j = record_of(s, "b");
        ASSERT_STR_EQ(jstr(j, "outcome"), "ok");
        ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")),
                      FX_RANK_N);
        ASSERT_STR_EQ(jstr(json_object_get(j, "result"), "answer"), "x");
        ASSERT(json_is_array(json_object_get(j, "messages")));
        ASSERT_STR_EQ(jstr(j, "note"), "kept");
        json_decref(j);
    }
    council_store_close(s);
}

/* ---- opening ------------------------------------------------------------ */

TEST(open_refusals)
{
    const char *missing = fx_path("missing.db");
    const char *foreign = fx_path("foreign.db");
    const char *text = fx_path("text.db");
    const char *newer = fx_path("newer.db");
    const char *cols = fx_path("columns.db");
    council_engine *eng = engine();
    council_store *s = (council_store *)&eng;
    council_diag diag;
    FILE *f;

    ASSERT_EQ_INT(council_store_open(missing, 0, &s, &diag), COUNCIL_ENOTFOUND);
    ASSERT_NULL(s);
    ASSERT_EQ_INT(access(missing, F_OK), -1); /* never created */

    sql(foreign, "CREATE TABLE runs(x)");
    ASSERT_EQ_INT(council_store_open(foreign, 0, &s, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council store");

    f = fopen(text, "w");
    ASSERT_NOT_NULL(f);
    fputs("just some text, not a database\n", f);
    fclose(f);
    ASSERT_EQ_INT(council_store_open(text, 0, &s, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a database");

    fx_record(eng, newer, NULL, "a", fx_cancelled_steps,
              FX_N(fx_cancelled_steps), NULL, NULL);
    fx_record(eng, cols, NULL, "a", fx_cancelled_steps,
              FX_N(fx_cancelled_steps), NULL, NULL);
    council_engine_close(eng);
    sql(newer, "PRAGMA user_version=99");
    ASSERT_EQ_INT(council_store_open(newer, COUNCIL_STORE_READONLY, &s, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "unknown store schema version 99");
    sql(cols, "ALTER TABLE events RENAME COLUMN json TO body");
    ASSERT_EQ_INT(council_store_open(cols, COUNCIL_STORE_READONLY, &s, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council store");

    ASSERT_EQ_INT(council_store_open(NULL, 0, &s, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_open(newer, 0x80, &s, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_open(newer, 0, NULL, &diag), COUNCIL_EINVAL);
    council_store_close(NULL);
}

/* Overwrite the bytes from skip on with garbage (seeded). */
static void
scribble(const char *path, uint64_t seed, size_t skip, size_t n)
{
    FILE *f = fopen(path, "r+b");
    size_t i;

    ASSERT_NOT_NULL(f);
    fseek(f, (long)skip, SEEK_SET);
    for (i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        fputc((int)(seed >> 56), f);
    }
    fclose(f);
}

static int
count_ev(council_event *ev, void *ud)
{
    (void)ev;
    (*(int *)ud)++;
    return 0;
}

static int
count_row(const council_run_row *r, void *ud)
{
    (void)r;
    (*(int *)ud)++;
    return 0;
}

/* Every call on a corrupted file answers OK or EIO (or ENOTFOUND for a
 * run it cannot find), never crashes. */
TEST_T(corrupted_store, 120)
{
    const char *good = fx_path("good.db");
    council_engine *eng = engine();
    uint64_t seed = runner_seed();
    int i, opened = 0;
    struct stat sb;

    for (i = 0; i < 6; i++) {
        char id[16];

        snprintf(id, sizeof(id), "run%d", i);
        fx_record(eng, good, NULL, id, fx_rank_steps, FX_RANK_N, NULL, NULL);
    }
    council_engine_close(eng);
    sql(good, "PRAGMA wal_checkpoint(TRUNCATE)");
    ASSERT_EQ_INT(stat(good, &sb), 0);
    for (i = 0; i < 150; i++) {
        char bad[700], cmd[2200];
        council_store *s = NULL;
        council_diag diag;
        council_err rc;
        char *text = NULL;
        int n = 0;
        size_t at;

        snprintf(bad, sizeof(bad), "%s/bad.db", runner_tmpdir());
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && rm -f '%s-wal' '%s-shm'",
                 good, bad, bad, bad);
        ASSERT_EQ_INT(system(cmd), 0);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        at = (size_t)(seed >> 33) % (size_t)sb.st_size;
        scribble(bad, seed, at, 1 + (size_t)(seed >> 20) % 64);
        rc = council_store_open(bad, 0, &s, &diag);
        if (rc != COUNCIL_OK) {
            ASSERT_EQ_INT(rc, COUNCIL_EIO);
            ASSERT(diag.msg[0] != '\0');
            continue;
        }
        opened++;
        rc = council_store_runs(s, NULL, count_row, &n, &diag);
        ASSERT(rc == COUNCIL_OK || rc == COUNCIL_EIO);
        rc = council_store_run(s, "run3", &text, &diag);
        ASSERT(rc == COUNCIL_OK || rc == COUNCIL_EIO ||
               rc == COUNCIL_ENOTFOUND);
        council_free(text);
        rc = council_store_events(s, "run3", 0, count_ev, &n, &diag);
        ASSERT(rc == COUNCIL_OK || rc == COUNCIL_EIO ||
               rc == COUNCIL_ENOTFOUND);
        rc = council_store_delete(s, "run2", &diag);
        ASSERT(rc == COUNCIL_OK || rc == COUNCIL_EIO ||
               rc == COUNCIL_ENOTFOUND);
        council_store_close(s);
    }
    ASSERT(opened > 0);
}

/* ---- delete -------------------------------------------------------------- */

TEST_T(delete_runs, 30)
{
    const char *db = fx_path("del.db");
    council_engine *eng = engine();
    council__script hang = {hang_steps, 2, COUNCIL__SCRIPT_HANG};
    council_recorder_spec spec = {council_recorder_sqlite(), (void *)db};
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *live = NULL;
    council_store *s, *ro, *force;
    council_diag diag;
    int n = 0;

    fx_record(eng, db, NULL, "a", fx_rank_steps, FX_RANK_N, NULL, NULL);
    fx_record(eng, db, NULL, "b", fx_failed_steps, FX_N(fx_failed_steps), NULL,
              NULL);
    o.recorders = &spec;
    o.n_recorders = 1;
    o.run_id = "live";
    ASSERT_OK(council__run_start_script(eng, &hang, &o, &live, NULL));

    ASSERT_OK(council_store_open(db, 0, &s, &diag));
    ASSERT_OK(council_store_delete(s, "a", &diag));
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM events WHERE run_id='a'"),
                  0);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE run_id='a'"), 0);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM events WHERE run_id='b'"),
                  FX_N(fx_failed_steps));
    ASSERT_EQ_INT(council_store_events(s, "a", 0, count_ev, &n, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_EQ_INT(council_store_delete(s, "a", &diag), COUNCIL_ENOTFOUND);
    ASSERT_STR_CONTAINS(diag.msg, "no run a in");

    /* In flight: refused, and nothing is deleted. */
    ASSERT_EQ_INT(council_store_delete(s, "live", &diag), COUNCIL_EBUSY);
    ASSERT_STR_CONTAINS(diag.msg, "run live has no outcome: it is running "
                                  "(pid ");
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE run_id='live'"),
                  1);

    ro = open_ro(db);
    ASSERT_EQ_INT(council_store_delete(ro, "b", &diag), COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "read-only");
    council_store_close(ro);

    ASSERT_OK(
        council_store_open(db, COUNCIL_STORE_DELETE_UNFINISHED, &force, &diag));
    ASSERT_OK(council_store_delete(force, "b", &diag));
    council_store_close(force);
    ASSERT_EQ_INT(council_store_delete(s, NULL, &diag), COUNCIL_EINVAL);
    council_store_close(s);

    /* The run ends (crashed at close); now it has an outcome. */
    council_run_release(live);
    council_engine_close(eng);
    ASSERT_OK(council_store_open(db, 0, &s, &diag));
    ASSERT_OK(council_store_delete(s, "live", &diag));
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs"), 0);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM events"), 0);
    council_store_close(s);
    sql(db, "PRAGMA integrity_check");
}

/* Deleting while the handle lists would disturb the listing: refused. */
static int
delete_inside(const council_run_row *r, void *ud)
{
    council_diag diag;

    ASSERT_EQ_INT(council_store_delete(ud, r->run_id, &diag), COUNCIL_EBUSY);
    ASSERT_EQ_INT(council_store_runs(ud, NULL, count_row, &(int){0}, &diag),
                  COUNCIL_EBUSY);
    return 0;
}

TEST(no_reentry_from_callbacks)
{
    const char *db = fx_path("re.db");
    council_engine *eng = engine();
    council_store *s;

    fx_record(eng, db, NULL, "a", fx_failed_steps, FX_N(fx_failed_steps), NULL,
              NULL);
    council_engine_close(eng);
    ASSERT_OK(council_store_open(db, 0, &s, NULL));
    ASSERT_OK(council_store_runs(s, NULL, delete_inside, s, NULL));
    council_store_close(s);
}

/* ---- jsonl records ---------------------------------------------------------
 */

static void
write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");

    if (n == 0)
        n = strlen(text);
    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fwrite(text, 1, n, f), n);
    fclose(f);
}

TEST_T(jsonl_record, 30)
{
    const char *db = fx_path("j.db");
    const char *dir = fx_path("jsonl");
    char file[700], cut[700];
    council_engine *eng = engine();
    council_store *sq, *sj;
    council_diag diag;
    json_t *a, *b;
    seen got;
    rows r;
    char *content;
    size_t i;

    mkdir(dir, 0700);
    fx_record(eng, db, dir, "ok", fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    snprintf(file, sizeof(file), "%s/ok.jsonl", dir);

    sq = open_ro(db);
    sj = open_ro(file);
    /* The same run either way. */
    a = record_of(sq, "ok");
    b = record_of(sj, "ok");
    ASSERT(json_equal(json_object_get(a, "messages"),
                      json_object_get(b, "messages")));
    ASSERT(
        json_equal(json_object_get(a, "result"), json_object_get(b, "result")));
    ASSERT(json_equal(json_object_get(a, "members"),
                      json_object_get(b, "members")));
    ASSERT_STR_EQ(jstr(b, "outcome"), "ok");
    ASSERT_STR_EQ(jstr(b, "council"), "demo");
    ASSERT_EQ_INT(json_integer_value(json_object_get(b, "events")), FX_RANK_N);
    ASSERT(json_is_string(json_object_get(b, "ended")));
    json_decref(a);
    json_decref(b);
    {
        fx_events x = fx_load(db, "ok"), y = fx_load(file, "ok");

        ASSERT_EQ_U64(x.n, y.n);
        for (i = 0; i < x.n; i++)
            ASSERT_STR_EQ(council_event_json(x.evs[i]),
                          council_event_json(y.evs[i]));
        fx_events_free(&x);
        fx_events_free(&y);
    }
    r = query(sj, NULL, NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_STR_EQ(r.ids[0], "ok");
    ASSERT_STR_EQ(r.outcomes[0], "ok");
    ASSERT_STR_EQ(r.councils[0], "demo");
    ASSERT_EQ_U64(r.events[0], FX_RANK_N);
    r = query(sj, NULL, "running", 0, 0);
    ASSERT_EQ_INT(r.n, 0);
    r = query(sj, "nobody", NULL, 0, 0);
    ASSERT_EQ_INT(r.n, 0);
    ASSERT_EQ_INT(council_store_run(sj, "other", &content, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_EQ_INT(council_store_delete(sj, "ok", &diag), COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "remove the file");
    memset(&got, 0, sizeof(got));
    ASSERT_OK(council_store_events(sj, "ok", 24, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, FX_RANK_N - 24);
    fx_events_free(&got.e);
    council_store_close(sq);
    council_store_close(sj);

    /* Cut short in the middle of a line, as a crash leaves it: a run
     * without an outcome, its whole lines served. */
    content = fx_slurp(file);
    snprintf(cut, sizeof(cut), "%s/cut.jsonl", dir);
    {
        char *p = content;

        /* The owner line and ten events. */
        for (i = 0; i < 11; i++)
            p = strchr(p, '\n') + 1;
        write_file(cut, content, (size_t)(p - content) + 7);
    }
    sj = open_ro(cut);
    a = record_of(sj, "ok");
    ASSERT_STR_EQ(jstr(a, "outcome"), "running");
    ASSERT_EQ_INT(json_integer_value(json_object_get(a, "events")), 10);
    json_decref(a);
    memset(&got, 0, sizeof(got));
    ASSERT_OK(council_store_events(sj, "ok", 0, collect_some, &got, &diag));
    ASSERT_EQ_U64(got.e.n, 10);
    fx_events_free(&got.e);
    r = query(sj, NULL, "running", 0, 0);
    ASSERT_EQ_INT(r.n, 1);
    council_store_close(sj);

    /* A damaged line in the middle: the events before it, then EIO. */
    {
        char *p = content;

        for (i = 0; i < 7; i++)
            p = strchr(p, '\n') + 1;
        p[1] = 'X';
        write_file(cut, content, strlen(content));
    }
    sj = open_ro(cut);
    memset(&got, 0, sizeof(got));
    ASSERT_EQ_INT(council_store_events(sj, "ok", 0, collect_some, &got, &diag),
                  COUNCIL_EIO);
    ASSERT_EQ_U64(got.e.n, 6);
    ASSERT_EQ_INT(diag.line, 8); /* the owner line, six events, then it */
    ASSERT_STR_CONTAINS(diag.msg, "not a JSON object");
    fx_events_free(&got.e);
    council_store_close(sj);

    /* Not a record at all. */
    write_file(cut, "{\"hello\":1}\n", 0);
    ASSERT_EQ_INT(council_store_open(cut, 0, &sj, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council jsonl record");
    write_file(cut, "  {not json\n", 0);
    ASSERT_EQ_INT(council_store_open(cut, 0, &sj, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council jsonl record");
    /* An event whose time does not parse ends the valid part. */
    write_file(cut,
               "{\"type\":\"run_started\",\"run_id\":\"x\",\"seq\":1,"
               "\"ts\":\"noon\"}\n",
               0);
    ASSERT_EQ_INT(council_store_open(cut, 0, &sj, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "\"ts\"");
    free(content);
}

/* ---- threads --------------------------------------------------------------
 */

typedef struct reader {
    const char *db;
    int rounds;
    int ok;
} reader;

static void *
read_loop(void *arg)
{
    reader *rd = arg;
    council_store *s = NULL;
    council_diag diag;
    int i;

    if (council_store_open(rd->db, COUNCIL_STORE_READONLY, &s, &diag) !=
        COUNCIL_OK)
        return NULL;
    for (i = 0; i < rd->rounds; i++) {
        char *text = NULL;
        int n = 0;

        if (council_store_run(s, "base", &text, &diag) != COUNCIL_OK)
            break;
        council_free(text);
        if (council_store_events(s, "base", 0, count_ev, &n, &diag) !=
                COUNCIL_OK ||
            n != (int)FX_RANK_N)
            break;
        n = 0;
        if (council_store_runs(s, NULL, count_row, &n, &diag) != COUNCIL_OK ||
            n < 1)
            break;
        rd->ok++;
    }
    council_store_close(s);
    return NULL;
}

/* One handle per thread, while runs are recorded into the same file. */
TEST_T(one_handle_per_thread_while_recording, 120)
{
    const char *db = fx_path("threads.db");
    council_engine *eng = engine();
    pthread_t th[4];
    reader rd[4];
    int i;

    fx_record(eng, db, NULL, "base", fx_rank_steps, FX_RANK_N, NULL, NULL);
    for (i = 0; i < 4; i++) {
        rd[i] = (reader){db, 200, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, read_loop, &rd[i]), 0);
    }
    for (i = 0; i < 20; i++) {
        char id[16];

        snprintf(id, sizeof(id), "w%d", i);
        fx_record(eng, db, NULL, id, fx_rank_steps, FX_RANK_N, NULL, NULL);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(rd[i].ok, 200);
    }
    council_engine_close(eng);
}
