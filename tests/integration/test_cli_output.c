/* SPDX-License-Identifier: MIT */
/*
 * Every command's output path against a stdout that cannot take it
 * (issue 13): with stdout on /dev/full each command that writes to stdout
 * (its main output, its JSON, its --help) exits 1 and says on stderr
 * "council: writing to stdout: No space left on device", instead of
 * exiting 0 having written nothing.  A command that failed for another
 * reason keeps its own exit code; one that writes nothing to stdout
 * (serve) is not disturbed by a closed stdout.  The real binary
 * ($COUNCIL_BIN): the demo council on its in-process mock LLM, recorded
 * into a SQLite store and a jsonl record in the case's directory.
 * TEST_LABELS: threaded
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "council.h"
#include "runner.h"

extern char **environ;

#define FULL_MSG "council: writing to stdout: No space left on device"

static char db[700], spec[720], dir[700], jspec[720], jfile[800], yaml[700];

static void
join(char *out, size_t size, const char *const *args)
{
    size_t n = 0, i;

    out[0] = '\0';
    for (i = 0; args[i] != NULL && n + 1 < size; i++) {
        int k = snprintf(out + n, size - n, " %s", args[i]);

        if (k < 0)
            break;
        n += (size_t)k;
    }
}

/* The command exits want with stdout on a normal file, writing
 * something. */
static void
writes(const char *const *args, int want)
{
    cli_result r = cli_run(args);
    char shown[600];

    join(shown, sizeof(shown), args);
    if (r.code != want)
        FAIL("council%s: exit %d, not %d: %s", shown, r.code, want, r.err);
    if (r.out[0] == '\0')
        FAIL("council%s wrote nothing to stdout", shown);
    cli_result_free(&r);
}

/* The command with stdout on /dev/full: exit want (1 for a command that
 * would have succeeded) and the message, once. */
static void
full(const char *const *args, int want)
{
    cli_result r = cli_run_to("/dev/full", args);
    char shown[600];
    const char *p;

    join(shown, sizeof(shown), args);
    if (r.code != want)
        FAIL("council%s > /dev/full: exit %d, not %d; stderr: %s", shown,
             r.code, want, r.err);
    p = strstr(r.err, FULL_MSG);
    if (p == NULL)
        FAIL("council%s > /dev/full: no \"%s\" on stderr: %s", shown, FULL_MSG,
             r.err);
    if (strstr(p + 1, FULL_MSG) != NULL)
        FAIL("council%s > /dev/full: said twice: %s", shown, r.err);
    cli_result_free(&r);
}

/* The run with id, recorded by the demo council; the council file. */
static void
setup(const char *id)
{
    FILE *f;

    snprintf(db, sizeof(db), "%s/runs.db", runner_tmpdir());
    snprintf(spec, sizeof(spec), "sqlite:%s", db);
    snprintf(dir, sizeof(dir), "%s/jsonl", runner_tmpdir());
    snprintf(jspec, sizeof(jspec), "jsonl:%s", dir);
    snprintf(jfile, sizeof(jfile), "%s/%s.jsonl", dir, id);
    snprintf(yaml, sizeof(yaml), "%s/c.yaml", runner_tmpdir());
    mkdir(dir, 0700);
    {
        const char *args[] = {"run",      "-q",  "--record", spec,
                              "--record", jspec, "--run-id", id,
                              "recorded", NULL};
        cli_result r = cli_run(args);

        if (r.code != 0)
            FAIL("council run: %d: %s", r.code, r.err);
        cli_result_free(&r);
    }
    f = fopen(yaml, "w");
    ASSERT_NOT_NULL(f);
    fputs("name: c\n"
          "providers:\n"
          "  p: { kind: openai, base_url: http://127.0.0.1:9/v1 }\n"
          "members:\n"
          "  - { name: a, provider: p, model: m }\n"
          "chairman: { provider: p, model: m }\n",
          f);
    fclose(f);
}

TEST_T(help_and_version_to_a_full_disk, 60)
{
    static const char *const cmds[][4] = {
        {"--help", NULL},
        {"help", NULL},
        {"--version", NULL},
        {"run", "--help", NULL},
        {"runs", "--help", NULL},
        {"runs", "list", "--help", NULL},
        {"runs", "show", "--help", NULL},
        {"runs", "replay", "--help", NULL},
        {"runs", "export", "--help", NULL},
        {"runs", "delete", "--help", NULL},
        {"validate", "--help", NULL},
        {"serve", "--help", NULL},
        {"mock-llm", "--help", NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        writes(cmds[i], 0);
        full(cmds[i], 1);
    }
}

TEST_T(run_to_a_full_disk, 120)
{
    const char *answer[] = {"run", "-q", "--no-record", "a question", NULL};
    const char *json[] = {"run", "--json", "--no-record", "a question", NULL};
    const char *recorded[] = {"run",      "-q",     "--record",        spec,
                              "--run-id", "r-full", "recorded anyway", NULL};
    const char *show[] = {"runs", "show", "--db", db, "r-full", NULL};
    cli_result r;

    setup("r1");
    writes(answer, 0);
    full(answer, 1);
    writes(json, 0);
    full(json, 1);
    /* The run itself went well and is recorded: only its output was
     * lost, and the message says which. */
    full(recorded, 1);
    r = cli_run(show);
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "outcome   ok");
    cli_result_free(&r);
}

TEST_T(runs_commands_to_a_full_disk, 120)
{
    const char *list[] = {"runs", "list", "--db", db, NULL};
    const char *list_json[] = {"runs", "list", "--json", "--db", db, NULL};
    const char *show[] = {"runs", "show", "--db", db, "r1", NULL};
    const char *show_json[] = {"runs", "show", "--json", "--db",
                               db,     "r1",   NULL};
    const char *show_events[] = {"runs", "show", "--events", "--db",
                                 db,     "r1",   NULL};
    const char *show_jsonl[] = {"runs", "show", "--jsonl", jfile, "r1", NULL};
    const char *replay[] = {"runs", "replay", "-q", "--db", db, "r1", NULL};
    const char *replay_json[] = {"runs", "replay", "--json", "--db",
                                 db,     "r1",     NULL};
    const char *export_json[] = {"runs", "export", "--db", db, "r1", NULL};
    const char *export_md[] = {"runs", "export", "--format", "md",
                               "--db", db,       "r1",       NULL};
    const char *validate[] = {"validate", yaml, NULL};
    const char *del[] = {"runs", "delete", "--db", db, "r1", NULL};
    const char *gone[] = {"runs", "show", "--db", db, "r1", NULL};
    cli_result r;

    setup("r1");
    writes(list, 0);
    full(list, 1);
    writes(list_json, 0);
    full(list_json, 1);
    writes(show, 0);
    full(show, 1);
    writes(show_json, 0);
    full(show_json, 1);
    writes(show_events, 0);
    full(show_events, 1);
    writes(show_jsonl, 0);
    full(show_jsonl, 1);
    writes(replay, 0);
    full(replay, 1);
    writes(replay_json, 0);
    full(replay_json, 1);
    writes(export_json, 0);
    full(export_json, 1);
    writes(export_md, 0);
    full(export_md, 1);
    writes(validate, 0);
    full(validate, 1);
    /* delete did delete; only its confirmation was lost. */
    full(del, 1);
    r = cli_run(gone);
    ASSERT_NE_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.err, "r1");
    cli_result_free(&r);
}

/* Failures keep their own exit code; the lost output is said too. */
TEST_T(a_failure_keeps_its_code, 60)
{
    const char *bad_validate[] = {"validate", "/nonexistent.yaml", yaml, NULL};
    const char *show_missing[] = {"runs", "list", "--outcome", "nope", NULL};
    cli_result r;

    setup("r2");
    /* validate: one bad file (exit 2) and one good, whose "ok" line is
     * lost. */
    r = cli_run_to("/dev/full", bad_validate);
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, FULL_MSG);
    cli_result_free(&r);
    /* A usage error writes nothing to stdout: no stdout message. */
    r = cli_run_to("/dev/full", show_missing);
    ASSERT_EQ_INT(r.code, 2);
    if (strstr(r.err, "writing to stdout") != NULL)
        FAIL("a usage error blamed stdout: %s", r.err);
    cli_result_free(&r);
}

/* mock-llm prints the line scripts wait for and then serves until a
 * signal: when that line cannot be written it stops at once.  (Before,
 * it served on: cli_run's 60 s watchdog kills it, within this case's
 * 90 s, so no process outlives a failing case.) */
TEST_T(mock_llm_stops_when_its_line_is_lost, 90)
{
    const char *args[] = {"mock-llm", "--listen", "127.0.0.1:0", NULL};
    cli_result r = cli_run_to("/dev/full", args);

    ASSERT_EQ_INT(r.code, 1);
    ASSERT_STR_CONTAINS(r.err, FULL_MSG);
    cli_result_free(&r);
}

/* A command that writes nothing to stdout does not mind one that was
 * closed (as coreutils' close_stdout): serve starts, stops on SIGTERM,
 * exits 0. */
TEST_T(serve_with_stdout_closed, 60)
{
    const char *bin = getenv("COUNCIL_BIN");
    char dbp[800], errp[800];
    char *argv[] = {(char *)bin, "serve", "--listen", "127.0.0.1:0",
                    "--db",      dbp,     NULL};
    posix_spawn_file_actions_t fa;
    int status, i;
    pid_t pid;
    char *err = NULL;

    ASSERT_NOT_NULL(bin);
    snprintf(dbp, sizeof(dbp), "%s/s.db", runner_tmpdir());
    snprintf(errp, sizeof(errp), "%s/serve.err", runner_tmpdir());
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclose(&fa, 1);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (i = 0; i < 2000; i++) {
        free(err);
        err = cli_slurp(errp);
        if (strstr(err, "listening on") != NULL)
            break;
        usleep(10000);
    }
    ASSERT_STR_CONTAINS(err, "listening on");
    kill(pid, SIGTERM);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    free(err);
    err = cli_slurp(errp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("council serve with stdout closed: status %d: %s", status, err);
    if (strstr(err, "stdout") != NULL)
        FAIL("council serve blamed stdout: %s", err);
    free(err);
}
