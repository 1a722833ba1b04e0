/* SPDX-License-Identifier: MIT */
/*
 * The openai provider over real sockets: libcurl multi on a libuv loop
 * against a raw scripted HTTP server on 127.0.0.1.  Each case opens its
 * own loop, council__http and server, and ends by closing the http object,
 * draining the loop (uv_loop_close must succeed) and stopping the server,
 * so the runner's fd check and LeakSanitizer see everything released.
 * Every result is checked for the canary API key.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "provider/call.h"
#include "provider/provider.h"
#include "rawhttp.h"
#include "runner.h"

#define CANARY "sk-canary-5e1f0c2b9d7a"

#define HEAD_SSE                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"                   \
    "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"

#define CHUNK(content)                                                         \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","       \
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"        \
    "\"" content "\"},\"finish_reason\":null}]}\n\n"

#define ROLE_CHUNK                                                             \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","       \
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","             \
    "\"content\":\"\"},\"finish_reason\":null}]}\n\n"

#define STOP_CHUNK                                                             \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","       \
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"     \
    "\n\n"

#define USAGE_CHUNK                                                            \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","       \
    "\"choices\":[],\"usage\":{\"prompt_tokens\":12,"                          \
    "\"completion_tokens\":3,\"total_tokens\":15,\"cost\":0.00042}}\n\n"

#define DONE "data: [DONE]\n\n"

#define NORMAL                                                                 \
    HEAD_SSE ROLE_CHUNK CHUNK("Hello") CHUNK(", world")                        \
        STOP_CHUNK USAGE_CHUNK DONE

#define CHAT_KIND COUNCIL__PROVIDER_OPENAI
#define CHAT_MODEL "gpt-test"
#include "chat_fixture.h"

/* How late a timeout may fire: 50 ms, times the runner's multiplier for
 * slow machines. */
static uint64_t
slack_ms(void)
{
    const char *m = getenv("COUNCIL_TEST_TIMEOUT_MULTIPLIER");
    double x = m != NULL ? strtod(m, NULL) : 1.0;

    return (uint64_t)(50 * (x > 1.0 ? x : 1.0));
}

static void
check_fired(uint64_t latency_ms, uint64_t bound_ms)
{
    if (latency_ms + 5 < bound_ms || latency_ms > bound_ms + slack_ms())
        FAIL("fired after %llu ms, bound %llu ms",
             (unsigned long long)latency_ms, (unsigned long long)bound_ms);
}

static void
check_normal(const got *g)
{
    ASSERT_OK(g->err);
    ASSERT_EQ_INT(g->kind, COUNCIL__CALL_OK);
    ASSERT_EQ_INT(g->status, 200);
    ASSERT_STR_EQ(g->text, "Hello, world");
    ASSERT_STR_EQ(g->deltas, "Hello, world");
    ASSERT_EQ_INT(g->n_deltas, 2); /* the empty first delta is skipped */
    ASSERT_STR_EQ(g->finish, "stop");
    ASSERT_EQ_INT(g->usage.known, 1);
    ASSERT_EQ_INT(g->usage.prompt_tokens, 12);
    ASSERT_EQ_INT(g->usage.completion_tokens, 3);
    ASSERT_EQ_INT(g->usage.cost_known, 1);
    ASSERT(g->usage.cost > 0.000419 && g->usage.cost < 0.000421);
    ASSERT_LE_U64(g->first_byte_ms, g->latency_ms);
}

TEST(normal_stream_and_request)
{
    env e;
    got g = {0}, g2 = {0};
    char *req, *body;
    json_t *j, *m;
    council__chat_req r2 = req_default();

    env_open(&e);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    check_normal(&g);

    req = rawhttp_last_request(e.srv);
    ASSERT_NOT_NULL(req);
    ASSERT(strncmp(req, "POST /v1/chat/completions HTTP/1.1\r\n", 36) == 0);
    ASSERT_STR_CONTAINS(req, "\r\nAuthorization: Bearer " CANARY "\r\n");
    ASSERT_STR_CONTAINS(req, "\r\nContent-Type: application/json\r\n");
    ASSERT_STR_CONTAINS(req, "\r\nAccept: text/event-stream\r\n");
    body = strstr(req, "\r\n\r\n") + 4;
    j = json_loads(body, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), "gpt-test");
    ASSERT(json_is_true(json_object_get(j, "stream")));
    ASSERT(json_is_true(json_object_get(json_object_get(j, "stream_options"),
                                        "include_usage")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "max_tokens")), 50);
    m = json_object_get(j, "messages");
    ASSERT_EQ_INT(json_array_size(m), 2);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 0), "role")),
        "system");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_array_get(m, 1), "content")),
        "Say hello.");
    ASSERT_EQ_INT(json_object_size(j), 5);
    json_decref(j);
    free(req);

    /* No key: no Authorization; max_tokens 0: not sent. */
    r2.max_tokens = 0;
    ASSERT_OK(start_req(&e, &g2, NULL, &r2));
    wait_done(&e, &g2);
    check_normal(&g2);
    req = rawhttp_last_request(e.srv);
    ASSERT(strstr(req, "uthorization") == NULL);
    ASSERT(strstr(req, "max_tokens") == NULL);
    free(req);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 2);
    env_close(&e);
    got_free(&g);
    got_free(&g2);
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
        st[i].delay_us = 50;
    }
    rawhttp_script(srv, st, n, end);
    free(st);
}

TEST_T(byte_by_byte, 30)
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

TEST_T(split_utf8_reassembled, 30)
{
    env e;
    got g = {0};
    /* Raw multi-byte UTF-8 and \u escapes (a surrogate pair too). */
    const char *reply =
        HEAD_SSE CHUNK("h\xC3\xA9llo ") CHUNK("\xE4\xB8\x96\xE7\x95\x8C")
            CHUNK(" \\u4e16\\ud83d\\ude00") STOP_CHUNK DONE;

    env_open(&e);
    script_bytewise(e.srv, reply, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C "
                          "\xE4\xB8\x96\xF0\x9F\x98\x80");
    ASSERT_STR_EQ(g.deltas, g.text);
    env_close(&e);
    got_free(&g);
}

TEST(missing_done_with_finish_reason_is_ok)
{
    got g = {0};

    one(HEAD_SSE CHUNK("Hi") STOP_CHUNK, RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "Hi");
    ASSERT_STR_EQ(g.finish, "stop");
    ASSERT_EQ_INT(g.usage.known, 0); /* never reported: unknown, not 0 */
    got_free(&g);
}

TEST(missing_done_and_finish_reason_is_error)
{
    got g = {0};

    one(HEAD_SSE CHUNK("Hi") CHUNK(" there"), RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "stream ended without [DONE] or "
                               "finish_reason");
    ASSERT_STR_EQ(g.text, "");
    ASSERT_EQ_INT(g.n_deltas, 2);
    got_free(&g);
}

TEST(done_without_blank_line_then_close)
{
    got g = {0};

    one(HEAD_SSE CHUNK("Hi") "data: [DONE]", RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "Hi");
    got_free(&g);
}

TEST(duplicated_done)
{
    got g = {0};

    one(HEAD_SSE CHUNK("A") CHUNK("B") DONE DONE CHUNK("C") DONE, RAWHTTP_CLOSE,
        &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "AB");
    got_free(&g);
}

TEST(done_then_stall_finishes_at_done)
{
    got g = {0};

    /* A server that keeps the connection open after [DONE]. */
    one(HEAD_SSE CHUNK("A") DONE, RAWHTTP_STALL, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "A");
    ASSERT(g.latency_ms < 2000);
    got_free(&g);
}

TEST(error_inside_200_stream)
{
    got g = {0}, g2 = {0};

    one(HEAD_SSE CHUNK("partial") "data: {\"error\":{\"message\":"
                                  "\"Upstream overloaded, try later\","
                                  "\"type\":\"overloaded_error\","
                                  "\"code\":\"529\"}}\n\n" DONE,
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_PROVIDER);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.status, 200);
    ASSERT_STR_CONTAINS(g.msg, "Upstream overloaded, try later");
    ASSERT_STR_EQ(g.type, "overloaded_error");
    ASSERT_STR_EQ(g.text, "");

    /* OpenRouter's shape: a chunk with error and finish_reason "error",
     * an integer code. */
    one(HEAD_SSE ": OPENROUTER PROCESSING\n\n"
                 "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\","
                 "\"error\":{\"code\":502,\"message\":\"Provider "
                 "disconnected\"},\"choices\":[{\"index\":0,\"delta\":{"
                 "\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n" DONE,
        RAWHTTP_CLOSE, &g2);
    ASSERT_EQ_INT(g2.kind, COUNCIL__CALL_PROVIDER);
    ASSERT_STR_CONTAINS(g2.msg, "Provider disconnected");
    ASSERT_STR_EQ(g2.type, "502");
    got_free(&g);
    got_free(&g2);
}

TEST(malformed_chunk)
{
    got g = {0};

    one(HEAD_SSE CHUNK("ok") "data: {\"choices\":[{\"delta\":{\"content\":"
                             "\"x\"}}\n\n" DONE,
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "malformed JSON chunk");
    ASSERT_STR_CONTAINS(g.msg, "{\"choices\":[{\"delta\"");
    got_free(&g);
}

/* Issue 13: `data: 42` is JSON that is not an object, a provider's fault,
 * not "out of memory parsing the chunk". */
TEST(chunk_not_an_object)
{
    got g = {0}, g2 = {0};

    one(HEAD_SSE CHUNK("ok") "data: 42\n\n" DONE, RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "not a JSON object: chunk: 42");
    ASSERT(strstr(g.msg, "memory") == NULL);
    one(HEAD_SSE "data: \"x\"\n\n" DONE, RAWHTTP_CLOSE, &g2);
    ASSERT_EQ_INT(g2.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g2.msg, "not a JSON object");
    got_free(&g);
    got_free(&g2);
}

/* Found by fuzz_openai_chunk: bytes that are not UTF-8 in a malformed
 * chunk used to reach the message as they were, and a message that is not
 * UTF-8 cannot go into the member_failed event (jansson refuses it). */
TEST(malformed_chunk_message_is_utf8)
{
    got g = {0};
    json_t *j;

    one(HEAD_SSE "data: {\xff\xfe\xc3(\xe2\x82\n\n" DONE, RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    /* \xc3 before "(" is no sequence; \xe2\x82 is cut by the end. */
    ASSERT_STR_EQ(g.msg, "malformed JSON chunk: {?"
                         "?"
                         "?( "
                         "(malformed stream; not retryable)");
    j = json_string(g.msg);
    ASSERT(j != NULL);
    json_decref(j);
    got_free(&g);
}

/* A count beyond COUNCIL__TOKENS_MAX is not one either (a run's sums
 * could overflow). */
TEST(huge_usage_is_unknown)
{
    got g = {0};

    one(HEAD_SSE CHUNK("hi") "data: {\"choices\":[],\"usage\":{"
                             "\"prompt_tokens\":9223372036854775807,"
                             "\"completion_tokens\":1099511627777}}\n\n" DONE,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.usage.known, 0);
    got_free(&g);
}

/* Found by fuzz_openai_chunk: a negative count is not usage. */
TEST(negative_usage_is_unknown)
{
    got g = {0};

    one(HEAD_SSE CHUNK(
            "hi") "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-5,"
                  "\"completion_tokens\":-1,\"cost\":-2.5}}\n\n" DONE,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.usage.known, 0);
    ASSERT_EQ_INT(g.usage.cost_known, 0);
    got_free(&g);
}

TEST(http_500_json_and_retry_after_seconds)
{
    got g = {0};
    const char *body = "{\"error\":{\"message\":\"The server had an error "
                       "while processing your request.\",\"type\":"
                       "\"server_error\",\"param\":null,\"code\":null}}";
    char reply[1024];

    snprintf(reply, sizeof(reply),
             "HTTP/1.1 500 Internal Server Error\r\nContent-Type: "
             "application/json\r\nRetry-After: 7\r\nContent-Length: "
             "%zu\r\n\r\n%s",
             strlen(body), body);
    one(reply, RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.status, 500);
    ASSERT_STR_EQ(g.msg, "HTTP 500 (server error; retryable; gave up after "
                         "1 attempt): The server had an error while "
                         "processing your request.");
    ASSERT_STR_EQ(g.type, "server_error");
    ASSERT_EQ_U64(g.retry_after_ms, 7000);
    got_free(&g);
}

TEST(http_429_retry_after_date)
{
    got g = {0};
    char reply[1024], date[64];
    time_t when = time(NULL) + 30;
    struct tm tm;

    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 429 Too Many Requests\r\nContent-Type: "
             "application/json\r\nRetry-After: %s\r\nConnection: close\r\n"
             "\r\n{\"error\":{\"message\":\"Rate limit reached\","
             "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}",
             date);
    one(reply, RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.status, 429);
    ASSERT_STR_EQ(g.msg, "HTTP 429 (rate limited; retryable; gave up after "
                         "1 attempt): Rate limit reached");
    ASSERT_STR_EQ(g.type, "requests");
    ASSERT(g.retry_after_ms >= 27000 && g.retry_after_ms <= 31000);
    got_free(&g);
}

TEST(http_503_empty_body_names_reason)
{
    got g = {0};

    one("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_STR_EQ(g.msg, "HTTP 503 (unavailable; retryable; gave up after 1 "
                         "attempt): Service Unavailable");
    ASSERT_EQ_U64(g.retry_after_ms, 0);
    got_free(&g);
}

TEST(http_401_echoing_the_key_never_leaks_it)
{
    env e;
    got g = {0}, g2 = {0};
    rawhttp_step json_echo[] = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
         "Connection: close\r\n\r\n{\"error\":{\"message\":\"Incorrect API "
         "key; you sent: ",
         0, 0},
        {NULL, 0, 0},
        {"\",\"type\":\"invalid_request_error\",\"code\":"
         "\"invalid_api_key\"}}",
         0, 0}};
    rawhttp_step text_echo[] = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
         "Connection: close\r\n\r\nbad key: ",
         0, 0},
        {NULL, 0, 0}};

    env_open(&e);
    rawhttp_script(e.srv, json_echo, 3, RAWHTTP_CLOSE);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.status, 401);
    ASSERT_STR_CONTAINS(g.msg, "HTTP 401 (unauthorized; not retryable): "
                               "Incorrect API key; you sent: ");
    ASSERT_STR_CONTAINS(g.msg, "Authorization: Bearer ");
    ASSERT(strstr(g.msg, CANARY) == NULL);
    ASSERT(strstr(g.msg, "sk-canary") == NULL);
    ASSERT_STR_EQ(g.type, "invalid_request_error");

    rawhttp_script(e.srv, text_echo, 2, RAWHTTP_CLOSE);
    start(&e, &g2);
    wait_done(&e, &g2);
    ASSERT_EQ_INT(g2.kind, COUNCIL__CALL_HTTP);
    ASSERT_STR_CONTAINS(g2.msg, "HTTP 401 (unauthorized; not retryable): "
                                "bad key: POST /v1/chat");
    ASSERT(strstr(g2.msg, "sk-canary") == NULL);
    env_close(&e);
    got_free(&g);
    got_free(&g2);
}

TEST(connection_refused)
{
    env e;
    got g = {0};
    council__chat_req req = req_default();
    council__provider_cfg cfg = {COUNCIL__PROVIDER_OPENAI, NULL, CANARY};
    council__chat_cbs cbs = {on_delta, on_done};
    uv_tcp_t t;
    struct sockaddr_in a;
    int alen = sizeof(a), port;
    char base[64];

    env_open(&e);
    /* A port that was just free: bind, read it, close. */
    uv_tcp_init(&e.loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    ASSERT_EQ_INT(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&a, &alen);
    port = ntohs(a.sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", port);
    cfg.base_url = base;
    ASSERT_OK(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call));
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CONNECT);
    ASSERT_EQ_INT(g.err, COUNCIL_EIO);
    ASSERT_EQ_INT(g.status, 0);
    ASSERT_STR_CONTAINS(g.msg, "onnect");
    env_close(&e);
    got_free(&g);
}

TEST(reset_before_response_is_connect)
{
    got g = {0};
    env e;

    env_open(&e);
    rawhttp_script(e.srv, NULL, 0, RAWHTTP_RESET);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CONNECT);
    env_close(&e);
    got_free(&g);
}

TEST(reset_after_k_chunks)
{
    got g = {0};
    env e;
    /* The pause lets the client read the chunks: a RST makes the kernel
     * drop data not yet read. */
    rawhttp_step st[] = {{HEAD_SSE CHUNK("one") CHUNK("two"), 0, 0},
                         {"", 0, 100000}};

    env_open(&e);
    rawhttp_script(e.srv, st, 2, RAWHTTP_RESET);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "stream broken off");
    ASSERT_EQ_INT(g.n_deltas, 2);
    ASSERT_STR_EQ(g.text, "");
    env_close(&e);
    got_free(&g);
}

static void
timeout_case(const rawhttp_step *st, size_t n, int end, council__chat_req *req,
             got *g)
{
    env e;

    env_open(&e);
    rawhttp_script(e.srv, st, n, end);
    ASSERT_OK(start_req(&e, g, CANARY, req));
    wait_done(&e, g);
    env_close(&e);
    ASSERT_EQ_INT(g->kind, COUNCIL__CALL_TIMEOUT);
    ASSERT_EQ_INT(g->err, COUNCIL_ETIMEDOUT);
}

TEST(first_byte_timeout)
{
    got g = {0}, g2 = {0};
    council__chat_req req = req_default();
    rawhttp_step head[] = {{HEAD_SSE, 0, 0}};

    req.first_byte_timeout_ms = 200;
    timeout_case(NULL, 0, RAWHTTP_STALL, &req, &g);
    ASSERT_STR_CONTAINS(g.msg, "first-byte timeout");
    ASSERT_STR_CONTAINS(g.msg, "200 ms");
    check_fired(g.latency_ms, 200);

    /* Headers but no body byte: still the first-byte timeout. */
    timeout_case(head, 1, RAWHTTP_STALL, &req, &g2);
    ASSERT_STR_CONTAINS(g2.msg, "first-byte timeout");
    check_fired(g2.latency_ms, 200);
    got_free(&g);
    got_free(&g2);
}

TEST(idle_timeout)
{
    got g = {0};
    council__chat_req req = req_default();
    rawhttp_step st[] = {{HEAD_SSE CHUNK("a"), 0, 0}, {CHUNK("b"), 0, 100000}};

    req.idle_timeout_ms = 200;
    timeout_case(st, 2, RAWHTTP_STALL, &req, &g);
    ASSERT_STR_CONTAINS(g.msg, "idle timeout");
    ASSERT_STR_CONTAINS(g.msg, "200 ms");
    ASSERT_EQ_INT(g.n_deltas, 2);
    /* The bound counts from the last byte, ~100 ms after the first. */
    check_fired(g.latency_ms, 300);
    got_free(&g);
}

TEST(total_timeout_against_a_drip)
{
    got g = {0};
    council__chat_req req = req_default();
    const char *body = CHUNK("dripping slowly") STOP_CHUNK DONE;
    size_t n = strlen(body), i;
    rawhttp_step *st = calloc(n + 1, sizeof(*st));

    st[0].data = HEAD_SSE;
    for (i = 0; i < n; i++) {
        st[i + 1].data = body + i;
        st[i + 1].len = 1;
        st[i + 1].delay_us = 20000;
    }
    req.total_timeout_ms = 300;
    req.idle_timeout_ms = 1000;
    timeout_case(st, n + 1, RAWHTTP_CLOSE, &req, &g);
    free(st);
    ASSERT_STR_CONTAINS(g.msg, "total timeout");
    ASSERT_STR_CONTAINS(g.msg, "300 ms");
    check_fired(g.latency_ms, 300);
    got_free(&g);
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

TEST(cancel_after_some_turns)
{
    env e;
    got g = {0};
    int i;

    env_open(&e);
    rawhttp_script(e.srv, NULL, 0, RAWHTTP_STALL);
    start(&e, &g);
    for (i = 0; i < 20; i++)
        uv_run(&e.loop, UV_RUN_NOWAIT);
    council__chat_cancel(g.call);
    ASSERT_EQ_INT(g.n_done, 0);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CANCELLED);
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
                  HEAD_SSE CHUNK("first") CHUNK("second") CHUNK("third")
                      STOP_CHUNK DONE,
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

static env *nested_env;
static got nested_got;

static void
on_delta_start_another(const char *text, size_t len, void *ud)
{
    got *g = ud;

    on_delta(text, len, ud);
    if (g->n_deltas == 1)
        start(nested_env, &nested_got); /* inside a libcurl callback */
}

TEST(start_from_inside_on_delta)
{
    env e;
    got g = {0};
    council__provider_cfg cfg;
    council__chat_req req = req_default();
    council__chat_cbs cbs = {on_delta_start_another, on_done};

    env_open(&e);
    nested_env = &e;
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    cfg = (council__provider_cfg){COUNCIL__PROVIDER_OPENAI, e.base, CANARY};
    ASSERT_OK(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call));
    wait_done(&e, &g);
    wait_done(&e, &nested_got);
    check_normal(&g);
    check_normal(&nested_got);
    env_close(&e);
    got_free(&g);
    got_free(&nested_got);
}

TEST(close_with_calls_in_flight)
{
    env e;
    got g[3] = {{0}};
    int i;

    env_open(&e);
    rawhttp_script(e.srv, NULL, 0, RAWHTTP_STALL);
    for (i = 0; i < 3; i++)
        start(&e, &g[i]);
    for (i = 0; i < 10; i++)
        uv_run(&e.loop, UV_RUN_NOWAIT);
    env_close(&e);
    for (i = 0; i < 3; i++) {
        ASSERT_EQ_INT(g[i].n_done, 1);
        ASSERT_EQ_INT(g[i].kind, COUNCIL__CALL_CANCELLED);
        got_free(&g[i]);
    }
}

TEST(start_after_close_and_bad_args)
{
    env e;
    got g = {0};
    council__chat_req req = req_default();
    council__provider_cfg cfg;
    council__chat_cbs cbs = {on_delta, on_done};

    env_open(&e);
    cfg = (council__provider_cfg){COUNCIL__PROVIDER_OPENAI, e.base, NULL};
    req.n_messages = 0;
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_EINVAL);
    req = req_default();
    req.model = NULL;
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_EINVAL);
    req = req_default();
    council__http_close(e.h, on_closed, &e.closed);
    ASSERT_EQ_INT(council__chat_start(e.h, &cfg, &req, &cbs, &g, &g.call),
                  COUNCIL_ECLOSED);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(e.closed, 1);
    ASSERT_EQ_INT(g.n_done, 0);
    ASSERT_EQ_INT(uv_loop_close(&e.loop), 0);
    rawhttp_stop(e.srv);
}

TEST(non_streamed_json_answer)
{
    got g = {0};

    one("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8"
        "\r\nConnection: close\r\n\r\n"
        "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Whole answer\"},\"finish_reason\":\"length\"}],\"usage\":{"
        "\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}",
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "Whole answer");
    ASSERT_STR_EQ(g.deltas, "Whole answer");
    ASSERT_STR_EQ(g.finish, "length");
    ASSERT_EQ_INT(g.usage.known, 1);
    ASSERT_EQ_INT(g.usage.prompt_tokens, 5);
    ASSERT_EQ_INT(g.usage.cost_known, 0);
    got_free(&g);
}

TEST(html_content_type_is_error)
{
    got g = {0};

    one("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close"
        "\r\n\r\n<html><body>Login</body></html>",
        RAWHTTP_CLOSE, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_EQ_INT(g.status, 200);
    ASSERT_STR_CONTAINS(g.msg, "text/html");
    got_free(&g);
}

TEST_T(ten_megabyte_line_is_an_error, 30)
{
    env e;
    got g = {0};
    size_t n = 10u << 20;
    char *big = malloc(n);
    rawhttp_step st[] = {{HEAD_SSE "data: ", 0, 0}, {big, n, 0}};

    memset(big, 'a', n);
    env_open(&e);
    rawhttp_script(e.srv, st, 2, RAWHTTP_STALL);
    free(big);
    start(&e, &g);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "longer than");
    env_close(&e);
    got_free(&g);
}

TEST(keepalive_comments_skipped)
{
    got g = {0};

    one(HEAD_SSE ": keep-alive\n\n: OPENROUTER PROCESSING\n\n" CHUNK(
            "x") ": keep-alive\r\n\r\n" CHUNK("y") STOP_CHUNK DONE,
        RAWHTTP_CLOSE, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "xy");
    got_free(&g);
}

TEST(chunked_transfer_encoding)
{
    got g = {0};

    one("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "9\r\ndata: {\"c\r\n"
        "3c\r\nhoices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":"
        "null}]}\n\n\r\n"
        "e\r\ndata: [DONE]\n\n\r\n"
        "0\r\n\r\n",
        RAWHTTP_STALL, &g);
    ASSERT_OK(g.err);
    ASSERT_STR_EQ(g.text, "ok");
    got_free(&g);
}

TEST_T(fifty_concurrent_calls, 30)
{
    env e;
    got g[50];
    int i, done;

    memset(g, 0, sizeof(g));
    env_open(&e);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    for (i = 0; i < 50; i++)
        start(&e, &g[i]);
    do {
        uv_run(&e.loop, UV_RUN_ONCE);
        for (done = 0, i = 0; i < 50; i++)
            done += g[i].n_done;
    } while (done < 50);
    for (i = 0; i < 50; i++) {
        check_normal(&g[i]);
        got_free(&g[i]);
    }
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 50);
    env_close(&e);
}

TEST(errkind_names)
{
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_OK), "ok");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_CONNECT), "connect");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_TIMEOUT), "timeout");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_HTTP), "http");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_STREAM), "stream");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_PROVIDER),
                  "provider");
    ASSERT_STR_EQ(council__call_errkind_name(COUNCIL__CALL_CANCELLED),
                  "cancelled");
}

/* A jansson allocation fails while a stream event is parsed: the call
 * fails as out of memory, never goes on with a string a byte short
 * (jansson's lexer parses on after such a failure). */
static size_t fail_json_size;

static void *
fail_malloc(size_t n)
{
    if (n == fail_json_size) {
        fail_json_size = 0;
        return NULL;
    }
    return malloc(n);
}

TEST(json_allocation_failure_is_out_of_memory_not_a_short_string)
{
    council__chat_req req = req_default();
    council__chat_cbs cbs = {on_delta, on_done};
    council__chat *c = NULL;
    char data[1100];
    json_t *o;
    got g = {0};
    env e;

    env_open(&e);
    ASSERT_OK(council__chat_new(e.h, &council__openai_ops, &req, &cbs, &g, &c));
    ASSERT_EQ_INT(uv_timer_init(&e.loop, &c->timer), 0);
    c->timer.data = c;
    c->state = COUNCIL__CHAT_RUNNING;
    /* A 1,000-byte string: jansson's lexer buffer doubles to 1,024. */
    memcpy(data, "{\"x\":\"", 6);
    memset(data + 6, 'a', 1000);
    memcpy(data + 1006, "\"}", 3);
    ASSERT_OK(council_set_allocator(fail_malloc, realloc, calloc, free));
    fail_json_size = 1024;
    o = council__json_object(c, data, strlen(data), "chunk");
    ASSERT_OK(council_set_allocator(malloc, realloc, calloc, free));
    ASSERT_EQ_U64(fail_json_size, 0); /* it was asked for, and failed */
    ASSERT(o == NULL);
    ASSERT(!council__chat_running(c));
    ASSERT_EQ_INT(c->res.err, COUNCIL_ENOMEM);
    ASSERT_STR_CONTAINS(c->res.message, "out of memory parsing the chunk");
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    council__chat_discard(c);
    env_close(&e);
}
