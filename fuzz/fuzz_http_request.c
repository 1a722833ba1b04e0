/* SPDX-License-Identifier: MIT */
/*
 * council serve's requests after libmicrohttpd has parsed HTTP
 * (src/server/route.c): the request target decoded, routed, checked
 * against the method, and its query values parsed.  Byte 0 picks the
 * method (GET, HEAD, POST, DELETE, PUT, OPTIONS, or the next bytes up to
 * a space); the rest is the request target as a client sends it, NULs
 * and all.
 *
 * Checks, for every input:
 *   - differential: the path and each query parameter decode exactly as
 *     libmicrohttpd decodes them (MHD_http_unescape, after '+' to ' ' in
 *     a parameter), on every target that holds no raw NUL;
 *   - an encoded or raw NUL anywhere is seen (nul), and nothing else is
 *     taken for one: the target is refused with 400 whenever the
 *     reference decoding holds a NUL;
 *   - the route is the one its decoded path names, and a run id taken
 *     from it is a valid run id that rebuilds the path;
 *   - srv_check_target answers 0, 400, 404 or 405 with a type and a
 *     message, HEAD exactly as GET, and 0 only for a known route, no NUL
 *     and a method the route takes;
 *   - the query values the handlers read parse to values in their
 *     documented ranges: limit 1..1000, since >= 0 and a round trip
 *     through RFC 3339, outcome one of five, after digits only, purge
 *     -1, 0 or 1.
 */
#include <microhttpd.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "route.h"

static const char *const methods[] = {"GET",    "HEAD", "POST",
                                      "DELETE", "PUT",  "OPTIONS"};

/* libmicrohttpd's decoding of p[0..n): '+' first when plus (its
 * MHD_unescape_plus), then MHD_http_unescape.  A fresh buffer
 * (free()); *len its length. */
static char *
mhd_decode(const char *p, size_t n, int plus, size_t *len)
{
    char *b = malloc(n + 1);
    size_t i;

    FUZZ_CHECK(b != NULL);
    memcpy(b, p, n);
    b[n] = '\0';
    if (plus)
        for (i = 0; i < n; i++)
            if (b[i] == '+')
                b[i] = ' ';
    *len = MHD_http_unescape(b);
    return b;
}

/* The reference: decode as libmicrohttpd would and compare with t.
 * Returns whether the reference decoding holds a NUL anywhere (all
 * parameters, not only the first SRV_MAX_ARGS). */
static int
reference(const char *raw, size_t len, const srv_target *t)
{
    const char *q = memchr(raw, '?', len), *end = raw + len, *k;
    size_t n, i = 0;
    int nul = 0;
    char *d;

    d = mhd_decode(raw, (size_t)((q != NULL ? q : end) - raw), 0, &n);
    nul |= memchr(d, '\0', n) != NULL;
    FUZZ_CHECK(t->path_len == n && memcmp(t->path, d, n) == 0);
    free(d);
    for (k = q; k != NULL && k + 1 < end;) {
        const char *s = k + 1, *amp = memchr(s, '&', (size_t)(end - s));
        const char *e = amp != NULL ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(e - s));

        k = amp;
        if (e == s)
            continue;
        d = mhd_decode(s, (size_t)((eq != NULL ? eq : e) - s), 1, &n);
        nul |= memchr(d, '\0', n) != NULL;
        if (i < t->n_args) {
            FUZZ_CHECK(t->args[i].klen == n);
            FUZZ_CHECK(memcmp(t->args[i].key, d, n) == 0);
        }
        free(d);
        if (eq != NULL) {
            d = mhd_decode(eq + 1, (size_t)(e - eq - 1), 1, &n);
            nul |= memchr(d, '\0', n) != NULL;
            if (i < t->n_args) {
                FUZZ_CHECK(t->args[i].val != NULL);
                FUZZ_CHECK(t->args[i].vlen == n);
                FUZZ_CHECK(memcmp(t->args[i].val, d, n) == 0);
            }
            free(d);
        } else if (i < t->n_args) {
            FUZZ_CHECK(t->args[i].val == NULL);
        }
        i++;
    }
    FUZZ_CHECK(t->n_args == (i < SRV_MAX_ARGS ? i : SRV_MAX_ARGS));
    FUZZ_CHECK(t->too_many == (i > SRV_MAX_ARGS));
    return nul;
}

static void
check_route(const srv_target *t)
{
    char id[80], rebuilt[200];
    int bad;

    FUZZ_CHECK(srv_route_of(t->path, id, sizeof(id), &bad) == t->rt);
    FUZZ_CHECK(bad == t->id_bad && strcmp(id, t->id) == 0);
    switch (t->rt) {
    case RT_HEALTH:
        FUZZ_CHECK(strcmp(t->path, "/healthz") == 0);
        break;
    case RT_CHAT:
        FUZZ_CHECK(strcmp(t->path, "/v1/chat/completions") == 0);
        break;
    case RT_RUNS:
        FUZZ_CHECK(strcmp(t->path, "/v1/runs") == 0 ||
                   strcmp(t->path, "/v1/runs/") == 0);
        break;
    case RT_RUN:
    case RT_EVENTS:
        FUZZ_CHECK(strncmp(t->path, "/v1/runs/", 9) == 0);
        if (!t->id_bad) {
            FUZZ_CHECK(run_id_ok(t->id));
            snprintf(rebuilt, sizeof(rebuilt), "/v1/runs/%s%s", t->id,
                     t->rt == RT_EVENTS ? "/events" : "");
            FUZZ_CHECK(strcmp(rebuilt, t->path) == 0);
        }
        break;
    default:
        FUZZ_CHECK(t->id[0] == '\0' && !t->id_bad);
        break;
    }
}

static void
check_verdict(const srv_target *t, const char *method)
{
    const char *type = NULL, *gtype = NULL;
    char msg[200], gmsg[200];
    unsigned st = srv_check_target(t, method, &type, msg, sizeof(msg));

    if (st == 0) {
        FUZZ_CHECK(!t->nul && !t->too_many && t->rt != RT_NOT_FOUND);
        FUZZ_CHECK(srv_method_ok(t->rt, method));
    } else {
        FUZZ_CHECK(st == 400 || st == 404 || st == 405);
        FUZZ_CHECK(type != NULL && type[0] != '\0');
        FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL && msg[0] != '\0');
        FUZZ_CHECK((st == 400) == (t->nul || t->too_many));
        FUZZ_CHECK(st != 405 || !srv_method_ok(t->rt, method));
    }
    if (strcmp(method, "HEAD") == 0) {
        unsigned g = srv_check_target(t, "GET", &gtype, gmsg, sizeof(gmsg));

        FUZZ_CHECK(g == st);
        FUZZ_CHECK(strstr(srv_allowed(t->rt), "GET") == NULL ||
                   strstr(srv_allowed(t->rt), "HEAD") != NULL);
    }
}

static void
check_query(const srv_target *t)
{
    council_store_query q;
    const char *why = NULL, *v;
    uint64_t seq;
    size_t i;

    /* srv_target_arg: the first parameter of that name. */
    for (i = 0; i < t->n_args; i++) {
        size_t j;

        if (memchr(t->args[i].key, '\0', t->args[i].klen) != NULL)
            continue;
        v = srv_target_arg(t, t->args[i].key);
        for (j = 0; j < i; j++)
            if (t->args[j].klen == t->args[i].klen &&
                memcmp(t->args[j].key, t->args[i].key, t->args[i].klen) == 0)
                break;
        FUZZ_CHECK(v == (t->args[j].val != NULL ? t->args[j].val : v));
        if (t->args[j].val == NULL)
            FUZZ_CHECK(v != NULL && v[0] == '\0');
    }
    if (srv_parse_list_query(t, &q, &why) == 0) {
        FUZZ_CHECK(q.limit >= 1 && q.limit <= 1000);
        FUZZ_CHECK(q.since_us >= 0);
        FUZZ_CHECK(q.outcome == NULL || strcmp(q.outcome, "ok") == 0 ||
                   strcmp(q.outcome, "error") == 0 ||
                   strcmp(q.outcome, "cancelled") == 0 ||
                   strcmp(q.outcome, "crashed") == 0 ||
                   strcmp(q.outcome, "running") == 0);
        if (srv_target_arg(t, "since") != NULL) {
            /* Round trip: the time written again reads the same. */
            char again[64];
            time_t sec = (time_t)(q.since_us / 1000000);
            struct tm tm;

            FUZZ_CHECK(gmtime_r(&sec, &tm) != NULL);
            strftime(again, 40, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(again + strlen(again), 24, ".%06dZ",
                     (int)(q.since_us % 1000000));
            FUZZ_CHECK(srv_parse_rfc3339(again) == q.since_us);
        }
    } else {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    }
    v = srv_target_arg(t, "after");
    if (v != NULL && srv_parse_seq(v, &seq) == 0) {
        FUZZ_CHECK(v[0] != '\0' && strlen(v) <= 19);
        FUZZ_CHECK(strspn(v, "0123456789") == strlen(v));
        FUZZ_CHECK(seq == strtoull(v, NULL, 10));
    }
    v = srv_target_arg(t, "purge");
    {
        int p = srv_parse_purge(v);

        FUZZ_CHECK(p >= -1 && p <= 1);
        FUZZ_CHECK(p != 1 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[24];
    const char *raw;
    size_t len;
    srv_target t;
    int ref_nul;

    if (size < 1)
        return 0;
    raw = (const char *)data + 1;
    len = size - 1;
    if (data[0] % 8 < 6) {
        snprintf(method, sizeof(method), "%s", methods[data[0] % 8]);
    } else {
        /* A method of the input's own, up to a space. */
        const char *sp = memchr(raw, ' ', len);
        size_t n = sp != NULL ? (size_t)(sp - raw) : 0;

        if (n >= sizeof(method) || memchr(raw, '\0', n) != NULL)
            n = 0;
        memcpy(method, raw, n);
        method[n] = '\0';
        if (sp != NULL) {
            len -= (size_t)(sp + 1 - raw);
            raw = sp + 1;
        }
    }
    FUZZ_CHECK(srv_target_parse(raw, len, &t) == 0);
    FUZZ_CHECK(t.path[t.path_len] == '\0');
    if (memchr(raw, '\0', len) == NULL) {
        ref_nul = reference(raw, len, &t);
        /* A NUL is seen exactly when there is one (past the 32nd
         * parameter, too_many refuses the target anyway). */
        FUZZ_CHECK(!t.nul || ref_nul);
        FUZZ_CHECK(!ref_nul || t.nul || t.too_many);
    } else {
        FUZZ_CHECK(t.nul || t.too_many);
    }
    check_route(&t);
    check_verdict(&t, method);
    if (!t.nul)
        check_query(&t);
    srv_target_free(&t);
    return 0;
}
