/* SPDX-License-Identifier: MIT */
/* The mock LLM server over real HTTP (libcurl, loopback only): streamed and
 * whole answers agree, determinism, rankings, every fault kind, latency,
 * many concurrent slow streams, bad requests and bad specs, clean close,
 * and the `council mock-llm` command.
 * TEST_LABELS: threaded */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "runner.h"

extern char **environ;

/* ---- helpers ------------------------------------------------------------ */

typedef struct resp {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char *hdrs;
    size_t hlen;
    double ttfb_s; /* time to the first byte (headers included) */
    double total_s;
} resp;

static void
append(char **p, size_t *len, const char *d, size_t n)
{
    *p = realloc(*p, *len + n + 1);
    if (*p == NULL)
        FAIL("out of memory");
    memcpy(*p + *len, d, n);
    *len += n;
    (*p)[*len] = '\0';
}

static size_t
on_body(char *d, size_t sz, size_t n, void *ud)
{
    resp *r = ud;

    append(&r->body, &r->len, d, sz * n);
    return sz * n;
}

static size_t
on_header(char *d, size_t sz, size_t n, void *ud)
{
    resp *r = ud;

    append(&r->hdrs, &r->hlen, d, sz * n);
    return sz * n;
}

static void
resp_free(resp *r)
{
    free(r->body);
    free(r->hdrs);
    memset(r, 0, sizeof(*r));
}

static CURL *
easy_for(const council_mockllm *m, const char *path, const char *body, resp *r,
         struct curl_slist *hdrs)
{
    char url[256];
    CURL *c = curl_easy_init();

    ASSERT_NOT_NULL(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", council_mockllm_base_url(m), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    return c;
}

static void
easy_done(CURL *c, resp *r)
{
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME, &r->ttfb_s);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->total_s);
    curl_easy_cleanup(c);
}

/* One request.  body NULL = GET. */
static void
http(const council_mockllm *m, const char *path, const char *body, resp *r)
{
    CURL *c = easy_for(m, path, body, r, NULL);

    r->rc = curl_easy_perform(c);
    easy_done(c, r);
}

static char *
chat_body(const char *model, const char *content, int stream, int usage)
{
    json_t *o =
        json_pack("{s:s, s:[{s:s, s:s}], s:b}", "model", model, "messages",
                  "role", "user", "content", content, "stream", stream);
    char *s;

    ASSERT_NOT_NULL(o);
    if (usage)
        json_object_set_new(o, "stream_options",
                            json_pack("{s:b}", "include_usage", 1));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    ASSERT_NOT_NULL(s);
    return s;
}

static council_mockllm *
open_mock(uint64_t seed, uint64_t latency_ms, double tps, const char *faults)
{
    council_mockllm_opts o;
    council_mockllm *m = NULL;
    council_diag d;

    memset(&o, 0, sizeof(o));
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    o.listen = "127.0.0.1:0";
    o.seed = seed;
    o.latency_ms = latency_ms;
    o.tokens_per_sec = tps;
    o.faults = faults;
    memset(&d, 0, sizeof(d));
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("council_mockllm_open: %s", d.msg);
    ASSERT_NOT_NULL(m);
    return m;
}

/* A parsed SSE stream. */
typedef struct sse {
    json_t *chunks; /* array of the data: JSON objects, in order */
    int malformed;  /* data: events that are not JSON */
    int done;       /* saw data: [DONE] */
    int done_last;  /* ... and it was the last event */
    int events;
    char *content; /* concatenated delta.content */
    size_t content_len;
    int content_chunks;
    json_t *usage;      /* the usage chunk's usage, borrowed from chunks */
    const char *finish; /* finish_reason seen, borrowed */
    json_t *error;      /* a data: {"error":...} event, borrowed */
} sse;

static void
sse_parse(const char *body, sse *s)
{
    const char *p = body;

    memset(s, 0, sizeof(*s));
    s->chunks = json_array();
    s->content = calloc(1, 1);
    while (*p != '\0') {
        const char *end = strstr(p, "\n\n");
        size_t n;
        json_t *j;

        if (end == NULL)
            break; /* a torn last event is not an event */
        n = (size_t)(end - p);
        if (n < 6 || memcmp(p, "data: ", 6) != 0)
            FAIL("SSE event without 'data: ': %.*s", (int)n, p);
        s->events++;
        s->done_last = 0;
        if (n == 12 && memcmp(p + 6, "[DONE]", 6) == 0) {
            s->done = 1;
            s->done_last = 1;
        } else if ((j = json_loadb(p + 6, n - 6, 0, NULL)) == NULL) {
            s->malformed++;
        } else {
            json_t *ch = json_object_get(j, "choices");
            json_t *c0 = json_array_get(ch, 0);
            json_t *delta = json_object_get(c0, "delta");
            json_t *content = json_object_get(delta, "content");
            json_t *fin = json_object_get(c0, "finish_reason");

            json_array_append_new(s->chunks, j);
            if (json_object_get(j, "error") != NULL)
                s->error = json_object_get(j, "error");
            if (json_object_get(j, "usage") != NULL) {
                ASSERT_EQ_U64(json_array_size(ch), 0);
                s->usage = json_object_get(j, "usage");
            }
            if (json_is_string(content) && json_string_length(content) > 0) {
                append(&s->content, &s->content_len, json_string_value(content),
                       json_string_length(content));
                s->content_chunks++;
            }
            if (json_is_string(fin))
                s->finish = json_string_value(fin);
        }
        p = end + 2;
    }
}

static void
sse_free(sse *s)
{
    json_decref(s->chunks);
    free(s->content);
}

/* The content of a non-streamed answer (a copy). */
static char *
whole_content(const char *body, json_t **usage_out)
{
    json_t *j = json_loads(body, 0, NULL);
    json_t *msg;
    char *s;

    if (j == NULL)
        FAIL("not JSON: %s", body);
    msg = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                        "message"),
        "content");
    ASSERT(json_is_string(msg));
    ASSERT_STR_EQ(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                            "message"),
            "role")),
        "assistant");
    s = strdup(json_string_value(msg));
    if (usage_out != NULL)
        *usage_out = json_incref(json_object_get(j, "usage"));
    json_decref(j);
    return s;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
setup(void)
{
    ASSERT_EQ_INT(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void
teardown(council_mockllm *m)
{
    council_mockllm_close(m);
    curl_global_cleanup();
}

/* ---- answers ------------------------------------------------------------ */

TEST(stream_matches_whole_answer)
{
    council_mockllm *m;
    resp w, s1, s2;
    sse a, b;
    char *body, *content;
    json_t *usage = NULL, *first;
    size_t i;

    setup();
    m = open_mock(42, 0, 0, NULL);
    body = chat_body("gpt-mock", "What is a council?", 0, 0);
    http(m, "/chat/completions", body, &w);
    free(body);
    ASSERT_EQ_INT(w.rc, CURLE_OK);
    ASSERT_EQ_INT(w.status, 200);
    ASSERT_STR_CONTAINS(w.hdrs, "application/json");
    ASSERT_STR_CONTAINS(w.body, "\"object\":\"chat.completion\"");
    ASSERT_STR_CONTAINS(w.body, "\"finish_reason\":\"stop\"");
    content = whole_content(w.body, &usage);
    ASSERT(strlen(content) > 50);

    /* Streamed with usage. */
    body = chat_body("gpt-mock", "What is a council?", 1, 1);
    http(m, "/chat/completions", body, &s1);
    free(body);
    ASSERT_EQ_INT(s1.rc, CURLE_OK);
    ASSERT_EQ_INT(s1.status, 200);
    ASSERT_STR_CONTAINS(s1.hdrs, "text/event-stream");
    sse_parse(s1.body, &a);
    ASSERT_EQ_INT(a.malformed, 0);
    ASSERT(a.done && a.done_last);
    ASSERT_STR_EQ(a.content, content);
    ASSERT_STR_EQ(a.finish, "stop");
    first = json_array_get(a.chunks, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(first, "object")),
                  "chat.completion.chunk");
    ASSERT_STR_EQ(json_string_value(json_object_get(first, "model")),
                  "gpt-mock");
    ASSERT_STR_EQ(
        json_string_value(json_object_get(
            json_object_get(
                json_array_get(json_object_get(first, "choices"), 0), "delta"),
            "role")),
        "assistant");
    for (i = 0; i < json_array_size(a.chunks); i++) {
        json_t *c = json_array_get(a.chunks, i);

        ASSERT(json_is_integer(json_object_get(c, "created")));
        ASSERT_STR_EQ(json_string_value(json_object_get(c, "id")),
                      json_string_value(json_object_get(first, "id")));
    }
    ASSERT_NOT_NULL(a.usage);
    /* The usage chunk is the last before [DONE]. */
    ASSERT(json_array_get(a.chunks, json_array_size(a.chunks) - 1) != NULL);
    ASSERT_NOT_NULL(json_object_get(
        json_array_get(a.chunks, json_array_size(a.chunks) - 1), "usage"));
    ASSERT_EQ_U64(
        json_integer_value(json_object_get(a.usage, "completion_tokens")),
        a.content_chunks);
    ASSERT_EQ_U64(json_integer_value(json_object_get(a.usage, "prompt_tokens")),
                  4); /* "What is a council?" */
    ASSERT_EQ_U64(json_integer_value(json_object_get(a.usage, "total_tokens")),
                  4 + a.content_chunks);
    ASSERT(json_equal(a.usage, usage));

    /* Without include_usage: no usage chunk, same content. */
    body = chat_body("gpt-mock", "What is a council?", 1, 0);
    http(m, "/chat/completions", body, &s2);
    free(body);
    sse_parse(s2.body, &b);
    ASSERT(b.done && b.done_last);
    ASSERT_NULL(b.usage);
    ASSERT_STR_EQ(b.content, content);
    ASSERT_EQ_U64(council_mockllm_requests(m), 3);

    json_decref(usage);
    free(content);
    sse_free(&a);
    sse_free(&b);
    resp_free(&w);
    resp_free(&s1);
    resp_free(&s2);
    teardown(m);
}

TEST(max_tokens_truncates)
{
    council_mockllm *m;
    resp w, s;
    sse a;
    const char *body = "{\"model\":\"x\",\"max_tokens\":3,\"stream\":true,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    setup();
    m = open_mock(1, 0, 0, NULL);
    http(m, "/chat/completions", body, &s);
    sse_parse(s.body, &a);
    ASSERT_EQ_INT(a.content_chunks, 3);
    ASSERT_STR_EQ(a.finish, "length");
    ASSERT(a.done_last);
    http(m, "/chat/completions",
         "{\"model\":\"x\",\"max_tokens\":\"3\",\"messages\":[]}", &w);
    ASSERT_EQ_INT(w.status, 400);
    sse_free(&a);
    resp_free(&s);
    resp_free(&w);
    teardown(m);
}

static char *
answer_of(council_mockllm *m, const char *model, const char *q)
{
    resp w;
    char *body = chat_body(model, q, 0, 0), *c;

    http(m, "/chat/completions", body, &w);
    free(body);
    ASSERT_EQ_INT(w.status, 200);
    c = whole_content(w.body, NULL);
    resp_free(&w);
    return c;
}

TEST(deterministic_by_seed_model_and_prompt)
{
    council_mockllm *m1, *m2, *m3;
    char *a, *b, *c, *d, *e;
    resp r1, r2;
    char *body;

    setup();
    m1 = open_mock(7, 0, 0, NULL);
    m2 = open_mock(7, 0, 0, NULL);
    m3 = open_mock(8, 0, 0, NULL);
    a = answer_of(m1, "alpha", "Same question");
    b = answer_of(m2, "alpha", "Same question");
    c = answer_of(m3, "alpha", "Same question");
    d = answer_of(m1, "beta", "Same question");
    e = answer_of(m1, "alpha", "Other question");
    ASSERT_STR_EQ(a, b);
    ASSERT(strcmp(a, c) != 0);
    ASSERT(strcmp(a, d) != 0);
    ASSERT(strcmp(a, e) != 0);

    /* Streams from two servers with the same seed: the same bytes, once
     * the wall-clock "created" stamps are blanked. */
    body = chat_body("alpha", "Same question", 1, 1);
    http(m1, "/chat/completions", body, &r1);
    http(m2, "/chat/completions", body, &r2);
    free(body);
    {
        char *p;

        for (p = r1.body; (p = strstr(p, "\"created\":")) != NULL; p++)
            memset(p + 10, '0', 10);
        for (p = r2.body; (p = strstr(p, "\"created\":")) != NULL; p++)
            memset(p + 10, '0', 10);
    }
    ASSERT_STR_EQ(r1.body, r2.body);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    resp_free(&r1);
    resp_free(&r2);
    council_mockllm_close(m2);
    council_mockllm_close(m3);
    teardown(m1);
}

/* Labels of the FINAL RANKING block, in rank order. */
static size_t
ranking_of(const char *text, char *out)
{
    const char *p = strstr(text, "FINAL RANKING:");
    size_t n = 0;
    int rank;
    char label;
    int used;

    ASSERT_NOT_NULL(p);
    p += strlen("FINAL RANKING:");
    while (*p == '\n' &&
           sscanf(p + 1, "%d. Response %c%n", &rank, &label, &used) == 2) {
        ASSERT_EQ_INT(rank, (int)n + 1);
        out[n++] = label;
        p += 1 + used;
    }
    ASSERT_EQ_INT(*p, '\0'); /* the block ends the answer */
    return n;
}

TEST(ranking_is_a_permutation_of_the_labels)
{
    static const char prompt[] =
        "Here are the answers.\n\n"
        "Response B:\nParis is the capital.\n\n"
        "Response D:\nIt is Paris.\n\n"
        "Response A:\nLyon.\n\n"
        "Response C:\nParis, France.\n\n"
        "Evaluate each, then end with FINAL RANKING: and a numbered list.";
    council_mockllm *m;
    char *text, *plain;
    char got[26];
    size_t n, i;
    int seen[26] = {0};
    uint64_t seed;

    setup();
    for (seed = 1; seed <= 4; seed++) {
        m = open_mock(seed, 0, 0, NULL);
        text = answer_of(m, "judge", prompt);
        n = ranking_of(text, got);
        ASSERT_EQ_INT(n, 4);
        memset(seen, 0, sizeof(seen));
        for (i = 0; i < n; i++) {
            ASSERT(got[i] >= 'A' && got[i] <= 'D');
            ASSERT_EQ_INT(seen[got[i] - 'A'], 0);
            seen[got[i] - 'A'] = 1;
        }
        free(text);
        council_mockllm_close(m);
    }
    /* No labels: an ordinary answer. */
    m = open_mock(1, 0, 0, NULL);
    plain = answer_of(m, "judge", "Give me a FINAL RANKING of nothing.");
    ASSERT_NULL(strstr(plain, "FINAL RANKING"));
    free(plain);
    teardown(m);
}

/* ---- faults ------------------------------------------------------------- */

/* think=DUR: reasoning deltas every beat (ceil(think / beat) of them),
 * then the same answer as without; usage counts them as OpenAI does. */
TEST(fault_think_shapes)
{
    council_mockllm *m;
    resp r;
    sse a;
    json_t *usage = NULL, *j, *msg, *ch;
    char *body, *content;
    size_t i, reasoning = 0;

    setup();
    m = open_mock(1, 0, 0, "model=th:think=700ms,beat=200ms");
    body = chat_body("th", "Tell me something.", 1, 1);
    http(m, "/chat/completions", body, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT(r.total_s >= 0.7);
    ASSERT(r.ttfb_s < 0.5); /* the reasoning streams at once */
    sse_parse(r.body, &a);
    ASSERT(a.done_last);
    json_array_foreach (a.chunks, i, ch) {
        json_t *d = json_object_get(
            json_array_get(json_object_get(ch, "choices"), 0), "delta");
        if (json_object_get(d, "reasoning_content") != NULL) {
            ASSERT_NULL(json_object_get(d, "content"));
            reasoning++;
        }
    }
    ASSERT_EQ_U64(reasoning, 4);
    ASSERT_EQ_U64(
        json_integer_value(json_object_get(a.usage, "completion_tokens")),
        a.content_chunks + 4);
    ASSERT_EQ_U64(json_integer_value(json_object_get(
                      json_object_get(a.usage, "completion_tokens_details"),
                      "reasoning_tokens")),
                  4);
    resp_free(&r);
    /* The whole answer: the same content, the reasoning beside it. */
    free(body);
    body = chat_body("th", "Tell me something.", 0, 0);
    http(m, "/chat/completions", body, &r);
    free(body);
    ASSERT(r.ttfb_s >= 0.7);
    content = whole_content(r.body, &usage);
    ASSERT_STR_EQ(content, a.content);
    ASSERT_EQ_U64(
        json_integer_value(json_object_get(usage, "completion_tokens")),
        a.content_chunks + 4);
    j = json_loads(r.body, 0, NULL);
    msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                          "message");
    ASSERT_STR_EQ(json_string_value(json_object_get(msg, "reasoning_content")),
                  "Reasoning step 1. Reasoning step 2. Reasoning step 3. "
                  "Reasoning step 4.");
    json_decref(j);
    json_decref(usage);
    free(content);
    sse_free(&a);
    resp_free(&r);
    teardown(m);
}

/* no_usage: a normal answer without usage; cost=USD: usage with "cost". */
TEST(fault_no_usage_and_cost)
{
    council_mockllm *m;
    resp r;
    sse a;
    json_t *usage = NULL;
    char *body, *content;

    setup();
    m = open_mock(1, 0, 0, "model=q:no_usage; model=c:cost=0.0025");
    body = chat_body("q", "Tell me something.", 1, 1);
    http(m, "/chat/completions", body, &r);
    free(body);
    ASSERT_EQ_INT(r.status, 200);
    sse_parse(r.body, &a);
    ASSERT(a.done_last);
    ASSERT_STR_EQ(a.finish, "stop");
    ASSERT(a.content_chunks > 5);
    ASSERT_NULL(a.usage); /* asked for, not sent */
    ASSERT_NULL(strstr(r.body, "usage"));
    sse_free(&a);
    resp_free(&r);
    body = chat_body("q", "Tell me something.", 0, 0);
    http(m, "/chat/completions", body, &r);
    free(body);
    ASSERT_EQ_INT(r.status, 200);
    content = whole_content(r.body, &usage);
    ASSERT(strlen(content) > 0);
    ASSERT_NULL(usage);
    free(content);
    resp_free(&r);

    body = chat_body("c", "Tell me something.", 1, 1);
    http(m, "/chat/completions", body, &r);
    free(body);
    sse_parse(r.body, &a);
    ASSERT(a.done_last);
    ASSERT_NOT_NULL(a.usage);
    ASSERT(json_real_value(json_object_get(a.usage, "cost")) == 0.0025);
    ASSERT_EQ_U64(
        json_integer_value(json_object_get(a.usage, "completion_tokens")),
        a.content_chunks);
    sse_free(&a);
    resp_free(&r);
    body = chat_body("c", "Tell me something.", 0, 0);
    http(m, "/chat/completions", body, &r);
    free(body);
    content = whole_content(r.body, &usage);
    ASSERT(json_real_value(json_object_get(usage, "cost")) == 0.0025);
    json_decref(usage);
    free(content);
    resp_free(&r);
    teardown(m);
}

static void
chat(council_mockllm *m, const char *model, int stream, resp *r)
{
    char *body = chat_body(model, "Tell me something.", stream, 1);

    http(m, "/chat/completions", body, r);
    free(body);
}

TEST(fault_http_and_retry_after)
{
    council_mockllm *m;
    resp r;
    json_t *j;

    setup();
    m = open_mock(1, 0, 0,
                  "model=e503:http=503; model=rl:http=429;"
                  "model=rl7:http=429,retry_after=7");
    chat(m, "e503", 1, &r);
    ASSERT_EQ_INT(r.status, 503);
    j = json_loads(r.body, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT(json_is_string(
        json_object_get(json_object_get(j, "error"), "message")));
    ASSERT_STR_EQ(
        json_string_value(json_object_get(json_object_get(j, "error"), "type")),
        "server_error");
    ASSERT_NULL(strstr(r.hdrs, "Retry-After"));
    json_decref(j);
    resp_free(&r);

    chat(m, "rl", 0, &r);
    ASSERT_EQ_INT(r.status, 429);
    ASSERT_STR_CONTAINS(r.hdrs, "Retry-After: 1\r\n");
    ASSERT_STR_CONTAINS(r.body, "\"code\":\"rate_limit_exceeded\"");
    resp_free(&r);
    chat(m, "rl7", 1, &r);
    ASSERT_EQ_INT(r.status, 429);
    ASSERT_STR_CONTAINS(r.hdrs, "Retry-After: 7\r\n");
    resp_free(&r);
    chat(m, "fine", 1, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    teardown(m);
}

TEST(fault_disconnect)
{
    council_mockllm *m;
    resp r;
    sse s;

    setup();
    m = open_mock(1, 0, 0, "model=d2:disconnect=2; model=d:disconnect");
    chat(m, "d2", 1, &r);
    /* A chunked stream cut short: curl reports the truncation. */
    ASSERT(r.rc == CURLE_PARTIAL_FILE || r.rc == CURLE_RECV_ERROR);
    ASSERT_EQ_INT(r.status, 200);
    sse_parse(r.body, &s);
    ASSERT_EQ_INT(s.content_chunks, 2);
    ASSERT_EQ_INT(s.done, 0);
    ASSERT_NULL(s.finish);
    sse_free(&s);
    resp_free(&r);

    chat(m, "d", 1, &r);
    ASSERT_EQ_INT(r.rc, CURLE_GOT_NOTHING);
    resp_free(&r);
    chat(m, "d", 0, &r);
    ASSERT_EQ_INT(r.rc, CURLE_GOT_NOTHING);
    resp_free(&r);
    teardown(m);
}

TEST(fault_malformed_error_in_stream_no_done)
{
    council_mockllm *m;
    resp r;
    sse s;

    setup();
    m = open_mock(1, 0, 0,
                  "model=mal:malformed,after=3;model=eis:error_in_stream=1;"
                  "model=nd:no_done");
    chat(m, "mal", 1, &r);
    ASSERT_EQ_INT(r.rc, CURLE_OK);
    ASSERT_EQ_INT(r.status, 200);
    sse_parse(r.body, &s);
    ASSERT_EQ_INT(s.malformed, 1);
    ASSERT(s.done_last);
    sse_free(&s);
    resp_free(&r);
    chat(m, "mal", 0, &r); /* whole answer: a body that is not JSON */
    ASSERT_EQ_INT(r.status, 200);
    {
        json_t *j = json_loads(r.body, 0, NULL);

        ASSERT_NULL(j);
    }
    resp_free(&r);

    chat(m, "eis", 1, &r);
    ASSERT_EQ_INT(r.rc, CURLE_OK);
    ASSERT_EQ_INT(r.status, 200);
    sse_parse(r.body, &s);
    ASSERT_NOT_NULL(s.error);
    ASSERT(json_is_string(json_object_get(s.error, "message")));
    ASSERT_EQ_INT(s.content_chunks, 1);
    ASSERT_EQ_INT(s.done, 0);
    sse_free(&s);
    resp_free(&r);

    chat(m, "nd", 1, &r);
    ASSERT_EQ_INT(r.rc, CURLE_OK);
    sse_parse(r.body, &s);
    ASSERT(s.content_chunks > 20);
    ASSERT_EQ_INT(s.done, 0);
    ASSERT_NULL(s.finish);
    ASSERT_NULL(s.usage);
    sse_free(&s);
    resp_free(&r);
    teardown(m);
}

TEST(fault_stall)
{
    council_mockllm *m;
    resp r;
    sse s;

    setup();
    m = open_mock(1, 0, 0, "model=s:stall=400ms; model=s2:stall=300,after=2");
    chat(m, "s", 1, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT(r.ttfb_s >= 0.4);
    resp_free(&r);
    chat(m, "s2", 1, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT(r.ttfb_s < 0.3); /* the headers and first chunks come at once */
    ASSERT(r.total_s >= 0.3);
    sse_parse(r.body, &s);
    ASSERT(s.done_last);
    sse_free(&s);
    resp_free(&r);
    teardown(m);
}

TEST(fault_selectors_rate_nth_every)
{
    council_mockllm *m;
    resp r;
    int i, fails_a = 0, pattern_a[40], pattern_b[40];

    setup();
    /* nth: only the 2nd chat request; every: each 3rd. */
    m = open_mock(1, 0, 0, "nth=2:http=500;model=ev&every=3:http=502");
    chat(m, "x", 0, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    chat(m, "x", 0, &r);
    ASSERT_EQ_INT(r.status, 500);
    resp_free(&r);
    chat(m, "ev", 0, &r); /* 3rd */
    ASSERT_EQ_INT(r.status, 502);
    resp_free(&r);
    chat(m, "ev", 0, &r); /* 4th */
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    council_mockllm_close(m);

    /* rate: the same seed fails the same requests. */
    m = open_mock(99, 0, 0, "rate=0.5:http=503");
    for (i = 0; i < 40; i++) {
        chat(m, "x", 0, &r);
        pattern_a[i] = r.status == 503;
        fails_a += pattern_a[i];
        resp_free(&r);
    }
    council_mockllm_close(m);
    m = open_mock(99, 0, 0, "rate=0.5:http=503");
    for (i = 0; i < 40; i++) {
        chat(m, "x", 0, &r);
        pattern_b[i] = r.status == 503;
        resp_free(&r);
    }
    ASSERT(memcmp(pattern_a, pattern_b, sizeof(pattern_a)) == 0);
    ASSERT(fails_a > 5 && fails_a < 35);
    teardown(m);
}

TEST(bad_fault_specs_and_listen)
{
    static const struct {
        const char *spec;
        int col;
        const char *needle;
    } bad[] = {
        {"model=x:explode", 9, "unknown fault"},
        {"http=200", 6, "400 to 599"},
        {"always:http=503;rate=2:http=500", 22, "rate="},
        {"bogus=1:http=500", 1, "unknown selector"},
        {"always:stall=soon", 14, "duration"},
        {"always:http=503,after=2", 17, "after="},
        {"always:disconnect,retry_after=1", 19, "retry_after"},
        {"model=:http=500", 7, "glob"},
        {"always:", 8, "missing fault"},
        {"nth=0:http=500", 5, "whole number"},
        {"always:malformed,", 18, "empty parameter"},
        {"always:cost=-1", 13, "cost= needs"},
        {"always:cost=1e3", 13, "cost= needs"},
        {"always:cost=.", 13, "cost= needs"},
        {"always:cost", 12, "cost= needs"},
        {"always:no_usage=1", 17, "no_usage takes no value"},
        {"always:cost=0.5,after=1", 17, "after="},
        {"always:think", 13, "think= needs"},
        {"always:think=1s,beat=x", 22, "beat= needs"},
        {"always:think=1s,as=thoughts", 20, "as= needs"},
        {"always:http=503,beat=1s", 17, "beat= applies to think only"},
        {"always:think=1s,after=1", 17, "after="},
    };
    static const char *bad_listen[] = {
        "localhost:0", "127.0.0.1",   "127.0.0.1:99999",
        "1.2.3:80",    "127.0.0.1:x", "[::1:0",
        ":80",
    };
    council_mockllm_opts o;
    council_mockllm *m = NULL;
    council_diag d;
    size_t i;

    memset(&o, 0, sizeof(o));
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.faults = bad[i].spec;
        memset(&d, 0, sizeof(d));
        ASSERT_EQ_INT(council_mockllm_open(&o, &m, &d), COUNCIL_EINVAL);
        ASSERT_NULL(m);
        ASSERT_STR_CONTAINS(d.msg, bad[i].needle);
        ASSERT_STR_CONTAINS(d.msg, "at character");
        if (d.col != bad[i].col)
            FAIL("spec '%s': col %d, expected %d (%s)", bad[i].spec, d.col,
                 bad[i].col, d.msg);
        /* diag may be NULL. */
        ASSERT_EQ_INT(council_mockllm_open(&o, &m, NULL), COUNCIL_EINVAL);
    }
    o.faults = NULL;
    for (i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
        o.listen = bad_listen[i];
        memset(&d, 0, sizeof(d));
        ASSERT_EQ_INT(council_mockllm_open(&o, &m, &d), COUNCIL_EINVAL);
        ASSERT_STR_CONTAINS(d.msg, "listen address");
    }
    o.listen = NULL;
    o.version = 99;
    ASSERT_EQ_INT(council_mockllm_open(&o, &m, &d), COUNCIL_EINVAL);
    /* Good specs, NULL opts. */
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    o.faults = " model=llama3.1:8b:http=503 ; ; rate=0.25&model=g*:"
               "stall=2s,after=4;every=5:no_done;";
    ASSERT_OK(council_mockllm_open(&o, &m, &d));
    council_mockllm_close(m);
    o.faults = "model=bad-*:http=503;rate=0.1:disconnect=3"; /* council.h */
    ASSERT_OK(council_mockllm_open(&o, &m, &d));
    council_mockllm_close(m);
    ASSERT_OK(council_mockllm_open(NULL, &m, NULL));
    ASSERT(strncmp(council_mockllm_base_url(m), "http://127.0.0.1:", 17) == 0);
    council_mockllm_close(m);
    council_mockllm_close(NULL);
}

TEST(listen_port_in_use_is_an_error)
{
    council_mockllm_opts o;
    council_mockllm *m1, *m2 = NULL;
    council_diag d;
    char addr[64];
    const char *url;

    m1 = open_mock(1, 0, 0, NULL);
    url = council_mockllm_base_url(m1);
    snprintf(addr, sizeof(addr), "%s", url + strlen("http://"));
    *strrchr(addr, '/') = '\0';
    memset(&o, 0, sizeof(o));
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    o.listen = addr;
    memset(&d, 0, sizeof(d));
    ASSERT_EQ_INT(council_mockllm_open(&o, &m2, &d), COUNCIL_EIO);
    ASSERT_NULL(m2);
    ASSERT_STR_CONTAINS(d.msg, "in use");
    council_mockllm_close(m1);
}

/* ---- hostile and wrong requests ---------------------------------------- */

TEST(bad_requests)
{
    static const struct {
        const char *body;
        int status;
    } cases[] = {
        {"{bad", 400},
        {"[]", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400},
        {"{\"model\":\"\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         400},
        {"{\"model\":\"m\"}", 400},
        {"{\"model\":\"m\",\"messages\":[]}", 400},
        {"{\"model\":\"m\",\"messages\":\"hi\"}", 400},
        {"{\"model\":\"m\",\"messages\":[1]}", 400},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         400},
        {"{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         400},
        {"{\"model\":\"m\",\"stream_options\":3,\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         400},
        {"{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
         "\"\xff\xfe bad utf8\"}]}",
         400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"text\",\"text\":\"parts\"}]}]}",
         200},
        {"", 400},
    };
    council_mockllm *m;
    resp r;
    size_t i;
    char *big;

    setup();
    m = open_mock(1, 0, 0, NULL);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j, *err;

        http(m, "/chat/completions", cases[i].body, &r);
        if (r.status != cases[i].status)
            FAIL("case %zu: status %ld, expected %d: %s", i, r.status,
                 cases[i].status, r.body ? r.body : "");
        if (cases[i].status == 400) {
            j = json_loads(r.body, 0, NULL);
            ASSERT_NOT_NULL(j);
            err = json_object_get(j, "error");
            ASSERT_STR_EQ(json_string_value(json_object_get(err, "type")),
                          "invalid_request_error");
            ASSERT(json_is_null(json_object_get(err, "code")));
            ASSERT(json_is_string(json_object_get(err, "message")));
            json_decref(j);
        }
        resp_free(&r);
    }
    http(m, "/nope", NULL, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_STR_CONTAINS(r.body, "\"error\"");
    resp_free(&r);
    http(m, "/chat/completions", NULL, &r); /* GET */
    ASSERT_EQ_INT(r.status, 405);
    resp_free(&r);
    http(m, "/models", NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_STR_CONTAINS(r.body, "\"object\":\"list\"");
    resp_free(&r);
    {
        /* /healthz sits beside /v1. */
        char url[128];
        CURL *c;

        snprintf(url, sizeof(url), "%.*s/healthz",
                 (int)(strlen(council_mockllm_base_url(m)) - 3),
                 council_mockllm_base_url(m));
        c = curl_easy_init();
        memset(&r, 0, sizeof(r));
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        ASSERT_EQ_INT(curl_easy_perform(c), CURLE_OK);
        easy_done(c, &r);
        ASSERT_EQ_INT(r.status, 200);
        resp_free(&r);
    }

    /* 9 MiB: refused with 413, and the server lives on. */
    big = malloc(9u << 20);
    ASSERT_NOT_NULL(big);
    memset(big, 'a', 9u << 20);
    big[(9u << 20) - 1] = '\0';
    http(m, "/chat/completions", big, &r);
    ASSERT_EQ_INT(r.status, 413);
    resp_free(&r);
    free(big);
    chat(m, "still-alive", 0, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    teardown(m);
}

/* ---- time and load ------------------------------------------------------ */

TEST(latency_is_honoured)
{
    council_mockllm *m;
    resp r;
    double t0;

    setup();
    m = open_mock(1, 300, 0, NULL);
    t0 = now_s();
    chat(m, "x", 1, &r);
    ASSERT(now_s() - t0 >= 0.3);
    ASSERT(r.ttfb_s >= 0.3);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    t0 = now_s();
    chat(m, "x", 0, &r);
    ASSERT(now_s() - t0 >= 0.3);
    resp_free(&r);
    /* Non-chat endpoints answer at once. */
    t0 = now_s();
    http(m, "/models", NULL, &r);
    ASSERT(now_s() - t0 < 0.3);
    resp_free(&r);
    teardown(m);
}

TEST(tokens_per_sec_paces_the_stream)
{
    council_mockllm *m;
    resp r;
    sse s;
    const char *body = "{\"model\":\"x\",\"max_tokens\":6,\"stream\":true,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    setup();
    m = open_mock(1, 0, 20.0, NULL); /* 50 ms apart */
    http(m, "/chat/completions", body, &r);
    sse_parse(r.body, &s);
    ASSERT_EQ_INT(s.content_chunks, 6);
    ASSERT(s.done_last);
    ASSERT(r.total_s >= 0.25); /* 5 gaps of 50 ms */
    ASSERT(r.total_s < 2.0);
    sse_free(&s);
    resp_free(&r);
    teardown(m);
}

#define N_CONC 200

TEST_T(concurrent_slow_streams, 60)
{
    council_mockllm *m;
    CURLM *multi;
    CURL *h[N_CONC];
    resp r[N_CONC];
    char *body;
    int running = 0, i, ok = 0;
    double t0, dt;

    setup();
    m = open_mock(3, 1000, 50.0, NULL);
    multi = curl_multi_init();
    ASSERT_NOT_NULL(multi);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    body = chat_body("slow", "Many at once", 1, 1);
    for (i = 0; i < N_CONC; i++) {
        h[i] = easy_for(m, "/chat/completions", body, &r[i], NULL);
        curl_easy_setopt(h[i], CURLOPT_FORBID_REUSE, 1L);
        curl_multi_add_handle(multi, h[i]);
    }
    t0 = now_s();
    do {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    } while (running);
    dt = now_s() - t0;
    for (i = 0; i < N_CONC; i++) {
        sse s;

        easy_done(h[i], &r[i]);
        if (r[i].status == 200) {
            sse_parse(r[i].body, &s);
            ok += s.done_last && s.usage != NULL;
            sse_free(&s);
        }
        resp_free(&r[i]);
    }
    free(body);
    curl_multi_cleanup(multi);
    ASSERT_EQ_INT(ok, N_CONC);
    ASSERT_EQ_U64(council_mockllm_requests(m), N_CONC);
    /* 1 s latency plus about 1 s of paced tokens, all in parallel. */
    printf("  %d streams in %.2f s\n", N_CONC, dt);
    ASSERT(dt >= 1.0);
    ASSERT(dt < 15.0);
    teardown(m);
}

TEST(close_with_streams_in_flight)
{
    council_mockllm *m;
    CURLM *multi;
    CURL *h[20];
    resp r[20];
    char *body;
    int running = 0, i, still;
    double t0;

    setup();
    /* Half wait on latency, half are mid-stream at a slow pace. */
    m = open_mock(3, 0, 2.0, "model=late:stall=10s");
    multi = curl_multi_init();
    for (i = 0; i < 20; i++) {
        body = chat_body(i % 2 ? "late" : "paced", "q", 1, 0);
        h[i] = easy_for(m, "/chat/completions", body, &r[i], NULL);
        curl_easy_setopt(h[i], CURLOPT_COPYPOSTFIELDS, body);
        free(body);
        curl_multi_add_handle(multi, h[i]);
    }
    t0 = now_s();
    while (now_s() - t0 < 0.5) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    ASSERT_EQ_U64(council_mockllm_requests(m), 20);
    t0 = now_s();
    council_mockllm_close(m);
    ASSERT(now_s() - t0 < 2.0);
    /* Every client sees its connection end, none completes normally. */
    do {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    } while (running && now_s() - t0 < 10);
    ASSERT_EQ_INT(running, 0);
    still = 0;
    for (i = 0; i < 20; i++) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK)
                still++;
        }
        curl_multi_remove_handle(multi, h[i]);
        easy_done(h[i], &r[i]);
        ASSERT(r[i].body == NULL || strstr(r[i].body, "[DONE]") == NULL);
        resp_free(&r[i]);
    }
    ASSERT_EQ_INT(still, 0);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
}

/* ---- the command -------------------------------------------------------- */

TEST_T(cli_serves_and_stops_on_sigterm, 30)
{
    const char *bin = getenv("COUNCIL_BIN");
    char *argv[] = {"council", "mock-llm",  "--listen", "127.0.0.1:0", "--seed",
                    "5",       "--latency", "10ms",     NULL};
    char *bad[] = {"council", "mock-llm", "--latency", "soon", NULL};
    char line[256] = {0};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int pfd[2], status;
    FILE *f;
    council_mockllm *ref;
    resp r;
    char *body, *mine, *want;
    if (bin == NULL)
        FAIL("COUNCIL_BIN is not set (run through ctest)");
    setup();
    ASSERT_EQ_INT(pipe(pfd), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    f = fdopen(pfd[0], "r");
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
    ASSERT(strncmp(line, "mock-llm listening on http://127.0.0.1:", 39) == 0);
    line[strcspn(line, "\n")] = '\0';

    /* Same seed in-process: the same answer as the command's. */
    ref = open_mock(5, 0, 0, NULL);
    want = answer_of(ref, "m", "hello");
    {
        CURL *c = curl_easy_init();
        char url[300];

        snprintf(url, sizeof(url), "%s/chat/completions", line + 22);
        memset(&r, 0, sizeof(r));
        body = chat_body("m", "hello", 0, 0);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        ASSERT_EQ_INT(curl_easy_perform(c), CURLE_OK);
        easy_done(c, &r);
        free(body);
    }
    mine = whole_content(r.body, NULL);
    ASSERT_STR_EQ(mine, want);
    free(mine);
    free(want);
    resp_free(&r);

    ASSERT_EQ_INT(kill(pid, SIGTERM), 0);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);
    fclose(f);

    /* A usage error exits 2. */
    {
        posix_spawn_file_actions_t q;

        posix_spawn_file_actions_init(&q);
        posix_spawn_file_actions_addopen(&q, 2, "/dev/null", O_WRONLY, 0);
        ASSERT_EQ_INT(posix_spawn(&pid, bin, &q, NULL, bad, environ), 0);
        posix_spawn_file_actions_destroy(&q);
        ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
        ASSERT(WIFEXITED(status));
        ASSERT_EQ_INT(WEXITSTATUS(status), 2);
    }
    teardown(ref);
}
