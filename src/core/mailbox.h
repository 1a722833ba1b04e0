/* SPDX-License-Identifier: MIT */
/*
 * Mailboxes and the pool that drains them.  A mailbox is the serial inbox
 * of one recorder or subscriber: events in FIFO order, then one end
 * message.  The pool's threads drain ready mailboxes; a mailbox is owned by
 * at most one thread at a time, so its callbacks never overlap (this is
 * the "one process = one mailbox" of the original, DESIGN 2.3).
 *
 * Posting (loop thread) never blocks on a callback: it appends a batch
 * under the mailbox's own lock and, when the mailbox was idle, queues it on
 * the pool.
 * Lock order: mailbox lock, then pool lock; never the reverse.
 */
#ifndef COUNCIL_MAILBOX_H
#define COUNCIL_MAILBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "council.h"

typedef struct council__pool council__pool;
typedef struct council__mbox council__mbox;

/* What a mailbox does with its messages; called on a pool thread, never
 * two at once for one mailbox. */
typedef struct council__mbox_ops {
    void (*deliver)(council__mbox *mb, council_event *ev); /* ev borrowed */
    void (*flush)(council__mbox *mb); /* queue ran empty; may be NULL */
    void (*end)(council__mbox *mb, const council_outcome *outcome);
    /* Last: the mailbox is done with (ops->end returned and every
     * reference is gone).  Frees the owner. */
    void (*release)(council__mbox *mb);
} council__mbox_ops;

struct council__mbox {
    const council__mbox_ops *ops;
    void *owner; /* the recorder host or subscription */
    council__pool *pool;
    pthread_mutex_t mu;
    council_event **in; /* posted, not yet taken */
    size_t in_len, in_cap;
    council_event **out; /* taken by the draining thread */
    size_t out_cap;
    const council_outcome *end_outcome;
    /* Whole ints, not bitfields: they are written by different threads
     * and must not share a memory location. */
    int end_posted;      /* under mu */
    int end_done;        /* under mu; written by the drainer */
    int dirty;           /* drainer only: delivered, not flushed */
    int state;           /* IDLE, QUEUED, RUNNING */
    council__mbox *next; /* pool ready queue link */
    atomic_uint refs;
    atomic_int finished; /* ops->end has returned */
    /* Optional: events delivered are added here once per batch. */
    atomic_uint_fast64_t *delivered;
};

/* spin_ns: how long one idle thread watches for work before it sleeps
 * (core/spin.h); 0 = never. */
council_err council__pool_open(int threads, int64_t spin_ns,
                               council__pool **out);
/* Waits until every mailbox posted an end has delivered it, then stops
 * the threads and frees the pool. */
void council__pool_close(council__pool *pool);
/* Wait until mb's ops->end has returned. Not from mb's own callback. */
void council__pool_wait_end(council__pool *pool, council__mbox *mb);

/* refs = 1 (the poster's). */
council_err council__mbox_init(council__mbox *mb, council__pool *pool,
                               const council__mbox_ops *ops, void *owner);
void council__mbox_ref(council__mbox *mb);
void council__mbox_unref(council__mbox *mb);

/* Post n events in order, adding one reference to each (steal = 0) or
 * taking over the caller's reference to each (steal = 1, on success only).
 * All or nothing: ENOMEM if the queue cannot grow, ECLOSED if the end was
 * already posted; then nothing is queued and no reference taken. */
council_err council__mbox_post_batch(council__mbox *mb,
                                     council_event *const *evs, size_t n,
                                     int steal);
/* Post the end (once; later ones are ignored, returning 0).  outcome is
 * borrowed until ops->end returns; NULL is allowed (unsubscribed).
 * Returns 1 if this call posted it. */
int council__mbox_post_end(council__mbox *mb, const council_outcome *outcome);

/* The mailbox whose callback the calling thread is running, or NULL. */
council__mbox *council__mbox_current(void);

#endif
