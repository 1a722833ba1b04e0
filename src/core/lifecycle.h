/* SPDX-License-Identifier: MIT */
/*
 * The run and its parts, shared by the four files of the engine:
 *   loop.c      the loop threads, the command queue, engine open/close;
 *   lifecycle.c a run's life as one state x input table (below), the
 *               registry of runs in flight, start, cancel, wait;
 *   pubsub.c    a run's subscribers: events and the end queued to their
 *               mailboxes in batches (where a bus plugs in);
 *   rechost.c   the recorder host: a recorder's mailbox callbacks, the
 *               original's RecorderProcess.
 * Nothing outside src/core includes this header.
 */
#ifndef COUNCIL_LIFECYCLE_H
#define COUNCIL_LIFECYCLE_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/engine.h"
#include "core/mailbox.h"
#include "core/run.h"

/* ---- commands (loop.c) ------------------------------------------------ */

enum cmd_kind {
    CMD_START,
    CMD_CANCEL,
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    CMD_SHUTDOWN
};

/* A caller waiting for the loop to complete its command: it spins on
 * done for the engine's budget (core/spin.h), then sleeps on cv. */
struct completion {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int done; /* set under mu */
};

/* Why a run host could not start, as told to the caller. */
#define COUNCIL__START_MSG 256

struct cmd {
    enum cmd_kind kind;
    struct cmd *next;
    council_run *run;
    council_sub *sub;
    const char *run_id;      /* CMD_SUBSCRIBE */
    const char *cancel_kind; /* CMD_CANCEL: "cancelled" or "deadline" */
    struct completion *wait; /* NULL: nobody waits */
    council_err rc;
    char *msg; /* CMD_START: the caller's buffer for why it failed */
    size_t msg_size;
};

void council__completion_init(struct completion *c);
/* Waits for complete() (spinning up to spin_ns first), then destroys c. */
void council__completion_wait(struct completion *c, int64_t spin_ns);
/* Destroys a completion nobody will complete. */
void council__completion_drop(struct completion *c);
void council__complete(struct cmd *c);
/* Queue a command for the loop.  ECLOSED once shutdown was queued. */
council_err council__post(council__loop *lp, struct cmd *c);

/* ---- the run (lifecycle.c) -------------------------------------------- */

/*
 * A run's states (lifecycle.c has the table):
 *   STARTING        registered, recorders initialized, START posted;
 *   STARTING_CANCEL the same, and a cancel came first (from a recorder's
 *                   init, by id): the host is cancelled as it starts;
 *   RUNNING         the host runs;
 *   TERMINAL        its terminal event fixed the outcome; the host has
 *                   not exited yet;
 *   EXITED          the host exited (the outcome is fixed); the run left
 *                   the registry and its host is reaped.
 */
enum run_state {
    R_STARTING,
    R_STARTING_CANCEL,
    R_RUNNING,
    R_TERMINAL,
    R_EXITED
};

typedef struct rec rec;

struct council_run {
    atomic_uint refs;
    council_engine *eng;
    council__loop *lp; /* the loop the run lives on */
    char id[COUNCIL__RUN_ID_MAX + 1];
    council_run *reg_next;

    /* Loop-thread state. */
    enum run_state state;
    uint64_t seq;
    const council__host_ops *hops;
    void *hstate;
    uv_timer_t deadline;
    int deadline_armed;
    uint64_t deadline_ms, seed;
    uint64_t deadline_t0_ns; /* uv_hrtime() when the deadline was armed */
    council_run *reap_next;

    /* Subscribers (pubsub.c), loop thread. */
    council__mbox **subs;
    size_t *posted; /* per subscriber: outbox events queued */
    size_t n_subs, cap_subs;
    council_event **outbox; /* emitted this loop turn, not yet queued */
    size_t ob_len, ob_cap;
    int end_pending;    /* outcome fixed, ends not yet posted */
    int dirty;          /* on the loop's flush list */
    uint64_t oom_since; /* first failed flush (uv_hrtime), or 0 */
    council_run *dirty_next;

    /* Recorders, fixed at start (rechost.c). */
    rec **recs;
    size_t n_recs;

    /* Shared with waiters, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    council_outcome *outcome;
    size_t pending; /* recorders not yet finalized */

    struct cmd cancel_cmd;
    atomic_int cancel_posted;
    atomic_int ended;    /* outcome fixed */
    atomic_int finished; /* outcome fixed and every recorder finalized:
                            set under mu, watched by council_run_wait */
    int64_t spin_ns;     /* the engine's, copied: a run may be waited on
                            after its engine closed */
};

void council__run_ref(council_run *run);
void council__run_unref(council_run *run);
/* The run's part of the loop's commands: START and CANCEL. */
void council__run_on_start(struct cmd *c);
void council__run_on_cancel(council_run *run, const char *kind);
/* SHUTDOWN: every run of lp still in the registry is shut down. */
void council__runs_shutdown(council__loop *lp);
/* Free the hosts of runs that exited (loop thread, after commands). */
void council__runs_reap(council__loop *lp);
/* The process's out-of-memory outcome (error, "internal"): made by
 * council__oom_outcome_init (engine open; ENOMEM if it could not be),
 * never freed, shared by every run that needs it. */
council_err council__oom_outcome_init(void);
const council_outcome *council__oom_outcome(void);
/* An error outcome [{kind, message}], or NULL when memory ran out. */
council_outcome *council__error_outcome(const char *kind, const char *msg);
/* Registry lookup, under reg_mu. */
council_run *council__reg_find(council_engine *eng, const char *id);

/* ---- subscribers (pubsub.c) ------------------------------------------- */

/* Append a stamped event to the run's outbox (takes its reference); it
 * reaches every subscriber at the end of this loop turn.  ENOMEM: nothing
 * was appended and the event is released. */
council_err council__pubsub_publish(council_run *run, council_event *ev);
/* The outcome is fixed: each subscriber's end follows its last event. */
void council__pubsub_end(council_run *run);
/* Queue every dirty run's events (and ends) to its subscribers. */
void council__pubsub_flush(council__loop *lp);
/* The time for the next event of lp (cached clock reads). */
int64_t council__pubsub_event_time(council__loop *lp);
/* Loop-phase hooks that keep event_time honest. */
void council__pubsub_on_prepare(uv_prepare_t *p);
void council__pubsub_on_check(uv_check_t *c);
void council__pubsub_on_retry(uv_timer_t *t);
/* Free what the outbox and subscriber arrays still hold (run_free). */
void council__pubsub_release(council_run *run);
/* Commands SUBSCRIBE and UNSUBSCRIBE, on the loop. */
void council__pubsub_on_subscribe(council_engine *eng, struct cmd *c);
void council__pubsub_on_unsubscribe(council_sub *s);

/* ---- the recorder host (rechost.c) ------------------------------------ */

struct rec {
    council__mbox mb;
    council_run *run;
    const council_recorder_ops *ops;
    void *state;
    uint64_t last_seq;
    int finalized;
    int index;
    /* The failure episode in progress (pool thread): handle_event failed
     * on ep_n events in a row, seqs ep_first to ep_last. */
    uint64_t ep_n, ep_first, ep_last;
};

/* Create run->recs[0..n) with their mailboxes (no init yet).  ENOMEM:
 * those created are kept in run->recs/n_recs for council__recs_drop. */
council_err council__recs_create(council_run *run,
                                 const council_recorder_spec *specs, size_t n);
/* Clauses 1 and 2: init each recorder on this thread.  On a refusal the
 * earlier ones are finalized with an error naming it, diag and why are
 * set, and COUNCIL_EREFUSED returned. */
council_err council__recs_init(council_run *run,
                               const council_recorder_spec *specs,
                               council_diag *diag);
/* Finalize every initialized recorder of a run that never started (the
 * caller's thread: no mailbox was ever posted). */
void council__recs_finalize_unstarted(council_run *run, size_t n,
                                      const char *kind, const char *why);
/* Drop the mailboxes of a run that never started. */
void council__recs_drop(council_run *run);
/* Whether the calling thread runs a callback of this run's recorders or
 * subscribers (council_run_wait would wait on itself). */
int council__is_own_callback(council_run *run);
/* The engine and the index (in the run's recorders) of the recorder
 * whose callback runs on this thread, for recorders that report through
 * the engine's log after their callbacks return (the webhook recorder);
 * NULL and -1 outside a recorder callback. */
council_engine *council__rec_context(int *index);
/* The subscription's run, for is_own_callback. */
int council__sub_is_of(council__mbox *mb, council_run *run);

#endif
