/* SPDX-License-Identifier: MIT */
/*
 * council validate: load council files and say, for each, either that it
 * is valid (with its name, strategy and member count) or where and why it
 * is not, as FILE:LINE:COL: message.  Unless --no-env is given, it also
 * checks that the environment variables named by api_key_env are set, so
 * a missing key is found before a run starts.  Nothing is contacted.
 */
#include <string.h>

#include "cli.h"

static const char validate_usage[] =
    "usage: council validate [--no-env] FILE...\n"
    "\n"
    "Check council files (YAML or JSON) without running them.  Prints\n"
    "  FILE: ok (council NAME, strategy S, N members)\n"
    "or\n"
    "  FILE:LINE:COL: message\n"
    "for each file.\n"
    "\n"
    "options:\n"
    "  --no-env     do not check that the variables named by api_key_env\n"
    "               are set\n"
    "  -h, --help   this help\n"
    "\n"
    "exit codes: 0 every file is valid, 2 otherwise (or a usage error)\n";

static void
print_diag(FILE *f, const council_diag *d, const char *file, council_err rc)
{
    const char *name = d->file[0] != '\0' ? d->file : file;
    const char *msg = d->msg[0] != '\0' ? d->msg : council_strerror(rc);

    if (d->line > 0)
        fprintf(f, "%s:%d:%d: %s\n", name, d->line, d->col, msg);
    else
        fprintf(f, "%s: %s\n", name, msg);
}

/* 0 if the file is valid, -1 if not (reported on stderr). */
static int
validate_one(const char *file, int check_env)
{
    council_def *def = NULL;
    council_diag diag;
    council_err rc;
    size_t n;
    int ret = -1;

    rc = council_def_load_file(file, &def, &diag);
    if (rc != COUNCIL_OK) {
        print_diag(stderr, &diag, file, rc);
        goto out;
    }
    if (check_env) {
        rc = council_def_check_env(def, &diag);
        if (rc != COUNCIL_OK) {
            print_diag(stderr, &diag, file, rc);
            goto out;
        }
    }
    n = council_def_member_count(def);
    printf("%s: ok (council %s, strategy %s, %zu member%s)\n", file,
           council_def_name(def), council_def_strategy(def), n,
           n == 1 ? "" : "s");
    ret = 0;
out:
    council_def_free(def);
    return ret;
}

int
council_cmd_validate(int argc, char **argv)
{
    int i, check_env = 1, files = 0, bad = 0, opts_done = 0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (opts_done || a[0] != '-' || a[1] == '\0') {
            files++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(validate_usage, stdout);
            return 0;
        } else if (strcmp(a, "--no-env") == 0) {
            check_env = 0;
        } else {
            cli_error("validate: unknown option %s (see council validate "
                      "--help)",
                      a);
            return EXIT_USAGE;
        }
    }
    if (files == 0) {
        fputs(validate_usage, stderr);
        return EXIT_USAGE;
    }
    opts_done = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && a[0] == '-' && a[1] != '\0')
            continue;
        if (validate_one(a, check_env) != 0)
            bad++;
    }
    fflush(stdout);
    return bad > 0 ? EXIT_USAGE : 0;
}
