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
    /* council__run_emit keeps ts_us (a replayed event's recorded time,
     * even 0) instead of stamping the time of emission. */
    int keep_ts;
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

/* The name of the field holding an event's text: "delta" for the *_delta
 * types, else "text". */
const char *council__event_text_field(council_event_type type);

/* An event's "ts": RFC 3339 UTC with microseconds,
 * 2026-11-24T01:02:03.456789Z (the year as gmtime gives it, so any int64
 * renders).  out: at least 48 bytes. */
void council__format_ts(int64_t us, char *out, size_t size);
/* The inverse: s[0..n-1] in the form above (1 to 9 fraction digits, or
 * none; "Z" only) to microseconds since the epoch.  0, or -1 if malformed
 * or out of range. */
int council__parse_ts(const char *s, size_t n, int64_t *out_us);

/* A new rendering of ev's JSON, not cached (for tests and fuzzing).  Free
 * with council__free.  NULL when memory ran out. */
char *council__event_render(const council_event *ev);

/* Give ev its JSON text (takes ownership; freed with the event).  Only
 * before the event is shared and before council_event_json was called. */
void council__event_set_json(council_event *ev, char *json);

/* council_event_parse on an object already parsed (borrowed). */
council_err council__event_from_object(json_t *o, council_event **out,
                                       council_diag *diag);

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

#endif
