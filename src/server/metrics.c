/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics: the Prometheus text exposition format (version 0.0.4).
 * Engine-wide counters come from council_engine_stats_get; the rest are
 * the server's own, counted under its lock.  Provider calls are counted
 * from the runs' events as the server's recorder sees them: a call that
 * ended is a member_completed, review_completed or synthesis_completed
 * by a model (not a top-member fallback), or a member_failed, whose
 * error kind is the class of the error (retries inside one call are not
 * separate calls).
 */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* Error classes: member_failed's error.kind (docs/events.md). */
static const char *const classes[] = {
    "connect", "timeout",  "http",      "stream",   "provider",
    "empty",   "internal", "cancelled", "deadline", "other"};
#define N_CLASSES (sizeof(classes) / sizeof(classes[0]))

static size_t
class_of(const char *kind)
{
    size_t i;

    for (i = 0; kind != NULL && i + 1 < N_CLASSES; i++)
        if (strcmp(kind, classes[i]) == 0)
            return i;
    return N_CLASSES - 1;
}

void
metrics_event(srv *s, council_event *ev)
{
    council_event_type t = council_event_type_of(ev);
    json_t *j = NULL;
    int call = 0;
    size_t cls = N_CLASSES;

    switch (t) {
    case COUNCIL_EV_MEMBER_COMPLETED:
    case COUNCIL_EV_REVIEW_COMPLETED:
        call = 1;
        break;
    case COUNCIL_EV_SYNTHESIS_COMPLETED:
        /* A top-member fallback made no call; a chairman did. */
        j = json_loads(council_event_json(ev), 0, NULL);
        call = json_object_get(j, "fallback") == NULL ||
               json_is_integer(json_object_get(j, "fallback"));
        break;
    case COUNCIL_EV_MEMBER_FAILED:
        j = json_loads(council_event_json(ev), 0, NULL);
        call = 1;
        cls = class_of(json_string_value(
            json_object_get(json_object_get(j, "error"), "kind")));
        break;
    default:
        return;
    }
    json_decref(j);
    pthread_mutex_lock(&s->mu);
    if (call)
        s->c.provider_calls++;
    if (cls < N_CLASSES)
        s->c.provider_errors[cls]++;
    pthread_mutex_unlock(&s->mu);
}

static void
metric(sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum MHD_Result
metrics_get(srv *s, struct MHD_Connection *conn)
{
    council_engine_stats es;
    srv_counters c;
    size_t live, streams, councils, in_memory, i;
    sbuf b = {0};
    char *text;
    static const char *const http_cls[] = {"other", "1xx", "2xx",
                                           "3xx",   "4xx", "5xx"};

    council_engine_stats_get(s->eng, &es);
    pthread_mutex_lock(&s->mu);
    c = s->c;
    live = s->live;
    streams = s->streams;
    councils = s->councils->n;
    in_memory = s->n_runs;
    pthread_mutex_unlock(&s->mu);

    metric(&b, "council_runs_total", "counter",
           "Runs started by this server that ended, by outcome.");
    sbuf_fmt(&b, "council_runs_total{outcome=\"ok\"} %llu\n",
             (unsigned long long)c.runs_ok);
    sbuf_fmt(&b, "council_runs_total{outcome=\"cancelled\"} %llu\n",
             (unsigned long long)c.runs_cancelled);
    sbuf_fmt(&b, "council_runs_total{outcome=\"error\"} %llu\n",
             (unsigned long long)c.runs_error);
    sbuf_fmt(&b, "council_runs_total{outcome=\"crashed\"} %llu\n",
             (unsigned long long)c.runs_crashed);
    metric(&b, "council_runs_in_flight", "gauge",
           "Runs in flight (counted against --max-runs).");
    sbuf_fmt(&b, "council_runs_in_flight %zu\n", live);
    metric(&b, "council_runs_rejected_total", "counter",
           "Run requests refused with 429 at --max-runs.");
    sbuf_fmt(&b, "council_runs_rejected_total %llu\n",
             (unsigned long long)c.runs_rejected);
    metric(&b, "council_runs_in_memory", "gauge",
           "Runs whose events the server keeps in memory.");
    sbuf_fmt(&b, "council_runs_in_memory %zu\n", in_memory);
    metric(&b, "council_streams_open", "gauge",
           "Event and chat streams open (counted against --max-streams).");
    sbuf_fmt(&b, "council_streams_open %zu\n", streams);
    metric(&b, "council_streams_opened_total", "counter",
           "Event and chat streams opened.");
    sbuf_fmt(&b, "council_streams_opened_total %llu\n",
             (unsigned long long)c.streams_opened);
    metric(&b, "council_streams_rejected_total", "counter",
           "Streams refused with 429 at --max-streams.");
    sbuf_fmt(&b, "council_streams_rejected_total %llu\n",
             (unsigned long long)c.streams_rejected);
    metric(&b, "council_events_total", "counter",
           "Events published by the engine.");
    sbuf_fmt(&b, "council_events_total %llu\n",
             (unsigned long long)es.events_published);
    metric(&b, "council_event_deliveries_total", "counter",
           "Events handed to recorders and subscribers.");
    sbuf_fmt(&b, "council_event_deliveries_total %llu\n",
             (unsigned long long)es.deliveries);
    metric(&b, "council_events_dropped_total", "counter",
           "Events emitted after a run's terminal event (dropped).");
    sbuf_fmt(&b, "council_events_dropped_total %llu\n",
             (unsigned long long)es.events_dropped);
    metric(&b, "council_events_lost_total", "counter",
           "Events that could not be queued to a subscriber (memory).");
    sbuf_fmt(&b, "council_events_lost_total %llu\n",
             (unsigned long long)es.events_lost);
    metric(&b, "council_recorder_failures_total", "counter",
           "Recorder handle_event calls that reported a failure.");
    sbuf_fmt(&b, "council_recorder_failures_total %llu\n",
             (unsigned long long)es.recorder_failures);
    metric(&b, "council_provider_calls_total", "counter",
           "Provider calls that ended (answers, reviews, votes, syntheses, "
           "failures).");
    sbuf_fmt(&b, "council_provider_calls_total %llu\n",
             (unsigned long long)c.provider_calls);
    metric(&b, "council_provider_errors_total", "counter",
           "Provider calls that failed, by error class.");
    for (i = 0; i < N_CLASSES; i++)
        sbuf_fmt(&b, "council_provider_errors_total{class=\"%s\"} %llu\n",
                 classes[i], (unsigned long long)c.provider_errors[i]);
    metric(&b, "council_http_responses_total", "counter",
           "HTTP responses sent, by status class.");
    for (i = 1; i < 6; i++)
        sbuf_fmt(&b, "council_http_responses_total{code=\"%s\"} %llu\n",
                 http_cls[i], (unsigned long long)srv_http_count((int)i));
    metric(&b, "council_requests_timed_out_total", "counter",
           "Connections closed because a request did not arrive whole "
           "within --request-timeout.");
    sbuf_fmt(&b, "council_requests_timed_out_total %llu\n",
             (unsigned long long)c.requests_timed_out);
    metric(&b, "council_councils", "gauge", "Councils loaded.");
    sbuf_fmt(&b, "council_councils %zu\n", councils);
    metric(&b, "council_reloads_total", "counter",
           "Council directory reloads (SIGHUP), by result.");
    sbuf_fmt(&b, "council_reloads_total{result=\"ok\"} %llu\n",
             (unsigned long long)c.reloads);
    sbuf_fmt(&b, "council_reloads_total{result=\"failed\"} %llu\n",
             (unsigned long long)c.reload_failures);
    text = sbuf_take(&b);
    if (text == NULL)
        return srv_error(conn, 503, "server_error", "out of memory");
    return srv_reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                     text, strlen(text), NULL);
}
