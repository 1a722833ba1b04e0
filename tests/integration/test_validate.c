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
#include "cli_run.h"
#include "runner.h"

extern char **environ;

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
    cli_result r;

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
    r = cli_run((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    snprintf(want, sizeof(want),
             "%s: ok (council small, strategy rank, 3 members)\n", path);
    ASSERT_STR_EQ(r.out, want);
    ASSERT_STR_EQ(r.err, "");
    cli_result_free(&r);
}

TEST_T(schema_and_syntax_errors, 60)
{
    char bad[700], syn[700], want[2048];
    cli_result r;

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
    r = cli_run((const char *[]){"validate", "--no-env", bad, syn, NULL});
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
    cli_result_free(&r);
}

TEST_T(missing_file, 60)
{
    char path[700], want[2048];
    cli_result r;

    snprintf(path, sizeof(path), "%s/nope.yaml", runner_tmpdir());
    r = cli_run((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    snprintf(want, sizeof(want), "%s: cannot open %s: no such file\n", path,
             path);
    ASSERT_STR_EQ(r.err, want);
    cli_result_free(&r);
}

TEST_T(env_unset_reported_at_key, 60)
{
    char path[700], want[2048];
    cli_result r;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    write_file("keyed.yaml", keyed_yaml, path, sizeof(path));
    r = cli_run((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_EQ(r.out, "");
    snprintf(want, sizeof(want),
             "%s:5:18: providers.p.api_key_env: environment variable "
             "COUNCIL_TEST_KEY_VAR is not set\n",
             path);
    ASSERT_STR_EQ(r.err, want);
    cli_result_free(&r);

    /* --no-env skips the check. */
    r = cli_run((const char *[]){"validate", "--no-env", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, ": ok (council keyed, strategy rank, 2 "
                               "members)");
    cli_result_free(&r);

    /* Set but empty is not a key either. */
    setenv("COUNCIL_TEST_KEY_VAR", "", 1);
    r = cli_run((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, ":5:18: providers.p.api_key_env: "
                               "environment variable COUNCIL_TEST_KEY_VAR "
                               "is empty");
    cli_result_free(&r);

    /* Set: valid. */
    setenv("COUNCIL_TEST_KEY_VAR", "sk-test", 1);
    r = cli_run((const char *[]){"validate", path, NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, ": ok (council keyed");
    ASSERT_STR_EQ(r.err, "");
    cli_result_free(&r);
}

TEST_T(mixed_files_exit_2, 60)
{
    char good[700], keyed[700];
    cli_result r;

    unsetenv("COUNCIL_TEST_KEY_VAR");
    write_file("good.yaml",
               "name: good\n"
               "providers: { m: { kind: openai, base_url: "
               "http://127.0.0.1:9/v1 } }\n"
               "members: [ { name: a, provider: m, model: x } ]\n"
               "chairman: { provider: m, model: x }\n",
               good, sizeof(good));
    write_file("keyed.yaml", keyed_yaml, keyed, sizeof(keyed));
    r = cli_run((const char *[]){"validate", keyed, good, NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.out, "good.yaml: ok (council good, strategy "
                               "rank, 1 member)\n");
    ASSERT_STR_CONTAINS(r.err, "keyed.yaml:5:18: ");
    cli_result_free(&r);
}

TEST_T(usage, 60)
{
    cli_result r;

    r = cli_run((const char *[]){"validate", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "usage: council validate");
    cli_result_free(&r);
    r = cli_run((const char *[]){"validate", "--bogus", "x.yaml", NULL});
    ASSERT_EQ_INT(r.code, 2);
    ASSERT_STR_CONTAINS(r.err, "unknown option --bogus");
    cli_result_free(&r);
    r = cli_run((const char *[]){"validate", "--help", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "--no-env");
    cli_result_free(&r);
    r = cli_run((const char *[]){"--help", NULL});
    ASSERT_EQ_INT(r.code, 0);
    ASSERT_STR_CONTAINS(r.out, "validate FILE...");
    cli_result_free(&r);
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
    cli_result r;

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
    r = cli_run(args);
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
    cli_result_free(&r);
}
