/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the jsonl run-file checker (council__jsonl_read) on any file
 * contents.  Byte 0 chooses the line at which on_line asks to stop (0 =
 * never); the rest is written to an in-memory file (memfd) read through
 * its /proc/self/fd path.  Checks: the answer is OK, EPARSE or ECANCELED,
 * never a crash; the report describes a valid prefix (the lines handed to
 * on_line are objects; event lines carry one run_id and seq 1..n, and n is
 * rep->events); OK means a complete record (no torn line, the outcome line
 * last, a newline at the end); EPARSE comes with a message; a damaged line
 * (rep.bad_line) is the diag's line and not a torn end.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "recorder/recorder.h"
#include "fuzz.h"

typedef struct seen {
    int stop_at;
    int calls;
    int last_line;
    uint64_t events;
    int outcome_lines;
    char run_id[72];
} seen;

static int
on_line(json_t *obj, int line, void *ud)
{
    seen *s = ud;
    json_t *seq;
    const char *id;

    FUZZ_CHECK(json_is_object(obj));
    FUZZ_CHECK(line > s->last_line);
    s->last_line = line;
    s->calls++;
    if (json_object_get(obj, "outcome") != NULL) {
        FUZZ_CHECK(json_is_string(json_object_get(obj, "outcome")));
        s->outcome_lines++;
    } else {
        FUZZ_CHECK(s->outcome_lines == 0);
        seq = json_object_get(obj, "seq");
        id = json_string_value(json_object_get(obj, "run_id"));
        FUZZ_CHECK(json_is_integer(seq));
        FUZZ_CHECK((uint64_t)json_integer_value(seq) == s->events + 1);
        FUZZ_CHECK(id != NULL);
        if (s->events == 0)
            snprintf(s->run_id, sizeof(s->run_id), "%s", id);
        else
            FUZZ_CHECK(strncmp(s->run_id, id, sizeof(s->run_id) - 1) == 0);
        s->events++;
    }
    return s->stop_at != 0 && s->calls == s->stop_at;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    council__jsonl_report rep;
    council_diag diag;
    council_err rc;
    seen s;
    char path[64];
    size_t len;
    const char *text;

    if (size < 1)
        return 0;
    if (fd < 0) {
        fd = memfd_create("fuzz_jsonl", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
    }
    text = (const char *)data + 1;
    len = size - 1;
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, text, len, 0) == (ssize_t)len);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    memset(&s, 0, sizeof(s));
    s.stop_at = data[0] % 16;
    memset(&rep, 0x5a, sizeof(rep));
    memset(&diag, 0x5a, sizeof(diag));
    rc = council__jsonl_read(path, &rep, on_line, &s, &diag);

    FUZZ_CHECK(rc == COUNCIL_OK || rc == COUNCIL_EPARSE ||
               rc == COUNCIL_ECANCELED);
    FUZZ_CHECK(memchr(rep.outcome, '\0', sizeof(rep.outcome)) != NULL);
    FUZZ_CHECK(memchr(rep.run_id, '\0', sizeof(rep.run_id)) != NULL);
    FUZZ_CHECK(memchr(diag.msg, '\0', sizeof(diag.msg)) != NULL);
    FUZZ_CHECK(rep.events == s.events);
    FUZZ_CHECK(strcmp(rep.run_id, s.events > 0 ? s.run_id : "") == 0);
    if (rc == COUNCIL_ECANCELED)
        FUZZ_CHECK(s.stop_at != 0 && s.calls == s.stop_at);
    else if (s.stop_at != 0)
        FUZZ_CHECK(s.calls < s.stop_at);
    if (rep.torn)
        FUZZ_CHECK(rc == COUNCIL_EPARSE && len > 0 && text[len - 1] != '\n');
    if (rep.has_outcome)
        FUZZ_CHECK(rc == COUNCIL_OK || rc == COUNCIL_ECANCELED);
    /* A damaged line is named, and is neither a torn end nor a missing
     * outcome. */
    if (rep.bad_line != 0)
        FUZZ_CHECK(rc == COUNCIL_EPARSE && !rep.torn &&
                   diag.line == rep.bad_line);
    if (rc == COUNCIL_OK) {
        size_t lines = 0, i;

        FUZZ_CHECK(rep.has_outcome && !rep.torn);
        FUZZ_CHECK(s.outcome_lines == 1);
        FUZZ_CHECK(len > 0 && text[len - 1] == '\n');
        for (i = 0; i < len; i++)
            lines += text[i] == '\n';
        FUZZ_CHECK(lines == rep.events + 1);
        FUZZ_CHECK((size_t)s.calls == lines);
    }
    if (rc == COUNCIL_EPARSE) {
        FUZZ_CHECK(diag.msg[0] != '\0');
        FUZZ_CHECK(diag.line >= 0);
        FUZZ_CHECK(!rep.has_outcome);
    }
    return 0;
}
