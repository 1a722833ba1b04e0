/* SPDX-License-Identifier: MIT */
/*
 * Runs started by the server: the registry, the server's own recorder,
 * Idempotency-Key handling, the reaper, and the /v1/runs handlers.
 *
 * Every run the server starts gets, besides the SQLite store (and the
 * --record specs), one more recorder: srv_rec_ops.  A recorder's init
 * runs before the run host exists, so it sees every event from seq 1 on:
 * it keeps a reference to each event in the run's list (ev[i] has seq
 * i + 1) and wakes the run's suspended followers.  Followers read the list
 * under the lock, so a follower that starts late, or resumes after a
 * Last-Event-ID, gets the events it missed from memory and then the live
 * ones, without a gap or a duplicate.
 *
 * When the server's recorder is finalized the run has ended; the reaper
 * thread then waits (council_run_wait) until every other recorder of the
 * run is finalized too, so the store holds the whole run, and only then
 * may the run leave memory (see RETAIN_ENDED).
 *
 * Idempotency keys: a POST /v1/runs with an Idempotency-Key header is
 * remembered with a hash of its body (canonical JSON: keys sorted, no
 * whitespace) and the reply it got.  The same key with the same body gets
 * that reply again (200 instead of 201, header Idempotent-Replayed: true)
 * and starts nothing; the same key with another body is 422; a key whose
 * first request is still starting its run is 409.  At most IDEM_MAX keys
 * are kept, each for IDEM_TTL_S seconds; past that the oldest go first.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* Ended runs kept in memory after the store holds them whole (older ones
 * are read from the store). */
#define RETAIN_ENDED 16
#define IDEM_MAX 10000
#define IDEM_TTL_S (24 * 3600)
#define IDEM_BUCKETS 4096
#define IDEM_KEY_MAX 255

/* ---- the registry (mu held) ---------------------------------------------- */

static size_t
bucket_of(const srv *s, const char *id)
{
    return (size_t)(hash64(id, strlen(id), 0) & (s->n_buckets - 1));
}

int
reg_grow(srv *s)
{
    size_t n = s->n_buckets ? s->n_buckets * 2 : 256, i;
    srun **b = calloc(n, sizeof(*b));
    srun *r;

    if (b == NULL)
        return -1;
    for (r = s->first; r != NULL; r = r->next) {
        size_t k = (size_t)(hash64(r->id, strlen(r->id), 0) & (n - 1));

        r->hnext = b[k];
        b[k] = r;
    }
    for (i = 0; i < s->n_buckets; i++)
        s->buckets[i] = NULL;
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
    return 0;
}

/* Never fails: the table starts with buckets (srv_open), and when it
 * cannot grow the chains just get longer. */
static void
reg_insert(srv *s, srun *r)
{
    size_t k;

    if (s->n_runs + 1 > s->n_buckets)
        (void)reg_grow(s);
    k = bucket_of(s, r->id);
    r->hnext = s->buckets[k];
    s->buckets[k] = r;
    r->prev = s->last;
    r->next = NULL;
    if (s->last != NULL)
        s->last->next = r;
    else
        s->first = r;
    s->last = r;
    s->n_runs++;
    r->in_registry = 1;
    r->refs++;
}

/* Unlink r; the caller drops the registry's reference. */
void
reg_remove(srv *s, srun *r)
{
    srun **pp = &s->buckets[bucket_of(s, r->id)];

    while (*pp != NULL && *pp != r)
        pp = &(*pp)->hnext;
    if (*pp == r)
        *pp = r->hnext;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        s->first = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        s->last = r->prev;
    r->prev = r->next = r->hnext = NULL;
    r->in_registry = 0;
    s->n_runs--;
    if (r->stored)
        s->retained--;
}

srun *
srun_find(srv *s, const char *id)
{
    srun *r;

    if (s->n_buckets == 0)
        return NULL;
    for (r = s->buckets[bucket_of(s, id)]; r != NULL; r = r->hnext)
        if (strcmp(r->id, id) == 0) {
            r->refs++;
            return r;
        }
    return NULL;
}

/* Drop a reference (mu held); a run to free is pushed on *to_free. */
void
srun_unref_locked(srv *s, srun *r, srun **to_free)
{
    (void)s;
    if (--r->refs == 0) {
        r->reap_next = *to_free;
        *to_free = r;
    }
}

void
srun_free(srun *r)
{
    size_t i;

    while (r != NULL) {
        srun *next = r->reap_next;

        for (i = 0; i < r->n_ev; i++)
            council_event_unref(r->ev[i]);
        free(r->ev);
        free(r->council);
        free(r->question);
        free(r->outcome_json);
        free(r->summary);
        free(r);
        r = next;
    }
}

void
srun_release(srv *s, srun *r)
{
    srun *dead = NULL;

    if (r == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    srun_unref_locked(s, r, &dead);
    pthread_mutex_unlock(&s->mu);
    srun_free(dead);
}

void
waiter_link(srun *r, stream *w)
{
    if (r->waiters == NULL) {
        w->wprev = w->wnext = w;
        r->waiters = w;
    } else {
        w->wnext = r->waiters;
        w->wprev = r->waiters->wprev;
        w->wprev->wnext = w;
        w->wnext->wprev = w;
    }
}

void
waiter_unlink(srun *r, stream *w)
{
    if (w->wnext == w) {
        r->waiters = NULL;
    } else {
        w->wprev->wnext = w->wnext;
        w->wnext->wprev = w->wprev;
        if (r->waiters == w)
            r->waiters = w->wnext;
    }
    w->wprev = w->wnext = NULL;
}

void
srun_wake(srun *r)
{
    stream *list = r->waiters, *w;

    if (list == NULL)
        return;
    r->waiters = NULL;
    list->wprev->wnext = NULL;
    while (list != NULL) {
        w = list;
        list = w->wnext;
        w->wprev = w->wnext = NULL;
        /* Non-streamed chats wait for the end only. */
        if (w->kind == SK_CHAT_WAIT && !r->ended) {
            waiter_link(r, w);
            continue;
        }
        w->suspended = 0;
        MHD_resume_connection(w->conn);
    }
}

/* Ended runs beyond RETAIN_ENDED leave memory, oldest first (mu held). */
static void
reg_trim(srv *s, srun **to_free)
{
    srun *r = s->first, *next;

    while (r != NULL && s->retained > RETAIN_ENDED) {
        next = r->next;
        if (r->stored) {
            reg_remove(s, r);
            srun_unref_locked(s, r, to_free);
        }
        r = next;
    }
}

/* ---- the reaper ---------------------------------------------------------- */

/* mu held. */
static void
reap_queue(srv *s, srun *r)
{
    if (r->reap_queued || r->run == NULL)
        return;
    r->reap_queued = 1;
    r->refs++;
    r->reap_next = NULL;
    if (s->reap_tail != NULL)
        s->reap_tail->reap_next = r;
    else
        s->reap_head = r;
    s->reap_tail = r;
    pthread_cond_signal(&s->reap_cv);
}

/* One line per recorder of r that failed on events (engine_log counted
 * them): how many, which seqs. */
static void
fail_summary(srv *s, srun *r)
{
    int i;

    for (i = 0; i < SRV_MAX_RECORD + 2; i++) {
        unsigned long long n, first, last;

        pthread_mutex_lock(&s->mu);
        n = r->rec_fail[i].n;
        first = r->rec_fail[i].first;
        last = r->rec_fail[i].last;
        pthread_mutex_unlock(&s->mu);
        if (n > 0)
            srv_log(s,
                    "run %s: recorder %d failed on %llu event%s (seq %llu "
                    "to %llu)",
                    r->id, i, n, n == 1 ? "" : "s", first, last);
    }
}

void *
srv_reaper_main(void *arg)
{
    srv *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        srun *r, *dead = NULL;
        council_run *run;

        while (s->reap_head == NULL && !s->reap_stop)
            pthread_cond_wait(&s->reap_cv, &s->mu);
        r = s->reap_head;
        if (r == NULL)
            break;
        s->reap_head = r->reap_next;
        if (s->reap_head == NULL)
            s->reap_tail = NULL;
        r->reap_next = NULL;
        run = r->run;
        pthread_mutex_unlock(&s->mu);

        /* Every recorder of the run (the store too) is finalized when
         * this returns. */
        council_run_wait(run, UINT64_MAX, NULL);
        fail_summary(s, r);
        {
            /* The store's record says what it holds; so must ours. */
            int64_t kept = 0;
            char outcome[16] = "";
            int bad =
                store_record_short(s, r->id, &kept, outcome, sizeof(outcome));

            pthread_mutex_lock(&s->mu);
            if (bad) {
                r->store_short = 1;
                r->store_events = kept;
                snprintf(r->store_outcome, sizeof(r->store_outcome), "%s",
                         outcome);
                free(r->summary);
                r->summary = NULL;
            }
            pthread_mutex_unlock(&s->mu);
        }

        pthread_mutex_lock(&s->mu);
        r->run = NULL;
        r->stored = 1;
        if (r->in_registry)
            s->retained++;
        reg_trim(s, &dead);
        srun_unref_locked(s, r, &dead);
        pthread_mutex_unlock(&s->mu);
        council_run_release(run);
        srun_free(dead);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the server's recorder ----------------------------------------------- */

static int
rec_init(const char *run_id, void *args, void **state, char *why, size_t n)
{
    srun *r = args;

    (void)why;
    (void)n;
    pthread_mutex_lock(&r->s->mu);
    snprintf(r->id, sizeof(r->id), "%s", run_id);
    r->inited = 1;
    r->refs++;
    pthread_mutex_unlock(&r->s->mu);
    *state = r;
    return 0;
}

static int
rec_event(void *state, council_event *ev)
{
    srun *r = state;
    srv *s = r->s;
    council_event_type t = council_event_type_of(ev);
    int rc = 0;

    metrics_event(s, ev);
    pthread_mutex_lock(&s->mu);
    if (!r->lost && r->n_ev == r->cap_ev) {
        size_t cap = r->cap_ev ? r->cap_ev * 2 : 64;
        council_event **v = realloc(r->ev, cap * sizeof(*v));

        if (v == NULL) {
            /* A follower must never see a gap: they stop here. */
            r->lost = 1;
        } else {
            r->ev = v;
            r->cap_ev = cap;
        }
    }
    if (!r->lost) {
        r->ev[r->n_ev++] = council_event_ref(ev);
        if (t == COUNCIL_EV_RUN_COMPLETED || t == COUNCIL_EV_RUN_FAILED)
            r->terminal = 1;
    } else {
        rc = -1;
    }
    srun_wake(r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void
rec_final(void *state, const council_outcome *o)
{
    srun *r = state;
    srv *s = r->s;
    const char *oj = council_outcome_json(o);
    char *copy = oj != NULL ? strdup(oj) : NULL;
    srun *dead = NULL;

    pthread_mutex_lock(&s->mu);
    r->ended = 1;
    r->kind = council_outcome_kind_of(o);
    r->outcome_json = copy;
    r->ended_us = wall_us();
    switch (r->kind) {
    case COUNCIL_OUTCOME_OK:
        s->c.runs_ok++;
        break;
    case COUNCIL_OUTCOME_CANCELLED:
        s->c.runs_cancelled++;
        break;
    case COUNCIL_OUTCOME_CRASHED:
        s->c.runs_crashed++;
        break;
    default:
        s->c.runs_error++;
        break;
    }
    if (r->counted) {
        r->counted = 0;
        s->live--;
    }
    srun_wake(r);
    reap_queue(s, r);
    srun_unref_locked(s, r, &dead);
    pthread_mutex_unlock(&s->mu);
    srun_free(dead);
}

const council_recorder_ops srv_rec_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                          rec_init, rec_event, rec_final, NULL};

/* ---- starting runs ------------------------------------------------------- */

unsigned
srv_start_run(srv *s, const run_req *rq, srun **out, const char **type,
              char *msg, size_t msgsz)
{
    council_recorder_spec specs[SRV_MAX_RECORD + 2];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag diag;
    council_err rc;
    srun *r, *dead = NULL;
    const char *q = rq->question;
    size_t n = 0, i;

    *out = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        *type = "unavailable";
        snprintf(msg, msgsz, "the server is shutting down");
        return 503;
    }
    if (s->live >= s->o.max_runs) {
        s->c.runs_rejected++;
        pthread_mutex_unlock(&s->mu);
        *type = "rate_limit_error";
        snprintf(msg, msgsz,
                 "%zu runs are in flight, the most this server runs at "
                 "once (--max-runs); try again later",
                 s->o.max_runs);
        return 429;
    }
    s->live++;
    pthread_mutex_unlock(&s->mu);

    if (q == NULL && rq->n_msgs > 0)
        q = rq->msgs[rq->n_msgs - 1].content;
    r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->s = s;
        r->refs = 1;
        r->counted = 1;
        r->started_us = wall_us();
        r->council = strdup(rq->council_name);
        r->question = strdup(q != NULL ? q : "");
    }
    if (r == NULL || r->council == NULL || r->question == NULL) {
        pthread_mutex_lock(&s->mu);
        s->live--;
        pthread_mutex_unlock(&s->mu);
        if (r != NULL)
            srun_free(r);
        *type = "server_error";
        snprintf(msg, msgsz, "out of memory");
        return 503;
    }

    specs[n].ops = council_recorder_sqlite();
    specs[n++].args = (void *)s->o.db;
    for (i = 0; i < (size_t)s->o.n_rec; i++) {
        specs[n].ops = s->o.rec_ops[i];
        specs[n++].args = s->o.rec_args[i];
    }
    specs[n].ops = &srv_rec_ops;
    specs[n++].args = r;
    ro.recorders = specs;
    ro.n_recorders = n;
    ro.deadline_ms = rq->deadline_ms;
    ro.seed = rq->seed;
    ro.isolation = s->o.isolation;
    memset(&diag, 0, sizeof(diag));
    if (rq->msgs != NULL)
        rc = council_run_start_messages(s->eng, rq->def, rq->msgs, rq->n_msgs,
                                        &ro, &run, &diag);
    else
        rc = council_run_start(s->eng, rq->def, rq->question, &ro, &run, &diag);
    if (rc != COUNCIL_OK) {
        unsigned status;

        pthread_mutex_lock(&s->mu);
        if (r->counted) {
            r->counted = 0;
            s->live--;
        }
        srun_unref_locked(s, r, &dead);
        pthread_mutex_unlock(&s->mu);
        srun_free(dead);
        switch (rc) {
        case COUNCIL_EINVAL:
            status = 400;
            *type = "invalid_request_error";
            break;
        case COUNCIL_ECLOSED:
            status = 503;
            *type = "unavailable";
            break;
        case COUNCIL_ENOMEM:
            status = 503;
            *type = "server_error";
            break;
        default:
            status = 500;
            *type = "server_error";
            break;
        }
        snprintf(msg, msgsz, "cannot start the run: %s",
                 diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        srv_log(s, "cannot start a run of council %s: %s", rq->council_name,
                diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        return status;
    }

    pthread_mutex_lock(&s->mu);
    r->run = run;
    reg_insert(s, r);
    if (r->ended)
        reap_queue(s, r);
    pthread_mutex_unlock(&s->mu);
    *out = r;
    return 0;
}

/* ---- JSON of a run ------------------------------------------------------- */

static const char *const run_fields[] = {"council", "input", "deadline", "seed",
                                         NULL};

static int
known_field(const char *k, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(k, *list) == 0)
            return 1;
    return 0;
}

/* Copy the fields of a JSON object text into o, except those listed. */
static void
merge_fields(json_t *o, const char *text, const char *const *skip)
{
    json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *k;
    json_t *v;

    json_object_foreach (j, k, v) {
        if (!known_field(k, skip))
            json_object_set(o, k, v);
    }
    json_decref(j);
}

json_t *
srun_record(srv *s, srun *r, int *ended_out)
{
    static const char *const event_common[] = {"type", "run_id", "seq", "ts",
                                               NULL};
    static const char *const outcome_own[] = {"outcome", NULL};
    council_event *first = NULL;
    char *outcome = NULL, when[40], store_outcome[16];
    council_outcome_kind kind;
    int64_t ended_us, store_events;
    size_t n;
    int ended, lost, store_short;
    json_t *o;

    pthread_mutex_lock(&s->mu);
    n = r->n_ev;
    if (n > 0 && council_event_type_of(r->ev[0]) == COUNCIL_EV_RUN_STARTED)
        first = council_event_ref(r->ev[0]);
    ended = r->ended;
    kind = r->kind;
    ended_us = r->ended_us;
    lost = r->lost;
    store_short = r->store_short;
    store_events = r->store_events;
    snprintf(store_outcome, sizeof(store_outcome), "%s", r->store_outcome);
    if (ended && r->outcome_json != NULL)
        outcome = strdup(r->outcome_json);
    pthread_mutex_unlock(&s->mu);
    if (ended_out != NULL)
        *ended_out = ended;

    o = json_pack("{s:s, s:s}", "id", r->id, "run_id", r->id);
    if (o == NULL)
        goto out;
    if (first != NULL) {
        merge_fields(o, council_event_json(first), event_common);
    } else {
        /* Not started yet: what the server knows. */
        json_object_set_new(o, "council", json_string(r->council));
        json_object_set_new(o, "question", json_string(r->question));
    }
    fmt_time(r->started_us, when, sizeof(when));
    json_object_set_new(o, "started_us", json_integer(r->started_us));
    json_object_set_new(o, "started", json_string(when));
    if (ended) {
        fmt_time(ended_us, when, sizeof(when));
        json_object_set_new(o, "ended_us", json_integer(ended_us));
        json_object_set_new(o, "ended", json_string(when));
        json_object_set_new(o, "duration_ms",
                            json_integer((ended_us - r->started_us) / 1000));
        json_object_set_new(o, "outcome",
                            json_string(council_outcome_kind_name(kind)));
        merge_fields(o, outcome, outcome_own);
    } else {
        json_object_set_new(o, "ended_us", json_null());
        json_object_set_new(o, "ended", json_null());
        json_object_set_new(o, "duration_ms", json_null());
        json_object_set_new(o, "outcome", json_string("running"));
    }
    json_object_set_new(o, "events", json_integer((json_int_t)n));
    /* The server holds every event of its runs (unless memory ran out):
     * what the run emitted, once it has ended. */
    json_object_set_new(o, "events_emitted",
                        ended && !lost ? json_integer((json_int_t)n)
                                       : json_null());
    json_object_set_new(o, "incomplete", json_false());
    if (store_short)
        /* ... but the store's copy, what outlives the server, lacks some
         * (a full disk): say what it holds. */
        json_object_set_new(o, "stored",
                            json_pack("{s:I, s:s, s:b}", "events",
                                      (json_int_t)store_events, "outcome",
                                      store_outcome, "incomplete", 1));
out:
    council_event_unref(first);
    free(outcome);
    return o;
}

/* ---- idempotency keys ---------------------------------------------------- */

typedef struct ikey {
    char *key;
    uint64_t h1, h2; /* hash of the canonical body */
    int done;        /* the run started; reply holds the answer */
    char *reply;
    uint64_t at_ns;
    struct ikey *hnext, *prev, *next;
} ikey;

struct idem {
    ikey *b[IDEM_BUCKETS];
    size_t n;
    ikey *first, *last;
};

static ikey **
idem_slot(idem *t, const char *key)
{
    ikey **pp = &t->b[hash64(key, strlen(key), 7) % IDEM_BUCKETS];

    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void
idem_unlink(idem *t, ikey *k)
{
    ikey **pp = idem_slot(t, k->key);

    if (*pp == k)
        *pp = k->hnext;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        t->first = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    else
        t->last = k->prev;
    t->n--;
    free(k->key);
    free(k->reply);
    free(k);
}

/* Forget keys past their time, and the oldest past IDEM_MAX (keys whose
 * run is still starting stay). */
static void
idem_expire(idem *t, uint64_t now)
{
    ikey *k = t->first, *next;

    while (k != NULL) {
        next = k->next;
        if (k->done && (now - k->at_ns > (uint64_t)IDEM_TTL_S * 1000000000u ||
                        t->n > IDEM_MAX))
            idem_unlink(t, k);
        else if (now - k->at_ns <= (uint64_t)IDEM_TTL_S * 1000000000u &&
                 t->n <= IDEM_MAX)
            break;
        k = next;
    }
}

void
idem_free(idem *t)
{
    if (t == NULL)
        return;
    while (t->first != NULL)
        idem_unlink(t, t->first);
    free(t);
}

static int
idem_key_ok(const char *k)
{
    size_t i;

    for (i = 0; k[i] != '\0'; i++)
        if (i >= IDEM_KEY_MAX || (unsigned char)k[i] < 0x20 ||
            (unsigned char)k[i] > 0x7e)
            return 0;
    return i > 0;
}

/* ---- POST /v1/runs ------------------------------------------------------- */

/* Inline councils may not read the server's environment: an inline
 * provider could otherwise send the server's API keys anywhere. */
static int
inline_reads_env(json_t *council, char *which, size_t size)
{
    json_t *providers = json_object_get(council, "providers"), *p;
    const char *name;

    json_object_foreach (providers, name, p) {
        if (json_object_get(p, "api_key_env") != NULL) {
            snprintf(which, size, "%s", name);
            return 1;
        }
    }
    return 0;
}

/* Parse "input": a question, or messages.  Returns 0 or writes msg. */
static int
parse_input(json_t *in, council_message **msgs, size_t *n, const char **q,
            char *msg, size_t msgsz)
{
    size_t i;
    json_t *m;

    *msgs = NULL;
    *n = 0;
    *q = NULL;
    if (json_is_string(in)) {
        if (json_string_length(in) == 0 ||
            strlen(json_string_value(in)) != json_string_length(in)) {
            snprintf(msg, msgsz,
                     "'input' must be a non-empty string "
                     "without NUL, or an array of messages");
            return -1;
        }
        *q = json_string_value(in);
        return 0;
    }
    if (!json_is_array(in) || json_array_size(in) == 0) {
        snprintf(msg, msgsz,
                 "'input' must be a non-empty string (the "
                 "question) or a non-empty array of messages "
                 "{\"role\", \"content\"}");
        return -1;
    }
    *msgs = calloc(json_array_size(in), sizeof(**msgs));
    if (*msgs == NULL) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    json_array_foreach (in, i, m) {
        json_t *role = json_object_get(m, "role");
        json_t *content = json_object_get(m, "content");
        const char *rv = json_string_value(role);

        if (!json_is_object(m) || !json_is_string(role) ||
            !json_is_string(content)) {
            snprintf(msg, msgsz,
                     "input[%zu] must be an object with string 'role' "
                     "and 'content'",
                     i);
            goto bad;
        }
        if (strcmp(rv, "system") != 0 && strcmp(rv, "user") != 0 &&
            strcmp(rv, "assistant") != 0) {
            snprintf(msg, msgsz,
                     "input[%zu].role must be \"system\", \"user\" or "
                     "\"assistant\"",
                     i);
            goto bad;
        }
        if (strlen(json_string_value(content)) != json_string_length(content)) {
            snprintf(msg, msgsz, "input[%zu].content must not contain NUL", i);
            goto bad;
        }
        (*msgs)[i].role = rv;
        (*msgs)[i].content = json_string_value(content);
    }
    *n = json_array_size(in);
    if (strcmp((*msgs)[*n - 1].role, "user") != 0) {
        snprintf(msg, msgsz,
                 "the last message of 'input' must have role "
                 "\"user\"");
        goto bad;
    }
    return 0;
bad:
    free(*msgs);
    *msgs = NULL;
    *n = 0;
    return -1;
}

/* "deadline": a duration string or milliseconds. */
static int
parse_deadline(json_t *v, uint64_t *ms)
{
    if (v == NULL || json_is_null(v)) {
        *ms = 0;
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *ms = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        council_duration_parse(json_string_value(v), ms) == COUNCIL_OK &&
        *ms > 0)
        return 0;
    return -1;
}

/* Why a request is refused: status, type, message. */
typedef struct refusal {
    unsigned status;
    const char *type;
    char msg[600];
} refusal;

static int refuse(refusal *f, unsigned status, const char *type,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
refuse(refusal *f, unsigned status, const char *type, const char *fmt, ...)
{
    va_list ap;

    f->status = status;
    f->type = type;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* A parsed POST /v1/runs body; post_free releases it. */
typedef struct post_req {
    json_t *root;
    council_message *msgs;
    council_def *inline_def;
    cset *cs; /* a reference, when the council is named */
    run_req rq;
} post_req;

static void
post_free(srv *s, post_req *p)
{
    json_decref(p->root);
    free(p->msgs);
    council_def_free(p->inline_def);
    if (p->cs != NULL) {
        int last;

        pthread_mutex_lock(&s->mu);
        last = --p->cs->refs == 0;
        pthread_mutex_unlock(&s->mu);
        if (last)
            cset_free(p->cs);
    }
}

/* The "council" member: a name in the loaded set, or an inline
 * definition. */
static int
resolve_council(srv *s, json_t *v, post_req *p, refusal *f)
{
    council_diag diag;
    char which[128];
    council_err e;
    char *text;
    const centry *ce;

    if (json_is_string(v)) {
        pthread_mutex_lock(&s->mu);
        p->cs = s->councils;
        p->cs->refs++;
        pthread_mutex_unlock(&s->mu);
        ce = cset_find(p->cs, json_string_value(v));
        if (ce == NULL)
            return refuse(f, 404, "not_found_error",
                          "no council named \"%.100s\" (GET /v1/models "
                          "lists them)",
                          json_string_value(v));
        p->rq.def = ce->def;
        p->rq.council_name = ce->name;
        return 0;
    }
    if (!json_is_object(v))
        return refuse(f, 400, "invalid_request_error",
                      "'council' must be a council name (string) or an "
                      "inline definition (object)");
    if (s->o.no_inline)
        return refuse(f, 403, "permission_error",
                      "inline council definitions are disabled on this "
                      "server (--no-inline); name a council");
    if (inline_reads_env(v, which, sizeof(which)))
        return refuse(f, 400, "invalid_request_error",
                      "council.providers.%s.api_key_env: an inline council "
                      "may not read the server's environment; put it in "
                      "the --councils directory",
                      which);
    text = json_dumps(v, JSON_COMPACT);
    memset(&diag, 0, sizeof(diag));
    e = text == NULL ? COUNCIL_ENOMEM
                     : council_def_load_string(text, strlen(text), "<inline>",
                                               &p->inline_def, &diag);
    free(text);
    if (e != COUNCIL_OK)
        return refuse(f, 400, "invalid_request_error", "council (inline): %s",
                      diag.msg[0] ? diag.msg : council_strerror(e));
    p->rq.def = p->inline_def;
    p->rq.council_name = council_def_name(p->inline_def);
    return 0;
}

static int
parse_post(srv *s, const char *body, size_t len, post_req *p, refusal *f)
{
    json_error_t je;
    json_t *v;
    const char *k;
    char msg[512];

    p->root =
        json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (p->root == NULL)
        return refuse(f, 400, "invalid_request_error",
                      "malformed JSON in the request body at line %d, "
                      "column %d: %s",
                      je.line, je.column, je.text);
    if (!json_is_object(p->root))
        return refuse(f, 400, "invalid_request_error",
                      "the request body must be a JSON object");
    json_object_foreach (p->root, k, v) {
        if (!known_field(k, run_fields))
            return refuse(f, 400, "invalid_request_error",
                          "unknown field '%.100s' (known: council, input, "
                          "deadline, seed)",
                          k);
    }
    if (parse_input(json_object_get(p->root, "input"), &p->msgs, &p->rq.n_msgs,
                    &p->rq.question, msg, sizeof(msg)) != 0)
        return refuse(f, 400, "invalid_request_error", "%s", msg);
    p->rq.msgs = p->msgs;
    if (parse_deadline(json_object_get(p->root, "deadline"),
                       &p->rq.deadline_ms) != 0)
        return refuse(f, 400, "invalid_request_error",
                      "'deadline' must be a duration such as \"90s\" or "
                      "\"5m\", or a positive number of milliseconds");
    v = json_object_get(p->root, "seed");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return refuse(f, 400, "invalid_request_error",
                          "'seed' must be a positive integer");
        p->rq.seed = (uint64_t)json_integer_value(v);
    }
    return resolve_council(s, json_object_get(p->root, "council"), p, f);
}

/*
 * Look the Idempotency-Key up.  Returns 0 to go on (*ik is the new key
 * entry, or NULL without a key), 1 when *replay holds the earlier reply,
 * -1 when refused.
 */
static int
idem_begin(srv *s, const char *key, json_t *root, ikey **ik, char **replay,
           refusal *f)
{
    char *canon;
    uint64_t h1, h2;
    ikey **slot, *k;

    *ik = NULL;
    *replay = NULL;
    if (key == NULL)
        return 0;
    if (!idem_key_ok(key))
        return refuse(f, 400, "invalid_request_error",
                      "Idempotency-Key must be 1 to %d printable ASCII "
                      "characters",
                      IDEM_KEY_MAX);
    canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (canon == NULL)
        return refuse(f, 503, "server_error", "out of memory");
    h1 = hash64(canon, strlen(canon), 1);
    h2 = hash64(canon, strlen(canon), 0x9e3779b97f4a7c15ULL);
    free(canon);
    pthread_mutex_lock(&s->mu);
    if (s->idem == NULL)
        s->idem = calloc(1, sizeof(*s->idem));
    if (s->idem == NULL) {
        pthread_mutex_unlock(&s->mu);
        return refuse(f, 503, "server_error", "out of memory");
    }
    idem_expire(s->idem, mono_ns());
    slot = idem_slot(s->idem, key);
    if (*slot != NULL) {
        k = *slot;
        if (k->h1 != h1 || k->h2 != h2) {
            pthread_mutex_unlock(&s->mu);
            return refuse(f, 422, "idempotency_error",
                          "this Idempotency-Key was used with a different "
                          "request body");
        }
        if (!k->done) {
            pthread_mutex_unlock(&s->mu);
            return refuse(f, 409, "idempotency_error",
                          "a request with this Idempotency-Key is still "
                          "starting its run; retry");
        }
        *replay = strdup(k->reply);
        pthread_mutex_unlock(&s->mu);
        if (*replay == NULL)
            return refuse(f, 503, "server_error", "out of memory");
        return 1;
    }
    k = calloc(1, sizeof(*k));
    if (k != NULL)
        k->key = strdup(key);
    if (k == NULL || k->key == NULL) {
        pthread_mutex_unlock(&s->mu);
        free(k);
        return refuse(f, 503, "server_error", "out of memory");
    }
    k->h1 = h1;
    k->h2 = h2;
    k->at_ns = mono_ns();
    *slot = k;
    k->prev = s->idem->last;
    if (s->idem->last != NULL)
        s->idem->last->next = k;
    else
        s->idem->first = k;
    s->idem->last = k;
    s->idem->n++;
    pthread_mutex_unlock(&s->mu);
    *ik = k;
    return 0;
}

/* The run started (reply holds the answer) or not (reply NULL): keep the
 * key with its reply, or forget it so a retry can start the run. */
static void
idem_end(srv *s, ikey *k, const char *reply)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    if (reply != NULL) {
        k->reply = strdup(reply);
        k->done = k->reply != NULL;
    }
    if (!k->done)
        idem_unlink(s->idem, k);
    pthread_mutex_unlock(&s->mu);
}

enum MHD_Result
runs_post(srv *s, struct MHD_Connection *conn, const char *body, size_t len)
{
    post_req p;
    refusal f;
    ikey *ik = NULL;
    srun *r = NULL;
    json_t *reply = NULL;
    char *text = NULL, location[160], events[160];
    const char *type = "server_error";
    const char *replayed[] = {"Idempotent-Replayed", "true", NULL};
    const char *loc[] = {"Location", location, NULL};
    enum MHD_Result ret;
    int rc;

    memset(&p, 0, sizeof(p));
    memset(&f, 0, sizeof(f));
    if (parse_post(s, body, len, &p, &f) != 0)
        goto refused;
    rc = idem_begin(
        s,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key"),
        p.root, &ik, &text, &f);
    if (rc < 0)
        goto refused;
    if (rc > 0) {
        ret = srv_reply(conn, 200, "application/json", text, strlen(text),
                        replayed);
        goto out;
    }
    f.status = srv_start_run(s, &p.rq, &r, &type, f.msg, sizeof(f.msg));
    if (f.status != 0) {
        f.type = type;
        idem_end(s, ik, NULL);
        goto refused;
    }
    reply = srun_record(s, r, NULL);
    snprintf(events, sizeof(events), "/v1/runs/%s/events", r->id);
    if (reply != NULL)
        json_object_set_new(reply, "events_url", json_string(events));
    text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
    idem_end(s, ik, text);
    if (text == NULL) {
        refuse(&f, 503, "server_error", "out of memory");
        goto refused;
    }
    snprintf(location, sizeof(location), "/v1/runs/%s", r->id);
    ret = srv_reply(conn, 201, "application/json", text, strlen(text), loc);
    goto out;
refused:
    free(text);
    ret = srv_error(conn, f.status, f.type, "%s", f.msg);
out:
    srun_release(s, r);
    json_decref(reply);
    post_free(s, &p);
    return ret;
}

/* ---- GET /v1/runs, GET and DELETE /v1/runs/{id} -------------------------- */

enum MHD_Result
runs_get(srv *s, struct MHD_Connection *conn, const char *id)
{
    srun *r;
    json_t *o;
    char *text = NULL;
    size_t len = 0;
    int ended;

    pthread_mutex_lock(&s->mu);
    r = srun_find(s, id);
    /* An ended run's summary never changes: it is rendered once. */
    if (r != NULL && r->summary != NULL) {
        len = strlen(r->summary);
        text = malloc(len + 1);
        if (text != NULL)
            memcpy(text, r->summary, len + 1);
    }
    pthread_mutex_unlock(&s->mu);
    if (r == NULL)
        return store_run_get(s, conn, id);
    if (text == NULL) {
        o = srun_record(s, r, &ended);
        text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text != NULL) {
            char *t;

            len = strlen(text);
            t = realloc(text, len + 2);
            if (t == NULL) {
                free(text);
                text = NULL;
            } else {
                text = t;
                text[len++] = '\n';
                text[len] = '\0';
            }
        }
        if (text != NULL && ended) {
            pthread_mutex_lock(&s->mu);
            if (r->summary == NULL)
                r->summary = strdup(text);
            pthread_mutex_unlock(&s->mu);
        }
    }
    srun_release(s, r);
    if (text == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    return srv_reply(conn, 200, "application/json", text, len, NULL);
}

enum MHD_Result
runs_delete(srv *s, struct MHD_Connection *conn, const char *id,
            const char *purge)
{
    srun *r;
    json_t *o;
    int ended;

    if (srv_parse_purge(purge) > 0)
        return store_run_purge(s, conn, id);
    if (srv_parse_purge(purge) < 0)
        return srv_error(conn, 400, "invalid_request_error",
                         "'purge' must be true or false");
    pthread_mutex_lock(&s->mu);
    r = srun_find(s, id);
    ended = r != NULL && r->ended;
    pthread_mutex_unlock(&s->mu);
    if (r == NULL) {
        /* Not in memory: not in flight here.  409 naming how the stored
         * run ended (crashed if its process died), or 404. */
        return srv_not_in_flight(s, conn, id, NULL, NULL);
    }
    if (!ended && council_engine_cancel(s->eng, id) == COUNCIL_OK) {
        o = srun_record(s, r, &ended);
        srun_release(s, r);
        if (o != NULL)
            json_object_set_new(o, "cancelling", json_true());
        return srv_reply_json(conn, 202, o, NULL);
    }
    /* It had ended: nothing to cancel, and a 200 would say it did. */
    o = srun_record(s, r, NULL);
    srun_release(s, r);
    if (o != NULL && strcmp(json_string_value(json_object_get(o, "outcome")),
                            "running") == 0) {
        /* The engine has ended it; our recorder is about to say how. */
        json_decref(o);
        return srv_error(conn, 409, "conflict",
                         "run %s has just ended; its outcome is being "
                         "recorded (retry)",
                         id);
    }
    {
        enum MHD_Result ret = srv_not_in_flight(
            s, conn, id,
            json_string_value(json_object_get(o, "outcome")) != NULL
                ? json_string_value(json_object_get(o, "outcome"))
                : "running",
            json_string_value(json_object_get(o, "reason")));

        json_decref(o);
        return ret;
    }
}
