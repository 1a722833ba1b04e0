/* SPDX-License-Identifier: MIT */
/*
 * What `council run` and `council runs replay` show while a run goes: the
 * display recorder, the --record specs, and the wait for the end (Ctrl-C
 * cancels) with the outcome's report and exit code.  A replay goes through
 * the same recorder, so it looks exactly like the run did.
 *
 * The display is itself a recorder, so it sees every event from
 * run_started on, in order; it takes the council's name and its members
 * from run_started.  On a terminal it keeps a live view on stderr (one line
 * per member, redrawn at most every 50 ms); otherwise it prints plain
 * progress lines; with --json every event goes to stdout as a line.
 *
 * The live view is redrawn in place: the cursor goes up the lines drawn
 * last time, and each line is cleared and written again.  That holds only
 * while nothing else writes to the terminal between two frames, so a
 * notice said during a run (Ctrl-C) goes through the display
 * (display_note): under the display's lock, it takes the place of the
 * frame's first line and the frame is drawn again below it.  (A notice
 * written beside the frame moved the cursor two lines down, and the next
 * frame landed two lines low, under stale lines of the old one.)
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum row_state { ROW_IDLE, ROW_WAITING, ROW_STREAMING, ROW_DONE, ROW_FAILED };

#define MAX_ROWS 27

typedef struct row {
    char name[72];
    enum row_state state;
    long tokens;
    double seconds;
    char note[160];
} row;

struct cli_display {
    /* The recorder's thread draws, the main thread says notices: the
     * view's state and the terminal's cursor are under mu. */
    pthread_mutex_t mu;
    enum cli_view mode;
    int color;
    char council[72];
    char stage[32];
    row rows[MAX_ROWS]; /* members, then the chairman */
    int n_rows;
    int drawn; /* lines drawn last time (live mode) */
    struct timespec last_draw;
    char *answer; /* the synthesis text */
    size_t answer_len;
};

enum cli_view
cli_view_choose(int json, int quiet)
{
    return json                    ? CLI_VIEW_JSON
           : quiet                 ? CLI_VIEW_QUIET
           : isatty(STDERR_FILENO) ? CLI_VIEW_LIVE
                                   : CLI_VIEW_PLAIN;
}

cli_display *
cli_display_new(enum cli_view view)
{
    cli_display *d = calloc(1, sizeof(*d));
    const char *nc = getenv("NO_COLOR");

    if (d == NULL)
        return NULL;
    pthread_mutex_init(&d->mu, NULL);
    d->mode = view;
    d->color = nc == NULL || nc[0] == '\0';
    return d;
}

void
cli_display_free(cli_display *d)
{
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->mu);
    free(d->answer);
    free(d);
}

static const char *
paint(const cli_display *d, const char *code)
{
    return d->color ? code : "";
}

static int
row_of(cli_display *d, const char *member)
{
    int i;

    if (member == NULL)
        return d->n_rows - 1; /* run-level synthesis events: chairman */
    for (i = 0; i < d->n_rows; i++)
        if (strcmp(d->rows[i].name, member) == 0)
            return i;
    return -1;
}

/* The council and its rows (members, then the chairman) from run_started. */
static void
set_rows(cli_display *d, json_t *started)
{
    json_t *members = json_object_get(started, "members"), *m;
    const char *council =
        json_string_value(json_object_get(started, "council"));
    size_t i;
    int n = 0;

    snprintf(d->council, sizeof(d->council), "%s",
             council != NULL ? council : "?");
    json_array_foreach (members, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));

        if (n == MAX_ROWS - 1)
            break;
        snprintf(d->rows[n].name, sizeof(d->rows[n].name), "%s",
                 name != NULL ? name : "?");
        n++;
    }
    snprintf(d->rows[n].name, sizeof(d->rows[n].name), "chairman");
    d->n_rows = n + 1;
}

static double
elapsed_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void
draw(cli_display *d, int force)
{
    int i;

    if (d->mode != CLI_VIEW_LIVE || d->n_rows == 0)
        return;
    if (!force && d->drawn > 0 && elapsed_since(&d->last_draw) < 0.05)
        return;
    clock_gettime(CLOCK_MONOTONIC, &d->last_draw);
    if (d->drawn > 0)
        fprintf(stderr, "\033[%dA", d->drawn);
    fprintf(stderr, "\r\033[2K%scouncil %s%s  stage: %s\n", paint(d, "\033[1m"),
            d->council, paint(d, "\033[0m"), d->stage);
    for (i = 0; i < d->n_rows; i++) {
        row *r = &d->rows[i];
        const char *what = "", *col = "";
        char detail[200] = "";
        switch (r->state) {
        case ROW_IDLE:
            what = "-";
            break;
        case ROW_WAITING:
            what = "waiting";
            col = "\033[2m";
            break;
        case ROW_STREAMING:
            what = "streaming";
            col = "\033[33m";
            snprintf(detail, sizeof(detail), "%ld tokens", r->tokens);
            break;
        case ROW_DONE:
            what = "done";
            col = "\033[32m";
            snprintf(detail, sizeof(detail), "%ld tokens  %.1f s  %s",
                     r->tokens, r->seconds, r->note);
            break;
        case ROW_FAILED:
            what = "failed";
            col = "\033[31m";
            snprintf(detail, sizeof(detail), "%s", r->note);
            break;
        }
        fprintf(stderr, "\r\033[2K  %-10s %s%-9s%s %.100s\n", r->name,
                paint(d, col), what, paint(d, "\033[0m"), detail);
    }
    d->drawn = d->n_rows + 1;
    fflush(stderr);
}

/* A line said while the run goes: in the live view, in the place of the
 * frame's first line, the frame drawn again below it (the cursor ends
 * under the frame, as after any frame); else a line of its own.  Clears
 * what the terminal echoed of the key (^C) on the line under the
 * frame. */
static void
display_note(cli_display *d, const char *msg)
{
    pthread_mutex_lock(&d->mu);
    if (d->mode == CLI_VIEW_LIVE) {
        if (d->drawn > 0)
            fprintf(stderr, "\033[%dA", d->drawn);
        fprintf(stderr, "\r\033[2Kcouncil: %s\n", msg);
        d->drawn = 0;
        draw(d, 1);
        fflush(stderr);
    } else if (d->mode == CLI_VIEW_PLAIN) {
        fprintf(stderr, "\ncouncil: %s\n", msg);
    } else {
        fprintf(stderr, "council: %s\n", msg);
    }
    pthread_mutex_unlock(&d->mu);
}

static void plain(cli_display *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
plain(cli_display *d, const char *fmt, ...)
{
    va_list ap;

    if (d->mode != CLI_VIEW_PLAIN)
        return;
    fprintf(stderr, "[%s] ", d->stage[0] != '\0' ? d->stage : "run");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void
error_text(json_t *ev, char *out, size_t size)
{
    json_t *e = json_object_get(ev, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *kind = json_string_value(json_object_get(e, "kind"));

    snprintf(out, size, "%s: %s", kind != NULL ? kind : "error",
             msg != NULL ? msg : "(no message)");
}

static int
d_init(const char *run_id, void *args, void **state, char *why, size_t n)
{
    (void)run_id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
d_event(void *state, council_event *ev)
{
    cli_display *d = state;
    council_event_type t = council_event_type_of(ev);
    const char *member = council_event_member(ev);
    json_t *j = NULL;
    int r;

    if (d->mode == CLI_VIEW_JSON) {
        const char *line = council_event_json(ev);

        /* Once the reader of stdout has gone, nothing more is written:
         * the run is being cancelled (cli_wait). */
        if (line != NULL && cli_stop_signal() != SIGPIPE) {
            fputs(line, stdout);
            fputc('\n', stdout);
            if (fflush(stdout) != 0 && errno == EPIPE)
                cli_stdout_closed();
        }
        return 0;
    }
    pthread_mutex_lock(&d->mu);
    if (t != COUNCIL_EV_MEMBER_DELTA && t != COUNCIL_EV_SYNTHESIS_DELTA) {
        const char *text = council_event_json(ev);
        j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    }
    r = row_of(d, member);
    switch (t) {
    case COUNCIL_EV_RUN_STARTED:
        set_rows(d, j);
        break;
    case COUNCIL_EV_STAGE_STARTED: {
        int i;
        snprintf(d->stage, sizeof(d->stage), "%s",
                 council_event_stage(ev) != NULL ? council_event_stage(ev)
                                                 : "?");
        /* Rows restart for the stages members take part in; during the
         * synthesis the members keep showing how their review went. */
        for (i = 0; i < d->n_rows - 1; i++) {
            if (strcmp(d->stage, "synthesis") == 0)
                break;
            d->rows[i].state = ROW_IDLE;
            d->rows[i].tokens = 0;
            d->rows[i].note[0] = '\0';
        }
        plain(d, "stage started");
        break;
    }
    case COUNCIL_EV_MEMBER_STARTED:
    case COUNCIL_EV_SYNTHESIS_STARTED:
        if (r >= 0)
            d->rows[r].state = ROW_WAITING;
        plain(d, "%s: started (%s)", r >= 0 ? d->rows[r].name : "?",
              json_string_value(json_object_get(j, "model")));
        break;
    case COUNCIL_EV_MEMBER_DELTA:
    case COUNCIL_EV_SYNTHESIS_DELTA:
        if (r >= 0) {
            d->rows[r].state = ROW_STREAMING;
            d->rows[r].tokens++;
        }
        break;
    case COUNCIL_EV_MEMBER_COMPLETED:
    case COUNCIL_EV_REVIEW_COMPLETED:
    case COUNCIL_EV_SYNTHESIS_COMPLETED:
        if (r >= 0) {
            row *w = &d->rows[r];
            json_t *u = json_object_get(j, "usage");
            json_t *ct = json_object_get(u, "completion_tokens");
            w->state = ROW_DONE;
            if (json_is_integer(ct))
                w->tokens = (long)json_integer_value(ct);
            w->seconds =
                (double)json_integer_value(json_object_get(j, "latency_ms")) /
                1000.0;
            w->note[0] = '\0';
            if (t == COUNCIL_EV_REVIEW_COMPLETED) {
                json_t *rk = json_object_get(j, "ranking");
                size_t i, used = 0;
                json_t *v;
                if (json_is_array(rk)) {
                    json_array_foreach (rk, i, v) {
                        int k = snprintf(w->note + used, sizeof(w->note) - used,
                                         "%s%s", i > 0 ? " > " : "",
                                         json_string_value(v));
                        if (k < 0 || (size_t)k >= sizeof(w->note) - used)
                            break;
                        used += (size_t)k;
                    }
                } else {
                    snprintf(w->note, sizeof(w->note), "(ranking unparsed)");
                }
            }
            plain(d, "%s: done, %ld tokens, %.2f s%s%s", w->name, w->tokens,
                  w->seconds, w->note[0] != '\0' ? ", ranked " : "", w->note);
        }
        if (t == COUNCIL_EV_SYNTHESIS_COMPLETED) {
            free(d->answer);
            d->answer = malloc(council_event_text_len(ev) + 1);
            if (d->answer != NULL) {
                memcpy(d->answer, council_event_text(ev),
                       council_event_text_len(ev));
                d->answer[council_event_text_len(ev)] = '\0';
                d->answer_len = council_event_text_len(ev);
            }
        }
        break;
    case COUNCIL_EV_MEMBER_FAILED:
        if (r >= 0) {
            d->rows[r].state = ROW_FAILED;
            error_text(j, d->rows[r].note, sizeof(d->rows[r].note));
            plain(d, "%s: FAILED: %s", d->rows[r].name, d->rows[r].note);
        }
        break;
    case COUNCIL_EV_RANKINGS_AGGREGATED: {
        json_t *agg = json_object_get(j, "aggregate"), *v;
        char line[400];
        size_t i, used = 0;
        line[0] = '\0';
        json_array_foreach (agg, i, v) {
            int k =
                snprintf(line + used, sizeof(line) - used,
                         "%s%s (mean rank %.2f)", i > 0 ? ", " : "",
                         json_string_value(json_object_get(v, "member")),
                         json_number_value(json_object_get(v, "mean_rank")));
            if (k < 0 || (size_t)k >= sizeof(line) - used)
                break;
            used += (size_t)k;
        }
        plain(d, "aggregate: %s", line);
        break;
    }
    case COUNCIL_EV_STAGE_COMPLETED:
        plain(d, "stage completed");
        break;
    case COUNCIL_EV_RUN_COMPLETED:
    case COUNCIL_EV_RUN_FAILED:
        break;
    }
    draw(d, t != COUNCIL_EV_MEMBER_DELTA && t != COUNCIL_EV_SYNTHESIS_DELTA);
    pthread_mutex_unlock(&d->mu);
    json_decref(j);
    return 0;
}

static void
d_final(void *state, const council_outcome *o)
{
    cli_display *d = state;

    (void)o;
    pthread_mutex_lock(&d->mu);
    draw(d, 1);
    pthread_mutex_unlock(&d->mu);
}

static const council_recorder_ops display_ops = {
    COUNCIL_RECORDER_OPS_VERSION, d_init, d_event, d_final, NULL};

const council_recorder_ops *
cli_display_ops(void)
{
    return &display_ops;
}

/* ---- --record specs ------------------------------------------------------ */

/* url without its user:password and with "?..." for its query. */
static void
shown_url(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://"), *auth = p != NULL ? p + 3 : url;
    const char *end = auth + strcspn(auth, "/?#"), *q, *at = NULL;

    for (q = auth; q < end; q++)
        if (*q == '@')
            at = q;
    q = (at != NULL ? at + 1 : auth);
    snprintf(out, size, "%.*s%.*s%s", (int)(auth - url), url,
             (int)strcspn(q, "?#"), q,
             q[strcspn(q, "?#")] != '\0' ? "?..." : "");
}

int
cli_parse_record(const char *spec, cli_record *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(spec, "sqlite:", 7) == 0 && spec[7] != '\0') {
        out->ops = council_recorder_sqlite();
        out->path = spec + 7;
    } else if (strncmp(spec, "jsonl:", 6) == 0 && spec[6] != '\0') {
        out->ops = council_recorder_jsonl();
        out->path = spec + 6;
    } else if (strncmp(spec, "webhook:", 8) == 0 && spec[8] != '\0') {
        out->ops = council_recorder_webhook();
        out->path = spec + 8;
        if (strncmp(out->path, "http://", 7) != 0 &&
            strncmp(out->path, "https://", 8) != 0) {
            shown_url(out->path, out->url_shown, sizeof(out->url_shown));
            cli_error("--record webhook:%s: expected an http:// or https:// "
                      "URL",
                      out->url_shown);
            return -1;
        }
        shown_url(out->path, out->url_shown, sizeof(out->url_shown));
        out->wh.version = COUNCIL_WEBHOOK_ARGS_VERSION;
        out->wh.url = out->path;
        return 0;
    } else if (strncmp(spec, "redis:", 6) == 0) {
        council_diag diag;

        out->ops = council_recorder_redis();
        out->path = spec + 6;
        shown_url(out->path, out->url_shown, sizeof(out->url_shown));
        if (council_redis_url_check(out->path, &diag) != COUNCIL_OK) {
            /* Both name the URL without its password. */
            cli_error("--record redis:%s: %s", out->url_shown,
                      diag.msg[0] != '\0' ? diag.msg : "out of memory");
            return -1;
        }
        out->redis.version = COUNCIL_RECORDER_REDIS_ARGS_VERSION;
        out->redis.url = out->path;
        return 0;
    } else {
        char shown[512];

        shown_url(spec, shown, sizeof(shown));
        cli_error("--record %s: expected sqlite:PATH, jsonl:DIR, "
                  "webhook:URL or redis:URL",
                  shown);
        return -1;
    }
    return 0;
}

const char *
cli_record_shown(const cli_record *r)
{
    return r->ops == council_recorder_webhook() ||
                   r->ops == council_recorder_redis()
               ? r->url_shown
               : r->path;
}

void *
cli_record_args(cli_record *r)
{
    if (r->ops == council_recorder_redis())
        return &r->redis;
    return r->ops == council_recorder_webhook() ? (void *)&r->wh
                                                : (void *)r->path;
}

const char *
cli_record_kind(const cli_record *r)
{
    return r->ops == council_recorder_sqlite()  ? "sqlite"
           : r->ops == council_recorder_jsonl() ? "jsonl"
           : r->ops == council_recorder_redis() ? "redis"
                                                : "webhook";
}

int
cli_is_webhook_opt(const char *a)
{
    return strcmp(a, "--webhook-secret-env") == 0 ||
           strcmp(a, "--webhook-events") == 0;
}

int
cli_parse_webhook_opt(int argc, char **argv, int *i, cli_webhook_opts *o)
{
    const char *a = argv[*i];

    if (strcmp(a, "--webhook-events") == 0) {
        o->events = 1;
        return 0;
    }
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", a);
        return -1;
    }
    o->secret_env = argv[++*i];
    if (o->secret_env[0] == '\0' || strchr(o->secret_env, '=') != NULL) {
        cli_error("--webhook-secret-env %s: expected the name of an "
                  "environment variable",
                  o->secret_env);
        return -1;
    }
    return 0;
}

int
cli_records_finish(cli_record *rec, int n, const cli_webhook_opts *o)
{
    const char *secret = NULL;
    int i, any = 0;

    for (i = 0; i < n; i++)
        any |= rec[i].ops == council_recorder_webhook();
    if (!any)
        return 0;
    if (o->secret_env != NULL) {
        secret = getenv(o->secret_env);
        if (secret == NULL || secret[0] == '\0') {
            cli_error("--webhook-secret-env %s: the environment variable %s "
                      "is not set (or empty)",
                      o->secret_env, o->secret_env);
            return -1;
        }
    } else {
        secret = getenv("COUNCIL_WEBHOOK_SECRET");
    }
    for (i = 0; i < n; i++) {
        if (rec[i].ops != council_recorder_webhook())
            continue;
        rec[i].wh.secret = secret;
        rec[i].wh.events = o->events;
    }
    return 0;
}

/* ---- waiting for the end ----------------------------------------------------
 */

/* The signal that stops the command (SIGPIPE: stdout closed), or 0.
 * Written by the handler and by the recorder thread that met EPIPE; a
 * lock-free atomic, so both may. */
static atomic_int stop_sig;

static void
on_signal(int sig)
{
    int none = 0;

    atomic_compare_exchange_strong(&stop_sig, &none, sig);
}

void
cli_stdout_closed(void)
{
    on_signal(SIGPIPE);
}

int
cli_stop_signal(void)
{
    return atomic_load(&stop_sig);
}

const char *
cli_stop_reason(int sig)
{
    switch (sig) {
    case SIGINT:
        return "interrupted (Ctrl-C)";
    case SIGTERM:
        return "terminated (SIGTERM)";
    case SIGHUP:
        return "hangup (SIGHUP)";
    case SIGPIPE:
        return "stdout closed (broken pipe)";
    default:
        return "stopped";
    }
}

void
cli_catch_interrupts(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* A closed stdout is an EPIPE on the write (display.c, cli_report),
     * where it is known to be stdout's, not a signal that kills the
     * process before the run is recorded. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

const council_outcome *
cli_wait(council_run *run, cli_display *d)
{
    const council_outcome *out = NULL;
    int acted = 0;

    for (;;) {
        int sig;

        if (council_run_wait(run, 100, &out) == COUNCIL_OK)
            return out;
        sig = cli_stop_signal();
        if (sig != 0 && !acted) {
            /* Said in every view: it is why the command ends so. */
            char note[128];
            acted = 1;
            snprintf(note, sizeof(note), "cancelling the run: %s",
                     cli_stop_reason(sig));
            display_note(d, note);
            council_run_cancel(run);
        }
    }
}

int
cli_report(cli_display *d, const char *run_id, const council_outcome *out)
{
    const char *reason = council_outcome_reason(out);

    switch (council_outcome_kind_of(out)) {
    case COUNCIL_OUTCOME_OK:
        if (d->mode != CLI_VIEW_JSON && d->answer != NULL) {
            fwrite(d->answer, 1, d->answer_len, stdout);
            if (d->answer_len == 0 || d->answer[d->answer_len - 1] != '\n')
                fputc('\n', stdout);
            if (fflush(stdout) != 0 && errno == EPIPE) {
                cli_stdout_closed();
                cli_error("run %s completed; its answer was not written: %s",
                          run_id, cli_stop_reason(SIGPIPE));
            }
        }
        return EXIT_COMPLETED;
    case COUNCIL_OUTCOME_CANCELLED:
        if (cli_stop_signal() != 0)
            cli_error("run %s cancelled: %s", run_id,
                      cli_stop_reason(cli_stop_signal()));
        else
            cli_error("run %s cancelled", run_id);
        return EXIT_CANCELLED;
    case COUNCIL_OUTCOME_CRASHED:
        cli_error("run %s crashed: %s", run_id,
                  reason != NULL ? reason : "(no reason)");
        return EXIT_CRASHED;
    default:
        cli_error("run %s failed: %s", run_id,
                  reason != NULL ? reason : "(no reason)");
        return EXIT_FAILED;
    }
}

/* ---- what the recorders kept ---------------------------------------------
 */

/*
 * Method (one line per failure episode).  The engine logs the first event
 * of each episode of a recorder's failures ("run ID: recorder N failed on
 * seq S (...)") and sums the episode up in a line of its own ("run ID:
 * recorder N failed on K events (seq A to B)", core/rechost.c).  The first
 * lines are printed and counted; the sums are added to the count, not
 * printed; cli_log_summary says how many and which seqs, with the
 * recorder's path, once the run has ended.  Every other line goes through
 * as it is.
 */
/* Set when the redis recorder logged that the run's record in Redis lacks
 * something (each of its log lines says so): read by check_record, which
 * cannot read Redis back.  One run per command. */
static atomic_int redis_incomplete;

void
cli_log_line(const char *line, void *ud)
{
    cli_log *l = ud;
    const char *p =
        strncmp(line, "run ", 4) == 0 ? strstr(line, ": recorder ") : NULL;
    unsigned long long seq, k, a, b;
    int idx;

    if (strncmp(line, "run ", 4) == 0 && strstr(line, ": redis recorder ("))
        atomic_store(&redis_incomplete, 1);

    if (l != NULL && p != NULL &&
        sscanf(p, ": recorder %d failed on seq %llu", &idx, &seq) == 2 &&
        idx >= 0 && idx < CLI_LOG_RECORDERS) {
        pthread_mutex_lock(&l->mu);
        if (l->rec[idx].n++ == 0)
            l->rec[idx].first = seq;
        l->rec[idx].last = seq;
        pthread_mutex_unlock(&l->mu);
        fprintf(stderr, "council: %s\n", line);
        return;
    }
    if (l != NULL && p != NULL &&
        sscanf(p, ": recorder %d failed on %llu events (seq %llu to %llu)",
               &idx, &k, &a, &b) == 4 &&
        idx >= 0 && idx < CLI_LOG_RECORDERS && k > 0) {
        pthread_mutex_lock(&l->mu);
        l->rec[idx].n += k - 1; /* its first was counted */
        l->rec[idx].last = b;
        pthread_mutex_unlock(&l->mu);
        return;
    }
    fprintf(stderr, "council: %s\n", line);
}

void
cli_log_summary(cli_log *l, const char *run_id, const cli_record *rec,
                int n_rec)
{
    int i;

    pthread_mutex_lock(&l->mu);
    for (i = 0; i < CLI_LOG_RECORDERS; i++) {
        if (l->rec[i].n == 0)
            continue;
        if (i < n_rec)
            cli_error("run %s: recorder %d (%s:%s) failed on %llu event%s "
                      "(seq %llu to %llu)",
                      run_id, i, cli_record_kind(&rec[i]),
                      cli_record_shown(&rec[i]), l->rec[i].n,
                      l->rec[i].n == 1 ? "" : "s", l->rec[i].first,
                      l->rec[i].last);
        else
            cli_error("run %s: recorder %d failed on %llu event%s (seq %llu "
                      "to %llu)",
                      run_id, i, l->rec[i].n, l->rec[i].n == 1 ? "" : "s",
                      l->rec[i].first, l->rec[i].last);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Read what one record holds; 0 when it is whole, else 1 with why said. */
static int
check_record(const char *run_id, const cli_record *r)
{
    char path[4200], *text = NULL;
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    json_t *j = NULL;
    const char *outcome;
    int bad = 1;

    /* A webhook keeps nothing here to read back: its failures are
     * reported as they happen (the engine's log). */
    if (r->ops == council_recorder_webhook())
        return 0;
    /* Redis is not read back here either: the redis recorder logs what
     * the record in Redis lacks (printed above), and the run's hash says
     * it (lost, emitted). */
    if (r->ops == council_recorder_redis()) {
        if (!atomic_load(&redis_incomplete))
            return 0;
        cli_error("run %s: its record in %s is incomplete (see above)", run_id,
                  r->url_shown);
        return 1;
    }
    if (r->ops == council_recorder_jsonl())
        snprintf(path, sizeof(path), "%s/%s.jsonl", r->path, run_id);
    else
        snprintf(path, sizeof(path), "%s", r->path);
    rc = council_store_open(path, COUNCIL_STORE_READONLY, &s, &diag);
    if (rc == COUNCIL_OK)
        rc = council_store_run(s, run_id, &text, &diag);
    if (rc != COUNCIL_OK) {
        cli_error("run %s: its record in %s cannot be read: %s", run_id, path,
                  diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        goto out;
    }
    j = json_loads(text, JSON_ALLOW_NUL, NULL);
    outcome = json_string_value(json_object_get(j, "outcome"));
    if (outcome == NULL || strcmp(outcome, "running") == 0) {
        cli_error("run %s: its record in %s has no outcome (%lld events "
                  "stored): the store could not be written (a full disk?)",
                  run_id, path,
                  (long long)json_integer_value(json_object_get(j, "events")));
        goto out;
    }
    if (json_is_true(json_object_get(j, "incomplete"))) {
        cli_error(
            "run %s: its record in %s is incomplete: %lld of the %lld events "
            "the run emitted are stored (a full disk?); it says %s",
            run_id, path,
            (long long)json_integer_value(json_object_get(j, "events")),
            (long long)json_integer_value(json_object_get(j, "events_emitted")),
            outcome);
        goto out;
    }
    bad = 0;
out:
    json_decref(j);
    council_free(text);
    council_store_close(s);
    return bad;
}

int
cli_check_records(const char *run_id, const cli_record *rec, int n_rec)
{
    int i, bad = 0;

    for (i = 0; i < n_rec; i++)
        bad += check_record(run_id, &rec[i]);
    return bad;
}
