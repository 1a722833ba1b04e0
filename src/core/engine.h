/* SPDX-License-Identifier: MIT */
/*
 * The engine's private structure, shared by the engine's files (loop.c,
 * lifecycle.c, pubsub.c, rechost.c) and the parts that run on its loops
 * (hosts, providers).  Everything here except the command queue, the
 * registry and the counters belongs to the loop thread.
 */
#ifndef COUNCIL_ENGINE_H
#define COUNCIL_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "council.h"
#include "core/mailbox.h"

#define COUNCIL__RUN_ID_MAX 64
#define COUNCIL__REG_BUCKETS 1024

struct cmd;
typedef struct council__loop council__loop;

/*
 * A loop service: a per-loop object that some part of the library creates
 * on first use and that lives until the engine closes (the provider's
 * HTTP client, the pool of child-process hosts).  The loop knows it only
 * by this table: the kind is a static object whose address is the key.
 */
typedef struct council__service_kind {
    const char *name;
    /* Create the service on lp's loop; NULL if it cannot be. */
    void *(*open)(council__loop *lp);
    /* The engine is closing and every run of the loop has been shut
     * down: stop, and close every handle (their close callbacks run
     * before the loop ends); then free obj. */
    void (*shutdown)(void *obj);
} council__service_kind;

#define COUNCIL__LOOP_SERVICES_MAX 4

/* Defaults of the engine's child-process host options (council.h). */
#define COUNCIL__HOST_RUNS_DEFAULT 64
#define COUNCIL__HOST_HEARTBEAT_DEFAULT_MS 10000
/* Default of the engine's spin_us option (council.h, core/spin.h). */
#define COUNCIL__SPIN_DEFAULT_US 20

/*
 * One event-loop thread of an engine.  A run lives on one loop for its
 * whole life (chosen round-robin at start), so everything about a run stays
 * single-threaded; loops share only the registry, the counters and the
 * recorder pool.
 */
struct council__loop {
    council_engine *eng;
    uv_loop_t loop;
    uv_async_t wakeup;
    uv_thread_t thread;
    int thread_started;

    /* Commands from other threads (cmd_mu). */
    pthread_mutex_t cmd_mu;
    struct cmd *cmd_head, *cmd_tail;
    int closing;
    atomic_int cmd_pending; /* cmd_head != NULL; written under cmd_mu */
    atomic_int hot;         /* the loop looks at cmd_pending every turn */

    /* Loop thread only. */
    uv_prepare_t flusher; /* queues each iteration's events, in batches */
    uv_timer_t retry;     /* re-flush after an allocation failure */
    uv_check_t waker;     /* marks a new loop phase for event times */
    int64_t ts_cache;     /* last clock reading for event times */
    int ts_left;          /* events that may still use ts_cache */
    council_run *dirty;   /* runs with events or an end to queue */
    /* After a command the loop stays awake for the engine's spin budget
     * (an active idle handle makes uv_run poll without sleeping), so the
     * next command needs no wakeup from sleep (core/spin.h). */
    uv_idle_t hot_idle;
    int64_t hot_until; /* council__spin_now_ns() */
    int hot_on;
    council_run *reap;
    int in_commands; /* on_wakeup is running commands: it reaps after */
    int shutting_down;
    /* Events published by this loop's runs: written by the loop thread
     * alone, so a plain store, not a locked add (a locked add is a full
     * barrier: it waited, per event, for the stores into the event's
     * cache line, cold from the thread that freed it).  Summed by
     * council_engine_stats_get. */
    _Alignas(64) atomic_uint_fast64_t published;
    /* Loop services, in the order they were created. */
    struct {
        const council__service_kind *kind;
        void *obj;
    } services[COUNCIL__LOOP_SERVICES_MAX];
    size_t n_services;
};

struct council_engine {
    council__pool *pool;
    void (*log)(const char *line, void *ud);
    void *log_ud;
    council__loop *loops;
    int n_loops;
    atomic_uint next_loop;

    /* Child-process hosts (src/host): options, fixed at open. */
    char *host_program; /* NULL: $COUNCIL_HOST_PROGRAM, else installed */
    int host_runs_per_child;
    uint64_t host_heartbeat_ms;
    int host_spares;
    /* How long a waiting thread spins before it sleeps (core/spin.h). */
    int64_t spin_ns;
    /* The webhook recorders' sender (src/recorder/webhook.c), started by
     * the first webhook recorder's init; NULL until then. */
    struct council__webhook_sender *webhook;

    /* Runs in flight by id (reg_mu); each entry holds a reference. */
    pthread_mutex_t reg_mu;
    council_run *reg[COUNCIL__REG_BUCKETS];
    size_t n_runs;

    /* Counters.  The loop threads' and the pool's are on separate cache
     * lines: sharing one costs a line transfer per event. */
    _Alignas(64) atomic_uint_fast64_t st_started, st_active,
        st_dropped, st_lost;
    _Alignas(64) atomic_uint_fast64_t st_deliveries;
    atomic_uint_fast64_t st_rec_failures, st_duplicates, st_gaps,
        st_after_final;
};

/* The loop a run lives on. */
council__loop *council__run_lp(council_run *run);

/* The service of this kind on lp, created on first use (loop thread).
 * NULL if it could not be created, or the loop is shutting down. */
void *council__loop_service(council__loop *lp,
                            const council__service_kind *kind);

/* Engine close, once every recorder was finalized: give the webhook
 * POSTs still queued their drain time, report what is abandoned, stop the
 * sender (src/recorder/webhook.c).  Nothing to do if none was started. */
void council__webhook_close(council_engine *eng);

#endif
