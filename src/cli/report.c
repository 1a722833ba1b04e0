/* SPDX-License-Identifier: MIT */
/*
 * A recorded run as a person reads it: `council runs show` (text, member
 * answers trimmed) and `council runs export --format md` (a Markdown
 * report, everything in full).  Both come from the run's record (question,
 * times, outcome, usage, errors) and its events, walked once: each
 * member's answer and timings, failures, reviews or votes, the aggregate,
 * debate rounds, and the synthesis.  Events are the source, so a run that
 * failed or crashed shows what it got before.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define MAX_MEMBERS 32
#define MAX_ROUNDS 64
#define TRIM 400 /* bytes of each answer in the text view */

typedef struct usage {
    json_int_t prompt, completion, total;
    double cost;
    int known, unknown, has_cost;
} usage;

typedef struct member {
    const char *name, *model, *provider;
    json_t *answer; /* the last member_completed (borrowed) */
    json_t *failed; /* the last member_failed */
    json_t *review; /* review_completed (rank or vote) */
    usage use;      /* over all its calls */
} member;

typedef struct report {
    json_t *rec;
    json_t **evs; /* parsed events (owned) */
    size_t n;
    member m[MAX_MEMBERS];
    int n_members;
    json_t *rounds[MAX_ROUNDS]; /* debate stage_completed, by round */
    int n_rounds;
    json_t *aggregated; /* rankings_aggregated */
    json_t *synthesis;  /* synthesis_completed */
    int chair_tries;    /* synthesis_started events */
    usage chair;
    FILE *f;
    int md;
} report;

static const char *
str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static member *
find_member(report *r, const char *name)
{
    int i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < r->n_members; i++)
        if (strcmp(r->m[i].name, name) == 0)
            return &r->m[i];
    if (r->n_members == MAX_MEMBERS)
        return NULL;
    r->m[r->n_members].name = name;
    return &r->m[r->n_members++];
}

static void
add_usage(usage *u, json_t *ev)
{
    json_t *j = json_object_get(ev, "usage");

    if (!json_is_object(j)) {
        if (json_object_get(ev, "usage") != NULL)
            u->unknown++;
        return;
    }
    u->known++;
    u->prompt += json_integer_value(json_object_get(j, "prompt_tokens"));
    u->completion +=
        json_integer_value(json_object_get(j, "completion_tokens"));
    u->total += json_integer_value(json_object_get(j, "total_tokens"));
    if (json_is_number(json_object_get(j, "cost"))) {
        u->has_cost = 1;
        u->cost += json_number_value(json_object_get(j, "cost"));
    }
}

static void
walk(report *r)
{
    json_t *members = json_object_get(r->rec, "members"), *v;
    size_t i;

    json_array_foreach (members, i, v) {
        member *m = find_member(r, str(v, "name"));

        if (m != NULL) {
            m->model = str(v, "model");
            m->provider = str(v, "provider");
        }
    }
    for (i = 0; i < r->n; i++) {
        json_t *e = r->evs[i];
        const char *type = str(e, "type");
        member *m = find_member(r, str(e, "member"));

        if (type == NULL)
            continue;
        if (strcmp(type, "member_completed") == 0 && m != NULL) {
            m->answer = e;
            add_usage(&m->use, e);
        } else if (strcmp(type, "member_failed") == 0 && m != NULL) {
            m->failed = e;
        } else if (strcmp(type, "review_completed") == 0 && m != NULL) {
            m->review = e;
            add_usage(&m->use, e);
        } else if (strcmp(type, "rankings_aggregated") == 0) {
            r->aggregated = e;
        } else if (strcmp(type, "synthesis_started") == 0) {
            r->chair_tries++;
        } else if (strcmp(type, "synthesis_completed") == 0) {
            r->synthesis = e;
            add_usage(&r->chair, e);
        } else if (strcmp(type, "stage_completed") == 0 &&
                   str(e, "stage") != NULL &&
                   strcmp(str(e, "stage"), "debate") == 0 &&
                   r->n_rounds < MAX_ROUNDS) {
            r->rounds[r->n_rounds++] = e;
        }
    }
}

/* ---- small printers -------------------------------------------------------
 */

static void
local_time(json_t *us, char *out, size_t size)
{
    time_t secs;
    struct tm tm;

    if (!json_is_integer(us)) {
        snprintf(out, size, "-");
        return;
    }
    secs = (time_t)(json_integer_value(us) / 1000000);
    if (localtime_r(&secs, &tm) == NULL ||
        strftime(out, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        snprintf(out, size, "-");
}

/* A cell of a Markdown table: no line breaks, no bare pipes. */
static void
md_cell(FILE *f, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

/* text with each line indented and wrapped at WIDTH columns (at spaces;
 * a longer word stays whole); at most max bytes (0 = all), cut at a
 * character boundary, saying how much was left out. */
#define WIDTH 78

static void
indented(FILE *f, const char *text, size_t len, const char *pad, size_t max)
{
    size_t n = len, i = 0, col = 0, padw = strlen(pad);

    if (max > 0 && len > max) {
        size_t sp = max;

        /* At the end of a word if one ends near, else between characters
         * (not inside a UTF-8 sequence). */
        while (sp > max - 40 && text[sp] != ' ' && text[sp] != '\n')
            sp--;
        n = sp > max - 40 ? sp : max;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    while (i < n) {
        size_t w = 0;

        if (text[i] == '\n') {
            fputc('\n', f);
            col = 0;
            i++;
            continue;
        }
        if (text[i] == ' ' && col > 0) {
            /* The next word: does it fit on this line? */
            while (i + 1 + w < n && text[i + 1 + w] != ' ' &&
                   text[i + 1 + w] != '\n')
                w++;
            if (col + 1 + w > WIDTH) {
                fputc('\n', f);
                col = 0;
                i++;
                continue;
            }
        }
        if (col == 0) {
            fputs(pad, f);
            col = padw;
        }
        fputc(text[i], f);
        /* Columns count characters, not UTF-8 continuation bytes. */
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            col++;
        i++;
    }
    if (n < len)
        fprintf(f, "%s%s[... %zu more bytes; show --json or export for all]",
                col == 0 ? "" : "\n", pad, len - n);
    fputc('\n', f);
}

static void
usage_text(FILE *f, const usage *u)
{
    if (u->known == 0) {
        fputs(u->unknown > 0 ? "usage unknown" : "", f);
        return;
    }
    fprintf(f, "%lld tokens", (long long)u->total);
    if (u->known + u->unknown > 1)
        fprintf(f, " in %d calls", u->known + u->unknown);
    if (u->has_cost)
        fprintf(f, ", $%.4f", u->cost);
    if (u->unknown > 0)
        fputs(" (some calls reported no usage)", f);
}

static void
ranking_text(FILE *f, json_t *ranking)
{
    json_t *v;
    size_t i;

    if (!json_is_array(ranking)) {
        fputs("(unparsed)", f);
        return;
    }
    json_array_foreach (ranking, i, v)
        fprintf(f, "%s%s", i > 0 ? " > " : "", json_string_value(v));
}

static void
error_line(FILE *f, json_t *err)
{
    fprintf(f, "%s: %s", str(err, "kind") ? str(err, "kind") : "error",
            str(err, "message") ? str(err, "message") : "(no message)");
}

/* ---- the text view (runs show) ------------------------------------------- */

static void
text_header(report *r)
{
    FILE *f = r->f;
    json_t *rec = r->rec, *msgs = json_object_get(rec, "messages");
    const char *outcome = str(rec, "outcome");
    char when[64];

    local_time(json_object_get(rec, "started_us"), when, sizeof(when));
    fprintf(f, "run       %s\n", str(rec, "run_id"));
    fprintf(f, "council   %s (strategy %s, %d member%s", str(rec, "council"),
            str(rec, "strategy") ? str(rec, "strategy") : "?", r->n_members,
            r->n_members == 1 ? "" : "s");
    if (json_is_integer(json_object_get(rec, "seed")))
        fprintf(f, ", seed %lld",
                (long long)json_integer_value(json_object_get(rec, "seed")));
    fputs(")\n", f);
    fprintf(f, "started   %s", when);
    if (json_is_integer(json_object_get(rec, "duration_ms")))
        fprintf(
            f, ", took %.2f s",
            (double)json_integer_value(json_object_get(rec, "duration_ms")) /
                1000.0);
    fputc('\n', f);
    fprintf(f, "outcome   %s", outcome ? outcome : "?");
    if (str(rec, "reason") != NULL)
        fprintf(f, ": %s", str(rec, "reason"));
    else if (outcome != NULL && strcmp(outcome, "running") == 0 &&
             json_is_object(json_object_get(rec, "owner")))
        fprintf(f, " (in flight: pid %lld on %s)",
                (long long)json_integer_value(
                    json_object_get(json_object_get(rec, "owner"), "pid")),
                str(json_object_get(rec, "owner"), "host")
                    ? str(json_object_get(rec, "owner"), "host")
                    : "?");
    else if (outcome != NULL && strcmp(outcome, "running") == 0)
        fputs(" (no outcome recorded: in flight, or its process ended "
              "first)",
              f);
    fputc('\n', f);
    fprintf(f, "events    %lld",
            (long long)json_integer_value(json_object_get(rec, "events")));
    if (json_is_true(json_object_get(rec, "incomplete")))
        fprintf(f,
                " of the %lld the run emitted (the record is incomplete: "
                "its recorder could not store the rest)",
                (long long)json_integer_value(
                    json_object_get(rec, "events_emitted")));
    fputc('\n', f);
    fputs("\nquestion\n", f);
    if (str(rec, "question") != NULL)
        indented(f, str(rec, "question"), strlen(str(rec, "question")), "  ",
                 0);
    if (json_array_size(msgs) > 1)
        fprintf(f, "  (a follow-up: %zu earlier messages)\n",
                json_array_size(msgs) - 1);
}

static void
text_answers(report *r)
{
    FILE *f = r->f;
    int i;

    fputs("\nanswers\n", f);
    for (i = 0; i < r->n_members; i++) {
        member *m = &r->m[i];
        json_t *a = m->answer;

        fprintf(f, "  %-10s %-14s ", m->name,
                m->model                       ? m->model
                : a != NULL && str(a, "model") ? str(a, "model")
                                               : "");
        if (a == NULL && m->failed != NULL) {
            fputs("FAILED ", f);
            error_line(f, json_object_get(m->failed, "error"));
            fputc('\n', f);
            continue;
        }
        if (a == NULL) {
            fputs("(no answer)\n", f);
            continue;
        }
        usage_text(f, &m->use);
        fprintf(
            f, ", %.2f s (first byte %lld ms)",
            (double)json_integer_value(json_object_get(a, "latency_ms")) /
                1000.0,
            (long long)json_integer_value(json_object_get(a, "first_byte_ms")));
        if (json_integer_value(json_object_get(a, "round")) > 1)
            fprintf(f, ", round %lld",
                    (long long)json_integer_value(json_object_get(a, "round")));
        fputc('\n', f);
        if (str(a, "text") != NULL)
            indented(f, str(a, "text"),
                     json_string_length(json_object_get(a, "text")), "      ",
                     TRIM);
        if (m->failed != NULL) {
            fputs("      later failed: ", f);
            error_line(f, json_object_get(m->failed, "error"));
            fputc('\n', f);
        }
    }
}

static void
text_reviews(report *r)
{
    FILE *f = r->f;
    json_t *agg = r->aggregated, *v;
    int i, any = 0;
    size_t k;

    for (i = 0; i < r->n_members; i++) {
        json_t *rv = r->m[i].review;

        if (rv == NULL)
            continue;
        if (!any++)
            fputs(json_object_get(rv, "vote") != NULL ? "\nvotes\n"
                                                      : "\nreviews\n",
                  f);
        fprintf(f, "  %-10s ", r->m[i].name);
        if (json_object_get(rv, "vote") != NULL)
            fputs(json_is_string(json_object_get(rv, "vote")) ? str(rv, "vote")
                                                              : "(unparsed)",
                  f);
        else
            ranking_text(f, json_object_get(rv, "ranking"));
        fprintf(f, "  (%s)\n", str(rv, "parse") ? str(rv, "parse") : "?");
    }
    if (agg == NULL)
        return;
    if (json_is_array(json_object_get(agg, "aggregate"))) {
        fputs("\naggregate (Borda count)\n", f);
        fprintf(f, "  %-3s %-12s %6s %10s %6s\n", "#", "member", "borda",
                "mean rank", "votes");
        json_array_foreach (json_object_get(agg, "aggregate"), k, v)
            fprintf(f, "  %-3zu %-12s %6.1f %10.2f %6lld\n", k + 1,
                    str(v, "member"),
                    json_number_value(json_object_get(v, "borda")),
                    json_number_value(json_object_get(v, "mean_rank")),
                    (long long)json_integer_value(json_object_get(v, "votes")));
    } else if (json_is_object(json_object_get(agg, "votes"))) {
        const char *key;

        fputs("\ntally\n", f);
        json_object_foreach (json_object_get(agg, "votes"), key, v)
            fprintf(f, "  %-12s %lld\n", key, (long long)json_integer_value(v));
        if (str(agg, "winner") != NULL)
            fprintf(f, "  winner: %s\n", str(agg, "winner"));
        else
            fputs("  a tie (the chairman breaks it)\n", f);
    }
}

static void
text_rounds(report *r)
{
    FILE *f = r->f;
    int i;

    if (r->n_rounds == 0)
        return;
    fputs("\ndebate rounds\n", f);
    for (i = 0; i < r->n_rounds; i++) {
        json_t *e = r->rounds[i], *v;
        const char *key;

        fprintf(f, "  round %lld: %lld answered, %lld failed",
                (long long)json_integer_value(json_object_get(e, "round")),
                (long long)json_integer_value(json_object_get(e, "answered")),
                (long long)json_integer_value(json_object_get(e, "failed")));
        if (json_is_object(json_object_get(e, "similarity"))) {
            fputs("; similarity", f);
            json_object_foreach (json_object_get(e, "similarity"), key, v)
                fprintf(f, " %s %.2f", key, json_number_value(v));
        }
        if (json_is_true(json_object_get(e, "converged")))
            fputs("; converged", f);
        fputc('\n', f);
    }
}

static void
text_synthesis(report *r)
{
    FILE *f = r->f;
    json_t *s = r->synthesis;

    if (s == NULL)
        return;
    fprintf(f, "\nsynthesis  %s", str(s, "model") ? str(s, "model") : "");
    if (str(s, "fallback") != NULL)
        fprintf(f, " (fallback: %s's answer)", str(s, "member"));
    else if (r->chair_tries > 1)
        fprintf(f, " (after %d chairman attempts)", r->chair_tries);
    if (r->chair.known > 0) {
        fputs(", ", f);
        usage_text(f, &r->chair);
        fprintf(f, ", %.2f s",
                (double)json_integer_value(json_object_get(s, "latency_ms")) /
                    1000.0);
    }
    fputc('\n', f);
    if (str(s, "text") != NULL)
        indented(f, str(s, "text"),
                 json_string_length(json_object_get(s, "text")), "  ", 0);
}

static void
text_footer(report *r)
{
    FILE *f = r->f;
    json_t *u = json_object_get(json_object_get(r->rec, "result"), "usage");
    json_t *errors = json_object_get(r->rec, "errors"), *v;
    size_t i;

    if (json_is_object(u)) {
        fprintf(
            f, "\nusage     prompt %lld, completion %lld, total %lld tokens",
            (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
            (long long)json_integer_value(
                json_object_get(u, "completion_tokens")),
            (long long)json_integer_value(json_object_get(u, "total_tokens")));
        if (json_is_number(json_object_get(u, "cost")))
            fprintf(f, ", $%.4f",
                    json_number_value(json_object_get(u, "cost")));
        if (json_is_false(json_object_get(u, "complete")))
            fputs(" (incomplete: some calls reported no usage)", f);
        fputc('\n', f);
    }
    if (json_array_size(errors) > 0) {
        fputs("\nerrors\n", f);
        json_array_foreach (errors, i, v) {
            fputs("  ", f);
            error_line(f, v);
            fputc('\n', f);
        }
    }
}

/* ---- the Markdown report (runs export --format md) ----------------------- */

static void
md_usage_row(FILE *f, const char *who, const usage *u)
{
    fputs("| ", f);
    md_cell(f, who);
    if (u->known == 0) {
        fputs(" | unknown | | | |\n", f);
        return;
    }
    fprintf(f, " | %lld | %lld | %lld | ", (long long)u->prompt,
            (long long)u->completion, (long long)u->total);
    if (u->has_cost)
        fprintf(f, "$%.4f", u->cost);
    fputs(" |\n", f);
}

static void
markdown(report *r)
{
    FILE *f = r->f;
    json_t *rec = r->rec, *msgs = json_object_get(rec, "messages"), *v;
    json_t *errors = json_object_get(rec, "errors");
    json_t *u = json_object_get(json_object_get(rec, "result"), "usage");
    size_t k;
    int i;

    fprintf(f, "# Council run `%s`\n\n", str(rec, "run_id"));
    fputs("| | |\n|---|---|\n", f);
    fputs("| Council | ", f);
    md_cell(f, str(rec, "council"));
    fprintf(f, " (strategy %s) |\n",
            str(rec, "strategy") ? str(rec, "strategy") : "?");
    fprintf(f, "| Started | %s |\n",
            str(rec, "started") ? str(rec, "started") : "-");
    if (json_is_integer(json_object_get(rec, "duration_ms")))
        fprintf(
            f, "| Duration | %.2f s |\n",
            (double)json_integer_value(json_object_get(rec, "duration_ms")) /
                1000.0);
    fputs("| Outcome | ", f);
    md_cell(f, str(rec, "outcome"));
    if (str(rec, "reason") != NULL) {
        fputs(": ", f);
        md_cell(f, str(rec, "reason"));
    }
    fputs(" |\n", f);
    fprintf(f, "| Events | %lld",
            (long long)json_integer_value(json_object_get(rec, "events")));
    if (json_is_true(json_object_get(rec, "incomplete")))
        fprintf(f,
                " of the %lld the run emitted (**incomplete record**: its "
                "recorder could not store the rest)",
                (long long)json_integer_value(
                    json_object_get(rec, "events_emitted")));
    fputs(" |\n\n", f);

    fputs("## Question\n\n", f);
    if (json_array_size(msgs) > 1) {
        json_array_foreach (msgs, k, v)
            fprintf(f, "**%s:** %s\n\n", str(v, "role") ? str(v, "role") : "?",
                    str(v, "content") ? str(v, "content") : "");
    } else if (str(rec, "question") != NULL) {
        fprintf(f, "%s\n\n", str(rec, "question"));
    }

    fputs("## Answers\n\n", f);
    for (i = 0; i < r->n_members; i++) {
        member *m = &r->m[i];

        fprintf(f, "### %s", m->name);
        if (m->model != NULL)
            fprintf(f, " (%s)", m->model);
        fputs("\n\n", f);
        if (m->answer != NULL) {
            fprintf(f, "*%.2f s, first byte %lld ms*\n\n",
                    (double)json_integer_value(
                        json_object_get(m->answer, "latency_ms")) /
                        1000.0,
                    (long long)json_integer_value(
                        json_object_get(m->answer, "first_byte_ms")));
            fprintf(f, "%s\n\n",
                    str(m->answer, "text") ? str(m->answer, "text") : "");
        }
        if (m->failed != NULL) {
            fputs("**Failed:** ", f);
            error_line(f, json_object_get(m->failed, "error"));
            fputs("\n\n", f);
        }
        if (m->answer == NULL && m->failed == NULL)
            fputs("*(no answer)*\n\n", f);
    }

    for (i = 0, k = 0; i < r->n_members; i++) {
        json_t *rv = r->m[i].review;
        int vote;

        if (rv == NULL)
            continue;
        vote = json_object_get(rv, "vote") != NULL;
        if (k++ == 0)
            fputs(vote ? "## Votes\n\n| Voter | Vote | Parse |\n|---|---|---|\n"
                       : "## Reviews\n\n| Reviewer | Ranking (best first) | "
                         "Parse |\n|---|---|---|\n",
                  f);
        fputs("| ", f);
        md_cell(f, r->m[i].name);
        fputs(" | ", f);
        if (vote)
            md_cell(f, json_is_string(json_object_get(rv, "vote"))
                           ? str(rv, "vote")
                           : "(unparsed)");
        else
            ranking_text(f, json_object_get(rv, "ranking"));
        fprintf(f, " | %s |\n", str(rv, "parse") ? str(rv, "parse") : "?");
    }
    if (k > 0)
        fputc('\n', f);

    if (r->aggregated != NULL &&
        json_is_array(json_object_get(r->aggregated, "aggregate"))) {
        fputs("## Aggregate\n\n| # | Member | Borda | Mean rank | Votes "
              "|\n|---|---|---|---|---|\n",
              f);
        json_array_foreach (json_object_get(r->aggregated, "aggregate"), k, v) {
            fprintf(f, "| %zu | ", k + 1);
            md_cell(f, str(v, "member"));
            fprintf(f, " | %.1f | %.2f | %lld |\n",
                    json_number_value(json_object_get(v, "borda")),
                    json_number_value(json_object_get(v, "mean_rank")),
                    (long long)json_integer_value(json_object_get(v, "votes")));
        }
        fputc('\n', f);
    } else if (r->aggregated != NULL) {
        const char *key;

        fputs("## Tally\n\n| Member | Votes |\n|---|---|\n", f);
        json_object_foreach (json_object_get(r->aggregated, "votes"), key, v) {
            fputs("| ", f);
            md_cell(f, key);
            fprintf(f, " | %lld |\n", (long long)json_integer_value(v));
        }
        fprintf(f, "\nWinner: %s\n\n",
                str(r->aggregated, "winner") ? str(r->aggregated, "winner")
                                             : "a tie, broken by the chairman");
    }

    if (r->n_rounds > 0) {
        fputs("## Debate rounds\n\n| Round | Answered | Failed | Converged "
              "|\n|---|---|---|---|\n",
              f);
        for (i = 0; i < r->n_rounds; i++)
            fprintf(f, "| %lld | %lld | %lld | %s |\n",
                    (long long)json_integer_value(
                        json_object_get(r->rounds[i], "round")),
                    (long long)json_integer_value(
                        json_object_get(r->rounds[i], "answered")),
                    (long long)json_integer_value(
                        json_object_get(r->rounds[i], "failed")),
                    json_is_true(json_object_get(r->rounds[i], "converged"))
                        ? "yes"
                        : "no");
        fputc('\n', f);
    }

    fputs("## Final answer\n\n", f);
    if (r->synthesis != NULL) {
        if (str(r->synthesis, "fallback") != NULL)
            fprintf(f, "*The chairman failed; this is %s's answer.*\n\n",
                    str(r->synthesis, "member"));
        else
            fprintf(f, "*By the chairman, %s.*\n\n",
                    str(r->synthesis, "model") ? str(r->synthesis, "model")
                                               : "?");
        fprintf(f, "%s\n\n",
                str(r->synthesis, "text") ? str(r->synthesis, "text") : "");
    } else {
        fputs("*(none: the run did not reach a synthesis)*\n\n", f);
    }

    fputs("## Usage\n\n| Who | Prompt | Completion | Total | Cost "
          "|\n|---|---|---|---|---|\n",
          f);
    for (i = 0; i < r->n_members; i++)
        md_usage_row(f, r->m[i].name, &r->m[i].use);
    if (r->synthesis != NULL)
        md_usage_row(f, "chairman", &r->chair);
    if (json_is_object(u)) {
        fprintf(
            f, "| **run** | %lld | %lld | %lld | ",
            (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
            (long long)json_integer_value(
                json_object_get(u, "completion_tokens")),
            (long long)json_integer_value(json_object_get(u, "total_tokens")));
        if (json_is_number(json_object_get(u, "cost")))
            fprintf(f, "$%.4f", json_number_value(json_object_get(u, "cost")));
        fputs(" |\n", f);
        if (json_is_false(json_object_get(u, "complete")))
            fputs("\nSome calls reported no usage: the totals are a lower "
                  "bound.\n",
                  f);
    }
    fputc('\n', f);
    if (json_array_size(errors) > 0) {
        fputs("## Errors\n\n", f);
        json_array_foreach (errors, k, v) {
            fprintf(f, "- `%s`: %s\n", str(v, "kind") ? str(v, "kind") : "?",
                    str(v, "message") ? str(v, "message") : "");
        }
        fputc('\n', f);
    }
}

int
cli_report_run(FILE *f, const char *record_json, council_event **events,
               size_t n_events, int md)
{
    report r;
    size_t i;

    memset(&r, 0, sizeof(r));
    r.f = f;
    r.md = md;
    r.rec = json_loads(record_json, JSON_ALLOW_NUL, NULL);
    r.evs = calloc(n_events + 1, sizeof(*r.evs));
    if (r.rec == NULL || r.evs == NULL) {
        json_decref(r.rec);
        free(r.evs);
        return -1;
    }
    for (i = 0; i < n_events; i++) {
        const char *js = council_event_json(events[i]);

        r.evs[r.n] = js != NULL ? json_loads(js, JSON_ALLOW_NUL, NULL) : NULL;
        if (r.evs[r.n] != NULL)
            r.n++;
    }
    walk(&r);
    if (md) {
        markdown(&r);
    } else {
        text_header(&r);
        text_answers(&r);
        text_rounds(&r);
        text_reviews(&r);
        text_synthesis(&r);
        text_footer(&r);
    }
    for (i = 0; i < r.n; i++)
        json_decref(r.evs[i]);
    free(r.evs);
    json_decref(r.rec);
    return ferror(f) ? -1 : 0;
}
