/* SPDX-License-Identifier: MIT */
/*
 * council_run_replay: check the record, refuse to record the replay where
 * the run is recorded already (before any recorder's init would refuse,
 * with a clearer word), then start the replay host (core/replay.c).
 */
#include <stdio.h>
#include <string.h>

#include "core/replay.h"
#include "recorder/recorder.h"

council_err
council_run_replay(council_engine *engine, const council_run_opts *opts,
                   council_event *const *events, size_t n, unsigned flags,
                   council_run **out, council_diag *diag)
{
    const char *run_id;
    char where[4200];
    council_err rc;
    size_t i;

    if (out != NULL)
        *out = NULL;
    if (engine == NULL) {
        council__recorder_diag(diag, NULL, 0, "invalid arguments");
        return COUNCIL_EINVAL;
    }
    rc = council__replay_check(opts, events, n, flags, diag);
    if (rc != COUNCIL_OK)
        return rc;
    run_id = opts != NULL && opts->run_id != NULL
                 ? opts->run_id
                 : council_event_run_id(events[0]);
    for (i = 0;
         opts != NULL && opts->recorders != NULL && i < opts->n_recorders;
         i++) {
        if (council__recorder_has_run(opts->recorders[i].ops,
                                      opts->recorders[i].args, run_id, where,
                                      sizeof(where))) {
            council__recorder_diag(diag, NULL, 0,
                                   "run %s is already recorded in %.180s; "
                                   "replay it under another run id",
                                   run_id, where);
            return COUNCIL_EEXIST;
        }
    }
    return council__replay_start(engine, opts, events, n, flags, out, diag);
}
