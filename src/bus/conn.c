/* SPDX-License-Identifier: MIT */
/*
 * conn.h: an asynchronous Redis connection with a deadline per command,
 * keepalive, and reconnection with backoff.  It promises that each
 * accepted command's callback runs exactly once (reply, timeout, lost
 * connection or close), never after the connection is freed, and that no
 * answer of a server, however hostile, crashes it or holds a command past
 * its deadline.
 *
 * Method: the connection (council__conn) outlives its sockets.  Each
 * attempt to connect makes a `sock` (the libuv stream, its connect and
 * resolve requests, hiredis's reader); a sock that fails is detached
 * (sock->conn = NULL) and closed, and frees itself when libuv has
 * delivered its last callback, so a late callback of an old socket finds
 * no connection and does nothing.  Commands sit in two FIFO lists:
 * `unsent` (waiting for a connection) and `sent` (written, waiting for
 * their replies in order).  One timer (dtimer) is armed for the earliest
 * command deadline; another (atimer) is the attempt's deadline while
 * connecting and the backoff delay while down.  Every loss goes through
 * teardown(), which detaches the socket, completes the sent commands and
 * schedules the next attempt.  The connection is freed only when it is
 * closing and its two timers, every sock and every bootstrap are gone.
 * The handshake (AUTH, SELECT, PING, a subscriber's SUBSCRIBE) is made of
 * internal commands in the same FIFO, covered by the attempt's deadline;
 * a subscriber's keepalive PING is an internal command with a deadline
 * of its own, sent by atimer while up; messages ([message, channel,
 * payload]) are taken out before the FIFO is consulted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bus/conn.h"
#include "bus/fn.h"
#include "core/alloc.h"
#include "core/assert.h"

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_COMMAND_MS 5000
#define DEFAULT_BACKOFF_MIN_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000
#define DEFAULT_KEEPALIVE_S 15
#define DEFAULT_MAX_REPLY ((size_t)64 << 20)
#define DEFAULT_MAX_ELEMENTS ((size_t)1 << 20)
#define READ_CHUNK 65536
/* Redis's own limit on a bulk string (proto-max-bulk-len) is 512 MiB. */
#define MAX_COMMAND_BYTES ((size_t)1 << 30)

typedef enum cstate {
    S_WAIT = 1,   /* down; atimer is the backoff (or 0 before the first) */
    S_CONNECTING, /* resolving or TCP connecting; atimer: the deadline */
    S_HANDSHAKE,  /* AUTH, SELECT, PING sent; atimer: the deadline */
    S_LOADING,    /* the bootstrap runs in the pool; atimer: the deadline */
    S_UP,
    S_CLOSED
} cstate;

/* Handshake steps (the internal commands' ud); H_SUB + i confirms the
 * subscription to channel i. */
enum { H_AUTH = 1, H_SELECT, H_PING, H_SUB = 16 };

typedef struct cmd cmd;
typedef struct cmd_list {
    cmd *head, *tail;
} cmd_list;

struct cmd {
    cmd *prev, *next;
    cmd_list *list;
    council__conn_cb cb;
    void *ud;
    uint64_t deadline; /* loop time, ms; UINT64_MAX: none (handshake) */
    uint64_t timeout_ms;
    int internal; /* ours (handshake, keepalive PING): not counted */
    int secret;   /* AUTH: scrub its bytes */
    char *data;   /* the formatted command until it is written */
    size_t len;
};

typedef struct sock sock;

/* The reader's object functions: hiredis's, with createArray capped. */
typedef struct caps {
    redisReplyObjectFunctions fns;
    const redisReplyObjectFunctions *dflt;
    size_t max_elements;
    long long refused_elements; /* > 0: the reader failed on this */
} caps;

/* One write: owns the bytes it writes (a command may complete, by its
 * deadline, while its bytes are still queued in libuv). */
typedef struct wreq {
    uv_write_t req;
    char *data;
    size_t len;
    int secret;
} wreq;

struct sock {
    council__conn *conn;  /* NULL once detached */
    council__conn *owner; /* for the count of live socks */
    int is_unix;
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    int handle_init, handle_closing;
    int gai_pending;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    redisReader *reader;
    caps caps;
    uint64_t fed;         /* bytes given to the reader */
    uint64_t reply_start; /* fed at the end of the last reply */
    char rbuf[READ_CHUNK];
};

typedef struct boot boot;

struct council__conn {
    uv_loop_t *loop;
    cstate state;
    int closing;
    /* The parsed URL.  where: the URL as shown in messages (no
     * password). */
    int is_unix;
    char *host; /* or the socket path */
    int port;
    long db;
    char *user, *pass; /* NULL when absent; pass scrubbed at free */
    char where[300];
    /* Options. */
    uint64_t connect_ms, command_ms, backoff_min, backoff_max;
    unsigned keepalive_s, user_timeout_ms;
    size_t max_reply, max_elements;
    int load_library;
    char **channels; /* a subscriber's */
    size_t n_channels;
    void (*on_message)(council__conn *, const char *, size_t, const char *,
                       size_t, void *);
    uint64_t ping_ms;
    int ping_inflight;
    void (*on_state)(council__conn *, int, council_err, const char *, void *);
    void *ud;
    /* State. */
    sock *sock;
    cmd_list unsent, sent;
    size_t pending;
    uv_timer_t dtimer, atimer;
    int timers_open;
    int nsocks, nboots;
    uint64_t attempts, connects, failures, last_backoff;
    uint64_t rng;
    int pending_fail; /* a write failed synchronously: tear down soon */
    char reason[768]; /* why it is down */
    void (*on_done)(void *);
    void *done_ud;
};

struct boot {
    uv_work_t w;
    council__conn *conn;
    uint64_t attempt;
    council_err rc;
    char msg[700];
};

static void teardown(council__conn *c, council_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rearm(council__conn *c);
static void maybe_free(council__conn *c);
static void on_dtimer(uv_timer_t *t);
static void on_atimer(uv_timer_t *t);
static void start_boot(council__conn *c);
static void expire_unsent(council__conn *c, uint64_t now);
static void push_subscribe(council__conn *c);

/* ---- small helpers ---- */

static void
scrub(void *p, size_t n)
{
    volatile unsigned char *q = p;

    while (n-- > 0)
        *q++ = 0;
}

static void
scrub_free(char *s)
{
    if (s != NULL) {
        scrub(s, strlen(s));
        council__free(s);
    }
}

static void diag_set(council_diag *d, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replaces each occurrence of secret in s with "***": a hostile server may
 * echo the AUTH command back in an error, and its text goes into
 * reasons. */
static void
unsecret(char *s, const char *secret)
{
    size_t n = secret != NULL ? strlen(secret) : 0;
    char *p;

    if (n == 0)
        return;
    while ((p = strstr(s, secret)) != NULL) {
        size_t tail = strlen(p + n);

        if (n >= 3) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, tail + 1);
        } else {
            memmove(p, p + n, tail + 1);
        }
    }
}

static void
diag_set(council_diag *d, const char *file, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return;
    memset(d, 0, sizeof(*d));
    snprintf(d->file, sizeof(d->file), "%s", file);
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}

static void
list_push(cmd_list *l, cmd *k)
{
    k->list = l;
    k->next = NULL;
    k->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = k;
    else
        l->head = k;
    l->tail = k;
}

static void
list_remove(cmd *k)
{
    cmd_list *l = k->list;

    if (l == NULL)
        return;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        l->head = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    else
        l->tail = k->prev;
    k->list = NULL;
    k->prev = k->next = NULL;
}

static void
cmd_free(cmd *k)
{
    if (k->data != NULL) {
        if (k->secret)
            scrub(k->data, k->len);
        council__free(k->data);
    }
    council__free(k);
}

/* Unlinks k, calls its callback, frees it.  The callback may do anything
 * but free c (close only marks it). */
static void
complete(council__conn *c, cmd *k, council_err rc, const redisReply *rep,
         const char *msg)
{
    list_remove(k);
    if (!k->internal)
        c->pending--;
    k->cb(c, rc, rep, msg, k->ud);
    cmd_free(k);
}

/* RESP: *argc CRLF then $len CRLF bytes CRLF per argument. */
static char *
format_argv(int argc, const char **argv, const size_t *lens, size_t *out_len)
{
    size_t n = 16, off = 0;
    char *buf;
    int i;

    for (i = 0; i < argc; i++) {
        if (lens[i] > SIZE_MAX / 2 - n - 32)
            return NULL;
        n += lens[i] + 32;
    }
    buf = council__malloc(n);
    if (buf == NULL)
        return NULL;
    off += (size_t)snprintf(buf + off, n - off, "*%d\r\n", argc);
    for (i = 0; i < argc; i++) {
        off += (size_t)snprintf(buf + off, n - off, "$%zu\r\n", lens[i]);
        if (lens[i] > 0)
            memcpy(buf + off, argv[i], lens[i]);
        off += lens[i];
        buf[off++] = '\r';
        buf[off++] = '\n';
    }
    *out_len = off;
    return buf;
}

static uint64_t
rng_next(council__conn *c)
{
    /* xorshift64*: jitter only, not security. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ull;
}

/* The delay before attempt n + 1 after n consecutive failures. */
static uint64_t
backoff_delay(council__conn *c)
{
    uint64_t d = c->backoff_min;
    uint64_t i;

    for (i = 1; i < c->failures && d < c->backoff_max; i++)
        d *= 2;
    if (d > c->backoff_max)
        d = c->backoff_max;
    return d / 2 + rng_next(c) % (d - d / 2 + 1);
}

/* ---- the URL ---- */

/* The URL as it may be shown: what lies between "://" and the last '@' is
 * replaced by "***", so a password is never quoted. */
static void
redact(const char *url, char *out, size_t cap)
{
    const char *start = strstr(url, "://");
    const char *at = strrchr(url, '@');

    start = start != NULL ? start + 3 : url;
    if (at != NULL && at >= start)
        snprintf(out, cap, "%.*s***%.200s", (int)(start - url), url, at);
    else
        snprintf(out, cap, "%.250s", url);
}

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %-decodes s[0..n) into a new string; NULL (and *bad set) for a bad
 * escape or %00, NULL for no memory. */
static char *
decode(const char *s, size_t n, int *bad)
{
    char *out = council__malloc(n + 1);
    size_t i, o = 0;

    *bad = 0;
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            scrub(out, o);
            council__free(out);
            *bad = 1;
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static int
host_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
}

/* Parses c->host, port, db, user, pass from url; COUNCIL_EINVAL with diag
 * naming the redacted URL. */
static council_err
parse_url(council__conn *c, const char *url, council_diag *diag)
{
    char shown[300];
    const char *rest, *at, *p, *hend;
    int bad = 0;

    redact(url, shown, sizeof(shown));
#define BAD(...)                                                               \
    do {                                                                       \
        char why_[200];                                                        \
        snprintf(why_, sizeof(why_), __VA_ARGS__);                             \
        diag_set(diag, "", "Redis URL %s: %s", shown, why_);                   \
        return COUNCIL_EINVAL;                                                 \
    } while (0)
    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        if (strchr(url, '@') != NULL)
            BAD("a unix:// URL takes no user or password");
        if (p[0] != '/')
            BAD("expected unix:///absolute/path");
        if (strchr(p, '?') != NULL)
            BAD("query parameters are not supported");
        if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            BAD("the socket path is longer than %zu bytes",
                sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        c->is_unix = 1;
        c->host = council__strdup(p);
        if (c->host == NULL)
            return COUNCIL_ENOMEM;
        snprintf(c->where, sizeof(c->where), "unix://%.280s", p);
        return COUNCIL_OK;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        BAD("TLS (rediss://) is not supported");
    if (strncmp(url, "redis://", 8) != 0)
        BAD("expected redis://[user:password@]host[:port][/db] or "
            "unix:///path");
    rest = url + 8;
    if (strpbrk(rest, "?#") != NULL)
        BAD("query parameters and fragments are not supported");
    at = strrchr(rest, '@');
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));

        if (colon == NULL)
            BAD("a user without a password (write :password@ for a "
                "password alone)");
        if (at == colon + 1)
            BAD("an empty password");
        if (colon > rest) {
            c->user = decode(rest, (size_t)(colon - rest), &bad);
            if (c->user == NULL && bad)
                BAD("a bad %%-escape in the user");
            if (c->user == NULL)
                return COUNCIL_ENOMEM;
        }
        c->pass = decode(colon + 1, (size_t)(at - colon - 1), &bad);
        if (c->pass == NULL && bad)
            BAD("a bad %%-escape in the password");
        if (c->pass == NULL)
            return COUNCIL_ENOMEM;
        if (c->pass[0] == '\0')
            BAD("an empty password");
        rest = at + 1;
    }
    /* host */
    if (rest[0] == '[') {
        struct in6_addr a6;
        char tmp[64];

        hend = strchr(rest, ']');
        if (hend == NULL || (size_t)(hend - rest - 1) >= sizeof(tmp))
            BAD("an IPv6 address without its closing ]");
        memcpy(tmp, rest + 1, (size_t)(hend - rest - 1));
        tmp[hend - rest - 1] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            BAD("[%s] is not an IPv6 address", tmp);
        c->host = council__strdup(tmp);
        p = hend + 1;
    } else {
        for (p = rest; host_char((unsigned char)*p); p++)
            ;
        if (p == rest)
            BAD("no host");
        if (p - rest > 253)
            BAD("a host name longer than 253 bytes");
        c->host = council__strndup(rest, (size_t)(p - rest));
    }
    if (c->host == NULL)
        return COUNCIL_ENOMEM;
    c->port = 6379;
    if (*p == ':') {
        long v = 0;
        const char *q = ++p;

        while (*p >= '0' && *p <= '9' && p - q < 6)
            v = v * 10 + (*p++ - '0');
        if (p == q || (*p >= '0' && *p <= '9') || v < 1 || v > 65535)
            BAD("the port must be 1 to 65535");
        c->port = (int)v;
    }
    c->db = 0;
    if (*p == '/') {
        long v = 0;
        const char *q = ++p;

        while (*p >= '0' && *p <= '9' && p - q < 10)
            v = v * 10 + (*p++ - '0');
        if ((*p >= '0' && *p <= '9') || v > INT_MAX)
            BAD("the database must be a number 0 to %d", INT_MAX);
        c->db = v;
    }
    if (*p != '\0')
        BAD("unexpected \"%.20s\" after the host, port or database", p);
    snprintf(c->where, sizeof(c->where), "redis://%s%.260s%s:%d/%ld",
             strchr(c->host, ':') != NULL ? "[" : "", c->host,
             strchr(c->host, ':') != NULL ? "]" : "", c->port, c->db);
#undef BAD
    return COUNCIL_OK;
}

/* ---- the reader's caps ---- */

static void *
capped_array(const redisReadTask *task, int elements)
{
    caps *k = task->privdata;

    if (elements > 0 && (size_t)elements > k->max_elements) {
        k->refused_elements = elements;
        return NULL;
    }
    return k->dflt->createArray(task, elements);
}

static void *
pass_string(const redisReadTask *task, char *str, size_t len)
{
    caps *k = task->privdata;

    return k->dflt->createString(task, str, len);
}

static void *
pass_integer(const redisReadTask *task, long long v)
{
    caps *k = task->privdata;

    return k->dflt->createInteger(task, v);
}

static void *
pass_nil(const redisReadTask *task)
{
    caps *k = task->privdata;

    return k->dflt->createNil(task);
}

/* Gives reader hiredis's object functions with the array cap. */
static void
caps_install(caps *k, redisReader *r, size_t max_elements)
{
    memset(k, 0, sizeof(*k));
    k->dflt = r->fn;
    k->fns.createString = pass_string;
    k->fns.createArray = capped_array;
    k->fns.createInteger = pass_integer;
    k->fns.createNil = pass_nil;
    k->fns.freeObject = k->dflt->freeObject;
    k->max_elements = max_elements;
    r->fn = &k->fns;
    r->privdata = k;
}

/* ---- sockets ---- */

static void
sock_maybe_free(sock *s)
{
    council__conn *owner = s->owner;

    if (s->conn != NULL || s->gai_pending ||
        (s->handle_init && s->handle_closing != 2))
        return;
    if (s->reader != NULL)
        redisReaderFree(s->reader);
    council__free(s);
    owner->nsocks--;
    maybe_free(owner);
}

static void
on_sock_close(uv_handle_t *h)
{
    sock *s = h->data;

    s->handle_closing = 2;
    sock_maybe_free(s);
}

/* The sock stops belonging to its connection: its late callbacks do
 * nothing, and it frees itself after the last one. */
static void
sock_detach(sock *s)
{
    if (s == NULL)
        return;
    s->conn = NULL;
    if (s->gai_pending)
        uv_cancel((uv_req_t *)&s->gai);
    if (s->handle_init && s->handle_closing == 0) {
        s->handle_closing = 1;
        uv_close(&s->u.h, on_sock_close);
    }
    sock_maybe_free(s);
}

static sock *
sock_new(council__conn *c)
{
    sock *s = council__calloc(1, sizeof(*s));
    redisReader *r;

    if (s == NULL)
        return NULL;
    r = redisReaderCreate();
    if (r == NULL) {
        council__free(s);
        return NULL;
    }
    caps_install(&s->caps, r, c->max_elements);
    s->reader = r;
    s->conn = c;
    s->owner = c;
    c->nsocks++;
    return s;
}

static void
on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    sock *s = req->handle->data;

    if (w->secret)
        scrub(w->data, w->len);
    council__free(w->data);
    council__free(w);
    if (status < 0 && status != UV_ECANCELED && s->conn != NULL)
        teardown(s->conn, COUNCIL_EIO, "writing to %s: %s", s->conn->where,
                 uv_strerror(status));
}

/* Writes k's bytes (the write takes them) and moves k to sent.  A write
 * that fails at once tears the connection down on the next loop turn, so
 * no callback runs inside council__conn_command. */
static void
send_cmd(council__conn *c, cmd *k)
{
    wreq *w = council__calloc(1, sizeof(*w));
    uv_buf_t b;
    int e;

    list_remove(k);
    list_push(&c->sent, k);
    if (w == NULL) {
        c->pending_fail = COUNCIL_ENOMEM;
        uv_timer_start(&c->dtimer, on_dtimer, 0, 0);
        return;
    }
    w->data = k->data;
    w->len = k->len;
    w->secret = k->secret;
    k->data = NULL;
    b = uv_buf_init(w->data, (unsigned)w->len);
    e = uv_write(&w->req, &c->sock->u.s, &b, 1, on_write);
    if (e != 0) {
        if (w->secret)
            scrub(w->data, w->len);
        council__free(w->data);
        council__free(w);
        c->pending_fail = COUNCIL_EIO;
        rearm(c);
    }
}

/* ---- commands ---- */

static cmd *
cmd_new(council__conn *c, int argc, const char **argv, const size_t *lens,
        uint64_t timeout_ms, council__conn_cb cb, void *ud)
{
    cmd *k = council__calloc(1, sizeof(*k));

    if (k == NULL)
        return NULL;
    k->data = format_argv(argc, argv, lens, &k->len);
    if (k->data == NULL) {
        council__free(k);
        return NULL;
    }
    k->cb = cb;
    k->ud = ud;
    /* The loop's time is that of the start of this iteration: a deadline
     * counted from it would be short by the time since. */
    uv_update_time(c->loop);
    k->timeout_ms = timeout_ms != 0 ? timeout_ms : c->command_ms;
    if (k->timeout_ms > UINT64_MAX / 4)
        k->timeout_ms = UINT64_MAX / 4; /* no overflow below */
    k->deadline = uv_now(c->loop) + k->timeout_ms;
    return k;
}

council_err
council__conn_command(council__conn *c, int argc, const char **argv,
                      const size_t *argvlen, uint64_t timeout_ms,
                      council__conn_cb cb, void *ud)
{
    size_t total;
    cmd *k;
    int i;

    if (c == NULL || argc < 1 || argv == NULL || argvlen == NULL || cb == NULL)
        return COUNCIL_EINVAL;
    if (c->closing)
        return COUNCIL_ECLOSED;
    if (c->n_channels > 0)
        return COUNCIL_EINVAL;
    for (i = 0, total = 0; i < argc; i++) {
        if (argv[i] == NULL && argvlen[i] > 0)
            return COUNCIL_EINVAL;
        total += argvlen[i];
        if (total > MAX_COMMAND_BYTES)
            return COUNCIL_EINVAL;
    }
    k = cmd_new(c, argc, argv, argvlen, timeout_ms, cb, ud);
    if (k == NULL)
        return COUNCIL_ENOMEM;
    c->pending++;
    list_push(&c->unsent, k);
    if (c->state == S_UP && !c->pending_fail)
        send_cmd(c, k);
    rearm(c);
    return COUNCIL_OK;
}

/* The earliest deadline of an accepted command arms dtimer. */
static void
rearm(council__conn *c)
{
    uint64_t min = UINT64_MAX, now = uv_now(c->loop);
    cmd *k;

    if (c->closing)
        return;
    if (c->pending_fail) {
        uv_timer_start(&c->dtimer, on_dtimer, 0, 0);
        return;
    }
    for (k = c->unsent.head; k != NULL; k = k->next)
        if (k->deadline < min)
            min = k->deadline;
    for (k = c->sent.head; k != NULL; k = k->next)
        if (k->deadline < min)
            min = k->deadline;
    if (min == UINT64_MAX)
        uv_timer_stop(&c->dtimer);
    else
        uv_timer_start(&c->dtimer, on_dtimer, min > now ? min - now : 0, 0);
}

/* ---- the state machine ---- */

static void start_attempt(council__conn *c);

/*
 * Every loss and every failed attempt: the socket is detached, each sent
 * command completes (COUNCIL_ETIMEDOUT if its own deadline has passed,
 * else rc's COUNCIL_EIO "lost"), the next attempt is scheduled after the
 * backoff, and on_state says why.  Unsent commands keep waiting.
 */
static void
teardown(council__conn *c, council_err rc, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    uint64_t now;
    cmd *k;

    if (c->closing)
        return;
    uv_update_time(c->loop); /* the backoff counts from now */
    now = uv_now(c->loop);
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    unsecret(c->reason, c->pass);
    sock_detach(c->sock);
    c->sock = NULL;
    c->state = S_WAIT;
    c->pending_fail = 0;
    uv_timer_stop(&c->atimer);
    c->failures++;
    c->last_backoff = backoff_delay(c);
    uv_timer_start(&c->atimer, on_atimer, c->last_backoff, 0);
    while ((k = c->sent.head) != NULL && !c->closing) {
        if (k->internal) {
            complete(c, k, rc, NULL, c->reason);
        } else if (k->deadline <= now) {
            snprintf(msg, sizeof(msg), "no reply within %llu ms from %s",
                     (unsigned long long)k->timeout_ms, c->where);
            complete(c, k, COUNCIL_ETIMEDOUT, NULL, msg);
        } else {
            snprintf(msg, sizeof(msg),
                     "the connection was lost before the reply (the "
                     "command may or may not have run): %s",
                     c->reason);
            complete(c, k, COUNCIL_EIO, NULL, msg);
        }
    }
    if (c->closing)
        return;
    rearm(c);
    if (c->on_state != NULL)
        c->on_state(c, 0, rc, c->reason, c->ud);
}

static void
go_up(council__conn *c)
{
    cmd *k;

    c->state = S_UP;
    c->connects++;
    c->failures = 0;
    uv_timer_stop(&c->atimer);
    expire_unsent(c, uv_now(c->loop)); /* not sent late */
    if (c->closing || c->state != S_UP)
        return;
    c->reason[0] = '\0';
    while ((k = c->unsent.head) != NULL && !c->pending_fail)
        send_cmd(c, k);
    if (c->n_channels > 0)
        uv_timer_start(&c->atimer, on_atimer, c->ping_ms, c->ping_ms);
    rearm(c);
    if (c->on_state != NULL)
        c->on_state(c, 1, COUNCIL_OK, "connected", c->ud);
}

/* Unsent and late: never sent, so the connection is not at fault. */
static void
expire_unsent(council__conn *c, uint64_t now)
{
    char msg[1200];
    cmd *k;

    for (k = c->unsent.head; k != NULL && !c->closing;) {
        cmd *next = k->next;

        if (k->deadline <= now) {
            snprintf(msg, sizeof(msg),
                     "not sent within %llu ms: no connection to %s (%s)",
                     (unsigned long long)k->timeout_ms, c->where,
                     c->reason[0] != '\0' ? c->reason : "connecting");
            complete(c, k, COUNCIL_ETIMEDOUT, NULL, msg);
            next = c->unsent.head; /* the callback may have changed it */
        }
        k = next;
    }
}

static void
on_dtimer(uv_timer_t *t)
{
    council__conn *c = t->data;
    uint64_t now = uv_now(c->loop);
    cmd *k;

    if (c->pending_fail) {
        council_err rc = (council_err)c->pending_fail;

        teardown(c, rc, "writing to %s failed (%s)", c->where,
                 council_strerror(rc));
        return;
    }
    expire_unsent(c, now);
    if (c->closing)
        return;
    for (k = c->sent.head; k != NULL; k = k->next)
        if (k->deadline <= now)
            break;
    if (k != NULL) {
        teardown(c, COUNCIL_ETIMEDOUT,
                 "a command got no reply from %s within %llu ms", c->where,
                 (unsigned long long)k->timeout_ms);
        return;
    }
    rearm(c);
}

/* A handshake step's reply. */
static void
on_handshake(council__conn *c, council_err rc, const redisReply *rep,
             const char *msg, void *ud)
{
    int step = (int)(intptr_t)ud;
    const char *name = step == H_AUTH     ? "AUTH"
                       : step == H_SELECT ? "SELECT"
                       : step == H_PING   ? "PING"
                                          : "SUBSCRIBE";

    (void)msg;
    if (rc != COUNCIL_OK || c->closing || c->state != S_HANDSHAKE)
        return; /* teardown or close is under way */
    if (rep->type == REDIS_REPLY_ERROR) {
        teardown(c, COUNCIL_EREFUSED, "%s refused by %s: %.160s", name,
                 c->where, rep->str != NULL ? rep->str : "");
        return;
    }
    if (step >= H_SUB) {
        size_t i = (size_t)(step - H_SUB);

        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            strcmp(rep->element[0]->str, "subscribe") != 0 ||
            rep->element[1]->type != REDIS_REPLY_STRING ||
            strcmp(rep->element[1]->str, c->channels[i]) != 0 ||
            rep->element[2]->type != REDIS_REPLY_INTEGER)
            teardown(c, COUNCIL_EIO,
                     "%s answered SUBSCRIBE %s with what Redis does not: "
                     "not a Redis server?",
                     c->where, c->channels[i]);
        else if (i + 1 == c->n_channels)
            go_up(c);
        return;
    }
    if (step != H_PING) {
        if (rep->type != REDIS_REPLY_STATUS || rep->str == NULL ||
            strcmp(rep->str, "OK") != 0)
            teardown(c, COUNCIL_EIO,
                     "%s answered what Redis does not: not a Redis server?",
                     name);
        return;
    }
    if (rep->type != REDIS_REPLY_STATUS || rep->str == NULL ||
        strcmp(rep->str, "PONG") != 0) {
        teardown(c, COUNCIL_EIO,
                 "%s answered PING with what Redis does not: not a Redis "
                 "server?",
                 c->where);
        return;
    }
    if (c->n_channels > 0)
        return; /* up when every subscription is confirmed */
    if (c->load_library) {
        start_boot(c);
        return;
    }
    go_up(c);
}

/* A subscriber's keepalive PING: its reply is ["pong", ""]. */
static void
on_ping(council__conn *c, council_err rc, const redisReply *rep,
        const char *msg, void *ud)
{
    (void)msg;
    (void)ud;
    c->ping_inflight = 0;
    if (rc != COUNCIL_OK || c->closing)
        return;
    if (!(rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
          rep->element[0]->type == REDIS_REPLY_STRING &&
          strcmp(rep->element[0]->str, "pong") == 0))
        teardown(c, COUNCIL_EIO,
                 "%s answered a subscriber's PING with what Redis does not",
                 c->where);
}

static void
send_ping(council__conn *c)
{
    const char *av[1] = {"PING"};
    size_t lens[1] = {4};
    cmd *k;

    if (c->ping_inflight || c->pending_fail)
        return;
    k = cmd_new(c, 1, av, lens, 0, on_ping, NULL);
    if (k == NULL)
        return; /* the next tick tries again */
    k->internal = 1;
    c->ping_inflight = 1;
    list_push(&c->unsent, k);
    send_cmd(c, k);
    rearm(c);
}

/* A subscriber's message: [message, channel, payload]; 0 if rep is not a
 * message, 1 if it was one (delivered or refused). */
static int
deliver(council__conn *c, const redisReply *rep)
{
    if (c->n_channels == 0 || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0)
        return 0;
    if (rep->elements != 3 || rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[2]->type != REDIS_REPLY_STRING) {
        teardown(c, COUNCIL_EIO,
                 "%s sent a message that is not [message, channel, "
                 "payload]",
                 c->where);
        return 1;
    }
    if (c->on_message != NULL)
        c->on_message(c, rep->element[1]->str, rep->element[1]->len,
                      rep->element[2]->str, rep->element[2]->len, c->ud);
    return 1;
}

static void
push_internal(council__conn *c, int step, int argc, const char **argv,
              const size_t *lens)
{
    cmd *k =
        cmd_new(c, argc, argv, lens, 1, on_handshake, (void *)(intptr_t)step);

    if (k == NULL) {
        c->pending_fail = COUNCIL_ENOMEM;
        rearm(c);
        return;
    }
    k->internal = 1;
    k->secret = step == H_AUTH;
    k->deadline = UINT64_MAX;
    list_push(&c->unsent, k); /* send_cmd moves it to sent */
    send_cmd(c, k);
}

/* SUBSCRIBE ch_0 ... ch_n-1: one command, n confirmations, so n
 * internal entries in sent (only the first carries the bytes). */
static void
push_subscribe(council__conn *c)
{
    const char **av = council__calloc(c->n_channels + 1, sizeof(*av));
    size_t *lens = council__calloc(c->n_channels + 1, sizeof(*lens));
    size_t i;

    if (av == NULL || lens == NULL) {
        c->pending_fail = COUNCIL_ENOMEM;
        goto out;
    }
    av[0] = "SUBSCRIBE";
    lens[0] = 9;
    for (i = 0; i < c->n_channels; i++) {
        av[i + 1] = c->channels[i];
        lens[i + 1] = strlen(c->channels[i]);
    }
    push_internal(c, H_SUB, (int)c->n_channels + 1, av, lens);
    for (i = 1; i < c->n_channels && !c->pending_fail; i++) {
        cmd *k = council__calloc(1, sizeof(*k));

        if (k == NULL) {
            c->pending_fail = COUNCIL_ENOMEM;
            break;
        }
        k->cb = on_handshake;
        k->ud = (void *)(intptr_t)(H_SUB + (int)i);
        k->internal = 1;
        k->deadline = UINT64_MAX;
        list_push(&c->sent, k);
    }
out:
    council__free(av);
    council__free(lens);
    rearm(c);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sock *s = h->data;

    (void)suggested;
    *buf = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sock *s = st->data;
    council__conn *c = s->conn;
    redisReader *r = s->reader;

    if (c == NULL)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            teardown(c, COUNCIL_EIO, "%s closed the connection", c->where);
        else
            teardown(c, COUNCIL_EIO, "reading from %s: %s", c->where,
                     uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    if (redisReaderFeed(r, buf->base, (size_t)nread) != REDIS_OK) {
        teardown(c, COUNCIL_ENOMEM, "reading from %s: out of memory", c->where);
        return;
    }
    s->fed += (uint64_t)nread;
    for (;;) {
        void *rep = NULL;
        cmd *k;

        if (redisReaderGetReply(r, &rep) != REDIS_OK) {
            if (s->caps.refused_elements > 0)
                teardown(c, COUNCIL_EIO,
                         "%s sent an array of %lld elements (more than "
                         "%zu): refused",
                         c->where, s->caps.refused_elements,
                         s->caps.max_elements);
            else
                teardown(c, COUNCIL_EIO, "a protocol error from %s: %.120s",
                         c->where, r->errstr);
            return;
        }
        if (rep == NULL)
            break;
        s->reply_start = s->fed - (uint64_t)(r->len - r->pos);
        if (deliver(c, rep)) {
            freeReplyObject(rep);
            if (s->conn == NULL)
                return;
            continue;
        }
        k = c->sent.head;
        if (k == NULL) {
            redisReply *x = rep;

            teardown(
                c, COUNCIL_EIO, "%s sent a reply no command asked for%s%.120s",
                c->where, x->type == REDIS_REPLY_ERROR ? ": " : "",
                x->type == REDIS_REPLY_ERROR && x->str != NULL ? x->str : "");
            freeReplyObject(rep);
            return;
        }
        complete(c, k, COUNCIL_OK, rep, "reply");
        freeReplyObject(rep);
        if (s->conn == NULL)
            return; /* torn down or closed in the callback */
    }
    if (s->fed - s->reply_start > c->max_reply) {
        teardown(c, COUNCIL_EIO,
                 "%s sent a reply of more than %zu bytes: refused", c->where,
                 c->max_reply);
        return;
    }
    rearm(c);
}

static void
set_sockopts(council__conn *c, sock *s)
{
    uv_os_fd_t fd;
    int v;

    if (s->is_unix || uv_fileno(&s->u.h, &fd) != 0)
        return;
    uv_tcp_nodelay(&s->u.tcp, 1);
    uv_tcp_keepalive(&s->u.tcp, 1, c->keepalive_s);
#ifdef TCP_KEEPINTVL
    v = (int)(c->keepalive_s / 3 > 0 ? c->keepalive_s / 3 : 1);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
#endif
#ifdef TCP_KEEPCNT
    v = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
#endif
#ifdef TCP_USER_TIMEOUT
    v = (int)c->user_timeout_ms;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof(v));
#endif
    (void)v;
}

static void
on_connect(uv_connect_t *req, int status)
{
    sock *s = req->data;
    council__conn *c = s->conn;
    char dbs[24];
    const char *av[3];
    size_t lens[3];
    int e, n;

    if (c == NULL)
        return;
    if (status < 0) {
        teardown(c, COUNCIL_EIO, "connecting to %s: %s", c->where,
                 uv_strerror(status));
        return;
    }
    set_sockopts(c, s);
    e = uv_read_start(&s->u.s, on_alloc, on_read);
    if (e != 0) {
        teardown(c, COUNCIL_EIO, "reading from %s: %s", c->where,
                 uv_strerror(e));
        return;
    }
    c->state = S_HANDSHAKE;
    if (c->pass != NULL) {
        n = 0;
        av[n] = "AUTH";
        lens[n++] = 4;
        if (c->user != NULL) {
            av[n] = c->user;
            lens[n++] = strlen(c->user);
        }
        av[n] = c->pass;
        lens[n++] = strlen(c->pass);
        push_internal(c, H_AUTH, n, av, lens);
    }
    if (c->db != 0) {
        snprintf(dbs, sizeof(dbs), "%ld", c->db);
        av[0] = "SELECT";
        lens[0] = 6;
        av[1] = dbs;
        lens[1] = strlen(dbs);
        push_internal(c, H_SELECT, 2, av, lens);
    }
    av[0] = "PING";
    lens[0] = 4;
    push_internal(c, H_PING, 1, av, lens);
    if (c->n_channels > 0)
        push_subscribe(c);
}

static void
tcp_connect(council__conn *c, sock *s, const struct sockaddr *sa)
{
    int e = uv_tcp_init(c->loop, &s->u.tcp);

    if (e == 0) {
        s->handle_init = 1;
        s->u.h.data = s;
        s->creq.data = s;
        e = uv_tcp_connect(&s->creq, &s->u.tcp, sa, on_connect);
    }
    if (e != 0)
        teardown(c, COUNCIL_EIO, "connecting to %s: %s", c->where,
                 uv_strerror(e));
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sock *s = req->data;
    council__conn *c = s->conn;

    s->gai_pending = 0;
    if (c == NULL || status < 0) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        if (c == NULL)
            sock_maybe_free(s);
        else
            teardown(c, COUNCIL_EIO, "resolving the host of %s: %s", c->where,
                     uv_strerror(status));
        return;
    }
    tcp_connect(c, s, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void
start_attempt(council__conn *c)
{
    sock *s = sock_new(c);
    struct sockaddr_storage ss;
    struct addrinfo hints;
    char port[8];
    int e;

    c->attempts++;
    c->state = S_CONNECTING;
    uv_timer_start(&c->atimer, on_atimer, c->connect_ms, 0);
    if (s == NULL) {
        teardown(c, COUNCIL_ENOMEM, "connecting to %s: out of memory",
                 c->where);
        return;
    }
    c->sock = s;
    s->is_unix = c->is_unix;
    if (c->is_unix) {
        e = uv_pipe_init(c->loop, &s->u.pipe, 0);
        if (e != 0) {
            teardown(c, COUNCIL_EIO, "connecting to %s: %s", c->where,
                     uv_strerror(e));
            return;
        }
        s->handle_init = 1;
        s->u.h.data = s;
        s->creq.data = s;
        uv_pipe_connect(&s->creq, &s->u.pipe, c->host, on_connect);
        return;
    }
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss) == 0) {
        tcp_connect(c, s, (struct sockaddr *)&ss);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", c->port);
    s->gai.data = s;
    e = uv_getaddrinfo(c->loop, &s->gai, on_resolved, c->host, port, &hints);
    if (e != 0) {
        teardown(c, COUNCIL_EIO, "resolving the host of %s: %s", c->where,
                 uv_strerror(e));
        return;
    }
    s->gai_pending = 1;
}

static void
on_atimer(uv_timer_t *t)
{
    council__conn *c = t->data;

    switch (c->state) {
    case S_WAIT:
        start_attempt(c);
        break;
    case S_CONNECTING:
    case S_HANDSHAKE:
    case S_LOADING:
        teardown(c, COUNCIL_ETIMEDOUT,
                 "connecting to %s: not ready within %llu ms (%s)", c->where,
                 (unsigned long long)c->connect_ms,
                 c->state == S_CONNECTING  ? "no TCP connection"
                 : c->state == S_HANDSHAKE ? "no answer to the handshake"
                                           : "the library bootstrap");
        break;
    case S_UP:
        if (c->n_channels > 0)
            send_ping(c); /* a subscriber's keepalive */
        break;
    case S_CLOSED:
        break; /* nop: the timer is stopped */
    }
}

/* ---- the bootstrap (council__fn_load on the thread pool) ---- */

static int
sync_ok(redisContext *rc, const char *what, boot *b, const char *where)
{
    if (rc->err != 0) {
        snprintf(b->msg, sizeof(b->msg), "bootstrap %s on %s: %s", what, where,
                 rc->errstr);
        b->rc = COUNCIL_EIO;
        return 0;
    }
    return 1;
}

static void
boot_work(uv_work_t *w)
{
    boot *b = w->data;
    council__conn *c = b->conn; /* only its immutable URL and options */
    struct timeval tv;
    redisContext *rc;
    redisReply *r;
    council_diag d;
    caps k;

    tv.tv_sec = (time_t)(c->connect_ms / 1000);
    tv.tv_usec = (suseconds_t)((c->connect_ms % 1000) * 1000);
    rc = c->is_unix ? redisConnectUnixWithTimeout(c->host, tv)
                    : redisConnectWithTimeout(c->host, c->port, tv);
    if (rc == NULL) {
        b->rc = COUNCIL_ENOMEM;
        snprintf(b->msg, sizeof(b->msg), "bootstrap on %s: out of memory",
                 c->where);
        return;
    }
    if (!sync_ok(rc, "connect", b, c->where))
        goto out;
    redisSetTimeout(rc, tv);
    caps_install(&k, rc->reader, c->max_elements);
    if (c->pass != NULL) {
        r = c->user != NULL ? redisCommand(rc, "AUTH %s %s", c->user, c->pass)
                            : redisCommand(rc, "AUTH %s", c->pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(b->msg, sizeof(b->msg), "bootstrap AUTH on %s: %.160s",
                     c->where,
                     r != NULL && r->str != NULL ? r->str : rc->errstr);
            b->rc = r != NULL ? COUNCIL_EREFUSED : COUNCIL_EIO;
            freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);
    }
    if (c->db != 0) {
        r = redisCommand(rc, "SELECT %ld", c->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(b->msg, sizeof(b->msg), "bootstrap SELECT on %s: %.160s",
                     c->where,
                     r != NULL && r->str != NULL ? r->str : rc->errstr);
            b->rc = r != NULL ? COUNCIL_EREFUSED : COUNCIL_EIO;
            freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);
    }
    memset(&d, 0, sizeof(d));
    b->rc = council__fn_load(rc, NULL, &d);
    if (b->rc != COUNCIL_OK)
        snprintf(b->msg, sizeof(b->msg), "the council library on %s: %s",
                 c->where, d.msg);
out:
    redisFree(rc);
}

static void
boot_done(uv_work_t *w, int status)
{
    boot *b = w->data;
    council__conn *c = b->conn;
    int current = b->attempt == c->attempts && c->state == S_LOADING;

    c->nboots--;
    if (status == UV_ECANCELED && b->rc == COUNCIL_OK) {
        b->rc = COUNCIL_ECANCELED;
        snprintf(b->msg, sizeof(b->msg), "the bootstrap was cancelled");
    }
    if (c->closing || !current) {
        council__free(b);
        maybe_free(c);
        return;
    }
    if (b->rc == COUNCIL_OK) {
        council__free(b);
        go_up(c);
        return;
    }
    teardown(c, b->rc == COUNCIL_EREFUSED ? COUNCIL_EREFUSED : COUNCIL_EIO,
             "%s", b->msg);
    council__free(b);
}

static void
start_boot(council__conn *c)
{
    boot *b = council__calloc(1, sizeof(*b));
    int e;

    if (b == NULL) {
        teardown(c, COUNCIL_ENOMEM, "bootstrap on %s: out of memory", c->where);
        return;
    }
    b->conn = c;
    b->attempt = c->attempts;
    b->w.data = b;
    c->state = S_LOADING;
    e = uv_queue_work(c->loop, &b->w, boot_work, boot_done);
    if (e != 0) {
        council__free(b);
        teardown(c, COUNCIL_EIO, "bootstrap on %s: %s", c->where,
                 uv_strerror(e));
        return;
    }
    c->nboots++;
}

/* ---- open and close ---- */

static void
on_timer_close(uv_handle_t *h)
{
    council__conn *c = h->data;

    c->timers_open--;
    maybe_free(c);
}

/* Frees c and what open copied into it. */
static void
free_parsed(council__conn *c)
{
    size_t i;

    council__free(c->host);
    scrub_free(c->user);
    scrub_free(c->pass);
    for (i = 0; c->channels != NULL && i < c->n_channels; i++)
        council__free(c->channels[i]);
    council__free(c->channels);
    council__free(c);
}

static void
maybe_free(council__conn *c)
{
    void (*done)(void *);
    void *ud;

    if (!c->closing || c->timers_open > 0 || c->nsocks > 0 || c->nboots > 0)
        return;
    done = c->on_done;
    ud = c->done_ud;
    free_parsed(c);
    if (done != NULL)
        done(ud);
}

council_err
council__conn_check_url(const char *url, char *where, size_t where_size,
                        council_diag *diag)
{
    council__conn *c;
    council_err rc;

    if (url == NULL) {
        diag_set(diag, "", "no URL");
        return COUNCIL_EINVAL;
    }
    c = council__calloc(1, sizeof(*c));
    if (c == NULL)
        return COUNCIL_ENOMEM;
    rc = parse_url(c, url, diag);
    if (rc == COUNCIL_OK && where != NULL && where_size > 0)
        snprintf(where, where_size, "%s", c->where);
    free_parsed(c);
    return rc;
}

council_err
council__conn_open(uv_loop_t *loop, const council__conn_opts *o,
                   council__conn **out, council_diag *diag)
{
    council__conn *c;
    council_err rc;

    if (out != NULL)
        *out = NULL;
    if (loop == NULL || o == NULL || out == NULL || o->url == NULL) {
        diag_set(diag, "", "no loop, options or URL");
        return COUNCIL_EINVAL;
    }
    c = council__calloc(1, sizeof(*c));
    if (c == NULL)
        return COUNCIL_ENOMEM;
    rc = parse_url(c, o->url, diag);
    if (rc != COUNCIL_OK) {
        free_parsed(c);
        return rc;
    }
    c->loop = loop;
    c->connect_ms =
        o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->command_ms =
        o->command_timeout_ms ? o->command_timeout_ms : DEFAULT_COMMAND_MS;
    c->backoff_min =
        o->backoff_min_ms ? o->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
    c->backoff_max =
        o->backoff_max_ms ? o->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (c->backoff_max < c->backoff_min)
        c->backoff_max = c->backoff_min;
    c->keepalive_s = o->keepalive_s ? o->keepalive_s : DEFAULT_KEEPALIVE_S;
    c->user_timeout_ms =
        o->user_timeout_ms ? o->user_timeout_ms
                           : (unsigned)(c->command_ms + 1000u * c->keepalive_s);
    c->max_reply = o->max_reply_bytes ? o->max_reply_bytes : DEFAULT_MAX_REPLY;
    c->max_elements = o->max_elements ? o->max_elements : DEFAULT_MAX_ELEMENTS;
    if (c->max_elements > INT_MAX)
        c->max_elements = INT_MAX;
    c->load_library = o->load_library;
    c->ping_ms = o->ping_interval_ms ? o->ping_interval_ms : c->command_ms;
    if (o->n_channels > 0) {
        size_t i;

        if (o->channels == NULL) {
            diag_set(diag, c->where, "a subscriber without its channels");
            free_parsed(c);
            return COUNCIL_EINVAL;
        }
        c->channels = council__calloc(o->n_channels, sizeof(char *));
        if (c->channels == NULL) {
            free_parsed(c);
            return COUNCIL_ENOMEM;
        }
        c->n_channels = o->n_channels;
        for (i = 0; i < o->n_channels; i++) {
            if (o->channels[i] == NULL || o->channels[i][0] == '\0') {
                diag_set(diag, c->where, "subscriber channel %zu is empty", i);
                free_parsed(c);
                return COUNCIL_EINVAL;
            }
            c->channels[i] = council__strdup(o->channels[i]);
            if (c->channels[i] == NULL) {
                free_parsed(c);
                return COUNCIL_ENOMEM;
            }
        }
        c->on_message = o->on_message;
    }
    c->on_state = o->on_state;
    c->ud = o->ud;
    c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
    if (c->rng == 0)
        c->rng = 1;
    uv_timer_init(loop, &c->dtimer);
    uv_timer_init(loop, &c->atimer);
    c->dtimer.data = c;
    c->atimer.data = c;
    c->timers_open = 2;
    c->state = S_WAIT;
    uv_timer_start(&c->atimer, on_atimer, 0, 0);
    *out = c;
    return COUNCIL_OK;
}

int
council__conn_is_up(const council__conn *c)
{
    return c != NULL && c->state == S_UP && !c->closing;
}

void
council__conn_get_info(const council__conn *c, council__conn_info *out)
{
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    out->attempts = c->attempts;
    out->connects = c->connects;
    out->last_backoff_ms = c->last_backoff;
    out->pending = c->pending;
}

void
council__conn_close(council__conn *c, void (*on_done)(void *), void *ud)
{
    cmd *k;

    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    c->state = S_CLOSED;
    c->on_done = on_done;
    c->done_ud = ud;
    sock_detach(c->sock);
    c->sock = NULL;
    uv_timer_stop(&c->dtimer);
    uv_timer_stop(&c->atimer);
    while ((k = c->sent.head) != NULL || (k = c->unsent.head) != NULL)
        complete(c, k, COUNCIL_ECLOSED, NULL, "the connection was closed");
    uv_close((uv_handle_t *)&c->dtimer, on_timer_close);
    uv_close((uv_handle_t *)&c->atimer, on_timer_close);
}
