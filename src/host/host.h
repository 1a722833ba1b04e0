/* SPDX-License-Identifier: MIT */
/*
 * Child-process run hosts (isolation: process; DISTRIBUTED 2).  proc.c is
 * the parent's side: a run host (core/run.h) that hands the run to a child
 * process and stands in for it, emitting the child's events and deciding
 * the outcome from the child's exit and end-of-stream.  child.c is the
 * child's side, council_host_main.  frame.h is what they say to each other.
 */
#ifndef COUNCIL_HOST_H
#define COUNCIL_HOST_H

#include <stdatomic.h>

#include "core/run.h"
#include "council/def.h"

/*
 * A host that runs def on msgs in a child process.  Built on the caller's
 * thread, copying what it needs (def is referenced).  *ops and *state are
 * for council__run_start_host.  ENOMEM.
 */
council_err council__proc_host_new(const council_def *def,
                                   const council_message *msgs, size_t n_msgs,
                                   uint64_t seed, const council__host_ops **ops,
                                   void **state);

/* How long a cancelled run's child may take to stop before it is killed
 * (the run still ends cancelled). */
#define COUNCIL__HOST_CANCEL_GRACE_MS 2000
/* After a child's exit, how long its socket may stay open (a grandchild
 * holding it) before the outcome is decided anyway. */
#define COUNCIL__HOST_EOF_GRACE_MS 250
/* After end-of-stream, how long a child may live on before it is killed. */
#define COUNCIL__HOST_EXIT_GRACE_MS 1000
/* An idle child unused for this long is retired (beyond the spares). */
#define COUNCIL__HOST_IDLE_TTL_MS 10000

/* Children spawned by every engine of this process so far (tests). */
extern atomic_uint_fast64_t council__host_spawned;

/* The crash reason for a wait status: "signal SIGKILL", "exit status 3".
 * out: size bytes. */
void council__host_exit_reason(int64_t exit_status, int term_signal, char *out,
                               size_t size);
/* "10s", "250ms", "1.5s": a duration as a reason says it. */
void council__host_duration(uint64_t ms, char *out, size_t size);

#endif
