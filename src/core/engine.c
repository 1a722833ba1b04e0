/* SPDX-License-Identifier: MIT */
/*
 * The engine: one libuv loop thread that owns every run's state, a
 * registry of runs in flight, the recorder pool, and the run contract of
 * DESIGN 2 (kept from reference/recorder_process.ex).
 *
 * Threads.  Public calls may come from any thread.  They reach the loop by
 * posting a command (a mutex-protected FIFO plus uv_async_send); calls that
 * must report a result (start, subscribe) wait for the loop to complete the
 * command.  User callbacks never run on the loop thread, so such a wait
 * can never be a wait on itself.
 *
 * The contract, and where each clause lives:
 *   1. subscribe before start: council__run_start_host initializes every
 *      recorder and puts its mailbox on the run's subscriber list before the
 *      START command reaches the loop, so the host cannot emit before they
 *      are subscribed;
 *   2. init may refuse: handled on the caller's thread before anything is
 *      posted; earlier recorders are finalized with an error naming it;
 *   3. seq 1, 2, 3 without gaps: council__run_emit stamps under the loop's
 *      single thread and reserves room in every mailbox before it uses a
 *      seq, so an event is queued to all subscribers or to none;
 *   4. finalize exactly once: end_run() is the only place an outcome is
 *      fixed; it runs once per run (state check) and posts one end per
 *      mailbox (council__mbox_post_end ignores a second); the recorder
 *      host's `finalized` flag drops anything later and counts it;
 *   5. no orphans: a host that fails to start ends the run with an error
 *      naming the cause; the host is watched from the moment it starts (the
 *      terminal path, council__run_exit, is a direct call);
 *   6. isolation: mailboxes drain on the pool; a failing handle_event is
 *      logged and counted;
 *   7. temporary: nothing restarts a run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "core/alloc.h"
#include "core/engine.h"
#include "core/mailbox.h"
#include "core/run.h"

enum cmd_kind {
    CMD_START,
    CMD_CANCEL,
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    CMD_SHUTDOWN
};

struct completion {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

/* Why a run host could not start, as told to the caller. */
#define COUNCIL__START_MSG 256

struct cmd {
    enum cmd_kind kind;
    struct cmd *next;
    council_run *run;
    council_sub *sub;
    const char *run_id;      /* CMD_SUBSCRIBE */
    struct completion *wait; /* NULL: nobody waits */
    council_err rc;
    char *msg; /* CMD_START: the caller's buffer for why it failed */
    size_t msg_size;
};

enum run_state { R_STARTING, R_RUNNING, R_TERMINAL, R_EXITED };

typedef struct rec {
    council__mbox mb;
    council_run *run;
    const council_recorder_ops *ops;
    void *state;
    uint64_t last_seq;
    int finalized;
    int index;
} rec;

struct council_sub {
    council__mbox mb;
    council_engine *eng;
    council__loop *lp; /* the run's loop, for unsubscribe */
    council_run *run;
    void (*on_event)(council_event *, void *);
    void (*on_end)(const council_outcome *, void *);
    void *ud;
    struct cmd unsub_cmd;
    atomic_int unsub_posted;
};

struct council_run {
    atomic_uint refs;
    council_engine *eng;
    council__loop *lp; /* the loop the run lives on */
    char id[COUNCIL__RUN_ID_MAX + 1];
    council_run *reg_next;

    /* Loop-thread state. */
    enum run_state state;
    uint64_t seq;
    council__mbox **subs;
    size_t *posted; /* per subscriber: outbox events queued */
    size_t n_subs, cap_subs;
    council_event **outbox; /* emitted this loop turn, not yet queued */
    size_t ob_len, ob_cap;
    int end_pending;    /* outcome fixed, ends not yet posted */
    int dirty;          /* on the engine's flush list */
    uint64_t oom_since; /* first failed flush (uv_hrtime), or 0 */
    council_run *dirty_next;
    const council__host_ops *hops;
    void *hstate;
    int host_started;
    uv_timer_t deadline;
    int deadline_armed;
    uint64_t deadline_ms, seed;
    uint64_t deadline_t0_ns; /* uv_hrtime() when the deadline was armed */
    council_run *reap_next;

    /* Recorders, fixed at start. */
    rec **recs;
    size_t n_recs;
    council_outcome *oom_outcome; /* preallocated: finalize survives OOM */

    /* Shared with waiters, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    council_outcome *outcome;
    size_t pending; /* recorders not yet finalized */

    struct cmd cancel_cmd;
    atomic_int cancel_posted;
    atomic_int ended; /* outcome fixed */
};

/* ---- small helpers ----------------------------------------------------- */

void
council__log(council_engine *eng, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (eng == NULL || eng->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    eng->log(line, eng->log_ud);
}

static void
completion_init(struct completion *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->done = 0;
}

static void
completion_wait(struct completion *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void
complete(struct cmd *c)
{
    struct completion *w = c->wait;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Queue a command for the loop.  ECLOSED once shutdown was queued. */
static council_err
post(council__loop *lp, struct cmd *c)
{
    council_err rc = COUNCIL_OK;

    c->next = NULL;
    pthread_mutex_lock(&lp->cmd_mu);
    if (lp->closing && c->kind != CMD_SHUTDOWN) {
        rc = COUNCIL_ECLOSED;
    } else {
        if (c->kind == CMD_SHUTDOWN)
            lp->closing = 1;
        if (lp->cmd_tail != NULL)
            lp->cmd_tail->next = c;
        else
            lp->cmd_head = c;
        lp->cmd_tail = c;
    }
    pthread_mutex_unlock(&lp->cmd_mu);
    if (rc == COUNCIL_OK)
        uv_async_send(&lp->wakeup);
    return rc;
}

static uint64_t
stat_add(atomic_uint_fast64_t *v, uint64_t n)
{
    return atomic_fetch_add_explicit(v, n, memory_order_relaxed) + n;
}

/* ---- runs: references and registry ------------------------------------- */

static void
run_ref(council_run *run)
{
    atomic_fetch_add_explicit(&run->refs, 1, memory_order_relaxed);
}

static void
run_free(council_run *run)
{
    size_t i;

    for (i = 0; i < run->ob_len; i++)
        council_event_unref(run->outbox[i]);
    council__free(run->outbox);
    council__free(run->posted);
    council__outcome_free(run->outcome);
    council__outcome_free(run->oom_outcome);
    council__free(run->subs);
    council__free(run->recs);
    pthread_cond_destroy(&run->cv);
    pthread_mutex_destroy(&run->mu);
    council__free(run);
}

static void
run_unref(council_run *run)
{
    if (atomic_fetch_sub_explicit(&run->refs, 1, memory_order_acq_rel) == 1)
        run_free(run);
}

void
council_run_release(council_run *run)
{
    if (run != NULL)
        run_unref(run);
}

static size_t
hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return (size_t)h;
}

/* Called with reg_mu held. */
static council_run *
reg_find(council_engine *eng, const char *id)
{
    council_run *r = eng->reg[hash_id(id) % COUNCIL__REG_BUCKETS];

    while (r != NULL && strcmp(r->id, id) != 0)
        r = r->reg_next;
    return r;
}

/* Reserve run->id; the registry holds a reference. */
static council_err
reg_add(council_engine *eng, council_run *run)
{
    size_t b = hash_id(run->id) % COUNCIL__REG_BUCKETS;
    council_err rc = COUNCIL_OK;

    pthread_mutex_lock(&eng->reg_mu);
    if (reg_find(eng, run->id) != NULL) {
        rc = COUNCIL_EEXIST;
    } else {
        run->reg_next = eng->reg[b];
        eng->reg[b] = run;
        eng->n_runs++;
        run_ref(run);
    }
    pthread_mutex_unlock(&eng->reg_mu);
    return rc;
}

static void
reg_remove(council_engine *eng, council_run *run)
{
    council_run **p = &eng->reg[hash_id(run->id) % COUNCIL__REG_BUCKETS];
    int found = 0;

    pthread_mutex_lock(&eng->reg_mu);
    while (*p != NULL) {
        if (*p == run) {
            *p = run->reg_next;
            eng->n_runs--;
            found = 1;
            break;
        }
        p = &(*p)->reg_next;
    }
    pthread_mutex_unlock(&eng->reg_mu);
    if (found)
        run_unref(run);
}

/* ---- the recorder host ------------------------------------------------- */

static void
rec_deliver(council__mbox *mb, council_event *ev)
{
    rec *r = mb->owner;
    council_engine *eng = r->run->eng;
    uint64_t seq = council_event_seq(ev);
    int rc;

    if (r->finalized) {
        /* Cannot happen (the end is always last), kept as the original's
         * finalized guard: count it, never deliver it. */
        stat_add(&eng->st_after_final, 1);
        return;
    }
    if (seq <= r->last_seq) {
        stat_add(&eng->st_duplicates, 1);
        return;
    }
    if (seq != r->last_seq + 1) {
        stat_add(&eng->st_gaps, 1);
        council__log(eng,
                     "run %s: recorder %d: gap before seq %llu "
                     "(last %llu)",
                     r->run->id, r->index, (unsigned long long)seq,
                     (unsigned long long)r->last_seq);
    }
    r->last_seq = seq;
    rc = r->ops->handle_event(r->state, ev);
    if (rc != 0) {
        stat_add(&eng->st_rec_failures, 1);
        council__log(eng,
                     "run %s: recorder %d failed on seq %llu (%s): "
                     "handle_event returned %d",
                     r->run->id, r->index, (unsigned long long)seq,
                     council_event_type_name(council_event_type_of(ev)), rc);
    }
}

static void
rec_flush(council__mbox *mb)
{
    rec *r = mb->owner;

    if (!r->finalized && r->ops->handle_flush != NULL)
        r->ops->handle_flush(r->state);
}

static void
run_recorder_finalized(council_run *run)
{
    pthread_mutex_lock(&run->mu);
    run->pending--;
    if (run->pending == 0)
        pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

static void
rec_end(council__mbox *mb, const council_outcome *o)
{
    rec *r = mb->owner;

    if (r->finalized)
        return;
    r->finalized = 1;
    r->ops->handle_finalize(r->state, o);
    r->state = NULL;
    run_recorder_finalized(r->run);
}

static void
rec_release(council__mbox *mb)
{
    rec *r = mb->owner;

    run_unref(r->run);
    council__free(r);
}

static const council__mbox_ops rec_ops = {rec_deliver, rec_flush, rec_end,
                                          rec_release};

/* ---- subscriptions ----------------------------------------------------- */

static void
sub_deliver(council__mbox *mb, council_event *ev)
{
    council_sub *s = mb->owner;

    if (s->on_event != NULL)
        s->on_event(ev, s->ud);
}

static void
sub_end(council__mbox *mb, const council_outcome *o)
{
    council_sub *s = mb->owner;

    if (s->on_end != NULL)
        s->on_end(o, s->ud);
}

static void
sub_release(council__mbox *mb)
{
    council_sub *s = mb->owner;

    if (s->run != NULL)
        run_unref(s->run);
    council__free(s);
}

static const council__mbox_ops sub_ops = {sub_deliver, NULL, sub_end,
                                          sub_release};

/* ---- run lifecycle (loop thread) --------------------------------------- */

static void
deadline_closed(uv_handle_t *h)
{
    run_unref(h->data);
}

static void
stop_deadline(council_run *run)
{
    if (!run->deadline_armed)
        return;
    run->deadline_armed = 0;
    uv_timer_stop(&run->deadline);
    uv_close((uv_handle_t *)&run->deadline, deadline_closed);
}

static void mark_dirty(council_run *run);

/* Fix the outcome (takes ownership of o; NULL = out of memory); the end
 * reaches every subscriber after its last event, at the next flush.  The
 * one place an outcome is decided. */
static void
end_run(council_run *run, council_outcome *o)
{
    if (o == NULL) {
        o = run->oom_outcome;
        run->oom_outcome = NULL;
    }
    pthread_mutex_lock(&run->mu);
    run->outcome = o;
    atomic_store(&run->ended, 1);
    if (run->pending == 0)
        pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
    run->end_pending = 1;
    mark_dirty(run);
    stop_deadline(run);
    atomic_fetch_sub_explicit(&run->eng->st_active, 1, memory_order_relaxed);
}

static council_outcome *
error_outcome(const char *kind, const char *msg)
{
    return council__outcome_new(
        COUNCIL_OUTCOME_ERROR, NULL,
        json_pack("[{s:s,s:s}]", "kind", kind, "message", msg), NULL);
}

static void
reap_later(council_run *run)
{
    council__loop *lp = run->lp;

    run->reap_next = lp->reap;
    lp->reap = run;
    uv_async_send(&lp->wakeup);
}

static void
reap(council__loop *lp)
{
    while (lp->reap != NULL) {
        council_run *run = lp->reap;
        lp->reap = run->reap_next;
        if (run->hops != NULL && run->hops->free != NULL)
            run->hops->free(run->hstate);
        run->hstate = NULL;
        run_unref(run); /* the host's reference */
    }
}

/*
 * Method: publishing in batches.  An emitted event is stamped and appended
 * to the run's outbox; at the end of the loop iteration (a uv_prepare
 * handle, before the loop blocks) the outbox is queued to each subscriber
 * in one locked append.  A host that emits many events in one callback
 * thus costs one lock and at most one wake-up per subscriber, not one per
 * event.  Only the outbox append can fail (ENOMEM, before a seq is used);
 * if a mailbox cannot grow at flush time, the flush is retried for that
 * subscriber alone (posted[] remembers how far each one got), so an event
 * with a seq is never lost, and the end follows only a complete flush.
 */
static void
mark_dirty(council_run *run)
{
    council__loop *lp = run->lp;

    if (run->dirty)
        return;
    run->dirty = 1;
    run_ref(run); /* the flush list's reference */
    run->dirty_next = lp->dirty;
    lp->dirty = run;
}

/* Out of memory for longer than this after the run ended: give up on the
 * events that cannot be queued (counted and logged), so that every
 * recorder is still finalized. */
#define GIVE_UP_NS (1000ULL * 1000 * 1000)

/* Returns 1 when everything (events, then the end) has been queued. */
static int
flush_run(council_run *run)
{
    size_t i, n = run->n_subs;
    int complete = 1, clean = 1, stolen = 0;

    /* The outbox owns one reference per event.  In the usual case (no
     * earlier partial flush) the last subscriber takes over those
     * references instead of the outbox adding one and dropping its own. */
    for (i = 0; i < n; i++)
        if (run->posted[i] != 0)
            clean = 0;
    for (i = 0; i < n; i++) {
        size_t from = run->posted[i];
        int steal = clean && complete && i == n - 1;
        council_err rc;
        if (from >= run->ob_len)
            continue;
        rc = council__mbox_post_batch(run->subs[i], run->outbox + from,
                                      run->ob_len - from, steal);
        if (rc == COUNCIL_ENOMEM) {
            complete = 0;
            continue;
        }
        run->posted[i] = run->ob_len;
        if (steal && rc == COUNCIL_OK)
            stolen = 1;
    }
    if (!complete) {
        uint64_t now = uv_hrtime();
        if (run->oom_since == 0)
            run->oom_since = now;
        /* At shutdown there is no later: give up at once. */
        if (!run->end_pending ||
            (now - run->oom_since < GIVE_UP_NS && !run->lp->shutting_down))
            return 0;
        /* The run is over and memory has not come back: each subscriber
         * keeps the gapless prefix it got, the rest is reported lost. */
        for (i = 0; i < n; i++) {
            size_t lost = run->ob_len - run->posted[i];
            if (lost == 0)
                continue;
            stat_add(&run->eng->st_lost, lost);
            council__log(run->eng,
                         "run %s: %zu event(s) could not be queued to "
                         "subscriber %zu: out of memory",
                         run->id, lost, i);
        }
        stolen = 0;
    }
    run->oom_since = 0;
    if (!stolen)
        for (i = 0; i < run->ob_len; i++)
            council_event_unref(run->outbox[i]);
    run->ob_len = 0;
    for (i = 0; i < n; i++)
        run->posted[i] = 0;
    if (run->end_pending) {
        run->end_pending = 0;
        for (i = 0; i < n; i++) {
            council__mbox_post_end(run->subs[i], run->outcome);
            council__mbox_unref(run->subs[i]);
        }
        run->n_subs = 0;
    }
    return 1;
}

static void
on_retry(uv_timer_t *t)
{
    (void)t; /* waking the loop is enough: the prepare handle flushes */
}

static void
flush_all(council__loop *lp)
{
    council_run *run = lp->dirty, *keep = NULL;

    lp->dirty = NULL;
    while (run != NULL) {
        council_run *next = run->dirty_next;
        if (flush_run(run)) {
            run->dirty = 0;
            run_unref(run);
        } else {
            run->dirty_next = keep;
            keep = run;
        }
        run = next;
    }
    lp->dirty = keep;
    /* Out of memory somewhere: come back soon even if nothing else
     * wakes the loop. */
    if (keep != NULL && !uv_is_closing((uv_handle_t *)&lp->retry))
        uv_timer_start(&lp->retry, on_retry, 1, 0);
}

static void
on_prepare(uv_prepare_t *p)
{
    council__loop *lp = p->data;

    flush_all(lp);
    lp->ts_left = 0; /* the loop may block now: read the clock afresh */
}

static void
on_check(uv_check_t *c)
{
    council__loop *lp = c->data;

    lp->ts_left = 0; /* the loop woke up: read the clock afresh */
}

/* Event time: the clock is read at most once every TS_EVERY events within
 * one phase of a loop iteration, so a burst of events emitted by one
 * callback costs one clock read per TS_EVERY, and every event's time is
 * within a few microseconds of the truth.  Never decreases. */
#define TS_EVERY 32

static int64_t
event_time(council__loop *lp)
{
    if (lp->ts_left == 0) {
        int64_t now = council__now_us();
        if (now > lp->ts_cache)
            lp->ts_cache = now;
        lp->ts_left = TS_EVERY;
    }
    lp->ts_left--;
    return lp->ts_cache;
}

void (*council__testing_on_emit)(const council_event *ev, void *ud);
void *council__testing_on_emit_ud;

council_err
council__run_emit(council_run *run, council__event_init *init)
{
    council_engine *eng = run->eng;
    council_event *ev;

    if (run->state == R_TERMINAL || run->state == R_EXITED) {
        json_decref(init->data);
        init->data = NULL;
        stat_add(&eng->st_dropped, 1);
        return COUNCIL_ECLOSED;
    }
    if (run->ob_len == run->ob_cap) {
        size_t cap = run->ob_cap != 0 ? run->ob_cap * 2 : 16;
        council_event **ob = council__realloc(run->outbox, cap * sizeof(*ob));
        if (ob == NULL) {
            json_decref(init->data);
            init->data = NULL;
            return COUNCIL_ENOMEM;
        }
        run->outbox = ob;
        run->ob_cap = cap;
    }
    init->run_id = run->id;
    ev = council__event_new(init);
    init->data = NULL; /* stolen either way */
    if (ev == NULL)
        return COUNCIL_ENOMEM;
    council__event_stamp(ev, ++run->seq,
                         init->keep_ts ? init->ts_us : event_time(run->lp));
    run->outbox[run->ob_len++] = ev; /* the outbox's reference */
    mark_dirty(run);
    if (council__testing_on_emit != NULL)
        council__testing_on_emit(ev, council__testing_on_emit_ud);
    atomic_store_explicit(
        &run->lp->published,
        atomic_load_explicit(&run->lp->published, memory_order_relaxed) + 1,
        memory_order_relaxed);
    if (council__event_is_terminal(init->type)) {
        run->state = R_TERMINAL;
        end_run(run, council__outcome_from_terminal(ev));
    }
    return COUNCIL_OK;
}

void
council__run_exit(council_run *run, const char *reason)
{
    if (run->state == R_EXITED)
        return;
    if (run->state != R_TERMINAL)
        end_run(run, council__outcome_new(COUNCIL_OUTCOME_CRASHED, NULL, NULL,
                                          reason != NULL ? reason : "unknown"));
    run->state = R_EXITED;
    reg_remove(run->eng, run);
    reap_later(run);
}

static void
deadline_fired(uv_timer_t *t)
{
    council_run *run = t->data;
    uint64_t el_ms = (uv_hrtime() - run->deadline_t0_ns) / 1000000u;

    /* The loop's clock counts whole milliseconds, cut down, and is read
     * before the timer is armed: a timer may fire up to a millisecond
     * early.  Then it is armed again for the rest, so a run never ends
     * before its deadline. */
    if (el_ms < run->deadline_ms) {
        uv_timer_start(&run->deadline, deadline_fired, run->deadline_ms - el_ms,
                       0);
        return;
    }
    if (run->state == R_RUNNING && run->hops->cancel != NULL)
        run->hops->cancel(run->hstate, "deadline");
}

static void
do_start(council_engine *eng, struct cmd *c)
{
    council_run *run = c->run;
    council_err rc;

    run->state = R_RUNNING;
    if (run->deadline_ms > 0) {
        uv_timer_init(&run->lp->loop, &run->deadline);
        run->deadline.data = run;
        run_ref(run); /* dropped in deadline_closed */
        run->deadline_armed = 1;
        run->deadline_t0_ns = uv_hrtime();
        uv_timer_start(&run->deadline, deadline_fired, run->deadline_ms, 0);
    }
    run->host_started = 1;
    rc = run->hops->start(run, run->hstate, c->msg, c->msg_size);
    if (rc != COUNCIL_OK) {
        /* No orphans: the recorders learn why the run never ran. */
        char cause[COUNCIL__START_MSG];
        snprintf(cause, sizeof(cause), "%s", c->msg);
        snprintf(c->msg, c->msg_size, "run host could not start: %.200s",
                 cause[0] != '\0' ? cause : council_strerror(rc));
        if (run->state != R_TERMINAL && run->state != R_EXITED)
            end_run(run, error_outcome("start", c->msg));
        if (run->state != R_EXITED) {
            run->state = R_EXITED;
            reg_remove(eng, run);
            reap_later(run);
        }
        rc = COUNCIL_ESTART;
    }
    c->rc = rc;
    complete(c);
}

static void
do_subscribe(council_engine *eng, struct cmd *c)
{
    council_run *run;
    council__mbox **subs;

    pthread_mutex_lock(&eng->reg_mu);
    run = reg_find(eng, c->run_id);
    pthread_mutex_unlock(&eng->reg_mu);
    if (run == NULL || run->state == R_TERMINAL || run->state == R_EXITED) {
        c->rc = COUNCIL_ENOTFOUND;
        goto out;
    }
    if (run->n_subs == run->cap_subs) {
        size_t cap = run->cap_subs != 0 ? run->cap_subs * 2 : 4;
        size_t *posted;
        subs = council__realloc(run->subs, cap * sizeof(*subs));
        if (subs == NULL) {
            c->rc = COUNCIL_ENOMEM;
            goto out;
        }
        run->subs = subs;
        posted = council__realloc(run->posted, cap * sizeof(*posted));
        if (posted == NULL) {
            c->rc = COUNCIL_ENOMEM;
            goto out;
        }
        run->posted = posted;
        run->cap_subs = cap;
    }
    c->sub->run = run;
    run_ref(run);
    council__mbox_ref(&c->sub->mb); /* the run's reference */
    /* From now on: events still in the outbox were emitted before. */
    run->posted[run->n_subs] = run->ob_len;
    run->subs[run->n_subs++] = &c->sub->mb;
    c->rc = COUNCIL_OK;
out:
    complete(c);
}

static void
do_unsubscribe(council_sub *s)
{
    council_run *run = s->run;
    size_t i;

    if (run != NULL) {
        for (i = 0; i < run->n_subs; i++) {
            if (run->subs[i] == &s->mb) {
                memmove(&run->subs[i], &run->subs[i + 1],
                        (run->n_subs - i - 1) * sizeof(run->subs[0]));
                memmove(&run->posted[i], &run->posted[i + 1],
                        (run->n_subs - i - 1) * sizeof(run->posted[0]));
                run->n_subs--;
                council__mbox_unref(&s->mb); /* the run's reference */
                break;
            }
        }
    }
    council__mbox_post_end(&s->mb, NULL);
    council__mbox_unref(&s->mb); /* the command's reference */
}

static void
do_shutdown(council__loop *lp)
{
    council_engine *eng = lp->eng;
    size_t b;

    lp->shutting_down = 1;
    /* Each host stops and exits as crashed("shutdown").  Collect first:
     * exiting removes runs from the registry. */
    for (;;) {
        council_run *victim = NULL;
        pthread_mutex_lock(&eng->reg_mu);
        for (b = 0; b < COUNCIL__REG_BUCKETS && victim == NULL; b++) {
            council_run *r;
            for (r = eng->reg[b]; r != NULL; r = r->reg_next)
                if (r->lp == lp && r->state != R_EXITED) {
                    victim = r;
                    break;
                }
        }
        if (victim != NULL)
            run_ref(victim);
        pthread_mutex_unlock(&eng->reg_mu);
        if (victim == NULL)
            break;
        if (victim->host_started && victim->hops->shutdown != NULL)
            victim->hops->shutdown(victim->hstate);
        /* A host that did not exit by itself is ended here. */
        council__run_exit(victim, "shutdown");
        run_unref(victim);
    }
    /* Hosts have cancelled their calls; the client aborts what is left and
     * closes its handles (their callbacks run before the loop ends). */
    if (lp->http_shutdown != NULL)
        lp->http_shutdown(lp);
    flush_all(lp);
    reap(lp);
}

static void
on_wakeup(uv_async_t *a)
{
    council__loop *lp = a->data;
    council_engine *eng = lp->eng;
    struct cmd *c;
    int shutdown = 0;

    pthread_mutex_lock(&lp->cmd_mu);
    c = lp->cmd_head;
    lp->cmd_head = lp->cmd_tail = NULL;
    pthread_mutex_unlock(&lp->cmd_mu);
    while (c != NULL) {
        struct cmd *next = c->next;
        switch (c->kind) {
        case CMD_START:
            do_start(eng, c);
            break;
        case CMD_CANCEL: {
            council_run *run = c->run;
            if (run->state == R_RUNNING && run->hops->cancel != NULL)
                run->hops->cancel(run->hstate, "cancelled");
            atomic_store(&run->cancel_posted, 0);
            run_unref(run); /* the command's reference */
            break;
        }
        case CMD_SUBSCRIBE:
            do_subscribe(eng, c);
            break;
        case CMD_UNSUBSCRIBE:
            do_unsubscribe(c->sub);
            break;
        case CMD_SHUTDOWN:
            shutdown = 1;
            do_shutdown(lp);
            complete(c);
            break;
        }
        c = next;
    }
    reap(lp);
    if (shutdown) {
        /* Hosts and the HTTP client are closing their own handles, and
         * their close callbacks must run (they release sockets and
         * memory); close only the engine's handles, so uv_run returns when
         * the last of theirs is closed. */
        uv_close((uv_handle_t *)&lp->wakeup, NULL);
        uv_close((uv_handle_t *)&lp->flusher, NULL);
        uv_close((uv_handle_t *)&lp->retry, NULL);
        uv_close((uv_handle_t *)&lp->waker, NULL);
    }
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    council_engine *eng = ((council__loop *)arg)->eng;

    if (!uv_is_closing(h)) {
        council__log(eng, "engine close: a handle (type %s) was still open",
                     uv_handle_type_name(uv_handle_get_type(h)));
        uv_close(h, NULL);
    }
}

static void
loop_main(void *arg)
{
    council__loop *lp = arg;

    uv_run(&lp->loop, UV_RUN_DEFAULT);
    /* Everything closes itself at shutdown; a handle left open would be
     * a bug elsewhere: report it, close it, and finish the loop anyway. */
    uv_walk(&lp->loop, close_walk, lp);
    uv_run(&lp->loop, UV_RUN_DEFAULT);
}

/* ---- engine ------------------------------------------------------------ */

/* Set up one loop (not yet running).  0, or -1 with nothing left open. */
static int
loop_init(council_engine *eng, council__loop *lp)
{
    lp->eng = eng;
    if (uv_loop_init(&lp->loop) != 0)
        return -1;
    if (uv_async_init(&lp->loop, &lp->wakeup, on_wakeup) != 0) {
        uv_loop_close(&lp->loop);
        return -1;
    }
    pthread_mutex_init(&lp->cmd_mu, NULL);
    lp->wakeup.data = lp;
    uv_prepare_init(&lp->loop, &lp->flusher);
    lp->flusher.data = lp;
    uv_prepare_start(&lp->flusher, on_prepare);
    uv_timer_init(&lp->loop, &lp->retry);
    lp->retry.data = lp;
    uv_check_init(&lp->loop, &lp->waker);
    lp->waker.data = lp;
    uv_check_start(&lp->waker, on_check);
    return 0;
}

/* Undo loop_init for a loop whose thread never ran. */
static void
loop_destroy_unstarted(council__loop *lp)
{
    uv_close((uv_handle_t *)&lp->wakeup, NULL);
    uv_close((uv_handle_t *)&lp->flusher, NULL);
    uv_close((uv_handle_t *)&lp->retry, NULL);
    uv_close((uv_handle_t *)&lp->waker, NULL);
    uv_run(&lp->loop, UV_RUN_DEFAULT);
    uv_loop_close(&lp->loop);
    pthread_mutex_destroy(&lp->cmd_mu);
}

/* Shut down loops [0, n) whose threads run: each ends its runs as
 * crashed("shutdown"), closes its handles and returns from uv_run. */
static void
stop_loops(council_engine *eng, int n)
{
    struct completion *done;
    struct cmd *c;
    int i;

    done = council__calloc((size_t)(n > 0 ? n : 1), sizeof(*done));
    c = council__calloc((size_t)(n > 0 ? n : 1), sizeof(*c));
    for (i = 0; i < n; i++) {
        council__loop *lp = &eng->loops[i];
        if (done != NULL && c != NULL) {
            completion_init(&done[i]);
            c[i].kind = CMD_SHUTDOWN;
            c[i].wait = &done[i];
            if (post(lp, &c[i]) == COUNCIL_OK)
                completion_wait(&done[i]);
        } else {
            /* No memory for the commands: a command on the stack, one
             * loop at a time, does the same. */
            struct completion d1;
            struct cmd c1;
            memset(&c1, 0, sizeof(c1));
            completion_init(&d1);
            c1.kind = CMD_SHUTDOWN;
            c1.wait = &d1;
            if (post(lp, &c1) == COUNCIL_OK)
                completion_wait(&d1);
        }
        uv_thread_join(&lp->thread);
        uv_loop_close(&lp->loop);
        pthread_mutex_destroy(&lp->cmd_mu);
    }
    council__free(done);
    council__free(c);
}

council_err
council_engine_open(const council_engine_opts *opts, council_engine **out)
{
    council_engine *eng;
    council_err rc = COUNCIL_OK;
    int threads = 0, loops = 1, i;

    if (out == NULL)
        return COUNCIL_EINVAL;
    *out = NULL;
    if (opts != NULL && opts->version != COUNCIL_ENGINE_OPTS_VERSION)
        return COUNCIL_EINVAL;
    if (opts != NULL && (opts->loop_threads < 0 || opts->loop_threads > 64))
        return COUNCIL_EINVAL;
    eng = council__calloc(1, sizeof(*eng));
    if (eng == NULL)
        return COUNCIL_ENOMEM;
    if (opts != NULL) {
        threads = opts->recorder_threads;
        eng->log = opts->log;
        eng->log_ud = opts->log_ud;
        if (opts->loop_threads > 0)
            loops = opts->loop_threads;
    }
    if (opts == NULL || opts->loop_threads == 0) {
        /* The default can come from the environment, as libuv's thread
         * pool size does (UV_THREADPOOL_SIZE). */
        const char *env = getenv("COUNCIL_LOOP_THREADS");
        long v = env != NULL ? strtol(env, NULL, 10) : 0;
        if (v >= 1 && v <= 64) {
            loops = (int)v;
        } else {
            /* One loop per core, at most 4: the loop thread is what limits
             * runs/s (bench/README.md), and a run never moves between
             * loops, so more loops only spread more runs. */
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            loops = n < 1 ? 1 : n > 4 ? 4 : (int)n;
        }
    }
    pthread_mutex_init(&eng->reg_mu, NULL);
    eng->loops = council__calloc((size_t)loops, sizeof(*eng->loops));
    if (eng->loops == NULL) {
        rc = COUNCIL_ENOMEM;
        goto fail_loops;
    }
    rc = council__pool_open(threads, &eng->pool);
    if (rc != COUNCIL_OK)
        goto fail_pool;
    for (i = 0; i < loops; i++) {
        council__loop *lp = &eng->loops[i];
        if (loop_init(eng, lp) != 0) {
            rc = COUNCIL_ENOMEM;
            break;
        }
        if (uv_thread_create(&lp->thread, loop_main, lp) != 0) {
            loop_destroy_unstarted(lp);
            rc = COUNCIL_ENOMEM;
            break;
        }
        eng->n_loops++;
    }
    if (rc != COUNCIL_OK)
        goto fail_threads;
    *out = eng;
    return COUNCIL_OK;

fail_threads:
    stop_loops(eng, eng->n_loops);
    council__pool_close(eng->pool);
fail_pool:
    council__free(eng->loops);
fail_loops:
    pthread_mutex_destroy(&eng->reg_mu);
    council__free(eng);
    return rc;
}

void
council_engine_close(council_engine *eng)
{
    if (eng == NULL)
        return;
    stop_loops(eng, eng->n_loops);
    /* Every run has ended: the pool delivers the last finalizes. */
    council__pool_close(eng->pool);
    council__free(eng->loops);
    pthread_mutex_destroy(&eng->reg_mu);
    council__free(eng);
}

void
council_engine_stats_get(council_engine *eng, council_engine_stats *out)
{
    int i;

    memset(out, 0, sizeof(*out));
    out->runs_started = atomic_load(&eng->st_started);
    out->runs_active = atomic_load(&eng->st_active);
    for (i = 0; i < eng->n_loops; i++)
        out->events_published += atomic_load_explicit(&eng->loops[i].published,
                                                      memory_order_relaxed);
    out->deliveries = atomic_load(&eng->st_deliveries);
    out->recorder_failures = atomic_load(&eng->st_rec_failures);
    out->events_dropped = atomic_load(&eng->st_dropped);
    out->events_lost = atomic_load(&eng->st_lost);
}

uv_loop_t *
council__run_loop(council_run *run)
{
    return &run->lp->loop;
}

council__loop *
council__run_lp(council_run *run)
{
    return run->lp;
}

council_engine *
council__run_engine(council_run *run)
{
    return run->eng;
}

const char *
council__run_id_of(const council_run *run)
{
    return run->id;
}

const char *
council_run_id(const council_run *run)
{
    return run->id;
}

uint64_t
council__run_deadline_ms(const council_run *run)
{
    return run->deadline_ms;
}

uint64_t
council__run_seed(const council_run *run)
{
    return run->seed;
}

int
council__run_is_terminal(const council_run *run)
{
    return run->state == R_TERMINAL || run->state == R_EXITED;
}

/* ---- starting a run (any thread) --------------------------------------- */

static int
valid_run_id(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)id[n];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '\\')
            return 0;
        if (n >= COUNCIL__RUN_ID_MAX)
            return 0;
    }
    return n > 0 && strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
}

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

/* Finalize recorders [0, n) that were initialized but whose run never
 * started; on the caller's thread, since no mailbox was ever posted. */
static void
finalize_unstarted(council_run *run, size_t n, const char *kind,
                   const char *why)
{
    council_outcome *o = error_outcome(kind, why);
    const council_outcome *use = o != NULL ? o : run->oom_outcome;
    size_t i;

    for (i = 0; i < n; i++) {
        rec *r = run->recs[i];
        r->finalized = 1;
        r->ops->handle_finalize(r->state, use);
        r->state = NULL;
    }
    council__outcome_free(o);
}

council_err
council__run_start_host(council_engine *eng, const council__host_ops *hops,
                        void *hstate, const council_run_opts *opts,
                        council_run **out, council_diag *diag)
{
    return council__run_start_host_on(eng, hops, hstate, opts, -1, out, diag);
}

council_err
council__run_start_host_on(council_engine *eng, const council__host_ops *hops,
                           void *hstate, const council_run_opts *opts, int loop,
                           council_run **out, council_diag *diag)
{
    council_run *run = NULL;
    struct completion done;
    struct cmd c;
    char start_msg[COUNCIL__START_MSG];
    council_err rc = COUNCIL_OK;
    size_t i, n_inited = 0, n_rec = 0;
    char why[256];

    if (out != NULL)
        *out = NULL;
    if (eng == NULL || hops == NULL || hops->start == NULL ||
        (opts != NULL && opts->version != COUNCIL_RUN_OPTS_VERSION) ||
        (opts != NULL && opts->n_recorders > 0 && opts->recorders == NULL)) {
        set_diag(diag, "invalid arguments");
        rc = COUNCIL_EINVAL;
        goto fail_host;
    }
    if (opts != NULL) {
        n_rec = opts->n_recorders;
        for (i = 0; i < n_rec; i++) {
            const council_recorder_ops *ro = opts->recorders[i].ops;
            if (ro == NULL || ro->version < 1 || ro->init == NULL ||
                ro->handle_event == NULL || ro->handle_finalize == NULL) {
                set_diag(diag, "recorder %zu: incomplete callback table", i);
                rc = COUNCIL_EINVAL;
                goto fail_host;
            }
        }
    }
    if (opts != NULL && opts->run_id != NULL && !valid_run_id(opts->run_id)) {
        set_diag(diag,
                 "invalid run id (1..%d printable characters, no "
                 "'/', '\\' or spaces)",
                 COUNCIL__RUN_ID_MAX);
        rc = COUNCIL_EINVAL;
        goto fail_host;
    }

    run = council__calloc(1, sizeof(*run));
    if (run == NULL) {
        rc = COUNCIL_ENOMEM;
        goto fail_host;
    }
    atomic_init(&run->refs, 1); /* the host's reference */
    run->eng = eng;
    /* Round-robin over the loops, unless the caller chose one; the run
     * stays on this one. */
    if (loop >= 0)
        run->lp = &eng->loops[(unsigned)loop % (unsigned)eng->n_loops];
    else
        run->lp = &eng->loops[atomic_fetch_add(&eng->next_loop, 1) %
                              (unsigned)eng->n_loops];
    run->hops = hops;
    run->hstate = hstate;
    run->state = R_STARTING;
    pthread_mutex_init(&run->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&run->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (opts != NULL) {
        run->deadline_ms = opts->deadline_ms;
        run->seed = opts->seed;
    }
    if (opts != NULL && opts->run_id != NULL)
        snprintf(run->id, sizeof(run->id), "%s", opts->run_id);
    else
        council__uuid7(run->id);
    run->oom_outcome = error_outcome("internal", "out of memory");
    if (run->oom_outcome == NULL) {
        rc = COUNCIL_ENOMEM;
        goto fail_run;
    }
    rc = reg_add(eng, run);
    if (rc != COUNCIL_OK) {
        set_diag(diag, "run id %s is already in use", run->id);
        goto fail_run;
    }

    /* Recorders: mailboxes first, so init never needs memory after it
     * succeeded. */
    if (n_rec > 0) {
        run->recs = council__calloc(n_rec, sizeof(*run->recs));
        run->subs = council__calloc(n_rec, sizeof(*run->subs));
        run->posted = council__calloc(n_rec, sizeof(*run->posted));
        if (run->recs == NULL || run->subs == NULL || run->posted == NULL) {
            rc = COUNCIL_ENOMEM;
            goto fail_reg;
        }
        run->cap_subs = n_rec;
        for (i = 0; i < n_rec; i++) {
            rec *r = council__calloc(1, sizeof(*r));
            if (r == NULL) {
                rc = COUNCIL_ENOMEM;
                goto fail_reg;
            }
            run->recs[i] = r;
            r->run = run;
            r->ops = opts->recorders[i].ops;
            r->index = (int)i;
            if (council__mbox_init(&r->mb, eng->pool, &rec_ops, r) !=
                COUNCIL_OK) {
                council__free(r);
                run->recs[i] = NULL;
                rc = COUNCIL_ENOMEM;
                goto fail_reg;
            }
            r->mb.delivered = &eng->st_deliveries;
            run_ref(run); /* the recorder's reference */
            run->n_recs++;
        }
    }
    /* Clause 1 and 2: init on this thread, before the host exists. */
    for (i = 0; i < n_rec; i++) {
        rec *r = run->recs[i];
        why[0] = '\0';
        if (r->ops->init(run->id, opts->recorders[i].args, &r->state, why,
                         sizeof(why)) != 0) {
            char msg[300];
            why[sizeof(why) - 1] = '\0';
            snprintf(msg, sizeof(msg), "recorder %zu refused: %s", i,
                     why[0] != '\0' ? why : "(no reason given)");
            set_diag(diag, "%s", msg);
            finalize_unstarted(run, n_inited, "refused", msg);
            rc = COUNCIL_EREFUSED;
            goto fail_reg;
        }
        n_inited++;
    }
    run->pending = n_rec;
    for (i = 0; i < n_rec; i++)
        run->subs[i] = &run->recs[i]->mb; /* the run's mailbox reference */
    run->n_subs = n_rec;

    run_ref(run); /* the caller's reference */
    stat_add(&eng->st_active, 1);
    memset(&c, 0, sizeof(c));
    completion_init(&done);
    c.kind = CMD_START;
    c.run = run;
    c.wait = &done;
    start_msg[0] = '\0';
    c.msg = start_msg;
    c.msg_size = sizeof(start_msg);
    rc = post(run->lp, &c);
    if (rc != COUNCIL_OK) {
        pthread_cond_destroy(&done.cv);
        pthread_mutex_destroy(&done.mu);
        set_diag(diag, "engine is closing");
        atomic_fetch_sub(&eng->st_active, 1);
        run->n_subs = 0;
        finalize_unstarted(run, n_inited, "closed", "engine is closing");
        run->pending = 0;
        run_unref(run); /* the caller's */
        goto fail_reg;
    }
    completion_wait(&done);
    stat_add(&eng->st_started, 1);
    if (c.rc != COUNCIL_OK) {
        set_diag(diag, "%s", c.msg);
        council_run_release(run);
        return c.rc;
    }
    if (out != NULL)
        *out = run;
    else
        council_run_release(run);
    return COUNCIL_OK;

fail_reg:
    reg_remove(eng, run);
    for (i = 0; i < run->n_recs; i++)
        council__mbox_unref(&run->recs[i]->mb); /* frees rec, run ref */
    run->n_recs = 0;
    run->hops = NULL;
fail_run:
    if (run != NULL)
        run_unref(run); /* the host's reference: frees the run */
fail_host:
    if (hops != NULL && hops->free != NULL)
        hops->free(hstate);
    return rc;
}

/* ---- cancel, wait ------------------------------------------------------ */

council_err
council_run_cancel(council_run *run)
{
    int expected = 0;

    if (run == NULL)
        return COUNCIL_EINVAL;
    if (atomic_load(&run->ended))
        return COUNCIL_OK;
    /* One cancel command in flight per run: it lives inside the run. */
    if (!atomic_compare_exchange_strong(&run->cancel_posted, &expected, 1))
        return COUNCIL_OK;
    memset(&run->cancel_cmd, 0, sizeof(run->cancel_cmd));
    run->cancel_cmd.kind = CMD_CANCEL;
    run->cancel_cmd.run = run;
    run_ref(run);
    if (post(run->lp, &run->cancel_cmd) != COUNCIL_OK) {
        atomic_store(&run->cancel_posted, 0);
        run_unref(run);
        /* Closing: the run ends as crashed(shutdown) anyway. */
    }
    return COUNCIL_OK;
}

council_err
council_engine_cancel(council_engine *eng, const char *run_id)
{
    council_run *run;
    council_err rc;

    if (eng == NULL || run_id == NULL)
        return COUNCIL_EINVAL;
    pthread_mutex_lock(&eng->reg_mu);
    run = reg_find(eng, run_id);
    /* A run whose outcome is fixed is no longer in flight, even while its
     * host is still winding down. */
    if (run != NULL && atomic_load(&run->ended))
        run = NULL;
    if (run != NULL)
        run_ref(run);
    pthread_mutex_unlock(&eng->reg_mu);
    if (run == NULL)
        return COUNCIL_ENOTFOUND;
    rc = council_run_cancel(run);
    run_unref(run);
    return rc;
}

static int
is_own_callback(council_run *run)
{
    council__mbox *mb = council__mbox_current();

    if (mb == NULL)
        return 0;
    if (mb->ops == &rec_ops)
        return ((rec *)mb->owner)->run == run;
    if (mb->ops == &sub_ops)
        return ((council_sub *)mb->owner)->run == run;
    return 0;
}

council_err
council_run_wait(council_run *run, uint64_t timeout_ms,
                 const council_outcome **outcome)
{
    struct timespec deadline;
    council_err rc = COUNCIL_OK;

    if (run == NULL)
        return COUNCIL_EINVAL;
    if (is_own_callback(run))
        return COUNCIL_EDEADLK;
    if (timeout_ms != UINT64_MAX) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)(timeout_ms / 1000);
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&run->mu);
    while (run->outcome == NULL || run->pending > 0) {
        if (timeout_ms == UINT64_MAX) {
            pthread_cond_wait(&run->cv, &run->mu);
        } else if (pthread_cond_timedwait(&run->cv, &run->mu, &deadline) ==
                   ETIMEDOUT) {
            if (run->outcome == NULL || run->pending > 0)
                rc = COUNCIL_ETIMEDOUT;
            break;
        }
    }
    if (rc == COUNCIL_OK && outcome != NULL)
        *outcome = run->outcome;
    pthread_mutex_unlock(&run->mu);
    return rc;
}

/* ---- subscriptions (any thread) ---------------------------------------- */

council_err
council_run_subscribe(council_engine *eng, const char *run_id,
                      void (*on_event)(council_event *, void *),
                      void (*on_end)(const council_outcome *, void *), void *ud,
                      council_sub **out)
{
    council_sub *s;
    struct completion done;
    struct cmd c;
    council_err rc;

    if (out != NULL)
        *out = NULL;
    if (eng == NULL || run_id == NULL || out == NULL)
        return COUNCIL_EINVAL;
    s = council__calloc(1, sizeof(*s));
    if (s == NULL)
        return COUNCIL_ENOMEM;
    s->eng = eng;
    s->on_event = on_event;
    s->on_end = on_end;
    s->ud = ud;
    if (council__mbox_init(&s->mb, eng->pool, &sub_ops, s) != COUNCIL_OK) {
        council__free(s);
        return COUNCIL_ENOMEM;
    }
    s->mb.delivered = &eng->st_deliveries;
    /* The command goes to the run's loop, which checks again that the run
     * is still in flight. */
    pthread_mutex_lock(&eng->reg_mu);
    {
        council_run *run = reg_find(eng, run_id);
        s->lp = run != NULL ? run->lp : NULL;
    }
    pthread_mutex_unlock(&eng->reg_mu);
    if (s->lp == NULL) {
        council__mbox_unref(&s->mb);
        return COUNCIL_ENOTFOUND;
    }
    memset(&c, 0, sizeof(c));
    completion_init(&done);
    c.kind = CMD_SUBSCRIBE;
    c.sub = s;
    c.run_id = run_id;
    c.wait = &done;
    rc = post(s->lp, &c);
    if (rc == COUNCIL_OK) {
        completion_wait(&done);
        rc = c.rc;
    } else {
        pthread_cond_destroy(&done.cv);
        pthread_mutex_destroy(&done.mu);
    }
    if (rc != COUNCIL_OK) {
        /* Never subscribed: no callback will come. */
        council__mbox_unref(&s->mb);
        return rc;
    }
    *out = s;
    return COUNCIL_OK;
}

void
council_unsubscribe(council_sub *s)
{
    int expected = 0;

    if (s == NULL)
        return;
    /* Already ended (the run's end came first, or the engine closed): no
     * command is needed, and the engine may be gone. */
    if (!atomic_load_explicit(&s->mb.finished, memory_order_acquire) &&
        atomic_compare_exchange_strong(&s->unsub_posted, &expected, 1)) {
        memset(&s->unsub_cmd, 0, sizeof(s->unsub_cmd));
        s->unsub_cmd.kind = CMD_UNSUBSCRIBE;
        s->unsub_cmd.sub = s;
        council__mbox_ref(&s->mb); /* the command's reference */
        if (post(s->lp, &s->unsub_cmd) != COUNCIL_OK) {
            /* The engine is closing: the run's end reaches us anyway. */
            council__mbox_unref(&s->mb);
        }
    }
    if (council__mbox_current() != &s->mb)
        council__pool_wait_end(s->mb.pool, &s->mb);
    council__mbox_unref(&s->mb); /* the caller's reference */
}
