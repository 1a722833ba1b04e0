/* SPDX-License-Identifier: MIT */
/*
 * Method: posix_spawn with file actions for the three standard streams;
 * a file size limit is set in the parent around the spawn (it is
 * inherited) and restored at once; the child is polled with WNOHANG every
 * millisecond and killed after 60 s.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "runner.h"

extern char **environ;

char *
cli_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
        FAIL("short read of %s", path);
    fclose(f);
    return buf;
}

/* stdout_to: where the child's stdout goes, NULL for the case's file. */
static cli_result
spawn_cli(int sigint_after_ms, unsigned long fsize, const char *stdout_to,
          const char *const *args)
{
    const char *bin = getenv("COUNCIL_BIN");
    char out_path[600], err_path[600];
    posix_spawn_file_actions_t fa;
    char *argv[64];
    cli_result r = {0};
    pid_t pid;
    int status, n = 0, waited = 0;

    ASSERT_NOT_NULL(bin);
    snprintf(out_path, sizeof(out_path), "%s/stdout", runner_tmpdir());
    snprintf(err_path, sizeof(err_path), "%s/stderr", runner_tmpdir());
    argv[n++] = (char *)bin;
    while (args[n - 1] != NULL && n < 63) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (stdout_to != NULL)
        posix_spawn_file_actions_addopen(&fa, 1, stdout_to, O_WRONLY, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fsize > 0) {
        struct rlimit old, lim = {(rlim_t)fsize, (rlim_t)fsize};
        getrlimit(RLIMIT_FSIZE, &old);
        setrlimit(RLIMIT_FSIZE, &lim);
        ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
        setrlimit(RLIMIT_FSIZE, &old);
    } else {
        ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    }
    posix_spawn_file_actions_destroy(&fa);
    if (sigint_after_ms > 0) {
        usleep((useconds_t)sigint_after_ms * 1000);
        kill(pid, SIGINT);
    }
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (waited++ > 60000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            FAIL("council did not finish in 60 s");
        }
        usleep(1000);
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = stdout_to != NULL ? strdup("") : cli_slurp(out_path);
    r.err = cli_slurp(err_path);
    return r;
}

cli_result
cli_run_ex(int sigint_after_ms, unsigned long fsize, const char *const *args)
{
    return spawn_cli(sigint_after_ms, fsize, NULL, args);
}

cli_result
cli_run_to(const char *stdout_path, const char *const *args)
{
    return spawn_cli(0, 0, stdout_path, args);
}

cli_result
cli_run(const char *const *args)
{
    return cli_run_ex(0, 0, args);
}

void
cli_result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
}

int
cli_spawn(const char *name, int out_fd, const char *const *args)
{
    const char *bin = getenv("COUNCIL_BIN");
    char out_path[600], err_path[600];
    posix_spawn_file_actions_t fa;
    char *argv[64];
    pid_t pid;
    int n = 0;

    ASSERT_NOT_NULL(bin);
    snprintf(out_path, sizeof(out_path), "%s/%s.out", runner_tmpdir(), name);
    snprintf(err_path, sizeof(err_path), "%s/%s.err", runner_tmpdir(), name);
    argv[n++] = (char *)bin;
    while (args[n - 1] != NULL && n < 63) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return (int)pid;
}

cli_result
cli_collect(const char *name, int pid)
{
    char out_path[600], err_path[600];
    cli_result r = {0};
    int status, waited = 0;

    snprintf(out_path, sizeof(out_path), "%s/%s.out", runner_tmpdir(), name);
    snprintf(err_path, sizeof(err_path), "%s/%s.err", runner_tmpdir(), name);
    for (;;) {
        pid_t w = waitpid((pid_t)pid, &status, WNOHANG);
        if (w == (pid_t)pid)
            break;
        if (waited++ > 60000) {
            kill((pid_t)pid, SIGKILL);
            waitpid((pid_t)pid, &status, 0);
            FAIL("council did not finish in 60 s");
        }
        usleep(1000);
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = cli_slurp(out_path);
    r.err = cli_slurp(err_path);
    return r;
}

char *
cli_stderr_of(const char *name)
{
    char err_path[600];

    snprintf(err_path, sizeof(err_path), "%s/%s.err", runner_tmpdir(), name);
    return cli_slurp(err_path);
}
