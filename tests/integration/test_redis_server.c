/* SPDX-License-Identifier: MIT */
/*
 * The test support's real redis-server (tests/support/redis_server.h),
 * which every Redis test stands on: it starts on a free loopback port, it
 * answers, a SIGKILL and a restart with appendonly yes + appendfsync
 * always keep an acknowledged write, with appendonly no they lose it, and
 * nothing is left running.
 */
#include <hiredis/hiredis.h>

#include "redis_server.h"
#include "runner.h"

static redisContext *
connect_to(redis_server *r)
{
    struct timeval tv = {2, 0};
    redisContext *c =
        redisConnectWithTimeout("127.0.0.1", redis_server_port(r), tv);

    ASSERT(c != NULL && c->err == 0);
    redisSetTimeout(c, tv);
    return c;
}

static void
command_ok(redisContext *c, const char *cmd)
{
    redisReply *rep = redisCommand(c, cmd);

    ASSERT_NOT_NULL(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        FAIL("%s: %s", cmd, rep->str);
    freeReplyObject(rep);
}

static char *
get(redisContext *c, const char *key)
{
    redisReply *rep = redisCommand(c, "GET %s", key);
    char *v = NULL;

    ASSERT_NOT_NULL(rep);
    if (rep->type == REDIS_REPLY_STRING)
        v = strdup(rep->str);
    freeReplyObject(rep);
    return v;
}

TEST_T(acknowledged_write_survives_kill_with_aof_always, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = connect_to(r);
    char *v;

    ASSERT_STR_CONTAINS(redis_server_url(r), "redis://127.0.0.1:");
    command_ok(c, "SET k acknowledged");
    redisFree(c);
    redis_server_kill(r);
    redis_server_restart(r);
    c = connect_to(r);
    v = get(c, "k");
    ASSERT_NOT_NULL(v);
    ASSERT_STR_EQ(v, "acknowledged");
    free(v);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(appendonly_no_loses_the_write, 60)
{
    redis_server_opts o = {.appendonly = "no"};
    redis_server *r = redis_server_start(&o);
    redisContext *c = connect_to(r);
    char *v;

    command_ok(c, "SET k lost");
    redisFree(c);
    redis_server_kill(r);
    redis_server_restart(r);
    c = connect_to(r);
    v = get(c, "k");
    ASSERT(v == NULL);
    redisFree(c);
    redis_server_stop(r);
}
