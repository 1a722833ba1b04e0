/* SPDX-License-Identifier: MIT */
/*
 * Owners of run records: who this process is (host, pid, start time, boot
 * id), and whether a recorded owner still lives.  The host name and boot
 * id come from gethostname() and /proc/sys/kernel/random/boot_id; a
 * process's state and start time from /proc/PID/stat, read through the os
 * seam.
 *
 * Method (is it alive?).  Another host: not ours to judge.  Another boot:
 * every process of that boot is gone.  Same boot: /proc/PID/stat is read;
 * a zombie (state Z or X) has ended (its recorder with it); a start time
 * other than the recorded one means the pid was reused, so the owner is
 * gone.  No /proc entry: kill(pid, 0) tells a dead pid (ESRCH) from one
 * that /proc hides from us (hidepid, another user), which is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os/os.h"
#include "os/owner.h"

static pthread_mutex_t self_mu = PTHREAD_MUTEX_INITIALIZER;
static council__owner self;
static int self_known;

/* Read a small file whole (NUL-terminated) through the seam: its length,
 * or -1 with errno set. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
    size_t len = 0;
    int fd, e;

    do {
        fd = council__os.open(path, O_RDONLY | O_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    while (len + 1 < size) {
        ssize_t n = council__os.read(fd, buf + len, size - 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            council__os.close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    council__os.close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/*
 * The state (field 3) and start time (field 22) of /proc/PID/stat.  The
 * command name (field 2) is in parentheses and may hold spaces and
 * parentheses itself, so fields are counted from its last ')'.  0, or -1
 * with errno (ENOENT: no such process; EINVAL: a line we cannot parse).
 */
static int
proc_stat(int64_t pid, char *state, int64_t *start)
{
    char path[64], buf[1024], *p, *end;
    int field;

    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0') {
        errno = EINVAL;
        return -1;
    }
    *state = p[2];
    p += 2;
    for (field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL) {
            errno = EINVAL;
            return -1;
        }
        p++;
    }
    errno = 0;
    *start = (int64_t)strtoll(p, &end, 10);
    if (errno != 0 || end == p || *start < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static void
read_boot_id(char *out, size_t size)
{
    char buf[128];
    size_t n;

    out[0] = '\0';
    if (read_small("/proc/sys/kernel/random/boot_id", buf, sizeof(buf)) <= 0)
        return;
    n = strcspn(buf, "\n");
    buf[n] = '\0';
    if (n > 0 && n < size)
        memcpy(out, buf, n + 1);
}

void
council__owner_self(council__owner *out)
{
    pid_t pid = getpid();

    pthread_mutex_lock(&self_mu);
    if (!self_known || self.pid != (int64_t)pid) {
        char state;

        memset(&self, 0, sizeof(self));
        if (gethostname(self.host, sizeof(self.host)) != 0)
            self.host[0] = '\0';
        self.host[sizeof(self.host) - 1] = '\0';
        self.pid = (int64_t)pid;
        if (proc_stat(self.pid, &state, &self.start) != 0)
            self.start = -1;
        read_boot_id(self.boot, sizeof(self.boot));
        self_known = 1;
    }
    *out = self;
    pthread_mutex_unlock(&self_mu);
}

int
council__owner_of_pid(int64_t pid, council__owner *out)
{
    char state;

    council__owner_self(out);
    out->pid = pid;
    if (proc_stat(pid, &state, &out->start) != 0) {
        out->start = -1;
        return -1;
    }
    return 0;
}

void
council__owner_forget(void)
{
    pthread_mutex_lock(&self_mu);
    self_known = 0;
    pthread_mutex_unlock(&self_mu);
}

enum council__owner_verdict
council__owner_check(const council__owner *o)
{
    council__owner me;
    int64_t start;
    char state;

    if (o == NULL || o->host[0] == '\0' || o->pid <= 0 || o->start < 0 ||
        o->boot[0] == '\0')
        return COUNCIL__OWNER_UNKNOWN;
    council__owner_self(&me);
    if (me.host[0] == '\0' || me.boot[0] == '\0')
        return COUNCIL__OWNER_UNKNOWN; /* we cannot tell where we are */
    if (strcmp(o->host, me.host) != 0)
        return COUNCIL__OWNER_FOREIGN;
    if (strcmp(o->boot, me.boot) != 0)
        return COUNCIL__OWNER_LOST;
    if (o->pid == me.pid && me.start >= 0)
        return o->start == me.start ? COUNCIL__OWNER_ALIVE
                                    : COUNCIL__OWNER_LOST;
    if (o->pid > (int64_t)INT32_MAX)
        return COUNCIL__OWNER_LOST; /* no such pid on Linux */
    if (proc_stat(o->pid, &state, &start) == 0) {
        if (state == 'Z' || state == 'X' || start != o->start)
            return COUNCIL__OWNER_LOST;
        return COUNCIL__OWNER_ALIVE;
    }
    if (errno != ENOENT)
        return COUNCIL__OWNER_UNKNOWN;
    if (council__os.kill((pid_t)o->pid, 0) != 0 && errno == ESRCH)
        return COUNCIL__OWNER_LOST;
    return COUNCIL__OWNER_UNKNOWN;
}
