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
    COUNCIL_ENOMEM = 1,     /* an allocation failed; objects stay valid */
    COUNCIL_EINVAL = 2,     /* a bad argument */
    COUNCIL_EPARSE = 3,     /* malformed input; see the council_diag */
    COUNCIL_ENOTFOUND = 4,  /* no such run, file, council, member */
    COUNCIL_EEXIST = 5,     /* e.g. a caller-chosen run id already in use */
    COUNCIL_EREFUSED = 6,   /* a recorder's init refused; see the diag */
    COUNCIL_ECANCELED = 7,  /* cancelled, or the engine shut down */
    COUNCIL_ETIMEDOUT = 8,  /* a wait or deadline expired */
    COUNCIL_ECLOSED = 9,    /* the engine is closing or closed */
    COUNCIL_EIO = 10,       /* an operating-system or I/O error */
    COUNCIL_EDEADLK = 11,   /* the call would wait on itself */
    COUNCIL_ESTART = 12,    /* the run host could not be started */
    COUNCIL_EHTTP = 13,     /* an HTTP-level failure */
    COUNCIL_EINTERNAL = 14, /* a broken invariant; please report it */
    COUNCIL_EBUSY = 15      /* in use: e.g. deleting a run still in flight */
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

/*
 * An event from its JSON form: the inverse of council_event_json.  json is
 * one JSON object (len bytes, need not be NUL-terminated; whitespace around
 * it is fine).  For any event e, parsing council_event_json(e) gives an
 * event with the same type, run id, seq, time, stage, member, round and
 * text (byte for byte when e's text is valid UTF-8; see docs/events.md)
 * whose JSON is the same text, byte for byte.
 *
 * Required: "type" (a known type name), "run_id" (a string), "seq" (an
 * integer >= 0) and "ts" (the RFC 3339 form of docs/events.md, e.g.
 * "2026-11-24T01:02:03.456789Z").  "stage", "member", "round" and the
 * text field ("delta" for the *_delta types, else "text") fill the
 * accessors when they have the accessor's form (a string without NUL; an
 * integer >= 1 for round); otherwise they stay, as every other field does,
 * among the type's own fields.  council_event_json of the result is the
 * given text without the whitespace around it when that text is one line,
 * else a fresh rendering.
 *
 * On COUNCIL_OK *out is a new reference (release with council_event_unref).
 * COUNCIL_EPARSE: not JSON, not an object, a key given twice, or a required
 * field missing or malformed; diag (may be NULL) says which (for a JSON
 * syntax error, line and col say where).  COUNCIL_EINVAL for NULL
 * json or out; COUNCIL_ENOMEM.  Borrows json for the call.  Any thread.
 */
COUNCIL_API council_err council_event_parse(const char *json, size_t len,
                                            council_event **out,
                                            council_diag *diag);

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
 * "worker lost", "process lost: pid N" for a stored run whose process
 * died, ...); error: the first error's message; else NULL. */
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
 *           and `events`, see docs/storage.md; a store of schema version 1
 *           is upgraded to 2).
 *   jsonl:  a directory; the run is written to DIR/<run_id>.jsonl: a line
 *           naming its owner, one event per line, then one line holding
 *           the outcome.
 * Both record the run's owner (this process: host, pid, start time, boot
 * id) when the run starts, and at finalize its outcome with the number of
 * events the run emitted, so a record that lost events (a full disk) says
 * so, and one whose process died is closed by the next reader
 * (council_store_open).
 */
COUNCIL_API const council_recorder_ops *council_recorder_sqlite(void);
COUNCIL_API const council_recorder_ops *council_recorder_jsonl(void);

/*
 * The webhook recorder: POSTs the run's outcome, and optionally every
 * event, as JSON to an http:// or https:// URL (docs/api.md, "Webhook
 * recorder", gives the payloads, headers and the signature check).  args
 * is a council_webhook_args, borrowed by init (everything needed later is
 * copied).  init refuses a URL that is not http or https, or has no host,
 * and an unknown args version; it names the URL without its user:password
 * and without its query.
 *
 * Deliveries never delay the run: handle_event and handle_finalize only
 * queue a POST for the engine's webhook sender (one thread per engine,
 * started by the first webhook recorder, with libcurl), so council_run_wait
 * returns as soon as the run has ended, whatever the receiver does.  The
 * sender sends each recorder's POSTs one at a time, in order: with events
 * on, batches of events in seq order (each event in one batch), then the
 * outcome.  A POST answered 2xx is delivered; a connection error, a
 * timeout, 5xx or 429 is retried after an exponential backoff with jitter
 * (429 and 503 honour Retry-After up to backoff_max_ms), at most
 * max_attempts times; any other answer is not retried.  A retried POST may
 * have reached the receiver already: every POST carries an
 * Idempotency-Key header, the same for each of its attempts, so a receiver
 * can drop a second copy.  Once an events POST is given up, later events
 * are not posted (they would follow a gap); the outcome still is, and says
 * how many events were delivered.
 *
 * council_engine_close gives the POSTs still queued up to drain_ms to be
 * delivered, then abandons them.  Each POST given up or abandoned is
 * reported through the engine's log ("run ID: recorder N (webhook URL):
 * ... not delivered ..."), naming the URL without credentials.  The
 * secret, and any user:password of the URL, never appear in events,
 * records, log lines or errors.
 */
typedef struct council_webhook_args {
    int version;     /* COUNCIL_WEBHOOK_ARGS_VERSION */
    const char *url; /* http:// or https://; may hold user:password */
    /* The HMAC-SHA256 key: every POST then carries X-Council-Timestamp and
     * X-Council-Signature.  NULL or "" sends unsigned POSTs.  (The council
     * command reads it from an environment variable.) */
    const char *secret;
    int events; /* 0: the outcome only; 1: every event too, batched */
    /* Each attempt's whole time, and its connect phase: 0 = 10 s, 5 s. */
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    /* Attempts per POST, retries included: 0 = 5; 1 = never retry. */
    int max_attempts;
    /* The first backoff and the largest one: 0 = 500 ms, 30 s. */
    uint64_t backoff_ms;
    uint64_t backoff_max_ms;
    /* How long council_engine_close waits for this recorder's POSTs still
     * queued: 0 = 5 s. */
    uint64_t drain_ms;
    /* Events per POST at most: 0 = 256. */
    int batch_max;
} council_webhook_args;

#define COUNCIL_WEBHOOK_ARGS_VERSION 1

COUNCIL_API const council_recorder_ops *council_recorder_webhook(void);

/*
 * The redis recorder: an in-process run's events written to Redis in the
 * layout `council worker` writes (docs/distributed.md), so one reader
 * serves both: the hash PREFIXrun:R (state running, then the outcome;
 * owner "host:pid", last_seq, lost, emitted, created_ms, ended_ms,
 * reason, outcome = council_outcome_json) and the stream PREFIXrun:R:ev
 * (entry 0-<seq> per event, field ev = council_event_json, byte for
 * byte; the terminal entry also has outcome, reason and ts_ms), never
 * trimmed; at the end EXPIRE on both and PUBLISH PREFIXdone R.
 *
 * args is a council_recorder_redis_args (borrowed by init, which copies
 * what it keeps).  init checks the arguments and the URL and refuses a
 * bad one (the reason quotes the URL without its password); it does not
 * wait for Redis: a Redis that is down at the start is written to once it
 * is up.  Writes never block the run or the recorder thread: events are
 * handed to a thread of this module (one per distinct URL, shared by the
 * recorders using it, gone when the last one is finalized) that
 * pipelines them.  While Redis is away they are buffered up to
 * max_buffer_bytes; past that the event and every later one are lost
 * (handle_event returns non-zero, a log line names the run and the key),
 * never written after a gap, and the hash says how many (lost, and
 * last_seq below emitted).  handle_finalize hands the end over and waits
 * for it to be written at most finalize_wait_ms (the only wait; it delays
 * council_run_wait and council_engine_close by at most that; while Redis
 * stays unreachable the bound is shared by the runs ending then, so many
 * cost one bound), then gives up what is left, counted and logged.  A run id
 * whose hash already exists (written by another process or run) is not
 * overwritten: every event is lost and logged.
 */
typedef struct council_recorder_redis_args {
    int version; /* COUNCIL_RECORDER_REDIS_ARGS_VERSION */
    /* redis://[user:password@]host[:port][/db] or unix:///path. */
    const char *url;
    /* The key prefix, 1..64 printable bytes without space; NULL =
     * "council:" (the workers' keys). */
    const char *prefix;
    /* Seconds a finished run's keys stay; 0 = 7 days (604800). */
    uint64_t expire_s;
    /* Event JSON held while Redis is away; 0 = 8 MiB. */
    size_t max_buffer_bytes;
    /* handle_finalize's bound; 0 = 5000 ms. */
    uint64_t finalize_wait_ms;
} council_recorder_redis_args;

#define COUNCIL_RECORDER_REDIS_ARGS_VERSION 1

COUNCIL_API const council_recorder_ops *council_recorder_redis(void);

/*
 * Checks a Redis URL as the redis recorder's init does, without
 * connecting: COUNCIL_OK, or COUNCIL_EINVAL with diag->msg (diag may be
 * NULL) quoting the URL with its user and password replaced by "***";
 * COUNCIL_ENOMEM.  Any thread.
 */
COUNCIL_API council_err council_redis_url_check(const char *url,
                                                council_diag *diag);

/* ------------------------------------------------------------------------
 * Council definitions
 * ------------------------------------------------------------------------ */

/* A loaded, validated council definition.  Immutable once loaded; may be
 * shared by runs on any thread.  Free it once the runs using it started:
 * each run holds a reference of its own, so it lasts until they end. */
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
 * Check that s[0..n-1] is valid UTF-8 (RFC 3629: no overlong form, no
 * surrogate, nothing past U+10FFFF, no sequence cut short; NUL bytes
 * count as valid).  COUNCIL_OK, or COUNCIL_EINVAL with *bad_offset (when
 * bad_offset is not NULL) the offset of the first byte that does not
 * begin a well-formed sequence.  council_run_start refuses questions that
 * fail it; a caller may check first to say where the bad byte is in its
 * own terms.  Allocates nothing.  Any thread.
 */
COUNCIL_API council_err council_utf8_check(const char *s, size_t n,
                                           size_t *bad_offset);

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
     * if set to 1..64, else one per online CPU, at most 4), at most 64.
     * Each run lives on one loop for its whole life (assigned round-robin
     * at start), so all per-run promises hold with any number; more loops
     * let provider traffic of many concurrent runs use more cores. */
    int loop_threads;

    /* Since version 2: child-process run hosts, for runs with isolation
     * COUNCIL_ISOLATION_PROCESS (see council_run_opts).  A version-1
     * struct ends before these fields and gets every default. */
    /*
     * The host program: an executable that runs council_host_main (the
     * installed council-host, or any program whose main calls it).  NULL:
     * $COUNCIL_HOST_PROGRAM if set, else the council-host installed with
     * the library (under its libexec directory).  Copied at open.
     */
    const char *host_program;
    /* Runs a child may take one after another once its run ended cleanly:
     * 0 = default (64); 1 = a fresh process for every run.  A child that
     * crashed, was killed or misbehaved is never reused. */
    int host_runs_per_child;
    /* A child sends a heartbeat while it has nothing else to say; a child
     * silent for this long is killed and its run ends as crashed("no
     * heartbeat for ..."): 0 = default (10 s). */
    uint64_t host_heartbeat_ms;
    /* Idle children kept started on each loop, ready for the next
     * isolated run: 0 = default (1), -1 = none (spawn on demand). */
    int host_spares;

    /* Since version 3.  How long, in microseconds, a thread that waits on
     * the engine spins before it sleeps: a caller in council_run_start or
     * council_run_wait, a recorder thread out of work, a loop thread after
     * a command.  Waking a sleeping thread costs tens of microseconds on
     * common machines, more than a short run itself; a spinning one sees
     * the news at once, at the price of up to this much CPU per wait that
     * is not answered in time.  0 = default (20), -1 = never spin (every
     * wait sleeps at once), at most 10000. */
    int spin_us;
} council_engine_opts;

#define COUNCIL_ENGINE_OPTS_VERSION 3

/*
 * Open an engine: the event-loop threads that host the runs (see
 * loop_threads), plus the recorder pool.  opts may be NULL for defaults;
 * opts->version may be 1 to 3 (COUNCIL_ENGINE_OPTS_VERSION).  Children for
 * isolated runs are started only when such a run starts.  COUNCIL_EINVAL
 * for an unknown version or an option out of range.  Any thread.
 */
COUNCIL_API council_err council_engine_open(const council_engine_opts *opts,
                                            council_engine **out);

/*
 * Close the engine.  Every run still in flight ends as crashed("shutdown"):
 * its provider calls stop, each recorder gets handle_finalize once.  Returns
 * when every run has ended and every recorder has been finalized; with
 * well-behaved recorders that is within milliseconds (a recorder blocked in
 * a callback delays close until it returns).  Then webhook POSTs still
 * queued get up to their recorder's drain_ms (see council_webhook_args).  Then
 * every thread and handle of the engine is gone.  NULL is fine.  Not from a
 * recorder or subscriber callback, and not twice.
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
    /* Seed for the reviewers' shuffles, 1..2^63-1 (INT64_MAX); 0 = a
     * random one, in the same range.  Recorded in events as a JSON
     * integer (signed 64-bit), so larger values are refused with
     * COUNCIL_EINVAL: every recorded seed can be given back. */
    uint64_t seed;
    const council_recorder_spec *recorders;
    size_t n_recorders;

    /* Since version 2 (a version-1 struct ends before it). */
    /* Where the run's host runs: COUNCIL_ISOLATION_DEFAULT (the council's
     * `isolation` key, else in the engine's process), _NONE or _PROCESS. */
    int isolation;
} council_run_opts;

#define COUNCIL_RUN_OPTS_VERSION 2

/*
 * Isolation of a run's host (its strategy, provider calls and parsers).
 *   NONE: on the engine's loop, in this process (the fastest).
 *   PROCESS: in a child process (see council_engine_opts.host_program).
 *     Recorders and subscribers stay in this process and see exactly what
 *     they see for a run in this process: the events arrive over a socket,
 *     in seq order.  If the child dies without sending its terminal event,
 *     the run ends as crashed with the reason: "signal SIGSEGV", "exit
 *     status 3", "no heartbeat for 10s", "host protocol error: ...".  A
 *     terminal event the child sent before it died wins.  A cancelled run
 *     whose child does not stop within 2 s is killed and still ends
 *     cancelled.  Children run in their own process group, die with this
 *     process, are always reaped, and inherit no descriptor but their
 *     socket.  API keys reach them through their environment only.
 */
#define COUNCIL_ISOLATION_DEFAULT 0
#define COUNCIL_ISOLATION_NONE 1
#define COUNCIL_ISOLATION_PROCESS 2

/*
 * Start a run of council def on a question.  Every recorder's init is
 * called first, on this thread (see council_recorder_ops for the
 * promises); then the run host starts on the loop thread.  On COUNCIL_OK
 * *out is a new reference to the run (release with council_run_release).
 * Errors: COUNCIL_EREFUSED (diag->msg holds the recorder's reason),
 * COUNCIL_EEXIST (run id in use), COUNCIL_EINVAL (diag->msg names a
 * question or message that is not valid UTF-8 and the byte offset of its
 * first bad byte, as council_utf8_check finds it; no recorder is called
 * then), COUNCIL_ESTART (the host
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

/* council_run_replay flags. */
#define COUNCIL_REPLAY_PACED 0x1u /* wait between events as recorded */

/*
 * Run a recorded run again: a run whose host emits the given events, so
 * that recorders (and subscribers) see them through the run contract, as
 * they saw the original.  events[0..n-1] is the record of one run in seq
 * order (council_store_events gives it): events[i] has seq i + 1, all have
 * one run id, and a terminal event (run_completed, run_failed) may only be
 * the last.  The array is borrowed for the call; the run takes its own
 * reference to each event.
 *
 * The replayed run's id is opts->run_id if given, else the events' run id.
 * Each event it emits has the recorded type, fields, seq and time, so its
 * council_event_json is the recorded JSON (with the run id replaced when
 * opts->run_id differs): a replay recorded by the jsonl recorder is a file
 * whose event lines equal the original record's.
 *
 * Recorders get init, every event in order and handle_finalize exactly
 * once, as for council_run_start (see council_recorder_ops), with the
 * outcome the events imply: the terminal event's (ok, error or cancelled,
 * classified as for a live run), or, when the record has none (the
 * original crashed, or the record was cut short), crashed with the reason
 * "the record ends without a terminal event (last seq N)".
 *
 * flags: 0 replays as fast as the engine goes; COUNCIL_REPLAY_PACED waits
 * before each event as long as it came after the one before it when
 * recorded (by their times; a negative difference counts as 0), with
 * timers on the engine's loop (no thread sleeps).
 *
 * If memory runs out while an event is emitted, it is tried again; if
 * memory does not come back within a second, the replay ends there as
 * crashed ("out of memory replaying seq N"): it never skips an event.
 *
 * opts: recorders, run_id and deadline_ms as for council_run_start (no
 * deadline when 0); seed is ignored.  council_run_cancel (or the deadline)
 * stops the replay: the run ends with one more event, run_failed holding
 * an error of kind "cancelled" (or "deadline"), seq after the last one
 * replayed.  council_run_wait waits for it as for any run.
 *
 * On COUNCIL_OK *out (if not NULL) is a new reference to the run (release
 * with council_run_release).  Errors: COUNCIL_EINVAL (no events, a NULL
 * event, a seq out of order, two run ids, a terminal event before the
 * last, unknown flags; diag names the event's index), COUNCIL_EEXIST (the
 * run id is in flight in this engine, or a built-in recorder of opts holds
 * it already: a sqlite store with a run of that id (e.g. the store the
 * record was read from) or a jsonl directory with ID.jsonl; replay under
 * another id with opts->run_id; diag names the store), and those of
 * council_run_start.  diag may be NULL.  Any thread, callbacks included.
 */
COUNCIL_API council_err council_run_replay(council_engine *engine,
                                           const council_run_opts *opts,
                                           council_event *const *events,
                                           size_t n, unsigned flags,
                                           council_run **out,
                                           council_diag *diag);

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
 * Run store: recorded runs, read back, replayed, deleted
 * ------------------------------------------------------------------------ */

/* One run as council_store_list and council_store_runs give it.  Borrowed
 * for the callback; fields may be added at the end. */
typedef struct council_run_row {
    const char *run_id;
    const char *council;  /* council name, or NULL if not recorded */
    const char *question; /* the user's (last) question, or NULL */
    int64_t started_us;   /* wall clock, microseconds since the epoch */
    int64_t ended_us;     /* 0 if the run has no outcome recorded */
    const char *outcome;  /* "ok", "cancelled", "error", "crashed" or NULL */
    uint64_t events;      /* events stored */
    const char *strategy; /* "rank", "debate", "vote", or NULL */
    /* crashed: the reason ("process lost: pid N" for a run whose process
     * is gone, see council_store_open); error: the first error's
     * message; else NULL. */
    const char *reason;
    /* The number of events the run emitted, as its recorder counted them
     * when it finalized; 0 when unknown (no outcome recorded, a run
     * closed by a reader, or a record from before this field).  More
     * than events: the record is incomplete (its recorder lost events,
     * e.g. to a full disk). */
    uint64_t events_emitted;
} council_run_row;

/*
 * List the runs stored in the sqlite database at path, newest first, at
 * most limit (0 = all).  cb is called on this thread for each row; the row
 * is borrowed for the call; return non-zero from cb to stop.  Errors:
 * COUNCIL_ENOTFOUND (no file), COUNCIL_EIO (not a council store; diag says
 * why).  The same as council_store_runs on a handle opened for the call.
 * Any thread.
 */
COUNCIL_API council_err council_store_list(const char *path, size_t limit,
                                           int (*cb)(const council_run_row *row,
                                                     void *ud),
                                           void *ud, council_diag *diag);

/*
 * A handle on a run store.  It holds one SQLite connection and its
 * prepared statements (or, for a jsonl record, the record read into
 * memory), so each call costs no open and no prepare.
 *
 * Threads: a handle is used by one thread at a time.  Any thread may use
 * it, but never two at once, and never from two threads without the
 * caller's own lock; a program that reads a store from many threads opens
 * one handle per thread.  Handles are independent: many handles, in one
 * process or many, may read one store while recorders write to it (WAL
 * mode: readers never block the writer, nor it them).
 */
typedef struct council_store council_store;

/* council_store_open flags.  READONLY: never write (council_store_delete
 * fails; runs whose process is gone are reported as crashed, not closed).
 * DELETE_UNFINISHED: council_store_delete may delete a run that has no
 * outcome (see there). */
#define COUNCIL_STORE_READONLY 0x1u
#define COUNCIL_STORE_DELETE_UNFINISHED 0x2u

/*
 * Open the run store at path: a SQLite database written by the sqlite
 * recorder, or a jsonl record (DIR/<run_id>.jsonl, one run) written by the
 * jsonl recorder, told apart by the file's first bytes.  The file is
 * never created.  A SQLite store is checked (application id, schema
 * version, our tables and columns); it is opened read-write unless flags
 * hold COUNCIL_STORE_READONLY (deleting needs write access).  A jsonl
 * record is read whole, and checked as the jsonl recorder's checker does:
 * a record cut short (no outcome line, or a torn last line, as a crash
 * leaves it) opens as a run without an outcome; a damaged line opens the
 * valid lines before it, and council_store_events reports the damage.
 *
 * Runs whose process is gone.  Every record names its owner: the host
 * name, pid, process start time and boot id of the process whose
 * recorder writes it.  A run without an outcome whose owner is on this
 * host and gone (no such process on this boot, a zombie, its pid now
 * another process's, or another boot) can no longer end: its recorder died
 * with its process.  A read-write handle closes every such run in the
 * store, in one transaction, at open and whenever a later call meets one:
 * outcome crashed, reason "process lost: pid N", ended now, its events
 * kept (a jsonl record gets the outcome line its recorder would have
 * written: the outcome of its terminal event if the file holds one, else
 * that crash; the file is cut back to its last whole line first, and
 * synced).  A read-only handle reports such runs the same way (in
 * council_store_runs, its "crashed" and "running" filters, and
 * council_store_run) without writing.  Never touched: a run whose owner
 * lives, one owned by another host, one whose owner is not known whole
 * (stores of schema version 1, jsonl records without an owner line:
 * they read as before).  Closing is best effort: a store that cannot be
 * written (busy past 1 s, a read-only file, a full disk) keeps such rows,
 * which still read as crashed.
 *
 * On COUNCIL_OK *out is the handle; close it with council_store_close.
 * Errors: COUNCIL_ENOTFOUND (no such file), COUNCIL_EIO (cannot be read,
 * not a council store, an unknown schema version, or not a council jsonl
 * record; diag says why with SQLite's or the reader's words), COUNCIL_EINVAL
 * (NULL path or out, unknown flags), COUNCIL_ENOMEM.  diag may be NULL.
 * Any thread.
 */
COUNCIL_API council_err council_store_open(const char *path, unsigned flags,
                                           council_store **out,
                                           council_diag *diag);

/* Close the handle: finalize its statements, close its connection, free
 * it.  NULL is fine.  The thread that uses it, once. */
COUNCIL_API void council_store_close(council_store *s);

/*
 * A filter for council_store_runs; a zeroed struct matches every run.  A
 * plain filter: later versions add fields through a new function.
 */
typedef struct council_store_query {
    const char *council; /* only runs of this council; NULL = any */
    /* only runs with this outcome: "ok", "error", "cancelled", "crashed"
     * (a run whose process is gone included), or "running" (no outcome
     * recorded, and its process not known to be gone); NULL = any */
    const char *outcome;
    int64_t since_us; /* only runs started at or after this time
                         (microseconds since the epoch); 0 = any */
    size_t limit;     /* at most this many runs; 0 = all */
} council_store_query;

/*
 * The runs that match q (NULL = all), newest first (by start time).  cb is
 * called on this thread for each; the row is borrowed for the call; return
 * non-zero from cb to stop (the call then returns COUNCIL_OK).  cb may
 * call the handle's other functions except council_store_runs itself and
 * council_store_delete (COUNCIL_EBUSY).  Errors: COUNCIL_EINVAL (NULL s or
 * cb, an outcome not named above), COUNCIL_EIO (the store cannot be read;
 * diag says why).  If it returns an error after some rows, cb was called
 * for those rows.  The handle's thread.
 */
COUNCIL_API council_err council_store_runs(council_store *s,
                                           const council_store_query *q,
                                           int (*cb)(const council_run_row *row,
                                                     void *ud),
                                           void *ud, council_diag *diag);

/*
 * The record of one run as one JSON object (docs/storage.md, "The run
 * record"): run_id, council, strategy, question, the whole input
 * (messages), members, chairman and the other fields of its run_started
 * event, started_us/started and ended_us/ended (null while there is no
 * outcome), duration_ms, outcome ("ok", "error", "cancelled", "crashed",
 * or "running" when none is recorded) with reason, errors and result as
 * council_outcome_json gives them, events (the number stored),
 * events_emitted (the number the run emitted, as its recorder counted
 * them at finalize, or null when unknown), incomplete (true when fewer
 * events are stored than the run emitted: its recorder lost some, e.g. to
 * a full disk; the outcome is still the run's), and owner ({host, pid,
 * start, boot} of the process that recorded it, or null).  A run whose
 * process is gone reads as crashed (see council_store_open).
 *
 * On COUNCIL_OK *json_out is a NUL-terminated string, the caller's: free
 * it with council_free.  Errors: COUNCIL_ENOTFOUND (no run run_id; diag:
 * "no run ID in PATH"), COUNCIL_EIO (the store cannot be read, or the
 * run's run_started event or outcome is damaged; diag says which),
 * COUNCIL_EINVAL, COUNCIL_ENOMEM.  The handle's thread.
 */
COUNCIL_API council_err council_store_run(council_store *s, const char *run_id,
                                          char **json_out, council_diag *diag);

/*
 * The recorded events of run run_id with seq > after_seq, in seq order,
 * as events (council_event_parse of each stored line).  cb gets each event
 * borrowed for the call (council_event_ref to keep it); return non-zero
 * from cb to stop (the call then returns COUNCIL_OK).  after_seq 0 gives
 * the whole record; an after_seq at or past the last gives none (that is
 * how a reader resumes a finished run after the last event it saw).  cb
 * may call the handle's other functions except council_store_events
 * itself and council_store_delete (COUNCIL_EBUSY).
 *
 * Errors: COUNCIL_ENOTFOUND (no run run_id), COUNCIL_EIO (the store cannot
 * be read, or an event is damaged: not an event, another seq than its
 * place, another run's id, a gap; diag names its seq); COUNCIL_EINVAL,
 * COUNCIL_ENOMEM.  On an error cb may have been called for the events
 * before the problem, a contiguous run of seqs.  The handle's thread.
 */
COUNCIL_API council_err council_store_events(
    council_store *s, const char *run_id, uint64_t after_seq,
    int (*cb)(council_event *ev, void *ud), void *ud, council_diag *diag);

/*
 * Delete run run_id: its row and its events, in one transaction (all or
 * nothing).  A run without an outcome may still be in flight: its
 * recorder would go on writing events for a run that no longer exists.
 * It is refused with COUNCIL_EBUSY ("run ID has no outcome: it is running
 * (pid N)", or "... it may still be running" when its owner is not known
 * or on another host), unless its process is gone (see council_store_open)
 * or the handle was opened with COUNCIL_STORE_DELETE_UNFINISHED, for runs
 * whose process is known to have ended before its recorder finalized.
 *
 * Errors: COUNCIL_ENOTFOUND (no run run_id), COUNCIL_EBUSY (above),
 * COUNCIL_EINVAL (a read-only handle, a jsonl record (remove its file
 * instead), NULL arguments), COUNCIL_EIO (the store stayed locked past
 * 10 s, the disk failed; nothing was deleted).  The handle's thread.
 */
COUNCIL_API council_err council_store_delete(council_store *s,
                                             const char *run_id,
                                             council_diag *diag);

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
 * Child-process run hosts
 * ------------------------------------------------------------------------ */

/*
 * The whole body of a host program: the main of council-host (and of the
 * hidden `council __host`) is `return council_host_main(argc, argv);`.
 * An engine starts such a program for isolated runs with the socket to
 * its parent as file descriptor 3; it runs the runs its parent sends, one
 * at a time, and returns (the process's exit status) when the parent
 * closes the socket or dies.  Not for other uses: run by hand it finds no
 * socket and returns 2 with a message on stderr.  argv is unused but for
 * that message.  The main thread of a fresh process, once.
 */
COUNCIL_API int council_host_main(int argc, char **argv);

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
