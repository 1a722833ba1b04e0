/* SPDX-License-Identifier: MIT */
/*
 * The OpenAI-compatible face of the server: POST /v1/chat/completions
 * with model "council/<name>" runs that council on the messages, and
 * GET /v1/models lists the councils as models.
 *
 * The reply has the shapes of the Chat Completions API: a
 * "chat.completion" object, or a stream of "chat.completion.chunk"
 * objects as SSE data lines (no event: lines, as OpenAI sends) ending
 * with "data: [DONE]"; with stream_options.include_usage, every chunk
 * carries "usage": null and one last chunk before [DONE] has empty
 * choices and the run's total usage.  The content is the chairman's
 * synthesis, streamed as it is written.  Member answers and reviews are
 * not content; while they run, the stream carries ": ping" comments
 * (ignored by SSE clients) every heartbeat.
 *
 * A chairman that fails after it has streamed text, replaced by a
 * fallback model, voids that text (docs/events.md).  Streamed text cannot
 * be taken back, so the stream then ends with an error chunk
 * ({"error":{"type":"synthesis_restarted",...}}, no [DONE]); the run
 * goes on and its answer is at GET /v1/runs/{id} (the id is in the
 * x-council-run-id header).  A failed or cancelled run ends the stream
 * with an error chunk too.  A client that disconnects before the end
 * cancels its run.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "chat_req.h"
#include "serve.h"

struct chat_state {
    char id[96];     /* "chatcmpl-" + run id */
    char model[160]; /* "council/<name>" */
    long long created;
    int include_usage;
    size_t sent; /* content bytes streamed for this synthesis attempt */
    char finish[16];
};

void
chat_state_free(chat_state *c)
{
    free(c);
}

/* ---- chunks -------------------------------------------------------------- */

static void
chunk_open(stream *st)
{
    chat_state *c = st->chat;

    sbuf_str(&st->out, "data: {\"id\":\"");
    sbuf_json(&st->out, c->id, strlen(c->id));
    sbuf_fmt(&st->out,
             "\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
             "\"model\":\"",
             c->created);
    sbuf_json(&st->out, c->model, strlen(c->model));
    sbuf_str(&st->out, "\",\"system_fingerprint\":null,\"choices\":[");
}

static void
chunk_close(stream *st)
{
    sbuf_str(&st->out, "]");
    if (st->chat->include_usage)
        sbuf_str(&st->out, ",\"usage\":null");
    sbuf_str(&st->out, "}\n\n");
}

static void
chunk_content(stream *st, const char *text, size_t len)
{
    chunk_open(st);
    sbuf_str(&st->out, "{\"index\":0,\"delta\":{\"content\":\"");
    sbuf_json(&st->out, text, len);
    sbuf_str(&st->out, "\"},\"logprobs\":null,\"finish_reason\":null}");
    chunk_close(st);
    st->chat->sent += len;
}

static void chunk_error(stream *st, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
chunk_error(stream *st, const char *type, const char *fmt, ...)
{
    char msg[700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sbuf_str(&st->out, "data: {\"error\":{\"type\":\"");
    sbuf_json(&st->out, type, strlen(type));
    sbuf_str(&st->out, "\",\"message\":\"");
    sbuf_json(&st->out, msg, strlen(msg));
    sbuf_str(&st->out, "\",\"code\":null,\"param\":null}}\n\n");
    st->finished = 1;
}

/* OpenAI's usage object from a run's result usage, or NULL. */
static json_t *
usage_of(json_t *result)
{
    json_t *u = json_object_get(result, "usage");
    json_t *p = json_object_get(u, "prompt_tokens");
    json_t *c = json_object_get(u, "completion_tokens");
    json_t *t = json_object_get(u, "total_tokens");

    if (!json_is_integer(p) || !json_is_integer(c))
        return NULL;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", json_integer_value(p),
                     "completion_tokens", json_integer_value(c), "total_tokens",
                     json_is_integer(t)
                         ? json_integer_value(t)
                         : json_integer_value(p) + json_integer_value(c));
}

static const char *
finish_of(const char *f)
{
    return f != NULL && strcmp(f, "length") == 0 ? "length" : "stop";
}

/* The first error of a run_failed event (or outcome) as text. */
static void
first_error(json_t *errors, const char **kind, const char **msg)
{
    json_t *e = json_array_get(errors, 0);

    *kind = json_string_value(json_object_get(e, "kind"));
    *msg = json_string_value(json_object_get(e, "message"));
    if (*kind == NULL)
        *kind = "error";
    if (*msg == NULL)
        *msg = "the run failed";
}

void
chat_event(stream *st, council_event *ev)
{
    chat_state *c = st->chat;
    council_event_type t = council_event_type_of(ev);
    json_t *j = NULL;

    if (st->finished)
        return;
    switch (t) {
    case COUNCIL_EV_SYNTHESIS_STARTED:
        if (c->sent > 0)
            chunk_error(st, "synthesis_restarted",
                        "the chairman failed after it had begun its answer "
                        "and a fallback model started again; streamed text "
                        "cannot be taken back.  The run goes on: GET "
                        "/v1/runs/%s for its answer",
                        st->run->id);
        return;
    case COUNCIL_EV_SYNTHESIS_DELTA:
        if (council_event_text_len(ev) > 0)
            chunk_content(st, council_event_text(ev),
                          council_event_text_len(ev));
        return;
    case COUNCIL_EV_SYNTHESIS_COMPLETED:
        j = json_loads(council_event_json(ev), 0, NULL);
        snprintf(
            c->finish, sizeof(c->finish), "%s",
            finish_of(json_string_value(json_object_get(j, "finish_reason"))));
        /* A top-member fallback (or a chairman that sent no deltas)
         * gives its whole text here. */
        if (c->sent == 0 && council_event_text_len(ev) > 0)
            chunk_content(st, council_event_text(ev),
                          council_event_text_len(ev));
        break;
    case COUNCIL_EV_RUN_COMPLETED: {
        json_t *u;
        char *text;

        j = json_loads(council_event_json(ev), 0, NULL);
        chunk_open(st);
        sbuf_fmt(&st->out,
                 "{\"index\":0,\"delta\":{},\"logprobs\":null,"
                 "\"finish_reason\":\"%s\"}",
                 c->finish[0] ? c->finish : "stop");
        chunk_close(st);
        if (c->include_usage) {
            u = usage_of(json_object_get(j, "result"));
            text = u != NULL ? json_dumps(u, JSON_COMPACT) : NULL;
            json_decref(u);
            chunk_open(st);
            sbuf_str(&st->out, "],\"usage\":");
            sbuf_str(&st->out, text != NULL ? text : "null");
            sbuf_str(&st->out, "}\n\n");
            free(text);
        }
        sbuf_str(&st->out, "data: [DONE]\n\n");
        st->finished = 1;
        break;
    }
    case COUNCIL_EV_RUN_FAILED: {
        const char *kind, *msg;

        j = json_loads(council_event_json(ev), 0, NULL);
        first_error(json_object_get(j, "errors"), &kind, &msg);
        chunk_error(
            st, strcmp(kind, "cancelled") == 0 ? "run_cancelled" : "run_failed",
            "run %s %s: %s: %s", st->run->id,
            strcmp(kind, "cancelled") == 0 ? "was cancelled" : "failed", kind,
            msg);
        break;
    }
    default:
        break;
    }
    json_decref(j);
}

void
chat_end(stream *st)
{
    srv *s = st->s;
    const char *why = NULL;
    json_t *o = NULL;

    if (st->finished)
        return;
    pthread_mutex_lock(&s->mu);
    if (st->run->outcome_json != NULL)
        o = json_loads(st->run->outcome_json, 0, NULL);
    pthread_mutex_unlock(&s->mu);
    why = json_string_value(json_object_get(o, "reason"));
    chunk_error(st, "run_crashed", "run %s ended without a result: %s",
                st->run->id, why != NULL ? why : "crashed");
    json_decref(o);
}

/* ---- requests ------------------------------------------------------------ */

static enum MHD_Result
chat_reply(srv *s, stream *st)
{
    chat_state *c = st->chat;
    srun *r = st->run;
    council_event *term = NULL, *synth = NULL;
    const char *hdrs[] = {"x-council-run-id", r->id, NULL};
    json_t *j = NULL, *sj = NULL, *o, *u;
    council_outcome_kind kind;
    char *outcome = NULL;
    size_t i;
    enum MHD_Result ret;

    pthread_mutex_lock(&s->mu);
    kind = r->kind;
    if (r->outcome_json != NULL)
        outcome = strdup(r->outcome_json);
    for (i = r->n_ev; i > 0; i--) {
        council_event_type t = council_event_type_of(r->ev[i - 1]);

        if (term == NULL &&
            (t == COUNCIL_EV_RUN_COMPLETED || t == COUNCIL_EV_RUN_FAILED))
            term = council_event_ref(r->ev[i - 1]);
        if (t == COUNCIL_EV_SYNTHESIS_COMPLETED) {
            synth = council_event_ref(r->ev[i - 1]);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);

    if (kind != COUNCIL_OUTCOME_OK || term == NULL) {
        json_t *oj = outcome != NULL ? json_loads(outcome, 0, NULL) : NULL;
        const char *ek, *em;

        first_error(json_object_get(oj, "errors"), &ek, &em);
        if (kind == COUNCIL_OUTCOME_CRASHED) {
            const char *why = json_string_value(json_object_get(oj, "reason"));

            ret = srv_error(st->conn, 500, "run_crashed",
                            "run %s ended without a result: %s", r->id,
                            why != NULL ? why : "crashed");
        } else if (kind == COUNCIL_OUTCOME_CANCELLED) {
            ret = srv_error(st->conn, 503, "run_cancelled",
                            "run %s was cancelled: %s", r->id, em);
        } else {
            ret = srv_error(st->conn, 502, "run_failed",
                            "run %s failed: %s: %s", r->id, ek, em);
        }
        json_decref(oj);
        goto out;
    }
    j = json_loads(council_event_json(term), 0, NULL);
    sj = synth != NULL ? json_loads(council_event_json(synth), 0, NULL) : NULL;
    u = usage_of(json_object_get(j, "result"));
    o = json_pack(
        "{s:s, s:s, s:I, s:s, s:n, s:[{s:i, s:{s:s, s:O?, s:n}, s:n, s:s}], "
        "s:o?}",
        "id", c->id, "object", "chat.completion", "created",
        (json_int_t)c->created, "model", c->model, "system_fingerprint",
        "choices", "index", 0, "message", "role", "assistant", "content",
        json_object_get(json_object_get(j, "result"), "answer"), "refusal",
        "logprobs", "finish_reason",
        finish_of(json_string_value(json_object_get(sj, "finish_reason"))),
        "usage", u != NULL ? u : json_null());
    ret = srv_reply_json(st->conn, 200, o, hdrs);
out:
    json_decref(j);
    json_decref(sj);
    council_event_unref(term);
    council_event_unref(synth);
    free(outcome);
    return ret;
}

enum MHD_Result
chat_resume(srv *s, stream *st)
{
    int gone, rc;

    pthread_mutex_lock(&s->mu);
    gone = st->peer_gone;
    pthread_mutex_unlock(&s->mu);
    if (gone)
        return MHD_NO;
    rc = stream_wait_end(st);
    if (rc > 0)
        return MHD_YES;
    if (rc < 0)
        return srv_error(st->conn, 503, "unavailable",
                         "the server is shutting down; run %s was not "
                         "finished",
                         st->run->id);
    return chat_reply(s, st);
}

enum MHD_Result
chat_post(srv *s, struct MHD_Connection *conn, const char *body, size_t len,
          stream **st_out)
{
    chat_req cr;
    int admitted = 0;
    const char *type = NULL;
    cset *cs = NULL;
    const centry *ce;
    run_req rq;
    srun *r = NULL;
    stream *st = NULL;
    chat_state *c = NULL;
    char msg[512];
    unsigned status;
    enum MHD_Result ret;

    memset(&rq, 0, sizeof(rq));
    status = chat_req_parse(body, len, &cr, &type, msg, sizeof(msg));
    if (status != 0)
        return srv_error(conn, status, type, "%s", msg);
    pthread_mutex_lock(&s->mu);
    cs = s->councils;
    cs->refs++;
    pthread_mutex_unlock(&s->mu);
    ce = cset_find(cs, cr.council);
    if (ce == NULL) {
        ret = srv_error(conn, 404, "not_found_error",
                        "the model '%.100s' does not exist: no council named "
                        "\"%.100s\" (GET /v1/models)",
                        cr.model, cr.council);
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        ret = srv_error(conn, 503, "server_error", "out of memory");
        goto out;
    }
    c->include_usage = cr.include_usage;
    snprintf(c->model, sizeof(c->model), "council/%s", ce->name);
    if (cr.streamed) {
        if (stream_admit(s) != 0) {
            ret = srv_refuse_stream(s, conn);
            goto out;
        }
        admitted = 1;
    }
    rq.def = ce->def;
    rq.council_name = ce->name;
    rq.msgs = cr.msgs;
    rq.n_msgs = cr.n_msgs;
    status = srv_start_run(s, &rq, &r, &type, msg, sizeof(msg));
    if (status != 0) {
        ret = srv_error(conn, status, type, "%s", msg);
        goto out;
    }
    snprintf(c->id, sizeof(c->id), "chatcmpl-%s", r->id);
    c->created = (long long)(r->started_us / 1000000);
    st = stream_new(s, cr.streamed ? SK_CHAT : SK_CHAT_WAIT, conn, r, 0);
    if (st == NULL) {
        council_engine_cancel(s->eng, r->id);
        srun_release(s, r);
        ret = srv_error(conn, 503, "server_error", "out of memory");
        goto out;
    }
    st->chat = c;
    c = NULL;
    st->counted = admitted;
    admitted = 0;
    *st_out = st;
    if (cr.streamed) {
        const char *hdrs[] = {"x-council-run-id", r->id, NULL};

        /* The role chunk goes out at once. */
        chunk_open(st);
        sbuf_str(&st->out, "{\"index\":0,\"delta\":{\"role\":\"assistant\","
                           "\"content\":\"\"},\"logprobs\":null,"
                           "\"finish_reason\":null}");
        chunk_close(st);
        ret = stream_queue(st, "text/event-stream", hdrs);
        goto out;
    }
    ret = chat_resume(s, st);
out:
    if (admitted) {
        pthread_mutex_lock(&s->mu);
        s->streams--;
        pthread_mutex_unlock(&s->mu);
    }
    free(c);
    chat_req_free(&cr);
    if (cs != NULL) {
        int last;

        pthread_mutex_lock(&s->mu);
        last = --cs->refs == 0;
        pthread_mutex_unlock(&s->mu);
        if (last)
            cset_free(cs);
    }
    return ret;
}

enum MHD_Result
models_get(srv *s, struct MHD_Connection *conn)
{
    json_t *data = json_array();
    cset *cs;
    size_t i;
    int last;

    if (data == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    pthread_mutex_lock(&s->mu);
    cs = s->councils;
    cs->refs++;
    pthread_mutex_unlock(&s->mu);
    for (i = 0; i < cs->n; i++) {
        char id[200];

        snprintf(id, sizeof(id), "council/%s", cs->e[i].name);
        json_array_append_new(
            data,
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:I}", "id", id, "object",
                      "model", "created",
                      (json_int_t)(cs->e[i].loaded_us / 1000000), "owned_by",
                      "council", "strategy", council_def_strategy(cs->e[i].def),
                      "members",
                      (json_int_t)council_def_member_count(cs->e[i].def)));
    }
    pthread_mutex_lock(&s->mu);
    last = --cs->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        cset_free(cs);
    return srv_reply_json(
        conn, 200, json_pack("{s:s, s:o}", "object", "list", "data", data),
        NULL);
}
