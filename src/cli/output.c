/* SPDX-License-Identifier: MIT */
/*
 * Whether stdout took what the command wrote to it.  stdio buffers, so a
 * write that fails (a full disk, an I/O error, a reader gone while
 * SIGPIPE is ignored) fails inside some later printf or at the flush at
 * exit, where nobody looks, and glibc keeps no errno for it: after a
 * failed flush of a full buffer it drops the bytes and only ferror says
 * something went wrong.  So stdout is a stdio stream of our own over
 * descriptor 1 (fopencookie) whose write function keeps the first error
 * it met; main() hands its exit code through cli_finish_stdout, which
 * flushes and closes stdout and turns a failure into an error, by the
 * rule of coreutils' close_stdout: closing a stdout that was never open
 * and never written to is not an error (`council serve >&-` is fine).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The first write error on stdout (0: none).  Written under the stream's
 * lock by whichever thread writes stdout. */
static atomic_int first_err;

static ssize_t
out_write(void *cookie, const char *buf, size_t n)
{
    size_t off = 0;
    int zero = 0;

    (void)cookie;
    while (off < n) {
        ssize_t k = write(STDOUT_FILENO, buf + off, n - off);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            atomic_compare_exchange_strong(&first_err, &zero,
                                           k < 0 ? errno : EIO);
            break;
        }
        off += (size_t)k;
    }
    /* Fewer bytes than asked: stdio marks the stream failed. */
    return (ssize_t)off;
}

static int
out_close(void *cookie)
{
    (void)cookie;
    return close(STDOUT_FILENO);
}

void
cli_stdout_open(void)
{
    cookie_io_functions_t io = {NULL, out_write, NULL, out_close};
    FILE *f = fopencookie(NULL, "w", io);

    /* Without it (no memory) stdout stays glibc's: write errors are
     * still caught, only their errno may be unknown. */
    if (f == NULL)
        return;
    setvbuf(f, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
    stdout = f;
}

int
cli_finish_stdout(int code)
{
    int pending = __fpending(stdout) != 0;
    int failed_before = ferror(stdout) != 0;
    int close_failed, err;

    errno = 0;
    close_failed = fclose(stdout) != 0;
    err = atomic_load(&first_err);
    if (err == 0 && close_failed)
        err = errno;
    if (!failed_before && !(close_failed && (pending || err != EBADF)))
        return code;
    if (err != 0)
        cli_error("writing to stdout: %s", strerror(err));
    else
        cli_error("writing to stdout failed");
    return code == EXIT_COMPLETED ? EXIT_FAILED : code;
}
