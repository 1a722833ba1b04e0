/* SPDX-License-Identifier: MIT */
/*
 * The loopback TCP fault proxy (tests/support/faultproxy.h) in front of a
 * real redis-server, driven with hiredis's blocking client: each mode does
 * what it says (pass, blackhole, delay, reset of new connections), reset_all
 * gives an RST and close_all an EOF to open connections, and a passing
 * proxy works again after each fault.
 *
 * TEST_LABELS: threaded
 */
#include <time.h>

#include <hiredis/hiredis.h>

#include "faultproxy.h"
#include "redis_server.h"
#include "runner.h"

static uint64_t
ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static redisContext *
dial(faultproxy *p, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c =
        redisConnectWithTimeout("127.0.0.1", faultproxy_port(p), tv);

    ASSERT(c != NULL && c->err == 0);
    redisSetTimeout(c, tv);
    return c;
}

/* 1 if PING answers PONG on c. */
static int
pong(redisContext *c)
{
    redisReply *r = redisCommand(c, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
             strcmp(r->str, "PONG") == 0;

    freeReplyObject(r);
    return ok;
}

static void
assert_passes(faultproxy *p)
{
    redisContext *c = dial(p, 2000);

    ASSERT(pong(c));
    redisFree(c);
}

TEST(pass_forwards_both_ways)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = dial(p, 2000);
    redisReply *rep;

    ASSERT(pong(c));
    rep = redisCommand(c, "SET k %s", "through the proxy");
    ASSERT(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = redisCommand(c, "GET k");
    ASSERT(rep != NULL && rep->type == REDIS_REPLY_STRING);
    ASSERT_STR_EQ(rep->str, "through the proxy");
    freeReplyObject(rep);
    ASSERT_EQ_INT(faultproxy_accepted(p), 1);
    ASSERT_EQ_INT(faultproxy_open(p), 1);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(blackhole_answers_nothing_then_pass_again)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = dial(p, 300), *c2;
    uint64_t t0;

    ASSERT(pong(c));
    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    t0 = ms_now();
    ASSERT(!pong(c)); /* the read times out */
    ASSERT(ms_now() - t0 >= 250);
    ASSERT_EQ_INT(c->err, REDIS_ERR_IO);
    /* A new connection is accepted and answered with nothing. */
    c2 = dial(p, 300);
    ASSERT(!pong(c2));
    ASSERT_EQ_INT(faultproxy_accepted(p), 2);
    redisFree(c);
    redisFree(c2);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    assert_passes(p);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(delay_holds_each_chunk)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = dial(p, 3000);
    uint64_t t0, took;

    faultproxy_set(p, FAULTPROXY_DELAY, 200);
    t0 = ms_now();
    ASSERT(pong(c));
    took = ms_now() - t0;
    /* 200 ms to Redis and 200 ms back. */
    ASSERT(took >= 390);
    ASSERT(took < 390 + 1500 * runner_timeout_multiplier());
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    t0 = ms_now();
    ASSERT(pong(c));
    ASSERT(ms_now() - t0 < 200);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(reset_all_sends_rst)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = dial(p, 2000);

    ASSERT(pong(c));
    faultproxy_reset_all(p);
    ASSERT_EQ_INT(faultproxy_open(p), 0);
    ASSERT(!pong(c));
    ASSERT_EQ_INT(c->err, REDIS_ERR_IO);
    ASSERT_STR_CONTAINS(c->errstr, "reset");
    redisFree(c);
    assert_passes(p);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(close_all_sends_eof)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = dial(p, 2000);

    ASSERT(pong(c));
    faultproxy_close_all(p);
    ASSERT(!pong(c));
    ASSERT_EQ_INT(c->err, REDIS_ERR_EOF);
    redisFree(c);
    assert_passes(p);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(reset_mode_resets_each_new_connection)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c;
    int i;

    faultproxy_set(p, FAULTPROXY_RESET, 0);
    for (i = 0; i < 3; i++) {
        struct timeval tv = {2, 0};

        c = redisConnectWithTimeout("127.0.0.1", faultproxy_port(p), tv);
        ASSERT_NOT_NULL(c);
        if (c->err == 0) {
            redisSetTimeout(c, tv);
            ASSERT(!pong(c));
        }
        redisFree(c);
    }
    ASSERT_EQ_INT(faultproxy_accepted(p), 3);
    ASSERT(faultproxy_accept_ns(p, 2) >= faultproxy_accept_ns(p, 1));
    ASSERT_EQ_INT(faultproxy_open(p), 0);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    assert_passes(p);
    faultproxy_stop(p);
    redis_server_stop(r);
}

TEST(target_down_gives_eof)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c;

    redis_server_kill(r);
    c = dial(p, 2000);
    ASSERT(!pong(c));
    redisFree(c);
    redis_server_restart(r);
    assert_passes(p);
    faultproxy_stop(p);
    redis_server_stop(r);
}
