/* SPDX-License-Identifier: MIT */
/*
 * The machinery the strategy hosts share (see host_common.h): provider
 * calls and their events, the result, the pre-synthesis budget, the
 * chairman's fallbacks, and the lifecycle.  A strategy only decides what
 * each stage asks and what comes next.
 *
 * Lifetime: the engine frees the host after council__run_exit; calls still
 * winding down (pending) and the budget timer (until its close callback)
 * keep the state alive, so no callback ever touches freed memory.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "council/host_common.h"
#include "council/strategy.h"

/* ---- lifecycle ----------------------------------------------------------- */

static void
free_member(council__hmember *m)
{
    council__free(m->answer);
    council__free(m->shown);
    json_decref(m->error);
}

static void
maybe_free(council__host *h)
{
    size_t i;

    if (!h->freed || h->pending > 0 || h->timer_open)
        return;
    if (h->sops->free_extra != NULL)
        h->sops->free_extra(h);
    for (i = 0; i < h->n_providers; i++) {
        council__hprovider *p = &h->providers[i];
        if (p->api_key != NULL) {
            memset(p->api_key, 0, strlen(p->api_key));
            council__free(p->api_key);
        }
    }
    council__free(h->providers);
    council__free(h->secrets);
    for (i = 0; i < h->n_members; i++)
        free_member(&h->members[i]);
    council__free(h->members);
    for (i = 0; i < h->n_chairs; i++)
        free_member(&h->chairs[i]);
    council__free(h->chairs);
    for (i = 0; i < h->n_messages; i++) {
        council__free((char *)h->messages[i].role);
        council__free((char *)h->messages[i].content);
    }
    council__free(h->messages);
    council__free(h->synth_prompt);
    council__free(h->last_chair_error);
    json_decref(h->synthesis);
    council_def_free((council_def *)h->def);
    council__free(h);
}

static void
timer_closed(uv_handle_t *t)
{
    council__host *h = t->data;

    h->timer_open = 0;
    maybe_free(h);
}

static void
close_timer(council__host *h)
{
    if (h->timer_open && !uv_is_closing((uv_handle_t *)&h->timer))
        uv_close((uv_handle_t *)&h->timer, timer_closed);
}

static void
finish_exit(council__host *h, const char *reason)
{
    if (h->exited)
        return;
    h->exited = 1;
    close_timer(h);
    council__run_exit(h->run, reason);
}

static void
cancel_calls(council__host *h, int members_only)
{
    size_t i;
    int s;

    for (i = 0; i < h->n_members; i++)
        for (s = 0; s < 2; s++)
            if (h->members[i].calls[s].chat != NULL)
                council__chat_cancel(h->members[i].calls[s].chat);
    if (members_only)
        return;
    for (i = 0; i < h->n_chairs; i++)
        for (s = 0; s < 2; s++)
            if (h->chairs[i].calls[s].chat != NULL)
                council__chat_cancel(h->chairs[i].calls[s].chat);
}

/* ---- usage sums ---------------------------------------------------------- */

static const char *const stage_names[COUNCIL__N_STAGES] = {
    "answer", "review", "vote", "debate", "synthesis"};

static int
stage_index(const char *stage)
{
    int i;

    for (i = 0; stage != NULL && i < COUNCIL__N_STAGES; i++)
        if (strcmp(stage, stage_names[i]) == 0)
            return i;
    return -1;
}

/* A call started: unknown until it reports usage. */
static void
sum_start(council__usage_sum *s)
{
    s->calls++;
    s->unknown++;
}

static void
sum_done(council__usage_sum *s, const council__usage *u)
{
    if (u->known) {
        s->reported++;
        if (!u->partial)
            s->unknown--;
        s->prompt_tokens += u->prompt_tokens;
        s->completion_tokens += u->completion_tokens;
    }
    if (u->cost_known) {
        s->cost_calls++;
        s->cost += u->cost;
    }
}

static council__hmember *call_member(council__hcall *c);

/* Every sum a call belongs to: its member (or chairman model), its stage,
 * the running stage's round and the run. */
static void
account(council__hcall *c, const council__usage *u)
{
    council__host *h = c->h;
    council__usage_sum *sums[4];
    int s = stage_index(c->stage), n = 0, i;

    sums[n++] = &call_member(c)->sum;
    sums[n++] = &h->total;
    if (s >= 0)
        sums[n++] = &h->stages[s];
    if (c->epoch == h->stage_epoch)
        sums[n++] = &h->cur;
    for (i = 0; i < n; i++) {
        if (u == NULL)
            sum_start(sums[i]);
        else
            sum_done(sums[i], u);
    }
}

json_t *
council__host_sum_json(const council__usage_sum *s)
{
    json_t *o = json_pack("{s:I,s:I,s:b}", "calls", (json_int_t)s->calls,
                          "unknown_calls", (json_int_t)s->unknown, "complete",
                          s->unknown == 0);

    if (o == NULL)
        return NULL;
    if (s->reported > 0 || s->calls == 0) {
        json_object_set_new(o, "prompt_tokens", json_integer(s->prompt_tokens));
        json_object_set_new(o, "completion_tokens",
                            json_integer(s->completion_tokens));
        json_object_set_new(
            o, "total_tokens",
            json_integer(s->prompt_tokens + s->completion_tokens));
    }
    if (s->calls > 0 && s->cost_calls == s->calls)
        json_object_set_new(o, "cost", json_real(s->cost));
    else if (s->cost_calls > 0)
        json_object_set_new(o, "cost_partial", json_real(s->cost));
    return o;
}

/* ---- events and JSON ----------------------------------------------------- */

/* ---- redaction ------------------------------------------------------------
 *
 * No configured secret (a provider's API key, as the environment gave it)
 * is ever recorded or logged: a provider may echo a key as answer text, a
 * user may paste one into a question, and an error may quote one.  Every
 * event is redacted here, on its way out of the host, in its text and in
 * every string of its data (answers, the result, errors, the question), so
 * what the bus, the recorders, the stores, the server and the CLI's
 * output and logs see never holds one.  Streamed text is redacted over
 * the concatenation of a call's deltas (emit_streamed), so a key split
 * across deltas is caught too.
 */

/* The first copy of a secret in t[from..len): its offset and length (the
 * longest of the secrets that start there), 0 when there is none. */
static int
find_secret(const council__host *h, const char *t, size_t len, size_t from,
            size_t *at, size_t *klen)
{
    size_t i, best = SIZE_MAX, blen = 0;

    for (i = 0; i < h->n_secrets; i++) {
        size_t k = strlen(h->secrets[i]);
        const char *p;

        if (k > len - from)
            continue;
        p = memmem(t + from, len - from, h->secrets[i], k);
        if (p == NULL)
            continue;
        if ((size_t)(p - t) < best || ((size_t)(p - t) == best && k > blen)) {
            best = (size_t)(p - t);
            blen = k;
        }
    }
    if (blen == 0)
        return 0;
    *at = best;
    *klen = blen;
    return 1;
}

int
council__host_redact(const council__host *h, const char *text, size_t len,
                     char **out, size_t *out_len)
{
    static const char rep[] = "[redacted]";
    size_t at, klen, from = 0, n = 0, cap;
    char *o;

    *out = NULL;
    *out_len = 0;
    if (h->n_secrets == 0 || len == 0 ||
        !find_secret(h, text, len, 0, &at, &klen))
        return 0;
    /* A secret is at least one byte: the text grows at most
     * sizeof(rep) - 1 times. */
    cap = len + 1;
    o = council__malloc(cap);
    if (o == NULL)
        return -1;
    do {
        size_t need = n + (at - from) + sizeof(rep) - 1 + (len - at - klen) + 1;

        if (need > cap) {
            char *g = council__realloc(o, need * 2);

            if (g == NULL) {
                council__free(o);
                return -1;
            }
            o = g;
            cap = need * 2;
        }
        memcpy(o + n, text + from, at - from);
        n += at - from;
        memcpy(o + n, rep, sizeof(rep) - 1);
        n += sizeof(rep) - 1;
        from = at + klen;
    } while (from < len && find_secret(h, text, len, from, &at, &klen));
    memcpy(o + n, text + from, len - from);
    n += len - from;
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return 1;
}

/* Every string in v (values, not keys: those are the schema's and the
 * definition's names), redacted in place.  0, or -1 when out of memory. */
static int
redact_json(const council__host *h, json_t *v, int depth)
{
    if (depth > 64)
        return 0; /* deeper than any event's data is built */
    if (json_is_string(v)) {
        char *r;
        size_t n;
        int rc = council__host_redact(h, json_string_value(v),
                                      json_string_length(v), &r, &n);

        if (rc <= 0)
            return rc;
        rc = json_string_setn(v, r, n);
        council__free(r);
        return rc == 0 ? 0 : -1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;

        json_object_foreach (v, k, x)
            if (redact_json(h, x, depth + 1) != 0)
                return -1;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;

        json_array_foreach (v, i, x)
            if (redact_json(h, x, depth + 1) != 0)
                return -1;
    }
    return 0;
}

static void emit_event(council__host *h, council_event_type type,
                       const char *stage, int round, const char *who,
                       const char *text, size_t len, json_t *data);

void
council__host_emit(council__host *h, council_event_type type, const char *stage,
                   int round, const char *who, const char *text, size_t len,
                   json_t *data)
{
    char *r = NULL;
    size_t rlen = 0;
    int rc = 0;

    if (h->n_secrets > 0 && !h->exited) {
        /* Deltas were redacted where they stream (emit_streamed). */
        if (type != COUNCIL_EV_MEMBER_DELTA &&
            type != COUNCIL_EV_SYNTHESIS_DELTA && text != NULL)
            rc = council__host_redact(h, text, len, &r, &rlen);
        if (rc >= 0 && data != NULL && redact_json(h, data, 0) != 0)
            rc = -1;
        if (rc < 0) {
            /* Out of memory: the event goes without its text and data
             * rather than with a secret. */
            council__free(r);
            r = NULL;
            json_decref(data);
            data = NULL;
            text = NULL;
            len = 0;
        } else if (r != NULL) {
            text = r;
            len = rlen;
        }
    }
    emit_event(h, type, stage, round, who, text, len, data);
    council__free(r);
}

static void
emit_event(council__host *h, council_event_type type, const char *stage,
           int round, const char *who, const char *text, size_t len,
           json_t *data)
{
    council__event_init in;

    if (h->exited) {
        json_decref(data);
        return;
    }
    if (type == COUNCIL_EV_STAGE_STARTED) {
        int s = stage_index(stage);

        if (s >= 0)
            h->stage_seen[s] = 1;
        memset(&h->cur, 0, sizeof(h->cur));
        h->stage_epoch++;
    } else if (type == COUNCIL_EV_STAGE_COMPLETED) {
        if (data == NULL)
            data = json_object();
        if (data != NULL)
            json_object_set_new(data, "usage", council__host_sum_json(&h->cur));
    }
    memset(&in, 0, sizeof(in));
    in.type = type;
    in.stage = stage;
    in.round = round;
    in.member = who;
    in.text = text;
    in.text_len = len;
    in.data = data;
    council__run_emit(h->run, &in);
}

json_t *
council__host_usage_json(const council__usage *u)
{
    json_t *o;

    if (!u->known)
        return json_null();
    o = json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                  (json_int_t)u->prompt_tokens, "completion_tokens",
                  (json_int_t)u->completion_tokens, "total_tokens",
                  (json_int_t)(u->prompt_tokens + u->completion_tokens));
    if (o != NULL && u->cost_known)
        json_object_set_new(o, "cost", json_real(u->cost));
    if (o != NULL && u->partial)
        json_object_set_new(o, "partial", json_true());
    return o;
}

json_t *
council__host_error_json(council__host *h, const council__chat_result *res)
{
    json_t *e;

    if (h->budget_out && res->kind == COUNCIL__CALL_CANCELLED) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "cut when the stages' budget ran out (%llu ms of the "
                 "%llu ms deadline; the rest is kept for the synthesis)",
                 (unsigned long long)h->budget_ms,
                 (unsigned long long)h->deadline_ms);
        return json_pack("{s:s,s:s}", "kind", "deadline", "message", msg);
    }
    e = json_pack("{s:s,s:s}", "kind", council__call_errkind_name(res->kind),
                  "message", res->message);
    if (e == NULL)
        return NULL;
    if (res->http_status != 0)
        json_object_set_new(e, "http_status", json_integer(res->http_status));
    if (res->error_type[0] != '\0')
        json_object_set_new(e, "type", json_string(res->error_type));
    if (res->kind != COUNCIL__CALL_CANCELLED) {
        json_object_set_new(e, "retryable", json_boolean(res->retryable));
        json_object_set_new(e, "attempts", json_integer(res->attempts));
    }
    return e;
}

json_t *
council__host_failed_json(const council__chat_result *res, const char *model,
                          json_t *error)
{
    return json_pack("{s:s,s:o,s:o}", "model", model, "error", error, "usage",
                     council__host_usage_json(&res->usage));
}

json_t *
council__host_call_info(const council__chat_result *res, const char *model)
{
    json_t *d = json_pack("{s:s,s:o,s:I,s:I}", "model", model, "usage",
                          council__host_usage_json(&res->usage), "latency_ms",
                          (json_int_t)res->latency_ms, "first_byte_ms",
                          (json_int_t)res->first_byte_ms);

    if (d != NULL && res->finish_reason != NULL)
        json_object_set_new(d, "finish_reason",
                            json_string(res->finish_reason));
    return d;
}

/*
 * A member cut while it streamed its answer (the run cancelled, or failed,
 * mid-answer): its text so far, marked "partial": true, in a partial
 * result's answers.  The call is still there (its on_done comes later,
 * from the loop), and so is the text it streamed.  Redacted here, as it
 * is not an event's text (council__host_emit redacts the result again,
 * which finds nothing more).
 */
static void
partial_answer(council__host *h, const council__hmember *m, json_t *answers)
{
    const char *t = NULL;
    char *r = NULL;
    size_t n = 0, rn;
    int s;

    for (s = 0; s < 2 && t == NULL; s++)
        if (m->calls[s].chat != NULL && m->calls[s].streamed)
            t = council__chat_text_so_far(m->calls[s].chat, &n);
    if (t == NULL)
        return;
    if (council__host_redact(h, t, n, &r, &rn) < 0)
        return; /* out of memory: left out rather than unredacted */
    json_array_append_new(
        answers, json_pack("{s:s,s:s,s:s%,s:n,s:b}", "member", m->name, "model",
                           m->model, "text", r != NULL ? r : t,
                           r != NULL ? rn : n, "usage", "partial", 1));
    council__free(r);
}

/* The partial or final result object. */
static json_t *
result_json(council__host *h, const char *answer, size_t answer_len)
{
    json_t *answers = json_array(), *failed = json_array(), *usage, *r, *by;
    size_t i;

    for (i = 0; i < h->n_members; i++) {
        council__hmember *m = &h->members[i];
        if (m->state == COUNCIL__M_DONE)
            json_array_append_new(
                answers,
                json_pack("{s:s,s:s,s:s%,s:o}", "member", m->name, "model",
                          m->model, "text", m->answer, m->answer_len, "usage",
                          council__host_usage_json(&m->usage)));
        else if (m->state == COUNCIL__M_STREAMING && answer == NULL)
            partial_answer(h, m, answers);
        else if (m->error != NULL)
            json_array_append_new(failed,
                                  json_pack("{s:s,s:o}", "member", m->name,
                                            "error", json_deep_copy(m->error)));
    }
    /* null when no call reported usage, as before the sums had counts. */
    usage =
        h->total.reported > 0 ? council__host_sum_json(&h->total) : json_null();
    r = json_pack("{s:s,s:s,s:o,s:o,s:o,s:I}", "council", h->council_name,
                  "strategy", h->sops->name, "answers", answers, "failed",
                  failed, "usage", usage, "seed", (json_int_t)h->seed);
    if (r == NULL)
        return NULL;
    by = json_object();
    for (i = 0; by != NULL && i < h->n_members; i++)
        json_object_set_new(by, h->members[i].name,
                            council__host_sum_json(&h->members[i].sum));
    json_object_set_new(r, "usage_by_member", by);
    by = json_object();
    for (i = 0; by != NULL && i < h->n_chairs; i++) {
        /* By model: fallbacks that share a model share an entry. */
        council__usage_sum s = h->chairs[i].sum;
        size_t j;

        if (s.calls == 0)
            continue;
        for (j = 0; j < i; j++)
            if (strcmp(h->chairs[j].model, h->chairs[i].model) == 0)
                break;
        if (j < i)
            continue; /* added with the first of its model */
        for (j = i + 1; j < h->n_chairs; j++) {
            const council__usage_sum *o = &h->chairs[j].sum;

            if (strcmp(h->chairs[j].model, h->chairs[i].model) != 0)
                continue;
            s.calls += o->calls;
            s.unknown += o->unknown;
            s.reported += o->reported;
            s.cost_calls += o->cost_calls;
            s.prompt_tokens += o->prompt_tokens;
            s.completion_tokens += o->completion_tokens;
            s.cost += o->cost;
        }
        json_object_set_new(by, h->chairs[i].model, council__host_sum_json(&s));
    }
    json_object_set_new(r, "usage_by_chairman", by);
    by = json_object();
    for (i = 0; by != NULL && i < COUNCIL__N_STAGES; i++)
        if (h->stage_seen[i])
            json_object_set_new(by, stage_names[i],
                                council__host_sum_json(&h->stages[i]));
    json_object_set_new(r, "usage_by_stage", by);
    if (h->sops->result_extra != NULL)
        h->sops->result_extra(h, r);
    if (answer != NULL)
        json_object_set_new(r, "answer", json_stringn(answer, answer_len));
    if (h->synthesis != NULL)
        json_object_set_new(r, "synthesis", json_deep_copy(h->synthesis));
    return r;
}

void
council__host_fail(council__host *h, const char *kind, const char *message)
{
    json_t *data;

    if (h->ended || h->exited)
        return;
    data = json_pack("{s:[{s:s,s:s}],s:o}", "errors", "kind", kind, "message",
                     message, "result", result_json(h, NULL, 0));
    council__host_emit(h, COUNCIL_EV_RUN_FAILED, NULL, 0, NULL, NULL, 0, data);
    h->ended = 1;
    cancel_calls(h, 0);
    if (h->pending == 0)
        finish_exit(h, kind);
}

static void
complete(council__host *h, const char *text, size_t len)
{
    council__host_emit(h, COUNCIL_EV_STAGE_COMPLETED, "synthesis", 0, NULL,
                       NULL, 0, NULL);
    council__host_emit(h, COUNCIL_EV_RUN_COMPLETED, NULL, 0, NULL, NULL, 0,
                       json_pack("{s:o}", "result", result_json(h, text, len)));
    h->ended = 1;
    if (h->pending == 0)
        finish_exit(h, "completed");
}

/* ---- provider calls ------------------------------------------------------ */

static void on_delta(const char *text, size_t len, void *ud);
static void on_done(const council__chat_result *res, void *ud);

uint64_t
council__host_budget_left(council__host *h)
{
    uint64_t el;

    if (h->budget_ms == 0)
        return UINT64_MAX;
    el = uv_now(council__run_loop(h->run)) - h->t0;
    return el >= h->budget_ms ? 0 : h->budget_ms - el;
}

static uint64_t
deadline_left(council__host *h)
{
    uint64_t el;

    if (h->deadline_ms == 0)
        return UINT64_MAX;
    el = uv_now(council__run_loop(h->run)) - h->t0;
    return el >= h->deadline_ms ? 0 : h->deadline_ms - el;
}

/* A call's messages: the member's system prompt, then user_text, or the
 * run's messages when user_text is NULL (all borrowed). */
static council_message *
call_msgs(const council__host *h, const council__hmember *m,
          const char *user_text, size_t *n_out)
{
    council_message *msgs = council__calloc(h->n_messages + 2, sizeof(*msgs));
    size_t n = 0, i;

    if (msgs == NULL)
        return NULL;
    if (m->system != NULL)
        msgs[n++] = (council_message){"system", m->system};
    if (user_text == NULL) {
        for (i = 0; i < h->n_messages; i++)
            msgs[n++] = h->messages[i];
    } else {
        msgs[n++] = (council_message){"user", user_text};
    }
    *n_out = n;
    return msgs;
}

/* cbs.messages: the same messages again, for a retry whose request body
 * was let go. */
static int
call_messages_again(void *ud, council_message **msgs, size_t *n, char **scratch)
{
    council__hcall *c = ud;
    council__host *h = c->h;
    const council__hmember *m =
        c->member >= 0 ? &h->members[c->member] : &h->chairs[h->chair_at];
    const char *text = NULL;

    *scratch = NULL;
    switch (c->again) {
    case COUNCIL__AGAIN_QUESTION:
        break;
    case COUNCIL__AGAIN_SYNTH:
        text = h->synth_prompt;
        break;
    case COUNCIL__AGAIN_STRATEGY:
        text = *scratch = h->sops->prompt_again(h, c);
        break;
    default:
        return -1;
    }
    if (c->again != COUNCIL__AGAIN_QUESTION && text == NULL)
        return -1;
    *msgs = call_msgs(h, m, text, n);
    if (*msgs == NULL) {
        council__free(*scratch);
        *scratch = NULL;
        return -1;
    }
    return 0;
}

static int
start_call(council__host *h, council__hmember *m, int index, const char *stage,
           int round, const char *user_text, uint64_t left)
{
    static const council__chat_cbs cbs = {on_delta, on_done,
                                          call_messages_again};
    council_message *msgs;
    council__chat_req req;
    council__hcall *c;
    uint64_t total = h->limits.member_timeout_ms;
    size_t n = 0;
    council_err rc;
    int again = COUNCIL__AGAIN_NONE;

    if (left < total)
        total = left > 0 ? left : 1;
    if (user_text == NULL)
        again = COUNCIL__AGAIN_QUESTION;
    else if (index < 0 && user_text == h->synth_prompt)
        again = COUNCIL__AGAIN_SYNTH;
    else if (index >= 0 && h->sops->prompt_again != NULL &&
             h->sops->again_stage != NULL &&
             strcmp(stage, h->sops->again_stage) == 0)
        again = COUNCIL__AGAIN_STRATEGY;
    msgs = call_msgs(h, m, user_text, &n);
    if (msgs == NULL)
        return -1;
    memset(&req, 0, sizeof(req));
    req.model = m->model;
    req.messages = msgs;
    req.n_messages = n;
    req.max_tokens = h->limits.max_tokens;
    req.connect_timeout_ms = total < 10000 ? total : 10000;
    req.first_byte_timeout_ms = total;
    req.idle_timeout_ms = total;
    req.total_timeout_ms = total;
    req.retries = h->limits.retries;
    req.rebuildable = again != COUNCIL__AGAIN_NONE;
    c = &m->calls[m->next_slot];
    m->next_slot ^= 1;
    memset(c, 0, sizeof(*c));
    c->h = h;
    c->member = index;
    c->stage = stage;
    c->round = round;
    c->epoch = h->stage_epoch;
    c->again = again;
    rc = council__chat_start(h->http, &h->providers[m->provider].cfg, &req,
                             &cbs, c, &c->chat);
    council__free(msgs);
    if (rc != COUNCIL_OK)
        return -1;
    h->pending++;
    account(c, NULL);
    return 0;
}

int
council__host_call(council__host *h, int member, const char *stage, int round,
                   const char *user_text)
{
    council__hmember *m = &h->members[member];

    council__host_emit(h, COUNCIL_EV_MEMBER_STARTED, stage, round, m->name,
                       NULL, 0, json_pack("{s:s}", "model", m->model));
    if (start_call(h, m, member, stage, round, user_text,
                   council__host_budget_left(h)) != 0)
        return -1;
    m->busy = 1;
    return 0;
}

static council__hmember *
call_member(council__hcall *c)
{
    return c->member >= 0 ? &c->h->members[c->member]
                          : &c->h->chairs[c->h->chair_at];
}

static void
emit_delta(council__hcall *c, const char *text, size_t len)
{
    council__host *h = c->h;

    if (len == 0)
        return;
    council__host_emit(
        h, c->member < 0 ? COUNCIL_EV_SYNTHESIS_DELTA : COUNCIL_EV_MEMBER_DELTA,
        c->stage, c->round, c->member >= 0 ? call_member(c)->name : NULL, text,
        len, NULL);
}

/*
 * A call's streamed text on its way out, redacted over the concatenation
 * of its deltas: a key may come split across two or more of them.
 *
 * Method: the text held back from the deltas before (c->held) and this
 * delta are joined; every whole secret in the join is replaced; then the
 * longest end of the result that is the beginning of a secret (shorter
 * than it) is held back again and the rest is emitted.  What is emitted
 * can never become part of a secret: one that began in it would make a
 * longer end the beginning of a secret.  At most secret_max - 1 bytes are
 * held; they go out with the next delta, or when the call ends (flush).
 * A stream that ends inside a secret's first bytes (an echo cut short)
 * emits them then: they are not the secret.
 */
static void
emit_streamed(council__hcall *c, const char *text, size_t len, int flush)
{
    council__host *h = c->h;
    char *join = NULL, *r = NULL;
    const char *t = text;
    size_t n = len, rlen, j, i;
    int rc;

    if (h->n_secrets == 0) {
        emit_delta(c, text, len);
        return;
    }
    if (c->held_len > 0) {
        join = council__malloc(c->held_len + len + 1);
        if (join == NULL)
            goto oom;
        memcpy(join, c->held, c->held_len);
        if (len > 0)
            memcpy(join + c->held_len, text, len);
        t = join;
        n = c->held_len + len;
        c->held_len = 0;
    }
    rc = council__host_redact(h, t, n, &r, &rlen);
    if (rc < 0)
        goto oom;
    if (rc > 0) {
        t = r;
        n = rlen;
    }
    j = n;
    if (!flush) {
        /* The earliest start of an end of t that a secret begins with. */
        for (j = n > h->secret_max - 1 ? n - (h->secret_max - 1) : 0; j < n;
             j++) {
            for (i = 0; i < h->n_secrets; i++) {
                size_t k = strlen(h->secrets[i]);

                if (n - j < k && memcmp(t + j, h->secrets[i], n - j) == 0)
                    break;
            }
            if (i < h->n_secrets)
                break;
        }
        if (j < n) {
            if (c->held == NULL) {
                c->held = council__malloc(h->secret_max);
                if (c->held == NULL)
                    goto oom;
            }
            memcpy(c->held, t + j, n - j);
            c->held_len = n - j;
        }
    }
    emit_delta(c, t, j);
    council__free(r);
    council__free(join);
    return;
oom:
    /* The text is lost from the deltas (the answer keeps it, redacted),
     * never emitted unredacted. */
    council__free(r);
    council__free(join);
    c->held_len = 0;
}

static void
on_delta(const char *text, size_t len, void *ud)
{
    council__hcall *c = ud;
    council__host *h = c->h;
    council__hmember *m = call_member(c);

    if (h->cancelled || h->ended || h->exited)
        return;
    c->streamed = 1;
    if (c->member >= 0 && m->state == COUNCIL__M_WAITING)
        m->state = COUNCIL__M_STREAMING;
    emit_streamed(c, text, len, 0);
}

static void synth_done(council__host *h, const council__chat_result *res);

static void
on_done(const council__chat_result *res, void *ud)
{
    council__hcall *c = ud;
    council__host *h = c->h;

    c->chat = NULL;
    h->pending--;
    /* The end of the stream: what was held back goes out before the
     * call's own event (unless the run is winding down). */
    if (c->held_len > 0 && !(h->exited || h->cancelled || h->ended))
        emit_streamed(c, NULL, 0, 1);
    council__free(c->held);
    c->held = NULL;
    c->held_len = 0;
    if (h->exited || h->cancelled || h->ended) {
        /* Winding down: the terminal event is out already. */
        if (!h->exited && h->pending == 0)
            finish_exit(h, h->cancelled ? "cancelled" : "ended");
        maybe_free(h);
        return;
    }
    account(c, &res->usage);
    if (c->member < 0) {
        synth_done(h, res);
        return;
    }
    h->members[c->member].busy = 0;
    h->sops->call_done(h, c, res);
}

int
council__host_answer_done(council__host *h, council__hcall *c,
                          const council__chat_result *res)
{
    council__hmember *m = &h->members[c->member];
    json_t *e;

    if (res->err == COUNCIL_OK && res->text_len > 0) {
        /* Kept redacted: the answer goes into the other members' and the
         * chairman's prompts, and no provider is sent another's key. */
        char *a = NULL;
        size_t alen = 0;
        int red = council__host_redact(h, res->text, res->text_len, &a, &alen);

        if (red == 0) {
            a = council__strndup(res->text, res->text_len);
            alen = res->text_len;
        }
        if (a != NULL) {
            council__free(m->answer);
            m->answer = a;
            m->answer_len = alen;
            m->usage = res->usage;
            m->state = COUNCIL__M_DONE;
            council__host_emit(h, COUNCIL_EV_MEMBER_COMPLETED, c->stage,
                               c->round, m->name, a, alen,
                               council__host_call_info(res, m->model));
            return 1;
        }
        e = json_pack("{s:s,s:s}", "kind", "internal", "message",
                      "out of memory");
    } else if (res->err == COUNCIL_OK) {
        e = json_pack("{s:s,s:s}", "kind", "empty", "message",
                      "the model returned an empty answer");
    } else {
        e = council__host_error_json(h, res);
    }
    m->state = COUNCIL__M_FAILED;
    json_decref(m->error);
    m->error = json_deep_copy(e);
    council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, c->stage, c->round, m->name,
                       NULL, 0, council__host_failed_json(res, m->model, e));
    return 0;
}

int
council__host_check_quorum(council__host *h, const char *stage)
{
    size_t i, ok = 0;
    char msg[240];

    for (i = 0; i < h->n_members; i++)
        if (h->members[i].state == COUNCIL__M_DONE)
            ok++;
    if (ok >= (size_t)h->limits.quorum)
        return (int)ok;
    snprintf(msg, sizeof(msg),
             "%zu of %zu members answered%s%s%s; "
             "quorum is %d",
             ok, h->n_members, strcmp(stage, "answer") != 0 ? " in the " : "",
             strcmp(stage, "answer") != 0 ? stage : "",
             h->budget_out ? " before the stages' budget ran out" : "",
             h->limits.quorum);
    council__host_fail(h, h->budget_out ? "deadline" : "quorum", msg);
    return -1;
}

/* ---- the budget ---------------------------------------------------------- */

static void
budget_fired(uv_timer_t *t)
{
    council__host *h = t->data;

    if (h->ended || h->exited || h->cancelled || h->in_synthesis)
        return;
    h->budget_out = 1;
    /* The stage ends with what arrived: each cut call comes back through
     * on_done (ECANCELED) and its strategy moves on to the synthesis. */
    cancel_calls(h, 1);
}

/* ---- synthesis with fallbacks ------------------------------------------- */

/* Keeps why the last chairman failed (for the run's error if no member
 * answer stands in); on allocation failure a fixed text stands in. */
static void chair_error(council__host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
chair_error(council__host *h, const char *fmt, ...)
{
    char buf[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    council__free(h->last_chair_error);
    h->last_chair_error = council__strdup(buf);
}

static void
use_top_member(council__host *h)
{
    int top = h->sops->top_member(h);
    council__hmember *m;
    char msg[700];

    if (top < 0 || h->members[top].answer == NULL) {
        snprintf(msg, sizeof(msg), "%s; no member answer to fall back on",
                 h->last_chair_error != NULL ? h->last_chair_error
                                             : "the chairman failed");
        council__host_fail(h, "synthesis", msg);
        return;
    }
    m = &h->members[top];
    json_decref(h->synthesis);
    h->synthesis =
        json_pack("{s:s,s:s}", "fallback", "top_member", "member", m->name);
    council__host_emit(h, COUNCIL_EV_SYNTHESIS_COMPLETED, "synthesis", 0, NULL,
                       m->answer, m->answer_len,
                       json_pack("{s:s,s:s,s:s}", "fallback", "top_member",
                                 "member", m->name, "model", m->model));
    complete(h, m->answer, m->answer_len);
}

static void
try_chair(council__host *h)
{
    while (h->chair_at < h->n_chairs) {
        council__hmember *ch = &h->chairs[h->chair_at];
        json_t *d = json_pack("{s:s,s:s}", "model", ch->model, "provider",
                              h->providers[ch->provider].name);

        if (d != NULL && h->chair_at > 0)
            json_object_set_new(d, "fallback",
                                json_integer((json_int_t)h->chair_at));
        council__host_emit(h, COUNCIL_EV_SYNTHESIS_STARTED, "synthesis", 0,
                           NULL, NULL, 0, d);
        if (h->synth_prompt != NULL &&
            start_call(h, ch, -1, "synthesis", 0, h->synth_prompt,
                       deadline_left(h)) == 0)
            return;
        chair_error(h, "the chairman (%s) could not start", ch->model);
        council__host_emit(
            h, COUNCIL_EV_MEMBER_FAILED, "synthesis", 0, "chairman", NULL, 0,
            json_pack("{s:s,s:{s:s,s:s}}", "model", ch->model, "error", "kind",
                      "internal", "message", "could not start the call"));
        h->chair_at++;
    }
    use_top_member(h);
}

void
council__host_synthesize(council__host *h)
{
    if (h->ended || h->exited)
        return;
    h->in_synthesis = 1;
    council__free(h->synth_prompt);
    h->synth_prompt = h->sops->synth_prompt(h);
    council__host_emit(h, COUNCIL_EV_STAGE_STARTED, "synthesis", 0, NULL, NULL,
                       0, NULL);
    h->chair_at = 0;
    try_chair(h);
}

static void
synth_done(council__host *h, const council__chat_result *res)
{
    council__hmember *ch = &h->chairs[h->chair_at];

    if (res->err != COUNCIL_OK || res->text_len == 0) {
        json_t *e = res->err != COUNCIL_OK
                        ? council__host_error_json(h, res)
                        : json_pack("{s:s,s:s}", "kind", "empty", "message",
                                    "the model returned an empty answer");
        chair_error(h, "the chairman (%s) failed: %s", ch->model,
                    res->err != COUNCIL_OK ? res->message : "empty answer");
        council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, "synthesis", 0,
                           "chairman", NULL, 0,
                           council__host_failed_json(res, ch->model, e));
        h->chair_at++;
        try_chair(h);
        return;
    }
    json_decref(h->synthesis);
    h->synthesis = json_pack("{s:s,s:s}", "by", "chairman", "model", ch->model);
    if (h->synthesis != NULL && h->chair_at > 0)
        json_object_set_new(h->synthesis, "fallback",
                            json_integer((json_int_t)h->chair_at));
    {
        json_t *info = council__host_call_info(res, ch->model);
        if (info != NULL && h->sops->synth_extra != NULL)
            h->sops->synth_extra(h, res->text, res->text_len, info);
        council__host_emit(h, COUNCIL_EV_SYNTHESIS_COMPLETED, "synthesis", 0,
                           NULL, res->text, res->text_len, info);
    }
    complete(h, res->text, res->text_len);
}

/* ---- host ops ------------------------------------------------------------ */

static council_err
h_start(council_run *run, void *state, char *msg, size_t msg_size)
{
    council__host *h = state;
    json_t *members, *msgs, *data;
    uint64_t reserve;
    size_t i;

    h->run = run;
    h->http = council__run_http(run);
    if (h->http == NULL) {
        snprintf(msg, msg_size, "could not set up the HTTP client");
        return COUNCIL_ESTART;
    }
    if (h->seed == 0)
        h->seed = council__run_seed(run);
    h->t0 = uv_now(council__run_loop(run));
    h->deadline_ms = council__run_deadline_ms(run);
    if (h->deadline_ms > 0) {
        reserve = h->limits.synthesis_reserve_ms > 0
                      ? h->limits.synthesis_reserve_ms
                      : h->deadline_ms *
                            (uint64_t)h->limits.synthesis_reserve_pct / 100;
        if (reserve < h->deadline_ms && reserve > 0) {
            h->budget_ms = h->deadline_ms - reserve;
            uv_timer_init(council__run_loop(run), &h->timer);
            h->timer.data = h;
            h->timer_open = 1;
            uv_timer_start(&h->timer, budget_fired, h->budget_ms, 0);
        }
    }
    members = json_array();
    for (i = 0; i < h->n_members; i++)
        json_array_append_new(
            members,
            json_pack("{s:s,s:s,s:s}", "name", h->members[i].name, "provider",
                      h->providers[h->members[i].provider].name, "model",
                      h->members[i].model));
    msgs = json_array();
    for (i = 0; i < h->n_messages; i++)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role",
                                              h->messages[i].role, "content",
                                              h->messages[i].content));
    data =
        json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:s},s:I}", "council",
                  h->council_name, "strategy", h->sops->name, "question",
                  h->question, "messages", msgs, "members", members, "chairman",
                  "provider", h->providers[h->chairs[0].provider].name, "model",
                  h->chairs[0].model, "seed", (json_int_t)h->seed);
    if (data != NULL && h->n_chairs > 1) {
        json_t *fb = json_array();
        for (i = 1; i < h->n_chairs; i++)
            json_array_append_new(
                fb, json_pack("{s:s,s:s}", "provider",
                              h->providers[h->chairs[i].provider].name, "model",
                              h->chairs[i].model));
        json_object_set_new(json_object_get(data, "chairman"), "fallback", fb);
    }
    if (data != NULL && h->sops->started_extra != NULL)
        h->sops->started_extra(h, data);
    council__host_emit(h, COUNCIL_EV_RUN_STARTED, NULL, 0, NULL, NULL, 0, data);
    h->sops->begin(h);
    return COUNCIL_OK;
}

static void
h_cancel(void *state, const char *kind)
{
    council__host *h = state;

    if (h->cancelled || h->exited || h->ended)
        return;
    h->cancelled = 1;
    cancel_calls(h, 0);
    council__host_fail(h, kind,
                       strcmp(kind, "deadline") == 0
                           ? "the run's deadline passed"
                           : "the run was cancelled");
}

static void
h_shutdown(void *state)
{
    council__host *h = state;

    h->cancelled = 1;
    cancel_calls(h, 0);
    finish_exit(h, "shutdown");
}

static void
h_free(void *state)
{
    council__host *h = state;

    h->freed = 1;
    close_timer(h);
    maybe_free(h);
}

static const council__host_ops host_ops = {h_start, h_cancel, h_shutdown,
                                           h_free};

/* ---- building the host (caller's thread) -------------------------------- */

static int
copy_member(council__hmember *dst, const council__member_def *src,
            const char *system)
{
    dst->name = src->name;
    dst->model = src->model;
    dst->system = src->system != NULL ? src->system : system;
    dst->provider = src->provider;
    return 0;
}

static void
set_diag(council_diag *diag, const char *msg)
{
    if (diag == NULL)
        return;
    memset(diag, 0, sizeof(*diag));
    /* Messages are built in larger buffers: truncate on purpose. */
    snprintf(diag->msg, sizeof(diag->msg), "%.*s", (int)sizeof(diag->msg) - 1,
             msg);
}

council_err
council__host_new(const council_def *def, const council_message *msgs,
                  size_t n_msgs, uint64_t seed,
                  const council__strategy_ops *sops, size_t size,
                  const council__host_ops **ops, void **state,
                  council_diag *diag)
{
    council__host *h = council__calloc(1, size);
    council_err rc = COUNCIL_ENOMEM;
    char buf[300];
    size_t i;

    if (h == NULL)
        return COUNCIL_ENOMEM;
    h->sops = sops;
    h->seed = seed;
    h->limits = def->limits;
    h->def = council__def_ref(def);
    h->council_name = def->name;
    h->providers = council__calloc(def->n_providers, sizeof(*h->providers));
    h->members = council__calloc(def->n_members, sizeof(*h->members));
    h->chairs = council__calloc(def->n_chair_fallback + 1, sizeof(*h->chairs));
    h->messages = council__calloc(n_msgs, sizeof(council_message));
    if (h->council_name == NULL || h->providers == NULL || h->members == NULL ||
        h->chairs == NULL || h->messages == NULL)
        goto fail;
    for (i = 0; i < def->n_providers; i++) {
        const council__provider_def *pd = &def->providers[i];
        council__hprovider *p = &h->providers[i];
        h->n_providers++;
        p->name = pd->name;
        p->base_url = pd->base_url;
        if (pd->api_key_env != NULL) {
            const char *key = getenv(pd->api_key_env);
            if (key == NULL || key[0] == '\0') {
                snprintf(buf, sizeof(buf),
                         "provider %s: environment variable %s is not set "
                         "(it holds the API key)",
                         pd->name, pd->api_key_env);
                set_diag(diag, buf);
                rc = COUNCIL_EINVAL;
                goto fail;
            }
            p->api_key = council__strdup(key);
            if (p->api_key == NULL)
                goto fail;
        }
        p->cfg.kind = pd->kind;
        p->cfg.base_url = p->base_url;
        p->cfg.api_key = p->api_key;
        p->cfg.max_parallel = pd->max_parallel;
    }
    h->secrets = council__calloc(h->n_providers + 1, sizeof(*h->secrets));
    if (h->secrets == NULL)
        goto fail;
    for (i = 0; i < h->n_providers; i++) {
        const char *key = h->providers[i].api_key;
        size_t j;

        if (key == NULL || key[0] == '\0')
            continue;
        for (j = 0; j < h->n_secrets; j++)
            if (strcmp(h->secrets[j], key) == 0)
                break;
        if (j < h->n_secrets)
            continue;
        h->secrets[h->n_secrets++] = key;
        if (strlen(key) > h->secret_max)
            h->secret_max = strlen(key);
    }
    for (i = 0; i < def->n_members; i++) {
        h->n_members++;
        if (copy_member(&h->members[i], &def->members[i], NULL))
            goto fail;
    }
    h->n_chairs++;
    if (copy_member(&h->chairs[0], &def->chairman, NULL))
        goto fail;
    for (i = 0; i < def->n_chair_fallback; i++) {
        h->n_chairs++;
        if (copy_member(&h->chairs[i + 1], &def->chair_fallback[i],
                        def->chairman.system))
            goto fail;
    }
    for (i = 0; i < n_msgs; i++) {
        h->messages[i].role = council__strdup(msgs[i].role);
        h->messages[i].content = council__strdup(msgs[i].content);
        h->n_messages++;
        if (h->messages[i].role == NULL || h->messages[i].content == NULL)
            goto fail;
        if (strcmp(msgs[i].role, "user") == 0)
            h->question = h->messages[i].content;
    }
    if (h->question == NULL) {
        set_diag(diag, "the input holds no user message");
        rc = COUNCIL_EINVAL;
        goto fail;
    }
    *ops = &host_ops;
    *state = h;
    return COUNCIL_OK;
fail:
    h->freed = 1;
    maybe_free(h);
    return rc;
}

/* ---- helpers for strategies --------------------------------------------- */

uint64_t
council__mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

uint64_t
council__member_seed(uint64_t x)
{
    return council__mix64(x) & COUNCIL__SEED_MAX;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The sorted, distinct FNV-1a hashes of the lower-cased alphanumeric words
 * of s; *n their count.  NULL on OOM (and *n = 0). */
static uint64_t *
word_set(const char *s, size_t len, size_t *n)
{
    uint64_t *w = council__calloc(len / 2 + 1, sizeof(*w)), hsh = 0;
    size_t k = 0, i, j;
    int in = 0;

    *n = 0;
    if (w == NULL)
        return NULL;
    for (i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : ' ';
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c >= 0x80;
        if (alnum) {
            if (!in)
                hsh = 0xcbf29ce484222325ULL;
            in = 1;
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            hsh = (hsh ^ c) * 0x100000001b3ULL;
        } else if (in) {
            in = 0;
            if (k < len / 2 + 1)
                w[k++] = hsh;
        }
    }
    qsort(w, k, sizeof(*w), cmp_u64);
    for (i = 0, j = 0; i < k; i++)
        if (j == 0 || w[j - 1] != w[i])
            w[j++] = w[i];
    *n = j;
    return w;
}

double
council__similarity(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t na, nb, i = 0, j = 0, both = 0;
    uint64_t *wa = word_set(a, alen, &na), *wb = word_set(b, blen, &nb);
    double r;

    if (wa == NULL || wb == NULL) {
        r = 0;
        goto out;
    }
    if (na + nb == 0) {
        r = 1;
        goto out;
    }
    while (i < na && j < nb) {
        if (wa[i] == wb[j]) {
            both++;
            i++;
            j++;
        } else if (wa[i] < wb[j]) {
            i++;
        } else {
            j++;
        }
    }
    r = (double)both / (double)(na + nb - both);
out:
    council__free(wa);
    council__free(wb);
    return r;
}

/* ---- prompt strings ------------------------------------------------------ */

void
council__sb_put(council__sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        p = council__realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
council__sb_str(council__sb *b, const char *s)
{
    council__sb_put(b, s ? s : "", s ? strlen(s) : 0);
}

void
council__sb_fmt(council__sb *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        b->oom = 1; /* callers format short pieces only */
        return;
    }
    council__sb_put(b, buf, (size_t)n);
}

char *
council__sb_done(council__sb *b)
{
    if (b->oom || b->p == NULL) {
        council__free(b->p);
        return NULL;
    }
    return b->p;
}

void
council__host_start_answers(council__host *h)
{
    size_t i;

    council__host_emit(h, COUNCIL_EV_STAGE_STARTED, "answer", 0, NULL, NULL, 0,
                       NULL);
    for (i = 0; i < h->n_members; i++) {
        council__hmember *m = &h->members[i];
        if (council__host_call(h, (int)i, "answer", 0, NULL) != 0) {
            m->state = COUNCIL__M_FAILED;
            m->error = json_pack("{s:s,s:s}", "kind", "internal", "message",
                                 "could not start the call");
            council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, "answer", 0,
                               m->name, NULL, 0,
                               json_pack("{s:s,s:o}", "model", m->model,
                                         "error", json_deep_copy(m->error)));
        }
    }
}

int
council__host_end_answers(council__host *h, size_t **cands, size_t *n)
{
    size_t i, ok = 0;

    for (i = 0; i < h->n_members; i++)
        if (h->members[i].busy)
            return 1;
    for (i = 0; i < h->n_members; i++)
        if (h->members[i].state == COUNCIL__M_DONE)
            ok++;
    council__host_emit(h, COUNCIL_EV_STAGE_COMPLETED, "answer", 0, NULL, NULL,
                       0,
                       json_pack("{s:I,s:I}", "answered", (json_int_t)ok,
                                 "failed", (json_int_t)(h->n_members - ok)));
    if (council__host_check_quorum(h, "answer") < 0)
        return -1;
    *cands = council__calloc(ok, sizeof(size_t));
    if (*cands == NULL) {
        council__host_fail(h, "internal", "out of memory");
        return -1;
    }
    *n = 0;
    for (i = 0; i < h->n_members; i++)
        if (h->members[i].state == COUNCIL__M_DONE)
            (*cands)[(*n)++] = i;
    return 0;
}
