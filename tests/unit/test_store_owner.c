/* SPDX-License-Identifier: MIT */
/*
 * Records whose process is gone (DISTRIBUTED.md 3): a reader that opens
 * the store read-write closes every run without an outcome whose owner is
 * gone on this host as crashed("process lost: pid N"); a read-only handle
 * reports them so without writing; a live owner's run, another host's, and
 * one whose owner is not known (a store of schema version 1) are never
 * touched.  On real SQLite files and jsonl records written by the real
 * recorders, owners made dead with real processes (a child that recorded
 * and was killed, a reaped pid) or written by hand (another host, another
 * boot).  And the upgrade of a version 1 store by a recorder.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "council.h"
#include "core/event.h"
#include "os/owner.h"
/* The fixture's helpers this file does not need stay unused. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "record_fixture.h"
#pragma GCC diagnostic pop
#include "recorder/recorder.h"

static council_engine *
engine(void)
{
    council_engine *eng = NULL;

    ASSERT_OK(council_engine_open(NULL, &eng));
    return eng;
}

static council_store *
open_store(const char *path, unsigned flags)
{
    council_store *s = NULL;
    council_diag diag;

    if (council_store_open(path, flags, &s, &diag) != COUNCIL_OK)
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

/* The first column of the first row, as text ("NULL" for NULL). */
static char *
sql_text(const char *db, const char *text)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char *v;

    ASSERT_EQ_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                  SQLITE_OK);
    if (sqlite3_prepare_v2(h, text, -1, &st, NULL) != SQLITE_OK)
        FAIL("%s: %s", text, sqlite3_errmsg(h));
    ASSERT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    v = strdup(sqlite3_column_type(st, 0) == SQLITE_NULL
                   ? "NULL"
                   : (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static long long
sql_int(const char *db, const char *text)
{
    char *t = sql_text(db, text);
    long long v = strtoll(t, NULL, 10);

    free(t);
    return v;
}

static json_t *
record_of(council_store *s, const char *id)
{
    council_diag diag;
    char *text = NULL;
    json_t *j;

    if (council_store_run(s, id, &text, &diag) != COUNCIL_OK)
        FAIL("record %s: %s", id, diag.msg);
    j = json_loads(text, 0, NULL);
    ASSERT_NOT_NULL(j);
    council_free(text);
    return j;
}

static const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

typedef struct listed {
    int n;
    char ids[16][40];
    char outcomes[16][16];
    char reasons[16][64];
    int64_t ended_us[16];
} listed;

static int
collect(const council_run_row *r, void *ud)
{
    listed *l = ud;

    ASSERT(l->n < 16);
    snprintf(l->ids[l->n], 40, "%s", r->run_id);
    snprintf(l->outcomes[l->n], 16, "%s", r->outcome ? r->outcome : "-");
    snprintf(l->reasons[l->n], 64, "%s", r->reason ? r->reason : "-");
    l->ended_us[l->n] = r->ended_us;
    l->n++;
    return 0;
}

static listed
list(council_store *s, const char *outcome)
{
    council_store_query q = {NULL, outcome, 0, 0};
    council_diag diag;
    listed l;

    memset(&l, 0, sizeof(l));
    if (council_store_runs(s, &q, collect, &l, &diag) != COUNCIL_OK)
        FAIL("runs: %s", diag.msg);
    return l;
}

/* Is id among l's runs, with that outcome? */
static int
has(const listed *l, const char *id, const char *outcome)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->ids[i], id) == 0)
            return outcome == NULL || strcmp(l->outcomes[i], outcome) == 0;
    return 0;
}

/* A pid that was a process a moment ago, reaped: its owner fields. */
static council__owner
dead_owner(void)
{
    council__owner o;
    int p[2], status;
    pid_t pid;
    char c;

    ASSERT_EQ_INT(pipe(p), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        (void)read(p[0], &c, 1);
        _exit(0);
    }
    close(p[0]);
    ASSERT_EQ_INT(council__owner_of_pid(pid, &o), 0);
    close(p[1]);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    return o;
}

/* Make run id of db unfinished, owned by o (by hand, as a process that
 * died before its recorder finalized leaves it). */
static void
set_owner(const char *db, const char *id, const council__owner *o)
{
    char q[1024];

    snprintf(q, sizeof(q),
             "UPDATE runs SET outcome=NULL, reason=NULL, outcome_json=NULL,"
             " ended_us=NULL, emitted=NULL, owner_host='%s', owner_pid=%lld,"
             " owner_start=%lld, owner_boot='%s' WHERE run_id='%s'",
             o->host, (long long)o->pid, (long long)o->start, o->boot, id);
    sql(db, q);
}

TEST_T(gone_owners_closed_live_foreign_unknown_kept, 60)
{
    const char *db = fx_path("o.db");
    const char *ids[] = {"done",       "dead1",      "dead2",  "live",
                         "other-host", "other-boot", "unknown"};
    council_engine *eng = engine();
    council__owner me, dead = dead_owner(), o;
    council_store *s;
    listed l;
    json_t *j;
    char want[128], *t;
    int64_t t0;
    size_t i;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        fx_record(eng, db, NULL, ids[i], fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    council__owner_self(&me);
    /* Every row names this process as its owner. */
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE owner_pid ="
                              " (SELECT owner_pid FROM runs LIMIT 1)"),
                  7);
    ASSERT_EQ_INT(sql_int(db, "SELECT owner_pid FROM runs LIMIT 1"), me.pid);
    ASSERT_EQ_INT(sql_int(db, "SELECT owner_start FROM runs LIMIT 1"),
                  me.start);
    ASSERT_EQ_INT(
        sql_int(db, "SELECT count(*) FROM runs WHERE emitted = events"), 7);
    set_owner(db, "dead1", &dead);
    set_owner(db, "dead2", &dead);
    set_owner(db, "live", &me);
    o = dead;
    snprintf(o.host, sizeof(o.host), "elsewhere.example");
    set_owner(db, "other-host", &o);
    o = me;
    snprintf(o.boot, sizeof(o.boot), "00000000-0000-4000-8000-000000000001");
    set_owner(db, "other-boot", &o);
    set_owner(db, "unknown", &dead);
    sql(db, "UPDATE runs SET owner_start=NULL WHERE run_id='unknown'");

    /* Read-only: reported as crashed, nothing written. */
    s = open_store(db, COUNCIL_STORE_READONLY);
    l = list(s, NULL);
    ASSERT_EQ_INT(l.n, 7);
    ASSERT(has(&l, "done", "ok"));
    ASSERT(has(&l, "dead1", "crashed"));
    ASSERT(has(&l, "dead2", "crashed"));
    ASSERT(has(&l, "other-boot", "crashed"));
    ASSERT(has(&l, "live", "-"));
    ASSERT(has(&l, "other-host", "-"));
    ASSERT(has(&l, "unknown", "-"));
    l = list(s, "crashed");
    ASSERT_EQ_INT(l.n, 3);
    snprintf(want, sizeof(want), "process lost: pid %lld", (long long)dead.pid);
    for (int k = 0; k < l.n; k++)
        if (strcmp(l.ids[k], "other-boot") != 0)
            ASSERT_STR_EQ(l.reasons[k], want);
    l = list(s, "running");
    ASSERT_EQ_INT(l.n, 3);
    ASSERT(has(&l, "live", NULL) && has(&l, "other-host", NULL) &&
           has(&l, "unknown", NULL));
    j = record_of(s, "dead1");
    ASSERT_STR_EQ(jstr(j, "outcome"), "crashed");
    ASSERT_STR_EQ(jstr(j, "reason"), want);
    ASSERT(json_is_null(json_object_get(j, "events_emitted")));
    ASSERT(json_is_false(json_object_get(j, "incomplete")));
    ASSERT_EQ_INT(
        json_integer_value(json_object_get(json_object_get(j, "owner"), "pid")),
        dead.pid);
    ASSERT(json_is_integer(json_object_get(j, "duration_ms")));
    json_decref(j);
    j = record_of(s, "live");
    ASSERT_STR_EQ(jstr(j, "outcome"), "running");
    json_decref(j);
    council_store_close(s);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE outcome IS "
                              "NULL"),
                  6);

    /* Read-write: closed at open, in the store itself. */
    t0 = council__now_us();
    s = open_store(db, 0);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE outcome IS "
                              "NULL"),
                  3);
    for (i = 0; i < 3; i++) {
        const char *id = i == 0 ? "dead1" : i == 1 ? "dead2" : "other-boot";
        char q[256];
        long long pid = i < 2 ? dead.pid : me.pid;

        snprintf(want, sizeof(want), "process lost: pid %lld", pid);
        snprintf(q, sizeof(q), "SELECT outcome FROM runs WHERE run_id='%s'",
                 id);
        t = sql_text(db, q);
        ASSERT_STR_EQ(t, "crashed");
        free(t);
        snprintf(q, sizeof(q), "SELECT reason FROM runs WHERE run_id='%s'", id);
        t = sql_text(db, q);
        ASSERT_STR_EQ(t, want);
        free(t);
        /* As council_outcome_json renders a crashed outcome. */
        snprintf(q, sizeof(q),
                 "SELECT outcome_json FROM runs WHERE run_id='%s'", id);
        t = sql_text(db, q);
        snprintf(want, sizeof(want),
                 "{\"outcome\":\"crashed\",\"reason\":\"process lost: pid "
                 "%lld\"}",
                 pid);
        ASSERT_STR_EQ(t, want);
        free(t);
        snprintf(q, sizeof(q), "SELECT ended_us FROM runs WHERE run_id='%s'",
                 id);
        ASSERT(sql_int(db, q) >= t0 && sql_int(db, q) <= council__now_us());
        snprintf(q, sizeof(q), "SELECT events FROM runs WHERE run_id='%s'", id);
        ASSERT_EQ_INT(sql_int(db, q), FX_RANK_N); /* events are kept */
    }
    t = sql_text(db, "SELECT owner_host FROM runs WHERE run_id='other-host'");
    ASSERT_STR_EQ(t, "elsewhere.example");
    free(t);
    l = list(s, "running");
    ASSERT_EQ_INT(l.n, 3);
    ASSERT_OK(council_store_delete(s, "dead1", NULL));
    ASSERT_EQ_INT(council_store_delete(s, "live", NULL), COUNCIL_EBUSY);
    council_store_close(s);
    sql(db, "PRAGMA integrity_check");
}

/* A child process records a run that hangs; while the child lives, no
 * reader closes it (read-write handles included); killed, the next
 * reader does. */
TEST_T(a_recording_process_killed, 60)
{
    const char *db = fx_path("k.db");
    council_store *s;
    council_diag diag;
    char want[64];
    listed l;
    json_t *j;
    int status, p[2];
    pid_t pid;
    char c;

    ASSERT_EQ_INT(pipe(p), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        static const council__script_step steps[] = {
            FX_STARTED("demo", "Still thinking"),
            {COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, NULL, 0},
        };
        council__script hang = {steps, 2, COUNCIL__SCRIPT_HANG, NULL};
        council_recorder_spec spec = {council_recorder_sqlite(), (void *)db};
        council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
        council_engine *eng = NULL;
        council_run *run = NULL;

        close(p[0]);
        o.recorders = &spec;
        o.n_recorders = 1;
        o.run_id = "hung";
        if (council_engine_open(NULL, &eng) != COUNCIL_OK ||
            council__run_start_script(eng, &hang, &o, &run, NULL) != COUNCIL_OK)
            _exit(1);
        (void)write(p[1], "x", 1);
        for (;;)
            pause();
    }
    close(p[1]);
    ASSERT_EQ_INT(read(p[0], &c, 1), 1);
    close(p[0]);
    /* Its row is written at the recorder's init and its events at the
     * recorder's flush, a moment later: wait for both. */
    for (int i = 0; i < 2000; i++) {
        if (access(db, F_OK) == 0 &&
            council_store_open(db, COUNCIL_STORE_READONLY, &s, &diag) ==
                COUNCIL_OK) {
            l = list(s, NULL);
            council_store_close(s);
            if (l.n == 1 && sql_int(db, "SELECT events FROM runs") >= 1)
                break;
        }
        usleep(5000);
    }
    s = open_store(db, 0);
    l = list(s, "running");
    ASSERT_EQ_INT(l.n, 1);
    j = record_of(s, "hung");
    ASSERT_STR_EQ(jstr(j, "outcome"), "running");
    ASSERT_EQ_INT(
        json_integer_value(json_object_get(json_object_get(j, "owner"), "pid")),
        pid);
    json_decref(j);
    ASSERT_EQ_INT(council_store_delete(s, "hung", &diag), COUNCIL_EBUSY);
    ASSERT_STR_CONTAINS(diag.msg, "it is running (pid ");
    council_store_close(s);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE outcome IS "
                              "NULL"),
                  1);

    /* A handle opened before the death notices it at its next read, and
     * closes the run then. */
    s = open_store(db, 0);
    kill(pid, SIGKILL);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    snprintf(want, sizeof(want), "process lost: pid %d", (int)pid);
    l = list(s, "crashed");
    ASSERT_EQ_INT(l.n, 1);
    ASSERT_STR_EQ(l.reasons[0], want);
    council_store_close(s);
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE outcome IS "
                              "NULL"),
                  0);
    {
        char *t = sql_text(db, "SELECT reason FROM runs");

        ASSERT_STR_EQ(t, want);
        free(t);
    }
    ASSERT(sql_int(db, "SELECT events FROM runs") >= 1);
}

/* ---- a store of schema version 1 ---------------------------------------- */

/* The schema of version 1, as recorders before owners wrote it. */
static const char v1_schema[] =
    "PRAGMA application_id=1131307884; PRAGMA user_version=1;"
    "CREATE TABLE runs(run_id TEXT PRIMARY KEY, council TEXT, question TEXT,"
    " strategy TEXT, started_us INTEGER NOT NULL, ended_us INTEGER,"
    " outcome TEXT, reason TEXT, outcome_json TEXT,"
    " events INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE events(run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " type TEXT NOT NULL, ts_us INTEGER NOT NULL, json TEXT NOT NULL,"
    " PRIMARY KEY(run_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX runs_started ON runs(started_us);"
    "INSERT INTO runs VALUES('old-ok','demo','q?','rank',1700000000000000,"
    " 1700000001000000,'ok',NULL,'{\"outcome\":\"ok\",\"result\":{}}',1);"
    "INSERT INTO runs VALUES('old-open','demo','q?','rank',1700000002000000,"
    " NULL,NULL,NULL,NULL,1);"
    "INSERT INTO events VALUES('old-ok',1,'run_started',1700000000000000,"
    " '{\"type\":\"run_started\",\"run_id\":\"old-ok\",\"seq\":1,"
    "\"ts\":\"2023-11-14T22:13:20.000000Z\",\"council\":\"demo\"}');"
    "INSERT INTO events VALUES('old-open',1,'run_started',1700000002000000,"
    " '{\"type\":\"run_started\",\"run_id\":\"old-open\",\"seq\":1,"
    "\"ts\":\"2023-11-14T22:13:22.000000Z\",\"council\":\"demo\"}');";

TEST_T(version_1_store_reads_as_before_then_upgrades, 60)
{
    const char *db = fx_path("v1.db");
    council_engine *eng;
    council_store *s;
    listed l;
    json_t *j;
    char *t;

    sql(db, v1_schema);
    for (int pass = 0; pass < 2; pass++) {
        s = open_store(db, pass == 0 ? COUNCIL_STORE_READONLY : 0);
        l = list(s, NULL);
        ASSERT_EQ_INT(l.n, 2);
        ASSERT(has(&l, "old-ok", "ok"));
        ASSERT(has(&l, "old-open", "-")); /* owner unknown: never closed */
        l = list(s, "running");
        ASSERT_EQ_INT(l.n, 1);
        ASSERT_EQ_INT(list(s, "crashed").n, 0);
        j = record_of(s, "old-open");
        ASSERT_STR_EQ(jstr(j, "outcome"), "running");
        ASSERT(json_is_null(json_object_get(j, "owner")));
        ASSERT(json_is_null(json_object_get(j, "events_emitted")));
        ASSERT(json_is_false(json_object_get(j, "incomplete")));
        json_decref(j);
        j = record_of(s, "old-ok");
        ASSERT_STR_EQ(jstr(j, "outcome"), "ok");
        ASSERT(json_is_null(json_object_get(j, "events_emitted")));
        json_decref(j);
        council_store_close(s);
        /* Readers never change the schema. */
        ASSERT_EQ_INT(sql_int(db, "PRAGMA user_version"), 1);
    }
    ASSERT_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE outcome IS "
                              "NULL"),
                  1);
    /* A recorder upgrades it, in its schema transaction. */
    eng = engine();
    fx_record(eng, db, NULL, "new", fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    ASSERT_EQ_INT(sql_int(db, "PRAGMA user_version"), 2);
    t = sql_text(db, "SELECT owner_pid FROM runs WHERE run_id='old-open'");
    ASSERT_STR_EQ(t, "NULL");
    free(t);
    ASSERT_EQ_INT(sql_int(db, "SELECT owner_pid FROM runs WHERE run_id='new'"),
                  getpid());
    ASSERT_EQ_INT(sql_int(db, "SELECT emitted FROM runs WHERE run_id='new'"),
                  FX_RANK_N);
    sql(db, "PRAGMA integrity_check");
    s = open_store(db, 0);
    l = list(s, NULL);
    ASSERT_EQ_INT(l.n, 3);
    ASSERT(has(&l, "old-open", "-"));
    ASSERT(has(&l, "new", "ok"));
    j = record_of(s, "new");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events_emitted")),
                  FX_RANK_N);
    ASSERT(json_is_false(json_object_get(j, "incomplete")));
    json_decref(j);
    council_store_close(s);
}

/* ---- jsonl records ---------------------------------------------------------
 */

static void
write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");

    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fwrite(text, 1, n, f), n);
    fclose(f);
}

/* content with its owner line's pid and start replaced by o's, cut after
 * its nth newline (keeping extra more bytes: a torn line). */
static void
rewrite(const char *path, const char *content, const council__owner *o, int nth,
        size_t extra)
{
    const char *body = strchr(content, '\n') + 1, *p = content;
    char head[512];
    size_t hn;
    char *out;

    for (int i = 0; i < nth; i++)
        p = strchr(p, '\n') + 1;
    hn = (size_t)snprintf(
        head, sizeof(head),
        "{\"owner\":{\"host\":\"%s\",\"pid\":%lld,\"start\":%lld,"
        "\"boot\":\"%s\"}}\n",
        o->host, (long long)o->pid, (long long)o->start, o->boot);
    out = malloc(hn + strlen(body) + 1);
    memcpy(out, head, hn);
    memcpy(out + hn, body, (size_t)(p - body) + extra);
    write_file(path, out, hn + (size_t)(p - body) + extra);
    free(out);
}

static char *
last_line(const char *path)
{
    char *c = fx_slurp(path), *l;
    size_t n = strlen(c);

    ASSERT(n > 0 && c[n - 1] == '\n');
    c[n - 1] = '\0';
    l = strdup(strrchr(c, '\n') + 1);
    free(c);
    return l;
}

TEST_T(jsonl_gone_owner, 60)
{
    const char *db = fx_path("j.db");
    const char *dir = fx_path("j");
    char file[700], path[700], want[128], *content, *t;
    council_engine *eng = engine();
    council__owner me, dead = dead_owner(), o;
    council_store *s;
    struct stat a, b;
    json_t *j;

    mkdir(dir, 0700);
    fx_record(eng, db, dir, "r", fx_rank_steps, FX_RANK_N, NULL, NULL);
    council_engine_close(eng);
    council__owner_self(&me);
    snprintf(file, sizeof(file), "%s/r.jsonl", dir);
    snprintf(path, sizeof(path), "%s/x.jsonl", dir);
    content = fx_slurp(file);
    snprintf(want, sizeof(want), "process lost: pid %lld", (long long)dead.pid);

    /* Cut after 10 events and a torn line, owner gone.  Read-only: it
     * reads crashed, the file is untouched. */
    rewrite(path, content, &dead, 11, 9);
    ASSERT_EQ_INT(stat(path, &a), 0);
    s = open_store(path, COUNCIL_STORE_READONLY);
    j = record_of(s, "r");
    ASSERT_STR_EQ(jstr(j, "outcome"), "crashed");
    ASSERT_STR_EQ(jstr(j, "reason"), want);
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), 10);
    ASSERT(json_is_null(json_object_get(j, "events_emitted")));
    json_decref(j);
    {
        listed l = list(s, "crashed");

        ASSERT_EQ_INT(l.n, 1);
        ASSERT_STR_EQ(l.reasons[0], want);
        ASSERT_EQ_INT(list(s, "running").n, 0);
    }
    council_store_close(s);
    ASSERT_EQ_INT(stat(path, &b), 0);
    ASSERT_EQ_INT(b.st_size, a.st_size);

    /* Read-write: the torn line is cut and the outcome line appended, as
     * the recorder would have at finalize; a second reader adds none. */
    s = open_store(path, 0);
    council_store_close(s);
    t = last_line(path);
    snprintf(want, sizeof(want),
             "{\"outcome\":\"crashed\",\"reason\":\"process lost: pid %lld\"}",
             (long long)dead.pid);
    ASSERT_STR_EQ(t, want);
    free(t);
    ASSERT_EQ_INT(stat(path, &a), 0);
    {
        council__jsonl_report rep;

        ASSERT_OK(council__jsonl_read(path, &rep, NULL, NULL, NULL));
        ASSERT_EQ_U64(rep.events, 10);
        ASSERT_STR_EQ(rep.outcome, "crashed");
    }
    s = open_store(path, 0);
    council_store_close(s);
    ASSERT_EQ_INT(stat(path, &b), 0);
    ASSERT_EQ_INT(b.st_size, a.st_size);

    /* Every event there, the terminal one included, but no outcome line:
     * the terminal event says how it ended (it beats the crash). */
    rewrite(path, content, &dead, (int)FX_RANK_N + 1, 0);
    s = open_store(path, 0);
    j = record_of(s, "r");
    ASSERT_STR_EQ(jstr(j, "outcome"), "ok");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events_emitted")),
                  FX_RANK_N);
    ASSERT(json_is_object(json_object_get(j, "result")));
    json_decref(j);
    council_store_close(s);
    t = last_line(path);
    ASSERT(strncmp(t, "{\"outcome\":\"ok\",\"result\":", 25) == 0);
    free(t);

    /* A live owner (this process), another host: left as they are. */
    for (int k = 0; k < 2; k++) {
        o = k == 0 ? me : dead;
        if (k == 1)
            snprintf(o.host, sizeof(o.host), "elsewhere.example");
        rewrite(path, content, &o, 11, 0);
        ASSERT_EQ_INT(stat(path, &a), 0);
        s = open_store(path, 0);
        j = record_of(s, "r");
        ASSERT_STR_EQ(jstr(j, "outcome"), "running");
        json_decref(j);
        ASSERT_EQ_INT(list(s, "running").n, 1);
        council_store_close(s);
        ASSERT_EQ_INT(stat(path, &b), 0);
        ASSERT_EQ_INT(b.st_size, a.st_size);
    }
    /* Damaged after the valid lines: its outcome may follow; untouched. */
    rewrite(path, content, &dead, 11, 0);
    {
        FILE *f = fopen(path, "a");

        fputs("{not json\n", f);
        fclose(f);
    }
    ASSERT_EQ_INT(stat(path, &a), 0);
    s = open_store(path, 0);
    j = record_of(s, "r");
    ASSERT_STR_EQ(jstr(j, "outcome"), "running");
    json_decref(j);
    council_store_close(s);
    ASSERT_EQ_INT(stat(path, &b), 0);
    ASSERT_EQ_INT(b.st_size, a.st_size);
    /* A record without an owner line (before this version): as before. */
    {
        const char *body = strchr(content, '\n') + 1, *p = body;

        for (int i = 0; i < 10; i++)
            p = strchr(p, '\n') + 1;
        write_file(path, body, (size_t)(p - body));
    }
    s = open_store(path, 0);
    j = record_of(s, "r");
    ASSERT_STR_EQ(jstr(j, "outcome"), "running");
    ASSERT(json_is_null(json_object_get(j, "owner")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")), 10);
    json_decref(j);
    council_store_close(s);
    free(content);
}
