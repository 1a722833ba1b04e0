/* SPDX-License-Identifier: MIT */
/*
 * The Redis records and replies council reads (src/bus/fn.h): bytes as
 * they would come off the wire, decoded by hiredis's own RESP reader into
 * reply trees, then given to every reply parser (each council_v1
 * function's, a stream entry's, a run hash's), and every element of an
 * array reply to the entry parser (as an XRANGE reply's entries are).
 * Byte 0 is the number of runs renew is told about (0..3).  Checks: each
 * parser answers OK or EPARSE / EIO / ENOTFOUND; an error has a
 * NUL-terminated, non-empty message and a council key in diag.file; an OK
 * result holds what the function promises (a claim's gen >= 1, a skip is
 * never of a queued run, a terminal cancel's state is terminal, an
 * entry's seq >= 1 with an event or an outcome, a run with a state and a
 * spec, reap's callback ids NUL-terminated and counted).  Inputs whose
 * RESP headers announce more than 4096 elements or bytes are skipped
 * (announces_huge: hiredis 0.14 would allocate them whole).
 */
#include <string.h>

#include <hiredis/hiredis.h>

#include "bus/fn.h"
#include "fuzz.h"

static void
diag_ok(council_err rc, const council_diag *d)
{
    if (rc == COUNCIL_OK)
        return;
    FUZZ_CHECK(rc == COUNCIL_EPARSE || rc == COUNCIL_EIO ||
               rc == COUNCIL_ENOTFOUND);
    FUZZ_CHECK(memchr(d->msg, '\0', sizeof(d->msg)) != NULL);
    FUZZ_CHECK(d->msg[0] != '\0');
    FUZZ_CHECK(memchr(d->file, '\0', sizeof(d->file)) != NULL);
    FUZZ_CHECK(strncmp(d->file, "council:", 8) == 0);
}

static int
on_id(const char *id, size_t len, int dropped, void *ud)
{
    size_t *n = ud;

    FUZZ_CHECK(id != NULL && len > 0 && strlen(id) == len);
    FUZZ_CHECK(dropped == 0 || dropped == 1);
    (*n)++;
    return 0;
}

static void
all_parsers(const redisReply *r, size_t n_renew)
{
    static const char *const ids[] = {"a", "b", "c"};
    council__fn_renewal ren[3];
    council__fn_reply v;
    council__fn_entry e;
    council__fn_run run;
    council_diag d;
    council_err rc;
    size_t n = 0, nr = 0, nd = 0, i;
    int64_t ver;

    rc = council__fn_parse_enqueue(r, "R", &v, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK)
        FUZZ_CHECK(v.status == COUNCIL__FN_CREATED ||
                   v.status == COUNCIL__FN_EXISTS);
    rc = council__fn_parse_claim(r, "R", &v, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_CLAIMED)
        FUZZ_CHECK(v.gen >= 1 && v.spec != NULL);
    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_SKIP)
        FUZZ_CHECK(v.state != 0 && v.state != COUNCIL__FN_QUEUED);
    diag_ok(council__fn_parse_append(r, "R", &v, &d), &d);
    diag_ok(council__fn_parse_finish(r, "R", &v, &d), &d);
    rc = council__fn_parse_cancel(r, "R", &v, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_TERMINAL)
        FUZZ_CHECK(council__fn_state_terminal(v.state));
    rc = council__fn_parse_renew(r, ids, n_renew, ren, &d);
    diag_ok(rc, &d);
    for (i = 0; rc == COUNCIL_OK && i < n_renew; i++)
        FUZZ_CHECK(ren[i].status == COUNCIL__FN_RENEWED ||
                   ren[i].status == COUNCIL__FN_FENCED ||
                   ren[i].status == COUNCIL__FN_NOTFOUND);
    rc = council__fn_parse_reap(r, on_id, &n, &nr, &nd, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK)
        FUZZ_CHECK(n == nr + nd);
    rc = council__fn_parse_version(r, &ver, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK)
        FUZZ_CHECK(ver >= 1);
    rc = council__fn_parse_run(r, "R", &run, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK)
        FUZZ_CHECK(run.state != 0 && run.spec != NULL && run.owner != NULL);
    rc = council__fn_parse_entry(r, "R", &e, &d);
    diag_ok(rc, &d);
    if (rc == COUNCIL_OK)
        FUZZ_CHECK(e.seq >= 1 && (e.ev != NULL || e.terminal));
    /* An XRANGE / XREAD reply: each element an entry. */
    if (r->type == REDIS_REPLY_ARRAY && r->element != NULL) {
        for (i = 0; i < r->elements; i++) {
            rc = council__fn_parse_entry(r->element[i], "R", &e, &d);
            diag_ok(rc, &d);
            if (rc == COUNCIL_OK && e.terminal)
                FUZZ_CHECK(e.reason != NULL);
        }
    }
}

/*
 * hiredis 0.14's reader allocates an array's element table (and a bulk
 * string) at the size its header announces, with no limit (hiredis 1.0
 * added maxelements): "*807592783" is a 6 GB calloc, in hiredis, before
 * any parser of ours sees a reply.  Inputs announcing more than 4096 of
 * anything are skipped, so the fuzzer spends its time on our parsers.
 */
static int
announces_huge(const uint8_t *p, size_t n)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        unsigned long v = 0;

        if (p[i] != '*' && p[i] != '$')
            continue;
        for (j = i + 1; j < n && p[j] >= '0' && p[j] <= '9'; j++) {
            v = v * 10 + (unsigned long)(p[j] - '0');
            if (v > 4096)
                return 1;
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    void *reply = NULL;
    size_t n_renew;
    int k;

    if (size < 1 || announces_huge(data + 1, size - 1))
        return 0;
    n_renew = data[0] % 4;
    rd = redisReaderCreate();
    FUZZ_CHECK(rd != NULL);
    if (redisReaderFeed(rd, (const char *)data + 1, size - 1) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }
    /* Every whole reply in the input (at most 16). */
    for (k = 0; k < 16; k++) {
        reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
            break;
        all_parsers(reply, n_renew);
        freeReplyObject(reply);
    }
    /* A lost connection, too. */
    {
        council__fn_reply v;
        council_diag d;

        diag_ok(council__fn_parse_append(NULL, "R", &v, &d), &d);
    }
    redisReaderFree(rd);
    return 0;
}
