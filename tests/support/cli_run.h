/* SPDX-License-Identifier: MIT */
/*
 * Running the council binary ($COUNCIL_BIN) from a test as a user would:
 * stdin from /dev/null, stdout and stderr captured to files in the case's
 * directory (or stdout to a given file), at most 60 s, optionally a
 * SIGINT after a delay or a file size limit.  Shared by the command-line tests.
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
/* stdout to an existing file (e.g. /dev/full) instead; out is then "". */
cli_result cli_run_to(const char *stdout_path, const char *const *args);
void cli_result_free(cli_result *r);

/* The binary started in the background, as cli_run does (stdin from
 * /dev/null; stdout to out_fd if >= 0, else to the file NAME.out; stderr
 * to NAME.err, in the case's directory); its pid. */
int cli_spawn(const char *name, int out_fd, const char *const *args);
/* Wait for a cli_spawn'd child (killed after 60 s) and collect its
 * result (stdout is "" when it went to out_fd). */
cli_result cli_collect(const char *name, int pid);
/* name's stderr so far (malloc'd). */
char *cli_stderr_of(const char *name);

#endif
