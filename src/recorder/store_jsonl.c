/* SPDX-License-Identifier: MIT */
/*
 * The run store on a jsonl record (DIR/<run_id>.jsonl): the file is read
 * whole at open with the jsonl checker (council__jsonl_read), its event
 * lines parsed into events, and the store calls answer from memory.  A
 * record cut short (no outcome line, or a torn last line: what a crash
 * leaves) is a run without an outcome, like a SQLite row that was never
 * finalized, unless its owner line names a process that is gone: then it
 * ended, as its terminal event says if the file holds one, else as
 * crashed("process lost: pid N"), and a read-write handle appends that
 * outcome line to the file (council__store_jsonl_close).  A damaged line
 * (bad JSON, a gap, another run's event, a line after the outcome, an
 * event that does not parse) ends the valid part: the events before it
 * are served, and council_store_events reports the damage after them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "core/alloc.h"
#include "core/event.h"
#include "os/os.h"
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

/*
 * The run of s ended without its outcome line, and its process is gone:
 * the outcome is its terminal event's if the file holds one (a terminal
 * before the death wins), else crashed("process lost: pid N").
 */
static council_err
close_record(council_store *s)
{
    council_event *last = s->events[s->n_events - 1];
    council_outcome *o;
    json_error_t je;

    if (council__event_is_terminal(council_event_type_of(last))) {
        o = council__outcome_from_terminal(last);
        s->has_emitted = 1;
        s->emitted = s->n_events;
    } else {
        o = council__store_lost_outcome(s->owner.pid);
    }
    if (o == NULL)
        return COUNCIL_ENOMEM;
    s->outcome = json_loads(council_outcome_json(o), 0, &je);
    council__outcome_free(o);
    if (s->outcome == NULL)
        return COUNCIL_ENOMEM;
    s->closed_here = 1;
    s->saw_lost = 1;
    return COUNCIL_OK;
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
    s->has_owner = rep.has_owner;
    s->owner = rep.owner;
    s->size = (int64_t)rep.size;
    s->line_end = (int64_t)rep.line_end;
    if (s->outcome != NULL) {
        s->has_emitted = 1;
        s->emitted = rep.emitted > s->n_events ? rep.emitted : s->n_events;
    } else if (s->n_events > 0 && !s->damaged && s->has_owner &&
               council__owner_check(&s->owner) == COUNCIL__OWNER_LOST) {
        /* (A damaged file may hold its outcome after the damage: it is
         * left as it reads.) */
        rc = close_record(s);
        if (rc != COUNCIL_OK) {
            council__recorder_diag(diag, s->path, 0, "out of memory");
            return rc;
        }
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
    row.reason = json_string_value(json_object_get(s->outcome, "reason"));
    row.events_emitted = s->has_emitted ? s->emitted : 0;
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
    r.has_emitted = s->has_emitted;
    r.emitted = s->emitted;
    r.owner = s->has_owner ? &s->owner : NULL;
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

/* The outcome line for the file: the record's outcome (made by
 * close_record) as council_outcome_json renders it, and a newline. */
static char *
outcome_line(council_store *s, size_t *len)
{
    size_t n = strlen(s->outcome_text);
    char *line = council__malloc(n + 2);

    if (line == NULL)
        return NULL;
    memcpy(line, s->outcome_text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    *len = n + 1;
    return line;
}

/*
 * Method (closing a jsonl record).  The file is the dead recorder's; what
 * it would have done at finalize, the reader does: cut a torn last line,
 * append the outcome line, fsync.  Under an exclusive flock, and only if
 * the file still has the size it had when read (another reader may have
 * closed it meanwhile: then it has its outcome line).  A file this process
 * cannot write is left as it is (it still reads as ended).  A damaged file
 * is never written.
 */
void
council__store_jsonl_close(council_store *s)
{
    struct stat sb;
    size_t len = 0, off = 0;
    char *line = NULL;
    int fd;

    if (!s->closed_here || s->damaged || s->outcome_text == NULL)
        return;
    do {
        fd = council__os.open(s->path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return;
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    if (council__os.stat(s->path, &sb) != 0 || (int64_t)sb.st_size != s->size)
        goto out;
    line = outcome_line(s, &len);
    if (line == NULL)
        goto out;
    if (s->line_end != s->size &&
        council__os.ftruncate(fd, (off_t)s->line_end) != 0)
        goto out;
    while (off < len) {
        ssize_t n = council__os.write(fd, line + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (off < len) {
        /* Leave no torn outcome line: the file as it was (whole lines). */
        (void)council__os.ftruncate(fd, (off_t)s->line_end);
        goto out;
    }
    while (council__os.fsync(fd) != 0 && errno == EINTR)
        ;
    s->closed_here = 0;
out:
    council__free(line);
    council__os.close(fd); /* releases the lock */
}
