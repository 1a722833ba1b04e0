/* SPDX-License-Identifier: MIT */
/*
 * council runs list/show/replay/export/delete end to end, as a user runs
 * them: the real binary ($COUNCIL_BIN), runs recorded by `council run`
 * (the demo council on its in-process mock LLM, or a council file on a
 * mock LLM started here, over loopback) into real SQLite and jsonl files.
 * Checks filters and JSON lines, the report, the record and the events, a
 * replay into jsonl that equals the original record byte for byte (but
 * for the owner line, which names the process that wrote it), the
 * collision with the source store, paced replay and Ctrl-C, exports
 * written whole, deletion, damaged stores and every usage error.
 * TEST_LABELS: threaded
 */
#include <glob.h>
#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "cli_run.h"
#include "runner.h"

static char *
tmp_path(const char *name)
{
    char *p = malloc(700);

    snprintf(p, 700, "%s/%s", runner_tmpdir(), name);
    return p;
}

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

/* Run the command; its exit code must be want (stderr shown if not). */
static cli_result
expect(int want, const char *const *args)
{
    cli_result r = cli_run(args);
    char shown[512] = "";
    size_t n = 0;

    /* The arguments, joined (a loop: gcc -O3 takes args[1] && args[2] on
     * a two-element array for an out-of-bounds read). */
    for (size_t i = 0; args[i] != NULL && n + 1 < sizeof(shown); i++) {
        int k = snprintf(shown + n, sizeof(shown) - n, " %s", args[i]);
        if (k < 0)
            break;
        n += (size_t)k;
    }
    if (r.code != want)
        FAIL("council%s: exit %d, not %d; stderr: %s", shown, r.code, want,
             r.err);
    return r;
}

/* The demo council, recorded to db and, if dir, to dir; stdout (the
 * answer) in *answer (malloc'd) if answer is not NULL. */
static void
record_demo(const char *db, const char *dir, const char *id, const char *q,
            char **answer)
{
    char rdb[800], rdir[800];
    cli_result r;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    snprintf(rdir, sizeof(rdir), "jsonl:%s", dir ? dir : "");
    if (dir != NULL) {
        const char *args[] = {"run", "-q",       "--record", rdb, "--record",
                              rdir,  "--run-id", id,         q,   NULL};
        r = expect(0, args);
    } else {
        const char *args[] = {"run",      "-q", "--record", rdb,
                              "--run-id", id,   q,          NULL};
        r = expect(0, args);
    }
    if (answer != NULL)
        *answer = strdup(r.out);
    cli_result_free(&r);
}

static council_mockllm *
start_mock(const char *faults, uint64_t latency_ms)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_diag d;

    o.seed = 7;
    o.faults = faults;
    o.latency_ms = latency_ms;
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    return m;
}

/* A council file "t" of four members on m (d's model is bad-d). */
static char *
council_file(council_mockllm *m, const char *quorum)
{
    char *file = tmp_path("council.yaml");
    FILE *f = fopen(file, "w");

    ASSERT_NOT_NULL(f);
    fprintf(f,
            "name: t\n"
            "providers:\n"
            "  mock: { kind: openai, base_url: %s }\n"
            "members:\n"
            "  - { name: a, provider: mock, model: mock-a }\n"
            "  - { name: b, provider: mock, model: mock-b }\n"
            "  - { name: c, provider: mock, model: mock-c }\n"
            "  - { name: d, provider: mock, model: bad-d }\n"
            "chairman: { provider: mock, model: mock-chair }\n"
            "limits: { quorum: %s, member_timeout: 20s }\n",
            council_mockllm_base_url(m), quorum);
    fclose(f);
    return file;
}

/* A run of council t that fails (below quorum), recorded as id. */
static void
record_failed(const char *db, const char *id)
{
    council_mockllm *m = start_mock("model=bad-*:http=500", 0);
    char *file = council_file(m, "4");
    char rdb[800];
    cli_result r;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    {
        const char *args[] = {"run", "-q",       "--record", rdb, "-c",
                              file,  "--run-id", id,         "q", NULL};
        r = expect(1, args);
    }
    cli_result_free(&r);
    free(file);
    council_mockllm_close(m);
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* The event lines of a jsonl record: all but the owner line (the first)
 * and the outcome line (the last). */
static char *
event_lines(const char *file)
{
    char *c = cli_slurp(file), *last, *first, *out;

    ASSERT(strlen(c) > 0);
    ASSERT(strncmp(c, "{\"owner\":{", 10) == 0);
    first = strchr(c, '\n') + 1;
    last = strstr(c, "\n{\"outcome\"");
    ASSERT_NOT_NULL(last);
    last[1] = '\0';
    out = strdup(first);
    free(c);
    return out;
}

/* The owner line's pid of a jsonl record. */
static long
owner_pid(const char *text)
{
    json_error_t je;
    json_t *o = json_loadb(text, strcspn(text, "\n"), 0, &je);
    long pid;

    ASSERT_NOT_NULL(o);
    pid = (long)json_integer_value(
        json_object_get(json_object_get(o, "owner"), "pid"));
    json_decref(o);
    ASSERT(pid > 0);
    return pid;
}

/* ---- list ------------------------------------------------------------------
 */

TEST_T(list_filters_and_json, 120)
{
    char *db = tmp_path("runs.db");
    cli_result r;
    json_t *j;
    const char *nl;

    record_demo(db, NULL, "ok1", "Why is the sky blue?", NULL);
    record_failed(db, "failed1");
    {
        const char *args[] = {"runs", "list", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "ok1");
    ASSERT_STR_CONTAINS(r.out, "failed1");
    ASSERT_EQ_INT(count_lines(r.out), 3);                    /* header + 2 */
    ASSERT(strstr(r.out, "failed1") < strstr(r.out, "ok1")); /* newest first */
    cli_result_free(&r);
    {
        const char *args[] = {"runs",      "list", "--db", db,
                              "--council", "t",    NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    ASSERT_STR_CONTAINS(r.out, "failed1");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",      "list", "--db", db,
                              "--outcome", "ok",   NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    ASSERT_STR_CONTAINS(r.out, "ok1");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",      "list",  "--db", db,
                              "--outcome", "error", NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    ASSERT_STR_CONTAINS(r.out, "failed1");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",    "list", "--db",   db,
                              "--since", "1h",   "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    nl = strchr(r.out, '\n');
    j = json_loadb(r.out, (size_t)(nl - r.out), 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "run_id")), "failed1");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "outcome")), "error");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "council")), "t");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "strategy")), "rank");
    ASSERT(json_integer_value(json_object_get(j, "events")) > 5);
    ASSERT(json_is_integer(json_object_get(j, "duration_ms")));
    ASSERT(json_is_string(json_object_get(j, "started")));
    json_decref(j);
    cli_result_free(&r);
    {
        const char *args[] = {"runs",    "list",       "--db", db,
                              "--since", "2099-01-01", NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 1); /* the header alone */
    cli_result_free(&r);
    {
        const char *args[] = {"runs",    "list",    "--db",
                              db,        "--since", "2000-01-01T00:00:00Z",
                              "--limit", "1",       NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    cli_result_free(&r);

    /* Usage errors name what was wrong. */
    {
        const char *args[] = {"runs",      "list", "--db", db,
                              "--outcome", "done", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--outcome done: expected ok, error");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",    "list", "--db", db,
                              "--since", "soon", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--since soon: expected a date");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--limit", "-3", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--limit -3");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--council", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--council needs a value");
    cli_result_free(&r);
    free(db);
}

/* ---- show ------------------------------------------------------------------
 */

TEST_T(show_report_record_and_events, 120)
{
    char *db = tmp_path("runs.db");
    char *dir = tmp_path("jsonl");
    char file[800], *answer = NULL, *lines;
    cli_result r;
    json_t *j;

    mkdir(dir, 0700);
    record_demo(db, dir, "0193-show-me", "Why is the sky blue?", &answer);
    record_failed(db, "failed1");
    snprintf(file, sizeof(file), "%s/0193-show-me.jsonl", dir);

    /* The report, by a prefix of the id. */
    {
        const char *args[] = {"runs", "show", "0193", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "run       0193-show-me");
    ASSERT_STR_CONTAINS(r.out, "council   demo (strategy rank, 4 members");
    ASSERT_STR_CONTAINS(r.out, "outcome   ok");
    ASSERT_STR_CONTAINS(r.out, "Why is the sky blue?");
    ASSERT_STR_CONTAINS(r.out, "\nanswers\n");
    ASSERT_STR_CONTAINS(r.out, "  alpha      mock-a");
    ASSERT_STR_CONTAINS(r.out, "  delta      mock-d");
    ASSERT_STR_CONTAINS(r.out, "(first byte ");
    ASSERT_STR_CONTAINS(r.out, "\nreviews\n");
    ASSERT_STR_CONTAINS(r.out, "(strict)");
    ASSERT_STR_CONTAINS(r.out, "aggregate (Borda count)");
    ASSERT_STR_CONTAINS(r.out, "\nsynthesis  mock-chair");
    ASSERT_STR_CONTAINS(r.out, "\nusage     prompt ");
    /* The synthesis in full (wrapped): its first words are there. */
    {
        char first[24];

        snprintf(first, sizeof(first), "%.20s", answer);
        ASSERT_STR_CONTAINS(r.out, first);
    }
    cli_result_free(&r);

    /* The record as JSON: the answer `council run` printed. */
    {
        const char *args[] = {"runs",   "show", "0193-show-me", "--db", db,
                              "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 1);
    j = json_loads(r.out, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "run_id")),
                  "0193-show-me");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "outcome")), "ok");
    ASSERT_EQ_INT(strncmp(json_string_value(json_object_get(
                              json_object_get(j, "result"), "answer")),
                          answer, strlen(answer) - 1),
                  0);
    ASSERT_EQ_INT(json_array_size(json_object_get(j, "members")), 4);
    json_decref(j);
    cli_result_free(&r);

    /* Every event, as the jsonl record holds them; from the jsonl record
     * too. */
    lines = event_lines(file);
    {
        const char *args[] = {"runs",     "show", "0193-show-me", "--db", db,
                              "--events", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_EQ(r.out, lines);
    cli_result_free(&r);
    {
        const char *args[] = {
            "runs", "show", "0193-show-me", "--jsonl", file, "--events", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_EQ(r.out, lines);
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "0193", "--jsonl", file, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "run       0193-show-me");
    ASSERT_STR_CONTAINS(r.out, "aggregate (Borda count)");
    cli_result_free(&r);
    free(lines);

    /* A failed run: the failure and the errors. */
    {
        const char *args[] = {"runs", "show", "failed1", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "outcome   error: 3 of 4 members answered");
    ASSERT_STR_CONTAINS(r.out, "  d          bad-d          FAILED http: ");
    ASSERT_STR_CONTAINS(r.out, "\nerrors\n  quorum: ");
    cli_result_free(&r);

    /* No such run; no run given; both sources. */
    {
        const char *args[] = {"runs", "show", "nope", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "no run nope in ");
    ASSERT_STR_CONTAINS(r.err, db);
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "--db", db, NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "which run?");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show",    "x",  "--db",
                              db,     "--jsonl", file, NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "exclude each other");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "x", "--db", "/nonexistent.db",
                              NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "no run store at /nonexistent.db");
    cli_result_free(&r);
    free(answer);
    free(db);
    free(dir);
}

/* Two runs whose ids share a prefix: the prefix alone is ambiguous. */
TEST_T(ambiguous_prefix, 120)
{
    char *db = tmp_path("runs.db");
    cli_result r;

    record_demo(db, NULL, "same-1", "q1", NULL);
    record_demo(db, NULL, "same-2", "q2", NULL);
    {
        const char *args[] = {"runs", "show", "same", "--db", db, NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "run id prefix same is ambiguous");
    ASSERT_STR_CONTAINS(r.err, "same-1");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "same-2", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "q2");
    cli_result_free(&r);
    free(db);
}

/* ---- replay
 * ------------------------------------------------------------------ */

TEST_T(replay_into_jsonl_equals_the_record, 120)
{
    char *db = tmp_path("runs.db");
    char *dir = tmp_path("orig");
    char *dir2 = tmp_path("again");
    char f1[800], f2[800], rec[800], *a, *b, *answer = NULL, *lines;
    cli_result r;

    mkdir(dir, 0700);
    mkdir(dir2, 0700);
    record_demo(db, dir, "r1", "Why is the sky blue?", &answer);
    snprintf(f1, sizeof(f1), "%s/r1.jsonl", dir);
    snprintf(f2, sizeof(f2), "%s/r1.jsonl", dir2);
    snprintf(rec, sizeof(rec), "jsonl:%s", dir2);

    /* Into a jsonl directory: the same file, byte for byte, but for the
     * owner line. */
    {
        const char *args[] = {"runs", "replay",   "r1", "--db",
                              db,     "--record", rec,  NULL};
        r = expect(0, args);
    }
    /* The view as `council run` shows it: progress on stderr, the answer
     * on stdout. */
    ASSERT_STR_CONTAINS(r.err, "[answer] alpha: started (mock-a)");
    ASSERT_STR_CONTAINS(r.err, "[review] aggregate:");
    ASSERT_STR_CONTAINS(r.err, "replay of run r1 recorded in");
    ASSERT_STR_EQ(r.out, answer);
    cli_result_free(&r);
    a = cli_slurp(f1);
    b = cli_slurp(f2);
    ASSERT(strlen(a) > 1000);
    /* Each file names the process that wrote it; the rest, events and
     * outcome, is the same. */
    ASSERT_NE_INT(owner_pid(a), owner_pid(b));
    ASSERT_STR_EQ(strchr(b, '\n'), strchr(a, '\n'));
    free(a);
    free(b);

    /* As JSON lines: the recorded events. */
    lines = event_lines(f1);
    {
        const char *args[] = {"runs", "replay", "r1", "--db",
                              db,     "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_EQ(r.out, lines);
    cli_result_free(&r);
    /* From the jsonl record, the same. */
    {
        const char *args[] = {"runs", "replay", "r1", "--jsonl",
                              f1,     "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_EQ(r.out, lines);
    cli_result_free(&r);
    free(lines);
    free(answer);
    free(db);
    free(dir);
    free(dir2);
}

/* Replays exit as the recorded run did; a record cut short, as crashed. */
TEST_T(replay_exit_codes, 120)
{
    char *db = tmp_path("runs.db");
    char *dir = tmp_path("j");
    char file[800], cut[800], *content, *p;
    cli_result r;
    FILE *f;
    int i;

    mkdir(dir, 0700);
    record_failed(db, "failed1");
    {
        const char *args[] = {"runs", "replay", "failed1", "--db",
                              db,     "-q",     NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err,
                        "run failed1 failed: 3 of 4 members answered; quorum");
    cli_result_free(&r);

    record_demo(db, dir, "full", "q", NULL);
    snprintf(file, sizeof(file), "%s/full.jsonl", dir);
    snprintf(cut, sizeof(cut), "%s/cut.jsonl", dir);
    content = cli_slurp(file);
    /* The owner line and 30 events. */
    for (p = content, i = 0; i < 31; i++)
        p = strchr(p, '\n') + 1;
    f = fopen(cut, "w");
    ASSERT_NOT_NULL(f);
    fwrite(content, 1, (size_t)(p - content) + 9, f); /* a torn line */
    fclose(f);
    {
        const char *args[] = {"runs", "replay", "full", "--jsonl",
                              cut,    "-q",     NULL};
        r = expect(4, args);
    }
    ASSERT_STR_CONTAINS(r.err, "run full crashed: the record ends without a "
                               "terminal event (last seq 30)");
    cli_result_free(&r);
    free(content);
    free(db);
    free(dir);
}

/* Into the store it came from: refused, unless under another id. */
TEST_T(replay_into_its_own_store, 120)
{
    char *db = tmp_path("runs.db");
    char rec[800];
    cli_result r;

    record_demo(db, NULL, "r1", "q", NULL);
    snprintf(rec, sizeof(rec), "sqlite:%s", db);
    {
        const char *args[] = {"runs",     "replay", "r1", "--db", db,
                              "--record", rec,      "-q", NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "cannot replay: run r1 is already recorded in");
    ASSERT_STR_CONTAINS(r.err, "--run-id");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",    "replay",   "r1", "--db",
                              db,        "--record", rec,  "--run-id",
                              "r1-copy", "-q",       NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--db", db, "--json", NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 2);
    ASSERT_STR_CONTAINS(r.out, "\"run_id\":\"r1-copy\"");
    cli_result_free(&r);
    free(db);
}

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Paced, the replay takes as long as the run did; Ctrl-C stops it. */
TEST_T(replay_paced_and_interrupted, 120)
{
    council_mockllm *m = start_mock(NULL, 250); /* each call: 250 ms */
    char *file = council_file(m, "3");
    char *db = tmp_path("runs.db");
    char rdb[800];
    double t0, took, span;
    cli_result r;
    json_t *j;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    {
        const char *args[] = {"run", "-q",       "--record", rdb, "-c",
                              file,  "--run-id", "slow",     "q", NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show",   "slow", "--db",
                              db,     "--json", NULL};
        r = expect(0, args);
    }
    j = json_loads(r.out, 0, NULL);
    ASSERT_NOT_NULL(j);
    span = (double)json_integer_value(json_object_get(j, "duration_ms")) / 1e3;
    json_decref(j);
    cli_result_free(&r);
    ASSERT(span > 0.6);

    t0 = now_s();
    {
        const char *args[] = {"runs",   "replay",   "slow", "--db", db,
                              "--pace", "recorded", "-q",   NULL};
        r = cli_run(args);
    }
    took = now_s() - t0;
    cli_result_free(&r);
    /* The events' span is within the run's (recorder start to finalize). */
    if (took < span - 0.3)
        FAIL("a paced replay of a %.2f s run took %.2f s", span, took);

    {
        const char *args[] = {"runs", "replay", "slow",     "--db",
                              db,     "--pace", "recorded", NULL};
        r = cli_run_ex(400, 0, args);
    }
    ASSERT_EQ_INT(r.code, 130); /* recorded, then ended by SIGINT */
    ASSERT_STR_CONTAINS(r.err, "cancelling the run: interrupted (Ctrl-C)");
    ASSERT_STR_CONTAINS(r.err, "run slow cancelled");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "replay", "slow",   "--db",
                              db,     "--pace", "slowly", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--pace slowly: expected recorded or fast");
    cli_result_free(&r);
    free(file);
    free(db);
    council_mockllm_close(m);
}

/* ---- export
 * ------------------------------------------------------------------ */

TEST_T(export_json_and_markdown, 120)
{
    char *db = tmp_path("runs.db");
    char *out = tmp_path("run.json");
    char *md = tmp_path("run.md");
    char tmpname[800], *answer = NULL, *text;
    cli_result r;
    json_t *j, *evs;

    record_demo(db, NULL, "ex1", "Why is the sky blue?", &answer);
    {
        const char *args[] = {"runs",     "export", "ex1", "--db", db,
                              "--format", "json",   "-o",  out,    NULL};
        r = expect(0, args);
    }
    ASSERT_STR_EQ(r.out, "");
    cli_result_free(&r);
    j = json_load_file(out, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_object_get(j, "run"), "run_id")),
        "ex1");
    evs = json_object_get(j, "events");
    ASSERT_EQ_INT(json_array_size(evs),
                  json_integer_value(
                      json_object_get(json_object_get(j, "run"), "events")));
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(evs, 0), "type")),
        "run_started");
    ASSERT_STR_EQ(json_string_value(json_object_get(
                      json_array_get(evs, json_array_size(evs) - 1), "type")),
                  "run_completed");
    json_decref(j);
    /* Written whole: no temporary file left. */
    {
        glob_t g;

        snprintf(tmpname, sizeof(tmpname), "%s.tmp*", out);
        ASSERT_EQ_INT(glob(tmpname, 0, NULL, &g), GLOB_NOMATCH);
    }

    /* Markdown, to stdout (the default format) and to a file. */
    {
        const char *args[] = {"runs", "export", "ex1", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "# Council run `ex1`");
    ASSERT_STR_CONTAINS(r.out, "## Question\n\nWhy is the sky blue?");
    ASSERT_STR_CONTAINS(r.out, "## Answers\n\n### alpha (mock-a)");
    ASSERT_STR_CONTAINS(r.out, "### delta (mock-d)");
    ASSERT_STR_CONTAINS(r.out, "## Reviews\n\n| Reviewer |");
    ASSERT_STR_CONTAINS(r.out, "## Aggregate\n\n| # | Member | Borda");
    ASSERT_STR_CONTAINS(r.out, "| 1 | ");
    ASSERT_STR_CONTAINS(r.out, "## Final answer\n\n*By the chairman, "
                               "mock-chair.*");
    ASSERT_STR_CONTAINS(r.out, answer); /* in full */
    ASSERT_STR_CONTAINS(r.out, "## Usage\n\n| Who |");
    ASSERT_STR_CONTAINS(r.out, "| **run** |");
    cli_result_free(&r);
    {
        const char *args[] = {"runs",     "export", "ex1", "--db", db,
                              "--format", "md",     "-o",  md,     NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    text = cli_slurp(md);
    ASSERT_STR_CONTAINS(text, "# Council run `ex1`");
    free(text);

    /* Errors: a format, a place that cannot be written, a missing run. */
    {
        const char *args[] = {"runs", "export",   "ex1", "--db",
                              db,     "--format", "pdf", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--format pdf: expected json or md");
    cli_result_free(&r);
    {
        const char *args[] = {
            "runs", "export", "ex1", "--db", db, "-o", "/nonexistent/dir/x.md",
            NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "-o /nonexistent/dir/x.md: cannot write");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "export", "nope", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "no run nope in");
    cli_result_free(&r);
    free(answer);
    free(db);
    free(out);
    free(md);
}

/* ---- delete
 * ------------------------------------------------------------------ */

TEST_T(delete_runs, 120)
{
    char *db = tmp_path("runs.db");
    cli_result r;

    record_demo(db, NULL, "d1", "q1", NULL);
    record_demo(db, NULL, "d2", "q2", NULL);
    {
        const char *args[] = {"runs", "delete", "d1", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "deleted run d1 from ");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "d1", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "no run d1 in");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "delete", "d1", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "no run d1 in");
    cli_result_free(&r);

    /* A run without an outcome whose owner is not known (recorded before
     * owners were): it may still be running, so it is refused, then
     * deleted with --force.  (One whose owner is known to be gone is
     * closed as crashed by the reader: test_orphans.c.) */
    sql(db, "UPDATE runs SET outcome=NULL, ended_us=NULL, owner_pid=NULL"
            " WHERE run_id='d2'");
    {
        const char *args[] = {"runs", "delete", "d2", "--db", db, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "run d2 has no outcome: it may still be "
                               "running");
    ASSERT_STR_CONTAINS(r.err, "--force");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "delete",  "d2", "--db",
                              db,     "--force", NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 1);
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "delete", "d2", "--jsonl", "x", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "unknown option --jsonl");
    cli_result_free(&r);
    free(db);
}

/* ---- damage, help
 * ------------------------------------------------------------ */

TEST_T(damaged_store, 120)
{
    char *db = tmp_path("runs.db");
    char *out = tmp_path("x.md");
    cli_result r;

    record_demo(db, NULL, "r1", "q", NULL);
    sql(db, "UPDATE events SET json='{broken' WHERE run_id='r1' AND seq=40");
    {
        const char *args[] = {"runs", "show", "r1", "--db", db, NULL};
        r = expect(1, args);
    }
    /* What is there is shown, then the damage is named. */
    ASSERT_STR_CONTAINS(r.out, "run       r1");
    ASSERT_STR_CONTAINS(r.err, "run r1: event seq 40 is damaged");
    ASSERT_STR_CONTAINS(r.err, "the 39 events before the damage");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "replay", "r1", "--db", db, "-q", NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "event seq 40 is damaged");
    ASSERT_STR_CONTAINS(r.err, "not replayed");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "export", "r1", "--db",
                              db,     "-o",     out,  NULL};
        r = expect(1, args);
    }
    ASSERT_EQ_INT(access(out, F_OK), -1); /* nothing half-written */
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show",     "r1", "--db",
                              db,     "--events", NULL};
        r = expect(1, args);
    }
    ASSERT_EQ_INT(count_lines(r.out), 39);
    cli_result_free(&r);

    /* Not a store at all. */
    {
        FILE *f = fopen(out, "w");

        ASSERT_NOT_NULL(f);
        fputs("hello\n", f);
        fclose(f);
    }
    {
        const char *args[] = {"runs", "list", "--db", out, NULL};
        r = expect(1, args);
    }
    ASSERT_STR_CONTAINS(r.err, "not a database");
    cli_result_free(&r);
    free(db);
    free(out);
}

TEST(help_for_every_subcommand)
{
    static const char *const subs[] = {"list", "show", "replay", "export",
                                       "delete"};
    cli_result r;
    size_t i;

    for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        char want[64];
        const char *args[] = {"runs", subs[i], "--help", NULL};

        r = expect(0, args);
        snprintf(want, sizeof(want), "usage: council runs %s", subs[i]);
        ASSERT_STR_CONTAINS(r.out, want);
        cli_result_free(&r);
    }
    {
        const char *args[] = {"runs", "--help", NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "replay RUN_ID");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", NULL};
        r = expect(2, args);
    }
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "rewind", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "unknown subcommand 'rewind'");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "show", "a", "b", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "one run id only");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "replay", "a", "--record", "ftp:x", NULL};
        r = expect(2, args);
    }
    ASSERT_STR_CONTAINS(r.err, "--record ftp:x: expected sqlite:PATH, "
                               "jsonl:DIR, webhook:URL or redis:URL");
    cli_result_free(&r);
}

/* A council file of the given strategy and limits on m. */
static char *
strategy_file(council_mockllm *m, const char *strategy, const char *limits)
{
    char *file = tmp_path("strategy.yaml");
    FILE *f = fopen(file, "w");

    ASSERT_NOT_NULL(f);
    fprintf(f,
            "name: s\n"
            "strategy: %s\n"
            "providers:\n"
            "  mock: { kind: openai, base_url: %s }\n"
            "members:\n"
            "  - { name: ann, provider: mock, model: mock-a }\n"
            "  - { name: bob, provider: mock, model: mock-b }\n"
            "  - { name: cy,  provider: mock, model: mock-c }\n"
            "chairman: { provider: mock, model: mock-chair }\n"
            "limits: { %s }\n",
            strategy, council_mockllm_base_url(m), limits);
    fclose(f);
    return file;
}

/* Debate rounds and votes in the report and the Markdown export. */
TEST_T(show_debate_and_vote, 120)
{
    council_mockllm *m = start_mock(NULL, 0);
    char *debate = strategy_file(m, "debate", "quorum: 3, rounds: 3");
    char *db = tmp_path("runs.db");
    char rdb[800], *vote;
    cli_result r;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    {
        const char *args[] = {"run",  "-q",       "--record", rdb, "-c",
                              debate, "--run-id", "deb",      "q", NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);
    vote = strategy_file(m, "vote", "quorum: 3");
    {
        const char *args[] = {"run", "-q",       "--record", rdb, "-c",
                              vote,  "--run-id", "vot",      "q", NULL};
        r = expect(0, args);
    }
    cli_result_free(&r);

    {
        const char *args[] = {"runs", "show", "deb", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "(strategy debate, 3 members");
    ASSERT_STR_CONTAINS(r.out, "\ndebate rounds\n  round 2: 3 answered, "
                               "0 failed; similarity ann ");
    ASSERT_STR_CONTAINS(r.out, "\nsynthesis  mock-chair");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "export", "deb", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "## Debate rounds\n\n| Round | Answered |");
    ASSERT_STR_CONTAINS(r.out, "| 2 | 3 | 0 |");
    cli_result_free(&r);

    {
        const char *args[] = {"runs", "show", "vot", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "(strategy vote, 3 members");
    ASSERT_STR_CONTAINS(r.out, "\nvotes\n  ann        ");
    ASSERT_STR_CONTAINS(r.out, "\ntally\n");
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "export", "vot", "--db", db, NULL};
        r = expect(0, args);
    }
    ASSERT_STR_CONTAINS(r.out, "## Votes\n\n| Voter | Vote | Parse |");
    ASSERT_STR_CONTAINS(r.out, "## Tally\n\n| Member | Votes |");
    cli_result_free(&r);
    free(debate);
    free(vote);
    free(db);
    council_mockllm_close(m);
}
