/* SPDX-License-Identifier: MIT */
/*
 * Reading a chat completion request (chat_req.h).  What is refused, in
 * the order it is checked: malformed JSON (line and column), a body that
 * is not an object, no string "model", a model that is not
 * "council/<name>" (404, as OpenAI answers an unknown model), "stream"
 * not a boolean, "stream_options" not an object with a boolean
 * "include_usage", "n" other than 1, "messages" not a non-empty array, a
 * message without a string role, a role other than system, developer,
 * user and assistant, a content that is not a string, null or an array
 * of text parts (or holds a NUL), a last message that is not the user's.
 * Other fields (temperature, tools, user...) are accepted and ignored: a
 * council decides those itself.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_req.h"
#include "serve.h"

static unsigned refuse(unsigned status, const char **type, const char *t,
                       char *msg, size_t msgsz, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static unsigned
refuse(unsigned status, const char **type, const char *t, char *msg,
       size_t msgsz, const char *fmt, ...)
{
    va_list ap;

    *type = t;
    va_start(ap, fmt);
    vsnprintf(msg, msgsz, fmt, ap);
    va_end(ap);
    return status;
}

/*
 * The text of a message's content: a string, null (""), or an array of
 * text parts, joined with a newline before each part that follows some
 * text.  0, -1 if it is none of these or holds a NUL, -2 out of memory.
 */
static int
content_text(json_t *c, sbuf *out, const char **text)
{
    size_t i;
    json_t *part;

    if (json_is_string(c)) {
        if (strlen(json_string_value(c)) != json_string_length(c))
            return -1;
        *text = json_string_value(c);
        return 0;
    }
    if (c == NULL || json_is_null(c)) {
        *text = "";
        return 0;
    }
    if (!json_is_array(c))
        return -1;
    json_array_foreach (c, i, part) {
        json_t *type = json_object_get(part, "type");
        json_t *t = json_object_get(part, "text");

        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 || !json_is_string(t))
            return -1;
        if (out->len > 0)
            sbuf_str(out, "\n");
        sbuf_add(out, json_string_value(t), json_string_length(t));
    }
    sbuf_add(out, "", 0);
    if (out->oom)
        return -2;
    if (strlen(out->p) != out->len)
        return -1;
    *text = out->p;
    return 0;
}

void
chat_req_free(chat_req *r)
{
    size_t i;

    if (r->parts != NULL)
        for (i = 0; i < r->n_msgs; i++)
            sbuf_free(&r->parts[i]);
    free(r->parts);
    free(r->msgs);
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

unsigned
chat_req_parse(const char *body, size_t len, chat_req *r, const char **type,
               char *msg, size_t msgsz)
{
    static const char inv[] = "invalid_request_error";
    json_error_t je;
    json_t *model, *msgs, *v, *so, *m;
    unsigned status = 0;
    size_t n, i;

    memset(r, 0, sizeof(*r));
    r->root = json_loadb(body != NULL ? body : "", len, 0, &je);
    if (r->root == NULL)
        return refuse(400, type, inv, msg, msgsz,
                      "malformed JSON in the request body at line %d, "
                      "column %d: %s",
                      je.line, je.column, je.text);
    if (!json_is_object(r->root)) {
        status = refuse(400, type, inv, msg, msgsz,
                        "the request body must be a JSON object");
        goto out;
    }
    model = json_object_get(r->root, "model");
    if (!json_is_string(model)) {
        status = refuse(400, type, inv, msg, msgsz,
                        "'model' is required: \"council/<name>\"");
        goto out;
    }
    r->model = json_string_value(model);
    if (strncmp(r->model, "council/", 8) != 0) {
        status = refuse(404, type, "not_found_error", msg, msgsz,
                        "the model '%.100s' does not exist: models here "
                        "are \"council/<name>\" (GET /v1/models)",
                        r->model);
        goto out;
    }
    r->council = r->model + 8;
    v = json_object_get(r->root, "stream");
    if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
        status =
            refuse(400, type, inv, msg, msgsz, "'stream' must be a boolean");
        goto out;
    }
    r->streamed = json_is_true(v);
    so = json_object_get(r->root, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        v = json_object_get(so, "include_usage");
        if (!json_is_object(so) ||
            (v != NULL && !json_is_null(v) && !json_is_boolean(v))) {
            status = refuse(400, type, inv, msg, msgsz,
                            "'stream_options' must be an object with a "
                            "boolean 'include_usage'");
            goto out;
        }
        r->include_usage = r->streamed && json_is_true(v);
    }
    v = json_object_get(r->root, "n");
    if (v != NULL && !json_is_null(v) &&
        !(json_is_integer(v) && json_integer_value(v) == 1)) {
        status = refuse(400, type, inv, msg, msgsz,
                        "'n' must be 1: a council gives one answer");
        goto out;
    }
    msgs = json_object_get(r->root, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        status = refuse(400, type, inv, msg, msgsz,
                        "'messages' must be a non-empty array");
        goto out;
    }
    n = json_array_size(msgs);
    r->msgs = calloc(n, sizeof(*r->msgs));
    r->parts = calloc(n, sizeof(*r->parts));
    if (r->msgs == NULL || r->parts == NULL) {
        status = refuse(503, type, "server_error", msg, msgsz, "out of memory");
        goto out;
    }
    r->n_msgs = n;
    json_array_foreach (msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        int rc;

        if (!json_is_object(m) || role == NULL) {
            status = refuse(400, type, inv, msg, msgsz,
                            "messages[%zu] must be an object with a string "
                            "'role'",
                            i);
            goto out;
        }
        if (strcmp(role, "developer") == 0)
            role = "system";
        if (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
            strcmp(role, "assistant") != 0) {
            status = refuse(400, type, inv, msg, msgsz,
                            "messages[%zu].role '%.40s' is not supported "
                            "(system, developer, user, assistant)",
                            i, role);
            goto out;
        }
        r->msgs[i].role = role;
        rc = content_text(json_object_get(m, "content"), &r->parts[i],
                          &r->msgs[i].content);
        if (rc == -2) {
            status =
                refuse(503, type, "server_error", msg, msgsz, "out of memory");
            goto out;
        }
        if (rc != 0) {
            status = refuse(400, type, inv, msg, msgsz,
                            "messages[%zu].content must be a string or an "
                            "array of text parts",
                            i);
            goto out;
        }
    }
    if (strcmp(r->msgs[n - 1].role, "user") != 0)
        status = refuse(400, type, inv, msg, msgsz,
                        "the last message must have role \"user\"");
out:
    if (status != 0)
        chat_req_free(r);
    return status;
}
