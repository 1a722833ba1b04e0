/* SPDX-License-Identifier: MIT */
/*
 * The deadline target of the councils issue: "a run with deadline: 10s
 * against models that stall ends within 10 s + 100 ms, with the synthesis
 * done from what arrived, or failed with its reason."  Each strategy, real
 * HTTP to the in-process mock LLM, real stalls (the mock holds the
 * response for 60 s), wall time measured from council_run_start to the
 * outcome with every recorder finalized.
 * TEST_LABELS: threaded
 */
#include <string.h>
#include <time.h>

#include "council.h"
#include "runner.h"

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one council; returns the wall time; *out gets the outcome kind and
 * errors JSON (copied into buf). */
static double
run_with_deadline(const char *strategy, const char *faults, const char *chair,
                  int *kind, char *errors, size_t errors_size, char *result,
                  size_t result_size)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_engine *eng = NULL;
    council_def *def = NULL;
    council_run *run = NULL;
    const council_outcome *o = NULL;
    council_diag d;
    char text[1500];
    double t0, t1;

    mo.seed = 5;
    mo.faults = faults;
    ASSERT_OK(council_mockllm_open(&mo, &m, &d));
    snprintf(text, sizeof(text),
             "name: d\nstrategy: %s\n"
             "providers:\n  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: a, provider: mock, model: mock-a }\n"
             "  - { name: b, provider: mock, model: mock-b }\n"
             "  - { name: s1, provider: mock, model: stall-1 }\n"
             "  - { name: s2, provider: mock, model: stall-2 }\n"
             "chairman: { provider: mock, model: %s }\n"
             "limits: { quorum: 2, deadline: 10s, member_timeout: 60s,"
             " retries: 0 }\n",
             strategy, council_mockllm_base_url(m), chair);
    ASSERT_OK(council_def_load_string(text, strlen(text), "d.yaml", &def, &d));
    ASSERT_OK(council_engine_open(NULL, &eng));
    t0 = now_s();
    ASSERT_OK(council_run_start(eng, def, "q", NULL, &run, &d));
    ASSERT_OK(council_run_wait(run, 30000, &o));
    t1 = now_s();
    *kind = council_outcome_kind_of(o);
    snprintf(errors, errors_size, "%s",
             council_outcome_errors_json(o) ? council_outcome_errors_json(o)
                                            : "");
    snprintf(result, result_size, "%s",
             council_outcome_result_json(o) ? council_outcome_result_json(o)
                                            : "");
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
    return t1 - t0;
}

/* Two members stall: the stages end at the budget (deadline minus the
 * synthesis reserve) and the chairman synthesizes from what arrived. */
static void
stalling_members(const char *strategy)
{
    char errors[4096], result[65536];
    int kind;
    double secs = run_with_deadline(strategy, "model=stall-*:stall=60s",
                                    "mock-chair", &kind, errors, sizeof(errors),
                                    result, sizeof(result));

    fprintf(stderr, "%s, stalling members: %.3f s, %s\n", strategy, secs,
            kind == COUNCIL_OUTCOME_OK ? "completed" : errors);
    ASSERT_EQ_INT(kind, COUNCIL_OUTCOME_OK);
    ASSERT(secs <= 10.1);
    ASSERT_STR_CONTAINS(result, "\"answer\"");
}

/* The chairman stalls too: the run fails with its reason at the deadline,
 * not later. */
static void
chairman_stalls(const char *strategy)
{
    char errors[4096], result[65536];
    int kind;
    double secs = run_with_deadline(strategy, "model=stall-*:stall=60s",
                                    "stall-chair", &kind, errors,
                                    sizeof(errors), result, sizeof(result));

    fprintf(stderr, "%s, chairman stalls: %.3f s, %s\n", strategy, secs,
            errors);
    ASSERT(kind == COUNCIL_OUTCOME_ERROR || kind == COUNCIL_OUTCOME_OK);
    ASSERT(secs >= 9.9 && secs <= 10.1);
    if (kind == COUNCIL_OUTCOME_ERROR)
        ASSERT(strstr(errors, "deadline") != NULL);
}

/* Every member stalls: below quorum when the stages' budget ends. */
static void
everyone_stalls(const char *strategy)
{
    char errors[4096], result[65536];
    int kind;
    double secs = run_with_deadline(
        strategy, "model=stall-*:stall=60s;model=mock-*:stall=60s",
        "mock-chair", &kind, errors, sizeof(errors), result, sizeof(result));

    fprintf(stderr, "%s, everyone stalls: %.3f s, %s\n", strategy, secs,
            errors);
    ASSERT_EQ_INT(kind, COUNCIL_OUTCOME_ERROR);
    ASSERT(secs <= 10.1);
    ASSERT(strstr(errors, "deadline") != NULL ||
           strstr(errors, "quorum") != NULL);
}

TEST_T(rank_stalling_members_within_deadline, 60)
{
    stalling_members("rank");
}

TEST_T(vote_stalling_members_within_deadline, 60)
{
    stalling_members("vote");
}

TEST_T(debate_stalling_members_within_deadline, 60)
{
    stalling_members("debate");
}

TEST_T(rank_chairman_stalls_ends_at_deadline, 60)
{
    chairman_stalls("rank");
}

TEST_T(rank_everyone_stalls_fails_by_deadline, 60)
{
    everyone_stalls("rank");
}
