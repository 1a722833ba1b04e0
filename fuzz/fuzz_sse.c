/* SPDX-License-Identifier: MIT */
/*
 * Differential fuzzing of the SSE parser: chunk boundaries must never
 * change the result (src/provider/sse.h).  Byte 0 seeds the chunk sizes,
 * byte 1 chooses the largest chunk (1..64 bytes) and the line cap
 * (max_line, small so that the cap is hit), byte 2 the event after which
 * the callback asks to stop (0 = never).  The rest is the stream, fed whole
 * to one parser and in chunks to another.  Checks: the same events (name
 * and data, byte for byte), the same feed error and the same finish
 * result; every event is NUL-terminated and within the cap.
 */
#include <string.h>

#include "provider/sse.h"
#include "fuzz.h"

/* The events seen, serialized: name length, name, data length, data. */
typedef struct evlog {
    uint8_t *p;
    size_t len, cap;
    size_t events;
    size_t stop_after; /* 0 = never stop */
    size_t max_line;
} evlog;

static void
put(evlog *l, const void *s, size_t n)
{
    if (l->cap - l->len < n) {
        size_t ncap = l->cap != 0 ? l->cap : 256;
        uint8_t *np;

        while (ncap - l->len < n)
            ncap *= 2;
        np = realloc(l->p, ncap);
        FUZZ_CHECK(np != NULL);
        l->p = np;
        l->cap = ncap;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static int
on_event(const char *event, const char *data, size_t data_len, void *ud)
{
    evlog *l = ud;
    size_t elen;

    FUZZ_CHECK(event != NULL && data != NULL);
    elen = strlen(event);
    FUZZ_CHECK(elen <= l->max_line);
    FUZZ_CHECK(data_len <= l->max_line);
    FUZZ_CHECK(data[data_len] == '\0');
    put(l, &elen, sizeof(elen));
    put(l, event, elen);
    put(l, &data_len, sizeof(data_len));
    put(l, data, data_len);
    l->events++;
    return l->stop_after != 0 && l->events == l->stop_after;
}

/* xorshift32, seeded from the input: the chunk sizes. */
static uint32_t
next(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    evlog whole = {0}, chunked = {0};
    council__sse *a = NULL, *b = NULL;
    council_err ra, rb = COUNCIL_OK, rc;
    uint32_t seed;
    size_t max_chunk, max_line, pos, len;
    const char *s;
    int fa, fb;

    if (size < 3)
        return 0;
    seed = 0x9e3779b9u ^ data[0];
    max_chunk = 1 + (data[1] & 0x3f);
    max_line = 8 + (size_t)(data[1] >> 6) * 40; /* 8, 48, 88, 128 */
    whole.stop_after = chunked.stop_after = data[2] % 8;
    whole.max_line = chunked.max_line = max_line;
    s = (const char *)data + 3;
    len = size - 3;

    FUZZ_CHECK(council__sse_new(max_line, on_event, &whole, &a) == COUNCIL_OK);
    FUZZ_CHECK(council__sse_new(max_line, on_event, &chunked, &b) ==
               COUNCIL_OK);

    ra = council__sse_feed(a, s, len);
    for (pos = 0; pos < len;) {
        size_t n = 1 + next(&seed) % max_chunk;

        if (n > len - pos)
            n = len - pos;
        rc = council__sse_feed(b, s + pos, n);
        if (rc != COUNCIL_OK) {
            /* Sticky: once failed, every later feed says the same. */
            if (rb != COUNCIL_OK)
                FUZZ_CHECK(rc == rb);
            rb = rc;
        } else {
            FUZZ_CHECK(rb == COUNCIL_OK);
        }
        pos += n;
    }
    if (len == 0)
        rb = council__sse_feed(b, s, 0);
    FUZZ_CHECK(ra == COUNCIL_OK || ra == COUNCIL_EPARSE ||
               ra == COUNCIL_ECANCELED);
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(whole.events == chunked.events);
    FUZZ_CHECK(whole.len == chunked.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.p, chunked.p, whole.len) == 0);
    if (whole.stop_after != 0)
        FUZZ_CHECK(whole.events <= whole.stop_after);
    if (ra == COUNCIL_ECANCELED)
        FUZZ_CHECK(whole.events == whole.stop_after);
    else if (whole.stop_after != 0)
        FUZZ_CHECK(whole.events < whole.stop_after);

    /* A failed parser stays failed and reports pending state at the end. */
    if (ra != COUNCIL_OK)
        FUZZ_CHECK(council__sse_feed(a, "\n\n", 2) == ra);
    fa = council__sse_finish(a);
    fb = council__sse_finish(b);
    FUZZ_CHECK(fa == fb);
    if (ra != COUNCIL_OK)
        FUZZ_CHECK(fa == 1);

    council__sse_free(a);
    council__sse_free(b);
    free(whole.p);
    free(chunked.p);
    return 0;
}
