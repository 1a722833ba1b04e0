/* SPDX-License-Identifier: MIT */
/*
 * The council Redis Functions library from C (fn.h): the embedded Lua
 * text, its loader with the version check, the command builders and the
 * reply parsers.  Nothing here keeps state; nothing here blocks except
 * council__fn_load, which talks to a synchronous context.
 *
 * Method (parsers): every parser first turns a NULL reply or an error
 * reply into COUNCIL_EIO / COUNCIL_ENOTFOUND (error_of), then checks the
 * reply's shape element by element before reading any value (elem_state,
 * elem_uint), so a wrong type at any level is a COUNCIL_EPARSE whose
 * message says which element of which function's reply, for which run,
 * was what.  Strings are compared with their length (a bulk string may
 * hold a NUL).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bus/fn.h"
#include "core/alloc.h"

#include "council_v1_lua.h"

const char *
council__fn_library_text(void)
{
    return council_v1_lua;
}

size_t
council__fn_library_len(void)
{
    return (size_t)council_v1_lua_len;
}

/* ---- diagnostics ---- */

static void diag_set(council_diag *d, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
diag_set(council_diag *d, const char *file, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return;
    memset(d, 0, sizeof(*d));
    snprintf(d->file, sizeof(d->file), "%s", file != NULL ? file : "");
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}

/* A run id we put in key names: 1..COUNCIL__FN_RUN_ID_MAX bytes of
 * printable ASCII without space (so a key name is never ambiguous and a
 * diag can quote it). */
static int
run_id_ok(const char *id)
{
    size_t i;

    if (id == NULL || id[0] == '\0')
        return 0;
    for (i = 0; id[i] != '\0'; i++) {
        if (i >= COUNCIL__FN_RUN_ID_MAX || id[i] <= ' ' || id[i] > '~')
            return 0;
    }
    return 1;
}

/* council:run:R into buf (diag files); "council:run:?" for a bad id. */
static const char *
run_key(char *buf, size_t n, const char *id, const char *suffix)
{
    snprintf(buf, n, "council:run:%s%s", run_id_ok(id) ? id : "?", suffix);
    return buf;
}

/* ---- commands ---- */

void
council__fn_cmd_free(council__fn_cmd *cmd)
{
    if (cmd == NULL)
        return;
    council__free(cmd->argv);
    council__free(cmd->argvlen);
    council__free(cmd->arena);
    memset(cmd, 0, sizeof(*cmd));
}

/* Room for argc arguments and arena bytes of strings made. */
static council_err
cmd_begin(council__fn_cmd *cmd, size_t argc, size_t arena)
{
    council__fn_cmd_free(cmd);
    if (argc > INT_MAX)
        return COUNCIL_EINVAL;
    cmd->argv = council__calloc(argc, sizeof(*cmd->argv));
    cmd->argvlen = council__calloc(argc, sizeof(*cmd->argvlen));
    cmd->arena = council__malloc(arena);
    if (cmd->argv == NULL || cmd->argvlen == NULL || cmd->arena == NULL) {
        council__fn_cmd_free(cmd);
        return COUNCIL_ENOMEM;
    }
    cmd->arena_cap = arena;
    cmd->argc_cap = (int)argc;
    return COUNCIL_OK;
}

/* The next argument.  The builders size argv exactly; one more than that
 * is a bug, caught (overflow) and reported by made(), never a write past
 * the array. */
static void
cmd_borrow(council__fn_cmd *cmd, const char *s, size_t len)
{
    if (cmd->argc >= cmd->argc_cap) {
        cmd->overflow = 1;
        return;
    }
    cmd->argv[cmd->argc] = s;
    cmd->argvlen[cmd->argc] = len;
    cmd->argc++;
}

/* A string made into the arena, as the next argument.  The arena was
 * sized by the builder for every string it makes, so it never grows
 * (pointers to it are in argv). */
static int cmd_make(council__fn_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
cmd_make(council__fn_cmd *cmd, const char *fmt, ...)
{
    size_t room = cmd->arena_cap - cmd->arena_len;
    char *at = cmd->arena + cmd->arena_len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room || cmd->argc >= cmd->argc_cap)
        return -1;
    cmd->arena_len += (size_t)n + 1;
    cmd_borrow(cmd, at, (size_t)n);
    return 0;
}

#define NUM_ROOM 24 /* a uint64 in decimal, its NUL, and slack */
#define KEY_ROOM (sizeof("council:run:") + COUNCIL__FN_RUN_ID_MAX + 4)

static council_err
bad_arg(council__fn_cmd *cmd, council_diag *d, const char *fn,
        const char *run_id, const char *what)
{
    char key[KEY_ROOM];

    council__fn_cmd_free(cmd);
    diag_set(d, run_key(key, sizeof(key), run_id, ""), "council_v1_%s: %s", fn,
             what);
    return COUNCIL_EINVAL;
}

static council_err
made(council__fn_cmd *cmd, int failed, council_diag *d, const char *fn)
{
    if (!failed && !cmd->overflow && cmd->argc == cmd->argc_cap)
        return COUNCIL_OK;
    council__fn_cmd_free(cmd);
    diag_set(d, "", "council_v1_%s: the command did not fit its buffer", fn);
    return COUNCIL_EINTERNAL;
}

#define BAD_ID "a run id is 1 to 128 bytes of printable ASCII, no space"

council_err
council__fn_enqueue_cmd(council__fn_cmd *cmd, const char *run_id,
                        const char *spec, size_t spec_len,
                        const char *created_by, council_diag *diag)
{
    council_err rc;
    int f = 0;

    if (cmd == NULL || !run_id_ok(run_id))
        return bad_arg(cmd, diag, "enqueue", run_id, BAD_ID);
    if (spec == NULL || spec_len == 0 || created_by == NULL)
        return bad_arg(cmd, diag, "enqueue", run_id,
                       "the spec and created_by are required");
    rc = cmd_begin(cmd, 8, 2 * KEY_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_enqueue", 18);
    cmd_borrow(cmd, "2", 1);
    f |= cmd_make(cmd, "council:run:%s", run_id);
    cmd_borrow(cmd, COUNCIL__FN_KEY_QUEUE, strlen(COUNCIL__FN_KEY_QUEUE));
    cmd_borrow(cmd, run_id, strlen(run_id));
    cmd_borrow(cmd, spec, spec_len);
    cmd_borrow(cmd, created_by, strlen(created_by));
    return made(cmd, f, diag, "enqueue");
}

council_err
council__fn_claim_cmd(council__fn_cmd *cmd, const char *run_id,
                      const char *worker, uint64_t lease_ms, council_diag *diag)
{
    council_err rc;
    int f = 0;

    if (cmd == NULL || !run_id_ok(run_id))
        return bad_arg(cmd, diag, "claim", run_id, BAD_ID);
    if (worker == NULL || worker[0] == '\0' || lease_ms == 0)
        return bad_arg(cmd, diag, "claim", run_id,
                       "a worker name and a lease > 0 are required");
    rc = cmd_begin(cmd, 8, KEY_ROOM + NUM_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_claim", 16);
    cmd_borrow(cmd, "2", 1);
    f |= cmd_make(cmd, "council:run:%s", run_id);
    cmd_borrow(cmd, COUNCIL__FN_KEY_LEASES, strlen(COUNCIL__FN_KEY_LEASES));
    cmd_borrow(cmd, run_id, strlen(run_id));
    cmd_borrow(cmd, worker, strlen(worker));
    f |= cmd_make(cmd, "%llu", (unsigned long long)lease_ms);
    return made(cmd, f, diag, "claim");
}

council_err
council__fn_append_cmd(council__fn_cmd *cmd, const char *run_id, uint64_t gen,
                       uint64_t first_seq, const char *const *events,
                       const size_t *lens, size_t n, council_diag *diag)
{
    council_err rc;
    size_t i;
    int f = 0;

    if (cmd == NULL || !run_id_ok(run_id))
        return bad_arg(cmd, diag, "append", run_id, BAD_ID);
    if (events == NULL || lens == NULL || n == 0 || first_seq == 0 ||
        n > (size_t)INT_MAX - 8)
        return bad_arg(cmd, diag, "append", run_id,
                       "1 or more events and a seq >= 1 are required");
    for (i = 0; i < n; i++) {
        if (events[i] == NULL || lens[i] == 0)
            return bad_arg(cmd, diag, "append", run_id,
                           "an event is NULL or empty");
    }
    rc = cmd_begin(cmd, 8 + n, 2 * KEY_ROOM + 2 * NUM_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_append", 17);
    cmd_borrow(cmd, "2", 1);
    f |= cmd_make(cmd, "council:run:%s", run_id);
    f |= cmd_make(cmd, "council:run:%s:ev", run_id);
    cmd_borrow(cmd, run_id, strlen(run_id));
    f |= cmd_make(cmd, "%llu", (unsigned long long)gen);
    f |= cmd_make(cmd, "%llu", (unsigned long long)first_seq);
    for (i = 0; i < n; i++)
        cmd_borrow(cmd, events[i], lens[i]);
    return made(cmd, f, diag, "append");
}

council_err
council__fn_renew_cmd(council__fn_cmd *cmd, const char *worker,
                      uint64_t lease_ms, const char *const *run_ids,
                      const uint64_t *gens, size_t n, council_diag *diag)
{
    council_err rc;
    size_t i;
    int f = 0;

    if (cmd == NULL || worker == NULL || worker[0] == '\0' || lease_ms == 0 ||
        run_ids == NULL || gens == NULL || n == 0 || n > 100000)
        return bad_arg(cmd, diag, "renew", NULL,
                       "a worker, a lease > 0 and 1 to 100000 runs are "
                       "required");
    for (i = 0; i < n; i++) {
        if (!run_id_ok(run_ids[i]))
            return bad_arg(cmd, diag, "renew", run_ids[i], BAD_ID);
    }
    rc = cmd_begin(cmd, 6 + 3 * n, 2 * NUM_ROOM + n * (KEY_ROOM + NUM_ROOM));
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_renew", 16);
    f |= cmd_make(cmd, "%zu", n + 1);
    cmd_borrow(cmd, COUNCIL__FN_KEY_LEASES, strlen(COUNCIL__FN_KEY_LEASES));
    for (i = 0; i < n; i++)
        f |= cmd_make(cmd, "council:run:%s", run_ids[i]);
    cmd_borrow(cmd, worker, strlen(worker));
    f |= cmd_make(cmd, "%llu", (unsigned long long)lease_ms);
    for (i = 0; i < n; i++) {
        cmd_borrow(cmd, run_ids[i], strlen(run_ids[i]));
        f |= cmd_make(cmd, "%llu", (unsigned long long)gens[i]);
    }
    return made(cmd, f, diag, "renew");
}

static const char *
outcome_name(council_outcome_kind k)
{
    switch (k) {
    case COUNCIL_OUTCOME_OK:
        return "ok";
    case COUNCIL_OUTCOME_CANCELLED:
        return "cancelled";
    case COUNCIL_OUTCOME_ERROR:
        return "error";
    case COUNCIL_OUTCOME_CRASHED:
        return "crashed";
    }
    return NULL;
}

council_err
council__fn_finish_cmd(council__fn_cmd *cmd, const char *run_id, uint64_t gen,
                       uint64_t seq, const char *terminal, size_t terminal_len,
                       council_outcome_kind kind, const char *reason,
                       uint32_t expire_s, council_diag *diag)
{
    const char *oname = outcome_name(kind);
    council_err rc;
    int f = 0;

    if (cmd == NULL || !run_id_ok(run_id))
        return bad_arg(cmd, diag, "finish", run_id, BAD_ID);
    if (oname == NULL || seq == 0)
        return bad_arg(cmd, diag, "finish", run_id,
                       "an outcome kind and a seq >= 1 are required");
    if ((terminal == NULL || terminal_len == 0) &&
        kind != COUNCIL_OUTCOME_CRASHED)
        return bad_arg(cmd, diag, "finish", run_id,
                       "only a crashed outcome may have no terminal event");
    rc = cmd_begin(cmd, 13, 2 * KEY_ROOM + 3 * NUM_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_finish", 17);
    cmd_borrow(cmd, "3", 1);
    f |= cmd_make(cmd, "council:run:%s", run_id);
    f |= cmd_make(cmd, "council:run:%s:ev", run_id);
    cmd_borrow(cmd, COUNCIL__FN_KEY_LEASES, strlen(COUNCIL__FN_KEY_LEASES));
    cmd_borrow(cmd, run_id, strlen(run_id));
    f |= cmd_make(cmd, "%llu", (unsigned long long)gen);
    f |= cmd_make(cmd, "%llu", (unsigned long long)seq);
    if (terminal == NULL)
        cmd_borrow(cmd, "", 0);
    else
        cmd_borrow(cmd, terminal, terminal_len);
    cmd_borrow(cmd, oname, strlen(oname));
    cmd_borrow(cmd, reason != NULL ? reason : "",
               reason != NULL ? strlen(reason) : 0);
    f |=
        cmd_make(cmd, "%lu",
                 (unsigned long)(expire_s != 0 ? expire_s
                                               : COUNCIL__FN_EXPIRE_DEFAULT_S));
    return made(cmd, f, diag, "finish");
}

council_err
council__fn_cancel_cmd(council__fn_cmd *cmd, const char *run_id,
                       const char *terminal, size_t terminal_len,
                       const char *reason, uint32_t expire_s,
                       council_diag *diag)
{
    council_err rc;
    int f = 0;

    if (cmd == NULL || !run_id_ok(run_id))
        return bad_arg(cmd, diag, "cancel", run_id, BAD_ID);
    if (terminal == NULL || terminal_len == 0)
        return bad_arg(cmd, diag, "cancel", run_id,
                       "the terminal event (for a queued run) is required");
    rc = cmd_begin(cmd, 9, 2 * KEY_ROOM + NUM_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_cancel", 17);
    cmd_borrow(cmd, "2", 1);
    f |= cmd_make(cmd, "council:run:%s", run_id);
    f |= cmd_make(cmd, "council:run:%s:ev", run_id);
    cmd_borrow(cmd, run_id, strlen(run_id));
    cmd_borrow(cmd, terminal, terminal_len);
    cmd_borrow(cmd, reason != NULL ? reason : "",
               reason != NULL ? strlen(reason) : 0);
    f |=
        cmd_make(cmd, "%lu",
                 (unsigned long)(expire_s != 0 ? expire_s
                                               : COUNCIL__FN_EXPIRE_DEFAULT_S));
    return made(cmd, f, diag, "cancel");
}

council_err
council__fn_reap_cmd(council__fn_cmd *cmd, unsigned limit, uint32_t expire_s,
                     council_diag *diag)
{
    council_err rc;
    int f = 0;

    if (cmd == NULL || limit == 0)
        return bad_arg(cmd, diag, "reap", NULL, "a limit >= 1 is required");
    rc = cmd_begin(cmd, 6, 2 * NUM_ROOM);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL", 5);
    cmd_borrow(cmd, "council_v1_reap", 15);
    cmd_borrow(cmd, "1", 1);
    cmd_borrow(cmd, COUNCIL__FN_KEY_LEASES, strlen(COUNCIL__FN_KEY_LEASES));
    f |= cmd_make(cmd, "%u", limit);
    f |=
        cmd_make(cmd, "%lu",
                 (unsigned long)(expire_s != 0 ? expire_s
                                               : COUNCIL__FN_EXPIRE_DEFAULT_S));
    return made(cmd, f, diag, "reap");
}

council_err
council__fn_version_cmd(council__fn_cmd *cmd, council_diag *diag)
{
    council_err rc;

    if (cmd == NULL)
        return bad_arg(cmd, diag, "version", NULL, "no command");
    rc = cmd_begin(cmd, 3, 1);
    if (rc != COUNCIL_OK)
        return rc;
    cmd_borrow(cmd, "FCALL_RO", 8);
    cmd_borrow(cmd, "council_v1_version", 18);
    cmd_borrow(cmd, "0", 1);
    return made(cmd, 0, diag, "version");
}

/* ---- replies ---- */

static const char *const state_names[] = {
    NULL, "queued", "running", "ok", "cancelled", "error", "crashed"};

const char *
council__fn_state_name(council__fn_state s)
{
    if ((int)s < 1 || (int)s > (int)COUNCIL__FN_CRASHED)
        return "unknown";
    return state_names[s];
}

int
council__fn_state_terminal(council__fn_state s)
{
    return s == COUNCIL__FN_OK || s == COUNCIL__FN_CANCELLED ||
           s == COUNCIL__FN_ERROR || s == COUNCIL__FN_CRASHED;
}

static const char *
type_name(int t)
{
    switch (t) {
    case REDIS_REPLY_STRING:
        return "string";
    case REDIS_REPLY_ARRAY:
        return "array";
    case REDIS_REPLY_INTEGER:
        return "integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "status";
    case REDIS_REPLY_ERROR:
        return "error";
    }
    return "unknown type";
}

/* s (len bytes) equals the NUL-terminated word. */
static int
is(const char *s, size_t len, const char *word)
{
    return s != NULL && strlen(word) == len && memcmp(s, word, len) == 0;
}

static int
is_str(const redisReply *r)
{
    return r != NULL &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->str != NULL;
}

/* A decimal uint < 2^63 from s (len bytes), else -1. */
static int64_t
parse_uint(const char *s, size_t len)
{
    uint64_t v = 0;
    size_t i;

    if (s == NULL || len == 0 || len > 19)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    return (int64_t)v;
}

static council__fn_state
parse_state(const char *s, size_t len)
{
    int i;

    for (i = 1; i <= (int)COUNCIL__FN_CRASHED; i++) {
        if (is(s, len, state_names[i]))
            return (council__fn_state)i;
    }
    return 0;
}

/* What a parser needs to say where it is. */
typedef struct ctx {
    const char *fn; /* "append", ... */
    const char *run_id;
    char key[KEY_ROOM + 8]; /* diag.file */
    council_diag *diag;
} ctx;

static void
ctx_init(ctx *x, const char *fn, const char *run_id, council_diag *d)
{
    x->fn = fn;
    x->run_id = run_id;
    x->diag = d;
    if (run_id != NULL)
        run_key(x->key, sizeof(x->key), run_id, "");
    else
        snprintf(x->key, sizeof(x->key), "%s", COUNCIL__FN_KEY_LEASES);
}

static const char *
ctx_run(const ctx *x)
{
    return x->run_id != NULL && run_id_ok(x->run_id) ? x->run_id : "?";
}

static council_err bad_shape(const ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static council_err
bad_shape(const ctx *x, const char *fmt, ...)
{
    char what[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (x->run_id != NULL)
        diag_set(x->diag, x->key,
                 "council_v1_%s of run %s answered what it never answers: "
                 "%s (not the council_v1 library?)",
                 x->fn, ctx_run(x), what);
    else
        diag_set(x->diag, x->key,
                 "council_v1_%s answered what it never answers: %s (not the "
                 "council_v1 library?)",
                 x->fn, what);
    return COUNCIL_EPARSE;
}

/* NULL and error replies; COUNCIL_OK for anything else. */
static council_err
error_of(const ctx *x, const redisReply *r)
{
    int len;

    if (r == NULL) {
        diag_set(x->diag, x->key,
                 "council_v1_%s of run %s: no reply (the connection failed)",
                 x->fn, ctx_run(x));
        return COUNCIL_EIO;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return COUNCIL_OK;
    len = r->str != NULL && r->len < 160 ? (int)r->len : 160;
    if (r->str != NULL && strstr(r->str, "Function not found") != NULL) {
        diag_set(x->diag, x->key,
                 "council_v1_%s of run %s: the council_v1 library is not "
                 "loaded (%.*s)",
                 x->fn, ctx_run(x), len, r->str);
        return COUNCIL_ENOTFOUND;
    }
    diag_set(x->diag, x->key, "council_v1_%s of run %s: Redis said: %.*s",
             x->fn, ctx_run(x), len, r->str != NULL ? r->str : "");
    return COUNCIL_EIO;
}

/* rep is an array of min..max elements whose first is a string; its
 * status word in *st. */
static council_err
head(const ctx *x, const redisReply *r, const redisReply **st)
{
    council_err rc = error_of(x, r);

    if (rc != COUNCIL_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY)
        return bad_shape(x, "a reply of type %s, not an array",
                         type_name(r->type));
    if (r->elements < 1 || r->element == NULL || !is_str(r->element[0]))
        return bad_shape(x, "an array without a status string first");
    *st = r->element[0];
    return COUNCIL_OK;
}

static council_err
want_len(const ctx *x, const redisReply *r, size_t n, const redisReply *st)
{
    if (r->elements != n)
        return bad_shape(x, "\"%.*s\" with %zu elements, not %zu",
                         st->len < 32 ? (int)st->len : 32, st->str, r->elements,
                         n);
    return COUNCIL_OK;
}

static council_err
elem_uint(const ctx *x, const redisReply *r, size_t i, uint64_t *out)
{
    const redisReply *e = r->element[i];

    if (e == NULL || e->type != REDIS_REPLY_INTEGER || e->integer < 0)
        return bad_shape(x, "element %zu is %s, not an integer >= 0", i + 1,
                         e == NULL ? "missing" : type_name(e->type));
    *out = (uint64_t)e->integer;
    return COUNCIL_OK;
}

static council_err
elem_state(const ctx *x, const redisReply *r, size_t i, council__fn_state *out)
{
    const redisReply *e = r->element[i];

    if (!is_str(e))
        return bad_shape(x, "element %zu is %s, not a state", i + 1,
                         e == NULL ? "missing" : type_name(e->type));
    *out = parse_state(e->str, e->len);
    if (*out == 0)
        return bad_shape(x, "unknown state \"%.*s\"",
                         e->len < 32 ? (int)e->len : 32, e->str);
    return COUNCIL_OK;
}

static council_err
unknown_status(const ctx *x, const redisReply *st)
{
    return bad_shape(x, "unknown status \"%.*s\"",
                     st->len < 32 ? (int)st->len : 32, st->str);
}

council_err
council__fn_parse_enqueue(const redisReply *rep, const char *run_id,
                          council__fn_reply *out, council_diag *diag)
{
    const redisReply *st = NULL;
    council__fn_reply v;
    council_err rc;
    ctx x;

    ctx_init(&x, "enqueue", run_id, diag);
    memset(&v, 0, sizeof(v));
    rc = head(&x, rep, &st);
    if (rc == COUNCIL_OK)
        rc = want_len(&x, rep, 2, st);
    if (rc == COUNCIL_OK)
        rc = elem_state(&x, rep, 1, &v.state);
    if (rc != COUNCIL_OK)
        return rc;
    if (is(st->str, st->len, "created") && v.state == COUNCIL__FN_QUEUED)
        v.status = COUNCIL__FN_CREATED;
    else if (is(st->str, st->len, "exists"))
        v.status = COUNCIL__FN_EXISTS;
    else
        return unknown_status(&x, st);
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

council_err
council__fn_parse_claim(const redisReply *rep, const char *run_id,
                        council__fn_reply *out, council_diag *diag)
{
    const redisReply *st = NULL, *spec;
    council__fn_reply v;
    council_err rc;
    ctx x;

    ctx_init(&x, "claim", run_id, diag);
    memset(&v, 0, sizeof(v));
    rc = head(&x, rep, &st);
    if (rc != COUNCIL_OK)
        return rc;
    if (is(st->str, st->len, "claimed")) {
        rc = want_len(&x, rep, 3, st);
        if (rc == COUNCIL_OK)
            rc = elem_uint(&x, rep, 1, &v.gen);
        if (rc != COUNCIL_OK)
            return rc;
        if (v.gen == 0)
            return bad_shape(&x, "a claim with generation 0");
        spec = rep->element[2];
        if (spec == NULL || spec->type != REDIS_REPLY_STRING ||
            spec->str == NULL)
            return bad_shape(&x, "the spec is %s, not a string",
                             spec == NULL ? "missing" : type_name(spec->type));
        v.status = COUNCIL__FN_CLAIMED;
        v.state = COUNCIL__FN_RUNNING;
        v.spec = spec->str;
        v.spec_len = spec->len;
    } else if (is(st->str, st->len, "skip")) {
        rc = want_len(&x, rep, 2, st);
        if (rc == COUNCIL_OK)
            rc = elem_state(&x, rep, 1, &v.state);
        if (rc != COUNCIL_OK)
            return rc;
        if (v.state == COUNCIL__FN_QUEUED)
            return bad_shape(&x, "a skip of a queued run");
        v.status = COUNCIL__FN_SKIP;
    } else if (is(st->str, st->len, "notfound")) {
        rc = want_len(&x, rep, 1, st);
        if (rc != COUNCIL_OK)
            return rc;
        v.status = COUNCIL__FN_NOTFOUND;
    } else {
        return unknown_status(&x, st);
    }
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

static council_err
parse_write(const char *fn, const redisReply *rep, const char *run_id,
            council__fn_reply *out, council_diag *diag)
{
    const redisReply *st = NULL;
    council__fn_reply v;
    council_err rc;
    ctx x;

    ctx_init(&x, fn, run_id, diag);
    memset(&v, 0, sizeof(v));
    rc = head(&x, rep, &st);
    if (rc != COUNCIL_OK)
        return rc;
    if (is(st->str, st->len, "ok") || is(st->str, st->len, "dup") ||
        is(st->str, st->len, "gap")) {
        rc = want_len(&x, rep, 2, st);
        if (rc == COUNCIL_OK)
            rc = elem_uint(&x, rep, 1, &v.last_seq);
        if (rc != COUNCIL_OK)
            return rc;
        v.status = st->str[0] == 'o'   ? COUNCIL__FN_WRITTEN
                   : st->str[0] == 'd' ? COUNCIL__FN_DUP
                                       : COUNCIL__FN_GAP;
        if (v.status == COUNCIL__FN_WRITTEN && v.last_seq == 0)
            return bad_shape(&x, "ok with last_seq 0");
    } else if (is(st->str, st->len, "fenced")) {
        rc = want_len(&x, rep, 3, st);
        if (rc == COUNCIL_OK)
            rc = elem_uint(&x, rep, 1, &v.gen);
        if (rc == COUNCIL_OK)
            rc = elem_state(&x, rep, 2, &v.state);
        if (rc != COUNCIL_OK)
            return rc;
        v.status = COUNCIL__FN_FENCED;
    } else if (is(st->str, st->len, "notfound")) {
        rc = want_len(&x, rep, 1, st);
        if (rc != COUNCIL_OK)
            return rc;
        v.status = COUNCIL__FN_NOTFOUND;
    } else {
        return unknown_status(&x, st);
    }
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

council_err
council__fn_parse_append(const redisReply *rep, const char *run_id,
                         council__fn_reply *out, council_diag *diag)
{
    return parse_write("append", rep, run_id, out, diag);
}

council_err
council__fn_parse_finish(const redisReply *rep, const char *run_id,
                         council__fn_reply *out, council_diag *diag)
{
    return parse_write("finish", rep, run_id, out, diag);
}

council_err
council__fn_parse_cancel(const redisReply *rep, const char *run_id,
                         council__fn_reply *out, council_diag *diag)
{
    const redisReply *st = NULL;
    council__fn_reply v;
    council_err rc;
    ctx x;

    ctx_init(&x, "cancel", run_id, diag);
    memset(&v, 0, sizeof(v));
    rc = head(&x, rep, &st);
    if (rc != COUNCIL_OK)
        return rc;
    if (is(st->str, st->len, "terminal")) {
        rc = want_len(&x, rep, 2, st);
        if (rc == COUNCIL_OK)
            rc = elem_state(&x, rep, 1, &v.state);
        if (rc != COUNCIL_OK)
            return rc;
        if (!council__fn_state_terminal(v.state))
            return bad_shape(&x, "terminal with state %s",
                             council__fn_state_name(v.state));
        v.status = COUNCIL__FN_TERMINAL;
    } else {
        rc = want_len(&x, rep, 1, st);
        if (rc != COUNCIL_OK)
            return rc;
        if (is(st->str, st->len, "cancelled")) {
            v.status = COUNCIL__FN_CANCELLED_NOW;
            v.state = COUNCIL__FN_CANCELLED;
        } else if (is(st->str, st->len, "flagged")) {
            v.status = COUNCIL__FN_FLAGGED;
            v.state = COUNCIL__FN_RUNNING;
        } else if (is(st->str, st->len, "notfound")) {
            v.status = COUNCIL__FN_NOTFOUND;
        } else {
            return unknown_status(&x, st);
        }
    }
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

council_err
council__fn_parse_renew(const redisReply *rep, const char *const *run_ids,
                        size_t n, council__fn_renewal *out, council_diag *diag)
{
    council_err rc;
    size_t i;
    ctx x;

    ctx_init(&x, "renew", NULL, diag);
    rc = error_of(&x, rep);
    if (rc != COUNCIL_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY)
        return bad_shape(&x, "a reply of type %s, not an array",
                         type_name(rep->type));
    if (n > SIZE_MAX / 2 || rep->elements != 2 * n ||
        (n > 0 && rep->element == NULL))
        return bad_shape(&x, "%zu elements for %zu runs", rep->elements, n);
    /* Check every pair first, then fill out: a bad reply leaves out
     * untouched. */
    for (i = 0; i < 2 * n; i += 2) {
        const redisReply *st = rep->element[i], *c = rep->element[i + 1];
        const char *id = run_ids != NULL ? run_ids[i / 2] : NULL;

        if (id != NULL)
            ctx_init(&x, "renew", id, diag);
        if (!is_str(st) ||
            !(is(st->str, st->len, "ok") || is(st->str, st->len, "fenced") ||
              is(st->str, st->len, "notfound")))
            return bad_shape(&x, "run %zu's status is %s", i / 2 + 1,
                             st == NULL ? "missing" : type_name(st->type));
        if (c == NULL || c->type != REDIS_REPLY_INTEGER ||
            (c->integer != 0 && c->integer != 1))
            return bad_shape(&x, "run %zu's cancel flag is %s, not 0 or 1",
                             i / 2 + 1,
                             c == NULL ? "missing" : type_name(c->type));
    }
    for (i = 0; out != NULL && i < n; i++) {
        const redisReply *st = rep->element[2 * i];

        out[i].status = st->str[0] == 'o'   ? COUNCIL__FN_RENEWED
                        : st->str[0] == 'f' ? COUNCIL__FN_FENCED
                                            : COUNCIL__FN_NOTFOUND;
        out[i].cancel = out[i].status == COUNCIL__FN_RENEWED &&
                        rep->element[2 * i + 1]->integer == 1;
    }
    return COUNCIL_OK;
}

static council_err
check_ids(const ctx *x, const redisReply *list, const char *which)
{
    size_t i;

    if (list == NULL || list->type != REDIS_REPLY_ARRAY ||
        (list->elements > 0 && list->element == NULL))
        return bad_shape(x, "the %s list is %s, not an array", which,
                         list == NULL ? "missing" : type_name(list->type));
    for (i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];

        if (e == NULL || e->type != REDIS_REPLY_STRING || e->str == NULL ||
            e->len == 0 || memchr(e->str, '\0', e->len) != NULL)
            return bad_shape(x, "%s run %zu is %s, not a run id", which, i + 1,
                             e == NULL ? "missing" : type_name(e->type));
    }
    return COUNCIL_OK;
}

council_err
council__fn_parse_reap(const redisReply *rep,
                       int (*cb)(const char *id, size_t len, int dropped,
                                 void *ud),
                       void *ud, size_t *n_reaped, size_t *n_dropped,
                       council_diag *diag)
{
    council_err rc;
    size_t i, k;
    ctx x;

    ctx_init(&x, "reap", NULL, diag);
    rc = error_of(&x, rep);
    if (rc != COUNCIL_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element == NULL)
        return bad_shape(&x, "a %s of %zu elements, not a pair of lists",
                         type_name(rep->type),
                         rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0);
    rc = check_ids(&x, rep->element[0], "reaped");
    if (rc == COUNCIL_OK)
        rc = check_ids(&x, rep->element[1], "dropped");
    if (rc != COUNCIL_OK)
        return rc;
    if (n_reaped != NULL)
        *n_reaped = rep->element[0]->elements;
    if (n_dropped != NULL)
        *n_dropped = rep->element[1]->elements;
    for (k = 0; cb != NULL && k < 2; k++) {
        const redisReply *list = rep->element[k];

        for (i = 0; i < list->elements; i++) {
            if (cb(list->element[i]->str, list->element[i]->len, (int)k, ud) !=
                0)
                return COUNCIL_ECANCELED;
        }
    }
    return COUNCIL_OK;
}

council_err
council__fn_parse_version(const redisReply *rep, int64_t *version,
                          council_diag *diag)
{
    council_err rc;
    ctx x;

    ctx_init(&x, "version", NULL, diag);
    rc = error_of(&x, rep);
    if (rc != COUNCIL_OK)
        return rc;
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer < 1)
        return bad_shape(&x, "a %s, not a version >= 1", type_name(rep->type));
    if (version != NULL)
        *version = rep->integer;
    return COUNCIL_OK;
}

/* ---- entries and hashes ---- */

static council_err bad_data(council_diag *d, const char *key, const char *fmt,
                            ...) __attribute__((format(printf, 3, 4)));

static council_err
bad_data(council_diag *d, const char *key, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return COUNCIL_EPARSE;
    memset(d, 0, sizeof(*d));
    snprintf(d->file, sizeof(d->file), "%s", key);
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    return COUNCIL_EPARSE;
}

static int
outcome_of(const char *s, size_t len, council_outcome_kind *k)
{
    static const council_outcome_kind kinds[] = {
        COUNCIL_OUTCOME_OK, COUNCIL_OUTCOME_CANCELLED, COUNCIL_OUTCOME_ERROR,
        COUNCIL_OUTCOME_CRASHED};
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (is(s, len, outcome_name(kinds[i]))) {
            *k = kinds[i];
            return 1;
        }
    }
    return 0;
}

council_err
council__fn_parse_entry(const redisReply *entry, const char *run_id,
                        council__fn_entry *out, council_diag *diag)
{
    char key[KEY_ROOM + 8], id[48];
    const redisReply *idr, *f;
    council__fn_entry v;
    int64_t seq;
    size_t i;
    int have_outcome = 0, have_reason = 0, have_ts = 0;

    run_key(key, sizeof(key), run_id, ":ev");
    memset(&v, 0, sizeof(v));
    v.ts_ms = -1;
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY ||
        entry->elements != 2 || entry->element == NULL)
        return bad_data(diag, key,
                        "run %s: a stream entry is %s, not [id, fields]",
                        run_id_ok(run_id) ? run_id : "?",
                        entry == NULL ? "missing" : type_name(entry->type));
    idr = entry->element[0];
    f = entry->element[1];
    seq = is_str(idr) && idr->len >= 3 && idr->len <= 40 &&
                  memcmp(idr->str, "0-", 2) == 0
              ? parse_uint(idr->str + 2, idr->len - 2)
              : -1;
    if (seq < 1)
        return bad_data(diag, key,
                        "run %s: an entry id that is not 0-<seq>, seq >= 1",
                        run_id_ok(run_id) ? run_id : "?");
    snprintf(id, sizeof(id), "%.*s", (int)idr->len, idr->str);
    v.seq = (uint64_t)seq;
    if (f == NULL || f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0 ||
        (f->elements > 0 && f->element == NULL))
        return bad_data(diag, key,
                        "run %s: entry %s: the fields are %s, not pairs",
                        run_id_ok(run_id) ? run_id : "?", id,
                        f == NULL ? "missing" : type_name(f->type));
    for (i = 0; i < f->elements; i += 2) {
        const redisReply *n = f->element[i], *val = f->element[i + 1];

        if (n == NULL || n->type != REDIS_REPLY_STRING || n->str == NULL ||
            val == NULL || val->type != REDIS_REPLY_STRING || val->str == NULL)
            return bad_data(diag, key,
                            "run %s: entry %s: field %zu is not a string "
                            "pair",
                            run_id_ok(run_id) ? run_id : "?", id, i / 2 + 1);
        if (is(n->str, n->len, "ev")) {
            if (v.ev != NULL || val->len == 0)
                return bad_data(diag, key,
                                "run %s: entry %s: field ev is empty or "
                                "given twice",
                                run_id_ok(run_id) ? run_id : "?", id);
            v.ev = val->str;
            v.ev_len = val->len;
        } else if (is(n->str, n->len, "outcome")) {
            if (have_outcome || !outcome_of(val->str, val->len, &v.kind))
                return bad_data(diag, key,
                                "run %s: entry %s: field outcome is \"%.*s\" "
                                "or given twice; expected ok, cancelled, "
                                "error or crashed",
                                run_id_ok(run_id) ? run_id : "?", id,
                                val->len < 32 ? (int)val->len : 32, val->str);
            have_outcome = 1;
        } else if (is(n->str, n->len, "reason")) {
            if (have_reason)
                return bad_data(diag, key,
                                "run %s: entry %s: field reason given twice",
                                run_id_ok(run_id) ? run_id : "?", id);
            have_reason = 1;
            v.reason = val->str;
        } else if (is(n->str, n->len, "ts_ms")) {
            v.ts_ms = have_ts ? -1 : parse_uint(val->str, val->len);
            if (v.ts_ms < 0)
                return bad_data(diag, key,
                                "run %s: entry %s: field ts_ms is not an "
                                "integer or given twice",
                                run_id_ok(run_id) ? run_id : "?", id);
            have_ts = 1;
        }
        /* Other fields: a later library version's; ignored. */
    }
    if (v.ev == NULL && !have_outcome)
        return bad_data(diag, key,
                        "run %s: entry %s has neither an event (ev) nor an "
                        "outcome",
                        run_id_ok(run_id) ? run_id : "?", id);
    if (!have_outcome && (have_reason || have_ts))
        return bad_data(diag, key,
                        "run %s: entry %s has a reason or ts_ms but no "
                        "outcome",
                        run_id_ok(run_id) ? run_id : "?", id);
    v.terminal = have_outcome;
    if (v.terminal && v.reason == NULL)
        v.reason = "";
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

council_err
council__fn_parse_run(const redisReply *h, const char *run_id,
                      council__fn_run *out, council_diag *diag)
{
    static const char *const names[] = {
        "state",  "gen",        "last_seq",   "cancel",     "spec",    "owner",
        "reason", "created_by", "created_ms", "claimed_ms", "ended_ms"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    const redisReply *got[N] = {0};
    char key[KEY_ROOM + 8];
    const char *rid = run_id_ok(run_id) ? run_id : "?";
    council__fn_run v;
    int64_t n;
    size_t i, k;

    run_key(key, sizeof(key), run_id, "");
    if (h == NULL || h->type == REDIS_REPLY_ERROR) {
        diag_set(
            diag, key, "HGETALL of run %s: %s%.*s", rid,
            h == NULL ? "no reply (the connection failed)" : "Redis said: ",
            h != NULL && h->str != NULL ? (h->len < 160 ? (int)h->len : 160)
                                        : 0,
            h != NULL && h->str != NULL ? h->str : "");
        return COUNCIL_EIO;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0 ||
        (h->elements > 0 && h->element == NULL))
        return bad_data(diag, key,
                        "run %s: the hash reads as a %s, not "
                        "field/value pairs",
                        rid, type_name(h->type));
    if (h->elements == 0) {
        diag_set(diag, key,
                 "run %s: no such run (the hash is gone: expired, "
                 "or Redis lost it)",
                 rid);
        return COUNCIL_ENOTFOUND;
    }
    for (i = 0; i < h->elements; i += 2) {
        const redisReply *f = h->element[i], *val = h->element[i + 1];

        if (f == NULL || f->type != REDIS_REPLY_STRING || f->str == NULL ||
            val == NULL || val->type != REDIS_REPLY_STRING || val->str == NULL)
            return bad_data(diag, key,
                            "run %s: hash field %zu is not a string pair", rid,
                            i / 2 + 1);
        for (k = 0; k < N; k++) {
            if (is(f->str, f->len, names[k])) {
                if (got[k] != NULL)
                    return bad_data(diag, key,
                                    "run %s: hash field %s given twice", rid,
                                    names[k]);
                got[k] = val;
            }
        }
    }
    memset(&v, 0, sizeof(v));
    for (k = 0; k < 5; k++) {
        if (got[k] == NULL && k != 3)
            return bad_data(diag, key, "run %s: the hash has no field %s", rid,
                            names[k]);
    }
    v.state = parse_state(got[0]->str, got[0]->len);
    if (v.state == 0)
        return bad_data(diag, key,
                        "run %s: field state is \"%.*s\", not a "
                        "state",
                        rid, got[0]->len < 32 ? (int)got[0]->len : 32,
                        got[0]->str);
    n = parse_uint(got[1]->str, got[1]->len);
    if (n < 0)
        return bad_data(diag, key, "run %s: field gen is not an integer", rid);
    v.gen = (uint64_t)n;
    n = parse_uint(got[2]->str, got[2]->len);
    if (n < 0)
        return bad_data(diag, key, "run %s: field last_seq is not an integer",
                        rid);
    v.last_seq = (uint64_t)n;
    if (got[3] != NULL) {
        if (!is(got[3]->str, got[3]->len, "0") &&
            !is(got[3]->str, got[3]->len, "1"))
            return bad_data(diag, key, "run %s: field cancel is not 0 or 1",
                            rid);
        v.cancel = got[3]->str[0] == '1';
    }
    v.spec = got[4]->str;
    v.spec_len = got[4]->len;
    v.owner = got[5] != NULL ? got[5]->str : "";
    v.reason = got[6] != NULL ? got[6]->str : "";
    v.created_by = got[7] != NULL ? got[7]->str : "";
    for (k = 8; k < N; k++) {
        int64_t *dst = k == 8   ? &v.created_ms
                       : k == 9 ? &v.claimed_ms
                                : &v.ended_ms;

        *dst = got[k] != NULL ? parse_uint(got[k]->str, got[k]->len) : -1;
        if (got[k] != NULL && *dst < 0)
            return bad_data(diag, key, "run %s: field %s is not an integer",
                            rid, names[k]);
    }
    if (out != NULL)
        *out = v;
    return COUNCIL_OK;
}

/* ---- loading ---- */

static const char *
where(const redisContext *c, char *buf, size_t n)
{
    if (c->connection_type == REDIS_CONN_TCP && c->tcp.host != NULL)
        snprintf(buf, n, "%s:%d", c->tcp.host, c->tcp.port);
    else if (c->connection_type == REDIS_CONN_UNIX && c->unix_sock.path)
        snprintf(buf, n, "%s", c->unix_sock.path);
    else
        snprintf(buf, n, "redis");
    return buf;
}

static council_err
no_reply(redisContext *c, const char *w, const char *what, council_diag *d)
{
    diag_set(d, w, "%s: no answer Redis would give (%s)%s", what,
             c->errstr[0] != '\0' ? c->errstr : "connection closed",
             c->err == REDIS_ERR_PROTOCOL ? ": not a Redis server?" : "");
    return COUNCIL_EIO;
}

/* Redis 7+ from INFO server; COUNCIL_OK when INFO is refused (a proxy or
 * an ACL): then FCALL_RO tells. */
static council_err
check_server(redisContext *c, const char *w, council_diag *d)
{
    redisReply *r = redisCommand(c, "INFO server");
    council_err rc = COUNCIL_OK;
    const char *v;
    int64_t major;
    size_t n;

    if (r == NULL)
        return no_reply(c, w, "INFO server", d);
    if (r->type == REDIS_REPLY_ERROR)
        goto out;
    v = r->type == REDIS_REPLY_STRING && r->str != NULL
            ? strstr(r->str, "redis_version:")
            : NULL;
    if (v == NULL) {
        diag_set(d, w,
                 "INFO server answered a %s without redis_version: not a "
                 "Redis server?",
                 type_name(r->type));
        rc = COUNCIL_EIO;
        goto out;
    }
    v += strlen("redis_version:");
    n = strspn(v, "0123456789");
    major = parse_uint(v, n);
    if (major < 7) {
        diag_set(
            d, w, "Redis %.*s: council needs Redis 7.0 or later (Functions)",
            (int)strcspn(v, "\r\n") < 32 ? (int)strcspn(v, "\r\n") : 32, v);
        rc = COUNCIL_EREFUSED;
    }
out:
    freeReplyObject(r);
    return rc;
}

/* The loaded version into *v (0: none); COUNCIL_EREFUSED when what is
 * there is not ours. */
static council_err
loaded_version(redisContext *c, const char *w, int64_t *v, council_diag *d)
{
    redisReply *r = redisCommand(c, "FCALL_RO council_v1_version 0");
    council_err rc = COUNCIL_OK;

    *v = 0;
    if (r == NULL)
        return no_reply(c, w, "FCALL_RO council_v1_version", d);
    if (r->type == REDIS_REPLY_ERROR && r->str != NULL &&
        strstr(r->str, "Function not found") != NULL) {
        *v = 0;
    } else if (r->type == REDIS_REPLY_ERROR) {
        diag_set(d, w, "FCALL_RO council_v1_version: %.160s%s",
                 r->str != NULL ? r->str : "",
                 r->str != NULL && strstr(r->str, "unknown command") != NULL
                     ? " (council needs Redis 7.0 or later)"
                     : "");
        rc = COUNCIL_EREFUSED;
    } else if (r->type != REDIS_REPLY_INTEGER || r->integer < 1) {
        diag_set(d, w,
                 "council_v1_version answered a %s, not a version: the "
                 "council_v1 library there is not ours",
                 type_name(r->type));
        rc = COUNCIL_EREFUSED;
    } else {
        *v = r->integer;
    }
    freeReplyObject(r);
    return rc;
}

/* FUNCTION LOAD [REPLACE] of our text; *exists set when Redis says the
 * library is there already (a load without REPLACE raced another, or a
 * council_v1 that is not ours). */
static council_err
load_text(redisContext *c, const char *w, const char *text, size_t len,
          int replace, int *exists, council_diag *d)
{
    const char *av[4];
    size_t lens[4];
    redisReply *r;
    council_err rc = COUNCIL_OK;
    int argc = 0;

    *exists = 0;
    av[argc] = "FUNCTION";
    lens[argc++] = 8;
    av[argc] = "LOAD";
    lens[argc++] = 4;
    if (replace) {
        av[argc] = "REPLACE";
        lens[argc++] = 7;
    }
    av[argc] = text;
    lens[argc++] = len;
    r = redisCommandArgv(c, argc, av, lens);
    if (r == NULL)
        return no_reply(c, w, "FUNCTION LOAD", d);
    if (r->type == REDIS_REPLY_ERROR && r->str != NULL && !replace &&
        strstr(r->str, "already exists") != NULL &&
        strstr(r->str, COUNCIL__FN_LIBRARY "'") != NULL) {
        *exists = 1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        diag_set(d, w, "FUNCTION LOAD of %s refused: %.160s",
                 COUNCIL__FN_LIBRARY, r->str != NULL ? r->str : "");
        rc = COUNCIL_EREFUSED;
    } else if (!is_str(r) || !is(r->str, r->len, COUNCIL__FN_LIBRARY)) {
        diag_set(d, w, "FUNCTION LOAD answered a %s, not the library name",
                 type_name(r->type));
        rc = COUNCIL_EIO;
    }
    freeReplyObject(r);
    return rc;
}

static council_err
newer(const char *w, int64_t v, int64_t want, council_diag *d)
{
    diag_set(d, w,
             "the server has council library %s version %lld, newer than "
             "this council's version %lld: upgrade council here",
             COUNCIL__FN_LIBRARY, (long long)v, (long long)want);
    return COUNCIL_EREFUSED;
}

/*
 * Method: read the version; if it is ours, done; newer, refuse; missing,
 * FUNCTION LOAD without REPLACE (so a council_v1 that is not ours, one
 * without a version function, is never overwritten); older, FUNCTION
 * LOAD REPLACE.  Then read it again: a load without REPLACE that found
 * the library (another process loaded it in between) looks once more,
 * and replaces it if that one is older.
 */
council_err
council__fn_load_as(redisContext *c, const char *text, size_t len, int64_t want,
                    int64_t *loaded_out, council_diag *diag)
{
    council_err rc;
    int64_t v = 0;
    int exists = 0, attempt;
    char w[300];

    if (loaded_out != NULL)
        *loaded_out = 0;
    if (c == NULL || text == NULL || len == 0 || want < 1) {
        diag_set(diag, "", "no Redis connection, or no library");
        return COUNCIL_EINVAL;
    }
    where(c, w, sizeof(w));
    if (c->err != 0)
        return no_reply(c, w, "connect", diag);
    rc = check_server(c, w, diag);
    if (rc == COUNCIL_OK)
        rc = loaded_version(c, w, &v, diag);
    if (rc != COUNCIL_OK)
        return rc;
    if (loaded_out != NULL)
        *loaded_out = v;
    for (attempt = 0; attempt < 2; attempt++) {
        if (v > want)
            return newer(w, v, want, diag);
        if (v == want)
            return COUNCIL_OK;
        if (v == 0 && exists) {
            diag_set(diag, w,
                     "a library %s without council_v1_version is loaded "
                     "(not council's?); FUNCTION DELETE %s to replace it",
                     COUNCIL__FN_LIBRARY, COUNCIL__FN_LIBRARY);
            return COUNCIL_EREFUSED;
        }
        rc = load_text(c, w, text, len, v > 0, &exists, diag);
        if (rc == COUNCIL_OK)
            rc = loaded_version(c, w, &v, diag);
        if (rc != COUNCIL_OK)
            return rc;
    }
    if (v > want)
        return newer(w, v, want, diag);
    if (v != want) {
        diag_set(diag, w,
                 "after FUNCTION LOAD the server reports council library "
                 "version %lld, not %lld",
                 (long long)v, (long long)want);
        return COUNCIL_EIO;
    }
    return COUNCIL_OK;
}

council_err
council__fn_load(redisContext *c, int64_t *loaded_out, council_diag *diag)
{
    return council__fn_load_as(c, council__fn_library_text(),
                               council__fn_library_len(), COUNCIL__FN_VERSION,
                               loaded_out, diag);
}
