/* SPDX-License-Identifier: MIT */
/*
 * The allocator seam.  council_set_allocator() swaps the four functions for
 * the whole library; tests install a counting, failing allocator here to
 * prove that every allocation failure is survived (RELIABILITY F1).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "council.h"

static void *(*malloc_fn)(size_t) = malloc;
/* jansson's allocations that failed on this thread (see alloc.h). */
static _Thread_local unsigned long json_failures;
static void *(*realloc_fn)(void *, size_t) = realloc;
static void *(*calloc_fn)(size_t, size_t) = calloc;
static void (*free_fn)(void *) = free;

static void *
json_malloc(size_t n)
{
    void *p = malloc_fn(n);

    if (p == NULL)
        json_failures++;
    return p;
}

unsigned long
council__json_alloc_failures(void)
{
    return json_failures;
}

council_err
council_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t),
                      void *(*c)(size_t, size_t), void (*f)(void *))
{
    if (m == NULL || r == NULL || c == NULL || f == NULL)
        return COUNCIL_EINVAL;
    malloc_fn = m;
    realloc_fn = r;
    calloc_fn = c;
    free_fn = f;
    /* jansson allocates for us too: route it through the same seam,
     * counting its failures. */
    json_set_alloc_funcs(json_malloc, f);
    return COUNCIL_OK;
}

void *
council__malloc(size_t n)
{
    return malloc_fn(n == 0 ? 1 : n);
}

void *
council__calloc(size_t count, size_t n)
{
    return calloc_fn(count == 0 ? 1 : count, n == 0 ? 1 : n);
}

void *
council__realloc(void *p, size_t n)
{
    return realloc_fn(p, n == 0 ? 1 : n);
}

void
council__free(void *p)
{
    if (p != NULL)
        free_fn(p);
}

void
council_free(void *p)
{
    council__free(p);
}

char *
council__strndup(const char *s, size_t n)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = council__malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
council__strdup(const char *s)
{
    return s == NULL ? NULL : council__strndup(s, strlen(s));
}
