/* SPDX-License-Identifier: MIT */
/*
 * The body of POST /v1/chat/completions (the OpenAI Chat Completions
 * request) read into what a run needs: the council named by "model"
 * ("council/<name>"), whether to stream (and the usage chunk), and the
 * messages.  A pure function of the bytes (jansson and util.c's buffers
 * only, no server state), so fuzz/fuzz_openai_compat_body.c drives
 * exactly what chat.c runs; chat.c then looks the council up.
 */
#ifndef COUNCIL_SERVER_CHAT_REQ_H
#define COUNCIL_SERVER_CHAT_REQ_H

#include <jansson.h>
#include <stddef.h>

#include "council.h"

typedef struct sbuf sbuf;

typedef struct chat_req {
    json_t *root;          /* the parsed body (owned) */
    const char *council;   /* the name after "council/" (in root) */
    const char *model;     /* "model" as sent (in root) */
    int streamed;          /* "stream": true */
    int include_usage;     /* streamed, with stream_options.include_usage */
    council_message *msgs; /* n_msgs of them (owned array) */
    size_t n_msgs;
    sbuf *parts; /* one per message: the joined text of content parts */
} chat_req;

/*
 * Parse body[0..len) into *r.  0 on success (release with
 * chat_req_free); else the HTTP status (400 malformed or invalid, 404 a
 * model that is not "council/<name>", 503 out of memory) with the error
 * type in *type and a message in msg[0..msgsz), and *r holds nothing.
 * Every message's role is system, user or assistant ("developer" is
 * system), the last is user, and every content is text without NUL.
 */
unsigned chat_req_parse(const char *body, size_t len, chat_req *r,
                        const char **type, char *msg, size_t msgsz);
void chat_req_free(chat_req *r);

#endif
