/* SPDX-License-Identifier: MIT */
/*
 * The syscall table and its fault injector.  The defaults are thin wrappers
 * over the libc calls (open is variadic in libc, so it needs one).  The
 * injector wraps one entry at a time; it counts calls with atomics so a
 * fault set before threads start may fire on any of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "os/os.h"

static int
sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int
sys_stat(const char *path, struct stat *st)
{
    return stat(path, st);
}

static const struct council__os real = {
    .open = sys_open,
    .read = read,
    .write = write,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .close = close,
    .rename = rename,
    .unlink = unlink,
    .mkdir = mkdir,
    .stat = sys_stat,
    .kill = kill,
};

struct council__os council__os = {
    .open = sys_open,
    .read = read,
    .write = write,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .close = close,
    .rename = rename,
    .unlink = unlink,
    .mkdir = mkdir,
    .stat = sys_stat,
    .kill = kill,
};

const char *
council__os_strerror(int err, char *buf, size_t size)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(err, buf, size);
#else
    if (strerror_r(err, buf, size) != 0)
        snprintf(buf, size, "error %d", err);
    return buf;
#endif
}

/* The fault in force; written only by council__os_fault_set (no recorder
 * running), read by the wrappers. */
static council__os_fault fault;
static atomic_uint calls;
static atomic_uint hits;

enum verdict { PASS, FAIL, HALF };

static enum verdict
decide(void)
{
    unsigned k = atomic_fetch_add(&calls, 1) + 1;
    unsigned fail_at = fault.half ? fault.nth + 1 : fault.nth;

    if (fault.half && k == fault.nth) {
        atomic_fetch_add(&hits, 1);
        return HALF;
    }
    if (k == fail_at || (fault.persistent && k > fail_at)) {
        atomic_fetch_add(&hits, 1);
        return FAIL;
    }
    return PASS;
}

#define FAIL_IF_DUE()                                                          \
    do {                                                                       \
        if (decide() == FAIL) {                                                \
            errno = fault.err;                                                 \
            return -1;                                                         \
        }                                                                      \
    } while (0)

static int
f_open(const char *path, int flags, mode_t mode)
{
    FAIL_IF_DUE();
    return real.open(path, flags, mode);
}

static ssize_t
f_read(int fd, void *buf, size_t n)
{
    FAIL_IF_DUE();
    return real.read(fd, buf, n);
}

static ssize_t
f_write(int fd, const void *buf, size_t n)
{
    switch (decide()) {
    case FAIL:
        errno = fault.err;
        return -1;
    case HALF:
        /* A one-byte write cannot be cut in half; it goes through. */
        return real.write(fd, buf, n > 1 ? n / 2 : n);
    case PASS:
        break;
    }
    return real.write(fd, buf, n);
}

static int
f_fsync(int fd)
{
    FAIL_IF_DUE();
    return real.fsync(fd);
}

static int
f_ftruncate(int fd, off_t len)
{
    FAIL_IF_DUE();
    return real.ftruncate(fd, len);
}

static int
f_close(int fd)
{
    /* Like Linux, a failing close still releases the descriptor. */
    if (decide() == FAIL) {
        real.close(fd);
        errno = fault.err;
        return -1;
    }
    return real.close(fd);
}

static int
f_rename(const char *from, const char *to)
{
    FAIL_IF_DUE();
    return real.rename(from, to);
}

void
council__os_restore(void)
{
    council__os = real;
    atomic_store(&calls, 0);
    atomic_store(&hits, 0);
}

void
council__os_fault_set(const council__os_fault *f)
{
    council__os_restore();
    fault = *f;
    switch (f->call) {
    case COUNCIL__OS_OPEN:
        council__os.open = f_open;
        break;
    case COUNCIL__OS_READ:
        council__os.read = f_read;
        break;
    case COUNCIL__OS_WRITE:
        council__os.write = f_write;
        break;
    case COUNCIL__OS_FSYNC:
        council__os.fsync = f_fsync;
        break;
    case COUNCIL__OS_FTRUNCATE:
        council__os.ftruncate = f_ftruncate;
        break;
    case COUNCIL__OS_CLOSE:
        council__os.close = f_close;
        break;
    case COUNCIL__OS_RENAME:
        council__os.rename = f_rename;
        break;
    }
}

unsigned
council__os_fault_hits(void)
{
    return atomic_load(&hits);
}
