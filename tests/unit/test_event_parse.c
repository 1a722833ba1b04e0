/* SPDX-License-Identifier: MIT */
/*
 * council_event_parse, the inverse of council_event_json: the round trip
 * of every event type (the parsed event's accessors, its kept JSON text and
 * a fresh rendering all equal the original's), text that is not UTF-8 or
 * holds NUL bytes, times at the ends of the int64 range, keys in another
 * order, common fields of the wrong form, and malformed lines.
 */
#include <jansson.h>
#include <limits.h>

#include "core/alloc.h"
#include "core/event.h"
#include "runner.h"

static council_event *
mk(council_event_type type, const char *stage, const char *member,
   const char *text, size_t text_len, int round, const char *data_json)
{
    json_t *data = NULL;
    council__event_init in = {.type = type,
                              .run_id = "0193abcd-0000-7000-8000-000000000001",
                              .seq = 17,
                              .ts_us = 1795482123456789LL,
                              .stage = stage,
                              .member = member,
                              .text = text,
                              .text_len = text_len,
                              .round = round};
    council_event *ev;

    if (data_json != NULL) {
        json_error_t je;

        data = json_loads(data_json, 0, &je);
        if (data == NULL)
            FAIL("test data is not JSON: %s: %s", data_json, je.text);
    }
    in.data = data;
    ev = council__event_new(&in);
    ASSERT_NOT_NULL(ev);
    return ev;
}

static int
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Parse ev's JSON; the result must say and render exactly what ev does. */
static void
round_trip(council_event *ev)
{
    const char *js = council_event_json(ev);
    council_event *back = NULL;
    council_diag diag;
    char *fresh;

    ASSERT_NOT_NULL(js);
    if (council_event_parse(js, strlen(js), &back, &diag) != COUNCIL_OK)
        FAIL("parse of %s: %s", js, diag.msg);
    ASSERT_EQ_INT(council_event_type_of(back), council_event_type_of(ev));
    ASSERT_STR_EQ(council_event_run_id(back), council_event_run_id(ev));
    ASSERT_EQ_U64(council_event_seq(back), council_event_seq(ev));
    ASSERT_EQ_INT(council_event_time_us(back), council_event_time_us(ev));
    ASSERT(same_str(council_event_stage(back), council_event_stage(ev)));
    ASSERT(same_str(council_event_member(back), council_event_member(ev)));
    ASSERT_EQ_INT(council_event_round(back), council_event_round(ev));
    ASSERT_EQ_U64(council_event_text_len(back), council_event_text_len(ev));
    if (council_event_text(ev) != NULL)
        ASSERT(memcmp(council_event_text(back), council_event_text(ev),
                      council_event_text_len(ev)) == 0);
    /* The kept text, and a rendering from the parsed fields. */
    ASSERT_STR_EQ(council_event_json(back), js);
    fresh = council__event_render(back);
    ASSERT_NOT_NULL(fresh);
    ASSERT_STR_EQ(fresh, js);
    council__free(fresh);
    council_event_unref(back);
}

TEST(every_type_round_trips)
{
    static const char answer[] =
        "Rayleigh scattering: \"blue\" wins.\n\t\xc3\xa9";
    council_event *evs[] = {
        mk(COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, 0, 0,
           "{\"council\":\"demo\",\"strategy\":\"rank\",\"question\":\"Why?\","
           "\"messages\":[{\"role\":\"user\",\"content\":\"Why?\"}],"
           "\"members\":[{\"name\":\"a\",\"provider\":\"p\",\"model\":\"m\"}],"
           "\"chairman\":{\"provider\":\"p\",\"model\":\"c\"},"
           "\"seed\":5699018434400331747}"),
        mk(COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, 0, 0, NULL),
        mk(COUNCIL_EV_STAGE_STARTED, "debate", NULL, NULL, 0, 2, NULL),
        mk(COUNCIL_EV_STAGE_COMPLETED, "debate", NULL, NULL, 0, 3,
           "{\"answered\":3,\"failed\":0,\"similarity\":{\"a\":0.5,"
           "\"b\":1.0},\"threshold\":0.9,\"converged\":false}"),
        mk(COUNCIL_EV_MEMBER_STARTED, "answer", "alpha", NULL, 0, 0,
           "{\"model\":\"mock-a\"}"),
        mk(COUNCIL_EV_MEMBER_DELTA, "answer", "alpha", "The ", 4, 0, NULL),
        mk(COUNCIL_EV_MEMBER_COMPLETED, "answer", "alpha", answer,
           sizeof(answer) - 1, 0,
           "{\"model\":\"mock-a\",\"usage\":{\"prompt_tokens\":5,"
           "\"completion_tokens\":30,\"total_tokens\":35,\"cost\":0.00012},"
           "\"latency_ms\":75,\"first_byte_ms\":2,\"finish_reason\":\"stop\"}"),
        mk(COUNCIL_EV_MEMBER_COMPLETED, "answer", "beta", "x", 1, 0,
           "{\"model\":\"m\",\"usage\":null}"),
        mk(COUNCIL_EV_MEMBER_FAILED, "answer", "delta", NULL, 0, 0,
           "{\"model\":\"mock-d\",\"error\":{\"kind\":\"http\",\"message\":"
           "\"HTTP 503\",\"http_status\":503,\"retryable\":true,"
           "\"attempts\":3}}"),
        mk(COUNCIL_EV_REVIEW_COMPLETED, "review", "alpha",
           "FINAL RANKING:\n1. Response C", 29, 0,
           "{\"model\":\"mock-a\",\"labels\":{\"A\":\"delta\",\"C\":\"beta\"},"
           "\"seed\":-7285384283182525089,\"ranking\":[\"beta\",\"delta\"],"
           "\"parse\":\"strict\",\"parse_ok\":true}"),
        mk(COUNCIL_EV_RANKINGS_AGGREGATED, "review", NULL, NULL, 0, 0,
           "{\"aggregate\":[{\"member\":\"beta\",\"borda\":6.0,"
           "\"mean_rank\":1.6666666666666667,\"votes\":3}],\"ballots\":4}"),
        mk(COUNCIL_EV_SYNTHESIS_STARTED, "synthesis", NULL, NULL, 0, 0,
           "{\"model\":\"chair\",\"provider\":\"mock\",\"fallback\":1}"),
        mk(COUNCIL_EV_SYNTHESIS_DELTA, "synthesis", NULL, "Cost ", 5, 0, NULL),
        mk(COUNCIL_EV_SYNTHESIS_COMPLETED, "synthesis", NULL, "Final.", 6, 0,
           "{\"model\":\"chair\",\"usage\":{\"total_tokens\":9}}"),
        mk(COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL, 0, 0,
           "{\"result\":{\"answer\":\"Final.\",\"answers\":[],"
           "\"usage\":{\"complete\":false}}}"),
        mk(COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL, 0, 0,
           "{\"errors\":[{\"kind\":\"quorum\",\"message\":\"2 of 4\"}],"
           "\"result\":{}}"),
    };
    size_t i;
    int seen[COUNCIL_EV_RUN_FAILED + 1] = {0};

    for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        round_trip(evs[i]);
        seen[council_event_type_of(evs[i])] = 1;
        council_event_unref(evs[i]);
    }
    for (i = COUNCIL_EV_RUN_STARTED; i <= COUNCIL_EV_RUN_FAILED; i++)
        if (!seen[i])
            FAIL("type %s not tested",
                 council_event_type_name((council_event_type)i));
}

TEST(text_not_utf8_and_with_nul)
{
    council_event *bad =
        mk(COUNCIL_EV_MEMBER_DELTA, "answer", "a", "ok\xff\xfe", 4, 0, NULL);
    council_event *nul =
        mk(COUNCIL_EV_MEMBER_COMPLETED, "answer", "a", "a\0b", 3, 0, NULL);
    council_event *back = NULL;
    const char *js = council_event_json(bad);

    /* Not UTF-8: rendered U+FFFD, which parses back as U+FFFD. */
    ASSERT_OK(council_event_parse(js, strlen(js), &back, NULL));
    ASSERT_EQ_U64(council_event_text_len(back), 3);
    ASSERT(memcmp(council_event_text(back), "\xef\xbf\xbd", 3) == 0);
    ASSERT_STR_EQ(council_event_json(back), js);
    council_event_unref(back);

    round_trip(nul);
    js = council_event_json(nul);
    ASSERT_STR_CONTAINS(js, "a\\u0000b");
    council_event_unref(bad);
    council_event_unref(nul);
}

static void
ts_round_trip(int64_t us)
{
    council__event_init in = {
        .type = COUNCIL_EV_STAGE_STARTED, .run_id = "r", .seq = 1, .ts_us = us};
    council_event *ev = council__event_new(&in);
    int64_t back = 0;
    char ts[64];

    ASSERT_NOT_NULL(ev);
    round_trip(ev);
    council__format_ts(us, ts, sizeof(ts));
    ASSERT_EQ_INT(council__parse_ts(ts, strlen(ts), &back), 0);
    if (back != us)
        FAIL("%s: %lld != %lld", ts, (long long)back, (long long)us);
    council_event_unref(ev);
}

TEST(times_round_trip)
{
    static const int64_t times[] = {0,
                                    1,
                                    -1,
                                    999999,
                                    -999999,
                                    -1000000,
                                    951782400000000LL, /* 2000-02-29 */
                                    1795482123456789LL,
                                    253402300799999999LL, /* 9999-12-31 */
                                    253402300800000000LL, /* year 10000 */
                                    -62167219200000000LL, /* year 0 */
                                    -62167219200000001LL, /* year -1 */
                                    -62135596800000000LL + 86400000000LL * 4,
                                    INT64_MAX,
                                    INT64_MIN};
    size_t i;
    int64_t v = 0;

    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        ts_round_trip(times[i]);
    /* Fewer fraction digits, or none, are read as written. */
    ASSERT_EQ_INT(council__parse_ts("1970-01-01T00:00:01Z", 20, &v), 0);
    ASSERT_EQ_INT(v, 1000000);
    ASSERT_EQ_INT(council__parse_ts("1970-01-01T00:00:00.5Z", 22, &v), 0);
    ASSERT_EQ_INT(v, 500000);
    ASSERT_EQ_INT(council__parse_ts("1970-01-01T00:00:00.123456789Z", 30, &v),
                  0);
    ASSERT_EQ_INT(v, 123456);
}

TEST(malformed_times_are_refused)
{
    static const char *const bad[] = {
        "",
        "2026-11-24",
        "2026-11-24T01:02:03",
        "2026-11-24T01:02:03.456789",
        "2026-11-24T01:02:03.456789+00:00",
        "2026-11-24 01:02:03Z",
        "2026-13-24T01:02:03Z",
        "2026-00-24T01:02:03Z",
        "2026-02-29T01:02:03Z", /* not a leap year */
        "2026-11-31T01:02:03Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T01:60:03Z",
        "2026-11-24T01:02:60Z",
        "2026-11-24T01:02:03.Z",
        "2026-11-24T01:02:03.1234567890Z",
        "2026-11-24T01:02:03ZZ",
        "+2026-11-24T01:02:03Z",
        "99999999-11-24T01:02:03Z",
        "9999999-11-24T01:02:03Z", /* past the int64 microsecond range */
        "2026-1a-24T01:02:03Z",
    };
    size_t i;
    int64_t v;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (council__parse_ts(bad[i], strlen(bad[i]), &v) == 0)
            FAIL("\"%s\" was accepted", bad[i]);
}

/* Lines as a program or a person might write them: keys in any order,
 * whitespace, several lines. */
TEST(other_forms_fill_the_accessors)
{
    static const char sorted[] =
        "{\"delta\":\"hi\",\"member\":\"alpha\",\"round\":2,"
        "\"run_id\":\"r9\",\"seq\":4,\"stage\":\"debate\","
        "\"ts\":\"2026-11-24T01:02:03.000001Z\",\"type\":\"member_delta\"}";
    static const char pretty[] = "\n  {\"type\": \"stage_started\",\n"
                                 "   \"run_id\": \"r\", \"seq\": 2,\n"
                                 "   \"ts\": \"2026-11-24T01:02:03Z\",\n"
                                 "   \"stage\": \"answer\"}\n";
    static const char spaced[] =
        "  {\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":2,"
        "\"ts\":\"2026-11-24T01:02:03Z\", \"stage\":\"answer\"}\n";
    council_event *ev = NULL;

    ASSERT_OK(council_event_parse(sorted, strlen(sorted), &ev, NULL));
    ASSERT_EQ_INT(council_event_type_of(ev), COUNCIL_EV_MEMBER_DELTA);
    ASSERT_STR_EQ(council_event_member(ev), "alpha");
    ASSERT_STR_EQ(council_event_stage(ev), "debate");
    ASSERT_EQ_INT(council_event_round(ev), 2);
    ASSERT_STR_EQ(council_event_text(ev), "hi");
    ASSERT_EQ_U64(council_event_seq(ev), 4);
    ASSERT_EQ_INT(council_event_time_us(ev), 1795482123000001LL);
    /* One line: kept as given. */
    ASSERT_STR_EQ(council_event_json(ev), sorted);
    council_event_unref(ev);

    ASSERT_OK(council_event_parse(pretty, strlen(pretty), &ev, NULL));
    ASSERT_STR_EQ(council_event_stage(ev), "answer");
    /* Several lines: rendered, so the JSON is one line. */
    ASSERT_STR_EQ(council_event_json(ev),
                  "{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":2,"
                  "\"ts\":\"2026-11-24T01:02:03.000000Z\","
                  "\"stage\":\"answer\"}");
    council_event_unref(ev);

    ASSERT_OK(council_event_parse(spaced, strlen(spaced), &ev, NULL));
    ASSERT_STR_EQ(council_event_json(ev),
                  "{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":2,"
                  "\"ts\":\"2026-11-24T01:02:03Z\", \"stage\":\"answer\"}");
    council_event_unref(ev);
}

/* A common field in another form is not the accessor's: it stays among the
 * extra fields, and the line renders back the same. */
TEST(common_fields_of_another_form_stay_extra)
{
    static const char line[] =
        "{\"type\":\"member_delta\",\"run_id\":\"r\",\"seq\":3,"
        "\"ts\":\"2026-11-24T01:02:03.000000Z\",\"stage\":5,"
        "\"round\":0,\"member\":[\"x\"],\"delta\":null,\"text\":\"t\"}";
    council_event *ev = NULL;
    char *fresh;

    ASSERT_OK(council_event_parse(line, strlen(line), &ev, NULL));
    ASSERT_NULL(council_event_stage(ev));
    ASSERT_NULL(council_event_member(ev));
    ASSERT_NULL(council_event_text(ev));
    ASSERT_EQ_INT(council_event_round(ev), 0);
    fresh = council__event_render(ev);
    ASSERT_STR_EQ(fresh, line);
    council__free(fresh);
    council_event_unref(ev);

    /* An event whose extra fields hold a stage while it has none of its
     * own, after another extra field: rendered, parsed, rendered the same. */
    ev = mk(COUNCIL_EV_MEMBER_STARTED, NULL, "m", NULL, 0, 0,
            "{\"model\":\"x\",\"stage\":\"late\"}");
    round_trip(ev);
    council_event_unref(ev);
    ev = mk(COUNCIL_EV_MEMBER_STARTED, NULL, "m", NULL, 0, 0,
            "{\"stage\":\"s\",\"model\":\"x\"}");
    round_trip(ev);
    council_event_unref(ev);
}

TEST(malformed_lines_are_refused)
{
    static const struct {
        const char *line;
        const char *says;
    } bad[] = {
        {"", "not JSON"},
        {"{\"type\":", "not JSON"},
        {"[1,2]", "JSON object"},
        {"{}", "\"type\""},
        {"{\"type\":7}", "\"type\""},
        {"{\"type\":\"member_sneezed\",\"run_id\":\"r\",\"seq\":1,"
         "\"ts\":\"2026-11-24T01:02:03Z\"}",
         "unknown event type"},
        {"{\"type\":\"stage_started\",\"seq\":1,"
         "\"ts\":\"2026-11-24T01:02:03Z\"}",
         "\"run_id\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"a\\u0000b\",\"seq\":1,"
         "\"ts\":\"2026-11-24T01:02:03Z\"}",
         "\"run_id\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":-1,"
         "\"ts\":\"2026-11-24T01:02:03Z\"}",
         "\"seq\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":1.5,"
         "\"ts\":\"2026-11-24T01:02:03Z\"}",
         "\"seq\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":1,"
         "\"ts\":\"yesterday\"}",
         "\"ts\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":1}", "\"ts\""},
        {"{\"type\":\"stage_started\",\"run_id\":\"r\",\"seq\":1,"
         "\"seq\":2,\"ts\":\"2026-11-24T01:02:03Z\"}",
         "not JSON"},
    };
    council_event *ev;
    council_diag diag;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ev = (council_event *)&diag; /* must be cleared */
        ASSERT_EQ_INT(
            council_event_parse(bad[i].line, strlen(bad[i].line), &ev, &diag),
            COUNCIL_EPARSE);
        ASSERT_NULL(ev);
        ASSERT_STR_CONTAINS(diag.msg, bad[i].says);
    }
    /* JSON that is not an object is a parse error, not "out of memory"
     * (issue 13: the fuzzer's `9`). */
    {
        static const char *const not_obj[] = {"9",    " 42 ", "\"{\"",
                                              "true", "null", "-1.5e3"};

        for (i = 0; i < sizeof(not_obj) / sizeof(not_obj[0]); i++) {
            ASSERT_EQ_INT(
                council_event_parse(not_obj[i], strlen(not_obj[i]), &ev, &diag),
                COUNCIL_EPARSE);
            ASSERT_NULL(ev);
            ASSERT_STR_CONTAINS(diag.msg, "an event is a JSON object");
        }
    }
    /* A syntax error names its place. */
    ASSERT_EQ_INT(council_event_parse("{\"a\" 1}", 7, &ev, &diag),
                  COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 1);
    ASSERT(diag.col >= 5 && diag.col <= 7);
    /* The length counts, not a NUL. */
    ASSERT_EQ_INT(council_event_parse("{\"type\":\"x\"}", 3, &ev, &diag),
                  COUNCIL_EPARSE);
    ASSERT_EQ_INT(council_event_parse(NULL, 0, &ev, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_event_parse("{}", 2, NULL, &diag), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council_event_parse("{}", 2, &ev, NULL), COUNCIL_EPARSE);
}
