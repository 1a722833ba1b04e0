/* SPDX-License-Identifier: MIT */
/*
 * redis_server.h.  Method: a free port is found by binding 127.0.0.1:0 and
 * closing it (another process could take it in between; then the server
 * does not start and the start is tried again on a new port, up to 5
 * times).  The server is started with posix_spawnp (its stdout and stderr
 * to DIR/redis.log, shown when a start fails), and ready when PING
 * answers PONG over a fresh connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli_run.h"
#include "redis_server.h"
#include "runner.h"

extern char **environ;

struct redis_server {
    int port;
    pid_t pid;
    char url[64];
    char dir[4200];
    char appendonly[8], appendfsync[16], maxmemory[32];
    const char *const *extra;
};

static int
free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int
pings(int port)
{
    struct timeval tv = {0, 200 * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;
    int ok = 0;

    if (c == NULL || c->err) {
        redisFree(c);
        return 0;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
         strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Spawn the server on r->port; 0, or -1 (it exited or never answered). */
static int
spawn(redis_server *r)
{
    char port[16], log[4300];
    const char *argv[40];
    posix_spawn_file_actions_t fa;
    int n = 0, i, st;
    struct timespec t = {0, 20 * 1000 * 1000};

    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = r->appendonly;
    argv[n++] = "--appendfsync";
    argv[n++] = r->appendfsync;
    argv[n++] = "--protected-mode";
    argv[n++] = "no";
    if (r->maxmemory[0] != '\0') {
        argv[n++] = "--maxmemory";
        argv[n++] = r->maxmemory;
        argv[n++] = "--maxmemory-policy";
        argv[n++] = "noeviction";
    }
    for (i = 0; r->extra != NULL && r->extra[i] != NULL && n < 38; i++)
        argv[n++] = r->extra[i];
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawnp(&r->pid, "redis-server", &fa, NULL, (char **)argv,
                     environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        r->pid = -1;
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    for (i = 0; i < 500; i++) {
        if (pings(r->port))
            return 0;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = -1;
            return -1;
        }
        nanosleep(&t, NULL);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
    return -1;
}

static int
have_redis(void)
{
    const char *path = getenv("PATH");
    char buf[4200];

    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)n, path);
        if (access(buf, X_OK) == 0)
            return 1;
        path = colon != NULL ? colon + 1 : NULL;
    }
    return 0;
}

redis_server *
redis_server_start(const redis_server_opts *o)
{
    redis_server *r;
    int attempt;

    if (!have_redis()) {
        fprintf(stderr, "redis-server is not installed (scripts/deps "
                        "installs it): skipped\n");
        exit(77);
    }
    r = calloc(1, sizeof(*r));
    ASSERT_NOT_NULL(r);
    snprintf(r->appendonly, sizeof(r->appendonly), "%s",
             o != NULL && o->appendonly != NULL ? o->appendonly : "yes");
    snprintf(r->appendfsync, sizeof(r->appendfsync), "%s",
             o != NULL && o->appendfsync != NULL ? o->appendfsync : "always");
    snprintf(r->maxmemory, sizeof(r->maxmemory), "%s",
             o != NULL && o->maxmemory != NULL ? o->maxmemory : "");
    r->extra = o != NULL ? o->extra : NULL;
    for (attempt = 0; attempt < 5; attempt++) {
        static int seq;
        snprintf(r->dir, sizeof(r->dir), "%s/redis-%d", runner_tmpdir(), seq++);
        if (mkdir(r->dir, 0755) != 0 && errno != EEXIST)
            FAIL("mkdir %s: %s", r->dir, strerror(errno));
        r->port = free_port();
        if (r->port > 0 && spawn(r) == 0) {
            snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
            return r;
        }
    }
    {
        char log[4300], *text;
        snprintf(log, sizeof(log), "%s/redis.log", r->dir);
        text = cli_slurp(log);
        FAIL("redis-server did not start; its log:\n%s", text);
    }
}

int
redis_server_port(const redis_server *r)
{
    return r->port;
}

const char *
redis_server_url(const redis_server *r)
{
    return r->url;
}

const char *
redis_server_dir(const redis_server *r)
{
    return r->dir;
}

int
redis_server_pid(const redis_server *r)
{
    return (int)r->pid;
}

void
redis_server_kill(redis_server *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
}

void
redis_server_restart(redis_server *r)
{
    int i;

    redis_server_kill(r);
    for (i = 0; i < 50; i++) {
        if (spawn(r) == 0)
            return;
        usleep(100 * 1000); /* the port may linger a moment */
    }
    FAIL("redis-server did not restart on port %d", r->port);
}

void
redis_server_stop(redis_server *r)
{
    int i, st;

    if (r == NULL)
        return;
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        for (i = 0; i < 500; i++) {
            if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
                r->pid = -1;
                break;
            }
            usleep(10 * 1000);
        }
        redis_server_kill(r);
    }
    free(r);
}
