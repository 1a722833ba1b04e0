/* SPDX-License-Identifier: MIT */
/*
 * A raw scripted HTTP server for tests: listens on 127.0.0.1 (an ephemeral
 * port), reads each request (headers and a Content-Length body), records
 * it, and writes a scripted response byte for byte: a list of (bytes,
 * delay) steps, then a close, a reset, or a stall until the client leaves
 * or the server stops.  One thread accepts, one thread per connection;
 * rawhttp_stop joins them all and closes every descriptor.
 */
#ifndef COUNCIL_TEST_RAWHTTP_H
#define COUNCIL_TEST_RAWHTTP_H

#include <stddef.h>

typedef struct rawhttp rawhttp;

typedef struct rawhttp_step {
    const char *data;  /* NULL: echo the request's header block, JSON-escaped */
    size_t len;        /* 0 with data: strlen(data) */
    unsigned delay_us; /* wait before writing this step */
} rawhttp_step;

enum rawhttp_end {
    RAWHTTP_CLOSE = 0, /* orderly close (FIN) after the last step */
    RAWHTTP_RESET,     /* RST after the last step */
    RAWHTTP_STALL      /* keep the connection open, send nothing more */
};

rawhttp *rawhttp_start(void);
int rawhttp_port(const rawhttp *s);
/* The response for every later connection; steps are copied. */
void rawhttp_script(rawhttp *s, const rawhttp_step *steps, size_t n, int end);
/* The same with one step holding the whole response. */
void rawhttp_reply(rawhttp *s, const char *response, int end);
/* The response for the nth request read whole (1-based) instead of the
 * default script; at most 16 of them. */
void rawhttp_script_nth(rawhttp *s, int nth, const rawhttp_step *steps,
                        size_t n, int end);
void rawhttp_reply_nth(rawhttp *s, int nth, const char *response, int end);
/* The most requests in flight at once (read whole, last step not yet
 * written). */
int rawhttp_max_inflight(rawhttp *s);
/* How many requests were read whole so far. */
int rawhttp_requests(rawhttp *s);
/* A copy (free() it) of the last request read whole, or NULL. */
char *rawhttp_last_request(rawhttp *s);
/* Stops, joins every thread, closes every descriptor, frees. */
void rawhttp_stop(rawhttp *s);

#endif
