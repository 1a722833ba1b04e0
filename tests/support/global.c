/* SPDX-License-Identifier: MIT */
/*
 * Process-wide state that libraries create once and never release, made
 * before the runner counts descriptors, so that the per-case fd check sees
 * only what the case itself left open.  libuv's first loop creates its
 * signal-lock pipe (two descriptors, kept for the process's life).
 */
#include <uv.h>

void runner_global_init(void);

void
runner_global_init(void)
{
    uv_loop_t loop;

    if (uv_loop_init(&loop) == 0)
        uv_loop_close(&loop);
}
