/* SPDX-License-Identifier: MIT */
/*
 * The jsonl run-file checker: reads DIR/<run_id>.jsonl as the jsonl
 * recorder writes it (an owner line, the events, the outcome line) and says
 * whether it is a complete record, or how far it is a valid prefix and
 * what is wrong after that (a torn last line, bad JSON, a seq gap, a
 * missing outcome), with line numbers.  It reads through
 * the os seam and never trusts the file: any bytes give a report, never a
 * crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/json_scan.h"
#include "os/os.h"
#include "recorder/recorder.h"

void
council__recorder_diag(council_diag *diag, const char *file, int line,
                       const char *fmt, ...)
{
    va_list ap;

    if (diag == NULL)
        return;
    memset(diag, 0, sizeof(*diag));
    if (file != NULL)
        snprintf(diag->file, sizeof(diag->file), "%s", file);
    diag->line = line;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
}

/* Read the whole file into *out (NUL-terminated) through the os seam. */
static council_err
slurp(const char *path, char **out, size_t *out_len, council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char eb[128];
    int fd;

    do {
        fd = council__os.open(path, O_RDONLY | O_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;

        rc = e == ENOENT ? COUNCIL_ENOTFOUND : COUNCIL_EIO;
        council__recorder_diag(diag, path, 0, "cannot open: %s",
                               council__os_strerror(e, eb, sizeof(eb)));
        goto out;
    }
    for (;;) {
        ssize_t n;

        if (cap - len < 4096 + 1) {
            size_t ncap = cap != 0 ? cap * 2 : 65536;
            char *nb = council__realloc(buf, ncap);

            if (nb == NULL) {
                rc = COUNCIL_ENOMEM;
                council__recorder_diag(diag, path, 0, "out of memory");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        n = council__os.read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = COUNCIL_EIO;
            council__recorder_diag(diag, path, 0, "cannot read: %s",
                                   council__os_strerror(errno, eb, sizeof(eb)));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    if (fd >= 0)
        council__os.close(fd);
    council__free(buf);
    return rc;
}

/* Check one event line against the ones before it; NULL if fine, else
 * what is wrong (static text). */
static const char *
check_event(json_t *o, council__jsonl_report *rep, char *why, size_t size)
{
    json_t *seq = json_object_get(o, "seq");
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *id = json_string_value(json_object_get(o, "run_id"));

    if (type == NULL || council__event_type_from_name(type) == 0)
        return "not an event (no known \"type\")";
    if (id == NULL)
        return "event without a \"run_id\"";
    if (!json_is_integer(seq))
        return "event without an integer \"seq\"";
    if ((uint64_t)json_integer_value(seq) != rep->events + 1 ||
        json_integer_value(seq) < 1) {
        snprintf(why, size, "seq %lld where %llu was expected (a gap)",
                 (long long)json_integer_value(seq),
                 (unsigned long long)rep->events + 1);
        return why;
    }
    if (rep->events == 0)
        snprintf(rep->run_id, sizeof(rep->run_id), "%s", id);
    else if (strncmp(rep->run_id, id, sizeof(rep->run_id) - 1) != 0)
        return "event of another run";
    return NULL;
}

/* The owner line's fields into o (those missing or malformed stay
 * unknown: such an owner is never judged gone). */
static void
read_owner(json_t *v, council__owner *o)
{
    json_t *host = json_object_get(v, "host");
    json_t *pid = json_object_get(v, "pid");
    json_t *start = json_object_get(v, "start");
    json_t *boot = json_object_get(v, "boot");

    memset(o, 0, sizeof(*o));
    o->start = -1;
    if (json_is_string(host))
        snprintf(o->host, sizeof(o->host), "%s", json_string_value(host));
    if (json_is_integer(pid) && json_integer_value(pid) > 0)
        o->pid = (int64_t)json_integer_value(pid);
    if (json_is_integer(start) && json_integer_value(start) >= 0)
        o->start = (int64_t)json_integer_value(start);
    if (json_is_string(boot))
        snprintf(o->boot, sizeof(o->boot), "%s", json_string_value(boot));
}

council_err
council__jsonl_read(const char *path, council__jsonl_report *rep,
                    int (*on_line)(json_t *obj, int line, void *ud), void *ud,
                    council_diag *diag)
{
    council__jsonl_report local;
    council_err rc;
    char *text = NULL;
    size_t len = 0, pos = 0;
    char why[96];
    int line = 0;

    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof(*rep));
    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    rc = slurp(path, &text, &len, diag);
    if (rc != COUNCIL_OK)
        goto out;
    rep->size = len;
    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
        const char *bad = NULL;
        unsigned long failures;
        json_error_t jerr;
        json_t *o;

        line++;
        pos += n + 1;
        if (rep->has_outcome) {
            rep->has_outcome = 0;
            rep->outcome[0] = '\0';
            rc = COUNCIL_EPARSE;
            rep->bad_line = line;
            council__recorder_diag(diag, path, line,
                                   "a line follows the outcome line");
            goto out;
        }
        if (nl != NULL)
            rep->line_end = pos;
        if (nl == NULL) {
            rep->torn = 1;
            rc = COUNCIL_EPARSE;
            council__recorder_diag(diag, path, line,
                                   "torn last line (%zu bytes, no newline)", n);
            goto out;
        }
        /* Text may hold NUL bytes: events render them as \u0000. */
        failures = council__json_alloc_failures();
        o = json_loadb(start, n, JSON_ALLOW_NUL, &jerr);
        if (council__json_alloc_failures() != failures ||
            (o == NULL && council__json_oom(start, n, &jerr))) {
            json_decref(o);
            /* Not the file's fault: say so, not "bad JSON". */
            rc = COUNCIL_ENOMEM;
            council__recorder_diag(diag, path, line, "out of memory");
            goto out;
        }
        if (o == NULL || !json_is_object(o)) {
            json_decref(o);
            rc = COUNCIL_EPARSE;
            rep->bad_line = line;
            council__recorder_diag(diag, path, line, "not a JSON object: %s",
                                   o == NULL ? jerr.text : "other value");
            goto out;
        }
        if (line == 1 && json_is_object(json_object_get(o, "owner"))) {
            rep->has_owner = 1;
            read_owner(json_object_get(o, "owner"), &rep->owner);
            json_decref(o);
            continue;
        }
        if (json_object_get(o, "outcome") != NULL) {
            const char *k = json_string_value(json_object_get(o, "outcome"));
            json_t *em = json_object_get(o, "events_emitted");

            if (k == NULL)
                bad = "\"outcome\" is not a string";
            else {
                rep->has_outcome = 1;
                snprintf(rep->outcome, sizeof(rep->outcome), "%s", k);
                if (json_is_integer(em) && json_integer_value(em) > 0)
                    rep->emitted = (uint64_t)json_integer_value(em);
            }
        } else {
            bad = check_event(o, rep, why, sizeof(why));
            if (bad == NULL)
                rep->events++;
        }
        if (bad == NULL && on_line != NULL && on_line(o, line, ud) != 0) {
            json_decref(o);
            rc = COUNCIL_ECANCELED;
            goto out;
        }
        json_decref(o);
        if (bad != NULL) {
            rc = COUNCIL_EPARSE;
            rep->bad_line = line;
            council__recorder_diag(diag, path, line, "%s", bad);
            goto out;
        }
    }
    if (!rep->has_outcome) {
        rc = COUNCIL_EPARSE;
        council__recorder_diag(diag, path, line,
                               "no outcome line: the record is incomplete "
                               "(%llu events)",
                               (unsigned long long)rep->events);
    }
out:
    council__free(text);
    return rc;
}
