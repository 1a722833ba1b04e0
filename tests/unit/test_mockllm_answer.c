/* SPDX-License-Identifier: MIT */
/* The mock LLM's pieces without a socket: deterministic answers, their
 * tokens, rankings, prompt-token estimates, the fault spec grammar and
 * fault matching. */
#include <string.h>

#include "mockllm/mockllm.h"
#include "runner.h"

static council__mock_msg
user(const char *content)
{
    council__mock_msg m = {"user", content, strlen(content)};

    return m;
}

static size_t
words_in(const char *s)
{
    size_t n = 0;
    int in = 0;

    for (; *s; s++) {
        if (*s == ' ' || *s == '\n') {
            in = 0;
        } else if (!in) {
            in = 1;
            n++;
        }
    }
    return n;
}

TEST(answer_tokens_concatenate_to_text)
{
    council__mock_answer a;
    council__mock_msg msg = user("Why is the sky blue?");
    uint64_t seed;

    for (seed = 0; seed < 200; seed++) {
        size_t i, joined = 0, w;

        ASSERT_OK(council__mock_answer_make(seed, "m", &msg, 1, 0, &a));
        ASSERT_EQ_U64(a.tok_off[0], 0);
        ASSERT_EQ_U64(a.tok_off[a.n_tok], a.len);
        for (i = 0; i < a.n_tok; i++) {
            ASSERT(a.tok_off[i + 1] > a.tok_off[i]);
            joined += a.tok_off[i + 1] - a.tok_off[i];
        }
        ASSERT_EQ_U64(joined, a.len);
        ASSERT_EQ_U64(strlen(a.text), a.len);
        w = words_in(a.text);
        ASSERT(w >= 30 && w <= 70);
        ASSERT_EQ_U64(a.n_tok, w);
        ASSERT_EQ_INT(a.text[a.len - 1], '.');
        ASSERT(a.text[0] >= 'A' && a.text[0] <= 'Z');
        ASSERT_EQ_INT(a.ranking, 0);
        council__mock_answer_free(&a);
    }
}

TEST(answer_is_a_pure_function)
{
    council__mock_answer a, b, c;
    council__mock_msg two[2] = {{"system", "Be brief.", 9}, user("Hi")};
    council__mock_msg swapped[2] = {{"user", "Be brief.", 9},
                                    {"system", "Hi", 2}};

    ASSERT_OK(council__mock_answer_make(5, "m", two, 2, 0, &a));
    ASSERT_OK(council__mock_answer_make(5, "m", two, 2, 0, &b));
    ASSERT_STR_EQ(a.text, b.text);
    ASSERT_EQ_U64(a.hash, b.hash);
    /* Roles count too. */
    ASSERT_OK(council__mock_answer_make(5, "m", swapped, 2, 0, &c));
    ASSERT(a.hash != c.hash);
    council__mock_answer_free(&a);
    council__mock_answer_free(&b);
    council__mock_answer_free(&c);
    /* Frozen: changing the hash, the generator or the word list changes
     * every recorded answer, so it must be a deliberate act. */
    ASSERT_EQ_U64(council__mock_hash(0, "", NULL, 0), 0xe604823a249029bfULL);
    two[1] = user("hi");
    ASSERT_OK(council__mock_answer_make(1, "m", &two[1], 1, 0, &a));
    ASSERT(strncmp(a.text,
                   "Test second context test result several "
                   "example result. Several finally",
                   strlen("Test second context test result several "
                          "example result. Several finally")) == 0);
    council__mock_answer_free(&a);
}

TEST(max_tokens_cuts)
{
    council__mock_answer a;
    council__mock_msg msg = user("hi");

    ASSERT_OK(council__mock_answer_make(1, "m", &msg, 1, 4, &a));
    ASSERT_EQ_U64(a.n_tok, 4);
    ASSERT_EQ_INT(a.truncated, 1);
    ASSERT_EQ_U64(words_in(a.text), 4);
    council__mock_answer_free(&a);
    ASSERT_OK(council__mock_answer_make(1, "m", &msg, 1, 1000, &a));
    ASSERT_EQ_INT(a.truncated, 0);
    council__mock_answer_free(&a);
}

TEST(ranking_for_every_label_count)
{
    char prompt[4096];
    size_t nl;

    for (nl = 1; nl <= 26; nl++) {
        council__mock_answer a;
        council__mock_msg msgs[2];
        size_t i, off = 0;
        int seen[26] = {0};
        const char *p;

        off += (size_t)snprintf(prompt + off, sizeof(prompt) - off,
                                "Review these.\n");
        /* Shown in reverse order, to check the labels are not assumed. */
        for (i = nl; i > 0; i--)
            off += (size_t)snprintf(prompt + off, sizeof(prompt) - off,
                                    "Response %c:\nanswer %zu\n\n",
                                    (char)('A' + i - 1), i);
        snprintf(prompt + off, sizeof(prompt) - off, "End with FINAL RANKING:");
        msgs[0] = user(prompt);
        msgs[1].role = "assistant"; /* the last *user* message counts */
        msgs[1].content = "ok";
        msgs[1].content_len = 2;
        ASSERT_OK(council__mock_answer_make(nl, "judge", msgs, 2, 0, &a));
        ASSERT_EQ_INT(a.ranking, 1);
        p = strstr(a.text, "\n\nFINAL RANKING:\n");
        ASSERT_NOT_NULL(p);
        p += strlen("\n\nFINAL RANKING:\n");
        for (i = 0; i < nl; i++) {
            char label;
            int rank, used;

            ASSERT_EQ_INT(sscanf(p, "%d. Response %c%n", &rank, &label, &used),
                          2);
            ASSERT_EQ_INT(rank, (int)i + 1);
            ASSERT(label >= 'A' && label < (char)('A' + nl));
            ASSERT_EQ_INT(seen[label - 'A'], 0);
            seen[label - 'A'] = 1;
            p += used;
            if (i + 1 < nl) {
                ASSERT_EQ_INT(*p, '\n');
                p++;
            }
        }
        ASSERT_EQ_INT(*p, '\0');
        council__mock_answer_free(&a);
    }
}

TEST(ranking_needs_labels_at_line_start)
{
    council__mock_answer a;
    council__mock_msg msg =
        user("FINAL RANKING please. See Response A: inline, not a label.\n"
             "xResponse B: no\nResponse c: lower case\nResponse AB: no");

    ASSERT_OK(council__mock_answer_make(1, "judge", &msg, 1, 0, &a));
    ASSERT_EQ_INT(a.ranking, 0);
    ASSERT_NULL(strstr(a.text, "FINAL RANKING"));
    council__mock_answer_free(&a);
}

TEST(prompt_tokens_count_words)
{
    council__mock_msg msgs[2] = {user("  one two\tthree\n"), user("four")};

    ASSERT_EQ_U64(council__mock_prompt_tokens(msgs, 2), 4);
    ASSERT_EQ_U64(council__mock_prompt_tokens(msgs, 0), 0);
}

TEST(durations)
{
    uint64_t ms = 0;

    ASSERT_EQ_INT(council__mock_parse_duration("250ms", 5, &ms), 0);
    ASSERT_EQ_U64(ms, 250);
    ASSERT_EQ_INT(council__mock_parse_duration("2s", 2, &ms), 0);
    ASSERT_EQ_U64(ms, 2000);
    ASSERT_EQ_INT(council__mock_parse_duration("5m", 2, &ms), 0);
    ASSERT_EQ_U64(ms, 300000);
    ASSERT_EQ_INT(council__mock_parse_duration("17", 2, &ms), 0);
    ASSERT_EQ_U64(ms, 17);
    ASSERT_EQ_INT(council__mock_parse_duration("", 0, &ms), -1);
    ASSERT_EQ_INT(council__mock_parse_duration("s", 1, &ms), -1);
    ASSERT_EQ_INT(council__mock_parse_duration("5x", 2, &ms), -1);
    ASSERT_EQ_INT(council__mock_parse_duration("-5", 2, &ms), -1);
    ASSERT_EQ_INT(
        council__mock_parse_duration("99999999999999999999h", 21, &ms), -1);
}

TEST(fault_match_first_rule_wins)
{
    council__mock_faults *f = NULL;
    council__mock_fault out;
    council_diag d;

    ASSERT_OK(council__mock_faults_parse(
        "model=llama3.1:8b:http=502;model=gpt-*&nth=3:disconnect=4;"
        "model=gpt-*:stall=1s,after=2;always:no_done",
        &f, &d));
    council__mock_faults_match(f, 0, 1, "llama3.1:8b", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_HTTP);
    ASSERT_EQ_INT(out.status, 502);
    ASSERT_EQ_U64(out.retry_after, 0);
    council__mock_faults_match(f, 0, 3, "gpt-4o", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_DISCONNECT);
    ASSERT_EQ_INT(out.after, 4);
    council__mock_faults_match(f, 0, 2, "gpt-4o", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_STALL);
    ASSERT_EQ_U64(out.stall_ms, 1000);
    ASSERT_EQ_INT(out.after, 2);
    council__mock_faults_match(f, 0, 2, "claude", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_NO_DONE);
    council__mock_faults_free(f);

    /* Empty specs match nothing. */
    ASSERT_OK(council__mock_faults_parse(" ; ", &f, &d));
    ASSERT_NULL(f);
    council__mock_faults_match(f, 0, 1, "x", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_NONE);
    ASSERT_OK(council__mock_faults_parse(NULL, &f, NULL));
    ASSERT_NULL(f);
}

TEST(fault_rate_is_deterministic_and_about_right)
{
    council__mock_faults *f = NULL;
    council__mock_fault out;
    uint64_t n, hits = 0, hits2 = 0;

    ASSERT_OK(council__mock_faults_parse("rate=0.2:http=500", &f, NULL));
    for (n = 1; n <= 10000; n++) {
        council__mock_faults_match(f, 11, n, "m", &out);
        hits += out.kind == COUNCIL__FAULT_HTTP;
        council__mock_faults_match(f, 11, n, "m", &out);
        hits2 += out.kind == COUNCIL__FAULT_HTTP;
    }
    ASSERT_EQ_U64(hits, hits2);
    ASSERT(hits > 1800 && hits < 2200);
    council__mock_faults_free(f);
    ASSERT_OK(council__mock_faults_parse("rate=0:http=500", &f, NULL));
    council__mock_faults_match(f, 11, 5, "m", &out);
    ASSERT_EQ_INT(out.kind, COUNCIL__FAULT_NONE);
    council__mock_faults_free(f);
}
