/* SPDX-License-Identifier: MIT */
/*
 * The reviewers' rankings: parsing a "FINAL RANKING:" list (strict first,
 * then a tolerant fallback), the per-reviewer shuffle and the Borda
 * aggregate.  Pure functions over caller memory; the parser never reads
 * past len and its result is always a whole permutation or UNPARSED.
 */
#include <string.h>

#include "council/ranking.h"

#define MAX_LABELS 26

/* ------------------------------------------------------------------------
 * Line helpers (bounded by an end pointer, never by a NUL)
 * ------------------------------------------------------------------------ */

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Markdown that may wrap a heading or an item: **x**, __x__, # x, `x`. */
static int
is_markup(char c)
{
    return c == '*' || c == '_' || c == '#' || c == '`';
}

static void
trim(const char **b, const char **e)
{
    while (*b < *e && (is_space(**b) || is_markup(**b)))
        (*b)++;
    while (*e > *b && (is_space((*e)[-1]) || is_markup((*e)[-1])))
        (*e)--;
}

/*
 * A "FINAL RANKING:" heading line: those exact characters once whitespace
 * and markdown are removed around them, and markdown inside them skipped,
 * so "**FINAL RANKING:**", "## FINAL RANKING:" and "**FINAL RANKING**:"
 * all count.
 */
static int
is_heading(const char *b, const char *e)
{
    static const char want[] = "FINAL RANKING:";
    size_t k = 0;

    trim(&b, &e);
    for (; b < e; b++) {
        if (is_markup(*b))
            continue;
        if (k == sizeof(want) - 1 || *b != want[k])
            return 0;
        k++;
    }
    return k == sizeof(want) - 1;
}

static int
starts_with_digit(const char *b, const char *e)
{
    trim(&b, &e);
    return b < e && *b >= '0' && *b <= '9';
}

/*
 * A strict item line: "<k>. Response X" or "<k>) Response X", optionally
 * bold or otherwise wrapped in markdown, surrounding whitespace allowed.
 * Returns the label index (0 = 'A') and sets *num, or -1.
 */
static int
item(const char *b, const char *e, unsigned *num)
{
    unsigned v = 0;
    const char *d;

    trim(&b, &e);
    d = b;
    while (b < e && *b >= '0' && *b <= '9' && v < 1000)
        v = v * 10 + (unsigned)(*b++ - '0');
    if (b == d || b == e || (*b != '.' && *b != ')'))
        return -1;
    b++;
    if (b == e || !is_space(*b))
        return -1;
    while (b < e && (is_space(*b) || is_markup(*b)))
        b++;
    if (e - b != 10 || memcmp(b, "Response ", 9) != 0 || b[9] < 'A' ||
        b[9] > 'Z')
        return -1;
    *num = v;
    return b[9] - 'A';
}

/* Next line of [p, end): sets *le to its end (before '\n'), returns the
 * start of the following line (end if none). */
static const char *
next_line(const char *p, const char *end, const char **le)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));

    *le = nl ? nl : end;
    return nl ? nl + 1 : end;
}

/* ------------------------------------------------------------------------
 * The parser
 * ------------------------------------------------------------------------ */

static int
strict(const char *text, size_t len, size_t n, size_t *order)
{
    const char *end = text + len, *p = text, *le, *after = NULL;
    size_t got = 0, tmp[MAX_LABELS];
    int seen[MAX_LABELS] = {0};

    /* The last heading wins: a reviewer may quote the format first. */
    while (p < end) {
        const char *ls = p;

        p = next_line(p, end, &le);
        if (is_heading(ls, le))
            after = p;
    }
    if (after == NULL)
        return 0;
    for (p = after; p < end;) {
        const char *ls = p, *b, *e;
        unsigned num = 0;
        int lab;

        p = next_line(p, end, &le);
        b = ls;
        e = le;
        trim(&b, &e);
        if (b == e)
            continue; /* blank lines between items are fine */
        lab = item(ls, le, &num);
        if (lab < 0) {
            /* A malformed numbered line spoils the block; prose after a
             * complete list ends it. */
            if (starts_with_digit(ls, le))
                return 0;
            break;
        }
        if (got == n || num != got + 1 || (size_t)lab >= n || seen[lab])
            return 0;
        seen[lab] = 1;
        tmp[got++] = (size_t)lab;
    }
    if (got != n)
        return 0;
    memcpy(order, tmp, n * sizeof(*order));
    return 1;
}

static int
ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];

        if (x >= 'a' && x <= 'z')
            x = (char)(x - 'a' + 'A');
        if (y >= 'a' && y <= 'z')
            y = (char)(y - 'a' + 'A');
        if (x != y)
            return 0;
    }
    return 1;
}

static int
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/*
 * The fallback: "Response X" mentions (the word in any case, the label an
 * upper-case letter standing alone) in order of first occurrence, after
 * the last "final ranking" in any case, else in the whole text.
 */
static int
tolerant(const char *text, size_t len, size_t n, size_t *order)
{
    static const char head[] = "FINAL RANKING";
    static const char word[] = "Response ";
    const size_t hl = sizeof(head) - 1, wl = sizeof(word) - 1;
    size_t start = 0, got = 0, tmp[MAX_LABELS];
    int seen[MAX_LABELS] = {0};

    for (size_t i = 0; i + hl <= len; i++)
        if (ieq(text + i, head, hl))
            start = i + hl;
    for (size_t i = start; i + wl < len && got < n; i++) {
        char c;

        if (!ieq(text + i, word, wl))
            continue;
        if (i > 0 && is_alnum(text[i - 1]))
            continue;
        c = text[i + wl];
        if (c < 'A' || c > 'Z' || (size_t)(c - 'A') >= n)
            continue; /* labels past the first n are not candidates */
        if (i + wl + 1 < len && is_alnum(text[i + wl + 1]))
            continue; /* "Response Analysis" names no label */
        if (!seen[c - 'A']) {
            seen[c - 'A'] = 1;
            tmp[got++] = (size_t)(c - 'A');
        }
    }
    /*
     * A reviewer that lists all but the worst has still ranked them: the
     * one left out goes last.  At least one label must have been named,
     * so for n == 1 silence is not a ranking.
     */
    if (got + 1 == n && got > 0) {
        for (size_t k = 0; k < n; k++)
            if (!seen[k])
                tmp[got++] = k;
    }
    if (got != n)
        return 0;
    memcpy(order, tmp, n * sizeof(*order));
    return 1;
}

council__rank_parse
council__ranking_parse(const char *text, size_t len, size_t n, size_t *order)
{
    if (text == NULL || order == NULL || n == 0 || n > MAX_LABELS)
        return COUNCIL__RANK_UNPARSED;
    if (strict(text, len, n, order))
        return COUNCIL__RANK_STRICT;
    if (tolerant(text, len, n, order))
        return COUNCIL__RANK_TOLERANT;
    return COUNCIL__RANK_UNPARSED;
}

/* ------------------------------------------------------------------------
 * Shuffle and Borda
 * ------------------------------------------------------------------------ */

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias (rejection of the short tail);
 * fixed-width arithmetic, so the same on every platform. */
static uint64_t
below(uint64_t *state, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound, r;

    do
        r = splitmix64(state);
    while (r < threshold);
    return r % bound;
}

void
council__shuffle(uint64_t seed, size_t n, size_t *perm)
{
    uint64_t state = seed;

    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)below(&state, (uint64_t)i), t = perm[i - 1];

        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* Best first: higher borda, lower mean rank (a candidate no ballot named
 * sorts after every named one), lower index. */
static int
better(const council__tally *a, const council__tally *b)
{
    if (a->borda != b->borda)
        return a->borda > b->borda;
    if ((a->votes == 0) != (b->votes == 0))
        return a->votes != 0;
    if (a->mean_rank != b->mean_rank)
        return a->mean_rank < b->mean_rank;
    return a->candidate < b->candidate;
}

void
council__borda(const council__ballot *ballots, size_t n_ballots,
               size_t n_candidates, council__tally *out)
{
    for (size_t c = 0; c < n_candidates; c++) {
        out[c].candidate = c;
        out[c].borda = 0;
        out[c].mean_rank = 0;
        out[c].votes = 0;
    }
    for (size_t b = 0; b < n_ballots; b++) {
        const council__ballot *bl = &ballots[b];

        for (size_t p = 0; p < bl->n; p++) {
            size_t c = bl->order[p], q;

            if (c >= n_candidates)
                continue;
            for (q = 0; q < p && bl->order[q] != c; q++)
                ;
            if (q < p)
                continue; /* a repeated name counts once, at its best */
            out[c].borda += (double)(bl->n - 1 - p);
            out[c].mean_rank += (double)(p + 1); /* a sum until below */
            out[c].votes++;
        }
    }
    for (size_t c = 0; c < n_candidates; c++)
        if (out[c].votes > 0)
            out[c].mean_rank /= (double)out[c].votes;
    /* Insertion sort: n is at most a few dozen, and it is stable. */
    for (size_t i = 1; i < n_candidates; i++) {
        council__tally t = out[i];
        size_t j = i;

        for (; j > 0 && better(&t, &out[j - 1]); j--)
            out[j] = out[j - 1];
        out[j] = t;
    }
}
