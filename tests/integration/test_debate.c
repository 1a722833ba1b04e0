/* SPDX-License-Identifier: MIT */
/*
 * The debate strategy through the public API against the in-process mock
 * LLM: rounds and their numbers in events, early stop on convergence,
 * rounds: 1, the chairman's fallback list and the top-member fallback,
 * the synthesis reserve under a deadline, cancel mid-round, and quorum.
 * The mock revises by repeating the previous answer plus "Revision R.", so
 * similarity between rounds is high but below 1.
 * TEST_LABELS: threaded
 */
#include "strategy_fixture.h"

/* Runs a whole debate with threshold 1 (never converges): answer round 1,
 * debate rounds 2 and 3, similarity recorded per member per round. */
TEST_T(rounds_and_round_numbers, 30)
{
    council_mockllm *m = mock(NULL, 0);
    council_def *def = council(m, "debate", FOUR_MEMBERS, CHAIR,
                               "quorum: 4, rounds: 3, convergence: 1");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[64], *res, *e;
    size_t n, i;
    int per_round[4] = {0};

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "run_started", ev, 1), 1);
    ASSERT_STR_EQ(str(ev[0], "strategy"), "debate");
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[0], "rounds")), 3);
    n = find(&k, "stage_started", ev, 64);
    ASSERT_EQ_U64(n, 4);
    ASSERT_STR_EQ(str(ev[0], "stage"), "answer");
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[0], "round")), 1);
    ASSERT_STR_EQ(str(ev[1], "stage"), "debate");
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[1], "round")), 2);
    ASSERT_STR_EQ(str(ev[2], "stage"), "debate");
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[2], "round")), 3);
    ASSERT_STR_EQ(str(ev[3], "stage"), "synthesis");
    n = find(&k, "member_completed", ev, 64);
    ASSERT_EQ_U64(n, 12);
    for (i = 0; i < n; i++) {
        json_int_t r = json_integer_value(json_object_get(ev[i], "round"));
        ASSERT(r >= 1 && r <= 3);
        ASSERT_STR_EQ(str(ev[i], "stage"), r == 1 ? "answer" : "debate");
        per_round[r]++;
    }
    ASSERT_EQ_INT(per_round[1], 4);
    ASSERT_EQ_INT(per_round[3], 4);
    /* Deltas carry their round too. */
    n = find(&k, "member_delta", ev, 64);
    ASSERT(n > 0);
    ASSERT(json_integer_value(json_object_get(ev[0], "round")) >= 1);
    n = find(&k, "stage_completed", ev, 64);
    ASSERT_EQ_U64(n, 4);
    for (i = 1; i < 3; i++) {
        json_t *sim = json_object_get(ev[i], "similarity");
        const char *key;
        ASSERT_EQ_U64(json_object_size(sim), 4);
        json_object_foreach (sim, key, e) {
            ASSERT(json_real_value(e) > 0.5);
            ASSERT(json_real_value(e) < 1.0);
        }
        ASSERT(json_is_false(json_object_get(ev[i], "converged")));
    }
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(res, "rounds_run")), 3);
    ASSERT(json_is_false(json_object_get(res, "converged")));
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "rounds")), 3);
    ASSERT(json_string_length(json_object_get(res, "answer")) > 0);
    ASSERT_STR_EQ(str(json_object_get(res, "synthesis"), "by"), "chairman");
    /* The final answers are the round-3 revisions. */
    ASSERT_STR_CONTAINS(
        str(json_array_get(json_object_get(res, "answers"), 0), "text"),
        "Revision 3.");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(early_stop_on_convergence, 30)
{
    council_mockllm *m = mock(NULL, 0);
    council_def *def = council(m, "debate", FOUR_MEMBERS, CHAIR,
                               "quorum: 4, rounds: 6, convergence: 0.75");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[16], *res;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    /* answer (1), debate (2), synthesis: stopped after round 2 of 6. */
    ASSERT_EQ_U64(find(&k, "stage_started", ev, 16), 3);
    ASSERT_EQ_U64(find(&k, "stage_completed", ev, 16), 3);
    ASSERT(json_is_true(json_object_get(ev[1], "converged")));
    ASSERT(json_real_value(json_object_get(ev[1], "threshold")) == 0.75);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(res, "rounds_run")), 2);
    ASSERT(json_is_true(json_object_get(res, "converged")));
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(one_round_is_answers_then_synthesis, 30)
{
    council_mockllm *m = mock(NULL, 0);
    council_def *def =
        council(m, "debate", FOUR_MEMBERS, CHAIR, "quorum: 4, rounds: 1");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    json_t *ev[16];

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_for(run)), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "stage_started", ev, 16), 2);
    ASSERT_STR_EQ(str(ev[0], "stage"), "answer");
    ASSERT_STR_EQ(str(ev[1], "stage"), "synthesis");
    ASSERT_EQ_U64(find(&k, "member_started", ev, 16), 4);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* The chairman's model fails (HTTP 502): member_failed names it, the
 * first fallback model writes the synthesis. */
TEST_T(chairman_fallback_model, 30)
{
    council_mockllm *m = mock("model=chair-down*:http=502", 0);
    council_def *def = council(
        m, "debate", FOUR_MEMBERS,
        "provider: mock, model: chair-down, fallback: [ { provider: mock, "
        "model: chair-down2 }, { provider: mock, model: chair-ok } ]",
        "quorum: 4, rounds: 2");
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
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 8), 2);
    ASSERT_STR_EQ(str(ev[0], "member"), "chairman");
    ASSERT_STR_EQ(str(ev[0], "stage"), "synthesis");
    ASSERT_STR_EQ(str(ev[0], "model"), "chair-down");
    ASSERT_STR_CONTAINS(str(json_object_get(ev[0], "error"), "message"),
                        "HTTP 502");
    ASSERT_STR_EQ(str(ev[1], "model"), "chair-down2");
    ASSERT_EQ_U64(find(&k, "synthesis_started", ev, 8), 3);
    ASSERT_EQ_INT(json_integer_value(json_object_get(ev[2], "fallback")), 2);
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "model"), "chair-ok");
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_STR_EQ(str(json_object_get(res, "synthesis"), "model"), "chair-ok");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Every chairman fails: the member most similar to the others stands in,
 * and the run still completes. */
TEST_T(all_chairmen_fail_top_member, 30)
{
    council_mockllm *m = mock("model=chair-*:http=503", 0);
    council_def *def =
        council(m, "debate", FOUR_MEMBERS,
                "provider: mock, model: chair-a, fallback: [ { provider: mock, "
                "model: chair-b } ]",
                "quorum: 4, rounds: 2, retries: 0");
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
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 8), 2);
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 8), 1);
    ASSERT_STR_EQ(str(ev[0], "fallback"), "top_member");
    ASSERT_NOT_NULL(str(ev[0], "member"));
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_STR_EQ(str(res, "answer"), str(ev[0], "text"));
    ASSERT_STR_CONTAINS(str(res, "answer"), "Revision 2.");
    ASSERT_STR_EQ(str(json_object_get(res, "synthesis"), "fallback"),
                  "top_member");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* A member that stalls: the stages stop at 80% of the deadline and the
 * synthesis still happens, well within the deadline. */
TEST_T(deadline_keeps_synthesis_reserve, 30)
{
    council_mockllm *m = mock("model=slow-*:stall=20s", 0);
    council_def *def = council(m, "debate", FOUR_MEMBERS, CHAIR,
                               "quorum: 3, rounds: 3, member_timeout: 20s");
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
    ASSERT_STR_EQ(str(ev[0], "member"), "dee");
    ASSERT_STR_EQ(str(json_object_get(ev[0], "error"), "kind"), "deadline");
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 8), 1);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(cancel_mid_round, 30)
{
    council_mockllm *m = mock(NULL, 60);
    council_def *def = council(m, "debate", FOUR_MEMBERS, CHAIR,
                               "quorum: 4, rounds: 3, convergence: 1");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *ev[64];

    k.cancel_on = "member_delta";
    k.cancel_round = 2;
    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    check_run(&k);
    ASSERT_EQ_INT(k.fired, 1);
    ASSERT_EQ_U64(find(&k, "member_completed", ev, 64), 4);
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_NOT_NULL(res);
    /* The partial result keeps the round-1 answers. */
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
    council_mockllm *m = mock("model=mock-[ab]:http=500", 0);
    council_def *def =
        council(m, "debate", FOUR_MEMBERS, CHAIR, "quorum: 3, retries: 0");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_ERROR);
    check_run(&k);
    ASSERT_STR_CONTAINS(council_outcome_errors_json(o), "\"quorum\"");
    ASSERT_STR_CONTAINS(council_outcome_reason(o), "2 of 4 members answered");
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}
