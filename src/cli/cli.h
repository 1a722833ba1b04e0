/* SPDX-License-Identifier: MIT */
/*
 * The council command's subcommands.  Each takes argv with argv[0] = the
 * subcommand's name and returns the process exit code:
 *   0 completed, 1 failed, 2 usage or council-file error, 3 cancelled,
 *   4 crashed.
 * The command line uses council.h only (and jansson to read event JSON).
 */
#ifndef COUNCIL_CLI_H
#define COUNCIL_CLI_H

#include <stdio.h>

#include "council.h"

enum {
    EXIT_COMPLETED = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_CANCELLED = 3,
    EXIT_CRASHED = 4
};

int council_cmd_run(int argc, char **argv);
int council_cmd_runs(int argc, char **argv);
int council_cmd_mockllm(int argc, char **argv);
int council_cmd_validate(int argc, char **argv);
int council_cmd_serve(int argc, char **argv);

/* The default store: $COUNCIL_DB, else $XDG_DATA_HOME/council/runs.db,
 * else ~/.local/share/council/runs.db.  Creates the directory when
 * create is set.  Returns 0, or -1 with a message on stderr. */
int cli_default_db(char *out, size_t size, int create);

/* "council: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
