/* SPDX-License-Identifier: MIT */
/*
 * Deterministic answers for the mock LLM.  An answer is a pure function of
 * (seed, model, the messages' roles and contents): a 64-bit FNV-1a hash of
 * those seeds a SplitMix64 generator that picks 30 to 70 words from a fixed
 * list and groups them into sentences.  When the last user message asks
 * for a "FINAL RANKING" of labelled responses, the answer ends with a
 * ranking block that is a permutation of exactly the labels it found; a
 * "FINAL VOTE:" prompt gets a vote for the longest response shown; a
 * debate's "REVISE YOUR ANSWER" prompt gets the previous answer back with
 * one word added ("Revision R."), so debates converge.
 * Nothing here depends on time, threads or the platform's rand().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "mockllm/mockllm.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* The vocabulary.  Changing it changes every answer: treat it as frozen. */
static const char *const words[] = {
    "the",      "council",   "model",   "answer",    "question",  "careful",
    "evidence", "suggests",  "however", "therefore", "a",         "reasonable",
    "approach", "considers", "several", "factors",   "including", "cost",
    "risk",     "time",      "quality", "and",       "of",        "to",
    "in",       "clear",     "simple",  "robust",    "data",      "system",
    "design",   "trade-off", "benefit", "result",    "method",    "we",
    "should",   "could",     "might",   "first",     "second",    "finally",
    "overall",  "likely",    "useful",  "important", "detail",    "context",
    "example",  "point",     "view",    "strong",    "weak",      "better",
    "worse",    "plan",      "review",  "test",      "measure",   "improve",
    "explain",  "structure", "balance", "outcome",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

/* ---- buffer ---------------------------------------------------------- */

static int
buf_reserve(council__mock_buf *b, size_t extra)
{
    size_t want, cap;
    char *p;

    if (b->oom)
        return -1;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    want = b->len + extra + 1;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    p = council__realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void
council__mock_buf_add(council__mock_buf *b, const void *d, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
council__mock_buf_str(council__mock_buf *b, const char *s)
{
    council__mock_buf_add(b, s, strlen(s));
}

void
council__mock_buf_fmt(council__mock_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
council__mock_buf_json(council__mock_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    /* Copy runs of plain bytes at once; escape quotes, backslashes and
     * control characters.  Bytes >= 0x80 pass through: callers hand in
     * UTF-8 that jansson already validated, or our own ASCII. */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 0;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2);
            elen = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (elen == 0) {
            run++;
            continue;
        }
        council__mock_buf_add(b, s + i - run, run);
        run = 0;
        council__mock_buf_add(b, esc, elen);
    }
    council__mock_buf_add(b, s + n - run, run);
}

void
council__mock_buf_free(council__mock_buf *b)
{
    council__free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- hashing ----------------------------------------------------------- */

static uint64_t
fnv(uint64_t h, const void *d, size_t n)
{
    const unsigned char *p = d;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t
council__mock_hash(uint64_t seed, const char *model,
                   const council__mock_msg *msgs, size_t n)
{
    unsigned char sb[8];
    uint64_t h = FNV_OFFSET;
    size_t i;
    int k;

    /* The seed goes in little-endian whatever the host, so answers are
     * the same bytes on every machine.  A 0 byte separates the fields so
     * ("ab","c") and ("a","bc") hash differently. */
    for (k = 0; k < 8; k++)
        sb[k] = (unsigned char)(seed >> (8 * k));
    h = fnv(h, sb, sizeof(sb));
    h = fnv(h, model, strlen(model) + 1);
    for (i = 0; i < n; i++) {
        const char *role = msgs[i].role ? msgs[i].role : "";

        h = fnv(h, role, strlen(role) + 1);
        h = fnv(h, msgs[i].content, msgs[i].content_len);
        h = fnv(h, "", 1);
    }
    return h;
}

uint64_t
council__mock_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n small, bias negligible and, above all, fixed). */
static size_t
pick(uint64_t *st, size_t n)
{
    return (size_t)(council__mock_splitmix(st) % n);
}

/* ---- text -------------------------------------------------------------- */

static int
is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

uint64_t
council__mock_prompt_tokens(const council__mock_msg *msgs, size_t n)
{
    uint64_t count = 0;
    size_t i, j;

    for (i = 0; i < n; i++) {
        int in_word = 0;

        for (j = 0; j < msgs[i].content_len; j++) {
            if (is_space(msgs[i].content[j])) {
                in_word = 0;
            } else if (!in_word) {
                in_word = 1;
                count++;
            }
        }
    }
    return count;
}

/* Append one sentence of nw words. */
static void
sentence(council__mock_buf *b, uint64_t *st, size_t nw)
{
    size_t i;

    for (i = 0; i < nw; i++) {
        const char *w = words[pick(st, N_WORDS)];

        if (i == 0) {
            char up = w[0];

            if (up >= 'a' && up <= 'z')
                up = (char)(up - 'a' + 'A');
            council__mock_buf_add(b, &up, 1);
            council__mock_buf_str(b, w + 1);
        } else {
            council__mock_buf_add(b, " ", 1);
            council__mock_buf_str(b, w);
        }
    }
    council__mock_buf_add(b, ".", 1);
}

/* 30..70 words in sentences of 5..12 words (a short tail joins the last). */
static void
prose(council__mock_buf *b, uint64_t *st)
{
    size_t total = 30 + pick(st, 41);
    int first = 1;

    while (total > 0) {
        size_t nw = 5 + pick(st, 8);

        if (nw > total || total - nw < 5)
            nw = total;
        if (!first)
            council__mock_buf_add(b, " ", 1);
        first = 0;
        sentence(b, st, nw);
        total -= nw;
    }
}

/*
 * The labels X of lines that begin (after blanks) with "Response X:", in
 * order of first appearance, each once.  Returns how many (0..26).
 */
static size_t
find_labels(const char *s, size_t n, char labels[26])
{
    uint32_t seen = 0;
    size_t count = 0, i = 0;

    while (i < n) {
        size_t j = i;

        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (n - j >= 11 && memcmp(s + j, "Response ", 9) == 0 &&
            s[j + 9] >= 'A' && s[j + 9] <= 'Z' && s[j + 10] == ':') {
            int k = s[j + 9] - 'A';

            if (!(seen & (1u << k))) {
                seen |= 1u << k;
                labels[count++] = s[j + 9];
            }
        }
        while (j < n && s[j] != '\n')
            j++;
        i = j + 1;
    }
    return count;
}

static void
ranking(council__mock_buf *b, uint64_t *st, char *labels, size_t nl)
{
    size_t i;

    /* A sentence about each response, in the order they were shown. */
    council__mock_buf_str(b, "Evaluation:");
    for (i = 0; i < nl; i++) {
        council__mock_buf_fmt(
            b, "\nResponse %c is %s and %s, with a %s %s.", labels[i],
            words[pick(st, N_WORDS)], words[pick(st, N_WORDS)],
            words[pick(st, N_WORDS)], words[pick(st, N_WORDS)]);
    }
    /* Fisher-Yates from the same generator: a permutation of the labels. */
    for (i = nl; i > 1; i--) {
        size_t j = pick(st, i);
        char t = labels[i - 1];

        labels[i - 1] = labels[j];
        labels[j] = t;
    }
    council__mock_buf_str(b, "\n\nFINAL RANKING:");
    for (i = 0; i < nl; i++)
        council__mock_buf_fmt(b, "\n%zu. Response %c", i + 1, labels[i]);
}

/*
 * A vote (the prompt holds "FINAL VOTE:" and "Response X:" blocks): a
 * sentence on each response, then "FINAL VOTE: Response X" for the longest
 * response (the first of equals).  Each block runs from its label line to
 * the next label line or an "END OF RESPONSES" line.  Every voter who is
 * shown the longest answer picks it, so the plurality is predictable.
 */
static void
vote(council__mock_buf *b, uint64_t *st, const char *s, size_t n)
{
    size_t len[26] = {0}, i = 0, best = 0;
    char labels[26];
    size_t nl = 0;
    int cur = -1;

    while (i < n) {
        size_t j = i, ls = i;

        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (n - j >= 11 && memcmp(s + j, "Response ", 9) == 0 &&
            s[j + 9] >= 'A' && s[j + 9] <= 'Z' && s[j + 10] == ':' && nl < 26) {
            labels[nl] = s[j + 9];
            cur = (int)nl++;
        } else if (n - j >= 16 && memcmp(s + j, "END OF RESPONSES", 16) == 0) {
            cur = -1;
        } else if (cur >= 0) {
            while (j < n && s[j] != '\n')
                j++;
            len[cur] += j - ls + 1;
        }
        while (j < n && s[j] != '\n')
            j++;
        i = j + 1;
    }
    council__mock_buf_str(b, "Evaluation:");
    for (i = 0; i < nl; i++) {
        council__mock_buf_fmt(b, "\nResponse %c is %s and %s.", labels[i],
                              words[pick(st, N_WORDS)],
                              words[pick(st, N_WORDS)]);
        if (len[i] > len[best])
            best = i;
    }
    council__mock_buf_fmt(b, "\n\nFINAL VOTE: Response %c", labels[best]);
}

/*
 * A debate revision (the prompt holds "REVISE YOUR ANSWER"): the previous
 * answer as given after "Your previous answer:", then "Revision R." with R
 * from "round R".  Consecutive rounds differ by one word, so a member's
 * word-set similarity between rounds is high but below 1.  0 if the
 * prompt lacks the parts (then the caller writes prose).
 */
static int
revise(council__mock_buf *b, const char *s, size_t n)
{
    static const char prev[] = "Your previous answer:\n";
    static const char others[] = "\n\nThe other members' latest answers";
    const char *p = memmem(s, n, prev, sizeof(prev) - 1), *e, *r;
    unsigned long round = 0;

    if (p == NULL)
        return 0;
    p += sizeof(prev) - 1;
    e = memmem(p, n - (size_t)(p - s), others, sizeof(others) - 1);
    r = memmem(s, n, "round ", 6);
    if (e == NULL || r == NULL)
        return 0;
    for (r += 6; r < s + n && *r >= '0' && *r <= '9' && round < 1000; r++)
        round = round * 10 + (unsigned long)(*r - '0');
    council__mock_buf_add(b, p, (size_t)(e - p));
    council__mock_buf_fmt(b, " Revision %lu.", round);
    return 1;
}

static const council__mock_msg *
last_user(const council__mock_msg *msgs, size_t n)
{
    size_t i;

    for (i = n; i > 0; i--) {
        if (msgs[i - 1].role != NULL && strcmp(msgs[i - 1].role, "user") == 0)
            return &msgs[i - 1];
    }
    return NULL;
}

static int
contains(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

council_err
council__mock_answer_make(uint64_t seed, const char *model,
                          const council__mock_msg *msgs, size_t n,
                          size_t max_tokens, council__mock_answer *out)
{
    council__mock_buf b = {0};
    const council__mock_msg *u = last_user(msgs, n);
    uint64_t st;
    size_t *off = NULL, nt = 0, i;
    char labels[26];
    size_t nl = 0;
    int truncated = 0;

    memset(out, 0, sizeof(*out));
    out->hash = council__mock_hash(seed, model, msgs, n);
    st = out->hash;
    if (u != NULL && contains(u->content, u->content_len, "FINAL RANKING"))
        nl = find_labels(u->content, u->content_len, labels);
    if (nl > 0)
        ranking(&b, &st, labels, nl);
    else if (u != NULL && contains(u->content, u->content_len, "FINAL VOTE:") &&
             find_labels(u->content, u->content_len, labels) > 0)
        vote(&b, &st, u->content, u->content_len);
    else if (u == NULL ||
             !contains(u->content, u->content_len, "REVISE YOUR ANSWER") ||
             !revise(&b, u->content, u->content_len))
        prose(&b, &st);
    if (b.oom)
        goto fail;

    /* Tokens: a new one starts where whitespace follows non-whitespace. */
    off = council__malloc((b.len + 2) * sizeof(*off));
    if (off == NULL)
        goto fail;
    off[nt++] = 0;
    for (i = 1; i < b.len; i++) {
        if (is_space(b.p[i]) && !is_space(b.p[i - 1]))
            off[nt++] = i;
    }
    off[nt] = b.len;
    if (max_tokens > 0 && max_tokens < nt) {
        nt = max_tokens;
        truncated = 1;
        b.len = off[nt];
        b.p[b.len] = '\0';
    }
    out->text = b.p;
    out->len = b.len;
    out->tok_off = off;
    out->n_tok = nt;
    out->ranking = nl > 0 && !truncated;
    out->truncated = truncated;
    return COUNCIL_OK;

fail:
    council__mock_buf_free(&b);
    council__free(off);
    return COUNCIL_ENOMEM;
}

void
council__mock_answer_free(council__mock_answer *a)
{
    if (a == NULL)
        return;
    council__free(a->text);
    council__free(a->tok_off);
    memset(a, 0, sizeof(*a));
}
