/* SPDX-License-Identifier: MIT */
/*
 * A loopback TCP fault proxy for tests (Toxiproxy is not available here:
 * DISTRIBUTED.md section 5).  It listens on a free 127.0.0.1 port and
 * forwards each connection to a target port, and the test thread tells it
 * what to do with the bytes: pass them, pass them late, drop them
 * (blackhole), or reset the connections.  It runs its own thread with a
 * poll() loop; every control call takes effect before it returns.  FAILs
 * the case when it cannot start.
 */
#ifndef COUNCIL_TEST_FAULTPROXY_H
#define COUNCIL_TEST_FAULTPROXY_H

#include <stdint.h>

typedef struct faultproxy faultproxy;

typedef enum faultproxy_mode {
    FAULTPROXY_PASS = 1, /* forward both ways */
    /* Accept, read and drop, send nothing, both ways; connections stay
     * open (a peer that went silent, e.g. a partitioned network). */
    FAULTPROXY_BLACKHOLE,
    /* Forward both ways, each chunk delay_ms after it was read. */
    FAULTPROXY_DELAY,
    /* Reset (RST, SO_LINGER 0) every connection now and each new one as
     * soon as it is accepted. */
    FAULTPROXY_RESET
} faultproxy_mode;

/* Listens on 127.0.0.1:0 and forwards to 127.0.0.1:target_port. */
faultproxy *faultproxy_start(int target_port);
int faultproxy_port(const faultproxy *p);
/* "redis://127.0.0.1:PORT" of the proxy. */
const char *faultproxy_url(const faultproxy *p);
/* Switches the mode (for open connections too); delay_ms for DELAY.
 * Chunks read and not yet forwarded are dropped by BLACKHOLE and RESET. */
void faultproxy_set(faultproxy *p, faultproxy_mode mode, unsigned delay_ms);
/* Resets every open connection now (RST both ways); the mode stays. */
void faultproxy_reset_all(faultproxy *p);
/* Closes every open connection now (FIN both ways); the mode stays. */
void faultproxy_close_all(faultproxy *p);
/* Connections accepted so far, and open now. */
unsigned faultproxy_accepted(faultproxy *p);
unsigned faultproxy_open(faultproxy *p);
/* When the i-th connection (0-based, i < accepted, the first 256) was
 * accepted: uv_hrtime-style monotonic nanoseconds. */
uint64_t faultproxy_accept_ns(faultproxy *p, unsigned i);
/* Stops the thread, closes every socket, frees.  NULL is fine. */
void faultproxy_stop(faultproxy *p);

#endif
