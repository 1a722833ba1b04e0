/* SPDX-License-Identifier: MIT */
/*
 * The council command end to end, as a user runs it: the real binary
 * ($COUNCIL_BIN), a real mock LLM over loopback, real SQLite and JSONL
 * files.  Checks exit codes, the --json event stream (seq 1..n, terminal
 * last), what the recorders wrote, and the error paths a user meets.
 * TEST_LABELS: threaded
 */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "cli_run.h"
#include "rawhttp.h"
#include "runner.h"

extern char **environ;

/* A file size limit for the child (0 = none): writes past it fail. */
static unsigned long child_fsize;

static cli_result
run_cli(int sigint_after_ms, const char *const *args)
{
    return cli_run_ex(sigint_after_ms, child_fsize, args);
}

static char *
path_in_tmp(const char *name)
{
    char *p = malloc(700);

    snprintf(p, 700, "%s/%s", runner_tmpdir(), name);
    return p;
}

/* Parse JSON lines; check seq 1..n and the types at both ends.  Returns
 * the number of events; *run_id gets the id (malloc'd). */
static size_t
check_event_lines(const char *text, const char *last_type, char **run_id)
{
    const char *p = text;
    size_t n = 0;
    char type[64] = "";
    json_t *ev = NULL;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        json_error_t je;
        ASSERT_NOT_NULL(nl);
        json_decref(ev);
        ev = json_loadb(p, (size_t)(nl - p), 0, &je);
        if (ev == NULL)
            FAIL("line %zu is not JSON: %s", n + 1, je.text);
        if (json_object_get(ev, "outcome") != NULL)
            break; /* a JSONL file's outcome line */
        if (n == 0 && p == text && json_object_get(ev, "owner") != NULL) {
            /* A JSONL file's owner line: this test's council run. */
            ASSERT(json_integer_value(json_object_get(
                       json_object_get(ev, "owner"), "pid")) > 0);
            p = nl + 1;
            continue;
        }
        n++;
        ASSERT_EQ_INT(json_integer_value(json_object_get(ev, "seq")), n);
        snprintf(type, sizeof(type), "%s",
                 json_string_value(json_object_get(ev, "type")));
        if (n == 1) {
            ASSERT_STR_EQ(type, "run_started");
            if (run_id != NULL)
                *run_id =
                    strdup(json_string_value(json_object_get(ev, "run_id")));
        }
        p = nl + 1;
    }
    json_decref(ev);
    if (last_type != NULL)
        ASSERT_STR_EQ(type, last_type);
    return n;
}

static int
count_cb(void *ud, int ncol, char **vals, char **cols)
{
    (void)ncol;
    (void)cols;
    snprintf(ud, 256, "%s", vals[0] != NULL ? vals[0] : "NULL");
    return 0;
}

static void
sql_value(const char *db, const char *sql, char *out)
{
    sqlite3 *h;
    char *err = NULL;

    ASSERT_EQ_INT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                  SQLITE_OK);
    out[0] = '\0';
    if (sqlite3_exec(h, sql, count_cb, out, &err) != SQLITE_OK)
        FAIL("%s: %s", sql, err);
    sqlite3_close(h);
}

/* The demo council, --json, recorded to both stores. */
TEST_T(demo_run_json_recorded_to_sqlite_and_jsonl, 60)
{
    char *db = path_in_tmp("runs.db");
    char *dir = path_in_tmp("jsonl");
    char rec_db[800], rec_dir[800], sql[300], val[256], file[900];
    char *run_id = NULL, *content;
    size_t n, m;
    cli_result r;

    mkdir(dir, 0700);
    snprintf(rec_db, sizeof(rec_db), "sqlite:%s", db);
    snprintf(rec_dir, sizeof(rec_dir), "jsonl:%s", dir);
    {
        const char *args[] = {"run",
                              "--json",
                              "--record",
                              rec_db,
                              "--record",
                              rec_dir,
                              "Why is the sky blue?",
                              NULL};
        r = run_cli(0, args);
    }
    if (r.code != 0)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    n = check_event_lines(r.out, "run_completed", &run_id);
    /* 4 answers + 4 reviews + synthesis, each streamed: many events. */
    ASSERT(n > 40);
    ASSERT_STR_CONTAINS(r.out, "\"type\":\"rankings_aggregated\"");
    ASSERT_STR_CONTAINS(r.out, "\"parse\":\"strict\"");

    /* JSONL: the same events, then exactly one outcome line. */
    snprintf(file, sizeof(file), "%s/%s.jsonl", dir, run_id);
    content = cli_slurp(file);
    m = check_event_lines(content, NULL, NULL);
    ASSERT_EQ_U64(m, n);
    ASSERT_STR_CONTAINS(content, "\n{\"outcome\":\"ok\"");
    ASSERT_EQ_INT(content[strlen(content) - 1], '\n');
    {
        const char *last = strstr(content, "\n{\"outcome\"");
        ASSERT(strchr(last + 1, '\n') == content + strlen(content) - 1);
    }
    free(content);

    /* SQLite: the run row with its outcome, and every event. */
    snprintf(sql, sizeof(sql), "SELECT outcome FROM runs WHERE run_id = '%s'",
             run_id);
    sql_value(db, sql, val);
    ASSERT_STR_EQ(val, "ok");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM events WHERE run_id = '%s'", run_id);
    sql_value(db, sql, val);
    ASSERT_EQ_INT(atoi(val), (int)n);
    snprintf(sql, sizeof(sql),
             "SELECT max(seq) FROM events WHERE run_id = '%s'", run_id);
    sql_value(db, sql, val);
    ASSERT_EQ_INT(atoi(val), (int)n);
    snprintf(sql, sizeof(sql), "SELECT council FROM runs WHERE run_id='%s'",
             run_id);
    sql_value(db, sql, val);
    ASSERT_STR_EQ(val, "demo");

    /* council runs list shows it. */
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--db", db, NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, run_id);
    ASSERT_STR_CONTAINS(r.out, "demo");
    cli_result_free(&r);
    free(run_id);
    free(db);
    free(dir);
}

/* Plain progress on stderr when not a terminal; the answer on stdout. */
TEST_T(plain_mode_prints_progress_and_answer, 60)
{
    char *db = path_in_tmp("runs.db");
    char env[800];
    cli_result r;

    snprintf(env, sizeof(env), "%s", db);
    setenv("COUNCIL_DB", env, 1);
    {
        const char *args[] = {"run", "What is 2+2?", NULL};
        r = run_cli(0, args);
    }
    if (r.code != 0)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT_STR_CONTAINS(r.err, "built-in demo council");
    ASSERT_STR_CONTAINS(r.err, "[answer] alpha: started");
    ASSERT_STR_CONTAINS(r.err, "[review] aggregate:");
    ASSERT_STR_CONTAINS(r.err, "recorded in");
    ASSERT_STR_CONTAINS(r.err, db);
    ASSERT(strlen(r.out) > 20);
    ASSERT(strstr(r.out, "{\"type\"") == NULL);
    cli_result_free(&r);
    free(db);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

/* A malformed council file: file:line:col and what was expected, exit 2. */
TEST(bad_council_file_exits_2_with_position)
{
    char *file = path_in_tmp("bad.yaml");
    cli_result r;

    write_file(file, "name: x\n"
                     "providers:\n"
                     "  p: { kind: openai, base_url: http://127.0.0.1:1/v1 }\n"
                     "members:\n"
                     "  - { name: a, provider: p, modle: m }\n"
                     "chairman: { provider: p, model: m }\n");
    {
        const char *args[] = {"run", "--no-record", "-c", file, "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, file);
    ASSERT_STR_CONTAINS(r.err, ":5:");
    ASSERT_STR_CONTAINS(r.err, "did you mean \"model\"");
    cli_result_free(&r);
    free(file);
}

/* A council file for a mock LLM started by the test itself. */
static char *
mock_council(council_mockllm *m, const char *quorum)
{
    char *file = path_in_tmp("council.yaml");
    char text[1200];

    snprintf(text, sizeof(text),
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
    write_file(file, text);
    return file;
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

/* A member that fails is member_failed with its real cause; the run goes
 * on under quorum. */
TEST_T(member_failure_recorded_with_cause, 60)
{
    council_mockllm *m = start_mock("model=bad-*:http=503", 0);
    char *file = mock_council(m, "3");
    cli_result r;

    {
        const char *args[] = {"run", "--no-record", "--json", "-c",
                              file,  "q",           NULL};
        r = run_cli(0, args);
    }
    if (r.code != 0)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    check_event_lines(r.out, "run_completed", NULL);
    ASSERT_STR_CONTAINS(r.out, "\"type\":\"member_failed\"");
    ASSERT_STR_CONTAINS(r.out, "\"member\":\"d\"");
    ASSERT_STR_CONTAINS(r.out, "\"http_status\":503");
    ASSERT_STR_CONTAINS(r.out, "HTTP 503");
    cli_result_free(&r);
    free(file);
    council_mockllm_close(m);
}

/* ---- secrets -------------------------------------------------------------
 */

#define ECHO_KEY "sk-echo-0123456789abcdef-SECRET"

/* Does the file at path hold needle anywhere (bytes)? */
static int
file_holds(const char *path, const char *needle)
{
    size_t n = 0;
    int found;
    char *t;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return 0;
    t = malloc(64 << 20);
    ASSERT_NOT_NULL(t);
    n = fread(t, 1, 64 << 20, f);
    fclose(f);
    found = memmem(t, n, needle, strlen(needle)) != NULL;
    free(t);
    return found;
}

/* The text of every member_delta of member (in order), joined. */
static int
field_is(json_t *ev, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(ev, key));

    return v != NULL && strcmp(v, want) == 0;
}

static char *
deltas_of(const char *lines, const char *member)
{
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    const char *p = lines;

    ASSERT_NOT_NULL(out);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        json_t *ev;

        ASSERT_NOT_NULL(nl);
        ev = json_loadb(p, (size_t)(nl - p), 0, NULL);
        ASSERT_NOT_NULL(ev);
        if (field_is(ev, "type", "member_delta") &&
            field_is(ev, "member", member) && field_is(ev, "stage", "answer")) {
            const char *t = json_string_value(json_object_get(ev, "delta"));

            ASSERT_NOT_NULL(t);
            ASSERT(n + strlen(t) < cap);
            memcpy(out + n, t, strlen(t));
            n += strlen(t);
        }
        json_decref(ev);
        p = nl + 1;
    }
    return out;
}

/*
 * Issue 13: a provider that echoed its API key as answer text had it
 * stored verbatim in events, JSONL and SQLite.  Here every call's answer
 * holds the key twice, the first time split across two deltas, and the
 * question holds it too: no event, record, output or log line holds any
 * of it, the deltas joined read "[redacted]" where the key was, and so do
 * the answers and the result; in this process and in a child host.
 */
TEST_T(echoed_api_key_is_redacted_everywhere, 90)
{
    static const char response[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Connection: close\r\n\r\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"my key "
        "is sk-echo-0123456\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"789abcdef-"
        "SECRET, again " ECHO_KEY ".\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
        "\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    rawhttp *srv = rawhttp_start();
    char *file = path_in_tmp("council.yaml"), *db = path_in_tmp("runs.db");
    char *dir = path_in_tmp("jl"), text[1200], *run_id = NULL, *joined;
    char jl[900], wal[800];
    cli_result r;

    rawhttp_reply(srv, response, RAWHTTP_CLOSE);
    snprintf(text, sizeof(text),
             "name: t\n"
             "providers:\n"
             "  p: { kind: openai, base_url: http://127.0.0.1:%d/v1, "
             "api_key_env: COUNCIL_TEST_ECHO_KEY }\n"
             "members:\n"
             "  - { name: a, provider: p, model: m-a }\n"
             "  - { name: b, provider: p, model: m-b }\n"
             "chairman: { provider: p, model: m-chair }\n"
             "limits: { quorum: 2, member_timeout: 20s }\n",
             rawhttp_port(srv));
    write_file(file, text);
    ASSERT_EQ_INT(mkdir(dir, 0700), 0);
    setenv("COUNCIL_TEST_ECHO_KEY", ECHO_KEY, 1);
    {
        char rec_jl[800], rec_db[800];
        const char *args[] = {"run",      "--json",   "-c",
                              file,       "--record", rec_jl,
                              "--record", rec_db,     "is " ECHO_KEY " mine?",
                              NULL};

        snprintf(rec_jl, sizeof(rec_jl), "jsonl:%s", dir);
        snprintf(rec_db, sizeof(rec_db), "sqlite:%s", db);
        r = run_cli(0, args);
    }
    if (r.code != 0)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    check_event_lines(r.out, "run_completed", &run_id);
    ASSERT(strstr(r.out, "sk-echo") == NULL);
    ASSERT(strstr(r.out, "SECRET") == NULL);
    ASSERT(strstr(r.err, "sk-echo") == NULL);
    ASSERT_STR_CONTAINS(r.out, "is [redacted] mine?");
    /* The deltas, joined: the split key is redacted as a whole. */
    joined = deltas_of(r.out, "a");
    ASSERT_STR_EQ(joined, "my key is [redacted], again [redacted].");
    free(joined);
    ASSERT_STR_CONTAINS(r.out, "\"text\":\"my key is [redacted], again "
                               "[redacted].\"");
    cli_result_free(&r);
    /* The records, byte for byte. */
    snprintf(jl, sizeof(jl), "%s/%s.jsonl", dir, run_id);
    ASSERT_EQ_INT(file_holds(jl, "[redacted]"), 1);
    ASSERT_EQ_INT(file_holds(jl, "sk-echo"), 0);
    ASSERT_EQ_INT(file_holds(db, "sk-echo"), 0);
    snprintf(wal, sizeof(wal), "%s-wal", db);
    ASSERT_EQ_INT(file_holds(wal, "sk-echo"), 0);
    {
        const char *args[] = {"runs", "show", run_id, "--db", db, NULL};

        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "[redacted]");
    ASSERT(strstr(r.out, "sk-echo") == NULL);
    cli_result_free(&r);
    /* Plain progress on stderr and the answer on stdout, the council in a
     * child process (it redacts too). */
    {
        const char *args[] = {"run",     "-c",          file, "--isolation",
                              "process", "--no-record", "q",  NULL};

        r = run_cli(0, args);
    }
    if (r.code != 0)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT_STR_CONTAINS(r.out, "[redacted]");
    ASSERT(strstr(r.out, "sk-echo") == NULL);
    ASSERT(strstr(r.err, "sk-echo") == NULL);
    cli_result_free(&r);
    /* Nor did the members' answers carry the key to the chairman: the
     * last request's body (the synthesis prompt) holds none of it. */
    {
        char *req = rawhttp_last_request(srv);
        const char *body;

        ASSERT_NOT_NULL(req);
        body = strstr(req, "\r\n\r\n");
        ASSERT_NOT_NULL(body);
        ASSERT_STR_CONTAINS(body, "[redacted]");
        ASSERT(strstr(body, "sk-echo") == NULL);
        free(req);
    }
    unsetenv("COUNCIL_TEST_ECHO_KEY");
    rawhttp_stop(srv);
    free(run_id);
    free(file);
    free(db);
    free(dir);
}

/* Below quorum the run fails: exit 1, the reason named. */
TEST_T(below_quorum_exits_1, 60)
{
    council_mockllm *m = start_mock("model=bad-*:http=500", 0);
    char *file = mock_council(m, "4");
    cli_result r;

    {
        const char *args[] = {"run", "--no-record", "-c", file, "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 1);
    ASSERT_STR_CONTAINS(r.err, "3 of 4 members answered; quorum is 4");
    cli_result_free(&r);
    free(file);
    council_mockllm_close(m);
}

/* Ctrl-C cancels the run, records it as cancelled, then council ends by
 * SIGINT (130).  The other signals: test_orphans.c. */
TEST_T(sigint_cancels_and_records, 60)
{
    council_mockllm *m = start_mock(NULL, 20000);
    char *file = mock_council(m, "3");
    char *db = path_in_tmp("c.db");
    char rec[800], val[256];
    cli_result r;

    snprintf(rec, sizeof(rec), "sqlite:%s", db);
    {
        const char *args[] = {"run", "--record", rec, "-c", file, "q", NULL};
        r = run_cli(700, args);
    }
    ASSERT_EQ_INT(r.code, 130);
    ASSERT_STR_CONTAINS(r.err, "cancelling the run: interrupted (Ctrl-C)");
    ASSERT_STR_CONTAINS(r.err, "cancelled: interrupted (Ctrl-C)");
    sql_value(db, "SELECT outcome FROM runs", val);
    ASSERT_STR_EQ(val, "cancelled");
    cli_result_free(&r);
    free(file);
    free(db);
    council_mockllm_close(m);
}

TEST(usage_and_help)
{
    cli_result r;

    {
        const char *args[] = {"--help", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "usage: council");
    cli_result_free(&r);
    {
        const char *args[] = {"run", "--help", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "--record SPEC");
    cli_result_free(&r);
    {
        const char *args[] = {"run", "--bogus", "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "unknown option --bogus");
    cli_result_free(&r);
    {
        const char *args[] = {"run", "--record", "mysql:x", "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    cli_result_free(&r);
    {
        /* A seed is recorded as a signed JSON integer: 1..2^63-1. */
        const char *args[] = {
            "run", "--no-record", "--seed", "9223372036854775808", "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "expected an integer from 1 to "
                               "9223372036854775807");
    cli_result_free(&r);
    {
        const char *args[] = {"run", "--no-record", "--seed", "-1", "q", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--seed -1");
    cli_result_free(&r);
    {
        /* Issue 13: a question that is not UTF-8 is refused up front,
         * naming where its bad byte is. */
        const char *args[] = {"run", "--json", "--no-record", "caf\xe9", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "the question is not valid UTF-8: byte 0xe9 "
                               "at offset 3 (byte 4 of 4)");
    ASSERT_STR_EQ(r.out, "");
    cli_result_free(&r);
    {
        const char *args[] = {"frobnicate", NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 2);
    cli_result_free(&r);
    {
        const char *args[] = {"runs", "list", "--db", "/nonexistent/x.db",
                              NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 1);
    ASSERT_STR_CONTAINS(r.err, "no run store");
    cli_result_free(&r);
}

/* A recorder that cannot write (directory missing) makes start fail with
 * the reason; exit 1 (nothing ran, nothing half-recorded). */
TEST(unwritable_jsonl_dir_is_refused)
{
    cli_result r;

    {
        const char *args[] = {"run", "--record", "jsonl:/nonexistent/dir", "q",
                              NULL};
        r = run_cli(0, args);
    }
    ASSERT_EQ_INT(r.code, 1);
    ASSERT_STR_CONTAINS(r.err, "/nonexistent/dir");
    cli_result_free(&r);
}

/* A recorder that cannot write mid-run (the file size limit stands in for
 * a full disk) is reported, in one line for its first failure and one
 * summing up the rest; the run and the other recorders go on; the record
 * that could not be finished is named, and the exit code says it (5), not
 * 0. */
TEST_T(recorder_that_cannot_write_is_reported_run_goes_on, 60)
{
    char *dir = path_in_tmp("j");
    char rec[800];
    cli_result r;

    mkdir(dir, 0700);
    snprintf(rec, sizeof(rec), "jsonl:%s", dir);
    child_fsize = 4096; /* a few events fit, the rest do not */
    {
        const char *args[] = {"run", "--record", rec, "q", NULL};
        r = run_cli(0, args);
    }
    child_fsize = 0;
    if (r.code != 5)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    ASSERT_STR_CONTAINS(r.err, "recorder 0 failed on seq");
    {
        const char *p = r.err;
        int lines = 0;

        while ((p = strstr(p, "failed on seq")) != NULL) {
            lines++;
            p++;
        }
        ASSERT_EQ_INT(lines, 1);
    }
    ASSERT_STR_CONTAINS(r.err, "recorder 0 (jsonl:");
    ASSERT_STR_CONTAINS(r.err, " events (seq ");
    ASSERT_STR_CONTAINS(r.err, "has no outcome");
    /* The display recorder went on: the answer is there. */
    ASSERT(strlen(r.out) > 20);
    cli_result_free(&r);
    free(dir);
}
