/* SPDX-License-Identifier: MIT */
/*
 * The rank strategy (DESIGN 4), on the shared host (host_common.h):
 *   1. answer:    every member answers the question, in parallel, streamed;
 *   2. review:    every member that answered ranks the anonymized answers
 *                 of the others ("Response A, B, ..."; its own left out;
 *                 the order shuffled per reviewer from a recorded seed),
 *                 parsed strictly then tolerantly; Borda aggregate;
 *   3. synthesis: the chairman (then its fallbacks, then the top of the
 *                 aggregate) writes the final answer, streamed.
 * A member that fails is a member_failed event with its real cause, and
 * the run goes on while the quorum holds.  When the stages' budget (the
 * deadline minus the synthesis reserve) runs out, the review stops with
 * the rankings that arrived and the synthesis begins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "council/host_common.h"
#include "council/ranking.h"
#include "council/strategy.h"

typedef struct rank_run {
    council__host h; /* first: the host is the state */
    int reviewing;   /* the review stage began */
    size_t *cands;   /* member indices of the answers (candidates) */
    size_t n_cands;
    json_t *reviews;   /* array, for the result */
    json_t *aggregate; /* array, for the result */
} rank_run;

static void start_review(rank_run *rr);

/* ---- synthesis hooks ----------------------------------------------------- */

static char *
r_synth_prompt(council__host *h)
{
    rank_run *rr = (rank_run *)h;
    const char **names, **answers;
    size_t *lens, i, k = 0;
    char agg[4096];
    size_t used = 0;
    char *prompt = NULL;
    json_t *t;

    names = council__calloc(rr->n_cands + 1, sizeof(*names));
    answers = council__calloc(rr->n_cands + 1, sizeof(*answers));
    lens = council__calloc(rr->n_cands + 1, sizeof(*lens));
    agg[0] = '\0';
    json_array_foreach (rr->aggregate, i, t) {
        int w = snprintf(agg + used, sizeof(agg) - used,
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
            council__hmember *m = &h->members[rr->cands[i]];
            names[k] = m->name;
            answers[k] = m->answer;
            lens[k] = m->answer_len;
            k++;
        }
        prompt =
            council__prompt_synthesis(h->question, names, answers, lens, k,
                                      agg[0] != '\0' ? agg : "(no rankings)");
    }
    council__free(names);
    council__free(answers);
    council__free(lens);
    return prompt;
}

/* The first of the aggregate, else the first member that answered. */
static int
r_top_member(council__host *h)
{
    rank_run *rr = (rank_run *)h;
    json_t *first = json_array_get(rr->aggregate, 0);
    size_t i;

    if (first != NULL) {
        const char *name = json_string_value(json_object_get(first, "member"));
        for (i = 0; i < h->n_members; i++)
            if (name != NULL && strcmp(h->members[i].name, name) == 0 &&
                h->members[i].state == COUNCIL__M_DONE)
                return (int)i;
    }
    for (i = 0; i < h->n_members; i++)
        if (h->members[i].state == COUNCIL__M_DONE)
            return (int)i;
    return -1;
}

static void
r_result_extra(council__host *h, json_t *r)
{
    rank_run *rr = (rank_run *)h;

    /* Copies: the result goes to other threads, and jansson's reference
     * counts are not safe to share across threads. */
    json_object_set_new(r, "reviews", json_deep_copy(rr->reviews));
    json_object_set_new(r, "aggregate", json_deep_copy(rr->aggregate));
}

static void
r_free_extra(council__host *h)
{
    rank_run *rr = (rank_run *)h;

    council__free(rr->cands);
    json_decref(rr->reviews);
    json_decref(rr->aggregate);
}

/* ---- stage 2: review ----------------------------------------------------- */

static void
aggregate(rank_run *rr)
{
    council__host *h = &rr->h;
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
    json_array_foreach (rr->reviews, i, rev) {
        json_t *ranking = json_object_get(rev, "ranking");
        json_t *name;
        if (!json_is_array(ranking))
            continue;
        orders[nb] =
            council__calloc(json_array_size(ranking) + 1, sizeof(size_t));
        if (orders[nb] == NULL)
            continue;
        json_array_foreach (ranking, j, name) {
            for (k = 0; k < rr->n_cands; k++)
                if (strcmp(h->members[rr->cands[k]].name,
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
                      h->members[rr->cands[tally[i].candidate]].name, "borda",
                      tally[i].borda, "mean_rank", tally[i].mean_rank, "votes",
                      (json_int_t)tally[i].votes));
out:
    if (orders != NULL)
        for (i = 0; i < nb; i++)
            council__free(orders[i]);
    council__free(orders);
    council__free(ballots);
    council__free(tally);
    council__host_emit(
        h, COUNCIL_EV_RANKINGS_AGGREGATED, "review", 0, NULL, NULL, 0,
        json_pack("{s:o,s:I}", "aggregate", json_deep_copy(rr->aggregate),
                  "ballots", (json_int_t)nb));
}

static void
maybe_end_review(rank_run *rr)
{
    council__host *h = &rr->h;
    size_t i;

    for (i = 0; i < h->n_members; i++)
        if (h->members[i].busy)
            return;
    aggregate(rr);
    council__host_emit(h, COUNCIL_EV_STAGE_COMPLETED, "review", 0, NULL, NULL,
                       0,
                       json_pack("{s:I}", "reviews",
                                 (json_int_t)json_array_size(rr->reviews)));
    council__host_synthesize(h);
}

static void
review_done(rank_run *rr, council__hcall *c, const council__chat_result *res)
{
    council__host *h = &rr->h;
    council__hmember *m = &h->members[c->member];
    size_t order[26];
    council__rank_parse how;
    json_t *labels, *ranking = NULL, *data;
    size_t i;

    if (res->err != COUNCIL_OK) {
        council__host_emit(
            h, COUNCIL_EV_MEMBER_FAILED, "review", 0, m->name, NULL, 0,
            council__host_failed_json(res, m->model,
                                      council__host_error_json(h, res)));
        maybe_end_review(rr);
        return;
    }
    how = council__ranking_parse(res->text, res->text_len, m->n_shown, order);
    labels = json_object();
    for (i = 0; i < m->n_shown; i++) {
        char label[2] = {(char)('A' + i), '\0'};
        json_object_set_new(
            labels, label,
            json_string(h->members[rr->cands[m->shown[i]]].name));
    }
    if (how != COUNCIL__RANK_UNPARSED) {
        ranking = json_array();
        for (i = 0; i < m->n_shown; i++)
            json_array_append_new(
                ranking,
                json_string(h->members[rr->cands[m->shown[order[i]]]].name));
    }
    data = json_pack("{s:s,s:O,s:I,s:O,s:s,s:b}", "model", m->model, "labels",
                     labels, "seed", (json_int_t)m->seed, "ranking",
                     ranking != NULL ? ranking : json_null(), "parse",
                     how == COUNCIL__RANK_STRICT     ? "strict"
                     : how == COUNCIL__RANK_TOLERANT ? "tolerant"
                                                     : "unparsed",
                     "parse_ok", how == COUNCIL__RANK_STRICT);
    if (data != NULL) {
        json_t *info = council__host_call_info(res, m->model);
        json_object_update(data, info);
        json_decref(info);
        json_array_append_new(
            rr->reviews,
            json_pack(
                "{s:s,s:o,s:I,s:o,s:o,s:o}", "reviewer", m->name, "labels",
                json_deep_copy(labels), "seed", (json_int_t)m->seed, "ranking",
                json_deep_copy(json_object_get(data, "ranking")), "parse",
                json_deep_copy(json_object_get(data, "parse")), "parse_ok",
                json_deep_copy(json_object_get(data, "parse_ok"))));
    }
    json_decref(labels);
    json_decref(ranking);
    council__host_emit(h, COUNCIL_EV_REVIEW_COMPLETED, "review", 0, m->name,
                       res->text, res->text_len, data);
    maybe_end_review(rr);
}

/* The review prompt of reviewer m: the question and the answers it is
 * shown (m->shown), in that order.  New string, NULL on OOM.  The answers
 * do not change after the answer stage, so it is the same text each time
 * (prompt_again). */
static char *
review_prompt(rank_run *rr, const council__hmember *m)
{
    council__host *h = &rr->h;
    const char **texts = council__calloc(m->n_shown, sizeof(*texts));
    size_t *lens = council__calloc(m->n_shown, sizeof(*lens));
    char *prompt = NULL;
    size_t i;

    if (texts != NULL && lens != NULL) {
        for (i = 0; i < m->n_shown; i++) {
            const council__hmember *o = &h->members[rr->cands[m->shown[i]]];
            texts[i] = o->answer;
            lens[i] = o->answer_len;
        }
        prompt = council__prompt_review(h->question, texts, lens, m->n_shown);
    }
    council__free(texts);
    council__free(lens);
    return prompt;
}

static char *
r_prompt_again(council__host *h, const council__hcall *c)
{
    const council__hmember *m = &h->members[c->member];

    if (m->shown == NULL)
        return NULL;
    return review_prompt((rank_run *)h, m);
}

static void
start_review(rank_run *rr)
{
    council__host *h = &rr->h;
    size_t r, i;

    rr->reviewing = 1;
    council__host_emit(h, COUNCIL_EV_STAGE_STARTED, "review", 0, NULL, NULL, 0,
                       NULL);
    if (rr->n_cands < 3 || h->budget_out) {
        /* A reviewer would rank one answer or none: nothing to learn. */
        council__host_emit(
            h, COUNCIL_EV_STAGE_COMPLETED, "review", 0, NULL, NULL, 0,
            json_pack("{s:I,s:s}", "reviews", (json_int_t)0, "skipped",
                      h->budget_out ? "the stages' budget ran out"
                                    : "fewer than 3 answers"));
        council__host_synthesize(h);
        return;
    }
    for (r = 0; r < rr->n_cands; r++) {
        council__hmember *m = &h->members[rr->cands[r]];
        size_t *perm, k = 0;
        char *prompt;

        m->n_shown = rr->n_cands - 1;
        m->shown = council__calloc(m->n_shown, sizeof(size_t));
        perm = council__calloc(m->n_shown, sizeof(size_t));
        prompt = NULL;
        if (m->shown != NULL && perm != NULL) {
            /* The others, shuffled with the reviewer's own seed. */
            m->seed = council__member_seed(h->seed ^
                                           council__mix64(rr->cands[r] + 1));
            council__shuffle(m->seed, m->n_shown, perm);
            for (i = 0; i < rr->n_cands; i++)
                if (i != r)
                    m->shown[k++] = i;
            for (i = 0; i < m->n_shown; i++)
                perm[i] = m->shown[perm[i]];
            memcpy(m->shown, perm, m->n_shown * sizeof(size_t));
            prompt = review_prompt(rr, m);
        }
        council__free(perm);
        if (prompt == NULL || council__host_call(h, (int)rr->cands[r], "review",
                                                 0, prompt) != 0) {
            council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, "review", 0,
                               m->name, NULL, 0,
                               json_pack("{s:s,s:{s:s,s:s}}", "model", m->model,
                                         "error", "kind", "internal", "message",
                                         "could not start the call"));
        }
        council__free(prompt);
    }
    maybe_end_review(rr);
}

/* ---- stage 1: answers ---------------------------------------------------- */

static void
maybe_end_answers(rank_run *rr)
{
    if (council__host_end_answers(&rr->h, &rr->cands, &rr->n_cands) == 0)
        start_review(rr);
}

static void
r_call_done(council__host *h, council__hcall *c,
            const council__chat_result *res)
{
    rank_run *rr = (rank_run *)h;

    if (!rr->reviewing) {
        council__host_answer_done(h, c, res);
        maybe_end_answers(rr);
    } else {
        review_done(rr, c, res);
    }
}

static void
r_begin(council__host *h)
{
    council__host_start_answers(h);
    maybe_end_answers((rank_run *)h);
}

static const council__strategy_ops rank_sops = {
    "rank",       r_begin,        r_call_done,   r_synth_prompt,
    r_top_member, r_result_extra, NULL,          NULL,
    r_free_extra, "review",       r_prompt_again};

council_err
council__rank_host_new(const council_def *def, const council_message *msgs,
                       size_t n_msgs, uint64_t seed,
                       const council__host_ops **ops, void **state,
                       council_diag *diag)
{
    council_err rc;
    rank_run *rr;

    rc = council__host_new(def, msgs, n_msgs, seed, &rank_sops,
                           sizeof(rank_run), ops, state, diag);
    if (rc != COUNCIL_OK)
        return rc;
    rr = *state;
    rr->reviews = json_array();
    rr->aggregate = json_array();
    if (rr->reviews == NULL || rr->aggregate == NULL) {
        (*ops)->free(rr);
        *state = NULL;
        return COUNCIL_ENOMEM;
    }
    return COUNCIL_OK;
}
