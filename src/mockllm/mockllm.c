/* SPDX-License-Identifier: MIT */
/*
 * The mock LLM server: an OpenAI-compatible Chat Completions endpoint and
 * an Anthropic-compatible Messages endpoint on libmicrohttpd, for offline
 * use, tests and benchmarks.  Answers come from answer.c (a pure function
 * of seed, model and messages); faults from faults.c.  The server
 * promises: the same request and seed give the same content, streamed or
 * not, over either API; every wait (latency, token pacing, stalls, a
 * reasoning model's thinking) costs no thread; council_mockllm_close
 * leaves no thread, descriptor or allocation behind.
 *
 * Method: MHD runs its own epoll thread(s) with suspend/resume allowed.  A
 * request that must wait (before its first byte, or between two stream
 * chunks) registers a wake-up time in a min-heap and suspends its
 * connection; one timer thread sleeps until the earliest wake-up and
 * resumes the due connections.  Streams are produced by a content-reader
 * callback that emits as many SSE events as are due and fit, and suspends
 * when the next one is not due yet (returning 0 without suspending would
 * make MHD busy-loop).
 *
 * Locking: m->mu guards the heap and m->stopping.  A connection is
 * suspended with m->mu held and is resumed only by whoever pops its heap
 * entry, also with m->mu held, so MHD_resume_connection is never called on
 * a connection that is not suspended (MHD calls that undefined).  Lock
 * order is m->mu, then MHD's internal locks; MHD never calls us holding
 * one of its own.  On close the timer thread resumes every suspended
 * connection and exits; a request that wants to wait after that is
 * answered at once (its connection is closed), because MHD_stop_daemon
 * must not meet a suspended connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "mockllm/mockllm.h"

#define BODY_MAX (8u * 1024 * 1024) /* larger request bodies get 413 */
#define MODEL_MAX 256               /* longer model names get 400 */
#define STREAM_BLOCK 16384          /* reader block size */
#define CONN_LIMIT 65536u           /* the fd limit is the real bound */
#define CONN_TIMEOUT_S 600u         /* idle connections are dropped */
#define THINK_BEATS_MAX 1000000u    /* think: beats sent at most */

typedef struct wake {
    uint64_t due_ns; /* CLOCK_MONOTONIC */
    struct req *r;
} wake;

struct council_mockllm {
    struct MHD_Daemon *daemon;
    char base_url[96];
    uint64_t seed;
    uint64_t latency_ms;
    uint64_t tok_interval_ns; /* 0 = as fast as possible */
    council__mock_faults *faults;
    atomic_uint_fast64_t requests;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_init; /* mu and cv initialized */
    pthread_t timer;
    int timer_started;
    int stopping; /* under mu */
    wake *heap;   /* under mu */
    size_t heap_len;
    size_t heap_cap;
};

typedef enum route {
    ROUTE_CHAT,     /* POST /v1/chat/completions (OpenAI) */
    ROUTE_MESSAGES, /* POST /v1/messages (Anthropic) */
    ROUTE_MODELS,
    ROUTE_HEALTH,
    ROUTE_NOT_FOUND,
    ROUTE_BAD_METHOD
} route;

/* Stream phases, in order. */
typedef enum phase {
    PH_ROLE,
    PH_THINK, /* think: reasoning deltas or keep-alives, then the answer */
    PH_TOKENS,
    PH_FINISH,
    PH_USAGE,
    PH_DONE,
    PH_END
} phase;

/* What one reader step produced. */
typedef enum step {
    ST_EVENT, /* bytes appended to r->out */
    ST_WAIT,  /* nothing due before r->due_ns */
    ST_END,   /* stream complete */
    ST_ABORT  /* close the connection now */
} step;

/*
 * One HTTP request.  Created by the first access-handler call, freed by
 * the request-completed callback.  Touched by one MHD thread at a time;
 * the timer thread reads only conn, and only while the request is
 * suspended (so it cannot be freed under it).
 */
typedef struct req {
    council_mockllm *m;
    struct MHD_Connection *conn;
    route route;
    uint64_t nth; /* 1-based chat request number */
    council__mock_buf body;
    int too_big;
    int prepared;         /* body parsed, answer or error decided */
    uint64_t start_at_ns; /* no byte before this (latency, stall) */

    /* The decided reply. */
    int status; /* non-zero: send err_body with it */
    council__mock_buf err_body;
    char *model;
    council__mock_answer ans;
    uint64_t prompt_tokens;
    council__mock_fault fault;
    int stream;
    int include_usage;
    int anthropic; /* ROUTE_MESSAGES: Anthropic's shapes */
    char id[40];
    long long created;

    /* Streaming state. */
    council__mock_buf head; /* 'data: {"id":...,"delta":' */
    council__mock_buf out;  /* produced, not yet handed to MHD */
    size_t out_off;
    phase phase;
    size_t tok; /* content chunks sent */
    /* think: n_reason beats (reasoning deltas or keep-alives) before the
     * answer; reason_tok of them count as completion tokens; text_index
     * is Anthropic's index of the text block (1 after a thinking block). */
    uint64_t n_reason, reason_tok, reason_sent;
    int text_index;
    int fault_done;
    uint64_t t0_ns;         /* schedule origin for paced tokens */
    uint64_t not_before_ns; /* a stall between chunks */
    uint64_t due_ns;
} req;

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- timer heap (m->mu held) ------------------------------------------- */

static int
heap_push(council_mockllm *m, uint64_t due_ns, req *r)
{
    size_t i;

    if (m->heap_len == m->heap_cap) {
        size_t cap = m->heap_cap ? m->heap_cap * 2 : 64;
        wake *h = council__realloc(m->heap, cap * sizeof(*h));

        if (h == NULL)
            return -1;
        m->heap = h;
        m->heap_cap = cap;
    }
    i = m->heap_len++;
    while (i > 0 && m->heap[(i - 1) / 2].due_ns > due_ns) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i].due_ns = due_ns;
    m->heap[i].r = r;
    return 0;
}

static wake
heap_pop(council_mockllm *m)
{
    wake top = m->heap[0], last = m->heap[--m->heap_len];
    size_t i = 0, n = m->heap_len;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= n)
            break;
        if (c + 1 < n && m->heap[c + 1].due_ns < m->heap[c].due_ns)
            c++;
        if (m->heap[c].due_ns >= last.due_ns)
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n > 0)
        m->heap[i] = last;
    return top;
}

/*
 * Suspend r's connection until due_ns.  MHD thread, from the access
 * handler or the content reader.  Returns -1 when the server is stopping
 * (or memory ran out): the caller must then finish without waiting.
 */
static int
suspend_until(req *r, uint64_t due_ns)
{
    council_mockllm *m = r->m;
    int rc = -1;

    pthread_mutex_lock(&m->mu);
    if (!m->stopping && heap_push(m, due_ns, r) == 0) {
        MHD_suspend_connection(r->conn);
        if (m->heap[0].r == r)
            pthread_cond_signal(&m->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void *
timer_main(void *arg)
{
    council_mockllm *m = arg;

    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        uint64_t now;

        if (m->heap_len == 0) {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        now = mono_ns();
        if (m->heap[0].due_ns <= now) {
            wake w = heap_pop(m);

            MHD_resume_connection(w.r->conn);
        } else {
            struct timespec ts;
            uint64_t due = m->heap[0].due_ns;

            ts.tv_sec = (time_t)(due / 1000000000u);
            ts.tv_nsec = (long)(due % 1000000000u);
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        }
    }
    /* Stopping: every suspended connection must be resumed before
     * MHD_stop_daemon.  Their handlers see m->stopping and finish. */
    while (m->heap_len > 0) {
        wake w = heap_pop(m);

        MHD_resume_connection(w.r->conn);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- replies ----------------------------------------------------------- */

/* Anthropic's error type for a status (its documented table); other
 * statuses keep the OpenAI-style type they were given. */
static const char *
anthropic_type(int status, const char *type)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : type;
    }
}

static void set_error(req *r, int status, const char *type, const char *code,
                      const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* An OpenAI-style error body: {"error":{"message","type","code"}}.
 * code is a JSON literal (a quoted string, a number or null). */
static void
set_error(req *r, int status, const char *type, const char *code,
          const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->status = status;
    r->err_body.len = 0;
    if (r->anthropic) {
        /* {"type":"error","error":{"type","message"}}: no code. */
        council__mock_buf_fmt(&r->err_body,
                              "{\"type\":\"error\",\"error\":{\"type\":"
                              "\"%s\",\"message\":\"",
                              anthropic_type(status, type));
        council__mock_buf_json(&r->err_body, msg, strlen(msg));
        council__mock_buf_str(&r->err_body, "\"}}\n");
        return;
    }
    council__mock_buf_str(&r->err_body, "{\"error\":{\"message\":\"");
    council__mock_buf_json(&r->err_body, msg, strlen(msg));
    council__mock_buf_fmt(&r->err_body, "\",\"type\":\"%s\",\"code\":%s}}\n",
                          type, code);
}

static enum MHD_Result
queue_bytes(struct MHD_Connection *conn, int status, const char *ctype,
            const char *p, size_t len, uint64_t retry_after)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char ra[24];

    resp =
        MHD_create_response_from_buffer(len, (void *)p, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after > 0) {
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    ret = MHD_queue_response(conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
queue_error(req *r, uint64_t retry_after)
{
    if (r->err_body.oom)
        return MHD_NO;
    return queue_bytes(r->conn, r->status, "application/json", r->err_body.p,
                       r->err_body.len, retry_after);
}

static const char *
error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "invalid_request_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* ---- request parsing --------------------------------------------------- */

/* Text of a message's content: a string, null (""), or an array of parts
 * whose "text" members are joined.  Parts are copied into *owned. */
static int
content_of(json_t *c, council__mock_buf *owned, const char **p, size_t *len)
{
    size_t i;
    json_t *part;

    if (json_is_string(c)) {
        *p = json_string_value(c);
        *len = json_string_length(c);
        return 0;
    }
    if (json_is_null(c) || c == NULL) {
        *p = "";
        *len = 0;
        return 0;
    }
    if (!json_is_array(c))
        return -1;
    owned->len = 0;
    json_array_foreach (c, i, part) {
        json_t *t = json_object_get(part, "text");

        if (!json_is_object(part))
            return -1;
        if (t == NULL)
            continue; /* image parts and the like: no text to hash */
        if (!json_is_string(t))
            return -1;
        council__mock_buf_add(owned, json_string_value(t),
                              json_string_length(t));
    }
    council__mock_buf_add(owned, "", 0);
    if (owned->oom)
        return -1;
    *p = owned->p;
    *len = owned->len;
    return 0;
}

static void
build_head(req *r)
{
    council__mock_buf *h = &r->head;

    council__mock_buf_fmt(h,
                          "data: {\"id\":\"%s\",\"object\":\"chat.completion."
                          "chunk\",\"created\":%lld,\"model\":\"",
                          r->id, r->created);
    council__mock_buf_json(h, r->model, strlen(r->model));
    council__mock_buf_str(h, "\",\"choices\":[{\"index\":0,\"delta\":");
}

/*
 * Parse the chat request body and decide the reply: an error status with
 * its body, or an answer (plus a fault).  Returns COUNCIL_ENOMEM when
 * memory ran out (the connection is then closed).
 */
static council_err
prepare_chat(req *r)
{
    council_mockllm *m = r->m;
    council_err rc = COUNCIL_OK;
    json_error_t jerr;
    json_t *root = NULL, *model, *msgs, *v, *so, *sys = NULL;
    council__mock_msg *mm = NULL;
    council__mock_buf *parts = NULL;
    size_t n = 0, i, max_tokens = 0, k = 0;

    if (r->too_big) {
        set_error(r, 413, "invalid_request_error", "null",
                  "request body larger than %u bytes", BODY_MAX);
        goto out;
    }
    root = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
    if (root == NULL) {
        set_error(r, 400, "invalid_request_error", "null",
                  "invalid JSON body: %s (line %d, column %d)", jerr.text,
                  jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(root)) {
        set_error(r, 400, "invalid_request_error", "null",
                  "the request body must be a JSON object");
        goto out;
    }
    model = json_object_get(root, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        set_error(r, 400, "invalid_request_error", "null",
                  "'model' is required and must be a non-empty string");
        goto out;
    }
    if (json_string_length(model) > MODEL_MAX ||
        strlen(json_string_value(model)) != json_string_length(model)) {
        set_error(r, 400, "invalid_request_error", "null",
                  "'model' must be at most %d bytes, without NUL", MODEL_MAX);
        goto out;
    }
    msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        set_error(r, 400, "invalid_request_error", "null",
                  "'messages' is required and must be a non-empty array");
        goto out;
    }
    v = json_object_get(root, "stream");
    if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
        set_error(r, 400, "invalid_request_error", "null",
                  "'stream' must be a boolean");
        goto out;
    }
    r->stream = json_is_true(v);
    so = json_object_get(root, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        v = json_object_get(so, "include_usage");
        if (!json_is_object(so) ||
            (v != NULL && !json_is_boolean(v) && !json_is_null(v))) {
            set_error(r, 400, "invalid_request_error", "null",
                      "'stream_options' must be an object with a boolean "
                      "'include_usage'");
            goto out;
        }
        r->include_usage = json_is_true(v);
    }
    v = json_object_get(root, "max_tokens");
    if (r->anthropic && (v == NULL || json_is_null(v))) {
        /* Required by the Messages API; the mock is as strict. */
        set_error(r, 400, "invalid_request_error", "null",
                  "max_tokens: Field required");
        goto out;
    }
    if (v == NULL || json_is_null(v))
        v = json_object_get(root, "max_completion_tokens");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            set_error(r, 400, "invalid_request_error", "null",
                      "'max_tokens' must be a positive integer");
            goto out;
        }
        max_tokens = (size_t)json_integer_value(v);
    }

    /* Anthropic's top-level system (a string or text blocks) becomes a
     * leading system message: the same prompt as OpenAI's shape, so the
     * same answer. */
    if (r->anthropic) {
        sys = json_object_get(root, "system");
        if (sys != NULL && !json_is_null(sys))
            k = 1;
    }
    n = json_array_size(msgs) + k;
    mm = council__calloc(n, sizeof(*mm));
    parts = council__calloc(n, sizeof(*parts));
    if (mm == NULL || parts == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    if (k == 1) {
        mm[0].role = "system";
        if (content_of(sys, &parts[0], &mm[0].content, &mm[0].content_len) !=
            0) {
            if (parts[0].oom) {
                rc = COUNCIL_ENOMEM;
                goto out;
            }
            set_error(r, 400, "invalid_request_error", "null",
                      "system must be a string or an array of text "
                      "blocks");
            goto out;
        }
    }
    for (i = k; i < n; i++) {
        json_t *msg = json_array_get(msgs, i - k);
        json_t *role = json_object_get(msg, "role");

        if (!json_is_object(msg) || !json_is_string(role)) {
            set_error(r, 400, "invalid_request_error", "null",
                      "messages[%zu] must be an object with a string "
                      "'role'",
                      i - k);
            goto out;
        }
        mm[i].role = json_string_value(role);
        if (content_of(json_object_get(msg, "content"), &parts[i],
                       &mm[i].content, &mm[i].content_len) != 0) {
            if (parts[i].oom) {
                rc = COUNCIL_ENOMEM;
                goto out;
            }
            set_error(r, 400, "invalid_request_error", "null",
                      "messages[%zu].content must be a string or an array "
                      "of text parts",
                      i - k);
            goto out;
        }
    }

    r->model = council__strdup(json_string_value(model));
    if (r->model == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    rc = council__mock_answer_make(m->seed, r->model, mm, n, max_tokens,
                                   &r->ans);
    if (rc != COUNCIL_OK)
        goto out;
    r->prompt_tokens = council__mock_prompt_tokens(mm, n);
    snprintf(r->id, sizeof(r->id),
             r->anthropic ? "msg_mock%016llx" : "chatcmpl-mock%016llx",
             (unsigned long long)r->ans.hash);
    r->created = (long long)time(NULL);
    council__mock_faults_match(m->faults, m->seed, r->nth, r->model, &r->fault);
    if (r->fault.kind == COUNCIL__FAULT_THINK && r->fault.beat_ms > 0) {
        /* One beat at the start and one every beat_ms while thinking. */
        r->n_reason =
            (r->fault.think_ms + r->fault.beat_ms - 1) / r->fault.beat_ms;
        if (r->n_reason > THINK_BEATS_MAX)
            r->n_reason = THINK_BEATS_MAX; /* a whole answer's reasoning
                                              stays within ~20 MB */
        if (r->fault.think_as != COUNCIL__THINK_COMMENT)
            r->reason_tok = r->n_reason;
    }
    if (r->stream && !r->anthropic) {
        build_head(r);
        if (r->head.oom)
            rc = COUNCIL_ENOMEM;
    }

out:
    if (parts != NULL) {
        for (i = 0; i < n; i++)
            council__mock_buf_free(&parts[i]);
    }
    council__free(parts);
    council__free(mm);
    json_decref(root);
    if (r->err_body.oom)
        rc = COUNCIL_ENOMEM;
    return rc;
}

/* ---- non-streamed replies ---------------------------------------------- */

static const char *
finish_reason(const req *r)
{
    return r->ans.truncated ? "length" : "stop";
}

/* 1 if the answer reports its usage (no_done and no_usage drop it). */
static int
has_usage(const req *r)
{
    return r->fault.kind != COUNCIL__FAULT_NO_DONE &&
           r->fault.kind != COUNCIL__FAULT_NO_USAGE;
}

/* Completion tokens: the content chunks and the reasoning ones. */
static unsigned long long
out_tokens(const req *r)
{
    return (unsigned long long)(r->ans.n_tok + r->reason_tok);
}

/* Reasoning piece i of a thinking answer into buf (NUL-terminated);
 * returns its length.  The pieces concatenate to the whole reasoning. */
static size_t
reason_piece(uint64_t i, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%sReasoning step %llu.", i > 0 ? " " : "",
                     (unsigned long long)(i + 1));

    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* The whole reasoning of a thinking answer, as JSON string contents. */
static void
reasoning_json(council__mock_buf *b, const req *r)
{
    char piece[64];
    uint64_t i;

    for (i = 0; i < r->reason_tok; i++)
        council__mock_buf_json(b, piece, reason_piece(i, piece, sizeof(piece)));
}

/* ,"usage":{...} (OpenAI's shape; with "cost" in USD, as OpenRouter
 * reports it, for the cost fault, and the reasoning tokens of a thinking
 * answer, as OpenAI reports them), or nothing without usage. */
static void
usage_json(council__mock_buf *b, const req *r)
{
    if (!has_usage(r))
        return;
    council__mock_buf_fmt(b,
                          ",\"usage\":{\"prompt_tokens\":%llu,"
                          "\"completion_tokens\":%llu,\"total_tokens\":%llu",
                          (unsigned long long)r->prompt_tokens, out_tokens(r),
                          (unsigned long long)r->prompt_tokens + out_tokens(r));
    if (r->reason_tok > 0)
        council__mock_buf_fmt(b,
                              ",\"completion_tokens_details\":{"
                              "\"reasoning_tokens\":%llu}",
                              (unsigned long long)r->reason_tok);
    if (r->fault.kind == COUNCIL__FAULT_COST)
        council__mock_buf_fmt(b, ",\"cost\":%.17g", r->fault.cost);
    council__mock_buf_str(b, "}");
}

static enum MHD_Result
queue_completion(req *r)
{
    council__mock_buf b = {0};
    enum MHD_Result ret = MHD_NO;
    const council__mock_fault *f = &r->fault;

    if (f->kind == COUNCIL__FAULT_ERROR_IN_STREAM) {
        /* OpenRouter answers some failures with 200 and an error body. */
        council__mock_buf_str(&b, "{\"error\":{\"message\":\"mock-llm "
                                  "injected fault: error in response\","
                                  "\"type\":\"server_error\",\"code\":502}}\n");
        goto send;
    }
    council__mock_buf_fmt(&b,
                          "{\"id\":\"%s\",\"object\":\"chat.completion\","
                          "\"created\":%lld,\"model\":\"",
                          r->id, r->created);
    council__mock_buf_json(&b, r->model, strlen(r->model));
    council__mock_buf_str(&b, "\",\"choices\":[{\"index\":0,\"message\":"
                              "{\"role\":\"assistant\",\"content\":\"");
    council__mock_buf_json(&b, r->ans.text, r->ans.len);
    if (r->reason_tok > 0) {
        council__mock_buf_str(&b, r->fault.think_as == COUNCIL__THINK_REASONING
                                      ? "\",\"reasoning\":\""
                                      : "\",\"reasoning_content\":\"");
        reasoning_json(&b, r);
    }
    council__mock_buf_str(&b, "\"},\"finish_reason\":");
    if (f->kind == COUNCIL__FAULT_NO_DONE)
        council__mock_buf_str(&b, "null}]");
    else
        council__mock_buf_fmt(&b, "\"%s\"}]", finish_reason(r));
    usage_json(&b, r);
    council__mock_buf_str(&b, "}\n");
    if (f->kind == COUNCIL__FAULT_MALFORMED && !b.oom)
        b.len /= 2; /* cut in the middle: not JSON any more */

send:
    if (!b.oom)
        ret = queue_bytes(r->conn, 200, "application/json", b.p, b.len, 0);
    council__mock_buf_free(&b);
    return ret;
}

static const char *
stop_reason(const req *r)
{
    return r->ans.truncated ? "max_tokens" : "end_turn";
}

/* Anthropic's whole Message.  Faults as for the OpenAI shape: an error
 * object with 200, no stop_reason and no usage for no_done, a cut body. */
static enum MHD_Result
queue_message(req *r)
{
    council__mock_buf b = {0};
    enum MHD_Result ret = MHD_NO;
    const council__mock_fault *f = &r->fault;

    if (f->kind == COUNCIL__FAULT_ERROR_IN_STREAM) {
        council__mock_buf_str(&b, "{\"type\":\"error\",\"error\":{\"type\":"
                                  "\"api_error\",\"message\":\"mock-llm "
                                  "injected fault: error in response\"}}\n");
        goto send;
    }
    council__mock_buf_fmt(&b,
                          "{\"id\":\"%s\",\"type\":\"message\",\"role\":"
                          "\"assistant\",\"model\":\"",
                          r->id);
    council__mock_buf_json(&b, r->model, strlen(r->model));
    council__mock_buf_str(&b, "\",\"content\":[");
    if (r->reason_tok > 0) {
        council__mock_buf_str(&b, "{\"type\":\"thinking\",\"thinking\":\"");
        reasoning_json(&b, r);
        council__mock_buf_str(&b, "\",\"signature\":\"mock-signature\"},");
    }
    council__mock_buf_str(&b, "{\"type\":\"text\",\"text\":\"");
    council__mock_buf_json(&b, r->ans.text, r->ans.len);
    council__mock_buf_str(&b, "\"}],\"stop_reason\":");
    if (f->kind == COUNCIL__FAULT_NO_DONE)
        council__mock_buf_str(&b, "null,\"stop_sequence\":null}\n");
    else if (!has_usage(r))
        council__mock_buf_fmt(&b, "\"%s\",\"stop_sequence\":null}\n",
                              stop_reason(r));
    else
        council__mock_buf_fmt(&b,
                              "\"%s\",\"stop_sequence\":null,\"usage\":{"
                              "\"input_tokens\":%llu,\"output_tokens\":"
                              "%llu}}\n",
                              stop_reason(r),
                              (unsigned long long)r->prompt_tokens,
                              out_tokens(r));
    if (f->kind == COUNCIL__FAULT_MALFORMED && !b.oom)
        b.len /= 2; /* cut in the middle: not JSON any more */

send:
    if (!b.oom)
        ret = queue_bytes(r->conn, 200, "application/json", b.p, b.len, 0);
    council__mock_buf_free(&b);
    return ret;
}

/* ---- streamed replies -------------------------------------------------- */

/*
 * Anthropic's event stream, one helper per point of the OpenAI one:
 * message_start + content_block_start + ping for the role chunk, a
 * content_block_delta per token, content_block_stop + message_delta
 * (stop_reason, cumulative output_tokens) for the finish chunk, and
 * message_stop for [DONE].
 */
static void
a_start(req *r)
{
    council__mock_buf *o = &r->out;

    council__mock_buf_fmt(o,
                          "event: message_start\ndata: {\"type\":"
                          "\"message_start\",\"message\":{\"id\":\"%s\","
                          "\"type\":\"message\",\"role\":\"assistant\","
                          "\"content\":[],\"model\":\"",
                          r->id);
    council__mock_buf_json(o, r->model, strlen(r->model));
    if (r->fault.kind == COUNCIL__FAULT_NO_USAGE)
        council__mock_buf_str(o, "\",\"stop_reason\":null,\"stop_sequence\":"
                                 "null}}\n\n");
    else
        council__mock_buf_fmt(o,
                              "\",\"stop_reason\":null,\"stop_sequence\":"
                              "null,\"usage\":{\"input_tokens\":%llu,"
                              "\"output_tokens\":0}}}\n\n",
                              (unsigned long long)r->prompt_tokens);
    if (r->reason_tok > 0 && r->phase == PH_ROLE) {
        /* Thinking first (index 0), the text block after it. */
        r->text_index = 1;
        council__mock_buf_str(o, "event: content_block_start\ndata: {\"type\":"
                                 "\"content_block_start\",\"index\":0,"
                                 "\"content_block\":{\"type\":\"thinking\","
                                 "\"thinking\":\"\"}}\n\n"
                                 "event: ping\ndata: {\"type\":\"ping\"}\n\n");
        return;
    }
    council__mock_buf_str(o, "event: content_block_start\ndata: {\"type\":"
                             "\"content_block_start\",\"index\":0,"
                             "\"content_block\":{\"type\":\"text\","
                             "\"text\":\"\"}}\n\n"
                             "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

static void emit_chunk(req *r, const char *delta, const char *tok,
                       size_t tok_len, const char *finish);

/* One beat of thinking: a reasoning delta or a keep-alive, in the shape
 * of r's API and the rule's as=. */
static void
think_beat(req *r)
{
    council__mock_buf *o = &r->out;
    char piece[64];
    size_t n;

    if (r->fault.think_as == COUNCIL__THINK_COMMENT) {
        council__mock_buf_str(o, r->anthropic ? "event: ping\ndata: "
                                                "{\"type\":\"ping\"}\n\n"
                                              : ": keep-alive\n\n");
        return;
    }
    n = reason_piece(r->reason_sent, piece, sizeof(piece));
    if (r->anthropic) {
        council__mock_buf_str(o, "event: content_block_delta\ndata: {\"type\":"
                                 "\"content_block_delta\",\"index\":0,"
                                 "\"delta\":{\"type\":\"thinking_delta\","
                                 "\"thinking\":\"");
        council__mock_buf_json(o, piece, n);
        council__mock_buf_str(o, "\"}}\n\n");
        return;
    }
    emit_chunk(r,
               r->fault.think_as == COUNCIL__THINK_REASONING
                   ? "{\"reasoning\":\""
                   : "{\"reasoning_content\":\"",
               piece, n, "null");
}

/* Thinking is over: Anthropic closes the thinking block (with its
 * signature) and opens the text block. */
static void
think_end(req *r)
{
    if (!r->anthropic || r->text_index == 0)
        return;
    council__mock_buf_str(&r->out,
                          "event: content_block_delta\ndata: {\"type\":"
                          "\"content_block_delta\",\"index\":0,\"delta\":{"
                          "\"type\":\"signature_delta\",\"signature\":"
                          "\"mock-signature\"}}\n\n"
                          "event: content_block_stop\ndata: {\"type\":"
                          "\"content_block_stop\",\"index\":0}\n\n"
                          "event: content_block_start\ndata: {\"type\":"
                          "\"content_block_start\",\"index\":1,"
                          "\"content_block\":{\"type\":\"text\","
                          "\"text\":\"\"}}\n\n");
}

static void
a_token(req *r, const char *tok, size_t len)
{
    council__mock_buf *o = &r->out;

    council__mock_buf_fmt(o,
                          "event: content_block_delta\ndata: {\"type\":"
                          "\"content_block_delta\",\"index\":%d,"
                          "\"delta\":{\"type\":\"text_delta\",\"text\":"
                          "\"",
                          r->text_index);
    council__mock_buf_json(o, tok, len);
    council__mock_buf_str(o, "\"}}\n\n");
}

static void
a_finish(req *r)
{
    if (r->fault.kind == COUNCIL__FAULT_NO_USAGE) {
        council__mock_buf_fmt(&r->out,
                              "event: content_block_stop\ndata: {\"type\":"
                              "\"content_block_stop\",\"index\":%d}\n\n"
                              "event: message_delta\ndata: {\"type\":"
                              "\"message_delta\",\"delta\":{\"stop_reason\":"
                              "\"%s\",\"stop_sequence\":null}}\n\n",
                              r->text_index, stop_reason(r));
        return;
    }
    council__mock_buf_fmt(&r->out,
                          "event: content_block_stop\ndata: {\"type\":"
                          "\"content_block_stop\",\"index\":%d}\n\n"
                          "event: message_delta\ndata: {\"type\":"
                          "\"message_delta\",\"delta\":{\"stop_reason\":"
                          "\"%s\",\"stop_sequence\":null},\"usage\":{"
                          "\"output_tokens\":%llu}}\n\n",
                          r->text_index, stop_reason(r), out_tokens(r));
}

static void
emit_chunk(req *r, const char *delta, const char *tok, size_t tok_len,
           const char *finish)
{
    council__mock_buf *o = &r->out;

    council__mock_buf_add(o, r->head.p, r->head.len);
    council__mock_buf_str(o, delta);
    if (tok != NULL) {
        council__mock_buf_json(o, tok, tok_len);
        council__mock_buf_str(o, "\"}");
    }
    council__mock_buf_str(o, ",\"finish_reason\":");
    council__mock_buf_str(o, finish);
    council__mock_buf_str(o, "}]}\n\n");
}

/* Chunks of content sent before the fault fires (clamped to the answer). */
static size_t
fault_at(const req *r)
{
    int64_t a = r->fault.after < 0 ? 0 : r->fault.after;

    return (uint64_t)a > r->ans.n_tok ? r->ans.n_tok : (size_t)a;
}

/* The faults that fire at a point of the token stream. */
static int
fires_in_stream(council__mock_fault_kind k)
{
    return k == COUNCIL__FAULT_STALL || k == COUNCIL__FAULT_MALFORMED ||
           k == COUNCIL__FAULT_DISCONNECT ||
           k == COUNCIL__FAULT_ERROR_IN_STREAM;
}

/* Produce the next SSE event into r->out, or say why not. */
static step
produce(req *r, uint64_t now)
{
    council_mockllm *m = r->m;
    const council__mock_fault *f = &r->fault;

    switch (r->phase) {
    case PH_ROLE:
        if (r->anthropic)
            a_start(r);
        else
            emit_chunk(r, "{\"role\":\"assistant\",\"content\":\"\"}", NULL, 0,
                       "null");
        r->phase = r->n_reason > 0 ? PH_THINK : PH_TOKENS;
        r->t0_ns = now;
        return ST_EVENT;

    case PH_THINK: {
        /* Beat i is due at t0 + i * beat, the answer at t0 + think. */
        uint64_t due;

        if (r->reason_sent < r->n_reason) {
            due = r->t0_ns + r->reason_sent * f->beat_ms * 1000000u;
            if (due > now) {
                r->due_ns = due;
                return ST_WAIT;
            }
            think_beat(r);
            r->reason_sent++;
            return ST_EVENT;
        }
        due = r->t0_ns + f->think_ms * 1000000u;
        if (due > now) {
            r->due_ns = due;
            return ST_WAIT;
        }
        think_end(r);
        r->phase = PH_TOKENS;
        r->t0_ns = now;
        return ST_EVENT;
    }

    case PH_TOKENS:
        if (!r->fault_done && fires_in_stream(f->kind) &&
            r->tok == fault_at(r)) {
            r->fault_done = 1;
            switch (f->kind) {
            case COUNCIL__FAULT_STALL:
                r->not_before_ns = now + f->stall_ms * 1000000u;
                r->t0_ns += f->stall_ms * 1000000u;
                break;
            case COUNCIL__FAULT_MALFORMED:
                if (r->anthropic) {
                    council__mock_buf_str(
                        &r->out,
                        "event: content_block_delta\ndata: {\"type\":"
                        "\"content_block_delta\",\"index\":0,\"delta\":{"
                        "\"type\":\"text_delta\",\"text\":\" broken\n\n");
                    return ST_EVENT;
                }
                council__mock_buf_add(&r->out, r->head.p, r->head.len);
                council__mock_buf_str(&r->out, "{\"content\":\" broken\n\n");
                return ST_EVENT;
            case COUNCIL__FAULT_DISCONNECT:
                /* Sticky: the events batched before it go out first,
                 * then the next call aborts again. */
                r->fault_done = 0;
                return ST_ABORT;
            case COUNCIL__FAULT_ERROR_IN_STREAM:
                if (r->anthropic) {
                    council__mock_buf_str(
                        &r->out,
                        "event: error\ndata: {\"type\":\"error\",\"error\":"
                        "{\"type\":\"overloaded_error\",\"message\":"
                        "\"mock-llm injected fault: error in stream\"}}"
                        "\n\n");
                    r->phase = PH_END;
                    return ST_EVENT;
                }
                council__mock_buf_str(
                    &r->out,
                    "data: {\"error\":{\"message\":\"mock-llm injected "
                    "fault: error in stream\",\"type\":\"server_error\","
                    "\"code\":502}}\n\n");
                r->phase = PH_END;
                return ST_EVENT;
            default:
                break;
            }
        }
        if (r->tok < r->ans.n_tok) {
            uint64_t due = r->t0_ns + r->tok * m->tok_interval_ns;

            if (due < r->not_before_ns)
                due = r->not_before_ns;
            if (due > now) {
                r->due_ns = due;
                return ST_WAIT;
            }
            if (r->anthropic)
                a_token(r, r->ans.text + r->ans.tok_off[r->tok],
                        r->ans.tok_off[r->tok + 1] - r->ans.tok_off[r->tok]);
            else
                emit_chunk(r, "{\"content\":\"",
                           r->ans.text + r->ans.tok_off[r->tok],
                           r->ans.tok_off[r->tok + 1] - r->ans.tok_off[r->tok],
                           "null");
            r->tok++;
            return ST_EVENT;
        }
        if (f->kind == COUNCIL__FAULT_NO_DONE && r->anthropic) {
            /* Everything but message_stop, a stop_reason included:
             * only message_stop ends a message. */
            a_finish(r);
            r->phase = PH_END;
            return ST_EVENT;
        }
        if (f->kind == COUNCIL__FAULT_NO_DONE) {
            r->phase = PH_END;
            return ST_END;
        }
        r->phase = PH_FINISH;
        /* fall through */
    case PH_FINISH:
        if (r->anthropic) {
            a_finish(r);
            r->phase = PH_DONE;
            return ST_EVENT;
        }
        emit_chunk(r, "{}", NULL, 0,
                   r->ans.truncated ? "\"length\"" : "\"stop\"");
        r->phase = r->include_usage && has_usage(r) ? PH_USAGE : PH_DONE;
        return ST_EVENT;

    case PH_USAGE:
        council__mock_buf_fmt(&r->out,
                              "data: {\"id\":\"%s\",\"object\":\"chat."
                              "completion.chunk\",\"created\":%lld,"
                              "\"model\":\"",
                              r->id, r->created);
        council__mock_buf_json(&r->out, r->model, strlen(r->model));
        council__mock_buf_str(&r->out, "\",\"choices\":[]");
        usage_json(&r->out, r);
        council__mock_buf_str(&r->out, "}\n\n");
        r->phase = PH_DONE;
        return ST_EVENT;

    case PH_DONE:
        if (r->anthropic)
            council__mock_buf_str(&r->out, "event: message_stop\ndata: "
                                           "{\"type\":\"message_stop\"}\n\n");
        else
            council__mock_buf_str(&r->out, "data: [DONE]\n\n");
        r->phase = PH_END;
        return ST_EVENT;

    case PH_END:
        return ST_END;
    }
    return ST_ABORT;
}

static ssize_t
stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    req *r = cls;
    step st = ST_EVENT;
    size_t n;

    (void)pos;
    if (r->out_off == r->out.len) {
        uint64_t now = mono_ns();

        r->out.len = 0;
        r->out_off = 0;
        /* Batch every due event that fits; paced streams send one event
         * per wake-up anyway, since the next one is not due. */
        while (r->out.len < max / 2) {
            st = produce(r, now);
            if (st != ST_EVENT)
                break;
        }
        if (r->out.oom)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (r->out_off < r->out.len) {
        n = r->out.len - r->out_off;
        if (n > max)
            n = max;
        memcpy(buf, r->out.p + r->out_off, n);
        r->out_off += n;
        return (ssize_t)n;
    }
    switch (st) {
    case ST_WAIT:
        if (suspend_until(r, r->due_ns) == 0)
            return 0;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    case ST_END:
        return MHD_CONTENT_READER_END_OF_STREAM;
    default:
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static enum MHD_Result
queue_stream(req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                             stream_reader, r, NULL);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- routing ----------------------------------------------------------- */

static route
route_of(const char *url, const char *method)
{
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

    if (strcmp(url, "/v1/chat/completions") == 0)
        return post ? ROUTE_CHAT : ROUTE_BAD_METHOD;
    if (strcmp(url, "/v1/messages") == 0)
        return post ? ROUTE_MESSAGES : ROUTE_BAD_METHOD;
    if (strcmp(url, "/v1/models") == 0)
        return get ? ROUTE_MODELS : ROUTE_BAD_METHOD;
    if (strcmp(url, "/healthz") == 0)
        return get ? ROUTE_HEALTH : ROUTE_BAD_METHOD;
    return ROUTE_NOT_FOUND;
}

static enum MHD_Result
reply_simple(req *r, const char *url)
{
    static const char models[] =
        "{\"object\":\"list\",\"data\":["
        "{\"id\":\"mock-small\",\"object\":\"model\",\"created\":0,"
        "\"owned_by\":\"council-mock\"},"
        "{\"id\":\"mock-large\",\"object\":\"model\",\"created\":0,"
        "\"owned_by\":\"council-mock\"},"
        "{\"id\":\"mock-chairman\",\"object\":\"model\",\"created\":0,"
        "\"owned_by\":\"council-mock\"}]}\n";
    static const char health[] = "{\"status\":\"ok\"}\n";

    switch (r->route) {
    case ROUTE_MODELS:
        return queue_bytes(r->conn, 200, "application/json", models,
                           sizeof(models) - 1, 0);
    case ROUTE_HEALTH:
        return queue_bytes(r->conn, 200, "application/json", health,
                           sizeof(health) - 1, 0);
    case ROUTE_BAD_METHOD:
        set_error(r, 405, "invalid_request_error", "null",
                  "method not allowed on %.200s", url);
        return queue_error(r, 0);
    default:
        set_error(r, 404, "invalid_request_error", "\"unknown_url\"",
                  "unknown URL: %.200s", url);
        return queue_error(r, 0);
    }
}

/* Send the decided chat reply (latency and stalls are over). */
static enum MHD_Result
reply_chat(req *r)
{
    const council__mock_fault *f = &r->fault;

    if (r->status != 0)
        return queue_error(r, 0);
    if (f->kind == COUNCIL__FAULT_HTTP) {
        set_error(r, f->status, error_type(f->status),
                  f->status == 429 ? "\"rate_limit_exceeded\"" : "null",
                  "mock-llm injected fault: HTTP %d", f->status);
        return queue_error(r, f->retry_after);
    }
    /* A disconnect with no chunk count resets before any byte; so does
     * any disconnect of a non-streamed answer. */
    if (f->kind == COUNCIL__FAULT_DISCONNECT && (!r->stream || f->after < 0))
        return MHD_NO;
    if (!r->stream)
        return r->anthropic ? queue_message(r) : queue_completion(r);
    return queue_stream(r);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **con_cls)
{
    council_mockllm *m = cls;
    req *r = *con_cls;

    (void)version;
    if (r == NULL) {
        const char *cl;

        r = council__calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->m = m;
        r->conn = conn;
        r->route = route_of(url, method);
        r->anthropic = r->route == ROUTE_MESSAGES;
        if (r->anthropic)
            r->route = ROUTE_CHAT; /* the same flow, other shapes */
        r->fault.after = -1;
        *con_cls = r;
        if (r->route == ROUTE_CHAT) {
            r->nth = atomic_fetch_add(&m->requests, 1) + 1;
            cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl != NULL && strtoull(cl, NULL, 10) > BODY_MAX)
                r->too_big = 1;
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Keep the chat body up to the cap; drop everything else. */
        if (r->route == ROUTE_CHAT && !r->too_big) {
            if (*upload_size > BODY_MAX - r->body.len) {
                r->too_big = 1;
                council__mock_buf_free(&r->body);
            } else {
                council__mock_buf_add(&r->body, upload, *upload_size);
                if (r->body.oom)
                    return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->route != ROUTE_CHAT)
        return reply_simple(r, url);

    if (!r->prepared) {
        uint64_t wait_ms = m->latency_ms;

        r->prepared = 1;
        if (prepare_chat(r) != COUNCIL_OK)
            return MHD_NO;
        council__mock_buf_free(&r->body);
        /* A stall with no chunk count happens before the first byte. */
        if (r->status == 0 && r->fault.kind == COUNCIL__FAULT_STALL &&
            (r->fault.after < 0 || !r->stream)) {
            wait_ms += r->fault.stall_ms;
            r->fault_done = 1;
        }
        /* So does the thinking of a whole answer, or of a silent stream
         * (beat=0): nothing is sent while the model thinks. */
        if (r->status == 0 && r->fault.kind == COUNCIL__FAULT_THINK &&
            (!r->stream || r->fault.beat_ms == 0))
            wait_ms += r->fault.think_ms;
        r->start_at_ns = mono_ns() + wait_ms * 1000000u;
    }
    if (r->start_at_ns > mono_ns()) {
        if (suspend_until(r, r->start_at_ns) == 0)
            return MHD_YES;
        return MHD_NO; /* stopping */
    }
    return reply_chat(r);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    req *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (r == NULL)
        return;
    council__mock_buf_free(&r->body);
    council__mock_buf_free(&r->err_body);
    council__mock_buf_free(&r->head);
    council__mock_buf_free(&r->out);
    council__mock_answer_free(&r->ans);
    council__free(r->model);
    council__free(r);
    *con_cls = NULL;
}

/* ---- open / close ------------------------------------------------------ */

static council_err
bad_listen(council_diag *diag, const char *listen, const char *why)
{
    if (diag != NULL) {
        memset(diag, 0, sizeof(*diag));
        snprintf(diag->file, sizeof(diag->file), "listen");
        snprintf(diag->msg, sizeof(diag->msg), "listen address '%.100s': %s",
                 listen, why);
    }
    return COUNCIL_EINVAL;
}

/* "A.B.C.D:PORT" or "[v6]:PORT", numeric only. */
static council_err
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen,
             council_diag *diag)
{
    char host[64];
    const char *colon, *hs = s, *he;
    char *end;
    unsigned long port;

    memset(ss, 0, sizeof(*ss));
    colon = strrchr(s, ':');
    if (colon == NULL)
        return bad_listen(diag, s, "expected HOST:PORT");
    he = colon;
    if (s[0] == '[') {
        if (colon == s || colon[-1] != ']')
            return bad_listen(diag, s, "expected [IPV6]:PORT");
        hs = s + 1;
        he = colon - 1;
    }
    if ((size_t)(he - hs) >= sizeof(host) || he == hs)
        return bad_listen(diag, s, "bad host");
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (colon[1] < '0' || colon[1] > '9')
        return bad_listen(diag, s, "the port must be a number 0-65535");
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port > 65535)
        return bad_listen(diag, s, "the port must be a number 0-65535");
    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return bad_listen(diag, s, "not a numeric IPv6 address");
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return bad_listen(diag, s,
                              "not a numeric IPv4 address (names such as "
                              "localhost are not resolved)");
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*a4);
    }
    return COUNCIL_OK;
}

/* Bind once ourselves so a busy or forbidden address gets a clear reason
 * (MHD_start_daemon reports only failure): COUNCIL_EIO with diag. */
static council_err
probe_bind(const struct sockaddr_storage *ss, socklen_t len, const char *listen,
           council_diag *diag)
{
    int fd, one = 1, e = 0;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)ss, len) != 0)
            e = errno;
        close(fd);
    }
    if (e == 0)
        return COUNCIL_OK;
    (void)bad_listen(diag, listen, strerror(e));
    return COUNCIL_EIO;
}

council_err
council_mockllm_open(const council_mockllm_opts *opts, council_mockllm **out,
                     council_diag *diag)
{
    council_mockllm *m = NULL;
    council_err rc = COUNCIL_OK;
    const char *listen = "127.0.0.1:0";
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    const union MHD_DaemonInfo *info;
    unsigned int flags;
    pthread_condattr_t ca;
    char host[INET6_ADDRSTRLEN];

    if (out == NULL)
        return COUNCIL_EINVAL;
    *out = NULL;
    if (opts != NULL && opts->version != COUNCIL_MOCKLLM_OPTS_VERSION) {
        if (diag != NULL) {
            memset(diag, 0, sizeof(*diag));
            snprintf(diag->msg, sizeof(diag->msg),
                     "council_mockllm_opts.version is %d, expected %d",
                     opts->version, COUNCIL_MOCKLLM_OPTS_VERSION);
        }
        return COUNCIL_EINVAL;
    }
    if (opts != NULL && opts->listen != NULL)
        listen = opts->listen;
    if (opts != NULL &&
        !(opts->tokens_per_sec >= 0.0 && opts->tokens_per_sec <= 1e9)) {
        if (diag != NULL) {
            memset(diag, 0, sizeof(*diag));
            snprintf(diag->msg, sizeof(diag->msg),
                     "tokens_per_sec must be between 0 and 1e9");
        }
        return COUNCIL_EINVAL;
    }
    rc = parse_listen(listen, &ss, &sslen, diag);
    if (rc != COUNCIL_OK)
        return rc;

    m = council__calloc(1, sizeof(*m));
    if (m == NULL)
        return COUNCIL_ENOMEM;
    atomic_init(&m->requests, 0);
    if (opts != NULL) {
        m->seed = opts->seed;
        m->latency_ms = opts->latency_ms;
        if (opts->tokens_per_sec > 0.0)
            m->tok_interval_ns = (uint64_t)(1e9 / opts->tokens_per_sec);
        rc = council__mock_faults_parse(opts->faults, &m->faults, diag);
        if (rc != COUNCIL_OK)
            goto out;
    }
    rc = probe_bind(&ss, sslen, listen, diag);
    if (rc != COUNCIL_OK)
        goto out;

    /* The timer waits on CLOCK_MONOTONIC, like every deadline here. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        pthread_condattr_destroy(&ca);
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    if (pthread_cond_init(&m->cv, &ca) != 0) {
        pthread_mutex_destroy(&m->mu);
        pthread_condattr_destroy(&ca);
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    pthread_condattr_destroy(&ca);
    m->sync_init = 1;
    if (pthread_create(&m->timer, NULL, timer_main, m) != 0) {
        rc = COUNCIL_EIO;
        goto out;
    }
    m->timer_started = 1;

    flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, m,
        MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        CONN_TIMEOUT_S, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    if (m->daemon == NULL) {
        (void)bad_listen(diag, listen, "could not start the HTTP server");
        rc = COUNCIL_EIO;
        goto out;
    }
    info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        (void)bad_listen(diag, listen, "could not learn the bound port");
        rc = COUNCIL_EIO;
        goto out;
    }
    /* The base URL names an address a client can reach: the wildcard
     * addresses become loopback. */
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

        if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
            snprintf(host, sizeof(host), "::1");
        else
            inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        snprintf(m->base_url, sizeof(m->base_url), "http://[%s]:%u/v1", host,
                 (unsigned)info->port);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

        if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
            snprintf(host, sizeof(host), "127.0.0.1");
        else
            inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        snprintf(m->base_url, sizeof(m->base_url), "http://%s:%u/v1", host,
                 (unsigned)info->port);
    }
    *out = m;
    m = NULL;

out:
    council_mockllm_close(m);
    return rc;
}

const char *
council_mockllm_base_url(const council_mockllm *m)
{
    return m == NULL ? NULL : m->base_url;
}

uint64_t
council_mockllm_requests(const council_mockllm *m)
{
    if (m == NULL)
        return 0;
    return atomic_load(&((council_mockllm *)m)->requests);
}

void
council_mockllm_close(council_mockllm *m)
{
    if (m == NULL)
        return;
    if (m->timer_started) {
        /* Resume every suspended connection (the timer thread does it on
         * its way out), then stop MHD, which closes them all. */
        pthread_mutex_lock(&m->mu);
        m->stopping = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->timer, NULL);
    }
    if (m->daemon != NULL)
        MHD_stop_daemon(m->daemon);
    if (m->sync_init) {
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
    }
    council__free(m->heap);
    council__mock_faults_free(m->faults);
    council__free(m);
}
