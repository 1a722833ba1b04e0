/* SPDX-License-Identifier: MIT */
/*
 * The recorder host: the original's RecorderProcess for one recorder of
 * one run.  Each recorder has a mailbox, drained on the engine's pool, so
 * its callbacks never overlap and a slow one delays only itself.  It is
 * created and its init called on the starting thread, before the run's
 * host exists (subscribe before start); its handle_event sees each event
 * once, in seq order (a seq at or below the last one is a duplicate and is
 * dropped, a jump is a gap: both are counted, never hidden); its
 * handle_finalize is called exactly once, last (the `finalized` flag).
 *
 * Failures are logged by episode, not by event: a recorder that cannot
 * write (a full disk) fails on every event, hundreds a run.  The first
 * failure of an episode is logged as it happens; the rest of the episode
 * is counted and summed up in one line when the recorder records again
 * or the run ends ("run R: recorder N failed on K events (seq A to B)").
 * Every failure is still counted in the engine's stats.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/lifecycle.h"

static uint64_t
stat_add(atomic_uint_fast64_t *v, uint64_t n)
{
    return atomic_fetch_add_explicit(v, n, memory_order_relaxed) + n;
}

/* ---- the mailbox callbacks (pool threads) ----------------------------- */

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
        if (r->ep_n++ == 0) {
            r->ep_first = seq;
            council__log(
                eng,
                "run %s: recorder %d failed on seq %llu (%s): "
                "handle_event returned %d (failures after it in a row are "
                "summed up when it records again or the run ends)",
                r->run->id, r->index, (unsigned long long)seq,
                council_event_type_name(council_event_type_of(ev)), rc);
        }
        r->ep_last = seq;
        return;
    }
    if (r->ep_n > 1)
        council__log(eng,
                     "run %s: recorder %d failed on %llu events (seq %llu to "
                     "%llu), then recorded seq %llu",
                     r->run->id, r->index, (unsigned long long)r->ep_n,
                     (unsigned long long)r->ep_first,
                     (unsigned long long)r->ep_last, (unsigned long long)seq);
    r->ep_n = 0;
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
    if (run->pending == 0 && run->outcome != NULL) {
        atomic_store_explicit(&run->finished, 1, memory_order_release);
        pthread_cond_broadcast(&run->cv);
    }
    pthread_mutex_unlock(&run->mu);
}

static void
rec_end(council__mbox *mb, const council_outcome *o)
{
    rec *r = mb->owner;

    if (r->finalized)
        return;
    r->finalized = 1;
    if (r->ep_n > 1)
        council__log(r->run->eng,
                     "run %s: recorder %d failed on %llu events (seq %llu to "
                     "%llu)",
                     r->run->id, r->index, (unsigned long long)r->ep_n,
                     (unsigned long long)r->ep_first,
                     (unsigned long long)r->ep_last);
    r->ops->handle_finalize(r->state, o);
    r->state = NULL;
    run_recorder_finalized(r->run);
}

static void
rec_release(council__mbox *mb)
{
    rec *r = mb->owner;

    council__run_unref(r->run);
    council__free(r);
}

static const council__mbox_ops rec_ops = {rec_deliver, rec_flush, rec_end,
                                          rec_release};

/* The recorder whose init (or unstarted finalize) this thread is calling:
 * those calls run on the starting thread, outside any mailbox. */
static _Thread_local council_engine *init_eng;
static _Thread_local int init_index;

council_engine *
council__rec_context(int *index)
{
    council__mbox *mb;

    if (init_eng != NULL) {
        *index = init_index;
        return init_eng;
    }
    mb = council__mbox_current();
    if (mb != NULL && mb->ops == &rec_ops) {
        *index = ((rec *)mb->owner)->index;
        return ((rec *)mb->owner)->run->eng;
    }
    *index = -1;
    return NULL;
}

/* ---- creation and init (the starting thread) --------------------------- */

council_err
council__recs_create(council_run *run, const council_recorder_spec *specs,
                     size_t n)
{
    council_engine *eng = run->eng;
    size_t i;

    if (n == 0)
        return COUNCIL_OK;
    run->recs = council__calloc(n, sizeof(*run->recs));
    run->subs = council__calloc(n, sizeof(*run->subs));
    run->posted = council__calloc(n, sizeof(*run->posted));
    if (run->recs == NULL || run->subs == NULL || run->posted == NULL)
        return COUNCIL_ENOMEM;
    run->cap_subs = n;
    for (i = 0; i < n; i++) {
        rec *r = council__calloc(1, sizeof(*r));
        if (r == NULL)
            return COUNCIL_ENOMEM;
        r->run = run;
        r->ops = specs[i].ops;
        r->index = (int)i;
        if (council__mbox_init(&r->mb, eng->pool, &rec_ops, r) != COUNCIL_OK) {
            council__free(r);
            return COUNCIL_ENOMEM;
        }
        r->mb.delivered = &eng->st_deliveries;
        council__run_ref(run); /* the recorder's reference */
        run->recs[i] = r;
        run->n_recs++;
    }
    return COUNCIL_OK;
}

void
council__recs_finalize_unstarted(council_run *run, size_t n, const char *kind,
                                 const char *why)
{
    council_outcome *o = council__error_outcome(kind, why);
    const council_outcome *use = o != NULL ? o : council__oom_outcome();
    size_t i;

    for (i = 0; i < n; i++) {
        rec *r = run->recs[i];
        r->finalized = 1;
        init_eng = run->eng;
        init_index = r->index;
        r->ops->handle_finalize(r->state, use);
        init_eng = NULL;
        r->state = NULL;
    }
    council__outcome_free(o);
}

council_err
council__recs_init(council_run *run, const council_recorder_spec *specs,
                   council_diag *diag)
{
    size_t i;
    char why[256];

    for (i = 0; i < run->n_recs; i++) {
        rec *r = run->recs[i];
        int refused;

        why[0] = '\0';
        init_eng = run->eng;
        init_index = r->index;
        refused =
            r->ops->init(run->id, specs[i].args, &r->state, why, sizeof(why));
        init_eng = NULL;
        if (refused != 0) {
            char msg[300];
            why[sizeof(why) - 1] = '\0';
            snprintf(msg, sizeof(msg), "recorder %zu refused: %s", i,
                     why[0] != '\0' ? why : "(no reason given)");
            if (diag != NULL) {
                memset(diag, 0, sizeof(*diag));
                snprintf(diag->msg, sizeof(diag->msg), "%.255s", msg);
            }
            council__recs_finalize_unstarted(run, i, "refused", msg);
            return COUNCIL_EREFUSED;
        }
    }
    /* Every recorder is subscribed before the host exists. */
    run->pending = run->n_recs;
    for (i = 0; i < run->n_recs; i++)
        run->subs[i] = &run->recs[i]->mb; /* the run's mailbox reference */
    run->n_subs = run->n_recs;
    return COUNCIL_OK;
}

void
council__recs_drop(council_run *run)
{
    size_t i;

    for (i = 0; i < run->n_recs; i++)
        council__mbox_unref(&run->recs[i]->mb); /* frees rec, run ref */
    run->n_recs = 0;
    run->n_subs = 0;
}

int
council__is_own_callback(council_run *run)
{
    council__mbox *mb = council__mbox_current();

    if (mb == NULL)
        return 0;
    if (mb->ops == &rec_ops)
        return ((rec *)mb->owner)->run == run;
    return council__sub_is_of(mb, run);
}

council_engine *
council__recorder_engine(void)
{
    council__mbox *mb = council__mbox_current();

    if (mb == NULL || mb->ops != &rec_ops)
        return NULL;
    return ((rec *)mb->owner)->run->eng;
}
