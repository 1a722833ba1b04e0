/* SPDX-License-Identifier: MIT */
/*
 * A run host that plays a script of events: the contract's tests drive the
 * engine with it, apart from any model (DESIGN 2; issue "run contract").
 * It can end with a terminal event, end without one (a crash with a given
 * reason), hang until cancelled, ignore cancellation, or fail to start.
 */
#ifndef COUNCIL_SCRIPT_HOST_H
#define COUNCIL_SCRIPT_HOST_H

#include "core/run.h"

typedef struct council__script_step {
    council_event_type type;
    const char *stage;
    const char *member;
    const char *text;      /* NUL-terminated */
    const char *data_json; /* extra fields as a JSON object text, or NULL */
    uint64_t delay_ms;     /* wait before this step */
} council__script_step;

enum {
    COUNCIL__SCRIPT_EXIT = 0, /* after the steps: exit (crash if no terminal) */
    COUNCIL__SCRIPT_HANG = 1  /* after the steps: wait for cancel/shutdown */
};

typedef struct council__script {
    const council__script_step *steps; /* borrowed: must outlive the run */
    size_t n_steps;
    int then;
    const char *exit_reason; /* for an exit without terminal event */
    int emit_in_start;       /* play steps with delay 0 inside start() */
    int ignore_cancel;
    const char *fail_start; /* non-NULL: start fails with this message */
    /* Optional: data[i] is step i's data already parsed (NULL: parse its
     * data_json).  Each event takes a reference to it, so it is shared by
     * every run the script plays: it must never be modified, and the
     * caller's reference must outlive the runs (then one array may serve
     * runs on several loops at once; jansson's counts are atomic and
     * readers of an object do not write it). */
    json_t *const *data;
    /* Counters the test reads (atomic increments). */
    int *started; /* start() calls, or NULL */
} council__script;

council_err council__run_start_script(council_engine *eng,
                                      const council__script *script,
                                      const council_run_opts *opts,
                                      council_run **out, council_diag *diag);

#endif
