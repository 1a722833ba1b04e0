/* SPDX-License-Identifier: MIT */
/*
 * No run left "running" forever (DISTRIBUTED.md 3), end to end with the
 * real binary ($COUNCIL_BIN), real SQLite files and jsonl records, and a
 * mock LLM (in this process, on loopback) slow enough that a run is in
 * flight when it is interrupted:
 *   - `council run` killed with SIGKILL: the next reader closes its run as
 *     crashed("process lost: pid N"), in SQLite and jsonl alike;
 *   - a live run of another process is never closed by a reader;
 *   - SIGINT, SIGTERM, SIGHUP and a closed stdout cancel and record the
 *     run, each with its message, and council then ends by that signal;
 *   - `council run --continue` closes dead runs too;
 *   - records that lost events read as incomplete in every reader, and a
 *     run on a disk that fills (a small tmpfs) does not exit 0.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "council.h"
#include "runner.h"
#include "slow_run.h"

static void
sql(const char *db, const char *text)
{
    sqlite3 *h = NULL;
    char *err = NULL;

    ASSERT_EQ_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL),
                  SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    if (sqlite3_exec(h, text, NULL, NULL, &err) != SQLITE_OK)
        FAIL("%s: %s", text, err);
    sqlite3_close(h);
}

/* Run council; its exit code must be want. */
static cli_result
expect(int want, const char *const *args)
{
    cli_result r = cli_run(args);

    if (r.code != want)
        FAIL("council %s %s: exit %d, not %d; stderr: %s", args[0],
             args[1] != NULL ? args[1] : "", r.code, want, r.err);
    return r;
}

static char *
last_line(const char *path)
{
    char *c = cli_slurp(path), *l;
    size_t n = strlen(c);

    ASSERT(n > 0 && c[n - 1] == '\n');
    c[n - 1] = '\0';
    l = strrchr(c, '\n');
    l = strdup(l != NULL ? l + 1 : c);
    free(c);
    return l;
}

/* ---- SIGKILL ----------------------------------------------------------- */

TEST_T(sigkill_then_the_next_reader_closes_the_run, 90)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char jfile[800], want[64], *t;
    cli_result r;
    int pid;

    mkdir(dir, 0700);
    snprintf(jfile, sizeof(jfile), "%s/k9.jsonl", dir);
    pid = start_slow(file, db, dir, "k9", 0, -1);
    kill(pid, SIGKILL);
    r = cli_collect("k9", pid);
    ASSERT_EQ_INT(r.code, 128 + SIGKILL);
    cli_result_free(&r);
    snprintf(want, sizeof(want), "process lost: pid %d", pid);
    /* Nothing has read the store yet: it says nothing of an outcome. */
    t = sql_text(db, "SELECT outcome FROM runs WHERE run_id='k9'");
    ASSERT_STR_EQ(t, "NULL");
    free(t);

    {
        const char *args[] = {"runs",      "list",    "--db", db,
                              "--outcome", "crashed", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "k9");
    ASSERT_STR_CONTAINS(r.out, want);
    cli_result_free(&r);
    {
        const char *args[] = {"runs",      "list",    "--db", db,
                              "--outcome", "running", NULL};
        r = expect(0, args);
    }
    ASSERT(strstr(r.out, "k9") == NULL);
    cli_result_free(&r);
    /* The reader closed it in the store itself. */
    t = sql_text(db, "SELECT outcome || ': ' || reason FROM runs");
    {
        char full[128];

        snprintf(full, sizeof(full), "crashed: %s", want);
        ASSERT_STR_EQ(t, full);
    }
    free(t);
    {
        const char *args[] = {"runs", "list", "--db", db, "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "\"outcome\":\"crashed\"");
    ASSERT_STR_CONTAINS(r.out, want);
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "k9", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   crashed: process lost: pid");
    cli_result_free(&r);

    /* The jsonl record: read, it is closed the same way, and its file
     * gets the outcome line. */
    {
        const char *args[] = {"runs", "show", "k9", "--jsonl", jfile, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   crashed: process lost: pid");
    cli_result_free(&r);
    t = last_line(jfile);
    {
        char line[128];

        snprintf(line, sizeof(line),
                 "{\"outcome\":\"crashed\",\"reason\":\"%s\"}", want);
        ASSERT_STR_EQ(t, line);
    }
    free(t);
    /* Deletable now without --force: its process is gone. */
    {
        const char *args[] = {"runs", "delete", "k9", "--db", db, NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* While its process lives, no reader closes a run, whichever process
 * reads; and it ends as it would have. */
TEST_T(a_live_run_of_another_process_is_never_closed, 90)
{
    char *file = slow_council(700);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char jfile[800];
    long before;
    cli_result r;
    int pid;

    mkdir(dir, 0700);
    snprintf(jfile, sizeof(jfile), "%s/live.jsonl", dir);
    pid = start_slow(file, db, dir, "live", 0, -1);
    {
        const char *args[] = {"runs",      "list",    "--db", db,
                              "--outcome", "running", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "live");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "live", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   running (in flight: pid");
    cli_result_free(&r);
    before = count_lines(jfile);
    {
        const char *args[] = {"runs", "show", "live", "--jsonl", jfile, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   running");
    cli_result_free(&r);
    ASSERT(count_lines(jfile) >= before);
    {
        const char *args[] = {"runs", "delete", "live", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "it is running (pid");
    cli_result_free(&r);
    r = cli_collect("live", pid);
    if (r.code != 0)
        FAIL("the run: exit %d; stderr: %s", r.code, r.err);
    cli_result_free(&r);
    {
        char *t = sql_text(db, "SELECT outcome FROM runs");

        ASSERT_STR_EQ(t, "ok");
        free(t);
        t = last_line(jfile);
        ASSERT(strncmp(t, "{\"outcome\":\"ok\"", 15) == 0);
        free(t);
    }
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* ---- signals -------------------------------------------------------------
 */

static void
check_cancelled(const char *db, const char *dir, const char *id)
{
    char q[256], jfile[800], *t;

    snprintf(q, sizeof(q), "SELECT outcome FROM runs WHERE run_id='%s'", id);
    t = sql_text(db, q);
    ASSERT_STR_EQ(t, "cancelled");
    free(t);
    snprintf(jfile, sizeof(jfile), "%s/%s.jsonl", dir, id);
    t = last_line(jfile);
    ASSERT(strncmp(t, "{\"outcome\":\"cancelled\"", 22) == 0);
    free(t);
}

TEST_T(sigint_sigterm_sighup_cancel_record_and_end_by_the_signal, 120)
{
    static const struct {
        int sig;
        const char *id, *why;
    } cases[] = {
        {SIGINT, "int", "interrupted (Ctrl-C)"},
        {SIGTERM, "term", "terminated (SIGTERM)"},
        {SIGHUP, "hup", "hangup (SIGHUP)"},
    };
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    size_t i;

    mkdir(dir, 0700);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[128];
        cli_result r;
        int pid = start_slow(file, db, dir, cases[i].id, 0, -1);

        kill(pid, cases[i].sig);
        r = cli_collect(cases[i].id, pid);
        if (r.code != 128 + cases[i].sig)
            FAIL("%s: exit %d; stderr: %s", cases[i].id, r.code, r.err);
        snprintf(msg, sizeof(msg), "cancelling the run: %s", cases[i].why);
        ASSERT_STR_CONTAINS(r.err, msg);
        snprintf(msg, sizeof(msg), "run %s cancelled: %s", cases[i].id,
                 cases[i].why);
        ASSERT_STR_CONTAINS(r.err, msg);
        cli_result_free(&r);
        check_cancelled(db, dir, cases[i].id);
    }
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* `council run --json q | head -2`: the reader of stdout goes away. */
TEST_T(a_closed_stdout_cancels_records_and_ends_by_sigpipe, 90)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char buf[4096];
    size_t got = 0;
    int p[2], pid, lines = 0;
    cli_result r;

    mkdir(dir, 0700);
    ASSERT_EQ_INT(pipe2(p, O_CLOEXEC), 0); /* the child gets only stdout */
    pid = start_slow(file, db, dir, "pipe", 1, p[1]);
    close(p[1]);
    /* Read two lines, as head -2 does, and go. */
    while (lines < 2) {
        ssize_t n = read(p[0], buf + got, sizeof(buf) - got);

        ASSERT(n > 0);
        for (ssize_t k = 0; k < n; k++)
            lines += buf[got + (size_t)k] == '\n';
        got += (size_t)n;
        ASSERT(got < sizeof(buf));
    }
    ASSERT(strncmp(buf, "{\"type\":\"run_started\"", 21) == 0);
    close(p[0]);
    r = cli_collect("pipe", pid);
    if (r.code != 128 + SIGPIPE)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT_STR_CONTAINS(r.err,
                        "cancelling the run: stdout closed (broken pipe)");
    ASSERT_STR_CONTAINS(r.err, "run pipe cancelled: stdout closed");
    cli_result_free(&r);
    check_cancelled(db, dir, "pipe");
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* The answer cannot be written (stdout closed first): the run completed
 * and is recorded so, and council says so and ends by SIGPIPE. */
TEST_T(an_answer_to_a_closed_stdout, 60)
{
    char *db = tmp_path("runs.db");
    char rdb[800], *t;
    int p[2], pid;
    cli_result r;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    ASSERT_EQ_INT(pipe2(p, O_CLOEXEC), 0); /* the child gets only stdout */
    {
        const char *args[] = {"run",      "-q",  "--record", rdb,
                              "--run-id", "ans", "Why?",     NULL};
        pid = cli_spawn("ans", p[1], args);
    }
    close(p[1]);
    close(p[0]);
    r = cli_collect("ans", pid);
    if (r.code != 128 + SIGPIPE)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT_STR_CONTAINS(r.err, "run ans completed; its answer was not "
                               "written: stdout closed (broken pipe)");
    cli_result_free(&r);
    t = sql_text(db, "SELECT outcome FROM runs");
    ASSERT_STR_EQ(t, "ok");
    free(t);
    free(db);
}

/* ---- --continue -----------------------------------------------------------
 */

TEST_T(continue_closes_dead_runs_first, 90)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char rdb[800], *t;
    cli_result r;
    int pid;

    mkdir(dir, 0700);
    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    pid = start_slow(file, db, dir, "gone", 0, -1);
    kill(pid, SIGKILL);
    r = cli_collect("gone", pid);
    cli_result_free(&r);
    {
        const char *args[] = {"run",        "--record", rdb,         "-c", file,
                              "--continue", "gone",     "and then?", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "did not complete");
    cli_result_free(&r);
    t = sql_text(db, "SELECT outcome FROM runs WHERE run_id='gone'");
    ASSERT_STR_EQ(t, "crashed");
    free(t);
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* ---- records that lost events -------------------------------------------
 */

/* A record that says it lacks events: every reader says so. */
TEST_T(an_incomplete_record_reads_as_incomplete, 60)
{
    char *db = tmp_path("runs.db");
    char rdb[800], *events;
    cli_result r;
    long n;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    {
        const char *args[] = {"run",      "-q",  "--record", rdb,
                              "--run-id", "inc", "Why?",     NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    /* As the recorder leaves it when the disk filled: the outcome, and
     * fewer events than the run emitted (the last ones are missing). */
    events = sql_text(db, "SELECT events FROM runs");
    n = strtol(events, NULL, 10);
    free(events);
    ASSERT(n > 40);
    sql(db, "DELETE FROM events WHERE seq > 30;"
            "UPDATE runs SET events = 30");
    {
        char want[64];
        const char *args[] = {"runs", "list", "--db", db, NULL};

        r = expect(0, args);
        snprintf(want, sizeof(want), " 30/%ld", n);
        ASSERT_STR_CONTAINS(r.out, want);
        cli_result_free(&r);
    }
    {
        const char *args[] = {"runs", "list", "--db", db, "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "\"incomplete\":true");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "inc", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   ok");
    ASSERT_STR_CONTAINS(r.out, "events    30 of the ");
    ASSERT_STR_CONTAINS(r.out, "the record is incomplete");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show",   "inc", "--db",
                              db,     "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "\"events\":30,\"events_emitted\":");
    ASSERT_STR_CONTAINS(r.out, "\"incomplete\":true");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "export",   "inc", "--db",
                              db,     "--format", "md",  NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "**incomplete record**");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "replay", "inc", "--db", db, "-q", NULL};
        r = expect(4, args);
    }
    ASSERT_STR_CONTAINS(r.err, "the record is incomplete: 30 of the ");
    cli_result_free(&r);
    free(db);
}

/* A disk that fills during the run (a 256 KiB tmpfs): the run goes on,
 * each recorder's failures are one line and a summary, the records say
 * what they hold, and council does not exit 0. */
TEST_T(a_disk_that_fills, 90)
{
    char *mnt = tmp_path("small");
    char rdb[900], rdir[900], db[800];
    cli_result r;
    const char *p;
    int lines = 0;

    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr,
                "SKIP: cannot mount a tmpfs here (%s); the full disk "
                "is covered by RLIMIT_FSIZE and the fault injector in "
                "test_cli.c and the unit tests\n",
                strerror(errno));
        free(mnt);
        return;
    }
    snprintf(db, sizeof(db), "%s/runs.db", mnt);
    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    snprintf(rdir, sizeof(rdir), "jsonl:%s", mnt);
    {
        const char *args[] = {"run",      "--record", rdb,    "--record", rdir,
                              "--run-id", "full",     "Why?", NULL};
        r = cli_run(args);
    }
    if (r.code != 5)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT(strlen(r.out) > 20); /* the answer */
    for (p = r.err; (p = strstr(p, "failed on seq")) != NULL; p++)
        lines++;
    /* At most one line per recorder (none for one whose events all
     * waited for the finalize batch), each summed up; never one per
     * event. */
    ASSERT(lines <= 2);
    if (strstr(r.err, "recorder 0 failed on seq") != NULL)
        ASSERT_STR_CONTAINS(r.err, "recorder 0 (sqlite:");
    if (strstr(r.err, "recorder 1 failed on seq") != NULL)
        ASSERT_STR_CONTAINS(r.err, "recorder 1 (jsonl:");
    ASSERT_STR_CONTAINS(r.err, "its record in ");
    cli_result_free(&r);
    /* Each reader shows each record as it is, never as a complete run:
     * an outcome with "incomplete", or (no room even for the outcome)
     * crashed, "process lost", its process having ended without it. */
    for (int k = 0; k < 2; k++) {
        char jfile[800];
        json_t *j;
        const char *o;

        snprintf(jfile, sizeof(jfile), "%s/full.jsonl", mnt);
        {
            const char *args[] = {"runs",
                                  "show",
                                  "full",
                                  k == 0 ? "--db" : "--jsonl",
                                  k == 0 ? db : jfile,
                                  "--json",
                                  NULL};
            r = expect(0, args);
        }
        j = json_loads(r.out, 0, NULL);
        ASSERT_NOT_NULL(j);
        o = json_string_value(json_object_get(j, "outcome"));
        ASSERT_NOT_NULL(o);
        if (strcmp(o, "crashed") == 0)
            ASSERT(strncmp(json_string_value(json_object_get(j, "reason")),
                           "process lost: pid ", 18) == 0);
        else
            ASSERT(json_is_true(json_object_get(j, "incomplete")));
        ASSERT(json_integer_value(json_object_get(j, "events")) > 0);
        json_decref(j);
        cli_result_free(&r);
    }
    umount2(mnt, MNT_DETACH);
    free(mnt);
}
