/* SPDX-License-Identifier: MIT */
/*
 * The redis recorder (council.h, council_recorder_redis): an in-process
 * run's events written to Redis in the workers' layout (docs/
 * distributed.md): the hash PREFIXrun:R and the stream PREFIXrun:R:ev,
 * entry 0-<seq> per event with field ev, never trimmed; at the end the
 * terminal entry, the outcome in the hash, EXPIRE on both keys and
 * PUBLISH PREFIXdone R.  Each seq is written once and never after a gap.
 *
 * Why three small scripts (EVAL) rather than the council_v1 Functions.
 * The Functions serve the worker flow: enqueue puts the run on council:q,
 * where a worker could claim it first, and claim gives it a lease in
 * council:leases that the reaper ends as crashed("worker lost") unless it
 * is renewed.  An in-process run has no lease and must not be queued, so
 * this file does not go through them.  Plain pipelined XADDs with
 * explicit ids are idempotent but not gap-proof: a command that times out
 * unsent while a later one is sent on the next connection would leave a
 * hole no later XADD can fill (an id below the top is refused).  So each
 * batch is one EVAL that checks the hash's writer (this recorder's
 * nonce), skips every seq at or below last_seq (a retry after a lost
 * reply writes nothing twice), refuses a first seq past last_seq + 1
 * (Redis lost data: reported, nothing written after the hole), XADDs the
 * rest and sets last_seq, atomically.  The create refuses a run whose
 * keys exist and are not this recorder's; the finish writes the
 * terminal entry, the hash's end, the expiry and the PUBLISH in one step.
 *
 * Method (threads).  The recorder's callbacks run on the engine's pool;
 * the connection (src/bus/conn.h) is loop-thread only.  A bridge is a
 * thread running a private libuv loop with one connection; there is one
 * bridge per distinct URL, shared by every recorder of that URL and
 * reference-counted (init takes a reference, finalize drops it; the last
 * one stops the thread), so N concurrent runs cost one thread and one
 * connection, not N.  handle_event queues the event (a reference, its
 * JSON already rendered) under the bridge's mutex; handle_flush (and a
 * full batch) wakes the loop, which sends, for each recorder, at most one
 * command at a time: batches are up to BATCH_EVENTS events or
 * BATCH_BYTES, and the recorders' commands are pipelined on the
 * connection.  Commands are sent only while the connection is up; a
 * failed one (no reply) is sent again when it is up again.
 *
 * Bounds.  While Redis is away the queue holds at most max_buffer_bytes
 * of JSON; the event that would pass it, and every later one, is lost:
 * counted, logged (through the engine log: the run and the key, never the
 * URL's password) and reported as a failed handle_event.  finalize waits
 * at most finalize_wait_ms for the end to be written, then abandons what
 * is left (counted and logged), so an unreachable Redis costs a run that
 * much at its end and nothing before.  While the connection stays down
 * that bound is the bridge's, shared by every finalize (giveup_ns): an
 * engine closing with many runs while Redis is away waits one bound, not
 * one per run.
 *
 * Why finalize waits (bounded) rather than hand over and return: the
 * recorder ops have no hook at engine close or process exit to drain in,
 * and what was lost must be reported through the engine log, which a
 * recorder reaches only inside its callbacks (council__recorder_engine);
 * waiting in finalize also makes council_run_wait mean "in Redis", so
 * `council run --record redis:URL && redis-cli XRANGE ...` sees the run.
 * The wait is on the recorder's pool thread, never the run's loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "bus/conn.h"
#include "bus/fn.h"
#include "core/alloc.h"
#include "core/event.h"
#include "core/run.h"
#include "os/owner.h"

#define DEFAULT_PREFIX "council:"
#define PREFIX_MAX 64
#define DEFAULT_BUFFER (8u * 1024u * 1024u)
#define DEFAULT_FINALIZE_WAIT_MS 5000u
#define BATCH_EVENTS 512
#define BATCH_BYTES (1024u * 1024u)
#define WAKE_EVERY 64

/* KEYS hash stream; ARGV writer owner created_by.  'created', 'mine'
 * (a retry of this very create) or 'taken'. */
static const char create_lua[] =
    "local h = KEYS[1]\n"
    "local w = redis.call('HGET', h, 'writer')\n"
    "if w == ARGV[1] then return {'mine'} end\n"
    "if redis.call('EXISTS', h) == 1 or redis.call('EXISTS', KEYS[2]) == 1 "
    "then return {'taken'} end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('HSET', h, 'state', 'running', 'gen', 0, 'cancel', 0, "
    "'owner', ARGV[2], 'writer', ARGV[1], 'created_by', ARGV[3], "
    "'created_ms', now, 'claimed_ms', now, 'last_seq', 0, 'lost', 0)\n"
    "return {'created'}\n";

/* KEYS hash stream; ARGV writer seq ev_1 ... ev_n.  'ok' last_seq, 'gap'
 * last_seq, or 'taken'. */
static const char append_lua[] =
    "local h, e = KEYS[1], KEYS[2]\n"
    "if redis.call('HGET', h, 'writer') ~= ARGV[1] or "
    "redis.call('HGET', h, 'state') ~= 'running' then return {'taken'} end\n"
    "local last = tonumber(redis.call('HGET', h, 'last_seq')) or 0\n"
    "local seq = tonumber(ARGV[2])\n"
    "if seq > last + 1 then return {'gap', last} end\n"
    "for i = 3, #ARGV do\n"
    "  local s = seq + i - 3\n"
    "  if s > last then\n"
    "    redis.call('XADD', e, '0-' .. s, 'ev', ARGV[i])\n"
    "    last = s\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', h, 'last_seq', last)\n"
    "return {'ok', last}\n";

/* KEYS hash stream; ARGV writer seq(0: no terminal entry) ev outcome
 * reason outcome_json emitted lost expire_s run channel.  'ok' last_seq,
 * 'dup' (ended already: a retry), 'gap' last_seq, or 'taken'. */
static const char finish_lua[] =
    "local h, e = KEYS[1], KEYS[2]\n"
    "if redis.call('HGET', h, 'writer') ~= ARGV[1] then return {'taken'} "
    "end\n"
    "if redis.call('HGET', h, 'state') ~= 'running' then return {'dup'} end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local last = tonumber(redis.call('HGET', h, 'last_seq')) or 0\n"
    "local seq = tonumber(ARGV[2])\n"
    "if seq > 0 then\n"
    "  if seq ~= last + 1 then return {'gap', last} end\n"
    "  if ARGV[3] ~= '' then\n"
    "    redis.call('XADD', e, '0-' .. seq, 'ev', ARGV[3], 'outcome', "
    "ARGV[4], 'reason', ARGV[5], 'ts_ms', now)\n"
    "  else\n"
    "    redis.call('XADD', e, '0-' .. seq, 'outcome', ARGV[4], 'reason', "
    "ARGV[5], 'ts_ms', now)\n"
    "  end\n"
    "  last = seq\n"
    "end\n"
    "redis.call('HSET', h, 'state', ARGV[4], 'last_seq', last, 'ended_ms', "
    "now, 'reason', ARGV[5], 'outcome', ARGV[6], 'emitted', ARGV[7], "
    "'lost', ARGV[8])\n"
    "redis.call('EXPIRE', h, ARGV[9])\n"
    "redis.call('EXPIRE', e, ARGV[9])\n"
    "redis.call('PUBLISH', ARGV[11], ARGV[10])\n"
    "return {'ok', last}\n";

/* A recorder's phase, changed on the loop thread (and by finalize's
 * give-up) under the bridge's mutex. */
enum phase {
    PH_CREATE,   /* the create is to be sent */
    PH_EVENTS,   /* events are appended as they come */
    PH_FINISHED, /* the end is written */
    PH_FAILED    /* Redis refused (taken keys, a gap, an error reply) */
};

enum { K_CREATE = 1, K_APPEND, K_FINISH };

struct ent {
    council_event *ev; /* a reference */
    const char *json;
    size_t len;
};

struct bridge;

struct rr {
    struct rr *next; /* in the bridge's list */
    struct bridge *b;
    char *run_id;
    char *hkey, *evkey, *channel;
    char writer[128];
    char owner[300];
    char expire[24];

    /* Under b->mu. */
    enum phase phase;
    struct ent *q; /* events seq acked+1 ... queued, oldest first */
    size_t qn, qcap, qbytes, max_buf;
    uint64_t acked;     /* Redis holds seq 1..acked */
    uint64_t queued;    /* the last seq queued */
    uint64_t emitted;   /* the last seq the run emitted */
    uint64_t lost_from; /* the first seq lost, or 0 */
    int inflight;       /* the command in flight: 0 none, or a K_ */
    int fin;            /* finalize handed the end over */
    int abandoned;      /* finalize gave up: the loop frees it */
    uint64_t fin_seq;   /* the terminal entry's seq, 0 for none */
    char *fin_ev, *fin_kind, *fin_reason, *fin_json;
    council_event *held; /* the terminal event, kept for the end */
    char status[300];    /* what went wrong last, for the log */
    pthread_cond_t cv;
    uint64_t wait_ms; /* finalize's bound */
    unsigned since_wake;
    int logged_loss;
};

struct bridge {
    struct bridge *next; /* in the registry, under reg_mu */
    char *url;
    char where[300];
    int refs; /* under reg_mu */

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    council__conn *conn; /* loop thread */

    pthread_mutex_t mu;
    struct rr *list; /* attached recorders */
    int stopping;
    int up;
    char down[256]; /* why the connection is down */
    /* While the connection stays down, the moment every finalize gives
     * up (CLOCK_MONOTONIC ns; 0 = none): set by the first finalize that
     * waits while down, cleared when it is up.  So the bound is the
     * bridge's, not each run's: N runs ending while Redis is away cost
     * one finalize_wait_ms, not N. */
    uint64_t giveup_ns;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bridge *registry;
static atomic_uint_fast64_t nonce_counter;

/* ---- recorder state ---------------------------------------------------- */

static void
rr_free(struct rr *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->qn; i++)
        council_event_unref(r->q[i].ev);
    council__free(r->q);
    council_event_unref(r->held);
    council__free(r->fin_ev);
    council__free(r->fin_kind);
    council__free(r->fin_reason);
    council__free(r->fin_json);
    council__free(r->run_id);
    council__free(r->hkey);
    council__free(r->evkey);
    council__free(r->channel);
    pthread_cond_destroy(&r->cv);
    council__free(r);
}

static void
list_remove(struct bridge *b, struct rr *r)
{
    struct rr **p;

    for (p = &b->list; *p != NULL; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            return;
        }
}

/* Drop the queue's entries at or below seq. */
static void
drop_acked(struct rr *r, uint64_t seq)
{
    size_t n = 0, i;

    while (n < r->qn && council_event_seq(r->q[n].ev) <= seq) {
        r->qbytes -= r->q[n].len;
        council_event_unref(r->q[n].ev);
        n++;
    }
    for (i = n; i < r->qn; i++)
        r->q[i - n] = r->q[i];
    r->qn -= n;
    if (seq > r->acked)
        r->acked = seq;
}

/* ---- the loop side (bridge thread, b->mu held) -------------------------- */

static void pump(struct rr *r);

static void
set_status(struct rr *r, const char *what, const char *detail)
{
    snprintf(r->status, sizeof(r->status), "%s%s", what, detail);
}

/* The reply's status word and its integer (0 when there is none). */
static const char *
reply_word(const redisReply *rep, long long *num)
{
    const redisReply *w;

    *num = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        return NULL;
    w = rep->element[0];
    if (w == NULL ||
        (w->type != REDIS_REPLY_STRING && w->type != REDIS_REPLY_STATUS))
        return NULL;
    if (rep->elements >= 2 && rep->element[1] != NULL &&
        rep->element[1]->type == REDIS_REPLY_INTEGER)
        *num = rep->element[1]->integer;
    return w->str;
}

static void
fail(struct rr *r, const char *what)
{
    snprintf(r->status, sizeof(r->status), "%s", what);
    r->phase = PH_FAILED;
    pthread_cond_broadcast(&r->cv);
}

static void
on_reply(council__conn *c, council_err rc, const redisReply *rep,
         const char *msg, void *ud)
{
    struct rr *r = ud;
    struct bridge *b = r->b;
    const char *w;
    long long num;
    char text[300];
    int kind;

    (void)c;
    pthread_mutex_lock(&b->mu);
    kind = r->inflight;
    r->inflight = 0;
    if (r->abandoned) {
        list_remove(b, r);
        pthread_mutex_unlock(&b->mu);
        rr_free(r);
        return;
    }
    if (rc != COUNCIL_OK) {
        /* No reply: sent again once the connection is up (the scripts
         * make a second try harmless). */
        set_status(r, "no reply from Redis: ",
                   msg != NULL ? msg : council_strerror(rc));
        goto out;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(text, sizeof(text), "Redis said: %.250s",
                 rep->str != NULL ? rep->str : "");
        fail(r, text);
        goto out;
    }
    w = reply_word(rep, &num);
    if (w == NULL) {
        fail(r, "Redis answered what the script never answers");
    } else if (strcmp(w, "taken") == 0) {
        snprintf(text, sizeof(text),
                 "%s exists and was not written by this recorder "
                 "(another process or run has this run id): left as it is",
                 r->hkey);
        fail(r, text);
    } else if (strcmp(w, "gap") == 0) {
        snprintf(text, sizeof(text),
                 "%s holds seq 1..%lld, fewer than were written (Redis "
                 "lost data): nothing more is written",
                 r->evkey, num);
        fail(r, text);
    } else if (kind == K_CREATE &&
               (strcmp(w, "created") == 0 || strcmp(w, "mine") == 0)) {
        r->phase = PH_EVENTS;
    } else if (kind == K_FINISH &&
               (strcmp(w, "ok") == 0 || strcmp(w, "dup") == 0) && num >= 0) {
        /* "dup": a retry of this finish, whose first reply was lost. */
        if ((uint64_t)num > r->acked)
            r->acked = (uint64_t)num;
        r->phase = PH_FINISHED;
        r->status[0] = '\0';
        pthread_cond_broadcast(&r->cv);
    } else if (kind == K_APPEND && strcmp(w, "ok") == 0 && num >= 0) {
        drop_acked(r, (uint64_t)num);
        r->status[0] = '\0';
    } else {
        fail(r, "Redis answered what the script never answers");
    }
out:
    pump(r);
    pthread_mutex_unlock(&b->mu);
}

static void
send_eval(struct rr *r, int kind, int argc, const char **argv,
          const size_t *lens)
{
    council_err rc =
        council__conn_command(r->b->conn, argc, argv, lens, 0, on_reply, r);

    if (rc == COUNCIL_OK)
        r->inflight = kind;
    else
        set_status(r, "cannot send to Redis: ", council_strerror(rc));
}

/* Send this recorder's next command, if it has one and none is in
 * flight. */
static void
pump(struct rr *r)
{
    struct bridge *b = r->b;
    const char *argv[BATCH_EVENTS + 8];
    size_t lens[BATCH_EVENTS + 8];
    char seqbuf[24], emitted[24], lost[24];
    int argc = 0;

    if (r->inflight || r->abandoned || !b->up || b->stopping)
        return;
#define ARG(s, n)                                                              \
    do {                                                                       \
        argv[argc] = (s);                                                      \
        lens[argc] = (n);                                                      \
        argc++;                                                                \
    } while (0)
#define SARG(s) ARG((s), strlen(s))
    switch (r->phase) {
    case PH_CREATE:
        SARG("EVAL");
        ARG(create_lua, sizeof(create_lua) - 1);
        SARG("2");
        SARG(r->hkey);
        SARG(r->evkey);
        SARG(r->writer);
        SARG(r->owner);
        SARG("in-process");
        send_eval(r, K_CREATE, argc, argv, lens);
        return;
    case PH_EVENTS:
        if (r->qn > 0) {
            size_t i, bytes = 0;

            SARG("EVAL");
            ARG(append_lua, sizeof(append_lua) - 1);
            SARG("2");
            SARG(r->hkey);
            SARG(r->evkey);
            SARG(r->writer);
            snprintf(seqbuf, sizeof(seqbuf), "%llu",
                     (unsigned long long)council_event_seq(r->q[0].ev));
            SARG(seqbuf);
            for (i = 0; i < r->qn && i < BATCH_EVENTS; i++) {
                if (i > 0 && bytes + r->q[i].len > BATCH_BYTES)
                    break;
                ARG(r->q[i].json, r->q[i].len);
                bytes += r->q[i].len;
            }
            send_eval(r, K_APPEND, argc, argv, lens);
            return;
        }
        if (!r->fin)
            return;
        snprintf(seqbuf, sizeof(seqbuf), "%llu",
                 (unsigned long long)(r->lost_from != 0 ? 0 : r->fin_seq));
        snprintf(emitted, sizeof(emitted), "%llu",
                 (unsigned long long)r->emitted);
        /* Sent once the queue is empty: with no loss every event before
         * the end is in Redis. */
        snprintf(lost, sizeof(lost), "%llu",
                 (unsigned long long)(r->lost_from != 0 ? r->emitted - r->acked
                                                        : 0));
        SARG("EVAL");
        ARG(finish_lua, sizeof(finish_lua) - 1);
        SARG("2");
        SARG(r->hkey);
        SARG(r->evkey);
        SARG(r->writer);
        SARG(seqbuf);
        SARG(r->fin_ev != NULL ? r->fin_ev : "");
        SARG(r->fin_kind);
        SARG(r->fin_reason);
        SARG(r->fin_json);
        SARG(emitted);
        SARG(lost);
        SARG(r->expire);
        SARG(r->run_id);
        SARG(r->channel);
        send_eval(r, K_FINISH, argc, argv, lens);
        return;
    case PH_FINISHED:
    case PH_FAILED:
        return;
    }
#undef SARG
#undef ARG
}

static void
pump_all(struct bridge *b)
{
    struct rr *r, *next;

    for (r = b->list; r != NULL; r = next) {
        next = r->next;
        pump(r);
    }
}

static void
on_state(council__conn *c, int up, council_err rc, const char *reason, void *ud)
{
    struct bridge *b = ud;

    (void)c;
    pthread_mutex_lock(&b->mu);
    b->up = up;
    if (up)
        b->giveup_ns = 0;
    if (!up)
        snprintf(b->down, sizeof(b->down), "%s (%s)",
                 reason != NULL ? reason : "down", council_strerror(rc));
    else
        pump_all(b);
    pthread_mutex_unlock(&b->mu);
}

static void
on_wake(uv_async_t *a)
{
    struct bridge *b = a->data;
    int stop;

    pthread_mutex_lock(&b->mu);
    stop = b->stopping;
    if (!stop)
        pump_all(b);
    pthread_mutex_unlock(&b->mu);
    if (stop) {
        /* Every recorder was finalized; an abandoned one still in flight
         * is freed by its ECLOSED completion, during this call. */
        council__conn_close(b->conn, NULL, NULL);
        b->conn = NULL;
        uv_close((uv_handle_t *)&b->wake, NULL);
    }
}

static void *
bridge_main(void *arg)
{
    struct bridge *b = arg;
    council__conn_opts o;
    council_diag d;

    memset(&o, 0, sizeof(o));
    o.url = b->url;
    o.on_state = on_state;
    o.ud = b;
    memset(&d, 0, sizeof(d));
    if (council__conn_open(&b->loop, &o, &b->conn, &d) != COUNCIL_OK) {
        /* Out of memory (the URL was checked): nothing is ever up, and
         * each recorder gives up at its finalize. */
        pthread_mutex_lock(&b->mu);
        snprintf(b->down, sizeof(b->down), "cannot open: %.200s", d.msg);
        pthread_mutex_unlock(&b->mu);
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the registry ------------------------------------------------------- */

static void
bridge_free(struct bridge *b)
{
    uv_loop_close(&b->loop);
    pthread_mutex_destroy(&b->mu);
    council__free(b->url);
    council__free(b);
}

/* The bridge for url, with a new reference; NULL when it cannot be made
 * (why says so). */
static struct bridge *
bridge_get(const char *url, const char *where, char *why, size_t why_size)
{
    struct bridge *b;

    pthread_mutex_lock(&reg_mu);
    for (b = registry; b != NULL; b = b->next)
        if (strcmp(b->url, url) == 0) {
            b->refs++;
            pthread_mutex_unlock(&reg_mu);
            return b;
        }
    b = council__calloc(1, sizeof(*b));
    if (b == NULL || (b->url = council__strdup(url)) == NULL)
        goto nomem;
    snprintf(b->where, sizeof(b->where), "%s", where);
    if (uv_loop_init(&b->loop) != 0)
        goto nomem;
    if (uv_async_init(&b->loop, &b->wake, on_wake) != 0) {
        uv_loop_close(&b->loop);
        goto nomem;
    }
    b->wake.data = b;
    pthread_mutex_init(&b->mu, NULL);
    snprintf(b->down, sizeof(b->down), "not connected yet");
    if (pthread_create(&b->thread, NULL, bridge_main, b) != 0) {
        uv_close((uv_handle_t *)&b->wake, NULL);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        bridge_free(b);
        pthread_mutex_unlock(&reg_mu);
        snprintf(why, why_size, "redis: cannot start a thread");
        return NULL;
    }
    b->refs = 1;
    b->next = registry;
    registry = b;
    pthread_mutex_unlock(&reg_mu);
    return b;
nomem:
    if (b != NULL)
        council__free(b->url);
    council__free(b);
    pthread_mutex_unlock(&reg_mu);
    snprintf(why, why_size, "redis: out of memory");
    return NULL;
}

static void
bridge_put(struct bridge *b)
{
    struct bridge **p;

    pthread_mutex_lock(&reg_mu);
    if (--b->refs > 0) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    for (p = &registry; *p != NULL; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->wake);
    pthread_join(b->thread, NULL);
    bridge_free(b);
}

/* ---- the callbacks (init: the starting thread; the rest: the pool) ---- */

static int
bad_run_id(const char *id)
{
    size_t n;

    if (id == NULL)
        return 1;
    n = strlen(id);
    if (n == 0 || n > COUNCIL__FN_RUN_ID_MAX)
        return 1;
    for (; *id != '\0'; id++)
        if (*id <= ' ' || *id > '~')
            return 1;
    return 0;
}

static int
bad_prefix(const char *p)
{
    size_t n = strlen(p);

    return n == 0 || n > PREFIX_MAX || bad_run_id(p);
}

static char *
join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = council__malloc(n);

    if (s != NULL)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static int
redis_init(const char *run_id, void *args, void **state, char *why,
           size_t why_size)
{
    const council_recorder_redis_args *a = args;
    const char *prefix;
    char where[300];
    council_diag d;
    council__owner me;
    pthread_condattr_t ca;
    struct rr *r;

    if (a == NULL || a->version != COUNCIL_RECORDER_REDIS_ARGS_VERSION) {
        snprintf(why, why_size,
                 "redis: args must be a council_recorder_redis_args of "
                 "version %d",
                 COUNCIL_RECORDER_REDIS_ARGS_VERSION);
        return -1;
    }
    memset(&d, 0, sizeof(d));
    if (a->url == NULL || council__conn_check_url(a->url, where, sizeof(where),
                                                  &d) != COUNCIL_OK) {
        snprintf(why, why_size, "redis: %s",
                 d.msg[0] != '\0' ? d.msg : "no URL given");
        return -1;
    }
    prefix = a->prefix != NULL ? a->prefix : DEFAULT_PREFIX;
    if (bad_prefix(prefix)) {
        snprintf(why, why_size,
                 "redis: key prefix must be 1..%d printable bytes without "
                 "space",
                 PREFIX_MAX);
        return -1;
    }
    if (bad_run_id(run_id)) {
        snprintf(why, why_size,
                 "redis: run id must be 1..%d printable bytes without space",
                 COUNCIL__FN_RUN_ID_MAX);
        return -1;
    }
    r = council__calloc(1, sizeof(*r));
    if (r == NULL)
        goto nomem;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->run_id = council__strdup(run_id);
    r->hkey = join(prefix, "run:", run_id);
    r->evkey = join(prefix, "run:", run_id);
    r->channel = join(prefix, "done", "");
    if (r->run_id == NULL || r->hkey == NULL || r->evkey == NULL ||
        r->channel == NULL)
        goto nomem;
    council__free(r->evkey);
    r->evkey = join(r->hkey, ":ev", "");
    if (r->evkey == NULL)
        goto nomem;
    snprintf(r->expire, sizeof(r->expire), "%llu",
             (unsigned long long)(a->expire_s != 0
                                      ? a->expire_s
                                      : COUNCIL__FN_EXPIRE_DEFAULT_S));
    r->max_buf =
        a->max_buffer_bytes != 0 ? a->max_buffer_bytes : DEFAULT_BUFFER;
    council__owner_self(&me);
    snprintf(r->owner, sizeof(r->owner), "%s:%lld",
             me.host[0] != '\0' ? me.host : "?", (long long)me.pid);
    snprintf(r->writer, sizeof(r->writer), "%.60s:%lld:%lld:%llu", me.host,
             (long long)me.pid, (long long)me.start,
             (unsigned long long)atomic_fetch_add(&nonce_counter, 1));
    r->phase = PH_CREATE;
    r->wait_ms = a->finalize_wait_ms != 0 ? a->finalize_wait_ms
                                          : DEFAULT_FINALIZE_WAIT_MS;
    r->b = bridge_get(a->url, where, why, why_size);
    if (r->b == NULL) {
        rr_free(r);
        return -1;
    }
    pthread_mutex_lock(&r->b->mu);
    r->next = r->b->list;
    r->b->list = r;
    pthread_mutex_unlock(&r->b->mu);
    uv_async_send(&r->b->wake);
    *state = r;
    return 0;
nomem:
    rr_free(r);
    snprintf(why, why_size, "redis: out of memory");
    return -1;
}

/* Log through the engine whose recorder callback runs here. */
static void rlog(struct rr *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rlog(struct rr *r, const char *fmt, ...)
{
    council_engine *eng = council__recorder_engine();
    char line[700];
    va_list ap;

    if (eng == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    council__log(eng, "run %s: redis recorder (%s): %s", r->run_id, r->b->where,
                 line);
}

static int
redis_event(void *state, council_event *ev)
{
    struct rr *r = state;
    struct bridge *b = r->b;
    uint64_t seq = council_event_seq(ev);
    const char *json = council_event_json(ev);
    size_t len = json != NULL ? strlen(json) : 0;
    int wake = 0, rc = 0, first_loss = 0;
    char down[256];

    pthread_mutex_lock(&b->mu);
    if (seq > r->emitted)
        r->emitted = seq;
    if (r->lost_from != 0 || r->phase == PH_FAILED) {
        rc = -1;
    } else if (council__event_is_terminal(council_event_type_of(ev))) {
        /* Written with the outcome, at finalize. */
        r->held = council_event_ref(ev);
    } else if (json == NULL || r->qbytes + len > r->max_buf) {
        r->lost_from = seq;
        first_loss = 1;
        rc = -1;
    } else {
        if (r->qn == r->qcap) {
            size_t cap = r->qcap != 0 ? r->qcap * 2 : 64;
            struct ent *nq = council__realloc(r->q, cap * sizeof(*nq));

            if (nq == NULL) {
                r->lost_from = seq;
                first_loss = 1;
                rc = -1;
                goto out;
            }
            r->q = nq;
            r->qcap = cap;
        }
        r->q[r->qn].ev = council_event_ref(ev);
        r->q[r->qn].json = json;
        r->q[r->qn].len = len;
        r->qn++;
        r->qbytes += len;
        r->queued = seq;
        if (++r->since_wake >= WAKE_EVERY) {
            r->since_wake = 0;
            wake = 1;
        }
    }
out:
    snprintf(down, sizeof(down), "%s", b->up ? "" : b->down);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        uv_async_send(&b->wake);
    if (first_loss)
        rlog(r,
             "%zu bytes of events wait for Redis (the bound): seq %llu and "
             "every later event of the run are lost; %s will hold seq "
             "1..%llu at most%s%s",
             r->max_buf, (unsigned long long)seq, r->evkey,
             (unsigned long long)(seq - 1), down[0] != '\0' ? "; Redis: " : "",
             down);
    return rc;
}

static void
redis_flush(void *state)
{
    struct rr *r = state;

    pthread_mutex_lock(&r->b->mu);
    r->since_wake = 0;
    pthread_mutex_unlock(&r->b->mu);
    uv_async_send(&r->b->wake);
}

static char *
dup_or_empty(const char *s)
{
    return council__strdup(s != NULL ? s : "");
}

static void
redis_finalize(void *state, const council_outcome *o)
{
    struct rr *r = state;
    struct bridge *b = r->b;
    council_outcome_kind kind =
        o != NULL ? council_outcome_kind_of(o) : COUNCIL_OUTCOME_CRASHED;
    uint64_t wait_ms = r->wait_ms;
    struct timespec until;
    uint64_t until_ns;
    int done, timed_out = 0, free_here = 0;
    uint64_t lost, held_by_redis, emitted;
    char status[300], down[256];

    clock_gettime(CLOCK_MONOTONIC, &until);
    until_ns = (uint64_t)until.tv_sec * 1000000000u + (uint64_t)until.tv_nsec +
               wait_ms * 1000000u;
    pthread_mutex_lock(&b->mu);
    if (!b->up) {
        if (b->giveup_ns == 0)
            b->giveup_ns = until_ns;
        else if (b->giveup_ns < until_ns)
            until_ns = b->giveup_ns;
    }
    until.tv_sec = (time_t)(until_ns / 1000000000u);
    until.tv_nsec = (long)(until_ns % 1000000000u);
    if (r->held != NULL) {
        r->fin_seq = council_event_seq(r->held);
        r->fin_ev = dup_or_empty(council_event_json(r->held));
    } else {
        /* No terminal event (crashed): the entry holds the outcome
         * alone, after the last event. */
        r->fin_seq = r->emitted + 1;
    }
    r->fin_kind = dup_or_empty(council_outcome_kind_name(kind));
    r->fin_reason = dup_or_empty(o != NULL ? council_outcome_reason(o) : "");
    r->fin_json = dup_or_empty(o != NULL ? council_outcome_json(o) : "");
    if (r->fin_kind == NULL || r->fin_reason == NULL || r->fin_json == NULL ||
        (r->held != NULL && r->fin_ev == NULL))
        fail(r, "out of memory at the end of the run");
    r->fin = 1;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->wake);

    pthread_mutex_lock(&b->mu);
    while (r->phase != PH_FINISHED && r->phase != PH_FAILED && !timed_out)
        timed_out = pthread_cond_timedwait(&r->cv, &b->mu, &until) == ETIMEDOUT;
    done = r->phase == PH_FINISHED;
    held_by_redis = r->acked;
    /* emitted counts the terminal event, not an outcome-only entry. */
    emitted = r->emitted;
    lost = held_by_redis < emitted ? emitted - held_by_redis : 0;
    snprintf(status, sizeof(status), "%s", r->status);
    snprintf(down, sizeof(down), "%s", b->up ? "" : b->down);
    if (r->inflight) {
        r->abandoned = 1; /* freed by its completion, on the loop */
    } else {
        list_remove(b, r);
        free_here = 1;
    }
    pthread_mutex_unlock(&b->mu);

    if (!done)
        rlog(r,
             "the end of the run was not written to %s%s: %s holds seq "
             "1..%llu of %llu%s%s%s%s",
             r->hkey, timed_out ? " within the finalize bound" : "", r->evkey,
             (unsigned long long)held_by_redis, (unsigned long long)emitted,
             status[0] != '\0' ? "; " : "", status,
             down[0] != '\0' ? "; Redis: " : "", down);
    else if (lost > 0)
        rlog(r,
             "%llu of %llu events lost; %s holds seq 1..%llu and %s says so "
             "(lost, emitted)",
             (unsigned long long)lost, (unsigned long long)emitted, r->evkey,
             (unsigned long long)held_by_redis, r->hkey);
    if (free_here)
        rr_free(r);
    bridge_put(b);
}

static const council_recorder_ops redis_ops = {
    .version = COUNCIL_RECORDER_OPS_VERSION,
    .init = redis_init,
    .handle_event = redis_event,
    .handle_finalize = redis_finalize,
    .handle_flush = redis_flush,
};

const council_recorder_ops *
council_recorder_redis(void)
{
    return &redis_ops;
}

council_err
council_redis_url_check(const char *url, council_diag *diag)
{
    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    return council__conn_check_url(url, NULL, 0, diag);
}
