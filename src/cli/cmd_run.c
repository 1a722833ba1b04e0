/* SPDX-License-Identifier: MIT */
/*
 * council run: load a council (or the built-in demo against an in-process
 * mock LLM), start a run with the chosen recorders plus a display
 * recorder, wait for it (Ctrl-C cancels), print the final answer on
 * stdout and exit with the outcome's code.
 *
 * The display is itself a recorder, so it sees every event from
 * run_started on, in order.  On a terminal it keeps a live view on stderr
 * (one line per member, redrawn at most every 50 ms); otherwise it prints
 * plain progress lines; with --json every event goes to stdout as a line.
 * With --continue, the input is the conversation of a recorded run (read
 * from the SQLite store) followed by the new question.
 */
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char run_usage[] =
    "usage: council run [options] QUESTION\n"
    "\n"
    "Run a council on QUESTION and print the final answer on stdout.\n"
    "Progress goes to stderr: a live view on a terminal, plain lines\n"
    "otherwise.  Ctrl-C cancels the run (it is recorded as cancelled).\n"
    "\n"
    "options:\n"
    "  -c, --council FILE   council definition (YAML or JSON); without it,\n"
    "                       the built-in demo council runs against a mock LLM\n"
    "                       started on a free loopback port (offline)\n"
    "  --record SPEC        where to record the run, repeatable:\n"
    "                         sqlite:PATH   a SQLite store\n"
    "                         jsonl:DIR     DIR/<run_id>.jsonl\n"
    "                       default: the SQLite store at $COUNCIL_DB, or\n"
    "                       $XDG_DATA_HOME/council/runs.db, or\n"
    "                       ~/.local/share/council/runs.db\n"
    "  --no-record          record nothing\n"
    "  --json               print every event as one JSON line on stdout\n"
    "                       (no progress view, no answer line)\n"
    "  --deadline DUR       whole-run deadline (e.g. 90s, 5m); default: the\n"
    "                       council's limits.deadline\n"
    "  --seed N             seed for the reviewers' shuffles (recorded)\n"
    "  --run-id ID          choose the run id (default: a new UUIDv7)\n"
    "  --continue RUN_ID    go on from a recorded run: its messages and its\n"
    "                       final answer, then QUESTION as the next user\n"
    "                       message; read from the first --record sqlite:\n"
    "                       store, else the default store\n"
    "  -q, --quiet          no progress on stderr\n"
    "  -h, --help           this help\n"
    "\n"
    "environment: NO_COLOR disables colors; COUNCIL_DB sets the default\n"
    "store; API keys come from the variables named by api_key_env.\n"
    "\n"
    "exit codes: 0 completed, 1 failed, 2 usage or council-file error,\n"
    "            3 cancelled, 4 crashed\n";

/* The demo council: four members and a chairman on the mock LLM. */
static const char demo_yaml[] =
    "name: demo\n"
    "strategy: rank\n"
    "providers:\n"
    "  mock: { kind: openai, base_url: %s }\n"
    "members:\n"
    "  - { name: alpha, provider: mock, model: mock-a, system: \"You are a "
    "careful analyst.\" }\n"
    "  - { name: beta,  provider: mock, model: mock-b, system: \"You are a "
    "skeptic; look for what is wrong.\" }\n"
    "  - { name: gamma, provider: mock, model: mock-c }\n"
    "  - { name: delta, provider: mock, model: mock-d }\n"
    "chairman: { provider: mock, model: mock-chair }\n"
    "limits: { member_timeout: 30s, deadline: 120s, quorum: 3, "
    "max_tokens: 512 }\n";

/* ---- the display recorder --------------------------------------------- */

enum mode { MODE_LIVE, MODE_PLAIN, MODE_JSON, MODE_QUIET };
enum row_state { ROW_IDLE, ROW_WAITING, ROW_STREAMING, ROW_DONE, ROW_FAILED };

#define MAX_ROWS 27

typedef struct row {
    char name[72];
    enum row_state state;
    long tokens;
    double seconds;
    char note[160];
} row;

typedef struct display {
    enum mode mode;
    int color;
    char council[72];
    char stage[32];
    row rows[MAX_ROWS]; /* members, then the chairman */
    int n_rows;
    int drawn; /* lines drawn last time (live mode) */
    struct timespec last_draw;
    char *answer; /* the synthesis text */
    size_t answer_len;
} display;

static const char *
paint(const display *d, const char *code)
{
    return d->color ? code : "";
}

static int
row_of(display *d, const char *member)
{
    int i;

    if (member == NULL)
        return d->n_rows - 1; /* run-level synthesis events: chairman */
    for (i = 0; i < d->n_rows; i++)
        if (strcmp(d->rows[i].name, member) == 0)
            return i;
    return -1;
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
draw(display *d, int force)
{
    int i;

    if (d->mode != MODE_LIVE)
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

static void plain(display *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
plain(display *d, const char *fmt, ...)
{
    va_list ap;

    if (d->mode != MODE_PLAIN)
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
    display *d = state;
    council_event_type t = council_event_type_of(ev);
    const char *member = council_event_member(ev);
    json_t *j = NULL;
    int r;

    if (d->mode == MODE_JSON) {
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
    display *d = state;

    (void)o;
    draw(d, 1);
}

static const council_recorder_ops display_ops = {
    COUNCIL_RECORDER_OPS_VERSION, d_init, d_event, d_final, NULL};

/* ---- the command --------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

#define MAX_RECORD 16

typedef struct record_spec {
    const council_recorder_ops *ops;
    const char *path;
} record_spec;

static int
parse_record(const char *spec, record_spec *out)
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

static void
log_line(const char *line, void *ud)
{
    (void)ud;
    fprintf(stderr, "council: %s\n", line);
}

int
council_cmd_run(int argc, char **argv)
{
    const char *council_file = NULL, *question = NULL, *run_id = NULL;
    const char *continue_id = NULL, *store = NULL;
    council_message *conv = NULL, *msgs = NULL;
    size_t n_conv = 0;
    record_spec rec[MAX_RECORD];
    int n_rec = 0, no_record = 0, json = 0, quiet = 0, i, code;
    uint64_t deadline_ms = 0, seed = 0;
    char db[4096];
    council_mockllm *mock = NULL;
    council_def *def = NULL;
    council_engine *eng = NULL;
    council_run *run = NULL;
    council_diag diag;
    display *d = NULL;
    council_recorder_spec specs[MAX_RECORD + 1];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    const council_outcome *out = NULL;
    struct sigaction sa;
    council_err rc;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(run_usage, stdout);
            return 0;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--council") == 0) {
            if (v == NULL)
                goto missing;
            council_file = v;
            i++;
        } else if (strcmp(a, "--record") == 0) {
            if (v == NULL)
                goto missing;
            if (n_rec == MAX_RECORD) {
                cli_error("at most %d --record options", MAX_RECORD);
                return EXIT_USAGE;
            }
            if (parse_record(v, &rec[n_rec]) != 0)
                return EXIT_USAGE;
            n_rec++;
            i++;
        } else if (strcmp(a, "--no-record") == 0) {
            no_record = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--deadline") == 0) {
            if (v == NULL)
                goto missing;
            if (council_duration_parse(v, &deadline_ms) != COUNCIL_OK ||
                deadline_ms == 0) {
                cli_error("--deadline %s: expected a duration such as 90s "
                          "or 5m",
                          v);
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            if (v == NULL)
                goto missing;
            seed = strtoull(v, &end, 10);
            if (*v == '\0' || *end != '\0' || seed == 0) {
                cli_error("--seed %s: expected a positive integer", v);
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--continue") == 0) {
            if (v == NULL)
                goto missing;
            continue_id = v;
            i++;
        } else if (strcmp(a, "--run-id") == 0) {
            if (v == NULL)
                goto missing;
            run_id = v;
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("run: unknown option %s (see council run --help)", a);
            return EXIT_USAGE;
        } else if (question == NULL) {
            question = a;
        } else {
            cli_error("run: one question only (quote it)");
            return EXIT_USAGE;
        }
    }
    if (question == NULL || question[0] == '\0') {
        fputs(run_usage, stderr);
        return EXIT_USAGE;
    }
    if (no_record && n_rec > 0) {
        cli_error("--no-record and --record exclude each other");
        return EXIT_USAGE;
    }
    if (!no_record && n_rec == 0) {
        if (cli_default_db(db, sizeof(db), 1) != 0)
            return EXIT_FAILED;
        rec[0].ops = council_recorder_sqlite();
        rec[0].path = db;
        n_rec = 1;
    }
    if (continue_id != NULL) {
        /* The store the run was recorded in: the first sqlite one given,
         * else the default. */
        for (i = 0; i < n_rec && store == NULL; i++)
            if (rec[i].ops == council_recorder_sqlite())
                store = rec[i].path;
        if (store == NULL) {
            if (cli_default_db(db, sizeof(db), 0) != 0)
                return EXIT_FAILED;
            store = db;
        }
        rc = council_store_conversation(store, continue_id, &conv, &n_conv,
                                        &diag);
        if (rc != COUNCIL_OK) {
            if (rc == COUNCIL_ENOTFOUND && diag.msg[0] != '\0' &&
                strncmp(diag.msg, "no run ", 7) == 0)
                cli_error("--continue %s: no such run in %s", continue_id,
                          store);
            else
                cli_error("--continue %s: %s: %s", continue_id, store,
                          diag.msg[0] != '\0' ? diag.msg
                                              : council_strerror(rc));
            return rc == COUNCIL_EIO || rc == COUNCIL_ENOMEM ? EXIT_FAILED
                                                             : EXIT_USAGE;
        }
        msgs = calloc(n_conv + 1, sizeof(*msgs));
        if (msgs == NULL) {
            council_store_conversation_free(conv, n_conv);
            cli_error("out of memory");
            return EXIT_FAILED;
        }
        memcpy(msgs, conv, n_conv * sizeof(*msgs));
        msgs[n_conv].role = "user";
        msgs[n_conv].content = question;
    }

    if (council_file != NULL) {
        rc = council_def_load_file(council_file, &def, &diag);
        if (rc != COUNCIL_OK) {
            if (diag.line > 0)
                fprintf(stderr, "%s:%d:%d: %s\n", diag.file, diag.line,
                        diag.col, diag.msg);
            else
                fprintf(stderr, "%s: %s\n",
                        diag.file[0] ? diag.file : council_file,
                        diag.msg[0] ? diag.msg : council_strerror(rc));
            code = EXIT_USAGE;
            goto out;
        }
    } else {
        council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
        char yaml[2048];
        mo.seed = 1;
        mo.tokens_per_sec = 400;
        rc = council_mockllm_open(&mo, &mock, &diag);
        if (rc != COUNCIL_OK) {
            cli_error("cannot start the mock LLM: %s", diag.msg);
            code = EXIT_FAILED;
            goto out;
        }
        snprintf(yaml, sizeof(yaml), demo_yaml, council_mockllm_base_url(mock));
        rc = council_def_load_string(yaml, strlen(yaml), "<demo>", &def, &diag);
        if (rc != COUNCIL_OK) {
            cli_error("built-in demo council: %s", diag.msg);
            code = EXIT_FAILED;
            goto out;
        }
        if (!json && !quiet)
            fprintf(stderr,
                    "council: no council file (-c): running the built-in "
                    "demo council against a mock LLM at %s\n",
                    council_mockllm_base_url(mock));
    }

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        code = EXIT_FAILED;
        goto out;
    }
    d->mode = json                    ? MODE_JSON
              : quiet                 ? MODE_QUIET
              : isatty(STDERR_FILENO) ? MODE_LIVE
                                      : MODE_PLAIN;
    d->color = getenv("NO_COLOR") == NULL || getenv("NO_COLOR")[0] == '\0';
    snprintf(d->council, sizeof(d->council), "%s", council_def_name(def));
    for (i = 0; i < (int)council_def_member_count(def) && i < MAX_ROWS - 1; i++)
        snprintf(d->rows[i].name, sizeof(d->rows[i].name), "%s",
                 council_def_member_name(def, (size_t)i));
    snprintf(d->rows[i].name, sizeof(d->rows[i].name), "chairman");
    d->n_rows = i + 1;

    eo.log = log_line;
    rc = council_engine_open(&eo, &eng);
    if (rc != COUNCIL_OK) {
        cli_error("cannot open the engine: %s", council_strerror(rc));
        code = EXIT_FAILED;
        goto out;
    }
    for (i = 0; i < n_rec; i++) {
        specs[i].ops = rec[i].ops;
        specs[i].args = (void *)rec[i].path;
    }
    specs[n_rec].ops = &display_ops;
    specs[n_rec].args = d;
    ro.recorders = specs;
    ro.n_recorders = (size_t)n_rec + 1;
    ro.run_id = run_id;
    ro.deadline_ms = deadline_ms;
    ro.seed = seed;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (msgs != NULL)
        rc = council_run_start_messages(eng, def, msgs, n_conv + 1, &ro, &run,
                                        &diag);
    else
        rc = council_run_start(eng, def, question, &ro, &run, &diag);
    if (rc != COUNCIL_OK) {
        cli_error("cannot start the run: %s",
                  diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        code = rc == COUNCIL_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    for (;;) {
        rc = council_run_wait(run, 100, &out);
        if (rc == COUNCIL_OK)
            break;
        if (interrupted == 1) {
            interrupted = 2;
            if (d->mode == MODE_PLAIN || d->mode == MODE_LIVE)
                fprintf(stderr, "\ncouncil: cancelling (Ctrl-C)\n");
            council_run_cancel(run);
        }
    }
    switch (council_outcome_kind_of(out)) {
    case COUNCIL_OUTCOME_OK:
        code = EXIT_COMPLETED;
        if (!json && d->answer != NULL) {
            fwrite(d->answer, 1, d->answer_len, stdout);
            if (d->answer_len == 0 || d->answer[d->answer_len - 1] != '\n')
                fputc('\n', stdout);
        }
        break;
    case COUNCIL_OUTCOME_CANCELLED:
        code = EXIT_CANCELLED;
        cli_error("run %s cancelled", council_run_id(run));
        break;
    case COUNCIL_OUTCOME_CRASHED:
        code = EXIT_CRASHED;
        cli_error("run %s crashed: %s", council_run_id(run),
                  council_outcome_reason(out));
        break;
    default:
        code = EXIT_FAILED;
        cli_error("run %s failed: %s", council_run_id(run),
                  council_outcome_reason(out) != NULL
                      ? council_outcome_reason(out)
                      : "(no reason)");
        break;
    }
    if (!json && !quiet && !no_record)
        for (i = 0; i < n_rec; i++)
            fprintf(stderr, "council: run %s recorded in %s\n",
                    council_run_id(run), rec[i].path);
out:
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(mock);
    council_store_conversation_free(conv, n_conv);
    free(msgs);
    if (d != NULL)
        free(d->answer);
    free(d);
    fflush(stdout);
    return code;
missing:
    cli_error("run: %s needs a value", argv[i]);
    return EXIT_USAGE;
}
