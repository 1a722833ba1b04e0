/* SPDX-License-Identifier: MIT */
/*
 * Rendering a jansson tree as compact JSON text, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) gives (json_write.c says
 * why and how; tests/unit/test_json_write.c holds it to that).
 */
#ifndef COUNCIL_JSON_WRITE_H
#define COUNCIL_JSON_WRITE_H

#include <jansson.h>
#include <stddef.h>

/* The text of v (any JSON value), NUL-terminated, in memory from
 * council__malloc (free with council__free); *len_out (if not NULL) gets
 * its length.  NULL when memory ran out or v nests deeper than
 * COUNCIL__JSON_WRITE_DEPTH (a tree with a cycle does). */
char *council__json_dumps(const json_t *v, size_t *len_out);

#define COUNCIL__JSON_WRITE_DEPTH 2048

/* The two halves of writing a string the way jansson does, for writers
 * with buffers of their own (src/provider/json.c): how many bytes at the
 * start of s[0..n) go in as they are (none of ", \ or a byte below 0x20),
 * and the escape of a byte that stopped that run (\" \\ \b \f \n \r \t
 * or \u00XX, upper-case digits), whose length is returned. */
size_t council__json_plain_run(const char *s, size_t n);
size_t council__json_escape_byte(unsigned char c, char out[6]);

#endif
