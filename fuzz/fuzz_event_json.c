/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the event renderer (council_event_json) and its inverse, the
 * parser (council_event_parse).  The input builds an event: a 19-byte
 * header (type, which fields are present, their lengths, seq, round, time),
 * then the stage and member bytes, a JSON text for the extra data object,
 * and the rest as the event text.  Checks: the rendering exists (NULL only
 * on out of memory), is one line of valid JSON, and carries the common
 * fields: type, run_id, seq, ts, round, stage and member (when valid UTF-8)
 * and the text (byte for byte when valid UTF-8, else U+FFFD); the extra
 * data fields appear unchanged where they do not collide with a common
 * field.  Then the round trip: parsing the rendering succeeds, gives the
 * same accessors, and renders (afresh, not the kept text) to the same
 * bytes.  Last, the whole input is also given to the parser as a line:
 * when it parses, its rendering parses again to the same event and the
 * same rendering (parse is a fixed point after one step).
 */
#include <string.h>

#include "core/alloc.h"
#include "core/event.h"
#include "fuzz.h"

#define HEADER 19

static const char *const run_ids[] = {"0192f3a4-5b6c-7d8e-9f00-112233445566",
                                      "r", "run-fuzz_1.x"};

/* A NUL-terminated copy of n input bytes. */
static char *
cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    FUZZ_CHECK(s != NULL);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The field's string, or NULL if absent or not a string. */
static json_t *
field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? v : NULL;
}

static int
str_eq(json_t *v, const char *s, size_t n)
{
    return v != NULL && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

static int
is_common(const char *key, const council_event *ev, const char *text_key)
{
    return strcmp(key, "type") == 0 || strcmp(key, "run_id") == 0 ||
           strcmp(key, "seq") == 0 || strcmp(key, "ts") == 0 ||
           (strcmp(key, "stage") == 0 && council_event_stage(ev) != NULL) ||
           (strcmp(key, "member") == 0 && council_event_member(ev) != NULL) ||
           (strcmp(key, "round") == 0 && council_event_round(ev) > 0) ||
           (strcmp(key, text_key) == 0 && council_event_text(ev) != NULL);
}

static int
same_cstr(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* a and b say the same through every accessor. */
static void
check_same_event(const council_event *a, const council_event *b)
{
    FUZZ_CHECK(council_event_type_of(a) == council_event_type_of(b));
    FUZZ_CHECK(strcmp(council_event_run_id(a), council_event_run_id(b)) == 0);
    FUZZ_CHECK(council_event_seq(a) == council_event_seq(b));
    FUZZ_CHECK(council_event_time_us(a) == council_event_time_us(b));
    FUZZ_CHECK(same_cstr(council_event_stage(a), council_event_stage(b)));
    FUZZ_CHECK(same_cstr(council_event_member(a), council_event_member(b)));
    FUZZ_CHECK(council_event_round(a) == council_event_round(b));
    FUZZ_CHECK(council_event_text_len(a) == council_event_text_len(b));
    FUZZ_CHECK((council_event_text(a) == NULL) ==
               (council_event_text(b) == NULL));
    if (council_event_text(a) != NULL)
        FUZZ_CHECK(memcmp(council_event_text(a), council_event_text(b),
                          council_event_text_len(a)) == 0);
}

/* Parse js; the result renders afresh to exactly js.  Returns it. */
static council_event *
parse_renders_back(const char *js)
{
    council_event *back = NULL;
    council_diag diag;
    char *fresh;

    if (council_event_parse(js, strlen(js), &back, &diag) != COUNCIL_OK) {
        fprintf(stderr, "parse of %s: %s\n", js, diag.msg);
        FUZZ_CHECK(!"a rendering parses");
    }
    FUZZ_CHECK(strcmp(council_event_json(back), js) == 0); /* kept */
    fresh = council__event_render(back);
    FUZZ_CHECK(fresh != NULL);
    if (strcmp(fresh, js) != 0) {
        fprintf(stderr, "rendered: %s\nreparsed: %s\n", js, fresh);
        FUZZ_CHECK(!"parse(json(e)) renders json(e)");
    }
    council__free(fresh);
    return back;
}

/* The raw input as a line: when it parses, one more round changes
 * nothing. */
static void
parse_raw(const uint8_t *data, size_t size)
{
    council_event *ev = NULL, *again;
    council_diag diag;
    council_err rc;
    char *y;

    memset(&diag, 0x5a, sizeof(diag));
    rc = council_event_parse((const char *)data, size, &ev, &diag);
    FUZZ_CHECK(memchr(diag.msg, '\0', sizeof(diag.msg)) != NULL);
    if (rc != COUNCIL_OK) {
        FUZZ_CHECK(rc == COUNCIL_EPARSE && ev == NULL && diag.msg[0] != 0);
        return;
    }
    FUZZ_CHECK(strchr(council_event_json(ev), '\n') == NULL);
    y = council__event_render(ev);
    FUZZ_CHECK(y != NULL);
    again = parse_renders_back(y);
    check_same_event(ev, again);
    council_event_unref(again);
    council__free(y);
    council_event_unref(ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    council__event_init in;
    council_event *ev;
    json_t *extra = NULL, *out = NULL, *v;
    char *stage = NULL, *member = NULL;
    const char *js, *text_key, *key;
    unsigned flags;
    size_t stage_len, member_len, data_len, pos, i;
    uint64_t ts;

    parse_raw(data, size);
    if (size < HEADER)
        return 0;
    memset(&in, 0, sizeof(in));
    in.type = (council_event_type)(data[0] % 16); /* 0 and 15: invalid */
    flags = data[1];
    stage_len = data[2] % 32;
    member_len = data[3] % 64;
    data_len = (size_t)data[4] | (size_t)data[5] << 8;
    in.seq = (uint64_t)data[6] | (uint64_t)data[7] << 8 |
             (uint64_t)data[8] << 16 | (uint64_t)data[9] << 24;
    in.round = (flags & 0x10) ? data[10] : 0;
    ts = 0;
    for (i = 0; i < 8; i++)
        ts |= (uint64_t)data[11 + i] << (8 * i);
    /* Mostly plausible times; sometimes any 64-bit value. */
    in.ts_us =
        (flags & 0x20) ? (int64_t)ts : (int64_t)(ts % 4102444800000000ull);
    in.run_id = run_ids[(flags >> 6) % 3];
    pos = HEADER;

    if (stage_len > size - pos)
        stage_len = size - pos;
    if (flags & 0x01)
        stage = cstr(data + pos, stage_len);
    pos += stage_len;
    if (member_len > size - pos)
        member_len = size - pos;
    if (flags & 0x02)
        member = cstr(data + pos, member_len);
    pos += member_len;
    if (data_len > size - pos)
        data_len = size - pos;
    if (flags & 0x08) {
        extra = json_loadb((const char *)data + pos, data_len, JSON_ALLOW_NUL,
                           NULL);
        if (!json_is_object(extra)) {
            json_decref(extra);
            extra = NULL;
        }
    }
    pos += data_len;
    in.stage = stage;
    in.member = member;
    if (flags & 0x04) {
        in.text = (const char *)data + pos;
        in.text_len = size - pos;
    }
    in.data = json_incref(extra); /* stolen; we keep our own reference */

    ev = council__event_new(&in);
    FUZZ_CHECK(ev != NULL);
    js = council_event_json(ev);
    FUZZ_CHECK(js != NULL);
    FUZZ_CHECK(council_event_json(ev) == js); /* rendered once */
    FUZZ_CHECK(strchr(js, '\n') == NULL);     /* one line */
    out = json_loads(js, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(out));

    v = field(out, "type");
    FUZZ_CHECK(v != NULL && strcmp(json_string_value(v),
                                   council_event_type_name(in.type)) == 0);
    FUZZ_CHECK(str_eq(field(out, "run_id"), in.run_id, strlen(in.run_id)));
    v = json_object_get(out, "seq");
    FUZZ_CHECK(json_is_integer(v) && (uint64_t)json_integer_value(v) == in.seq);
    v = field(out, "ts");
    FUZZ_CHECK(v != NULL && json_string_length(v) >= 20);
    if (in.round > 0) {
        v = json_object_get(out, "round");
        FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) == in.round);
    }
    if (stage != NULL) {
        v = field(out, "stage");
        FUZZ_CHECK(v != NULL);
        if (fuzz_utf8_valid(stage, strlen(stage)))
            FUZZ_CHECK(str_eq(v, stage, strlen(stage)));
    }
    if (member != NULL) {
        v = field(out, "member");
        FUZZ_CHECK(v != NULL);
        if (fuzz_utf8_valid(member, strlen(member)))
            FUZZ_CHECK(str_eq(v, member, strlen(member)));
    }
    text_key = in.type == COUNCIL_EV_MEMBER_DELTA ||
                       in.type == COUNCIL_EV_SYNTHESIS_DELTA
                   ? "delta"
                   : "text";
    if (in.text != NULL) {
        v = field(out, text_key);
        if (fuzz_utf8_valid(in.text, in.text_len))
            FUZZ_CHECK(str_eq(v, in.text, in.text_len));
        else
            FUZZ_CHECK(str_eq(v, "\xef\xbf\xbd", 3));
    }
    if (extra != NULL) {
        size_t klen;

        json_object_keylen_foreach(extra, key, klen, v)
        {
            if (strlen(key) == klen && is_common(key, ev, text_key))
                continue;
            FUZZ_CHECK(json_equal(v, json_object_getn(out, key, klen)));
        }
    }

    if (in.type >= COUNCIL_EV_RUN_STARTED && in.type <= COUNCIL_EV_RUN_FAILED) {
        /* The parsed event says what the rendering says: the original's
         * fields where they are UTF-8; a field the original lacks may come
         * from a colliding extra field.  (Types 0 and 15 render as
         * "unknown", which is no event to parse.) */
        council_event *back = parse_renders_back(js);

        FUZZ_CHECK(council_event_type_of(back) == in.type);
        FUZZ_CHECK(strcmp(council_event_run_id(back), in.run_id) == 0);
        FUZZ_CHECK(council_event_seq(back) == in.seq);
        FUZZ_CHECK(council_event_time_us(back) == in.ts_us);
        if (in.round > 0)
            FUZZ_CHECK(council_event_round(back) == in.round);
        if (stage != NULL && fuzz_utf8_valid(stage, strlen(stage)))
            FUZZ_CHECK(same_cstr(council_event_stage(back), stage));
        if (member != NULL && fuzz_utf8_valid(member, strlen(member)))
            FUZZ_CHECK(same_cstr(council_event_member(back), member));
        if (in.text != NULL && fuzz_utf8_valid(in.text, in.text_len))
            FUZZ_CHECK(council_event_text_len(back) == in.text_len &&
                       memcmp(council_event_text(back), in.text, in.text_len) ==
                           0);
        council_event_unref(back);
    }

    json_decref(out);
    json_decref(extra);
    council_event_unref(ev);
    free(stage);
    free(member);
    return 0;
}
