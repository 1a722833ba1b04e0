/* SPDX-License-Identifier: MIT */
/*
 * The reply parsers of src/bus/fn.h against hostile redisReply trees built
 * by hand: every node of every valid reply replaced by each wrong type (a
 * string, a status, an integer, nil, an error, an empty array, a missing
 * element), then random trees from a seed ($COUNCIL_SEED).  Each parser
 * must answer COUNCIL_OK with a valid result, or an error with a message
 * and a key in its diag; never crash (ASan and UBSan watch).  Also the
 * command builders: their argv is the layout fn.h documents, and bad
 * arguments are COUNCIL_EINVAL.
 */
#include <stdarg.h>

#include <hiredis/hiredis.h>

#include "bus/fn.h"
#include "runner.h"

/* ---- building replies ---- */

static redisReply *
node(int type)
{
    redisReply *r = calloc(1, sizeof(*r));

    ASSERT_NOT_NULL(r);
    r->type = type;
    return r;
}

static redisReply *
str_n(int type, const char *s, size_t n)
{
    redisReply *r = node(type);

    r->str = malloc(n + 1);
    ASSERT_NOT_NULL(r->str);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

static redisReply *
s_(const char *s)
{
    return str_n(REDIS_REPLY_STRING, s, strlen(s));
}

static redisReply *
i_(long long v)
{
    redisReply *r = node(REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

static redisReply *
err_(const char *s)
{
    return str_n(REDIS_REPLY_ERROR, s, strlen(s));
}

/* An array of n elements given as arguments. */
static redisReply *
a_(size_t n, ...)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    va_list ap;
    size_t i;

    r->elements = n;
    if (n > 0) {
        r->element = calloc(n, sizeof(*r->element));
        ASSERT_NOT_NULL(r->element);
    }
    va_start(ap, n);
    for (i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void
drop(redisReply *r)
{
    size_t i;

    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->element != NULL) {
        for (i = 0; i < r->elements; i++)
            drop(r->element[i]);
    }
    free(r->element);
    free(r->str);
    free(r);
}

static redisReply *
clone(const redisReply *r)
{
    redisReply *c;
    size_t i;

    if (r == NULL)
        return NULL;
    c = node(r->type);
    c->integer = r->integer;
    c->elements = r->elements;
    if (r->str != NULL) {
        c->str = malloc(r->len + 1);
        ASSERT_NOT_NULL(c->str);
        memcpy(c->str, r->str, r->len + 1);
        c->len = r->len;
    }
    if (r->element != NULL) {
        c->element = calloc(r->elements, sizeof(*c->element));
        ASSERT_NOT_NULL(c->element);
        for (i = 0; i < r->elements; i++)
            c->element[i] = clone(r->element[i]);
    }
    return c;
}

/* ---- the parsers, one signature ---- */

static const char *const renew_ids[] = {"a", "b", "c"};

typedef council_err (*parse_fn)(const redisReply *r, council_diag *d);

static council_err
p_enqueue(const redisReply *r, council_diag *d)
{
    council__fn_reply v;
    council_err rc = council__fn_parse_enqueue(r, "R", &v, d);

    if (rc == COUNCIL_OK)
        ASSERT(v.status == COUNCIL__FN_CREATED ||
               v.status == COUNCIL__FN_EXISTS);
    return rc;
}

static council_err
p_claim(const redisReply *r, council_diag *d)
{
    council__fn_reply v;
    council_err rc = council__fn_parse_claim(r, "R", &v, d);

    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_CLAIMED)
        ASSERT(v.gen >= 1 && v.spec != NULL);
    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_SKIP)
        ASSERT(v.state != COUNCIL__FN_QUEUED && v.state != 0);
    return rc;
}

static council_err
p_append(const redisReply *r, council_diag *d)
{
    council__fn_reply v;
    council_err rc = council__fn_parse_append(r, "R", &v, d);

    if (rc == COUNCIL_OK)
        ASSERT(v.status == COUNCIL__FN_WRITTEN || v.status == COUNCIL__FN_DUP ||
               v.status == COUNCIL__FN_GAP || v.status == COUNCIL__FN_FENCED ||
               v.status == COUNCIL__FN_NOTFOUND);
    return rc;
}

static council_err
p_finish(const redisReply *r, council_diag *d)
{
    council__fn_reply v;

    return council__fn_parse_finish(r, "R", &v, d);
}

static council_err
p_cancel(const redisReply *r, council_diag *d)
{
    council__fn_reply v;
    council_err rc = council__fn_parse_cancel(r, "R", &v, d);

    if (rc == COUNCIL_OK && v.status == COUNCIL__FN_TERMINAL)
        ASSERT(council__fn_state_terminal(v.state));
    return rc;
}

static council_err
p_renew(const redisReply *r, council_diag *d)
{
    council__fn_renewal out[2];

    return council__fn_parse_renew(r, renew_ids, 2, out, d);
}

static int
count_cb(const char *id, size_t len, int dropped, void *ud)
{
    size_t *n = ud;

    ASSERT(id != NULL && len > 0 && strlen(id) == len);
    (void)dropped;
    (*n)++;
    return 0;
}

static council_err
p_reap(const redisReply *r, council_diag *d)
{
    size_t n = 0, nr = 0, nd = 0;
    council_err rc = council__fn_parse_reap(r, count_cb, &n, &nr, &nd, d);

    if (rc == COUNCIL_OK)
        ASSERT_EQ_INT(n, nr + nd);
    return rc;
}

static council_err
p_version(const redisReply *r, council_diag *d)
{
    int64_t v = 0;
    council_err rc = council__fn_parse_version(r, &v, d);

    if (rc == COUNCIL_OK)
        ASSERT(v >= 1);
    return rc;
}

static council_err
p_entry(const redisReply *r, council_diag *d)
{
    council__fn_entry e;
    council_err rc = council__fn_parse_entry(r, "R", &e, d);

    if (rc == COUNCIL_OK) {
        ASSERT(e.seq >= 1);
        ASSERT(e.ev != NULL || e.terminal);
        if (e.terminal)
            ASSERT_NOT_NULL(e.reason);
    }
    return rc;
}

static council_err
p_run(const redisReply *r, council_diag *d)
{
    council__fn_run v;
    council_err rc = council__fn_parse_run(r, "R", &v, d);

    if (rc == COUNCIL_OK)
        ASSERT(v.state != 0 && v.spec != NULL && v.owner != NULL);
    return rc;
}

static const struct {
    const char *name;
    parse_fn fn;
} parsers[] = {
    {"enqueue", p_enqueue}, {"claim", p_claim},     {"append", p_append},
    {"finish", p_finish},   {"cancel", p_cancel},   {"renew", p_renew},
    {"reap", p_reap},       {"version", p_version}, {"entry", p_entry},
    {"run", p_run},
};
#define N_PARSERS (sizeof(parsers) / sizeof(parsers[0]))

/* Any parser on any tree: OK, or an error with a message and a key. */
static council_err
check(size_t p, const redisReply *r)
{
    council_diag d;
    council_err rc;

    memset(&d, 0x5a, sizeof(d)); /* garbage: the parser must set it */
    rc = parsers[p].fn(r, &d);
    if (rc == COUNCIL_OK)
        return rc;
    if (rc != COUNCIL_EPARSE && rc != COUNCIL_EIO && rc != COUNCIL_ENOTFOUND)
        FAIL("%s: unexpected error %d", parsers[p].name, rc);
    if (memchr(d.msg, '\0', sizeof(d.msg)) == NULL || d.msg[0] == '\0')
        FAIL("%s: error %d without a message", parsers[p].name, rc);
    if (memchr(d.file, '\0', sizeof(d.file)) == NULL ||
        strncmp(d.file, "council:", 8) != 0)
        FAIL("%s: error %d without the key: \"%.40s\"", parsers[p].name, rc,
             d.file);
    return rc;
}

/* The valid replies, as each function gives them. */
static redisReply *
valid(size_t p, int variant)
{
    switch (p) {
    case 0:
        return variant ? a_(2, s_("exists"), s_("running"))
                       : a_(2, s_("created"), s_("queued"));
    case 1:
        return variant == 1   ? a_(2, s_("skip"), s_("ok"))
               : variant == 2 ? a_(1, s_("notfound"))
                              : a_(3, s_("claimed"), i_(1), s_("{}"));
    case 2:
    case 3:
        return variant == 1   ? a_(3, s_("fenced"), i_(2), s_("crashed"))
               : variant == 2 ? a_(2, s_("gap"), i_(4))
                              : a_(2, s_("ok"), i_(3));
    case 4:
        return variant == 1   ? a_(2, s_("terminal"), s_("ok"))
               : variant == 2 ? a_(1, s_("flagged"))
                              : a_(1, s_("cancelled"));
    case 5:
        return a_(4, s_("ok"), i_(1), s_("fenced"), i_(0));
    case 6:
        return a_(2, a_(2, s_("a"), s_("b")), a_(1, s_("c")));
    case 7:
        return i_(1);
    case 8:
        return variant ? a_(2, s_("0-4"),
                            a_(6, s_("outcome"), s_("crashed"), s_("reason"),
                               s_("worker lost"), s_("ts_ms"), s_("17")))
                       : a_(2, s_("0-3"), a_(2, s_("ev"), s_("{}")));
    case 9:
        return a_(10, s_("state"), s_("running"), s_("gen"), s_("2"),
                  s_("last_seq"), s_("5"), s_("spec"), s_("{}"), s_("cancel"),
                  s_("1"));
    }
    return NULL;
}

/* The node number k of a tree (depth first, root 0), its parent's slot
 * in *slot; *count is the number of nodes. */
static redisReply **
nth(redisReply **root, int k, int *count)
{
    redisReply **found = NULL;
    int seen = 0;
    redisReply **stack[64];
    int top = 0;

    stack[top++] = root;
    while (top > 0) {
        redisReply **at = stack[--top];
        size_t i;

        if (seen++ == k)
            found = at;
        if (*at != NULL && (*at)->type == REDIS_REPLY_ARRAY &&
            (*at)->element != NULL) {
            for (i = (*at)->elements; i > 0 && top < 64; i--)
                stack[top++] = &(*at)->element[i - 1];
        }
    }
    *count = seen;
    return found;
}

static redisReply *
wrong(int t)
{
    switch (t) {
    case 0:
        return s_("");
    case 1:
        return str_n(REDIS_REPLY_STATUS, "ok", 2);
    case 2:
        return i_(-1);
    case 3:
        return i_(0);
    case 4:
        return node(REDIS_REPLY_NIL);
    case 5:
        return err_("ERR boom");
    case 6:
        return a_(0);
    case 7:
        return str_n(REDIS_REPLY_STRING, "ok\0x", 4);
    case 8:
        return NULL; /* a missing element */
    case 9:
        return s_("0-0");
    case 10:
        return i_(INT64_MAX);
    }
    return NULL;
}
#define N_WRONG 11

TEST(valid_replies_parse)
{
    size_t p;
    int v;

    for (p = 0; p < N_PARSERS; p++) {
        for (v = 0; v < 3; v++) {
            redisReply *r = valid(p, v);

            if (check(p, r) != COUNCIL_OK)
                FAIL("%s variant %d does not parse", parsers[p].name, v);
            drop(r);
        }
    }
}

TEST(every_node_replaced_by_every_wrong_type)
{
    size_t p, q;
    int v, k, t, n, bad = 0, total = 0;

    for (p = 0; p < N_PARSERS; p++) {
        for (v = 0; v < 3; v++) {
            redisReply *base = valid(p, v);

            nth(&base, -1, &n);
            for (k = 0; k < n; k++) {
                for (t = 0; t < N_WRONG; t++) {
                    redisReply *r = clone(base), **slot;
                    int m;

                    slot = nth(&r, k, &m);
                    ASSERT_NOT_NULL(slot);
                    drop(*slot);
                    *slot = wrong(t);
                    /* Every parser on it, not only its own. */
                    for (q = 0; q < N_PARSERS; q++) {
                        if (check(q, r) != COUNCIL_OK)
                            bad++;
                        total++;
                    }
                    drop(r);
                }
            }
            drop(base);
        }
    }
    printf("%d trees x parsers, %d refused\n", total, bad);
    ASSERT(bad > 0);
}

/* A random tree: depth <= 3, from words the parsers know and junk. */
static uint64_t rng;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const words[] = {
    "ok",      "dup",       "gap",     "fenced",  "notfound",
    "created", "exists",    "claimed", "skip",    "queued",
    "running", "cancelled", "error",   "crashed", "terminal",
    "flagged", "0-1",       "0-99",    "1-1",     "0-",
    "ev",      "outcome",   "reason",  "ts_ms",   "state",
    "gen",     "last_seq",  "spec",    "cancel",  "1",
    "0",       "-1",        "",        "x",       "99999999999999999999",
    "{}",      "a",         "b"};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static redisReply *
random_tree(int depth)
{
    int k = (int)(next() % 8);

    if (depth >= 3 && k >= 6)
        k = (int)(next() % 6);
    switch (k) {
    case 0:
    case 1:
        return s_(words[next() % N_WORDS]);
    case 2:
        return i_((long long)(next() % 5) - 1);
    case 3:
        return node(REDIS_REPLY_NIL);
    case 4:
        return next() % 4 == 0 ? err_("ERR Function not found")
                               : err_("OOM command not allowed");
    case 5:
        return next() % 8 == 0 ? NULL : str_n(REDIS_REPLY_STATUS, "ok", 2);
    default: {
        size_t n = (size_t)(next() % 11), i;
        redisReply *r = a_(0);

        r->elements = n;
        if (n > 0 && next() % 16 != 0) {
            r->element = calloc(n, sizeof(*r->element));
            ASSERT_NOT_NULL(r->element);
            for (i = 0; i < n; i++)
                r->element[i] = random_tree(depth + 1);
        }
        return r;
    }
    }
}

TEST_T(random_trees, 60)
{
    int i, ok = 0;
    size_t p;

    rng = runner_seed() | 1;
    for (i = 0; i < 20000; i++) {
        redisReply *r = random_tree(0);

        for (p = 0; p < N_PARSERS; p++)
            if (check(p, r) == COUNCIL_OK)
                ok++;
        drop(r);
    }
    printf("random trees accepted by some parser: %d\n", ok);
}

TEST(targeted_cases)
{
    council__fn_reply v;
    council__fn_entry e;
    council_diag d;
    redisReply *r;
    int64_t ver;

    /* A lost connection. */
    ASSERT_EQ_INT(council__fn_parse_append(NULL, "R", &v, &d), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(d.msg, "no reply");
    ASSERT_STR_EQ(d.file, "council:run:R");
    /* The library is gone (FUNCTION FLUSH, or Redis lost it). */
    r = err_("ERR Function not found");
    ASSERT_EQ_INT(council__fn_parse_claim(r, "R", &v, &d), COUNCIL_ENOTFOUND);
    ASSERT_STR_CONTAINS(d.msg, "not loaded");
    drop(r);
    r = err_("OOM command not allowed when used memory > 'maxmemory'.");
    ASSERT_EQ_INT(council__fn_parse_finish(r, "R", &v, &d), COUNCIL_EIO);
    ASSERT_STR_CONTAINS(d.msg, "council_v1_finish of run R: Redis said: OOM");
    drop(r);
    /* A string with a NUL is not the word before it. */
    r = a_(2, str_n(REDIS_REPLY_STRING, "ok\0", 3), i_(1));
    ASSERT_EQ_INT(council__fn_parse_append(r, "R", &v, &d), COUNCIL_EPARSE);
    drop(r);
    /* Claims never give generation 0; skips never name queued. */
    r = a_(3, s_("claimed"), i_(0), s_("{}"));
    ASSERT_EQ_INT(council__fn_parse_claim(r, "R", &v, &d), COUNCIL_EPARSE);
    drop(r);
    r = a_(2, s_("skip"), s_("queued"));
    ASSERT_EQ_INT(council__fn_parse_claim(r, "R", &v, &d), COUNCIL_EPARSE);
    drop(r);
    r = i_(0);
    ASSERT_EQ_INT(council__fn_parse_version(r, &ver, &d), COUNCIL_EPARSE);
    drop(r);
    /* renew: one pair per run asked about. */
    r = a_(2, s_("ok"), i_(0));
    {
        council__fn_renewal out[3];

        ASSERT_EQ_INT(council__fn_parse_renew(r, renew_ids, 3, out, &d),
                      COUNCIL_EPARSE);
        ASSERT_STR_CONTAINS(d.msg, "2 elements for 3 runs");
    }
    drop(r);
    /* Entry ids. */
    r = a_(2, s_("0-18446744073709551616"), a_(2, s_("ev"), s_("{}")));
    ASSERT_EQ_INT(council__fn_parse_entry(r, "R", &e, &d), COUNCIL_EPARSE);
    ASSERT_STR_EQ(d.file, "council:run:R:ev");
    drop(r);
    r = a_(2, s_("0-2"), a_(4, s_("ev"), s_("{}"), s_("ev"), s_("{}")));
    ASSERT_EQ_INT(council__fn_parse_entry(r, "R", &e, &d), COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(d.msg, "given twice");
    drop(r);
    /* Unknown fields of a later version are ignored. */
    r = a_(2, s_("0-2"), a_(4, s_("ev"), s_("{}"), s_("later"), s_("x")));
    ASSERT_OK(council__fn_parse_entry(r, "R", &e, &d));
    ASSERT(!e.terminal && e.seq == 2);
    drop(r);
    /* A bad run id in a diag is "?", never quoted raw. */
    ASSERT_EQ_INT(council__fn_parse_append(NULL, "a b\n", &v, &d), COUNCIL_EIO);
    ASSERT_STR_EQ(d.file, "council:run:?");
}

/* ---- builders ---- */

static void
argv_is(const council__fn_cmd *c, const char *const *want, int n)
{
    int i;

    ASSERT_EQ_INT(c->argc, n);
    for (i = 0; i < n; i++) {
        if (c->argvlen[i] != strlen(want[i]) ||
            memcmp(c->argv[i], want[i], c->argvlen[i]) != 0)
            FAIL("argv[%d] is \"%.*s\", not \"%s\"", i, (int)c->argvlen[i],
                 c->argv[i], want[i]);
    }
}

TEST(builders_give_the_documented_layout)
{
    council__fn_cmd c = {0};
    council_diag d;
    const char *evs[] = {"{\"a\":1}", "{\"b\":2}"};
    size_t lens[] = {7, 7};
    const char *ids[] = {"r1", "r2"};
    uint64_t gens[] = {3, 4};

    ASSERT_OK(council__fn_enqueue_cmd(&c, "R", "{}", 2, "me", &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_enqueue", "2",
                                  "council:run:R", "council:q", "R", "{}",
                                  "me"},
            8);
    ASSERT_OK(council__fn_claim_cmd(&c, "R", "w1", 10000, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_claim", "2",
                                  "council:run:R", "council:leases", "R", "w1",
                                  "10000"},
            8);
    ASSERT_OK(council__fn_append_cmd(&c, "R", 2, 5, evs, lens, 2, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_append", "2",
                                  "council:run:R", "council:run:R:ev", "R", "2",
                                  "5", evs[0], evs[1]},
            10);
    ASSERT_OK(council__fn_renew_cmd(&c, "w1", 9000, ids, gens, 2, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_renew", "3",
                                  "council:leases", "council:run:r1",
                                  "council:run:r2", "w1", "9000", "r1", "3",
                                  "r2", "4"},
            12);
    ASSERT_OK(council__fn_finish_cmd(&c, "R", 2, 6, "{}", 2,
                                     COUNCIL_OUTCOME_ERROR, "why", 0, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_finish", "3",
                                  "council:run:R", "council:run:R:ev",
                                  "council:leases", "R", "2", "6", "{}",
                                  "error", "why", "604800"},
            13);
    ASSERT_OK(council__fn_finish_cmd(&c, "R", 2, 6, NULL, 0,
                                     COUNCIL_OUTCOME_CRASHED, NULL, 60, &d));
    ASSERT_EQ_INT(c.argvlen[9], 0);
    ASSERT_EQ_INT(c.argvlen[11], 0);
    ASSERT(c.argvlen[12] == 2 && memcmp(c.argv[12], "60", 2) == 0);
    ASSERT_OK(council__fn_cancel_cmd(&c, "R", "{}", 2, "asked", 0, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_cancel", "2",
                                  "council:run:R", "council:run:R:ev", "R",
                                  "{}", "asked", "604800"},
            9);
    ASSERT_OK(council__fn_reap_cmd(&c, 100, 3600, &d));
    argv_is(&c,
            (const char *const[]){"FCALL", "council_v1_reap", "1",
                                  "council:leases", "100", "3600"},
            6);
    ASSERT_OK(council__fn_version_cmd(&c, &d));
    argv_is(&c, (const char *const[]){"FCALL_RO", "council_v1_version", "0"},
            3);
    council__fn_cmd_free(&c);
    council__fn_cmd_free(&c);
}

TEST(builders_refuse_bad_arguments)
{
    council__fn_cmd c = {0};
    council_diag d;
    char long_id[200];
    const char *ev = "{}";
    size_t len = 2, zero = 0;
    const char *ids[] = {"ok", "bad id"};
    uint64_t gens[] = {1, 1};

    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    ASSERT_EQ_INT(council__fn_enqueue_cmd(&c, "", "{}", 2, "me", &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(d.msg, "run id");
    ASSERT_EQ_INT(council__fn_enqueue_cmd(&c, long_id, "{}", 2, "me", &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_enqueue_cmd(&c, "r\xc3\xa9", "{}", 2, "me", &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_enqueue_cmd(&c, "R", NULL, 0, "me", &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_claim_cmd(&c, "R", "w", 0, &d), COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_append_cmd(&c, "R", 1, 0, &ev, &len, 1, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_append_cmd(&c, "R", 1, 1, &ev, &zero, 1, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_append_cmd(&c, "R", 1, 1, &ev, &len, 0, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_renew_cmd(&c, "w", 1000, ids, gens, 2, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_renew_cmd(&c, "w", 1000, ids, gens, 0, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_finish_cmd(&c, "R", 1, 1, NULL, 0,
                                         COUNCIL_OUTCOME_OK, "", 0, &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(d.msg, "only a crashed outcome");
    ASSERT_EQ_INT(council__fn_finish_cmd(&c, "R", 1, 1, "{}", 2,
                                         (council_outcome_kind)9, "", 0, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_cancel_cmd(&c, "R", NULL, 0, "", 0, &d),
                  COUNCIL_EINVAL);
    ASSERT_EQ_INT(council__fn_reap_cmd(&c, 0, 0, &d), COUNCIL_EINVAL);
    /* A failed build leaves the command empty. */
    ASSERT_EQ_INT(c.argc, 0);
    ASSERT_NULL(c.argv);
}
