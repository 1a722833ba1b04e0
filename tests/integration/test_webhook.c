/* SPDX-License-Identifier: MIT */
/*
 * The webhook recorder against a real receiver on loopback
 * (tests/support/hook_server.c, libmicrohttpd) and real runs of the mock
 * LLM: the outcome posted once and signed; every event once and in order
 * (retried batches deduplicated by their Idempotency-Key); 5xx and 429
 * retried, 400 not; a receiver that hangs or is down delays neither the
 * run nor council_run_wait, and engine close gives up after the drain
 * time, reporting what was lost; bad URLs refused at init; the secret and
 * the URL's password never in a log line or an error; and the council
 * command end to end (run and serve).
 * TEST_LABELS: threaded
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "council.h"
#include "hook_server.h"
#include "runner.h"

#define SECRET "s3cret-canary-7f1d"
#define PASSWORD "hunter2-canary"

/* ---- the engine's log, captured ----------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];
static size_t log_len;

static void
on_log(const char *line, void *ud)
{
    size_t n = strlen(line);

    (void)ud;
    pthread_mutex_lock(&log_mu);
    if (log_len + n + 2 < sizeof(log_text)) {
        memcpy(log_text + log_len, line, n);
        log_text[log_len + n] = '\n';
        log_len += n + 1;
        log_text[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static char *
log_copy(void)
{
    char *c;

    pthread_mutex_lock(&log_mu);
    c = strdup(log_text);
    pthread_mutex_unlock(&log_mu);
    return c;
}

/* No secret anywhere in what the library said. */
static void
check_no_secrets(const char *text)
{
    if (strstr(text, SECRET) != NULL || strstr(text, PASSWORD) != NULL)
        FAIL("a secret leaked: %s", text);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fixtures ------------------------------------------------------------ */

typedef struct fix {
    council_mockllm *mock;
    council_def *def;
    council_engine *eng;
    hook_server *srv;
    char url[256];
} fix;

static void
fix_open(fix *f, const char *secret)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_diag d;
    char yaml[1024];

    memset(f, 0, sizeof(*f));
    mo.seed = 5;
    if (council_mockllm_open(&mo, &f->mock, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    snprintf(yaml, sizeof(yaml),
             "name: t\n"
             "providers:\n"
             "  mock: { kind: openai, base_url: %s }\n"
             "members:\n"
             "  - { name: ann, provider: mock, model: mock-a }\n"
             "  - { name: bob, provider: mock, model: mock-b }\n"
             "chairman: { provider: mock, model: mock-c }\n",
             council_mockllm_base_url(f->mock));
    if (council_def_load_string(yaml, strlen(yaml), "t.yaml", &f->def, &d) !=
        COUNCIL_OK)
        FAIL("council: %s", d.msg);
    eo.log = on_log;
    ASSERT_OK(council_engine_open(&eo, &f->eng));
    f->srv = hook_server_start(secret);
    ASSERT_NOT_NULL(f->srv);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/hook",
             hook_server_port(f->srv));
}

static void
fix_close_engine(fix *f)
{
    council_engine_close(f->eng);
    f->eng = NULL;
}

static void
fix_close(fix *f)
{
    council_engine_close(f->eng);
    hook_server_stop(f->srv);
    council_def_free(f->def);
    council_mockllm_close(f->mock);
}

static council_webhook_args
args_for(const char *url, int events)
{
    council_webhook_args a;

    memset(&a, 0, sizeof(a));
    a.version = COUNCIL_WEBHOOK_ARGS_VERSION;
    a.url = url;
    a.secret = SECRET;
    a.events = events;
    a.backoff_ms = 20;
    a.backoff_max_ms = 200;
    return a;
}

/* Run the council with one webhook recorder; the outcome's kind. */
static council_outcome_kind
run_once(fix *f, council_webhook_args *a, char *run_id, size_t size)
{
    council_recorder_spec spec = {council_recorder_webhook(), a};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    const council_outcome *o = NULL;
    council_outcome_kind k;
    council_diag d;

    ro.recorders = &spec;
    ro.n_recorders = 1;
    if (council_run_start(f->eng, f->def, "Why is the sky blue?", &ro, &run,
                          &d) != COUNCIL_OK)
        FAIL("start: %s", d.msg);
    ASSERT_OK(council_run_wait(run, 30000, &o));
    k = council_outcome_kind_of(o);
    snprintf(run_id, size, "%s", council_run_id(run));
    council_run_release(run);
    return k;
}

static json_t *
body_json(const hook_req *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);

    if (j == NULL)
        FAIL("body is not JSON (%s): %s", je.text, r->body);
    return j;
}

/* ---- cases --------------------------------------------------------------- */

TEST_T(outcome_posted_once_signed, 30)
{
    fix f;
    council_webhook_args a;
    char id[80], key[120], *logs;
    hook_req r;
    json_t *j;

    fix_open(&f, SECRET);
    a = args_for(f.url, 0);
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    fix_close_engine(&f); /* drains */
    ASSERT_EQ_INT(hook_server_count(f.srv), 1);
    r = hook_server_get(f.srv, 0);
    ASSERT_STR_EQ(r.path, "POST /hook");
    ASSERT_STR_EQ(r.kind, "outcome");
    ASSERT_STR_EQ(r.run_id, id);
    snprintf(key, sizeof(key), "%s-outcome", id);
    ASSERT_STR_EQ(r.key, key);
    ASSERT_STR_EQ(r.content_type, "application/json");
    ASSERT_EQ_INT(r.attempt, 1);
    ASSERT_EQ_INT(r.sig_ok, 1);
    ASSERT(strncmp(r.sig, "sha256=", 7) == 0 && strlen(r.sig) == 7 + 64);
    /* The timestamp is now (the receiver may refuse stale ones). */
    ASSERT(llabs(strtoll(r.ts, NULL, 10) - (long long)time(NULL)) < 60);
    j = body_json(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "kind")), "outcome");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "run_id")), id);
    ASSERT_STR_EQ(json_string_value(json_object_get(
                      json_object_get(j, "outcome"), "outcome")),
                  "ok");
    ASSERT(json_integer_value(json_object_get(j, "events_emitted")) > 5);
    /* Events off: no delivered count. */
    ASSERT_NULL(json_object_get(j, "events_delivered"));
    ASSERT_NULL(strstr(r.body, SECRET));
    json_decref(j);
    hook_req_free(&r);
    logs = log_copy();
    ASSERT_STR_EQ(logs, "");
    free(logs);
    fix_close(&f);
}

/* With events: every event once, in seq order, then the outcome, across
 * retried batches (the receiver dedupes by Idempotency-Key). */
TEST_T(events_each_once_in_order, 60)
{
    static const int script[] = {500, 503, 200, 502};
    fix f;
    council_webhook_args a;
    char id[80], seen[64][200], *logs;
    int n, i, k, n_seen = 0, outcome_at = -1;
    uint64_t next = 1, emitted = 0;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 4);
    a = args_for(f.url, 1);
    a.batch_max = 16; /* several batches, whatever the timing */
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    fix_close_engine(&f);
    n = hook_server_count(f.srv);
    ASSERT(n >= 5);
    for (i = 0; i < n; i++) {
        hook_req r = hook_server_get(f.srv, i);
        json_t *j = body_json(&r), *ev;
        size_t x;
        int dup = 0;

        ASSERT_EQ_INT(r.sig_ok, 1);
        ASSERT_STR_EQ(r.run_id, id);
        if (r.status != 200) {
            /* Retried: the next request carries the same key. */
            hook_req nx = hook_server_get(f.srv, i + 1);

            ASSERT(i + 1 < n);
            ASSERT_STR_EQ(nx.key, r.key);
            ASSERT_EQ_INT(nx.attempt, r.attempt + 1);
            hook_req_free(&nx);
            json_decref(j);
            hook_req_free(&r);
            continue;
        }
        for (k = 0; k < n_seen; k++)
            dup |= strcmp(seen[k], r.key) == 0;
        ASSERT(!dup); /* a 2xx answer is never followed by a resend */
        ASSERT(n_seen < 64);
        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", r.key);
        if (strcmp(r.kind, "outcome") == 0) {
            ASSERT_EQ_INT(outcome_at, -1);
            outcome_at = i;
            emitted = (uint64_t)json_integer_value(
                json_object_get(j, "events_emitted"));
            ASSERT_EQ_U64(
                json_integer_value(json_object_get(j, "events_delivered")),
                emitted);
        } else {
            ASSERT_STR_EQ(r.kind, "events");
            ASSERT_EQ_INT(outcome_at, -1); /* events come first */
            ASSERT_EQ_U64(json_integer_value(json_object_get(j, "first_seq")),
                          next);
            json_array_foreach (json_object_get(j, "events"), x, ev) {
                ASSERT_EQ_U64(json_integer_value(json_object_get(ev, "seq")),
                              next);
                ASSERT_STR_EQ(json_string_value(json_object_get(ev, "run_id")),
                              id);
                next++;
            }
            ASSERT_EQ_U64(json_integer_value(json_object_get(j, "last_seq")),
                          next - 1);
        }
        json_decref(j);
        hook_req_free(&r);
    }
    ASSERT_EQ_INT(outcome_at, n - 1);
    ASSERT_EQ_U64(next - 1, emitted);
    logs = log_copy();
    ASSERT_STR_EQ(logs, "");
    free(logs);
    fix_close(&f);
}

TEST_T(server_error_retried_then_delivered_once, 30)
{
    static const int script[] = {503, 500};
    fix f;
    council_webhook_args a;
    char id[80], *logs;
    int i;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 2);
    a = args_for(f.url, 0);
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    fix_close_engine(&f);
    ASSERT_EQ_INT(hook_server_count(f.srv), 3);
    for (i = 0; i < 3; i++) {
        hook_req r = hook_server_get(f.srv, i);

        ASSERT_EQ_INT(r.attempt, i + 1);
        ASSERT_EQ_INT(r.status, i < 2 ? script[i] : 200);
        ASSERT_STR_CONTAINS(r.key, "-outcome");
        ASSERT_EQ_INT(r.sig_ok, 1); /* re-signed per attempt */
        hook_req_free(&r);
    }
    logs = log_copy();
    ASSERT_STR_EQ(logs, "");
    free(logs);
    fix_close(&f);
}

TEST_T(too_many_requests_honours_retry_after, 30)
{
    static const int script[] = {429};
    fix f;
    council_webhook_args a;
    char id[80];
    int64_t t0;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 1);
    a = args_for(f.url, 0);
    a.backoff_max_ms = 5000;
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    ASSERT_EQ_INT(hook_server_wait(f.srv, 1, 10000), 1);
    t0 = mono_ms();
    ASSERT_EQ_INT(hook_server_wait(f.srv, 2, 10000), 2);
    /* Retry-After: 1, not the 20 ms backoff. */
    ASSERT(mono_ms() - t0 >= 900);
    fix_close(&f);
}

/* 400: not retried, reported, naming the URL without its password. */
TEST_T(client_error_not_retried_and_reported, 30)
{
    static const int script[] = {400};
    fix f;
    council_webhook_args a;
    char id[80], url[300], *logs;
    hook_req r;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 1);
    snprintf(url, sizeof(url),
             "http://alice:" PASSWORD "@127.0.0.1:%d/hook?token=" PASSWORD,
             hook_server_port(f.srv));
    a = args_for(url, 0);
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    fix_close_engine(&f);
    ASSERT_EQ_INT(hook_server_count(f.srv), 1);
    r = hook_server_get(f.srv, 0);
    /* The credentials did reach the receiver, as Basic auth. */
    ASSERT(strncmp(r.authorization, "Basic ", 6) == 0);
    hook_req_free(&r);
    logs = log_copy();
    ASSERT_STR_CONTAINS(logs, "outcome not delivered: HTTP 400 (not retried)");
    ASSERT_STR_CONTAINS(logs, "(webhook http://127.0.0.1:");
    ASSERT_STR_CONTAINS(logs, "/hook?...)");
    ASSERT_STR_CONTAINS(logs, id);
    check_no_secrets(logs);
    free(logs);
    fix_close(&f);
}

/* An events POST given up: later events are not posted (a gap), the
 * outcome still is and says how many events were delivered. */
TEST_T(events_given_up_then_outcome_says_so, 30)
{
    static const int script[] = {400};
    fix f;
    council_webhook_args a;
    char id[80], *logs;
    hook_req r;
    json_t *j;
    int n;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 1);
    a = args_for(f.url, 1);
    a.batch_max = 4;
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    fix_close_engine(&f);
    n = hook_server_count(f.srv);
    ASSERT(n >= 2);
    r = hook_server_get(f.srv, 0);
    ASSERT_STR_EQ(r.kind, "events");
    ASSERT_EQ_INT(r.status, 400);
    hook_req_free(&r);
    r = hook_server_get(f.srv, n - 1);
    ASSERT_STR_EQ(r.kind, "outcome");
    j = body_json(&r);
    ASSERT(json_integer_value(json_object_get(j, "events_emitted")) > 4);
    /* The first batch failed, so none after it was posted (those queued
     * before the failure was known are dropped; those that come later
     * are each reported as a recorder failure). */
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events_delivered")),
                  0);
    ASSERT_EQ_INT(n, 2);
    json_decref(j);
    hook_req_free(&r);
    logs = log_copy();
    ASSERT_STR_CONTAINS(logs, "): events 1..");
    ASSERT_STR_CONTAINS(logs, " not delivered: HTTP 400 (not retried); later "
                              "events are not posted");
    check_no_secrets(logs);
    free(logs);
    fix_close(&f);
}

/* A receiver that never answers: the run and council_run_wait are not
 * delayed; engine close gives up after drain_ms and says so. */
TEST_T(hung_receiver_delays_nothing, 30)
{
    static const int script[] = {HOOK_HANG, HOOK_HANG, HOOK_HANG};
    fix f;
    council_webhook_args a;
    char id[80], *logs;
    int64_t t0, t_run, t_close;

    fix_open(&f, SECRET);
    hook_server_script(f.srv, script, 3);
    a = args_for(f.url, 1);
    a.timeout_ms = 60000; /* far beyond every bound below */
    a.drain_ms = 700;
    t0 = mono_ms();
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    t_run = mono_ms() - t0;
    ASSERT_EQ_INT(hook_server_wait(f.srv, 1, 10000), 1);
    t0 = mono_ms();
    fix_close_engine(&f);
    t_close = mono_ms() - t0;
    /* The mock run takes a few hundred ms; a webhook wait would be 60 s. */
    ASSERT(t_run < 5000 * runner_timeout_multiplier());
    ASSERT(t_close >= 600);
    ASSERT(t_close < 700 + 1500 * runner_timeout_multiplier());
    logs = log_copy();
    ASSERT_STR_CONTAINS(logs, "not delivered: the engine closed (drain time "
                              "700 ms over) after 1 attempt");
    ASSERT_STR_CONTAINS(logs, "outcome not delivered");
    check_no_secrets(logs);
    free(logs);
    fix_close(&f);
}

/* Nothing listens: connection errors are retried max_attempts times. */
TEST_T(receiver_down_retried_then_reported, 30)
{
    fix f;
    council_webhook_args a;
    char id[80], url[128], *logs;
    hook_server *gone = hook_server_start(NULL);
    int64_t t0;

    ASSERT_NOT_NULL(gone);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook",
             hook_server_port(gone));
    hook_server_stop(gone);
    fix_open(&f, SECRET);
    a = args_for(url, 0);
    a.max_attempts = 3;
    t0 = mono_ms();
    ASSERT_EQ_INT(run_once(&f, &a, id, sizeof(id)), COUNCIL_OUTCOME_OK);
    ASSERT(mono_ms() - t0 < 5000 * runner_timeout_multiplier());
    fix_close_engine(&f);
    logs = log_copy();
    ASSERT_STR_CONTAINS(logs, "outcome not delivered: ");
    ASSERT_STR_CONTAINS(logs, "after 3 attempts");
    check_no_secrets(logs);
    free(logs);
    fix_close(&f);
}

static void
refused_with(fix *f, const char *url, const char *why)
{
    council_webhook_args a = args_for(url, 0);
    council_recorder_spec spec = {council_recorder_webhook(), &a};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    ro.recorders = &spec;
    ro.n_recorders = 1;
    ASSERT_EQ_INT(council_run_start(f->eng, f->def, "q", &ro, &run, &d),
                  COUNCIL_EREFUSED);
    ASSERT_NULL(run);
    ASSERT_STR_CONTAINS(d.msg, why);
    check_no_secrets(d.msg);
}

TEST(bad_url_refused_at_init)
{
    fix f;
    council_webhook_args a;
    council_recorder_spec spec = {council_recorder_webhook(), &a};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_run *run = NULL;
    council_diag d;

    fix_open(&f, NULL);
    refused_with(&f, "ftp://alice:" PASSWORD "@example.com/x",
                 "webhook: ftp://example.com/x: the scheme must be http or "
                 "https, not ftp");
    refused_with(&f, "file:///etc/passwd", "the scheme must be http or https");
    refused_with(&f, "not a url", "webhook: not a url is not a URL");
    refused_with(&f, "http://bob:" PASSWORD "@[::1/x", "is not a URL");
    refused_with(&f, "", "webhook: no URL given");
    a = args_for(f.url, 0);
    a.version = 99;
    ro.recorders = &spec;
    ro.n_recorders = 1;
    ASSERT_EQ_INT(council_run_start(f.eng, f.def, "q", &ro, &run, &d),
                  COUNCIL_EREFUSED);
    ASSERT_STR_CONTAINS(d.msg, "webhook: args version 99 is not 1");
    fix_close_engine(&f);
    ASSERT_EQ_INT(hook_server_count(f.srv), 0);
    fix_close(&f);
}

/* ---- the council command ---------------------------------------------- */

TEST_T(cli_run_posts_the_outcome, 60)
{
    hook_server *s = hook_server_start(SECRET);
    char spec[160];
    const char *args[] = {"run",  "-q", "--record", spec, "--webhook-events",
                          "Why?", NULL};
    cli_result res;
    hook_req r;
    int n;

    ASSERT_NOT_NULL(s);
    snprintf(spec, sizeof(spec), "webhook:http://127.0.0.1:%d/hook",
             hook_server_port(s));
    setenv("COUNCIL_WEBHOOK_SECRET", SECRET, 1);
    res = cli_run(args);
    ASSERT_EQ_INT(res.code, 0);
    check_no_secrets(res.err);
    /* The command ended after the outcome was delivered (the drain). */
    n = hook_server_count(s);
    ASSERT(n >= 2);
    r = hook_server_get(s, n - 1);
    ASSERT_STR_EQ(r.kind, "outcome");
    ASSERT_EQ_INT(r.sig_ok, 1);
    ASSERT_STR_CONTAINS(r.body, "\"outcome\":{\"outcome\":\"ok\"");
    hook_req_free(&r);
    r = hook_server_get(s, 0);
    ASSERT_STR_EQ(r.kind, "events");
    ASSERT_STR_CONTAINS(r.body, "\"type\":\"run_started\"");
    hook_req_free(&r);
    cli_result_free(&res);
    hook_server_stop(s);
}

TEST_T(cli_errors_name_the_option, 60)
{
    const char *bad_scheme[] = {
        "run", "-q", "--record", "webhook:ftp://alice:" PASSWORD "@host/x",
        "q",   NULL};
    const char *no_env[] = {"run",
                            "-q",
                            "--record",
                            "webhook:http://127.0.0.1:1/hook",
                            "--webhook-secret-env",
                            "COUNCIL_TEST_UNSET_SECRET_VAR",
                            "q",
                            NULL};
    const char *bad_spec[] = {"serve", "--record", "ftp:nope", NULL};
    cli_result res;

    res = cli_run(bad_scheme);
    ASSERT_EQ_INT(res.code, 2);
    ASSERT_STR_CONTAINS(res.err, "--record webhook:ftp://host/x: expected an "
                                 "http:// or https:// URL");
    check_no_secrets(res.err);
    cli_result_free(&res);

    unsetenv("COUNCIL_TEST_UNSET_SECRET_VAR");
    res = cli_run(no_env);
    ASSERT_EQ_INT(res.code, 2);
    ASSERT_STR_CONTAINS(res.err,
                        "--webhook-secret-env COUNCIL_TEST_UNSET_SECRET_VAR: "
                        "the environment variable "
                        "COUNCIL_TEST_UNSET_SECRET_VAR is not set");
    cli_result_free(&res);

    res = cli_run(bad_spec);
    ASSERT_EQ_INT(res.code, 2);
    ASSERT_STR_CONTAINS(res.err, "--record ftp:nope: expected sqlite:PATH, "
                                 "jsonl:DIR, webhook:URL or redis:URL");
    cli_result_free(&res);
}

/* A receiver that fails: the command still ends, and says so on stderr. */
TEST_T(cli_reports_undelivered, 60)
{
    static const int script[] = {400};
    hook_server *s = hook_server_start(SECRET);
    char spec[200];
    const char *args[] = {"run", "-q", "--record", spec, "Why?", NULL};
    cli_result res;

    ASSERT_NOT_NULL(s);
    hook_server_script(s, script, 1);
    snprintf(spec, sizeof(spec),
             "webhook:http://u:" PASSWORD "@127.0.0.1:%d/hook",
             hook_server_port(s));
    unsetenv("COUNCIL_WEBHOOK_SECRET");
    res = cli_run(args);
    ASSERT_EQ_INT(res.code, 0);
    ASSERT_STR_CONTAINS(res.err, "outcome not delivered: HTTP 400");
    check_no_secrets(res.err);
    ASSERT_EQ_INT(hook_server_count(s), 1);
    {
        hook_req r = hook_server_get(s, 0);

        ASSERT_STR_EQ(r.sig, ""); /* no secret given: unsigned */
        hook_req_free(&r);
    }
    cli_result_free(&res);
    hook_server_stop(s);
}

static size_t
keep_body(char *p, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), take = size * n;

    if (have + take >= 4096)
        take = 4095 - have;
    memcpy(buf + have, p, take);
    buf[have + take] = '\0';
    return size * n;
}

/* council serve --record webhook: each run's outcome, signed with the
 * secret of the variable named by --webhook-secret-env; posted before
 * the server exits. */
TEST_T(cli_serve_posts_each_run, 60)
{
    hook_server *s = hook_server_start(SECRET);
    char spec[160], db[700], url[200] = "", body[4096] = "", *err = NULL;
    const char *args[] = {
        "serve",    "--listen", "127.0.0.1:0",          "--db",          db,
        "--record", spec,       "--webhook-secret-env", "HOOK_TEST_KEY", NULL};
    struct curl_slist *hdrs = NULL;
    cli_result res;
    hook_req r;
    long status = 0;
    CURL *c;
    int pid, i;

    ASSERT_NOT_NULL(s);
    snprintf(spec, sizeof(spec), "webhook:http://127.0.0.1:%d/serve",
             hook_server_port(s));
    snprintf(db, sizeof(db), "%s/runs.db", runner_tmpdir());
    setenv("HOOK_TEST_KEY", SECRET, 1);
    pid = cli_spawn("serve", -1, args);
    for (i = 0; i < 2000 && url[0] == '\0'; i++) {
        char *p;

        free(err);
        err = cli_stderr_of("serve");
        p = strstr(err, "listening on http://");
        if (p != NULL && strchr(p, '\n') != NULL)
            sscanf(p + strlen("listening on "), "%150s", url);
        else
            usleep(10000);
    }
    if (url[0] == '\0')
        FAIL("council serve did not start: %s", err);
    free(err);
    snprintf(url + strlen(url), sizeof(url) - strlen(url), "/v1/runs");
    c = curl_easy_init();
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"council\":\"demo\",\"input\":\"Why?\"}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    ASSERT_EQ_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    ASSERT_EQ_INT(status, 201);
    /* SIGTERM: the run in flight gets its grace, is recorded, and its
     * outcome is delivered before the process exits. */
    kill(pid, SIGTERM);
    res = cli_collect("serve", pid);
    ASSERT_EQ_INT(res.code, 0);
    check_no_secrets(res.err);
    ASSERT_EQ_INT(hook_server_count(s), 1);
    r = hook_server_get(s, 0);
    ASSERT_STR_EQ(r.path, "POST /serve");
    ASSERT_STR_EQ(r.kind, "outcome");
    ASSERT_EQ_INT(r.sig_ok, 1);
    ASSERT_STR_CONTAINS(body, r.run_id);
    ASSERT_STR_CONTAINS(r.body, "\"outcome\":{\"outcome\":\"ok\"");
    hook_req_free(&r);
    cli_result_free(&res);
    hook_server_stop(s);
}
