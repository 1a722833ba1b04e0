/* SPDX-License-Identifier: MIT */
/*
 * Frames between an engine and its child-process run hosts (DISTRIBUTED 2).
 *
 * A frame is a 4-byte big-endian length n (1 <= n <= COUNCIL__FRAME_MAX),
 * then n bytes: a type byte and its payload.  The reader never trusts the
 * length: a frame that claims more than the limit is a protocol error
 * before any memory is set aside for it.
 *
 *   parent -> child
 *     'P' params     u32 heartbeat interval in ms
 *     'S' spec       JSON {run_id, seed (a decimal string), deadline_ms,
 *                    council: {name, text}, messages: [{role, content}]}
 *     'C' cancel     the kind: "cancelled" or "deadline"
 *   child -> parent
 *     'R' ready      u32 protocol version, u32 pid
 *     'E' event      an event, binary (council__frame_event_*)
 *     'H' heartbeat  empty
 *     'D' done       the child's outcome as council_outcome_json: its run
 *                    is over and finalized; the child takes the next spec
 *     'F' failed     text: the run could not start in the child
 *     'L' log        text: one log line of the child's engine
 */
#ifndef COUNCIL_FRAME_H
#define COUNCIL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

#define COUNCIL__FRAME_PROTOCOL 1
/* The largest frame: an event's text (a whole synthesis, a result) stays
 * far below it. */
#define COUNCIL__FRAME_MAX (16u * 1024 * 1024)

enum {
    COUNCIL__FR_PARAMS = 'P',
    COUNCIL__FR_SPEC = 'S',
    COUNCIL__FR_CANCEL = 'C',
    COUNCIL__FR_READY = 'R',
    COUNCIL__FR_EVENT = 'E',
    COUNCIL__FR_HEARTBEAT = 'H',
    COUNCIL__FR_DONE = 'D',
    COUNCIL__FR_FAILED = 'F',
    COUNCIL__FR_LOG = 'L'
};

/* A growable byte buffer. */
typedef struct council__buf {
    unsigned char *p;
    size_t len, cap;
} council__buf;

council_err council__buf_reserve(council__buf *b, size_t more);
void council__buf_free(council__buf *b);
/* Drop the first n bytes. */
void council__buf_consume(council__buf *b, size_t n);

/* Append one frame of the given type and payload.  ENOMEM, or EINVAL if
 * the payload is over the limit. */
council_err council__frame_put(council__buf *b, int type, const void *payload,
                               size_t len);
/* Append an event frame for ev. */
council_err council__frame_put_event(council__buf *b, const council_event *ev);

/*
 * The next whole frame at the start of b[0..len): 1 with *type, *payload
 * (pointing into b) and *plen set and *used the bytes it takes; 0 if more
 * bytes are needed; -1 if the length is 0 or over the limit (why, size
 * bytes, says so).
 */
int council__frame_next(const unsigned char *b, size_t len, int *type,
                        const unsigned char **payload, size_t *plen,
                        size_t *used, char *why, size_t why_size);

/* A decoded event frame: the strings point into the payload (not
 * NUL-terminated; NULL when absent). */
typedef struct council__frame_event {
    uint64_t seq;
    int64_t ts_us;
    council_event_type type;
    int round;
    const char *stage, *member, *text, *data;
    size_t stage_len, member_len, text_len, data_len;
} council__frame_event;

/* Decode an event payload; 0, or -1 with why (size bytes). */
int council__frame_event_decode(const unsigned char *p, size_t len,
                                council__frame_event *out, char *why,
                                size_t why_size);

/* Big-endian 32-bit helpers. */
uint32_t council__get_u32(const unsigned char *p);
void council__put_u32(unsigned char *p, uint32_t v);

#endif
