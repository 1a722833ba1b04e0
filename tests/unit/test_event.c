/* SPDX-License-Identifier: MIT */
/* Events and outcomes: construction, accessors, JSON form, classification.
 * TEST_LABELS: threaded */
#include <jansson.h>

#include "core/event.h"
#include "runner.h"

static council_event *
mk(council_event_type t, uint64_t seq, json_t *data)
{
    council__event_init in = {.type = t,
                              .run_id = "r1",
                              .seq = seq,
                              .ts_us = 1795482123456789LL,
                              .data = data};
    return council__event_new(&in);
}

TEST(delta_fields_and_json)
{
    council__event_init in = {.type = COUNCIL_EV_MEMBER_DELTA,
                              .run_id = "0193abc",
                              .seq = 17,
                              .ts_us = 1795482123456789LL,
                              .stage = "answer",
                              .member = "skeptic",
                              .text = "I doubt",
                              .text_len = 7};
    council_event *ev = council__event_new(&in);
    const char *j;

    ASSERT_NOT_NULL(ev);
    ASSERT_EQ_INT(council_event_type_of(ev), COUNCIL_EV_MEMBER_DELTA);
    ASSERT_EQ_U64(council_event_seq(ev), 17);
    ASSERT_STR_EQ(council_event_run_id(ev), "0193abc");
    ASSERT_STR_EQ(council_event_stage(ev), "answer");
    ASSERT_STR_EQ(council_event_member(ev), "skeptic");
    ASSERT_EQ_U64(council_event_text_len(ev), 7);
    j = council_event_json(ev);
    ASSERT_STR_EQ(j, "{\"type\":\"member_delta\",\"run_id\":\"0193abc\","
                     "\"seq\":17,\"ts\":\"2026-11-24T01:02:03.456789Z\","
                     "\"stage\":\"answer\",\"member\":\"skeptic\","
                     "\"delta\":\"I doubt\"}");
    /* Rendered once: the same pointer on every call. */
    ASSERT(council_event_json(ev) == j);
    council_event_unref(ev);
}

TEST(refcount_shared)
{
    council_event *ev = mk(COUNCIL_EV_RUN_STARTED, 1, NULL);

    council_event_ref(ev);
    council__event_ref_n(ev, 3);
    council_event_unref(ev);
    council_event_unref(ev);
    council_event_unref(ev);
    council_event_unref(ev);
    ASSERT_EQ_U64(council_event_seq(ev), 1); /* still alive: one left */
    council_event_unref(ev);
}

TEST(invalid_utf8_text_renders)
{
    council__event_init in = {.type = COUNCIL_EV_MEMBER_DELTA,
                              .run_id = "r",
                              .text = "\xff\xfe",
                              .text_len = 2};
    council_event *ev = council__event_new(&in);

    ASSERT_STR_CONTAINS(council_event_json(ev), "\"delta\":\"\xef\xbf\xbd\"");
    council_event_unref(ev);
}

/* Found by fuzz_event_json: a member or stage that is not UTF-8 made the
 * rendering NULL, and extra data could replace the common fields. */
TEST(bad_member_and_colliding_data_render)
{
    council__event_init in = {.type = COUNCIL_EV_MEMBER_STARTED,
                              .run_id = "r",
                              .seq = 4,
                              .stage = "rev\xc0iew",
                              .member = "a\xff"
                                        "b"};
    council_event *ev;
    json_t *j;

    in.data = json_pack("{s:s,s:i,s:s,s:i}", "type", "forged", "seq", 99,
                        "member", "forged", "extra", 1);
    ev = council__event_new(&in);
    ASSERT(ev != NULL);
    ASSERT(council_event_json(ev) != NULL);
    j = json_loads(council_event_json(ev), 0, NULL);
    ASSERT(j != NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")),
                  "member_started");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "seq")), 4);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "member")),
                  "\xef\xbf\xbd");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "stage")),
                  "\xef\xbf\xbd");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "extra")), 1);
    json_decref(j);
    council_event_unref(ev);
}

TEST(type_names_round_trip)
{
    int t;

    for (t = COUNCIL_EV_RUN_STARTED; t <= COUNCIL_EV_RUN_FAILED; t++)
        ASSERT_EQ_INT(council__event_type_from_name(
                          council_event_type_name((council_event_type)t)),
                      t);
    ASSERT_STR_EQ(council_event_type_name((council_event_type)99), "unknown");
    ASSERT_EQ_INT(council__event_type_from_name("nope"), 0);
}

TEST(outcome_classification)
{
    council_event *ok = mk(COUNCIL_EV_RUN_COMPLETED, 5,
                           json_pack("{s:{s:s}}", "result", "answer", "42"));
    council_event *canc =
        mk(COUNCIL_EV_RUN_FAILED, 6,
           json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "errors", "kind", "timeout",
                     "message", "slow", "kind", "cancelled", "message", "bye"));
    council_event *err =
        mk(COUNCIL_EV_RUN_FAILED, 7,
           json_pack("{s:[{s:s,s:s}]}", "errors", "kind", "quorum", "message",
                     "2 of 4 members answered; quorum is 3"));
    council_event *bad = mk(COUNCIL_EV_RUN_FAILED, 8, NULL);
    council_outcome *o;

    o = council__outcome_from_terminal(ok);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_STR_EQ(council_outcome_result_json(o), "{\"answer\":\"42\"}");
    ASSERT_STR_EQ(council_outcome_json(o),
                  "{\"outcome\":\"ok\",\"result\":{\"answer\":\"42\"}}");
    council__outcome_free(o);

    o = council__outcome_from_terminal(canc);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_CANCELLED);
    council__outcome_free(o);

    o = council__outcome_from_terminal(err);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_EQ(council_outcome_reason(o),
                  "2 of 4 members answered; quorum is 3");
    council__outcome_free(o);

    o = council__outcome_from_terminal(bad);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_ERROR);
    council__outcome_free(o);

    o = council__outcome_new(COUNCIL_OUTCOME_CRASHED, NULL, NULL,
                             "signal SIGKILL");
    ASSERT_STR_EQ(council_outcome_json(o),
                  "{\"outcome\":\"crashed\",\"reason\":\"signal SIGKILL\"}");
    council__outcome_free(o);
    council_event_unref(ok);
    council_event_unref(canc);
    council_event_unref(err);
    council_event_unref(bad);
}
