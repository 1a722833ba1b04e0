/* SPDX-License-Identifier: MIT */
/*
 * Run ids: UUIDv7 (RFC 9562), so ids sort by start time.  The 12 bits
 * after the version hold a counter within one millisecond (the RFC's
 * method 1), so ids made by one process are strictly increasing.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "core/run.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned counter;

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
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
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
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}
