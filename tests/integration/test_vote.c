/* SPDX-License-Identifier: MIT */
/*
 * The vote strategy through the public API against the in-process mock
 * LLM: anonymized, shuffled ballots (own answer never shown), plurality,
 * a tie broken by the chairman, the chairman's fallbacks ending with the
 * winner's answer, the synthesis reserve under a deadline, cancel during
 * the vote, and quorum.  The mock votes for the longest answer it is
 * shown, so the winner is predictable.
 * TEST_LABELS: threaded
 */
#include "strategy_fixture.h"

/* The member with the longest answer (the mock's plurality winner). */
static const char *
longest(keep *k)
{
    json_t *ev[16];
    size_t n = find(k, "member_completed", ev, 16), i, best = 0;

    for (i = 1; i < n; i++)
        if (json_string_length(json_object_get(ev[i], "text")) >
            json_string_length(json_object_get(ev[best], "text")))
            best = i;
    return n > 0 ? str(ev[best], "member") : NULL;
}

TEST_T(anonymized_ballots_and_plurality, 30)
{
    council_mockllm *m = mock(NULL, 0);
    council_def *def = council(m, "vote", FOUR_MEMBERS, CHAIR, "quorum: 4");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[16], *res, *v;
    size_t n, i;
    json_int_t total = 0;
    const char *key;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    n = find(&k, "review_completed", ev, 16);
    ASSERT_EQ_U64(n, 4);
    for (i = 0; i < n; i++) {
        const char *me = str(ev[i], "member");
        json_t *labels = json_object_get(ev[i], "labels");
        int found = 0;
        ASSERT_STR_EQ(str(ev[i], "stage"), "vote");
        ASSERT_EQ_U64(json_object_size(labels), 3);
        json_object_foreach (labels, key, v) {
            ASSERT(strcmp(json_string_value(v), me) != 0);
            ASSERT(key[0] >= 'A' && key[0] <= 'C' && key[1] == '\0');
            if (strcmp(json_string_value(v), str(ev[i], "vote")) == 0)
                found = 1;
        }
        ASSERT(found); /* a vote for one of the labels shown */
        ASSERT_STR_EQ(str(ev[i], "parse"), "strict");
        ASSERT(json_is_integer(json_object_get(ev[i], "seed")));
    }
    ASSERT_EQ_U64(find(&k, "rankings_aggregated", ev, 16), 1);
    ASSERT_STR_EQ(str(ev[0], "stage"), "vote");
    ASSERT_STR_EQ(str(ev[0], "winner"), longest(&k));
    ASSERT_EQ_U64(json_array_size(json_object_get(ev[0], "tie")), 0);
    json_object_foreach (json_object_get(ev[0], "votes"), key, v)
        total += json_integer_value(v);
    ASSERT_EQ_INT(total, 4);
    ASSERT_EQ_INT(json_integer_value(json_object_get(
                      json_object_get(ev[0], "votes"), longest(&k))),
                  3);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_STR_EQ(str(res, "strategy"), "vote");
    ASSERT_STR_EQ(str(res, "winner"), longest(&k));
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "ballots")), 4);
    ASSERT(json_string_length(json_object_get(res, "answer")) > 0);
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Two members vote for each other: a tie, broken by the chairman. */
TEST_T(tie_broken_by_chairman, 30)
{
    council_mockllm *m = mock(NULL, 0);
    council_def *def =
        council(m, "vote",
                "  - { name: ann, provider: mock, model: mock-a }\n"
                "  - { name: bob, provider: mock, model: mock-b }\n",
                CHAIR, "quorum: 2");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[8], *res;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "rankings_aggregated", ev, 8), 1);
    ASSERT(json_is_null(json_object_get(ev[0], "winner")));
    ASSERT_EQ_U64(json_array_size(json_object_get(ev[0], "tie")), 2);
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "tie_broken_by"), "chairman");
    ASSERT_STR_EQ(str(ev[0], "winner"), longest(&k));
    ASSERT_STR_CONTAINS(str(ev[0], "text"), "FINAL VOTE: Response");
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_STR_EQ(str(res, "winner"), longest(&k));
    ASSERT_STR_EQ(str(res, "tie_broken_by"), "chairman");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(chairman_fallback_then_winner, 30)
{
    council_mockllm *m = mock("model=chair-*:http=502", 0);
    council_def *ok_def = council(
        m, "vote", FOUR_MEMBERS,
        "provider: mock, model: chair-down, fallback: [ { provider: mock, "
        "model: mock-chair } ]",
        "quorum: 4");
    council_def *down_def = council(
        m, "vote", FOUR_MEMBERS,
        "provider: mock, model: chair-down, fallback: [ { provider: mock, "
        "model: chair-down2 } ]",
        "quorum: 4");
    council_engine *eng = NULL;
    keep k1 = {0}, k2 = {0};
    council_run *r1, *r2;
    const council_outcome *o;
    json_t *ev[8], *res;

    ASSERT_OK(council_engine_open(NULL, &eng));
    r1 = start(eng, ok_def, &k1, 0);
    r2 = start(eng, down_def, &k2, 0);
    o = wait_for(r1);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k1);
    ASSERT_EQ_U64(find(&k1, "member_failed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "member"), "chairman");
    ASSERT_STR_CONTAINS(str(json_object_get(ev[0], "error"), "message"),
                        "HTTP 502");
    ASSERT_EQ_U64(find(&k1, "synthesis_completed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "model"), "mock-chair");

    o = wait_for(r2);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k2);
    ASSERT_EQ_U64(find(&k2, "member_failed", ev, 8), 2);
    ASSERT_EQ_U64(find(&k2, "synthesis_completed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "fallback"), "top_member");
    ASSERT_STR_EQ(str(ev[0], "member"), longest(&k2));
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_STR_EQ(str(res, "answer"), str(ev[0], "text"));
    json_decref(res);
    council_run_release(r1);
    council_run_release(r2);
    council_engine_close(eng);
    keep_free(&k1);
    keep_free(&k2);
    council_def_free(ok_def);
    council_def_free(down_def);
    council_mockllm_close(m);
}

/* A member stalls in the vote: the vote stops at 80% of the deadline
 * with the ballots that arrived, and the synthesis still happens. */
TEST_T(deadline_keeps_synthesis_reserve, 30)
{
    council_mockllm *m = mock("model=slow-*:stall=20s", 0);
    council_def *def = council(m, "vote", FOUR_MEMBERS, CHAIR,
                               "quorum: 3, member_timeout: 20s");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[8];
    double t0, secs;

    ASSERT_OK(council_engine_open(NULL, &eng));
    t0 = now_s();
    run = start(eng, def, &k, 1500);
    o = wait_for(run);
    secs = now_s() - t0;
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT(secs >= 1.1 && secs < 1.5 + 0.3);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 8), 1);
    ASSERT_STR_EQ(str(json_object_get(ev[0], "error"), "kind"), "deadline");
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 8), 1);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(cancel_during_vote, 30)
{
    council_mockllm *m = mock(NULL, 60);
    council_def *def = council(m, "vote", FOUR_MEMBERS, CHAIR, "quorum: 4");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *ev[64];
    size_t n, i;

    ASSERT_OK(council_engine_open(NULL, &eng));
    /* Cancel when the answer stage completes: the loop has started the
     * (slowly streaming) votes by the time the cancel arrives. */
    k.cancel_on = "stage_completed";
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    check_run(&k);
    n = find(&k, "stage_started", ev, 64);
    for (i = 0; i < n; i++)
        ASSERT(strcmp(str(ev[i], "stage"), "synthesis") != 0);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "answers")), 4);
    ASSERT_NULL(json_object_get(res, "answer"));
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(quorum_failure, 30)
{
    council_mockllm *m = mock("model=mock-[abc]:http=500", 0);
    council_def *def = council(m, "vote", FOUR_MEMBERS, CHAIR, "quorum: 2");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[8];

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_ERROR);
    check_run(&k);
    ASSERT_STR_CONTAINS(council_outcome_errors_json(o), "\"quorum\"");
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 8), 3);
    ASSERT_EQ_U64(find(&k, "review_completed", ev, 8), 0);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}
