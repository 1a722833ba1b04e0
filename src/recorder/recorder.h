/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the built-in recorders and their readers: the jsonl
 * run-file checker (used by the run store, src/recorder/store*.c, and by
 * tests), the sqlite store's schema version, and the check replay makes
 * before it records a run again.  The recorders themselves are reached
 * through council_recorder_jsonl() and council_recorder_sqlite() in
 * council.h.
 */
#ifndef COUNCIL_RECORDER_H
#define COUNCIL_RECORDER_H

#include <jansson.h>
#include <stdint.h>

#include "council.h"
#include "os/owner.h"

/* The schema version of the sqlite store (PRAGMA user_version), and its
 * PRAGMA application_id ("Cncl").  Version 2 added the runs' owner
 * (owner_host, owner_pid, owner_start, owner_boot) and emitted; recorders
 * upgrade a version 1 store, readers read both. */
#define COUNCIL__STORE_VERSION 2
#define COUNCIL__STORE_APP_ID 0x436e636c

/* What council__jsonl_read found in a run file. */
typedef struct council__jsonl_report {
    uint64_t events;  /* leading event lines that were valid, seq 1..n */
    int has_outcome;  /* the file ends with exactly one outcome line */
    int torn;         /* the last line has no newline (a cut write) */
    char outcome[16]; /* the outcome's kind ("ok", ...), or "" */
    char run_id[72];  /* the run id of the first event, or "" */
    /* The line of a problem other than a torn last line or a missing
     * outcome line (bad JSON, not an event, a seq gap, another run's
     * event, a line after the outcome), or 0: the record is damaged there,
     * not merely cut short. */
    int bad_line;
    /* The owner line ({"owner":{...}}, the first line of a file written
     * by this version; older files have none). */
    int has_owner;
    council__owner owner;
    /* "events_emitted" of the outcome line (written when the file lacks
     * events the run emitted), else 0. */
    uint64_t emitted;
    /* The file's size, and the offset after its last newline. */
    uint64_t size, line_end;
} council__jsonl_report;

/*
 * Read and check a jsonl run file: every line is a JSON object; the first
 * may be the owner line ({"owner": {...}}, reported in rep, not passed to
 * on_line); the event lines carry one run_id and seq 1, 2, 3, ... without
 * gaps; the last line, and only it, is the outcome ({"outcome": ...}).
 * on_line (may be NULL) is called with each valid event and outcome
 * line's parsed object (borrowed) and line number; non-zero from it stops
 * the read with COUNCIL_ECANCELED.
 *
 * Returns COUNCIL_OK for a complete, valid file; COUNCIL_ENOTFOUND if there
 * is no such file; COUNCIL_EIO if it cannot be read; COUNCIL_ENOMEM if
 * memory ran out (rep holds what was read before); COUNCIL_EPARSE for
 * anything else, with diag (may be NULL) naming the line and the problem:
 * a torn last line, bad JSON, a seq gap, a line after the outcome, or a
 * missing outcome (an incomplete record).  rep (may be NULL) is filled in
 * every case with what was valid up to the problem.  Any thread.
 */
council_err council__jsonl_read(const char *path, council__jsonl_report *rep,
                                int (*on_line)(json_t *obj, int line, void *ud),
                                void *ud, council_diag *diag);

/*
 * Whether the built-in recorder ops (sqlite or jsonl, with its args: a
 * path) already holds a run run_id: the sqlite store has its row, or the
 * jsonl directory has ID.jsonl.  1 with where (size bytes) naming the
 * store or file; 0 otherwise, also when it cannot tell (a missing or
 * unreadable store: the recorder's init says what is wrong with it) and
 * for any other ops.  Any thread.
 */
int council__recorder_has_run(const council_recorder_ops *ops, void *args,
                              const char *run_id, char *where, size_t size);

/* Fill diag (may be NULL) with file and a formatted message; never
 * allocates. */
void council__recorder_diag(council_diag *diag, const char *file, int line,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
