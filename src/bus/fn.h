/* SPDX-License-Identifier: MIT */
/*
 * The C side of the council Redis Functions library (src/bus/council_v1.lua,
 * embedded at build time; DISTRIBUTED.md section 4): loading it with a
 * version check, building each function's command as an argv/argvlen array
 * (for redisCommandArgv and redisAsyncCommandArgv alike: hiredis formats
 * the command during the call, so the array need only live until the call
 * returns), and parsing each function's reply.  The parsers take any
 * redisReply tree, hostile ones included (wrong types at any level,
 * missing elements, error replies, NULL for a lost connection), and
 * answer a council_err with a council_diag naming the key (diag.file) and
 * the run; they never crash and never allocate.  Internal: not in
 * council.h.  Any thread (no shared state).
 *
 * The functions and their argument layouts (FCALL fn numkeys KEYS ARGV):
 *
 *   council_v1_enqueue  KEYS council:run:R council:q
 *                       ARGV R spec created_by
 *   council_v1_claim    KEYS council:run:R council:leases
 *                       ARGV R worker lease_ms
 *   council_v1_append   KEYS council:run:R council:run:R:ev
 *                       ARGV R gen seq ev_1 ... ev_n  (ev_i has seq + i - 1)
 *   council_v1_renew    KEYS council:leases council:run:R_1 ... R_n
 *                       ARGV worker lease_ms R_1 gen_1 ... R_n gen_n
 *   council_v1_finish   KEYS council:run:R council:run:R:ev council:leases
 *                       ARGV R gen seq terminal outcome reason expire_s
 *   council_v1_cancel   KEYS council:run:R council:run:R:ev
 *                       ARGV R terminal(seq 1) reason expire_s
 *   council_v1_reap     KEYS council:leases
 *                       ARGV limit expire_s
 *   council_v1_version  (FCALL_RO, no keys, no arguments)
 *
 * Their replies and promises are described at the top of council_v1.lua
 * and in docs/distributed.md.
 */
#ifndef COUNCIL_BUS_FN_H
#define COUNCIL_BUS_FN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "council.h"

#define COUNCIL__FN_LIBRARY "council_v1"
/* Must equal VERSION in council_v1.lua (test_redis_fn checks it). */
#define COUNCIL__FN_VERSION 1
/* How long a finished run's hash and stream stay: 7 days. */
#define COUNCIL__FN_EXPIRE_DEFAULT_S (7u * 24u * 3600u)
/* Run ids: 1..this many bytes, printable ASCII without space. */
#define COUNCIL__FN_RUN_ID_MAX 128

#define COUNCIL__FN_KEY_QUEUE "council:q"
#define COUNCIL__FN_KEY_LEASES "council:leases"
#define COUNCIL__FN_CHANNEL_CANCEL "council:cancel"
#define COUNCIL__FN_CHANNEL_DONE "council:done"

/* The library's Lua text (NUL-terminated) and its length.  Static. */
const char *council__fn_library_text(void);
size_t council__fn_library_len(void);

/*
 * Makes sure the server holds this library, version COUNCIL__FN_VERSION:
 * checks that the server is Redis 7 or later (INFO server), reads the
 * loaded version (FCALL_RO council_v1_version), and loads the library
 * (FUNCTION LOAD; REPLACE only over an older version) when it is missing
 * or older.  Blocking: c is a connected synchronous context with a
 * timeout set by the caller.  *loaded_out (may be NULL) is the version
 * the server had before: 0 for none.
 *
 * COUNCIL_EREFUSED: not Redis 7+, a newer council library is loaded, or a
 * council_v1 library that is not ours (no version function, a function
 * name taken by another library); COUNCIL_EIO: the connection failed or
 * the server answered what Redis would not (not Redis at all); each with
 * diag (may be NULL) saying which.  COUNCIL_EINVAL for a NULL c.
 *
 * Two processes loading different versions at the same instant can leave
 * the older one loaded (FUNCTION LOAD is not conditional); the newer one
 * finds it at its next check and loads again.
 *
 * After a COUNCIL_EIO without a reply (a protocol error, a timeout, a
 * closed connection) c is unusable, as hiredis leaves it: free it.  Note
 * that hiredis 0.14's reader allocates what a reply header announces
 * with no limit (1.0 added maxelements), so a hostile server can make it
 * try a huge allocation; when that fails the command has no reply
 * (c->err REDIS_ERR_OOM, "Out of memory": COUNCIL_EIO here), not a crash,
 * outside the sanitizers (ASan aborts on such a size).
 */
council_err council__fn_load(redisContext *c, int64_t *loaded_out,
                             council_diag *diag);
/* council__fn_load with another library text (len bytes) that declares
 * version want: for tests of the upgrade path. */
council_err council__fn_load_as(redisContext *c, const char *text, size_t len,
                                int64_t want, int64_t *loaded_out,
                                council_diag *diag);

/* ---- commands ---- */

/*
 * One command as argc/argv/argvlen.  It owns the strings it made (the key
 * names and numbers) and borrows the ones given (run ids, spec, events,
 * worker name, reason): those must stay valid while the command is used.
 * Zero-initialize it; council__fn_cmd_free releases it (and may be called
 * on a zeroed or freed one).
 */
typedef struct council__fn_cmd {
    int argc;
    const char **argv;
    size_t *argvlen;
    char *arena; /* the strings it made */
    size_t arena_len, arena_cap;
    int argc_cap, overflow; /* the builders' own check */
} council__fn_cmd;

void council__fn_cmd_free(council__fn_cmd *cmd);

/*
 * The builders: COUNCIL_OK and cmd filled, or COUNCIL_EINVAL (a bad run
 * id, NULL strings, n == 0, a zero lease; diag says which) or
 * COUNCIL_ENOMEM, cmd left empty.  A cmd already built is freed first.
 */
council_err council__fn_enqueue_cmd(council__fn_cmd *cmd, const char *run_id,
                                    const char *spec, size_t spec_len,
                                    const char *created_by, council_diag *diag);
council_err council__fn_claim_cmd(council__fn_cmd *cmd, const char *run_id,
                                  const char *worker, uint64_t lease_ms,
                                  council_diag *diag);
/* events[i] (lens[i] bytes) has seq first_seq + i; n >= 1. */
council_err council__fn_append_cmd(council__fn_cmd *cmd, const char *run_id,
                                   uint64_t gen, uint64_t first_seq,
                                   const char *const *events,
                                   const size_t *lens, size_t n,
                                   council_diag *diag);
/* One pair (run_ids[i], gens[i]) per run; n >= 1. */
council_err council__fn_renew_cmd(council__fn_cmd *cmd, const char *worker,
                                  uint64_t lease_ms, const char *const *run_ids,
                                  const uint64_t *gens, size_t n,
                                  council_diag *diag);
/* terminal: the terminal event's JSON with seq seq; NULL (len 0) only for
 * COUNCIL_OUTCOME_CRASHED.  reason may be NULL (""). expire_s 0 = the
 * default. */
council_err council__fn_finish_cmd(council__fn_cmd *cmd, const char *run_id,
                                   uint64_t gen, uint64_t seq,
                                   const char *terminal, size_t terminal_len,
                                   council_outcome_kind kind,
                                   const char *reason, uint32_t expire_s,
                                   council_diag *diag);
/* terminal: the cancelled terminal event at seq 1, written if the run is
 * still queued. */
council_err council__fn_cancel_cmd(council__fn_cmd *cmd, const char *run_id,
                                   const char *terminal, size_t terminal_len,
                                   const char *reason, uint32_t expire_s,
                                   council_diag *diag);
council_err council__fn_reap_cmd(council__fn_cmd *cmd, unsigned limit,
                                 uint32_t expire_s, council_diag *diag);
council_err council__fn_version_cmd(council__fn_cmd *cmd, council_diag *diag);

/* ---- replies ---- */

/* A run's state in its hash.  0 is not a state. */
typedef enum council__fn_state {
    COUNCIL__FN_QUEUED = 1,
    COUNCIL__FN_RUNNING,
    COUNCIL__FN_OK,
    COUNCIL__FN_CANCELLED,
    COUNCIL__FN_ERROR,
    COUNCIL__FN_CRASHED
} council__fn_state;

/* "queued", ... ; "unknown" for a bad value. */
const char *council__fn_state_name(council__fn_state s);
/* 1 for ok, cancelled, error, crashed. */
int council__fn_state_terminal(council__fn_state s);

/* The status a reply starts with. */
typedef enum council__fn_status {
    COUNCIL__FN_CREATED = 1,   /* enqueue: a new run */
    COUNCIL__FN_EXISTS,        /* enqueue: the run was there: state */
    COUNCIL__FN_CLAIMED,       /* claim: gen, spec */
    COUNCIL__FN_SKIP,          /* claim: not queued (state): XACK only */
    COUNCIL__FN_NOTFOUND,      /* claim, append, finish, cancel, renew */
    COUNCIL__FN_WRITTEN,       /* append, finish: "ok"; last_seq */
    COUNCIL__FN_DUP,           /* append, finish: already there; last_seq */
    COUNCIL__FN_GAP,           /* append, finish: resend from last_seq + 1 */
    COUNCIL__FN_FENCED,        /* append, finish, renew: gen, state */
    COUNCIL__FN_RENEWED,       /* renew: lease extended; cancel */
    COUNCIL__FN_CANCELLED_NOW, /* cancel: was queued, ended now */
    COUNCIL__FN_FLAGGED,       /* cancel: running; the flag is set */
    COUNCIL__FN_TERMINAL       /* cancel: already ended: state */
} council__fn_status;

/*
 * A parsed reply.  spec is borrowed from the redisReply (valid while it
 * is).  Fields a status does not carry are 0 / NULL.
 */
typedef struct council__fn_reply {
    council__fn_status status;
    council__fn_state state;
    uint64_t gen;
    uint64_t last_seq;
    const char *spec;
    size_t spec_len;
} council__fn_reply;

/*
 * Each parser: COUNCIL_OK and *out; or
 *   COUNCIL_EIO        rep is NULL (the connection failed: say so with
 *                      c->errstr if you have it) or an error reply (Redis
 *                      refused: OOM, a wrong type, the library's own
 *                      "COUNCIL ..." errors); diag.msg quotes it;
 *   COUNCIL_ENOTFOUND  the error says the function is not loaded;
 *   COUNCIL_EPARSE     the reply has a shape no council_v1 function gives.
 * diag.file is the run's hash key (council:run:R), or council:leases for
 * reap and renew; the message names the function and the run.
 */
council_err council__fn_parse_enqueue(const redisReply *rep, const char *run_id,
                                      council__fn_reply *out,
                                      council_diag *diag);
council_err council__fn_parse_claim(const redisReply *rep, const char *run_id,
                                    council__fn_reply *out, council_diag *diag);
/* append and finish share their replies. */
council_err council__fn_parse_append(const redisReply *rep, const char *run_id,
                                     council__fn_reply *out,
                                     council_diag *diag);
council_err council__fn_parse_finish(const redisReply *rep, const char *run_id,
                                     council__fn_reply *out,
                                     council_diag *diag);
council_err council__fn_parse_cancel(const redisReply *rep, const char *run_id,
                                     council__fn_reply *out,
                                     council_diag *diag);

/* renew: one result per run, in the order given to the builder. */
typedef struct council__fn_renewal {
    council__fn_status status; /* RENEWED, FENCED or NOTFOUND */
    int cancel;                /* RENEWED: 1 when a cancel was asked */
} council__fn_renewal;

/* n: the number of runs renewed; out has n elements. */
council_err council__fn_parse_renew(const redisReply *rep,
                                    const char *const *run_ids, size_t n,
                                    council__fn_renewal *out,
                                    council_diag *diag);

/*
 * reap: checks the whole reply, then calls cb once per run id, reaped
 * ones (dropped 0) first, then the dropped ones (dropped 1: the lease was
 * removed because Redis lost or corrupted the run; see council_v1.lua).
 * id is borrowed for the call (len bytes, NUL-terminated).  A non-zero
 * return from cb stops the calls and is returned as COUNCIL_ECANCELED.
 * cb may be NULL (only checks); *n_reaped and *n_dropped may be NULL.
 */
council_err council__fn_parse_reap(const redisReply *rep,
                                   int (*cb)(const char *id, size_t len,
                                             int dropped, void *ud),
                                   void *ud, size_t *n_reaped,
                                   size_t *n_dropped, council_diag *diag);

council_err council__fn_parse_version(const redisReply *rep, int64_t *version,
                                      council_diag *diag);

/* ---- the keys' contents, read back ---- */

/*
 * One entry of council:run:R:ev (an element of an XRANGE / XREAD reply:
 * [id, [field, value, ...]]).  Strings are borrowed from the reply.
 */
typedef struct council__fn_entry {
    uint64_t seq;   /* from the id 0-<seq>; >= 1 */
    const char *ev; /* the event JSON, or NULL */
    size_t ev_len;
    int terminal;              /* the entry has an outcome */
    council_outcome_kind kind; /* when terminal */
    const char *reason;        /* when terminal ("" if none) */
    int64_t ts_ms;             /* when terminal; -1 if absent */
} council__fn_entry;

/* COUNCIL_EPARSE (diag names council:run:R:ev, the entry and the field)
 * for a malformed entry: not [id, fields], an id that is not 0-<seq>, a
 * field that is not a string pair, a known field given twice or
 * malformed (an empty ev, an unknown outcome, a ts_ms not an integer),
 * neither ev nor outcome, a reason or ts_ms without an outcome.  Fields
 * it does not know are ignored (a later library version's). */
council_err council__fn_parse_entry(const redisReply *entry, const char *run_id,
                                    council__fn_entry *out, council_diag *diag);

/* The run hash, from HGETALL council:run:R.  Strings borrowed. */
typedef struct council__fn_run {
    council__fn_state state;
    uint64_t gen, last_seq;
    int cancel;
    const char *spec; /* NULL if absent */
    size_t spec_len;
    const char *owner, *reason, *created_by;  /* "" if absent */
    int64_t created_ms, claimed_ms, ended_ms; /* -1 if absent */
} council__fn_run;

/* COUNCIL_ENOTFOUND for an empty reply (no such hash); COUNCIL_EPARSE
 * (diag names council:run:R and the field) when state, gen, last_seq or
 * spec is missing or malformed, or a known field is not what it should
 * be; COUNCIL_EIO for an error reply or NULL. */
council_err council__fn_parse_run(const redisReply *hgetall, const char *run_id,
                                  council__fn_run *out, council_diag *diag);

#endif
