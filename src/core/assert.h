/* SPDX-License-Identifier: MIT */
/*
 * Invariant checks (STYLE 14).  COUNCIL_ASSERT states an invariant that
 * holds unless the code is wrong: in debug builds (no NDEBUG) a broken one
 * aborts with its place, so tests find it; in release builds it costs
 * nothing.  NEVER(x) marks a condition that "cannot happen" but is handled
 * anyway (SQLite's NEVER): it is x in release builds, so the code around
 * it recovers, and an abort in debug builds.
 */
#ifndef COUNCIL_ASSERT_H
#define COUNCIL_ASSERT_H

#ifndef NDEBUG
void council__assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));
#define COUNCIL_ASSERT(x)                                                      \
    ((x) ? (void)0 : council__assert_fail(#x, __FILE__, __LINE__))
#define NEVER(x) ((x) ? (council__assert_fail(#x, __FILE__, __LINE__), 1) : 0)
#else
#define COUNCIL_ASSERT(x) ((void)0)
#define NEVER(x) (x)
#endif

#endif
