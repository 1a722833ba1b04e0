/* SPDX-License-Identifier: MIT */
/*
 * Small helpers of the server: a growable buffer, JSON string escaping
 * that never emits invalid UTF-8, clocks and RFC 3339 times, a
 * constant-time comparison for tokens, and a byte hash.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

void
sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;

        while (cap < b->len + n + 1)
            cap *= 2;
        q = realloc(b->p, cap);
        if (q == NULL) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
sbuf_str(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void
sbuf_fmt(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sbuf_add(b, small, (size_t)n);
        return;
    }
    sbuf_add(b, NULL, 0);
    if (b->oom)
        return;
    {
        char *big = malloc((size_t)n + 1);

        if (big == NULL) {
            b->oom = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        sbuf_add(b, big, (size_t)n);
        free(big);
    }
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t k, i;
    unsigned v;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if ((k == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
        (k == 4 && (v < 0x10000 || v > 0x10ffff)))
        return 0;
    return k;
}

void
sbuf_json(sbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        unsigned c = p[i];
        size_t k;
        char esc[8];

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        sbuf_add(b, p + i - run, run);
        run = 0;
        if (c < 0x80) {
            switch (c) {
            case '"':
                sbuf_add(b, "\\\"", 2);
                break;
            case '\\':
                sbuf_add(b, "\\\\", 2);
                break;
            case '\n':
                sbuf_add(b, "\\n", 2);
                break;
            case '\r':
                sbuf_add(b, "\\r", 2);
                break;
            case '\t':
                sbuf_add(b, "\\t", 2);
                break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                sbuf_add(b, esc, 6);
                break;
            }
            i++;
            continue;
        }
        k = utf8_len(p + i, n - i);
        if (k == 0) {
            sbuf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            i++;
        } else {
            sbuf_add(b, p + i, k);
            i += k;
        }
    }
    sbuf_add(b, p + i - run, run);
}

void
sbuf_free(sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

char *
sbuf_take(sbuf *b)
{
    char *p;

    sbuf_add(b, NULL, 0);
    if (b->oom) {
        sbuf_free(b);
        return NULL;
    }
    p = b->p;
    memset(b, 0, sizeof(*b));
    return p;
}

uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t
wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
fmt_time(int64_t us, char *out, size_t size)
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

int
const_time_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char acc = (unsigned char)(alen != blen);
    size_t i;

    /* Walk the expected string (b) whole whatever a is, so the time
     * tells nothing about how much of a matched. */
    for (i = 0; i < blen; i++)
        acc |= (unsigned char)((i < alen ? (unsigned char)a[i] : 0) ^
                               (unsigned char)b[i]);
    return acc == 0;
}

uint64_t
hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
