/* SPDX-License-Identifier: MIT */
/*
 * Internal allocation entry points.  Every allocation in the library goes
 * through these so council_set_allocator() (and the tests' failing
 * allocator) sees all of them.  They return NULL on failure; callers turn
 * that into COUNCIL_ENOMEM and never abort.
 */
#ifndef COUNCIL_ALLOC_H
#define COUNCIL_ALLOC_H

#include <stddef.h>

void *council__malloc(size_t n);
void *council__calloc(size_t count, size_t n);
void *council__realloc(void *p, size_t n);
void council__free(void *p);
/*
 * How many of jansson's allocations have failed on this thread so far
 * (counted once council_set_allocator is in use).  jansson does not always
 * say so: its lexer drops a byte it cannot store and parses on, so a
 * parse can "succeed" with a corrupted string.  Parsers compare the count
 * before and after and treat any change as COUNCIL_ENOMEM.
 */
unsigned long council__json_alloc_failures(void);

/* Copies of strings; NULL in gives NULL out (not an error). */
char *council__strdup(const char *s);
char *council__strndup(const char *s, size_t n);

#endif
