/* SPDX-License-Identifier: MIT */
/*
 * council_event_parse: an event from its JSON line, the exact inverse of
 * council_event_json (src/core/event.c renders).  Readers of stored runs
 * (the store, the jsonl reader, replay, the server's resume) use it, so a
 * stored line comes back as the event it was.
 *
 * Method: the renderer writes the common fields (type, run_id, seq, ts,
 * then stage, round, member and the text field when the event has them),
 * then the type's own fields in their order, leaving out any that collide
 * with a common field.  The parser takes each common field into the
 * event's typed slot only when it has the form the renderer gives that
 * slot; everything else, in its order, becomes the event's extra fields.
 * Rendering the result therefore writes the same keys with the same values
 * in the same order: the same text.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/json_scan.h"

static void set_diag(council_diag *diag, int line, int col, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static void
set_diag(council_diag *diag, int line, int col, const char *fmt, ...)
{
    va_list ap;

    if (diag == NULL)
        return;
    memset(diag, 0, sizeof(*diag));
    diag->line = line > 0 ? line : 0;
    diag->col = col > 0 ? col : 0;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
}

/* n decimal digits at s into *v; -1 unless all are digits. */
static int
digits(const char *s, size_t n, int64_t *v)
{
    size_t i;

    *v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, as
 * gmtime counts them (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
month_days(int64_t y, int64_t m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

int
council__parse_ts(const char *s, size_t n, int64_t *out_us)
{
    const char *end = s + n, *p = s;
    int64_t y, mo, d, h, mi, se, frac = 0, days, secs, us;
    size_t yl = 0, fl = 0;
    int neg = 0;

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    while (p + yl < end && p[yl] >= '0' && p[yl] <= '9')
        yl++;
    /* At most 7 year digits keeps every sum below in range. */
    if (yl == 0 || yl > 7 || digits(p, yl, &y) != 0)
        return -1;
    if (neg)
        y = -y;
    p += yl;
    /* "-MM-DDTHH:MM:SS": 15 bytes. */
    if (end - p < 15 || p[0] != '-' || p[3] != '-' || p[6] != 'T' ||
        p[9] != ':' || p[12] != ':' || digits(p + 1, 2, &mo) != 0 ||
        digits(p + 4, 2, &d) != 0 || digits(p + 7, 2, &h) != 0 ||
        digits(p + 10, 2, &mi) != 0 || digits(p + 13, 2, &se) != 0)
        return -1;
    p += 15;
    if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return -1;
    if (p < end && *p == '.') {
        p++;
        while (p + fl < end && p[fl] >= '0' && p[fl] <= '9')
            fl++;
        if (fl == 0 || fl > 9)
            return -1;
        /* Microseconds: the first six digits, padded. */
        for (size_t i = 0; i < 6; i++)
            frac = frac * 10 + (i < fl ? p[i] - '0' : 0);
        p += fl;
    }
    if (end - p != 1 || *p != 'Z')
        return -1;
    days = days_from_civil(y, mo, d);
    secs = days * 86400 + h * 3600 + mi * 60 + se;
    /* Near INT64_MIN only secs * 10^6 + frac fits, not secs * 10^6. */
    if (secs < 0 && frac > 0) {
        secs += 1;
        frac -= 1000000;
    }
    if (__builtin_mul_overflow(secs, (int64_t)1000000, &us) ||
        __builtin_add_overflow(us, frac, &us))
        return -1;
    *out_us = us;
    return 0;
}

/* s as a C string if it is a JSON string without NUL bytes, else NULL. */
static const char *
c_string(json_t *v)
{
    const char *s = json_string_value(v);

    if (s == NULL || strlen(s) != json_string_length(v))
        return NULL;
    return s;
}

/*
 * The common fields in the order the renderer writes them.  In a line that
 * starts as a rendering does (type, run_id, seq, ts), an optional common
 * field is typed only while the fields so far are common ones in this
 * order: a "stage" after an extra field came from the extra fields (the
 * event had no stage of its own) and stays there, so that rendering the
 * parsed event puts it back in its place.  In any other line (keys
 * reordered, e.g. sorted by a tool), every common field in its form is
 * typed.
 */
enum { R_TYPE, R_RUN_ID, R_SEQ, R_TS, R_STAGE, R_ROUND, R_MEMBER, R_TEXT };

static int
common_rank(const char *key, const char *text_key)
{
    static const char *const names[] = {"type",  "run_id", "seq",   "ts",
                                        "stage", "round",  "member"};
    int i;

    for (i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(key, names[i]) == 0)
            return i;
    return strcmp(key, text_key) == 0 ? R_TEXT : -1;
}

static int
leads_with_required(json_t *o)
{
    void *it = json_object_iter(o);
    int i;

    for (i = R_TYPE; i <= R_TS; i++, it = json_object_iter_next(o, it)) {
        const char *key = it != NULL ? json_object_iter_key(it) : NULL;

        if (key == NULL || strlen(key) != json_object_iter_key_len(it) ||
            common_rank(key, "") != i)
            return 0;
    }
    return 1;
}

/* Put v in the typed slot of rank if it has that slot's form: 1, else 0. */
static int
take(council__event_init *in, int rank, json_t *v)
{
    switch (rank) {
    case R_STAGE:
        in->stage = c_string(v);
        return in->stage != NULL;
    case R_MEMBER:
        in->member = c_string(v);
        return in->member != NULL;
    case R_ROUND:
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > INT_MAX)
            return 0;
        in->round = (int)json_integer_value(v);
        return 1;
    case R_TEXT:
        if (!json_is_string(v))
            return 0;
        in->text = json_string_value(v);
        in->text_len = json_string_length(v);
        return 1;
    }
    return 0;
}

council_err
council__event_from_object(json_t *o, council_event **out, council_diag *diag)
{
    council__event_init in;
    const char *type_name, *ts, *key, *text_key;
    json_t *v, *seq, *data = NULL;
    council_event *ev;
    size_t klen;
    int canonical, extra_seen = 0, last_rank = R_TS;

    *out = NULL;
    if (!json_is_object(o)) {
        set_diag(diag, 0, 0, "an event is a JSON object");
        return COUNCIL_EPARSE;
    }
    memset(&in, 0, sizeof(in));
    type_name = json_string_value(json_object_get(o, "type"));
    if (type_name == NULL) {
        set_diag(diag, 0, 0, "no \"type\" string");
        return COUNCIL_EPARSE;
    }
    in.type = council__event_type_from_name(type_name);
    if (in.type == 0) {
        set_diag(diag, 0, 0, "unknown event type \"%.64s\"", type_name);
        return COUNCIL_EPARSE;
    }
    in.run_id = c_string(json_object_get(o, "run_id"));
    if (in.run_id == NULL) {
        set_diag(diag, 0, 0, "no \"run_id\" string");
        return COUNCIL_EPARSE;
    }
    seq = json_object_get(o, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
        set_diag(diag, 0, 0, "no \"seq\" integer >= 0");
        return COUNCIL_EPARSE;
    }
    in.seq = (uint64_t)json_integer_value(seq);
    v = json_object_get(o, "ts");
    ts = json_string_value(v);
    if (ts == NULL ||
        council__parse_ts(ts, json_string_length(v), &in.ts_us) != 0) {
        set_diag(diag, 0, 0,
                 "no \"ts\" time of the form "
                 "2026-11-24T01:02:03.456789Z");
        return COUNCIL_EPARSE;
    }
    data = json_object();
    if (data == NULL)
        goto nomem;
    text_key = council__event_text_field(in.type);
    canonical = leads_with_required(o);
    json_object_keylen_foreach(o, key, klen, v)
    {
        int rank = strlen(key) == klen ? common_rank(key, text_key) : -1;

        if (rank >= 0 && rank < R_STAGE)
            continue; /* type, run_id, seq, ts: taken above */
        if (rank >= 0 && (!canonical || (!extra_seen && rank > last_rank)) &&
            take(&in, rank, v)) {
            last_rank = rank;
            continue;
        }
        extra_seen = 1;
        if (json_object_setn(data, key, klen, v) != 0)
            goto nomem;
    }
    if (json_object_size(data) == 0) {
        json_decref(data);
        data = NULL;
    }
    in.data = data; /* stolen */
    ev = council__event_new(&in);
    if (ev == NULL)
        goto nomem_stolen;
    *out = ev;
    return COUNCIL_OK;
nomem:
    json_decref(data);
nomem_stolen:
    set_diag(diag, 0, 0, "out of memory");
    return COUNCIL_ENOMEM;
}

/* One line: no line break outside strings (JSON strings hold none raw). */
static int
one_line(const char *s, size_t n)
{
    return memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL;
}

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

council_err
council_event_parse(const char *json, size_t len, council_event **out,
                    council_diag *diag)
{
    json_error_t je;
    json_t *o;
    council_err rc;
    unsigned long failures;
    char *copy;

    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    if (out != NULL)
        *out = NULL;
    if (json == NULL || out == NULL) {
        set_diag(diag, 0, 0, "invalid argument");
        return COUNCIL_EINVAL;
    }
    failures = council__json_alloc_failures();
    o = json_loadb(json, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (council__json_alloc_failures() != failures) {
        /* A failed allocation may have cost a byte of a string. */
        json_decref(o);
        set_diag(diag, 0, 0, "out of memory");
        return COUNCIL_ENOMEM;
    }
    if (o == NULL) {
        if (council__json_oom(json, len, &je)) {
            set_diag(diag, 0, 0, "out of memory");
            return COUNCIL_ENOMEM;
        }
        if (council__json_scalar(json, len))
            /* JSON, but a number, a string...: jansson wants an object
             * or an array at the top. */
            set_diag(diag, 0, 0, "an event is a JSON object");
        else
            set_diag(diag, je.line, je.column, "not JSON: %s", je.text);
        return COUNCIL_EPARSE;
    }
    rc = council__event_from_object(o, out, diag);
    json_decref(o);
    if (rc != COUNCIL_OK)
        return rc;
    /* Keep the given text as the event's JSON when it is one line: a
     * reader that hands stored lines on (a resumed stream) then sends them
     * as they were, without rendering them again. */
    while (len > 0 && is_space(json[0])) {
        json++;
        len--;
    }
    while (len > 0 && is_space(json[len - 1]))
        len--;
    if (one_line(json, len)) {
        copy = council__strndup(json, len);
        if (copy == NULL) {
            council_event_unref(*out);
            *out = NULL;
            set_diag(diag, 0, 0, "out of memory");
            return COUNCIL_ENOMEM;
        }
        council__event_set_json(*out, copy);
    }
    return COUNCIL_OK;
}
