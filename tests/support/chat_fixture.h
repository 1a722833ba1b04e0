/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the provider tests (test_openai.c, test_anthropic.c): a
 * uv loop with an HTTP client and a raw scripted server, the callbacks
 * that record what a call delivered (checking on_done comes exactly once
 * and never leaks the canary key), and helpers to start a call and wait.
 * Define CHAT_KIND (a council__provider_kind), CHAT_MODEL and CANARY, then
 * include this once.  Static functions: each test file gets its own copy.
 */
#ifndef COUNCIL_TEST_CHAT_FIXTURE_H
#define COUNCIL_TEST_CHAT_FIXTURE_H

typedef struct got {
    int n_done;
    council_err err;
    council__call_errkind kind;
    long status;
    char type[64];
    char msg[512];
    uint64_t retry_after_ms;
    char *text;
    size_t text_len;
    char finish[32];
    council__usage usage;
    uint64_t first_byte_ms, latency_ms;
    char *deltas;
    size_t deltas_len;
    int n_deltas;
    int cancel_in_delta;
    council__chat *call;
} got;

typedef struct env {
    uv_loop_t loop;
    council__http *h;
    rawhttp *srv;
    char base[64];
    int closed;
} env;

static int in_start;

static void
on_delta(const char *text, size_t len, void *ud)
{
    got *g = ud;

    ASSERT_EQ_INT(g->n_done, 0);
    ASSERT(len > 0);
    /* Text has streamed: no retry can follow, so the request body (sent
     * whole before any response here) is released already. */
    if (g->call != NULL)
        ASSERT(g->call->body == NULL);
    g->deltas = realloc(g->deltas, g->deltas_len + len + 1);
    memcpy(g->deltas + g->deltas_len, text, len);
    g->deltas_len += len;
    g->deltas[g->deltas_len] = '\0';
    g->n_deltas++;
    if (g->cancel_in_delta) {
        council__chat_cancel(g->call);
        council__chat_cancel(g->call); /* twice is harmless */
    }
}

static void
on_done(const council__chat_result *r, void *ud)
{
    got *g = ud;

    ASSERT(!in_start);
    ASSERT_EQ_INT(g->n_done, 0);
    g->n_done++;
    g->err = r->err;
    g->kind = r->kind;
    g->status = r->http_status;
    snprintf(g->type, sizeof(g->type), "%s", r->error_type);
    snprintf(g->msg, sizeof(g->msg), "%s", r->message);
    g->retry_after_ms = r->retry_after_ms;
    ASSERT_NOT_NULL(r->text);
    g->text = malloc(r->text_len + 1);
    memcpy(g->text, r->text, r->text_len);
    g->text[r->text_len] = '\0';
    g->text_len = r->text_len;
    snprintf(g->finish, sizeof(g->finish), "%s",
             r->finish_reason ? r->finish_reason : "");
    g->usage = r->usage;
    g->first_byte_ms = r->first_byte_ms;
    g->latency_ms = r->latency_ms;
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "on_done: %s status=%ld type=\"%s\" msg=\"%s\"\n",
                council__call_errkind_name(r->kind), r->http_status,
                r->error_type, r->message);
    /* The secret never shows. */
    ASSERT(strstr(r->message, CANARY) == NULL);
    ASSERT(strstr(r->error_type, CANARY) == NULL);
    ASSERT(memmem(r->text, r->text_len, CANARY, strlen(CANARY)) == NULL);
    if (r->err == COUNCIL_OK) {
        ASSERT_EQ_INT(r->kind, COUNCIL__CALL_OK);
        ASSERT_EQ_INT(r->message[0], '\0');
    } else {
        ASSERT(r->message[0] != '\0');
        ASSERT_EQ_INT(r->text_len, 0);
    }
}

static void
got_free(got *g)
{
    free(g->text);
    free(g->deltas);
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

static const council_message msgs[] = {
    {"system", "You are terse."},
    {"user", "Say hello."},
};

static council__chat_req
req_default(void)
{
    council__chat_req r = {.model = CHAT_MODEL,
                           .messages = msgs,
                           .n_messages = 2,
                           .max_tokens = 50,
                           .connect_timeout_ms = 2000,
                           .first_byte_timeout_ms = 3000,
                           .idle_timeout_ms = 3000,
                           .total_timeout_ms = 8000};
    return r;
}

static council_err
start_req(env *e, got *g, const char *key, const council__chat_req *req)
{
    council__provider_cfg cfg = {CHAT_KIND, e->base, key};
    council__chat_cbs cbs = {on_delta, on_done};
    council_err rc;

    in_start = 1;
    rc = council__chat_start(e->h, &cfg, req, &cbs, g, &g->call);
    in_start = 0;
    ASSERT_EQ_INT(g->n_done, 0);
    return rc;
}

static void
start(env *e, got *g)
{
    council__chat_req req = req_default();

    ASSERT_OK(start_req(e, g, CANARY, &req));
}

static void
wait_done(env *e, got *g)
{
    while (g->n_done == 0)
        uv_run(&e->loop, UV_RUN_ONCE);
}

/* One call against one scripted reply, the whole way. */
static void
one(const char *reply, int end, got *g)
{
    env e;

    env_open(&e);
    rawhttp_reply(e.srv, reply, end);
    start(&e, g);
    wait_done(&e, g);
    env_close(&e);
}

#endif
