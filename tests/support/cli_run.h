/* SPDX-License-Identifier: MIT */
/*
 * Running the council binary ($COUNCIL_BIN) from a test as a user would:
 * stdin from /dev/null, stdout and stderr captured to files in the case's
 * directory, at most 60 s, optionally a SIGINT after a delay or a file
 * size limit.  Shared by the command-line tests.
 */
#ifndef COUNCIL_TEST_CLI_RUN_H
#define COUNCIL_TEST_CLI_RUN_H

typedef struct cli_result {
    int code;  /* exit status, or 128 + signal */
    char *out; /* stdout */
    char *err; /* stderr */
} cli_result;

/* The whole file as a string (malloc'd); "" if it cannot be opened. */
char *cli_slurp(const char *path);
/* args: NULL-terminated, without the program name. */
cli_result cli_run(const char *const *args);
/* sigint_after_ms > 0: SIGINT then; fsize > 0: RLIMIT_FSIZE for the child. */
cli_result cli_run_ex(int sigint_after_ms, unsigned long fsize,
                      const char *const *args);
void cli_result_free(cli_result *r);

#endif
