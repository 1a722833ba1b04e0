/* SPDX-License-Identifier: MIT */
/*
 * The council command: dispatch to subcommands.  Uses council.h only.
 */
#include <stdio.h>
#include <string.h>

#include "council.h"

int council_cmd_mockllm(int argc, char **argv);

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("council %s\n", council_version());
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "mock-llm") == 0)
        return council_cmd_mockllm(argc - 1, argv + 1);
    fprintf(stderr, "usage: council --version | mock-llm [options]\n");
    return 2;
}
