/* SPDX-License-Identifier: MIT */
/*
 * Shared by the wire-format fuzz targets (fuzz_openai_chunk,
 * fuzz_anthropic_event): a call object built by hand, as http.c would,
 * without a network, fed a body by byte 0 of the input: an event stream
 * ending cleanly (0) or broken off (1), a whole JSON response (2), or the
 * body of a non-2xx answer (3).  fuzz_chat_body runs it and checks what
 * holds for every format: a verdict (the call no longer runs), a failure
 * that says why, messages and error types that are printable UTF-8 lines,
 * the answer exactly the deltas handed to on_delta, partial usage only when
 * known.  The target then checks its format's own rules on the call and
 * calls fuzz_chat_body_end.
 */
#ifndef COUNCIL_FUZZ_CHAT_BODY_H
#define COUNCIL_FUZZ_CHAT_BODY_H

#include <string.h>

#include "core/alloc.h"
#include "provider/call.h"
#include "fuzz.h"

typedef struct probe {
    council__chat *c;
    size_t delta_bytes;
} probe;

static void
on_delta(const char *text, size_t len, void *ud)
{
    probe *p = ud;

    FUZZ_CHECK(council__chat_running(p->c));
    FUZZ_CHECK(text != NULL && len > 0);
    p->delta_bytes += len;
}

/* As http.c's sse_event: each event to the format; stop once decided. */
static int
sse_event(const char *event, const char *data, size_t len, void *ud)
{
    council__chat *c = ud;

    c->ops->on_event(c, event, data, len);
    return !council__chat_running(c);
}

/* A NUL-terminated, printable, UTF-8 line within size bytes. */
static void
check_line(const char *s, size_t size)
{
    const char *end = memchr(s, '\0', size);
    const char *q;

    FUZZ_CHECK(end != NULL);
    for (q = s; q < end; q++)
        FUZZ_CHECK((unsigned char)*q >= 0x20 && *q != 0x7f);
    FUZZ_CHECK(fuzz_utf8_valid(s, (size_t)(end - s)));
}

static uv_loop_t fuzz_loop;
static probe fuzz_probe;

/* The call after its body (NULL for an empty input); *mode is byte 0 % 4. */
static council__chat *
fuzz_chat_body(const council__chat_ops *ops, const uint8_t *data, size_t size,
               int *mode_out)
{
    static int loop_ready;
    council__chat *c;
    probe *pp = &fuzz_probe;
    const char *body;
    size_t len;
    int mode;

    if (size < 1)
        return NULL;
    if (!loop_ready) {
        FUZZ_CHECK(uv_loop_init(&fuzz_loop) == 0);
        loop_ready = 1;
    }
    mode = data[0] % 4;
    body = (const char *)data + 1;
    len = size - 1;

    c = council__calloc(1, sizeof(*c));
    FUZZ_CHECK(c != NULL);
    memset(pp, 0, sizeof(*pp));
    pp->c = c;
    c->ops = ops;
    c->cbs.on_delta = on_delta;
    c->ud = pp;
    c->state = COUNCIL__CHAT_RUNNING;
    c->res.message = ""; /* as council__chat_new */
    c->res.error_type = "";
    FUZZ_CHECK(uv_timer_init(&fuzz_loop, &c->timer) == 0);
    c->timer.data = c;
    FUZZ_CHECK(council__sse_new(COUNCIL__SSE_MAX_LINE, sse_event, c, &c->sse) ==
               COUNCIL_OK);

    if (mode == 0 || mode == 1) {
        /* 2xx text/event-stream: as write_cb, then transfer_done. */
        council_err rc;

        c->mode = COUNCIL__BODY_SSE;
        rc = council__sse_feed(c->sse, body, len);
        if (rc == COUNCIL_EPARSE || rc == COUNCIL_ENOMEM)
            council__chat_fail(c, COUNCIL__CALL_STREAM, "sse: %d", rc);
        if (council__chat_running(c))
            c->ops->on_eof(c, mode == 0);
    } else if (mode == 2) {
        /* 2xx application/json. */
        c->mode = COUNCIL__BODY_JSON;
        c->ops->on_json(c, body, len);
    } else {
        /* A non-2xx body, as http_error hands it over. */
        char msg[400] = "", type[64] = "";

        c->mode = COUNCIL__BODY_ERROR;
        if (len > 0) {
            c->ops->on_error_body(c, body, len, msg, sizeof(msg), type,
                                  sizeof(type));
            check_line(msg, sizeof(msg));
            check_line(type, sizeof(type));
            /* msg may be empty (a body of one cut UTF-8 sequence):
             * http_error then reports the status line alone. */
        }
        council__chat_fail(c, COUNCIL__CALL_HTTP, "HTTP 500");
    }

    /* A verdict, and a consistent one. */
    FUZZ_CHECK(!council__chat_running(c));
    FUZZ_CHECK(c->state == COUNCIL__CHAT_FINISHING);
    check_line(c->res.message, COUNCIL__CHAT_MSG_SIZE);
    check_line(c->res.error_type, COUNCIL__CHAT_TYPE_SIZE);
    if (c->res.err == COUNCIL_OK) {
        FUZZ_CHECK(c->res.kind == COUNCIL__CALL_OK);
    } else {
        FUZZ_CHECK(c->res.kind != COUNCIL__CALL_OK);
        FUZZ_CHECK(c->res.message[0] != '\0');
    }
    FUZZ_CHECK(c->text.len == pp->delta_bytes);
    FUZZ_CHECK(c->text.len <= COUNCIL__TEXT_MAX);
    FUZZ_CHECK(!c->usage.partial || c->usage.known);
    *mode_out = mode;
    return c;
}

/* Frees the call.  The timer was started by the verdict; closing it stops
 * it without running http.c's on_call_timer (this call has no
 * council__http). */
static void
fuzz_chat_body_end(council__chat *c)
{
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&fuzz_loop, UV_RUN_NOWAIT);
    council__chat_discard(c);
}

#endif
