/* SPDX-License-Identifier: MIT */
/*
 * The process faults of DISTRIBUTED 5 that hit the engine's own process
 * (`council run`, `council serve`) and the child host of `council run
 * --isolation process`, through the history checker (RELIABILITY "Oracle
 * first").  The engine runs in another process, so the history is what it
 * left behind: each store of the run (SQLite and jsonl) is one recorder's
 * view (hist_store: its events, then its outcome, as the next reader
 * finds it), and the fault is recorded with the outcome it must produce:
 *   - SIGINT, SIGTERM, SIGHUP, a closed stdout: the run is cancelled and
 *     recorded (the cancel must win), in both stores alike;
 *   - SIGKILL of `council run` or `council serve`: both stores read
 *     crashed("process lost: pid N"), never running, a contiguous prefix;
 *   - SIGKILL and SIGSEGV of an isolated run's child: crashed("signal
 *     SIGKILL") / ("signal SIGSEGV") in both stores, `council run` exit 4.
 * TEST_LABELS: threaded
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check_history.h"
#include "history.h"
#include "slow_run.h"

/* The run was started by the process under test, with its two stores'
 * recorders (their ids in rec[0..1]), and is in flight: the history says
 * so before the fault. */
static void
started(hist *h, const char *id, int rec[2])
{
    unsigned tag = hist_start(h, id);

    rec[0] = hist_store_rec(h, id);
    rec[1] = hist_store_rec(h, id);
    hist_start_ack(h, tag, id, COUNCIL_OK);
}

/* Each store of run id as a recorder's view (the SQLite store's events
 * are what the bus accepted), then the checker's verdict: the jsonl
 * record must hold the same events (nothing lost between them). */
static void
check_stores(hist *h, const char *db, const char *dir, const char *id,
             const int rec[2])
{
    char jfile[800];
    size_t a, b;

    snprintf(jfile, sizeof(jfile), "%s/%s.jsonl", dir, id);
    a = hist_store(h, db, id, rec[0], 1);
    b = hist_store(h, jfile, id, rec[1], 0);
    hist_assert_clean(h);
    ASSERT_EQ_U64(b, a);
    ASSERT(a >= 2);
}

TEST_T(signals_cancel_and_record, 120)
{
    static const struct {
        int sig;
        const char *id;
    } cases[] = {{SIGINT, "int"}, {SIGTERM, "term"}, {SIGHUP, "hup"}};
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    hist *h = hist_open_case("signals_cancel_and_record");
    size_t i;

    mkdir(dir, 0700);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_result r;
        int pid = start_slow(file, db, dir, cases[i].id, 0, -1), rec[2];

        started(h, cases[i].id, rec);
        hist_fault(h, cases[i].id, "cancel", 0, "cancelled", NULL);
        kill(pid, cases[i].sig);
        r = cli_collect(cases[i].id, pid);
        if (r.code != 128 + cases[i].sig)
            FAIL("%s: exit %d; stderr: %s", cases[i].id, r.code, r.err);
        cli_result_free(&r);
        check_stores(h, db, dir, cases[i].id, rec);
    }
    hist_close(h);
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

TEST_T(closed_stdout_cancels_and_records, 90)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    hist *h = hist_open_case("closed_stdout_cancels_and_records");
    char buf[4096];
    cli_result r;
    int p[2], pid, rec[2];

    mkdir(dir, 0700);
    ASSERT_EQ_INT(pipe2(p, O_CLOEXEC), 0);
    pid = start_slow(file, db, dir, "pipe", 1, p[1]);
    close(p[1]);
    ASSERT(read(p[0], buf, sizeof(buf)) > 0);
    started(h, "pipe", rec);
    hist_fault(h, "pipe", "cancel", 0, "cancelled", NULL);
    close(p[0]); /* as `| head -1` does */
    r = cli_collect("pipe", pid);
    if (r.code != 128 + SIGPIPE)
        FAIL("exit %d; stderr: %s", r.code, r.err);
    cli_result_free(&r);
    check_stores(h, db, dir, "pipe", rec);
    hist_close(h);
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* SIGKILL cannot be caught: the next reader closes the run as crashed
 * ("process lost: pid N") in each store, each holding a contiguous prefix
 * of what the bus had accepted (the two stores may hold prefixes of
 * different lengths: an event the process had not written yet was never
 * acknowledged by it). */
TEST_T(sigkill_of_council_run, 90)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char jfile[800];
    const char *store[2];
    cli_result r;
    int pid, k;

    mkdir(dir, 0700);
    snprintf(jfile, sizeof(jfile), "%s/k9.jsonl", dir);
    store[0] = db;
    store[1] = jfile;
    pid = start_slow(file, db, dir, "k9", 0, -1);
    kill(pid, SIGKILL);
    r = cli_collect("k9", pid);
    ASSERT_EQ_INT(r.code, 128 + SIGKILL);
    cli_result_free(&r);
    /* Each store alone is the bus's view (its own history). */
    for (k = 0; k < 2; k++) {
        hist *h = hist_open_case(k == 0 ? "sigkill_of_council_run.sqlite"
                                        : "sigkill_of_council_run.jsonl");
        unsigned tag = hist_start(h, "k9");
        int rec = hist_store_rec(h, "k9");

        hist_start_ack(h, tag, "k9", COUNCIL_OK);
        hist_fault(h, "k9", "process_lost", 0, "crashed",
                   hist_crash_reason("process_lost"));
        ASSERT(hist_store(h, store[k], "k9", rec, 1) >= 2);
        hist_assert_clean(h);
        hist_close(h);
    }
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
}

/* Send sig to every child of pid (an isolated run's host, and the spare
 * waiting beside it), or with sig 0 count them; how many there were. */
static int
kill_children(int pid, int sig)
{
    char path[64], line[256];
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        long p = strtol(de->d_name, NULL, 10), ppid = 0;
        FILE *f;
        if (p <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", p);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(line, sizeof(line), f) != NULL) {
            const char *rp = strrchr(line, ')');
            if (rp != NULL)
                sscanf(rp + 2, "%*c %ld", &ppid);
        }
        fclose(f);
        if (ppid == pid && (sig == 0 || kill((pid_t)p, sig) == 0))
            n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* `council run --isolation process`: the child host killed mid-run ends
 * the run crashed with the signal's name, every event before it kept in
 * both stores, and `council run` exits 4 (crashed). */
static void
kill_isolated_child(hist *h, int sig, const char *kind, const char *id)
{
    char *file = slow_council(3000);
    char *db = tmp_path("runs.db"), *dir = tmp_path("j");
    char rdb[800], rdir[800], jfile[800];
    const char *args[] = {
        "run", "-q", "--isolation", "process",  "--record", rdb, "--record",
        rdir,  "-c", file,          "--run-id", id,         "q", NULL};
    cli_result r;
    int pid, rec[2];
    double end;

    mkdir(dir, 0700);
    snprintf(rdb, sizeof(rdb), "sqlite:%s", db);
    snprintf(rdir, sizeof(rdir), "jsonl:%s", dir);
    snprintf(jfile, sizeof(jfile), "%s/%s.jsonl", dir, id);
    pid = cli_spawn(id, -1, args);
    wait_in_flight(db, jfile, id, 2);
    /* The run's host is a child of council run; a spare may wait beside
     * it: every child gets the signal, the run's among them. */
    end = now_s() + 10 * time_mult();
    while (kill_children(pid, 0) == 0 && now_s() < end)
        usleep(10000);
    started(h, id, rec);
    hist_fault(h, id, kind, 0, "crashed", hist_crash_reason(kind));
    ASSERT(kill_children(pid, sig) > 0);
    r = cli_collect(id, pid);
    if (r.code != 4)
        FAIL("%s: exit %d, not 4 (crashed); stderr: %s", id, r.code, r.err);
    cli_result_free(&r);
    check_stores(h, db, dir, id, rec);
    free(file);
    free(db);
    free(dir);
    council_mockllm_close(mock);
    mock = NULL;
}

TEST_T(isolated_child_killed_sigkill_and_sigsegv, 120)
{
    hist *h = hist_open_case("isolated_child_killed_sigkill_and_sigsegv");

    /* A sanitizer's SIGSEGV handler in the child would turn the signal
     * into an exit status: let it die of the signal, as a production
     * build does (the sanitizers' flags, each after what was set). */
    static const char *const vars[] = {"ASAN_OPTIONS", "TSAN_OPTIONS"};
    for (size_t v = 0; v < 2; v++) {
        char opts[1024];
        const char *was = getenv(vars[v]);
        snprintf(opts, sizeof(opts), "%s%shandle_segv=0:detect_leaks=0",
                 was != NULL ? was : "", was != NULL ? ":" : "");
        setenv(vars[v], opts, 1);
    }
    kill_isolated_child(h, SIGKILL, "sigkill", "iso-kill");
    kill_isolated_child(h, SIGSEGV, "sigsegv", "iso-segv");
    hist_close(h);
}
