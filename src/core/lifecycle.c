/* SPDX-License-Identifier: MIT */
/*
 * A run's life: the run contract of DESIGN 2 (kept from
 * reference/recorder_process.ex) as one state x input table.
 *
 * Method.  A run has one state field (enum run_state, lifecycle.h).  Every
 * input that can change it has one function here, which switches on the
 * state with every cell written; the transitions happen only in those
 * functions.  The inputs come from three places: commands posted by other
 * threads (start, cancel, shutdown), the run's host through the seam of
 * core/run.h (emit, terminal, exit), and the run's deadline timer.
 *
 *               start      emit       terminal   exit       cancel     shutdown
 *   STARTING    host start bail       bail       bail       ->ST_CANC  crash
 *   ST_CANCEL   host start bail       bail       bail       nop        crash
 *                +cancel
 *   RUNNING     bail       publish    publish,   crash      host       host
 * stop,
 *                                     ->TERMINAL ->EXITED   cancel     crash
 *   TERMINAL    bail       drop       drop       ->EXITED   nop        host
 * stop,
 *                                                                      ->EXITED
 *   EXITED      bail       drop       drop       nop        nop        nop
 *
 * "crash" fixes the outcome crashed(reason) and goes to EXITED; "bail" is
 * a cell that cannot happen: it is logged and handled as the safest
 * neighbour.  The deadline is a cancel of kind "deadline".  Where each
 * clause of the contract lives:
 *   1. subscribe before start: council__run_start_host initializes every
 *      recorder and puts its mailbox on the run's subscriber list before the
 *      START command reaches the loop, so the host cannot emit before they
 *      are subscribed;
 *   2. init may refuse: handled on the caller's thread before anything is
 *      posted; earlier recorders are finalized with an error naming it;
 *   3. seq 1, 2, 3 without gaps: council__run_emit stamps under the loop's
 *      single thread and the outbox reserves room before it uses a seq, so
 *      an event is queued to all subscribers or to none (pubsub.c);
 *   4. finalize exactly once: end_run() is the only place an outcome is
 *      fixed; only the table's transitions call it, once per run; one end
 *      is posted per mailbox (council__mbox_post_end ignores a second); the
 *      recorder host's `finalized` flag drops anything later and counts it;
 *   5. no orphans: a host that fails to start ends the run with an error
 *      naming the cause; the host is watched from the moment it starts (the
 *      terminal path, council__run_exit, is a direct call);
 *   6. isolation: mailboxes drain on the pool; a failing handle_event is
 *      logged and counted (rechost.c);
 *   7. temporary: nothing restarts a run.
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/lifecycle.h"
#include "core/spin.h"

static uint64_t
stat_add(atomic_uint_fast64_t *v, uint64_t n)
{
    return atomic_fetch_add_explicit(v, n, memory_order_relaxed) + n;
}

static const char *
state_name(enum run_state s)
{
    switch (s) {
    case R_STARTING:
        return "starting";
    case R_STARTING_CANCEL:
        return "starting (cancel asked)";
    case R_RUNNING:
        return "running";
    case R_TERMINAL:
        return "terminal";
    case R_EXITED:
        return "exited";
    }
    return "?";
}

/*
 * The outcome a run ends with when memory ran out for its own: one for the
 * whole process, made by the first council_engine_open and never freed (it
 * is immutable, and a caller may read a run's outcome after the engine
 * closed), so that finalize needs no memory.
 */
static council_outcome *_Atomic oom_outcome;
static pthread_mutex_t oom_mu = PTHREAD_MUTEX_INITIALIZER;

council_err
council__oom_outcome_init(void)
{
    council_err rc = COUNCIL_OK;

    if (atomic_load(&oom_outcome) != NULL)
        return COUNCIL_OK;
    /* Made again by the next open if memory ran out this time. */
    pthread_mutex_lock(&oom_mu);
    if (atomic_load(&oom_outcome) == NULL) {
        council_outcome *o =
            council__error_outcome("internal", "out of memory");
        if (o != NULL)
            atomic_store(&oom_outcome, o);
        else
            rc = COUNCIL_ENOMEM;
    }
    pthread_mutex_unlock(&oom_mu);
    return rc;
}

const council_outcome *
council__oom_outcome(void)
{
    return atomic_load(&oom_outcome);
}

/* A cell that cannot happen: say so; the caller does the safe thing. */
static void
bail(council_run *run, const char *input)
{
    council__log(run->eng, "run %s: %s while %s cannot happen (ignored)",
                 run->id, input, state_name(run->state));
}

/* ---- references and registry ------------------------------------------- */

void
council__run_ref(council_run *run)
{
    atomic_fetch_add_explicit(&run->refs, 1, memory_order_relaxed);
}

static void
run_free(council_run *run)
{
    council__pubsub_release(run);
    if (run->outcome != atomic_load(&oom_outcome))
        council__outcome_free(run->outcome);
    council__free(run->recs);
    pthread_cond_destroy(&run->cv);
    pthread_mutex_destroy(&run->mu);
    council__free(run);
}

void
council__run_unref(council_run *run)
{
    if (atomic_fetch_sub_explicit(&run->refs, 1, memory_order_acq_rel) == 1)
        run_free(run);
}

void
council_run_release(council_run *run)
{
    if (run != NULL)
        council__run_unref(run);
}

static size_t
hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return (size_t)h;
}

council_run *
council__reg_find(council_engine *eng, const char *id)
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
    if (council__reg_find(eng, run->id) != NULL) {
        rc = COUNCIL_EEXIST;
    } else {
        run->reg_next = eng->reg[b];
        eng->reg[b] = run;
        eng->n_runs++;
        council__run_ref(run);
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
        council__run_unref(run);
}

/* ---- transitions ------------------------------------------------------- */

static void
deadline_closed(uv_handle_t *h)
{
    council__run_unref(h->data);
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

council_outcome *
council__error_outcome(const char *kind, const char *msg)
{
    return council__outcome_new(
        COUNCIL_OUTCOME_ERROR, NULL,
        json_pack("[{s:s,s:s}]", "kind", kind, "message", msg), NULL);
}

/* Fix the outcome (takes ownership of o; NULL = out of memory); the end
 * reaches every subscriber after its last event, at the next flush.  The
 * one place an outcome is decided; only the table's cells call it. */
static void
end_run(council_run *run, council_outcome *o)
{
    if (o == NULL)
        o = atomic_load(&oom_outcome);
    pthread_mutex_lock(&run->mu);
    run->outcome = o;
    atomic_store(&run->ended, 1);
    if (run->pending == 0) {
        atomic_store_explicit(&run->finished, 1, memory_order_release);
        pthread_cond_broadcast(&run->cv);
    }
    pthread_mutex_unlock(&run->mu);
    council__pubsub_end(run);
    stop_deadline(run);
    atomic_fetch_sub_explicit(&run->eng->st_active, 1, memory_order_relaxed);
}

static void
crash(council_run *run, const char *reason)
{
    end_run(run, council__outcome_new(COUNCIL_OUTCOME_CRASHED, NULL, NULL,
                                      reason != NULL ? reason : "unknown"));
}

/* The host is gone: leave the registry, free the host on the next turn
 * (never inside its own callback). */
static void
to_exited(council_run *run)
{
    council__loop *lp = run->lp;

    run->state = R_EXITED;
    reg_remove(run->eng, run);
    run->reap_next = lp->reap;
    lp->reap = run;
    /* Inside a command the loop reaps when the commands are done;
     * elsewhere (a host's timer or socket) it needs a turn of its own. */
    if (!lp->in_commands)
        uv_async_send(&lp->wakeup);
}

void
council__runs_reap(council__loop *lp)
{
    while (lp->reap != NULL) {
        council_run *run = lp->reap;
        lp->reap = run->reap_next;
        if (run->hops != NULL && run->hops->free != NULL)
            run->hops->free(run->hstate);
        run->hstate = NULL;
        council__run_unref(run); /* the host's reference */
    }
}

static void deadline_fired(uv_timer_t *t);

static void
arm_deadline(council_run *run)
{
    if (run->deadline_ms == 0)
        return;
    uv_timer_init(&run->lp->loop, &run->deadline);
    run->deadline.data = run;
    council__run_ref(run); /* dropped in deadline_closed */
    run->deadline_armed = 1;
    run->deadline_t0_ns = uv_hrtime();
    uv_timer_start(&run->deadline, deadline_fired, run->deadline_ms, 0);
}

/* ---- input: start ------------------------------------------------------ */

void
council__run_on_start(struct cmd *c)
{
    council_run *run = c->run;
    int cancel_first = 0;
    council_err rc;

    switch (run->state) {
    case R_STARTING_CANCEL:
        cancel_first = 1;
        break;
    case R_STARTING:
        break;
    case R_RUNNING:
    case R_TERMINAL:
    case R_EXITED:
        bail(run, "start");
        c->rc = COUNCIL_EINTERNAL;
        council__complete(c);
        return;
    }
    run->state = R_RUNNING;
    arm_deadline(run);
    rc = run->hops->start(run, run->hstate, c->msg, c->msg_size);
    if (rc != COUNCIL_OK) {
        /* No orphans: the recorders learn why the run never ran. */
        char cause[COUNCIL__START_MSG];
        snprintf(cause, sizeof(cause), "%s", c->msg);
        snprintf(c->msg, c->msg_size, "run host could not start: %.200s",
                 cause[0] != '\0' ? cause : council_strerror(rc));
        switch (run->state) {
        case R_RUNNING:
            end_run(run, council__error_outcome("start", c->msg));
            to_exited(run);
            break;
        case R_TERMINAL:
            to_exited(run);
            break;
        case R_EXITED:
            break;
        case R_STARTING:
        case R_STARTING_CANCEL:
            bail(run, "a failed start");
            break;
        }
        rc = COUNCIL_ESTART;
    } else if (cancel_first) {
        council__run_on_cancel(run, "cancelled");
    }
    c->rc = rc;
    council__complete(c);
}

/* ---- input: emit and terminal (the host's event path) ------------------ */

void (*council__testing_on_emit)(const council_event *ev, void *ud);
void *council__testing_on_emit_ud;

council_err
council__run_emit(council_run *run, council__event_init *init)
{
    council_event *ev;
    int terminal = council__event_is_terminal(init->type);

    switch (run->state) {
    case R_RUNNING:
        break;
    case R_STARTING:
    case R_STARTING_CANCEL:
        bail(run, terminal ? "terminal" : "emit");
        /* dropped, as after the end */
        __attribute__((fallthrough));
    case R_TERMINAL:
    case R_EXITED:
        json_decref(init->data);
        init->data = NULL;
        stat_add(&run->eng->st_dropped, 1);
        return COUNCIL_ECLOSED;
    }
    init->run_id = run->id;
    ev = council__event_new(init);
    init->data = NULL; /* stolen either way */
    if (ev == NULL)
        return COUNCIL_ENOMEM;
    council__event_stamp(ev, run->seq + 1,
                         init->keep_ts ? init->ts_us
                                       : council__pubsub_event_time(run->lp));
    if (council__pubsub_publish(run, ev) != COUNCIL_OK)
        return COUNCIL_ENOMEM; /* no seq used */
    run->seq++;
    if (council__testing_on_emit != NULL)
        council__testing_on_emit(ev, council__testing_on_emit_ud);
    if (terminal) {
        run->state = R_TERMINAL;
        /* The outbox holds a reference to ev until the flush. */
        end_run(run, council__outcome_from_terminal(ev));
    }
    return COUNCIL_OK;
}

/* ---- input: exit (the host's terminal path) ----------------------------- */

void
council__run_exit(council_run *run, const char *reason)
{
    switch (run->state) {
    case R_RUNNING:
        crash(run, reason);
        to_exited(run);
        break;
    case R_TERMINAL:
        to_exited(run);
        break;
    case R_EXITED:
        break;
    case R_STARTING:
    case R_STARTING_CANCEL:
        bail(run, "exit");
        break;
    }
}

/* ---- input: cancel and deadline ---------------------------------------- */

void
council__run_on_cancel(council_run *run, const char *kind)
{
    switch (run->state) {
    case R_STARTING:
        run->state = R_STARTING_CANCEL;
        break;
    case R_RUNNING:
        if (run->hops->cancel != NULL)
            run->hops->cancel(run->hstate, kind);
        break;
    case R_STARTING_CANCEL:
    case R_TERMINAL:
    case R_EXITED:
        break;
    }
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
    council__run_on_cancel(run, "deadline");
}

/* ---- input: shutdown ----------------------------------------------------- */

static void
run_on_shutdown(council_run *run)
{
    switch (run->state) {
    case R_STARTING:
    case R_STARTING_CANCEL:
        /* START is always ahead of SHUTDOWN in the loop's queue. */
        bail(run, "shutdown");
        crash(run, "shutdown");
        to_exited(run);
        break;
    case R_RUNNING:
    case R_TERMINAL:
        if (run->hops->shutdown != NULL)
            run->hops->shutdown(run->hstate);
        /* A host that did not exit by itself is ended here. */
        council__run_exit(run, "shutdown");
        break;
    case R_EXITED:
        break;
    }
}

void
council__runs_shutdown(council__loop *lp)
{
    council_engine *eng = lp->eng;
    size_t b;

    /* Collect first: exiting removes runs from the registry. */
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
            council__run_ref(victim);
        pthread_mutex_unlock(&eng->reg_mu);
        if (victim == NULL)
            break;
        run_on_shutdown(victim);
        council__run_unref(victim);
    }
}

/* ---- accessors ----------------------------------------------------------- */

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

uint64_t
council__run_last_seq(const council_run *run)
{
    return run->seq;
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

council_err
council__run_start_host(council_engine *eng, const council__host_ops *hops,
                        void *hstate, const council_run_opts *opts,
                        council_run **out, council_diag *diag)
{
    return council__run_start_host_on(eng, hops, hstate, opts, -1, out, diag);
}

council_err
council__run_opts_copy(const council_run_opts *in, council_run_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->version = COUNCIL_RUN_OPTS_VERSION;
    if (in == NULL)
        return COUNCIL_OK;
    switch (in->version) {
    case 1:
        memcpy(out, in, offsetof(council_run_opts, isolation));
        break;
    case COUNCIL_RUN_OPTS_VERSION:
        *out = *in;
        break;
    default:
        return COUNCIL_EINVAL;
    }
    out->version = COUNCIL_RUN_OPTS_VERSION;
    return COUNCIL_OK;
}

static council_err
check_args(council_engine *eng, const council__host_ops *hops,
           const council_run_opts *opts, council_diag *diag)
{
    size_t i;

    if (eng == NULL || hops == NULL || hops->start == NULL ||
        (opts != NULL &&
         (opts->version < 1 || opts->version > COUNCIL_RUN_OPTS_VERSION)) ||
        (opts != NULL && opts->n_recorders > 0 && opts->recorders == NULL)) {
        set_diag(diag, "invalid arguments");
        return COUNCIL_EINVAL;
    }
    for (i = 0; opts != NULL && i < opts->n_recorders; i++) {
        const council_recorder_ops *ro = opts->recorders[i].ops;
        if (ro == NULL || ro->version < 1 || ro->init == NULL ||
            ro->handle_event == NULL || ro->handle_finalize == NULL) {
            set_diag(diag, "recorder %zu: incomplete callback table", i);
            return COUNCIL_EINVAL;
        }
    }
    if (opts != NULL && opts->run_id != NULL && !valid_run_id(opts->run_id)) {
        set_diag(diag,
                 "invalid run id (1..%d printable characters, no "
                 "'/', '\\' or spaces)",
                 COUNCIL__RUN_ID_MAX);
        return COUNCIL_EINVAL;
    }
    return COUNCIL_OK;
}

static council_run *
run_new(council_engine *eng, const council__host_ops *hops, void *hstate,
        const council_run_opts *opts, int loop)
{
    council_run *run = council__calloc(1, sizeof(*run));
    pthread_condattr_t ca;

    if (run == NULL)
        return NULL;
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
    run->spin_ns = eng->spin_ns;
    pthread_mutex_init(&run->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&run->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (opts != NULL) {
        run->deadline_ms = opts->deadline_ms;
        run->seed = opts->seed;
    }
    if (opts != NULL && opts->run_id != NULL)
        snprintf(run->id, sizeof(run->id), "%s", opts->run_id);
    else
        council__uuid7(run->id);
    return run;
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
    council_err rc;
    size_t n_rec = opts != NULL ? opts->n_recorders : 0;

    if (out != NULL)
        *out = NULL;
    rc = check_args(eng, hops, opts, diag);
    if (rc != COUNCIL_OK)
        goto fail_host;
    run = run_new(eng, hops, hstate, opts, loop);
    if (run == NULL) {
        rc = COUNCIL_ENOMEM;
        goto fail_host;
    }
    rc = reg_add(eng, run);
    if (rc != COUNCIL_OK) {
        set_diag(diag, "run id %s is already in use", run->id);
        goto fail_run;
    }
    /* Recorders: mailboxes first, so init never needs memory after it
     * succeeded; then clauses 1 and 2, init on this thread before the
     * host exists. */
    rc = council__recs_create(run, n_rec > 0 ? opts->recorders : NULL, n_rec);
    if (rc == COUNCIL_OK)
        rc = council__recs_init(run, n_rec > 0 ? opts->recorders : NULL, diag);
    if (rc != COUNCIL_OK)
        goto fail_reg;

    council__run_ref(run); /* the caller's reference */
    stat_add(&eng->st_active, 1);
    memset(&c, 0, sizeof(c));
    council__completion_init(&done);
    c.kind = CMD_START;
    c.run = run;
    c.wait = &done;
    start_msg[0] = '\0';
    c.msg = start_msg;
    c.msg_size = sizeof(start_msg);
    rc = council__post(run->lp, &c);
    if (rc != COUNCIL_OK) {
        council__completion_drop(&done);
        set_diag(diag, "engine is closing");
        atomic_fetch_sub(&eng->st_active, 1);
        run->n_subs = 0;
        council__recs_finalize_unstarted(run, run->n_recs, "closed",
                                         "engine is closing");
        run->pending = 0;
        council__run_unref(run); /* the caller's */
        goto fail_reg;
    }
    council__completion_wait(&done, eng->spin_ns);
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
    council__recs_drop(run);
    run->hops = NULL;
fail_run:
    if (run != NULL)
        council__run_unref(run); /* the host's reference: frees the run */
fail_host:
    if (hops != NULL && hops->free != NULL)
        hops->free(hstate);
    return rc;
}

/* ---- cancel, wait ------------------------------------------------------ */

static council_err
post_cancel(council_run *run, const char *kind)
{
    int expected = 0;

    if (atomic_load(&run->ended))
        return COUNCIL_OK;
    /* One cancel command in flight per run: it lives inside the run. */
    if (!atomic_compare_exchange_strong(&run->cancel_posted, &expected, 1))
        return COUNCIL_OK;
    memset(&run->cancel_cmd, 0, sizeof(run->cancel_cmd));
    run->cancel_cmd.kind = CMD_CANCEL;
    run->cancel_cmd.run = run;
    run->cancel_cmd.cancel_kind = kind;
    council__run_ref(run);
    if (council__post(run->lp, &run->cancel_cmd) != COUNCIL_OK) {
        atomic_store(&run->cancel_posted, 0);
        council__run_unref(run);
        /* Closing: the run ends as crashed(shutdown) anyway. */
    }
    return COUNCIL_OK;
}

council_err
council_run_cancel(council_run *run)
{
    if (run == NULL)
        return COUNCIL_EINVAL;
    return post_cancel(run, "cancelled");
}

council_err
council__run_cancel_kind(council_run *run, const char *kind)
{
    if (run == NULL || kind == NULL)
        return COUNCIL_EINVAL;
    return post_cancel(run, strcmp(kind, "deadline") == 0 ? "deadline"
                                                          : "cancelled");
}

council_err
council_engine_cancel(council_engine *eng, const char *run_id)
{
    council_run *run;
    council_err rc;

    if (eng == NULL || run_id == NULL)
        return COUNCIL_EINVAL;
    pthread_mutex_lock(&eng->reg_mu);
    run = council__reg_find(eng, run_id);
    /* A run whose outcome is fixed is no longer in flight, even while its
     * host is still winding down. */
    if (run != NULL && atomic_load(&run->ended))
        run = NULL;
    if (run != NULL)
        council__run_ref(run);
    pthread_mutex_unlock(&eng->reg_mu);
    if (run == NULL)
        return COUNCIL_ENOTFOUND;
    rc = council_run_cancel(run);
    council__run_unref(run);
    return rc;
}

council_err
council_run_wait(council_run *run, uint64_t timeout_ms,
                 const council_outcome **outcome)
{
    struct timespec deadline;
    council_err rc = COUNCIL_OK;

    if (run == NULL)
        return COUNCIL_EINVAL;
    if (council__is_own_callback(run))
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
    /* The finalizes of a short run come within microseconds: watch for
     * them before sleeping (core/spin.h).  A timed wait spins no longer
     * than it may wait. */
    {
        int64_t spin = run->spin_ns;
        if (timeout_ms != UINT64_MAX && (int64_t)timeout_ms * 1000000 < spin)
            spin = (int64_t)timeout_ms * 1000000;
        (void)council__spin_on(&run->finished, spin);
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
