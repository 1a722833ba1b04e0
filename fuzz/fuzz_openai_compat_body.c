/* SPDX-License-Identifier: MIT */
/*
 * The OpenAI-compatible request bodies council serve takes: POST
 * /v1/chat/completions, read by chat_req_parse (src/server/chat_req.c),
 * and the JSON text the server writes back from what it read
 * (sbuf_json, src/server/util.c, which renders every streamed chunk and
 * error).  The input is the body.  (The provider side, the bodies
 * council sends to and reads from OpenAI-compatible servers, is
 * fuzz_openai_chunk and fuzz_json_fast.)
 *
 * Checks:
 *   - differential: the verdict (accepted, or refused with 400 or 404)
 *     is the one a reference reading of the documented rules gives
 *     (docs/server.md; written here again, from jansson's tree), and an
 *     accepted body gives the same council name, stream flags and
 *     messages, role for role and byte for byte;
 *   - a refusal has a type and a non-empty message;
 *   - an accepted body's texts are NUL-free UTF-8, and each, written as a
 *     JSON string by sbuf_json, reads back with jansson to the same
 *     bytes (so the model name and content the server echoes in chunks
 *     and errors are valid JSON);
 *   - sbuf_json of the raw input (any bytes) is a JSON string body that
 *     jansson reads: valid UTF-8, every control character escaped.
 */
#include <jansson.h>
#include <string.h>

#include "chat_req.h"
#include "fuzz.h"
#include "serve.h"

typedef struct ref_msg {
    const char *role;
    char *content; /* malloc'd */
} ref_msg;

typedef struct ref {
    json_t *root; /* the reference's own parse: the strings below live in it */
    unsigned status;
    const char *council;
    int streamed, include_usage;
    ref_msg *m;
    size_t n;
} ref;

static void
ref_free(ref *r)
{
    size_t i;

    for (i = 0; i < r->n; i++)
        free(r->m[i].content);
    free(r->m);
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

static int
opt_bool(json_t *v)
{
    return v == NULL || json_is_null(v) || json_is_boolean(v);
}

/* The content's text by the documented rule; NULL if refused. */
static char *
ref_content(json_t *c)
{
    size_t i, len = 0;
    json_t *part;
    char *out;

    if (json_is_string(c)) {
        if (memchr(json_string_value(c), '\0', json_string_length(c)))
            return NULL;
        return strdup(json_string_value(c));
    }
    if (c == NULL || json_is_null(c))
        return strdup("");
    if (!json_is_array(c))
        return NULL;
    out = calloc(1, 1);
    FUZZ_CHECK(out != NULL);
    json_array_foreach (c, i, part) {
        json_t *t = json_object_get(part, "text");
        json_t *ty = json_object_get(part, "type");
        size_t tl;

        if (!json_is_object(part) || !json_is_string(ty) ||
            strcmp(json_string_value(ty), "text") != 0 || !json_is_string(t) ||
            memchr(json_string_value(t), '\0', json_string_length(t))) {
            free(out);
            return NULL;
        }
        tl = json_string_length(t);
        out = realloc(out, len + tl + 2);
        FUZZ_CHECK(out != NULL);
        /* A newline before each part that follows some text. */
        if (len > 0)
            out[len++] = '\n';
        memcpy(out + len, json_string_value(t), tl);
        len += tl;
        out[len] = '\0';
    }
    return out;
}

static void
reference(const char *body, size_t len, ref *r)
{
    json_t *root, *model, *so, *v, *msgs, *m;
    const char *name;
    size_t i;

    memset(r, 0, sizeof(*r));
    r->root = root = json_loadb(body, len, 0, NULL);
    r->status = 400;
    if (!json_is_object(root))
        goto out;
    model = json_object_get(root, "model");
    if (!json_is_string(model))
        goto out;
    name = json_string_value(model);
    if (strncmp(name, "council/", 8) != 0) {
        r->status = 404;
        goto out;
    }
    if (!opt_bool(json_object_get(root, "stream")))
        goto out;
    r->streamed = json_is_true(json_object_get(root, "stream"));
    so = json_object_get(root, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        if (!json_is_object(so) ||
            !opt_bool(json_object_get(so, "include_usage")))
            goto out;
        r->include_usage =
            r->streamed && json_is_true(json_object_get(so, "include_usage"));
    }
    v = json_object_get(root, "n");
    if (v != NULL && !json_is_null(v) &&
        !(json_is_integer(v) && json_integer_value(v) == 1))
        goto out;
    msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        goto out;
    r->m = calloc(json_array_size(msgs), sizeof(*r->m));
    FUZZ_CHECK(r->m != NULL);
    json_array_foreach (msgs, i, m) {
        json_t *role = json_object_get(m, "role");
        const char *rv = json_string_value(role);

        if (!json_is_object(m) || !json_is_string(role))
            goto out;
        if (strcmp(rv, "developer") == 0)
            rv = "system";
        if (strcmp(rv, "system") != 0 && strcmp(rv, "user") != 0 &&
            strcmp(rv, "assistant") != 0)
            goto out;
        r->m[i].role = rv;
        r->m[i].content = ref_content(json_object_get(m, "content"));
        r->n = i + 1;
        if (r->m[i].content == NULL)
            goto out;
    }
    if (strcmp(r->m[r->n - 1].role, "user") != 0)
        goto out;
    r->status = 0;
    r->council = name + 8;
out:
    if (r->status != 0) {
        unsigned status = r->status;

        ref_free(r);
        r->status = status;
    }
}

/* sbuf_json(p[0..n)) inside quotes must read back with jansson; when p is
 * NUL-free UTF-8, to exactly p. */
static void
round_trip(const char *p, size_t n)
{
    sbuf b = {0};
    json_t *j;
    json_error_t je;

    sbuf_str(&b, "\"");
    sbuf_json(&b, p, n);
    sbuf_str(&b, "\"");
    FUZZ_CHECK(!b.oom);
    j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FUZZ_CHECK(json_is_string(j));
    if (fuzz_utf8_valid(p, n) && memchr(p, '\0', n) == NULL) {
        FUZZ_CHECK(json_string_length(j) == n);
        FUZZ_CHECK(memcmp(json_string_value(j), p, n) == 0);
    }
    json_decref(j);
    sbuf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    const char *type = NULL;
    char msg[512];
    chat_req cr;
    unsigned st;
    ref want;
    size_t i;

    reference(body, size, &want);
    memset(msg, 0x55, sizeof(msg));
    st = chat_req_parse(body, size, &cr, &type, msg, sizeof(msg));
    if (st == 503) {
        /* Out of memory: nothing to compare. */
        ref_free(&want);
        return 0;
    }
    FUZZ_CHECK(st == want.status);
    if (st != 0) {
        FUZZ_CHECK(type != NULL && type[0] != '\0');
        FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL && msg[0] != '\0');
        FUZZ_CHECK(cr.root == NULL && cr.msgs == NULL && cr.n_msgs == 0);
        round_trip(msg, strlen(msg));
    } else {
        FUZZ_CHECK(strcmp(cr.council, want.council) == 0);
        FUZZ_CHECK(cr.streamed == want.streamed);
        FUZZ_CHECK(cr.include_usage == want.include_usage);
        FUZZ_CHECK(cr.n_msgs == want.n);
        for (i = 0; i < cr.n_msgs; i++) {
            const char *c = cr.msgs[i].content;
            size_t n = strlen(c);

            FUZZ_CHECK(strcmp(cr.msgs[i].role, want.m[i].role) == 0);
            FUZZ_CHECK(strcmp(c, want.m[i].content) == 0);
            FUZZ_CHECK(fuzz_utf8_valid(c, n));
            round_trip(c, n);
        }
        FUZZ_CHECK(strcmp(cr.msgs[cr.n_msgs - 1].role, "user") == 0);
        round_trip(cr.model, strlen(cr.model));
        chat_req_free(&cr);
    }
    ref_free(&want);
    /* Any bytes at all, as an echoed field would be. */
    round_trip(body, size);
    return 0;
}
