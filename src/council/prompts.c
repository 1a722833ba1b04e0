/* SPDX-License-Identifier: MIT */
/*
 * The prompts of the rank strategy, modelled on karpathy/llm-council: the
 * review prompt shows a reviewer the anonymized answers ("Response A",
 * "Response B", ...) and asks for a "FINAL RANKING:" list that
 * ranking.c parses; the synthesis prompt gives the chairman every answer by
 * member name with the aggregate ranking.  Each builder returns a new
 * string or NULL when memory ran out.
 */
#include <string.h>

#include "core/alloc.h"
#include "council/ranking.h"

/* A growing string; once an append fails, the rest are no-ops. */
typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb;

static void
put(sb *b, const char *s, size_t n)
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
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
puts_(sb *b, const char *s)
{
    put(b, s, strlen(s));
}

static void
put_label(sb *b, const char *before, size_t k, const char *after)
{
    char c = (char)('A' + k);

    puts_(b, before);
    put(b, &c, 1);
    puts_(b, after);
}

/* An answer as given: its length, or up to the NUL when lens is NULL. */
static void
put_answer(sb *b, const char *const *answers, const size_t *lens, size_t i)
{
    const char *a = answers[i] ? answers[i] : "";

    put(b, a, lens ? lens[i] : strlen(a));
}

static char *
finish(sb *b)
{
    if (b->oom) {
        council__free(b->p);
        return NULL;
    }
    return b->p;
}

char *
council__prompt_review(const char *question, const char *const *answers,
                       const size_t *answer_lens, size_t n)
{
    sb b = {0};

    if (n > 26)
        return NULL;
    puts_(&b, "You are evaluating different responses to the following "
              "question:\n\nQuestion: ");
    puts_(&b, question ? question : "");
    puts_(&b, "\n\nHere are the responses from different models "
              "(anonymized):\n\n");
    for (size_t i = 0; i < n; i++) {
        put_label(&b, "Response ", i, ":\n");
        put_answer(&b, answers, answer_lens, i);
        puts_(&b, "\n\n");
    }
    puts_(&b, "Your task:\n"
              "1. First, evaluate each response individually. For each "
              "response, explain what it does well and what it does "
              "poorly.\n"
              "2. Then, at the very end of your response, provide a final "
              "ranking.\n\n"
              "IMPORTANT: Your final ranking MUST be formatted EXACTLY as "
              "follows:\n"
              "- Start with the line \"FINAL RANKING:\" (all caps, with "
              "colon)\n"
              "- Then list the responses from best to worst as a numbered "
              "list\n"
              "- Each line should be: number, period, space, then ONLY the "
              "response label (e.g., \"1. Response A\")\n"
              "- List every one of the ");
    {
        char num[8];
        size_t k = 0;

        /* n <= 26: two digits at most. */
        if (n >= 10)
            num[k++] = (char)('0' + n / 10);
        num[k++] = (char)('0' + n % 10);
        put(&b, num, k);
    }
    puts_(&b, " responses (");
    for (size_t i = 0; i < n; i++)
        put_label(&b, i ? ", Response " : "Response ", i, "");
    puts_(&b, ") exactly once\n"
              "- Do not add any other text or explanations in the ranking "
              "section, and nothing after it\n\n"
              "The end of your response must look like this, with your own "
              "order:\n\n"
              "FINAL RANKING:\n"
              "1. Response <letter>\n"
              "2. Response <letter>\n"
              "...\n\n"
              "Now provide your evaluation and ranking:\n");
    return finish(&b);
}

char *
council__prompt_synthesis(const char *question, const char *const *names,
                          const char *const *answers, const size_t *answer_lens,
                          size_t n, const char *aggregate_text)
{
    sb b = {0};

    puts_(&b, "You are the Chairman of an LLM Council. Multiple AI models "
              "have provided responses to a user's question, and then "
              "ranked each other's responses.\n\nOriginal Question: ");
    puts_(&b, question ? question : "");
    puts_(&b, "\n\nSTAGE 1 - Individual Responses:\n\n");
    for (size_t i = 0; i < n; i++) {
        puts_(&b, "Model: ");
        puts_(&b, names && names[i] ? names[i] : "?");
        puts_(&b, "\nResponse: ");
        put_answer(&b, answers, answer_lens, i);
        puts_(&b, "\n\n");
    }
    puts_(&b, "STAGE 2 - Peer Rankings (aggregate):\n\n");
    puts_(&b, aggregate_text ? aggregate_text : "(no rankings)");
    puts_(&b, "\n\nYour task as Chairman is to synthesize all of this "
              "information into a single, comprehensive, accurate answer to "
              "the user's original question. Consider:\n"
              "- The individual responses and their insights\n"
              "- The peer rankings and what they reveal about response "
              "quality\n"
              "- Any patterns of agreement or disagreement\n\n"
              "Write the single best final answer to the question: clear, "
              "well-reasoned, representing the council's collective "
              "wisdom. Answer the question directly; do not describe the "
              "council or its process.\n");
    return finish(&b);
}
