/* SPDX-License-Identifier: MIT */
/*
 * Request targets: decoding, routing, method checks and query values
 * (route.h).  The server calls srv_target_parse from libmicrohttpd's URI
 * callback, which sees the target as the client sent it, before
 * libmicrohttpd decodes it in place into C strings that an encoded NUL
 * would cut ("/v1/runs/%00" would read as "/v1/runs/", the list).  Every
 * route and every query value the handlers use comes from here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route.h"
#include "web_assets.h"

static int
hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode p[0..n) in place, as libmicrohttpd does (MHD_http_unescape, and
 * MHD_unescape_plus first for query parameters): "%XX" with two hex
 * digits is that byte, any other byte stands for itself.  NUL-terminates
 * the result and returns its length; *nul is set when it holds a NUL.
 */
static size_t
decode(char *p, size_t n, int plus, int *nul)
{
    size_t r = 0, w = 0;

    while (r < n) {
        unsigned char c = (unsigned char)p[r];

        if (c == '%' && n - r >= 3 && hex_val((unsigned char)p[r + 1]) >= 0 &&
            hex_val((unsigned char)p[r + 2]) >= 0) {
            c = (unsigned char)(hex_val((unsigned char)p[r + 1]) * 16 +
                                hex_val((unsigned char)p[r + 2]));
            r += 3;
        } else {
            if (plus && c == '+')
                c = ' ';
            r++;
        }
        if (c == '\0')
            *nul = 1;
        p[w++] = (char)c;
    }
    p[w] = '\0';
    return w;
}

int
srv_target_parse(const char *raw, size_t len, srv_target *t)
{
    char *q, *end;

    memset(t, 0, sizeof(*t));
    t->path = "";
    t->rt = RT_NOT_FOUND;
    /* Every piece decodes in place, to at most its own length, and gains
     * one terminator where a separator was: len + 1 bytes suffice. */
    t->mem = malloc(len + 1);
    if (t->mem == NULL)
        return -1;
    if (len > 0)
        memcpy(t->mem, raw, len);
    t->mem[len] = '\0';
    end = t->mem + len;
    q = memchr(t->mem, '?', len);
    t->path = t->mem;
    t->path_len =
        decode(t->mem, (size_t)((q != NULL ? q : end) - t->mem), 0, &t->nul);
    while (q != NULL && q + 1 < end) {
        char *k = q + 1, *amp, *eq;
        srv_arg *a;

        amp = memchr(k, '&', (size_t)(end - k));
        q = amp;
        if (amp == NULL)
            amp = end;
        if (amp == k)
            continue; /* "a&&b", "?&": nothing between */
        if (t->n_args == SRV_MAX_ARGS) {
            t->too_many = 1;
            break;
        }
        a = &t->args[t->n_args++];
        eq = memchr(k, '=', (size_t)(amp - k));
        a->key = k;
        a->klen = decode(k, (size_t)((eq != NULL ? eq : amp) - k), 1, &t->nul);
        if (eq != NULL) {
            a->val = eq + 1;
            a->vlen = decode(eq + 1, (size_t)(amp - eq - 1), 1, &t->nul);
        }
    }
    t->rt = srv_route_of(t->path, t->id, sizeof(t->id), &t->id_bad);
    return 0;
}

void
srv_target_free(srv_target *t)
{
    free(t->mem);
    memset(t, 0, sizeof(*t));
    t->path = "";
    t->rt = RT_NOT_FOUND;
}

const char *
srv_target_arg(const srv_target *t, const char *key)
{
    size_t n = strlen(key), i;

    for (i = 0; i < t->n_args; i++)
        if (t->args[i].klen == n && memcmp(t->args[i].key, key, n) == 0)
            return t->args[i].val != NULL ? t->args[i].val : "";
    return NULL;
}

int
run_id_ok(const char *id)
{
    size_t i;

    for (i = 0; id[i] != '\0'; i++) {
        unsigned char c = (unsigned char)id[i];

        if (i >= 64 || c < 0x21 || c > 0x7e || c == '/')
            return 0;
    }
    return i > 0;
}

srv_route
srv_route_of(const char *url, char *id, size_t idsz, int *id_bad)
{
    const char *p, *slash;
    size_t n;

    *id_bad = 0;
    id[0] = '\0';
    if (council_web_asset_find(url) != NULL)
        return RT_WEB;
    if (strcmp(url, "/healthz") == 0)
        return RT_HEALTH;
    if (strcmp(url, "/metrics") == 0)
        return RT_METRICS;
    if (strcmp(url, "/v1/models") == 0)
        return RT_MODELS;
    if (strcmp(url, "/v1/chat/completions") == 0)
        return RT_CHAT;
    if (strcmp(url, "/v1/runs") == 0 || strcmp(url, "/v1/runs/") == 0)
        return RT_RUNS;
    if (strncmp(url, "/v1/runs/", 9) != 0)
        return RT_NOT_FOUND;
    p = url + 9;
    slash = strchr(p, '/');
    n = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (slash != NULL && strcmp(slash, "/events") != 0)
        return RT_NOT_FOUND;
    if (n >= idsz) {
        *id_bad = 1;
        n = idsz - 1;
    }
    memcpy(id, p, n);
    id[n] = '\0';
    if (!run_id_ok(id))
        *id_bad = 1;
    return slash != NULL ? RT_EVENTS : RT_RUN;
}

const char *
srv_allowed(srv_route rt)
{
    switch (rt) {
    case RT_CHAT:
        return "POST";
    case RT_RUNS:
        return "GET, HEAD, POST";
    case RT_RUN:
        return "GET, HEAD, DELETE";
    default:
        return "GET, HEAD";
    }
}

int
srv_method_ok(srv_route rt, const char *m)
{
    /* HEAD is GET without the body: libmicrohttpd sends the headers of
     * the reply (its Content-Length too) and drops the body. */
    int get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    int post = strcmp(m, "POST") == 0;
    int del = strcmp(m, "DELETE") == 0;

    switch (rt) {
    case RT_CHAT:
        return post;
    case RT_RUNS:
        return get || post;
    case RT_RUN:
        return get || del;
    default:
        return get;
    }
}

unsigned
srv_check_target(const srv_target *t, const char *method, const char **type,
                 char *msg, size_t msgsz)
{
    if (t->nul) {
        *type = "invalid_request_error";
        snprintf(msg, msgsz,
                 "the URL holds a NUL byte (%%00): not in a path or a "
                 "query parameter");
        return 400;
    }
    if (t->too_many) {
        *type = "invalid_request_error";
        snprintf(msg, msgsz, "more than %d query parameters", SRV_MAX_ARGS);
        return 400;
    }
    if (t->rt == RT_NOT_FOUND) {
        *type = "not_found_error";
        snprintf(msg, msgsz, "no such endpoint (see docs/server.md)");
        return 404;
    }
    if (!srv_method_ok(t->rt, method)) {
        *type = "method_not_allowed";
        snprintf(msg, msgsz, "method %.20s is not allowed here (allowed: %s)",
                 method, srv_allowed(t->rt));
        return 405;
    }
    return 0;
}

int
srv_parse_seq(const char *v, uint64_t *out)
{
    uint64_t x = 0;
    size_t i;

    for (i = 0; v[i] != '\0'; i++) {
        if (v[i] < '0' || v[i] > '9' || i >= 19)
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (i == 0)
        return -1;
    *out = x;
    return 0;
}

int64_t
srv_parse_rfc3339(const char *v)
{
    struct tm tm;
    const char *p;
    int64_t us = 0, scale = 100000;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    p = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            us += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (strcmp(p, "Z") != 0)
        return -1;
    t = timegm(&tm);
    if (t == (time_t)-1 || t < 0)
        return -1;
    return (int64_t)t * 1000000 + us;
}

int
srv_parse_purge(const char *v)
{
    if (v == NULL || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return 0;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        return 1;
    return -1;
}

int
srv_parse_list_query(const srv_target *t, council_store_query *q,
                     const char **why)
{
    const char *lim = srv_target_arg(t, "limit");
    const char *since = srv_target_arg(t, "since");

    memset(q, 0, sizeof(*q));
    q->limit = 50;
    q->council = srv_target_arg(t, "council");
    q->outcome = srv_target_arg(t, "outcome");
    if (lim != NULL) {
        char *end;
        unsigned long n;

        errno = 0;
        n = strtoul(lim, &end, 10);
        if (lim[0] < '0' || lim[0] > '9' || *end != '\0' || errno != 0 ||
            n == 0 || n > 1000) {
            *why = "'limit' must be an integer from 1 to 1000";
            return -1;
        }
        q->limit = n;
    }
    if (q->outcome != NULL && strcmp(q->outcome, "ok") != 0 &&
        strcmp(q->outcome, "error") != 0 &&
        strcmp(q->outcome, "cancelled") != 0 &&
        strcmp(q->outcome, "crashed") != 0 &&
        strcmp(q->outcome, "running") != 0) {
        *why = "'outcome' must be ok, error, cancelled, crashed or running";
        return -1;
    }
    if (since != NULL) {
        q->since_us = srv_parse_rfc3339(since);
        if (q->since_us < 0) {
            *why = "'since' must be an RFC 3339 UTC time such as "
                   "2026-11-24T01:02:03Z";
            return -1;
        }
    }
    return 0;
}
