/* SPDX-License-Identifier: MIT */
/*
 * Retries with backoff and the max_parallel queue of the provider layer,
 * over real sockets against the raw scripted server (which counts requests
 * and the most it had in flight), and once through a whole council against
 * the in-process mock LLM.  Each case opens its own loop, council__http and
 * server and drains and closes them all at the end.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "core/alloc.h"
#include "provider/call.h"
#include "provider/provider.h"
#include "rawhttp.h"
#include "runner.h"
#include "strategy_fixture.h"

#define HEAD_SSE                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"                   \
    "Connection: close\r\n\r\n"
#define ROLE_CHUNK                                                             \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},"     \
    "\"finish_reason\":null}]}\n\n"
#define CHUNK(s)                                                               \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" s "\"},"      \
    "\"finish_reason\":null}]}\n\n"
#define STOP_CHUNK                                                             \
    "data: {\"choices\":[{\"index\":0,\"delta\":{},"                           \
    "\"finish_reason\":\"stop\"}]}\n\n"
#define NORMAL HEAD_SSE ROLE_CHUNK CHUNK("Hello") STOP_CHUNK "data: [DONE]\n\n"

#define H503                                                                   \
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"   \
    "Connection: close\r\nContent-Length: 58\r\n\r\n"                          \
    "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}"

typedef struct got {
    int n_done, order;
    council_err err;
    council__call_errkind kind;
    long status;
    char msg[512];
    int retryable, attempts;
    uint64_t latency_ms;
    int n_deltas;
    council__chat *call;
} got;

typedef struct env {
    uv_loop_t loop;
    council__http *h;
    rawhttp *srv;
    char base[64];
    int closed, n_done;
} env;

static env *cur_env;

static uint64_t
slack_ms(void)
{
    const char *m = getenv("COUNCIL_TEST_TIMEOUT_MULTIPLIER");
    double x = m != NULL ? strtod(m, NULL) : 1.0;

    return (uint64_t)(150 * (x > 1.0 ? x : 1.0));
}

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
    g->order = cur_env->n_done++;
    g->err = r->err;
    g->kind = r->kind;
    g->status = r->http_status;
    g->retryable = r->retryable;
    g->attempts = r->attempts;
    g->latency_ms = r->latency_ms;
    snprintf(g->msg, sizeof(g->msg), "%s", r->message);
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "on_done: %s attempts=%d latency=%llu msg=\"%s\"\n",
                council__call_errkind_name(r->kind), r->attempts,
                (unsigned long long)r->latency_ms, r->message);
}

static void
env_open(env *e)
{
    memset(e, 0, sizeof(*e));
    ASSERT_EQ_INT(uv_loop_init(&e->loop), 0);
    ASSERT_OK(council__http_open(&e->loop, &e->h));
    e->srv = rawhttp_start();
    snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d/v1",
             rawhttp_port(e->srv));
    cur_env = e;
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
    rawhttp_stop(e->srv);
}

static const council_message msgs[] = {{"user", "Say hello."}};

static council__chat_req
req_retry(int retries, uint64_t base_ms)
{
    council__chat_req r = {.model = "m",
                           .messages = msgs,
                           .n_messages = 1,
                           .connect_timeout_ms = 2000,
                           .first_byte_timeout_ms = 3000,
                           .idle_timeout_ms = 3000,
                           .total_timeout_ms = 8000,
                           .retries = retries,
                           .backoff_base_ms = base_ms,
                           .jitter_seed = 42};
    return r;
}

static void
start_cfg(env *e, got *g, const council__chat_req *req, int max_parallel)
{
    council__provider_cfg cfg = {COUNCIL__PROVIDER_OPENAI, e->base, "sk-x",
                                 max_parallel};
    council__chat_cbs cbs = {on_delta, on_done};

    ASSERT_OK(council__chat_start(e->h, &cfg, req, &cbs, g, &g->call));
}

static void
wait_done(env *e, got *g)
{
    while (g->n_done == 0)
        uv_run(&e->loop, UV_RUN_ONCE);
}

/* One call with these retries against the server as scripted. */
static void
run_one(env *e, got *g, int retries, uint64_t base_ms)
{
    council__chat_req req = req_retry(retries, base_ms);

    start_cfg(e, g, &req, 0);
    wait_done(e, g);
}

TEST(backoff_is_full_jitter_and_seeded)
{
    uint64_t a = 7, b = 7, x, y, first = UINT64_MAX;
    int k, i, differ = 0;

    for (k = 1; k <= 8; k++) {
        uint64_t ceil = 100u << (k - 1);
        if (ceil > 2000)
            ceil = 2000;
        for (i = 0; i < 50; i++) {
            x = council__backoff_ms(100, 2000, k, &a);
            y = council__backoff_ms(100, 2000, k, &b);
            ASSERT_EQ_U64(x, y);
            ASSERT(x <= ceil);
            if (first == UINT64_MAX)
                first = x;
            if (x != first)
                differ = 1;
        }
    }
    ASSERT(differ);
    /* Defaults: 500 ms base, 20 s cap. */
    for (i = 0; i < 100; i++) {
        ASSERT(council__backoff_ms(0, 0, 1, &a) <= 500);
        ASSERT(council__backoff_ms(0, 0, 30, &a) <= 20000);
    }
}

TEST_T(http_503_then_200_after_one_backoff, 20)
{
    env e;
    got g = {0};
    council__chat_req req = req_retry(2, 400);
    uint64_t seed = 0, s, delay = 0;

    /* A seed whose first draw is a delay worth measuring. */
    while (delay < 150) {
        s = ++seed;
        delay = council__backoff_ms(400, 0, 1, &s);
    }
    req.jitter_seed = seed;
    env_open(&e);
    rawhttp_reply_nth(e.srv, 1, H503, RAWHTTP_CLOSE);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    start_cfg(&e, &g, &req, 0);
    wait_done(&e, &g);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.attempts, 2);
    ASSERT_EQ_INT(g.n_deltas, 1);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 2);
    /* The same seed gives the delay the call waited. */
    if (g.latency_ms < delay || g.latency_ms > delay + slack_ms())
        FAIL("latency %llu ms, backoff %llu ms",
             (unsigned long long)g.latency_ms, (unsigned long long)delay);
    env_close(&e);
}

TEST_T(http_429_retry_after_is_honoured, 20)
{
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_reply_nth(
        e.srv, 1,
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n"
        "Content-Length: 50\r\n\r\n"
        "{\"error\":{\"message\":\"slow down\",\"type\":\"x\"}}  ",
        RAWHTTP_CLOSE);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    run_one(&e, &g, 1, 10); /* backoff <= 10 ms: Retry-After decides */
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.attempts, 2);
    if (g.latency_ms < 1000 || g.latency_ms > 1100 + slack_ms())
        FAIL("latency %llu ms, Retry-After 1 s",
             (unsigned long long)g.latency_ms);
    env_close(&e);
}

TEST_T(http_401_is_never_retried, 20)
{
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_reply(
        e.srv,
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: "
        "application/json\r\nConnection: close\r\n"
        "Content-Length: 56\r\n\r\n"
        "{\"error\":{\"message\":\"bad key\",\"type\":\"auth_error\"}}"
        "    ",
        RAWHTTP_CLOSE);
    run_one(&e, &g, 3, 10);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.status, 401);
    ASSERT_EQ_INT(g.attempts, 1);
    ASSERT_EQ_INT(g.retryable, 0);
    ASSERT_STR_EQ(g.msg, "HTTP 401 (unauthorized; not retryable): bad key");
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    env_close(&e);
}

TEST_T(insufficient_quota_429_is_not_retried, 20)
{
    static const char body[] =
        "{\"error\":{\"message\":\"You exceeded your current quota, please "
        "check your plan.\",\"type\":\"insufficient_quota\",\"code\":"
        "\"insufficient_quota\"}}";
    char resp[512];
    env e;
    got g = {0};

    snprintf(resp, sizeof(resp),
             "HTTP/1.1 429 Too Many Requests\r\nContent-Type: "
             "application/json\r\nConnection: close\r\nContent-Length: "
             "%zu\r\n\r\n%s",
             strlen(body), body);
    env_open(&e);
    rawhttp_reply(e.srv, resp, RAWHTTP_CLOSE);
    run_one(&e, &g, 3, 10);
    ASSERT_EQ_INT(g.status, 429);
    ASSERT_EQ_INT(g.attempts, 1);
    ASSERT_EQ_INT(g.retryable, 0);
    ASSERT_STR_CONTAINS(g.msg, "HTTP 429 (quota or spend limit; not "
                               "retryable): You exceeded your current quota");
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    env_close(&e);
}

TEST_T(stream_reset_after_text_is_not_retried, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK CHUNK("Hel"), 0, 0},
        {"", 0, 150000},
    };
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_script(e.srv, steps, 2, RAWHTTP_RESET);
    run_one(&e, &g, 3, 10);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_EQ_INT(g.n_deltas, 1);
    ASSERT_EQ_INT(g.attempts, 1);
    ASSERT_STR_CONTAINS(g.msg, "(stream broken off; not retried: text had "
                               "streamed)");
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    env_close(&e);
}

TEST_T(stream_reset_before_text_is_retried, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {"", 0, 100000},
    };
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_script_nth(e.srv, 1, steps, 2, RAWHTTP_RESET);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    run_one(&e, &g, 1, 10);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.attempts, 2);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 2);
    env_close(&e);
}

/* A rebuildable request lets its body go at the first byte of a 2xx
 * answer; a retry (the stream broke before any text) asks for the
 * messages again and sends the same body. */
static int n_again;
static int fail_again;

static int
messages_again(void *ud, council_message **out, size_t *n, char **scratch)
{
    got *g = ud;

    n_again++;
    /* The body went at the first byte: no text had streamed. */
    ASSERT(g->call->body == NULL);
    ASSERT_EQ_INT(g->n_deltas, 0);
    if (fail_again)
        return -1;
    *out = council__calloc(1, sizeof(**out));
    ASSERT_NOT_NULL(*out);
    (*out)[0] = msgs[0];
    *n = 1;
    *scratch = NULL;
    return 0;
}

static void
start_again(env *e, got *g)
{
    council__provider_cfg cfg = {COUNCIL__PROVIDER_OPENAI, e->base, "sk-x", 0};
    council__chat_cbs cbs = {on_delta, on_done, messages_again};
    council__chat_req req = req_retry(1, 10);

    req.rebuildable = 1;
    ASSERT_OK(council__chat_start(e->h, &cfg, &req, &cbs, g, &g->call));
    wait_done(e, g);
}

TEST_T(released_body_is_built_again_for_a_retry, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {"", 0, 100000},
    };
    council__chat_req req = req_retry(1, 10);
    char *want = NULL, *last;
    env e;
    got g = {0};

    ASSERT_OK(council__openai_ops.build_body(&req, &want));
    n_again = 0;
    fail_again = 0;
    env_open(&e);
    rawhttp_script_nth(e.srv, 1, steps, 2, RAWHTTP_RESET);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    start_again(&e, &g);
    ASSERT_OK(g.err);
    ASSERT_EQ_INT(g.attempts, 2);
    ASSERT_EQ_INT(n_again, 1);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 2);
    last = rawhttp_last_request(e.srv);
    ASSERT_NOT_NULL(last);
    ASSERT(strlen(last) > strlen(want));
    ASSERT_STR_EQ(last + strlen(last) - strlen(want), want);
    free(last);
    council__free(want);
    env_close(&e);
}

TEST_T(body_that_cannot_be_built_again_ends_the_call, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {"", 0, 100000},
    };
    env e;
    got g = {0};

    n_again = 0;
    fail_again = 1;
    env_open(&e);
    rawhttp_script_nth(e.srv, 1, steps, 2, RAWHTTP_RESET);
    rawhttp_reply(e.srv, NORMAL, RAWHTTP_CLOSE);
    start_again(&e, &g);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_STREAM);
    ASSERT_EQ_INT(g.attempts, 1);
    ASSERT_EQ_INT(n_again, 1);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    ASSERT_STR_CONTAINS(g.msg, "not retried: the request could not be built "
                               "again");
    env_close(&e);
}

/* Every attempt fails: exactly 1 + retries requests, then the class. */
TEST_T(retries_exhausted_requests_equal_budget, 20)
{
    env e;
    got g = {0};

    env_open(&e);
    rawhttp_reply(e.srv, H503, RAWHTTP_CLOSE);
    run_one(&e, &g, 3, 20);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_HTTP);
    ASSERT_EQ_INT(g.err, COUNCIL_EHTTP);
    ASSERT_EQ_INT(g.retryable, 1);
    ASSERT_EQ_INT(g.attempts, 4);
    ASSERT_STR_EQ(g.msg, "HTTP 503 (unavailable; retryable; gave up after 4 "
                         "attempts): overloaded");
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 4);
    env_close(&e);
}

TEST_T(connection_refused_is_retried, 20)
{
    env e;
    got g = {0};
    int port;

    env_open(&e);
    port = rawhttp_port(e.srv);
    rawhttp_stop(e.srv); /* nothing listens there now */
    e.srv = rawhttp_start();
    snprintf(e.base, sizeof(e.base), "http://127.0.0.1:%d/v1", port);
    run_one(&e, &g, 2, 10);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CONNECT);
    ASSERT_EQ_INT(g.attempts, 3);
    ASSERT_EQ_INT(g.retryable, 1);
    ASSERT_STR_CONTAINS(g.msg, "(connection failed; retryable; gave up after "
                               "3 attempts)");
    env_close(&e);
}

TEST_T(retry_after_past_total_timeout_gives_up_at_once, 20)
{
    env e;
    got g = {0};
    council__chat_req req = req_retry(3, 10);

    env_open(&e);
    rawhttp_reply(e.srv,
                  "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n"
                  "Connection: close\r\nContent-Length: 0\r\n\r\n",
                  RAWHTTP_CLOSE);
    req.total_timeout_ms = 2000;
    start_cfg(&e, &g, &req, 0);
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.status, 429);
    ASSERT_EQ_INT(g.attempts, 1);
    ASSERT(g.latency_ms < 1000);
    ASSERT_STR_CONTAINS(g.msg, "would pass the total timeout");
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    env_close(&e);
}

static void
cancel_cb(uv_timer_t *t)
{
    got *g = t->data;

    council__chat_cancel(g->call);
}

TEST_T(cancel_during_backoff_ends_at_once, 20)
{
    env e;
    got g = {0};
    council__chat_req req = req_retry(2, 10);
    uv_timer_t t;
    uint64_t t0;

    env_open(&e);
    rawhttp_reply(e.srv,
                  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                  "Connection: close\r\nContent-Length: 0\r\n\r\n",
                  RAWHTTP_CLOSE);
    start_cfg(&e, &g, &req, 0);
    uv_timer_init(&e.loop, &t);
    t.data = &g;
    uv_timer_start(&t, cancel_cb, 500, 0);
    t0 = uv_hrtime();
    wait_done(&e, &g);
    ASSERT_EQ_INT(g.err, COUNCIL_ECANCELED);
    ASSERT_EQ_INT(g.kind, COUNCIL__CALL_CANCELLED);
    ASSERT((uv_hrtime() - t0) / 1000000u < 500 + slack_ms());
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    uv_close((uv_handle_t *)&t, NULL);
    env_close(&e);
}

/* n calls with max_parallel limit against a slow stream. */
static void
parallel(int n, int limit, int expect_max)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {CHUNK("Hello") STOP_CHUNK "data: [DONE]\n\n", 0, 150000},
    };
    env e;
    got g[8];
    council__chat_req req = req_retry(0, 0);
    int i;

    memset(g, 0, sizeof(g));
    env_open(&e);
    rawhttp_script(e.srv, steps, 2, RAWHTTP_CLOSE);
    for (i = 0; i < n; i++)
        start_cfg(&e, &g[i], &req, limit);
    for (i = 0; i < n; i++)
        wait_done(&e, &g[i]);
    for (i = 0; i < n; i++) {
        ASSERT_OK(g[i].err);
        ASSERT_EQ_INT(g[i].attempts, 1);
        if (limit == 1)
            ASSERT_EQ_INT(g[i].order, i); /* FIFO */
    }
    ASSERT_EQ_INT(rawhttp_requests(e.srv), n);
    ASSERT_EQ_INT(rawhttp_max_inflight(e.srv), expect_max);
    env_close(&e);
}

TEST_T(max_parallel_1_is_serial_and_fifo, 20)
{
    parallel(4, 1, 1);
}

TEST_T(max_parallel_2_allows_two, 20)
{
    parallel(5, 2, 2);
}

TEST_T(no_limit_runs_all_at_once, 20)
{
    parallel(4, 0, 4);
}

TEST_T(cancel_while_queued_never_touches_the_network, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {CHUNK("Hello") STOP_CHUNK "data: [DONE]\n\n", 0, 300000},
    };
    env e;
    got a = {0}, b = {0};
    council__chat_req req = req_retry(0, 0);

    env_open(&e);
    rawhttp_script(e.srv, steps, 2, RAWHTTP_CLOSE);
    start_cfg(&e, &a, &req, 1);
    start_cfg(&e, &b, &req, 1);
    council__chat_cancel(b.call);
    wait_done(&e, &b);
    ASSERT_EQ_INT(b.err, COUNCIL_ECANCELED);
    ASSERT_EQ_INT(b.attempts, 0);
    ASSERT_EQ_INT(a.n_done, 0);
    wait_done(&e, &a);
    ASSERT_OK(a.err);
    ASSERT_EQ_INT(rawhttp_requests(e.srv), 1);
    env_close(&e);
}

/* Closing the client cancels queued calls too. */
TEST_T(close_cancels_queued_calls, 20)
{
    static const rawhttp_step steps[] = {
        {HEAD_SSE ROLE_CHUNK, 0, 0},
        {"", 0, 200000},
    };
    env e;
    got a = {0}, b = {0};
    council__chat_req req = req_retry(0, 0);

    env_open(&e);
    rawhttp_script(e.srv, steps, 2, RAWHTTP_STALL);
    start_cfg(&e, &a, &req, 1);
    start_cfg(&e, &b, &req, 1);
    env_close(&e);
    ASSERT_EQ_INT(a.err, COUNCIL_ECANCELED);
    ASSERT_EQ_INT(b.err, COUNCIL_ECANCELED);
    ASSERT_EQ_INT(b.attempts, 0);
}

/* ---- a whole council against the mock LLM ---- */

static council_mockllm *
mock_lat(const char *faults, uint64_t latency_ms)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *m = NULL;
    council_diag d;

    o.seed = 3;
    o.faults = faults;
    o.latency_ms = latency_ms;
    if (council_mockllm_open(&o, &m, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    return m;
}

static council_def *
council_mp(council_mockllm *m, int max_parallel)
{
    char text[2000];
    council_def *def = NULL;
    council_diag d;

    snprintf(text, sizeof(text),
             "name: t\n"
             "strategy: vote\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s, max_parallel: %d }\n"
             "members:\n"
             "  - { name: ann, provider: mock, model: mock-a }\n"
             "  - { name: bob, provider: mock, model: mock-b }\n"
             "  - { name: cy,  provider: mock, model: mock-c }\n"
             "chairman: { provider: mock, model: mock-chair }\n"
             "limits: { retries: 2, quorum: 3 }\n",
             council_mockllm_base_url(m), max_parallel);
    if (council_def_load_string(text, strlen(text), "t.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("council: %d:%d %s", d.line, d.col, d.msg);
    return def;
}

/* 429s and a 503 on the first requests: retries make the run complete,
 * and with max_parallel 1 the answers stream one member at a time. */
TEST_T(council_completes_through_429s_serially, 60)
{
    council_mockllm *m =
        mock_lat("nth=1:http=429,retry_after=0; nth=2:http=429,"
                 "retry_after=0; nth=4:http=503",
                 100);
    council_def *def = council_mp(m, 1);
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[64];
    size_t n, i, n_calls;
    const char *cur = NULL;
    char done[8][16];
    int n_doneset = 0, j;
    double t0;

    ASSERT_OK(council_engine_open(NULL, &eng));
    t0 = now_s();
    run = start(eng, def, &k, 60000);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 64), 0);
    ASSERT_EQ_U64(find(&k, "member_completed", ev, 64), 3);
    /* Every call once, plus exactly the 3 faulted requests. */
    n_calls = find(&k, "member_started", ev, 64) +
              find(&k, "synthesis_started", ev, 64);
    ASSERT_EQ_INT(council_mockllm_requests(m), (int)n_calls + 3);
    /* Serial: one member's deltas never interleave with another's, and
     * n calls of >= 100 ms each took >= n * 100 ms. */
    n = json_array_size(k.events);
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(k.events, i);
        const char *type = str(e, "type"), *mem = str(e, "member");

        if (strcmp(type, "member_delta") == 0) {
            if (cur == NULL) {
                for (j = 0; j < n_doneset; j++)
                    if (strcmp(done[j], mem) == 0 &&
                        strcmp(str(e, "stage"), "answer") == 0)
                        FAIL("%s streams again", mem);
                cur = mem;
            } else if (strcmp(cur, mem) != 0) {
                FAIL("%s streams while %s does", mem, cur);
            }
        } else if (strcmp(type, "member_completed") == 0 ||
                   strcmp(type, "review_completed") == 0 ||
                   strcmp(type, "member_failed") == 0) {
            if (cur != NULL && strcmp(cur, mem) == 0) {
                if (strcmp(type, "member_completed") == 0 && n_doneset < 8)
                    snprintf(done[n_doneset++], sizeof(done[0]), "%s", mem);
                cur = NULL;
            }
        }
    }
    ASSERT(now_s() - t0 >= 0.1 * (double)n_calls);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* max_parallel holds for the whole engine, not per loop thread: two runs
 * of a max_parallel: 1 council on an engine of 3 loops still make one
 * request at a time, so their calls (>= 100 ms each) take at least the
 * sum of their times. */
TEST_T(max_parallel_holds_across_loop_threads, 60)
{
    council_mockllm *m = mock_lat(NULL, 100);
    council_def *def = council_mp(m, 1);
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *eng = NULL;
    keep k1 = {0}, k2 = {0};
    council_run *r1, *r2;
    size_t calls;
    double t0;

    eo.loop_threads = 3;
    ASSERT_OK(council_engine_open(&eo, &eng));
    t0 = now_s();
    r1 = start(eng, def, &k1, 60000);
    r2 = start(eng, def, &k2, 60000);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_for(r1)), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(council_outcome_kind_of(wait_for(r2)), COUNCIL_OUTCOME_OK);
    calls = find(&k1, "member_started", NULL, 0) +
            find(&k1, "synthesis_started", NULL, 0) +
            find(&k2, "member_started", NULL, 0) +
            find(&k2, "synthesis_started", NULL, 0);
    ASSERT(calls >= 14); /* 2 x (3 answers + 3 votes + 1 synthesis) */
    ASSERT_EQ_INT(council_mockllm_requests(m), (int)calls);
    ASSERT(now_s() - t0 >= 0.1 * (double)calls);
    council_run_release(r1);
    council_run_release(r2);
    council_engine_close(eng);
    keep_free(&k1);
    keep_free(&k2);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Without a limit: 429s for all three first answers (Retry-After: 0), and
 * the retries carry the run; the mock saw exactly 3 requests more than the
 * calls made. */
TEST_T(council_completes_when_every_member_gets_429, 60)
{
    council_mockllm *m = mock("nth=1:http=429,retry_after=0; nth=2:http=429,"
                              "retry_after=0; nth=3:http=429,retry_after=0",
                              0);
    council_def *def = council(m, "vote",
                               "  - { name: ann, provider: mock, model: a }\n"
                               "  - { name: bob, provider: mock, model: b }\n"
                               "  - { name: cy, provider: mock, model: c }\n",
                               CHAIR, "retries: 1, quorum: 3");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[64];
    size_t n_calls;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 60000);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    check_run(&k);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 64), 0);
    n_calls = find(&k, "member_started", ev, 64) +
              find(&k, "synthesis_started", ev, 64);
    ASSERT_EQ_INT(council_mockllm_requests(m), (int)n_calls + 3);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* retries: 0 -- the same faults fail the members, each request once. */
TEST_T(council_without_retries_fails_members_once, 60)
{
    council_mockllm *m = mock("nth=1:http=429,retry_after=0", 0);
    council_def *def = council(m, "vote",
                               "  - { name: ann, provider: mock, model: a }\n"
                               "  - { name: bob, provider: mock, model: b }\n"
                               "  - { name: cy, provider: mock, model: c }\n",
                               CHAIR, "retries: 0, quorum: 2");
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[64], *err;
    size_t n_calls;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 60000);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 64), 1);
    err = json_object_get(ev[0], "error");
    ASSERT_EQ_INT(json_integer_value(json_object_get(err, "attempts")), 1);
    ASSERT(json_is_true(json_object_get(err, "retryable")));
    ASSERT_STR_CONTAINS(str(err, "message"), "HTTP 429 (rate limited; "
                                             "retryable; gave up after 1 "
                                             "attempt)");
    n_calls = find(&k, "member_started", ev, 64) +
              find(&k, "synthesis_started", ev, 64);
    ASSERT_EQ_INT(council_mockllm_requests(m), (int)n_calls);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* A council whose calls the mock's faults break after the role chunk
 * (before any text), after their request bodies were let go: it ends ok,
 * with no member failed, n_reviews reviews (or ballots) that all parse,
 * and `extra` more requests than calls (the retries, which send the
 * prompts made anew; the mock answers from the prompt, so a wrong
 * rebuilt prompt gives a review that does not parse). */
static void
retries_rebuild(const char *faults, const char *strategy, const char *members,
                const char *limits, size_t n_reviews, int extra)
{
    council_mockllm *m = mock(faults, 0);
    council_def *def = council(m, strategy, members, CHAIR, limits);
    council_engine *eng = NULL;
    keep k = {0};
    council_run *run;
    const council_outcome *o;
    json_t *ev[64];
    size_t i, n, n_calls;

    ASSERT_OK(council_engine_open(NULL, &eng));
    run = start(eng, def, &k, 60000);
    o = wait_for(run);
    ASSERT_EQ_INT(council_outcome_kind_of(o), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_U64(find(&k, "member_failed", ev, 64), 0);
    n = find(&k, "review_completed", ev, 64);
    ASSERT_EQ_U64(n, n_reviews);
    for (i = 0; i < n; i++)
        ASSERT(json_is_true(json_object_get(ev[i], "parse_ok")));
    ASSERT_EQ_U64(find(&k, "synthesis_completed", ev, 64), 1);
    n_calls = find(&k, "member_started", ev, 64) +
              find(&k, "synthesis_started", ev, 64);
    ASSERT_EQ_INT(council_mockllm_requests(m), (int)n_calls + extra);
    council_run_release(run);
    council_engine_close(eng);
    keep_free(&k);
    council_def_free(def);
    council_mockllm_close(m);
}

/* Rank: a review and the synthesis.  Requests 1-4 answer, 5-8 review,
 * 9 the review again, 10 the synthesis, 11 the synthesis again. */
TEST_T(rank_review_and_synthesis_retries_rebuild_their_prompts, 60)
{
    retries_rebuild("nth=6:disconnect=0;nth=10:disconnect=0", "rank",
                    "  - { name: ann, provider: mock, model: a }\n"
                    "  - { name: bob, provider: mock, model: b }\n"
                    "  - { name: cy, provider: mock, model: c }\n"
                    "  - { name: dee, provider: mock, model: d }\n",
                    "retries: 1, quorum: 4", 4, 2);
}

/* Vote: a ballot.  Requests 1-3 answer, 4-6 vote, 7 the ballot again,
 * 8 the synthesis. */
TEST_T(vote_retry_rebuilds_its_prompt, 60)
{
    retries_rebuild("nth=5:disconnect=0", "vote",
                    "  - { name: ann, provider: mock, model: a }\n"
                    "  - { name: bob, provider: mock, model: b }\n"
                    "  - { name: cy, provider: mock, model: c }\n",
                    "retries: 1, quorum: 3", 3, 1);
}
