/* SPDX-License-Identifier: MIT */
/*
 * council_run_start: choose the strategy's host for a council definition,
 * then start it through the engine's run contract.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/engine.h"
#include "council/def.h"
#include "council/host_common.h"
#include "council/strategy.h"
#include "host/host.h"

/* Each loop's HTTP client is a loop service: created by the first call
 * of a run on that loop, closed when the engine closes. */
static void *
http_open(council__loop *lp)
{
    council__http *http = NULL;

    if (council__http_open(&lp->loop, &http) != COUNCIL_OK)
        return NULL;
    return http;
}

static void
http_shutdown(void *obj)
{
    council__http_close(obj, NULL, NULL);
}

static const council__service_kind http_service = {"http", http_open,
                                                   http_shutdown};

council__http *
council__run_http(council_run *run)
{
    return council__loop_service(council__run_lp(run), &http_service);
}

council_err
council_run_start_messages(council_engine *eng, const council_def *def,
                           const council_message *messages, size_t n,
                           const council_run_opts *opts, council_run **out,
                           council_diag *diag)
{
    council_run_opts o = {COUNCIL_RUN_OPTS_VERSION};
    const council__host_ops *ops = NULL;
    void *state = NULL;
    council_err rc;
    size_t i;
    int loop = -1, isolation;

    if (out != NULL)
        *out = NULL;
    if (eng == NULL || def == NULL || messages == NULL || n == 0)
        return COUNCIL_EINVAL;
    for (i = 0; i < n; i++)
        if (messages[i].role == NULL || messages[i].content == NULL)
            return COUNCIL_EINVAL;
    /* Refused before any recorder sees the run: a text that is not UTF-8
     * can go into no event (run_started would lose its question) nor any
     * request body (every call would fail to start). */
    for (i = 0; i < n; i++) {
        const char *what = "content";
        size_t bad = 0;

        if (council_utf8_check(messages[i].role, strlen(messages[i].role),
                               &bad) != COUNCIL_OK)
            what = "role";
        else if (council_utf8_check(messages[i].content,
                                    strlen(messages[i].content),
                                    &bad) == COUNCIL_OK)
            continue;
        if (diag != NULL) {
            const unsigned char *t =
                (const unsigned char *)(what[0] == 'r' ? messages[i].role
                                                       : messages[i].content);

            memset(diag, 0, sizeof(*diag));
            if (n == 1 && what[0] == 'c')
                snprintf(diag->msg, sizeof(diag->msg),
                         "the question is not valid UTF-8: byte 0x%02x at "
                         "offset %zu",
                         t[bad], bad);
            else
                snprintf(diag->msg, sizeof(diag->msg),
                         "message %zu's %s is not valid UTF-8: byte 0x%02x "
                         "at offset %zu",
                         i + 1, what, t[bad], bad);
        }
        return COUNCIL_EINVAL;
    }
    if (council__run_opts_copy(opts, &o) != COUNCIL_OK)
        return COUNCIL_EINVAL;
    if (o.deadline_ms == 0)
        o.deadline_ms = def->limits.deadline_ms;
    if (o.seed > COUNCIL__SEED_MAX) {
        /* It could not be recorded as itself (JSON integers are signed
         * 64-bit), so the run could not be replayed from its record. */
        if (diag != NULL) {
            memset(diag, 0, sizeof(*diag));
            snprintf(diag->msg, sizeof(diag->msg),
                     "seed %llu is out of range: 1 to 9223372036854775807",
                     (unsigned long long)o.seed);
        }
        return COUNCIL_EINVAL;
    }
    /* A random seed lies in 1..2^63-1 too: the top bit dropped. */
    while (o.seed == 0) {
        if (getrandom(&o.seed, sizeof(o.seed), 0) != sizeof(o.seed))
            o.seed = (uint64_t)council__now_us() * 0x9E3779B97F4A7C15ULL;
        o.seed &= COUNCIL__SEED_MAX;
    }
    isolation =
        o.isolation != COUNCIL_ISOLATION_DEFAULT ? o.isolation : def->isolation;
    if (isolation == COUNCIL_ISOLATION_PROCESS) {
        /* The strategy runs in a child (src/host); its own engine applies
         * max_parallel within the run. */
        rc = council__proc_host_new(def, messages, n, o.seed, &ops, &state);
        if (rc != COUNCIL_OK)
            return rc;
        return council__run_start_host(eng, ops, state, &o, out, diag);
    }
    if (isolation != COUNCIL_ISOLATION_DEFAULT &&
        isolation != COUNCIL_ISOLATION_NONE)
        return COUNCIL_EINVAL;
    switch (def->strategy) {
    case COUNCIL__STRATEGY_RANK:
        rc = council__rank_host_new(def, messages, n, o.seed, &ops, &state,
                                    diag);
        break;
    case COUNCIL__STRATEGY_DEBATE:
        rc = council__debate_host_new(def, messages, n, o.seed, &ops, &state,
                                      diag);
        break;
    case COUNCIL__STRATEGY_VOTE:
        rc = council__vote_host_new(def, messages, n, o.seed, &ops, &state,
                                    diag);
        break;
    default:
        rc = COUNCIL_EINVAL;
        break;
    }
    if (rc != COUNCIL_OK)
        return rc;
    /* max_parallel is kept per endpoint by each loop's HTTP client: the
     * runs of councils that set it all go to loop 0, so the limit holds
     * for the whole engine (docs/councils.md). */
    for (i = 0; i < def->n_providers; i++)
        if (def->providers[i].max_parallel > 0)
            loop = 0;
    return council__run_start_host_on(eng, ops, state, &o, loop, out, diag);
}

council_err
council_run_start(council_engine *eng, const council_def *def,
                  const char *question, const council_run_opts *opts,
                  council_run **out, council_diag *diag)
{
    council_message m = {"user", question};

    if (question == NULL)
        return COUNCIL_EINVAL;
    return council_run_start_messages(eng, def, &m, 1, opts, out, diag);
}

council_err
council_duration_parse(const char *text, uint64_t *out_ms)
{
    if (text == NULL || out_ms == NULL)
        return COUNCIL_EINVAL;
    return council__parse_duration(text, strlen(text), out_ms) == 0
               ? COUNCIL_OK
               : COUNCIL_EINVAL;
}
