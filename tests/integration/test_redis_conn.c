/* SPDX-License-Identifier: MIT */
/*
 * The asynchronous Redis connection (src/bus/conn.h) against a real
 * redis-server (tests/support/redis_server.h), through the loopback fault
 * proxy (tests/support/faultproxy.h) and against fake servers that answer
 * garbage, never answer, close mid-reply or announce huge replies: the
 * URL and its errors (never the password), AUTH and SELECT, the library
 * bootstrap, pipelining in order, each command's deadline, reconnection
 * with backoff after a reset, a blackhole and a SIGKILLed server, and
 * close with commands in flight.  Every command's callback is counted:
 * exactly once each.
 *
 * TEST_LABELS: threaded
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "bus/conn.h"
#include "bus/fn.h"
#include "faultproxy.h"
#include "redis_server.h"
#include "runner.h"

#define SECRET "hunter2-Secret-Pw"

/* ---- the loop ---- */

static uv_loop_t loop;

static void
on_tick(uv_timer_t *t)
{
    (void)t;
}

static uint64_t
ms_now(void)
{
    return uv_hrtime() / 1000000u;
}

/* Runs the loop until *flag or the time is up (scaled); 1 if *flag. */
static int
run_until(const int *flag, double seconds)
{
    uv_timer_t tick;
    uint64_t end =
        ms_now() + (uint64_t)(seconds * 1000 * runner_timeout_multiplier());

    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    while (!*flag && ms_now() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag;
}

static void
loop_start(void)
{
    ASSERT_EQ_INT(uv_loop_init(&loop), 0);
}

/* Everything closed: the loop has no handle left. */
static void
loop_end(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- a connection and its state ---- */

typedef struct watch {
    int ups, downs, up;
    council_err last_rc;
    char reason[400];
    uint64_t up_ms, down_ms;
    int closed;
} watch;

static void
on_state(council__conn *c, int up, council_err rc, const char *reason, void *ud)
{
    watch *w = ud;

    (void)c;
    if (strstr(reason, SECRET) != NULL)
        FAIL("the password in a state reason: %s", reason);
    w->up = up;
    if (up) {
        w->ups++;
        w->up_ms = ms_now();
    } else {
        w->downs++;
        w->down_ms = ms_now();
        w->last_rc = rc;
        snprintf(w->reason, sizeof(w->reason), "%s", reason);
    }
}

static void
on_closed(void *ud)
{
    ((watch *)ud)->closed = 1;
}

static council__conn *
open_conn(const char *url, watch *w, council__conn_opts *o_in)
{
    council__conn_opts o;
    council__conn *c = NULL;
    council_diag d;

    if (o_in != NULL)
        o = *o_in;
    else
        memset(&o, 0, sizeof(o));
    o.url = url;
    o.on_state = on_state;
    o.ud = w;
    memset(&d, 0, sizeof(d));
    if (council__conn_open(&loop, &o, &c, &d) != COUNCIL_OK)
        FAIL("open %s: %s", url, d.msg);
    return c;
}

static void
close_conn(council__conn *c, watch *w)
{
    council__conn_close(c, on_closed, w);
    ASSERT(run_until(&w->closed, 5));
}

/* ---- commands ---- */

typedef struct result {
    int calls;
    council_err rc;
    int type;
    long long integer;
    char str[256];
    char msg[400];
    uint64_t at_ms;
    int order; /* the global completion order */
} result;

static int completions;

static void
on_reply(council__conn *c, council_err rc, const redisReply *rep,
         const char *msg, void *ud)
{
    result *r = ud;

    (void)c;
    r->calls++;
    r->rc = rc;
    r->at_ms = ms_now();
    r->order = ++completions;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
    if (strstr(msg, SECRET) != NULL)
        FAIL("the password in a command's message: %s", msg);
    if (rc == COUNCIL_OK) {
        ASSERT_NOT_NULL(rep);
        r->type = rep->type;
        r->integer = rep->integer;
        if (rep->str != NULL)
            snprintf(r->str, sizeof(r->str), "%s", rep->str);
    } else {
        ASSERT_NULL(rep);
    }
}

/* Sends a command of up to 8 words (split on spaces). */
static void
send_words(council__conn *c, const char *words, uint64_t timeout_ms, result *r)
{
    char buf[512], *save = NULL, *t;
    const char *av[8];
    size_t lens[8];
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", words);
    for (t = strtok_r(buf, " ", &save); t != NULL && n < 8;
         t = strtok_r(NULL, " ", &save)) {
        av[n] = t;
        lens[n++] = strlen(t);
    }
    ASSERT_OK(council__conn_command(c, n, av, lens, timeout_ms, on_reply, r));
}

/* Sends and waits for the reply; FAILs unless it is OK. */
static void
must(council__conn *c, const char *words, result *r)
{
    memset(r, 0, sizeof(*r));
    send_words(c, words, 5000, r);
    ASSERT(run_until(&r->calls, 10));
    if (r->rc != COUNCIL_OK)
        FAIL("%s: %s: %s", words, council_strerror(r->rc), r->msg);
    ASSERT_EQ_INT(r->calls, 1);
}

/* ---- a blocking client for setup ---- */

static redisReply *
sync_cmd(int port, const char *auth, const char *fmt, const char *arg)
{
    struct timeval tv = {5, 0};
    redisContext *s = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep;

    ASSERT(s != NULL && s->err == 0);
    redisSetTimeout(s, tv);
    if (auth != NULL)
        freeReplyObject(redisCommand(s, "AUTH %s", auth));
    rep = redisCommand(s, fmt, arg);
    ASSERT_NOT_NULL(rep);
    redisFree(s);
    return rep;
}

/* ---- the URL ---- */

TEST(bad_urls_are_refused_without_the_password)
{
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"", "expected redis://"},
        {"http://" SECRET "@h", "expected redis://"},
        {"rediss://:" SECRET "@h", "TLS"},
        {"redis://", "no host"},
        {"redis://:" SECRET "@", "no host"},
        {"redis://:" SECRET "@h:0", "port"},
        {"redis://:" SECRET "@h:65536", "port"},
        {"redis://:" SECRET "@h:12x", "unexpected"},
        {"redis://:" SECRET "@h:6379/x", "unexpected"},
        {"redis://:" SECRET "@h/99999999999", "database"},
        {"redis://:" SECRET "@h/1?x=1", "query"},
        {"redis://" SECRET "@h", "a user without a password"},
        {"redis://user:@h", "empty password"},
        {"redis://:%zz" SECRET "@h", "%-escape"},
        {"redis://:" SECRET "%00@h", "%-escape"},
        {"redis://:" SECRET "@[::1", "IPv6"},
        {"redis://:" SECRET "@[nothex]:1", "IPv6"},
        {"redis://:" SECRET "@h o", "unexpected"},
        {"unix://relative", "absolute"},
        {"unix://:" SECRET "@/tmp/x", "no user or password"},
    };
    size_t i;

    loop_start();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        council__conn_opts o;
        council__conn *c = (council__conn *)&o;
        council_diag d;

        memset(&o, 0, sizeof(o));
        memset(&d, 0, sizeof(d));
        o.url = cases[i].url;
        ASSERT_EQ_INT(council__conn_open(&loop, &o, &c, &d), COUNCIL_EINVAL);
        ASSERT_NULL(c);
        ASSERT_STR_CONTAINS(d.msg, cases[i].says);
        if (strstr(d.msg, SECRET) != NULL || strstr(d.msg, "hunter2") != NULL)
            FAIL("the password in \"%s\"", d.msg);
        if (strstr(cases[i].url, "@") != NULL &&
            strstr(cases[i].url, "://") != NULL)
            ASSERT_STR_CONTAINS(d.msg, "***");
    }
    loop_end();
}

/* ---- against a real server ---- */

TEST(connect_auth_select)
{
    redis_server *r = redis_server_start(NULL);
    int port = redis_server_port(r);
    char url[256];
    council__conn *c;
    watch w;
    result res;
    redisReply *rep;

    freeReplyObject(sync_cmd(port, NULL, "CONFIG SET requirepass %s", SECRET));
    freeReplyObject(
        sync_cmd(port, SECRET, "ACL SETUSER alice on >%s ~* &* +@all", "pw%x"));
    loop_start();
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d/3", SECRET, port);
    c = open_conn(url, &w, NULL);
    ASSERT(run_until(&w.up, 5));
    must(c, "SET where db3", &res);
    close_conn(c, &w);
    rep = sync_cmd(port, SECRET, "GET %s", "where");
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_NIL); /* not in db 0 */
    freeReplyObject(rep);

    /* A user and a %-encoded password: "pw%x" is pw%25x. */
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "redis://alice:pw%%25x@127.0.0.1:%d/3", port);
    c = open_conn(url, &w, NULL);
    ASSERT(run_until(&w.up, 5));
    must(c, "GET where", &res);
    ASSERT_STR_EQ(res.str, "db3");
    must(c, "ACL WHOAMI", &res);
    ASSERT_STR_EQ(res.str, "alice");
    close_conn(c, &w);

    /* A wrong password: refused, retried, never quoted. */
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "redis://:%s-WRONG@127.0.0.1:%d", SECRET, port);
    c = open_conn(url, &w, NULL);
    ASSERT(run_until(&w.downs, 5));
    ASSERT_EQ_INT(w.ups, 0);
    ASSERT_EQ_INT(w.last_rc, COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(w.reason, "AUTH refused");
    ASSERT_STR_CONTAINS(w.reason, "redis://127.0.0.1:");
    /* A command waiting for the connection times out unsent. */
    memset(&res, 0, sizeof(res));
    send_words(c, "PING", 300, &res);
    ASSERT(run_until(&res.calls, 5));
    ASSERT_EQ_INT(res.rc, COUNCIL_ETIMEDOUT);
    ASSERT_STR_CONTAINS(res.msg, "not sent within 300 ms");
    ASSERT_STR_CONTAINS(res.msg, "AUTH refused");
    close_conn(c, &w);
    ASSERT_EQ_INT(res.calls, 1);
    loop_end();
    redis_server_stop(r);
}

TEST(unix_socket)
{
    char path[256], url[300];
    const char *extra[] = {"--unixsocket", path, NULL};
    redis_server_opts ro;
    redis_server *r;
    council__conn *c;
    watch w;
    result res;

    snprintf(path, sizeof(path), "/tmp/council-conn-%d.sock", (int)getpid());
    memset(&ro, 0, sizeof(ro));
    ro.extra = extra;
    r = redis_server_start(&ro);
    loop_start();
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "unix://%s", path);
    c = open_conn(url, &w, NULL);
    ASSERT(run_until(&w.up, 5));
    must(c, "PING", &res);
    ASSERT_STR_EQ(res.str, "PONG");
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
    unlink(path);
}

typedef struct fn_result {
    int calls;
    council_err rc;
    council__fn_status status;
} fn_result;

static void
on_enqueued(council__conn *c, council_err rc, const redisReply *rep,
            const char *msg, void *ud)
{
    fn_result *fr = ud;
    council__fn_reply out;
    council_diag d;

    (void)c;
    (void)msg;
    fr->calls++;
    fr->rc = rc;
    if (rc == COUNCIL_OK) {
        fr->rc = council__fn_parse_enqueue(rep, "R1", &out, &d);
        fr->status = out.status;
    }
}

TEST(library_bootstrap)
{
    redis_server *r = redis_server_start(NULL);
    int port = redis_server_port(r);
    council__conn_opts o;
    council__conn *c;
    char url[256];
    watch w;
    result res;

    freeReplyObject(sync_cmd(port, NULL, "CONFIG SET requirepass %s", SECRET));
    loop_start();
    memset(&o, 0, sizeof(o));
    o.load_library = 1;
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d/2", SECRET, port);
    c = open_conn(url, &w, &o);
    ASSERT(run_until(&w.up, 10));
    must(c, "FCALL_RO council_v1_version 0", &res);
    ASSERT_EQ_INT(res.type, REDIS_REPLY_INTEGER);
    ASSERT_EQ_INT(res.integer, 1);
    /* A function's command from fn.h, its reply parsed by fn.h. */
    {
        council__fn_cmd cmd;
        council_diag d;
        fn_result fr;

        memset(&cmd, 0, sizeof(cmd));
        memset(&fr, 0, sizeof(fr));
        ASSERT_OK(council__fn_enqueue_cmd(&cmd, "R1", "{}", 2, "test", &d));
        ASSERT_OK(council__conn_command(c, cmd.argc, cmd.argv, cmd.argvlen, 0,
                                        on_enqueued, &fr));
        council__fn_cmd_free(&cmd);
        ASSERT(run_until(&fr.calls, 5));
        ASSERT_OK(fr.rc);
        ASSERT_EQ_INT(fr.status, COUNCIL__FN_CREATED);
    }
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
}

TEST(library_bootstrap_refused)
{
    redis_server *r = redis_server_start(NULL);
    int port = redis_server_port(r);
    council__conn_opts o;
    council__conn *c;
    watch w;
    redisReply *rep;

    /* A council_v1 library that is not ours. */
    rep = sync_cmd(port, NULL, "FUNCTION LOAD %s",
                   "#!lua name=council_v1\n"
                   "redis.register_function('other', function() return 1 "
                   "end)");
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_STRING);
    freeReplyObject(rep);
    loop_start();
    memset(&o, 0, sizeof(o));
    o.load_library = 1;
    memset(&w, 0, sizeof(w));
    c = open_conn(redis_server_url(r), &w, &o);
    ASSERT(run_until(&w.downs, 10));
    ASSERT_EQ_INT(w.ups, 0);
    ASSERT_EQ_INT(w.last_rc, COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(w.reason, "the council library on redis://");
    ASSERT_STR_CONTAINS(w.reason, "FUNCTION DELETE");
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
}

/* The connection's socket, found among this process's descriptors by its
 * peer's port; -1 if none. */
static int
socket_to(int port)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    ASSERT_NOT_NULL(d);
    while ((e = readdir(d)) != NULL && found < 0) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int fd = (int)strtol(e->d_name, NULL, 10);

        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 &&
            a.sin_family == AF_INET && ntohs(a.sin_port) == port)
            found = fd;
    }
    closedir(d);
    return found;
}

static int
sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);

    ASSERT_EQ_INT(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

TEST(keepalive_and_user_timeout)
{
    redis_server *r = redis_server_start(NULL);
    council__conn_opts o;
    council__conn *c;
    watch w;
    int fd;

    loop_start();
    memset(&o, 0, sizeof(o));
    o.command_timeout_ms = 2000;
    o.keepalive_s = 9;
    memset(&w, 0, sizeof(w));
    c = open_conn(redis_server_url(r), &w, &o);
    ASSERT(run_until(&w.up, 5));
    fd = socket_to(redis_server_port(r));
    ASSERT(fd >= 0);
    ASSERT_EQ_INT(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    ASSERT_EQ_INT(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 9);
    ASSERT_EQ_INT(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
    ASSERT_EQ_INT(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    ASSERT_EQ_INT(sockopt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
#ifdef TCP_USER_TIMEOUT
    /* The command timeout + keepalive_s. */
    ASSERT_EQ_INT(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 2000 + 9000);
#endif
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
}

TEST(pipelined_in_order)
{
    enum { N = 300 };
    redis_server *r = redis_server_start(NULL);
    static result res[N];
    council__conn *c;
    watch w;
    int i, last = 0;

    loop_start();
    memset(&w, 0, sizeof(w));
    c = open_conn(redis_server_url(r), &w, NULL);
    /* Sent before the connection is up: they wait, then go in order. */
    for (i = 0; i < N; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        send_words(c, "INCR n", 5000, &res[i]);
    }
    ASSERT(run_until(&res[N - 1].calls, 10));
    for (i = 0; i < N; i++) {
        ASSERT_EQ_INT(res[i].calls, 1);
        ASSERT_EQ_INT(res[i].rc, COUNCIL_OK);
        ASSERT_EQ_INT(res[i].integer, i + 1);
        ASSERT(res[i].order > last);
        last = res[i].order;
    }
    /* And while up. */
    for (i = 0; i < N; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        send_words(c, "INCR n", 5000, &res[i]);
    }
    ASSERT(run_until(&res[N - 1].calls, 10));
    for (i = 0; i < N; i++)
        ASSERT_EQ_INT(res[i].integer, N + i + 1);
    ASSERT_EQ_INT(w.ups, 1);
    ASSERT_EQ_INT(w.downs, 0);
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
}

TEST(deadline_on_a_blackhole_then_reconnect)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    council__conn_opts o;
    council__conn *c;
    council__conn_info info;
    watch w;
    result res, other;
    uint64_t t0, took, slack = (uint64_t)(200 * runner_timeout_multiplier());

    loop_start();
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 300;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 100;
    memset(&w, 0, sizeof(w));
    c = open_conn(faultproxy_url(p), &w, &o);
    ASSERT(run_until(&w.up, 5));
    must(c, "SET k v", &res);
    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    memset(&res, 0, sizeof(res));
    memset(&other, 0, sizeof(other));
    t0 = ms_now();
    send_words(c, "GET k", 400, &res);
    send_words(c, "GET k", 3000, &other); /* in flight behind it */
    ASSERT(run_until(&res.calls, 5));
    took = res.at_ms - t0;
    ASSERT_EQ_INT(res.rc, COUNCIL_ETIMEDOUT);
    ASSERT_STR_CONTAINS(res.msg, "no reply within 400 ms");
    ASSERT(took >= 400);
    ASSERT_LE_U64(took, 400 + slack);
    /* The connection is torn down with it: the other one is lost. */
    ASSERT_EQ_INT(other.calls, 1);
    ASSERT_EQ_INT(other.rc, COUNCIL_EIO);
    ASSERT_STR_CONTAINS(other.msg, "lost before the reply");
    ASSERT_EQ_INT(w.up, 0);
    ASSERT_EQ_INT(w.last_rc, COUNCIL_ETIMEDOUT);
    /* Attempts through the blackhole time out at the connect deadline. */
    w.downs = 0;
    ASSERT(run_until(&w.downs, 5));
    ASSERT_EQ_INT(w.last_rc, COUNCIL_ETIMEDOUT);
    ASSERT_STR_CONTAINS(w.reason, "not ready within 300 ms");
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    w.up = 0;
    ASSERT(run_until(&w.up, 5));
    ASSERT_EQ_INT(w.ups, 2);
    must(c, "GET k", &res);
    ASSERT_STR_EQ(res.str, "v");
    council__conn_get_info(c, &info);
    ASSERT_EQ_U64(info.connects, 2);
    ASSERT(info.attempts >= 3);
    ASSERT_EQ_INT(info.pending, 0);
    close_conn(c, &w);
    ASSERT_EQ_INT(res.calls, 1);
    ASSERT_EQ_INT(other.calls, 1);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST_T(reset_during_a_command_and_backoff, 20)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    council__conn_opts o;
    council__conn *c;
    watch w;
    result res;
    unsigned first, n, i;
    uint64_t d;

    loop_start();
    memset(&o, 0, sizeof(o));
    o.backoff_min_ms = 40;
    o.backoff_max_ms = 320;
    memset(&w, 0, sizeof(w));
    c = open_conn(faultproxy_url(p), &w, &o);
    ASSERT(run_until(&w.up, 5));
    /* The command is in flight (delayed) when the reset comes. */
    faultproxy_set(p, FAULTPROXY_DELAY, 300);
    memset(&res, 0, sizeof(res));
    send_words(c, "INCR n", 5000, &res);
    run_until(&res.calls, 0.1); /* the command is written */
    ASSERT_EQ_INT(res.calls, 0);
    first = faultproxy_accepted(p);
    faultproxy_set(p, FAULTPROXY_RESET, 0);
    ASSERT(run_until(&res.calls, 5));
    ASSERT_EQ_INT(res.rc, COUNCIL_EIO);
    ASSERT_STR_CONTAINS(res.msg, "lost before the reply");
    ASSERT_STR_CONTAINS(res.msg, "reset");
    /* Each new attempt is reset: the delays between them grow. */
    while (faultproxy_accepted(p) < first + 5)
        ASSERT(run_until(&w.up, 0.05) == 0);
    n = faultproxy_accepted(p);
    for (i = first; i + 1 < first + 5 && i + 1 < n; i++) {
        uint64_t gap =
            (faultproxy_accept_ns(p, i + 1) - faultproxy_accept_ns(p, i)) /
            1000000u;
        /* Attempt i (0: the first connection) follows failure
         * k = i - first + 2, which waits in [d/2, d], d = 40 * 2^(k-1),
         * at most 320. */
        d = 40u << (i - first + 1);
        if (d > 320)
            d = 320;
        if (gap + 5 < d / 2 ||
            gap > d + (uint64_t)(200 * runner_timeout_multiplier()))
            FAIL("attempt %u came %llu ms after the one before, not in "
                 "[%llu, %llu] ms (+ slack)",
                 i, (unsigned long long)gap, (unsigned long long)(d / 2),
                 (unsigned long long)d);
    }
    ASSERT(w.downs >= 4);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    w.up = 0;
    ASSERT(run_until(&w.up, 5));
    must(c, "INCR n", &res);
    ASSERT(res.integer == 1 || res.integer == 2); /* the lost one may have
                                                     run */
    close_conn(c, &w);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* Closed while connecting and bootstrapping (every chunk 150 ms late):
 * freed only after the bootstrap's thread is done, never reported up. */
TEST(close_while_bootstrapping)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    council__conn_opts o;
    council__conn *c;
    watch w;
    int never = 0, ms;

    faultproxy_set(p, FAULTPROXY_DELAY, 150);
    loop_start();
    for (ms = 0; ms <= 800; ms += 400) {
        memset(&o, 0, sizeof(o));
        o.load_library = 1;
        memset(&w, 0, sizeof(w));
        c = open_conn(faultproxy_url(p), &w, &o);
        run_until(&never, ms / 1000.0);
        if (w.up)
            break; /* too late to close while bootstrapping */
        close_conn(c, &w);
        ASSERT_EQ_INT(w.ups, 0);
    }
    if (ms <= 800)
        close_conn(c, &w);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST_T(server_sigkill_and_restart, 30)
{
    redis_server *r = redis_server_start(NULL);
    council__conn_opts o;
    council__conn *c;
    watch w;
    result res, waiting;

    loop_start();
    memset(&o, 0, sizeof(o));
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    memset(&w, 0, sizeof(w));
    c = open_conn(redis_server_url(r), &w, &o);
    ASSERT(run_until(&w.up, 5));
    must(c, "SET k before", &res);
    redis_server_kill(r);
    ASSERT(run_until(&w.downs, 5));
    ASSERT_EQ_INT(w.last_rc, COUNCIL_EIO);
    ASSERT(!council__conn_is_up(c));
    /* Sent while Redis is down: it waits for the restart. */
    memset(&waiting, 0, sizeof(waiting));
    send_words(c, "GET k", 20000, &waiting);
    run_until(&waiting.calls, 0.3);
    ASSERT_EQ_INT(waiting.calls, 0);
    redis_server_restart(r);
    ASSERT(run_until(&w.up, 10));
    ASSERT(run_until(&waiting.calls, 5));
    ASSERT_EQ_INT(waiting.rc, COUNCIL_OK);
    ASSERT_STR_EQ(waiting.str, "before"); /* appendfsync always */
    ASSERT_EQ_INT(w.ups, 2);
    close_conn(c, &w);
    loop_end();
    redis_server_stop(r);
}

/* Closing completes everything, in order, once, and frees after. */
static int close_from_cb_calls, closed_from_cb;

static void
on_closed_from_cb(void *ud)
{
    (void)ud;
    closed_from_cb++;
}

static void
close_in_cb(council__conn *c, council_err rc, const redisReply *rep,
            const char *msg, void *ud)
{
    const char *av[1] = {"PING"};
    size_t lens[1] = {4};

    on_reply(c, rc, rep, msg, ud);
    close_from_cb_calls++;
    council__conn_close(c, on_closed_from_cb, NULL);
    /* After close, commands are refused and their callbacks never run. */
    ASSERT_EQ_INT(council__conn_command(c, 1, av, lens, 0, on_reply, ud),
                  COUNCIL_ECLOSED);
}

TEST(close_with_commands_in_flight)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    council__conn *c;
    watch w;
    result res[6];
    result cbres;
    int i;
    const char *av[1] = {"PING"};
    size_t lens[1] = {4};

    loop_start();
    memset(&w, 0, sizeof(w));
    c = open_conn(faultproxy_url(p), &w, NULL);
    ASSERT(run_until(&w.up, 5));
    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    for (i = 0; i < 6; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        send_words(c, "PING", 10000, &res[i]);
    }
    run_until(&res[0].calls, 0.2); /* written, unanswered */
    completions = 0;
    council__conn_close(c, on_closed, &w);
    for (i = 0; i < 6; i++) {
        ASSERT_EQ_INT(res[i].calls, 1);
        ASSERT_EQ_INT(res[i].rc, COUNCIL_ECLOSED);
        ASSERT_EQ_INT(res[i].order, i + 1);
    }
    ASSERT_EQ_INT(w.closed, 0); /* freed on the loop */
    ASSERT(run_until(&w.closed, 5));
    for (i = 0; i < 6; i++)
        ASSERT_EQ_INT(res[i].calls, 1);

    /* Closing from inside a command's callback, with another pending and
     * one waiting for a connection. */
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    memset(&w, 0, sizeof(w));
    memset(&cbres, 0, sizeof(cbres));
    memset(res, 0, sizeof(res));
    c = open_conn(faultproxy_url(p), &w, NULL);
    ASSERT_OK(council__conn_command(c, 1, av, lens, 5000, close_in_cb, &cbres));
    send_words(c, "PING", 5000, &res[0]);
    ASSERT(run_until(&closed_from_cb, 5));
    ASSERT_EQ_INT(cbres.rc, COUNCIL_OK);
    ASSERT_STR_EQ(cbres.str, "PONG");
    ASSERT_EQ_INT(res[0].calls, 1);
    ASSERT_EQ_INT(res[0].rc, COUNCIL_ECLOSED);
    ASSERT_EQ_INT(close_from_cb_calls, 1);
    ASSERT_EQ_INT(cbres.calls, 1);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* ---- fake servers ---- */

typedef enum fake_mode {
    FAKE_GARBAGE = 1, /* to the handshake */
    FAKE_SILENT,      /* accepts, reads, never answers */
    FAKE_EXTRA,       /* two replies to the handshake's one command */
    FAKE_MID_CLOSE,   /* PONG, then half a reply and close */
    FAKE_HUGE_BULK,   /* PONG, then $4294967296 and 2 MiB of it */
    FAKE_HUGE_ARRAY,  /* PONG, then *2147483647 */
    FAKE_DEEP,        /* PONG, then arrays nested 9 deep */
    FAKE_ECHO,        /* an error quoting what it was sent */
    FAKE_BAD_MESSAGE, /* PONG and a message of the wrong shape */
    FAKE_BAD_SUBACK   /* PONG and a subscribe confirmation for another */
} fake_mode;

typedef struct fake {
    int lfd, port, stop[2];
    fake_mode mode;
    pthread_t th;
    int fds[64], nfds;
    char url[64];
} fake;

static void
write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void
write_str(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

static void
fake_serve(fake *f, int fd)
{
    char buf[4096];
    struct timeval tv = {2, 0};
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
        return;
    switch (f->mode) {
    case FAKE_GARBAGE:
        write_str(fd, "hello there\r\n");
        return;
    case FAKE_SILENT:
        return;
    case FAKE_EXTRA:
        write_str(fd, "+PONG\r\n+OK\r\n");
        return;
    case FAKE_BAD_MESSAGE:
        write_str(fd, "+PONG\r\n*2\r\n$7\r\nmessage\r\n:1\r\n");
        return;
    case FAKE_BAD_SUBACK:
        write_str(fd, "+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nwrong\r\n"
                      ":1\r\n");
        return;
    case FAKE_ECHO: {
        char out[4200];
        ssize_t i;

        for (i = 0; i < n; i++)
            if (buf[i] == '\r' || buf[i] == '\n')
                buf[i] = ' ';
        snprintf(out, sizeof(out), "-ERR you sent %.*s\r\n", (int)n, buf);
        write_all(fd, out, strlen(out));
        return;
    }
    default:
        break;
    }
    write_str(fd, "+PONG\r\n");
    n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
        return;
    if (f->mode == FAKE_MID_CLOSE) {
        write_str(fd, "$10\r\nabc");
        shutdown(fd, SHUT_WR);
    } else if (f->mode == FAKE_HUGE_BULK) {
        static char chunk[65536];
        int i;

        memset(chunk, 'x', sizeof(chunk));
        write_str(fd, "$4294967296\r\n");
        for (i = 0; i < 32; i++)
            write_all(fd, chunk, sizeof(chunk));
    } else if (f->mode == FAKE_HUGE_ARRAY) {
        write_str(fd, "*2147483647\r\n:1\r\n");
    } else if (f->mode == FAKE_DEEP) {
        write_str(
            fd, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n");
    }
}

static void *
fake_run(void *arg)
{
    fake *f = arg;

    for (;;) {
        struct pollfd pf[2] = {{f->lfd, POLLIN, 0}, {f->stop[0], POLLIN, 0}};
        int fd;

        if (poll(pf, 2, -1) < 0)
            continue;
        if (pf[1].revents != 0)
            break;
        fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        fake_serve(f, fd);
        if (f->nfds < 64)
            f->fds[f->nfds++] = fd; /* kept open until the end */
        else
            close(fd);
    }
    return NULL;
}

static fake *
fake_start(fake_mode mode)
{
    fake *f = calloc(1, sizeof(*f));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    ASSERT_NOT_NULL(f);
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ASSERT(listen(f->lfd, 16) == 0);
    ASSERT(getsockname(f->lfd, (struct sockaddr *)&a, &len) == 0);
    f->port = ntohs(a.sin_port);
    snprintf(f->url, sizeof(f->url), "redis://127.0.0.1:%d", f->port);
    ASSERT(pipe2(f->stop, O_CLOEXEC) == 0);
    ASSERT(pthread_create(&f->th, NULL, fake_run, f) == 0);
    return f;
}

static void
fake_stop(fake *f)
{
    int i;

    ASSERT(write(f->stop[1], "x", 1) == 1);
    pthread_join(f->th, NULL);
    for (i = 0; i < f->nfds; i++)
        close(f->fds[i]);
    close(f->lfd);
    close(f->stop[0]);
    close(f->stop[1]);
    free(f);
}

/* The connection never comes up against f; the first failure's reason. */
static void
expect_handshake_fails(fake_mode mode, council_err rc, const char *says,
                       uint64_t within_ms)
{
    fake *f = fake_start(mode);
    council__conn_opts o;
    council__conn *c;
    watch w;
    uint64_t t0 = ms_now();

    loop_start();
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 300;
    memset(&w, 0, sizeof(w));
    c = open_conn(f->url, &w, &o);
    ASSERT(run_until(&w.downs, 5));
    ASSERT_LE_U64(w.down_ms - t0,
                  within_ms + (uint64_t)(300 * runner_timeout_multiplier()));
    ASSERT_EQ_INT(w.ups, 0);
    ASSERT_EQ_INT(w.last_rc, rc);
    ASSERT_STR_CONTAINS(w.reason, says);
    close_conn(c, &w);
    loop_end();
    fake_stop(f);
}

TEST(fake_server_garbage)
{
    expect_handshake_fails(FAKE_GARBAGE, COUNCIL_EIO, "a protocol error", 0);
}

TEST(fake_server_silent)
{
    expect_handshake_fails(FAKE_SILENT, COUNCIL_ETIMEDOUT,
                           "not ready within 300 ms", 300);
}

/* hiredis 0.14's async API would abort the process here (an assert in
 * redisProcessCallbacks): the PING's reply brings the connection up, the
 * second reply takes it down. */
TEST(fake_server_extra_reply)
{
    fake *f = fake_start(FAKE_EXTRA);
    council__conn *c;
    watch w;

    loop_start();
    memset(&w, 0, sizeof(w));
    c = open_conn(f->url, &w, NULL);
    ASSERT(run_until(&w.downs, 5));
    ASSERT_EQ_INT(w.last_rc, COUNCIL_EIO);
    ASSERT_STR_CONTAINS(w.reason, "a reply no command asked for");
    ASSERT(!council__conn_is_up(c));
    close_conn(c, &w);
    loop_end();
    fake_stop(f);
}

/* A server that quotes the AUTH command back: the reason hides the
 * password (on_state FAILs if it sees it). */
TEST(fake_server_echoes_the_password)
{
    fake *f = fake_start(FAKE_ECHO);
    council__conn *c;
    char url[128];
    watch w;

    loop_start();
    memset(&w, 0, sizeof(w));
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d", SECRET, f->port);
    c = open_conn(url, &w, NULL);
    ASSERT(run_until(&w.downs, 5));
    ASSERT_EQ_INT(w.last_rc, COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(w.reason, "AUTH refused");
    ASSERT_STR_CONTAINS(w.reason, "you sent");
    ASSERT_STR_CONTAINS(w.reason, "***");
    close_conn(c, &w);
    loop_end();
    fake_stop(f);
}

/* Up (PONG), then the command's reply is hostile: the command fails, the
 * connection goes down with the reason. */
static void
expect_command_fails(fake_mode mode, council_err rc, const char *says,
                     size_t max_reply)
{
    fake *f = fake_start(mode);
    council__conn_opts o;
    council__conn *c;
    watch w;
    result res;

    loop_start();
    memset(&o, 0, sizeof(o));
    o.max_reply_bytes = max_reply;
    o.max_elements = 1000;
    memset(&w, 0, sizeof(w));
    c = open_conn(f->url, &w, &o);
    ASSERT(run_until(&w.up, 5));
    memset(&res, 0, sizeof(res));
    send_words(c, "GET k", 2000, &res);
    ASSERT(run_until(&res.calls, 5));
    ASSERT_EQ_INT(res.rc, rc);
    ASSERT_STR_CONTAINS(res.msg, says);
    ASSERT_EQ_INT(w.downs, 1);
    ASSERT_STR_CONTAINS(w.reason, says);
    close_conn(c, &w);
    ASSERT_EQ_INT(res.calls, 1);
    loop_end();
    fake_stop(f);
}

TEST(fake_server_closes_mid_reply)
{
    expect_command_fails(FAKE_MID_CLOSE, COUNCIL_EIO, "closed the connection",
                         0);
}

TEST(fake_server_huge_bulk)
{
    expect_command_fails(FAKE_HUGE_BULK, COUNCIL_EIO,
                         "a reply of more than 1048576 bytes", 1 << 20);
}

TEST(fake_server_huge_array)
{
    expect_command_fails(FAKE_HUGE_ARRAY, COUNCIL_EIO,
                         "an array of 2147483647 elements (more than 1000)", 0);
}

TEST(fake_server_too_deep)
{
    expect_command_fails(FAKE_DEEP, COUNCIL_EIO, "a protocol error", 0);
}

/* ---- a subscriber ---- */

typedef struct inbox {
    int n;
    char channel[64][64], payload[64][64];
} inbox;

/* A watch followed by the inbox (the subscriber's ud is the watch). */
typedef struct sub_ud {
    watch w;
    inbox *in;
} sub_ud;

static void
on_message(council__conn *c, const char *ch, size_t ch_len, const char *payload,
           size_t len, void *ud)
{
    inbox *in = ((sub_ud *)ud)->in;

    (void)c;
    ASSERT(in->n < 64);
    snprintf(in->channel[in->n], 64, "%.*s", (int)ch_len, ch);
    snprintf(in->payload[in->n], 64, "%.*s", (int)len, payload);
    in->n++;
}

/* Runs the loop until in has n messages; 1 if so. */
static int
wait_messages(const inbox *in, int n, double seconds)
{
    uint64_t end =
        ms_now() + (uint64_t)(seconds * 1000 * runner_timeout_multiplier());
    int never = 0;

    while (in->n < n && ms_now() < end)
        run_until(&never, 0.01);
    return in->n >= n;
}

static council__conn *
open_sub(const char *url, sub_ud *u, uint64_t ping_ms, uint64_t timeout_ms)
{
    static const char *const chans[] = {"council:cancel", "council:done"};
    council__conn_opts o;

    memset(&o, 0, sizeof(o));
    o.channels = chans;
    o.n_channels = 2;
    o.on_message = on_message;
    o.ping_interval_ms = ping_ms;
    o.command_timeout_ms = timeout_ms;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 100;
    return open_conn(url, &u->w, &o);
}

static void
publish(int port, const char *ch, const char *msg)
{
    struct timeval tv = {5, 0};
    redisContext *s = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep;

    ASSERT(s != NULL && s->err == 0);
    rep = redisCommand(s, "PUBLISH %s %s", ch, msg);
    ASSERT(rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(s);
}

TEST(subscriber_gets_messages_and_resubscribes)
{
    redis_server *r = redis_server_start(NULL);
    int port = redis_server_port(r);
    faultproxy *p = faultproxy_start(port);
    static inbox in;
    sub_ud u;
    council__conn *c;
    const char *av[1] = {"PING"};
    size_t lens[1] = {4};
    result res;

    loop_start();
    memset(&u, 0, sizeof(u));
    memset(&in, 0, sizeof(in));
    u.in = &in;
    c = open_sub(faultproxy_url(p), &u, 0, 0);
    ASSERT(run_until(&u.w.up, 5));
    ASSERT_EQ_INT(council__conn_command(c, 1, av, lens, 0, on_reply, &res),
                  COUNCIL_EINVAL);
    publish(port, "council:cancel", "R1");
    publish(port, "other", "not this");
    publish(port, "council:done", "R2");
    ASSERT(wait_messages(&in, 2, 5));
    ASSERT(!wait_messages(&in, 3, 0.2)); /* not "other" */
    ASSERT_STR_EQ(in.channel[0], "council:cancel");
    ASSERT_STR_EQ(in.payload[0], "R1");
    ASSERT_STR_EQ(in.channel[1], "council:done");
    ASSERT_STR_EQ(in.payload[1], "R2");
    /* A reset: reconnected and subscribed again. */
    faultproxy_reset_all(p);
    ASSERT(run_until(&u.w.downs, 5));
    u.w.up = 0;
    ASSERT(run_until(&u.w.up, 5));
    publish(port, "council:done", "R3");
    ASSERT(wait_messages(&in, 3, 5));
    ASSERT_STR_EQ(in.payload[2], "R3");
    ASSERT_EQ_INT(u.w.ups, 2);
    close_conn(c, &u.w);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(subscriber_ping_sees_a_blackhole)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    static inbox in;
    sub_ud u;
    council__conn *c;
    uint64_t t0, took;

    loop_start();
    memset(&u, 0, sizeof(u));
    memset(&in, 0, sizeof(in));
    u.in = &in;
    c = open_sub(faultproxy_url(p), &u, 100, 300);
    ASSERT(run_until(&u.w.up, 5));
    /* Pings answered: still up after several intervals. */
    ASSERT(run_until(&u.w.downs, 0.5) == 0);
    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    t0 = ms_now();
    ASSERT(run_until(&u.w.downs, 5));
    took = u.w.down_ms - t0;
    ASSERT_EQ_INT(u.w.last_rc, COUNCIL_ETIMEDOUT);
    ASSERT_STR_CONTAINS(u.w.reason, "no reply");
    /* The next ping within 100 ms, its deadline 300 ms later. */
    ASSERT_LE_U64(took, 400 + (uint64_t)(200 * runner_timeout_multiplier()));
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    u.w.up = 0;
    ASSERT(run_until(&u.w.up, 5));
    close_conn(c, &u.w);
    loop_end();
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* hiredis 0.14's async API asserts on both of these. */
static void
expect_subscriber_fails(fake_mode mode, const char *says)
{
    fake *f = fake_start(mode);
    static inbox in;
    sub_ud u;
    council__conn *c;

    loop_start();
    memset(&u, 0, sizeof(u));
    memset(&in, 0, sizeof(in));
    u.in = &in;
    c = open_sub(f->url, &u, 0, 0);
    ASSERT(run_until(&u.w.downs, 5));
    ASSERT_EQ_INT(u.w.ups, 0);
    ASSERT_EQ_INT(u.w.last_rc, COUNCIL_EIO);
    ASSERT_STR_CONTAINS(u.w.reason, says);
    ASSERT_EQ_INT(in.n, 0);
    close_conn(c, &u.w);
    loop_end();
    fake_stop(f);
}

TEST(fake_server_bad_message)
{
    expect_subscriber_fails(FAKE_BAD_MESSAGE,
                            "a message that is not [message, channel, "
                            "payload]");
}

TEST(fake_server_bad_subscribe_confirmation)
{
    expect_subscriber_fails(FAKE_BAD_SUBACK,
                            "answered SUBSCRIBE council:cancel with what");
}
