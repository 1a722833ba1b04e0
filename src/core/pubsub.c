/* SPDX-License-Identifier: MIT */
/*
 * Publish/subscribe for a run's events (the topic council:run:<id> of
 * DESIGN 2): the run's subscribers are its recorders' mailboxes, fixed at
 * start, and the subscriptions of council_run_subscribe, added and removed
 * on the loop.  Every subscriber gets every event published after it
 * joined, in seq order, then the end, once.  This is where a bus plugs in:
 * a Redis bus publishes the same stamped events to a run's stream and
 * feeds remote subscribers' mailboxes through these same functions.
 *
 * Method: publishing in batches.  A published event is appended to the
 * run's outbox; at the end of the loop iteration (a uv_prepare handle,
 * before the loop blocks) the outbox is queued to each subscriber in one
 * locked append.  A host that emits many events in one callback thus costs
 * one lock and at most one wake-up per subscriber, not one per event.
 * Only the outbox append can fail (ENOMEM, before a seq is used); if a
 * mailbox cannot grow at flush time, the flush is retried for that
 * subscriber alone (posted[] remembers how far each one got), so an event
 * with a seq is never lost, and the end follows only a complete flush.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/lifecycle.h"

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

static uint64_t
stat_add(atomic_uint_fast64_t *v, uint64_t n)
{
    return atomic_fetch_add_explicit(v, n, memory_order_relaxed) + n;
}

/* ---- the outbox ---------------------------------------------------------- */

static void
mark_dirty(council_run *run)
{
    council__loop *lp = run->lp;

    if (run->dirty)
        return;
    run->dirty = 1;
    council__run_ref(run); /* the flush list's reference */
    run->dirty_next = lp->dirty;
    lp->dirty = run;
}

council_err
council__pubsub_publish(council_run *run, council_event *ev)
{
    if (run->ob_len == run->ob_cap) {
        size_t cap = run->ob_cap != 0 ? run->ob_cap * 2 : 16;
        council_event **ob = council__realloc(run->outbox, cap * sizeof(*ob));
        if (ob == NULL) {
            council_event_unref(ev);
            return COUNCIL_ENOMEM;
        }
        run->outbox = ob;
        run->ob_cap = cap;
    }
    run->outbox[run->ob_len++] = ev; /* the outbox's reference */
    mark_dirty(run);
    atomic_store_explicit(
        &run->lp->published,
        atomic_load_explicit(&run->lp->published, memory_order_relaxed) + 1,
        memory_order_relaxed);
    return COUNCIL_OK;
}

void
council__pubsub_end(council_run *run)
{
    run->end_pending = 1;
    mark_dirty(run);
}

void
council__pubsub_release(council_run *run)
{
    size_t i;

    for (i = 0; i < run->ob_len; i++)
        council_event_unref(run->outbox[i]);
    council__free(run->outbox);
    council__free(run->posted);
    council__free(run->subs);
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

void
council__pubsub_on_retry(uv_timer_t *t)
{
    (void)t; /* waking the loop is enough: the prepare handle flushes */
}

void
council__pubsub_flush(council__loop *lp)
{
    council_run *run = lp->dirty, *keep = NULL;

    lp->dirty = NULL;
    while (run != NULL) {
        council_run *next = run->dirty_next;
        if (flush_run(run)) {
            run->dirty = 0;
            council__run_unref(run);
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
        uv_timer_start(&lp->retry, council__pubsub_on_retry, 1, 0);
}

void
council__pubsub_on_prepare(uv_prepare_t *p)
{
    council__loop *lp = p->data;

    council__pubsub_flush(lp);
    lp->ts_left = 0; /* the loop may block now: read the clock afresh */
}

void
council__pubsub_on_check(uv_check_t *c)
{
    council__loop *lp = c->data;

    lp->ts_left = 0; /* the loop woke up: read the clock afresh */
}

/* Event time: the clock is read at most once every TS_EVERY events within
 * one phase of a loop iteration, so a burst of events emitted by one
 * callback costs one clock read per TS_EVERY, and every event's time is
 * within a few microseconds of the truth.  Never decreases. */
#define TS_EVERY 32

int64_t
council__pubsub_event_time(council__loop *lp)
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

/* ---- subscriptions: the mailbox side ---------------------------------- */

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
        council__run_unref(s->run);
    council__free(s);
}

static const council__mbox_ops sub_ops = {sub_deliver, NULL, sub_end,
                                          sub_release};

int
council__sub_is_of(council__mbox *mb, council_run *run)
{
    return mb->ops == &sub_ops && ((council_sub *)mb->owner)->run == run;
}

/* ---- subscriptions: the loop side -------------------------------------- */

void
council__pubsub_on_subscribe(council_engine *eng, struct cmd *c)
{
    council_run *run;
    council__mbox **subs;

    pthread_mutex_lock(&eng->reg_mu);
    run = council__reg_find(eng, c->run_id);
    pthread_mutex_unlock(&eng->reg_mu);
    if (run == NULL || council__run_is_terminal(run)) {
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
    council__run_ref(run);
    council__mbox_ref(&c->sub->mb); /* the run's reference */
    /* From now on: events still in the outbox were emitted before. */
    run->posted[run->n_subs] = run->ob_len;
    run->subs[run->n_subs++] = &c->sub->mb;
    c->rc = COUNCIL_OK;
out:
    council__complete(c);
}

void
council__pubsub_on_unsubscribe(council_sub *s)
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
        council_run *run = council__reg_find(eng, run_id);
        s->lp = run != NULL ? run->lp : NULL;
    }
    pthread_mutex_unlock(&eng->reg_mu);
    if (s->lp == NULL) {
        council__mbox_unref(&s->mb);
        return COUNCIL_ENOTFOUND;
    }
    memset(&c, 0, sizeof(c));
    council__completion_init(&done);
    c.kind = CMD_SUBSCRIBE;
    c.sub = s;
    c.run_id = run_id;
    c.wait = &done;
    rc = council__post(s->lp, &c);
    if (rc == COUNCIL_OK) {
        council__completion_wait(&done, eng->spin_ns);
        rc = c.rc;
    } else {
        council__completion_drop(&done);
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
        if (council__post(s->lp, &s->unsub_cmd) != COUNCIL_OK) {
            /* The engine is closing: the run's end reaches us anyway. */
            council__mbox_unref(&s->mb);
        }
    }
    if (council__mbox_current() != &s->mb)
        council__pool_wait_end(s->mb.pool, &s->mb);
    council__mbox_unref(&s->mb); /* the caller's reference */
}
