/* SPDX-License-Identifier: MIT */
/*
 * The HTTP side of council serve: libmicrohttpd with its own worker
 * threads (epoll, suspend/resume), routing, bearer-token auth, request
 * body limits, JSON errors, /healthz, and the server's life cycle (open,
 * reload, stop taking runs, cancel, close).
 *
 * Every error is JSON, {"error":{"type","message"}}, with a 4xx or 5xx
 * status.  Checks that need no body (route, method, token, declared
 * Content-Length) answer on the first call of the access handler, before
 * the body is read; a body that grows past --max-body without declaring
 * its length is dropped as it comes and answered 413 at its end (a
 * client that keeps sending past 64 times the limit is disconnected).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve.h"
#include "web_assets.h"

/* An idle connection (not suspended) while it answers: a client that
 * reads nothing of its reply.  Receiving a request has its own, shorter
 * bound on the whole of it (--request-timeout, conns.c). */
#define CONN_TIMEOUT_S 120u
/* libmicrohttpd's memory pool per connection (its default is 32 KiB):
 * request headers and the reply's I/O buffer live in it, and the library
 * clears it between requests, so it costs its whole size in resident
 * memory for every connection.  12 KiB holds header blocks of up to about
 * 11 KB (more: 431) and keeps a follower of a run's events under 20 KiB
 * (stream.c). */
#define CONN_POOL_SIZE ((size_t)12288)

/* One HTTP request: made by the URI callback (on_uri), freed by the
 * request-completed callback. */
typedef struct req {
    srv_target t; /* the target, decoded from the bytes sent (route.c) */
    int oom;      /* the target could not be decoded (memory) */
    int started;  /* the access handler's first call ran */
    int post;
    int head;
    sbuf body;
    int too_big;
    size_t dropped;
    int replied; /* a reply was queued on the first call */
    stream *st;  /* SSE or chat follower */
} req;

/* Status classes counted for /metrics. */
static atomic_uint_fast64_t http_by_class[6];

uint64_t
srv_http_count(int cls)
{
    return atomic_load(&http_by_class[cls]);
}

void
srv_count_status(unsigned status)
{
    unsigned c = status / 100;

    atomic_fetch_add(&http_by_class[c >= 1 && c <= 5 ? c : 0], 1);
}

/* ---- logging and replies ------------------------------------------------- */

void
srv_log(srv *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    (void)s;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "council serve: %s\n", line);
}

enum MHD_Result
srv_reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
          char *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (; headers != NULL && headers[0] != NULL; headers += 2)
        MHD_add_response_header(resp, headers[0], headers[1]);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    srv_count_status(status);
    return ret;
}

enum MHD_Result
srv_reply_json(struct MHD_Connection *conn, unsigned status, json_t *v,
               const char *const *headers)
{
    char *text;
    size_t len;

    if (v == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (text == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    len = strlen(text);
    /* A newline ends the body, for terminals and line readers. */
    {
        char *t = realloc(text, len + 2);

        if (t == NULL) {
            free(text);
            return srv_error(conn, 503, "server_error", "out of memory");
        }
        text = t;
        text[len++] = '\n';
        text[len] = '\0';
    }
    return srv_reply(conn, status, "application/json", text, len, headers);
}

static enum MHD_Result error_v(struct MHD_Connection *conn, unsigned status,
                               const char *type, const char *const *headers,
                               const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static enum MHD_Result
error_v(struct MHD_Connection *conn, unsigned status, const char *type,
        const char *const *headers, const char *fmt, va_list ap)
{
    char msg[600];
    sbuf b = {0};
    char *text;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    sbuf_str(&b, "{\"error\":{\"type\":\"");
    sbuf_json(&b, type, strlen(type));
    sbuf_str(&b, "\",\"message\":\"");
    sbuf_json(&b, msg, strlen(msg));
    sbuf_str(&b, "\"}}\n");
    text = sbuf_take(&b);
    if (text == NULL)
        return MHD_NO;
    return srv_reply(conn, status, "application/json", text, strlen(text),
                     headers);
}

enum MHD_Result
srv_error(struct MHD_Connection *conn, unsigned status, const char *type,
          const char *fmt, ...)
{
    enum MHD_Result ret;
    va_list ap;

    va_start(ap, fmt);
    ret = error_v(conn, status, type, NULL, fmt, ap);
    va_end(ap);
    return ret;
}

static enum MHD_Result error_h(struct MHD_Connection *conn, unsigned status,
                               const char *type, const char *const *headers,
                               const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result
error_h(struct MHD_Connection *conn, unsigned status, const char *type,
        const char *const *headers, const char *fmt, ...)
{
    enum MHD_Result ret;
    va_list ap;

    va_start(ap, fmt);
    ret = error_v(conn, status, type, headers, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result
srv_refuse_stream(srv *s, struct MHD_Connection *conn)
{
    const char *hdrs[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};

    return error_h(conn, 429, "rate_limit_error", hdrs,
                   "%zu streams are open, the most this server serves at "
                   "once (--max-streams); try again later",
                   s->o.max_streams);
}

/* ---- routing ------------------------------------------------------------- */

static int
auth_ok(srv *s, struct MHD_Connection *conn)
{
    const char *h;

    if (s->token == NULL)
        return 1;
    h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return const_time_eq(h, strlen(h), s->token, s->token_len);
}

/* A file of the web page.  Open without a token, like /healthz: the page
 * holds no data, and asks for the token when the API says 401. */
static enum MHD_Result
web_file(struct MHD_Connection *conn, const char *url)
{
    const council_web_asset *a = council_web_asset_find(url);
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (a == NULL)
        return srv_error(conn, 404, "not_found_error", "no such file");
    resp = MHD_create_response_from_buffer(a->len, (void *)a->data,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            a->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    srv_count_status(200);
    return ret;
}

static enum MHD_Result
healthz(srv *s, struct MHD_Connection *conn)
{
    int stopping;
    size_t live;

    pthread_mutex_lock(&s->mu);
    stopping = s->stopping;
    live = s->live;
    pthread_mutex_unlock(&s->mu);
    return srv_reply_json(conn, stopping ? 503 : 200,
                          json_pack("{s:s, s:s, s:I}", "status",
                                    stopping ? "stopping" : "ok", "version",
                                    council_version(), "runs_in_flight",
                                    (json_int_t)live),
                          NULL);
}

/* Checks made before the body is read.  Returns 1 if a reply was
 * queued (or the connection must close: *ret says). */
static int
first_checks(srv *s, struct MHD_Connection *conn, req *r, const char *method,
             enum MHD_Result *ret)
{
    const char *cl, *type;
    char msg[200];
    unsigned status;

    if (r->oom) {
        *ret = srv_error(conn, 503, "server_error", "out of memory");
        return 1;
    }
    status = srv_check_target(&r->t, method, &type, msg, sizeof(msg));
    if (status == 405) {
        const char *hdrs[] = {MHD_HTTP_HEADER_ALLOW, srv_allowed(r->t.rt),
                              NULL};

        *ret = error_h(conn, status, type, hdrs, "%s", msg);
        return 1;
    }
    if (status != 0) {
        *ret = srv_error(conn, status, type, "%s", msg);
        return 1;
    }
    if (r->t.rt != RT_HEALTH && r->t.rt != RT_WEB && !auth_ok(s, conn)) {
        const char *hdrs[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", NULL};

        *ret = error_h(conn, 401, "authentication_error", hdrs,
                       "a valid 'Authorization: Bearer TOKEN' header is "
                       "required");
        return 1;
    }
    if (r->t.id_bad) {
        *ret = srv_error(conn, 400, "invalid_request_error",
                         "malformed run id (1 to 64 printable ASCII "
                         "characters, no '/')");
        return 1;
    }
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (r->post && cl != NULL && strtoull(cl, NULL, 10) > s->o.max_body) {
        const char *hdrs[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};

        /* The body is not read: the connection cannot be reused. */
        *ret = error_h(conn, 413, "request_too_large", hdrs,
                       "the request body is larger than %zu bytes "
                       "(--max-body)",
                       s->o.max_body);
        return 1;
    }
    return 0;
}

/* The request target as the client sent it, before libmicrohttpd
 * decodes it in place (route.h says why); the request object starts
 * here. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    req *r = calloc(1, sizeof(*r));

    (void)cls;
    conns_request_line(conn);
    if (r == NULL)
        return NULL;
    if (srv_target_parse(uri != NULL ? uri : "", uri != NULL ? strlen(uri) : 0,
                         &r->t) != 0)
        r->oom = 1;
    return r;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **con_cls)
{
    srv *s = cls;
    req *r = *con_cls;
    enum MHD_Result ret = MHD_YES;
    const srv_target *t;

    (void)version;
    (void)url; /* decoded by libmicrohttpd: r->t is what the client sent */
    if (r == NULL)
        return MHD_NO; /* on_uri ran out of memory */
    t = &r->t;
    if (!r->started) {
        r->started = 1;
        r->post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        r->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
        if (first_checks(s, conn, r, method, &ret)) {
            r->replied = 1;
            /* A reply queued now ends the request: libmicrohttpd reads
             * no body after it. */
            if (conns_replying(conn) != 0)
                return MHD_NO;
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Keep a POST body up to the limit; drop everything else. */
        if (r->post && !r->too_big && !r->replied) {
            if (*upload_size > s->o.max_body - r->body.len) {
                r->too_big = 1;
                sbuf_free(&r->body);
            } else {
                sbuf_add(&r->body, upload, *upload_size);
                if (r->body.oom)
                    return MHD_NO;
            }
        }
        if (r->too_big || !r->post) {
            r->dropped += *upload_size;
            if (r->dropped / 64 > s->o.max_body)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->replied)
        return MHD_YES;
    /* The whole request is in: from here on the connection answers, and
     * the bound on receiving a request (conns.c) no longer applies. */
    if (r->st == NULL && conns_replying(conn) != 0)
        return MHD_NO;
    if (r->too_big)
        return srv_error(conn, 413, "request_too_large",
                         "the request body is larger than %zu bytes "
                         "(--max-body)",
                         s->o.max_body);
    switch (t->rt) {
    case RT_WEB:
        return web_file(conn, t->path);
    case RT_HEALTH:
        return healthz(s, conn);
    case RT_METRICS:
        return metrics_get(s, conn);
    case RT_MODELS:
        return models_get(s, conn);
    case RT_CHAT:
        if (r->st != NULL)
            return chat_resume(s, r->st);
        return chat_post(s, conn, r->body.p, r->body.len, &r->st);
    case RT_RUNS:
        if (r->post)
            return runs_post(s, conn, r->body.p, r->body.len);
        return runs_list(s, conn, t);
    case RT_RUN:
        if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0)
            return runs_delete(s, conn, t->id, srv_target_arg(t, "purge"));
        return runs_get(s, conn, t->id);
    case RT_EVENTS:
        return events_get(s, conn, t->id, srv_target_arg(t, "after"), r->head,
                          &r->st);
    default:
        return srv_error(conn, 404, "not_found_error", "no such endpoint");
    }
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    req *r = *con_cls;

    (void)cls;
    /* The connection may carry another request: it gets the whole bound
     * to send it (conns.c). */
    conns_request_done(conn);
    if (r == NULL)
        return;
    if (r->st != NULL)
        stream_free(r->st, toe);
    sbuf_free(&r->body);
    srv_target_free(&r->t);
    free(r);
    *con_cls = NULL;
}

/* ---- listen address ------------------------------------------------------ */

/* "A.B.C.D:PORT" or "[v6]:PORT", numeric only; *loopback is set for
 * 127.0.0.0/8 and ::1. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, int *loopback,
             char *err, size_t errsz)
{
    char host[64];
    const char *colon, *hs = s, *he;
    char *end;
    unsigned long port;

    memset(ss, 0, sizeof(*ss));
    colon = strrchr(s, ':');
    if (colon == NULL)
        goto bad;
    he = colon;
    if (s[0] == '[') {
        if (colon == s || colon[-1] != ']')
            goto bad;
        hs = s + 1;
        he = colon - 1;
    }
    if ((size_t)(he - hs) >= sizeof(host) || he == hs)
        goto bad;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (colon[1] < '0' || colon[1] > '9')
        goto bad;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port > 65535)
        goto bad;
    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            goto bad;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            goto bad;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    return 0;
bad:
    snprintf(err, errsz,
             "--listen %s: expected a numeric HOST:PORT such as "
             "127.0.0.1:8080 or [::1]:8080",
             s);
    return -1;
}

/* ---- life cycle ---------------------------------------------------------- */

static const char demo_yaml[] =
    "name: demo\n"
    "strategy: rank\n"
    "providers:\n"
    "  mock: { kind: openai, base_url: %s }\n"
    "members:\n"
    "  - { name: alpha, provider: mock, model: mock-a, system: \"You are a "
    "careful analyst.\" }\n"
    "  - { name: beta,  provider: mock, model: mock-b, system: \"You are a "
    "skeptic; look for what is wrong.\" }\n"
    "  - { name: gamma, provider: mock, model: mock-c }\n"
    "  - { name: delta, provider: mock, model: mock-d }\n"
    "chairman: { provider: mock, model: mock-chair }\n"
    "limits: { member_timeout: 30s, deadline: 120s, quorum: 3, "
    "max_tokens: 512 }\n";

/* libmicrohttpd's fatal errors: say so in the server's log, then abort as
 * its default handler does (it would print to stderr without our
 * prefix). */
static void
mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    fprintf(stderr, "council serve: libmicrohttpd: fatal error at %s:%u: %s\n",
            file != NULL ? file : "?", line, reason != NULL ? reason : "?");
    fflush(stderr);
    abort();
}

/*
 * The engine's log.  The engine logs the first event of each episode of a
 * recorder's failures and sums the episode up in a line of its own
 * (core/rechost.c): the first lines are logged and counted in the run,
 * the sums added to the count, and the reaper says each recorder's total
 * when the run has ended (fail_summary).
 */
static void
engine_log(const char *line, void *ud)
{
    srv *s = ud;
    const char *p =
        strncmp(line, "run ", 4) == 0 ? strstr(line, ": recorder ") : NULL;
    unsigned long long seq = 0, k = 0, a, b;
    int idx, sum = 0;

    if (p != NULL && (size_t)(p - line - 4) < 72 &&
        (sscanf(p, ": recorder %d failed on seq %llu", &idx, &seq) == 2 ||
         (sum = sscanf(p,
                       ": recorder %d failed on %llu events (seq %llu to "
                       "%llu)",
                       &idx, &k, &a, &b) == 4)) &&
        idx >= 0 && idx < SRV_MAX_RECORD + 2 && (!sum || k > 0)) {
        char id[72];
        srun *r, *dead = NULL;
        int counted;

        snprintf(id, sizeof(id), "%.*s", (int)(p - line - 4), line + 4);
        pthread_mutex_lock(&s->mu);
        r = srun_find(s, id); /* a reference */
        counted = r != NULL;
        if (r != NULL) {
            if (sum) {
                r->rec_fail[idx].n += k - 1; /* its first was counted */
                r->rec_fail[idx].last = b;
            } else {
                if (r->rec_fail[idx].n++ == 0)
                    r->rec_fail[idx].first = seq;
                r->rec_fail[idx].last = seq;
            }
            srun_unref_locked(s, r, &dead);
        }
        pthread_mutex_unlock(&s->mu);
        srun_free(dead);
        if (!sum || !counted) /* a run the reaper will not sum up */
            srv_log(s, "%s", line);
        return;
    }
    srv_log(s, "%s", line);
}

/*
 * How many connections libmicrohttpd may hold: the descriptor limit less
 * a reserve for the runs' own sockets (provider calls, the store), so a
 * client past --max-streams still gets its 429 instead of a connection
 * that is never accepted.
 */
static unsigned
conn_limit(const srv_opts *o)
{
    struct rlimit rl;
    rlim_t reserve = (rlim_t)o->max_runs * 16 + 256;
    rlim_t n = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = rl.rlim_cur;
    if (n > 1000000)
        n = 1000000;
    return n > reserve + 64 ? (unsigned)(n - reserve) : 64u;
}

int
srv_open(const srv_opts *o, srv **out, char *err, size_t errsz)
{
    srv *s = NULL;
    struct sockaddr_storage ss;
    int loopback = 0, rc = -1;
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    const union MHD_DaemonInfo *info;
    unsigned int flags;
    council_diag diag;
    council_err e;
    pthread_condattr_t ca;
    char host[INET6_ADDRSTRLEN];

    *out = NULL;
    if (parse_listen(o->listen, &ss, &loopback, err, errsz) != 0)
        return -2;
    if (!loopback && (o->token == NULL || o->token[0] == '\0') &&
        !o->insecure) {
        snprintf(err, errsz,
                 "refusing to listen on %s without a token: anyone who "
                 "can reach it could run councils with your API keys; "
                 "set --token or COUNCIL_TOKEN (or pass --insecure)",
                 o->listen);
        return -2;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    s->o = *o;
    if (o->token != NULL && o->token[0] != '\0') {
        s->token = strdup(o->token);
        if (s->token == NULL) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
        s->token_len = strlen(s->token);
    }
    pthread_mutex_init(&s->mu, NULL);
    s->mu_init = 1;
    conns_init(s);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->reap_cv, &ca);
    pthread_cond_init(&s->tick_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->cv_init = 1;
    if (reg_grow(s) != 0) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }

    /* The store: a missing file is fine (the first run creates it); a
     * file that is not a council store is not.  Opened read-write, so
     * the runs a killed server (or council run) left without an outcome
     * are closed as crashed before anything is served. */
    memset(&diag, 0, sizeof(diag));
    {
        council_store *h = NULL;

        e = council_store_open(o->db, 0, &h, &diag);
        council_store_close(h);
    }
    if (e != COUNCIL_OK && e != COUNCIL_ENOTFOUND) {
        snprintf(err, errsz, "--db %s: %s", o->db,
                 diag.msg[0] ? diag.msg : council_strerror(e));
        goto out;
    }

    if (o->councils_dir != NULL) {
        if (cset_load_dir(o->councils_dir, &s->councils, err, errsz) != 0) {
            rc = -2;
            goto out;
        }
    } else {
        council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
        char yaml[2048];

        mo.seed = 1;
        mo.tokens_per_sec = 400;
        memset(&diag, 0, sizeof(diag));
        if (council_mockllm_open(&mo, &s->demo_mock, &diag) != COUNCIL_OK) {
            snprintf(err, errsz, "cannot start the demo mock LLM: %s",
                     diag.msg);
            goto out;
        }
        snprintf(yaml, sizeof(yaml), demo_yaml,
                 council_mockllm_base_url(s->demo_mock));
        if (cset_load_text(yaml, "<demo>", &s->councils, err, errsz) != 0)
            goto out;
    }

    eo.log = engine_log;
    eo.log_ud = s;
    eo.host_program = o->host_program;
    e = council_engine_open(&eo, &s->eng);
    if (e != COUNCIL_OK) {
        snprintf(err, errsz, "cannot open the engine: %s", council_strerror(e));
        goto out;
    }
    if (pthread_create(&s->reaper, NULL, srv_reaper_main, s) != 0) {
        snprintf(err, errsz, "cannot start a thread");
        goto out;
    }
    s->reaper_started = 1;
    if (ticker_start(s) != 0) {
        snprintf(err, errsz, "cannot start a thread");
        goto out;
    }

    MHD_set_panic_func(mhd_panic, NULL);
    flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, conns_notify, s,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(o->threads > 1 ? o->threads : 1),
        MHD_OPTION_CONNECTION_LIMIT, conn_limit(o),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_client_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_POOL_SIZE,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    if (s->d == NULL) {
        snprintf(err, errsz, "cannot listen on %s: %s", o->listen,
                 errno != 0 ? strerror(errno)
                            : "the HTTP server did not start");
        goto out;
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        snprintf(err, errsz, "cannot learn the bound port");
        goto out;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

        if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
            snprintf(host, sizeof(host), "::1");
        else
            inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        snprintf(s->url, sizeof(s->url), "http://[%s]:%u", host,
                 (unsigned)info->port);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

        if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
            snprintf(host, sizeof(host), "127.0.0.1");
        else
            inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        snprintf(s->url, sizeof(s->url), "http://%s:%u", host,
                 (unsigned)info->port);
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    srv_close(s);
    return rc;
}

const char *
srv_url(const srv *s)
{
    return s->url;
}

int
srv_reload(srv *s)
{
    char err[1024];
    cset *c = NULL, *old;
    int last;

    if (s->o.councils_dir == NULL) {
        srv_log(s, "SIGHUP: no --councils directory to reload");
        return 0;
    }
    if (cset_load_dir(s->o.councils_dir, &c, err, sizeof(err)) != 0) {
        pthread_mutex_lock(&s->mu);
        s->c.reload_failures++;
        pthread_mutex_unlock(&s->mu);
        srv_log(s, "reload failed, keeping the councils loaded before: %s",
                err);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    old = s->councils;
    s->councils = c;
    s->c.reloads++;
    last = --old->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        cset_free(old);
    srv_log(s, "reloaded %zu council%s from %s", c->n, c->n == 1 ? "" : "s",
            s->o.councils_dir);
    return 0;
}

void
srv_stop_accepting(srv *s)
{
    /* New runs get 503 from here on; connections are still accepted and
     * answered (so a client learns why, and /healthz says "stopping").
     * Not MHD_quiesce_daemon: with MHD's worker threads it races them on
     * the listen socket's epoll registration (ThreadSanitizer caught
     * close() against a worker's epoll_ctl; keeping the socket open until
     * MHD_stop_daemon made MHD panic, "Failed to remove listen FD from
     * epoll set"). */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
}

size_t
srv_live_runs(srv *s)
{
    size_t n;

    pthread_mutex_lock(&s->mu);
    n = s->live;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void
srv_cancel_all(srv *s, uint64_t timeout_ms)
{
    char **ids = NULL;
    size_t n = 0, i;
    srun *r;
    uint64_t end = mono_ns() + timeout_ms * 1000000u;

    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (r = s->first; r != NULL; r = r->next)
        if (!r->ended)
            n++;
    ids = calloc(n > 0 ? n : 1, sizeof(*ids));
    i = 0;
    for (r = s->first; ids != NULL && r != NULL && i < n; r = r->next)
        if (!r->ended)
            ids[i++] = strdup(r->id);
    pthread_mutex_unlock(&s->mu);
    for (i = 0; ids != NULL && i < n; i++) {
        if (ids[i] != NULL)
            council_engine_cancel(s->eng, ids[i]);
        free(ids[i]);
    }
    free(ids);
    while (srv_live_runs(s) > 0 && mono_ns() < end)
        usleep(10000);
}

void
srv_close(srv *s)
{
    srun *dead = NULL;

    if (s == NULL)
        return;
    if (s->mu_init) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        s->closing = 1;
        streams_resume_all(s);
        pthread_mutex_unlock(&s->mu);
    }
    if (s->d != NULL)
        MHD_stop_daemon(s->d);
    ticker_stop(s);
    /* Runs still in flight end as crashed("shutdown"); their recorders
     * are finalized before this returns. */
    council_engine_close(s->eng);
    if (s->reaper_started) {
        pthread_mutex_lock(&s->mu);
        s->reap_stop = 1;
        pthread_cond_signal(&s->reap_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->reaper, NULL);
    }
    if (s->mu_init) {
        pthread_mutex_lock(&s->mu);
        while (s->first != NULL) {
            srun *r = s->first;

            reg_remove(s, r);
            srun_unref_locked(s, r, &dead);
        }
        pthread_mutex_unlock(&s->mu);
    }
    srun_free(dead);
    store_pool_close(s);
    free(s->buckets);
    if (s->councils != NULL && --s->councils->refs == 0)
        cset_free(s->councils);
    idem_free(s->idem);
    council_mockllm_close(s->demo_mock);
    if (s->cv_init) {
        pthread_cond_destroy(&s->reap_cv);
        pthread_cond_destroy(&s->tick_cv);
    }
    if (s->mu_init)
        pthread_mutex_destroy(&s->mu);
    conns_destroy(s);
    free(s->token);
    free(s);
}
