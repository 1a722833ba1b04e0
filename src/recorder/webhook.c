/* SPDX-License-Identifier: MIT */
/*
 * The webhook recorder: POSTs a run's outcome, and optionally its events in
 * batches, as JSON to an http(s) URL, signed with HMAC-SHA256 when given a
 * secret.  Its callbacks never touch the network: they queue POSTs for the
 * engine's webhook sender, so a slow or dead receiver delays neither the
 * run nor council_run_wait.  Each recorder's POSTs go out one at a time,
 * in order; failures are retried with backoff, and whatever is given up
 * is reported through the engine's log, naming the URL without its
 * credentials.  The secret is kept only to sign and is zeroed when freed.
 *
 * Method (the sender).  One thread per engine, started by the first
 * webhook recorder's init, drives a libcurl multi handle (curl_multi_poll,
 * woken by curl_multi_wakeup when a POST is queued or the engine closes).
 * Why a thread of its own and not the engine's loop: the loop's libcurl
 * glue (src/provider/http.c) is the provider call's lifecycle, recorders
 * run on the pool, not the loop, and the loop shuts down as soon as the
 * runs have ended, while the drain must outlive them; a thread that owns
 * its multi handle alone needs no lock around libcurl.  Each recorder is a
 * `hook` in the sender's list; the pool thread running its callbacks
 * appends POSTs to its queue (under the sender's lock) and never touches
 * it after handle_finalize; the sender frees it once its last POST is
 * done.  At engine close (council__webhook_close, after the pool has
 * delivered every finalize) each hook gets until now + its drain_ms; a
 * POST still in flight or waiting for a retry then is abandoned and
 * reported, and the thread is joined.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/lifecycle.h"
#include "recorder/recorder.h"

#define DEF_TIMEOUT_MS 10000
#define DEF_CONNECT_MS 5000
#define DEF_ATTEMPTS 5
#define DEF_BACKOFF_MS 500
#define DEF_BACKOFF_MAX_MS 30000
#define DEF_DRAIN_MS 5000
#define DEF_BATCH 256
/* A batch is sent once it holds this many bytes, whatever its count. */
#define BATCH_BYTES (1u << 20)
/* Bytes of events a recorder may have queued for a slow receiver; past
 * it, later events are not posted (the outcome still is). */
#define QUEUE_MAX_BYTES (16u << 20)

enum { POST_EVENTS = 1, POST_OUTCOME = 2 };

typedef struct post {
    struct post *next;
    int kind;
    char *body; /* events: built when queued; outcome: at its first try */
    size_t len;
    char *outcome_json; /* outcome: council_outcome_json, until built */
    uint64_t first_seq, last_seq;
} post;

typedef struct hook hook;

typedef struct council__webhook_sender {
    council_engine *eng;
    pthread_t thread;
    pthread_mutex_t mu;
    CURLM *multi;
    hook *hooks; /* (mu) every recorder with work left */
    int closing; /* (mu) the engine is closing: drain, then end */
    int ended;   /* (mu) the thread has left its loop */
} sender;

struct hook {
    sender *snd;
    hook *next; /* (mu) the sender's list */
    /* Fixed at init. */
    char *url;     /* as given: libcurl needs its credentials */
    char *display; /* scheme://host[:port]/path, no user:password, query */
    char *secret;
    size_t secret_len;
    char run_id[COUNCIL__RUN_ID_MAX + 8];
    char *run_id_json; /* the id as a JSON string, quoted and escaped */
    int index;         /* among the run's recorders, for the log */
    int events;
    uint64_t timeout_ms, connect_ms, backoff_ms, backoff_max_ms, drain_ms;
    int max_attempts, batch_max;

    /* The recorder's callbacks (one pool thread at a time). */
    char *batch; /* "[ev,ev" being gathered */
    size_t blen, bcap;
    uint64_t bfirst, blast, bn;
    uint64_t last_seq; /* events the run emitted so far */
    int stopped;       /* no more events are queued */

    /* Shared (mu). */
    post *qhead, *qtail;
    size_t queued_bytes;
    int finalized;      /* no POST will be queued any more */
    int events_broken;  /* an events POST was given up */
    uint64_t delivered; /* events acknowledged */
    uint64_t deadline;  /* closing: abandon what is left at this time */

    /* The sender thread only. */
    post *cur;
    CURL *easy;
    struct curl_slist *hdrs;
    int attempts, in_multi;
    uint64_t next_at; /* when cur's next attempt may start */
    uint64_t rng;
    char errbuf[CURL_ERROR_SIZE];
    char last_error[320];
};

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- URLs without their secrets ----------------------------------------- */

/*
 * url with its user:password (between "://" and the last '@' before the
 * path) removed and its query and fragment replaced by "?...", into out
 * (size bytes).  Textual, so it works for URLs that do not parse: it is
 * what every message shows.
 */
static void
redact_url(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://"), *auth, *end, *at = NULL, *q;
    size_t n;

    if (p == NULL) {
        p = url;
        auth = url;
    } else {
        auth = p + 3;
    }
    end = auth + strcspn(auth, "/?#");
    for (q = auth; q < end; q++)
        if (*q == '@')
            at = q;
    n = (size_t)(auth - url);
    snprintf(out, size, "%.*s", (int)n, url);
    if (at != NULL)
        auth = at + 1;
    q = auth + strcspn(auth, "?#");
    n = strlen(out);
    if (n < size)
        snprintf(out + n, size - n, "%.*s%s", (int)(q - auth), auth,
                 *q != '\0' ? "?..." : "");
}

/* ---- posts ----------------------------------------------------------------
 */

static void
post_free(post *p)
{
    if (p == NULL)
        return;
    council__free(p->body);
    council__free(p->outcome_json);
    council__free(p);
}

static void
hook_free(hook *h)
{
    post *p;

    if (h == NULL)
        return;
    while ((p = h->qhead) != NULL) {
        h->qhead = p->next;
        post_free(p);
    }
    post_free(h->cur);
    if (h->easy != NULL)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->hdrs);
    if (h->secret != NULL) {
        /* Not memset: a dead store a compiler may drop. */
        volatile char *s = h->secret;
        size_t i;

        for (i = 0; i < h->secret_len; i++)
            s[i] = 0;
    }
    council__free(h->secret);
    council__free(h->url);
    council__free(h->display);
    council__free(h->run_id_json);
    council__free(h->batch);
    council__free(h);
}

/* Append p to h's queue and wake the sender. */
static void
enqueue(hook *h, post *p)
{
    sender *s = h->snd;

    pthread_mutex_lock(&s->mu);
    if (h->qtail != NULL)
        h->qtail->next = p;
    else
        h->qhead = p;
    h->qtail = p;
    h->queued_bytes += p->len;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

/* "run ID: recorder N (webhook URL): WHAT not delivered: WHY". */
static void
hook_log(hook *h, const char *what, const char *why)
{
    council__log(h->snd->eng,
                 "run %s: recorder %d (webhook %s): %s not delivered: %s",
                 h->run_id, h->index, h->display, what, why);
}

/* "outcome" or "events 3..17", for the log. */
static void
post_name(const post *p, char *out, size_t size)
{
    if (p->kind == POST_OUTCOME)
        snprintf(out, size, "outcome");
    else
        snprintf(out, size, "events %llu..%llu",
                 (unsigned long long)p->first_seq,
                 (unsigned long long)p->last_seq);
}

/* ---- the sender thread ------------------------------------------------------
 */

static uint64_t
rand_next(uint64_t *s)
{
    /* xorshift64*: jitter only, not secrets. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* The outcome's body, built when it is first sent: by then the events
 * before it are settled, so it can say how many were delivered.  Under
 * mu. */
static int
build_outcome(hook *h, post *p)
{
    size_t olen = strlen(p->outcome_json),
           size = olen + 512 + strlen(h->run_id_json);
    uint64_t delivered;
    int n;

    p->body = council__malloc(size);
    if (p->body == NULL)
        return -1;
    delivered = h->delivered;
    if (h->events)
        n = snprintf(p->body, size,
                     "{\"kind\":\"outcome\",\"run_id\":%s,\"outcome\":%s,"
                     "\"events_emitted\":%llu,\"events_delivered\":%llu}",
                     h->run_id_json, p->outcome_json,
                     (unsigned long long)h->last_seq,
                     (unsigned long long)delivered);
    else
        n = snprintf(p->body, size,
                     "{\"kind\":\"outcome\",\"run_id\":%s,\"outcome\":%s,"
                     "\"events_emitted\":%llu}",
                     h->run_id_json, p->outcome_json,
                     (unsigned long long)h->last_seq);
    p->len = (size_t)n;
    council__free(p->outcome_json);
    p->outcome_json = NULL;
    return 0;
}

static size_t
discard_body(char *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}

static struct curl_slist *add_header(struct curl_slist *l, int *ok,
                                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct curl_slist *
add_header(struct curl_slist *l, int *ok, const char *fmt, ...)
{
    char line[512];
    struct curl_slist *n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n = curl_slist_append(l, line);
    if (n == NULL) {
        *ok = 0;
        return l;
    }
    return n;
}

/* The headers of one attempt, the signature over "<timestamp>.<body>". */
static int
attempt_headers(hook *h, post *p)
{
    struct curl_slist *l = NULL;
    char key[COUNCIL__RUN_ID_MAX + 64], num[32], ts[32];
    int ok = 1;

    curl_slist_free_all(h->hdrs);
    h->hdrs = NULL;
    if (p->kind == POST_OUTCOME)
        snprintf(key, sizeof(key), "%s-outcome", h->run_id);
    else
        snprintf(key, sizeof(key), "%s-events-%llu-%llu", h->run_id,
                 (unsigned long long)p->first_seq,
                 (unsigned long long)p->last_seq);
    snprintf(num, sizeof(num), "%d", h->attempts);
    l = add_header(l, &ok, "Content-Type: application/json");
    l = add_header(l, &ok, "User-Agent: council/%s", council_version());
    l = add_header(l, &ok, "Expect:");
    l = add_header(l, &ok, "X-Council-Run-Id: %s", h->run_id);
    l = add_header(l, &ok, "X-Council-Kind: %s",
                   p->kind == POST_OUTCOME ? "outcome" : "events");
    l = add_header(l, &ok, "Idempotency-Key: %s", key);
    l = add_header(l, &ok, "X-Council-Attempt: %s", num);
    if (h->secret_len > 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0, i;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        size_t tl, mlen;
        unsigned char *msg;

        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        tl = strlen(ts);
        mlen = tl + 1 + p->len;
        msg = council__malloc(mlen);
        if (msg == NULL) {
            curl_slist_free_all(l);
            return -1;
        }
        memcpy(msg, ts, tl);
        msg[tl] = '.';
        memcpy(msg + tl + 1, p->body, p->len);
        if (HMAC(EVP_sha256(), h->secret, (int)h->secret_len, msg, mlen, md,
                 &mdlen) == NULL)
            ok = 0;
        council__free(msg);
        for (i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        hex[2 * mdlen] = '\0';
        l = add_header(l, &ok, "X-Council-Timestamp: %s", ts);
        l = add_header(l, &ok, "X-Council-Signature: sha256=%s", hex);
    }
    if (!ok) {
        curl_slist_free_all(l);
        return -1;
    }
    h->hdrs = l;
    return 0;
}

/* Start an attempt of h->cur.  0, or -1 (out of memory) with why said. */
static int
start_attempt(hook *h)
{
    post *p = h->cur;

    if (p->body == NULL && build_outcome(h, p) != 0)
        return -1;
    if (h->easy == NULL) {
        h->easy = curl_easy_init();
        if (h->easy == NULL)
            return -1;
    }
    h->attempts++;
    if (attempt_headers(h, p) != 0)
        return -1;
    curl_easy_reset(h->easy);
    curl_easy_setopt(h->easy, CURLOPT_URL, h->url);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_ms);
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h);
    h->errbuf[0] = '\0';
    if (curl_multi_add_handle(h->snd->multi, h->easy) != CURLM_OK)
        return -1;
    h->in_multi = 1;
    return 0;
}

/* cur is settled: delivered or given up.  The next POST may start.  Under
 * mu, like everything the sender does but wait on libcurl. */
static void
settle(hook *h, int delivered)
{
    post *p = h->cur;
    char name[64];

    post_name(p, name, sizeof(name));
    if (p->kind == POST_EVENTS) {
        if (delivered)
            h->delivered += p->last_seq - p->first_seq + 1;
        else
            h->events_broken = 1;
    }
    if (!delivered && p->kind == POST_EVENTS) {
        char why[400];

        snprintf(why, sizeof(why), "%.320s; later events are not posted",
                 h->last_error);
        hook_log(h, name, why);
    } else if (!delivered) {
        hook_log(h, name, h->last_error);
    }
    post_free(p);
    h->cur = NULL;
    h->attempts = 0;
}

/* An attempt ended: decide delivered, retry or give up. */
static void
attempt_done(hook *h, CURLcode res)
{
    long status = 0;
    curl_off_t retry_after = 0;
    int retry;
    uint64_t wait;

    curl_multi_remove_handle(h->snd->multi, h->easy);
    h->in_multi = 0;
    if (res == CURLE_OK) {
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            settle(h, 1);
            return;
        }
        curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &retry_after);
        retry = status >= 500 || status == 429;
        snprintf(h->last_error, sizeof(h->last_error), "HTTP %ld%s", status,
                 retry ? "" : " (not retried)");
    } else {
        retry = 1;
        snprintf(h->last_error, sizeof(h->last_error), "%.260s",
                 h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(res));
    }
    if (!retry || h->attempts >= h->max_attempts) {
        if (retry) {
            char tail[400];

            snprintf(tail, sizeof(tail), "%.260s, after %d attempt%s",
                     h->last_error, h->attempts, h->attempts == 1 ? "" : "s");
            snprintf(h->last_error, sizeof(h->last_error), "%.300s", tail);
        }
        settle(h, 0);
        return;
    }
    /* Exponential backoff with jitter: half fixed, half random. */
    wait = h->backoff_ms;
    for (int i = 1; i < h->attempts && wait < h->backoff_max_ms; i++)
        wait *= 2;
    if (wait > h->backoff_max_ms)
        wait = h->backoff_max_ms;
    wait = wait / 2 + rand_next(&h->rng) % (wait / 2 + 1);
    if ((status == 429 || status == 503) && retry_after > 0) {
        uint64_t ra = (uint64_t)retry_after * 1000;

        if (ra > h->backoff_max_ms)
            ra = h->backoff_max_ms;
        if (ra > wait)
            wait = ra;
    }
    h->next_at = now_ms() + wait;
}

/* Under mu: take h's next POST, dropping events after a gap. */
static void
take_next(hook *h)
{
    while (h->cur == NULL && h->qhead != NULL) {
        post *p = h->qhead;

        h->qhead = p->next;
        if (h->qhead == NULL)
            h->qtail = NULL;
        h->queued_bytes -= p->len;
        p->next = NULL;
        if (p->kind == POST_EVENTS && h->events_broken) {
            /* Already reported with the batch that was given up. */
            post_free(p);
            continue;
        }
        h->cur = p;
        h->attempts = 0;
        h->next_at = 0;
        h->last_error[0] = '\0';
    }
}

/* Under mu, closing: h's time is up.  Report what it still had. */
static void
abandon(hook *h)
{
    char name[96];
    uint64_t first = 0, last = 0;
    int outcome = 0;
    post *p;

    if (h->in_multi) {
        curl_multi_remove_handle(h->snd->multi, h->easy);
        h->in_multi = 0;
    }
    if (h->cur != NULL) {
        char why[480];

        post_name(h->cur, name, sizeof(name));
        snprintf(why, sizeof(why),
                 "the engine closed (drain time %llu ms over) after %d "
                 "attempt%s%s%s",
                 (unsigned long long)h->drain_ms, h->attempts,
                 h->attempts == 1 ? "" : "s",
                 h->last_error[0] != '\0' ? "; last: " : "", h->last_error);
        hook_log(h, name, why);
        post_free(h->cur);
        h->cur = NULL;
    }
    /* What never left the queue: one line for all of it. */
    while ((p = h->qhead) != NULL) {
        h->qhead = p->next;
        if (p->kind == POST_OUTCOME) {
            outcome = 1;
        } else if (!h->events_broken) {
            if (first == 0)
                first = p->first_seq;
            last = p->last_seq;
        }
        post_free(p);
    }
    if (first != 0 || outcome) {
        if (first != 0 && outcome)
            snprintf(name, sizeof(name), "events %llu..%llu and the outcome",
                     (unsigned long long)first, (unsigned long long)last);
        else if (first != 0)
            snprintf(name, sizeof(name), "events %llu..%llu",
                     (unsigned long long)first, (unsigned long long)last);
        else
            snprintf(name, sizeof(name), "outcome");
        hook_log(h, name, "the engine closed before they could be sent");
    }
    h->qtail = NULL;
    h->queued_bytes = 0;
}

/* Under mu: settle every transfer that ended.  How many did. */
static int
reap_done(sender *s)
{
    CURLMsg *m;
    int left, n = 0;

    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        hook *h = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
        attempt_done(h, m->data.result);
        n++;
    }
    return n;
}

static void *
sender_main(void *arg)
{
    sender *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        uint64_t now = now_ms(), wait = 1000;
        hook **hp = &s->hooks;
        int running = 0;

        while (*hp != NULL) {
            hook *h = *hp;

            take_next(h);
            if (s->closing && now >= h->deadline &&
                (h->cur != NULL || h->qhead != NULL))
                abandon(h);
            else if (h->cur != NULL && !h->in_multi) {
                if (s->closing && h->next_at > h->deadline) {
                    /* The retry would come after the drain time. */
                    abandon(h);
                } else if (h->next_at <= now) {
                    if (start_attempt(h) != 0) {
                        snprintf(h->last_error, sizeof(h->last_error),
                                 "out of memory");
                        settle(h, 0);
                        continue; /* take the next one */
                    }
                } else if (h->next_at - now < wait) {
                    wait = h->next_at - now;
                }
            }
            if (h->finalized && h->cur == NULL && h->qhead == NULL) {
                *hp = h->next;
                hook_free(h);
                continue;
            }
            if (s->closing && h->deadline > now && h->deadline - now < wait)
                wait = h->deadline - now;
            hp = &h->next;
        }
        if (s->closing && s->hooks == NULL)
            break;
        /* Only this thread uses the multi handle: libcurl runs
         * unlocked, so queueing never waits on the network.  A transfer
         * may end inside the first perform (a quick receiver): then
         * there is no waiting before the next POST. */
        pthread_mutex_unlock(&s->mu);
        curl_multi_perform(s->multi, &running);
        pthread_mutex_lock(&s->mu);
        if (reap_done(s) > 0)
            continue;
        pthread_mutex_unlock(&s->mu);
        curl_multi_poll(s->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
        curl_multi_perform(s->multi, &running);
        pthread_mutex_lock(&s->mu);
        (void)reap_done(s);
    }
    s->ended = 1;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The engine's sender, started on first use.  NULL if it cannot be. */
static sender *
sender_get(council_engine *eng)
{
    sender *s;

    pthread_mutex_lock(&create_mu);
    s = eng->webhook;
    if (s == NULL) {
        s = council__calloc(1, sizeof(*s));
        if (s != NULL) {
            s->eng = eng;
            pthread_mutex_init(&s->mu, NULL);
            s->multi = curl_multi_init();
            if (s->multi == NULL ||
                pthread_create(&s->thread, NULL, sender_main, s) != 0) {
                if (s->multi != NULL)
                    curl_multi_cleanup(s->multi);
                pthread_mutex_destroy(&s->mu);
                council__free(s);
                s = NULL;
            } else {
                eng->webhook = s;
            }
        }
    }
    pthread_mutex_unlock(&create_mu);
    return s;
}

void
council__webhook_close(council_engine *eng)
{
    sender *s = eng->webhook;
    uint64_t now = now_ms();
    hook *h;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    for (h = s->hooks; h != NULL; h = h->next)
        h->deadline = now + h->drain_ms;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    curl_multi_cleanup(s->multi);
    pthread_mutex_destroy(&s->mu);
    council__free(s);
    eng->webhook = NULL;
}

/* ---- the recorder's callbacks ---------------------------------------------
 */

static int
webhook_init(const char *run_id, void *args, void **state, char *why,
             size_t why_size)
{
    const council_webhook_args *a = args;
    char shown[300];
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL;
    council_engine *eng;
    hook *h = NULL;
    int index, rc = -1;

    if (a == NULL || a->version != COUNCIL_WEBHOOK_ARGS_VERSION) {
        snprintf(why, why_size, "webhook: args version %d is not %d",
                 a != NULL ? a->version : 0, COUNCIL_WEBHOOK_ARGS_VERSION);
        return -1;
    }
    if (a->url == NULL || a->url[0] == '\0') {
        snprintf(why, why_size, "webhook: no URL given");
        return -1;
    }
    redact_url(a->url, shown, sizeof(shown));
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(why, why_size, "webhook: libcurl could not start");
        return -1;
    }
    u = curl_url();
    if (u == NULL)
        goto nomem;
    if (curl_url_set(u, CURLUPART_URL, a->url, CURLU_NON_SUPPORT_SCHEME) !=
            CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        snprintf(why, why_size, "webhook: %s is not a URL", shown);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(why, why_size,
                 "webhook: %s: the scheme must be http or https, not %s", shown,
                 scheme);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        host[0] == '\0') {
        snprintf(why, why_size, "webhook: %s has no host", shown);
        goto out;
    }
    if (a->max_attempts < 0 || a->batch_max < 0) {
        snprintf(why, why_size,
                 "webhook: max_attempts and batch_max must "
                 "not be negative");
        goto out;
    }
    eng = council__rec_context(&index);
    if (eng == NULL) {
        snprintf(why, why_size, "webhook: init outside a run's start");
        goto out;
    }
    h = council__calloc(1, sizeof(*h));
    if (h == NULL)
        goto nomem;
    h->url = council__strdup(a->url);
    h->display = council__strdup(shown);
    if (h->url == NULL || h->display == NULL)
        goto nomem;
    if (a->secret != NULL && a->secret[0] != '\0') {
        h->secret = council__strdup(a->secret);
        if (h->secret == NULL)
            goto nomem;
        h->secret_len = strlen(h->secret);
    }
    snprintf(h->run_id, sizeof(h->run_id), "%s", run_id);
    {
        json_t *j = json_string(run_id);

        h->run_id_json = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        if (h->run_id_json == NULL)
            goto nomem;
    }
    h->index = index;
    h->events = a->events != 0;
    h->timeout_ms = a->timeout_ms != 0 ? a->timeout_ms : DEF_TIMEOUT_MS;
    h->connect_ms =
        a->connect_timeout_ms != 0 ? a->connect_timeout_ms : DEF_CONNECT_MS;
    h->max_attempts = a->max_attempts != 0 ? a->max_attempts : DEF_ATTEMPTS;
    h->backoff_ms = a->backoff_ms != 0 ? a->backoff_ms : DEF_BACKOFF_MS;
    h->backoff_max_ms =
        a->backoff_max_ms != 0 ? a->backoff_max_ms : DEF_BACKOFF_MAX_MS;
    if (h->backoff_max_ms < h->backoff_ms)
        h->backoff_max_ms = h->backoff_ms;
    h->drain_ms = a->drain_ms != 0 ? a->drain_ms : DEF_DRAIN_MS;
    h->batch_max = a->batch_max != 0 ? a->batch_max : DEF_BATCH;
    h->rng = now_ms() ^ (uint64_t)(uintptr_t)h ^ 0x9e3779b97f4a7c15ull;
    h->snd = sender_get(eng);
    if (h->snd == NULL) {
        snprintf(why, why_size, "webhook: cannot start its sender thread");
        goto out;
    }
    pthread_mutex_lock(&h->snd->mu);
    if (h->snd->closing) {
        pthread_mutex_unlock(&h->snd->mu);
        snprintf(why, why_size, "webhook: the engine is closing");
        goto out;
    }
    h->next = h->snd->hooks;
    h->snd->hooks = h;
    pthread_mutex_unlock(&h->snd->mu);
    *state = h;
    h = NULL;
    rc = 0;
    goto out;
nomem:
    snprintf(why, why_size, "webhook: out of memory");
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    hook_free(h);
    return rc;
}

/* Queue the batch gathered so far.  0, or -1 when it was dropped. */
static int
send_batch(hook *h)
{
    post *p;
    size_t queued;
    int broken;

    if (h->bn == 0)
        return 0;
    pthread_mutex_lock(&h->snd->mu);
    queued = h->queued_bytes;
    broken = h->events_broken;
    pthread_mutex_unlock(&h->snd->mu);
    if (broken) {
        /* An earlier batch was given up (and reported): a gap. */
        h->stopped = 1;
        h->bn = 0;
        h->blen = 0;
        return 0;
    }
    p = council__calloc(1, sizeof(*p));
    if (p == NULL || queued + h->blen > QUEUE_MAX_BYTES) {
        int oom = p == NULL;

        council__free(p);
        council__log(h->snd->eng,
                     "run %s: recorder %d (webhook %s): events from seq %llu "
                     "on are not posted: %s",
                     h->run_id, h->index, h->display,
                     (unsigned long long)h->bfirst,
                     oom ? "out of memory"
                         : "16 MiB of events already wait for the "
                           "receiver");
        h->stopped = 1;
        h->bn = 0;
        h->blen = 0;
        return -1;
    }
    /* The batch becomes the body: {"kind":"events",...,"events":[...]}. */
    {
        size_t size = h->blen + 200 + strlen(h->run_id_json);
        char *body = council__malloc(size);
        int n;

        if (body == NULL) {
            council__free(p);
            h->stopped = 1;
            h->bn = 0;
            h->blen = 0;
            return -1;
        }
        n = snprintf(body, size,
                     "{\"kind\":\"events\",\"run_id\":%s,\"first_seq\":%llu,"
                     "\"last_seq\":%llu,\"events\":%.*s]}",
                     h->run_id_json, (unsigned long long)h->bfirst,
                     (unsigned long long)h->blast, (int)h->blen, h->batch);
        p->body = body;
        p->len = (size_t)n;
    }
    p->kind = POST_EVENTS;
    p->first_seq = h->bfirst;
    p->last_seq = h->blast;
    h->bn = 0;
    h->blen = 0;
    enqueue(h, p);
    return 0;
}

static int
webhook_event(void *state, council_event *ev)
{
    hook *h = state;
    uint64_t seq = council_event_seq(ev);
    const char *line;
    size_t n;

    if (seq > h->last_seq)
        h->last_seq = seq;
    if (!h->events || h->stopped)
        return h->stopped ? -1 : 0;
    line = council_event_json(ev);
    if (line == NULL) {
        h->stopped = 1;
        return -1;
    }
    n = strlen(line);
    if (h->blen + n + 2 > h->bcap) {
        size_t cap = h->bcap != 0 ? h->bcap : 4096;
        char *nb;

        while (cap < h->blen + n + 2)
            cap *= 2;
        nb = council__realloc(h->batch, cap);
        if (nb == NULL) {
            h->stopped = 1;
            return -1;
        }
        h->batch = nb;
        h->bcap = cap;
    }
    h->batch[h->blen++] = h->bn == 0 ? '[' : ',';
    memcpy(h->batch + h->blen, line, n);
    h->blen += n;
    if (h->bn == 0)
        h->bfirst = seq;
    h->blast = seq;
    h->bn++;
    if (h->bn >= (uint64_t)h->batch_max || h->blen >= BATCH_BYTES)
        return send_batch(h);
    return 0;
}

/*
 * The mailbox ran empty.  The batch goes out now if nothing waits before
 * it; else it keeps growing until that has gone (a later flush, a full
 * batch or finalize sends it), so a receiver slower than the run gets
 * fewer, larger POSTs instead of one per event.
 */
static void
webhook_flush(void *state)
{
    hook *h = state;
    int idle;

    if (!h->events || h->stopped || h->bn == 0)
        return;
    pthread_mutex_lock(&h->snd->mu);
    idle = h->qhead == NULL;
    pthread_mutex_unlock(&h->snd->mu);
    if (idle)
        (void)send_batch(h);
}

static void
webhook_finalize(void *state, const council_outcome *outcome)
{
    hook *h = state;
    const char *oj = outcome != NULL ? council_outcome_json(outcome) : NULL;
    post *p = NULL;
    sender *s = h->snd;

    if (h->events && !h->stopped)
        (void)send_batch(h);
    if (oj != NULL) {
        p = council__calloc(1, sizeof(*p));
        if (p != NULL) {
            p->kind = POST_OUTCOME;
            p->outcome_json = council__strdup(oj);
            if (p->outcome_json == NULL) {
                council__free(p);
                p = NULL;
            }
        }
    }
    if (p != NULL) {
        enqueue(h, p);
    } else {
        council__log(s->eng,
                     "run %s: recorder %d (webhook %s): outcome not "
                     "delivered: out of memory",
                     h->run_id, h->index, h->display);
    }
    /* From here the hook is the sender's. */
    pthread_mutex_lock(&s->mu);
    h->finalized = 1;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

static const council_recorder_ops webhook_ops = {
    .version = COUNCIL_RECORDER_OPS_VERSION,
    .init = webhook_init,
    .handle_event = webhook_event,
    .handle_finalize = webhook_finalize,
    .handle_flush = webhook_flush,
};

const council_recorder_ops *
council_recorder_webhook(void)
{
    return &webhook_ops;
}
