/* SPDX-License-Identifier: MIT */
/*
 * The one history checker (RELIABILITY.md "Oracle first"): reads a history
 * written through history.h and asserts the invariants I1-I5, counting
 * what the figures table needs.  Tests call hist_check_file (or
 * hist_assert_clean) at their end; the program check_history (same
 * source, built by CMake, not installed) checks files and directories
 * from the command line:
 *
 *   check_history [--figures] [--quiet] FILE|DIR...
 *
 * It prints each violation as "FILE:LINE: In run RUN [rec N]: what" (a
 * DIR means every *.jsonl in it), with --figures the markdown figure
 * table over all of them, and exits 1 if there was any violation, 2 on a
 * usage error or a file it could not read.
 *
 * What is checked, per run (a run id; an id used again after its run
 * ended, or after a refused start, begins a new run at its first init or
 * its seq 1):
 *   I1  every recorder whose init succeeded is finalized exactly once; a
 *       refused init gets no further call, its start fails with
 *       COUNCIL_EREFUSED and the run emits nothing; every start is
 *       answered (start_ack).
 *   I2  per recorder: seqs 1..m, each once, increasing; no delivery after
 *       finalize; each delivery is an event that was emitted, with its
 *       type; the bus's own seqs are 1..n without a gap, nothing after
 *       the terminal event.
 *   I3  one outcome per run, the same for every recorder and for the
 *       test's wait: a terminal event emitted => its class (ok, cancelled
 *       iff a cancelled error, else error with the first error's
 *       message), and a crash that follows it does not count (a
 *       terminal-beats-crash race); no terminal => crashed with the
 *       reason of an injected crash fault (none => violation); cancelled
 *       only after a cancel request that could win; a fault's "expect"
 *       holds (history.h lists them); a crash fault's reason is the one
 *       its kind implies.
 *   I4  events lost = 0: every emitted seq reached every recorder of the
 *       run before its finalize; a run crashed by a fault of its own with
 *       at_seq s emitted seqs 1..s at least (the injector had seen them:
 *       a child had written them), the missing ones counted as lost.
 *   I5  resources records: fds back to baseline, no child left; bound
 *       records: within the limit.
 */
#ifndef COUNCIL_TEST_CHECK_HISTORY_H
#define COUNCIL_TEST_CHECK_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_MAX_KINDS 32
#define HIST_MAX_SEEDS 64

/* Counts over one or more files (hist_check_file adds into it). */
typedef struct hist_figures {
    uint64_t files, records, bad_lines;
    uint64_t violations;
    /* runs that started (start_ack OK) / whose start failed */
    uint64_t runs, runs_failed_start;
    uint64_t runs_normal, runs_fault; /* no fault applied / one or more */
    /* faults by kind (an engine-wide fault counts once) */
    size_t n_kinds;
    struct {
        char kind[24];
        uint64_t n;
    } kinds[HIST_MAX_KINDS];
    uint64_t emitted;   /* events the bus accepted */
    uint64_t delivered; /* distinct emitted events each recorder got */
    uint64_t recorders; /* recorders whose init succeeded */
    uint64_t recorders_refused;
    uint64_t recorders_unequal; /* delivered != emitted for its run */
    uint64_t lost, duplicates, out_of_order, after_finalize, phantom;
    uint64_t finalize_missing, finalize_double;
    uint64_t outcomes, outcomes_right;  /* runs with an outcome to check */
    uint64_t crashes, crashes_right;    /* of those: crashed outcomes */
    uint64_t cancels_won, cancels_lost; /* cancel requests before the end */
    /* terminal-beats-crash races: a crash fault in a run that emitted its
     * terminal event, or a crash fault expecting the terminal to win */
    uint64_t races, races_terminal_won;
    uint64_t bounds, bounds_exceeded;
    double bound_worst_ratio; /* max ms / limit_ms */
    uint64_t resource_checks, resource_bad;
    size_t n_seeds;
    char seeds[HIST_MAX_SEEDS][24];
} hist_figures;

/*
 * Check the history at path.  Each violation is appended to *report (a
 * malloc'd NUL-terminated string, grown as needed; *report may start
 * NULL; free it with free) as one line; report may be NULL.  Counts are
 * added into fig (may be NULL; zero it before the first file).  Returns
 * the number of violations found in this file; a file that cannot be read
 * counts as one.  Thread-safe (no global state).
 */
size_t hist_check_file(const char *path, hist_figures *fig, char **report);

/* The figure table (RELIABILITY.md) in markdown, one row per figure. */
void hist_figures_print(FILE *out, const hist_figures *fig);

/* The reason a crash fault of kind must produce ("signal SIGKILL" for
 * sigkill), a prefix pattern ending in '*' ("exit status *",
 * "no heartbeat for *"), or NULL for a kind with no fixed reason
 * (host_exit) or not a crash kind.  Static storage. */
const char *hist_crash_reason(const char *kind);

#endif
