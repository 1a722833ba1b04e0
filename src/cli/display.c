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
 */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
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
    d->mode = view;
    d->color = nc == NULL || nc[0] == '\0';
    return d;
}

void
cli_display_free(cli_display *d)
{
    if (d == NULL)
        return;
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
        if (line != NULL) {
            fputs(line, stdout);
            fputc('\n', stdout);
            fflush(stdout);
        }
        return 0;
    }
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
    json_decref(j);
    return 0;
}

static void
d_final(void *state, const council_outcome *o)
{
    cli_display *d = state;

    (void)o;
    draw(d, 1);
}

static const council_recorder_ops display_ops = {
    COUNCIL_RECORDER_OPS_VERSION, d_init, d_event, d_final, NULL};

const council_recorder_ops *
cli_display_ops(void)
{
    return &display_ops;
}

/* ---- --record specs ------------------------------------------------------ */

int
cli_parse_record(const char *spec, cli_record *out)
{
    if (strncmp(spec, "sqlite:", 7) == 0 && spec[7] != '\0') {
        out->ops = council_recorder_sqlite();
        out->path = spec + 7;
        return 0;
    }
    if (strncmp(spec, "jsonl:", 6) == 0 && spec[6] != '\0') {
        out->ops = council_recorder_jsonl();
        out->path = spec + 6;
        return 0;
    }
    cli_error("--record %s: expected sqlite:PATH or jsonl:DIR", spec);
    return -1;
}

/* ---- waiting for the end ----------------------------------------------------
 */

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
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
}

const council_outcome *
cli_wait(council_run *run, cli_display *d)
{
    const council_outcome *out = NULL;

    for (;;) {
        if (council_run_wait(run, 100, &out) == COUNCIL_OK)
            return out;
        if (interrupted == 1) {
            interrupted = 2;
            if (d->mode == CLI_VIEW_PLAIN || d->mode == CLI_VIEW_LIVE)
                fprintf(stderr, "\ncouncil: cancelling (Ctrl-C)\n");
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
        }
        return EXIT_COMPLETED;
    case COUNCIL_OUTCOME_CANCELLED:
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
