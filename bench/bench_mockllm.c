/* SPDX-License-Identifier: MIT */
/*
 * Throughput of the mock LLM: streamed chat requests per second.  Starts a
 * mock in-process (or uses $MOCK_URL), keeps C connections busy with
 * keep-alive streamed requests for S seconds through one curl multi handle,
 * and prints completed streams per second.
 *
 *   bench_mockllm [connections=32] [seconds=5] [latency_ms=0] [tps=0]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "council.h"

typedef struct slot {
    CURL *h;
    size_t bytes;
    int done_seen;
} slot;

static size_t
on_body(char *d, size_t sz, size_t n, void *ud)
{
    slot *s = ud;

    s->bytes += sz * n;
    if (memmem(d, sz * n, "[DONE]", 6) != NULL)
        s->done_seen = 1;
    return sz * n;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    int conns = argc > 1 ? atoi(argv[1]) : 32;
    double secs = argc > 2 ? atof(argv[2]) : 5.0;
    council_mockllm_opts o;
    council_mockllm *m = NULL;
    const char *base = getenv("MOCK_URL");
    char url[256];
    static const char body[] =
        "{\"model\":\"bench\",\"stream\":true,\"stream_options\":"
        "{\"include_usage\":true},\"messages\":[{\"role\":\"user\","
        "\"content\":\"How fast can you go?\"}]}";
    CURLM *multi;
    slot *slots;
    long done = 0, bad = 0;
    double t0, dt;
    int running, i;

    memset(&o, 0, sizeof(o));
    o.version = COUNCIL_MOCKLLM_OPTS_VERSION;
    o.latency_ms = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    o.tokens_per_sec = argc > 4 ? atof(argv[4]) : 0;
    if (base == NULL) {
        if (council_mockllm_open(&o, &m, NULL) != COUNCIL_OK) {
            fprintf(stderr, "cannot open the mock\n");
            return 1;
        }
        base = council_mockllm_base_url(m);
    }
    snprintf(url, sizeof(url), "%s/chat/completions", base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    slots = calloc((size_t)conns, sizeof(*slots));
    for (i = 0; i < conns; i++) {
        slots[i].h = curl_easy_init();
        curl_easy_setopt(slots[i].h, CURLOPT_URL, url);
        curl_easy_setopt(slots[i].h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(slots[i].h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(slots[i].h, CURLOPT_WRITEDATA, &slots[i]);
        curl_easy_setopt(slots[i].h, CURLOPT_PRIVATE, &slots[i]);
        curl_multi_add_handle(multi, slots[i].h);
    }
    t0 = now_s();
    for (;;) {
        CURLMsg *msg;
        int left;

        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            slot *s;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
            if (msg->data.result == CURLE_OK && s->done_seen)
                done++;
            else
                bad++;
            s->done_seen = 0;
            curl_multi_remove_handle(multi, s->h);
            if (now_s() - t0 < secs)
                curl_multi_add_handle(multi, s->h); /* again, reusing */
        }
        if (running == 0 && now_s() - t0 >= secs)
            break;
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    dt = now_s() - t0;
    printf("%ld streams in %.2f s: %.0f streams/s, %ld failed, "
           "%d connections\n",
           done, dt, (double)done / dt, bad, conns);
    for (i = 0; i < conns; i++)
        curl_easy_cleanup(slots[i].h);
    free(slots);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    council_mockllm_close(m);
    return bad == 0 ? 0 : 1;
}
