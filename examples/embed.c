/* SPDX-License-Identifier: MIT */
/*
 * Embedding libcouncil: run a council from a file on a question, record it
 * to a SQLite store, print the outcome.
 *   embed COUNCIL.yaml "question" [runs.db]
 * Built with the project (target `example_embed`); uses council.h only.
 */
#include <stdint.h>
#include <stdio.h>

#include <council.h>

int
main(int argc, char **argv)
{
    council_engine *eng = NULL;
    council_def *def = NULL;
    council_run *run = NULL;
    const council_outcome *out = NULL;
    council_diag diag;
    council_recorder_spec rec;
    council_run_opts opts = {COUNCIL_RUN_OPTS_VERSION};
    int code = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: %s COUNCIL.yaml QUESTION [runs.db]\n", argv[0]);
        return 2;
    }
    if (council_def_load_file(argv[1], &def, &diag) != COUNCIL_OK) {
        fprintf(stderr, "%s:%d:%d: %s\n", diag.file, diag.line, diag.col,
                diag.msg);
        return 2;
    }
    rec.ops = council_recorder_sqlite();
    rec.args = argc > 3 ? argv[3] : "runs.db";
    opts.recorders = &rec;
    opts.n_recorders = 1;
    if (council_engine_open(NULL, &eng) != COUNCIL_OK)
        goto out;
    if (council_run_start(eng, def, argv[2], &opts, &run, &diag) !=
        COUNCIL_OK) {
        fprintf(stderr, "cannot start: %s\n", diag.msg);
        goto out;
    }
    /* Returns once the run has ended and every recorder is finalized. */
    council_run_wait(run, UINT64_MAX, &out);
    puts(council_outcome_json(out));
    code = council_outcome_kind_of(out) == COUNCIL_OUTCOME_OK ? 0 : 1;
out:
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    return code;
}
