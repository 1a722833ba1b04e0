/* SPDX-License-Identifier: MIT */
/*
 * bench_followers: N concurrent Server-Sent-Events followers of one live
 * run of `council serve` (issue 4's target: 1,000 followers, each gets
 * every event in order; server RSS growth <= 20 KiB per follower).
 *
 *   bench_followers --url http://127.0.0.1:PORT --council NAME
 *                   [--followers N] [--server-pid PID] [--question Q]
 *
 * Starts one run (POST /v1/runs), opens N connections to its
 * /v1/runs/{id}/events at once (plain sockets on one epoll loop), and reads
 * every stream to its end.  Checks: each follower's `id:` lines are 1, 2,
 * 3, … without a gap or a repeat and end with the terminal event
 * (run_completed or run_failed); all followers saw the same number of
 * events.  Measures the server's VmRSS (/proc/PID/status) before the
 * followers connect and, every 10 ms, while they are connected: reports
 * (peak - before) / N.  The run must last long enough for all followers
 * to be connected while it is live (use a slow mock-llm: --latency,
 * --tokens-per-sec): the output gives when every request had been sent
 * (all_sent_s), when the last stream ended (wall_s), and the events each
 * follower got.  One JSON line
 * on stdout; exit 1 if any check failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct follower {
    int fd;
    int connected, done, bad;
    long last_seq, events;
    size_t sent;
    char line[8192];
    size_t llen;
    int terminal_next; /* the current event is a terminal one */
    int saw_terminal;
} follower;

static char host[64] = "127.0.0.1";
static int port;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kib(long pid)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static int
dial(int nonblock)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* POST /v1/runs; the new run's id into id. */
static int
start_run(const char *council, const char *question, char *id, size_t size)
{
    char body[1024], req[2048], resp[8192];
    size_t got = 0;
    ssize_t n;
    const char *p, *q;
    int fd = dial(0);

    if (fd < 0)
        return -1;
    snprintf(body, sizeof(body), "{\"council\":\"%s\",\"input\":\"%s\"}",
             council, question);
    snprintf(req, sizeof(req),
             "POST /v1/runs HTTP/1.1\r\nHost: %s\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\nConnection: "
             "close\r\n\r\n%s",
             host, strlen(body), body);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while (got + 1 < sizeof(resp) &&
           (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    close(fd);
    if (strncmp(resp, "HTTP/1.1 201", 12) != 0) {
        fprintf(stderr, "POST /v1/runs: %.200s\n", resp);
        return -1;
    }
    p = strstr(resp, "\"id\":\"");
    if (p == NULL)
        return -1;
    p += 6;
    q = strchr(p, '"');
    if (q == NULL || (size_t)(q - p) >= size)
        return -1;
    memcpy(id, p, (size_t)(q - p));
    id[q - p] = '\0';
    return 0;
}

static void
on_line(follower *f, const char *l, size_t n)
{
    if (n >= 4 && memcmp(l, "id: ", 4) == 0) {
        long seq = strtol(l + 4, NULL, 10);
        if (seq != f->last_seq + 1)
            f->bad = 1;
        f->last_seq = seq;
        f->events++;
    } else if (n >= 7 && memcmp(l, "event: ", 7) == 0) {
        f->terminal_next =
            (n - 7 == 13 && memcmp(l + 7, "run_completed", 13) == 0) ||
            (n - 7 == 10 && memcmp(l + 7, "run_failed", 10) == 0);
        if (f->terminal_next)
            f->saw_terminal = 1;
    }
}

static void
feed(follower *f, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            size_t l = f->llen;
            if (l > 0 && f->line[l - 1] == '\r')
                l--;
            on_line(f, f->line, l);
            f->llen = 0;
        } else if (f->llen + 1 < sizeof(f->line)) {
            f->line[f->llen++] = c;
        }
    }
}

int
main(int argc, char **argv)
{
    const char *url = NULL, *council = "demo",
               *question = "Why is the sky blue?";
    long n = 1000, spid = 0, rss0 = -1, rss_peak = -1, connected = 0;
    char id[128], req[512];
    follower *fs;
    int ep, left, i, failed = 0;
    struct epoll_event evs[256];
    struct rlimit rl;
    double t0, t_conn = 0, t_end;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--council") == 0 && i + 1 < argc)
            council = argv[++i];
        else if (strcmp(argv[i], "--followers") == 0 && i + 1 < argc)
            n = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--server-pid") == 0 && i + 1 < argc)
            spid = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--question") == 0 && i + 1 < argc)
            question = argv[++i];
        else {
            fprintf(stderr,
                    "usage: bench_followers --url http://127.0.0.1:PORT "
                    "[--council NAME] [--followers N] [--server-pid PID] "
                    "[--question Q]\n");
            return 2;
        }
    }
    if (url == NULL || sscanf(url, "http://%63[0-9.]:%d", host, &port) != 2 ||
        n < 1) {
        fprintf(stderr, "bench_followers: --url http://IPV4:PORT needed\n");
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fs = calloc((size_t)n, sizeof(*fs));
    ep = epoll_create1(0);
    if (fs == NULL || ep < 0)
        return 1;
    if (spid > 0)
        rss0 = rss_kib(spid);
    if (start_run(council, question, id, sizeof(id)) != 0) {
        fprintf(stderr, "bench_followers: could not start a run\n");
        return 1;
    }
    snprintf(req, sizeof(req),
             "GET /v1/runs/%s/events HTTP/1.1\r\nHost: %s\r\nAccept: "
             "text/event-stream\r\n\r\n",
             id, host);
    t0 = now_s();
    for (i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT,
                                .data.u32 = (uint32_t)i};
        fs[i].fd = dial(1);
        if (fs[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fs[i].fd, &e) != 0) {
            fprintf(stderr, "bench_followers: connection %d: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }
    left = (int)n;
    while (left > 0) {
        int k = epoll_wait(ep, evs, 256, 10);
        long r;

        if (spid > 0 && (r = rss_kib(spid)) > rss_peak)
            rss_peak = r;
        if (now_s() - t0 > 600) {
            fprintf(stderr,
                    "bench_followers: still %d streams open after 600 s\n",
                    left);
            return 1;
        }
        for (int j = 0; j < k; j++) {
            follower *f = &fs[evs[j].data.u32];
            char buf[16384];
            ssize_t got;

            if (f->done)
                continue;
            if ((evs[j].events & EPOLLOUT) && f->sent < strlen(req)) {
                got = write(f->fd, req + f->sent, strlen(req) - f->sent);
                if (got > 0)
                    f->sent += (size_t)got;
                if (f->sent == strlen(req)) {
                    struct epoll_event e = {.events = EPOLLIN,
                                            .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, f->fd, &e);
                    if (++connected == n)
                        t_conn = now_s() - t0;
                }
            }
            if (!(evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            while ((got = read(f->fd, buf, sizeof(buf))) > 0)
                feed(f, buf, (size_t)got);
            if (got == 0 || (got < 0 && errno != EAGAIN)) {
                f->done = 1;
                close(f->fd);
                left--;
            }
        }
    }
    t_end = now_s() - t0;
    for (i = 0; i < n; i++)
        if (fs[i].bad || !fs[i].saw_terminal || fs[i].events != fs[0].events ||
            fs[i].last_seq != fs[i].events)
            failed++;
    printf("{\"bench\":\"followers\",\"run_id\":\"%s\",\"followers\":%ld,"
           "\"all_sent_s\":%.3f,\"wall_s\":%.3f,\"events_each\":%ld,"
           "\"ok\":%ld,\"bad\":%d,\"server_rss_before_kib\":%ld,"
           "\"server_rss_peak_kib\":%ld,\"kib_per_follower\":%.1f}\n",
           id, n, t_conn, t_end, fs[0].events, n - failed, failed, rss0,
           rss_peak,
           rss0 > 0 && rss_peak > 0 ? (double)(rss_peak - rss0) / (double)n
                                    : -1.0);
    return failed ? 1 : 0;
}
