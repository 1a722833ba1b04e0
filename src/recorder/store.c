/* SPDX-License-Identifier: MIT */
/*
 * The run store: recorded runs read back through a handle
 * (council_store_open), from a SQLite database written by the sqlite
 * recorder or from one jsonl record written by the jsonl recorder
 * (store_jsonl.c loads those).  A SQLite handle keeps its connection and
 * every prepared statement, so a call costs no open and no prepare: the
 * server answers GET /v1/runs/{id} from it.  Also council_store_list and
 * council_store_conversation (each opens the file for the call), and the
 * check replay makes before recording a run again
 * (council__recorder_has_run, asked by src/recorder/replay_start.c).
 *
 * Nothing here trusts the file.  A missing file is reported, never
 * created; a foreign, damaged or newer store is COUNCIL_EIO with SQLite's
 * own words in the diag; a stored event that does not parse, or whose seq
 * or run id is not its place, is reported by its seq.  Statements are
 * reset as soon as a call is done with them, so a handle never holds a
 * read transaction between calls (it would stop the WAL from being
 * checkpointed).
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/json_scan.h"
#include "os/os.h"
#include "os/owner.h"
#include "recorder/store.h"

/* ---- helpers ------------------------------------------------------------ */

static council_err
fail_db(sqlite3 *db, const char *path, council_diag *diag, const char *what)
{
    council__recorder_diag(diag, path, 0, "%s%s%s", what,
                           db != NULL ? ": " : "",
                           db != NULL ? sqlite3_errmsg(db) : "");
    return COUNCIL_EIO;
}

static void
clear_diag(council_diag *diag)
{
    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
}

/* Done with a statement: reset it (ending its read) and drop bindings. */
static void
done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Check the schema: application id and a version we read (1 or 2), in
 * *version. */
static council_err
check_store(sqlite3 *db, const char *path, int *version, council_diag *diag)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 app = -1, ver = -1;
    council_err rc = COUNCIL_OK;

    if (sqlite3_prepare_v2(db,
                           "SELECT * FROM pragma_application_id(),"
                           " pragma_user_version()",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = fail_db(db, path, diag, "cannot read the store");
        goto out;
    }
    app = sqlite3_column_int64(st, 0);
    ver = sqlite3_column_int64(st, 1);
    if (app != COUNCIL__STORE_APP_ID) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "not a council store (application_id %#llx)",
                               (unsigned long long)app);
        goto out;
    }
    if (ver < 1 || ver > COUNCIL__STORE_VERSION) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "unknown store schema version %lld "
                               "(this council reads 1 to %d)",
                               (long long)ver, COUNCIL__STORE_VERSION);
        goto out;
    }
    *version = (int)ver;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Open the SQLite file at path (never creating it) and check it.  On
 * failure *out is NULL and diag says why. */
static council_err
open_db(const char *path, int readonly, sqlite3 **out, int *version,
        council_diag *diag)
{
    sqlite3 *db = NULL;
    struct stat sb;
    char eb[128];
    council_err rc;

    *out = NULL;
    if (council__os.stat(path, &sb) != 0) {
        int e = errno;

        council__recorder_diag(diag, path, 0, "%s",
                               council__os_strerror(e, eb, sizeof(eb)));
        return e == ENOENT ? COUNCIL_ENOTFOUND : COUNCIL_EIO;
    }
    if (sqlite3_open_v2(
            path, &db,
            (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        rc = fail_db(db, path, diag, "cannot open");
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 10000);
    rc = check_store(db, path, version, diag);
out:
    if (rc != COUNCIL_OK)
        sqlite3_close(db);
    else
        *out = db;
    return rc;
}

/* Which kind of file is at path: a jsonl record starts (after blanks)
 * with '{'; anything else is left to SQLite, which names what it finds. */
static int
looks_like_jsonl(const char *path)
{
    char head[64];
    ssize_t n;
    int fd, r = 0;

    do {
        fd = council__os.open(path, O_RDONLY | O_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return 0;
    do {
        n = council__os.read(fd, head, sizeof(head));
    } while (n < 0 && errno == EINTR);
    for (ssize_t i = 0; i < n; i++) {
        if (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' ||
            head[i] == '\r')
            continue;
        r = head[i] == '{';
        break;
    }
    council__os.close(fd);
    return r;
}

/* ---- owners and the runs they left ------------------------------------- */

const char *
council__store_lost_reason(int64_t pid, char *buf, size_t size)
{
    snprintf(buf, size, "process lost: pid %lld", (long long)pid);
    return buf;
}

council_outcome *
council__store_lost_outcome(int64_t pid)
{
    char reason[64];

    return council__outcome_new(
        COUNCIL_OUTCOME_CRASHED, NULL, NULL,
        council__store_lost_reason(pid, reason, sizeof(reason)));
}

/* An owner from host, pid, start and boot values (NULL = unknown). */
static void
owner_set(council__owner *o, const unsigned char *host, int has_pid,
          int64_t pid, int has_start, int64_t start, const unsigned char *boot)
{
    memset(o, 0, sizeof(*o));
    o->start = -1;
    if (host != NULL)
        snprintf(o->host, sizeof(o->host), "%s", (const char *)host);
    if (has_pid)
        o->pid = pid;
    if (has_start)
        o->start = start;
    if (boot != NULL)
        snprintf(o->boot, sizeof(o->boot), "%s", (const char *)boot);
}

static void
owner_from_columns(sqlite3_stmt *st, int col, council__owner *o)
{
    owner_set(o, sqlite3_column_text(st, col),
              sqlite3_column_type(st, col + 1) == SQLITE_INTEGER,
              sqlite3_column_int64(st, col + 1),
              sqlite3_column_type(st, col + 2) == SQLITE_INTEGER,
              sqlite3_column_int64(st, col + 2),
              sqlite3_column_text(st, col + 3));
}

/* council_owner_lost(host, pid, start, boot): 1 when that owner is gone
 * (council__owner_check), which the handle notes for its closer. */
static void
owner_lost_fn(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    council_store *s = sqlite3_user_data(ctx);
    council__owner o;
    int lost;

    (void)argc;
    owner_set(&o, sqlite3_value_text(v[0]),
              sqlite3_value_type(v[1]) == SQLITE_INTEGER,
              sqlite3_value_int64(v[1]),
              sqlite3_value_type(v[2]) == SQLITE_INTEGER,
              sqlite3_value_int64(v[2]), sqlite3_value_text(v[3]));
    lost = council__owner_check(&o) == COUNCIL__OWNER_LOST;
    if (lost)
        s->saw_lost = 1;
    sqlite3_result_int(ctx, lost);
}

typedef struct lost_run {
    char *run_id;
    int64_t pid, start;
} lost_run;

/*
 * Method (closing the runs whose owner is gone).  Look first without a
 * lock: the runs of this host without an outcome (the runs_open index),
 * each owner checked.  Only if one is gone, take the write lock (waiting
 * at most 1 s: a reader must not stall behind a long batch; the runs read
 * as crashed anyway), look again under it, and close every one found, in
 * one transaction: outcome crashed("process lost: pid N"), ended_us now.
 * The update matches the owner too, so it never touches a row that
 * changed in between.  A live owner's run, another host's, one with an
 * owner not known whole (version 1 rows) are never touched.  Best effort:
 * a store that cannot be written (read-only file, full disk) keeps the
 * rows, which still read as crashed.
 */
static void
close_lost(council_store *s)
{
    council__owner me, o;
    lost_run *v = NULL;
    size_t n = 0, cap = 0, i;
    int64_t now = council__now_us();
    int any = 0, ok = 1, src;

    if (s->jsonl) {
        if (s->saw_lost && !(s->flags & COUNCIL_STORE_READONLY))
            council__store_jsonl_close(s);
        s->saw_lost = 0;
        return;
    }
    if (s->q_close == NULL || s->in_runs || s->in_events)
        return;
    s->saw_lost = 0;
    council__owner_self(&me);
    if (me.host[0] == '\0')
        return;
    sqlite3_bind_text(s->q_open, 1, me.host, -1, SQLITE_TRANSIENT);
    while (!any && sqlite3_step(s->q_open) == SQLITE_ROW) {
        owner_from_columns(s->q_open, 1, &o);
        any = council__owner_check(&o) == COUNCIL__OWNER_LOST;
    }
    done(s->q_open);
    if (!any)
        return;
    sqlite3_busy_timeout(s->db, 1000);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s->q_open, 1, me.host, -1, SQLITE_TRANSIENT);
    while ((src = sqlite3_step(s->q_open)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s->q_open, 0);

        owner_from_columns(s->q_open, 1, &o);
        if (id == NULL || council__owner_check(&o) != COUNCIL__OWNER_LOST)
            continue;
        if (n == cap) {
            size_t nc = cap != 0 ? cap * 2 : 8;
            lost_run *nv = council__realloc(v, nc * sizeof(*nv));

            if (nv == NULL) {
                ok = 0;
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n].run_id = council__strdup(id);
        v[n].pid = o.pid;
        v[n].start = o.start;
        if (v[n++].run_id == NULL) {
            ok = 0;
            break;
        }
    }
    if (src != SQLITE_DONE && src != SQLITE_ROW)
        ok = 0;
    done(s->q_open);
    for (i = 0; ok && i < n; i++) {
        council_outcome *out = council__store_lost_outcome(v[i].pid);

        if (out == NULL) {
            ok = 0;
            break;
        }
        sqlite3_bind_text(s->q_close, 1, v[i].run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->q_close, 2, now);
        sqlite3_bind_text(s->q_close, 3, council_outcome_reason(out), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_text(s->q_close, 4, council_outcome_json(out), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(s->q_close, 5, v[i].pid);
        sqlite3_bind_int64(s->q_close, 6, v[i].start);
        ok = sqlite3_step(s->q_close) == SQLITE_DONE;
        done(s->q_close);
        council__outcome_free(out);
    }
    if (ok && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        ok = 0;
    if (!ok && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_busy_timeout(s->db, 10000);
    for (i = 0; i < n; i++)
        council__free(v[i].run_id);
    council__free(v);
}

/* ---- open, close ----------------------------------------------------------
 */

/*
 * The statements on runs, for both schema versions: version 1 has no
 * owner or emitted columns, which read as NULL (an owner never known, so
 * never closed).  A run without an outcome whose owner is gone
 * (council_owner_lost, registered on the connection) lists as crashed,
 * not running, whether or not this handle may write that down.
 */
#define OWNER_V2 "owner_host, owner_pid, owner_start, owner_boot"
#define OWNER_V1 "NULL, NULL, NULL, NULL"
#define RUNS_SQL(EMITTED, OWNER)                                               \
    "SELECT run_id, council, question, started_us, ended_us, outcome,"         \
    " events, strategy, reason, " EMITTED ", " OWNER " FROM runs"              \
    " WHERE (?1 IS NULL OR council = ?1)"                                      \
    " AND (?2 IS NULL OR outcome = ?2"                                         \
    " OR (?2 = 'running' AND outcome IS NULL"                                  \
    " AND NOT council_owner_lost(" OWNER "))"                                  \
    " OR (?2 = 'crashed' AND outcome IS NULL"                                  \
    " AND council_owner_lost(" OWNER ")))"                                     \
    " AND started_us >= ?3"                                                    \
    " ORDER BY started_us DESC, rowid DESC LIMIT ?4"
#define RUN_SQL(EMITTED, OWNER)                                                \
    "SELECT run_id, council, question, strategy, started_us, ended_us,"        \
    " outcome, reason, outcome_json, events, " EMITTED ", " OWNER              \
    " FROM runs WHERE run_id = ?1"
static const char *const runs_sql[2] = {RUNS_SQL("NULL", OWNER_V1),
                                        RUNS_SQL("emitted", OWNER_V2)};
static const char *const run_sql[2] = {RUN_SQL("NULL", OWNER_V1),
                                       RUN_SQL("emitted", OWNER_V2)};
/* The runs a closer looks at (version 2 only; the runs_open index). */
static const char open_runs_sql[] =
    "SELECT run_id, " OWNER_V2 " FROM runs"
    " WHERE outcome IS NULL AND owner_host = ?1";
static const char close_run_sql[] =
    "UPDATE runs SET ended_us = ?2, outcome = 'crashed', reason = ?3,"
    " outcome_json = ?4 WHERE run_id = ?1 AND outcome IS NULL"
    " AND owner_pid = ?5 AND owner_start = ?6";
static const char started_sql[] =
    "SELECT json FROM events WHERE run_id = ?1 AND seq = 1";
static const char events_sql[] = "SELECT seq, json FROM events"
                                 " WHERE run_id = ?1 AND seq > ?2"
                                 " ORDER BY seq";
static const char del_events_sql[] = "DELETE FROM events WHERE run_id = ?1";
static const char del_run_sql[] = "DELETE FROM runs WHERE run_id = ?1";

void
council_store_close(council_store *s)
{
    size_t i;

    if (s == NULL)
        return;
    sqlite3_finalize(s->q_runs);
    sqlite3_finalize(s->q_run);
    sqlite3_finalize(s->q_started);
    sqlite3_finalize(s->q_events);
    sqlite3_finalize(s->q_del_events);
    sqlite3_finalize(s->q_del_run);
    sqlite3_finalize(s->q_open);
    sqlite3_finalize(s->q_close);
    sqlite3_close(s->db); /* every statement is finalized: it closes */
    for (i = 0; i < s->n_events; i++)
        council_event_unref(s->events[i]);
    council__free(s->events);
    json_decref(s->started);
    json_decref(s->outcome);
    council__free(s->started_text);
    council__free(s->outcome_text);
    council__free(s->path);
    council__free(s);
}

council_err
council_store_open(const char *path, unsigned flags, council_store **out,
                   council_diag *diag)
{
    council_store *s = NULL;
    council_err rc;

    clear_diag(diag);
    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL ||
        (flags & ~(COUNCIL_STORE_READONLY | COUNCIL_STORE_DELETE_UNFINISHED)) !=
            0) {
        council__recorder_diag(diag, path, 0, "invalid argument");
        return COUNCIL_EINVAL;
    }
    s = council__calloc(1, sizeof(*s));
    if (s == NULL || (s->path = council__strdup(path)) == NULL) {
        council__free(s);
        council__recorder_diag(diag, path, 0, "out of memory");
        return COUNCIL_ENOMEM;
    }
    s->flags = flags;
    if (looks_like_jsonl(path)) {
        s->jsonl = 1;
        rc = council__store_load_jsonl(s, diag);
        if (rc == COUNCIL_OK)
            close_lost(s);
        goto out;
    }
    rc = open_db(path, (flags & COUNCIL_STORE_READONLY) != 0, &s->db,
                 &s->version, diag);
    if (rc != COUNCIL_OK)
        goto out;
    /* Every statement now: they fail to prepare unless the tables have
     * our columns. */
    if (sqlite3_create_function_v2(s->db, "council_owner_lost", 4, SQLITE_UTF8,
                                   s, owner_lost_fn, NULL, NULL,
                                   NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, runs_sql[s->version - 1], -1,
                           SQLITE_PREPARE_PERSISTENT, &s->q_runs,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, run_sql[s->version - 1], -1,
                           SQLITE_PREPARE_PERSISTENT, &s->q_run,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, started_sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &s->q_started, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, events_sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &s->q_events, NULL) != SQLITE_OK ||
        (!(flags & COUNCIL_STORE_READONLY) &&
         (sqlite3_prepare_v3(s->db, del_events_sql, -1,
                             SQLITE_PREPARE_PERSISTENT, &s->q_del_events,
                             NULL) != SQLITE_OK ||
          sqlite3_prepare_v3(s->db, del_run_sql, -1, SQLITE_PREPARE_PERSISTENT,
                             &s->q_del_run, NULL) != SQLITE_OK)) ||
        (s->version >= 2 && !(flags & COUNCIL_STORE_READONLY) &&
         (sqlite3_prepare_v3(s->db, open_runs_sql, -1,
                             SQLITE_PREPARE_PERSISTENT, &s->q_open,
                             NULL) != SQLITE_OK ||
          sqlite3_prepare_v3(s->db, close_run_sql, -1,
                             SQLITE_PREPARE_PERSISTENT, &s->q_close,
                             NULL) != SQLITE_OK))) {
        rc = fail_db(s->db, path, diag, "not a council store");
        goto out;
    }
    /* Whoever opens the store to read it closes the runs whose process
     * is gone (DISTRIBUTED.md 3). */
    close_lost(s);
out:
    if (rc != COUNCIL_OK) {
        council_store_close(s);
        return rc;
    }
    *out = s;
    return COUNCIL_OK;
}

/* ---- listing ---------------------------------------------------------- */

static int
known_outcome(const char *o)
{
    static const char *const names[] = {"ok", "error", "cancelled", "crashed",
                                        "running"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(o, names[i]) == 0)
            return 1;
    return 0;
}

council_err
council_store_runs(council_store *s, const council_store_query *q,
                   int (*cb)(const council_run_row *row, void *ud), void *ud,
                   council_diag *diag)
{
    council_store_query all;
    council_err rc = COUNCIL_OK;
    int src;

    clear_diag(diag);
    if (q == NULL) {
        memset(&all, 0, sizeof(all));
        q = &all;
    }
    if (s == NULL || cb == NULL ||
        (q->outcome != NULL && !known_outcome(q->outcome))) {
        council__recorder_diag(
            diag, s != NULL ? s->path : NULL, 0, "%s",
            q->outcome != NULL && !known_outcome(q->outcome)
                ? "unknown outcome (ok, error, cancelled, crashed, running)"
                : "invalid argument");
        return COUNCIL_EINVAL;
    }
    if (s->jsonl)
        return council__store_jsonl_runs(s, q, cb, ud, diag);
    if (s->in_runs) {
        council__recorder_diag(diag, s->path, 0,
                               "council_store_runs called from its callback");
        return COUNCIL_EBUSY;
    }
    sqlite3_bind_text(s->q_runs, 1, q->council, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->q_runs, 2, q->outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->q_runs, 3, q->since_us > 0 ? q->since_us : INT64_MIN);
    sqlite3_bind_int64(
        s->q_runs, 4,
        q->limit == 0 || q->limit > INT64_MAX ? -1 : (sqlite3_int64)q->limit);
    s->in_runs = 1;
    while ((src = sqlite3_step(s->q_runs)) == SQLITE_ROW) {
        council_run_row row;
        char reason[64];

        memset(&row, 0, sizeof(row));
        row.run_id = (const char *)sqlite3_column_text(s->q_runs, 0);
        row.council = (const char *)sqlite3_column_text(s->q_runs, 1);
        row.question = (const char *)sqlite3_column_text(s->q_runs, 2);
        row.started_us = sqlite3_column_int64(s->q_runs, 3);
        row.ended_us = sqlite3_column_int64(s->q_runs, 4);
        row.outcome = (const char *)sqlite3_column_text(s->q_runs, 5);
        row.events = (uint64_t)sqlite3_column_int64(s->q_runs, 6);
        row.strategy = (const char *)sqlite3_column_text(s->q_runs, 7);
        row.reason = (const char *)sqlite3_column_text(s->q_runs, 8);
        row.events_emitted = (uint64_t)sqlite3_column_int64(s->q_runs, 9);
        if (row.run_id == NULL)
            continue; /* a damaged row; the key is never NULL otherwise */
        if (row.outcome == NULL) {
            council__owner o;

            owner_from_columns(s->q_runs, 10, &o);
            if (council__owner_check(&o) == COUNCIL__OWNER_LOST) {
                /* As the closer will record it. */
                s->saw_lost = 1;
                row.outcome = "crashed";
                row.reason =
                    council__store_lost_reason(o.pid, reason, sizeof(reason));
                row.ended_us = council__now_us();
                row.events_emitted = 0;
            }
        }
        if (cb(&row, ud) != 0) {
            src = SQLITE_DONE;
            break;
        }
    }
    s->in_runs = 0;
    if (src != SQLITE_DONE)
        rc = fail_db(s->db, s->path, diag, "cannot read the runs");
    done(s->q_runs);
    if (s->saw_lost)
        close_lost(s);
    return rc;
}

council_err
council_store_list(const char *path, size_t limit,
                   int (*cb)(const council_run_row *row, void *ud), void *ud,
                   council_diag *diag)
{
    council_store_query q;
    council_store *s = NULL;
    council_err rc;

    clear_diag(diag);
    if (path == NULL || cb == NULL)
        return COUNCIL_EINVAL;
    rc = council_store_open(path, COUNCIL_STORE_READONLY, &s, diag);
    if (rc != COUNCIL_OK)
        return rc;
    memset(&q, 0, sizeof(q));
    q.limit = limit;
    rc = council_store_runs(s, &q, cb, ud, diag);
    council_store_close(s);
    return rc;
}

/* ---- one run's record ------------------------------------------------- */

/*
 * Method: the record is spliced from the stored texts.  The run_started
 * event and the outcome are checked by the scanner (json_scan.c) and their
 * members copied as they are, with the record's own fields (which win over
 * any stored member of the same name) written around them; no JSON tree
 * is built.  Keys are compared as written (the renderer never escapes the
 * letters of a key).
 */

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static void
put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap != 0 ? b->cap : 2048;
        char *np;

        while (cap - b->n < n + 1)
            cap *= 2;
        np = council__realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void
put_s(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The length of the UTF-8 sequence at p (lead byte >= 0x80), or 0 if it
 * is not a valid one. */
static size_t
utf8_len(const unsigned char *p)
{
    unsigned cp, min;
    size_t k, j;

    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        k = 1, cp = p[0] & 0x1F, min = 0x80;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        k = 2, cp = p[0] & 0x0F, min = 0x800;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        k = 3, cp = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    for (j = 1; j <= k; j++) {
        if ((p[j] & 0xC0) != 0x80) /* the NUL stops here too */
            return 0;
        cp = (cp << 6) | (p[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k + 1;
}

/* s as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void
put_json_string(buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];

    put(b, "\"", 1);
    while (*p != '\0') {
        size_t run = 0;

        /* Plain ASCII in one copy. */
        while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
               p[run] != '\\')
            run++;
        put(b, (const char *)p, run);
        p += run;
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p++;
            put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p++);
            put_s(b, esc);
        } else {
            size_t k = utf8_len(p);

            if (k > 0)
                put(b, (const char *)p, k);
            else
                put_s(b, "\xef\xbf\xbd");
            p += k > 0 ? k : 1;
        }
    }
    put(b, "\"", 1);
}

static void
put_key(buf *b, const char *key)
{
    put(b, ",\"", 2);
    put_s(b, key);
    put(b, "\":", 2);
}

static void
put_int(buf *b, int64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%lld", (long long)v);
    put_s(b, num);
}

static void
put_time(buf *b, const char *key_us, const char *key, int has, int64_t us)
{
    char ts[48];

    put_key(b, key_us);
    if (!has) {
        put_s(b, "null");
        put_key(b, key);
        put_s(b, "null");
        return;
    }
    put_int(b, us);
    council__format_ts(us, ts, sizeof(ts));
    put_key(b, key);
    put_json_string(b, ts);
}

static int
key_is(const council__json_member *m, const char *key)
{
    return m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0;
}

static int
key_in(const council__json_member *m, const char *const *keys)
{
    for (; *keys != NULL; keys++)
        if (key_is(m, *keys))
            return 1;
    return 0;
}

/* The record's own fields, written by the builder whatever is stored. */
static const char *const own_keys[] = {
    "type",       "run_id",         "seq",        "ts",      "council",
    "strategy",   "question",       "started_us", "started", "ended_us",
    "ended",      "duration_ms",    "outcome",    "events",  "owner",
    "incomplete", "events_emitted", NULL};
/* The outcome's fields, which win over run_started's. */
static const char *const outcome_keys[] = {"reason", "errors", "result", NULL};

/* Keys copied from run_started that the outcome's must not repeat; past
 * this many (no run_started has a tenth of it) they are not tracked. */
#define MAX_SEEN 64

typedef struct rec_splice {
    buf *b;
    council__json_member found[3]; /* council, strategy, question */
    council__json_member seen[MAX_SEEN];
    size_t n_seen;
} rec_splice;

static int
find_names(const council__json_member *m, void *ud)
{
    static const char *const names[] = {"council", "strategy", "question"};
    rec_splice *sp = ud;
    size_t i;

    for (i = 0; i < 3; i++)
        if (key_is(m, names[i]) && m->value[0] == '"')
            sp->found[i] = *m;
    return 0;
}

static void
copy_member(buf *b, const council__json_member *m)
{
    put(b, ",\"", 2);
    put(b, m->key, m->key_len);
    put(b, "\":", 2);
    put(b, m->value, m->value_len);
}

static int
copy_started(const council__json_member *m, void *ud)
{
    rec_splice *sp = ud;

    if (key_in(m, own_keys) || key_in(m, outcome_keys))
        return 0;
    copy_member(sp->b, m);
    if (sp->n_seen < MAX_SEEN)
        sp->seen[sp->n_seen++] = *m;
    return 0;
}

static int
copy_outcome(const council__json_member *m, void *ud)
{
    rec_splice *sp = ud;
    size_t i;

    if (key_in(m, own_keys))
        return 0;
    for (i = 0; i < sp->n_seen; i++)
        if (sp->seen[i].key_len == m->key_len &&
            memcmp(sp->seen[i].key, m->key, m->key_len) == 0)
            return 0;
    copy_member(sp->b, m);
    return 0;
}

static int
check_only(const council__json_member *m, void *ud)
{
    (void)m;
    (void)ud;
    return 0;
}

static void
put_field(buf *b, const char *key, const council__json_member *found,
          const char *row)
{
    put_key(b, key);
    if (found->key != NULL)
        put(b, found->value, found->value_len);
    else if (row != NULL)
        put_json_string(b, row);
    else
        put_s(b, "null");
}

council_err
council__store_record(const council__run_src *r, const char *path,
                      char **json_out, council_diag *diag)
{
    buf b = {0};
    rec_splice sp;
    int ended = r->outcome != NULL;

    memset(&sp, 0, sizeof(sp));
    sp.b = &b;
    if (r->started_json != NULL &&
        council__json_members(r->started_json, r->started_len, find_names,
                              &sp) < 0) {
        council__recorder_diag(diag, path, 0,
                               "run %s: its run_started event (seq 1) is "
                               "damaged: not a JSON object",
                               r->run_id);
        return COUNCIL_EIO;
    }
    if (r->outcome_json != NULL &&
        council__json_members(r->outcome_json, r->outcome_len, check_only,
                              NULL) < 0) {
        council__recorder_diag(diag, path, 0,
                               "run %s: its outcome is damaged: not a JSON "
                               "object",
                               r->run_id);
        return COUNCIL_EIO;
    }
    put_s(&b, "{\"run_id\":");
    put_json_string(&b, r->run_id);
    /* From run_started when it is there (the row copies it), else the row. */
    put_field(&b, "council", &sp.found[0], r->council);
    put_field(&b, "strategy", &sp.found[1], r->strategy);
    put_field(&b, "question", &sp.found[2], r->question);
    /* The rest of run_started, in its order: messages, members, chairman,
     * seed, and what later versions add. */
    if (r->started_json != NULL)
        (void)council__json_members(r->started_json, r->started_len,
                                    copy_started, &sp);
    put_time(&b, "started_us", "started", 1, r->started_us);
    put_time(&b, "ended_us", "ended", ended, r->ended_us);
    put_key(&b, "duration_ms");
    if (ended && r->ended_us >= r->started_us)
        put_int(&b, (r->ended_us - r->started_us) / 1000);
    else
        put_s(&b, "null");
    put_key(&b, "outcome");
    put_json_string(&b, ended ? r->outcome : "running");
    /* The outcome's own fields: reason, errors, result. */
    if (r->outcome_json != NULL)
        (void)council__json_members(r->outcome_json, r->outcome_len,
                                    copy_outcome, &sp);
    put_key(&b, "events");
    put_int(&b, (int64_t)r->events);
    /* What the record holds: all the run emitted, or not. */
    put_key(&b, "events_emitted");
    if (r->has_emitted)
        put_int(&b, (int64_t)r->emitted);
    else
        put_s(&b, "null");
    put_key(&b, "incomplete");
    put_s(&b, r->has_emitted && r->emitted > r->events ? "true" : "false");
    put_key(&b, "owner");
    if (r->owner != NULL) {
        put_s(&b, "{\"host\":");
        put_json_string(&b, r->owner->host);
        put_key(&b, "pid");
        put_int(&b, r->owner->pid);
        put_key(&b, "start");
        if (r->owner->start >= 0)
            put_int(&b, r->owner->start);
        else
            put_s(&b, "null");
        put_key(&b, "boot");
        if (r->owner->boot[0] != '\0')
            put_json_string(&b, r->owner->boot);
        else
            put_s(&b, "null");
        put(&b, "}", 1);
    } else {
        put_s(&b, "null");
    }
    put(&b, "}", 1);
    if (b.oom) {
        council__free(b.p);
        council__recorder_diag(diag, path, 0, "out of memory");
        return COUNCIL_ENOMEM;
    }
    *json_out = b.p;
    return COUNCIL_OK;
}

council_err
council_store_run(council_store *s, const char *run_id, char **json_out,
                  council_diag *diag)
{
    council__run_src r;
    council_outcome *lost = NULL;
    council__owner owner;
    council_err rc = COUNCIL_OK;
    int src;

    clear_diag(diag);
    if (json_out != NULL)
        *json_out = NULL;
    if (s == NULL || run_id == NULL || json_out == NULL) {
        council__recorder_diag(diag, s != NULL ? s->path : NULL, 0,
                               "invalid argument");
        return COUNCIL_EINVAL;
    }
    if (s->jsonl)
        return council__store_jsonl_run(s, run_id, json_out, diag);
    memset(&r, 0, sizeof(r));
    sqlite3_bind_text(s->q_run, 1, run_id, -1, SQLITE_STATIC);
    src = sqlite3_step(s->q_run);
    if (src == SQLITE_DONE) {
        rc = COUNCIL_ENOTFOUND;
        council__recorder_diag(diag, s->path, 0, "no run %s in %s", run_id,
                               s->path);
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = fail_db(s->db, s->path, diag, "cannot read the runs");
        goto out;
    }
    r.run_id = run_id;
    r.council = (const char *)sqlite3_column_text(s->q_run, 1);
    r.question = (const char *)sqlite3_column_text(s->q_run, 2);
    r.strategy = (const char *)sqlite3_column_text(s->q_run, 3);
    r.started_us = sqlite3_column_int64(s->q_run, 4);
    r.ended_us = sqlite3_column_int64(s->q_run, 5);
    r.outcome = (const char *)sqlite3_column_text(s->q_run, 6);
    r.events = (uint64_t)sqlite3_column_int64(s->q_run, 9);
    r.has_emitted = r.outcome != NULL &&
                    sqlite3_column_type(s->q_run, 10) == SQLITE_INTEGER;
    r.emitted = (uint64_t)sqlite3_column_int64(s->q_run, 10);
    owner_from_columns(s->q_run, 11, &owner);
    if (owner.host[0] != '\0' || owner.pid != 0)
        r.owner = &owner;
    if (r.outcome == NULL &&
        council__owner_check(&owner) == COUNCIL__OWNER_LOST) {
        /* Its process is gone: crashed, as the closer records it. */
        lost = council__store_lost_outcome(owner.pid);
        if (lost == NULL) {
            rc = COUNCIL_ENOMEM;
            council__recorder_diag(diag, s->path, 0, "out of memory");
            goto out;
        }
        s->saw_lost = 1;
        r.outcome = "crashed";
        r.ended_us = council__now_us();
        r.outcome_json = council_outcome_json(lost);
        r.outcome_len = strlen(r.outcome_json);
    } else if (r.outcome != NULL &&
               sqlite3_column_type(s->q_run, 8) != SQLITE_NULL) {
        r.outcome_json = (const char *)sqlite3_column_text(s->q_run, 8);
        r.outcome_len = (size_t)sqlite3_column_bytes(s->q_run, 8);
    }
    sqlite3_bind_text(s->q_started, 1, run_id, -1, SQLITE_STATIC);
    src = sqlite3_step(s->q_started);
    if (src == SQLITE_ROW) {
        r.started_json = (const char *)sqlite3_column_text(s->q_started, 0);
        r.started_len = (size_t)sqlite3_column_bytes(s->q_started, 0);
        if (r.started_json == NULL)
            r.started_json = "";
    } else if (src != SQLITE_DONE) {
        rc = fail_db(s->db, s->path, diag, "cannot read the events");
        goto out;
    }
    rc = council__store_record(&r, s->path, json_out, diag);
out:
    /* The columns' texts live until the reset: the record is built. */
    done(s->q_run);
    done(s->q_started);
    council__outcome_free(lost);
    if (s->saw_lost)
        close_lost(s);
    return rc;
}

/* ---- events ------------------------------------------------------------ */

/* Does the store hold a row for run_id?  1 yes, 0 no, -1 on error. */
static int
row_exists(council_store *s, const char *run_id)
{
    int src, r;

    sqlite3_bind_text(s->q_run, 1, run_id, -1, SQLITE_STATIC);
    src = sqlite3_step(s->q_run);
    r = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : -1;
    done(s->q_run);
    return r;
}

council_err
council_store_events(council_store *s, const char *run_id, uint64_t after_seq,
                     int (*cb)(council_event *ev, void *ud), void *ud,
                     council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    uint64_t expect = after_seq + 1, n = 0;
    council_diag pd;
    int src, e;

    clear_diag(diag);
    if (s == NULL || run_id == NULL || cb == NULL) {
        council__recorder_diag(diag, s != NULL ? s->path : NULL, 0,
                               "invalid argument");
        return COUNCIL_EINVAL;
    }
    if (s->jsonl)
        return council__store_jsonl_events(s, run_id, after_seq, cb, ud, diag);
    if (s->in_events) {
        council__recorder_diag(diag, s->path, 0,
                               "council_store_events called from its "
                               "callback");
        return COUNCIL_EBUSY;
    }
    sqlite3_bind_text(s->q_events, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->q_events, 2,
                       after_seq > INT64_MAX ? INT64_MAX
                                             : (sqlite3_int64)after_seq);
    s->in_events = 1;
    while ((src = sqlite3_step(s->q_events)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s->q_events, 0);
        council_event *ev = NULL;
        int stop;

        if (seq != expect) {
            rc = COUNCIL_EIO;
            council__recorder_diag(diag, s->path, 0,
                                   "run %s: seq %llu follows seq %llu "
                                   "(events are missing)",
                                   run_id, (unsigned long long)seq,
                                   (unsigned long long)(expect - 1));
            break;
        }
        rc = council_event_parse(
            (const char *)sqlite3_column_blob(s->q_events, 1),
            (size_t)sqlite3_column_bytes(s->q_events, 1), &ev, &pd);
        if (rc == COUNCIL_ENOMEM) {
            council__recorder_diag(diag, s->path, 0, "out of memory");
            break;
        }
        if (rc != COUNCIL_OK || council_event_seq(ev) != seq ||
            strcmp(council_event_run_id(ev), run_id) != 0) {
            council__recorder_diag(
                diag, s->path, 0, "run %s: event seq %llu is damaged: %s",
                run_id, (unsigned long long)seq,
                rc != COUNCIL_OK               ? pd.msg
                : council_event_seq(ev) != seq ? "it holds another seq"
                                               : "it holds another run's id");
            council_event_unref(ev);
            rc = COUNCIL_EIO;
            break;
        }
        n++;
        expect++;
        stop = cb(ev, ud);
        council_event_unref(ev);
        if (stop != 0) {
            src = SQLITE_DONE;
            break;
        }
    }
    s->in_events = 0;
    if (rc == COUNCIL_OK && src != SQLITE_DONE)
        rc = fail_db(s->db, s->path, diag, "cannot read the events");
    done(s->q_events);
    if (rc == COUNCIL_OK && n == 0) {
        /* No event: an unknown run, or nothing after after_seq. */
        e = row_exists(s, run_id);
        if (e < 0) {
            rc = fail_db(s->db, s->path, diag, "cannot read the runs");
        } else if (e == 0) {
            rc = COUNCIL_ENOTFOUND;
            council__recorder_diag(diag, s->path, 0, "no run %s in %s", run_id,
                                   s->path);
        }
    }
    return rc;
}

/* ---- delete ---------------------------------------------------------------
 */

council_err
council_store_delete(council_store *s, const char *run_id, council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    int src;

    clear_diag(diag);
    if (s == NULL || run_id == NULL) {
        council__recorder_diag(diag, s != NULL ? s->path : NULL, 0,
                               "invalid argument");
        return COUNCIL_EINVAL;
    }
    if (s->jsonl) {
        council__recorder_diag(diag, s->path, 0,
                               "a jsonl record is a file of its own: "
                               "remove the file to delete it");
        return COUNCIL_EINVAL;
    }
    if (s->flags & COUNCIL_STORE_READONLY) {
        council__recorder_diag(diag, s->path, 0,
                               "the store was opened read-only");
        return COUNCIL_EINVAL;
    }
    if (s->in_runs || s->in_events) {
        council__recorder_diag(diag, s->path, 0,
                               "council_store_delete called while the "
                               "handle is listing");
        return COUNCIL_EBUSY;
    }
    /* The check and the deletes in one write transaction: a recorder
     * cannot finalize (or start) the run in between. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_db(s->db, s->path, diag, "cannot lock the store");
        goto out;
    }
    sqlite3_bind_text(s->q_run, 1, run_id, -1, SQLITE_STATIC);
    src = sqlite3_step(s->q_run);
    if (src == SQLITE_DONE) {
        rc = COUNCIL_ENOTFOUND;
        council__recorder_diag(diag, s->path, 0, "no run %s in %s", run_id,
                               s->path);
    } else if (src != SQLITE_ROW) {
        rc = fail_db(s->db, s->path, diag, "cannot read the runs");
    } else if (sqlite3_column_type(s->q_run, 6) == SQLITE_NULL &&
               !(s->flags & COUNCIL_STORE_DELETE_UNFINISHED)) {
        council__owner o;

        /* A run whose process is gone may go: nothing writes to it. */
        owner_from_columns(s->q_run, 11, &o);
        switch (council__owner_check(&o)) {
        case COUNCIL__OWNER_LOST:
            break;
        case COUNCIL__OWNER_ALIVE:
            rc = COUNCIL_EBUSY;
            council__recorder_diag(diag, s->path, 0,
                                   "run %s has no outcome: it is running "
                                   "(pid %lld)",
                                   run_id, (long long)o.pid);
            break;
        case COUNCIL__OWNER_FOREIGN:
            rc = COUNCIL_EBUSY;
            council__recorder_diag(diag, s->path, 0,
                                   "run %s has no outcome: it may still be "
                                   "running on %s (pid %lld)",
                                   run_id, o.host, (long long)o.pid);
            break;
        case COUNCIL__OWNER_UNKNOWN:
            rc = COUNCIL_EBUSY;
            council__recorder_diag(diag, s->path, 0,
                                   "run %s has no outcome: it may still be "
                                   "running",
                                   run_id);
            break;
        }
    }
    done(s->q_run);
    if (rc != COUNCIL_OK)
        goto out;
    sqlite3_bind_text(s->q_del_events, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->q_del_run, 1, run_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s->q_del_events) != SQLITE_DONE ||
        sqlite3_step(s->q_del_run) != SQLITE_DONE ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail_db(s->db, s->path, diag, "cannot delete");
out:
    done(s->q_del_events);
    done(s->q_del_run);
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- replay's check --------------------------------------------------- */

int
council__recorder_has_run(const council_recorder_ops *ops, void *args,
                          const char *run_id, char *where, size_t size)
{
    const char *path = args;
    council_store *s = NULL;
    struct stat sb;
    int r = 0;

    if (path == NULL || run_id == NULL)
        return 0;
    if (ops == council_recorder_jsonl()) {
        snprintf(where, size, "%s/%s.jsonl", path, run_id);
        return council__os.stat(where, &sb) == 0;
    }
    if (ops != council_recorder_sqlite() ||
        council_store_open(path, COUNCIL_STORE_READONLY, &s, NULL) !=
            COUNCIL_OK)
        return 0;
    if (!s->jsonl && row_exists(s, run_id) == 1) {
        snprintf(where, size, "%s", path);
        r = 1;
    }
    council_store_close(s);
    return r;
}

/* ---- the conversation of a stored run ------------------------------------ */

/* The JSON of run_id's event of the given type (the first one), parsed, in
 * *out; NULL if the run has none. */
static council_err
load_event(sqlite3 *db, const char *path, const char *run_id, const char *type,
           json_t **out, council_diag *diag)
{
    sqlite3_stmt *st = NULL;
    council_err rc = COUNCIL_OK;
    json_error_t je;
    int src;

    *out = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT json FROM events WHERE run_id = ?1"
                           " AND type = ?2 ORDER BY seq LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail_db(db, path, diag, "not a council store");
        goto out;
    }
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        goto out;
    if (src != SQLITE_ROW) {
        rc = fail_db(db, path, diag, "cannot read the events");
        goto out;
    }
    *out = json_loadb((const char *)sqlite3_column_blob(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0), 0, &je);
    if (*out == NULL) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "run %s: its %s event is not "
                               "JSON: %s",
                               run_id, type, je.text);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Does the store hold a row for run_id?  1 yes, 0 no, -1 on error. */
static int
run_exists(sqlite3 *db, const char *run_id)
{
    sqlite3_stmt *st = NULL;
    int src, r = -1;

    if (sqlite3_prepare_v2(db, "SELECT 1 FROM runs WHERE run_id = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        r = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return r;
}

/* Set m to copies of role and content; -1 if memory ran out. */
static int
set_message(council_message *m, const char *role, const char *content,
            size_t content_len)
{
    char *r = council__strdup(role);
    char *c = council__malloc(content_len + 1);

    if (r == NULL || c == NULL) {
        council__free(r);
        council__free(c);
        return -1;
    }
    memcpy(c, content, content_len);
    c[content_len] = '\0';
    m->role = r;
    m->content = c;
    return 0;
}

council_err
council_store_conversation(const char *path, const char *run_id,
                           council_message **out, size_t *n, council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    sqlite3 *db = NULL;
    json_t *started = NULL, *completed = NULL, *msgs, *answer, *v;
    council_message *m = NULL;
    size_t count = 0, i;
    int version;

    clear_diag(diag);
    if (out != NULL)
        *out = NULL;
    if (n != NULL)
        *n = 0;
    if (path == NULL || run_id == NULL || out == NULL || n == NULL) {
        council__recorder_diag(diag, path != NULL ? path : "", 0,
                               "invalid argument");
        return COUNCIL_EINVAL;
    }
    rc = open_db(path, 1, &db, &version, diag);
    if (rc != COUNCIL_OK)
        goto out;
    rc = load_event(db, path, run_id, "run_started", &started, diag);
    if (rc != COUNCIL_OK)
        goto out;
    if (started == NULL) {
        int e = run_exists(db, run_id);

        if (e < 0) {
            rc = fail_db(db, path, diag, "cannot read the runs");
        } else if (e == 0) {
            rc = COUNCIL_ENOTFOUND;
            council__recorder_diag(diag, path, 0, "no run %s in the store",
                                   run_id);
        } else {
            rc = COUNCIL_EINVAL;
            council__recorder_diag(diag, path, 0,
                                   "run %s did not complete; "
                                   "it has no answer to continue from",
                                   run_id);
        }
        goto out;
    }
    rc = load_event(db, path, run_id, "run_completed", &completed, diag);
    if (rc != COUNCIL_OK)
        goto out;
    answer = json_object_get(json_object_get(completed, "result"), "answer");
    if (!json_is_string(answer)) {
        rc = COUNCIL_EINVAL;
        council__recorder_diag(diag, path, 0,
                               "run %s did not complete; it "
                               "has no answer to continue from",
                               run_id);
        goto out;
    }
    msgs = json_object_get(started, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "run %s: its run_started "
                               "event has no messages",
                               run_id);
        goto out;
    }
    m = council__calloc(json_array_size(msgs) + 1, sizeof(*m));
    if (m == NULL) {
        rc = COUNCIL_ENOMEM;
        council__recorder_diag(diag, path, 0, "out of memory");
        goto out;
    }
    json_array_foreach (msgs, i, v) {
        json_t *role = json_object_get(v, "role");
        json_t *content = json_object_get(v, "content");

        if (!json_is_string(role) || !json_is_string(content)) {
            rc = COUNCIL_EIO;
            council__recorder_diag(diag, path, 0,
                                   "run %s: message %zu of "
                                   "its run_started event is not "
                                   "{role, content}",
                                   run_id, i);
            goto out;
        }
        if (set_message(&m[count], json_string_value(role),
                        json_string_value(content),
                        json_string_length(content)) != 0) {
            rc = COUNCIL_ENOMEM;
            council__recorder_diag(diag, path, 0, "out of memory");
            goto out;
        }
        count++;
    }
    if (set_message(&m[count], "assistant", json_string_value(answer),
                    json_string_length(answer)) != 0) {
        rc = COUNCIL_ENOMEM;
        council__recorder_diag(diag, path, 0, "out of memory");
        goto out;
    }
    count++;
    *out = m;
    *n = count;
    m = NULL;
out:
    council_store_conversation_free(m, count);
    json_decref(started);
    json_decref(completed);
    sqlite3_close(db);
    return rc;
}

void
council_store_conversation_free(council_message *msgs, size_t n)
{
    if (msgs == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        council__free((void *)msgs[i].role);
        council__free((void *)msgs[i].content);
    }
    council__free(msgs);
}
