/* SPDX-License-Identifier: MIT */
/*
 * What the server reads of a request once libmicrohttpd has parsed HTTP:
 * the request target (path and query) decoded from the bytes the client
 * sent, the route it names, the methods a route takes, and the values of
 * the query parameters.  Pure functions of their input: no socket, no
 * libmicrohttpd, no server state, so fuzz/fuzz_http_request.c drives
 * exactly the code the server runs (route.c).
 *
 * The target is decoded as libmicrohttpd decodes it (the path: %XX to a
 * byte, anything else as it is; a query parameter: split at '&' and the
 * first '=', then '+' to a space and %XX to a byte), but from the raw
 * bytes, so an encoded NUL (%00), which would cut libmicrohttpd's C
 * strings, is seen and refused instead of silently shortening the URL.
 */
#ifndef COUNCIL_SERVER_ROUTE_H
#define COUNCIL_SERVER_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "council.h"

typedef enum srv_route {
    RT_WEB, /* the web page's files (src/server/web) */
    RT_HEALTH,
    RT_METRICS,
    RT_MODELS,
    RT_CHAT,
    RT_RUNS,
    RT_RUN,
    RT_EVENTS,
    RT_NOT_FOUND
} srv_route;

/* Query parameters kept per request; more is a 400. */
#define SRV_MAX_ARGS 32

typedef struct srv_arg {
    const char *key; /* decoded, NUL-terminated */
    size_t klen;
    const char *val; /* decoded; NULL for a parameter without '=' */
    size_t vlen;
} srv_arg;

/* A decoded request target.  Owns mem; srv_target_free releases it. */
typedef struct srv_target {
    char *mem;
    const char *path; /* decoded, NUL-terminated ("" for an empty target) */
    size_t path_len;  /* bytes decoded, NULs included */
    srv_arg args[SRV_MAX_ARGS];
    size_t n_args;
    int nul;      /* a NUL byte, raw or %00, in the path or the query */
    int too_many; /* more than SRV_MAX_ARGS query parameters */
    srv_route rt; /* from path */
    int id_bad;   /* RT_RUN, RT_EVENTS: the id is not a run id */
    char id[80];  /* RT_RUN, RT_EVENTS: the run id (cut if id_bad) */
} srv_target;

/* Decode raw[0..len) (the request target as sent, NULs allowed) into *t
 * and route it.  0, or -1 when memory ran out (*t is then empty and
 * routes nowhere). */
int srv_target_parse(const char *raw, size_t len, srv_target *t);
void srv_target_free(srv_target *t);
/* The value of the first query parameter named key: NULL when absent,
 * "" for one without '=' (present, empty). */
const char *srv_target_arg(const srv_target *t, const char *key);

/* The route of a decoded path; for RT_RUN and RT_EVENTS the id goes to
 * id[0..idsz) and *id_bad says it is not a run id. */
srv_route srv_route_of(const char *path, char *id, size_t idsz, int *id_bad);
/* "r1/2"-style run ids: printable ASCII 0x21..0x7e except '/', 1..64
 * bytes. */
int run_id_ok(const char *id);
/* The methods a route takes, for 405 and the Allow header. */
const char *srv_allowed(srv_route rt);
/* 1 if method is one of them (HEAD wherever GET is). */
int srv_method_ok(srv_route rt, const char *method);

/*
 * The checks made of the target and the method alone, in the order the
 * server makes them: a NUL (400), too many parameters (400), no such
 * endpoint (404), a method the route does not take (405).  0 if none
 * refuses; else the status, with the error type and a message in
 * msg[0..msgsz).  (The server then checks the token, the run id and the
 * declared body length.)
 */
unsigned srv_check_target(const srv_target *t, const char *method,
                          const char **type, char *msg, size_t msgsz);

/* An event seq (Last-Event-ID, ?after=): 1 to 19 digits.  0, or -1. */
int srv_parse_seq(const char *v, uint64_t *out);
/* "2026-11-24T01:02:03Z", with an optional fraction of a second:
 * microseconds since the epoch, or -1. */
int64_t srv_parse_rfc3339(const char *v);
/* DELETE's ?purge=: 1 for true or 1, 0 for false, 0 or absent (NULL), -1
 * for anything else. */
int srv_parse_purge(const char *v);
/* GET /v1/runs's query (limit, since, council, outcome) into *q, which
 * borrows the target's strings.  0, or -1 with the message in *why. */
int srv_parse_list_query(const srv_target *t, council_store_query *q,
                         const char **why);

#endif
