/* SPDX-License-Identifier: MIT */
/* council__json_dumps gives the bytes json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) gives: on chosen values, and on random trees (a fixed
 * seed, so a failure reproduces), held side by side. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json_write.h"
#include "runner.h"

/* Both renderings of v; fails the test naming the first difference. */
static void
same_as_jansson(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = 0;
    char *got = council__json_dumps(v, &len);

    ASSERT_NOT_NULL(want);
    ASSERT_NOT_NULL(got);
    if (strcmp(want, got) != 0)
        FAIL("rendering differs:\n jansson: %s\n ours:    %s", want, got);
    ASSERT_EQ_U64(len, strlen(want));
    free(want);
    council__free(got);
}

static void
same_text(const char *json_text)
{
    json_error_t je;
    json_t *v = json_loads(json_text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);

    if (v == NULL)
        FAIL("test input does not parse: %s: %s", json_text, je.text);
    same_as_jansson(v);
    json_decref(v);
}

TEST(chosen_values)
{
    same_text("{}");
    same_text("[]");
    same_text("null");
    same_text("true");
    same_text("false");
    same_text("0");
    same_text("-1");
    same_text("9223372036854775807");
    same_text("-9223372036854775808");
    same_text("1.5");
    same_text("-0.0");
    same_text("1e300");
    same_text("3.141592653589793");
    same_text("0.1");
    same_text("\"\"");
    same_text("\"plain\"");
    same_text("\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t\"");
    same_text("\"\\u0001\\u001f\\u007f \\u00e9 \\u20ac \\ud83d\\ude00\"");
    same_text("\"nul \\u0000 inside\"");
    same_text("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}");
    same_text("{\"z\":1,\"a\":2,\"m\":3}"); /* insertion order, not sorted */
    same_text("{\"k\\\"ey\\n\":\"v\",\"\\u00e9\":[[],{}]}");
    same_text("[1,[2,[3,[4,[5,[]]]]]]");
    same_text("{\"result\":{\"answer\":\"ok\",\"answers\":[{\"member\":\"a\","
              "\"text\":\"word word\"}]},\"errors\":[]}");
}

TEST(key_with_nul)
{
    json_t *o = json_object();

    ASSERT_EQ_INT(json_object_setn_new(o, "a\0b", 3, json_integer(7)), 0);
    same_as_jansson(o);
    json_decref(o);
}

/* ---- random trees ------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static unsigned
next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A random valid UTF-8 string: ASCII with every control byte likely,
 * and multi-byte characters. */
static json_t *
random_string(void)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\b",
                                         "\f",
                                         "\n",
                                         "\r",
                                         "\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "word ",
                                         "0",
                                         "}",
                                         "]",
                                         ",",
                                         ":"};
    char s[256];
    size_t len = 0, k = next(12);

    while (k-- > 0) {
        const char *p = pieces[next(sizeof(pieces) / sizeof(pieces[0]))];
        size_t n = strlen(p);
        if (len + n >= sizeof(s))
            break;
        memcpy(s + len, p, n);
        len += n;
    }
    if (next(8) == 0 && len + 1 < sizeof(s))
        s[len++] = '\0'; /* an embedded NUL */
    return json_stringn(s, len);
}

static json_t *
random_value(int depth)
{
    unsigned kind = next(depth > 4 ? 6 : 8);

    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(next(2));
    case 2: {
        json_int_t v = (json_int_t)((rng >> 1) >> next(63));
        return json_integer(next(2) ? -v : v);
    }
    case 3:
        return json_real((double)(int)next(2000000) / (1 + next(1000)) *
                         (next(2) ? 1 : -1));
    case 4:
    case 5:
        return random_string();
    case 6: {
        json_t *a = json_array();
        unsigned n = next(5);
        while (n-- > 0)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        unsigned n = next(5);
        while (n-- > 0) {
            json_t *k = random_string();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

TEST(random_trees)
{
    int i;

    for (i = 0; i < 20000; i++) {
        json_t *v = random_value(0);
        ASSERT_NOT_NULL(v);
        same_as_jansson(v);
        json_decref(v);
    }
}

TEST(deeper_than_the_limit_is_refused)
{
    json_t *root = json_array(), *cur = root;
    int i;

    for (i = 0; i < COUNCIL__JSON_WRITE_DEPTH + 5; i++) {
        json_t *a = json_array();
        json_array_append_new(cur, a);
        cur = a;
    }
    ASSERT(council__json_dumps(root, NULL) == NULL);
    json_decref(root);
    /* At the limit it renders. */
    root = json_array();
    cur = root;
    for (i = 0; i < COUNCIL__JSON_WRITE_DEPTH; i++) {
        json_t *a = json_array();
        json_array_append_new(cur, a);
        cur = a;
    }
    {
        char *t = council__json_dumps(root, NULL);
        ASSERT_NOT_NULL(t);
        ASSERT_EQ_U64(strlen(t), 2 * (COUNCIL__JSON_WRITE_DEPTH + 1));
        council__free(t);
    }
    json_decref(root);
}
