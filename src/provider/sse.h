/* SPDX-License-Identifier: MIT */
/*
 * Incremental Server-Sent Events parser (WHATWG "event stream"
 * interpretation): bytes in, in chunks of any size; events out through a
 * callback.  Chunk boundaries never change the result.  CR, LF and CRLF end
 * lines; a leading BOM is skipped; ':' comment lines are ignored; "id:" and
 * "retry:" are accepted and ignored; lines longer than max_line, and events
 * whose data (all data lines with their '\n' separators) exceeds max_line,
 * are an error, not an allocation without bound.  After an error the parser
 * stays failed: every later feed returns the same error.
 */
#ifndef COUNCIL_SSE_H
#define COUNCIL_SSE_H

#include <stddef.h>

#include "council.h"

typedef struct council__sse council__sse;

/* An event: the "event:" name ("" if none) and the data lines joined with
 * '\n' (NUL-terminated too; may hold NUL bytes).  Both borrowed for the
 * call.  An event is dispatched when a blank line follows at least one
 * "data" line, even an empty one ("data:" alone gives data "").  Return
 * non-zero to stop parsing (council__sse_feed then returns COUNCIL_ECANCELED).
 */
typedef int (*council__sse_cb)(const char *event, const char *data,
                               size_t data_len, void *ud);

council_err council__sse_new(size_t max_line, council__sse_cb cb, void *ud,
                             council__sse **out);
/* Feed bytes.  COUNCIL_EPARSE if a line exceeds max_line. */
council_err council__sse_feed(council__sse *p, const char *buf, size_t len);
/* End of stream: a pending unterminated event is dropped, as the spec says.
 * Returns 1 if bytes of an unfinished line or event were pending (or the
 * parser had failed or been stopped), else 0. */
int council__sse_finish(council__sse *p);
void council__sse_free(council__sse *p);

#endif
