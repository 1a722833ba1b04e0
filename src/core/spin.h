/* SPDX-License-Identifier: MIT */
/*
 * Spinning before sleeping.  A thread of the engine that waits for
 * another (a caller for the loop to start its run, a caller for a run's
 * finalizes, a recorder thread for work, a loop for its next command)
 * first watches a flag for a short budget, then sleeps as before.
 *
 * Why.  The run lifecycle passes a short run through four threads (the
 * caller, its loop, a recorder thread, the caller again).  On the machines
 * measured (bench/README.md, bench_lifecycle), waking a sleeping thread
 * costs 15-25 us of futex and scheduler work each time, and that, not the
 * run, was 90 % of a short run's time.  A thread that is still spinning
 * when the flag is set sees it within a cache-line transfer.
 *
 * The cost is CPU: a wait that is not answered within the budget has
 * burned the budget first.  The budget is the engine option spin_us
 * (council.h; -1 turns spinning off).  Between looks the spinner calls
 * sched_yield() every few iterations, so on a machine with fewer cores
 * than busy threads the thread it waits for gets the CPU instead of it.
 */
#ifndef COUNCIL_SPIN_H
#define COUNCIL_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static inline void
council__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int64_t
council__spin_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Watch *flag for up to budget_ns: returns 1 as soon as it reads non-zero
 * (with acquire order), 0 when the budget ran out first (or is <= 0).
 */
static inline int
council__spin_on(const atomic_int *flag, int64_t budget_ns)
{
    int64_t end;
    unsigned i;

    if (atomic_load_explicit(flag, memory_order_acquire) != 0)
        return 1;
    if (budget_ns <= 0)
        return 0;
    end = council__spin_now_ns() + budget_ns;
    for (i = 1;; i++) {
        council__cpu_relax();
        if (atomic_load_explicit(flag, memory_order_acquire) != 0)
            return 1;
        if ((i & 15) == 0) {
            if (council__spin_now_ns() >= end)
                return 0;
            sched_yield();
        }
    }
}

#endif
