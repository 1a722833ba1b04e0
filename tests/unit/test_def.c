/* SPDX-License-Identifier: MIT */
/*
 * Council definitions: YAML and JSON load to the same structure, defaults,
 * exact diagnostics (message, line, column) for schema and syntax errors,
 * hostile input (binary, deep nesting, huge files), durations, files, and
 * every example in examples/ loads.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "council.h"
#include "council/def.h"
#include "runner.h"

static const char full_yaml[] =
    "name: default\n"
    "strategy: rank\n"
    "providers:\n"
    "  openai:    { kind: openai, base_url: https://api.openai.com/v1, "
    "api_key_env: OPENAI_API_KEY, max_parallel: 4 }\n"
    "  local:     { kind: openai, base_url: http://127.0.0.1:11434/v1/ }\n"
    "  anthropic: { kind: anthropic, api_key_env: ANTHROPIC_API_KEY }\n"
    "members:\n"
    "  - { name: analyst, provider: openai, model: gpt-4o-mini, system: "
    "\"You are a careful analyst.\" }\n"
    "  - { name: skeptic, provider: anthropic, model: "
    "claude-3-5-haiku-latest }\n"
    "  - { name: local,   provider: local,     model: llama3.1 }\n"
    "chairman: { provider: openai, model: gpt-4o, system: Be brief. }\n"
    "limits: { member_timeout: 45s, deadline: 5m, retries: 3, quorum: 3, "
    "max_tokens: 2048 }\n";

static const char full_json[] =
    "{\n"
    "  \"name\": \"default\",\n"
    "  \"strategy\": \"rank\",\n"
    "  \"providers\": {\n"
    "    \"openai\": {\"kind\": \"openai\", \"base_url\": "
    "\"https://api.openai.com/v1\", \"api_key_env\": \"OPENAI_API_KEY\", "
    "\"max_parallel\": 4},\n"
    "    \"local\": {\"kind\": \"openai\", \"base_url\": "
    "\"http://127.0.0.1:11434/v1\"},\n"
    "    \"anthropic\": {\"kind\": \"anthropic\", \"api_key_env\": "
    "\"ANTHROPIC_API_KEY\"}\n"
    "  },\n"
    "  \"members\": [\n"
    "    {\"name\": \"analyst\", \"provider\": \"openai\", \"model\": "
    "\"gpt-4o-mini\", \"system\": \"You are a careful analyst.\"},\n"
    "    {\"name\": \"skeptic\", \"provider\": \"anthropic\", \"model\": "
    "\"claude-3-5-haiku-latest\"},\n"
    "    {\"name\": \"local\", \"provider\": \"local\", \"model\": "
    "\"llama3.1\"}\n"
    "  ],\n"
    "  \"chairman\": {\"provider\": \"openai\", \"model\": \"gpt-4o\", "
    "\"system\": \"Be brief.\"},\n"
    "  \"limits\": {\"member_timeout\": \"45s\", \"deadline\": 300000, "
    "\"retries\": 3, \"quorum\": 3, \"max_tokens\": 2048}\n"
    "}\n";

static int
str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int
member_eq(const council__member_def *a, const council__member_def *b)
{
    return str_eq(a->name, b->name) && a->provider == b->provider &&
           str_eq(a->model, b->model) && str_eq(a->system, b->system);
}

static int
def_eq(const council_def *a, const council_def *b)
{
    if (!str_eq(a->name, b->name) || a->strategy != b->strategy ||
        a->n_providers != b->n_providers || a->n_members != b->n_members)
        return 0;
    for (size_t i = 0; i < a->n_providers; i++) {
        const council__provider_def *p = &a->providers[i],
                                    *q = &b->providers[i];

        if (!str_eq(p->name, q->name) || p->kind != q->kind ||
            !str_eq(p->base_url, q->base_url) ||
            !str_eq(p->api_key_env, q->api_key_env) ||
            p->max_parallel != q->max_parallel)
            return 0;
    }
    for (size_t i = 0; i < a->n_members; i++)
        if (!member_eq(&a->members[i], &b->members[i]))
            return 0;
    return member_eq(&a->chairman, &b->chairman) &&
           memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0;
}

static council_err
load(const char *text, council_def **def, council_diag *d)
{
    return council_def_load_string(text, strlen(text), "t.yaml", def, d);
}

/* Load text, expect failure rc with exactly this position and message. */
static void
expect_err(const char *text, council_err rc, int line, int col, const char *msg)
{
    council_def *def = (council_def *)&def; /* must come back NULL */
    council_diag d;

    council_err got = load(text, &def, &d);

    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.file, "t.yaml");
    if (got != rc || d.line != line || d.col != col || strcmp(d.msg, msg))
        FAIL("expected %d at %d:%d \"%s\"\n     got %d at %d:%d \"%s\"",
             (int)rc, line, col, msg, (int)got, d.line, d.col, d.msg);
}

TEST(full_example_yaml)
{
    council_def *def = NULL;
    council_diag d;

    ASSERT_OK(load(full_yaml, &def, &d));
    ASSERT_STR_EQ(council_def_name(def), "default");
    ASSERT_EQ_INT(def->strategy, COUNCIL__STRATEGY_RANK);
    ASSERT_EQ_INT(def->n_providers, 3);
    ASSERT_STR_EQ(def->providers[0].name, "openai");
    ASSERT_EQ_INT(def->providers[0].kind, COUNCIL__PROVIDER_OPENAI);
    ASSERT_STR_EQ(def->providers[0].base_url, "https://api.openai.com/v1");
    ASSERT_STR_EQ(def->providers[0].api_key_env, "OPENAI_API_KEY");
    ASSERT_EQ_INT(def->providers[0].max_parallel, 4);
    /* The trailing '/' is removed. */
    ASSERT_STR_EQ(def->providers[1].base_url, "http://127.0.0.1:11434/v1");
    ASSERT_NULL(def->providers[1].api_key_env);
    ASSERT_EQ_INT(def->providers[1].max_parallel, 0);
    /* anthropic's base_url has a default. */
    ASSERT_EQ_INT(def->providers[2].kind, COUNCIL__PROVIDER_ANTHROPIC);
    ASSERT_STR_EQ(def->providers[2].base_url, "https://api.anthropic.com/v1");
    ASSERT_EQ_INT(council_def_member_count(def), 3);
    ASSERT_STR_EQ(council_def_member_name(def, 0), "analyst");
    ASSERT_STR_EQ(council_def_member_name(def, 2), "local");
    ASSERT_NULL(council_def_member_name(def, 3));
    ASSERT_EQ_INT(def->members[1].provider, 2);
    ASSERT_STR_EQ(def->members[1].model, "claude-3-5-haiku-latest");
    ASSERT_STR_EQ(def->members[0].system, "You are a careful analyst.");
    ASSERT_NULL(def->members[2].system);
    ASSERT_STR_EQ(def->chairman.name, "chairman");
    ASSERT_STR_EQ(def->chairman.model, "gpt-4o");
    ASSERT_STR_EQ(def->chairman.system, "Be brief.");
    ASSERT_EQ_U64(def->limits.member_timeout_ms, 45000);
    ASSERT_EQ_U64(def->limits.deadline_ms, 300000);
    ASSERT_EQ_INT(def->limits.retries, 3);
    ASSERT_EQ_INT(def->limits.quorum, 3);
    ASSERT_EQ_INT(def->limits.max_tokens, 2048);
    council_def_free(def);
}

TEST(json_equals_yaml)
{
    council_def *a = NULL, *b = NULL;
    council_diag d;

    ASSERT_OK(load(full_yaml, &a, &d));
    ASSERT_OK(load(full_json, &b, &d));
    ASSERT(def_eq(a, b));
    council_def_free(a);
    council_def_free(b);
}

TEST(defaults)
{
    static const char *const text =
        "name: small\n"
        "providers: { p: { kind: openai, base_url: 'http://127.0.0.1:1' } }\n"
        "members:\n"
        "  - { name: a, provider: p, model: m }\n"
        "  - { name: b, provider: p, model: m }\n"
        "  - { name: c, provider: p, model: m }\n"
        "  - { name: d, provider: p, model: m }\n"
        "chairman: { provider: p, model: m }\n";
    council_def *def = NULL;
    council_diag d;

    ASSERT_OK(load(text, &def, &d));
    ASSERT_EQ_INT(def->strategy, COUNCIL__STRATEGY_RANK);
    ASSERT_EQ_U64(def->limits.member_timeout_ms, 60000);
    ASSERT_EQ_U64(def->limits.deadline_ms, 300000);
    ASSERT_EQ_INT(def->limits.retries, 2);
    ASSERT_EQ_INT(def->limits.quorum, 3); /* 4 / 2 + 1 */
    ASSERT_EQ_INT(def->limits.max_tokens, 1024);
    ASSERT_NULL(def->chairman.system);
    council_def_free(def);
}

#define STRAT_DOC(s)                                                           \
    "name: s\nstrategy: " s "\n"                                               \
    "providers: { p: { kind: openai, base_url: 'http://h' } }\n"               \
    "members: [ { name: a, provider: p, model: m } ]\n"                        \
    "chairman: { provider: p, model: m }\n"

TEST(debate_and_vote_load)
{
    council_def *def = NULL;
    council_diag d;

    ASSERT_OK(load(STRAT_DOC("debate"), &def, &d));
    ASSERT_EQ_INT(def->strategy, COUNCIL__STRATEGY_DEBATE);
    ASSERT_EQ_INT(def->limits.quorum, 1);
    council_def_free(def);
    ASSERT_OK(load(STRAT_DOC("vote"), &def, &d));
    ASSERT_EQ_INT(def->strategy, COUNCIL__STRATEGY_VOTE);
    council_def_free(def);
}

/* A valid council whose line 7 (the second member) is filled in by each
 * case; the other lines stay valid. */
#define HEAD                                                                   \
    "name: t\n"                                                                \
    "providers:\n"                                                             \
    "  openai: { kind: openai, base_url: 'http://h/v1' }\n"                    \
    "  local: { kind: openai, base_url: 'http://l/v1' }\n"                     \
    "members:\n"                                                               \
    "  - { name: a, provider: openai, model: m }\n"
#define TAIL "chairman: { provider: openai, model: m }\n"

TEST(schema_errors_positions)
{
    /* members[1].model is a mapping: points at its '{'. */
    expect_err(HEAD "  - { name: b, provider: openai, model: { x: 1 } }\n" TAIL,
               COUNCIL_EINVAL, 7, 41,
               "members[1].model: expected a string, got a mapping");
    /* A misspelt key, with a suggestion. */
    expect_err(HEAD "  - { name: b, provider: openai, modle: m }\n" TAIL,
               COUNCIL_EINVAL, 7, 34,
               "unknown key \"modle\" in members[1] (did you mean "
               "\"model\"?)");
    /* An unknown provider, at the provider value, listing known ones. */
    expect_err(HEAD "  - { name: b, provider: opnai, model: m }\n" TAIL,
               COUNCIL_EINVAL, 7, 26,
               "members[1].provider: unknown provider \"opnai\" (known: "
               "openai, local)");
    /* Duplicate member names, at the second name. */
    expect_err(HEAD "  - { name: a, provider: local, model: m }\n" TAIL,
               COUNCIL_EINVAL, 7, 13,
               "members[1].name: duplicate member name \"a\" (also "
               "members[0])");
    /* The chairman's name is not a member's, at the name value. */
    expect_err(HEAD "  - { name: chairman, provider: local, model: m }\n" TAIL,
               COUNCIL_EINVAL, 7, 13,
               "members[1].name: \"chairman\" is reserved for the chairman "
               "(events name it so); choose another member name");
    /* A name outside [A-Za-z0-9_.-]. */
    expect_err(HEAD "  - { name: 'b c', provider: local, model: m }\n" TAIL,
               COUNCIL_EINVAL, 7, 13,
               "members[1].name: invalid name \"b c\" (expected 1 to 64 of "
               "A-Z a-z 0-9 _ . -)");
    /* A missing required key, at the member's mapping. */
    expect_err(HEAD "  - { name: b, provider: local }\n" TAIL, COUNCIL_EINVAL,
               7, 5, "members[1]: missing required key \"model\"");
    /* A member that is not a mapping. */
    expect_err(HEAD "  - just a string\n" TAIL, COUNCIL_EINVAL, 7, 5,
               "members[1]: expected a mapping, got a scalar");
}

TEST(top_level_errors)
{
    expect_err("name: t\nstrategy: rnk\n", COUNCIL_EINVAL, 1, 1,
               "the top level: missing required key \"providers\"");
    expect_err(HEAD TAIL "strategy: rnk\n", COUNCIL_EINVAL, 8, 11,
               "strategy: expected one of rank, debate, vote, got \"rnk\"");
    expect_err(HEAD TAIL "nmae: x\n", COUNCIL_EINVAL, 8, 1,
               "unknown key \"nmae\" in the top level (did you mean "
               "\"name\"?)");
    expect_err(HEAD TAIL "colour: blue\n", COUNCIL_EINVAL, 8, 1,
               "unknown key \"colour\" in the top level");
    expect_err(HEAD TAIL "name: again\n", COUNCIL_EINVAL, 8, 1,
               "duplicate key \"name\" in the top level");
    expect_err("- a\n- b\n", COUNCIL_EINVAL, 1, 1,
               "expected a mapping at the top level (name, providers, "
               "members, chairman), got a list");
    expect_err("just text\n", COUNCIL_EINVAL, 1, 1,
               "expected a mapping at the top level (name, providers, "
               "members, chairman), got a scalar");
    expect_err("name: t\nproviders: {}\nmembers: []\nchairman: {}\n",
               COUNCIL_EINVAL, 2, 12,
               "providers: expected at least one provider");
    expect_err("name: t\nproviders: { p: { kind: openai, base_url: "
               "'http://h' } }\nmembers: []\nchairman: {}\n",
               COUNCIL_EINVAL, 3, 10,
               "members: expected 1 to 26 members, got 0");
    expect_err(HEAD "chairman: { provider: openai }\n", COUNCIL_EINVAL, 7, 11,
               "chairman: missing required key \"model\"");
    expect_err(HEAD "chairman: { provider: openai, model: m, name: x }\n",
               COUNCIL_EINVAL, 7, 41, "unknown key \"name\" in chairman");
    expect_err(HEAD TAIL "x: &a 1\ny: *a\n", COUNCIL_EINVAL, 9, 4,
               "aliases (*name) are not supported; write the value out");
}

/* Providers on line 3 (and 4), then valid members and chairman. */
#define P(lines)                                                               \
    "name: t\nproviders:\n" lines                                              \
    "members: [ { name: a, provider: p, model: m } ]\n"                        \
    "chairman: { provider: p, model: m }\n"

TEST(provider_errors)
{
    expect_err(P("  p: { kind: azure }\n"), COUNCIL_EINVAL, 3, 14,
               "providers.p.kind: expected one of openai, anthropic, got "
               "\"azure\"");
    expect_err(P("  p: { kind: openai }\n"), COUNCIL_EINVAL, 3, 6,
               "providers.p: missing required key \"base_url\" (kind "
               "openai has no default)");
    expect_err(P("  p: { base_url: 'http://h' }\n"), COUNCIL_EINVAL, 3, 6,
               "providers.p: missing required key \"kind\"");
    expect_err(P("  p: { kind: openai, base_url: ftp://x }\n"), COUNCIL_EINVAL,
               3, 32,
               "providers.p.base_url: expected a URL starting with http:// "
               "or https://, got \"ftp://x\"");
    expect_err(P("  p: { kind: openai, base_url: 'https:///' }\n"),
               COUNCIL_EINVAL, 3, 32,
               "providers.p.base_url: expected a URL with a host, got "
               "\"https:///\"");
    expect_err(P("  p: { kind: openai, base_url: 'http://h', "
                 "max_parallel: -1 }\n"),
               COUNCIL_EINVAL, 3, 58,
               "providers.p.max_parallel: expected an integer from 0 to "
               "1000000, got -1");
    expect_err(P("  p: { kind: openai, base_url: 'http://h', "
                 "max_parallel: '4' }\n"),
               COUNCIL_EINVAL, 3, 58,
               "providers.p.max_parallel: expected an integer, got the "
               "string \"4\"");
    expect_err(P("  p: { kind: anthropic, bse_url: 'http://h' }\n"),
               COUNCIL_EINVAL, 3, 25,
               "unknown key \"bse_url\" in providers.p (did you mean "
               "\"base_url\"?)");
    expect_err(P("  p: { kind: anthropic }\n  p: { kind: anthropic }\n"),
               COUNCIL_EINVAL, 4, 3, "duplicate key \"p\" in providers");
    expect_err(P("  p q: { kind: anthropic }\n"), COUNCIL_EINVAL, 3, 3,
               "providers: invalid name \"p q\" (expected 1 to 64 of A-Z "
               "a-z 0-9 _ . -)");
    expect_err(P("  p: { kind: anthropic, api_key_env: [x] }\n"),
               COUNCIL_EINVAL, 3, 38,
               "providers.p.api_key_env: expected a string, got a list");
    expect_err(P("  p: [ openai ]\n"), COUNCIL_EINVAL, 3, 6,
               "providers.p: expected a mapping, got a list");
}

TEST(limits_errors)
{
    expect_err(HEAD TAIL "limits: { quorum: 2 }\n", COUNCIL_EINVAL, 8, 19,
               "limits.quorum: expected an integer from 1 to 1, got 2");
    expect_err(HEAD TAIL "limits: { retries: 11 }\n", COUNCIL_EINVAL, 8, 20,
               "limits.retries: expected an integer from 0 to 10, got 11");
    expect_err(HEAD TAIL "limits: { max_tokens: 0 }\n", COUNCIL_EINVAL, 8, 23,
               "limits.max_tokens: expected an integer from 1 to "
               "1000000, got 0");
    expect_err(HEAD TAIL "limits: { max_tokens: 1.5 }\n", COUNCIL_EINVAL, 8, 23,
               "limits.max_tokens: expected an integer, got \"1.5\"");
    expect_err(HEAD TAIL "limits: { retries: 99999999999999999999 }\n",
               COUNCIL_EINVAL, 8, 20,
               "limits.retries: expected an integer from 0 to 10, got "
               "99999999999999999999");
    expect_err(HEAD TAIL "limits: { member_timeout: 5 min }\n", COUNCIL_EINVAL,
               8, 27,
               "limits.member_timeout: expected a duration (e.g. 250ms, 3s, "
               "5m, 1h, or a number of ms), got \"5 min\"");
    expect_err(HEAD TAIL "limits: { deadline: 0s }\n", COUNCIL_EINVAL, 8, 21,
               "limits.deadline: expected a duration greater than 0");
    /* An empty value is placed at its key. */
    expect_err(HEAD TAIL "limits: { deadline: }\n", COUNCIL_EINVAL, 8, 11,
               "limits.deadline: expected a duration (e.g. 250ms, 3s, 5m), "
               "got null");
    expect_err(HEAD TAIL "limits: { dedline: 3s }\n", COUNCIL_EINVAL, 8, 11,
               "unknown key \"dedline\" in limits (did you mean "
               "\"deadline\"?)");
}

/* The strategy keys: rounds, convergence, synthesis_reserve and the
 * chairman's fallback list, with their defaults and errors. */
TEST(strategy_limits_and_fallback)
{
    council_def *def = NULL;
    council_diag d;

    ASSERT_OK(load(HEAD TAIL, &def, &d));
    ASSERT_EQ_INT(def->limits.rounds, 3);
    ASSERT(def->limits.convergence > 0.899 && def->limits.convergence < 0.901);
    ASSERT_EQ_INT(def->limits.synthesis_reserve_pct, 20);
    ASSERT_EQ_U64(def->limits.synthesis_reserve_ms, 0);
    ASSERT_EQ_U64(def->n_chair_fallback, 0);
    council_def_free(def);
    ASSERT_OK(load(HEAD "chairman: { provider: openai, model: m, fallback: "
                        "[ { provider: local, model: f1 }, { provider: "
                        "openai, model: f2, system: S } ] }\n"
                        "limits: { rounds: 1, convergence: 0.75, "
                        "synthesis_reserve: 30s }\n",
                   &def, &d));
    ASSERT_EQ_INT(def->limits.rounds, 1);
    ASSERT(def->limits.convergence == 0.75);
    ASSERT_EQ_INT(def->limits.synthesis_reserve_pct, 0);
    ASSERT_EQ_U64(def->limits.synthesis_reserve_ms, 30000);
    ASSERT_EQ_U64(def->n_chair_fallback, 2);
    ASSERT_STR_EQ(def->chair_fallback[0].model, "f1");
    ASSERT_EQ_U64(def->chair_fallback[0].provider, 1);
    ASSERT_STR_EQ(def->chair_fallback[0].name, "chairman");
    ASSERT_NULL(def->chair_fallback[0].system);
    ASSERT_STR_EQ(def->chair_fallback[1].system, "S");
    council_def_free(def);
    ASSERT_OK(load(HEAD TAIL "limits: { synthesis_reserve: 35%, "
                             "convergence: 1 }\n",
                   &def, &d));
    ASSERT_EQ_INT(def->limits.synthesis_reserve_pct, 35);
    ASSERT(def->limits.convergence == 1.0);
    council_def_free(def);

    expect_err(HEAD TAIL "limits: { rounds: 0 }\n", COUNCIL_EINVAL, 8, 19,
               "limits.rounds: expected an integer from 1 to 10, got 0");
    expect_err(HEAD TAIL "limits: { rounds: 11 }\n", COUNCIL_EINVAL, 8, 19,
               "limits.rounds: expected an integer from 1 to 10, got 11");
    expect_err(HEAD TAIL "limits: { convergence: 1.5 }\n", COUNCIL_EINVAL, 8,
               24,
               "limits.convergence: expected a number from 0 to 1, got "
               "1.5");
    expect_err(HEAD TAIL "limits: { convergence: high }\n", COUNCIL_EINVAL, 8,
               24,
               "limits.convergence: expected a number from 0 to 1, "
               "got \"high\"");
    expect_err(HEAD TAIL "limits: { convergence: [1] }\n", COUNCIL_EINVAL, 8,
               24,
               "limits.convergence: expected a number from 0 to 1, got "
               "a list");
    expect_err(HEAD TAIL "limits: { synthesis_reserve: 95% }\n", COUNCIL_EINVAL,
               8, 30,
               "limits.synthesis_reserve: expected "
               "a share from 0% to 90%, got 95%");
    expect_err(HEAD TAIL "limits: { synthesis_reserve: lots }\n",
               COUNCIL_EINVAL, 8, 30,
               "limits.synthesis_reserve: expected "
               "a share like 20% or a duration (e.g. 30s), got \"lots\"");
    expect_err(HEAD TAIL "limits: { round: 2 }\n", COUNCIL_EINVAL, 8, 11,
               "unknown key \"round\" in limits (did you mean \"rounds\"?)");
    expect_err(HEAD "chairman: { provider: openai, model: m, fallback: x }\n",
               COUNCIL_EINVAL, 7, 51,
               "chairman.fallback: expected a list of "
               "{provider, model}, got a scalar");
    expect_err(HEAD "chairman: { provider: openai, model: m, fallback: "
                    "[ { provider: nope, model: f } ] }\n",
               COUNCIL_EINVAL, 7, 65,
               "chairman.fallback[0].provider: "
               "unknown provider \"nope\" (known: openai, local)");
    expect_err(HEAD "chairman: { provider: openai, model: m, fallback: "
                    "[ { provider: local, modl: f } ] }\n",
               COUNCIL_EINVAL, 7, 72,
               "unknown key \"modl\" in "
               "chairman.fallback[0] (did you mean \"model\"?)");
    expect_err(HEAD "chairman: { provider: openai, model: m, fallbak: [] }\n",
               COUNCIL_EINVAL, 7, 41,
               "unknown key \"fallbak\" in chairman "
               "(did you mean \"fallback\"?)");
}

TEST(many_providers_listed_briefly)
{
    char text[8192];
    size_t n = 0, ml;
    council_def *def = NULL;
    council_diag d;

    n += (size_t)snprintf(text + n, sizeof(text) - n, "name: t\nproviders:\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "  provider_number_%02d: { kind: anthropic }\n",
                              i);
    snprintf(text + n, sizeof(text) - n,
             "members: [ { name: a, provider: nope, model: m } ]\n"
             "chairman: { provider: provider_number_00, model: x }\n");
    ASSERT_EQ_INT(load(text, &def, &d), COUNCIL_EINVAL);
    ASSERT_EQ_INT(d.line, 23);
    ASSERT_STR_CONTAINS(d.msg, "members[0].provider: unknown provider "
                               "\"nope\" (known: provider_number_00, "
                               "provider_number_01, ");
    ml = strlen(d.msg);
    ASSERT(ml > 6 && strcmp(d.msg + ml - 6, ", ...)") == 0);
}

TEST(too_many_members)
{
    char text[8192];
    size_t n = 0;

    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "name: t\nproviders: { p: { kind: anthropic } }\n"
                          "members:\n");
    for (int i = 0; i < 27; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "  - { name: m%d, provider: p, model: x }\n", i);
    snprintf(text + n, sizeof(text) - n,
             "chairman: { provider: p, model: "
             "x }\n");
    expect_err(text, COUNCIL_EINVAL, 4, 3,
               "members: expected 1 to 26 members, got 27");
}

TEST(syntax_errors)
{
    council_def *def = NULL;
    council_diag d;

    /* Unclosed bracket: reported where the input ends. */
    ASSERT_EQ_INT(load("name: x\nmembers: [a, b\n", &def, &d), COUNCIL_EPARSE);
    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.msg,
                  "syntax error: flow sequence without a closing bracket");
    ASSERT_EQ_INT(d.line, 3);
    ASSERT_EQ_INT(d.col, 1);
    /* Bad indentation. */
    ASSERT_EQ_INT(load("name: x\n  bad: y\nfoo: 1\n", &def, &d),
                  COUNCIL_EPARSE);
    ASSERT_STR_CONTAINS(d.msg, "syntax error: ");
    ASSERT_EQ_INT(d.line, 1);
    ASSERT_EQ_INT(d.col, 7);
    /* A tab as indentation. */
    ASSERT_EQ_INT(load("name: x\nmembers:\n\t- a\n", &def, &d), COUNCIL_EPARSE);
    ASSERT_STR_EQ(d.msg, "syntax error: tab character may not be used as "
                         "indentation");
    ASSERT_EQ_INT(d.line, 3);
    ASSERT_EQ_INT(d.col, 1);
    /* Two documents. */
    ASSERT_EQ_INT(load("name: x\n---\nname: y\n", &def, &d), COUNCIL_EPARSE);
    ASSERT_STR_EQ(d.msg, "expected a single document, found another");
    ASSERT_EQ_INT(d.line, 2);
    /* Broken JSON. */
    ASSERT_EQ_INT(load("{\"name\": \"x\",, }", &def, &d), COUNCIL_EPARSE);
    ASSERT_EQ_INT(d.line, 1);
    ASSERT(d.col > 1);
    ASSERT_NULL(def);
}

TEST(empty_and_binary)
{
    council_def *def = NULL;
    council_diag d;

    expect_err("", COUNCIL_EINVAL, 1, 1,
               "empty document: expected a mapping with name, providers, "
               "members, chairman");
    expect_err("# only a comment\n\n", COUNCIL_EINVAL, 1, 1,
               "empty document: expected a mapping with name, providers, "
               "members, chairman");
    ASSERT_EQ_INT(council_def_load_string("\x00\x01\xff\xfe"
                                          "binary\x80",
                                          11, "bin", &def, &d),
                  COUNCIL_EPARSE);
    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.file, "bin");
    ASSERT_STR_EQ(d.msg, "control character 0x00 is not allowed (expected "
                         "YAML or JSON text)");
    ASSERT_EQ_INT(d.line, 1);
    ASSERT_EQ_INT(d.col, 1);
    expect_err("name: ok\nmodel: caf\xc3\xa9 \xff\n", COUNCIL_EPARSE, 2, 13,
               "invalid UTF-8 byte 0xff (expected YAML or JSON text)");
    /* Every byte value, many times over, in a deterministic jumble. */
    {
        char junk[4096];
        uint64_t x = 88172645463325252ULL;

        for (size_t i = 0; i < sizeof(junk); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = (char)(x & 0xFF);
        }
        ASSERT_NE_INT(
            council_def_load_string(junk, sizeof(junk), "junk", &def, &d),
            COUNCIL_OK);
        ASSERT_NULL(def);
        ASSERT(d.line >= 1);
        ASSERT(d.msg[0] != '\0');
    }
}

TEST_T(deep_nesting, 30)
{
    size_t depth = 10000;
    char *text = malloc(2 * depth + 1);
    council_def *def = NULL;
    council_diag d;

    ASSERT_NOT_NULL(text);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    ASSERT_EQ_INT(council_def_load_string(text, 2 * depth, "deep", &def, &d),
                  COUNCIL_EINVAL);
    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.msg, "nested too deeply (more than 64 levels)");
    ASSERT_EQ_INT(d.line, 1);
    ASSERT_EQ_INT(d.col, 65);
    /* Block mappings nest too. */
    {
        size_t n = 0, cap = 200 * 200;
        char *y = malloc(cap);

        ASSERT_NOT_NULL(y);
        for (int i = 0; i < 100; i++) {
            memset(y + n, ' ', (size_t)i);
            n += (size_t)i;
            memcpy(y + n, "k:\n", 3);
            n += 3;
        }
        ASSERT_EQ_INT(council_def_load_string(y, n, "deep", &def, &d),
                      COUNCIL_EINVAL);
        ASSERT_STR_EQ(d.msg, "nested too deeply (more than 64 levels)");
        ASSERT_EQ_INT(d.line, 65);
        ASSERT_EQ_INT(d.col, 65);
        free(y);
    }
    free(text);
}

/* The peak resident set of this process in KB (VmHWM), after resetting
 * it to the current one when the kernel allows (clear_refs 5). */
static long
peak_rss_kb(int reset)
{
    char line[256];
    long kb = -1;
    FILE *f;

    if (reset) {
        f = fopen("/proc/self/clear_refs", "w");
        if (f != NULL) {
            fputs("5", f);
            fclose(f);
        }
    }
    f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double
mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write text to a file in the case's directory, load it; the diag. */
static council_err
load_big(const char *name, const char *text, size_t len, char *path,
         size_t path_size, council_diag *d, long *grew_kb, double *secs)
{
    council_def *def = NULL;
    council_err rc;
    long before;
    double t0;
    FILE *f;

    snprintf(path, path_size, "%s/%s", runner_tmpdir(), name);
    f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fwrite(text, 1, len, f), len);
    ASSERT_EQ_INT(fclose(f), 0);
    before = peak_rss_kb(1);
    t0 = mono_s();
    rc = council_def_load_file(path, &def, d);
    *secs = mono_s() - t0;
    *grew_kb = peak_rss_kb(0) - before;
    ASSERT_NULL(def);
    return rc;
}

/*
 * Issue 13: a 4 MB council file of '[' took 1.45 GB and 2 s before it was
 * refused as nested too deeply (libfyaml's scanner holds a flow
 * collection's tokens until it ends).  Deep and huge flow collections are
 * now refused while the text is scanned, in constant memory: each of these
 * files, at the size limit, is refused naming the file, line and column,
 * with the peak RSS growing by less than 64 MB (the file itself is 4 MB,
 * read into memory once) and within 2 s (times the multiplier; it takes
 * milliseconds).
 */
TEST_T(deep_flow_files_refused_in_bounded_memory, 120)
{
    static const struct {
        const char *unit; /* repeated to fill 4 MB */
        const char *prefix;
        const char *says;
        int line, col;
    } cases[] = {
        {"[", "", "nested too deeply (more than 64 levels)", 1, 65},
        {"[\n", "", "nested too deeply (more than 64 levels)", 65, 1},
        {"{a: ", "", "nested too deeply (more than 64 levels)", 1, 257},
        {"{\"a\":", "", "nested too deeply (more than 64 levels)", 1, 321},
        {"[", "name: x\nmembers: ", "nested too deeply (more than 64 levels)",
         2, 74},
        {"a, ", "[", "too many values in one flow collection", 1, 1},
        {"{}, ", "x: [", "too many values in one flow collection", 1, 4},
    };
    size_t size = 4u * 1024 * 1024, i;
    char *text = malloc(size), path[PATH_MAX];

    ASSERT_NOT_NULL(text);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t ul = strlen(cases[i].unit), pl = strlen(cases[i].prefix), n;
        council_diag d;
        long grew;
        double secs;
        char name[32];

        memcpy(text, cases[i].prefix, pl);
        for (n = pl; n + ul <= size; n += ul)
            memcpy(text + n, cases[i].unit, ul);
        snprintf(name, sizeof(name), "deep%zu.yaml", i);
        ASSERT_EQ_INT(
            load_big(name, text, n, path, sizeof(path), &d, &grew, &secs),
            COUNCIL_EINVAL);
        ASSERT_STR_EQ(d.file, path);
        ASSERT_STR_CONTAINS(d.msg, cases[i].says);
        ASSERT_EQ_INT(d.line, cases[i].line);
        ASSERT_EQ_INT(d.col, cases[i].col);
        if (grew >= 64 * 1024)
            FAIL("case %zu: the peak RSS grew by %ld KB", i, grew);
        if (secs > 2.0 * runner_timeout_multiplier())
            FAIL("case %zu: %.2f s", i, secs);
    }
    free(text);
}

/* What the scan before libfyaml takes for flow collections is only ever
 * one: brackets in quoted, plain and block scalars and in comments are
 * text, however many. */
TEST(brackets_in_scalars_are_text)
{
    char text[8192], many[401];
    council_def *def = NULL;
    council_diag d;
    int n;

    memset(many, '[', 200);
    memset(many + 200, '{', 200);
    many[400] = '\0';
    n = snprintf(text, sizeof(text),
                 "name: g\n"
                 "providers:\n"
                 "  p: { kind: openai, base_url: http://127.0.0.1:1/v1 }\n"
                 "members:\n"
                 "  - name: a\n"
                 "    provider: p\n"
                 "    model: m\n"
                 "    system: |\n"
                 "      %s\n"
                 "\n"
                 "        ? not a key, %s\n"
                 "      done\n"
                 "  - name: b # %s\n"
                 "    provider: p\n"
                 "    model: m\n"
                 "    system: >-\n"
                 "     %s\n"
                 "  - { name: c, provider: p, model: m, system: \"%s\" }\n"
                 "  - {\"name\":\"d\",\"provider\":\"p\",\"model\":\"m\","
                 "\"system\":\"%s\"}\n"
                 "chairman: { provider: p, model: m, system: '%s' }\n",
                 many, many, many, many, many, many, many);
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    if (council_def_load_string(text, (size_t)n, "g.yaml", &def, &d) !=
        COUNCIL_OK)
        FAIL("%d:%d: %s", d.line, d.col, d.msg);
    ASSERT_EQ_INT(council_def_member_count(def), 4);
    ASSERT_EQ_INT(strncmp(def->members[0].system, many, 400), 0);
    ASSERT_STR_CONTAINS(def->members[0].system, "\n  ? not a key");
    ASSERT_STR_EQ(def->members[1].system, many);
    ASSERT_STR_EQ(def->members[2].system, many);
    ASSERT_STR_EQ(def->members[3].system, many);
    council_def_free(def);
    /* A block scalar ends where its indentation does: the '[' after it
     * open flow collections again. */
    n = snprintf(text, sizeof(text), "k: |\n    text\n  %s\n", many);
    ASSERT_EQ_INT(council_def_load_string(text, (size_t)n, "e.yaml", &def, &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_EQ(d.msg, "nested too deeply (more than 64 levels)");
    ASSERT_EQ_INT(d.line, 3);
    ASSERT_EQ_INT(d.col, 67);
}

TEST_T(huge_file, 30)
{
    char path[PATH_MAX];
    size_t size = 5u * 1024 * 1024;
    char *big = malloc(size);
    council_def *def = NULL;
    council_diag d;
    FILE *f;

    ASSERT_NOT_NULL(big);
    memset(big, '#', size);
    snprintf(path, sizeof(path), "%s/big.yaml", runner_tmpdir());
    f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fwrite(big, 1, size, f), size);
    ASSERT_EQ_INT(fclose(f), 0);
    ASSERT_EQ_INT(council_def_load_file(path, &def, &d), COUNCIL_EINVAL);
    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.file, path);
    ASSERT_STR_EQ(d.msg, "file too large (5242880 bytes; the limit is "
                         "4194304)");
    ASSERT_EQ_INT(council_def_load_string(big, size, "big", &def, &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(d.msg, "too large");
    free(big);
}

TEST(too_many_values)
{
    /* Under the size cap but far more values than a council has. */
    size_t n = 150000, len = 2 + 2 * n;
    char *text = malloc(len + 1);
    council_def *def = NULL;
    council_diag d;

    ASSERT_NOT_NULL(text);
    text[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(text + 1 + 2 * i, "1,", 2);
    text[len - 1] = ']';
    text[len] = '\0';
    ASSERT_EQ_INT(council_def_load_string(text, len, "many", &def, &d),
                  COUNCIL_EINVAL);
    ASSERT_STR_CONTAINS(d.msg, "too many values");
    free(text);
}

TEST(files)
{
    char path[PATH_MAX];
    council_def *def = NULL;
    council_diag d;
    FILE *f;

    ASSERT_EQ_INT(council_def_load_file("/nonexistent/council.yaml", &def, &d),
                  COUNCIL_ENOTFOUND);
    ASSERT_NULL(def);
    ASSERT_STR_EQ(d.file, "/nonexistent/council.yaml");
    ASSERT_STR_CONTAINS(d.msg, "/nonexistent/council.yaml");
    ASSERT_EQ_INT(council_def_load_file(runner_tmpdir(), &def, &d),
                  COUNCIL_EIO);
    ASSERT_STR_CONTAINS(d.msg, "directory");

    snprintf(path, sizeof(path), "%s/c.json", runner_tmpdir());
    f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    fputs(full_json, f);
    ASSERT_EQ_INT(fclose(f), 0);
    ASSERT_OK(council_def_load_file(path, &def, &d));
    ASSERT_EQ_INT(council_def_member_count(def), 3);
    council_def_free(def);

    /* The file name in diagnostics is the path, truncated safely. */
    {
        char longname[600];

        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ASSERT_EQ_INT(council_def_load_string("- 1", 3, longname, &def, &d),
                      COUNCIL_EINVAL);
        ASSERT_EQ_INT(strlen(d.file), sizeof(d.file) - 1);
    }
    /* A NULL diag is allowed. */
    ASSERT_EQ_INT(council_def_load_string("- 1", 3, "x", &def, NULL),
                  COUNCIL_EINVAL);
    council_def_free(NULL);
}

TEST(durations)
{
    static const struct {
        const char *s;
        int ok;
        uint64_t ms;
    } t[] = {
        {"250ms", 1, 250},
        {"3s", 1, 3000},
        {"5m", 1, 300000},
        {"1h", 1, 3600000},
        {"1500", 1, 1500},
        {"0", 1, 0},
        {"007s", 1, 7000},
        {"18446744073709551615", 1, UINT64_MAX},
        {"18446744073709551615ms", 1, UINT64_MAX},
        {"", 0, 0},
        {"-1s", 0, 0},
        {"+1s", 0, 0},
        {"s", 0, 0},
        {"ms", 0, 0},
        {"1.5s", 0, 0},
        {"1 s", 0, 0},
        {" 1s", 0, 0},
        {"1s ", 0, 0},
        {"1sec", 0, 0},
        {"1d", 0, 0},
        {"1S", 0, 0},
        {"1mss", 0, 0},
        {"10x", 0, 0},
        {"18446744073709551616", 0, 0},
        {"99999999999999999999999ms", 0, 0},
        {"5124095576030432h", 0, 0}, /* * 3600000 overflows */
        {"307445734561825861m", 0, 0},
    };
    uint64_t ms;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ms = 12345;
        int r = council__parse_duration(t[i].s, strlen(t[i].s), &ms);

        if (t[i].ok) {
            if (r != 0)
                FAIL("\"%s\" rejected", t[i].s);
            ASSERT_EQ_U64(ms, t[i].ms);
        } else if (r != -1) {
            FAIL("\"%s\" accepted as %" PRIu64, t[i].s, ms);
        }
    }
    /* len bounds the read: "3s" inside "3sX". */
    ASSERT_EQ_INT(council__parse_duration("3sX", 2, &ms), 0);
    ASSERT_EQ_U64(ms, 3000);
    ASSERT_EQ_INT(council__parse_duration(NULL, 0, &ms), -1);
}

static uint64_t
rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static char *
source_path(const char *rel, char *buf, size_t size)
{
    const char *dir = getenv("COUNCIL_SOURCE_DIR");

    if (dir != NULL) {
        snprintf(buf, size, "%s/%s", dir, rel);
    } else {
        /* Run by hand: tests/unit/test_def.c -> the source root. */
        const char *f = __FILE__;
        const char *s = strstr(f, "tests/unit/");

        snprintf(buf, size, "%.*s%s", s ? (int)(s - f) : 0, f, rel);
    }
    return buf;
}

TEST(examples_load)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    struct dirent *e;
    int count = 0, demo = 0, seen = 0;
    DIR *dp;

    dp = opendir(source_path("examples", dir, sizeof(dir)));
    if (dp == NULL)
        FAIL("cannot open %s", dir);
    while ((e = readdir(dp)) != NULL) {
        size_t n = strlen(e->d_name);
        council_def *def = NULL;
        council_diag d;

        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (council_def_load_file(path, &def, &d) != COUNCIL_OK)
            FAIL("%s:%d:%d: %s", d.file, d.line, d.col, d.msg);
        if (strcmp(e->d_name, "demo.yaml") == 0) {
            demo = 1;
            ASSERT_EQ_INT(council_def_member_count(def), 4);
            ASSERT_STR_EQ(def->providers[def->members[0].provider].base_url,
                          "http://127.0.0.1:8089/v1");
            ASSERT_NULL(def->providers[0].api_key_env);
            ASSERT_STR_EQ(def->members[3].model, "mock-d");
            ASSERT_STR_EQ(def->chairman.model, "mock-chair");
        }
        if (strcmp(e->d_name, "openrouter.yaml") == 0) {
            seen |= 1;
            ASSERT_STR_EQ(def->providers[0].base_url,
                          "https://openrouter.ai/api/v1");
            ASSERT_STR_EQ(def->providers[0].api_key_env, "OPENROUTER_API_KEY");
            ASSERT_STR_EQ(def->members[0].model, "anthropic/claude-3.5-haiku");
        } else if (strcmp(e->d_name, "ollama.yaml") == 0) {
            seen |= 2;
            ASSERT_STR_EQ(def->providers[0].base_url,
                          "http://127.0.0.1:11434/v1");
            ASSERT_NULL(def->providers[0].api_key_env);
            ASSERT_EQ_INT(def->providers[0].max_parallel, 1);
        } else if (strcmp(e->d_name, "anthropic.yaml") == 0) {
            seen |= 4;
            ASSERT_EQ_INT(def->providers[0].kind, COUNCIL__PROVIDER_ANTHROPIC);
            ASSERT_STR_EQ(def->providers[0].base_url,
                          "https://api.anthropic.com/v1");
        } else if (strcmp(e->d_name, "mixed.yaml") == 0) {
            seen |= 8;
            ASSERT(def->n_providers >= 3);
        }
        council_def_free(def);
        count++;
    }
    closedir(dp);
    ASSERT(count >= 6);
    ASSERT(demo);
    ASSERT_EQ_INT(seen, 15);
}

/* A countdown allocator: the k-th allocation from now fails. */
static long countdown = -1;

static void *
f_malloc(size_t n)
{
    return countdown-- == 0 ? NULL : malloc(n);
}

static void *
f_realloc(void *p, size_t n)
{
    return countdown-- == 0 ? NULL : realloc(p, n);
}

static void *
f_calloc(size_t c, size_t n)
{
    return countdown-- == 0 ? NULL : calloc(c, n);
}

TEST_T(allocation_failures, 60)
{
    council_def *def = NULL;
    council_diag d;
    long total, k;

    ASSERT_OK(council_set_allocator(f_malloc, f_realloc, f_calloc, free));
    countdown = -1; /* counts down from -1: never hits 0 */
    ASSERT_OK(load(full_yaml, &def, &d));
    total = -1 - countdown;
    council_def_free(def);
    ASSERT(total > 20);
    for (k = 0; k < total; k++) {
        council_err rc;

        def = NULL;
        countdown = k;
        rc = load(full_yaml, &def, &d);
        if (rc == COUNCIL_OK) {
            council_def_free(def);
            continue;
        }
        ASSERT_EQ_INT(rc, COUNCIL_ENOMEM);
        ASSERT_NULL(def);
        ASSERT_STR_EQ(d.msg, "out of memory");
    }
    countdown = -1;
}

TEST_T(mutations_never_crash, 120)
{
    uint64_t s = runner_seed();
    size_t n = strlen(full_yaml);
    char *buf = malloc(n);
    int ok = 0, bad = 0;

    ASSERT_NOT_NULL(buf);
    for (int it = 0; it < 3000; it++) {
        council_def *def = NULL;
        council_diag d;
        council_err rc;
        size_t len = n;
        int flips = 1 + (int)(rnd_next(&s) % 4);

        memcpy(buf, full_yaml, n);
        for (int f = 0; f < flips; f++) {
            uint64_t r = rnd_next(&s);
            size_t at = (size_t)(r % len);

            switch ((r >> 32) % 4) {
            case 0: /* a random byte */
                buf[at] = (char)(r >> 40);
                break;
            case 1: /* a structural character */
                buf[at] = "{}[]:,-'\"\n #&*!|>"[(r >> 40) % 18];
                break;
            case 2: /* truncate */
                len = at;
                break;
            default: /* delete one byte */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            }
            if (len == 0)
                break;
        }
        rc = council_def_load_string(buf, len, "m", &def, &d);
        if (rc == COUNCIL_OK) {
            ok++;
            ASSERT(council_def_member_count(def) >= 1);
            council_def_free(def);
            continue;
        }
        bad++;
        ASSERT_NULL(def);
        if (rc != COUNCIL_EPARSE && rc != COUNCIL_EINVAL)
            FAIL("rc %d for \"%.*s\"", (int)rc, (int)len, buf);
        if (d.line < 1 || d.col < 1 || d.msg[0] == '\0')
            FAIL("no position (%d:%d \"%s\") for \"%.*s\"", d.line, d.col,
                 d.msg, (int)len, buf);
    }
    ASSERT(ok > 0 && bad > 0);
    free(buf);
}

/* libfyaml 0.7.12 crashed (SEGV in fy_parser_destroy) on this input,
 * found by fuzz_council_yaml: explicit keys are refused before it parses. */
TEST(explicit_keys_refused_before_libfyaml)
{
    static const char *bad[] = {"? [ae\t\t\t\t\t\t\t\t<\xd4\xa0]:\t: s\n",
                                "? [a]:\t:\n", "x: {? a: b}\n",
                                "name: x\nmembers:\n  - ? a\n"};
    static const int where[][2] = {{1, 1}, {1, 1}, {1, 5}, {3, 5}};
    const char *good =
        "name: g\n"
        "strategy: rank\n"
        "providers:\n"
        "  p: { kind: openai, base_url: http://127.0.0.1:1/v1 }\n"
        "members:\n"
        "  - { name: a, provider: p, model: m, system: \"Why? "
        "[yes, ? no] # not a comment\" }\n"
        "  - { name: b, provider: p, model: m, system: What? "
        "yes }  # a comment with ? \n"
        "chairman: { provider: p, model: m, system: 'it''s? [x, ? y]' }\n";
    council_def *def = NULL;
    council_diag d;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ_INT(
            council_def_load_string(bad[i], strlen(bad[i]), "k.yaml", &def, &d),
            COUNCIL_EPARSE);
        ASSERT_NULL(def);
        ASSERT_STR_CONTAINS(d.msg, "explicit mapping keys");
        ASSERT_EQ_INT(d.line, where[i][0]);
        ASSERT_EQ_INT(d.col, where[i][1]);
    }
    /* '?' in quoted and plain scalars and in comments is just text. */
    ASSERT_OK(council_def_load_string(good, strlen(good), "g.yaml", &def, &d));
    council_def_free(def);
}
