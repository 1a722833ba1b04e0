/* SPDX-License-Identifier: MIT */
/*
 * The jsonl recorder and its reader: complete runs checked line by line,
 * refusals (existing file, unwritable directory, bad run ids), and write
 * faults through the os seam (ENOSPC, a half write then EINTR or ENOSPC,
 * /dev/full, RLIMIT_FSIZE): the recorder reports them, is finalized with its
 * descriptor closed, and leaves a valid prefix the reader recognises.  Runs
 * of one directory are recorded from several threads at once.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/event.h"
#include "os/os.h"
#include "recorder/recorder.h"
#include "runner.h"

/* The table is static and const: read it from any thread. */
#define ops (council_recorder_jsonl())

static council_event *
ev_started(const char *run_id)
{
    json_t *d = json_pack(
        "{s:s,s:s,s:s,s:[{s:s,s:s}],s:[{s:s,s:s,s:s},{s:s,s:s,s:s}],s:I}",
        "council", "demo", "strategy", "classic", "question", "Why?",
        "messages", "role", "user", "content", "Why?", "members", "name", "a",
        "provider", "mock", "model", "m1", "name", "b", "provider", "mock",
        "model", "m2", "seed", (json_int_t)42);
    council__event_init in = {.type = COUNCIL_EV_RUN_STARTED,
                              .run_id = run_id,
                              .seq = 1,
                              .ts_us = 1700000000000000LL,
                              .data = d};

    return council__event_new(&in);
}

static council_event *
ev_delta(const char *run_id, uint64_t seq, const char *text)
{
    council__event_init in = {.type = COUNCIL_EV_MEMBER_DELTA,
                              .run_id = run_id,
                              .seq = seq,
                              .ts_us = 1700000000000000LL + (int64_t)seq,
                              .stage = "answer",
                              .member = "a",
                              .text = text,
                              .text_len = strlen(text)};

    return council__event_new(&in);
}

static council_event *
ev_completed(const char *run_id, uint64_t seq)
{
    council__event_init in = {
        .type = COUNCIL_EV_RUN_COMPLETED,
        .run_id = run_id,
        .seq = seq,
        .ts_us = 1700000000000000LL + (int64_t)seq,
        .data = json_pack("{s:{s:s}}", "result", "final", "42")};

    return council__event_new(&in);
}

/* Feed one event; returns handle_event's result. */
static int
feed(void *st, council_event *ev)
{
    int rc;

    ASSERT_NOT_NULL(ev);
    rc = ops->handle_event(st, ev);
    council_event_unref(ev);
    return rc;
}

static void *
open_rec(const char *dir, const char *run_id)
{
    char why[256] = "";
    void *st = NULL;

    ASSERT_EQ_INT(ops->version, COUNCIL_RECORDER_OPS_VERSION);
    if (ops->init(run_id, (void *)dir, &st, why, sizeof(why)) != 0)
        FAIL("init refused: %s", why);
    ASSERT_NOT_NULL(st);
    return st;
}

static void
finalize_ok(void *st)
{
    council_outcome *o = council__outcome_new(
        COUNCIL_OUTCOME_OK, json_pack("{s:s}", "final", "42"), NULL, NULL);

    ASSERT_NOT_NULL(o);
    ops->handle_finalize(st, o);
    council__outcome_free(o);
}

static char *
path_of(const char *dir, const char *run_id)
{
    static char p[512];

    snprintf(p, sizeof(p), "%s/%s.jsonl", dir, run_id);
    return p;
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ASSERT_NOT_NULL(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    ASSERT_NOT_NULL(buf);
    ASSERT_EQ_INT(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The length of the file's first line (the owner line) with its
 * newline; it must be {"owner":{...}} naming this process. */
static size_t
owner_line_len(const char *path)
{
    size_t len, n;
    char *text = slurp(path, &len), *nl = strchr(text, '\n');
    char pid[64];

    ASSERT_NOT_NULL(nl);
    *nl = '\0';
    snprintf(pid, sizeof(pid), "\"pid\":%ld,", (long)getpid());
    ASSERT(strncmp(text, "{\"owner\":{\"host\":", 17) == 0);
    ASSERT_STR_CONTAINS(text, pid);
    n = (size_t)(nl - text) + 1;
    free(text);
    return n;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

TEST(complete_run_line_by_line)
{
    const char *dir = runner_tmpdir();
    council_event *evs[8];
    council_outcome *o;
    council__jsonl_report rep;
    council_diag diag;
    char *text, *line, *save = NULL;
    size_t len;
    void *st = open_rec(dir, "run1");
    int i, n = 0;

    evs[0] = ev_started("run1");
    for (i = 1; i < 7; i++)
        evs[i] = ev_delta("run1", (uint64_t)i + 1, "tok\"en\n");
    evs[7] = ev_completed("run1", 8);
    for (i = 0; i < 8; i++) {
        ASSERT_NOT_NULL(evs[i]);
        ASSERT_EQ_INT(ops->handle_event(st, evs[i]), 0);
        if (i == 3)
            ops->handle_flush(st);
    }
    ops->handle_flush(st);
    o = council__outcome_from_terminal(evs[7]);
    ASSERT_NOT_NULL(o);
    ops->handle_finalize(st, o);

    text = slurp(path_of(dir, "run1"), &len);
    ASSERT(len > 0 && text[len - 1] == '\n');
    /* The owner line, then the events as council_event_json renders
     * them, then the outcome. */
    (void)owner_line_len(path_of(dir, "run1"));
    line = strtok_r(text, "\n", &save);
    ASSERT(strncmp(line, "{\"owner\":", 9) == 0);
    for (line = strtok_r(NULL, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (n < 8)
            ASSERT_STR_EQ(line, council_event_json(evs[n]));
        else
            ASSERT_STR_EQ(line, council_outcome_json(o));
        n++;
    }
    ASSERT_EQ_INT(n, 9);
    ASSERT_STR_CONTAINS(council_outcome_json(o), "{\"outcome\":\"ok\"");
    free(text);

    ASSERT_OK(
        council__jsonl_read(path_of(dir, "run1"), &rep, NULL, NULL, &diag));
    ASSERT_EQ_U64(rep.events, 8);
    ASSERT_EQ_INT(rep.has_outcome, 1);
    ASSERT_EQ_INT(rep.torn, 0);
    ASSERT_STR_EQ(rep.outcome, "ok");
    ASSERT_STR_EQ(rep.run_id, "run1");
    ASSERT_EQ_INT(rep.has_owner, 1);
    ASSERT_EQ_INT(rep.owner.pid, getpid());
    ASSERT(rep.owner.start >= 0);
    ASSERT(rep.owner.boot[0] != '\0');
    ASSERT_EQ_U64(rep.emitted, 0); /* complete: no "events_emitted" */
    for (i = 0; i < 8; i++)
        council_event_unref(evs[i]);
    council__outcome_free(o);
}

static int
count_lines(json_t *obj, int line, void *ud)
{
    int *n = ud;

    ASSERT(json_is_object(obj));
    ASSERT_EQ_INT(line, *n + 2); /* line 1 is the owner line */
    (*n)++;
    return 0;
}

TEST(large_run_written_in_chunks)
{
    const char *dir = runner_tmpdir();
    char text[201];
    council__jsonl_report rep;
    struct stat sb;
    void *st = open_rec(dir, "big");
    uint64_t seq;
    int lines = 0;

    memset(text, 'x', 200);
    text[200] = '\0';
    ASSERT_EQ_INT(feed(st, ev_started("big")), 0);
    for (seq = 2; seq <= 5000; seq++)
        ASSERT_EQ_INT(feed(st, ev_delta("big", seq, text)), 0);
    /* Without any flush, more than 64 KiB has reached the file already. */
    ASSERT_EQ_INT(stat(path_of(dir, "big"), &sb), 0);
    ASSERT(sb.st_size >= 64 * 1024);
    ASSERT_EQ_INT(feed(st, ev_completed("big", 5001)), 0);
    finalize_ok(st);
    ASSERT_OK(council__jsonl_read(path_of(dir, "big"), &rep, count_lines,
                                  &lines, NULL));
    ASSERT_EQ_U64(rep.events, 5001);
    ASSERT_EQ_INT(lines, 5002);
}

TEST(refuses_existing_file)
{
    const char *dir = runner_tmpdir();
    char why[256] = "";
    void *st = NULL;

    write_file(path_of(dir, "dup"), "keep me\n");
    ASSERT_NE_INT(ops->init("dup", (void *)dir, &st, why, sizeof(why)), 0);
    ASSERT_NULL(st);
    ASSERT_STR_CONTAINS(why, "jsonl: ");
    ASSERT_STR_CONTAINS(why, "dup.jsonl already exists");
    {
        size_t len;
        char *t = slurp(path_of(dir, "dup"), &len);

        ASSERT_STR_EQ(t, "keep me\n"); /* untouched */
        free(t);
    }
}

TEST(refuses_unwritable_directory)
{
    const char *dir = runner_tmpdir();
    char file[512], under[600], missing[600];
    char why[256] = "";
    void *st = NULL;
    council__os_fault f = {.call = COUNCIL__OS_OPEN, .nth = 1, .err = EACCES};

    /* A "directory" that is a regular file. */
    snprintf(file, sizeof(file), "%s/plain", dir);
    write_file(file, "x");
    snprintf(under, sizeof(under), "%s/plain/sub", dir);
    ASSERT_NE_INT(ops->init("r", file, &st, why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "jsonl: cannot write to ");
    ASSERT_STR_CONTAINS(why, "Not a directory");
    ASSERT_NE_INT(ops->init("r", under, &st, why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, under);
    /* A directory that does not exist. */
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    ASSERT_NE_INT(ops->init("r", missing, &st, why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "No such file or directory");
    /* EACCES through the seam (tests run as root: mode bits do not stop
     * writes). */
    council__os_fault_set(&f);
    ASSERT_NE_INT(ops->init("r", (void *)dir, &st, why, sizeof(why)), 0);
    council__os_restore();
    ASSERT_STR_CONTAINS(why, dir);
    ASSERT_STR_CONTAINS(why, "Permission denied");
    /* /proc takes no new files. */
    ASSERT_NE_INT(ops->init("r", "/proc", &st, why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "jsonl: cannot write to /proc: ");
    ASSERT_NULL(st);
    ASSERT_EQ_INT(access(path_of(dir, "r"), F_OK), -1);
}

TEST(refuses_bad_run_ids)
{
    const char *bad[] = {"a/b", ".", "..", "", "/abs"};
    char why[256];
    void *st = NULL;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        ASSERT_NE_INT(
            ops->init(bad[i], (void *)runner_tmpdir(), &st, why, sizeof(why)),
            0);
        ASSERT_STR_CONTAINS(why, "cannot name a file");
    }
    ASSERT_NE_INT(ops->init("ok", NULL, &st, why, sizeof(why)), 0);
    ASSERT_STR_CONTAINS(why, "no directory");
    ASSERT_NULL(st);
}

/* Three events, each flushed alone so each is one write. */
static void
three_flushed(void *st, const char *id, int *rcs)
{
    rcs[0] = feed(st, ev_started(id));
    ops->handle_flush(st);
    rcs[1] = feed(st, ev_delta(id, 2, "two"));
    ops->handle_flush(st);
    rcs[2] = feed(st, ev_delta(id, 3, "three"));
    ops->handle_flush(st);
}

TEST(disk_full_on_third_write)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {
        .call = COUNCIL__OS_WRITE, .nth = 3, .err = ENOSPC, .persistent = 1};
    council__jsonl_report rep;
    council_diag diag;
    int rcs[3];
    void *st = open_rec(dir, "full"); /* the owner line: write 0 */

    council__os_fault_set(&f);
    three_flushed(st, "full", rcs);
    ASSERT_EQ_INT(rcs[0], 0);
    ASSERT_EQ_INT(rcs[1], 0);
    /* The third write failed in the flush; every later event reports. */
    ASSERT_NE_INT(feed(st, ev_delta("full", 4, "four")), 0);
    ASSERT_NE_INT(feed(st, ev_completed("full", 5)), 0);
    finalize_ok(st); /* the runner checks that the fd was closed */
    ASSERT(council__os_fault_hits() >= 3);
    council__os_restore();

    ASSERT_EQ_INT(
        council__jsonl_read(path_of(dir, "full"), &rep, NULL, NULL, &diag),
        COUNCIL_EPARSE);
    ASSERT_EQ_U64(rep.events, 2);
    ASSERT_EQ_INT(rep.has_outcome, 0);
    ASSERT_EQ_INT(rep.torn, 0);
    ASSERT_EQ_INT(rep.has_owner, 1);
    ASSERT_STR_CONTAINS(diag.msg, "no outcome line");
}

TEST(transient_disk_full_recovers)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {.call = COUNCIL__OS_WRITE, .nth = 3, .err = ENOSPC};
    council__jsonl_report rep;
    int rcs[3];
    void *st = open_rec(dir, "blip");

    council__os_fault_set(&f);
    three_flushed(st, "blip", rcs);
    /* The backlog is written with the next event: nothing is lost. */
    ASSERT_EQ_INT(feed(st, ev_delta("blip", 4, "four")), 0);
    ASSERT_EQ_INT(feed(st, ev_completed("blip", 5)), 0);
    finalize_ok(st);
    ASSERT_EQ_INT(council__os_fault_hits(), 1);
    council__os_restore();
    ASSERT_OK(
        council__jsonl_read(path_of(dir, "blip"), &rep, NULL, NULL, NULL));
    ASSERT_EQ_U64(rep.events, 5);
}

TEST(half_write_then_eintr)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {
        .call = COUNCIL__OS_WRITE, .nth = 2, .err = EINTR, .half = 1};
    council_event *e1 = ev_started("intr");
    council_event *e2 = ev_delta("intr", 2, "interrupted half way");
    council__jsonl_report rep;
    struct stat sb;
    void *st = open_rec(dir, "intr");

    council__os_fault_set(&f);
    ASSERT_EQ_INT(ops->handle_event(st, e1), 0);
    ops->handle_flush(st);
    ASSERT_EQ_INT(ops->handle_event(st, e2), 0);
    ops->handle_flush(st); /* half a line, EINTR, then the rest */
    ASSERT_EQ_INT(council__os_fault_hits(), 2);
    /* Within that one flush both lines reached the file whole. */
    ASSERT_EQ_INT(stat(path_of(dir, "intr"), &sb), 0);
    ASSERT_EQ_INT(sb.st_size, owner_line_len(path_of(dir, "intr")) +
                                  strlen(council_event_json(e1)) +
                                  strlen(council_event_json(e2)) + 2);
    ASSERT_EQ_INT(feed(st, ev_completed("intr", 3)), 0);
    finalize_ok(st);
    council__os_restore();
    ASSERT_OK(
        council__jsonl_read(path_of(dir, "intr"), &rep, NULL, NULL, NULL));
    ASSERT_EQ_U64(rep.events, 3);
    council_event_unref(e1);
    council_event_unref(e2);
}

TEST(half_write_then_disk_full_truncates_torn_line)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {.call = COUNCIL__OS_WRITE,
                           .nth = 1,
                           .err = ENOSPC,
                           .half = 1,
                           .persistent = 1};
    council_event *first = ev_started("cut");
    council__jsonl_report rep;
    struct stat sb;
    int rcs[3];
    void *st = open_rec(dir, "cut");

    ASSERT_EQ_INT(ops->handle_event(st, first), 0);
    ops->handle_flush(st);
    /* The recorder's 2nd write writes half, then the disk is full. */
    council__os_fault_set(&f);
    rcs[0] = feed(st, ev_delta("cut", 2, "a long line cut in the middle"));
    ops->handle_flush(st); /* half of line 2, then ENOSPC */
    rcs[1] = feed(st, ev_completed("cut", 3));
    ASSERT_EQ_INT(rcs[0], 0);
    ASSERT_NE_INT(rcs[1], 0);
    finalize_ok(st);
    council__os_restore();
    /* The half line was cut back: the file is exactly the owner line and
     * event 1 (the outcome line could not be written either). */
    ASSERT_EQ_INT(stat(path_of(dir, "cut"), &sb), 0);
    ASSERT_EQ_INT(sb.st_size, owner_line_len(path_of(dir, "cut")) +
                                  strlen(council_event_json(first)) + 1);
    ASSERT_EQ_INT(
        council__jsonl_read(path_of(dir, "cut"), &rep, NULL, NULL, NULL),
        COUNCIL_EPARSE);
    ASSERT_EQ_U64(rep.events, 1);
    ASSERT_EQ_INT(rep.torn, 0);
    council_event_unref(first);
}

static int
failing_ftruncate(int fd, off_t len)
{
    (void)fd;
    (void)len;
    errno = EIO;
    return -1;
}

TEST(torn_line_left_is_detected)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {.call = COUNCIL__OS_WRITE,
                           .nth = 2,
                           .err = ENOSPC,
                           .half = 1,
                           .persistent = 1};
    council__jsonl_report rep;
    council_diag diag;
    int rcs[3];
    void *st = open_rec(dir, "torn"); /* the owner line is written */

    council__os_fault_set(&f);
    council__os.ftruncate = failing_ftruncate;
    three_flushed(st, "torn", rcs);
    finalize_ok(st);
    council__os_restore();
    ASSERT_EQ_INT(
        council__jsonl_read(path_of(dir, "torn"), &rep, NULL, NULL, &diag),
        COUNCIL_EPARSE);
    ASSERT_EQ_U64(rep.events, 1);
    ASSERT_EQ_INT(rep.torn, 1);
    ASSERT_EQ_INT(diag.line, 3); /* owner, event 1, torn event 2 */
    ASSERT_STR_CONTAINS(diag.msg, "torn last line");
    ASSERT_STR_CONTAINS(diag.file, "torn.jsonl");
}

static int
open_dev_full(const char *path, int flags, mode_t mode)
{
    size_t n = strlen(path);

    if (n > 6 && strcmp(path + n - 6, ".jsonl") == 0)
        return open("/dev/full", O_WRONLY | O_CLOEXEC);
    return open(path, flags, mode);
}

TEST(dev_full)
{
    void *st;
    int rcs[3];

    council__os.open = open_dev_full;
    st = open_rec(runner_tmpdir(), "devfull");
    three_flushed(st, "devfull", rcs);
    /* The owner line could not be written at init: every event reports
     * that the file lags behind. */
    ASSERT_NE_INT(rcs[0], 0);
    ASSERT_NE_INT(rcs[1], 0);
    ASSERT_NE_INT(rcs[2], 0);
    ASSERT_NE_INT(feed(st, ev_completed("devfull", 4)), 0);
    finalize_ok(st);
    council__os_restore();
}

TEST(file_size_limit)
{
    const char *dir = runner_tmpdir();
    struct sigaction sa;
    struct rlimit old, lim;
    council__jsonl_report rep;
    struct stat sb;
    void *st = open_rec(dir, "lim");
    uint64_t seq;
    int failures = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    ASSERT_EQ_INT(sigaction(SIGXFSZ, &sa, NULL), 0);
    ASSERT_EQ_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000;
    ASSERT_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    failures += feed(st, ev_started("lim")) != 0;
    ops->handle_flush(st);
    for (seq = 2; seq <= 40; seq++) {
        failures += feed(st, ev_delta("lim", seq, "some words")) != 0;
        ops->handle_flush(st);
    }
    finalize_ok(st);
    ASSERT_EQ_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
    ASSERT(failures > 0);
    /* A short write then EFBIG left a torn line, cut back at finalize;
     * the backlog was dropped, and the outcome line (short) fitted in
     * what the cut freed: the record says how the run ended, and that it
     * holds fewer events than the 40 the run emitted. */
    ASSERT_EQ_INT(stat(path_of(dir, "lim"), &sb), 0);
    ASSERT(sb.st_size <= 1000);
    ASSERT_OK(council__jsonl_read(path_of(dir, "lim"), &rep, NULL, NULL, NULL));
    ASSERT_EQ_INT(rep.torn, 0);
    ASSERT_EQ_INT(rep.has_outcome, 1);
    ASSERT_STR_EQ(rep.outcome, "ok");
    ASSERT_EQ_U64(rep.emitted, 40);
    ASSERT(rep.events > 1 && rep.events < 40);
    /* A reader's record says so. */
    {
        council_store *s = NULL;
        char *text = NULL;
        json_t *j;

        ASSERT_OK(council_store_open(path_of(dir, "lim"),
                                     COUNCIL_STORE_READONLY, &s, NULL));
        ASSERT_OK(council_store_run(s, "lim", &text, NULL));
        j = json_loads(text, 0, NULL);
        ASSERT_STR_EQ(json_string_value(json_object_get(j, "outcome")), "ok");
        ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events")),
                      rep.events);
        ASSERT_EQ_INT(json_integer_value(json_object_get(j, "events_emitted")),
                      40);
        ASSERT(json_is_true(json_object_get(j, "incomplete")));
        json_decref(j);
        council_free(text);
        council_store_close(s);
    }
}

/* Writes fail from the second event on (the fault injector, ENOSPC),
 * then succeed again at finalize: the backlog and the outcome go out,
 * whole; with the backlog given up (past 8 MiB), the outcome line goes
 * alone with "events_emitted". */
TEST_T(full_then_room_at_finalize, 60)
{
    const char *dir = runner_tmpdir();
    council__os_fault f = {
        .call = COUNCIL__OS_WRITE, .nth = 1, .err = ENOSPC, .persistent = 1};
    council__jsonl_report rep;
    char big[4097];
    void *st;
    uint64_t seq;

    memset(big, 'y', 4096);
    big[4096] = '\0';
    st = open_rec(dir, "back");
    ASSERT_EQ_INT(feed(st, ev_started("back")), 0);
    ops->handle_flush(st);
    council__os_fault_set(&f);
    for (seq = 2; seq <= 10; seq++) {
        /* Buffered, then the flush fails: the later ones report it. */
        ASSERT_EQ_INT(feed(st, ev_delta("back", seq, "x")) != 0, seq > 2);
        ops->handle_flush(st);
    }
    council__os_restore();
    /* Still behind (the terminal line waits for finalize, which catches
     * up). */
    ASSERT_NE_INT(feed(st, ev_completed("back", 11)), 0);
    finalize_ok(st);
    ASSERT_OK(
        council__jsonl_read(path_of(dir, "back"), &rep, NULL, NULL, NULL));
    ASSERT_EQ_U64(rep.events, 11);
    ASSERT_EQ_U64(rep.emitted, 0); /* complete */

    st = open_rec(dir, "gone");
    ASSERT_EQ_INT(feed(st, ev_started("gone")), 0);
    ops->handle_flush(st);
    council__os_fault_set(&f);
    for (seq = 2; seq <= 2100; seq++) /* 8 MiB of 4 KiB lines */
        (void)feed(st, ev_delta("gone", seq, big));
    council__os_restore();
    ASSERT_NE_INT(feed(st, ev_completed("gone", 2101)), 0);
    finalize_ok(st);
    ASSERT_OK(
        council__jsonl_read(path_of(dir, "gone"), &rep, NULL, NULL, NULL));
    ASSERT_EQ_U64(rep.events, 1);
    ASSERT_STR_EQ(rep.outcome, "ok");
    ASSERT_EQ_U64(rep.emitted, 2101);
}

/* ---- the reader on hand-made files ----------------------------------- */

static council_err
read_text(const char *text, council__jsonl_report *rep, council_diag *diag)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/hand.jsonl", runner_tmpdir());
    write_file(p, text);
    return council__jsonl_read(p, rep, NULL, NULL, diag);
}

#define E(seq) "{\"type\":\"member_delta\",\"run_id\":\"x\",\"seq\":" #seq "}\n"
#define OUT "{\"outcome\":\"error\",\"reason\":\"boom\"}\n"

TEST(reader_checks)
{
    council__jsonl_report rep;
    council_diag diag;
    char missing[512];

    ASSERT_OK(read_text(E(1) E(2) OUT, &rep, &diag));
    ASSERT_STR_EQ(rep.outcome, "error");
    ASSERT_EQ_U64(rep.events, 2);

    ASSERT_EQ_INT(read_text(E(1) E(3) OUT, &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 2);
    ASSERT_STR_CONTAINS(diag.msg, "seq 3 where 2 was expected");
    ASSERT_EQ_U64(rep.events, 1);

    ASSERT_EQ_INT(read_text(E(2) OUT, &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 1);

    ASSERT_EQ_INT(read_text(E(1) "{\"type\":\"mem\n" OUT, &rep, &diag),
                  COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 2);
    ASSERT_STR_CONTAINS(diag.msg, "not a JSON object");

    ASSERT_EQ_INT(read_text(E(1) OUT E(2), &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 3);
    ASSERT_STR_CONTAINS(diag.msg, "follows the outcome");
    ASSERT_EQ_INT(rep.has_outcome, 0);

    ASSERT_EQ_INT(read_text(E(1) OUT OUT, &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 3);

    ASSERT_EQ_INT(read_text(E(1) "{\"type\":\"member_delta\",\"run_id\":"
                                 "\"y\",\"seq\":2}\n" OUT,
                            &rep, &diag),
                  COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(diag.msg, "another run");

    ASSERT_EQ_INT(read_text(E(1) "{\"type\":\"bogus\",\"run_id\":\"x\","
                                 "\"seq\":2}\n",
                            &rep, &diag),
                  COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(diag.msg, "not an event");

    ASSERT_EQ_INT(read_text(E(1) "{\"type\":\"member_de", &rep, &diag),
                  COUNCIL_EPARSE);
    ASSERT_EQ_INT(rep.torn, 1);
    ASSERT_EQ_INT(diag.line, 2);

    ASSERT_EQ_INT(read_text("", &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_U64(rep.events, 0);
    ASSERT_STR_CONTAINS(diag.msg, "no outcome line");

    ASSERT_EQ_INT(read_text("\n", &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(read_text("[1]\n", &rep, &diag), COUNCIL_EPARSE);
    /* JSON that is not an object is bad input, not "out of memory"
     * (issue 13: `runs show` said so for a line `42`). */
    ASSERT_EQ_INT(read_text(E(1) "42\n" OUT, &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 2);
    ASSERT_EQ_INT(rep.bad_line, 2);
    ASSERT_STR_CONTAINS(diag.msg, "not a JSON object");
    ASSERT_EQ_INT(read_text("\"{\"\n}", &rep, &diag), COUNCIL_EPARSE);
    ASSERT_EQ_INT(diag.line, 1);
    ASSERT_STR_CONTAINS(diag.msg, "not a JSON object");
    ASSERT_EQ_INT(read_text("\x01\x02\n", &rep, &diag), COUNCIL_EPARSE);

    snprintf(missing, sizeof(missing), "%s/none.jsonl", runner_tmpdir());
    ASSERT_EQ_INT(council__jsonl_read(missing, &rep, NULL, NULL, &diag),
                  COUNCIL_ENOTFOUND);
}

static int
stop_at_two(json_t *obj, int line, void *ud)
{
    (void)obj;
    (void)ud;
    return line == 2;
}

TEST(reader_callback_stops)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/s.jsonl", runner_tmpdir());
    write_file(p, E(1) E(2) E(3) OUT);
    ASSERT_EQ_INT(council__jsonl_read(p, NULL, stop_at_two, NULL, NULL),
                  COUNCIL_ECANCELED);
}

/* ---- several runs of one directory at once ---------------------------- */

static const char *par_dir; /* set before the threads start */

static void *
run_thread(void *arg)
{
    char id[32];
    void *st;
    uint64_t seq;

    snprintf(id, sizeof(id), "par-%d", (int)(intptr_t)arg);
    st = open_rec(par_dir, id);
    ASSERT_EQ_INT(feed(st, ev_started(id)), 0);
    for (seq = 2; seq < 2000; seq++) {
        ASSERT_EQ_INT(feed(st, ev_delta(id, seq, "a fairly ordinary token")),
                      0);
        if (seq % 13 == 0)
            ops->handle_flush(st);
    }
    ASSERT_EQ_INT(feed(st, ev_completed(id, 2000)), 0);
    finalize_ok(st);
    return NULL;
}

TEST_T(concurrent_runs_one_directory, 60)
{
    pthread_t th[4];
    council__jsonl_report rep;
    char id[32];
    int i;

    par_dir = runner_tmpdir();
    for (i = 0; i < 4; i++)
        ASSERT_EQ_INT(
            pthread_create(&th[i], NULL, run_thread, (void *)(intptr_t)i), 0);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "par-%d", i);
        ASSERT_OK(council__jsonl_read(path_of(runner_tmpdir(), id), &rep, NULL,
                                      NULL, NULL));
        ASSERT_EQ_U64(rep.events, 2000);
        ASSERT_STR_EQ(rep.run_id, id);
    }
}
