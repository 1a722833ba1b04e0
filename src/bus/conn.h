/* SPDX-License-Identifier: MIT */
/*
 * An asynchronous Redis connection on a libuv loop, for `council worker`
 * and the --redis clients (DISTRIBUTED.md section 4, issue 10 item 4):
 * every command has its own deadline, the socket has TCP keepalive (and
 * TCP_USER_TIMEOUT), a lost connection is reconnected with exponential
 * backoff and jitter, and a state callback says when it is up and when it
 * is down, and why, so that a worker can fence itself.  Internal: not in
 * council.h.
 *
 * Threads: a connection belongs to the loop it was opened on; every
 * function is called on that loop's thread and every callback runs there.
 *
 * Why not hiredis's async API.  hiredis 0.14's redisAsyncContext asserts
 * (aborts the process) when a server sends a reply no command asked for
 * (redisProcessCallbacks: assert(c->flags & REDIS_SUBSCRIBED ...)), and
 * when a subscribed connection gets a reply of an unexpected shape
 * (__redisGetSubscribeCallback); it resolves host names with a blocking
 * getaddrinfo on the calling thread; it cannot cancel a command, and its
 * libuv adapter drops poll errors and has no timers.  A hostile or broken
 * server must never crash a worker, so this file uses only hiredis's
 * reader (redisReader: RESP parsing into redisReply trees, the type the
 * fn.h parsers take) and does its own I/O with libuv streams (uv_tcp_t,
 * uv_pipe_t), its own command formatting, its own FIFO of callbacks and
 * its own timers.  The reader is given a createArray that refuses arrays
 * longer than max_elements (hiredis 0.14 would calloc what the header
 * announces, up to INT_MAX pointers), and the bytes of one reply are
 * capped at max_reply_bytes (a bulk header announcing 4 GB makes the
 * reader buffer what arrives until then; here the connection fails at the
 * cap).  What remains: a reply under both caps can still cost about 14
 * times its size in redisReply objects (":1\r\n" is 4 bytes, its
 * redisReply 48 and its slot in the parent array 8), and the nesting depth is
 * hiredis's (7).
 *
 * The library bootstrap (opts.load_library) is a synchronous
 * council__fn_load (fn.h) on the libuv thread pool, over a short-lived
 * blocking hiredis connection of its own with the connect timeout as both
 * its connect and its command timeout, after the main connection's
 * handshake and before the connection is reported up.  Why: the load is a
 * multi-step version check (INFO, FCALL_RO, FUNCTION LOAD [REPLACE], read
 * back) already written and tested against real servers in fn.c;
 * rewriting it as an asynchronous state machine would duplicate it for a
 * step that runs once per connect.  The cost: a second connection for a
 * moment, a thread-pool thread, and a close during a bootstrap waits (on
 * the loop, not blocking it) until the bootstrap's own timeouts end it.
 */
#ifndef COUNCIL_BUS_CONN_H
#define COUNCIL_BUS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "council.h"

typedef struct council__conn council__conn;

typedef struct council__conn_opts {
    /* redis://[user:password@]host[:port][/db] (host a name, an IPv4
     * address or [an IPv6 address]; port 6379 by default; db 0; user and
     * password may be %-encoded; ":password@" is a password without a
     * user) or unix:///absolute/path.  Borrowed for the call. */
    const char *url;
    /* Each attempt to connect (resolve, TCP connect, AUTH, SELECT, PING,
     * the bootstrap) must end within this; 0 = 5000 ms. */
    uint64_t connect_timeout_ms;
    /* The deadline of a command given 0 as its own; 0 = 5000 ms. */
    uint64_t command_timeout_ms;
    /* Reconnect delays: the n-th consecutive failure waits a uniformly
     * random time in [d/2, d], d = min(backoff_max_ms, backoff_min_ms *
     * 2^(n-1)); 0 = 100 ms and 5000 ms. */
    uint64_t backoff_min_ms, backoff_max_ms;
    /* TCP keepalive: probes after this many idle seconds, then every
     * keepalive_s / 3 (at least 1) seconds, 3 of them; 0 = 15. */
    unsigned keepalive_s;
    /* TCP_USER_TIMEOUT (Linux): unacknowledged data fails the socket
     * after this; 0 = the command timeout + keepalive_s. */
    unsigned user_timeout_ms;
    /* Caps on one reply (see above); 0 = 64 MiB and 1 << 20 elements. */
    size_t max_reply_bytes;
    size_t max_elements;
    /* Run the library bootstrap (council__fn_load) at each connect (not
     * for a subscriber). */
    int load_library;
    /*
     * A subscriber (e.g. council:cancel and council:done): n_channels > 0
     * channels (copied) are SUBSCRIBEd in each connection's handshake, so
     * a reconnect resubscribes; the connection is up once Redis confirmed
     * every one.  on_message gets each message (channel and payload
     * borrowed for the call; messages lost while the connection was down
     * are not replayed: Redis pub/sub keeps nothing).  A subscriber takes
     * no commands (council__conn_command: COUNCIL_EINVAL) and PINGs
     * itself every ping_interval_ms (0 = the command timeout) with the
     * command timeout as the deadline, because keepalive alone does not
     * see a peer that accepts and never answers.
     */
    const char *const *channels;
    size_t n_channels;
    void (*on_message)(council__conn *c, const char *channel,
                       size_t channel_len, const char *payload,
                       size_t payload_len, void *ud);
    uint64_t ping_interval_ms;
    /*
     * Called on the loop thread after each change: up = 1 once a
     * connection is ready (handshake and bootstrap done); up = 0 with rc
     * (COUNCIL_EIO: the network or the server's answers; COUNCIL_ETIMEDOUT:
     * a deadline; COUNCIL_EREFUSED: AUTH, SELECT or the bootstrap refused)
     * and a reason (borrowed for the call, never a password) when a
     * connection is lost and after each failed attempt, so it repeats
     * while Redis stays away.  Not called after council__conn_close.  May
     * call any function here, council__conn_close included.  May be NULL.
     */
    void (*on_state)(council__conn *c, int up, council_err rc,
                     const char *reason, void *ud);
    void *ud;
} council__conn_opts;

/*
 * Opens a connection and starts connecting at once (the first attempt
 * starts on the next loop turn).  COUNCIL_OK and *out; COUNCIL_EINVAL
 * with diag for a bad URL or option (the message names the URL without
 * its password); COUNCIL_ENOMEM.  Loop thread.
 */
council_err council__conn_open(uv_loop_t *loop, const council__conn_opts *opts,
                               council__conn **out, council_diag *diag);

/*
 * Checks a URL as council__conn_open would, without opening anything:
 * COUNCIL_OK with where (where_size bytes, may be NULL) set to the address
 * as messages show it (never the password); COUNCIL_EINVAL with diag (the
 * message quotes the URL without its password); COUNCIL_ENOMEM.  Any
 * thread.
 */
council_err council__conn_check_url(const char *url, char *where,
                                    size_t where_size, council_diag *diag);

/*
 * A command's completion, exactly once per accepted command, on the loop
 * thread:
 *   rc COUNCIL_OK        reply is the server's answer (borrowed for the
 *                        call; an error reply is a reply: the fn.h
 *                        parsers handle it);
 *   rc COUNCIL_ETIMEDOUT no reply within the deadline; if the command had
 *                        been sent, the connection is then torn down (a
 *                        sent command cannot be taken back) and reconnected;
 *   rc COUNCIL_EIO       it was sent and the connection was lost before
 *                        its reply (it may or may not have run);
 *   rc COUNCIL_ECLOSED   council__conn_close was called first.
 * msg (borrowed for the call) says what happened; reply is NULL unless rc
 * is COUNCIL_OK.  The callback may issue commands and may close c.
 */
typedef void (*council__conn_cb)(council__conn *c, council_err rc,
                                 const redisReply *reply, const char *msg,
                                 void *ud);

/*
 * Sends argv (argc strings of argvlen bytes, copied during the call) with
 * a deadline of timeout_ms from now (0 = the command timeout).  Commands
 * are sent in the order given and pipelined.  While the connection is
 * down a command waits, unsent, for the next connection until its
 * deadline.  COUNCIL_OK: cb will be called exactly once.  COUNCIL_ECLOSED
 * after close; COUNCIL_EINVAL for argc < 1, a NULL cb, a subscriber, or
 * arguments over 1 GiB in all; COUNCIL_ENOMEM: cb is never called.  Loop
 * thread.
 */
council_err council__conn_command(council__conn *c, int argc, const char **argv,
                                  const size_t *argvlen, uint64_t timeout_ms,
                                  council__conn_cb cb, void *ud);

/* 1 when the connection is up (ready for commands to be sent at once). */
int council__conn_is_up(const council__conn *c);

/* Counters, for tests and the worker's status. */
typedef struct council__conn_info {
    uint64_t attempts;        /* connection attempts started */
    uint64_t connects;        /* attempts that came up */
    uint64_t last_backoff_ms; /* the last reconnect delay chosen */
    size_t pending;           /* commands accepted, not completed */
} council__conn_info;

void council__conn_get_info(const council__conn *c, council__conn_info *out);

/*
 * Closes: every pending command completes with COUNCIL_ECLOSED (in the
 * order given, before this returns), the socket is closed, and c is freed
 * on the loop once its handles and requests are done (a bootstrap in the
 * thread pool is waited for).  The loop must run for that.  on_done (may
 * be NULL) is called on the loop thread when c is freed.  Safe from
 * inside any of c's callbacks; c must not be used after.  NULL is fine.
 */
void council__conn_close(council__conn *c, void (*on_done)(void *ud), void *ud);

#endif
