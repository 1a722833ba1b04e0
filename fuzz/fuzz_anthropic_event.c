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
#include "provider/anthropic.h"
#include "chat_body.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode;
    council__chat *c =
        fuzz_chat_body(&council__anthropic_ops, data, size, &mode);

    if (c == NULL)
        return 0;
    /* Only message_stop ends a stream well. */
    if (c->res.err == COUNCIL_OK)
        FUZZ_CHECK(mode == 2 || c->done_seen);
    if (c->usage.known) {
        /* The input with its two cached parts, each a count. */
        FUZZ_CHECK(c->usage.prompt_tokens >= 0 &&
                   c->usage.prompt_tokens <= 3 * COUNCIL__TOKENS_MAX);
        FUZZ_CHECK(c->usage.completion_tokens >= 0 &&
                   c->usage.completion_tokens <= COUNCIL__TOKENS_MAX);
    }
    FUZZ_CHECK(!c->usage.cost_known); /* the Messages API reports none */
    fuzz_chat_body_end(c);
    return 0;
}
