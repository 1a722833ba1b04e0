/* SPDX-License-Identifier: MIT */
/*
 * A webhook receiver for tests (libmicrohttpd on 127.0.0.1, an ephemeral
 * port, a thread per connection): records every POST it gets (the
 * headers the webhook recorder sends, the body, the answer given), checks
 * each X-Council-Signature against its secret, and answers a script: the
 * first requests get the scripted statuses (500, 503, 429 with
 * Retry-After: 1, 400, ...) or HOOK_HANG (no answer until the server
 * stops), every later one 200.  hook_server_stop releases hung requests,
 * stops the daemon and frees everything.
 */
#ifndef COUNCIL_TEST_HOOK_SERVER_H
#define COUNCIL_TEST_HOOK_SERVER_H

#include <stddef.h>

#define HOOK_HANG (-1)
#define HOOK_SCRIPT_MAX 32

typedef struct hook_req {
    char path[128];
    char kind[16];   /* X-Council-Kind */
    char key[200];   /* Idempotency-Key */
    char run_id[80]; /* X-Council-Run-Id */
    char ts[32];     /* X-Council-Timestamp, "" if absent */
    char sig[80];    /* X-Council-Signature, "" if absent */
    char content_type[64];
    char authorization[128]; /* what the URL's user:password became */
    int attempt;             /* X-Council-Attempt */
    int sig_ok;              /* the signature matches the secret */
    int status;              /* the answer: 200, a scripted one, or HANG */
    char *body;              /* NUL-terminated */
    size_t len;
} hook_req;

typedef struct hook_server hook_server;

/* secret: what signatures are checked against (NULL: none expected). */
hook_server *hook_server_start(const char *secret);
int hook_server_port(const hook_server *s);
/* The first n requests get these answers (copied), later ones 200. */
void hook_server_script(hook_server *s, const int *answers, int n);
/* Requests received so far (hung ones included). */
int hook_server_count(hook_server *s);
/* Wait until at least n requests have been answered (or hung), up to
 * timeout_ms; the count then. */
int hook_server_wait(hook_server *s, int n, int timeout_ms);
/* A copy of request i (0-based), body included: free with
 * hook_req_free. */
hook_req hook_server_get(hook_server *s, int i);
void hook_req_free(hook_req *r);
void hook_server_stop(hook_server *s);

#endif
