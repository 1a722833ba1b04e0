/* SPDX-License-Identifier: MIT */
/*
 * The incremental Server-Sent Events parser (WHATWG HTML, "interpreting an
 * event stream").  Bytes go in as chunks of any size; complete events come
 * out through the callback.  All state that spans a chunk boundary (a
 * partial BOM, a partial line, a CR that may be the first half of CRLF, the
 * data and event-name buffers) lives in the parser, so where the stream is
 * cut never changes the events produced.  A line, and an event's data,
 * longer than max_line is an error; nothing grows without bound.
 */
#include <string.h>

#include "core/alloc.h"
#include "provider/sse.h"

/* A growable byte buffer, always NUL-terminated when len > 0. */
typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf;

struct council__sse {
    size_t max_line;
    council__sse_cb cb;
    void *ud;
    buf line;           /* the current, unterminated line */
    buf data;           /* data lines, each followed by '\n' */
    buf event;          /* the "event:" name */
    unsigned bom_pos;   /* BOM bytes matched so far at the stream start */
    int bom_done;       /* the start of the stream has been decided */
    int after_cr;       /* the last byte seen was a CR ending a line */
    council_err failed; /* sticky error: once failed, always failed */
};

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

static council_err
buf_append(buf *b, const char *s, size_t n, size_t max)
{
    size_t need;
    char *p;

    if (n > max || b->len > max - n)
        return COUNCIL_EPARSE;
    need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap == 0 ? 128 : b->cap;
        while (cap < need)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        p = council__realloc(b->p, cap);
        if (p == NULL)
            return COUNCIL_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return COUNCIL_OK;
}

static void
buf_release(buf *b)
{
    council__free(b->p);
    b->p = NULL;
    b->cap = 0;
}

council_err
council__sse_new(size_t max_line, council__sse_cb cb, void *ud,
                 council__sse **out)
{
    council__sse *p;

    *out = NULL;
    if (cb == NULL || max_line == 0)
        return COUNCIL_EINVAL;
    p = council__calloc(1, sizeof(*p));
    if (p == NULL)
        return COUNCIL_ENOMEM;
    p->max_line = max_line;
    p->cb = cb;
    p->ud = ud;
    *out = p;
    return COUNCIL_OK;
}

void
council__sse_free(council__sse *p)
{
    if (p == NULL)
        return;
    council__free(p->line.p);
    council__free(p->data.p);
    council__free(p->event.p);
    council__free(p);
}

/* A blank line: dispatch the event if a data line was seen, then reset. */
static council_err
dispatch(council__sse *p)
{
    int stop = 0;

    if (p->data.len > 0) {
        /* The spec appends '\n' after every data line and removes the
         * last one here. */
        p->data.len--;
        p->data.p[p->data.len] = '\0';
        stop = p->cb(p->event.len > 0 ? p->event.p : "", p->data.p, p->data.len,
                     p->ud);
    }
    p->data.len = 0;
    p->event.len = 0;
    if (p->event.p != NULL)
        p->event.p[0] = '\0';
    return stop ? COUNCIL_ECANCELED : COUNCIL_OK;
}

/* One complete line, without its terminator. */
static council_err
process_line(council__sse *p, const char *s, size_t n)
{
    const char *colon, *value;
    size_t flen, vlen;

    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return COUNCIL_OK; /* a comment, e.g. ": keep-alive" */
    colon = memchr(s, ':', n);
    if (colon == NULL) {
        flen = n;
        value = s + n;
        vlen = 0;
    } else {
        flen = (size_t)(colon - s);
        value = colon + 1;
        vlen = n - flen - 1;
        if (vlen > 0 && value[0] == ' ') {
            value++;
            vlen--;
        }
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        council_err rc = buf_append(&p->data, value, vlen, p->max_line);
        if (rc == COUNCIL_OK)
            rc = buf_append(&p->data, "\n", 1, p->max_line);
        return rc;
    }
    if (flen == 5 && memcmp(s, "event", 5) == 0) {
        p->event.len = 0;
        return buf_append(&p->event, value, vlen, p->max_line);
    }
    /* "id", "retry" and unknown fields are accepted and ignored. */
    return COUNCIL_OK;
}

/* Bytes of the stream after the BOM check. */
static council_err
feed_body(council__sse *p, const char *s, size_t n)
{
    council_err rc;

    while (n > 0) {
        size_t i = 0;

        if (p->after_cr) {
            p->after_cr = 0;
            if (s[0] == '\n') { /* the LF of a CRLF split anywhere */
                s++;
                n--;
                continue;
            }
        }
        while (i < n && s[i] != '\n' && s[i] != '\r')
            i++;
        if (i == n) {
            /* No terminator in this chunk: keep the partial line. */
            return buf_append(&p->line, s, n, p->max_line);
        }
        if (p->line.len == 0) {
            if (i > p->max_line)
                return COUNCIL_EPARSE;
            rc = process_line(p, s, i); /* the common case: no copy */
        } else {
            rc = buf_append(&p->line, s, i, p->max_line);
            if (rc == COUNCIL_OK)
                rc = process_line(p, p->line.p, p->line.len);
            p->line.len = 0;
        }
        if (rc != COUNCIL_OK)
            return rc;
        p->after_cr = s[i] == '\r';
        s += i + 1;
        n -= i + 1;
    }
    return COUNCIL_OK;
}

council_err
council__sse_feed(council__sse *p, const char *buf_in, size_t len)
{
    const char *s = buf_in;
    council_err rc;

    if (p->failed != COUNCIL_OK)
        return p->failed;
    /* The BOM may itself be split; bytes matched so far are held back
     * until the match is decided. */
    while (!p->bom_done && len > 0) {
        if ((unsigned char)s[0] == bom[p->bom_pos]) {
            p->bom_pos++;
            s++;
            len--;
            if (p->bom_pos == sizeof(bom))
                p->bom_done = 1;
            continue;
        }
        p->bom_done = 1;
        if (p->bom_pos > 0) {
            rc = feed_body(p, (const char *)bom, p->bom_pos);
            if (rc != COUNCIL_OK) {
                p->failed = rc;
                return rc;
            }
        }
    }
    rc = feed_body(p, s, len);
    if (rc != COUNCIL_OK) {
        p->failed = rc;
        return rc;
    }
    /* Between two events nothing is pending: the buffers go back, so a
     * stream waiting for its next chunk (a slow model's) holds none. */
    if (p->line.len == 0 && p->data.len == 0 && p->event.len == 0) {
        buf_release(&p->line);
        buf_release(&p->data);
        buf_release(&p->event);
    }
    return rc;
}

int
council__sse_finish(council__sse *p)
{
    int pending = p->failed != COUNCIL_OK || p->line.len > 0 ||
                  p->data.len > 0 || p->event.len > 0 ||
                  (!p->bom_done && p->bom_pos > 0);

    p->line.len = 0;
    p->data.len = 0;
    p->event.len = 0;
    return pending;
}
