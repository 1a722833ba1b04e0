/* SPDX-License-Identifier: MIT */
/*
 * The council command: dispatch to subcommands.  Uses council.h only.
 */
#include <stdio.h>
#include <string.h>

#include "council.h"

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("council %s\n", council_version());
        return 0;
    }
    fprintf(stderr, "usage: council --version\n");
    return 2;
}
