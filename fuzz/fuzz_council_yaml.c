/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the council definition loader (YAML or JSON text, DESIGN 4):
 * council_def_load_string on the whole input.  Checks: it either returns
 * COUNCIL_OK with a definition whose accessors answer (a name, 1..26
 * named members), or fails with no definition and a diag naming the file
 * "<fuzz>" with a non-empty, NUL-terminated, UTF-8 message; a parse or shape
 * error (EPARSE/EINVAL) has line and column >= 0.  LeakSanitizer checks that
 * nothing is left either way.
 */
#include <string.h>

#include "council.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    council_def *def = NULL;
    council_diag diag;
    council_err rc;

    memset(&diag, 0x5a, sizeof(diag)); /* the loader must overwrite it */
    rc = council_def_load_string((const char *)data, size, "<fuzz>", &def,
                                 &diag);
    if (rc == COUNCIL_OK) {
        size_t n, i;

        FUZZ_CHECK(def != NULL);
        FUZZ_CHECK(council_def_name(def) != NULL);
        FUZZ_CHECK(council_def_name(def)[0] != '\0');
        n = council_def_member_count(def);
        FUZZ_CHECK(n >= 1 && n <= 26);
        for (i = 0; i < n; i++) {
            const char *m = council_def_member_name(def, i);

            FUZZ_CHECK(m != NULL && m[0] != '\0');
        }
        council_def_free(def);
        return 0;
    }
    FUZZ_CHECK(def == NULL);
    FUZZ_CHECK(rc == COUNCIL_EPARSE || rc == COUNCIL_EINVAL ||
               rc == COUNCIL_ENOMEM);
    FUZZ_CHECK(memchr(diag.msg, '\0', sizeof(diag.msg)) != NULL);
    FUZZ_CHECK(diag.msg[0] != '\0');
    FUZZ_CHECK(fuzz_utf8_valid(diag.msg, strlen(diag.msg)));
    FUZZ_CHECK(memchr(diag.file, '\0', sizeof(diag.file)) != NULL);
    FUZZ_CHECK(strcmp(diag.file, "<fuzz>") == 0);
    if (rc == COUNCIL_EPARSE || rc == COUNCIL_EINVAL) {
        FUZZ_CHECK(diag.line >= 0);
        FUZZ_CHECK(diag.col >= 0);
    }
    return 0;
}
