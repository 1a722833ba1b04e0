/* SPDX-License-Identifier: MIT */
/*
 * council runs: the history of recorded runs, through the run store API
 * (council_store_*): list (filtered, or as JSON lines), show (a report, the
 * record as JSON, or every event), replay (the recorded events again,
 * through the same live view as `council run`, as JSON lines, or into
 * recorders), export (JSON or Markdown, written whole), delete.  show,
 * export and replay also read a jsonl record (--jsonl FILE).  A run id may
 * be given by a unique prefix.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char runs_usage[] =
    "usage: council runs <subcommand> [options]\n"
    "\n"
    "The runs recorded in a SQLite store (or a jsonl record).  Reading a\n"
    "store closes the runs whose process died (killed, crashed, a reboot)\n"
    "as crashed, \"process lost: pid N\"; a record that lost events (a\n"
    "full disk) is shown as incomplete.\n"
    "\n"
    "subcommands:\n"
    "  list                   the runs, newest first (filters, --json)\n"
    "  show RUN_ID            one run: question, answers, reviews, synthesis,\n"
    "                         usage, timings, errors (--json, --events)\n"
    "  replay RUN_ID          its events again: the live view, --json, or\n"
    "                         into recorders (--record)\n"
    "  export RUN_ID          as a JSON document or a Markdown report\n"
    "  delete RUN_ID          remove it from the store\n"
    "\n"
    "`council runs <subcommand> --help` describes each.  RUN_ID may be a\n"
    "unique prefix of the id.  The store is --db PATH, else $COUNCIL_DB, else\n"
    "$XDG_DATA_HOME/council/runs.db, else ~/.local/share/council/runs.db.\n";

static const char list_usage[] =
    "usage: council runs list [--db PATH] [--council NAME] [--outcome O]\n"
    "                         [--since WHEN] [--limit N] [--json]\n"
    "\n"
    "List the recorded runs, newest first: id, start, council, outcome,\n"
    "duration, events (stored/emitted when the record is incomplete) and\n"
    "the reason of a run that did not complete.\n"
    "\n"
    "options:\n"
    "  --db PATH        the store (default: $COUNCIL_DB, or\n"
    "                   $XDG_DATA_HOME/council/runs.db, or\n"
    "                   ~/.local/share/council/runs.db)\n"
    "  --council NAME   only runs of this council\n"
    "  --outcome O      only runs that ended so: ok, error, cancelled,\n"
    "                   crashed (runs whose process died included), or\n"
    "                   running (no outcome yet, its process alive)\n"
    "  --since WHEN     only runs started since WHEN: a date (2026-11-30,\n"
    "                   local midnight), a time (2026-11-30T08:00:00Z, or\n"
    "                   without Z: local), or a duration back from now\n"
    "                   (90m, 2h, 7d)\n"
    "  --limit N        at most N runs (default 50; 0 = all)\n"
    "  --json           one JSON object per run and line\n"
    "  -h, --help       this help\n";

static const char show_usage[] =
    "usage: council runs show RUN_ID [--db PATH | --jsonl FILE] [--json]\n"
    "                         [--events]\n"
    "\n"
    "Show one recorded run: its question, council and members, each\n"
    "member's answer (trimmed) with tokens and timings, failures, the\n"
    "reviews and aggregate (rank), votes (vote) or rounds (debate), the\n"
    "synthesis in full, usage and errors.\n"
    "\n"
    "options:\n"
    "  --db PATH      the store (default as for `council runs list`)\n"
    "  --jsonl FILE   read a jsonl record (DIR/RUN_ID.jsonl) instead\n"
    "  --json         the run's record as one JSON object (docs/storage.md)\n"
    "  --events       every event of the run, one JSON line each\n"
    "  -h, --help     this help\n";

static const char replay_usage[] =
    "usage: council runs replay RUN_ID [--db PATH | --jsonl FILE]\n"
    "                           [--pace recorded|fast] [--json]\n"
    "                           [--record SPEC]... [--run-id ID] [-q]\n"
    "\n"
    "Emit a recorded run's events again, through the run contract: to the\n"
    "live view of `council run` (plain lines when stderr is not a\n"
    "terminal; the final answer on stdout), as JSON lines (--json), and to\n"
    "recorders (--record).  Exits as the recorded run did: 0 completed,\n"
    "1 failed, 3 cancelled, 4 crashed (also a record cut short or\n"
    "incomplete, which is said first); 5 when a --record store could not\n"
    "keep the whole replay.  Ctrl-C (SIGINT), SIGTERM, SIGHUP or a closed\n"
    "stdout stop the replay: it is recorded as cancelled, then council\n"
    "ends by that signal (130, 143, 129, 141).\n"
    "\n"
    "options:\n"
    "  --db PATH          the store (default as for `council runs list`)\n"
    "  --jsonl FILE       read a jsonl record (DIR/RUN_ID.jsonl) instead\n"
    "  --pace P           recorded: wait between events as they were apart;\n"
    "                     fast: as fast as possible (default)\n"
    "  --json             print every event as one JSON line on stdout\n"
    "  --record SPEC      record the replay too, repeatable: sqlite:PATH,\n"
    "                     jsonl:DIR, webhook:URL or redis:URL (as `council "
    "run\n"
    "                     --record`, with --webhook-secret-env NAME and\n"
    "                     --webhook-events)\n"
    "  --run-id ID        the replay's run id (default: the recorded one;\n"
    "                     needed to record into the store it came from)\n"
    "  -q, --quiet        no progress on stderr\n"
    "  -h, --help         this help\n";

static const char export_usage[] =
    "usage: council runs export RUN_ID [--format json|md] [--db PATH |\n"
    "                           --jsonl FILE] [-o FILE]\n"
    "\n"
    "Export one recorded run whole.  json: {\"run\": its record, \"events\":\n"
    "[every event]}.  md: a Markdown report (the question, each answer,\n"
    "the reviews, the aggregate table, the final answer, usage, errors).\n"
    "\n"
    "options:\n"
    "  --format F     json or md (default md)\n"
    "  --db PATH      the store (default as for `council runs list`)\n"
    "  --jsonl FILE   read a jsonl record (DIR/RUN_ID.jsonl) instead\n"
    "  -o FILE        write to FILE (whole: a temporary file renamed into\n"
    "                 place) instead of stdout\n"
    "  -h, --help     this help\n";

static const char delete_usage[] =
    "usage: council runs delete RUN_ID [--db PATH] [--force]\n"
    "\n"
    "Delete a recorded run (its row and its events) from the store.  A run\n"
    "without an outcome may still be running and is refused, unless\n"
    "--force (for a run whose process is gone).\n"
    "\n"
    "options:\n"
    "  --db PATH      the store (default as for `council runs list`)\n"
    "  --force        delete a run even if it has no outcome\n"
    "  -h, --help     this help\n";

/* ---- shared ---------------------------------------------------------------
 */

typedef struct where {
    const char *db;    /* --db */
    const char *jsonl; /* --jsonl */
    char path[4096];   /* the one opened */
} where;

static int
is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* Open the store named by w (or the default one).  Read-write unless
 * flags say otherwise, so the runs there whose process died are closed as
 * crashed (council_store_open); a store that cannot be opened so (a
 * read-only medium) is read read-only, where such runs still read as
 * crashed.  An exit code on failure (with the message printed), else -1. */
static int
open_store(where *w, unsigned flags, council_store **s)
{
    council_diag diag;
    council_err rc;

    if (w->jsonl != NULL)
        snprintf(w->path, sizeof(w->path), "%s", w->jsonl);
    else if (w->db != NULL)
        snprintf(w->path, sizeof(w->path), "%s", w->db);
    else if (cli_default_db(w->path, sizeof(w->path), 0) != 0)
        return EXIT_FAILED;
    rc = council_store_open(w->path, flags, s, &diag);
    if (rc == COUNCIL_EIO && !(flags & COUNCIL_STORE_READONLY))
        rc = council_store_open(w->path, flags | COUNCIL_STORE_READONLY, s,
                                &diag);
    if (rc == COUNCIL_ENOTFOUND && w->jsonl == NULL) {
        cli_error("no run store at %s (nothing recorded yet)", w->path);
        return EXIT_FAILED;
    }
    if (rc != COUNCIL_OK) {
        cli_error("%s: %s", w->path,
                  diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        return EXIT_FAILED;
    }
    return -1;
}

typedef struct prefix_match {
    const char *prefix;
    char found[3][80];
    int n;
} prefix_match;

static int
match_prefix(const council_run_row *row, void *ud)
{
    prefix_match *m = ud;

    if (strncmp(row->run_id, m->prefix, strlen(m->prefix)) != 0)
        return 0;
    if (m->n < 3)
        snprintf(m->found[m->n], sizeof(m->found[0]), "%s", row->run_id);
    m->n++;
    return 0;
}

/*
 * The full id of the run named id (itself, or the one run whose id starts
 * with it) in out.  -1 when found, else an exit code with the message
 * printed: "no run X in PATH", or the ambiguous prefix's candidates.
 */
static int
resolve(council_store *s, const where *w, const char *id, char *out,
        size_t size)
{
    prefix_match m;
    council_diag diag;
    char *json = NULL;
    council_err rc;

    rc = council_store_run(s, id, &json, &diag);
    council_free(json);
    if (rc == COUNCIL_OK) {
        snprintf(out, size, "%s", id);
        return -1;
    }
    if (rc != COUNCIL_ENOTFOUND) {
        cli_error("%s", diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        return EXIT_FAILED;
    }
    memset(&m, 0, sizeof(m));
    m.prefix = id;
    if (id[0] != '\0')
        (void)council_store_runs(s, NULL, match_prefix, &m, NULL);
    if (m.n == 1) {
        snprintf(out, size, "%s", m.found[0]);
        return -1;
    }
    if (m.n > 1) {
        cli_error("run id prefix %s is ambiguous in %s: %s, %s%s", id, w->path,
                  m.found[0], m.found[1], m.n > 2 ? ", ..." : "");
        return EXIT_USAGE;
    }
    cli_error("no run %s in %s", id, w->path);
    return EXIT_FAILED;
}

typedef struct evlist {
    council_event **v;
    size_t n, cap;
    int oom;
} evlist;

static int
keep_event(council_event *ev, void *ud)
{
    evlist *l = ud;

    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 256;
        council_event **v = realloc(l->v, cap * sizeof(*v));

        if (v == NULL) {
            l->oom = 1;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = council_event_ref(ev);
    return 0;
}

static void
evlist_free(evlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        council_event_unref(l->v[i]);
    free(l->v);
}

/* Every event of run id; 0, or -1 with the damage printed (the events
 * before it are kept). */
static int
load_events(council_store *s, const char *id, evlist *l)
{
    council_diag diag;
    council_err rc;

    memset(l, 0, sizeof(*l));
    rc = council_store_events(s, id, 0, keep_event, l, &diag);
    if (l->oom) {
        cli_error("out of memory");
        return -1;
    }
    if (rc != COUNCIL_OK) {
        if (diag.line > 0)
            cli_error("%s:%d: %s", diag.file, diag.line, diag.msg);
        else
            cli_error("%s",
                      diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        return -1;
    }
    return 0;
}

/* argv[i] needs a value: it is argv[i + 1]. */
static const char *
value_of(int argc, char **argv, int *i, const char *cmd)
{
    if (*i + 1 >= argc) {
        cli_error("runs %s: %s needs a value", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* RFC 3339 UTC with microseconds. */
static void
utc_time(int64_t us, char *out, size_t size)
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    char head[32];

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%06ldZ", head, frac);
}

/* ---- list ------------------------------------------------------------------
 */

/*
 * --since WHEN: a date (local midnight), a date and time (with Z or an
 * offset: that zone; without: local time), or a duration back from now.
 * 0, or -1 when WHEN is none of these.
 */
static int
parse_since(const char *s, int64_t *out_us)
{
    struct tm tm;
    const char *end;
    char *e;
    long off_h = 0, off_m = 0;
    time_t t;
    uint64_t ms;

    /* A duration: 90m, 2h, 7d (days are not a council-file unit). */
    if (s[0] >= '0' && s[0] <= '9') {
        unsigned long long n = strtoull(s, &e, 10);
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        if (e != s && strcmp(e, "d") == 0 && n <= 36500) {
            *out_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 -
                      (int64_t)n * 86400 * 1000000;
            return 0;
        }
        if (e != s && *e != '\0' && *e != '-' &&
            council_duration_parse(s, &ms) == COUNCIL_OK) {
            *out_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 -
                      (int64_t)ms * 1000;
            return 0;
        }
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end == NULL)
        return -1;
    if (*end == '\0') {
        tm.tm_isdst = -1;
        t = mktime(&tm);
        if (t == (time_t)-1)
            return -1;
        *out_us = (int64_t)t * 1000000;
        return 0;
    }
    if (*end != 'T' && *end != ' ')
        return -1;
    end = strptime(end + 1, "%H:%M", &tm);
    if (end == NULL)
        return -1;
    if (*end == ':') {
        end = strptime(end + 1, "%S", &tm);
        if (end == NULL)
            return -1;
    }
    if (*end == '\0') {
        tm.tm_isdst = -1;
        t = mktime(&tm);
    } else {
        if (strcmp(end, "Z") != 0) {
            if ((end[0] != '+' && end[0] != '-') ||
                sscanf(end + 1, "%2ld:%2ld", &off_h, &off_m) != 2 ||
                strlen(end) != 6 || off_h > 23 || off_m > 59)
                return -1;
            if (end[0] == '-') {
                off_h = -off_h;
                off_m = -off_m;
            }
        }
        t = timegm(&tm);
        t -= (time_t)(off_h * 3600 + off_m * 60);
    }
    if (t == (time_t)-1)
        return -1;
    *out_us = (int64_t)t * 1000000;
    return 0;
}

static int
print_row(const council_run_row *r, void *ud)
{
    char when[32] = "-", dur[32] = "-", events[48];
    time_t secs = (time_t)(r->started_us / 1000000);
    struct tm tm;

    (void)ud;
    if (localtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    if (r->ended_us > 0 && r->ended_us >= r->started_us)
        snprintf(dur, sizeof(dur), "%.2fs",
                 (double)(r->ended_us - r->started_us) / 1e6);
    /* An incomplete record shows stored/emitted: "30/459". */
    if (r->events_emitted > r->events)
        snprintf(events, sizeof(events), "%llu/%llu",
                 (unsigned long long)r->events,
                 (unsigned long long)r->events_emitted);
    else
        snprintf(events, sizeof(events), "%llu", (unsigned long long)r->events);
    printf("%-36s  %-19s  %-16.16s  %-9s  %9s  %6s", r->run_id, when,
           r->council != NULL ? r->council : "-",
           r->outcome != NULL ? r->outcome : "running", dur, events);
    if (r->reason != NULL && r->outcome != NULL &&
        strcmp(r->outcome, "ok") != 0) {
        int n = (int)strcspn(r->reason, "\r\n");

        printf("  %.*s", n < 70 ? n : 70, r->reason);
    }
    putchar('\n');
    return 0;
}

static int
print_row_json(const council_run_row *r, void *ud)
{
    char started[48], ended[48];
    json_t *o;
    char *line;

    (void)ud;
    utc_time(r->started_us, started, sizeof(started));
    utc_time(r->ended_us, ended, sizeof(ended));
    o = json_pack(
        "{s:s,s:s?,s:s?,s:s?,s:I,s:s,s:o,s:o,s:o,s:s,s:I}", "run_id", r->run_id,
        "council", r->council, "strategy", r->strategy, "question", r->question,
        "started_us", (json_int_t)r->started_us, "started", started, "ended_us",
        r->outcome != NULL ? json_integer(r->ended_us) : json_null(), "ended",
        r->outcome != NULL ? json_string(ended) : json_null(), "duration_ms",
        r->outcome != NULL && r->ended_us >= r->started_us
            ? json_integer((r->ended_us - r->started_us) / 1000)
            : json_null(),
        "outcome", r->outcome != NULL ? r->outcome : "running", "events",
        (json_int_t)r->events);
    if (o != NULL) {
        json_object_set_new(o, "reason",
                            r->reason != NULL ? json_string(r->reason)
                                              : json_null());
        json_object_set_new(o, "events_emitted",
                            r->events_emitted > 0
                                ? json_integer((json_int_t)r->events_emitted)
                                : json_null());
        json_object_set_new(o, "incomplete",
                            json_boolean(r->events_emitted > r->events));
    }
    line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (line == NULL) {
        cli_error("out of memory");
        return 1;
    }
    puts(line);
    free(line);
    return 0;
}

static int
cmd_list(int argc, char **argv)
{
    council_store_query q;
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    where w;
    long limit = 50;
    int i, json = 0, code;
    const char *v;

    memset(&w, 0, sizeof(w));
    memset(&q, 0, sizeof(q));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (is_help(a)) {
            fputs(list_usage, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--db") == 0 || strcmp(a, "--council") == 0 ||
                   strcmp(a, "--outcome") == 0 || strcmp(a, "--since") == 0 ||
                   strcmp(a, "--limit") == 0) {
            if ((v = value_of(argc, argv, &i, "list")) == NULL)
                return EXIT_USAGE;
            if (strcmp(a, "--db") == 0) {
                w.db = v;
            } else if (strcmp(a, "--council") == 0) {
                q.council = v;
            } else if (strcmp(a, "--outcome") == 0) {
                if (strcmp(v, "ok") != 0 && strcmp(v, "error") != 0 &&
                    strcmp(v, "cancelled") != 0 && strcmp(v, "crashed") != 0 &&
                    strcmp(v, "running") != 0) {
                    cli_error("--outcome %s: expected ok, error, cancelled, "
                              "crashed or running",
                              v);
                    return EXIT_USAGE;
                }
                q.outcome = v;
            } else if (strcmp(a, "--since") == 0) {
                if (parse_since(v, &q.since_us) != 0) {
                    cli_error("--since %s: expected a date (2026-11-30), a "
                              "time (2026-11-30T08:00:00Z) or a duration "
                              "back from now (90m, 2h, 7d)",
                              v);
                    return EXIT_USAGE;
                }
            } else {
                char *end;

                limit = strtol(v, &end, 10);
                if (*v == '\0' || *end != '\0' || limit < 0) {
                    cli_error("--limit %s: expected a number >= 0", v);
                    return EXIT_USAGE;
                }
            }
        } else {
            cli_error("runs list: unknown option %s (see council runs list "
                      "--help)",
                      a);
            return EXIT_USAGE;
        }
    }
    q.limit = (size_t)limit;
    code = open_store(&w, 0, &s);
    if (code >= 0)
        return code;
    if (!json)
        printf("%-36s  %-19s  %-16s  %-9s  %9s  %6s  %s\n", "RUN", "STARTED",
               "COUNCIL", "OUTCOME", "DURATION", "EVENTS", "REASON");
    rc = council_store_runs(s, &q, json ? print_row_json : print_row, NULL,
                            &diag);
    council_store_close(s);
    if (rc != COUNCIL_OK) {
        cli_error("%s: %s", w.path,
                  diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        return EXIT_FAILED;
    }
    return 0;
}

/* ---- show, export, replay, delete: RUN_ID and where it is -----------------
 */

typedef struct run_args {
    const char *id;
    where w;
} run_args;

/*
 * The RUN_ID argument and --db/--jsonl; the subcommand's own options go to
 * own(), which returns 1 when it took argv[*i] (and its value), 0 when it
 * does not know it, -1 after a usage error it reported.  An exit code on
 * error or --help, else -1.
 */
static int
parse_run_args(int argc, char **argv, const char *cmd, const char *usage,
               int jsonl_ok, run_args *ra,
               int (*own)(int argc, char **argv, int *i, void *ud), void *ud)
{
    int i;

    memset(ra, 0, sizeof(*ra));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took;

        if (is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--db") == 0 || (jsonl_ok && strcmp(a, "--jsonl") == 0)) {
            const char *v = value_of(argc, argv, &i, cmd);

            if (v == NULL)
                return EXIT_USAGE;
            if (a[2] == 'd')
                ra->w.db = v;
            else
                ra->w.jsonl = v;
            continue;
        }
        took = own != NULL ? own(argc, argv, &i, ud) : 0;
        if (took < 0)
            return EXIT_USAGE;
        if (took > 0)
            continue;
        if (a[0] == '-' && a[1] != '\0') {
            cli_error("runs %s: unknown option %s (see council runs %s --help)",
                      cmd, a, cmd);
            return EXIT_USAGE;
        }
        if (ra->id != NULL) {
            cli_error("runs %s: one run id only", cmd);
            return EXIT_USAGE;
        }
        ra->id = a;
    }
    if (ra->id == NULL) {
        cli_error("runs %s: which run? (council runs %s RUN_ID; see "
                  "council runs list)",
                  cmd, cmd);
        return EXIT_USAGE;
    }
    if (ra->w.db != NULL && ra->w.jsonl != NULL) {
        cli_error("runs %s: --db and --jsonl exclude each other", cmd);
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- show ------------------------------------------------------------------
 */

typedef struct show_opts {
    int json, events;
} show_opts;

static int
show_own(int argc, char **argv, int *i, void *ud)
{
    show_opts *o = ud;

    (void)argc;
    if (strcmp(argv[*i], "--json") == 0)
        o->json = 1;
    else if (strcmp(argv[*i], "--events") == 0)
        o->events = 1;
    else
        return 0;
    return 1;
}

static int
print_event(council_event *ev, void *ud)
{
    const char *line = council_event_json(ev);

    (void)ud;
    if (line != NULL)
        puts(line);
    return 0;
}

static int
cmd_show(int argc, char **argv)
{
    show_opts o = {0, 0};
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    char id[256], *record = NULL;
    run_args ra;
    evlist l;
    int code;

    code = parse_run_args(argc, argv, "show", show_usage, 1, &ra, show_own, &o);
    if (code >= 0)
        return code;
    code = open_store(&ra.w, 0, &s);
    if (code >= 0)
        return code;
    code = resolve(s, &ra.w, ra.id, id, sizeof(id));
    if (code >= 0)
        goto out;
    code = EXIT_COMPLETED;
    if (o.events) {
        rc = council_store_events(s, id, 0, print_event, NULL, &diag);
        if (rc != COUNCIL_OK) {
            cli_error("%s", diag.msg);
            code = EXIT_FAILED;
        }
        goto out;
    }
    rc = council_store_run(s, id, &record, &diag);
    if (rc != COUNCIL_OK) {
        cli_error("%s", diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        code = EXIT_FAILED;
        goto out;
    }
    if (o.json) {
        puts(record);
        goto out;
    }
    /* The report from the events there are; damage is said after it. */
    if (load_events(s, id, &l) != 0)
        code = EXIT_FAILED;
    if (cli_report_run(stdout, record, l.v, l.n, 0) != 0) {
        /* A write error is said once, at exit (cli_finish_stdout). */
        if (!ferror(stdout))
            cli_error("cannot write the report");
        code = EXIT_FAILED;
    }
    if (code != EXIT_COMPLETED)
        cli_error("run %s: the report shows the %zu events before the damage",
                  id, l.n);
    evlist_free(&l);
out:
    council_free(record);
    council_store_close(s);
    return code;
}

/* ---- export
 * ------------------------------------------------------------------ */

typedef struct export_opts {
    int md;
    const char *out;
} export_opts;

static int
export_own(int argc, char **argv, int *i, void *ud)
{
    export_opts *o = ud;
    const char *v;

    if (strcmp(argv[*i], "--format") == 0) {
        if ((v = value_of(argc, argv, i, "export")) == NULL)
            return -1;
        if (strcmp(v, "md") == 0)
            o->md = 1;
        else if (strcmp(v, "json") == 0)
            o->md = 0;
        else {
            cli_error("--format %s: expected json or md", v);
            return -1;
        }
        return 1;
    }
    if (strcmp(argv[*i], "-o") == 0 || strcmp(argv[*i], "--output") == 0) {
        if ((o->out = value_of(argc, argv, i, "export")) == NULL)
            return -1;
        return 1;
    }
    return 0;
}

/* The export as JSON: {"run": record, "events": [...]}, indented. */
static int
export_json(FILE *f, const char *record, evlist *l)
{
    json_t *doc = json_object(), *evs = json_array();
    json_t *rec = json_loads(record, JSON_ALLOW_NUL, NULL);
    size_t i;
    int rc = -1;

    if (doc == NULL || evs == NULL || rec == NULL)
        goto out;
    for (i = 0; i < l->n; i++) {
        const char *js = council_event_json(l->v[i]);
        json_t *e = js != NULL ? json_loads(js, JSON_ALLOW_NUL, NULL) : NULL;

        if (e == NULL || json_array_append_new(evs, e) != 0)
            goto out;
    }
    if (json_object_set(doc, "run", rec) != 0 ||
        json_object_set(doc, "events", evs) != 0 ||
        json_dumpf(doc, f, JSON_INDENT(2)) != 0)
        goto out;
    fputc('\n', f);
    rc = ferror(f) ? -1 : 0;
out:
    json_decref(doc);
    json_decref(evs);
    json_decref(rec);
    return rc;
}

static int
cmd_export(int argc, char **argv)
{
    export_opts o = {1, NULL};
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    char id[256], tmp[4200], *record = NULL;
    FILE *f = stdout;
    run_args ra;
    evlist l;
    int code, fd = -1;

    memset(&l, 0, sizeof(l));
    tmp[0] = '\0';
    code = parse_run_args(argc, argv, "export", export_usage, 1, &ra,
                          export_own, &o);
    if (code >= 0)
        return code;
    code = open_store(&ra.w, 0, &s);
    if (code >= 0)
        return code;
    code = resolve(s, &ra.w, ra.id, id, sizeof(id));
    if (code >= 0)
        goto out;
    code = EXIT_FAILED;
    rc = council_store_run(s, id, &record, &diag);
    if (rc != COUNCIL_OK) {
        cli_error("%s", diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        goto out;
    }
    /* An export is the whole run or nothing. */
    if (load_events(s, id, &l) != 0)
        goto out;
    if (o.out != NULL && strcmp(o.out, "-") != 0) {
        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", o.out, (long)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (f == NULL) {
            cli_error("-o %s: cannot write %s: %s", o.out, tmp,
                      strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
    }
    if ((o.md ? cli_report_run(f, record, l.v, l.n, 1)
              : export_json(f, record, &l)) != 0 ||
        fflush(f) != 0) {
        cli_error("cannot write the export%s%s", o.out ? " to " : "",
                  o.out ? o.out : "");
        goto out;
    }
    if (f != stdout) {
        /* Whole files: synced, then renamed into place. */
        if (fsync(fileno(f)) != 0 || fclose(f) != 0) {
            f = NULL;
            cli_error("-o %s: cannot write %s: %s", o.out, tmp,
                      strerror(errno));
            goto out;
        }
        f = stdout;
        if (rename(tmp, o.out) != 0) {
            cli_error("-o %s: cannot rename %s into place: %s", o.out, tmp,
                      strerror(errno));
            goto out;
        }
        tmp[0] = '\0';
    }
    code = EXIT_COMPLETED;
out:
    if (f != NULL && f != stdout)
        fclose(f);
    if (o.out != NULL && fd >= 0 && tmp[0] != '\0')
        unlink(tmp);
    evlist_free(&l);
    council_free(record);
    council_store_close(s);
    return code;
}

/* ---- delete
 * ------------------------------------------------------------------ */

static int
delete_own(int argc, char **argv, int *i, void *ud)
{
    (void)argc;
    if (strcmp(argv[*i], "--force") != 0)
        return 0;
    *(int *)ud = 1;
    return 1;
}

static int
cmd_delete(int argc, char **argv)
{
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    run_args ra;
    char id[256];
    int force = 0, code;

    code = parse_run_args(argc, argv, "delete", delete_usage, 0, &ra,
                          delete_own, &force);
    if (code >= 0)
        return code;
    code = open_store(&ra.w, force ? COUNCIL_STORE_DELETE_UNFINISHED : 0, &s);
    if (code >= 0)
        return code;
    code = resolve(s, &ra.w, ra.id, id, sizeof(id));
    if (code >= 0)
        goto out;
    rc = council_store_delete(s, id, &diag);
    if (rc == COUNCIL_EBUSY) {
        cli_error("%s; if its process is gone, delete it with --force",
                  diag.msg);
        code = EXIT_FAILED;
    } else if (rc != COUNCIL_OK) {
        cli_error("%s", diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        code = EXIT_FAILED;
    } else {
        printf("deleted run %s from %s\n", id, ra.w.path);
        code = EXIT_COMPLETED;
    }
out:
    council_store_close(s);
    return code;
}

/* ---- replay
 * ------------------------------------------------------------------ */

typedef struct replay_opts {
    int paced, json, quiet;
    const char *run_id;
    cli_record rec[CLI_MAX_RECORD];
    int n_rec;
    cli_webhook_opts wo;
} replay_opts;

static int
replay_own(int argc, char **argv, int *i, void *ud)
{
    replay_opts *o = ud;
    const char *a = argv[*i], *v;

    if (strcmp(a, "--json") == 0) {
        o->json = 1;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
        o->quiet = 1;
    } else if (strcmp(a, "--pace") == 0) {
        if ((v = value_of(argc, argv, i, "replay")) == NULL)
            return -1;
        if (strcmp(v, "recorded") == 0)
            o->paced = 1;
        else if (strcmp(v, "fast") == 0)
            o->paced = 0;
        else {
            cli_error("--pace %s: expected recorded or fast", v);
            return -1;
        }
    } else if (strcmp(a, "--record") == 0) {
        if ((v = value_of(argc, argv, i, "replay")) == NULL)
            return -1;
        if (o->n_rec == CLI_MAX_RECORD) {
            cli_error("at most %d --record options", CLI_MAX_RECORD);
            return -1;
        }
        if (cli_parse_record(v, &o->rec[o->n_rec]) != 0)
            return -1;
        o->n_rec++;
    } else if (cli_is_webhook_opt(a)) {
        if (cli_parse_webhook_opt(argc, argv, i, &o->wo) != 0)
            return -1;
    } else if (strcmp(a, "--run-id") == 0) {
        if ((o->run_id = value_of(argc, argv, i, "replay")) == NULL)
            return -1;
    } else {
        return 0;
    }
    return 1;
}

/* Say on stderr when the record of run id lacks events it had. */
static void
warn_incomplete(council_store *s, const char *id)
{
    char *text = NULL;
    json_t *j;

    if (council_store_run(s, id, &text, NULL) != COUNCIL_OK)
        return;
    j = json_loads(text, JSON_ALLOW_NUL, NULL);
    if (json_is_true(json_object_get(j, "incomplete")))
        cli_error(
            "run %s: the record is incomplete: %lld of the %lld events "
            "the run emitted are stored; the replay ends where the "
            "record does (recorded outcome: %s)",
            id, (long long)json_integer_value(json_object_get(j, "events")),
            (long long)json_integer_value(json_object_get(j, "events_emitted")),
            json_string_value(json_object_get(j, "outcome")));
    json_decref(j);
    council_free(text);
}

static int
cmd_replay(int argc, char **argv)
{
    replay_opts o;
    council_store *s = NULL;
    council_engine *eng = NULL;
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_recorder_spec specs[CLI_MAX_RECORD + 1];
    council_run *run = NULL;
    cli_display *d = NULL;
    cli_log logs = {PTHREAD_MUTEX_INITIALIZER};
    council_diag diag;
    council_err rc;
    run_args ra;
    evlist l;
    char id[256];
    int code, i;

    memset(&o, 0, sizeof(o));
    memset(&l, 0, sizeof(l));
    code = parse_run_args(argc, argv, "replay", replay_usage, 1, &ra,
                          replay_own, &o);
    if (code >= 0)
        return code;
    if (cli_records_finish(o.rec, o.n_rec, &o.wo) != 0)
        return EXIT_USAGE;
    code = open_store(&ra.w, 0, &s);
    if (code >= 0)
        return code;
    code = resolve(s, &ra.w, ra.id, id, sizeof(id));
    if (code >= 0)
        goto out;
    code = EXIT_FAILED;
    if (load_events(s, id, &l) != 0) {
        cli_error("run %s: not replayed (its record is damaged)", id);
        goto out;
    }
    warn_incomplete(s, id);
    /* Done with the store before recording, maybe into the same file. */
    council_store_close(s);
    s = NULL;
    d = cli_display_new(cli_view_choose(o.json, o.quiet));
    eo.log = cli_log_line;
    eo.log_ud = &logs;
    if (d == NULL || council_engine_open(&eo, &eng) != COUNCIL_OK) {
        cli_error("cannot open the engine");
        goto out;
    }
    for (i = 0; i < o.n_rec; i++) {
        specs[i].ops = o.rec[i].ops;
        specs[i].args = cli_record_args(&o.rec[i]);
    }
    specs[o.n_rec].ops = cli_display_ops();
    specs[o.n_rec].args = d;
    ro.recorders = specs;
    ro.n_recorders = (size_t)o.n_rec + 1;
    ro.run_id = o.run_id;
    cli_catch_interrupts();
    rc = council_run_replay(eng, &ro, l.v, l.n,
                            o.paced ? COUNCIL_REPLAY_PACED : 0, &run, &diag);
    if (rc != COUNCIL_OK) {
        if (rc == COUNCIL_EEXIST)
            cli_error("cannot replay: %s (--run-id)", diag.msg);
        else
            cli_error("cannot replay run %s: %s", id,
                      diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        code = rc == COUNCIL_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    code = cli_report(d, council_run_id(run), cli_wait(run, d));
    cli_log_summary(&logs, council_run_id(run), o.rec, o.n_rec);
    if (cli_check_records(council_run_id(run), o.rec, o.n_rec) > 0 &&
        code == EXIT_COMPLETED)
        code = EXIT_INCOMPLETE;
    if (!o.json && !o.quiet)
        for (i = 0; i < o.n_rec; i++)
            fprintf(stderr, "council: replay of run %s %s %s\n", id,
                    o.rec[i].ops == council_recorder_webhook()
                        ? "handed to webhook"
                        : "recorded in",
                    cli_record_shown(&o.rec[i]));
out:
    council_run_release(run);
    council_engine_close(eng);
    cli_display_free(d);
    evlist_free(&l);
    council_store_close(s);
    fflush(stdout);
    return code;
}

/* ---- dispatch
 * ------------------------------------------------------------------ */

int
council_cmd_runs(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub == NULL || is_help(sub)) {
        fputs(runs_usage, sub == NULL ? stderr : stdout);
        return sub == NULL ? EXIT_USAGE : 0;
    }
    if (strcmp(sub, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    if (strcmp(sub, "replay") == 0)
        return cmd_replay(argc - 1, argv + 1);
    if (strcmp(sub, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(sub, "delete") == 0)
        return cmd_delete(argc - 1, argv + 1);
    cli_error("runs: unknown subcommand '%s' (see council runs --help)", sub);
    return EXIT_USAGE;
}
