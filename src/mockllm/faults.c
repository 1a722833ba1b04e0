/* SPDX-License-Identifier: MIT */
/*
 * The mock LLM's fault spec: parsing and matching.  A spec is a list of
 * rules separated by ';', each "SELECTORS:FAULT[,param=value...]" (the
 * grammar is in docs/mock-llm.md).  A request gets the fault of the first
 * rule whose selectors all match it; "rate=P" draws from a generator seeded
 * by (seed, request number, rule number), so a run with the same seed and
 * the same request order meets the same faults.  Parse errors name the
 * problem and the 1-based character where it is.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "mockllm/mockllm.h"

typedef enum sel_kind {
    SEL_ALWAYS,
    SEL_MODEL,
    SEL_RATE,
    SEL_NTH,
    SEL_EVERY
} sel_kind;

typedef struct selector {
    sel_kind kind;
    char *glob;  /* SEL_MODEL */
    double rate; /* SEL_RATE, 0..1 */
    uint64_t n;  /* SEL_NTH, SEL_EVERY */
} selector;

typedef struct rule {
    selector *sel;
    size_t n_sel;
    council__mock_fault fault;
} rule;

struct council__mock_faults {
    rule *rules;
    size_t n_rules;
};

/* A slice of the spec; off is its offset in the whole spec (for diags). */
typedef struct span {
    const char *p;
    size_t len;
    size_t off;
} span;

static council_err fail(council_diag *diag, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static council_err
fail(council_diag *diag, size_t off, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    if (diag == NULL)
        return COUNCIL_EINVAL;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    memset(diag, 0, sizeof(*diag));
    snprintf(diag->file, sizeof(diag->file), "faults");
    diag->line = 1;
    diag->col = (int)off + 1;
    snprintf(diag->msg, sizeof(diag->msg), "fault spec: %s at character %zu",
             what, off + 1);
    return COUNCIL_EINVAL;
}

static span
trim(span s)
{
    while (s.len > 0 && isspace((unsigned char)s.p[0])) {
        s.p++;
        s.len--;
        s.off++;
    }
    while (s.len > 0 && isspace((unsigned char)s.p[s.len - 1]))
        s.len--;
    return s;
}

static int
span_is(span s, const char *word)
{
    return s.len == strlen(word) && memcmp(s.p, word, s.len) == 0;
}

/* Split "name=value" (value.p = NULL when there is no '='). */
static void
split_eq(span item, span *name, span *value)
{
    const char *eq = memchr(item.p, '=', item.len);

    *name = item;
    value->p = NULL;
    value->len = 0;
    value->off = item.off + item.len;
    if (eq == NULL)
        return;
    name->len = (size_t)(eq - item.p);
    *name = trim(*name);
    value->p = eq + 1;
    value->len = (size_t)(item.p + item.len - (eq + 1));
    value->off = item.off + (size_t)(eq + 1 - item.p);
    *value = trim(*value);
}

/* A decimal unsigned integer, the whole span. */
static int
parse_u64(span v, uint64_t *out)
{
    char tmp[32];
    char *end;

    if (v.p == NULL || v.len == 0 || v.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    if (!isdigit((unsigned char)tmp[0]))
        return -1;
    errno = 0;
    *out = strtoull(tmp, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    return 0;
}

static int
parse_rate(span v, double *out)
{
    char tmp[32];
    char *end;

    if (v.p == NULL || v.len == 0 || v.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    if (!isdigit((unsigned char)tmp[0]) && tmp[0] != '.')
        return -1;
    *out = strtod(tmp, &end);
    if (*end != '\0' || !(*out >= 0.0 && *out <= 1.0))
        return -1;
    return 0;
}

/* A cost in USD: a plain decimal number (digits, one optional '.'),
 * finite, >= 0. */
static int
parse_cost(span v, double *out)
{
    char tmp[32];
    char *end;
    size_t i, dots = 0;

    if (v.p == NULL || v.len == 0 || v.len >= sizeof(tmp))
        return -1;
    for (i = 0; i < v.len; i++) {
        if (v.p[i] == '.')
            dots++;
        else if (!isdigit((unsigned char)v.p[i]))
            return -1;
    }
    if (dots > 1 || v.len == dots)
        return -1;
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

int
council__mock_parse_duration(const char *s, size_t len, uint64_t *ms)
{
    uint64_t v = 0, mult = 1;
    size_t i = 0;

    if (len == 0 || !isdigit((unsigned char)s[0]))
        return -1;
    while (i < len && isdigit((unsigned char)s[i])) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (i == len || (len - i == 2 && memcmp(s + i, "ms", 2) == 0))
        mult = 1;
    else if (len - i == 1 && s[i] == 's')
        mult = 1000;
    else if (len - i == 1 && s[i] == 'm')
        mult = 60000;
    else if (len - i == 1 && s[i] == 'h')
        mult = 3600000;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *ms = v * mult;
    return 0;
}

static council_err
parse_selector(span item, selector *sel, council_diag *diag)
{
    span name, value;

    split_eq(item, &name, &value);
    memset(sel, 0, sizeof(*sel));
    if (span_is(name, "always") && value.p == NULL) {
        sel->kind = SEL_ALWAYS;
    } else if (span_is(name, "model")) {
        if (value.p == NULL || value.len == 0)
            return fail(diag, value.off, "model= needs a glob pattern");
        sel->kind = SEL_MODEL;
        sel->glob = council__strndup(value.p, value.len);
        if (sel->glob == NULL)
            return COUNCIL_ENOMEM;
    } else if (span_is(name, "rate")) {
        sel->kind = SEL_RATE;
        if (parse_rate(value, &sel->rate) != 0)
            return fail(diag, value.off,
                        "rate= needs a number between 0 and 1");
    } else if (span_is(name, "nth") || span_is(name, "every")) {
        sel->kind = span_is(name, "nth") ? SEL_NTH : SEL_EVERY;
        if (parse_u64(value, &sel->n) != 0 || sel->n == 0)
            return fail(diag, value.off, "%.*s= needs a whole number >= 1",
                        (int)name.len, name.p);
    } else {
        return fail(diag, item.off,
                    "unknown selector '%.*s' (expected always, model=GLOB, "
                    "rate=P, nth=N or every=N)",
                    (int)(name.len > 40 ? 40 : name.len), name.p);
    }
    return COUNCIL_OK;
}

/* The fault itself: "http=503", "stall=2s", "disconnect=3", ... */
static council_err
parse_fault(span item, council__mock_fault *f, council_diag *diag)
{
    span name, value;
    uint64_t v;

    split_eq(item, &name, &value);
    f->after = -1;
    if (span_is(name, "http")) {
        f->kind = COUNCIL__FAULT_HTTP;
        if (parse_u64(value, &v) != 0 || v < 400 || v > 599)
            return fail(diag, value.off,
                        "http= needs a status code from 400 to 599");
        f->status = (int)v;
        if (v == 429)
            f->retry_after = 1;
        return COUNCIL_OK;
    }
    if (span_is(name, "stall")) {
        f->kind = COUNCIL__FAULT_STALL;
        if (value.p == NULL ||
            council__mock_parse_duration(value.p, value.len, &f->stall_ms) != 0)
            return fail(diag, value.off,
                        "stall= needs a duration (250ms, 2s, 5m, or ms)");
        return COUNCIL_OK;
    }
    if (span_is(name, "think")) {
        f->kind = COUNCIL__FAULT_THINK;
        f->beat_ms = 1000;
        if (value.p == NULL ||
            council__mock_parse_duration(value.p, value.len, &f->think_ms) != 0)
            return fail(diag, value.off,
                        "think= needs a duration (250ms, 2s, 5m, or ms)");
        return COUNCIL_OK;
    }
    if (span_is(name, "cost")) {
        f->kind = COUNCIL__FAULT_COST;
        if (parse_cost(value, &f->cost) != 0)
            return fail(diag, value.off,
                        "cost= needs a number of USD, 0 or more (e.g. "
                        "0.0025)");
        return COUNCIL_OK;
    }
    if (span_is(name, "malformed"))
        f->kind = COUNCIL__FAULT_MALFORMED;
    else if (span_is(name, "disconnect"))
        f->kind = COUNCIL__FAULT_DISCONNECT;
    else if (span_is(name, "error_in_stream"))
        f->kind = COUNCIL__FAULT_ERROR_IN_STREAM;
    else if (span_is(name, "no_done"))
        f->kind = COUNCIL__FAULT_NO_DONE;
    else if (span_is(name, "no_usage"))
        f->kind = COUNCIL__FAULT_NO_USAGE;
    else
        return fail(diag, item.off,
                    "unknown fault '%.*s' (expected http=CODE, stall=DUR, "
                    "malformed, disconnect, error_in_stream, no_done, "
                    "no_usage, cost=USD or think=DUR)",
                    (int)(name.len > 40 ? 40 : name.len), name.p);
    /* "disconnect=3" is short for "disconnect,after=3". */
    if (value.p != NULL) {
        if (f->kind == COUNCIL__FAULT_NO_DONE ||
            f->kind == COUNCIL__FAULT_NO_USAGE)
            return fail(diag, value.off, "%.*s takes no value", (int)name.len,
                        name.p);
        if (parse_u64(value, &v) != 0 || v > INT64_MAX)
            return fail(diag, value.off,
                        "%.*s= needs a chunk count (a whole number)",
                        (int)name.len, name.p);
        f->after = (int64_t)v;
    }
    return COUNCIL_OK;
}

static council_err
parse_param(span item, council__mock_fault *f, council_diag *diag)
{
    span name, value;
    uint64_t v;

    split_eq(item, &name, &value);
    if (value.p == NULL)
        return fail(diag, item.off, "expected param=value, got '%.*s'",
                    (int)(item.len > 40 ? 40 : item.len), item.p);
    if (span_is(name, "after")) {
        if (f->kind == COUNCIL__FAULT_HTTP ||
            f->kind == COUNCIL__FAULT_NO_DONE ||
            f->kind == COUNCIL__FAULT_NO_USAGE ||
            f->kind == COUNCIL__FAULT_COST || f->kind == COUNCIL__FAULT_THINK)
            return fail(diag, name.off,
                        "after= applies to stall, malformed, disconnect "
                        "and error_in_stream only");
        if (parse_u64(value, &v) != 0 || v > INT64_MAX)
            return fail(diag, value.off,
                        "after= needs a chunk count (a whole number)");
        f->after = (int64_t)v;
    } else if (span_is(name, "beat")) {
        if (f->kind != COUNCIL__FAULT_THINK)
            return fail(diag, name.off, "beat= applies to think only");
        if (council__mock_parse_duration(value.p, value.len, &f->beat_ms) != 0)
            return fail(diag, value.off,
                        "beat= needs a duration (250ms, 2s, or ms; 0 = "
                        "silent)");
    } else if (span_is(name, "as")) {
        if (f->kind != COUNCIL__FAULT_THINK)
            return fail(diag, name.off, "as= applies to think only");
        if (span_is(value, "reasoning_content"))
            f->think_as = COUNCIL__THINK_REASONING_CONTENT;
        else if (span_is(value, "reasoning"))
            f->think_as = COUNCIL__THINK_REASONING;
        else if (span_is(value, "comment"))
            f->think_as = COUNCIL__THINK_COMMENT;
        else
            return fail(diag, value.off,
                        "as= needs reasoning_content, reasoning or comment");
    } else if (span_is(name, "retry_after")) {
        if (f->kind != COUNCIL__FAULT_HTTP)
            return fail(diag, name.off, "retry_after= applies to http only");
        if (parse_u64(value, &v) != 0 || v > 86400)
            return fail(diag, value.off,
                        "retry_after= needs seconds (0 to 86400)");
        f->retry_after = v;
    } else {
        return fail(diag, name.off,
                    "unknown parameter '%.*s' (expected after, "
                    "retry_after, beat or as)",
                    (int)(name.len > 40 ? 40 : name.len), name.p);
    }
    return COUNCIL_OK;
}

/* Count the pieces of s separated by sep. */
static size_t
count_sep(span s, char sep)
{
    size_t n = 1, i;

    for (i = 0; i < s.len; i++)
        n += s.p[i] == sep;
    return n;
}

/* The next piece of *rest up to sep (consumed, with the separator). */
static span
next_piece(span *rest, char sep)
{
    const char *e = memchr(rest->p, sep, rest->len);
    size_t n = e ? (size_t)(e - rest->p) : rest->len;
    span piece = {rest->p, n, rest->off};

    if (e != NULL) {
        rest->p += n + 1;
        rest->len -= n + 1;
        rest->off += n + 1;
    } else {
        rest->p += n;
        rest->len = 0;
        rest->off += n;
    }
    return trim(piece);
}

static council_err
parse_rule(span r, rule *out, council_diag *diag)
{
    council_err rc;
    const char *colon = NULL;
    span sels, fault;
    size_t i, n_items;

    /* The selectors end at the last ':' so a glob may hold ':' (Ollama's
     * "llama3.1:8b"); the fault part never does. */
    for (i = r.len; i > 0; i--) {
        if (r.p[i - 1] == ':') {
            colon = r.p + i - 1;
            break;
        }
    }
    if (colon == NULL) {
        sels.p = NULL;
        sels.len = 0;
        sels.off = r.off;
        fault = r;
    } else {
        sels.p = r.p;
        sels.len = (size_t)(colon - r.p);
        sels.off = r.off;
        sels = trim(sels);
        fault.p = colon + 1;
        fault.len = (size_t)(r.p + r.len - (colon + 1));
        fault.off = r.off + (size_t)(colon + 1 - r.p);
        fault = trim(fault);
        if (sels.len == 0)
            return fail(diag, r.off, "empty selector before ':'");
    }
    if (fault.len == 0)
        return fail(diag, fault.off, "missing fault after ':'");

    if (sels.len > 0) {
        size_t n = count_sep(sels, '&');

        out->sel = council__calloc(n, sizeof(*out->sel));
        if (out->sel == NULL)
            return COUNCIL_ENOMEM;
        while (out->n_sel < n) {
            span item = next_piece(&sels, '&');

            if (item.len == 0)
                return fail(diag, item.off, "empty selector");
            rc = parse_selector(item, &out->sel[out->n_sel], diag);
            out->n_sel++; /* counted even on failure: its glob is freed */
            if (rc != COUNCIL_OK)
                return rc;
        }
    }
    n_items = count_sep(fault, ',');
    for (i = 0; i < n_items; i++) {
        span item = next_piece(&fault, ',');

        if (item.len == 0)
            return fail(diag, item.off, "empty parameter");
        if (i == 0)
            rc = parse_fault(item, &out->fault, diag);
        else
            rc = parse_param(item, &out->fault, diag);
        if (rc != COUNCIL_OK)
            return rc;
    }
    return COUNCIL_OK;
}

council_err
council__mock_faults_parse(const char *spec, council__mock_faults **out,
                           council_diag *diag)
{
    council__mock_faults *f = NULL;
    council_err rc = COUNCIL_OK;
    span rest;
    size_t n;

    *out = NULL;
    if (spec == NULL)
        return COUNCIL_OK;
    rest.p = spec;
    rest.len = strlen(spec);
    rest.off = 0;
    if (trim(rest).len == 0)
        return COUNCIL_OK;
    n = count_sep(rest, ';');
    f = council__calloc(1, sizeof(*f));
    if (f == NULL)
        return COUNCIL_ENOMEM;
    f->rules = council__calloc(n, sizeof(*f->rules));
    if (f->rules == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    while (n-- > 0) {
        span r = next_piece(&rest, ';');

        if (r.len == 0)
            continue; /* "a;;b" and a trailing ';' are fine */
        rc = parse_rule(r, &f->rules[f->n_rules], diag);
        f->n_rules++;
        if (rc != COUNCIL_OK)
            goto out;
    }
out:
    if (rc != COUNCIL_OK) {
        council__mock_faults_free(f);
        return rc;
    }
    if (f->n_rules == 0) {
        council__mock_faults_free(f); /* only blanks and ';' */
        f = NULL;
    }
    *out = f;
    return COUNCIL_OK;
}

void
council__mock_faults_free(council__mock_faults *f)
{
    size_t i, j;

    if (f == NULL)
        return;
    for (i = 0; i < f->n_rules; i++) {
        for (j = 0; j < f->rules[i].n_sel; j++)
            council__free(f->rules[i].sel[j].glob);
        council__free(f->rules[i].sel);
    }
    council__free(f->rules);
    council__free(f);
}

static int
selector_matches(const selector *s, size_t rule_no, uint64_t seed, uint64_t nth,
                 const char *model)
{
    uint64_t st;
    double u;

    switch (s->kind) {
    case SEL_ALWAYS:
        return 1;
    case SEL_MODEL:
        return fnmatch(s->glob, model, 0) == 0;
    case SEL_RATE:
        /* A draw that depends on nothing but seed, request and rule. */
        st = seed ^ (nth * 0xd1b54a32d192ed03ULL) ^
             ((uint64_t)rule_no * 0x8cb92ba72f3d8dd7ULL);
        council__mock_splitmix(&st);
        u = (double)(council__mock_splitmix(&st) >> 11) * 0x1.0p-53;
        return u < s->rate;
    case SEL_NTH:
        return nth == s->n;
    case SEL_EVERY:
        return nth % s->n == 0;
    }
    return 0;
}

void
council__mock_faults_match(const council__mock_faults *f, uint64_t seed,
                           uint64_t nth, const char *model,
                           council__mock_fault *out)
{
    size_t i, j;

    memset(out, 0, sizeof(*out));
    out->kind = COUNCIL__FAULT_NONE;
    out->after = -1;
    if (f == NULL)
        return;
    for (i = 0; i < f->n_rules; i++) {
        const rule *r = &f->rules[i];
        int ok = 1;

        for (j = 0; j < r->n_sel && ok; j++)
            ok = selector_matches(&r->sel[j], i, seed, nth, model);
        if (ok) {
            *out = r->fault;
            return;
        }
    }
}
