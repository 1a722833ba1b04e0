/* SPDX-License-Identifier: MIT */
/*
 * A small test runner in the manner of libuv's: each case runs in its own
 * process (a re-exec of the test binary) under a timeout, so a crash, hang
 * or leak in one case is reported against that case alone.  Assertions
 * print both values.  After each case the runner checks that no file
 * descriptor and no child process was left behind; under the sanitizers,
 * LeakSanitizer checks memory at the child's exit.
 *
 * Criterion was tried first: its runner segfaults under ThreadSanitizer on
 * this platform (Debian 12, criterion 2.4.1), and the engine's threaded
 * code must run under TSan.
 *
 *   TEST(name) { ... }                 default timeout 10 s
 *   TEST_T(name, seconds) { ... }
 * Timeouts are multiplied by $COUNCIL_TEST_TIMEOUT_MULTIPLIER.
 * `./test_x` runs all cases; `./test_x NAME...` runs those; add --no-fork
 * to run in-process (for gdb).
 */
#ifndef COUNCIL_TEST_RUNNER_H
#define COUNCIL_TEST_RUNNER_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void runner__register(const char *name, void (*fn)(void), int timeout_s);
void runner__fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/* Seed for random tests: $COUNCIL_SEED or a fresh one; printed once. */
uint64_t runner_seed(void);
/* A fresh temporary directory for this case, removed when it passes. */
const char *runner_tmpdir(void);
/* $COUNCIL_TEST_TIMEOUT_MULTIPLIER (1 when unset): time bounds in tests
 * are multiplied by it (slow sanitizer builds). */
double runner_timeout_multiplier(void);
/* Skip the end-of-case fd check (for cases that leave libraries' global
 * descriptors open on purpose, e.g. a process-wide log file). */
void runner_allow_fd_growth(void);

#define TEST_T(name, secs)                                                     \
    static void test_##name(void);                                             \
    __attribute__((constructor)) static void reg_##name(void)                  \
    {                                                                          \
        runner__register(#name, test_##name, secs);                            \
    }                                                                          \
    static void test_##name(void)

#define TEST(name) TEST_T(name, 10)

#define FAIL(...) runner__fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            FAIL("assertion failed: %s", #cond);                               \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                    \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_)                                                          \
            FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);                    \
    } while (0)

#define ASSERT_NE_INT(a, b)                                                    \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ == b_)                                                          \
            FAIL("%s != %s: both %lld", #a, #b, a_);                           \
    } while (0)

#define ASSERT_EQ_U64(a, b)                                                    \
    do {                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                       \
        if (a_ != b_)                                                          \
            FAIL("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);         \
    } while (0)

#define ASSERT_LE_U64(a, b)                                                    \
    do {                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                       \
        if (!(a_ <= b_))                                                       \
            FAIL("%s <= %s: %" PRIu64 " > %" PRIu64, #a, #b, a_, b_);          \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                    \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",     \
                 b_ ? b_ : "(null)");                                          \
    } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                       \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (h_ == NULL || strstr(h_, n_) == NULL)                              \
            FAIL("%s contains \"%s\": it is \"%s\"", #hay, n_,                 \
                 h_ ? h_ : "(null)");                                          \
    } while (0)

#define ASSERT_NULL(p)                                                         \
    do {                                                                       \
        if ((p) != NULL)                                                       \
            FAIL("%s is not NULL", #p);                                        \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                     \
    do {                                                                       \
        if ((p) == NULL)                                                       \
            FAIL("%s is NULL", #p);                                            \
    } while (0)

/* council_err results print their name too. */
#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        int e_ = (int)(expr);                                                  \
        if (e_ != 0)                                                           \
            FAIL("%s: error %d (%s)", #expr, e_,                               \
                 council_strerror((council_err)e_));                           \
    } while (0)

#endif
