/* SPDX-License-Identifier: MIT */
/*
 * Internal provider interface: one asynchronous, streaming chat call to a
 * model, driven by libcurl's multi interface on the engine's libuv loop.
 * Everything here is loop-thread only.
 *
 * Promise: council__chat_start returns COUNCIL_OK => on_done is called
 * exactly once, later (never from inside council__chat_start), after the
 * last on_delta; error => no callback at all.  council__chat_cancel makes
 * on_done come with err == COUNCIL_ECANCELED unless it already came.
 * Secrets (the API key) are never copied into errors or logs.
 */
#ifndef COUNCIL_PROVIDER_H
#define COUNCIL_PROVIDER_H

#include <stdint.h>
#include <uv.h>

#include "council.h"

/* libcurl multi bound to one uv loop; many calls share it. */
typedef struct council__http council__http;

council_err council__http_open(uv_loop_t *loop, council__http **out);
/* Aborts calls still running (each gets on_done(ECANCELED)), then frees.
 * The loop must run afterwards until the close callbacks finished:
 * council__http_close_cb is called when everything is released. */
void council__http_close(council__http *h, void (*closed)(void *ud), void *ud);
/* The size of the watcher allocated per socket (tests fail exactly it). */
size_t council__http_sock_size(void);

typedef enum council__provider_kind {
    COUNCIL__PROVIDER_OPENAI = 1,
    COUNCIL__PROVIDER_ANTHROPIC = 2 /* the Messages API: anthropic.c */
} council__provider_kind;

typedef struct council__provider_cfg {
    council__provider_kind kind;
    const char *base_url; /* ".../v1"; "/chat/completions" or "/messages"
                             is appended */
    const char *api_key;  /* NULL = no Authorization header; a secret */
    int max_parallel;     /* transfers in flight to this endpoint at once;
                             0 = no limit.  Calls beyond it wait, FIFO. */
} council__provider_cfg;

typedef struct council__chat_req {
    const char *model;
    const council_message *messages; /* system messages included */
    size_t n_messages;
    int max_tokens;                 /* 0 = do not send */
    uint64_t connect_timeout_ms;    /* 0 = none, for each of these */
    uint64_t first_byte_timeout_ms; /* request sent -> first body byte */
    uint64_t idle_timeout_ms;       /* between two body chunks */
    uint64_t total_timeout_ms;      /* bounds every attempt and wait */
    int retries;                    /* extra attempts after a retryable
                                       failure before any text; 0 = none */
    uint64_t backoff_base_ms;       /* 0 = 500 */
    uint64_t backoff_max_ms;        /* 0 = 20000 */
    uint64_t jitter_seed;           /* 0 = seeded from the clock */
    /* The caller can give the messages again (cbs.messages): the request
     * body is then let go at the first byte of a 2xx answer and built
     * again if another attempt follows; otherwise it is kept until text
     * has streamed.  model must then outlive the call. */
    int rebuildable;
} council__chat_req;

typedef struct council__usage {
    int known;   /* 0: the provider never reported usage */
    int partial; /* known, but a lower bound: the call ended before the
                    final counts (a failed call; Anthropic's stream before
                    message_delta's output_tokens) */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int cost_known;
    double cost; /* USD, where the provider reports it */
} council__usage;

/* The error classes; each failed call names one. */
typedef enum council__call_errkind {
    COUNCIL__CALL_OK = 0,
    COUNCIL__CALL_CONNECT,  /* DNS, refused, reset before a response */
    COUNCIL__CALL_TIMEOUT,  /* which one is in message */
    COUNCIL__CALL_HTTP,     /* a non-2xx status; body parsed if JSON */
    COUNCIL__CALL_STREAM,   /* malformed SSE/JSON, no terminator */
    COUNCIL__CALL_PROVIDER, /* an error object inside a 200 stream */
    COUNCIL__CALL_CANCELLED
} council__call_errkind;

#define COUNCIL__CHAT_MSG_SIZE 512
#define COUNCIL__CHAT_TYPE_SIZE 64

typedef struct council__chat_result {
    council_err err; /* COUNCIL_OK or the failure */
    council__call_errkind kind;
    long http_status;        /* 0 if no response */
    const char *error_type;  /* the provider's error type/code, or "";
                                at most COUNCIL__CHAT_TYPE_SIZE - 1 bytes */
    const char *message;     /* human-readable cause, never a secret, or
                                ""; at most COUNCIL__CHAT_MSG_SIZE - 1 */
    uint64_t retry_after_ms; /* from Retry-After on 429/503, else 0 */
    const char *text;        /* the whole answer (borrowed for the
                                callback); "" on failure */
    size_t text_len;
    const char *finish_reason; /* borrowed, or NULL */
    council__usage usage;
    uint64_t first_byte_ms; /* request start -> first body byte */
    uint64_t latency_ms;    /* request start -> done */
    int retryable;          /* the failure's class is retryable */
    int attempts;           /* transfers started (0: cancelled while
                               queued for max_parallel) */
} council__chat_result;

typedef struct council__chat_cbs {
    void (*on_delta)(const char *text, size_t len, void *ud);
    void (*on_done)(const council__chat_result *res, void *ud);
    /* For a rebuildable request: the same messages again, for another
     * attempt.  *msgs (and *scratch, if set) are council__malloc'd, freed
     * by the caller; returns 0, or -1 (out of memory: no more attempt). */
    int (*messages)(void *ud, council_message **msgs, size_t *n,
                    char **scratch);
} council__chat_cbs;

typedef struct council__chat council__chat;

council_err council__chat_start(council__http *h,
                                const council__provider_cfg *cfg,
                                const council__chat_req *req,
                                const council__chat_cbs *cbs, void *ud,
                                council__chat **out);
/* Request an early end; the call object is freed by the library after
 * on_done returns.  Safe to call from on_delta.  No-op after on_done. */
void council__chat_cancel(council__chat *c);
/* The text streamed so far (every on_delta's, joined; borrowed: valid
 * until on_done returns), its length in *len.  Before on_done only. */
const char *council__chat_text_so_far(const council__chat *c, size_t *len);

const char *council__call_errkind_name(council__call_errkind kind);

/* The backoff before retry number `retry` (1 = the first): full jitter, a
 * uniform draw in [0, min(cap, base * 2^(retry-1))] from the xorshift
 * state *rng (advanced).  base/cap 0 take the defaults 500/20000 ms. */
uint64_t council__backoff_ms(uint64_t base_ms, uint64_t cap_ms, int retry,
                             uint64_t *rng);

#endif
