/* SPDX-License-Identifier: MIT */
/*
 * A validating JSON scanner that builds nothing (json_scan.c): whether a
 * text is one JSON value, and the members of a top-level object as spans
 * of the text.  For splicing stored JSON texts without parsing them, and
 * for telling why jansson refused a text: bad input, or memory.
 */
#ifndef COUNCIL_JSON_SCAN_H
#define COUNCIL_JSON_SCAN_H

#include <jansson.h>
#include <stddef.h>

/* Deeper nesting is refused (jansson's own limit is 2048). */
#define COUNCIL__JSON_DEPTH 512

/* 0 if text[0..n-1] is exactly one JSON value (blanks around it allowed),
 * else -1. */
int council__json_valid(const char *text, size_t n);

/* 1 if text[0..n-1] is exactly one JSON value that is neither an object
 * nor an array (42, "x", true, null): JSON jansson refuses without
 * JSON_DECODE_ANY.  Else 0. */
int council__json_scalar(const char *text, size_t n);

/* A member of an object: its key as written between the quotes (escapes
 * not decoded) and its value's text, both pointing into the scanned text. */
typedef struct council__json_member {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} council__json_member;

/* Validate text as one JSON object, then call cb for each member in order;
 * non-zero from cb stops.  0 when every member was seen, 1 when cb
 * stopped, -1 (cb never called) when text is not one valid JSON object. */
int council__json_members(const char *text, size_t n,
                          int (*cb)(const council__json_member *m, void *ud),
                          void *ud);

/*
 * jansson failed to load text[0..n-1] (without JSON_DECODE_ANY) with error
 * je: 1 if that can only be for memory (the text is a JSON array or object
 * and je names no reason of jansson's own: numbers out of range, \u0000 in
 * a key or without JSON_ALLOW_NUL, a key given twice, nesting too deep),
 * else 0: a valid text holding another value (42, "x") is bad input.  jansson
 * does not say so itself: an allocation that fails in its lexer is reported as
 * a syntax error, or with no message at all.  Allocates nothing.
 */
int council__json_oom(const char *text, size_t n, const json_error_t *je);

#endif
