/* SPDX-License-Identifier: MIT */
/*
 * The jsonl recorder: one file per run, DIR/<run_id>.jsonl: a first line
 * naming its owner ({"owner":{host, pid, start, boot}}: this process, so a
 * reader can tell a run whose process died), one event per line in seq
 * order, then exactly one line holding the outcome.  Lines are gathered in
 * memory and written in large appends (the owner line at init; then at
 * ~64 KiB, on flush and at finalize); the file is fsynced once, at
 * finalize.  Whatever goes wrong, the file stays a valid prefix of the
 * run, which council__jsonl_read can tell apart from a complete record.
 *
 * Method (write failures).  The buffer holds whole lines not yet written.
 * A write that fails (disk full, I/O error) keeps the unwritten bytes, so
 * the line cut short in the file is completed by a later successful write:
 * the recorder retries on every later event and flush, and reports each
 * event as failed (non-zero) while the file lags behind.  If the backlog
 * passes 8 MiB, or an event cannot be rendered or buffered (out of memory),
 * the recorder stops appending for good: a later line would leave a gap.
 * The terminal event's line waits for finalize, which writes it with the
 * outcome line in one append.  At finalize it tries the backlog once more
 * and adds the outcome line if everything before it is in the file; if
 * not, it drops the backlog, cuts a torn line back to the last whole one,
 * and tries the outcome line alone, with "events_emitted" (the run's
 * event count): the file then says how the run ended and that it lacks
 * events.  If even that cannot be written the file has no outcome line
 * (should the truncation fail too, the reader reports the torn line).
 * Finalize always fsyncs, closes the file and frees everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/event.h"
#include "os/os.h"
#include "os/owner.h"
#include "recorder/recorder.h"

#define WRITE_AT (64 * 1024)
#define GIVE_UP_AT (8 * 1024 * 1024)

struct jsonl {
    int fd;
    char *dir;
    char *path;
    char *buf; /* whole lines not yet written */
    size_t len;
    size_t cap;
    off_t size;        /* bytes in the file (it was created empty) */
    off_t line_end;    /* the file's size at the end of its last whole line */
    int failing;       /* the last write attempt failed */
    int broken;        /* nothing more is appended: a gap would follow */
    uint64_t last_seq; /* the last event's seq: how many the run emitted */
    int terminal;      /* the terminal event's line is buffered */
};

static int
bad_run_id(const char *id)
{
    return id == NULL || id[0] == '\0' || strchr(id, '/') != NULL ||
           strcmp(id, ".") == 0 || strcmp(id, "..") == 0;
}

/* memrchr, which not every C library has. */
static const char *
last_newline(const char *p, size_t n)
{
    while (n > 0)
        if (p[--n] == '\n')
            return p + n;
    return NULL;
}

/*
 * Write out the buffer, handling short writes and EINTR.  Returns 0 when
 * the buffer is empty, -1 (errno kept in the state's failing flag) when a
 * write failed; the unwritten tail stays at the front of the buffer.
 */
static int
drain(struct jsonl *st)
{
    size_t off = 0;
    int rc = 0;

    while (off < st->len) {
        ssize_t n = council__os.write(st->fd, st->buf + off, st->len - off);
        const char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = -1;
            break;
        }
        nl = last_newline(st->buf + off, (size_t)n);
        if (nl != NULL)
            st->line_end = st->size + (nl - (st->buf + off)) + 1;
        st->size += n;
        off += (size_t)n;
    }
    memmove(st->buf, st->buf + off, st->len - off);
    st->len -= off;
    st->failing = rc != 0;
    return rc;
}

/* Append text and a newline to the buffer; -1 when memory ran out. */
static int
append_line(struct jsonl *st, const char *text)
{
    size_t n = strlen(text);

    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap != 0 ? st->cap : 4096;
        char *nb;

        while (cap < st->len + n + 1)
            cap *= 2;
        nb = council__realloc(st->buf, cap);
        if (nb == NULL)
            return -1;
        st->buf = nb;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, text, n);
    st->buf[st->len + n] = '\n';
    st->len += n + 1;
    return 0;
}

/* Buffer the owner line: {"owner":{"host":...,"pid":...,"start":...,
 * "boot":...}}, unknown fields null.  -1 when memory ran out. */
static int
owner_line(struct jsonl *st)
{
    council__owner me;
    json_t *o;
    char *text;
    int rc;

    council__owner_self(&me);
    o = json_pack("{s:{s:s?,s:I,s:o,s:s?}}", "owner", "host",
                  me.host[0] != '\0' ? me.host : NULL, "pid",
                  (json_int_t)me.pid, "start",
                  me.start >= 0 ? json_integer(me.start) : json_null(), "boot",
                  me.boot[0] != '\0' ? me.boot : NULL);
    text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
        return -1;
    rc = append_line(st, text);
    council__free(text);
    return rc;
}

static void
state_free(struct jsonl *st)
{
    if (st == NULL)
        return;
    council__free(st->buf);
    council__free(st->path);
    council__free(st->dir);
    council__free(st);
}

static int
jsonl_init(const char *run_id, void *args, void **state, char *why,
           size_t why_size)
{
    const char *dir = args;
    struct jsonl *st = NULL;
    char eb[128];
    size_t dl, il;
    int rc = -1;
    int fd;

    if (dir == NULL || dir[0] == '\0') {
        snprintf(why, why_size, "jsonl: no directory given");
        goto out;
    }
    if (bad_run_id(run_id)) {
        snprintf(why, why_size, "jsonl: run id \"%s\" cannot name a file",
                 run_id != NULL ? run_id : "(null)");
        goto out;
    }
    st = council__calloc(1, sizeof(*st));
    if (st == NULL)
        goto nomem;
    st->fd = -1;
    dl = strlen(dir);
    il = strlen(run_id);
    st->dir = council__strdup(dir);
    st->path = council__malloc(dl + il + sizeof("/.jsonl"));
    if (st->dir == NULL || st->path == NULL)
        goto nomem;
    snprintf(st->path, dl + il + sizeof("/.jsonl"), "%s/%s.jsonl", dir, run_id);
    do {
        fd = council__os.open(
            st->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;

        if (e == EEXIST)
            snprintf(why, why_size, "jsonl: %s already exists", st->path);
        else
            snprintf(why, why_size, "jsonl: cannot write to %s: %s", dir,
                     council__os_strerror(e, eb, sizeof(eb)));
        goto out;
    }
    st->fd = fd;
    /* The owner line, written now: from here on a reader can tell
     * whether the process writing the file still lives.  A failed write
     * stays buffered and is retried as any line. */
    if (owner_line(st) != 0)
        goto nomem;
    (void)drain(st);
    *state = st;
    st = NULL;
    rc = 0;
    goto out;
nomem:
    snprintf(why, why_size, "jsonl: out of memory");
out:
    if (st != NULL && st->fd >= 0) {
        /* Refused after the file was made: take it back, or the run id
         * would look taken to the next run and to replay. */
        council__os.close(st->fd);
        council__os.unlink(st->path);
    }
    state_free(st);
    return rc;
}

static int
jsonl_event(void *state, council_event *ev)
{
    struct jsonl *st = state;
    const char *line;

    if (council_event_seq(ev) > st->last_seq)
        st->last_seq = council_event_seq(ev);
    if (st->broken)
        return -1;
    line = council_event_json(ev);
    if (line == NULL || append_line(st, line) != 0) {
        /* This event cannot be recorded; any later one would follow a
         * gap.  The lines before it are still written at finalize. */
        st->broken = 1;
        return -1;
    }
    /* The terminal line goes out with the outcome line, at finalize. */
    if (council__event_is_terminal(council_event_type_of(ev)))
        st->terminal = 1;
    if (st->terminal || (!st->failing && st->len < WRITE_AT))
        return st->failing ? -1 : 0;
    if (drain(st) == 0)
        return 0;
    if (st->len > GIVE_UP_AT) {
        /* The disk has stayed full for megabytes of events: stop holding
         * them.  The file keeps its (possibly torn) prefix. */
        st->broken = 1;
        st->len = 0;
    }
    return -1;
}

static void
jsonl_flush(void *state)
{
    struct jsonl *st = state;

    if (st->len > 0 && !st->terminal)
        (void)drain(st);
}

/* Make the directory entry of the new file durable. */
static void
sync_dir(const char *dir)
{
    int fd = council__os.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

    if (fd < 0)
        return;
    while (council__os.fsync(fd) != 0 && errno == EINTR)
        ;
    council__os.close(fd);
}

/* oj with "events_emitted": n before its closing brace, as a new string
 * (council__free), or NULL when memory ran out. */
static char *
with_emitted(const char *oj, uint64_t n)
{
    size_t len = strlen(oj), size = len + 48;
    char *line = council__malloc(size);

    if (line == NULL || len < 2 || oj[len - 1] != '}') {
        council__free(line);
        return NULL;
    }
    memcpy(line, oj, len - 1);
    snprintf(line + len - 1, size - (len - 1), ",\"events_emitted\":%llu}",
             (unsigned long long)n);
    return line;
}

/* Cut the file back to its last whole line. */
static void
cut_torn(struct jsonl *st)
{
    if (st->size != st->line_end &&
        council__os.ftruncate(st->fd, st->line_end) == 0)
        st->size = st->line_end;
}

static void
jsonl_finalize(void *state, const council_outcome *outcome)
{
    struct jsonl *st = state;
    const char *oj = outcome != NULL ? council_outcome_json(outcome) : NULL;
    int whole = !st->broken;

    if (st->len > 0 && drain(st) != 0)
        whole = 0;
    if (whole && oj != NULL && append_line(st, oj) == 0 && drain(st) != 0)
        whole = 0;
    if (!whole && oj != NULL) {
        /* Events are missing: drop what could not be written, and say
         * so in the outcome line (the prefix of whole lines stays). */
        char *line = with_emitted(oj, st->last_seq);

        st->len = 0;
        cut_torn(st);
        if (line != NULL && st->size == st->line_end &&
            append_line(st, line) == 0)
            (void)drain(st);
        council__free(line);
    }
    cut_torn(st);
    while (council__os.fsync(st->fd) != 0 && errno == EINTR)
        ;
    /* No retry on EINTR: on Linux the descriptor is gone either way. */
    council__os.close(st->fd);
    sync_dir(st->dir);
    state_free(st);
}

static const council_recorder_ops jsonl_ops = {
    .version = COUNCIL_RECORDER_OPS_VERSION,
    .init = jsonl_init,
    .handle_event = jsonl_event,
    .handle_finalize = jsonl_finalize,
    .handle_flush = jsonl_flush,
};

const council_recorder_ops *
council_recorder_jsonl(void)
{
    return &jsonl_ops;
}
