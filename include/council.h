/* SPDX-License-Identifier: MIT */
/*
 * council.h - the whole public API of libcouncil.
 *
 * council runs LLM councils: several models answer one question, review each
 * other's answers, and a chairman model writes the final answer.  Every
 * deliberation is a supervised *run* that streams *events*; *recorders* see
 * every event of a run, in order, and are finalized exactly once however the
 * run ends (completed, failed, cancelled or crashed).
 *
 * What is not declared here is not API.  The council command, its server and
 * its mock LLM use nothing else.
 *
 * Conventions used by every function below:
 *   - Functions that can fail return council_err (0 = COUNCIL_OK) and give
 *     their product through an out-pointer.  Destructors accept NULL.
 *   - Each comment says who owns what ("borrows", "takes ownership", "new
 *     reference") and from which threads a function may be called.
 *   - Callback-taking functions: if they return an error the callback is
 *     never called; if they return COUNCIL_OK the promise stated for that
 *     callback holds (e.g. handle_finalize exactly once).
 *   - User callbacks (recorders, subscribers) never run on the engine's loop
 *     thread; they run on the engine's recorder pool, one callback at a time
 *     per recorder or subscriber.
 */
#ifndef COUNCIL_H
#define COUNCIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(COUNCIL_BUILDING) && defined(__GNUC__)
#define COUNCIL_API __attribute__((visibility("default")))
#else
#define COUNCIL_API
#endif

#define COUNCIL_VERSION_MAJOR 0
#define COUNCIL_VERSION_MINOR 1
#define COUNCIL_VERSION_PATCH 0
/* 0xMMmmpp, comparable with < and >. */
#define COUNCIL_VERSION_NUM 0x000100

/* The library's version string, e.g. "0.1.0".  Static storage. Any thread. */
COUNCIL_API const char *council_version(void);

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* Append-only; values are never renumbered. */
typedef enum council_err {
    COUNCIL_OK = 0,
    COUNCIL_ENOMEM = 1,    /* an allocation failed; objects stay valid */
    COUNCIL_EINVAL = 2,    /* a bad argument */
    COUNCIL_EPARSE = 3,    /* malformed input; see the council_diag */
    COUNCIL_ENOTFOUND = 4, /* no such run, file, council, member */
    COUNCIL_EEXIST = 5,    /* e.g. a caller-chosen run id already in use */
    COUNCIL_EREFUSED = 6,  /* a recorder's init refused; see the diag */
    COUNCIL_ECANCELED = 7, /* cancelled, or the engine shut down */
    COUNCIL_ETIMEDOUT = 8, /* a wait or deadline expired */
    COUNCIL_ECLOSED = 9,   /* the engine is closing or closed */
    COUNCIL_EIO = 10,      /* an operating-system or I/O error */
    COUNCIL_EDEADLK = 11,  /* the call would wait on itself */
    COUNCIL_ESTART = 12,   /* the run host could not be started */
    COUNCIL_EHTTP = 13,    /* an HTTP-level failure */
    COUNCIL_EINTERNAL = 14 /* a broken invariant; please report it */
} council_err;

/* A short English description of err.  Static storage.  Any thread. */
COUNCIL_API const char *council_strerror(council_err err);

/*
 * Where and why an input was rejected.  Filled by functions that parse or
 * validate; filling it never allocates.  line and col are 1-based, 0 when
 * unknown.  file is the name given by the caller (truncated to fit).
 */
typedef struct council_diag {
    char file[256];
    int line;
    int col;
    char msg[256];
} council_diag;

/* ------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------ */

/*
 * Replace the allocator used by the library (like uv_replace_allocator).
 * Call before any other council function, from one thread, or not at all.
 * All four functions must be given.  The library never aborts when an
 * allocation fails: the call in progress returns COUNCIL_ENOMEM.
 */
COUNCIL_API council_err council_set_allocator(
    void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
    void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

/* Frees memory the library handed to the caller (e.g. council_event_json
 * copies, council_outcome_json).  NULL is fine. Any thread. */
COUNCIL_API void council_free(void *p);

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* Event types, documented with their fields in docs/events.md.  Append-only. */
typedef enum council_event_type {
    COUNCIL_EV_RUN_STARTED = 1,
    COUNCIL_EV_STAGE_STARTED,
    COUNCIL_EV_STAGE_COMPLETED,
    COUNCIL_EV_MEMBER_STARTED,
    COUNCIL_EV_MEMBER_DELTA,
    COUNCIL_EV_MEMBER_COMPLETED,
    COUNCIL_EV_MEMBER_FAILED,
    COUNCIL_EV_REVIEW_COMPLETED,
    COUNCIL_EV_RANKINGS_AGGREGATED,
    COUNCIL_EV_SYNTHESIS_STARTED,
    COUNCIL_EV_SYNTHESIS_DELTA,
    COUNCIL_EV_SYNTHESIS_COMPLETED,
    COUNCIL_EV_RUN_COMPLETED,
    COUNCIL_EV_RUN_FAILED
} council_event_type;

/*
 * An event of a run: immutable and reference-counted.  Fan-out to many
 * subscribers shares one event.  Every accessor may be called from any
 * thread while the caller holds a reference; returned strings are borrowed
 * and live as long as the event.
 */
typedef struct council_event council_event;

/* New reference to ev (returns ev).  Any thread. */
COUNCIL_API council_event *council_event_ref(council_event *ev);
/* Drops a reference; the last one frees the event.  NULL is fine. */
COUNCIL_API void council_event_unref(council_event *ev);

COUNCIL_API council_event_type council_event_type_of(const council_event *ev);
/* "run_started", "member_delta", ... ; "unknown" for a bad value. */
COUNCIL_API const char *council_event_type_name(council_event_type type);
/* 1, 2, 3, ... within a run, without gaps. */
COUNCIL_API uint64_t council_event_seq(const council_event *ev);
COUNCIL_API const char *council_event_run_id(const council_event *ev);
/* Wall-clock time of the event, microseconds since the Unix epoch. */
COUNCIL_API int64_t council_event_time_us(const council_event *ev);
/* The stage ("answer", "review", "synthesis"), or NULL. */
COUNCIL_API const char *council_event_stage(const council_event *ev);
/* The member's name, or NULL for run-level events. */
COUNCIL_API const char *council_event_member(const council_event *ev);
/* The streamed text of a delta, or the full text of a *_completed, or
 * NULL.  council_event_text_len gives its length in bytes. */
COUNCIL_API const char *council_event_text(const council_event *ev);
COUNCIL_API size_t council_event_text_len(const council_event *ev);
/* The stage round (1-based) where the strategy has rounds, else 0. */
COUNCIL_API int council_event_round(const council_event *ev);
/*
 * The event as one line of JSON (no newline), UTF-8, as documented in
 * docs/events.md.  Rendered at most once per event, on first use, then
 * shared.  Borrowed: valid while the caller holds a reference.  NULL only
 * if memory ran out.
 */
COUNCIL_API const char *council_event_json(council_event *ev);

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------ */

typedef enum council_outcome_kind {
    COUNCIL_OUTCOME_OK = 1,        /* run_completed */
    COUNCIL_OUTCOME_CANCELLED = 2, /* run_failed holding a cancelled error */
    COUNCIL_OUTCOME_ERROR = 3,     /* any other run_failed, or start failed */
    COUNCIL_OUTCOME_CRASHED = 4    /* the host ended without a terminal event */
} council_outcome_kind;

/*
 * How a run ended.  Immutable; owned by the run (or by the call that hands
 * it to you), borrowed by callbacks for the duration of the call.
 */
typedef struct council_outcome council_outcome;

COUNCIL_API council_outcome_kind
council_outcome_kind_of(const council_outcome *o);
/* "ok", "cancelled", "error", "crashed". */
COUNCIL_API const char *council_outcome_kind_name(council_outcome_kind kind);
/* ok: the result object as JSON text; error/cancelled: the partial result,
 * or NULL.  Borrowed. */
COUNCIL_API const char *council_outcome_result_json(const council_outcome *o);
/* error/cancelled: the JSON array of errors, each {"kind","message",...};
 * NULL for ok and crashed.  Borrowed. */
COUNCIL_API const char *council_outcome_errors_json(const council_outcome *o);
/* crashed: the reason ("shutdown", "signal SIGKILL", "exit status 3",
 * "worker lost", ...); error: the first error's message; else NULL. */
COUNCIL_API const char *council_outcome_reason(const council_outcome *o);
/* The outcome as one JSON object, {"outcome":"ok",...}.  Borrowed. */
COUNCIL_API const char *council_outcome_json(const council_outcome *o);

/* ------------------------------------------------------------------------
 * Recorders
 * ------------------------------------------------------------------------ */

/*
 * A recorder is a callback table hosted for one run.  The engine gives each
 * recorder a mailbox; its callbacks are called one at a time, never
 * overlapping, on the engine's recorder pool (init: on the thread that
 * called council_run_start).  A recorder may block (a disk write, a
 * database) without delaying the run or other recorders.
 *
 * Promises, for a run started with council_run_start:
 *   1. init is called before the run host exists, so handle_event sees every
 *      event from run_started (seq 1) on, in seq order, each once, the
 *      terminal event included.
 *   2. If init refuses, council_run_start fails with COUNCIL_EREFUSED, the
 *      run never starts, that recorder gets no further call, and each
 *      recorder of the run whose init had succeeded gets handle_finalize
 *      with an error outcome naming the refusal.
 *   3. If init succeeded, handle_finalize is called exactly once, after the
 *      last handle_event; no call follows it.
 *   4. A handle_event that returns non-zero is reported (a log line, the
 *      engine's recorder_failures counter); the recorder keeps receiving
 *      events and is still finalized; the run and the others are unaffected.
 * Callbacks may call any council function, council_run_cancel included,
 * except council_run_wait on their own run and council_engine_close.
 */
typedef struct council_recorder_ops {
    int version; /* COUNCIL_RECORDER_OPS_VERSION */
    /*
     * Called once, before the run starts.  args is the pointer given in the
     * recorder spec (borrowed for this call only).  Set *state for the later
     * calls.  Return 0 to accept; non-zero to refuse, after writing the
     * reason into why (size bytes, NUL-terminated).
     */
    int (*init)(const char *run_id, void *args, void **state, char *why,
                size_t why_size);
    /* Each event of the run, in seq order.  ev is borrowed (take a
     * reference with council_event_ref to keep it).  Return 0, or non-zero
     * to report a failure. */
    int (*handle_event)(void *state, council_event *ev);
    /* Exactly once, last.  outcome is borrowed for the call.  Release state
     * here. */
    void (*handle_finalize)(void *state, const council_outcome *outcome);
    /*
     * Optional (may be NULL).  Called when the recorder's mailbox has run
     * empty after one or more handle_event calls: the moment to commit a
     * batch.  Under load, batches grow by themselves; when events trickle,
     * each is flushed promptly.  Never after handle_finalize.
     */
    void (*handle_flush)(void *state);
} council_recorder_ops;

#define COUNCIL_RECORDER_OPS_VERSION 1

/* A recorder for one run: its table and the args handed to init. */
typedef struct council_recorder_spec {
    const council_recorder_ops *ops;
    void *args;
} council_recorder_spec;

/*
 * Built-in recorders.  args is a NUL-terminated path, borrowed by init.
 *   sqlite: the database file (created if missing; WAL mode; tables `runs`
 *           and `events`, see docs/storage.md).
 *   jsonl:  a directory; the run is written to DIR/<run_id>.jsonl, one event
 *           per line, then one line holding the outcome.
 */
COUNCIL_API const council_recorder_ops *council_recorder_sqlite(void);
COUNCIL_API const council_recorder_ops *council_recorder_jsonl(void);

/* ------------------------------------------------------------------------
 * Council definitions
 * ------------------------------------------------------------------------ */

/* A loaded, validated council definition.  Immutable once loaded; may be
 * shared by runs on any thread; free it after the runs using it started
 * (runs keep what they need). */
typedef struct council_def council_def;

/*
 * Load a council from a YAML or JSON file.  On COUNCIL_EPARSE (or EINVAL
 * for a valid document with a wrong shape) diag holds the file, line,
 * column and what was expected.  Any thread.
 */
COUNCIL_API council_err council_def_load_file(const char *path,
                                              council_def **out,
                                              council_diag *diag);
/* The same from memory; name is used in diagnostics (e.g. "<inline>"). */
COUNCIL_API council_err council_def_load_string(const char *text, size_t len,
                                                const char *name,
                                                council_def **out,
                                                council_diag *diag);
COUNCIL_API void council_def_free(council_def *def);
COUNCIL_API const char *council_def_name(const council_def *def);
COUNCIL_API size_t council_def_member_count(const council_def *def);
COUNCIL_API const char *council_def_member_name(const council_def *def,
                                                size_t i);
/* The strategy: "rank", "debate" or "vote".  Static storage; NULL for a
 * NULL def.  Any thread. */
COUNCIL_API const char *council_def_strategy(const council_def *def);

/*
 * Check that the environment variable named by every provider's
 * api_key_env is set and not empty (the key itself is read when a run
 * starts).  COUNCIL_OK if so, or if no provider names one.  COUNCIL_EINVAL
 * at the first provider whose variable is missing: diag holds the file
 * the def was loaded from, the line and column of that api_key_env value,
 * and "providers.NAME.api_key_env: environment variable VAR is not set".
 * Borrows def.  Any thread, but not while another thread changes the
 * environment (it calls getenv).
 */
COUNCIL_API council_err council_def_check_env(const council_def *def,
                                              council_diag *diag);

/*
 * Parse a duration as council files write them: "250ms", "3s", "5m", "1h",
 * or a bare number of milliseconds.  COUNCIL_EINVAL if malformed, negative
 * or too large.  Any thread.
 */
COUNCIL_API council_err council_duration_parse(const char *text,
                                               uint64_t *out_ms);

/* ------------------------------------------------------------------------
 * Engine
 * ------------------------------------------------------------------------ */

typedef struct council_engine council_engine;

typedef struct council_engine_opts {
    int version;          /* COUNCIL_ENGINE_OPTS_VERSION */
    int recorder_threads; /* threads running recorder and subscriber
                             callbacks; 0 = default (4) */
    /* Where the library writes its log lines (recorder failures and the
     * like); NULL = nowhere (the counters still count).  Called from any
     * thread, possibly from several at once; line has no newline. */
    void (*log)(const char *line, void *ud);
    void *log_ud;
    /* Event-loop threads hosting the runs: 0 = default ($COUNCIL_LOOP_THREADS
     * if set to 1..64, else 1), at most 64.
     * Each run lives on one loop for its whole life (assigned round-robin
     * at start), so all per-run promises hold with any number; more loops
     * let provider traffic of many concurrent runs use more cores. */
    int loop_threads;
} council_engine_opts;

#define COUNCIL_ENGINE_OPTS_VERSION 1

/*
 * Open an engine: one event-loop thread that hosts every run, plus the
 * recorder pool.  opts may be NULL for defaults.  Any thread.
 */
COUNCIL_API council_err council_engine_open(const council_engine_opts *opts,
                                            council_engine **out);

/*
 * Close the engine.  Every run still in flight ends as crashed("shutdown"):
 * its provider calls stop, each recorder gets handle_finalize once.  Returns
 * when every run has ended and every recorder has been finalized; with
 * well-behaved recorders that is within milliseconds (a recorder blocked in
 * a callback delays close until it returns).  Then every thread and handle
 * of the engine is gone.  NULL is fine.  Not from a recorder or subscriber
 * callback, and not twice.
 */
COUNCIL_API void council_engine_close(council_engine *engine);

/* Counters, for tests and metrics.  Any thread; values are snapshots. */
typedef struct council_engine_stats {
    uint64_t runs_started;
    uint64_t runs_active;
    uint64_t events_published;
    uint64_t deliveries;        /* events handed to recorders/subscribers */
    uint64_t recorder_failures; /* non-zero handle_event returns */
    uint64_t events_dropped;    /* emitted after a run's terminal event */
    /* Events that could not be queued to a subscriber because memory ran
     * out and did not come back before the run ended (each is logged; the
     * subscriber keeps the gapless prefix it got and is still finalized).
     * 0 unless allocations failed. */
    uint64_t events_lost;
} council_engine_stats;

COUNCIL_API void council_engine_stats_get(council_engine *engine,
                                          council_engine_stats *out);

/* ------------------------------------------------------------------------
 * Runs
 * ------------------------------------------------------------------------ */

typedef struct council_run council_run;

/* One message of a conversation. */
typedef struct council_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} council_message;

typedef struct council_run_opts {
    int version; /* COUNCIL_RUN_OPTS_VERSION */
    /* Caller-chosen id (printable ASCII, 1..64 bytes, no '/' or spaces), or
     * NULL for a new UUIDv7. */
    const char *run_id;
    /* Whole-run deadline in milliseconds; 0 = the council's limits. */
    uint64_t deadline_ms;
    /* Seed for the reviewers' shuffles; 0 = random.  Recorded in events. */
    uint64_t seed;
    const council_recorder_spec *recorders;
    size_t n_recorders;
} council_run_opts;

#define COUNCIL_RUN_OPTS_VERSION 1

/*
 * Start a run of council def on a question.  Every recorder's init is
 * called first, on this thread (see council_recorder_ops for the
 * promises); then the run host starts on the loop thread.  On COUNCIL_OK
 * *out is a new reference to the run (release with council_run_release).
 * Errors: COUNCIL_EREFUSED (diag->msg holds the recorder's reason),
 * COUNCIL_EEXIST (run id in use), COUNCIL_EINVAL, COUNCIL_ESTART (the host
 * could not start; the recorders were finalized with an error naming the
 * cause), COUNCIL_ECLOSED, COUNCIL_ENOMEM.  diag may be NULL.  Borrows def,
 * question and opts for the call.  Any thread, callbacks included.
 */
COUNCIL_API council_err council_run_start(
    council_engine *engine, const council_def *def, const char *question,
    const council_run_opts *opts, council_run **out, council_diag *diag);

/* The same with a conversation (the last message is the user's turn). */
COUNCIL_API council_err council_run_start_messages(
    council_engine *engine, const council_def *def,
    const council_message *messages, size_t n_messages,
    const council_run_opts *opts, council_run **out, council_diag *diag);

/* The run's id.  Borrowed; lives as long as the reference. */
COUNCIL_API const char *council_run_id(const council_run *run);

/*
 * Ask the run to stop.  It ends with run_failed holding an error of kind
 * "cancelled" and its partial result (outcome cancelled), unless it ended
 * first.  Does not wait.  Any thread, callbacks of the same run included.
 * Returns COUNCIL_OK also when the run had already ended.
 */
COUNCIL_API council_err council_run_cancel(council_run *run);
/* The same by id; COUNCIL_ENOTFOUND if no such run is in flight. */
COUNCIL_API council_err council_engine_cancel(council_engine *engine,
                                              const char *run_id);

/*
 * Wait until the run has ended and every recorder of the run has been
 * finalized, or timeout_ms elapses (UINT64_MAX = no limit).  On COUNCIL_OK
 * *outcome (if not NULL) is borrowed from the run and lives as long as the
 * caller's reference.  COUNCIL_ETIMEDOUT if time ran out;
 * COUNCIL_EDEADLK if called from a callback of the same run.  Any thread.
 */
COUNCIL_API council_err council_run_wait(council_run *run, uint64_t timeout_ms,
                                         const council_outcome **outcome);

/* Drop a reference to a run (the run goes on).  NULL is fine. */
COUNCIL_API void council_run_release(council_run *run);

/* ------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------ */

typedef struct council_sub council_sub;

/*
 * Follow a run's events from now on.  on_event gets each later event in
 * seq order; on_end is called exactly once, last: with the outcome when
 * the run ends, or with NULL after council_unsubscribe.  Callbacks run on
 * the recorder pool, one at a time for this subscription.
 * COUNCIL_ENOTFOUND if the run is not in flight (it never started, or has
 * ended).  Any thread.
 */
COUNCIL_API council_err
council_run_subscribe(council_engine *engine, const char *run_id,
                      void (*on_event)(council_event *ev, void *ud),
                      void (*on_end)(const council_outcome *outcome, void *ud),
                      void *ud, council_sub **out);

/*
 * Stop following.  When it returns, no callback of sub is running or will
 * run except on_end(NULL) if it has not been called yet, which has run by
 * then (unless called from sub's own callback: then on_end follows when
 * that callback returns).  Frees sub.  NULL is fine.  Any thread.
 */
COUNCIL_API void council_unsubscribe(council_sub *sub);

/* ------------------------------------------------------------------------
 * Run store (the sqlite recorder's database), read side
 * ------------------------------------------------------------------------ */

typedef struct council_run_row {
    const char *run_id;
    const char *council;  /* council name */
    const char *question; /* the user's (last) question */
    int64_t started_us;   /* wall clock, microseconds since the epoch */
    int64_t ended_us;     /* 0 if the run has no outcome recorded */
    const char *outcome;  /* "ok", "cancelled", "error", "crashed" or NULL */
    uint64_t events;      /* events stored */
} council_run_row;

/*
 * List the runs stored in the sqlite database at path, newest first, at
 * most limit (0 = all).  cb is called on this thread for each row; the row
 * is borrowed for the call; return non-zero from cb to stop.  Errors:
 * COUNCIL_ENOTFOUND (no file), COUNCIL_EIO (not a council store; diag says
 * why).  Any thread.
 */
COUNCIL_API council_err council_store_list(const char *path, size_t limit,
                                           int (*cb)(const council_run_row *row,
                                                     void *ud),
                                           void *ud, council_diag *diag);

/*
 * The conversation to continue a stored run with: the messages of its
 * run_started event (the run's whole input), then its final answer (the
 * "answer" of its run_completed result) as an "assistant" message.  Append
 * the next "user" message and pass the lot to council_run_start_messages.
 * On COUNCIL_OK *out is a new array of *n messages (n >= 2), and it and
 * every string in it are the caller's: free them with
 * council_store_conversation_free.  Errors: COUNCIL_ENOTFOUND (no such
 * file, or no run run_id in it), COUNCIL_EINVAL (the run has no completed
 * answer: "run X did not complete; it has no answer to continue from"; or
 * a bad argument), COUNCIL_EIO (not a council store, or its events are
 * damaged), COUNCIL_ENOMEM; diag (may be NULL) says why.  Opens the file
 * read-only.  Any thread.
 */
COUNCIL_API council_err council_store_conversation(const char *path,
                                                   const char *run_id,
                                                   council_message **out,
                                                   size_t *n,
                                                   council_diag *diag);
/* Frees what council_store_conversation gave (n as it gave).  NULL is
 * fine.  Any thread. */
COUNCIL_API void council_store_conversation_free(council_message *msgs,
                                                 size_t n);

/* ------------------------------------------------------------------------
 * Mock LLM server (offline use, tests, benchmarks)
 * ------------------------------------------------------------------------ */

typedef struct council_mockllm council_mockllm;

typedef struct council_mockllm_opts {
    int version; /* COUNCIL_MOCKLLM_OPTS_VERSION */
    /* "127.0.0.1:0" style; port 0 picks a free port; NULL = 127.0.0.1:0. */
    const char *listen;
    uint64_t seed;         /* answers are derived from prompt and seed */
    uint64_t latency_ms;   /* delay before the first byte of each answer */
    double tokens_per_sec; /* streaming pace; 0 = as fast as possible */
    /*
     * Faults, as a spec string (see docs/mock-llm.md), e.g.
     * "model=bad-*:http=503;rate=0.1:disconnect=3".  NULL = none.
     */
    const char *faults;
} council_mockllm_opts;

#define COUNCIL_MOCKLLM_OPTS_VERSION 1

/*
 * Start a mock LLM server (the OpenAI Chat Completions and Anthropic
 * Messages APIs) on its own threads.  On
 * COUNCIL_OK it is listening.  On COUNCIL_EINVAL (bad listen address or
 * fault spec) diag says why.  Any thread.
 */
COUNCIL_API council_err council_mockllm_open(const council_mockllm_opts *opts,
                                             council_mockllm **out,
                                             council_diag *diag);
/* "http://127.0.0.1:PORT/v1" - the base_url for a provider.  Borrowed. */
COUNCIL_API const char *council_mockllm_base_url(const council_mockllm *m);
/* Requests served so far. */
COUNCIL_API uint64_t council_mockllm_requests(const council_mockllm *m);
/* Stop serving and free.  NULL is fine. */
COUNCIL_API void council_mockllm_close(council_mockllm *m);

#ifdef __cplusplus
}
#endif

#endif /* COUNCIL_H */
