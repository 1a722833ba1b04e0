/* SPDX-License-Identifier: MIT */
/*
 * The child's side of a child-process run host: council_host_main, the
 * body of `council-host` and of `council __host` (DISTRIBUTED 2).
 *
 * The child opens an engine of its own (one loop thread, one recorder
 * thread) and runs, one at a time, the runs its parent sends on the socket
 * at fd 3 (frame.h).  A run's events reach the parent through a recorder
 * of the child's run, the sink: it frames each event as it comes and
 * writes the frames when its mailbox runs empty (handle_flush), so a burst
 * of events is one write; at finalize it writes the last events and then
 * 'D', the child's outcome.  The main thread reads the socket: a spec
 * starts a run, a cancel cancels it, end-of-stream (the parent closed it,
 * or died) ends the process; while it waits it sends a heartbeat whenever
 * nothing else was written for one interval.
 *
 * Hygiene: the child closes every descriptor but 0-3 first, dies with its
 * parent (PR_SET_PDEATHSIG, and end-of-stream), and writes nothing to
 * stdout.  A write to the socket that fails means the parent is gone: the
 * child exits at once.
 *
 * COUNCIL_TEST_HOST_FAULT=ACTION@SEQ (for the fault tests) makes the child
 * misbehave right after it wrote event SEQ (0: at start, before it says it
 * is ready): kill, segv, abort, exit3 (die so), stop (SIGSTOP), close
 * (close the socket and live on), grandchild (leave a process holding the
 * socket, then exit 3), garbage, huge (a frame claiming 1 GiB), badseq (an
 * event out of order), nocancel (ignore cancels; SEQ is ignored),
 * fdcheck (exit with the number of descriptors it has open).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/event.h"
#include "core/run.h"
#include "host/frame.h"
#include "host/host.h"

#define FD 3

enum fault {
    F_NONE,
    F_KILL,
    F_SEGV,
    F_ABORT,
    F_EXIT3,
    F_STOP,
    F_CLOSE,
    F_GRANDCHILD,
    F_GARBAGE,
    F_HUGE,
    F_BADSEQ,
    F_NOCANCEL,
    F_FDCHECK
};

typedef struct child {
    pthread_mutex_t wmu; /* one writer at a time on the socket */
    council__buf out;    /* the sink's frames not yet written (wmu) */
    atomic_uint_fast64_t last_tx_ms;
    uint32_t hb_ms;
    council_engine *eng;
    council_def *def; /* the last council, kept for the next run */
    char *def_text;
    size_t def_len;
    council_run *run; /* main thread */
    enum fault fault;
    uint64_t fault_seq;
} child;

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
say(const char *s)
{
    ssize_t w = write(2, s, strlen(s));
    (void)w;
}

/* All of p, or the parent is gone: then so are we. */
static void
write_all(child *c, const void *p, size_t n)
{
    const unsigned char *b = p;

    while (n > 0) {
        ssize_t w = write(FD, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(0);
        b += w;
        n -= (size_t)w;
    }
    atomic_store(&c->last_tx_ms, mono_ms());
}

/* One frame, written now (wmu held). */
static void
send_locked(child *c, int type, const void *payload, size_t len)
{
    unsigned char h[5];
    struct iovec iov[2];
    ssize_t w;

    council__put_u32(h, (uint32_t)(len + 1));
    h[4] = (unsigned char)type;
    iov[0].iov_base = h;
    iov[0].iov_len = 5;
    iov[1].iov_base = (void *)payload;
    iov[1].iov_len = len;
    do {
        w = writev(FD, iov, len > 0 ? 2 : 1);
    } while (w < 0 && errno == EINTR);
    if (w <= 0)
        _exit(0);
    if ((size_t)w < 5 + len) {
        /* A short write: the rest, byte-exact. */
        size_t done = (size_t)w;
        if (done < 5) {
            write_all(c, h + done, 5 - done);
            done = 5;
        }
        write_all(c, (const unsigned char *)payload + (done - 5),
                  len - (done - 5));
    }
    atomic_store(&c->last_tx_ms, mono_ms());
}

static void
send_frame(child *c, int type, const void *payload, size_t len)
{
    pthread_mutex_lock(&c->wmu);
    send_locked(c, type, payload, len);
    pthread_mutex_unlock(&c->wmu);
}

static void
flush_locked(child *c)
{
    if (c->out.len > 0)
        write_all(c, c->out.p, c->out.len);
    c->out.len = 0;
}

/* ---- faults (tests) ------------------------------------------------------ */

static void
fault_parse(child *c)
{
    static const struct {
        const char *name;
        enum fault f;
    } names[] = {{"kill", F_KILL},
                 {"segv", F_SEGV},
                 {"abort", F_ABORT},
                 {"exit3", F_EXIT3},
                 {"stop", F_STOP},
                 {"close", F_CLOSE},
                 {"grandchild", F_GRANDCHILD},
                 {"garbage", F_GARBAGE},
                 {"huge", F_HUGE},
                 {"badseq", F_BADSEQ},
                 {"nocancel", F_NOCANCEL},
                 {"fdcheck", F_FDCHECK}};
    const char *spec = getenv("COUNCIL_TEST_HOST_FAULT");
    const char *at;
    size_t i, n;

    if (spec == NULL || (at = strchr(spec, '@')) == NULL)
        return;
    n = (size_t)(at - spec);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == n && memcmp(spec, names[i].name, n) == 0)
            c->fault = names[i].f;
    c->fault_seq = strtoull(at + 1, NULL, 10);
}

static void
die_by(int sig)
{
    struct sigaction sa;

    /* The default action, even where a sanitizer caught the signal. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    raise(sig);
    _exit(99);
}

/* Misbehave now (wmu held, every frame so far written). */
static void
fault_now(child *c, uint64_t seq)
{
    static const unsigned char junk[] = "\x00\x00\x00\x07Xgarbage!";
    unsigned char huge[5] = {0x40, 0, 0, 0, 'E'};
    unsigned char bad[64];
    council__buf b = {0};

    switch (c->fault) {
    case F_NONE:
    case F_NOCANCEL:
        return;
    case F_KILL:
        die_by(SIGKILL);
        break;
    case F_SEGV:
        die_by(SIGSEGV);
        break;
    case F_ABORT:
        die_by(SIGABRT);
        break;
    case F_EXIT3:
        _exit(3);
    case F_STOP:
        raise(SIGSTOP);
        return;
    case F_CLOSE:
        /* The socket is over for both sides (a close would not be: the
         * main thread's poll holds the file). */
        shutdown(FD, SHUT_RDWR);
        for (;;)
            pause();
    case F_GRANDCHILD: {
        int pp[2];
        char one = 0;
        if (pipe(pp) != 0)
            _exit(98);
        if (fork() == 0) {
            /* Out of the process group (a group kill misses it), holding
             * the socket for longer than the parent waits. */
            setsid();
            if (write(pp[1], &one, 1) != 1)
                _exit(98);
            sleep(3);
            _exit(0);
        }
        /* Exit only once it is out of the group. */
        if (read(pp[0], &one, 1) != 1)
            _exit(98);
        _exit(3);
    }
    case F_GARBAGE:
        write_all(c, junk, sizeof(junk) - 1);
        return;
    case F_HUGE:
        write_all(c, huge, sizeof(huge));
        return;
    case F_FDCHECK: {
        /* Exit with the number of descriptors open: the test expects
         * exactly 0-3. */
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;
        while (d != NULL && (de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                n++;
        if (d != NULL)
            closedir(d);
        _exit(n - 1); /* less the directory's own */
    }
    case F_BADSEQ:
        /* A well-formed event frame, five seqs ahead. */
        memset(bad, 0, sizeof(bad));
        bad[7] = (unsigned char)(seq + 5);
        bad[16] = COUNCIL_EV_MEMBER_DELTA;
        memset(bad + 21, 0xff, 16);
        if (council__frame_put(&b, COUNCIL__FR_EVENT, bad, 37) == COUNCIL_OK)
            write_all(c, b.p, b.len);
        council__buf_free(&b);
        return;
    }
}

/* ---- the sink: the child's run's recorder ------------------------------ */

static int
sink_init(const char *run_id, void *args, void **state, char *why,
          size_t why_size)
{
    (void)run_id;
    (void)why;
    (void)why_size;
    *state = args;
    return 0;
}

static int
sink_event(void *state, council_event *ev)
{
    child *c = state;
    uint64_t seq = council_event_seq(ev);
    council_err rc;

    pthread_mutex_lock(&c->wmu);
    rc = council__frame_put_event(&c->out, ev);
    if (rc != COUNCIL_OK) {
        /* Without this event the parent's record would have a gap: say
         * why, and end (the parent reports the exit). */
        char line[96];
        int n = snprintf(line, sizeof(line), "cannot send seq %llu: %s",
                         (unsigned long long)seq, council_strerror(rc));
        flush_locked(c);
        send_locked(c, COUNCIL__FR_LOG, line, (size_t)n);
        _exit(70);
    }
    if (c->fault != F_NONE && c->fault_seq == seq) {
        flush_locked(c);
        fault_now(c, seq);
    }
    pthread_mutex_unlock(&c->wmu);
    return 0;
}

static void
sink_flush(void *state)
{
    child *c = state;

    pthread_mutex_lock(&c->wmu);
    flush_locked(c);
    pthread_mutex_unlock(&c->wmu);
}

static void
sink_final(void *state, const council_outcome *o)
{
    child *c = state;
    const char *j = council_outcome_json(o);

    pthread_mutex_lock(&c->wmu);
    flush_locked(c);
    send_locked(c, COUNCIL__FR_DONE, j != NULL ? j : "{}",
                j != NULL ? strlen(j) : 2);
    pthread_mutex_unlock(&c->wmu);
}

static const council_recorder_ops sink_ops = {COUNCIL_RECORDER_OPS_VERSION,
                                              sink_init, sink_event, sink_final,
                                              sink_flush};

static void
on_log(const char *line, void *ud)
{
    send_frame(ud, COUNCIL__FR_LOG, line, strlen(line));
}

/* ---- a spec: start the run --------------------------------------------- */

static void failed(child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
failed(child *c, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = (int)sizeof(msg) - 1;
    send_frame(c, COUNCIL__FR_FAILED, msg, (size_t)n);
}

/* The council of the spec: the last one again if its text is the same. */
static council_err
load_council(child *c, json_t *co, council_diag *diag)
{
    const char *name = json_string_value(json_object_get(co, "name"));
    json_t *t = json_object_get(co, "text");
    const char *text = json_string_value(t);
    size_t len = json_string_length(t);
    council_def *def = NULL;
    council_err rc;

    if (text == NULL)
        return COUNCIL_EINVAL;
    if (c->def != NULL && c->def_len == len &&
        memcmp(c->def_text, text, len) == 0)
        return COUNCIL_OK;
    rc = council_def_load_string(text, len, name != NULL ? name : "<council>",
                                 &def, diag);
    if (rc != COUNCIL_OK)
        return rc;
    council_def_free(c->def);
    council__free(c->def_text);
    c->def = def;
    c->def_text = council__strndup(text, len);
    c->def_len = len;
    if (c->def_text == NULL) {
        council_def_free(c->def);
        c->def = NULL;
        return COUNCIL_ENOMEM;
    }
    return COUNCIL_OK;
}

static void
start_run(child *c, const unsigned char *p, size_t len)
{
    council_recorder_spec rec = {&sink_ops, c};
    council_run_opts ro = {COUNCIL_RUN_OPTS_VERSION};
    council_message *msgs = NULL;
    council_diag diag;
    json_error_t je;
    json_t *spec, *m;
    const char *seed;
    size_t i, n = 0;
    council_err rc;

    memset(&diag, 0, sizeof(diag));
    spec = json_loadb((const char *)p, len, 0, &je);
    if (spec == NULL) {
        failed(c, "the run's spec is not JSON: %s", je.text);
        return;
    }
    m = json_object_get(spec, "messages");
    seed = json_string_value(json_object_get(spec, "seed"));
    ro.run_id = json_string_value(json_object_get(spec, "run_id"));
    if (!json_is_array(m) || json_array_size(m) == 0 || seed == NULL ||
        ro.run_id == NULL) {
        failed(c, "the run's spec lacks messages, seed or run_id");
        goto out;
    }
    ro.seed = strtoull(seed, NULL, 10);
    ro.deadline_ms =
        (uint64_t)json_integer_value(json_object_get(spec, "deadline_ms"));
    ro.recorders = &rec;
    ro.n_recorders = 1;
    ro.isolation = COUNCIL_ISOLATION_NONE;
    n = json_array_size(m);
    msgs = council__calloc(n, sizeof(*msgs));
    if (msgs == NULL) {
        failed(c, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(m, i);
        msgs[i].role = json_string_value(json_object_get(e, "role"));
        msgs[i].content = json_string_value(json_object_get(e, "content"));
        if (msgs[i].role == NULL || msgs[i].content == NULL) {
            failed(c, "the run's spec has a bad message %zu", i);
            goto out;
        }
    }
    rc = load_council(c, json_object_get(spec, "council"), &diag);
    if (rc != COUNCIL_OK) {
        if (diag.line > 0)
            failed(c, "%s:%d:%d: %s", diag.file, diag.line, diag.col, diag.msg);
        else
            failed(c, "council: %s",
                   diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
        goto out;
    }
    rc = council_run_start_messages(c->eng, c->def, msgs, n, &ro, &c->run,
                                    &diag);
    if (rc != COUNCIL_OK)
        failed(c, "%s", diag.msg[0] != '\0' ? diag.msg : council_strerror(rc));
out:
    council__free(msgs);
    json_decref(spec);
}

/* ---- the main thread --------------------------------------------------- */

/* 0: go on; -1: the parent broke the protocol (the process ends). */
static int
take_frame(child *c, int type, const unsigned char *p, size_t len)
{
    switch (type) {
    case COUNCIL__FR_PARAMS:
        if (len >= 4 && council__get_u32(p) > 0)
            c->hb_ms = council__get_u32(p);
        return 0;
    case COUNCIL__FR_SPEC:
        if (c->run != NULL) {
            /* The parent sends a spec only after the last run's 'D'. */
            if (council_run_wait(c->run, 0, NULL) != COUNCIL_OK) {
                say("council-host: a run while one is in flight\n");
                return -1;
            }
            council_run_release(c->run);
            c->run = NULL;
        }
        start_run(c, p, len);
        return 0;
    case COUNCIL__FR_CANCEL:
        if (c->run != NULL && c->fault != F_NOCANCEL) {
            char kind[16];
            snprintf(kind, sizeof(kind), "%.*s", (int)(len < 15 ? len : 15),
                     (const char *)p);
            council__run_cancel_kind(c->run, kind);
        }
        return 0;
    default:
        say("council-host: an unknown frame from the parent\n");
        return -1;
    }
}

static void
close_other_fds(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 4u, ~0u, 0u) == 0)
        return;
#endif
    for (int fd = 4; fd < 1024; fd++)
        close(fd);
}

int
council_host_main(int argc, char **argv)
{
    council_engine_opts eo = {COUNCIL_ENGINE_OPTS_VERSION};
    struct sigaction sa;
    struct stat st;
    council__buf in = {0};
    unsigned char ready[8];
    child c;
    int code = 0;

    if (fstat(FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        say("council-host: the run host of a council engine; it is started "
            "by the engine (isolation: process), with its socket as fd 3, "
            "not by hand\n");
        return 2;
    }
    close_other_fds();
    /* Die with the parent; and if it is gone already, now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (argc > 2 && (long)getppid() != strtol(argv[2], NULL, 10))
        return 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.wmu, NULL);
    c.hb_ms = 1000;
    fault_parse(&c);
    if (c.fault != F_NONE && c.fault != F_NOCANCEL && c.fault_seq == 0) {
        pthread_mutex_lock(&c.wmu);
        fault_now(&c, 0);
        pthread_mutex_unlock(&c.wmu);
    }
    eo.loop_threads = 1;
    eo.recorder_threads = 1;
    /* No spinning here: a parent may have hundreds of children, and their
     * waits would burn the CPUs the runs need (isolated c256 against the
     * canned nginx: 860 runs/s spinning, see the commit); the parent
     * spins for the caller. */
    eo.spin_us = -1;
    eo.log = on_log;
    eo.log_ud = &c;
    if (council_engine_open(&eo, &c.eng) != COUNCIL_OK) {
        say("council-host: cannot open an engine\n");
        return 70;
    }
    council__put_u32(ready, COUNCIL__FRAME_PROTOCOL);
    council__put_u32(ready + 4, (uint32_t)getpid());
    send_frame(&c, COUNCIL__FR_READY, ready, sizeof(ready));

    for (;;) {
        struct pollfd pf = {FD, POLLIN, 0};
        uint64_t idle = mono_ms() - atomic_load(&c.last_tx_ms);
        int timeout = idle >= c.hb_ms ? 0 : (int)(c.hb_ms - idle);
        int r = poll(&pf, 1, timeout);
        ssize_t got;

        if (r < 0 && errno != EINTR)
            break;
        if (mono_ms() - atomic_load(&c.last_tx_ms) >= c.hb_ms)
            send_frame(&c, COUNCIL__FR_HEARTBEAT, NULL, 0);
        if (r <= 0)
            continue;
        if (council__buf_reserve(&in, 16 * 1024) != COUNCIL_OK) {
            code = 70;
            break;
        }
        got = read(FD, in.p + in.len, in.cap - in.len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* the parent closed the socket, or is gone */
        in.len += (size_t)got;
        for (;;) {
            const unsigned char *payload;
            size_t plen, used;
            char why[128];
            int type;
            r = council__frame_next(in.p, in.len, &type, &payload, &plen, &used,
                                    why, sizeof(why));
            if (r == 0)
                break;
            if (r < 0 || take_frame(&c, type, payload, plen) != 0) {
                code = 2;
                goto out;
            }
            council__buf_consume(&in, used);
        }
    }
out:
    /* A run still in flight ends crashed("shutdown") with the engine. */
    council_engine_close(c.eng);
    council_run_release(c.run);
    council_def_free(c.def);
    council__free(c.def_text);
    council__buf_free(&in);
    council__buf_free(&c.out);
    pthread_mutex_destroy(&c.wmu);
    return code;
}
