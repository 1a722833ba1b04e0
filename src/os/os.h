/* SPDX-License-Identifier: MIT */
/*
 * The syscall seam (STYLE 18, RELIABILITY F2).  Every file system call made
 * by the recorders (and by the store reader) goes through the table
 * council__os, which defaults to the real calls; a test replaces entries to
 * inject faults, in the manner of SQLite's xSetSystemCall.  SQLite's own
 * file I/O goes through SQLite's unix VFS, whose xSetSystemCall is the seam
 * for the sqlite recorder.  The owner checks (owner.c) read /proc and
 * probe pids through it too.  Replace entries only while no recorder is
 * running (before threads start, or after they are joined).
 */
#ifndef COUNCIL_OS_H
#define COUNCIL_OS_H

#include <sys/stat.h>
#include <sys/types.h>

struct council__os {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*read)(int fd, void *buf, size_t n);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*close)(int fd);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*mkdir)(const char *path, mode_t mode);
    int (*stat)(const char *path, struct stat *st);
    /* kill(pid, 0) only: whether the owner of a run record exists. */
    int (*kill)(pid_t pid, int sig);
};

extern struct council__os council__os;

/* The text for errno value err, in buf (size bytes) or static storage:
 * strerror_r whichever flavour the C library has.  Any thread. */
const char *council__os_strerror(int err, char *buf, size_t size);

/* Put every entry back to the real call and clear any injected fault. */
void council__os_restore(void);

/*
 * A ready-made fault injector for tests.  council__os_fault_set() installs
 * a wrapper on one call: the nth call from now (1-based) fails with err;
 * with persistent set, every later call fails too.  For write, half set
 * makes the nth call write half of its bytes and return that short count,
 * and the call after it fail with err (a write interrupted by a signal
 * after partial progress, then EINTR, or a disk filling up mid-line).
 * Counters are atomic, so faults may hit calls from any thread.
 */
enum council__os_call {
    COUNCIL__OS_OPEN,
    COUNCIL__OS_READ,
    COUNCIL__OS_WRITE,
    COUNCIL__OS_FSYNC,
    COUNCIL__OS_FTRUNCATE,
    COUNCIL__OS_CLOSE,
    COUNCIL__OS_RENAME
};

typedef struct council__os_fault {
    enum council__os_call call;
    unsigned nth;
    int err;
    int persistent;
    int half;
} council__os_fault;

void council__os_fault_set(const council__os_fault *f);
/* How many calls the injector has failed (or cut short) so far. */
unsigned council__os_fault_hits(void);

#endif
