/* SPDX-License-Identifier: MIT */
/*
 * The read side of the sqlite recorder's database: council_store_list (the
 * runs, newest first) and council_store_conversation (a stored run as the
 * conversation to go on with).  Both open the file read-only (a missing
 * file is reported, never created) and check that it is a council store
 * of a known schema version.  A damaged or foreign file gives COUNCIL_EIO
 * with SQLite's own words in the diag, never a crash.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "os/os.h"
#include "recorder/recorder.h"

static council_err
fail_db(sqlite3 *db, const char *path, council_diag *diag, const char *what)
{
    council__recorder_diag(diag, path, 0, "%s%s%s", what,
                           db != NULL ? ": " : "",
                           db != NULL ? sqlite3_errmsg(db) : "");
    return COUNCIL_EIO;
}

/* Check the schema: application id and version we know, and our tables
 * with our columns. */
static council_err
check_store(sqlite3 *db, const char *path, council_diag *diag)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 app = -1, ver = -1;
    council_err rc = COUNCIL_OK;

    if (sqlite3_prepare_v2(db,
                           "SELECT * FROM pragma_application_id(),"
                           " pragma_user_version()",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = fail_db(db, path, diag, "cannot read the store");
        goto out;
    }
    app = sqlite3_column_int64(st, 0);
    ver = sqlite3_column_int64(st, 1);
    if (app != COUNCIL__STORE_APP_ID) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "not a council store (application_id %#llx)",
                               (unsigned long long)app);
        goto out;
    }
    if (ver != COUNCIL__STORE_VERSION) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "unknown store schema version %lld "
                               "(this council reads %d)",
                               (long long)ver, COUNCIL__STORE_VERSION);
        goto out;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Open the store at path read-only (never creating it) and check it.
 * On failure *db is NULL and diag says why. */
static council_err
open_store(const char *path, sqlite3 **out, council_diag *diag)
{
    sqlite3 *db = NULL;
    struct stat sb;
    char eb[128];
    council_err rc;

    *out = NULL;
    if (council__os.stat(path, &sb) != 0) {
        int e = errno;

        council__recorder_diag(diag, path, 0, "%s",
                               council__os_strerror(e, eb, sizeof(eb)));
        return e == ENOENT ? COUNCIL_ENOTFOUND : COUNCIL_EIO;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = fail_db(db, path, diag, "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    rc = check_store(db, path, diag);
out:
    if (rc != COUNCIL_OK)
        sqlite3_close(db);
    else
        *out = db;
    return rc;
}

council_err
council_store_list(const char *path, size_t limit,
                   int (*cb)(const council_run_row *row, void *ud), void *ud,
                   council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int src;

    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    if (path == NULL || cb == NULL)
        return COUNCIL_EINVAL;
    rc = open_store(path, &db, diag);
    if (rc != COUNCIL_OK)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT run_id, council, question, started_us,"
                           " ended_us, outcome, events FROM runs"
                           " ORDER BY started_us DESC, rowid DESC LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail_db(db, path, diag, "not a council store");
        goto out;
    }
    sqlite3_bind_int64(st, 1, limit == 0 ? -1 : (sqlite3_int64)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        council_run_row row;

        row.run_id = (const char *)sqlite3_column_text(st, 0);
        row.council = (const char *)sqlite3_column_text(st, 1);
        row.question = (const char *)sqlite3_column_text(st, 2);
        row.started_us = sqlite3_column_int64(st, 3);
        row.ended_us = sqlite3_column_int64(st, 4);
        row.outcome = (const char *)sqlite3_column_text(st, 5);
        row.events = (uint64_t)sqlite3_column_int64(st, 6);
        if (row.run_id == NULL)
            continue; /* a damaged row; the key is never NULL otherwise */
        if (cb(&row, ud) != 0) {
            src = SQLITE_DONE;
            break;
        }
    }
    if (src != SQLITE_DONE)
        rc = fail_db(db, path, diag, "cannot read the runs");
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* The JSON of run_id's event of the given type (the first one), parsed, in
 * *out; NULL if the run has none. */
static council_err
load_event(sqlite3 *db, const char *path, const char *run_id, const char *type,
           json_t **out, council_diag *diag)
{
    sqlite3_stmt *st = NULL;
    council_err rc = COUNCIL_OK;
    json_error_t je;
    int src;

    *out = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT json FROM events WHERE run_id = ?1"
                           " AND type = ?2 ORDER BY seq LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail_db(db, path, diag, "not a council store");
        goto out;
    }
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        goto out;
    if (src != SQLITE_ROW) {
        rc = fail_db(db, path, diag, "cannot read the events");
        goto out;
    }
    *out = json_loadb((const char *)sqlite3_column_blob(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0), 0, &je);
    if (*out == NULL) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "run %s: its %s event is not "
                               "JSON: %s",
                               run_id, type, je.text);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Does the store hold a row for run_id?  1 yes, 0 no, -1 on error. */
static int
run_exists(sqlite3 *db, const char *run_id)
{
    sqlite3_stmt *st = NULL;
    int src, r = -1;

    if (sqlite3_prepare_v2(db, "SELECT 1 FROM runs WHERE run_id = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        r = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return r;
}

/* Set m to copies of role and content; -1 if memory ran out. */
static int
set_message(council_message *m, const char *role, const char *content,
            size_t content_len)
{
    char *r = council__strdup(role);
    char *c = council__malloc(content_len + 1);

    if (r == NULL || c == NULL) {
        council__free(r);
        council__free(c);
        return -1;
    }
    memcpy(c, content, content_len);
    c[content_len] = '\0';
    m->role = r;
    m->content = c;
    return 0;
}

council_err
council_store_conversation(const char *path, const char *run_id,
                           council_message **out, size_t *n, council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    sqlite3 *db = NULL;
    json_t *started = NULL, *completed = NULL, *msgs, *answer, *v;
    council_message *m = NULL;
    size_t count = 0, i;

    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    if (out != NULL)
        *out = NULL;
    if (n != NULL)
        *n = 0;
    if (path == NULL || run_id == NULL || out == NULL || n == NULL) {
        council__recorder_diag(diag, path != NULL ? path : "", 0,
                               "invalid argument");
        return COUNCIL_EINVAL;
    }
    rc = open_store(path, &db, diag);
    if (rc != COUNCIL_OK)
        goto out;
    rc = load_event(db, path, run_id, "run_started", &started, diag);
    if (rc != COUNCIL_OK)
        goto out;
    if (started == NULL) {
        int e = run_exists(db, run_id);

        if (e < 0) {
            rc = fail_db(db, path, diag, "cannot read the runs");
        } else if (e == 0) {
            rc = COUNCIL_ENOTFOUND;
            council__recorder_diag(diag, path, 0, "no run %s in the store",
                                   run_id);
        } else {
            rc = COUNCIL_EINVAL;
            council__recorder_diag(diag, path, 0,
                                   "run %s did not complete; "
                                   "it has no answer to continue from",
                                   run_id);
        }
        goto out;
    }
    rc = load_event(db, path, run_id, "run_completed", &completed, diag);
    if (rc != COUNCIL_OK)
        goto out;
    answer = json_object_get(json_object_get(completed, "result"), "answer");
    if (!json_is_string(answer)) {
        rc = COUNCIL_EINVAL;
        council__recorder_diag(diag, path, 0,
                               "run %s did not complete; it "
                               "has no answer to continue from",
                               run_id);
        goto out;
    }
    msgs = json_object_get(started, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        rc = COUNCIL_EIO;
        council__recorder_diag(diag, path, 0,
                               "run %s: its run_started "
                               "event has no messages",
                               run_id);
        goto out;
    }
    m = council__calloc(json_array_size(msgs) + 1, sizeof(*m));
    if (m == NULL) {
        rc = COUNCIL_ENOMEM;
        council__recorder_diag(diag, path, 0, "out of memory");
        goto out;
    }
    json_array_foreach (msgs, i, v) {
        json_t *role = json_object_get(v, "role");
        json_t *content = json_object_get(v, "content");

        if (!json_is_string(role) || !json_is_string(content)) {
            rc = COUNCIL_EIO;
            council__recorder_diag(diag, path, 0,
                                   "run %s: message %zu of "
                                   "its run_started event is not "
                                   "{role, content}",
                                   run_id, i);
            goto out;
        }
        if (set_message(&m[count], json_string_value(role),
                        json_string_value(content),
                        json_string_length(content)) != 0) {
            rc = COUNCIL_ENOMEM;
            council__recorder_diag(diag, path, 0, "out of memory");
            goto out;
        }
        count++;
    }
    if (set_message(&m[count], "assistant", json_string_value(answer),
                    json_string_length(answer)) != 0) {
        rc = COUNCIL_ENOMEM;
        council__recorder_diag(diag, path, 0, "out of memory");
        goto out;
    }
    count++;
    *out = m;
    *n = count;
    m = NULL;
out:
    council_store_conversation_free(m, count);
    json_decref(started);
    json_decref(completed);
    sqlite3_close(db);
    return rc;
}

void
council_store_conversation_free(council_message *msgs, size_t n)
{
    if (msgs == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        council__free((void *)msgs[i].role);
        council__free((void *)msgs[i].content);
    }
    council__free(msgs);
}
