/* SPDX-License-Identifier: MIT */
/*
 * Internal side of the mock LLM server: the deterministic answer generator
 * (answer.c), the fault spec parser and matcher (faults.c), and the pieces
 * the HTTP server (mockllm.c) glues together.  Nothing here does I/O, so
 * unit tests can check answers and fault specs without a socket.
 */
#ifndef COUNCIL_MOCKLLM_H
#define COUNCIL_MOCKLLM_H

#include <stddef.h>
#include <stdint.h>

#include "council.h"

/* ------------------------------------------------------------------------
 * A growable byte buffer.  Appends after a failed allocation are no-ops and
 * leave oom set, so a sequence of appends is checked once at the end.
 * ------------------------------------------------------------------------ */

typedef struct council__mock_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} council__mock_buf;

void council__mock_buf_add(council__mock_buf *b, const void *d, size_t n);
void council__mock_buf_str(council__mock_buf *b, const char *s);
void council__mock_buf_fmt(council__mock_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s[0..n) as the inside of a JSON string (no quotes). */
void council__mock_buf_json(council__mock_buf *b, const char *s, size_t n);
void council__mock_buf_free(council__mock_buf *b);

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

/* One message of a request, borrowed from the parsed request body. */
typedef struct council__mock_msg {
    const char *role;
    const char *content;
    size_t content_len;
} council__mock_msg;

/*
 * A generated answer: the text and its split into tokens.  Token i is
 * text[tok_off[i] .. tok_off[i + 1]); each token is a run of whitespace
 * followed by a run of non-whitespace (the first has no leading space), so
 * the tokens concatenate to the text exactly.
 */
typedef struct council__mock_answer {
    char *text;
    size_t len;
    size_t *tok_off; /* n_tok + 1 offsets */
    size_t n_tok;
    uint64_t hash; /* the request hash the answer was derived from */
    int ranking;   /* 1 if the answer ends with a FINAL RANKING block */
    int truncated; /* 1 if max_tokens cut it short */
} council__mock_answer;

/* FNV-1a 64 over seed, model and every message's role and content. */
uint64_t council__mock_hash(uint64_t seed, const char *model,
                            const council__mock_msg *msgs, size_t n);

/* SplitMix64: advances *state and returns the next value. */
uint64_t council__mock_splitmix(uint64_t *state);

/*
 * Build the answer for a request.  If the last user message holds
 * "FINAL RANKING" and lines beginning with "Response X:", the answer is a
 * short evaluation followed by a FINAL RANKING block that is a permutation
 * of exactly those labels.  max_tokens > 0 truncates to that many tokens.
 * COUNCIL_OK or COUNCIL_ENOMEM.  Free with council__mock_answer_free.
 */
council_err council__mock_answer_make(uint64_t seed, const char *model,
                                      const council__mock_msg *msgs, size_t n,
                                      size_t max_tokens,
                                      council__mock_answer *out);
void council__mock_answer_free(council__mock_answer *a);

/* Whitespace-separated words in the messages: the prompt_tokens estimate. */
uint64_t council__mock_prompt_tokens(const council__mock_msg *msgs, size_t n);

/* ------------------------------------------------------------------------
 * Faults
 * ------------------------------------------------------------------------ */

typedef enum council__mock_fault_kind {
    COUNCIL__FAULT_NONE = 0,
    COUNCIL__FAULT_HTTP,
    COUNCIL__FAULT_STALL,
    COUNCIL__FAULT_MALFORMED,
    COUNCIL__FAULT_DISCONNECT,
    COUNCIL__FAULT_ERROR_IN_STREAM,
    COUNCIL__FAULT_NO_DONE,
    COUNCIL__FAULT_NO_USAGE, /* a normal answer that reports no usage */
    COUNCIL__FAULT_COST,     /* a normal answer whose usage has a cost */
    COUNCIL__FAULT_THINK     /* a reasoning model: think, then answer */
} council__mock_fault_kind;

/* How a thinking model fills its wait (think=DUR,as=...). */
typedef enum council__mock_think_as {
    COUNCIL__THINK_REASONING_CONTENT = 0, /* delta.reasoning_content (vLLM,
                                             DeepSeek); Anthropic: thinking */
    COUNCIL__THINK_REASONING,             /* delta.reasoning (OpenRouter,
                                             Ollama); Anthropic: thinking */
    COUNCIL__THINK_COMMENT                /* ": keep-alive" comments;
                                             Anthropic: ping events */
} council__mock_think_as;

/* What to do to one request; kind NONE = answer normally. */
typedef struct council__mock_fault {
    council__mock_fault_kind kind;
    int status;           /* http: the status code */
    uint64_t retry_after; /* http: Retry-After seconds; 0 = no header */
    uint64_t stall_ms;    /* stall: how long */
    int64_t after;        /* content chunks before the fault; -1 = unset */
    double cost;          /* cost: USD reported in usage.cost */
    uint64_t think_ms;    /* think: the wait before the first content */
    uint64_t beat_ms;     /* think: a reasoning delta or keep-alive every
                             beat_ms (default 1000); 0 = silent */
    council__mock_think_as think_as;
} council__mock_fault;

typedef struct council__mock_faults council__mock_faults;

/*
 * Parse a fault spec (grammar in docs/mock-llm.md).  NULL or "" gives an
 * empty rule set (*out = NULL is valid and matches nothing).  On
 * COUNCIL_EINVAL diag (may be NULL) says what is wrong and diag->col at
 * which character (1-based).  COUNCIL_ENOMEM possible.
 */
council_err council__mock_faults_parse(const char *spec,
                                       council__mock_faults **out,
                                       council_diag *diag);
void council__mock_faults_free(council__mock_faults *f);

/*
 * The fault for the nth chat request (1-based) for model: the first rule
 * whose selectors all match.  Deterministic in (seed, nth, model).  NULL
 * rule set gives kind NONE.
 */
void council__mock_faults_match(const council__mock_faults *f, uint64_t seed,
                                uint64_t nth, const char *model,
                                council__mock_fault *out);

/* "250ms", "2s", "5m", "1h", bare number = ms.  0 on success, -1 if bad. */
int council__mock_parse_duration(const char *s, size_t len, uint64_t *ms);

#endif
