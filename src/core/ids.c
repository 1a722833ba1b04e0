/* SPDX-License-Identifier: MIT */
/*
 * Run ids: UUIDv7 (RFC 9562), so ids sort by start time.  The 12 bits
 * after the version hold a counter within one millisecond (the RFC's
 * method 1), so ids made by one process are strictly increasing.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/run.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned counter;

/* Random bytes for ids, fetched from the kernel 512 at a time per thread
 * (one getrandom per 32 ids, not one per id).  A forked child starts with
 * an empty pool, or it would make the ids its parent makes next. */
static _Thread_local uint8_t pool[512];
static _Thread_local unsigned pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
pool_forget(void)
{
    pool_left = 0;
}

static void
atfork_register(void)
{
    (void)pthread_atfork(NULL, NULL, pool_forget);
}

static int
random16(uint8_t b[16])
{
    pthread_once(&atfork_once, atfork_register);
    if (pool_left < 16) {
        if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
            return -1;
        pool_left = sizeof(pool);
    }
    pool_left -= 16;
    memcpy(b, pool + pool_left, 16);
    /* Used once: a later fork or a core dump does not hold it. */
    memset(pool + pool_left, 0, 16);
    return 0;
}

void
council__uuid7(char out[37])
{
    uint8_t b[16];
    struct timespec ts;
    uint64_t ms;
    unsigned seq;
    int i;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (random16(b) != 0) {
        /* No entropy source: fall back to time-derived bits; uniqueness
         * still comes from the counter below. */
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL;
        for (i = 0; i < 16; i++)
            b[i] = (uint8_t)(x >> ((i % 8) * 8));
    }
    pthread_mutex_lock(&mu);
    if (ms <= last_ms) {
        ms = last_ms;
        counter++;
        if (counter > 0xfff) { /* counter spent: borrow the next ms */
            ms = ++last_ms;
            counter = 0;
        }
    } else {
        last_ms = ms;
        counter = b[6] & 0x3; /* random start, room to count */
    }
    seq = counter;
    pthread_mutex_unlock(&mu);
    for (i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (uint8_t)(seq & 0xff);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    /* 8-4-4-4-12 lower-case hex digits (snprintf here was a sixth of a
     * short run's instructions). */
    {
        static const char hex[] = "0123456789abcdef";
        char *o = out;
        for (i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *o++ = '-';
            *o++ = hex[b[i] >> 4];
            *o++ = hex[b[i] & 15];
        }
        *o = '\0';
    }
}
