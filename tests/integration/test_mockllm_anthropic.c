/* SPDX-License-Identifier: MIT */
/*
 * The mock LLM server's Anthropic Messages endpoint, end to end: the
 * anthropic provider (libcurl on a libuv loop) against the in-process
 * mock on 127.0.0.1, plus raw libcurl requests for the whole-answer and
 * error shapes.  The same prompt, seed and model give the same text as the
 * OpenAI endpoint; every fault kind shows in Anthropic's form and the
 * provider classifies it.
 * TEST_LABELS: threaded
 */
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "council.h"
#include "provider/provider.h"
#include "runner.h"

typedef struct got {
    int n_done;
    council_err err;
    council__call_errkind kind;
    long status;
    char type[64];
    char msg[512];
    uint64_t retry_after_ms, latency_ms;
    char *text;
    char finish[32];
    council__usage usage;
    int n_deltas;
} got;

typedef struct env {
    uv_loop_t loop;
    council__http *h;
    council_mockllm *m;
    int closed;
} env;

static void
on_delta(const char *text, size_t len, void *ud)
{
    got *g = ud;

    (void)text;
    ASSERT(len > 0);
    g->n_deltas++;
}

static void
on_done(const council__chat_result *r, void *ud)
{
    got *g = ud;

    ASSERT_EQ_INT(g->n_done, 0);
    g->n_done++;
    g->err = r->err;
    g->kind = r->kind;
    g->status = r->http_status;
    snprintf(g->type, sizeof(g->type), "%s", r->error_type);
    snprintf(g->msg, sizeof(g->msg), "%s", r->message);
    g->retry_after_ms = r->retry_after_ms;
    g->latency_ms = r->latency_ms;
    g->text = strndup(r->text, r->text_len);
    snprintf(g->finish, sizeof(g->finish), "%s",
             r->finish_reason ? r->finish_reason : "");
    g->usage = r->usage;
}

static void
env_open(env *e, const char *faults)
{
    council_mockllm_opts o;
    council_diag d;

    memset(e, 0, sizeof(*e));
    memset(&o, 0, sizeof(o));
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    o.listen = "127.0.0.1:0";
    o.seed = 7;
    o.faults = faults;
    memset(&d, 0, sizeof(d));
    if (council_mockllm_open(&o, &e->m, &d) != COUNCIL_OK)
        FAIL("council_mockllm_open: %s", d.msg);
    ASSERT_EQ_INT(uv_loop_init(&e->loop), 0);
    ASSERT_OK(council__http_open(&e->loop, &e->h));
}

static void
on_closed(void *ud)
{
    (*(int *)ud)++;
}

static void
env_close(env *e)
{
    council__http_close(e->h, on_closed, &e->closed);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(e->closed, 1);
    ASSERT_EQ_INT(uv_loop_close(&e->loop), 0);
    council_mockllm_close(e->m);
}

static const council_message msgs[] = {
    {"system", "You are a careful judge."},
    {"user", "Which is larger, 9.11 or 9.9?"},
};

/* One call of the given kind to the mock, the whole way, with these
 * first-byte and idle timeouts. */
static void
call_t(env *e, council__provider_kind kind, const char *model, int max_tokens,
       uint64_t first_byte_ms, uint64_t idle_ms, got *g)
{
    council__provider_cfg cfg = {kind, council_mockllm_base_url(e->m),
                                 "sk-mock-key"};
    council__chat_req req = {.model = model,
                             .messages = msgs,
                             .n_messages = 2,
                             .max_tokens = max_tokens,
                             .connect_timeout_ms = 2000,
                             .first_byte_timeout_ms = first_byte_ms,
                             .idle_timeout_ms = idle_ms,
                             .total_timeout_ms = 10000};
    council__chat_cbs cbs = {on_delta, on_done};
    council__chat *c = NULL;

    memset(g, 0, sizeof(*g));
    ASSERT_OK(council__chat_start(e->h, &cfg, &req, &cbs, g, &c));
    while (g->n_done == 0)
        uv_run(&e->loop, UV_RUN_ONCE);
}

static void
call(env *e, council__provider_kind kind, const char *model, int max_tokens,
     got *g)
{
    call_t(e, kind, model, max_tokens, 5000, 5000, g);
}

TEST(same_text_as_the_openai_endpoint)
{
    env e;
    got a, o, t;

    env_open(&e, NULL);
    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "mock-large", 0, &a);
    call(&e, COUNCIL__PROVIDER_OPENAI, "mock-large", 0, &o);
    ASSERT_OK(a.err);
    ASSERT_OK(o.err);
    ASSERT(strlen(a.text) > 20);
    ASSERT_STR_EQ(a.text, o.text);
    ASSERT(a.n_deltas > 5); /* streamed token by token */
    ASSERT_STR_EQ(a.finish, "end_turn");
    ASSERT_EQ_INT(a.usage.known, 1);
    ASSERT_EQ_INT(a.usage.prompt_tokens, o.usage.prompt_tokens);
    ASSERT_EQ_INT(a.usage.completion_tokens, o.usage.completion_tokens);
    ASSERT_EQ_INT(a.usage.completion_tokens, a.n_deltas);

    /* max_tokens cuts the answer: stop_reason max_tokens. */
    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "mock-large", 3, &t);
    ASSERT_OK(t.err);
    ASSERT_STR_EQ(t.finish, "max_tokens");
    ASSERT_EQ_INT(t.usage.completion_tokens, 3);
    ASSERT(strncmp(a.text, t.text, strlen(t.text)) == 0);
    ASSERT_EQ_U64(council_mockllm_requests(e.m), 3);
    env_close(&e);
    free(a.text);
    free(o.text);
    free(t.text);
}

TEST(faults_in_anthropic_shapes)
{
    env e;
    got g;

    env_open(&e, "model=ovl:http=529; model=rl:http=429,retry_after=2;"
                 "model=auth:http=401; model=eis:error_in_stream=2;"
                 "model=nd:no_done; model=mal:malformed,after=2;"
                 "model=dis2:disconnect=2; model=dis:disconnect;"
                 "model=st:stall=300ms");
    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "ovl", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.status, 529);
    ASSERT_STR_EQ(g.type, "overloaded_error");
    ASSERT_STR_CONTAINS(g.msg, "HTTP 529 (overloaded; retryable; gave up "
                               "after 1 attempt): mock-llm injected fault");
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "rl", 0, &g);
    ASSERT_EQ_INT(g.status, 429);
    ASSERT_STR_EQ(g.type, "rate_limit_error");
    ASSERT_EQ_U64(g.retry_after_ms, 2000);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "auth", 0, &g);
    ASSERT_EQ_INT(g.status, 401);
    ASSERT_STR_EQ(g.type, "authentication_error");
    ASSERT(strstr(g.msg, "sk-mock-key") == NULL);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "eis", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_PROVIDER);
    ASSERT_EQ_INT(g.status, 200);
    ASSERT_STR_EQ(g.type, "overloaded_error");
    ASSERT_STR_CONTAINS(g.msg, "error in stream");
    ASSERT_EQ_INT(g.n_deltas, 2);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "nd", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "without message_stop");
    ASSERT(g.n_deltas > 5);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "mal", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "malformed JSON event");
    ASSERT_EQ_INT(g.n_deltas, 2);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "dis2", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_STR_CONTAINS(g.msg, "before message_stop");
    ASSERT_EQ_INT(g.n_deltas, 2);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "dis", 0, &g);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CONNECT);
    free(g.text);

    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "st", 0, &g);
    ASSERT_OK(g.err);
    ASSERT(g.latency_ms >= 290);
    free(g.text);
    env_close(&e);
}

/* no_usage and cost=USD through both providers: the answer is whole, the
 * usage unknown (not 0) or with the cost (the Messages API reports none). */
TEST(usage_faults_through_both_providers)
{
    env e;
    got g;
    int kind;

    env_open(&e, "model=q:no_usage; model=c:cost=0.5");
    for (kind = COUNCIL__PROVIDER_OPENAI; kind <= COUNCIL__PROVIDER_ANTHROPIC;
         kind++) {
        call(&e, (council__provider_kind)kind, "q", 0, &g);
        ASSERT_OK(g.err);
        ASSERT(strlen(g.text) > 0);
        ASSERT(g.n_deltas > 5);
        ASSERT_EQ_INT(g.usage.known, 0);
        ASSERT_EQ_INT(g.usage.cost_known, 0);
        free(g.text);
        call(&e, (council__provider_kind)kind, "c", 0, &g);
        ASSERT_OK(g.err);
        ASSERT_EQ_INT(g.usage.known, 1);
        ASSERT_EQ_INT(g.usage.completion_tokens, g.n_deltas);
        ASSERT_EQ_INT(g.usage.cost_known, kind == COUNCIL__PROVIDER_OPENAI);
        if (kind == COUNCIL__PROVIDER_OPENAI)
            ASSERT(g.usage.cost == 0.5);
        free(g.text);
    }
    env_close(&e);
}

/* Reasoning models (think=): the reasoning deltas (OpenAI's
 * reasoning_content or reasoning, Anthropic's thinking block) and the
 * keep-alives (comments, pings) are not answer text, and they keep the
 * stream alive: a 400 ms first-byte and idle timeout pass a 1.2 s think. */
TEST_T(reasoning_streams_through_both_providers, 60)
{
    static const char *models[] = {"r-content", "r-reasoning", "r-comment"};
    env e;
    got g;
    char *first = NULL;
    int kind;
    size_t i;

    env_open(&e, "model=r-content:think=1200ms,beat=100ms;"
                 "model=r-reasoning:think=1200ms,beat=100ms,as=reasoning;"
                 "model=r-comment:think=1200ms,beat=100ms,as=comment");
    for (i = 0; i < 3; i++) {
        for (kind = COUNCIL__PROVIDER_OPENAI;
             kind <= COUNCIL__PROVIDER_ANTHROPIC; kind++) {
            call_t(&e, (council__provider_kind)kind, models[i], 0, 400, 400,
                   &g);
            if (g.err != COUNCIL_OK)
                FAIL("%s (kind %d): %s", models[i], kind, g.msg);
            ASSERT(g.latency_ms >= 1200);
            ASSERT(strlen(g.text) > 0);
            ASSERT_NULL(strstr(g.text, "Reasoning"));
            /* Usage counts the reasoning: 12 beats (not the comments). */
            ASSERT_EQ_INT(g.usage.completion_tokens,
                          g.n_deltas + (i < 2 ? 12 : 0));
            /* The same answer over either API. */
            if (kind == COUNCIL__PROVIDER_OPENAI) {
                first = g.text;
            } else {
                ASSERT_STR_EQ(g.text, first);
                free(first);
                free(g.text);
            }
        }
    }
    env_close(&e);
}

/* The timeouts around thinking: a silent think (beat=0) sends no byte, so
 * the first-byte timeout applies to it; beats further apart than the idle
 * timeout let it fire. */
TEST_T(reasoning_and_the_timeouts, 60)
{
    env e;
    got g;
    int kind;

    env_open(&e, "model=silent:think=1s,beat=0;"
                 "model=sparse:think=1500ms,beat=600ms");
    for (kind = COUNCIL__PROVIDER_OPENAI; kind <= COUNCIL__PROVIDER_ANTHROPIC;
         kind++) {
        council__provider_kind k = (council__provider_kind)kind;

        call_t(&e, k, "silent", 0, 300, 5000, &g);
        ASSERT_EQ_INT(g.kind, COUNCIL__CALL_TIMEOUT);
        ASSERT_STR_CONTAINS(g.msg, "first-byte timeout");
        free(g.text);
        call_t(&e, k, "silent", 0, 3000, 300, &g);
        ASSERT_OK(g.err);
        ASSERT(g.latency_ms >= 1000);
        free(g.text);
        call_t(&e, k, "sparse", 0, 5000, 300, &g);
        ASSERT_EQ_INT(g.kind, COUNCIL__CALL_TIMEOUT);
        ASSERT_STR_CONTAINS(g.msg, "idle timeout");
        ASSERT_EQ_INT(g.n_deltas, 0);
        free(g.text);
        call_t(&e, k, "sparse", 0, 5000, 1000, &g);
        ASSERT_OK(g.err);
        ASSERT(g.latency_ms >= 1500);
        free(g.text);
    }
    env_close(&e);
}

/* ---- raw requests ------------------------------------------------------- */

static size_t
on_body(char *d, size_t sz, size_t n, void *ud)
{
    char **p = ud;
    size_t old = *p != NULL ? strlen(*p) : 0;

    *p = realloc(*p, old + sz * n + 1);
    memcpy(*p + old, d, sz * n);
    (*p)[old + sz * n] = '\0';
    return sz * n;
}

static long
post(const council_mockllm *m, const char *body, char **out)
{
    char url[256];
    CURL *c = curl_easy_init();
    long status = 0;

    ASSERT_NOT_NULL(c);
    *out = NULL;
    snprintf(url, sizeof(url), "%s/messages", council_mockllm_base_url(m));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    ASSERT_EQ_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    ASSERT_NOT_NULL(*out);
    return status;
}

TEST(whole_message_and_error_bodies)
{
    env e;
    got a;
    char *body = NULL;
    json_t *j, *err;

    ASSERT_EQ_INT(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    env_open(&e, "model=boom:http=500");
    call(&e, COUNCIL__PROVIDER_ANTHROPIC, "mock-small", 0, &a);
    ASSERT_OK(a.err);

    /* stream absent: a whole Message with the same text; system as an
     * array of text blocks is the same prompt. */
    ASSERT_EQ_INT(post(e.m,
                       "{\"model\":\"mock-small\",\"max_tokens\":1024,"
                       "\"system\":[{\"type\":\"text\",\"text\":\"You are a "
                       "careful judge.\"}],\"messages\":[{\"role\":\"user\","
                       "\"content\":\"Which is larger, 9.11 or 9.9?\"}]}",
                       &body),
                  200);
    j = json_loads(body, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")), "message");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "role")), "assistant");
    ASSERT(strncmp(json_string_value(json_object_get(j, "id")), "msg_mock",
                   8) == 0);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(
            json_array_get(json_object_get(j, "content"), 0), "text")),
        a.text);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "stop_reason")),
                  "end_turn");
    ASSERT_EQ_INT(json_integer_value(json_object_get(
                      json_object_get(j, "usage"), "output_tokens")),
                  a.usage.completion_tokens);
    ASSERT_EQ_INT(json_integer_value(json_object_get(
                      json_object_get(j, "usage"), "input_tokens")),
                  a.usage.prompt_tokens);
    json_decref(j);
    free(body);

    /* max_tokens is required, as by the real API. */
    ASSERT_EQ_INT(post(e.m,
                       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"hi\"}]}",
                       &body),
                  400);
    j = json_loads(body, 0, NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")), "error");
    err = json_object_get(j, "error");
    ASSERT_STR_EQ(json_string_value(json_object_get(err, "type")),
                  "invalid_request_error");
    ASSERT_STR_CONTAINS(json_string_value(json_object_get(err, "message")),
                        "max_tokens");
    json_decref(j);
    free(body);

    ASSERT_EQ_INT(post(e.m,
                       "{\"model\":\"boom\",\"max_tokens\":5,\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"hi\"}]}",
                       &body),
                  500);
    j = json_loads(body, 0, NULL);
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_object_get(j, "error"), "type")),
        "api_error");
    json_decref(j);
    free(body);
    free(a.text);
    env_close(&e);
    curl_global_cleanup();
}
