/* SPDX-License-Identifier: MIT */
/*
 * The parent's side of a child-process run host (DISTRIBUTED 2).  For the
 * engine it is a run host like any other (core/run.h): it emits the events
 * the child sends, in seq order, and exits when the child's run is over or
 * the child is gone.  Recorders and subscribers never learn that the run
 * ran elsewhere.
 *
 * Two objects.  An hrun is the host of one run (the engine owns it: free
 * after exit).  An hchild is one child process with its socket and timers
 * (the loop's pool owns it: freed when its last handle has closed).  An
 * hchild takes one run at a time; one whose run ended cleanly may take the
 * next (engine option host_runs_per_child), and idle ones wait on the
 * loop's pool, at least host_spares of them.
 *
 * Method: two channels, one decision.  A child's death is seen twice, in
 * either order: its exit status (its pidfd, watched on the loop)
 * and end-of-stream on its socket.  The socket is read to its end before
 * the outcome is decided, so a terminal event the child wrote before it
 * died is emitted and wins (the engine fixes the outcome at the first
 * terminal event).  A child's channel state is one field:
 *
 *                 eof          exit          grace timer      kill
 *   LIVE          ->EOF,       ->EXITED,     cancel grace:    SIGKILL
 *                 arm grace    arm grace     kill             (stays)
 *   EXITED        ->DONE       bail          ->DONE (a        nop
 *                                            grandchild holds
 *                                            the socket)
 *   EOF           bail         ->DONE        kill (lives on   SIGKILL
 *                                            without socket)
 *   DONE          nop          nop           nop              nop
 *
 * At DONE the run, if the child still had one, ends: with the terminal
 * event it already has, or crashed with the reason of the kill (a protocol
 * error, no heartbeat, ...) or of the exit status ("signal SIGSEGV",
 * "exit status 3"); a cancelled run whose child had to be killed ends with
 * a cancelled run_failed of our own.  Then the handles close.
 *
 * Never trusted: the child's bytes (frame.c decodes them with every length
 * checked; a frame over the limit, garbage, a seq out of order, an event
 * with no run, or a second terminal is a protocol error: the child is
 * killed and the run ends crashed("host protocol error: ...")).  Never
 * blocking: all of it runs on the run's loop, with libuv's handles.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/engine.h"
#include "host/frame.h"
#include "host/host.h"

#ifndef COUNCIL_HOST_PROGRAM_DEFAULT
#define COUNCIL_HOST_PROGRAM_DEFAULT "/usr/local/libexec/council/council-host"
#endif

typedef struct hpool hpool;
typedef struct hchild hchild;
typedef struct hrun hrun;

enum ch_state { CH_LIVE, CH_EXITED, CH_EOF, CH_DONE };

/* A run's host: NEW until start, RUNNING with a child, CANCELLING once a
 * cancel went down the socket, ENDED once the engine was told it exited. */
enum hr_state { HR_NEW, HR_RUNNING, HR_CANCELLING, HR_ENDED };

struct hrun {
    enum hr_state state;
    council_run *run;
    hchild *ch;
    json_t *spec;            /* the spec frame, without run_id until start */
    const char *cancel_kind; /* "cancelled" or "deadline" once asked */
    int cancel_killed;       /* its child had to be killed after the cancel */
};

struct hchild {
    hpool *pool;
    hchild *all_prev, *all_next; /* every child of the pool */
    hchild *idle_next;           /* the pool's idle list */
    int idle;
    enum ch_state state;
    uv_poll_t death; /* its pidfd turns readable when it exits */
    int pidfd;
    uv_pipe_t sock;
    uv_timer_t hb;    /* repeating: heartbeat and idle checks */
    uv_timer_t grace; /* one-shot: cancel, end-of-stream or exit grace */
    uv_timer_t retry; /* one-shot: emit again after out of memory */
    int open_handles;
    int pid;
    int sock_closed; /* we stopped reading (killed, retired, gave up) */
    int64_t exit_status;
    int term_signal;
    int killed;
    int ready; /* its 'R' came */
    char kill_reason[200];
    int retiring; /* no further run: closing */
    int runs;     /* runs given to it so far */
    uint64_t last_rx_ms, idle_since_ms;
    uint64_t oom_since_ms; /* emitting has failed for memory since, or 0 */
    council__buf in;
    size_t in_off; /* bytes of in already handled */
    hrun *hr;      /* the run it hosts, or NULL */
};

struct hpool {
    council__loop *lp;
    council_engine *eng;
    char *program;
    hchild *all;
    hchild *idle;
    int n_idle;
    int n_children;
    int shutting_down;
    uv_timer_t spare; /* spawns spares outside a run's start */
    int spare_open;
};

atomic_uint_fast64_t council__host_spawned;

static void ch_kill(hchild *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ch_on_eof(hchild *ch);
static void ch_decide(hchild *ch);
static void ch_read_frames(hchild *ch);
static void pool_maybe_free(hpool *p);
static void pool_want_spares(hpool *p);

/* ---- reasons ----------------------------------------------------------- */

void
council__host_exit_reason(int64_t exit_status, int term_signal, char *out,
                          size_t size)
{
    if (term_signal != 0) {
        const char *abbrev = sigabbrev_np(term_signal);
        if (abbrev != NULL)
            snprintf(out, size, "signal SIG%s", abbrev);
        else
            snprintf(out, size, "signal %d", term_signal);
    } else {
        snprintf(out, size, "exit status %lld", (long long)exit_status);
    }
}

void
council__host_duration(uint64_t ms, char *out, size_t size)
{
    if (ms % 1000 == 0)
        snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
    else if (ms < 1000)
        snprintf(out, size, "%llums", (unsigned long long)ms);
    else
        snprintf(out, size, "%.1fs", (double)ms / 1000.0);
}

/* ---- writing to a child ------------------------------------------------- */

typedef struct wreq {
    uv_write_t req;
    council__buf buf;
} wreq;

static void
on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;

    /* A failed write means the child is going: its exit and EOF decide. */
    (void)status;
    council__buf_free(&w->buf);
    council__free(w);
}

/* Queue one frame to the child.  A child that cannot be written to is
 * going away; the caller learns nothing more than ENOMEM. */
static council_err
ch_send(hchild *ch, int type, const void *payload, size_t len)
{
    wreq *w;
    uv_buf_t b;
    council_err rc;

    if (ch->sock_closed || ch->state != CH_LIVE)
        return COUNCIL_OK;
    w = council__calloc(1, sizeof(*w));
    if (w == NULL)
        return COUNCIL_ENOMEM;
    rc = council__frame_put(&w->buf, type, payload, len);
    if (rc != COUNCIL_OK) {
        council__free(w);
        return rc;
    }
    b = uv_buf_init((char *)w->buf.p, (unsigned)w->buf.len);
    if (uv_write(&w->req, (uv_stream_t *)&ch->sock, &b, 1, on_written) != 0) {
        council__buf_free(&w->buf);
        council__free(w);
    }
    return COUNCIL_OK;
}

/* ---- handles ------------------------------------------------------------- */

static void
ch_handle_closed(uv_handle_t *h)
{
    hchild *ch = h->data;
    hpool *p = ch->pool;

    if (h == (uv_handle_t *)&ch->death)
        close(ch->pidfd); /* the poll handle does not own it */
    if (--ch->open_handles > 0)
        return;
    if (ch->all_prev != NULL)
        ch->all_prev->all_next = ch->all_next;
    else
        p->all = ch->all_next;
    if (ch->all_next != NULL)
        ch->all_next->all_prev = ch->all_prev;
    p->n_children--;
    council__buf_free(&ch->in);
    council__free(ch);
    pool_maybe_free(p);
}

static void
close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, ch_handle_closed);
}

/* Stop reading: the stream is over for us (killed for a protocol error,
 * retired, or we gave up waiting for its end). */
static void
ch_close_sock(hchild *ch)
{
    if (ch->sock_closed)
        return;
    ch->sock_closed = 1;
    uv_read_stop((uv_stream_t *)&ch->sock);
    close_handle((uv_handle_t *)&ch->sock);
}

static void
idle_remove(hchild *ch)
{
    hpool *p = ch->pool;
    hchild **pp;

    if (!ch->idle)
        return;
    for (pp = &p->idle; *pp != NULL; pp = &(*pp)->idle_next) {
        if (*pp == ch) {
            *pp = ch->idle_next;
            break;
        }
    }
    ch->idle = 0;
    ch->idle_next = NULL;
    p->n_idle--;
}

/* ---- the run's end ---------------------------------------------------------
 */

/* Detach hr from its child and tell the engine the host exited (reason
 * matters only if the run has no terminal event yet). */
static void
hr_end(hrun *hr, const char *reason)
{
    switch (hr->state) {
    case HR_RUNNING:
    case HR_CANCELLING:
        break;
    case HR_NEW:
    case HR_ENDED:
        return;
    }
    hr->state = HR_ENDED;
    if (hr->ch != NULL)
        hr->ch->hr = NULL;
    hr->ch = NULL;
    council__run_exit(hr->run, reason);
}

/* A cancelled run whose child had to be killed: the cancel won, so the run
 * ends cancelled, with a terminal event of our own after the child's. */
static void
emit_cancelled(hrun *hr)
{
    council__event_init in;
    char msg[160];

    snprintf(msg, sizeof(msg),
             "%s; its host process did not stop within %ds and was killed",
             strcmp(hr->cancel_kind, "deadline") == 0
                 ? "the run's deadline passed"
                 : "the run was cancelled",
             COUNCIL__HOST_CANCEL_GRACE_MS / 1000);
    memset(&in, 0, sizeof(in));
    in.type = COUNCIL_EV_RUN_FAILED;
    in.data = json_pack("{s:[{s:s,s:s}]}", "errors", "kind", hr->cancel_kind,
                        "message", msg);
    council__run_emit(hr->run, &in);
}

/* Both channels are in (or given up on): decide the run, close up. */
static void
ch_decide(hchild *ch)
{
    hrun *hr = ch->hr;
    char why[240];

    ch->state = CH_DONE;
    idle_remove(ch);
    if (hr != NULL) {
        char st[64];
        council__host_exit_reason(ch->exit_status, ch->term_signal, st,
                                  sizeof(st));
        if (ch->killed)
            snprintf(why, sizeof(why), "%s", ch->kill_reason);
        else if (!ch->ready)
            snprintf(why, sizeof(why), "%s before the host was ready", st);
        else
            snprintf(why, sizeof(why), "%s", st);
        if (hr->cancel_killed && !council__run_is_terminal(hr->run))
            emit_cancelled(hr);
        hr_end(hr, why);
    } else if (!ch->retiring && !ch->pool->shutting_down &&
               (ch->killed || ch->term_signal != 0 || ch->exit_status != 0)) {
        char st[64];
        council__host_exit_reason(ch->exit_status, ch->term_signal, st,
                                  sizeof(st));
        council__log(ch->pool->eng, "idle host process %d ended: %s", ch->pid,
                     ch->killed ? ch->kill_reason : st);
    }
    ch_close_sock(ch);
    close_handle((uv_handle_t *)&ch->death);
    close_handle((uv_handle_t *)&ch->hb);
    close_handle((uv_handle_t *)&ch->grace);
    close_handle((uv_handle_t *)&ch->retry);
    pool_want_spares(ch->pool);
}

static void
ch_kill(hchild *ch, const char *fmt, ...)
{
    va_list ap;

    idle_remove(ch);
    if (!ch->killed) {
        ch->killed = 1;
        va_start(ap, fmt);
        vsnprintf(ch->kill_reason, sizeof(ch->kill_reason), fmt, ap);
        va_end(ap);
    }
    switch (ch->state) {
    case CH_LIVE:
    case CH_EOF:
        /* Its process group: the child and whatever it started.  Not yet
         * reaped, so neither number can have been reused. */
        kill(-ch->pid, SIGKILL);
        syscall(SYS_pidfd_send_signal, ch->pidfd, SIGKILL, NULL, 0);
        break;
    case CH_EXITED:
    case CH_DONE:
        break;
    }
}

/* A protocol error: the child is not trusted any further. */
static void
ch_protocol_error(hchild *ch, const char *why)
{
    ch_kill(ch, "host protocol error: %s", why);
    ch_close_sock(ch);
    ch_on_eof(ch);
}

/* ---- channel inputs ------------------------------------------------------ */

static void
on_grace(uv_timer_t *t)
{
    hchild *ch = t->data;
    char d[32];

    switch (ch->state) {
    case CH_LIVE:
        /* The cancel grace: the child did not end its run in time. */
        if (ch->hr != NULL && ch->hr->state == HR_CANCELLING) {
            ch->hr->cancel_killed = 1;
            council__host_duration(COUNCIL__HOST_CANCEL_GRACE_MS, d, sizeof(d));
            ch_kill(ch, "did not stop within %s of the cancel", d);
        }
        break;
    case CH_EXITED:
        /* Exited, and something (a grandchild) still holds its socket:
         * what was read is all there is. */
        ch_close_sock(ch);
        ch_decide(ch);
        break;
    case CH_EOF:
        council__host_duration(COUNCIL__HOST_EXIT_GRACE_MS, d, sizeof(d));
        ch_kill(ch, "host closed its socket and was still running %s later", d);
        break;
    case CH_DONE:
        break;
    }
}

static void
ch_on_eof(hchild *ch)
{
    idle_remove(ch);
    switch (ch->state) {
    case CH_LIVE:
        ch->state = CH_EOF;
        uv_timer_start(&ch->grace, on_grace, COUNCIL__HOST_EXIT_GRACE_MS, 0);
        break;
    case CH_EXITED:
        ch_decide(ch);
        break;
    case CH_EOF:
    case CH_DONE:
        break;
    }
}

/* The child exited (its pidfd is readable): reap it, and decide or wait
 * for the end of its stream. */
static void
on_death(uv_poll_t *h, int status, int events)
{
    hchild *ch = h->data;
    siginfo_t si;

    (void)status;
    (void)events;
    /* A kill takes its tree: what it started goes with it.  Before the
     * reap, while the zombie still holds its number as a group id. */
    kill(-ch->pid, SIGKILL);
    memset(&si, 0, sizeof(si));
    if (waitid((idtype_t)P_PIDFD, (id_t)ch->pidfd, &si, WEXITED | WNOHANG) !=
            0 ||
        si.si_pid == 0)
        return; /* not yet (a spurious wake-up) */
    uv_poll_stop(h);
    ch->exit_status = si.si_code == CLD_EXITED ? si.si_status : 0;
    ch->term_signal =
        si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED ? si.si_status : 0;
    switch (ch->state) {
    case CH_LIVE:
        ch->state = CH_EXITED;
        if (ch->sock_closed) {
            ch_decide(ch);
            break;
        }
        uv_timer_start(&ch->grace, on_grace, COUNCIL__HOST_EOF_GRACE_MS, 0);
        break;
    case CH_EOF:
        ch_decide(ch);
        break;
    case CH_EXITED:
    case CH_DONE:
        council__log(ch->pool->eng, "host process %d: a second exit?", ch->pid);
        break;
    }
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    hchild *ch = h->data;

    (void)suggested;
    if (council__buf_reserve(&ch->in, 16 * 1024) != COUNCIL_OK) {
        *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS: read again later */
        return;
    }
    *buf = uv_buf_init((char *)ch->in.p + ch->in.len,
                       (unsigned)(ch->in.cap - ch->in.len));
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    hchild *ch = s->data;

    (void)buf;
    if (nread > 0) {
        ch->in.len += (size_t)nread;
        ch->last_rx_ms = uv_now(s->loop);
        ch_read_frames(ch);
        return;
    }
    if (nread == 0 || nread == UV_ENOBUFS)
        return;
    /* UV_EOF, or a reset: the stream is over; the last bytes were read. */
    uv_read_stop(s);
    ch_on_eof(ch);
}

/* ---- frames from the child --------------------------------------------- */

static void
on_retry(uv_timer_t *t)
{
    hchild *ch = t->data;

    if (ch->state == CH_DONE)
        return;
    ch_read_frames(ch);
    /* Read on unless this frame is still waiting for memory. */
    if (!ch->sock_closed && !uv_is_active((uv_handle_t *)&ch->retry))
        uv_read_start((uv_stream_t *)&ch->sock, on_alloc, on_read);
}

/* An event frame: 0 done, 1 out of memory (try again), -1 protocol error
 * (why filled). */
static int
take_event(hchild *ch, const unsigned char *p, size_t len, char *why,
           size_t why_size)
{
    council__frame_event fe;
    council__event_init in;
    json_t *data = NULL;
    council_err rc;
    hrun *hr = ch->hr;

    if (council__frame_event_decode(p, len, &fe, why, why_size) != 0)
        return -1;
    if (hr == NULL || hr->state == HR_NEW || hr->state == HR_ENDED) {
        snprintf(why, why_size, "an event (seq %llu) while it has no run",
                 (unsigned long long)fe.seq);
        return -1;
    }
    if (council__run_is_terminal(hr->run)) {
        snprintf(why, why_size, "an event (seq %llu) after the terminal one",
                 (unsigned long long)fe.seq);
        return -1;
    }
    if (fe.seq != council__run_last_seq(hr->run) + 1) {
        snprintf(why, why_size, "event seq %llu after seq %llu",
                 (unsigned long long)fe.seq,
                 (unsigned long long)council__run_last_seq(hr->run));
        return -1;
    }
    if (fe.data != NULL) {
        json_error_t je;
        data = json_loadb(fe.data, fe.data_len, JSON_REJECT_DUPLICATES, &je);
        if (data == NULL) {
            if (json_error_code(&je) == json_error_out_of_memory)
                return 1;
            snprintf(why, why_size, "event seq %llu: its fields are not JSON",
                     (unsigned long long)fe.seq);
            return -1;
        }
        if (!json_is_object(data)) {
            json_decref(data);
            snprintf(why, why_size,
                     "event seq %llu: its fields are not an object",
                     (unsigned long long)fe.seq);
            return -1;
        }
    }
    memset(&in, 0, sizeof(in));
    in.type = fe.type;
    in.round = fe.round;
    in.text = fe.text;
    in.text_len = fe.text_len;
    in.data = data;
    in.keep_ts = 1;
    in.ts_us = fe.ts_us;
    /* stage and member need their NUL: copy them out of the frame. */
    {
        char stage[256], member[256];
        if (fe.stage != NULL) {
            if (fe.stage_len >= sizeof(stage)) {
                json_decref(data);
                snprintf(why, why_size, "event seq %llu: a stage too long",
                         (unsigned long long)fe.seq);
                return -1;
            }
            memcpy(stage, fe.stage, fe.stage_len);
            stage[fe.stage_len] = '\0';
            in.stage = stage;
        }
        if (fe.member != NULL) {
            if (fe.member_len >= sizeof(member)) {
                json_decref(data);
                snprintf(why, why_size, "event seq %llu: a member too long",
                         (unsigned long long)fe.seq);
                return -1;
            }
            memcpy(member, fe.member, fe.member_len);
            member[fe.member_len] = '\0';
            in.member = member;
        }
        rc = council__run_emit(hr->run, &in); /* steals data */
    }
    if (rc == COUNCIL_ENOMEM)
        return 1;
    if (rc != COUNCIL_OK) {
        snprintf(why, why_size, "event seq %llu was refused (%s)",
                 (unsigned long long)fe.seq, council_strerror(rc));
        return -1;
    }
    return 0;
}

/* The child's run is over and the child is clean: the run's host exits
 * (reason counts only without a terminal event), and the child takes
 * another run or retires. */
static void
ch_run_over(hchild *ch, const char *reason)
{
    hpool *p = ch->pool;

    uv_timer_stop(&ch->grace);
    hr_end(ch->hr, reason);
    if (ch->killed || ch->runs >= p->eng->host_runs_per_child ||
        p->shutting_down) {
        ch->retiring = 1;
        ch_close_sock(ch); /* it sees end-of-stream and exits */
        ch_on_eof(ch);
        return;
    }
    ch->idle = 1;
    ch->idle_next = p->idle;
    p->idle = ch;
    p->n_idle++;
    ch->idle_since_ms = uv_now(&p->lp->loop);
}

/* 'D': the child's outcome says why, if the run has no terminal event of
 * its own (the child's run crashed inside it). */
static void
take_done(hchild *ch, const unsigned char *p, size_t len)
{
    char reason[240] = "host ended its run without a terminal event";
    json_t *o;

    if (!council__run_is_terminal(ch->hr->run)) {
        o = json_loadb((const char *)p, len, 0, NULL);
        if (json_is_string(json_object_get(o, "reason")))
            snprintf(reason, sizeof(reason), "%s",
                     json_string_value(json_object_get(o, "reason")));
        json_decref(o);
    }
    ch_run_over(ch, reason);
}

/* 'F': the run could not start in the child (its council, a bad spec):
 * the run ends as an error that says so. */
static void
take_failed(hchild *ch, const unsigned char *p, size_t len)
{
    council__event_init in;
    char msg[300];

    snprintf(msg, sizeof(msg), "run host could not start: %.*s",
             (int)(len > 250 ? 250 : len), (const char *)p);
    memset(&in, 0, sizeof(in));
    in.type = COUNCIL_EV_RUN_FAILED;
    in.data =
        json_pack("{s:[{s:s,s:s}]}", "errors", "kind", "start", "message", msg);
    if (council__run_emit(ch->hr->run, &in) != COUNCIL_OK)
        ch_run_over(ch, msg); /* crashed with that reason, then */
    else
        ch_run_over(ch, NULL);
}

static void
ch_read_frames(hchild *ch)
{
    char why[200];

    while (ch->state != CH_DONE) {
        const unsigned char *payload;
        size_t plen, used;
        int type, r;

        r = council__frame_next(ch->in.p + ch->in_off, ch->in.len - ch->in_off,
                                &type, &payload, &plen, &used, why,
                                sizeof(why));
        if (r == 0)
            break;
        if (r < 0) {
            ch_protocol_error(ch, why);
            return;
        }
        switch (type) {
        case COUNCIL__FR_EVENT:
            r = take_event(ch, payload, plen, why, sizeof(why));
            if (r == 1) {
                /* Out of memory: stop reading, try this frame again a
                 * millisecond later; after a second, give up on the run
                 * (its host is killed: the run crashes with that reason,
                 * a gapless prefix kept). */
                uint64_t now = uv_now(&ch->pool->lp->loop);
                if (ch->oom_since_ms == 0)
                    ch->oom_since_ms = now;
                if (now - ch->oom_since_ms >= 1000) {
                    ch_kill(
                        ch, "out of memory receiving seq %llu",
                        (unsigned long long)council__run_last_seq(ch->hr->run) +
                            1);
                    ch_close_sock(ch);
                    ch_on_eof(ch);
                    return;
                }
                uv_read_stop((uv_stream_t *)&ch->sock);
                uv_timer_start(&ch->retry, on_retry, 1, 0);
                goto keep;
            }
            ch->oom_since_ms = 0;
            if (r < 0) {
                ch_protocol_error(ch, why);
                return;
            }
            break;
        case COUNCIL__FR_HEARTBEAT:
            break;
        case COUNCIL__FR_READY:
            if (plen < 4 ||
                council__get_u32(payload) != COUNCIL__FRAME_PROTOCOL) {
                ch_protocol_error(ch, "it speaks another protocol version");
                return;
            }
            ch->ready = 1;
            break;
        case COUNCIL__FR_LOG:
            council__log(ch->pool->eng, "host process %d: %.*s", ch->pid,
                         (int)(plen > 400 ? 400 : plen), (const char *)payload);
            break;
        case COUNCIL__FR_DONE:
        case COUNCIL__FR_FAILED:
            if (ch->hr == NULL || ch->hr->state == HR_ENDED) {
                ch_protocol_error(ch, "a run's end while it has no run");
                return;
            }
            if (type == COUNCIL__FR_FAILED)
                take_failed(ch, payload, plen);
            else
                take_done(ch, payload, plen);
            break;
        default:
            snprintf(why, sizeof(why), "a frame of unknown type 0x%02x", type);
            ch_protocol_error(ch, why);
            return;
        }
        ch->in_off += used;
    }
keep:
    /* Keep only the unhandled tail. */
    if (ch->in_off > 0) {
        council__buf_consume(&ch->in, ch->in_off);
        ch->in_off = 0;
    }
}

/* ---- timers: heartbeat, idle -------------------------------------------- */

static void
on_hb(uv_timer_t *t)
{
    hchild *ch = t->data;
    hpool *p = ch->pool;
    uint64_t now = uv_now(t->loop), hb = p->eng->host_heartbeat_ms;
    char d[32];

    /* While its frames wait for our memory, its silence is ours. */
    if (ch->state != CH_LIVE || ch->oom_since_ms != 0)
        return;
    if (now - ch->last_rx_ms >= hb) {
        council__host_duration(hb, d, sizeof(d));
        ch_kill(ch, "no heartbeat for %s", d);
        return;
    }
    if (ch->idle && p->n_idle > p->eng->host_spares &&
        now - ch->idle_since_ms >= COUNCIL__HOST_IDLE_TTL_MS) {
        idle_remove(ch);
        ch->retiring = 1;
        ch_close_sock(ch);
        ch_on_eof(ch);
    }
}

/* ---- spawning ------------------------------------------------------------ */

static void
ch_init_timer(hchild *ch, uv_timer_t *t)
{
    uv_timer_init(&ch->pool->lp->loop, t);
    t->data = ch;
    ch->open_handles++;
}

static void
pool_add(hpool *p, hchild *ch)
{
    ch->all_next = p->all;
    if (p->all != NULL)
        p->all->all_prev = ch;
    p->all = ch;
    p->n_children++;
}

/*
 * Method: a child is started with posix_spawn (glibc's is a vfork-style
 * clone, so its cost does not grow with the parent's memory) in its own
 * session, with the socket as fd 3, /dev/null as 0 and 1, stderr shared,
 * no other descriptor (closefrom), every signal at its default and none
 * blocked.  Its exit is watched through a pidfd on the loop (uv_poll), so
 * no SIGCHLD handler is involved and nothing else's children are touched
 * (never waitpid(-1)).  The socketpair is made with the raw system call:
 * libuv closes the parent's end with a raw close that ThreadSanitizer does
 * not see, and a descriptor TSan saw open but not close looks like a race
 * when the kernel hands its number out again.
 */
static council_err
spawn_child(hpool *p, hchild **out, char *why, size_t why_size)
{
    uv_loop_t *loop = &p->lp->loop;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    char ppid[24], eb[96];
    char *args[4];
    unsigned char params[4];
    hchild *ch;
    int sv[2], e;
    pid_t pid;
    uint64_t hb = p->eng->host_heartbeat_ms;

    *out = NULL;
    ch = council__calloc(1, sizeof(*ch));
    if (ch == NULL) {
        snprintf(why, why_size, "out of memory");
        return COUNCIL_ENOMEM;
    }
    if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !=
        0) {
        snprintf(why, why_size, "cannot make a socket for the host: %s",
                 strerror_r(errno, eb, sizeof(eb)));
        council__free(ch);
        return COUNCIL_ESTART;
    }
    ch->pool = p;
    snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
    args[0] = p->program;
    args[1] = (char *)"__host";
    args[2] = ppid;
    args[3] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    /* Its own session and process group: a terminal's Ctrl-C is the
     * parent's to handle, and a kill of the group takes its tree. */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    e = posix_spawn(&pid, p->program, &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (e != 0) {
        snprintf(why, why_size, "host program %s: %s", p->program,
                 strerror_r(e, eb, sizeof(eb)));
        close(sv[0]);
        council__free(ch);
        return COUNCIL_ESTART;
    }
    ch->pid = (int)pid;
    ch->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (ch->pidfd < 0 || uv_poll_init(loop, &ch->death, ch->pidfd) != 0) {
        /* It cannot be watched: it must not run unwatched. */
        snprintf(why, why_size, "cannot watch the host process: %s",
                 strerror_r(errno, eb, sizeof(eb)));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0); /* our own child, dying now */
        if (ch->pidfd >= 0)
            close(ch->pidfd);
        close(sv[0]);
        council__free(ch);
        return COUNCIL_ESTART;
    }
    atomic_fetch_add(&council__host_spawned, 1);
    ch->death.data = ch;
    ch->open_handles = 1;
    uv_poll_start(&ch->death, UV_READABLE, on_death);
    uv_pipe_init(loop, &ch->sock, 0);
    ch->sock.data = ch;
    ch->open_handles++;
    if (uv_pipe_open(&ch->sock, sv[0]) != 0) {
        close(sv[0]);
        ch->sock_closed = 1;
        close_handle((uv_handle_t *)&ch->sock);
    }
    ch_init_timer(ch, &ch->hb);
    ch_init_timer(ch, &ch->grace);
    ch_init_timer(ch, &ch->retry);
    pool_add(p, ch);
    ch->state = CH_LIVE;
    ch->last_rx_ms = uv_now(loop);
    if (!ch->sock_closed &&
        uv_read_start((uv_stream_t *)&ch->sock, on_alloc, on_read) != 0) {
        ch_close_sock(ch);
    }
    /* The child beats four times per period, so one late beat is no
     * death. */
    council__put_u32(params, (uint32_t)(hb / 4 > 0 ? hb / 4 : 1));
    ch_send(ch, COUNCIL__FR_PARAMS, params, sizeof(params));
    uv_timer_start(&ch->hb, on_hb, hb / 4 > 0 ? hb / 4 : 1,
                   hb / 4 > 0 ? hb / 4 : 1);
    if (ch->sock_closed) {
        ch_kill(ch, "cannot watch the host's socket");
        ch_on_eof(ch);
    }
    *out = ch;
    return COUNCIL_OK;
}

/* ---- the pool: a loop service ---------------------------------------- */

static char *
find_program(council_engine *eng)
{
    const char *env = getenv("COUNCIL_HOST_PROGRAM");

    if (eng->host_program != NULL)
        return council__strdup(eng->host_program);
    if (env != NULL && env[0] != '\0')
        return council__strdup(env);
    return council__strdup(COUNCIL_HOST_PROGRAM_DEFAULT);
}

static void
spare_closed(uv_handle_t *h)
{
    hpool *p = h->data;

    p->spare_open = 0;
    pool_maybe_free(p);
}

static void
pool_maybe_free(hpool *p)
{
    if (!p->shutting_down || p->n_children > 0 || p->spare_open)
        return;
    council__free(p->program);
    council__free(p);
}

static void
on_spare(uv_timer_t *t)
{
    hpool *p = t->data;
    hchild *ch;
    char why[300];

    while (!p->shutting_down && p->n_idle < p->eng->host_spares) {
        if (spawn_child(p, &ch, why, sizeof(why)) != COUNCIL_OK) {
            council__log(p->eng, "cannot start a spare host: %s", why);
            return;
        }
        if (ch->state != CH_LIVE)
            return;
        ch->idle = 1;
        ch->idle_next = p->idle;
        p->idle = ch;
        p->n_idle++;
        ch->idle_since_ms = uv_now(t->loop);
    }
}

static void
pool_want_spares(hpool *p)
{
    if (!p->shutting_down && p->n_idle < p->eng->host_spares &&
        !uv_is_active((uv_handle_t *)&p->spare))
        uv_timer_start(&p->spare, on_spare, 0, 0);
}

static void *
pool_open(council__loop *lp)
{
    hpool *p = council__calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->lp = lp;
    p->eng = lp->eng;
    p->program = find_program(lp->eng);
    if (p->program == NULL) {
        council__free(p);
        return NULL;
    }
    uv_timer_init(&lp->loop, &p->spare);
    p->spare.data = p;
    p->spare_open = 1;
    return p;
}

static void
pool_shutdown(void *obj)
{
    hpool *p = obj;
    hchild *ch, *next;

    p->shutting_down = 1;
    uv_close((uv_handle_t *)&p->spare, spare_closed);
    for (ch = p->all; ch != NULL; ch = next) {
        next = ch->all_next;
        idle_remove(ch);
        ch->retiring = 1;
        switch (ch->state) {
        case CH_LIVE:
        case CH_EOF:
            ch_kill(ch, "shutdown");
            ch_close_sock(ch);
            if (ch->state == CH_LIVE)
                ch->state = CH_EOF;
            break;
        case CH_EXITED:
            ch_close_sock(ch);
            ch_decide(ch);
            break;
        case CH_DONE:
            break;
        }
    }
    pool_maybe_free(p);
}

static const council__service_kind pool_service = {"host processes", pool_open,
                                                   pool_shutdown};

/* ---- the run host ------------------------------------------------------- */

static council_err
h_start(council_run *run, void *state, char *msg, size_t msg_size)
{
    hrun *hr = state;
    hpool *p = council__loop_service(council__run_lp(run), &pool_service);
    hchild *ch;
    char *spec;
    council_err rc;

    if (p == NULL) {
        snprintf(msg, msg_size, "cannot start host processes");
        return COUNCIL_ESTART;
    }
    ch = p->idle;
    if (ch != NULL) {
        idle_remove(ch);
    } else {
        rc = spawn_child(p, &ch, msg, msg_size);
        if (rc != COUNCIL_OK)
            return COUNCIL_ESTART;
        if (ch->state != CH_LIVE) {
            snprintf(msg, msg_size, "%s", ch->kill_reason);
            return COUNCIL_ESTART;
        }
    }
    if (json_object_set_new(hr->spec, "run_id",
                            json_string(council__run_id_of(run))) != 0 ||
        json_object_set_new(
            hr->spec, "deadline_ms",
            json_integer((json_int_t)council__run_deadline_ms(run))) != 0 ||
        (spec = json_dumps(hr->spec, JSON_COMPACT)) == NULL) {
        /* Give the child back: nothing was sent to it. */
        ch->idle = 1;
        ch->idle_next = p->idle;
        p->idle = ch;
        p->n_idle++;
        snprintf(msg, msg_size, "out of memory");
        return COUNCIL_ENOMEM;
    }
    hr->run = run;
    hr->ch = ch;
    hr->state = HR_RUNNING;
    ch->hr = hr;
    ch->runs++;
    ch->last_rx_ms = uv_now(&p->lp->loop);
    rc = ch_send(ch, COUNCIL__FR_SPEC, spec, strlen(spec));
    council__free(spec);
    if (rc != COUNCIL_OK) {
        ch->hr = NULL;
        hr->ch = NULL;
        hr->state = HR_NEW;
        ch->retiring = 1;
        ch_close_sock(ch);
        ch_on_eof(ch);
        snprintf(msg, msg_size, "out of memory");
        return COUNCIL_ENOMEM;
    }
    pool_want_spares(p);
    return COUNCIL_OK;
}

static void
h_cancel(void *state, const char *kind)
{
    hrun *hr = state;
    hchild *ch = hr->ch;

    switch (hr->state) {
    case HR_RUNNING:
        hr->state = HR_CANCELLING;
        hr->cancel_kind =
            strcmp(kind, "deadline") == 0 ? "deadline" : "cancelled";
        ch_send(ch, COUNCIL__FR_CANCEL, hr->cancel_kind,
                strlen(hr->cancel_kind));
        if (ch->state == CH_LIVE)
            uv_timer_start(&ch->grace, on_grace, COUNCIL__HOST_CANCEL_GRACE_MS,
                           0);
        break;
    case HR_NEW:
    case HR_CANCELLING:
    case HR_ENDED:
        break;
    }
}

static void
h_shutdown(void *state)
{
    hrun *hr = state;
    hchild *ch = hr->ch;

    switch (hr->state) {
    case HR_RUNNING:
    case HR_CANCELLING:
        /* The engine ends the run as crashed("shutdown"); the child is
         * killed and reaped by the pool's shutdown. */
        hr->state = HR_ENDED;
        ch->hr = NULL;
        hr->ch = NULL;
        ch->retiring = 1;
        ch_kill(ch, "shutdown");
        break;
    case HR_NEW:
    case HR_ENDED:
        break;
    }
}

static void
h_free(void *state)
{
    hrun *hr = state;

    if (hr->ch != NULL)
        hr->ch->hr = NULL;
    json_decref(hr->spec);
    council__free(hr);
}

static const council__host_ops proc_ops = {h_start, h_cancel, h_shutdown,
                                           h_free};

council_err
council__proc_host_new(const council_def *def, const council_message *msgs,
                       size_t n_msgs, uint64_t seed,
                       const council__host_ops **ops, void **state)
{
    hrun *hr;
    json_t *m;
    char sb[24];
    size_t i;

    hr = council__calloc(1, sizeof(*hr));
    if (hr == NULL)
        return COUNCIL_ENOMEM;
    snprintf(sb, sizeof(sb), "%llu", (unsigned long long)seed);
    m = json_array();
    for (i = 0; m != NULL && i < n_msgs; i++) {
        if (json_array_append_new(m,
                                  json_pack("{s:s,s:s}", "role", msgs[i].role,
                                            "content", msgs[i].content)) != 0) {
            json_decref(m);
            m = NULL;
        }
    }
    hr->spec = m == NULL
                   ? NULL
                   : json_pack("{s:s,s:o,s:{s:s,s:s%}}", "seed", sb, "messages",
                               m, "council", "name", def->source, "text",
                               def->text, def->text_len);
    if (hr->spec == NULL) {
        council__free(hr);
        return COUNCIL_ENOMEM;
    }
    *ops = &proc_ops;
    *state = hr;
    return COUNCIL_OK;
}
