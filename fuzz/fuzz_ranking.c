/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the reviewers' "FINAL RANKING:" parser (strict, then tolerant).
 * The first byte chooses the number of labels n (1..26), the rest is the
 * reviewer's text.  Checks: the result is UNPARSED with order[] untouched,
 * or STRICT/TOLERANT with order[0..n-1] a permutation of 0..n-1 and
 * nothing written past n; the parse is deterministic.
 */
#include <string.h>

#include "council/ranking.h"
#include "fuzz.h"

#define SENTINEL ((size_t)0xdeadbeef)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t order[26 + 4], again[26 + 4];
    int seen[26];
    council__rank_parse r, r2;
    const char *text;
    size_t n, len, i;

    if (size < 1)
        return 0;
    n = 1 + data[0] % 26;
    text = (const char *)data + 1;
    len = size - 1;
    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        order[i] = again[i] = SENTINEL;

    r = council__ranking_parse(text, len, n, order);
    FUZZ_CHECK(r == COUNCIL__RANK_UNPARSED || r == COUNCIL__RANK_STRICT ||
               r == COUNCIL__RANK_TOLERANT);
    for (i = n; i < sizeof(order) / sizeof(order[0]); i++)
        FUZZ_CHECK(order[i] == SENTINEL);
    if (r == COUNCIL__RANK_UNPARSED) {
        for (i = 0; i < n; i++)
            FUZZ_CHECK(order[i] == SENTINEL);
    } else {
        memset(seen, 0, sizeof(seen));
        for (i = 0; i < n; i++) {
            FUZZ_CHECK(order[i] < n);
            FUZZ_CHECK(!seen[order[i]]);
            seen[order[i]] = 1;
        }
    }

    /* Same input, same answer. */
    r2 = council__ranking_parse(text, len, n, again);
    FUZZ_CHECK(r2 == r);
    FUZZ_CHECK(memcmp(order, again, sizeof(order)) == 0);
    return 0;
}
