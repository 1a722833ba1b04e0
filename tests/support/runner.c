/* SPDX-License-Identifier: MIT */
/*
 * The runner's main.  Method: with no case named, the binary re-executes
 * itself once per case (`/proc/self/exe --case NAME`), waits for it with a
 * deadline, kills it with SIGKILL on timeout, and prints one line per case
 * and the closing line "N passed, N failed".  The child runs the case, then
 * checks descriptors and children, and exits 0 only if all held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

extern char **environ;

#define MAX_CASES 512

static struct {
    const char *name;
    void (*fn)(void);
    int timeout_s;
} cases[MAX_CASES];
static int n_cases;
static int fd_growth_allowed;
static char tmpdir[512];

void
runner__register(const char *name, void (*fn)(void), int timeout_s)
{
    if (n_cases == MAX_CASES) {
        fprintf(stderr, "runner: too many cases\n");
        exit(2);
    }
    cases[n_cases].name = name;
    cases[n_cases].fn = fn;
    cases[n_cases].timeout_s = timeout_s;
    n_cases++;
}

void
runner__fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

uint64_t
runner_seed(void)
{
    static uint64_t seed;
    static int done;
    const char *s;

    if (done)
        return seed;
    s = getenv("COUNCIL_SEED");
    if (s != NULL && *s != '\0') {
        seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
               (uint64_t)getpid();
    }
    fprintf(stderr, "seed: COUNCIL_SEED=%" PRIu64 "\n", seed);
    done = 1;
    return seed;
}

void
runner_allow_fd_growth(void)
{
    fd_growth_allowed = 1;
}

const char *
runner_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/council-test-XXXXXX",
                 base != NULL && *base != '\0' ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL)
            FAIL("mkdtemp: %s", strerror(errno));
    }
    return tmpdir;
}

static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own descriptor */
}

static void
remove_tree(const char *path)
{
    pid_t pid;
    char *argv[] = {"rm", "-rf", (char *)path, NULL};

    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
}

void runner_global_init(void);

static int
run_in_process(int i)
{
    int before, after;

    runner_global_init();
    before = count_fds();
    cases[i].fn();
    after = count_fds();
    if (!fd_growth_allowed && after > before)
        FAIL("case %s left %d file descriptor(s) open", cases[i].name,
             after - before);
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        FAIL("case %s left a child process", cases[i].name);
    if (tmpdir[0] != '\0')
        remove_tree(tmpdir);
    return 0;
}

double
runner_timeout_multiplier(void)
{
    const char *s = getenv("COUNCIL_TEST_TIMEOUT_MULTIPLIER");
    double m = s != NULL ? strtod(s, NULL) : 1.0;

    return m > 0 ? m : 1.0;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
run_forked(int i)
{
    char *argv[] = {"test", "--case", (char *)cases[i].name, NULL};
    int64_t start = now_ms();
    int64_t limit =
        (int64_t)(cases[i].timeout_s * 1000 * runner_timeout_multiplier());
    pid_t pid;
    int status = 0;
    int rc;

    rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc != 0) {
        printf("not ok - %s: spawn: %s\n", cases[i].name, strerror(rc));
        return 1;
    }
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (now_ms() - start > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("not ok - %s: timed out after %d s\n", cases[i].name,
                   (int)(limit / 1000));
            fflush(stdout);
            return 1;
        }
        usleep(2000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok - %s (%lld ms)\n", cases[i].name,
               (long long)(now_ms() - start));
        fflush(stdout);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("not ok - %s: killed by signal %d\n", cases[i].name,
               WTERMSIG(status));
    else
        printf("not ok - %s: exit status %d\n", cases[i].name,
               WEXITSTATUS(status));
    fflush(stdout);
    return 1;
}

static int
find(const char *name)
{
    int i;

    for (i = 0; i < n_cases; i++)
        if (strcmp(cases[i].name, name) == 0)
            return i;
    return -1;
}

int
main(int argc, char **argv)
{
    int passed = 0, failed = 0, no_fork = 0, named = 0, i, a;

    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--case") == 0) {
        i = find(argv[2]);
        if (i < 0) {
            fprintf(stderr, "no case %s\n", argv[2]);
            return 2;
        }
        return run_in_process(i);
    }
    for (a = 1; a < argc; a++)
        if (strcmp(argv[a], "--no-fork") == 0)
            no_fork = 1;
    for (a = 1; a < argc; a++) {
        if (argv[a][0] == '-')
            continue;
        named = 1;
        i = find(argv[a]);
        if (i < 0) {
            fprintf(stderr, "no case %s\n", argv[a]);
            return 2;
        }
        if (no_fork) {
            run_in_process(i);
            passed++;
        } else if (run_forked(i) == 0) {
            passed++;
        } else {
            failed++;
        }
    }
    if (!named)
        for (i = 0; i < n_cases; i++) {
            if (run_forked(i) == 0)
                passed++;
            else
                failed++;
        }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
