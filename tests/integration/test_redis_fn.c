/* SPDX-License-Identifier: MIT */
/*
 * The council Redis Functions library (src/bus/council_v1.lua) and its C
 * binding (src/bus/fn.h) against a real redis-server started per case
 * (tests/support/redis_server.h), through hiredis's synchronous API: the
 * load and its version check (fresh, same version, a newer version, a
 * council_v1 that is not ours, servers that are not Redis 7), every cell
 * of every function (DISTRIBUTED.md section 4), the fences after a reap,
 * two reapers racing, and corrupted hashes and stream entries, which must
 * give clear errors naming the run and the key.
 *
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "bus/fn.h"
#include "redis_server.h"
#include "runner.h"

static redisContext *
connect_port(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    ASSERT(c != NULL && c->err == 0);
    redisSetTimeout(c, tv);
    return c;
}

static redisContext *
connect_to(redis_server *r)
{
    return connect_port(redis_server_port(r));
}

/* A server with the library loaded, and a connection to it. */
static redis_server *
start_loaded(redisContext **c)
{
    redis_server *r = redis_server_start(NULL);
    council_diag d;

    *c = connect_to(r);
    memset(&d, 0, sizeof(d));
    if (council__fn_load(*c, NULL, &d) != COUNCIL_OK)
        FAIL("load: %s: %s", d.file, d.msg);
    return r;
}

static redisReply *
send_cmd(redisContext *c, council__fn_cmd *cmd)
{
    redisReply *rep = redisCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen);

    council__fn_cmd_free(cmd);
    ASSERT_NOT_NULL(rep);
    return rep;
}

static redisReply *
cmdf(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(c, fmt, arg);

    ASSERT_NOT_NULL(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        FAIL("%s %s: %s", fmt, arg, rep->str);
    return rep;
}

static long long
cmd_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = cmdf(c, fmt, arg);
    long long v;

    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    else
        v = -999;
    freeReplyObject(rep);
    return v;
}

/* HGET council:run:<id> field, or "" */
static void
hget(redisContext *c, const char *id, const char *field, char *buf, size_t n)
{
    redisReply *rep = redisCommand(c, "HGET council:run:%s %s", id, field);

    ASSERT_NOT_NULL(rep);
    snprintf(buf, n, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

static council_err
enqueue(redisContext *c, const char *id, council__fn_reply *out,
        council_diag *d)
{
    council__fn_cmd cmd = {0};
    redisReply *rep;
    council_err rc;

    ASSERT_OK(
        council__fn_enqueue_cmd(&cmd, id, "{\"spec\":1}", 10, "tester", d));
    rep = send_cmd(c, &cmd);
    rc = council__fn_parse_enqueue(rep, id, out, d);
    freeReplyObject(rep);
    return rc;
}

static council_err
claim(redisContext *c, const char *id, const char *worker, uint64_t lease,
      council__fn_reply *out, council_diag *d)
{
    council__fn_cmd cmd = {0};
    redisReply *rep;
    council_err rc;

    ASSERT_OK(council__fn_claim_cmd(&cmd, id, worker, lease, d));
    rep = send_cmd(c, &cmd);
    rc = council__fn_parse_claim(rep, id, out, d);
    if (rc == COUNCIL_OK && out->status == COUNCIL__FN_CLAIMED)
        ASSERT(out->spec_len == 10 &&
               memcmp(out->spec, "{\"spec\":1}", 10) == 0);
    out->spec = NULL; /* the reply is freed */
    freeReplyObject(rep);
    return rc;
}

/* append events evs[0..n-1] from seq; returns the status. */
static council__fn_reply
append(redisContext *c, const char *id, uint64_t gen, uint64_t seq,
       const char *const *evs, size_t n)
{
    council__fn_cmd cmd = {0};
    council__fn_reply out;
    council_diag d;
    size_t lens[16];
    redisReply *rep;
    size_t i;

    ASSERT(n <= 16);
    for (i = 0; i < n; i++)
        lens[i] = strlen(evs[i]);
    ASSERT_OK(council__fn_append_cmd(&cmd, id, gen, seq, evs, lens, n, &d));
    rep = send_cmd(c, &cmd);
    if (council__fn_parse_append(rep, id, &out, &d) != COUNCIL_OK)
        FAIL("append: %s: %s", d.file, d.msg);
    freeReplyObject(rep);
    return out;
}

static council__fn_reply
append1(redisContext *c, const char *id, uint64_t gen, uint64_t seq,
        const char *ev)
{
    return append(c, id, gen, seq, &ev, 1);
}

static council__fn_reply
finish(redisContext *c, const char *id, uint64_t gen, uint64_t seq,
       const char *ev, council_outcome_kind kind, const char *reason)
{
    council__fn_cmd cmd = {0};
    council__fn_reply out;
    council_diag d;
    redisReply *rep;

    ASSERT_OK(council__fn_finish_cmd(&cmd, id, gen, seq, ev,
                                     ev != NULL ? strlen(ev) : 0, kind, reason,
                                     0, &d));
    rep = send_cmd(c, &cmd);
    if (council__fn_parse_finish(rep, id, &out, &d) != COUNCIL_OK)
        FAIL("finish: %s: %s", d.file, d.msg);
    freeReplyObject(rep);
    return out;
}

static council__fn_reply
cancel(redisContext *c, const char *id)
{
    council__fn_cmd cmd = {0};
    council__fn_reply out;
    council_diag d;
    redisReply *rep;
    const char *ev = "{\"type\":\"run_failed\",\"seq\":1}";

    ASSERT_OK(council__fn_cancel_cmd(&cmd, id, ev, strlen(ev),
                                     "the run was cancelled", 0, &d));
    rep = send_cmd(c, &cmd);
    if (council__fn_parse_cancel(rep, id, &out, &d) != COUNCIL_OK)
        FAIL("cancel: %s: %s", d.file, d.msg);
    freeReplyObject(rep);
    return out;
}

static void
renew(redisContext *c, const char *worker, uint64_t lease,
      const char *const *ids, const uint64_t *gens, size_t n,
      council__fn_renewal *out)
{
    council__fn_cmd cmd = {0};
    council_diag d;
    redisReply *rep;

    ASSERT_OK(council__fn_renew_cmd(&cmd, worker, lease, ids, gens, n, &d));
    rep = send_cmd(c, &cmd);
    if (council__fn_parse_renew(rep, ids, n, out, &d) != COUNCIL_OK)
        FAIL("renew: %s: %s", d.file, d.msg);
    freeReplyObject(rep);
}

typedef struct reaped {
    char ids[64][64];
    int n, dropped;
} reaped;

static int
on_reaped(const char *id, size_t len, int dropped, void *ud)
{
    reaped *r = ud;

    if (dropped) {
        r->dropped++;
        return 0;
    }
    ASSERT(r->n < 64 && len < 64);
    memcpy(r->ids[r->n], id, len + 1);
    r->n++;
    return 0;
}

static council_err
reap(redisContext *c, reaped *out, council_diag *d)
{
    council__fn_cmd cmd = {0};
    redisReply *rep;
    council_err rc;

    memset(out, 0, sizeof(*out));
    ASSERT_OK(council__fn_reap_cmd(&cmd, 64, 0, d));
    rep = send_cmd(c, &cmd);
    rc = council__fn_parse_reap(rep, on_reaped, out, NULL, NULL, d);
    freeReplyObject(rep);
    return rc;
}

/* The run's stream entries, parsed; returns the count, fills entries
 * (pointers into *keep, which the caller frees). */
static size_t
entries(redisContext *c, const char *id, council__fn_entry *out, size_t max,
        redisReply **keep)
{
    redisReply *rep = redisCommand(c, "XRANGE council:run:%s:ev - +", id);
    council_diag d;
    size_t i;

    ASSERT_NOT_NULL(rep);
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_ARRAY);
    ASSERT(rep->elements <= max);
    for (i = 0; i < rep->elements; i++) {
        if (council__fn_parse_entry(rep->element[i], id, &out[i], &d) !=
            COUNCIL_OK)
            FAIL("entry %zu: %s: %s", i, d.file, d.msg);
        ASSERT_EQ_U64(out[i].seq, i + 1);
    }
    *keep = rep;
    return rep->elements;
}

static void
ev_is(const council__fn_entry *e, const char *json)
{
    ASSERT_NOT_NULL(e->ev);
    ASSERT_EQ_INT(e->ev_len, strlen(json));
    ASSERT(memcmp(e->ev, json, e->ev_len) == 0);
}

/* The message a person would read, in the test's log. */
static void
show(const council_diag *d)
{
    printf("  diag: %s: %s\n", d->file, d->msg);
}

/* ---- loading ---- */

TEST_T(load_fresh_then_same_version, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    council__fn_cmd cmd = {0};
    council_diag d;
    redisReply *rep;
    int64_t was = -1, v = 0;
    char want[64];

    ASSERT_OK(council__fn_load(c, &was, &d));
    ASSERT_EQ_INT(was, 0);
    /* The Lua text's VERSION is the C side's. */
    snprintf(want, sizeof(want), "local VERSION = %d\n", COUNCIL__FN_VERSION);
    ASSERT_STR_CONTAINS(council__fn_library_text(), want);
    ASSERT_EQ_INT(strlen(council__fn_library_text()),
                  council__fn_library_len());
    ASSERT_OK(council__fn_version_cmd(&cmd, &d));
    rep = send_cmd(c, &cmd);
    ASSERT_OK(council__fn_parse_version(rep, &v, &d));
    ASSERT_EQ_INT(v, COUNCIL__FN_VERSION);
    freeReplyObject(rep);
    /* Again: found, not loaded again. */
    ASSERT_OK(council__fn_load(c, &was, &d));
    ASSERT_EQ_INT(was, COUNCIL__FN_VERSION);
    rep = cmdf(c, "FUNCTION LIST LIBRARYNAME %s", "council_v1");
    ASSERT_EQ_INT(rep->elements, 1);
    freeReplyObject(rep);
    /* Persisted: it survives a restart (appendonly yes). */
    redisFree(c);
    redis_server_kill(r);
    redis_server_restart(r);
    c = connect_to(r);
    ASSERT_OK(council__fn_load(c, &was, &d));
    ASSERT_EQ_INT(was, COUNCIL__FN_VERSION);
    redisFree(c);
    redis_server_stop(r);
}

/* Our library text with VERSION replaced by v. */
static char *
text_with_version(int v)
{
    const char *t = council__fn_library_text();
    char from[64], to[64], *out;
    const char *at;
    size_t n;

    snprintf(from, sizeof(from), "local VERSION = %d\n", COUNCIL__FN_VERSION);
    snprintf(to, sizeof(to), "local VERSION = %d\n", v);
    at = strstr(t, from);
    ASSERT_NOT_NULL(at);
    n = strlen(t) - strlen(from) + strlen(to);
    out = malloc(n + 1);
    ASSERT_NOT_NULL(out);
    snprintf(out, n + 1, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from));
    return out;
}

static void
load_raw(redisContext *c, const char *text)
{
    redisReply *rep = redisCommand(c, "FUNCTION LOAD REPLACE %s", text);

    ASSERT_NOT_NULL(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        FAIL("FUNCTION LOAD: %s", rep->str);
    freeReplyObject(rep);
}

TEST_T(newer_version_present_is_refused, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    char *t = text_with_version(COUNCIL__FN_VERSION + 1);
    council_diag d;
    int64_t was = 0;

    load_raw(c, t);
    free(t);
    ASSERT_EQ_INT(council__fn_load(c, &was, &d), COUNCIL_EREFUSED);
    ASSERT_EQ_INT(was, COUNCIL__FN_VERSION + 1);
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, "newer than this council's version");
    ASSERT_STR_CONTAINS(d.file, "127.0.0.1:");
    /* Not downgraded. */
    ASSERT_EQ_INT(cmd_int(c, "FCALL_RO %s 0", "council_v1_version"),
                  COUNCIL__FN_VERSION + 1);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(older_version_present_is_replaced, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    char *t = text_with_version(COUNCIL__FN_VERSION + 1);
    council_diag d;
    int64_t was = 0;

    /* Ours is loaded; a council one version later upgrades it. */
    ASSERT_OK(council__fn_load(c, NULL, &d));
    ASSERT_OK(council__fn_load_as(c, t, strlen(t), COUNCIL__FN_VERSION + 1,
                                  &was, &d));
    ASSERT_EQ_INT(was, COUNCIL__FN_VERSION);
    ASSERT_EQ_INT(cmd_int(c, "FCALL_RO %s 0", "council_v1_version"),
                  COUNCIL__FN_VERSION + 1);
    /* And ours, now older, is refused without touching it. */
    ASSERT_EQ_INT(council__fn_load(c, &was, &d), COUNCIL_EREFUSED);
    ASSERT_EQ_INT(was, COUNCIL__FN_VERSION + 1);
    ASSERT_EQ_INT(cmd_int(c, "FCALL_RO %s 0", "council_v1_version"),
                  COUNCIL__FN_VERSION + 1);
    free(t);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(foreign_council_v1_is_refused_not_overwritten, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    council_diag d;
    redisReply *rep;

    load_raw(c, "#!lua name=council_v1\n"
                "redis.register_function('someone_else', "
                "function() return 1 end)\n");
    ASSERT_EQ_INT(council__fn_load(c, NULL, &d), COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "without council_v1_version");
    ASSERT_EQ_INT(cmd_int(c, "FCALL %s 0", "someone_else"), 1);
    /* A function name of ours taken by another library. */
    rep = cmdf(c, "FUNCTION DELETE %s", "council_v1");
    freeReplyObject(rep);
    load_raw(c, "#!lua name=other\n"
                "redis.register_function('council_v1_claim', "
                "function() return 1 end)\n");
    ASSERT_EQ_INT(council__fn_load(c, NULL, &d), COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "FUNCTION LOAD of council_v1 refused");
    ASSERT_STR_CONTAINS(d.msg, "council_v1_claim");
    redisFree(c);
    redis_server_stop(r);
}

/* A loopback TCP server in a child process that answers the first
 * request with `answer` and then, if hold, keeps the connection until the
 * client closes it (else closes it).  Returns its port; *pid is the
 * child. */
static int
fake_server(const char *answer, int hold, pid_t *pid)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ASSERT(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ASSERT(listen(fd, 4) == 0);
    ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *pid = fork();
    ASSERT(*pid >= 0);
    if (*pid == 0) {
        char buf[4096];
        int s = accept(fd, NULL, NULL);
        ssize_t n;

        if (s < 0)
            _exit(1);
        n = read(s, buf, sizeof(buf));
        if (n > 0 && write(s, answer, strlen(answer)) < 0)
            _exit(1);
        while (hold && read(s, buf, sizeof(buf)) > 0)
            ;
        _exit(0);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void
load_from_fake(const char *answer, int hold, council_err want, const char *msg)
{
    council_diag d;
    pid_t pid;
    int port = fake_server(answer, hold, &pid), st;
    redisContext *c = connect_port(port);

    memset(&d, 0, sizeof(d));
    ASSERT_EQ_INT(council__fn_load(c, NULL, &d), want);
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, msg);
    ASSERT_STR_CONTAINS(d.file, "127.0.0.1:");
    redisFree(c);
    ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
}

TEST_T(not_redis_is_a_clear_error, 60)
{
    load_from_fake("HTTP/1.1 400 Bad Request\r\n\r\n", 1, COUNCIL_EIO,
                   "not a Redis server?");
    load_from_fake("+OK\r\n", 1, COUNCIL_EIO, "without redis_version");
    load_from_fake("$31\r\n# Server\r\nredis_version:6.2.6\r\n\r\n", 1,
                   COUNCIL_EREFUSED, "Redis 6.2.6: council needs Redis 7.0");
    /* Half a reply, then the connection closes. */
    load_from_fake("$100\r\nredis_", 0, COUNCIL_EIO, "INFO server");
}

/* ---- the functions ---- */

TEST_T(enqueue_twice_is_one_run, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    council__fn_reply v;
    council_diag d;
    char buf[64];

    ASSERT_OK(enqueue(c, "r1", &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_CREATED);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_QUEUED);
    ASSERT_OK(enqueue(c, "r1", &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_EXISTS);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_QUEUED);
    ASSERT_EQ_INT(cmd_int(c, "XLEN %s", "council:q"), 1);
    hget(c, "r1", "created_by", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "tester");
    /* Its state, once it moved on, is what a retry returns. */
    ASSERT_OK(claim(c, "r1", "w1", 10000, &v, &d));
    ASSERT_OK(enqueue(c, "r1", &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_EXISTS);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_RUNNING);
    ASSERT_EQ_INT(cmd_int(c, "XLEN %s", "council:q"), 1);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(claim_queued_terminal_missing, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    council__fn_reply v;
    council_diag d;
    char buf[64];

    ASSERT_OK(enqueue(c, "r1", &v, &d));
    ASSERT_OK(claim(c, "r1", "w1", 10000, &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_CLAIMED);
    ASSERT_EQ_U64(v.gen, 1);
    hget(c, "r1", "owner", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "w1");
    ASSERT(cmd_int(c, "ZSCORE council:leases %s", "r1") > 1000000000000LL);
    /* A second delivery of the same queue entry: not claimed again. */
    ASSERT_OK(claim(c, "r1", "w2", 10000, &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_SKIP);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_RUNNING);
    hget(c, "r1", "owner", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "w1");
    /* Terminal: skip with its state. */
    v = finish(c, "r1", 1, 1, "{\"t\":\"done\"}", COUNCIL_OUTCOME_OK, "");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    ASSERT_OK(claim(c, "r1", "w2", 10000, &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_SKIP);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_OK);
    /* Missing. */
    ASSERT_OK(claim(c, "nope", "w2", 10000, &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_NOTFOUND);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(append_ok_dup_gap_fenced, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    const char *two[] = {"{\"e\":1}", "{\"e\":2}"};
    const char *overlap[] = {"{\"e\":2,\"retry\":1}", "{\"e\":3}"};
    council__fn_entry e[8];
    council__fn_reply v;
    council_diag d;
    redisReply *keep;
    char buf[64];

    ASSERT_OK(enqueue(c, "r1", &v, &d));
    /* Before a claim: gen 0 does not write (the run is queued). */
    v = append1(c, "r1", 0, 1, "{}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_QUEUED);
    ASSERT_OK(claim(c, "r1", "w1", 10000, &v, &d));
    v = append(c, "r1", 1, 1, two, 2);
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    ASSERT_EQ_U64(v.last_seq, 2);
    /* The same batch again (its reply was lost): DUP. */
    v = append(c, "r1", 1, 1, two, 2);
    ASSERT_EQ_INT(v.status, COUNCIL__FN_DUP);
    ASSERT_EQ_U64(v.last_seq, 2);
    v = append1(c, "r1", 1, 2, "{\"e\":2}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_DUP);
    /* Half there: the new half is written, the old one kept. */
    v = append(c, "r1", 1, 2, overlap, 2);
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    ASSERT_EQ_U64(v.last_seq, 3);
    /* A gap: nothing written; resend from last_seq + 1. */
    v = append1(c, "r1", 1, 5, "{\"e\":5}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_GAP);
    ASSERT_EQ_U64(v.last_seq, 3);
    /* Another generation: fenced, with the current one. */
    v = append1(c, "r1", 2, 4, "{\"e\":4}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_U64(v.gen, 1);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_RUNNING);
    ASSERT_EQ_INT(entries(c, "r1", e, 8, &keep), 3);
    ev_is(&e[0], "{\"e\":1}");
    ev_is(&e[1], "{\"e\":2}");
    ev_is(&e[2], "{\"e\":3}");
    ASSERT(!e[2].terminal);
    freeReplyObject(keep);
    hget(c, "r1", "last_seq", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "3");
    /* A run that does not exist. */
    v = append1(c, "ghost", 1, 1, "{}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_NOTFOUND);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(renew_ok_fenced_notfound_and_cancel_flag, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    const char *ids[] = {"a", "b", "gone"};
    uint64_t gens[] = {1, 7, 1};
    council__fn_renewal out[3];
    council__fn_reply v;
    council_diag d;
    long long before, after;
    struct timespec t = {0, 20 * 1000 * 1000};

    ASSERT_OK(enqueue(c, "a", &v, &d));
    ASSERT_OK(enqueue(c, "b", &v, &d));
    ASSERT_OK(claim(c, "a", "w1", 1000, &v, &d));
    ASSERT_OK(claim(c, "b", "w1", 1000, &v, &d));
    before = cmd_int(c, "ZSCORE council:leases %s", "a");
    nanosleep(&t, NULL);
    renew(c, "w1", 60000, ids, gens, 3, out);
    ASSERT_EQ_INT(out[0].status, COUNCIL__FN_RENEWED);
    ASSERT_EQ_INT(out[0].cancel, 0);
    ASSERT_EQ_INT(out[1].status, COUNCIL__FN_FENCED);
    ASSERT_EQ_INT(out[2].status, COUNCIL__FN_NOTFOUND);
    after = cmd_int(c, "ZSCORE council:leases %s", "a");
    ASSERT(after >= before + 59000);
    /* b's lease was not extended by the fenced renewal. */
    ASSERT(cmd_int(c, "ZSCORE council:leases %s", "b") < after - 50000);
    /* A cancel: the renewal says so (the durable path). */
    v = cancel(c, "a");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FLAGGED);
    renew(c, "w1", 60000, ids, gens, 1, out);
    ASSERT_EQ_INT(out[0].status, COUNCIL__FN_RENEWED);
    ASSERT_EQ_INT(out[0].cancel, 1);
    /* Another worker's name with the right gen: fenced. */
    renew(c, "w2", 60000, ids, gens, 1, out);
    ASSERT_EQ_INT(out[0].status, COUNCIL__FN_FENCED);
    redisFree(c);
    redis_server_stop(r);
}

/* Waits (up to 5 s) for a message on the subscribed context s; the
 * message's payload into buf. */
static void
next_message(redisContext *s, const char *channel, char *buf, size_t n)
{
    redisReply *m = NULL;

    ASSERT(redisGetReply(s, (void **)&m) == REDIS_OK);
    ASSERT_NOT_NULL(m);
    ASSERT(m->type == REDIS_REPLY_ARRAY && m->elements == 3);
    ASSERT_STR_EQ(m->element[0]->str, "message");
    ASSERT_STR_EQ(m->element[1]->str, channel);
    snprintf(buf, n, "%s", m->element[2]->str);
    freeReplyObject(m);
}

static redisContext *
subscribe(redis_server *r, const char *channel)
{
    redisContext *s = connect_to(r);
    redisReply *rep = cmdf(s, "SUBSCRIBE %s", channel);

    freeReplyObject(rep);
    return s;
}

TEST_T(finish_then_nothing_more, 60)
{
    redisContext *c, *s;
    redis_server *r = start_loaded(&c);
    council__fn_entry e[8];
    council__fn_reply v;
    council_diag d;
    redisReply *keep;
    char buf[64];

    s = subscribe(r, "council:done");
    ASSERT_OK(enqueue(c, "r1", &v, &d));
    ASSERT_OK(claim(c, "r1", "w1", 10000, &v, &d));
    v = append1(c, "r1", 1, 1, "{\"e\":1}");
    /* A terminal that would not be last, and one past a gap. */
    v = finish(c, "r1", 1, 3, "{\"t\":1}", COUNCIL_OUTCOME_OK, "");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_GAP);
    ASSERT_EQ_U64(v.last_seq, 1);
    v = finish(c, "r1", 2, 2, "{\"t\":1}", COUNCIL_OUTCOME_OK, "");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    v = finish(c, "r1", 1, 2, "{\"t\":1}", COUNCIL_OUTCOME_ERROR,
               "2 of 4 members answered");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    ASSERT_EQ_U64(v.last_seq, 2);
    next_message(s, "council:done", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "r1");
    /* Its retry: DUP; another terminal: fenced. */
    v = finish(c, "r1", 1, 2, "{\"t\":1}", COUNCIL_OUTCOME_ERROR,
               "2 of 4 members answered");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_DUP);
    v = finish(c, "r1", 1, 3, "{\"t\":2}", COUNCIL_OUTCOME_OK, "");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_ERROR);
    v = append1(c, "r1", 1, 3, "{\"e\":3}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_INT(entries(c, "r1", e, 8, &keep), 2);
    ASSERT(e[1].terminal);
    ASSERT_EQ_INT(e[1].kind, COUNCIL_OUTCOME_ERROR);
    ASSERT_STR_EQ(e[1].reason, "2 of 4 members answered");
    ASSERT(e[1].ts_ms > 1000000000000LL);
    ev_is(&e[1], "{\"t\":1}");
    freeReplyObject(keep);
    hget(c, "r1", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "error");
    ASSERT_EQ_INT(cmd_int(c, "ZSCORE council:leases %s", "r1"), -999);
    ASSERT(cmd_int(c, "TTL %s", "council:run:r1") > 600000);
    ASSERT(cmd_int(c, "TTL %s", "council:run:r1:ev") > 600000);
    /* A crashed terminal needs no event. */
    ASSERT_OK(enqueue(c, "r2", &v, &d));
    ASSERT_OK(claim(c, "r2", "w1", 10000, &v, &d));
    v = finish(c, "r2", 1, 1, NULL, COUNCIL_OUTCOME_CRASHED, "signal SIGKILL");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    ASSERT_EQ_INT(entries(c, "r2", e, 8, &keep), 1);
    ASSERT(e[0].terminal && e[0].ev == NULL);
    ASSERT_EQ_INT(e[0].kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(e[0].reason, "signal SIGKILL");
    freeReplyObject(keep);
    redisFree(s);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(cancel_before_during_after, 60)
{
    redisContext *c, *s;
    redis_server *r = start_loaded(&c);
    council__fn_entry e[8];
    council__fn_reply v;
    council_diag d;
    redisReply *keep;
    char buf[64];

    /* Before a claim: a cancelled terminal at once, seq 1. */
    ASSERT_OK(enqueue(c, "q", &v, &d));
    v = cancel(c, "q");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_CANCELLED_NOW);
    ASSERT_EQ_INT(entries(c, "q", e, 8, &keep), 1);
    ASSERT(e[0].terminal);
    ASSERT_EQ_INT(e[0].kind, COUNCIL_OUTCOME_CANCELLED);
    ev_is(&e[0], "{\"type\":\"run_failed\",\"seq\":1}");
    freeReplyObject(keep);
    hget(c, "q", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "cancelled");
    ASSERT(cmd_int(c, "TTL %s", "council:run:q") > 0);
    /* The queue entry is still there; its claim is a skip. */
    ASSERT_OK(claim(c, "q", "w1", 10000, &v, &d));
    ASSERT_EQ_INT(v.status, COUNCIL__FN_SKIP);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_CANCELLED);
    /* Again: already terminal. */
    v = cancel(c, "q");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_TERMINAL);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_CANCELLED);
    /* During the run: the flag and the fast-path message. */
    s = subscribe(r, "council:cancel");
    ASSERT_OK(enqueue(c, "run", &v, &d));
    ASSERT_OK(claim(c, "run", "w1", 10000, &v, &d));
    append1(c, "run", 1, 1, "{\"e\":1}");
    v = cancel(c, "run");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FLAGGED);
    next_message(s, "council:cancel", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "run");
    hget(c, "run", "cancel", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "1");
    hget(c, "run", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "running");
    /* The worker ends it cancelled; one terminal. */
    v = finish(c, "run", 1, 2, "{\"t\":\"cancelled\"}",
               COUNCIL_OUTCOME_CANCELLED, "the run was cancelled");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_WRITTEN);
    v = cancel(c, "run");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_TERMINAL);
    ASSERT_EQ_INT(entries(c, "run", e, 8, &keep), 2);
    freeReplyObject(keep);
    /* Missing. */
    v = cancel(c, "nobody");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_NOTFOUND);
    redisFree(s);
    redisFree(c);
    redis_server_stop(r);
}

static void
sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

TEST_T(reap_expired_lease_fences_the_old_owner, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    const char *ids[] = {"lost"};
    uint64_t gens[] = {1};
    council__fn_renewal ren;
    council__fn_entry e[8];
    council__fn_reply v;
    council_diag d;
    redisReply *keep;
    reaped rp;
    char buf[64];

    ASSERT_OK(enqueue(c, "lost", &v, &d));
    ASSERT_OK(enqueue(c, "alive", &v, &d));
    ASSERT_OK(enqueue(c, "asked", &v, &d));
    ASSERT_OK(claim(c, "lost", "w1", 50, &v, &d));
    ASSERT_OK(claim(c, "alive", "w2", 60000, &v, &d));
    ASSERT_OK(claim(c, "asked", "w1", 50, &v, &d));
    append1(c, "lost", 1, 1, "{\"e\":1}");
    append1(c, "lost", 1, 2, "{\"e\":2}");
    cancel(c, "asked");
    sleep_ms(120);
    ASSERT_OK(reap(c, &rp, &d));
    ASSERT_EQ_INT(rp.n, 2);
    ASSERT_EQ_INT(rp.dropped, 0);
    hget(c, "lost", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "crashed");
    hget(c, "lost", "reason", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "worker lost");
    hget(c, "lost", "gen", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "2");
    hget(c, "asked", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "cancelled");
    hget(c, "alive", "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "running");
    ASSERT_EQ_INT(entries(c, "lost", e, 8, &keep), 3);
    ASSERT(e[2].terminal && e[2].ev == NULL);
    ASSERT_EQ_INT(e[2].kind, COUNCIL_OUTCOME_CRASHED);
    ASSERT_STR_EQ(e[2].reason, "worker lost");
    freeReplyObject(keep);
    ASSERT(cmd_int(c, "TTL %s", "council:run:lost:ev") > 0);
    /* The old owner wakes up: every write of its is fenced. */
    v = append1(c, "lost", 1, 3, "{\"late\":1}");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_U64(v.gen, 2);
    ASSERT_EQ_INT(v.state, COUNCIL__FN_CRASHED);
    v = finish(c, "lost", 1, 3, "{\"late\":\"ok\"}", COUNCIL_OUTCOME_OK, "");
    ASSERT_EQ_INT(v.status, COUNCIL__FN_FENCED);
    renew(c, "w1", 60000, ids, gens, 1, &ren);
    ASSERT_EQ_INT(ren.status, COUNCIL__FN_FENCED);
    ASSERT_EQ_INT(entries(c, "lost", e, 8, &keep), 3);
    freeReplyObject(keep);
    /* Nothing left to reap. */
    ASSERT_OK(reap(c, &rp, &d));
    ASSERT_EQ_INT(rp.n, 0);
    /* A lease whose run Redis lost: dropped and reported. */
    freeReplyObject(cmdf(c, "ZADD council:leases 1 %s", "vanished"));
    ASSERT_OK(reap(c, &rp, &d));
    ASSERT_EQ_INT(rp.n, 0);
    ASSERT_EQ_INT(rp.dropped, 1);
    ASSERT_EQ_INT(cmd_int(c, "ZCARD %s", "council:leases"), 1);
    redisFree(c);
    redis_server_stop(r);
}

/* Two reapers, each on its own connection, released at once. */
typedef struct racer {
    int port;
    pthread_barrier_t *go;
    int rounds;
    int reaped; /* total over the rounds */
} racer;

static pthread_barrier_t round_start, round_end;

static void *
reaper_thread(void *arg)
{
    racer *rc = arg;
    redisContext *c = connect_port(rc->port);
    council_diag d;
    reaped rp;
    int i;

    for (i = 0; i < rc->rounds; i++) {
        pthread_barrier_wait(&round_start);
        ASSERT_OK(reap(c, &rp, &d));
        rc->reaped += rp.n;
        pthread_barrier_wait(&round_end);
    }
    redisFree(c);
    return NULL;
}

TEST_T(two_reapers_one_terminal, 120)
{
    enum { ROUNDS = 60, RUNS = 4 };
    redisContext *c;
    redis_server *r = start_loaded(&c);
    racer a = {redis_server_port(r), NULL, ROUNDS, 0}, b = a;
    pthread_t ta, tb;
    council__fn_reply v;
    council_diag d;
    int i, k;

    pthread_barrier_init(&round_start, NULL, 3);
    pthread_barrier_init(&round_end, NULL, 3);
    ASSERT(pthread_create(&ta, NULL, reaper_thread, &a) == 0);
    ASSERT(pthread_create(&tb, NULL, reaper_thread, &b) == 0);
    for (i = 0; i < ROUNDS; i++) {
        char id[32];

        for (k = 0; k < RUNS; k++) {
            snprintf(id, sizeof(id), "r%d-%d", i, k);
            ASSERT_OK(enqueue(c, id, &v, &d));
            ASSERT_OK(claim(c, id, "w", 1, &v, &d));
            append1(c, id, 1, 1, "{}");
        }
        sleep_ms(3);
        pthread_barrier_wait(&round_start);
        pthread_barrier_wait(&round_end);
        for (k = 0; k < RUNS; k++) {
            council__fn_entry e[4];
            redisReply *keep;

            snprintf(id, sizeof(id), "r%d-%d", i, k);
            ASSERT_EQ_INT(entries(c, id, e, 4, &keep), 2);
            ASSERT(e[1].terminal && !e[0].terminal);
            freeReplyObject(keep);
        }
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&round_start);
    pthread_barrier_destroy(&round_end);
    printf("reaped by the first: %d, by the second: %d\n", a.reaped, b.reaped);
    ASSERT_EQ_INT(a.reaped + b.reaped, ROUNDS * RUNS);
    redisFree(c);
    redis_server_stop(r);
}

/* ---- bad data ---- */

TEST_T(corrupted_hash_is_a_clear_error, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    council__fn_cmd cmd = {0};
    council__fn_reply v;
    council__fn_run run;
    council_diag d;
    redisReply *rep;
    reaped rp;

    /* No state field. */
    freeReplyObject(cmdf(c, "HSET council:run:%s spec x", "h1"));
    ASSERT_EQ_INT(claim(c, "h1", "w1", 1000, &v, &d), COUNCIL_EIO);
    ASSERT_STR_EQ(d.file, "council:run:h1");
    ASSERT_STR_CONTAINS(d.msg, "council_v1_claim of run h1");
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, "no state field");
    rep = cmdf(c, "HGETALL council:run:%s", "h1");
    ASSERT_EQ_INT(council__fn_parse_run(rep, "h1", &run, &d), COUNCIL_EPARSE);
    ASSERT_STR_EQ(d.file, "council:run:h1");
    ASSERT_STR_CONTAINS(d.msg, "no field state");
    freeReplyObject(rep);
    /* A gen that is not a number. */
    freeReplyObject(cmdf(c,
                         "HSET council:run:%s state running gen x "
                         "last_seq 0 spec s",
                         "h2"));
    ASSERT_OK(council__fn_append_cmd(&cmd, "h2", 1, 1,
                                     (const char *const[]){"{}"},
                                     (const size_t[]){2}, 1, &d));
    rep = send_cmd(c, &cmd);
    ASSERT_EQ_INT(council__fn_parse_append(rep, "h2", &v, &d), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(d.msg, "field gen");
    ASSERT_STR_CONTAINS(d.msg, "council:run:h2");
    freeReplyObject(rep);
    rep = cmdf(c, "HGETALL council:run:%s", "h2");
    ASSERT_EQ_INT(council__fn_parse_run(rep, "h2", &run, &d), COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(d.msg, "field gen is not an integer");
    freeReplyObject(rep);
    /* An unknown state. */
    freeReplyObject(cmdf(c,
                         "HSET council:run:%s state dancing gen 1 "
                         "last_seq 0 spec s",
                         "h3"));
    ASSERT_EQ_INT(claim(c, "h3", "w1", 1000, &v, &d), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(d.msg, "unknown state");
    /* Not a hash at all. */
    freeReplyObject(cmdf(c, "SET council:run:%s hello", "h4"));
    ASSERT_EQ_INT(enqueue(c, "h4", &v, &d), COUNCIL_EIO);
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, "WRONGTYPE");
    ASSERT_STR_CONTAINS(d.msg, "council:run:h4");
    /* A lease of a corrupted run: dropped, reported, no crash. */
    freeReplyObject(cmdf(c, "ZADD council:leases 1 %s", "h2"));
    ASSERT_OK(reap(c, &rp, &d));
    ASSERT_EQ_INT(rp.dropped, 1);
    /* The good path still works beside them. */
    rep = cmdf(c, "HGETALL council:run:%s", "nothing");
    ASSERT_EQ_INT(council__fn_parse_run(rep, "nothing", &run, &d),
                  COUNCIL_ENOTFOUND);
    freeReplyObject(rep);
    ASSERT_OK(enqueue(c, "good", &v, &d));
    rep = cmdf(c, "HGETALL council:run:%s", "good");
    ASSERT_OK(council__fn_parse_run(rep, "good", &run, &d));
    ASSERT_EQ_INT(run.state, COUNCIL__FN_QUEUED);
    ASSERT_EQ_U64(run.gen, 0);
    ASSERT(run.spec_len == 10 && memcmp(run.spec, "{\"spec\":1}", 10) == 0);
    ASSERT(run.created_ms > 0 && run.claimed_ms == -1);
    freeReplyObject(rep);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(garbage_stream_entries_are_clear_errors, 60)
{
    redisContext *c;
    redis_server *r = start_loaded(&c);
    council__fn_entry e;
    council__fn_reply v;
    council_diag d;
    redisReply *rep;

    freeReplyObject(cmdf(c, "XADD council:run:%s:ev 0-1 junk junk", "g"));
    freeReplyObject(cmdf(c, "XADD council:run:%s:ev 0-2 outcome maybe", "g"));
    freeReplyObject(cmdf(c, "XADD council:run:%s:ev 7-1 ev {}", "g"));
    rep = cmdf(c, "XRANGE council:run:%s:ev - +", "g");
    ASSERT_EQ_INT(rep->elements, 3);
    ASSERT_EQ_INT(council__fn_parse_entry(rep->element[0], "g", &e, &d),
                  COUNCIL_EPARSE);
    ASSERT_STR_EQ(d.file, "council:run:g:ev");
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, "run g: entry 0-1 has neither");
    ASSERT_EQ_INT(council__fn_parse_entry(rep->element[1], "g", &e, &d),
                  COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(d.msg, "outcome is \"maybe\"");
    ASSERT_EQ_INT(council__fn_parse_entry(rep->element[2], "g", &e, &d),
                  COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(d.msg, "not 0-<seq>");
    freeReplyObject(rep);
    /* A stream ahead of its hash (the hash says last_seq 0): the append
     * says so, naming the stream. */
    ASSERT_OK(enqueue(c, "ahead", &v, &d));
    ASSERT_OK(claim(c, "ahead", "w1", 50, &v, &d));
    freeReplyObject(cmdf(c, "XADD council:run:%s:ev 0-1 ev {}", "ahead"));
    {
        council__fn_cmd cmd = {0};
        const char *ev = "{\"e\":1}";
        size_t len = strlen(ev);

        ASSERT_OK(
            council__fn_append_cmd(&cmd, "ahead", 1, 1, &ev, &len, 1, &d));
        rep = send_cmd(c, &cmd);
        ASSERT_EQ_INT(council__fn_parse_append(rep, "ahead", &v, &d),
                      COUNCIL_EIO);
        ASSERT_STR_CONTAINS(d.msg, "council:run:ahead:ev");
        show(&d);
        ASSERT_STR_CONTAINS(d.msg, "cannot write seq 1");
        freeReplyObject(rep);
    }
    /* Its reaper still ends it (in the hash) and reports it. */
    sleep_ms(80);
    {
        reaped rp;
        char buf[32];

        ASSERT_OK(reap(c, &rp, &d));
        ASSERT_EQ_INT(rp.dropped, 1);
        hget(c, "ahead", "state", buf, sizeof(buf));
        ASSERT_STR_EQ(buf, "crashed");
    }
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(oom_is_a_clear_error, 60)
{
    redis_server_opts o = {.maxmemory = "3mb"};
    redis_server *r = redis_server_start(&o);
    redisContext *c = connect_to(r);
    council__fn_reply v;
    council_diag d;
    redisReply *rep;
    char *big = malloc(4 << 20);

    ASSERT_OK(council__fn_load(c, NULL, &d));
    ASSERT_NOT_NULL(big);
    memset(big, 'x', (4 << 20) - 1);
    big[(4 << 20) - 1] = '\0';
    rep = redisCommand(c, "SET big %s", big);
    free(big);
    ASSERT_NOT_NULL(rep);
    freeReplyObject(rep);
    ASSERT_EQ_INT(enqueue(c, "r1", &v, &d), COUNCIL_EIO);
    ASSERT_STR_EQ(d.file, "council:run:r1");
    show(&d);
    ASSERT_STR_CONTAINS(d.msg, "OOM");
    /* The version check is read-only and still answers. */
    ASSERT_OK(council__fn_load(c, NULL, &d));
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(library_not_loaded_is_enotfound, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    council__fn_reply v;
    council_diag d;

    ASSERT_EQ_INT(enqueue(c, "r1", &v, &d), COUNCIL_ENOTFOUND);
    ASSERT_STR_CONTAINS(d.msg, "not loaded");
    redisFree(c);
    redis_server_stop(r);
}
