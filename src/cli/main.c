/* SPDX-License-Identifier: MIT */
/*
 * The council command: dispatch to subcommands, and the shared helpers.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: council <command> [options]\n"
    "\n"
    "Run LLM councils: several models answer a question, rank each other's\n"
    "answers, and a chairman model writes the final answer.  Every run is\n"
    "recorded.\n"
    "\n"
    "commands:\n"
    "  run [QUESTION]      run a council on a question (offline demo when no\n"
    "                      council file is given)\n"
    "  runs list           list recorded runs (filters, --json)\n"
    "  runs show ID        one recorded run: answers, reviews, synthesis\n"
    "  runs replay ID      a recorded run's events again (view, --json,\n"
    "                      recorders)\n"
    "  runs export ID      a recorded run as JSON or Markdown\n"
    "  runs delete ID      remove a recorded run\n"
    "  validate FILE...    check council files (and their API key variables)\n"
    "  serve               serve councils over HTTP (REST, SSE, OpenAI-\n"
    "                      compatible chat completions, a web page)\n"
    "  mock-llm            serve a mock LLM, OpenAI and Anthropic APIs\n"
    "                      (offline use, tests, benchmarks)\n"
    "\n"
    "options:\n"
    "  -h, --help          this help; `council <command> --help` for a "
    "command\n"
    "  --version           print the version\n"
    "\n"
    "exit codes: 0 completed, 1 failed (output that could not be written\n"
    "            to stdout included), 2 usage or council-file error,\n"
    "            3 cancelled, 4 crashed, 5 completed but its record is\n"
    "            incomplete; run and runs replay stopped by SIGINT,\n"
    "            SIGTERM, SIGHUP or a closed stdout record the run as\n"
    "            cancelled, then end by that signal (130, 143, 129, 141)\n";

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("council: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
mkdirs(char *path)
{
    char *p;

    for (p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            *p = '/';
            return -1;
        }
        *p = '/';
    }
    return 0;
}

const char *
cli_host_program(void)
{
    static char path[4096];
    ssize_t n;

    if (path[0] != '\0')
        return path;
    n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0 || (size_t)n >= sizeof(path) - 1) {
        path[0] = '\0';
        return NULL;
    }
    path[n] = '\0';
    return path;
}

int
cli_parse_isolation(const char *v, int *out)
{
    if (strcmp(v, "process") == 0) {
        *out = COUNCIL_ISOLATION_PROCESS;
        return 0;
    }
    if (strcmp(v, "none") == 0) {
        *out = COUNCIL_ISOLATION_NONE;
        return 0;
    }
    cli_error("--isolation %s: expected process or none", v);
    return -1;
}

int
cli_default_db(char *out, size_t size, int create)
{
    const char *env = getenv("COUNCIL_DB");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int n;

    if (env != NULL && env[0] != '\0')
        n = snprintf(out, size, "%s", env);
    else if (xdg != NULL && xdg[0] != '\0')
        n = snprintf(out, size, "%s/council/runs.db", xdg);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(out, size, "%s/.local/share/council/runs.db", home);
    else {
        cli_error("no place for the run store: set COUNCIL_DB or HOME");
        return -1;
    }
    if (n < 0 || (size_t)n >= size) {
        cli_error("run store path is too long");
        return -1;
    }
    if (create && mkdirs(out) != 0) {
        cli_error("cannot create the directory of %s: %s", out,
                  strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * A command that a signal stopped (council run, runs replay: the run is
 * cancelled and recorded by now) ends by that same signal, as the
 * convention for programs that catch SIGINT to clean up asks: the shell
 * sees 128 + its number (130, 143, 129, 141) and, for SIGINT, stops a
 * script's loop too.  code is the exit status should the signal not end
 * the process.
 */
static int
stopped_by(int code)
{
    int sig = cli_stop_signal();
    struct sigaction dfl;
    sigset_t set;

    if (sig == 0)
        return code;
    fflush(stdout);
    fflush(stderr);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig;
}

static int
dispatch(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd == NULL) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("council %s\n", council_version());
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return stopped_by(council_cmd_run(argc - 1, argv + 1));
    if (strcmp(cmd, "runs") == 0)
        return stopped_by(council_cmd_runs(argc - 1, argv + 1));
    if (strcmp(cmd, "mock-llm") == 0)
        return council_cmd_mockllm(argc - 1, argv + 1);
    if (strcmp(cmd, "validate") == 0)
        return council_cmd_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return council_cmd_serve(argc - 1, argv + 1);
    cli_error("unknown command '%s' (see council --help)", cmd);
    return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    struct sigaction ign;

    /* A write past a file size limit must fail with EFBIG and be reported
     * by the recorder, not kill the process (SIGXFSZ's default). */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ign, NULL);
    /* Hidden: the run host of an isolated run, started by the engine of
     * a council run or serve (this same binary, see cli_host_program).
     * Its exit status is for the engine, and it writes nothing to
     * stdout: it is not a command. */
    if (argc > 1 && strcmp(argv[1], "__host") == 0)
        return council_host_main(argc, argv);
    /* Every command's output, help included, must have reached stdout. */
    cli_stdout_open();
    return cli_finish_stdout(dispatch(argc, argv));
}
