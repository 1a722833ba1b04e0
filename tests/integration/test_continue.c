/* SPDX-License-Identifier: MIT */
/*
 * council run --continue, end to end with the real binary ($COUNCIL_BIN):
 * two runs of the offline demo council recorded in one SQLite store, the
 * second continuing the first.  Checks that the second run's input (the
 * messages of its run_started event) is the first question, the first
 * run's final answer and the new question, and the errors a user meets
 * (unknown run, missing store).
 * TEST_LABELS: threaded
 */
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "council.h"
#include "runner.h"

extern char **environ;

typedef struct result {
    int code;  /* exit status, or 128 + signal */
    char *out; /* stdout */
    char *err; /* stderr */
} result;

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
        FAIL("short read of %s", path);
    fclose(f);
    return buf;
}

/* Run the council binary with args (NULL-terminated), at most 60 s. */
static result
run_cli(const char *const *args)
{
    const char *bin = getenv("COUNCIL_BIN");
    char out_path[600], err_path[600];
    posix_spawn_file_actions_t fa;
    char *argv[64];
    result r = {0};
    pid_t pid;
    int status, n = 0, waited = 0;

    ASSERT_NOT_NULL(bin);
    snprintf(out_path, sizeof(out_path), "%s/stdout", runner_tmpdir());
    snprintf(err_path, sizeof(err_path), "%s/stderr", runner_tmpdir());
    argv[n++] = (char *)bin;
    while (args[n - 1] != NULL && n < 63) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (waited++ > 60000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            FAIL("council did not finish in 60 s");
        }
        usleep(1000);
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void
free_result(result *r)
{
    free(r->out);
    free(r->err);
}

/* The first line of text, parsed: the run_started event of a --json run. */
static json_t *
first_event(const char *text)
{
    const char *nl = strchr(text, '\n');
    json_error_t je;
    json_t *ev;

    ASSERT_NOT_NULL(nl);
    ev = json_loadb(text, (size_t)(nl - text), 0, &je);
    if (ev == NULL)
        FAIL("not JSON: %s", je.text);
    ASSERT_STR_EQ(json_string_value(json_object_get(ev, "type")),
                  "run_started");
    return ev;
}

/* The answer of the run_completed event (the last line). */
static char *
final_answer(const char *text)
{
    const char *p = text, *last = NULL, *nl;
    json_t *ev;
    char *answer;

    while ((nl = strchr(p, '\n')) != NULL) {
        if (nl[1] != '\0')
            last = nl + 1;
        p = nl + 1;
    }
    ASSERT_NOT_NULL(last);
    ev = json_loads(last, 0, NULL);
    ASSERT_NOT_NULL(ev);
    ASSERT_STR_EQ(json_string_value(json_object_get(ev, "type")),
                  "run_completed");
    answer = strdup(json_string_value(
        json_object_get(json_object_get(ev, "result"), "answer")));
    json_decref(ev);
    return answer;
}

TEST_T(continue_demo_twice, 120)
{
    char rec[700], *answer;
    json_t *ev, *msgs;
    result r;

    snprintf(rec, sizeof(rec), "sqlite:%s/runs.db", runner_tmpdir());
    r = run_cli((const char *[]){"run", "--json", "--record", rec, "--run-id",
                                 "first", "--seed", "3",
                                 "What is \"2+2\"?\nAnswer briefly.", NULL});
    ASSERT_EQ_INT(r.code, 0);
    answer = final_answer(r.out);
    ASSERT(strlen(answer) > 0);
    free_result(&r);

    r = run_cli((const char *[]){"run", "--json", "--record", rec, "--run-id",
                                 "second", "--continue", "first", "And 3+3?",
                                 NULL});
    if (r.code != 0)
        FAIL("exit %d: %s", r.code, r.err);
    ev = first_event(r.out);
    msgs = json_object_get(ev, "messages");
    ASSERT_EQ_INT(json_array_size(msgs), 3);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
        "user");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
        "What is \"2+2\"?\nAnswer briefly.");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 1), "role")),
        "assistant");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
        answer);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 2), "role")),
        "user");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
        "And 3+3?");
    ASSERT_STR_EQ(json_string_value(json_object_get(ev, "question")),
                  "And 3+3?");
    json_decref(ev);
    free(answer);
    free_result(&r);

    /* A third turn continues the second: 5 messages. */
    r = run_cli((const char *[]){"run", "--json", "--record", rec, "--continue",
                                 "second", "And 4+4?", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ev = first_event(r.out);
    ASSERT_EQ_INT(json_array_size(json_object_get(ev, "messages")), 5);
    json_decref(ev);
    free_result(&r);
}

TEST_T(continue_errors, 60)
{
    char rec[700], env[700];
    result r;

    snprintf(rec, sizeof(rec), "sqlite:%s/runs.db", runner_tmpdir());
    r = run_cli((const char *[]){"run", "-q", "--record", rec, "--run-id",
                                 "only", "q", NULL});
    ASSERT_EQ_INT(r.code, 0);
    free_result(&r);

    r = run_cli((const char *[]){"run", "--record", rec, "--continue", "nope",
                                 "q", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue nope: no such run in ");
    free_result(&r);

    /* Without --record: the default store ($COUNCIL_DB), missing here. */
    snprintf(env, sizeof(env), "%s/missing.db", runner_tmpdir());
    setenv("COUNCIL_DB", env, 1);
    r = run_cli((const char *[]){"run", "--no-record", "--continue", "only",
                                 "q", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue only: ");
    ASSERT_STR_CONTAINS(r.err, "missing.db");
    ASSERT_EQ_INT(access(env, F_OK), -1); /* not created */
    free_result(&r);

    /* The default store is read when it holds the run. */
    snprintf(env, sizeof(env), "%s/runs.db", runner_tmpdir());
    setenv("COUNCIL_DB", env, 1);
    r = run_cli((const char *[]){"run", "--json", "--no-record", "--continue",
                                 "only", "next", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "\"role\":\"assistant\"");
    free_result(&r);

    r = run_cli((const char *[]){"run", "--continue", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue needs a value");
    free_result(&r);
}
