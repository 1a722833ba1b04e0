/* SPDX-License-Identifier: MIT */
/*
 * The owner of a run record (DISTRIBUTED.md §3): the process whose recorder
 * writes it, named by host name, pid, the process's start time and the
 * boot id, and the check a reader makes before it closes a record that has
 * no outcome: is that process still alive on this host and boot?  Every
 * read of /proc goes through the os seam (os.h), so a test can make a pid
 * look dead, reused or hidden.
 */
#ifndef COUNCIL_OWNER_H
#define COUNCIL_OWNER_H

#include <stdint.h>

typedef struct council__owner {
    char host[256]; /* gethostname(); "" when unknown */
    int64_t pid;    /* 0 when unknown */
    /* Field 22 of /proc/PID/stat: clock ticks since boot; -1 unknown. */
    int64_t start;
    char boot[64]; /* /proc/sys/kernel/random/boot_id; "" unknown */
} council__owner;

/* What council__owner_check found. */
enum council__owner_verdict {
    COUNCIL__OWNER_UNKNOWN, /* a field is missing, or the process cannot
                               be seen (hidden /proc): never close */
    COUNCIL__OWNER_FOREIGN, /* another host: never close (DISTRIBUTED §4
                               leases cover those) */
    COUNCIL__OWNER_ALIVE,   /* that very process still runs */
    COUNCIL__OWNER_LOST     /* gone: another boot, no such pid, a zombie,
                               or the pid now names another process */
};

/*
 * This process as an owner, read once per process (again after a fork).
 * A field that cannot be read is left unknown (a record with an unknown
 * owner field is never closed by a reader).  Any thread.
 */
void council__owner_self(council__owner *out);

/*
 * Is the owner o alive?  ALIVE and LOST only for a complete owner on this
 * host; a pid that exists with another start time is a reused pid (LOST);
 * a pid /proc does not show but kill(pid, 0) finds (hidepid, another
 * user's process) is UNKNOWN.  Any thread.
 */
enum council__owner_verdict council__owner_check(const council__owner *o);

/*
 * Process pid of this host and boot as an owner (its start time read from
 * /proc): what council__owner_self gives for that process.  0, or -1 with
 * errno when there is no such process to read.  Any thread.
 */
int council__owner_of_pid(int64_t pid, council__owner *out);

/* Forget the cached identity of this process (tests change the os seam). */
void council__owner_forget(void);

#endif
