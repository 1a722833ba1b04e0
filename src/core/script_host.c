/* SPDX-License-Identifier: MIT */
/*
 * The scripted run host.  Plays steps on the loop with a timer between
 * delayed steps.  Its state is freed only when both the engine has called
 * free (after exit) and the timer's close callback has run: a handle is
 * never freed before libuv is done with it.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/script_host.h"

typedef struct script_run {
    council__script s;
    council_run *run;
    size_t next;
    uv_timer_t timer;
    int timer_open;
    int freed;
    int exited;
    int cancelled;
} script_run;

static void
maybe_free(script_run *sr)
{
    if (sr->freed && !sr->timer_open)
        council__free(sr);
}

static void
timer_closed(uv_handle_t *h)
{
    script_run *sr = h->data;

    sr->timer_open = 0;
    maybe_free(sr);
}

static void
close_timer(script_run *sr)
{
    if (sr->timer_open && !uv_is_closing((uv_handle_t *)&sr->timer))
        uv_close((uv_handle_t *)&sr->timer, timer_closed);
}

static void
do_exit(script_run *sr, const char *reason)
{
    if (sr->exited)
        return;
    sr->exited = 1;
    close_timer(sr);
    council__run_exit(sr->run, reason);
}

static void
emit_step(script_run *sr, const council__script_step *st)
{
    council__event_init in;
    json_t *data = NULL;
    size_t i = (size_t)(st - sr->s.steps);

    if (sr->s.data != NULL && sr->s.data[i] != NULL)
        data = json_incref(sr->s.data[i]);
    else if (st->data_json != NULL)
        data = json_loads(st->data_json, 0, NULL);
    memset(&in, 0, sizeof(in));
    in.type = st->type;
    in.stage = st->stage;
    in.member = st->member;
    in.text = st->text;
    in.text_len = st->text != NULL ? strlen(st->text) : 0;
    in.data = data;
    council__run_emit(sr->run, &in);
}

static void on_timer(uv_timer_t *t);

/* The timer is made on first use: a script without delays needs none. */
static void
start_timer(script_run *sr, uint64_t ms)
{
    if (!sr->timer_open) {
        uv_timer_init(council__run_loop(sr->run), &sr->timer);
        sr->timer.data = sr;
        sr->timer_open = 1;
    }
    uv_timer_start(&sr->timer, on_timer, ms, 0);
}

/* Play steps until one has a delay; then arm the timer or finish. */
static void
play(script_run *sr, int first_may_wait)
{
    while (sr->next < sr->s.n_steps && !sr->exited) {
        const council__script_step *st = &sr->s.steps[sr->next];
        if (st->delay_ms > 0 && first_may_wait) {
            start_timer(sr, st->delay_ms);
            return;
        }
        first_may_wait = 1;
        sr->next++;
        emit_step(sr, st);
    }
    if (!sr->exited && sr->s.then == COUNCIL__SCRIPT_EXIT)
        do_exit(sr,
                sr->s.exit_reason != NULL ? sr->s.exit_reason : "script ended");
}

static void
on_timer(uv_timer_t *t)
{
    play(t->data, 0);
}

static council_err
s_start(council_run *run, void *state, char *msg, size_t msg_size)
{
    script_run *sr = state;

    if (sr->s.started != NULL)
        __atomic_add_fetch(sr->s.started, 1, __ATOMIC_SEQ_CST);
    if (sr->s.fail_start != NULL) {
        snprintf(msg, msg_size, "%s", sr->s.fail_start);
        return COUNCIL_ESTART;
    }
    sr->run = run;
    if (sr->s.emit_in_start)
        play(sr, 1);
    else
        start_timer(sr, 0);
    return COUNCIL_OK;
}

static void
s_cancel(void *state, const char *kind)
{
    script_run *sr = state;
    council__event_init in;

    if (sr->s.ignore_cancel || sr->exited || sr->cancelled)
        return;
    sr->cancelled = 1;
    memset(&in, 0, sizeof(in));
    in.type = COUNCIL_EV_RUN_FAILED;
    in.data =
        json_pack("{s:[{s:s,s:s}]}", "errors", "kind", kind, "message",
                  strcmp(kind, "deadline") == 0 ? "the run's deadline passed"
                                                : "the run was cancelled");
    council__run_emit(sr->run, &in);
    do_exit(sr, "cancelled");
}

static void
s_shutdown(void *state)
{
    do_exit(state, "shutdown");
}

static void
s_free(void *state)
{
    script_run *sr = state;

    sr->freed = 1;
    close_timer(sr);
    maybe_free(sr);
}

static const council__host_ops script_ops = {s_start, s_cancel, s_shutdown,
                                             s_free};

council_err
council__run_start_script(council_engine *eng, const council__script *script,
                          const council_run_opts *opts, council_run **out,
                          council_diag *diag)
{
    script_run *sr = council__calloc(1, sizeof(*sr));

    if (sr == NULL)
        return COUNCIL_ENOMEM;
    sr->s = *script;
    return council__run_start_host(eng, &script_ops, sr, opts, out, diag);
}
