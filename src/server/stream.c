/* SPDX-License-Identifier: MIT */
/*
 * Followers of a run's events: Server-Sent Events clients (GET
 * /v1/runs/{id}/events) and chat completions (chat.c formats them).
 *
 * Method: a follower is a libmicrohttpd response whose content reader
 * walks the run's event list (runs.c) from its own position.  Each event
 * is written straight from the event's shared JSON text (a header, the
 * borrowed JSON, a tail), so a follower costs a small struct and a
 * reference, whatever the number of followers.  When the reader has
 * caught up with a live run it suspends its connection, with the lock
 * held, after linking itself into the run's waiter list; the recorder
 * that appends the next event unlinks and resumes every waiter.  A slow
 * reader only delays itself: events stay in the run's list, and the
 * reader is asked for more only when its socket can take it.
 *
 * The ticker thread, every quarter heartbeat (at most 250 ms), looks at
 * the suspended followers: one idle for a heartbeat gets a ": ping"
 * comment (not a non-streamed chat, which has no body yet), and one whose
 * client has gone (poll says POLLRDHUP or POLLHUP: a suspended connection
 * is not watched by libmicrohttpd) is resumed to be closed.  Closing a
 * chat's connection early cancels its run (stream_free); closing an SSE
 * follower never touches the run.  The same tick cuts connections whose
 * request did not arrive in time (conns.c).
 *
 * HEAD of an event stream (stream_head) answers the headers a GET would
 * get and starts no follower.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* The most a follower writes per reader call, and the block size of its
 * response (libmicrohttpd allocates it with the response and fills it):
 * small blocks keep a follower's resident memory small (1,000 followers
 * of one live run, measured: 18.5 KiB each at the peak with 1 KiB
 * blocks and 12 KiB connection pools, 25.7 KiB with 4 KiB and 16 KiB). */
#define BLOCK_SIZE 4096
#define RESP_BLOCK 1024

stream *
stream_new(srv *s, skind kind, struct MHD_Connection *conn, srun *run,
           size_t after)
{
    stream *st = calloc(1, sizeof(*st));
    const union MHD_ConnectionInfo *ci;

    if (st == NULL)
        return NULL;
    st->s = s;
    st->kind = kind;
    st->conn = conn;
    st->run = run;
    st->next = after;
    st->last_out_ns = mono_ns();
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci != NULL ? ci->connect_fd : -1;
    return st;
}

int
stream_admit(srv *s)
{
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    if (s->streams >= s->o.max_streams) {
        s->c.streams_rejected++;
        rc = -1;
    } else {
        s->streams++;
        s->c.streams_opened++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void
clear_segments(stream *st)
{
    council_event_unref(st->cur);
    st->cur = NULL;
    st->hdr_len = st->body_len = st->tail_len = 0;
    st->body = st->tail = NULL;
    st->off = 0;
}

void
stream_free(stream *st, enum MHD_RequestTerminationCode toe)
{
    srv *s = st->s;
    int cancel = 0;

    pthread_mutex_lock(&s->mu);
    if (st->suspended) {
        waiter_unlink(st->run, st);
        st->suspended = 0;
    }
    if (st->counted) {
        st->counted = 0;
        s->streams--;
    }
    if (st->run != NULL && (st->kind == SK_CHAT || st->kind == SK_CHAT_WAIT) &&
        toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !st->run->ended)
        cancel = 1;
    pthread_mutex_unlock(&s->mu);
    if (cancel) {
        srv_log(s, "run %s: the chat client went away; cancelling the run",
                st->run->id);
        council_engine_cancel(s->eng, st->run->id);
    }
    srun_release(s, st->run);
    store_replay_free(st->replay);
    clear_segments(st);
    sbuf_free(&st->out);
    chat_state_free(st->chat);
    free(st);
}

/* Copy pending output into buf; returns the bytes copied. */
static size_t
drain(stream *st, char *buf, size_t max)
{
    size_t n = 0;

    if (st->hdr_len + st->body_len + st->tail_len > 0) {
        const char *seg[3] = {st->hdr, st->body, st->tail};
        size_t len[3] = {st->hdr_len, st->body_len, st->tail_len};
        size_t total = len[0] + len[1] + len[2], i, base = 0;

        for (i = 0; i < 3 && n < max; i++) {
            if (st->off < base + len[i]) {
                size_t from = st->off - base, k = len[i] - from;

                if (k > max - n)
                    k = max - n;
                memcpy(buf + n, seg[i] + from, k);
                n += k;
                st->off += k;
            }
            base += len[i];
        }
        if (st->off == total)
            clear_segments(st);
        else
            return n;
    }
    if (n < max && st->out_off < st->out.len) {
        size_t k = st->out.len - st->out_off;

        if (k > max - n)
            k = max - n;
        memcpy(buf + n, st->out.p + st->out_off, k);
        n += k;
        st->out_off += k;
        if (st->out_off == st->out.len) {
            st->out.len = 0;
            st->out_off = 0;
            /* Do not keep a big buffer for a long-lived stream. */
            if (st->out.cap > 65536)
                sbuf_free(&st->out);
        }
    }
    return n;
}

static int
pending(const stream *st)
{
    return st->hdr_len + st->body_len + st->tail_len > 0 ||
           st->out_off < st->out.len;
}

/* One event into SSE framing; takes the reference to ev. */
static void
sse_event(stream *st, council_event *ev)
{
    const char *json = council_event_json(ev);
    council_event_type t = council_event_type_of(ev);
    int n;

    if (json == NULL) {
        council_event_unref(ev);
        st->failed = 1;
        return;
    }
    n = snprintf(st->hdr, sizeof(st->hdr), "id: %llu\nevent: %s\ndata: ",
                 (unsigned long long)council_event_seq(ev),
                 council_event_type_name(t));
    st->hdr_len = (size_t)n;
    st->cur = ev;
    st->body = json;
    st->body_len = strlen(json);
    st->tail = "\n\n";
    st->tail_len = 2;
    st->off = 0;
    if (t == COUNCIL_EV_RUN_COMPLETED || t == COUNCIL_EV_RUN_FAILED)
        st->finished = 1;
}

static void
ping(stream *st)
{
    if (st->kind == SK_SSE) {
        memcpy(st->hdr, ": ping\n\n", 8);
        st->hdr_len = 8;
        st->off = 0;
    } else {
        sbuf_str(&st->out, ": ping\n\n");
    }
}

static ssize_t
reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    srv *s = st->s;
    srun *r = st->run;
    size_t n = 0;

    (void)pos;
    if (max > BLOCK_SIZE)
        max = BLOCK_SIZE;
    for (;;) {
        council_event *ev;

        n += drain(st, buf + n, max - n);
        if (pending(st) || n == max)
            break;
        if (st->failed || st->out.oom)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->finished) {
            if (n > 0)
                break;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (st->kind == SK_STORE) {
            /* A stored run: batches from the store, never waits. */
            int got = store_replay_next(st, &ev);

            if (got > 0)
                sse_event(st, ev);
            else if (got == 0)
                st->finished = 1;
            else
                st->failed = 1;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (st->peer_gone) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (st->ping) {
            st->ping = 0;
            pthread_mutex_unlock(&s->mu);
            ping(st);
            continue;
        }
        if (st->next < r->n_ev) {
            ev = council_event_ref(r->ev[st->next++]);
            pthread_mutex_unlock(&s->mu);
            if (st->kind == SK_SSE) {
                sse_event(st, ev);
            } else {
                chat_event(st, ev);
                council_event_unref(ev);
            }
            continue;
        }
        if (r->lost) {
            /* The server could not keep an event: the follower would see
             * a gap.  Cut the stream; the store has the whole run. */
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (r->ended) {
            pthread_mutex_unlock(&s->mu);
            if (st->kind == SK_SSE)
                st->finished = 1;
            else
                chat_end(st);
            continue;
        }
        if (n > 0 || s->closing) {
            pthread_mutex_unlock(&s->mu);
            if (n > 0)
                break;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        st->suspended = 1;
        waiter_link(r, st);
        MHD_suspend_connection(st->conn);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    st->last_out_ns = mono_ns();
    return (ssize_t)n;
}

/* A stream's reply: 200, its headers, a body of unknown length (chunked
 * in HTTP/1.1) from rd, or none (head). */
static enum MHD_Result
queue_stream(struct MHD_Connection *conn, MHD_ContentReaderCallback rd,
             void *cls, int head, const char *ctype, const char *const *headers)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, RESP_BLOCK, rd,
                                             cls, NULL);
    if (resp == NULL)
        return MHD_NO;
    if (head) {
        /* libmicrohttpd 0.9.75 ends a chunked reply to HEAD with the
         * last chunk ("0\r\n\r\n"), a body where none may be, which
         * the client would read as the start of its next reply.  So no
         * chunked encoding here, and the connection closes after the
         * header block. */
        MHD_set_response_options(resp, MHD_RF_HTTP_VERSION_1_0_ONLY,
                                 MHD_RO_END);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    for (; headers != NULL && headers[0] != NULL; headers += 2)
        MHD_add_response_header(resp, headers[0], headers[1]);
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    srv_count_status(200);
    return ret;
}

enum MHD_Result
stream_queue(stream *st, const char *ctype, const char *const *headers)
{
    return queue_stream(st->conn, reader, st, 0, ctype, headers);
}

/* The body of a HEAD reply: libmicrohttpd asks for none; if it did,
 * there would be nothing. */
static ssize_t
no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_OF_STREAM;
}

enum MHD_Result
stream_head(struct MHD_Connection *conn, const char *ctype)
{
    return queue_stream(conn, no_body, NULL, 1, ctype, NULL);
}

int
stream_wait_end(stream *st)
{
    srv *s = st->s;
    int rc;

    pthread_mutex_lock(&s->mu);
    if (st->run->ended) {
        rc = 0;
    } else if (s->closing) {
        rc = -1;
    } else {
        st->suspended = 1;
        waiter_link(st->run, st);
        MHD_suspend_connection(st->conn);
        rc = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* mu held. */
static void
resume(stream *w)
{
    waiter_unlink(w->run, w);
    w->suspended = 0;
    MHD_resume_connection(w->conn);
}

void
streams_resume_all(srv *s)
{
    srun *r;

    for (r = s->first; r != NULL; r = r->next)
        while (r->waiters != NULL)
            resume(r->waiters);
}

/* ---- the ticker ---------------------------------------------------------- */

static void *
ticker_main(void *arg)
{
    srv *s = arg;
    uint64_t hb_ns = s->o.heartbeat_ms * 1000000u;
    uint64_t period_ns = hb_ns / 4;
    struct pollfd *pfd = NULL;
    stream **who = NULL;
    size_t cap = 0;

    if (period_ns > 250000000u)
        period_ns = 250000000u;
    if (period_ns < 5000000u)
        period_ns = 5000000u;
    pthread_mutex_lock(&s->mu);
    while (!s->tick_stop) {
        struct timespec ts;
        uint64_t due = mono_ns() + period_ns, now;
        size_t n = 0, i;
        srun *r;

        ts.tv_sec = (time_t)(due / 1000000000u);
        ts.tv_nsec = (long)(due % 1000000000u);
        pthread_cond_timedwait(&s->tick_cv, &s->mu, &ts);
        if (s->tick_stop)
            break;
        now = mono_ns();
        conns_sweep(s, now);
        for (r = s->first; r != NULL; r = r->next) {
            stream *w = r->waiters;

            if (w == NULL)
                continue;
            do {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    struct pollfd *np = realloc(pfd, nc * sizeof(*np));
                    stream **nw;

                    if (np == NULL)
                        break;
                    pfd = np;
                    nw = realloc(who, nc * sizeof(*nw));
                    if (nw == NULL)
                        break;
                    who = nw;
                    cap = nc;
                }
                pfd[n].fd = w->fd;
                pfd[n].events = POLLRDHUP;
                pfd[n].revents = 0;
                who[n++] = w;
                w = w->wnext;
            } while (w != r->waiters);
        }
        if (n > 0 && poll(pfd, (nfds_t)n, 0) < 0)
            continue;
        for (i = 0; i < n; i++) {
            stream *w = who[i];

            if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                w->peer_gone = 1;
                resume(w);
            } else if (w->kind != SK_CHAT_WAIT &&
                       now - w->last_out_ns >= hb_ns) {
                w->ping = 1;
                resume(w);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(pfd);
    free(who);
    return NULL;
}

int
ticker_start(srv *s)
{
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0)
        return -1;
    s->ticker_started = 1;
    return 0;
}

void
ticker_stop(srv *s)
{
    if (!s->ticker_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->tick_stop = 1;
    pthread_cond_signal(&s->tick_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->ticker, NULL);
    s->ticker_started = 0;
}

/* ---- GET /v1/runs/{id}/events -------------------------------------------- */

enum MHD_Result
events_get(srv *s, struct MHD_Connection *conn, const char *id,
           const char *after, int head, stream **out)
{
    const char *lei =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    uint64_t seq = 0;
    srun *r;
    stream *st;

    /* A reconnecting EventSource sends Last-Event-ID with the URL it
     * first used: the header is the newer position. */
    if (lei != NULL && srv_parse_seq(lei, &seq) != 0)
        return srv_error(conn, 400, "invalid_request_error",
                         "Last-Event-ID must be an event seq (digits)");
    if (lei == NULL && after != NULL && srv_parse_seq(after, &seq) != 0)
        return srv_error(conn, 400, "invalid_request_error",
                         "'after' must be an event seq (digits)");
    pthread_mutex_lock(&s->mu);
    r = srun_find(s, id);
    pthread_mutex_unlock(&s->mu);
    if (r == NULL)
        return store_events_get(s, conn, id, seq, head, out);
    if (head) {
        /* HEAD: the headers a GET would get, and no stream (none is
         * counted against --max-streams). */
        srun_release(s, r);
        return stream_head(conn, "text/event-stream");
    }
    if (stream_admit(s) != 0) {
        srun_release(s, r);
        return srv_refuse_stream(s, conn);
    }
    st = stream_new(s, SK_SSE, conn, r, (size_t)seq);
    if (st == NULL) {
        pthread_mutex_lock(&s->mu);
        s->streams--;
        pthread_mutex_unlock(&s->mu);
        srun_release(s, r);
        return srv_error(conn, 503, "server_error", "out of memory");
    }
    st->counted = 1;
    *out = st;
    return stream_queue(st, "text/event-stream", NULL);
}
