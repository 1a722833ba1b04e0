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
#include <string.h>

#include "core/alloc.h"
#include "provider/call.h"

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
take_usage(council__chat *c, json_t *u)
{
    json_int_t pt = count(json_object_get(u, "prompt_tokens"));
    json_int_t ct = count(json_object_get(u, "completion_tokens"));
    json_t *cost = json_object_get(u, "cost");

    if (pt < 0 && ct < 0)
        return;
    c->usage.known = 1;
    c->usage.partial = pt < 0 || ct < 0;
    c->usage.prompt_tokens = pt >= 0 ? pt : 0;
    c->usage.completion_tokens = ct >= 0 ? ct : 0;
    if (json_is_number(cost) && json_number_value(cost) >= 0) {
        c->usage.cost_known = 1;
        c->usage.cost = json_number_value(cost);
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
        council__chat_fail(c, COUNCIL__CALL_PROVIDER,
                           "provider error in the stream: %s",
                           msg[0] != '\0' ? msg : "(no message)");
        memcpy(c->res.error_type, type, sizeof(type));
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
    if (json_is_string(fr)) {
        char *s = council__strdup(json_string_value(fr));
        if (s != NULL) {
            council__free(c->finish_reason);
            c->finish_reason = s;
        }
    }
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
const council__chat_ops council__openai_ops = {
    .on_event = on_event,
    .on_json = on_json,
    .on_eof = on_eof,
    .on_error_body = council__json_error_body,
};

static council_err
build_body(const council__chat_req *req, char **out)
{
    json_t *root = NULL, *msgs, *m;
    council_err rc = COUNCIL_OK;
    size_t i;

    *out = NULL;
    root = json_object();
    if (root == NULL)
        return COUNCIL_ENOMEM;
    /* json_object_set_new takes the value even when it fails. */
    msgs = json_array();
    if (json_object_set_new(root, "messages", msgs) != 0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    m = json_string(req->model);
    if (m == NULL) {
        rc = COUNCIL_EINVAL; /* not valid UTF-8 (or out of memory) */
        goto out;
    }
    if (json_object_set_new(root, "model", m) != 0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    for (i = 0; i < req->n_messages; i++) {
        const council_message *cm = &req->messages[i];
        json_t *role = json_string(cm->role);
        json_t *content = json_string(cm->content);

        if (role == NULL || content == NULL) {
            /* Not valid UTF-8, or out of memory. */
            json_decref(role);
            json_decref(content);
            rc = COUNCIL_EINVAL;
            goto out;
        }
        m = json_object();
        if (m == NULL) {
            json_decref(role);
            json_decref(content);
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        if (json_object_set_new(m, "role", role) != 0) {
            json_decref(content);
            json_decref(m);
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        if (json_object_set_new(m, "content", content) != 0) {
            json_decref(m);
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        if (json_array_append_new(msgs, m) != 0) {
            rc = COUNCIL_ENOMEM;
            goto out;
        }
    }
    if (json_object_set_new(root, "stream", json_true()) != 0 ||
        json_object_set_new(root, "stream_options",
                            json_pack("{s:b}", "include_usage", 1)) != 0 ||
        (req->max_tokens > 0 &&
         json_object_set_new(root, "max_tokens",
                             json_integer(req->max_tokens)) != 0)) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    *out = json_dumps(root, JSON_COMPACT);
    if (*out == NULL)
        rc = COUNCIL_ENOMEM;
out:
    json_decref(root);
    return rc;
}

static council_err
add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);

    if (n == NULL)
        return COUNCIL_ENOMEM;
    *list = n;
    return COUNCIL_OK;
}

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
    rc = add_header(&c->headers, "Content-Type: application/json");
    if (rc == COUNCIL_OK)
        rc = add_header(&c->headers, "Accept: text/event-stream");
    if (rc == COUNCIL_OK)
        rc = add_header(&c->headers, "Expect:"); /* no 100-continue */
    if (rc == COUNCIL_OK && cfg->api_key != NULL) {
        size_t klen = strlen(cfg->api_key);

        c->secret = council__strdup(cfg->api_key);
        auth = council__malloc(klen + sizeof("Authorization: Bearer "));
        if (c->secret == NULL || auth == NULL) {
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        snprintf(auth, klen + sizeof("Authorization: Bearer "),
                 "Authorization: Bearer %s", cfg->api_key);
        rc = add_header(&c->headers, auth);
    }
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
