/* SPDX-License-Identifier: MIT */
/*
 * The seam between the engine and whatever executes a run (a "run host":
 * a strategy on the loop, a scripted host in tests, later a worker process
 * or a Redis worker).  A host reaches the engine only through two paths:
 *   - the event path, council__run_emit: stamps seq and time, publishes to
 *     every subscriber; the first terminal event fixes the outcome and
 *     later events are dropped;
 *   - the terminal path, council__run_exit: the host has ended.  Without a
 *     terminal event before it, the run ends as crashed(reason).
 * Both are loop-thread only.  So a proxy that reads events from a socket
 * and watches a process can stand in for an in-process host unchanged.
 */
#ifndef COUNCIL_RUN_H
#define COUNCIL_RUN_H

#include <uv.h>

#include "core/event.h"

typedef struct council__host_ops {
    /* Begin executing; loop thread.  May emit at once.  An error means the
     * host never started (no exit will follow); the recorders are then
     * finalized with an error naming msg. */
    council_err (*start)(council_run *run, void *state, char *msg,
                         size_t msg_size);
    /* Stop early: end with run_failed holding an error of this kind
     * ("cancelled", or "deadline"), then exit.  Loop thread.  May be
     * called more than once; later calls are no-ops for the host. */
    void (*cancel)(void *state, const char *kind);
    /* The engine is closing: stop at once, release loop resources, emit no
     * terminal event, and call council__run_exit(run, "shutdown") (now or
     * after handles close). */
    void (*shutdown)(void *state);
    /* Free the state; called once, after exit (or a failed start), on the
     * loop thread. */
    void (*free)(void *state);
} council__host_ops;

/*
 * Start a run with the given host (takes ownership of host_state: on
 * error it is freed with ops->free).  Recorders, id and errors as for
 * council_run_start.  Any thread.
 */
council_err council__run_start_host(council_engine *eng,
                                    const council__host_ops *ops,
                                    void *host_state,
                                    const council_run_opts *opts,
                                    council_run **out, council_diag *diag);

/* The same on the engine's loop number loop (modulo the number of loops);
 * -1 = round-robin.  Runs that must share per-loop state (the provider
 * endpoints' max_parallel queues live in each loop's HTTP client) go to
 * one loop. */
council_err council__run_start_host_on(council_engine *eng,
                                       const council__host_ops *ops,
                                       void *host_state,
                                       const council_run_opts *opts, int loop,
                                       council_run **out, council_diag *diag);

/* A caller's run options as the current version: *out gets in's fields
 * (those its version has) and zeros for the rest; with in NULL, the
 * defaults.  COUNCIL_EINVAL for an unknown version.  Any thread. */
council_err council__run_opts_copy(const council_run_opts *in,
                                   council_run_opts *out);

/* Loop thread.  Builds the event from init (run_id is filled in; data is
 * stolen; seq is the run's next; the time is now unless init->keep_ts).
 * COUNCIL_ECLOSED when the run already has its terminal event (the event is
 * dropped and counted), ENOMEM when it could not be queued to every subscriber
 * (then it was queued to none, no seq used). */
council_err council__run_emit(council_run *run, council__event_init *init);

/* Loop thread.  The host has ended.  reason: why, if no terminal event
 * was emitted ("shutdown", "exit status 3", ...). */
void council__run_exit(council_run *run, const char *reason);

/* Loop thread helpers for hosts. */
uv_loop_t *council__run_loop(council_run *run);
council_engine *council__run_engine(council_run *run);
const char *council__run_id_of(const council_run *run);
uint64_t council__run_deadline_ms(const council_run *run);
uint64_t council__run_seed(const council_run *run);
/* The seq of the last event emitted (0 before the first). */
uint64_t council__run_last_seq(const council_run *run);
/* Whether the terminal event was emitted already. */
int council__run_is_terminal(const council_run *run);

/* council_run_cancel with the kind the host is told ("cancelled" or
 * "deadline"; anything else is "cancelled").  Any thread. */
council_err council__run_cancel_kind(council_run *run, const char *kind);

/*
 * Test tap (the history of RELIABILITY.md "Oracle first"): when set, called
 * on the loop thread for each event the bus accepted (stamped with its seq
 * and queued to the run's outbox), before council__run_emit returns.  NULL
 * in production.  Set it before the engine opens, clear it after it
 * closed; the function must not call back into the engine.
 */
extern void (*council__testing_on_emit)(const council_event *ev, void *ud);
extern void *council__testing_on_emit_ud;

/* Engine-wide log line (any thread). */
void council__log(council_engine *eng, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The engine of the recorder whose callback (handle_event, handle_flush,
 * handle_finalize) runs on this thread, or NULL (init, or any other
 * thread): for a built-in recorder's log lines. */
council_engine *council__recorder_engine(void);

/* A new UUIDv7 string (36 chars + NUL) into out. */
void council__uuid7(char out[37]);

#endif
