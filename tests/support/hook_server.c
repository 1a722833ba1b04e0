/* SPDX-License-Identifier: MIT */
/*
 * The webhook receiver of the tests (hook_server.h): libmicrohttpd with a
 * thread per connection, so a hung request holds only its own connection.
 */
#include "hook_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REQS_MAX 4096

struct hook_server {
    struct MHD_Daemon *d;
    int port;
    char *secret;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int script[HOOK_SCRIPT_MAX];
    int n_script;
    int stopping;
    int n;        /* requests received */
    int answered; /* requests answered or hung */
    hook_req reqs[REQS_MAX];
};

/* One request's body, gathered over the access handler's calls. */
typedef struct upload {
    char *p;
    size_t len;
} upload;

static void
header(struct MHD_Connection *c, const char *name, char *out, size_t size)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

    snprintf(out, size, "%s", v != NULL ? v : "");
}

static int
check_sig(const hook_server *s, const hook_req *r)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char hex[2 * EVP_MAX_MD_SIZE + 8] = "sha256=";
    size_t tl = strlen(r->ts);
    unsigned char *msg;

    if (s->secret == NULL || r->ts[0] == '\0' || r->sig[0] == '\0')
        return 0;
    msg = malloc(tl + 1 + r->len);
    memcpy(msg, r->ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, r->body, r->len);
    HMAC(EVP_sha256(), s->secret, (int)strlen(s->secret), msg, tl + 1 + r->len,
         md, &mdlen);
    free(msg);
    for (i = 0; i < mdlen; i++)
        snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
    return strcmp(hex, r->sig) == 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *data,
           size_t *data_size, void **con_cls)
{
    hook_server *s = cls;
    upload *u = *con_cls;
    hook_req r;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int idx, status;
    char att[16];

    (void)version;
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_size > 0) {
        u->p = realloc(u->p, u->len + *data_size + 1);
        memcpy(u->p + u->len, data, *data_size);
        u->len += *data_size;
        u->p[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    memset(&r, 0, sizeof(r));
    snprintf(r.path, sizeof(r.path), "%s %s", method, url);
    header(c, "X-Council-Kind", r.kind, sizeof(r.kind));
    header(c, "Idempotency-Key", r.key, sizeof(r.key));
    header(c, "X-Council-Run-Id", r.run_id, sizeof(r.run_id));
    header(c, "X-Council-Timestamp", r.ts, sizeof(r.ts));
    header(c, "X-Council-Signature", r.sig, sizeof(r.sig));
    header(c, "Content-Type", r.content_type, sizeof(r.content_type));
    header(c, "Authorization", r.authorization, sizeof(r.authorization));
    header(c, "X-Council-Attempt", att, sizeof(att));
    r.attempt = atoi(att);
    r.body = u->p != NULL ? u->p : strdup("");
    r.len = u->len;
    u->p = NULL;
    r.sig_ok = check_sig(s, &r);

    pthread_mutex_lock(&s->mu);
    idx = s->n < REQS_MAX ? s->n++ : REQS_MAX - 1;
    status = idx < s->n_script ? s->script[idx] : 200;
    r.status = status;
    free(s->reqs[idx].body);
    s->reqs[idx] = r;
    s->answered++;
    pthread_cond_broadcast(&s->cv);
    if (status == HOOK_HANG) {
        while (!s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        return MHD_NO; /* drop the connection */
    }
    pthread_mutex_unlock(&s->mu);
    resp = MHD_create_response_from_buffer(2, (void *)"ok",
                                           MHD_RESPMEM_PERSISTENT);
    if (status == 429)
        MHD_add_response_header(resp, "Retry-After", "1");
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    upload *u = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (u != NULL) {
        free(u->p);
        free(u);
    }
    *con_cls = NULL;
}

hook_server *
hook_server_start(const char *secret)
{
    hook_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *di;

    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->secret = secret != NULL ? strdup(secret) : NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
        NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->d == NULL) {
        free(s->secret);
        free(s);
        return NULL;
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL ? di->port : 0;
    return s;
}

int
hook_server_port(const hook_server *s)
{
    return s->port;
}

void
hook_server_script(hook_server *s, const int *answers, int n)
{
    pthread_mutex_lock(&s->mu);
    if (n > HOOK_SCRIPT_MAX)
        n = HOOK_SCRIPT_MAX;
    memcpy(s->script, answers, (size_t)n * sizeof(int));
    s->n_script = n;
    pthread_mutex_unlock(&s->mu);
}

int
hook_server_count(hook_server *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int
hook_server_wait(hook_server *s, int n, int timeout_ms)
{
    struct timespec until;
    int got;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (s->answered < n &&
           pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
        ;
    got = s->answered;
    pthread_mutex_unlock(&s->mu);
    return got;
}

hook_req
hook_server_get(hook_server *s, int i)
{
    hook_req r;

    pthread_mutex_lock(&s->mu);
    r = s->reqs[i];
    r.body = malloc(r.len + 1);
    memcpy(r.body, s->reqs[i].body != NULL ? s->reqs[i].body : "", r.len);
    r.body[r.len] = '\0';
    pthread_mutex_unlock(&s->mu);
    return r;
}

void
hook_req_free(hook_req *r)
{
    free(r->body);
    r->body = NULL;
}

void
hook_server_stop(hook_server *s)
{
    int i;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    for (i = 0; i < REQS_MAX; i++)
        free(s->reqs[i].body);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->secret);
    free(s);
}
