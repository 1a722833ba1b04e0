/* SPDX-License-Identifier: MIT */
/*
 * The vote strategy (DESIGN 4), on the shared host (host_common.h):
 * every member answers (stage "answer"); every member that answered votes
 * for the best answer of the *others* (stage "vote": anonymized as
 * "Response A, B, ...", its own left out, shuffled with a recorded seed),
 * ending with "FINAL VOTE: Response X"; the plurality wins.  On a tie the
 * chairman is shown the tied answers (anonymized), chooses one, explains
 * why and writes the final answer; otherwise it writes the final answer
 * from the winner's.  Fallbacks: the chairman's list, then the winner's
 * answer (the first tied member in council order on a tie).
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "council/host_common.h"
#include "council/ranking.h"
#include "council/strategy.h"

typedef struct vote_run {
    council__host h;
    int voting;    /* the vote stage began */
    size_t *cands; /* member indices of the answers */
    size_t n_cands;
    size_t *votes;   /* per candidate */
    json_t *ballots; /* [{voter, labels, seed, vote, parse}] */
    int winner;      /* candidate index, -1 on a tie */
    size_t tie[26];  /* tied candidates, in council order */
    size_t n_tie;
    int tie_winner; /* candidate chosen by the chairman, or -1 */
} vote_run;

/*
 * Parse "FINAL VOTE: Response X" (X among the first n labels): strict when
 * the last "FINAL VOTE:" line holds exactly that, tolerant when a
 * "Response X" follows the last "FINAL VOTE" anywhere.  Returns the label
 * index or -1; *how: 1 strict, 2 tolerant, 0 unparsed.
 */
static int
parse_vote(const char *t, size_t len, size_t n, int *how)
{
    static const char mark[] = "FINAL VOTE";
    size_t i, start = len, ml = sizeof(mark) - 1;
    const char *e;

    *how = 0;
    for (i = 0; i + ml <= len; i++)
        if (memcmp(t + i, mark, ml) == 0)
            start = i + ml;
    if (start == len)
        return -1;
    e = memchr(t + start, '\n', len - start);
    {
        /* Strict: ": Response X" then only blanks or markdown to the end
         * of the line. */
        const char *p = t + start, *le = e ? e : t + len;
        if (p < le && *p == ':')
            p++;
        while (p < le && (*p == ' ' || *p == '*'))
            p++;
        if (le - p >= 10 && memcmp(p, "Response ", 9) == 0 && p[9] >= 'A' &&
            (size_t)(p[9] - 'A') < n) {
            const char *q = p + 10;
            while (q < le &&
                   (*q == ' ' || *q == '*' || *q == '\r' || *q == '.'))
                q++;
            if (q == le) {
                *how = 1;
                return p[9] - 'A';
            }
        }
    }
    for (i = start; i + 10 <= len; i++) {
        if (memcmp(t + i, "Response ", 9) == 0 && t[i + 9] >= 'A' &&
            (size_t)(t[i + 9] - 'A') < n &&
            (i + 10 == len || !((t[i + 10] >= 'a' && t[i + 10] <= 'z') ||
                                (t[i + 10] >= 'A' && t[i + 10] <= 'Z')))) {
            *how = 2;
            return t[i + 9] - 'A';
        }
    }
    return -1;
}

static void
put_labelled(council__sb *b, council__host *h, const size_t *members, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        council__hmember *o = &h->members[members[i]];
        council__sb_fmt(b, "Response %c:\n", (char)('A' + i));
        council__sb_put(b, o->answer, o->answer_len);
        council__sb_str(b, "\n\n");
    }
    council__sb_str(b, "END OF RESPONSES\n\n");
}

static char *
vote_prompt(council__host *h, const size_t *members, size_t n)
{
    council__sb b = {0};

    council__sb_str(&b, "You are a member of an LLM Council voting on "
                        "answers to the following question:\n\nQuestion: ");
    council__sb_str(&b, h->question);
    council__sb_str(&b, "\n\nHere are the answers of the other members "
                        "(anonymized):\n\n");
    put_labelled(&b, h, members, n);
    council__sb_str(&b, "Your task: judge which response answers the "
                        "question best (accuracy first, then completeness "
                        "and clarity). Explain your choice briefly. Then, "
                        "on the last line, give your vote formatted EXACTLY "
                        "as:\nFINAL VOTE: Response <letter>\n"
                        "Vote for exactly one of the responses shown, and "
                        "write nothing after that line.\n");
    return council__sb_done(&b);
}

/* ---- synthesis hooks ---------------------------------------------------- */

static char *
v_synth_prompt(council__host *h)
{
    vote_run *vr = (vote_run *)h;
    council__sb b = {0};
    size_t i, tied[26];

    council__sb_str(&b, "You are the Chairman of an LLM Council. The "
                        "members answered a user's question, then each "
                        "voted for the best answer of the others.\n\n"
                        "Original Question: ");
    council__sb_str(&b, h->question);
    if (vr->winner < 0 && vr->n_tie > 1) {
        for (i = 0; i < vr->n_tie; i++)
            tied[i] = vr->cands[vr->tie[i]];
        council__sb_fmt(&b,
                        "\n\nThe vote is tied between %zu answers "
                        "(anonymized):\n\n",
                        vr->n_tie);
        put_labelled(&b, h, tied, vr->n_tie);
        council__sb_str(&b, "Your task as Chairman: break the tie. Say "
                            "which response is best and explain why in a "
                            "few sentences, then write the single best "
                            "final answer to the question, building on the "
                            "chosen response. On the last line, give your "
                            "choice formatted EXACTLY as:\nFINAL VOTE: "
                            "Response <letter>\n");
        return council__sb_done(&b);
    }
    council__sb_str(&b, "\n\nThe answers and their votes:\n\n");
    for (i = 0; i < vr->n_cands; i++) {
        council__hmember *m = &h->members[vr->cands[i]];
        council__sb_str(&b, "Model: ");
        council__sb_str(&b, m->name);
        council__sb_fmt(&b, " (%zu vote%s%s)\nResponse: ", vr->votes[i],
                        vr->votes[i] == 1 ? "" : "s",
                        (int)i == vr->winner ? ", the winner" : "");
        council__sb_put(&b, m->answer, m->answer_len);
        council__sb_str(&b, "\n\n");
    }
    council__sb_str(&b, "Your task as Chairman is to write the single best "
                        "final answer to the user's question, building on "
                        "the winning answer and correcting or completing "
                        "it with the others where they are right. Answer "
                        "the question directly; do not describe the "
                        "council or its process.\n");
    return council__sb_done(&b);
}

static int
v_top_member(council__host *h)
{
    vote_run *vr = (vote_run *)h;

    if (vr->winner >= 0)
        return (int)vr->cands[vr->winner];
    if (vr->tie_winner >= 0)
        return (int)vr->cands[vr->tie_winner];
    if (vr->n_tie > 0)
        return (int)vr->cands[vr->tie[0]];
    return vr->n_cands > 0 ? (int)vr->cands[0] : -1;
}

static void
v_synth_extra(council__host *h, const char *text, size_t len, json_t *data)
{
    vote_run *vr = (vote_run *)h;
    int how, k;

    if (vr->winner >= 0 || vr->n_tie < 2)
        return;
    k = parse_vote(text, len, vr->n_tie, &how);
    if (k < 0) {
        json_object_set_new(data, "winner", json_null());
        return;
    }
    vr->tie_winner = (int)vr->tie[k];
    json_object_set_new(
        data, "winner",
        json_string(h->members[vr->cands[vr->tie_winner]].name));
    json_object_set_new(data, "tie_broken_by", json_string("chairman"));
}

static void
v_result_extra(council__host *h, json_t *r)
{
    vote_run *vr = (vote_run *)h;
    json_t *votes = json_object(), *tie = json_array();
    size_t i;
    int w = vr->winner >= 0 ? vr->winner : vr->tie_winner;

    for (i = 0; i < vr->n_cands && vr->votes != NULL; i++)
        json_object_set_new(votes, h->members[vr->cands[i]].name,
                            json_integer((json_int_t)vr->votes[i]));
    for (i = 0; i < vr->n_tie && vr->winner < 0; i++)
        json_array_append_new(
            tie, json_string(h->members[vr->cands[vr->tie[i]]].name));
    /* A copy: the result goes to other threads. */
    json_object_set_new(r, "ballots", json_deep_copy(vr->ballots));
    json_object_set_new(r, "votes", votes);
    json_object_set_new(r, "tie", tie);
    json_object_set_new(r, "winner",
                        w >= 0 ? json_string(h->members[vr->cands[w]].name)
                               : json_null());
    if (vr->winner < 0 && vr->tie_winner >= 0)
        json_object_set_new(r, "tie_broken_by", json_string("chairman"));
}

static void
v_free_extra(council__host *h)
{
    vote_run *vr = (vote_run *)h;

    council__free(vr->cands);
    council__free(vr->votes);
    json_decref(vr->ballots);
}

/* ---- stage 2: vote ------------------------------------------------------- */

static void
tally(vote_run *vr)
{
    council__host *h = &vr->h;
    size_t i, best = 0;
    json_t *votes = json_object(), *tie = json_array();

    for (i = 0; i < vr->n_cands; i++)
        if (vr->votes[i] > best)
            best = vr->votes[i];
    vr->n_tie = 0;
    for (i = 0; i < vr->n_cands; i++)
        if (vr->votes[i] == best && vr->n_tie < 26)
            vr->tie[vr->n_tie++] = i;
    vr->winner = vr->n_tie == 1 ? (int)vr->tie[0] : -1;
    for (i = 0; i < vr->n_cands; i++)
        json_object_set_new(votes, h->members[vr->cands[i]].name,
                            json_integer((json_int_t)vr->votes[i]));
    for (i = 0; i < vr->n_tie && vr->winner < 0; i++)
        json_array_append_new(
            tie, json_string(h->members[vr->cands[vr->tie[i]]].name));
    council__host_emit(
        h, COUNCIL_EV_RANKINGS_AGGREGATED, "vote", 0, NULL, NULL, 0,
        json_pack("{s:o,s:o,s:o,s:I}", "votes", votes, "winner",
                  vr->winner >= 0
                      ? json_string(h->members[vr->cands[vr->winner]].name)
                      : json_null(),
                  "tie", tie, "ballots",
                  (json_int_t)json_array_size(vr->ballots)));
}

static void
maybe_end_vote(vote_run *vr)
{
    council__host *h = &vr->h;
    size_t i;

    for (i = 0; i < h->n_members; i++)
        if (h->members[i].busy)
            return;
    tally(vr);
    council__host_emit(
        h, COUNCIL_EV_STAGE_COMPLETED, "vote", 0, NULL, NULL, 0,
        json_pack("{s:I}", "votes", (json_int_t)json_array_size(vr->ballots)));
    council__host_synthesize(h);
}

static void
vote_done(vote_run *vr, council__hcall *c, const council__chat_result *res)
{
    council__host *h = &vr->h;
    council__hmember *m = &h->members[c->member];
    json_t *labels, *data, *info;
    const char *name = NULL;
    int how = 0, k = -1;
    size_t i;

    if (res->err != COUNCIL_OK) {
        council__host_emit(
            h, COUNCIL_EV_MEMBER_FAILED, "vote", 0, m->name, NULL, 0,
            council__host_failed_json(res, m->model,
                                      council__host_error_json(h, res)));
        maybe_end_vote(vr);
        return;
    }
    k = parse_vote(res->text, res->text_len, m->n_shown, &how);
    labels = json_object();
    for (i = 0; i < m->n_shown; i++) {
        char label[2] = {(char)('A' + i), '\0'};
        json_object_set_new(
            labels, label,
            json_string(h->members[vr->cands[m->shown[i]]].name));
    }
    if (k >= 0) {
        vr->votes[m->shown[k]]++;
        name = h->members[vr->cands[m->shown[k]]].name;
    }
    data = json_pack("{s:s,s:O,s:I,s:o,s:s,s:b}", "model", m->model, "labels",
                     labels, "seed", (json_int_t)m->seed, "vote",
                     name != NULL ? json_string(name) : json_null(), "parse",
                     how == 1   ? "strict"
                     : how == 2 ? "tolerant"
                                : "unparsed",
                     "parse_ok", how == 1);
    if (data != NULL) {
        info = council__host_call_info(res, m->model);
        json_object_update(data, info);
        json_decref(info);
        json_array_append_new(
            vr->ballots,
            json_pack("{s:s,s:o,s:I,s:o,s:o}", "voter", m->name, "labels",
                      json_deep_copy(labels), "seed", (json_int_t)m->seed,
                      "vote", json_deep_copy(json_object_get(data, "vote")),
                      "parse", json_deep_copy(json_object_get(data, "parse"))));
    }
    json_decref(labels);
    council__host_emit(h, COUNCIL_EV_REVIEW_COMPLETED, "vote", 0, m->name,
                       res->text, res->text_len, data);
    maybe_end_vote(vr);
}

/* The vote prompt of a voter, made anew from the order it was shown (for
 * a retry whose request body was let go). */
static char *
v_prompt_again(council__host *h, const council__hcall *c)
{
    vote_run *vr = (vote_run *)h;
    const council__hmember *m = &h->members[c->member];
    size_t shown[26], i;

    if (m->shown == NULL || m->n_shown > sizeof(shown) / sizeof(shown[0]))
        return NULL;
    for (i = 0; i < m->n_shown; i++)
        shown[i] = vr->cands[m->shown[i]];
    return vote_prompt(h, shown, m->n_shown);
}

static void
start_vote(vote_run *vr)
{
    council__host *h = &vr->h;
    size_t r, i;

    vr->voting = 1;
    council__host_emit(h, COUNCIL_EV_STAGE_STARTED, "vote", 0, NULL, NULL, 0,
                       NULL);
    if (vr->n_cands < 2 || h->budget_out) {
        council__host_emit(
            h, COUNCIL_EV_STAGE_COMPLETED, "vote", 0, NULL, NULL, 0,
            json_pack("{s:I,s:s}", "votes", (json_int_t)0, "skipped",
                      h->budget_out ? "the stages' budget ran out"
                                    : "fewer than 2 answers"));
        /* With no votes, every answer ties; one answer wins alone. */
        tally(vr);
        council__host_synthesize(h);
        return;
    }
    for (r = 0; r < vr->n_cands; r++) {
        council__hmember *m = &h->members[vr->cands[r]];
        size_t *perm, k = 0;
        char *prompt = NULL;
        size_t shown[26];

        m->n_shown = vr->n_cands - 1;
        m->shown = council__calloc(m->n_shown, sizeof(size_t));
        perm = council__calloc(m->n_shown, sizeof(size_t));
        if (m->shown != NULL && perm != NULL) {
            m->seed = council__member_seed(h->seed ^
                                           council__mix64(vr->cands[r] + 1));
            council__shuffle(m->seed, m->n_shown, perm);
            for (i = 0; i < vr->n_cands; i++)
                if (i != r)
                    m->shown[k++] = i;
            for (i = 0; i < m->n_shown; i++)
                perm[i] = m->shown[perm[i]];
            memcpy(m->shown, perm, m->n_shown * sizeof(size_t));
            for (i = 0; i < m->n_shown; i++)
                shown[i] = vr->cands[m->shown[i]];
            prompt = vote_prompt(h, shown, m->n_shown);
        }
        council__free(perm);
        if (prompt == NULL ||
            council__host_call(h, (int)vr->cands[r], "vote", 0, prompt) != 0)
            council__host_emit(h, COUNCIL_EV_MEMBER_FAILED, "vote", 0, m->name,
                               NULL, 0,
                               json_pack("{s:s,s:{s:s,s:s}}", "model", m->model,
                                         "error", "kind", "internal", "message",
                                         "could not start the call"));
        council__free(prompt);
    }
    maybe_end_vote(vr);
}

/* ---- stage 1: answers ---------------------------------------------------- */

static void
maybe_end_answers(vote_run *vr)
{
    if (council__host_end_answers(&vr->h, &vr->cands, &vr->n_cands) != 0)
        return;
    vr->votes = council__calloc(vr->n_cands, sizeof(size_t));
    if (vr->votes == NULL) {
        council__host_fail(&vr->h, "internal", "out of memory");
        return;
    }
    start_vote(vr);
}

static void
v_call_done(council__host *h, council__hcall *c,
            const council__chat_result *res)
{
    vote_run *vr = (vote_run *)h;

    if (!vr->voting) {
        council__host_answer_done(h, c, res);
        maybe_end_answers(vr);
    } else {
        vote_done(vr, c, res);
    }
}

static void
v_begin(council__host *h)
{
    council__host_start_answers(h);
    maybe_end_answers((vote_run *)h);
}

static const council__strategy_ops vote_sops = {
    "vote",       v_begin,        v_call_done,   v_synth_prompt,
    v_top_member, v_result_extra, NULL,          v_synth_extra,
    v_free_extra, "vote",         v_prompt_again};

council_err
council__vote_host_new(const council_def *def, const council_message *msgs,
                       size_t n_msgs, uint64_t seed,
                       const council__host_ops **ops, void **state,
                       council_diag *diag)
{
    council_err rc;
    vote_run *vr;

    rc = council__host_new(def, msgs, n_msgs, seed, &vote_sops,
                           sizeof(vote_run), ops, state, diag);
    if (rc != COUNCIL_OK)
        return rc;
    vr = *state;
    vr->winner = -1;
    vr->tie_winner = -1;
    vr->ballots = json_array();
    if (vr->ballots == NULL) {
        (*ops)->free(vr);
        *state = NULL;
        return COUNCIL_ENOMEM;
    }
    return COUNCIL_OK;
}
