/* SPDX-License-Identifier: MIT */
/*
 * council serve against hostile and unusual clients (issue 13), over raw
 * loopback sockets so every byte sent is the test's: an encoded NUL in a
 * path or a query parameter is a 400, never a shorter URL; HEAD is GET
 * without the body on every GET resource, event streams included (no
 * follower is started); a client that sends a request slowly, or not at
 * all, is cut at --request-timeout whatever it drips, while a reply (an
 * event stream) outlasts that bound; connections from one address are
 * limited (--max-client-conns), and with the defaults one client cannot
 * take the server's connections from another (/healthz still answers).
 * Clients bind to 127.0.0.2 and up to be other addresses: the whole of
 * 127/8 is loopback on Linux.  The real binary ($COUNCIL_BIN) on a free
 * port, a mock LLM in this process; every server is stopped with SIGTERM
 * and must exit 0 with no sanitizer report.
 * TEST_LABELS: threaded
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "council.h"
#include "runner.h"

extern char **environ;

static council_mockllm *mock;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
time_mult(void)
{
    const char *m = getenv("COUNCIL_TEST_TIMEOUT_MULTIPLIER");
    double x = m != NULL ? atof(m) : 1.0;

    return x >= 1.0 ? x : 1.0;
}

/* A rank council "trio" of three members on the mock, in councils/. */
static void
setup(double tokens_per_sec)
{
    council_mockllm_opts mo = {COUNCIL_MOCKLLM_OPTS_VERSION};
    council_diag d;
    char dir[800], path[900];
    FILE *f;

    mo.seed = 7;
    mo.tokens_per_sec = tokens_per_sec;
    ASSERT_OK(council_mockllm_open(&mo, &mock, &d));
    snprintf(dir, sizeof(dir), "%s/councils", runner_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/trio.yaml", dir);
    f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f,
            "name: trio\n"
            "strategy: rank\n"
            "providers:\n"
            "  mock: { kind: openai, base_url: %s }\n"
            "members:\n"
            "  - { name: alpha, provider: mock, model: mock-a }\n"
            "  - { name: beta, provider: mock, model: mock-b }\n"
            "  - { name: gamma, provider: mock, model: mock-c }\n"
            "chairman: { provider: mock, model: mock-chair }\n"
            "limits: { member_timeout: 30s, deadline: 60s, quorum: 2, "
            "max_tokens: 48 }\n",
            council_mockllm_base_url(mock));
    fclose(f);
}

static void
finish(void)
{
    council_mockllm_close(mock);
    mock = NULL;
}

/* ---- the server ---------------------------------------------------------- */

static pid_t srv_pid;
static int srv_port;
static char err_path[800];

/* council serve with the test's councils and store, plus extra arguments;
 * nofile > 0 caps the server's descriptors (soft and hard). */
static void
serve_start_lim(const char *const *extra, rlim_t nofile)
{
    const char *bin = getenv("COUNCIL_BIN");
    char *argv[64], councils[800], db[800], out_path[800];
    int n = 0, i, in, out, errfd;
    double end;

    ASSERT_NOT_NULL(bin);
    snprintf(councils, sizeof(councils), "%s/councils", runner_tmpdir());
    snprintf(db, sizeof(db), "%s/runs.db", runner_tmpdir());
    snprintf(out_path, sizeof(out_path), "%s/serve.out", runner_tmpdir());
    snprintf(err_path, sizeof(err_path), "%s/serve.err", runner_tmpdir());
    argv[n++] = (char *)bin;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--db";
    argv[n++] = db;
    argv[n++] = "--councils";
    argv[n++] = councils;
    argv[n++] = "--heartbeat";
    argv[n++] = "300ms";
    for (i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT(in >= 0 && out >= 0 && errfd >= 0);
    srv_pid = fork();
    ASSERT(srv_pid >= 0);
    if (srv_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (nofile > 0) {
            struct rlimit rl = {nofile, nofile};

            setrlimit(RLIMIT_NOFILE, &rl);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(errfd, 2);
        execve(bin, argv, environ);
        _exit(127);
    }
    close(in);
    close(out);
    close(errfd);
    end = now_s() + 20 * time_mult();
    for (;;) {
        char *err = cli_slurp(err_path);
        char *p = strstr(err, "listening on http://");
        int status;

        if (p != NULL && strchr(p, '\n') != NULL) {
            sscanf(strrchr(p, ':') + 1, "%d", &srv_port);
            free(err);
            return;
        }
        if (waitpid(srv_pid, &status, WNOHANG) == srv_pid) {
            srv_pid = 0;
            FAIL("council serve exited before listening: %s", err);
        }
        free(err);
        if (now_s() > end)
            FAIL("council serve did not start");
        usleep(10000);
    }
}

static void
serve_start(const char *const *extra)
{
    serve_start_lim(extra, 0);
}

static void
serve_stop(void)
{
    int status = 0;
    double end = now_s() + 30 * time_mult();
    char *err;

    kill(srv_pid, SIGTERM);
    while (waitpid(srv_pid, &status, WNOHANG) != srv_pid) {
        if (now_s() > end) {
            kill(srv_pid, SIGKILL);
            waitpid(srv_pid, &status, 0);
            FAIL("council serve did not stop");
        }
        usleep(5000);
    }
    srv_pid = 0;
    err = cli_slurp(err_path);
    if (strstr(err, "Sanitizer") != NULL ||
        strstr(err, "runtime error") != NULL)
        FAIL("sanitizer report from council serve:\n%s", err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("council serve ended with status %d:\n%s", status, err);
    free(err);
}

/* ---- raw HTTP ------------------------------------------------------------ */

/* A connection to the server from src (an address of 127/8, NULL for
 * 127.0.0.1); -1 if it could not be made. */
static int
conn_from(const char *src)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ASSERT(fd >= 0);
    if (src != NULL) {
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        ASSERT_EQ_INT(inet_pton(AF_INET, src, &a.sin_addr), 1);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            FAIL("bind %s: %s", src, strerror(errno));
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 0, or -1 if the peer is gone. */
static int
send_all(int fd, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t k = send(fd, p + off, n - off, MSG_NOSIGNAL);

        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

static void
send_str(int fd, const char *s)
{
    if (send_all(fd, s, strlen(s)) != 0)
        FAIL("send: %s", strerror(errno));
}

typedef struct reply {
    int status;
    char head[8192]; /* the status line and headers */
    char *body;      /* NUL-terminated */
    size_t blen;
    json_t *json;
} reply;

static void
reply_free(reply *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* The value of header name in r (case-insensitive) or NULL. */
static const char *
header(const reply *r, const char *name, char *out, size_t size)
{
    const char *p = strstr(r->head, "\r\n");
    size_t n = strlen(name);

    while (p != NULL && p[2] != '\0' && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)(e - v), v);
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Receive into buf[0..size) until it holds "\r\n\r\n" or the connection
 * ends; returns the bytes read and leaves any bytes after the head in
 * buf too. */
static size_t
recv_head(int fd, char *buf, size_t size, double secs)
{
    size_t len = 0;
    double end = now_s() + secs * time_mult();

    buf[0] = '\0';
    while (strstr(buf, "\r\n\r\n") == NULL && len + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t k;

        if (now_s() > end)
            FAIL("no reply headers in time: %s", buf);
        if (poll(&p, 1, 50) <= 0)
            continue;
        k = recv(fd, buf + len, size - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = '\0';
    }
    return len;
}

/* Read one reply from fd; head: the request was HEAD (no body follows).
 * The reply must have a Content-Length, unless it is HEAD. */
static void
read_reply(int fd, int head, reply *r)
{
    char buf[16384], cl[32];
    size_t len = recv_head(fd, buf, sizeof(buf), 20), hlen, want;
    char *eoh = strstr(buf, "\r\n\r\n");

    memset(r, 0, sizeof(*r));
    if (eoh == NULL)
        FAIL("no reply: %s", buf);
    hlen = (size_t)(eoh - buf) + 4;
    ASSERT(hlen < sizeof(r->head));
    memcpy(r->head, buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
        FAIL("not an HTTP reply: %s", buf);
    r->body = calloc(1, 1);
    if (head)
        want = 0;
    else if (header(r, "Content-Length", cl, sizeof(cl)) != NULL)
        want = strtoul(cl, NULL, 10);
    else
        FAIL("a reply without Content-Length: %s", r->head);
    r->body = realloc(r->body, want + 1);
    ASSERT(len - hlen <= want);
    memcpy(r->body, buf + hlen, len - hlen);
    r->blen = len - hlen;
    while (r->blen < want) {
        ssize_t k = recv(fd, r->body + r->blen, want - r->blen, 0);

        if (k <= 0)
            FAIL("the body ended after %zu of %zu bytes", r->blen, want);
        r->blen += (size_t)k;
    }
    r->body[r->blen] = '\0';
    r->json = json_loadb(r->body, r->blen, 0, NULL);
}

/* One request on a connection of its own from src; the reply. */
static reply
request_from(const char *src, const char *method, const char *target,
             const char *body)
{
    char req[4096];
    reply r;
    int fd = conn_from(src);

    if (fd < 0)
        FAIL("connect from %s: %s", src ? src : "127.0.0.1", strerror(errno));
    if (body != NULL)
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 method, target, strlen(body), body);
    else
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method,
                 target);
    send_str(fd, req);
    read_reply(fd, strcmp(method, "HEAD") == 0, &r);
    close(fd);
    return r;
}

static reply
request(const char *method, const char *target, const char *body)
{
    return request_from(NULL, method, target, body);
}

/* A JSON error with this status and type. */
static void
assert_error(const reply *r, int status, const char *type)
{
    json_t *e = json_object_get(r->json, "error");

    if (r->status != status)
        FAIL("status %d, expected %d: %s", r->status, status, r->body);
    if (!json_is_object(e) ||
        json_string_length(json_object_get(e, "message")) == 0)
        FAIL("not a JSON error: %s", r->body);
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), type);
}

/* Start a run of trio; its id (malloc'd). */
static char *
start_run(const char *question)
{
    char body[300];
    reply r;
    char *id;

    snprintf(body, sizeof(body), "{\"council\":\"trio\",\"input\":\"%s\"}",
             question);
    r = request("POST", "/v1/runs", body);
    if (r.status != 201)
        FAIL("POST /v1/runs: %d %s", r.status, r.body);
    id = strdup(json_string_value(json_object_get(r.json, "id")));
    reply_free(&r);
    return id;
}

static void
wait_outcome(const char *id, const char *want)
{
    char path[200];
    double end = now_s() + 60 * time_mult();

    snprintf(path, sizeof(path), "/v1/runs/%s", id);
    for (;;) {
        reply r = request("GET", path, NULL);
        const char *o = json_string_value(json_object_get(r.json, "outcome"));
        int done = o != NULL && strcmp(o, want) == 0;

        ASSERT_EQ_INT(r.status, 200);
        reply_free(&r);
        if (done)
            return;
        if (now_s() > end)
            FAIL("run %s did not end %s", id, want);
        usleep(50000);
    }
}

/* A counter's value in /metrics. */
static long long
metric(const char *name)
{
    reply r = request("GET", "/metrics", NULL);
    char key[200];
    const char *p;
    long long v = -1;

    ASSERT_EQ_INT(r.status, 200);
    snprintf(key, sizeof(key), "\n%s ", name);
    p = strstr(r.body, key);
    if (p == NULL)
        FAIL("no %s in /metrics", name);
    v = strtoll(p + strlen(key), NULL, 10);
    reply_free(&r);
    return v;
}

/* Wait until the server ends fd (EOF or reset): the seconds it took.
 * Bytes received on the way go to got[0..size). */
static double
wait_closed(int fd, double secs, char *got, size_t size)
{
    double t0 = now_s(), end = t0 + secs * time_mult();
    size_t len = 0;

    got[0] = '\0';
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        char buf[4096];
        ssize_t k;

        if (now_s() > end)
            FAIL("the server kept the connection %.1f s (got: %s)", secs, got);
        if (poll(&p, 1, 50) <= 0)
            continue;
        k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0)
            return now_s() - t0;
        if (len + (size_t)k < size) {
            memcpy(got + len, buf, (size_t)k);
            len += (size_t)k;
            got[len] = '\0';
        }
    }
}

/* ---- an encoded NUL ------------------------------------------------------ */

TEST_T(an_encoded_nul_is_a_400, 60)
{
    char path[300], *id;
    static const char *const targets[] = {
        "/v1/runs/%00", /* read as /v1/runs/, the list, before */
        NULL,           /* /v1/runs/ID%00/events: the record, before */
        "/v1/runs%00",
        "/healthz%00",
        "/v1/runs?limit=5%00",
        "/v1/runs?council=%00trio",
        "/v1/runs?x%00y=1",
        NULL, /* /v1/runs/ID/events?after=1%00 */
        "/%00",
        "/v1/models?%00",
    };
    size_t i;
    reply r;

    setup(0);
    serve_start(NULL);
    id = start_run("nul");
    wait_outcome(id, "ok");
    for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const char *t = targets[i];

        if (i == 1) {
            snprintf(path, sizeof(path), "/v1/runs/%s%%00/events", id);
            t = path;
        } else if (t == NULL) {
            snprintf(path, sizeof(path), "/v1/runs/%s/events?after=1%%00", id);
            t = path;
        }
        r = request("GET", t, NULL);
        if (r.status != 400)
            FAIL("GET %s: %d, not 400: %s", t, r.status, r.body);
        assert_error(&r, 400, "invalid_request_error");
        ASSERT_STR_CONTAINS(r.body, "NUL");
        reply_free(&r);
    }
    /* DELETE ...?purge=true%00 must not purge. */
    snprintf(path, sizeof(path), "/v1/runs/%s?purge=true%%00", id);
    r = request("DELETE", path, NULL);
    assert_error(&r, 400, "invalid_request_error");
    reply_free(&r);
    /* The same URL without the NUL is the event stream. */
    {
        char req[400], buf[8192];
        int fd = conn_from(NULL);

        ASSERT(fd >= 0);
        snprintf(req, sizeof(req),
                 "GET /v1/runs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", id);
        send_str(fd, req);
        recv_head(fd, buf, sizeof(buf), 20);
        ASSERT(strncmp(buf, "HTTP/1.1 200", 12) == 0);
        ASSERT_STR_CONTAINS(buf, "text/event-stream");
        close(fd);
    }
    /* "%2500" decodes to the three characters %00, no NUL: a run id
     * that does not exist. */
    r = request("GET", "/v1/runs/%2500", NULL);
    assert_error(&r, 404, "not_found_error");
    ASSERT_STR_CONTAINS(r.body, "%00");
    reply_free(&r);
    /* Other decoding is as before: %74rio is trio, + is a space. */
    r = request("GET", "/v1/runs?council=%74rio&limit=1", NULL);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "data")), 1);
    reply_free(&r);
    r = request("GET", "/v1/runs?council=tr+io", NULL);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "data")), 0);
    reply_free(&r);
    /* More than 32 query parameters, and a parameter without '=' where
     * a value is needed: 400, said as such. */
    {
        char many[600];
        size_t n = 0;
        int k;

        n += (size_t)snprintf(many, sizeof(many), "/v1/runs?");
        for (k = 0; k < 33; k++)
            n += (size_t)snprintf(many + n, sizeof(many) - n, "p%d=1&", k);
        r = request("GET", many, NULL);
        assert_error(&r, 400, "invalid_request_error");
        ASSERT_STR_CONTAINS(r.body, "query parameters");
        reply_free(&r);
    }
    snprintf(path, sizeof(path), "/v1/runs/%s?purge", id);
    r = request("DELETE", path, NULL);
    assert_error(&r, 400, "invalid_request_error");
    ASSERT_STR_CONTAINS(r.body, "purge");
    reply_free(&r);
    /* The run is still there, whole. */
    snprintf(path, sizeof(path), "/v1/runs/%s", id);
    r = request("GET", path, NULL);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "outcome")), "ok");
    reply_free(&r);
    free(id);
    serve_stop();
    finish();
}

/* ---- HEAD ---------------------------------------------------------------- */

/* HEAD target answers as GET target does, headers and all, without a
 * body: the same connection then carries the next request's reply right
 * after HEAD's header block. */
static void
head_like_get(const char *target, int same_length)
{
    char req[600], a[200], b[200];
    reply g, h, next;
    int fd;

    g = request("GET", target, NULL);
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    send_str(fd, req);
    read_reply(fd, 1, &h);
    if (header(&h, "Connection", a, sizeof(a)) != NULL &&
        strcmp(a, "close") == 0) {
        /* An early reply (before a body could come) ends the
         * connection: nothing may follow the header block. */
        wait_closed(fd, 10, a, sizeof(a));
        ASSERT_STR_EQ(a, "");
        memset(&next, 0, sizeof(next));
    } else {
        send_str(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        read_reply(fd, 0, &next);
        ASSERT_EQ_INT(next.status, 200);
        ASSERT_STR_CONTAINS(next.body, "\"status\":\"ok\"");
    }
    close(fd);
    if (h.status != g.status)
        FAIL("HEAD %s: %d, GET: %d", target, h.status, g.status);
    ASSERT_NOT_NULL(header(&h, "Content-Type", a, sizeof(a)));
    ASSERT_NOT_NULL(header(&g, "Content-Type", b, sizeof(b)));
    ASSERT_STR_EQ(a, b);
    if (header(&h, "Content-Length", a, sizeof(a)) == NULL)
        FAIL("HEAD %s: no Content-Length: %s", target, h.head);
    if (same_length) {
        snprintf(b, sizeof(b), "%zu", g.blen);
        ASSERT_STR_EQ(a, b);
    } else {
        ASSERT(strtoul(a, NULL, 10) > 0);
    }
    reply_free(&g);
    reply_free(&h);
    reply_free(&next);
}

/* HEAD of an event stream: 200 and the stream's headers at once, no
 * body, no follower; the connection closes after the header block (no
 * chunked encoding to end: see stream.c). */
static void
head_of_stream(const char *target)
{
    char req[600], v[200];
    reply h;
    long long opened = metric("council_streams_opened_total");
    int fd = conn_from(NULL);

    ASSERT(fd >= 0);
    snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    send_str(fd, req);
    read_reply(fd, 1, &h);
    ASSERT_EQ_INT(h.status, 200);
    ASSERT_NOT_NULL(header(&h, "Content-Type", v, sizeof(v)));
    ASSERT_STR_EQ(v, "text/event-stream");
    ASSERT_NOT_NULL(header(&h, "Cache-Control", v, sizeof(v)));
    ASSERT_STR_EQ(v, "no-cache");
    ASSERT_NOT_NULL(header(&h, "Connection", v, sizeof(v)));
    ASSERT_STR_EQ(v, "close");
    ASSERT_NULL(header(&h, "Transfer-Encoding", v, sizeof(v)));
    wait_closed(fd, 10, v, sizeof(v));
    ASSERT_STR_EQ(v, "");
    close(fd);
    ASSERT_EQ_INT(metric("council_streams_opened_total"), opened);
    reply_free(&h);
}

TEST_T(head_is_get_without_a_body, 90)
{
    char path[300], v[200], *id, *live;
    reply r;

    setup(20);
    serve_start(NULL);
    id = start_run("head");
    wait_outcome(id, "ok");
    head_like_get("/healthz", 1);
    head_like_get("/v1/models", 1);
    head_like_get("/v1/runs", 1);
    head_like_get("/v1/runs?limit=1", 1);
    head_like_get("/", 1);
    head_like_get("/metrics", 0); /* its counters move between the two */
    snprintf(path, sizeof(path), "/v1/runs/%s", id);
    head_like_get(path, 1);
    head_like_get("/v1/runs/nope", 1);
    head_like_get("/v1/runs/nope/events", 1);
    head_like_get("/v1/runs/a%20b", 1);
    head_like_get("/nowhere", 1);
    snprintf(path, sizeof(path), "/v1/runs/%s/events?after=x", id);
    head_like_get(path, 1);
    /* Event streams: an ended run in memory, and a live one. */
    snprintf(path, sizeof(path), "/v1/runs/%s/events", id);
    head_of_stream(path);
    live = start_run("a live one");
    snprintf(path, sizeof(path), "/v1/runs/%s/events", live);
    head_of_stream(path);
    wait_outcome(live, "ok");
    /* HEAD where GET is not taken is 405; Allow names HEAD with GET. */
    r = request("HEAD", "/v1/chat/completions", NULL);
    ASSERT_EQ_INT(r.status, 405);
    ASSERT_NOT_NULL(header(&r, "Allow", v, sizeof(v)));
    ASSERT_STR_EQ(v, "POST");
    reply_free(&r);
    r = request("PUT", "/healthz", NULL);
    assert_error(&r, 405, "method_not_allowed");
    ASSERT_NOT_NULL(header(&r, "Allow", v, sizeof(v)));
    ASSERT_STR_EQ(v, "GET, HEAD");
    reply_free(&r);
    r = request("PUT", "/v1/runs", NULL);
    ASSERT_NOT_NULL(header(&r, "Allow", v, sizeof(v)));
    ASSERT_STR_EQ(v, "GET, HEAD, POST");
    reply_free(&r);
    /* A stored run only (a new server process): from the store. */
    serve_stop();
    serve_start(NULL);
    snprintf(path, sizeof(path), "/v1/runs/%s", id);
    head_like_get(path, 1);
    snprintf(path, sizeof(path), "/v1/runs/%s/events", id);
    head_of_stream(path);
    free(live);
    free(id);
    serve_stop();
    finish();
}

/* ---- slow clients -------------------------------------------------------- */

TEST_T(a_slow_request_is_cut_at_the_request_timeout, 90)
{
    const char *args[] = {"--request-timeout", "2s", NULL};
    char got[4096], path[300], *id;
    double t0, took;
    int fd, i, cut = 1;
    reply r;

    setup(8); /* a run of several seconds */
    serve_start(args);

    /* Header lines dripped every 300 ms, each well within the idle
     * timeout: cut at 2 s all the same, with a 408. */
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    t0 = now_s();
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (i = 0; i < 40; i++) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, 300) > 0)
            break;
        if (send_all(fd, "X-Drip: 1\r\n", 11) != 0)
            break;
    }
    wait_closed(fd, 10, got, sizeof(got));
    took = now_s() - t0;
    close(fd);
    if (i == 40)
        FAIL("still open after 12 s of dripped headers");
    if (took < 1.5 || took > 2 + 2 * time_mult())
        FAIL("cut after %.2f s, the bound is 2 s", took);
    if (got[0] != '\0')
        ASSERT_STR_CONTAINS(got, "HTTP/1.1 408");

    /* A request line and then nothing: the 408 says why. */
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    t0 = now_s();
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost:");
    took = wait_closed(fd, 10, got, sizeof(got));
    close(fd);
    ASSERT(took > 1.5 && took < 2 + 2 * time_mult());
    ASSERT_STR_CONTAINS(got, "HTTP/1.1 408 Request Timeout");
    ASSERT_STR_CONTAINS(got, "request_timeout");
    ASSERT_STR_CONTAINS(got, "--request-timeout");

    /* A body dripped a byte at a time. */
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    t0 = now_s();
    send_str(fd, "POST /v1/runs HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{");
    for (i = 0; i < 60; i++) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, 200) > 0)
            break;
        if (send_all(fd, " ", 1) != 0)
            break;
    }
    wait_closed(fd, 10, got, sizeof(got));
    took = now_s() - t0;
    close(fd);
    ASSERT(took > 1.5 && took < 2 + 2 * time_mult());

    /* A connection that sends nothing, and one kept alive after its
     * request: closed at the bound, without a 408 (no request came). */
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    took = wait_closed(fd, 10, got, sizeof(got));
    close(fd);
    ASSERT(took > 1.5 && took < 2 + 2 * time_mult());
    ASSERT_STR_EQ(got, "");
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    usleep(1500000); /* most of the bound, then a request */
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    read_reply(fd, 0, &r);
    ASSERT_EQ_INT(r.status, 200);
    reply_free(&r);
    took = wait_closed(fd, 10, got, sizeof(got));
    close(fd);
    /* The bound started again when the request ended. */
    ASSERT(took > 1.5 && took < 2 + 2 * time_mult());
    ASSERT_STR_EQ(got, "");

    /* A reply is not bounded: an event stream outlives 2 s. */
    id = start_run("a long one");
    fd = conn_from(NULL);
    ASSERT(fd >= 0);
    snprintf(path, sizeof(path),
             "GET /v1/runs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", id);
    t0 = now_s();
    send_str(fd, path);
    {
        char buf[65536];
        size_t len = 0;

        while (strstr(buf, "event: run_completed") == NULL) {
            struct pollfd p = {fd, POLLIN, 0};
            ssize_t k;

            buf[len] = '\0';
            if (strstr(buf, "event: run_completed") != NULL)
                break;
            if (now_s() - t0 > 60 * time_mult())
                FAIL("no run_completed");
            if (poll(&p, 1, 100) <= 0)
                continue;
            k = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
            if (k <= 0) {
                cut = 1;
                break;
            }
            len += (size_t)k;
            if (len > sizeof(buf) - 2)
                len = 0; /* keep the tail: the terminal event is last */
            cut = 0;
        }
        buf[len] = '\0';
        if (strstr(buf, "event: run_completed") == NULL)
            FAIL("the stream ended without run_completed after %.1f s",
                 now_s() - t0);
    }
    ASSERT(!cut);
    took = now_s() - t0;
    close(fd);
    if (took < 2.5)
        FAIL("the run took %.2f s: too short to show a stream outlives "
             "the bound",
             took);
    ASSERT(metric("council_requests_timed_out_total") >= 5);
    free(id);
    serve_stop();
    finish();
}

TEST_T(connections_per_client_are_limited, 60)
{
    const char *args[] = {"--max-client-conns", "4", NULL};
    int fds[4], extra, i;
    char got[512];
    double end;
    reply r;

    setup(0);
    serve_start(args);
    for (i = 0; i < 4; i++) {
        fds[i] = conn_from(NULL);
        ASSERT(fds[i] >= 0);
    }
    /* The fifth from 127.0.0.1 is closed unanswered. */
    extra = conn_from(NULL);
    if (extra >= 0) {
        (void)send_all(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35);
        wait_closed(extra, 5, got, sizeof(got));
        ASSERT_STR_EQ(got, "");
        close(extra);
    }
    /* Another address is another client. */
    r = request_from("127.0.0.2", "GET", "/healthz", NULL);
    ASSERT_EQ_INT(r.status, 200);
    reply_free(&r);
    r = request_from("127.0.0.3", "GET", "/v1/models", NULL);
    ASSERT_EQ_INT(r.status, 200);
    reply_free(&r);
    /* One of the four left: its place is free again (the server notices
     * the close on its own time). */
    close(fds[0]);
    end = now_s() + 10 * time_mult();
    for (;;) {
        int fd = conn_from(NULL), ok = 0;

        if (fd >= 0) {
            char buf[2048];

            if (send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35) ==
                0) {
                recv_head(fd, buf, sizeof(buf), 5);
                ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
            }
            close(fd);
        }
        if (ok)
            break;
        if (now_s() > end)
            FAIL("the place of a closed connection was not freed");
        usleep(50000);
    }
    for (i = 1; i < 4; i++)
        close(fds[i]);
    serve_stop();
    finish();
}

/* With the defaults, a client that opens connections until the server
 * takes no more cannot starve another: the server here may hold 328
 * connections (a descriptor limit of 600 less its reserve for
 * --max-runs 1), and one client opens 340. */
TEST_T(the_defaults_keep_healthz_answering, 60)
{
    enum { N = 340 };
    const char *args[] = {"--max-runs", "1", NULL};
    static int fds[N];
    int i, open_ = 0;
    struct rlimit rl;
    reply r;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 64) {
        rl.rlim_cur = rl.rlim_max < N + 64 ? rl.rlim_max : N + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setup(0);
    serve_start_lim(args, 600);
    for (i = 0; i < N; i++) {
        fds[i] = conn_from(NULL);
        if (fds[i] >= 0)
            open_++;
    }
    /* Let the server accept (or refuse) them all. */
    usleep(500000);
    r = request_from("127.0.0.2", "GET", "/healthz", NULL);
    ASSERT_EQ_INT(r.status, 200);
    reply_free(&r);
    for (i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ASSERT(open_ > 0);
    serve_stop();
    finish();
}
