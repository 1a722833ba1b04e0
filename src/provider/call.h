/* SPDX-License-Identifier: MIT */
/*
 * Inside a provider call: the state that http.c (the libcurl-on-libuv glue
 * and the call lifecycle) shares with the wire formats (openai.c, later
 * anthropic.c).  http.c owns the lifecycle, the timeouts, the HTTP status
 * and content-type checks and the error body; a format only builds the
 * request and turns body events into text, usage and a verdict through the
 * council__chat_text/_succeed/_fail helpers below.  Loop thread only.
 */
#ifndef COUNCIL_PROVIDER_CALL_H
#define COUNCIL_PROVIDER_CALL_H

#include <curl/curl.h>
#include <jansson.h>

#include "provider/provider.h"
#include "provider/sse.h"

/* Bounds: an SSE line, a whole non-streamed JSON body, an error body, the
 * whole answer text. */
#define COUNCIL__SSE_MAX_LINE (4u << 20)
#define COUNCIL__JSON_MAX_BODY (16u << 20)
#define COUNCIL__ERR_MAX_BODY (64u << 10)
#define COUNCIL__TEXT_MAX (64u << 20)
/* The largest token count taken as one (2^40, a thousand times any real
 * context): a larger one is not usage.  So the sums of counts (a prompt
 * with its cached parts, a run's calls) can never overflow int64. */
#define COUNCIL__TOKENS_MAX ((int64_t)1 << 40)

typedef struct council__bytes {
    char *p;
    size_t len;
    size_t cap;
} council__bytes;

/* Appends, NUL-terminating; COUNCIL_EPARSE beyond max, ENOMEM. */
council_err council__bytes_add(council__bytes *b, const char *s, size_t n,
                               size_t max);

typedef struct council__chat_ops {
    /* An event of a 2xx text/event-stream body. */
    void (*on_event)(council__chat *c, const char *event, const char *data,
                     size_t len);
    /* A whole 2xx application/json body (a server that ignored stream). */
    void (*on_json)(council__chat *c, const char *body, size_t len);
    /* The event stream ended: clean = the transfer completed, else it
     * broke (c->errbuf says how).  Must succeed or fail the call. */
    void (*on_eof)(council__chat *c, int clean);
    /* The body of a non-2xx answer: fill msg with the provider's own
     * message (or a sanitized excerpt) and type with its error type. */
    void (*on_error_body)(council__chat *c, const char *body, size_t len,
                          char *msg, size_t msg_size, char *type,
                          size_t type_size);
    /* Optional: forget the format's own per-attempt state before a retry
     * (http.c resets everything in council__chat it knows of). */
    void (*on_restart)(council__chat *c);
    /* The request body of req (new string), to build it again for an
     * attempt after it was let go.  It may read only req's model,
     * messages and max_tokens: all that the call keeps (rebuild_body). */
    council_err (*build_body)(const council__chat_req *req, char **out);
} council__chat_ops;

enum {
    COUNCIL__CHAT_PENDING_ADD = 1, /* waiting to enter the multi handle */
    COUNCIL__CHAT_RUNNING,
    COUNCIL__CHAT_FINISHING, /* verdict known; on_done scheduled */
    COUNCIL__CHAT_DONE,      /* on_done called; closing */
    COUNCIL__CHAT_QUEUED,    /* waiting for a max_parallel slot */
    COUNCIL__CHAT_BACKOFF    /* waiting to retry */
};

enum {
    COUNCIL__BODY_UNKNOWN = 0,
    COUNCIL__BODY_SSE,
    COUNCIL__BODY_JSON,
    COUNCIL__BODY_ERROR
};

/* A failed attempt's words, allocated by the first failure of a call
 * (most calls never fail: a call in flight does not carry them). */
typedef struct council__chat_why {
    char message[COUNCIL__CHAT_MSG_SIZE];
    char error_type[COUNCIL__CHAT_TYPE_SIZE];
    char reason[96]; /* a non-2xx status line's reason phrase */
} council__chat_why;

struct council__chat {
    council__http *h;
    council__chat *prev, *next; /* h's list of live calls */
    const council__chat_ops *ops;
    council__chat_cbs cbs;
    void *ud;
    int state;
    int in_multi;
    CURL *easy;
    struct curl_slist *headers;  /* auth_node, or the format's constant list */
    struct curl_slist auth_node; /* the credential line (owned, zeroed at
                                    free), then the constant list */
    char *url;                   /* until launch: libcurl copies it */
    char *body; /* the request; let go once no attempt can need it */
    size_t body_len;
    /* To build the body again (rebuildable requests). */
    const char *model; /* borrowed: outlives the call */
    int max_tokens;
    int rebuildable;
    char *secret; /* the API key, only to scrub it */
    char errbuf[CURL_ERROR_SIZE];
    uv_timer_t timer; /* deadlines, deferred add, on_done */
    uint64_t connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms,
        total_timeout_ms;
    uint64_t t0_ms, last_byte_ms;  /* uv_hrtime() in ms */
    uint64_t t0_ns, first_byte_ns; /* uv_hrtime() clock */
    int got_byte;
    int mode; /* COUNCIL__BODY_* */
    long status;
    council__chat_why *why; /* NULL until a failure or a non-2xx status */
    uint64_t retry_after_ms;
    council__sse *sse;
    council__bytes text; /* the answer so far */
    council__bytes raw;  /* JSON or error body */
    char *finish_reason;
    int done_seen;
    council__usage usage;
    unsigned usage_parts;     /* the format's own: which counts it has seen */
    council__chat_result res; /* the verdict, once FINISHING */
    /* Retries and the per-endpoint queue (http.c only). */
    int retries_left, attempts, broke, total_expired;
    uint64_t backoff_base_ms, backoff_max_ms, rng;
    uint64_t attempt_t0_ms, attempt_t0_ns;
    struct council__endpoint *ep; /* NULL: no max_parallel */
    council__chat *qprev, *qnext; /* ep's FIFO while QUEUED */
    int has_slot;
};

/* Construction, for a wire format's start function: a call with its easy
 * handle and parser but not yet running.  The format then sets url, body,
 * headers and secret and calls launch, which takes the call over: on an
 * error it releases the call itself and no callback ever comes.  On an
 * error before launch the format calls discard. */
council_err council__chat_new(council__http *h, const council__chat_ops *ops,
                              const council__chat_req *req,
                              const council__chat_cbs *cbs, void *ud,
                              council__chat **out);
council_err council__chat_launch(council__chat *c);
void council__chat_discard(council__chat *c);
/* The request headers: the format's constant list (static, shared by every
 * call: libcurl only reads it), after the credential line auth if not
 * NULL ("Name: secret", allocated; the call takes it over and zeroes it
 * when freed). */
void council__chat_headers(council__chat *c, struct curl_slist *constant,
                           char *auth);

/* 1 while the call still runs (no verdict yet). */
int council__chat_running(const council__chat *c);
/* Appends answer text and passes it to on_delta.  Returns 1 if the call
 * still runs afterwards (on_delta may have cancelled it). */
int council__chat_text(council__chat *c, const char *s, size_t n);
void council__chat_succeed(council__chat *c);
void council__chat_fail(council__chat *c, council__call_errkind kind,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, with the provider's error type (type may be NULL or ""). */
void council__chat_fail_typed(council__chat *c, council__call_errkind kind,
                              const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies at most n bytes of src into dst as one printable line of valid
 * UTF-8: control bytes become spaces, bytes that are not well-formed UTF-8
 * become '?', a sequence cut by the end of src or of dst is dropped. */
void council__sanitize(char *dst, size_t dst_size, const char *src, size_t n);

/* The openai wire format's body handlers, used by council__openai_start;
 * exposed so that fuzz/fuzz_openai_chunk.c can feed them chunks directly. */
extern const council__chat_ops council__openai_ops;

council_err council__openai_start(council__http *h,
                                  const council__provider_cfg *cfg,
                                  const council__chat_req *req,
                                  const council__chat_cbs *cbs, void *ud,
                                  council__chat **out);

/* Error objects and bodies of the JSON wire formats, and their stream
 * events as JSON objects (http.c). */
json_t *council__json_object(council__chat *c, const char *data, size_t len,
                             const char *what);
void council__error_fields(json_t *err, char *msg, size_t msg_size, char *type,
                           size_t type_size);
void council__json_error_body(council__chat *c, const char *body, size_t len,
                              char *msg, size_t msg_size, char *type,
                              size_t type_size);

#endif
