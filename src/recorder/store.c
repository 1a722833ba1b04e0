/* SPDX-License-Identifier: MIT */
/*
 * council_store_list: the read side of the sqlite recorder's database.  It
 * opens the file read-only (a missing file is reported, never created),
 * checks that it is a council store of a known schema version, and hands
 * out the runs newest first.  A damaged or foreign file gives COUNCIL_EIO
 * with SQLite's own words in the diag, never a crash.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

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

    if (sqlite3_prepare_v2(db, "SELECT * FROM pragma_application_id(),"
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

council_err
council_store_list(const char *path, size_t limit,
                   int (*cb)(const council_run_row *row, void *ud), void *ud,
                   council_diag *diag)
{
    council_err rc = COUNCIL_OK;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct stat sb;
    char eb[128];
    int src;

    if (diag != NULL)
        memset(diag, 0, sizeof(*diag));
    if (path == NULL || cb == NULL)
        return COUNCIL_EINVAL;
    if (council__os.stat(path, &sb) != 0) {
        int e = errno;

        council__recorder_diag(diag, path, 0, "%s",
                               council__os_strerror(e, eb, sizeof(eb)));
        return e == ENOENT ? COUNCIL_ENOTFOUND : COUNCIL_EIO;
    }
    src = sqlite3_open_v2(path, &db,
                          SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = fail_db(db, path, diag, "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    rc = check_store(db, path, diag);
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
