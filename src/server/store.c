/* SPDX-License-Identifier: MIT */
/*
 * The store-backed side of the server: runs that are no longer (or never
 * were) in memory are read from the SQLite store (--db) with the store
 * read API of council.h, never with SQL of our own.
 *
 *   GET /v1/runs              council_store_runs, with filters
 *   GET /v1/runs/{id}         council_store_run (the run record)
 *   GET /v1/runs/{id}/events  council_store_events, in batches, as SSE
 *   DELETE /v1/runs/{id}      a run not in flight here: 409, its outcome
 *   DELETE ...?purge=true     council_store_delete
 *
 * Handles: a council_store handle is used by one thread at a time, so the
 * server keeps a small pool of handles (at most POOL_MAX idle); a request
 * takes one, uses it without the lock, and gives it back.  A handle that
 * failed is closed rather than pooled.  They are read-write handles that
 * only read, so that a read that meets a run whose process died (another
 * council run, killed) closes it as crashed in the store
 * (council_store_open); deleting opens a handle of its own for the call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

#define POOL_MAX 16
#define REPLAY_BATCH 64

/* A read-only handle from the pool, or a new one.  NULL with *rc and diag
 * when the store cannot be opened (COUNCIL_ENOTFOUND: no file yet). */
static council_store *
store_get(srv *s, council_err *rc, council_diag *diag)
{
    council_store *h = NULL;

    *rc = COUNCIL_OK;
    pthread_mutex_lock(&s->mu);
    if (s->n_pool > 0)
        h = s->pool[--s->n_pool];
    pthread_mutex_unlock(&s->mu);
    if (h != NULL)
        return h;
    memset(diag, 0, sizeof(*diag));
    *rc = council_store_open(s->o.db, 0, &h, diag);
    return *rc == COUNCIL_OK ? h : NULL;
}

/* Give h back (rc: how its last call went; a failed handle is closed). */
static void
store_put(srv *s, council_store *h, council_err rc)
{
    int keep = 0;

    if (h == NULL)
        return;
    if (rc == COUNCIL_OK || rc == COUNCIL_ENOTFOUND) {
        pthread_mutex_lock(&s->mu);
        if (s->n_pool < POOL_MAX) {
            s->pool[s->n_pool++] = h;
            keep = 1;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!keep)
        council_store_close(h);
}

void
store_pool_close(srv *s)
{
    while (s->n_pool > 0)
        council_store_close(s->pool[--s->n_pool]);
}

static const char *
diag_or(const council_diag *d, council_err rc)
{
    return d->msg[0] != '\0' ? d->msg : council_strerror(rc);
}

/* ---- GET /v1/runs -------------------------------------------------------- */

typedef struct list_ctx {
    srv *s;
    json_t *data;
} list_ctx;

static int
list_row(const council_run_row *row, void *ud)
{
    list_ctx *c = ud;
    char when[40];
    json_t *o;

    fmt_time(row->started_us, when, sizeof(when));
    o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:I, s:s, s:s, s:I}", "id",
                  row->run_id, "run_id", row->run_id, "council", row->council,
                  "strategy", row->strategy, "question", row->question,
                  "started_us", (json_int_t)row->started_us, "started", when,
                  "outcome", row->outcome != NULL ? row->outcome : "running",
                  "events", (json_int_t)row->events);
    if (o == NULL)
        return 1;
    json_object_set_new(o, "reason",
                        row->reason != NULL ? json_string(row->reason)
                                            : json_null());
    json_object_set_new(o, "events_emitted",
                        row->events_emitted > 0
                            ? json_integer((json_int_t)row->events_emitted)
                            : json_null());
    json_object_set_new(o, "incomplete",
                        json_boolean(row->events_emitted > row->events));
    if (row->ended_us != 0) {
        fmt_time(row->ended_us, when, sizeof(when));
        json_object_set_new(o, "ended_us", json_integer(row->ended_us));
        json_object_set_new(o, "ended", json_string(when));
    } else {
        json_object_set_new(o, "ended_us", json_null());
        json_object_set_new(o, "ended", json_null());
    }
    json_array_append_new(c->data, o);
    return 0;
}

enum MHD_Result
runs_list(srv *s, struct MHD_Connection *conn, const srv_target *t)
{
    council_store_query q;
    council_store *h;
    council_diag diag;
    council_err rc;
    list_ctx c;
    const char *why;

    if (srv_parse_list_query(t, &q, &why) != 0)
        return srv_error(conn, 400, "invalid_request_error", "%s", why);
    c.s = s;
    c.data = json_array();
    if (c.data == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    h = store_get(s, &rc, &diag);
    if (h != NULL) {
        rc = council_store_runs(h, &q, list_row, &c, &diag);
        store_put(s, h, rc);
    }
    if (rc != COUNCIL_OK && rc != COUNCIL_ENOTFOUND) {
        json_decref(c.data);
        return srv_error(conn, 500, "server_error", "the run store: %s",
                         diag_or(&diag, rc));
    }
    return srv_reply_json(
        conn, 200, json_pack("{s:s, s:o}", "object", "list", "data", c.data),
        NULL);
}

/* ---- GET /v1/runs/{id} from the store ------------------------------------ */

enum MHD_Result
store_run_get(srv *s, struct MHD_Connection *conn, const char *id)
{
    council_store *h;
    council_diag diag;
    council_err rc;
    char *rec = NULL;
    sbuf b = {0};
    char *text;

    h = store_get(s, &rc, &diag);
    if (h != NULL) {
        rc = council_store_run(h, id, &rec, &diag);
        store_put(s, h, rc);
    }
    if (rc == COUNCIL_ENOTFOUND)
        return srv_error(conn, 404, "not_found_error", "no run \"%s\"", id);
    if (rc != COUNCIL_OK)
        return srv_error(conn, 500, "server_error", "the run store: %s",
                         diag_or(&diag, rc));
    /* The record, with "id" first: spliced, not parsed. */
    sbuf_str(&b, "{\"id\":\"");
    sbuf_json(&b, id, strlen(id));
    sbuf_str(&b, "\",");
    sbuf_str(&b, rec[0] == '{' ? rec + 1 : rec);
    sbuf_str(&b, "\n");
    council_free(rec);
    text = sbuf_take(&b);
    if (text == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    return srv_reply(conn, 200, "application/json", text, strlen(text), NULL);
}

/* ---- what the store kept --------------------------------------------------
 */

int
store_record_short(srv *s, const char *id, int64_t *events, char *outcome,
                   size_t size)
{
    council_store *h;
    council_diag diag;
    council_err rc;
    char *text = NULL;
    json_t *rec;
    const char *o;
    int bad = 0;

    h = store_get(s, &rc, &diag);
    if (h == NULL)
        return 0;
    rc = council_store_run(h, id, &text, &diag);
    store_put(s, h, rc);
    if (rc != COUNCIL_OK)
        return 0;
    rec = json_loads(text, 0, NULL);
    council_free(text);
    o = json_string_value(json_object_get(rec, "outcome"));
    if (o == NULL || strcmp(o, "running") == 0 ||
        json_is_true(json_object_get(rec, "incomplete"))) {
        bad = 1;
        *events = (int64_t)json_integer_value(json_object_get(rec, "events"));
        snprintf(outcome, size, "%s", o != NULL ? o : "running");
        srv_log(s,
                "run %s: its record in %s %s (%lld events stored; a full "
                "disk?)",
                id, s->o.db,
                strcmp(outcome, "running") == 0 ? "has no outcome"
                                                : "is incomplete",
                (long long)*events);
    }
    json_decref(rec);
    return bad;
}

/* ---- DELETE /v1/runs/{id} of a run not in flight --------------------------
 */

enum MHD_Result
srv_not_in_flight(srv *s, struct MHD_Connection *conn, const char *id,
                  const char *outcome, const char *reason)
{
    json_t *rec = NULL, *owner;
    council_store *h;
    council_diag diag;
    council_err rc;
    char msg[600], *text = NULL;
    json_int_t pid = 0;
    enum MHD_Result ret;

    if (outcome == NULL) {
        h = store_get(s, &rc, &diag);
        if (h != NULL) {
            rc = council_store_run(h, id, &text, &diag);
            store_put(s, h, rc);
        }
        if (rc == COUNCIL_ENOTFOUND)
            return srv_error(conn, 404, "not_found_error", "no run \"%s\"", id);
        if (rc != COUNCIL_OK)
            return srv_error(conn, 500, "server_error", "the run store: %s",
                             diag_or(&diag, rc));
        rec = json_loads(text, 0, NULL);
        council_free(text);
        outcome = json_string_value(json_object_get(rec, "outcome"));
        reason = json_string_value(json_object_get(rec, "reason"));
        owner = json_object_get(rec, "owner");
        pid = json_integer_value(json_object_get(owner, "pid"));
        if (outcome == NULL)
            outcome = "running";
    }
    if (strcmp(outcome, "running") == 0)
        /* Recorded by another process that still lives (another server,
         * a council run): not this server's to cancel. */
        snprintf(msg, sizeof(msg),
                 "run %s is not in flight in this server: it is running "
                 "in another process (pid %lld); it can only be cancelled "
                 "there",
                 id, (long long)pid);
    else
        snprintf(msg, sizeof(msg),
                 "run %s is not in flight: it ended %s%s%s; nothing to "
                 "cancel",
                 id, outcome, reason != NULL ? ": " : "",
                 reason != NULL ? reason : "");
    ret = srv_reply_json(conn, 409,
                         json_pack("{s:{s:s, s:s, s:s, s:s, s:s?}}", "error",
                                   "type", "conflict", "message", msg, "run_id",
                                   id, "outcome", outcome, "reason", reason),
                         NULL);
    json_decref(rec);
    return ret;
}

/* ---- DELETE /v1/runs/{id}?purge=true ------------------------------------- */

enum MHD_Result
store_run_purge(srv *s, struct MHD_Connection *conn, const char *id)
{
    council_store *h = NULL;
    council_diag diag;
    council_err rc;
    srun *r, *dead = NULL;
    int live = 0, recording = 0;

    pthread_mutex_lock(&s->mu);
    r = srun_find(s, id);
    if (r != NULL) {
        live = !r->ended;
        recording = r->ended && !r->stored;
    }
    pthread_mutex_unlock(&s->mu);
    if (live || recording) {
        srun_release(s, r);
        return srv_error(conn, 409, "conflict",
                         live ? "run %s is in flight: cancel it first (DELETE "
                                "without purge)"
                              : "run %s is still being recorded; retry",
                         id);
    }
    memset(&diag, 0, sizeof(diag));
    rc = council_store_open(s->o.db, 0, &h, &diag);
    if (rc == COUNCIL_OK)
        rc = council_store_delete(h, id, &diag);
    council_store_close(h);
    if (rc == COUNCIL_OK && r != NULL) {
        /* Memory must not serve what the store no longer has. */
        pthread_mutex_lock(&s->mu);
        if (r->in_registry) {
            reg_remove(s, r);
            srun_unref_locked(s, r, &dead);
        }
        pthread_mutex_unlock(&s->mu);
        srun_free(dead);
    }
    srun_release(s, r);
    switch (rc) {
    case COUNCIL_OK:
        srv_log(s, "run %s deleted from the store", id);
        return srv_reply_json(
            conn, 200,
            json_pack("{s:s, s:s, s:b}", "id", id, "run_id", id, "deleted", 1),
            NULL);
    case COUNCIL_ENOTFOUND:
        return srv_error(conn, 404, "not_found_error", "no run \"%s\"", id);
    case COUNCIL_EBUSY:
        return srv_error(conn, 409, "conflict", "%s", diag_or(&diag, rc));
    default:
        return srv_error(conn, 500, "server_error", "the run store: %s",
                         diag_or(&diag, rc));
    }
}

/* ---- SSE of a stored run ------------------------------------------------- */

struct store_replay {
    char id[80];
    uint64_t after; /* the last seq taken */
    council_event *ev[REPLAY_BATCH];
    size_t n, i;
    int exhausted; /* the store has nothing after the batch */
    int failed;    /* the store reported damage after the batch */
};

static int
collect(council_event *ev, void *ud)
{
    store_replay *rp = ud;

    rp->ev[rp->n++] = council_event_ref(ev);
    rp->after = council_event_seq(ev);
    return rp->n == REPLAY_BATCH;
}

/* The next batch.  Returns the store's error (diag says why). */
static council_err
replay_fill(srv *s, store_replay *rp, council_diag *diag)
{
    council_store *h;
    council_err rc;

    rp->n = rp->i = 0;
    h = store_get(s, &rc, diag);
    if (h == NULL)
        return rc;
    rc = council_store_events(h, rp->id, rp->after, collect, rp, diag);
    store_put(s, h, rc);
    if (rc == COUNCIL_OK && rp->n < REPLAY_BATCH)
        rp->exhausted = 1;
    if (rc != COUNCIL_OK && rc != COUNCIL_ENOTFOUND) {
        rp->failed = 1;
        srv_log(s, "run %s: the store: %s", rp->id, diag_or(diag, rc));
    }
    return rc;
}

int
store_replay_next(stream *st, council_event **ev)
{
    store_replay *rp = st->replay;
    council_diag diag;

    if (rp->i == rp->n) {
        if (rp->exhausted || rp->failed)
            return rp->failed ? -1 : 0;
        if (replay_fill(st->s, rp, &diag) != COUNCIL_OK && rp->n == 0)
            return -1;
        if (rp->n == 0)
            return 0;
    }
    *ev = rp->ev[rp->i];
    rp->ev[rp->i++] = NULL;
    return 1;
}

void
store_replay_free(store_replay *rp)
{
    size_t i;

    if (rp == NULL)
        return;
    for (i = rp->i; i < rp->n; i++)
        council_event_unref(rp->ev[i]);
    free(rp);
}

enum MHD_Result
store_events_get(srv *s, struct MHD_Connection *conn, const char *id,
                 uint64_t after, int head, stream **out)
{
    store_replay *rp = calloc(1, sizeof(*rp));
    council_diag diag;
    council_err rc;
    stream *st;

    if (rp == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    snprintf(rp->id, sizeof(rp->id), "%s", id);
    rp->after = after;
    rc = replay_fill(s, rp, &diag);
    if (rc == COUNCIL_ENOTFOUND || (rc != COUNCIL_OK && rp->n == 0)) {
        store_replay_free(rp);
        if (rc == COUNCIL_ENOTFOUND)
            return srv_error(conn, 404, "not_found_error", "no run \"%s\"", id);
        return srv_error(conn, 500, "server_error", "the run store: %s",
                         diag_or(&diag, rc));
    }
    if (head) {
        /* The run is there: what a GET would start, without a stream. */
        store_replay_free(rp);
        return stream_head(conn, "text/event-stream");
    }
    if (stream_admit(s) != 0) {
        store_replay_free(rp);
        return srv_refuse_stream(s, conn);
    }
    st = stream_new(s, SK_STORE, conn, NULL, (size_t)after);
    if (st == NULL) {
        pthread_mutex_lock(&s->mu);
        s->streams--;
        pthread_mutex_unlock(&s->mu);
        store_replay_free(rp);
        return srv_error(conn, 503, "server_error", "out of memory");
    }
    st->counted = 1;
    st->replay = rp;
    *out = st;
    return stream_queue(st, "text/event-stream", NULL);
}
