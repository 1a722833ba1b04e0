/* SPDX-License-Identifier: MIT */
/*
 * council serve: run the HTTP service (src/server/) until SIGINT or
 * SIGTERM; SIGHUP reloads the councils directory.  Once it listens it
 * prints "council serve listening on http://HOST:PORT" on stderr, so
 * scripts and tests can wait for it.
 *
 * Stopping: the first SIGINT or SIGTERM stops taking new runs (503;
 * other requests are still answered), and gives the runs in flight
 * --shutdown-grace to end; then, or at a second signal, the runs still going
 * are cancelled (each is recorded as cancelled, with its partial result) and
 * the server closes.  Exit codes: 0 after a clean stop, 1 if the server could
 * not start, 2 for usage or council-file errors.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "serve.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"

static const char serve_usage[] =
    "usage: council serve [options]\n"
    "\n"
    "Serve councils over HTTP: a REST API for runs, live events as\n"
    "Server-Sent Events, an OpenAI-compatible /v1/chat/completions, a web\n"
    "page at /, and /healthz and /metrics.  See docs/server.md.\n"
    "\n"
    "options:\n"
    "  --listen ADDR          numeric HOST:PORT (default " DEFAULT_LISTEN ";\n"
    "                         port 0 = any free port)\n"
    "  --councils DIR         serve the councils of DIR (*.yaml, *.yml,\n"
    "                         *.json; reloaded on SIGHUP); default: the\n"
    "                         built-in demo council on an in-process mock LLM\n"
    "  --db PATH              the SQLite store every run is recorded to\n"
    "                         (default: $COUNCIL_DB, or\n"
    "                         $XDG_DATA_HOME/council/runs.db, or\n"
    "                         ~/.local/share/council/runs.db)\n"
    "  --record SPEC          record runs there too, repeatable:\n"
    "                         sqlite:PATH, jsonl:DIR, redis:URL or\n"
    "                         webhook:URL (POST\n"
    "                         each run's outcome there; see council run\n"
    "                         --help)\n"
    "  --webhook-secret-env NAME  sign webhook POSTs with the secret in\n"
    "                         $NAME (default: $COUNCIL_WEBHOOK_SECRET if set)\n"
    "  --webhook-events       POST every event to the webhooks too\n"
    "  --token TOKEN          require 'Authorization: Bearer TOKEN'\n"
    "                         (default: $COUNCIL_TOKEN; /healthz and the\n"
    "                         web page's files are open)\n"
    "  --insecure             allow a non-loopback address without a token\n"
    "  --no-inline            refuse inline council definitions in\n"
    "                         POST /v1/runs\n"
    "  --max-runs N           runs in flight at once (default 64); more: 429\n"
    "  --max-streams N        event and chat streams open at once (default\n"
    "                         4096); more: 429\n"
    "  --max-body BYTES       largest request body (default 1048576); more:\n"
    "                         413\n"
    "  --heartbeat DURATION   ': ping' comment on idle streams (default 15s)\n"
    "  --shutdown-grace DUR   on SIGINT/SIGTERM, time given to runs in\n"
    "                         flight before they are cancelled (default 10s)\n"
    "  --threads N            HTTP worker threads (default 2)\n"
    "  --isolation MODE       process: each run in a child process (a crash\n"
    "                         there ends only that run, as crashed); none:\n"
    "                         in this process; default: each council file's\n"
    "                         isolation key, else none\n"
    "  --request-timeout DUR  the most time a client has to send a whole\n"
    "                         request, headers and body, from the\n"
    "                         connection's opening or its previous\n"
    "                         request's end (default 30s); past it, 408 and\n"
    "                         the connection is closed\n"
    "  --max-client-conns N   connections open at once from one client\n"
    "                         address (default 256; 0 = no limit); more are\n"
    "                         closed as soon as they are accepted\n"
    "  -h, --help             this help\n"
    "\n"
    "signals: SIGINT or SIGTERM stops (a second one cancels at once);\n"
    "SIGHUP reloads --councils (a bad file keeps the loaded set).\n"
    "\n"
    "exit codes: 0 stopped cleanly, 1 could not start, 2 usage or\n"
    "            council-file error\n";

static int
parse_count(const char *flag, const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || x < lo ||
        x > hi) {
        cli_error("%s %s: expected an integer from %zu to %zu", flag, v, lo,
                  hi);
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

static int
parse_dur(const char *flag, const char *v, uint64_t *ms)
{
    if (council_duration_parse(v, ms) != COUNCIL_OK || *ms == 0) {
        cli_error("%s %s: expected a duration such as 15s or 500ms", flag, v);
        return -1;
    }
    return 0;
}

/* Never runs: the signals are blocked and taken by sigwait. */
static void
on_signal(int sig)
{
    (void)sig;
}

/* Many streams need many descriptors: lift the soft limit. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Wait up to ms for a stop signal; 1 if one came. */
static int
wait_signal(const sigset_t *set, uint64_t ms)
{
    struct timespec ts;
    int sig;

    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    sig = sigtimedwait(set, NULL, &ts);
    return sig == SIGINT || sig == SIGTERM;
}

int
council_cmd_serve(int argc, char **argv)
{
    srv_opts o;
    srv *s = NULL;
    char db[4096], err[1024];
    const char *db_opt = NULL, *token = getenv("COUNCIL_TOKEN");
    uint64_t grace_ms = 10000;
    size_t n;
    struct sigaction sa;
    sigset_t set, stop_set;
    int i, sig = 0, rc;
    /* The --record specs: their args live while the server does. */
    cli_record recs[SRV_MAX_RECORD];
    cli_webhook_opts wo = {NULL, 0};

    memset(&o, 0, sizeof(o));
    o.listen = DEFAULT_LISTEN;
    o.max_runs = 64;
    o.max_streams = 4096;
    o.max_body = 1048576;
    o.heartbeat_ms = 15000;
    o.threads = 2;
    o.request_timeout_ms = 30000;
    o.max_client_conns = 256;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--insecure") == 0) {
            o.insecure = 1;
            continue;
        }
        if (strcmp(a, "--no-inline") == 0) {
            o.no_inline = 1;
            continue;
        }
        if (cli_is_webhook_opt(a)) {
            if (cli_parse_webhook_opt(argc, argv, &i, &wo) != 0)
                return EXIT_USAGE;
            continue;
        }
        if (strcmp(a, "--listen") != 0 && strcmp(a, "--councils") != 0 &&
            strcmp(a, "--db") != 0 && strcmp(a, "--record") != 0 &&
            strcmp(a, "--token") != 0 && strcmp(a, "--max-runs") != 0 &&
            strcmp(a, "--max-streams") != 0 && strcmp(a, "--max-body") != 0 &&
            strcmp(a, "--heartbeat") != 0 &&
            strcmp(a, "--shutdown-grace") != 0 && strcmp(a, "--threads") != 0 &&
            strcmp(a, "--isolation") != 0 &&
            strcmp(a, "--request-timeout") != 0 &&
            strcmp(a, "--max-client-conns") != 0) {
            cli_error("serve: unknown option %s (see council serve --help)", a);
            return EXIT_USAGE;
        }
        if (v == NULL) {
            cli_error("serve: %s needs a value", a);
            return EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--listen") == 0) {
            o.listen = v;
        } else if (strcmp(a, "--councils") == 0) {
            o.councils_dir = v;
        } else if (strcmp(a, "--db") == 0) {
            db_opt = v;
        } else if (strcmp(a, "--record") == 0) {
            if (o.n_rec == SRV_MAX_RECORD) {
                cli_error("at most %d --record options", SRV_MAX_RECORD);
                return EXIT_USAGE;
            }
            if (cli_parse_record(v, &recs[o.n_rec]) != 0)
                return EXIT_USAGE;
            o.n_rec++;
        } else if (strcmp(a, "--token") == 0) {
            token = v;
        } else if (strcmp(a, "--max-runs") == 0) {
            if (parse_count(a, v, 1, 1000000, &o.max_runs) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--max-streams") == 0) {
            if (parse_count(a, v, 1, 1000000, &o.max_streams) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--max-body") == 0) {
            if (parse_count(a, v, 64, (size_t)1 << 30, &o.max_body) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_count(a, v, 1, 64, &n) != 0)
                return EXIT_USAGE;
            o.threads = (int)n;
        } else if (strcmp(a, "--isolation") == 0) {
            if (cli_parse_isolation(v, &o.isolation) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--max-client-conns") == 0) {
            if (parse_count(a, v, 0, 1000000, &o.max_client_conns) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--heartbeat") == 0) {
            if (parse_dur(a, v, &o.heartbeat_ms) != 0)
                return EXIT_USAGE;
        } else if (strcmp(a, "--request-timeout") == 0) {
            if (parse_dur(a, v, &o.request_timeout_ms) != 0)
                return EXIT_USAGE;
        } else {
            if (parse_dur(a, v, &grace_ms) != 0)
                return EXIT_USAGE;
        }
    }
    if (cli_records_finish(recs, o.n_rec, &wo) != 0)
        return EXIT_USAGE;
    for (i = 0; i < o.n_rec; i++) {
        o.rec_ops[i] = recs[i].ops;
        o.rec_args[i] = cli_record_args(&recs[i]);
    }
    o.token = token;
    o.host_program = cli_host_program();
    if (db_opt != NULL) {
        o.db = db_opt;
    } else {
        if (cli_default_db(db, sizeof(db), 1) != 0)
            return EXIT_FAILED;
        o.db = db;
    }

    /* The signals are blocked before any thread starts, so every thread
     * inherits the mask and only sigwait below takes them.  They get a
     * handler first: a shell starts background jobs with SIGINT ignored,
     * and an ignored signal is discarded even when blocked. */
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    raise_nofile();

    rc = srv_open(&o, &s, err, sizeof(err));
    if (rc != 0) {
        if (rc == -2)
            fprintf(stderr, "%s\n", err);
        else
            cli_error("serve: %s", err);
        return rc == -2 ? EXIT_USAGE : EXIT_FAILED;
    }
    fprintf(stderr, "council serve listening on %s\n", srv_url(s));
    fflush(stderr);

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            srv_reload(s);
            continue;
        }
        break;
    }
    srv_stop_accepting(s);
    n = srv_live_runs(s);
    if (n > 0) {
        uint64_t waited = 0;
        int again = 0;

        srv_log(s,
                "stopping: %zu run%s in flight, given %llu ms to end "
                "(signal again to cancel now)",
                n, n == 1 ? "" : "s", (unsigned long long)grace_ms);
        while (waited < grace_ms && srv_live_runs(s) > 0 && !again) {
            again = wait_signal(&stop_set, 50);
            waited += 50;
        }
        n = srv_live_runs(s);
        if (n > 0) {
            srv_log(s, "cancelling %zu run%s", n, n == 1 ? "" : "s");
            srv_cancel_all(s, 10000);
        }
    }
    srv_close(s);
    srv_log(NULL, "stopped");
    return 0;
}
