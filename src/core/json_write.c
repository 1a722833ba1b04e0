/* SPDX-License-Identifier: MIT */
/*
 * Compact JSON text from a jansson tree.
 *
 * Why not json_dumps.  jansson renders through a callback per fragment and
 * guards against cycles with a hash table of the containers on the path,
 * keyed by their addresses printed with snprintf: rendering a two-member
 * outcome cost about 3,500 instructions, a quarter of a short run
 * (bench_lifecycle).  This walks the tree once into one growing buffer.
 *
 * The same bytes.  Objects in insertion order (jansson's iterator, which
 * json_dumps uses without JSON_SORT_KEYS), "," and ":" with no blanks;
 * strings escaped as jansson does: \" \\ \b \f \n \r \t, any other byte
 * below 0x20 as \u00XX with upper-case digits, everything else (UTF-8
 * included) as it is (jansson's strings are valid UTF-8, checked when they
 * were made); integers in decimal; reals rendered by jansson itself (its
 * shortest-round-trip rule is not worth a second copy).  A cycle, which
 * json_dumps refuses, ends here at the depth limit.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/json_write.h"

typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

static int
reserve(buf *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->failed)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap != 0 ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    p = council__realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void
put(buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

size_t
council__json_plain_run(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            break;
    }
    return i;
}

size_t
council__json_escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789ABCDEF";

    out[0] = '\\';
    switch (c) {
    case '"':
        out[1] = '"';
        return 2;
    case '\\':
        out[1] = '\\';
        return 2;
    case '\b':
        out[1] = 'b';
        return 2;
    case '\f':
        out[1] = 'f';
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        out[1] = 'u';
        out[2] = '0';
        out[3] = '0';
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return 6;
    }
}

static void
put_string(buf *b, const char *s, size_t n)
{
    size_t i = 0;

    put(b, "\"", 1);
    while (i < n) {
        size_t run = council__json_plain_run(s + i, n - i);
        char esc[6];

        put(b, s + i, run);
        i += run;
        if (i < n) {
            put(b, esc, council__json_escape_byte((unsigned char)s[i], esc));
            i++;
        }
    }
    put(b, "\"", 1);
}

static void
put_integer(buf *b, json_int_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    /* Negate as unsigned: the most negative value has no positive twin. */
    unsigned long long u =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    put(b, tmp + i, sizeof(tmp) - i);
}

static void
put_value(buf *b, const json_t *v, int depth)
{
    if (b->failed)
        return;
    if (depth > COUNCIL__JSON_WRITE_DEPTH) {
        b->failed = 1;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        void *it = json_object_iter((json_t *)v);
        int first = 1;
        put(b, "{", 1);
        while (it != NULL && !b->failed) {
            if (!first)
                put(b, ",", 1);
            first = 0;
            put_string(b, json_object_iter_key(it),
                       json_object_iter_key_len(it));
            put(b, ":", 1);
            put_value(b, json_object_iter_value(it), depth + 1);
            it = json_object_iter_next((json_t *)v, it);
        }
        put(b, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t i, n = json_array_size(v);
        put(b, "[", 1);
        for (i = 0; i < n && !b->failed; i++) {
            if (i > 0)
                put(b, ",", 1);
            put_value(b, json_array_get(v, i), depth + 1);
        }
        put(b, "]", 1);
        break;
    }
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_integer(b, json_integer_value(v));
        break;
    case JSON_REAL: {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        if (t == NULL) {
            b->failed = 1;
            return;
        }
        put(b, t, strlen(t));
        council__free(t);
        break;
    }
    case JSON_TRUE:
        put(b, "true", 4);
        break;
    case JSON_FALSE:
        put(b, "false", 5);
        break;
    case JSON_NULL:
        put(b, "null", 4);
        break;
    }
}

char *
council__json_dumps(const json_t *v, size_t *len_out)
{
    buf b = {NULL, 0, 0, 0};

    if (v == NULL)
        return NULL;
    put_value(&b, v, 0);
    if (reserve(&b, 0) != 0) {
        council__free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len_out != NULL)
        *len_out = b.len;
    return b.p;
}
