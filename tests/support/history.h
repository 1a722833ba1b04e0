/* SPDX-License-Identifier: MIT */
/*
 * The history of a fault test (RELIABILITY.md "Oracle first", Jepsen
 * style): a JSONL file that the test, the engine's emit tap and the
 * history recorders append to while the test runs, and that one checker
 * (check_history.h) reads at the end.  Each record is one line written
 * with one write() to a descriptor opened O_APPEND, so lines from the
 * loop thread, the recorder pool and the test thread never interleave,
 * and everything written survives the test process dying (no buffer).
 *
 * Records: one JSON object per line.  Every record has "r" (its kind) and
 * "t" (CLOCK_MONOTONIC microseconds, comparable between processes of one
 * boot); "run" is a run id, "rec" a recorder id (an integer unique within
 * the file, assigned by hist_rec_init).  Strings are JSON-escaped; bytes
 * >= 0x80 are written as \u00XX so that every line is valid JSON.
 *
 *   hist       {"r":"hist","t","v":1,"pid","wall_us","name"}   first line
 *   note       {"r":"note","t","key","value"}    e.g. key "seed"
 *   start      {"r":"start","t","tag","run"}     run: caller's id or null
 *   start_ack  {"r":"start_ack","t","tag","run","err"}
 *              err: the council_err name ("COUNCIL_OK", "COUNCIL_EREFUSED")
 *   init       {"r":"init","t","run","rec","ok":true|false,"why"}
 *   emit       {"r":"emit","t","run","seq","type"}; a terminal event adds
 *              "class" ("ok", "cancelled" or "error", classified from its
 *              JSON as DESIGN 2.4 says) and, for "error", "reason" (the
 *              first error's message)
 *   deliver    {"r":"deliver","t","run","rec","seq","type","rc"}
 *   finalize   {"r":"finalize","t","run","rec","kind","reason"}
 *              kind: council_outcome_kind_name; reason: null or the text
 *   outcome    {"r":"outcome","t","run","kind","reason"}  what
 *              council_run_wait gave the test
 *   fault      {"r":"fault","t","run","kind","at_seq","expect","reason",
 *              "by"}  run: an id, or "*" for every run started before it
 *              (an engine shutdown); at_seq: the last seq the injector
 *              had seen (0 = none or unknown: a run that crashed by it
 *              must have emitted at least that many); expect: see below
 *   bound      {"r":"bound","t","what","ms","limit_ms"}  a liveness bound
 *   resources  {"r":"resources","t","fds_before","fds_after","children"}
 *
 * Fault kinds and what they must produce (expect, reason).  Crash kinds:
 *   sigkill  "crashed" "signal SIGKILL"      sigsegv "crashed" "signal SIGSEGV"
 *   abort    "crashed" "signal SIGABRT"      exit    "crashed" "exit status N"
 *   sigstop  "crashed" "no heartbeat for *"  lease   "crashed" "worker lost"
 *   shutdown "crashed" "shutdown"            host_exit "crashed" (any reason:
 *            a scripted in-process host ending without a terminal event)
 *   protocol "crashed" "host protocol error: *" (a child's bytes that the
 *            parent refuses: garbage, a frame over the limit, a bad seq)
 *   socket_closed "crashed" "host closed its socket*" (and lived on)
 * A reason ending in '*' matches every reason with that prefix; a fault
 * may give a longer prefix or the exact reason.  With "crashed", a
 * terminal event emitted before the crash wins (the outcome is the
 * terminal's; the checker counts a terminal-beats-crash race, as it does
 * for a crash kind that expects "terminal").
 * Other kinds: cancel ("cancelled": the cancel must win; "race": it may
 * lose to a completion or a crash; "none": it came after the end and must
 * change nothing), rec_error / rec_block ("none"), rec_refuse
 * ("refused": start fails with COUNCIL_EREFUSED).  expect "terminal": a
 * terminal event must have been emitted (a kill sent after the child
 * wrote its terminal), and it wins.  Process hosts add: nocancel (the
 * child ignores cancels: "cancelled", the parent's kill after the grace
 * still ends the run cancelled), process_lost (the engine's process was
 * SIGKILLed: "crashed" "process lost: pid *", closed by the next reader of
 * its store, hist_store), deadline (the run's deadline passes:
 * "terminal", the deadline's error, not a crash), and engine_kill ("none":
 * the process holding the engine is killed; nothing in it can finalize,
 * so its runs have no outcome to judge; the case's bound and resources
 * records say whether its children went with it).
 *
 * Thread rules: every function may be called from any thread once
 * hist_open returned, until hist_close.
 */
#ifndef COUNCIL_TEST_HISTORY_H
#define COUNCIL_TEST_HISTORY_H

#include <stdatomic.h>
#include <stdint.h>

#include "council.h"

typedef struct hist hist;

/* Open (create or truncate) the history at path; name goes into the
 * first record.  NULL with errno set on failure. */
hist *hist_open(const char *path, const char *name);

/*
 * The history of the current test case: $COUNCIL_HISTORY_DIR/PROG.NAME.jsonl
 * when that variable is set (PROG is the test binary's name, with
 * ".loopsN" added when $COUNCIL_LOOP_THREADS is set), else
 * runner_tmpdir()/NAME.jsonl (removed when the case passes).  FAILs the
 * case if the file cannot be opened.
 */
hist *hist_open_case(const char *name);

/* Close the file and free h.  NULL is fine.  The tap must be removed. */
void hist_close(hist *h);

/* The file's path.  Borrowed from h. */
const char *hist_path(const hist *h);

/* Install the engine's emit tap (council__testing_on_emit), routing the
 * events of every run of every engine to h.  Before the engine opens;
 * remove it after the engine closed.  One history at a time. */
void hist_tap_install(hist *h);
void hist_tap_remove(void);

/*
 * The records one by one, for histories whose events and recorders are
 * not this process's (a `council run` child, a store read back): hist_emit
 * writes an emit record for ev as the tap does (a terminal classified from
 * its JSON; borrows ev); the others write the record of their name (rec:
 * a recorder id, hist_next_rec_id gives a fresh one; why is written only
 * when !ok).
 */
void hist_emit(hist *h, council_event *ev);
void hist_init_record(hist *h, const char *run_id, int rec, int ok,
                      const char *why);
void hist_deliver_record(hist *h, const char *run_id, int rec, uint64_t seq,
                         const char *type, int rc);
void hist_finalize_record(hist *h, const char *run_id, int rec,
                          const char *kind, const char *reason);
int hist_next_rec_id(hist *h);

void hist_note(hist *h, const char *key, const char *value);
void hist_note_seed(hist *h, uint64_t seed);

/* A start request: returns the tag that its hist_start_ack repeats.
 * run_id: the caller-chosen id, or NULL. */
unsigned hist_start(hist *h, const char *run_id);
/* Its answer.  run_id: the run's id if known (NULL if not). */
void hist_start_ack(hist *h, unsigned tag, const char *run_id, council_err rc);

/* The council_err's enum name ("COUNCIL_EREFUSED"), static storage. */
const char *hist_err_name(council_err rc);

/* A fault record (see above).  run_id NULL means "*". */
void hist_fault(hist *h, const char *run_id, const char *kind, uint64_t at_seq,
                const char *expect, const char *reason);
/* The same with a "by" field (who injected it: "test", "recorder 3"). */
void hist_fault_by(hist *h, const char *run_id, const char *kind,
                   uint64_t at_seq, const char *expect, const char *reason,
                   const char *by);
/*
 * A crash fault of a known kind with its expected reason filled in:
 * sigkill, sigsegv, abort, sigstop, lease, shutdown; exit (status is the
 * exit status).  Returns the reason written (static storage for the
 * fixed kinds; for exit, a thread-local buffer).
 */
const char *hist_fault_crash(hist *h, const char *run_id, const char *kind,
                             uint64_t at_seq, int status);

/*
 * A store's record of run run_id as one recorder's view, for runs whose
 * engine ran in another process (`council run`, `council serve`).
 * hist_store_rec writes the store recorder's init record (accepted) and
 * returns its id: call it between hist_start and hist_start_ack, where
 * the recorder's init happened.  hist_store then opens the store at path
 * read-write (so a run whose process is gone is closed as crashed("process
 * lost: pid N") first, as any reader would) and writes a deliver record
 * for each stored event, and, with emit set, an emit record first (the
 * record is all the bus of that process is known to have accepted: give
 * emit to the first store read only), then the finalize record with the
 * stored outcome and reason ("running" if it has none: the checker
 * reports it).  Returns the number of events stored; FAILs the case if
 * the record cannot be read.
 */
int hist_store_rec(hist *h, const char *run_id);
size_t hist_store(hist *h, const char *path, const char *run_id, int rec,
                  int emit);

/* Record a cancel (kind cancel, by "test") with its expectation, then
 * council_run_cancel(run).  Returns what council_run_cancel returned. */
council_err hist_cancel(hist *h, council_run *run, const char *expect);

/* What council_run_wait gave the test for run. */
void hist_outcome(hist *h, const char *run_id, const council_outcome *o);

/* A liveness bound: what took ms; limit_ms is its bound. */
void hist_bound(hist *h, const char *what, double ms, double limit_ms);

/* Open descriptors of this process, and its child processes (live or
 * zombie, from /proc: nothing is reaped). */
int hist_count_fds(void);
int hist_count_children(void);
/* A resources record: fds_before as counted earlier, now and children. */
void hist_resources(hist *h, int fds_before);

/* Microseconds on CLOCK_MONOTONIC (the records' "t"). */
int64_t hist_now_us(void);

/* ---- the history recorder ------------------------------------------------
 *
 * A council_recorder_ops table (hist_rec_ops) whose args is a hist_rec:
 * init, each handle_event and handle_finalize write their records.  It can
 * be told to misbehave (F8); each misbehaviour writes its fault record
 * first.  Set the fields before the run starts; read the results after
 * the run was waited for (or the engine closed).
 */
typedef struct hist_rec {
    hist *h;
    int id; /* unique in h; set by hist_rec_init */
    /* Misbehaviour (0 / NULL = off). */
    int refuse;            /* init refuses: "refused by the test" */
    uint64_t fail_at_seq;  /* handle_event returns -1 at this seq */
    int fail_every;        /* ... at every seq */
    uint64_t block_at_seq; /* handle_event sleeps block_ms here */
    unsigned block_ms;
    uint64_t cancel_at_seq;      /* council_run_cancel(own run) at this seq */
    const char *cancel_on_type;  /* ... or at the first event of this type */
    const char *cancel_on_stage; /* (and of this stage, if set) */
    const char *cancel_expect;   /* the cancel's expect; NULL = "cancelled" */
    council_engine *cancel_in_init; /* council_engine_cancel in init */
    /* The run handle for council_run_cancel: hist_run and
     * hist_run_script set it after start returns; handle_event waits for
     * it (at most 10 s).  The run must not be released before it was
     * waited for. */
    _Atomic(council_run *) run;
    /* What it saw. */
    char run_id[80];
    atomic_int inits;
    atomic_int events;
    atomic_int deltas; /* member_delta and synthesis_delta events */
    atomic_int finals;
    atomic_int overlap; /* callbacks that overlapped another one */
    atomic_int busy;
    council_err init_cancel_rc;
    int cancel_fired;
    council_outcome_kind final_kind;
    char final_reason[256];
    int64_t final_us; /* hist_now_us() at handle_finalize */
} hist_rec;

extern const council_recorder_ops hist_rec_ops;

/* Zero r and give it the next recorder id of h. */
void hist_rec_init(hist_rec *r, hist *h);

/* Recorder specs for recs[0..n-1] into specs[0..n-1]. */
void hist_rec_specs(hist_rec *recs, size_t n, council_recorder_spec *specs);

/*
 * council_run_start with its start and start_ack records; then the run
 * handle is given to the history recorders among opts->recorders.  The
 * ack names the run: its id, else opts->run_id, else the id a history
 * recorder saw in init.
 */
council_err hist_run(hist *h, council_engine *eng, const council_def *def,
                     const char *question, const council_run_opts *opts,
                     council_run **out, council_diag *diag);

/* The same for any start function: call fn(ud, out, diag) in place of
 * council_run_start (e.g. council__run_start_script). */
council_err hist_run_with(hist *h, const council_run_opts *opts,
                          council_err (*fn)(void *ud, council_run **out,
                                            council_diag *diag),
                          void *ud, council_run **out, council_diag *diag);

/* The same with the scripted run host (src/core/script_host.h). */
struct council__script;
council_err hist_run_script(hist *h, council_engine *eng,
                            const struct council__script *s,
                            const council_run_opts *opts, council_run **out,
                            council_diag *diag);

/* Wait for run (at most timeout_ms), write the outcome record, return the
 * outcome (borrowed from run) or NULL on a timeout. */
const council_outcome *hist_wait(hist *h, council_run *run,
                                 uint64_t timeout_ms);

/*
 * Check the history (check_history.h) as it stands: FAILs the test case
 * with the checker's report if it found any violation.  The engine must
 * be closed (every finalize written).
 */
void hist_assert_clean(hist *h);

#endif
