/* SPDX-License-Identifier: MIT */
/*
 * council run: load a council (or the built-in demo against an in-process
 * mock LLM), start a run with the chosen recorders plus the display
 * recorder (display.c: a live view, plain lines or --json), wait for it
 * (SIGINT, SIGTERM, SIGHUP or a closed stdout cancel it, and the command
 * then ends by that signal), print the final answer on stdout, read back
 * each record it made (one that lost events or has no outcome is said, and
 * a completed run then exits 5), and exit with the outcome's code.  With
 * --continue, the input is the conversation of a recorded run (read from
 * the SQLite store, after closing the runs there whose process died)
 * followed by the new question.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] =
    "usage: council run [options] QUESTION\n"
    "\n"
    "Run a council on QUESTION and print the final answer on stdout.\n"
    "Progress goes to stderr: a live view on a terminal, plain lines\n"
    "otherwise.  Ctrl-C (SIGINT), SIGTERM, SIGHUP or a closed stdout\n"
    "cancel the run; it is recorded as cancelled, then council ends by\n"
    "that signal.\n"
    "\n"
    "options:\n"
    "  -c, --council FILE   council definition (YAML or JSON); without it,\n"
    "                       the built-in demo council runs against a mock LLM\n"
    "                       started on a free loopback port (offline)\n"
    "  --record SPEC        where to record the run, repeatable:\n"
    "                         sqlite:PATH   a SQLite store\n"
    "                         jsonl:DIR     DIR/<run_id>.jsonl\n"
    "                         webhook:URL   POST the outcome to an http(s)\n"
    "                                       URL, signed, retried; see\n"
    "                                       docs/cli.md\n"
    "                         redis:URL     the stream council:run:<id>:ev\n"
    "                                       and hash council:run:<id>\n"
    "                       default: the SQLite store at $COUNCIL_DB, or\n"
    "                       $XDG_DATA_HOME/council/runs.db, or\n"
    "                       ~/.local/share/council/runs.db\n"
    "  --webhook-secret-env NAME\n"
    "                       sign webhook POSTs (HMAC-SHA256) with the\n"
    "                       secret in $NAME; default: $COUNCIL_WEBHOOK_SECRET\n"
    "                       if set, else unsigned\n"
    "  --webhook-events     POST every event to the webhooks too, in\n"
    "                       batches, before the outcome\n"
    "  --no-record          record nothing\n"
    "  --json               print every event as one JSON line on stdout\n"
    "                       (no progress view, no answer line)\n"
    "  --deadline DUR       whole-run deadline (e.g. 90s, 5m); default: the\n"
    "                       council's limits.deadline\n"
    "  --seed N             seed for the reviewers' shuffles, 1 to 2^63-1\n"
    "                       (recorded; default: a random one)\n"
    "  --run-id ID          choose the run id (default: a new UUIDv7)\n"
    "  --isolation MODE     process: run the council in a child process, so\n"
    "                       a crash there ends only this run, as crashed\n"
    "                       (\"signal SIGSEGV\"), with every event before it\n"
    "                       kept; none: in this process; default: the\n"
    "                       council file's isolation key, else none\n"
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
    "            4 crashed, 5 completed but a record of it is incomplete\n"
    "            or has no outcome (a full disk: stderr says which);\n"
    "            stopped by a signal, once the run is recorded as\n"
    "            cancelled: 130 SIGINT (Ctrl-C, \"interrupted\"), 143\n"
    "            SIGTERM (\"terminated\"), 129 SIGHUP (\"hangup\"), 141\n"
    "            a closed stdout (SIGPIPE or EPIPE, \"stdout closed\")\n";

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

/* ---- the command --------------------------------------------------------- */

/* Open the store read-write and close it again: the runs there whose
 * process died are closed as crashed (council_store_open) before a run is
 * continued from it.  Quiet: council_store_conversation says what is
 * wrong with the store. */
static void
close_dead_runs(const char *store)
{
    council_store *s = NULL;

    if (council_store_open(store, 0, &s, NULL) == COUNCIL_OK)
        council_store_close(s);
}

int
council_cmd_run(int argc, char **argv)
{
    const char *council_file = NULL, *question = NULL, *run_id = NULL;
    const char *continue_id = NULL, *store = NULL;
    council_message *conv = NULL, *msgs = NULL;
    size_t n_conv = 0;
    cli_record rec[CLI_MAX_RECORD];
    int n_rec = 0, no_record = 0, json = 0, quiet = 0, i, code;
    int isolation = COUNCIL_ISOLATION_DEFAULT;
    uint64_t deadline_ms = 0, seed = 0;
    char db[4096];
    council_mockllm *mock = NULL;
    council_def *def = NULL;
    council_engine *eng = NULL;
    council_run *run = NULL;
    council_diag diag;
    cli_display *d = NULL;
    council_recorder_spec specs[CLI_MAX_RECORD + 1];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    const council_outcome *out = NULL;
    cli_log logs = {PTHREAD_MUTEX_INITIALIZER};
    cli_webhook_opts wo = {NULL, 0};
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
            if (n_rec == CLI_MAX_RECORD) {
                cli_error("at most %d --record options", CLI_MAX_RECORD);
                return EXIT_USAGE;
            }
            if (cli_parse_record(v, &rec[n_rec]) != 0)
                return EXIT_USAGE;
            n_rec++;
            i++;
        } else if (cli_is_webhook_opt(a)) {
            if (cli_parse_webhook_opt(argc, argv, &i, &wo) != 0)
                return EXIT_USAGE;
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
            errno = 0;
            seed = strtoull(v, &end, 10);
            /* Digits only (strtoull takes "-1" for 2^64-1), and at most
             * 2^63-1: a seed is recorded as a JSON integer, signed. */
            if (*v < '0' || *v > '9' || *end != '\0' || seed == 0 ||
                errno == ERANGE || seed > INT64_MAX) {
                cli_error("--seed %s: expected an integer from 1 to "
                          "9223372036854775807",
                          v);
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--continue") == 0) {
            if (v == NULL)
                goto missing;
            continue_id = v;
            i++;
        } else if (strcmp(a, "--isolation") == 0) {
            if (v == NULL)
                goto missing;
            if (cli_parse_isolation(v, &isolation) != 0)
                return EXIT_USAGE;
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
    {
        size_t bad = 0;

        /* Refused before anything starts (a store, a mock LLM): the
         * library would refuse it too, after them. */
        if (council_utf8_check(question, strlen(question), &bad) !=
            COUNCIL_OK) {
            cli_error("run: the question is not valid UTF-8: byte 0x%02x at "
                      "offset %zu (byte %zu of %zu)",
                      (unsigned char)question[bad], bad, bad + 1,
                      strlen(question));
            return EXIT_USAGE;
        }
    }
    if (no_record && n_rec > 0) {
        cli_error("--no-record and --record exclude each other");
        return EXIT_USAGE;
    }
    if (!no_record && n_rec == 0) {
        if (cli_default_db(db, sizeof(db), 1) != 0)
            return EXIT_FAILED;
        memset(&rec[0], 0, sizeof(rec[0]));
        rec[0].ops = council_recorder_sqlite();
        rec[0].path = db;
        n_rec = 1;
    }
    if (cli_records_finish(rec, n_rec, &wo) != 0)
        return EXIT_USAGE;
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
        close_dead_runs(store);
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

    d = cli_display_new(cli_view_choose(json, quiet));
    if (d == NULL) {
        cli_error("out of memory");
        code = EXIT_FAILED;
        goto out;
    }

    eo.log = cli_log_line;
    eo.log_ud = &logs;
    eo.host_program = cli_host_program();
    rc = council_engine_open(&eo, &eng);
    if (rc != COUNCIL_OK) {
        cli_error("cannot open the engine: %s", council_strerror(rc));
        code = EXIT_FAILED;
        goto out;
    }
    for (i = 0; i < n_rec; i++) {
        specs[i].ops = rec[i].ops;
        specs[i].args = cli_record_args(&rec[i]);
    }
    specs[n_rec].ops = cli_display_ops();
    specs[n_rec].args = d;
    ro.recorders = specs;
    ro.n_recorders = (size_t)n_rec + 1;
    ro.run_id = run_id;
    ro.deadline_ms = deadline_ms;
    ro.seed = seed;
    ro.isolation = isolation;

    cli_catch_interrupts();

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
    out = cli_wait(run, d);
    code = cli_report(d, council_run_id(run), out);
    cli_log_summary(&logs, council_run_id(run), rec, n_rec);
    /* The record must say what it holds, and so must the exit code. */
    if (!no_record && cli_check_records(council_run_id(run), rec, n_rec) > 0 &&
        code == EXIT_COMPLETED)
        code = EXIT_INCOMPLETE;
    if (!json && !quiet && !no_record)
        for (i = 0; i < n_rec; i++)
            fprintf(stderr, "council: run %s %s %s\n", council_run_id(run),
                    rec[i].ops == council_recorder_webhook()
                        ? "handed to webhook"
                        : "recorded in",
                    cli_record_shown(&rec[i]));
out:
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(mock);
    council_store_conversation_free(conv, n_conv);
    free(msgs);
    cli_display_free(d);
    fflush(stdout);
    return code;
missing:
    cli_error("run: %s needs a value", argv[i]);
    return EXIT_USAGE;
}
