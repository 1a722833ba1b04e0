/* SPDX-License-Identifier: MIT */
/*
 * council validate, run as a user runs it: the real binary ($COUNCIL_BIN)
 * on council files written to the case's temporary directory and on every
 * file in examples/.  Checks the ok line, the FILE:LINE:COL diagnostics of
 * schema and syntax errors and of an unset api_key_env variable, --no-env,
 * several files at once, usage errors and exit codes.  Also checks
 * council_def_check_env directly.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "council.h"
#include "runner.h"

extern char **environ;

typedef struct result {
    int code;  /* exit status, or 128 + signal */
    char *out; /* stdout */
    char *err; /* stderr */
} result;

static char *
slurp(const char *path)
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

/* Run the council binary with args (NULL-terminated), at most 60 s. */
static result
run_cli(const char *const *args)
{
    const char *bin = getenv("COUNCIL_BIN");
    char out_path[600], err_path[600];
    posix_spawn_file_actions_t fa;
    char *argv[64];
    result r = {0};
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
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ_INT(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
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
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void
free_result(result *r)
{
    free(r->out);
    free(r->err);
}

/* Write text to name in the case's directory; the path into buf. */
static const char *
write_file(const char *name, const char *text, char *buf, size_t size)
{
    FILE *f;

    snprintf(buf, size, "%s/%s", runner_tmpdir(), name);
    f = fopen(buf, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fwrite(text, 1, strlen(text), f), strlen(text));
    ASSERT_EQ_INT(fclose(f), 0);
    return buf;
}

static const char *
source_path(const char *rel, char *buf, size_t size)
{
    const char *dir = getenv("COUNCIL_SOURCE_DIR");

    if (dir != NULL) {
        snprintf(buf, size, "%s/%s", dir, rel);
    } else {
        /* Run by hand: tests/integration/test_validate.c -> the root. */
        const char *f = __FILE__;
        const char *s = strstr(f, "tests/integration/");

        snprintf(buf, size, "%.*s%s", s ? (int)(s - f) : 0, f, rel);
    }
    return buf;
}

/* api_key_env's value starts at line 5, column 18. */
static const char keyed_yaml[] =
    "name: keyed\n"
    "providers:\n"
    "  p:\n"
    "    kind: openai\n"
    "    api_key_env: COUNCIL_TEST_KEY_VAR\n"
    "    base_url: http://127.0.0.1:9/v1\n"
    "  local: { kind: openai, base_url: http://127.0.0.1:9/v1 }\n"
    "members:\n"
    "  - { name: a, provider: p, model: m }\n"
    "  - { name: b, provider: local, model: m }\n"
    "chairman: { provider: local, model: m }\n";

TEST_T(ok_line, 60)
{
    char path[700], want[2048];
    result r;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    write_file("ok.yaml",
               "name: small\n"
               "strategy: rank\n"
               "providers: { mock: { kind: openai, base_url: "
               "http://127.0.0.1:9/v1 } }\n"
               "members:\n"
               "  - { name: a, provider: mock, model: m }\n"
               "  - { name: b, provider: mock, model: m }\n"
               "  - { name: c, provider: mock, model: m }\n"
               "chairman: { provider: mock, model: m }\n",
               path, sizeof(path));
    r = run_cli((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    snprintf(want, sizeof(want),
             "%s: ok (council small, strategy rank, 3 members)\n", path);
    ASSERT_STR_EQ(r.out, want);
    ASSERT_STR_EQ(r.err, "");
    free_result(&r);
}

TEST_T(schema_and_syntax_errors, 60)
{
    char bad[700], syn[700], want[2048];
    result r;

    /* "modle" is misspelt at line 4, column 32. */
    write_file("bad.yaml",
               "name: bad\n"
               "providers: { mock: { kind: openai, base_url: "
               "http://127.0.0.1:9/v1 } }\n"
               "members:\n"
               "  - { name: a, provider: mock, modle: m }\n"
               "chairman: { provider: mock, model: m }\n",
               bad, sizeof(bad));
    write_file("syntax.yaml", "name: [unclosed\n", syn, sizeof(syn));
    r = run_cli((const char *[]){"validate", "--no-env", bad, syn, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_EQ(r.out, "");
    snprintf(want, sizeof(want),
             "%s:4:32: unknown key \"modle\" in members[0] (did you mean "
             "\"model\"?)\n",
             bad);
    if (strncmp(r.err, want, strlen(want)) != 0)
        FAIL("stderr starts with \"%s\": it is \"%s\"", want, r.err);
    /* The second file is checked too, and named with a position. */
    snprintf(want, sizeof(want), "%s:", syn);
    ASSERT_STR_CONTAINS(r.err + strlen(bad), want);
    ASSERT_STR_CONTAINS(r.err, "syntax error");
    free_result(&r);
}

TEST_T(missing_file, 60)
{
    char path[700], want[2048];
    result r;

    snprintf(path, sizeof(path), "%s/nope.yaml", runner_tmpdir());
    r = run_cli((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    snprintf(want, sizeof(want), "%s: cannot open %s: no such file\n", path,
             path);
    ASSERT_STR_EQ(r.err, want);
    free_result(&r);
}

TEST_T(env_unset_reported_at_key, 60)
{
    char path[700], want[2048];
    result r;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    write_file("keyed.yaml", keyed_yaml, path, sizeof(path));
    r = run_cli((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_EQ(r.out, "");
    snprintf(want, sizeof(want),
             "%s:5:18: providers.p.api_key_env: environment variable "
             "COUNCIL_TEST_KEY_VAR is not set\n",
             path);
    ASSERT_STR_EQ(r.err, want);
    free_result(&r);

    /* --no-env skips the check. */
    r = run_cli((const char *[]){"validate", "--no-env", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, ": ok (council keyed, strategy rank, 2 "
                               "members)");
    free_result(&r);

    /* Set but empty is not a key either. */
    setenv("COUNCIL_TEST_KEY_VAR", "", 1);
    r = run_cli((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, ":5:18: providers.p.api_key_env: "
                               "environment variable COUNCIL_TEST_KEY_VAR "
                               "is empty");
    free_result(&r);

    /* Set: valid. */
    setenv("COUNCIL_TEST_KEY_VAR", "sk-test", 1);
    r = run_cli((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, ": ok (council keyed");
    ASSERT_STR_EQ(r.err, "");
    free_result(&r);
}

TEST_T(mixed_files_exit_2, 60)
{
    char good[700], keyed[700];
    result r;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    write_file("good.yaml",
               "name: good\n"
               "providers: { m: { kind: openai, base_url: "
               "http://127.0.0.1:9/v1 } }\n"
               "members: [ { name: a, provider: m, model: x } ]\n"
               "chairman: { provider: m, model: x }\n",
               good, sizeof(good));
    write_file("keyed.yaml", keyed_yaml, keyed, sizeof(keyed));
    r = run_cli((const char *[]){"validate", keyed, good, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.out, "good.yaml: ok (council good, strategy "
                               "rank, 1 member)\n");
    ASSERT_STR_CONTAINS(r.err, "keyed.yaml:5:18: ");
    free_result(&r);
}

TEST_T(usage, 60)
{
    result r;

    r = run_cli((const char *[]){"validate", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "usage: council validate");
    free_result(&r);
    r = run_cli((const char *[]){"validate", "--bogus", "x.yaml", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "unknown option --bogus");
    free_result(&r);
    r = run_cli((const char *[]){"validate", "--help", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "--no-env");
    free_result(&r);
    r = run_cli((const char *[]){"--help", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "validate FILE...");
    free_result(&r);
}

TEST(check_env_api)
{
    council_def *def = NULL;
    council_diag d;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    ASSERT_OK(council_def_load_string(keyed_yaml, strlen(keyed_yaml),
                                      "keyed.yaml", &def, &d));
    ASSERT_STR_EQ(council_def_strategy(def), "rank");
    ASSERT_EQ_INT(council_def_check_env(def, &d), COUNCIL_EINVAL);
    ASSERT_STR_EQ(d.file, "keyed.yaml");
    ASSERT_EQ_INT(d.line, 5);
    ASSERT_EQ_INT(d.col, 18);
    ASSERT_STR_EQ(d.msg, "providers.p.api_key_env: environment variable "
                         "COUNCIL_TEST_KEY_VAR is not set");
    ASSERT_EQ_INT(council_def_check_env(def, NULL), COUNCIL_EINVAL);
    setenv("COUNCIL_TEST_KEY_VAR", "k", 1);
    ASSERT_OK(council_def_check_env(def, &d));
    council_def_free(def);
    ASSERT_EQ_INT(council_def_check_env(NULL, &d), COUNCIL_EINVAL);
    ASSERT_NULL(council_def_strategy(NULL));
}

/* Every .yaml file in examples/ validates with --no-env, in one call. */
TEST_T(examples_validate, 60)
{
    char dir[PATH_MAX];
    char *paths[40];
    const char *args[44];
    struct dirent *e;
    int n = 0, a = 0, i;
    DIR *dp;
    result r;

    dp = opendir(source_path("examples", dir, sizeof(dir)));
    if (dp == NULL)
        FAIL("cannot open %s", dir);
    while ((e = readdir(dp)) != NULL && n < 40) {
        size_t len = strlen(e->d_name);

        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        paths[n] = malloc(PATH_MAX * 2);
        snprintf(paths[n], PATH_MAX * 2, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(dp);
    ASSERT(n >= 2);
    args[a++] = "validate";
    args[a++] = "--no-env";
    for (i = 0; i < n; i++)
        args[a++] = paths[i];
    args[a] = NULL;
    r = run_cli(args);
    if (r.code != 0)
        FAIL("council validate --no-env examples/*.yaml: exit %d\n%s", r.code,
             r.err);
    for (i = 0; i < n; i++) {
        char want[PATH_MAX * 2 + 8];

        snprintf(want, sizeof(want), "%s: ok (council ", paths[i]);
        ASSERT_STR_CONTAINS(r.out, want);
        free(paths[i]);
    }
    ASSERT_STR_EQ(r.err, "");
    free_result(&r);
}
