/* SPDX-License-Identifier: MIT */
/*
 * The sqlite recorder: a run's events go to the `events` table of a
 * database in WAL mode, and the run's row in `runs` is filled in as it
 * goes (its owner at init; council, question and strategy from
 * run_started; the outcome and the number of events the run emitted at
 * finalize).  The schema is in docs/storage.md.  Each recorder has its own
 * connection, so recorders of different runs may write to one file from
 * different threads; SQLite's locks and busy_timeout serialize them.
 *
 * Method (batches and failures).  handle_event only takes a reference to
 * the event and queues it; the queue is written in one transaction
 * (BEGIN IMMEDIATE ... COMMIT) on handle_flush, every 1,000 events, and at
 * finalize, so the write lock is held only while a batch is written, never
 * while waiting for the next event.  A batch either commits whole or not at
 * all: after a failure (busy past the timeout, SQLITE_FULL, an I/O error)
 * the transaction is rolled back, the events stay queued and are retried at
 * the next flush or batch boundary (after a back-off of 50 ms doubling to
 * 2 s, so a full disk does not cost a rewrite per flush), and events are
 * reported failed while the queue is not in the database.  So the
 * database always holds a contiguous prefix of the run's seqs.  Past 100,000
 * queued events, or when memory runs out, the recorder drops the queue and
 * stops writing events (a later one would leave a gap).  The terminal
 * event is held for finalize, which commits the queue and the outcome in
 * one transaction with synchronous=FULL (so a row holds its terminal event
 * only with its outcome); if that fails, it records the outcome alone,
 * whose `emitted` then exceeds `events`: the record says it is incomplete.
 * Finalize always closes the connection and frees everything.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/event.h"
#include "os/owner.h"
#include "recorder/recorder.h"

#define BATCH 1000
/* The runs a reader may have to close (no outcome), by owner host: a
 * reader looks for them at every open. */
#define OPEN_INDEX_SQL                                                         \
    "CREATE INDEX runs_open ON runs(owner_host) WHERE outcome IS NULL;"
#define GIVE_UP_AT 100000
/* Back-off between retries of a failed batch: 50 ms doubling to 2 s. */
#define BACKOFF_MIN_US 50000
#define BACKOFF_MAX_US 2000000

struct sq {
    sqlite3 *db;
    char *run_id;
    sqlite3_stmt *ins_event;
    sqlite3_stmt *upd_start;
    sqlite3_stmt *upd_count;
    council_event **queue; /* references, oldest first */
    size_t n;
    size_t cap;
    int failing;      /* the last batch did not commit */
    int64_t retry_at; /* monotonic us; no retry before, except finalize */
    int64_t backoff;
    int broken; /* events are no longer written */
    /* The last seq handed to handle_event: how many events the run
     * emitted, once the terminal one came (recorded as `emitted`). */
    uint64_t last_seq;
    int terminal; /* the terminal event is queued: finalize writes it */
};

static const char schema_sql[] =
    "CREATE TABLE runs(run_id TEXT PRIMARY KEY, council TEXT, question TEXT,"
    " strategy TEXT, started_us INTEGER NOT NULL, ended_us INTEGER,"
    " outcome TEXT, reason TEXT, outcome_json TEXT,"
    " events INTEGER NOT NULL DEFAULT 0, emitted INTEGER, owner_host TEXT,"
    " owner_pid INTEGER, owner_start INTEGER, owner_boot TEXT);"
    "CREATE TABLE events(run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " type TEXT NOT NULL, ts_us INTEGER NOT NULL, json TEXT NOT NULL,"
    " PRIMARY KEY(run_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX runs_started ON runs(started_us);" OPEN_INDEX_SQL;

/* Version 1 to 2: the columns a reader needs to tell a run whose process
 * is gone (the owner) and a record that lost events (emitted), added at
 * the end, as a new store has them. */
static const char migrate_1_2_sql[] =
    "ALTER TABLE runs ADD COLUMN emitted INTEGER;"
    "ALTER TABLE runs ADD COLUMN owner_host TEXT;"
    "ALTER TABLE runs ADD COLUMN owner_pid INTEGER;"
    "ALTER TABLE runs ADD COLUMN owner_start INTEGER;"
    "ALTER TABLE runs ADD COLUMN owner_boot TEXT;" OPEN_INDEX_SQL
    "PRAGMA user_version=2;";

/* Statements that fail to prepare unless the tables have our columns. */
static const char probe_runs_v1_sql[] =
    "SELECT run_id, council, question, strategy, started_us, ended_us,"
    " outcome, reason, outcome_json, events FROM runs LIMIT 0";
static const char probe_runs_sql[] =
    "SELECT run_id, council, question, strategy, started_us, ended_us,"
    " outcome, reason, outcome_json, events, emitted, owner_host,"
    " owner_pid, owner_start, owner_boot FROM runs LIMIT 0";
static const char probe_events_sql[] =
    "SELECT run_id, seq, type, ts_us, json FROM events LIMIT 0";

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* ensure_schema's verdict for a database that is not ours. */
#define REFUSE (-1)

static int
is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

static int
probe(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    sqlite3_finalize(st);
    return rc;
}

/*
 * Create the schema in an empty database, or check that an existing one is
 * ours.  Inside one write transaction, so recorders racing on a new file
 * create it once.  Returns SQLITE_OK; REFUSE with why filled; or an SQLite
 * error code with why filled (SQLITE_BUSY and kin may be retried).
 */
static int
ensure_schema(sqlite3 *db, const char *path, char *why, size_t why_size)
{
    sqlite3_int64 app = 0, ver = 0, objects = 0;
    char sql[128];
    int rc;

    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = query_int(db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = query_int(db, "PRAGMA user_version", &ver);
    if (rc == SQLITE_OK)
        rc = query_int(db, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc != SQLITE_OK) {
        snprintf(why, why_size, "sqlite: %s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    rc = REFUSE;
    if (app != 0 && app != COUNCIL__STORE_APP_ID) {
        snprintf(why, why_size,
                 "sqlite: %s is not a council store (application_id %#llx)",
                 path, (unsigned long long)app);
        goto fail;
    }
    if (app == 0 && ver == 0 && objects == 0) {
        snprintf(sql, sizeof(sql),
                 "PRAGMA application_id=%d; PRAGMA user_version=%d;",
                 COUNCIL__STORE_APP_ID, COUNCIL__STORE_VERSION);
        rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(why, why_size, "sqlite: %s: cannot create the schema: %s",
                     path, sqlite3_errmsg(db));
            goto fail;
        }
    } else if (app == 0) {
        snprintf(why, why_size,
                 "sqlite: %s is not a council store (it holds other tables)",
                 path);
        goto fail;
    } else if (ver > COUNCIL__STORE_VERSION) {
        snprintf(why, why_size,
                 "sqlite: %s has schema version %lld, newer than this "
                 "council knows (%d)",
                 path, (long long)ver, COUNCIL__STORE_VERSION);
        goto fail;
    } else if (ver == 1 && probe(db, probe_runs_v1_sql) == SQLITE_OK &&
               probe(db, probe_events_sql) == SQLITE_OK) {
        /* A store of the previous version: upgraded in this transaction,
         * so a racing recorder sees version 1 or 2, never half of it. */
        rc = sqlite3_exec(db, migrate_1_2_sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(why, why_size,
                     "sqlite: %s: cannot upgrade the schema from version 1: "
                     "%s",
                     path, sqlite3_errmsg(db));
            goto fail;
        }
    } else if (ver != COUNCIL__STORE_VERSION ||
               probe(db, probe_runs_sql) != SQLITE_OK ||
               probe(db, probe_events_sql) != SQLITE_OK) {
        snprintf(why, why_size,
                 "sqlite: %s: the council schema (version %lld) is damaged "
                 "or unknown",
                 path, (long long)ver);
        goto fail;
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, why_size, "sqlite: %s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    return SQLITE_OK;
fail:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void
drop_queue(struct sq *st)
{
    size_t i;

    for (i = 0; i < st->n; i++)
        council_event_unref(st->queue[i]);
    st->n = 0;
}

static void
state_free(struct sq *st)
{
    if (st == NULL)
        return;
    drop_queue(st);
    council__free(st->queue);
    sqlite3_finalize(st->ins_event);
    sqlite3_finalize(st->upd_start);
    sqlite3_finalize(st->upd_count);
    sqlite3_close(st->db); /* every statement is finalized: it closes */
    council__free(st->run_id);
    council__free(st);
}

/*
 * Put the connection in WAL mode and make sure of the schema.  While other
 * connections set up or recover the same new file, SQLite may answer BUSY
 * without calling the busy handler (WAL recovery, the switch to WAL), so
 * BUSY is retried here with a back-off, for up to 10 s.
 */
static int
setup(sqlite3 *db, const char *path, char *why, size_t why_size)
{
    int64_t give_up = mono_us() + 10 * 1000000;
    long delay_us = 1000;
    int rc;

    for (;;) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc =
                sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            snprintf(why, why_size, "sqlite: %s: %s", path, sqlite3_errmsg(db));
        else
            rc = ensure_schema(db, path, why, why_size);
        if (!is_busy(rc) || mono_us() > give_up)
            return rc;
        {
            struct timespec ts = {0, delay_us * 1000};

            nanosleep(&ts, NULL);
        }
        if (delay_us < 100000)
            delay_us *= 2;
    }
}

static int
sq_init(const char *run_id, void *args, void **state, char *why,
        size_t why_size)
{
    const char *path = args;
    struct sq *st = NULL;
    sqlite3_stmt *ins = NULL;
    council__owner me;
    int rc = -1;
    int src;

    if (path == NULL || path[0] == '\0' || run_id == NULL) {
        snprintf(why, why_size, "sqlite: no database path given");
        goto out;
    }
    if (!sqlite3_threadsafe()) {
        snprintf(why, why_size,
                 "sqlite: the SQLite library is built "
                 "without thread support");
        goto out;
    }
    st = council__calloc(1, sizeof(*st));
    if (st == NULL || (st->run_id = council__strdup(run_id)) == NULL) {
        snprintf(why, why_size, "sqlite: out of memory");
        goto out;
    }
    /* One connection per recorder, used by one callback at a time: no
     * need for SQLite's per-connection mutex. */
    src = sqlite3_open_v2(
        path, &st->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        snprintf(why, why_size, "sqlite: cannot open %s: %s", path,
                 st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 10000);
    if (setup(st->db, path, why, why_size) != SQLITE_OK)
        goto out;
    src = sqlite3_prepare_v2(st->db,
                             "INSERT INTO runs(run_id, started_us, owner_host,"
                             " owner_pid, owner_start, owner_boot)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                             -1, &ins, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(st->db,
                                 "INSERT INTO events(run_id, seq, type, "
                                 "ts_us, json) VALUES(?1, ?2, ?3, ?4, ?5)",
                                 -1, &st->ins_event, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(st->db,
                                 "UPDATE runs SET council=?2, question=?3,"
                                 " strategy=?4 WHERE run_id=?1",
                                 -1, &st->upd_start, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(st->db,
                                 "UPDATE runs SET events=events+?2"
                                 " WHERE run_id=?1",
                                 -1, &st->upd_count, NULL);
    if (src != SQLITE_OK) {
        snprintf(why, why_size, "sqlite: %s: %s", path, sqlite3_errmsg(st->db));
        goto out;
    }
    sqlite3_bind_text(ins, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, council__now_us());
    /* The owner: this process (recorders run in the engine's process).
     * A field it cannot know stays NULL, and a reader never closes a run
     * whose owner is not known whole. */
    council__owner_self(&me);
    if (me.host[0] != '\0')
        sqlite3_bind_text(ins, 3, me.host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 4, me.pid);
    if (me.start >= 0)
        sqlite3_bind_int64(ins, 5, me.start);
    if (me.boot[0] != '\0')
        sqlite3_bind_text(ins, 6, me.boot, -1, SQLITE_STATIC);
    src = sqlite3_step(ins);
    if ((src & 0xff) == SQLITE_CONSTRAINT) {
        snprintf(why, why_size, "sqlite: run %s is already recorded in %s",
                 run_id, path);
        goto out;
    }
    if (src != SQLITE_DONE) {
        snprintf(why, why_size, "sqlite: %s: %s", path, sqlite3_errmsg(st->db));
        goto out;
    }
    *state = st;
    st = NULL;
    rc = 0;
out:
    sqlite3_finalize(ins);
    state_free(st);
    return rc;
}

static int
insert_event(struct sq *st, council_event *ev)
{
    const char *json = council_event_json(ev);
    int rc;

    if (json == NULL)
        return SQLITE_NOMEM;
    sqlite3_bind_text(st->ins_event, 1, st->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->ins_event, 2, (sqlite3_int64)council_event_seq(ev));
    sqlite3_bind_text(st->ins_event, 3,
                      council_event_type_name(council_event_type_of(ev)), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st->ins_event, 4, council_event_time_us(ev));
    sqlite3_bind_text(st->ins_event, 5, json, -1, SQLITE_STATIC);
    rc = sqlite3_step(st->ins_event);
    sqlite3_reset(st->ins_event);
    sqlite3_clear_bindings(st->ins_event);
    if (rc != SQLITE_DONE)
        return rc;
    if (council_event_type_of(ev) == COUNCIL_EV_RUN_STARTED) {
        json_t *d = council__event_data(ev);

        sqlite3_bind_text(st->upd_start, 1, st->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st->upd_start, 2,
                          json_string_value(json_object_get(d, "council")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st->upd_start, 3,
                          json_string_value(json_object_get(d, "question")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st->upd_start, 4,
                          json_string_value(json_object_get(d, "strategy")), -1,
                          SQLITE_STATIC);
        rc = sqlite3_step(st->upd_start);
        sqlite3_reset(st->upd_start);
        sqlite3_clear_bindings(st->upd_start);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_OK;
}

/* The run row's outcome and emitted count, in the transaction in progress
 * (or on its own).  SQLITE_OK or the error. */
static int
update_outcome(struct sq *st, const council_outcome *outcome)
{
    sqlite3_stmt *upd = NULL;
    int rc;

    rc = sqlite3_prepare_v2(st->db,
                            "UPDATE runs SET ended_us=?2, outcome=?3,"
                            " reason=?4, outcome_json=?5, emitted=?6"
                            " WHERE run_id=?1",
                            -1, &upd, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(upd, 1, st->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(upd, 2, council__now_us());
    if (outcome != NULL) {
        sqlite3_bind_text(
            upd, 3, council_outcome_kind_name(council_outcome_kind_of(outcome)),
            -1, SQLITE_STATIC);
        sqlite3_bind_text(upd, 4, council_outcome_reason(outcome), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(upd, 5, council_outcome_json(outcome), -1,
                          SQLITE_STATIC);
    }
    sqlite3_bind_int64(upd, 6, (sqlite3_int64)st->last_seq);
    rc = sqlite3_step(upd);
    sqlite3_finalize(upd);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Write the queue in one transaction, and with outcome (finalize) the run
 * row's outcome in the same one.  0 when it committed.  After a failure,
 * retries wait for the back-off unless force is set, so a database that
 * stays full is not rewritten at every flush.
 */
static int
write_batch(struct sq *st, int force, const council_outcome *outcome)
{
    size_t i;
    int rc;

    if (st->n == 0 && outcome == NULL)
        return 0;
    if (st->failing && !force && mono_us() < st->retry_at)
        return -1;
    rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (i = 0; rc == SQLITE_OK && i < st->n; i++)
        rc = insert_event(st, st->queue[i]);
    if (rc == SQLITE_OK && st->n > 0) {
        sqlite3_bind_text(st->upd_count, 1, st->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st->upd_count, 2, (sqlite3_int64)st->n);
        rc = sqlite3_step(st->upd_count);
        sqlite3_reset(st->upd_count);
        sqlite3_clear_bindings(st->upd_count);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK && outcome != NULL)
        rc = update_outcome(st, outcome);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        /* SQLite may have rolled back already (SQLITE_FULL, IOERR). */
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        st->failing = 1;
        st->backoff = st->backoff == 0 ? BACKOFF_MIN_US : st->backoff * 2;
        if (st->backoff > BACKOFF_MAX_US)
            st->backoff = BACKOFF_MAX_US;
        st->retry_at = mono_us() + st->backoff;
        return -1;
    }
    drop_queue(st);
    st->failing = 0;
    st->backoff = 0;
    return 0;
}

static int
sq_event(void *state, council_event *ev)
{
    struct sq *st = state;

    if (council_event_seq(ev) > st->last_seq)
        st->last_seq = council_event_seq(ev);
    if (st->broken)
        return -1;
    if (st->n == st->cap) {
        size_t cap = st->cap != 0 ? st->cap * 2 : 64;
        council_event **q = council__realloc(st->queue, cap * sizeof(*q));

        if (q == NULL) {
            /* The event cannot be kept; a later one would leave a gap. */
            st->broken = 1;
            drop_queue(st);
            return -1;
        }
        st->queue = q;
        st->cap = cap;
    }
    st->queue[st->n++] = council_event_ref(ev);
    /* The terminal event waits for finalize, which commits it with the
     * outcome: a row never holds its terminal event without its outcome
     * (a process killed in between would leave a record that says both
     * "ended" and "running"). */
    if (council__event_is_terminal(council_event_type_of(ev)))
        st->terminal = 1;
    if (st->terminal || st->n % BATCH != 0)
        return st->failing ? -1 : 0;
    if (write_batch(st, 0, NULL) == 0)
        return 0;
    if (st->n >= GIVE_UP_AT) {
        st->broken = 1;
        drop_queue(st);
    }
    return -1;
}

static void
sq_flush(void *state)
{
    struct sq *st = state;

    if (!st->broken && !st->terminal)
        (void)write_batch(st, 0, NULL);
}

/*
 * The queue and the outcome in one transaction; if that fails (the disk is
 * full), the outcome alone, so the record still says how the run ended
 * (and, by emitted > events, that its log is incomplete).  If even that
 * fails the row keeps no outcome; once this process has gone, the next
 * reader closes it as crashed("process lost: pid N").
 */
static void
sq_finalize(void *state, const council_outcome *outcome)
{
    struct sq *st = state;

    /* The last commit is synced (WAL and all) before finalize returns. */
    sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (st->broken || (write_batch(st, 1, outcome) != 0 &&
                       write_batch(st, 1, outcome) != 0)) {
        /* Twice, for a passing fault; then the outcome alone, which
         * needs far less room than the batch did. */
        drop_queue(st);
        (void)write_batch(st, 1, outcome);
    }
    state_free(st);
}

static const council_recorder_ops sqlite_ops = {
    .version = COUNCIL_RECORDER_OPS_VERSION,
    .init = sq_init,
    .handle_event = sq_event,
    .handle_finalize = sq_finalize,
    .handle_flush = sq_flush,
};

const council_recorder_ops *
council_recorder_sqlite(void)
{
    return &sqlite_ops;
}
