/* SPDX-License-Identifier: MIT */
/*
 * The council command's subcommands.  Each takes argv with argv[0] = the
 * subcommand's name and returns the process exit code:
 *   0 completed, 1 failed, 2 usage or council-file error, 3 cancelled,
 *   4 crashed, 5 completed but a record of it is incomplete; a command
 *   stopped by a signal (run, runs replay) ends by that signal (the shell
 *   sees 128 + its number).
 * The command line uses council.h only (and jansson to read event JSON).
 */
#ifndef COUNCIL_CLI_H
#define COUNCIL_CLI_H

#include <pthread.h>
#include <stdio.h>

#include "council.h"

enum {
    EXIT_COMPLETED = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_CANCELLED = 3,
    EXIT_CRASHED = 4,
    EXIT_INCOMPLETE = 5
};

int council_cmd_run(int argc, char **argv);
int council_cmd_runs(int argc, char **argv);
int council_cmd_mockllm(int argc, char **argv);
int council_cmd_validate(int argc, char **argv);
int council_cmd_serve(int argc, char **argv);

/* council runs show / export: the run as text or Markdown (report.c). */
int cli_report_run(FILE *f, const char *record_json, council_event **events,
                   size_t n_events, int markdown);

/* The default store: $COUNCIL_DB, else $XDG_DATA_HOME/council/runs.db,
 * else ~/.local/share/council/runs.db.  Creates the directory when
 * create is set.  Returns 0, or -1 with a message on stderr. */
int cli_default_db(char *out, size_t size, int create);

/* The host program for isolated runs: this very binary (`council __host`
 * runs council_host_main), as /proc/self/exe names it; NULL if that
 * cannot be read (the library then looks for council-host itself). */
const char *cli_host_program(void);
/* --isolation VALUE: COUNCIL_ISOLATION_NONE or _PROCESS into *out; 0, or
 * -1 with a message on stderr. */
int cli_parse_isolation(const char *v, int *out);
/* stdout as a stream that remembers its first write error (output.c);
 * called first thing in main.  It is a stdio stream of our own over
 * descriptor 1, so fileno(stdout) is -1: code that needs the descriptor
 * uses STDOUT_FILENO. */
void cli_stdout_open(void);
/* Flush and close stdout at exit: if anything written to it was lost,
 * say so on stderr ("council: writing to stdout: No space left on
 * device") and turn exit code 0 into EXIT_FAILED; other codes stay.
 * Returns the exit code. */
int cli_finish_stdout(int code);

/* "council: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- display.c: what a run shows while it goes (run and runs replay) ---- */

/* The display recorder's views: a live view on stderr (a terminal), plain
 * progress lines on stderr, every event as a JSON line on stdout, or
 * nothing. */
enum cli_view { CLI_VIEW_LIVE, CLI_VIEW_PLAIN, CLI_VIEW_JSON, CLI_VIEW_QUIET };

typedef struct cli_display cli_display;

/* JSON, else quiet, else live when stderr is a terminal, else plain. */
enum cli_view cli_view_choose(int json, int quiet);
/* NULL when memory ran out.  Free with cli_display_free after the run. */
cli_display *cli_display_new(enum cli_view view);
void cli_display_free(cli_display *d);
/* The recorder table; its args is the cli_display. */
const council_recorder_ops *cli_display_ops(void);

/* A --record SPEC: sqlite:PATH, jsonl:DIR or webhook:URL.  0, or -1 with
 * a message.  A webhook record is complete once cli_records_finish has
 * given it the webhook options. */
#define CLI_MAX_RECORD 16
typedef struct cli_record {
    const council_recorder_ops *ops;
    const char *path; /* sqlite, jsonl: the path; webhook: the URL */
    /* webhook: the URL without its user:password and query. */
    char url_shown[512];
    council_webhook_args wh; /* webhook: the recorder's args */
    /* redis: the recorder's args (url_shown: the URL without its
     * user:password) */
    council_recorder_redis_args redis;
} cli_record;
int cli_parse_record(const char *spec, cli_record *out);
/* The recorder's args for a council_recorder_spec. */
void *cli_record_args(cli_record *r);
/* What messages name: the path, or the URL without its credentials. */
const char *cli_record_shown(const cli_record *r);
/* "sqlite", "jsonl", "webhook" or "redis". */
const char *cli_record_kind(const cli_record *r);

/* The webhook options of every command that takes --record:
 * --webhook-secret-env NAME and --webhook-events. */
typedef struct cli_webhook_opts {
    const char *secret_env; /* NULL: $COUNCIL_WEBHOOK_SECRET if set */
    int events;
} cli_webhook_opts;
/* Whether a is one of them. */
int cli_is_webhook_opt(const char *a);
/* Parse argv[*i] (one of them), taking its value (*i advances).  0, or -1
 * with a message. */
int cli_parse_webhook_opt(int argc, char **argv, int *i, cli_webhook_opts *o);
/* Give the webhook records of rec their secret (read from the named
 * environment variable) and options.  0, or -1 with a message naming the
 * option and the variable (never the secret). */
int cli_records_finish(cli_record *rec, int n, const cli_webhook_opts *o);

/* The engine's log, for one run's command.  The engine logs the first
 * failure of each episode of a recorder's failures and sums the episode up
 * in a line of its own (core/rechost.c): the first failures are printed,
 * the sums absorbed, and cli_log_summary prints each recorder's total,
 * with the recorder's path, once the run has ended.  Zero it and init mu
 * before use. */
#define CLI_LOG_RECORDERS (CLI_MAX_RECORD + 1)
typedef struct cli_log {
    pthread_mutex_t mu;
    struct {
        unsigned long long n, first, last;
    } rec[CLI_LOG_RECORDERS];
} cli_log;
void cli_log_line(const char *line, void *ud);
void cli_log_summary(cli_log *l, const char *run_id, const cli_record *rec,
                     int n_rec);
/* Read back the run's record in each of rec (the stores it was recorded
 * to): each that has no outcome, lost events (incomplete) or cannot be
 * read is said on stderr.  How many were not whole. */
int cli_check_records(const char *run_id, const cli_record *rec, int n_rec);

/* SIGINT, SIGTERM, SIGHUP and a closed stdout (EPIPE: SIGPIPE is ignored
 * from here) make cli_wait cancel the run (once); the command then ends by
 * that signal (main.c), once the run is recorded. */
void cli_catch_interrupts(void);
/* The signal that stops the command (SIGPIPE for a closed stdout), or 0.
 * Any thread. */
int cli_stop_signal(void);
/* A write to stdout failed with EPIPE: stop as for SIGPIPE.  Any thread. */
void cli_stdout_closed(void);
/* "interrupted (Ctrl-C)", "terminated (SIGTERM)", "hangup (SIGHUP)",
 * "stdout closed (broken pipe)". */
const char *cli_stop_reason(int sig);
/* Wait for the run's end; borrowed outcome. */
const council_outcome *cli_wait(council_run *run, cli_display *d);
/* Print the final answer (on stdout, unless JSON) or why the run did not
 * complete (stderr); the exit code for the outcome. */
int cli_report(cli_display *d, const char *run_id, const council_outcome *o);

#endif
