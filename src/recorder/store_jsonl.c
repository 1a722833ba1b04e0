/* SPDX-License-Identifier: MIT */
/*
 * The run store on a jsonl record (DIR/<run_id>.jsonl): the file is read
 * whole at open with the jsonl checker (council__jsonl_read), its event
 * lines parsed into events, and the store calls answer from memory.  A
 * record cut short (no outcome line, or a torn last line: what a crash
 * leaves) is a run without an outcome, like a SQLite row that was never
 * finalized.  A damaged line (bad JSON, a gap, another run's event, a line
 * after the outcome, an event that does not parse) ends the valid part:
 * the events before it are served, and council_store_events reports the
 * damage after them.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/event.h"
#include "recorder/store.h"

typedef struct loader {
    council_store *s;
    size_t cap;
    council_err rc; /* ENOMEM from the callback */
} loader;

static int
on_line(json_t *o, int line, void *ud)
{
    loader *l = ud;
    council_store *s = l->s;
    council_event *ev = NULL;
    council_diag pd;
    council_err rc;

    if (json_object_get(o, "outcome") != NULL) {
        s->outcome = json_incref(o);
        return 0;
    }
    rc = council__event_from_object(o, &ev, &pd);
    if (rc == COUNCIL_ENOMEM) {
        l->rc = rc;
        return 1;
    }
    if (rc != COUNCIL_OK) {
        s->damaged = 1;
        council__recorder_diag(&s->damage, s->path, line, "not an event: %s",
                               pd.msg);
        return 1;
    }
    if (s->n_events == l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 64;
        council_event **evs = council__realloc(s->events, cap * sizeof(*evs));

        if (evs == NULL) {
            council_event_unref(ev);
            l->rc = COUNCIL_ENOMEM;
            return 1;
        }
        s->events = evs;
        l->cap = cap;
    }
    s->events[s->n_events++] = ev;
    if (s->n_events == 1 && council_event_type_of(ev) == COUNCIL_EV_RUN_STARTED)
        s->started = json_incref(o);
    return 0;
}

council_err
council__store_load_jsonl(council_store *s, council_diag *diag)
{
    council__jsonl_report rep;
    council_diag rd;
    loader l;
    council_err rc;

    memset(&l, 0, sizeof(l));
    l.s = s;
    rc = council__jsonl_read(s->path, &rep, on_line, &l, &rd);
    switch (rc) {
    case COUNCIL_OK:
        break;
    case COUNCIL_ECANCELED: /* the callback stopped: memory, or damage */
        if (l.rc != COUNCIL_OK) {
            council__recorder_diag(diag, s->path, 0, "out of memory");
            return l.rc;
        }
        break;
    case COUNCIL_EPARSE:
        /* Cut short (torn, no outcome line): a run without an outcome. */
        if (rep.bad_line != 0) {
            s->damaged = 1;
            s->damage = rd;
        }
        break;
    default: /* ENOTFOUND, EIO, ENOMEM: the reader's diag says it */
        if (diag != NULL)
            *diag = rd;
        return rc;
    }
    /* The texts the record is spliced from. */
    if ((s->started != NULL &&
         (s->started_text = json_dumps(s->started, JSON_COMPACT)) == NULL) ||
        (s->outcome != NULL &&
         (s->outcome_text = json_dumps(s->outcome, JSON_COMPACT)) == NULL)) {
        council__recorder_diag(diag, s->path, 0, "out of memory");
        return COUNCIL_ENOMEM;
    }
    if (s->n_events == 0) {
        council__recorder_diag(diag, s->path, s->damage.line,
                               "not a council jsonl record: %s",
                               s->damaged ? s->damage.msg : "no event");
        return COUNCIL_EIO;
    }
    return COUNCIL_OK;
}

static const char *
started_str(council_store *s, const char *key)
{
    return json_string_value(json_object_get(s->started, key));
}

static const char *
outcome_kind(council_store *s)
{
    return json_string_value(json_object_get(s->outcome, "outcome"));
}

/* No run but this file's: "no run X in PATH". */
static council_err
not_here(council_store *s, const char *run_id, council_diag *diag)
{
    council__recorder_diag(diag, s->path, 0, "no run %s in %s", run_id,
                           s->path);
    return COUNCIL_ENOTFOUND;
}

static int
is_ours(council_store *s, const char *run_id)
{
    return strcmp(council_event_run_id(s->events[0]), run_id) == 0;
}

council_err
council__store_jsonl_runs(council_store *s, const council_store_query *q,
                          int (*cb)(const council_run_row *row, void *ud),
                          void *ud, council_diag *diag)
{
    council_run_row row;
    const char *kind = outcome_kind(s);

    (void)diag;
    memset(&row, 0, sizeof(row));
    row.run_id = council_event_run_id(s->events[0]);
    row.council = started_str(s, "council");
    row.question = started_str(s, "question");
    row.strategy = started_str(s, "strategy");
    row.started_us = council_event_time_us(s->events[0]);
    row.ended_us =
        kind != NULL ? council_event_time_us(s->events[s->n_events - 1]) : 0;
    row.outcome = kind;
    row.events = s->n_events;
    if (q->council != NULL &&
        (row.council == NULL || strcmp(q->council, row.council) != 0))
        return COUNCIL_OK;
    if (q->outcome != NULL &&
        (strcmp(q->outcome, "running") == 0
             ? kind != NULL
             : kind == NULL || strcmp(q->outcome, kind) != 0))
        return COUNCIL_OK;
    if (q->since_us > 0 && row.started_us < q->since_us)
        return COUNCIL_OK;
    (void)cb(&row, ud);
    return COUNCIL_OK;
}

council_err
council__store_jsonl_run(council_store *s, const char *run_id, char **json_out,
                         council_diag *diag)
{
    council__run_src r;

    if (!is_ours(s, run_id))
        return not_here(s, run_id, diag);
    memset(&r, 0, sizeof(r));
    r.run_id = run_id;
    r.started_us = council_event_time_us(s->events[0]);
    r.outcome = outcome_kind(s);
    r.ended_us = council_event_time_us(s->events[s->n_events - 1]);
    if (s->started_text != NULL) {
        r.started_json = s->started_text;
        r.started_len = strlen(s->started_text);
    }
    if (s->outcome_text != NULL) {
        r.outcome_json = s->outcome_text;
        r.outcome_len = strlen(s->outcome_text);
    }
    r.events = s->n_events;
    return council__store_record(&r, s->path, json_out, diag);
}

council_err
council__store_jsonl_events(council_store *s, const char *run_id,
                            uint64_t after_seq,
                            int (*cb)(council_event *ev, void *ud), void *ud,
                            council_diag *diag)
{
    size_t i;

    if (!is_ours(s, run_id))
        return not_here(s, run_id, diag);
    /* Events i hold seq i + 1: the reader checked that. */
    for (i = after_seq < s->n_events ? (size_t)after_seq : s->n_events;
         i < s->n_events; i++)
        if (cb(s->events[i], ud) != 0)
            return COUNCIL_OK;
    if (s->damaged) {
        if (diag != NULL)
            *diag = s->damage;
        return COUNCIL_EIO;
    }
    return COUNCIL_OK;
}
