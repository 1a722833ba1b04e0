/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the openai wire format's body handlers (council__openai_ops in
 * src/provider/openai.c) without a network: a call object is built by hand,
 * as http.c would, and fed a body.  Byte 0 picks what the body is: an event
 * stream ending cleanly or broken off, a whole JSON response, or the body of
 * a non-2xx answer.  Checks: every body gets a verdict (the call no longer
 * runs); success means [DONE], a finish reason or a choice was seen; the
 * answer text is exactly the deltas handed to on_delta; usage, when known,
 * has no negative or huge token count nor negative cost, and partial
 * implies known; every message and error type is one printable line of
 * valid UTF-8 (it ends up in JSON events and logs), and a failure says
 * why.
 */
#include <math.h>

#include "chat_body.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode;
    council__chat *c = fuzz_chat_body(&council__openai_ops, data, size, &mode);

    if (c == NULL)
        return 0;
    /* Success means [DONE], a finish reason or (whole JSON) a choice. */
    if (c->res.err == COUNCIL_OK)
        FUZZ_CHECK(mode == 2 || c->done_seen || c->finish_reason != NULL);
    if (c->usage.known) {
        FUZZ_CHECK(c->usage.prompt_tokens >= 0 &&
                   c->usage.prompt_tokens <= COUNCIL__TOKENS_MAX);
        FUZZ_CHECK(c->usage.completion_tokens >= 0 &&
                   c->usage.completion_tokens <= COUNCIL__TOKENS_MAX);
    }
    if (c->usage.cost_known) {
        FUZZ_CHECK(c->usage.known);
        FUZZ_CHECK(isfinite(c->usage.cost) && c->usage.cost >= 0);
    }
    fuzz_chat_body_end(c);
    return 0;
}
