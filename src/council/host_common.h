/* SPDX-License-Identifier: MIT */
/*
 * What every strategy host shares (rank, debate, vote): the member table
 * copied from the council definition, streamed provider calls with their
 * events, usage sums, the result object, the pre-synthesis budget timer,
 * the chairman with its fallback list and the top-member fallback, and the
 * cancel/shutdown/free lifecycle.  A strategy embeds council__host first in
 * its own state and supplies council__strategy_ops.  Loop thread only,
 * except council__host_new (the caller's thread).
 */
#ifndef COUNCIL_HOST_COMMON_H
#define COUNCIL_HOST_COMMON_H

#include <jansson.h>

#include "core/run.h"
#include "council/def.h"
#include "provider/provider.h"

typedef struct council__host council__host;

/*
 * Usage summed over provider calls (DESIGN 4): per member, per chairman
 * model, per stage, per stage round and per run.  A call counts from its
 * start and is unknown until it reports usage: one that never does (a
 * failure before usage, a cut call, one still running when a partial
 * result is made) stays unknown, never 0.
 */
typedef struct council__usage_sum {
    int64_t calls;      /* calls started */
    int64_t unknown;    /* of those, without exact usage (none reported,
                           or partial: a lower bound) */
    int64_t reported;   /* of those, that reported usage, partial too */
    int64_t cost_calls; /* of those, that reported a cost */
    int64_t prompt_tokens, completion_tokens; /* of the known ones */
    double cost;                              /* of the cost_calls */
} council__usage_sum;

/* The stages that make calls, in run order. */
enum council__stage {
    COUNCIL__STG_ANSWER,
    COUNCIL__STG_REVIEW,
    COUNCIL__STG_VOTE,
    COUNCIL__STG_DEBATE,
    COUNCIL__STG_SYNTHESIS,
    COUNCIL__N_STAGES
};

enum council__mstate {
    COUNCIL__M_WAITING,
    COUNCIL__M_STREAMING,
    COUNCIL__M_DONE,
    COUNCIL__M_FAILED
};

/* One provider call. */
typedef struct council__hcall {
    council__host *h;
    council__chat *chat;
    int member;        /* index, or -1 for the chairman */
    const char *stage; /* static name: "answer", "review", ... */
    int round;         /* 0: the stage has no rounds */
    int streamed;
    unsigned epoch; /* the host's stage epoch when the call started */
    /* How its messages can be given again for a retry (then the request
     * body need not be kept): COUNCIL__AGAIN_*. */
    int again;
    /* Streamed text not yet emitted: the end of what came, as long as it
     * could be the start of a secret (council__host_redact). */
    char *held;
    size_t held_len;
} council__hcall;

enum {
    COUNCIL__AGAIN_NONE = 0,
    COUNCIL__AGAIN_QUESTION, /* the run's messages */
    COUNCIL__AGAIN_SYNTH,    /* the host's synth_prompt */
    COUNCIL__AGAIN_STRATEGY  /* sops->prompt_again */
};

typedef struct council__hmember {
    const char *name, *model, *system; /* the definition's (h->def) */
    size_t provider;
    enum council__mstate state; /* of its answer */
    char *answer;               /* its latest answer */
    size_t answer_len;
    council__usage usage;   /* of its first answer (result.answers) */
    council__usage_sum sum; /* of all its calls */
    json_t *error;          /* answer-stage failure, or NULL */
    /* Two call slots used in turn, so a new call never reuses the slot of
     * a call whose on_done is still on the stack. */
    council__hcall calls[2];
    int next_slot;
    int busy; /* a call of the current stage runs */
    /* Strategy scratch (rank and vote: what the member was shown). */
    size_t *shown;
    size_t n_shown;
    uint64_t seed;
} council__hmember;

typedef struct council__hprovider {
    const char *name; /* the definition's */
    council__provider_cfg cfg;
    const char *base_url; /* the definition's */
    char *api_key;        /* a secret: never logged, zeroed on free */
} council__hprovider;

typedef struct council__strategy_ops {
    const char *name; /* "rank", "debate", "vote" */
    /* After run_started: start the first stage. */
    void (*begin)(council__host *h);
    /* A member's call ended (not on cancel or after the end).  Usage is
     * already summed into the member's, stage's and run's sums. */
    void (*call_done)(council__host *h, council__hcall *c,
                      const council__chat_result *res);
    /* The chairman's prompt (new string, NULL on OOM). */
    char *(*synth_prompt)(council__host *h);
    /* The member whose answer stands in when every chairman failed; -1
     * when none. */
    int (*top_member)(council__host *h);
    /* Strategy fields of the result object (may be NULL). */
    void (*result_extra)(council__host *h, json_t *result);
    /* Extra fields of run_started (may be NULL). */
    void (*started_extra)(council__host *h, json_t *data);
    /* The chairman answered: fields to add to synthesis_completed (and
     * the chance to read its text; may be NULL). */
    void (*synth_extra)(council__host *h, const char *text, size_t len,
                        json_t *data);
    /* Free the strategy's own state (not h itself; may be NULL). */
    void (*free_extra)(council__host *h);
    /* Optional: the prompt of a call of stage again_stage made anew, the
     * same text as at its start (new string; NULL on OOM), so that the
     * call need not keep its request body for a retry. */
    const char *again_stage;
    char *(*prompt_again)(council__host *h, const council__hcall *c);
} council__strategy_ops;

struct council__host {
    const council__strategy_ops *sops;
    council_run *run;
    council__http *http;
    const council_def *def;   /* a reference: its strings are borrowed */
    const char *council_name; /* the definition's */
    council__hprovider *providers;
    size_t n_providers;
    council__hmember *members;
    size_t n_members;
    council__hmember *chairs; /* the chairman, then its fallbacks */
    size_t n_chairs;
    size_t chair_at; /* the attempt running */
    council__limits limits;
    council_message *messages;
    size_t n_messages;
    const char *question; /* the last user message */
    uint64_t seed;

    int pending; /* calls started, on_done not yet seen */
    int cancelled;
    int ended; /* the terminal event is out */
    int exited;
    int freed;
    int in_synthesis;

    /* The budget: the deadline minus the synthesis reserve. */
    uv_timer_t timer;
    int timer_open;
    uint64_t t0;          /* uv_now at start */
    uint64_t deadline_ms; /* 0: none */
    uint64_t budget_ms;   /* before synthesis; 0: none */
    int budget_out;       /* the pre-synthesis budget ran out */

    /* Usage sums: the run's, each stage's, and the running stage's (or
     * round's) for its stage_completed; stage_epoch counts the
     * stage_started events, so a call is added to cur only while its
     * stage runs. */
    council__usage_sum total;
    council__usage_sum stages[COUNCIL__N_STAGES];
    int stage_seen[COUNCIL__N_STAGES]; /* its stage_started is out */
    council__usage_sum cur;
    unsigned stage_epoch;
    /* The API keys of the providers (each once; borrowed from
     * providers[i].api_key): redacted from every event (see
     * council__host_emit). */
    const char **secrets;
    size_t n_secrets;
    size_t secret_max;      /* the longest one's length */
    json_t *synthesis;      /* how the answer was made, for the result */
    char *synth_prompt;     /* kept for the fallback chairmen */
    char *last_chair_error; /* the last chairman's failure, or NULL */
};

/* Build the host from a definition (copies all it needs).  size >=
 * sizeof(council__host): the strategy's whole state, zeroed.  On success
 * *ops is the host ops to give the engine and *state the host. */
council_err council__host_new(const council_def *def,
                              const council_message *msgs, size_t n_msgs,
                              uint64_t seed, const council__strategy_ops *sops,
                              size_t size, const council__host_ops **ops,
                              void **state, council_diag *diag);

/* Emit an event (data stolen); no-op once exited.  stage_started opens a
 * new usage sum for the stage; stage_completed gets it as its "usage".
 * Every secret of the council (its providers' API keys) is replaced by
 * "[redacted]" in the text and in every string of data first, whatever
 * the event; deltas are redacted where they stream (on_delta), over the
 * concatenation of a call's deltas. */
void council__host_emit(council__host *h, council_event_type type,
                        const char *stage, int round, const char *who,
                        const char *text, size_t len, json_t *data);

/* Start a member's call (index >= 0) with the input (user_text NULL) or
 * one user message.  Emits member_started.  0, or -1 when it could not
 * start (nothing emitted but member_started). */
int council__host_call(council__host *h, int member, const char *stage,
                       int round, const char *user_text);

/* End with run_failed (kind, message, the partial result). */
void council__host_fail(council__host *h, const char *kind,
                        const char *message);

/* Go to the synthesis (chairman, fallbacks, then top member). */
void council__host_synthesize(council__host *h);

/* The error object of a failed call; when the budget cut the call,
 * kind "deadline". */
json_t *council__host_error_json(council__host *h,
                                 const council__chat_result *res);
/* model, usage, latency_ms, first_byte_ms, finish_reason. */
json_t *council__host_call_info(const council__chat_result *res,
                                const char *model);
json_t *council__host_usage_json(const council__usage *u);
/* A sum as JSON: calls, unknown_calls, complete; the token counts when at
 * least one call reported usage (or there were none); cost when every call
 * reported one, else cost_partial when some did. */
json_t *council__host_sum_json(const council__usage_sum *s);
/* member_failed's data for a call that ran: model, error (stolen) and
 * the usage the call reported (null when none). */
json_t *council__host_failed_json(const council__chat_result *res,
                                  const char *model, json_t *error);

/* The answer stage done for one member: stores the answer or the failure
 * and emits member_completed or member_failed.  Returns 1 if it answered. */
int council__host_answer_done(council__host *h, council__hcall *c,
                              const council__chat_result *res);

/* Members in state DONE; quorum check: fails the run and returns -1 when
 * below quorum (kind "quorum", or "deadline" when the budget ran out). */
int council__host_check_quorum(council__host *h, const char *stage);

/* The answer stage that rank and vote share.  start: emits stage_started
 * ("answer") and starts every member's call; a call that cannot start is
 * a member_failed (kind internal).  end: once no member's call is running,
 * emits stage_completed (answered, failed), checks the quorum (failing the
 * run below it) and hands back the indices of the members that answered
 * (council__free them).  Returns 0 when the stage is over and the quorum
 * holds, 1 while calls are running, -1 when the run failed. */
void council__host_start_answers(council__host *h);
int council__host_end_answers(council__host *h, size_t **cands, size_t *n);

/* Milliseconds of the pre-synthesis budget left (UINT64_MAX: no
 * deadline). */
uint64_t council__host_budget_left(council__host *h);

/* A growing string for prompts; once an append fails the rest are
 * no-ops and council__sb_done returns NULL. */
typedef struct council__sb {
    char *p;
    size_t len, cap;
    int oom;
} council__sb;

void council__sb_put(council__sb *b, const char *s, size_t n);
void council__sb_str(council__sb *b, const char *s);
void council__sb_fmt(council__sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *council__sb_done(council__sb *b);

/* text[0..len) with each copy of a secret of h replaced by "[redacted]":
 * 1 and a new string in *out (*out_len bytes, NUL-terminated), 0 when it
 * holds none (nothing allocated), -1 when out of memory. */
int council__host_redact(const council__host *h, const char *text, size_t len,
                         char **out, size_t *out_len);

/* SplitMix64 finalizer, for per-member seeds. */
uint64_t council__mix64(uint64_t x);

/* Every seed is recorded as a JSON integer, which is signed 64-bit
 * (json_int_t): seeds keep to 0..2^63-1, so a recorded seed is the seed
 * (never a negative number) and can be given back to replay a run. */
#define COUNCIL__SEED_MAX ((uint64_t)INT64_MAX)

/* A per-member seed derived from x, within 0..COUNCIL__SEED_MAX. */
uint64_t council__member_seed(uint64_t x);

/* The debate's convergence measure: Jaccard similarity of the sets of
 * lower-cased alphanumeric words of a and b (1 when both have none). */
double council__similarity(const char *a, size_t alen, const char *b,
                           size_t blen);

#endif
