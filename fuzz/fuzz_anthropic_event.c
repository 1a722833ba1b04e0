/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the anthropic wire format's body handlers (council__anthropic_ops
 * in src/provider/anthropic.c) without a network: a call object is built by
 * hand, as http.c would, and fed a body.  Byte 0 picks what the body is: an
 * event stream (`event:` / `data:` lines) ending cleanly or broken off, a
 * whole JSON Message, or the body of a non-2xx answer.  Checks: every body
 * gets a verdict (the call no longer runs); a streamed success means
 * message_stop was seen (a stop_reason alone is not enough); the answer
 * text is exactly the text deltas handed to on_delta (thinking never is);
 * usage, when known, has no negative or huge count, partial implies known,
 * and there is no cost (the Messages API reports none); every message and
 * error type is one printable line of valid UTF-8, and a failure says why.
 */
#include <string.h>

#include "core/alloc.h"
#include "provider/anthropic.h"
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static int loop_ready;
    council__chat *c;
    probe p = {0};
    const char *body;
    size_t len;
    int mode;

    if (size < 1)
        return 0;
    if (!loop_ready) {
        FUZZ_CHECK(uv_loop_init(&loop) == 0);
        loop_ready = 1;
    }
    mode = data[0] % 4;
    body = (const char *)data + 1;
    len = size - 1;

    c = council__calloc(1, sizeof(*c));
    FUZZ_CHECK(c != NULL);
    p.c = c;
    c->ops = &council__anthropic_ops;
    c->cbs.on_delta = on_delta;
    c->ud = &p;
    c->state = COUNCIL__CHAT_RUNNING;
    FUZZ_CHECK(uv_timer_init(&loop, &c->timer) == 0);
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
        }
        council__chat_fail(c, COUNCIL__CALL_HTTP, "HTTP 500");
    }

    /* A verdict, and a consistent one. */
    FUZZ_CHECK(!council__chat_running(c));
    FUZZ_CHECK(c->state == COUNCIL__CHAT_FINISHING);
    check_line(c->res.message, sizeof(c->res.message));
    check_line(c->res.error_type, sizeof(c->res.error_type));
    if (c->res.err == COUNCIL_OK) {
        FUZZ_CHECK(c->res.kind == COUNCIL__CALL_OK);
        /* Only message_stop ends a stream well. */
        FUZZ_CHECK(mode == 2 || c->done_seen);
    } else {
        FUZZ_CHECK(c->res.kind != COUNCIL__CALL_OK);
        FUZZ_CHECK(c->res.message[0] != '\0');
    }
    FUZZ_CHECK(c->text.len == p.delta_bytes);
    FUZZ_CHECK(c->text.len <= COUNCIL__TEXT_MAX);
    if (c->usage.known) {
        /* The input with its two cached parts, each a count. */
        FUZZ_CHECK(c->usage.prompt_tokens >= 0 &&
                   c->usage.prompt_tokens <= 3 * COUNCIL__TOKENS_MAX);
        FUZZ_CHECK(c->usage.completion_tokens >= 0 &&
                   c->usage.completion_tokens <= COUNCIL__TOKENS_MAX);
    }
    FUZZ_CHECK(!c->usage.partial || c->usage.known);
    FUZZ_CHECK(!c->usage.cost_known);

    /* The timer was started by the verdict; closing it stops it without
     * running http.c's on_call_timer (this call has no council__http). */
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    council__chat_discard(c);
    return 0;
}
