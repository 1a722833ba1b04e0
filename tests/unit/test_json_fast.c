/* SPDX-License-Identifier: MIT */
/*
 * The provider's hot-path JSON (src/provider/json.c): the chunk scanner
 * takes the chunks real servers send (so the fast path is really used) and
 * reads the values take_chunk would; it gives up on what it must leave to
 * jansson; the request writer escapes as jansson does and refuses what
 * jansson refuses.  fuzz/fuzz_json_fast.c checks the same against jansson
 * on arbitrary input.
 */
#include <jansson.h>

#include "core/alloc.h"
#include "provider/call.h"
#include "provider/json.h"
#include "runner.h"

static council__oai_chunk
scan_ok(const char *chunk)
{
    council__oai_chunk k;

    if (!council__oai_chunk_scan(chunk, strlen(chunk), &k))
        FAIL("the fast path gave up on:\n%s", chunk);
    return k;
}

static void
expect_str(const council__jstr *s, const char *want, size_t want_len)
{
    char buf[256];
    size_t n;

    ASSERT(s->n < sizeof(buf));
    n = council__jstr_decode(s, buf);
    ASSERT_EQ_INT(n, want_len);
    ASSERT(memcmp(buf, want, n) == 0);
}

TEST(takes_the_chunks_servers_send)
{
    /* The canned nginx server of the benchmarks (OpenAI's own shape). */
    council__oai_chunk k = scan_ok(
        "{\"id\":\"chatcmpl-canned0001\",\"object\":\"chat.completion.chunk\","
        "\"created\":1700000000,\"model\":\"canned-model\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"logprobs\":null,\"finish_reason\":null}]}");

    ASSERT(k.choice && k.content && !k.finish && !k.usage);
    expect_str(&k.content_str, "", 0);

    k = scan_ok("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Canned "
                "answer\"},\"finish_reason\":null}]}");
    expect_str(&k.content_str, "Canned answer", 13);

    k = scan_ok("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                "\"stop\"}]}");
    ASSERT(k.choice && !k.content && k.finish);
    expect_str(&k.finish_str, "stop", 4);

    /* The usage chunk (stream_options.include_usage), OpenRouter's cost. */
    k = scan_ok("{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
                "\"completion_tokens\":34,\"total_tokens\":46,\"cost\":0.0025,"
                "\"prompt_tokens_details\":{\"cached_tokens\":0}}}");
    ASSERT(!k.choice && k.usage);
    ASSERT_EQ_INT(k.prompt_tokens, 12);
    ASSERT_EQ_INT(k.completion_tokens, 34);
    ASSERT(k.cost_known && k.cost == 0.0025);

    /* council mock-llm's chunks. */
    k = scan_ok("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
                "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,"
                "\"delta\":{\"content\":\"word \"},\"finish_reason\":null}]}");
    expect_str(&k.content_str, "word ", 5);
}

TEST(decodes_escapes)
{
    council__oai_chunk k = scan_ok(
        "{\"choices\":[{\"delta\":{\"content\":\"a\\\"b\\\\c\\/d\\n\\t\\r\\b\\f"
        "\\u00e9\\u4e2d\\ud83d\\ude00\xc3\xa9\"}}]}");
    const char want[] =
        "a\"b\\c/d\n\t\r\b\f\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"
        "\xc3\xa9";

    expect_str(&k.content_str, want, sizeof(want) - 1);
}

TEST(last_duplicate_wins_as_in_jansson)
{
    council__oai_chunk k = scan_ok(
        "{\"choices\":[{\"delta\":{\"content\":\"a\"}}],"
        "\"choices\":[{\"delta\":{\"content\":\"b\",\"content\":null}}],"
        "\"usage\":{\"prompt_tokens\":1},\"usage\":null}");

    ASSERT(k.choice && !k.content && !k.usage);
    k = scan_ok("{\"usage\":{\"prompt_tokens\":-3,\"completion_tokens\":2.5,"
                "\"cost\":-1}}");
    ASSERT(k.usage && !k.cost_known);
    ASSERT_EQ_INT(k.prompt_tokens, -1);
    ASSERT_EQ_INT(k.completion_tokens, -1);
    /* Counts past COUNCIL__TOKENS_MAX are not counts (as in openai.c). */
    k = scan_ok("{\"usage\":{\"prompt_tokens\":1099511627777,"
                "\"completion_tokens\":1099511627776}}");
    ASSERT_EQ_INT(k.prompt_tokens, -1);
    ASSERT_EQ_INT(k.completion_tokens, 1099511627776LL);
}

TEST(gives_up_where_jansson_must_decide)
{
    static const char *const hard[] = {
        "{\"error\":{\"message\":\"overloaded\"}}", /* provider error */
        "{\"error\":null,\"choices\":[]}",          /* even null */
        "{\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
        "{\"choices\":[]} x", /* trailing garbage */
        "{\"choices\":[],}",  /* trailing comma */
        "{\"choices\":[{\"delta\":{\"content\":\"\\u0000\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\udc00\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\xc3\x28\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"tab\there\"}}]}",
        "{\"usage\":{\"prompt_tokens\":1e3}}", /* exponent */
        "{\"usage\":{\"prompt_tokens\":1234567890123456789}}",
        "{\"ch\\u006fices\":[]}", /* escaped key */
        "{\"a\":01}",
        "[1]",
        "",
        "{\"a\":tru}",
        "{\"a\":\"unterminated",
    };
    council__oai_chunk k;

    char deep[128];
    json_t *j;
    int n = 0;

    for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++)
        if (council__oai_chunk_scan(hard[i], strlen(hard[i]), &k))
            FAIL("the fast path took what it must leave to jansson:\n%s",
                 hard[i]);
    /* Valid JSON nested deeper than the scanner's limit (32). */
    n += snprintf(deep + n, sizeof(deep) - (size_t)n, "{\"a\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    j = json_loads(deep, 0, NULL);
    ASSERT_NOT_NULL(j);
    json_decref(j);
    ASSERT(!council__oai_chunk_scan(deep, strlen(deep), &k));
}

/* The writer's output is byte for byte jansson's. */
static void
writes_as_jansson(const char *s, size_t n)
{
    council__bytes b = {0};
    json_t *j = json_stringn(s, n);
    char *want;

    ASSERT_NOT_NULL(j);
    want = json_dumps(j, JSON_ENCODE_ANY);
    ASSERT_NOT_NULL(want);
    ASSERT_EQ_INT(council__json_put_str(&b, s, n, 1u << 20), COUNCIL_OK);
    ASSERT_STR_EQ(b.p, want);
    free(want);
    json_decref(j);
    council__free(b.p);
}

TEST(writer_escapes_as_jansson)
{
    const char all[] = "quote \" backslash \\ nl \n tab \t cr \r bs \b ff \f "
                       "bell \x07 esc \x1b del \x7f slash / caf\xc3\xa9 "
                       "\xf0\x9f\x98\x80";
    char ctl[32];

    writes_as_jansson("", 0);
    writes_as_jansson("Why is the sky blue?", 20);
    writes_as_jansson(all, sizeof(all) - 1);
    for (int i = 1; i < 32; i++)
        ctl[i - 1] = (char)i;
    writes_as_jansson(ctl, 31);
}

TEST(writer_refuses_bad_utf8_and_appends_nothing)
{
    static const char *const bad[] = {"\xc3\x28", "\xed\xa0\x80", "\xc0\xaf",
                                      "\xf5\x80\x80\x80", "cut \xe4\xb8"};
    council__bytes b = {0};

    ASSERT_EQ_INT(council__bytes_add(&b, "[", 1, 100), COUNCIL_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ_INT(council__json_put_str(&b, bad[i], strlen(bad[i]), 100),
                      COUNCIL_EINVAL);
        ASSERT_STR_EQ(b.p, "[");
    }
    ASSERT_EQ_INT(council__json_put_str(&b, "a\0b", 3, 100), COUNCIL_EINVAL);
    /* Over max: refused, nothing left behind. */
    ASSERT_EQ_INT(council__json_put_str(&b, "0123456789", 10, 8),
                  COUNCIL_EPARSE);
    ASSERT_STR_EQ(b.p, "[");
    council__free(b.p);
}
