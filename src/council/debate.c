/* SPDX-License-Identifier: MIT */
/*
 * The debate strategy (DESIGN 4), on the shared host (host_common.h):
 * round 1 (stage "answer") every member answers; rounds 2..N (stage
 * "debate") every member that has an answer sees its own previous answer
 * and the others' latest answers (anonymized, shuffled per member and
 * round) and revises its own.  Convergence: a member's similarity is the
 * Jaccard index of the word sets of its answers in two consecutive rounds;
 * when every member that answered in the round is at or above
 * limits.convergence, the debate stops early.  A member that fails in a
 * later round keeps its previous answer.  Then the chairman synthesizes
 * (fallbacks, then the member most similar to the others).
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "council/host_common.h"
#include "council/ranking.h"
#include "council/strategy.h"

typedef struct debate_run {
    council__host h;
    int round; /* the round running, 1-based */
    int converged;
    char **prev; /* per member: its answer of the previous round */
    size_t *prev_len;
    json_t *rounds; /* [{round, answers:{name:text}, similarity}] */
} debate_run;

static void start_round(debate_run *dr);

static char *
revise_prompt(debate_run *dr, size_t me)
{
    council__host *h = &dr->h;
    council__hmember *m = &h->members[me];
    size_t idx[26], perm[26], n = 0, i;
    council__sb b = {0};

    for (i = 0; i < h->n_members && n < 26; i++)
        if (i != me && h->members[i].state == COUNCIL__M_DONE)
            idx[n++] = i;
    m->seed = council__member_seed(h->seed ^ council__mix64(me + 1) ^
                                   council__mix64((uint64_t)dr->round << 32));
    council__shuffle(m->seed, n, perm);
    council__sb_fmt(&b,
                    "You are a member of an LLM Council in a debate, "
                    "round %d of %d.\n\nQuestion: ",
                    dr->round, h->limits.rounds);
    council__sb_str(&b, h->question);
    council__sb_str(&b, "\n\nYour previous answer:\n");
    council__sb_put(&b, m->answer, m->answer_len);
    council__sb_str(&b, "\n\nThe other members' latest answers "
                        "(anonymized):\n\n");
    for (i = 0; i < n; i++) {
        council__hmember *o = &h->members[idx[perm[i]]];
        council__sb_fmt(&b, "Response %c:\n", (char)('A' + i));
        council__sb_put(&b, o->answer, o->answer_len);
        council__sb_str(&b, "\n\n");
    }
    council__sb_str(&b, "END OF RESPONSES\n\n"
                        "REVISE YOUR ANSWER: weigh the other answers "
                        "against yours. Keep what you still think is right, "
                        "correct what they showed to be wrong, adopt what "
                        "they got right, and write your complete revised "
                        "answer to the question. Answer the question "
                        "directly; do not mention the debate or the other "
                        "responses.\n");
    return council__sb_done(&b);
}

/* ---- synthesis hooks ---------------------------------------------------- */

static char *
d_synth_prompt(council__host *h)
{
    debate_run *dr = (debate_run *)h;
    council__sb b = {0};
    size_t i;

    council__sb_fmt(&b,
                    "You are the Chairman of an LLM Council. The "
                    "members answered a user's question, then debated for "
                    "%d round%s, each revising its answer after reading "
                    "the others'%s.\n\nOriginal Question: ",
                    dr->round, dr->round == 1 ? "" : "s",
                    dr->converged ? " until their answers stopped changing"
                                  : "");
    council__sb_str(&b, h->question);
    council__sb_str(&b, "\n\nFinal answers after the debate:\n\n");
    for (i = 0; i < h->n_members; i++) {
        council__hmember *m = &h->members[i];
        if (m->state != COUNCIL__M_DONE)
            continue;
        council__sb_str(&b, "Model: ");
        council__sb_str(&b, m->name);
        council__sb_str(&b, "\nResponse: ");
        council__sb_put(&b, m->answer, m->answer_len);
        council__sb_str(&b, "\n\n");
    }
    council__sb_str(&b, "Your task as Chairman is to synthesize these "
                        "answers into a single, comprehensive, accurate "
                        "answer to the user's original question: keep "
                        "what the members agree on, and where they still "
                        "disagree, decide on the merits and say why. "
                        "Answer the question directly; do not describe the "
                        "council or its process.\n");
    return council__sb_done(&b);
}

/* The member whose answer is most similar, on average, to the others'. */
static int
d_top_member(council__host *h)
{
    double best = -1;
    int top = -1;
    size_t i, j;

    for (i = 0; i < h->n_members; i++) {
        double sum = 0;
        size_t n = 0;
        if (h->members[i].state != COUNCIL__M_DONE)
            continue;
        for (j = 0; j < h->n_members; j++) {
            if (j == i || h->members[j].state != COUNCIL__M_DONE)
                continue;
            sum += council__similarity(
                h->members[i].answer, h->members[i].answer_len,
                h->members[j].answer, h->members[j].answer_len);
            n++;
        }
        if (n > 0)
            sum /= (double)n;
        if (sum > best) {
            best = sum;
            top = (int)i;
        }
    }
    return top;
}

static void
d_result_extra(council__host *h, json_t *r)
{
    debate_run *dr = (debate_run *)h;

    /* A copy: the result goes to other threads. */
    json_object_set_new(r, "rounds", json_deep_copy(dr->rounds));
    json_object_set_new(r, "rounds_run", json_integer(dr->round));
    json_object_set_new(r, "converged", json_boolean(dr->converged));
}

static void
d_started_extra(council__host *h, json_t *data)
{
    json_object_set_new(data, "rounds", json_integer(h->limits.rounds));
    json_object_set_new(data, "convergence", json_real(h->limits.convergence));
}

static void
d_free_extra(council__host *h)
{
    debate_run *dr = (debate_run *)h;
    size_t i;

    if (dr->prev != NULL)
        for (i = 0; i < h->n_members; i++)
            council__free(dr->prev[i]);
    council__free(dr->prev);
    council__free(dr->prev_len);
    json_decref(dr->rounds);
}

/* ---- rounds ------------------------------------------------------------- */

static void
end_round(debate_run *dr)
{
    council__host *h = &dr->h;
    const char *stage = dr->round == 1 ? "answer" : "debate";
    json_t *data, *sims, *answers;
    size_t i, ok = 0, revised = 0, converged = 0;

    for (i = 0; i < h->n_members; i++)
        if (h->members[i].busy)
            return;
    sims = json_object();
    answers = json_object();
    for (i = 0; i < h->n_members; i++) {
        council__hmember *m = &h->members[i];
        if (m->state != COUNCIL__M_DONE)
            continue;
        ok++;
        json_object_set_new(answers, m->name,
                            json_stringn(m->answer, m->answer_len));
        if (dr->round > 1 && dr->prev[i] != NULL) {
            double s = council__similarity(dr->prev[i], dr->prev_len[i],
                                           m->answer, m->answer_len);
            revised++;
            if (s >= h->limits.convergence)
                converged++;
            json_object_set_new(sims, m->name, json_real(s));
        }
    }
    data = json_pack("{s:I,s:I}", "answered", (json_int_t)ok, "failed",
                     (json_int_t)(h->n_members - ok));
    if (dr->round > 1) {
        /* No revision at all this round is no progress either: stop. */
        dr->converged = converged == revised;
        if (data != NULL) {
            json_object_set_new(data, "similarity", json_deep_copy(sims));
            json_object_set_new(data, "threshold",
                                json_real(h->limits.convergence));
            json_object_set_new(data, "converged", json_boolean(dr->converged));
        }
    }
    json_array_append_new(dr->rounds,
                          json_pack("{s:i,s:o,s:o}", "round", dr->round,
                                    "answers", answers, "similarity",
                                    dr->round > 1 ? sims : json_null()));
    if (dr->round == 1)
        json_decref(sims);
    council__host_emit(h, COUNCIL_EV_STAGE_COMPLETED, stage, dr->round, NULL,
                       NULL, 0, data);
    if (dr->round == 1 && council__host_check_quorum(h, "answer") < 0)
        return;
    if (dr->round >= h->limits.rounds || dr->converged || h->budget_out ||
        ok < 2) {
        council__host_synthesize(h);
        return;
    }
    dr->round++;
    start_round(dr);
}

static void
d_call_done(council__host *h, council__hcall *c,
            const council__chat_result *res)
{
    debate_run *dr = (debate_run *)h;
    council__hmember *m = &h->members[c->member];

    if (c->round == 1) {
        council__host_answer_done(h, c, res);
    } else if (res->err == COUNCIL_OK && res->text_len > 0) {
        char *a = council__strndup(res->text, res->text_len);
        if (a != NULL) {
            council__free(m->answer);
            m->answer = a;
            m->answer_len = res->text_len;
        }
        council__host_emit(h, COUNCIL_EV_MEMBER_COMPLETED, "debate", c->round,
                           m->name, res->text, res->text_len,
                           council__host_call_info(res, m->model));
    } else {
        /* It keeps its previous answer. */
        json_t *e = res->err != COUNCIL_OK
                        ? council__host_error_json(h, res)
                        : json_pack("{s:s,s:s}", "kind", "empty", "message",
                                    "the model returned an empty answer");
        council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, "debate", c->round,
                           m->name, NULL, 0,
                           council__host_failed_json(res, m->model, e));
    }
    end_round(dr);
}

static void
start_round(debate_run *dr)
{
    council__host *h = &dr->h;
    const char *stage = dr->round == 1 ? "answer" : "debate";
    size_t i;

    council__host_emit(h, COUNCIL_EV_STAGE_STARTED, stage, dr->round, NULL,
                       NULL, 0, NULL);
    for (i = 0; i < h->n_members; i++) {
        council__hmember *m = &h->members[i];
        char *prompt = NULL;

        if (dr->round > 1) {
            if (m->state != COUNCIL__M_DONE)
                continue;
            council__free(dr->prev[i]);
            dr->prev[i] = council__strndup(m->answer, m->answer_len);
            dr->prev_len[i] = m->answer_len;
            prompt = revise_prompt(dr, i);
        }
        if ((dr->round > 1 && (prompt == NULL || dr->prev[i] == NULL)) ||
            council__host_call(h, (int)i, stage, dr->round, prompt) != 0) {
            json_t *e = json_pack("{s:s,s:s}", "kind", "internal", "message",
                                  "could not start the call");
            if (dr->round == 1) {
                m->state = COUNCIL__M_FAILED;
                m->error = json_deep_copy(e);
            }
            council__host_emit(
                h, COUNCIL_EV_MEMBER_FAILED, stage, dr->round, m->name, NULL, 0,
                json_pack("{s:s,s:o}", "model", m->model, "error", e));
        }
        council__free(prompt);
    }
    end_round(dr);
}

static void
d_begin(council__host *h)
{
    debate_run *dr = (debate_run *)h;

    dr->round = 1;
    start_round(dr);
}

static const council__strategy_ops debate_sops = {
    "debate",       d_begin,         d_call_done, d_synth_prompt, d_top_member,
    d_result_extra, d_started_extra, NULL,        d_free_extra};

council_err
council__debate_host_new(const council_def *def, const council_message *msgs,
                         size_t n_msgs, uint64_t seed,
                         const council__host_ops **ops, void **state,
                         council_diag *diag)
{
    council_err rc;
    debate_run *dr;

    rc = council__host_new(def, msgs, n_msgs, seed, &debate_sops,
                           sizeof(debate_run), ops, state, diag);
    if (rc != COUNCIL_OK)
        return rc;
    dr = *state;
    dr->prev = council__calloc(def->n_members, sizeof(*dr->prev));
    dr->prev_len = council__calloc(def->n_members, sizeof(*dr->prev_len));
    dr->rounds = json_array();
    if (dr->prev == NULL || dr->prev_len == NULL || dr->rounds == NULL) {
        (*ops)->free(dr);
        *state = NULL;
        return COUNCIL_ENOMEM;
    }
    return COUNCIL_OK;
}
