/* SPDX-License-Identifier: MIT */
/*
 * The ranking toolkit: the FINAL RANKING parser (strict, tolerant,
 * unparsed, and a randomized property test), the seeded shuffle, the Borda
 * aggregate on a hand-computed example, and the prompt builders.
 */
#include "core/alloc.h"
#include "council.h"
#include "council/ranking.h"
#include "runner.h"

/* Parse text with n labels; expect kind and (unless UNPARSED) the order
 * given as a string of labels, e.g. "CAB". */
static void
check(const char *text, size_t n, council__rank_parse want,
      const char *want_order)
{
    size_t order[26];
    council__rank_parse got;

    for (size_t i = 0; i < 26; i++)
        order[i] = 99;
    got = council__ranking_parse(text, strlen(text), n, order);
    if (got != want)
        FAIL("parse kind %d, expected %d, for:\n%s", (int)got, (int)want, text);
    if (want == COUNCIL__RANK_UNPARSED) {
        for (size_t i = 0; i < 26; i++)
            if (order[i] != 99)
                FAIL("order touched on UNPARSED");
        return;
    }
    ASSERT_EQ_INT(strlen(want_order), n);
    for (size_t i = 0; i < n; i++)
        if (order[i] != (size_t)(want_order[i] - 'A'))
            FAIL("order[%zu] = %c, expected %c, for:\n%s", i,
                 (char)('A' + order[i]), want_order[i], text);
}

TEST(strict_plain)
{
    check("Response A is thin. Response B is good. Response C is best.\n"
          "\n"
          "FINAL RANKING:\n"
          "1. Response C\n"
          "2. Response B\n"
          "3. Response A\n",
          3, COUNCIL__RANK_STRICT, "CBA");
    /* No trailing newline, CRLF line ends, trailing spaces. */
    check("FINAL RANKING:\r\n1. Response B  \r\n2. Response A", 2,
          COUNCIL__RANK_STRICT, "BA");
    /* Prose after a complete list ends it. */
    check("FINAL RANKING:\n1. Response A\n2. Response B\n\nThat is all.\n", 2,
          COUNCIL__RANK_STRICT, "AB");
    check("FINAL RANKING:\n1. Response A\n", 1, COUNCIL__RANK_STRICT, "A");
}

TEST(strict_markdown_and_styles)
{
    check("**FINAL RANKING:**\n"
          "1. **Response B**\n"
          "2. **Response A**\n"
          "3. **Response C**\n",
          3, COUNCIL__RANK_STRICT, "BAC");
    check("## FINAL RANKING:\n1) Response C\n2) Response A\n3) Response B\n", 3,
          COUNCIL__RANK_STRICT, "CAB");
    check("  **FINAL RANKING**:  \n"
          "\n"
          "   1. Response A\n"
          "\n"
          "\n"
          "   2. Response C\n"
          "\n"
          "   3. Response B   \n",
          3, COUNCIL__RANK_STRICT, "ACB");
    check("FINAL RANKING:\n*1. Response D*\n2. Response C\n3. Response B\n"
          "4. Response A\n",
          4, COUNCIL__RANK_STRICT, "DCBA");
}

TEST(strict_last_block_wins)
{
    /* The reviewer repeats the format first, then gives its own list. */
    check("You asked for this format:\n"
          "FINAL RANKING:\n"
          "1. Response A\n"
          "2. Response B\n"
          "3. Response C\n"
          "\n"
          "My evaluation: ...\n"
          "FINAL RANKING:\n"
          "1. Response B\n"
          "2. Response C\n"
          "3. Response A\n",
          3, COUNCIL__RANK_STRICT, "BCA");
}

TEST(tolerant_cases)
{
    /* Prose: mentions after the heading, in order. */
    check("I think the best is Response B, then Response A, and finally "
          "Response C.\n",
          3, COUNCIL__RANK_TOLERANT, "BAC");
    /* Items with explanations are not strict. */
    check("FINAL RANKING:\n1. Response C - thorough\n2. Response A - ok\n"
          "3. Response B - wrong\n",
          3, COUNCIL__RANK_TOLERANT, "CAB");
    /* Mentions before the heading are ignored when it is present. */
    check("Response A is great, Response B is poor, Response C is fine.\n"
          "Final ranking: Response C, Response A, Response B\n",
          3, COUNCIL__RANK_TOLERANT, "CAB");
    /* All but the worst: the missing one goes last. */
    check("FINAL RANKING:\n1. Response B\n2. Response D\n3. Response A\n", 4,
          COUNCIL__RANK_TOLERANT, "BDAC");
    /* Duplicates count at their first mention. */
    check("FINAL RANKING:\n1. Response A\n2. Response A\n3. Response C\n"
          "4. Response B\n",
          3, COUNCIL__RANK_TOLERANT, "ACB");
    /* Labels beyond n are ignored ("Response Z" with n = 3), and a word
     * starting with a capital is no label. */
    check("Response Analysis: Response Z is off-topic. Order: Response B, "
          "Response C, Response A",
          3, COUNCIL__RANK_TOLERANT, "BCA");
    /* Strict block with a label beyond n falls back. */
    check("FINAL RANKING:\n1. Response D\n2. Response A\n3. Response B\n", 3,
          COUNCIL__RANK_TOLERANT, "ABC");
    /* Misnumbered strict lines fall back too. */
    check("FINAL RANKING:\n2. Response A\n1. Response B\n", 2,
          COUNCIL__RANK_TOLERANT, "AB");
    /* Too many items for n. */
    check("FINAL RANKING:\n1. Response B\n2. Response A\n3. Response A\n", 2,
          COUNCIL__RANK_TOLERANT, "BA");
    /* Case-insensitive word. */
    check("final ranking\nRESPONSE B > response A", 2, COUNCIL__RANK_TOLERANT,
          "BA");
}

TEST(unparsed_cases)
{
    /* Too few labels (two missing). */
    check("FINAL RANKING:\n1. Response A\n2. Response B\n", 4,
          COUNCIL__RANK_UNPARSED, NULL);
    /* None at all. */
    check("They are all good answers.", 3, COUNCIL__RANK_UNPARSED, NULL);
    check("", 3, COUNCIL__RANK_UNPARSED, NULL);
    /* n = 1 with no mention is not a ranking. */
    check("no opinion", 1, COUNCIL__RANK_UNPARSED, NULL);
    /* After the last heading nothing useful, even if earlier text had it. */
    check("Response A, Response B, Response C\nFINAL RANKING:\nnone\n", 3,
          COUNCIL__RANK_UNPARSED, NULL);
    /* Lower-case labels are not labels. */
    check("response a, response b", 2, COUNCIL__RANK_UNPARSED, NULL);
    {
        size_t order[4] = {7, 7, 7, 7};

        ASSERT_EQ_INT(council__ranking_parse("FINAL RANKING:\n", 15, 0, order),
                      COUNCIL__RANK_UNPARSED);
        ASSERT_EQ_INT(council__ranking_parse("1. Response A", 13, 27, order),
                      COUNCIL__RANK_UNPARSED);
        ASSERT_EQ_INT(council__ranking_parse(NULL, 0, 2, order),
                      COUNCIL__RANK_UNPARSED);
        ASSERT_EQ_INT(order[0], 7);
    }
}

TEST(never_reads_past_len)
{
    /* An exact-size heap copy without a NUL: ASan catches any overread. */
    static const char src[] = "FINAL RANKING:\n1. Response B\n2. Response A";
    size_t n = sizeof(src) - 1, order[2];
    char *buf = malloc(n);

    ASSERT_NOT_NULL(buf);
    memcpy(buf, src, n);
    ASSERT_EQ_INT(council__ranking_parse(buf, n, 2, order),
                  COUNCIL__RANK_STRICT);
    ASSERT_EQ_INT(order[0], 1);
    /* Cut inside "Response A": the last label is outside len. */
    ASSERT_EQ_INT(council__ranking_parse(buf, n - 1, 2, order),
                  COUNCIL__RANK_TOLERANT);
    ASSERT_EQ_INT(order[0], 1);
    ASSERT_EQ_INT(order[1], 0);
    for (size_t k = 0; k <= n; k++)
        (void)council__ranking_parse(buf + n - k, k, 2, order);
    free(buf);
}

static uint64_t
rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

TEST_T(property_permutation_or_unparsed, 120)
{
    static const char *const frag[] = {
        "FINAL RANKING:",
        "**FINAL RANKING:**",
        "final ranking",
        "\n",
        "\n\n",
        " ",
        "1. ",
        "2) ",
        "3. ",
        "10. ",
        "**",
        "Response ",
        "Response",
        "response ",
        "Response A",
        "Response B",
        "Response C",
        "Response D",
        "Response Z",
        "Response AB",
        "A",
        "B",
        ".",
        ",",
        "\r\n",
        "\t",
        "#",
        "junk",
        "\xc3\xa9",
        "\xff",
        "9999999999999. ",
    };
    const size_t nf = sizeof(frag) / sizeof(frag[0]);
    uint64_t s = runner_seed();
    size_t counts[3] = {0, 0, 0};
    char text[512];

    for (int it = 0; it < 20000; it++) {
        size_t len = 0, n = 1 + rnd(&s) % 5, order[26], k;
        size_t nfrag = rnd(&s) % 24;
        int seen[26] = {0};
        council__rank_parse r;

        if (it % 2 == 0) {
            /* Near-miss of a real ranking: a heading and n items in a
             * random order, some lines then spoilt by fragments below. */
            size_t p[26];

            council__shuffle(rnd(&s), n, p);
            len =
                (size_t)snprintf(text, sizeof(text), "%s\n", frag[rnd(&s) % 3]);
            for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(
                    text + len, sizeof(text) - len, "%zu%s Response %c%s\n",
                    i + 1, rnd(&s) % 2 ? "." : ")", (char)('A' + p[i]),
                    rnd(&s) % 4 ? "" : "  ");
            nfrag = rnd(&s) % 3;
        }
        for (size_t i = 0; i < nfrag; i++) {
            const char *f = frag[rnd(&s) % nf];
            size_t fl = strlen(f), at = len ? rnd(&s) % (len + 1) : 0;

            if (len + fl > sizeof(text))
                break;
            memmove(text + at + fl, text + at, len - at);
            memcpy(text + at, f, fl);
            len += fl;
        }
        for (k = 0; k < 26; k++)
            order[k] = 1000;
        r = council__ranking_parse(text, len, n, order);
        counts[r]++;
        if (r == COUNCIL__RANK_UNPARSED) {
            for (k = 0; k < 26; k++)
                if (order[k] != 1000)
                    FAIL("UNPARSED touched order, text \"%.*s\"", (int)len,
                         text);
            continue;
        }
        for (k = 0; k < n; k++) {
            if (order[k] >= n || seen[order[k]]++)
                FAIL("not a permutation (n=%zu) for \"%.*s\"", n, (int)len,
                     text);
        }
        for (; k < 26; k++)
            if (order[k] != 1000)
                FAIL("wrote past n");
    }
    /* The fragments reach all three outcomes. */
    ASSERT(counts[COUNCIL__RANK_UNPARSED] > 0);
    ASSERT(counts[COUNCIL__RANK_STRICT] > 0);
    ASSERT(counts[COUNCIL__RANK_TOLERANT] > 0);
}

TEST(shuffle_deterministic)
{
    size_t a[10], b[10];
    /* Computed independently (Python) from the SplitMix64 reference. */
    static const size_t golden[10] = {0, 9, 5, 8, 6, 4, 7, 2, 1, 3};

    council__shuffle(42, 10, a);
    council__shuffle(42, 10, b);
    ASSERT(memcmp(a, b, sizeof(a)) == 0);
    /* Pinned: the same on every platform and in every release. */
    for (size_t i = 0; i < 10; i++)
        if (a[i] != golden[i])
            FAIL("shuffle(42)[%zu] = %zu, pinned %zu", i, a[i], golden[i]);
    council__shuffle(43, 10, b);
    ASSERT(memcmp(a, b, sizeof(a)) != 0);
    council__shuffle(7, 0, a);
    council__shuffle(7, 1, a);
    ASSERT_EQ_INT(a[0], 0);
}

TEST(shuffle_covers_all_permutations_of_3)
{
    int hits[3][3][3] = {{{0}}};
    int distinct = 0;

    for (uint64_t seed = 0; seed < 600; seed++) {
        size_t p[3];

        council__shuffle(seed, 3, p);
        ASSERT(p[0] < 3 && p[1] < 3 && p[2] < 3);
        ASSERT(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
        if (hits[p[0]][p[1]][p[2]]++ == 0)
            distinct++;
    }
    ASSERT_EQ_INT(distinct, 6);
    /* Roughly uniform: each of 6 near 100 of 600. */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++)
                if (hits[i][j][k] != 0 &&
                    (hits[i][j][k] < 60 || hits[i][j][k] > 140))
                    FAIL("permutation %d%d%d seen %d times of 600", i, j, k,
                         hits[i][j][k]);
}

TEST(borda_worked_example)
{
    /*
     * Four members; each reviewer ranks the other three (2, 1, 0 points).
     *   reviewer 0: 2 1 3     reviewer 1: 0 2 3
     *   reviewer 2: 1 0 3     reviewer 3: 2 0 1
     * Points: 0 = 2+1+1 = 4, 1 = 1+2+0 = 3, 2 = 2+1+2 = 5, 3 = 0.
     * Positions: 0: 1,2,2 (5/3); 1: 2,1,3 (2); 2: 1,2,1 (4/3); 3: 3,3,3.
     */
    static const size_t r0[] = {2, 1, 3}, r1[] = {0, 2, 3}, r2[] = {1, 0, 3},
                        r3[] = {2, 0, 1};
    council__ballot b[4] = {{r0, 3}, {r1, 3}, {r2, 3}, {r3, 3}};
    council__tally t[4];

    council__borda(b, 4, 4, t);
    ASSERT_EQ_INT(t[0].candidate, 2);
    ASSERT(t[0].borda == 5.0);
    ASSERT(t[0].mean_rank > 4.0 / 3 - 1e-9 && t[0].mean_rank < 4.0 / 3 + 1e-9);
    ASSERT_EQ_INT(t[0].votes, 3);
    ASSERT_EQ_INT(t[1].candidate, 0);
    ASSERT(t[1].borda == 4.0);
    ASSERT(t[1].mean_rank > 5.0 / 3 - 1e-9 && t[1].mean_rank < 5.0 / 3 + 1e-9);
    ASSERT_EQ_INT(t[2].candidate, 1);
    ASSERT(t[2].borda == 3.0);
    ASSERT(t[2].mean_rank == 2.0);
    ASSERT_EQ_INT(t[3].candidate, 3);
    ASSERT(t[3].borda == 0.0);
    ASSERT(t[3].mean_rank == 3.0);
}

TEST(borda_ties)
{
    /* Equal points and mean rank: the lower index first. */
    {
        static const size_t x[] = {0, 1, 2}, y[] = {1, 0, 2};
        council__ballot b[2] = {{x, 3}, {y, 3}};
        council__tally t[3];

        council__borda(b, 2, 3, t);
        ASSERT_EQ_INT(t[0].candidate, 0);
        ASSERT_EQ_INT(t[1].candidate, 1);
        ASSERT(t[0].borda == 3.0 && t[1].borda == 3.0);
        ASSERT(t[0].mean_rank == 1.5 && t[1].mean_rank == 1.5);
        ASSERT_EQ_INT(t[2].candidate, 2);
    }
    /*
     * Equal points, lower mean rank first; an unnamed candidate after the
     * named ones even on equal (zero) points.
     *   [0 1 2] gives 0:2 1:1 2:0; [1 2] gives 1:1 2:0.
     * 0: 2 pts, mean 1; 1: 2 pts, mean 1.5; 2: 0 pts, mean 2.5; 3: none.
     */
    {
        static const size_t x[] = {0, 1, 2}, y[] = {1, 2};
        council__ballot b[2] = {{x, 3}, {y, 2}};
        council__tally t[4];

        council__borda(b, 2, 4, t);
        ASSERT_EQ_INT(t[0].candidate, 0);
        ASSERT_EQ_INT(t[1].candidate, 1);
        ASSERT(t[1].borda == 2.0 && t[1].mean_rank == 1.5);
        ASSERT_EQ_INT(t[2].candidate, 2);
        ASSERT(t[2].mean_rank == 2.5);
        ASSERT_EQ_INT(t[2].votes, 2);
        ASSERT_EQ_INT(t[3].candidate, 3);
        ASSERT_EQ_INT(t[3].votes, 0);
        ASSERT(t[3].mean_rank == 0.0 && t[3].borda == 0.0);
    }
    /* No ballots: index order, all zero. */
    {
        council__tally t[3];

        council__borda(NULL, 0, 3, t);
        for (size_t i = 0; i < 3; i++) {
            ASSERT_EQ_INT(t[i].candidate, i);
            ASSERT_EQ_INT(t[i].votes, 0);
        }
    }
}

/* Position of needle in hay, or -1. */
static long
pos(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);

    return p ? (long)(p - hay) : -1;
}

TEST(prompt_review)
{
    const char *answers[3] = {"first answer XYZ", "second answer", "third"};
    /* Lengths cut the first answer: "XYZ" must not appear. */
    size_t lens[3] = {12, 13, 5};
    char *p = council__prompt_review("Why is the sky blue?", answers, lens, 3);
    long a, b, c, f;

    ASSERT_NOT_NULL(p);
    ASSERT_STR_CONTAINS(p, "Why is the sky blue?");
    a = pos(p, "\nResponse A:\nfirst answer\n");
    b = pos(p, "\nResponse B:\nsecond answer\n");
    c = pos(p, "\nResponse C:\nthird\n");
    f = pos(p, "FINAL RANKING:");
    ASSERT(a > pos(p, "Why is the sky blue?"));
    ASSERT(a >= 0 && b > a && c > b && f > c);
    ASSERT(pos(p, "XYZ") < 0);
    ASSERT(pos(p, "Response D") < 0);
    ASSERT_STR_CONTAINS(p, "1. Response ");
    ASSERT_STR_CONTAINS(p, "3 responses (Response A, Response B, Response C)");
    council__free(p);

    /* NUL-terminated answers when lens is NULL; 26 labels. */
    {
        const char *many[26];
        char label[16];

        for (int i = 0; i < 26; i++)
            many[i] = "x";
        p = council__prompt_review("q", many, NULL, 26);
        ASSERT_NOT_NULL(p);
        for (int i = 0; i < 26; i++) {
            snprintf(label, sizeof(label), "\nResponse %c:\nx\n", 'A' + i);
            ASSERT_STR_CONTAINS(p, label);
        }
        ASSERT_STR_CONTAINS(p, "26 responses");
        council__free(p);
    }
}

TEST(prompt_synthesis)
{
    const char *names[2] = {"analyst", "skeptic"};
    const char *answers[2] = {"It is Rayleigh scattering.", "Dust?"};
    size_t lens[2] = {26, 5};
    char *p = council__prompt_synthesis("Why is the sky blue?", names, answers,
                                        lens, 2,
                                        "1. analyst (borda 1)\n"
                                        "2. skeptic (borda 0)");
    long q, a, s, g;

    ASSERT_NOT_NULL(p);
    q = pos(p, "Why is the sky blue?");
    a = pos(p, "Model: analyst\nResponse: It is Rayleigh scattering.\n");
    s = pos(p, "Model: skeptic\nResponse: Dust?\n");
    g = pos(p, "1. analyst (borda 1)\n2. skeptic (borda 0)");
    ASSERT(q >= 0 && a > q && s > a && g > s);
    ASSERT_STR_CONTAINS(p, "single best final answer");
    council__free(p);
}
