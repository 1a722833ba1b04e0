/* SPDX-License-Identifier: MIT */
/*
 * The `openai` wire format: Chat Completions with stream:true, as spoken by
 * OpenAI, OpenRouter, Ollama, llama.cpp, vLLM and LM Studio.  Builds the
 * request, turns each `data:` chunk into text, finish reason and usage, and
 * judges the end of the stream (DESIGN §5): `[DONE]` or a finish reason is
 * success, neither is an error; an error object inside a 200 stream is the
 * provider's error, copied, never replaced by a generic message.  The
 * lifecycle, timeouts and HTTP-level checks are http.c's.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "provider/call.h"
#include "provider/json.h"

/* The provider's own error object (or string) into msg and type. */

/* A token count: an integer from 0 to COUNCIL__TOKENS_MAX, else -1 (not
 * reported). */
static json_int_t
count(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
                   json_integer_value(v) <= COUNCIL__TOKENS_MAX
               ? json_integer_value(v)
               : -1;
}

/* Usage as reported.  A negative or non-integer count is not a count: if
 * neither is one, usage stays unknown (DESIGN 4: unknown, not 0); if only
 * one is, the usage is partial (the other is a lower bound, 0). */
static void
set_usage(council__chat *c, long long pt, long long ct, int cost_known,
          double cost)
{
    if (pt < 0 && ct < 0)
        return;
    c->usage.known = 1;
    c->usage.partial = pt < 0 || ct < 0;
    c->usage.prompt_tokens = pt >= 0 ? pt : 0;
    c->usage.completion_tokens = ct >= 0 ? ct : 0;
    if (cost_known) {
        c->usage.cost_known = 1;
        c->usage.cost = cost;
    }
}

static void
take_usage(council__chat *c, json_t *u)
{
    json_t *cost = json_object_get(u, "cost");
    int cost_known = json_is_number(cost) && json_number_value(cost) >= 0;

    set_usage(c, count(json_object_get(u, "prompt_tokens")),
              count(json_object_get(u, "completion_tokens")), cost_known,
              cost_known ? json_number_value(cost) : 0);
}

static void
set_finish_reason(council__chat *c, const char *s, size_t n)
{
    char *d = council__malloc(n + 1);

    if (d == NULL)
        return;
    memcpy(d, s, n);
    d[n] = '\0';
    council__free(c->finish_reason);
    c->finish_reason = d;
}

/* A chunk the fast path scanned (json.h): the same effects as take_chunk
 * on the same chunk parsed by jansson, in the same order. */
static void
take_scanned(council__chat *c, const council__oai_chunk *k)
{
    char stack[1024], *buf;
    size_t n;

    if (k->usage)
        set_usage(c, k->prompt_tokens, k->completion_tokens, k->cost_known,
                  k->cost);
    if (!k->choice)
        return;
    if (k->content) {
        buf = k->content_str.n <= sizeof(stack)
                  ? stack
                  : council__malloc(k->content_str.n);
        if (buf == NULL) {
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "out of memory for a chunk");
            c->res.err = COUNCIL_ENOMEM;
            return;
        }
        n = council__jstr_decode(&k->content_str, buf);
        n = council__chat_text(c, buf, n);
        if (buf != stack)
            council__free(buf);
        if (!n)
            return;
    }
    if (k->finish) {
        char fr[256];

        if (k->finish_str.n < sizeof(fr)) {
            n = council__jstr_decode(&k->finish_str, fr);
            set_finish_reason(c, fr, n);
        } else {
            char *big = council__malloc(k->finish_str.n);
            if (big != NULL) {
                n = council__jstr_decode(&k->finish_str, big);
                set_finish_reason(c, big, n);
                council__free(big);
            }
        }
    }
}

/* One chunk (streamed: choices[0].delta) or a whole completion
 * (choices[0].message).  Returns 1 if choices[0] was there. */
static int
take_chunk(council__chat *c, json_t *root, const char *what)
{
    json_t *err, *u, *choices, *ch, *d, *content, *fr;
    char msg[400], type[64];
    int had_choice = 0;

    err = json_object_get(root, "error");
    if (err != NULL && !json_is_null(err)) {
        council__error_fields(err, msg, sizeof(msg), type, sizeof(type));
        council__chat_fail_typed(c, COUNCIL__CALL_PROVIDER, type,
                                 "provider error in the stream: %s",
                                 msg[0] != '\0' ? msg : "(no message)");
        return 0;
    }
    u = json_object_get(root, "usage");
    if (json_is_object(u))
        take_usage(c, u);
    choices = json_object_get(root, "choices");
    ch = json_array_get(choices, 0);
    if (!json_is_object(ch))
        return 0;
    had_choice = 1;
    d = json_object_get(ch, what);
    content = json_object_get(d, "content");
    if (json_is_string(content) &&
        !council__chat_text(c, json_string_value(content),
                            json_string_length(content)))
        return had_choice;
    fr = json_object_get(ch, "finish_reason");
    if (json_is_string(fr))
        set_finish_reason(c, json_string_value(fr), json_string_length(fr));
    return had_choice;
}

static void
on_event(council__chat *c, const char *event, const char *data, size_t len)
{
    json_t *root;

    (void)event;
    if (c->done_seen || len == 0)
        return;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        /* The end, whether or not the server closes the connection now. */
        c->done_seen = 1;
        council__chat_succeed(c);
        return;
    }
    {
        council__oai_chunk k;

        if (council__oai_chunk_scan(data, len, &k)) {
            take_scanned(c, &k);
            return;
        }
    }
    root = council__json_object(c, data, len, "chunk");
    if (root == NULL)
        return;
    take_chunk(c, root, "delta");
    json_decref(root);
}

static void
on_json(council__chat *c, const char *body, size_t len)
{
    json_t *root = council__json_object(c, body, len, "response");

    if (root == NULL)
        return;
    if (take_chunk(c, root, "message"))
        council__chat_succeed(c);
    else
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "JSON response without choices");
    json_decref(root);
}

static void
on_eof(council__chat *c, int clean)
{
    if (clean) {
        /* A last event without its blank line still counts
         * ("data: [DONE]" then close). */
        council__sse_feed(c->sse, "\n\n", 2);
    }
    if (!council__chat_running(c))
        return;
    if (c->finish_reason != NULL)
        council__chat_succeed(c); /* some servers omit [DONE] */
    else if (clean)
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "stream ended without [DONE] or finish_reason");
    else
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "stream broken off before [DONE] or "
                           "finish_reason: %s",
                           c->errbuf[0] ? c->errbuf : "connection lost");
}

/* Not static: the fuzz target fuzz/fuzz_openai_chunk.c drives it. */
static council_err build_body(const council__chat_req *req, char **out);

const council__chat_ops council__openai_ops = {
    .on_event = on_event,
    .on_json = on_json,
    .on_eof = on_eof,
    .on_error_body = council__json_error_body,
    .build_body = build_body,
};

/* The request, written directly (json.h): {"messages":[…],"model":…,
 * "stream":true,"stream_options":{"include_usage":true}[,"max_tokens":n]}.
 * COUNCIL_EINVAL if a string is not valid UTF-8. */
static council_err
build_body(const council__chat_req *req, char **out)
{
    council__bytes b = {0};
    council_err rc;
    size_t i, est = 160 + strlen(req->model);
    char tail[96];
    int n;

    *out = NULL;
    for (i = 0; i < req->n_messages; i++)
        est += strlen(req->messages[i].content) +
               strlen(req->messages[i].role) + 32;
    b.p = council__malloc(est + est / 8);
    if (b.p == NULL)
        return COUNCIL_ENOMEM;
    b.cap = est + est / 8;
    rc = council__bytes_add(&b, "{\"messages\":[", 13, SIZE_MAX / 2);
    for (i = 0; rc == COUNCIL_OK && i < req->n_messages; i++) {
        const council_message *cm = &req->messages[i];

        rc = council__bytes_add(&b, i == 0 ? "{\"role\":" : ",{\"role\":",
                                i == 0 ? 8 : 9, SIZE_MAX / 2);
        if (rc == COUNCIL_OK)
            rc = council__json_put_str(&b, cm->role, strlen(cm->role),
                                       SIZE_MAX / 2);
        if (rc == COUNCIL_OK)
            rc = council__bytes_add(&b, ",\"content\":", 11, SIZE_MAX / 2);
        if (rc == COUNCIL_OK)
            rc = council__json_put_str(&b, cm->content, strlen(cm->content),
                                       SIZE_MAX / 2);
        if (rc == COUNCIL_OK)
            rc = council__bytes_add(&b, "}", 1, SIZE_MAX / 2);
    }
    if (rc == COUNCIL_OK)
        rc = council__bytes_add(&b, "],\"model\":", 10, SIZE_MAX / 2);
    if (rc == COUNCIL_OK)
        rc = council__json_put_str(&b, req->model, strlen(req->model),
                                   SIZE_MAX / 2);
    if (req->max_tokens > 0)
        n = snprintf(tail, sizeof(tail),
                     ",\"stream\":true,\"stream_options\":"
                     "{\"include_usage\":true},\"max_tokens\":%lld}",
                     (long long)req->max_tokens);
    else
        n = snprintf(tail, sizeof(tail),
                     ",\"stream\":true,\"stream_options\":"
                     "{\"include_usage\":true}}");
    if (rc == COUNCIL_OK)
        rc = council__bytes_add(&b, tail, (size_t)n, SIZE_MAX / 2);
    if (rc != COUNCIL_OK) {
        council__free(b.p);
        return rc == COUNCIL_EPARSE ? COUNCIL_ENOMEM : rc;
    }
    *out = b.p;
    return COUNCIL_OK;
}

/* The headers of every request but the credential (never modified). */
static struct curl_slist hdr_expect = {"Expect:", NULL}; /* no 100-continue */
static struct curl_slist hdr_accept = {"Accept: text/event-stream",
                                       &hdr_expect};
static struct curl_slist hdr_const = {"Content-Type: application/json",
                                      &hdr_accept};

council_err
council__openai_start(council__http *h, const council__provider_cfg *cfg,
                      const council__chat_req *req,
                      const council__chat_cbs *cbs, void *ud,
                      council__chat **out)
{
    council__chat *c = NULL;
    council_err rc;
    size_t blen, i;
    char *auth = NULL;

    if (cfg->base_url == NULL || req->model == NULL || req->n_messages == 0 ||
        req->messages == NULL)
        return COUNCIL_EINVAL;
    for (i = 0; i < req->n_messages; i++)
        if (req->messages[i].role == NULL || req->messages[i].content == NULL)
            return COUNCIL_EINVAL;
    rc = council__chat_new(h, &council__openai_ops, req, cbs, ud, &c);
    if (rc != COUNCIL_OK)
        return rc;
    blen = strlen(cfg->base_url);
    while (blen > 0 && cfg->base_url[blen - 1] == '/')
        blen--;
    c->url = council__malloc(blen + sizeof("/chat/completions"));
    if (c->url == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    memcpy(c->url, cfg->base_url, blen);
    memcpy(c->url + blen, "/chat/completions", sizeof("/chat/completions"));
    rc = build_body(req, &c->body);
    if (rc != COUNCIL_OK)
        goto out;
    if (cfg->api_key != NULL) {
        size_t klen = strlen(cfg->api_key);

        c->secret = council__strdup(cfg->api_key);
        auth = council__malloc(klen + sizeof("Authorization: Bearer "));
        if (c->secret == NULL || auth == NULL) {
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        snprintf(auth, klen + sizeof("Authorization: Bearer "),
                 "Authorization: Bearer %s", cfg->api_key);
    }
    council__chat_headers(c, &hdr_const, auth); /* takes auth over */
    auth = NULL;
out:
    if (auth != NULL) {
        explicit_bzero(auth, strlen(auth));
        council__free(auth);
    }
    if (rc != COUNCIL_OK) {
        council__chat_discard(c);
        return rc;
    }
    rc = council__chat_launch(c); /* takes c over, even on error */
    if (rc == COUNCIL_OK)
        *out = c;
    return rc;
}
