/* SPDX-License-Identifier: MIT */
/*
 * Internal side of events and outcomes: construction and the typed fields
 * that council.h exposes only through accessors.  An event is built whole,
 * stamped with its seq and time by the run before it is shared, and never
 * changed after; its JSON text is rendered at most once, lazily.
 */
#ifndef COUNCIL_EVENT_H
#define COUNCIL_EVENT_H

#include <jansson.h>
#include <stdatomic.h>

#include "council.h"

typedef struct council__event_init {
    council_event_type type;
    const char *run_id; /* required */
    uint64_t seq;       /* 0 = stamped later by the run */
    int64_t ts_us;      /* 0 = stamped later by the run */
    const char *stage;  /* NULL if none */
    const char *member; /* NULL if none */
    const char *text;   /* NULL if none; may hold any bytes */
    size_t text_len;
    int round;    /* 0 if none */
    json_t *data; /* extra fields, an object or NULL; STOLEN always */
} council__event_init;

/* New event with refcount 1, or NULL when memory ran out. */
council_event *council__event_new(const council__event_init *init);

/* Stamp seq and time.  Only before the event is shared (refcount 1). */
void council__event_stamp(council_event *ev, uint64_t seq, int64_t ts_us);

/* Borrowed extra fields (object) or NULL. */
json_t *council__event_data(const council_event *ev);

/* Add n references at once (fan-out to n subscribers). */
void council__event_ref_n(council_event *ev, unsigned n);

/* True for run_completed and run_failed. */
int council__event_is_terminal(council_event_type type);

/* "member_delta" -> COUNCIL_EV_MEMBER_DELTA; 0 if unknown. */
council_event_type council__event_type_from_name(const char *name);

/* Wall clock in microseconds since the epoch. */
int64_t council__now_us(void);

/*
 * Outcomes.  council__outcome_new steals result and errors (either may be
 * NULL) and copies reason.  NULL when memory ran out.
 */
council_outcome *council__outcome_new(council_outcome_kind kind, json_t *result,
                                      json_t *errors, const char *reason);
/* Classify a terminal event (DESIGN 2.4): run_completed -> ok(result);
 * run_failed with an error of kind "cancelled" -> cancelled; else error. */
council_outcome *council__outcome_from_terminal(const council_event *ev);
void council__outcome_free(council_outcome *o);
/* Borrowed parsed forms. */
json_t *council__outcome_result(const council_outcome *o);
json_t *council__outcome_errors(const council_outcome *o);

#endif
