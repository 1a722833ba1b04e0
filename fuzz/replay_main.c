/* SPDX-License-Identifier: MIT */
/*
 * Corpus replay without libFuzzer (SQLite's fuzzcheck): runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, and
 * on every file of every directory named there (in name order, hidden
 * files skipped).  Built for each fuzz target as replay_<name> and run by
 * CTest on fuzz/corpus/<name>/ under the normal sanitizer build, so an
 * input that crashed once keeps being tested.  Exits non-zero if an input
 * cannot be read or no input was found; a broken invariant aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            size_t ncap = cap != 0 ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, ncap);

            if (nb == NULL)
                goto out;
            buf = nb;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        goto out;
    }
    /* Like libFuzzer, hand over a copy of exactly len bytes, so reads past
     * the end are caught by ASan. */
    {
        uint8_t *exact = malloc(len != 0 ? len : 1);

        if (exact == NULL)
            goto out;
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file in dir; returns the count, -1 on error. */
static long
run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    long count = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap != 0 ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof(*nn));

            if (nn == NULL) {
                count = -1;
                goto out;
            }
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            count = -1;
            goto out;
        }
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), by_name);
    for (i = 0; i < n; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        struct stat st;

        if (path == NULL) {
            count = -1;
            goto out;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0) {
                free(path);
                count = -1;
                goto out;
            }
            count++;
        }
        free(path);
    }
out:
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return count;
}

int
main(int argc, char **argv)
{
    long total = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        struct stat st;
        long n;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            n = run_dir(argv[i]);
        } else {
            n = run_file(argv[i]) == 0 ? 1 : -1;
        }
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    if (total == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return 0;
}
