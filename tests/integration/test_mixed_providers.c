/* SPDX-License-Identifier: MIT */
/*
 * A council whose members speak different wire formats: two members on an
 * `openai` provider, two on an `anthropic` provider and the chairman on the
 * anthropic one, all served by the in-process mock LLM (which speaks both
 * APIs) over loopback, run through council_run_start.  The run completes,
 * every stage happens, and usage is known for the anthropic members too.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <string.h>

#include "council.h"
#include "runner.h"

static council_mockllm *
mock(const char *faults)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_diag d;

    o.seed = 5;
    o.faults = faults;
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    return m;
}

static council_def *
mixed(council_mockllm *m, const char *strategy)
{
    char text[1500];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: mixed\n"
             "strategy: %s\n"
             "providers:\n"
             "  oa: { kind: openai, base_url: %s }\n"
             "  an: { kind: anthropic, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: oa, model: mock-a, system: Be "
             "brief. }\n"
             "  - { name: bob, provider: an, model: mock-b, system: Be "
             "careful. }\n"
             "  - { name: cy,  provider: oa, model: mock-c }\n"
             "  - { name: dee, provider: an, model: mock-d }\n"
             "chairman: { provider: an, model: mock-chair, system: You "
             "chair. }\n"
             "limits: { quorum: 4, member_timeout: 20s }\n",
             strategy, council_mockllm_base_url(m),
             council_mockllm_base_url(m));
    if (council_def_load_string(text, strlen(text), "mixed.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

/* The answers[] entry of a member, borrowed. */
static json_t *
answer_of(json_t *res, const char *member)
{
    size_t i;
    json_t *a;

    json_array_foreach (json_object_get(res, "answers"), i, a) {
        if (strcmp(json_string_value(json_object_get(a, "member")), member) ==
            0)
            return a;
    }
    FAIL("no answer from %s", member);
    return NULL;
}

static void
check_usage(json_t *usage)
{
    ASSERT(json_is_object(usage));
    ASSERT(json_integer_value(json_object_get(usage, "prompt_tokens")) > 0);
    ASSERT(json_integer_value(json_object_get(usage, "completion_tokens")) > 0);
}

static void
run_mixed(const char *strategy)
{
    council_mockllm *m = mock(NULL);
    council_def *def = mixed(m, strategy);
    council_engine *eng = NULL;
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    const council_outcome *out = NULL;
    council_diag d;
    json_t *res;
    const char *members[] = {"ann", "bob", "cy", "dee"};
    size_t i;

    ASSERT_OK(council_engine_open(NULL, &eng));
    o.seed = 11;
    if (council_run_start(eng, def, "Why is the sky blue?", &o, &run, &d) !=
        COUNCIL_OK)
        FAIL("start: %s", d.msg);
    ASSERT_OK(council_run_wait(run, 30000, &out));
    ASSERT_EQ_INT(council_outcome_kind_of(out), COUNCIL_OUTCOME_OK);
    res = json_loads(council_outcome_result_json(out), 0, NULL);
    ASSERT_NOT_NULL(res);
    ASSERT(json_string_length(json_object_get(res, "answer")) > 0);
    ASSERT_EQ_U64(json_array_size(json_object_get(res, "answers")), 4);
    for (i = 0; i < 4; i++) {
        json_t *a = answer_of(res, members[i]);

        ASSERT(json_string_length(json_object_get(a, "text")) > 0);
        check_usage(json_object_get(a, "usage"));
    }
    /* Every call reported usage, the anthropic ones included. */
    check_usage(json_object_get(res, "usage"));
    ASSERT(json_is_true(
        json_object_get(json_object_get(res, "usage"), "complete")));
    /* 4 answers, then reviews or debate rounds, then the chairman. */
    ASSERT(council_mockllm_requests(m) >= 9);
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}

TEST_T(mixed_council_rank, 30)
{
    run_mixed("rank");
}

TEST_T(mixed_council_vote, 30)
{
    run_mixed("vote");
}

/* An anthropic member that fails is named with Anthropic's error type. */
TEST_T(anthropic_member_failure_is_named, 30)
{
    council_mockllm *m = mock("model=mock-d:http=529");
    council_def *def = NULL;
    council_engine *eng = NULL;
    council_run *run = NULL;
    const council_outcome *out = NULL;
    council_diag d;
    const char *text;
    char buf[1200];
    json_t *res, *failed, *err;

    snprintf(buf, sizeof(buf),
             "name: mixed\n"
             "providers:\n"
             "  oa: { kind: openai, base_url: %s }\n"
             "  an: { kind: anthropic, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: oa, model: mock-a }\n"
             "  - { name: bob, provider: an, model: mock-b }\n"
             "  - { name: dee, provider: an, model: mock-d }\n"
             "chairman: { provider: an, model: mock-chair }\n"
             "limits: { quorum: 2, retries: 0, member_timeout: 20s }\n",
             council_mockllm_base_url(m), council_mockllm_base_url(m));
    text = buf;
    if (council_def_load_string(text, strlen(text), "m.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    ASSERT_OK(council_engine_open(NULL, &eng));
    if (council_run_start(eng, def, "q?", NULL, &run, &d) != COUNCIL_OK)
        FAIL("start: %s", d.msg);
    ASSERT_OK(council_run_wait(run, 30000, &out));
    ASSERT_EQ_INT(council_outcome_kind_of(out), COUNCIL_OUTCOME_OK);
    res = json_loads(council_outcome_result_json(out), 0, NULL);
    ASSERT_NOT_NULL(res);
    failed = json_object_get(res, "failed");
    ASSERT_EQ_U64(json_array_size(failed), 1);
    err = json_object_get(json_array_get(failed, 0), "error");
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "kind")), "http");
    ASSERT_EQ_INT(json_integer_value(json_object_get(err, "http_status")), 529);
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "type")),
                  "overloaded_error");
    json_decref(res);
    council_run_release(run);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(m);
}
