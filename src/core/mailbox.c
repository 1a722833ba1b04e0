/* SPDX-License-Identifier: MIT */
/*
 * The recorder pool: a few threads draining mailboxes.
 *
 * Method.  A mailbox is in one of three states: IDLE (nothing to do),
 * QUEUED (on the pool's ready list) or RUNNING (a thread is draining it).
 * Posting to an IDLE mailbox moves it to QUEUED and appends it to the
 * ready list; posting to a QUEUED or RUNNING one only appends the event,
 * because the thread that owns it will see the event before it lets go.
 * A draining thread swaps the posted array with its own empty one under
 * the lock (one lock per batch, not per event), delivers the batch with no
 * lock held, and repeats; when nothing is left it flushes, delivers the
 * end if one was posted, and goes IDLE.  After a large batch it requeues
 * the mailbox at the tail instead, so one busy recorder cannot starve the
 * others.  Since only the RUNNING owner delivers, callbacks of one mailbox
 * never overlap, and FIFO order plus "end is posted last" gives "end after
 * the last event".
 *
 * Spinning.  One idle thread at a time (p->spinning) watches has_work for
 * the pool's spin budget before it sleeps (core/spin.h), so the mailbox
 * of a short run is drained without waking a thread from sleep.  Queueing
 * onto an empty list while a thread spins needs no signal; anything
 * queued behind it still wakes a sleeper, so a spinner never holds work
 * back from the other threads.
 */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/mailbox.h"
#include "core/spin.h"

enum { IDLE, QUEUED, RUNNING };

/* Events delivered before a busy mailbox yields its thread. */
#define FAIR_BATCH 4096

struct council__pool {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a mailbox was queued, or stopping */
    pthread_cond_t idle;  /* a thread finished a mailbox */
    pthread_cond_t ended; /* an end was delivered */
    council__mbox *head, *tail;
    int running; /* mailboxes being drained now */
    int stopping;
    int spinning;        /* a thread is watching has_work (mu) */
    atomic_int has_work; /* head != NULL or stopping; written under mu */
    int64_t spin_ns;
    int n_threads;
    pthread_t *threads;
};

static _Thread_local council__mbox *current;

council__mbox *
council__mbox_current(void)
{
    return current;
}

/* Called with pool->mu held. */
static void
enqueue(council__pool *p, council__mbox *mb)
{
    int was_empty = p->head == NULL;

    mb->next = NULL;
    if (p->tail != NULL)
        p->tail->next = mb;
    else
        p->head = mb;
    p->tail = mb;
    atomic_store_explicit(&p->has_work, 1, memory_order_release);
    if (!(was_empty && p->spinning))
        pthread_cond_signal(&p->work);
}

/* Called with mb->mu held; moves an IDLE mailbox to the ready list. */
static void
wake(council__mbox *mb)
{
    council__pool *p = mb->pool;

    if (mb->state != IDLE)
        return;
    mb->state = QUEUED;
    council__mbox_ref(mb); /* the pool's reference while queued/running */
    pthread_mutex_lock(&p->mu);
    enqueue(p, mb);
    pthread_mutex_unlock(&p->mu);
}

council_err
council__mbox_init(council__mbox *mb, council__pool *pool,
                   const council__mbox_ops *ops, void *owner)
{
    memset(mb, 0, sizeof(*mb));
    if (pthread_mutex_init(&mb->mu, NULL) != 0)
        return COUNCIL_ENOMEM;
    mb->ops = ops;
    mb->owner = owner;
    mb->pool = pool;
    mb->state = IDLE;
    atomic_init(&mb->refs, 1);
    atomic_init(&mb->finished, 0);
    return COUNCIL_OK;
}

void
council__mbox_ref(council__mbox *mb)
{
    atomic_fetch_add_explicit(&mb->refs, 1, memory_order_relaxed);
}

void
council__mbox_unref(council__mbox *mb)
{
    size_t i;

    if (atomic_fetch_sub_explicit(&mb->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Events posted but never delivered (no end was ever posted) are
     * released here; normally both arrays are empty. */
    for (i = 0; i < mb->in_len; i++)
        council_event_unref(mb->in[i]);
    council__free(mb->in);
    council__free(mb->out);
    pthread_mutex_destroy(&mb->mu);
    mb->ops->release(mb);
}

/* Called with mb->mu held. */
static council_err
grow(council__mbox *mb, size_t need)
{
    size_t cap;
    council_event **q;

    if (mb->in_cap >= need)
        return COUNCIL_OK;
    /* 16 first: a short run's events fit without growing (each step of
     * growth is a realloc on the loop thread). */
    cap = mb->in_cap != 0 ? mb->in_cap : 16; /* grows with the backlog */
    while (cap < need)
        cap *= 2;
    q = council__realloc(mb->in, cap * sizeof(*q));
    if (q == NULL)
        return COUNCIL_ENOMEM;
    mb->in = q;
    mb->in_cap = cap;
    return COUNCIL_OK;
}

council_err
council__mbox_post_batch(council__mbox *mb, council_event *const *evs, size_t n,
                         int steal)
{
    council_err rc = COUNCIL_OK;
    size_t i;

    pthread_mutex_lock(&mb->mu);
    if (mb->end_posted) {
        rc = COUNCIL_ECLOSED;
        goto out;
    }
    rc = grow(mb, mb->in_len + n);
    if (rc != COUNCIL_OK)
        goto out;
    if (steal) {
        memcpy(mb->in + mb->in_len, evs, n * sizeof(*evs));
    } else {
        for (i = 0; i < n; i++) {
            council_event_ref(evs[i]);
            mb->in[mb->in_len + i] = evs[i];
        }
    }
    mb->in_len += n;
    if (n > 0)
        wake(mb);
out:
    pthread_mutex_unlock(&mb->mu);
    return rc;
}

int
council__mbox_post_end(council__mbox *mb, const council_outcome *outcome)
{
    int posted = 0;

    pthread_mutex_lock(&mb->mu);
    if (!mb->end_posted) {
        mb->end_posted = 1;
        mb->end_outcome = outcome;
        posted = 1;
        wake(mb);
    }
    pthread_mutex_unlock(&mb->mu);
    return posted;
}

/*
 * Drain mb on this thread.  Returns 1 if the mailbox must be requeued
 * (fairness), 0 if it went IDLE.
 */
static int
drain(council__mbox *mb)
{
    size_t delivered = 0;

    current = mb;
    pthread_mutex_lock(&mb->mu);
    mb->state = RUNNING;
    for (;;) {
        council_event **batch;
        size_t n, i;

        if (mb->in_len > 0) {
            /* Swap arrays: the poster continues into our empty one. */
            batch = mb->in;
            n = mb->in_len;
            mb->in = mb->out;
            mb->in_cap ^= mb->out_cap;
            mb->out_cap ^= mb->in_cap;
            mb->in_cap ^= mb->out_cap;
            mb->out = batch;
            mb->in_len = 0;
            pthread_mutex_unlock(&mb->mu);
            for (i = 0; i < n; i++) {
                if (!mb->end_done)
                    mb->ops->deliver(mb, batch[i]);
                council_event_unref(batch[i]);
            }
            delivered += n;
            if (mb->delivered != NULL)
                atomic_fetch_add_explicit(mb->delivered, n,
                                          memory_order_relaxed);
            pthread_mutex_lock(&mb->mu);
            mb->dirty = 1;
            if (delivered >= FAIR_BATCH && mb->in_len > 0) {
                mb->state = QUEUED;
                pthread_mutex_unlock(&mb->mu);
                current = NULL;
                return 1;
            }
            continue;
        }
        if (mb->dirty && !mb->end_posted && mb->ops->flush != NULL) {
            mb->dirty = 0;
            pthread_mutex_unlock(&mb->mu);
            mb->ops->flush(mb);
            pthread_mutex_lock(&mb->mu);
            continue; /* more may have arrived meanwhile */
        }
        mb->dirty = 0;
        if (mb->end_posted && !mb->end_done) {
            const council_outcome *o = mb->end_outcome;
            mb->end_done = 1;
            pthread_mutex_unlock(&mb->mu);
            mb->ops->end(mb, o);
            atomic_store_explicit(&mb->finished, 1, memory_order_release);
            pthread_mutex_lock(&mb->pool->mu);
            pthread_cond_broadcast(&mb->pool->ended);
            pthread_mutex_unlock(&mb->pool->mu);
            pthread_mutex_lock(&mb->mu);
            continue;
        }
        mb->state = IDLE;
        pthread_mutex_unlock(&mb->mu);
        current = NULL;
        return 0;
    }
}

static void *
worker(void *arg)
{
    council__pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        council__mbox *mb;
        int spun = 0;

        while (p->head == NULL && !p->stopping) {
            if (!spun && p->spin_ns > 0 && !p->spinning) {
                spun = 1;
                p->spinning = 1;
                pthread_mutex_unlock(&p->mu);
                (void)council__spin_on(&p->has_work, p->spin_ns);
                pthread_mutex_lock(&p->mu);
                p->spinning = 0;
                continue; /* look again under the lock */
            }
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (p->head == NULL)
            break; /* stopping, and nothing left */
        mb = p->head;
        p->head = mb->next;
        if (p->head == NULL) {
            p->tail = NULL;
            if (!p->stopping)
                atomic_store_explicit(&p->has_work, 0, memory_order_relaxed);
        }
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (drain(mb)) {
            pthread_mutex_lock(&p->mu);
            enqueue(p, mb); /* keeps the pool's reference */
            p->running--;
            continue;
        }
        council__mbox_unref(mb); /* the pool's reference */
        pthread_mutex_lock(&p->mu);
        p->running--;
        if (p->running == 0 && p->head == NULL)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

council_err
council__pool_open(int threads, int64_t spin_ns, council__pool **out)
{
    council__pool *p;
    int i;

    *out = NULL;
    if (threads <= 0)
        threads = 4;
    p = council__calloc(1, sizeof(*p));
    if (p == NULL)
        return COUNCIL_ENOMEM;
    p->threads = council__calloc((size_t)threads, sizeof(pthread_t));
    if (p->threads == NULL) {
        council__free(p);
        return COUNCIL_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    pthread_cond_init(&p->ended, NULL);
    p->spin_ns = spin_ns;
    atomic_init(&p->has_work, 0);
    for (i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        council__pool_close(p);
        return COUNCIL_ENOMEM;
    }
    *out = p;
    return COUNCIL_OK;
}

void
council__pool_wait_end(council__pool *p, council__mbox *mb)
{
    /* Pool lock only: the mailbox lock is never taken after the pool's. */
    pthread_mutex_lock(&p->mu);
    while (!atomic_load_explicit(&mb->finished, memory_order_acquire))
        pthread_cond_wait(&p->ended, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void
council__pool_close(council__pool *p)
{
    int i;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    while (p->head != NULL || p->running > 0)
        pthread_cond_wait(&p->idle, &p->mu);
    p->stopping = 1;
    atomic_store_explicit(&p->has_work, 1, memory_order_release);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->ended);
    pthread_mutex_destroy(&p->mu);
    council__free(p->threads);
    council__free(p);
}
