/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the validating JSON scanner (src/core/json_scan.c) against
 * jansson.  Differential: the scanner accepts exactly what jansson accepts
 * as one JSON value (JSON_DECODE_ANY | JSON_ALLOW_NUL), except numbers out
 * of range (jansson refuses them; they are still JSON) and nesting deeper
 * than the scanner's limit (it refuses; jansson's limit is higher); a raw
 * NUL byte, which jansson reads as the end, is refused.  For an
 * object the scanner accepts, its members are the object's: as many, in
 * order, each key and value parsing as JSON.
 */
#include <string.h>

#include <jansson.h>

#include "core/json_scan.h"
#include "fuzz.h"

typedef struct walk {
    size_t n;
} walk;

static int
member(const council__json_member *m, void *ud)
{
    walk *w = ud;
    json_t *v;
    char *key;

    /* The key is a JSON string once quoted; the value one JSON value. */
    key = malloc(m->key_len + 3);
    FUZZ_CHECK(key != NULL);
    key[0] = '"';
    memcpy(key + 1, m->key, m->key_len);
    key[m->key_len + 1] = '"';
    key[m->key_len + 2] = '\0';
    v = json_loads(key, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_string(v));
    free(key);
    json_decref(v);
    v = json_loadb(m->value, m->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                   NULL);
    FUZZ_CHECK(v != NULL);
    json_decref(v);
    w->n++;
    return 0;
}

static int
deep(const uint8_t *d, size_t n)
{
    size_t i;
    int depth = 0, in_string = 0;

    for (i = 0; i < n; i++) {
        if (in_string) {
            if (d[i] == '\\')
                i++;
            else if (d[i] == '"')
                in_string = 0;
        } else if (d[i] == '"') {
            in_string = 1;
        } else if (d[i] == '[' || d[i] == '{') {
            if (++depth > COUNCIL__JSON_DEPTH)
                return 1;
        } else if (d[i] == ']' || d[i] == '}') {
            depth--;
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    int ours = council__json_valid((const char *)data, size);

    if (memchr(data, '\0', size) != NULL) {
        /* A raw NUL is never JSON; jansson takes it for the end of the
         * input, so its verdict does not compare. */
        FUZZ_CHECK(ours != 0);
        json_decref(j);
        return 0;
    }
    if (j != NULL) {
        if (ours != 0)
            FUZZ_CHECK(deep(data, size));
    } else if (ours == 0) {
        /* Only a number jansson cannot hold, or a key holding \u0000
         * (JSON, but jansson allows NUL only in values). */
        FUZZ_CHECK(json_error_code(&je) == json_error_numeric_overflow ||
                   json_error_code(&je) == json_error_null_byte_in_key);
    }
    /* A scalar is what jansson without JSON_DECODE_ANY refuses for being
     * JSON of another kind, never for memory (council__json_oom). */
    if (j != NULL && ours == 0)
        FUZZ_CHECK(council__json_scalar((const char *)data, size) ==
                   (!json_is_object(j) && !json_is_array(j)));
    else if (ours != 0)
        FUZZ_CHECK(!council__json_scalar((const char *)data, size));
    if (json_is_object(j)) {
        walk w = {0};
        int rc = council__json_members((const char *)data, size, member, &w);

        if (ours == 0) {
            FUZZ_CHECK(rc == 0);
            /* Duplicate keys: jansson keeps one, the scan sees each. */
            FUZZ_CHECK(w.n >= json_object_size(j));
        } else {
            FUZZ_CHECK(rc == -1 && w.n == 0);
        }
    } else if (ours == 0 && j != NULL) {
        walk w = {0};

        FUZZ_CHECK(
            council__json_members((const char *)data, size, member, &w) == -1 &&
            w.n == 0);
    }
    json_decref(j);
    return 0;
}
