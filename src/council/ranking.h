/* SPDX-License-Identifier: MIT */
/*
 * Reviews in the rank strategy: the prompts that show a reviewer the
 * anonymized answers of the others, the parser of its "FINAL RANKING:" list
 * (strict first, then a tolerant fallback), and the Borda aggregate.
 * Pure functions, no I/O, any thread.
 *
 * Labels: the k-th answer shown to a reviewer is "Response A", "B", ... in
 * the order the reviewer was shown them (a shuffle seeded per reviewer).
 */
#ifndef COUNCIL_RANKING_H
#define COUNCIL_RANKING_H

#include <stddef.h>
#include <stdint.h>

typedef enum council__rank_parse {
    COUNCIL__RANK_UNPARSED = 0,
    COUNCIL__RANK_STRICT = 1,  /* the FINAL RANKING: block, exactly */
    COUNCIL__RANK_TOLERANT = 2 /* recovered by the fallback */
} council__rank_parse;

/*
 * Parse a reviewer's text that ranks n labels (1 <= n <= 26).  On STRICT or
 * TOLERANT, order[0..n-1] is a permutation of 0..n-1, best first (0 = "A").
 * On UNPARSED, order is untouched.  The result is always a permutation or
 * UNPARSED, never a partial list.
 */
council__rank_parse council__ranking_parse(const char *text, size_t len,
                                           size_t n, size_t *order);

/* Deterministic shuffle of 0..n-1 into perm from seed (SplitMix64 +
 * Fisher-Yates).  Same seed, same permutation, on every platform. */
void council__shuffle(uint64_t seed, size_t n, size_t *perm);

/* One reviewer's ballot: candidate indices, best first. */
typedef struct council__ballot {
    const size_t *order;
    size_t n;
} council__ballot;

typedef struct council__tally {
    size_t candidate;
    double borda;     /* sum over ballots of (ballot n - 1 - position) */
    double mean_rank; /* mean 1-based position over ballots naming it;
                         0 if no ballot named it */
    size_t votes;     /* ballots naming it */
} council__tally;

/* Borda count over the ballots.  out[0..n_candidates-1] sorted best first:
 * higher borda, then lower mean_rank, then lower candidate index. */
void council__borda(const council__ballot *ballots, size_t n_ballots,
                    size_t n_candidates, council__tally *out);

/* Prompt builders.  Each returns a new string (council__free), NULL when
 * memory ran out. */

/* The review prompt: the question, then each answer as a block beginning
 * with a line "Response X:" (X = A, B, ...), then the instruction to end
 * with "FINAL RANKING:" and a numbered list "1. Response X". */
char *council__prompt_review(const char *question, const char *const *answers,
                             const size_t *answer_lens, size_t n);

/* The chairman's prompt: the question, each member's answer (by name), and
 * the aggregate ranking as text (already formatted by the caller). */
char *council__prompt_synthesis(const char *question, const char *const *names,
                                const char *const *answers,
                                const size_t *answer_lens, size_t n,
                                const char *aggregate_text);

#endif
