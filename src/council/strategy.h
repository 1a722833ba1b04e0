/* SPDX-License-Identifier: MIT */
/*
 * Strategies are run hosts (core/run.h).  Each builds its state on the
 * caller's thread from a council definition and an input, copying all it
 * needs (the definition may be freed once the run has started).
 */
#ifndef COUNCIL_STRATEGY_H
#define COUNCIL_STRATEGY_H

#include "core/run.h"
#include "provider/provider.h"

council_err council__rank_host_new(const council_def *def,
                                   const council_message *msgs, size_t n_msgs,
                                   uint64_t seed, const council__host_ops **ops,
                                   void **state, council_diag *diag);

council_err council__debate_host_new(const council_def *def,
                                     const council_message *msgs, size_t n_msgs,
                                     uint64_t seed,
                                     const council__host_ops **ops,
                                     void **state, council_diag *diag);
council_err council__vote_host_new(const council_def *def,
                                   const council_message *msgs, size_t n_msgs,
                                   uint64_t seed, const council__host_ops **ops,
                                   void **state, council_diag *diag);

/* The HTTP client of the run's loop, created on first use.  Loop thread;
 * NULL if it could not be created.  Closed by the engine at shutdown. */
council__http *council__run_http(council_run *run);

#endif
