/* SPDX-License-Identifier: MIT */
/*
 * Differential fuzzing of the provider's hot-path JSON (src/provider/
 * json.c) against jansson.  Byte 0 picks:
 *   even: the chunk scanner.  Whenever council__oai_chunk_scan accepts the
 *         rest of the input, jansson (json_loadb with JSON_ALLOW_NUL, as
 *         openai.c calls it) must parse it to an object without "error",
 *         and every value take_chunk reads from that object (usage counts
 *         and cost, choices[0], its delta.content and finish_reason) must
 *         equal what the scanner reports, byte for byte.
 *   odd:  the writer.  council__json_put_str of the rest must equal
 *         json_dumps of the same string (JSON_ENCODE_ANY), and refuse
 *         exactly the inputs jansson refuses (invalid UTF-8) plus NUL.
 */
#include <jansson.h>
#include <string.h>

#include "core/alloc.h"
#include "provider/call.h"
#include "provider/json.h"
#include "fuzz.h"

static long long
count(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
                   json_integer_value(v) <= COUNCIL__TOKENS_MAX
               ? json_integer_value(v)
               : -1;
}

static void
same_string(const council__jstr *s, json_t *v)
{
    char *buf = malloc(s->n + 1);
    size_t n;

    FUZZ_CHECK(buf != NULL);
    n = council__jstr_decode(s, buf);
    FUZZ_CHECK(n == json_string_length(v));
    FUZZ_CHECK(memcmp(buf, json_string_value(v), n) == 0);
    free(buf);
}

static void
scanner(const char *data, size_t len)
{
    council__oai_chunk k;
    json_error_t jerr;
    json_t *root, *u, *cost, *ch, *d, *content, *fr;
    int accepted = council__oai_chunk_scan(data, len, &k);

    if (!accepted)
        return;
    root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(json_is_object(root));
    FUZZ_CHECK(json_object_get(root, "error") == NULL);
    u = json_object_get(root, "usage");
    FUZZ_CHECK(k.usage == json_is_object(u));
    if (k.usage) {
        FUZZ_CHECK(k.prompt_tokens ==
                   count(json_object_get(u, "prompt_tokens")));
        FUZZ_CHECK(k.completion_tokens ==
                   count(json_object_get(u, "completion_tokens")));
        cost = json_object_get(u, "cost");
        FUZZ_CHECK(k.cost_known ==
                   (json_is_number(cost) && json_number_value(cost) >= 0));
        if (k.cost_known)
            FUZZ_CHECK(k.cost == json_number_value(cost));
    }
    ch = json_array_get(json_object_get(root, "choices"), 0);
    FUZZ_CHECK(k.choice == json_is_object(ch));
    if (k.choice) {
        d = json_object_get(ch, "delta");
        content = json_object_get(d, "content");
        FUZZ_CHECK(k.content == json_is_string(content));
        if (k.content)
            same_string(&k.content_str, content);
        fr = json_object_get(ch, "finish_reason");
        FUZZ_CHECK(k.finish == json_is_string(fr));
        if (k.finish)
            same_string(&k.finish_str, fr);
    } else {
        FUZZ_CHECK(!k.content && !k.finish);
    }
    json_decref(root);
}

static void
writer(const char *data, size_t len)
{
    council__bytes b = {0};
    council_err rc = council__json_put_str(&b, data, len, 1u << 24);
    json_t *s = json_stringn(data, len);

    if (s == NULL || memchr(data, '\0', len) != NULL) {
        FUZZ_CHECK(rc == COUNCIL_EINVAL);
        FUZZ_CHECK(b.len == 0);
    } else {
        char *want = json_dumps(s, JSON_ENCODE_ANY);

        FUZZ_CHECK(rc == COUNCIL_OK);
        FUZZ_CHECK(want != NULL);
        FUZZ_CHECK(b.len == strlen(want));
        FUZZ_CHECK(memcmp(b.p, want, b.len) == 0);
        free(want);
    }
    json_decref(s);
    council__free(b.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        scanner((const char *)data + 1, size - 1);
    else
        writer((const char *)data + 1, size - 1);
    return 0;
}
