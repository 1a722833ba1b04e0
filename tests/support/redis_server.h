/* SPDX-License-Identifier: MIT */
/*
 * A real redis-server for a test: started on a free loopback port with its
 * working directory in the case's temporary directory, never a server left
 * running by hand.  The server is this process's child; redis_server_stop
 * (or redis_server_kill) ends it and reaps it, so the runner's "no child
 * left" check holds.  Skips the case (exit 77, as CTest's SKIP_RETURN_CODE
 * for the Redis tests) when redis-server is not installed.
 */
#ifndef COUNCIL_TEST_REDIS_SERVER_H
#define COUNCIL_TEST_REDIS_SERVER_H

typedef struct redis_server redis_server;

typedef struct redis_server_opts {
    /* "yes" (with appendfsync always: DISTRIBUTED 4's promises) or "no";
     * NULL = "yes". */
    const char *appendonly;
    const char *appendfsync; /* NULL = "always" */
    const char *maxmemory;   /* e.g. "2mb"; NULL = none */
    /* More "--name value" pairs for the command line, NULL-terminated, or
     * NULL. */
    const char *const *extra;
} redis_server_opts;

/* Start one (opts may be NULL) and wait until it answers PING (at most
 * 10 s); FAILs the case if it cannot. */
redis_server *redis_server_start(const redis_server_opts *opts);
int redis_server_port(const redis_server *r);
/* "redis://127.0.0.1:PORT" */
const char *redis_server_url(const redis_server *r);
/* Its working directory (the AOF and RDB files are there). */
const char *redis_server_dir(const redis_server *r);
int redis_server_pid(const redis_server *r);
/* SIGKILL it and reap it (a crash: unpersisted writes are lost). */
void redis_server_kill(redis_server *r);
/* Start it again on the same port and directory (after kill or stop),
 * with the same options, and wait for PING. */
void redis_server_restart(redis_server *r);
/* SIGTERM (a clean shutdown), wait, reap, free.  NULL is fine. */
void redis_server_stop(redis_server *r);

#endif
