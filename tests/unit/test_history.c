/* SPDX-License-Identifier: MIT */
/*
 * The history checker can fail (tests/support/check_history.h): a clean
 * hand-written history passes, and each mutation of it that breaks one
 * invariant (a missing or double finalize, a gap, a delivery after
 * finalize, a wrong crash reason, a lost event, a crash reported although
 * a terminal was emitted, ...) is reported with the words that name it.
 * And the writer (history.h) keeps lines whole under concurrent writers.
 * TEST_LABELS: threaded
 */
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "check_history.h"
#include "history.h"
#include "runner.h"

/* Seven runs: A ok with two recorders; B crashed by a sigkill; C wrote
 * its terminal, then was killed (terminal wins); D refused by its second
 * recorder; E cancelled (the cancel won); F failed with an error; G in
 * flight at an engine shutdown. */
static const char *const base[] = {
    "{\"r\":\"hist\",\"t\":1,\"v\":1,\"pid\":1,\"wall_us\":1,\"name\":\"b\"}",
    "{\"r\":\"note\",\"key\":\"seed\",\"value\":\"42\"}",
    "{\"r\":\"start\",\"tag\":1,\"run\":null}",
    "{\"r\":\"init\",\"run\":\"A\",\"rec\":1,\"ok\":true,\"why\":null}",
    "{\"r\":\"init\",\"run\":\"A\",\"rec\":2,\"ok\":true,\"why\":null}",
    "{\"r\":\"emit\",\"run\":\"A\",\"seq\":1,\"type\":\"run_started\"}",
    "{\"r\":\"start_ack\",\"tag\":1,\"run\":\"A\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"A\",\"seq\":2,\"type\":\"member_delta\"}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":1,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":2,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"emit\",\"run\":\"A\",\"seq\":3,\"type\":\"run_completed\","
    "\"class\":\"ok\"}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":1,\"seq\":2,\"type\":"
    "\"member_delta\",\"rc\":0}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":1,\"seq\":3,\"type\":"
    "\"run_completed\",\"rc\":0}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":2,\"seq\":2,\"type\":"
    "\"member_delta\",\"rc\":-1}",
    "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":2,\"seq\":3,\"type\":"
    "\"run_completed\",\"rc\":0}",
    "{\"r\":\"finalize\",\"run\":\"A\",\"rec\":1,\"kind\":\"ok\","
    "\"reason\":null}",
    "{\"r\":\"finalize\",\"run\":\"A\",\"rec\":2,\"kind\":\"ok\","
    "\"reason\":null}",
    "{\"r\":\"outcome\",\"run\":\"A\",\"kind\":\"ok\",\"reason\":null}",
    /* B */
    "{\"r\":\"start\",\"tag\":2,\"run\":\"B\"}",
    "{\"r\":\"init\",\"run\":\"B\",\"rec\":3,\"ok\":true,\"why\":null}",
    "{\"r\":\"emit\",\"run\":\"B\",\"seq\":1,\"type\":\"run_started\"}",
    "{\"r\":\"start_ack\",\"tag\":2,\"run\":\"B\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"B\",\"seq\":2,\"type\":\"member_delta\"}",
    "{\"r\":\"deliver\",\"run\":\"B\",\"rec\":3,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"fault\",\"run\":\"B\",\"kind\":\"sigkill\",\"at_seq\":2,"
    "\"expect\":\"crashed\",\"reason\":\"signal SIGKILL\",\"by\":\"test\"}",
    "{\"r\":\"deliver\",\"run\":\"B\",\"rec\":3,\"seq\":2,\"type\":"
    "\"member_delta\",\"rc\":0}",
    "{\"r\":\"finalize\",\"run\":\"B\",\"rec\":3,\"kind\":\"crashed\","
    "\"reason\":\"signal SIGKILL\"}",
    /* C */
    "{\"r\":\"start\",\"tag\":3,\"run\":null}",
    "{\"r\":\"init\",\"run\":\"C\",\"rec\":4,\"ok\":true,\"why\":null}",
    "{\"r\":\"start_ack\",\"tag\":3,\"run\":\"C\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"C\",\"seq\":1,\"type\":\"run_started\"}",
    "{\"r\":\"emit\",\"run\":\"C\",\"seq\":2,\"type\":\"run_completed\","
    "\"class\":\"ok\"}",
    "{\"r\":\"fault\",\"run\":\"C\",\"kind\":\"sigkill\",\"at_seq\":2,"
    "\"expect\":\"crashed\",\"reason\":\"signal SIGKILL\",\"by\":\"test\"}",
    "{\"r\":\"deliver\",\"run\":\"C\",\"rec\":4,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"deliver\",\"run\":\"C\",\"rec\":4,\"seq\":2,\"type\":"
    "\"run_completed\",\"rc\":0}",
    "{\"r\":\"finalize\",\"run\":\"C\",\"rec\":4,\"kind\":\"ok\","
    "\"reason\":null}",
    /* D */
    "{\"r\":\"start\",\"tag\":4,\"run\":\"D\"}",
    "{\"r\":\"init\",\"run\":\"D\",\"rec\":5,\"ok\":true,\"why\":null}",
    "{\"r\":\"init\",\"run\":\"D\",\"rec\":6,\"ok\":false,\"why\":\"no\"}",
    "{\"r\":\"fault\",\"run\":\"D\",\"kind\":\"rec_refuse\",\"at_seq\":0,"
    "\"expect\":\"refused\",\"reason\":null,\"by\":\"recorder 6\"}",
    "{\"r\":\"finalize\",\"run\":\"D\",\"rec\":5,\"kind\":\"error\","
    "\"reason\":\"recorder 1 refused: no\"}",
    "{\"r\":\"start_ack\",\"tag\":4,\"run\":\"D\",\"err\":"
    "\"COUNCIL_EREFUSED\"}",
    /* E */
    "{\"r\":\"start\",\"tag\":5,\"run\":null}",
    "{\"r\":\"init\",\"run\":\"E\",\"rec\":7,\"ok\":true,\"why\":null}",
    "{\"r\":\"start_ack\",\"tag\":5,\"run\":\"E\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"E\",\"seq\":1,\"type\":\"run_started\"}",
    "{\"r\":\"fault\",\"run\":\"E\",\"kind\":\"cancel\",\"at_seq\":1,"
    "\"expect\":\"cancelled\",\"reason\":null,\"by\":\"test\"}",
    "{\"r\":\"emit\",\"run\":\"E\",\"seq\":2,\"type\":\"run_failed\","
    "\"class\":\"cancelled\"}",
    "{\"r\":\"deliver\",\"run\":\"E\",\"rec\":7,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"deliver\",\"run\":\"E\",\"rec\":7,\"seq\":2,\"type\":"
    "\"run_failed\",\"rc\":0}",
    "{\"r\":\"finalize\",\"run\":\"E\",\"rec\":7,\"kind\":\"cancelled\","
    "\"reason\":null}",
    /* F */
    "{\"r\":\"start\",\"tag\":6,\"run\":null}",
    "{\"r\":\"init\",\"run\":\"F\",\"rec\":8,\"ok\":true,\"why\":null}",
    "{\"r\":\"start_ack\",\"tag\":6,\"run\":\"F\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"F\",\"seq\":1,\"type\":\"run_failed\","
    "\"class\":\"error\",\"reason\":\"quorum lost\"}",
    "{\"r\":\"deliver\",\"run\":\"F\",\"rec\":8,\"seq\":1,\"type\":"
    "\"run_failed\",\"rc\":0}",
    "{\"r\":\"finalize\",\"run\":\"F\",\"rec\":8,\"kind\":\"error\","
    "\"reason\":\"quorum lost\"}",
    /* G */
    "{\"r\":\"start\",\"tag\":7,\"run\":null}",
    "{\"r\":\"init\",\"run\":\"G\",\"rec\":9,\"ok\":true,\"why\":null}",
    "{\"r\":\"start_ack\",\"tag\":7,\"run\":\"G\",\"err\":\"COUNCIL_OK\"}",
    "{\"r\":\"emit\",\"run\":\"G\",\"seq\":1,\"type\":\"run_started\"}",
    "{\"r\":\"deliver\",\"run\":\"G\",\"rec\":9,\"seq\":1,\"type\":"
    "\"run_started\",\"rc\":0}",
    "{\"r\":\"fault\",\"run\":\"*\",\"kind\":\"shutdown\",\"at_seq\":0,"
    "\"expect\":\"crashed\",\"reason\":\"shutdown\",\"by\":\"test\"}",
    "{\"r\":\"finalize\",\"run\":\"G\",\"rec\":9,\"kind\":\"crashed\","
    "\"reason\":\"shutdown\"}",
    "{\"r\":\"outcome\",\"run\":\"G\",\"kind\":\"crashed\","
    "\"reason\":\"shutdown\"}",
    "{\"r\":\"bound\",\"what\":\"shutdown\",\"ms\":3.5,\"limit_ms\":1000}",
    "{\"r\":\"resources\",\"fds_before\":10,\"fds_after\":10,"
    "\"children\":0}",
};

#define N_BASE (sizeof(base) / sizeof(base[0]))

enum { DEL, DUP, REPL, INS_AFTER, MOVE_AFTER, APPEND_RAW };

typedef struct mutation {
    const char *name;
    int op;
    const char *at;   /* a substring naming one base line */
    const char *text; /* REPL/INS_AFTER: the line; MOVE_AFTER: where to */
    const char *want; /* a substring of the report */
} mutation;

static size_t
find_line(const char *at)
{
    size_t i, hit = N_BASE;

    for (i = 0; i < N_BASE; i++)
        if (strstr(base[i], at) != NULL) {
            if (hit != N_BASE)
                FAIL("\"%s\" names more than one base line", at);
            hit = i;
        }
    if (hit == N_BASE)
        FAIL("\"%s\" names no base line", at);
    return hit;
}

/* Write base with m applied (m NULL: as is) to a file; return its path. */
static const char *
write_history(const mutation *m)
{
    static char path[600];
    size_t i, at = m != NULL ? find_line(m->at) : N_BASE;
    size_t to = m != NULL && m->op == MOVE_AFTER ? find_line(m->text) : N_BASE;
    FILE *f;

    snprintf(path, sizeof(path), "%s/h.jsonl", runner_tmpdir());
    f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    for (i = 0; i < N_BASE; i++) {
        if (i == at && (m->op == DEL || m->op == MOVE_AFTER))
            continue;
        fprintf(f, "%s\n", i == at && m->op == REPL ? m->text : base[i]);
        if (i == at && (m->op == DUP))
            fprintf(f, "%s\n", base[i]);
        if (i == at && m->op == INS_AFTER)
            fprintf(f, "%s\n", m->text);
        if (i == to)
            fprintf(f, "%s\n", base[at]);
    }
    if (m != NULL && m->op == APPEND_RAW)
        fputs(m->text, f);
    fclose(f);
    return path;
}

TEST(clean_history_passes_and_is_counted)
{
    hist_figures fig;
    char *report = NULL;
    size_t n;

    memset(&fig, 0, sizeof(fig));
    n = hist_check_file(write_history(NULL), &fig, &report);
    if (n != 0)
        FAIL("clean history: %zu violation(s):\n%s", n, report);
    ASSERT_EQ_U64(fig.files, 1);
    ASSERT_EQ_U64(fig.records, N_BASE);
    ASSERT_EQ_U64(fig.runs, 6);
    ASSERT_EQ_U64(fig.runs_failed_start, 1);
    /* Under fault: B, C, E, G; A and F ended before the shutdown. */
    ASSERT_EQ_U64(fig.runs_fault, 4);
    ASSERT_EQ_U64(fig.runs_normal, 2);
    ASSERT_EQ_U64(fig.emitted, 3 + 2 + 2 + 2 + 1 + 1);
    ASSERT_EQ_U64(fig.delivered, 6 + 2 + 2 + 2 + 1 + 1);
    ASSERT_EQ_U64(fig.recorders, 8);
    ASSERT_EQ_U64(fig.recorders_refused, 1);
    ASSERT_EQ_U64(fig.lost, 0);
    ASSERT_EQ_U64(fig.outcomes, 7);
    ASSERT_EQ_U64(fig.outcomes_right, 7);
    ASSERT_EQ_U64(fig.crashes, 2);
    ASSERT_EQ_U64(fig.crashes_right, 2);
    ASSERT_EQ_U64(fig.races, 1);
    ASSERT_EQ_U64(fig.races_terminal_won, 1);
    ASSERT_EQ_U64(fig.cancels_won, 1);
    ASSERT_EQ_U64(fig.n_seeds, 1);
    ASSERT_STR_EQ(fig.seeds[0], "42");
    ASSERT_EQ_U64(fig.bounds, 1);
    ASSERT_EQ_U64(fig.resource_checks, 1);
    free(report);
}

static const mutation mutations[] = {
    {"missing finalize", DEL, "\"finalize\",\"run\":\"A\",\"rec\":2", NULL,
     "I1 run A rec 2: init succeeded, never finalized"},
    {"double finalize", DUP, "\"finalize\",\"run\":\"A\",\"rec\":1", NULL,
     "I1 run A rec 1: finalized again"},
    {"gap", DEL, "\"run\":\"A\",\"rec\":1,\"seq\":2", NULL,
     "I2 run A rec 1: seq 3 after 1 (gap)"},
    {"out of order", MOVE_AFTER, "\"run\":\"A\",\"rec\":1,\"seq\":2",
     "\"run\":\"A\",\"rec\":1,\"seq\":3", "seq 2 after 3 (out of order)"},
    {"duplicate delivery", DUP, "\"run\":\"A\",\"rec\":1,\"seq\":1", NULL,
     "I2 run A rec 1: seq 1 delivered twice"},
    {"delivery after finalize", MOVE_AFTER, "\"run\":\"A\",\"rec\":2,\"seq\":3",
     "\"finalize\",\"run\":\"A\",\"rec\":2",
     "I2 run A rec 2: seq 3 delivered after its finalize"},
    {"delivery of an event never emitted", INS_AFTER,
     "\"run\":\"A\",\"rec\":1,\"seq\":3",
     "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":1,\"seq\":4,\"type\":"
     "\"member_delta\",\"rc\":0}",
     "seq 4 delivered, but the bus had not emitted it"},
    {"delivered type differs", REPL, "\"run\":\"A\",\"rec\":2,\"seq\":2",
     "{\"r\":\"deliver\",\"run\":\"A\",\"rec\":2,\"seq\":2,\"type\":"
     "\"member_completed\",\"rc\":0}",
     "delivered as member_completed, emitted as member_delta"},
    {"lost event", DEL, "\"run\":\"B\",\"rec\":3,\"seq\":2", NULL,
     "I4 run B rec 3: 1 of 2 emitted event(s) never reached it"},
    {"wrong crash reason", REPL, "\"finalize\",\"run\":\"B\"",
     "{\"r\":\"finalize\",\"run\":\"B\",\"rec\":3,\"kind\":\"crashed\","
     "\"reason\":\"signal SIGSEGV\"}",
     "I3 run B rec 3: crash reason \"signal SIGSEGV\" is not the injected "
     "fault's"},
    {"crash without a fault", DEL, "\"fault\",\"run\":\"B\"", NULL,
     "I3 run B: no terminal event and no injected crash to explain"},
    {"crash reported although a terminal was emitted", REPL,
     "\"finalize\",\"run\":\"C\"",
     "{\"r\":\"finalize\",\"run\":\"C\",\"rec\":4,\"kind\":\"crashed\","
     "\"reason\":\"signal SIGKILL\"}",
     "I3 run C rec 4: ended crashed \"signal SIGKILL\", but its terminal "
     "event says otherwise"},
    {"terminal expected to win, none emitted", REPL, "\"fault\",\"run\":\"B\"",
     "{\"r\":\"fault\",\"run\":\"B\",\"kind\":\"sigkill\",\"at_seq\":2,"
     "\"expect\":\"terminal\",\"reason\":null}",
     "fault sigkill had to leave the terminal event to win"},
    {"fault with the wrong reason for its kind", REPL,
     "\"fault\",\"run\":\"B\"",
     "{\"r\":\"fault\",\"run\":\"B\",\"kind\":\"sigkill\",\"at_seq\":2,"
     "\"expect\":\"crashed\",\"reason\":\"signal SIGTERM\"}",
     "fault sigkill: the crash it causes has reason \"signal SIGKILL\""},
    {"refused recorder called", INS_AFTER, "\"finalize\",\"run\":\"D\"",
     "{\"r\":\"finalize\",\"run\":\"D\",\"rec\":6,\"kind\":\"error\","
     "\"reason\":\"x\"}",
     "I1 run D rec 6: handle_finalize, but its init refused"},
    {"refused, yet started", REPL, "\"start_ack\",\"tag\":4",
     "{\"r\":\"start_ack\",\"tag\":4,\"run\":\"D\",\"err\":\"COUNCIL_OK\"}",
     "I1 run D: a recorder's init refused, yet the start succeeded"},
    {"cancelled without a cancel", DEL, "\"fault\",\"run\":\"E\"", NULL,
     "I3 run E: cancelled, but no cancel that could win"},
    {"a cancel that had to win lost", REPL, "\"run\":\"E\",\"seq\":2,\"type\"",
     "{\"r\":\"emit\",\"run\":\"E\",\"seq\":2,\"type\":\"run_failed\","
     "\"class\":\"error\",\"reason\":\"boom\"}",
     "I3 run E: the cancel had to win, but the run ended error"},
    {"error reason differs", REPL, "\"finalize\",\"run\":\"F\"",
     "{\"r\":\"finalize\",\"run\":\"F\",\"rec\":8,\"kind\":\"error\","
     "\"reason\":\"other\"}",
     "error reason \"other\", the terminal event's first error says "
     "\"quorum lost\""},
    {"wait and recorder disagree", REPL, "\"outcome\",\"run\":\"A\"",
     "{\"r\":\"outcome\",\"run\":\"A\",\"kind\":\"error\",\"reason\":\"x\"}",
     "I3 run A (wait): ended error \"x\""},
    {"bus gap", DEL, "\"emit\",\"run\":\"A\",\"seq\":2", NULL,
     "I2 run A: the bus emitted seq 3 after 1 (gap)"},
    {"emit after the terminal", INS_AFTER, "\"emit\",\"run\":\"A\",\"seq\":3",
     "{\"r\":\"emit\",\"run\":\"A\",\"seq\":4,\"type\":\"member_delta\"}",
     "I2 run A: the bus accepted seq 4 (member_delta) after its terminal"},
    {"start never answered", DEL, "\"start_ack\",\"tag\":1", NULL,
     "I1: start tag 1 was never answered"},
    {"shutdown over its bound", REPL, "\"bound\"",
     "{\"r\":\"bound\",\"what\":\"shutdown\",\"ms\":1500,\"limit_ms\":1000}",
     "I5: shutdown took 1500.000 ms, over its bound of 1000.000 ms"},
    {"descriptor leaked", REPL, "\"resources\"",
     "{\"r\":\"resources\",\"fds_before\":10,\"fds_after\":12,"
     "\"children\":0}",
     "I5: 2 descriptor(s) open beyond the baseline"},
    {"child left", REPL, "\"resources\"",
     "{\"r\":\"resources\",\"fds_before\":10,\"fds_after\":10,"
     "\"children\":1}",
     "1 child process(es) left"},
    {"a line cut short", APPEND_RAW, "\"resources\"",
     "{\"r\":\"emit\",\"run\":\"A\"", "the last line is cut short"},
    {"not JSON", INS_AFTER, "\"resources\"", "{\"r\":\"emit\",",
     "not a history record"},
    {"a crash after seq 3, but 2 emitted", REPL, "\"fault\",\"run\":\"B\"",
     "{\"r\":\"fault\",\"run\":\"B\",\"kind\":\"sigkill\",\"at_seq\":3,"
     "\"expect\":\"crashed\",\"reason\":\"signal SIGKILL\"}",
     "I4 run B: fault sigkill came after seq 3, yet the bus accepted only 2 "
     "event(s) before the crash"},
};

TEST(each_broken_invariant_is_reported)
{
    size_t i;

    for (i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
        const mutation *m = &mutations[i];
        hist_figures fig;
        char *report = NULL;
        size_t n;

        memset(&fig, 0, sizeof(fig));
        n = hist_check_file(write_history(m), &fig, &report);
        if (n == 0)
            FAIL("%s: the checker found nothing", m->name);
        if (report == NULL || strstr(report, m->want) == NULL)
            FAIL("%s: report lacks \"%s\":\n%s", m->name, m->want,
                 report != NULL ? report : "(none)");
        ASSERT_EQ_U64(fig.violations, n);
        free(report);
    }
}

/* The figures name what broke, not only that something did. */
TEST(figures_count_what_broke)
{
    static const struct {
        size_t m;
        size_t off; /* offset of the counter in hist_figures */
    } cases[] = {
        {0, offsetof(hist_figures, finalize_missing)},
        {1, offsetof(hist_figures, finalize_double)},
        {2, offsetof(hist_figures, out_of_order)},
        {4, offsetof(hist_figures, duplicates)},
        {5, offsetof(hist_figures, after_finalize)},
        {6, offsetof(hist_figures, phantom)},
        {8, offsetof(hist_figures, lost)},
        {23, offsetof(hist_figures, bounds_exceeded)},
        {24, offsetof(hist_figures, resource_bad)},
        {28, offsetof(hist_figures, lost)},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hist_figures fig;
        memset(&fig, 0, sizeof(fig));
        hist_check_file(write_history(&mutations[cases[i].m]), &fig, NULL);
        if (*(uint64_t *)((char *)&fig + cases[i].off) != 1)
            FAIL(
                "%s: counter is %llu, not 1", mutations[cases[i].m].name,
                (unsigned long long)*(uint64_t *)((char *)&fig + cases[i].off));
    }
    {
        hist_figures fig;
        memset(&fig, 0, sizeof(fig));
        hist_check_file(write_history(&mutations[9]), &fig, NULL);
        ASSERT_EQ_U64(fig.crashes, 2);
        ASSERT_EQ_U64(fig.crashes_right, 1);
        ASSERT_EQ_U64(fig.outcomes_right, 6);
        memset(&fig, 0, sizeof(fig));
        hist_check_file(write_history(&mutations[11]), &fig, NULL);
        ASSERT_EQ_U64(fig.races, 1);
        ASSERT_EQ_U64(fig.races_terminal_won, 0);
    }
}

/* Write base with up to two lines replaced (at: a substring naming the
 * line, text: its replacement); return its path. */
static const char *
write_replaced(const char *at1, const char *text1, const char *at2,
               const char *text2)
{
    static char path[600];
    size_t i, a = find_line(at1), b = at2 != NULL ? find_line(at2) : N_BASE;
    FILE *f;

    snprintf(path, sizeof(path), "%s/r.jsonl", runner_tmpdir());
    f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    for (i = 0; i < N_BASE; i++)
        fprintf(f, "%s\n", i == a ? text1 : i == b ? text2 : base[i]);
    fclose(f);
    return path;
}

#define B_FAULT(kind, reason)                                                  \
    "{\"r\":\"fault\",\"run\":\"B\",\"kind\":\"" kind "\",\"at_seq\":2,"       \
    "\"expect\":\"crashed\",\"reason\":\"" reason "\",\"by\":\"test\"}"
#define B_FINAL(reason)                                                        \
    "{\"r\":\"finalize\",\"run\":\"B\",\"rec\":3,\"kind\":\"crashed\","        \
    "\"reason\":\"" reason "\"}"

/* The child-process host's own crash kinds: a protocol error and a
 * socket closed by a child that lives on.  The right reason passes; a
 * fault record whose reason is not its kind's, or a run that crashed with
 * another reason than the fault's, is reported. */
TEST(protocol_and_socket_closed_faults_need_their_reason)
{
    static const struct {
        const char *fault, *final, *want; /* want NULL: clean */
        int right; /* crashed outcomes counted right (B and G) */
    } cases[] = {
        {B_FAULT("protocol", "host protocol error: *"),
         B_FINAL("host protocol error: a frame of unknown type 0x58"), NULL, 2},
        {B_FAULT("protocol", "host protocol error: a frame of 1073741824 "
                             "bytes*"),
         B_FINAL("host protocol error: a frame of 1073741824 bytes (the "
                 "limit is 16777216)"),
         NULL, 2},
        {B_FAULT("socket_closed", "host closed its socket*"),
         B_FINAL("host closed its socket and was still running 1s later"), NULL,
         2},
        /* The run crashed, but not as the fault says. */
        {B_FAULT("protocol", "host protocol error: *"),
         B_FINAL("host closed its socket and was still running 1s later"),
         "I3 run B rec 3: crash reason \"host closed its socket and was "
         "still running 1s later\" is not the injected fault's (first: "
         "protocol \"host protocol error: *\")",
         1},
        {B_FAULT("protocol", "host protocol error: event seq 9 after seq 4"),
         B_FINAL("host protocol error: event seq 8 after seq 4"),
         "crash reason \"host protocol error: event seq 8 after seq 4\" is "
         "not the injected fault's",
         1},
        {B_FAULT("socket_closed", "host closed its socket*"),
         B_FINAL("host protocol error: a frame of unknown type 0x58"),
         "I3 run B rec 3: crash reason \"host protocol error: a frame of "
         "unknown type 0x58\" is not the injected fault's (first: "
         "socket_closed",
         1},
        {B_FAULT("socket_closed", "signal SIGKILL"), B_FINAL("signal SIGKILL"),
         "fault socket_closed: the crash it causes has reason \"host closed "
         "its socket*\", not \"signal SIGKILL\"",
         2},
        /* A fault record whose reason is not its kind's. */
        {B_FAULT("protocol", "host closed its socket*"),
         B_FINAL("host closed its socket and was still running 1s later"),
         "fault protocol: the crash it causes has reason \"host protocol "
         "error: *\", not \"host closed its socket*\"",
         2},
    };
    size_t i;

    ASSERT_STR_EQ(hist_crash_reason("protocol"), "host protocol error: *");
    ASSERT_STR_EQ(hist_crash_reason("socket_closed"),
                  "host closed its socket*");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hist_figures fig;
        char *report = NULL;
        size_t n;

        memset(&fig, 0, sizeof(fig));
        n = hist_check_file(
            write_replaced("\"fault\",\"run\":\"B\"", cases[i].fault,
                           "\"finalize\",\"run\":\"B\"", cases[i].final),
            &fig, &report);
        if (cases[i].want == NULL) {
            if (n != 0)
                FAIL("case %zu: %zu violation(s):\n%s", i, n, report);
        } else {
            if (n == 0)
                FAIL("case %zu: the checker found nothing", i);
            if (report == NULL || strstr(report, cases[i].want) == NULL)
                FAIL("case %zu: report lacks \"%s\":\n%s", i, cases[i].want,
                     report != NULL ? report : "(none)");
        }
        ASSERT_EQ_U64(fig.crashes, 2);
        ASSERT_EQ_U64(fig.crashes_right, (uint64_t)cases[i].right);
        free(report);
    }
}

/* A kill sent after the child wrote its terminal expects the terminal to
 * win: a terminal-beats-crash race, counted as one. */
TEST(a_crash_expecting_the_terminal_counts_as_a_race)
{
    hist_figures fig;
    char *report = NULL;
    size_t n;

    memset(&fig, 0, sizeof(fig));
    n = hist_check_file(
        write_replaced("\"fault\",\"run\":\"C\"",
                       "{\"r\":\"fault\",\"run\":\"C\",\"kind\":\"sigkill\","
                       "\"at_seq\":2,\"expect\":\"terminal\",\"reason\":null,"
                       "\"by\":\"test\"}",
                       NULL, NULL),
        &fig, &report);
    if (n != 0)
        FAIL("%zu violation(s):\n%s", n, report);
    ASSERT_EQ_U64(fig.races, 1);
    ASSERT_EQ_U64(fig.races_terminal_won, 1);
    free(report);
    /* Not a crash kind: a deadline expecting its terminal is no race. */
    memset(&fig, 0, sizeof(fig));
    n = hist_check_file(
        write_replaced("\"fault\",\"run\":\"C\"",
                       "{\"r\":\"fault\",\"run\":\"C\",\"kind\":\"deadline\","
                       "\"at_seq\":0,\"expect\":\"terminal\",\"reason\":null,"
                       "\"by\":\"test\"}",
                       NULL, NULL),
        &fig, &report);
    ASSERT_EQ_U64(n, 0);
    ASSERT_EQ_U64(fig.races, 0);
    free(report);
}

TEST(an_unreadable_history_is_a_violation)
{
    char path[600];
    char *report = NULL;

    snprintf(path, sizeof(path), "%s/none.jsonl", runner_tmpdir());
    ASSERT_EQ_U64(hist_check_file(path, NULL, &report), 1);
    ASSERT_STR_CONTAINS(report, "cannot read");
    free(report);
}

/* ---- the writer --------------------------------------------------------- */

enum { WRITERS = 8, PER_WRITER = 3000 };

static hist *shared;

static void *
writer(void *arg)
{
    long w = (long)arg;
    char key[32], value[1500];
    int i;

    for (i = 0; i < PER_WRITER; i++) {
        /* Long lines, with characters that need escaping. */
        snprintf(key, sizeof(key), "w%ld", w);
        memset(value, 'a' + (int)w, sizeof(value) - 1);
        value[sizeof(value) - 1] = '\0';
        snprintf(value, 40, "%d \"q\" \\ \n", i);
        value[strlen(value)] = 'x';
        hist_note(shared, key, value);
    }
    return NULL;
}

TEST_T(concurrent_writers_never_interleave, 30)
{
    pthread_t th[WRITERS];
    int next[WRITERS] = {0};
    char *line = NULL;
    size_t cap = 0, lines = 0;
    ssize_t n;
    FILE *f;
    long w;
    char path[600];

    /* Not hist_open_case: this history is not a fault test's. */
    snprintf(path, sizeof(path), "%s/writers.jsonl", runner_tmpdir());
    shared = hist_open(path, "writers");
    ASSERT_NOT_NULL(shared);
    for (w = 0; w < WRITERS; w++)
        pthread_create(&th[w], NULL, writer, (void *)w);
    for (w = 0; w < WRITERS; w++)
        pthread_join(th[w], NULL);
    f = fopen(hist_path(shared), "r");
    ASSERT_NOT_NULL(f);
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)n, 0, &err);
        const char *key, *value;
        if (o == NULL)
            FAIL("line %zu is not JSON (%s): %.80s", lines + 1, err.text, line);
        lines++;
        key = json_string_value(json_object_get(o, "key"));
        value = json_string_value(json_object_get(o, "value"));
        if (key != NULL) {
            int k = atoi(key + 1), seq = atoi(value);
            ASSERT(k >= 0 && k < WRITERS);
            /* Each writer's lines in its order, none lost, none cut. */
            ASSERT_EQ_INT(seq, next[k]);
            ASSERT_STR_CONTAINS(value, "\"q\" \\ \n");
            ASSERT_EQ_U64(strlen(value), 1024);
            next[k]++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    ASSERT_EQ_U64(lines, 1 + WRITERS * PER_WRITER);
    for (w = 0; w < WRITERS; w++)
        ASSERT_EQ_INT(next[w], PER_WRITER);
    hist_close(shared);
}
