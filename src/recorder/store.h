/* SPDX-License-Identifier: MIT */
/*
 * The run store handle (council_store in council.h), shared by its SQLite
 * side (store.c) and its jsonl side (store_jsonl.c), and the builder of a
 * run's record JSON that both use, so a run reads the same from either.
 */
#ifndef COUNCIL_STORE_H
#define COUNCIL_STORE_H

#include <sqlite3.h>

#include "os/owner.h"
#include "recorder/recorder.h"

struct council_store {
    char *path;
    unsigned flags;
    int jsonl; /* a jsonl record, read into memory at open */
    /* Guards against re-entry from a callback (the statement is busy). */
    int in_runs;
    int in_events;

    /* A reader met a run without an outcome whose owner is gone (the
     * council_owner_lost SQL function, or the jsonl record's owner): a
     * read-write handle closes such runs when the call is done. */
    int saw_lost;

    /* SQLite: the connection and its statements, prepared at open. */
    sqlite3 *db;
    int version;           /* the schema's, 1 or 2 */
    sqlite3_stmt *q_open;  /* runs without an outcome, by owner host */
    sqlite3_stmt *q_close; /* NULL when read-only or version 1 */
    sqlite3_stmt *q_runs;
    sqlite3_stmt *q_run;
    sqlite3_stmt *q_started;
    sqlite3_stmt *q_events;
    sqlite3_stmt *q_del_events; /* NULL when read-only */
    sqlite3_stmt *q_del_run;

    /* jsonl: the valid events (seq 1..n_events), the outcome line, and
     * what is wrong after the valid lines, if anything. */
    council_event **events;
    size_t n_events;
    json_t *started;    /* the first event's JSON object (run_started) */
    json_t *outcome;    /* the outcome line, or NULL (cut short) */
    char *started_text; /* both as compact JSON text, for the record */
    char *outcome_text;
    int damaged; /* a bad line follows the valid ones */
    council_diag damage;
    council__owner owner; /* from the first line; unknown if none */
    int has_owner;
    /* The file's size when read, and the end of its last whole line: a
     * closer appends the outcome line there, if the file is still so. */
    int64_t size, line_end;
    /* How many events the run emitted, when known: the outcome line's
     * "events_emitted" (the file lacks some), else the events it holds. */
    int has_emitted;
    uint64_t emitted;
    int closed_here; /* the outcome was made here (its owner is gone) */
};

/* What a run's record is built from (borrowed). */
typedef struct council__run_src {
    const char *run_id;
    const char *council, *question, *strategy; /* the row's, or NULL */
    int64_t started_us;
    int64_t ended_us;    /* meaningful when outcome is set */
    const char *outcome; /* the outcome's kind, or NULL: none recorded */
    /* The run_started event's JSON text, or NULL. */
    const char *started_json;
    size_t started_len;
    /* The outcome's JSON text ({"outcome":...,"reason","errors","result"}),
     * or NULL. */
    const char *outcome_json;
    size_t outcome_len;
    uint64_t events;
    /* The number of events the run emitted, when known (the recorder
     * finalized): more than events means the record lost some. */
    int has_emitted;
    uint64_t emitted;
    const council__owner *owner; /* NULL: not recorded */
} council__run_src;

/* The reason of a run closed because its owner is gone: "process lost:
 * pid N", in buf. */
const char *council__store_lost_reason(int64_t pid, char *buf, size_t size);

/* The outcome a reader gives a run whose owner is gone:
 * crashed("process lost: pid N").  Free with council__outcome_free; NULL
 * when memory ran out. */
council_outcome *council__store_lost_outcome(int64_t pid);

/* The jsonl side of closing: append the outcome line to s's file (a
 * read-write handle, whose record's owner is gone).  Best effort. */
void council__store_jsonl_close(council_store *s);

/* The record JSON of docs/storage.md into *json_out (council_free).
 * COUNCIL_EIO when a stored text is not a JSON object (diag names it). */
council_err council__store_record(const council__run_src *r, const char *path,
                                  char **json_out, council_diag *diag);

/* The jsonl side: load s->path into s at open, and the calls on it. */
council_err council__store_load_jsonl(council_store *s, council_diag *diag);
council_err
council__store_jsonl_runs(council_store *s, const council_store_query *q,
                          int (*cb)(const council_run_row *row, void *ud),
                          void *ud, council_diag *diag);
council_err council__store_jsonl_run(council_store *s, const char *run_id,
                                     char **json_out, council_diag *diag);
council_err council__store_jsonl_events(council_store *s, const char *run_id,
                                        uint64_t after_seq,
                                        int (*cb)(council_event *ev, void *ud),
                                        void *ud, council_diag *diag);

#endif
