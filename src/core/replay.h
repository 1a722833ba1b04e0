/* SPDX-License-Identifier: MIT */
/*
 * The replay run host (replay.c).  council_run_replay itself is in
 * src/recorder/replay_start.c: before it starts the host it asks the
 * built-in recorders whether they hold the run already, which is the
 * recorders' business, not the engine's.
 */
#ifndef COUNCIL_REPLAY_H
#define COUNCIL_REPLAY_H

#include "core/run.h"

/* The arguments and the record (council_run_replay's EINVAL cases); diag
 * names the event.  Any thread. */
council_err council__replay_check(const council_run_opts *opts,
                                  council_event *const *events, size_t n,
                                  unsigned flags, council_diag *diag);

/* Start the replay host on a checked record (council_run_replay without
 * the recorders' check).  Any thread. */
council_err council__replay_start(council_engine *engine,
                                  const council_run_opts *opts,
                                  council_event *const *events, size_t n,
                                  unsigned flags, council_run **out,
                                  council_diag *diag);

#endif
