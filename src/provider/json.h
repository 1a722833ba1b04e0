/* SPDX-License-Identifier: MIT */
/*
 * JSON on the provider hot path, without building a jansson tree: a
 * writer for request bodies and a scanner for the common shape of a
 * streamed Chat Completions chunk.  Every streamed call parses about ten
 * chunks and builds one request; with jansson that was a third of the
 * loop thread's time (bench/README.md, "What limits council").
 *
 * The scanner is a fast path, not a second parser: it accepts a chunk
 * only when it is sure jansson would parse it and take_chunk (openai.c)
 * would read the same values from it; anything else (an error object, a
 * field it does not know, an escape it does not decode, a number near
 * the limits, invalid JSON) returns 0 and the caller parses with jansson,
 * which also words the error.  fuzz/fuzz_openai_chunk.c checks the two
 * paths agree on every input.  Any thread; no allocation.
 */
#ifndef COUNCIL_PROVIDER_JSON_H
#define COUNCIL_PROVIDER_JSON_H

#include <stddef.h>

#include "council.h"

struct council__bytes;

/* The length of the well-formed UTF-8 sequence at s (n bytes left, n >=
 * 1), 0 if the bytes there are not one, -1 if they are its beginning cut
 * short by the end of s. */
int council__utf8_seq(const unsigned char *s, size_t n);

/* Appends s (n bytes) to b as a JSON string, quotes included, escaped as
 * jansson's json_dumps does by default (", \ and control characters;
 * UTF-8 as is).  COUNCIL_EINVAL if s is not valid UTF-8 or holds a NUL
 * (nothing appended then), COUNCIL_ENOMEM; max as council__bytes_add. */
council_err council__json_put_str(struct council__bytes *b, const char *s,
                                  size_t n, size_t max);

/* A string value as it stands in the input: the bytes between the quotes,
 * escapes not yet decoded (esc: there is a backslash). */
typedef struct council__jstr {
    const char *p;
    size_t n;
    int esc;
} council__jstr;

/* What take_chunk reads from a streamed chunk (the last occurrence of a
 * duplicated key, as jansson keeps it). */
typedef struct council__oai_chunk {
    int usage;               /* "usage" is an object */
    long long prompt_tokens; /* -1: absent or not a count */
    long long completion_tokens;
    int cost_known; /* "usage.cost" is a number >= 0 */
    double cost;
    int choice;  /* choices[0] is an object */
    int content; /* choices[0].delta.content is a string */
    council__jstr content_str;
    int finish; /* choices[0].finish_reason is a string */
    council__jstr finish_str;
} council__oai_chunk;

/* 1 and *out filled if data (len bytes) is a chunk the fast path takes; 0
 * if the caller must use jansson. */
int council__oai_chunk_scan(const char *data, size_t len,
                            council__oai_chunk *out);

/* Decodes a scanned string into dst (room for s->n bytes, always enough)
 * and returns its length. */
size_t council__jstr_decode(const council__jstr *s, char *dst);

#endif
