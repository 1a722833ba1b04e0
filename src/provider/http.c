/* SPDX-License-Identifier: MIT */
/*
 * libcurl's multi interface driven by a libuv loop, and the lifecycle of a
 * provider call on top of it.  Promises: on_done exactly once per started
 * call, never from inside council__chat_start or council__chat_cancel, and
 * always from a uv timer callback (so never inside a libcurl callback);
 * every timeout names itself; the API key never reaches a message; close
 * aborts what runs, closes every uv handle through its close callback and
 * leaves no socket behind.
 *
 * Method (curl's multi-uv example): CURLMOPT_SOCKETFUNCTION starts and stops
 * one uv_poll_t per socket, CURLMOPT_TIMERFUNCTION arms one uv_timer_t, and
 * both callbacks end in curl_multi_socket_action followed by a sweep of
 * curl_multi_info_read.  Each call owns one more uv_timer_t that serves, in
 * turn, for a deferred curl_multi_add_handle (when started from inside a
 * libcurl callback), for the first-byte / idle / total deadlines (re-armed
 * lazily: a chunk only stamps its time), and for delivering on_done on a
 * later turn once the verdict is known, and for the backoff wait before a
 * retry.  A retryable failure before any text (see classify) does not
 * reach on_done: deliver takes the handle out of the multi, resets the
 * attempt and re-adds the same easy handle after the backoff.  A provider
 * cfg with max_parallel > 0 gives its endpoint a slot count and a FIFO of
 * QUEUED calls; a slot is held from the start to on_done (backoffs
 * included) and handed on by pump.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "core/alloc.h"
#include "core/json_scan.h"
#include "provider/anthropic.h"
#include "provider/call.h"
#include "provider/json.h"

/*
 * A watcher of one of libcurl's sockets.  It watches its own duplicate of
 * the descriptor (own_fd), never libcurl's number: libcurl 7.88 closes a
 * socket that is still connecting without the close callback and only
 * then says CURL_POLL_REMOVE, by when that number may be another
 * thread's socket (ThreadSanitizer saw our epoll_ctl race the mock LLM's
 * accept4 on it, 2 runs in 30 of test_faults f9_cancel_before_start).  A
 * duplicate stays ours until we close it, whatever libcurl does with its
 * number; it costs a descriptor per connection.
 */
typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd; /* libcurl's number, for curl_multi_socket_action */
    int own_fd;       /* the duplicate the poll watches; closed with it */
    council__http *h;
    struct sock *prev, *next;
} sock;

size_t
council__http_sock_size(void)
{
    return sizeof(sock);
}

/* One provider endpoint with a max_parallel limit: its transfers in
 * flight (a call keeps its slot through its backoff waits) and its FIFO of
 * calls waiting for a slot. */
typedef struct council__endpoint {
    struct council__endpoint *next;
    int limit, active;
    council__chat *qhead, *qtail;
    char key[]; /* "<kind> <url>" */
} endpoint;

struct council__http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;     /* libcurl's own timeout */
    council__chat *calls; /* live calls (not yet delivered) */
    sock *socks;
    int depth; /* > 0 while inside curl_multi_socket_action */
    int closing;
    int torn;           /* multi cleaned up; handles closing */
    unsigned n_handles; /* uv handles open or closing */
    endpoint *eps;
    const council__provider_cfg *cur_cfg; /* inside council__chat_start */
    void (*closed)(void *ud);
    void *closed_ud;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

council_err
council__bytes_add(council__bytes *b, const char *s, size_t n, size_t max)
{
    size_t need, cap;
    char *p;

    if (n > max || b->len > max - n)
        return COUNCIL_EPARSE;
    need = b->len + n + 1;
    if (need > b->cap) {
        cap = b->cap == 0 ? 256 : b->cap;
        while (cap < need)
            cap *= 2;
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

/* Method: ASCII control bytes become spaces; a well-formed UTF-8 sequence
 * is copied whole or, when it does not fit, not at all; a sequence cut by
 * the end of src is dropped; any other byte >= 0x80 becomes '?'.  So dst is
 * always valid UTF-8, ready for a JSON string (jansson refuses anything
 * else) or a log line. */
void
council__sanitize(char *dst, size_t dst_size, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;

    if (dst_size == 0)
        return;
    while (i < n && o + 1 < dst_size) {
        int k;

        if (s[i] < 0x80) {
            dst[o++] = s[i] < 0x20 || s[i] == 0x7f ? ' ' : (char)s[i];
            i++;
            continue;
        }
        k = council__utf8_seq(s + i, n - i);
        if (k < 0)
            break;
        if (k == 0) {
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + (size_t)k >= dst_size)
            break;
        memcpy(dst + o, s + i, (size_t)k);
        o += (size_t)k;
        i += (size_t)k;
    }
    dst[o] = '\0';
}

/* Replaces every copy of secret in s (a buffer of size bytes). */
static void
scrub(char *s, size_t size, const char *secret)
{
    static const char rep[] = "[redacted]";
    char tmp[1024];
    size_t klen, i = 0, o = 0;

    if (secret == NULL || secret[0] == '\0' || size > sizeof(tmp))
        return;
    klen = strlen(secret);
    while (s[i] != '\0' && o + 1 < size) {
        if (strncmp(s + i, secret, klen) == 0) {
            size_t r = sizeof(rep) - 1;
            if (r > size - 1 - o)
                r = size - 1 - o;
            memcpy(tmp + o, rep, r);
            o += r;
            i += klen;
        } else {
            tmp[o++] = s[i++];
        }
    }
    tmp[o] = '\0';
    memcpy(s, tmp, o + 1);
}

/* Masks copies of secret inside a body buffer, in place. */
static void
mask(char *p, size_t n, const char *secret)
{
    size_t klen, i;

    if (secret == NULL || secret[0] == '\0')
        return;
    klen = strlen(secret);
    for (i = 0; i + klen <= n; i++)
        if (memcmp(p + i, secret, klen) == 0)
            memset(p + i, '*', klen);
}

/* ------------------------------------------------------------------ */
/* The uv side of the multi handle.                                    */
/* ------------------------------------------------------------------ */

static void check_multi_info(council__http *h);

static void
maybe_closed(council__http *h)
{
    void (*cb)(void *);
    void *ud;

    if (!h->torn || h->n_handles > 0)
        return;
    cb = h->closed;
    ud = h->closed_ud;
    council__free(h);
    if (cb != NULL)
        cb(ud);
}

static void
handle_closed(uv_handle_t *handle)
{
    council__http *h = handle->data;

    h->n_handles--;
    maybe_closed(h);
}

static void
sock_closed(uv_handle_t *handle)
{
    sock *sk = handle->data;
    council__http *h = sk->h;

    close(sk->own_fd); /* libuv is done with it */
    council__free(sk);
    h->n_handles--;
    maybe_closed(h);
}

static void
sock_close(council__http *h, sock *sk)
{
    uv_poll_stop(&sk->poll);
    if (sk->prev != NULL)
        sk->prev->next = sk->next;
    else
        h->socks = sk->next;
    if (sk->next != NULL)
        sk->next->prev = sk->prev;
    uv_close((uv_handle_t *)&sk->poll, sock_closed);
}

static void
socket_action(council__http *h, curl_socket_t fd, int flags)
{
    int running = 0;

    h->depth++;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    h->depth--;
    check_multi_info(h);
}

static void
on_poll(uv_poll_t *poll, int status, int events)
{
    sock *sk = poll->data;
    int flags = 0;

    /* On a socket error (libuv reports it and stops the handle) let libcurl
     * read and write: it then meets the real error ("Connection reset by
     * peer", "Connection refused") instead of a bare CURL_CSELECT_ERR. */
    if (status < 0)
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    socket_action(sk->h, sk->fd, flags);
}

/* socket_cb could not watch a socket.  Returning -1 would mark the whole
 * multi handle dead: every transfer on it fails from then on, and libcurl
 * 7.88 then crashes in multi_done on a transfer that has no connection
 * yet.  So only the transfer that asked fails (on_done comes on a later
 * turn, when deliver takes it out of the multi and libcurl closes the
 * socket). */
static int
socket_failed(CURL *easy, council_err err, const char *what)
{
    council__chat *c = NULL;

    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c) == CURLE_OK &&
        c != NULL && council__chat_running(c)) {
        council__chat_fail(c, COUNCIL__CALL_CONNECT, "%s", what);
        if (err == COUNCIL_ENOMEM)
            c->res.err = COUNCIL_ENOMEM;
    }
    return 0;
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    council__http *h = userp;
    sock *sk = socketp;
    int events = 0;

    if (h->torn)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL) {
            curl_multi_assign(h->multi, fd, NULL);
            sock_close(h, sk);
        }
        return 0;
    }
    if (sk == NULL) {
        sk = council__calloc(1, sizeof(*sk));
        if (sk == NULL)
            return socket_failed(easy, COUNCIL_ENOMEM,
                                 "out of memory for a socket watcher");
        sk->own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (sk->own_fd < 0) {
            council__free(sk);
            return socket_failed(easy, COUNCIL_EIO,
                                 "cannot watch the connection's socket (no "
                                 "descriptor left?)");
        }
        if (uv_poll_init_socket(h->loop, &sk->poll, sk->own_fd) != 0) {
            close(sk->own_fd);
            council__free(sk);
            return socket_failed(easy, COUNCIL_EIO,
                                 "cannot watch the connection's socket");
        }
        sk->fd = fd;
        sk->h = h;
        sk->poll.data = sk;
        h->n_handles++;
        sk->next = h->socks;
        if (h->socks != NULL)
            h->socks->prev = sk;
        h->socks = sk;
        curl_multi_assign(h->multi, fd, sk);
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (uv_poll_start(&sk->poll, events, on_poll) != 0)
        return socket_failed(easy, COUNCIL_EIO,
                             "cannot watch the connection's socket");
    return 0;
}

/*
 * libcurl closes a connection's socket, then (sometimes, when it drops the
 * connection while taking a transfer out) tells socket_cb CURL_POLL_REMOVE
 * for it.  Where it closes through this callback, the watch stops first and
 * a later REMOVE finds none; where it does not (a socket still connecting,
 * in libcurl 7.88), the watcher's own duplicate (struct sock) keeps the
 * late REMOVE off any other socket's number.
 */
static int
close_cb(void *clientp, curl_socket_t fd)
{
    council__http *h = clientp;
    sock *sk;

    for (sk = h->socks; sk != NULL; sk = sk->next) {
        if (sk->fd == fd) {
            if (h->multi != NULL)
                curl_multi_assign(h->multi, fd, NULL);
            sock_close(h, sk);
            break;
        }
    }
    return close(fd);
}

static void
on_curl_timer(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    council__http *h = userp;

    (void)multi;
    if (h->torn)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

council_err
council__http_open(uv_loop_t *loop, council__http **out)
{
    council__http *h;

    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return COUNCIL_EHTTP;
    h = council__calloc(1, sizeof(*h));
    if (h == NULL)
        return COUNCIL_ENOMEM;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        council__free(h);
        return COUNCIL_ENOMEM;
    }
    h->loop = loop;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->n_handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *out = h;
    return COUNCIL_OK;
}

/* Only with no call left and outside libcurl's callbacks. */
static void
teardown(council__http *h)
{
    if (h->torn || h->calls != NULL || h->depth > 0)
        return;
    h->torn = 1;
    /* Stop watching sockets before libcurl closes them. */
    while (h->socks != NULL) {
        curl_multi_assign(h->multi, h->socks->fd, NULL);
        sock_close(h, h->socks);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->eps != NULL) {
        endpoint *ep = h->eps;
        h->eps = ep->next;
        council__free(ep);
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
}

void
council__http_close(council__http *h, void (*closed)(void *ud), void *ud)
{
    council__chat *c;

    if (h == NULL || h->closing)
        return;
    h->closing = 1;
    h->closed = closed;
    h->closed_ud = ud;
    for (c = h->calls; c != NULL; c = c->next)
        if (council__chat_running(c))
            council__chat_fail(c, COUNCIL__CALL_CANCELLED,
                               "cancelled: the HTTP client is closing");
    teardown(h);
}

/* ------------------------------------------------------------------ */
/* The call lifecycle.                                                 */
/* ------------------------------------------------------------------ */

static void on_call_timer(uv_timer_t *t);
static void arm(council__chat *c);
static void unqueue(council__chat *c);
static int sse_event(const char *event, const char *data, size_t len, void *ud);

/* The call clock: the real monotonic time, not the loop's cached uv_now()
 * (stale until the loop's next turn, which would make deadlines early).
 * A uv timer that fires early anyway is simply re-armed. */
static uint64_t
now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

int
council__chat_running(const council__chat *c)
{
    return c->state == COUNCIL__CHAT_RUNNING ||
           c->state == COUNCIL__CHAT_PENDING_ADD ||
           c->state == COUNCIL__CHAT_QUEUED ||
           c->state == COUNCIL__CHAT_BACKOFF;
}

/* ---- the per-endpoint queue (max_parallel) ---- */

static void
unqueue(council__chat *c)
{
    endpoint *ep = c->ep;

    if (c->qprev != NULL)
        c->qprev->qnext = c->qnext;
    else
        ep->qhead = c->qnext;
    if (c->qnext != NULL)
        c->qnext->qprev = c->qprev;
    else
        ep->qtail = c->qprev;
    c->qprev = c->qnext = NULL;
}

/* The endpoint of cfg (made on first use), or NULL without a limit. */
static council_err
endpoint_of(council__http *h, const council__provider_cfg *cfg, const char *url,
            endpoint **out)
{
    char kind[16];
    endpoint *ep;
    size_t klen, ulen;

    *out = NULL;
    if (cfg == NULL || cfg->max_parallel <= 0)
        return COUNCIL_OK;
    klen = (size_t)snprintf(kind, sizeof(kind), "%d ", (int)cfg->kind);
    ulen = strlen(url);
    for (ep = h->eps; ep != NULL; ep = ep->next)
        if (strncmp(ep->key, kind, klen) == 0 &&
            strcmp(ep->key + klen, url) == 0)
            break;
    if (ep == NULL) {
        ep = council__calloc(1, sizeof(*ep) + klen + ulen + 1);
        if (ep == NULL)
            return COUNCIL_ENOMEM;
        memcpy(ep->key, kind, klen);
        memcpy(ep->key + klen, url, ulen + 1);
        ep->limit = cfg->max_parallel;
        ep->next = h->eps;
        h->eps = ep;
    } else if (cfg->max_parallel < ep->limit) {
        ep->limit = cfg->max_parallel; /* shared endpoint: the smallest */
    }
    *out = ep;
    return COUNCIL_OK;
}

/* The call's clocks start when it leaves the queue (or starts at once). */
static void
clock_start(council__chat *c)
{
    c->t0_ns = uv_hrtime();
    c->t0_ms = c->t0_ns / 1000000u;
}

/* A slot came free: start the calls at the head of the queue, each on its
 * own timer's next run (never from inside libcurl). */
static void
pump(council__http *h, endpoint *ep)
{
    while (!h->closing && ep->qhead != NULL && ep->active < ep->limit) {
        council__chat *c = ep->qhead;

        unqueue(c);
        ep->active++;
        c->has_slot = 1;
        clock_start(c);
        c->state = COUNCIL__CHAT_PENDING_ADD;
        uv_timer_start(&c->timer, on_call_timer, 0, 0);
    }
}

static council_err
kind_err(council__call_errkind kind)
{
    switch (kind) {
    case COUNCIL__CALL_OK:
        return COUNCIL_OK;
    case COUNCIL__CALL_CONNECT:
        return COUNCIL_EIO;
    case COUNCIL__CALL_TIMEOUT:
        return COUNCIL_ETIMEDOUT;
    case COUNCIL__CALL_CANCELLED:
        return COUNCIL_ECANCELED;
    case COUNCIL__CALL_HTTP:
    case COUNCIL__CALL_STREAM:
    case COUNCIL__CALL_PROVIDER:
        return COUNCIL_EHTTP;
    }
    return COUNCIL_EINTERNAL;
}

/* The verdict is in: schedule on_done for the call timer's next run. */
static void
finish(council__chat *c)
{
    if (c->state == COUNCIL__CHAT_QUEUED)
        unqueue(c);
    c->state = COUNCIL__CHAT_FINISHING;
    uv_timer_start(&c->timer, on_call_timer, 0, 0);
}

/* The call's failure words, allocated on first use; res.message and
 * res.error_type then point into them.  NULL when out of memory. */
static council__chat_why *
chat_why(council__chat *c)
{
    if (c->why == NULL) {
        c->why = council__calloc(1, sizeof(*c->why));
        if (c->why == NULL)
            return NULL;
    }
    c->res.message = c->why->message;
    c->res.error_type = c->why->error_type;
    return c->why;
}

static void vfail(council__chat *c, council__call_errkind kind,
                  const char *type, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void
vfail(council__chat *c, council__call_errkind kind, const char *type,
      const char *fmt, va_list ap)
{
    council__chat_why *w;

    if (!council__chat_running(c))
        return;
    c->res.kind = kind;
    c->res.err = kind_err(kind);
    w = chat_why(c);
    if (w != NULL) {
        vsnprintf(w->message, sizeof(w->message), fmt, ap);
        snprintf(w->error_type, sizeof(w->error_type), "%s",
                 type != NULL ? type : "");
    } else {
        c->res.message = "out of memory (for the error message)";
    }
    finish(c);
}

void
council__chat_fail(council__chat *c, council__call_errkind kind,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(c, kind, NULL, fmt, ap);
    va_end(ap);
}

void
council__chat_fail_typed(council__chat *c, council__call_errkind kind,
                         const char *type, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(c, kind, type, fmt, ap);
    va_end(ap);
}

void
council__chat_succeed(council__chat *c)
{
    if (!council__chat_running(c))
        return;
    c->res.kind = COUNCIL__CALL_OK;
    c->res.err = COUNCIL_OK;
    finish(c);
}

/* Past the response's first bytes libcurl never reads the request body
 * again (it re-sends a request only on a reused connection that died
 * before any byte came back; we follow no redirect and negotiate no
 * auth): once libcurl has sent all of it, the body can go, unless another
 * attempt of ours may need it.  A rebuildable request lets it go at the
 * first byte of a 2xx answer (rebuild_body makes it again for a retry);
 * any other once text has streamed (then no attempt follows: maybe_retry).
 * A call waiting on a slow model, or a thinking one, then does not hold
 * its prompt. */
static void
release_body(council__chat *c)
{
    curl_off_t up = -1;

    if (curl_easy_getinfo(c->easy, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK ||
        up < 0 || (uint64_t)up < c->body_len)
        return;
    council__free(c->body);
    c->body = NULL;
}

/* Builds the request body again for another attempt (the call is out of
 * the multi handle). */
static council_err
rebuild_body(council__chat *c)
{
    council__chat_req req;
    council_message *msgs = NULL;
    char *scratch = NULL;
    size_t n = 0;
    council_err rc;
    CURLcode cc;

    if (!c->rebuildable || c->cbs.messages == NULL ||
        c->ops->build_body == NULL)
        return COUNCIL_EINVAL;
    if (c->cbs.messages(c->ud, &msgs, &n, &scratch) != 0)
        return COUNCIL_ENOMEM;
    memset(&req, 0, sizeof(req));
    req.model = c->model;
    req.messages = msgs;
    req.n_messages = n;
    req.max_tokens = c->max_tokens;
    rc = c->ops->build_body(&req, &c->body);
    council__free(msgs);
    council__free(scratch);
    if (rc != COUNCIL_OK)
        return rc;
    c->body_len = strlen(c->body);
    cc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                              (curl_off_t)c->body_len);
    return cc == CURLE_OK ? COUNCIL_OK : COUNCIL_ENOMEM;
}

int
council__chat_text(council__chat *c, const char *s, size_t n)
{
    council_err rc;

    if (!council__chat_running(c))
        return 0;
    if (n == 0)
        return 1;
    rc = council__bytes_add(&c->text, s, n, COUNCIL__TEXT_MAX);
    if (rc != COUNCIL_OK) {
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           rc == COUNCIL_ENOMEM ? "out of memory for the answer"
                                                : "answer longer than %u bytes",
                           COUNCIL__TEXT_MAX);
        if (rc == COUNCIL_ENOMEM)
            c->res.err = COUNCIL_ENOMEM;
        return 0;
    }
    if (c->body != NULL)
        release_body(c);
    if (c->cbs.on_delta != NULL)
        c->cbs.on_delta(s, n, c->ud);
    return council__chat_running(c);
}

const char *
council__chat_text_so_far(const council__chat *c, size_t *len)
{
    *len = c->text.p != NULL ? c->text.len : 0;
    return c->text.p != NULL ? c->text.p : "";
}

void
council__chat_cancel(council__chat *c)
{
    if (c != NULL)
        council__chat_fail(c, COUNCIL__CALL_CANCELLED, "cancelled");
}

static void
call_free(council__chat *c)
{
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    if (c->auth_node.data != NULL) {
        explicit_bzero(c->auth_node.data, strlen(c->auth_node.data));
        council__free(c->auth_node.data);
    }
    council__free(c->url);
    council__free(c->body);
    if (c->secret != NULL) {
        explicit_bzero(c->secret, strlen(c->secret));
        council__free(c->secret);
    }
    council__sse_free(c->sse);
    council__free(c->text.p);
    council__free(c->raw.p);
    council__free(c->finish_reason);
    council__free(c->why);
    council__free(c);
}

static void
call_closed(uv_handle_t *handle)
{
    council__chat *c = handle->data;
    council__http *h = c->h;

    call_free(c);
    h->n_handles--;
    maybe_closed(h);
}

/* ---- retries ---- */

uint64_t
council__backoff_ms(uint64_t base_ms, uint64_t cap_ms, int retry, uint64_t *rng)
{
    uint64_t ceil, x = *rng != 0 ? *rng : 0x9E3779B97F4A7C15ull;
    int i;

    if (base_ms == 0)
        base_ms = 500;
    if (cap_ms == 0)
        cap_ms = 20000;
    ceil = base_ms;
    for (i = 1; i < retry && ceil < cap_ms; i++)
        ceil *= 2;
    if (ceil > cap_ms)
        ceil = cap_ms;
    /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return x % (ceil + 1);
}

static int
contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);

    for (; *s != '\0'; s++)
        if (strncasecmp(s, needle, n) == 0)
            return 1;
    return 0;
}

/* An exhausted quota, billing or spend limit: no retry can help. */
static int
is_quota(const council__chat_result *r)
{
    static const char *const words[] = {"insufficient_quota",
                                        "exceeded your current quota",
                                        "billing",
                                        "spend limit",
                                        "spending limit",
                                        "credit balance",
                                        "insufficient credits",
                                        "insufficient_credits",
                                        "payment required"};
    size_t i;

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (contains_ci(r->error_type, words[i]) ||
            contains_ci(r->message, words[i]))
            return 1;
    return 0;
}

/* The class of an HTTP status (or an error code in a stream) into label;
 * returns 1 if retryable. */
static int
status_class(long st, char *label, size_t size)
{
    static const struct {
        long st;
        const char *label;
        int retry;
    } tab[] = {
        {400, "bad request", 0},
        {401, "unauthorized", 0},
        {402, "payment required", 0},
        {403, "forbidden", 0},
        {404, "not found", 0},
        {408, "request timeout", 1},
        {409, "conflict", 1},
        {413, "request too large", 0},
        {422, "unprocessable", 0},
        {425, "too early", 1},
        {429, "rate limited", 1},
        {501, "not implemented", 0},
        {505, "HTTP version not supported", 0},
        {529, "overloaded", 1},
        {503, "unavailable", 1},
    };
    size_t i;

    for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (tab[i].st == st) {
            snprintf(label, size, "%s", tab[i].label);
            return tab[i].retry;
        }
    if (st >= 500 && st <= 599) {
        snprintf(label, size, "server error");
        return 1;
    }
    snprintf(label, size,
             st >= 400 && st < 500 ? "client error" : "unexpected status");
    return 0;
}

/* The failure's class (label) and whether it is retryable (DESIGN 5). */
static int
classify(const council__chat *c, char *label, size_t size)
{
    const council__chat_result *r = &c->res;
    const char *t = r->error_type;

    switch (r->kind) {
    case COUNCIL__CALL_CONNECT:
        snprintf(label, size, "connection failed");
        return 1;
    case COUNCIL__CALL_TIMEOUT:
        snprintf(label, size, c->total_expired ? "total timeout" : "timeout");
        return !c->total_expired;
    case COUNCIL__CALL_HTTP:
        if (is_quota(r)) {
            snprintf(label, size, "quota or spend limit");
            return 0;
        }
        return status_class(r->http_status, label, size);
    case COUNCIL__CALL_STREAM:
        snprintf(label, size,
                 c->broke ? "stream broken off" : "malformed stream");
        return c->broke;
    case COUNCIL__CALL_PROVIDER:
        if (is_quota(r)) {
            snprintf(label, size, "quota or spend limit");
            return 0;
        }
        if (t[0] >= '1' && t[0] <= '9' && strspn(t, "0123456789") == 3 &&
            t[3] == '\0')
            return status_class(strtol(t, NULL, 10), label, size);
        snprintf(label, size, "provider error");
        return contains_ci(t, "overloaded") || contains_ci(t, "rate_limit") ||
               contains_ci(t, "server_error") || contains_ci(t, "api_error") ||
               contains_ci(t, "timeout") || contains_ci(t, "unavailable");
    case COUNCIL__CALL_OK:
    case COUNCIL__CALL_CANCELLED:
        break;
    }
    label[0] = '\0';
    return 0;
}

/* Puts the class and the attempts into the message: "HTTP 429 (rate
 * limited; retryable; gave up after 3 attempts): <provider message>", or
 * for the other kinds "<message> (<class>; not retryable)". */
static void
annotate(council__chat *c, const char *label, const char *why)
{
    council__chat_result *r = &c->res;
    council__chat_why *w = c->why;
    char note[200], old[sizeof(w->message)];
    const char *rest;
    int n = c->attempts, len;

    if (w == NULL) /* no words to annotate: out of memory */
        return;

    if (why != NULL)
        snprintf(note, sizeof(note), "%s; %s", label, why);
    else if (!r->retryable && n > 1)
        snprintf(note, sizeof(note), "%s; not retryable; after %d attempts",
                 label, n);
    else if (!r->retryable)
        snprintf(note, sizeof(note), "%s; not retryable", label);
    else
        snprintf(note, sizeof(note),
                 "%s; retryable; gave up after %d "
                 "attempt%s",
                 label, n, n == 1 ? "" : "s");
    memcpy(old, w->message, sizeof(old));
    if (r->kind == COUNCIL__CALL_HTTP && strncmp(old, "HTTP ", 5) == 0) {
        rest = old + 5 + strspn(old + 5, "0123456789");
        if (rest[0] == ':')
            rest++;
        rest += strspn(rest, " ");
        len = snprintf(w->message, sizeof(w->message), "HTTP %ld (%s)%s%s",
                       r->http_status, note, rest[0] != '\0' ? ": " : "", rest);
    } else {
        len = snprintf(w->message, sizeof(w->message), "%s (%s)", old, note);
    }
    if (len < 0) /* cut to the buffer otherwise, which is fine */
        memcpy(w->message, old, sizeof(old));
}

/* Forgets the failed attempt's response. */
static council_err
reset_attempt(council__chat *c)
{
    council__sse *sse = NULL;
    council_err rc;

    rc = council__sse_new(COUNCIL__SSE_MAX_LINE, sse_event, c, &sse);
    if (rc != COUNCIL_OK)
        return rc;
    council__sse_free(c->sse);
    c->sse = sse;
    memset(&c->res, 0, sizeof(c->res));
    c->res.message = "";
    c->res.error_type = "";
    if (c->why != NULL)
        memset(c->why, 0, sizeof(*c->why));
    c->errbuf[0] = '\0';
    c->got_byte = 0;
    c->mode = COUNCIL__BODY_UNKNOWN;
    c->status = 0;
    c->retry_after_ms = 0;
    c->raw.len = 0;
    if (c->raw.p != NULL)
        c->raw.p[0] = '\0';
    council__free(c->finish_reason);
    c->finish_reason = NULL;
    c->done_seen = 0;
    memset(&c->usage, 0, sizeof(c->usage));
    c->usage_parts = 0;
    c->broke = 0;
    c->total_expired = 0;
    if (c->ops->on_restart != NULL)
        c->ops->on_restart(c);
    return COUNCIL_OK;
}

/* The attempt failed (the transfer is out of the multi handle): either
 * schedule the next attempt (returns 1) or label the failure for on_done
 * (returns 0). */
static int
maybe_retry(council__chat *c)
{
    council__chat_result *r = &c->res;
    char label[64], why[160];
    uint64_t delay, now, far;

    if (r->kind == COUNCIL__CALL_CANCELLED || r->kind == COUNCIL__CALL_OK)
        return 0;
    r->retryable = classify(c, label, sizeof(label));
    if (!r->retryable) {
        annotate(c, label, NULL);
        return 0;
    }
    if (c->text.len > 0) {
        annotate(c, label, "not retried: text had streamed");
        return 0;
    }
    if (c->retries_left <= 0 || c->h->closing || r->err == COUNCIL_ENOMEM) {
        annotate(c, label, NULL);
        return 0;
    }
    delay = council__backoff_ms(c->backoff_base_ms, c->backoff_max_ms,
                                c->attempts, &c->rng);
    far = c->backoff_max_ms > 60000 ? c->backoff_max_ms : 60000;
    if (r->retry_after_ms > far) {
        snprintf(why, sizeof(why),
                 "retryable; gave up after %d attempt%s: "
                 "Retry-After %llu ms is too far",
                 c->attempts, c->attempts == 1 ? "" : "s",
                 (unsigned long long)r->retry_after_ms);
        annotate(c, label, why);
        return 0;
    }
    if (r->retry_after_ms > delay)
        delay = r->retry_after_ms;
    now = now_ms();
    if (c->total_timeout_ms > 0 &&
        now + delay >= c->t0_ms + c->total_timeout_ms) {
        snprintf(why, sizeof(why),
                 "retryable; gave up after %d attempt%s: "
                 "the next wait (%llu ms) would pass the total timeout",
                 c->attempts, c->attempts == 1 ? "" : "s",
                 (unsigned long long)delay);
        annotate(c, label, why);
        return 0;
    }
    if (c->body == NULL) { /* let go at a 2xx answer's first byte */
        council_err rc = rebuild_body(c);
        if (rc != COUNCIL_OK) {
            snprintf(why, sizeof(why),
                     "not retried: the request could not be built again (%s)",
                     council_strerror(rc));
            annotate(c, label, why);
            return 0;
        }
    }
    if (reset_attempt(c) != COUNCIL_OK) {
        annotate(c, label, NULL);
        return 0;
    }
    c->retries_left--;
    c->state = COUNCIL__CHAT_BACKOFF;
    uv_timer_start(&c->timer, on_call_timer, delay, 0);
    return 1;
}

static void
deliver(council__chat *c)
{
    council__http *h = c->h;
    council__chat_result *r = &c->res;

    if (c->in_multi) {
        curl_multi_remove_handle(h->multi, c->easy);
        c->in_multi = 0;
    }
    if (r->err != COUNCIL_OK && maybe_retry(c))
        return;
    c->state = COUNCIL__CHAT_DONE;
    if (c->has_slot) {
        c->has_slot = 0;
        c->ep->active--;
        pump(h, c->ep);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;

    if (r->http_status == 0)
        r->http_status = c->status;
    if (r->err == COUNCIL_OK) {
        r->text = c->text.p != NULL ? c->text.p : "";
        r->text_len = c->text.len;
        r->finish_reason = c->finish_reason;
        r->usage = c->usage;
    } else {
        r->text = "";
        r->text_len = 0;
        r->finish_reason = NULL;
        r->usage = c->usage;
        /* What a failed call reported is what it had used so far. */
        r->usage.partial = r->usage.known;
    }
    if (c->got_byte)
        r->first_byte_ms = (c->first_byte_ns - c->attempt_t0_ns) / 1000000u;
    r->latency_ms = c->t0_ns != 0 ? (uv_hrtime() - c->t0_ns) / 1000000u : 0;
    r->attempts = c->attempts;
    if (c->why != NULL) {
        scrub(c->why->message, sizeof(c->why->message), c->secret);
        scrub(c->why->error_type, sizeof(c->why->error_type), c->secret);
    }

    if (c->cbs.on_done != NULL)
        c->cbs.on_done(r, c->ud);
    uv_close((uv_handle_t *)&c->timer, call_closed);
    if (h->closing)
        teardown(h);
}

/* One more transfer begins: the first-byte deadline counts from here. */
static void
attempt_start(council__chat *c)
{
    c->attempts++;
    c->attempt_t0_ns = uv_hrtime();
    c->attempt_t0_ms = c->attempt_t0_ns / 1000000u;
}

static void
add_to_multi(council__chat *c)
{
    attempt_start(c);
    if (curl_multi_add_handle(c->h->multi, c->easy) != CURLM_OK) {
        council__chat_fail(c, COUNCIL__CALL_CONNECT,
                           "could not add the transfer to libcurl");
        c->res.err = COUNCIL_ENOMEM;
        return;
    }
    c->in_multi = 1;
    c->state = COUNCIL__CHAT_RUNNING;
    arm(c);
}

/* The earliest deadline still ahead of the call, re-armed on the timer. */
static void
arm(council__chat *c)
{
    uint64_t now = now_ms(), d = UINT64_MAX;

    if (c->total_timeout_ms > 0)
        d = c->t0_ms + c->total_timeout_ms;
    if (!c->got_byte && c->first_byte_timeout_ms > 0 &&
        c->attempt_t0_ms + c->first_byte_timeout_ms < d)
        d = c->attempt_t0_ms + c->first_byte_timeout_ms;
    if (c->got_byte && c->idle_timeout_ms > 0 &&
        c->last_byte_ms + c->idle_timeout_ms < d)
        d = c->last_byte_ms + c->idle_timeout_ms;
    if (d == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_call_timer, d > now ? d - now : 0, 0);
}

static void
check_deadlines(council__chat *c)
{
    uint64_t now = now_ms();

    if (c->total_timeout_ms > 0 && now >= c->t0_ms + c->total_timeout_ms) {
        c->total_expired = 1;
        council__chat_fail(c, COUNCIL__CALL_TIMEOUT,
                           "total timeout: no complete answer within %llu ms",
                           (unsigned long long)c->total_timeout_ms);
    } else if (!c->got_byte && c->first_byte_timeout_ms > 0 &&
               now >= c->attempt_t0_ms + c->first_byte_timeout_ms)
        council__chat_fail(c, COUNCIL__CALL_TIMEOUT,
                           "first-byte timeout: no response byte within "
                           "%llu ms",
                           (unsigned long long)c->first_byte_timeout_ms);
    else if (c->got_byte && c->idle_timeout_ms > 0 &&
             now >= c->last_byte_ms + c->idle_timeout_ms)
        council__chat_fail(c, COUNCIL__CALL_TIMEOUT,
                           "idle timeout: no data for %llu ms",
                           (unsigned long long)c->idle_timeout_ms);
    else
        arm(c);
}

/* State x event: the call timer fired. */
static void
on_call_timer(uv_timer_t *t)
{
    council__chat *c = t->data;

    switch (c->state) {
    case COUNCIL__CHAT_PENDING_ADD:
    case COUNCIL__CHAT_BACKOFF:
        add_to_multi(c);
        break;
    case COUNCIL__CHAT_RUNNING:
        check_deadlines(c);
        break;
    case COUNCIL__CHAT_FINISHING:
        deliver(c);
        break;
    case COUNCIL__CHAT_DONE:
    case COUNCIL__CHAT_QUEUED:
        break; /* nop: closing, or waiting for pump */
    }
}

/* A non-2xx answer, its body read (up to the cap). */
static void
http_error(council__chat *c)
{
    char msg[400] = "", type[64] = "";

    c->res.http_status = c->status;
    c->res.retry_after_ms = c->retry_after_ms;
    if (c->raw.len > 0) {
        mask(c->raw.p, c->raw.len, c->secret);
        c->ops->on_error_body(c, c->raw.p, c->raw.len, msg, sizeof(msg), type,
                              sizeof(type));
    }
    if (msg[0] != '\0') {
        council__chat_fail_typed(c, COUNCIL__CALL_HTTP, type, "HTTP %ld: %s",
                                 c->status, msg);
    } else {
        const char *reason = c->why != NULL ? c->why->reason : "";

        council__chat_fail_typed(c, COUNCIL__CALL_HTTP, type, "HTTP %ld%s%.96s",
                                 c->status, reason[0] != '\0' ? " " : "",
                                 reason);
    }
}

static int
is_2xx(long status)
{
    return status >= 200 && status < 300;
}

/* The transfer ended (libcurl's verdict in code). */
static void
transfer_done(council__chat *c, CURLcode code)
{
    if (code == CURLE_OK ||
        (code == CURLE_WRITE_ERROR && c->mode == COUNCIL__BODY_ERROR)) {
        if (c->status == 0)
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
        if (!is_2xx(c->status)) {
            http_error(c);
            return;
        }
        switch (c->mode) {
        case COUNCIL__BODY_SSE:
            c->ops->on_eof(c, 1);
            return;
        case COUNCIL__BODY_JSON:
            c->ops->on_json(c, c->raw.p != NULL ? c->raw.p : "", c->raw.len);
            return;
        default:
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "empty response body (HTTP %ld)", c->status);
            return;
        }
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
        /* Only the connect timeout is libcurl's; the others are ours. */
        council__chat_fail(c, COUNCIL__CALL_TIMEOUT,
                           "connect timeout: no connection within %llu ms "
                           "(%s)",
                           (unsigned long long)c->connect_timeout_ms,
                           c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
        return;
    }
    if (c->got_byte && c->mode == COUNCIL__BODY_SSE) {
        c->broke = 1;
        c->ops->on_eof(c, 0);
        return;
    }
    if (c->got_byte && c->mode == COUNCIL__BODY_ERROR) {
        http_error(c);
        return;
    }
    c->broke = 1;
    if (c->got_byte)
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "response broken off (HTTP %ld): %s", c->status,
                           c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
    else
        council__chat_fail(c, COUNCIL__CALL_CONNECT, "%s",
                           c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
}

static void
check_multi_info(council__http *h)
{
    CURLMsg *msg;
    int pending;

    if (h->torn)
        return;
    while ((msg = curl_multi_info_read(h->multi, &pending)) != NULL) {
        council__chat *c = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (c != NULL && c->state == COUNCIL__CHAT_RUNNING)
            transfer_done(c, msg->data.result);
    }
}

static int
sse_event(const char *event, const char *data, size_t len, void *ud)
{
    council__chat *c = ud;

    c->ops->on_event(c, event, data, len);
    return !council__chat_running(c);
}

static int
prefix_ci(const char *s, const char *prefix)
{
    return s != NULL && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The first body byte: decide how to read the body. */
static int
first_byte(council__chat *c, const char *p, size_t n)
{
    char *ct = NULL;

    c->got_byte = 1;
    c->first_byte_ns = uv_hrtime();
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (!is_2xx(c->status)) {
        c->mode = COUNCIL__BODY_ERROR;
    } else if (prefix_ci(ct, "text/event-stream")) {
        c->mode = COUNCIL__BODY_SSE;
    } else if (prefix_ci(ct, "application/json")) {
        c->mode = COUNCIL__BODY_JSON;
    } else if (ct == NULL) {
        /* No Content-Type: look at the body. */
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\r' || p[i] == '\n'))
            i++;
        c->mode = i < n && p[i] == '{' ? COUNCIL__BODY_JSON : COUNCIL__BODY_SSE;
    } else {
        char shown[64];
        council__sanitize(shown, sizeof(shown), ct, strlen(ct));
        council__chat_fail(c, COUNCIL__CALL_STREAM,
                           "unexpected Content-Type \"%s\" (HTTP %ld); "
                           "expected text/event-stream",
                           shown, c->status);
        c->res.http_status = c->status;
        return 0;
    }
    arm(c); /* from the first-byte deadline to the idle one */
    return 1;
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    council__chat *c = ud;
    size_t n = size * nmemb;
    council_err rc;

    if (c->state == COUNCIL__CHAT_FINISHING && c->res.err == COUNCIL_OK)
        return n; /* after the end ([DONE]): drain, keep the connection */
    if (c->state != COUNCIL__CHAT_RUNNING)
        return 0; /* aborts the transfer */
    if (!c->got_byte) {
        if (!first_byte(c, p, n))
            return 0;
        if (c->rebuildable && c->body != NULL && c->mode != COUNCIL__BODY_ERROR)
            release_body(c);
    }
    c->last_byte_ms = now_ms();
    switch (c->mode) {
    case COUNCIL__BODY_ERROR:
        /* Keep the start of an error body; stop reading at the cap. */
        if (c->raw.len + n > COUNCIL__ERR_MAX_BODY) {
            council__bytes_add(&c->raw, p, COUNCIL__ERR_MAX_BODY - c->raw.len,
                               COUNCIL__ERR_MAX_BODY);
            return 0;
        }
        if (council__bytes_add(&c->raw, p, n, COUNCIL__ERR_MAX_BODY) !=
            COUNCIL_OK)
            return 0;
        return n;
    case COUNCIL__BODY_JSON:
        rc = council__bytes_add(&c->raw, p, n, COUNCIL__JSON_MAX_BODY);
        if (rc != COUNCIL_OK) {
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               rc == COUNCIL_ENOMEM
                                   ? "out of memory for the JSON body"
                                   : "JSON body larger than %u bytes",
                               COUNCIL__JSON_MAX_BODY);
            return 0;
        }
        return n;
    default:
        rc = council__sse_feed(c->sse, p, n);
        if (rc == COUNCIL_EPARSE)
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "event stream line or event longer than "
                               "%u bytes",
                               COUNCIL__SSE_MAX_LINE);
        else if (rc == COUNCIL_ENOMEM)
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "out of memory reading the event stream");
        if (c->state == COUNCIL__CHAT_FINISHING && c->res.err == COUNCIL_OK)
            return n; /* the end was seen: let libcurl finish the response */
        return council__chat_running(c) ? n : 0;
    }
}

/* Parses a Retry-After value: delta-seconds or an HTTP date. */
static uint64_t
parse_retry_after(const char *v)
{
    char *end;
    long long secs;
    time_t when, now;

    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        secs = strtoll(v, &end, 10);
        if (secs < 0 || secs > 86400LL * 365)
            return 0;
        return (uint64_t)secs * 1000u;
    }
    when = curl_getdate(v, NULL);
    now = time(NULL);
    if (when == (time_t)-1 || when <= now)
        return 0;
    return (uint64_t)(when - now) * 1000u;
}

static size_t
header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    council__chat *c = ud;
    size_t n = size * nmemb;
    char line[256];

    council__sanitize(line, sizeof(line), p, n);
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue, say): start over. */
        const char *sp = strchr(line, ' ');
        council__chat_why *w;

        c->retry_after_ms = 0;
        if (c->why != NULL)
            c->why->reason[0] = '\0';
        /* Only an error's reason phrase is kept (the message may name
         * it), in the words that a failure allocates anyway. */
        if (sp != NULL && (sp[1] == '1' || sp[1] == '2'))
            sp = NULL;
        if (sp != NULL)
            sp = strchr(sp + 1, ' ');
        if (sp != NULL && (w = chat_why(c)) != NULL) {
            size_t len = strlen(sp + 1);
            while (len > 0 && sp[len] == ' ')
                len--;
            council__sanitize(w->reason, sizeof(w->reason), sp + 1, len);
        }
    } else if (strncasecmp(line, "retry-after:", 12) == 0) {
        if (c->retry_after_ms == 0)
            c->retry_after_ms = parse_retry_after(line + 12);
    } else if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
        /* OpenAI's and Anthropic's finer hint; it wins. */
        long long ms = strtoll(line + 15, NULL, 10);
        if (ms > 0 && ms < 86400LL * 365 * 1000)
            c->retry_after_ms = (uint64_t)ms;
    }
    return n;
}

council_err
council__chat_new(council__http *h, const council__chat_ops *ops,
                  const council__chat_req *req, const council__chat_cbs *cbs,
                  void *ud, council__chat **out)
{
    council__chat *c;
    council_err rc = COUNCIL_OK;

    *out = NULL;
    c = council__calloc(1, sizeof(*c));
    if (c == NULL)
        return COUNCIL_ENOMEM;
    c->h = h;
    c->ops = ops;
    c->cbs = *cbs;
    c->ud = ud;
    c->connect_timeout_ms = req->connect_timeout_ms;
    c->first_byte_timeout_ms = req->first_byte_timeout_ms;
    c->idle_timeout_ms = req->idle_timeout_ms;
    c->total_timeout_ms = req->total_timeout_ms;
    c->retries_left = req->retries > 0 ? req->retries : 0;
    c->rebuildable = req->rebuildable && cbs->messages != NULL;
    c->model = req->model;
    c->max_tokens = req->max_tokens;
    c->backoff_base_ms = req->backoff_base_ms;
    c->backoff_max_ms = req->backoff_max_ms;
    c->res.message = "";
    c->res.error_type = "";
    c->rng = req->jitter_seed != 0 ? req->jitter_seed
                                   : uv_hrtime() ^ (uint64_t)(uintptr_t)c;
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    rc = council__sse_new(COUNCIL__SSE_MAX_LINE, sse_event, c, &c->sse);
out:
    if (rc != COUNCIL_OK) {
        call_free(c);
        return rc;
    }
    *out = c;
    return COUNCIL_OK;
}

void
council__chat_headers(council__chat *c, struct curl_slist *constant, char *auth)
{
    c->headers = constant;
    if (auth != NULL) {
        c->auth_node.data = auth;
        c->auth_node.next = constant;
        c->headers = &c->auth_node;
    }
}

void
council__chat_discard(council__chat *c)
{
    if (c != NULL)
        call_free(c);
}

council_err
council__chat_launch(council__chat *c)
{
    council__http *h = c->h;
    CURL *e = c->easy;
    CURLcode cc = CURLE_OK;

    if (h->closing) {
        call_free(c);
        return COUNCIL_ECLOSED;
    }
    cc |= curl_easy_setopt(e, CURLOPT_URL, c->url);
    if (strncasecmp(c->url, "http://", 7) == 0) {
        /* No TLS with the server: drop the CA paths that libcurl copies
         * into every new handle (the proxy's own stay). */
        cc |= curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
        cc |= curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    c->body_len = strlen(c->body);
    cc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    cc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                           (curl_off_t)c->body_len);
    cc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    cc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    cc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    cc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    cc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    cc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    cc |= curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    cc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    cc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    cc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
    cc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    cc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Stream chunks are small (a token or a few per event): libcurl's
     * smallest receive buffer, 1 KiB instead of its 16 KiB default, keeps
     * a call in flight 15 KiB smaller; a burst larger than that is read
     * in more recv calls. */
    cc |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    if (c->connect_timeout_ms > 0)
        cc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                               (long)c->connect_timeout_ms);
    if (cc != CURLE_OK ||
        endpoint_of(h, h->cur_cfg, c->url, &c->ep) != COUNCIL_OK) {
        call_free(c);
        return COUNCIL_ENOMEM;
    }
    /* libcurl keeps its own copy of the URL (every attempt reuses it). */
    council__free(c->url);
    c->url = NULL;

    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    h->n_handles++;
    c->next = h->calls;
    if (h->calls != NULL)
        h->calls->prev = c;
    h->calls = c;
    if (c->ep != NULL && c->ep->active >= c->ep->limit) {
        /* Wait for a slot; the clocks start when it comes (pump). */
        c->state = COUNCIL__CHAT_QUEUED;
        c->qprev = c->ep->qtail;
        if (c->ep->qtail != NULL)
            c->ep->qtail->qnext = c;
        else
            c->ep->qhead = c;
        c->ep->qtail = c;
        return COUNCIL_OK;
    }
    if (c->ep != NULL) {
        c->ep->active++;
        c->has_slot = 1;
    }
    clock_start(c);
    c->state = COUNCIL__CHAT_PENDING_ADD;
    if (h->depth > 0) {
        /* Inside a libcurl callback: add on the next loop turn. */
        uv_timer_start(&c->timer, on_call_timer, 0, 0);
        return COUNCIL_OK;
    }
    attempt_start(c);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        /* Undo: no callback will ever come for this call. */
        if (c->has_slot)
            c->ep->active--;
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            h->calls = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        c->state = COUNCIL__CHAT_DONE;
        uv_close((uv_handle_t *)&c->timer, call_closed);
        return COUNCIL_ENOMEM;
    }
    c->in_multi = 1;
    c->state = COUNCIL__CHAT_RUNNING;
    arm(c);
    return COUNCIL_OK;
}

council_err
council__chat_start(council__http *h, const council__provider_cfg *cfg,
                    const council__chat_req *req, const council__chat_cbs *cbs,
                    void *ud, council__chat **out)
{
    council_err rc;

    if (out != NULL)
        *out = NULL;
    if (h == NULL || cfg == NULL || req == NULL || cbs == NULL ||
        cbs->on_done == NULL || out == NULL)
        return COUNCIL_EINVAL;
    if (h->closing)
        return COUNCIL_ECLOSED;
    switch (cfg->kind) {
    case COUNCIL__PROVIDER_OPENAI:
        /* The format's launch finds cfg (max_parallel) here. */
        h->cur_cfg = cfg;
        rc = council__openai_start(h, cfg, req, cbs, ud, out);
        h->cur_cfg = NULL;
        return rc;
    case COUNCIL__PROVIDER_ANTHROPIC:
        h->cur_cfg = cfg;
        rc = council__anthropic_start(h, cfg, req, cbs, ud, out);
        h->cur_cfg = NULL;
        return rc;
    }
    return COUNCIL_EINVAL;
}

const char *
council__call_errkind_name(council__call_errkind kind)
{
    switch (kind) {
    case COUNCIL__CALL_OK:
        return "ok";
    case COUNCIL__CALL_CONNECT:
        return "connect";
    case COUNCIL__CALL_TIMEOUT:
        return "timeout";
    case COUNCIL__CALL_HTTP:
        return "http";
    case COUNCIL__CALL_STREAM:
        return "stream";
    case COUNCIL__CALL_PROVIDER:
        return "provider";
    case COUNCIL__CALL_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

/* ---- error bodies, shared by the JSON wire formats ----------------------- */

/*
 * The message and type of a provider's error object, sanitized: OpenAI's
 * {"message","type","code"} (code, string or integer, when there is no
 * type) and Anthropic's {"type","message"}; a bare string is the message.
 */
void
council__error_fields(json_t *err, char *msg, size_t msg_size, char *type,
                      size_t type_size)
{
    json_t *m, *t;

    msg[0] = '\0';
    type[0] = '\0';
    if (json_is_string(err)) {
        council__sanitize(msg, msg_size, json_string_value(err),
                          json_string_length(err));
        return;
    }
    if (!json_is_object(err))
        return;
    m = json_object_get(err, "message");
    if (json_is_string(m))
        council__sanitize(msg, msg_size, json_string_value(m),
                          json_string_length(m));
    t = json_object_get(err, "type");
    if (!json_is_string(t))
        t = json_object_get(err, "code");
    if (json_is_string(t))
        council__sanitize(type, type_size, json_string_value(t),
                          json_string_length(t));
    else if (json_is_integer(t))
        snprintf(type, type_size, "%lld", (long long)json_integer_value(t));
}

/* on_error_body for formats whose error bodies are JSON: {"error": {...}}
 * or the error object itself; other bodies become the message, cut. */
void
council__json_error_body(council__chat *c, const char *body, size_t len,
                         char *msg, size_t msg_size, char *type,
                         size_t type_size)
{
    unsigned long failures = council__json_alloc_failures();
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *err;

    (void)c;
    if (council__json_alloc_failures() != failures) {
        /* A string may have lost a byte: show the body itself. */
        json_decref(root);
        root = NULL;
    }
    err = json_object_get(root, "error");
    if (err == NULL)
        err = json_object_get(root, "message") != NULL ? root : NULL;
    if (err != NULL)
        council__error_fields(err, msg, msg_size, type, type_size);
    if (msg[0] == '\0')
        council__sanitize(msg, msg_size, body, len < 200 ? len : 200);
    json_decref(root);
}

/* A stream event's data as a JSON object (new reference), or NULL after
 * failing the call as a malformed stream, naming `what` and showing the
 * start of the data, sanitized. */
json_t *
council__json_object(council__chat *c, const char *data, size_t len,
                     const char *what)
{
    json_error_t jerr;
    unsigned long failures = council__json_alloc_failures();
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    char shown[96];

    if (council__json_alloc_failures() != failures ||
        (root == NULL && council__json_oom(data, len, &jerr))) {
        /* Not the provider's fault; and jansson's lexer parses on after
         * an allocation fails, a byte short in some string. */
        json_decref(root);
        if (council__chat_running(c)) {
            council__chat_fail(c, COUNCIL__CALL_STREAM,
                               "out of memory parsing the %s", what);
            c->res.err = COUNCIL_ENOMEM;
        }
        return NULL;
    }
    if (json_is_object(root))
        return root;
    council__sanitize(shown, sizeof(shown), data, len < 80 ? len : 80);
    council__chat_fail(c, COUNCIL__CALL_STREAM, "%s %s: %s%s",
                       root == NULL && !council__json_scalar(data, len)
                           ? "malformed JSON"
                           : "not a JSON object:",
                       what, shown, len > 80 ? "..." : "");
    json_decref(root);
    return NULL;
}
