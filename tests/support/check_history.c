/* SPDX-License-Identifier: MIT */
/*
 * The history checker (check_history.h), and with CHECK_HISTORY_MAIN the
 * check_history program.  Method: one pass over the file builds, per run
 * (a run id's current incarnation) and per recorder, what the bus emitted
 * and what each recorder got, reporting order violations (I2) as they
 * are read; then each run is judged as a whole (I1, I3, I4).  It depends
 * on jansson only, so the program needs nothing of the library: a
 * history from another process, another build or another machine reads
 * the same.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_history.h"

/* ---- the fault vocabulary -------------------------------------------------
 */

static const struct {
    const char *kind;
    const char *reason;
} crash_kinds[] = {
    {"sigkill", "signal SIGKILL"},
    {"sigsegv", "signal SIGSEGV"},
    {"abort", "signal SIGABRT"},
    {"exit", "exit status *"},
    {"sigstop", "no heartbeat for *"},
    {"lease", "worker lost"},
    {"shutdown", "shutdown"},
    {"host_exit", NULL},
    {"protocol", "host protocol error: *"},
    {"socket_closed", "host closed its socket*"},
    /* The engine's whole process was killed: the next reader of its store
     * closes the run (DISTRIBUTED 3). */
    {"process_lost", "process lost: pid *"},
};

static const char *const expects[] = {"crashed", "terminal", "cancelled",
                                      "race",    "none",     "refused"};

const char *
hist_crash_reason(const char *kind)
{
    size_t i;

    for (i = 0; kind != NULL && i < sizeof(crash_kinds) / sizeof(*crash_kinds);
         i++)
        if (strcmp(kind, crash_kinds[i].kind) == 0)
            return crash_kinds[i].reason;
    return NULL;
}

static int
is_crash_kind(const char *kind)
{
    size_t i;

    for (i = 0; i < sizeof(crash_kinds) / sizeof(*crash_kinds); i++)
        if (strcmp(kind, crash_kinds[i].kind) == 0)
            return 1;
    return 0;
}

/* pattern: exact, or a prefix when it ends with '*'.  A pattern may be
 * matched against a pattern (a fault's reason "no heartbeat for *"
 * against its kind's): then the prefix must hold. */
static int
matches(const char *pattern, const char *s)
{
    size_t n;

    if (pattern == NULL || s == NULL)
        return 0;
    n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(s, pattern, n - 1) == 0;
    return strcmp(s, pattern) == 0;
}

static int
str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* ---- state
 * ------------------------------------------------------------------- */

typedef struct fault {
    size_t line;
    int run; /* incarnation, -1 = engine-wide */
    char *kind, *expect, *reason;
    uint64_t at_seq;
} fault;

typedef struct outrec {
    size_t line;
    char *kind, *reason;
} outrec;

typedef struct irun {
    char *id;
    int hnext; /* older incarnations and other ids in the bucket */
    size_t first;
    int ack; /* 0 none, 1 ok, 2 failed */
    char *ack_err;
    size_t ack_line;
    uint64_t n_emit;
    char **types; /* types[seq - 1], NULL for a gap */
    size_t types_cap;
    int n_terminal;
    size_t term_line;
    char *tclass, *treason;
    size_t end_line; /* the first finalize or outcome seen, 0 = none */
    int *recs;
    size_t n_recs, cap_recs;
    int *faults;
    size_t n_faults, cap_faults;
    outrec *outs;
    size_t n_outs, cap_outs;
} irun;

typedef struct irec {
    int used;
    int run;
    int ok;
    size_t init_line;
    uint64_t last;
    unsigned char *got; /* got[seq] */
    size_t got_cap;
    uint64_t n_got;
    int n_final;
    size_t final_line;
    char *fkind, *freason;
} irec;

typedef struct start_tag {
    uint64_t tag;
    size_t line;
    int acked;
} start_tag;

#define BUCKETS 4096
#define MAX_REC_ID 10000000

typedef struct ctx {
    const char *path;
    size_t line;
    char **report;
    size_t rep_len, rep_cap;
    size_t nviol;
    hist_figures *fig;
    irun *runs;
    size_t n_runs, cap_runs;
    int heads[BUCKETS];
    irec *recs;
    size_t cap_recs;
    fault *faults;
    size_t n_faults, cap_faults;
    start_tag *starts;
    size_t n_starts, cap_starts;
    int oom;
} ctx;

static void *
grow(void *p, size_t *cap, size_t need, size_t elem, int *oom)
{
    size_t c = *cap;
    void *q;

    if (need <= c)
        return p;
    while (c < need)
        c = c != 0 ? c * 2 : 16;
    q = realloc(p, c * elem);
    if (q == NULL) {
        *oom = 1;
        return NULL;
    }
    memset((char *)q + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return q;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void viol(ctx *c, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
viol(ctx *c, size_t line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    c->nviol++;
    if (c->report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = snprintf(NULL, 0, "%s:%zu: %s\n", c->path, line, msg);
    if (n < 0)
        return;
    if (c->rep_len + (size_t)n + 1 > c->rep_cap) {
        size_t cap = (c->rep_len + (size_t)n + 1) * 2;
        char *r = realloc(*c->report, cap);
        if (r == NULL)
            return;
        *c->report = r;
        c->rep_cap = cap;
    }
    snprintf(*c->report + c->rep_len, c->rep_cap - c->rep_len, "%s:%zu: %s\n",
             c->path, line, msg);
    c->rep_len += (size_t)n;
}

static unsigned
hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % BUCKETS;
}

/* The current incarnation of id, or -1. */
static int
lookup(ctx *c, const char *id)
{
    int i;

    for (i = c->heads[hash(id)]; i >= 0; i = c->runs[i].hnext)
        if (strcmp(c->runs[i].id, id) == 0)
            return i;
    return -1;
}

static int
new_run(ctx *c, const char *id)
{
    unsigned b = hash(id);
    irun *r;
    irun *runs =
        grow(c->runs, &c->cap_runs, c->n_runs + 1, sizeof(*c->runs), &c->oom);

    if (runs == NULL)
        return -1;
    c->runs = runs;
    r = &c->runs[c->n_runs];
    memset(r, 0, sizeof(*r));
    r->id = strdup(id);
    r->first = c->line;
    r->hnext = c->heads[b];
    c->heads[b] = (int)c->n_runs;
    return (int)c->n_runs++;
}

static int
run_of(ctx *c, const char *id)
{
    int i = lookup(c, id);

    return i >= 0 ? i : new_run(c, id);
}

static irec *
rec_slot(ctx *c, json_int_t id)
{
    irec *recs;

    if (id < 0 || id > MAX_REC_ID)
        return NULL;
    recs =
        grow(c->recs, &c->cap_recs, (size_t)id + 1, sizeof(*c->recs), &c->oom);
    if (recs == NULL)
        return NULL;
    c->recs = recs;
    return &c->recs[id];
}

static void
run_add_int(int **v, size_t *n, size_t *cap, int x, int *oom)
{
    int *p = grow(*v, cap, *n + 1, sizeof(int), oom);

    if (p == NULL)
        return;
    *v = p;
    p[(*n)++] = x;
}

/* ---- records ------------------------------------------------------------- */

static const char *
s_get(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int
is_terminal_type(const char *t)
{
    return t != NULL &&
           (strcmp(t, "run_completed") == 0 || strcmp(t, "run_failed") == 0);
}

static void
on_note(ctx *c, json_t *o)
{
    const char *k = s_get(o, "key"), *v = s_get(o, "value");
    hist_figures *f = c->fig;
    size_t i;

    if (f == NULL || k == NULL || v == NULL || strcmp(k, "seed") != 0)
        return;
    for (i = 0; i < f->n_seeds; i++)
        if (strcmp(f->seeds[i], v) == 0)
            return;
    if (f->n_seeds < HIST_MAX_SEEDS)
        snprintf(f->seeds[f->n_seeds++], sizeof(f->seeds[0]), "%s", v);
}

static void
on_start(ctx *c, json_t *o)
{
    start_tag *s =
        grow(c->starts, &c->cap_starts, c->n_starts + 1, sizeof(*s), &c->oom);

    if (s == NULL)
        return;
    c->starts = s;
    s[c->n_starts].tag =
        (uint64_t)json_integer_value(json_object_get(o, "tag"));
    s[c->n_starts].line = c->line;
    s[c->n_starts].acked = 0;
    c->n_starts++;
}

static void
on_start_ack(ctx *c, json_t *o)
{
    uint64_t tag = (uint64_t)json_integer_value(json_object_get(o, "tag"));
    const char *id = s_get(o, "run"), *err = s_get(o, "err");
    int ok = err != NULL && strcmp(err, "COUNCIL_OK") == 0;
    size_t i;
    int r;

    for (i = c->n_starts; i > 0; i--)
        if (c->starts[i - 1].tag == tag && !c->starts[i - 1].acked) {
            c->starts[i - 1].acked = 1;
            break;
        }
    if (i == 0)
        viol(c, c->line, "I1: start_ack of tag %llu answers no start",
             (unsigned long long)tag);
    if (err == NULL) {
        viol(c, c->line, "start_ack without err");
        return;
    }
    /* Refused before any recorder existed (a bad argument, an id in use):
     * no run came to be, so the answer belongs to none. */
    if (id == NULL || (!ok && (strcmp(err, "COUNCIL_EEXIST") == 0 ||
                               strcmp(err, "COUNCIL_EINVAL") == 0))) {
        if (!ok && c->fig != NULL)
            c->fig->runs_failed_start++;
        return;
    }
    r = lookup(c, id);
    if (ok) {
        if (r < 0 || c->runs[r].ack != 0)
            r = new_run(c, id);
    } else if (r < 0 || c->runs[r].ack != 0) {
        if (c->fig != NULL)
            c->fig->runs_failed_start++;
        return;
    }
    if (r < 0)
        return;
    c->runs[r].ack = ok ? 1 : 2;
    c->runs[r].ack_err = strdup(err);
    c->runs[r].ack_line = c->line;
}

static void
on_init(ctx *c, json_t *o)
{
    const char *id = s_get(o, "run");
    json_t *jrec = json_object_get(o, "rec");
    irec *rc;
    int r;

    if (id == NULL || !json_is_integer(jrec)) {
        viol(c, c->line, "init without run or rec");
        return;
    }
    r = lookup(c, id);
    /* A recorder's init begins the run: an id seen before, whose start
     * was answered already, is used again. */
    if (r < 0 || c->runs[r].ack != 0)
        r = new_run(c, id);
    rc = rec_slot(c, json_integer_value(jrec));
    if (r < 0 || rc == NULL) {
        viol(c, c->line, "bad recorder id");
        return;
    }
    if (rc->used) {
        viol(c, c->line,
             "I1 run %s rec %lld: initialized twice (first at line %zu)", id,
             (long long)json_integer_value(jrec), rc->init_line);
        return;
    }
    rc->used = 1;
    rc->run = r;
    rc->ok = json_is_true(json_object_get(o, "ok"));
    rc->init_line = c->line;
    run_add_int(&c->runs[r].recs, &c->runs[r].n_recs, &c->runs[r].cap_recs,
                (int)json_integer_value(jrec), &c->oom);
}

static void
on_emit(ctx *c, json_t *o)
{
    const char *id = s_get(o, "run"), *type = s_get(o, "type");
    json_t *jseq = json_object_get(o, "seq");
    uint64_t seq;
    irun *R;
    char **types;
    int r;

    if (id == NULL || type == NULL || !json_is_integer(jseq)) {
        viol(c, c->line, "emit without run, seq or type");
        return;
    }
    seq = (uint64_t)json_integer_value(jseq);
    r = lookup(c, id);
    if (r < 0 || (seq == 1 && c->runs[r].n_emit > 0))
        r = new_run(c, id);
    if (r < 0)
        return;
    R = &c->runs[r];
    if (R->n_terminal > 0)
        viol(c, c->line,
             "I2 run %s: the bus accepted seq %llu (%s) after its terminal "
             "event (line %zu)",
             id, (unsigned long long)seq, type, R->term_line);
    if (seq <= R->n_emit || seq == 0) {
        viol(c, c->line,
             "I2 run %s: the bus emitted seq %llu again (last %llu)", id,
             (unsigned long long)seq, (unsigned long long)R->n_emit);
        return;
    }
    if (seq != R->n_emit + 1)
        viol(c, c->line, "I2 run %s: the bus emitted seq %llu after %llu (gap)",
             id, (unsigned long long)seq, (unsigned long long)R->n_emit);
    types = grow(R->types, &R->types_cap, (size_t)seq, sizeof(char *), &c->oom);
    if (types == NULL)
        return;
    R->types = types;
    R->types[seq - 1] = strdup(type);
    R->n_emit = seq;
    if (is_terminal_type(type)) {
        R->n_terminal++;
        if (R->n_terminal == 1) {
            R->term_line = c->line;
            R->tclass = dup_or_null(s_get(o, "class"));
            R->treason = dup_or_null(s_get(o, "reason"));
            if (R->tclass == NULL)
                viol(c, c->line, "I3 run %s: terminal emit without class", id);
        }
    }
}

/* The recorder of a deliver or finalize record, checked against its
 * init; NULL (reported) if it has none. */
static irec *
rec_of(ctx *c, json_t *o, const char *what, long long *id_out)
{
    json_t *jrec = json_object_get(o, "rec");
    const char *id = s_get(o, "run");
    irec *rc;

    *id_out = json_is_integer(jrec) ? (long long)json_integer_value(jrec) : -1;
    rc = json_is_integer(jrec) ? rec_slot(c, json_integer_value(jrec)) : NULL;
    if (rc == NULL || !rc->used) {
        viol(c, c->line,
             "I1 run %s rec %lld: %s of a recorder never initialized",
             id != NULL ? id : "?", *id_out, what);
        return NULL;
    }
    if (id == NULL || strcmp(id, c->runs[rc->run].id) != 0)
        viol(c, c->line, "I2 run %s rec %lld: %s names run %s",
             c->runs[rc->run].id, *id_out, what, id != NULL ? id : "(none)");
    if (!rc->ok) {
        viol(c, c->line,
             "I1 run %s rec %lld: %s, but its init refused (line %zu)",
             c->runs[rc->run].id, *id_out, what, rc->init_line);
        return NULL;
    }
    return rc;
}

static void
on_deliver(ctx *c, json_t *o)
{
    long long rid;
    irec *rc = rec_of(c, o, "handle_event", &rid);
    json_t *jseq = json_object_get(o, "seq");
    const char *type = s_get(o, "type");
    uint64_t seq;
    irun *R;
    unsigned char *got;
    hist_figures *f = c->fig;

    if (rc == NULL)
        return;
    R = &c->runs[rc->run];
    seq = json_is_integer(jseq) ? (uint64_t)json_integer_value(jseq) : 0;
    if (rc->n_final > 0) {
        if (f != NULL)
            f->after_finalize++;
        viol(c, c->line,
             "I2 run %s rec %lld: seq %llu delivered after its finalize "
             "(line %zu)",
             R->id, rid, (unsigned long long)seq, rc->final_line);
        return;
    }
    if (seq == 0 || seq > R->n_emit || R->types[seq - 1] == NULL) {
        if (f != NULL)
            f->phantom++;
        viol(c, c->line,
             "I2 run %s rec %lld: seq %llu delivered, but the bus had not "
             "emitted it (emitted: %llu)",
             R->id, rid, (unsigned long long)seq,
             (unsigned long long)R->n_emit);
        return;
    }
    got = grow(rc->got, &rc->got_cap, (size_t)seq + 1, 1, &c->oom);
    if (got == NULL)
        return;
    rc->got = got;
    if (got[seq]) {
        if (f != NULL)
            f->duplicates++;
        viol(c, c->line, "I2 run %s rec %lld: seq %llu delivered twice", R->id,
             rid, (unsigned long long)seq);
        return;
    }
    if (seq != rc->last + 1) {
        if (f != NULL)
            f->out_of_order++;
        viol(c, c->line, "I2 run %s rec %lld: seq %llu after %llu%s", R->id,
             rid, (unsigned long long)seq, (unsigned long long)rc->last,
             seq > rc->last ? " (gap)" : " (out of order)");
    }
    if (!str_eq(type, R->types[seq - 1]))
        viol(c, c->line,
             "I2 run %s rec %lld: seq %llu delivered as %s, emitted as %s",
             R->id, rid, (unsigned long long)seq, type != NULL ? type : "?",
             R->types[seq - 1]);
    got[seq] = 1;
    rc->n_got++;
    if (seq > rc->last)
        rc->last = seq;
}

static void
on_finalize(ctx *c, json_t *o)
{
    long long rid;
    irec *rc = rec_of(c, o, "handle_finalize", &rid);

    if (rc == NULL)
        return;
    rc->n_final++;
    if (c->runs[rc->run].end_line == 0)
        c->runs[rc->run].end_line = c->line;
    if (rc->n_final == 1) {
        rc->final_line = c->line;
        rc->fkind = dup_or_null(s_get(o, "kind"));
        rc->freason = dup_or_null(s_get(o, "reason"));
        return;
    }
    viol(c, c->line, "I1 run %s rec %lld: finalized again (first at line %zu)",
         c->runs[rc->run].id, rid, rc->final_line);
}

static void
on_outcome(ctx *c, json_t *o)
{
    const char *id = s_get(o, "run");
    int r = id != NULL ? lookup(c, id) : -1;
    irun *R;
    outrec *v;

    if (r < 0) {
        viol(c, c->line,
             "I3 run %s: an outcome for a run the history does not hold",
             id != NULL ? id : "?");
        return;
    }
    R = &c->runs[r];
    if (R->end_line == 0)
        R->end_line = c->line;
    v = grow(R->outs, &R->cap_outs, R->n_outs + 1, sizeof(*v), &c->oom);
    if (v == NULL)
        return;
    R->outs = v;
    v[R->n_outs].line = c->line;
    v[R->n_outs].kind = dup_or_null(s_get(o, "kind"));
    v[R->n_outs].reason = dup_or_null(s_get(o, "reason"));
    R->n_outs++;
}

static void
count_kind(hist_figures *f, const char *kind)
{
    size_t i;

    if (f == NULL)
        return;
    for (i = 0; i < f->n_kinds; i++)
        if (strcmp(f->kinds[i].kind, kind) == 0) {
            f->kinds[i].n++;
            return;
        }
    if (f->n_kinds < HIST_MAX_KINDS) {
        snprintf(f->kinds[f->n_kinds].kind, sizeof(f->kinds[0].kind), "%s",
                 kind);
        f->kinds[f->n_kinds++].n = 1;
    }
}

static void
on_fault(ctx *c, json_t *o)
{
    const char *id = s_get(o, "run"), *kind = s_get(o, "kind");
    const char *expect = s_get(o, "expect"), *reason = s_get(o, "reason");
    const char *want;
    fault *v;
    size_t i;
    int r = -1;

    if (id == NULL || kind == NULL || expect == NULL) {
        viol(c, c->line, "fault without run, kind or expect");
        return;
    }
    for (i = 0; i < sizeof(expects) / sizeof(*expects); i++)
        if (strcmp(expect, expects[i]) == 0)
            break;
    if (i == sizeof(expects) / sizeof(*expects))
        viol(c, c->line, "fault %s: unknown expect \"%s\"", kind, expect);
    if (strcmp(expect, "crashed") == 0) {
        want = hist_crash_reason(kind);
        if (reason == NULL)
            viol(c, c->line, "fault %s: expect crashed needs a reason", kind);
        else if (want != NULL && !matches(want, reason))
            viol(c, c->line,
                 "fault %s: the crash it causes has reason \"%s\", not \"%s\"",
                 kind, want, reason);
        if (!is_crash_kind(kind))
            viol(c, c->line, "fault %s: not a crash kind, yet expect crashed",
                 kind);
    }
    if (strcmp(id, "*") != 0) {
        r = run_of(c, id);
        if (r < 0)
            return;
    }
    v = grow(c->faults, &c->cap_faults, c->n_faults + 1, sizeof(*v), &c->oom);
    if (v == NULL)
        return;
    c->faults = v;
    v += c->n_faults;
    v->line = c->line;
    v->run = r;
    v->kind = strdup(kind);
    v->expect = strdup(expect);
    v->reason = dup_or_null(reason);
    v->at_seq = (uint64_t)json_integer_value(json_object_get(o, "at_seq"));
    if (r >= 0)
        run_add_int(&c->runs[r].faults, &c->runs[r].n_faults,
                    &c->runs[r].cap_faults, (int)c->n_faults, &c->oom);
    c->n_faults++;
    count_kind(c->fig, kind);
}

static void
on_bound(ctx *c, json_t *o)
{
    const char *what = s_get(o, "what");
    double ms = json_number_value(json_object_get(o, "ms"));
    double lim = json_number_value(json_object_get(o, "limit_ms"));
    hist_figures *f = c->fig;

    if (f != NULL) {
        f->bounds++;
        if (lim > 0 && ms / lim > f->bound_worst_ratio)
            f->bound_worst_ratio = ms / lim;
    }
    if (!(ms <= lim)) {
        if (f != NULL)
            f->bounds_exceeded++;
        viol(c, c->line, "I5: %s took %.3f ms, over its bound of %.3f ms",
             what != NULL ? what : "?", ms, lim);
    }
}

static void
on_resources(ctx *c, json_t *o)
{
    json_int_t before = json_integer_value(json_object_get(o, "fds_before"));
    json_int_t after = json_integer_value(json_object_get(o, "fds_after"));
    json_int_t kids = json_integer_value(json_object_get(o, "children"));
    hist_figures *f = c->fig;

    if (f != NULL)
        f->resource_checks++;
    if (after > before || kids != 0) {
        if (f != NULL)
            f->resource_bad++;
        viol(c, c->line,
             "I5: %lld descriptor(s) open beyond the baseline, %lld child "
             "process(es) left",
             (long long)(after > before ? after - before : 0), (long long)kids);
    }
}

static void
record(ctx *c, json_t *o)
{
    const char *r = s_get(o, "r");

    if (r == NULL)
        viol(c, c->line, "a record without \"r\"");
    else if (strcmp(r, "note") == 0)
        on_note(c, o);
    else if (strcmp(r, "start") == 0)
        on_start(c, o);
    else if (strcmp(r, "start_ack") == 0)
        on_start_ack(c, o);
    else if (strcmp(r, "init") == 0)
        on_init(c, o);
    else if (strcmp(r, "emit") == 0)
        on_emit(c, o);
    else if (strcmp(r, "deliver") == 0)
        on_deliver(c, o);
    else if (strcmp(r, "finalize") == 0)
        on_finalize(c, o);
    else if (strcmp(r, "outcome") == 0)
        on_outcome(c, o);
    else if (strcmp(r, "fault") == 0)
        on_fault(c, o);
    else if (strcmp(r, "bound") == 0)
        on_bound(c, o);
    else if (strcmp(r, "resources") == 0)
        on_resources(c, o);
    /* "hist" and kinds added later: nothing to check. */
}

/* ---- judging each run ------------------------------------------------------
 */

/* An outcome to check: a recorder's finalize or the test's wait. */
typedef struct source {
    size_t line;
    long long rec; /* -1: the test's wait */
    const char *kind, *reason;
} source;

static void
who(char *buf, size_t n, const irun *R, long long rec)
{
    if (rec >= 0)
        snprintf(buf, n, "run %s rec %lld", R->id, rec);
    else
        snprintf(buf, n, "run %s (wait)", R->id);
}

static void
judge_failed_start(ctx *c, irun *R, source *src, size_t n_src, int refused)
{
    hist_figures *f = c->fig;
    size_t bad = c->nviol, i;
    char w[200];

    if (f != NULL)
        f->runs_failed_start++;
    if (R->n_emit > 0)
        viol(c, R->ack_line,
             "I1 run %s: start failed (%s), yet the bus emitted %llu event(s)",
             R->id, R->ack_err, (unsigned long long)R->n_emit);
    if (refused && strcmp(R->ack_err, "COUNCIL_EREFUSED") != 0)
        viol(c, R->ack_line, "I1 run %s: a recorder refused, start said %s",
             R->id, R->ack_err);
    for (i = 0; i < n_src; i++) {
        who(w, sizeof(w), R, src[i].rec);
        if (!str_eq(src[i].kind, "error"))
            viol(c, src[i].line,
                 "I3 %s: the run never started, yet finalized %s", w,
                 src[i].kind != NULL ? src[i].kind : "?");
    }
    if (f != NULL && n_src > 0) {
        f->outcomes++;
        if (c->nviol == bad)
            f->outcomes_right++;
    }
}

static void
judge_run(ctx *c, int r)
{
    irun *R = &c->runs[r];
    hist_figures *f = c->fig;
    fault *ap[256];
    source src[64];
    size_t n_ap = 0, n_src = 0, i, k, bad0;
    int started, refused = 0, terminal, race = 0, cancel_before = 0;
    int crash_faults = 0;
    const char *want;
    char w[200];

    started = R->ack == 1 || (R->ack == 0 && R->n_emit > 0);
    /* The faults that apply: this run's, and engine-wide ones injected
     * after it began and before it had ended. */
    for (i = 0; i < R->n_faults && n_ap < 256; i++)
        ap[n_ap++] = &c->faults[R->faults[i]];
    for (i = 0; i < c->n_faults && n_ap < 256; i++)
        if (c->faults[i].run < 0 && c->faults[i].line > R->first &&
            (R->n_terminal == 0 || R->term_line > c->faults[i].line) &&
            (R->end_line == 0 || R->end_line > c->faults[i].line))
            ap[n_ap++] = &c->faults[i];

    /* I1 and I4, per recorder. */
    for (i = 0; i < R->n_recs; i++) {
        irec *rc = &c->recs[R->recs[i]];
        if (!rc->ok) {
            refused = 1;
            if (f != NULL)
                f->recorders_refused++;
            continue;
        }
        if (f != NULL)
            f->recorders++;
        if (rc->n_final == 0) {
            if (f != NULL)
                f->finalize_missing++;
            viol(c, rc->init_line,
                 "I1 run %s rec %d: init succeeded, never finalized", R->id,
                 R->recs[i]);
        } else {
            if (rc->n_final > 1 && f != NULL)
                f->finalize_double++;
            if (n_src < 64)
                src[n_src++] = (source){rc->final_line, R->recs[i], rc->fkind,
                                        rc->freason};
        }
        if (started) {
            uint64_t lost = R->n_emit - rc->n_got, s;
            if (f != NULL) {
                f->delivered += rc->n_got;
                f->lost += lost;
                if (lost != 0)
                    f->recorders_unequal++;
            }
            for (s = 1; lost > 0 && s <= R->n_emit; s++)
                if (s >= rc->got_cap || !rc->got[s])
                    break;
            if (lost > 0)
                viol(c, rc->n_final > 0 ? rc->final_line : rc->init_line,
                     "I4 run %s rec %d: %llu of %llu emitted event(s) never "
                     "reached it before its finalize (first: seq %llu)",
                     R->id, R->recs[i], (unsigned long long)lost,
                     (unsigned long long)R->n_emit, (unsigned long long)s);
        }
    }
    for (i = 0; i < R->n_outs && n_src < 64; i++)
        src[n_src++] =
            (source){R->outs[i].line, -1, R->outs[i].kind, R->outs[i].reason};

    if (R->ack == 2) {
        judge_failed_start(c, R, src, n_src, refused);
        return;
    }
    if (refused)
        viol(c, R->first, "I1 run %s: a recorder's init refused, yet %s", R->id,
             R->ack == 1 ? "the start succeeded" : "the run emitted events");
    if (!started)
        return;
    if (f != NULL) {
        f->runs++;
        f->emitted += R->n_emit;
        if (n_ap > 0)
            f->runs_fault++;
        else
            f->runs_normal++;
    }

    /* I3: what the outcome must be. */
    bad0 = c->nviol;
    terminal = R->n_terminal > 0;
    want = terminal ? R->tclass : "crashed";
    for (k = 0; k < n_ap; k++) {
        fault *fl = ap[k];
        int before_end = !terminal || fl->line < R->term_line;
        if (strcmp(fl->expect, "crashed") == 0) {
            crash_faults++;
            if (terminal) {
                race = 1;
            } else if (fl->run >= 0 && fl->at_seq > R->n_emit) {
                /* The injector had seen at_seq (a child had written it):
                 * those events were acknowledged, and must all be there
                 * before the crash. */
                if (f != NULL)
                    f->lost += fl->at_seq - R->n_emit;
                viol(c, fl->line,
                     "I4 run %s: fault %s came after seq %llu, yet the bus "
                     "accepted only %llu event(s) before the crash",
                     R->id, fl->kind, (unsigned long long)fl->at_seq,
                     (unsigned long long)R->n_emit);
            }
        } else if (strcmp(fl->expect, "terminal") == 0) {
            /* A crash sent after the terminal was written: the race the
             * terminal must win, and win every time. */
            if (is_crash_kind(fl->kind))
                race = 1;
            if (!terminal)
                viol(c, fl->line,
                     "I3 run %s: fault %s had to leave the terminal event to "
                     "win, but none was emitted",
                     R->id, fl->kind);
        } else if (strcmp(fl->expect, "cancelled") == 0 &&
                   !(terminal && str_eq(R->tclass, "cancelled"))) {
            viol(c, fl->line,
                 "I3 run %s: the cancel had to win, but the run ended %s",
                 R->id,
                 terminal ? (R->tclass != NULL ? R->tclass : "?") : "crashed");
        } else if (strcmp(fl->expect, "refused") == 0) {
            viol(c, fl->line,
                 "I1 run %s: fault %s had to refuse the start, which succeeded",
                 R->id, fl->kind);
        }
        if (strcmp(fl->kind, "cancel") == 0 &&
            strcmp(fl->expect, "none") != 0 && before_end) {
            cancel_before = 1;
            if (f != NULL) {
                if (terminal && str_eq(R->tclass, "cancelled"))
                    f->cancels_won++;
                else
                    f->cancels_lost++;
            }
        }
    }
    if (terminal && str_eq(R->tclass, "cancelled") && !cancel_before)
        viol(c, R->term_line,
             "I3 run %s: cancelled, but no cancel that could win was "
             "requested before its terminal event",
             R->id);
    if (!terminal && crash_faults == 0 && n_src > 0)
        viol(c, src[0].line,
             "I3 run %s: no terminal event and no injected crash to explain "
             "the end (%s \"%s\")",
             R->id, src[0].kind != NULL ? src[0].kind : "?",
             src[0].reason != NULL ? src[0].reason : "");
    for (i = 0; i < n_src; i++) {
        const char *kind = src[i].kind, *reason = src[i].reason;
        who(w, sizeof(w), R, src[i].rec);
        if (!str_eq(kind, want)) {
            viol(c, src[i].line, "I3 %s: ended %s \"%s\", but %s", w,
                 kind != NULL ? kind : "?", reason != NULL ? reason : "",
                 terminal ? "its terminal event says otherwise"
                          : "no terminal event was emitted: crashed");
            continue;
        }
        if (terminal && str_eq(want, "error") && R->treason != NULL &&
            !str_eq(reason, R->treason))
            viol(c, src[i].line,
                 "I3 %s: error reason \"%s\", the terminal event's first error "
                 "says \"%s\"",
                 w, reason != NULL ? reason : "(none)", R->treason);
        if (terminal && str_eq(want, "ok") && reason != NULL)
            viol(c, src[i].line, "I3 %s: ok with a reason \"%s\"", w, reason);
        if (!terminal && crash_faults > 0) {
            int hit = 0;
            for (k = 0; k < n_ap && !hit; k++)
                if (strcmp(ap[k]->expect, "crashed") == 0 &&
                    matches(ap[k]->reason, reason))
                    hit = 1;
            if (!hit)
                viol(c, src[i].line,
                     "I3 %s: crash reason \"%s\" is not the injected fault's "
                     "(first: %s \"%s\")",
                     w, reason != NULL ? reason : "(none)", ap[0]->kind,
                     ap[0]->reason != NULL ? ap[0]->reason : "");
        }
        if (i > 0 &&
            (!str_eq(kind, src[0].kind) || !str_eq(reason, src[0].reason)))
            viol(c, src[i].line,
                 "I3 %s: ended %s \"%s\", another saw %s \"%s\": two outcomes",
                 w, kind, reason != NULL ? reason : "",
                 src[0].kind != NULL ? src[0].kind : "?",
                 src[0].reason != NULL ? src[0].reason : "");
    }
    if (f != NULL && n_src > 0) {
        int right = c->nviol == bad0;
        f->outcomes++;
        f->outcomes_right += right;
        if (str_eq(want, "crashed")) {
            f->crashes++;
            f->crashes_right += right;
        }
        if (race) {
            f->races++;
            f->races_terminal_won += right;
        }
    }
}

/* ---- the file --------------------------------------------------------------
 */

static void
free_ctx(ctx *c)
{
    size_t i, k;

    for (i = 0; i < c->n_runs; i++) {
        irun *R = &c->runs[i];
        free(R->id);
        free(R->ack_err);
        for (k = 0; k < R->n_emit; k++)
            free(R->types[k]);
        free(R->types);
        free(R->tclass);
        free(R->treason);
        free(R->recs);
        free(R->faults);
        for (k = 0; k < R->n_outs; k++) {
            free(R->outs[k].kind);
            free(R->outs[k].reason);
        }
        free(R->outs);
    }
    free(c->runs);
    for (i = 0; i < c->cap_recs; i++) {
        free(c->recs[i].got);
        free(c->recs[i].fkind);
        free(c->recs[i].freason);
    }
    free(c->recs);
    for (i = 0; i < c->n_faults; i++) {
        free(c->faults[i].kind);
        free(c->faults[i].expect);
        free(c->faults[i].reason);
    }
    free(c->faults);
    free(c->starts);
}

size_t
hist_check_file(const char *path, hist_figures *fig, char **report)
{
    ctx c;
    FILE *in;
    char *buf = NULL;
    size_t cap = 0, i;
    ssize_t n;

    memset(&c, 0, sizeof(c));
    c.path = path;
    c.report = report;
    c.rep_len = report != NULL && *report != NULL ? strlen(*report) : 0;
    c.rep_cap = report != NULL && *report != NULL ? c.rep_len + 1 : 0;
    c.fig = fig;
    for (i = 0; i < BUCKETS; i++)
        c.heads[i] = -1;
    in = fopen(path, "re");
    if (in == NULL) {
        viol(&c, 0, "cannot read: %s", strerror(errno));
        if (fig != NULL)
            fig->violations++;
        return 1;
    }
    while ((n = getline(&buf, &cap, in)) > 0) {
        json_error_t err;
        json_t *o;
        c.line++;
        if (buf[n - 1] != '\n') {
            /* One write() per record: a line cut short means the file was
             * damaged, not that a writer died mid-record. */
            viol(&c, c.line, "the last line is cut short (no newline)");
            if (fig != NULL)
                fig->bad_lines++;
            break;
        }
        o = json_loadb(buf, (size_t)n, 0, &err);
        if (!json_is_object(o)) {
            viol(&c, c.line, "not a history record: %s", err.text);
            if (fig != NULL)
                fig->bad_lines++;
            json_decref(o);
            continue;
        }
        if (fig != NULL)
            fig->records++;
        record(&c, o);
        json_decref(o);
    }
    free(buf);
    fclose(in);
    for (i = 0; i < c.n_starts; i++)
        if (!c.starts[i].acked)
            viol(&c, c.starts[i].line, "I1: start tag %llu was never answered",
                 (unsigned long long)c.starts[i].tag);
    for (i = 0; i < c.n_runs; i++)
        judge_run(&c, (int)i);
    if (c.oom)
        viol(&c, c.line, "the checker ran out of memory");
    free_ctx(&c);
    if (fig != NULL) {
        fig->files++;
        fig->violations += c.nviol;
    }
    return c.nviol;
}

/* ---- the figure table
 * -------------------------------------------------------- */

static double
pct(uint64_t a, uint64_t b)
{
    return b > 0 ? 100.0 * (double)a / (double)b : 100.0;
}

void
hist_figures_print(FILE *out, const hist_figures *f)
{
    size_t i;

    fprintf(out, "| figure | value | target |\n|---|---|---|\n");
    fprintf(out,
            "| histories checked (files / records / damaged lines) | "
            "%llu / %llu / %llu | – / – / 0 |\n",
            (unsigned long long)f->files, (unsigned long long)f->records,
            (unsigned long long)f->bad_lines);
    fprintf(out,
            "| runs executed (normal / under fault); starts refused or "
            "failed | %llu / %llu; %llu | reported |\n",
            (unsigned long long)f->runs_normal,
            (unsigned long long)f->runs_fault,
            (unsigned long long)f->runs_failed_start);
    fprintf(out, "| faults injected by kind | ");
    for (i = 0; i < f->n_kinds; i++)
        fprintf(out, "%s%s %llu", i > 0 ? ", " : "", f->kinds[i].kind,
                (unsigned long long)f->kinds[i].n);
    fprintf(out, "%s | reported |\n", f->n_kinds == 0 ? "none" : "");
    fprintf(out,
            "| events emitted (accepted by the bus) / delivered (distinct, "
            "summed over %llu recorders) | %llu / %llu | – |\n",
            (unsigned long long)f->recorders, (unsigned long long)f->emitted,
            (unsigned long long)f->delivered);
    fprintf(out,
            "| recorders whose delivered count differs from their run's "
            "emitted count | %llu of %llu | 0 (equal per recorder) |\n",
            (unsigned long long)f->recorders_unequal,
            (unsigned long long)f->recorders);
    fprintf(out, "| **events lost** | **%llu** | **0** |\n",
            (unsigned long long)f->lost);
    fprintf(out,
            "| duplicate / out-of-order deliveries reaching handle_event | "
            "%llu / %llu | 0 / 0 |\n",
            (unsigned long long)f->duplicates,
            (unsigned long long)f->out_of_order);
    fprintf(out,
            "| deliveries after finalize / of events never emitted | %llu / "
            "%llu | 0 / 0 |\n",
            (unsigned long long)f->after_finalize,
            (unsigned long long)f->phantom);
    fprintf(out,
            "| **finalize-exactly-once violations** (missing / double) | "
            "**%llu / %llu** | **0 / 0** |\n",
            (unsigned long long)f->finalize_missing,
            (unsigned long long)f->finalize_double);
    fprintf(
        out,
        "| outcomes correctly attributed (all runs; of them crashed, by "
        "reason) | %llu of %llu (%.1f %%); %llu of %llu | 100 %% |\n",
        (unsigned long long)f->outcomes_right, (unsigned long long)f->outcomes,
        pct(f->outcomes_right, f->outcomes),
        (unsigned long long)f->crashes_right, (unsigned long long)f->crashes);
    fprintf(out,
            "| cancel requests made before the end: won / lost (to a "
            "completion or crash) | %llu / %llu | reported |\n",
            (unsigned long long)f->cancels_won,
            (unsigned long long)f->cancels_lost);
    fprintf(out,
            "| terminal-beats-crash race cases (the terminal's outcome won) | "
            "%llu (%llu) | reported, all the terminal's |\n",
            (unsigned long long)f->races,
            (unsigned long long)f->races_terminal_won);
    fprintf(out,
            "| liveness bounds held (worst: elapsed / bound) | %llu of %llu "
            "(%.2f) | all |\n",
            (unsigned long long)(f->bounds - f->bounds_exceeded),
            (unsigned long long)f->bounds, f->bound_worst_ratio);
    fprintf(out,
            "| resource checks back to baseline (fds, children) | %llu of "
            "%llu | all |\n",
            (unsigned long long)(f->resource_checks - f->resource_bad),
            (unsigned long long)f->resource_checks);
    fprintf(out, "| checker violations | %llu | 0 |\n",
            (unsigned long long)f->violations);
    fprintf(out, "| seeds used | ");
    for (i = 0; i < f->n_seeds; i++)
        fprintf(out, "%s%s", i > 0 ? ", " : "", f->seeds[i]);
    fprintf(out, "%s | listed |\n", f->n_seeds == 0 ? "none" : "");
}

/* ---- the program
 * --------------------------------------------------------------- */

#ifdef CHECK_HISTORY_MAIN

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Check path (a file, or every *.jsonl in a directory, sorted).  Returns
 * the violations; *unreadable counts what could not be read. */
static size_t
check_path(const char *path, hist_figures *fig, int quiet, int *unreadable)
{
    struct stat st;
    char *report = NULL;
    size_t n = 0;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char **names = NULL;
        size_t k = 0, cap = 0, i;
        int oom = 0;
        if (d == NULL) {
            fprintf(stderr, "check_history: %s: %s\n", path, strerror(errno));
            (*unreadable)++;
            return 0;
        }
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            char **nn;
            if (len < 7 || strcmp(e->d_name + len - 6, ".jsonl") != 0)
                continue;
            nn = grow(names, &cap, k + 1, sizeof(*names), &oom);
            if (nn == NULL)
                break;
            names = nn;
            names[k] = malloc(strlen(path) + len + 2);
            if (names[k] == NULL)
                break;
            snprintf(names[k], strlen(path) + len + 2, "%s/%s", path,
                     e->d_name);
            k++;
        }
        closedir(d);
        if (k > 0)
            qsort(names, k, sizeof(*names), cmp_str);
        for (i = 0; i < k; i++) {
            n += check_path(names[i], fig, quiet, unreadable);
            free(names[i]);
        }
        free(names);
        return n;
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "check_history: %s: %s\n", path, strerror(errno));
        (*unreadable)++;
        return 0;
    }
    n = hist_check_file(path, fig, &report);
    if (n > 0 && !quiet && report != NULL)
        fputs(report, stdout);
    free(report);
    return n;
}

int
main(int argc, char **argv)
{
    hist_figures fig;
    int figures = 0, quiet = 0, unreadable = 0, a, files = 0;
    size_t n = 0;

    memset(&fig, 0, sizeof(fig));
    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--figures") == 0) {
            figures = 1;
        } else if (strcmp(argv[a], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[a], "--help") == 0 ||
                   strcmp(argv[a], "-h") == 0) {
            printf("usage: check_history [--figures] [--quiet] FILE|DIR...\n"
                   "Checks test histories (tests/support/history.h) for the\n"
                   "invariants I1-I5 of RELIABILITY.md; prints each "
                   "violation;\n"
                   "--figures prints the figure table (markdown).  Exit 1 "
                   "on a\n"
                   "violation, 2 on a usage error or an unreadable file.\n");
            return 0;
        } else if (argv[a][0] == '-') {
            fprintf(stderr, "check_history: unknown option %s\n", argv[a]);
            return 2;
        } else {
            files++;
            n += check_path(argv[a], &fig, quiet, &unreadable);
        }
    }
    if (files == 0) {
        fprintf(stderr, "usage: check_history [--figures] [--quiet] "
                        "FILE|DIR...\n");
        return 2;
    }
    if (figures)
        hist_figures_print(stdout, &fig);
    if (!quiet)
        fprintf(stderr, "check_history: %llu file(s), %zu violation(s)\n",
                (unsigned long long)fig.files, n);
    if (unreadable > 0)
        return 2;
    return n > 0 ? 1 : 0;
}

#endif
