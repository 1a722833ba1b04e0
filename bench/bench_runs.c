/* SPDX-License-Identifier: MIT */
/*
 * Whole council runs against an OpenAI-compatible server, the figures the
 * Node.js peer (peers/node bench.mjs) is compared on: runs/s with C runs in
 * flight, and resident memory per in-flight run against slow models.
 *
 * Method.  One engine (--engines E: E engines, runs spread over them), one
 * council (strategy rank, 4 members and a chairman on one openai provider:
 * 9 streamed calls per run), one small counting recorder per run (the
 * stand-in for the peer's per-run event log).  Throughput mode: S starter
 * threads (--starters, default 4; council_run_start waits for the loop to
 * take the run) share the C runs in flight; a recorder's handle_finalize
 * stamps the end and queues the run to its starter, which calls
 * council_run_wait + release and starts the next, until W warm-up then N
 * measured runs have ended.  Latency: from before council_run_start to
 * handle_finalize.  Hold mode (--hold): one warm-up run, VmRSS sampled,
 * then C runs started against a slow server while a thread samples VmRSS
 * and the runs in flight every 20 ms; reported: (VmRSS at the most runs in
 * flight - VmRSS before) / that many runs, and (VmHWM - before) / C.
 * Prints one JSON line; exits 1 if any run did not end ok.
 *
 * With --isolation process every run's host is a child process
 * (--runs-per-child R: 1 = a fresh process per run; default the engine's,
 * 64; --spares K); in hold mode the children's private memory
 * (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, summed over
 * this process's children when the most runs are in flight) is added to
 * the parent's VmRSS growth: "kib_per_run" is then the whole cost of an
 * isolated run in flight, and "child_private_kib_per_run" its child's part.
 *
 *   bench_runs --base-url URL [--runs N] [--concurrency C] [--warmup W]
 *              [--hold] [--label X] [--starters S] [--engines E]
 *              [--recorder-threads T] [--count-alloc]
 *              [--isolation none|process] [--runs-per-child R] [--spares K]
 *   SERVER_PIDS=1,2 (optional): the servers' CPU over the measured window.
 */
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "council.h"

#define MEMBERS 4
#define CALL_TIMEOUT_MS (600u * 1000u)

static const char *const question =
    "What are the trade-offs between writing a network service in C versus "
    "JavaScript?";

typedef struct worker worker;

/* One run in flight (or ended, waiting in its worker's done queue). */
typedef struct slot {
    council_run *run;
    worker *w;
    double t_start;
    double t_end;
    uint64_t events;
    struct slot *next; /* done queue */
} slot;

typedef struct tally {
    long ok, bad;
    uint64_t events;
    double *lat;
    long n_lat;
    double start_s; /* time spent inside council_run_start */
    char first_bad[1024];
} tally;

/* A starter thread: keeps its share of the runs in flight. */
struct worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *head, *tail; /* ended runs, oldest first */
    council_engine *eng;
    const council_def *def;
    long concurrency;
    int warm; /* warm-up: no tally, stop at the first failure */
    int failed;
    tally t;
};

/* The runs' isolation (--isolation), for start_one. */
static int isolation = COUNCIL_ISOLATION_NONE;

/* Runs still to start in the current phase, shared by the workers. */
static pthread_mutex_t claim_mu = PTHREAD_MUTEX_INITIALIZER;
static long to_start;

/* Hold mode: runs started and finalized (all workers). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t started_total;
static uint64_t finalized_total;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the counting recorder --------------------------------------------- */

static int
r_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
r_event(void *state, council_event *ev)
{
    slot *s = state;

    (void)ev;
    s->events++;
    return 0;
}

static void
r_final(void *state, const council_outcome *o)
{
    slot *s = state;

    (void)o; /* read after council_run_wait, from the run */
    s->t_end = now_s();
    s->next = NULL;
    pthread_mutex_lock(&s->w->mu);
    if (s->w->tail != NULL)
        s->w->tail->next = s;
    else
        s->w->head = s;
    s->w->tail = s;
    pthread_cond_signal(&s->w->cv);
    pthread_mutex_unlock(&s->w->mu);
    pthread_mutex_lock(&mu);
    finalized_total++;
    pthread_mutex_unlock(&mu);
}

static const council_recorder_ops rops = {COUNCIL_RECORDER_OPS_VERSION, r_init,
                                          r_event, r_final, NULL};

/* ---- /proc and rusage ---------------------------------------------------- */

/* A "Key:   123 kB" line of /proc/self/status, in KiB; -1 if absent. */
static long
status_kib(const char *key)
{
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* The private memory (Private_Clean + Private_Dirty) of every child of
 * this process, KiB; the number of children in *n. */
static long
children_private_kib(long *n)
{
    char path[64], line[256];
    long sum = 0, me = (long)getpid();
    struct dirent *de;
    DIR *d = opendir("/proc");

    *n = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        long pid = strtol(de->d_name, NULL, 10), ppid = 0;
        FILE *f;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(line, sizeof(line), f) != NULL) {
            const char *rp = strrchr(line, ')');
            if (rp != NULL)
                sscanf(rp + 2, "%*c %ld", &ppid);
        }
        fclose(f);
        if (ppid != me)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        (*n)++;
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "Private_Clean:", 14) == 0 ||
                strncmp(line, "Private_Dirty:", 14) == 0)
                sum += strtol(line + 14, NULL, 10);
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* Bytes handed out by malloc and not freed (all arenas, mmap included). */
static long
heap_kib(void)
{
    struct mallinfo2 mi = mallinfo2();

    return (long)((mi.uordblks + mi.hblkhd) / 1024);
}

/*
 * --count-alloc: the library's (and jansson's) allocations through
 * council_set_allocator, with a 16-byte size header, to split the heap in
 * use between the library and the rest (libcurl, libuv, libc).
 */
static _Atomic long lib_bytes;

static void *
c_malloc(size_t n)
{
    size_t *p = malloc(n + 16);

    if (p == NULL)
        return NULL;
    *p = n;
    atomic_fetch_add(&lib_bytes, (long)n);
    return (char *)p + 16;
}

static void
c_free(void *q)
{
    size_t *p;

    if (q == NULL)
        return;
    p = (size_t *)((char *)q - 16);
    atomic_fetch_sub(&lib_bytes, (long)*p);
    free(p);
}

static void *
c_calloc(size_t k, size_t n)
{
    void *q;

    if (n != 0 && k > SIZE_MAX / n)
        return NULL;
    q = c_malloc(k * n);
    if (q != NULL)
        memset(q, 0, k * n);
    return q;
}

static void *
c_realloc(void *q, size_t n)
{
    size_t *p, old;

    if (q == NULL)
        return c_malloc(n);
    p = (size_t *)((char *)q - 16);
    old = *p;
    p = realloc(p, n + 16);
    if (p == NULL)
        return NULL;
    *p = n;
    atomic_fetch_add(&lib_bytes, (long)n - (long)old);
    return (char *)p + 16;
}

static double
cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Busy jiffies of the whole machine (user+nice+system+irq+softirq+steal). */
static double
machine_busy_s(void)
{
    unsigned long long f[8] = {0};
    FILE *p = fopen("/proc/stat", "r");

    if (p == NULL)
        return 0;
    if (fscanf(p, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1],
               &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]) != 8)
        memset(f, 0, sizeof(f));
    fclose(p);
    return (double)(f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) /
           (double)sysconf(_SC_CLK_TCK);
}

/* utime+stime of the processes in SERVER_PIDS (comma-separated), seconds. */
static double
servers_cpu_s(void)
{
    const char *env = getenv("SERVER_PIDS");
    char buf[1024], path[64], *save = NULL, *tok;
    double total = 0;

    if (env == NULL || strlen(env) >= sizeof(buf))
        return 0;
    memcpy(buf, env, strlen(env) + 1);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char st[2048], *p;
        unsigned long ut = 0, stt = 0;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%s/stat", tok);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        n = fread(st, 1, sizeof(st) - 1, f);
        fclose(f);
        st[n] = '\0';
        p = strrchr(st, ')');
        /* after ") ": state ppid pgrp session tty tpgid flags minflt
         * cminflt majflt cmajflt utime stime */
        if (p != NULL && sscanf(p + 2,
                                "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
                                "%*u %*u %lu %lu",
                                &ut, &stt) == 2)
            total += (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    }
    return total;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* ---- the bench ------------------------------------------------------------
 */

typedef struct opts {
    const char *base_url;
    const char *label;
    int isolation;      /* COUNCIL_ISOLATION_* */
    int runs_per_child; /* 0: the engine's default */
    int spares;         /* 0: the engine's default */
    long runs, concurrency, warmup;
    int hold;
    int recorder_threads;
    int starters;
    int engines;
    int count_alloc;
} opts;

static council_def *
make_def(const char *base_url)
{
    char yaml[2048];
    council_def *def = NULL;
    council_diag d;
    int n;

    n = snprintf(yaml, sizeof(yaml),
                 "name: bench\n"
                 "strategy: rank\n"
                 "providers:\n"
                 "  p: { kind: openai, base_url: \"%s\" }\n"
                 "members:\n"
                 "  - { name: gpt, provider: p, model: openai/gpt-5.1 }\n"
                 "  - { name: gemini, provider: p, "
                 "model: google/gemini-3-pro-preview }\n"
                 "  - { name: claude, provider: p, "
                 "model: anthropic/claude-sonnet-4.5 }\n"
                 "  - { name: grok, provider: p, model: x-ai/grok-4 }\n"
                 "chairman: { provider: p, "
                 "model: google/gemini-3-pro-preview }\n"
                 "limits: { member_timeout: 120s, deadline: 600s, "
                 "retries: 2, quorum: 4 }\n",
                 base_url);
    if (n < 0 || (size_t)n >= sizeof(yaml)) {
        fprintf(stderr, "bench_runs: base URL too long\n");
        return NULL;
    }
    memset(&d, 0, sizeof(d));
    if (council_def_load_string(yaml, (size_t)n, "<bench>", &def, &d) !=
        COUNCIL_OK) {
        fprintf(stderr, "bench_runs: council: %s:%d:%d: %s\n", d.file, d.line,
                d.col, d.msg);
        return NULL;
    }
    return def;
}

static slot *
start_one(worker *w)
{
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_recorder_spec spec;
    council_diag d;
    council_err rc;
    slot *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->w = w;
    spec.ops = &rops;
    spec.args = s;
    ro.recorders = &spec;
    ro.n_recorders = 1;
    ro.isolation = isolation;
    memset(&d, 0, sizeof(d));
    s->t_start = now_s();
    rc = council_run_start(w->eng, w->def, question, &ro, &s->run, &d);
    w->t.start_s += now_s() - s->t_start;
    if (rc != COUNCIL_OK) {
        fprintf(stderr, "bench_runs: council_run_start: %s (%s)\n",
                council_strerror(rc), d.msg);
        free(s);
        return NULL;
    }
    return s;
}

static slot *
take_done(worker *w)
{
    slot *s;

    pthread_mutex_lock(&w->mu);
    while (w->head == NULL)
        pthread_cond_wait(&w->cv, &w->mu);
    s = w->head;
    w->head = s->next;
    if (w->head == NULL)
        w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Wait for the run of an ended slot, count its outcome, free it. */
static int
reap(slot *s, tally *t, int warm)
{
    const council_outcome *o = NULL;
    council_err rc = council_run_wait(s->run, CALL_TIMEOUT_MS, &o);
    int ok = rc == COUNCIL_OK && o != NULL &&
             council_outcome_kind_of(o) == COUNCIL_OUTCOME_OK;

    if (!ok && t->first_bad[0] == '\0')
        snprintf(t->first_bad, sizeof(t->first_bad), "%s",
                 rc != COUNCIL_OK ? council_strerror(rc)
                                  : council_outcome_json(o));
    if (!ok && warm)
        fprintf(stderr, "bench_runs: warm-up run failed: %s\n", t->first_bad);
    if (!warm) {
        if (ok)
            t->ok++;
        else
            t->bad++;
        t->events += s->events;
        t->lat[t->n_lat++] = s->t_end - s->t_start;
    }
    council_run_release(s->run);
    free(s);
    return ok;
}

static int
claim(void)
{
    int got = 0;

    pthread_mutex_lock(&claim_mu);
    if (to_start > 0) {
        to_start--;
        got = 1;
    }
    pthread_mutex_unlock(&claim_mu);
    return got;
}

/* A worker: keep w->concurrency runs in flight while runs are left. */
static void *
worker_main(void *arg)
{
    worker *w = arg;
    long in_flight = 0;

    while (in_flight < w->concurrency && !w->failed && claim()) {
        if (start_one(w) == NULL)
            w->failed = 1;
        else
            in_flight++;
    }
    while (in_flight > 0) {
        int ok = reap(take_done(w), &w->t, w->warm);

        in_flight--;
        if (!ok && w->warm)
            w->failed = 1;
        if (!w->failed && claim()) {
            if (start_one(w) == NULL)
                w->failed = 1;
            else
                in_flight++;
        }
    }
    return NULL;
}

/*
 * Keep c runs in flight, from `starters` threads, until n have ended.
 * Into *sum (NULL for a warm-up): the merged tally.  -1 if a start failed.
 */
static int
run_pool(council_engine **engs, int n_engs, const council_def *def, long n,
         long c, int starters, tally *sum)
{
    worker *w;
    int i, k = starters < c ? starters : (int)c, rc = 0;

    w = calloc((size_t)k, sizeof(*w));
    if (w == NULL)
        return -1;
    to_start = n;
    for (i = 0; i < k; i++) {
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        w[i].eng = engs[i % n_engs];
        w[i].def = def;
        w[i].concurrency = c / k + (i < c % k);
        w[i].warm = sum == NULL;
        w[i].t.lat = calloc((size_t)n, sizeof(double));
        if (w[i].t.lat == NULL)
            w[i].failed = 1;
    }
    for (i = 0; i < k; i++)
        pthread_create(&w[i].th, NULL, worker_main, &w[i]);
    for (i = 0; i < k; i++) {
        pthread_join(w[i].th, NULL);
        if (w[i].failed)
            rc = -1;
        if (sum != NULL) {
            memcpy(sum->lat + sum->n_lat, w[i].t.lat,
                   (size_t)w[i].t.n_lat * sizeof(double));
            sum->n_lat += w[i].t.n_lat;
            sum->ok += w[i].t.ok;
            sum->bad += w[i].t.bad;
            sum->events += w[i].t.events;
            sum->start_s += w[i].t.start_s;
            if (sum->first_bad[0] == '\0')
                memcpy(sum->first_bad, w[i].t.first_bad,
                       sizeof(sum->first_bad));
        }
        free(w[i].t.lat);
        pthread_cond_destroy(&w[i].cv);
        pthread_mutex_destroy(&w[i].mu);
    }
    free(w);
    return rc;
}

static void
json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int
parse_args(int argc, char **argv, opts *o)
{
    int i;

    o->base_url = NULL;
    o->label = "";
    o->runs = 2000;
    o->concurrency = 16;
    o->warmup = 50;
    o->hold = 0;
    o->count_alloc = 0;
    o->recorder_threads = 0;
    o->starters = 4;
    o->engines = 1;
    o->isolation = COUNCIL_ISOLATION_NONE;
    o->runs_per_child = 0;
    o->spares = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--hold") == 0) {
            o->hold = 1;
            continue;
        }
        if (strcmp(a, "--count-alloc") == 0) {
            o->count_alloc = 1;
            continue;
        }
        if (v == NULL)
            return -1;
        if (strcmp(a, "--base-url") == 0)
            o->base_url = v;
        else if (strcmp(a, "--isolation") == 0)
            o->isolation = strcmp(v, "process") == 0 ? COUNCIL_ISOLATION_PROCESS
                           : strcmp(v, "none") == 0  ? COUNCIL_ISOLATION_NONE
                                                     : -1;
        else if (strcmp(a, "--runs-per-child") == 0)
            o->runs_per_child = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--spares") == 0)
            o->spares = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--label") == 0)
            o->label = v;
        else if (strcmp(a, "--runs") == 0)
            o->runs = strtol(v, NULL, 10);
        else if (strcmp(a, "--concurrency") == 0)
            o->concurrency = strtol(v, NULL, 10);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = strtol(v, NULL, 10);
        else if (strcmp(a, "--engines") == 0)
            o->engines = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--starters") == 0)
            o->starters = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--recorder-threads") == 0)
            o->recorder_threads = (int)strtol(v, NULL, 10);
        else
            return -1;
        i++;
    }
    if (o->base_url == NULL || o->runs < 1 || o->concurrency < 1 ||
        o->warmup < 0 || o->recorder_threads < 0 || o->starters < 1 ||
        o->starters > 256 || o->engines < 1 || o->engines > 16 ||
        o->isolation < 0 || o->runs_per_child < 0 || o->spares < -1 ||
        (o->hold && o->engines != 1))
        return -1;
    return 0;
}

/* Hold mode: VmRSS and runs in flight, sampled every 20 ms. */
typedef struct sampler {
    pthread_t th;
    int stop;            /* under mu */
    uint64_t base_final; /* runs finalized before the hold */
    long peak_in;        /* most runs in flight at one sample */
    long rss_at_peak;    /* highest VmRSS while peak_in were in flight */
    long heap_at_peak;   /* malloc'd bytes in use then, KiB */
    long lib_at_peak;    /* of which the library's (--count-alloc), KiB */
    double t_peak;       /* when peak_in was first reached */
    double t0;
    council_engine *eng;
    long pending_at_peak; /* events published, not yet delivered, then */
    int children;         /* isolated: sum the children's memory */
    long child_kib_at_peak, children_at_peak;
} sampler;

static void *
sampler_main(void *arg)
{
    sampler *sp = arg;

    for (;;) {
        long in, rss;
        int stop;

        pthread_mutex_lock(&mu);
        in = (long)(started_total - (finalized_total - sp->base_final));
        stop = sp->stop;
        pthread_mutex_unlock(&mu);
        if (stop)
            break;
        rss = status_kib("VmRSS");
        if (in > sp->peak_in || (in == sp->peak_in && rss > sp->rss_at_peak)) {
            council_engine_stats st;

            sp->heap_at_peak = heap_kib();
            sp->lib_at_peak = atomic_load(&lib_bytes) / 1024;
            council_engine_stats_get(sp->eng, &st);
            sp->pending_at_peak = (long)(st.events_published - st.deliveries);
        }
        if (in > sp->peak_in || (in == sp->peak_in && rss > sp->rss_at_peak))
            if (sp->children)
                sp->child_kib_at_peak =
                    children_private_kib(&sp->children_at_peak);
        if (in > sp->peak_in) {
            sp->peak_in = in;
            sp->rss_at_peak = rss;
            sp->t_peak = now_s() - sp->t0;
        } else if (in == sp->peak_in && rss > sp->rss_at_peak) {
            sp->rss_at_peak = rss;
        }
        usleep(20 * 1000);
    }
    return NULL;
}

/* Hold mode: KiB of VmRSS per in-flight run. */
static int
hold(council_engine *eng, const council_def *def, const opts *o)
{
    worker w;
    sampler sp;
    long rss_before, heap_before, lib_before, hwm, i, c = o->concurrency;
    double t_all_in, t1;
    int rc = 0;

    if (run_pool(&eng, 1, def, 1, 1, 1, NULL) != 0)
        return 1;
    memset(&w, 0, sizeof(w));
    memset(&sp, 0, sizeof(sp));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.eng = eng;
    w.def = def;
    w.t.lat = calloc((size_t)c, sizeof(double));
    if (w.t.lat == NULL)
        return 1;
    rss_before = status_kib("VmRSS");
    heap_before = heap_kib();
    lib_before = atomic_load(&lib_bytes) / 1024;
    pthread_mutex_lock(&mu);
    sp.base_final = finalized_total;
    started_total = 0;
    pthread_mutex_unlock(&mu);
    sp.t0 = now_s();
    sp.eng = eng;
    sp.children = isolation == COUNCIL_ISOLATION_PROCESS;
    pthread_create(&sp.th, NULL, sampler_main, &sp);
    for (i = 0; i < c; i++) {
        if (start_one(&w) == NULL)
            return 1; /* the engine's close finalizes what started */
        pthread_mutex_lock(&mu);
        started_total++;
        pthread_mutex_unlock(&mu);
    }
    t_all_in = now_s() - sp.t0;
    for (i = 0; i < c; i++)
        reap(take_done(&w), &w.t, 0);
    t1 = now_s();
    pthread_mutex_lock(&mu);
    sp.stop = 1;
    pthread_mutex_unlock(&mu);
    pthread_join(sp.th, NULL);
    hwm = status_kib("VmHWM");
    qsort(w.t.lat, (size_t)w.t.n_lat, sizeof(double), cmp_double);
    printf("{\"bench\":\"runs_hold\",\"label\":");
    json_str(stdout, o->label);
    printf(",\"base_url\":");
    json_str(stdout, o->base_url);
    printf(",\"runs\":%ld,\"all_started_s\":%.3f,\"peak_in_flight\":%ld,"
           "\"peak_in_flight_at_s\":%.3f,\"rss_before_kib\":%ld,"
           "\"rss_at_peak_kib\":%ld,\"kib_per_run\":%.1f,"
           "\"heap_kib_per_run\":%.1f,\"lib_heap_kib_per_run\":%.1f,"
           "\"peak_rss_kib\":%ld,\"hwm_kib_per_run\":%.1f,"
           "\"wall_s\":%.3f,\"p50_ms\":%.1f,\"ok\":%ld,\"bad\":%ld,"
           "\"events_per_run\":%.1f,\"all_in_flight\":%s",
           c, t_all_in, sp.peak_in, sp.t_peak, rss_before, sp.rss_at_peak,
           sp.peak_in > 0
               ? (double)(sp.rss_at_peak - rss_before + sp.child_kib_at_peak) /
                     (double)sp.peak_in
               : 0,
           sp.peak_in > 0
               ? (double)(sp.heap_at_peak - heap_before) / (double)sp.peak_in
               : 0,
           sp.peak_in > 0
               ? (double)(sp.lib_at_peak - lib_before) / (double)sp.peak_in
               : 0,
           hwm, (double)(hwm - rss_before) / (double)c, t1 - sp.t0,
           w.t.lat[w.t.n_lat / 2] * 1e3, w.t.ok, w.t.bad,
           (double)w.t.events / (double)c, sp.peak_in == c ? "true" : "false");
    printf(",\"pending_events_at_peak\":%ld", sp.pending_at_peak);
    if (sp.children)
        printf(",\"isolation\":\"process\",\"children_at_peak\":%ld,"
               "\"child_private_kib_per_run\":%.1f,"
               "\"parent_kib_per_run\":%.1f",
               sp.children_at_peak,
               sp.peak_in > 0
                   ? (double)sp.child_kib_at_peak / (double)sp.peak_in
                   : 0,
               sp.peak_in > 0
                   ? (double)(sp.rss_at_peak - rss_before) / (double)sp.peak_in
                   : 0);
    if (w.t.bad > 0) {
        printf(",\"first_bad\":");
        json_str(stdout, w.t.first_bad);
    }
    printf("}\n");
    free(w.t.lat);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc != 0 || w.t.bad > 0;
}

/* Sum of the run latencies: over the wall time, the mean number of runs
 * in flight (Little's law). */
static double
lat_sum(const tally *t)
{
    double sum = 0;
    long i;

    for (i = 0; i < t->n_lat; i++)
        sum += t->lat[i];
    return sum;
}

static int
throughput(council_engine **engs, const council_def *def, const opts *o)
{
    tally t;
    double t0, t1, c0, c1, m0, m1, s0, s1, wall;
    int rc = 0;

    memset(&t, 0, sizeof(t));
    t.lat = calloc((size_t)o->runs, sizeof(double));
    if (t.lat == NULL)
        return 1;
    if (o->warmup > 0 && run_pool(engs, o->engines, def, o->warmup,
                                  o->concurrency, o->starters, NULL) != 0) {
        free(t.lat);
        return 1;
    }
    s0 = servers_cpu_s();
    m0 = machine_busy_s();
    c0 = cpu_s();
    t0 = now_s();
    if (run_pool(engs, o->engines, def, o->runs, o->concurrency, o->starters,
                 &t) != 0)
        rc = 1;
    t1 = now_s();
    c1 = cpu_s();
    m1 = machine_busy_s();
    s1 = servers_cpu_s();
    wall = t1 - t0;
    qsort(t.lat, (size_t)t.n_lat, sizeof(double), cmp_double);
    printf("{\"bench\":\"runs\",\"label\":");
    json_str(stdout, o->label);
    printf(",\"base_url\":");
    json_str(stdout, o->base_url);
    printf(",\"isolation\":\"%s\",\"runs_per_child\":%d",
           o->isolation == COUNCIL_ISOLATION_PROCESS ? "process" : "none",
           o->runs_per_child);
    printf(",\"runs\":%ld,\"concurrency\":%ld,\"engines\":%d,"
           "\"starters\":%d,\"warmup\":%ld,\"wall_s\":%.3f,\"runs_per_s\":%.1f,"
           "\"requests_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
           "\"start_call_ms\":%.3f,\"mean_in_flight\":%.1f,"
           "\"ok\":%ld,\"bad\":%ld,"
           "\"events_per_run\":%.1f,\"cpu_s\":%.2f,\"cpu_pct\":%.1f,"
           "\"peak_rss_kib\":%ld,\"machine_cpu_pct\":%.1f,"
           "\"others_cpu_pct\":%.1f",
           o->runs, o->concurrency, o->engines,
           o->starters < o->concurrency ? o->starters : (int)o->concurrency,
           o->warmup, wall, (double)o->runs / wall, (double)o->runs * 9 / wall,
           t.n_lat ? t.lat[t.n_lat / 2] * 1e3 : 0,
           t.n_lat ? t.lat[(long)((double)t.n_lat * 0.99)] * 1e3 : 0,
           t.n_lat ? t.start_s / (double)t.n_lat * 1e3 : 0, lat_sum(&t) / wall,
           t.ok, t.bad, t.n_lat ? (double)t.events / (double)t.n_lat : 0,
           c1 - c0, (c1 - c0) / wall * 100, status_kib("VmHWM"),
           (m1 - m0) / wall * 100,
           ((m1 - m0) - (c1 - c0) - (s1 - s0)) / wall * 100);
    if (getenv("SERVER_PIDS") != NULL)
        printf(",\"server_cpu_pct\":%.1f", (s1 - s0) / wall * 100);
    if (t.bad > 0) {
        printf(",\"first_bad\":");
        json_str(stdout, t.first_bad);
    }
    printf("}\n");
    free(t.lat);
    return rc != 0 || t.bad > 0 || t.ok != o->runs;
}

int
main(int argc, char **argv)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_engine *engs[16] = {NULL};
    council_def *def;
    opts o;
    int rc = 1, i;

    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_runs --base-url URL [--runs N] "
                        "[--concurrency C] [--warmup W] [--hold] [--label X] "
                        "[--starters S] [--engines E] [--recorder-threads T] "
                        "[--count-alloc] [--isolation none|process] "
                        "[--runs-per-child R] [--spares K]\n");
        return 2;
    }
    raise_nofile();
    if (o.count_alloc)
        council_set_allocator(c_malloc, c_realloc, c_calloc, c_free);
    def = make_def(o.base_url);
    if (def == NULL)
        return 2;
    eo.recorder_threads = o.recorder_threads;
    eo.host_runs_per_child = o.runs_per_child;
    eo.host_spares = o.spares;
    isolation = o.isolation;
    for (i = 0; i < o.engines; i++)
        if (council_engine_open(&eo, &engs[i]) != COUNCIL_OK) {
            fprintf(stderr, "bench_runs: cannot open the engine\n");
            goto out;
        }
    if (o.starters < o.engines)
        o.starters = o.engines; /* every engine gets runs */
    rc = o.hold ? hold(engs[0], def, &o) : throughput(engs, def, &o);
out:
    for (i = 0; i < o.engines; i++)
        council_engine_close(engs[i]);
    council_def_free(def);
    return rc;
}
