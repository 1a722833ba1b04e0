/* SPDX-License-Identifier: MIT */
/*
 * Shared by the tests that drive `council run` as a user would and read
 * its stores afterwards (test_orphans.c, test_faults_cli.c): a council on
 * a mock LLM (in the test's process, on loopback) slow enough that a run
 * is in flight when it is interrupted, a run started recorded to a SQLite
 * store and a jsonl directory, and a wait until it is in flight.  Static
 * functions: each test file includes this once.
 */
#ifndef COUNCIL_TEST_SLOW_RUN_H
#define COUNCIL_TEST_SLOW_RUN_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "council.h"
#include "runner.h"

/* The mock LLM slow_council started (closed by the test). */
static council_mockllm *mock;

static char *
tmp_path(const char *name)
{
    char *p = malloc(700);

    snprintf(p, 700, "%s/%s", runner_tmpdir(), name);
    return p;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
time_mult(void)
{
    const char *m = getenv("COUNCIL_TEST_TIMEOUT_MULTIPLIER");
    double x = m != NULL ? atof(m) : 1.0;

    return x >= 1.0 ? x : 1.0;
}

/* A council of three members on a mock LLM that waits latency_ms before
 * each answer: a run is in flight for about three times that. */
static char *
slow_council(uint64_t latency_ms)
{
    council_mockllm_opts o = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_diag d;
    char *file = tmp_path("council.yaml");
    FILE *f;

    o.seed = 7;
    o.latency_ms = latency_ms;
    o.tokens_per_sec = 200;
    if (council_mockllm_open(&o, &mock, &d) != COUNCIL_OK)
        FAIL("mock-llm: %s", d.msg);
    f = fopen(file, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f,
            "name: slow\n"
            "providers:\n"
            "  mock: { kind: openai, base_url: %s }\n"
            "members:\n"
            "  - { name: a, provider: mock, model: mock-a }\n"
            "  - { name: b, provider: mock, model: mock-b }\n"
            "  - { name: c, provider: mock, model: mock-c }\n"
            "chairman: { provider: mock, model: mock-chair }\n"
            "limits: { quorum: 2, member_timeout: 60s, deadline: 120s }\n",
            council_mockllm_base_url(mock));
    fclose(f);
    return file;
}

/* The first column of the first row of a query on db, as text ("NULL"
 * for NULL, "" when there is no row). */
static char *
sql_text(const char *db, const char *q)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;

    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 5000);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = strdup(sqlite3_column_type(st, 0) == SQLITE_NULL
                           ? "NULL"
                           : (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v != NULL ? v : strdup("");
}

static long
count_lines(const char *path)
{
    char *t = cli_slurp(path);
    long n = 0;

    for (char *p = t; *p != '\0'; p++)
        n += *p == '\n';
    free(t);
    return n;
}

/* Wait until run id has at least n events in db and (if jsonl) its file
 * has the owner line and n events: the run is in flight. */
static void
wait_in_flight(const char *db, const char *jsonl, const char *id, long n)
{
    double end = now_s() + 20 * time_mult();
    char q[256];

    snprintf(q, sizeof(q), "SELECT events FROM runs WHERE run_id='%s'", id);
    for (;;) {
        char *v = sql_text(db, q);
        long got = strtol(v, NULL, 10);

        free(v);
        if (got >= n && (jsonl == NULL || count_lines(jsonl) >= n + 1))
            return;
        if (now_s() > end)
            FAIL("run %s did not get %ld events", id, n);
        usleep(10000);
    }
}

/* Start `council run` on the slow council, recorded to db and dir, as id;
 * wait until it is in flight. */
static int
start_slow(const char *file, const char *db, const char *dir, const char *id,
           int json, int out_fd)
{
    char rdb[800], rdir[800], jfile[800];
    int pid;

    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    snprintf(rdir, sizeof(rdir), "jsonl:%s", dir);
    snprintf(jfile, sizeof(jfile), "%s/%s.jsonl", dir, id);
    if (json) {
        const char *args[] = {"run",      "--json", "--record", rdb,
                              "--record", rdir,     "-c",       file,
                              "--run-id", id,       "q",        NULL};
        pid = cli_spawn(id, out_fd, args);
    } else {
        const char *args[] = {"run", "-q", "--record", rdb, "--record", rdir,
                              "-c",  file, "--run-id", id,  "q",        NULL};
        pid = cli_spawn(id, out_fd, args);
    }
    wait_in_flight(db, jfile, id, 2);
    return pid;
}

#endif
