/* SPDX-License-Identifier: MIT */
/*
 * council run's live view on a real terminal (issue 13): the binary
 * ($COUNCIL_BIN) runs on a pseudo-terminal (forkpty), a slow mock LLM in
 * this process keeps members streaming, and the test types Ctrl-C (the
 * byte 0x03: the terminal's line discipline echoes "^C" and sends SIGINT,
 * as a person's key press does).  Everything the command wrote to the
 * terminal goes through a small VT100 screen model (printable text,
 * CR, LF, BS, cursor up/down/left/right/position, erase in line and in
 * display; SGR colours ignored), and the screen it ends with is checked:
 * one frame (one header line, one line per member and the chairman), the
 * cancel notice above it, the outcome below it, and nothing stale.  The
 * bug this catches: a notice written beside the frame moved the cursor
 * two lines down, and the last frame was drawn two lines low under the
 * old frame's first two lines.
 * TEST_LABELS: threaded
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "runner.h"

extern char **environ;

/* ---- a VT100 screen -------------------------------------------------- */

enum { ROWS = 30, COLS = 100 };

typedef struct screen {
    char cell[ROWS][COLS + 1];
    int row, col;
    int esc;         /* 0 text, 1 after ESC, 2 in a CSI sequence */
    char params[32]; /* the CSI's parameter bytes */
    size_t np;
    unsigned unknown; /* sequences the model does not know */
} screen;

static void
scr_init(screen *s)
{
    int r;

    memset(s, 0, sizeof(*s));
    for (r = 0; r < ROWS; r++)
        memset(s->cell[r], ' ', COLS);
}

static void
scroll_up(screen *s)
{
    memmove(s->cell[0], s->cell[1], (size_t)(ROWS - 1) * (COLS + 1));
    memset(s->cell[ROWS - 1], ' ', COLS);
    s->cell[ROWS - 1][COLS] = '\0';
}

static void
line_feed(screen *s)
{
    if (s->row == ROWS - 1)
        scroll_up(s);
    else
        s->row++;
}

static int
param(const screen *s, int i, int dflt)
{
    const char *p = s->params;
    int k;

    for (k = 0; k < i && p != NULL; k++) {
        p = strchr(p, ';');
        if (p != NULL)
            p++;
    }
    if (p == NULL || *p < '0' || *p > '9')
        return dflt;
    return atoi(p);
}

static void
csi(screen *s, char final)
{
    int n = param(s, 0, 1), c;

    switch (final) {
    case 'A':
        s->row = s->row - n < 0 ? 0 : s->row - n;
        break;
    case 'B':
        s->row = s->row + n >= ROWS ? ROWS - 1 : s->row + n;
        break;
    case 'C':
        s->col = s->col + n >= COLS ? COLS - 1 : s->col + n;
        break;
    case 'D':
        s->col = s->col - n < 0 ? 0 : s->col - n;
        break;
    case 'H':
    case 'f':
        s->row = param(s, 0, 1) - 1;
        s->col = param(s, 1, 1) - 1;
        if (s->row < 0 || s->row >= ROWS || s->col < 0 || s->col >= COLS)
            FAIL("cursor position out of the screen: %s", s->params);
        break;
    case 'K':
        n = param(s, 0, 0);
        for (c = 0; c < COLS; c++)
            if ((n == 0 && c >= s->col) || (n == 1 && c <= s->col) || n == 2)
                s->cell[s->row][c] = ' ';
        break;
    case 'J':
        n = param(s, 0, 0);
        for (c = 0; c < ROWS; c++)
            if ((n == 0 && c > s->row) || (n == 1 && c < s->row) || n >= 2)
                memset(s->cell[c], ' ', COLS);
        break;
    case 'm':
        break; /* colours */
    default:
        s->unknown++;
        break;
    }
}

static void
scr_feed(screen *s, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (s->esc == 1) {
            s->esc = ch == '[' ? 2 : 0;
            s->np = 0;
            s->params[0] = '\0';
            if (ch != '[')
                s->unknown++;
            continue;
        }
        if (s->esc == 2) {
            if (ch >= 0x40 && ch <= 0x7e) {
                s->esc = 0;
                csi(s, (char)ch);
            } else if (s->np + 1 < sizeof(s->params)) {
                s->params[s->np++] = (char)ch;
                s->params[s->np] = '\0';
            }
            continue;
        }
        switch (ch) {
        case 0x1b:
            s->esc = 1;
            break;
        case '\r':
            s->col = 0;
            break;
        case '\n':
            line_feed(s);
            break;
        case '\b':
            if (s->col > 0)
                s->col--;
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                break;
            if (s->col == COLS) {
                s->col = 0;
                line_feed(s);
            }
            s->cell[s->row][s->col++] = (char)ch;
            break;
        }
    }
}

/* Row r without its trailing blanks. */
static const char *
scr_line(screen *s, int r, char *out)
{
    int n = COLS;

    while (n > 0 && s->cell[r][n - 1] == ' ')
        n--;
    memcpy(out, s->cell[r], (size_t)n);
    out[n] = '\0';
    return out;
}

static void
scr_dump(screen *s, char *out, size_t size)
{
    char line[COLS + 1];
    size_t len = 0;
    int r;

    out[0] = '\0';
    for (r = 0; r < ROWS; r++) {
        int k = snprintf(out + len, size - len, "%2d|%s\n", r,
                         scr_line(s, r, line));

        if (k < 0 || (size_t)k >= size - len)
            break;
        len += (size_t)k;
    }
}

/* ---- the run on a terminal -------------------------------------------- */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The screen model checks itself: text, CR/LF, cursor moves, erases. */
TEST(the_screen_model)
{
    screen s;
    char line[COLS + 1];

    scr_init(&s);
    scr_feed(&s, "abc\r\ndef\r\n", 10);
    scr_feed(&s, "\033[2A\r\033[2Kxy\033[1m!\033[0m\n", 22);
    ASSERT_STR_EQ(scr_line(&s, 0, line), "xy!");
    ASSERT_STR_EQ(scr_line(&s, 1, line), "def");
    scr_feed(&s, "12345\033[3D\033[K", 12);
    ASSERT_STR_EQ(scr_line(&s, 1, line), "def12"); /* LF kept the column */
    ASSERT_EQ_INT(s.unknown, 0);
}

TEST_T(ctrl_c_leaves_one_frame_on_the_terminal, 60)
{
    const char *bin = getenv("COUNCIL_BIN");
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_mockllm *mock;
    council_diag d;
    char yaml[800], *out = NULL, dump[8192], line[COLS + 1];
    struct winsize ws = {ROWS, COLS, 0, 0};
    size_t len = 0, cap = 0;
    int master, status, typed = 0, r, headers = 0, notice = -1, frame = -1;
    int outcome = -1, rows_seen[4] = {0, 0, 0, 0};
    static const char *const names[4] = {"alpha", "beta", "gamma", "chairman"};
    double end;
    pid_t pid;
    screen s;
    FILE *f;

    ASSERT_NOT_NULL(bin);
    mo.seed = 3;
    mo.tokens_per_sec = 20; /* members stream for seconds */
    ASSERT_OK(council_mockllm_open(&mo, &mock, &d));
    snprintf(yaml, sizeof(yaml), "%s/slow.yaml", runner_tmpdir());
    f = fopen(yaml, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f,
            "name: slow\n"
            "providers:\n"
            "  mock: { kind: openai, base_url: %s }\n"
            "members:\n"
            "  - { name: alpha, provider: mock, model: mock-a }\n"
            "  - { name: beta, provider: mock, model: mock-b }\n"
            "  - { name: gamma, provider: mock, model: mock-c }\n"
            "chairman: { provider: mock, model: mock-chair }\n",
            council_mockllm_base_url(mock));
    fclose(f);

    pid = forkpty(&master, NULL, NULL, &ws);
    ASSERT(pid >= 0);
    if (pid == 0) {
        char *argv[] = {(char *)bin,       "run", "--no-record", "-c", yaml,
                        "a slow question", NULL};

        unsetenv("NO_COLOR");
        execve(bin, argv, environ);
        _exit(127);
    }
    end = now_s() + 40;
    for (;;) {
        struct pollfd p = {master, POLLIN, 0};
        char buf[4096];
        ssize_t k;

        if (now_s() > end) {
            kill(pid, SIGKILL);
            FAIL("council run did not end on the terminal");
        }
        if (poll(&p, 1, 50) <= 0)
            continue;
        k = read(master, buf, sizeof(buf));
        if (k <= 0)
            break; /* EIO: the child closed the terminal */
        if (len + (size_t)k + 1 > cap) {
            cap = (len + (size_t)k + 1) * 2;
            out = realloc(out, cap);
            ASSERT_NOT_NULL(out);
        }
        memcpy(out + len, buf, (size_t)k);
        len += (size_t)k;
        out[len] = '\0';
        /* Ctrl-C once every member streams (a frame is up and moving). */
        if (!typed && strstr(out, "gamma") != NULL &&
            strstr(out, "streaming") != NULL) {
            usleep(300000);
            ASSERT_EQ_INT(write(master, "\003", 1), 1);
            typed = 1;
        }
    }
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    close(master);
    council_mockllm_close(mock);
    ASSERT(typed);
    /* Cancelled and recorded, then ended by the signal (docs/cli.md). */
    ASSERT(WIFSIGNALED(status));
    ASSERT_EQ_INT(WTERMSIG(status), SIGINT);

    scr_init(&s);
    scr_feed(&s, out, len);
    scr_dump(&s, dump, sizeof(dump));
    free(out);
    if (s.unknown != 0)
        FAIL("%u escape sequences the model does not know:\n%s", s.unknown,
             dump);
    for (r = 0; r < ROWS; r++) {
        const char *l = scr_line(&s, r, line);
        int k;

        if (l[0] == '\0')
            continue;
        if (strncmp(l, "council slow  stage: ", 21) == 0) {
            headers++;
            frame = r;
            continue;
        }
        if (strcmp(l, "council: cancelling the run: interrupted (Ctrl-C)") ==
            0) {
            ASSERT_EQ_INT(notice, -1);
            notice = r;
            continue;
        }
        if (strncmp(l, "council: run ", 13) == 0 &&
            strstr(l, " cancelled") != NULL) {
            outcome = r;
            continue;
        }
        for (k = 0; k < 4; k++) {
            char want[40];

            snprintf(want, sizeof(want), "  %-10s ", names[k]);
            if (strncmp(l, want, strlen(want)) == 0) {
                rows_seen[k]++;
                if (frame < 0 || r != frame + 1 + k)
                    FAIL("row %d (%s) is not in the frame:\n%s", r, names[k],
                         dump);
                break;
            }
        }
        if (k == 4)
            FAIL("a stray line %d on the screen: \"%s\"\n%s", r, l, dump);
    }
    if (headers != 1)
        FAIL("%d frame headers on the screen (stale lines):\n%s", headers,
             dump);
    for (r = 0; r < 4; r++)
        if (rows_seen[r] != 1)
            FAIL("the %s row is on the screen %d times:\n%s", names[r],
                 rows_seen[r], dump);
    if (notice < 0 || notice != frame - 1)
        FAIL("the cancel notice is not right above the frame:\n%s", dump);
    if (outcome != frame + 5)
        FAIL("the outcome is not right below the frame:\n%s", dump);
    /* The cursor rests under the outcome line, at its start. */
    ASSERT(s.row == outcome + 1 && s.col == 0);
}
