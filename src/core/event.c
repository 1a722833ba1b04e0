/* SPDX-License-Identifier: MIT */
/*
 * Events and outcomes.  An event is one allocation: the struct, then its
 * strings inline.  It is reference-counted with atomics so fan-out to N
 * subscribers is N pointer copies and one atomic add.  The JSON text is
 * rendered on first request and published with a compare-and-swap, so
 * concurrent first readers may render twice but exactly one copy wins and
 * the other is freed; after that every reader shares it.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/json_write.h"

struct council_event {
    atomic_uint refs;
    uint32_t size; /* bytes allocated, for recycling */
    council_event_type type;
    int round;
    uint64_t seq;
    int64_t ts_us;
    const char *run_id;
    const char *stage;
    const char *member;
    const char *text;
    size_t text_len;
    json_t *data;
    _Atomic(char *) json;
    char buf[]; /* run_id, stage, member, text, each NUL-terminated */
};

static const char *const type_names[] = {
    [COUNCIL_EV_RUN_STARTED] = "run_started",
    [COUNCIL_EV_STAGE_STARTED] = "stage_started",
    [COUNCIL_EV_STAGE_COMPLETED] = "stage_completed",
    [COUNCIL_EV_MEMBER_STARTED] = "member_started",
    [COUNCIL_EV_MEMBER_DELTA] = "member_delta",
    [COUNCIL_EV_MEMBER_COMPLETED] = "member_completed",
    [COUNCIL_EV_MEMBER_FAILED] = "member_failed",
    [COUNCIL_EV_REVIEW_COMPLETED] = "review_completed",
    [COUNCIL_EV_RANKINGS_AGGREGATED] = "rankings_aggregated",
    [COUNCIL_EV_SYNTHESIS_STARTED] = "synthesis_started",
    [COUNCIL_EV_SYNTHESIS_DELTA] = "synthesis_delta",
    [COUNCIL_EV_SYNTHESIS_COMPLETED] = "synthesis_completed",
    [COUNCIL_EV_RUN_COMPLETED] = "run_completed",
    [COUNCIL_EV_RUN_FAILED] = "run_failed",
};

#define N_TYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *
council_event_type_name(council_event_type type)
{
    if ((size_t)type >= N_TYPES || type_names[type] == NULL)
        return "unknown";
    return type_names[type];
}

council_event_type
council__event_type_from_name(const char *name)
{
    size_t i;

    if (name == NULL)
        return 0;
    for (i = 1; i < N_TYPES; i++)
        if (type_names[i] != NULL && strcmp(type_names[i], name) == 0)
            return (council_event_type)i;
    return 0;
}

int
council__event_is_terminal(council_event_type type)
{
    return type == COUNCIL_EV_RUN_COMPLETED || type == COUNCIL_EV_RUN_FAILED;
}

int64_t
council__now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Method: recycling small events.  An event is allocated on the loop
 * thread and usually freed on a pool thread; with the system allocator
 * that cross-thread free takes the allocating arena's lock and costs more
 * than the rest of publishing.  Events up to SMALL bytes are therefore
 * allocated at exactly SMALL bytes and, when freed, pushed on one global
 * lock-free stack.  An allocating thread takes the whole stack at once
 * (atomic exchange) into a thread-local list and reuses from there.  Since
 * nothing ever pops a single node, the stack has no ABA problem.  The
 * stack is capped (RECYCLE_MAX, softly: see event_alloc); past the cap
 * events are freed normally.
 * Under AddressSanitizer recycling is off, so a use after free is still
 * caught.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECYCLE 0
#endif
#endif
#ifndef RECYCLE
#define RECYCLE 1
#endif

#define SMALL 256
#define RECYCLE_MAX 16384

typedef struct spare {
    struct spare *next;
} spare;

/* The stack and its count, on a cache line of their own: every event
 * freed writes them from a recorder thread, and a variable that merely
 * sat beside them and was read on every publish (the test tap of
 * council__run_emit) halved fan-out to one recorder (bench_fanout: 17-20
 * down to 9-11 M events/s; false sharing). */
static struct {
    _Alignas(64) _Atomic(spare *) head;
    atomic_int n;
    char pad[64 - sizeof(void *) - sizeof(atomic_int)];
} recycle_stack;
#define recycled recycle_stack.head
#define n_recycled recycle_stack.n
static _Thread_local spare *local;

static void *
event_alloc(size_t size)
{
    spare *s;

    if (!RECYCLE || size > SMALL)
        return council__malloc(size);
    if (local == NULL) {
        local = atomic_exchange_explicit(&recycled, NULL, memory_order_acquire);
        /* The stack is empty now: its count starts over.  Counting the
         * nodes taken instead meant a cache miss per node (each was last
         * written by the freeing thread): a third of the fan-out's time.
         * A release racing with this may go uncounted, so the cap is
         * soft, by at most one node per freeing thread at each exchange;
         * the count never drifts further. */
        if (local != NULL)
            atomic_store_explicit(&n_recycled, 0, memory_order_relaxed);
    }
    if (local == NULL)
        return council__malloc(SMALL);
    s = local;
    local = s->next;
    return s;
}

static void
event_release(council_event *ev, size_t size)
{
    spare *s = (spare *)(void *)ev;
    spare *head;

    if (!RECYCLE || size > SMALL ||
        atomic_fetch_add_explicit(&n_recycled, 1, memory_order_relaxed) >=
            RECYCLE_MAX) {
        if (RECYCLE && size <= SMALL)
            atomic_fetch_sub_explicit(&n_recycled, 1, memory_order_relaxed);
        council__free(ev);
        return;
    }
    head = atomic_load_explicit(&recycled, memory_order_relaxed);
    do {
        s->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
        &recycled, &head, s, memory_order_release, memory_order_relaxed));
}

static char *
put(char **cursor, const char *s, size_t n)
{
    char *at = *cursor;

    memcpy(at, s, n);
    at[n] = '\0';
    *cursor = at + n + 1;
    return at;
}

council_event *
council__event_new(const council__event_init *in)
{
    size_t rl, sl, ml, tl;
    council_event *ev;
    char *cur;

    if (in == NULL || in->run_id == NULL) {
        if (in != NULL)
            json_decref(in->data);
        return NULL;
    }
    rl = strlen(in->run_id);
    sl = in->stage != NULL ? strlen(in->stage) : 0;
    ml = in->member != NULL ? strlen(in->member) : 0;
    tl = in->text != NULL ? in->text_len : 0;
    ev = event_alloc(sizeof(*ev) + rl + sl + ml + tl + 4);
    if (ev == NULL) {
        json_decref(in->data);
        return NULL;
    }
    atomic_init(&ev->refs, 1);
    ev->size = sizeof(*ev) + rl + sl + ml + tl + 4;
    ev->type = in->type;
    ev->round = in->round;
    ev->seq = in->seq;
    ev->ts_us = in->ts_us;
    ev->data = in->data;
    atomic_init(&ev->json, NULL);
    cur = ev->buf;
    ev->run_id = put(&cur, in->run_id, rl);
    ev->stage = in->stage != NULL ? put(&cur, in->stage, sl) : NULL;
    ev->member = in->member != NULL ? put(&cur, in->member, ml) : NULL;
    ev->text = in->text != NULL ? put(&cur, in->text, tl) : NULL;
    ev->text_len = tl;
    return ev;
}

void
council__event_stamp(council_event *ev, uint64_t seq, int64_t ts_us)
{
    ev->seq = seq;
    ev->ts_us = ts_us;
}

json_t *
council__event_data(const council_event *ev)
{
    return ev->data;
}

council_event *
council_event_ref(council_event *ev)
{
    if (ev != NULL)
        atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    return ev;
}

void
council__event_ref_n(council_event *ev, unsigned n)
{
    atomic_fetch_add_explicit(&ev->refs, n, memory_order_relaxed);
}

void
council_event_unref(council_event *ev)
{
    if (ev == NULL)
        return;
    /* Release on the decrement, acquire before freeing: every write made
     * through other references happens-before the free. */
    if (atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(ev->data);
    council__free(atomic_load_explicit(&ev->json, memory_order_acquire));
    event_release(ev, ev->size);
}

council_event_type
council_event_type_of(const council_event *ev)
{
    return ev->type;
}

uint64_t
council_event_seq(const council_event *ev)
{
    return ev->seq;
}

const char *
council_event_run_id(const council_event *ev)
{
    return ev->run_id;
}

int64_t
council_event_time_us(const council_event *ev)
{
    return ev->ts_us;
}

const char *
council_event_stage(const council_event *ev)
{
    return ev->stage;
}

const char *
council_event_member(const council_event *ev)
{
    return ev->member;
}

const char *
council_event_text(const council_event *ev)
{
    return ev->text;
}

size_t
council_event_text_len(const council_event *ev)
{
    return ev->text_len;
}

int
council_event_round(const council_event *ev)
{
    return ev->round;
}

void
council__format_ts(int64_t us, char *out, size_t size)
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    char head[32];

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%06ldZ", head, frac);
}

const char *
council__event_text_field(council_event_type type)
{
    switch (type) {
    case COUNCIL_EV_MEMBER_DELTA:
    case COUNCIL_EV_SYNTHESIS_DELTA:
        return "delta";
    case COUNCIL_EV_MEMBER_COMPLETED:
    case COUNCIL_EV_REVIEW_COMPLETED:
    case COUNCIL_EV_SYNTHESIS_COMPLETED:
        return "text";
    default:
        return "text";
    }
}

/* A JSON string of n bytes of s; text that is not valid UTF-8 (jansson
 * refuses it) becomes U+FFFD.  NULL only when memory ran out. */
static json_t *
string_or_fffd(const char *s, size_t n)
{
    json_t *t = json_stringn(s, n);

    return t != NULL ? t : json_string("\xef\xbf\xbd");
}

static char *
render(const council_event *ev)
{
    json_t *o = json_object();
    char ts[48];
    char *out = NULL;
    int bad = 0;

    if (o == NULL)
        return NULL;
    council__format_ts(ev->ts_us, ts, sizeof(ts));
    /* Every string is rendered even if it is not UTF-8 (a member name from
     * a caller, model text), so the rendering fails only for memory. */
    bad |= json_object_set_new(o, "type",
                               json_string(council_event_type_name(ev->type)));
    bad |= json_object_set_new(o, "run_id",
                               string_or_fffd(ev->run_id, strlen(ev->run_id)));
    bad |= json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
    bad |= json_object_set_new(o, "ts", json_string(ts));
    if (ev->stage != NULL)
        bad |= json_object_set_new(
            o, "stage", string_or_fffd(ev->stage, strlen(ev->stage)));
    if (ev->round > 0)
        bad |= json_object_set_new(o, "round", json_integer(ev->round));
    if (ev->member != NULL)
        bad |= json_object_set_new(
            o, "member", string_or_fffd(ev->member, strlen(ev->member)));
    if (ev->text != NULL)
        bad |= json_object_set_new(o, council__event_text_field(ev->type),
                                   string_or_fffd(ev->text, ev->text_len));
    /* The extra fields never replace a common one: the line must say what
     * the accessors say. */
    if (ev->data != NULL)
        bad |= json_object_update_missing(o, ev->data);
    if (!bad)
        out = council__json_dumps(o, NULL);
    json_decref(o);
    return out;
}

char *
council__event_render(const council_event *ev)
{
    return render(ev);
}

void
council__event_set_json(council_event *ev, char *json)
{
    atomic_store_explicit(&ev->json, json, memory_order_release);
}

const char *
council_event_json(council_event *ev)
{
    char *cur = atomic_load_explicit(&ev->json, memory_order_acquire);
    char *mine;
    char *expected = NULL;

    if (cur != NULL)
        return cur;
    mine = render(ev);
    if (mine == NULL)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&ev->json, &expected, mine,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    /* Another thread published first; use its copy. */
    council__free(mine);
    return expected;
}

/* ---- outcomes ---------------------------------------------------------- */

struct council_outcome {
    council_outcome_kind kind;
    char *reason;
    char *result_text;
    char *errors_text;
    char *json;
};

static const char *const outcome_names[] = {
    [COUNCIL_OUTCOME_OK] = "ok",
    [COUNCIL_OUTCOME_CANCELLED] = "cancelled",
    [COUNCIL_OUTCOME_ERROR] = "error",
    [COUNCIL_OUTCOME_CRASHED] = "crashed",
};

const char *
council_outcome_kind_name(council_outcome_kind kind)
{
    if (kind < COUNCIL_OUTCOME_OK || kind > COUNCIL_OUTCOME_CRASHED)
        return "unknown";
    return outcome_names[kind];
}

/* Copy s to at (room known), NUL-terminated; returns the new end. */
static char *
append(char *at, const char *s)
{
    size_t n = strlen(s);

    memcpy(at, s, n + 1);
    return at + n;
}

/*
 * An outcome is texts only: result and errors are rendered when it is
 * made, from trees it only reads, and no tree is kept.  So an outcome
 * shares nothing with the event it came from (jansson's reference counts
 * order a decrement only with release: a tree whose last two references
 * were dropped on two threads could be freed racing the other's read),
 * and making one from a terminal event copies no tree.
 */
static council_outcome *
outcome_make(council_outcome_kind kind, json_t *result, json_t *errors,
             const char *reason)
{
    council_outcome *o = council__calloc(1, sizeof(*o));
    json_t *j = NULL;
    char *reason_text = NULL;
    size_t n;

    if (o == NULL)
        goto fail;
    o->kind = kind;
    if (reason != NULL) {
        o->reason = council__strdup(reason);
        if (o->reason == NULL)
            goto fail;
    } else if (kind == COUNCIL_OUTCOME_ERROR && errors != NULL) {
        const char *m = json_string_value(
            json_object_get(json_array_get(errors, 0), "message"));
        if (m != NULL && (o->reason = council__strdup(m)) == NULL)
            goto fail;
    }
    if (result != NULL &&
        (o->result_text = council__json_dumps(result, NULL)) == NULL)
        goto fail;
    if (errors != NULL &&
        (o->errors_text = council__json_dumps(errors, NULL)) == NULL)
        goto fail;
    /* {"outcome","reason","errors","result"}, from the texts above rather
     * than by rendering result a second time (a run's result holds every
     * answer: this was 3 % of the loop thread's time). */
    if (o->reason != NULL) {
        j = json_string(o->reason);
        if (j == NULL)
            goto fail; /* not UTF-8, or out of memory */
        reason_text = council__json_dumps(j, NULL);
        if (reason_text == NULL)
            goto fail;
    }
    n = strlen(outcome_names[kind]) + 16;
    n += reason_text != NULL ? strlen(reason_text) + 12 : 0;
    n += o->errors_text != NULL ? strlen(o->errors_text) + 12 : 0;
    n += o->result_text != NULL ? strlen(o->result_text) + 12 : 0;
    o->json = council__malloc(n);
    if (o->json == NULL)
        goto fail;
    {
        char *at = o->json;
        at = append(at, "{\"outcome\":\"");
        at = append(at, outcome_names[kind]);
        at = append(at, "\"");
        if (reason_text != NULL) {
            at = append(at, ",\"reason\":");
            at = append(at, reason_text);
        }
        if (o->errors_text != NULL) {
            at = append(at, ",\"errors\":");
            at = append(at, o->errors_text);
        }
        if (o->result_text != NULL) {
            at = append(at, ",\"result\":");
            at = append(at, o->result_text);
        }
        at = append(at, "}");
    }
    council__free(reason_text);
    json_decref(j);
    return o;
fail:
    council__free(reason_text);
    json_decref(j);
    council__outcome_free(o);
    return NULL;
}

council_outcome *
council__outcome_new(council_outcome_kind kind, json_t *result, json_t *errors,
                     const char *reason)
{
    council_outcome *o = outcome_make(kind, result, errors, reason);

    json_decref(result);
    json_decref(errors);
    return o;
}

static int
has_cancelled(json_t *errors)
{
    size_t i;
    json_t *e;

    json_array_foreach (errors, i, e) {
        const char *k = json_string_value(json_object_get(e, "kind"));
        if (k != NULL && strcmp(k, "cancelled") == 0)
            return 1;
    }
    return 0;
}

council_outcome *
council__outcome_from_terminal(const council_event *ev)
{
    json_t *result = json_object_get(ev->data, "result");
    json_t *errors = json_object_get(ev->data, "errors");
    council_outcome *o;
    json_t *why;

    if (ev->type == COUNCIL_EV_RUN_COMPLETED)
        return outcome_make(COUNCIL_OUTCOME_OK, result, NULL, NULL);
    if (json_is_array(errors))
        return outcome_make(has_cancelled(errors) ? COUNCIL_OUTCOME_CANCELLED
                                                  : COUNCIL_OUTCOME_ERROR,
                            result, errors, NULL);
    why = json_pack("[{s:s,s:s}]", "kind", "internal", "message",
                    "run_failed without an error list");
    if (why == NULL)
        return NULL;
    o = outcome_make(COUNCIL_OUTCOME_ERROR, result, why, NULL);
    json_decref(why);
    return o;
}

void
council__outcome_free(council_outcome *o)
{
    if (o == NULL)
        return;
    council__free(o->reason);
    council__free(o->result_text);
    council__free(o->errors_text);
    council__free(o->json);
    council__free(o);
}

council_outcome_kind
council_outcome_kind_of(const council_outcome *o)
{
    return o->kind;
}

const char *
council_outcome_result_json(const council_outcome *o)
{
    return o->result_text;
}

const char *
council_outcome_errors_json(const council_outcome *o)
{
    return o->errors_text;
}

const char *
council_outcome_reason(const council_outcome *o)
{
    return o->reason;
}

const char *
council_outcome_json(const council_outcome *o)
{
    return o->json;
}
