/* SPDX-License-Identifier: MIT */
/*
 * From a run host's death to its recorder's handle_finalize: the time
 * council takes to notice a child-process host killed mid-run and finalize
 * the run as crashed("signal SIGKILL") (the Elixir peer's "crash"
 * scenario: Process.exit(pid, :kill) -> the RecorderProcess's finalize).
 *
 * Method.  One engine, isolated runs (isolation: process) of a council on
 * the in-process mock LLM with a long latency, so a run is in flight until
 * it is killed; no spare children and a fresh child per run, so the one
 * child of this process is the run's host.  For each of N runs: start it,
 * wait until its recorder has seen run_started (the child is running the
 * run), find the child (/proc/PID/stat, ppid = this process), read the
 * monotonic clock, SIGKILL it; the recorder's handle_finalize reads the
 * clock again.  Reported: p50, p99 and max of the difference, and the
 * outcomes (all must be crashed, "signal SIGKILL").
 *
 * Most of that time is the kernel's, not council's: a killed process is
 * dead (its exit observable by anyone) only once its memory and files are
 * torn down, which grows with what it mapped (a plain child: 20 us; with
 * 8 MB touched: 400 us, here).  So the bench also watches the child's
 * pidfd, polling without sleeping, and reports from the moment the death
 * is observable to handle_finalize ("dead_to_final"): council's own part.
 *
 *   bench_crash [N]      (COUNCIL_HOST_PROGRAM names council-host)
 * Prints one JSON line.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "council.h"

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

typedef struct probe {
    atomic_int started;
    atomic_int done;
    double t_final;
    char reason[128];
    int kind;
} probe;

static int
p_init(const char *id, void *args, void **state, char *why, size_t n)
{
    (void)id;
    (void)why;
    (void)n;
    *state = args;
    return 0;
}

static int
p_event(void *state, council_event *ev)
{
    probe *p = state;

    if (council_event_type_of(ev) == COUNCIL_EV_RUN_STARTED)
        atomic_store(&p->started, 1);
    return 0;
}

static void
p_final(void *state, const council_outcome *o)
{
    probe *p = state;
    const char *r = council_outcome_reason(o);

    p->t_final = now_us();
    p->kind = council_outcome_kind_of(o);
    snprintf(p->reason, sizeof(p->reason), "%s", r != NULL ? r : "");
    atomic_store(&p->done, 1);
}

static const council_recorder_ops probe_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                               p_init, p_event, p_final, NULL};

/* The one child of this process, or -1. */
static long
the_child(void)
{
    char path[64], line[256];
    long me = (long)getpid(), found = -1;
    struct dirent *de;
    DIR *d = opendir("/proc");

    while (d != NULL && (de = readdir(d)) != NULL) {
        long pid = strtol(de->d_name, NULL, 10), ppid = 0;
        char state = 0;
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
                sscanf(rp + 2, "%c %ld", &state, &ppid);
        }
        fclose(f);
        if (ppid == me && state != 'Z')
            found = pid;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200, i, bad = 0;
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *mock;
    council_engine *eng;
    council_def *def;
    council_diag d;
    char yaml[1024];
    double *lat, *own;

    if (n < 1 || (lat = calloc((size_t)n, sizeof(double))) == NULL ||
        (own = calloc((size_t)n, sizeof(double))) == NULL)
        return 2;
    mo.latency_ms = 60000;
    if (council_mockllm_open(&mo, &mock, &d) != COUNCIL_OK)
        return 1;
    snprintf(yaml, sizeof(yaml),
             "name: crash\nisolation: process\n"
             "providers: { mock: { kind: openai, base_url: %s } }\n"
             "members: [ { name: a, provider: mock, model: m } ]\n"
             "chairman: { provider: mock, model: m }\n",
             council_mockllm_base_url(mock));
    if (council_def_load_string(yaml, strlen(yaml), "crash", &def, &d) !=
        COUNCIL_OK) {
        fprintf(stderr, "bench_crash: %s\n", d.msg);
        return 1;
    }
    eo.loop_threads = 1;
    eo.host_spares = -1;
    eo.host_runs_per_child = 1;
    if (council_engine_open(&eo, &eng) != COUNCIL_OK)
        return 1;
    for (i = 0; i < n; i++) {
        probe p;
        council_recorder_spec rec = {&probe_ops, &p};
        council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
        council_run *run;
        long pid;
        double t0, t_dead;
        int pfd;
        struct pollfd pf;

        memset(&p, 0, sizeof(p));
        ro.recorders = &rec;
        ro.n_recorders = 1;
        if (council_run_start(eng, def, "q", &ro, &run, &d) != COUNCIL_OK) {
            fprintf(stderr, "bench_crash: %s\n", d.msg);
            return 1;
        }
        while (!atomic_load(&p.started))
            usleep(200);
        /* The children of the runs before are reaped by now; the new one
         * is running this run. */
        while ((pid = the_child()) < 0)
            usleep(200);
        pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (pfd < 0) {
            perror("bench_crash: pidfd_open");
            return 1;
        }
        t0 = now_us();
        kill((pid_t)pid, SIGKILL);
        /* The moment the death is observable: poll without sleeping (a
         * sleeping poll would wake late and flatter the figure). */
        pf.fd = pfd;
        pf.events = POLLIN;
        pf.revents = 0;
        while (poll(&pf, 1, 0) == 0)
            sched_yield();
        t_dead = now_us();
        close(pfd);
        council_run_wait(run, UINT64_MAX, NULL);
        lat[i] = p.t_final - t0;
        own[i] = p.t_final - t_dead;
        if (p.kind != COUNCIL_OUTCOME_CRASHED ||
            strcmp(p.reason, "signal SIGKILL") != 0)
            bad++;
        council_run_release(run);
        /* Let the engine reap the child before the next one. */
        while (the_child() >= 0)
            usleep(200);
    }
    qsort(lat, (size_t)n, sizeof(double), cmp);
    qsort(own, (size_t)n, sizeof(double), cmp);
    printf("{\"bench\":\"crash_to_finalize\",\"runs\":%ld,\"p50_us\":%.1f,"
           "\"p99_us\":%.1f,\"max_us\":%.1f,\"dead_to_final_p50_us\":%.1f,"
           "\"dead_to_final_p99_us\":%.1f,\"dead_to_final_max_us\":%.1f,"
           "\"bad\":%ld}\n",
           n, lat[n / 2], lat[(long)((double)n * 0.99)], lat[n - 1], own[n / 2],
           own[(long)((double)n * 0.99)], own[n - 1], bad);
    council_engine_close(eng);
    council_def_free(def);
    council_mockllm_close(mock);
    free(lat);
    free(own);
    return bad != 0;
}
