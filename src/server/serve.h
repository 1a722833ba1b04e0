/* SPDX-License-Identifier: MIT */
/*
 * council serve: the HTTP service (REST runs API, Server-Sent Events, an
 * OpenAI-compatible chat endpoint, metrics).  Internal to the council
 * command: it uses include/council.h, jansson and libmicrohttpd only.
 *
 * Files: server.c (daemon, dispatch, auth, limits, errors), route.c (the
 * request target decoded, routes, methods, query values: route.h),
 * conns.c (the time a client has to send a request), runs.c (the run
 * registry, the server's own recorder, idempotency keys, the reaper),
 * stream.c (event followers: SSE and chat streams, heartbeats, disconnect
 * detection), chat.c (chat completions and models; chat_req.c reads
 * their request bodies: chat_req.h), councils.c (the
 * council directory), metrics.c, util.c (buffers, JSON text, time).
 *
 * Threads: libmicrohttpd's worker threads run the request handlers; the
 * engine's recorder pool runs the server's recorder (srv_rec_ops); the
 * ticker thread sends heartbeats, notices clients that went away and cuts
 * connections past --request-timeout (conns.c); the reaper thread waits
 * for ended runs' recorders and then lets go of them; the command's main
 * thread waits for signals.
 *
 * Locking: one mutex, srv.mu, guards every mutable shared field marked
 * "under mu" below: the registry, each run's event list, waiters and
 * state, each stream's suspension state, the idempotency table, the
 * council set pointer and the counters.  conns.c keeps its connections
 * under srv.conn_mu, taken after srv.mu or alone, never before it.  Lock order:
 * srv.mu, then libmicrohttpd's internal locks (MHD_suspend_connection and
 * MHD_resume_connection are called with srv.mu held).  No libcouncil call
 * that can wait is made with srv.mu held (council_run_start,
 * council_run_wait, council_engine_cancel run outside it).  A connection
 * is suspended with srv.mu held and only resumed by whoever unlinks it
 * from its run's waiter list with srv.mu held, so MHD_resume_connection
 * is never called on a connection that is not suspended.
 */
#ifndef COUNCIL_SERVE_H
#define COUNCIL_SERVE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "council.h"
#include "route.h"

/* ---- small utilities (util.c) ------------------------------------------ */

/* A growable byte buffer; oom is sticky. */
typedef struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} sbuf;

void sbuf_add(sbuf *b, const void *p, size_t n);
void sbuf_str(sbuf *b, const char *s);
void sbuf_fmt(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append the JSON string body of p[0..n) (no quotes): escaped, with every
 * byte sequence that is not UTF-8 replaced by U+FFFD. */
void sbuf_json(sbuf *b, const char *p, size_t n);
void sbuf_free(sbuf *b);
/* Hand the bytes over (NUL-terminated); the buffer is left empty.  NULL
 * if memory ran out. */
char *sbuf_take(sbuf *b);

uint64_t mono_ns(void);
int64_t wall_us(void);
/* RFC 3339 UTC with microseconds, like event "ts". */
void fmt_time(int64_t us, char *out, size_t size);
/* Equal strings, in time that depends only on the lengths. */
int const_time_eq(const char *a, size_t alen, const char *b, size_t blen);
/* A hash of bytes (FNV-1a 64). */
uint64_t hash64(const void *p, size_t n, uint64_t seed);

/* ---- the council set (councils.c) -------------------------------------- */

typedef struct centry {
    char *name;
    char *file; /* where it came from ("<demo>" for the built-in one) */
    council_def *def;
    int64_t loaded_us;
} centry;

/* An immutable set of councils, reference-counted (refs under srv.mu). */
typedef struct cset {
    int refs;
    size_t n;
    centry *e;
} cset;

/* Load every *.yaml, *.yml and *.json file of dir.  On error returns -1
 * with "FILE:LINE:COL: message" (or "DIR: why") in err. */
int cset_load_dir(const char *dir, cset **out, char *err, size_t errsz);
/* A set holding one council loaded from text (the built-in demo). */
int cset_load_text(const char *text, const char *name, cset **out, char *err,
                   size_t errsz);
void cset_free(cset *c);
const centry *cset_find(const cset *c, const char *name);

/* ---- the server --------------------------------------------------------- */

#define SRV_MAX_RECORD 16

typedef struct srv_opts {
    const char *listen;       /* numeric HOST:PORT */
    const char *councils_dir; /* NULL: the built-in demo council */
    const char *db;           /* the SQLite store (always recorded to) */
    const council_recorder_ops *rec_ops[SRV_MAX_RECORD]; /* more --record */
    void *rec_args[SRV_MAX_RECORD]; /* borrowed: live while the server does */
    int n_rec;
    const char *token; /* NULL or "": no auth */
    int insecure;
    int no_inline;
    size_t max_runs;
    size_t max_streams;
    size_t max_body;
    uint64_t heartbeat_ms;
    int threads;              /* HTTP worker threads */
    int isolation;            /* COUNCIL_ISOLATION_* for every run */
    const char *host_program; /* for isolated runs; NULL: the library's */
    /* The most time a client has to send a whole request, headers and
     * body, from the connection's opening or its previous request's end
     * (conns.c). */
    uint64_t request_timeout_ms;
    size_t max_client_conns; /* connections per client address; 0: any */
} srv_opts;

typedef struct srv srv;
typedef struct srun srun;
typedef struct stream stream;
typedef struct store_replay store_replay;

/* Kinds of followers of a run's events. */
typedef enum skind {
    SK_SSE,       /* GET /v1/runs/{id}/events */
    SK_CHAT,      /* streamed chat completion */
    SK_CHAT_WAIT, /* non-streamed chat completion: waits for the end */
    SK_STORE      /* SSE replay of a stored run (never suspends) */
} skind;

/*
 * A run started by this server.  Created before council_run_start (its
 * recorder needs it), shared by the registry, the recorder, the reaper
 * and every stream following it; freed when the last reference goes.
 */
struct srun {
    srv *s;
    int refs;      /* under mu */
    char id[72];   /* set by the recorder's init, before the run starts */
    char *council; /* the council's name */
    char *question;
    int64_t started_us;
    council_run *run; /* under mu; released by the reaper */

    /* Under mu. */
    council_event **ev; /* ev[i] has seq i + 1 */
    size_t n_ev;
    size_t cap_ev;
    int lost;     /* an event could not be kept (memory): followers stop */
    int terminal; /* run_completed or run_failed is in ev */
    int ended;    /* the server's recorder was finalized */
    int stored;   /* every recorder of the run was finalized */
    int in_registry;
    int counted; /* counts against max_runs */
    int reap_queued;
    int inited; /* the recorder's init ran */
    council_outcome_kind kind;
    char *outcome_json;
    char *summary; /* the record of an ended run, rendered once */
    /* What the store's record of the ended run lacks, found by the
     * reaper once every recorder was finalized: no outcome, or fewer
     * events than the run emitted (a full disk).  0: it is whole. */
    int store_short;
    int64_t store_events;   /* the events it holds */
    char store_outcome[16]; /* its outcome, "running" if none */
    /* Failed handle_event calls by recorder index (engine_log): the first
     * is logged, the rest counted and summed up by the reaper. */
    struct {
        unsigned long long n, first, last;
    } rec_fail[SRV_MAX_RECORD + 2];
    int64_t ended_us;
    stream *waiters;   /* suspended followers (circular list) */
    srun *hnext;       /* hash chain */
    srun *prev, *next; /* registry order (oldest first) */
    srun *reap_next;
};

/* Chat completion state of a stream (chat.c). */
typedef struct chat_state chat_state;

/*
 * A follower of a run's events: an SSE client or a chat completion.  One
 * per request; touched by one MHD thread at a time; the fields marked
 * "under mu" are also touched by the threads that wake it.
 */
struct stream {
    srv *s;
    skind kind;
    struct MHD_Connection *conn;
    int fd;
    srun *run;   /* reference; NULL for SK_STORE */
    size_t next; /* events consumed: the next one is run->ev[next] */

    /* Pending output: hdr, then body (borrowed from cur), then tail;
     * or the bytes of out from out_off. */
    char hdr[112];
    size_t hdr_len;
    council_event *cur;
    const char *body;
    size_t body_len;
    const char *tail;
    size_t tail_len;
    size_t off;
    sbuf out;
    size_t out_off;

    int finished; /* end the stream once the pending output is out */
    int failed;   /* end the stream with an error (cut the connection) */

    /* Under mu. */
    int suspended;
    stream *wprev, *wnext;
    int ping;
    int peer_gone;
    uint64_t last_out_ns;
    int counted; /* counts against max_streams */

    chat_state *chat;
    store_replay *replay; /* SK_STORE */
};

/* Counters for /metrics, under mu. */
typedef struct srv_counters {
    uint64_t runs_ok, runs_cancelled, runs_error, runs_crashed;
    uint64_t runs_rejected; /* 429 at max_runs */
    uint64_t streams_rejected;
    uint64_t provider_calls;
    uint64_t provider_errors[12]; /* by class, see metrics.c */
    uint64_t http_requests[6];    /* by status class 1xx..5xx, [0] other */
    uint64_t streams_opened;
    uint64_t reloads, reload_failures;
    uint64_t requests_timed_out; /* cut at --request-timeout (conns.c) */
} srv_counters;

typedef struct idem idem;
typedef struct sconn sconn;

struct srv {
    srv_opts o;
    char *token;
    size_t token_len;
    char url[96];
    council_engine *eng;
    council_mockllm *demo_mock;
    struct MHD_Daemon *d;
    FILE *log;

    pthread_mutex_t mu;
    int mu_init;
    /* Under mu. */
    cset *councils;
    srun **buckets;
    size_t n_buckets;
    size_t n_runs;
    srun *first, *last;
    size_t live;     /* runs counted against max_runs */
    size_t retained; /* ended runs kept in memory */
    size_t streams;  /* streams counted against max_streams */
    int stopping;    /* no new runs */
    int closing;     /* no new suspensions; streams end */
    srv_counters c;
    idem *idem;
    council_store *pool[16]; /* idle read-only store handles (store.c) */
    size_t n_pool;

    /* The reaper: waits for every recorder of ended runs. */
    pthread_t reaper;
    int reaper_started;
    pthread_cond_t reap_cv;
    srun *reap_head, *reap_tail;
    int reap_stop;

    /* The ticker: heartbeats and vanished clients. */
    pthread_t ticker;
    int ticker_started;
    pthread_cond_t tick_cv;
    int tick_stop;
    int cv_init;

    /* Connections still receiving a request, oldest deadline first
     * (conns.c); under conn_mu, which is taken after mu, never before. */
    pthread_mutex_t conn_mu;
    int conn_mu_init;
    sconn *rd_head, *rd_tail;
};

/* server.c */
int srv_open(const srv_opts *o, srv **out, char *err, size_t errsz);
const char *srv_url(const srv *s);
/* Reload the councils directory: 0, or -1 keeping the old set (logged). */
int srv_reload(srv *s);
/* Stop taking new runs (503); other requests are still answered. */
void srv_stop_accepting(srv *s);
/* Runs still in flight. */
size_t srv_live_runs(srv *s);
/* Cancel every run in flight; wait at most timeout_ms for them to end. */
void srv_cancel_all(srv *s, uint64_t timeout_ms);
void srv_close(srv *s);
void srv_log(srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A reply: JSON error {"error":{"type","message"}} with status. */
enum MHD_Result srv_error(struct MHD_Connection *conn, unsigned status,
                          const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 429 for a stream past --max-streams; the connection is closed after it
 * (a client that opens many should not keep them all). */
enum MHD_Result srv_refuse_stream(srv *s, struct MHD_Connection *conn);
/* A reply with a malloc'd body (taken over). */
enum MHD_Result srv_reply(struct MHD_Connection *conn, unsigned status,
                          const char *ctype, char *body, size_t len,
                          const char *const *headers);
/* Count a reply's status for /metrics. */
void srv_count_status(unsigned status);
uint64_t srv_http_count(int cls);
/* A JSON reply from a jansson value (stolen). */
enum MHD_Result srv_reply_json(struct MHD_Connection *conn, unsigned status,
                               json_t *v, const char *const *headers);

/* runs.c */
extern const council_recorder_ops srv_rec_ops;
srun *srun_find(srv *s, const char *id); /* new reference or NULL; mu held */
/* Double the registry's buckets (256 at first): 0, or -1 (memory). */
int reg_grow(srv *s);
/* Unlink r from the registry; the caller drops its reference.  mu held. */
void reg_remove(srv *s, srun *r);
void srun_unref_locked(srv *s, srun *r, srun **to_free);
void srun_release(srv *s, srun *r); /* takes mu */
void srun_free(srun *r);
/* Wake every suspended follower of r (non-streamed chats only once r
 * has ended).  mu held. */
void srun_wake(srun *r);
/* A run's list of suspended followers.  mu held. */
void waiter_link(srun *r, stream *w);
void waiter_unlink(srun *r, stream *w);
void *srv_reaper_main(void *arg);

/* Start a run (POST /v1/runs and chat).  On success *out is a new
 * reference to the registered run.  On failure returns the HTTP status
 * and fills type/msg. */
typedef struct run_req {
    const council_def *def;
    const char *council_name;
    const char *question;        /* or */
    const council_message *msgs; /* with n_msgs */
    size_t n_msgs;
    uint64_t deadline_ms;
    uint64_t seed;
} run_req;
unsigned srv_start_run(srv *s, const run_req *rq, srun **out, const char **type,
                       char *msg, size_t msgsz);

/* Handlers. */
enum MHD_Result runs_post(srv *s, struct MHD_Connection *conn, const char *body,
                          size_t len);
enum MHD_Result runs_list(srv *s, struct MHD_Connection *conn,
                          const srv_target *t);
enum MHD_Result runs_get(srv *s, struct MHD_Connection *conn, const char *id);
/* purge: the value of ?purge= (NULL when absent). */
enum MHD_Result runs_delete(srv *s, struct MHD_Connection *conn, const char *id,
                            const char *purge);
/* The record of a run in memory, in the shape of the store's run record
 * (docs/storage.md) plus "id"; *ended (may be NULL) says whether it had
 * ended. */
json_t *srun_record(srv *s, srun *r, int *ended);

/* Idempotency keys. */
void idem_free(idem *t);

/* stream.c */
stream *stream_new(srv *s, skind kind, struct MHD_Connection *conn, srun *run,
                   size_t after);
/* Count a new stream against max_streams: 0, or -1 when full. */
int stream_admit(srv *s);
void stream_free(stream *st, enum MHD_RequestTerminationCode toe);
enum MHD_Result stream_queue(stream *st, const char *ctype,
                             const char *const *headers);
/* SK_CHAT_WAIT: suspend until the run ends.  1 if suspended, 0 if the
 * run has ended already, -1 if the server is closing. */
int stream_wait_end(stream *st);
int ticker_start(srv *s);
void ticker_stop(srv *s);
/* Resume every suspended connection for good (closing). mu held. */
void streams_resume_all(srv *s);
/* after: the value of ?after= (NULL when absent); head: a HEAD request,
 * answered with the stream's headers and no stream. */
enum MHD_Result events_get(srv *s, struct MHD_Connection *conn, const char *id,
                           const char *after, int head, stream **out);
/* The headers of an event stream, without a body (HEAD). */
enum MHD_Result stream_head(struct MHD_Connection *conn, const char *ctype);

/* chat.c */
enum MHD_Result chat_post(srv *s, struct MHD_Connection *conn, const char *body,
                          size_t len, stream **st_out);
/* Called again after a non-streamed chat's connection is resumed. */
enum MHD_Result chat_resume(srv *s, stream *st);
/* Turn one event into chat output (st->out); sets finished. */
void chat_event(stream *st, council_event *ev);
/* The run ended without a terminal event in its list. */
void chat_end(stream *st);
void chat_state_free(chat_state *c);
enum MHD_Result models_get(srv *s, struct MHD_Connection *conn);

/* store.c: runs read from the store (--db). */
enum MHD_Result store_run_get(srv *s, struct MHD_Connection *conn,
                              const char *id);
/* The store's record of run id, read back after its recorders were
 * finalized: 1 (with *events and outcome filled) when it has no outcome
 * or lacks events, 0 when it is whole or cannot be read (that is said
 * elsewhere). */
int store_record_short(srv *s, const char *id, int64_t *events, char *outcome,
                       size_t size);
/* DELETE /v1/runs/{id} of a run not in flight in this server: 404, or 409
 * naming the run and its outcome (outcome NULL: read it from the store;
 * reason may be NULL). */
enum MHD_Result srv_not_in_flight(srv *s, struct MHD_Connection *conn,
                                  const char *id, const char *outcome,
                                  const char *reason);
enum MHD_Result store_run_purge(srv *s, struct MHD_Connection *conn,
                                const char *id);
enum MHD_Result store_events_get(srv *s, struct MHD_Connection *conn,
                                 const char *id, uint64_t after, int head,
                                 stream **out);
/* SK_STORE: the next stored event (a reference): 1, 0 at the end, -1 if
 * the store failed. */
int store_replay_next(stream *st, council_event **ev);
void store_replay_free(store_replay *rp);
/* Close the idle handles (srv_close, no thread uses the store). */
void store_pool_close(srv *s);

/* conns.c: the bound on receiving a request. */
void conns_init(srv *s);
void conns_destroy(srv *s);
/* MHD_OPTION_NOTIFY_CONNECTION. */
void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                  enum MHD_ConnectionNotificationCode code);
/* The request line arrived (a cut connection then gets a 408). */
void conns_request_line(struct MHD_Connection *conn);
/* The request is in (or answered early): no bound while the reply goes.
 * 0, or -1 if the connection was cut already (close it: MHD_NO). */
int conns_replying(struct MHD_Connection *conn);
/* The request ended: the next one on the connection gets the bound. */
void conns_request_done(struct MHD_Connection *conn);
/* Cut the connections past their bound (the ticker, mu held). */
void conns_sweep(srv *s, uint64_t now_ns);

/* metrics.c */
enum MHD_Result metrics_get(srv *s, struct MHD_Connection *conn);
/* Count provider calls from an event (recorder thread). */
void metrics_event(srv *s, council_event *ev);

#endif
