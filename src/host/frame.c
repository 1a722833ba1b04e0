/* SPDX-License-Identifier: MIT */
/*
 * Frame encoding and decoding (frame.h).  Decoding takes untrusted bytes
 * from a child that may be broken: every length is checked against what
 * is there before it is used, and nothing is allocated from a length the
 * peer claims.
 *
 * An event payload: u64 seq, i64 time (us), u8 type, u32 round, then four
 * fields (stage, member, text, extra JSON), each a u32 length
 * (0xffffffff = absent) followed by its bytes.  The extra fields are the
 * event's own (council__event_data) as compact JSON, so the parent's
 * event renders to the same JSON text as the child's.
 */
#include <string.h>

#include "core/alloc.h"
#include "host/frame.h"

#define ABSENT 0xffffffffu
#define EV_HEAD (8 + 8 + 1 + 4 + 4 * 4)

uint32_t
council__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

void
council__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint64_t
get_u64(const unsigned char *p)
{
    return (uint64_t)council__get_u32(p) << 32 | council__get_u32(p + 4);
}

static void
put_u64(unsigned char *p, uint64_t v)
{
    council__put_u32(p, (uint32_t)(v >> 32));
    council__put_u32(p + 4, (uint32_t)v);
}

council_err
council__buf_reserve(council__buf *b, size_t more)
{
    size_t cap;
    unsigned char *p;

    if (b->cap - b->len >= more)
        return COUNCIL_OK;
    if (more > SIZE_MAX / 2 - b->len)
        return COUNCIL_ENOMEM;
    cap = b->cap != 0 ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    p = council__realloc(b->p, cap);
    if (p == NULL)
        return COUNCIL_ENOMEM;
    b->p = p;
    b->cap = cap;
    return COUNCIL_OK;
}

void
council__buf_free(council__buf *b)
{
    council__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void
council__buf_consume(council__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

council_err
council__frame_put(council__buf *b, int type, const void *payload, size_t len)
{
    council_err rc;

    if (len >= COUNCIL__FRAME_MAX)
        return COUNCIL_EINVAL;
    rc = council__buf_reserve(b, 5 + len);
    if (rc != COUNCIL_OK)
        return rc;
    council__put_u32(b->p + b->len, (uint32_t)(len + 1));
    b->p[b->len + 4] = (unsigned char)type;
    if (len > 0)
        memcpy(b->p + b->len + 5, payload, len);
    b->len += 5 + len;
    return COUNCIL_OK;
}

static unsigned char *
put_field(unsigned char *p, const char *s, size_t n)
{
    if (s == NULL) {
        council__put_u32(p, ABSENT);
        return p + 4;
    }
    council__put_u32(p, (uint32_t)n);
    return p + 4;
}

council_err
council__frame_put_event(council__buf *b, const council_event *ev)
{
    const char *stage = council_event_stage(ev);
    const char *member = council_event_member(ev);
    const char *text = council_event_text(ev);
    size_t sl = stage != NULL ? strlen(stage) : 0;
    size_t ml = member != NULL ? strlen(member) : 0;
    size_t tl = text != NULL ? council_event_text_len(ev) : 0;
    json_t *data = council__event_data(ev);
    char *dj = NULL;
    size_t dl = 0, len;
    unsigned char *p;
    council_err rc;

    if (data != NULL && json_object_size(data) > 0) {
        dj = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dj == NULL)
            return COUNCIL_ENOMEM;
        dl = strlen(dj);
    }
    len = EV_HEAD + sl + ml + tl + dl;
    if (len + 1 >= COUNCIL__FRAME_MAX) {
        rc = COUNCIL_EINVAL;
        goto out;
    }
    rc = council__buf_reserve(b, 5 + len);
    if (rc != COUNCIL_OK)
        goto out;
    p = b->p + b->len;
    council__put_u32(p, (uint32_t)(len + 1));
    p[4] = COUNCIL__FR_EVENT;
    p += 5;
    put_u64(p, council_event_seq(ev));
    put_u64(p + 8, (uint64_t)council_event_time_us(ev));
    p[16] = (unsigned char)council_event_type_of(ev);
    council__put_u32(p + 17, (uint32_t)council_event_round(ev));
    p += 21;
    p = put_field(p, stage, sl);
    p = put_field(p, member, ml);
    p = put_field(p, text, tl);
    p = put_field(p, dj, dl);
    if (sl > 0)
        memcpy(p, stage, sl);
    p += sl;
    if (ml > 0)
        memcpy(p, member, ml);
    p += ml;
    if (tl > 0)
        memcpy(p, text, tl);
    p += tl;
    if (dl > 0)
        memcpy(p, dj, dl);
    b->len += 5 + len;
out:
    council__free(dj);
    return rc;
}

int
council__frame_next(const unsigned char *b, size_t len, int *type,
                    const unsigned char **payload, size_t *plen, size_t *used,
                    char *why, size_t why_size)
{
    uint32_t n;

    if (len < 4)
        return 0;
    n = council__get_u32(b);
    if (n == 0 || n > COUNCIL__FRAME_MAX) {
        snprintf(why, why_size, "a frame of %lu bytes (the limit is %u)",
                 (unsigned long)n, COUNCIL__FRAME_MAX);
        return -1;
    }
    if (len - 4 < n)
        return 0;
    *type = b[4];
    *payload = b + 5;
    *plen = n - 1;
    *used = 4 + (size_t)n;
    return 1;
}

/* One field: its length at *hp, its bytes at *dp (advanced). */
static int
get_field(const unsigned char **hp, const unsigned char **dp,
          const unsigned char *end, const char **s, size_t *n)
{
    uint32_t l = council__get_u32(*hp);

    *hp += 4;
    if (l == ABSENT) {
        *s = NULL;
        *n = 0;
        return 0;
    }
    if ((size_t)(end - *dp) < l)
        return -1;
    *s = (const char *)*dp;
    *n = l;
    *dp += l;
    return 0;
}

int
council__frame_event_decode(const unsigned char *p, size_t len,
                            council__frame_event *out, char *why,
                            size_t why_size)
{
    const unsigned char *h, *d, *end = p + len;
    uint32_t round;

    memset(out, 0, sizeof(*out));
    if (len < EV_HEAD) {
        snprintf(why, why_size, "an event frame of %zu bytes", len);
        return -1;
    }
    out->seq = get_u64(p);
    out->ts_us = (int64_t)get_u64(p + 8);
    out->type = (council_event_type)p[16];
    round = council__get_u32(p + 17);
    if (out->type < COUNCIL_EV_RUN_STARTED ||
        out->type > COUNCIL_EV_RUN_FAILED) {
        snprintf(why, why_size, "an event of unknown type %u", p[16]);
        return -1;
    }
    if (round > 1000000) {
        snprintf(why, why_size, "an event with round %lu",
                 (unsigned long)round);
        return -1;
    }
    out->round = (int)round;
    h = p + 21;
    d = p + EV_HEAD;
    if (get_field(&h, &d, end, &out->stage, &out->stage_len) != 0 ||
        get_field(&h, &d, end, &out->member, &out->member_len) != 0 ||
        get_field(&h, &d, end, &out->text, &out->text_len) != 0 ||
        get_field(&h, &d, end, &out->data, &out->data_len) != 0 || d != end) {
        snprintf(why, why_size, "an event frame whose lengths do not add up");
        return -1;
    }
    if ((out->stage != NULL &&
         memchr(out->stage, '\0', out->stage_len) != NULL) ||
        (out->member != NULL &&
         memchr(out->member, '\0', out->member_len) != NULL)) {
        snprintf(why, why_size, "an event whose stage or member holds NUL");
        return -1;
    }
    return 0;
}
