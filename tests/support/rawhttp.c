/* SPDX-License-Identifier: MIT */
/*
 * The raw scripted HTTP server (see rawhttp.h).  Method: every wait (for a
 * connection, for request bytes, for a step's delay, for a stall) is a
 * poll() that also watches a self-pipe, so rawhttp_stop can end every
 * thread at once; connection threads are kept in a table and joined.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawhttp.h"

#define MAX_CONNS 256
#define MAX_NTH 16

typedef struct old_script {
    rawhttp_step *steps;
    size_t n;
    struct old_script *next;
} old_script;

typedef struct conn {
    rawhttp *s;
    int fd;
    pthread_t th;
} conn;

struct rawhttp {
    int lfd;
    int stop_pipe[2];
    int port;
    pthread_t accept_th;
    pthread_mutex_t mu;
    rawhttp_step *steps; /* owned copies */
    size_t n_steps;
    int end;
    old_script *old; /* replaced scripts: a connection may still use one */
    int n_requests;
    int inflight, max_inflight;
    struct {
        int nth;
        rawhttp_step *steps;
        size_t n;
        int end;
    } nth[MAX_NTH];
    int n_nth;
    char *last;
    conn *conns[MAX_CONNS];
    int n_conns;
};

static void
die(const char *what)
{
    fprintf(stderr, "rawhttp: %s: %s\n", what, strerror(errno));
    exit(3);
}

/* Waits for fd to be readable: 1 ready, 0 timeout, -1 stopping. */
static int
wait_fd(rawhttp *s, int fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = s->stop_pipe[0], .events = POLLIN},
                          {.fd = fd, .events = POLLIN}};
    int r;

    do
        r = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0 || (p[0].revents & POLLIN))
        return -1;
    return r > 0 ? 1 : 0;
}

static size_t
content_length(const char *hdr)
{
    const char *p = hdr;

    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "content-length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
    }
    return 0;
}

/* Reads one request; returns the malloc'd text, or NULL. */
static char *
read_request(rawhttp *s, int fd, size_t *hdr_len)
{
    size_t cap = 4096, len = 0, want = 0;
    char *buf = malloc(cap), *end = NULL;
    ssize_t r;

    for (;;) {
        if (end != NULL && len >= want)
            break;
        if (wait_fd(s, fd, -1) != 1)
            goto fail;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            goto fail;
        len += (size_t)r;
        buf[len] = '\0';
        if (end == NULL) {
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                *hdr_len = (size_t)(end - buf) + 4;
                want = *hdr_len + content_length(buf);
            }
        }
    }
    return buf;
fail:
    free(buf);
    return NULL;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The request's header block as a JSON string body (no quotes). */
static int
write_echo(int fd, const char *req, size_t hdr_len)
{
    char *out = malloc(hdr_len * 6 + 1);
    size_t i, o = 0;
    int rc;

    for (i = 0; i < hdr_len; i++) {
        unsigned char ch = (unsigned char)req[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    rc = write_all(fd, out, o);
    free(out);
    return rc;
}

static void *
conn_main(void *arg)
{
    conn *c = arg;
    rawhttp *s = c->s;
    rawhttp_step *steps;
    size_t n, i, hdr_len = 0;
    int end, counted = 1;
    char *req = read_request(s, c->fd, &hdr_len);

    if (req == NULL) {
        close(c->fd);
        c->fd = -1;
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->n_requests++;
    free(s->last);
    s->last = strdup(req);
    steps = s->steps;
    n = s->n_steps;
    end = s->end;
    for (i = 0; i < (size_t)s->n_nth; i++)
        if (s->nth[i].nth == s->n_requests) {
            steps = s->nth[i].steps;
            n = s->nth[i].n;
            end = s->nth[i].end;
        }
    if (++s->inflight > s->max_inflight)
        s->max_inflight = s->inflight;
    pthread_mutex_unlock(&s->mu);
    for (i = 0; i < n; i++) {
        if (steps[i].delay_us >= 1000) {
            if (wait_fd(s, -1, (int)(steps[i].delay_us / 1000)) < 0)
                goto out;
        } else if (steps[i].delay_us > 0) {
            usleep(steps[i].delay_us);
        }
        if (i + 1 == n) {
            /* The request is answered once its last bytes are on their
             * way: the client may start its next request as soon as it
             * has them, before this thread gets the lock again (under
             * load that made max_inflight count one request too many). */
            pthread_mutex_lock(&s->mu);
            s->inflight--;
            pthread_mutex_unlock(&s->mu);
            counted = 0;
        }
        if (steps[i].data == NULL) {
            if (write_echo(c->fd, req, hdr_len) != 0)
                goto out;
        } else if (write_all(c->fd, steps[i].data, steps[i].len) != 0) {
            goto out;
        }
    }
    if (counted) {
        pthread_mutex_lock(&s->mu);
        s->inflight--;
        pthread_mutex_unlock(&s->mu);
        counted = 0;
    }
    if (end == RAWHTTP_RESET) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    } else if (end == RAWHTTP_STALL) {
        char tmp[256];
        /* Until the client leaves or the server stops. */
        while (wait_fd(s, c->fd, -1) == 1 && read(c->fd, tmp, sizeof(tmp)) > 0)
            ;
    }
out:
    if (counted) {
        pthread_mutex_lock(&s->mu);
        s->inflight--;
        pthread_mutex_unlock(&s->mu);
    }
    close(c->fd);
    c->fd = -1;
    free(req);
    return NULL;
}

static void *
accept_main(void *arg)
{
    rawhttp *s = arg;

    while (wait_fd(s, s->lfd, -1) == 1) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        int one = 1;
        conn *c;

        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        if (s->n_conns == MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            free(c);
            continue;
        }
        s->conns[s->n_conns++] = c;
        pthread_mutex_unlock(&s->mu);
        if (pthread_create(&c->th, NULL, conn_main, c) != 0)
            die("pthread_create");
    }
    return NULL;
}

rawhttp *
rawhttp_start(void)
{
    rawhttp *s = calloc(1, sizeof(*s));
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);

    pthread_mutex_init(&s->mu, NULL);
    if (pipe(s->stop_pipe) != 0)
        die("pipe");
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        die("socket");
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->lfd, 128) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0)
        die("bind/listen");
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->accept_th, NULL, accept_main, s) != 0)
        die("pthread_create");
    return s;
}

int
rawhttp_port(const rawhttp *s)
{
    return s->port;
}

static rawhttp_step *
copy_steps(const rawhttp_step *steps, size_t n)
{
    rawhttp_step *copy = calloc(n ? n : 1, sizeof(*copy));
    size_t i;

    for (i = 0; i < n; i++) {
        copy[i] = steps[i];
        if (steps[i].data != NULL) {
            size_t len = steps[i].len ? steps[i].len : strlen(steps[i].data);
            char *d = malloc(len ? len : 1);
            memcpy(d, steps[i].data, len);
            copy[i].data = d;
            copy[i].len = len;
        }
    }
    return copy;
}

void
rawhttp_script_nth(rawhttp *s, int nth, const rawhttp_step *steps, size_t n,
                   int end)
{
    rawhttp_step *copy = copy_steps(steps, n);

    pthread_mutex_lock(&s->mu);
    if (s->n_nth == MAX_NTH) {
        pthread_mutex_unlock(&s->mu);
        fprintf(stderr, "rawhttp: more than %d nth scripts\n", MAX_NTH);
        exit(3);
    }
    s->nth[s->n_nth].nth = nth;
    s->nth[s->n_nth].steps = copy;
    s->nth[s->n_nth].n = n;
    s->nth[s->n_nth].end = end;
    s->n_nth++;
    pthread_mutex_unlock(&s->mu);
}

void
rawhttp_reply_nth(rawhttp *s, int nth, const char *response, int end)
{
    rawhttp_step st = {response, 0, 0};

    rawhttp_script_nth(s, nth, &st, 1, end);
}

int
rawhttp_max_inflight(rawhttp *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->max_inflight;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void
rawhttp_script(rawhttp *s, const rawhttp_step *steps, size_t n, int end)
{
    rawhttp_step *copy = calloc(n ? n : 1, sizeof(*copy));
    size_t i;

    for (i = 0; i < n; i++) {
        copy[i] = steps[i];
        if (steps[i].data != NULL) {
            size_t len = steps[i].len ? steps[i].len : strlen(steps[i].data);
            char *d = malloc(len ? len : 1);
            memcpy(d, steps[i].data, len);
            copy[i].data = d;
            copy[i].len = len;
        }
    }
    pthread_mutex_lock(&s->mu);
    /* Old scripts are kept until stop: a running connection may use one. */
    if (s->steps != NULL) {
        old_script *o = calloc(1, sizeof(*o));
        o->steps = s->steps;
        o->n = s->n_steps;
        o->next = s->old;
        s->old = o;
    }
    s->steps = copy;
    s->n_steps = n;
    s->end = end;
    pthread_mutex_unlock(&s->mu);
}

void
rawhttp_reply(rawhttp *s, const char *response, int end)
{
    rawhttp_step st = {response, 0, 0};

    rawhttp_script(s, &st, 1, end);
}

int
rawhttp_requests(rawhttp *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n_requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *
rawhttp_last_request(rawhttp *s)
{
    char *r;

    pthread_mutex_lock(&s->mu);
    r = s->last != NULL ? strdup(s->last) : NULL;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void
rawhttp_stop(rawhttp *s)
{
    size_t i;
    int k;

    if (write(s->stop_pipe[1], "x", 1) != 1)
        die("write");
    pthread_join(s->accept_th, NULL);
    for (k = 0; k < s->n_conns; k++) {
        pthread_join(s->conns[k]->th, NULL);
        free(s->conns[k]);
    }
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    for (i = 0; i < s->n_steps; i++)
        free((void *)s->steps[i].data);
    free(s->steps);
    while (s->old != NULL) {
        old_script *o = s->old;
        s->old = o->next;
        for (i = 0; i < o->n; i++)
            free((void *)o->steps[i].data);
        free(o->steps);
        free(o);
    }
    for (k = 0; k < s->n_nth; k++) {
        for (i = 0; i < s->nth[k].n; i++)
            free((void *)s->nth[k].steps[i].data);
        free(s->nth[k].steps);
    }
    free(s->last);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
