/* SPDX-License-Identifier: MIT */
/*
 * faultproxy.h.  Method: one thread polls the listening socket, a wake-up
 * pipe and both sockets of each connection pair.  What is read from one
 * side becomes a chunk queued for the other side with a due time (now,
 * or now + delay), written when due (blocking writes: loopback, small
 * test traffic).  A control call sets its request under the mutex, wakes
 * the thread through the pipe and waits on the condition variable until
 * the thread has applied it, so the fault is in place when the call
 * returns.  A reset sets SO_LINGER {1, 0} before close, so the peer gets
 * an RST, not a FIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "faultproxy.h"
#include "runner.h"

#define MAX_PAIRS 64
#define MAX_TIMES 256

typedef struct chunk {
    struct chunk *next;
    uint64_t due_ns;
    size_t len;
    char data[];
} chunk;

typedef struct pair {
    int fd[2]; /* 0: the client, 1: the target; -1 when closed */
    int eof[2];
    int shut[2];     /* shutdown(SHUT_WR) sent on fd[1 - d] for eof[d] */
    chunk *head[2];  /* read from fd[d], for fd[1 - d] */
    chunk **tail[2]; /* where the next chunk goes */
} pair;

struct faultproxy {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int lfd, wake[2];
    int port, target;
    char url[64];
    /* Under mu: the requests and their sequence. */
    faultproxy_mode want_mode;
    unsigned want_delay;
    int req_reset, req_close, req_stop;
    uint64_t seq, done;
    unsigned accepted, open;
    uint64_t accept_ns[MAX_TIMES];
    /* The thread's own. */
    faultproxy_mode mode;
    unsigned delay_ms;
    pair pairs[MAX_PAIRS];
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
rst_close(int fd)
{
    struct linger l = {1, 0};

    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static void
drop_chunks(pair *pr)
{
    int d;

    for (d = 0; d < 2; d++) {
        while (pr->head[d] != NULL) {
            chunk *k = pr->head[d];

            pr->head[d] = k->next;
            free(k);
        }
        pr->tail[d] = &pr->head[d];
    }
}

/* rst: RST both ways, else FIN. */
static void
pair_close(faultproxy *p, pair *pr, int rst)
{
    int d;

    if (pr->fd[0] < 0 && pr->fd[1] < 0)
        return;
    drop_chunks(pr);
    for (d = 0; d < 2; d++) {
        if (rst)
            rst_close(pr->fd[d]);
        else if (pr->fd[d] >= 0)
            close(pr->fd[d]);
        pr->fd[d] = -1;
    }
    pthread_mutex_lock(&p->mu);
    p->open--;
    pthread_mutex_unlock(&p->mu);
}

static int
connect_target(faultproxy *p)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)p->target);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
on_accept(faultproxy *p)
{
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC), up, i;

    if (fd < 0)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->accepted < MAX_TIMES)
        p->accept_ns[p->accepted] = now_ns();
    p->accepted++;
    pthread_mutex_unlock(&p->mu);
    if (p->mode == FAULTPROXY_RESET) {
        rst_close(fd);
        return;
    }
    up = connect_target(p);
    if (up < 0) {
        close(fd); /* the target is down: the client sees EOF */
        return;
    }
    for (i = 0; i < MAX_PAIRS; i++) {
        pair *pr = &p->pairs[i];

        if (pr->fd[0] < 0 && pr->fd[1] < 0) {
            memset(pr, 0, sizeof(*pr));
            pr->fd[0] = fd;
            pr->fd[1] = up;
            pr->tail[0] = &pr->head[0];
            pr->tail[1] = &pr->head[1];
            pthread_mutex_lock(&p->mu);
            p->open++;
            pthread_mutex_unlock(&p->mu);
            return;
        }
    }
    rst_close(fd);
    rst_close(up);
}

static void
on_readable(faultproxy *p, pair *pr, int d)
{
    char buf[65536];
    ssize_t n = read(pr->fd[d], buf, sizeof(buf));
    chunk *k;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n < 0) {
        pair_close(p, pr, 1); /* pass the reset on */
        return;
    }
    if (n == 0) {
        pr->eof[d] = 1;
        if (p->mode == FAULTPROXY_BLACKHOLE && d == 0)
            pair_close(p, pr, 0);
        else if (pr->eof[0] && pr->eof[1])
            pair_close(p, pr, 0);
        return;
    }
    if (p->mode == FAULTPROXY_BLACKHOLE)
        return; /* read and dropped */
    k = malloc(sizeof(*k) + (size_t)n);
    if (k == NULL)
        return;
    k->next = NULL;
    k->len = (size_t)n;
    k->due_ns =
        now_ns() +
        (p->mode == FAULTPROXY_DELAY ? (uint64_t)p->delay_ms * 1000000u : 0);
    memcpy(k->data, buf, (size_t)n);
    *pr->tail[d] = k;
    pr->tail[d] = &k->next;
}

/* Writes the due chunks; the earliest one not due into *next_ns. */
static void
flush(faultproxy *p, pair *pr, uint64_t now, uint64_t *next_ns)
{
    int d;

    for (d = 0; d < 2 && pr->fd[0] >= 0; d++) {
        while (pr->head[d] != NULL && pr->head[d]->due_ns <= now) {
            chunk *k = pr->head[d];
            size_t off = 0;

            while (off < k->len) {
                ssize_t w = send(pr->fd[1 - d], k->data + off, k->len - off,
                                 MSG_NOSIGNAL);

                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    pair_close(p, pr, 1);
                    return;
                }
                off += (size_t)w;
            }
            pr->head[d] = k->next;
            if (pr->head[d] == NULL)
                pr->tail[d] = &pr->head[d];
            free(k);
        }
        if (pr->head[d] != NULL && pr->head[d]->due_ns < *next_ns)
            *next_ns = pr->head[d]->due_ns;
        if (pr->head[d] == NULL && pr->eof[d] && !pr->shut[d] &&
            p->mode != FAULTPROXY_BLACKHOLE) {
            shutdown(pr->fd[1 - d], SHUT_WR);
            pr->shut[d] = 1;
        }
    }
}

/* Applies the requests under mu; 1 to stop. */
static int
apply(faultproxy *p)
{
    int i, stop, reset, close_all;

    pthread_mutex_lock(&p->mu);
    p->mode = p->want_mode;
    p->delay_ms = p->want_delay;
    reset = p->req_reset || p->mode == FAULTPROXY_RESET;
    close_all = p->req_close;
    stop = p->req_stop;
    p->req_reset = p->req_close = 0;
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < MAX_PAIRS; i++) {
        pair *pr = &p->pairs[i];

        if (pr->fd[0] < 0 && pr->fd[1] < 0)
            continue;
        if (reset || stop)
            pair_close(p, pr, reset);
        else if (close_all)
            pair_close(p, pr, 0);
        else if (p->mode == FAULTPROXY_BLACKHOLE)
            drop_chunks(pr);
    }
    pthread_mutex_lock(&p->mu);
    p->done = p->seq;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static void *
run(void *arg)
{
    faultproxy *p = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    int who[2 + 2 * MAX_PAIRS];

    for (;;) {
        uint64_t now = now_ns(), next = UINT64_MAX;
        int nfds = 0, i, timeout, d;
        char drain[64];

        if (apply(p))
            break;
        for (i = 0; i < MAX_PAIRS; i++)
            if (p->pairs[i].fd[0] >= 0)
                flush(p, &p->pairs[i], now, &next);
        fds[nfds].fd = p->wake[0];
        fds[nfds++].events = POLLIN;
        fds[nfds].fd = p->lfd;
        fds[nfds++].events = POLLIN;
        for (i = 0; i < MAX_PAIRS; i++) {
            for (d = 0; d < 2; d++) {
                pair *pr = &p->pairs[i];

                if (pr->fd[d] < 0 || pr->eof[d])
                    continue;
                who[nfds] = i * 2 + d;
                fds[nfds].fd = pr->fd[d];
                fds[nfds++].events = POLLIN;
            }
        }
        timeout = next == UINT64_MAX ? -1
                  : next <= now      ? 0
                                     : (int)((next - now) / 1000000u + 1);
        if (poll(fds, (nfds_t)nfds, timeout) < 0)
            continue;
        if (fds[0].revents != 0)
            while (read(p->wake[0], drain, sizeof(drain)) > 0)
                ;
        if (fds[1].revents & POLLIN)
            on_accept(p);
        for (i = 2; i < nfds; i++) {
            pair *pr = &p->pairs[who[i] / 2];

            d = who[i] % 2;
            if (fds[i].revents != 0 && pr->fd[d] == fds[i].fd)
                on_readable(p, pr, d);
        }
    }
    return NULL;
}

static void
request(faultproxy *p)
{
    uint64_t mine;
    char b = 1;

    mine = ++p->seq;
    while (write(p->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    while (p->done < mine)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

faultproxy *
faultproxy_start(int target_port)
{
    faultproxy *p = calloc(1, sizeof(*p));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int i;

    ASSERT_NOT_NULL(p);
    for (i = 0; i < MAX_PAIRS; i++)
        p->pairs[i].fd[0] = p->pairs[i].fd[1] = -1;
    p->target = target_port;
    p->mode = p->want_mode = FAULTPROXY_PASS;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(p->lfd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->lfd, 64) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &len) != 0)
        FAIL("faultproxy: listen: %s", strerror(errno));
    p->port = ntohs(a.sin_port);
    snprintf(p->url, sizeof(p->url), "redis://127.0.0.1:%d", p->port);
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        FAIL("faultproxy: pipe: %s", strerror(errno));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, run, p) != 0)
        FAIL("faultproxy: pthread_create failed");
    return p;
}

int
faultproxy_port(const faultproxy *p)
{
    return p->port;
}

const char *
faultproxy_url(const faultproxy *p)
{
    return p->url;
}

void
faultproxy_set(faultproxy *p, faultproxy_mode mode, unsigned delay_ms)
{
    pthread_mutex_lock(&p->mu);
    p->want_mode = mode;
    p->want_delay = delay_ms;
    request(p);
}

void
faultproxy_reset_all(faultproxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->req_reset = 1;
    request(p);
}

void
faultproxy_close_all(faultproxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->req_close = 1;
    request(p);
}

unsigned
faultproxy_accepted(faultproxy *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->accepted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned
faultproxy_open(faultproxy *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->open;
    pthread_mutex_unlock(&p->mu);
    return n;
}

uint64_t
faultproxy_accept_ns(faultproxy *p, unsigned i)
{
    uint64_t t = 0;

    pthread_mutex_lock(&p->mu);
    if (i < p->accepted && i < MAX_TIMES)
        t = p->accept_ns[i];
    pthread_mutex_unlock(&p->mu);
    return t;
}

void
faultproxy_stop(faultproxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->req_stop = 1;
    request(p);
    pthread_join(p->th, NULL);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
