/* SPDX-License-Identifier: MIT */
/* The version string and error names. */
#include "council.h"

const char *
council_version(void)
{
    return "0.1.0";
}

const char *
council_strerror(council_err err)
{
    switch (err) {
    case COUNCIL_OK:
        return "success";
    case COUNCIL_ENOMEM:
        return "out of memory";
    case COUNCIL_EINVAL:
        return "invalid argument";
    case COUNCIL_EPARSE:
        return "malformed input";
    case COUNCIL_ENOTFOUND:
        return "not found";
    case COUNCIL_EEXIST:
        return "already exists";
    case COUNCIL_EREFUSED:
        return "refused by a recorder";
    case COUNCIL_ECANCELED:
        return "cancelled";
    case COUNCIL_ETIMEDOUT:
        return "timed out";
    case COUNCIL_ECLOSED:
        return "engine closed";
    case COUNCIL_EIO:
        return "input/output error";
    case COUNCIL_EDEADLK:
        return "would wait on itself";
    case COUNCIL_ESTART:
        return "run host could not start";
    case COUNCIL_EHTTP:
        return "HTTP error";
    case COUNCIL_EINTERNAL:
        return "internal error";
    case COUNCIL_EBUSY:
        return "in use";
    }
    return "unknown error";
}
