/* SPDX-License-Identifier: MIT */
/*
 * The rank strategy (DESIGN 4), as a run host on the engine's loop:
 *   1. answer:    every member answers the question, in parallel, streamed;
 *   2. review:    every member that answered ranks the anonymized answers
 *                 of the others ("Response A, B, ..."; its own left out;
 *                 the order shuffled per reviewer from a recorded seed),
 *                 parsed strictly then tolerantly; Borda aggregate;
 *   3. synthesis: the chairman writes the final answer from the answers
 *                 and the aggregate, streamed.
 * A member that fails is a member_failed event with its real cause, and
 * the run goes on while the quorum holds.  Cancel (or the deadline) stops
 * every call and ends the run with run_failed and the partial result.
 *
 * Lifetime: the engine frees the host after council__run_exit; provider
 * calls still winding down keep the state alive (pending) until their
 * on_done, so no callback ever touches freed memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/run.h"
#include "council/def.h"
#include "council/ranking.h"
#include "council/strategy.h"
#include "provider/provider.h"

enum stage { ST_ANSWER, ST_REVIEW, ST_SYNTH, ST_DONE };
static const char *const stage_names[] = {"answer", "review", "synthesis",
                                          "done"};

enum mstate { M_WAITING, M_STREAMING, M_DONE, M_FAILED };

typedef struct rank_run rank_run;

/* One provider call of the run, with what came back. */
typedef struct call {
    rank_run *rr;
    council__chat *chat;
    int member;        /* index, or -1 for the chairman */
    enum stage stage;
    int streamed;      /* at least one delta arrived */
} call;

typedef struct member {
    char *name, *model, *system;
    size_t provider;
    /* answer stage */
    enum mstate state;
    char *answer;
    size_t answer_len;
    council__usage usage;
    json_t *error;     /* member_failed error, or NULL */
    call answer_call;
    /* review stage */
    int reviewing;
    size_t *shown;     /* candidate indices in the order shown (A, B ...) */
    size_t n_shown;
    uint64_t review_seed;
    call review_call;
} member;

typedef struct provider {
    char *name;
    council__provider_cfg cfg;
    char *base_url;
    char *api_key;     /* a secret: never logged, zeroed on free */
} provider;

struct rank_run {
    council_run *run;
    council__http *http;
    char *council_name;
    provider *providers;
    size_t n_providers;
    member *members;
    size_t n_members;
    member chair;      /* name "chairman" */
    council__limits limits;
    council_message *messages;
    size_t n_messages;
    const char *question; /* the last user message */
    uint64_t seed;

    enum stage stage;
    int pending;          /* calls started, on_done not yet seen */
    int cancelled;
    int exited;
    int freed;
    size_t *cands;        /* member indices of the answers (candidates) */
    size_t n_cands;
    json_t *reviews;      /* array, for the result */
    json_t *aggregate;    /* array, for the result */
    council__usage total;
    int usage_unknown;    /* some call reported no usage */
};

/* ---- small helpers ------------------------------------------------------ */

static void
free_member(member *m)
{
    council__free(m->name);
    council__free(m->model);
    council__free(m->system);
    council__free(m->answer);
    council__free(m->shown);
    json_decref(m->error);
}

static void
maybe_free(rank_run *rr)
{
    size_t i;

    if (!rr->freed || rr->pending > 0)
        return;
    for (i = 0; i < rr->n_providers; i++) {
        provider *p = &rr->providers[i];
        council__free(p->name);
        council__free(p->base_url);
        if (p->api_key != NULL) {
            memset(p->api_key, 0, strlen(p->api_key));
            council__free(p->api_key);
        }
    }
    council__free(rr->providers);
    for (i = 0; i < rr->n_members; i++)
        free_member(&rr->members[i]);
    council__free(rr->members);
    free_member(&rr->chair);
    for (i = 0; i < rr->n_messages; i++) {
        council__free((char *)rr->messages[i].role);
        council__free((char *)rr->messages[i].content);
    }
    council__free(rr->messages);
    council__free(rr->council_name);
    council__free(rr->cands);
    json_decref(rr->reviews);
    json_decref(rr->aggregate);
    council__free(rr);
}

static void
emit(rank_run *rr, council_event_type type, const char *stage,
     const char *who, const char *text, size_t len, json_t *data)
{
    council__event_init in;

    if (rr->exited) {
        json_decref(data);
        return;
    }
    memset(&in, 0, sizeof(in));
    in.type = type;
    in.stage = stage;
    in.member = who;
    in.text = text;
    in.text_len = len;
    in.data = data;
    council__run_emit(rr->run, &in);
}

static json_t *
usage_json(const council__usage *u)
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
    return o;
}

static void
add_usage(rank_run *rr, const council__usage *u)
{
    if (!u->known) {
        rr->usage_unknown = 1;
        return;
    }
    rr->total.known = 1;
    rr->total.prompt_tokens += u->prompt_tokens;
    rr->total.completion_tokens += u->completion_tokens;
    if (u->cost_known) {
        rr->total.cost_known = 1;
        rr->total.cost += u->cost;
    }
}

static json_t *
error_json(const council__chat_result *res)
{
    json_t *e = json_pack("{s:s,s:s}", "kind",
                          council__call_errkind_name(res->kind), "message",
                          res->message);

    if (e == NULL)
        return NULL;
    if (res->http_status != 0)
        json_object_set_new(e, "http_status",
                            json_integer(res->http_status));
    if (res->error_type[0] != '\0')
        json_object_set_new(e, "type", json_string(res->error_type));
    return e;
}

/* The partial or final result object. */
static json_t *
result_json(rank_run *rr, const char *answer, size_t answer_len)
{
    json_t *answers = json_array(), *failed = json_array(), *usage, *r;
    size_t i;

    for (i = 0; i < rr->n_members; i++) {
        member *m = &rr->members[i];
        if (m->state == M_DONE)
            json_array_append_new(
                answers,
                json_pack("{s:s,s:s,s:s%,s:o}", "member", m->name, "model",
                          m->model, "text", m->answer, m->answer_len,
                          "usage", usage_json(&m->usage)));
        else if (m->error != NULL)
            json_array_append_new(failed,
                                  json_pack("{s:s,s:O}", "member", m->name,
                                            "error", m->error));
    }
    usage = usage_json(&rr->total);
    if (json_is_object(usage))
        json_object_set_new(usage, "complete",
                            json_boolean(!rr->usage_unknown));
    r = json_pack("{s:s,s:s,s:o,s:o,s:O,s:O,s:o,s:I}", "council",
                  rr->council_name, "strategy", "rank", "answers", answers,
                  "failed", failed, "reviews", rr->reviews, "aggregate",
                  rr->aggregate, "usage", usage, "seed",
                  (json_int_t)rr->seed);
    if (r != NULL && answer != NULL)
        json_object_set_new(r, "answer", json_stringn(answer, answer_len));
    return r;
}

static void
finish_exit(rank_run *rr, const char *reason)
{
    if (rr->exited)
        return;
    rr->exited = 1;
    rr->stage = ST_DONE;
    council__run_exit(rr->run, reason);
}

static void
fail_run(rank_run *rr, const char *kind, const char *message)
{
    json_t *data = json_pack("{s:[{s:s,s:s}],s:o}", "errors", "kind", kind,
                             "message", message, "result",
                             result_json(rr, NULL, 0));

    emit(rr, COUNCIL_EV_RUN_FAILED, NULL, NULL, NULL, 0, data);
    if (rr->pending == 0)
        finish_exit(rr, kind);
}

/* ---- provider calls ---------------------------------------------------- */

static void on_delta(const char *text, size_t len, void *ud);
static void on_done(const council__chat_result *res, void *ud);

static int
start_call(rank_run *rr, call *c, member *m, int index, enum stage stage,
           const char *user_text)
{
    static const council__chat_cbs cbs = {on_delta, on_done};
    council_message *msgs;
    council__chat_req req;
    size_t n = 0, i;
    council_err rc;

    msgs = council__calloc(rr->n_messages + 2, sizeof(*msgs));
    if (msgs == NULL)
        return -1;
    if (m->system != NULL)
        msgs[n++] = (council_message){"system", m->system};
    if (user_text == NULL) {
        for (i = 0; i < rr->n_messages; i++)
            msgs[n++] = rr->messages[i];
    } else {
        msgs[n++] = (council_message){"user", user_text};
    }
    memset(&req, 0, sizeof(req));
    req.model = m->model;
    req.messages = msgs;
    req.n_messages = n;
    req.max_tokens = rr->limits.max_tokens;
    req.connect_timeout_ms = rr->limits.member_timeout_ms < 10000
                                 ? rr->limits.member_timeout_ms
                                 : 10000;
    req.first_byte_timeout_ms = rr->limits.member_timeout_ms;
    req.idle_timeout_ms = rr->limits.member_timeout_ms;
    req.total_timeout_ms = rr->limits.member_timeout_ms;
    memset(c, 0, sizeof(*c));
    c->rr = rr;
    c->member = index;
    c->stage = stage;
    rc = council__chat_start(rr->http, &rr->providers[m->provider].cfg, &req,
                             &cbs, c, &c->chat);
    council__free(msgs);
    if (rc != COUNCIL_OK)
        return -1;
    rr->pending++;
    return 0;
}

static member *
call_member(call *c)
{
    return c->member >= 0 ? &c->rr->members[c->member] : &c->rr->chair;
}

static void
on_delta(const char *text, size_t len, void *ud)
{
    call *c = ud;
    rank_run *rr = c->rr;
    member *m = call_member(c);

    if (rr->cancelled || rr->exited)
        return;
    c->streamed = 1;
    if (c->stage == ST_ANSWER)
        m->state = M_STREAMING;
    emit(rr,
         c->stage == ST_SYNTH ? COUNCIL_EV_SYNTHESIS_DELTA
                              : COUNCIL_EV_MEMBER_DELTA,
         stage_names[c->stage], c->member >= 0 ? m->name : NULL, text, len,
         NULL);
}

static void answer_done(rank_run *rr, call *c,
                        const council__chat_result *res);
static void review_done(rank_run *rr, call *c,
                        const council__chat_result *res);
static void synth_done(rank_run *rr, const council__chat_result *res);

static void
on_done(const council__chat_result *res, void *ud)
{
    call *c = ud;
    rank_run *rr = c->rr;

    c->chat = NULL;
    rr->pending--;
    if (rr->exited || rr->cancelled) {
        /* Winding down: the terminal event is out already. */
        if (!rr->exited && rr->pending == 0)
            finish_exit(rr, "cancelled");
        maybe_free(rr);
        return;
    }
    add_usage(rr, &res->usage);
    switch (c->stage) {
    case ST_ANSWER:
        answer_done(rr, c, res);
        break;
    case ST_REVIEW:
        review_done(rr, c, res);
        break;
    case ST_SYNTH:
        synth_done(rr, res);
        break;
    case ST_DONE:
        break;
    }
}

static json_t *
call_info(const council__chat_result *res, const char *model)
{
    json_t *d = json_pack("{s:s,s:o,s:I,s:I}", "model", model, "usage",
                          usage_json(&res->usage), "latency_ms",
                          (json_int_t)res->latency_ms, "first_byte_ms",
                          (json_int_t)res->first_byte_ms);

    if (d != NULL && res->finish_reason != NULL)
        json_object_set_new(d, "finish_reason",
                            json_string(res->finish_reason));
    return d;
}

/* ---- stage 3: synthesis ----------------------------------------------- */

static void
start_synthesis(rank_run *rr)
{
    const char **names, **answers;
    size_t *lens, i, k = 0;
    char agg[4096];
    size_t used = 0;
    char *prompt;
    json_t *t;

    rr->stage = ST_SYNTH;
    names = council__calloc(rr->n_cands + 1, sizeof(*names));
    answers = council__calloc(rr->n_cands + 1, sizeof(*answers));
    lens = council__calloc(rr->n_cands + 1, sizeof(*lens));
    agg[0] = '\0';
    json_array_foreach(rr->aggregate, i, t)
    {
        int w = snprintf(
            agg + used, sizeof(agg) - used,
            "%zu. %s (Borda points %.0f, mean rank %.2f)\n", i + 1,
            json_string_value(json_object_get(t, "member")),
            json_number_value(json_object_get(t, "borda")),
            json_number_value(json_object_get(t, "mean_rank")));
        if (w < 0 || (size_t)w >= sizeof(agg) - used)
            break;
        used += (size_t)w;
    }
    if (names != NULL && answers != NULL && lens != NULL) {
        for (i = 0; i < rr->n_cands; i++) {
            member *m = &rr->members[rr->cands[i]];
            names[k] = m->name;
            answers[k] = m->answer;
            lens[k] = m->answer_len;
            k++;
        }
    }
    prompt = names != NULL && answers != NULL && lens != NULL
                 ? council__prompt_synthesis(
                       rr->question, names, answers, lens, k,
                       agg[0] != '\0' ? agg : "(no rankings)")
                 : NULL;
    council__free(names);
    council__free(answers);
    council__free(lens);
    emit(rr, COUNCIL_EV_STAGE_STARTED, "synthesis", NULL, NULL, 0, NULL);
    emit(rr, COUNCIL_EV_SYNTHESIS_STARTED, "synthesis", NULL, NULL, 0,
         json_pack("{s:s,s:s}", "model", rr->chair.model, "provider",
                   rr->providers[rr->chair.provider].name));
    if (prompt == NULL ||
        start_call(rr, &rr->chair.answer_call, &rr->chair, -1, ST_SYNTH,
                   prompt) != 0) {
        council__free(prompt);
        fail_run(rr, "synthesis", "could not start the chairman's call");
        return;
    }
    council__free(prompt);
}

static void
synth_done(rank_run *rr, const council__chat_result *res)
{
    json_t *info, *result;

    if (res->err != COUNCIL_OK) {
        char msg[700];
        snprintf(msg, sizeof(msg), "the chairman (%s) failed: %s",
                 rr->chair.model, res->message);
        fail_run(rr, "synthesis", msg);
        return;
    }
    info = call_info(res, rr->chair.model);
    emit(rr, COUNCIL_EV_SYNTHESIS_COMPLETED, "synthesis", NULL, res->text,
         res->text_len, info);
    emit(rr, COUNCIL_EV_STAGE_COMPLETED, "synthesis", NULL, NULL, 0, NULL);
    result = result_json(rr, res->text, res->text_len);
    emit(rr, COUNCIL_EV_RUN_COMPLETED, NULL, NULL, NULL, 0,
         json_pack("{s:o}", "result", result));
    if (rr->pending == 0)
        finish_exit(rr, "completed");
}

/* ---- stage 2: review --------------------------------------------------- */

static void
aggregate(rank_run *rr)
{
    council__ballot *ballots;
    council__tally *tally;
    size_t **orders;
    size_t nb = 0, i, j, k;
    json_t *rev;

    ballots = council__calloc(rr->n_cands + 1, sizeof(*ballots));
    orders = council__calloc(rr->n_cands + 1, sizeof(*orders));
    tally = council__calloc(rr->n_cands + 1, sizeof(*tally));
    if (ballots == NULL || orders == NULL || tally == NULL)
        goto out;
    /* Ballots in candidate indices, from each parsed review. */
    json_array_foreach(rr->reviews, i, rev)
    {
        json_t *ranking = json_object_get(rev, "ranking");
        json_t *name;
        if (!json_is_array(ranking))
            continue;
        orders[nb] = council__calloc(json_array_size(ranking) + 1,
                                     sizeof(size_t));
        if (orders[nb] == NULL)
            continue;
        json_array_foreach(ranking, j, name)
        {
            for (k = 0; k < rr->n_cands; k++)
                if (strcmp(rr->members[rr->cands[k]].name,
                           json_string_value(name)) == 0)
                    orders[nb][j] = k;
        }
        ballots[nb].order = orders[nb];
        ballots[nb].n = json_array_size(ranking);
        nb++;
    }
    council__borda(ballots, nb, rr->n_cands, tally);
    for (i = 0; i < rr->n_cands; i++)
        json_array_append_new(
            rr->aggregate,
            json_pack("{s:s,s:f,s:f,s:I}", "member",
                      rr->members[rr->cands[tally[i].candidate]].name,
                      "borda", tally[i].borda, "mean_rank",
                      tally[i].mean_rank, "votes",
                      (json_int_t)tally[i].votes));
out:
    if (orders != NULL)
        for (i = 0; i < nb; i++)
            council__free(orders[i]);
    council__free(orders);
    council__free(ballots);
    council__free(tally);
    emit(rr, COUNCIL_EV_RANKINGS_AGGREGATED, "review", NULL, NULL, 0,
         json_pack("{s:O,s:I}", "aggregate", rr->aggregate, "ballots",
                   (json_int_t)nb));
}

static void
maybe_end_review(rank_run *rr)
{
    size_t i;

    for (i = 0; i < rr->n_members; i++)
        if (rr->members[i].reviewing)
            return;
    aggregate(rr);
    emit(rr, COUNCIL_EV_STAGE_COMPLETED, "review", NULL, NULL, 0,
         json_pack("{s:I}", "reviews",
                   (json_int_t)json_array_size(rr->reviews)));
    start_synthesis(rr);
}

static void
review_done(rank_run *rr, call *c, const council__chat_result *res)
{
    member *m = &rr->members[c->member];
    size_t order[26];
    council__rank_parse how;
    json_t *labels, *ranking = NULL, *data;
    size_t i;

    m->reviewing = 0;
    if (res->err != COUNCIL_OK) {
        emit(rr, COUNCIL_EV_MEMBER_FAILED, "review", m->name, NULL, 0,
             json_pack("{s:s,s:o}", "model", m->model, "error",
                       error_json(res)));
        maybe_end_review(rr);
        return;
    }
    how = council__ranking_parse(res->text, res->text_len, m->n_shown,
                                 order);
    labels = json_object();
    for (i = 0; i < m->n_shown; i++) {
        char label[2] = {(char)('A' + i), '\0'};
        json_object_set_new(
            labels, label,
            json_string(rr->members[rr->cands[m->shown[i]]].name));
    }
    if (how != COUNCIL__RANK_UNPARSED) {
        ranking = json_array();
        for (i = 0; i < m->n_shown; i++)
            json_array_append_new(
                ranking,
                json_string(
                    rr->members[rr->cands[m->shown[order[i]]]].name));
    }
    data = json_pack(
        "{s:s,s:O,s:I,s:O,s:s,s:b}", "model", m->model, "labels", labels,
        "seed", (json_int_t)m->review_seed, "ranking",
        ranking != NULL ? ranking : json_null(), "parse",
        how == COUNCIL__RANK_STRICT     ? "strict"
        : how == COUNCIL__RANK_TOLERANT ? "tolerant"
                                        : "unparsed",
        "parse_ok", how == COUNCIL__RANK_STRICT);
    if (data != NULL) {
        json_t *info = call_info(res, m->model);
        json_object_update(data, info);
        json_decref(info);
        json_array_append_new(
            rr->reviews,
            json_pack("{s:s,s:O,s:I,s:O,s:O,s:O}", "reviewer", m->name,
                      "labels", labels, "seed", (json_int_t)m->review_seed,
                      "ranking", json_object_get(data, "ranking"), "parse",
                      json_object_get(data, "parse"), "parse_ok",
                      json_object_get(data, "parse_ok")));
    }
    json_decref(labels);
    json_decref(ranking);
    emit(rr, COUNCIL_EV_REVIEW_COMPLETED, "review", m->name, res->text,
         res->text_len, data);
    maybe_end_review(rr);
}

static uint64_t
mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void
start_review(rank_run *rr)
{
    size_t r, i, started = 0;

    rr->stage = ST_REVIEW;
    emit(rr, COUNCIL_EV_STAGE_STARTED, "review", NULL, NULL, 0, NULL);
    if (rr->n_cands < 3) {
        /* A reviewer would rank one answer or none: nothing to learn. */
        emit(rr, COUNCIL_EV_STAGE_COMPLETED, "review", NULL, NULL, 0,
             json_pack("{s:I,s:s}", "reviews", (json_int_t)0, "skipped",
                       "fewer than 3 answers"));
        start_synthesis(rr);
        return;
    }
    for (r = 0; r < rr->n_cands; r++) {
        member *m = &rr->members[rr->cands[r]];
        size_t *perm, k = 0;
        const char **texts;
        size_t *lens;
        char *prompt;

        m->n_shown = rr->n_cands - 1;
        m->shown = council__calloc(m->n_shown, sizeof(size_t));
        perm = council__calloc(m->n_shown, sizeof(size_t));
        texts = council__calloc(m->n_shown, sizeof(*texts));
        lens = council__calloc(m->n_shown, sizeof(*lens));
        prompt = NULL;
        if (m->shown != NULL && perm != NULL && texts != NULL &&
            lens != NULL) {
            /* The others, shuffled with the reviewer's own seed. */
            m->review_seed = mix64(rr->seed ^ mix64(rr->cands[r] + 1));
            council__shuffle(m->review_seed, m->n_shown, perm);
            for (i = 0; i < rr->n_cands; i++)
                if (i != r)
                    m->shown[k++] = i;
            for (i = 0; i < m->n_shown; i++)
                perm[i] = m->shown[perm[i]];
            memcpy(m->shown, perm, m->n_shown * sizeof(size_t));
            for (i = 0; i < m->n_shown; i++) {
                member *o = &rr->members[rr->cands[m->shown[i]]];
                texts[i] = o->answer;
                lens[i] = o->answer_len;
            }
            prompt = council__prompt_review(rr->question, texts, lens,
                                            m->n_shown);
        }
        council__free(perm);
        council__free(texts);
        council__free(lens);
        emit(rr, COUNCIL_EV_MEMBER_STARTED, "review", m->name, NULL, 0,
             json_pack("{s:s}", "model", m->model));
        if (prompt == NULL || start_call(rr, &m->review_call, m,
                                         (int)rr->cands[r], ST_REVIEW,
                                         prompt) != 0) {
            emit(rr, COUNCIL_EV_MEMBER_FAILED, "review", m->name, NULL, 0,
                 json_pack("{s:s,s:{s:s,s:s}}", "model", m->model, "error",
                           "kind", "internal", "message",
                           "could not start the call"));
        } else {
            m->reviewing = 1;
            started++;
        }
        council__free(prompt);
    }
    if (started == 0)
        maybe_end_review(rr);
}

/* ---- stage 1: answers -------------------------------------------------- */

static void
maybe_end_answers(rank_run *rr)
{
    size_t i, ok = 0;

    for (i = 0; i < rr->n_members; i++) {
        if (rr->members[i].state == M_WAITING ||
            rr->members[i].state == M_STREAMING)
            return;
        if (rr->members[i].state == M_DONE)
            ok++;
    }
    emit(rr, COUNCIL_EV_STAGE_COMPLETED, "answer", NULL, NULL, 0,
         json_pack("{s:I,s:I}", "answered", (json_int_t)ok, "failed",
                   (json_int_t)(rr->n_members - ok)));
    if (ok < (size_t)rr->limits.quorum) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%zu of %zu members answered; quorum is %d",
                 ok, rr->n_members, rr->limits.quorum);
        fail_run(rr, "quorum", msg);
        return;
    }
    rr->cands = council__calloc(ok, sizeof(size_t));
    if (rr->cands == NULL) {
        fail_run(rr, "internal", "out of memory");
        return;
    }
    for (i = 0; i < rr->n_members; i++)
        if (rr->members[i].state == M_DONE)
            rr->cands[rr->n_cands++] = i;
    start_review(rr);
}

static void
answer_done(rank_run *rr, call *c, const council__chat_result *res)
{
    member *m = &rr->members[c->member];

    if (res->err != COUNCIL_OK || res->text_len == 0) {
        json_t *e = error_json(res);
        if (res->err == COUNCIL_OK) {
            json_decref(e);
            e = json_pack("{s:s,s:s}", "kind", "empty", "message",
                          "the model returned an empty answer");
        }
        m->state = M_FAILED;
        m->error = json_incref(e);
        emit(rr, COUNCIL_EV_MEMBER_FAILED, "answer", m->name, NULL, 0,
             json_pack("{s:s,s:o}", "model", m->model, "error", e));
    } else {
        m->answer = council__strndup(res->text, res->text_len);
        if (m->answer == NULL) {
            m->state = M_FAILED;
            m->error = json_pack("{s:s,s:s}", "kind", "internal", "message",
                                 "out of memory");
        } else {
            m->answer_len = res->text_len;
            m->usage = res->usage;
            m->state = M_DONE;
            emit(rr, COUNCIL_EV_MEMBER_COMPLETED, "answer", m->name,
                 res->text, res->text_len, call_info(res, m->model));
        }
    }
    maybe_end_answers(rr);
}

/* ---- host ops ------------------------------------------------------------ */

static council_err
r_start(council_run *run, void *state, char *msg, size_t msg_size)
{
    rank_run *rr = state;
    json_t *members, *msgs;
    size_t i;

    rr->run = run;
    rr->http = council__engine_http(council__run_engine(run));
    if (rr->http == NULL) {
        snprintf(msg, msg_size, "could not set up the HTTP client");
        return COUNCIL_ESTART;
    }
    if (rr->seed == 0)
        rr->seed = council__run_seed(run);
    members = json_array();
    for (i = 0; i < rr->n_members; i++)
        json_array_append_new(
            members,
            json_pack("{s:s,s:s,s:s}", "name", rr->members[i].name,
                      "provider", rr->providers[rr->members[i].provider].name,
                      "model", rr->members[i].model));
    msgs = json_array();
    for (i = 0; i < rr->n_messages; i++)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role",
                                              rr->messages[i].role,
                                              "content",
                                              rr->messages[i].content));
    emit(rr, COUNCIL_EV_RUN_STARTED, NULL, NULL, NULL, 0,
         json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:s},s:I}", "council",
                   rr->council_name, "strategy", "rank", "question",
                   rr->question, "messages", msgs, "members", members,
                   "chairman", "provider",
                   rr->providers[rr->chair.provider].name, "model",
                   rr->chair.model, "seed", (json_int_t)rr->seed));
    rr->stage = ST_ANSWER;
    emit(rr, COUNCIL_EV_STAGE_STARTED, "answer", NULL, NULL, 0, NULL);
    for (i = 0; i < rr->n_members; i++) {
        member *m = &rr->members[i];
        emit(rr, COUNCIL_EV_MEMBER_STARTED, "answer", m->name, NULL, 0,
             json_pack("{s:s}", "model", m->model));
        if (start_call(rr, &m->answer_call, m, (int)i, ST_ANSWER, NULL) !=
            0) {
            m->state = M_FAILED;
            m->error = json_pack("{s:s,s:s}", "kind", "internal", "message",
                                 "could not start the call");
            emit(rr, COUNCIL_EV_MEMBER_FAILED, "answer", m->name, NULL, 0,
                 json_pack("{s:s,s:O}", "model", m->model, "error",
                           m->error));
        }
    }
    if (rr->pending == 0)
        maybe_end_answers(rr);
    return COUNCIL_OK;
}

static void
cancel_calls(rank_run *rr)
{
    size_t i;

    for (i = 0; i < rr->n_members; i++) {
        if (rr->members[i].answer_call.chat != NULL)
            council__chat_cancel(rr->members[i].answer_call.chat);
        if (rr->members[i].review_call.chat != NULL)
            council__chat_cancel(rr->members[i].review_call.chat);
    }
    if (rr->chair.answer_call.chat != NULL)
        council__chat_cancel(rr->chair.answer_call.chat);
}

static void
r_cancel(void *state, const char *kind)
{
    rank_run *rr = state;

    if (rr->cancelled || rr->exited || rr->stage == ST_DONE)
        return;
    rr->cancelled = 1;
    cancel_calls(rr);
    fail_run(rr, kind,
             strcmp(kind, "deadline") == 0 ? "the run's deadline passed"
                                           : "the run was cancelled");
}

static void
r_shutdown(void *state)
{
    rank_run *rr = state;

    rr->cancelled = 1;
    cancel_calls(rr);
    finish_exit(rr, "shutdown");
}

static void
r_free(void *state)
{
    rank_run *rr = state;

    rr->freed = 1;
    maybe_free(rr);
}

static const council__host_ops rank_ops = {r_start, r_cancel, r_shutdown,
                                           r_free};

/* ---- building the host (caller's thread) ------------------------------- */

static int
copy_member(member *dst, const council__member_def *src)
{
    dst->name = council__strdup(src->name);
    dst->model = council__strdup(src->model);
    dst->system = council__strdup(src->system);
    dst->provider = src->provider;
    return dst->name == NULL || dst->model == NULL ||
           (src->system != NULL && dst->system == NULL);
}

council_err
council__rank_host_new(const council_def *def, const council_message *msgs,
                       size_t n_msgs, uint64_t seed,
                       const council__host_ops **ops, void **state,
                       council_diag *diag)
{
    rank_run *rr = council__calloc(1, sizeof(*rr));
    council_err rc = COUNCIL_ENOMEM;
    size_t i;

    if (rr == NULL)
        return COUNCIL_ENOMEM;
    rr->seed = seed;
    rr->limits = def->limits;
    rr->council_name = council__strdup(def->name);
    rr->providers = council__calloc(def->n_providers, sizeof(provider));
    rr->members = council__calloc(def->n_members, sizeof(member));
    rr->messages = council__calloc(n_msgs, sizeof(council_message));
    rr->reviews = json_array();
    rr->aggregate = json_array();
    if (rr->council_name == NULL || rr->providers == NULL ||
        rr->members == NULL || rr->messages == NULL || rr->reviews == NULL ||
        rr->aggregate == NULL)
        goto fail;
    for (i = 0; i < def->n_providers; i++) {
        const council__provider_def *pd = &def->providers[i];
        provider *p = &rr->providers[i];
        rr->n_providers++;
        p->name = council__strdup(pd->name);
        p->base_url = council__strdup(pd->base_url);
        if (p->name == NULL || p->base_url == NULL)
            goto fail;
        if (pd->api_key_env != NULL) {
            const char *key = getenv(pd->api_key_env);
            if (key == NULL || key[0] == '\0') {
                if (diag != NULL) {
                    memset(diag, 0, sizeof(*diag));
                    snprintf(diag->msg, sizeof(diag->msg),
                             "provider %s: environment variable %s is not "
                             "set (it holds the API key)",
                             pd->name, pd->api_key_env);
                }
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
        if (pd->kind != COUNCIL__PROVIDER_OPENAI) {
            if (diag != NULL) {
                memset(diag, 0, sizeof(*diag));
                snprintf(diag->msg, sizeof(diag->msg),
                         "provider %s: this kind is not supported yet "
                         "(only openai)",
                         pd->name);
            }
            rc = COUNCIL_EINVAL;
            goto fail;
        }
    }
    for (i = 0; i < def->n_members; i++) {
        rr->n_members++;
        if (copy_member(&rr->members[i], &def->members[i]))
            goto fail;
    }
    if (copy_member(&rr->chair, &def->chairman))
        goto fail;
    for (i = 0; i < n_msgs; i++) {
        rr->messages[i].role = council__strdup(msgs[i].role);
        rr->messages[i].content = council__strdup(msgs[i].content);
        rr->n_messages++;
        if (rr->messages[i].role == NULL || rr->messages[i].content == NULL)
            goto fail;
        if (strcmp(msgs[i].role, "user") == 0)
            rr->question = rr->messages[i].content;
    }
    if (rr->question == NULL) {
        if (diag != NULL) {
            memset(diag, 0, sizeof(*diag));
            snprintf(diag->msg, sizeof(diag->msg),
                     "the input holds no user message");
        }
        rc = COUNCIL_EINVAL;
        goto fail;
    }
    *ops = &rank_ops;
    *state = rr;
    return COUNCIL_OK;
fail:
    rr->freed = 1;
    maybe_free(rr);
    return rc;
}
