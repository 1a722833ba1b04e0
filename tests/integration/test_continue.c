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
#include "cli_run.h"
#include "runner.h"

extern char **environ;

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
    cli_result r;

    snprintf(rec, sizeof(rec), "sqlite:%s/runs.db", runner_tmpdir());
    r = cli_run((const char *[]){"run", "--json", "--record", rec, "--run-id",
                                 "first", "--seed", "3",
                                 "What is \"2+2\"?\nAnswer briefly.", NULL});
    ASSERT_EQ_INT(r.code, 0);
    answer = final_answer(r.out);
    ASSERT(strlen(answer) > 0);
    cli_result_free(&r);

    r = cli_run((const char *[]){"run", "--json", "--record", rec, "--run-id",
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
    cli_result_free(&r);

    /* A third turn continues the second: 5 messages. */
    r = cli_run((const char *[]){"run", "--json", "--record", rec, "--continue",
                                 "second", "And 4+4?", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ev = first_event(r.out);
    ASSERT_EQ_INT(json_array_size(json_object_get(ev, "messages")), 5);
    json_decref(ev);
    cli_result_free(&r);
}

TEST_T(continue_errors, 60)
{
    char rec[700], env[700];
    cli_result r;

    snprintf(rec, sizeof(rec), "sqlite:%s/runs.db", runner_tmpdir());
    r = cli_run((const char *[]){"run", "-q", "--record", rec, "--run-id",
                                 "only", "q", NULL});
    ASSERT_EQ_INT(r.code, 0);
    cli_result_free(&r);

    r = cli_run((const char *[]){"run", "--record", rec, "--continue", "nope",
                                 "q", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue nope: no such run in ");
    cli_result_free(&r);

    /* Without --record: the default store ($COUNCIL_DB), missing here. */
    snprintf(env, sizeof(env), "%s/missing.db", runner_tmpdir());
    setenv("COUNCIL_DB", env, 1);
    r = cli_run((const char *[]){"run", "--no-record", "--continue", "only",
                                 "q", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue only: ");
    ASSERT_STR_CONTAINS(r.err, "missing.db");
    ASSERT_EQ_INT(access(env, F_OK), -1); /* not created */
    cli_result_free(&r);

    /* The default store is read when it holds the run. */
    snprintf(env, sizeof(env), "%s/runs.db", runner_tmpdir());
    setenv("COUNCIL_DB", env, 1);
    r = cli_run((const char *[]){"run", "--json", "--no-record", "--continue",
                                 "only", "next", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "\"role\":\"assistant\"");
    cli_result_free(&r);

    r = cli_run((const char *[]){"run", "--continue", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "--continue needs a value");
    cli_result_free(&r);
}
