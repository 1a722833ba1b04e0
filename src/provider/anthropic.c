/* SPDX-License-Identifier: MIT */
/*
 * The `anthropic` wire format: the Messages API with stream:true.  Builds
 * the request (system messages joined into the top-level `system`, the
 * required max_tokens defaulted, x-api-key and anthropic-version headers)
 * and turns the typed SSE events into text, stop reason and usage.  Judges
 * the end as DESIGN §5 says: `message_stop` is success, a stream without
 * it is an error even if a stop_reason came; an `error` event inside a 200
 * stream is the provider's error with its own type and message.  The
 * lifecycle, timeouts and HTTP-level checks are http.c's.
 */
#include <jansson.h>
#include <string.h>

#include "core/alloc.h"
#include "provider/anthropic.h"

/* {"type":"error","error":{"type","message"}}: the inner object's fields
 * into msg and type (also accepts a bare {"type","message"} object). */

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

/* c->usage_parts: the counts seen so far. */
enum { SEEN_INPUT = 1, SEEN_FINAL_OUTPUT = 2 };

/* Usage as reported by message_start (the input, and the output so far)
 * or message_delta (output_tokens: cumulative, so it replaces, never
 * adds).  The prompt is input_tokens plus the cached input, which the API
 * counts apart.  A field that is absent leaves what is known; no count at
 * all leaves usage unknown (DESIGN 4: unknown, not 0).  final: the output
 * count is the last (message_delta's, a whole message's).  Until both the
 * input and the final output are in, the usage is partial (a lower
 * bound). */
static void
take_usage(council__chat *c, json_t *u, int final)
{
    json_int_t in = count(json_object_get(u, "input_tokens"));
    json_int_t cw = count(json_object_get(u, "cache_creation_input_tokens"));
    json_int_t cr = count(json_object_get(u, "cache_read_input_tokens"));
    json_int_t out = count(json_object_get(u, "output_tokens"));

    if (!json_is_object(u) || (in < 0 && out < 0))
        return;
    c->usage.known = 1;
    if (in >= 0) {
        /* Each at most COUNCIL__TOKENS_MAX: no overflow. */
        c->usage.prompt_tokens = in + (cw > 0 ? cw : 0) + (cr > 0 ? cr : 0);
        c->usage_parts |= SEEN_INPUT;
    }
    if (out >= 0) {
        c->usage.completion_tokens = out;
        if (final)
            c->usage_parts |= SEEN_FINAL_OUTPUT;
    }
    c->usage.partial = c->usage_parts != (SEEN_INPUT | SEEN_FINAL_OUTPUT);
}

static void
take_stop_reason(council__chat *c, json_t *sr)
{
    char *s;

    if (!json_is_string(sr))
        return;
    s = council__strdup(json_string_value(sr));
    if (s == NULL)
        return;
    council__free(c->finish_reason);
    c->finish_reason = s;
}

static void
provider_error(council__chat *c, json_t *err)
{
    char msg[400], type[64];

    council__error_fields(err, msg, sizeof(msg), type, sizeof(type));
    council__chat_fail_typed(c, COUNCIL__CALL_PROVIDER, type,
                             "provider error in the stream: %s",
                             msg[0] != '\0' ? msg : "(no message)");
}

/* One event, named by its data's "type" (the SSE event name only when the
 * data has none).  Unknown types are skipped, as the API asks. */
static void
on_event(council__chat *c, const char *event, const char *data, size_t len)
{
    json_t *root, *t, *d, *msg;
    const char *type;

    if (c->done_seen || len == 0)
        return;
    root = council__json_object(c, data, len, "event");
    if (root == NULL)
        return;
    t = json_object_get(root, "type");
    type =
        json_is_string(t) ? json_string_value(t) : (event != NULL ? event : "");
    if (strcmp(type, "message_start") == 0) {
        msg = json_object_get(root, "message");
        take_usage(c, json_object_get(msg, "usage"), 0);
    } else if (strcmp(type, "content_block_delta") == 0) {
        d = json_object_get(root, "delta");
        t = json_object_get(d, "type");
        if (json_is_string(t) &&
            strcmp(json_string_value(t), "text_delta") == 0) {
            json_t *text = json_object_get(d, "text");

            if (json_is_string(text))
                council__chat_text(c, json_string_value(text),
                                   json_string_length(text));
        }
        /* thinking_delta, input_json_delta...: not answer text. */
    } else if (strcmp(type, "message_delta") == 0) {
        d = json_object_get(root, "delta");
        take_stop_reason(c, json_object_get(d, "stop_reason"));
        take_usage(c, json_object_get(root, "usage"), 1);
    } else if (strcmp(type, "message_stop") == 0) {
        /* The end, whether or not the server closes the connection now. */
        c->done_seen = 1;
        council__chat_succeed(c);
    } else if (strcmp(type, "error") == 0) {
        provider_error(c, json_object_get(root, "error"));
    }
    /* ping, content_block_start/stop and the unknown: nothing to do. */
    json_decref(root);
}

/* A whole Message (a server that ignored stream:true), or an error object
 * sent with a 2xx status. */
static void
on_json(council__chat *c, const char *body, size_t len)
{
    json_t *root = council__json_object(c, body, len, "response"), *content,
           *blk;
    council__bytes all = {0};
    size_t i;

    if (root == NULL)
        return;
    if (json_object_get(root, "error") != NULL) {
        provider_error(c, json_object_get(root, "error"));
        goto out;
    }
    content = json_object_get(root, "content");
    if (!json_is_array(content)) {
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "JSON response without content");
        goto out;
    }
    json_array_foreach (content, i, blk) {
        json_t *bt = json_object_get(blk, "type");
        json_t *text = json_object_get(blk, "text");

        if (!json_is_string(bt) || strcmp(json_string_value(bt), "text") != 0 ||
            !json_is_string(text))
            continue;
        if (council__bytes_add(&all, json_string_value(text),
                               json_string_length(text),
                               COUNCIL__TEXT_MAX) != COUNCIL_OK) {
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "answer too long or out of memory");
            goto out;
        }
    }
    take_usage(c, json_object_get(root, "usage"), 1);
    take_stop_reason(c, json_object_get(root, "stop_reason"));
    if (all.len == 0 || council__chat_text(c, all.p, all.len))
        council__chat_succeed(c);
out:
    council__free(all.p);
    json_decref(root);
}

static void
on_eof(council__chat *c, int clean)
{
    if (clean) {
        /* A last event without its blank line still counts. */
        council__sse_feed(c->sse, "\n\n", 2);
    }
    if (!council__chat_running(c))
        return;
    if (clean)
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "stream ended without message_stop");
    else
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "stream broken off before message_stop: %s",
                           c->errbuf[0] ? c->errbuf : "connection lost");
}

static council_err build_body(const council__chat_req *req, char **out);

const council__chat_ops council__anthropic_ops = {
    .on_event = on_event,
    .on_json = on_json,
    .on_eof = on_eof,
    .on_error_body = council__json_error_body,
    .build_body = build_body,
};

/* Sets key on obj to a new string of s[0..n); EINVAL if s is not UTF-8. */
static council_err
set_str(json_t *obj, const char *key, const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);

    if (v == NULL)
        return COUNCIL_EINVAL; /* not valid UTF-8 (or out of memory) */
    /* json_object_set_new takes the value even when it fails. */
    if (json_object_set_new(obj, key, v) != 0)
        return COUNCIL_ENOMEM;
    return COUNCIL_OK;
}

/*
 * {"model","max_tokens","system"?,"messages":[{role,content}],
 *  "stream":true}.  The system messages, wherever they are, are joined
 * with a blank line into the top-level system string; the Messages API
 * has no system role inside messages.
 */
static council_err
build_body(const council__chat_req *req, char **out)
{
    json_t *root = NULL, *msgs, *m;
    council__bytes sys = {0};
    council_err rc = COUNCIL_OK;
    size_t i;
    int max_tokens;

    *out = NULL;
    root = json_object();
    msgs = json_array();
    if (root == NULL || json_object_set_new(root, "messages", msgs) != 0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    rc = set_str(root, "model", req->model, strlen(req->model));
    if (rc != COUNCIL_OK)
        goto out;
    max_tokens = req->max_tokens > 0 ? req->max_tokens
                                     : COUNCIL__ANTHROPIC_DEFAULT_MAX_TOKENS;
    if (json_object_set_new(root, "max_tokens", json_integer(max_tokens)) !=
        0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    for (i = 0; i < req->n_messages; i++) {
        const council_message *cm = &req->messages[i];

        if (strcmp(cm->role, "system") == 0) {
            if (sys.len > 0)
                rc = council__bytes_add(&sys, "\n\n", 2, COUNCIL__TEXT_MAX);
            if (rc == COUNCIL_OK)
                rc = council__bytes_add(&sys, cm->content, strlen(cm->content),
                                        COUNCIL__TEXT_MAX);
            if (rc != COUNCIL_OK) {
                rc = COUNCIL_ENOMEM;
                goto out;
            }
            continue;
        }
        m = json_object();
        if (m == NULL || json_array_append_new(msgs, m) != 0) {
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        rc = set_str(m, "role", cm->role, strlen(cm->role));
        if (rc == COUNCIL_OK)
            rc = set_str(m, "content", cm->content, strlen(cm->content));
        if (rc != COUNCIL_OK)
            goto out;
    }
    if (json_array_size(msgs) == 0) {
        rc = COUNCIL_EINVAL; /* the API needs at least one message */
        goto out;
    }
    if (sys.len > 0) {
        rc = set_str(root, "system", sys.p, sys.len);
        if (rc != COUNCIL_OK)
            goto out;
    }
    if (json_object_set_new(root, "stream", json_true()) != 0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    *out = json_dumps(root, JSON_COMPACT);
    if (*out == NULL)
        rc = COUNCIL_ENOMEM;
out:
    council__free(sys.p);
    json_decref(root);
    return rc;
}

/* The headers of every request but the credential (never modified). */
static struct curl_slist hdr_expect = {"Expect:", NULL}; /* no 100-continue */
static struct curl_slist hdr_version = {
    "anthropic-version: " COUNCIL__ANTHROPIC_VERSION, &hdr_expect};
static struct curl_slist hdr_accept = {"Accept: text/event-stream",
                                       &hdr_version};
static struct curl_slist hdr_const = {"Content-Type: application/json",
                                      &hdr_accept};

council_err
council__anthropic_start(council__http *h, const council__provider_cfg *cfg,
                         const council__chat_req *req,
                         const council__chat_cbs *cbs, void *ud,
                         council__chat **out)
{
    static const char path[] = "/messages";
    static const char key_hdr[] = "x-api-key: ";
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
    rc = council__chat_new(h, &council__anthropic_ops, req, cbs, ud, &c);
    if (rc != COUNCIL_OK)
        return rc;
    blen = strlen(cfg->base_url);
    while (blen > 0 && cfg->base_url[blen - 1] == '/')
        blen--;
    c->url = council__malloc(blen + sizeof(path));
    if (c->url == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    memcpy(c->url, cfg->base_url, blen);
    memcpy(c->url + blen, path, sizeof(path));
    rc = build_body(req, &c->body);
    if (rc != COUNCIL_OK)
        goto out;
    if (cfg->api_key != NULL) {
        size_t klen = strlen(cfg->api_key);

        c->secret = council__strdup(cfg->api_key);
        auth = council__malloc(klen + sizeof(key_hdr));
        if (c->secret == NULL || auth == NULL) {
            rc = COUNCIL_ENOMEM;
            goto out;
        }
        memcpy(auth, key_hdr, sizeof(key_hdr) - 1);
        memcpy(auth + sizeof(key_hdr) - 1, cfg->api_key, klen + 1);
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
