/* SPDX-License-Identifier: MIT */
/*
 * Internal form of a council definition (DESIGN 4), filled by the loader in
 * def.c from YAML or JSON and read by the strategies.  Every string is owned
 * by the council_def and freed by council_def_free.
 */
#ifndef COUNCIL_DEF_H
#define COUNCIL_DEF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "council.h"
#include "provider/provider.h"

typedef enum council__strategy {
    COUNCIL__STRATEGY_RANK = 1,
    COUNCIL__STRATEGY_DEBATE = 2,
    COUNCIL__STRATEGY_VOTE = 3
} council__strategy;

typedef struct council__provider_def {
    char *name;
    council__provider_kind kind;
    char *base_url;    /* without a trailing '/' */
    char *api_key_env; /* NULL if none; the key itself is read at run time */
    int api_key_env_line, api_key_env_col; /* where api_key_env's value is */
    int max_parallel;                      /* 0 = unlimited */
} council__provider_def;

typedef struct council__member_def {
    char *name;
    size_t provider; /* index into council_def.providers */
    char *model;
    char *system; /* NULL if none */
} council__member_def;

typedef struct council__limits {
    uint64_t member_timeout_ms; /* default 60000 */
    uint64_t deadline_ms;       /* default 300000 */
    int retries;                /* default 2 */
    int quorum;                 /* default: majority of members, >= 1 */
    int max_tokens;             /* default 1024 */
    int rounds;                 /* debate: default 3, 1..10 */
    double convergence;         /* debate: default 0.9, 0..1 */
    /* The part of the deadline kept for the synthesis: a share in percent
     * (default 20, 0..90), or, when reserve_ms > 0, a duration. */
    int synthesis_reserve_pct;
    uint64_t synthesis_reserve_ms;
} council__limits;

struct council_def {
    /* council_def_free drops one; each run's host holds one, borrowing
     * the strings (a definition is immutable once loaded). */
    atomic_int refs;
    char source[256]; /* the file (or name) it was loaded from */
    char *name;
    council__strategy strategy;
    council__provider_def *providers;
    size_t n_providers;
    council__member_def *members;
    size_t n_members;
    council__member_def chairman; /* name is "chairman" */
    /* chairman.fallback: tried in order when the chairman fails; each
     * named "chairman" too, system inherited from the chairman if unset. */
    council__member_def *chair_fallback;
    size_t n_chair_fallback;
    council__limits limits;
    int isolation; /* COUNCIL_ISOLATION_*: the `isolation` key, or DEFAULT */
    /* The text it was loaded from (text_len bytes plus a NUL, which the
     * text itself may hold: a child-process host loads it again). */
    char *text;
    size_t text_len;
};

/* One more reference (any thread); council_def_free drops it. */
const council_def *council__def_ref(const council_def *def);

/* Duration text ("250ms", "3s", "5m", "1h", or a bare number of ms) to ms.
 * Returns 0 on success, -1 if malformed or out of range. */
int council__parse_duration(const char *s, size_t len, uint64_t *out_ms);

#endif
