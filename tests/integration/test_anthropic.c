/* SPDX-License-Identifier: MIT */
/*
 * The anthropic provider (the Messages API) over real sockets: libcurl
 * multi on a libuv loop against a raw scripted HTTP server on 127.0.0.1,
 * as test_openai.c does for the openai format.  Covers the typed events,
 * usage from message_start and the cumulative message_delta, the error
 * event, Anthropic's error bodies, the missing message_stop, the request
 * (top-level system, headers) and cancel.  Every result is checked for the
 * canary API key.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <uv.h>

#include "provider/call.h"
#include "provider/provider.h"
#include "rawhttp.h"
#include "runner.h"

#define CANARY "sk-ant-canary-7c3d9e1f4a"

#define HEAD_SSE                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"    \
    "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"

#define EV(name, json) "event: " name "\ndata: " json "\n\n"

#define MSG_START                                                              \
    EV("message_start",                                                        \
       "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","            \
       "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"           \
       "\"model\":\"claude-test\",\"stop_reason\":null,"                       \
       "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"                \
       "\"output_tokens\":1}}}")

#define BLOCK_START                                                            \
    EV("content_block_start",                                                  \
       "{\"type\":\"content_block_start\",\"index\":0,"                        \
       "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")

#define PING EV("ping", "{\"type\": \"ping\"}")

#define DELTA(text)                                                            \
    EV("content_block_delta",                                                  \
       "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"             \
       "\"type\":\"text_delta\",\"text\":\"" text "\"}}")

#define BLOCK_STOP                                                             \
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")

#define MSG_DELTA(out)                                                         \
    EV("message_delta",                                                        \
       "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"               \
       "\"end_turn\",\"stop_sequence\":null},\"usage\":{"                      \
       "\"output_tokens\":" #out "}}")

#define MSG_STOP EV("message_stop", "{\"type\":\"message_stop\"}")

#define NORMAL                                                                 \
    HEAD_SSE MSG_START BLOCK_START PING DELTA("Hello") DELTA(", world")        \
        BLOCK_STOP MSG_DELTA(15) MSG_STOP

#define CHAT_KIND COUNCIL__PROVIDER_ANTHROPIC
#define CHAT_MODEL "claude-test"
#include "chat_fixture.h"

static void
check_normal(const got *g)
{
    ASSERT_OK(g->err);
    ASSERT_EQ_INT(g->kind, COUNCIL__CALL_OK);
    ASSERT_EQ_INT(g->status, 200);
    ASSERT_STR_EQ(g->text, "Hello, world");
    ASSERT_STR_EQ(g->deltas, "Hello, world");
    ASSERT_EQ_INT(g->n_deltas, 2);
    ASSERT_STR_EQ(g->finish, "end_turn");
    ASSERT_EQ_INT(g->usage.known, 1);
    ASSERT_EQ_INT(g->usage.prompt_tokens, 25);
    ASSERT_EQ_INT(g->usage.completion_tokens, 15);
    ASSERT_EQ_INT(g->usage.cost_known, 0);
    ASSERT_LE_U64(g->first_byte_ms, g->latency_ms);
}

static json_t *
request_body(const char *req)
{
    const char *body = strstr(req, "\r\n\r\n");
    json_t *j;

    ASSERT_NOT_NULL(body);
    j = json_loads(body + 4, 0, NULL);
    ASSERT_NOT_NULL(j);
    return j;
}

TEST(normal_stream_request_and_headers)
{
    env e;
    got g = {0};
    char *req;
    json_t *j, *m;

    env_open(&e);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    check_normal(&g);

    req = rawhttp_last_request(e.srv);
    ASSERT_NOT_NULL(req);
    ASSERT(strncmp(req, "POST /v1/messages HTTP/1.1\r\n", 28) == 0);
    ASSERT_STR_CONTAINS(req, "\r\nx-api-key: " CANARY "\r\n");
    ASSERT_STR_CONTAINS(req, "\r\nanthropic-version: 2023-06-01\r\n");
    ASSERT_STR_CONTAINS(req, "\r\nContent-Type: application/json\r\n");
    ASSERT_STR_CONTAINS(req, "\r\nAccept: text/event-stream\r\n");
    ASSERT(strstr(req, "uthorization") == NULL);
    j = request_body(req);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")),
                  "claude-test");
    ASSERT(json_is_true(json_object_get(j, "stream")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "max_tokens")), 50);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "system")),
                  "You are terse.");
    m = json_object_get(j, "messages");
    ASSERT_EQ_INT(json_array_size(m), 1);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 0), "role")),
        "user");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 0), "content")),
        "Say hello.");
    ASSERT_EQ_INT(json_object_size(j), 5);
    json_decref(j);
    free(req);
    env_close(&e);
    got_free(&g);
}

TEST(system_messages_joined_and_max_tokens_defaulted)
{
    env e;
    got g = {0};
    char *req;
    json_t *j, *m;
    static const council_message three_sys[] = {
        {"system", "Rule one."}, {"user", "Q1"}, {"assistant", "A1"},
        {"system", "Rule two."}, {"user", "Q2"},
    };
    council__chat_req r = req_default();

    r.messages = three_sys;
    r.n_messages = 5;
    r.max_tokens = 0;
    env_open(&e);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    ASSERT_OK(start_req(&e, &g, NULL, &r));
    wait_done(&e, &g);
    check_normal(&g);
    req = rawhttp_last_request(e.srv);
    ASSERT(strstr(req, "x-api-key") == NULL); /* no key, no header */
    j = request_body(req);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "system")),
                  "Rule one.\n\nRule two.");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "max_tokens")), 1024);
    m = json_object_get(j, "messages");
    ASSERT_EQ_INT(json_array_size(m), 3);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 1), "role")),
        "assistant");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 2), "content")),
        "Q2");
    json_decref(j);
    free(req);
    env_close(&e);
    got_free(&g);
}

TEST(no_system_message_no_system_field)
{
    env e;
    got g = {0};
    char *req;
    json_t *j;
    council__chat_req r = req_default();

    r.messages = msgs + 1;
    r.n_messages = 1;
    env_open(&e);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    ASSERT_OK(start_req(&e, &g, CANARY, &r));
    wait_done(&e, &g);
    check_normal(&g);
    req = rawhttp_last_request(e.srv);
    j = request_body(req);
    ASSERT(json_object_get(j, "system") == NULL);
    ASSERT_EQ_INT(json_object_size(j), 4);
    json_decref(j);
    free(req);
    env_close(&e);
    got_free(&g);
}

/* The reply written one byte per write. */
static void
script_bytewise(rawhttp *srv, const char *reply, int end)
{
    size_t n = strlen(reply), i;
    rawhttp_step *st = calloc(n, sizeof(*st));

    for (i = 0; i < n; i++) {
        st[i].data = reply + i;
        st[i].len = 1;
        st[i].delay_us = 20;
    }
    rawhttp_script(srv, st, n, end);
    free(st);
}

TEST_T(byte_by_byte, 60)
{
    env e;
    got g = {0};

    env_open(&e);
    script_bytewise(e.srv, NORMAL, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    check_normal(&g);
    env_close(&e);
    got_free(&g);
}

TEST(usage_cumulative_and_cached_input)
{
    got g = {0};

    /* output_tokens in message_delta is the running total: the last one
     * wins.  Cached input counts as prompt. */
    one(HEAD_SSE EV("message_start",
                    "{\"type\":\"message_start\",\"message\":{\"usage\":{"
                    "\"input_tokens\":10,\"cache_creation_input_tokens\":3,"
                    "\"cache_read_input_tokens\":4,\"output_tokens\":1}}}")
            DELTA("a") MSG_DELTA(5) DELTA("b") MSG_DELTA(9) MSG_STOP,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "ab");
    ASSERT_EQ_INT(g.usage.known, 1);
    ASSERT_EQ_INT(g.usage.prompt_tokens, 17);
    ASSERT_EQ_INT(g.usage.completion_tokens, 9);
    got_free(&g);
}

/* Found by fuzz_anthropic_event (its seed big-usage): input and cached
 * counts near INT64_MAX overflowed their sum (UBSan).  A count beyond
 * COUNCIL__TOKENS_MAX is not one: here only output_tokens is. */
TEST(huge_counts_are_not_counts)
{
    got g = {0};

    one(HEAD_SSE EV("message_start",
                    "{\"type\":\"message_start\",\"message\":{\"usage\":{"
                    "\"input_tokens\":9223372036854775807,"
                    "\"cache_creation_input_tokens\":9223372036854775807,"
                    "\"cache_read_input_tokens\":9223372036854775807,"
                    "\"output_tokens\":1}}}") DELTA("a")
            MSG_DELTA(1099511627777) MSG_STOP,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.usage.known, 1);
    ASSERT_EQ_INT(g.usage.prompt_tokens, 0);
    ASSERT_EQ_INT(g.usage.completion_tokens, 1);
    ASSERT_EQ_INT(g.usage.partial, 1); /* no input count: a lower bound */
    got_free(&g);
}

TEST(no_usage_is_unknown_and_other_deltas_skipped)
{
    got g = {0};

    one(HEAD_SSE EV("content_block_delta",
                    "{\"type\":\"content_block_delta\",\"index\":0,"
                    "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
                    "\"hmm\"}}") DELTA("x")
            EV("some_future_event", "{\"type\":\"some_future_event\"}")
                EV("message_delta",
                   "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                   "\"max_tokens\"}}") MSG_STOP,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "x");
    ASSERT_STR_EQ(g.finish, "max_tokens");
    ASSERT_EQ_INT(g.usage.known, 0);
    got_free(&g);
}

TEST(error_event_mid_stream)
{
    got g = {0};

    one(HEAD_SSE MSG_START DELTA("partial")
            EV("error", "{\"type\":\"error\",\"error\":{\"type\":"
                        "\"overloaded_error\",\"message\":\"Overloaded\"}}")
                MSG_STOP,
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_PROVIDER);
    ASSERT_EQ_INT(g.status, 200);
    ASSERT_STR_EQ(g.type, "overloaded_error");
    ASSERT_STR_CONTAINS(g.msg, "Overloaded");
    ASSERT_STR_EQ(g.text, "");
    ASSERT_EQ_INT(g.n_deltas, 1);
    got_free(&g);
}

TEST(http_529_overloaded_with_retry_after)
{
    got g = {0};
    const char *body = "{\"type\":\"error\",\"error\":{\"type\":"
                       "\"overloaded_error\",\"message\":\"Overloaded\"}}";
    char reply[1024];

    snprintf(reply, sizeof(reply),
             "HTTP/1.1 529 Overloaded\r\nContent-Type: application/json\r\n"
             "Retry-After: 3\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    one(reply, RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.status, 529);
    ASSERT_STR_EQ(g.msg, "HTTP 529 (overloaded; retryable; gave up after 1 "
                         "attempt): Overloaded");
    ASSERT_STR_EQ(g.type, "overloaded_error");
    ASSERT_EQ_U64(g.retry_after_ms, 3000);
    got_free(&g);
}

TEST(http_401_echoing_the_key_never_leaks_it)
{
    env e;
    got g = {0};
    rawhttp_step echo[] = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
         "Connection: close\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":"
         "\"authentication_error\",\"message\":\"invalid x-api-key; you "
         "sent: ",
         0, 0},
        {NULL, 0, 0},
        {"\"}}", 0, 0}};

    env_open(&e);
    rawhttp_script(e.srv, echo, 3, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.status, 401);
    ASSERT_STR_CONTAINS(g.msg, "HTTP 401 (unauthorized; not retryable): "
                               "invalid x-api-key; you sent: ");
    ASSERT_STR_CONTAINS(g.msg, "x-api-key: ");
    ASSERT(strstr(g.msg, CANARY) == NULL);
    ASSERT(strstr(g.msg, "sk-ant-canary") == NULL);
    ASSERT_STR_EQ(g.type, "authentication_error");
    env_close(&e);
    got_free(&g);
}

TEST(missing_message_stop_is_error)
{
    got g = {0}, g2 = {0};

    /* Even with a stop_reason: only message_stop ends a message. */
    one(HEAD_SSE MSG_START DELTA("Hi") BLOCK_STOP MSG_DELTA(2), RAWHTTP_CLOSE,
        &g);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "stream ended without message_stop");
    ASSERT_STR_EQ(g.text, "");
    ASSERT_EQ_INT(g.n_deltas, 1);

    /* A message_stop without its blank line, then close: complete. */
    one(HEAD_SSE DELTA("Hi") "event: message_stop\ndata: {\"type\":"
                             "\"message_stop\"}",
        RAWHTTP_CLOSE, &g2);
    ASSERT_OK(g2.err);
    ASSERT_STR_EQ(g2.text, "Hi");
    got_free(&g);
    got_free(&g2);
}

TEST(reset_mid_stream_is_stream_error)
{
    got g = {0};
    env e;
    rawhttp_step st[] = {{HEAD_SSE MSG_START DELTA("one"), 0, 0},
                         {"", 0, 100000}};

    env_open(&e);
    rawhttp_script(e.srv, st, 2, RAWHTTP_RESET);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "broken off before message_stop");
    env_close(&e);
    got_free(&g);
}

TEST(message_stop_then_stall_finishes_at_stop)
{
    got g = {0};

    one(HEAD_SSE DELTA("A") MSG_STOP, RAWHTTP_STALL, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "A");
    ASSERT(g.latency_ms < 2000);
    got_free(&g);
}

TEST(malformed_json_event)
{
    got g = {0};

    one(HEAD_SSE MSG_START DELTA(
            "ok") "event: content_block_delta\ndata: {\"type\":\"content_block_"
                  "delta\",\"delta\":{\"text\":\"x\"}\n\n" MSG_STOP,
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "malformed JSON event");
    ASSERT_STR_CONTAINS(g.msg, "{\"type\":\"content_block_delta\"");
    ASSERT_STR_EQ(g.text, "");
    got_free(&g);
}

TEST(non_streamed_message_and_error_json)
{
    got g = {0}, g2 = {0};

    one("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Connection: close\r\n\r\n"
        "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Whole \"},{\"type\":"
        "\"tool_use\",\"id\":\"t\"},{\"type\":\"text\",\"text\":\"answer\"}],"
        "\"stop_reason\":\"max_tokens\",\"usage\":{\"input_tokens\":5,"
        "\"output_tokens\":2}}",
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "Whole answer");
    ASSERT_STR_EQ(g.deltas, "Whole answer");
    ASSERT_STR_EQ(g.finish, "max_tokens");
    ASSERT_EQ_INT(g.usage.known, 1);
    ASSERT_EQ_INT(g.usage.prompt_tokens, 5);
    ASSERT_EQ_INT(g.usage.completion_tokens, 2);

    one("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Connection: close\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":"
        "\"api_error\",\"message\":\"Internal server error\"}}",
        RAWHTTP_CLOSE, &g2);
    ASSERT_EQ_INT(g2.kind, COUNCIL__CALL_PROVIDER);
    ASSERT_STR_EQ(g2.type, "api_error");
    ASSERT_STR_CONTAINS(g2.msg, "Internal server error");
    got_free(&g);
    got_free(&g2);
}

TEST(cancel_before_any_byte)
{
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_script(e.srv, NULL, 0, RAWHTTP_STALL);
    start(&e, &g);
    council__chat_cancel(g.call);
    ASSERT_EQ_INT(g.n_done, 0); /* never re-entrant */
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CANCELLED);
    ASSERT_EQ_INT(g.err, COUNCIL_ECANCELED);
    ASSERT_EQ_INT(g.n_deltas, 0);
    env_close(&e);
    ASSERT_EQ_INT(g.n_done, 1);
    got_free(&g);
}

TEST(cancel_inside_on_delta)
{
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_reply(e.srv,
                  HEAD_SSE MSG_START DELTA("first") DELTA("second") MSG_DELTA(2)
                      MSG_STOP,
                  RAWHTTP_CLOSE);
    g.cancel_in_delta = 1;
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CANCELLED);
    ASSERT_EQ_INT(g.n_deltas, 1);
    ASSERT_STR_EQ(g.deltas, "first");
    ASSERT_STR_EQ(g.text, "");
    env_close(&e);
    ASSERT_EQ_INT(g.n_done, 1);
    got_free(&g);
}

TEST(bad_args)
{
    env e;
    got g = {0};
    council__chat_req req = req_default();
    council__provider_cfg cfg;
    council__chat_cbs cbs = {on_delta, on_done};

    env_open(&e);
    cfg = (council__provider_cfg){COUNCIL__PROVIDER_ANTHROPIC, e.base, NULL};
    /* Only system messages: the Messages API needs one message. */
    req.messages = msgs;
    req.n_messages = 1;
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_EINVAL);
    req = req_default();
    req.model = NULL;
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_EINVAL);
    req = req_default();
    req.model = "bad\xff";
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 0);
    env_close(&e);
    ASSERT_EQ_INT(g.n_done, 0);
}
