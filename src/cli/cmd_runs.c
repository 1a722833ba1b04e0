/* SPDX-License-Identifier: MIT */
/*
 * council runs: read the run store.  `list` shows recorded runs, newest
 * first: id, start time, council, outcome, duration, events.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char runs_usage[] =
    "usage: council runs list [--db PATH] [--limit N]\n"
    "\n"
    "List the runs recorded in a SQLite store, newest first.\n"
    "\n"
    "options:\n"
    "  --db PATH     the store (default: $COUNCIL_DB, or\n"
    "                $XDG_DATA_HOME/council/runs.db, or\n"
    "                ~/.local/share/council/runs.db)\n"
    "  --limit N     at most N runs (default 50; 0 = all)\n"
    "  -h, --help    this help\n";

static int
print_row(const council_run_row *r, void *ud)
{
    char when[32] = "-", dur[32] = "-";
    time_t secs = (time_t)(r->started_us / 1000000);
    struct tm tm;

    (void)ud;
    if (localtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    if (r->ended_us > 0 && r->ended_us >= r->started_us)
        snprintf(dur, sizeof(dur), "%.2fs",
                 (double)(r->ended_us - r->started_us) / 1e6);
    printf("%-36s  %-19s  %-16.16s  %-9s  %9s  %6llu\n", r->run_id, when,
           r->council != NULL ? r->council : "-",
           r->outcome != NULL ? r->outcome : "running", dur,
           (unsigned long long)r->events);
    return 0;
}

int
council_cmd_runs(int argc, char **argv)
{
    const char *db = NULL;
    char path[4096];
    long limit = 50;
    council_diag diag;
    council_err rc;
    int i;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        fputs(runs_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "list") != 0) {
        cli_error("runs: unknown subcommand '%s' (see council runs --help)",
                  argv[1]);
        return EXIT_USAGE;
    }
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(runs_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (*end != '\0' || limit < 0) {
                cli_error("--limit %s: expected a number >= 0", argv[i]);
                return EXIT_USAGE;
            }
        } else {
            cli_error("runs list: unknown option %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (db == NULL) {
        if (cli_default_db(path, sizeof(path), 0) != 0)
            return EXIT_FAILED;
        db = path;
    }
    printf("%-36s  %-19s  %-16s  %-9s  %9s  %6s\n", "RUN", "STARTED", "COUNCIL",
           "OUTCOME", "DURATION", "EVENTS");
    rc = council_store_list(db, (size_t)limit, print_row, NULL, &diag);
    if (rc == COUNCIL_ENOTFOUND) {
        cli_error("no run store at %s (nothing recorded yet)", db);
        return EXIT_FAILED;
    }
    if (rc != COUNCIL_OK) {
        cli_error("%s: %s", db, diag.msg[0] ? diag.msg : council_strerror(rc));
        return EXIT_FAILED;
    }
    return 0;
}
