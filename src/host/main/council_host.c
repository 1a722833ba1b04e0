/* SPDX-License-Identifier: MIT */
/*
 * council-host: the program an engine starts for each isolated run's host
 * (isolation: process).  Everything it does is council_host_main's.
 */
#include <council.h>

int
main(int argc, char **argv)
{
    return council_host_main(argc, argv);
}
