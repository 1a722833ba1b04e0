/* SPDX-License-Identifier: MIT */
/*
 * Owners of run records (src/os/owner.c): this process as an owner, and
 * the verdict on recorded owners: alive (this process, a live child),
 * lost (a reaped child, a zombie, a pid whose start time differs: reused,
 * another boot), foreign (another host), unknown (a field missing, a pid
 * that /proc hides).  Real processes; /proc and kill(pid, 0) faked through
 * the os seam where a real case cannot be made.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os/os.h"
#include "os/owner.h"
#include "runner.h"

/* A child that waits until its pipe closes; its pid. */
static pid_t
child_waiting(int *wfd)
{
    int p[2];
    pid_t pid;
    char c;

    ASSERT_EQ_INT(pipe(p), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        while (read(p[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(p[0]);
    *wfd = p[1];
    return pid;
}

TEST(self_is_known_and_alive)
{
    council__owner me, again;

    council__owner_self(&me);
    ASSERT(me.host[0] != '\0');
    ASSERT_EQ_INT(me.pid, getpid());
    ASSERT(me.start > 0);
    ASSERT_EQ_INT(strlen(me.boot), 36); /* a UUID */
    council__owner_self(&again);
    ASSERT_EQ_INT(memcmp(&me, &again, sizeof(me)), 0);
    ASSERT_EQ_INT(council__owner_check(&me), COUNCIL__OWNER_ALIVE);
    ASSERT_EQ_INT(council__owner_of_pid(getpid(), &again), 0);
    ASSERT_EQ_INT(again.start, me.start);
}

TEST(a_fork_is_another_owner)
{
    council__owner me;
    int status;
    pid_t pid;

    council__owner_self(&me);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        council__owner child;

        council__owner_self(&child);
        /* Its own pid and start; the parent still alive from here. */
        _exit(child.pid == (int64_t)getpid() && child.start >= me.start &&
                      council__owner_check(&me) == COUNCIL__OWNER_ALIVE &&
                      council__owner_check(&child) == COUNCIL__OWNER_ALIVE
                  ? 0
                  : 1);
    }
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(child_alive_zombie_then_gone)
{
    council__owner o;
    int wfd, status;
    pid_t pid = child_waiting(&wfd);

    ASSERT_EQ_INT(council__owner_of_pid(pid, &o), 0);
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_ALIVE);
    close(wfd); /* it exits; not reaped yet: a zombie */
    for (int i = 0; i < 2000; i++) {
        char state = 0, path[64], buf[512];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "r");
        if (f != NULL && fgets(buf, sizeof(buf), f) != NULL)
            state = strrchr(buf, ')')[2];
        if (f != NULL)
            fclose(f);
        if (state == 'Z')
            break;
        usleep(1000);
    }
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    ASSERT_EQ_INT(council__owner_of_pid(pid, &o), -1);
}

TEST(reused_pid_other_boot_other_host)
{
    council__owner me, o;
    int wfd, status;
    pid_t pid = child_waiting(&wfd);

    council__owner_self(&me);
    /* This pid, but a process that started at another time: this is not
     * the process that wrote the record, which is gone. */
    o = me;
    o.start = me.start + 1;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    ASSERT_EQ_INT(council__owner_of_pid(pid, &o), 0);
    o.start -= 1;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    /* Another boot: every process of it is gone, this one's pid too. */
    o = me;
    snprintf(o.boot, sizeof(o.boot), "00000000-0000-4000-8000-000000000000");
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    /* Another host: never ours to judge, even with a dead pid. */
    o = me;
    snprintf(o.host, sizeof(o.host), "%.200s-elsewhere", me.host);
    o.pid = 999999999;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_FOREIGN);
    /* A pid no process can have. */
    o = me;
    o.pid = (int64_t)1 << 40;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    close(wfd);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
}

TEST(missing_fields_are_unknown)
{
    council__owner me, o;

    council__owner_self(&me);
    o = me;
    o.host[0] = '\0';
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    o = me;
    o.pid = 0;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    o = me;
    o.start = -1;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    o = me;
    o.boot[0] = '\0';
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    ASSERT_EQ_INT(council__owner_check(NULL), COUNCIL__OWNER_UNKNOWN);
}

/* ---- /proc and kill through the seam ------------------------------------ */

static int proc_errno; /* open of /proc/N/stat fails with this */
static int kill_errno; /* kill fails with this; 0: succeeds */

static int
fake_open(const char *path, int flags, mode_t mode)
{
    if (strncmp(path, "/proc/", 6) == 0 && path[6] >= '0' && path[6] <= '9') {
        errno = proc_errno;
        return -1;
    }
    return open(path, flags, mode);
}

static int
fake_kill(pid_t pid, int sig)
{
    (void)pid;
    (void)sig;
    if (kill_errno == 0)
        return 0;
    errno = kill_errno;
    return -1;
}

TEST(hidden_or_unreadable_proc)
{
    council__owner me, o;
    int wfd, status;
    pid_t pid = child_waiting(&wfd);

    council__owner_self(&me); /* cached before the seam changes */
    ASSERT_EQ_INT(council__owner_of_pid(pid, &o), 0);
    council__os.open = fake_open;
    council__os.kill = fake_kill;
    /* hidepid: /proc hides it, kill finds it (or is not permitted to):
     * it may live; never closed. */
    proc_errno = ENOENT;
    kill_errno = 0;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    kill_errno = EPERM;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    /* Neither /proc nor kill knows it: gone. */
    kill_errno = ESRCH;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_LOST);
    /* /proc cannot be read at all: cannot tell. */
    proc_errno = EACCES;
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_UNKNOWN);
    /* This process itself is judged without /proc. */
    ASSERT_EQ_INT(council__owner_check(&me), COUNCIL__OWNER_ALIVE);
    council__os_restore();
    ASSERT_EQ_INT(council__owner_check(&o), COUNCIL__OWNER_ALIVE);
    close(wfd);
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
}

TEST(self_without_proc_is_unknown)
{
    council__owner me;

    council__os.open = fake_open;
    proc_errno = ENOENT;
    council__owner_forget();
    council__owner_self(&me);
    council__os_restore();
    ASSERT_EQ_INT(me.start, -1); /* /proc/PID/stat unreadable */
    ASSERT(me.boot[0] != '\0');  /* not a /proc/N path: read */
    /* A record written so is never closed by a reader. */
    ASSERT_EQ_INT(council__owner_check(&me), COUNCIL__OWNER_UNKNOWN);
    council__owner_forget();
    council__owner_self(&me);
    ASSERT(me.start > 0);
}
