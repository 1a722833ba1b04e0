/* SPDX-License-Identifier: MIT */
/*
 * JSON on the provider hot path (json.h): the request writer and the
 * streamed-chunk scanner.
 *
 * The scanner follows jansson 2.14's grammar (json_loadb with
 * JSON_ALLOW_NUL), except that it gives up, returning 0, wherever jansson
 * would fail or where matching jansson exactly would take more code than
 * the case is worth: \u0000, an unpaired surrogate, a number with an
 * exponent or more than 18 digits, nesting deeper than MAX_DEPTH, a key
 * with an escape.  Giving up is always safe: the caller then parses with
 * jansson.
 */
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_write.h"
#include "provider/call.h"
#include "provider/json.h"

#define MAX_DEPTH 32

int
council__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned cp, min;
    int k, j;

    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        k = 1, cp = s[0] & 0x1Fu, min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        k = 2, cp = s[0] & 0x0Fu, min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        k = 3, cp = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (j = 1; j <= k; j++) {
        if ((size_t)j >= n)
            return -1;
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[j] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k + 1;
}

council_err
council_utf8_check(const char *s, size_t n, size_t *bad_offset)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    if (s == NULL && n > 0)
        return COUNCIL_EINVAL;
    while (i < n) {
        int k;

        if (u[i] < 0x80) {
            i++;
            continue;
        }
        k = council__utf8_seq(u + i, n - i);
        if (k <= 0) {
            if (bad_offset != NULL)
                *bad_offset = i;
            return COUNCIL_EINVAL;
        }
        i += (size_t)k;
    }
    return COUNCIL_OK;
}

/* ------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------ */

council_err
council__json_put_str(council__bytes *b, const char *s, size_t n, size_t max)
{
    size_t start = b->len, i = 0;
    council_err rc;

    /* Validate first, so that a refusal appends nothing. */
    if (council_utf8_check(s, n, NULL) != COUNCIL_OK ||
        memchr(s, '\0', n) != NULL)
        return COUNCIL_EINVAL;
    rc = council__bytes_add(b, "\"", 1, max);
    while (rc == COUNCIL_OK && i < n) {
        /* A run of bytes that need no escape goes in one copy. */
        size_t run = council__json_plain_run(s + i, n - i);
        char esc[6];

        if (run > 0) {
            rc = council__bytes_add(b, s + i, run, max);
            i += run;
            continue;
        }
        rc = council__bytes_add(
            b, esc, council__json_escape_byte((unsigned char)s[i], esc), max);
        i++;
    }
    if (rc == COUNCIL_OK)
        rc = council__bytes_add(b, "\"", 1, max);
    if (rc != COUNCIL_OK && b->p != NULL) {
        b->len = start;
        b->p[start] = '\0';
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * Scanner
 * ------------------------------------------------------------------------ */

typedef struct scan {
    const unsigned char *p, *end;
    int depth;
} scan;

static void
ws(scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* ws, then the byte there (or -1 at the end). */
static int
peek(scan *s)
{
    ws(s);
    return s->p < s->end ? *s->p : -1;
}

static int
hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (end - p < 4)
        return 0;
    for (i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* A string at s->p (the opening quote). */
static int
str(scan *s, council__jstr *out)
{
    const unsigned char *q = s->p + 1;
    int esc = 0;

    for (;;) {
        unsigned c;

        if (q >= s->end)
            return 0;
        c = *q;
        if (c == '"')
            break;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            esc = 1;
            if (++q >= s->end)
                return 0;
            switch (*q) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                q++;
                break;
            case 'u':
                if (!hex4(q + 1, s->end, &c))
                    return 0;
                q += 5;
                if (c == 0 || (c >= 0xDC00 && c <= 0xDFFF))
                    return 0;
                if (c >= 0xD800 && c <= 0xDBFF) {
                    if (s->end - q < 6 || q[0] != '\\' || q[1] != 'u' ||
                        !hex4(q + 2, s->end, &c) || c < 0xDC00 || c > 0xDFFF)
                        return 0;
                    q += 6;
                }
                break;
            default:
                return 0;
            }
            continue;
        }
        if (c < 0x80) {
            q++;
        } else {
            int k = council__utf8_seq(q, (size_t)(s->end - q));
            if (k <= 0)
                return 0;
            q += k;
        }
    }
    if (out != NULL) {
        out->p = (const char *)s->p + 1;
        out->n = (size_t)(q - (s->p + 1));
        out->esc = esc;
    }
    s->p = q + 1;
    return 1;
}

static int
is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* A number at s->p: *is_int, and its text in [*b, s->p). */
static int
num(scan *s, int *is_int, const unsigned char **b)
{
    const unsigned char *q = s->p;
    size_t digits = 0;

    *b = q;
    if (*q == '-')
        q++;
    if (!is_digit(q, s->end))
        return 0;
    if (*q == '0') {
        q++;
        digits = 1;
    } else {
        while (is_digit(q, s->end))
            q++, digits++;
    }
    *is_int = 1;
    if (q < s->end && *q == '.') {
        q++;
        if (!is_digit(q, s->end))
            return 0;
        while (is_digit(q, s->end))
            q++;
        *is_int = 0;
    }
    if (q < s->end && (*q == 'e' || *q == 'E'))
        return 0; /* could overflow: jansson's call */
    if (*is_int ? digits > 18 : q - *b > 64)
        return 0;
    s->p = q;
    return 1;
}

static int
lit(scan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

static int value(scan *s);

/* Walks an object at s->p ('{'), calling key_fn for each key with s->p at
 * its value (after ws); key_fn must consume the value. */
static int
object(scan *s, int (*key_fn)(scan *s, const council__jstr *key, void *ud),
       void *ud)
{
    int c;

    if (++s->depth > MAX_DEPTH)
        return 0;
    s->p++;
    if (peek(s) == '}') {
        s->p++;
        s->depth--;
        return 1;
    }
    for (;;) {
        council__jstr key;

        if (peek(s) != '"' || !str(s, &key) || key.esc)
            return 0;
        if (peek(s) != ':')
            return 0;
        s->p++;
        if (peek(s) < 0 || !key_fn(s, &key, ud))
            return 0;
        c = peek(s);
        if (c < 0)
            return 0;
        s->p++;
        if (c == '}')
            break;
        if (c != ',')
            return 0;
    }
    s->depth--;
    return 1;
}

static int
skip_key(scan *s, const council__jstr *key, void *ud)
{
    (void)key, (void)ud;
    return value(s);
}

static int
array(scan *s, int (*elem_fn)(scan *s, size_t i, void *ud), void *ud)
{
    size_t i = 0;
    int c;

    if (++s->depth > MAX_DEPTH)
        return 0;
    s->p++;
    if (peek(s) == ']') {
        s->p++;
        s->depth--;
        return 1;
    }
    for (;; i++) {
        if (peek(s) < 0 || !elem_fn(s, i, ud))
            return 0;
        c = peek(s);
        if (c < 0)
            return 0;
        s->p++;
        if (c == ']')
            break;
        if (c != ',')
            return 0;
    }
    s->depth--;
    return 1;
}

static int
skip_elem(scan *s, size_t i, void *ud)
{
    (void)i, (void)ud;
    return value(s);
}

/* Any value at s->p (after ws), validated and skipped. */
static int
value(scan *s)
{
    const unsigned char *b;
    int is_int;

    switch (*s->p) {
    case '{':
        return object(s, skip_key, NULL);
    case '[':
        return array(s, skip_elem, NULL);
    case '"':
        return str(s, NULL);
    case 't':
        return lit(s, "true", 4);
    case 'f':
        return lit(s, "false", 5);
    case 'n':
        return lit(s, "null", 4);
    default:
        return num(s, &is_int, &b);
    }
}

static int
key_is(const council__jstr *key, const char *name)
{
    size_t n = strlen(name);
    return key->n == n && memcmp(key->p, name, n) == 0;
}

/* An integer count, as openai.c's count(): -1 unless an integer from 0
 * to COUNCIL__TOKENS_MAX. */
static int
count_value(scan *s, long long *out)
{
    const unsigned char *b;
    int is_int;

    *out = -1;
    if (*s->p != '-' && !(*s->p >= '0' && *s->p <= '9'))
        return value(s);
    if (!num(s, &is_int, &b))
        return 0;
    if (is_int) {
        long long v = 0;
        const unsigned char *q = b;
        int neg = *q == '-';

        for (q += neg; q < s->p; q++)
            v = v * 10 + (*q - '0');
        *out = (neg && v != 0) || v > COUNCIL__TOKENS_MAX ? -1 : v;
    }
    return 1;
}

/* A number as jansson's strtod reads it: the decimal point is the
 * locale's (jansson's to_locale). */
static double
real_value(const unsigned char *b, const unsigned char *e)
{
    char buf[80];
    const char *dp = localeconv()->decimal_point;
    size_t n = (size_t)(e - b), i;

    memcpy(buf, b, n); /* n <= 64: num() */
    buf[n] = '\0';
    if (dp != NULL && dp[0] != '\0' && dp[0] != '.' && dp[1] == '\0')
        for (i = 0; i < n; i++)
            if (buf[i] == '.')
                buf[i] = dp[0];
    return strtod(buf, NULL);
}

static int
usage_key(scan *s, const council__jstr *key, void *ud)
{
    council__oai_chunk *o = ud;

    if (key_is(key, "prompt_tokens"))
        return count_value(s, &o->prompt_tokens);
    if (key_is(key, "completion_tokens"))
        return count_value(s, &o->completion_tokens);
    if (key_is(key, "cost")) {
        const unsigned char *b;
        int is_int;
        double v;

        o->cost_known = 0;
        if (*s->p != '-' && !(*s->p >= '0' && *s->p <= '9'))
            return value(s);
        if (!num(s, &is_int, &b))
            return 0;
        if (is_int) {
            long long iv = 0;
            const unsigned char *q = b + (*b == '-');
            for (; q < s->p; q++)
                iv = iv * 10 + (*q - '0');
            v = (double)iv;
            if (*b == '-' && iv != 0)
                v = -v;
        } else {
            v = real_value(b, s->p);
        }
        if (v >= 0) {
            o->cost_known = 1;
            o->cost = v;
        }
        return 1;
    }
    return value(s);
}

static int
delta_key(scan *s, const council__jstr *key, void *ud)
{
    council__oai_chunk *o = ud;

    if (key_is(key, "content")) {
        o->content = 0;
        if (*s->p != '"')
            return value(s);
        o->content = 1;
        return str(s, &o->content_str);
    }
    if (key_is(key, "role") || key_is(key, "refusal"))
        return value(s);
    return 0; /* reasoning, tool calls, …: openai.c's business */
}

static int
choice_key(scan *s, const council__jstr *key, void *ud)
{
    council__oai_chunk *o = ud;

    if (key_is(key, "delta")) {
        o->content = 0;
        if (*s->p != '{')
            return value(s);
        return object(s, delta_key, o);
    }
    if (key_is(key, "finish_reason")) {
        o->finish = 0;
        if (*s->p != '"')
            return value(s);
        o->finish = 1;
        return str(s, &o->finish_str);
    }
    if (key_is(key, "index") || key_is(key, "logprobs") ||
        key_is(key, "native_finish_reason"))
        return value(s);
    return 0;
}

static int
choice_elem(scan *s, size_t i, void *ud)
{
    council__oai_chunk *o = ud;

    if (i > 0 || *s->p != '{')
        return value(s);
    o->choice = 1;
    return object(s, choice_key, o);
}

static int
root_key(scan *s, const council__jstr *key, void *ud)
{
    council__oai_chunk *o = ud;

    if (key_is(key, "error"))
        return 0;
    if (key_is(key, "usage")) {
        o->usage = 0;
        o->prompt_tokens = o->completion_tokens = -1;
        o->cost_known = 0;
        if (*s->p != '{')
            return value(s);
        o->usage = 1;
        return object(s, usage_key, o);
    }
    if (key_is(key, "choices")) {
        o->choice = o->content = o->finish = 0;
        if (*s->p != '[')
            return value(s);
        return array(s, choice_elem, o);
    }
    return value(s);
}

int
council__oai_chunk_scan(const char *data, size_t len, council__oai_chunk *out)
{
    scan s = {(const unsigned char *)data, (const unsigned char *)data + len,
              0};

    memset(out, 0, sizeof(*out));
    out->prompt_tokens = out->completion_tokens = -1;
    if (peek(&s) != '{' || !object(&s, root_key, out))
        return 0;
    return peek(&s) < 0;
}

static void
put_utf8(char **d, unsigned cp)
{
    unsigned char *o = (unsigned char *)*d;

    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | (cp >> 6));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (cp >> 12));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (cp >> 18));
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *d = (char *)o;
}

size_t
council__jstr_decode(const council__jstr *s, char *dst)
{
    const unsigned char *p = (const unsigned char *)s->p, *end = p + s->n;
    char *d = dst;

    if (!s->esc) {
        memcpy(dst, s->p, s->n);
        return s->n;
    }
    /* The scanner validated every escape. */
    while (p < end) {
        unsigned cp = 0, lo = 0xDC00; /* set by hex4 (validated) */

        if (*p != '\\') {
            *d++ = (char)*p++;
            continue;
        }
        switch (p[1]) {
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u':
            hex4(p + 2, end, &cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(p + 8, end, &lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            put_utf8(&d, cp);
            p += 6;
            continue;
        default:
            *d++ = (char)p[1];
            break; /* " \ / */
        }
        p += 2;
    }
    return (size_t)(d - dst);
}
