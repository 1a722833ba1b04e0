/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the event renderer (council_event_json).  There is no event
 * parser yet, so the input builds an event: a 19-byte header (type, which
 * fields are present, their lengths, seq, round, time), then the stage and
 * member bytes, a JSON text for the extra data object, and the rest as the
 * event text.  Checks: the rendering exists (NULL only on out of memory),
 * is one line of valid JSON, and round-trips the common fields: type,
 * run_id, seq, ts, round, stage and member (when valid UTF-8) and the text
 * (byte for byte when valid UTF-8, else U+FFFD); the extra data fields
 * appear unchanged where they do not collide with a common field.
 */
#include <string.h>

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

    json_decref(out);
    json_decref(extra);
    council_event_unref(ev);
    free(stage);
    free(member);
    return 0;
}
