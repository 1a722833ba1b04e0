/* SPDX-License-Identifier: MIT */
/*
 * The redis recorder (council_recorder_redis) against a real redis-server
 * (tests/support/redis_server.h), through the engine, with runs of a rank
 * council on the in-process mock LLM: every event lands as 0-1..0-N with
 * the JSON of council_event_json byte for byte (a second recorder keeps
 * what the run emitted); the hash's end, the expiry and the PUBLISH; and
 * the faults, through the loopback fault proxy (tests/support/
 * faultproxy.h): Redis unreachable at the start, a blackhole in the
 * middle (the run not delayed, the events written after), past the
 * buffer bound (lost, counted in the hash and the log), resets during
 * the pipeline (no duplicate, no gap), a restarted redis-server, a key
 * taken by another writer, and a password never in a log line.  Then
 * `council run --record redis:URL` end to end.
 *
 * TEST_LABELS: threaded
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli_run.h"
#include "council.h"
#include "faultproxy.h"
#include "redis_server.h"
#include "runner.h"

/* ---- a recorder that keeps what the run emitted ------------------------- */

#define KEEP_MAX 4096

typedef struct kept {
    pthread_mutex_t mu;
    char *lines[KEEP_MAX];
    size_t n;
    atomic_int ended;    /* the terminal event arrived */
    int64_t end_mono_us; /* when */
    char *outcome_json;
} kept;

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
k_init(const char *run_id, void *args, void **state, char *why, size_t n)
{
    (void)run_id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
k_event(void *state, council_event *ev)
{
    kept *k = state;
    council_event_type t = council_event_type_of(ev);

    pthread_mutex_lock(&k->mu);
    if (k->n < KEEP_MAX)
        k->lines[k->n++] = strdup(council_event_json(ev));
    if (t == COUNCIL_EV_RUN_COMPLETED || t == COUNCIL_EV_RUN_FAILED) {
        k->end_mono_us = mono_us();
        atomic_store(&k->ended, 1);
    }
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void
k_final(void *state, const council_outcome *o)
{
    kept *k = state;

    pthread_mutex_lock(&k->mu);
    k->outcome_json = strdup(council_outcome_json(o));
    pthread_mutex_unlock(&k->mu);
}

static const council_recorder_ops kept_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                              k_init, k_event, k_final, NULL};

static void
kept_free(kept *k)
{
    size_t i;

    for (i = 0; i < k->n; i++)
        free(k->lines[i]);
    free(k->outcome_json);
    pthread_mutex_destroy(&k->mu);
}

/* ---- the engine's log -----------------------------------------------------
 */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void
on_log(const char *line, void *ud)
{
    size_t n;

    (void)ud;
    pthread_mutex_lock(&log_mu);
    n = strlen(log_text);
    snprintf(log_text + n, sizeof(log_text) - n, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static char *
log_copy(void)
{
    char *s;

    pthread_mutex_lock(&log_mu);
    s = strdup(log_text);
    pthread_mutex_unlock(&log_mu);
    return s;
}

/* ---- a run ------------------------------------------------------------- */

typedef struct fx {
    council_mockllm *mock;
    council_def *def;
    council_engine *eng;
    kept k;
    council_recorder_redis_args args;
    council_run *run;
    char id[80];
} fx;

static void
fx_open(fx *f, double tps, const char *url)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_diag d;
    char text[1200];

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->k.mu, NULL);
    mo.seed = 7;
    mo.tokens_per_sec = tps;
    if (council_mockllm_open(&mo, &f->mock, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    snprintf(text, sizeof(text),
             "name: redisrec\n"
             "strategy: rank\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: mock, model: mock-a }\n"
             "  - { name: bob, provider: mock, model: mock-b }\n"
             "chairman: { provider: mock, model: mock-chair }\n"
             "limits: { quorum: 2, member_timeout: 60s }\n",
             council_mockllm_base_url(f->mock));
    if (council_def_load_string(text, strlen(text), "r.yaml", &f->def, &d) !=
        COUNCIL_OK)
        FAIL("council: %s", d.msg);
    eo.log = on_log;
    ASSERT_OK(council_engine_open(&eo, &f->eng));
    f->args.version = COUNCIL_RECORDER_REDIS_ARGS_VERSION;
    f->args.url = url;
    snprintf(f->id, sizeof(f->id), "rr-%d-%lld", (int)getpid(),
             (long long)(mono_us() % 1000000000));
}

static council_err
fx_start(fx *f, council_diag *d)
{
    council_recorder_spec specs[2];
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};

    specs[0].ops = council_recorder_redis();
    specs[0].args = &f->args;
    specs[1].ops = &kept_ops;
    specs[1].args = &f->k;
    ro.recorders = specs;
    ro.n_recorders = 2;
    ro.run_id = f->id;
    return council_run_start(f->eng, f->def, "Which way?", &ro, &f->run, d);
}

static void
fx_wait(fx *f)
{
    ASSERT_OK(council_run_wait(f->run, 60000, NULL));
}

static void
fx_close(fx *f)
{
    council_run_release(f->run);
    council_engine_close(f->eng);
    council_def_free(f->def);
    council_mockllm_close(f->mock);
    kept_free(&f->k);
}

/* ---- reading Redis back ------------------------------------------------- */

static redisContext *
rconnect(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    ASSERT(c != NULL && c->err == 0);
    redisSetTimeout(c, tv);
    return c;
}

static void
hget(redisContext *c, const char *key, const char *field, char *buf, size_t n)
{
    redisReply *rep = redisCommand(c, "HGET %s %s", key, field);

    ASSERT_NOT_NULL(rep);
    snprintf(buf, n, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

static long long
hget_int(redisContext *c, const char *key, const char *field)
{
    char buf[64];

    hget(c, key, field, buf, sizeof(buf));
    return buf[0] != '\0' ? strtoll(buf, NULL, 10) : -1;
}

/* A field of a stream entry, or NULL. */
static const redisReply *
entry_field(const redisReply *e, const char *name)
{
    const redisReply *f = e->element[1];
    size_t i;

    for (i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, name) == 0)
            return f->element[i + 1];
    return NULL;
}

/*
 * The stream of run id (prefix "council:" unless given) checked against
 * what the run emitted: entries 0-1..0-n, n = expect (or all of k's when
 * expect is -1), each ev byte-identical to k's line; the last carries
 * outcome when terminal_outcome is non-NULL.  Returns the entry count.
 */
static size_t
check_stream(redisContext *c, const char *prefix, const char *id, kept *k,
             long expect, const char *terminal_outcome)
{
    redisReply *rep = redisCommand(c, "XRANGE %srun:%s:ev - +",
                                   prefix ? prefix : "council:", id);
    size_t i, n;

    ASSERT_NOT_NULL(rep);
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_ARRAY);
    n = rep->elements;
    if (expect < 0)
        ASSERT_EQ_U64(n, k->n);
    else
        ASSERT_EQ_U64(n, (uint64_t)expect);
    for (i = 0; i < n; i++) {
        const redisReply *e = rep->element[i];
        const redisReply *ev = entry_field(e, "ev");
        char want[32];

        snprintf(want, sizeof(want), "0-%zu", i + 1);
        ASSERT_STR_EQ(e->element[0]->str, want);
        ASSERT_NOT_NULL(ev);
        ASSERT(i < k->n);
        ASSERT_EQ_U64(ev->len, strlen(k->lines[i]));
        ASSERT(memcmp(ev->str, k->lines[i], ev->len) == 0);
    }
    if (terminal_outcome != NULL) {
        const redisReply *o = entry_field(rep->element[n - 1], "outcome");

        ASSERT_NOT_NULL(o);
        ASSERT_STR_EQ(o->str, terminal_outcome);
        ASSERT_NOT_NULL(entry_field(rep->element[n - 1], "ts_ms"));
    }
    freeReplyObject(rep);
    return n;
}

static void
key_of(char *buf, size_t n, const char *id)
{
    snprintf(buf, n, "council:run:%s", id);
}

static void
assert_no_secret_in_log(const char *secret)
{
    char *l = log_copy();

    if (strstr(l, secret) != NULL)
        FAIL("the log shows the password: %s", l);
    free(l);
}

/* ---- the cases ------------------------------------------------------------
 */

TEST_T(events_land_with_the_hash_expiry_and_publish, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = rconnect(redis_server_port(r));
    redisContext *sub = rconnect(redis_server_port(r));
    redisReply *rep;
    char key[200], buf[4096];
    long long ttl;
    fx f;

    fx_open(&f, 0, redis_server_url(r));
    rep = redisCommand(sub, "SUBSCRIBE council:done");
    ASSERT_NOT_NULL(rep);
    freeReplyObject(rep);
    ASSERT_OK(fx_start(&f, NULL));
    fx_wait(&f);
    ASSERT(f.k.n > 5);
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    key_of(key, sizeof(key), f.id);
    hget(c, key, "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "ok");
    ASSERT_EQ_INT(hget_int(c, key, "last_seq"), (long long)f.k.n);
    ASSERT_EQ_INT(hget_int(c, key, "emitted"), (long long)f.k.n);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    ASSERT(hget_int(c, key, "ended_ms") >= hget_int(c, key, "created_ms"));
    hget(c, key, "outcome", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, f.k.outcome_json);
    hget(c, key, "owner", buf, sizeof(buf));
    {
        char want[300], host[256] = "";

        gethostname(host, sizeof(host));
        snprintf(want, sizeof(want), "%s:%d", host, (int)getpid());
        ASSERT_STR_EQ(buf, want);
    }
    ttl = 0;
    rep = redisCommand(c, "TTL %s", key);
    ttl = rep->integer;
    freeReplyObject(rep);
    ASSERT(ttl > 604800 - 60 && ttl <= 604800);
    rep = redisCommand(c, "TTL %s:ev", key);
    ASSERT(rep->integer > 604800 - 60 && rep->integer <= 604800);
    freeReplyObject(rep);
    /* The subscriber saw council:done with the run id. */
    ASSERT_EQ_INT(redisGetReply(sub, (void **)&rep), REDIS_OK);
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_ARRAY);
    ASSERT_STR_EQ(rep->element[0]->str, "message");
    ASSERT_STR_EQ(rep->element[1]->str, "council:done");
    ASSERT_STR_EQ(rep->element[2]->str, f.id);
    freeReplyObject(rep);
    fx_close(&f);
    redisFree(sub);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(prefix_and_expiry_are_the_callers, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = rconnect(redis_server_port(r));
    redisReply *rep;
    char buf[300];
    fx f;

    fx_open(&f, 0, redis_server_url(r));
    f.args.prefix = "t1:";
    f.args.expire_s = 100;
    ASSERT_OK(fx_start(&f, NULL));
    fx_wait(&f);
    check_stream(c, "t1:", f.id, &f.k, -1, "ok");
    snprintf(buf, sizeof(buf), "t1:run:%s", f.id);
    rep = redisCommand(c, "TTL %s", buf);
    ASSERT(rep->integer > 40 && rep->integer <= 100);
    freeReplyObject(rep);
    rep = redisCommand(c, "EXISTS council:run:%s", f.id);
    ASSERT_EQ_INT(rep->integer, 0);
    freeReplyObject(rep);
    fx_close(&f);
    redisFree(c);
    redis_server_stop(r);
}

TEST(bad_args_are_refused_at_init_with_the_password_masked)
{
    council_diag d;
    fx f;

    fx_open(&f, 0, "redis://alice:s3cr3t@");
    memset(&d, 0, sizeof(d));
    ASSERT_EQ_INT(fx_start(&f, &d), COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "redis:");
    ASSERT_STR_CONTAINS(d.msg, "***");
    ASSERT(strstr(d.msg, "s3cr3t") == NULL);
    f.args.url = "redis://127.0.0.1:1";
    f.args.prefix = "has space";
    ASSERT_EQ_INT(fx_start(&f, &d), COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "prefix");
    f.args.prefix = NULL;
    f.args.version = 99;
    ASSERT_EQ_INT(fx_start(&f, &d), COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "version");
    ASSERT_EQ_INT(council_redis_url_check("http://x", &d), COUNCIL_EINVAL);
    ASSERT_OK(council_redis_url_check("redis://u:p@127.0.0.1:6379/2", &d));
    fx_close(&f);
}

/* Nothing listens: the run is not delayed past the finalize bound, and
 * the log says what was not written, naming the run and the key, never
 * the password. */
TEST_T(redis_down_at_start_costs_the_finalize_bound_and_is_logged, 60)
{
    redis_server *r = redis_server_start(NULL);
    char url[200], key[200];
    int port = redis_server_port(r);
    int64_t t0;
    char *l;
    fx f;

    redis_server_stop(r); /* the port is free now */
    snprintf(url, sizeof(url), "redis://:hunter2pw@127.0.0.1:%d", port);
    fx_open(&f, 0, url);
    f.args.finalize_wait_ms = 500;
    t0 = mono_us();
    ASSERT_OK(fx_start(&f, NULL));
    fx_wait(&f);
    ASSERT(mono_us() - t0 < 20 * 1000000);
    l = log_copy();
    key_of(key, sizeof(key), f.id);
    ASSERT_STR_CONTAINS(l, f.id);
    ASSERT_STR_CONTAINS(l, key);
    ASSERT_STR_CONTAINS(l, "not written");
    free(l);
    assert_no_secret_in_log("hunter2pw");
    fx_close(&f);
}

/* Several runs ending while Redis stays away, their finalizes one after
 * another (one recorder thread): they share one bound, not one each. */
TEST_T(runs_ending_while_redis_is_away_share_one_bound, 60)
{
    redis_server *r = redis_server_start(NULL);
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_recorder_redis_args a = {COUNCIL_RECORDER_REDIS_ARGS_VERSION};
    council_recorder_spec spec;
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *runs[4];
    council_engine *eng;
    char url[100];
    int64_t t0, took;
    int i;
    fx f;

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_server_port(r));
    redis_server_stop(r); /* nothing listens there now */
    fx_open(&f, 0, url);
    eo.recorder_threads = 1;
    eo.log = on_log;
    ASSERT_OK(council_engine_open(&eo, &eng));
    a.url = url;
    a.finalize_wait_ms = 1500;
    spec.ops = council_recorder_redis();
    spec.args = &a;
    ro.recorders = &spec;
    ro.n_recorders = 1;
    t0 = mono_us();
    for (i = 0; i < 4; i++)
        ASSERT_OK(council_run_start(eng, f.def, "Q?", &ro, &runs[i], NULL));
    for (i = 0; i < 4; i++) {
        ASSERT_OK(council_run_wait(runs[i], 60000, NULL));
        council_run_release(runs[i]);
    }
    took = mono_us() - t0;
    /* One bound is 1.5 s; one each would be 6 s. */
    if (took > 4000000)
        FAIL("4 runs took %lld ms to end", (long long)(took / 1000));
    council_engine_close(eng);
    fx_close(&f);
}

/* Redis unreachable at the start (a blackhole), back before the end: the
 * buffered events are all written, in order. */
TEST_T(redis_away_at_start_then_back_writes_everything, 90)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = rconnect(redis_server_port(r));
    char key[200];
    fx f;

    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    fx_open(&f, 0, faultproxy_url(p));
    f.args.finalize_wait_ms = 30000;
    ASSERT_OK(fx_start(&f, NULL));
    while (!atomic_load(&f.k.ended))
        usleep(10000);
    usleep(200000);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    fx_wait(&f);
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    key_of(key, sizeof(key), f.id);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    fx_close(&f);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* A blackhole in the middle of a run: the run ends while Redis cannot be
 * reached (not delayed by it: its terminal event reaches the other
 * recorder with the blackhole still on); the events are written after. */
TEST_T(blackhole_mid_run_does_not_delay_the_run, 90)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = rconnect(redis_server_port(r));
    char key[200];
    size_t n0;
    int64_t t_hole, t_end;
    fx f;

    fx_open(&f, 400, faultproxy_url(p));
    f.args.finalize_wait_ms = 30000;
    ASSERT_OK(fx_start(&f, NULL));
    do {
        usleep(5000);
        pthread_mutex_lock(&f.k.mu);
        n0 = f.k.n;
        pthread_mutex_unlock(&f.k.mu);
    } while (n0 < 10);
    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    t_hole = mono_us();
    while (!atomic_load(&f.k.ended))
        usleep(5000);
    t_end = mono_us();
    /* The run went on and ended inside the blackhole, within the time
     * the mock takes, well under a command deadline (5 s). */
    ASSERT(f.k.n > n0);
    ASSERT(t_end - t_hole < 5000000 * runner_timeout_multiplier());
    usleep(300000);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    fx_wait(&f);
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    key_of(key, sizeof(key), f.id);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    ASSERT_EQ_INT(hget_int(c, key, "last_seq"), (long long)f.k.n);
    fx_close(&f);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* Past the buffer bound while Redis is away: the prefix that fit is
 * written, nothing after it; the hash ends with the outcome and says how
 * many were lost; the log names the run and the key. */
TEST_T(past_the_bound_events_are_lost_and_counted, 90)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = rconnect(redis_server_port(r));
    council_engine_stats st;
    char key[200], buf[64];
    long long last;
    char *l;
    fx f;

    faultproxy_set(p, FAULTPROXY_BLACKHOLE, 0);
    fx_open(&f, 0, faultproxy_url(p));
    f.args.finalize_wait_ms = 30000;
    f.args.max_buffer_bytes = 3000;
    ASSERT_OK(fx_start(&f, NULL));
    while (!atomic_load(&f.k.ended))
        usleep(10000);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    fx_wait(&f);
    key_of(key, sizeof(key), f.id);
    last = hget_int(c, key, "last_seq");
    ASSERT(last > 0 && last < (long long)f.k.n);
    check_stream(c, NULL, f.id, &f.k, last, NULL);
    hget(c, key, "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "ok");
    ASSERT_EQ_INT(hget_int(c, key, "emitted"), (long long)f.k.n);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), (long long)f.k.n - last);
    council_engine_stats_get(f.eng, &st);
    ASSERT(st.recorder_failures > 0);
    l = log_copy();
    ASSERT_STR_CONTAINS(l, f.id);
    ASSERT_STR_CONTAINS(l, "lost");
    ASSERT_STR_CONTAINS(l, key);
    free(l);
    fx_close(&f);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

static atomic_int stop_resets;

static void *
resetter(void *arg)
{
    faultproxy *p = arg;

    while (!atomic_load(&stop_resets)) {
        usleep(15000);
        faultproxy_reset_all(p);
    }
    return NULL;
}

/* Connections reset again and again while batches are in flight: every
 * retry is harmless, so the stream is exactly 0-1..0-N. */
TEST_T(resets_during_the_pipeline_leave_no_duplicate_and_no_gap, 120)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = rconnect(redis_server_port(r));
    pthread_t th;
    char key[200];
    fx f;

    fx_open(&f, 300, faultproxy_url(p));
    f.args.finalize_wait_ms = 60000;
    atomic_store(&stop_resets, 0);
    ASSERT_EQ_INT(pthread_create(&th, NULL, resetter, p), 0);
    ASSERT_OK(fx_start(&f, NULL));
    while (!atomic_load(&f.k.ended))
        usleep(10000);
    atomic_store(&stop_resets, 1);
    pthread_join(th, NULL);
    fx_wait(&f);
    ASSERT(faultproxy_accepted(p) > 1);
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    key_of(key, sizeof(key), f.id);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    ASSERT_EQ_INT(hget_int(c, key, "last_seq"), (long long)f.k.n);
    fx_close(&f);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}

/* redis-server killed and started again mid-run (appendonly, fsync
 * always: what it acknowledged survives): the run's record is whole. */
TEST_T(redis_server_restarted_mid_run, 120)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c;
    char key[200];
    size_t n0;
    fx f;

    fx_open(&f, 300, redis_server_url(r));
    f.args.finalize_wait_ms = 60000;
    ASSERT_OK(fx_start(&f, NULL));
    do {
        usleep(5000);
        pthread_mutex_lock(&f.k.mu);
        n0 = f.k.n;
        pthread_mutex_unlock(&f.k.mu);
    } while (n0 < 10);
    redis_server_kill(r);
    usleep(300000);
    redis_server_restart(r);
    fx_wait(&f);
    c = rconnect(redis_server_port(r));
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    key_of(key, sizeof(key), f.id);
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    fx_close(&f);
    redisFree(c);
    redis_server_stop(r);
}

/* A hash of that run id written by someone else is left as it is. */
TEST_T(a_taken_key_is_not_overwritten, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = rconnect(redis_server_port(r));
    redisReply *rep;
    char key[200], buf[64];
    char *l;
    fx f;

    fx_open(&f, 0, redis_server_url(r));
    key_of(key, sizeof(key), f.id);
    rep = redisCommand(c, "HSET %s state queued writer someone", key);
    freeReplyObject(rep);
    f.args.finalize_wait_ms = 5000;
    ASSERT_OK(fx_start(&f, NULL));
    fx_wait(&f);
    hget(c, key, "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "queued");
    rep = redisCommand(c, "EXISTS %s:ev", key);
    ASSERT_EQ_INT(rep->integer, 0);
    freeReplyObject(rep);
    l = log_copy();
    ASSERT_STR_CONTAINS(l, "not written by this recorder");
    ASSERT_STR_CONTAINS(l, key);
    free(l);
    fx_close(&f);
    redisFree(c);
    redis_server_stop(r);
}

/* A password Redis refuses: AUTH fails, the run ends within the bound,
 * and no log line holds the password. */
TEST_T(a_refused_password_never_reaches_the_log, 60)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = rconnect(redis_server_port(r));
    redisReply *rep;
    char url[200];
    fx f;

    /* Set after the start: the helper's readiness PING has no AUTH. */
    rep = redisCommand(c, "CONFIG SET requirepass rightpass");
    ASSERT_NOT_NULL(rep);
    ASSERT_EQ_INT(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(c);
    snprintf(url, sizeof(url), "redis://:wrongpass77@127.0.0.1:%d",
             redis_server_port(r));
    fx_open(&f, 0, url);
    f.args.finalize_wait_ms = 1000;
    ASSERT_OK(fx_start(&f, NULL));
    fx_wait(&f);
    {
        char *l = log_copy();

        ASSERT_STR_CONTAINS(l, "not written");
        free(l);
    }
    assert_no_secret_in_log("wrongpass77");
    fx_close(&f);
    redis_server_stop(r);
}

/* ---- the command line -----------------------------------------------------
 */

TEST_T(cli_run_records_to_redis, 90)
{
    redis_server *r = redis_server_start(NULL);
    redisContext *c = rconnect(redis_server_port(r));
    redisReply *rep;
    char spec[300], key[200], buf[64];
    const char *id = "cli-redis-1";
    cli_result res;
    size_t i;

    snprintf(spec, sizeof(spec), "redis:%s", redis_server_url(r));
    {
        const char *args[] = {"run",     "--record", spec,   "--run-id", id,
                              "--quiet", "--json",   "Why?", NULL};
        res = cli_run(args);
    }
    if (res.code != 0)
        FAIL("council run: exit %d: %s", res.code, res.err);
    key_of(key, sizeof(key), id);
    hget(c, key, "state", buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "ok");
    rep = redisCommand(c, "XRANGE %s:ev - +", key);
    ASSERT(rep->elements > 3);
    ASSERT_EQ_INT(hget_int(c, key, "last_seq"), (long long)rep->elements);
    for (i = 0; i < rep->elements; i++) {
        char want[32], seq[40];
        const redisReply *ev = entry_field(rep->element[i], "ev");

        snprintf(want, sizeof(want), "0-%zu", i + 1);
        ASSERT_STR_EQ(rep->element[i]->element[0]->str, want);
        ASSERT_NOT_NULL(ev);
        snprintf(seq, sizeof(seq), "\"seq\":%zu", i + 1);
        ASSERT_STR_CONTAINS(ev->str, seq);
        ASSERT_STR_CONTAINS(ev->str, id);
    }
    freeReplyObject(rep);
    cli_result_free(&res);
    redisFree(c);
    redis_server_stop(r);
}

TEST_T(cli_refuses_a_bad_url_with_the_password_masked, 30)
{
    const char *args2[] = {"run", "--record",
                           "redis:redis://bob:pw9secret@h:99999", "Why?", NULL};
    const char *args3[] = {"serve", "--record",
                           "redis:rediss://bob:pw9secret@h", NULL};
    cli_result res = cli_run(args2);

    ASSERT_EQ_INT(res.code, 2);
    ASSERT_STR_CONTAINS(res.err, "--record redis:redis://h:99999: ");
    ASSERT_STR_CONTAINS(res.err, "port");
    ASSERT(strstr(res.err, "pw9secret") == NULL);
    cli_result_free(&res);
    res = cli_run(args3);
    ASSERT_EQ_INT(res.code, 2);
    ASSERT_STR_CONTAINS(res.err, "--record redis:rediss://h: ");
    ASSERT_STR_CONTAINS(res.err, "TLS");
    ASSERT(strstr(res.err, "pw9secret") == NULL);
    cli_result_free(&res);
}

/* Redis unreachable: the run completes, stderr says what its record in
 * Redis lacks, and the exit code is 5 (a record is incomplete). */
TEST_T(cli_with_redis_away_says_so_and_exits_5, 60)
{
    redis_server *r = redis_server_start(NULL);
    char spec[300];
    cli_result res;

    snprintf(spec, sizeof(spec), "redis:redis://:topsecret1@127.0.0.1:%d",
             redis_server_port(r));
    redis_server_stop(r);
    {
        const char *args[] = {"run", "--record", spec, "--quiet", "Why?", NULL};
        res = cli_run(args);
    }
    ASSERT_EQ_INT(res.code, 5);
    ASSERT_STR_CONTAINS(res.err, "redis recorder");
    ASSERT_STR_CONTAINS(res.err, "not written");
    ASSERT_STR_CONTAINS(res.err, "is incomplete");
    ASSERT(strstr(res.err, "topsecret1") == NULL);
    cli_result_free(&res);
}

static long long
rcount(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(c, fmt, arg);
    long long v;

    ASSERT_NOT_NULL(rep);
    v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

/* Replies lost after Redis ran the command: the proxy delays every byte
 * 400 ms; once Redis holds the hash (the create ran) and again once the
 * stream has entries (an append ran), every connection is reset before
 * the reply gets through.  The resent create and append are recognised
 * (their writes are there): the stream is exactly 0-1..0-N, each once. */
TEST_T(a_lost_reply_is_retried_without_a_duplicate, 90)
{
    redis_server *r = redis_server_start(NULL);
    faultproxy *p = faultproxy_start(redis_server_port(r));
    redisContext *c = rconnect(redis_server_port(r));
    char key[200];
    unsigned acc0;
    fx f;

    faultproxy_set(p, FAULTPROXY_DELAY, 400);
    fx_open(&f, 0, faultproxy_url(p));
    f.args.finalize_wait_ms = 60000;
    key_of(key, sizeof(key), f.id);
    ASSERT_OK(fx_start(&f, NULL));
    while (rcount(c, "EXISTS %s", key) != 1)
        usleep(2000);
    acc0 = faultproxy_accepted(p);
    faultproxy_reset_all(p);
    while (rcount(c, "XLEN %s:ev", key) < 1)
        usleep(2000);
    faultproxy_reset_all(p);
    faultproxy_set(p, FAULTPROXY_PASS, 0);
    fx_wait(&f);
    ASSERT(faultproxy_accepted(p) >= acc0 + 2);
    check_stream(c, NULL, f.id, &f.k, -1, "ok");
    ASSERT_EQ_INT(hget_int(c, key, "lost"), 0);
    ASSERT_EQ_INT(hget_int(c, key, "last_seq"), (long long)f.k.n);
    fx_close(&f);
    redisFree(c);
    faultproxy_stop(p);
    redis_server_stop(r);
}
