/* SPDX-License-Identifier: MIT */
/*
 * The run store handle (council_store in council.h), shared by its SQLite
 * side (store.c) and its jsonl side (store_jsonl.c), and the builder of a
 * run's record JSON that both use, so a run reads the same from either.
 */
#ifndef COUNCIL_STORE_H
#define COUNCIL_STORE_H

#include <sqlite3.h>

#include "recorder/recorder.h"

struct council_store {
    char *path;
    unsigned flags;
    int jsonl; /* a jsonl record, read into memory at open */
    /* Guards against re-entry from a callback (the statement is busy). */
    int in_runs;
    int in_events;

    /* SQLite: the connection and its statements, prepared at open. */
    sqlite3 *db;
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
} council__run_src;

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
