/* SPDX-License-Identifier: MIT */
/*
 * The history writer, the engine's emit tap and the history recorder
 * (history.h).  Method: a record is built in a buffer on the caller's
 * stack, strings escaped, and written with one write() to a descriptor
 * opened O_APPEND: the kernel appends each write whole, so concurrent
 * writers (the loop thread, the recorder pool, the test) never split each
 * other's lines, and nothing waits in a user-space buffer if the process
 * dies.  A string too long for the buffer is cut, never the line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_history.h"
#include "core/run.h"
#include "core/script_host.h"
#include "history.h"
#include "runner.h"

struct hist {
    int fd;
    atomic_int next_rec;
    atomic_uint next_tag;
    char path[PATH_MAX];
};

int64_t
hist_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- one line ------------------------------------------------------------ */

#define LINE_MAX_BYTES 4096
/* At most this much of one string value goes into a line. */
#define STR_MAX 1024

typedef struct line {
    char b[LINE_MAX_BYTES];
    size_t n;
} line;

static void
put(line *l, const char *s, size_t n)
{
    /* Room is kept for the closing "}\n". */
    if (l->n + n > sizeof(l->b) - 4)
        n = sizeof(l->b) - 4 - l->n;
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void putf(line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(line *l, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void
put_key(line *l, const char *key)
{
    putf(l, ",\"%s\":", key);
}

/* key: the string JSON-escaped, or null. */
static void
put_str(line *l, const char *key, const char *v)
{
    size_t i, room;

    put_key(l, key);
    if (v == NULL) {
        put(l, "null", 4);
        return;
    }
    put(l, "\"", 1);
    for (i = 0; v[i] != '\0' && i < STR_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        room = sizeof(l->b) - 4 - l->n;
        if (room < 8)
            break;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
        } else if (c < 0x20 || c >= 0x80) {
            putf(l, "\\u%04x", c);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
}

static void
put_u64(line *l, const char *key, uint64_t v)
{
    put_key(l, key);
    putf(l, "%llu", (unsigned long long)v);
}

static void
put_i64(line *l, const char *key, int64_t v)
{
    put_key(l, key);
    putf(l, "%lld", (long long)v);
}

static void
put_bool(line *l, const char *key, int v)
{
    put_key(l, key);
    put(l, v ? "true" : "false", v ? 4 : 5);
}

static void
begin(line *l, const char *kind)
{
    l->n = 0;
    putf(l, "{\"r\":\"%s\",\"t\":%lld", kind, (long long)hist_now_us());
}

static void
finish(hist *h, line *l)
{
    size_t off = 0;

    memcpy(l->b + l->n, "}\n", 2);
    l->n += 2;
    while (off < l->n) {
        ssize_t w = write(h->fd, l->b + off, l->n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* the checker will see what is missing */
        }
        off += (size_t)w;
    }
}

/* ---- the file --------------------------------------------------------------
 */

hist *
hist_open(const char *path, const char *name)
{
    hist *h = calloc(1, sizeof(*h));
    struct timespec wall;
    line l;

    if (h == NULL)
        return NULL;
    h->fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (h->fd < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    snprintf(h->path, sizeof(h->path), "%s", path);
    atomic_init(&h->next_rec, 1);
    atomic_init(&h->next_tag, 1);
    clock_gettime(CLOCK_REALTIME, &wall);
    begin(&l, "hist");
    put_u64(&l, "v", 1);
    put_i64(&l, "pid", (int64_t)getpid());
    put_i64(&l, "wall_us",
            (int64_t)wall.tv_sec * 1000000 + wall.tv_nsec / 1000);
    put_str(&l, "name", name);
    finish(h, &l);
    return h;
}

hist *
hist_open_case(const char *name)
{
    const char *dir = getenv("COUNCIL_HISTORY_DIR");
    const char *loops = getenv("COUNCIL_LOOP_THREADS");
    char path[PATH_MAX];
    hist *h;

    if (dir != NULL && *dir != '\0') {
        char suffix[32] = "";
        char exe[PATH_MAX];
        const char *prog = "test";
        /* The runner re-executes each case with argv[0] "test": the
         * binary's name comes from /proc. */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
            exe[n] = '\0';
            prog = strrchr(exe, '/') != NULL ? strrchr(exe, '/') + 1 : exe;
        }
        if (loops != NULL && *loops != '\0')
            snprintf(suffix, sizeof(suffix), ".loops%.8s", loops);
        snprintf(path, sizeof(path), "%.2000s/%.200s%s.%.200s.jsonl", dir, prog,
                 suffix, name);
    } else {
        snprintf(path, sizeof(path), "%.2000s/%.200s.jsonl", runner_tmpdir(),
                 name);
    }
    h = hist_open(path, name);
    if (h == NULL)
        FAIL("history %s: %s", path, strerror(errno));
    return h;
}

void
hist_close(hist *h)
{
    if (h == NULL)
        return;
    close(h->fd);
    free(h);
}

const char *
hist_path(const hist *h)
{
    return h->path;
}

void
hist_note(hist *h, const char *key, const char *value)
{
    line l;

    begin(&l, "note");
    put_str(&l, "key", key);
    put_str(&l, "value", value);
    finish(h, &l);
}

void
hist_note_seed(hist *h, uint64_t seed)
{
    char v[32];

    snprintf(v, sizeof(v), "%llu", (unsigned long long)seed);
    hist_note(h, "seed", v);
}

/* ---- the emit tap ----------------------------------------------------------
 */

/*
 * How a terminal event ends its run, read from the event's JSON (not
 * from the engine's outcome: the checker compares the two), as DESIGN
 * 2.4 says: run_completed is ok; run_failed whose errors hold one of kind
 * "cancelled" is cancelled; any other run_failed is an error, and its
 * reason is the first error's message.
 */
static void
classify(council_event *ev, line *l)
{
    json_t *j, *errors, *e;
    const char *reason = NULL;
    const char *text;
    size_t i;
    int cancelled = 0;

    if (council_event_type_of(ev) == COUNCIL_EV_RUN_COMPLETED) {
        put_str(l, "class", "ok");
        return;
    }
    text = council_event_json(ev);
    j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    errors = json_object_get(j, "errors");
    json_array_foreach (errors, i, e) {
        const char *k = json_string_value(json_object_get(e, "kind"));
        if (k != NULL && strcmp(k, "cancelled") == 0)
            cancelled = 1;
    }
    if (cancelled) {
        put_str(l, "class", "cancelled");
    } else {
        reason = json_string_value(
            json_object_get(json_array_get(errors, 0), "message"));
        put_str(l, "class", "error");
        put_str(l, "reason", reason);
    }
    json_decref(j);
}

void
hist_emit(hist *h, council_event *ev)
{
    council_event_type type = council_event_type_of(ev);
    line l;

    begin(&l, "emit");
    put_str(&l, "run", council_event_run_id(ev));
    put_u64(&l, "seq", council_event_seq(ev));
    put_str(&l, "type", council_event_type_name(type));
    if (type == COUNCIL_EV_RUN_COMPLETED || type == COUNCIL_EV_RUN_FAILED)
        classify(ev, &l);
    finish(h, &l);
}

static void
on_emit(const council_event *ev, void *ud)
{
    /* council_event_json renders the immutable event once, thread-safely;
     * it takes a non-const pointer only because it caches the text. */
    hist_emit(ud, (council_event *)ev);
}

void
hist_tap_install(hist *h)
{
    council__testing_on_emit_ud = h;
    council__testing_on_emit = on_emit;
}

void
hist_tap_remove(void)
{
    council__testing_on_emit = NULL;
    council__testing_on_emit_ud = NULL;
}

/* ---- starts, faults, outcomes ----------------------------------------------
 */

static const char *const err_names[] = {
    "COUNCIL_OK",       "COUNCIL_ENOMEM",    "COUNCIL_EINVAL",
    "COUNCIL_EPARSE",   "COUNCIL_ENOTFOUND", "COUNCIL_EEXIST",
    "COUNCIL_EREFUSED", "COUNCIL_ECANCELED", "COUNCIL_ETIMEDOUT",
    "COUNCIL_ECLOSED",  "COUNCIL_EIO",       "COUNCIL_EDEADLK",
    "COUNCIL_ESTART",   "COUNCIL_EHTTP",     "COUNCIL_EINTERNAL",
    "COUNCIL_EBUSY"};

const char *
hist_err_name(council_err rc)
{
    if ((unsigned)rc < sizeof(err_names) / sizeof(err_names[0]))
        return err_names[rc];
    return "COUNCIL_E?";
}

unsigned
hist_start(hist *h, const char *run_id)
{
    unsigned tag = atomic_fetch_add(&h->next_tag, 1);
    line l;

    begin(&l, "start");
    put_u64(&l, "tag", tag);
    put_str(&l, "run", run_id);
    finish(h, &l);
    return tag;
}

void
hist_start_ack(hist *h, unsigned tag, const char *run_id, council_err rc)
{
    line l;

    begin(&l, "start_ack");
    put_u64(&l, "tag", tag);
    put_str(&l, "run", run_id);
    put_str(&l, "err", hist_err_name(rc));
    finish(h, &l);
}

void
hist_fault_by(hist *h, const char *run_id, const char *kind, uint64_t at_seq,
              const char *expect, const char *reason, const char *by)
{
    line l;

    begin(&l, "fault");
    put_str(&l, "run", run_id != NULL ? run_id : "*");
    put_str(&l, "kind", kind);
    put_u64(&l, "at_seq", at_seq);
    put_str(&l, "expect", expect);
    put_str(&l, "reason", reason);
    put_str(&l, "by", by);
    finish(h, &l);
}

void
hist_fault(hist *h, const char *run_id, const char *kind, uint64_t at_seq,
           const char *expect, const char *reason)
{
    hist_fault_by(h, run_id, kind, at_seq, expect, reason, "test");
}

const char *
hist_fault_crash(hist *h, const char *run_id, const char *kind, uint64_t at_seq,
                 int status)
{
    static __thread char buf[64];
    const char *reason = hist_crash_reason(kind);

    if (strcmp(kind, "exit") == 0) {
        snprintf(buf, sizeof(buf), "exit status %d", status);
        reason = buf;
    }
    hist_fault(h, run_id, kind, at_seq, "crashed", reason);
    return reason;
}

council_err
hist_cancel(hist *h, council_run *run, const char *expect)
{
    hist_fault(h, council_run_id(run), "cancel", 0, expect, NULL);
    return council_run_cancel(run);
}

void
hist_outcome(hist *h, const char *run_id, const council_outcome *o)
{
    line l;

    begin(&l, "outcome");
    put_str(&l, "run", run_id);
    put_str(&l, "kind", council_outcome_kind_name(council_outcome_kind_of(o)));
    put_str(&l, "reason", council_outcome_reason(o));
    finish(h, &l);
}

void
hist_bound(hist *h, const char *what, double ms, double limit_ms)
{
    line l;

    begin(&l, "bound");
    put_str(&l, "what", what);
    put_key(&l, "ms");
    putf(&l, "%.3f", ms);
    put_key(&l, "limit_ms");
    putf(&l, "%.3f", limit_ms);
    finish(h, &l);
}

int
hist_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own descriptor */
}

int
hist_count_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t me = getpid();
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[512], *p;
        FILE *f;
        long ppid;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        p = fgets(buf, sizeof(buf), f);
        fclose(f);
        /* pid (comm) state ppid ...: comm may hold spaces and ')'. */
        if (p == NULL || (p = strrchr(buf, ')')) == NULL)
            continue;
        if (sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == (long)me)
            n++;
    }
    closedir(d);
    return n;
}

void
hist_resources(hist *h, int fds_before)
{
    line l;

    begin(&l, "resources");
    put_i64(&l, "fds_before", fds_before);
    put_i64(&l, "fds_after", hist_count_fds());
    put_i64(&l, "children", hist_count_children());
    finish(h, &l);
}

void
hist_init_record(hist *h, const char *run_id, int rec, int ok, const char *why)
{
    line l;

    begin(&l, "init");
    put_str(&l, "run", run_id);
    put_i64(&l, "rec", rec);
    put_bool(&l, "ok", ok);
    put_str(&l, "why", ok ? NULL : why);
    finish(h, &l);
}

void
hist_deliver_record(hist *h, const char *run_id, int rec, uint64_t seq,
                    const char *type, int rc)
{
    line l;

    begin(&l, "deliver");
    put_str(&l, "run", run_id);
    put_i64(&l, "rec", rec);
    put_u64(&l, "seq", seq);
    put_str(&l, "type", type);
    put_i64(&l, "rc", rc);
    finish(h, &l);
}

void
hist_finalize_record(hist *h, const char *run_id, int rec, const char *kind,
                     const char *reason)
{
    line l;

    begin(&l, "finalize");
    put_str(&l, "run", run_id);
    put_i64(&l, "rec", rec);
    put_str(&l, "kind", kind);
    put_str(&l, "reason", reason);
    finish(h, &l);
}

int
hist_next_rec_id(hist *h)
{
    return atomic_fetch_add(&h->next_rec, 1);
}

/* ---- the history recorder
 * ---------------------------------------------------- */

void
hist_rec_init(hist_rec *r, hist *h)
{
    memset(r, 0, sizeof(*r));
    r->h = h;
    r->id = hist_next_rec_id(h);
}

void
hist_rec_specs(hist_rec *recs, size_t n, council_recorder_spec *specs)
{
    size_t i;

    for (i = 0; i < n; i++) {
        specs[i].ops = &hist_rec_ops;
        specs[i].args = &recs[i];
    }
}

static void
enter(hist_rec *r)
{
    if (atomic_fetch_add(&r->busy, 1) != 0)
        atomic_fetch_add(&r->overlap, 1);
}

static void
leave(hist_rec *r)
{
    atomic_fetch_sub(&r->busy, 1);
}

static void
by_name(const hist_rec *r, char *by, size_t n)
{
    snprintf(by, n, "recorder %d", r->id);
}

static int
hr_init(const char *run_id, void *args, void **state, char *why,
        size_t why_size)
{
    hist_rec *r = args;
    char by[32];

    enter(r);
    atomic_fetch_add(&r->inits, 1);
    snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
    by_name(r, by, sizeof(by));
    /* The init record first: it begins the run in the history, and the
     * faults below belong to that run. */
    hist_init_record(r->h, run_id, r->id, !r->refuse, "refused by the test");
    if (r->refuse)
        hist_fault_by(r->h, run_id, "rec_refuse", 0, "refused", NULL, by);
    if (r->cancel_in_init != NULL) {
        hist_fault_by(r->h, run_id, "cancel", 0,
                      r->cancel_expect != NULL ? r->cancel_expect : "cancelled",
                      NULL, by);
        r->init_cancel_rc = council_engine_cancel(r->cancel_in_init, run_id);
    }
    if (r->refuse) {
        snprintf(why, why_size, "refused by the test");
        leave(r);
        return 1;
    }
    *state = r;
    leave(r);
    return 0;
}

static int
wants_cancel(const hist_rec *r, council_event *ev)
{
    const char *stage;

    if (r->cancel_at_seq != 0 && council_event_seq(ev) == r->cancel_at_seq)
        return 1;
    if (r->cancel_on_type == NULL ||
        strcmp(council_event_type_name(council_event_type_of(ev)),
               r->cancel_on_type) != 0)
        return 0;
    stage = council_event_stage(ev);
    return r->cancel_on_stage == NULL ||
           (stage != NULL && strcmp(stage, r->cancel_on_stage) == 0);
}

static int
hr_event(void *state, council_event *ev)
{
    hist_rec *r = state;
    uint64_t seq = council_event_seq(ev);
    int n = atomic_fetch_add(&r->events, 1);
    char by[32];
    int rc = 0;

    enter(r);
    if (council_event_type_of(ev) == COUNCIL_EV_MEMBER_DELTA ||
        council_event_type_of(ev) == COUNCIL_EV_SYNTHESIS_DELTA)
        atomic_fetch_add(&r->deltas, 1);
    by_name(r, by, sizeof(by));
    if (r->fail_every || seq == r->fail_at_seq) {
        rc = -1;
        if (!r->fail_every || n == 0)
            hist_fault_by(r->h, r->run_id, "rec_error", seq, "none", NULL, by);
    }
    hist_deliver_record(r->h, council_event_run_id(ev), r->id, seq,
                        council_event_type_name(council_event_type_of(ev)), rc);
    if (r->block_ms > 0 && seq == r->block_at_seq) {
        hist_fault_by(r->h, r->run_id, "rec_block", seq, "none", NULL, by);
        usleep((useconds_t)r->block_ms * 1000);
    }
    if (r->cancel_fired == 0 && wants_cancel(r, ev)) {
        council_run *run;
        int64_t t0 = hist_now_us();
        r->cancel_fired = 1;
        hist_fault_by(r->h, r->run_id, "cancel", seq,
                      r->cancel_expect != NULL ? r->cancel_expect : "cancelled",
                      NULL, by);
        /* The event may come before the test's thread has the handle
         * that the start returned. */
        while ((run = atomic_load(&r->run)) == NULL &&
               hist_now_us() - t0 < 10000000)
            usleep(1000);
        if (run != NULL)
            council_run_cancel(run);
    }
    leave(r);
    return rc;
}

static void
hr_final(void *state, const council_outcome *o)
{
    hist_rec *r = state;
    const char *reason = council_outcome_reason(o);

    enter(r);
    r->final_kind = council_outcome_kind_of(o);
    snprintf(r->final_reason, sizeof(r->final_reason), "%s",
             reason != NULL ? reason : "");
    hist_finalize_record(r->h, r->run_id, r->id,
                         council_outcome_kind_name(r->final_kind), reason);
    r->final_us = hist_now_us();
    atomic_fetch_add(&r->finals, 1);
    leave(r);
}

const council_recorder_ops hist_rec_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                           hr_init, hr_event, hr_final, NULL};

/* ---- starting runs
 * ------------------------------------------------------------ */

council_err
hist_run_with(hist *h, const council_run_opts *opts,
              council_err (*fn)(void *ud, council_run **out,
                                council_diag *diag),
              void *ud, council_run **out, council_diag *diag)
{
    unsigned tag = hist_start(h, opts != NULL ? opts->run_id : NULL);
    council_run *run = NULL;
    const char *id = NULL;
    council_err rc;
    size_t i, n = opts != NULL ? opts->n_recorders : 0;

    rc = fn(ud, out != NULL ? &run : NULL, diag);
    if (run != NULL)
        id = council_run_id(run);
    else if (opts != NULL && opts->run_id != NULL)
        id = opts->run_id;
    for (i = 0; i < n && id == NULL; i++) {
        hist_rec *r = opts->recorders[i].args;
        if (opts->recorders[i].ops == &hist_rec_ops &&
            atomic_load(&r->inits) > 0)
            id = r->run_id;
    }
    hist_start_ack(h, tag, id, rc);
    for (i = 0; i < n && run != NULL; i++)
        if (opts->recorders[i].ops == &hist_rec_ops)
            atomic_store(&((hist_rec *)opts->recorders[i].args)->run, run);
    if (out != NULL)
        *out = run;
    return rc;
}

typedef struct start_args {
    council_engine *eng;
    const council_def *def;
    const char *question;
    const council__script *script;
    const council_run_opts *opts;
} start_args;

static council_err
start_def(void *ud, council_run **out, council_diag *diag)
{
    start_args *a = ud;

    return council_run_start(a->eng, a->def, a->question, a->opts, out, diag);
}

static council_err
start_script(void *ud, council_run **out, council_diag *diag)
{
    start_args *a = ud;

    return council__run_start_script(a->eng, a->script, a->opts, out, diag);
}

council_err
hist_run(hist *h, council_engine *eng, const council_def *def,
         const char *question, const council_run_opts *opts, council_run **out,
         council_diag *diag)
{
    start_args a = {eng, def, question, NULL, opts};

    return hist_run_with(h, opts, start_def, &a, out, diag);
}

council_err
hist_run_script(hist *h, council_engine *eng, const struct council__script *s,
                const council_run_opts *opts, council_run **out,
                council_diag *diag)
{
    start_args a = {eng, NULL, NULL, s, opts};

    return hist_run_with(h, opts, start_script, &a, out, diag);
}

const council_outcome *
hist_wait(hist *h, council_run *run, uint64_t timeout_ms)
{
    const council_outcome *o = NULL;

    if (council_run_wait(run, timeout_ms, &o) != COUNCIL_OK || o == NULL)
        return NULL;
    hist_outcome(h, council_run_id(run), o);
    return o;
}

void
hist_assert_clean(hist *h)
{
    char *report = NULL;
    size_t n = hist_check_file(hist_path(h), NULL, &report);

    if (n > 0)
        FAIL("history %s: %zu violation(s):\n%s", hist_path(h), n,
             report != NULL ? report : "");
    free(report);
}

/* ---- a store's record as a recorder's view ------------------------------ */

typedef struct store_view {
    hist *h;
    const char *run_id;
    int rec, emit;
    size_t n;
} store_view;

static int
store_event(council_event *ev, void *ud)
{
    store_view *v = ud;

    if (v->emit)
        hist_emit(v->h, ev);
    hist_deliver_record(v->h, v->run_id, v->rec, council_event_seq(ev),
                        council_event_type_name(council_event_type_of(ev)), 0);
    v->n++;
    return 0;
}

int
hist_store_rec(hist *h, const char *run_id)
{
    int rec = hist_next_rec_id(h);

    hist_init_record(h, run_id, rec, 1, NULL);
    return rec;
}

size_t
hist_store(hist *h, const char *path, const char *run_id, int rec, int emit)
{
    store_view v = {h, run_id, rec, emit, 0};
    council_store *s = NULL;
    council_diag d;
    char *text = NULL;
    json_t *j;
    const char *kind, *reason;

    memset(&d, 0, sizeof(d));
    if (council_store_open(path, 0, &s, &d) != COUNCIL_OK)
        FAIL("%s: %s", path, d.msg);
    if (council_store_events(s, run_id, 0, store_event, &v, &d) != COUNCIL_OK)
        FAIL("%s: events of %s: %s", path, run_id, d.msg);
    if (council_store_run(s, run_id, &text, &d) != COUNCIL_OK)
        FAIL("%s: run %s: %s", path, run_id, d.msg);
    council_store_close(s);
    j = json_loads(text, 0, NULL);
    ASSERT_NOT_NULL(j);
    kind = json_string_value(json_object_get(j, "outcome"));
    reason = json_string_value(json_object_get(j, "reason"));
    hist_finalize_record(h, run_id, rec, kind != NULL ? kind : "running",
                         reason);
    json_decref(j);
    council_free(text);
    return v.n;
}
