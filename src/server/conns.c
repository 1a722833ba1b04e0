/* SPDX-License-Identifier: MIT */
/*
 * The time a client has to send a request (--request-timeout).
 * libmicrohttpd's own timeout is an idle timeout: every byte received
 * restarts it, so a client sending one header line a minute holds a
 * connection forever.  Here every connection gets a deadline when it
 * opens, and again when a request on it ends (keep-alive): by then the
 * whole next request, headers and body, must be in.  A connection past
 * its deadline is cut: a 408 when its request line had come (a client
 * mid-request learns why), nothing for one idle between requests, then
 * shutdown(2), which libmicrohttpd sees as the client leaving.  Replies
 * are not bounded here: an event stream lasts as long as its run.
 *
 * Method: a small record per connection (libmicrohttpd's socket
 * context, made and freed by the connection notifications).  Records
 * still receiving a request sit in one list in deadline order: every
 * deadline is now + the same bound, so appending keeps the order and the
 * sweep (the ticker thread, every quarter heartbeat, at most 250 ms)
 * stops at the first record not yet due.  The notification of a closed
 * connection comes before libmicrohttpd closes its socket, and unlinks
 * the record under conn_mu, the lock the sweep cuts under: the sweep
 * never touches a descriptor that was closed (and maybe reused).  The
 * access handler takes a record out of the list under the same lock once
 * its request is in, and learns then whether the sweep cut it first.
 *
 * Connections per client address are limited by libmicrohttpd itself
 * (MHD_OPTION_PER_IP_CONNECTION_LIMIT, --max-client-conns): one past it
 * is closed as soon as it is accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "serve.h"

struct sconn {
    srv *s;
    int fd;
    int reading;  /* in the list: receiving a request */
    int req_line; /* this request's line came */
    int cut;      /* the sweep cut it */
    uint64_t deadline_ns;
    sconn *prev, *next;
};

void
conns_init(srv *s)
{
    pthread_mutex_init(&s->conn_mu, NULL);
    s->conn_mu_init = 1;
}

void
conns_destroy(srv *s)
{
    if (s->conn_mu_init)
        pthread_mutex_destroy(&s->conn_mu);
    s->conn_mu_init = 0;
}

/* conn_mu held. */
static void
unlink_rd(srv *s, sconn *c)
{
    if (!c->reading)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->rd_head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        s->rd_tail = c->prev;
    c->prev = c->next = NULL;
    c->reading = 0;
}

/* conn_mu held. */
static void
link_rd(srv *s, sconn *c)
{
    if (c->reading || c->cut)
        return;
    c->deadline_ns = mono_ns() + s->o.request_timeout_ms * 1000000u;
    c->req_line = 0;
    c->prev = s->rd_tail;
    c->next = NULL;
    if (s->rd_tail != NULL)
        s->rd_tail->next = c;
    else
        s->rd_head = c;
    s->rd_tail = c;
    c->reading = 1;
}

static sconn *
of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

void
conns_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
             enum MHD_ConnectionNotificationCode code)
{
    srv *s = cls;
    sconn *c = *socket_ctx;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        if (ci == NULL)
            return;
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            /* No record, no bound: refuse the connection instead. */
            shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        c->s = s;
        c->fd = ci->connect_fd;
        *socket_ctx = c;
        if (s->o.request_timeout_ms == 0)
            return;
        pthread_mutex_lock(&s->conn_mu);
        link_rd(s, c);
        pthread_mutex_unlock(&s->conn_mu);
        return;
    }
    if (c == NULL)
        return;
    pthread_mutex_lock(&s->conn_mu);
    unlink_rd(s, c);
    pthread_mutex_unlock(&s->conn_mu);
    *socket_ctx = NULL;
    free(c);
}

void
conns_request_line(struct MHD_Connection *conn)
{
    sconn *c = of(conn);

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->s->conn_mu);
    c->req_line = 1;
    pthread_mutex_unlock(&c->s->conn_mu);
}

int
conns_replying(struct MHD_Connection *conn)
{
    sconn *c = of(conn);
    int cut;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->s->conn_mu);
    unlink_rd(c->s, c);
    cut = c->cut;
    pthread_mutex_unlock(&c->s->conn_mu);
    return cut ? -1 : 0;
}

void
conns_request_done(struct MHD_Connection *conn)
{
    sconn *c = of(conn);

    if (c == NULL || c->s->o.request_timeout_ms == 0)
        return;
    pthread_mutex_lock(&c->s->conn_mu);
    link_rd(c->s, c);
    pthread_mutex_unlock(&c->s->conn_mu);
}

/* What a client cut mid-request gets before the connection closes. */
static const char timeout_body[] =
    "{\"error\":{\"type\":\"request_timeout\",\"message\":\"the request "
    "did not arrive whole in time (--request-timeout)\"}}\n";

/* The 408 in reply[0..size): its length. */
static size_t
timeout_reply(char *reply, size_t size)
{
    int len = snprintf(reply, size,
                       "HTTP/1.1 408 Request Timeout\r\n"
                       "Content-Type: application/json\r\n"
                       "Cache-Control: no-store\r\n"
                       "Connection: close\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       sizeof(timeout_body) - 1, timeout_body);

    return len > 0 && (size_t)len < size ? (size_t)len : 0;
}

void
conns_sweep(srv *s, uint64_t now_ns)
{
    char reply[512];
    size_t len = 0, n = 0;

    pthread_mutex_lock(&s->conn_mu);
    while (s->rd_head != NULL && s->rd_head->deadline_ns <= now_ns) {
        sconn *c = s->rd_head;

        unlink_rd(s, c);
        c->cut = 1;
        /* libmicrohttpd writes nothing while it reads a request, so the
         * 408 cannot interleave with a reply of its own.  Best effort:
         * a full socket buffer just gets the close. */
        if (c->req_line && len == 0)
            len = timeout_reply(reply, sizeof(reply));
        if (c->req_line && len > 0)
            (void)send(c->fd, reply, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        shutdown(c->fd, SHUT_RDWR);
        n++;
    }
    pthread_mutex_unlock(&s->conn_mu);
    /* mu is held by the caller (the ticker). */
    s->c.requests_timed_out += n;
}
