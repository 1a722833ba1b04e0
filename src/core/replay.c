/* SPDX-License-Identifier: MIT */
/*
 * council_run_replay: a run host that emits a recorded run's events again,
 * so recorders and subscribers get them through the run contract (init
 * before the first event, every event in order, finalize exactly once)
 * exactly as they got the original.  It is the scripted host's sibling
 * (script_host.c): it reaches the engine only through council__run_emit and
 * council__run_exit, so the engine decides the outcome as for a live run:
 * the terminal event's, or crashed when the record has none.
 *
 * Method (pacing).  Event i is due (sum over j <= i of max(0, ts[j] -
 * ts[j-1])) after the start, by the monotonic clock; a timer on the run's
 * loop fires at the next due time and emits every event that is due, so
 * delays do not add up and no thread sleeps.  Unpaced, every event is due
 * at once and the timer emits them in chunks, so a long record does not
 * hold the loop from other runs.  An emit that fails for memory uses no
 * seq: the same event is tried again a millisecond later, so the replay
 * never has a gap; if memory does not come back within a second, the
 * replay ends there (crashed, "out of memory replaying seq N").
 *
 * Its state is freed only when both the engine has called free (after
 * exit) and the timer's close callback has run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/run.h"
#include "core/replay.h"

/* Events emitted per loop turn when not paced. */
#define CHUNK 256
/* How long an event that cannot be emitted for memory is retried. */
#define GIVE_UP_NS (1000ULL * 1000 * 1000)

typedef struct replay {
    council_run *run;
    council_event **events; /* our references */
    size_t n;
    size_t next;
    int paced;
    uint64_t start_ns;  /* uv_hrtime at start */
    uint64_t oom_since; /* first failed emit of events[next], or 0 */
    int64_t due_us;     /* when events[next] is due, after start */
    uv_timer_t timer;
    int timer_open;
    int freed;
    int exited;
    int cancelled;
} replay;

static void
maybe_free(replay *r)
{
    size_t i;

    if (!r->freed || r->timer_open)
        return;
    for (i = 0; i < r->n; i++)
        council_event_unref(r->events[i]);
    council__free(r->events);
    council__free(r);
}

static void
timer_closed(uv_handle_t *h)
{
    replay *r = h->data;

    r->timer_open = 0;
    maybe_free(r);
}

static void
close_timer(replay *r)
{
    if (r->timer_open && !uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, timer_closed);
}

static void
do_exit(replay *r, const char *reason)
{
    if (r->exited)
        return;
    r->exited = 1;
    close_timer(r);
    council__run_exit(r->run, reason);
}

/* Emit the recorded event ev with its own fields and time. */
static council_err
emit(replay *r, council_event *ev)
{
    council__event_init in;
    json_t *data = council__event_data(ev);

    memset(&in, 0, sizeof(in));
    in.type = council_event_type_of(ev);
    in.stage = council_event_stage(ev);
    in.member = council_event_member(ev);
    in.text = council_event_text(ev);
    in.text_len = council_event_text_len(ev);
    in.round = council_event_round(ev);
    in.ts_us = council_event_time_us(ev);
    in.keep_ts = 1;
    /* A copy, not a reference: the recorded event (and each replay of it)
     * may be in use on other threads, and jansson reads a reference count
     * without an atomic before it changes it. */
    if (data != NULL) {
        unsigned long failures = council__json_alloc_failures();

        in.data = json_deep_copy(data);
        if (in.data == NULL || council__json_alloc_failures() != failures) {
            json_decref(in.data);
            return COUNCIL_ENOMEM;
        }
    }
    return council__run_emit(r->run, &in);
}

/* The gap before events[i], by the recorded times (never negative). */
static int64_t
gap_us(const replay *r, size_t i)
{
    int64_t d;

    if (i == 0)
        return 0;
    d = council_event_time_us(r->events[i]) -
        council_event_time_us(r->events[i - 1]);
    return d > 0 ? d : 0;
}

static void on_timer(uv_timer_t *t);

static void
finish(replay *r)
{
    char why[96];

    if (council__run_is_terminal(r->run)) {
        do_exit(r, "replay ended");
        return;
    }
    snprintf(why, sizeof(why),
             "the record ends without a terminal event (last seq %llu)",
             (unsigned long long)r->n);
    do_exit(r, why);
}

static void
play(replay *r)
{
    int64_t now_us = (int64_t)((uv_hrtime() - r->start_ns) / 1000);
    size_t emitted = 0;

    while (r->next < r->n && !r->exited) {
        if (r->paced && r->due_us > now_us) {
            /* Round up: a timer that fires early would spin. */
            uv_timer_start(&r->timer, on_timer,
                           (uint64_t)(r->due_us - now_us + 999) / 1000, 0);
            return;
        }
        if (!r->paced && emitted == CHUNK) {
            uv_timer_start(&r->timer, on_timer, 0, 0);
            return;
        }
        if (emit(r, r->events[r->next]) == COUNCIL_ENOMEM) {
            char why[96];

            if (r->oom_since == 0)
                r->oom_since = uv_hrtime();
            if (uv_hrtime() - r->oom_since < GIVE_UP_NS) {
                uv_timer_start(&r->timer, on_timer, 1, 0);
                return;
            }
            /* Memory is not coming back: end here rather than skip. */
            snprintf(why, sizeof(why),
                     "out of memory replaying seq %llu for %d s",
                     (unsigned long long)r->next + 1,
                     (int)(GIVE_UP_NS / 1000000000ULL));
            do_exit(r, why);
            return;
        }
        r->oom_since = 0;
        r->next++;
        emitted++;
        if (r->next < r->n)
            r->due_us += gap_us(r, r->next);
    }
    if (!r->exited)
        finish(r);
}

static void
on_timer(uv_timer_t *t)
{
    play(t->data);
}

static council_err
r_start(council_run *run, void *state, char *msg, size_t msg_size)
{
    replay *r = state;

    (void)msg;
    (void)msg_size;
    r->run = run;
    uv_timer_init(council__run_loop(run), &r->timer);
    r->timer.data = r;
    r->timer_open = 1;
    r->start_ns = uv_hrtime();
    /* The first event from the loop's next turn, never inside start. */
    uv_timer_start(&r->timer, on_timer, 0, 0);
    return COUNCIL_OK;
}

static void
r_cancel(void *state, const char *kind)
{
    replay *r = state;
    council__event_init in;

    if (r->exited || r->cancelled)
        return;
    r->cancelled = 1;
    uv_timer_stop(&r->timer);
    memset(&in, 0, sizeof(in));
    in.type = COUNCIL_EV_RUN_FAILED;
    in.data =
        json_pack("{s:[{s:s,s:s}]}", "errors", "kind", kind, "message",
                  strcmp(kind, "deadline") == 0 ? "the replay's deadline passed"
                                                : "the replay was cancelled");
    council__run_emit(r->run, &in);
    do_exit(r, "cancelled");
}

static void
r_shutdown(void *state)
{
    do_exit(state, "shutdown");
}

static void
r_free(void *state)
{
    replay *r = state;

    r->freed = 1;
    close_timer(r);
    maybe_free(r);
}

static const council__host_ops replay_ops = {r_start, r_cancel, r_shutdown,
                                             r_free};

static void set_diag(council_diag *diag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_diag(council_diag *diag, const char *fmt, ...)
{
    va_list ap;

    if (diag == NULL)
        return;
    memset(diag, 0, sizeof(*diag));
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
}

/* The record is one run's events, seq 1..n, terminal only last. */
static council_err
check_record(council_event *const *events, size_t n, council_diag *diag)
{
    const char *id;
    size_t i;

    if (events == NULL || n == 0) {
        set_diag(diag, "no events to replay");
        return COUNCIL_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (events[i] == NULL) {
            set_diag(diag, "event %zu is NULL", i);
            return COUNCIL_EINVAL;
        }
        if (council_event_seq(events[i]) != i + 1) {
            set_diag(diag, "event %zu has seq %llu, not %zu", i,
                     (unsigned long long)council_event_seq(events[i]), i + 1);
            return COUNCIL_EINVAL;
        }
        id = council_event_run_id(events[0]);
        if (strcmp(council_event_run_id(events[i]), id) != 0) {
            set_diag(diag, "event %zu is of run %.64s, not %.64s", i,
                     council_event_run_id(events[i]), id);
            return COUNCIL_EINVAL;
        }
        if (i + 1 < n &&
            council__event_is_terminal(council_event_type_of(events[i]))) {
            set_diag(diag, "event %zu (%s) ends the run before the last", i,
                     council_event_type_name(council_event_type_of(events[i])));
            return COUNCIL_EINVAL;
        }
    }
    return COUNCIL_OK;
}

council_err
council__replay_check(const council_run_opts *opts,
                      council_event *const *events, size_t n, unsigned flags,
                      council_diag *diag)
{
    council_run_opts o;

    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    if ((flags & ~COUNCIL_REPLAY_PACED) != 0 ||
        council__run_opts_copy(opts, &o) != COUNCIL_OK) {
        set_diag(diag, "invalid arguments");
        return COUNCIL_EINVAL;
    }
    return check_record(events, n, diag);
}

council_err
council__replay_start(council_engine *engine, const council_run_opts *opts,
                      council_event *const *events, size_t n, unsigned flags,
                      council_run **out, council_diag *diag)
{
    council_run_opts o;
    replay *r;
    size_t i;

    if (out != NULL)
        *out = NULL;
    if (engine == NULL || council__run_opts_copy(opts, &o) != COUNCIL_OK) {
        set_diag(diag, "invalid arguments");
        return COUNCIL_EINVAL;
    }
    if (o.run_id == NULL)
        o.run_id = council_event_run_id(events[0]);
    r = council__calloc(1, sizeof(*r));
    if (r == NULL ||
        (r->events = council__calloc(n, sizeof(*r->events))) == NULL) {
        council__free(r);
        set_diag(diag, "out of memory");
        return COUNCIL_ENOMEM;
    }
    for (i = 0; i < n; i++)
        r->events[i] = council_event_ref(events[i]);
    r->n = n;
    r->paced = (flags & COUNCIL_REPLAY_PACED) != 0;
    /* On error the engine frees r through r_free. */
    return council__run_start_host(engine, &replay_ops, r, &o, out, diag);
}
