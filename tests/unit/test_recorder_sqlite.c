/* SPDX-License-Identifier: MIT */
/*
 * The sqlite recorder and council_store_list: rows and events checked with
 * sqlite3 directly, batching, refusals (foreign and newer databases,
 * duplicate runs, unopenable paths), write failures injected through
 * SQLite's unix VFS system-call table (the database passes integrity_check
 * and holds a contiguous prefix), 8 concurrent runs on one file, and the
 * store reader on missing, foreign and corrupted files.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/event.h"
#include "recorder/recorder.h"
#include "runner.h"

/* The table is static and const: read it from any thread. */
#define ops (council_recorder_sqlite())

static council_event *
ev_started(const char *run_id, const char *council, const char *question)
{
    json_t *d = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}],s:[{s:s,s:s,s:s}],s:I}",
                          "council", council, "strategy", "classic", "question",
                          question, "messages", "role", "user", "content",
                          question, "members", "name", "a", "provider", "mock",
                          "model", "m1", "seed", (json_int_t)7);
    council__event_init in = {.type = COUNCIL_EV_RUN_STARTED,
                              .run_id = run_id,
                              .seq = 1,
                              .ts_us = 1700000000000000LL,
                              .data = d};

    return council__event_new(&in);
}

static council_event *
ev_delta(const char *run_id, uint64_t seq)
{
    council__event_init in = {.type = COUNCIL_EV_MEMBER_DELTA,
                              .run_id = run_id,
                              .seq = seq,
                              .ts_us = 1700000000000000LL + (int64_t)seq,
                              .stage = "answer",
                              .member = "a",
                              .text = "some tokens",
                              .text_len = 11};

    return council__event_new(&in);
}

static council_event *
ev_completed(const char *run_id, uint64_t seq)
{
    council__event_init in = {
        .type = COUNCIL_EV_RUN_COMPLETED,
        .run_id = run_id,
        .seq = seq,
        .ts_us = 1700000000000000LL + (int64_t)seq,
        .data = json_pack("{s:{s:s}}", "result", "final", "42")};

    return council__event_new(&in);
}

static int
feed(void *st, council_event *ev)
{
    int rc;

    ASSERT_NOT_NULL(ev);
    rc = ops->handle_event(st, ev);
    council_event_unref(ev);
    return rc;
}

static void *
open_rec(const char *db, const char *run_id)
{
    char why[256] = "";
    void *st = NULL;

    ASSERT_EQ_INT(ops->version, COUNCIL_RECORDER_OPS_VERSION);
    if (ops->init(run_id, (void *)db, &st, why, sizeof(why)) != 0)
        FAIL("init refused: %s", why);
    ASSERT_NOT_NULL(st);
    return st;
}

static int
refuse(const char *db, const char *run_id, char *why, size_t size)
{
    void *st = NULL;
    int rc;

    why[0] = '\0';
    rc = ops->init(run_id, (void *)db, &st, why, size);
    ASSERT_NULL(st);
    return rc;
}

static void
finalize_with(void *st, council_outcome_kind kind, const char *reason)
{
    council_outcome *o = council__outcome_new(
        kind,
        kind == COUNCIL_OUTCOME_OK ? json_pack("{s:s}", "final", "42") : NULL,
        NULL, reason);

    ASSERT_NOT_NULL(o);
    ops->handle_finalize(st, o);
    council__outcome_free(o);
}

/* A whole run of n events (run_started, deltas, run_completed), flushed
 * every flush_every events (0 = never). */
static void
record_run(const char *db, const char *id, const char *question, int n,
           int flush_every)
{
    void *st = open_rec(db, id);
    council_event *last;
    council_outcome *o;
    int i;

    ASSERT_EQ_INT(feed(st, ev_started(id, "demo", question)), 0);
    for (i = 2; i < n; i++) {
        ASSERT_EQ_INT(feed(st, ev_delta(id, (uint64_t)i)), 0);
        if (flush_every > 0 && i % flush_every == 0)
            ops->handle_flush(st);
    }
    last = ev_completed(id, (uint64_t)n);
    ASSERT_EQ_INT(ops->handle_event(st, last), 0);
    ops->handle_flush(st);
    o = council__outcome_from_terminal(last);
    ops->handle_finalize(st, o);
    council__outcome_free(o);
    council_event_unref(last);
}

static char *
db_path(const char *name)
{
    static char p[4][512];
    static int k;

    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", runner_tmpdir(), name);
    return p[k];
}

static sqlite3 *
db_open(const char *path)
{
    sqlite3 *db = NULL;

    ASSERT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL),
                  SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static sqlite3_int64
db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 v;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        FAIL("%s: %s", sql, sqlite3_errmsg(db));
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The first column of the first row as text (copied), or NULL. */
static char *
db_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *t;
    char *out = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        FAIL("%s: %s", sql, sqlite3_errmsg(db));
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    t = sqlite3_column_text(st, 0);
    if (t != NULL)
        out = strdup((const char *)t);
    sqlite3_finalize(st);
    return out;
}

static void
assert_text(sqlite3 *db, const char *sql, const char *want)
{
    char *got = db_text(db, sql);

    if (want == NULL)
        ASSERT_NULL(got);
    else
        ASSERT_STR_EQ(got, want);
    free(got);
}

/* Events of run id are seq 1..n without gaps; returns n. */
static sqlite3_int64
check_prefix(sqlite3 *db, const char *id)
{
    char sql[256];
    sqlite3_int64 n, mx;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE run_id='%s'",
             id);
    n = db_int(db, sql);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(max(seq),0) FROM events WHERE run_id='%s'", id);
    mx = db_int(db, sql);
    ASSERT_EQ_INT(n, mx);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(min(seq),1) FROM events WHERE run_id='%s'", id);
    ASSERT_EQ_INT(db_int(db, sql), 1);
    return n;
}

TEST(complete_run_rows_and_events)
{
    const char *path = db_path("runs.db");
    council_event *evs[12];
    council_outcome *o;
    sqlite3_stmt *q = NULL;
    sqlite3 *db;
    int64_t before = council__now_us();
    void *st = open_rec(path, "r1");
    int i;

    evs[0] = ev_started("r1", "demo", "What is 6*7?");
    for (i = 1; i < 11; i++)
        evs[i] = ev_delta("r1", (uint64_t)i + 1);
    evs[11] = ev_completed("r1", 12);
    for (i = 0; i < 12; i++) {
        ASSERT_NOT_NULL(evs[i]);
        ASSERT_EQ_INT(ops->handle_event(st, evs[i]), 0);
        if (i == 5)
            ops->handle_flush(st);
    }
    ops->handle_flush(st);
    o = council__outcome_from_terminal(evs[11]);
    ops->handle_finalize(st, o);

    db = db_open(path);
    ASSERT_EQ_INT(db_int(db, "PRAGMA user_version"), COUNCIL__STORE_VERSION);
    ASSERT_EQ_INT(db_int(db, "PRAGMA application_id"), COUNCIL__STORE_APP_ID);
    assert_text(db, "PRAGMA journal_mode", "wal");
    assert_text(db, "SELECT council FROM runs", "demo");
    assert_text(db, "SELECT question FROM runs", "What is 6*7?");
    assert_text(db, "SELECT strategy FROM runs", "classic");
    assert_text(db, "SELECT outcome FROM runs", "ok");
    assert_text(db, "SELECT reason FROM runs", NULL);
    assert_text(db, "SELECT outcome_json FROM runs", council_outcome_json(o));
    ASSERT_EQ_INT(db_int(db, "SELECT events FROM runs"), 12);
    ASSERT(db_int(db, "SELECT started_us FROM runs") >= before);
    ASSERT(db_int(db, "SELECT ended_us - started_us FROM runs") >= 0);
    ASSERT_EQ_INT(check_prefix(db, "r1"), 12);
    ASSERT_EQ_INT(sqlite3_prepare_v2(db,
                                     "SELECT seq, type, ts_us, json FROM "
                                     "events WHERE run_id='r1' ORDER BY seq",
                                     -1, &q, NULL),
                  SQLITE_OK);
    for (i = 0; i < 12; i++) {
        ASSERT_EQ_INT(sqlite3_step(q), SQLITE_ROW);
        ASSERT_EQ_INT(sqlite3_column_int64(q, 0), i + 1);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 1),
                      council_event_type_name(council_event_type_of(evs[i])));
        ASSERT_EQ_INT(sqlite3_column_int64(q, 2),
                      council_event_time_us(evs[i]));
        ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 3),
                      council_event_json(evs[i]));
    }
    ASSERT_EQ_INT(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    for (i = 0; i < 12; i++)
        council_event_unref(evs[i]);
    council__outcome_free(o);
}

TEST(batches_commit_without_flush)
{
    const char *path = db_path("b.db");
    void *st = open_rec(path, "b");
    sqlite3 *db;
    uint64_t seq;

    ASSERT_EQ_INT(feed(st, ev_started("b", "demo", "q")), 0);
    for (seq = 2; seq <= 2500; seq++)
        ASSERT_EQ_INT(feed(st, ev_delta("b", seq)), 0);
    /* Two batches of 1,000 are committed; the rest waits for a flush. */
    db = db_open(path);
    ASSERT_EQ_INT(check_prefix(db, "b"), 2000);
    ASSERT_EQ_INT(db_int(db, "SELECT events FROM runs"), 2000);
    assert_text(db, "SELECT outcome FROM runs", NULL);
    ops->handle_flush(st);
    ASSERT_EQ_INT(check_prefix(db, "b"), 2500);
    finalize_with(st, COUNCIL_OUTCOME_CRASHED, "shutdown");
    assert_text(db, "SELECT outcome FROM runs", "crashed");
    assert_text(db, "SELECT reason FROM runs", "shutdown");
    ASSERT_EQ_INT(db_int(db, "SELECT events FROM runs"), 2500);
    sqlite3_close(db);
}

TEST(finalize_commits_pending_events)
{
    const char *path = db_path("p.db");
    void *st = open_rec(path, "p");
    sqlite3 *db;

    ASSERT_EQ_INT(feed(st, ev_started("p", "demo", "q")), 0);
    ASSERT_EQ_INT(feed(st, ev_delta("p", 2)), 0);
    finalize_with(st, COUNCIL_OUTCOME_ERROR, "boom");
    db = db_open(path);
    ASSERT_EQ_INT(check_prefix(db, "p"), 2);
    assert_text(db, "SELECT outcome FROM runs", "error");
    assert_text(db, "SELECT reason FROM runs", "boom");
    sqlite3_close(db);
}

TEST(refusals)
{
    char why[256];
    const char *path = db_path("r.db");
    const char *foreign = db_path("foreign.db");
    const char *newer = db_path("newer.db");
    const char *fake = db_path("fake.db");
    char under[600];
    sqlite3 *db;
    FILE *f;

    /* A duplicate run id. */
    record_run(path, "dup", "q", 3, 0);
    ASSERT_NE_INT(refuse(path, "dup", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "run dup is already recorded in");
    /* Another application's database: left alone. */
    db = db_open(path);
    sqlite3_close(db);
    ASSERT_EQ_INT(sqlite3_open(foreign, &db), SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE notes(x)", 0, 0, 0),
                  SQLITE_OK);
    sqlite3_close(db);
    ASSERT_NE_INT(refuse(foreign, "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "is not a council store");
    db = db_open(foreign);
    ASSERT_EQ_INT(db_int(db, "SELECT count(*) FROM sqlite_master"), 1);
    sqlite3_close(db);
    /* Tables of our names with other columns. */
    ASSERT_EQ_INT(sqlite3_open(fake, &db), SQLITE_OK);
    snprintf(under, sizeof(under),
             "CREATE TABLE runs(a); CREATE TABLE events(b);"
             " PRAGMA application_id=%d; PRAGMA user_version=1",
             COUNCIL__STORE_APP_ID);
    ASSERT_EQ_INT(sqlite3_exec(db, under, 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_NE_INT(refuse(fake, "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "damaged or unknown");
    /* A store from a newer council. */
    record_run(newer, "x", "q", 3, 0);
    db = db_open(newer);
    ASSERT_EQ_INT(sqlite3_exec(db, "PRAGMA user_version=99", 0, 0, 0),
                  SQLITE_OK);
    sqlite3_close(db);
    ASSERT_NE_INT(refuse(newer, "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "schema version 99, newer");
    /* A path under a regular file, and a text file. */
    f = fopen(db_path("plain"), "w");
    ASSERT_NOT_NULL(f);
    fputs("this is not a database, just some text in a file......\n", f);
    fclose(f);
    snprintf(under, sizeof(under), "%s/x.db", db_path("plain"));
    ASSERT_NE_INT(refuse(under, "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "sqlite: cannot open");
    ASSERT_NE_INT(refuse(db_path("plain"), "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "not a database");
    ASSERT_NE_INT(refuse(NULL, "r", why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "no database path");
}

/* ---- failures injected through the unix VFS --------------------------- */

static atomic_int writes_left; /* < 0: no fault */
static atomic_int persistent;
static atomic_int faults;
static sqlite3_syscall_ptr real_write, real_pwrite64;

static int
due(void)
{
    int left = atomic_load(&writes_left);

    if (left < 0)
        return 0;
    if (left > 0) {
        atomic_fetch_sub(&writes_left, 1);
        return 0;
    }
    if (!atomic_load(&persistent))
        atomic_store(&writes_left, -1);
    atomic_fetch_add(&faults, 1);
    errno = ENOSPC;
    return 1;
}

static ssize_t
fault_write(int fd, const void *b, size_t n)
{
    if (due())
        return -1;
    return ((ssize_t(*)(int, const void *, size_t))real_write)(fd, b, n);
}

static ssize_t
fault_pwrite64(int fd, const void *b, size_t n, off_t off)
{
    if (due())
        return -1;
    return ((ssize_t(*)(int, const void *, size_t, off_t))real_pwrite64)(
        fd, b, n, off);
}

static void
faults_install(int after, int keep)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);

    real_write = vfs->xGetSystemCall(vfs, "write");
    real_pwrite64 = vfs->xGetSystemCall(vfs, "pwrite64");
    ASSERT_NOT_NULL(real_write);
    ASSERT_NOT_NULL(real_pwrite64);
    atomic_store(&writes_left, after);
    atomic_store(&persistent, keep);
    ASSERT_EQ_INT(
        vfs->xSetSystemCall(vfs, "write", (sqlite3_syscall_ptr)fault_write),
        SQLITE_OK);
    ASSERT_EQ_INT(vfs->xSetSystemCall(vfs, "pwrite64",
                                      (sqlite3_syscall_ptr)fault_pwrite64),
                  SQLITE_OK);
}

static void
faults_remove(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);

    atomic_store(&writes_left, -1);
    vfs->xSetSystemCall(vfs, "write", NULL);
    vfs->xSetSystemCall(vfs, "pwrite64", NULL);
}

TEST(disk_full_leaves_a_consistent_prefix)
{
    const char *path = db_path("full.db");
    void *st = open_rec(path, "f");
    sqlite3 *db;
    uint64_t seq;
    int failures = 0;
    sqlite3_int64 n;

    ASSERT_EQ_INT(feed(st, ev_started("f", "demo", "q")), 0);
    for (seq = 2; seq <= 30; seq++) {
        ASSERT_EQ_INT(feed(st, ev_delta("f", seq)), 0);
        if (seq % 10 == 0)
            ops->handle_flush(st);
    }
    faults_install(3, 1);
    for (seq = 31; seq <= 3000; seq++) {
        failures += feed(st, ev_delta("f", seq)) != 0;
        if (seq % 10 == 0)
            ops->handle_flush(st);
    }
    ASSERT(failures > 0);
    finalize_with(st, COUNCIL_OUTCOME_OK, NULL);
    ASSERT(atomic_load(&faults) > 0);
    faults_remove();

    db = db_open(path);
    assert_text(db, "PRAGMA integrity_check", "ok");
    n = check_prefix(db, "f");
    ASSERT(n >= 30 && n < 3000);
    /* The run row's count matches what is stored. */
    ASSERT_EQ_INT(db_int(db, "SELECT events FROM runs"), n);
    sqlite3_close(db);
}

/* The record a reader gives for run id of path, parsed. */
static json_t *
store_record(const char *path, const char *id)
{
    council_store *s = NULL;
    council_diag diag;
    char *text = NULL;
    json_t *j;

    if (council_store_open(path, COUNCIL_STORE_READONLY, &s, &diag) !=
            COUNCIL_OK ||
        council_store_run(s, id, &text, &diag) != COUNCIL_OK)
        FAIL("record %s: %s", id, diag.msg);
    j = json_loads(text, 0, NULL);
    ASSERT_NOT_NULL(j);
    council_free(text);
    council_store_close(s);
    return j;
}

/* The disk stays full until the recorder gives up on events (past
 * 100,000 queued), then has room again at finalize: the outcome is
 * recorded alone, and the record says it holds 30 of the events the run
 * emitted. */
TEST_T(disk_full_then_room_for_the_outcome, 120)
{
    const char *path = db_path("gave-up.db");
    void *st = open_rec(path, "g");
    sqlite3 *db;
    uint64_t seq, last = 100050;
    json_t *j;

    ASSERT_EQ_INT(feed(st, ev_started("g", "demo", "q")), 0);
    for (seq = 2; seq <= 30; seq++)
        ASSERT_EQ_INT(feed(st, ev_delta("g", seq)), 0);
    ops->handle_flush(st);
    faults_install(0, 1);
    for (seq = 31; seq < last; seq++)
        (void)feed(st, ev_delta("g", seq));
    ASSERT_NE_INT(feed(st, ev_completed("g", last)), 0);
    faults_remove();
    finalize_with(st, COUNCIL_OUTCOME_OK, NULL);

    db = db_open(path);
    assert_text(db, "PRAGMA integrity_check", "ok");
    ASSERT_EQ_INT(check_prefix(db, "g"), 30);
    assert_text(db, "SELECT outcome FROM runs", "ok");
    ASSERT_EQ_INT(db_int(db, "SELECT events FROM runs"), 30);
    ASSERT_EQ_INT(db_int(db, "SELECT emitted FROM runs"), (long long)last);
    sqlite3_close(db);
    j = store_record(path, "g");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "outcome")), "ok");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), 30);
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events_emitted")),
                  (long long)last);
    ASSERT(json_is_true(json_object_get(j, "incomplete")));
    json_decref(j);
}

/* Full to the end: the row keeps no outcome (its process, this one,
 * lives: it reads running; test_store_owner.c covers its death). */
TEST(disk_full_to_the_end_leaves_no_outcome)
{
    const char *path = db_path("never.db");
    void *st = open_rec(path, "n");
    sqlite3 *db;
    uint64_t seq;
    json_t *j;

    ASSERT_EQ_INT(feed(st, ev_started("n", "demo", "q")), 0);
    ops->handle_flush(st);
    faults_install(0, 1);
    for (seq = 2; seq <= 50; seq++)
        (void)feed(st, ev_delta("n", seq));
    (void)feed(st, ev_completed("n", 51));
    finalize_with(st, COUNCIL_OUTCOME_OK, NULL);
    faults_remove();
    db = db_open(path);
    assert_text(db, "PRAGMA integrity_check", "ok");
    assert_text(db, "SELECT outcome IS NULL FROM runs", "1");
    ASSERT_EQ_INT(check_prefix(db, "n"), 1);
    sqlite3_close(db);
    j = store_record(path, "n");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "outcome")), "running");
    ASSERT(json_is_null(json_object_get(j, "events_emitted")));
    json_decref(j);
}

/* The terminal event is committed with the outcome, never before it: a
 * flush after it writes nothing. */
TEST(the_terminal_event_waits_for_the_outcome)
{
    const char *path = db_path("term.db");
    void *st = open_rec(path, "t");
    sqlite3 *db;

    ASSERT_EQ_INT(feed(st, ev_started("t", "demo", "q")), 0);
    ASSERT_EQ_INT(feed(st, ev_delta("t", 2)), 0);
    ASSERT_EQ_INT(feed(st, ev_completed("t", 3)), 0);
    ops->handle_flush(st);
    db = db_open(path);
    ASSERT_EQ_INT(db_int(db, "SELECT count(*) FROM events"), 0);
    assert_text(db, "SELECT outcome IS NULL FROM runs", "1");
    sqlite3_close(db);
    finalize_with(st, COUNCIL_OUTCOME_OK, NULL);
    db = db_open(path);
    ASSERT_EQ_INT(check_prefix(db, "t"), 3);
    assert_text(db, "SELECT outcome FROM runs", "ok");
    ASSERT_EQ_INT(db_int(db, "SELECT emitted FROM runs"), 3);
    sqlite3_close(db);
}

TEST(transient_failure_is_retried)
{
    const char *path = db_path("blip.db");
    void *st = open_rec(path, "t");
    sqlite3 *db;
    uint64_t seq;
    int failures = 0;

    ASSERT_EQ_INT(feed(st, ev_started("t", "demo", "q")), 0);
    ops->handle_flush(st);
    faults_install(0, 0); /* the next write fails, once */
    for (seq = 2; seq <= 50; seq++) {
        failures += feed(st, ev_delta("t", seq)) != 0;
        if (seq % 10 == 0)
            ops->handle_flush(st);
    }
    ASSERT_EQ_INT(atomic_load(&faults), 1);
    ASSERT(failures > 0); /* reported while the batch was not stored */
    /* After the back-off a flush writes the whole backlog. */
    usleep(120 * 1000);
    ops->handle_flush(st);
    db = db_open(path);
    ASSERT_EQ_INT(check_prefix(db, "t"), 50);
    sqlite3_close(db);
    finalize_with(st, COUNCIL_OUTCOME_OK, NULL);
    faults_remove();
    db = db_open(path);
    assert_text(db, "PRAGMA integrity_check", "ok");
    ASSERT_EQ_INT(check_prefix(db, "t"), 50);
    assert_text(db, "SELECT outcome FROM runs", "ok");
    sqlite3_close(db);
}

/* ---- concurrency ----------------------------------------------------- */

#define N_THREADS 8
#define N_EVENTS 500

static const char *shared_path;

static void *
run_thread(void *arg)
{
    char id[32];

    snprintf(id, sizeof(id), "run-%d", (int)(intptr_t)arg);
    record_run(shared_path, id, id, N_EVENTS, 7);
    return NULL;
}

TEST_T(concurrent_runs_one_file, 120)
{
    pthread_t th[N_THREADS];
    sqlite3 *db;
    char sql[256], id[32];
    int i;

    shared_path = db_path("shared.db");
    for (i = 0; i < N_THREADS; i++)
        ASSERT_EQ_INT(
            pthread_create(&th[i], NULL, run_thread, (void *)(intptr_t)i), 0);
    for (i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    db = db_open(shared_path);
    assert_text(db, "PRAGMA integrity_check", "ok");
    ASSERT_EQ_INT(db_int(db, "SELECT count(*) FROM runs"), N_THREADS);
    ASSERT_EQ_INT(db_int(db, "SELECT count(*) FROM events"),
                  N_THREADS * N_EVENTS);
    for (i = 0; i < N_THREADS; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        ASSERT_EQ_INT(check_prefix(db, id), N_EVENTS);
        snprintf(sql, sizeof(sql),
                 "SELECT events FROM runs WHERE run_id='%s'"
                 " AND outcome='ok' AND question='%s'",
                 id, id);
        ASSERT_EQ_INT(db_int(db, sql), N_EVENTS);
    }
    sqlite3_close(db);
}

/* ---- council_store_list ---------------------------------------------- */

typedef struct {
    int n;
    int stop_after;
    char ids[8][32];
    char outcomes[8][16];
    uint64_t events[8];
    int64_t started[8], ended[8];
} seen;

static int
collect(const council_run_row *row, void *ud)
{
    seen *s = ud;

    ASSERT(s->n < 8);
    snprintf(s->ids[s->n], 32, "%s", row->run_id);
    snprintf(s->outcomes[s->n], 16, "%s",
             row->outcome != NULL ? row->outcome : "-");
    ASSERT_STR_EQ(row->council, "demo");
    ASSERT_STR_EQ(row->question, row->run_id);
    s->events[s->n] = row->events;
    s->started[s->n] = row->started_us;
    s->ended[s->n] = row->ended_us;
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

TEST(store_list_newest_first)
{
    const char *path = db_path("list.db");
    council_diag diag;
    seen s;
    void *open_st;
    int i;

    record_run(path, "first", "first", 5, 0);
    usleep(2000);
    record_run(path, "second", "second", 7, 0);
    usleep(2000);
    open_st = open_rec(path, "third"); /* still running */
    ASSERT_EQ_INT(feed(open_st, ev_started("third", "demo", "third")), 0);
    ASSERT_EQ_INT(feed(open_st, ev_delta("third", 2)), 0);
    ops->handle_flush(open_st);

    memset(&s, 0, sizeof(s));
    ASSERT_OK(council_store_list(path, 0, collect, &s, &diag));
    ASSERT_EQ_INT(s.n, 3);
    ASSERT_STR_EQ(s.ids[0], "third");
    ASSERT_STR_EQ(s.ids[1], "second");
    ASSERT_STR_EQ(s.ids[2], "first");
    ASSERT_STR_EQ(s.outcomes[0], "-");
    ASSERT_EQ_INT(s.ended[0], 0);
    ASSERT_EQ_U64(s.events[0], 2);
    ASSERT_STR_EQ(s.outcomes[1], "ok");
    ASSERT_EQ_U64(s.events[1], 7);
    ASSERT_EQ_U64(s.events[2], 5);
    for (i = 0; i < 2; i++)
        ASSERT(s.started[i] > s.started[i + 1]);
    ASSERT(s.ended[1] >= s.started[1]);

    memset(&s, 0, sizeof(s));
    ASSERT_OK(council_store_list(path, 2, collect, &s, &diag));
    ASSERT_EQ_INT(s.n, 2);
    ASSERT_STR_EQ(s.ids[1], "second");

    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    ASSERT_OK(council_store_list(path, 0, collect, &s, &diag));
    ASSERT_EQ_INT(s.n, 1);

    finalize_with(open_st, COUNCIL_OUTCOME_CANCELLED, NULL);
    memset(&s, 0, sizeof(s));
    ASSERT_OK(council_store_list(path, 1, collect, &s, &diag));
    ASSERT_STR_EQ(s.outcomes[0], "cancelled");
    ASSERT(s.ended[0] > 0);
}

static int
never(const council_run_row *row, void *ud)
{
    (void)row;
    (void)ud;
    FAIL("no row expected");
}

TEST(store_list_rejects)
{
    council_diag diag;
    const char *missing = db_path("missing.db");
    const char *foreign = db_path("foreign.db");
    const char *text = db_path("text.db");
    sqlite3 *db;
    FILE *f;

    ASSERT_EQ_INT(council_store_list(missing, 0, never, NULL, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_EQ_INT(access(missing, F_OK), -1); /* not created */

    ASSERT_EQ_INT(sqlite3_open(foreign, &db), SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE runs(x)", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ_INT(council_store_list(foreign, 0, never, NULL, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council store");
    ASSERT_STR_CONTAINS(diag.file, "foreign.db");

    f = fopen(text, "w");
    ASSERT_NOT_NULL(f);
    for (int i = 0; i < 100; i++)
        fputs("not a database at all, only text lines\n", f);
    fclose(f);
    ASSERT_EQ_INT(council_store_list(text, 0, never, NULL, &diag), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a database");

    ASSERT_EQ_INT(council_store_list(NULL, 0, never, NULL, &diag),
                  COUNCIL_EINVAL);
}

static int
count_rows(const council_run_row *row, void *ud)
{
    (void)row;
    (*(int *)ud)++;
    return 0;
}

/* Overwrite the bytes of every page after the first with garbage. */
static void
scribble(const char *path, uint64_t seed, size_t skip)
{
    FILE *f = fopen(path, "r+b");
    struct stat sb;
    size_t i;

    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(stat(path, &sb), 0);
    ASSERT((size_t)sb.st_size > skip);
    fseek(f, (long)skip, SEEK_SET);
    for (i = skip; i < (size_t)sb.st_size; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        fputc((int)(seed >> 56), f);
    }
    fclose(f);
}

TEST(store_list_corrupted_file)
{
    const char *path = db_path("corrupt.db");
    const char *hdr = db_path("header.db");
    council_diag diag;
    council_err rc;
    int rows = 0;

    /* Pages 2.. destroyed: the schema page survives, the tables do not. */
    record_run(path, "c1", "c1", 50, 0);
    record_run(path, "c2", "c2", 50, 0);
    scribble(path, runner_seed(), 4096);
    rc = council_store_list(path, 0, count_rows, &rows, &diag);
    ASSERT_EQ_INT(rc, COUNCIL_EIO);
    ASSERT(diag.msg[0] != '\0');

    /* The header itself destroyed. */
    record_run(hdr, "h", "h", 5, 0);
    scribble(hdr, runner_seed() + 1, 0);
    ASSERT_EQ_INT(council_store_list(hdr, 0, count_rows, &rows, &diag),
                  COUNCIL_EIO);
    ASSERT(diag.msg[0] != '\0');
}

/* Copy src to dst, flipping two bytes chosen by seed. */
static void
copy_flipped(const char *src, const char *dst, uint64_t *seed)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    static unsigned char buf[1 << 20];
    size_t n, k;

    ASSERT_NOT_NULL(in);
    ASSERT_NOT_NULL(out);
    n = fread(buf, 1, sizeof(buf), in);
    ASSERT(n > 0 && n < sizeof(buf));
    for (k = 0; k < 2; k++) {
        *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[(*seed >> 33) % n] ^= (unsigned char)(1 + (*seed >> 24) % 255);
    }
    ASSERT_EQ_INT(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

TEST_T(store_list_survives_flipped_bytes, 60)
{
    const char *good = db_path("good.db");
    const char *bad = db_path("bad.db");
    uint64_t seed = runner_seed();
    council_diag diag;
    int i, ok = 0, eio = 0;

    record_run(good, "g1", "g1", 40, 0);
    record_run(good, "g2", "g2", 40, 0);
    for (i = 0; i < 200; i++) {
        int rows = 0;
        council_err rc;

        copy_flipped(good, bad, &seed);
        rc = council_store_list(bad, 0, count_rows, &rows, &diag);
        if (rc == COUNCIL_OK)
            ok++;
        else if (rc == COUNCIL_EIO)
            eio++;
        else
            FAIL("iteration %d: unexpected %s", i, council_strerror(rc));
        unlink(bad);
    }
    ASSERT_EQ_INT(ok + eio, 200);
}

/* A run whose run_started holds two messages and whose run_completed holds
 * answer (NULL: the run fails instead). */
static void
record_conversation_run(const char *db, const char *id, const char *answer)
{
    void *st = open_rec(db, id);
    council_event *last;
    council_outcome *o;
    json_t *d = json_pack(
        "{s:s,s:s,s:s,s:[{s:s,s:s},{s:s,s:s}],s:[],s:I}", "council", "demo",
        "strategy", "rank", "question", "And why?", "messages", "role",
        "system", "content", "Be brief.", "role", "user", "content",
        "And \"why\"?\nSay it.", "members", "seed", (json_int_t)7);
    council__event_init in = {.type = COUNCIL_EV_RUN_STARTED,
                              .run_id = id,
                              .seq = 1,
                              .ts_us = 1700000000000000LL,
                              .data = d};

    ASSERT_EQ_INT(feed(st, council__event_new(&in)), 0);
    ASSERT_EQ_INT(feed(st, ev_delta(id, 2)), 0);
    if (answer != NULL) {
        council__event_init c = {.type = COUNCIL_EV_RUN_COMPLETED,
                                 .run_id = id,
                                 .seq = 3,
                                 .ts_us = 1700000000000003LL,
                                 .data =
                                     json_pack("{s:{s:s,s:[]}}", "result",
                                               "answer", answer, "answers")};
        last = council__event_new(&c);
    } else {
        council__event_init f = {
            .type = COUNCIL_EV_RUN_FAILED,
            .run_id = id,
            .seq = 3,
            .ts_us = 1700000000000003LL,
            .data = json_pack("{s:[{s:s,s:s}],s:{}}", "errors", "kind",
                              "quorum", "message", "too few", "result")};
        last = council__event_new(&f);
    }
    ASSERT_NOT_NULL(last);
    ASSERT_EQ_INT(ops->handle_event(st, last), 0);
    o = council__outcome_from_terminal(last);
    ops->handle_finalize(st, o);
    council__outcome_free(o);
    council_event_unref(last);
}

TEST(store_conversation)
{
    const char *path = db_path("conv.db");
    council_message *m = NULL;
    council_diag diag;
    size_t n = 99;

    record_conversation_run(path, "done", "Because \"42\".\nThat is all.");
    ASSERT_OK(council_store_conversation(path, "done", &m, &n, &diag));
    ASSERT_EQ_INT(n, 3);
    ASSERT_STR_EQ(m[0].role, "system");
    ASSERT_STR_EQ(m[0].content, "Be brief.");
    ASSERT_STR_EQ(m[1].role, "user");
    ASSERT_STR_EQ(m[1].content, "And \"why\"?\nSay it.");
    ASSERT_STR_EQ(m[2].role, "assistant");
    ASSERT_STR_EQ(m[2].content, "Because \"42\".\nThat is all.");
    council_store_conversation_free(m, n);
    council_store_conversation_free(NULL, 0);
}

TEST(store_conversation_errors)
{
    const char *path = db_path("conv.db");
    const char *missing = db_path("missing.db");
    const char *foreign = db_path("foreign.db");
    council_message *m = (council_message *)&m; /* must be reset */
    council_diag diag;
    void *open_st;
    sqlite3 *db;
    size_t n = 99;

    record_conversation_run(path, "failed", NULL);
    record_conversation_run(path, "badmsgs", "an answer");
    record_run(path, "noanswer", "q", 4, 0); /* result without "answer" */
    open_st = open_rec(path, "running");
    ASSERT_EQ_INT(feed(open_st, ev_started("running", "demo", "q")), 0);
    ops->handle_flush(open_st);

    ASSERT_EQ_INT(council_store_conversation(path, "nope", &m, &n, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_NULL(m);
    ASSERT_EQ_INT(n, 0);
    ASSERT_STR_CONTAINS(diag.msg, "no run nope");
    ASSERT_STR_CONTAINS(diag.file, "conv.db");

    ASSERT_EQ_INT(council_store_conversation(path, "failed", &m, &n, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_EQ(diag.msg, "run failed did not complete; it has no answer "
                            "to continue from");
    ASSERT_NULL(m);
    ASSERT_EQ_INT(council_store_conversation(path, "noanswer", &m, &n, &diag),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_conversation(path, "running", &m, &n, &diag),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(diag.msg, "run running did not complete");
    finalize_with(open_st, COUNCIL_OUTCOME_CRASHED, "shutdown");

    ASSERT_EQ_INT(council_store_conversation(missing, "x", &m, &n, &diag),
                  COUNCIL_ENOTFOUND);
    ASSERT_EQ_INT(access(missing, F_OK), -1); /* not created */
    ASSERT_EQ_INT(sqlite3_open(foreign, &db), SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_exec(db, "CREATE TABLE runs(x)", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ_INT(council_store_conversation(foreign, "x", &m, &n, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "not a council store");

    ASSERT_EQ_INT(council_store_conversation(NULL, "x", &m, &n, &diag),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_conversation(path, NULL, &m, &n, NULL),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_store_conversation(path, "done", NULL, &n, NULL),
                  COUNCIL_EINVAL);

    /* A damaged run_started is reported, not trusted. */
    db = db_open(path);
    ASSERT_EQ_INT(sqlite3_exec(db,
                               "UPDATE events SET json = '{\"x\":' "
                               "WHERE run_id = 'failed' AND seq = 1",
                               0, 0, 0),
                  SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_exec(db,
                               "UPDATE events SET json = "
                               "'{\"messages\":[{\"role\":1}]}' "
                               "WHERE run_id = 'badmsgs' AND seq = 1",
                               0, 0, 0),
                  SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ_INT(council_store_conversation(path, "failed", &m, &n, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "is not JSON");
    ASSERT_EQ_INT(council_store_conversation(path, "badmsgs", &m, &n, &diag),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(diag.msg, "message 0 of its run_started event");
    ASSERT_NULL(m);
}
