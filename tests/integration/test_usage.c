/* SPDX-License-Identifier: MIT */
/*
 * Usage summed per member, per chairman model, per stage (and round) and
 * per run (DESIGN 4), for rank, vote and debate, against the in-process
 * mock LLM over both APIs.  The mock's fault rules make some models report
 * no usage (no_usage) and some a cost (cost=USD).  Every check recomputes
 * the sums from the events alone (each call's member_started or
 * synthesis_started, and the usage of the event that ended it) and
 * compares them exactly with the stage_completed events and the result:
 * unknown usage must stay unknown, never count as 0, and a cost appears
 * only when every call in the sum reported one.
 * TEST_LABELS: threaded
 */
#include "strategy_fixture.h"

/* ---- the sums recomputed from the events ----------------------------------
 */

/* sums: {key: {"calls","known","reported","cost_calls","pt","ct","cost"}}
 * (known: exact usage; reported: any, a partial one too); keys
 * "m:NAME" (member), "c:MODEL" (chairman), "s:STAGE", "r:STAGE:ROUND" and
 * "total". */
static json_t *
zero_sum(void)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:f}", "calls", 0, "known", 0,
                     "reported", 0, "cost_calls", 0, "pt", (json_int_t)0, "ct",
                     (json_int_t)0, "cost", 0.0);
}

static json_t *
slot(json_t *sums, const char *key)
{
    json_t *s = json_object_get(sums, key);

    if (s == NULL) {
        s = zero_sum();
        json_object_set_new(sums, key, s);
    }
    return s;
}

static void
add_int(json_t *s, const char *k, json_int_t d)
{
    json_object_set_new(
        s, k, json_integer(json_integer_value(json_object_get(s, k)) + d));
}

/* A call started (d = 1), or did not after all (d = -1). */
static void
count_call(json_t *sums, const char *who, const char *stage, int round, int d)
{
    char k[200];
    const char *keys[4];
    int i;

    snprintf(k, sizeof(k), "r:%s:%d", stage, round);
    keys[0] = who;
    keys[1] = "total";
    keys[2] = NULL;
    keys[3] = k;
    for (i = 0; i < 4; i++) {
        char sk[100];
        if (i == 2) {
            snprintf(sk, sizeof(sk), "s:%s", stage);
            add_int(slot(sums, sk), "calls", d);
        } else {
            add_int(slot(sums, keys[i]), "calls", d);
        }
    }
}

/* A call ended with this usage (an object, or null: unknown; with
 * "partial": true, a lower bound that leaves the call unknown). */
static void
count_usage(json_t *sums, const char *who, const char *stage, int round,
            json_t *u)
{
    char rk[200], sk[100];
    const char *keys[4] = {who, "total", sk, rk};
    int i;

    snprintf(rk, sizeof(rk), "r:%s:%d", stage, round);
    snprintf(sk, sizeof(sk), "s:%s", stage);
    if (!json_is_object(u))
        return;
    for (i = 0; i < 4; i++) {
        json_t *s = slot(sums, keys[i]);
        json_t *cost = json_object_get(u, "cost");

        if (!json_is_true(json_object_get(u, "partial")))
            add_int(s, "known", 1);
        add_int(s, "reported", 1);
        add_int(s, "pt",
                json_integer_value(json_object_get(u, "prompt_tokens")));
        add_int(s, "ct",
                json_integer_value(json_object_get(u, "completion_tokens")));
        if (json_is_number(cost)) {
            add_int(s, "cost_calls", 1);
            json_object_set_new(
                s, "cost",
                json_real(json_real_value(json_object_get(s, "cost")) +
                          json_number_value(cost)));
        }
    }
}

static int
round_of(json_t *e)
{
    return (int)json_integer_value(json_object_get(e, "round"));
}

/* Walk the events: every call and the usage it reported. */
static json_t *
sums_from_events(keep *k)
{
    json_t *sums = json_object(), *e;
    size_t i;
    char who[150];

    json_array_foreach (k->events, i, e) {
        const char *type = str(e, "type");
        const char *member = str(e, "member");
        const char *stage = str(e, "stage");

        if (strcmp(type, "stage_started") == 0) {
            snprintf(who, sizeof(who), "s:%s", stage);
            slot(sums, who);
            snprintf(who, sizeof(who), "r:%s:%d", stage, round_of(e));
            slot(sums, who);
            continue;
        }
        if (member != NULL && strcmp(member, "chairman") != 0)
            snprintf(who, sizeof(who), "m:%s", member);
        else
            snprintf(who, sizeof(who), "c:%s", str(e, "model"));
        if (strcmp(type, "member_started") == 0 ||
            strcmp(type, "synthesis_started") == 0) {
            count_call(sums, who, stage, round_of(e), 1);
        } else if (strcmp(type, "member_completed") == 0 ||
                   strcmp(type, "review_completed") == 0 ||
                   strcmp(type, "synthesis_completed") == 0 ||
                   strcmp(type, "member_failed") == 0) {
            json_t *u = json_object_get(e, "usage");
            if (u != NULL) {
                count_usage(sums, who, stage, round_of(e), u);
            } else if (strcmp(type, "member_failed") == 0) {
                /* "could not start the call": no call was made. */
                count_call(sums, who, stage, round_of(e), -1);
            }
        }
    }
    return sums;
}

/* got (a usage sum from the run) equals the recomputed one. */
static void
check_sum(const char *what, json_t *got, json_t *want)
{
    json_int_t calls, known, reported, cost_calls;
    json_t *cost, *partial;

    if (want == NULL)
        want = zero_sum();
    else
        json_incref(want);
    calls = json_integer_value(json_object_get(want, "calls"));
    known = json_integer_value(json_object_get(want, "known"));
    reported = json_integer_value(json_object_get(want, "reported"));
    cost_calls = json_integer_value(json_object_get(want, "cost_calls"));
    if (!json_is_object(got))
        FAIL("%s: no usage sum", what);
    if (json_integer_value(json_object_get(got, "calls")) != calls ||
        json_integer_value(json_object_get(got, "unknown_calls")) !=
            calls - known ||
        json_is_true(json_object_get(got, "complete")) != (calls == known))
        FAIL("%s: calls %lld, unknown %lld, complete %d; got %s", what,
             (long long)calls, (long long)(calls - known), calls == known,
             json_dumps(got, JSON_COMPACT));
    if (reported > 0 || calls == 0) {
        json_int_t pt = json_integer_value(json_object_get(want, "pt"));
        json_int_t ct = json_integer_value(json_object_get(want, "ct"));
        if (json_integer_value(json_object_get(got, "prompt_tokens")) != pt ||
            json_integer_value(json_object_get(got, "completion_tokens")) !=
                ct ||
            json_integer_value(json_object_get(got, "total_tokens")) !=
                pt + ct ||
            !json_is_integer(json_object_get(got, "total_tokens")))
            FAIL("%s: tokens %lld + %lld; got %s", what, (long long)pt,
                 (long long)ct, json_dumps(got, JSON_COMPACT));
    } else {
        /* Nothing reported: no counts at all, not zeros. */
        ASSERT_NULL(json_object_get(got, "prompt_tokens"));
        ASSERT_NULL(json_object_get(got, "completion_tokens"));
        ASSERT_NULL(json_object_get(got, "total_tokens"));
    }
    cost = json_object_get(got, "cost");
    partial = json_object_get(got, "cost_partial");
    if (calls > 0 && cost_calls == calls) {
        ASSERT_NULL(partial);
        if (!json_is_number(cost) ||
            json_number_value(cost) !=
                json_real_value(json_object_get(want, "cost")))
            FAIL("%s: cost %.17g; got %s", what,
                 json_real_value(json_object_get(want, "cost")),
                 json_dumps(got, JSON_COMPACT));
    } else if (cost_calls > 0) {
        ASSERT_NULL(cost);
        if (!json_is_number(partial) ||
            json_number_value(partial) !=
                json_real_value(json_object_get(want, "cost")))
            FAIL("%s: cost_partial %.17g; got %s", what,
                 json_real_value(json_object_get(want, "cost")),
                 json_dumps(got, JSON_COMPACT));
    } else {
        ASSERT_NULL(cost);
        ASSERT_NULL(partial);
    }
    json_decref(want);
}

/* Every stage_completed and the result (the run's outcome) against the
 * sums recomputed from the events.  Returns the result (decref it). */
static json_t *
check_sums(keep *k, const council_outcome *o)
{
    json_t *sums = sums_from_events(k), *res, *e, *by, *v;
    const char *key;
    char name[200];
    size_t i, n_chair = 0, n_stage = 0;

    json_array_foreach (k->events, i, e) {
        if (strcmp(str(e, "type"), "stage_completed") != 0)
            continue;
        snprintf(name, sizeof(name), "r:%s:%d", str(e, "stage"), round_of(e));
        check_sum(name, json_object_get(e, "usage"),
                  json_object_get(sums, name));
    }
    res = json_loads(council_outcome_result_json(o), 0, NULL);
    ASSERT_NOT_NULL(res);
    /* Every member has an entry; the members' and chairman's calls are
     * all the calls. */
    by = json_object_get(res, "usage_by_member");
    ASSERT_EQ_U64(json_object_size(by),
                  json_array_size(json_object_get(json_array_get(k->events, 0),
                                                  "members")));
    json_object_foreach (by, key, v) {
        snprintf(name, sizeof(name), "m:%s", key);
        check_sum(name, v, json_object_get(sums, name));
    }
    by = json_object_get(res, "usage_by_chairman");
    json_object_foreach (by, key, v) {
        snprintf(name, sizeof(name), "c:%s", key);
        ASSERT_NOT_NULL(json_object_get(sums, name));
        check_sum(name, v, json_object_get(sums, name));
        n_chair++;
    }
    by = json_object_get(res, "usage_by_stage");
    json_object_foreach (by, key, v) {
        snprintf(name, sizeof(name), "s:%s", key);
        ASSERT_NOT_NULL(json_object_get(sums, name));
        check_sum(name, v, json_object_get(sums, name));
        n_stage++;
    }
    /* No chairman model or stage of the events is missing. */
    json_object_foreach (sums, key, v) {
        if (strncmp(key, "c:", 2) == 0)
            n_chair--;
        if (strncmp(key, "s:", 2) == 0)
            n_stage--;
    }
    ASSERT_EQ_U64(n_chair, 0);
    ASSERT_EQ_U64(n_stage, 0);
    /* The run's total: null when no call reported usage (as before). */
    v = json_object_get(sums, "total");
    if (json_integer_value(json_object_get(v, "reported")) == 0)
        ASSERT(json_is_null(json_object_get(res, "usage")));
    else
        check_sum("total", json_object_get(res, "usage"), v);
    json_decref(sums);
    return res;
}

/* ---- councils over both APIs --------------------------------------------- */

/* The mock serves both APIs at one URL: provider "oa" speaks OpenAI's,
 * "an" Anthropic's. */
static council_def *
council2(council_mockllm *m, const char *strategy, const char *members,
         const char *chair, const char *limits)
{
    char text[3000];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: t\n"
             "strategy: %s\n"
             "providers:\n"
             "  oa: { kind: openai, base_url: %s }\n"
             "  an: { kind: anthropic, base_url: %s }\n"
             "members:\n%s"
             "chairman: { %s }\n"
             "limits: { %s }\n",
             strategy, council_mockllm_base_url(m), council_mockllm_base_url(m),
             members, chair, limits);
    if (council_def_load_string(text, strlen(text), "t.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

/* cost-* report a cost, quiet-* no usage, broken-* fail after 2 deltas
 * (over Anthropic's API, after message_start has reported the input
 * tokens), down-* answer 503. */
#define FAULTS                                                                 \
    "model=cost-*:cost=0.25;model=quiet-*:no_usage;"                           \
    "model=broken-*:error_in_stream=2;model=down-*:http=503;"                  \
    "model=chair-cost:cost=0.125"

#define MIXED_MEMBERS                                                          \
    "  - { name: ann, provider: oa, model: mock-a }\n"                         \
    "  - { name: bob, provider: oa, model: cost-b }\n"                         \
    "  - { name: cy,  provider: oa, model: quiet-c }\n"                        \
    "  - { name: dee, provider: an, model: mock-d }\n"

/* The chairman fails with usage, its first fallback without, the second
 * answers with a cost. */
#define MIXED_CHAIR                                                            \
    "provider: an, model: broken-chair, fallback: ["                           \
    "{ provider: oa, model: down-chair }, "                                    \
    "{ provider: oa, model: chair-cost } ]"

static void
end_run(council_run *run, council_engine *eng, keep *k, council_def *def,
        council_mockllm *m)
{
    council_run_release(run);
    council_engine_close(eng);
    keep_free(k);
    council_def_free(def);
    council_mockllm_close(m);
}

static json_t *
by(json_t *res, const char *table, const char *key)
{
    return json_object_get(json_object_get(res, table), key);
}

static json_int_t
num(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

TEST_T(rank_sums, 30)
{
    council_mockllm *m = mock(FAULTS, 0);
    council_def *def = council2(m, "rank", MIXED_MEMBERS, MIXED_CHAIR,
                                "quorum: 4, retries: 0");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *ev[8], *u;
    size_t n, i;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    res = check_sums(&k, o);

    /* What the faults make of it, spelled out. */
    u = by(res, "usage_by_member", "cy"); /* answer + review, no usage */
    ASSERT_EQ_INT(num(u, "calls"), 2);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 2);
    ASSERT(json_is_false(json_object_get(u, "complete")));
    ASSERT_NULL(json_object_get(u, "total_tokens"));
    u = by(res, "usage_by_member", "bob"); /* 2 calls at 0.25 */
    ASSERT(json_is_true(json_object_get(u, "complete")));
    ASSERT(json_number_value(json_object_get(u, "cost")) == 0.5);
    u = by(res, "usage_by_member", "ann");
    ASSERT(json_is_true(json_object_get(u, "complete")));
    ASSERT(num(u, "total_tokens") > 0);
    ASSERT_NULL(json_object_get(u, "cost"));
    u = by(res, "usage_by_stage", "answer");
    ASSERT_EQ_INT(num(u, "calls"), 4);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 1);
    ASSERT(json_number_value(json_object_get(u, "cost_partial")) == 0.25);
    ASSERT_NULL(json_object_get(u, "cost"));
    /* The chairman: three models, the failed Anthropic attempt with the
     * input tokens it reported (a lower bound: its output is unknown), the
     * 503 unknown, the last with a cost. */
    ASSERT_EQ_U64(json_object_size(json_object_get(res, "usage_by_chairman")),
                  3);
    u = by(res, "usage_by_chairman", "broken-chair");
    ASSERT(json_is_false(json_object_get(u, "complete")));
    ASSERT_EQ_INT(num(u, "unknown_calls"), 1);
    ASSERT(num(u, "prompt_tokens") > 0);
    u = by(res, "usage_by_chairman", "down-chair");
    ASSERT_EQ_INT(num(u, "unknown_calls"), 1);
    u = by(res, "usage_by_chairman", "chair-cost");
    ASSERT(json_number_value(json_object_get(u, "cost")) == 0.125);
    n = find(&k, "member_failed", ev, 8);
    ASSERT_EQ_U64(n, 2);
    ASSERT(json_is_true(
        json_object_get(json_object_get(ev[0], "usage"), "partial")));
    ASSERT(json_is_null(json_object_get(ev[1], "usage")));
    u = by(res, "usage_by_stage", "synthesis");
    ASSERT_EQ_INT(num(u, "calls"), 3);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 2);
    /* The run: 4 answers + 4 reviews + 3 chairman attempts. */
    u = json_object_get(res, "usage");
    ASSERT_EQ_INT(num(u, "calls"), 11);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 4);
    ASSERT(json_is_false(json_object_get(u, "complete")));
    ASSERT(json_number_value(json_object_get(u, "cost_partial")) == 0.625);
    /* answers[].usage keeps its meaning: the answer call's usage. */
    json_array_foreach (json_object_get(res, "answers"), i, u) {
        if (strcmp(str(u, "member"), "cy") == 0)
            ASSERT(json_is_null(json_object_get(u, "usage")));
        else
            ASSERT(json_is_object(json_object_get(u, "usage")));
    }
    json_decref(res);
    end_run(run, eng, &k, def, m);
}

TEST_T(vote_sums, 30)
{
    council_mockllm *m = mock(FAULTS, 0);
    council_def *def =
        council2(m, "vote", MIXED_MEMBERS, "provider: an, model: mock-chair",
                 "quorum: 4, retries: 0");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *u;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    res = check_sums(&k, o);
    u = by(res, "usage_by_stage", "vote");
    ASSERT_EQ_INT(num(u, "calls"), 4);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 1);
    ASSERT(json_number_value(json_object_get(u, "cost_partial")) == 0.25);
    u = by(res, "usage_by_chairman", "mock-chair");
    ASSERT(json_is_true(json_object_get(u, "complete")));
    ASSERT_EQ_INT(num(u, "calls"), 1);
    json_decref(res);
    end_run(run, eng, &k, def, m);
}

/* Every call reports a cost: the run's cost is complete. */
TEST_T(vote_all_costs, 30)
{
    council_mockllm *m = mock("always:cost=0.25", 0);
    council_def *def = council2(m, "vote",
                                "  - { name: ann, provider: oa, model: a }\n"
                                "  - { name: bob, provider: oa, model: b }\n"
                                "  - { name: cy,  provider: oa, model: c }\n",
                                "provider: oa, model: chair", "quorum: 3");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *u;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    res = check_sums(&k, o);
    u = json_object_get(res, "usage");
    ASSERT_EQ_INT(num(u, "calls"), 7);
    ASSERT(json_is_true(json_object_get(u, "complete")));
    ASSERT(json_number_value(json_object_get(u, "cost")) == 7 * 0.25);
    ASSERT_NULL(json_object_get(u, "cost_partial"));
    json_decref(res);
    end_run(run, eng, &k, def, m);
}

/* Debate: a sum per round (stage_completed) and per stage (the result). */
TEST_T(debate_sums, 30)
{
    council_mockllm *m = mock(FAULTS, 0);
    council_def *def =
        council2(m, "debate",
                 "  - { name: ann, provider: oa, model: cost-a }\n"
                 "  - { name: bob, provider: an, model: mock-b }\n"
                 "  - { name: cy,  provider: oa, model: quiet-c }\n",
                 "provider: oa, model: mock-chair",
                 "quorum: 3, rounds: 3, convergence: 1");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *u, *ev[8];

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    res = check_sums(&k, o);
    ASSERT_EQ_INT(num(res, "rounds_run"), 3);
    /* Two debate rounds of three calls each, in one stage sum. */
    u = by(res, "usage_by_stage", "debate");
    ASSERT_EQ_INT(num(u, "calls"), 6);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 2);
    ASSERT_EQ_U64(find(&k, "stage_completed", ev, 8), 4);
    ASSERT_EQ_INT(num(json_object_get(ev[1], "usage"), "calls"), 3);
    ASSERT_EQ_INT(num(json_object_get(ev[2], "usage"), "calls"), 3);
    /* A member's sum covers every round, not its first answer only. */
    u = by(res, "usage_by_member", "ann");
    ASSERT_EQ_INT(num(u, "calls"), 3);
    ASSERT(json_number_value(json_object_get(u, "cost")) == 0.75);
    u = by(res, "usage_by_member", "bob");
    ASSERT_EQ_INT(num(u, "calls"), 3);
    ASSERT(num(u, "completion_tokens") >
           num(json_object_get(
                   json_array_get(json_object_get(res, "answers"), 1), "usage"),
               "completion_tokens"));
    json_decref(res);
    end_run(run, eng, &k, def, m);
}

/* A run cancelled during the review: the partial result counts the review
 * still running as unknown. */
TEST_T(failed_run_partial_sums, 30)
{
    council_mockllm *m = mock(FAULTS ";model=slow-*:stall=3s,after=1", 0);
    council_def *def =
        council2(m, "rank",
                 "  - { name: ann, provider: oa, model: mock-a }\n"
                 "  - { name: bob, provider: oa, model: cost-b }\n"
                 "  - { name: cy,  provider: an, model: mock-c }\n"
                 "  - { name: dee, provider: oa, model: slow-d }\n",
                 "provider: oa, model: mock-chair", "quorum: 4");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *res, *u;

    k.cancel_on = "review_completed";
    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 0);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    check_run(&k);
    res = check_sums(&k, o);
    u = by(res, "usage_by_member", "dee"); /* its review was running */
    ASSERT_EQ_INT(num(u, "calls"), 2);
    ASSERT_EQ_INT(num(u, "unknown_calls"), 1);
    ASSERT(json_is_false(json_object_get(u, "complete")));
    ASSERT(num(u, "total_tokens") > 0); /* its answer's, a lower bound */
    u = by(res, "usage_by_stage", "review");
    ASSERT(num(u, "unknown_calls") >= 1);
    ASSERT_NULL(by(res, "usage_by_stage", "synthesis"));
    ASSERT(json_is_false(
        json_object_get(json_object_get(res, "usage"), "complete")));
    json_decref(res);
    end_run(run, eng, &k, def, m);
}
