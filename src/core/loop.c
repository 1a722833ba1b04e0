/* SPDX-License-Identifier: MIT */
/*
 * The engine's loops and their commands.  An engine is N libuv loop
 * threads that own every run's state (a run lives on one loop for its
 * whole life), a registry of runs in flight, and the recorder pool.
 *
 * Threads.  Public calls may come from any thread.  They reach a loop by
 * posting a command (a mutex-protected FIFO plus uv_async_send); calls that
 * must report a result (start, subscribe) wait for the loop to complete the
 * command.  User callbacks never run on a loop thread, so such a wait can
 * never be a wait on itself.
 *
 * Loop services (council__loop_service) are per-loop objects other parts
 * create on first use (the provider's HTTP client, the child-process
 * pool); the loop knows them only as a shutdown function, called after
 * every run of the loop has been shut down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/lifecycle.h"
#include "core/spin.h"

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

#ifndef NDEBUG
void
council__assert_fail(const char *expr, const char *file, int line)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "council: %s:%d: invariant broken: %s\n",
                     file, line, expr);

    if (n > 0) {
        ssize_t w = write(
            2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        (void)w;
    }
    abort();
}
#endif

void
council__completion_init(struct completion *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->done, 0);
}

void
council__completion_wait(struct completion *c, int64_t spin_ns)
{
    (void)council__spin_on(&c->done, spin_ns);
    /* Even when the spin saw done, take the lock once: the completer sets
     * done under it, so this waits until it has let go of c. */
    pthread_mutex_lock(&c->mu);
    while (!atomic_load_explicit(&c->done, memory_order_relaxed))
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    council__completion_drop(c);
}

void
council__completion_drop(struct completion *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

void
council__complete(struct cmd *c)
{
    struct completion *w = c->wait;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store_explicit(&w->done, 1, memory_order_release);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

council_err
council__post(council__loop *lp, struct cmd *c)
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
        atomic_store_explicit(&lp->cmd_pending, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lp->cmd_mu);
    if (rc != COUNCIL_OK)
        return rc;
    /* A hot loop (stay_hot) looks at cmd_pending on every turn: no wakeup
     * needed.  The fences pair with go_cold's: either this sees hot = 0
     * and wakes the loop, or the loop, going cold, sees cmd_pending. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&lp->hot, memory_order_relaxed))
        uv_async_send(&lp->wakeup);
    return rc;
}

/* ---- loop services ----------------------------------------------------- */

void *
council__loop_service(council__loop *lp, const council__service_kind *kind)
{
    size_t i;
    void *obj;

    for (i = 0; i < lp->n_services; i++)
        if (lp->services[i].kind == kind)
            return lp->services[i].obj;
    if (lp->shutting_down || lp->n_services == COUNCIL__LOOP_SERVICES_MAX)
        return NULL;
    obj = kind->open(lp);
    if (obj == NULL)
        return NULL;
    lp->services[lp->n_services].kind = kind;
    lp->services[lp->n_services].obj = obj;
    lp->n_services++;
    return obj;
}

/* After the runs: each service stops and closes its handles (their close
 * callbacks run before the loop ends), newest first. */
static void
services_shutdown(council__loop *lp)
{
    while (lp->n_services > 0) {
        lp->n_services--;
        lp->services[lp->n_services].kind->shutdown(
            lp->services[lp->n_services].obj);
    }
}

/* ---- the loop ------------------------------------------------------------ */

static void
do_shutdown(council__loop *lp)
{
    lp->shutting_down = 1;
    council__runs_shutdown(lp);
    services_shutdown(lp);
    council__pubsub_flush(lp);
    council__runs_reap(lp);
}

static void run_commands(council__loop *lp);

/* The loop's hot window (engine.h): while the idle handle is active
 * uv_run polls without sleeping and takes commands on every turn, without
 * the eventfd; it ends once no command came for the engine's spin budget. */
static void
on_hot(uv_idle_t *h)
{
    council__loop *lp = h->data;

    if (atomic_load_explicit(&lp->cmd_pending, memory_order_relaxed)) {
        run_commands(lp);
        return;
    }
    if (council__spin_now_ns() < lp->hot_until) {
        sched_yield(); /* a busy thread sharing this core goes first */
        return;
    }
    /* Going cold: posters must wake the loop from now on (see post). */
    atomic_store_explicit(&lp->hot, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&lp->cmd_pending, memory_order_relaxed)) {
        run_commands(lp); /* posted before it could see hot = 0 */
        return;
    }
    uv_idle_stop(h);
    lp->hot_on = 0;
}

static void
stay_hot(council__loop *lp)
{
    if (lp->eng->spin_ns <= 0 || lp->shutting_down)
        return;
    lp->hot_until = council__spin_now_ns() + lp->eng->spin_ns;
    atomic_store_explicit(&lp->hot, 1, memory_order_relaxed);
    if (!lp->hot_on) {
        uv_idle_start(&lp->hot_idle, on_hot);
        lp->hot_on = 1;
    }
}

static void
on_wakeup(uv_async_t *a)
{
    run_commands(a->data);
}

static void
run_commands(council__loop *lp)
{
    struct cmd *c;
    int shutdown = 0;

    pthread_mutex_lock(&lp->cmd_mu);
    c = lp->cmd_head;
    lp->cmd_head = lp->cmd_tail = NULL;
    atomic_store_explicit(&lp->cmd_pending, 0, memory_order_relaxed);
    pthread_mutex_unlock(&lp->cmd_mu);
    lp->in_commands = 1;
    while (c != NULL) {
        struct cmd *next = c->next;
        switch (c->kind) {
        case CMD_START:
            council__run_on_start(c);
            break;
        case CMD_CANCEL: {
            council_run *run = c->run;
            council__run_on_cancel(run, c->cancel_kind);
            atomic_store(&run->cancel_posted, 0);
            council__run_unref(run); /* the command's reference */
            break;
        }
        case CMD_SUBSCRIBE:
            council__pubsub_on_subscribe(lp->eng, c);
            break;
        case CMD_UNSUBSCRIBE:
            council__pubsub_on_unsubscribe(c->sub);
            break;
        case CMD_SHUTDOWN:
            shutdown = 1;
            do_shutdown(lp);
            council__complete(c);
            break;
        }
        c = next;
    }
    lp->in_commands = 0;
    council__runs_reap(lp);
    /* What the commands made the runs emit goes to their subscribers now,
     * not a loop phase later: a short run's recorders start at once. */
    if (!shutdown) {
        council__pubsub_flush(lp);
        stay_hot(lp);
    }
    if (shutdown) {
        /* Hosts and services are closing their own handles, and their
         * close callbacks must run (they release sockets, processes and
         * memory); close only the engine's handles, so uv_run returns
         * when the last of theirs is closed. */
        uv_close((uv_handle_t *)&lp->wakeup, NULL);
        uv_close((uv_handle_t *)&lp->flusher, NULL);
        uv_close((uv_handle_t *)&lp->retry, NULL);
        uv_close((uv_handle_t *)&lp->waker, NULL);
        uv_close((uv_handle_t *)&lp->hot_idle, NULL);
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
    uv_prepare_start(&lp->flusher, council__pubsub_on_prepare);
    uv_timer_init(&lp->loop, &lp->retry);
    lp->retry.data = lp;
    uv_check_init(&lp->loop, &lp->waker);
    lp->waker.data = lp;
    uv_check_start(&lp->waker, council__pubsub_on_check);
    uv_idle_init(&lp->loop, &lp->hot_idle);
    lp->hot_idle.data = lp;
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
    uv_close((uv_handle_t *)&lp->hot_idle, NULL);
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
            council__completion_init(&done[i]);
            c[i].kind = CMD_SHUTDOWN;
            c[i].wait = &done[i];
            if (council__post(lp, &c[i]) == COUNCIL_OK)
                council__completion_wait(&done[i], 0);
        } else {
            /* No memory for the commands: a command on the stack, one
             * loop at a time, does the same. */
            struct completion d1;
            struct cmd c1;
            memset(&c1, 0, sizeof(c1));
            council__completion_init(&d1);
            c1.kind = CMD_SHUTDOWN;
            c1.wait = &d1;
            if (council__post(lp, &c1) == COUNCIL_OK)
                council__completion_wait(&d1, 0);
        }
        uv_thread_join(&lp->thread);
        uv_loop_close(&lp->loop);
        pthread_mutex_destroy(&lp->cmd_mu);
    }
    council__free(done);
    council__free(c);
}

/* ---- engine ------------------------------------------------------------ */

/* Child-process hosts (src/host): the options of version 2, with their
 * defaults. */
static council_err
engine_host_opts(council_engine *eng, const council_engine_opts *opts)
{
    eng->host_runs_per_child = COUNCIL__HOST_RUNS_DEFAULT;
    eng->host_heartbeat_ms = COUNCIL__HOST_HEARTBEAT_DEFAULT_MS;
    eng->host_spares = 1;
    if (opts == NULL || opts->version < 2)
        return COUNCIL_OK;
    if (opts->host_runs_per_child < 0 || opts->host_spares < -1 ||
        opts->host_spares > 64)
        return COUNCIL_EINVAL;
    if (opts->host_program != NULL) {
        if (opts->host_program[0] == '\0')
            return COUNCIL_EINVAL;
        eng->host_program = council__strdup(opts->host_program);
        if (eng->host_program == NULL)
            return COUNCIL_ENOMEM;
    }
    if (opts->host_runs_per_child > 0)
        eng->host_runs_per_child = opts->host_runs_per_child;
    if (opts->host_heartbeat_ms > 0)
        eng->host_heartbeat_ms = opts->host_heartbeat_ms;
    if (opts->host_spares != 0)
        eng->host_spares = opts->host_spares < 0 ? 0 : opts->host_spares;
    return COUNCIL_OK;
}

/* The spin budget (version 3; core/spin.h), with its default. */
static council_err
engine_spin_opt(council_engine *eng, const council_engine_opts *opts)
{
    int us = COUNCIL__SPIN_DEFAULT_US;

    if (opts != NULL && opts->version >= 3) {
        if (opts->spin_us < -1 || opts->spin_us > 10000)
            return COUNCIL_EINVAL;
        if (opts->spin_us != 0)
            us = opts->spin_us < 0 ? 0 : opts->spin_us;
    }
    eng->spin_ns = (int64_t)us * 1000;
    return COUNCIL_OK;
}

/* The number of loops: the option, else $COUNCIL_LOOP_THREADS, else one
 * per online CPU, at most 4. */
static int
loop_count(int opt)
{
    const char *env;
    long v, n;

    if (opt > 0)
        return opt;
    /* The default can come from the environment, as libuv's thread pool
     * size does (UV_THREADPOOL_SIZE). */
    env = getenv("COUNCIL_LOOP_THREADS");
    v = env != NULL ? strtol(env, NULL, 10) : 0;
    if (v >= 1 && v <= 64)
        return (int)v;
    /* One loop per core, at most 4: the loop thread is what limits runs/s
     * (bench/README.md), and a run never moves between loops, so more
     * loops only spread more runs. */
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

council_err
council_engine_open(const council_engine_opts *opts, council_engine **out)
{
    council_engine *eng;
    council_err rc = COUNCIL_OK;
    int threads = 0, loops, i;

    if (out == NULL)
        return COUNCIL_EINVAL;
    *out = NULL;
    if (opts != NULL &&
        (opts->version < 1 || opts->version > COUNCIL_ENGINE_OPTS_VERSION))
        return COUNCIL_EINVAL;
    if (opts != NULL && (opts->loop_threads < 0 || opts->loop_threads > 64))
        return COUNCIL_EINVAL;
    if (council__oom_outcome_init() != COUNCIL_OK)
        return COUNCIL_ENOMEM;
    eng = council__calloc(1, sizeof(*eng));
    if (eng == NULL)
        return COUNCIL_ENOMEM;
    if (opts != NULL) {
        threads = opts->recorder_threads;
        eng->log = opts->log;
        eng->log_ud = opts->log_ud;
    }
    rc = engine_host_opts(eng, opts);
    if (rc == COUNCIL_OK)
        rc = engine_spin_opt(eng, opts);
    if (rc != COUNCIL_OK)
        goto fail_opts;
    loops = loop_count(opts != NULL ? opts->loop_threads : 0);
    pthread_mutex_init(&eng->reg_mu, NULL);
    eng->loops = council__calloc((size_t)loops, sizeof(*eng->loops));
    if (eng->loops == NULL) {
        rc = COUNCIL_ENOMEM;
        goto fail_loops;
    }
    rc = council__pool_open(threads, eng->spin_ns, &eng->pool);
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
fail_opts:
    council__free(eng->host_program);
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
    /* Then no webhook POST can be queued any more: drain the sender. */
    council__webhook_close(eng);
    council__free(eng->loops);
    pthread_mutex_destroy(&eng->reg_mu);
    council__free(eng->host_program);
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
