/* SPDX-License-Identifier: MIT */
/*
 * A council with a slow reasoning member (the mock's think= behaviour:
 * reasoning deltas for a long time before the first answer token), over
 * the OpenAI API (delta.reasoning_content) and the Anthropic API (a
 * thinking block).  Too slow for the deadline: its call is cut when the
 * stages' budget runs out and the chairman synthesizes from the others,
 * within the deadline.  Fast enough: it answers, and its answer and deltas
 * hold no reasoning text, while its usage counts the reasoning tokens.
 * TEST_LABELS: threaded
 */
#include "strategy_fixture.h"

static council_def *
council_on(council_mockllm *m, const char *kind, const char *members,
           const char *limits)
{
    char text[3000];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: t\n"
             "strategy: rank\n"
             "providers:\n"
             "  mock: { kind: %s, base_url: %s }\n"
             "members:\n%s"
             "chairman: { provider: mock, model: mock-chair }\n"
             "limits: { %s }\n",
             kind, council_mockllm_base_url(m), members, limits);
    if (council_def_load_string(text, strlen(text), "t.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

#define MEMBERS                                                                \
    "  - { name: ann, provider: mock, model: mock-a }\n"                       \
    "  - { name: bob, provider: mock, model: mock-b }\n"                       \
    "  - { name: deep, provider: mock, model: thinker }\n"

/* The thinker reasons for 20 s; the deadline is 3 s (2.4 s for the
 * stages, 0.6 s kept for the synthesis). */
static void
too_slow(const char *kind)
{
    council_mockllm *m = mock("model=thinker:think=20s,beat=200ms", 0);
    council_def *def = council_on(m, kind, MEMBERS, "quorum: 2");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[16], *res, *u;
    double t0, took;
    size_t n, i;

    ASSERT_OK(council_engine_open(NULL, &eng));
    t0 = now_s();
    run = start(eng, def, &k, 3000);
    o = wait_for(run);
    took = now_s() - t0;
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    if (took > 3.1)
        FAIL("%s: the run took %.3f s, deadline 3 s", kind, took);
    ASSERT(took >= 2.4); /* it waited for the thinker until the budget */
    /* The thinker was cut at the budget, with its real cause. */
    n = find(&k, "member_failed", ev, 16);
    ASSERT_EQ_U64(n, 1);
    ASSERT_STR_EQ(str(ev[0], "member"), "deep");
    ASSERT_STR_EQ(str(ev[0], "stage"), "answer");
    ASSERT_STR_EQ(str(json_object_get(ev[0], "error"), "kind"), "deadline");
    /* It streamed no answer text: reasoning is not text. */
    n = find(&k, "member_delta", ev, 16);
    for (i = 0; i < n && i < 16; i++)
        ASSERT(strcmp(str(ev[i], "member"), "deep") != 0);
    /* The synthesis from what arrived. */
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "answers")), 2);
    ASSERT_STR_EQ(str(json_object_get(res, "synthesis"), "by"), "chairman");
    ASSERT(json_string_length(json_object_get(res, "answer")) > 0);
    u = json_object_get(json_object_get(res, "usage_by_member"), "deep");
    ASSERT_EQ_INT(json_integer_value(json_object_get(u, "unknown_calls")), 1);
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(too_slow_openai, 30)
{
    too_slow("openai");
}

TEST_T(too_slow_anthropic, 30)
{
    too_slow("anthropic");
}

/* The thinker reasons for 1.5 s (6 beats) per call, within a 20 s
 * deadline. */
static void
finishes(const char *kind)
{
    council_mockllm *m = mock("model=thinker:think=1500ms,beat=250ms", 0);
    council_def *def = council_on(m, kind, MEMBERS, "quorum: 3");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[512], *done = NULL, *u;
    char *streamed = calloc(1, 1);
    size_t n, i, len = 0, deltas = 0;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 20000);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 512), 0);
    n = find(&k, "member_completed", ev, 512);
    ASSERT_EQ_U64(n, 3);
    for (i = 0; i < n; i++)
        if (strcmp(str(ev[i], "member"), "deep") == 0)
            done = ev[i];
    ASSERT_NOT_NULL(done);
    ASSERT(json_integer_value(json_object_get(done, "latency_ms")) >= 1500);
    ASSERT_NULL(strstr(str(done, "text"), "Reasoning"));
    /* The deltas are the answer, nothing of the reasoning. */
    n = find(&k, "member_delta", ev, 512);
    ASSERT(n < 512);
    for (i = 0; i < n; i++) {
        const char *d = str(ev[i], "delta");
        if (strcmp(str(ev[i], "member"), "deep") != 0 ||
            strcmp(str(ev[i], "stage"), "answer") != 0)
            continue;
        streamed = realloc(streamed, len + strlen(d) + 1);
        memcpy(streamed + len, d, strlen(d) + 1);
        len += strlen(d);
        deltas++;
    }
    ASSERT_STR_EQ(streamed, str(done, "text"));
    /* Usage: the answer's tokens and the 6 reasoning ones. */
    u = json_object_get(done, "usage");
    ASSERT_EQ_INT(json_integer_value(json_object_get(u, "completion_tokens")),
                  deltas + 6);
    free(streamed);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(finishes_openai, 30)
{
    finishes("openai");
}

TEST_T(finishes_anthropic, 30)
{
    finishes("anthropic");
}
