/* SPDX-License-Identifier: MIT */
/*
 * `council mock-llm`: run the built-in OpenAI/Anthropic mock server until
 * SIGINT or SIGTERM.  Once it listens it prints exactly one line,
 * "mock-llm listening on http://HOST:PORT/v1", and flushes, so scripts and
 * tests can wait for it.  Usage errors exit 2; a server that cannot start
 * exits 1; a clean stop exits 0.  Uses council.h only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "council.h"

#define DEFAULT_LISTEN "127.0.0.1:8089"

static void
usage(FILE *f)
{
    fprintf(
        f, "usage: council mock-llm [options]\n"
           "\n"
           "A mock LLM server (OpenAI and Anthropic APIs) with "
           "deterministic answers.\n"
           "\n"
           "  --listen ADDR          numeric HOST:PORT (default " DEFAULT_LISTEN
           "; port 0 = any free port)\n"
           "  --seed N               seed for the answers (default 0)\n"
           "  --latency DUR          delay before each answer's first "
           "byte (250ms, 2s; bare = ms)\n"
           "  --tokens-per-sec N     streaming pace (default 0 = as fast "
           "as possible)\n"
           "  --faults SPEC          fault rules, see docs/mock-llm.md\n"
           "  --help                 this text\n");
}

/* "250ms", "2s", "5m", "1h"; a bare number is milliseconds. */
static int
parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    unsigned long long v;
    uint64_t mult;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *ms = (uint64_t)v * mult;
    return 0;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

/* Never runs (the signals are blocked and taken by sigwait); it exists so
 * that the signals are not ignored. */
static void
on_stop_signal(int sig)
{
    (void)sig;
}

/* Many slow streams need many descriptors: lift the soft limit. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
council_cmd_mockllm(int argc, char **argv)
{
    council_mockllm_opts opts;
    council_mockllm *m = NULL;
    council_diag diag;
    council_err rc;
    struct sigaction sa;
    sigset_t set;
    int i, sig = 0;

    memset(&opts, 0, sizeof(opts));
    opts.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    opts.listen = DEFAULT_LISTEN;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--listen") != 0 && strcmp(a, "--seed") != 0 &&
            strcmp(a, "--latency") != 0 && strcmp(a, "--tokens-per-sec") != 0 &&
            strcmp(a, "--faults") != 0) {
            fprintf(stderr, "council mock-llm: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (v == NULL) {
            fprintf(stderr, "council mock-llm: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--listen") == 0) {
            opts.listen = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(v, &opts.seed) != 0) {
                fprintf(stderr, "council mock-llm: bad --seed '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--latency") == 0) {
            if (parse_duration(v, &opts.latency_ms) != 0) {
                fprintf(stderr,
                        "council mock-llm: bad --latency '%s' (e.g. 250ms, "
                        "2s)\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--tokens-per-sec") == 0) {
            char *end;

            errno = 0;
            opts.tokens_per_sec = strtod(v, &end);
            if (errno != 0 || *end != '\0' || end == v ||
                !(opts.tokens_per_sec >= 0.0 && opts.tokens_per_sec <= 1e9)) {
                fprintf(stderr, "council mock-llm: bad --tokens-per-sec '%s'\n",
                        v);
                return 2;
            }
        } else {
            opts.faults = v;
        }
    }

    /* SIGINT and SIGTERM are blocked before any thread starts, so every
     * thread inherits the mask and only sigwait below receives them.  They
     * get a handler first: a shell starts background jobs with SIGINT
     * ignored, and an ignored signal is discarded, even when blocked. */
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    raise_nofile();

    memset(&diag, 0, sizeof(diag));
    rc = council_mockllm_open(&opts, &m, &diag);
    if (rc != COUNCIL_OK) {
        fprintf(stderr, "council mock-llm: %s%s%s\n", council_strerror(rc),
                diag.msg[0] ? ": " : "", diag.msg);
        /* Bad flags values are usage errors; the rest is a failure. */
        return rc == COUNCIL_EINVAL ? 2 : 1;
    }
    printf("mock-llm listening on %s\n", council_mockllm_base_url(m));
    if (fflush(stdout) != 0) {
        /* Whoever waits for this line (a script, a test) would wait
         * forever: stop now (main says why, cli_finish_stdout). */
        council_mockllm_close(m);
        return 1;
    }

    while (sigwait(&set, &sig) != 0)
        ;
    council_mockllm_close(m);
    return 0;
}
