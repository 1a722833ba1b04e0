/* SPDX-License-Identifier: MIT */
/*
 * A validating JSON scanner that builds nothing: it checks that a text is
 * one JSON value (RFC 8259: strict numbers, strings of valid UTF-8 with
 * valid escapes and surrogate pairs, nesting at most COUNCIL__JSON_DEPTH)
 * and hands out the members of a top-level object as spans of the text.
 * The store builds a run's record by splicing the stored run_started and
 * outcome texts member by member (store.c): the texts are checked first, so
 * the record is valid JSON even when a stored text is damaged, at a tenth
 * of the cost of parsing them into trees and rendering them again.  The
 * parsers use it to tell a text jansson refused for memory from bad input.
 */
#include <string.h>

#include "core/json_scan.h"

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

static int
hex4(scan *s, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (s->end - s->p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        unsigned c = s->p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    s->p += 4;
    *out = v;
    return 0;
}

/* One UTF-8 sequence of 2 to 4 bytes at s->p (lead byte >= 0x80). */
static int
utf8(scan *s)
{
    unsigned c = *s->p, cp, min;
    size_t k, j;

    if (c >= 0xC2 && c <= 0xDF)
        k = 1, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 2, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 3, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if ((size_t)(s->end - s->p) < k + 1)
        return -1;
    for (j = 1; j <= k; j++) {
        if ((s->p[j] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s->p[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    s->p += k + 1;
    return 0;
}

static int
string(scan *s)
{
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned c = *s->p;

        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            if (utf8(s) != 0)
                return -1;
            continue;
        }
        s->p++;
        if (c != '\\')
            continue;
        if (s->p >= s->end)
            return -1;
        c = *s->p++;
        if (c == 'u') {
            unsigned u, lo;

            if (hex4(s, &u) != 0)
                return -1;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return -1; /* a low surrogate alone */
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                    return -1;
                s->p += 2;
                if (hex4(s, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
            }
        } else if (strchr("\"\\/bfnrt", (int)c) == NULL || c == '\0') {
            return -1;
        }
    }
    return -1;
}

static int
digits(scan *s)
{
    const unsigned char *start = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

static int
number(scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) != 0)
            return -1;
    }
    return 0;
}

static int
word(scan *s, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int value(scan *s);

/* An object or array after its opening bracket. */
static int
container(scan *s, int object)
{
    unsigned char close = object ? '}' : ']';

    if (++s->depth > COUNCIL__JSON_DEPTH)
        return -1;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (object) {
            ws(s);
            if (s->p >= s->end || *s->p != '"' || string(s) != 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
        }
        if (value(s) != 0)
            return -1;
        if (s->p >= s->end)
            return -1;
        if (*s->p == close) {
            s->p++;
            s->depth--;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
    }
}

/* A value with the blanks around it. */
static int
value(scan *s)
{
    int rc;

    ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
        rc = container(s, 1);
        break;
    case '[':
        rc = container(s, 0);
        break;
    case '"':
        rc = string(s);
        break;
    case 't':
        rc = word(s, "true");
        break;
    case 'f':
        rc = word(s, "false");
        break;
    case 'n':
        rc = word(s, "null");
        break;
    default:
        rc = (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) ? number(s) : -1;
        break;
    }
    ws(s);
    return rc;
}

int
council__json_valid(const char *text, size_t n)
{
    scan s = {(const unsigned char *)text, (const unsigned char *)text + n, 0};

    return value(&s) == 0 && s.p == s.end ? 0 : -1;
}

int
council__json_members(const char *text, size_t n,
                      int (*cb)(const council__json_member *m, void *ud),
                      void *ud)
{
    scan s = {(const unsigned char *)text, (const unsigned char *)text + n, 0};
    council__json_member m;

    /* Valid as a whole first, so the loop below need not check. */
    if (council__json_valid(text, n) != 0)
        return -1;
    ws(&s);
    if (*s.p != '{')
        return -1;
    s.p++;
    ws(&s);
    if (*s.p == '}')
        return 0;
    for (;;) {
        ws(&s);
        m.key = (const char *)s.p + 1;
        (void)string(&s);
        m.key_len = (size_t)((const char *)s.p - m.key - 1);
        ws(&s);
        s.p++; /* ':' */
        ws(&s);
        m.value = (const char *)s.p;
        (void)value(&s);
        m.value_len = (size_t)((const char *)s.p - m.value);
        /* value() took the blanks after it too: trim them. */
        while (m.value_len > 0 && (m.value[m.value_len - 1] == ' ' ||
                                   m.value[m.value_len - 1] == '\t' ||
                                   m.value[m.value_len - 1] == '\n' ||
                                   m.value[m.value_len - 1] == '\r'))
            m.value_len--;
        if (cb(&m, ud) != 0)
            return 1;
        if (*s.p == '}')
            return 0;
        s.p++; /* ',' */
    }
}

int
council__json_scalar(const char *text, size_t n)
{
    scan s = {(const unsigned char *)text, (const unsigned char *)text + n, 0};

    ws(&s);
    if (s.p == s.end || *s.p == '{' || *s.p == '[')
        return 0;
    return council__json_valid(text, n) == 0;
}

int
council__json_oom(const char *text, size_t n, const json_error_t *je)
{
    switch (json_error_code(je)) {
    case json_error_out_of_memory:
        return 1;
    case json_error_numeric_overflow:
    case json_error_null_character:
    case json_error_null_byte_in_key:
    case json_error_duplicate_key:
    case json_error_stack_overflow:
        return 0;
    default:
        /* Without JSON_DECODE_ANY jansson refuses a valid text whose value
         * is not an array or an object ("42", "\"x\""): that is the text's
         * fault, never memory's. */
        return council__json_valid(text, n) == 0 &&
               !council__json_scalar(text, n);
    }
}
