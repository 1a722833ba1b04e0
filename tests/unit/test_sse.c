/* SPDX-License-Identifier: MIT */
/*
 * The SSE parser against a table of streams.  Method: every stream is fed
 * whole, then cut in two at every byte position, then byte by byte; the
 * events are recorded into one string ("name|data" lines, then the feed
 * result) and every way of cutting must give the expected string exactly.
 */
#include "core/alloc.h"
#include "provider/sse.h"
#include "runner.h"

typedef struct rec {
    char *p;
    size_t len, cap;
    int stop_after; /* stop parsing after this many events; 0 = never */
    int n;
} rec;

static void
rec_add(rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->p = realloc(r->p, cap);
        ASSERT_NOT_NULL(r->p);
        r->cap = cap;
    }
    memcpy(r->p + r->len, s, n);
    r->len += n;
    r->p[r->len] = '\0';
}

static int
on_event(const char *event, const char *data, size_t len, void *ud)
{
    rec *r = ud;

    ASSERT_EQ_INT(data[len], '\0');
    rec_add(r, "[", 1);
    rec_add(r, event, strlen(event));
    rec_add(r, "|", 1);
    rec_add(r, data, len);
    rec_add(r, "]", 1);
    r->n++;
    return r->stop_after > 0 && r->n >= r->stop_after;
}

/* Feeds s in the chunks given by cuts (sorted positions), records the
 * events, the first error and the finish result. */
static char *
run(const char *s, size_t n, size_t max_line, const size_t *cuts, size_t n_cuts,
    int stop_after)
{
    council__sse *p;
    rec r = {0};
    size_t at = 0, i;
    council_err rc = COUNCIL_OK;
    char tail[64];

    r.stop_after = stop_after;
    ASSERT_OK(council__sse_new(max_line, on_event, &r, &p));
    rec_add(&r, "", 0);
    for (i = 0; i <= n_cuts && rc == COUNCIL_OK; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        rc = council__sse_feed(p, s + at, end - at);
        at = end;
    }
    snprintf(tail, sizeof(tail), " rc=%d pending=%d", (int)rc,
             council__sse_finish(p));
    if (rc != COUNCIL_OK)
        /* A failed parser stays failed. */
        ASSERT_EQ_INT(council__sse_feed(p, "\n\n", 2), rc);
    rec_add(&r, tail, strlen(tail));
    council__sse_free(p);
    return r.p;
}

/* Whole, every two-chunk split, and byte by byte must all equal want. */
static void
check_all_splits(const char *name, const char *s, size_t n, size_t max_line,
                 const char *want)
{
    size_t k, *cuts;
    char *got;

    got = run(s, n, max_line, NULL, 0, 0);
    if (strcmp(got, want) != 0)
        FAIL("%s whole: \"%s\" != \"%s\"", name, got, want);
    free(got);
    for (k = 0; k <= n; k++) {
        got = run(s, n, max_line, &k, 1, 0);
        if (strcmp(got, want) != 0)
            FAIL("%s split at %zu: \"%s\" != \"%s\"", name, k, got, want);
        free(got);
    }
    cuts = malloc((n + 1) * sizeof(*cuts));
    for (k = 0; k < n; k++)
        cuts[k] = k;
    got = run(s, n, max_line, cuts, n, 0);
    if (strcmp(got, want) != 0)
        FAIL("%s bytewise: \"%s\" != \"%s\"", name, got, want);
    free(got);
    free(cuts);
}

static const struct {
    const char *name;
    const char *in;
    const char *want;
    size_t max_line; /* 0: 4096 */
} table[] = {
    {"lf", "data: a\n\ndata: b\n\n", "[|a][|b] rc=0 pending=0"},
    {"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", "[|a][|b] rc=0 pending=0"},
    {"cr", "data: a\r\rdata: b\r\r", "[|a][|b] rc=0 pending=0"},
    {"mixed", "data: a\r\n\ndata: b\r\rdata: c\n\r\n",
     "[|a][|b][|c] rc=0 pending=0"},
    {"lf_cr_is_two", "data: a\n\r\n\r", "[|a] rc=0 pending=0"},
    {"bom",
     "\xEF\xBB\xBF"
     "data: x\n\n",
     "[|x] rc=0 pending=0"},
    {"bom_only_first",
     "\xEF\xBB\xBF\xEF\xBB\xBF"
     "data: x\n\n",
     " rc=0 pending=0"},
    {"partial_bom_is_text",
     "\xEF\xBB"
     "data: x\n\ndata: y\n\n",
     "[|y] rc=0 pending=0"},
    {"comments", ": hello\ndata: a\n: mid\ndata: b\n\n",
     "[|a\nb] rc=0 pending=0"},
    {"multiline", "data: one\ndata:two\ndata:  three\n\n",
     "[|one\ntwo\n three] rc=0 pending=0"},
    {"event_names", "event: add\ndata: 1\n\ndata: 2\n\nevent:x\n\ndata: 3\n\n",
     "[add|1][|2][|3] rc=0 pending=0"},
    {"id_retry", "id: 7\nretry: 1000\ndata: a\nid\n\n", "[|a] rc=0 pending=0"},
    {"no_trailing_blank", "data: a\n\ndata: b\n", "[|a] rc=0 pending=1"},
    {"no_trailing_newline", "data: a\n\ndata: b", "[|a] rc=0 pending=1"},
    {"empty_data", "data:\n\ndata\n\ndata: \n\n", "[|][|][|] rc=0 pending=0"},
    {"blank_lines_only", "\n\n\r\n\r\r", " rc=0 pending=0"},
    {"keepalive", ": keep-alive\n\n: keep-alive\n\ndata: z\n\n",
     "[|z] rc=0 pending=0"},
    {"unknown_fields", "foo: bar\ndata: a\nbaz\n\n", "[|a] rc=0 pending=0"},
    {"colon_in_value", "data: a: b:c\n\n", "[|a: b:c] rc=0 pending=0"},
    {"field_no_space", "data:a\n\n", "[|a] rc=0 pending=0"},
    {"openai",
     "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
     "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
     "\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
     "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
     "\"completion_tokens\":1}}\n\n"
     "data: [DONE]\n\n",
     "[|{\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
     "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
     "\"content\":\"Hi\"},\"finish_reason\":null}]}]"
     "[|{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
     "\"completion_tokens\":1}}]"
     "[|[DONE]] rc=0 pending=0"},
    {"openrouter",
     ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
     "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
     ": OPENROUTER PROCESSING\n\n"
     "data: [DONE]\n\n",
     "[|{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}][|[DONE]] rc=0 "
     "pending=0"},
    {"anthropic",
     "event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
     "event: ping\r\ndata: {}\r\n\r\n",
     "[message_start|{\"type\":\"message_start\"}][ping|{}] rc=0 "
     "pending=0"},
    {"long_line_capped", "data: 0123456789012345678901234567890123\n\n",
     " rc=3 pending=1", 30},
    {"long_line_capped_late", "data: a\n\ndata: 01234567890123456789012345",
     "[|a] rc=3 pending=1", 30},
    {"long_event_capped",
     "data: 0123456789\ndata: 0123456789\n"
     "data: 0123456789\n\n",
     " rc=3 pending=1", 30},
    {"line_at_cap_ok", "data: 012345678901234567890123\n\n",
     "[|012345678901234567890123] rc=0 pending=0", 30},
};

TEST(table_all_splits)
{
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        check_all_splits(table[i].name, table[i].in, strlen(table[i].in),
                         table[i].max_line ? table[i].max_line : 4096,
                         table[i].want);
    }
}

TEST(nul_bytes_in_data)
{
    static const char in[] = "data: a\0b\n\n";
    char *got = run(in, sizeof(in) - 1, 100, NULL, 0, 0);

    ASSERT_EQ_INT(memcmp(got, "[|a\0b]", 6), 0);
    free(got);
}

TEST(callback_stops)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    char *got = run(in, sizeof(in) - 1, 100, NULL, 0, 1);

    /* Stopped after the first event: ECANCELED (7). */
    ASSERT_STR_EQ(got, "[|1] rc=7 pending=1");
    free(got);
}

TEST_T(ten_megabyte_line_capped, 60)
{
    size_t n = 10u << 20, k, *cuts;
    char *s = malloc(n);
    char *got;
    const char *want = " rc=3 pending=1";

    memset(s, 'a', n);
    memcpy(s, "data: ", 6);
    got = run(s, n, 1u << 20, NULL, 0, 0);
    ASSERT_STR_EQ(got, want);
    free(got);
    /* 4 KiB chunks, then byte by byte: the error comes once the cap is
     * passed and the buffer never grows beyond it. */
    cuts = malloc((n / 4096 + 1) * sizeof(*cuts));
    for (k = 0; k < n / 4096; k++)
        cuts[k] = k * 4096;
    got = run(s, n, 1u << 20, cuts, n / 4096, 0);
    ASSERT_STR_EQ(got, want);
    free(got);
    free(cuts);
    cuts = malloc(n * sizeof(*cuts));
    for (k = 0; k < n; k++)
        cuts[k] = k;
    got = run(s, n, 1u << 20, cuts, n, 0);
    ASSERT_STR_EQ(got, want);
    free(got);
    free(cuts);
    free(s);
}

TEST(bad_arguments)
{
    council__sse *p = (council__sse *)1;

    ASSERT_EQ_INT(council__sse_new(0, on_event, NULL, &p), COUNCIL_EINVAL);
    ASSERT_NULL(p);
    ASSERT_EQ_INT(council__sse_new(10, NULL, NULL, &p), COUNCIL_EINVAL);
    council__sse_free(NULL);
}
