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

#endif
