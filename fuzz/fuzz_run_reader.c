/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the run store's readers (RELIABILITY "fuzz_run_reader": `council
 * runs show/replay` on damaged files): the input is written to an
 * in-memory file (memfd) and opened with council_store_open, which takes
 * it for a jsonl record or a SQLite store by its first bytes; then every
 * read call runs on it: the runs, each run's record and its events.
 * Checks: each call answers OK or a documented error (EIO for damage,
 * ENOTFOUND, EPARSE never), never crashes; a record is one valid JSON
 * object with the run's id; events come in seq order from 1 without gaps,
 * each of the run, and each renders to JSON that parses back to an event
 * with the same seq.  The seeds are a jsonl record and a small SQLite
 * store written by the recorders (fuzz/seeds/make_seeds.py copies them).
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "council.h"
#include "fuzz.h"

typedef struct walk {
    const char *run_id;
    uint64_t next;
} walk;

static int
on_event(council_event *ev, void *ud)
{
    walk *w = ud;
    const char *js = council_event_json(ev);
    council_event *back = NULL;

    FUZZ_CHECK(council_event_seq(ev) == w->next);
    FUZZ_CHECK(strcmp(council_event_run_id(ev), w->run_id) == 0);
    w->next++;
    FUZZ_CHECK(js != NULL && strchr(js, '\n') == NULL);
    FUZZ_CHECK(council_event_parse(js, strlen(js), &back, NULL) == COUNCIL_OK);
    FUZZ_CHECK(council_event_seq(back) == council_event_seq(ev));
    council_event_unref(back);
    return 0;
}

#define MAX_IDS 8

typedef struct ids {
    char id[MAX_IDS][80];
    int n;
} ids;

static int
on_row(const council_run_row *row, void *ud)
{
    ids *x = ud;

    FUZZ_CHECK(row->run_id != NULL);
    if (x->n < MAX_IDS && strlen(row->run_id) < sizeof(x->id[0]))
        snprintf(x->id[x->n++], sizeof(x->id[0]), "%s", row->run_id);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    council_store *s = NULL;
    council_diag diag;
    council_err rc;
    char path[64];
    ids x;
    int fd, i;

    fd = memfd_create("fuzz_run_reader", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rc = council_store_open(path, COUNCIL_STORE_READONLY, &s, &diag);
    FUZZ_CHECK(memchr(diag.msg, '\0', sizeof(diag.msg)) != NULL);
    if (rc != COUNCIL_OK) {
        FUZZ_CHECK(rc == COUNCIL_EIO && s == NULL && diag.msg[0] != '\0');
        close(fd);
        return 0;
    }
    memset(&x, 0, sizeof(x));
    rc = council_store_runs(s, NULL, on_row, &x, &diag);
    FUZZ_CHECK(rc == COUNCIL_OK || rc == COUNCIL_EIO);
    for (i = 0; i < x.n; i++) {
        walk w = {x.id[i], 1};
        char *json = NULL;
        json_t *j;

        rc = council_store_run(s, x.id[i], &json, &diag);
        FUZZ_CHECK(rc == COUNCIL_OK || rc == COUNCIL_EIO ||
                   rc == COUNCIL_ENOTFOUND);
        if (rc == COUNCIL_OK) {
            j = json_loads(json, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
            FUZZ_CHECK(json_is_object(j));
            FUZZ_CHECK(json_is_string(json_object_get(j, "run_id")));
            json_decref(j);
        }
        council_free(json);
        rc = council_store_events(s, x.id[i], 0, on_event, &w, &diag);
        FUZZ_CHECK(rc == COUNCIL_OK || rc == COUNCIL_EIO ||
                   rc == COUNCIL_ENOTFOUND);
        if (rc == COUNCIL_EIO)
            FUZZ_CHECK(diag.msg[0] != '\0');
    }
    council_store_close(s);
    close(fd);
    return 0;
}
